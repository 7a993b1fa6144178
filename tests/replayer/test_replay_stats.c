/* test_replay_stats.c: the statistics a step callback gets are the model's, after every step.
 *
 * The replayer keeps the totals of struct ptmalloc_stats from per-arena figures, reading again
 * only the arenas a step touched (replay.c: struct step_stats). Here every step's s->stats is
 * compared, field by field, with ptmalloc_stats(pm, -1) computed from scratch, on traces where
 * a step changes arenas it does not name: the corpus's multi-threaded programs (as recorded,
 * with --arenas recorded and --frees late), and synthetic traces with threads freeing and
 * reallocating each other's blocks (into their own tcaches), taking them back out of the tcache,
 * memalign, mmapped blocks, a failed allocation, malloc_trim, mallopt, thread exits and arena
 * reuse (arena_max=2), with 64 MiB heaps and with glibc.malloc.hugetlb=2's smaller ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include "replay.h"
#include "trace_fixture.h"

#define HEAP 0x555555559000ull

struct compare {
    uint64_t steps, arenas_max, mismatches;
    char first[256];
};

static void check_field(struct compare *c, uint64_t step, const char *name, uint64_t got,
                        uint64_t want)
{
    if (got == want)
        return;
    if (!c->mismatches++)
        snprintf(c->first, sizeof c->first, "step %llu: %s is %llu, the model says %llu",
                 (unsigned long long)step, name, (unsigned long long)got,
                 (unsigned long long)want);
}

static int compare_step(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    struct compare *c = ctx;
    struct ptmalloc_stats w;
    ptmalloc_stats(pm, -1, &w);
    const struct ptmalloc_stats *g = &s->stats;
#define F(f) check_field(c, s->step, #f, g->f, w.f)
    F(system_bytes);
    F(in_use_bytes);
    F(in_use_count);
    F(top_bytes);
    F(tcache_count);
    F(tcache_bytes);
    F(fastbin_count);
    F(fastbin_bytes);
    F(unsorted_count);
    F(unsorted_bytes);
    F(small_count);
    F(small_bytes);
    F(large_count);
    F(large_bytes);
    F(largest_free);
    F(mmapped_count);
    F(mmapped_bytes);
    F(resident_bytes);
    F(mmapped_resident_bytes);
    F(arena_count);
#undef F
    check_field(c, s->step, "held_bytes", s->held_bytes, w.system_bytes + w.mmapped_bytes);
    c->steps++;
    if (w.arena_count > c->arenas_max)
        c->arenas_max = w.arena_count;
    return 0;
}

/* Replays `path` comparing every step; returns the largest arena count seen. */
static uint64_t replay_compare(const char *path, enum replay_arenas arenas,
                               enum replay_free_order frees, const char *set)
{
    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = path;
    o.arenas = arenas;
    o.free_order = frees;
    if (set) {
        o.set[0] = set;
        o.set_count = 1;
    }
    struct compare c;
    memset(&c, 0, sizeof c);
    struct replay_summary sum;
    char err[512];
    int rc = replay_run(&o, compare_step, &c, &sum, NULL, err, sizeof err);
    if (rc)
        fail_msg("%s: %s", path, err);
    if (c.mismatches)
        fail_msg("%s: %llu differences, the first: %s", path, (unsigned long long)c.mismatches,
                 c.first);
    assert_true(sum.completed);
    assert_int_equal(c.steps, sum.steps);
    return c.arenas_max;
}

static void test_corpus_traces(void **state)
{
    (void)state;
    static const char *names[] = {"arena-explosion", "thread-churn", "producer-consumer",
                                  "hoarding", "mmap-ratchet", "aligned-gaps", "4000-blocks"};
    uint64_t most = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/traces/%s.fstrace", SOURCE_DIR, names[i]);
        uint64_t a = replay_compare(path, REPLAY_ARENAS_SERIAL, REPLAY_FREES_RECORDED, NULL);
        if (a > most)
            most = a;
        replay_compare(path, REPLAY_ARENAS_RECORDED, REPLAY_FREES_LATE, NULL);
    }
    assert_true(most >= 4);   /* the comparison saw several arenas */
}

/* ---- synthetic: threads trading blocks ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define SLOTS 512
#define FAKE(id) (0x10000000ull + (uint64_t)(id) * 0x100)

/* Threads 1..8 (started and exited in turn, new indices for new threads) allocate into a shared
 * table and free or realloc any slot, whoever allocated it. */
static void write_trading(struct fixture_trace *t, uint64_t events)
{
    static uint64_t slot[SLOTS];
    memset(slot, 0, sizeof slot);
    uint64_t next_id = 1;
    uint32_t threads[4] = {0, 1, 2, 3}, next_thread = 4;
    for (uint32_t i = 1; i < 4; i++)
        fixture_event(t, (struct trace_event){.kind = TRACE_EV_THREAD_START, .thread = i});
    for (uint64_t n = 0; n < events; n++) {
        uint64_t r = rnd();
        uint32_t th = threads[r % 4];
        unsigned k = (unsigned)((r >> 8) % SLOTS);
        unsigned what = (unsigned)((r >> 20) % 1000);
        if (what < 4 && th) {
            /* the thread exits (its tcache goes back to the arenas); a new one takes its place */
            fixture_event(t, (struct trace_event){.kind = TRACE_EV_THREAD_EXIT, .thread = th});
            uint32_t nt = next_thread++;
            fixture_event(t, (struct trace_event){.kind = TRACE_EV_THREAD_START, .thread = nt});
            threads[r % 4] = nt;
        } else if (what < 6) {
            fixture_event(t, (struct trace_event){.kind = TRACE_EV_MALLOC_TRIM, .thread = th,
                                                  .size = (r >> 40) % 2 ? 0 : 65536});
        } else if (what < 7) {
            fixture_event(t, (struct trace_event){.kind = TRACE_EV_MALLOPT, .thread = th,
                                                  .param = PTM_M_MXFAST,
                                                  .value = (r >> 40) % 2 ? 64 : 128});
        } else if (what < 8) {
            /* fails in the model as it did in the program */
            fixture_event(t, (struct trace_event){.kind = TRACE_EV_MALLOC, .thread = th,
                                                  .size = 1ull << 46, .ptr = 0, .err = 12});
        } else if (slot[k] && what < 300) {
            fixture_free(t, th, slot[k], 0);
            slot[k] = 0;
        } else if (slot[k] && what < 400) {
            uint64_t id = FAKE(next_id++);
            uint64_t size = 16 + (r >> 32) % 3000;
            fixture_event(t, (struct trace_event){.kind = TRACE_EV_REALLOC, .thread = th,
                                                  .old_ptr = slot[k], .size = size, .ptr = id,
                                                  .chunk_flags = TRACE_CHUNK_PREV_INUSE});
            slot[k] = id;
        } else if (!slot[k]) {
            uint64_t id = FAKE(next_id++);
            uint64_t size = (r >> 32) % 8 ? 8 + (r >> 36) % 200 : 200 + (r >> 36) % 5000;
            if ((r >> 50) % 64 == 0)
                size = 140000 + (r >> 36) % 200000;   /* mmapped */
            if ((r >> 56) % 32 == 0)
                fixture_event(t, (struct trace_event){.kind = TRACE_EV_MEMALIGN, .thread = th,
                                                      .alignment = 256, .size = size, .ptr = id,
                                                      .chunk_flags = TRACE_CHUNK_PREV_INUSE});
            else
                fixture_malloc(t, th, size, id);
            slot[k] = id;
        }
    }
}

static void test_threads_trading_blocks(void **state)
{
    (void)state;
    static const char *sets[] = {NULL, "arena_max=2", "hugetlb=2", "tcache_count=0"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        struct fixture_trace t;
        char name[64];
        snprintf(name, sizeof name, "trading-%zu.fstrace", i);
        assert_int_equal(fixture_open(&t, name, HEAP, "", 2), 0);
        write_trading(&t, 30000);
        assert_int_equal(fixture_close(&t), 0);
        uint64_t a = replay_compare(t.path, REPLAY_ARENAS_SERIAL, REPLAY_FREES_RECORDED, sets[i]);
        assert_true(a >= 2);
        replay_compare(t.path, REPLAY_ARENAS_SERIAL, REPLAY_FREES_LATE, sets[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_traces),
        cmocka_unit_test(test_threads_trading_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
