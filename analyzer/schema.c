/* schema.c: the fragscope database: its tables (documented in SCHEMA.md), creating and opening it.
 *
 * A database is created 0600 with O_EXCL|O_NOFOLLOW before SQLite opens it (and SQLite opens it
 * with SQLITE_OPEN_NOFOLLOW), so it is never written through a symlink. The `schema_version`
 * table holds one row; a database from a newer fragscope is refused, an older one is upgraded in
 * place: version 1 to 2 adds the steps' a_* columns (NULL in old rows) and renames arena_steps to
 * arena_rows, under a view named arena_steps that gives the same rows as before. Steps are written
 * in long transactions with the rollback journal, which keeps the file consistent if the process
 * dies between commits.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "analyzer.h"
#include "db_util.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS runs(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  trace TEXT,\n"
    "  settings TEXT NOT NULL DEFAULT '',\n"
    "  options TEXT NOT NULL DEFAULT '',\n"
    "  tool_version TEXT NOT NULL,\n"
    "  started_at TEXT NOT NULL,\n"
    "  ended_at TEXT,\n"
    "  completed INTEGER NOT NULL DEFAULT 0,\n"
    "  every INTEGER NOT NULL DEFAULT 1,\n"
    "  heap_start INTEGER NOT NULL DEFAULT 0,\n"
    "  events INTEGER NOT NULL DEFAULT 0,\n"
    "  steps_stored INTEGER NOT NULL DEFAULT 0,\n"
    "  final_step INTEGER NOT NULL DEFAULT 0,\n"
    "  peak_live INTEGER, peak_live_step INTEGER,\n"
    "  peak_rss INTEGER, peak_rss_step INTEGER,\n"
    "  peak_system INTEGER, peak_system_step INTEGER,\n"
    "  final_live INTEGER, final_rss INTEGER, final_system INTEGER,\n"
    "  frag_at_live_peak REAL, frag_at_rss_peak REAL,\n"
    "  arenas INTEGER, threads INTEGER,\n"
    "  seconds REAL,\n"
    "  analyzed INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS steps(\n"
    "  run_step INTEGER PRIMARY KEY,\n"
    "  time_ns INTEGER, thread INTEGER, call INTEGER, size INTEGER, address INTEGER, stack INTEGER,\n"
    "  live INTEGER, in_use INTEGER, system INTEGER, mmapped INTEGER, rss INTEGER, top INTEGER,\n"
    "  largest_free INTEGER,\n"
    "  tcache_n INTEGER, tcache_b INTEGER, fast_n INTEGER, fast_b INTEGER,\n"
    "  unsorted_n INTEGER, unsorted_b INTEGER, small_n INTEGER, small_b INTEGER,\n"
    "  large_n INTEGER, large_b INTEGER, mmapped_n INTEGER, arenas INTEGER, arena INTEGER,\n"
    "  did INTEGER,\n"
    "  a_arena INTEGER, a_in_use INTEGER, a_tcache_b INTEGER, a_unsorted_b INTEGER,\n"
    "  a_small_b INTEGER, a_large_b INTEGER\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS arena_rows(\n"
    "  run INTEGER NOT NULL, step INTEGER NOT NULL, arena INTEGER NOT NULL,\n"
    "  system INTEGER, in_use INTEGER, rss INTEGER, top INTEGER,\n"
    "  tcache_b INTEGER, fast_b INTEGER, unsorted_b INTEGER, small_b INTEGER, large_b INTEGER,\n"
    "  PRIMARY KEY(run, step, arena)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS run_points(\n"
    "  run INTEGER NOT NULL, label TEXT NOT NULL, step INTEGER NOT NULL,\n"
    "  live INTEGER, in_use INTEGER, in_use_n INTEGER, system INTEGER, mmapped INTEGER,\n"
    "  mmapped_n INTEGER, rss INTEGER, mmapped_rss INTEGER, top INTEGER, largest_free INTEGER,\n"
    "  tcache_n INTEGER, tcache_b INTEGER, fast_n INTEGER, fast_b INTEGER,\n"
    "  unsorted_n INTEGER, unsorted_b INTEGER, small_n INTEGER, small_b INTEGER,\n"
    "  large_n INTEGER, large_b INTEGER, arenas INTEGER,\n"
    "  PRIMARY KEY(run, label)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS sys_events(\n"
    "  run INTEGER NOT NULL, step INTEGER NOT NULL, what TEXT NOT NULL, arena INTEGER,\n"
    "  value INTEGER,\n"
    "  PRIMARY KEY(run, step, what)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS snapshots(\n"
    "  run INTEGER NOT NULL, snap INTEGER NOT NULL, step INTEGER NOT NULL, reason TEXT NOT NULL,\n"
    "  PRIMARY KEY(run, snap)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS chunks(\n"
    "  run INTEGER NOT NULL, snap INTEGER NOT NULL, address INTEGER NOT NULL,\n"
    "  size INTEGER NOT NULL, state TEXT NOT NULL, arena INTEGER NOT NULL, bin INTEGER,\n"
    "  resident INTEGER NOT NULL, request INTEGER, alloc_step INTEGER, stack INTEGER,\n"
    "  PRIMARY KEY(run, snap, address)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS tcache_owners(\n"
    "  run INTEGER NOT NULL, snap INTEGER NOT NULL, address INTEGER NOT NULL,\n"
    "  thread INTEGER NOT NULL, thread_arena INTEGER,\n"
    "  PRIMARY KEY(run, snap, address)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS sites(\n"
    "  run INTEGER NOT NULL, stack INTEGER NOT NULL,\n"
    "  function TEXT, location TEXT, frames TEXT,\n"
    "  PRIMARY KEY(run, stack)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS measures(\n"
    "  run INTEGER NOT NULL, name TEXT NOT NULL, value REAL, step INTEGER,\n"
    "  PRIMARY KEY(run, name)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS findings(\n"
    "  run INTEGER NOT NULL, id INTEGER NOT NULL, kind TEXT NOT NULL,\n"
    "  cause TEXT NOT NULL, evidence TEXT NOT NULL, fix TEXT NOT NULL,\n"
    "  bytes INTEGER, step INTEGER, arena INTEGER, chunk_address INTEGER, chunk_size INTEGER,\n"
    "  alloc_step INTEGER, site TEXT,\n"
    "  PRIMARY KEY(run, id)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS series(\n"
    "  run INTEGER NOT NULL, bucket INTEGER NOT NULL, step_lo INTEGER NOT NULL,\n"
    "  step_hi INTEGER NOT NULL, rows INTEGER NOT NULL,\n"
    "  live_min INTEGER, live_max INTEGER, live_avg INTEGER,\n"
    "  rss_min INTEGER, rss_max INTEGER, rss_avg INTEGER,\n"
    "  system_min INTEGER, system_max INTEGER, system_avg INTEGER,\n"
    "  top_min INTEGER, top_max INTEGER, top_avg INTEGER,\n"
    "  tcache_min INTEGER, tcache_max INTEGER, tcache_avg INTEGER,\n"
    "  fast_min INTEGER, fast_max INTEGER, fast_avg INTEGER,\n"
    "  unsorted_min INTEGER, unsorted_max INTEGER, unsorted_avg INTEGER,\n"
    "  small_min INTEGER, small_max INTEGER, small_avg INTEGER,\n"
    "  large_min INTEGER, large_max INTEGER, large_avg INTEGER\n"
    "  , PRIMARY KEY(run, bucket)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS whatifs(\n"
    "  run INTEGER NOT NULL, finding INTEGER NOT NULL, id INTEGER NOT NULL,\n"
    "  setting TEXT NOT NULL, step INTEGER NOT NULL, rss_before INTEGER, rss_after INTEGER,\n"
    "  system_before INTEGER, system_after INTEGER, peak_before INTEGER, peak_after INTEGER,\n"
    "  helps INTEGER NOT NULL,\n"
    "  PRIMARY KEY(run, finding, id)\n"
    ") WITHOUT ROWID;\n";

/* Views for plain SQL: steps_v decodes run_step (run * 2^40 + step); steps_full also fills in the
 * NULLs of `steps` (values unchanged since the previous stored step). Every 4096th stored step
 * of a run is complete, so each lookup reads back a short way. */
#define LAST(col)                                                                                 \
    "  (SELECT " col " FROM steps p WHERE p.run_step <= s.run_step AND p.run_step >= "             \
    "(s.run_step >> 40) << 40 AND p." col " IS NOT NULL ORDER BY p.run_step DESC LIMIT 1) AS " col
static const char view_sql[] =
    "CREATE VIEW IF NOT EXISTS steps_v AS SELECT run_step >> 40 AS run,\n"
    "  run_step & 1099511627775 AS step, * FROM steps;\n"
    "CREATE VIEW IF NOT EXISTS steps_full AS SELECT s.run_step >> 40 AS run,\n"
    "  s.run_step & 1099511627775 AS step, s.time_ns, s.thread, s.call, s.size, s.address,\n"
    "  s.stack, s.did,\n" LAST("live") ",\n" LAST("in_use") ",\n" LAST("system") ",\n"
    LAST("mmapped") ",\n" LAST("rss") ",\n" LAST("top") ",\n" LAST("largest_free") ",\n"
    LAST("tcache_n") ",\n" LAST("tcache_b") ",\n" LAST("fast_n") ",\n" LAST("fast_b") ",\n"
    LAST("unsorted_n") ",\n" LAST("unsorted_b") ",\n" LAST("small_n") ",\n"
    LAST("small_b") ",\n" LAST("large_n") ",\n" LAST("large_b") ",\n" LAST("mmapped_n")
    ",\n" LAST("arenas") ",\n" LAST("arena") "\nFROM steps s;\n"
    /* One arena row per step rides in the steps row (a_*), the others are in arena_rows. */
    "CREATE VIEW IF NOT EXISTS arena_steps AS\n"
    "  SELECT run, step, arena, system, in_use, rss, top, tcache_b, fast_b, unsorted_b, small_b,\n"
    "    large_b FROM arena_rows\n"
    "  UNION ALL SELECT run_step >> 40, run_step & 1099511627775, a_arena, NULL, a_in_use,\n"
    "    NULL, NULL, a_tcache_b, NULL, a_unsorted_b, a_small_b, a_large_b FROM steps\n"
    "    WHERE a_arena IS NOT NULL;\n";
#undef LAST

/* Version 1 to 2: steps gains the a_* columns (old rows have them NULL: no arena row rides in
 * them), the per-arena table becomes arena_rows and arena_steps the view over both. */
static const char upgrade_1_2_sql[] =
    "BEGIN;\n"
    "ALTER TABLE steps ADD COLUMN a_arena INTEGER;\n"
    "ALTER TABLE steps ADD COLUMN a_in_use INTEGER;\n"
    "ALTER TABLE steps ADD COLUMN a_tcache_b INTEGER;\n"
    "ALTER TABLE steps ADD COLUMN a_unsorted_b INTEGER;\n"
    "ALTER TABLE steps ADD COLUMN a_small_b INTEGER;\n"
    "ALTER TABLE steps ADD COLUMN a_large_b INTEGER;\n"
    "DROP VIEW IF EXISTS steps_v;\n"
    "ALTER TABLE arena_steps RENAME TO arena_rows;\n"
    "UPDATE schema_version SET version = 2;\n"
    "COMMIT;\n";

/* The version of an existing database (0: a new one). */
static int64_t schema_version_of(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t version = 0;
    if (sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return version;
}

int analyzer_schema_create(sqlite3 *db, char *err, size_t errlen)
{
    if (db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)", err,
                errlen))
        return -1;
    if (schema_version_of(db) == 1 && db_exec(db, upgrade_1_2_sql, err, errlen)) {
        char e2[256];
        db_exec(db, "ROLLBACK", e2, sizeof e2);
        return -1;
    }
    if (db_exec(db, schema_sql, err, errlen) || db_exec(db, view_sql, err, errlen))
        return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "schema: %s", sqlite3_errmsg(db));
        return -1;
    }
    int rc = sqlite3_step(st);
    int64_t version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES(%d)", ANALYZER_SCHEMA_VERSION);
        return db_exec(db, sql, err, errlen);
    }
    if (version > ANALYZER_SCHEMA_VERSION) {
        snprintf(err, errlen, "schema version %lld is newer than this fragscope's (%d)",
                 (long long)version, ANALYZER_SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

/* Creates the file the safe way when it does not exist; refuses symlinks and non-files. */
static int db_file_prepare(const char *path, int create, char *err, size_t errlen)
{
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (S_ISLNK(sb.st_mode)) {
            snprintf(err, errlen, "%s: is a symbolic link; refusing to open it", path);
            return -1;
        }
        if (!S_ISREG(sb.st_mode)) {
            snprintf(err, errlen, "%s: not a regular file", path);
            return -1;
        }
        return 0;
    }
    if (errno != ENOENT || !create) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

sqlite3 *analyzer_db_open(const char *path, int create, char *err, size_t errlen)
{
    if (db_file_prepare(path, create, err, errlen))
        return NULL;
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 30000);
    char e2[512];
    if (db_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF; "
                    "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY",
                e2, sizeof e2) ||
        analyzer_schema_create(db, e2, sizeof e2)) {
        snprintf(err, errlen, "%s: %s", path, e2);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

void analyzer_db_close(sqlite3 *db)
{
    sqlite3_close(db);
}

int64_t analyzer_db_last_run(sqlite3 *db)
{
    return db_int(db, -1, "SELECT max(id) FROM runs");
}
