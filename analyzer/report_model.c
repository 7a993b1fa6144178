/* report_model.c: the data model of a report, read from the database: the run, the ledger of
 * heap RSS at the end and at the RSS peak, the fragmentation measures, the free-chunk histogram
 * and the findings. Renderers (report_text.c, report_json.c, later html) print only this.
 *
 * Everything comes from per-run rows made at the end of ingest (runs, run_points, measures,
 * snapshots, findings), never from a scan of `steps`, so a report on a 10M-step run is instant.
 * The ledger is exact when a chunk snapshot exists: each chunk's resident bytes are summed by
 * state, and an in-use chunk's are split between the program's request and the allocator's
 * overhead in proportion. Without a snapshot it is estimated from the counters (non-resident
 * bytes taken from the top first, where never-touched pages live).
 */
#include <stdlib.h>
#include <string.h>
#include "analyzer_int.h"
#include "db_util.h"

static void ledger_from_snapshot(sqlite3 *db, int64_t run, int snap, uint64_t step,
                                 uint64_t rss, struct analyzer_ledger *l)
{
    char err[256];
    memset(l, 0, sizeof *l);
    sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                  "SELECT state, sum(resident), sum(size - resident), "
                                  "sum(CASE WHEN request IS NOT NULL AND size > 0 THEN "
                                  "resident * min(request, size) / size ELSE 0 END) "
                                  "FROM chunks WHERE run = %lld AND snap = %d GROUP BY state",
                                  (long long)run, snap);
    if (!st)
        return;
    uint64_t sum = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        uint64_t res = (uint64_t)sqlite3_column_int64(st, 1);
        uint64_t held = (uint64_t)sqlite3_column_int64(st, 3);
        l->not_resident += (uint64_t)sqlite3_column_int64(st, 2);
        sum += res;
        if (!strcmp(state, "in_use")) {
            l->held += held;
            l->overhead += res - held;
        } else if (!strcmp(state, "tcache"))
            l->tcache += res;
        else if (!strcmp(state, "fastbin"))
            l->fastbins += res;
        else if (!strcmp(state, "unsorted"))
            l->unsorted += res;
        else if (!strcmp(state, "small"))
            l->small += res;
        else if (!strcmp(state, "large"))
            l->large += res;
        else if (!strcmp(state, "top"))
            l->top += res;
        else if (!strcmp(state, "mmapped"))
            l->mmapped += res;
        else
            l->overhead += res;
    }
    sqlite3_finalize(st);
    /* Pages the walk does not cover (none, if the model's walk is complete) are overhead. */
    if (rss > sum)
        l->overhead += rss - sum;
    l->rss = l->held + l->overhead + l->tcache + l->fastbins + l->unsorted + l->small + l->large +
             l->top + l->mmapped;
    l->step = step;
    l->exact = 1;
    l->valid = 1;
}

static uint64_t take(uint64_t *line, uint64_t *need)
{
    uint64_t t = *line < *need ? *line : *need;
    *line -= t;
    *need -= t;
    return t;
}

static void ledger_from_point(const struct run_point *p, struct analyzer_ledger *l)
{
    memset(l, 0, sizeof *l);
    if (!p->valid)
        return;
    const struct ptmalloc_stats *s = &p->stats;
    l->held = p->live < s->in_use_bytes + s->mmapped_bytes ? p->live : s->in_use_bytes;
    l->overhead = s->in_use_bytes > l->held ? s->in_use_bytes - l->held : 0;
    l->tcache = s->tcache_bytes;
    l->fastbins = s->fastbin_bytes;
    l->unsorted = s->unsorted_bytes;
    l->small = s->small_bytes;
    l->large = s->large_bytes;
    l->top = s->top_bytes;
    l->mmapped = s->mmapped_resident_bytes;
    uint64_t rss = stats_rss(s);
    uint64_t total = l->held + l->overhead + l->tcache + l->fastbins + l->unsorted + l->small +
                     l->large + l->top + l->mmapped;
    if (total > rss) {
        uint64_t need = total - rss;
        l->not_resident = need;
        take(&l->top, &need);
        take(&l->large, &need);
        take(&l->unsorted, &need);
        take(&l->small, &need);
        take(&l->fastbins, &need);
        take(&l->tcache, &need);
        take(&l->overhead, &need);
        take(&l->held, &need);
    } else {
        l->overhead += rss - total;
    }
    l->rss = rss;
    l->step = p->step;
    l->valid = 1;
}

static void load_ledger(sqlite3 *db, int64_t run, int snap, const char *label,
                        uint64_t peak_system, struct analyzer_ledger *l)
{
    struct run_point p;
    run_point_load(db, run, label, &p);
    int64_t snap_step = db_int(db, -1, "SELECT step FROM snapshots WHERE run = %lld AND snap = %d",
                               (long long)run, snap);
    if (snap_step >= 0 && (!p.valid || (uint64_t)snap_step == p.step))
        ledger_from_snapshot(db, run, snap, (uint64_t)snap_step, p.valid ? stats_rss(&p.stats) : 0,
                             l);
    else
        ledger_from_point(&p, l);
    if (p.valid) {
        uint64_t sys = p.stats.system_bytes + p.stats.mmapped_bytes;
        l->released = peak_system > sys ? peak_system - sys : 0;
    }
}

static int load_run(sqlite3 *db, int64_t run, struct analyzer_run_info *ri, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st = db_prepare(db, err, errlen,
                                  "SELECT id, trace, settings, tool_version, started_at, "
                                  "ended_at, completed, events, steps_stored, every, arenas, "
                                  "threads, seconds, final_step FROM runs WHERE id = %lld",
                                  (long long)run);
    if (!st)
        return -1;
    int rc = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        ri->id = sqlite3_column_int64(st, 0);
        db_text(st, 1, ri->trace, sizeof ri->trace);
        db_text(st, 2, ri->settings, sizeof ri->settings);
        db_text(st, 3, ri->tool_version, sizeof ri->tool_version);
        db_text(st, 4, ri->started, sizeof ri->started);
        db_text(st, 5, ri->ended, sizeof ri->ended);
        ri->completed = sqlite3_column_int(st, 6);
        ri->events = (uint64_t)sqlite3_column_int64(st, 7);
        ri->steps_stored = (uint64_t)sqlite3_column_int64(st, 8);
        ri->every = (uint64_t)sqlite3_column_int64(st, 9);
        ri->arenas = (uint64_t)sqlite3_column_int64(st, 10);
        ri->threads = (uint64_t)sqlite3_column_int64(st, 11);
        ri->seconds = sqlite3_column_double(st, 12);
        ri->final_step = (uint64_t)sqlite3_column_int64(st, 13);
        rc = 0;
    } else {
        snprintf(err, errlen, "no run %lld in the database", (long long)run);
    }
    sqlite3_finalize(st);
    return rc;
}

static void load_measures(sqlite3 *db, int64_t run, struct analyzer_measures *m)
{
    struct run_point lp, rp, end;
    run_point_load(db, run, "live_peak", &lp);
    run_point_load(db, run, "rss_peak", &rp);
    run_point_load(db, run, "end", &end);
    m->peak_live = lp.live;
    m->peak_live_step = lp.step;
    m->rss_at_live_peak = stats_rss(&lp.stats);
    m->peak_rss = stats_rss(&rp.stats);
    m->peak_rss_step = rp.step;
    m->live_at_rss_peak = rp.live;
    m->frag_at_live_peak = lp.live ? ((double)m->rss_at_live_peak - lp.live) / lp.live : 0;
    m->frag_at_rss_peak = rp.live ? ((double)m->peak_rss - rp.live) / rp.live : 0;
    m->jw_ratio = lp.live ? (double)m->peak_rss / lp.live : 0;
    m->final_live = end.live;
    m->final_rss = stats_rss(&end.stats);
    m->retention = m->final_rss ? ((double)m->final_rss - (double)m->final_live) / m->final_rss
                                : 0;
    if (m->retention < 0)
        m->retention = 0;
    int64_t trim = db_int(db, -1, "SELECT value FROM measures WHERE run = %lld AND "
                                  "name = 'trim_gain'", (long long)run);
    int64_t top = db_int(db, -1, "SELECT value FROM measures WHERE run = %lld AND "
                                 "name = 'top_trim_gain'", (long long)run);
    if (trim >= 0 && top >= 0) {
        m->trim_known = 1;
        m->trim_gain = (uint64_t)trim;
        m->top_trim_gain = (uint64_t)top;
    }
}

static int bucket_of(uint64_t size)
{
    int b = 0;
    while (size > 1 && b < 63) {
        size >>= 1;
        b++;
    }
    return b;
}

static void load_histogram(sqlite3 *db, int64_t run, struct analyzer_report *r)
{
    char err[256];
    int snap = 2;
    if (db_int(db, 0, "SELECT count(*) FROM snapshots WHERE run = %lld AND snap = 2",
               (long long)run) == 0)
        return;
    sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                  "SELECT arena, size, count(*) FROM chunks WHERE run = %lld AND "
                                  "snap = %d AND state IN ('tcache','fastbin','unsorted','small',"
                                  "'large') GROUP BY arena, size ORDER BY arena, size",
                                  (long long)run, snap);
    if (!st)
        return;
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int arena = sqlite3_column_int(st, 0);
        uint64_t size = (uint64_t)sqlite3_column_int64(st, 1);
        uint64_t count = (uint64_t)sqlite3_column_int64(st, 2);
        int b = bucket_of(size);
        struct analyzer_hist_bucket *last = r->hist_count ? &r->hist[r->hist_count - 1] : NULL;
        if (!last || last->arena != arena || last->lo != (1ull << b)) {
            if (r->hist_count == cap) {
                cap = cap ? cap * 2 : 32;
                struct analyzer_hist_bucket *n = realloc(r->hist, cap * sizeof *n);
                if (!n)
                    break;
                r->hist = n;
            }
            last = &r->hist[r->hist_count++];
            memset(last, 0, sizeof *last);
            last->arena = arena;
            last->lo = 1ull << b;
            last->hi = b < 63 ? 1ull << (b + 1) : UINT64_MAX;
        }
        last->count += count;
        last->bytes += count * size;
    }
    sqlite3_finalize(st);
}

static void load_findings(sqlite3 *db, int64_t run, struct analyzer_report *r)
{
    char err[256];
    sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                  "SELECT id, kind, cause, evidence, fix, bytes, step, arena, "
                                  "chunk_address, chunk_size, alloc_step, site FROM findings "
                                  "WHERE run = %lld ORDER BY id",
                                  (long long)run);
    if (!st)
        return;
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (r->finding_count == cap) {
            cap = cap ? cap * 2 : 8;
            struct analyzer_finding *n = realloc(r->findings, cap * sizeof *n);
            if (!n)
                break;
            r->findings = n;
        }
        struct analyzer_finding *f = &r->findings[r->finding_count++];
        memset(f, 0, sizeof *f);
        int64_t id = sqlite3_column_int64(st, 0);
        db_text(st, 1, f->kind, sizeof f->kind);
        db_text(st, 2, f->cause, sizeof f->cause);
        db_text(st, 3, f->evidence, sizeof f->evidence);
        db_text(st, 4, f->fix, sizeof f->fix);
        f->bytes = (uint64_t)sqlite3_column_int64(st, 5);
        f->step = (uint64_t)sqlite3_column_int64(st, 6);
        f->arena = sqlite3_column_type(st, 7) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 7);
        f->chunk_address = (uint64_t)sqlite3_column_int64(st, 8);
        f->chunk_size = (uint64_t)sqlite3_column_int64(st, 9);
        f->alloc_step = (uint64_t)sqlite3_column_int64(st, 10);
        db_text(st, 11, f->site, sizeof f->site);
        sqlite3_stmt *w = db_prepare(db, err, sizeof err,
                                     "SELECT setting, rss_before, rss_after, system_before, "
                                     "system_after, helps, step, peak_before, peak_after "
                                     "FROM whatifs WHERE run = %lld AND "
                                     "finding = %lld ORDER BY id",
                                     (long long)run, (long long)id);
        while (w && sqlite3_step(w) == SQLITE_ROW && f->whatif_count < ANALYZER_MAX_WHATIF) {
            struct analyzer_whatif *x = &f->whatif[f->whatif_count++];
            db_text(w, 0, x->setting, sizeof x->setting);
            x->before = (uint64_t)sqlite3_column_int64(w, 1);
            x->after = (uint64_t)sqlite3_column_int64(w, 2);
            x->system_before = (uint64_t)sqlite3_column_int64(w, 3);
            x->system_after = (uint64_t)sqlite3_column_int64(w, 4);
            x->helps = sqlite3_column_int(w, 5);
            x->step = (uint64_t)sqlite3_column_int64(w, 6);
            x->peak_before = (uint64_t)sqlite3_column_int64(w, 7);
            x->peak_after = (uint64_t)sqlite3_column_int64(w, 8);
        }
        sqlite3_finalize(w);
    }
    sqlite3_finalize(st);
}

/* How much a finding's best verified fix gives back; a setting outranks a code change
 * (malloc_trim, freeing a block) that the program would have to make. */
static void finding_rank(const struct analyzer_finding *f, int *setting, uint64_t *saves)
{
    *setting = 0;
    *saves = 0;
    for (unsigned i = 0; i < f->whatif_count; i++) {
        const struct analyzer_whatif *w = &f->whatif[i];
        if (!w->helps)
            continue;
        int is_setting = !strstr(w->setting, "malloc_trim") && !strstr(w->setting, "freed");
        uint64_t d = w->before > w->after ? w->before - w->after : 0;
        uint64_t dp = w->peak_before > w->peak_after ? w->peak_before - w->peak_after : 0;
        if (dp > d)
            d = dp;
        if (is_setting > *setting || (is_setting == *setting && d > *saves)) {
            *setting = is_setting;
            *saves = d;
        }
    }
}

static int finding_order(const void *a, const void *b)
{
    int sa, sb;
    uint64_t da, db;
    finding_rank(a, &sa, &da);
    finding_rank(b, &sb, &db);
    if (sa != sb)
        return sb - sa;
    if (da != db)
        return da < db ? 1 : -1;
    return 0;
}

int analyzer_report_load(sqlite3 *db, int64_t run, struct analyzer_report *r, char *err,
                         size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (run < 0)
        run = analyzer_db_last_run(db);
    if (run < 0) {
        snprintf(err, errlen, "the database holds no run");
        return -1;
    }
    if (load_run(db, run, &r->run, err, errlen))
        return -1;
    uint64_t peak_system = (uint64_t)db_int(db, 0, "SELECT peak_system FROM runs WHERE id = %lld",
                                            (long long)run);
    load_ledger(db, run, 2, "end", peak_system, &r->at_end);
    load_ledger(db, run, 1, "rss_peak", peak_system, &r->at_rss_peak);
    load_measures(db, run, &r->measures);
    load_histogram(db, run, r);
    load_findings(db, run, r);
    /* Most useful first: stable for equal ranks (insertion keeps the detectors' order). */
    for (size_t i = 1; i < r->finding_count; i++) {
        struct analyzer_finding tmp = r->findings[i];
        size_t j = i;
        while (j > 0 && finding_order(&r->findings[j - 1], &tmp) > 0) {
            r->findings[j] = r->findings[j - 1];
            j--;
        }
        r->findings[j] = tmp;
    }
    return 0;
}

void analyzer_report_free(struct analyzer_report *r)
{
    free(r->hist);
    free(r->findings);
    r->hist = NULL;
    r->findings = NULL;
    r->hist_count = r->finding_count = 0;
}
