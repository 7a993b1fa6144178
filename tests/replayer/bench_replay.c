/* bench_replay.c: how much slower the model replays a trace than the real allocator does.
 *
 * Usage: bench_replay TRACE [RUNS]      (RUNS >= 5, default 5)
 *
 * Every measurement runs in a fresh process (this program executed again with --child MODE),
 * the measurements of one run are interleaved so that they share the machine's conditions, and
 * each reports the CPU time (user + system) and wall time of its measured loop only. Printed:
 * medians over RUNS runs, with the smallest and largest.
 *
 * The target, both sides streaming the same trace the same way: the same reader
 * (trace_reader_next, reading 8 events ahead), the same pointer table (ptr_map, with its slots
 * prefetched), the same skip rules:
 *   model    replay_run in summary mode (no step callback): what `fragscope replay TRACE`
 *            does, without printing the summary;
 *   native   the same calls made for real on this process's glibc malloc, on one thread, with
 *            every requested byte written (what `fragscope replay --native` and --touch all do:
 *            for realloc the grown part).
 *   ratio    model / native CPU time; the target is <= 2.0.
 * Then where the model replay's time goes, from three more measurements:
 *   reader   trace_reader_next over the whole trace, nothing else;
 *   model calls alone   the trace decoded beforehand (not timed) into an op array, the ops
 *            performed on the model with its touch accounting: the allocator model's share;
 *   glibc calls alone   the same op array on glibc;
 * and the replayer's own share, what is left of the model replay (pointer map, bookkeeping,
 * summary counters).
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ptr_map.h"
#include "replay.h"

#define LOOKAHEAD 8
#define NONE UINT32_MAX

enum mode { M_MODEL, M_NATIVE, M_READER, M_MODEL_OPS, M_NATIVE_OPS, M_COUNT };
static const char *mode_name[M_COUNT] = {"model", "native", "reader", "model-ops", "native-ops"};

struct times {
    double cpu, wall;
    uint64_t events, calls;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_replay: %s: %s\n", what, msg);
    exit(1);
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static int is_alloc(unsigned kind)
{
    switch (kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_CALLOC: case TRACE_EV_MEMALIGN:
    case TRACE_EV_POSIX_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC: case TRACE_EV_VALLOC:
    case TRACE_EV_PVALLOC:
        return 1;
    default:
        return 0;
    }
}

static uint64_t request_of(const struct trace_event *ev)
{
    switch (ev->kind) {
    case TRACE_EV_CALLOC: case TRACE_EV_REALLOCARRAY:
        return mul_sat(ev->nmemb, ev->size);
    default:
        return ev->size;
    }
}

/* ---- a streaming reader with the replay's lookahead and prefetch ---- */

struct stream {
    struct trace_reader *r;
    struct ptr_map *map;
    struct trace_event ring[LOOKAHEAD];
    unsigned head, queued;
    int at_end;
};

static const struct trace_event *stream_next(struct stream *s)
{
    while (s->queued < LOOKAHEAD && !s->at_end) {
        struct trace_event *n = &s->ring[(s->head + s->queued) % LOOKAHEAD];
        if (trace_reader_next(s->r, n) != 1) {
            s->at_end = 1;
            break;
        }
        if (s->map) {
            if (n->ptr)
                ptr_map_prefetch(s->map, n->ptr);
            if (n->old_ptr)
                ptr_map_prefetch(s->map, n->old_ptr);
        }
        s->queued++;
    }
    if (!s->queued)
        return NULL;
    const struct trace_event *ev = &s->ring[s->head];
    s->head = (s->head + 1) % LOOKAHEAD;
    s->queued--;
    return ev;
}

/* ---- the glibc side, streamed ---- */

static void *real_alloc(const struct trace_event *ev)
{
    void *p = NULL;
    switch (ev->kind) {
    case TRACE_EV_MALLOC: return malloc(ev->size);
    case TRACE_EV_CALLOC: return calloc(ev->nmemb, ev->size);
    case TRACE_EV_MEMALIGN: return memalign(ev->alignment, ev->size);
    case TRACE_EV_POSIX_MEMALIGN: return posix_memalign(&p, ev->alignment, ev->size) ? NULL : p;
    case TRACE_EV_ALIGNED_ALLOC: return aligned_alloc(ev->alignment, ev->size);
    case TRACE_EV_VALLOC: return valloc(ev->size);
    case TRACE_EV_PVALLOC: return pvalloc(ev->size);
    default: return NULL;
    }
}

/* Names block p (request req) after the traced pointer; frees a block whose free went untraced. */
static void native_note(struct ptr_map *m, uint64_t key, void *p, uint64_t req)
{
    int was_live;
    uint64_t old;
    if (!ptr_map_put(m, key, (uint64_t)(uintptr_t)p, req, &was_live, &old, NULL))
        die("native", "out of memory");
    if (was_live && old && old != (uint64_t)(uintptr_t)p)
        free((void *)(uintptr_t)old);
}

static uint64_t native_event(struct ptr_map *m, const struct trace_event *ev)
{
    uint64_t req = request_of(ev);
    if (is_alloc(ev->kind)) {
        if (!ev->ptr)
            return 0;   /* failed in the recording */
        void *p = real_alloc(ev);
        if (p && req != UINT64_MAX)
            memset(p, 0x5a, req);
        native_note(m, ev->ptr, p, req);
        return 1;
    }
    switch (ev->kind) {
    case TRACE_EV_REALLOC: case TRACE_EV_REALLOCARRAY: {
        struct ptr_entry *e = ev->old_ptr ? ptr_map_find(m, ev->old_ptr) : NULL;
        if (ev->old_ptr && (!e || ptr_entry_freed(e))) {   /* unknown: a malloc */
            if (!req || !ev->ptr)
                return 0;
            void *p = malloc(req);
            if (p)
                memset(p, 0x5a, req);
            native_note(m, ev->ptr, p, req);
            return 1;
        }
        if (ev->old_ptr && !ev->ptr && req)
            return 0;   /* failed in the recording: the block stays */
        void *old = e ? (void *)(uintptr_t)ptr_entry_val(m, e) : NULL;
        uint64_t old_size = e ? ptr_entry_size(m, e) : 0;
        if (e)
            ptr_map_mark_freed(m, e, 1);
        void *p = realloc(old, req);
        if (!ev->ptr)
            return 1;   /* realloc(p, 0): freed */
        if (p && req > old_size && req != UINT64_MAX)
            memset((char *)p + old_size, 0x5a, req - old_size);
        native_note(m, ev->ptr, p, req);
        return 1;
    }
    case TRACE_EV_FREE: {
        struct ptr_entry *e = ev->ptr ? ptr_map_find(m, ev->ptr) : NULL;
        if (!e || ptr_entry_freed(e))
            return 0;
        free((void *)(uintptr_t)ptr_entry_val(m, e));
        ptr_map_mark_freed(m, e, 1);
        return 1;
    }
    case TRACE_EV_MALLOPT:
        mallopt((int)ev->param, (int)ev->value);
        return 1;
    case TRACE_EV_MALLOC_TRIM:
        malloc_trim(ev->size);
        return 1;
    default:
        return 0;
    }
}

/* ---- pre-decoded ops (for the model's and glibc's shares) ---- */

struct op {
    uint8_t kind;       /* TRACE_EV_*: allocations, REALLOC, FREE, MALLOPT, MALLOC_TRIM,
                           THREAD_EXIT */
    uint32_t thread;
    uint32_t ref;       /* REALLOC, FREE: the op that made the block, or NONE */
    uint64_t a, b, c;   /* as the event's size/nmemb/alignment; REALLOC: a = request, c = the
                           old block's request */
};

static struct op *decode(const char *path, size_t *nops)
{
    char err[512];
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    if (!r)
        die(path, err);
    size_t cap = 1 << 16, n = 0;
    struct op *ops = malloc(cap * sizeof *ops);
    struct ptr_map map;
    if (!ops || ptr_map_init(&map) < 0)
        die("decode", "out of memory");
    struct trace_event ev;
    while (trace_reader_next(r, &ev) == 1) {
        if (n + 2 >= cap) {
            cap *= 2;
            if (!(ops = realloc(ops, cap * sizeof *ops)))
                die("decode", "out of memory");
        }
        struct op o = {ev.kind, ev.thread, NONE, 0, 0, 0};
        uint64_t req = request_of(&ev);
        int was;
        uint64_t old_op;
        if (is_alloc(ev.kind)) {
            if (!ev.ptr)
                continue;
            if (ev.kind == TRACE_EV_CALLOC) {
                o.a = ev.nmemb;
                o.b = ev.size;
            } else if (ev.kind == TRACE_EV_MEMALIGN || ev.kind == TRACE_EV_POSIX_MEMALIGN ||
                       ev.kind == TRACE_EV_ALIGNED_ALLOC) {
                o.a = ev.alignment;
                o.b = ev.size;
            } else {
                o.a = ev.size;
            }
        } else if (ev.kind == TRACE_EV_REALLOC || ev.kind == TRACE_EV_REALLOCARRAY) {
            struct ptr_entry *e = ev.old_ptr ? ptr_map_find(&map, ev.old_ptr) : NULL;
            if (ev.old_ptr && (!e || ptr_entry_freed(e))) {
                if (!req || !ev.ptr)
                    continue;
                o = (struct op){TRACE_EV_MALLOC, ev.thread, NONE, req, 0, 0};
            } else {
                if (ev.old_ptr && !ev.ptr && req)
                    continue;
                o = (struct op){TRACE_EV_REALLOC, ev.thread, NONE, req, 0, 0};
                if (e) {
                    o.ref = (uint32_t)ptr_entry_val(&map, e);
                    o.c = ptr_entry_size(&map, e);
                    ptr_map_mark_freed(&map, e, 1);
                }
                if (!ev.ptr) {
                    ops[n++] = o;
                    continue;
                }
            }
        } else if (ev.kind == TRACE_EV_FREE) {
            struct ptr_entry *e = ev.ptr ? ptr_map_find(&map, ev.ptr) : NULL;
            if (!e || ptr_entry_freed(e))
                continue;
            o.ref = (uint32_t)ptr_entry_val(&map, e);
            ptr_map_mark_freed(&map, e, 1);
            ops[n++] = o;
            continue;
        } else if (ev.kind == TRACE_EV_MALLOPT) {
            o.a = (uint64_t)ev.param;
            o.b = (uint64_t)ev.value;
            ops[n++] = o;
            continue;
        } else if (ev.kind == TRACE_EV_MALLOC_TRIM) {
            o.a = ev.size;
            ops[n++] = o;
            continue;
        } else if (ev.kind == TRACE_EV_THREAD_EXIT) {
            ops[n++] = o;
            continue;
        } else {
            continue;
        }
        if (!ptr_map_put(&map, ev.ptr, n, req, &was, &old_op, NULL))
            die("decode", "out of memory");
        if (was) {   /* untraced free */
            ops[n++] = (struct op){TRACE_EV_FREE, ev.thread, (uint32_t)old_op, 0, 0, 0};
            ptr_map_put(&map, ev.ptr, n, req, &was, NULL, NULL);
        }
        ops[n++] = o;
    }
    trace_reader_close(r);
    ptr_map_free(&map);
    *nops = n;
    return ops;
}

static uint64_t op_request(const struct op *o)
{
    switch (o->kind) {
    case TRACE_EV_CALLOC: return mul_sat(o->a, o->b);
    case TRACE_EV_MEMALIGN: case TRACE_EV_POSIX_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC:
        return o->b;
    default: return o->a;
    }
}

static void run_native_ops(const struct op *ops, size_t n)
{
    void **blk = calloc(n ? n : 1, sizeof *blk);
    if (!blk)
        die("native-ops", "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct op *o = &ops[i];
        void *p = NULL;
        uint64_t req = op_request(o), from = 0;
        switch (o->kind) {
        case TRACE_EV_MALLOC: p = malloc(o->a); break;
        case TRACE_EV_CALLOC: p = calloc(o->a, o->b); break;
        case TRACE_EV_MEMALIGN: p = memalign(o->a, o->b); break;
        case TRACE_EV_POSIX_MEMALIGN: if (posix_memalign(&p, o->a, o->b)) p = NULL; break;
        case TRACE_EV_ALIGNED_ALLOC: p = aligned_alloc(o->a, o->b); break;
        case TRACE_EV_VALLOC: p = valloc(o->a); break;
        case TRACE_EV_PVALLOC: p = pvalloc(o->a); break;
        case TRACE_EV_REALLOC:
            p = realloc(o->ref == NONE ? NULL : blk[o->ref], o->a);
            from = o->c;
            break;
        case TRACE_EV_FREE: free(blk[o->ref]); break;
        case TRACE_EV_MALLOPT: mallopt((int)o->a, (int)o->b); break;
        case TRACE_EV_MALLOC_TRIM: malloc_trim(o->a); break;
        default: break;
        }
        if (p && req > from && req != UINT64_MAX)
            memset((char *)p + from, 0x5a, req - from);
        blk[i] = p;
    }
    free(blk);
}

static struct times run_model_ops(const char *path, const struct op *ops, size_t n)
{
    char err[512];
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    if (!r)
        die(path, err);
    const struct trace_header *h = trace_reader_header(r);
    struct replay_options o;
    replay_options_default(&o);
    struct ptmalloc_settings set;
    if (replay_build_settings(h, &o, &set, err, sizeof err) < 0)
        die(path, err);
    struct sysmem_config cfg;   /* as the replay sets the model up */
    sysmem_config_default(&cfg);
    if (h->heap_start && h->heap_start < cfg.mmap_base - (1ull << 32))
        cfg.brk_start = h->heap_start;
    trace_reader_close(r);
    struct sysmem *mem = sysmem_new(&cfg);
    struct ptmalloc *pm = mem ? ptmalloc_new(&set, mem) : NULL;
    uint64_t *blk = calloc(n ? n : 1, sizeof *blk);
    if (!pm || !blk)
        die("model-ops", "out of memory");
    double c0 = cpu_self(), w0 = now();
    for (size_t i = 0; i < n; i++) {
        const struct op *op = &ops[i];
        struct ptmalloc_result res = {0};
        uint32_t t = op->thread;
        uint64_t req = op_request(op), from = 0;
        switch (op->kind) {
        case TRACE_EV_MALLOC: res = ptmalloc_malloc(pm, t, op->a); break;
        case TRACE_EV_CALLOC: res = ptmalloc_calloc(pm, t, op->a, op->b); break;
        case TRACE_EV_MEMALIGN: res = ptmalloc_memalign(pm, t, op->a, op->b); break;
        case TRACE_EV_POSIX_MEMALIGN: res = ptmalloc_posix_memalign(pm, t, op->a, op->b); break;
        case TRACE_EV_ALIGNED_ALLOC: res = ptmalloc_aligned_alloc(pm, t, op->a, op->b); break;
        case TRACE_EV_VALLOC: res = ptmalloc_valloc(pm, t, op->a); break;
        case TRACE_EV_PVALLOC: res = ptmalloc_pvalloc(pm, t, op->a); break;
        case TRACE_EV_REALLOC:
            res = ptmalloc_realloc(pm, t, op->ref == NONE ? 0 : blk[op->ref], op->a);
            from = op->c;
            break;
        case TRACE_EV_FREE: ptmalloc_free(pm, t, blk[op->ref]); break;
        case TRACE_EV_MALLOPT: ptmalloc_mallopt(pm, t, (int)op->a, (int)op->b); break;
        case TRACE_EV_MALLOC_TRIM: ptmalloc_trim(pm, t, op->a); break;
        case TRACE_EV_THREAD_EXIT: ptmalloc_thread_exit(pm, t); break;
        default: break;
        }
        if (res.status == PTM_OK && res.ptr && req > from && req != UINT64_MAX)
            ptmalloc_touch(pm, res.ptr + from, req - from);
        blk[i] = res.status == PTM_OK ? res.ptr : 0;
    }
    struct times t = {cpu_self() - c0, now() - w0, 0, n};
    free(blk);
    ptmalloc_destroy(pm);
    return t;
}

/* ---- one measurement (a child) ---- */

static struct times measure(enum mode mode, const char *path)
{
    struct times t = {0, 0, 0, 0};
    char err[512];
    double c0 = 0, w0 = 0;
    if (mode == M_MODEL) {
        struct replay_options o;
        replay_options_default(&o);
        o.trace_path = path;
        struct replay_summary s;
        c0 = cpu_self();
        w0 = now();
        if (replay_run(&o, NULL, NULL, &s, NULL, err, sizeof err) != 0)
            die(path, err);
        t.cpu = cpu_self() - c0;
        t.wall = now() - w0;
        if (!s.completed)
            die(path, "the model replay did not reach the end of the trace");
        t.events = s.steps;
        return t;
    }
    if (mode == M_MODEL_OPS || mode == M_NATIVE_OPS) {
        size_t n;
        struct op *ops = decode(path, &n);
        if (mode == M_NATIVE_OPS) {
            c0 = cpu_self();
            w0 = now();
            run_native_ops(ops, n);
            t.cpu = cpu_self() - c0;
            t.wall = now() - w0;
            t.calls = n;
        } else {
            t = run_model_ops(path, ops, n);
        }
        free(ops);
        return t;
    }
    struct ptr_map map;
    struct stream s;
    memset(&s, 0, sizeof s);
    if (ptr_map_init(&map) < 0)
        die("native", "out of memory");
    c0 = cpu_self();
    w0 = now();
    s.r = trace_reader_open(path, err, sizeof err);
    if (!s.r)
        die(path, err);
    s.map = mode == M_NATIVE ? &map : NULL;
    const struct trace_event *ev;
    if (mode == M_NATIVE) {
        while ((ev = stream_next(&s))) {
            t.events++;
            t.calls += native_event(&map, ev);
        }
    } else {
        while ((ev = stream_next(&s)))
            t.events++;
    }
    trace_reader_close(s.r);
    t.cpu = cpu_self() - c0;
    t.wall = now() - w0;
    ptr_map_free(&map);
    return t;
}

static struct times run_child(const char *self, enum mode mode, const char *path)
{
    int fd[2];
    if (pipe(fd) != 0)
        die("pipe", "failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(self, self, "--child", mode_name[mode], path, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    struct times t = {0, 0, 0, 0};
    char buf[256];
    ssize_t k = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    unsigned long long ev = 0, calls = 0;
    buf[k > 0 ? k : 0] = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        sscanf(buf, "%lf %lf %llu %llu", &t.cpu, &t.wall, &ev, &calls) != 4)
        die(mode_name[mode], "the measurement failed");
    t.events = ev;
    t.calls = calls;
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct stat3 {
    double med, min, max;
};

static struct stat3 stats_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    struct stat3 s = {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0], v[n - 1]};
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--child")) {
        for (int m = 0; m < M_COUNT; m++)
            if (!strcmp(argv[2], mode_name[m])) {
                struct times t = measure((enum mode)m, argv[3]);
                printf("%.6f %.6f %llu %llu\n", t.cpu, t.wall, (unsigned long long)t.events,
                       (unsigned long long)t.calls);
                return 0;
            }
        return 2;
    }
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_replay TRACE [RUNS]   (RUNS >= 5, default 5)\n");
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (runs < 5)
        runs = 5;
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0)
        die("/proc/self/exe", "unreadable");
    self[sl] = 0;

    double *cpu[M_COUNT], *wall[M_COUNT];
    struct times last[M_COUNT];
    for (int m = 0; m < M_COUNT; m++) {
        cpu[m] = calloc((size_t)runs, sizeof(double));
        wall[m] = calloc((size_t)runs, sizeof(double));
    }
    for (int k = 0; k < runs; k++)
        for (int m = 0; m < M_COUNT; m++) {
            last[m] = run_child(self, (enum mode)m, argv[1]);
            cpu[m][k] = last[m].cpu;
            wall[m][k] = last[m].wall;
        }
    struct stat3 c[M_COUNT], w[M_COUNT];
    for (int m = 0; m < M_COUNT; m++) {
        c[m] = stats_of(cpu[m], runs);
        w[m] = stats_of(wall[m], runs);
    }
    double ratio = c[M_NATIVE].med > 0 ? c[M_MODEL].med / c[M_NATIVE].med : 0;
    double model = c[M_MODEL].med;
    double own = model - c[M_READER].med - c[M_MODEL_OPS].med;
    printf("trace           %s: %llu events, %llu calls replayed\n", argv[1],
           (unsigned long long)last[M_MODEL].events, (unsigned long long)last[M_NATIVE].calls);
    printf("method          %d runs, each measurement in a fresh process, interleaved; CPU "
           "seconds (user+sys) of the measured loop: median [min-max]\n", runs);
    printf("\nstreamed: both sides read the trace with the same reader (8 events ahead) and map "
           "pointers with the same table (ptr_map)\n");
    printf("  model replay  %.3f [%.3f-%.3f]  wall %.3f  replay_run in summary mode (fragscope "
           "replay TRACE, no printing)\n", c[M_MODEL].med, c[M_MODEL].min, c[M_MODEL].max,
           w[M_MODEL].med);
    printf("  native replay %.3f [%.3f-%.3f]  wall %.3f  the same calls on glibc malloc, one "
           "thread, every requested byte written\n", c[M_NATIVE].med, c[M_NATIVE].min,
           c[M_NATIVE].max, w[M_NATIVE].med);
    printf("  ratio         model / native = %.2f (cpu), %.2f (wall); target <= 2.0: %s\n", ratio,
           w[M_NATIVE].med > 0 ? w[M_MODEL].med / w[M_NATIVE].med : 0.0,
           ratio <= 2.0 ? "met" : "NOT MET");
    printf("\nwhere the model replay's time goes (medians)\n");
    printf("  reader            %.3f  %4.1f%%  trace_reader_next alone\n", c[M_READER].med,
           model > 0 ? 100 * c[M_READER].med / model : 0.0);
    printf("  model calls       %.3f  %4.1f%%  the same calls pre-decoded, on the model with touch "
           "accounting (the allocator's share)\n", c[M_MODEL_OPS].med,
           model > 0 ? 100 * c[M_MODEL_OPS].med / model : 0.0);
    printf("  replayer's own    %.3f  %4.1f%%  the rest: pointer map, skips, summary counters\n",
           own, model > 0 ? 100 * own / model : 0.0);
    printf("  glibc calls       %.3f         the same pre-decoded calls on glibc (model calls / "
           "glibc calls = %.2f)\n", c[M_NATIVE_OPS].med,
           c[M_NATIVE_OPS].med > 0 ? c[M_MODEL_OPS].med / c[M_NATIVE_OPS].med : 0.0);
    for (int m = 0; m < M_COUNT; m++) {
        free(cpu[m]);
        free(wall[m]);
    }
    return 0;
}
