/* series.h: a run's counters downsampled while it is ingested, for the HTML timeline (internal
 * to the analyzer). Stored at finish in the `series` table (SCHEMA.md) when the run has at least
 * analyzer_ingest_options.series_min_steps stored steps; the report reads it instead of
 * streaming every step (report_html_series.c falls back to that for runs and databases without
 * one). */
#ifndef FRAGSCOPE_SERIES_H
#define FRAGSCOPE_SERIES_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* The counters, in the order of html_series_id (report_html_int.h). */
enum { SERIES_COUNTERS = 9 };
extern const char *const series_names[SERIES_COUNTERS];  /* live, rss, system, top, tcache, ... */

#define SERIES_FINE 4096        /* buckets kept while ingesting (each a power-of-2 of steps) */
#define SERIES_BUCKETS 2000     /* at most this many stored */

struct series_fine {
    uint64_t first_row;         /* step of its first stored row, 0 = none */
    uint64_t rows;
    uint64_t min[SERIES_COUNTERS], max[SERIES_COUNTERS], last[SERIES_COUNTERS];
    double sum[SERIES_COUNTERS];
};

struct series_acc {
    uint64_t first;             /* the first stored step */
    unsigned shift;             /* fine buckets are 1 << shift steps wide */
    size_t n;                   /* fine buckets in use */
    uint64_t rows;
    struct series_fine *b;      /* SERIES_FINE */
};

int series_acc_init(struct series_acc *a);
void series_acc_free(struct series_acc *a);
/* Folds the counters of stored step `step` (steps come in increasing order). */
void series_acc_add(struct series_acc *a, uint64_t step, const uint64_t v[SERIES_COUNTERS]);
/* Writes at most SERIES_BUCKETS buckets covering [first, last_step] as run's rows of `series`
 * (replacing any). Every bucket spans whole fine buckets, so its min and max are exactly those of
 * its steps; a bucket whose steps begin before its first stored row (or that has none) also
 * counts the values carried from the row before. 0, or -1 with a message. */
int series_acc_store(struct series_acc *a, sqlite3 *db, int64_t run, uint64_t last_step,
                     char *err, size_t errlen);

#endif
