/* chunk.h: the x86_64 chunk layout of glibc 2.36 malloc, and accessors over simulated memory.
 *
 * A chunk at address p is [prev_size @p][size|flags @p+8][user data @p+16 ...]. Free chunks keep
 * fd/bk at p+16/p+24 and, in large bins, fd_nextsize/bk_nextsize at p+32/p+40; tcache entries
 * keep next/key at p+16/p+24. Every one of these words lives in the simulated address space and
 * is read and written through sysmem_load/sysmem_store, so metadata writes make pages resident
 * exactly where glibc's do. The only exception is an arena's own bin headers (struct
 * malloc_state), which the arena keeps host-side (see arena.h): link accessors route those
 * addresses to the host copy.
 */
#ifndef FRAGSCOPE_CHUNK_H
#define FRAGSCOPE_CHUNK_H

#include <stdint.h>
#include "sysmem.h"

#define SIZE_SZ 8u
#define MALLOC_ALIGNMENT 16u
#define MALLOC_ALIGN_MASK 15u
#define CHUNK_HDR_SZ 16u
#define MINSIZE 32u
#define PAGESIZE 4096u

#define PREV_INUSE 1u
#define IS_MMAPPED 2u
#define NON_MAIN_ARENA 4u
#define SIZE_BITS 7u

#define NBINS 128
#define NSMALLBINS 64
#define MIN_LARGE_SIZE 1024u
#define NFASTBINS 10
#define MAX_FAST_SIZE 160u
#define BINMAPSIZE 4
#define TCACHE_MAX_BINS 64
#define MAX_TCACHE_SIZE 1032u
#define MAX_TCACHE_COUNT 65535u
#define FASTBIN_CONSOLIDATION_THRESHOLD 65536u
#define DEFAULT_MMAP_THRESHOLD_MAX (32ull * 1024 * 1024)
#define HEAP_MIN_SIZE (32u * 1024)
#define HEAP_MAX_SIZE (64ull * 1024 * 1024)
#define MMAP_AS_MORECORE_SIZE (1024u * 1024)
#define MAX_ITERS 10000
#define TCACHE_STRUCT_SIZE 640u   /* sizeof (tcache_perthread_struct) */
#define HEAP_INFO_SIZE 48u
#define MALLOC_STATE_SIZE 2200u

/* struct malloc_state field offsets (non-main arenas keep it at heap + 48). */
#define MS_FLAGS 4u
#define MS_HAVE_FAST 8u
#define MS_FASTBINS 16u
#define MS_TOP 96u
#define MS_LAST_REMAINDER 104u
#define MS_BINS 112u
#define MS_BINMAP 2144u
#define MS_NEXT 2160u
#define MS_NEXT_FREE 2168u
#define MS_ATTACHED 2176u
#define MS_SYSTEM_MEM 2184u
#define MS_MAX_SYSTEM_MEM 2192u
/* struct heap_info field offsets. */
#define HI_AR_PTR 0u
#define HI_PREV 8u
#define HI_SIZE 16u
#define HI_MPROTECT 24u
#define HI_PAGESIZE 32u

#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))

/* Chunk size for a request; 0 when the request is above PTRDIFF_MAX. */
static inline uint64_t request2size(uint64_t req)
{
    if (req > (uint64_t)INT64_MAX)
        return 0;
    if (req + SIZE_SZ + MALLOC_ALIGN_MASK < MINSIZE)
        return MINSIZE;
    return (req + SIZE_SZ + MALLOC_ALIGN_MASK) & ~(uint64_t)MALLOC_ALIGN_MASK;
}

static inline int in_smallbin_range(uint64_t sz) { return sz < MIN_LARGE_SIZE; }
static inline unsigned smallbin_index(uint64_t sz) { return (unsigned)(sz >> 4); }
static inline unsigned largebin_index(uint64_t sz)
{
    if ((sz >> 6) <= 48) return 48 + (unsigned)(sz >> 6);
    if ((sz >> 9) <= 20) return 91 + (unsigned)(sz >> 9);
    if ((sz >> 12) <= 10) return 110 + (unsigned)(sz >> 12);
    if ((sz >> 15) <= 4) return 119 + (unsigned)(sz >> 15);
    if ((sz >> 18) <= 2) return 124 + (unsigned)(sz >> 18);
    return 126;
}
static inline unsigned bin_index(uint64_t sz)
{
    return in_smallbin_range(sz) ? smallbin_index(sz) : largebin_index(sz);
}
static inline unsigned fastbin_index(uint64_t sz) { return (unsigned)(sz >> 4) - 2; }
static inline uint64_t csize2tidx(uint64_t sz) { return (sz - MINSIZE + MALLOC_ALIGNMENT - 1) / MALLOC_ALIGNMENT; }
static inline uint64_t tidx2usize(uint64_t i) { return i * MALLOC_ALIGNMENT + MINSIZE - SIZE_SZ; }
/* global_max_fast for a M_MXFAST value */
static inline uint64_t max_fast_for(uint64_t s)
{
    return s <= MALLOC_ALIGN_MASK - SIZE_SZ ? MINSIZE / 2 : ((s + SIZE_SZ) & ~(uint64_t)MALLOC_ALIGN_MASK);
}
/* glibc's safe-linking of singly linked lists (tcache, fastbins). */
static inline uint64_t protect_ptr(uint64_t pos, uint64_t ptr) { return (pos >> 12) ^ ptr; }

/* Raw words. */
static inline uint64_t mem_ld(struct sysmem *m, uint64_t a) { return sysmem_load(m, a); }
static inline void mem_st(struct sysmem *m, uint64_t a, uint64_t v) { sysmem_store(m, a, v); }

static inline uint64_t chunk_head(struct sysmem *m, uint64_t p) { return sysmem_load(m, p + 8); }
static inline uint64_t chunk_size(struct sysmem *m, uint64_t p) { return sysmem_load(m, p + 8) & ~(uint64_t)SIZE_BITS; }
static inline uint64_t chunk_prev_size(struct sysmem *m, uint64_t p) { return sysmem_load(m, p); }
static inline void set_head(struct sysmem *m, uint64_t p, uint64_t v) { sysmem_store(m, p + 8, v); }
static inline void set_prev_size(struct sysmem *m, uint64_t p, uint64_t v) { sysmem_store(m, p, v); }
static inline void set_foot(struct sysmem *m, uint64_t p, uint64_t s) { sysmem_store(m, p + s, s); }
/* word |= set, then &= ~clear (one lookup when the block is cached) */
static inline void word_update(struct sysmem *m, uint64_t a, uint64_t set, uint64_t clear)
{
    uint64_t *w = sysmem_word(m, a);
    if (__builtin_expect(w != 0, 1))
        *w = (*w | set) & ~clear;
    else
        sysmem_store(m, a, (sysmem_load(m, a) | set) & ~clear);
}
static inline void set_head_size(struct sysmem *m, uint64_t p, uint64_t s)
{
    uint64_t *w = sysmem_word(m, p + 8);
    if (__builtin_expect(w != 0, 1))
        *w = (*w & SIZE_BITS) | s;
    else
        sysmem_store(m, p + 8, (sysmem_load(m, p + 8) & SIZE_BITS) | s);
}
static inline int prev_inuse(struct sysmem *m, uint64_t p) { return (int)(chunk_head(m, p) & PREV_INUSE); }
static inline int inuse_bit_at(struct sysmem *m, uint64_t p, uint64_t off)
{
    return (int)(sysmem_load(m, p + off + 8) & PREV_INUSE);
}
static inline void set_inuse_bit_at(struct sysmem *m, uint64_t p, uint64_t off)
{
    word_update(m, p + off + 8, PREV_INUSE, 0);
}
static inline void clear_inuse_bit_at(struct sysmem *m, uint64_t p, uint64_t off)
{
    word_update(m, p + off + 8, 0, PREV_INUSE);
}
static inline void set_non_main(struct sysmem *m, uint64_t p)
{
    word_update(m, p + 8, NON_MAIN_ARENA, 0);
}

#endif
