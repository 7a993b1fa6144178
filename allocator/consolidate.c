/* consolidate.c: malloc_consolidate, which empties every fastbin of an arena.
 *
 * Fastbins 0..9 are taken in turn (the non-empty ones, from the host-side map), each from its
 * head; every chunk is merged with free neighbours (backward, then forward unless the next chunk
 * is top) and the result goes to the head of the unsorted list, or into top. Runs from large requests, the top-too-small path of
 * _int_malloc, big frees, malloc_trim and every mallopt call.
 */
#include "model.h"

void malloc_consolidate(struct ptmalloc *pm, struct pm_arena *av)
{
    struct sysmem *m = pm->mem;
    int any = 0;
    av->have_fastchunks = 0;
    /* the non-empty fastbins in glibc's order, 0 up (nothing here pushes onto a fastbin) */
    for (uint32_t map = av->fmap; map; map &= map - 1) {
        unsigned i = (unsigned)__builtin_ctz(map);
        uint64_t p;
        while ((p = fastbin_pop(av, i)) != 0) {
            any = 1;
            uint64_t p_prev, p_head;
            sysmem_load_pair(m, p, &p_prev, &p_head);
            uint64_t size = p_head & ~(uint64_t)SIZE_BITS;
            uint64_t nextchunk = p + size;
            uint64_t nexthead = chunk_head(m, nextchunk);
            uint64_t nextsize = nexthead & ~(uint64_t)SIZE_BITS;

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
                    size += nextsize;
                    unlink_chunk(pm, av, nextchunk);
                    chunk_forget(pm, nextchunk);
                } else {
                    set_head(m, nextchunk, nexthead & ~(uint64_t)PREV_INUSE);
                }
                unsorted_push_front(pm, av, p, size);   /* sets head and foot */
            } else {
                size += nextsize;
                set_head(m, p, size | PREV_INUSE);
                av->top = p;
                chunk_forget(pm, p);
            }
        }
    }
    if (any)
        pm_event(pm, PTM_EV_CONSOLIDATE, av->index, 0, 0);
}
