/* bench_ops.c: the benchmarks' request sequence (see bench_ops.h).
 *
 * The generator and its seed are those the benchmarks have always used, so figures measured
 * before and after this file existed compare directly.
 */
#include "bench_ops.h"

#include <stdlib.h>

struct xorshift {
    uint64_t s;
};

static uint64_t next(struct xorshift *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static uint64_t request_size(struct xorshift *r)
{
    uint64_t k = next(r) % 1000;
    if (k < 550)
        return 8 + next(r) % 120;                 /* small objects */
    if (k < 850)
        return 128 + next(r) % 896;               /* strings, nodes */
    if (k < 970)
        return 1024 + next(r) % (15 << 10);       /* buffers */
    if (k < 997)
        return (16 << 10) + next(r) % (112 << 10);
    return (128 << 10) + next(r) % (1 << 20);     /* a few large ones (mmapped) */
}

struct bench_op *bench_ops_make(uint64_t n)
{
    struct xorshift r = {88172645463325252ull};
    struct bench_op *ops = malloc(n * sizeof *ops);
    uint8_t *used = calloc(BENCH_SLOTS, 1);
    if (!ops || !used) {
        free(ops);
        free(used);
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint32_t slot = (uint32_t)(next(&r) % BENCH_SLOTS);
        struct bench_op *o = &ops[i];
        o->slot = slot;
        o->size = 0;
        if (!used[slot]) {
            o->kind = next(&r) % 20 == 0 ? BENCH_CALLOC : BENCH_MALLOC;
            o->size = request_size(&r);
            used[slot] = 1;
        } else if (next(&r) % 8 == 0) {
            o->kind = BENCH_REALLOC;
            o->size = request_size(&r);
        } else {
            o->kind = BENCH_FREE;
            used[slot] = 0;
        }
    }
    free(used);
    return ops;
}
