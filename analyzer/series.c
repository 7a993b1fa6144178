/* series.c: a run's counters downsampled during the ingest (see series.h).
 *
 * Up to SERIES_FINE fine buckets, each 1 << shift steps wide from the first stored step, hold
 * min, max, sum and the last value of every counter. When a step falls past the last one, pairs
 * are merged and the width doubles, so memory stays fixed and each fold is a few comparisons. At
 * finish, runs of whole fine buckets are grouped into at most SERIES_BUCKETS buckets and written
 * to `series`: a 10M-step run's timeline is then 2000 rows to read instead of 10M.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "series.h"

const char *const series_names[SERIES_COUNTERS] = {"live",   "rss",   "system",
                                                   "top",    "tcache", "fast",
                                                   "unsorted", "small", "large"};

int series_acc_init(struct series_acc *a)
{
    memset(a, 0, sizeof *a);
    a->b = calloc(SERIES_FINE, sizeof *a->b);
    return a->b ? 0 : -1;
}

void series_acc_free(struct series_acc *a)
{
    free(a->b);
    memset(a, 0, sizeof *a);
}

/* Folds fine bucket r into l (r follows l). */
static void merge(struct series_fine *l, const struct series_fine *r)
{
    if (!r->rows)
        return;
    if (!l->rows) {
        *l = *r;
        return;
    }
    for (int k = 0; k < SERIES_COUNTERS; k++) {
        if (r->min[k] < l->min[k])
            l->min[k] = r->min[k];
        if (r->max[k] > l->max[k])
            l->max[k] = r->max[k];
        l->sum[k] += r->sum[k];
        l->last[k] = r->last[k];
    }
    l->rows += r->rows;
}

/* Halves the number of fine buckets: the width doubles. */
static void widen(struct series_acc *a)
{
    size_t n = (a->n + 1) / 2;
    for (size_t i = 0; i < n; i++) {
        struct series_fine m = a->b[2 * i];
        if (2 * i + 1 < a->n)
            merge(&m, &a->b[2 * i + 1]);
        a->b[i] = m;
    }
    memset(a->b + n, 0, (SERIES_FINE - n) * sizeof *a->b);
    a->n = n;
    a->shift++;
}

void series_acc_add(struct series_acc *a, uint64_t step, const uint64_t v[SERIES_COUNTERS])
{
    if (!a->b)
        return;
    if (!a->rows)
        a->first = step;
    uint64_t i;
    while ((i = (step - a->first) >> a->shift) >= SERIES_FINE)
        widen(a);
    struct series_fine *b = &a->b[i];
    if (!b->rows) {
        b->first_row = step;
        for (int k = 0; k < SERIES_COUNTERS; k++) {
            b->min[k] = b->max[k] = v[k];
            b->sum[k] = 0;
        }
    }
    for (int k = 0; k < SERIES_COUNTERS; k++) {
        if (v[k] < b->min[k])
            b->min[k] = v[k];
        if (v[k] > b->max[k])
            b->max[k] = v[k];
        b->sum[k] += (double)v[k];
        b->last[k] = v[k];
    }
    b->rows++;
    if (i + 1 > a->n)
        a->n = (size_t)i + 1;
    a->rows++;
}

int series_acc_store(struct series_acc *a, sqlite3 *db, int64_t run, uint64_t last_step,
                     char *err, size_t errlen)
{
    char *sql = sqlite3_mprintf("DELETE FROM series WHERE run = %lld", (long long)run);
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "series: %s", sqlite3_errmsg(db));
        return -1;
    }
    if (!a->b || !a->rows)
        return 0;
    if (last_step < a->first)
        last_step = a->first;
    /* The fine buckets up to the last step (the ones after the last stored row are empty). */
    while (((last_step - a->first) >> a->shift) >= SERIES_FINE)
        widen(a);
    size_t nf = (size_t)((last_step - a->first) >> a->shift) + 1;
    if (nf < a->n)
        nf = a->n;
    size_t group = (nf + SERIES_BUCKETS - 1) / SERIES_BUCKETS;
    uint64_t width = (uint64_t)1 << a->shift;

    char q[2048];
    size_t n = (size_t)snprintf(q, sizeof q, "INSERT INTO series VALUES(?,?,?,?,?");
    for (int k = 0; k < SERIES_COUNTERS * 3; k++)
        n += (size_t)snprintf(q + n, sizeof q - n, ",?");
    snprintf(q + n, sizeof q - n, ")");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "series: %s", sqlite3_errmsg(db));
        return -1;
    }
    uint64_t carried[SERIES_COUNTERS];
    int have = 0;
    for (size_t g = 0, bucket = 0; g < nf; g += group, bucket++) {
        struct series_fine m;
        memset(&m, 0, sizeof m);
        for (size_t i = g; i < g + group && i < nf; i++)
            if (i < a->n)
                merge(&m, &a->b[i]);
        uint64_t lo = a->first + (uint64_t)g * width;
        uint64_t hi = a->first + (uint64_t)(g + group) * width - 1;
        if (hi > last_step)
            hi = last_step;
        /* The steps before its first row held the values carried from the row before. */
        if (have && (!m.rows || m.first_row > lo)) {
            struct series_fine c;
            memset(&c, 0, sizeof c);
            c.rows = 1;
            for (int k = 0; k < SERIES_COUNTERS; k++) {
                c.min[k] = c.max[k] = c.last[k] = carried[k];
                c.sum[k] = (double)carried[k];
            }
            if (m.rows) {
                struct series_fine rest = m;
                m = c;
                merge(&m, &rest);
            } else {
                m = c;
            }
        }
        if (!m.rows)
            continue;
        memcpy(carried, m.last, sizeof carried);
        have = 1;
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_int64(st, 2, (int64_t)bucket);
        sqlite3_bind_int64(st, 3, (int64_t)lo);
        sqlite3_bind_int64(st, 4, (int64_t)hi);
        sqlite3_bind_int64(st, 5, (int64_t)m.rows);
        for (int k = 0; k < SERIES_COUNTERS; k++) {
            sqlite3_bind_int64(st, 6 + 3 * k, (int64_t)m.min[k]);
            sqlite3_bind_int64(st, 7 + 3 * k, (int64_t)m.max[k]);
            sqlite3_bind_int64(st, 8 + 3 * k, (int64_t)(m.sum[k] / (double)m.rows + 0.5));
        }
        if (sqlite3_step(st) != SQLITE_DONE) {
            snprintf(err, errlen, "series: %s", sqlite3_errmsg(db));
            sqlite3_finalize(st);
            return -1;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return 0;
}
