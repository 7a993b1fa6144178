/* bench_ptmalloc.c: the model's own speed, in CPU time, for tuning allocator/ (not a test).
 *
 *   bench_ptmalloc ops [OPS] [REPEATS]        model only, model_bench's request sequence
 *   bench_ptmalloc stats [OPS] [ARENAS]       ns per ptmalloc_stats call
 *
 * `ops` replays the request sequence of tests/diff/model_bench (bench_ops.c: a realistic size
 * mix over 20000 slots) through a fresh model REPEATS times and prints the
 * minimum and the median CPU time per op. CPU time (not wall time) because the machine is
 * shared: it is less disturbed by other processes, though their cache traffic still shows.
 *
 * `stats` spreads the same sequence over ARENAS threads, each pinned to its own arena, and
 * prints the cost of ptmalloc_stats as the analyzer's ingest pays it (one call after every
 * step, all arenas and one arena: the time with the calls minus the time without), and of
 * repeated calls with no step between them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_ops.h"
#include "ptmalloc.h"

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct ptmalloc *fresh_model(uint32_t arenas)
{
    struct ptmalloc_settings s;
    ptmalloc_settings_default(&s);
    s.cpu_count = 2;
    struct ptmalloc *pm = ptmalloc_new(&s, NULL);
    if (!pm)
        exit(2);
    for (uint32_t a = 1; a < arenas; a++)
        if (ptmalloc_thread_set_arena(pm, a, a) != 0)
            exit(2);
    return pm;
}

static void step(struct ptmalloc *pm, uint64_t *slot, const struct bench_op *o, uint32_t threads)
{
    uint32_t t = threads > 1 ? o->slot % threads : 0;
    switch (o->kind) {
    case BENCH_MALLOC: slot[o->slot] = ptmalloc_malloc(pm, t, o->size).ptr; break;
    case BENCH_CALLOC: slot[o->slot] = ptmalloc_calloc(pm, t, 1, o->size).ptr; break;
    case BENCH_REALLOC: slot[o->slot] = ptmalloc_realloc(pm, t, slot[o->slot], o->size).ptr; break;
    default:
        ptmalloc_free(pm, t, slot[o->slot]);
        slot[o->slot] = 0;
        break;
    }
}

static volatile uint64_t sink;

/* CPU seconds for the sequence; with_stats after each step: 0 none, 1 ptmalloc_stats of all
 * arenas, 2 ptmalloc_stats of arena 0, 3 ptmalloc_stats_arena of arena 0. */
static double run(const struct bench_op *ops, uint64_t n, uint32_t threads, int with_stats)
{
    struct ptmalloc *pm = fresh_model(threads);
    uint64_t *slot = calloc(BENCH_SLOTS, sizeof *slot);
    if (!slot)
        exit(2);
    struct ptmalloc_stats st;
    double t0 = cpu_now();
    for (uint64_t i = 0; i < n; i++) {
        step(pm, slot, &ops[i], threads);
        if (with_stats) {
            if (with_stats == 3)
                ptmalloc_stats_arena(pm, 0, &st);
            else
                ptmalloc_stats(pm, with_stats == 1 ? -1 : 0, &st);
            sink += st.largest_free + st.resident_bytes;
        }
    }
    double t = cpu_now() - t0;
    ptmalloc_destroy(pm);
    free(slot);
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_ops(uint64_t n, int reps)
{
    struct bench_op *ops = bench_ops_make(n);
    if (!ops)
        exit(2);
    double t[99];
    for (int r = 0; r < reps; r++)
        t[r] = run(ops, n, 1, 0);
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    printf("model: %llu ops, min %.1f ns/op, median %.1f ns/op (CPU time, %d runs)\n",
           (unsigned long long)n, t[0] * 1e9 / (double)n, t[reps / 2] * 1e9 / (double)n, reps);
    free(ops);
}

static void bench_stats(uint64_t n, uint32_t arenas)
{
    struct bench_op *ops = bench_ops_make(n);
    if (!ops)
        exit(2);
    double t[4] = {1e30, 1e30, 1e30, 1e30};
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 4; k++) {
            double x = run(ops, n, arenas, k);
            t[k] = x < t[k] ? x : t[k];
        }
    printf("ptmalloc_stats, %u arenas, after every step: all arenas %.1f ns/call, one arena "
           "%.1f ns/call, ptmalloc_stats_arena %.1f ns/call (steps alone %.1f ns/op)\n", arenas,
           (t[1] - t[0]) * 1e9 / (double)n, (t[2] - t[0]) * 1e9 / (double)n,
           (t[3] - t[0]) * 1e9 / (double)n, t[0] * 1e9 / (double)n);

    /* repeated calls on the final state */
    struct ptmalloc *pm = fresh_model(arenas);
    uint64_t *slot = calloc(BENCH_SLOTS, sizeof *slot);
    if (!slot)
        exit(2);
    for (uint64_t i = 0; i < n; i++)
        step(pm, slot, &ops[i], arenas);
    struct ptmalloc_stats st;
    const int calls = 1000000;
    double t0 = cpu_now();
    for (int i = 0; i < calls; i++) {
        ptmalloc_stats(pm, -1, &st);
        sink += st.largest_free;
    }
    double t1 = cpu_now();
    for (int i = 0; i < calls; i++) {
        ptmalloc_stats(pm, 0, &st);
        sink += st.largest_free;
    }
    double t2 = cpu_now();
    for (int i = 0; i < calls; i++) {
        ptmalloc_stats_arena(pm, 0, &st);
        sink += st.largest_free;
    }
    double t3 = cpu_now();
    printf("ptmalloc_stats, repeated with no step between: all arenas %.1f ns/call, one arena "
           "%.1f ns/call, ptmalloc_stats_arena %.1f ns/call\n", (t1 - t0) * 1e9 / calls,
           (t2 - t1) * 1e9 / calls, (t3 - t2) * 1e9 / calls);
    ptmalloc_destroy(pm);
    free(slot);
    free(ops);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        printf("usage: bench_ptmalloc ops [OPS] [REPEATS]\n"
               "       bench_ptmalloc stats [OPS] [ARENAS]\n");
        return argc < 2;
    }
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 0) : 0;
    if (strcmp(argv[1], "ops") == 0) {
        int reps = argc > 3 ? atoi(argv[3]) : 5;
        if (reps < 1 || reps > 99) {
            fprintf(stderr, "bench_ptmalloc: REPEATS must be 1..99\n");
            return 2;
        }
        bench_ops(n ? n : 10000000, reps);
    } else if (strcmp(argv[1], "stats") == 0) {
        long arenas = argc > 3 ? atol(argv[3]) : 4;
        if (arenas < 1 || arenas > 64) {
            fprintf(stderr, "bench_ptmalloc: ARENAS must be 1..64\n");
            return 2;
        }
        bench_stats(n ? n : 1000000, (uint32_t)arenas);
    } else {
        fprintf(stderr, "bench_ptmalloc: unknown mode '%s' (ops or stats)\n", argv[1]);
        return 2;
    }
    return 0;
}
