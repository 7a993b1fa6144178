/* origins.h: which step and call site allocated each model chunk, followed step by step
 * (internal to the analyzer; used by ingest and by the analysis replays). */
#ifndef FRAGSCOPE_ORIGINS_H
#define FRAGSCOPE_ORIGINS_H

#include "../replayer/replay.h"
#include "chunk_map.h"

struct origins {
    struct chunk_map chunks;     /* model chunk -> allocation */
    uint64_t aligned_calls;      /* memalign family calls seen (for the aligned-leftover finding) */
    uint32_t threads;            /* highest thread index seen + 1 */
};

int origins_init(struct origins *o);
void origins_free(struct origins *o);
/* Follows one step. -1 on host OOM. */
int origins_step(struct origins *o, const struct replay_step *s);
/* Requested bytes of an event (calloc: nmemb * size; pvalloc: page-rounded). */
uint64_t origins_request_bytes(const struct trace_event *ev);
int origins_is_allocation(unsigned kind);

#endif
