/* bins.c: the doubly linked bins of an arena: unlink, unsorted insertion, filing a chunk into its
 * small or large bin (large bins sorted by size with the fd_nextsize/bk_nextsize skip list), the
 * binmap, and the initial state of a malloc_state.
 *
 * The link manipulations follow glibc 2.36 step for step, because their order decides where a
 * chunk sits in its list and therefore which chunk a later request gets. Each filing also
 * records the chunk's new state in the chunk table.
 */
#include "model.h"

#include <stdlib.h>

void fastbin_push(struct sysmem *m, struct pm_arena *av, unsigned idx, uint64_t p)
{
    uint32_t n = av->fcount[idx];
    if (n == av->fcap[idx]) {
        uint32_t cap = n ? n * 2 : 16;
        uint64_t *s = realloc(av->fstk[idx], cap * sizeof *s);
        if (!s)
            abort();   /* host out of memory: the model cannot continue consistently */
        av->fstk[idx] = s;
        av->fcap[idx] = cap;
    }
    mem_st(m, p + 16, protect_ptr(p + 16, av->fastbins[idx]));
    av->fstk[idx][n] = p;
    av->fcount[idx] = n + 1;
    av->fmap |= 1u << idx;
    av->fastbins[idx] = p;
}

void arena_init_state(struct ptmalloc *pm, struct pm_arena *av)
{
    for (unsigned i = 1; i < NBINS; i++) {
        uint64_t b = bin_at(av, i);
        av->bins[(i - 1) * 2] = b;
        av->bins[(i - 1) * 2 + 1] = b;
    }
    for (int i = 0; i < NFASTBINS; i++) {
        av->fastbins[i] = 0;
        av->fcount[i] = 0;
    }
    av->fmap = 0;
    for (int i = 0; i < BINMAPSIZE; i++)
        av->binmap[i] = 0;
    av->noncontiguous = av->index != 0;
    av->have_fastchunks = 0;
    av->top = unsorted_bin(av);
    av->last_remainder = 0;
    if (!is_main(av)) {
        /* malloc_init_state writes the bins, flags, have_fastchunks and top in the heap. */
        struct sysmem *m = pm->mem;
        for (unsigned i = 0; i < NBIN_WORDS; i++)
            mem_st(m, av->binfield0 + 8ull * i, av->bins[i]);
        mem_st(m, av->base, (uint64_t)2 << 32);   /* mutex 0, flags NONCONTIGUOUS */
        mem_st(m, av->base + MS_HAVE_FAST, 0);
        mem_st(m, av->base + MS_TOP, av->top);
    }
}

void unlink_chunk(struct ptmalloc *pm, struct pm_arena *av, uint64_t p)
{
    struct sysmem *m = pm->mem;
    uint64_t fd = FD(m, av, p);
    uint64_t bk = BK(m, av, p);
    SET_BK(m, av, fd, bk);
    SET_FD(m, av, bk, fd);
    if (!in_smallbin_range(chunk_head(m, p)) && FD_NS(m, av, p) != 0) {
        uint64_t p_fdns = FD_NS(m, av, p);
        uint64_t p_bkns = BK_NS(m, av, p);
        if (FD_NS(m, av, fd) == 0) {
            if (p_fdns == p) {
                SET_FD_NS(m, av, fd, fd);
                SET_BK_NS(m, av, fd, fd);
            } else {
                SET_FD_NS(m, av, fd, p_fdns);
                SET_BK_NS(m, av, fd, p_bkns);
                SET_BK_NS(m, av, p_fdns, fd);
                SET_FD_NS(m, av, p_bkns, fd);
            }
        } else {
            SET_BK_NS(m, av, p_fdns, p_bkns);
            SET_FD_NS(m, av, p_bkns, p_fdns);
        }
    }
}

/* Puts a free chunk (header and footer already set by the caller or set here) at the head of
 * the unsorted list, as _int_free and the split paths of _int_malloc do. */
void unsorted_push_front(struct ptmalloc *pm, struct pm_arena *av, uint64_t p, uint64_t size)
{
    struct sysmem *m = pm->mem;
    uint64_t bck = unsorted_bin(av);
    uint64_t fwd = FD(m, av, bck);
    SET_BK(m, av, p, bck);
    SET_FD(m, av, p, fwd);
    SET_FD(m, av, bck, p);
    SET_BK(m, av, fwd, p);
    if (!in_smallbin_range(size)) {
        SET_FD_NS(m, av, p, 0);
        SET_BK_NS(m, av, p, 0);
    }
    chunk_note(pm, p, size, av->index, CS_UNSORTED);
}

/* The "place chunk in bin" step of the unsorted scan: victim (already off the unsorted list,
 * head = size | PREV_INUSE) goes into its small bin at the head or into its large bin in
 * descending size order, equal sizes going second. */
void bin_file(struct ptmalloc *pm, struct pm_arena *av, uint64_t victim, uint64_t size)
{
    struct sysmem *m = pm->mem;
    unsigned victim_index;
    uint64_t bck, fwd;
    if (in_smallbin_range(size)) {
        victim_index = smallbin_index(size);
        bck = bin_at(av, victim_index);
        fwd = FD(m, av, bck);
        chunk_note(pm, victim, size, av->index, CS_SMALL);
    } else {
        victim_index = largebin_index(size);
        bck = bin_at(av, victim_index);
        fwd = FD(m, av, bck);
        if (fwd != bck) {
            uint64_t sz = size | PREV_INUSE;
            uint64_t last = BK(m, av, bck);
            if (sz < chunk_head(m, last)) {
                fwd = bck;
                bck = last;
                uint64_t first = FD(m, av, fwd);
                SET_FD_NS(m, av, victim, first);
                SET_BK_NS(m, av, victim, BK_NS(m, av, first));
                uint64_t vbk = BK_NS(m, av, victim);
                SET_BK_NS(m, av, first, victim);
                SET_FD_NS(m, av, vbk, victim);
            } else {
                while (sz < chunk_head(m, fwd))
                    fwd = FD_NS(m, av, fwd);
                if (sz == chunk_head(m, fwd)) {
                    fwd = FD(m, av, fwd);
                } else {
                    SET_FD_NS(m, av, victim, fwd);
                    SET_BK_NS(m, av, victim, BK_NS(m, av, fwd));
                    SET_BK_NS(m, av, fwd, victim);
                    SET_FD_NS(m, av, BK_NS(m, av, victim), victim);
                }
                bck = BK(m, av, fwd);
            }
        } else {
            SET_FD_NS(m, av, victim, victim);
            SET_BK_NS(m, av, victim, victim);
        }
        chunk_note(pm, victim, size, av->index, CS_LARGE);
    }
    mark_bin(av, victim_index);
    SET_BK(m, av, victim, bck);
    SET_FD(m, av, victim, fwd);
    SET_BK(m, av, fwd, victim);
    SET_FD(m, av, bck, victim);
}
