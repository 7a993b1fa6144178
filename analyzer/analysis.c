/* analysis.c: what ingest's finish does after the steps are stored.
 *
 * The RSS peak is only known at the end, so instead of walking the heap at every new peak during
 * ingest (costly while a heap grows), the run is replayed once more (ptmalloc is deterministic)
 * to the RSS-peak step, following chunk origins, and the heap is walked into snapshot 1
 * ("rss_peak"), and to the step where the most heap RSS was not live (snapshot 3,
 * "retention_peak", when that is not the end: e.g. right after a program frees everything). The end snapshot (2) is normally taken by ingest through the replay's end hook;
 * if it is missing, the same replay goes on to the last step. What malloc_trim(0) would give
 * back is measured by a what-if replay that trims after the last step (the model is never
 * changed during the ingest replay). Then the call sites are symbolised and the findings
 * computed, each fix verified by its own what-if replay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analyzer_int.h"
#include "db_util.h"
#include "whatif.h"

struct top_find {
    uint64_t address, size;
    int found;
};

static int find_top(void *ctx, const struct ptmalloc_chunk *c)
{
    struct top_find *t = ctx;
    if (c->state == PTM_CHUNK_TOP && c->arena == 0) {
        t->address = c->address;
        t->size = c->size;
        t->found = 1;
        return 1;
    }
    return 0;
}

uint64_t analysis_top_trim_gain(struct ptmalloc *pm)
{
    struct top_find t = {0};
    ptmalloc_walk(pm, 0, find_top, &t);
    if (!t.found || t.size <= 33)
        return 0;
    /* systrim with pad 0 releases whole pages at the end of top, keeping MINSIZE + 1. */
    uint64_t extra = (t.size - 33) & ~(uint64_t)(SYSMEM_PAGE - 1);
    return snapshot_resident(ptmalloc_sysmem(pm), t.address + t.size - extra, extra);
}

struct analysis_ctx {
    sqlite3 *db;
    int64_t run;
    struct origins org;
    uint64_t peak_step, final_step, retention_step;
    int want_peak, want_end, want_retention;
    uint64_t stop_step;
    int top_trim_known;
    uint64_t top_trim_gain;
    int failed;
    char err[512];
};

static int analysis_step(void *vctx, struct ptmalloc *pm, const struct replay_step *s)
{
    struct analysis_ctx *x = vctx;
    if (origins_step(&x->org, s)) {
        snprintf(x->err, sizeof x->err, "out of memory at step %llu", (unsigned long long)s->step);
        x->failed = 1;
        return 1;
    }
    if (x->want_peak && s->step == x->peak_step) {
        if (snapshot_write(x->db, x->run, 1, s->step, "rss_peak", pm, &x->org, x->err,
                           sizeof x->err)) {
            x->failed = 1;
            return 1;
        }
        x->want_peak = 0;
    }
    if (x->want_retention && s->step == x->retention_step) {
        if (snapshot_write(x->db, x->run, 3, s->step, "retention_peak", pm, &x->org, x->err,
                           sizeof x->err)) {
            x->failed = 1;
            return 1;
        }
        x->want_retention = 0;
    }
    if (x->want_end && s->step == x->final_step) {
        if (snapshot_write(x->db, x->run, 2, s->step, "end", pm, &x->org, x->err, sizeof x->err)) {
            x->failed = 1;
            return 1;
        }
        x->want_end = 0;
        x->top_trim_gain = analysis_top_trim_gain(pm);
        x->top_trim_known = 1;
    }
    return s->step >= x->stop_step;
}

static int has_snapshot(sqlite3 *db, int64_t run, int snap)
{
    return db_int(db, 0, "SELECT count(*) FROM snapshots WHERE run = %lld AND snap = %d",
                  (long long)run, snap) > 0;
}

int analyzer_analyze_run(sqlite3 *db, int64_t run, const struct analyzer_ingest_options *io,
                         char *err, size_t errlen)
{
    struct stored_options so;
    if (stored_options_load(db, run, &so, err, errlen))
        return -1;
    if (!so.ro.trace_path) {
        snprintf(err, errlen, "run %lld has no trace: nothing to analyse", (long long)run);
        return -1;
    }
    char e2[512];
    struct analysis_ctx x;
    memset(&x, 0, sizeof x);
    x.db = db;
    x.run = run;
    x.peak_step = (uint64_t)db_int(db, 0, "SELECT peak_rss_step FROM runs WHERE id = %lld",
                                   (long long)run);
    x.final_step = (uint64_t)db_int(db, 0, "SELECT final_step FROM runs WHERE id = %lld",
                                    (long long)run);
    x.want_peak = x.peak_step && !has_snapshot(db, run, 1);
    x.want_end = !has_snapshot(db, run, 2);
    struct run_point rp;
    if (run_point_load(db, run, "retention_peak", &rp) == 0 && rp.step != x.final_step &&
        !has_snapshot(db, run, 3)) {
        x.retention_step = rp.step;
        x.want_retention = 1;
    }
    x.stop_step = x.want_end ? x.final_step : 0;
    if (x.want_peak && x.peak_step > x.stop_step)
        x.stop_step = x.peak_step;
    if (x.want_retention && x.retention_step > x.stop_step)
        x.stop_step = x.retention_step;
    if (x.final_step && x.stop_step) {
        if (origins_init(&x.org)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        struct replay_options ro = so.ro;
        ro.until_step = x.stop_step;
        struct replay_summary sum;
        memset(&sum, 0, sizeof sum);
        if (io && !io->quiet)
            fprintf(stderr, "analysis: replaying %s for the snapshots\n", so.ro.trace_path);
        if (db_exec(db, "BEGIN", e2, sizeof e2)) {
            origins_free(&x.org);
            snprintf(err, errlen, "%s", e2);
            return -1;
        }
        int rc = replay_run(&ro, analysis_step, &x, &sum, NULL, e2, sizeof e2);
        origins_free(&x.org);
        if (rc || x.failed) {
            db_exec(db, "ROLLBACK", e2 + 256, 256);
            snprintf(err, errlen, "analysis replay: %s", x.failed ? x.err : e2);
            return -1;
        }
        if (x.top_trim_known) {
            char *sql = sqlite3_mprintf(
                "INSERT OR REPLACE INTO measures VALUES(%lld, 'top_trim_gain', %llu, %llu);",
                (long long)run, (unsigned long long)x.top_trim_gain,
                (unsigned long long)x.final_step);
            rc = db_exec(db, sql, e2, sizeof e2);
            sqlite3_free(sql);
        }
        if (rc || db_exec(db, "COMMIT", e2, sizeof e2)) {
            snprintf(err, errlen, "%s", e2);
            return -1;
        }
    }
    if (sites_resolve(db, run, so.ro.trace_path, e2, sizeof e2) && io && !io->quiet)
        fprintf(stderr, "analysis: call sites not symbolised: %s\n", e2);
    struct whatif_cache *cache = NULL;
    int settled = 0;
    if (!(io && io->no_whatif)) {
        cache = calloc(1, sizeof *cache);
        if (cache) {
            cache->so = &so;
            cache->spare_thread = (uint32_t)db_int(db, 1, "SELECT threads FROM runs WHERE id = %lld",
                                                   (long long)run);
            cache->quiet = io ? io->quiet : 0;
        }
    }
    if (cache) {
        /* The replays the findings ask for, run side by side (whatif.c): the findings are made
         * with the replays queued, the queue is run, and again while the answers lead to new
         * questions. */
        cache->collect = 1;
        for (int round = 0; round < 4 && !settled; round++) {
            whatif_cached(cache, "", 1, 0, 0, x.final_step);
            if (findings_compute(db, run, cache, err, errlen)) {
                free(cache);
                return -1;
            }
            /* Nothing new asked: this round had every answer, its findings are the final ones. */
            settled = !cache->queued;
            if (settled)
                break;
            whatif_run_queued(cache, io ? io->whatif_workers : 0);
        }
        cache->collect = 0;
    }
    if (cache) {
        /* What malloc_trim(0) would give back at the end: the same run, trimmed after its last
         * step. */
        const struct whatif_result *t = whatif_cached(cache, "", 1, 0, 0, x.final_step);
        uint64_t final_rss = (uint64_t)db_int(db, 0, "SELECT final_rss FROM runs WHERE id = %lld",
                                              (long long)run);
        if (t) {
            char *sql = sqlite3_mprintf(
                "INSERT OR REPLACE INTO measures VALUES(%lld, 'trim_gain', %llu, %llu)",
                (long long)run,
                (unsigned long long)(final_rss > t->final_rss ? final_rss - t->final_rss : 0),
                (unsigned long long)x.final_step);
            db_exec(db, sql, e2, sizeof e2);
            sqlite3_free(sql);
        }
    }
    int frc = settled ? 0 : findings_compute(db, run, cache, err, errlen);
    free(cache);
    if (frc)
        return -1;
    char *sql = sqlite3_mprintf("UPDATE runs SET analyzed = 1 WHERE id = %lld", (long long)run);
    int rc = db_exec(db, sql, e2, sizeof e2);
    sqlite3_free(sql);
    if (rc)
        snprintf(err, errlen, "%s", e2);
    return rc;
}
