/* report_html_series.c: a run's steps downsampled for the charts: at most ~2000 buckets with the
 * min, max and mean of each counter, so a 10M-step run still draws as a small page.
 *
 * A run stored with its series (series.c: computed while it was ingested, the `series` table) is
 * read from there: ~2000 rows. Otherwise (short runs, databases from before the table) one query
 * walks the run's rows of `steps` in run_step order: the range run << 40 .. (run + 1)
 * << 40 of the INTEGER PRIMARY KEY, so SQLite reads the table b-tree in order, with no sort and
 * no temporary table, and each row is folded into its bucket as it arrives (memory is the buckets
 * only). A counter stored as NULL is unchanged since the previous stored row (SCHEMA.md), so the
 * last value of every counter is carried forward; a bucket whose first stored row comes after its
 * first step also counts the carried values (they held over the steps before that row), and a
 * bucket with no stored row (sampled runs, --every N) repeats the values carried into it.
 */
#include <stdlib.h>
#include <string.h>
#include "db_util.h"
#include "report_html_int.h"

void html_series_free(struct html_series *s)
{
    free(s->b);
    memset(s, 0, sizeof *s);
}

/* Folds values v into bucket b (min, max, running sum in avg). */
static void fold(struct html_bucket *b, const uint64_t v[HS_COUNT])
{
    for (int k = 0; k < HS_COUNT; k++) {
        if (!b->rows || v[k] < b->min[k])
            b->min[k] = v[k];
        if (!b->rows || v[k] > b->max[k])
            b->max[k] = v[k];
        b->avg[k] += (double)v[k];
    }
    b->rows++;
}

/* The stored series of run, if it has one that fits max_buckets: 1 loaded, 0 none, -1 error. */
static int stored_load(sqlite3 *db, int64_t run, size_t max_buckets, struct html_series *s,
                       char *err, size_t errlen)
{
    int64_t n = db_int(db, 0, "SELECT count(*) FROM series WHERE run = %lld", (long long)run);
    if (n <= 0 || (size_t)n > max_buckets)
        return 0;
    memset(s, 0, sizeof *s);
    s->b = calloc((size_t)n, sizeof *s->b);
    if (!s->b) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sqlite3_stmt *st = db_prepare(db, err, errlen,
                                  "SELECT step_lo, step_hi, rows, live_min, live_max, live_avg, "
                                  "rss_min, rss_max, rss_avg, system_min, system_max, system_avg, "
                                  "top_min, top_max, top_avg, tcache_min, tcache_max, tcache_avg, "
                                  "fast_min, fast_max, fast_avg, unsorted_min, unsorted_max, "
                                  "unsorted_avg, small_min, small_max, small_avg, large_min, "
                                  "large_max, large_avg FROM series WHERE run = %lld "
                                  "ORDER BY bucket",
                                  (long long)run);
    if (!st) {
        html_series_free(s);
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && s->count < (size_t)n) {
        struct html_bucket *b = &s->b[s->count++];
        b->step_lo = (uint64_t)sqlite3_column_int64(st, 0);
        b->step_hi = (uint64_t)sqlite3_column_int64(st, 1);
        b->rows = (uint64_t)sqlite3_column_int64(st, 2);
        for (int k = 0; k < HS_COUNT; k++) {
            b->min[k] = (uint64_t)sqlite3_column_int64(st, 3 + 3 * k);
            b->max[k] = (uint64_t)sqlite3_column_int64(st, 4 + 3 * k);
            b->avg[k] = (double)sqlite3_column_int64(st, 5 + 3 * k);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        snprintf(err, errlen, "series of run %lld: %s", (long long)run, sqlite3_errmsg(db));
        html_series_free(s);
        return -1;
    }
    s->first_step = s->b[0].step_lo;
    s->last_step = s->b[s->count - 1].step_hi;
    s->rows = (uint64_t)db_int(db, 0, "SELECT steps_stored FROM runs WHERE id = %lld",
                               (long long)run);
    /* The values at the end, for the labels at the right of the lines. */
    st = db_prepare(db, err, errlen,
                    "SELECT live, rss, system + mmapped, top, tcache_b, fast_b, unsorted_b, "
                    "small_b, large_b FROM run_points WHERE run = %lld AND label = 'end'",
                    (long long)run);
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        for (int k = 0; k < HS_COUNT; k++)
            s->last[k] = (uint64_t)sqlite3_column_int64(st, k);
    } else {
        for (int k = 0; k < HS_COUNT; k++)
            s->last[k] = (uint64_t)s->b[s->count - 1].avg[k];
    }
    sqlite3_finalize(st);
    return 1;
}

int html_series_load(sqlite3 *db, int64_t run, size_t max_buckets, struct html_series *s,
                     char *err, size_t errlen)
{
    if (!max_buckets)
        max_buckets = HTML_SERIES_BUCKETS;
    int rc = stored_load(db, run, max_buckets, s, err, errlen);
    if (rc)
        return rc < 0 ? -1 : 0;
    return html_series_scan(db, run, max_buckets, s, err, errlen);
}

int html_series_scan(sqlite3 *db, int64_t run, size_t max_buckets, struct html_series *s,
                     char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    const int64_t lo = run << 40, hi = (run + 1) << 40;
    int64_t first = db_int(db, -1, "SELECT min(run_step) FROM steps WHERE run_step >= %lld AND "
                                   "run_step < %lld", (long long)lo, (long long)hi);
    int64_t last = db_int(db, -1, "SELECT max(run_step) FROM steps WHERE run_step >= %lld AND "
                                  "run_step < %lld", (long long)lo, (long long)hi);
    if (first < 0 || last < 0)
        return 0;
    s->first_step = (uint64_t)(first - lo);
    s->last_step = (uint64_t)(last - lo);
    uint64_t final_step = (uint64_t)db_int(db, 0, "SELECT final_step FROM runs WHERE id = %lld",
                                           (long long)run);
    if (final_step > s->last_step)
        s->last_step = final_step;
    uint64_t span = s->last_step - s->first_step + 1;
    if (!max_buckets)
        max_buckets = HTML_SERIES_BUCKETS;
    size_t nb = span < max_buckets ? (size_t)span : max_buckets;
    s->b = calloc(nb, sizeof *s->b);
    if (!s->b) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->count = nb;
    for (size_t i = 0; i < nb; i++) {
        s->b[i].step_lo = s->first_step + (uint64_t)((unsigned __int128)i * span / nb);
        s->b[i].step_hi = s->first_step + (uint64_t)((unsigned __int128)(i + 1) * span / nb) - 1;
    }

    sqlite3_stmt *st = db_prepare(db, err, errlen,
                                  "SELECT run_step, live, rss, system, mmapped, top, tcache_b, "
                                  "fast_b, unsorted_b, small_b, large_b FROM steps WHERE "
                                  "run_step >= %lld AND run_step < %lld ORDER BY run_step",
                                  (long long)lo, (long long)hi);
    if (!st) {
        html_series_free(s);
        return -1;
    }
    /* Columns 1.. in the order of cur[]: live, rss, system, mmapped, top, tcache, ... */
    int64_t cur[10] = {0};
    uint64_t v[HS_COUNT] = {0};
    size_t at = 0;                      /* the bucket being filled */
    int have = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t step = (uint64_t)(sqlite3_column_int64(st, 0) - lo);
        size_t bi = (size_t)((unsigned __int128)(step - s->first_step) * nb / span);
        if (bi >= nb)
            bi = nb - 1;
        /* Buckets passed over keep the carried values. */
        while (at < bi) {
            if (!s->b[at].rows && have)
                fold(&s->b[at], v);
            at++;
        }
        if (!s->b[bi].rows && have && step > s->b[bi].step_lo)
            fold(&s->b[bi], v);
        for (int c = 0; c < 10; c++)
            if (sqlite3_column_type(st, c + 1) != SQLITE_NULL)
                cur[c] = sqlite3_column_int64(st, c + 1);
        v[HS_LIVE] = (uint64_t)cur[0];
        v[HS_RSS] = (uint64_t)cur[1];
        v[HS_SYSTEM] = (uint64_t)cur[2] + (uint64_t)cur[3];
        v[HS_TOP] = (uint64_t)cur[4];
        v[HS_TCACHE] = (uint64_t)cur[5];
        v[HS_FAST] = (uint64_t)cur[6];
        v[HS_UNSORTED] = (uint64_t)cur[7];
        v[HS_SMALL] = (uint64_t)cur[8];
        v[HS_LARGE] = (uint64_t)cur[9];
        fold(&s->b[bi], v);
        s->rows++;
        have = 1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "steps of run %lld: %s", (long long)run, sqlite3_errmsg(db));
        html_series_free(s);
        return -1;
    }
    memcpy(s->last, v, sizeof s->last);
    for (; have && at < nb; at++)
        if (!s->b[at].rows)
            fold(&s->b[at], v);
    for (size_t i = 0; i < nb; i++)
        if (s->b[i].rows)
            for (int k = 0; k < HS_COUNT; k++)
                s->b[i].avg[k] /= (double)s->b[i].rows;
    return 0;
}
