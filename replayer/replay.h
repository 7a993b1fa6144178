/* replay.h: driving a recorded trace through the allocator model.
 *
 * The contract between the replayer and its users (the CLI's `replay`, the analyzer's ingest,
 * what-if replays and sweeps). A replay reads the trace as a stream (never whole), maps each
 * traced pointer to the replayed chunk, performs thread starts and exits, and after every
 * event hands the caller a `struct replay_step` with the model's counters. With `verify` it
 * compares each replayed address with the recorded one (normalised as described in verify.c).
 *
 * What the model cannot do as the program did is counted in the summary and skipped, never
 * fatal: a free of a pointer the trace never allocated (allocated before tracing began, or by a
 * path the tracer missed) or a second free of a pointer (step->skipped = 1); a realloc of an
 * unknown pointer is replayed as a malloc of the new size (realloc(p, 0) of an unknown p is
 * skipped); an allocation that returns a pointer still live in the trace (its free went
 * untraced) frees the old replayed chunk first; calls the model refuses (PTM_CORRUPT) are
 * skipped. Calls that failed in the recording (NULL) are replayed; if the model succeeds, the
 * block is freed again at once (the program never had it).
 *
 * Every chunk the model hands out or takes back is visible to the step callback: the event's
 * own (replayed_ptr, replayed_old_ptr), and the two the event does not name, on the same step
 * with a flag in `did` and the chunk in implied_free_ptr (REPLAY_DID_UNTRACED_FREE,
 * REPLAY_DID_DISCARDED). With --frees late a free reaches the model at a later step than the
 * one that reports it (replayed_old_ptr at its recorded step).
 */
#ifndef FRAGSCOPE_REPLAY_H
#define FRAGSCOPE_REPLAY_H

#include <stdint.h>
#include <stdio.h>
#include "../allocator/ptmalloc.h"
#include "../tracer/trace_format.h"

enum replay_touch { REPLAY_TOUCH_ALL, REPLAY_TOUCH_NONE };
enum replay_arenas { REPLAY_ARENAS_SERIAL, REPLAY_ARENAS_RECORDED };
enum replay_verify { REPLAY_VERIFY_OFF, REPLAY_VERIFY_ON, REPLAY_VERIFY_STRICT };
/* When a free reaches the model while other threads run. The tracer numbers a free before the
 * real call (so that a reuse of the address is always numbered after it), and the real free may
 * then wait for an arena lock that another thread holds: in the recorded order such a free comes
 * too early. LATE performs each free just before its thread's next call, or earlier when a later
 * allocation in the trace overlaps the freed chunk, or before any sample, mallopt, malloc_trim,
 * thread start or exit. With one running thread both orders are the same. */
enum replay_free_order { REPLAY_FREES_RECORDED, REPLAY_FREES_LATE };

#define REPLAY_MAX_OVERRIDES 32

struct replay_options {
    const char *trace_path;
    /* Settings: the trace's recorded environment, then these, in order. */
    const char *set[REPLAY_MAX_OVERRIDES];   /* "name=value" (ptmalloc_settings_set) */
    unsigned set_count;
    const char *tunables;                    /* GLIBC_TUNABLES syntax, or NULL */
    uint32_t cpus;                           /* 0 = the trace's */
    int no_mallopt;                          /* ignore the program's own mallopt calls */
    enum replay_touch touch;
    enum replay_arenas arenas;
    enum replay_verify verify;
    uint64_t until_step;                     /* 0 = to the end */
    int progress;                            /* progress bar on stderr when it is a tty */
    volatile int *interrupted;               /* set by a SIGINT handler: stop cleanly */
    /* ---- additions (replay_options_default sets them) ---- */
    unsigned verify_details;                 /* divergences described in full (default 10) */
    /* Receives every system event of the model (sbrk, mmap, trim, ...) as it happens, during
     * the step that caused it (before the step callback). NULL = none. */
    void (*alloc_event_fn)(void *ctx, const struct ptmalloc_event *ev);
    void *alloc_event_ctx;
    /* Called once after the last step of the replay (end of trace, --until, SIGINT or the step
     * callback's stop), while the model still exists. NULL = none. */
    void (*end_fn)(void *ctx, struct ptmalloc *pm);
    void *end_ctx;
    enum replay_free_order free_order;       /* default REPLAY_FREES_RECORDED */
    /* Name the call sites of unknown frees (summary.unknown_free_sites) by function and
     * file:line as well, with addr2line at the end of the replay (symbolize.h); the CLI's
     * summary sets it. 0 = module+offset only (no process spawned). */
    int symbolize;
};
void replay_options_default(struct replay_options *o);

/* What the allocator did during one step (bit set). */
#define REPLAY_DID_SBRK_GROW   0x001
#define REPLAY_DID_SBRK_SHRINK 0x002
#define REPLAY_DID_MMAP        0x004
#define REPLAY_DID_MUNMAP      0x008
#define REPLAY_DID_CONSOLIDATE 0x010
#define REPLAY_DID_TRIM        0x020
#define REPLAY_DID_MADVISE     0x040
#define REPLAY_DID_HEAP_GROW   0x080
#define REPLAY_DID_HEAP_SHRINK 0x100
#define REPLAY_DID_ARENA_NEW   0x200
#define REPLAY_DID_THRESHOLD   0x400
#define REPLAY_DID_MREMAP      0x800
/* Model operations the event does not name (the chunk is in implied_free_ptr): */
#define REPLAY_DID_UNTRACED_FREE 0x1000  /* before the call: the chunk of the block the event's
                                            pointer still named (its free went untraced) */
#define REPLAY_DID_DISCARDED   0x2000    /* after the call: the block the model returned where
                                            the recording got NULL (replayed_ptr is 0) */

struct replay_step {
    uint64_t step;              /* 1-based index of the event in the trace */
    const struct trace_event *event;
    uint64_t replayed_ptr;      /* what the model returned (0 for free / NULL) */
    uint64_t live_bytes;        /* bytes requested and not yet freed */
    unsigned did;               /* REPLAY_DID_* */
    int skipped;                /* 1: free of an unknown pointer / double free, not performed */
    int arena;                  /* the arena of the calling thread, -1 if none */
    struct ptmalloc_stats stats;
    /* ---- additions ---- */
    struct trace_reader *reader;  /* for trace_reader_stack / _module / _header in the callback */
    uint64_t replayed_old_ptr;    /* realloc: the replayed input pointer; free: the pointer freed */
    uint64_t request_bytes;       /* allocations: bytes requested (nmemb * size for calloc) */
    int verify;                   /* --verify: 1 matched, 0 diverged, -1 not an allocation */
    uint64_t rss_bytes;           /* stats.resident_bytes + stats.mmapped_resident_bytes */
    uint64_t held_bytes;          /* stats.system_bytes + stats.mmapped_bytes */
    uint64_t implied_free_ptr;    /* REPLAY_DID_UNTRACED_FREE / _DISCARDED: the replayed pointer
                                     the model freed during this step; else 0 */
    const struct ptmalloc_stats *arena_stats;  /* each arena's figures after the step (index =
                                     arena, as ptmalloc_stats_arena gives them), kept up to date
                                     for `stats`; NULL when the step has no statistics */
    uint32_t arena_stats_count;
};

struct replay_summary {
    uint64_t events, events_by_kind[TRACE_EV_KIND_COUNT];
    uint64_t steps;
    uint64_t peak_live_bytes, peak_live_step, final_live_bytes;
    uint64_t peak_system_bytes, peak_system_step, final_system_bytes;
    uint64_t peak_rss_bytes, peak_rss_step, final_rss_bytes;
    double frag_at_live_peak, frag_at_rss_peak;   /* (heap RSS - live) / live, at the live peak
                                                     and at the heap-RSS peak */
    uint32_t arenas;
    uint64_t unknown_frees, double_frees, failed_calls;
    /* --verify */
    uint64_t verified, matched;
    uint64_t first_divergence_step;               /* 0 = none */
    double seconds;
    int completed;                                /* reached the end (not --until, not SIGINT) */
    struct trace_reader_status reader;
    /* ---- additions ---- */
    uint64_t unknown_reallocs;     /* realloc of a pointer the trace never allocated: replayed
                                      as malloc of the new size (realloc(p, 0): skipped) */
    uint64_t missed_frees;         /* an allocation returned a pointer still live in the trace:
                                      the free went untraced; the old replayed chunk is freed */
    uint64_t corrupt_calls;        /* other calls the model refused (PTM_CORRUPT), skipped */
    uint64_t result_mismatches;    /* --verify: mallopt / malloc_trim return values, NULL vs
                                      non-NULL, that differ from the recording */
    uint64_t samples, samples_mallinfo_matched, samples_brk_matched;
    int64_t residency_diff_max_pages;   /* model - real heap residency at samples (largest |d|) */
    double residency_diff_mean_pages;
    uint64_t first_divergence_detail_steps[16];   /* the steps described in the report */
    int interrupted;               /* stopped by *interrupted */
    uint64_t until_step;           /* stopped by --until at this step, else 0 */
    uint64_t rss_at_live_peak, live_at_rss_peak;
    uint64_t max_host_bytes;       /* replayer's own memory: pointer map, peak */
    uint32_t threads;              /* distinct thread indices seen */
    /* Call sites of the unknown frees, most frequent first. */
    struct replay_site {
        uint32_t stack_id;
        uint64_t count;
        char where[160];           /* "module+0xoffset" of the innermost frame outside libc, the
                                      loader and the recorder, or "" (no stack) */
        /* with options.symbolize, where the module has debug information, else "": */
        char function[160];        /* that frame's function */
        char location[200];        /* its file:line */
    } unknown_free_sites[8];
    unsigned unknown_free_site_count;
    struct ptmalloc_settings settings;  /* the settings the replay started with */
};

/* Called after every step; the model can be inspected (ptmalloc_walk, _bins) during the call.
 * Return non-zero to stop the replay. */
typedef int (*replay_step_fn)(void *ctx, struct ptmalloc *pm, const struct replay_step *s);

/* Runs a replay. Returns 0 on success (including --until and interruption, see summary),
 * -1 on error (message in err, naming the file / step). With verify, divergences are written
 * to `report` (may be NULL). */
int replay_run(const struct replay_options *o, replay_step_fn fn, void *ctx,
               struct replay_summary *out, FILE *report, char *err, size_t errlen);

/* Builds the settings a replay of trace header h starts with: glibc's defaults, the header's
 * MALLOC_* variables then its GLIBC_TUNABLES, its cpu_count, then o->cpus, o->tunables and
 * o->set in that order. Returns 0, or -1 with a message naming the bad option. */
int replay_build_settings(const struct trace_header *h, const struct replay_options *o,
                          struct ptmalloc_settings *s, char *err, size_t errlen);

/* Prints the summary the way `fragscope replay` does. */
void replay_print_summary(FILE *f, const struct replay_options *o, const struct replay_summary *s);

/* ---- --db: the analyzer's store ----
 * The replayer does not link the analyzer (dependencies run CLI -> analyzer -> replayer), so
 * `fragscope replay --db FILE` reaches the store through this hook. The analyzer sets it from a
 * constructor (__attribute__((constructor))) in an object file the fragscope binary always links
 * (for example the one that defines one of its cmd_* functions: a constructor in an otherwise
 * unreferenced member of a static library is dropped by the linker). The hook replays the trace
 * itself (replay_run with its own step callback), fills *out, and returns 0, or -1 with a message
 * in err. argc/argv are the `replay` subcommand's own arguments (argv[0] = "replay"), for the
 * store's record of the run. After it returns 0 the CLI prints the summary from *out. While the
 * hook is NULL, --db fails with "--db: the analyzer's store is not available in this build". */
typedef int (*replay_db_hook_fn)(const char *db_path, const struct replay_options *o, int argc,
                                 char **argv, struct replay_summary *out, char *err,
                                 size_t errlen);
extern replay_db_hook_fn replay_db_hook;

#endif
