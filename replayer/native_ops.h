/* native_ops.h: the binary op-sequence format of the real-libc runner, and how it normalises
 * addresses.
 *
 * The contract between whoever writes a request sequence (the differential harness in
 * tests/diff/, `fragscope replay --native`) and fragscope-native-runner, which performs the
 * sequence on the real allocator of a fresh process and records what happened after every op.
 *
 * Ops file (input, little-endian, no padding surprises: every struct below has a fixed size):
 *     struct native_ops_header, then header.op_count x struct native_op.
 * An op names the thread that performs it (0 = the main thread). Blocks are named by the index
 * of the op that allocated them: free, realloc, usable_size and write carry `ref`, the op index,
 * or NATIVE_REF_NULL for a NULL pointer. realloc/reallocarray consume their block and the result
 * is a new block named by the realloc's own index (even when it did not move). The runner checks
 * the whole file before running and rejects, with the op index, a ref that is not an earlier
 * allocation still live, a thread that is not running, or an unknown kind.
 *
 * Threads run strictly one at a time: the main thread starts thread K (NATIVE_OP_THREAD_START,
 * `thread` = K), hands it each of its ops and waits; NATIVE_OP_THREAD_EXIT lets K return and
 * joins it. So the arena every thread gets is deterministic.
 *
 * Output file (written by the runner, mmap'd):
 *     struct native_out_header, then op_count x struct native_result (at result_offset), then
 *     internal_capacity x struct native_internal (at internal_offset).
 * After each op: the op's result (normalised address, return value, errno), mallinfo2, the
 * break offset, and when asked (NATIVE_F_RSS, or NATIVE_OPF_SAMPLE on the op, or a
 * NATIVE_OP_SAMPLE op) the heap RSS by mincore over [heap start, break) and the [heap] Rss of
 * /proc/self/smaps.
 *
 * Other allocators: the runner's malloc & co. forward to the next definition in the process,
 * so with LD_PRELOAD=libjemalloc.so.2 (tcmalloc, mimalloc) the ops run on that allocator; the
 * runner then records raw addresses (NATIVE_F_RAW_ADDRS) and mallinfo2 is glibc's (zeros).
 *
 * Internal calls: every malloc-family call that the op executor did not make itself (the DTV
 * calloc of pthread_create, frees at thread exit or when a cached thread stack is reused, libc's
 * own buffers) is logged as a struct native_internal, in the order they happened, with the op
 * during which it happened (NATIVE_AT_START: before the first op). A model fed the same stream
 * must perform these at the same point: the internal calls tagged with op i before op i itself;
 * for a NATIVE_OP_THREAD_EXIT of thread K, K's own internal calls, then glibc's thread shutdown
 * (tcache flushed to the arena, invisible to an interposer), then the other threads' calls (the
 * join, stack-cache frees). glibc's tcache shutdown frees never appear here.
 *
 * Address normalisation (so that a run and a model compare despite ASLR), from the chunk header
 * of the returned pointer p (size word at p-8, prev_size at p-16):
 *   - NULL                           -> NATIVE_ADDR_NULL
 *   - IS_MMAPPED (bit 1)             -> NATIVE_ADDR_MMAP, region = mapping ordinal (0, 1, ... in
 *     the order mmapped chunks were returned; the realloc of an mmapped chunk that stays mmapped
 *     keeps the ordinal, whether mremap moved it or not: that depends on what the kernel placed
 *     above the mapping), offset = p - mapping start (mapping start = p - 16 - prev_size)
 *   - NON_MAIN_ARENA (bit 2)         -> NATIVE_ADDR_HEAP, region = arena ordinal (1, 2, ... in the
 *     order arenas were first seen; 0 is the main arena), heap = the heap's depth in its arena's
 *     chain (0 = the arena's first heap), offset = p & (64 MiB - 1)
 *   - otherwise (the main arena)     -> NATIVE_ADDR_MAIN, offset = p - heap start, where heap
 *     start is sbrk(0) before the first allocation of the process.
 * native_norm_addr() below implements this over a load function, so the runner (real memory)
 * and a model (its simulated memory) normalise with the same code.
 */
#ifndef FRAGSCOPE_NATIVE_OPS_H
#define FRAGSCOPE_NATIVE_OPS_H

#include <stdint.h>

#define NATIVE_OPS_MAGIC "FSNOPS1"      /* 8 bytes with the NUL */
#define NATIVE_OUT_MAGIC "FSNOUT1"
#define NATIVE_VERSION 1u

#define NATIVE_REF_NULL 0xffffffffu     /* ref: the NULL pointer */
#define NATIVE_REF_INTERNAL 0x80000000u /* internal ref: an internal record index, not an op */
#define NATIVE_REF_UNKNOWN 0xfffffffeu  /* internal free of a pointer the runner never returned */
#define NATIVE_AT_START 0xffffffffu     /* internal call made before the first op */
#define NATIVE_WRITE_ALL UINT64_MAX     /* write length: to the end of the requested size */
#define NATIVE_NOT_SAMPLED UINT64_MAX   /* rss fields of an op that was not sampled */
#define NATIVE_MAX_THREADS 1024u
#define NATIVE_MAX_OPS 0x7fffffffu
#define NATIVE_MAX_ARENAS 4096u
#define NATIVE_HEAP_MAX (64ull << 20)   /* glibc's HEAP_MAX_SIZE on x86_64 */

enum native_op_kind {
    NATIVE_OP_MALLOC = 1,           /* a = size */
    NATIVE_OP_CALLOC,               /* a = nmemb, b = size */
    NATIVE_OP_REALLOC,              /* ref, a = size */
    NATIVE_OP_REALLOCARRAY,         /* ref, a = nmemb, b = size */
    NATIVE_OP_FREE,                 /* ref */
    NATIVE_OP_MEMALIGN,             /* a = alignment, b = size */
    NATIVE_OP_POSIX_MEMALIGN,       /* a = alignment, b = size; ret = its return value */
    NATIVE_OP_ALIGNED_ALLOC,        /* a = alignment, b = size */
    NATIVE_OP_VALLOC,               /* a = size */
    NATIVE_OP_PVALLOC,              /* a = size */
    NATIVE_OP_MALLOPT,              /* a = param (as int64), b = value (as int64); ret */
    NATIVE_OP_MALLOC_TRIM,          /* a = pad; ret */
    NATIVE_OP_USABLE_SIZE,          /* ref; ret = malloc_usable_size */
    NATIVE_OP_WRITE,                /* ref, a = offset, b = length (NATIVE_WRITE_ALL), c = byte */
    NATIVE_OP_THREAD_START,         /* thread = the new thread (started by the main thread) */
    NATIVE_OP_THREAD_EXIT,          /* thread = the thread that returns (joined by main) */
    NATIVE_OP_SAMPLE,               /* nothing; records RSS and smaps */
    NATIVE_OP_KIND_COUNT
};

/* Op flags. */
#define NATIVE_OPF_SAMPLE 0x01u        /* record heap RSS and smaps Rss after this op */

struct native_op {                      /* 32 bytes */
    uint8_t kind;                       /* enum native_op_kind */
    uint8_t flags;                      /* NATIVE_OPF_* */
    uint16_t thread;                    /* performing thread (0 = main) */
    uint32_t ref;                       /* op index of a live block, or NATIVE_REF_NULL */
    uint64_t a, b, c;
};

/* Header flags. */
#define NATIVE_F_RSS 0x01u             /* mincore heap RSS after every op */
#define NATIVE_F_SMAPS 0x02u           /* smaps [heap] Rss after every op (slow) */
#define NATIVE_F_RAW_ADDRS 0x04u       /* do not read glibc chunk headers; addresses are
                                          NATIVE_ADDR_RAW. The runner sets it by itself when
                                          another allocator is preloaded */
#define NATIVE_F_NO_MALLINFO 0x08u     /* skip mallinfo2 after each op (it walks every bin: slow
                                          for long traces with many free chunks); mi stays 0 */
#define NATIVE_F_SPARSE 0x10u          /* long sequences (`replay --native`): see below */

/* NATIVE_F_SPARSE. The ops are read as a stream (the ops file may be a pipe: the writer can
 * produce them while the runner runs; op_count must still be exact) and each op is checked just
 * before it runs (a bad op stops the run there, with the same kind of message). A result is
 * recorded only for an op flagged NATIVE_OPF_SAMPLE, a NATIVE_OP_SAMPLE op and the last op;
 * every other result stays zero (done = 0) and its pages are never written, so the output file
 * is sparse. ops_done still counts every op. A sampled op records the break and the mincore heap
 * RSS, the smaps Rss only with NATIVE_F_SMAPS; mallinfo2 (a walk over every bin) is taken at
 * the last op only (unless NO_MALLINFO).
 * Addresses are raw (the runner sets NATIVE_F_RAW_ADDRS), the runner tracks the live blocks in
 * a table of its own (memory follows the live set, not the sequence), and an internal free or
 * realloc of a block an op returned is logged with NATIVE_REF_UNKNOWN. */

struct native_ops_header {              /* 48 bytes */
    char magic[8];                      /* NATIVE_OPS_MAGIC */
    uint32_t version;                   /* NATIVE_VERSION */
    uint32_t op_size;                   /* sizeof(struct native_op) */
    uint64_t op_count;
    uint64_t flags;                     /* NATIVE_F_* */
    uint64_t thread_ops;                /* NATIVE_F_SPARSE: the number of THREAD_START and
                                           THREAD_EXIT ops, which sizes the internal-call log
                                           (otherwise the runner counts them itself); else 0 */
    uint64_t reserved;
};

enum native_addr_kind {
    NATIVE_ADDR_NULL = 0,
    NATIVE_ADDR_MAIN = 1,
    NATIVE_ADDR_MMAP = 2,
    NATIVE_ADDR_HEAP = 3,
    NATIVE_ADDR_RAW = 4                 /* NATIVE_F_RAW_ADDRS: offset = the raw pointer */
};

struct native_addr {                    /* 16 bytes */
    uint8_t kind;                       /* enum native_addr_kind */
    uint8_t pad;
    uint16_t heap;                      /* HEAP: depth of the heap in its arena */
    uint32_t region;                    /* MMAP: mapping ordinal; HEAP/MAIN: arena ordinal */
    uint64_t offset;
};

struct native_mallinfo2 {               /* the ten fields of struct mallinfo2, in order */
    uint64_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks,
        keepcost;
};

struct native_result {                  /* 144 bytes */
    uint64_t raw;                       /* the pointer as returned (varies between runs) */
    struct native_addr addr;            /* normalised */
    int64_t ret;                        /* mallopt / malloc_trim / posix_memalign / usable size */
    int32_t err;                        /* errno when the call failed, else 0 */
    uint32_t done;                      /* 1 once the op has been performed */
    uint64_t brk_offset;                /* sbrk(0) - heap start after the op */
    uint64_t heap_rss;                  /* bytes mincore says resident in [heap start, break),
                                           or NOT_SAMPLED. Counts pages only ever read (mapped to
                                           the shared zero page), which RSS does not */
    uint64_t smaps_rss;                 /* bytes, [heap] Rss of /proc/self/smaps (the kernel's RSS:
                                           pages written), or NOT_SAMPLED */
    struct native_mallinfo2 mi;
};

struct native_internal {                /* 56 bytes */
    uint32_t at_op;                     /* op during which it happened, or NATIVE_AT_START */
    uint16_t thread;                    /* runner thread index that made the call */
    uint8_t kind;                       /* MALLOC, CALLOC, REALLOC, FREE, MEMALIGN, ALIGNED_ALLOC,
                                           VALLOC, PVALLOC */
    uint8_t pad;
    uint32_t ref;                       /* free/realloc: NATIVE_REF_INTERNAL | record index, an op
                                           index, NATIVE_REF_NULL or NATIVE_REF_UNKNOWN */
    uint32_t pad2;
    uint64_t a, b;                      /* as in struct native_op */
    uint64_t raw;                       /* returned pointer */
    struct native_addr addr;            /* normalised returned pointer */
};

/* Output status. */
#define NATIVE_STATUS_RUNNING 1u        /* not finished (the runner died: see ops_done) */
#define NATIVE_STATUS_OK 0u
#define NATIVE_STATUS_BAD_INPUT 2u      /* message in error[] */
#define NATIVE_STATUS_OVERFLOW 3u       /* more internal calls than internal_capacity */

struct native_out_header {              /* 376 bytes */
    char magic[8];                      /* NATIVE_OUT_MAGIC */
    uint32_t version;
    uint32_t status;                    /* NATIVE_STATUS_* */
    uint32_t result_size, internal_size;
    uint64_t op_count;
    uint64_t ops_done;                  /* ops completed */
    uint64_t internal_count;
    uint64_t internal_capacity;
    uint64_t result_offset, internal_offset;   /* byte offsets in the file */
    uint64_t heap_start;                /* raw sbrk(0) before the first allocation */
    uint64_t page_size;
    uint64_t flags;                     /* NATIVE_F_* in effect (RAW_ADDRS is set by the runner
                                           itself when malloc is not glibc's) */
    uint64_t reserved[3];
    char error[256];
};

_Static_assert(sizeof(struct native_op) == 32, "native_op layout");
_Static_assert(sizeof(struct native_ops_header) == 48, "native_ops_header layout");
_Static_assert(sizeof(struct native_result) == 144, "native_result layout");
_Static_assert(sizeof(struct native_internal) == 56, "native_internal layout");
_Static_assert(sizeof(struct native_out_header) == 376, "native_out_header layout");

/* Is `kind` an op that returns a new block? */
static inline int native_op_allocates(unsigned kind)
{
    switch (kind) {
    case NATIVE_OP_MALLOC: case NATIVE_OP_CALLOC: case NATIVE_OP_REALLOC:
    case NATIVE_OP_REALLOCARRAY: case NATIVE_OP_MEMALIGN: case NATIVE_OP_POSIX_MEMALIGN:
    case NATIVE_OP_ALIGNED_ALLOC: case NATIVE_OP_VALLOC: case NATIVE_OP_PVALLOC:
        return 1;
    default:
        return 0;
    }
}

/* The size the program asked for (what NATIVE_WRITE_ALL covers); UINT64_MAX on overflow. */
static inline uint64_t native_op_request_size(const struct native_op *op)
{
    uint64_t n;
    switch (op->kind) {
    case NATIVE_OP_CALLOC: case NATIVE_OP_REALLOCARRAY:
        if (__builtin_mul_overflow(op->a, op->b, &n))
            return UINT64_MAX;
        return n;
    case NATIVE_OP_MEMALIGN: case NATIVE_OP_POSIX_MEMALIGN: case NATIVE_OP_ALIGNED_ALLOC:
        return op->b;
    default:
        return op->a;
    }
}

/* Address normaliser state. `load` reads one 8-byte word of the process (or model) memory. */
struct native_norm {
    uint64_t heap_start;
    uint32_t next_mapping;              /* next mapping ordinal */
    uint32_t arena_count;               /* arenas seen besides main */
    uint64_t arenas[NATIVE_MAX_ARENAS]; /* arena (malloc_state address) of ordinal k+1 */
    uint64_t (*load)(void *ctx, uint64_t addr);
    void *ctx;
};

static inline void native_norm_init(struct native_norm *n, uint64_t heap_start,
                                    uint64_t (*load)(void *ctx, uint64_t addr), void *ctx)
{
    n->heap_start = heap_start;
    n->next_mapping = 0;
    n->arena_count = 0;
    n->load = load;
    n->ctx = ctx;
}

/* The arena ordinal of malloc_state address `ar` (added if new); UINT32_MAX if the table is full. */
static inline uint32_t native_norm_arena(struct native_norm *n, uint64_t ar)
{
    for (uint32_t i = 0; i < n->arena_count; i++)
        if (n->arenas[i] == ar)
            return i + 1;
    if (n->arena_count >= NATIVE_MAX_ARENAS)
        return UINT32_MAX;
    n->arenas[n->arena_count++] = ar;
    return n->arena_count;
}

/* Normalises pointer p returned by an allocation. `old` is the normalised address of the block
 * a realloc consumed, or NULL: an mmapped result of the realloc of an mmapped `old` keeps its
 * ordinal. */
static inline struct native_addr native_norm_addr(struct native_norm *n, uint64_t p,
                                                  const struct native_addr *old)
{
    struct native_addr a = {0, 0, 0, 0, 0};
    if (p == 0)
        return a;
    uint64_t size_word = n->load(n->ctx, p - 8);
    if (size_word & 2) {
        uint64_t base = p - 16 - n->load(n->ctx, p - 16);
        a.kind = NATIVE_ADDR_MMAP;
        a.offset = p - base;
        if (old && old->kind == NATIVE_ADDR_MMAP)
            a.region = old->region;         /* mremap'd, moved or not */
        else
            a.region = n->next_mapping++;
    } else if (size_word & 4) {
        uint64_t heap = p & ~(NATIVE_HEAP_MAX - 1);
        a.kind = NATIVE_ADDR_HEAP;
        a.offset = p & (NATIVE_HEAP_MAX - 1);
        a.region = native_norm_arena(n, n->load(n->ctx, heap));
        uint64_t h = heap, prev;
        unsigned depth = 0;
        while ((prev = n->load(n->ctx, h + 8)) != 0 && depth < 0xffff) {
            depth++;
            h = prev;
        }
        a.heap = (uint16_t)depth;
    } else {
        a.kind = NATIVE_ADDR_MAIN;
        a.offset = p - n->heap_start;
    }
    return a;
}

#endif
