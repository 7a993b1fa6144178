/* stats.c: mallinfo2 and the model's running statistics.
 *
 * mallinfo2 is glibc's int_mallinfo summed over the arena ring: top and fastbin and bin chunks
 * are free, everything else in system_mem is "in use" (the tcache included). The model does not
 * walk the lists for it: the chunk table keeps per-arena counts and bytes for every state, so
 * both mallinfo2 and ptmalloc_stats cost O(arenas): residency is read from sim_space's counters
 * (the break area, and one 64 MiB zone per heap), the largest free chunk from the size classes
 * and the binmap (plus a walk of the unsorted list after its largest chunk left it).
 */
#include "model.h"

#include <string.h>

void ptmalloc_mallinfo2(struct ptmalloc *pm, struct ptmalloc_mallinfo2 *mi)
{
    struct sysmem *m = pm->mem;
    memset(mi, 0, sizeof *mi);
    struct pm_arena *a = main_arena(pm);
    do {
        uint64_t fast = a->st_bytes[CS_FAST];
        uint64_t binned = a->st_bytes[CS_UNSORTED] + a->st_bytes[CS_SMALL] + a->st_bytes[CS_LARGE];
        uint64_t avail = top_size(m, a) + fast + binned;
        mi->smblks += a->st_count[CS_FAST];
        mi->ordblks += 1 + a->st_count[CS_UNSORTED] + a->st_count[CS_SMALL] + a->st_count[CS_LARGE];
        mi->fordblks += avail;
        mi->uordblks += a->system_mem - avail;
        mi->arena += a->system_mem;
        mi->fsmblks += fast;
        if (is_main(a)) {
            mi->hblks = pm->n_mmaps;
            mi->hblkhd = pm->mmapped_mem;
            mi->usmblks = 0;
            mi->keepcost = top_size(m, a);
        }
        a = a->next;
    } while (a != main_arena(pm));
}

/* Largest free chunk of an arena: top, the largest fastbin and tcache size classes (their
 * chunks are exactly that size), the first chunk of the highest non-empty bin (large bins are
 * sorted, largest first), and the unsorted list when its bound says it may beat them. */
static uint64_t largest_free_in(struct ptmalloc *pm, struct pm_arena *a, uint64_t top)
{
    struct sysmem *m = pm->mem;
    uint64_t best = top;
    if (a->fmap) {
        uint64_t s = MINSIZE + 16 * (uint64_t)(31 - __builtin_clz(a->fmap));
        if (s > best)
            best = s;
    }
    if (a->tc_map) {
        uint64_t s = MINSIZE + 16 * (uint64_t)(63 - __builtin_clzll(a->tc_map));
        if (s > best)
            best = s;
    }
    /* Every non-empty bin has its binmap bit set (bits are only cleared lazily), so only the
     * set bits need looking at, from the largest bin down. */
    for (int block = BINMAPSIZE - 1, found = 0; block >= 0 && !found; block--) {
        uint32_t map = a->binmap[block];
        while (map) {
            unsigned i = (unsigned)block * 32 + 31 - (unsigned)__builtin_clz(map);
            map &= ~(1u << (i & 31));
            uint64_t bin = bin_at(a, i);
            uint64_t first = FD(m, a, bin);
            if (first != bin) {
                uint64_t s = chunk_size(m, first);
                if (s > best)
                    best = s;
                found = 1;
                break;
            }
        }
    }
    if (a->st_count[CS_UNSORTED] == 0) {
        a->unsorted_max = 0;
        a->unsorted_exact = 1;
    } else if (a->unsorted_exact) {
        if (a->unsorted_max > best)
            best = a->unsorted_max;
    } else if (a->unsorted_max > best) {
        uint64_t ub = unsorted_bin(a), umax = 0;
        for (uint64_t p = FD(m, a, ub); p != ub; p = FD(m, a, p)) {
            uint64_t s = chunk_size(m, p);
            if (s > umax)
                umax = s;
        }
        a->unsorted_max = umax;
        a->unsorted_exact = 1;
        if (umax > best)
            best = umax;
    }
    return best;
}

/* Resident bytes of an arena's own memory: the break area and any mmap fallback segments for
 * the main arena; for another arena its heaps, each a heap_max_size-aligned reservation of its
 * own (nothing else is ever mapped inside), which sim_space counts in O(1). */
static uint64_t arena_resident(struct ptmalloc *pm, struct pm_arena *a)
{
    struct sysmem *m = pm->mem;
    if (is_main(a)) {
        uint64_t pages = sysmem_resident_brk(m);
        uint64_t bs = sysmem_brk_start(m), be = sysmem_brk_current(m);
        for (uint32_t i = 0; i < pm->nsegs; i++) {
            struct pm_seg *s = &pm->segs[i];
            if (s->end <= bs || s->start >= be)   /* an mmap fallback segment */
                pages += sysmem_resident_pages(m, ALIGN_DOWN(s->start, PAGESIZE),
                                               ALIGN_UP(s->end, PAGESIZE));
        }
        return pages * PAGESIZE;
    }
    uint64_t pages = 0, max = heap_max_size(pm);
    uint64_t first = heap_for_ptr(pm, a->base);
    uint64_t h = heap_for_ptr(pm, a->top);
    for (int guard = 0; h && guard < 1 << 20; guard++) {
        pages += sysmem_resident_pages(m, h, h + max);
        if (h == first)
            break;
        h = mem_ld(m, h + HI_PREV);
    }
    return pages * PAGESIZE;
}

/* One arena's figures added into st. */
static void add_arena(struct ptmalloc *pm, struct pm_arena *a, uint64_t resident,
                      struct ptmalloc_stats *st)
{
    st->system_bytes += a->system_mem;
    st->in_use_bytes += a->st_bytes[CS_USER] + a->st_bytes[CS_INTERNAL];
    st->in_use_count += a->st_count[CS_USER] + a->st_count[CS_INTERNAL];
    uint64_t top = top_size(pm->mem, a);
    st->top_bytes += top;
    st->tcache_count += a->st_count[CS_TCACHE];
    st->tcache_bytes += a->st_bytes[CS_TCACHE];
    st->fastbin_count += a->st_count[CS_FAST];
    st->fastbin_bytes += a->st_bytes[CS_FAST];
    st->unsorted_count += a->st_count[CS_UNSORTED];
    st->unsorted_bytes += a->st_bytes[CS_UNSORTED];
    st->small_count += a->st_count[CS_SMALL];
    st->small_bytes += a->st_bytes[CS_SMALL];
    st->large_count += a->st_count[CS_LARGE];
    st->large_bytes += a->st_bytes[CS_LARGE];
    uint64_t lf = largest_free_in(pm, a, top);
    if (lf > st->largest_free)
        st->largest_free = lf;
    st->resident_bytes += resident;
    st->arena_count++;
}

void ptmalloc_stats_arena(struct ptmalloc *pm, uint32_t arena, struct ptmalloc_stats *st)
{
    memset(st, 0, sizeof *st);
    if (arena < pm->arena_count) {
        struct pm_arena *a = pm->arenas[arena];
        add_arena(pm, a, arena_resident(pm, a), st);
    }
}

void ptmalloc_stats(struct ptmalloc *pm, int arena, struct ptmalloc_stats *st)
{
    memset(st, 0, sizeof *st);
    uint64_t heap_resident_all = 0;
    for (uint32_t i = 0; i < pm->arena_count; i++) {
        struct pm_arena *a = pm->arenas[i];
        uint64_t res = arena_resident(pm, a);
        heap_resident_all += res;
        if (arena < 0 || (uint32_t)arena == i)
            add_arena(pm, a, res, st);
    }
    st->mmapped_count = pm->n_mmaps;
    st->mmapped_bytes = pm->mmapped_mem;
    uint64_t total = sysmem_resident_total(pm->mem) * PAGESIZE;
    st->mmapped_resident_bytes = total > heap_resident_all ? total - heap_resident_all : 0;
}
