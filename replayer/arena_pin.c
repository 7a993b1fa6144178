/* arena_pin.c: inferring the arenas the traced threads really used (--arenas recorded).
 *
 * The tracer records the low bits of every returned chunk's size field. A chunk without
 * NON_MAIN_ARENA (and not mmapped) lives in the main arena; one with it lives in a 64 MiB
 * aligned heap, found by masking the pointer. An arena may own several heaps, so heaps are
 * grouped into arenas as they first appear:
 *   - a new arena's first heap holds its malloc_state and the creating thread's tcache
 *     struct before any traced chunk, so its first traced pointer lies at least
 *     ARENA_FIRST_CHUNK_OFFSET into the heap; such a heap starts a new recorded arena, and the
 *     thread that made the allocation is the arena's (first) user;
 *   - a heap whose first pointer lies lower is an extra heap of an existing arena: the arena of
 *     the reallocated chunk for a realloc (glibc reallocates inside the old chunk's arena),
 *     else the arena of the allocating thread.
 * A thread's arena is that of its first "informative" allocation: one that goes through the
 * thread's own arena (malloc, calloc, the memalign family, realloc of NULL or of an mmapped
 * chunk) and does not return a pointer the same thread freed earlier (which could be a tcache
 * hit on a chunk of another arena). Recorded arenas are numbered in order of first appearance,
 * main = 0; the replay pins each thread to the model arena of the same number.
 *
 * One streamed pass over the trace; memory grows with threads, heaps and the pointers freed by
 * one thread and not yet reallocated (a small hash table of those).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "arena_pin.h"
#include "ptr_map.h"
#include "../tracer/trace_format.h"

#define HEAP_ALIGN (64ull << 20)
/* heap_info (0x30) + malloc_state (0x898), rounded: where a new arena's first chunk starts. */
#define ARENA_FIRST_CHUNK_OFFSET 0x8d0ull

struct heap_rec {
    uint64_t base;
    uint32_t arena;
};

struct pin_state {
    struct arena_pin *ap;
    struct heap_rec *heaps;
    size_t nheaps, heap_cap;
    uint8_t *informed;        /* per thread: its arena is settled */
    struct ptr_map freed_by;  /* pointer -> thread that freed it last (val = thread + 1) */
};

static int grow_threads(struct pin_state *ps, uint32_t t)
{
    struct arena_pin *ap = ps->ap;
    if (t < ap->threads)
        return 0;
    uint32_t n = ap->threads ? ap->threads : 8;
    while (n <= t)
        n *= 2;
    int32_t *ta = realloc(ap->thread_arena, n * sizeof *ta);
    uint8_t *inf = realloc(ps->informed, n);
    if (ta)
        ap->thread_arena = ta;
    if (inf)
        ps->informed = inf;
    if (!ta || !inf)
        return -1;
    for (uint32_t i = ap->threads; i < n; i++) {
        ta[i] = -1;
        inf[i] = 0;
    }
    ap->threads = n;
    return 0;
}

static struct heap_rec *find_heap(struct pin_state *ps, uint64_t base)
{
    for (size_t i = 0; i < ps->nheaps; i++)
        if (ps->heaps[ps->nheaps - 1 - i].base == base)
            return &ps->heaps[ps->nheaps - 1 - i];
    return NULL;
}

static struct heap_rec *add_heap(struct pin_state *ps, uint64_t base, uint32_t arena)
{
    if (ps->nheaps == ps->heap_cap) {
        size_t n = ps->heap_cap ? ps->heap_cap * 2 : 16;
        struct heap_rec *h = realloc(ps->heaps, n * sizeof *h);
        if (!h)
            return NULL;
        ps->heaps = h;
        ps->heap_cap = n;
    }
    ps->heaps[ps->nheaps].base = base;
    ps->heaps[ps->nheaps].arena = arena;
    ps->ap->heaps++;
    return &ps->heaps[ps->nheaps++];
}

/* The recorded arena of a returned non-mmapped chunk; -1 on host OOM. `realloc_arena` is the
 * arena of the reallocated chunk (-1 when the call went through the thread's arena). */
static int64_t arena_of(struct pin_state *ps, const struct trace_event *ev, int64_t realloc_arena)
{
    if (!(ev->chunk_flags & TRACE_CHUNK_NON_MAIN_ARENA))
        return 0;
    uint64_t base = ev->ptr & ~(HEAP_ALIGN - 1);
    struct heap_rec *h = find_heap(ps, base);
    if (h)
        return h->arena;
    uint32_t arena;
    if (ev->ptr - base < ARENA_FIRST_CHUNK_OFFSET) {
        if (realloc_arena > 0)
            arena = (uint32_t)realloc_arena;
        else if (ev->thread < ps->ap->threads && ps->ap->thread_arena[ev->thread] > 0)
            arena = (uint32_t)ps->ap->thread_arena[ev->thread];
        else
            arena = ps->ap->arenas++;
    } else {
        arena = ps->ap->arenas++;
    }
    if (!add_heap(ps, base, arena))
        return -1;
    return arena;
}

static int is_alloc(unsigned kind)
{
    switch (kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_CALLOC: case TRACE_EV_REALLOC: case TRACE_EV_REALLOCARRAY:
    case TRACE_EV_MEMALIGN: case TRACE_EV_POSIX_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC:
    case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
        return 1;
    default:
        return 0;
    }
}

static int pin_event(struct pin_state *ps, const struct trace_event *ev)
{
    struct arena_pin *ap = ps->ap;
    if (grow_threads(ps, ev->thread) < 0)
        return -1;
    if (ev->kind == TRACE_EV_FREE || ((ev->kind == TRACE_EV_REALLOC ||
                                       ev->kind == TRACE_EV_REALLOCARRAY) && ev->old_ptr)) {
        uint64_t p = ev->kind == TRACE_EV_FREE ? ev->ptr : ev->old_ptr;
        int was;
        if (p && !ptr_map_put(&ps->freed_by, p, ev->thread + 1ull, 0, &was, NULL, NULL))
            return -1;
    }
    if (!is_alloc(ev->kind) || !ev->ptr || (ev->chunk_flags & TRACE_CHUNK_MMAPPED))
        return 0;

    int64_t realloc_arena = -1;
    int through_thread_arena = 1;
    if ((ev->kind == TRACE_EV_REALLOC || ev->kind == TRACE_EV_REALLOCARRAY) && ev->old_ptr) {
        /* The old chunk's arena: its heap if we saw it, else unknown. */
        through_thread_arena = 0;
        uint64_t base = ev->old_ptr & ~(HEAP_ALIGN - 1);
        struct heap_rec *h = find_heap(ps, base);
        if (h)
            realloc_arena = h->arena;
        else if (ev->old_ptr == ev->ptr)
            realloc_arena = 0;
    }
    int64_t arena = arena_of(ps, ev, realloc_arena);
    if (arena < 0)
        return -1;
    /* A new arena's first traced pointer always settles its thread. */
    struct ptr_entry *f = ptr_map_find(&ps->freed_by, ev->ptr);
    int own_free = f && !ptr_entry_freed(f) &&
                   ptr_entry_val(&ps->freed_by, f) == ev->thread + 1ull;
    if (f)
        ptr_map_remove(&ps->freed_by, f);
    if (!ps->informed[ev->thread] && through_thread_arena && !own_free) {
        ps->informed[ev->thread] = 1;
        ap->thread_arena[ev->thread] = (int32_t)arena;
    }
    return 0;
}

int arena_pin_infer(const char *path, struct arena_pin *ap, char *err, size_t errlen)
{
    memset(ap, 0, sizeof *ap);
    ap->arenas = 1;
    struct pin_state ps = {.ap = ap};
    if (ptr_map_init(&ps.freed_by) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct trace_reader *r = trace_reader_open(path, err, errlen);
    if (!r) {
        ptr_map_free(&ps.freed_by);
        return -1;
    }
    struct trace_event ev;
    int rc, ret = 0;
    while ((rc = trace_reader_next(r, &ev)) == 1) {
        if (pin_event(&ps, &ev) < 0) {
            snprintf(err, errlen, "%s: out of memory while inferring arenas", path);
            ret = -1;
            break;
        }
    }
    /* A read error is reported by the replay pass itself, at its step. */
    trace_reader_close(r);
    ptr_map_free(&ps.freed_by);
    free(ps.heaps);
    free(ps.informed);
    if (ret < 0)
        arena_pin_free(ap);
    return ret;
}

void arena_pin_free(struct arena_pin *ap)
{
    free(ap->thread_arena);
    memset(ap, 0, sizeof *ap);
}
