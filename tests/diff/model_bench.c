/* model_bench.c: how fast the ptmalloc model is next to the real glibc malloc.
 *
 *   model_bench [OPS] [REPEATS]      (defaults: 10000000 ops, 5 repeats)
 *
 * One request sequence (malloc / free / realloc / calloc with a realistic size mix: mostly
 * small objects, some medium buffers, a few large ones; a live set of about 20000 blocks freed
 * in random order) is generated once, then performed REPEATS times through this process's glibc
 * and REPEATS times through the model (a fresh ptmalloc each time), printing the median time of
 * each and the ratio (model speed as a fraction of glibc's; the goal is >= 0.7). Nothing is
 * written into the blocks on either side. Build it without sanitizers to get meaningful times.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ptmalloc.h"

enum { B_MALLOC, B_FREE, B_REALLOC, B_CALLOC };

struct bop {
    uint8_t kind;
    uint32_t slot;
    uint64_t size;
};

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t real_size(void)
{
    uint64_t r = rng() % 1000;
    if (r < 550)
        return 8 + rng() % 120;                 /* small objects */
    if (r < 850)
        return 128 + rng() % 896;               /* strings, nodes */
    if (r < 970)
        return 1024 + rng() % (15 << 10);       /* buffers */
    if (r < 997)
        return (16 << 10) + rng() % (112 << 10);
    return (128 << 10) + rng() % (1 << 20);     /* a few large ones (mmapped) */
}

#define SLOTS 20000

static struct bop *make_ops(uint64_t n)
{
    struct bop *ops = malloc(n * sizeof *ops);
    uint8_t *used = calloc(SLOTS, 1);
    if (!ops || !used)
        exit(2);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t slot = (uint32_t)(rng() % SLOTS);
        struct bop *o = &ops[i];
        o->slot = slot;
        if (!used[slot]) {
            o->kind = rng() % 20 == 0 ? B_CALLOC : B_MALLOC;
            o->size = real_size();
            used[slot] = 1;
        } else if (rng() % 8 == 0) {
            o->kind = B_REALLOC;
            o->size = real_size();
        } else {
            o->kind = B_FREE;
            used[slot] = 0;
        }
    }
    free(used);
    return ops;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double run_libc(const struct bop *ops, uint64_t n)
{
    void **slot = calloc(SLOTS, sizeof *slot);
    double t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        const struct bop *o = &ops[i];
        switch (o->kind) {
        case B_MALLOC: slot[o->slot] = malloc(o->size); break;
        case B_CALLOC: slot[o->slot] = calloc(1, o->size); break;
        case B_REALLOC: slot[o->slot] = realloc(slot[o->slot], o->size); break;
        default: free(slot[o->slot]); slot[o->slot] = NULL; break;
        }
        __asm__ volatile("" : : "r"(slot[o->slot]) : "memory");
    }
    for (uint32_t k = 0; k < SLOTS; k++)
        free(slot[k]);
    double t = now() - t0;
    free(slot);
    return t;
}

static double run_model(const struct bop *ops, uint64_t n)
{
    struct ptmalloc_settings s;
    ptmalloc_settings_default(&s);
    s.cpu_count = 2;
    struct ptmalloc *pm = ptmalloc_new(&s, NULL);
    uint64_t *slot = calloc(SLOTS, sizeof *slot);
    if (!pm || !slot)
        exit(2);
    double t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        const struct bop *o = &ops[i];
        switch (o->kind) {
        case B_MALLOC: slot[o->slot] = ptmalloc_malloc(pm, 0, o->size).ptr; break;
        case B_CALLOC: slot[o->slot] = ptmalloc_calloc(pm, 0, 1, o->size).ptr; break;
        case B_REALLOC:
            slot[o->slot] = ptmalloc_realloc(pm, 0, slot[o->slot], o->size).ptr;
            break;
        default:
            ptmalloc_free(pm, 0, slot[o->slot]);
            slot[o->slot] = 0;
            break;
        }
    }
    for (uint32_t k = 0; k < SLOTS; k++)
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
    struct bop *ops = make_ops(n);
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
