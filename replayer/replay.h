/* replay.h: driving a recorded trace through the allocator model.
 *
 * The contract between the replayer and its users (the CLI's `replay`, the analyzer's ingest,
 * what-if replays and sweeps). A replay reads the trace as a stream (never whole), maps each
 * traced pointer to the replayed chunk, performs thread starts and exits, and after every
 * event hands the caller a `struct replay_step` with the model's counters. With `verify` it
 * compares each replayed address with the recorded one (normalised as described in verify.c).
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

struct replay_step {
    uint64_t step;              /* 1-based index of the event in the trace */
    const struct trace_event *event;
    uint64_t replayed_ptr;      /* what the model returned (0 for free / NULL) */
    uint64_t live_bytes;        /* bytes requested and not yet freed */
    unsigned did;               /* REPLAY_DID_* */
    int skipped;                /* 1: free of an unknown pointer / double free, not performed */
    int arena;                  /* the arena of the calling thread, -1 if none */
    struct ptmalloc_stats stats;
};

struct replay_summary {
    uint64_t events, events_by_kind[TRACE_EV_KIND_COUNT];
    uint64_t steps;
    uint64_t peak_live_bytes, peak_live_step, final_live_bytes;
    uint64_t peak_system_bytes, peak_system_step, final_system_bytes;
    uint64_t peak_rss_bytes, peak_rss_step, final_rss_bytes;
    double frag_at_live_peak, frag_at_rss_peak;   /* (held - live) / live */
    uint32_t arenas;
    uint64_t unknown_frees, double_frees, failed_calls;
    /* --verify */
    uint64_t verified, matched;
    uint64_t first_divergence_step;               /* 0 = none */
    double seconds;
    int completed;                                /* reached the end (not --until, not SIGINT) */
    struct trace_reader_status reader;
};

/* Called after every step; the model can be inspected (ptmalloc_walk, _bins) during the call.
 * Return non-zero to stop the replay. */
typedef int (*replay_step_fn)(void *ctx, struct ptmalloc *pm, const struct replay_step *s);

/* Runs a replay. Returns 0 on success (including --until and interruption, see summary),
 * -1 on error (message in err, naming the file / step). With verify, divergences are written
 * to `report` (may be NULL). */
int replay_run(const struct replay_options *o, replay_step_fn fn, void *ctx,
               struct replay_summary *out, FILE *report, char *err, size_t errlen);

/* Prints the summary the way `fragscope replay` does. */
void replay_print_summary(FILE *f, const struct replay_options *o, const struct replay_summary *s);

#endif
