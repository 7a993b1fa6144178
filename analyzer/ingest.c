/* ingest.c: storing a replay in SQLite, one row per step, fast and compact.
 *
 * analyzer_ingest_step is the replay's per-step callback. It gathers the step's row in a batch
 * (row_batch.c: one multi-row INSERT per 128 rows) inside a long transaction that is committed
 * every `commit_every` steps (a replay killed between commits leaves every committed chunk and
 * the run row marked incomplete). The transaction holds the write lock, so a row whose key
 * follows the table's last one goes in with a NULL key (SQLite appends it as last + 1 without
 * searching the B-tree for the key). To stay near
 * 40-60 bytes a step, a counter that did not change since the previous stored row is stored as
 * NULL (SCHEMA.md: "NULL = unchanged"); every 4096th stored row of a run is complete so that a
 * lookup of the value at a step never reads far back. With --every N only every Nth step is
 * stored, plus every step that sets a new peak of live bytes, heap RSS or system bytes.
 *
 * Alongside, it follows the origins of chunks (origins.c), keeps the model's counters at the
 * peaks and at the end (run_points), per-arena rows when there are several arenas (the step's
 * first changed arena in the step's own a_* columns, any other in arena_rows), and the
 * allocator events worth finding later (sys_events). Snapshots asked for with --snapshot-at are
 * taken here; the peak and end snapshots and the findings are made by finish (analysis.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../cli.h"
#include "analyzer_int.h"
#include "db_util.h"
#include "row_batch.h"
#include "series.h"

#define KEYFRAME_EVERY 4096
#define DEFAULT_COMMIT_EVERY (1u << 18)
#define STEP_BATCH 128                  /* rows per INSERT statement (row_batch.h) */
#define ARENA_COLS 12

enum step_col {
    C_RUN_STEP = 0, C_TIME, C_THREAD, C_CALL, C_SIZE, C_ADDRESS, C_STACK,
    C_LIVE, C_IN_USE, C_SYSTEM, C_MMAPPED, C_RSS, C_TOP, C_LARGEST,
    C_TCACHE_N, C_TCACHE_B, C_FAST_N, C_FAST_B, C_UNSORTED_N, C_UNSORTED_B, C_SMALL_N, C_SMALL_B,
    C_LARGE_N, C_LARGE_B, C_MMAPPED_N, C_ARENAS, C_ARENA, C_DID,
    C_A_ARENA, C_A_FIRST, C_COUNT = C_A_FIRST + 5      /* one arena row riding in the step's */
};
/* The arena counters (arena_row's order) the steps row has a_* columns for; an arena row rides
 * in the steps row only when the others (system, rss, top, fast_b: rarely changing) are NULL. */
static const int riding[5] = {1, 4, 6, 7, 8};
static int can_ride(const unsigned char *nul)
{
    return nul[0] && nul[2] && nul[3] && nul[5];
}
#define FIRST_DELTA_COL C_LIVE
#define LAST_DELTA_COL C_ARENA

struct arena_last {
    int valid;
    uint64_t rows;              /* rows stored for this arena (every KEYFRAME_EVERYth complete) */
    int64_t v[9];
};

/* An arena row of the current step, before it goes into the steps row or arena_rows. */
struct arena_pending {
    int arena;
    int64_t v[9];
    unsigned char nul[9];
};

struct analyzer_ingest {
    sqlite3 *db;
    char *db_path;
    int64_t run;
    struct analyzer_ingest_options io;
    struct replay_options ro;
    struct row_batch steps, arena_steps;
    sqlite3_stmt *ins_event;
    uint64_t commit_every, since_commit, stored;
    int64_t last_key;                    /* the largest run_step in the table while we hold the
                                            write lock (begin_chunk), else -1 */
    int64_t prev[C_COUNT];
    int have_prev;
    uint64_t heap_start;
    struct run_point live_peak, rss_peak, sys_peak, last;
    struct run_point retention_peak;     /* the first step of the most heap RSS not live */
    uint64_t max_thread, thread_exits, threshold_raises, threads_seen;
    struct arena_last *arenas;
    struct arena_pending *pending;       /* this step's changed arenas (arena_cap of them) */
    size_t arena_cap, pending_n;
    int64_t arena_sum[9];                /* the arenas' last values, summed */
    struct origins org;
    struct series_acc series;
    int snapshots_taken;
    int failed;
    char errmsg[512];
    double t0;
    int end_state_taken;
    uint64_t top_trim_gain;
};

void analyzer_ingest_options_default(struct analyzer_ingest_options *io)
{
    memset(io, 0, sizeof *io);
    io->every = 1;
    io->commit_every = DEFAULT_COMMIT_EVERY;
    io->series_min_steps = 1000000;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(struct analyzer_ingest *ing, const char *what)
{
    if (!ing->failed)
        snprintf(ing->errmsg, sizeof ing->errmsg, "%s: %s: %s", ing->db_path, what,
                 sqlite3_errmsg(ing->db));
    ing->failed = 1;
}

static int begin_chunk(struct analyzer_ingest *ing, char *err, size_t errlen);

void stored_options_encode(const struct replay_options *ro, char *settings, size_t scap,
                           char *options, size_t ocap)
{
    size_t n = 0;
    settings[0] = 0;
    for (unsigned i = 0; ro && i < ro->set_count && n < scap; i++)
        n += snprintf(settings + n, scap - n, "%s%s", n ? " " : "", ro->set[i]);
    if (ro && ro->tunables && n < scap)
        snprintf(settings + n, scap - n, "%sGLIBC_TUNABLES=%s", n ? " " : "", ro->tunables);
    snprintf(options, ocap, "cpus=%u no_mallopt=%d touch=%s arenas=%s", ro ? ro->cpus : 0,
             ro ? ro->no_mallopt : 0,
             ro && ro->touch == REPLAY_TOUCH_NONE ? "none" : "all",
             ro && ro->arenas == REPLAY_ARENAS_RECORDED ? "recorded" : "serial");
}

struct analyzer_ingest *analyzer_ingest_open(const char *db_path, const struct replay_options *ro,
                                             const struct analyzer_ingest_options *io, char *err,
                                             size_t errlen)
{
    struct analyzer_ingest *ing = calloc(1, sizeof *ing);
    if (!ing) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (io)
        ing->io = *io;
    else
        analyzer_ingest_options_default(&ing->io);
    if (!ing->io.every)
        ing->io.every = 1;
    ing->commit_every = ing->io.commit_every ? ing->io.commit_every : DEFAULT_COMMIT_EVERY;
    if (ro)
        ing->ro = *ro;
    else
        replay_options_default(&ing->ro);
    ing->db_path = strdup(db_path);
    ing->t0 = now_seconds();
    if (!ing->db_path || origins_init(&ing->org) || series_acc_init(&ing->series)) {
        snprintf(err, errlen, "out of memory");
        goto bad;
    }
    ing->db = analyzer_db_open(db_path, 1, err, errlen);
    if (!ing->db)
        goto bad;

    char settings[2048], options[256], started[32], e2[512];
    /* The trace's absolute path, so that what-if replays and `report` find it from anywhere. */
    char *trace_abs = ro && ro->trace_path ? realpath(ro->trace_path, NULL) : NULL;
    stored_options_encode(ro, settings, sizeof settings, options, sizeof options);
    db_now(started, sizeof started);
    char *sql = sqlite3_mprintf(
        "INSERT INTO runs(trace, settings, options, tool_version, started_at, every) "
        "VALUES(%Q, %Q, %Q, %Q, %Q, %lld)",
        trace_abs ? trace_abs : ro && ro->trace_path ? ro->trace_path : NULL, settings, options,
        FRAGSCOPE_VERSION, started, (long long)ing->io.every);
    free(trace_abs);
    int rc = db_exec(ing->db, sql, e2, sizeof e2);
    sqlite3_free(sql);
    if (rc) {
        snprintf(err, errlen, "%s: %s", db_path, e2);
        goto bad;
    }
    ing->run = sqlite3_last_insert_rowid(ing->db);
    if (row_batch_init(&ing->steps, ing->db, "steps", C_COUNT, STEP_BATCH, e2, sizeof e2) ||
        row_batch_init(&ing->arena_steps, ing->db, "arena_rows", ARENA_COLS, STEP_BATCH, e2,
                       sizeof e2)) {
        snprintf(err, errlen, "%s: %s", db_path, e2);
        goto bad;
    }
    if (sqlite3_prepare_v2(ing->db, "INSERT OR REPLACE INTO sys_events VALUES(?,?,?,?,?)", -1,
                           &ing->ins_event, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db_path, sqlite3_errmsg(ing->db));
        goto bad;
    }
    if (begin_chunk(ing, e2, sizeof e2)) {
        snprintf(err, errlen, "%s: %s", db_path, e2);
        goto bad;
    }
    return ing;
bad:
    row_batch_free(&ing->steps);
    row_batch_free(&ing->arena_steps);
    sqlite3_finalize(ing->ins_event);
    if (ing->db)
        analyzer_db_close(ing->db);
    origins_free(&ing->org);
    series_acc_free(&ing->series);
    free(ing->db_path);
    free(ing);
    return NULL;
}

int64_t analyzer_ingest_run_id(const struct analyzer_ingest *ing)
{
    return ing->run;
}

/* Writes the rows still gathered in the batches. */
static void flush_rows(struct analyzer_ingest *ing)
{
    if (row_batch_flush(&ing->steps) != SQLITE_OK)
        fail(ing, "steps");
    if (row_batch_flush(&ing->arena_steps) != SQLITE_OK)
        fail(ing, "arena_rows");
}

/* Starts a chunk's transaction holding the write lock, so that no other writer can append to
 * `steps` until the commit: a row whose key follows the table's last one is then inserted with
 * a NULL key, which SQLite makes the last key + 1 (the documented rowid choice) without the
 * B-tree search an explicit key costs to check that it is new (about a sixth of a row's cost). */
static int begin_chunk(struct analyzer_ingest *ing, char *err, size_t errlen)
{
    if (db_exec(ing->db, "BEGIN IMMEDIATE", err, errlen))
        return -1;
    ing->last_key = db_int(ing->db, -1, "SELECT max(run_step) FROM steps");
    return 0;
}

static void commit_chunk(struct analyzer_ingest *ing)
{
    char e2[256];
    flush_rows(ing);
    ing->last_key = -1;
    if (db_exec(ing->db, "COMMIT", e2, sizeof e2) || begin_chunk(ing, e2, sizeof e2))
        fail(ing, "commit");
    ing->since_commit = 0;
}

static void sys_event(struct analyzer_ingest *ing, uint64_t step, const char *what, int arena,
                      int64_t value)
{
    sqlite3_stmt *st = ing->ins_event;
    sqlite3_bind_int64(st, 1, ing->run);
    sqlite3_bind_int64(st, 2, (int64_t)step);
    sqlite3_bind_text(st, 3, what, -1, SQLITE_STATIC);
    if (arena >= 0)
        sqlite3_bind_int(st, 4, arena);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, value);
    if (sqlite3_step(st) != SQLITE_DONE)
        fail(ing, "sys_events");
    sqlite3_reset(st);
}

static void arena_row(struct analyzer_ingest *ing, const struct replay_step *s, struct ptmalloc *pm,
                      int arena)
{
    if (arena < 0)
        return;
    if ((size_t)arena >= ing->arena_cap) {
        size_t cap = ing->arena_cap ? ing->arena_cap : 8;
        while (cap <= (size_t)arena)
            cap *= 2;
        struct arena_last *n = realloc(ing->arenas, cap * sizeof *n);
        struct arena_pending *pn = n ? realloc(ing->pending, cap * sizeof *pn) : NULL;
        if (n)
            ing->arenas = n;
        if (!n || !pn) {
            ing->failed = 1;
            snprintf(ing->errmsg, sizeof ing->errmsg, "out of memory");
            return;
        }
        memset(n + ing->arena_cap, 0, (cap - ing->arena_cap) * sizeof *n);
        ing->pending = pn;
        ing->arena_cap = cap;
    }
    /* The replayer's figures for the step (it has just read the arenas the step touched);
     * the model's own when it kept none. */
    struct ptmalloc_stats st;
    if ((uint32_t)arena < s->arena_stats_count)
        st = s->arena_stats[arena];
    else
        ptmalloc_stats_arena(pm, (uint32_t)arena, &st);   /* O(1), not O(arenas) */
    int64_t v[9] = {(int64_t)st.system_bytes, (int64_t)st.in_use_bytes,
                    (int64_t)st.resident_bytes, (int64_t)st.top_bytes,
                    (int64_t)st.tcache_bytes, (int64_t)st.fastbin_bytes,
                    (int64_t)st.unsorted_bytes, (int64_t)st.small_bytes,
                    (int64_t)st.large_bytes};
    struct arena_last *al = &ing->arenas[arena];
    if (al->valid && !memcmp(al->v, v, sizeof v))
        return;
    /* Like steps: a value unchanged since this arena's previous row is NULL. The row waits in
     * `pending` until the step knows whether it has a steps row to ride in (store_arena_rows). */
    int full = !al->valid || al->rows % KEYFRAME_EVERY == 0;
    struct arena_pending *p = &ing->pending[ing->pending_n++];
    p->arena = arena;
    for (int i = 0; i < 9; i++) {
        p->v[i] = v[i];
        p->nul[i] = !full && v[i] == al->v[i];
    }
    for (int i = 0; i < 9; i++)
        ing->arena_sum[i] += v[i] - (al->valid ? al->v[i] : 0);
    al->valid = 1;
    al->rows++;
    memcpy(al->v, v, sizeof v);
}

/* The step's pending arena rows but `skip` (the one riding in the steps row, or -1) go to
 * arena_rows. */
static void store_arena_rows(struct analyzer_ingest *ing, uint64_t step, long skip)
{
    for (size_t k = 0; k < ing->pending_n; k++) {
        if ((long)k == skip)
            continue;
        const struct arena_pending *p = &ing->pending[k];
        unsigned char *nul;
        int64_t *row = row_batch_next(&ing->arena_steps, &nul);
        row[0] = ing->run;
        row[1] = (int64_t)step;
        row[2] = p->arena;
        for (int i = 0; i < 9; i++) {
            row[3 + i] = p->v[i];
            nul[3 + i] = p->nul[i];
        }
        if (row_batch_commit_row(&ing->arena_steps) != SQLITE_OK)
            fail(ing, "arena_rows");
    }
    ing->pending_n = 0;
}

static void take_point(struct run_point *p, const struct replay_step *s)
{
    p->valid = 1;
    p->step = s->step;
    p->live = s->live_bytes;
    p->stats = s->stats;
}

int analyzer_ingest_step(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    struct analyzer_ingest *ing = ctx;
    if (ing->failed)
        return 1;
    const struct trace_event *ev = s->event;
    const struct ptmalloc_stats *st = &s->stats;
    if (pm && !ing->heap_start)
        ing->heap_start = ptmalloc_heap_start(pm);
    if (origins_step(&ing->org, s)) {
        ing->failed = 1;
        snprintf(ing->errmsg, sizeof ing->errmsg, "out of memory at step %llu",
                 (unsigned long long)s->step);
        return 1;
    }

    /* A consolidation that merged fastbin chunks (how many were there before the step). */
    if ((s->did & REPLAY_DID_CONSOLIDATE) && ing->last.valid && ing->last.stats.fastbin_count)
        sys_event(ing, s->step, "consolidate", s->arena,
                  (int64_t)ing->last.stats.fastbin_count);

    /* Peaks. */
    uint64_t rss = stats_rss(st);
    int new_peak = 0;
    if (!ing->live_peak.valid || s->live_bytes > ing->live_peak.live) {
        take_point(&ing->live_peak, s);
        new_peak = 1;
    }
    if (!ing->rss_peak.valid || rss > stats_rss(&ing->rss_peak.stats)) {
        take_point(&ing->rss_peak, s);
        new_peak = 1;
    }
    uint64_t sys = st->system_bytes + st->mmapped_bytes;
    if (!ing->sys_peak.valid ||
        sys > ing->sys_peak.stats.system_bytes + ing->sys_peak.stats.mmapped_bytes) {
        take_point(&ing->sys_peak, s);
        new_peak = 1;
    }
    if (!ing->retention_peak.valid ||
        (rss > s->live_bytes ? rss - s->live_bytes : 0) >
            (stats_rss(&ing->retention_peak.stats) > ing->retention_peak.live
                 ? stats_rss(&ing->retention_peak.stats) - ing->retention_peak.live
                 : 0))
        take_point(&ing->retention_peak, s);
    take_point(&ing->last, s);
    if (ev && ev->thread + 1 > ing->threads_seen)
        ing->threads_seen = ev->thread + 1;

    /* Sparse events worth finding later. */
    if (ev && ev->kind == TRACE_EV_THREAD_EXIT) {
        ing->thread_exits++;
        sys_event(ing, s->step, "thread_exit", s->arena, ev->thread);
    }
    if (s->did & REPLAY_DID_THRESHOLD) {
        struct ptmalloc_settings cur;
        int64_t thr = 0;
        if (pm) {
            ptmalloc_current_settings(pm, &cur);
            thr = (int64_t)cur.mmap_threshold;
        }
        ing->threshold_raises++;
        sys_event(ing, s->step, "mmap_threshold", s->arena, thr);
    }
    if (s->did & REPLAY_DID_ARENA_NEW)
        sys_event(ing, s->step, "arena_new", s->arena, st->arena_count);
    if (s->did & (REPLAY_DID_TRIM | REPLAY_DID_SBRK_SHRINK | REPLAY_DID_HEAP_SHRINK))
        sys_event(ing, s->step, "trim", s->arena, (int64_t)st->system_bytes);
    if (s->did & REPLAY_DID_MADVISE)
        sys_event(ing, s->step, "madvise", s->arena, (int64_t)st->resident_bytes);

    ing->pending_n = 0;
    if (pm && st->arena_count > 1 && ev && ev->kind != TRACE_EV_SAMPLE &&
        ev->kind != TRACE_EV_MODULE) {
        /* The caller's arena, and the arena of the chunk a free or realloc released (it was
         * allocated there); a new arena or a thread exit: every arena. */
        int all = (s->did & REPLAY_DID_ARENA_NEW) || ev->kind == TRACE_EV_THREAD_EXIT;
        if (!all) {
            arena_row(ing, s, pm, s->arena);
            const struct chunk_origin *o =
                s->replayed_old_ptr ? chunk_map_get(&ing->org.chunks, s->replayed_old_ptr - 16)
                                    : NULL;
            if (o && o->arena >= 0 && o->arena != s->arena)
                arena_row(ing, s, pm, o->arena);
            /* The arenas' values must add up to the totals; when they do not, another arena
             * changed too (a chunk of another arena taken from the caller's tcache, a trim of
             * every arena): look at them all. */
            int64_t tot[9] = {(int64_t)st->system_bytes, (int64_t)st->in_use_bytes,
                              (int64_t)st->resident_bytes, (int64_t)st->top_bytes,
                              (int64_t)st->tcache_bytes, (int64_t)st->fastbin_bytes,
                              (int64_t)st->unsorted_bytes, (int64_t)st->small_bytes,
                              (int64_t)st->large_bytes};
            all = memcmp(tot, ing->arena_sum, sizeof tot) != 0;
        }
        if (all)
            for (uint32_t a = 0; a < st->arena_count; a++)
                arena_row(ing, s, pm, (int)a);
    }
    for (unsigned i = 0; i < ing->io.snapshot_at_count; i++)
        if (ing->io.snapshot_at[i] == s->step && pm) {
            char e2[512];
            char reason[48];
            snprintf(reason, sizeof reason, "step %llu", (unsigned long long)s->step);
            if (snapshot_write(ing->db, ing->run, 10 + ing->snapshots_taken, s->step, reason, pm,
                               &ing->org, e2, sizeof e2)) {
                ing->failed = 1;
                snprintf(ing->errmsg, sizeof ing->errmsg, "%s", e2);
                return 1;
            }
            ing->snapshots_taken++;
            new_peak = 1;
        }

    if (ing->io.every > 1 && s->step % ing->io.every && !new_peak && ing->have_prev) {
        store_arena_rows(ing, s->step, -1);
        return ing->failed;
    }

    /* The row: event columns always, counters NULL when unchanged. */
    int64_t v[C_COUNT];
    v[C_LIVE] = (int64_t)s->live_bytes;
    v[C_IN_USE] = (int64_t)st->in_use_bytes;
    v[C_SYSTEM] = (int64_t)st->system_bytes;
    v[C_MMAPPED] = (int64_t)st->mmapped_bytes;
    v[C_RSS] = (int64_t)rss;
    v[C_TOP] = (int64_t)st->top_bytes;
    v[C_LARGEST] = (int64_t)st->largest_free;
    v[C_TCACHE_N] = (int64_t)st->tcache_count;
    v[C_TCACHE_B] = (int64_t)st->tcache_bytes;
    v[C_FAST_N] = (int64_t)st->fastbin_count;
    v[C_FAST_B] = (int64_t)st->fastbin_bytes;
    v[C_UNSORTED_N] = (int64_t)st->unsorted_count;
    v[C_UNSORTED_B] = (int64_t)st->unsorted_bytes;
    v[C_SMALL_N] = (int64_t)st->small_count;
    v[C_SMALL_B] = (int64_t)st->small_bytes;
    v[C_LARGE_N] = (int64_t)st->large_count;
    v[C_LARGE_B] = (int64_t)st->large_bytes;
    v[C_MMAPPED_N] = (int64_t)st->mmapped_count;
    v[C_ARENAS] = (int64_t)st->arena_count;
    v[C_ARENA] = s->arena;

    unsigned char *nul;
    int64_t *row = row_batch_next(&ing->steps, &nul);
    int64_t key = (ing->run << 40) + (int64_t)s->step;
    row[C_RUN_STEP] = key;
    nul[C_RUN_STEP] = key == ing->last_key + 1;   /* NULL: the next key (begin_chunk) */
    if (key > ing->last_key)
        ing->last_key = key;
    if (ev) {
        row[C_TIME] = (int64_t)ev->time_ns;
        row[C_THREAD] = ev->thread;
        row[C_CALL] = ev->kind;
        if (origins_is_allocation(ev->kind) || ev->kind == TRACE_EV_MALLOC_TRIM)
            row[C_SIZE] = (int64_t)(s->request_bytes ? s->request_bytes
                                                     : origins_request_bytes(ev));
        else
            nul[C_SIZE] = 1;
        row[C_STACK] = ev->stack_id;
        nul[C_STACK] = !ev->stack_id;
    } else {
        for (int c = C_TIME; c <= C_SIZE; c++)
            nul[c] = 1;
        nul[C_STACK] = 1;
    }
    row[C_ADDRESS] = (int64_t)(s->replayed_ptr - ing->heap_start);
    nul[C_ADDRESS] = !s->replayed_ptr;
    int full = !ing->have_prev || ing->stored % KEYFRAME_EVERY == 0;
    for (int c = FIRST_DELTA_COL; c <= LAST_DELTA_COL; c++) {
        row[c] = v[c];
        nul[c] = !full && v[c] == ing->prev[c];
        ing->prev[c] = v[c];
    }
    row[C_DID] = (int64_t)s->did;
    /* The first arena row of the step that can rides in it (SCHEMA.md: arena_steps); others,
     * if any, go to arena_rows. */
    long ride = -1;
    for (size_t k = 0; k < ing->pending_n && ride < 0; k++)
        if (can_ride(ing->pending[k].nul))
            ride = (long)k;
    if (ride >= 0) {
        const struct arena_pending *p = &ing->pending[ride];
        row[C_A_ARENA] = p->arena;
        for (int i = 0; i < 5; i++) {
            row[C_A_FIRST + i] = p->v[riding[i]];
            nul[C_A_FIRST + i] = p->nul[riding[i]];
        }
    } else {
        memset(nul + C_A_ARENA, 1, C_COUNT - C_A_ARENA);
    }
    if (ing->pending_n)
        store_arena_rows(ing, s->step, ride);
    ing->have_prev = 1;
    uint64_t sv[SERIES_COUNTERS] = {s->live_bytes, rss, st->system_bytes + st->mmapped_bytes,
                                    st->top_bytes, st->tcache_bytes, st->fastbin_bytes,
                                    st->unsorted_bytes, st->small_bytes, st->large_bytes};
    series_acc_add(&ing->series, s->step, sv);
    if (row_batch_commit_row(&ing->steps) != SQLITE_OK) {
        fail(ing, "steps");
        return 1;
    }
    ing->stored++;
    if (++ing->since_commit >= ing->commit_every)
        commit_chunk(ing);
    return ing->failed;
}

int analyzer_ingest_end_state(struct analyzer_ingest *ing, struct ptmalloc *pm)
{
    if (!pm || ing->failed)
        return -1;
    char e2[512];
    if (snapshot_write(ing->db, ing->run, 2, ing->last.step, "end", pm, &ing->org, e2,
                       sizeof e2)) {
        ing->failed = 1;
        snprintf(ing->errmsg, sizeof ing->errmsg, "%s", e2);
        return -1;
    }
    ing->end_state_taken = 1;
    ing->top_trim_gain = analysis_top_trim_gain(pm);
    return 0;
}

int run_point_store(sqlite3 *db, int64_t run, const char *label, const struct run_point *p,
                    char *err, size_t errlen)
{
    if (!p->valid)
        return 0;
    const struct ptmalloc_stats *s = &p->stats;
    char *sql = sqlite3_mprintf(
        "INSERT OR REPLACE INTO run_points VALUES(%lld, %Q, %llu, %llu, %llu, %llu, %llu, %llu, "
        "%llu, %llu, %llu, %llu, %llu, %llu, %llu, %llu, %llu, %llu, %llu, %llu, %llu, %llu, "
        "%llu, %u)",
        (long long)run, label, (unsigned long long)p->step, (unsigned long long)p->live,
        (unsigned long long)s->in_use_bytes, (unsigned long long)s->in_use_count,
        (unsigned long long)s->system_bytes, (unsigned long long)s->mmapped_bytes,
        (unsigned long long)s->mmapped_count, (unsigned long long)stats_rss(s),
        (unsigned long long)s->mmapped_resident_bytes, (unsigned long long)s->top_bytes,
        (unsigned long long)s->largest_free, (unsigned long long)s->tcache_count,
        (unsigned long long)s->tcache_bytes, (unsigned long long)s->fastbin_count,
        (unsigned long long)s->fastbin_bytes, (unsigned long long)s->unsorted_count,
        (unsigned long long)s->unsorted_bytes, (unsigned long long)s->small_count,
        (unsigned long long)s->small_bytes, (unsigned long long)s->large_count,
        (unsigned long long)s->large_bytes, s->arena_count);
    int rc = db_exec(db, sql, err, errlen);
    sqlite3_free(sql);
    return rc;
}

int run_point_load(sqlite3 *db, int64_t run, const char *label, struct run_point *p)
{
    memset(p, 0, sizeof *p);
    char e2[128];
    sqlite3_stmt *st = db_prepare(db, e2, sizeof e2,
                                  "SELECT step, live, in_use, in_use_n, system, mmapped, "
                                  "mmapped_n, rss, mmapped_rss, top, largest_free, tcache_n, "
                                  "tcache_b, fast_n, fast_b, unsorted_n, unsorted_b, small_n, "
                                  "small_b, large_n, large_b, arenas FROM run_points "
                                  "WHERE run = %lld AND label = %Q",
                                  (long long)run, label);
    if (!st)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        struct ptmalloc_stats *s = &p->stats;
#define COL(i) ((uint64_t)sqlite3_column_int64(st, i))
        p->valid = 1;
        p->step = COL(0);
        p->live = COL(1);
        s->in_use_bytes = COL(2);
        s->in_use_count = COL(3);
        s->system_bytes = COL(4);
        s->mmapped_bytes = COL(5);
        s->mmapped_count = COL(6);
        s->mmapped_resident_bytes = COL(8);
        s->resident_bytes = COL(7) - s->mmapped_resident_bytes;
        s->top_bytes = COL(9);
        s->largest_free = COL(10);
        s->tcache_count = COL(11);
        s->tcache_bytes = COL(12);
        s->fastbin_count = COL(13);
        s->fastbin_bytes = COL(14);
        s->unsorted_count = COL(15);
        s->unsorted_bytes = COL(16);
        s->small_count = COL(17);
        s->small_bytes = COL(18);
        s->large_count = COL(19);
        s->large_bytes = COL(20);
        s->arena_count = (uint32_t)COL(21);
#undef COL
    }
    sqlite3_finalize(st);
    return p->valid ? 0 : -1;
}

static double ratio(uint64_t held, uint64_t live)
{
    return live ? ((double)held - (double)live) / (double)live : 0.0;
}

int analyzer_ingest_finish(struct analyzer_ingest *ing, const struct replay_summary *sum,
                           char *err, size_t errlen)
{
    int rc = 0;
    char e2[512];
    if (ing->failed) {
        snprintf(err, errlen, "%s", ing->errmsg);
        rc = -1;
    }
    /* Whatever happened, the stored steps are committed and the run row says how far it got. */
    if (!ing->failed) {
        flush_rows(ing);
        if (ing->failed) {
            snprintf(err, errlen, "%s", ing->errmsg);
            rc = -1;
        }
    }
    row_batch_free(&ing->steps);
    row_batch_free(&ing->arena_steps);
    sqlite3_finalize(ing->ins_event);
    ing->ins_event = NULL;
    if (db_exec(ing->db, "COMMIT", e2, sizeof e2) && rc == 0) {
        snprintf(err, errlen, "%s: %s", ing->db_path, e2);
        rc = -1;
    }
    int completed = sum ? sum->completed : (rc == 0);
    if (rc == 0) {
        uint64_t events = sum ? sum->events : ing->last.step;
        double seconds = sum && sum->seconds > 0 ? sum->seconds : now_seconds() - ing->t0;
        const struct run_point *lp = &ing->live_peak, *rp = &ing->rss_peak, *sp = &ing->sys_peak;
        char ended[32];
        db_now(ended, sizeof ended);
        char *sql = sqlite3_mprintf(
            "BEGIN; UPDATE runs SET ended_at = %Q, heap_start = %llu, events = %llu, "
            "steps_stored = %llu, final_step = %llu, peak_live = %llu, peak_live_step = %llu, "
            "peak_rss = %llu, peak_rss_step = %llu, peak_system = %llu, peak_system_step = %llu, "
            "final_live = %llu, final_rss = %llu, final_system = %llu, frag_at_live_peak = %.17g, "
            "frag_at_rss_peak = %.17g, arenas = %u, threads = %llu, seconds = %.17g WHERE id = "
            "%lld;",
            ended, (unsigned long long)ing->heap_start, (unsigned long long)events,
            (unsigned long long)ing->stored, (unsigned long long)ing->last.step,
            (unsigned long long)lp->live, (unsigned long long)lp->step,
            (unsigned long long)stats_rss(&rp->stats), (unsigned long long)rp->step,
            (unsigned long long)(sp->stats.system_bytes + sp->stats.mmapped_bytes),
            (unsigned long long)sp->step, (unsigned long long)ing->last.live,
            (unsigned long long)stats_rss(&ing->last.stats),
            (unsigned long long)(ing->last.stats.system_bytes + ing->last.stats.mmapped_bytes),
            ratio(stats_rss(&lp->stats), lp->live), ratio(stats_rss(&rp->stats), rp->live),
            ing->last.stats.arena_count, (unsigned long long)ing->threads_seen, seconds,
            (long long)ing->run);
        rc = db_exec(ing->db, sql, e2, sizeof e2);
        sqlite3_free(sql);
        if (!rc)
            rc = run_point_store(ing->db, ing->run, "live_peak", lp, e2, sizeof e2);
        if (!rc)
            rc = run_point_store(ing->db, ing->run, "rss_peak", rp, e2, sizeof e2);
        if (!rc)
            rc = run_point_store(ing->db, ing->run, "system_peak", sp, e2, sizeof e2);
        if (!rc)
            rc = run_point_store(ing->db, ing->run, "end", &ing->last, e2, sizeof e2);
        if (!rc)
            rc = run_point_store(ing->db, ing->run, "retention_peak", &ing->retention_peak, e2,
                                 sizeof e2);
        if (!rc) {
            sql = sqlite3_mprintf(
                "INSERT OR REPLACE INTO measures VALUES(%lld, 'aligned_calls', %llu, NULL);"
                "INSERT OR REPLACE INTO measures VALUES(%lld, 'thread_exits', %llu, NULL);"
                "INSERT OR REPLACE INTO measures VALUES(%lld, 'threshold_raises', %llu, NULL);",
                (long long)ing->run, (unsigned long long)ing->org.aligned_calls,
                (long long)ing->run, (unsigned long long)ing->thread_exits, (long long)ing->run,
                (unsigned long long)ing->threshold_raises);
            rc = db_exec(ing->db, sql, e2, sizeof e2);
            sqlite3_free(sql);
        }
        if (!rc && ing->stored >= ing->io.series_min_steps)
            rc = series_acc_store(&ing->series, ing->db, ing->run, ing->last.step, e2, sizeof e2);
        if (!rc && ing->end_state_taken) {
            sql = sqlite3_mprintf(
                "INSERT OR REPLACE INTO measures VALUES(%lld, 'top_trim_gain', %llu, %llu);",
                (long long)ing->run, (unsigned long long)ing->top_trim_gain,
                (unsigned long long)ing->last.step);
            rc = db_exec(ing->db, sql, e2, sizeof e2);
            sqlite3_free(sql);
        }
        if (!rc)
            rc = db_exec(ing->db, "COMMIT", e2, sizeof e2);
        else
            db_exec(ing->db, "ROLLBACK", e2 + 256, 256);
        if (rc)
            snprintf(err, errlen, "%s: %s", ing->db_path, e2);
    }
    /* An interrupted replay is stored as far as it went; `report` analyses it when asked. */
    if (rc == 0 && completed && !ing->io.no_analysis && ing->ro.trace_path)
        rc = analyzer_analyze_run(ing->db, ing->run, &ing->io, err, errlen);
    if (rc == 0 && completed) {
        char *sql = sqlite3_mprintf("UPDATE runs SET completed = 1 WHERE id = %lld",
                                    (long long)ing->run);
        rc = db_exec(ing->db, sql, e2, sizeof e2);
        sqlite3_free(sql);
        if (rc)
            snprintf(err, errlen, "%s: %s", ing->db_path, e2);
    }
    analyzer_db_close(ing->db);
    origins_free(&ing->org);
    series_acc_free(&ing->series);
    free(ing->arenas);
    free(ing->pending);
    free(ing->db_path);
    free(ing);
    return rc;
}

static int step_to_ingest(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    return analyzer_ingest_step(ctx, pm, s);
}

static void end_to_ingest(void *ctx, struct ptmalloc *pm)
{
    analyzer_ingest_end_state(ctx, pm);
}

int analyzer_replay_to_db(const struct replay_options *ro, const char *db_path,
                          const struct analyzer_ingest_options *io, struct replay_summary *out,
                          char *err, size_t errlen)
{
    struct analyzer_ingest *ing = analyzer_ingest_open(db_path, ro, io, err, errlen);
    if (!ing)
        return -1;
    struct replay_summary sum;
    memset(&sum, 0, sizeof sum);
    char e2[512] = "";
    struct replay_options o = *ro;
    o.end_fn = end_to_ingest;
    o.end_ctx = ing;
    int rc = replay_run(&o, step_to_ingest, ing, &sum, NULL, e2, sizeof e2);
    if (rc) {
        sum.completed = 0;
        ing->io.no_analysis = 1;
        analyzer_ingest_finish(ing, &sum, err, errlen);
        snprintf(err, errlen, "%s", e2);
        return -1;
    }
    if (out)
        *out = sum;
    return analyzer_ingest_finish(ing, &sum, err, errlen);
}
