/* malloc.c: _int_malloc, the heart of placement, following glibc 2.36 step by step.
 *
 * Order of attempts for a normalized request nb: the fastbin (then the rest of that fastbin
 * moves into the tcache), the small bin (oldest chunk, then stash into the tcache), for a large
 * request a malloc_consolidate when fastbin chunks exist, the unsorted scan (last-remainder
 * split, exact fits cached in the tcache, everything else filed into bins, at most 10000
 * chunks), best fit in the request's large bin, the binmap search of larger bins, the top chunk,
 * and finally consolidate-and-retry or sysmalloc. The returned chunk is recorded as
 * pm->ret_state in the chunk table (CS_USER from the public malloc and calloc, CS_INTERNAL
 * otherwise; the other entry points relabel it when they are done).
 */
#include "model.h"

void alloc_perturb(struct ptmalloc *pm, uint64_t mem, uint64_t n)
{
    if (pm->perturb)
        pm_touch(pm, mem, n);
}

static uint64_t nonmain_bit(const struct pm_arena *av) { return is_main(av) ? 0 : NON_MAIN_ARENA; }

/* Splits victim (of `size`, already unlinked) at nb; the remainder goes to the unsorted head. */
static void split_to_unsorted(struct ptmalloc *pm, struct pm_arena *av, uint64_t victim,
                              uint64_t size, uint64_t nb, int advertise)
{
    struct sysmem *m = pm->mem;
    uint64_t remainder_size = size - nb;
    uint64_t remainder = victim + nb;
    uint64_t bck = unsorted_bin(av);
    uint64_t fwd = *bin_fd_slot(av, 1);
    int large = !in_smallbin_range(remainder_size);
    uint64_t *w = sysmem_span(m, remainder + 8, large ? 5 : 3);   /* head, links: one lookup */
    if (w) {
        w[0] = remainder_size | PREV_INUSE;
        w[1] = fwd;
        w[2] = bck;
        if (large)
            w[3] = w[4] = 0;
    } else {
        sysmem_store_pair(m, remainder + 16, fwd, bck);
        if (large)
            sysmem_store_pair(m, remainder + 32, 0, 0);
        set_head(m, remainder, remainder_size | PREV_INUSE);
    }
    *bin_fd_slot(av, 1) = remainder;
    SET_BK(m, av, fwd, remainder);
    if (advertise)
        av->last_remainder = remainder;
    set_head(m, victim, nb | PREV_INUSE | nonmain_bit(av));
    set_foot(m, remainder, remainder_size);
    chunk_note(pm, victim, nb, av->index, pm->ret_state);
    chunk_note(pm, remainder, remainder_size, av->index, CS_UNSORTED);
}

/* Hands out an unlinked bin chunk whole, or split with the remainder to the unsorted list. */
static uint64_t take_binned(struct ptmalloc *pm, struct pm_arena *av, uint64_t victim,
                            uint64_t size, uint64_t nb, uint64_t bytes, int advertise)
{
    struct sysmem *m = pm->mem;
    if (size - nb < MINSIZE) {
        set_inuse_bit_at(m, victim, size);
        if (!is_main(av))
            set_non_main(m, victim);
        chunk_note(pm, victim, size, av->index, pm->ret_state);
    } else {
        split_to_unsorted(pm, av, victim, size, nb, advertise);
    }
    alloc_perturb(pm, victim + 16, bytes);
    return victim + 16;
}

uint64_t int_malloc(struct ptmalloc *pm, struct pm_arena *av, uint64_t bytes)
{
    struct sysmem *m = pm->mem;
    uint64_t nb = request2size(bytes);
    if (nb == 0)
        return 0;
    if (!av) {
        uint64_t p = sysmalloc(pm, nb, 0);
        if (p)
            alloc_perturb(pm, p, bytes);
        return p;
    }
    struct pm_thread *t = pm->cur;
    int have_tc = t && t->tcache;
    uint64_t tc_idx = csize2tidx(nb);
    unsigned idx;

    if (nb <= pm->max_fast) {
        idx = fastbin_index(nb);
        uint64_t victim = fastbin_pop(av, idx);
        if (victim) {
            chunk_note(pm, victim, nb, av->index, pm->ret_state);
            if (have_tc && tc_idx < pm->tcache_bins) {
                uint64_t tc_victim;
                while (t->counts[tc_idx] < pm->tcache_count && (tc_victim = fastbin_pop(av, idx)) != 0) {
                    tcache_put(pm, t, tc_victim, nb, av->index, tc_idx);
                }
            }
            alloc_perturb(pm, victim + 16, bytes);
            return victim + 16;
        }
    }

    if (in_smallbin_range(nb)) {
        idx = smallbin_index(nb);
        uint64_t bin = bin_at(av, idx);
        uint64_t *bin_bk = bin_bk_slot(av, idx);
        uint64_t victim = *bin_bk;
        if (victim != bin) {
            uint64_t bck = CBK(m, victim);
            set_inuse_bit_at(m, victim, nb);
            *bin_bk = bck;
            SET_FD(m, av, bck, bin);
            if (!is_main(av))
                set_non_main(m, victim);
            chunk_note(pm, victim, nb, av->index, pm->ret_state);
            if (have_tc && tc_idx < pm->tcache_bins) {
                uint64_t tc_victim;
                while (t->counts[tc_idx] < pm->tcache_count && (tc_victim = *bin_bk) != bin) {
                    bck = CBK(m, tc_victim);
                    set_inuse_bit_at(m, tc_victim, nb);
                    if (!is_main(av))
                        set_non_main(m, tc_victim);
                    *bin_bk = bck;
                    SET_FD(m, av, bck, bin);
                    tcache_put(pm, t, tc_victim, nb, av->index, tc_idx);
                }
            }
            alloc_perturb(pm, victim + 16, bytes);
            return victim + 16;
        }
    } else {
        idx = largebin_index(nb);
        if (av->have_fastchunks)
            malloc_consolidate(pm, av);
    }

    uint64_t tcache_nb = 0;
    if (have_tc && tc_idx < pm->tcache_bins)
        tcache_nb = nb;
    int return_cached = 0;
    uint64_t tcache_unsorted_count = 0;
    uint64_t unsorted = unsorted_bin(av);

    for (;;) {
        int iters = 0;
        uint64_t victim;
        while ((victim = *bin_bk_slot(av, 1)) != unsorted) {
            uint64_t bck, size;
            const uint64_t *w = sysmem_span(m, victim + 8, 3);   /* head, fd, bk */
            if (w) {
                size = w[0] & ~(uint64_t)SIZE_BITS;
                bck = w[2];
            } else {
                bck = CBK(m, victim);
                size = chunk_size(m, victim);
            }

            if (in_smallbin_range(nb) && bck == unsorted && victim == av->last_remainder &&
                size > nb + MINSIZE) {
                uint64_t remainder_size = size - nb;
                uint64_t remainder = victim + nb;
                *bin_bk_slot(av, 1) = remainder;
                *bin_fd_slot(av, 1) = remainder;
                av->last_remainder = remainder;
                sysmem_store_pair(m, remainder + 16, unsorted, unsorted);
                if (!in_smallbin_range(remainder_size))
                    sysmem_store_pair(m, remainder + 32, 0, 0);
                set_head(m, victim, nb | PREV_INUSE | nonmain_bit(av));
                set_head(m, remainder, remainder_size | PREV_INUSE);
                set_foot(m, remainder, remainder_size);
                chunk_note(pm, victim, nb, av->index, pm->ret_state);
                chunk_note(pm, remainder, remainder_size, av->index, CS_UNSORTED);
                alloc_perturb(pm, victim + 16, bytes);
                return victim + 16;
            }

            *bin_bk_slot(av, 1) = bck;
            SET_FD(m, av, bck, unsorted);

            if (size == nb) {
                set_inuse_bit_at(m, victim, size);
                if (!is_main(av))
                    set_non_main(m, victim);
                if (tcache_nb && t->counts[tc_idx] < pm->tcache_count) {
                    tcache_put(pm, t, victim, size, av->index, tc_idx);
                    return_cached = 1;
                    continue;
                }
                chunk_note(pm, victim, size, av->index, pm->ret_state);
                alloc_perturb(pm, victim + 16, bytes);
                return victim + 16;
            }

            bin_file(pm, av, victim, size);

            ++tcache_unsorted_count;
            if (return_cached && pm->tcache_unsorted_limit > 0 &&
                tcache_unsorted_count > pm->tcache_unsorted_limit)
                return tcache_get(pm, t, tc_idx);

            if (++iters >= MAX_ITERS)
                break;
        }

        if (return_cached)
            return tcache_get(pm, t, tc_idx);

        if (!in_smallbin_range(nb)) {
            uint64_t bin = bin_at(av, idx);
            victim = *bin_fd_slot(av, idx);
            const struct lb_list *l = &av->lb[idx - NSMALLBINS];
            if (victim != bin && l->g[0].size >= nb) {
                /* the smallest group that fits: bk_nextsize steps up from the smallest (the
                 * host skip list holds the sizes glibc loads on the way) */
                uint32_t pos = lb_first_not_larger(l, nb - 1) - 1;   /* the last >= nb */
                victim = l->g[pos].first;
                uint64_t size = l->g[pos].size;
                /* not the last chunk: its fd is a chunk */
                if (victim != *bin_bk_slot(av, idx) &&
                    chunk_head(m, victim) == chunk_head(m, CFD(m, victim)))
                    victim = CFD(m, victim);
                unlink_chunk(pm, av, victim);
                return take_binned(pm, av, victim, size, nb, bytes, 0);
            }
        }

        ++idx;
        uint64_t bin = bin_at(av, idx);
        unsigned block = idx >> 5;
        uint32_t map = av->binmap[block];
        uint32_t bit = 1u << (idx & 31);
        for (;;) {
            if (bit > map || bit == 0) {
                do {
                    if (++block >= BINMAPSIZE)
                        goto use_top;
                } while ((map = av->binmap[block]) == 0);
                bin = bin_at(av, block << 5);
                bit = 1;
            }
            while ((bit & map) == 0) {
                bin += 16;
                bit <<= 1;
            }
            victim = BK(m, av, bin);
            if (victim == bin) {
                av->binmap[block] = map &= ~bit;
                bin += 16;
                bit <<= 1;
            } else {
                uint64_t size = chunk_size(m, victim);
                unlink_chunk(pm, av, victim);
                return take_binned(pm, av, victim, size, nb, bytes, in_smallbin_range(nb));
            }
        }

    use_top:
        victim = av->top;
        uint64_t size = top_size(m, av);
        if (size >= nb + MINSIZE) {
            uint64_t remainder_size = size - nb;
            uint64_t remainder = victim + nb;
            av->top = remainder;
            set_head(m, victim, nb | PREV_INUSE | nonmain_bit(av));
            set_head(m, remainder, remainder_size | PREV_INUSE);
            chunk_note(pm, victim, nb, av->index, pm->ret_state);
            alloc_perturb(pm, victim + 16, bytes);
            return victim + 16;
        } else if (av->have_fastchunks) {
            malloc_consolidate(pm, av);
            idx = in_smallbin_range(nb) ? smallbin_index(nb) : largebin_index(nb);
        } else {
            uint64_t p = sysmalloc(pm, nb, av);
            if (p)
                alloc_perturb(pm, p, bytes);
            return p;
        }
    }
}
