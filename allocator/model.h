/* model.h: the model object (struct ptmalloc) and the internal interfaces between allocator files.
 *
 * struct ptmalloc holds what glibc keeps in globals: the parameters (mp_), the arenas and their
 * ring, the arena free list, per-thread state (arena, tcache), the mmapped-chunk counters, plus
 * the model's own bookkeeping: the chunk table (chunkmap.h), the main arena's memory segments
 * (for walks) and the event hook. Internal functions mirror glibc's (_int_malloc, _int_free,
 * sysmalloc, ...) and keep glibc's names where a reader would look for them.
 */
#ifndef FRAGSCOPE_MODEL_H
#define FRAGSCOPE_MODEL_H

#include <stdint.h>
#include <stdlib.h>
#include "ptmalloc.h"
#include "arena.h"
#include "chunkmap.h"

struct pm_thread {
    uint8_t started;
    uint8_t shutting_down;
    struct pm_arena *arena;           /* glibc's thread_arena */
    uint64_t tcache;                  /* user address of the tcache_perthread_struct; 0 = none */
    uint16_t counts[TCACHE_MAX_BINS]; /* host copy of tcache->counts */
    /* Host copy of each bin's list as a stack (bottom = oldest entry, top = tcache->entries[i]);
     * the simulated chunks hold the same list (next, key), written as glibc writes it. Each
     * stack word is the entry's address (chunk + 16, below 2^48) with the chunk's arena index
     * in the top 16 bits (TC_ENTRY_* below): the chunk table records a tcache chunk as CS_USER,
     * in use as glibc sees it, so that a tcache put or get need not look the chunk up. */
    uint64_t *stk[TCACHE_MAX_BINS];
    uint32_t cap[TCACHE_MAX_BINS];
};
#define TC_ENTRY_ARENA_SHIFT 48
static inline uint64_t tc_entry_addr(uint64_t w) { return w & (((uint64_t)1 << TC_ENTRY_ARENA_SHIFT) - 1); }
static inline uint32_t tc_entry_arena(uint64_t w) { return (uint32_t)(w >> TC_ENTRY_ARENA_SHIFT); }
static inline uint64_t tcache_head(const struct pm_thread *t, unsigned i)
{
    return t->counts[i] ? tc_entry_addr(t->stk[i][t->counts[i] - 1]) : 0;
}

struct pm_seg {
    uint64_t start, end;              /* a piece of main-arena memory (break area or mmap fallback) */
};

struct ptmalloc {
    struct sysmem *mem;
    struct chunkmap map;

    /* Parameters (glibc's mp_, global_max_fast, perturb_byte). */
    uint64_t max_fast;
    uint64_t mxfast_given;
    uint64_t trim_threshold, top_pad, mmap_threshold;
    int32_t n_mmaps_max;
    int no_dyn_threshold;
    uint64_t arena_test, arena_max;
    uint64_t tcache_bins, tcache_max_bytes, tcache_count, tcache_unsorted_limit;
    int32_t perturb;
    int32_t hugetlb;
    uint64_t thp_pagesize;            /* hugetlb=1 on a madvise-mode THP system: 2 MiB */
    uint64_t hp_pagesize;             /* hugetlb>=2: huge pages requested (never available here) */
    int always_fail_morecore;
    uint32_t cpu_count;

    /* Global state. */
    uint64_t n_mmaps, max_n_mmaps, mmapped_mem, max_mmapped_mem;
    uint64_t sbrk_base;
    uint64_t tcache_key;
    struct pm_arena **arenas;         /* by index; arenas[0] is the main arena */
    uint32_t arena_count, arena_cap;
    uint64_t narenas;                 /* glibc's narenas */
    uint64_t narenas_limit;
    struct pm_arena *free_list;
    struct pm_arena *next_to_use;
    uint64_t aligned_heap_area;

    struct pm_seg *segs;              /* main arena segments in creation order */
    uint32_t nsegs, segs_cap;

    struct pm_thread **threads;         /* by thread index, allocated on first use */
    uint32_t nthreads;
    int multi_threaded;
    struct pm_thread *cur;            /* the thread making the current call */
    enum chunk_state ret_state;       /* state given to chunks _int_malloc hands out */

    void (*hook)(void *ctx, const struct ptmalloc_event *ev);
    void *hook_ctx;
};

static inline struct pm_arena *main_arena(struct ptmalloc *pm) { return pm->arenas[0]; }
static inline int is_main(const struct pm_arena *av) { return av->index == 0; }

/* The per-arena counters as a chunk of `size` enters or leaves state st (with the tcache size
 * classes and the unsorted bound that ptmalloc_stats reads). */
static inline void st_enter(struct pm_arena *a, enum chunk_state st, uint64_t size)
{
    a->st_count[st]++;
    a->st_bytes[st] += size;
    if (st == CS_TCACHE) {
        unsigned c = tc_class(size);
        a->tc_n[c]++;
        a->tc_map |= (uint64_t)1 << c;   /* (no branch on whether it was clear) */
    } else if (st == CS_UNSORTED && size > a->unsorted_max) {
        a->unsorted_max = size;
    }
}
static inline void st_leave(struct pm_arena *a, enum chunk_state st, uint64_t size)
{
    a->st_count[st]--;
    a->st_bytes[st] -= size;
    if (st == CS_TCACHE) {
        unsigned c = tc_class(size);
        uint64_t empty = --a->tc_n[c] == 0;
        a->tc_map &= ~(empty << c);      /* (no branch on whether the class emptied) */
    } else if (st == CS_UNSORTED && size >= a->unsorted_max) {
        a->unsorted_exact = 0;
    }
}

/* Chunk table updates with the per-arena counters. */
static inline void stat_sub(struct ptmalloc *pm, uint64_t v)
{
    st_leave(pm->arenas[cm_arena(v)], cm_state(v), cm_size(v));
}
static inline void chunk_note(struct ptmalloc *pm, uint64_t p, uint64_t size, uint32_t arena,
                              enum chunk_state st)
{
    struct cm_entry *e = cm_probe(&pm->map, p);
    uint64_t v = cm_pack(st, arena, size);
    if (__builtin_expect(e->key != 0, 1)) {
        stat_sub(pm, e->val);
        e->val = v;
    } else if (cm_claim(&pm->map, e, p, v) != 0) {
        abort();   /* host out of memory: the model cannot continue consistently */
    }
    st_enter(pm->arenas[arena], st, size);
}
/* chunk_note for a chunk the caller knows is recorded as (from, arena, size), changing only its
 * state: both states known here, so the counters need no decoding and fold to constants (a
 * record that differs takes chunk_note). */
static inline void chunk_move(struct ptmalloc *pm, uint64_t p, uint64_t size, uint32_t arena,
                              enum chunk_state from, enum chunk_state to)
{
    struct cm_entry *e = cm_probe(&pm->map, p);
    uint64_t v = cm_pack(from, arena, size);
    if (__builtin_expect(e->key != 0 && e->val == v, 1)) {
        struct pm_arena *a = pm->arenas[arena];
        st_leave(a, from, size);
        st_enter(a, to, size);
        e->val = (v & ~(uint64_t)15) | to;
    } else {
        chunk_note(pm, p, size, arena, to);
    }
}
static inline void chunk_forget(struct ptmalloc *pm, uint64_t p)
{
    struct cm_entry *e = cm_find(&pm->map, p);
    if (e) {
        stat_sub(pm, e->val);
        cm_del_entry(&pm->map, e);
    }
}

/* events.c-like helper (ptmalloc.c) */
void pm_event(struct ptmalloc *pm, enum ptmalloc_event_kind kind, uint32_t arena, uint64_t addr,
              uint64_t len);
void pm_touch(struct ptmalloc *pm, uint64_t addr, uint64_t len);

/* sysmem with events (sysmalloc.c) */
uint64_t pm_sbrk(struct ptmalloc *pm, int64_t incr);
uint64_t pm_mmap(struct ptmalloc *pm, uint32_t arena, uint64_t hint, uint64_t len, int prot);
int pm_munmap(struct ptmalloc *pm, uint32_t arena, uint64_t addr, uint64_t len);
void pm_seg_extend(struct ptmalloc *pm, uint64_t old_end, uint64_t new_end);
void pm_seg_add(struct ptmalloc *pm, uint64_t start, uint64_t end);

/* bins.c */
void unlink_chunk(struct ptmalloc *pm, struct pm_arena *av, uint64_t p);
void unsorted_push_front(struct ptmalloc *pm, struct pm_arena *av, uint64_t p, uint64_t size);
void bin_file(struct ptmalloc *pm, struct pm_arena *av, uint64_t victim, uint64_t size);
void arena_init_state(struct ptmalloc *pm, struct pm_arena *av);

/* tcache.c */
void tcache_put(struct ptmalloc *pm, struct pm_thread *t, uint64_t chunk, uint64_t size,
                uint32_t arena, uint64_t tc_idx);
void tcache_init(struct ptmalloc *pm, struct pm_thread *t);
void tcache_thread_shutdown(struct ptmalloc *pm, struct pm_thread *t);
void tcache_release(struct pm_thread *t);
void tcache_grow(struct pm_thread *t, uint64_t tc_idx);

/* Whether the chunk at p, recorded as CS_USER with `size`, is in fact in a tcache (of any
 * thread), answered as glibc would look: its key word, then the bin's entries (tcache.c). */
int tcache_holds_slow(const struct ptmalloc *pm, uint64_t p, uint64_t size);
static inline int tcache_holds(struct ptmalloc *pm, uint64_t p, uint64_t size)
{
    if (csize2tidx(size) >= TCACHE_MAX_BINS || sysmem_load(pm->mem, p + 24) != pm->tcache_key)
        return 0;
    return tcache_holds_slow(pm, p, size);
}
/* tcache_get's relabelling when the chunk is to be recorded other than CS_USER (tcache.c). */
void tcache_get_relabel(struct ptmalloc *pm, uint64_t p, struct pm_arena *a, uint64_t size,
                        enum chunk_state st);

/* The tcache's hot paths, inline (tcache.c describes the host-side stacks). w, when not NULL,
 * is sysmem_word(chunk + 16), obtained with no sysmem call since. */
static inline void tcache_link(struct ptmalloc *pm, struct pm_thread *t, uint64_t chunk,
                               uint64_t tc_idx, uint32_t arena, uint64_t *w)
{
    uint64_t e = chunk + 16;
    /* glibc writes the key, then next */
    uint64_t next = protect_ptr(e, tcache_head(t, (unsigned)tc_idx));
    if (w) {
        w[0] = next;
        w[1] = pm->tcache_key;
    } else {
        sysmem_store_pair(pm->mem, e, next, pm->tcache_key);
    }
    uint32_t n = t->counts[tc_idx];
    if (__builtin_expect(n == t->cap[tc_idx], 0))
        tcache_grow(t, tc_idx);
    t->stk[tc_idx][n] = e | ((uint64_t)arena << TC_ENTRY_ARENA_SHIFT);
    t->counts[tc_idx] = (uint16_t)(n + 1);
}
/* tcache_put for a chunk whose table entry the caller holds (the free fast path); w as for
 * tcache_link. */
static inline void tcache_put_entry(struct ptmalloc *pm, struct pm_thread *t, uint64_t chunk,
                                    struct cm_entry *ce, uint64_t tc_idx, uint64_t *w)
{
    uint64_t v = ce->val;
    uint32_t arena = cm_arena(v);
    tcache_link(pm, t, chunk, tc_idx, arena, w);
    struct pm_arena *a = pm->arenas[arena];
    st_leave(a, cm_state(v), cm_size(v));
    st_enter(a, CS_TCACHE, cm_size(v));
    if (cm_state(v) != CS_USER)
        ce->val = v & ~(uint64_t)15;
}
/* Pops the head of a tcache bin; the chunk takes pm->ret_state (CS_USER, its table record
 * already, needs no lookup). */
static inline uint64_t tcache_get(struct ptmalloc *pm, struct pm_thread *t, uint64_t tc_idx)
{
    uint64_t w = t->stk[tc_idx][--t->counts[tc_idx]];
    uint64_t e = tc_entry_addr(w);
    sysmem_store(pm->mem, e + 8, 0);
    struct pm_arena *a = pm->arenas[tc_entry_arena(w)];
    uint64_t size = MINSIZE + 16 * tc_idx;
    enum chunk_state st = pm->ret_state;
    if (__builtin_expect(st == CS_USER, 1)) {
        st_leave(a, CS_TCACHE, size);
        st_enter(a, CS_USER, size);
    } else {
        tcache_get_relabel(pm, e - 16, a, size, st);
    }
    return e;
}
static inline void maybe_init_tcache(struct ptmalloc *pm, struct pm_thread *t)
{
    if (t->tcache == 0)
        tcache_init(pm, t);
}

/* malloc.c */
uint64_t int_malloc(struct ptmalloc *pm, struct pm_arena *av, uint64_t bytes);
void alloc_perturb(struct ptmalloc *pm, uint64_t mem, uint64_t n);

/* free.c */
void int_free(struct ptmalloc *pm, struct pm_arena *av, uint64_t p);
void int_free_e(struct ptmalloc *pm, struct pm_arena *av, uint64_t p, struct cm_entry *e);
void munmap_chunk(struct ptmalloc *pm, uint64_t p);
/* The public free of a chunk already validated (used by thread exit too). */
void libc_free_chunk(struct ptmalloc *pm, uint64_t p);

/* consolidate.c */
void malloc_consolidate(struct ptmalloc *pm, struct pm_arena *av);

/* sysmalloc.c */
uint64_t sysmalloc(struct ptmalloc *pm, uint64_t nb, struct pm_arena *av);

/* trim.c */
int systrim(struct ptmalloc *pm, uint64_t pad, struct pm_arena *av);
int mtrim(struct ptmalloc *pm, struct pm_arena *av, uint64_t pad);

/* arena.c */
uint64_t new_heap(struct ptmalloc *pm, uint32_t arena, uint64_t size, uint64_t top_pad);
int grow_heap(struct ptmalloc *pm, struct pm_arena *av, uint64_t h, int64_t diff);
int heap_trim(struct ptmalloc *pm, struct pm_arena *av, uint64_t heap, uint64_t pad);
static inline uint64_t heap_max_size(const struct ptmalloc *pm)
{
    return pm->hp_pagesize ? pm->hp_pagesize * 4 : HEAP_MAX_SIZE;
}
static inline uint64_t heap_for_ptr(const struct ptmalloc *pm, uint64_t p)
{
    return p & ~(heap_max_size(pm) - 1);
}
struct pm_arena *arena_get(struct ptmalloc *pm, struct pm_thread *t, uint64_t size);
struct pm_arena *arena_get_retry(struct ptmalloc *pm, struct pm_thread *t, struct pm_arena *av,
                                 uint64_t bytes);
struct pm_arena *arena_new(struct ptmalloc *pm, struct pm_thread *t, uint64_t size);
void arena_thread_exit(struct ptmalloc *pm, struct pm_thread *t);
void arena_pin(struct ptmalloc *pm, struct pm_thread *t, struct pm_arena *a);

/* realloc.c, memalign.c */
uint64_t int_realloc(struct ptmalloc *pm, struct pm_arena *av, uint64_t oldp, uint64_t oldsize,
                     uint64_t nb);
uint64_t int_memalign(struct ptmalloc *pm, struct pm_arena *av, uint64_t alignment, uint64_t bytes);
uint64_t mremap_chunk(struct ptmalloc *pm, uint64_t p, uint64_t new_size);

/* arena.c: the main arena object */
struct pm_arena *arena_create_main(struct ptmalloc *pm);

#endif
