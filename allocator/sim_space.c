/* sim_space.c: the simulated 64-bit address space under the allocator model (sysmem.h).
 *
 * Four parts:
 *
 * - Mappings. An AVL tree of VMAs keyed by start address, each node also summarising its
 *   subtree (lowest start, highest end, largest hole between two of its VMAs), so the kernel's
 *   top-down search, "the highest free gap below mmap_base that fits", is one descent. Adjacent
 *   VMAs with the same protection are kept merged, as Linux keeps anonymous mappings merged;
 *   munmap and mprotect split them. The break area [page_down(brk_start), page_up(brk)) is kept
 *   outside the tree and treated as an obstacle for placement; the break itself may not grow to
 *   within a page of a mapping (Linux's guard page). Without a hint, recent kernels place a
 *   mapping whose length is a multiple of 2 MiB on a 2 MiB boundary (cfg.thp_align).
 *
 * - Pages. A three-level radix table (13 + 13 + 9 bits of the 35-bit page number). A leaf covers
 *   512 pages (2 MiB) and holds their residency bitmap; only when the allocator stores into a page
 *   does the leaf get a region table for the page's 128 KiB (one flat array of 32 block
 *   pointers) and the page a 512-word host block. Untouched memory costs nothing, touched-only
 *   memory one bit a page, a page with contents one host page. (Blocks went from 512 bytes to
 *   2 KiB, then to a page: each step made the break window and the region tables smaller and
 *   let more neighbouring chunks share a block, at some host memory for sparse pages of chunk
 *   headers; at 4 KiB a dense heap costs the host about a fifth more than at 2 KiB and the model
 *   runs about 5% faster.) Invariant: a page with contents is resident, and a resident page
 *   is in the break area or a mapping. Each region also marks its pages whose protection is not
 *   read/write (set by mprotect, carried by mremap), so that a region with none of them can be
 *   cached: every block it lists is then read/write.
 *
 * - The break window (struct sysmem_fast, the first member of struct sysmem): the block of every
 *   4 KiB of the break area's first SYSMEM_WINDOW_BYTES in one flat array, reserved host
 *   address space whose pages the host commits while they list a block (a count per page gives
 *   an emptied page back); the static inline sysmem_load/sysmem_store in sysmem.h find a block
 *   of the main heap there in one indexed step. Only blocks inside the break area are listed.
 *
 * - The region cache (struct sysmem_rcache, in struct sysmem_fast): direct-mapped by region
 *   address; the inline accesses find any other block through it in two indexed steps. This
 *   file fills it on a miss (only with regions marking no non-read/write page) and empties an
 *   entry when its region is freed or a page of it loses read/write permission. A freed or
 *   moved block just leaves a NULL in its region's table (and in the window).
 *
 * Blocks and region tables come from hostpool.c's huge-page slabs, so the model's scattered
 * accesses do not miss the host's TLB. Counters (resident pages, of the break area, and of each
 * 64 MiB zone, the size and alignment of a glibc heap, so a heap's residency is one read; mapped
 * bytes, host bytes) are kept as things change. Misuse by the model (access outside the space
 * or to PROT_NONE, misaligned metadata) is counted and remembered, never a crash.
 */
#include "sysmem.h"
#include "hostpool.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE ((uint64_t)1 << PAGE_SHIFT)
#define BLOCK_SIZE ((uint64_t)1 << SYSMEM_BLOCK_SHIFT)
#define BLOCK_WORDS (BLOCK_SIZE / 8)
#define BLOCKS_PER_PAGE (PAGE_SIZE / BLOCK_SIZE)

#define REGION_SIZE ((uint64_t)1 << SYSMEM_REGION_SHIFT)
#define REGION_BLOCKS SYSMEM_REGION_BLOCKS
#define REGION_PAGES (REGION_SIZE / PAGE_SIZE)
#define LEAF_BITS 9
#define MID_BITS 13
#define TOP_BITS 13
#define LEAF_PAGES ((uint64_t)1 << LEAF_BITS)
#define MID_ENTRIES ((uint64_t)1 << MID_BITS)
#define TOP_ENTRIES ((uint64_t)1 << TOP_BITS)
#define MID_PAGES (LEAF_PAGES * MID_ENTRIES)
#define LEAF_REGIONS (LEAF_PAGES / REGION_PAGES)
#define ZONE_LEAVES 32                  /* a zone: 64 MiB, the size and alignment of a glibc heap */
#define ZONE_PAGES (LEAF_PAGES * ZONE_LEAVES)
#define MID_ZONES (MID_ENTRIES / ZONE_LEAVES)
_Static_assert(REGION_PAGES <= 32 && REGION_PAGES >= 1, "a region's page marks fit in 32 bits");

/* x86_64 user space: [mmap_min_addr, TASK_SIZE). */
#define SPACE_END ((uint64_t)1 << 47)
#define TASK_SIZE (SPACE_END - PAGE_SIZE)
#define MMAP_MIN_ADDR ((uint64_t)65536)
#define SPACE_PAGES (SPACE_END >> PAGE_SHIFT)

#define THP_SIZE ((uint64_t)2 << 20)
#define RW_CACHE 4

#define PROT_READ_BIT 1
#define PROT_WRITE_BIT 2

static uint64_t page_down(uint64_t a) { return a & ~(PAGE_SIZE - 1); }
static uint64_t page_up(uint64_t a) { return (a + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1); }
static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* The blocks of one 128 KiB region, by block index (blk first: the region cache points at it). */
struct region {
    uint64_t *blk[REGION_BLOCKS];
    uint32_t nblocks;               /* non-NULL entries of blk */
    uint32_t nonrw;                 /* bit per page: protection is not read/write */
};

struct leaf {
    struct region *reg[LEAF_REGIONS];   /* allocated on the first store into the region */
    uint32_t *zone_resident;        /* its zone's counter in the mid */
    uint32_t nresident;
    uint64_t resident[LEAF_PAGES / 64];
};

struct mid {
    struct leaf *leaf[MID_ENTRIES];
    uint32_t nleaves;
    uint32_t zone_resident[MID_ZONES];  /* resident pages per 64 MiB zone */
};

struct vma {
    uint64_t start, end;
    int prot;
    int height;
    uint64_t min_start, max_end;    /* of the subtree */
    uint64_t max_gap;               /* largest hole between two VMAs of the subtree */
    struct vma *left, *right;
};

#define WIN_ENTRIES (SYSMEM_WINDOW_BYTES / BLOCK_SIZE)
#define WIN_PAGE_ENTRIES (PAGE_SIZE / sizeof(uint64_t *))

struct sysmem {
    struct sysmem_fast fast;        /* first: sysmem.h's inline fast path reads it */
    uint64_t **win;                 /* fast.win, writable */
    uint16_t *win_used;             /* per host page of win: entries not NULL */
    struct sysmem_config cfg;
    uint64_t brk;                   /* the break, byte-exact */
    uint64_t brk_lo, brk_hi;        /* the break area, page-aligned */
    struct mid **top;
    struct vma *vmas;
    uint64_t vma_count;
    uint64_t mapped;
    uint64_t resident_total, resident_brk;
    uint64_t host_bytes;
    struct host_pool *blocks, *regions;     /* huge-page slabs for the many small objects */
    uint64_t faults, first_fault;
    const char *first_fault_reason;
    /* read/write VMAs recent access checks found (empty when lo == hi), replaced in turn */
    struct {
        uint64_t lo, hi;
    } rw[RW_CACHE];
    unsigned rw_next;
};

/* ---- host memory ---- */

static void *host_zalloc(struct sysmem *m, size_t n) {
    void *p = calloc(1, n);
    if (p)
        m->host_bytes += n;
    return p;
}

static void host_free(struct sysmem *m, void *p, size_t n) {
    if (p) {
        free(p);
        m->host_bytes -= n;
    }
}

static uint64_t *block_alloc(struct sysmem *m) {
    uint64_t *b = host_pool_alloc(m->blocks);
    if (b)
        m->host_bytes += BLOCK_SIZE;
    return b;
}

static void block_free(struct sysmem *m, uint64_t *b) {
    if (b) {
        host_pool_free(m->blocks, b);
        m->host_bytes -= BLOCK_SIZE;
    }
}

static struct region *region_alloc(struct sysmem *m) {
    struct region *r = host_pool_alloc(m->regions);
    if (r)
        m->host_bytes += sizeof *r;
    return r;
}

static void note_fault(struct sysmem *m, uint64_t addr, const char *why) {
    if (m->faults++ == 0) {
        m->first_fault = addr;
        m->first_fault_reason = why;
    }
}

/* ---- the break window ---- */

/* Records blk (NULL: none any more) as the block at addr, when addr lies in the window and, for a
 * new block, in the break area. A page of the window is the host's from its first entry to its
 * last: it is given back when it empties. */
static void win_note(struct sysmem *m, uint64_t addr, uint64_t *blk) {
    uint64_t off = addr - m->fast.win_base;
    if (!m->fast.win_limit || off >= SYSMEM_WINDOW_BYTES)
        return;
    uint64_t i = off >> SYSMEM_BLOCK_SHIFT;
    uint64_t pg = i / WIN_PAGE_ENTRIES;
    if (blk) {
        if (addr < m->brk_lo || addr >= m->brk_hi || m->win[i])
            return;
        if (m->win_used[pg]++ == 0)
            m->host_bytes += PAGE_SIZE;   /* the host commits the page on this first write */
        m->win[i] = blk;
    } else if (m->win[i]) {
        m->win[i] = NULL;
        if (--m->win_used[pg] == 0) {
            if (madvise(&m->win[pg * WIN_PAGE_ENTRIES], PAGE_SIZE, MADV_DONTNEED) != 0)
                memset(&m->win[pg * WIN_PAGE_ENTRIES], 0, PAGE_SIZE);
            m->host_bytes -= PAGE_SIZE;
        }
    }
}

/* ---- the region cache ---- */

static const struct region empty_region;   /* all NULL: what an empty cache entry points at */

static void rc_clear_all(struct sysmem *m) {
    for (unsigned i = 0; i < SYSMEM_RCACHE_ENTRIES; i++) {
        m->fast.rc.e[i].base = SYSMEM_FAIL;
        m->fast.rc.e[i].blk = empty_region.blk;
    }
}

static inline struct sysmem_rcache_entry *rc_slot(struct sysmem *m, uint64_t addr) {
    return &m->fast.rc.e[(addr >> SYSMEM_REGION_SHIFT) & (SYSMEM_RCACHE_ENTRIES - 1)];
}

/* Caches region r (holding addr) when all its written pages are read/write. */
static inline void rc_fill(struct sysmem *m, uint64_t addr, const struct region *r) {
    if (r->nonrw)
        return;
    struct sysmem_rcache_entry *e = rc_slot(m, addr);
    e->base = addr & ~(REGION_SIZE - 1);
    e->blk = r->blk;
}

/* Empties the entry of region r (holding addr) if it is cached. */
static void rc_forget(struct sysmem *m, uint64_t addr, const struct region *r) {
    struct sysmem_rcache_entry *e = rc_slot(m, addr);
    if (e->blk == r->blk) {
        e->base = SYSMEM_FAIL;
        e->blk = empty_region.blk;
    }
}

/* ---- the VMA tree ---- */

static int vma_height(const struct vma *n) { return n ? n->height : 0; }

static void vma_pull(struct vma *n) {
    struct vma *l = n->left, *r = n->right;
    int hl = vma_height(l), hr = vma_height(r);
    n->height = 1 + (hl > hr ? hl : hr);
    n->min_start = l ? l->min_start : n->start;
    n->max_end = r ? r->max_end : n->end;
    uint64_t g = 0;
    if (l)
        g = max_u64(max_u64(g, l->max_gap), n->start - l->max_end);
    if (r)
        g = max_u64(max_u64(g, r->max_gap), r->min_start - n->end);
    n->max_gap = g;
}

static struct vma *vma_rotate_right(struct vma *n) {
    struct vma *l = n->left;
    n->left = l->right;
    l->right = n;
    vma_pull(n);
    vma_pull(l);
    return l;
}

static struct vma *vma_rotate_left(struct vma *n) {
    struct vma *r = n->right;
    n->right = r->left;
    r->left = n;
    vma_pull(n);
    vma_pull(r);
    return r;
}

static struct vma *vma_balance(struct vma *n) {
    vma_pull(n);
    int bf = vma_height(n->left) - vma_height(n->right);
    if (bf > 1) {
        if (vma_height(n->left->left) < vma_height(n->left->right))
            n->left = vma_rotate_left(n->left);
        return vma_rotate_right(n);
    }
    if (bf < -1) {
        if (vma_height(n->right->right) < vma_height(n->right->left))
            n->right = vma_rotate_right(n->right);
        return vma_rotate_left(n);
    }
    return n;
}

static struct vma *vma_insert(struct vma *t, struct vma *x) {
    if (!t) {
        x->left = x->right = NULL;
        vma_pull(x);
        return x;
    }
    if (x->start < t->start)
        t->left = vma_insert(t->left, x);
    else
        t->right = vma_insert(t->right, x);
    return vma_balance(t);
}

static struct vma *vma_remove_min(struct vma *t, struct vma **out) {
    if (!t->left) {
        *out = t;
        return t->right;
    }
    t->left = vma_remove_min(t->left, out);
    return vma_balance(t);
}

/* Removes the node starting at `start` (it must exist) and hands it back in *out. */
static struct vma *vma_remove(struct vma *t, uint64_t start, struct vma **out) {
    if (!t)
        return NULL;
    if (start < t->start) {
        t->left = vma_remove(t->left, start, out);
    } else if (start > t->start) {
        t->right = vma_remove(t->right, start, out);
    } else {
        struct vma *l = t->left, *r = t->right, *succ;
        *out = t;
        if (!r)
            return l;
        r = vma_remove_min(r, &succ);
        succ->left = l;
        succ->right = r;
        return vma_balance(succ);
    }
    return vma_balance(t);
}

/* Recomputes the summaries on the path to the node starting at `start` (after its end moved). */
static void vma_refresh(struct vma *t, uint64_t start) {
    if (!t)
        return;
    if (start < t->start)
        vma_refresh(t->left, start);
    else if (start > t->start)
        vma_refresh(t->right, start);
    vma_pull(t);
}

/* The last VMA starting below addr, or NULL. */
static struct vma *vma_before(const struct vma *t, uint64_t addr) {
    const struct vma *best = NULL;
    while (t) {
        if (t->start < addr) {
            best = t;
            t = t->right;
        } else {
            t = t->left;
        }
    }
    return (struct vma *)best;
}

/* The first VMA starting at or above addr, or NULL. */
static struct vma *vma_from(const struct vma *t, uint64_t addr) {
    const struct vma *best = NULL;
    while (t) {
        if (t->start >= addr) {
            best = t;
            t = t->left;
        } else {
            t = t->right;
        }
    }
    return (struct vma *)best;
}

static struct vma *vma_containing(const struct vma *t, uint64_t addr) {
    struct vma *n = vma_before(t, addr + 1);
    return n && addr < n->end ? n : NULL;
}

/* The highest hole between two VMAs of subtree t whose top is at most `limit` and whose size is
 * at least len: returns 1 with [*lo, *hi). */
static int vma_gap_search(const struct vma *t, uint64_t limit, uint64_t len, uint64_t *lo,
                          uint64_t *hi) {
    if (!t || t->max_gap < len || t->min_start >= limit)
        return 0;
    if (t->right) {
        if (vma_gap_search(t->right, limit, len, lo, hi))
            return 1;
        uint64_t top = t->right->min_start;
        if (top <= limit && top - t->end >= len) {
            *lo = t->end;
            *hi = top;
            return 1;
        }
    }
    if (t->left) {
        if (t->start <= limit && t->start - t->left->max_end >= len) {
            *lo = t->left->max_end;
            *hi = t->start;
            return 1;
        }
        return vma_gap_search(t->left, limit, len, lo, hi);
    }
    return 0;
}

/* Top-down placement in [lo, hi): the end of the highest free gap (clipped to the range) that
 * holds len bytes, minus len; SYSMEM_FAIL if none. Only the VMA tree is considered. */
static uint64_t find_gap_topdown(const struct sysmem *m, uint64_t lo, uint64_t hi, uint64_t len) {
    if (hi <= lo || hi - lo < len)
        return SYSMEM_FAIL;
    const struct vma *p = vma_before(m->vmas, hi);
    if (!p)
        return hi - len;
    if (p->end < hi && hi - max_u64(p->end, lo) >= len)
        return hi - len;
    uint64_t glo, ghi;
    if (vma_gap_search(m->vmas, p->start, len, &glo, &ghi))
        return ghi >= lo + len ? ghi - len : SYSMEM_FAIL;
    /* the hole below the lowest VMA */
    ghi = m->vmas->min_start;
    return ghi >= lo + len ? ghi - len : SYSMEM_FAIL;
}

static int overlaps_brk(const struct sysmem *m, uint64_t lo, uint64_t hi) {
    return m->brk_lo < m->brk_hi && lo < m->brk_hi && hi > m->brk_lo;
}

/* [lo, hi) is neither mapped nor break area. */
static int range_free(const struct sysmem *m, uint64_t lo, uint64_t hi) {
    if (hi > TASK_SIZE || hi <= lo || overlaps_brk(m, lo, hi))
        return 0;
    const struct vma *n = vma_before(m->vmas, hi);
    return !n || n->end <= lo;
}

static void vma_changed(struct sysmem *m) {
    memset(m->rw, 0, sizeof m->rw);
}

static struct vma *vma_new(struct sysmem *m, uint64_t start, uint64_t end, int prot) {
    struct vma *n = host_zalloc(m, sizeof *n);
    if (!n)
        return NULL;
    n->start = start;
    n->end = end;
    n->prot = prot;
    m->vmas = vma_insert(m->vmas, n);
    m->vma_count++;
    return n;
}

static void vma_delete(struct sysmem *m, struct vma *n) {
    struct vma *out = NULL;
    m->vmas = vma_remove(m->vmas, n->start, &out);
    m->vma_count--;
    host_free(m, out, sizeof *out);
}

static void vma_set_end(struct sysmem *m, struct vma *n, uint64_t end) {
    n->end = end;
    vma_refresh(m->vmas, n->start);
}

/* Joins the VMA ending at addr with the one starting there when their protection matches. */
static void vma_merge_at(struct sysmem *m, uint64_t addr) {
    struct vma *l = vma_before(m->vmas, addr);
    if (!l || l->end != addr)
        return;
    struct vma *r = vma_from(m->vmas, addr);
    if (!r || r->start != addr || r->prot != l->prot)
        return;
    uint64_t end = r->end;
    vma_delete(m, r);
    l = vma_before(m->vmas, addr);
    vma_set_end(m, l, end);
}

/* Splits the VMA that strictly contains addr, so that no VMA crosses addr. 0, or -1 on host OOM. */
static int vma_split_at(struct sysmem *m, uint64_t addr) {
    struct vma *n = vma_before(m->vmas, addr);
    if (!n || n->end <= addr)
        return 0;
    uint64_t end = n->end;
    int prot = n->prot;
    vma_set_end(m, n, addr);
    if (!vma_new(m, addr, end, prot)) {
        n = vma_before(m->vmas, addr);
        vma_set_end(m, n, end);
        return -1;
    }
    return 0;
}

/* Removes every VMA piece in [lo, hi) (after splitting at the ends); returns the bytes removed. */
static uint64_t vma_remove_range(struct sysmem *m, uint64_t lo, uint64_t hi) {
    uint64_t removed = 0;
    for (;;) {
        struct vma *n = vma_from(m->vmas, lo);
        if (!n || n->start >= hi)
            break;
        removed += n->end - n->start;
        vma_delete(m, n);
    }
    return removed;
}

/* [lo, hi) is covered by VMAs without holes. */
static int range_mapped(const struct sysmem *m, uint64_t lo, uint64_t hi) {
    uint64_t pos = lo;
    while (pos < hi) {
        const struct vma *n = vma_containing(m->vmas, pos);
        if (!n)
            return 0;
        pos = n->end;
    }
    return 1;
}

/* ---- the page table ---- */

static inline struct leaf *leaf_get(const struct sysmem *m, uint64_t pn) {
    const struct mid *md = m->top[pn >> (LEAF_BITS + MID_BITS)];
    return md ? md->leaf[(pn >> LEAF_BITS) & (MID_ENTRIES - 1)] : NULL;
}

static struct leaf *leaf_make(struct sysmem *m, uint64_t pn) {
    struct mid **slot = &m->top[pn >> (LEAF_BITS + MID_BITS)];
    if (!*slot && !(*slot = host_zalloc(m, sizeof **slot)))
        return NULL;
    struct mid *md = *slot;
    struct leaf **ls = &md->leaf[(pn >> LEAF_BITS) & (MID_ENTRIES - 1)];
    if (!*ls) {
        if (!(*ls = host_zalloc(m, sizeof **ls)))
            return NULL;
        (*ls)->zone_resident = &md->zone_resident[(pn >> LEAF_BITS) % MID_ENTRIES / ZONE_LEAVES];
        md->nleaves++;
    }
    return *ls;
}

static uint64_t word_mask(unsigned lo, unsigned hi) {
    uint64_t upper = hi >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << hi) - 1);
    return upper & ~(((uint64_t)1 << lo) - 1);
}

/* Frees region k of leaf lf (its first page is pn) with its blocks, and forgets it in the cache. */
static void region_free(struct sysmem *m, struct leaf *lf, unsigned k, uint64_t pn) {
    struct region *r = lf->reg[k];
    rc_forget(m, pn << PAGE_SHIFT, r);
    for (unsigned b = 0; b < REGION_BLOCKS; b++)
        if (r->blk[b]) {
            win_note(m, (pn << PAGE_SHIFT) + (uint64_t)b * BLOCK_SIZE, NULL);
            block_free(m, r->blk[b]);
        }
    host_pool_free(m->regions, r);
    m->host_bytes -= sizeof *r;
    lf->reg[k] = NULL;
}

/* Frees the contents of page pn (its blocks; the region too when it empties). */
static void page_contents_free(struct sysmem *m, struct leaf *lf, uint64_t pn) {
    unsigned idx = (unsigned)(pn & (LEAF_PAGES - 1));
    unsigned k = idx / REGION_PAGES;
    struct region *r = lf->reg[k];
    if (!r)
        return;
    uint64_t **b = &r->blk[(idx % REGION_PAGES) * BLOCKS_PER_PAGE];
    for (unsigned j = 0; j < BLOCKS_PER_PAGE; j++)
        if (b[j]) {
            win_note(m, (pn << PAGE_SHIFT) + (uint64_t)j * BLOCK_SIZE, NULL);
            block_free(m, b[j]);
            b[j] = NULL;
            r->nblocks--;
        }
    if (r->nblocks == 0)
        region_free(m, lf, k, pn & ~(REGION_PAGES - 1));
}

/* Sets (nonrw) or clears the "not read/write" mark of pages [pn_lo, pn_hi) in the regions that
 * exist; a region that gains a mark leaves the cache. */
static void mark_nonrw(struct sysmem *m, uint64_t pn_lo, uint64_t pn_hi, int nonrw) {
    if (pn_hi > SPACE_PAGES)
        pn_hi = SPACE_PAGES;
    uint64_t pn = pn_lo;
    while (pn < pn_hi) {
        const struct mid *md = m->top[pn >> (LEAF_BITS + MID_BITS)];
        if (!md) {
            pn = ((pn >> (LEAF_BITS + MID_BITS)) + 1) << (LEAF_BITS + MID_BITS);
            continue;
        }
        struct leaf *lf = md->leaf[(pn >> LEAF_BITS) & (MID_ENTRIES - 1)];
        if (!lf) {
            pn = (pn | (LEAF_PAGES - 1)) + 1;
            continue;
        }
        uint64_t end = min_u64(pn_hi, (pn | (REGION_PAGES - 1)) + 1);
        struct region *r = lf->reg[(pn & (LEAF_PAGES - 1)) / REGION_PAGES];
        if (r) {
            unsigned a = (unsigned)(pn & (REGION_PAGES - 1));
            unsigned b = a + (unsigned)(end - pn);
            uint32_t bits = (uint32_t)word_mask(a, b);
            if (nonrw) {
                r->nonrw |= bits;
                rc_forget(m, pn << PAGE_SHIFT, r);
            } else {
                r->nonrw &= ~bits;
            }
        }
        pn = end;
    }
}

/* Frees the leaf of pn if nothing in it is resident (and its mid if that empties). */
static void leaf_release_if_empty(struct sysmem *m, uint64_t pn) {
    struct mid **slot = &m->top[pn >> (LEAF_BITS + MID_BITS)];
    struct mid *md = *slot;
    if (!md)
        return;
    struct leaf **ls = &md->leaf[(pn >> LEAF_BITS) & (MID_ENTRIES - 1)];
    struct leaf *lf = *ls;
    if (!lf || lf->nresident)
        return;
    for (unsigned k = 0; k < LEAF_REGIONS; k++)
        if (lf->reg[k])   /* not reached: contents imply residency */
            region_free(m, lf, k, (pn & ~(LEAF_PAGES - 1)) + k * REGION_PAGES);
    host_free(m, lf, sizeof *lf);
    *ls = NULL;
    if (--md->nleaves == 0) {
        host_free(m, md, sizeof *md);
        *slot = NULL;
    }
}


static int in_brk_area(const struct sysmem *m, uint64_t pn) {
    return pn >= (m->brk_lo >> PAGE_SHIFT) && pn < (m->brk_hi >> PAGE_SHIFT);
}

/* Pages of [lo, hi) that lie in the break area. */
static uint64_t brk_overlap_pages(const struct sysmem *m, uint64_t pn_lo, uint64_t pn_hi) {
    uint64_t a = max_u64(pn_lo, m->brk_lo >> PAGE_SHIFT);
    uint64_t b = min_u64(pn_hi, m->brk_hi >> PAGE_SHIFT);
    return b > a ? b - a : 0;
}


/* Marks pages [pn_lo, pn_hi) resident. 0, or -1 on host OOM (some pages may be marked). */
static int mark_resident(struct sysmem *m, uint64_t pn_lo, uint64_t pn_hi) {
    /* the common case (calloc's and realloc's writes into a heap in use): pages inside one leaf
     * that are all resident already, nothing to count */
    if (pn_lo < pn_hi && (pn_lo >> LEAF_BITS) == ((pn_hi - 1) >> LEAF_BITS)) {
        const struct leaf *lf = leaf_get(m, pn_lo);
        if (lf) {
            unsigned a = (unsigned)(pn_lo & (LEAF_PAGES - 1));
            unsigned b = a + (unsigned)(pn_hi - pn_lo);
            unsigned w = a / 64;
            for (; w * 64 < b; w++) {
                unsigned wlo = w * 64 > a ? 0 : a - w * 64;
                unsigned whi = b - w * 64 >= 64 ? 64 : b - w * 64;
                uint64_t mask = word_mask(wlo, whi);
                if ((lf->resident[w] & mask) != mask)
                    break;
            }
            if (w * 64 >= b)
                return 0;
        }
    }
    uint64_t pn = pn_lo;
    while (pn < pn_hi) {
        uint64_t leaf_end = (pn | (LEAF_PAGES - 1)) + 1;
        uint64_t end = min_u64(pn_hi, leaf_end);
        struct leaf *lf = leaf_make(m, pn);
        if (!lf)
            return -1;
        unsigned a = (unsigned)(pn & (LEAF_PAGES - 1));
        unsigned b = a + (unsigned)(end - pn);
        uint64_t added = 0, added_brk = 0;
        for (unsigned w = a / 64; w * 64 < b; w++) {
            unsigned wlo = w * 64 > a ? 0 : a - w * 64;
            unsigned whi = b - w * 64 >= 64 ? 64 : b - w * 64;
            uint64_t mask = word_mask(wlo, whi);
            uint64_t fresh = mask & ~lf->resident[w];
            if (!fresh)
                continue;
            lf->resident[w] |= fresh;
            uint64_t n = (uint64_t)__builtin_popcountll(fresh);
            added += n;
            uint64_t base = (pn & ~(LEAF_PAGES - 1)) + (uint64_t)w * 64;
            if (brk_overlap_pages(m, base, base + 64)) {
                /* count only the fresh pages inside the break area */
                uint64_t bits = fresh;
                while (bits) {
                    unsigned i = (unsigned)__builtin_ctzll(bits);
                    bits &= bits - 1;
                    added_brk += in_brk_area(m, base + i);
                }
            }
        }
        lf->nresident += (uint32_t)added;
        *lf->zone_resident += (uint32_t)added;
        m->resident_total += added;
        m->resident_brk += added_brk;
        pn = end;
    }
    return 0;
}

/* Drops residency and contents of pages [pn_lo, pn_hi). */
static void drop_pages(struct sysmem *m, uint64_t pn_lo, uint64_t pn_hi) {
    if (pn_hi > SPACE_PAGES)
        pn_hi = SPACE_PAGES;
    uint64_t pn = pn_lo;
    while (pn < pn_hi) {
        const struct mid *md = m->top[pn >> (LEAF_BITS + MID_BITS)];
        if (!md) {
            pn = ((pn >> (LEAF_BITS + MID_BITS)) + 1) << (LEAF_BITS + MID_BITS);
            continue;
        }
        uint64_t leaf_end = (pn | (LEAF_PAGES - 1)) + 1;
        uint64_t end = min_u64(pn_hi, leaf_end);
        struct leaf *lf = md->leaf[(pn >> LEAF_BITS) & (MID_ENTRIES - 1)];
        if (lf) {
            unsigned a = (unsigned)(pn & (LEAF_PAGES - 1));
            unsigned b = a + (unsigned)(end - pn);
            uint64_t base0 = pn & ~(LEAF_PAGES - 1);
            uint64_t gone = 0, gone_brk = 0;
            for (unsigned w = a / 64; w * 64 < b; w++) {
                unsigned wlo = w * 64 > a ? 0 : a - w * 64;
                unsigned whi = b - w * 64 >= 64 ? 64 : b - w * 64;
                uint64_t bits = lf->resident[w] & word_mask(wlo, whi);
                if (!bits)
                    continue;
                lf->resident[w] &= ~bits;
                while (bits) {
                    unsigned i = (unsigned)__builtin_ctzll(bits);
                    bits &= bits - 1;
                    unsigned idx = w * 64 + i;
                    gone++;
                    gone_brk += in_brk_area(m, base0 + idx);
                    page_contents_free(m, lf, base0 + idx);
                }
            }
            lf->nresident -= (uint32_t)gone;
            *lf->zone_resident -= (uint32_t)gone;
            m->resident_total -= gone;
            m->resident_brk -= gone_brk;
            leaf_release_if_empty(m, pn);
        }
        pn = end;
    }
}

static uint64_t count_resident(const struct sysmem *m, uint64_t pn_lo, uint64_t pn_hi) {
    if (pn_hi > SPACE_PAGES)
        pn_hi = SPACE_PAGES;
    uint64_t total = 0, pn = pn_lo;
    while (pn < pn_hi) {
        const struct mid *md = m->top[pn >> (LEAF_BITS + MID_BITS)];
        if (!md) {
            pn = ((pn >> (LEAF_BITS + MID_BITS)) + 1) << (LEAF_BITS + MID_BITS);
            continue;
        }
        if (!(pn & (ZONE_PAGES - 1)) && pn_hi - pn >= ZONE_PAGES) {
            total += md->zone_resident[(pn >> LEAF_BITS) % MID_ENTRIES / ZONE_LEAVES];
            pn += ZONE_PAGES;
            continue;
        }
        uint64_t leaf_end = (pn | (LEAF_PAGES - 1)) + 1;
        uint64_t end = min_u64(pn_hi, leaf_end);
        const struct leaf *lf = md->leaf[(pn >> LEAF_BITS) & (MID_ENTRIES - 1)];
        if (lf && lf->nresident) {
            unsigned a = (unsigned)(pn & (LEAF_PAGES - 1));
            unsigned b = a + (unsigned)(end - pn);
            if (a == 0 && b == LEAF_PAGES) {
                total += lf->nresident;
            } else {
                for (unsigned w = a / 64; w * 64 < b; w++) {
                    unsigned wlo = w * 64 > a ? 0 : a - w * 64;
                    unsigned whi = b - w * 64 >= 64 ? 64 : b - w * 64;
                    total += (uint64_t)__builtin_popcountll(lf->resident[w] &
                                                            word_mask(wlo, whi));
                }
            }
        }
        pn = end;
    }
    return total;
}

/* The region table holding addr, or NULL if nothing in its region was written. */
static inline struct region *region_find(const struct sysmem *m, uint64_t addr) {
    uint64_t pn = addr >> PAGE_SHIFT;
    const struct leaf *lf = leaf_get(m, pn);
    return lf ? lf->reg[(pn & (LEAF_PAGES - 1)) / REGION_PAGES] : NULL;
}

static inline uint64_t *region_block(const struct region *r, uint64_t addr) {
    return r->blk[(addr >> SYSMEM_BLOCK_SHIFT) & (REGION_BLOCKS - 1)];
}

/* The host block holding addr, or NULL if never written. */
static inline uint64_t *block_find(const struct sysmem *m, uint64_t addr) {
    const struct region *r = region_find(m, addr);
    return r ? region_block(r, addr) : NULL;
}

/* The host block holding addr, created (and the page made resident) if needed; NULL on OOM.
 * rw: the page is read/write (else it is marked so in its region). *rp: the region. */
static uint64_t *block_make(struct sysmem *m, uint64_t addr, int rw, struct region **rp) {
    uint64_t pn = addr >> PAGE_SHIFT;
    struct leaf *lf = leaf_make(m, pn);
    if (!lf)
        return NULL;
    unsigned idx = (unsigned)(pn & (LEAF_PAGES - 1));
    if (!(lf->resident[idx / 64] & ((uint64_t)1 << (idx % 64)))) {
        lf->resident[idx / 64] |= (uint64_t)1 << (idx % 64);
        lf->nresident++;
        (*lf->zone_resident)++;
        m->resident_total++;
        m->resident_brk += in_brk_area(m, pn);
    }
    struct region **rs = &lf->reg[idx / REGION_PAGES];
    if (!*rs && !(*rs = region_alloc(m)))
        return NULL;
    struct region *r = *rs;
    *rp = r;
    uint32_t bit = (uint32_t)1 << (idx % REGION_PAGES);
    if (rw) {
        r->nonrw &= ~bit;
    } else if (!(r->nonrw & bit)) {
        r->nonrw |= bit;
        rc_forget(m, addr, r);
    }
    uint64_t **blk = &r->blk[(addr >> SYSMEM_BLOCK_SHIFT) & (REGION_BLOCKS - 1)];
    if (!*blk) {
        if (!(*blk = block_alloc(m)))
            return NULL;
        r->nblocks++;
        win_note(m, addr & ~(BLOCK_SIZE - 1), *blk);
    }
    return *blk;
}

/* Moves residency and contents of page src to page dst (dst is not resident). */
static int move_page(struct sysmem *m, uint64_t src, uint64_t dst) {
    struct leaf *sl = leaf_get(m, src);
    struct leaf *dl = leaf_make(m, dst);
    if (!dl)
        return -1;
    unsigned si = (unsigned)(src & (LEAF_PAGES - 1)), di = (unsigned)(dst & (LEAF_PAGES - 1));
    struct region *sr = sl->reg[si / REGION_PAGES];
    if (sr) {
        uint64_t **sb = &sr->blk[(si % REGION_PAGES) * BLOCKS_PER_PAGE];
        uint32_t sbit = (uint32_t)1 << (si % REGION_PAGES);
        unsigned n = 0;
        for (unsigned j = 0; j < BLOCKS_PER_PAGE; j++)
            n += sb[j] != NULL;
        if (n) {
            struct region **ds = &dl->reg[di / REGION_PAGES];
            if (!*ds && !(*ds = region_alloc(m)))
                return -1;
            struct region *dr = *ds;
            uint64_t **db = &dr->blk[(di % REGION_PAGES) * BLOCKS_PER_PAGE];
            for (unsigned j = 0; j < BLOCKS_PER_PAGE; j++) {
                if (sb[j]) {
                    win_note(m, (src << PAGE_SHIFT) + (uint64_t)j * BLOCK_SIZE, NULL);
                    win_note(m, (dst << PAGE_SHIFT) + (uint64_t)j * BLOCK_SIZE, sb[j]);
                }
                db[j] = sb[j];
                sb[j] = NULL;
            }
            dr->nblocks += n;
            sr->nblocks -= n;
            uint32_t dbit = (uint32_t)1 << (di % REGION_PAGES);
            if (sr->nonrw & sbit) {
                dr->nonrw |= dbit;
                rc_forget(m, dst << PAGE_SHIFT, dr);
            } else {
                dr->nonrw &= ~dbit;
            }
            if (sr->nblocks == 0)
                region_free(m, sl, si / REGION_PAGES, src & ~(REGION_PAGES - 1));
        }
    }
    dl->resident[di / 64] |= (uint64_t)1 << (di % 64);
    dl->nresident++;
    (*dl->zone_resident)++;
    sl->resident[si / 64] &= ~((uint64_t)1 << (si % 64));
    sl->nresident--;
    (*sl->zone_resident)--;
    leaf_release_if_empty(m, src);
    return 0;
}

/* ---- access checks ---- */

/* The protection at addr: the break area is read/write; -1 if unmapped. */
static int prot_at(struct sysmem *m, uint64_t addr) {
    if (addr >= m->brk_lo && addr < m->brk_hi)
        return SYSMEM_PROT_RW;
    for (unsigned i = 0; i < RW_CACHE; i++)
        if (addr >= m->rw[i].lo && addr < m->rw[i].hi)
            return SYSMEM_PROT_RW;
    const struct vma *n = vma_containing(m->vmas, addr);
    if (!n)
        return -1;
    if (n->prot == SYSMEM_PROT_RW) {
        unsigned i = m->rw_next++ % RW_CACHE;
        m->rw[i].lo = n->start;
        m->rw[i].hi = n->end;
    }
    return n->prot;
}

/* [lo, hi) lies in the break area or in mappings that all allow `need`. */
static int range_allows(struct sysmem *m, uint64_t lo, uint64_t hi, int need, uint64_t *bad) {
    uint64_t pos = lo;
    while (pos < hi) {
        if (pos >= m->brk_lo && pos < m->brk_hi) {
            pos = m->brk_hi;
            continue;
        }
        const struct vma *n = vma_containing(m->vmas, pos);
        if (!n || (n->prot & need) != need) {
            *bad = pos;
            return 0;
        }
        pos = n->end;
    }
    return 1;
}

/* ---- the interface ---- */

void sysmem_config_default(struct sysmem_config *cfg) {
    cfg->brk_start = 0x555555559000ull;
    cfg->mmap_base = 0x7ffff7fff000ull;
    cfg->brk_limit = 0;
    cfg->mmap_limit = 0;
    cfg->thp_align = 1;
}

struct sysmem *sysmem_new(const struct sysmem_config *cfg) {
    if (cfg->brk_start >= TASK_SIZE || cfg->mmap_base > TASK_SIZE ||
        (cfg->mmap_base & (PAGE_SIZE - 1)))
        return NULL;
    struct sysmem *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->host_bytes = sizeof *m;
    m->top = host_zalloc(m, TOP_ENTRIES * sizeof *m->top);
    m->blocks = host_pool_new(BLOCK_SIZE);
    m->regions = host_pool_new(sizeof(struct region));
    if (!m->top || !m->blocks || !m->regions) {
        host_pool_delete(m->blocks);
        host_pool_delete(m->regions);
        free(m->top);
        free(m);
        return NULL;
    }
    m->cfg = *cfg;
    m->brk = cfg->brk_start;
    m->brk_lo = page_down(cfg->brk_start);
    m->brk_hi = page_up(cfg->brk_start);
    m->first_fault = SYSMEM_FAIL;
    rc_clear_all(m);
    /* the window: address space only, committed by the host page by page as entries are set */
    void *w = mmap(NULL, WIN_ENTRIES * sizeof(uint64_t *), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    m->win_used = calloc(WIN_ENTRIES / WIN_PAGE_ENTRIES, sizeof *m->win_used);
    if (w != MAP_FAILED && m->win_used) {
        m->win = w;
        m->fast.win = m->win;
        m->fast.win_base = m->brk_lo;
        m->fast.win_limit = SYSMEM_WINDOW_BYTES / 8;
        m->host_bytes += WIN_ENTRIES / WIN_PAGE_ENTRIES * sizeof *m->win_used;
    } else {
        if (w != MAP_FAILED)
            munmap(w, WIN_ENTRIES * sizeof(uint64_t *));
        free(m->win_used);
        m->win_used = NULL;
        m->fast.win_limit = 0;   /* no window: the region cache serves every address */
    }
    return m;
}

static void vma_free_all(struct vma *t) {
    if (!t)
        return;
    vma_free_all(t->left);
    vma_free_all(t->right);
    free(t);
}

void sysmem_free(struct sysmem *m) {
    if (!m)
        return;
    for (uint64_t t = 0; t < TOP_ENTRIES; t++) {
        struct mid *md = m->top[t];
        if (!md)
            continue;
        for (uint64_t i = 0; i < MID_ENTRIES; i++) {
            struct leaf *lf = md->leaf[i];
            if (!lf)
                continue;
            free(lf);   /* regions and blocks go with their pools */
        }
        free(md);
    }
    free(m->top);
    if (m->win)
        munmap(m->win, WIN_ENTRIES * sizeof(uint64_t *));
    free(m->win_used);
    vma_free_all(m->vmas);
    host_pool_delete(m->blocks);
    host_pool_delete(m->regions);
    free(m);
}

uint64_t sysmem_brk_current(const struct sysmem *m) { return m->brk; }
uint64_t sysmem_brk_start(const struct sysmem *m) { return m->cfg.brk_start; }

uint64_t sysmem_sbrk(struct sysmem *m, int64_t incr) {
    uint64_t old = m->brk;
    if (incr == 0)
        return old;
    if (incr < 0) {
        uint64_t dec = (uint64_t)0 - (uint64_t)incr;
        if (dec > old - m->cfg.brk_start)
            return SYSMEM_FAIL;
        uint64_t nb = old - dec;
        uint64_t new_hi = max_u64(page_up(nb), m->brk_lo);
        if (new_hi < m->brk_hi) {
            drop_pages(m, new_hi >> PAGE_SHIFT, m->brk_hi >> PAGE_SHIFT);
            m->brk_hi = new_hi;
        }
        m->brk = nb;
        return old;
    }
    uint64_t inc = (uint64_t)incr;
    if (inc > TASK_SIZE - old)
        return SYSMEM_FAIL;
    uint64_t nb = old + inc;
    if (m->cfg.brk_limit && nb > m->cfg.brk_limit)
        return SYSMEM_FAIL;
    uint64_t new_hi = page_up(nb);
    if (new_hi > m->brk_hi) {
        /* Linux keeps one free page between the break and the next mapping. */
        const struct vma *n = vma_before(m->vmas, new_hi + PAGE_SIZE);
        if (n && n->end > m->brk_hi)
            return SYSMEM_FAIL;
        m->brk_hi = new_hi;
    }
    m->brk = nb;
    return old;
}

/* Rounds len up to pages; 0 when it is 0 or too large. */
static uint64_t page_len(uint64_t len) {
    if (len == 0 || len > TASK_SIZE)
        return 0;
    return page_up(len);
}

static uint64_t place_plain(const struct sysmem *m, uint64_t len) {
    uint64_t base = m->cfg.mmap_base;
    uint64_t above = max_u64(MMAP_MIN_ADDR, m->brk_hi);
    uint64_t a = find_gap_topdown(m, above, base, len);
    if (a != SYSMEM_FAIL)
        return a;
    return find_gap_topdown(m, MMAP_MIN_ADDR, min_u64(m->brk_lo, base), len);
}

/* Placement without a usable hint. With thp_align, a length that is a multiple of 2 MiB is
 * searched for with 2 MiB of slack and then aligned down to 2 MiB inside it (the kernel's
 * THP alignment of anonymous mappings); when even that fails, the plain search decides. */
static uint64_t place(const struct sysmem *m, uint64_t len) {
    if (m->cfg.thp_align && (len & (THP_SIZE - 1)) == 0 && len <= TASK_SIZE - THP_SIZE) {
        uint64_t r = place_plain(m, len + THP_SIZE);
        if (r != SYSMEM_FAIL)
            return (r + THP_SIZE) & ~(THP_SIZE - 1);
    }
    return place_plain(m, len);
}

uint64_t sysmem_mmap(struct sysmem *m, uint64_t hint, uint64_t len, int prot) {
    len = page_len(len);
    if (!len)
        return SYSMEM_FAIL;
    if (m->cfg.mmap_limit && (len > m->cfg.mmap_limit || m->mapped > m->cfg.mmap_limit - len))
        return SYSMEM_FAIL;
    uint64_t addr = SYSMEM_FAIL;
    if (hint) {
        uint64_t h = page_up(hint);
        if (h >= MMAP_MIN_ADDR && h <= TASK_SIZE - len && range_free(m, h, h + len))
            addr = h;
    }
    if (addr == SYSMEM_FAIL)
        addr = hint ? place_plain(m, len) : place(m, len);
    if (addr == SYSMEM_FAIL)
        return SYSMEM_FAIL;
    if (!vma_new(m, addr, addr + len, prot))
        return SYSMEM_FAIL;
    m->mapped += len;
    vma_merge_at(m, addr);
    vma_merge_at(m, addr + len);
    vma_changed(m);
    return addr;
}

int sysmem_munmap(struct sysmem *m, uint64_t addr, uint64_t len) {
    if ((addr & (PAGE_SIZE - 1)) || !(len = page_len(len)) || addr > TASK_SIZE - len)
        return -1;
    uint64_t end = addr + len;
    if (overlaps_brk(m, addr, end))
        return -1;
    if (vma_split_at(m, addr) || vma_split_at(m, end))
        return -1;
    m->mapped -= vma_remove_range(m, addr, end);
    drop_pages(m, addr >> PAGE_SHIFT, end >> PAGE_SHIFT);
    mark_nonrw(m, addr >> PAGE_SHIFT, end >> PAGE_SHIFT, 0);
    vma_changed(m);
    return 0;
}

int sysmem_mprotect(struct sysmem *m, uint64_t addr, uint64_t len, int prot) {
    if ((addr & (PAGE_SIZE - 1)) || !(len = page_len(len)) || addr > TASK_SIZE - len)
        return -1;
    uint64_t end = addr + len;
    if (overlaps_brk(m, addr, end) || !range_mapped(m, addr, end))
        return -1;
    if (vma_split_at(m, addr) || vma_split_at(m, end))
        return -1;
    uint64_t removed = vma_remove_range(m, addr, end);
    (void)removed;
    if (!vma_new(m, addr, end, prot))
        return -1;
    vma_merge_at(m, addr);
    vma_merge_at(m, end);
    vma_changed(m);
    mark_nonrw(m, addr >> PAGE_SHIFT, end >> PAGE_SHIFT, prot != SYSMEM_PROT_RW);
    return 0;
}

int sysmem_madvise_dontneed(struct sysmem *m, uint64_t addr, uint64_t len) {
    if (addr & (PAGE_SIZE - 1))
        return -1;
    if (len == 0)
        return 0;
    if (!(len = page_len(len)) || addr > TASK_SIZE - len)
        return -1;
    uint64_t end = addr + len;
    /* Unmapped pages are never resident, so dropping the whole range is exact; the result
     * still says whether all of it was mapped, as Linux's ENOMEM does. */
    drop_pages(m, addr >> PAGE_SHIFT, end >> PAGE_SHIFT);
    uint64_t pos = addr;
    while (pos < end) {
        if (pos >= m->brk_lo && pos < m->brk_hi) {
            pos = m->brk_hi;
            continue;
        }
        const struct vma *n = vma_containing(m->vmas, pos);
        if (!n)
            return -1;
        pos = n->end;
    }
    return 0;
}

uint64_t sysmem_mremap(struct sysmem *m, uint64_t addr, uint64_t old_len, uint64_t new_len,
                       int may_move) {
    if (addr & (PAGE_SIZE - 1))
        return SYSMEM_FAIL;
    old_len = page_len(old_len);
    new_len = page_len(new_len);
    if (!old_len || !new_len || addr > TASK_SIZE - old_len)
        return SYSMEM_FAIL;
    const struct vma *n = vma_containing(m->vmas, addr);
    if (!n || n->end < addr + old_len)
        return SYSMEM_FAIL;
    int prot = n->prot;
    if (new_len <= old_len) {
        if (new_len < old_len && sysmem_munmap(m, addr + new_len, old_len - new_len))
            return SYSMEM_FAIL;
        return addr;
    }
    uint64_t grow = new_len - old_len;
    if (m->cfg.mmap_limit && (grow > m->cfg.mmap_limit || m->mapped > m->cfg.mmap_limit - grow))
        return SYSMEM_FAIL;
    uint64_t old_end = addr + old_len;
    if (addr <= TASK_SIZE - new_len && range_free(m, old_end, addr + new_len)) {
        if (!vma_new(m, old_end, addr + new_len, prot))
            return SYSMEM_FAIL;
        m->mapped += grow;
        vma_merge_at(m, old_end);
        vma_merge_at(m, addr + new_len);
        vma_changed(m);
        return addr;
    }
    if (!may_move)
        return SYSMEM_FAIL;
    uint64_t dst = place(m, new_len);
    if (dst == SYSMEM_FAIL || !vma_new(m, dst, dst + new_len, prot))
        return SYSMEM_FAIL;
    m->mapped += new_len;
    /* move residency and contents page by page (only resident pages have any) */
    uint64_t spn = addr >> PAGE_SHIFT, epn = old_end >> PAGE_SHIFT;
    uint64_t dpn = dst >> PAGE_SHIFT;
    for (uint64_t pn = spn; pn < epn;) {
        uint64_t leaf_end = min_u64(epn, (pn | (LEAF_PAGES - 1)) + 1);
        for (; pn < leaf_end; pn++) {
            const struct leaf *lf = leaf_get(m, pn);   /* a move may free it */
            if (!lf) {
                pn = leaf_end;
                break;
            }
            unsigned i = (unsigned)(pn & (LEAF_PAGES - 1));
            if ((lf->resident[i / 64] & ((uint64_t)1 << (i % 64))) &&
                move_page(m, pn, dpn + (pn - spn)))
                note_fault(m, pn << PAGE_SHIFT, "host out of memory in mremap");
        }
    }
    if (sysmem_munmap(m, addr, old_len))
        return SYSMEM_FAIL;
    vma_merge_at(m, dst);
    vma_merge_at(m, dst + new_len);
    vma_changed(m);
    return dst;
}

/* The common miss: an aligned address in the break area or in a read/write mapping a recent
 * check found. Anything else takes the general path below, which also records faults. */
static inline int quick_rw(const struct sysmem *m, uint64_t addr) {
    if (addr & 7)
        return 0;
    if (addr >= m->brk_lo && addr < m->brk_hi)
        return 1;
    for (unsigned i = 0; i < RW_CACHE; i++)
        if (addr >= m->rw[i].lo && addr < m->rw[i].hi)
            return 1;
    return 0;
}

static __attribute__((noinline)) uint64_t load_general(struct sysmem *m, uint64_t addr) {
    if (addr & 7) {
        note_fault(m, addr, "misaligned load");
        return 0;
    }
    if (addr >= SPACE_END) {
        note_fault(m, addr, "load outside the address space");
        return 0;
    }
    int prot = prot_at(m, addr);
    if (prot < 0 || !(prot & PROT_READ_BIT)) {
        note_fault(m, addr, prot < 0 ? "load from unmapped memory" : "load from PROT_NONE memory");
        return 0;
    }
    const struct region *r = region_find(m, addr);
    if (!r)
        return 0;
    if (prot == SYSMEM_PROT_RW)
        rc_fill(m, addr, r);
    const uint64_t *blk = region_block(r, addr);
    return blk ? blk[(addr >> 3) & (BLOCK_WORDS - 1)] : 0;
}

uint64_t sysmem_load_slow(struct sysmem *m, uint64_t addr) {
    if (__builtin_expect(!quick_rw(m, addr), 0))
        return load_general(m, addr);
    const struct region *r = region_find(m, addr);
    if (!r)
        return 0;
    rc_fill(m, addr, r);
    const uint64_t *blk = region_block(r, addr);
    return blk ? blk[(addr >> 3) & (BLOCK_WORDS - 1)] : 0;
}

static __attribute__((noinline)) void store_general(struct sysmem *m, uint64_t addr,
                                                    uint64_t value) {
    if (addr & 7) {
        note_fault(m, addr, "misaligned store");
        return;
    }
    if (addr >= SPACE_END) {
        note_fault(m, addr, "store outside the address space");
        return;
    }
    int prot = prot_at(m, addr);
    if (prot < 0 || !(prot & PROT_WRITE_BIT)) {
        note_fault(m, addr, prot < 0 ? "store to unmapped memory" : "store to PROT_NONE memory");
        return;
    }
    struct region *r;
    uint64_t *blk = block_make(m, addr, prot == SYSMEM_PROT_RW, &r);
    if (!blk) {
        note_fault(m, addr, "host out of memory");
        return;
    }
    if (prot == SYSMEM_PROT_RW)
        rc_fill(m, addr, r);
    blk[(addr >> 3) & (BLOCK_WORDS - 1)] = value;
}

void sysmem_store_slow(struct sysmem *m, uint64_t addr, uint64_t value) {
    if (__builtin_expect(!quick_rw(m, addr), 0)) {
        store_general(m, addr, value);
        return;
    }
    /* read/write: find the block, or make it (the first store into it) */
    struct region *r = region_find(m, addr);
    uint64_t *blk = r ? region_block(r, addr) : NULL;
    if (!blk && !(blk = block_make(m, addr, 1, &r))) {
        note_fault(m, addr, "host out of memory");
        return;
    }
    rc_fill(m, addr, r);
    blk[(addr >> 3) & (BLOCK_WORDS - 1)] = value;
}

void sysmem_touch(struct sysmem *m, uint64_t addr, uint64_t len) {
    if (len == 0)
        return;
    uint64_t bad;
    if (addr >= SPACE_END || len > SPACE_END - addr) {
        note_fault(m, addr, "touch outside the address space");
        return;
    }
    if (!range_allows(m, addr, addr + len, PROT_WRITE_BIT, &bad)) {
        note_fault(m, bad, "touch of unmapped or read-only memory");
        return;
    }
    if (mark_resident(m, addr >> PAGE_SHIFT, page_up(addr + len) >> PAGE_SHIFT))
        note_fault(m, addr, "host out of memory");
}

void sysmem_copy(struct sysmem *m, uint64_t dst, uint64_t src, uint64_t len) {
    if (len == 0)
        return;
    uint64_t bad;
    if (src >= SPACE_END || len > SPACE_END - src || dst >= SPACE_END || len > SPACE_END - dst) {
        note_fault(m, src >= SPACE_END || len > SPACE_END - src ? src : dst,
                   "copy outside the address space");
        return;
    }
    if (!range_allows(m, src, src + len, PROT_READ_BIT, &bad)) {
        note_fault(m, bad, "copy from unmapped or PROT_NONE memory");
        return;
    }
    if (!range_allows(m, dst, dst + len, PROT_WRITE_BIT, &bad)) {
        note_fault(m, bad, "copy to unmapped or read-only memory");
        return;
    }
    if (mark_resident(m, dst >> PAGE_SHIFT, page_up(dst + len) >> PAGE_SHIFT)) {
        note_fault(m, dst, "host out of memory");
        return;
    }
    /* segment by segment, each inside one source block and one destination block */
    uint64_t done = 0;
    while (done < len) {
        uint64_t s = src + done, d = dst + done;
        uint64_t n = len - done;
        n = min_u64(n, BLOCK_SIZE - (s & (BLOCK_SIZE - 1)));
        n = min_u64(n, BLOCK_SIZE - (d & (BLOCK_SIZE - 1)));
        const uint64_t *sb = block_find(m, s);
        uint64_t *db = block_find(m, d);
        struct region *dr;
        if (sb) {
            if (!db && !(db = block_make(m, d, prot_at(m, d) == SYSMEM_PROT_RW, &dr))) {
                note_fault(m, d, "host out of memory");
                return;
            }
            memmove((char *)db + (d & (BLOCK_SIZE - 1)), (const char *)sb + (s & (BLOCK_SIZE - 1)),
                    (size_t)n);
        } else if (db) {
            memset((char *)db + (d & (BLOCK_SIZE - 1)), 0, (size_t)n);
        }
        done += n;
    }
}

uint64_t sysmem_resident_pages(const struct sysmem *m, uint64_t lo, uint64_t hi) {
    if (hi - lo == ZONE_PAGES << PAGE_SHIFT && !(lo & ((ZONE_PAGES << PAGE_SHIFT) - 1)) &&
        hi <= SPACE_END) {
        /* one whole zone (a glibc heap): its counter */
        uint64_t pn = lo >> PAGE_SHIFT;
        const struct mid *md = m->top[pn >> (LEAF_BITS + MID_BITS)];
        return md ? md->zone_resident[(pn >> LEAF_BITS) % MID_ENTRIES / ZONE_LEAVES] : 0;
    }
    if (hi <= lo || lo >= SPACE_END)
        return 0;
    hi = min_u64(hi, SPACE_END);
    return count_resident(m, lo >> PAGE_SHIFT, page_up(hi) >> PAGE_SHIFT);
}

uint64_t sysmem_resident_total(const struct sysmem *m) { return m->resident_total; }
uint64_t sysmem_resident_brk(const struct sysmem *m) { return m->resident_brk; }
uint64_t sysmem_mapped_bytes(const struct sysmem *m) { return m->mapped; }
uint64_t sysmem_host_bytes(const struct sysmem *m) { return m->host_bytes; }

uint64_t sysmem_fault_count(const struct sysmem *m) { return m->faults; }
uint64_t sysmem_first_fault(const struct sysmem *m) { return m->first_fault; }
const char *sysmem_first_fault_reason(const struct sysmem *m) { return m->first_fault_reason; }

int sysmem_mapping_at(const struct sysmem *m, uint64_t addr, uint64_t *start, uint64_t *end,
                      int *prot) {
    const struct vma *n = vma_containing(m->vmas, addr);
    if (!n)
        return 0;
    if (start)
        *start = n->start;
    if (end)
        *end = n->end;
    if (prot)
        *prot = n->prot;
    return 1;
}

uint64_t sysmem_mapping_count(const struct sysmem *m) { return m->vma_count; }

static int vma_walk(const struct vma *t, int (*fn)(void *, uint64_t, uint64_t, int), void *ctx) {
    if (!t)
        return 0;
    int r = vma_walk(t->left, fn, ctx);
    if (r)
        return r;
    if ((r = fn(ctx, t->start, t->end, t->prot)))
        return r;
    return vma_walk(t->right, fn, ctx);
}

int sysmem_mappings(const struct sysmem *m,
                    int (*fn)(void *ctx, uint64_t start, uint64_t end, int prot), void *ctx) {
    return vma_walk(m->vmas, fn, ctx);
}
