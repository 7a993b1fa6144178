/* test_trace_roundtrip.c: events written through the encoder, sealed into blocks and read back
 * come out identical and in seq order: random streams of every kind over several interleaved
 * threads with stacks and modules, the raw encoder API with a caller-owned zlib pool, the
 * worst-case event size, the merge's lookahead and gaps, and the bytes per event of a realistic
 * stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "tracegen.h"

/* Reads path and checks that it holds exactly g's events in seq order, with g's stacks. */
static void check_file(const struct gen_stream *g, const char *path, uint64_t *blocks)
{
    char err[512];
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    if (!r)
        fprintf(stderr, "%s\n", err);
    assert_non_null(r);
    const struct trace_header *h = trace_reader_header(r);
    assert_int_equal(h->pid, 4242);
    assert_int_equal(h->page_size, 4096);
    assert_string_equal(h->glibc_version, "2.36");
    assert_string_equal(h->exe, "/usr/bin/example");
    assert_string_equal(h->argv, "example\n--flag");
    assert_string_equal(h->malloc_env, "MALLOC_ARENA_MAX=2");
    assert_true(h->heap_start == 0x555555559000ull);
    assert_true(h->start_time_ns == 1700000000123456789ull);

    const struct trace_event **want = gen_sorted_events(g);
    const struct gen_item **defs = calloc(g->stacks + 1, sizeof *defs);
    for (size_t i = 0; i < g->count; i++)
        if (g->items[i].type == GEN_STACK && g->items[i].stack_id <= g->stacks)
            defs[g->items[i].stack_id] = &g->items[i];
    struct trace_event ev;
    size_t n = 0;
    int rc;
    while ((rc = trace_reader_next(r, &ev)) == 1) {
        assert_true(n < g->events);
        if (!gen_event_equal(want[n], &ev)) {
            gen_event_diff(want[n], &ev);
            fail();
        }
        if (ev.stack_id) {
            /* Find the definition in the stream and compare frames. */
            const uint64_t *frames;
            unsigned depth = trace_reader_stack(r, ev.stack_id, &frames);
            assert_true(ev.stack_id <= g->stacks);
            const struct gen_item *it = defs[ev.stack_id];
            assert_non_null(it);
            assert_int_equal(depth, it->depth);
            if (depth)
                assert_memory_equal(frames, it->frames, depth * sizeof *frames);
        }
        n++;
    }
    struct trace_reader_status st;
    trace_reader_status(r, &st);
    if (rc != 0 || !st.clean_end)
        fprintf(stderr, "stopped at %llu: %s\n", (unsigned long long)st.stop_offset, st.reason);
    assert_int_equal(rc, 0);
    assert_int_equal(n, g->events);
    assert_true(st.clean_end);
    assert_int_equal(st.events, g->events);
    assert_int_equal(st.seq_gaps, 0);
    assert_int_equal(st.damaged, 0);
    /* Modules, in the order they were written. */
    size_t m = 0;
    for (size_t i = 0; i < g->count; i++) {
        const struct gen_item *it = &g->items[i];
        if (it->type != GEN_MODULE)
            continue;
        const struct trace_module *got = trace_reader_module(r, m++);
        assert_non_null(got);
        assert_true(got->load_address == it->module->load_address);
        assert_true(got->size == it->module->size);
        assert_string_equal(got->path, it->module->path);
        assert_int_equal(got->build_id_len, it->module->build_id_len);
        assert_memory_equal(got->build_id, it->module->build_id, it->module->build_id_len);
        assert_ptr_equal(trace_reader_module_at(r, it->module->load_address + 5), got);
    }
    assert_int_equal(trace_reader_module_count(r), m);
    if (blocks)
        *blocks = st.blocks;
    trace_reader_close(r);
    free(want);
    free(defs);
}

static void random_streams_round_trip(void **state)
{
    (void)state;
    char path[512];
    gen_tmppath(path, sizeof path, "roundtrip.trace");
    for (uint64_t seed = 1; seed <= 12; seed++) {
        struct gen_stream g;
        unsigned threads = 1 + (unsigned)(seed % 6);
        gen_random_stream(&g, seed, 3000, threads);
        /* Tiny blocks and frequent flushes interleave the threads' blocks heavily; big ones
         * make a few large blocks. */
        uint64_t blocks;
        gen_write(&g, path, seed % 2 ? 200 : 1 << 20, seed % 3 ? 37 : 0);
        check_file(&g, path, &blocks);
        if (seed % 2)
            assert_true(blocks > 20);
        gen_free(&g);
    }
    unlink(path);
}

/* ---- The raw encoder API, as the recorder uses it ---- */

static uint8_t pool[1 << 20];
static size_t pool_used;
static int pool_calls;

static void *pool_alloc(void *opaque, unsigned items, unsigned size)
{
    (void)opaque;
    size_t n = ((size_t)items * size + 15) & ~(size_t)15;
    if (pool_used + n > sizeof pool)
        return NULL;
    pool_calls++;
    void *p = pool + pool_used;
    pool_used += n;
    return p;
}

static void pool_free(void *opaque, void *p)
{
    (void)opaque;
    (void)p;
}

static void encoder_api_with_caller_pool(void **state)
{
    (void)state;
    static uint8_t file[1 << 16], raw[1 << 14];
    size_t off = 0, len = 0;
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.pid = 7;
    h.first_seq = 10;
    snprintf(h.exe, sizeof h.exe, "/bin/true");
    assert_int_equal(trace_encode_header(file, 8, &h), 0);       /* too small */
    off = trace_encode_header(file, sizeof file, &h);
    assert_true(off > 16 && off <= trace_header_bound(&h));

    struct trace_encode_state st;
    trace_encode_state_reset(&st);
    uint64_t frames[3] = {0x401000, 0x401200, 0x7f0000001000};
    assert_int_equal(trace_encode_stack(raw, 4, 1, frames, 3), 0); /* too small */
    len += trace_encode_stack(raw + len, sizeof raw - len, 1, frames, 3);
    struct trace_event ev[4];
    memset(ev, 0, sizeof ev);
    ev[0] = (struct trace_event){.seq = 10, .time_ns = 100, .kind = TRACE_EV_MALLOC, .size = 24,
                                 .ptr = 0x5555555592a0, .stack_id = 1, .chunk_flags = 1};
    ev[1] = (struct trace_event){.seq = 11, .time_ns = 150, .kind = TRACE_EV_FREE, .ptr = 0x5555555592a0, .stack_id = 1};
    ev[2] = (struct trace_event){.seq = 13, .time_ns = 190, .kind = TRACE_EV_MALLOC, .size = 1ull << 40, .err = 12};
    ev[3] = (struct trace_event){.seq = 14, .time_ns = 200, .kind = TRACE_EV_FREE};
    for (int i = 0; i < 4; i++) {
        size_t n = trace_encode_event(raw + len, &ev[i], &st);
        assert_true(n > 0 && n <= TRACE_EVENT_MAX_BYTES);
        len += n;
    }
    /* The common malloc/free pair is small: opcode, stack, size, time, pointer. */
    assert_true(len < 64);
    struct trace_zalloc za = {pool_alloc, pool_free, NULL};
    assert_int_equal(trace_block_seal(file + off, sizeof file - off, raw, len, 0, 10, 14, NULL), 0);
    size_t n = trace_block_seal(file + off, sizeof file - off, raw, len, 0, 10, 14, &za);
    assert_true(n > 40 && n <= trace_block_bound(len));
    assert_true(pool_calls > 0);
    off += n;
    /* A second thread's block holding seq 12 comes later in the file. */
    trace_encode_state_reset(&st);
    struct trace_event ev12 = {.seq = 12, .time_ns = 170, .thread = 1, .kind = TRACE_EV_MALLOC_TRIM, .result = 1};
    len = trace_encode_event(raw, &ev12, &st);
    off += trace_block_seal(file + off, sizeof file - off, raw, len, 1, 12, 12, &za);
    assert_int_equal(trace_encode_end(file + off, 10, 2, 15), 0);
    off += trace_encode_end(file + off, sizeof file - off, 2, 15);

    char path[512], err[512];
    gen_tmppath(path, sizeof path, "api.trace");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(file, 1, off, f), off);
    fclose(f);
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    assert_non_null(r);
    struct trace_event got;
    uint64_t want_seq[] = {10, 11, 12, 13, 14};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(trace_reader_next(r, &got), 1);
        assert_int_equal(got.seq, want_seq[i]);
        if (want_seq[i] == 12) {
            assert_true(gen_event_equal(&got, &ev12));
        } else {
            const struct trace_event *w = &ev[i < 2 ? i : i - 1];
            if (!gen_event_equal(w, &got))
                gen_event_diff(w, &got);
            assert_true(gen_event_equal(w, &got));
        }
    }
    const uint64_t *fr;
    assert_int_equal(trace_reader_stack(r, 1, &fr), 3);
    assert_memory_equal(fr, frames, sizeof frames);
    assert_int_equal(trace_reader_stack(r, 2, &fr), 0);
    assert_int_equal(trace_reader_next(r, &got), 0);
    struct trace_reader_status rs;
    trace_reader_status(r, &rs);
    assert_true(rs.clean_end);
    assert_int_equal(rs.blocks, 2);
    assert_int_equal(rs.events, 5);
    assert_int_equal(rs.seq_gaps, 0);
    assert_int_equal(rs.stop_offset, off);
    trace_reader_close(r);
    unlink(path);
}

static void worst_case_event_fits(void **state)
{
    (void)state;
    uint8_t out[TRACE_EVENT_MAX_BYTES + 64];
    struct trace_event ev;
    memset(&ev, 0xff, sizeof ev);
    ev.kind = TRACE_EV_SAMPLE;
    ev.err = INT32_MIN;
    ev.param = INT64_MIN;
    ev.value = INT64_MIN;
    ev.result = INT64_MIN;
    for (unsigned kind = 0; kind < 256; kind++) {
        struct trace_encode_state st;
        memset(&st, 0, sizeof st);
        st.last_time_ns = 1;
        ev.kind = (uint8_t)kind;
        size_t n = trace_encode_event(out, &ev, &st);
        assert_true(n > 0 && n <= TRACE_EVENT_MAX_BYTES);
    }
    uint8_t stack[TRACE_STACK_MAX_BYTES];
    uint64_t frames[TRACE_MAX_STACK_DEPTH + 10];
    for (unsigned i = 0; i < TRACE_MAX_STACK_DEPTH + 10; i++)
        frames[i] = i % 2 ? 0 : UINT64_MAX;
    assert_true(trace_encode_stack(stack, sizeof stack, UINT32_MAX, frames, TRACE_MAX_STACK_DEPTH + 10) > 0);
    struct trace_module m;
    memset(&m, 0xff, sizeof m);
    uint8_t mod[TRACE_MODULE_MAX_BYTES];
    assert_true(trace_encode_module(mod, sizeof mod, &m) > 0);
}

/* ---- Merging: gaps and the lookahead window ---- */

static void write_two_thread_file(const char *path, int late_block)
{
    /* thread 0: seqs 0 1 2 4 6; thread 1: seq 3 (written after all of thread 0's). 5 is
     * missing. */
    struct gen_stream g;
    memset(&g, 0, sizeof g);
    g.cap = 16;
    g.items = calloc(g.cap, sizeof *g.items);
    uint64_t seqs[] = {0, 1, 2, 4, 6, 3};
    for (int i = 0; i < 6; i++) {
        struct gen_item *it = &g.items[g.count++];
        it->type = GEN_EVENT;
        it->thread = i == 5 ? 1 : 0;
        it->ev = (struct trace_event){.seq = seqs[i], .time_ns = 10 * seqs[i], .thread = it->thread,
                                      .kind = TRACE_EV_MALLOC, .size = 16, .ptr = 0x1000 + 32 * seqs[i]};
        g.events++;
    }
    (void)late_block;
    gen_write(&g, path, 1 << 20, 0);
    gen_free(&g);
}

static void merge_counts_gaps_and_bounds_lookahead(void **state)
{
    (void)state;
    char path[512], err[512];
    gen_tmppath(path, sizeof path, "merge.trace");
    write_two_thread_file(path, 1);
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    assert_non_null(r);
    struct trace_event ev;
    uint64_t want[] = {0, 1, 2, 3, 4, 6};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(trace_reader_next(r, &ev), 1);
        assert_int_equal(ev.seq, want[i]);
        assert_int_equal(ev.thread, want[i] == 3 ? 1 : 0);
    }
    assert_int_equal(trace_reader_next(r, &ev), 0);
    struct trace_reader_status st;
    trace_reader_status(r, &st);
    assert_true(st.clean_end);
    assert_int_equal(st.seq_gaps, 1);
    trace_reader_close(r);

    /* With a one-byte window the reader cannot wait for thread 1's block: it gives up on seq
     * 3, delivers 4 and then reports the late block as out of order, with its offset. */
    r = trace_reader_open(path, err, sizeof err);
    assert_non_null(r);
    trace_reader_set_lookahead(r, 1);
    int rc;
    int n = 0;
    while ((rc = trace_reader_next(r, &ev)) == 1)
        n++;
    assert_int_equal(rc, -1);
    assert_int_equal(n, 5);
    trace_reader_status(r, &st);
    assert_false(st.clean_end);
    assert_true(st.damaged);
    assert_non_null(strstr(st.reason, "out of order"));
    assert_non_null(strstr(st.reason, "offset"));
    trace_reader_close(r);
    unlink(path);
}

/* A stack used in one thread's block and defined in another thread's block that the file holds
 * later (each stack defined once per process, in whichever thread used it first) is known by
 * the time the event using it is delivered. */
static void stack_defined_in_a_later_block(void **state)
{
    (void)state;
    static uint8_t file[1 << 14], raw[4096];
    struct trace_header h;
    memset(&h, 0, sizeof h);
    size_t off = trace_encode_header(file, sizeof file, &h);
    struct trace_zalloc za = {pool_alloc, pool_free, NULL};
    struct trace_encode_state st;
    uint64_t frames[2] = {0x401000, 0x402000};
    /* Thread 1's block: seq 0 uses stack 5. Thread 0's block, later in the file: defines 5
     * (thread 0 used it first, in the recorder's eyes), then seqs 1 and 2. */
    trace_encode_state_reset(&st);
    struct trace_event e1 = {.seq = 0, .thread = 1, .kind = TRACE_EV_MALLOC, .size = 8, .ptr = 0x1000, .stack_id = 5};
    size_t len = trace_encode_event(raw, &e1, &st);
    pool_used = 0;
    off += trace_block_seal(file + off, sizeof file - off, raw, len, 1, 0, 0, &za);
    trace_encode_state_reset(&st);
    len = trace_encode_stack(raw, sizeof raw, 5, frames, 2);
    struct trace_event e0 = {.seq = 1, .kind = TRACE_EV_MALLOC, .size = 8, .ptr = 0x2000, .stack_id = 5};
    struct trace_event e2 = {.seq = 2, .kind = TRACE_EV_FREE, .ptr = 0x2000, .stack_id = 5};
    len += trace_encode_event(raw + len, &e0, &st);
    len += trace_encode_event(raw + len, &e2, &st);
    pool_used = 0;
    off += trace_block_seal(file + off, sizeof file - off, raw, len, 0, 1, 2, &za);
    off += trace_encode_end(file + off, sizeof file - off, 2, 3);
    char path[512], err[512];
    gen_tmppath(path, sizeof path, "late-stack.trace");
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite(file, 1, off, f), off);
    fclose(f);
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    assert_non_null(r);
    struct trace_event ev;
    for (uint64_t seq = 0; seq < 3; seq++) {
        assert_int_equal(trace_reader_next(r, &ev), 1);
        assert_int_equal(ev.seq, seq);
        const uint64_t *fr;
        assert_int_equal(trace_reader_stack(r, 5, &fr), 2);
        assert_memory_equal(fr, frames, sizeof frames);
    }
    assert_int_equal(trace_reader_next(r, &ev), 0);
    trace_reader_close(r);
    unlink(path);
}

/* ---- Size ---- */

static void realistic_stream_bytes_per_event(void **state)
{
    (void)state;
    char path[512];
    gen_tmppath(path, sizeof path, "size.trace");
#ifdef __SANITIZE_ADDRESS__
    const size_t events = 50000;
#else
    const size_t events = 200000;
#endif
    for (unsigned threads = 1; threads <= 4; threads += 3) {
        struct gen_stream g;
        gen_realistic_stream(&g, 99, events, threads);
        /* Blocks of up to 1 MiB of records, as the recorder makes them, and every thread's
         * block sealed at least every 64 Ki events; then 64 KiB blocks, to show the cost of
         * small ones. */
        uint64_t small = gen_write(&g, path, 64 << 10, 1 << 15);
        printf("realistic malloc/free stream, %u thread(s), %zu events, %u stacks, 64 KiB blocks: "
               "%.3f bytes/event\n", threads, events, g.stacks, (double)small / (double)events);
        uint64_t bytes = gen_write(&g, path, 1 << 20, 1 << 16);
        double bpe = (double)bytes / (double)events;
        printf("realistic malloc/free stream, %u thread(s), %zu events, %u stacks, 1 MiB blocks: "
               "%llu bytes, %.3f bytes/event\n", threads, events, g.stacks, (unsigned long long)bytes, bpe);
        check_file(&g, path, NULL);
#ifndef __SANITIZE_ADDRESS__
        /* A regression guard, not the target (see FORMAT.md, "Size"). Under ASan the pointers
         * come from ASan's allocator and compress differently. */
        assert_true(bpe <= (threads == 1 ? 3.6 : 5.0));
#endif
        gen_free(&g);
    }
    unlink(path);
}

/* ---- Memory: the reader streams ---- */

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void reader_memory_is_bounded(void **state)
{
    (void)state;
    char path[512], err[512];
    gen_tmppath(path, sizeof path, "long.trace");
    unlink(path);
    struct trace_header h;
    memset(&h, 0, sizeof h);
    struct trace_file_writer *w = trace_file_writer_open(path, 0, &h, err, sizeof err);
    assert_non_null(w);
    const uint64_t n = 1000000;
    uint64_t s = 1;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t t = (uint32_t)(gen_rand(&s) % 4);
        struct trace_event ev = {.seq = i, .time_ns = i * 100, .thread = t,
                                 .kind = i % 2 ? TRACE_EV_FREE : TRACE_EV_MALLOC,
                                 .size = 16 + gen_rand(&s) % 512,
                                 .ptr = 0x555555559000 + 16 * (gen_rand(&s) % 100000)};
        assert_int_equal(trace_file_writer_event(w, &ev), 0);
    }
    assert_int_equal(trace_file_writer_close(w, err, sizeof err), 0);
    long before = max_rss_kib();
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    assert_non_null(r);
    struct trace_event ev;
    uint64_t count = 0, last = 0;
    while (trace_reader_next(r, &ev) == 1) {
        assert_true(count == 0 || ev.seq == last + 1);
        last = ev.seq;
        count++;
    }
    assert_int_equal(count, n);
    trace_reader_close(r);
    long grown = max_rss_kib() - before;
    printf("reading %llu events (%zu MiB as structs) grew the peak RSS by %ld KiB\n",
           (unsigned long long)n, (size_t)(n * sizeof ev >> 20), grown);
#ifndef __SANITIZE_ADDRESS__
    assert_true(grown < 32 * 1024);
#endif
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reader_memory_is_bounded),     /* first: before the others raise the peak */
        cmocka_unit_test(random_streams_round_trip),
        cmocka_unit_test(encoder_api_with_caller_pool),
        cmocka_unit_test(worst_case_event_fits),
        cmocka_unit_test(merge_counts_gaps_and_bounds_lookahead),
        cmocka_unit_test(stack_defined_in_a_later_block),
        cmocka_unit_test(realistic_stream_bytes_per_event),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(gen_tmpdir());
    return rc;
}
