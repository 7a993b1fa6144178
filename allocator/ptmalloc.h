/* ptmalloc.h: our model of glibc 2.36's malloc (ptmalloc2), x86_64, chunk for chunk.
 *
 * The public contract of allocator/. A `struct ptmalloc` is one process's malloc state over a
 * simulated address space (sysmem.h): the main arena on the break, non-main arenas on 64 MiB
 * heaps, per-thread tcaches, mmapped chunks. Calls name the thread making them; threads are small
 * dense indices chosen by the caller, thread 0 (the main thread) exists from the start, and any
 * other index starts implicitly on its first call (or explicitly with ptmalloc_thread_start).
 *
 * Given the same settings and the same calls, every run returns the same addresses. Requests that
 * glibc would abort on (double free, invalid pointer, corrupted sizes) return PTM_CORRUPT with
 * glibc's message and leave the model unchanged. A double free glibc would not notice (it would
 * silently corrupt its lists, e.g. a chunk freed again while in a fastbin below the head) is
 * refused the same way, with a message saying glibc does not detect it.
 *
 * This library knows nothing of traces or SQLite.
 */
#ifndef FRAGSCOPE_PTMALLOC_H
#define FRAGSCOPE_PTMALLOC_H

#include <stddef.h>
#include <stdint.h>
#include "sysmem.h"

/* mallopt parameters, as in <malloc.h> */
#define PTM_M_MXFAST 1
#define PTM_M_TRIM_THRESHOLD (-1)
#define PTM_M_TOP_PAD (-2)
#define PTM_M_MMAP_THRESHOLD (-3)
#define PTM_M_MMAP_MAX (-4)
#define PTM_M_CHECK_ACTION (-5)
#define PTM_M_PERTURB (-6)
#define PTM_M_ARENA_TEST (-7)
#define PTM_M_ARENA_MAX (-8)

/* Every setting, starting from glibc's defaults (ptmalloc_settings_default). */
struct ptmalloc_settings {
    uint64_t mxfast;                 /* as given to M_MXFAST / glibc.malloc.mxfast (default 128) */
    uint64_t trim_threshold;         /* 128 KiB */
    uint64_t top_pad;                /* 128 KiB (DEFAULT_TOP_PAD on Linux) */
    uint64_t mmap_threshold;         /* 128 KiB */
    int32_t mmap_max;                /* 65536 */
    uint64_t arena_max;              /* 0 = derived from cpu_count */
    uint64_t arena_test;             /* 8 */
    uint64_t tcache_count;           /* 7 */
    uint64_t tcache_max;             /* largest tcache request in bytes (1032) */
    uint64_t tcache_unsorted_limit;  /* 0 = none */
    int32_t perturb;                 /* M_PERTURB byte, 0 = off */
    int32_t hugetlb;                 /* glibc.malloc.hugetlb (0, 1, 2) */
    int32_t no_dyn_threshold;        /* a threshold was fixed: the dynamic mmap threshold is off */
    uint32_t cpu_count;              /* for the arena limit (8 * cpus) */
};

void ptmalloc_settings_default(struct ptmalloc_settings *s);

/* Applies a GLIBC_TUNABLES string ("glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0").
 * Unknown or non-malloc tunables are ignored as glibc ignores them; out-of-range values are
 * ignored as glibc does. Returns 0, or -1 with a message for malformed text. */
int ptmalloc_settings_tunables(struct ptmalloc_settings *s, const char *text, char *err,
                               size_t errlen);

/* Applies one environment variable (MALLOC_TOP_PAD_, MALLOC_ARENA_MAX, ...). Returns 1 if the
 * name is a malloc variable, 0 if not. */
int ptmalloc_settings_env(struct ptmalloc_settings *s, const char *name, const char *value);

/* Applies a mallopt-style NAME=VALUE (mxfast, trim_threshold, top_pad, mmap_threshold, mmap_max,
 * arena_max, arena_test, tcache_count, tcache_max, tcache_unsorted_limit, perturb, hugetlb).
 * Returns 0, or -1 with a message naming the bad part. */
int ptmalloc_settings_set(struct ptmalloc_settings *s, const char *name_equals_value, char *err,
                          size_t errlen);

struct ptmalloc;

/* Post: a model with no allocations; it takes ownership of `mem` (NULL: a default sysmem). */
struct ptmalloc *ptmalloc_new(const struct ptmalloc_settings *s, struct sysmem *mem);
void ptmalloc_destroy(struct ptmalloc *pm);
struct sysmem *ptmalloc_sysmem(struct ptmalloc *pm);

enum ptmalloc_status {
    PTM_OK = 0,
    PTM_ENOMEM,      /* NULL with errno ENOMEM */
    PTM_EINVAL,      /* NULL / return value EINVAL */
    PTM_CORRUPT      /* glibc would have aborted; message says what it prints */
};

struct ptmalloc_result {
    uint64_t ptr;                /* the returned pointer, 0 for NULL */
    enum ptmalloc_status status;
    const char *message;         /* static string for PTM_CORRUPT, e.g. "free(): double free
                                    detected in tcache 2"; NULL otherwise */
};

/* Threads. */
int ptmalloc_thread_start(struct ptmalloc *pm, uint32_t thread);
/* glibc's thread exit: tcache shutdown through _int_free, arena detached (free list at zero). */
int ptmalloc_thread_exit(struct ptmalloc *pm, uint32_t thread);
/* Pins a thread to arena `arena` (0 = main; higher indices create arenas in order as needed),
 * for replays that follow the arenas the real threads used. */
int ptmalloc_thread_set_arena(struct ptmalloc *pm, uint32_t thread, uint32_t arena);
/* The arena a thread is attached to, or -1 if it has none yet. */
int ptmalloc_thread_arena(const struct ptmalloc *pm, uint32_t thread);

/* The malloc family. */
struct ptmalloc_result ptmalloc_malloc(struct ptmalloc *pm, uint32_t thread, uint64_t size);
struct ptmalloc_result ptmalloc_calloc(struct ptmalloc *pm, uint32_t thread, uint64_t nmemb,
                                       uint64_t size);
struct ptmalloc_result ptmalloc_realloc(struct ptmalloc *pm, uint32_t thread, uint64_t ptr,
                                        uint64_t size);
struct ptmalloc_result ptmalloc_reallocarray(struct ptmalloc *pm, uint32_t thread, uint64_t ptr,
                                             uint64_t nmemb, uint64_t size);
struct ptmalloc_result ptmalloc_free(struct ptmalloc *pm, uint32_t thread, uint64_t ptr);
/* A hint for a replay that knows what comes next: a coming call will free or realloc ptr.
 * Starts fetching into the host's cache what that call reads first (the chunk's record in the
 * chunk table and its header), so that, given a call or two ahead, those misses overlap the
 * work in between. Changes no state; any ptr is safe. (The same hint for allocations, the chunk
 * the tcache would hand out, measured slower: it is not offered.) */
void ptmalloc_prefetch(struct ptmalloc *pm, uint64_t ptr);
struct ptmalloc_result ptmalloc_memalign(struct ptmalloc *pm, uint32_t thread, uint64_t alignment,
                                         uint64_t size);
/* posix_memalign: status PTM_EINVAL / PTM_ENOMEM as its return value. */
struct ptmalloc_result ptmalloc_posix_memalign(struct ptmalloc *pm, uint32_t thread,
                                               uint64_t alignment, uint64_t size);
struct ptmalloc_result ptmalloc_aligned_alloc(struct ptmalloc *pm, uint32_t thread,
                                              uint64_t alignment, uint64_t size);
struct ptmalloc_result ptmalloc_valloc(struct ptmalloc *pm, uint32_t thread, uint64_t size);
struct ptmalloc_result ptmalloc_pvalloc(struct ptmalloc *pm, uint32_t thread, uint64_t size);
uint64_t ptmalloc_usable_size(struct ptmalloc *pm, uint64_t ptr);
/* The arena of the chunk whose user pointer is ptr, as the model has it: its index (0 = main),
 * PTMALLOC_CHUNK_MMAPPED for a chunk with its own mapping, -1 when the model knows no chunk
 * there. Free chunks (tcache, bins) keep the arena they belong to. */
#define PTMALLOC_CHUNK_MMAPPED (-2)
int ptmalloc_chunk_arena(struct ptmalloc *pm, uint64_t ptr);
int ptmalloc_mallopt(struct ptmalloc *pm, uint32_t thread, int param, int value);
int ptmalloc_trim(struct ptmalloc *pm, uint32_t thread, uint64_t pad);

/* The program writes [ptr, ptr+len) (RSS model). */
void ptmalloc_touch(struct ptmalloc *pm, uint64_t ptr, uint64_t len);

/* mallinfo2, exactly as glibc computes it. */
struct ptmalloc_mallinfo2 {
    uint64_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks,
        keepcost;
};
void ptmalloc_mallinfo2(struct ptmalloc *pm, struct ptmalloc_mallinfo2 *mi);

/* Counters kept incrementally; O(arenas) to read (residency comes from the address space's
 * counters, the largest free chunk from size classes and the binmap): about 100 ns or less for
 * a few arenas, cheap enough to read after every step. Bytes are chunk bytes. */
struct ptmalloc_stats {
    uint64_t system_bytes;        /* heap memory obtained (sbrk + arena heaps), like mallinfo arena */
    uint64_t in_use_bytes;        /* chunk bytes held by the program (excludes tcache/fastbin),
                                     plus each thread's tcache_perthread_struct chunk */
    uint64_t in_use_count;
    uint64_t top_bytes;
    uint64_t tcache_count, tcache_bytes;
    uint64_t fastbin_count, fastbin_bytes;
    uint64_t unsorted_count, unsorted_bytes;
    uint64_t small_count, small_bytes;
    uint64_t large_count, large_bytes;
    uint64_t largest_free;        /* largest free chunk, top and tcache chunks included (a
                                     tcache chunk counts for the arena it lies in) */
    uint64_t mmapped_count, mmapped_bytes;
    uint64_t resident_bytes;      /* heap pages resident (break area + arena heaps) */
    uint64_t mmapped_resident_bytes;
    uint32_t arena_count;
};
/* arena < 0: totals over all arenas; otherwise that arena only (mmapped figures are global). */
void ptmalloc_stats(struct ptmalloc *pm, int arena, struct ptmalloc_stats *st);
/* One arena's own figures only, in O(1) whatever the number of arenas: everything above but the
 * global mmapped_* fields, which stay 0 (arena_count is 1; all 0 for an arena that does not
 * exist). Summed over the arenas and with ptmalloc_stats's mmapped figures, they give the
 * totals. */
void ptmalloc_stats_arena(struct ptmalloc *pm, uint32_t arena, struct ptmalloc_stats *st);
uint32_t ptmalloc_arena_count(const struct ptmalloc *pm);

/* Heap introspection. */
enum ptmalloc_chunk_state {
    PTM_CHUNK_IN_USE,
    PTM_CHUNK_TCACHE,
    PTM_CHUNK_FASTBIN,
    PTM_CHUNK_UNSORTED,
    PTM_CHUNK_SMALL,
    PTM_CHUNK_LARGE,
    PTM_CHUNK_TOP,
    PTM_CHUNK_MMAPPED,
    PTM_CHUNK_OVERHEAD          /* fenceposts, heap_info, malloc_state, alignment gaps */
};
const char *ptmalloc_chunk_state_name(enum ptmalloc_chunk_state s);

struct ptmalloc_chunk {
    uint64_t address;            /* chunk start (user pointer - 16) */
    uint64_t size;               /* chunk size, flags stripped */
    enum ptmalloc_chunk_state state;
    uint32_t arena;
    int32_t bin;                 /* tcache / fastbin / bin index for free chunks, else -1 */
};
/* Walks every chunk of every arena in address order, then mmapped chunks. Stops early when
 * fn returns non-zero (and returns that value). arena < 0: all arenas. */
int ptmalloc_walk(struct ptmalloc *pm, int arena,
                  int (*fn)(void *ctx, const struct ptmalloc_chunk *c), void *ctx);

/* Bin contents in list order (head first): kind is PTM_CHUNK_TCACHE (per thread: `thread`),
 * FASTBIN, UNSORTED, SMALL or LARGE; bin is the index within that kind. */
int ptmalloc_bins(struct ptmalloc *pm, int arena, uint32_t thread,
                  int (*fn)(void *ctx, enum ptmalloc_chunk_state kind, int bin, uint64_t address,
                            uint64_t size),
                  void *ctx);

/* Self-check, for tests and debugging: the copies the model keeps host-side for speed (fastbin
 * and tcache lists as stacks, the large bins' skip lists, the per-state counters and size-class
 * maps) agree with the lists in simulated memory and with the chunk table. O(chunks). Returns 0,
 * or -1 with the first disagreement described in err. */
int ptmalloc_check(struct ptmalloc *pm, char *err, size_t errlen);

/* System events, reported as they happen, so the analyzer can tell why memory moved. */
enum ptmalloc_event_kind {
    PTM_EV_SBRK_GROW,
    PTM_EV_SBRK_SHRINK,
    PTM_EV_MMAP,
    PTM_EV_MUNMAP,
    PTM_EV_MREMAP,
    PTM_EV_MADVISE,
    PTM_EV_HEAP_GROW,            /* non-main heap mprotect'ed larger */
    PTM_EV_HEAP_SHRINK,
    PTM_EV_CONSOLIDATE,
    PTM_EV_TRIM,                 /* systrim / heap_trim gave memory back */
    PTM_EV_ARENA_NEW,
    PTM_EV_THRESHOLD_RAISED      /* the dynamic mmap threshold moved up */
};
struct ptmalloc_event {
    enum ptmalloc_event_kind kind;
    uint32_t arena;
    uint64_t address, length;    /* THRESHOLD_RAISED: length = new threshold */
};
void ptmalloc_set_event_hook(struct ptmalloc *pm,
                             void (*fn)(void *ctx, const struct ptmalloc_event *ev), void *ctx);

/* Current settings (mallopt calls change them). */
void ptmalloc_current_settings(const struct ptmalloc *pm, struct ptmalloc_settings *s);
/* Where the main heap starts (the initial break). */
uint64_t ptmalloc_heap_start(const struct ptmalloc *pm);

#endif
