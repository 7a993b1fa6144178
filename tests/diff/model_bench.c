/* model_bench.c: how fast the ptmalloc model is next to the real glibc malloc.
 *
 *   model_bench [OPS] [REPEATS] [AHEAD]    (defaults: 10000000 ops, 5 repeats, 2)
 *
 * One request sequence (tests/allocator/bench_ops.c: malloc / free / realloc / calloc with a
 * realistic size mix, about 10700 blocks live, freed in random order) is generated once, then
 * performed REPEATS times through this process's glibc and REPEATS times through the model (a
 * fresh ptmalloc each time), the two alternating, printing the median time of each and the ratio
 * (model speed as a fraction of glibc's; the goal is >= 0.7). Each side is timed in wall time and
 * in the process's CPU time (user + sys, glibc's page faults included): on a shared machine the
 * CPU time is the steadier figure, as waiting for a core does not count. The last line also
 * gives the median of the per-round CPU ratios, which drifting load disturbs least. Nothing is
 * written into the blocks on either side. Build it without sanitizers to get meaningful times.
 *
 * The model is driven as the replayer drives it: knowing the sequence, it is told AHEAD calls in
 * advance which block a coming free or realloc names (ptmalloc_prefetch), so that its host-side
 * cache misses overlap the calls in between. AHEAD 0 gives no hints: compare separate runs (a
 * variant that ran the model twice per round, with and without hints, measured both model runs
 * at the same speed, ~88 ns/op, between the two single-run figures; not understood).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_ops.h"
#include "ptmalloc.h"

struct stamp {
    double wall, cpu;
};

static struct stamp now(void)
{
    struct timespec w, c;
    clock_gettime(CLOCK_MONOTONIC, &w);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
    struct stamp s = {(double)w.tv_sec + (double)w.tv_nsec / 1e9,
                      (double)c.tv_sec + (double)c.tv_nsec / 1e9};
    return s;
}

static struct stamp since(struct stamp t0)
{
    struct stamp t = now();
    t.wall -= t0.wall;
    t.cpu -= t0.cpu;
    return t;
}

/* noinline, so profiles (callgrind) show each side on its own */
static __attribute__((noinline)) struct stamp run_libc(const struct bench_op *ops, uint64_t n)
{
    void **slot = calloc(BENCH_SLOTS, sizeof *slot);
    struct stamp t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        const struct bench_op *o = &ops[i];
        switch (o->kind) {
        case BENCH_MALLOC: slot[o->slot] = malloc(o->size); break;
        case BENCH_CALLOC: slot[o->slot] = calloc(1, o->size); break;
        case BENCH_REALLOC: slot[o->slot] = realloc(slot[o->slot], o->size); break;
        default: free(slot[o->slot]); slot[o->slot] = NULL; break;
        }
        __asm__ volatile("" : : "r"(slot[o->slot]) : "memory");
    }
    for (uint32_t k = 0; k < BENCH_SLOTS; k++)
        free(slot[k]);
    struct stamp t = since(t0);
    free(slot);
    return t;
}

/* ahead: how many calls ahead the model hears which block a free or realloc names (0: never) */
static __attribute__((noinline)) struct stamp run_model(const struct bench_op *ops, uint64_t n,
                                                        uint64_t ahead)
{
    struct ptmalloc_settings s;
    ptmalloc_settings_default(&s);
    s.cpu_count = 2;
    struct ptmalloc *pm = ptmalloc_new(&s, NULL);
    uint64_t *slot = calloc(BENCH_SLOTS, sizeof *slot);
    if (!pm || !slot)
        exit(2);
    struct stamp t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        const struct bench_op *o = &ops[i];
        if (ahead && i + ahead < n) {
            const struct bench_op *a = &ops[i + ahead];
            if (a->kind == BENCH_FREE || a->kind == BENCH_REALLOC)
                ptmalloc_prefetch(pm, slot[a->slot]);
        }
        switch (o->kind) {
        case BENCH_MALLOC: slot[o->slot] = ptmalloc_malloc(pm, 0, o->size).ptr; break;
        case BENCH_CALLOC: slot[o->slot] = ptmalloc_calloc(pm, 0, 1, o->size).ptr; break;
        case BENCH_REALLOC:
            slot[o->slot] = ptmalloc_realloc(pm, 0, slot[o->slot], o->size).ptr;
            break;
        default:
            ptmalloc_free(pm, 0, slot[o->slot]);
            slot[o->slot] = 0;
            break;
        }
    }
    for (uint32_t k = 0; k < BENCH_SLOTS; k++)
        ptmalloc_free(pm, 0, slot[k]);
    struct stamp t = since(t0);
    ptmalloc_destroy(pm);
    free(slot);
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: model_bench [OPS] [REPEATS] [AHEAD]\n"
               "Times one malloc/free/realloc sequence through glibc and through the model,\n"
               "the model told AHEAD calls ahead which block a free names (0: no hints).\n");
        return 0;
    }
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 10000000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    long ahead = argc > 3 ? atol(argv[3]) : 2;
    if (n == 0 || reps < 1 || reps > 99 || ahead < 0 || ahead > 1000) {
        fprintf(stderr, "model_bench: bad arguments\n");
        return 2;
    }
    struct bench_op *ops = bench_ops_make(n);
    if (!ops) {
        fprintf(stderr, "model_bench: out of memory\n");
        return 2;
    }
    double wl[99], wm[99], cl[99], cm[99], cr[99];
    for (int r = 0; r < reps; r++) {
        struct stamp l = run_libc(ops, n), m = run_model(ops, n, (uint64_t)ahead);
        wl[r] = l.wall;
        wm[r] = m.wall;
        cl[r] = l.cpu;
        cm[r] = m.cpu;
        cr[r] = l.cpu / m.cpu;
        fprintf(stderr, "  run %d: glibc %.3f s (CPU %.3f s), model %.3f s (CPU %.3f s)\n", r + 1,
                l.wall, l.cpu, m.wall, m.cpu);
    }
    double *all[] = {wl, wm, cl, cm, cr};
    for (int k = 0; k < 5; k++)
        qsort(all[k], (size_t)reps, sizeof(double), cmp_double);
    int mid = reps / 2;
    double dn = (double)n;
    printf("hints: %ld calls ahead\n", ahead);
    printf("ops %llu, medians of %d: wall: glibc %.3f s (%.1f ns/op), model %.3f s (%.1f ns/op), "
           "model speed %.2fx glibc's\n", (unsigned long long)n, reps, wl[mid],
           wl[mid] * 1e9 / dn, wm[mid], wm[mid] * 1e9 / dn, wl[mid] / wm[mid]);
    printf("ops %llu, medians of %d: CPU:  glibc %.3f s (%.1f ns/op), model %.3f s (%.1f ns/op), "
           "model speed %.2fx glibc's (per-round ratios: median %.2fx)\n", (unsigned long long)n,
           reps, cl[mid], cl[mid] * 1e9 / dn, cm[mid], cm[mid] * 1e9 / dn, cl[mid] / cm[mid],
           cr[mid]);
    free(ops);
    return 0;
}
