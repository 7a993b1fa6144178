/* test_analysis.c: the whole analysis in-process, on a trace written here and replayed through
 * the real model (so it runs under the sanitizers too): the 4000-block pattern scaled down to
 * 400 pairs, stored with analyzer_replay_to_db, then the report's cause and what-ifs, and the
 * `report`, `heap`, `flame` and `sweep` subcommands on the database.
 *
 * The expectations follow glibc 2.36's rules (traces/README.md, 4000-blocks): the first 7 small
 * chunks freed go to the tcache, the rest to fastbin 0; malloc(2000) consolidates the fastbins,
 * but the 7 tcache chunks below top keep the heap from being trimmed; tcache_count=0 gives it
 * back (down to the initial 132 KiB heap), mxfast=0 does not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../cli.h"
#include "analyzer.h"

#define PAIRS 400

static char dir[256], trace_path[300], db_path[300];

static uint64_t seq;
static void event(struct trace_file_writer *w, struct trace_event ev)
{
    ev.seq = seq++;
    ev.time_ns = seq * 1000;
    assert_int_equal(trace_file_writer_event(w, &ev), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/fs-analyzer-analysis.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(trace_path, sizeof trace_path, "%s/pairs.fstrace", dir);
    snprintf(db_path, sizeof db_path, "%s/pairs.db", dir);
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.version = TRACE_VERSION;
    h.pid = 4242;
    h.ppid = 1;
    h.heap_start = 0x555555559000ull;
    h.page_size = 4096;
    h.cpu_count = 2;
    h.stacks = 1;
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    snprintf(h.exe, sizeof h.exe, "/synthetic/pairs");
    h.argv = (char *)"pairs";
    h.malloc_env = (char *)"";
    char err[512];
    struct trace_file_writer *w = trace_file_writer_open(trace_path, 1, &h, err, sizeof err);
    if (!w)
        return -1;
    /* Two call sites in a module that does not exist on disk: named module+offset. */
    struct trace_module m;
    memset(&m, 0, sizeof m);
    m.load_address = 0x400000;
    m.size = 0x10000;
    snprintf(m.path, sizeof m.path, "/synthetic/pairs");
    trace_file_writer_module(w, 0, &m);
    uint64_t big_frames[] = {0x401234, 0x405678}, small_frames[] = {0x401300, 0x405678};
    trace_file_writer_stack(w, 0, 1, big_frames, 2);
    trace_file_writer_stack(w, 0, 2, small_frames, 2);
    for (uint64_t i = 0; i < PAIRS; i++) {
        event(w, (struct trace_event){.kind = TRACE_EV_MALLOC, .size = 52722, .stack_id = 1,
                                      .ptr = 0x10000000 + i * 0x10000,
                                      .chunk_flags = TRACE_CHUNK_PREV_INUSE});
        event(w, (struct trace_event){.kind = TRACE_EV_MALLOC, .size = 1, .stack_id = 2,
                                      .ptr = 0x10000000 + i * 0x10000 + 0x8000,
                                      .chunk_flags = TRACE_CHUNK_PREV_INUSE});
    }
    for (uint64_t i = PAIRS; i-- > 0;) {
        event(w, (struct trace_event){.kind = TRACE_EV_FREE, .stack_id = 2,
                                      .ptr = 0x10000000 + i * 0x10000 + 0x8000});
        event(w, (struct trace_event){.kind = TRACE_EV_FREE, .stack_id = 1,
                                      .ptr = 0x10000000 + i * 0x10000});
    }
    event(w, (struct trace_event){.kind = TRACE_EV_MALLOC, .size = 2000, .stack_id = 1,
                                  .ptr = 0x20000000, .chunk_flags = TRACE_CHUNK_PREV_INUSE});
    event(w, (struct trace_event){.kind = TRACE_EV_FREE, .stack_id = 1, .ptr = 0x20000000});
    if (trace_file_writer_close(w, err, sizeof err))
        return -1;

    struct replay_options ro;
    replay_options_default(&ro);
    ro.trace_path = trace_path;
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.quiet = 1;
    struct replay_summary sum;
    if (analyzer_replay_to_db(&ro, db_path, &io, &sum, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return sum.completed ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static const struct analyzer_whatif *whatif(const struct analyzer_finding *f, const char *setting)
{
    for (unsigned i = 0; i < f->whatif_count; i++)
        if (!strcmp(f->whatif[i].setting, setting))
            return &f->whatif[i];
    fail_msg("finding %s has no what-if '%s'", f->kind, setting);
    abort();
}

static void report_model(void **state)
{
    (void)state;
    char err[512];
    struct sqlite3 *db = analyzer_db_open(db_path, 0, err, sizeof err);
    assert_non_null(db);
    struct analyzer_report r;
    assert_int_equal(analyzer_report_load(db, -1, &r, err, sizeof err), 0);
    analyzer_db_close(db);
    assert_true(r.run.completed);
    assert_int_equal(r.run.events, 4 * PAIRS + 2);

    /* Exact ledger at the end: it adds up, 7 x 32 bytes in the tcache, the rest free. */
    const struct analyzer_ledger *l = &r.at_end;
    assert_true(l->exact);
    assert_int_equal(l->held + l->overhead + l->tcache + l->fastbins + l->unsorted + l->small +
                         l->large + l->top + l->mmapped,
                     l->rss);
    assert_int_equal(l->rss, r.measures.final_rss);
    assert_int_equal(l->tcache, 7 * 32);
    assert_int_equal(l->held, 0);
    assert_true(l->large + l->unsorted > (uint64_t)PAIRS * 52736 / 10 * 9);

    assert_true(r.finding_count >= 2);
    const struct analyzer_finding *f = &r.findings[0];
    assert_string_equal(f->kind, "top-pinned-by-tcache");
    assert_int_equal(f->chunk_size, 32);
    assert_non_null(strstr(f->evidence, "7 tcache chunks"));
    assert_non_null(strstr(f->site, "pairs+0x1300"));
    const struct analyzer_whatif *w = whatif(f, "tcache_count=0");
    assert_true(w->helps);
    assert_int_equal(w->after, 135168);          /* the first sbrk: 656 + 128 KiB + 32, paged */
    assert_false(whatif(f, "mxfast=0")->helps);
    assert_true(whatif(f, "malloc_trim(0) at the end")->helps);

    /* Right after the frees: PAIRS - 7 fastbin chunks between the big ones. */
    size_t k = 0;
    while (k < r.finding_count && strcmp(r.findings[k].kind, "fastbin-blocks-coalescing"))
        k++;
    assert_true(k < r.finding_count);
    const struct analyzer_finding *g = &r.findings[k];
    char want[64];
    snprintf(want, sizeof want, "%d fastbin chunks", PAIRS - 7);
    assert_non_null(strstr(g->evidence, want));
    assert_int_equal(g->step, 4 * PAIRS);
    assert_true(whatif(g, "tcache_count=0 mxfast=0")->helps);
    assert_false(whatif(g, "mxfast=0")->helps);
    analyzer_report_free(&r);
}

/* Runs a subcommand in-process with stdout in a file; returns its status and the output. */
static int capture(int (*cmd)(int, char **), char **argv, int argc, char *out, size_t cap)
{
    char path[320];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, 1);
    close(fd);
    int rc = cmd(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *f = fopen(path, "r");
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    fclose(f);
    return rc;
}

static void subcommands(void **state)
{
    (void)state;
    static char out[1 << 20];
    char *report_json[] = {"report", db_path, "--format", "json", NULL};
    assert_int_equal(capture(cmd_report, report_json, 4, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"kind\": \"top-pinned-by-tcache\""));
    assert_non_null(strstr(out, "\"setting\": \"tcache_count=0\""));

    char *report_text[] = {"report", db_path, "--bytes", NULL};
    assert_int_equal(capture(cmd_report, report_text, 3, out, sizeof out), 0);
    assert_non_null(strstr(out, "tcache_count=0: final heap RSS"));
    assert_non_null(strstr(out, "-> 135168"));

    char step[32];
    snprintf(step, sizeof step, "%d", 4 * PAIRS);
    char *heap[] = {"heap", db_path, "--step", step, "--arena", "0", NULL};
    assert_int_equal(capture(cmd_heap, heap, 6, out, sizeof out), 0);
    assert_non_null(strstr(out, "  tcache:"));
    assert_non_null(strstr(out, "  fastbins:"));
    snprintf(step, sizeof step, "(%d more, %d in all)", PAIRS - 7 - 8, PAIRS - 7);
    assert_non_null(strstr(out, step));
    char *heap_bad[] = {"heap", db_path, "--step", "999999", NULL};
    assert_int_equal(capture(cmd_heap, heap_bad, 4, out, sizeof out), 2);

    char *flame[] = {"flame", db_path, "--only", "pinned", NULL};
    assert_int_equal(capture(cmd_flame, flame, 4, out, sizeof out), 0);
    assert_non_null(strstr(out, "pinned;pairs+0x5678;pairs+0x1300 "));
    assert_null(strstr(out, "live;"));

    char sweep_db[320];
    snprintf(sweep_db, sizeof sweep_db, "%s/sweep.db", dir);
    char *sweep[] = {"sweep", trace_path, "--set", "tcache_count=0,7", "--db", sweep_db, "-j", "2",
                     NULL};
    assert_int_equal(capture(cmd_sweep, sweep, 8, out, sizeof out), 0);
    char *first = strchr(out, '\n');
    assert_non_null(first);
    assert_non_null(strstr(first, "tcache_count=0"));
    assert_true(strstr(first, "tcache_count=0") < strstr(first, "tcache_count=7"));
    char *sweep_bad[] = {"sweep", trace_path, "--set", "nosuch=1", "--db", sweep_db, NULL};
    assert_int_equal(capture(cmd_sweep, sweep_bad, 6, out, sizeof out), 2);

    /* The sweep's runs are reportable (analysed on demand). */
    char *report_run[] = {"report", sweep_db, "--run", "1", "--format", "json", NULL};
    assert_int_equal(capture(cmd_report, report_run, 6, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"completed\": true"));
}

static volatile int stop_flag;
static void on_alarm(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* A replay stopped the way SIGINT stops it: the steps so far are stored and consistent, the run
 * is marked incomplete, and no analysis ran. */
static void interrupted_replay(void **state)
{
    (void)state;
    char path[320], db[320], err[512];
    snprintf(path, sizeof path, "%s/long.fstrace", dir);
    snprintf(db, sizeof db, "%s/long.db", dir);
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.version = TRACE_VERSION;
    h.heap_start = 0x555555559000ull;
    h.page_size = 4096;
    h.cpu_count = 2;
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    h.argv = (char *)"long";
    h.malloc_env = (char *)"";
    struct trace_file_writer *w = trace_file_writer_open(path, 1, &h, err, sizeof err);
    assert_non_null(w);
    seq = 0;
    for (uint64_t i = 0; i < 2000000; i++) {
        uint64_t p = 0x30000000 + (i % 512) * 0x1000;
        if (i % 2 == 0)
            event(w, (struct trace_event){.kind = TRACE_EV_MALLOC, .size = 16 + i % 1000,
                                          .ptr = p, .chunk_flags = TRACE_CHUNK_PREV_INUSE});
        else
            event(w, (struct trace_event){.kind = TRACE_EV_FREE, .ptr = p});
    }
    assert_int_equal(trace_file_writer_close(w, err, sizeof err), 0);

    struct replay_options ro;
    replay_options_default(&ro);
    ro.trace_path = path;
    stop_flag = 0;
    ro.interrupted = &stop_flag;
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.quiet = 1;
    io.commit_every = 4096;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct replay_summary sum;
    assert_int_equal(analyzer_replay_to_db(&ro, db, &io, &sum, err, sizeof err), 0);
    signal(SIGALRM, SIG_DFL);
    assert_true(stop_flag);
    assert_false(sum.completed);
    assert_true(sum.steps > 0 && sum.steps < 2000000);

    sqlite3 *d = NULL;
    assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(d, "SELECT completed, final_step, steps_stored, analyzed, "
                                           "(SELECT count(*) FROM steps), (SELECT count(*) FROM "
                                           "findings) FROM runs",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 0);
    assert_int_equal((uint64_t)sqlite3_column_int64(q, 1), sum.steps);
    assert_int_equal(sqlite3_column_int64(q, 2), sqlite3_column_int64(q, 4));
    assert_int_equal(sqlite3_column_int64(q, 4), (int64_t)sum.steps);
    assert_int_equal(sqlite3_column_int(q, 3), 0);
    assert_int_equal(sqlite3_column_int(q, 5), 0);
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(d, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(d);
}

/* The findings' what-if replays give the same numbers run in worker processes side by side as
 * run one after another. */
static char *findings_text(const char *path)
{
    sqlite3 *d = NULL;
    assert_int_equal(sqlite3_open(path, &d), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(d, "SELECT kind || '|' || evidence || '|' || fix FROM "
                                           "findings UNION ALL SELECT setting || '|' || "
                                           "rss_after || '|' || system_after || '|' || "
                                           "peak_after || '|' || helps FROM whatifs UNION ALL "
                                           "SELECT name || '|' || value FROM measures",
                                        -1, &q, NULL),
                     SQLITE_OK);
    size_t cap = 1 << 16, n = 0;
    char *text = calloc(1, cap);
    assert_non_null(text);
    while (sqlite3_step(q) == SQLITE_ROW)
        n += (size_t)snprintf(text + n, cap - n, "%s\n", (const char *)sqlite3_column_text(q, 0));
    assert_true(n < cap);
    sqlite3_finalize(q);
    sqlite3_close(d);
    return text;
}

static void whatifs_in_parallel(void **state)
{
    (void)state;
    char texts[2][300], err[512];
    char *got[2];
    for (int w = 0; w < 2; w++) {
        snprintf(texts[w], sizeof texts[w], "%s/workers%d.db", dir, w + 1);
        struct replay_options ro;
        replay_options_default(&ro);
        ro.trace_path = trace_path;
        struct analyzer_ingest_options io;
        analyzer_ingest_options_default(&io);
        io.quiet = 1;
        io.whatif_workers = (unsigned)w + 1;
        struct replay_summary sum;
        assert_int_equal(analyzer_replay_to_db(&ro, texts[w], &io, &sum, err, sizeof err), 0);
        got[w] = findings_text(texts[w]);
    }
    assert_non_null(strstr(got[0], "tcache_count=0|"));
    assert_string_equal(got[0], got[1]);
    free(got[0]);
    free(got[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(report_model),
        cmocka_unit_test(subcommands),
        cmocka_unit_test(interrupted_replay),
        cmocka_unit_test(whatifs_in_parallel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
