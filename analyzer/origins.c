/* origins.c: follows allocations and frees to know, for every model chunk, the step and stack of
 * the call that returned it and whether the program has freed it since.
 *
 * An allocation records (step, stack, request) under the model chunk (replayed pointer - 16); a
 * free, or a realloc, marks the allocation of the replayed pointer it released as freed. A chunk the walk shows in use whose origin is missing,
 * freed, or too small for its request is allocator-internal (a tcache struct, for instance). */
#include "origins.h"

int origins_init(struct origins *o)
{
    o->aligned_calls = 0;
    o->threads = 1;
    return chunk_map_init(&o->chunks);
}

void origins_free(struct origins *o)
{
    chunk_map_free(&o->chunks);
}

int origins_is_allocation(unsigned kind)
{
    switch (kind) {
    case TRACE_EV_MALLOC:
    case TRACE_EV_CALLOC:
    case TRACE_EV_REALLOC:
    case TRACE_EV_REALLOCARRAY:
    case TRACE_EV_MEMALIGN:
    case TRACE_EV_POSIX_MEMALIGN:
    case TRACE_EV_ALIGNED_ALLOC:
    case TRACE_EV_VALLOC:
    case TRACE_EV_PVALLOC:
        return 1;
    default:
        return 0;
    }
}

uint64_t origins_request_bytes(const struct trace_event *ev)
{
    switch (ev->kind) {
    case TRACE_EV_CALLOC:
    case TRACE_EV_REALLOCARRAY:
        return ev->nmemb * ev->size;
    case TRACE_EV_PVALLOC:
        return (ev->size + 4095) & ~(uint64_t)4095;
    default:
        return ev->size;
    }
}

int origins_step(struct origins *o, const struct replay_step *s)
{
    const struct trace_event *ev = s->event;
    if (!ev)
        return 0;
    if (ev->thread + 1 > o->threads)
        o->threads = ev->thread + 1;
    /* The model freed a block whose free the trace missed, before performing this event. */
    if ((s->did & REPLAY_DID_UNTRACED_FREE) && s->implied_free_ptr)
        chunk_map_mark_freed(&o->chunks, s->implied_free_ptr - 16);
    if (s->skipped)
        return 0;
    unsigned k = ev->kind;
    if (k == TRACE_EV_FREE) {
        if (s->replayed_old_ptr)
            chunk_map_mark_freed(&o->chunks, s->replayed_old_ptr - 16);
        return 0;
    }
    if (!origins_is_allocation(k))
        return 0;
    if (k == TRACE_EV_MEMALIGN || k == TRACE_EV_POSIX_MEMALIGN || k == TRACE_EV_ALIGNED_ALLOC ||
        k == TRACE_EV_VALLOC || k == TRACE_EV_PVALLOC)
        o->aligned_calls++;
    if ((k == TRACE_EV_REALLOC || k == TRACE_EV_REALLOCARRAY) && s->replayed_old_ptr) {
        /* A failed realloc keeps the old block; a realloc in place is recorded again below. */
        if (!(s->replayed_ptr == 0 && ev->err != 0))
            chunk_map_mark_freed(&o->chunks, s->replayed_old_ptr - 16);
    }
    if (!s->replayed_ptr)
        return 0;
    uint64_t req = s->request_bytes ? s->request_bytes : origins_request_bytes(ev);
    struct chunk_origin org = {.step = s->step, .stack = ev->stack_id,
                               .request = req > 0x7fffffffu ? 0x7fffffffu : (uint32_t)req,
                               .freed = 0, .arena = s->arena};
    uint64_t chunk = s->replayed_ptr - 16;
    return chunk_map_put(&o->chunks, chunk, &org);
}
