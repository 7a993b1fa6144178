/* test_store.c: the analyzer's SQLite store with synthetic steps: schema round trip, values read
 * back through the views equal to what was stored, --every keeping the peaks, several runs in
 * one file (also after a row keyed beyond them), and a killed ingest leaving a consistent
 * database with the run incomplete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "analyzer.h"
#include "synth.h"
#include "test_support.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return ts_tmpdir(dir, sizeof dir, "analyzer-test");
}

static int teardown(void **state)
{
    (void)state;
    return ts_rmtree(dir);
}

static void db_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    unlink(buf);
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -2 : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Ingests n synthetic steps; remembers live bytes per step in `live` (n + 1 entries). */
static int64_t ingest_synth(const char *path, uint64_t n, uint64_t every, uint64_t *live)
{
    static struct synth y;
    synth_init(&y);
    char err[512];
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.every = every;
    io.no_analysis = 1;
    struct analyzer_ingest *ing = analyzer_ingest_open(path, NULL, &io, err, sizeof err);
    assert_non_null(ing);
    int64_t run = analyzer_ingest_run_id(ing);
    for (uint64_t i = 1; i <= n; i++) {
        const struct replay_step *s = synth_next(&y);
        if (live)
            live[i] = s->live_bytes;
        assert_int_equal(analyzer_ingest_step(ing, NULL, s), 0);
    }
    assert_int_equal(analyzer_ingest_finish(ing, NULL, err, sizeof err), 0);
    return run;
}

static void schema_round_trip(void **state)
{
    (void)state;
    char path[300], err[512];
    db_path(path, sizeof path, "schema.db");
    sqlite3 *db = analyzer_db_open(path, 1, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(q_int(db, "SELECT version FROM schema_version"), ANALYZER_SCHEMA_VERSION);
    const char *tables[] = {"runs", "steps", "arena_rows", "run_points", "snapshots", "chunks",
                            "sites", "findings", "whatifs", "measures", "sys_events"};
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        char sql[200];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='%s'", tables[i]);
        assert_int_equal(q_int(db, sql), 1);
    }
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master WHERE type='view' AND "
                               "name='arena_steps'"), 1);
    assert_int_equal(analyzer_db_last_run(db), -1);
    analyzer_db_close(db);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* Reopening keeps one version row; a newer schema is refused by name. */
    db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(q_int(db, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", 0, 0, 0),
                     SQLITE_OK);
    analyzer_db_close(db);
    assert_null(analyzer_db_open(path, 0, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
    assert_non_null(strstr(err, path));

    /* Never through a symlink; a missing file is not created unless asked. */
    char link[300];
    db_path(link, sizeof link, "link.db");
    assert_int_equal(symlink(path, link), 0);
    assert_null(analyzer_db_open(link, 1, err, sizeof err));
    assert_non_null(strstr(err, "symbolic link"));
    char missing[300];
    db_path(missing, sizeof missing, "missing.db");
    assert_null(analyzer_db_open(missing, 0, err, sizeof err));
    assert_int_equal(access(missing, F_OK), -1);

    /* Not a database: a clear error naming the file. */
    char junk[300];
    db_path(junk, sizeof junk, "junk.db");
    FILE *f = fopen(junk, "w");
    fputs("this is not sqlite, just some text that is long enough to be a header........\n", f);
    fclose(f);
    assert_null(analyzer_db_open(junk, 0, err, sizeof err));
    assert_non_null(strstr(err, junk));
}

static uint64_t live_at[20001];

/* A version 1 database (arena rows in a table named arena_steps, steps without a_* columns) is
 * upgraded in place when opened: its rows read back the same through the views. */
static void upgrade_from_version_1(void **state)
{
    (void)state;
    char path[300], err[512];
    db_path(path, sizeof path, "v1.db");
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(raw,
                     "CREATE TABLE schema_version(version INTEGER NOT NULL);"
                     "INSERT INTO schema_version VALUES(1);"
                     "CREATE TABLE runs(id INTEGER PRIMARY KEY, trace TEXT, settings TEXT NOT NULL "
                     "DEFAULT '', options TEXT NOT NULL DEFAULT '', tool_version TEXT NOT NULL, "
                     "started_at TEXT NOT NULL, ended_at TEXT, completed INTEGER NOT NULL DEFAULT "
                     "0, every INTEGER NOT NULL DEFAULT 1, heap_start INTEGER NOT NULL DEFAULT 0, "
                     "events INTEGER NOT NULL DEFAULT 0, steps_stored INTEGER NOT NULL DEFAULT 0, "
                     "final_step INTEGER NOT NULL DEFAULT 0, peak_live INTEGER, peak_live_step "
                     "INTEGER, peak_rss INTEGER, peak_rss_step INTEGER, peak_system INTEGER, "
                     "peak_system_step INTEGER, final_live INTEGER, final_rss INTEGER, "
                     "final_system INTEGER, frag_at_live_peak REAL, frag_at_rss_peak REAL, "
                     "arenas INTEGER, threads INTEGER, seconds REAL, analyzed INTEGER NOT NULL "
                     "DEFAULT 0);"
                     "INSERT INTO runs(id, tool_version, started_at) VALUES(1, 'old', 'then');"
                     "CREATE TABLE steps(run_step INTEGER PRIMARY KEY, time_ns INTEGER, thread "
                     "INTEGER, call INTEGER, size INTEGER, address INTEGER, stack INTEGER, live "
                     "INTEGER, in_use INTEGER, system INTEGER, mmapped INTEGER, rss INTEGER, top "
                     "INTEGER, largest_free INTEGER, tcache_n INTEGER, tcache_b INTEGER, fast_n "
                     "INTEGER, fast_b INTEGER, unsorted_n INTEGER, unsorted_b INTEGER, small_n "
                     "INTEGER, small_b INTEGER, large_n INTEGER, large_b INTEGER, mmapped_n "
                     "INTEGER, arenas INTEGER, arena INTEGER, did INTEGER);"
                     "INSERT INTO steps(run_step, live, did) VALUES((1 << 40) + 1, 100, 0);"
                     "INSERT INTO steps(run_step, did) VALUES((1 << 40) + 2, 0);"
                     "CREATE TABLE arena_steps(run INTEGER NOT NULL, step INTEGER NOT NULL, arena "
                     "INTEGER NOT NULL, system INTEGER, in_use INTEGER, rss INTEGER, top INTEGER, "
                     "tcache_b INTEGER, fast_b INTEGER, unsorted_b INTEGER, small_b INTEGER, "
                     "large_b INTEGER, PRIMARY KEY(run, step, arena)) WITHOUT ROWID;"
                     "INSERT INTO arena_steps(run, step, arena, in_use) VALUES(1, 1, 1, 4242);"
                     "INSERT INTO arena_steps(run, step, arena, in_use) VALUES(1, 2, 0, 77);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(raw);

    sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(q_int(db, "SELECT version FROM schema_version"), ANALYZER_SCHEMA_VERSION);
    assert_int_equal(q_int(db, "SELECT count(*) FROM arena_steps"), 2);
    assert_int_equal(q_int(db, "SELECT in_use FROM arena_steps WHERE run = 1 AND step = 1 AND "
                               "arena = 1"), 4242);
    assert_int_equal(q_int(db, "SELECT live FROM steps_full WHERE run = 1 AND step = 2"), 100);
    assert_int_equal(q_int(db, "SELECT count(*) FROM steps_v WHERE a_arena IS NULL"), 2);
    analyzer_db_close(db);
    /* Opened again: already version 2, nothing to do. */
    db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(q_int(db, "SELECT count(*) FROM arena_steps"), 2);
    analyzer_db_close(db);
}

static void steps_read_back(void **state)
{
    (void)state;
    char path[300], err[512];
    db_path(path, sizeof path, "steps.db");
    int64_t run = ingest_synth(path, 20000, 1, live_at);
    sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    char sql[400];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM steps_v WHERE run = %lld", (long long)run);
    assert_int_equal(q_int(db, sql), 20000);
    /* Unchanged counters are stored as NULL... */
    assert_true(q_int(db, "SELECT count(*) FROM steps WHERE system IS NULL") > 10000);
    /* ...and the full view gives them back, at any step. */
    uint64_t probes[] = {1, 2, 3, 4095, 4096, 4097, 9999, 12345, 20000};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT live FROM steps_full WHERE run = %lld AND step = %llu", (long long)run,
                 (unsigned long long)probes[i]);
        assert_int_equal(q_int(db, sql), (int64_t)live_at[probes[i]]);
        snprintf(sql, sizeof sql,
                 "SELECT tcache_b FROM steps_full WHERE run = %lld AND step = %llu",
                 (long long)run, (unsigned long long)probes[i]);
        assert_int_equal(q_int(db, sql), (int64_t)(32 * (probes[i] % 8)));
    }
    /* The run's aggregates: peak live bytes and its step, final values, completion. */
    uint64_t peak = 0, peak_step = 0;
    for (uint64_t i = 1; i <= 20000; i++)
        if (live_at[i] > peak) {
            peak = live_at[i];
            peak_step = i;
        }
    snprintf(sql, sizeof sql, "SELECT peak_live FROM runs WHERE id = %lld", (long long)run);
    assert_int_equal(q_int(db, sql), (int64_t)peak);
    snprintf(sql, sizeof sql, "SELECT peak_live_step FROM runs WHERE id = %lld", (long long)run);
    assert_int_equal(q_int(db, sql), (int64_t)peak_step);
    snprintf(sql, sizeof sql, "SELECT final_live FROM runs WHERE id = %lld", (long long)run);
    assert_int_equal(q_int(db, sql), (int64_t)live_at[20000]);
    snprintf(sql, sizeof sql, "SELECT completed FROM runs WHERE id = %lld", (long long)run);
    assert_int_equal(q_int(db, sql), 1);
    snprintf(sql, sizeof sql,
             "SELECT live FROM run_points WHERE run = %lld AND label = 'live_peak'",
             (long long)run);
    assert_int_equal(q_int(db, sql), (int64_t)peak);
    analyzer_db_close(db);
}

static void every_keeps_peaks(void **state)
{
    (void)state;
    char path[300], err[512];
    db_path(path, sizeof path, "every.db");
    int64_t run = ingest_synth(path, 20000, 100, live_at);
    sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM steps_v WHERE run = %lld", (long long)run);
    int64_t stored = q_int(db, sql);
    assert_true(stored >= 200 && stored < 20000 / 4);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM steps_v s JOIN runs r ON r.id = s.run "
             "WHERE s.run = %lld AND s.step = r.peak_live_step",
             (long long)run);
    assert_int_equal(q_int(db, sql), 1);
    snprintf(sql, sizeof sql,
             "SELECT live FROM steps_full WHERE run = %lld AND step = 15000", (long long)run);
    assert_int_equal(q_int(db, sql), (int64_t)live_at[15000]);
    analyzer_db_close(db);
}

static void runs_share_a_database(void **state)
{
    (void)state;
    char path[300], err[512];
    db_path(path, sizeof path, "two.db");
    int64_t a = ingest_synth(path, 3000, 1, NULL);
    int64_t b = ingest_synth(path, 5000, 1, NULL);
    assert_int_not_equal(a, b);
    sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(analyzer_db_last_run(db), b);
    /* Plain SQL across runs: the same step in both runs. */
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM steps x JOIN steps y ON y.run_step = x.run_step + "
             "((%lld - %lld) << 40) WHERE x.run_step BETWEEN (%lld << 40) AND (%lld << 40) + "
             "3000",
             (long long)b, (long long)a, (long long)a, (long long)a);
    assert_int_equal(q_int(db, sql), 3000);
    assert_int_equal(q_int(db, "SELECT count(*) FROM runs WHERE completed = 1"), 2);
    analyzer_db_close(db);
}

/* A row of the steps table after this run's keys (written by another program, or left by a
 * run whose row is gone): the ingest inserts rows that follow the table's last key with a NULL
 * key (SQLite takes the last key + 1), so it must notice that the last key is not its own. */
static void rows_keyed_after_a_later_row(void **state)
{
    (void)state;
    char path[300], err[512];
    db_path(path, sizeof path, "later.db");
    sqlite3 *db = analyzer_db_open(path, 1, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO steps(run_step, live) VALUES((7 << 40) + 5, 1)",
                                  NULL, NULL, NULL), SQLITE_OK);
    analyzer_db_close(db);
    int64_t a = ingest_synth(path, 3000, 1, NULL);
    int64_t b = ingest_synth(path, 300, 1, NULL);
    assert_true(a < 7 && b < 7);
    db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM steps WHERE run_step BETWEEN (%lld << 40) + 1 "
                              "AND (%lld << 40) + 3000", (long long)a, (long long)a);
    assert_int_equal(q_int(db, sql), 3000);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM steps WHERE run_step BETWEEN (%lld << 40) + 1 "
                              "AND (%lld << 40) + 300", (long long)b, (long long)b);
    assert_int_equal(q_int(db, sql), 300);
    assert_int_equal(q_int(db, "SELECT count(*) FROM steps"), 3000 + 300 + 1);
    analyzer_db_close(db);
}

static void killed_ingest_is_consistent(void **state)
{
    (void)state;
    char path[300], err[512];
    db_path(path, sizeof path, "killed.db");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static struct synth y;
        synth_init(&y);
        struct analyzer_ingest_options io;
        analyzer_ingest_options_default(&io);
        io.commit_every = 1000;
        io.no_analysis = 1;
        struct analyzer_ingest *ing = analyzer_ingest_open(path, NULL, &io, err, sizeof err);
        if (!ing)
            _exit(3);
        for (int i = 0; i < 5500; i++)
            analyzer_ingest_step(ing, NULL, synth_next(&y));
        raise(SIGKILL);
        _exit(4);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    assert_int_equal(q_int(db, "SELECT count(*) FROM runs"), 1);
    assert_int_equal(q_int(db, "SELECT completed FROM runs"), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM steps"), 5000);
    analyzer_db_close(db);
    /* The next run in the same file works. */
    int64_t run = ingest_synth(path, 100, 1, NULL);
    assert_int_equal(run, 2);
}

static void interrupted_replay_marks_incomplete(void **state)
{
    (void)state;
    char path[300], err[512];
    db_path(path, sizeof path, "sigint.db");
    static struct synth y;
    synth_init(&y);
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.no_analysis = 1;
    struct analyzer_ingest *ing = analyzer_ingest_open(path, NULL, &io, err, sizeof err);
    assert_non_null(ing);
    for (int i = 0; i < 777; i++)
        assert_int_equal(analyzer_ingest_step(ing, NULL, synth_next(&y)), 0);
    struct replay_summary sum;
    memset(&sum, 0, sizeof sum);
    sum.events = 777;
    sum.completed = 0;
    sum.interrupted = 1;
    assert_int_equal(analyzer_ingest_finish(ing, &sum, err, sizeof err), 0);
    sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    assert_int_equal(q_int(db, "SELECT completed FROM runs"), 0);
    assert_int_equal(q_int(db, "SELECT final_step FROM runs"), 777);
    assert_int_equal(q_int(db, "SELECT count(*) FROM steps"), 777);
    analyzer_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schema_round_trip),
        cmocka_unit_test(upgrade_from_version_1),
        cmocka_unit_test(steps_read_back),
        cmocka_unit_test(every_keeps_peaks),
        cmocka_unit_test(runs_share_a_database),
        cmocka_unit_test(rows_keyed_after_a_later_row),
        cmocka_unit_test(killed_ingest_is_consistent),
        cmocka_unit_test(interrupted_replay_marks_incomplete),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
