/* bench_replay.c: how much slower the model replays a trace than the real allocator does.
 *
 * Usage: bench_replay TRACE [REPEAT]
 *
 * Measured in one run, best of REPEAT (default 3), CPU time (user + system, so that other
 * processes on the machine do not count) and wall time:
 *   model   `fragscope replay TRACE` in summary mode: replay_run without a step callback
 *           (trace decoding included);
 *   native  the same trace replayed on the real glibc malloc: decoding the trace into an op
 *           array (the same reader), then, in a fresh child process, performing the ops with
 *           every requested byte written (as --touch all models it; for realloc only the last byte). All ops run on one thread
 *           here (this measures speed, not placement).
 * Prints both and the ratios model / native (decode + calls) and model / calls alone. The target
 * is model / native <= 2.0. (`fragscope replay --native` itself is not used: its runner records
 * mallinfo2 and a 144-byte result after every op, which is what its differential tests need but
 * not what a speed comparison should measure.)
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

struct op {
    uint8_t kind;     /* 1 malloc, 2 calloc, 3 realloc, 4 free, 5 memalign */
    uint32_t ref;     /* op index of the block (realloc, free) or UINT32_MAX */
    uint64_t a, b;
};

struct times {
    double cpu, wall;
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

/* Decodes the trace into ops (the native replay's first half). */
static struct op *decode(const char *path, size_t *nops)
{
    char err[512];
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    if (!r) {
        fprintf(stderr, "bench_replay: %s\n", err);
        exit(1);
    }
    size_t cap = 1 << 20, n = 0;
    struct op *ops = malloc(cap * sizeof *ops);
    struct ptr_map map;
    ptr_map_init(&map);
    struct trace_event ev;
    while (trace_reader_next(r, &ev) == 1) {
        if (n + 2 >= cap) {
            cap *= 2;
            ops = realloc(ops, cap * sizeof *ops);
        }
        struct op o = {0, UINT32_MAX, 0, 0};
        struct ptr_entry *e;
        int was;
        switch (ev.kind) {
        case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
            o = (struct op){1, UINT32_MAX, ev.size, 0};
            break;
        case TRACE_EV_CALLOC:
            o = (struct op){2, UINT32_MAX, ev.nmemb, ev.size};
            break;
        case TRACE_EV_MEMALIGN: case TRACE_EV_POSIX_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC:
            o = (struct op){5, UINT32_MAX, ev.alignment, ev.size};
            break;
        case TRACE_EV_REALLOC: case TRACE_EV_REALLOCARRAY:
            e = ev.old_ptr ? ptr_map_find(&map, ev.old_ptr) : NULL;
            if (e && !e->freed) {
                o = (struct op){3, (uint32_t)e->val, ev.kind == TRACE_EV_REALLOC ? ev.size
                                                                               : ev.nmemb * ev.size, 0};
                ptr_map_remove(&map, e);
            } else {
                o = (struct op){1, UINT32_MAX, ev.size, 0};
            }
            break;
        case TRACE_EV_FREE:
            e = ev.ptr ? ptr_map_find(&map, ev.ptr) : NULL;
            if (!e || e->freed)
                continue;
            o = (struct op){4, (uint32_t)e->val, 0, 0};
            ptr_map_remove(&map, e);
            break;
        default:
            continue;
        }
        if (o.kind != 4 && ev.ptr && !(o.kind == 3 && !o.a))
            ptr_map_put(&map, ev.ptr, n, 0, 0, &was, NULL);
        if (o.kind != 4 && !ev.ptr)
            continue;   /* failed in the recording */
        ops[n++] = o;
    }
    trace_reader_close(r);
    ptr_map_free(&map);
    *nops = n;
    return ops;
}

/* Performs the ops on the real allocator in a child; returns its op-loop times. */
static struct times run_native(const struct op *ops, size_t n)
{
    int fd[2];
    if (pipe(fd) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        void **blk = calloc(n ? n : 1, sizeof *blk);
        double w0 = now(), c0 = cpu_self();
        for (size_t i = 0; i < n; i++) {
            const struct op *o = &ops[i];
            void *p = NULL;
            size_t req = 0;
            switch (o->kind) {
            case 1: p = malloc(o->a); req = o->a; break;
            case 2: p = calloc(o->a, o->b); req = o->a * o->b; break;
            case 5: p = memalign(o->a, o->b); req = o->b; break;
            case 3: p = realloc(blk[o->ref], o->a); req = o->a; blk[o->ref] = NULL; break;
            case 4: free(blk[o->ref]); blk[o->ref] = NULL; break;
            }
            if (p && o->kind != 3)
                memset(p, 0x5a, req);
            else if (p)
                ((volatile char *)p)[req ? req - 1 : 0] = 1;
            blk[i] = p;
        }
        struct times t = {cpu_self() - c0, now() - w0};
        if (write(fd[1], &t, sizeof t) != sizeof t)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    struct times t = {0, 0};
    if (read(fd[0], &t, sizeof t) != sizeof t)
        fprintf(stderr, "bench_replay: the native child failed\n");
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_replay TRACE [REPEAT]\n");
        return 2;
    }
    int repeat = argc > 2 ? atoi(argv[2]) : 3;
    if (repeat < 1)
        repeat = 1;
    struct times model = {1e30, 1e30}, dec = {1e30, 1e30}, calls = {1e30, 1e30};
    uint64_t events = 0;
    size_t nops = 0;
    for (int k = 0; k < repeat; k++) {
        struct replay_options o;
        replay_options_default(&o);
        o.trace_path = argv[1];
        struct replay_summary s;
        char err[512];
        double w0 = now(), c0 = cpu_self();
        if (replay_run(&o, NULL, NULL, &s, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "bench_replay: %s\n", err);
            return 1;
        }
        double cm = cpu_self() - c0, wm = now() - w0;
        if (!s.completed) {
            fprintf(stderr, "bench_replay: %s: the replay stopped at step %llu: %s\n", argv[1],
                    (unsigned long long)s.steps, s.reader.reason[0] ? s.reader.reason : "?");
            return 1;
        }
        events = s.steps;
        if (cm < model.cpu)
            model = (struct times){cm, wm};

        w0 = now();
        c0 = cpu_self();
        struct op *ops = decode(argv[1], &nops);
        double cd = cpu_self() - c0, wd = now() - w0;
        if (cd < dec.cpu)
            dec = (struct times){cd, wd};
        struct times tc = run_native(ops, nops);
        if (tc.cpu < calls.cpu)
            calls = tc;
        free(ops);
    }
    double ncpu = dec.cpu + calls.cpu, nwall = dec.wall + calls.wall;
    printf("trace            %s: %llu events, %zu native ops\n", argv[1],
           (unsigned long long)events, nops);
    printf("model replay     cpu %.3f s, wall %.3f s (%.0f ns/event cpu)\n", model.cpu, model.wall,
           events ? model.cpu * 1e9 / (double)events : 0.0);
    printf("native replay    cpu %.3f s = decode %.3f + calls %.3f; wall %.3f s\n", ncpu, dec.cpu,
           calls.cpu, nwall);
    printf("ratio            model / native %.2f (cpu), %.2f (wall); model / calls alone %.2f (cpu)\n",
           ncpu > 0 ? model.cpu / ncpu : 0.0, nwall > 0 ? model.wall / nwall : 0.0,
           calls.cpu > 0 ? model.cpu / calls.cpu : 0.0);
    return 0;
}
