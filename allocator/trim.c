/* trim.c: giving memory back: systrim (shrink the break under a large top) and mtrim
 * (malloc_trim: consolidate, MADV_DONTNEED the whole free pages inside chunks of the unsorted
 * list and of bins >= bin_index(4096), then systrim in the main arena).
 *
 * The arithmetic is glibc's, signed and unsigned mixed the same way (for instance a 32-byte top
 * and pad 0 make malloc_trim grow the break by a page, as glibc does).
 */
#include "model.h"

int systrim(struct ptmalloc *pm, uint64_t pad, struct pm_arena *av)
{
    struct sysmem *m = pm->mem;
    uint64_t tsize = top_size(m, av);
    int64_t top_area = (int64_t)tsize - MINSIZE - 1;
    if ((uint64_t)top_area <= pad)
        return 0;
    uint64_t ps = pm->thp_pagesize ? pm->thp_pagesize : PAGESIZE;
    int64_t extra = (int64_t)(((uint64_t)top_area - pad) & ~(ps - 1));
    if (extra == 0)
        return 0;
    uint64_t current_brk = pm_sbrk(pm, 0);
    if (current_brk != SYSMEM_FAIL && current_brk == av->top + tsize) {
        pm_sbrk(pm, -extra);
        uint64_t new_brk = pm_sbrk(pm, 0);
        if (new_brk != SYSMEM_FAIL) {
            int64_t released = (int64_t)(current_brk - new_brk);
            if (released != 0) {
                av->system_mem -= (uint64_t)released;
                set_head(m, av->top, (tsize - (uint64_t)released) | PREV_INUSE);
                pm_seg_extend(pm, current_brk, new_brk);
                pm_event(pm, PTM_EV_TRIM, av->index, new_brk, (uint64_t)released);
                return 1;
            }
        }
    }
    return 0;
}

int mtrim(struct ptmalloc *pm, struct pm_arena *av, uint64_t pad)
{
    struct sysmem *m = pm->mem;
    malloc_consolidate(pm, av);
    const uint64_t ps = PAGESIZE, psm1 = PAGESIZE - 1;
    unsigned psindex = bin_index(ps);
    int result = 0;
    for (unsigned i = 1; i < NBINS; i++) {
        if (i != 1 && i < psindex)
            continue;
        uint64_t bin = bin_at(av, i);
        for (uint64_t p = BK(m, av, bin); p != bin; p = BK(m, av, p)) {
            uint64_t size = chunk_size(m, p);
            if (size > psm1 + 48) {
                uint64_t paligned = (p + 48 + psm1) & ~psm1;
                size -= paligned - p;
                if (size > psm1) {
                    uint64_t len = size & ~psm1;
                    sysmem_madvise_dontneed(m, paligned, len);
                    pm_event(pm, PTM_EV_MADVISE, av->index, paligned, len);
                    result = 1;
                }
            }
        }
    }
    return result | (is_main(av) ? systrim(pm, pad, av) : 0);
}
