/* test_arena_steps.c: the per-arena rows the ingest stores are each arena's exact counters at
 * every step, although the ingest reads an arena's counters only when the step could have changed
 * it (the caller's arena, the arena of a released chunk, and all of them when the arenas' values
 * no longer add up to the totals).
 *
 * Multi-arena traces of the corpus (traces/: threads that churn, a producer whose blocks other
 * threads free, more threads than arenas) are stored with analyzer_replay_to_db; then the same
 * trace is replayed again and, after every step, every arena's counters from ptmalloc_stats are
 * compared with the value arena_steps gives at that step (its last row at or before the step; a
 * NULL is "unchanged"). A trace written here adds the case a step changes an arena it does not
 * name: a thread allocating, from its own tcache, a chunk another arena owns. Runs under the
 * sanitizers too (the model only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "analyzer.h"

#define MAX_ARENAS 64

struct arow {
    int64_t step;
    int arena;
    int64_t v[9];
    unsigned char isnull[9];
};

struct check {
    struct arow *rows;
    size_t n, next;
    int64_t cur[MAX_ARENAS][9];
    int seen[MAX_ARENAS];
    uint64_t steps_checked, arenas_checked, multi_steps;
    char failure[512];
};

static int check_step(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    struct check *c = ctx;
    while (c->next < c->n && c->rows[c->next].step == (int64_t)s->step) {
        const struct arow *r = &c->rows[c->next++];
        for (int i = 0; i < 9; i++)
            if (!r->isnull[i])
                c->cur[r->arena][i] = r->v[i];
        c->seen[r->arena] = 1;
    }
    if (s->stats.arena_count < 2)
        return 0;
    c->multi_steps++;
    for (uint32_t a = 0; a < s->stats.arena_count && a < MAX_ARENAS; a++) {
        struct ptmalloc_stats st;
        ptmalloc_stats(pm, (int)a, &st);
        int64_t v[9] = {(int64_t)st.system_bytes, (int64_t)st.in_use_bytes,
                        (int64_t)st.resident_bytes, (int64_t)st.top_bytes,
                        (int64_t)st.tcache_bytes, (int64_t)st.fastbin_bytes,
                        (int64_t)st.unsorted_bytes, (int64_t)st.small_bytes,
                        (int64_t)st.large_bytes};
        static const char *names[9] = {"system", "in_use", "rss", "top", "tcache_b", "fast_b",
                                       "unsorted_b", "small_b", "large_b"};
        for (int i = 0; i < 9; i++)
            if (!c->seen[a] || c->cur[a][i] != v[i]) {
                snprintf(c->failure, sizeof c->failure,
                         "step %llu arena %u: %s is %lld, arena_steps says %lld%s",
                         (unsigned long long)s->step, a, names[i], (long long)v[i],
                         (long long)c->cur[a][i], c->seen[a] ? "" : " (no row yet)");
                return 1;
            }
        c->arenas_checked++;
    }
    c->steps_checked++;
    return 0;
}

static void check_trace_file(const char *name, const char *trace)
{
    char db_path[256], err[512];
    snprintf(db_path, sizeof db_path, "/tmp/fs-arena-steps.%d.db", (int)getpid());
    unlink(db_path);
    struct replay_options ro;
    replay_options_default(&ro);
    ro.trace_path = trace;
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.no_analysis = 1;
    io.quiet = 1;
    struct replay_summary sum;
    if (analyzer_replay_to_db(&ro, db_path, &io, &sum, err, sizeof err))
        fail_msg("%s: %s", name, err);
    assert_true(sum.completed);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT step, arena, system, in_use, rss, top, "
                                            "tcache_b, fast_b, unsorted_b, small_b, large_b "
                                            "FROM arena_steps ORDER BY step, arena",
                                        -1, &q, NULL),
                     SQLITE_OK);
    static struct check c;
    memset(&c, 0, sizeof c);
    size_t cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (c.n == cap) {
            cap = cap ? cap * 2 : 4096;
            c.rows = realloc(c.rows, cap * sizeof *c.rows);
            assert_non_null(c.rows);
        }
        struct arow *r = &c.rows[c.n++];
        r->step = sqlite3_column_int64(q, 0);
        r->arena = sqlite3_column_int(q, 1);
        assert_true(r->arena >= 0 && r->arena < MAX_ARENAS);
        for (int i = 0; i < 9; i++) {
            r->isnull[i] = sqlite3_column_type(q, 2 + i) == SQLITE_NULL;
            r->v[i] = sqlite3_column_int64(q, 2 + i);
        }
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    unlink(db_path);
    assert_true(c.n > 0);

    if (replay_run(&ro, check_step, &c, &sum, NULL, err, sizeof err))
        fail_msg("%s: %s", name, err);
    if (c.failure[0])
        fail_msg("%s: %s", name, c.failure);
    assert_true(c.steps_checked > 1000);
    fprintf(stderr, "%s: %zu arena rows; %llu steps with several arenas, %llu arena values "
                    "checked\n",
            name, c.n, (unsigned long long)c.multi_steps, (unsigned long long)c.arenas_checked);
    free(c.rows);
}

static void check_trace(const char *name)
{
    char trace[512];
    snprintf(trace, sizeof trace, "%s/%s.fstrace", TRACES_DIR, name);
    check_trace_file(name, trace);
}

/* Thread 1 allocates in its arena; the main thread frees the block into its tcache and allocates
 * it again from there: arena 1's counters move at a step whose caller is in arena 0. */
static void foreign_tcache_chunk(void **state)
{
    (void)state;
    char trace[256], err[512];
    snprintf(trace, sizeof trace, "/tmp/fs-arena-steps.%d.fstrace", (int)getpid());
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.version = TRACE_VERSION;
    h.heap_start = 0x555555559000ull;
    h.page_size = 4096;
    h.cpu_count = 2;
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    h.argv = (char *)"foreign";
    h.malloc_env = (char *)"";
    struct trace_file_writer *w = trace_file_writer_open(trace, 1, &h, err, sizeof err);
    assert_non_null(w);
    uint64_t seq = 0, ptr = 0x10000000;
    struct trace_event ev;
#define EV(...)                                                                                   \
    do {                                                                                          \
        ev = (struct trace_event){.seq = seq, .time_ns = seq * 1000, __VA_ARGS__};                \
        seq++;                                                                                    \
        assert_int_equal(trace_file_writer_event(w, &ev), 0);                                    \
    } while (0)
    EV(.kind = TRACE_EV_MALLOC, .thread = 0, .size = 100, .ptr = ptr++ * 16,
       .chunk_flags = TRACE_CHUNK_PREV_INUSE);
    EV(.kind = TRACE_EV_THREAD_START, .thread = 1, .os_tid = 1001, .value = 0);
    for (int i = 0; i < 600; i++) {
        uint64_t mine = ptr++ * 16, again = ptr++ * 16;
        EV(.kind = TRACE_EV_MALLOC, .thread = 1, .size = 200, .ptr = mine,
           .chunk_flags = TRACE_CHUNK_PREV_INUSE | TRACE_CHUNK_NON_MAIN_ARENA);
        EV(.kind = TRACE_EV_FREE, .thread = 0, .ptr = mine);
        EV(.kind = TRACE_EV_MALLOC, .thread = 0, .size = 200, .ptr = again,
           .chunk_flags = TRACE_CHUNK_PREV_INUSE | TRACE_CHUNK_NON_MAIN_ARENA);
        if (i % 2)
            EV(.kind = TRACE_EV_FREE, .thread = 0, .ptr = again);
    }
#undef EV
    assert_int_equal(trace_file_writer_close(w, err, sizeof err), 0);
    check_trace_file("foreign-tcache-chunk", trace);
    unlink(trace);
}

static void thread_churn(void **state)
{
    (void)state;
    check_trace("thread-churn");
}

static void producer_consumer(void **state)
{
    (void)state;
    check_trace("producer-consumer");
}

static void arena_explosion(void **state)
{
    (void)state;
    check_trace("arena-explosion");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(thread_churn),
        cmocka_unit_test(producer_consumer),
        cmocka_unit_test(arena_explosion),
        cmocka_unit_test(foreign_tcache_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
