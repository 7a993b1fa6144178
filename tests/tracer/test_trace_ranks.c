/* test_trace_ranks.c: format version 4's pointer codes (FORMAT.md, "Version-2 records"): a free
 * or a realloc's old_ptr names a live allocation of the window by its rank among the live ones.
 * The encoder (trace_block_encoder.c, its own cheap bookkeeping) and the decoder
 * (trace_wire.h's) must keep the same live set through every case that touches it: frees named
 * by rank and by delta (a pointer never seen, or lost to a hash collision), double frees, frees
 * in the generic form, reallocs in place, moved, failed and of NULL, every allocation kind, an
 * address returned twice while live, more than W allocations in a block, blocks starting from
 * empty state, threads interleaved. And the codes themselves: a rank is what the definition
 * says (checked on hand-made records against an independent count), version 3's records keep
 * their old meaning, and a rank beyond the live count is a clean error naming the block (the
 * suite also runs under ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "trace_decode.h"
#include "tracegen.h"

/* ---- streams ---- */

struct model {
    uint64_t *live;             /* the stream's own idea of its live pointers (any order) */
    size_t nlive, cap;
    uint64_t next_addr;
    uint64_t *pool;             /* freed addresses, reused like a heap would */
    size_t npool, pool_cap;
};

static void model_add(struct model *m, uint64_t p)
{
    if (m->nlive == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->live = realloc(m->live, m->cap * sizeof *m->live);
    }
    m->live[m->nlive++] = p;
}

/* A pointer for an allocation: mostly a recently freed one (LIFO), else a fresh address. */
static uint64_t model_address(struct model *m, uint64_t *rng)
{
    if (m->npool && gen_rand(rng) % 4) {
        size_t back = gen_rand(rng) % 3;
        size_t i = m->npool > back ? m->npool - 1 - back : m->npool - 1;
        uint64_t p = m->pool[i];
        m->pool[i] = m->pool[--m->npool];
        return p;
    }
    m->next_addr += 16 * (1 + gen_rand(rng) % 64);
    return m->next_addr;
}

static void push_event(struct gen_stream *g, const struct trace_event *ev)
{
    if (g->count == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 4096;
        g->items = realloc(g->items, g->cap * sizeof *g->items);
    }
    struct gen_item *it = &g->items[g->count++];
    memset(it, 0, sizeof *it);
    it->type = GEN_EVENT;
    it->thread = ev->thread;
    it->ev = *ev;
    g->events++;
}

/* Which live pointer a free picks: the newest, the oldest, or any. */
enum { PICK_NEWEST, PICK_OLDEST, PICK_RANDOM };

/* `events` events of one thread's program-like churn, with every case that touches the live
 * set mixed in. The model keeps the live pointers in allocation order (append; removal keeps
 * the order) so that "newest" and "oldest" mean what they say. */
static void gen_rank_stream(struct gen_stream *g, uint64_t seed, size_t events, unsigned threads,
                            size_t target_live, int pick)
{
    struct model m[8];
    uint64_t rng = seed, seq = 100, time[8] = {0};
    memset(m, 0, sizeof m);
    memset(g, 0, sizeof *g);
    for (unsigned t = 0; t < threads; t++)
        m[t].next_addr = 0x555555560000ull + ((uint64_t)t << 32);
    for (size_t n = 0; n < events; n++) {
        unsigned t = (unsigned)(gen_rand(&rng) % threads);
        struct model *md = &m[t];
        struct trace_event ev;
        memset(&ev, 0, sizeof ev);
        ev.thread = t;
        ev.seq = seq;
        seq += 1 + (gen_rand(&rng) % 16 == 0);
        time[t] += gen_rand(&rng) % 50;
        ev.time_ns = time[t];
        ev.stack_id = (uint32_t)(gen_rand(&rng) % 5);
        uint64_t r = gen_rand(&rng) % 1000;
        int free_one = md->nlive && (md->nlive > target_live ? r < 700 : r < 300);
        if (free_one) {
            size_t i = pick == PICK_NEWEST ? md->nlive - 1
                     : pick == PICK_OLDEST ? 0 : (size_t)(gen_rand(&rng) % md->nlive);
            if (gen_rand(&rng) % 3 == 0)
                i = md->nlive - 1 - (size_t)(gen_rand(&rng) % (md->nlive < 9 ? md->nlive : 9));
            uint64_t p = md->live[i];
            /* keep allocation order: shift instead of swapping */
            memmove(&md->live[i], &md->live[i + 1], (md->nlive - i - 1) * sizeof *md->live);
            md->nlive--;
            if (md->npool == md->pool_cap) {
                md->pool_cap = md->pool_cap ? 2 * md->pool_cap : 1024;
                md->pool = realloc(md->pool, md->pool_cap * sizeof *md->pool);
            }
            md->pool[md->npool++] = p;
            unsigned how = (unsigned)(gen_rand(&rng) % 100);
            if (how < 8) {                       /* realloc: moved, in place or failed */
                ev.kind = gen_rand(&rng) % 4 ? TRACE_EV_REALLOC : TRACE_EV_REALLOCARRAY;
                ev.old_ptr = p;
                ev.size = 1 + gen_rand(&rng) % 300;
                if (ev.kind == TRACE_EV_REALLOCARRAY)
                    ev.nmemb = 1 + gen_rand(&rng) % 4;
                unsigned way = (unsigned)(gen_rand(&rng) % 4);
                if (way == 0) {
                    ev.ptr = p;                  /* in place */
                    md->npool--;
                } else if (way == 1) {
                    ev.ptr = 0;                  /* failed: the old block stays live */
                    ev.err = gen_rand(&rng) % 2 ? 12 : 0;
                    md->npool--;
                    memmove(&md->live[i + 1], &md->live[i], (md->nlive - i) * sizeof *md->live);
                    md->live[i] = p;
                    md->nlive++;
                    push_event(g, &ev);
                    continue;
                } else {
                    ev.ptr = model_address(md, &rng);
                }
                model_add(md, ev.ptr);
            } else if (how < 10) {               /* a free in the generic form */
                ev.kind = TRACE_EV_FREE;
                ev.ptr = p;
                ev.chunk_flags = 1 + (uint8_t)(gen_rand(&rng) % 7);
            } else {
                ev.kind = TRACE_EV_FREE;
                ev.ptr = p;
                ev.chunk_flags = 0;
            }
            push_event(g, &ev);
            continue;
        }
        if (r >= 990) {                          /* odd frees */
            ev.kind = TRACE_EV_FREE;
            unsigned odd = (unsigned)(r % 3);
            ev.ptr = odd == 0 ? 0                                    /* free(NULL) */
                   : odd == 1 ? 0x7f0000000000ull + 16 * gen_rand(&rng) % 65536   /* never seen */
                   : md->npool ? md->pool[md->npool - 1] : 0;        /* a double free */
            push_event(g, &ev);
            continue;
        }
        if (r >= 985 && md->nlive) {             /* an address returned again while live */
            ev.kind = TRACE_EV_MALLOC;
            ev.size = 24;
            ev.ptr = md->live[(size_t)(gen_rand(&rng) % md->nlive)];
            model_add(md, ev.ptr);
            push_event(g, &ev);
            continue;
        }
        static const uint8_t kinds[] = {TRACE_EV_MALLOC, TRACE_EV_MALLOC, TRACE_EV_MALLOC,
                                        TRACE_EV_MALLOC, TRACE_EV_CALLOC, TRACE_EV_REALLOC,
                                        TRACE_EV_MEMALIGN, TRACE_EV_POSIX_MEMALIGN,
                                        TRACE_EV_ALIGNED_ALLOC, TRACE_EV_VALLOC, TRACE_EV_PVALLOC};
        ev.kind = kinds[gen_rand(&rng) % sizeof kinds];
        ev.size = 1 + gen_rand(&rng) % 512;
        ev.chunk_flags = 1;
        if (ev.kind == TRACE_EV_CALLOC)
            ev.nmemb = 1 + gen_rand(&rng) % 8;
        if (ev.kind == TRACE_EV_MEMALIGN || ev.kind == TRACE_EV_POSIX_MEMALIGN ||
            ev.kind == TRACE_EV_ALIGNED_ALLOC)
            ev.alignment = 64;
        if (ev.kind == TRACE_EV_REALLOC && gen_rand(&rng) % 8 == 0)
            ev.size = 0;                         /* realloc(NULL, 0) */
        if (gen_rand(&rng) % 200 == 0) {
            ev.ptr = 0;                          /* out of memory */
            ev.err = 12;
            if (ev.kind == TRACE_EV_POSIX_MEMALIGN)
                ev.result = 12, ev.err = 0;
        } else {
            ev.ptr = model_address(md, &rng);
            model_add(md, ev.ptr);
        }
        push_event(g, &ev);
    }
    for (unsigned t = 0; t < 8; t++) {
        free(m[t].live);
        free(m[t].pool);
    }
}

/* Writes g and checks the reader gives back exactly its events; returns the file's size. */
static uint64_t round_trip(const struct gen_stream *g, size_t block, uint64_t flush_every)
{
    char path[512], err[512];
    gen_tmppath(path, sizeof path, "ranks.trace");
    uint64_t bytes = gen_write(g, path, block, flush_every);
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    if (!r)
        fprintf(stderr, "%s\n", err);
    assert_non_null(r);
    assert_int_equal(trace_reader_header(r)->version, TRACE_VERSION);
    const struct trace_event **want = gen_sorted_events(g);
    struct trace_event ev;
    size_t n = 0;
    int rc;
    while ((rc = trace_reader_next(r, &ev)) == 1) {
        assert_true(n < g->events);
        if (!gen_event_equal(want[n], &ev)) {
            fprintf(stderr, "event %zu differs\n", n);
            gen_event_diff(want[n], &ev);
            fail();
        }
        n++;
    }
    struct trace_reader_status s;
    trace_reader_status(r, &s);
    if (rc != 0 || !s.clean_end)
        fprintf(stderr, "stopped: %s\n", s.reason);
    assert_int_equal(rc, 0);
    assert_true(s.clean_end);
    assert_int_equal(n, g->events);
    free(want);
    trace_reader_close(r);
    unlink(path);
    return bytes;
}

static void free_stream(struct gen_stream *g)
{
    free(g->items);
    memset(g, 0, sizeof *g);
}

/* Big blocks: more than W allocations per block, so the rings and the live set wrap, with a
 * few hundred to several thousand pointers live; LIFO, FIFO and random frees. */
static void ranks_round_trip_big_blocks(void **state)
{
    (void)state;
    static const size_t live[] = {40, 700, 3000, 6000};
    for (int pick = PICK_NEWEST; pick <= PICK_RANDOM; pick++)
        for (unsigned i = 0; i < sizeof live / sizeof live[0]; i++) {
            struct gen_stream g;
            gen_rank_stream(&g, 1000 + 10 * (uint64_t)pick + i, 40000, 1, live[i], pick);
            round_trip(&g, 4u << 20, UINT64_MAX);
            free_stream(&g);
        }
}

/* Small blocks (state starting from empty again and again), several threads interleaved. */
static void ranks_round_trip_small_blocks_threads(void **state)
{
    (void)state;
    for (unsigned threads = 1; threads <= 4; threads += 3)
        for (uint64_t seed = 0; seed < 3; seed++) {
            struct gen_stream g;
            gen_rank_stream(&g, 77 + seed, 20000, threads, 300, PICK_RANDOM);
            round_trip(&g, 2000 + 3000 * seed, 150 + 400 * seed);
            free_stream(&g);
        }
}

/* More live addresses than the encoder's address table has slots: some live pointers are then
 * coded as deltas (a collision hid them) and their allocations stay live in both sides' sets. */
static void ranks_survive_address_table_collisions(void **state)
{
    (void)state;
    struct gen_stream g;
    gen_rank_stream(&g, 4242, 60000, 1, 20000, PICK_RANDOM);
    round_trip(&g, 8u << 20, UINT64_MAX);
    free_stream(&g);
}

/* ---- the codes, on hand-made records ---- */

struct dec {
    struct trace_encode_state st;
    uint64_t *ring;
};

static void dec_begin(struct dec *d, uint32_t version)
{
    trace_encode_state_reset(&d->st);
    if (!d->ring)
        d->ring = calloc(WIRE_V2_RING_WORDS(WIRE_V2_WINDOW), sizeof *d->ring);
    memset(d->ring, 0, WIRE_V2_RING_WORDS(WIRE_V2_WINDOW) * sizeof *d->ring);
    d->st.ring = d->ring;
    d->st.ring_mask = WIRE_V2_WINDOW - 1;
    d->st.version = version;
}

/* Decodes one record made of the given bytes (rows: every field in one run). */
static int dec_one(struct dec *d, const uint8_t *bytes, size_t n, struct trace_event *ev,
                   const char **why)
{
    struct wire_in in;
    struct wire_defs *defs = malloc(sizeof *defs);
    wire_in_rows(&in, bytes, n);
    *why = NULL;
    int rc = wire_decode_record(&in, &d->st, 0, ev, defs, why);
    free(defs);
    if (rc == REC_EVENT)
        assert_true(wire_in_done(&in));
    return rc;
}

/* malloc at seq last+1 with stack 0 (code 0: the same as last), size code size + 1, a new
 * pointer as a delta, time 0. */
static int dec_malloc(struct dec *d, uint64_t ptr)
{
    uint8_t b[32], *p = b;
    *p++ = WIRE_CODE_MALLOC_NEXT;
    p = wire_put_varint(p, 0);
    p = wire_put_varint(p, 33);
    p = wire_put_varint(p, wire_zigzag((int64_t)(ptr - d->st.last_ptr)) + WIRE_V2_WINDOW + 1);
    p = wire_put_varint(p, 0);
    struct trace_event ev;
    const char *why;
    int rc = dec_one(d, b, (size_t)(p - b), &ev, &why);
    assert_int_equal(rc, REC_EVENT);
    assert_true(ev.ptr == ptr);
    return rc;
}

/* A free naming rank (or, for version 3, distance - 1) k: aux k below 7, else aux 7 and code
 * k - 6. Returns the record's result, the pointer in *ptr. */
static int dec_free(struct dec *d, uint64_t k, uint64_t *ptr, const char **why)
{
    uint8_t b[32], *p = b;
    *p++ = (uint8_t)(WIRE_CODE_FREE_NEXT | (k < 7 ? k : 7) << 5);
    p = wire_put_varint(p, 0);
    if (k >= 7)
        p = wire_put_varint(p, k - 6);
    p = wire_put_varint(p, 0);
    struct trace_event ev;
    int rc = dec_one(d, b, (size_t)(p - b), &ev, why);
    *ptr = ev.ptr;
    return rc;
}

/* Ranks mean what FORMAT.md says, against a plain list of the live pointers in allocation order:
 * rank k is the (k+1)-th newest still live; a rank past the live count is an error, not a
 * crash; version 3 reads the same bytes as distances. Across a wrap of the window too. */
static void rank_codes_match_the_definition(void **state)
{
    (void)state;
    struct dec d = {0};
    uint64_t rng = 5;
    uint64_t *order = malloc(3 * WIRE_V2_WINDOW * sizeof *order);  /* allocations, in order */
    uint8_t *alive = calloc(3 * WIRE_V2_WINDOW, 1);
    size_t nalloc = 0;
    const char *why;
    uint64_t got;
    dec_begin(&d, 4);
    /* nothing live: rank 0 and rank 9 are errors */
    assert_int_equal(dec_free(&d, 0, &got, &why), REC_ERROR);
    assert_non_null(strstr(why, "does not exist"));
    assert_int_equal(dec_free(&d, 9, &got, &why), REC_ERROR);
    for (int step = 0; step < 3 * (int)WIRE_V2_WINDOW; step++) {
        size_t live = 0;
        for (size_t i = nalloc > WIRE_V2_WINDOW ? nalloc - WIRE_V2_WINDOW : 0; i < nalloc; i++)
            live += alive[i];
        if (live && gen_rand(&rng) % 5 < 2) {
            uint64_t k = gen_rand(&rng) % 3 ? gen_rand(&rng) % (live < 20 ? live : 20)
                                            : gen_rand(&rng) % live;
            /* the (k+1)-th newest live allocation of the window */
            size_t i = nalloc, seen = 0;
            while (i-- > 0)
                if (alive[i] && seen++ == k)
                    break;
            assert_int_equal(dec_free(&d, k, &got, &why), REC_EVENT);
            assert_true(got == order[i]);
            alive[i] = 0;
            /* the live count is now live - 1: rank live - 1 is refused (and changes nothing) */
            assert_int_equal(dec_free(&d, live - 1, &got, &why), REC_ERROR);
            assert_non_null(strstr(why, "does not exist"));
        } else {
            uint64_t p = 0x10000 + 16 * (uint64_t)nalloc;
            dec_malloc(&d, p);
            order[nalloc] = p;
            alive[nalloc++] = 1;
        }
    }
    /* version 3: the same bytes are distances (aux 1 = two allocations ago, dead or not) */
    dec_begin(&d, 3);
    dec_malloc(&d, 0x100);
    dec_malloc(&d, 0x200);
    dec_malloc(&d, 0x300);
    assert_int_equal(dec_free(&d, 0, &got, &why), REC_EVENT);
    assert_true(got == 0x300);
    assert_int_equal(dec_free(&d, 0, &got, &why), REC_EVENT);
    assert_true(got == 0x300);                  /* by distance: the same allocation again */
    assert_int_equal(dec_free(&d, 2, &got, &why), REC_EVENT);
    assert_true(got == 0x100);
    assert_int_equal(dec_free(&d, 3, &got, &why), REC_ERROR);
    /* version 4: the same bytes are ranks */
    dec_begin(&d, 4);
    dec_malloc(&d, 0x100);
    dec_malloc(&d, 0x200);
    dec_malloc(&d, 0x300);
    assert_int_equal(dec_free(&d, 0, &got, &why), REC_EVENT);
    assert_true(got == 0x300);
    assert_int_equal(dec_free(&d, 0, &got, &why), REC_EVENT);
    assert_true(got == 0x200);                  /* by rank: the newest still live */
    assert_int_equal(dec_free(&d, 1, &got, &why), REC_ERROR);
    assert_int_equal(dec_free(&d, 0, &got, &why), REC_EVENT);
    assert_true(got == 0x100);
    assert_int_equal(dec_free(&d, 0, &got, &why), REC_ERROR);
    free(order);
    free(alive);
    free(d.ring);
}

/* ---- files with stored columns ---- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t file[1 << 20];
static size_t file_len, first_block;

/* Writes g's events (one thread, one block) with stored columns to path and reads the file into
 * `file`; returns the opcode column of its first block (*n bytes). */
static uint8_t *write_stored(const struct gen_stream *g, const char *path, size_t *n)
{
    char err[512];
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.page_size = 4096;
    h.first_seq = g->items[0].ev.seq;
    h.argv = (char *)"";
    h.malloc_env = (char *)"";
    unlink(path);
    struct trace_file_writer *w = trace_file_writer_open(path, 0, &h, err, sizeof err);
    assert_non_null(w);
    trace_file_writer_set_method(w, TRACE_BLOCK_STORED);
    for (size_t i = 0; i < g->count; i++)
        assert_int_equal(trace_file_writer_event(w, &g->items[i].ev), 0);
    assert_int_equal(trace_file_writer_close(w, err, sizeof err), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    file_len = fread(file, 1, sizeof file, f);
    fclose(f);
    first_block = 16 + wire_get32(file + 12) + 4;
    assert_int_equal(wire_get32(file + 8), 4);
    assert_memory_equal(file + first_block, "BLK3", 4);
    /* the stored columns: method byte, varint length, bytes; the opcodes are column 5 */
    uint8_t *p = file + first_block + WIRE_BLOCK_FRAME, *op = NULL;
    for (unsigned c = 0; c < WIRE_V2_COLUMNS; c++) {
        assert_int_equal(*p, 0);
        const uint8_t *q = p + 1;
        uint64_t len = 0;
        assert_true(wire_get_varint(&q, file + file_len, &len));
        if (c == WIRE_COL_OP) {
            op = (uint8_t *)q;
            *n = (size_t)len;
        }
        p = (uint8_t *)q + len;
    }
    return op;
}

/* A free's opcode names the newest live pointer by aux 0 whatever was freed in between (by
 * distance, FORMAT.md's version 3, the same frees would need aux 1, 3, 5, then explicit codes):
 * 64 allocations, frees of every second from the newest down (ranks 0, 1, 2, ...), then of the
 * others from the newest down (rank 0 each). */
static void lifo_frees_are_aux_zero(void **state)
{
    (void)state;
    char path[512];
    gen_tmppath(path, sizeof path, "lifo.trace");
    struct gen_stream g;
    memset(&g, 0, sizeof g);
    uint64_t seq = 1;
    struct trace_event ev;
    for (int i = 0; i < 64; i++) {
        memset(&ev, 0, sizeof ev);
        ev.kind = TRACE_EV_MALLOC;
        ev.seq = seq++;
        ev.size = 32;
        ev.ptr = 0x1000 + 64 * (uint64_t)i;
        push_event(&g, &ev);
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 63 - pass; i >= 0; i -= 2) {
            memset(&ev, 0, sizeof ev);
            ev.kind = TRACE_EV_FREE;
            ev.seq = seq++;
            ev.ptr = 0x1000 + 64 * (uint64_t)i;
            push_event(&g, &ev);
        }
    size_t n;
    uint8_t *op = write_stored(&g, path, &n);
    assert_int_equal(n, 128);
    for (unsigned k = 0; k < 32; k++)
        assert_int_equal(op[64 + k], WIRE_CODE_FREE_NEXT | (k < 7 ? k : 7) << 5);
    for (unsigned k = 0; k < 32; k++)
        assert_int_equal(op[96 + k], WIRE_CODE_FREE_NEXT);
    round_trip(&g, 1u << 20, UINT64_MAX);
    unlink(path);
    free(g.items);
}

/* ---- a bad rank in a real file ---- */

/* A stored-column file whose free names a rank past the live count (CRCs made right again): the
 * reader delivers the events before it, then stops with an error naming the block. */
static void rank_past_the_live_count_names_the_block(void **state)
{
    (void)state;
    char path[512], err[512];
    gen_tmppath(path, sizeof path, "badrank.trace");
    FILE *f;
    struct gen_stream g;
    memset(&g, 0, sizeof g);
    struct trace_event ev;
    for (int i = 0; i < 3; i++) {
        memset(&ev, 0, sizeof ev);
        ev.kind = i < 2 ? TRACE_EV_MALLOC : TRACE_EV_FREE;
        ev.seq = 1 + (uint64_t)i;
        ev.size = i < 2 ? 40 : 0;
        ev.ptr = i < 2 ? 0x5000 + 0x40 * (uint64_t)i : 0x5000;      /* rank 1 */
        push_event(&g, &ev);
    }
    size_t oplen;
    uint8_t *op = write_stored(&g, path, &oplen);
    size_t blk = first_block, len = file_len;
    assert_int_equal(oplen, 3);
    assert_int_equal(op[2], WIRE_CODE_FREE_NEXT | 1 << 5);        /* rank 1: the older one */
    op[2] = WIRE_CODE_FREE_NEXT | 2 << 5;                          /* rank 2: only 2 live */
    uint32_t plen = wire_get32(file + blk + 4);
    put32(file + blk + 32, (uint32_t)crc32(0, file + blk + WIRE_BLOCK_FRAME, plen));
    put32(file + blk + 36, (uint32_t)crc32(0, file + blk, 36));
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(file, 1, len, f), len);
    fclose(f);
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(trace_reader_next(r, &ev), -1);
    struct trace_reader_status s;
    trace_reader_status(r, &s);
    assert_true(s.damaged);
    assert_int_equal(s.stop_offset, blk);
    char want[64];
    snprintf(want, sizeof want, "block at offset %zu", blk);
    assert_non_null(strstr(s.reason, want));
    assert_non_null(strstr(s.reason, "does not exist"));
    trace_reader_close(r);
    unlink(path);
    free(g.items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rank_codes_match_the_definition),
        cmocka_unit_test(ranks_round_trip_big_blocks),
        cmocka_unit_test(ranks_round_trip_small_blocks_threads),
        cmocka_unit_test(ranks_survive_address_table_collisions),
        cmocka_unit_test(lifo_frees_are_aux_zero),
        cmocka_unit_test(rank_past_the_live_count_names_the_block),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(gen_tmpdir());
    return rc;
}
