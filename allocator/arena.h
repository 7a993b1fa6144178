/* arena.h: one arena's malloc_state, kept host-side, and the list primitives over it.
 *
 * glibc's struct malloc_state holds the fastbin heads, top, last_remainder, 127 bin headers
 * (each a fake chunk whose fd/bk overlay the bins[] array), the binmap and the counters. The
 * main arena's lives in libc's .data, so the model keeps it host-side at a fake address outside
 * the simulated space. A non-main arena's lives at heap + 48 in simulated memory: the model
 * writes it there when the arena is created (which makes the page resident, as glibc does) and
 * keeps the authoritative copy host-side afterwards.
 *
 * Chunk links (fd, bk, fd_nextsize, bk_nextsize) are read and written by field address: an
 * address inside this arena's bins[] array goes to the host copy, anything else to simulated
 * memory. That reproduces glibc's pointer arithmetic on bin headers exactly, including reads of
 * a bin header's "fd_nextsize" (the next bin's fd) in unlink_chunk.
 */
#ifndef FRAGSCOPE_ARENA_H
#define FRAGSCOPE_ARENA_H

#include <stdint.h>
#include "chunk.h"
#include "chunkmap.h"

#define NBIN_WORDS (NBINS * 2 - 2)
#define NLARGEBINS (NBINS - NSMALLBINS)

/* One large bin's skip list (the chunks linked by fd_nextsize: the first chunk of each size) as
 * a host array, largest size first, so finding a size needs no walk through simulated memory. */
struct lb_group {
    uint64_t size;
    uint64_t first;
};
struct lb_list {
    struct lb_group *g;
    uint32_t n, cap;
};

struct pm_arena {
    uint64_t binfield0;               /* address of bins[0] (base + 112) */
    uint64_t bins[NBIN_WORDS];
    uint64_t fastbins[NFASTBINS];     /* heads (fastbinsY) */
    /* Each fastbin also as a host stack (top = head), so popping needs no load; the chunks'
     * fd words are still written in simulated memory as glibc writes them. */
    uint64_t *fstk[NFASTBINS];
    uint32_t fcount[NFASTBINS], fcap[NFASTBINS];
    uint32_t fmap;                    /* bit i: fastbin i is not empty */
    uint64_t top;
    uint64_t last_remainder;
    uint64_t base;                    /* address of the malloc_state */
    uint32_t binmap[BINMAPSIZE];
    int noncontiguous;
    int have_fastchunks;
    uint32_t index;                   /* 0 = main, then in creation order */
    struct pm_arena *next;            /* glibc's arena ring: main, newest, ..., oldest */
    struct pm_arena *next_free;
    uint64_t attached_threads;
    uint64_t system_mem, max_system_mem;
    /* Per-state chunk counters (chunkmap states), kept as chunks change state. */
    uint64_t st_count[CS_NSTATES];
    uint64_t st_bytes[CS_NSTATES];
    /* The largest unsorted chunk: an upper bound, exact while unsorted_exact (a scan makes it
     * exact, inserting keeps it so, removing a chunk of that size does not), so statistics
     * walk the unsorted list only after the largest chunk left it. */
    uint64_t unsorted_max;
    int unsorted_exact;
    /* Chunks of this arena in any thread's tcache, per size class (tc_class), and the classes
     * holding any, so the largest is one bit scan away. */
    uint32_t tc_n[TCACHE_MAX_BINS];
    uint64_t tc_map;
    /* The skip list of each large bin (bins NSMALLBINS..NBINS-1), kept as glibc relinks it. */
    struct lb_list lb[NLARGEBINS];
};

/* The position of the first group of l whose size is not larger than size (l->n when none),
 * by halving without a branch on the comparisons: which way each goes depends on the data, so
 * a branch there (or on a linear walk's end) is mispredicted about once a search. */
static inline uint32_t lb_first_not_larger(const struct lb_list *l, uint64_t size)
{
    uint32_t base = 0, n = l->n;
    if (n == 0)
        return 0;
    while (n > 1) {
        uint32_t half = n / 2;
        base += half & -(uint32_t)(l->g[base + half - 1].size > size);
        n -= half;
    }
    return base + (n & (uint32_t)(l->g[base].size > size));
}

/* A tcache chunk's size class: its bin index (sizes are exact multiples of 16 there). */
static inline unsigned tc_class(uint64_t size) { return (unsigned)((size - MINSIZE) >> 4) & (TCACHE_MAX_BINS - 1); }

static inline uint64_t bin_at(const struct pm_arena *av, unsigned i)
{
    return av->binfield0 - 16 + (uint64_t)(i - 1) * 16;
}
static inline uint64_t unsorted_bin(const struct pm_arena *av) { return av->binfield0 - 16; }
static inline int top_is_initial(const struct pm_arena *av) { return av->top == unsorted_bin(av); }

/* Link field access, routed to the host bins[] copy for this arena's bin headers. */
static inline uint64_t lnk_ld(struct sysmem *m, const struct pm_arena *av, uint64_t field)
{
    uint64_t off = field - av->binfield0;
    if (off < NBIN_WORDS * 8)
        return av->bins[off >> 3];
    return sysmem_load(m, field);
}
static inline void lnk_st(struct sysmem *m, struct pm_arena *av, uint64_t field, uint64_t v)
{
    uint64_t off = field - av->binfield0;
    if (off < NBIN_WORDS * 8)
        av->bins[off >> 3] = v;
    else
        sysmem_store(m, field, v);
}
#define FD(m, av, p) lnk_ld(m, av, (p) + 16)
#define BK(m, av, p) lnk_ld(m, av, (p) + 24)
#define FD_NS(m, av, p) lnk_ld(m, av, (p) + 32)
#define BK_NS(m, av, p) lnk_ld(m, av, (p) + 40)
#define SET_FD(m, av, p, v) lnk_st(m, av, (p) + 16, v)
#define SET_BK(m, av, p, v) lnk_st(m, av, (p) + 24, v)
#define SET_FD_NS(m, av, p, v) lnk_st(m, av, (p) + 32, v)
#define SET_BK_NS(m, av, p, v) lnk_st(m, av, (p) + 40, v)
/* The same for a p known to be a chunk (never a bin header): straight to simulated memory. */
#define CFD(m, p) sysmem_load(m, (p) + 16)
#define CBK(m, p) sysmem_load(m, (p) + 24)
#define CFD_NS(m, p) sysmem_load(m, (p) + 32)
#define CBK_NS(m, p) sysmem_load(m, (p) + 40)
#define CSET_FD(m, p, v) sysmem_store(m, (p) + 16, v)
#define CSET_BK(m, p, v) sysmem_store(m, (p) + 24, v)
#define CSET_FD_NS(m, p, v) sysmem_store(m, (p) + 32, v)
#define CSET_BK_NS(m, p, v) sysmem_store(m, (p) + 40, v)
/* fd and bk of bin i's header (host side). */
static inline uint64_t *bin_fd_slot(struct pm_arena *av, unsigned i) { return &av->bins[(i - 1) * 2]; }
static inline uint64_t *bin_bk_slot(struct pm_arena *av, unsigned i) { return &av->bins[(i - 1) * 2 + 1]; }

/* Top chunk size (0 for the initial dummy top). */
static inline uint64_t top_size(struct sysmem *m, const struct pm_arena *av)
{
    return top_is_initial(av) ? 0 : chunk_size(m, av->top);
}

static inline void mark_bin(struct pm_arena *av, unsigned i) { av->binmap[i >> 5] |= 1u << (i & 31); }

/* Fastbin list primitives (bins.c). */
void fastbin_push(struct sysmem *m, struct pm_arena *av, unsigned idx, uint64_t p);
static inline uint64_t fastbin_pop(struct pm_arena *av, unsigned idx)
{
    uint32_t n = av->fcount[idx];
    if (n == 0)
        return 0;
    uint64_t p = av->fstk[idx][--n];
    av->fcount[idx] = n;
    if (n == 0)
        av->fmap &= ~(1u << idx);
    av->fastbins[idx] = n ? av->fstk[idx][n - 1] : 0;
    return p;
}

#endif
