/* ptmalloc.c: the public entry points of the model (ptmalloc.h): object lifetime, threads, the
 * malloc family as glibc's __libc_* wrappers see it, and the validation of pointers.
 *
 * Each call names its thread; the thread's state (arena, tcache) is found or started, then the
 * call runs glibc's wrapper logic: the tcache lookup of malloc, SINGLE_THREAD_P shortcuts to the
 * main arena until a second thread appears, arena_get and the retry paths, realloc's and
 * memalign's special cases, calloc's clearing (modelled as a touch of the bytes glibc zeroes).
 *
 * Pointers passed in (free, realloc) are checked against the chunk table before any simulated
 * memory is read. A request glibc would abort on returns PTM_CORRUPT with glibc's message; a
 * double free glibc would not even notice (and would corrupt its heap with) is refused the same
 * way with a message saying so. Either way the model is left as it was.
 */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#define MSG_UNDETECTED "free(): double free of an already free chunk (glibc does not detect this one and would corrupt its heap)"

void pm_event(struct ptmalloc *pm, enum ptmalloc_event_kind kind, uint32_t arena, uint64_t addr,
              uint64_t len)
{
    if (pm->hook) {
        struct ptmalloc_event ev = {kind, arena, addr, len};
        pm->hook(pm->hook_ctx, &ev);
    }
}

void pm_touch(struct ptmalloc *pm, uint64_t addr, uint64_t len)
{
    if (len)
        sysmem_touch(pm->mem, addr, len);
}

static void apply_settings(struct ptmalloc *pm, const struct ptmalloc_settings *s)
{
    pm->mxfast_given = s->mxfast <= MAX_FAST_SIZE ? s->mxfast : 128;
    pm->max_fast = max_fast_for(pm->mxfast_given);
    pm->trim_threshold = s->trim_threshold;
    pm->top_pad = s->top_pad;
    pm->mmap_threshold = s->mmap_threshold;
    pm->n_mmaps_max = s->mmap_max;
    pm->arena_max = s->arena_max;
    pm->arena_test = s->arena_test;
    pm->tcache_count = s->tcache_count <= MAX_TCACHE_COUNT ? s->tcache_count : 7;
    if (s->tcache_max <= MAX_TCACHE_SIZE) {
        pm->tcache_max_bytes = s->tcache_max;
        pm->tcache_bins = csize2tidx(request2size(s->tcache_max)) + 1;
    } else {
        pm->tcache_max_bytes = MAX_TCACHE_SIZE;
        pm->tcache_bins = TCACHE_MAX_BINS;
    }
    pm->tcache_unsorted_limit = s->tcache_unsorted_limit;
    pm->perturb = s->perturb;
    pm->hugetlb = s->hugetlb;
    pm->no_dyn_threshold = s->no_dyn_threshold;
    pm->cpu_count = s->cpu_count;
    pm->thp_pagesize = 0;
    pm->hp_pagesize = 0;
    pm->always_fail_morecore = 0;
    if (s->hugetlb == 1) {
        pm->thp_pagesize = 2u << 20;          /* THP in "madvise" mode, 2 MiB PMD pages */
    } else if (s->hugetlb >= 2) {
        pm->hp_pagesize = 2u << 20;           /* default huge page size */
        pm->always_fail_morecore = 1;         /* glibc then never uses brk */
    }
}

struct ptmalloc *ptmalloc_new(const struct ptmalloc_settings *s, struct sysmem *mem)
{
    struct ptmalloc_settings def;
    if (!s) {
        /* glibc's defaults (settings.c's ptmalloc_settings_default gives the same) */
        memset(&def, 0, sizeof def);
        def.mxfast = 128;
        def.trim_threshold = def.top_pad = def.mmap_threshold = 128 * 1024;
        def.mmap_max = 65536;
        def.arena_test = 8;
        def.tcache_count = 7;
        def.tcache_max = MAX_TCACHE_SIZE;
        def.cpu_count = 1;
        s = &def;
    }
    struct ptmalloc *pm = calloc(1, sizeof *pm);
    if (!pm)
        return 0;
    if (!mem) {
        struct sysmem_config cfg;
        sysmem_config_default(&cfg);
        mem = sysmem_new(&cfg);
        if (!mem) {
            free(pm);
            return 0;
        }
    }
    pm->mem = mem;
    if (cm_init(&pm->map) != 0) {
        ptmalloc_destroy(pm);
        return 0;
    }
    apply_settings(pm, s);
    pm->ret_state = CS_INTERNAL;
    pm->tcache_key = 0x5eed7ca7c4e5ee0dull;
    pm->narenas = 1;
    if (!arena_create_main(pm)) {
        ptmalloc_destroy(pm);
        return 0;
    }
    return pm;
}

void ptmalloc_destroy(struct ptmalloc *pm)
{
    if (!pm)
        return;
    for (uint32_t i = 0; i < pm->arena_count; i++) {
        for (int b = 0; b < NFASTBINS; b++)
            free(pm->arenas[i]->fstk[b]);
        for (int b = 0; b < NLARGEBINS; b++)
            free(pm->arenas[i]->lb[b].g);
        free(pm->arenas[i]);
    }
    free(pm->arenas);
    for (uint32_t i = 0; i < pm->nthreads; i++)
        if (pm->threads[i]) {
            tcache_release(pm->threads[i]);
            free(pm->threads[i]);
        }
    free(pm->threads);
    free(pm->segs);
    cm_free(&pm->map);
    if (pm->mem)
        sysmem_free(pm->mem);
    free(pm);
}

struct sysmem *ptmalloc_sysmem(struct ptmalloc *pm) { return pm->mem; }

/* ---- threads ---- */

static __attribute__((noinline)) struct pm_thread *thread_enter_slow(struct ptmalloc *pm,
                                                                      uint32_t tid)
{
    if (tid >= pm->nthreads) {
        uint32_t n = pm->nthreads ? pm->nthreads : 4;
        while (n <= tid)
            n *= 2;
        struct pm_thread **nt = realloc(pm->threads, n * sizeof *nt);
        if (!nt)
            return 0;
        memset(nt + pm->nthreads, 0, (n - pm->nthreads) * sizeof *nt);
        pm->threads = nt;
        pm->nthreads = n;
    }
    struct pm_thread **tab = pm->threads;
    struct pm_thread *t = tab[tid];
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t)
            return 0;
        tab[tid] = t;
    }
    if (!t->started) {
        tcache_release(t);
        memset(t, 0, sizeof *t);
        t->started = 1;
        t->arena = tid == 0 ? main_arena(pm) : 0;
        if (tid != 0)
            pm->multi_threaded = 1;
    }
    pm->cur = t;
    return t;
}

/* The calling thread's state, started if needed; NULL on host OOM. */
static inline struct pm_thread *thread_enter(struct ptmalloc *pm, uint32_t tid)
{
    struct pm_thread *t;
    if (__builtin_expect(tid < pm->nthreads && (t = pm->threads[tid]) != 0 && t->started, 1)) {
        pm->cur = t;
        return t;
    }
    return thread_enter_slow(pm, tid);
}

static struct pm_thread *thread_peek(const struct ptmalloc *pm, uint32_t tid)
{
    if (tid >= pm->nthreads)
        return 0;
    struct pm_thread *t = pm->threads[tid];
    return t && t->started ? t : 0;
}

int ptmalloc_thread_start(struct ptmalloc *pm, uint32_t thread)
{
    return thread_enter(pm, thread) ? 0 : -1;
}

int ptmalloc_thread_exit(struct ptmalloc *pm, uint32_t thread)
{
    struct pm_thread *t = thread_peek(pm, thread);
    if (!t)
        return 0;
    pm->cur = t;
    tcache_thread_shutdown(pm, t);
    arena_thread_exit(pm, t);
    t->started = 0;
    pm->cur = 0;
    return 0;
}

int ptmalloc_thread_set_arena(struct ptmalloc *pm, uint32_t thread, uint32_t arena)
{
    struct pm_thread *t = thread_enter(pm, thread);
    if (!t || arena > 0xfffe)
        return -1;
    while (pm->arena_count <= arena)
        if (!arena_new(pm, t, TCACHE_STRUCT_SIZE))
            return -1;
    arena_pin(pm, t, pm->arenas[arena]);
    return 0;
}

int ptmalloc_thread_arena(const struct ptmalloc *pm, uint32_t thread)
{
    struct pm_thread *t = thread_peek(pm, thread);
    if (!t)
        return thread == 0 ? 0 : -1;
    return t->arena ? (int)t->arena->index : -1;
}

uint32_t ptmalloc_arena_count(const struct ptmalloc *pm) { return pm->arena_count; }

/* ---- results and validation ---- */

static struct ptmalloc_result result(uint64_t p, enum ptmalloc_status st, const char *msg)
{
    struct ptmalloc_result r = {p, st, msg};
    return r;
}
static struct ptmalloc_result ok_or_enomem(uint64_t p)
{
    return result(p, p ? PTM_OK : PTM_ENOMEM, 0);
}

/* Relabels a freshly allocated chunk as held by the program. */
static void mark_user(struct ptmalloc *pm, uint64_t mem)
{
    struct cm_entry *e = cm_find(&pm->map, mem - 16);
    if (e && cm_state(e->val) == CS_INTERNAL) {
        struct pm_arena *a = pm->arenas[cm_arena(e->val)];
        uint64_t sz = cm_size(e->val);
        st_leave(a, CS_INTERNAL, sz);
        st_enter(a, CS_USER, sz);
        e->val = (e->val & ~(uint64_t)15) | CS_USER;
    }
}

static int in_tcache_bin(const struct ptmalloc *pm, const struct pm_thread *t, uint64_t p, uint64_t size)
{
    uint64_t tidx = csize2tidx(size);
    if (!t->tcache || tidx >= pm->tcache_bins)
        return 0;
    for (uint32_t k = 0; k < t->counts[tidx]; k++)
        if (tc_entry_addr(t->stk[tidx][k]) == p + 16)
            return 1;
    return 0;
}

/* What glibc's free would do with a chunk the program does not hold; NULL if it is held (then
 * *entry is its table entry). */
static const char *check_free(struct ptmalloc *pm, struct pm_thread *t, uint64_t ptr,
                              struct cm_entry **entry)
{
    if (ptr & MALLOC_ALIGN_MASK)
        return "free(): invalid pointer";
    uint64_t p = ptr - 16;
    struct cm_entry *e = cm_find(&pm->map, p);
    *entry = e;
    if (!e) {
        for (uint32_t i = 0; i < pm->arena_count; i++)
            if (pm->arenas[i]->top == p)
                return "double free or corruption (top)";
        return "free(): invalid pointer";
    }
    uint64_t v = e->val;
    enum chunk_state st = cm_state(v);
    uint64_t size = cm_size(v);
    /* a tcache chunk is recorded CS_USER (model.h) */
    if (st == CS_USER && tcache_holds(pm, p, size))
        st = CS_TCACHE;
    else if (__builtin_expect(st == CS_USER || st == CS_MMAPPED, 1))
        return 0;
    struct pm_arena *av = pm->arenas[cm_arena(v)];
    uint64_t tidx = csize2tidx(size);
    int tcache_room = t->tcache && tidx < pm->tcache_bins && t->counts[tidx] < pm->tcache_count;
    switch (st) {
    case CS_INTERNAL:
        return "free(): invalid pointer";
    case CS_TCACHE:
        if (in_tcache_bin(pm, t, p, size))
            return "free(): double free detected in tcache 2";
        return MSG_UNDETECTED;
    case CS_FAST:
        if (!tcache_room && size <= pm->max_fast && av->fastbins[fastbin_index(size)] == p)
            return "double free or corruption (fasttop)";
        return MSG_UNDETECTED;
    default:
        if (tcache_room || size <= pm->max_fast)
            return MSG_UNDETECTED;
        return "double free or corruption (!prev)";
    }
}

static int held_by_program(struct ptmalloc *pm, uint64_t ptr)
{
    if (ptr & MALLOC_ALIGN_MASK)
        return 0;
    struct cm_entry *e = cm_find(&pm->map, ptr - 16);
    if (!e)
        return 0;
    if (cm_state(e->val) == CS_USER)
        return !tcache_holds(pm, ptr - 16, cm_size(e->val));
    return cm_state(e->val) == CS_MMAPPED;
}

/* ---- the malloc family ---- */

static uint64_t libc_malloc(struct ptmalloc *pm, struct pm_thread *t, uint64_t bytes)
{
    uint64_t tbytes = request2size(bytes);
    if (tbytes == 0)
        return 0;
    uint64_t tc_idx = csize2tidx(tbytes);
    maybe_init_tcache(pm, t);
    uint64_t v;
    pm->ret_state = CS_USER;
    if (tc_idx < pm->tcache_bins && t->tcache && t->counts[tc_idx] > 0) {
        v = tcache_get(pm, t, tc_idx);
    } else if (!pm->multi_threaded) {
        v = int_malloc(pm, main_arena(pm), bytes);
    } else {
        struct pm_arena *av = arena_get(pm, t, bytes);
        v = int_malloc(pm, av, bytes);
        if (!v && av) {
            pm->ret_state = CS_INTERNAL;
            av = arena_get_retry(pm, t, av, bytes);
            pm->ret_state = CS_USER;
            v = int_malloc(pm, av, bytes);
        }
    }
    pm->ret_state = CS_INTERNAL;
    return v;
}

static __attribute__((noinline)) struct ptmalloc_result malloc_slow(struct ptmalloc *pm,
                                                                   uint32_t thread, uint64_t size)
{
    struct pm_thread *t = thread_enter(pm, thread);
    if (!t)
        return result(0, PTM_ENOMEM, 0);
    return ok_or_enomem(libc_malloc(pm, t, size));
}

struct ptmalloc_result ptmalloc_malloc(struct ptmalloc *pm, uint32_t thread, uint64_t size)
{
    /* the commonest case first, on its own: a started thread whose tcache has the size */
    struct pm_thread *t;
    if (__builtin_expect(thread < pm->nthreads, 1) && (t = pm->threads[thread]) != 0 &&
        t->started) {
        pm->cur = t;
        if (t->tcache && size <= pm->tcache_max_bytes) {
            uint64_t tc_idx = csize2tidx(request2size(size));
            if (tc_idx < pm->tcache_bins && t->counts[tc_idx] > 0) {
                pm->ret_state = CS_USER;
                uint64_t v = tcache_get(pm, t, tc_idx);
                pm->ret_state = CS_INTERNAL;
                return result(v, PTM_OK, 0);
            }
        }
        return ok_or_enomem(libc_malloc(pm, t, size));
    }
    return malloc_slow(pm, thread, size);
}

static __attribute__((noinline)) struct ptmalloc_result free_slow(struct ptmalloc *pm,
                                                                 uint32_t thread, uint64_t ptr)
{
    struct pm_thread *t = thread_enter(pm, thread);
    if (!t)
        return result(0, PTM_ENOMEM, 0);
    struct cm_entry *e;
    const char *msg = check_free(pm, t, ptr, &e);
    if (msg)
        return result(0, PTM_CORRUPT, msg);
    /* A heap chunk, with the thread's tcache already there (otherwise __libc_free creates it
     * first, which can move table entries): _int_free straight from the table entry. */
    if (t->tcache && cm_state(e->val) == CS_USER) {
        /* _int_free's first step, the tcache, here; the rest in free.c */
        uint64_t tc_idx = csize2tidx(cm_size(e->val));
        if (tc_idx < pm->tcache_bins && t->counts[tc_idx] < pm->tcache_count)
            tcache_put_entry(pm, t, ptr - 16, e, tc_idx, 0);
        else
            int_free_e(pm, pm->arenas[cm_arena(e->val)], ptr - 16, e);
        return result(0, PTM_OK, 0);
    }
    libc_free_chunk(pm, ptr - 16);
    return result(0, PTM_OK, 0);
}

/* Starts fetching what a free or realloc of ptr reads first: the chunk's record, its size field
 * and the two words after it that a tcache free writes (one line unless ptr starts a line).
 * Hints only, whatever ptr is. */
static inline void prefetch_chunk(struct ptmalloc *pm, uint64_t ptr)
{
    cm_prefetch(&pm->map, ptr - 16);
    sysmem_prefetch(pm->mem, ptr - 8, 1);
    if (!(ptr & 63))
        sysmem_prefetch(pm->mem, ptr, 1);
}

void ptmalloc_prefetch(struct ptmalloc *pm, uint64_t ptr)
{
    prefetch_chunk(pm, ptr);
}

struct ptmalloc_result ptmalloc_free(struct ptmalloc *pm, uint32_t thread, uint64_t ptr)
{
    if (ptr == 0)
        return result(0, PTM_OK, 0);
    /* the chunk's record and its lines are needed, and unless a hint came first none is likely
     * to be in the cache: start the fetches now so they overlap */
    prefetch_chunk(pm, ptr);
    /* the commonest case first, on its own: a chunk the program holds going into a tcache with
     * room (anything else, including every error, takes the full path; a tcache chunk is
     * recorded CS_USER, so one whose key word holds the tcache key takes it too) */
    struct pm_thread *t;
    struct cm_entry *e;
    if (__builtin_expect(thread < pm->nthreads, 1) && (t = pm->threads[thread]) != 0 &&
        t->started && t->tcache && !(ptr & MALLOC_ALIGN_MASK) &&
        (e = cm_find(&pm->map, ptr - 16)) != 0 && cm_state(e->val) == CS_USER) {
        uint64_t tc_idx = csize2tidx(cm_size(e->val));
        if (tc_idx < TCACHE_MAX_BINS) {
            /* the key and next words, read here and written by the put (one lookup) */
            uint64_t *w = sysmem_word(pm->mem, ptr);
            if ((w ? w[1] : sysmem_load(pm->mem, ptr + 8)) == pm->tcache_key)
                return free_slow(pm, thread, ptr);
            if (tc_idx < pm->tcache_bins && t->counts[tc_idx] < pm->tcache_count) {
                pm->cur = t;
                tcache_put_entry(pm, t, ptr - 16, e, tc_idx, w);
                return result(0, PTM_OK, 0);
            }
        }
        pm->cur = t;
        int_free_e(pm, pm->arenas[cm_arena(e->val)], ptr - 16, e);
        return result(0, PTM_OK, 0);
    }
    return free_slow(pm, thread, ptr);
}

struct ptmalloc_result ptmalloc_calloc(struct ptmalloc *pm, uint32_t thread, uint64_t nmemb,
                                       uint64_t size)
{
    int64_t bytes;
    if (__builtin_mul_overflow(nmemb, size, &bytes))
        return result(0, PTM_ENOMEM, 0);
    struct pm_thread *t = thread_enter(pm, thread);
    if (!t)
        return result(0, PTM_ENOMEM, 0);
    struct sysmem *m = pm->mem;
    uint64_t sz = (uint64_t)bytes;
    maybe_init_tcache(pm, t);
    struct pm_arena *av = pm->multi_threaded ? arena_get(pm, t, sz) : main_arena(pm);
    uint64_t oldtop = 0, oldtopsize = 0;
    if (av) {
        oldtop = av->top;
        oldtopsize = top_size(m, av);
        /* malloc.c also widens the main arena's figure to sbrk_base + max_system_mem, but
         * Debian's 2.36 binary has no such code (checked in its disassembly): only the top
         * size counts there, so memory re-grown after a trim is cleared as fresh. */
        if (!is_main(av)) {
            uint64_t heap = heap_for_ptr(pm, oldtop);
            uint64_t lim = heap + mem_ld(m, heap + HI_MPROTECT) - oldtop;
            if (oldtopsize < lim)
                oldtopsize = lim;
        }
    }
    pm->ret_state = CS_USER;
    uint64_t mem = int_malloc(pm, av, sz);
    if (pm->multi_threaded && !mem && av) {
        pm->ret_state = CS_INTERNAL;
        av = arena_get_retry(pm, t, av, sz);
        pm->ret_state = CS_USER;
        mem = int_malloc(pm, av, sz);
    }
    pm->ret_state = CS_INTERNAL;
    if (!mem)
        return result(0, PTM_ENOMEM, 0);
    uint64_t p = mem - 16;
    uint64_t head = chunk_head(m, p);
    if (head & IS_MMAPPED) {
        if (pm->perturb)
            pm_touch(pm, mem, sz);
        return result(mem, PTM_OK, 0);
    }
    uint64_t csz = head & ~(uint64_t)SIZE_BITS;
    if (pm->perturb == 0 && p == oldtop && csz > oldtopsize)
        csz = oldtopsize;
    uint64_t clearsize = csz - SIZE_SZ;
    uint64_t nclears = clearsize / 8;
    if (nclears > 9) {
        pm_touch(pm, mem, clearsize);
    } else {
        uint64_t words = 3 + (nclears > 4 ? 2 : 0) + (nclears > 6 ? 2 : 0) + (nclears > 8 ? 2 : 0);
        pm_touch(pm, mem, words * 8);
    }
    return result(mem, PTM_OK, 0);
}

struct ptmalloc_result ptmalloc_realloc(struct ptmalloc *pm, uint32_t thread, uint64_t ptr,
                                        uint64_t size)
{
    struct pm_thread *t = thread_enter(pm, thread);
    if (!t)
        return result(0, PTM_ENOMEM, 0);
    if (size == 0 && ptr != 0) {
        struct ptmalloc_result r = ptmalloc_free(pm, thread, ptr);
        if (r.status == PTM_CORRUPT)
            r.message = "realloc(): invalid pointer";
        return r;
    }
    if (ptr == 0)
        return ptmalloc_malloc(pm, thread, size);
    if (!held_by_program(pm, ptr))
        return result(0, PTM_CORRUPT, "realloc(): invalid pointer");

    struct sysmem *m = pm->mem;
    uint64_t oldp = ptr - 16;
    uint64_t head = chunk_head(m, oldp);
    uint64_t oldsize = head & ~(uint64_t)SIZE_BITS;
    struct pm_arena *ar = 0;
    if (!(head & IS_MMAPPED)) {
        maybe_init_tcache(pm, t);
        struct cm_entry *e = cm_find(&pm->map, oldp);
        ar = (head & NON_MAIN_ARENA) && e ? pm->arenas[cm_arena(e->val)] : main_arena(pm);
    }
    uint64_t nb = request2size(size);
    if (nb == 0)
        return result(0, PTM_ENOMEM, 0);

    if (head & IS_MMAPPED) {
        uint64_t np = mremap_chunk(pm, oldp, nb);
        if (np)
            return result(np + 16, PTM_OK, 0);
        if (oldsize - SIZE_SZ >= nb)
            return result(ptr, PTM_OK, 0);
        uint64_t newmem = libc_malloc(pm, t, size);
        if (!newmem)
            return result(0, PTM_ENOMEM, 0);
        mark_user(pm, newmem);
        sysmem_copy(m, newmem, ptr, oldsize - CHUNK_HDR_SZ);
        munmap_chunk(pm, oldp);
        return result(newmem, PTM_OK, 0);
    }

    uint64_t newp = int_realloc(pm, ar, oldp, oldsize, nb);
    if (!newp && pm->multi_threaded) {
        newp = libc_malloc(pm, t, size);
        if (newp) {
            sysmem_copy(m, newp, ptr, oldsize - SIZE_SZ);
            int_free(pm, ar, oldp);
        }
    }
    if (!newp)
        return result(0, PTM_ENOMEM, 0);
    mark_user(pm, newp);
    return result(newp, PTM_OK, 0);
}

struct ptmalloc_result ptmalloc_reallocarray(struct ptmalloc *pm, uint32_t thread, uint64_t ptr,
                                             uint64_t nmemb, uint64_t size)
{
    uint64_t bytes;
    if (__builtin_mul_overflow(nmemb, size, &bytes))
        return result(0, PTM_ENOMEM, 0);
    return ptmalloc_realloc(pm, thread, ptr, bytes);
}

/* _mid_memalign; *einval set when glibc fails with EINVAL. */
static uint64_t mid_memalign(struct ptmalloc *pm, struct pm_thread *t, uint64_t alignment,
                             uint64_t bytes, int *einval)
{
    *einval = 0;
    if (alignment <= MALLOC_ALIGNMENT)
        return libc_malloc(pm, t, bytes);
    if (alignment < MINSIZE)
        alignment = MINSIZE;
    if (alignment > UINT64_MAX / 2 + 1) {
        *einval = 1;
        return 0;
    }
    if (alignment & (alignment - 1)) {
        uint64_t a = MALLOC_ALIGNMENT * 2;
        while (a < alignment)
            a <<= 1;
        alignment = a;
    }
    if (!pm->multi_threaded)
        return int_memalign(pm, main_arena(pm), alignment, bytes);
    struct pm_arena *av = arena_get(pm, t, bytes + alignment + MINSIZE);
    uint64_t p = av ? int_memalign(pm, av, alignment, bytes) : 0;
    if (!p && av) {
        av = arena_get_retry(pm, t, av, bytes);
        p = av ? int_memalign(pm, av, alignment, bytes) : 0;
    }
    return p;
}

static struct ptmalloc_result memalign_result(struct ptmalloc *pm, uint32_t thread,
                                              uint64_t alignment, uint64_t bytes)
{
    struct pm_thread *t = thread_enter(pm, thread);
    if (!t)
        return result(0, PTM_ENOMEM, 0);
    int einval;
    uint64_t p = mid_memalign(pm, t, alignment, bytes, &einval);
    if (p) {
        mark_user(pm, p);
        return result(p, PTM_OK, 0);
    }
    return result(0, einval ? PTM_EINVAL : PTM_ENOMEM, 0);
}

struct ptmalloc_result ptmalloc_memalign(struct ptmalloc *pm, uint32_t thread, uint64_t alignment,
                                         uint64_t size)
{
    return memalign_result(pm, thread, alignment, size);
}

struct ptmalloc_result ptmalloc_aligned_alloc(struct ptmalloc *pm, uint32_t thread,
                                              uint64_t alignment, uint64_t size)
{
    return memalign_result(pm, thread, alignment, size);
}

struct ptmalloc_result ptmalloc_posix_memalign(struct ptmalloc *pm, uint32_t thread,
                                               uint64_t alignment, uint64_t size)
{
    if (alignment % sizeof(void *) != 0 || ((alignment / 8) & (alignment / 8 - 1)) != 0 ||
        alignment == 0)
        return result(0, PTM_EINVAL, 0);
    struct ptmalloc_result r = memalign_result(pm, thread, alignment, size);
    if (r.status == PTM_EINVAL)
        r.status = PTM_ENOMEM;
    return r;
}

struct ptmalloc_result ptmalloc_valloc(struct ptmalloc *pm, uint32_t thread, uint64_t size)
{
    return memalign_result(pm, thread, PAGESIZE, size);
}

struct ptmalloc_result ptmalloc_pvalloc(struct ptmalloc *pm, uint32_t thread, uint64_t size)
{
    uint64_t rounded;
    if (__builtin_add_overflow(size, (uint64_t)PAGESIZE - 1, &rounded))
        return result(0, PTM_ENOMEM, 0);
    /* glibc masks with -(pagesize - 1), which keeps bit 0: pvalloc(4096) asks for 4097. */
    rounded &= -((uint64_t)PAGESIZE - 1);
    return memalign_result(pm, thread, PAGESIZE, rounded);
}

uint64_t ptmalloc_usable_size(struct ptmalloc *pm, uint64_t ptr)
{
    if (ptr == 0 || (ptr & MALLOC_ALIGN_MASK))
        return 0;
    struct cm_entry *e = cm_find(&pm->map, ptr - 16);
    if (!e)
        return 0;
    enum chunk_state st = cm_state(e->val);
    struct sysmem *m = pm->mem;
    uint64_t p = ptr - 16;
    uint64_t head = chunk_head(m, p);
    uint64_t size = head & ~(uint64_t)SIZE_BITS;
    if (head & IS_MMAPPED)
        return size - CHUNK_HDR_SZ;
    if (st == CS_UNSORTED || st == CS_SMALL || st == CS_LARGE)
        return 0;
    return size - CHUNK_HDR_SZ + SIZE_SZ;
}

int ptmalloc_chunk_arena(struct ptmalloc *pm, uint64_t ptr)
{
    if (ptr < 16 || (ptr & MALLOC_ALIGN_MASK))
        return -1;
    const struct cm_entry *e = cm_find(&pm->map, ptr - 16);
    if (!e)
        return -1;
    if (cm_state(e->val) == CS_MMAPPED)
        return PTMALLOC_CHUNK_MMAPPED;
    return (int)cm_arena(e->val);
}

int ptmalloc_trim(struct ptmalloc *pm, uint32_t thread, uint64_t pad)
{
    if (!thread_enter(pm, thread))
        return 0;
    int result = 0;
    struct pm_arena *a = main_arena(pm);
    do {
        result |= mtrim(pm, a, pad);
        a = a->next;
    } while (a != main_arena(pm));
    return result;
}

void ptmalloc_touch(struct ptmalloc *pm, uint64_t ptr, uint64_t len)
{
    pm_touch(pm, ptr, len);
}

void ptmalloc_set_event_hook(struct ptmalloc *pm,
                             void (*fn)(void *ctx, const struct ptmalloc_event *ev), void *ctx)
{
    pm->hook = fn;
    pm->hook_ctx = ctx;
}

void ptmalloc_current_settings(const struct ptmalloc *pm, struct ptmalloc_settings *s)
{
    memset(s, 0, sizeof *s);
    s->mxfast = pm->mxfast_given;
    s->trim_threshold = pm->trim_threshold;
    s->top_pad = pm->top_pad;
    s->mmap_threshold = pm->mmap_threshold;
    s->mmap_max = pm->n_mmaps_max;
    s->arena_max = pm->arena_max;
    s->arena_test = pm->arena_test;
    s->tcache_count = pm->tcache_count;
    s->tcache_max = pm->tcache_max_bytes;
    s->tcache_unsorted_limit = pm->tcache_unsorted_limit;
    s->perturb = pm->perturb;
    s->hugetlb = pm->hugetlb;
    s->no_dyn_threshold = pm->no_dyn_threshold;
    s->cpu_count = pm->cpu_count;
}

uint64_t ptmalloc_heap_start(const struct ptmalloc *pm)
{
    return sysmem_brk_start(pm->mem);
}
