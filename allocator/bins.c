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
#include <string.h>

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

/* ---- the large bins' skip lists, host side ---- */

static void lb_insert(struct pm_arena *av, unsigned idx, uint32_t pos, uint64_t size, uint64_t first)
{
    struct lb_list *l = &av->lb[idx - NSMALLBINS];
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 8;
        struct lb_group *g = realloc(l->g, cap * sizeof *g);
        if (!g)
            abort();   /* host out of memory: the model cannot continue consistently */
        l->g = g;
        l->cap = cap;
    }
    memmove(&l->g[pos + 1], &l->g[pos], (l->n - pos) * sizeof *l->g);
    l->g[pos].size = size;
    l->g[pos].first = first;
    l->n++;
}

/* The group of chunks of exactly `size` in large bin idx (it exists). */
static uint32_t lb_find(const struct pm_arena *av, unsigned idx, uint64_t size)
{
    return lb_first_not_larger(&av->lb[idx - NSMALLBINS], size);
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
    for (int i = 0; i < NLARGEBINS; i++)
        av->lb[i].n = 0;
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
    /* p and the nextsize neighbours are chunks; fd and bk may be bin headers. p's words are
     * read up front, in one lookup when one block holds them (the two stores that follow
     * cannot reach them). */
    uint64_t head, fd, bk, p_fdns = 0, p_bkns = 0;
    const uint64_t *w = sysmem_span(m, p + 8, 5);
    if (w) {
        head = w[0];
        fd = w[1];
        bk = w[2];
        p_fdns = w[3];
        p_bkns = w[4];
    } else {
        head = chunk_head(m, p);
        sysmem_load_pair(m, p + 16, &fd, &bk);
        if (!in_smallbin_range(head)) {
            p_fdns = CFD_NS(m, p);
            if (p_fdns)
                p_bkns = CBK_NS(m, p);
        }
    }
    SET_BK(m, av, fd, bk);
    SET_FD(m, av, bk, fd);
    if (!in_smallbin_range(head) && p_fdns != 0) {
        /* p heads its size's group in a large bin: fd takes its place, or the group goes */
        uint64_t size = head & ~(uint64_t)SIZE_BITS;
        unsigned idx = largebin_index(size);
        uint32_t pos = lb_find(av, idx, size);
        if (FD_NS(m, av, fd) == 0) {
            av->lb[idx - NSMALLBINS].g[pos].first = fd;
            if (p_fdns == p) {
                SET_FD_NS(m, av, fd, fd);
                SET_BK_NS(m, av, fd, fd);
            } else {
                SET_FD_NS(m, av, fd, p_fdns);
                SET_BK_NS(m, av, fd, p_bkns);
                CSET_BK_NS(m, p_fdns, fd);
                CSET_FD_NS(m, p_bkns, fd);
            }
        } else {
            struct lb_list *l = &av->lb[idx - NSMALLBINS];
            memmove(&l->g[pos], &l->g[pos + 1], (l->n - pos - 1) * sizeof *l->g);
            l->n--;
            CSET_BK_NS(m, p_fdns, p_bkns);
            CSET_FD_NS(m, p_bkns, p_fdns);
        }
    }
}

/* Puts a free chunk at the head of the unsorted list and sets its head (size | PREV_INUSE) and
 * foot, as _int_free and malloc_consolidate do (glibc links it first; no word overlaps). */
void unsorted_push_front(struct ptmalloc *pm, struct pm_arena *av, uint64_t p, uint64_t size)
{
    struct sysmem *m = pm->mem;
    uint64_t bck = unsorted_bin(av);
    uint64_t fwd = *bin_fd_slot(av, 1);
    int large = !in_smallbin_range(size);
    uint64_t *w = sysmem_span(m, p + 8, large ? 5 : 3);
    if (w) {
        w[0] = size | PREV_INUSE;
        w[1] = fwd;
        w[2] = bck;
        if (large)
            w[3] = w[4] = 0;
    } else {
        sysmem_store_pair(m, p + 16, fwd, bck);
        if (large)
            sysmem_store_pair(m, p + 32, 0, 0);
        set_head(m, p, size | PREV_INUSE);
    }
    *bin_fd_slot(av, 1) = p;
    SET_BK(m, av, fwd, p);
    set_foot(m, p, size);
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
    /* victim, and every chunk on a nextsize list, is a chunk; bck and fwd may be headers.
     * victim's own links are written together at the end (no other store reaches them). */
    uint64_t ns_fd = 0, ns_bk = 0;
    int set_ns = 0;
    if (in_smallbin_range(size)) {
        /* at the head: bck is the bin header (host side), fwd its first chunk or the header */
        victim_index = smallbin_index(size);
        bck = bin_at(av, victim_index);
        fwd = *bin_fd_slot(av, victim_index);
        chunk_move(pm, victim, size, av->index, CS_UNSORTED, CS_SMALL);
        mark_bin(av, victim_index);
        sysmem_store_pair(m, victim + 16, fwd, bck);
        if (fwd == bck)
            *bin_bk_slot(av, victim_index) = victim;
        else
            CSET_BK(m, fwd, victim);
        *bin_fd_slot(av, victim_index) = victim;
        return;
    } else {
        victim_index = largebin_index(size);
        bck = bin_at(av, victim_index);
        fwd = *bin_fd_slot(av, victim_index);
        struct lb_list *l = &av->lb[victim_index - NSMALLBINS];
        /* glibc compares chunk heads (size | PREV_INUSE, as every binned chunk's head is): the
         * skip list's sizes give the same answers without loading them */
        if (fwd != bck) {
            uint64_t last = *bin_bk_slot(av, victim_index);
            if (size < l->g[l->n - 1].size) {
                fwd = bck;
                bck = last;
                uint64_t first = *bin_fd_slot(av, victim_index);
                uint64_t vbk = CBK_NS(m, first);
                ns_fd = first;
                ns_bk = vbk;
                set_ns = 1;
                CSET_BK_NS(m, first, victim);
                CSET_FD_NS(m, vbk, victim);
                lb_insert(av, victim_index, l->n, size, victim);
            } else {
                /* the first group not larger: fwd_nextsize steps from the largest */
                uint32_t pos = lb_first_not_larger(l, size);
                fwd = l->g[pos].first;
                if (size == l->g[pos].size) {
                    fwd = CFD(m, fwd);
                } else {
                    uint64_t vbk = CBK_NS(m, fwd);
                    ns_fd = fwd;
                    ns_bk = vbk;
                    set_ns = 1;
                    CSET_BK_NS(m, fwd, victim);
                    CSET_FD_NS(m, vbk, victim);
                    lb_insert(av, victim_index, pos, size, victim);
                }
                bck = BK(m, av, fwd);
            }
        } else {
            ns_fd = ns_bk = victim;
            set_ns = 1;
            l->n = 0;
            lb_insert(av, victim_index, 0, size, victim);
        }
        chunk_move(pm, victim, size, av->index, CS_UNSORTED, CS_LARGE);
    }
    mark_bin(av, victim_index);
    uint64_t *w = sysmem_span(m, victim + 16, set_ns ? 4 : 2);
    if (w) {
        w[0] = fwd;
        w[1] = bck;
        if (set_ns) {
            w[2] = ns_fd;
            w[3] = ns_bk;
        }
    } else {
        sysmem_store_pair(m, victim + 16, fwd, bck);
        if (set_ns)
            sysmem_store_pair(m, victim + 32, ns_fd, ns_bk);
    }
    SET_BK(m, av, fwd, victim);
    SET_FD(m, av, bck, victim);
}
