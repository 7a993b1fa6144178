/* model_bench.c: how fast the ptmalloc model is next to the real glibc malloc.
 *
 *   model_bench [OPS] [REPEATS]      (defaults: 10000000 ops, 5 repeats)
 *
 * One request sequence (tests/allocator/bench_ops.c: malloc / free / realloc / calloc with a
 * realistic size mix, about 10700 blocks live, freed in random order) is generated once, then
 * performed REPEATS times through this process's glibc and REPEATS times through the model (a
 * fresh ptmalloc each time), the two alternating, printing the median time of each and the ratio
 * (model speed as a fraction of glibc's; the goal is >= 0.7). Nothing is written into the
 * blocks on either side. Build it without sanitizers to get meaningful times.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_ops.h"
#include "ptmalloc.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* noinline, so profiles (callgrind) show each side on its own */
static __attribute__((noinline)) double run_libc(const struct bench_op *ops, uint64_t n)
{
    void **slot = calloc(BENCH_SLOTS, sizeof *slot);
    double t0 = now();
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
    double t = now() - t0;
    free(slot);
    return t;
}

static __attribute__((noinline)) double run_model(const struct bench_op *ops, uint64_t n)
{
    struct ptmalloc_settings s;
    ptmalloc_settings_default(&s);
    s.cpu_count = 2;
    struct ptmalloc *pm = ptmalloc_new(&s, NULL);
    uint64_t *slot = calloc(BENCH_SLOTS, sizeof *slot);
    if (!pm || !slot)
        exit(2);
    double t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        const struct bench_op *o = &ops[i];
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
    double t = now() - t0;
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
        printf("usage: model_bench [OPS] [REPEATS]\n"
               "Times one malloc/free/realloc sequence through glibc and through the model.\n");
        return 0;
    }
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 10000000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (n == 0 || reps < 1 || reps > 99) {
        fprintf(stderr, "model_bench: bad arguments\n");
        return 2;
    }
    struct bench_op *ops = bench_ops_make(n);
    if (!ops) {
        fprintf(stderr, "model_bench: out of memory\n");
        return 2;
    }
    double tl[99], tm[99];
    for (int r = 0; r < reps; r++) {
        tl[r] = run_libc(ops, n);
        tm[r] = run_model(ops, n);
        fprintf(stderr, "  run %d: glibc %.3f s, model %.3f s\n", r + 1, tl[r], tm[r]);
    }
    qsort(tl, (size_t)reps, sizeof tl[0], cmp_double);
    qsort(tm, (size_t)reps, sizeof tm[0], cmp_double);
    double l = tl[reps / 2], m = tm[reps / 2];
    printf("ops %llu: glibc %.3f s (%.1f ns/op), model %.3f s (%.1f ns/op), "
           "model speed %.2fx glibc's\n", (unsigned long long)n, l, l * 1e9 / (double)n, m,
           m * 1e9 / (double)n, l / m);
    free(ops);
    return 0;
}
