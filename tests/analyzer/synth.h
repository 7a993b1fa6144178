/* synth.h: synthetic replay steps for the analyzer tests (no trace, no model). */
#ifndef FRAGSCOPE_TEST_SYNTH_H
#define FRAGSCOPE_TEST_SYNTH_H

#include <stdlib.h>
#include <string.h>
#include "analyzer.h"

/* A tiny deterministic heap story in phases of 2000 steps: growing phases allocate two steps in
 * three and free the oldest live block on the third, shrinking phases the other way round; the
 * other counters follow simple formulas of the live data. */
struct synth {
    struct trace_event ev;
    struct replay_step s;
    uint64_t ptrs[1 << 16], sizes[1 << 16];
    uint64_t head, tail, live;
};

static inline void synth_init(struct synth *y)
{
    memset(y, 0, sizeof *y);
    y->s.event = &y->ev;
}

/* The live bytes after step i, for checks. */
static inline uint64_t synth_size(uint64_t i)
{
    return 16 + (i * 7919) % 2000;
}

static inline const struct replay_step *synth_next(struct synth *y)
{
    uint64_t i = ++y->s.step;
    y->ev.seq = i;
    y->ev.time_ns = i * 1000;
    y->ev.stack_id = 1 + (uint32_t)(i % 5);
    y->s.did = 0;
    y->s.replayed_old_ptr = 0;
    int shrinking = (i / 2000) % 2 == 1;
    if ((shrinking ? i % 3 != 0 : i % 3 == 0) && y->tail < y->head) {
        uint64_t k = y->tail++ & 0xffff;
        y->ev.kind = TRACE_EV_FREE;
        y->ev.ptr = y->ptrs[k];
        y->s.replayed_old_ptr = y->ptrs[k];
        y->s.replayed_ptr = 0;
        y->s.request_bytes = 0;
        y->live -= y->sizes[k];
    } else {
        uint64_t k = y->head++ & 0xffff;
        y->ev.kind = TRACE_EV_MALLOC;
        y->ev.size = synth_size(i);
        y->sizes[k] = y->ev.size;
        y->ptrs[k] = y->ev.ptr = y->s.replayed_ptr = 0x10000 + i * 4096;
        y->s.request_bytes = y->ev.size;
        y->live += y->ev.size;
    }
    y->s.live_bytes = y->live;
    struct ptmalloc_stats *st = &y->s.stats;
    st->in_use_bytes = y->live + 16 * (y->head - y->tail);
    st->in_use_count = y->head - y->tail;
    st->system_bytes = ((st->in_use_bytes >> 16) + 2) << 16;
    st->top_bytes = st->system_bytes - st->in_use_bytes;
    st->largest_free = st->top_bytes;
    st->resident_bytes = st->system_bytes - 4096;
    st->tcache_count = i % 8;
    st->tcache_bytes = 32 * (i % 8);
    st->arena_count = 1;
    y->s.arena = 0;
    return &y->s;
}

#endif
