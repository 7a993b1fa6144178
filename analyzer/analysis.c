/* analysis.c: what ingest's finish does after the steps are stored.
 *
 * The RSS peak is only known at the end, so instead of walking the heap at every new peak during
 * ingest (costly while a heap grows), the run is replayed once more (ptmalloc is deterministic)
 * to its last step, following chunk origins; at the RSS-peak step and at the last step the heap
 * is walked into snapshots 1 ("rss_peak") and 2 ("end"). At the last step the model is also asked
 * what trimming would give back (first the top alone, then malloc_trim(0)). Then the call sites
 * are symbolised and the findings computed, each fix verified by its own what-if replay.
 */
#include <stdio.h>
#include <string.h>
#include "analyzer_int.h"
#include "db_util.h"

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

int analysis_end_state_measure(struct ptmalloc *pm, struct end_state *es)
{
    memset(es, 0, sizeof *es);
    struct sysmem *mem = ptmalloc_sysmem(pm);
    struct top_find t = {0};
    ptmalloc_walk(pm, 0, find_top, &t);
    if (t.found && t.size > 33) {
        /* systrim with pad 0 releases whole pages at the end of top, keeping MINSIZE + 1. */
        uint64_t extra = (t.size - 33) & ~(uint64_t)(SYSMEM_PAGE - 1);
        uint64_t end = t.address + t.size;
        es->top_trim_gain = snapshot_resident(mem, end - extra, extra);
    }
    struct ptmalloc_stats before, after;
    ptmalloc_stats(pm, -1, &before);
    ptmalloc_trim(pm, 0, 0);
    ptmalloc_stats(pm, -1, &after);
    es->trim_gain = stats_rss(&before) > stats_rss(&after) ? stats_rss(&before) - stats_rss(&after)
                                                           : 0;
    es->known = 1;
    return 0;
}

struct analysis_ctx {
    sqlite3 *db;
    int64_t run;
    struct origins org;
    uint64_t peak_step, final_step;
    int want_peak, want_end;
    struct end_state end;
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
    if (s->step == x->final_step) {
        if (x->want_end &&
            snapshot_write(x->db, x->run, 2, s->step, "end", pm, &x->org, x->err, sizeof x->err)) {
            x->failed = 1;
            return 1;
        }
        x->want_end = 0;
        analysis_end_state_measure(pm, &x->end);
        return 1;
    }
    return 0;
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
    int have_trim = db_int(db, 0, "SELECT count(*) FROM measures WHERE run = %lld AND name = "
                                  "'trim_gain'", (long long)run) > 0;
    if (x.final_step && (x.want_peak || x.want_end || !have_trim)) {
        if (origins_init(&x.org)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        struct replay_options ro = so.ro;
        ro.until_step = x.final_step;
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
        if (x.end.known) {
            char *sql = sqlite3_mprintf(
                "INSERT OR REPLACE INTO measures VALUES(%lld, 'trim_gain', %llu, %llu);"
                "INSERT OR REPLACE INTO measures VALUES(%lld, 'top_trim_gain', %llu, %llu);",
                (long long)run, (unsigned long long)x.end.trim_gain,
                (unsigned long long)x.final_step, (long long)run,
                (unsigned long long)x.end.top_trim_gain, (unsigned long long)x.final_step);
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
    if (findings_compute(db, run, &so, !(io && io->no_whatif), io ? io->quiet : 0, err, errlen))
        return -1;
    char *sql = sqlite3_mprintf("UPDATE runs SET analyzed = 1 WHERE id = %lld", (long long)run);
    int rc = db_exec(db, sql, e2, sizeof e2);
    sqlite3_free(sql);
    if (rc)
        snprintf(err, errlen, "%s", e2);
    return rc;
}
