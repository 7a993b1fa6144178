/* whatif.h: replaying a stored run again with a change, to prove what a fix would do
 * (internal to the analyzer). */
#ifndef FRAGSCOPE_WHATIF_H
#define FRAGSCOPE_WHATIF_H

#include "analyzer_int.h"

#define WHATIF_MAX_SET 8

struct whatif_request {
    const char *set[WHATIF_MAX_SET];   /* settings added after the run's own ("tcache_count=0") */
    unsigned set_count;
    uint64_t final_step;               /* measure after this step (and stop there) */
    int trim_at_end;                   /* malloc_trim(0) after the last step */
    uint64_t free_at_end;              /* free this model chunk (address) after the last step */
    uint32_t free_arena;               /* its arena */
    uint32_t spare_thread;             /* a thread index the trace never uses */
};

struct whatif_result {
    uint64_t final_rss, final_system, peak_rss, final_live;
    double seconds;
};

int whatif_run(const struct stored_options *so, const struct whatif_request *rq,
               struct whatif_result *res, char *err, size_t errlen);

/* The what-if replays of one analysis, each run once: keyed by (settings, trim, freed chunk).
 *
 * To run them side by side, an analysis first goes through its findings with `collect` set:
 * every replay asked for is queued instead of run (whatif_cached returns NULL and sets
 * last_pending), then whatif_run_queued replays the queue, one worker process per CPU, and the
 * findings are made again from the results. */
#define WHATIF_CACHE_SIZE 24
struct whatif_cache {
    const struct stored_options *so;
    uint32_t spare_thread;             /* a thread index the trace never uses */
    int quiet;
    int collect;                       /* queue misses instead of replaying them */
    int last_pending;                  /* the last whatif_cached returned NULL: queued */
    unsigned queued;                   /* entries waiting for whatif_run_queued */
    unsigned n;
    struct {
        char key[160];
        char settings[160];
        int trim, free_arena, pending;
        uint64_t free_chunk, at;
        int ok;
        struct whatif_result res;
    } e[WHATIF_CACHE_SIZE];
};
/* settings: space-separated NAME=VALUE (may be ""); measured after step `at`. NULL when the
 * replay failed (or, collecting, when it is queued). */
const struct whatif_result *whatif_cached(struct whatif_cache *c, const char *settings, int trim,
                                          uint64_t free_chunk, int free_arena, uint64_t at);
/* Replays the queued entries: in parallel, up to `workers` at a time (0: one per CPU), each in a
 * forked process that sends its numbers back through a pipe. */
void whatif_run_queued(struct whatif_cache *c, unsigned workers);

#endif
