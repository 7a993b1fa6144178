/* native.c: `fragscope replay --native`, the trace replayed on the real allocator.
 *
 * The trace is turned into the runner's op sequence (native_ops.h): each
 * allocation becomes an op, followed (with --touch all) by a write op over the requested bytes
 * (realloc: over the new part), so the child's RSS is what a program writing its blocks would
 * have; free and realloc name their block by the op index that allocated it. Traced pointers map
 * to op indices through ptr_map. What the model replay skips is skipped here too: frees of unknown
 * pointers and double frees; realloc of an unknown pointer becomes a malloc; calls that failed in
 * the recording are left out (the runner would only fail them again). Thread starts and exits
 * become the runner's thread ops; a thread seen without its start gets one before its first op.
 *
 * The trace is read twice: once to count the ops (the runner sizes its result file by the
 * count), then again while the runner runs, the ops streamed to it through a pipe (--ops-fd), so
 * that neither process holds the whole sequence. The runner runs in its long-sequence mode
 * (NATIVE_F_SPARSE, native_ops.h): it keeps a result, with mallinfo2 and the heap RSS, only for
 * every NATIVE_SAMPLE_EVERY-th op and the last, in an anonymous memory file (--out-fd) whose
 * other pages stay holes; those results are read back with pread. The child runs with the
 * trace's malloc environment (its GLIBC_TUNABLES and MALLOC_* variables, the --tunables and --set
 * overrides appended to GLIBC_TUNABLES; --cpus cannot be imposed on a real process) and, with
 * --preload LIB, LD_PRELOAD=LIB. Reported: wall time of the child, its peak RSS (ru_maxrss, which
 * includes the result pages it wrote), the heap RSS sampled every NATIVE_SAMPLE_EVERY ops
 * (mincore over the break area: glibc's main heap only), and the final mallinfo2.
 *
 * The runner is looked for in $FRAGSCOPE_NATIVE_RUNNER, next to the fragscope binary, in its
 * replayer/ subdirectory (the build tree), then on PATH.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "native_ops.h"
#include "ptr_map.h"
#include "replay_native.h"

extern char **environ;

#define NATIVE_SAMPLE_EVERY 4096
#define OUT_BUF_OPS 4096

struct native_enc {
    int fd;                             /* -1: count only */
    struct native_op buf[OUT_BUF_OPS];
    unsigned nbuf;
    uint64_t count, writes, skipped_frees, unknown_reallocs, events, thread_ops;
    struct ptr_map map;                 /* traced pointer -> op index (val), request size */
    uint8_t alive[NATIVE_MAX_THREADS];
    int write_error;
    /* settings (kept from pass to pass) */
    int touch;
    int no_mallopt;
};

static void flush_ops(struct native_enc *e)
{
    const char *p = (const char *)e->buf;
    size_t left = e->fd < 0 ? 0 : e->nbuf * sizeof e->buf[0];
    while (left && !e->write_error) {
        ssize_t w = write(e->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e->write_error = errno ? errno : EIO;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    e->nbuf = 0;
}

static uint64_t emit(struct native_enc *e, uint8_t kind, uint16_t thread, uint32_t ref, uint64_t a,
                     uint64_t b, uint64_t c)
{
    struct native_op *op = &e->buf[e->nbuf++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->thread = thread;
    op->ref = ref;
    op->a = a;
    op->b = b;
    op->c = c;
    if ((e->count + 1) % NATIVE_SAMPLE_EVERY == 0)
        op->flags |= NATIVE_OPF_SAMPLE;
    if (kind == NATIVE_OP_THREAD_START || kind == NATIVE_OP_THREAD_EXIT)
        e->thread_ops++;
    if (e->nbuf == OUT_BUF_OPS)
        flush_ops(e);
    return e->count++;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* Names the block allocated by op `idx` after the traced pointer; writes it if asked. */
static int note_block(struct native_enc *e, const struct trace_event *ev, uint64_t idx,
                      uint64_t req, uint64_t write_from)
{
    int was_live;
    uint64_t old_idx;
    if (e->touch && req > write_from && req != UINT64_MAX) {
        emit(e, NATIVE_OP_WRITE, (uint16_t)ev->thread, (uint32_t)idx, write_from,
             req - write_from, 0x5a);
        e->writes++;
    }
    if (!ptr_map_put(&e->map, ev->ptr, idx, req, &was_live, &old_idx, NULL))
        return -1;
    if (was_live)   /* untraced free: free it now, as the model replay does */
        emit(e, NATIVE_OP_FREE, (uint16_t)ev->thread, (uint32_t)old_idx, 0, 0, 0);
    return 0;
}

static int encode_event(struct native_enc *e, const struct trace_event *ev, char *err,
                        size_t errlen)
{
    uint32_t t = ev->thread;
    if (ev->kind == TRACE_EV_MODULE || ev->kind == TRACE_EV_SAMPLE || ev->kind == TRACE_EV_FORK)
        return 0;
    if (t >= NATIVE_MAX_THREADS) {
        snprintf(err, errlen, "thread %u: the native runner handles at most %u threads", t,
                 NATIVE_MAX_THREADS);
        return -1;
    }
    uint16_t th = (uint16_t)t;
    if (ev->kind == TRACE_EV_THREAD_EXIT) {
        if (t && e->alive[t]) {
            emit(e, NATIVE_OP_THREAD_EXIT, th, NATIVE_REF_NULL, 0, 0, 0);
            e->alive[t] = 0;
        }
        return 0;
    }
    if (t && !e->alive[t]) {
        emit(e, NATIVE_OP_THREAD_START, th, NATIVE_REF_NULL, 0, 0, 0);
        e->alive[t] = 1;
    }
    uint64_t idx, req;
    switch (ev->kind) {
    case TRACE_EV_THREAD_START:
        return 0;
    case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
        if (!ev->ptr)
            return 0;
        idx = emit(e, ev->kind == TRACE_EV_MALLOC ? NATIVE_OP_MALLOC
                      : ev->kind == TRACE_EV_VALLOC ? NATIVE_OP_VALLOC : NATIVE_OP_PVALLOC,
                   th, NATIVE_REF_NULL, ev->size, 0, 0);
        return note_block(e, ev, idx, ev->size, 0);
    case TRACE_EV_CALLOC:
        if (!ev->ptr)
            return 0;
        idx = emit(e, NATIVE_OP_CALLOC, th, NATIVE_REF_NULL, ev->nmemb, ev->size, 0);
        return note_block(e, ev, idx, mul_sat(ev->nmemb, ev->size), 0);
    case TRACE_EV_MEMALIGN: case TRACE_EV_POSIX_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC:
        if (!ev->ptr)
            return 0;
        idx = emit(e, ev->kind == TRACE_EV_MEMALIGN ? NATIVE_OP_MEMALIGN
                      : ev->kind == TRACE_EV_POSIX_MEMALIGN ? NATIVE_OP_POSIX_MEMALIGN
                                                            : NATIVE_OP_ALIGNED_ALLOC,
                   th, NATIVE_REF_NULL, ev->alignment, ev->size, 0);
        return note_block(e, ev, idx, ev->size, 0);
    case TRACE_EV_REALLOC: case TRACE_EV_REALLOCARRAY: {
        int array = ev->kind == TRACE_EV_REALLOCARRAY;
        req = array ? mul_sat(ev->nmemb, ev->size) : ev->size;
        struct ptr_entry *b = ev->old_ptr ? ptr_map_find(&e->map, ev->old_ptr) : NULL;
        if (ev->old_ptr && (!b || ptr_entry_freed(b))) {
            e->unknown_reallocs++;
            if (!req || !ev->ptr)
                return 0;
            idx = emit(e, NATIVE_OP_MALLOC, th, NATIVE_REF_NULL, req, 0, 0);
            return note_block(e, ev, idx, req, 0);
        }
        if (ev->old_ptr && !ev->ptr && req)
            return 0;   /* failed in the recording: the block stays */
        uint32_t ref = b ? (uint32_t)ptr_entry_val(&e->map, b) : NATIVE_REF_NULL;
        uint64_t old_size = b ? ptr_entry_size(&e->map, b) : 0;
        if (b)
            ptr_map_mark_freed(&e->map, b, 1);
        idx = emit(e, array ? NATIVE_OP_REALLOCARRAY : NATIVE_OP_REALLOC, th, ref,
                   array ? ev->nmemb : ev->size, array ? ev->size : 0, 0);
        if (!ev->ptr)
            return 0;   /* realloc(p, 0): freed */
        return note_block(e, ev, idx, req, old_size);
    }
    case TRACE_EV_FREE: {
        if (!ev->ptr)
            return 0;
        struct ptr_entry *b = ptr_map_find(&e->map, ev->ptr);
        if (!b || ptr_entry_freed(b)) {
            e->skipped_frees++;
            return 0;
        }
        emit(e, NATIVE_OP_FREE, th, (uint32_t)ptr_entry_val(&e->map, b), 0, 0, 0);
        ptr_map_mark_freed(&e->map, b, 1);
        return 0;
    }
    case TRACE_EV_MALLOPT:
        if (!e->no_mallopt)
            emit(e, NATIVE_OP_MALLOPT, th, NATIVE_REF_NULL, (uint64_t)ev->param,
                 (uint64_t)ev->value, 0);
        return 0;
    case TRACE_EV_MALLOC_TRIM:
        emit(e, NATIVE_OP_MALLOC_TRIM, th, NATIVE_REF_NULL, ev->size, 0, 0);
        return 0;
    default:
        return 0;
    }
}

/* One pass over the trace: the ops into e->fd, or only counted when e->fd is -1. The two passes
 * of a run make the same ops (the encoding depends on the trace alone). Returns 0 or -1. */
static int encode_pass(const struct replay_options *o, struct native_enc *e, char *err,
                       size_t errlen)
{
    int fd = e->fd;
    memset(e, 0, offsetof(struct native_enc, touch));
    e->fd = fd;
    if (ptr_map_init(&e->map) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct trace_reader *r = trace_reader_open(o->trace_path, err, errlen);
    if (!r) {
        ptr_map_free(&e->map);
        return -1;
    }
    struct trace_event ev;
    int rc, ret = 0;
    while ((rc = trace_reader_next(r, &ev)) == 1) {
        e->events++;
        if (o->interrupted && *o->interrupted) {
            snprintf(err, errlen, "interrupted");
            ret = -1;
            break;
        }
        char e2[200];
        if (encode_event(e, &ev, e2, sizeof e2) < 0) {
            snprintf(err, errlen, "%s: step %" PRIu64 ": %s", o->trace_path, e->events, e2);
            ret = -1;
            break;
        }
        if (e->write_error)
            break;                      /* the runner stopped reading: its status says why */
        if (o->until_step && e->events >= o->until_step)
            break;
        if (e->count >= NATIVE_MAX_OPS - 8) {
            snprintf(err, errlen, "%s: too many ops for the native runner", o->trace_path);
            ret = -1;
            break;
        }
    }
    trace_reader_close(r);
    ptr_map_free(&e->map);
    if (ret == 0)
        flush_ops(e);
    return ret;
}

/* Writes all of buf to fd (a pipe). Returns 0, or an errno. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return errno ? errno : EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int find_runner(char *path, size_t len)
{
    const char *env = getenv("FRAGSCOPE_NATIVE_RUNNER");
    if (env && *env) {
        snprintf(path, len, "%s", env);
        return access(path, X_OK) == 0 ? 0 : -1;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, len, "%s/fragscope-native-runner", self);
            if (access(path, X_OK) == 0)
                return 0;
            snprintf(path, len, "%s/replayer/fragscope-native-runner", self);
            if (access(path, X_OK) == 0)
                return 0;
            snprintf(path, len, "%s/../replayer/fragscope-native-runner", self);
            if (access(path, X_OK) == 0)
                return 0;
        }
    }
    const char *p = getenv("PATH");
    while (p && *p) {
        const char *end = strchr(p, ':');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        snprintf(path, len, "%.*s/fragscope-native-runner", (int)l, p);
        if (l && access(path, X_OK) == 0)
            return 0;
        p = end ? end + 1 : NULL;
    }
    return -1;
}

/* The child's environment: ours without malloc variables, plus the trace's and the overrides. */
static char **child_env(const struct trace_header *h, const struct replay_options *o,
                        const char *preload, char **own, size_t *nown)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 64, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = environ[i];
        if (!strncmp(v, "GLIBC_TUNABLES=", 15) || !strncmp(v, "MALLOC_", 7) ||
            !strncmp(v, "LD_PRELOAD=", 11))
            continue;
        env[k++] = environ[i];
    }
    *nown = 0;
    /* The trace's lines, then one GLIBC_TUNABLES with everything appended. */
    char tun[8192];
    size_t tl = 0;
    tun[0] = 0;
    for (const char *line = h->malloc_env; line && *line && k < n + 60;) {
        const char *end = strchr(line, '\n');
        size_t l = end ? (size_t)(end - line) : strlen(line);
        if (l > 15 && !strncmp(line, "GLIBC_TUNABLES=", 15)) {
            if (!tl)
                tl = (size_t)snprintf(tun, sizeof tun, "%.*s", (int)(l - 15), line + 15);
        } else if (l) {
            char *s = strndup(line, l);
            if (s)
                env[k++] = own[(*nown)++] = s;
        }
        line = end ? end + 1 : line + l;
    }
    if (o->tunables && tl < sizeof tun)
        tl += (size_t)snprintf(tun + tl, sizeof tun - tl, "%s%s", tl ? ":" : "", o->tunables);
    for (unsigned i = 0; i < o->set_count && tl < sizeof tun; i++)
        tl += (size_t)snprintf(tun + tl, sizeof tun - tl, "%sglibc.malloc.%s", tl ? ":" : "",
                               o->set[i]);
    if (tl && *nown < 30) {
        size_t l = strlen(tun) + 16;
        char *s = malloc(l);
        if (s) {
            snprintf(s, l, "GLIBC_TUNABLES=%s", tun);
            env[k++] = own[(*nown)++] = s;
        }
    }
    if (preload && *nown < 31) {
        size_t l = strlen(preload) + 12;
        char *s = malloc(l);
        if (s) {
            snprintf(s, l, "LD_PRELOAD=%s", preload);
            env[k++] = own[(*nown)++] = s;
        }
    }
    env[k] = NULL;
    return env;
}

static const char *human(uint64_t b, char *buf, size_t len)
{
    if (b >= (1ull << 20))
        snprintf(buf, len, "%.2f MiB", (double)b / (double)(1ull << 20));
    else
        snprintf(buf, len, "%.1f KiB", (double)b / 1024.0);
    return buf;
}

/* A result of the runner's output file (pread: the file is sparse, and reading a hole through a
 * mapping would allocate it). Returns 0 or -1. */
static int read_result(int fd, const struct native_out_header *oh, uint64_t i,
                       struct native_result *res)
{
    off_t at = (off_t)(oh->result_offset + i * sizeof *res);
    return pread(fd, res, sizeof *res, at) == (ssize_t)sizeof *res ? 0 : -1;
}

int replay_native(const struct replay_options *o, const char *preload, FILE *out, char *err,
                  size_t errlen)
{
    return replay_native_run(o, preload, out, NULL, err, errlen);
}

int replay_native_run(const struct replay_options *o, const char *preload, FILE *out,
                      struct replay_native_result *result, char *err, size_t errlen)
{
    char runner[PATH_MAX + 64];
    if (find_runner(runner, sizeof runner) < 0) {
        snprintf(err, errlen, "--native: fragscope-native-runner not found (next to fragscope, "
                              "on PATH, or in $FRAGSCOPE_NATIVE_RUNNER)");
        return -1;
    }
    if (preload && access(preload, R_OK) != 0) {
        snprintf(err, errlen, "--preload %s: %s", preload, strerror(errno));
        return -1;
    }
    struct trace_reader *r = trace_reader_open(o->trace_path, err, errlen);
    if (!r)
        return -1;
    const struct trace_header *hdr = trace_reader_header(r);

    int pipe_fd[2] = {-1, -1};
    int out_fd = memfd_create("fragscope-native-out", MFD_CLOEXEC);
    struct native_enc *e = calloc(1, sizeof *e);
    char *own[32];
    size_t nown = 0;
    char **env = NULL;
    int ret = -1;
    pid_t pid = -1;
    struct sigaction ign, old_pipe;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);
    if (pipe(pipe_fd) != 0 || out_fd < 0 || !e) {
        snprintf(err, errlen, "--native: cannot create the op pipe and result file: %s",
                 strerror(errno));
        goto done;
    }
    /* The runner reads the ops end; the writing end stays ours. */
    fcntl(pipe_fd[1], F_SETFD, FD_CLOEXEC);
    fcntl(pipe_fd[1], F_SETPIPE_SZ, 1 << 20);
    e->touch = o->touch == REPLAY_TOUCH_ALL;
    e->no_mallopt = o->no_mallopt;

    /* First pass: count the ops (the runner sizes its result file by the count). */
    e->fd = -1;
    if (encode_pass(o, e, err, errlen) < 0)
        goto done;
    struct native_ops_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, NATIVE_OPS_MAGIC, 8);
    h.version = NATIVE_VERSION;
    h.op_size = sizeof(struct native_op);
    h.op_count = e->count;
    h.flags = NATIVE_F_SPARSE | (preload ? NATIVE_F_RAW_ADDRS : 0);
    h.thread_ops = e->thread_ops;

    env = child_env(hdr, o, preload, own, &nown);
    if (!env) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    char a1[16], a2[16];
    snprintf(a1, sizeof a1, "%d", pipe_fd[0]);
    snprintf(a2, sizeof a2, "%d", out_fd);
    char *argv[] = {runner, "--ops-fd", a1, "--out-fd", a2, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    /* dup2 onto itself clears close-on-exec: the runner keeps the result file. */
    posix_spawn_file_actions_adddup2(&fa, out_fd, out_fd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int sp = posix_spawn(&pid, runner, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    if (sp) {
        pid = -1;
        snprintf(err, errlen, "--native: cannot run %s: %s", runner, strerror(sp));
        goto done;
    }
    close(pipe_fd[0]);
    pipe_fd[0] = -1;

    /* Second pass, while the runner runs: the ops through the pipe. */
    uint64_t counted = e->count;
    int werr = write_all(pipe_fd[1], &h, sizeof h);
    e->fd = pipe_fd[1];
    int enc = werr ? 0 : encode_pass(o, e, err, errlen);
    close(pipe_fd[1]);
    pipe_fd[1] = -1;

    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "--native: waiting for the runner: %s", strerror(errno));
            pid = -1;
            goto done;
        }
    }
    pid = -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;

    struct native_out_header oh;
    struct stat st;
    if (fstat(out_fd, &st) < 0 || (size_t)st.st_size < sizeof oh ||
        pread(out_fd, &oh, sizeof oh, 0) != (ssize_t)sizeof oh) {
        snprintf(err, errlen, "--native: the runner wrote no results (%s %d)",
                 WIFSIGNALED(status) ? "killed by signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        goto done;
    }
    if (memcmp(oh.magic, NATIVE_OUT_MAGIC, 8) || oh.result_offset > (uint64_t)st.st_size ||
        oh.op_count > ((uint64_t)st.st_size - oh.result_offset) / sizeof(struct native_result)) {
        snprintf(err, errlen, "--native: the runner's results are malformed");
        goto done;
    }
    if (enc < 0)
        goto done;                      /* err says why (interrupted, a bad event) */
    if (oh.status != NATIVE_STATUS_OK) {
        oh.error[sizeof oh.error - 1] = 0;
        snprintf(err, errlen, "--native: the runner stopped after %" PRIu64 " of %" PRIu64
                              " ops (%s %d)%s%.256s", oh.ops_done, oh.op_count,
                 WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                 oh.error[0] ? ": " : "", oh.error);
        goto done;
    }
    if (werr || e->write_error || e->count != counted) {
        snprintf(err, errlen, "--native: writing the ops to the runner: %s",
                 werr || e->write_error ? strerror(werr ? werr : e->write_error)
                                        : "the two passes over the trace differ");
        goto done;
    }
    /* The results kept: every NATIVE_SAMPLE_EVERY-th op and the last. */
    uint64_t heap_peak = 0;
    struct native_result res, last;
    memset(&last, 0, sizeof last);
    for (uint64_t i = NATIVE_SAMPLE_EVERY - 1; i < oh.ops_done; i += NATIVE_SAMPLE_EVERY)
        if (read_result(out_fd, &oh, i, &res) == 0 && res.heap_rss != NATIVE_NOT_SAMPLED &&
            res.heap_rss > heap_peak)
            heap_peak = res.heap_rss;
    if (oh.ops_done)
        read_result(out_fd, &oh, oh.ops_done - 1, &last);
    struct stat fst;
    uint64_t file_bytes = fstat(out_fd, &fst) == 0 ? (uint64_t)fst.st_blocks * 512 : 0;
    if (result) {
        result->wall_seconds = secs;
        result->peak_rss_bytes = (uint64_t)ru.ru_maxrss * 1024;
        result->heap_rss_peak_bytes = preload ? 0 : heap_peak;
        result->ops = oh.op_count;
    }
    ret = 0;
    if (!out)
        goto done;
    char b1[32], b2[32];
    fprintf(out, "native         %s (%s)\n", runner,
            preload ? preload : "glibc malloc");
    fprintf(out, "ops            %" PRIu64 " from %" PRIu64 " events (%" PRIu64 " writes; %" PRIu64
                 " frees of unknown pointers and double frees skipped, %" PRIu64
                 " reallocs of unknown pointers made mallocs)\n",
            oh.op_count, e->events, e->writes, e->skipped_frees, e->unknown_reallocs);
    fprintf(out, "wall time      %.3f s (%.0f ops/s; the ops streamed to the runner as it runs, "
                 "results kept every %d ops)\n",
            secs, secs > 0 ? (double)oh.op_count / secs : 0.0, NATIVE_SAMPLE_EVERY);
    fprintf(out, "peak RSS       %s (whole child, ru_maxrss; includes the result pages it wrote, "
                 "%s)\n",
            human((uint64_t)ru.ru_maxrss * 1024, b1, sizeof b1), human(file_bytes, b2, sizeof b2));
    if (!preload) {
        fprintf(out, "heap RSS       peak %s (sampled every %d ops, break area)\n",
                human(heap_peak, b1, sizeof b1), NATIVE_SAMPLE_EVERY);
        if (oh.ops_done) {
            const struct native_mallinfo2 *mi = &last.mi;
            fprintf(out, "mallinfo2      arena %" PRIu64 ", ordblks %" PRIu64 ", smblks %" PRIu64
                         ", hblks %" PRIu64 ", hblkhd %" PRIu64 ", usmblks %" PRIu64
                         ", fsmblks %" PRIu64 ", uordblks %" PRIu64 ", fordblks %" PRIu64
                         ", keepcost %" PRIu64 " (at the end)\n",
                    mi->arena, mi->ordblks, mi->smblks, mi->hblks, mi->hblkhd, mi->usmblks,
                    mi->fsmblks, mi->uordblks, mi->fordblks, mi->keepcost);
        }
    }
done:
    if (pipe_fd[1] >= 0)
        close(pipe_fd[1]);
    if (pipe_fd[0] >= 0)
        close(pipe_fd[0]);
    if (pid > 0) {
        int st2;
        while (waitpid(pid, &st2, 0) < 0 && errno == EINTR)
            ;
    }
    sigaction(SIGPIPE, &old_pipe, NULL);
    for (size_t i = 0; i < nown; i++)
        free(own[i]);
    free(env);
    free(e);
    if (out_fd >= 0)
        close(out_fd);
    trace_reader_close(r);
    return ret;
}
