/* walk.c: heap introspection: every chunk of every arena in address order (ptmalloc_walk) and
 * the bin lists in list order (ptmalloc_bins).
 *
 * The walk follows chunk headers through each piece of arena memory: the main arena's segments
 * (the break area, mmap fallbacks), each non-main heap (heap_info and, in an arena's first heap,
 * the malloc_state are reported as overhead). A chunk's state comes from the chunk table (and
 * for a CS_USER one, from the set of tcache entries built at the start);
 * chunks it does not know (fenceposts) are overhead; the top chunk ends the piece that holds
 * it. mmapped chunks follow, in address order.
 */
#include "model.h"

#include <stdlib.h>

const char *ptmalloc_chunk_state_name(enum ptmalloc_chunk_state s)
{
    static const char *names[] = {"in_use", "tcache", "fastbin", "unsorted", "small",
                                  "large",  "top",    "mmapped", "overhead"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/* The chunk addresses of every thread's tcache entries, sorted (a tcache chunk is recorded
 * CS_USER in the chunk table: this set tells the walk which ones are in a tcache). */
struct tc_set {
    uint64_t *p;
    uint64_t n;
};

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* 0, or -1 on host OOM */
static int tc_set_build(const struct ptmalloc *pm, struct tc_set *s)
{
    uint64_t n = 0;
    s->p = 0;
    s->n = 0;
    for (uint32_t i = 0; i < pm->nthreads; i++)
        if (pm->threads[i])
            for (int b = 0; b < TCACHE_MAX_BINS; b++)
                n += pm->threads[i]->counts[b];
    if (!n)
        return 0;
    s->p = malloc(n * sizeof *s->p);
    if (!s->p)
        return -1;
    for (uint32_t i = 0; i < pm->nthreads; i++) {
        const struct pm_thread *t = pm->threads[i];
        if (t)
            for (int b = 0; b < TCACHE_MAX_BINS; b++)
                for (uint32_t k = 0; k < t->counts[b]; k++)
                    s->p[s->n++] = tc_entry_addr(t->stk[b][k]) - 16;
    }
    qsort(s->p, s->n, sizeof *s->p, cmp_u64);
    return 0;
}

static int tc_set_has(const struct tc_set *s, uint64_t p)
{
    return s->n && bsearch(&p, s->p, s->n, sizeof *s->p, cmp_u64) != 0;
}

static void describe(const struct tc_set *tcs, uint64_t p, uint64_t v, struct ptmalloc_chunk *c)
{
    uint64_t size = cm_size(v);
    enum chunk_state st = cm_state(v);
    c->bin = -1;
    if (st == CS_USER && tc_set_has(tcs, p))
        st = CS_TCACHE;
    switch (st) {
    case CS_USER:
    case CS_INTERNAL: c->state = PTM_CHUNK_IN_USE; break;
    case CS_TCACHE: c->state = PTM_CHUNK_TCACHE; c->bin = (int32_t)csize2tidx(size); break;
    case CS_FAST: c->state = PTM_CHUNK_FASTBIN; c->bin = (int32_t)fastbin_index(size); break;
    case CS_UNSORTED: c->state = PTM_CHUNK_UNSORTED; c->bin = 1; break;
    case CS_SMALL: c->state = PTM_CHUNK_SMALL; c->bin = (int32_t)smallbin_index(size); break;
    case CS_LARGE: c->state = PTM_CHUNK_LARGE; c->bin = (int32_t)largebin_index(size); break;
    case CS_MMAPPED: c->state = PTM_CHUNK_MMAPPED; break;
    default: c->state = PTM_CHUNK_OVERHEAD; break;
    }
}

static int emit(int (*fn)(void *, const struct ptmalloc_chunk *), void *ctx, uint64_t addr,
                uint64_t size, enum ptmalloc_chunk_state st, uint32_t arena, int32_t bin)
{
    struct ptmalloc_chunk c = {addr, size, st, arena, bin};
    return fn(ctx, &c);
}

/* Walks chunks from p to end; returns the callback's non-zero value or 0. */
static int walk_piece(struct ptmalloc *pm, const struct tc_set *tcs, struct pm_arena *a,
                      uint64_t p, uint64_t end, int (*fn)(void *, const struct ptmalloc_chunk *), void *ctx)
{
    struct sysmem *m = pm->mem;
    int r;
    while (p < end) {
        if (p == a->top)
            return emit(fn, ctx, p, top_size(m, a), PTM_CHUNK_TOP, a->index, -1);
        if (end - p < CHUNK_HDR_SZ)
            return emit(fn, ctx, p, end - p, PTM_CHUNK_OVERHEAD, a->index, -1);
        uint64_t size = chunk_size(m, p);
        if (size == 0 || size > end - p)
            return emit(fn, ctx, p, end - p, PTM_CHUNK_OVERHEAD, a->index, -1);
        struct cm_entry *e = cm_find(&pm->map, p);
        struct ptmalloc_chunk c = {p, size, PTM_CHUNK_OVERHEAD, a->index, -1};
        if (e)
            describe(tcs, p, e->val, &c);
        if ((r = fn(ctx, &c)) != 0)
            return r;
        p += size;
    }
    return 0;
}

static int walk_arena(struct ptmalloc *pm, const struct tc_set *tcs, struct pm_arena *a,
                      int (*fn)(void *, const struct ptmalloc_chunk *), void *ctx)
{
    struct sysmem *m = pm->mem;
    int r = 0;
    if (is_main(a)) {
        uint32_t n = pm->nsegs;
        uint64_t *starts = malloc((n ? n : 1) * 2 * sizeof *starts);
        if (!starts)
            return 0;
        for (uint32_t i = 0; i < n; i++) {
            starts[2 * i] = pm->segs[i].start;
            starts[2 * i + 1] = pm->segs[i].end;
        }
        qsort(starts, n, 2 * sizeof *starts, cmp_u64);
        /* bytes skipped to align the first chunk of an unaligned initial break */
        for (uint32_t i = 0; i < n; i++)
            if (starts[2 * i] > pm->sbrk_base && starts[2 * i] - pm->sbrk_base < MALLOC_ALIGNMENT) {
                r = emit(fn, ctx, pm->sbrk_base, starts[2 * i] - pm->sbrk_base, PTM_CHUNK_OVERHEAD,
                         a->index, -1);
                break;
            }
        for (uint32_t i = 0; i < n && !r; i++)
            if (starts[2 * i + 1] > starts[2 * i])
                r = walk_piece(pm, tcs, a, starts[2 * i], starts[2 * i + 1], fn, ctx);
        free(starts);
        return r;
    }
    uint64_t first = heap_for_ptr(pm, a->base);
    uint64_t cap = 16, n = 0;
    uint64_t *heaps = malloc(cap * sizeof *heaps);
    if (!heaps)
        return 0;
    for (uint64_t h = heap_for_ptr(pm, a->top); h;) {
        if (n == cap) {
            uint64_t *nh = realloc(heaps, 2 * cap * sizeof *nh);
            if (!nh)
                break;
            heaps = nh;
            cap *= 2;
        }
        heaps[n++] = h;
        if (h == first)
            break;
        h = mem_ld(m, h + HI_PREV);
    }
    qsort(heaps, n, sizeof *heaps, cmp_u64);
    for (uint64_t i = 0; i < n && !r; i++) {
        uint64_t h = heaps[i];
        uint64_t start = h == first ? ALIGN_UP(a->base + MALLOC_STATE_SIZE + CHUNK_HDR_SZ, MALLOC_ALIGNMENT) - CHUNK_HDR_SZ
                                    : h + HEAP_INFO_SIZE;
        r = emit(fn, ctx, h, start - h, PTM_CHUNK_OVERHEAD, a->index, -1);
        if (!r)
            r = walk_piece(pm, tcs, a, start, h + mem_ld(m, h + HI_SIZE), fn, ctx);
    }
    free(heaps);
    return r;
}

int ptmalloc_walk(struct ptmalloc *pm, int arena,
                  int (*fn)(void *ctx, const struct ptmalloc_chunk *c), void *ctx)
{
    int r;
    struct tc_set tcs;
    if (tc_set_build(pm, &tcs) != 0)
        return 0;
    for (uint32_t i = 0; i < pm->arena_count; i++) {
        if (arena >= 0 && (uint32_t)arena != i)
            continue;
        if ((r = walk_arena(pm, &tcs, pm->arenas[i], fn, ctx)) != 0) {
            free(tcs.p);
            return r;
        }
    }
    free(tcs.p);
    /* mmapped chunks, in address order */
    uint64_t n = 0, cap = 64;
    uint64_t *mm = malloc(cap * 2 * sizeof *mm);
    if (!mm)
        return 0;
    for (uint64_t i = 0; i <= pm->map.mask; i++) {
        struct cm_entry *e = &pm->map.tab[i];
        if (!e->key || cm_state(e->val) != CS_MMAPPED)
            continue;
        if (arena >= 0 && cm_arena(e->val) != (uint32_t)arena)
            continue;
        if (n == cap) {
            uint64_t *nm = realloc(mm, cap * 4 * sizeof *nm);
            if (!nm)
                break;
            mm = nm;
            cap *= 2;
        }
        mm[2 * n] = e->key;
        mm[2 * n + 1] = e->val;
        n++;
    }
    qsort(mm, n, 2 * sizeof *mm, cmp_u64);
    r = 0;
    for (uint64_t i = 0; i < n && !r; i++)
        r = emit(fn, ctx, mm[2 * i], cm_size(mm[2 * i + 1]), PTM_CHUNK_MMAPPED, cm_arena(mm[2 * i + 1]), -1);
    free(mm);
    return r;
}

int ptmalloc_bins(struct ptmalloc *pm, int arena, uint32_t thread,
                  int (*fn)(void *ctx, enum ptmalloc_chunk_state kind, int bin, uint64_t address,
                            uint64_t size),
                  void *ctx)
{
    struct sysmem *m = pm->mem;
    int r;
    if (thread < pm->nthreads && pm->threads[thread] && pm->threads[thread]->started &&
        pm->threads[thread]->tcache) {
        struct pm_thread *t = pm->threads[thread];
        for (int b = 0; b < TCACHE_MAX_BINS; b++) {
            for (unsigned k = t->counts[b]; k-- > 0;) {
                uint64_t e = tc_entry_addr(t->stk[b][k]);
                struct cm_entry *ce = cm_find(&pm->map, e - 16);
                uint64_t size = ce ? cm_size(ce->val) : chunk_size(m, e - 16);
                if (arena < 0 || (ce && cm_arena(ce->val) == (uint32_t)arena))
                    if ((r = fn(ctx, PTM_CHUNK_TCACHE, b, e - 16, size)) != 0)
                        return r;
            }
        }
    }
    for (uint32_t i = 0; i < pm->arena_count; i++) {
        if (arena >= 0 && (uint32_t)arena != i)
            continue;
        struct pm_arena *a = pm->arenas[i];
        for (int b = 0; b < NFASTBINS; b++)
            for (uint32_t k = a->fcount[b]; k-- > 0;)
                if ((r = fn(ctx, PTM_CHUNK_FASTBIN, b, a->fstk[b][k], chunk_size(m, a->fstk[b][k]))) != 0)
                    return r;
        for (unsigned b = 1; b < NBINS; b++) {
            uint64_t bin = bin_at(a, b);
            enum ptmalloc_chunk_state kind = b == 1 ? PTM_CHUNK_UNSORTED
                                             : b < NSMALLBINS ? PTM_CHUNK_SMALL : PTM_CHUNK_LARGE;
            for (uint64_t p = FD(m, a, bin); p != bin; p = FD(m, a, p))
                if ((r = fn(ctx, kind, (int)b, p, chunk_size(m, p))) != 0)
                    return r;
        }
    }
    return 0;
}
