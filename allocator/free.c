/* free.c: _int_free, munmap_chunk and the public free of a validated chunk.
 *
 * A freed heap chunk goes, in this order, to the calling thread's tcache (when its bin has
 * room), to a fastbin (size <= max_fast; stays "in use" to its neighbours), or is coalesced with
 * free neighbours and put at the head of the unsorted list or merged into top. A coalesced size
 * of 64 KiB or more consolidates the fastbins and then trims: systrim in the main arena when top
 * reaches trim_threshold, heap_trim always in other arenas. mmapped chunks are unmapped, after
 * the dynamic mmap threshold rule.
 *
 * Callers have validated the pointer against the chunk table (ptmalloc.c), so glibc's abort
 * checks cannot fire here.
 */
#include "model.h"

static void free_perturb(struct ptmalloc *pm, uint64_t mem, uint64_t n)
{
    if (pm->perturb)
        pm_touch(pm, mem, n);
}

void munmap_chunk(struct ptmalloc *pm, uint64_t p)
{
    struct sysmem *m = pm->mem;
    uint64_t size = chunk_size(m, p);
    uint64_t prev = chunk_prev_size(m, p);
    uint64_t block = p - prev;
    uint64_t total = prev + size;
    struct cm_entry *e = cm_find(&pm->map, p);
    uint32_t arena = e ? cm_arena(e->val) : 0;
    chunk_forget(pm, p);
    pm->n_mmaps--;
    pm->mmapped_mem -= total;
    pm_munmap(pm, arena, block, total);
}

/* e, when not NULL, is p's chunk table entry (it gives the size without a load and saves the
 * lookups of the tcache and fastbin paths). */
void int_free_e(struct ptmalloc *pm, struct pm_arena *av, uint64_t p, struct cm_entry *e)
{
    struct sysmem *m = pm->mem;
    uint64_t size = e ? cm_size(e->val) : chunk_size(m, p);
    struct pm_thread *t = pm->cur;

    if (t && t->tcache) {
        uint64_t tc_idx = csize2tidx(size);
        if (tc_idx < pm->tcache_bins && t->counts[tc_idx] < pm->tcache_count) {
            if (e)
                tcache_put_entry(pm, t, p, e, tc_idx, 0);
            else
                tcache_put(pm, t, p, size, av->index, tc_idx);
            return;
        }
    }

    if (size <= pm->max_fast) {
        free_perturb(pm, p + 16, size - 16);
        av->have_fastchunks = 1;
        unsigned idx = fastbin_index(size);
        fastbin_push(m, av, idx, p);
        if (e && cm_arena(e->val) == av->index) {
            uint64_t v = e->val;
            st_leave(av, cm_state(v), size);
            st_enter(av, CS_FAST, size);
            e->val = (v & ~(uint64_t)15) | CS_FAST;
        } else {
            chunk_note(pm, p, size, av->index, CS_FAST);
        }
        return;
    }

    uint64_t p_prev, p_head;
    sysmem_load_pair(m, p, &p_prev, &p_head);
    if (p_head & IS_MMAPPED) {
        munmap_chunk(pm, p);
        return;
    }

    uint64_t nextchunk = p + size;
    uint64_t nexthead = chunk_head(m, nextchunk);
    uint64_t nextsize = nexthead & ~(uint64_t)SIZE_BITS;
    free_perturb(pm, p + 16, size - 16);

    if (!(p_head & PREV_INUSE)) {
        uint64_t prevsize = p_prev;
        size += prevsize;
        chunk_forget(pm, p);
        p -= prevsize;
        unlink_chunk(pm, av, p);
    }

    if (nextchunk != av->top) {
        int nextinuse = inuse_bit_at(m, nextchunk, nextsize);
        if (!nextinuse) {
            unlink_chunk(pm, av, nextchunk);
            chunk_forget(pm, nextchunk);
            size += nextsize;
        } else {
            /* nothing since wrote that header word (the unlink above touched other words) */
            set_head(m, nextchunk, nexthead & ~(uint64_t)PREV_INUSE);
        }
        unsorted_push_front(pm, av, p, size);   /* sets head and foot */
    } else {
        size += nextsize;
        set_head(m, p, size | PREV_INUSE);
        av->top = p;
        chunk_forget(pm, p);
    }

    if (size >= FASTBIN_CONSOLIDATION_THRESHOLD) {
        if (av->have_fastchunks)
            malloc_consolidate(pm, av);
        if (is_main(av)) {
            if (top_size(m, av) >= pm->trim_threshold)
                systrim(pm, pm->top_pad, av);
        } else {
            heap_trim(pm, av, heap_for_ptr(pm, av->top), pm->top_pad);
        }
    }
}

void int_free(struct ptmalloc *pm, struct pm_arena *av, uint64_t p)
{
    int_free_e(pm, av, p, 0);
}

void libc_free_chunk(struct ptmalloc *pm, uint64_t p)
{
    struct sysmem *m = pm->mem;
    uint64_t head = chunk_head(m, p);
    if (head & IS_MMAPPED) {
        if (!pm->no_dyn_threshold && head > pm->mmap_threshold && head <= DEFAULT_MMAP_THRESHOLD_MAX) {
            pm->mmap_threshold = head & ~(uint64_t)SIZE_BITS;
            pm->trim_threshold = 2 * pm->mmap_threshold;
            pm_event(pm, PTM_EV_THRESHOLD_RAISED, 0, p, pm->mmap_threshold);
        }
        munmap_chunk(pm, p);
        return;
    }
    maybe_init_tcache(pm, pm->cur);
    struct cm_entry *e = cm_find(&pm->map, p);
    struct pm_arena *av = (head & NON_MAIN_ARENA) && e ? pm->arenas[cm_arena(e->val)] : main_arena(pm);
    int_free(pm, av, p);
}
