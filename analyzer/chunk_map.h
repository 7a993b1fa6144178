/* chunk_map.h: model chunk address -> the step and call site of the allocation that last
 * returned it (internal to the analyzer). */
#ifndef FRAGSCOPE_CHUNK_MAP_H
#define FRAGSCOPE_CHUNK_MAP_H

#include <stdint.h>

struct chunk_origin {
    uint64_t step;          /* 0 = unknown */
    uint32_t stack;
    uint32_t request : 31;  /* requested bytes, saturated at 2^31 - 1 */
    uint32_t freed : 1;     /* the program has freed it since */
    int32_t arena;          /* the arena of the thread that allocated it (-1 unknown) */
};

struct chunk_map {
    uint64_t *keys;         /* chunk addresses; 0 = empty slot */
    struct chunk_origin *values;
    uint64_t cap, count;    /* cap is a power of two */
};

int chunk_map_init(struct chunk_map *m);
void chunk_map_free(struct chunk_map *m);
/* Records (or replaces) the origin of the chunk at `address`. -1 on host OOM. */
int chunk_map_put(struct chunk_map *m, uint64_t address, const struct chunk_origin *o);
/* The origin, or NULL. */
const struct chunk_origin *chunk_map_get(const struct chunk_map *m, uint64_t address);
/* Marks the chunk's allocation as freed (kept for blaming the site of a cached free chunk). */
void chunk_map_mark_freed(struct chunk_map *m, uint64_t address);

#endif
