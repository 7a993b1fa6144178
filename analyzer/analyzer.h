/* analyzer.h: the analyzer's public contract: storing replays in SQLite and explaining them.
 *
 * Ingest. A replay hands every step to analyzer_ingest_step (it has the replay_step_fn shape, so
 * it can be passed to replay_run directly with the ingest as ctx):
 *
 *     struct analyzer_ingest *ing = analyzer_ingest_open(db, &ro, &io, err, sizeof err);
 *     replay_run(&ro, analyzer_ingest_step, ing, &sum, NULL, err, sizeof err);
 *     analyzer_ingest_finish(ing, &sum, err, sizeof err);      (always: also after SIGINT)
 *
 * or, in one call, analyzer_replay_to_db(). Steps are committed in chunks, so a replay stopped at
 * any point leaves a consistent database whose run is marked incomplete; finish computes the
 * per-run aggregates, the chunk snapshots (the RSS peak, the end, --snapshot-at), the call sites
 * and the findings (each fix verified by a what-if replay), then marks the run complete when the
 * replay reached the end of its trace. The schema is documented in SCHEMA.md.
 *
 * Report. analyzer_report_load() builds the data model of a report (ledger, measures, histogram,
 * findings) from a database; renderers (text, json, and later html) only print that model.
 */
#ifndef FRAGSCOPE_ANALYZER_H
#define FRAGSCOPE_ANALYZER_H

#include <stdint.h>
#include <stdio.h>
#include "../replayer/replay.h"

#define ANALYZER_SCHEMA_VERSION 2
#define ANALYZER_MAX_SNAPSHOT_AT 64

struct sqlite3;

/* ---- Database ---- */

/* Opens (creating it 0600, never through a symlink, when missing) a fragscope database and
 * brings its schema to ANALYZER_SCHEMA_VERSION. NULL with a message naming the file on error,
 * including a database written by a newer fragscope. */
struct sqlite3 *analyzer_db_open(const char *path, int create, char *err, size_t errlen);
void analyzer_db_close(struct sqlite3 *db);
/* The newest run (highest id), or -1 when the database has none. */
int64_t analyzer_db_last_run(struct sqlite3 *db);

/* ---- Ingest ---- */

struct analyzer_ingest_options {
    uint64_t every;                    /* keep one step in N (1 = all); peaks are always kept */
    uint64_t snapshot_at[ANALYZER_MAX_SNAPSHOT_AT];
    unsigned snapshot_at_count;
    uint64_t commit_every;             /* steps per committed chunk (0 = default) */
    int no_analysis;                   /* finish: aggregates only (no snapshots, sites, findings) */
    int no_whatif;                     /* finish: findings without what-if replays */
    int quiet;                         /* no progress lines on stderr */
    unsigned whatif_workers;           /* what-if replays at once (0: one per CPU, 1: in turn) */
    uint64_t series_min_steps;         /* store the downsampled series (SCHEMA.md: series) when
                                          at least this many steps are stored (default 1000000) */
};
void analyzer_ingest_options_default(struct analyzer_ingest_options *io);

struct analyzer_ingest;

/* Starts a run in `db_path`. `ro` is what the replay runs with (stored with the run: the trace,
 * settings and options, so what-if replays can repeat it); it may have a NULL trace_path for
 * synthetic steps (then nothing is replayed at finish). */
struct analyzer_ingest *analyzer_ingest_open(const char *db_path, const struct replay_options *ro,
                                             const struct analyzer_ingest_options *io, char *err,
                                             size_t errlen);
/* The replay_step_fn: stores one step. pm may be NULL (synthetic steps). Returns non-zero (stop
 * the replay) only on a database error, kept for analyzer_ingest_finish to report. */
int analyzer_ingest_step(void *ingest, struct ptmalloc *pm, const struct replay_step *s);
/* Optional: the model at the end of the replay, while it still exists; gives the end snapshot
 * and the trim measurements without replaying again. */
int analyzer_ingest_end_state(struct analyzer_ingest *ing, struct ptmalloc *pm);
int64_t analyzer_ingest_run_id(const struct analyzer_ingest *ing);
/* Commits what is left, stores aggregates, runs the analysis (unless no_analysis), marks the run
 * complete when sum->completed, and frees `ing`. sum may be NULL (synthetic: computed from the
 * steps seen). Returns 0, or -1 with a message. */
int analyzer_ingest_finish(struct analyzer_ingest *ing, const struct replay_summary *sum,
                           char *err, size_t errlen);

/* Replays ro->trace_path into db_path (open, replay_run, finish). Returns 0 or -1. */
int analyzer_replay_to_db(const struct replay_options *ro, const char *db_path,
                          const struct analyzer_ingest_options *io, struct replay_summary *out,
                          char *err, size_t errlen);

/* Re-runs the analysis of a stored run (snapshots, sites, findings); used by `report` when a
 * run has none yet. */
int analyzer_analyze_run(struct sqlite3 *db, int64_t run, const struct analyzer_ingest_options *io,
                         char *err, size_t errlen);

/* ---- Report data model ---- */

/* Where heap RSS is, byte for byte; the lines add up to rss. */
struct analyzer_ledger {
    int valid;
    uint64_t step;
    int exact;              /* from a chunk snapshot (resident bytes per chunk); else estimated */
    uint64_t held;          /* requested bytes of live allocations */
    uint64_t overhead;      /* headers, padding, allocator-internal chunks */
    uint64_t tcache, fastbins, unsorted, small, large, top, mmapped;
    uint64_t rss;           /* heap RSS: the sum of the lines above */
    uint64_t not_resident;  /* mapped but not resident (released with madvise, never touched) */
    uint64_t released;      /* given back to the system so far (trims, unmaps): memo */
};

struct analyzer_measures {
    uint64_t peak_live, peak_live_step, rss_at_live_peak;
    uint64_t peak_rss, peak_rss_step, live_at_rss_peak;
    double frag_at_live_peak;   /* (heap RSS - live) / live at the live peak */
    double frag_at_rss_peak;    /* the same at the heap-RSS peak */
    double jw_ratio;            /* Johnstone-Wilson: max held / max live */
    uint64_t final_live, final_rss;
    double retention;           /* (final RSS - final live) / final RSS */
    int trim_known;             /* the two below were measured on the model at the end */
    uint64_t trim_gain;         /* what malloc_trim(0) would give back now */
    uint64_t top_trim_gain;     /* what trimming the top (systrim, pad 0) would give back */
};

struct analyzer_hist_bucket {
    int arena;
    uint64_t lo, hi;            /* chunk sizes in [lo, hi) */
    uint64_t count, bytes;
};

struct analyzer_whatif {
    char setting[96];           /* "tcache_count=0", "malloc_trim(0) at the end", ... */
    uint64_t step;              /* measured after this step (the finding's) */
    uint64_t before, after;     /* heap RSS there, as run and with the change */
    uint64_t system_before, system_after; /* heap bytes obtained from the system, at the end */
    uint64_t peak_before, peak_after;     /* peak heap RSS */
    int helps;                  /* after (or the peak) is materially smaller */
};

#define ANALYZER_MAX_WHATIF 6
struct analyzer_finding {
    char kind[32];              /* stable id: top-pinned-by-tcache, arena-max, ... */
    char cause[256];
    char evidence[1024];
    char fix[512];
    uint64_t bytes;             /* the memory the finding is about */
    uint64_t step;              /* the step it is seen at */
    int arena;
    uint64_t chunk_address, chunk_size, alloc_step;
    char site[256];             /* the call site blamed, symbolised when possible */
    unsigned whatif_count;
    struct analyzer_whatif whatif[ANALYZER_MAX_WHATIF];
};

struct analyzer_run_info {
    int64_t id;
    char trace[1024];
    char settings[512];
    char tool_version[32];
    char started[32], ended[32];
    int completed;
    uint64_t events, steps_stored, every, arenas, threads, final_step;
    double seconds;
};

struct analyzer_report {
    struct analyzer_run_info run;
    struct analyzer_ledger at_end, at_rss_peak;
    struct analyzer_measures measures;
    struct analyzer_hist_bucket *hist;
    size_t hist_count;
    struct analyzer_finding *findings;
    size_t finding_count;
};

/* Loads run `run` (-1: the newest). Returns 0, or -1 with a message. */
int analyzer_report_load(struct sqlite3 *db, int64_t run, struct analyzer_report *r, char *err,
                         size_t errlen);
void analyzer_report_free(struct analyzer_report *r);

struct analyzer_render_options {
    int exact_bytes;            /* --bytes */
    int color;                  /* ANSI colour (only on a terminal, never with a
                                   non-empty NO_COLOR) */
    int width;                  /* wrap long lines at this column, continuing them indented
                                   (0: do not wrap) */
};
void analyzer_report_text(FILE *f, const struct analyzer_report *r,
                          const struct analyzer_render_options *o);
void analyzer_report_json(FILE *f, const struct analyzer_report *r);

/* Human-readable bytes ("206 MiB", "132 KiB", "52736 B"); exact prints the plain number. */
const char *analyzer_bytes(char *buf, size_t cap, uint64_t bytes, int exact);

#endif
