/* whatif.c: what-if replays. The run's trace goes through replay_run again with the run's own
 * options plus the requested settings, up to the step a finding is about (usually the last);
 * optionally the model is then given a malloc_trim(0) or the free of one chunk (the chunk a
 * finding blames), and the heap RSS and system bytes after that are the answer. ptmalloc is
 * deterministic, so the same trace with the same settings gives the same heap: a difference is
 * the change's doing.
 *
 * The replays of one analysis are cached by request. Queued requests (whatif.h: `collect`) run
 * side by side: one forked worker per CPU replays one request and writes its numbers (a fixed
 * struct, one write) to a pipe; the parent polls the pipes, reads each answer and reaps the
 * worker. Only the parent touches the database.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
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

/* The request of entry k; its settings are split in buf (160 bytes). */
static void make_request(const struct whatif_cache *c, unsigned k, struct whatif_request *rq,
                         char *buf)
{
    memset(rq, 0, sizeof *rq);
    snprintf(buf, 160, "%s", c->e[k].settings);
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && rq->set_count < WHATIF_MAX_SET;
         t = strtok_r(NULL, " ", &save))
        rq->set[rq->set_count++] = t;
    rq->final_step = c->e[k].at;
    rq->trim_at_end = c->e[k].trim;
    rq->free_at_end = c->e[k].free_chunk;
    rq->spare_thread = c->spare_thread;
    rq->free_arena = c->e[k].free_arena > 0 ? (uint32_t)c->e[k].free_arena : 0;
}

/* Runs entry k now, in this process. */
static void run_entry(struct whatif_cache *c, unsigned k)
{
    struct whatif_request rq;
    char buf[160];
    make_request(c, k, &rq, buf);
    char e[512];
    c->e[k].ok = whatif_run(c->so, &rq, &c->e[k].res, e, sizeof e) == 0;
    if (!c->e[k].ok && !c->quiet)
        fprintf(stderr, "analysis: what-if replay failed: %s\n", e);
}

static void announce(const struct whatif_cache *c, unsigned k)
{
    if (!c->quiet)
        fprintf(stderr, "analysis: what-if replay: %s%s%s\n",
                c->e[k].settings[0] ? c->e[k].settings : "as run",
                c->e[k].trim ? ", malloc_trim(0) at the end" : "",
                c->e[k].free_chunk ? ", blamed chunk freed at the end" : "");
}

const struct whatif_result *whatif_cached(struct whatif_cache *c, const char *settings, int trim,
                                          uint64_t free_chunk, int free_arena, uint64_t at)
{
    char key[160];
    snprintf(key, sizeof key, "%s|%d|%" PRIu64 "|%" PRIu64, settings, trim, free_chunk, at);
    c->last_pending = 0;
    for (unsigned i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].key, key)) {
            c->last_pending = c->e[i].pending;
            return c->e[i].ok && !c->e[i].pending ? &c->e[i].res : NULL;
        }
    if (c->n == WHATIF_CACHE_SIZE)
        return NULL;
    unsigned k = c->n++;
    memset(&c->e[k], 0, sizeof c->e[k]);
    snprintf(c->e[k].key, sizeof c->e[k].key, "%s", key);
    snprintf(c->e[k].settings, sizeof c->e[k].settings, "%s", settings);
    c->e[k].trim = trim;
    c->e[k].free_chunk = free_chunk;
    c->e[k].free_arena = free_arena;
    c->e[k].at = at;
    if (c->collect) {
        c->e[k].pending = 1;
        c->queued++;
        c->last_pending = 1;
        return NULL;
    }
    announce(c, k);
    run_entry(c, k);
    return c->e[k].ok ? &c->e[k].res : NULL;
}

/* What a worker sends back. */
struct whatif_reply {
    int ok;
    struct whatif_result res;
    char err[256];
};

static unsigned cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Starts entry k in a child; returns the read end of its pipe (-1: not started). */
static int start_worker(struct whatif_cache *c, unsigned k, pid_t *pid)
{
    int fd[2];
    if (pipe2(fd, O_CLOEXEC))
        return -1;
    fflush(NULL);
    *pid = fork();
    if (*pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (*pid == 0) {
        /* The child replays and writes one reply; it never touches the parent's database. */
        close(fd[0]);
        struct whatif_reply rep;
        memset(&rep, 0, sizeof rep);
        struct whatif_request rq;
        char buf[160];
        make_request(c, k, &rq, buf);
        rep.ok = whatif_run(c->so, &rq, &rep.res, rep.err, sizeof rep.err) == 0;
        const char *p = (const char *)&rep;
        size_t left = sizeof rep;
        while (left) {
            ssize_t w = write(fd[1], p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                _exit(1);
            p += w;
            left -= (size_t)w;
        }
        _exit(0);
    }
    close(fd[1]);
    return fd[0];
}

/* Reads a worker's reply into entry k and reaps it. */
static void finish_worker(struct whatif_cache *c, unsigned k, int fd, pid_t pid)
{
    struct whatif_reply rep;
    size_t got = 0;
    while (got < sizeof rep) {
        ssize_t r = read(fd, (char *)&rep + got, sizeof rep - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got == sizeof rep) {
        c->e[k].ok = rep.ok;
        c->e[k].res = rep.res;
        if (!rep.ok && !c->quiet)
            fprintf(stderr, "analysis: what-if replay failed: %s\n", rep.err);
    } else {
        c->e[k].ok = 0;
        if (!c->quiet)
            fprintf(stderr, "analysis: what-if replay worker ended without an answer (status "
                            "0x%x)\n", status);
    }
}

void whatif_run_queued(struct whatif_cache *c, unsigned workers)
{
    if (!workers)
        workers = cpu_count();
    unsigned todo[WHATIF_CACHE_SIZE], n = 0;
    for (unsigned k = 0; k < c->n; k++)
        if (c->e[k].pending)
            todo[n++] = k;
    c->queued = 0;
    if (workers > n)
        workers = n;
    if (workers <= 1) {
        for (unsigned i = 0; i < n; i++) {
            announce(c, todo[i]);
            run_entry(c, todo[i]);
            c->e[todo[i]].pending = 0;
        }
        return;
    }
    struct {
        unsigned k;
        int fd;
        pid_t pid;
    } run[WHATIF_CACHE_SIZE];
    unsigned running = 0, next = 0;
    while (next < n || running) {
        while (next < n && running < workers) {
            unsigned k = todo[next++];
            announce(c, k);
            pid_t pid;
            int fd = start_worker(c, k, &pid);
            if (fd < 0) {
                run_entry(c, k);        /* no process to spare: here, now */
                c->e[k].pending = 0;
                continue;
            }
            run[running].k = k;
            run[running].fd = fd;
            run[running].pid = pid;
            running++;
        }
        if (!running)
            break;
        struct pollfd pfd[WHATIF_CACHE_SIZE];
        for (unsigned i = 0; i < running; i++) {
            pfd[i].fd = run[i].fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        if (poll(pfd, running, -1) < 0) {
            if (errno == EINTR)
                continue;
            /* Cannot wait on them together: one after another. */
            pfd[0].revents = POLLIN;
        }
        for (unsigned i = 0; i < running;) {
            if (pfd[i].revents) {
                finish_worker(c, run[i].k, run[i].fd, run[i].pid);
                c->e[run[i].k].pending = 0;
                run[i] = run[running - 1];
                pfd[i] = pfd[running - 1];
                running--;
            } else {
                i++;
            }
        }
    }
}
