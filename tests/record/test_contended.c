/* test_contended.c: threads that share arenas at the same time are recorded in the order they
 * really used them.
 *
 * tests/support's mt_workload (profile contended) runs 4 busy threads (and replacements for the 2
 * that exit early) under MALLOC_ARENA_MAX=2, so two threads at a time take turns at each arena's
 * lock, and frees cross arenas. Each of several recordings must (1) be a consistent stream - no address handed out
 * again while still live, no free of a pointer that is not live - and (2) replay through the
 * model with `fragscope replay --verify --arenas recorded` at >= 99.9% of allocations at the
 * recorded address: a single call numbered out of turn sends the model's arena down another
 * path, and the match rate with it. (Recorders that numbered a free before the real call, or
 * any call after glibc's unlock without our arena locks, diverged in a third of the runs.)
 *
 * Label nosan: the recorder is preloaded into an uninstrumented program.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "trace_format.h"
#include "test_support.h"

#define RECORDINGS 4

static char tmpdir[256];

/* An open-addressing set of live pointers (0 = empty, 1 = deleted). */
struct live_set {
    uint64_t *k;
    size_t cap, used;
};

static size_t live_slot(const struct live_set *s, uint64_t p, int for_insert)
{
    size_t i = (size_t)((p * 0x9E3779B97F4A7C15ull) >> 24) & (s->cap - 1);
    size_t tomb = SIZE_MAX;
    while (s->k[i] && s->k[i] != p) {
        if (s->k[i] == 1 && tomb == SIZE_MAX)
            tomb = i;
        i = (i + 1) & (s->cap - 1);
    }
    return for_insert && !s->k[i] && tomb != SIZE_MAX ? tomb : i;
}

static int live_has(const struct live_set *s, uint64_t p)
{
    return s->k[live_slot(s, p, 0)] == p;
}

static void live_add(struct live_set *s, uint64_t p)
{
    if (2 * (s->used + 1) > s->cap) {
        struct live_set t = {calloc(s->cap * 2, 8), s->cap * 2, 0};
        assert_non_null(t.k);
        for (size_t i = 0; i < s->cap; i++)
            if (s->k[i] > 1)
                live_add(&t, s->k[i]);
        free(s->k);
        *s = t;
    }
    size_t i = live_slot(s, p, 1);
    if (s->k[i] != p) {
        if (!s->k[i])
            s->used++;
        s->k[i] = p;
    }
}

static void live_del(struct live_set *s, uint64_t p)
{
    size_t i = live_slot(s, p, 0);
    if (s->k[i] == p)
        s->k[i] = 1;
}

static int allocates(unsigned kind)
{
    return kind == TRACE_EV_MALLOC || kind == TRACE_EV_CALLOC || kind == TRACE_EV_REALLOC ||
           kind == TRACE_EV_REALLOCARRAY || kind == TRACE_EV_MEMALIGN ||
           kind == TRACE_EV_POSIX_MEMALIGN || kind == TRACE_EV_ALIGNED_ALLOC ||
           kind == TRACE_EV_VALLOC || kind == TRACE_EV_PVALLOC;
}

/* Every free (and realloc that moved) names a live pointer; no allocation returns one. */
static void check_consistent(const char *path, unsigned *threads)
{
    char err[512];
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    struct live_set live = {calloc(4096, 8), 4096, 0};
    struct trace_event e;
    unsigned long events = 0, reused_live = 0, unknown_frees = 0;
    *threads = 0;
    int rc;
    while ((rc = trace_reader_next(r, &e)) == 1) {
        events++;
        *threads += e.kind == TRACE_EV_THREAD_START;
        uint64_t gone = 0;
        if (e.kind == TRACE_EV_FREE)
            gone = e.ptr;
        else if ((e.kind == TRACE_EV_REALLOC || e.kind == TRACE_EV_REALLOCARRAY) && e.old_ptr &&
                 (e.ptr != e.old_ptr || (!e.ptr && e.size == 0)))
            gone = e.old_ptr;
        if (gone) {
            if (live_has(&live, gone))
                live_del(&live, gone);
            else
                unknown_frees++;
        }
        if (allocates(e.kind) && e.ptr) {
            if (e.ptr != e.old_ptr && live_has(&live, e.ptr))
                reused_live++;
            live_add(&live, e.ptr);
        }
    }
    struct trace_reader_status st;
    trace_reader_status(r, &st);
    trace_reader_close(r);
    free(live.k);
    assert_int_equal(rc, 0);
    assert_true(st.clean_end);
    assert_int_equal(st.seq_gaps, 0);
    print_message("  %lu events, %u threads: %lu addresses returned while live, %lu frees of "
                  "pointers not live\n", events, *threads, reused_live, unknown_frees);
    assert_true(events > 100000);
    assert_int_equal(reused_live, 0);
    assert_int_equal(unknown_frees, 0);
}

static void contended_arenas_replay_in_order(void **state)
{
    (void)state;
    for (int i = 0; i < RECORDINGS; i++) {
        char trace[512], cmd[2048];
        static char out[1 << 16];
        snprintf(trace, sizeof trace, "%s/contended.%d.fstrace", tmpdir, i);
        snprintf(cmd, sizeof cmd,
                 "MALLOC_ARENA_MAX=2 '%s' record -q -o '%s' -- '%s' contended 4 20000 >/dev/null 2>&1",
                 FRAGSCOPE_BIN, trace, MT_WORKLOAD);
        assert_int_equal(ts_shell(cmd, out, sizeof out), 0);
        print_message("recording %d:\n", i + 1);
        unsigned threads;
        check_consistent(trace, &threads);
        assert_int_equal(threads, 7);       /* main, 4 workers, 2 replacements */
        snprintf(cmd, sizeof cmd,
                 "'%s' replay '%s' --no-progress --verify --arenas recorded 2>&1",
                 FRAGSCOPE_BIN, trace);
        int st = ts_shell(cmd, out, sizeof out);
        const char *v = strstr(out, "\nverify ");
        double rate = -1;
        assert_non_null(v);
        assert_int_equal(sscanf(v + 8, " %lf%%", &rate), 1);
        print_message("  replay --verify --arenas recorded: %.2f%% of allocations match\n", rate);
        if (st != 0 || rate < 99.9)
            fail_msg("recording %d: replay status %d, match %.2f%%:\n%s", i + 1, st, rate, out);
    }
}

static int setup(void **state)
{
    (void)state;
    return ts_tmpdir(tmpdir, sizeof tmpdir, "contended");
}

static int teardown(void **state)
{
    (void)state;
    return ts_rmtree(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(contended_arenas_replay_in_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
