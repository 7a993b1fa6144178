/* sysmalloc.c: getting memory from the system when top is too small (glibc's sysmalloc).
 *
 * Requests at or above mmap_threshold (while fewer than mmap_max are mapped) get their own
 * mapping. Otherwise the main arena grows the break by nb + top_pad + MINSIZE (minus a
 * contiguous old top), page-rounded; a first or non-contiguous break gets the alignment /
 * page-end correction with a second sbrk, and an old top that cannot be extended is fenced with
 * two 16-byte fenceposts and freed. A failed sbrk falls back to an mmap (rounded to 1 MiB with
 * the old top while the arena was contiguous, see sysmalloc_mmap_fallback) and makes the arena
 * non-contiguous. Other arenas grow their current heap, or start a new heap
 * (fencing the old top the same way), or fall back to mmap.
 *
 * Also here: the sysmem wrappers that report events, and the main arena's segment list.
 */
#include "model.h"

#include <stdlib.h>

uint64_t pm_sbrk(struct ptmalloc *pm, int64_t incr)
{
    if (pm->always_fail_morecore)
        return SYSMEM_FAIL;
    uint64_t r = sysmem_sbrk(pm->mem, incr);
    if (r != SYSMEM_FAIL && incr > 0)
        pm_event(pm, PTM_EV_SBRK_GROW, 0, r, (uint64_t)incr);
    else if (r != SYSMEM_FAIL && incr < 0)
        pm_event(pm, PTM_EV_SBRK_SHRINK, 0, r + (uint64_t)incr, (uint64_t)(-incr));
    return r;
}

uint64_t pm_mmap(struct ptmalloc *pm, uint32_t arena, uint64_t hint, uint64_t len, int prot)
{
    uint64_t r = sysmem_mmap(pm->mem, hint, len, prot);
    if (r != SYSMEM_FAIL && prot != SYSMEM_PROT_NONE)
        pm_event(pm, PTM_EV_MMAP, arena, r, len);
    return r;
}

int pm_munmap(struct ptmalloc *pm, uint32_t arena, uint64_t addr, uint64_t len)
{
    int r = sysmem_munmap(pm->mem, addr, len);
    if (r == 0)
        pm_event(pm, PTM_EV_MUNMAP, arena, addr, len);
    return r;
}

void pm_seg_add(struct ptmalloc *pm, uint64_t start, uint64_t end)
{
    if (pm->nsegs == pm->segs_cap) {
        uint32_t cap = pm->segs_cap ? pm->segs_cap * 2 : 8;
        struct pm_seg *n = realloc(pm->segs, cap * sizeof *n);
        if (!n)
            return;
        pm->segs = n;
        pm->segs_cap = cap;
    }
    pm->segs[pm->nsegs].start = start;
    pm->segs[pm->nsegs].end = end;
    pm->nsegs++;
}

void pm_seg_extend(struct ptmalloc *pm, uint64_t old_end, uint64_t new_end)
{
    for (uint32_t i = pm->nsegs; i-- > 0;)
        if (pm->segs[i].end == old_end) {
            pm->segs[i].end = new_end;
            return;
        }
}

static uint64_t sysmalloc_mmap(struct ptmalloc *pm, uint64_t nb, struct pm_arena *av)
{
    struct sysmem *m = pm->mem;
    uint64_t size = ALIGN_UP(nb + SIZE_SZ, PAGESIZE);
    if (size <= nb)
        return SYSMEM_FAIL;
    uint32_t ai = av ? av->index : 0;
    uint64_t mm = pm_mmap(pm, ai, 0, size, SYSMEM_PROT_RW);
    if (mm == SYSMEM_FAIL)
        return mm;
    set_prev_size(m, mm, 0);
    set_head(m, mm, size | IS_MMAPPED);
    pm->n_mmaps++;
    if (pm->n_mmaps > pm->max_n_mmaps)
        pm->max_n_mmaps = pm->n_mmaps;
    pm->mmapped_mem += size;
    if (pm->mmapped_mem > pm->max_mmapped_mem)
        pm->max_mmapped_mem = pm->mmapped_mem;
    chunk_note(pm, mm, size, ai, CS_MMAPPED);
    return mm + 16;
}

/* glibc 2.36 calls this with its minsize and pagesize arguments swapped: the mapping is at
 * least one page, and a contiguous arena rounds (size + old top) up to 1 MiB. */
static uint64_t sysmalloc_mmap_fallback(struct ptmalloc *pm, int64_t *s, uint64_t nb,
                                        uint64_t old_size, uint64_t minsize, uint64_t align,
                                        struct pm_arena *av)
{
    uint64_t size = (uint64_t)*s;
    if (!av->noncontiguous)
        size = ALIGN_UP(size + old_size, align);
    if (size < minsize)
        size = minsize;
    if (size <= nb)
        return SYSMEM_FAIL;
    uint64_t mbrk = pm_mmap(pm, av->index, 0, size, SYSMEM_PROT_RW);
    if (mbrk == SYSMEM_FAIL)
        return SYSMEM_FAIL;
    av->noncontiguous = 1;
    *s = (int64_t)size;
    return mbrk;
}

static void sysmalloc_main(struct ptmalloc *pm, uint64_t nb, struct pm_arena *av,
                           uint64_t old_top, uint64_t old_size, uint64_t old_end)
{
    struct sysmem *m = pm->mem;
    uint64_t brk = SYSMEM_FAIL, snd_brk = SYSMEM_FAIL;
    uint64_t usize = nb + pm->top_pad + MINSIZE;
    if (!av->noncontiguous)
        usize -= old_size;
    if (pm->thp_pagesize) {
        uint64_t cur = sysmem_brk_current(m);
        usize = ALIGN_UP(cur + usize, pm->thp_pagesize) - cur;
    } else {
        usize = ALIGN_UP(usize, PAGESIZE);
    }
    int64_t size = (int64_t)usize;
    if (size > 0)
        brk = pm_sbrk(pm, size);
    if (brk == SYSMEM_FAIL) {
        uint64_t mbrk = sysmalloc_mmap_fallback(pm, &size, nb, old_size, PAGESIZE,
                                                MMAP_AS_MORECORE_SIZE, av);
        if (mbrk != SYSMEM_FAIL) {
            brk = mbrk;
            snd_brk = brk + (uint64_t)size;
        }
    }
    if (brk == SYSMEM_FAIL)
        return;
    if (pm->sbrk_base == 0)
        pm->sbrk_base = brk;
    av->system_mem += (uint64_t)size;

    if (brk == old_end && snd_brk == SYSMEM_FAIL) {
        set_head(m, old_top, ((uint64_t)size + old_size) | PREV_INUSE);
        pm_seg_extend(pm, old_end, old_end + (uint64_t)size);
        return;
    }
    /* (A contiguous arena whose break moved below its top would abort in glibc; sysmem never
     * moves the break behind our back.) */
    uint64_t correction = 0, aligned_brk = brk;
    if (!av->noncontiguous) {
        if (old_size)
            av->system_mem += brk - old_end;
        uint64_t front_misalign = (brk + CHUNK_HDR_SZ) & MALLOC_ALIGN_MASK;
        if (front_misalign > 0) {
            correction = MALLOC_ALIGNMENT - front_misalign;
            aligned_brk += correction;
        }
        correction += old_size;
        uint64_t end_misalign = brk + (uint64_t)size + correction;
        correction += ALIGN_UP(end_misalign, PAGESIZE) - end_misalign;
        snd_brk = pm_sbrk(pm, (int64_t)correction);
        if (snd_brk == SYSMEM_FAIL) {
            correction = 0;
            snd_brk = pm_sbrk(pm, 0);
        }
    } else {
        if (snd_brk == SYSMEM_FAIL)
            snd_brk = pm_sbrk(pm, 0);
    }
    if (snd_brk == SYSMEM_FAIL)
        return;
    av->top = aligned_brk;
    set_head(m, av->top, (snd_brk - aligned_brk + correction) | PREV_INUSE);
    av->system_mem += correction;
    pm_seg_add(pm, aligned_brk, snd_brk + correction);
    if (old_size != 0) {
        old_size = (old_size - 2 * CHUNK_HDR_SZ) & ~(uint64_t)MALLOC_ALIGN_MASK;
        set_head(m, old_top, old_size | PREV_INUSE);
        set_head(m, old_top + old_size, CHUNK_HDR_SZ | PREV_INUSE);
        set_head(m, old_top + old_size + CHUNK_HDR_SZ, CHUNK_HDR_SZ | PREV_INUSE);
        if (old_size >= MINSIZE) {
            chunk_note(pm, old_top, old_size, av->index, CS_INTERNAL);
            int_free(pm, av, old_top);
        }
    }
}

static uint64_t sysmalloc_nonmain(struct ptmalloc *pm, uint64_t nb, struct pm_arena *av,
                                  uint64_t old_top, uint64_t old_size, int tried_mmap)
{
    struct sysmem *m = pm->mem;
    uint64_t old_heap = heap_for_ptr(pm, old_top);
    uint64_t old_heap_size = mem_ld(m, old_heap + HI_SIZE);
    uint64_t heap;
    if ((int64_t)(MINSIZE + nb - old_size) > 0 && grow_heap(pm, av, old_heap, (int64_t)(MINSIZE + nb - old_size)) == 0) {
        uint64_t hs = mem_ld(m, old_heap + HI_SIZE);
        av->system_mem += hs - old_heap_size;
        set_head(m, old_top, (old_heap + hs - old_top) | PREV_INUSE);
    } else if ((heap = new_heap(pm, av->index, nb + (MINSIZE + HEAP_INFO_SIZE), pm->top_pad)) != 0) {
        mem_st(m, heap + HI_AR_PTR, av->base);
        mem_st(m, heap + HI_PREV, old_heap);
        uint64_t hs = mem_ld(m, heap + HI_SIZE);
        av->system_mem += hs;
        av->top = heap + HEAP_INFO_SIZE;
        set_head(m, av->top, (hs - HEAP_INFO_SIZE) | PREV_INUSE);
        old_size = (old_size - MINSIZE) & ~(uint64_t)MALLOC_ALIGN_MASK;
        set_head(m, old_top + old_size + CHUNK_HDR_SZ, 0 | PREV_INUSE);
        if (old_size >= MINSIZE) {
            set_head(m, old_top + old_size, CHUNK_HDR_SZ | PREV_INUSE);
            set_foot(m, old_top + old_size, CHUNK_HDR_SZ);
            set_head(m, old_top, old_size | PREV_INUSE | NON_MAIN_ARENA);
            chunk_note(pm, old_top, old_size, av->index, CS_INTERNAL);
            int_free(pm, av, old_top);
        } else {
            set_head(m, old_top, (old_size + CHUNK_HDR_SZ) | PREV_INUSE);
            set_foot(m, old_top, old_size + CHUNK_HDR_SZ);
        }
    } else if (!tried_mmap) {
        uint64_t mm = sysmalloc_mmap(pm, nb, av);
        if (mm != SYSMEM_FAIL)
            return mm;
    }
    return 0;
}

uint64_t sysmalloc(struct ptmalloc *pm, uint64_t nb, struct pm_arena *av)
{
    struct sysmem *m = pm->mem;
    int tried_mmap = 0;
    if (!av || (nb >= pm->mmap_threshold && (int64_t)pm->n_mmaps < (int64_t)pm->n_mmaps_max)) {
        /* With hugetlb >= 2 glibc first tries MAP_HUGETLB; the simulated system has no huge
         * page pool, so that attempt always fails and the ordinary mapping follows. */
        uint64_t mm = sysmalloc_mmap(pm, nb, av);
        if (mm != SYSMEM_FAIL)
            return mm;
        tried_mmap = 1;
    }
    if (!av)
        return 0;

    uint64_t old_top = av->top;
    uint64_t old_size = top_size(m, av);
    uint64_t old_end = old_top + old_size;

    if (!is_main(av)) {
        uint64_t mm = sysmalloc_nonmain(pm, nb, av, old_top, old_size, tried_mmap);
        if (mm)
            return mm;
    } else {
        sysmalloc_main(pm, nb, av, old_top, old_size, old_end);
    }
    if (av->system_mem > av->max_system_mem)
        av->max_system_mem = av->system_mem;

    uint64_t p = av->top;
    uint64_t size = top_size(m, av);
    if (size >= nb + MINSIZE) {
        uint64_t remainder_size = size - nb;
        uint64_t remainder = p + nb;
        av->top = remainder;
        set_head(m, p, nb | PREV_INUSE | (is_main(av) ? 0 : NON_MAIN_ARENA));
        set_head(m, remainder, remainder_size | PREV_INUSE);
        chunk_note(pm, p, nb, av->index, pm->ret_state);
        return p + 16;
    }
    return 0;
}
