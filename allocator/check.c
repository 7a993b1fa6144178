/* check.c: ptmalloc_check, the model's self-check of the host-side copies it keeps for speed.
 *
 * To avoid walks through simulated memory the model mirrors some of glibc's lists host-side:
 * each fastbin and tcache bin as a stack, each large bin's skip list (fd_nextsize) as a sorted
 * array, plus counters per chunk state and bitmaps of non-empty size classes. Every list is still
 * written in simulated memory exactly as glibc writes it, so each mirror can be compared with
 * the real thing: this file walks the lists in simulated memory (decoding safe-linked pointers)
 * and the chunk table, and reports the first disagreement (each tcache entry must be recorded
 * CS_USER with its bin's size and the arena its stack word names, and is counted CS_TCACHE).
 * O(chunks); for tests and debugging.
 */
#include "model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static uint64_t reveal(struct sysmem *m, uint64_t field)
{
    return protect_ptr(field, sysmem_load(m, field));
}

static int check_fastbins(struct ptmalloc *pm, struct pm_arena *a, char *err, size_t errlen)
{
    struct sysmem *m = pm->mem;
    for (unsigned i = 0; i < NFASTBINS; i++) {
        uint32_t n = a->fcount[i];
        if (((a->fmap >> i) & 1) != (n != 0))
            return fail(err, errlen, "arena %u fastbin %u: map bit disagrees with count %u",
                        a->index, i, n);
        if (a->fastbins[i] != (n ? a->fstk[i][n - 1] : 0))
            return fail(err, errlen, "arena %u fastbin %u: head is not the stack top", a->index, i);
        uint64_t p = a->fastbins[i];
        for (uint32_t k = n; k-- > 0;) {
            if (p != a->fstk[i][k])
                return fail(err, errlen, "arena %u fastbin %u: entry %u is %#llx in memory, "
                            "%#llx host-side", a->index, i, n - 1 - k, (unsigned long long)p,
                            (unsigned long long)a->fstk[i][k]);
            if (chunk_size(m, p) != MINSIZE + 16 * (uint64_t)i)
                return fail(err, errlen, "arena %u fastbin %u: chunk %#llx has size %#llx",
                            a->index, i, (unsigned long long)p,
                            (unsigned long long)chunk_size(m, p));
            p = reveal(m, p + 16);
        }
        if (p != 0)
            return fail(err, errlen, "arena %u fastbin %u: the list in memory is longer",
                        a->index, i);
    }
    return 0;
}

static int check_large_bins(struct ptmalloc *pm, struct pm_arena *a, char *err, size_t errlen)
{
    struct sysmem *m = pm->mem;
    for (unsigned b = NSMALLBINS; b < NBINS; b++) {
        const struct lb_list *l = &a->lb[b - NSMALLBINS];
        uint64_t bin = bin_at(a, b);
        uint64_t first = FD(m, a, bin);
        if (first == bin) {
            if (l->n)
                return fail(err, errlen, "arena %u large bin %u: empty, %u groups host-side",
                            a->index, b, l->n);
            continue;
        }
        /* the skip list from the largest chunk, in fd_nextsize order */
        uint64_t p = first;
        uint32_t k = 0;
        do {
            if (k >= l->n)
                return fail(err, errlen, "arena %u large bin %u: more groups in memory than "
                            "the %u host-side", a->index, b, l->n);
            if (p != l->g[k].first || chunk_size(m, p) != l->g[k].size)
                return fail(err, errlen, "arena %u large bin %u: group %u is %#llx (size %#llx) "
                            "in memory, %#llx (size %#llx) host-side", a->index, b, k,
                            (unsigned long long)p, (unsigned long long)chunk_size(m, p),
                            (unsigned long long)l->g[k].first,
                            (unsigned long long)l->g[k].size);
            if (chunk_head(m, p) != (l->g[k].size | PREV_INUSE))
                return fail(err, errlen, "arena %u large bin %u: chunk %#llx's head has flags "
                            "other than PREV_INUSE", a->index, b, (unsigned long long)p);
            k++;
            p = CFD_NS(m, p);
        } while (p != first);
        if (k != l->n)
            return fail(err, errlen, "arena %u large bin %u: %u groups in memory, %u host-side",
                        a->index, b, k, l->n);
    }
    return 0;
}

/* adj[a * 2] and adj[a * 2 + 1]: the chunks and bytes of arena a in the tcaches (recorded
 * CS_USER in the table, counted CS_TCACHE) */
static int check_tcache(struct ptmalloc *pm, struct pm_thread *t, uint32_t tid, uint32_t *tc_n,
                        uint64_t *adj, char *err, size_t errlen)
{
    struct sysmem *m = pm->mem;
    for (unsigned i = 0; i < TCACHE_MAX_BINS; i++) {
        uint32_t n = t->counts[i];
        uint64_t e = tcache_head(t, i);
        for (uint32_t k = n; k-- > 0;) {
            if (e != tc_entry_addr(t->stk[i][k]))
                return fail(err, errlen, "thread %u tcache bin %u: entry %u is %#llx in memory, "
                            "%#llx host-side", tid, i, n - 1 - k, (unsigned long long)e,
                            (unsigned long long)tc_entry_addr(t->stk[i][k]));
            if (sysmem_load(m, e + 8) != pm->tcache_key)
                return fail(err, errlen, "thread %u tcache bin %u: entry %#llx lacks the key",
                            tid, i, (unsigned long long)e);
            struct cm_entry *ce = cm_find(&pm->map, e - 16);
            if (!ce || cm_state(ce->val) != CS_USER || cm_size(ce->val) != MINSIZE + 16 * i ||
                cm_arena(ce->val) != tc_entry_arena(t->stk[i][k]) ||
                cm_arena(ce->val) >= pm->arena_count)
                return fail(err, errlen, "thread %u tcache bin %u: chunk %#llx is not recorded "
                            "as an in-use chunk of its size and arena", tid, i,
                            (unsigned long long)e - 16);
            tc_n[cm_arena(ce->val) * TCACHE_MAX_BINS + i]++;
            adj[cm_arena(ce->val) * 2]++;
            adj[cm_arena(ce->val) * 2 + 1] += MINSIZE + 16 * i;
            e = reveal(m, e);
        }
        if (e != 0)
            return fail(err, errlen, "thread %u tcache bin %u: the list in memory is longer",
                        tid, i);
    }
    return 0;
}

int ptmalloc_check(struct ptmalloc *pm, char *err, size_t errlen)
{
    int r = 0;
    uint64_t *count = calloc((size_t)pm->arena_count * CS_NSTATES * 2, sizeof *count);
    uint32_t *tc_n = calloc((size_t)pm->arena_count * TCACHE_MAX_BINS, sizeof *tc_n);
    uint64_t *adj = calloc((size_t)pm->arena_count * 2, sizeof *adj);
    if (!count || !tc_n || !adj) {
        r = fail(err, errlen, "host out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < pm->arena_count && !r; i++) {
        r = check_fastbins(pm, pm->arenas[i], err, errlen);
        if (!r)
            r = check_large_bins(pm, pm->arenas[i], err, errlen);
    }
    for (uint32_t i = 0; i < pm->nthreads && !r; i++) {
        struct pm_thread *t = pm->threads[i];
        if (t && t->started && t->tcache)
            r = check_tcache(pm, t, i, tc_n, adj, err, errlen);
    }
    if (r)
        goto out;
    /* per-state counters and size-class maps against the chunk table */
    for (uint64_t i = 0; i <= pm->map.mask; i++) {
        const struct cm_entry *e = &pm->map.tab[i];
        if (!e->key)
            continue;
        uint32_t a = cm_arena(e->val);
        if (a >= pm->arena_count) {
            r = fail(err, errlen, "chunk %#llx: arena %u does not exist",
                     (unsigned long long)e->key, a);
            goto out;
        }
        count[(a * CS_NSTATES + cm_state(e->val)) * 2]++;
        count[(a * CS_NSTATES + cm_state(e->val)) * 2 + 1] += cm_size(e->val);
    }
    for (uint32_t a = 0; a < pm->arena_count; a++) {
        count[(a * CS_NSTATES + CS_USER) * 2] -= adj[a * 2];
        count[(a * CS_NSTATES + CS_USER) * 2 + 1] -= adj[a * 2 + 1];
        count[(a * CS_NSTATES + CS_TCACHE) * 2] += adj[a * 2];
        count[(a * CS_NSTATES + CS_TCACHE) * 2 + 1] += adj[a * 2 + 1];
    }
    for (uint32_t a = 0; a < pm->arena_count; a++) {
        const struct pm_arena *ar = pm->arenas[a];
        for (int s = 0; s < CS_NSTATES; s++)
            if (ar->st_count[s] != count[(a * CS_NSTATES + s) * 2] ||
                ar->st_bytes[s] != count[(a * CS_NSTATES + s) * 2 + 1]) {
                r = fail(err, errlen, "arena %u state %d: counters say %llu chunks / %llu bytes, "
                         "the chunk table %llu / %llu", a, s,
                         (unsigned long long)ar->st_count[s], (unsigned long long)ar->st_bytes[s],
                         (unsigned long long)count[(a * CS_NSTATES + s) * 2],
                         (unsigned long long)count[(a * CS_NSTATES + s) * 2 + 1]);
                goto out;
            }
        for (unsigned c = 0; c < TCACHE_MAX_BINS; c++)
            if (ar->tc_n[c] != tc_n[a * TCACHE_MAX_BINS + c] ||
                ((ar->tc_map >> c) & 1) != (ar->tc_n[c] != 0)) {
                r = fail(err, errlen, "arena %u tcache size class %u: %u chunks counted, %u in "
                         "the tcaches", a, c, ar->tc_n[c], tc_n[a * TCACHE_MAX_BINS + c]);
                goto out;
            }
    }
out:
    free(count);
    free(tc_n);
    free(adj);
    return r;
}
