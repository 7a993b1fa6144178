/* tcache.c: the per-thread cache (tcache_perthread_struct), its lazy creation and thread exit.
 *
 * The struct is a 640-byte chunk allocated through _int_malloc on a thread's first
 * malloc/free/realloc/calloc (even with tcache_count 0) and zeroed, which the model writes into
 * simulated memory. Its counts and entry lists are then kept host-side in struct pm_thread (the
 * struct's page is resident for as long as it exists, so skipping the stores changes nothing),
 * each bin as a small stack whose top is the bin's head. The entries themselves live in the
 * freed chunks: next (safe-linked) at chunk+16 and the key at chunk+24, written in simulated
 * memory exactly as glibc writes them; popping needs no load. The hot paths (link, put from the
 * free path, get) are inline in model.h. A chunk in a tcache stays CS_USER in the chunk table
 * (glibc too sees it in use); the per-arena counters count it CS_TCACHE, and its arena index
 * rides in its stack word, so put and get update them without the table. Whether a CS_USER
 * chunk is in a tcache is answered as glibc answers it: its key word, then a scan of the bin
 * (tcache_holds).
 */
#include "model.h"

#include <stdlib.h>

/* Room for one more entry in bin tc_idx's stack (the inline paths in model.h call this when full). */
void tcache_grow(struct pm_thread *t, uint64_t tc_idx)
{
    uint32_t cap = t->cap[tc_idx] ? t->cap[tc_idx] * 2 : 8;
    uint64_t *s = realloc(t->stk[tc_idx], cap * sizeof *s);
    if (!s)
        abort();   /* host out of memory: the model cannot continue consistently */
    t->stk[tc_idx] = s;
    t->cap[tc_idx] = cap;
}

void tcache_put(struct ptmalloc *pm, struct pm_thread *t, uint64_t chunk, uint64_t size,
                uint32_t arena, uint64_t tc_idx)
{
    tcache_link(pm, t, chunk, tc_idx, arena, 0);
    /* recorded CS_USER in the table, counted CS_TCACHE */
    struct cm_entry *e = cm_probe(&pm->map, chunk);
    uint64_t v = cm_pack(CS_USER, arena, size);
    if (e->key != 0) {
        stat_sub(pm, e->val);
        e->val = v;
    } else if (cm_claim(&pm->map, e, chunk, v) != 0) {
        abort();   /* host out of memory: the model cannot continue consistently */
    }
    st_enter(pm->arenas[arena], CS_TCACHE, size);
}

void tcache_get_relabel(struct ptmalloc *pm, uint64_t p, struct pm_arena *a, uint64_t size,
                        enum chunk_state st)
{
    struct cm_entry *ce = cm_find(&pm->map, p);
    if (ce) {
        st_leave(a, CS_TCACHE, size);
        st_enter(a, st, size);
        ce->val = (ce->val & ~(uint64_t)15) | st;
    }
}

/* A chunk whose key word matches: is it an entry of its size's bin in some thread's tcache?
 * (A chunk that left a tcache at a thread's exit keeps the key, as in glibc, so the key alone
 * does not say.) */
int tcache_holds_slow(const struct ptmalloc *pm, uint64_t p, uint64_t size)
{
    uint64_t idx = csize2tidx(size);
    for (uint32_t i = 0; i < pm->nthreads; i++) {
        const struct pm_thread *t = pm->threads[i];
        if (!t)
            continue;
        for (uint32_t k = t->counts[idx]; k-- > 0;)
            if (tc_entry_addr(t->stk[idx][k]) == p + 16)
                return 1;
    }
    return 0;
}

void tcache_init(struct ptmalloc *pm, struct pm_thread *t)
{
    if (t->shutting_down)
        return;
    enum chunk_state saved = pm->ret_state;
    pm->ret_state = CS_INTERNAL;
    struct pm_arena *av = arena_get(pm, t, TCACHE_STRUCT_SIZE);
    uint64_t victim = av ? int_malloc(pm, av, TCACHE_STRUCT_SIZE) : 0;
    if (!victim && av) {
        av = arena_get_retry(pm, t, av, TCACHE_STRUCT_SIZE);
        victim = av ? int_malloc(pm, av, TCACHE_STRUCT_SIZE) : 0;
    }
    pm->ret_state = saved;
    if (!victim)
        return;
    t->tcache = victim;
    for (unsigned i = 0; i < TCACHE_STRUCT_SIZE; i += 8)
        mem_st(pm->mem, victim + i, 0);
    for (int i = 0; i < TCACHE_MAX_BINS; i++)
        t->counts[i] = 0;
}

void tcache_release(struct pm_thread *t)
{
    for (int i = 0; i < TCACHE_MAX_BINS; i++) {
        free(t->stk[i]);
        t->stk[i] = 0;
        t->cap[i] = 0;
        t->counts[i] = 0;
    }
}

/* glibc's tcache_thread_shutdown: every entry, bin 0 to 63 from the head, then the struct
 * itself, through the public free (which no longer sees a tcache). */
void tcache_thread_shutdown(struct ptmalloc *pm, struct pm_thread *t)
{
    uint64_t tc = t->tcache;
    t->shutting_down = 1;
    if (!tc)
        return;
    t->tcache = 0;
    for (int i = 0; i < TCACHE_MAX_BINS; i++) {
        while (t->counts[i]) {
            uint64_t w = t->stk[i][--t->counts[i]];
            uint64_t e = tc_entry_addr(w);
            /* out of the tcache (counted CS_TCACHE) and, until freed, malloc's own */
            tcache_get_relabel(pm, e - 16, pm->arenas[tc_entry_arena(w)], MINSIZE + 16 * (uint64_t)i,
                               CS_INTERNAL);
            libc_free_chunk(pm, e - 16);
        }
    }
    libc_free_chunk(pm, tc - 16);
    tcache_release(t);
}
