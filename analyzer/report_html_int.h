/* report_html_int.h: what the HTML report's files share (not part of the analyzer's contract).
 *
 * report_html.c writes the page and calls the section writers below; report_html_svg.c has the
 * text and axis helpers; report_html_series.c downsamples a run's steps; report_html_timeline.c
 * draws them; report_html_heapmap.c draws chunk snapshots; report_html_sweep.c compares the runs
 * of a sweep.
 */
#ifndef FRAGSCOPE_REPORT_HTML_INT_H
#define FRAGSCOPE_REPORT_HTML_INT_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include "analyzer.h"

/* ---- text and axes (report_html_svg.c) ---- */

/* Writes s HTML-escaped (& < > " '), control characters replaced; safe in text and attributes. */
void html_esc(FILE *f, const char *s);
/* Human-readable bytes, as analyzer_bytes (exact when asked). */
const char *html_bytes(char *buf, size_t cap, uint64_t v, int exact);
/* A step count for an axis: 950, 12.5k, 3.2M. */
const char *html_step_label(char *buf, size_t cap, double step);

/* Ticks of a linear axis from 0 (or lo) to at least hi: a "nice" step (1, 2, 2.5, 5 x 10^k in
 * the unit given) and how many ticks. For bytes the unit is a power of 1024 chosen from hi. */
struct html_axis {
    double lo, hi;          /* the axis range (hi rounded up to a tick) */
    double step;            /* between ticks */
    int ticks;              /* ticks at lo + i * step, i in [0, ticks] */
    double unit;            /* bytes axis: 1, 1024, 1024^2, ...; else 1 */
    const char *unit_name;  /* "B", "KiB", ... or "" */
};
void html_axis_bytes(struct html_axis *a, double hi, int target_ticks);
void html_axis_steps(struct html_axis *a, double lo, double hi, int target_ticks);
/* The label of tick value v on a bytes axis ("50 MiB", "2.5 GiB"). */
const char *html_axis_bytes_label(const struct html_axis *a, char *buf, size_t cap, double v);

/* State colours, shared by the heap map, the stacked area and the ledger (CSS classes st-NAME). */
const char *html_state_color(const char *state);

/* ---- the steps, downsampled (report_html_series.c) ---- */

enum html_series_id {
    HS_LIVE, HS_RSS, HS_SYSTEM, HS_TOP,
    HS_TCACHE, HS_FAST, HS_UNSORTED, HS_SMALL, HS_LARGE,
    HS_COUNT
};

struct html_bucket {
    uint64_t step_lo, step_hi;        /* the steps [step_lo, step_hi] the bucket covers */
    uint64_t min[HS_COUNT], max[HS_COUNT];
    double avg[HS_COUNT];             /* mean of the stored steps in the bucket */
    uint64_t rows;                    /* values folded in (stored steps, carried values) */
};

struct html_series {
    uint64_t first_step, last_step;
    size_t count;                     /* buckets */
    struct html_bucket *b;
    uint64_t rows;                    /* stored steps read */
    uint64_t last[HS_COUNT];          /* the values at the last stored step */
};

#define HTML_SERIES_BUCKETS 2000

/* Run's steps in at most max_buckets buckets with min / max / mean per counter: the run's stored
 * series (series.c) when it has one of at most max_buckets buckets, else html_series_scan.
 * Returns 0 (count 0 when the run has no step), or -1 with a message. */
int html_series_load(sqlite3 *db, int64_t run, size_t max_buckets, struct html_series *s,
                     char *err, size_t errlen);
/* Reads run's steps in step order (one streaming query on the primary key, never all rows in
 * memory) into exactly min(steps, max_buckets) equal buckets, NULL counters carried forward
 * (SCHEMA.md: NULL = unchanged). */
int html_series_scan(sqlite3 *db, int64_t run, size_t max_buckets, struct html_series *s,
                     char *err, size_t errlen);
void html_series_free(struct html_series *s);

/* ---- sections ---- */

void html_timeline(FILE *f, sqlite3 *db, const struct analyzer_report *r,
                   const struct html_series *s);
void html_free_stack(FILE *f, const struct analyzer_report *r, const struct html_series *s);
/* Every snapshot of the run (at most a few) as a heap map. */
void html_heap_maps(FILE *f, sqlite3 *db, const struct analyzer_report *r);
/* The settings comparison, when the database holds other runs of the same trace. */
void html_sweep(FILE *f, sqlite3 *db, const struct analyzer_report *r, int exact);

/* Exposed for the tests: the heap map of one snapshot; returns the number of SVG rects drawn,
 * or -1 when the snapshot has no chunk. */
long html_heap_map(FILE *f, sqlite3 *db, const struct analyzer_report *r, int snap,
                   const char *title);

#endif
