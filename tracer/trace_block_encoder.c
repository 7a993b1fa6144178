/* trace_block_encoder.c: a thread's events straight into the columns of a version-2 block.
 *
 * The recorder's flusher runs this for every call the program makes, so it is built to be cheap:
 * each field is written once, as a varint, at the end of the column of its class (opcodes, stack
 * codes, sizes, seq deltas, allocation pointers, free pointers, times, everything else) - no
 * rows to split again - and pointers are named by their rank among the live allocations (for a
 * free or a realloc's old pointer: format version 4) or by how many frees ago the same address
 * was freed (for an allocation), found through two direct-mapped tables (address -> ordinal,
 * checked against the rings the decoder keeps too); the live set is kept the encoder's own cheap
 * way (live_rank, live_retire, live_alloc), the same set as the decoder's. Sealing codes each
 * column on its own (column_coder.c): by default with zlib's deflate - run-length, Huffman-only
 * or level 1's string search, whichever a trial on the column's first bytes found smallest
 * (choose_ways) - the zlib state in the encoder's own memory; or with our rANS/Huffman coder;
 * or stored. FORMAT.md, "Version-2 blocks" and "Coded columns", is the byte-level description;
 * the decoder is trace_decode.h.
 *
 * Allocation-free (compiled into the recorder): the caller provides the memory.
 */
#include <zlib.h>
#include "column_coder.h"
#include "trace_decode.h"

#define HASH_BITS 13
#define HASH_SIZE (1u << HASH_BITS)
#define W WIRE_V2_WINDOW

/* zlib's memory for one raw deflate stream (windowBits 15, memLevel 9: ~390 KiB), carved from
 * the encoder's own block. */
#ifndef ZLIB_MEM_LEVEL
#define ZLIB_MEM_LEVEL 9
#endif
#define ZLIB_STATE (448u << 10)
#define TRIAL_SAMPLE (16u << 10)
#define TRIAL_BYTES ((TRIAL_SAMPLE + 16 + 63) & ~63u)
#define ZLIB_ARENA (ZLIB_STATE + TRIAL_BYTES)
/* After every TRIAL_EVERY raw bytes (and in the first block, and in each block at least twice
 * the size of the last tried one while that was below TRIAL_FULL), each column's first
 * TRIAL_SAMPLE bytes are deflated every way to choose how to code the column until the next
 * trial (see choose_ways). */
#define TRIAL_EVERY (64ull << 20)
#define TRIAL_FULL (512u << 10)
#define STORE_IT (-1)

struct trace_block_encoder {
    uint32_t thread;
    int method;                          /* TRACE_BLOCK_ZLIB, _RANS or _STORED */
    uint64_t first_seq, last_seq, events;
    size_t col_cap;
    uint8_t *col[WIRE_V2_COLUMNS];
    uint8_t *at[WIRE_V2_COLUMNS];        /* each column's end */
    size_t budget;                       /* bytes that can still be reserved before the room
                                            left is counted again (room()) */
    struct trace_encode_state st;
    /* address hash -> the low 16 bits of the ordinal of the last allocation (free) of an
     * address with that hash: the ring slot it names must hold the address, so a stale or
     * wrapped entry never matches (16 bits: the tables stay in the L1 cache) */
    uint16_t alloc_at[HASH_SIZE];
    uint16_t free_at[HASH_SIZE];
    uint64_t rings[WIRE_V2_RING_WORDS(W)];   /* rings, then the predictions */
    /* Version 4: the live allocation slots (trace_wire.h's definition, the decoder's set), kept
     * the cheap way for the encoder: the bits; per group of 8 words, the live slots in the words
     * before each word of its group, and in the groups before each group (16-bit lanes: a free's
     * rank is two lane loads and a popcount, its retirement 4 additions); except that the newest
     * word's changes (an allocation turning a dead slot live, a retirement there) are counted in
     * live_pending and reach the lanes only when the allocations move on to the next word. */
    uint64_t live_bits[WIRE_V2_LIVE_BITS];
    uint64_t live_in_group[16], live_groups[2];
    uint64_t live_total, live_upto;      /* live slots; those in [0, newest slot] */
    uint64_t live_pending;               /* (mod 2^64) the newest word's changes not in the lanes */
    z_stream zs;
    int zs_state;                        /* 0 not started, 1 ready, -1 failed (use rANS) */
    uint8_t *zmem;
    size_t zmem_used;
    int zway[WIRE_V2_COLUMNS];           /* per column: a zlib strategy, or STORE_IT */
    uint64_t since_trial;                /* raw bytes sealed since the last trial */
    size_t trial_raw;                    /* the raw size of the block last tried */
};

size_t trace_block_encoder_size(size_t column_cap)
{
    size_t head = (sizeof(struct trace_block_encoder) + 63) & ~(size_t)63;
    return head + WIRE_V2_COLUMNS * ((column_cap + 63) & ~(size_t)63) + ZLIB_ARENA;
}

/* zlib's allocation functions: a bump allocator over zmem (deflateInit2 allocates once; the
 * stream is reset, never ended). */
static void *zmem_alloc(void *opaque, unsigned items, unsigned size)
{
    struct trace_block_encoder *e = opaque;
    size_t n = ((size_t)items * size + 63) & ~(size_t)63;
    if (n > ZLIB_STATE - e->zmem_used)
        return NULL;
    void *p = e->zmem + e->zmem_used;
    e->zmem_used += n;
    return p;
}

static void zmem_free(void *opaque, void *p)
{
    (void)opaque;
    (void)p;
}

static int zlib_ready(struct trace_block_encoder *e)
{
    if (e->zs_state == 0) {
        memset(&e->zs, 0, sizeof e->zs);
        e->zs.zalloc = zmem_alloc;
        e->zs.zfree = zmem_free;
        e->zs.opaque = e;
        e->zmem_used = 0;
        e->zs_state = deflateInit2(&e->zs, 1, Z_DEFLATED, -15, ZLIB_MEM_LEVEL, Z_HUFFMAN_ONLY) == Z_OK
                          ? 1 : -1;
        e->since_trial = TRIAL_EVERY;
        e->trial_raw = 0;
    }
    return e->zs_state == 1;
}

void trace_block_encoder_begin(struct trace_block_encoder *e, uint32_t thread)
{
    e->thread = thread;
    e->first_seq = e->last_seq = e->events = 0;
    for (unsigned c = 0; c < WIRE_V2_COLUMNS; c++)
        e->at[c] = e->col[c];
    e->budget = 0;
    /* The block's state starts from zero, with empty rings. The address tables are kept: an
     * entry (from an earlier block, or 65536 allocations ago) names a ring slot that holds 0 or
     * another address unless this block's allocation (free) at that distance was of the same
     * address - and that one would have rewritten the entry. */
    trace_encode_state_reset(&e->st);
    e->st.ring = e->rings;
    e->st.ring_mask = W - 1;
    e->st.version = TRACE_VERSION;
    memset(e->rings, 0, 2 * W * sizeof *e->rings);
    memset(e->rings + 2 * W, 0, WIRE_V2_PRED_WORDS * sizeof(uint64_t));   /* the predictions */
    memset(e->live_bits, 0, sizeof e->live_bits);
    memset(e->live_in_group, 0, sizeof e->live_in_group);
    memset(e->live_groups, 0, sizeof e->live_groups);
    e->live_total = e->live_upto = e->live_pending = 0;
}

struct trace_block_encoder *trace_block_encoder_init(void *mem, size_t column_cap)
{
    struct trace_block_encoder *e = mem;
    memset(e, 0, sizeof *e);
    size_t head = (sizeof *e + 63) & ~(size_t)63;
    size_t stride = (column_cap + 63) & ~(size_t)63;
    e->col_cap = column_cap;
    for (unsigned c = 0; c < WIRE_V2_COLUMNS; c++)
        e->col[c] = (uint8_t *)mem + head + c * stride;
    e->zmem = (uint8_t *)mem + head + WIRE_V2_COLUMNS * stride;
    e->method = TRACE_BLOCK_DEFAULT;
    trace_block_encoder_begin(e, 0);
    return e;
}

void trace_block_encoder_store(struct trace_block_encoder *e, int stored)
{
    e->method = stored ? TRACE_BLOCK_STORED : TRACE_BLOCK_DEFAULT;
}

void trace_block_encoder_method(struct trace_block_encoder *e, int method)
{
    e->method = method == TRACE_BLOCK_ZLIB || method == TRACE_BLOCK_RANS ||
                method == TRACE_BLOCK_STORED ? method : TRACE_BLOCK_DEFAULT;
}

size_t trace_block_encoder_raw(const struct trace_block_encoder *e)
{
    size_t n = 0;
    for (unsigned c = 0; c < WIRE_V2_COLUMNS; c++)
        n += (size_t)(e->at[c] - e->col[c]);
    return n;
}

uint64_t trace_block_encoder_events(const struct trace_block_encoder *e)
{
    return e->events;
}

uint32_t trace_block_encoder_thread(const struct trace_block_encoder *e)
{
    return e->thread;
}

/* ---- columns ---- */

static inline size_t col_len(const struct trace_block_encoder *e, unsigned c)
{
    return (size_t)(e->at[c] - e->col[c]);
}

/* A varint whose first byte goes to *lo and the rest to *hi (the split classes). */
static inline void put_split(uint8_t **lo, uint8_t **hi, uint64_t v)
{
    if (v < 0x80) {
        *(*lo)++ = (uint8_t)v;
        return;
    }
    *(*lo)++ = (uint8_t)(v | 0x80);
    v >>= 7;
    uint8_t *p = *hi;
    if (v < 0x80) {                         /* two bytes: most pointer and size codes */
        *p = (uint8_t)v;
        *hi = p + 1;
        return;
    }
    for (int i = 1; i < 8; i++) {           /* the bytes a varint has after its first */
        if (v < 0x80) {
            *p++ = (uint8_t)v;
            *hi = p;
            return;
        }
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;                      /* the ninth byte: the last 8 bits */
    *hi = p;
}

static inline void put(struct trace_block_encoder *e, unsigned cls, uint64_t v)
{
    unsigned hc = wire_hi_class(cls);
    uint8_t *p = e->at[cls];
    if (hc == cls) {
        e->at[cls] = wire_put_varint(p, v);
        return;
    }
    uint8_t *q = e->at[hc];
    put_split(&p, &q, v);
    e->at[cls] = p;
    e->at[hc] = q;
}

static inline void put_byte(struct trace_block_encoder *e, unsigned cls, uint8_t b)
{
    *e->at[cls]++ = b;
}

/* Room for one more record of at most `bytes` in every column (no column holds more than all
 * of them together): each record reserves its most from a budget, and only when that runs out
 * are the columns' lengths added up again (every few thousand records). */
static inline int room(struct trace_block_encoder *e, size_t bytes)
{
    if (__builtin_expect(e->budget >= bytes, 1)) {
        e->budget -= bytes;
        return 1;
    }
    size_t used = trace_block_encoder_raw(e);
    e->budget = used <= e->col_cap ? e->col_cap - used : 0;
    if (e->budget < bytes)
        return 0;
    e->budget -= bytes;
    return 1;
}

/* ---- pointers ---- */

static inline uint32_t hash_ptr(uint64_t p)
{
    return (uint32_t)(((p >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - HASH_BITS));
}

/* How many frees ago p was freed (1..W), 0 if not within the window. */
static inline uint64_t free_distance(const struct trace_block_encoder *e, uint64_t p)
{
    uint32_t ord = e->free_at[hash_ptr(p)];
    uint64_t d = (uint16_t)(e->st.frees - ord);
    return d - 1 < W && e->rings[W + (ord & (W - 1))] == p && p ? d : 0;
}

static inline int delta_fits(uint64_t p, uint64_t last)
{
    return wire_zigzag((int64_t)(p - last)) <= UINT64_MAX - W - 1;
}

/* ---- live allocations (version 4) ---- */

/* The functions that rank live pointers come in two builds (GCC's target_clones, chosen once
 * when the program is loaded): one with the popcnt instruction, which every x86-64 made since
 * 2008 has, and the portable one. A rank's popcount is 1 instruction instead of 12. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define RANKING __attribute__((target_clones("popcnt", "default")))
#endif
#endif
#ifndef RANKING
#define RANKING
#endif

static inline unsigned live_popcount(uint64_t x)
{
#if defined(__GNUC__)
    return (unsigned)__builtin_popcountll(x);
#else
    return wire_popcount(x);
#endif
}

/* Adds delta (mod 2^64: -1 too) to the lanes of the words after word w. */
static inline void live_lanes_add(struct trace_block_encoder *e, uint64_t w, uint64_t delta)
{
    const uint64_t *in_group = wire_lanes_after(w & 7), *groups = wire_lanes_after(w >> 3);
    uint64_t *lg = e->live_in_group + 2 * (w >> 3);
    lg[0] += in_group[0] * delta;
    lg[1] += in_group[1] * delta;
    e->live_groups[0] += groups[0] * delta;
    e->live_groups[1] += groups[1] * delta;
}

static inline uint64_t newest_slot(const struct trace_block_encoder *e)
{
    return (e->st.allocs - 1) & (W - 1);
}

/* A live pointer's rank among the live allocations of the window, and in *slot its
 * allocation's slot; -1 (and *slot -1) when it is not a live one there. */
static inline __attribute__((always_inline)) int64_t live_rank(const struct trace_block_encoder *e,
                                                               uint64_t p, int64_t *slot)
{
    uint32_t ord = e->alloc_at[hash_ptr(p)];
    uint64_t d = (uint16_t)(e->st.allocs - ord), s = ord & (W - 1), w = s >> 6;
    *slot = -1;
    if (d - 1 >= W || e->rings[s] != p || !p || !(e->live_bits[w] >> (s & 63) & 1))
        return -1;
    *slot = (int64_t)s;
    uint64_t n = newest_slot(e);
    uint64_t before = wire_lane(e->live_in_group, w) + wire_lane(e->live_groups, w >> 3) +
                      live_popcount(e->live_bits[w] & ((1ull << (s & 63)) - 1)) +
                      (e->live_pending & (0 - (uint64_t)(w > n >> 6)));
    return (int64_t)(e->live_upto - before - 1 + (e->live_total & (0 - (uint64_t)(s > n))));
}

/* The live slot s, named by a rank, ends (before the event's own allocation, if any). */
static inline void live_retire(struct trace_block_encoder *e, uint64_t s)
{
    uint64_t n = newest_slot(e), w = s >> 6;
    e->live_bits[w] &= ~(1ull << (s & 63));
    e->live_total--;
    e->live_upto -= s <= n;
    if (w == n >> 6)
        e->live_pending--;
    else
        live_lanes_add(e, w, (uint64_t)-1);
}

/* An allocation returned a nonzero pointer into slot s (the newest from now on). */
static inline void live_alloc(struct trace_block_encoder *e, uint64_t s)
{
    uint64_t w = s >> 6, turns = ~e->live_bits[w] >> (s & 63) & 1;
    if (__builtin_expect((s & 63) == 0, 0) && e->live_pending) {
        live_lanes_add(e, (w - 1) & (WIRE_V2_LIVE_BITS - 1), e->live_pending);
        e->live_pending = 0;
    }
    e->live_bits[w] |= 1ull << (s & 63);
    e->live_total += turns;
    e->live_pending += turns;
    e->live_upto = s ? e->live_upto + 1 : 1;
}

/* Codes (see trace_wire.h): a live pointer's from its rank r (-1: none), skip = what aux
 * names; *ok = 0 when the delta does not fit. */
static inline uint64_t live_code(const struct trace_block_encoder *e, uint64_t p, unsigned skip,
                                 int64_t r, int *ok)
{
    if (!p)
        return 0;
    if (r >= (int64_t)skip)
        return (uint64_t)r - skip + 1;
    *ok &= delta_fits(p, e->st.last_ptr);
    return wire_zigzag((int64_t)(p - e->st.last_ptr)) + W - skip + 1;
}

static inline uint64_t freed_code(const struct trace_block_encoder *e, uint64_t p, uint64_t base,
                                  int *ok)
{
    if (!p)
        return 0;
    uint64_t d = free_distance(e, p);
    if (d)
        return d;
    *ok &= delta_fits(p, base);
    return wire_zigzag((int64_t)(p - base)) + W + 1;
}

/* Stack and size codes (trace_wire.h, version-2 predictions: the same tables, found at a fixed
 * place in the encoder rather than through the state's ring pointer). */
static inline uint64_t *pred_table(struct trace_block_encoder *e)
{
    return e->rings + 2 * W;
}

static inline uint64_t stack_code(struct trace_block_encoder *e, unsigned kind, uint32_t id)
{
    const struct trace_encode_state *st = &e->st;
    uint32_t last = wire_v2_last_stack(st, kind);
    if (id == last)
        return 0;
    uint64_t p = pred_table(e)[(kind == TRACE_EV_FREE ? 3 * WIRE_V2_PRED_SLOTS : 0) +
                               wire_v2_slot(last)];
    if ((p >> 32) == (uint64_t)last + 1 && (uint32_t)p == id)
        return 1;
    return (uint64_t)id + 2;
}

static inline uint64_t size_code(struct trace_block_encoder *e, uint32_t stack, uint64_t size,
                                 int *ok)
{
    const uint64_t *pred = pred_table(e);
    unsigned k = wire_v2_slot(stack);
    if (stack && pred[WIRE_V2_PRED_SLOTS + k] == (uint64_t)stack + 1 &&
        pred[2 * WIRE_V2_PRED_SLOTS + k] == size)
        return 0;
    *ok &= size != UINT64_MAX;
    return size + 1;
}

/* wire_v2_note_stack on the encoder's tables. */
static inline void note_stack(struct trace_block_encoder *e, unsigned kind, uint32_t stack,
                              uint64_t size)
{
    struct trace_encode_state *st = &e->st;
    uint64_t *pred = pred_table(e);
    if (kind == TRACE_EV_FREE) {
        uint32_t last = st->last_free_stack;
        if (stack != last)
            pred[3 * WIRE_V2_PRED_SLOTS + wire_v2_slot(last)] = ((uint64_t)last + 1) << 32 | stack;
        st->last_free_stack = stack;
        return;
    }
    if (!stack)
        return;
    uint32_t last = st->last_stack;
    if (stack != last)
        pred[wire_v2_slot(last)] = ((uint64_t)last + 1) << 32 | stack;
    if (wire_kind_allocates(kind)) {
        unsigned k = wire_v2_slot(stack);
        pred[WIRE_V2_PRED_SLOTS + k] = (uint64_t)stack + 1;
        pred[2 * WIRE_V2_PRED_SLOTS + k] = size;
    }
    st->last_stack = stack;
}

/* The state after an event: rings, live bits (`retired`: the slot a rank named that the
 * event ends, or -1), tables, last values, the stack's time slot. */
static inline __attribute__((always_inline)) void after(struct trace_block_encoder *e, unsigned kind, uint32_t stack_id,
                         uint64_t size, uint64_t seq, uint64_t time_ns, uint64_t gone,
                         uint64_t allocated, int64_t retired)
{
    struct trace_encode_state *st = &e->st;
    if (gone) {
        e->rings[W + (st->frees & (W - 1))] = gone;
        e->free_at[hash_ptr(gone)] = (uint16_t)st->frees++;
    }
    if (retired >= 0)
        live_retire(e, (uint64_t)retired);
    if (allocated) {
        uint64_t slot = st->allocs & (W - 1);
        e->rings[slot] = allocated;
        e->alloc_at[hash_ptr(allocated)] = (uint16_t)st->allocs++;
        live_alloc(e, slot);
    }
    unsigned slot = wire_time_slot(stack_id);
    st->time_stack[slot] = stack_id;
    st->time_delta[slot] = time_ns - st->last_time_ns;
    note_stack(e, kind, stack_id, size);
    st->last_seq = seq;
    st->last_time_ns = time_ns;
    if (!e->events++)
        e->first_seq = seq;
    e->last_seq = seq;
}

static inline uint64_t time_code(const struct trace_encode_state *st, uint32_t stack_id,
                                 uint64_t time_ns)
{
    uint64_t d = time_ns - st->last_time_ns, predicted;
    if (wire_time_predicted(st, stack_id, &predicted))
        return wire_zigzag((int64_t)(d - predicted));
    return d;
}

static inline void put_time(struct trace_block_encoder *e, uint32_t stack_id, uint64_t time_ns)
{
    put(e, WIRE_COL_TIME, time_code(&e->st, stack_id, time_ns));
}

static inline unsigned next_code(unsigned kind)
{
    switch (kind) {
    case TRACE_EV_MALLOC: return WIRE_CODE_MALLOC_NEXT;
    case TRACE_EV_FREE: return WIRE_CODE_FREE_NEXT;
    case TRACE_EV_CALLOC: return WIRE_CODE_CALLOC_NEXT;
    case TRACE_EV_REALLOC: return WIRE_CODE_REALLOC_NEXT;
    default: return 0;
    }
}

/* ---- the common calls ---- */

/* One call; inlined into each entry point below, where a constant kind (malloc, free) leaves
 * only that kind's code. */
static inline __attribute__((always_inline)) int call_body(struct trace_block_encoder *e,
                                                          unsigned kind, unsigned chunk_flags,
                                                          uint32_t stack_id, uint64_t seq,
                                                          uint64_t time_ns, uint64_t nmemb,
                                                          uint64_t size, uint64_t old_ptr,
                                                          uint64_t ptr)
{
    struct trace_encode_state *st = &e->st;
    if (!room(e, TRACE_EVENT_MAX_BYTES))
        return -1;
    if (time_ns < st->last_time_ns || (chunk_flags & ~7u))
        return -2;
    int ok = 1;
    unsigned aux = chunk_flags, code = kind;
    uint64_t ptr_code = 0, old_code = 0, gone = 0, allocated = 0, last = st->last_ptr;
    int64_t retired = -1;
    switch (kind) {
    case TRACE_EV_FREE: {
        if (chunk_flags || nmemb || size || old_ptr)
            return -2;
        int64_t r = live_rank(e, ptr, &retired);
        if (r >= 0 && r < WIRE_FREE_AUX_SLOTS) {
            aux = (unsigned)r;
        } else {
            aux = WIRE_FREE_EXPLICIT;
            ptr_code = live_code(e, ptr, WIRE_FREE_AUX_SLOTS, r, &ok);
        }
        gone = ptr;
        break;
    }
    case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC: case TRACE_EV_CALLOC:
        if (old_ptr || (nmemb && kind != TRACE_EV_CALLOC))
            return -2;
        ptr_code = freed_code(e, ptr, last, &ok);
        allocated = ptr;
        break;
    case TRACE_EV_REALLOC:
        if (nmemb)
            return -2;
        old_code = live_code(e, old_ptr, 0, live_rank(e, old_ptr, &retired), &ok);
        ptr_code = freed_code(e, ptr, old_ptr ? old_ptr : last, &ok);
        gone = ptr && old_ptr != ptr ? old_ptr : 0;
        allocated = ptr;
        if (!ptr)
            retired = -1;               /* a failed realloc leaves the old block live */
        break;
    default:
        return -2;
    }
    uint64_t scode = kind == TRACE_EV_FREE ? 0 : size_code(e, stack_id, size, &ok);
    if (!ok)
        return -2;
    if (seq == st->last_seq + 1 && next_code(kind))
        code = next_code(kind);
    uint64_t tcode = time_code(st, stack_id, time_ns);
    uint64_t stcode = stack_code(e, kind, stack_id);
    /* Each column's end in a local: stores through uint8_t pointers would otherwise make the
     * compiler reload the encoder's fields after every byte. */
    uint8_t **at = e->at;
    uint8_t *pop = at[WIRE_COL_OP], *pst = at[WIRE_COL_STACK], *ptm = at[WIRE_COL_TIME];
    *pop++ = (uint8_t)(code | aux << 5);
    pst = wire_put_varint(pst, stcode);
    if (kind != TRACE_EV_FREE) {
        uint8_t *lo = at[WIRE_COL_SIZE], *hi = at[WIRE_COL_SIZE_HI];
        put_split(&lo, &hi, scode);
        if (kind == TRACE_EV_CALLOC)
            put_split(&lo, &hi, nmemb);
        at[WIRE_COL_SIZE] = lo;
        at[WIRE_COL_SIZE_HI] = hi;
        lo = at[WIRE_COL_PTR];
        hi = at[WIRE_COL_PTR_HI];
        if (kind == TRACE_EV_REALLOC)
            put_split(&lo, &hi, old_code);
        put_split(&lo, &hi, ptr_code);
        at[WIRE_COL_PTR] = lo;
        at[WIRE_COL_PTR_HI] = hi;
    } else if (aux == WIRE_FREE_EXPLICIT) {
        uint8_t *lo = at[WIRE_COL_FREE_PTR], *hi = at[WIRE_COL_FREE_HI];
        put_split(&lo, &hi, ptr_code);
        at[WIRE_COL_FREE_PTR] = lo;
        at[WIRE_COL_FREE_HI] = hi;
    }
    if (code == kind)
        at[WIRE_COL_SEQ] = wire_put_varint(at[WIRE_COL_SEQ], seq - st->last_seq);
    ptm = wire_put_varint(ptm, tcode);
    at[WIRE_COL_OP] = pop;
    at[WIRE_COL_STACK] = pst;
    at[WIRE_COL_TIME] = ptm;
    if (ptr)
        st->last_ptr = ptr;
    else if (old_ptr)
        st->last_ptr = old_ptr;
    after(e, kind, stack_id, size, seq, time_ns, gone, allocated, retired);
    return 0;
}

RANKING int trace_block_encoder_call(struct trace_block_encoder *e, unsigned kind, unsigned chunk_flags,
                                     uint32_t stack_id, uint64_t seq, uint64_t time_ns,
                                     uint64_t nmemb, uint64_t size, uint64_t old_ptr, uint64_t ptr)
{
    return call_body(e, kind, chunk_flags, stack_id, seq, time_ns, nmemb, size, old_ptr, ptr);
}

/* The two calls nearly every program makes most, each with only its own code (no kind to
 * switch on, no arguments it cannot have). */
RANKING int trace_block_encoder_malloc(struct trace_block_encoder *e, unsigned chunk_flags,
                                       uint32_t stack_id, uint64_t seq, uint64_t time_ns,
                                       uint64_t size, uint64_t ptr)
{
    return call_body(e, TRACE_EV_MALLOC, chunk_flags, stack_id, seq, time_ns, 0, size, 0, ptr);
}

RANKING int trace_block_encoder_free(struct trace_block_encoder *e, unsigned chunk_flags,
                                     uint32_t stack_id, uint64_t seq, uint64_t time_ns, uint64_t ptr)
{
    return call_body(e, TRACE_EV_FREE, chunk_flags, stack_id, seq, time_ns, 0, 0, 0, ptr);
}

/* ---- any event ---- */

/* The fields before the seq delta, in wire order, each to its class's column. */
static void put_head_fields(struct trace_block_encoder *e, const struct trace_event *ev,
                            unsigned fields, int generic)
{
    if (fields & WF(WF_STACK))
        put(e, WIRE_COL_STACK, generic ? ev->stack_id : stack_code(e, ev->kind, ev->stack_id));
    if (fields & WF(WF_THREAD)) put(e, WIRE_COL_MAIN, ev->thread);
    if (fields & WF(WF_SIZE)) {
        int ok = 1;
        put(e, WIRE_COL_SIZE, generic || !wire_kind_allocates(ev->kind)
                                  ? ev->size : size_code(e, ev->stack_id, ev->size, &ok));
    }
    if (fields & WF(WF_NMEMB)) put(e, WIRE_COL_SIZE, ev->nmemb);
    if (fields & WF(WF_ALIGNMENT)) put(e, WIRE_COL_SIZE, ev->alignment);
    if (fields & WF(WF_PARAM)) put(e, WIRE_COL_MAIN, wire_zigzag(ev->param));
    if (fields & WF(WF_VALUE)) put(e, WIRE_COL_MAIN, wire_zigzag(ev->value));
    if (fields & WF(WF_OS_TID)) put(e, WIRE_COL_MAIN, ev->os_tid);
    if (fields & WF(WF_SAMPLE)) {
        struct trace_sample s = ev->sample;
        for (unsigned i = 0; i < WIRE_SAMPLE_FIELDS; i++)
            put(e, WIRE_COL_MAIN, *wire_sample_field(&s, i));
    }
}

RANKING int trace_block_encoder_event(struct trace_block_encoder *e, const struct trace_event *ev)
{
    if (!room(e, TRACE_EVENT_MAX_BYTES))
        return -1;
    unsigned kind = ev->kind;
    unsigned present = wire_nonzero_fields(ev);
    const unsigned call_fields = WF(WF_STACK) | WF(WF_SIZE) | WF(WF_NMEMB) | WF(WF_OLD_PTR) |
                                 WF(WF_PTR) | WF(WF_TIME);
    if (!(present & ~call_fields) &&
        (kind == TRACE_EV_MALLOC || kind == TRACE_EV_CALLOC || kind == TRACE_EV_REALLOC ||
         kind == TRACE_EV_FREE || kind == TRACE_EV_VALLOC || kind == TRACE_EV_PVALLOC)) {
        int rc = trace_block_encoder_call(e, kind, ev->chunk_flags, ev->stack_id, ev->seq,
                                          ev->time_ns, ev->nmemb, ev->size, ev->old_ptr, ev->ptr);
        if (rc != -2)
            return rc;
    }
    struct trace_encode_state *st = &e->st;
    unsigned std = (kind >= 1 && kind <= WIRE_CODE_MAX_KIND) ? wire_standard_fields(kind) : 0;
    int ok = 1;
    uint64_t old_code = 0, ptr_code = 0;
    int64_t retired = -1;
    unsigned aux = ev->chunk_flags & 7;
    int standard = std != 0 && (present & ~std) == 0 && ev->time_ns >= st->last_time_ns &&
                   ev->chunk_flags <= 7;
    if (standard && kind == TRACE_EV_FREE) {
        int64_t r = live_rank(e, ev->ptr, &retired);
        if (ev->chunk_flags)
            standard = 0;
        else if (r >= 0 && r < WIRE_FREE_AUX_SLOTS)
            aux = (unsigned)r;
        else {
            aux = WIRE_FREE_EXPLICIT;
            ptr_code = live_code(e, ev->ptr, WIRE_FREE_AUX_SLOTS, r, &ok);
        }
    } else if (standard) {
        if ((std & WF(WF_SIZE)) && wire_kind_allocates(kind))
            size_code(e, ev->stack_id, ev->size, &ok);
        if (std & WF(WF_OLD_PTR)) {
            old_code = live_code(e, ev->old_ptr, 0, live_rank(e, ev->old_ptr, &retired), &ok);
            if (!ev->ptr)
                retired = -1;           /* a failed realloc leaves the old block live */
        }
        if (std & WF(WF_PTR))
            ptr_code = freed_code(e, ev->ptr, ev->old_ptr ? ev->old_ptr : st->last_ptr, &ok);
    }
    standard = standard && ok;
    if (!standard)
        retired = -1;                   /* the generic form names pointers by value */
    uint64_t gone = wire_freed_by(ev);
    uint64_t allocated = wire_kind_allocates(kind) ? ev->ptr : 0;
    if (!standard) {
        put_byte(e, WIRE_COL_OP, (uint8_t)(WIRE_CODE_GENERIC | (ev->chunk_flags & 7) << 5));
        put_byte(e, WIRE_COL_MAIN, ev->kind);
        put(e, WIRE_COL_MAIN, present);
        put(e, WIRE_COL_SEQ, ev->seq - st->last_seq);
        put_head_fields(e, ev, present, 1);
        if (present & WF(WF_OLD_PTR)) {
            put(e, WIRE_COL_PTR, ev->old_ptr);
            st->last_ptr = ev->old_ptr;
        }
        if (present & WF(WF_PTR)) {
            put(e, kind == TRACE_EV_FREE ? WIRE_COL_FREE_PTR : WIRE_COL_PTR, ev->ptr);
            st->last_ptr = ev->ptr;
        }
        if (present & WF(WF_TIME))
            put(e, WIRE_COL_TIME, wire_zigzag((int64_t)(ev->time_ns - st->last_time_ns)));
        if (present & WF(WF_RESULT)) put(e, WIRE_COL_MAIN, wire_zigzag(ev->result));
        if (present & WF(WF_ERR)) put(e, WIRE_COL_MAIN, wire_zigzag(ev->err));
        after(e, kind, ev->stack_id, ev->size, ev->seq, ev->time_ns, gone, allocated, -1);
        return 0;
    }
    unsigned code = kind;
    if (ev->seq == st->last_seq + 1 && next_code(kind))
        code = next_code(kind);
    unsigned fields = std;
    if (kind == TRACE_EV_FREE && aux != WIRE_FREE_EXPLICIT)
        fields &= ~WF(WF_PTR);
    put_byte(e, WIRE_COL_OP, (uint8_t)(code | aux << 5));
    put_head_fields(e, ev, fields, 0);
    if (code == kind)
        put(e, WIRE_COL_SEQ, ev->seq - st->last_seq);
    if (fields & WF(WF_OLD_PTR)) {
        put(e, WIRE_COL_PTR, old_code);
        if (ev->old_ptr)
            st->last_ptr = ev->old_ptr;
    }
    if (fields & WF(WF_PTR))
        put(e, kind == TRACE_EV_FREE ? WIRE_COL_FREE_PTR : WIRE_COL_PTR, ptr_code);
    if (ev->ptr && (std & WF(WF_PTR)))
        st->last_ptr = ev->ptr;
    if (fields & WF(WF_TIME))
        put_time(e, ev->stack_id, ev->time_ns);
    if (fields & WF(WF_RESULT)) put(e, WIRE_COL_MAIN, wire_zigzag(ev->result));
    after(e, kind, ev->stack_id, ev->size, ev->seq, ev->time_ns, gone, allocated, retired);
    return 0;
}

/* ---- definitions ---- */

int trace_block_encoder_stack(struct trace_block_encoder *e, uint32_t id, const uint64_t *frames,
                              unsigned depth)
{
    if (depth > TRACE_MAX_STACK_DEPTH)
        depth = TRACE_MAX_STACK_DEPTH;
    if (!room(e, TRACE_STACK_MAX_BYTES))
        return -1;
    put_byte(e, WIRE_COL_OP, WIRE_CODE_STACK);
    put(e, WIRE_COL_MAIN, id);
    put(e, WIRE_COL_MAIN, depth);
    uint64_t prev = 0;
    for (unsigned i = 0; i < depth; i++) {
        put(e, WIRE_COL_MAIN, wire_zigzag((int64_t)(frames[i] - prev)));
        prev = frames[i];
    }
    return 0;
}

int trace_block_encoder_module(struct trace_block_encoder *e, const struct trace_module *m)
{
    if (!room(e, TRACE_MODULE_MAX_BYTES))
        return -1;
    size_t path_len = strnlen(m->path, sizeof m->path - 1);
    unsigned id_len = m->build_id_len > sizeof m->build_id ? sizeof m->build_id : m->build_id_len;
    put_byte(e, WIRE_COL_OP, WIRE_CODE_MODULE);
    put(e, WIRE_COL_MAIN, m->load_address);
    put(e, WIRE_COL_MAIN, m->size);
    put(e, WIRE_COL_MAIN, path_len);
    memcpy(e->at[WIRE_COL_MAIN], m->path, path_len);
    e->at[WIRE_COL_MAIN] += path_len;
    put_byte(e, WIRE_COL_MAIN, (uint8_t)id_len);
    memcpy(e->at[WIRE_COL_MAIN], m->build_id, id_len);
    e->at[WIRE_COL_MAIN] += id_len;
    return 0;
}

/* ---- sealing ---- */

size_t trace_block_encoder_bound(const struct trace_block_encoder *e)
{
    size_t n = WIRE_BLOCK_FRAME;
    for (unsigned c = 0; c < WIRE_V2_COLUMNS; c++)
        n += colcode_bound(col_len(e, c));
    return n;
}

/* How each column is deflated: by trial, on its first bytes, every TRIAL_EVERY raw bytes. The
 * columns differ, and differ between programs: in malloc_bench's stream the times and stack codes
 * are runs (Z_RLE: a tenth of Huffman-only's cost and 100 times smaller) and the pointer and size
 * bytes close to random (Huffman-only; the freed pointers' first bytes not even that: stored);
 * in perl's, opcodes, stack codes and pointers repeat as strings (level 1's string search: 5 to
 * 7 times smaller than Huffman-only there, and cheaper, since a match skips its bytes); in
 * python's nearly every column does. A first block (a program starting) can be too small to
 * tell: a larger one is tried again. The way
 * that gives the fewest bytes wins, the earlier (cheaper on bytes that are not runs) on a tie
 * (within 1/64); a sample that is all one value goes to Z_RLE; storing wins unless deflate saves
 * 1/64 of the bytes (malloc_bench's freed pointers' first bytes: Huffman saves 2.7%, ~0.013
 * bytes per event, and our Huffman-only writer costs ~1.5 ns per byte). */
static void choose_ways(struct trace_block_encoder *e)
{
    static const int ways[3] = {Z_HUFFMAN_ONLY, Z_RLE, Z_DEFAULT_STRATEGY};
    uint8_t *scratch = e->zmem + ZLIB_STATE;
    for (unsigned c = 0; c < WIRE_V2_COLUMNS; c++) {
        size_t n = col_len(e, c) < TRIAL_SAMPLE ? col_len(e, c) : TRIAL_SAMPLE;
        size_t best = n - n / 64, got;
        e->zway[c] = STORE_IT;
        if (n < 64) {
            e->zway[c] = Z_RLE;             /* too little to tell: the cheap way */
            continue;
        }
        for (unsigned w = 0; w < 3; w++) {
            got = colcode_deflate(scratch, TRIAL_BYTES, e->col[c], n, &e->zs, ways[w]);
            if (scratch[0] == COLCODE_RUN) {
                e->zway[c] = Z_RLE;         /* one value so far: runs are Z_RLE's */
                break;
            }
            /* against storing: any saving past 1/64; against an earlier way: 1/64 more */
            if (e->zway[c] == STORE_IT ? got < best : got + got / 64 < best) {
                best = got;
                e->zway[c] = ways[w];
            }
        }
    }
}

size_t trace_block_encoder_seal(struct trace_block_encoder *e, uint8_t *out, size_t out_cap)
{
    size_t raw = WIRE_V2_COLUMNS * 4 + trace_block_encoder_raw(e);
    if (col_len(e, WIRE_COL_OP) == 0 || out_cap < trace_block_encoder_bound(e) ||
        raw > TRACE_BLOCK_MAX_RAW + WIRE_V2_COLUMNS * 4)
        return 0;
    uint8_t *p = out + WIRE_BLOCK_FRAME;
    int method = e->method;
    if (method == TRACE_BLOCK_ZLIB && !zlib_ready(e))
        method = TRACE_BLOCK_RANS;
    if (method == TRACE_BLOCK_ZLIB) {
        e->since_trial += raw;
        if (e->since_trial >= TRIAL_EVERY || (e->trial_raw < TRIAL_FULL && raw >= 2 * e->trial_raw)) {
            choose_ways(e);
            e->since_trial = 0;
            e->trial_raw = raw;
        }
    }
    for (unsigned c = 0; c < WIRE_V2_COLUMNS; c++) {
        size_t n = col_len(e, c), cap = colcode_bound(n);
        if (method == TRACE_BLOCK_ZLIB && e->zway[c] == STORE_IT)
            p += colcode_store(p, cap, e->col[c], n);
        else if (method == TRACE_BLOCK_ZLIB)
            p += colcode_deflate(p, cap, e->col[c], n, &e->zs, e->zway[c]);
        else if (method == TRACE_BLOCK_RANS)
            p += colcode_encode(p, cap, e->col[c], n);
        else
            p += colcode_store(p, cap, e->col[c], n);
    }
    size_t payload = (size_t)(p - (out + WIRE_BLOCK_FRAME));
    memcpy(out, WIRE_V2_BLOCK_TAG, 4);
    wire_put32(out + 4, (uint32_t)payload);
    wire_put32(out + 8, (uint32_t)raw);
    wire_put32(out + 12, e->thread);
    wire_put64(out + 16, e->events ? e->first_seq : 0);
    wire_put64(out + 24, e->events ? e->last_seq : 0);
    wire_put32(out + 32, (uint32_t)crc32(0, out + WIRE_BLOCK_FRAME, (uInt)payload));
    wire_put32(out + 36, (uint32_t)crc32(0, out, 36));
    trace_block_encoder_begin(e, e->thread);
    return WIRE_BLOCK_FRAME + payload;
}
