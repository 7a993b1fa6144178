/* whatif.c: one what-if replay. The run's trace goes through replay_run again with the run's own
 * options plus the requested settings, up to the step a finding is about (usually the last);
 * optionally the model is then given a malloc_trim(0) or the free of one chunk (the chunk a
 * finding blames), and the heap RSS and system bytes after that are the answer. ptmalloc is deterministic, so the same trace with the
 * same settings gives the same heap: a difference is the change's doing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "whatif.h"

struct whatif_ctx {
    const struct whatif_request *rq;
    struct whatif_result *res;
};

static int whatif_step(void *vctx, struct ptmalloc *pm, const struct replay_step *s)
{
    struct whatif_ctx *x = vctx;
    uint64_t rss = stats_rss(&s->stats);
    if (rss > x->res->peak_rss)
        x->res->peak_rss = rss;
    x->res->final_rss = rss;
    x->res->final_system = s->stats.system_bytes + s->stats.mmapped_bytes;
    x->res->final_live = s->live_bytes;
    if (s->step == x->rq->final_step) {
        if (x->rq->free_at_end) {
            /* Freed through _int_free, as if it had never been in the way: a spare thread pinned
             * to the chunk's arena frees it into its own tcache and exits, which flushes
             * exactly that chunk (the program's own tcaches stay as they are). */
            uint32_t t = x->rq->spare_thread;
            ptmalloc_thread_start(pm, t);
            ptmalloc_thread_set_arena(pm, t, x->rq->free_arena);
            ptmalloc_free(pm, t, x->rq->free_at_end + 16);
            ptmalloc_thread_exit(pm, t);
        }
        if (x->rq->trim_at_end)
            ptmalloc_trim(pm, 0, 0);
        struct ptmalloc_stats st;
        ptmalloc_stats(pm, -1, &st);
        x->res->final_rss = stats_rss(&st);
        x->res->final_system = st.system_bytes + st.mmapped_bytes;
        return 1;
    }
    return 0;
}

int whatif_run(const struct stored_options *so, const struct whatif_request *rq,
               struct whatif_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (!so->ro.trace_path) {
        snprintf(err, errlen, "the run has no trace to replay");
        return -1;
    }
    struct replay_options ro = so->ro;
    for (unsigned i = 0; i < rq->set_count && ro.set_count < REPLAY_MAX_OVERRIDES; i++)
        ro.set[ro.set_count++] = rq->set[i];
    ro.until_step = rq->final_step;
    ro.progress = 0;
    ro.verify = REPLAY_VERIFY_OFF;
    struct whatif_ctx x = {rq, res};
    struct replay_summary sum;
    memset(&sum, 0, sizeof sum);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = replay_run(&ro, whatif_step, &x, &sum, NULL, err, errlen);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    return rc;
}

const struct whatif_result *whatif_cached(struct whatif_cache *c, const char *settings, int trim,
                                          uint64_t free_chunk, int free_arena, uint64_t at)
{
    char key[160];
    snprintf(key, sizeof key, "%s|%d|%" PRIu64 "|%" PRIu64, settings, trim, free_chunk, at);
    for (unsigned i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].key, key))
            return c->e[i].ok ? &c->e[i].res : NULL;
    if (c->n == WHATIF_CACHE_SIZE)
        return NULL;
    unsigned k = c->n++;
    snprintf(c->e[k].key, sizeof c->e[k].key, "%s", key);
    struct whatif_request rq;
    memset(&rq, 0, sizeof rq);
    char buf[160];
    snprintf(buf, sizeof buf, "%s", settings);
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && rq.set_count < WHATIF_MAX_SET;
         t = strtok_r(NULL, " ", &save))
        rq.set[rq.set_count++] = t;
    rq.final_step = at;
    rq.trim_at_end = trim;
    rq.free_at_end = free_chunk;
    rq.spare_thread = c->spare_thread;
    rq.free_arena = free_arena > 0 ? (uint32_t)free_arena : 0;
    if (!c->quiet)
        fprintf(stderr, "analysis: what-if replay: %s%s%s\n", settings[0] ? settings : "as run",
                trim ? ", malloc_trim(0) at the end" : "",
                free_chunk ? ", blamed chunk freed at the end" : "");
    char e[512];
    c->e[k].ok = whatif_run(c->so, &rq, &c->e[k].res, e, sizeof e) == 0;
    if (!c->e[k].ok && !c->quiet)
        fprintf(stderr, "analysis: what-if replay failed: %s\n", e);
    return c->e[k].ok ? &c->e[k].res : NULL;
}
