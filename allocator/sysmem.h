/* sysmem.h: the system-memory layer under the allocator model.
 *
 * Everything the allocator asks of "the kernel" goes through these primitives, and every byte of
 * allocator metadata (chunk headers, footers, bin links, heap_info, malloc_state) is read and
 * written through sysmem_load/sysmem_store. The one implementation, sim_space.c, is a simulated
 * 64-bit address space: deterministic placement, host memory only for the pages the allocator
 * itself writes, and a per-page residency record (the heap RSS model).
 *
 * Addresses are plain uint64_t in the simulated space. SYSMEM_FAIL is the failure value.
 *
 * Residency: a page is resident once the allocator stores to it or the program is said to write
 * it (sysmem_touch). It stops being resident when it leaves the address space (break shrink,
 * munmap) or is discarded (sysmem_madvise_dontneed). A page that stops being resident reads as
 * zero afterwards, as anonymous memory does.
 */
#ifndef FRAGSCOPE_SYSMEM_H
#define FRAGSCOPE_SYSMEM_H

#include <stddef.h>
#include <stdint.h>

#define SYSMEM_FAIL ((uint64_t)-1)
#define SYSMEM_PAGE 4096u

#define SYSMEM_PROT_NONE 0
#define SYSMEM_PROT_RW 3

struct sysmem;

struct sysmem_config {
    uint64_t brk_start;        /* initial break; need not be page-aligned (static binaries) */
    uint64_t mmap_base;        /* top of the top-down mmap area (page-aligned) */
    uint64_t brk_limit;        /* sbrk beyond this fails (RLIMIT_DATA model); an address: the
                                  break may not pass it (use brk_start + rlimit); 0 = no limit */
    uint64_t mmap_limit;       /* total mapped bytes beyond this fail; 0 = no limit */
    uint32_t thp_align;        /* 1: recent kernels (6.7 on; this machine's 6.18): a mapping
                                  placed without a hint (mmap hint 0, mremap move) whose length
                                  is a multiple of 2 MiB is put 2 MiB-aligned, from a top-down
                                  search for length + 2 MiB. 0: older kernels (Debian 12's 6.1) */
};

/* Default layout: brk_start 0x555555559000, mmap_base 0x7ffff7fff000, no limits, thp_align 1. */
void sysmem_config_default(struct sysmem_config *cfg);

/* Post: a fresh space with no mappings and the break at cfg->brk_start. NULL on host OOM. */
struct sysmem *sysmem_new(const struct sysmem_config *cfg);
void sysmem_free(struct sysmem *m);

/* Pre: none. Post: on success returns the old break and moves it by incr (negative shrinks;
 * pages wholly above the new break lose residency and contents). On failure (limit, or a shrink
 * below brk_start, or growth into a mapping or into the page just below one: Linux keeps a free
 * guard page there) returns SYSMEM_FAIL and nothing changes. */
uint64_t sysmem_sbrk(struct sysmem *m, int64_t incr);
uint64_t sysmem_brk_current(const struct sysmem *m);
uint64_t sysmem_brk_start(const struct sysmem *m);

/* Pre: len > 0 (rounded up to pages). hint 0 = anywhere.
 * Post: the kernel's rule: the hint (rounded up to a page, as the kernel does; glibc's hints are
 * aligned anyway; at least 64 KiB, mmap_min_addr) if [hint, hint+len) is free, else the
 * highest free gap below mmap_base that fits (top-down, reusing holes; see thp_align for
 * hintless 2 MiB multiples). New pages are zero and not resident. Returns SYSMEM_FAIL when
 * nothing fits. */
uint64_t sysmem_mmap(struct sysmem *m, uint64_t hint, uint64_t len, int prot);

/* Pre: addr page-aligned, the range does not overlap the break area.
 * Post: [addr, addr+len) unmapped (partial unmaps split mappings);
 * residency and contents dropped. Returns 0, or -1 if addr is not page-aligned. */
int sysmem_munmap(struct sysmem *m, uint64_t addr, uint64_t len);

/* Pre: the range lies inside mappings. Post: protection changed (PROT_NONE pages are not
 * accessible: loads and stores there are a model bug, counted as a fault, never a host crash).
 * Returns 0, or -1 (nothing changed) when part of the range is not mapped. */
int sysmem_mprotect(struct sysmem *m, uint64_t addr, uint64_t len, int prot);

/* Pre: addr page-aligned. Post: the pages lose residency and read as zero. Returns 0 or -1. */
int sysmem_madvise_dontneed(struct sysmem *m, uint64_t addr, uint64_t len);

/* Linux mremap(MREMAP_MAYMOVE when may_move): grow or shrink a mapping in place when the
 * following space is free, else move it (contents and residency move with it). Returns the
 * new address or SYSMEM_FAIL. */
uint64_t sysmem_mremap(struct sysmem *m, uint64_t addr, uint64_t old_len, uint64_t new_len,
                       int may_move);

/* Metadata access. Pre: addr 8-aligned, inside the break area or a RW mapping.
 * Loads of never-written memory return 0. A store makes the page resident.
 * Breaking the precondition is a model bug: it is counted (sysmem_fault_count below), the load
 * returns 0 and the store is dropped; the host never crashes.
 *
 * Both are static inline. Written memory is kept in 4 KiB host blocks (one per page), and the blocks of each
 * 128 KiB region of the space are listed in one flat table (struct sysmem_region's first
 * member). Two ways lead from an address to its block without a call (struct sysmem_fast, the
 * first member of struct sysmem):
 * - the break window: one flat array with the block of every 4 KiB of the first
 *   SYSMEM_WINDOW_BYTES of the break area (NULL where nothing was written), so the main heap,
 *   where most metadata lives, takes one indexed step. Only blocks inside the break area (always
 *   read/write) are listed; the array is reserved host address space, committed by the host
 *   only where entries are written.
 * - elsewhere, a direct-mapped cache of region tables, in two indexed steps.
 * A miss (an uncached region, or a block never written) goes to sysmem_load_slow /
 * sysmem_store_slow, which check the mapping, find or make the block and refill the cache. The
 * cache only ever holds regions whose written pages are all read/write, so a hit needs no
 * further check. Misaligned addresses never hit (the window rotates their low bits into its
 * bound check, the cache keeps them in its compared tag). */
#define SYSMEM_WINDOW_BYTES ((uint64_t)1 << 32)
#define SYSMEM_BLOCK_SHIFT 12u
#define SYSMEM_REGION_SHIFT 17u
#define SYSMEM_REGION_BLOCKS (1u << (SYSMEM_REGION_SHIFT - SYSMEM_BLOCK_SHIFT))
#define SYSMEM_RCACHE_ENTRIES 2048u
/* the block-and-word bits of an address inside a region (the low 3 bits stay in the tag) */
#define SYSMEM_REGION_OFFSET_MASK ((((uint64_t)1 << SYSMEM_REGION_SHIFT) - 1) & ~(uint64_t)7)
struct sysmem_rcache_entry {
    uint64_t base;             /* region address, or SYSMEM_FAIL when empty */
    uint64_t *const *blk;      /* the region's SYSMEM_REGION_BLOCKS block pointers (NULL: none) */
};
struct sysmem_rcache {
    struct sysmem_rcache_entry e[SYSMEM_RCACHE_ENTRIES];
};
struct sysmem_fast {
    uint64_t win_base;         /* the break area's first page */
    uint64_t win_limit;        /* SYSMEM_WINDOW_BYTES / 8, or 0 when the window could not be made */
    uint64_t *const *win;      /* the block of each 4 KiB from win_base, or NULL */
    struct sysmem_rcache rc;
};
uint64_t sysmem_load_slow(struct sysmem *m, uint64_t addr);
void sysmem_store_slow(struct sysmem *m, uint64_t addr, uint64_t value);

static inline const struct sysmem_rcache_entry *sysmem_rcache_slot(const struct sysmem *m,
                                                                   uint64_t addr) {
    return &((const struct sysmem_fast *)(const void *)m)
                ->rc.e[(addr >> SYSMEM_REGION_SHIFT) & (SYSMEM_RCACHE_ENTRIES - 1)];
}
/* The host block holding addr when the window or the cache knows it, else NULL. */
static inline uint64_t *sysmem_cached_block(const struct sysmem *m, uint64_t addr) {
    const struct sysmem_fast *f = (const struct sysmem_fast *)(const void *)m;
    uint64_t off = addr - f->win_base;
    uint64_t rot = (off >> 3) | (off << 61);   /* word index; huge when misaligned */
    if (__builtin_expect(rot < f->win_limit, 1)) {
        uint64_t *b = f->win[rot >> (SYSMEM_BLOCK_SHIFT - 3)];
        if (__builtin_expect(b != 0, 1))
            return b;
    }
    const struct sysmem_rcache_entry *e = sysmem_rcache_slot(m, addr);
    if ((addr & ~SYSMEM_REGION_OFFSET_MASK) != e->base)
        return 0;
    return e->blk[(addr >> SYSMEM_BLOCK_SHIFT) & (SYSMEM_REGION_BLOCKS - 1)];
}
static inline uint64_t sysmem_load(struct sysmem *m, uint64_t addr) {
    const uint64_t *b = sysmem_cached_block(m, addr);
    if (__builtin_expect(b != 0, 1))
        return b[(addr >> 3) & ((1u << (SYSMEM_BLOCK_SHIFT - 3)) - 1)];
    return sysmem_load_slow(m, addr);
}
static inline void sysmem_store(struct sysmem *m, uint64_t addr, uint64_t value) {
    uint64_t *b = sysmem_cached_block(m, addr);
    if (__builtin_expect(b != 0, 1))
        b[(addr >> 3) & ((1u << (SYSMEM_BLOCK_SHIFT - 3)) - 1)] = value;
    else
        sysmem_store_slow(m, addr, value);
}
/* The host copy of the word at addr when the cache holds its block, else NULL: valid only until
 * the next sysmem call, for a read-modify-write or a neighbouring word of the same block. */
static inline uint64_t *sysmem_word(struct sysmem *m, uint64_t addr) {
    uint64_t *b = sysmem_cached_block(m, addr);
    return b ? &b[(addr >> 3) & ((1u << (SYSMEM_BLOCK_SHIFT - 3)) - 1)] : 0;
}
/* The host copy of the n words from addr (8-aligned) when one cached block holds them all, else
 * NULL; like sysmem_word, valid only until the next sysmem call. For reading or writing several
 * fields of one chunk with one lookup. */
static inline uint64_t *sysmem_span(struct sysmem *m, uint64_t addr, unsigned n) {
    uint64_t *w = sysmem_word(m, addr);
    if (w && ((addr >> 3) & ((1u << (SYSMEM_BLOCK_SHIFT - 3)) - 1)) + n <= (1u << (SYSMEM_BLOCK_SHIFT - 3)))
        return w;
    return 0;
}
/* The two words at addr and addr + 8, as two loads / stores would (a 16-aligned pair shares a
 * block, so one lookup serves both). */
static inline void sysmem_load_pair(struct sysmem *m, uint64_t addr, uint64_t *v0, uint64_t *v1) {
    const uint64_t *w;
    if (__builtin_expect(!(addr & 8) && (w = sysmem_word(m, addr)) != 0, 1)) {
        *v0 = w[0];
        *v1 = w[1];
    } else {
        *v0 = sysmem_load(m, addr);
        *v1 = sysmem_load(m, addr + 8);
    }
}
static inline void sysmem_store_pair(struct sysmem *m, uint64_t addr, uint64_t v0, uint64_t v1) {
    uint64_t *w;
    if (__builtin_expect(!(addr & 8) && (w = sysmem_word(m, addr)) != 0, 1)) {
        w[0] = v0;
        w[1] = v1;
    } else {
        sysmem_store(m, addr, v0);
        sysmem_store(m, addr + 8, v1);
    }
}

/* Starts bringing the host copy of addr's line into the cache (for a write when rw) when the
 * break window lists its block; nothing otherwise. A hint only: it changes no state. */
static inline void sysmem_prefetch(const struct sysmem *m, uint64_t addr, int rw) {
    const struct sysmem_fast *f = (const struct sysmem_fast *)(const void *)m;
    uint64_t off = addr - f->win_base;
    if (off < SYSMEM_WINDOW_BYTES && f->win_limit) {
        const uint64_t *b = f->win[off >> SYSMEM_BLOCK_SHIFT];
        if (b) {
            if (rw)
                __builtin_prefetch(&b[(addr >> 3) & ((1u << (SYSMEM_BLOCK_SHIFT - 3)) - 1)], 1);
            else
                __builtin_prefetch(&b[(addr >> 3) & ((1u << (SYSMEM_BLOCK_SHIFT - 3)) - 1)], 0);
        }
    }
}

/* The program wrote [addr, addr+len): those pages become resident (contents are not kept). */
void sysmem_touch(struct sysmem *m, uint64_t addr, uint64_t len);

/* Copies len bytes of allocator-visible contents (realloc's memcpy): residency follows the
 * destination's written range. */
void sysmem_copy(struct sysmem *m, uint64_t dst, uint64_t src, uint64_t len);

/* Resident pages in [lo, hi). */
uint64_t sysmem_resident_pages(const struct sysmem *m, uint64_t lo, uint64_t hi);
/* Resident pages in the whole space, and those in the break area. Kept incrementally: O(1). */
uint64_t sysmem_resident_total(const struct sysmem *m);
uint64_t sysmem_resident_brk(const struct sysmem *m);

/* Mapped bytes in total (excluding the break area), kept incrementally. */
uint64_t sysmem_mapped_bytes(const struct sysmem *m);

/* Host bytes used to simulate the space (for the "10 GiB costs only the written pages" claim). */
uint64_t sysmem_host_bytes(const struct sysmem *m);

/* Model bugs caught (loads/stores/touches/copies outside the break area or a mapping with the
 * needed protection, misaligned metadata access): how many, and the first one's address and a
 * short reason. sysmem_first_fault returns SYSMEM_FAIL and the reason NULL when there was none. */
uint64_t sysmem_fault_count(const struct sysmem *m);
uint64_t sysmem_first_fault(const struct sysmem *m);
const char *sysmem_first_fault_reason(const struct sysmem *m);

/* The mapping containing addr (adjacent mappings with the same protection count as one): 1 with
 * its bounds and protection, or 0 if addr is not mapped (the break area is not a mapping). */
int sysmem_mapping_at(const struct sysmem *m, uint64_t addr, uint64_t *start, uint64_t *end,
                      int *prot);
/* Number of mappings (as above), and a walk over them in address order; the walk stops early
 * when fn returns non-zero and returns that value. */
uint64_t sysmem_mapping_count(const struct sysmem *m);
int sysmem_mappings(const struct sysmem *m,
                    int (*fn)(void *ctx, uint64_t start, uint64_t end, int prot), void *ctx);

#endif
