/* bench_ops.h: the request sequence the allocator benchmarks replay (bench_ptmalloc and
 * tests/diff/model_bench), generated in one place so both measure exactly the same work.
 *
 * A deterministic xorshift stream over BENCH_SLOTS slots: an empty slot gets a malloc (1 in 20 a
 * calloc), a full one a realloc (1 in 8) or a free. Sizes follow a realistic mix: mostly small
 * objects, some medium buffers, a few large ones above the mmap threshold. The live set settles
 * at about half the slots, freed in random order.
 */
#ifndef FRAGSCOPE_BENCH_OPS_H
#define FRAGSCOPE_BENCH_OPS_H

#include <stdint.h>

#define BENCH_SLOTS 20000

enum bench_op_kind { BENCH_MALLOC, BENCH_FREE, BENCH_REALLOC, BENCH_CALLOC };

struct bench_op {
    uint8_t kind;        /* enum bench_op_kind */
    uint32_t slot;       /* 0 .. BENCH_SLOTS-1 */
    uint64_t size;       /* malloc, calloc (1 x size) and realloc */
};

/* n operations, the same for every call (the stream restarts from its seed); NULL on host OOM.
 * Free with free(). */
struct bench_op *bench_ops_make(uint64_t n);

#endif
