/* ptr_map.h: traced pointer -> replayed chunk, for the replayer (internal).
 *
 * An open-addressing hash table (linear probing, backward-shift deletion, power-of-two
 * capacity) keyed by the pointer the traced program saw. A live entry holds the replayed
 * pointer and the request size; a freed entry is kept as a tombstone (with the step of its
 * free) so that a second free of the same pointer is recognised as a double free. Tombstones
 * are purged whenever they outnumber the live entries and the table would otherwise grow, so
 * memory follows the live set: a double free long after the first free may then be counted as
 * a free of an unknown pointer instead.
 */
#ifndef FRAGSCOPE_PTR_MAP_H
#define FRAGSCOPE_PTR_MAP_H

#include <stddef.h>
#include <stdint.h>

struct ptr_entry {       /* 32 bytes: two per cache line */
    uint64_t key;       /* traced pointer; 0 = empty slot */
    uint64_t val;       /* replayed pointer (live entries) */
    union {
        uint64_t size;  /* live: request size in bytes */
        uint64_t step;  /* freed: the step of the free */
    };
    uint32_t freed;     /* 1 = tombstone */
    uint32_t thread;    /* thread that allocated it */
};

struct ptr_map {
    struct ptr_entry *slots;
    uint64_t mask;      /* capacity - 1 */
    uint64_t live, freed;
    unsigned shift;     /* 64 - log2(capacity) */
    size_t mapped;      /* bytes mmap'd for the slots (large tables), 0 = calloc'd */
};

int ptr_map_init(struct ptr_map *m);
void ptr_map_free(struct ptr_map *m);

/* The entry for `key` (live or freed), or NULL. Valid until the next insert. */
struct ptr_entry *ptr_map_find(struct ptr_map *m, uint64_t key);

/* Inserts or overwrites a live entry. Returns it, or NULL on host OOM. If a live entry with
 * this key already existed, *was_live is set to 1 and *old receives it (a missed free). */
struct ptr_entry *ptr_map_put(struct ptr_map *m, uint64_t key, uint64_t val, uint64_t size,
                              uint32_t thread, int *was_live, struct ptr_entry *old);

/* Turns the live entry e into a tombstone freed at `step`. */
void ptr_map_mark_freed(struct ptr_map *m, struct ptr_entry *e, uint64_t step);

/* Removes e (live or freed) outright. */
void ptr_map_remove(struct ptr_map *m, struct ptr_entry *e);

/* Host bytes used. */
size_t ptr_map_bytes(const struct ptr_map *m);

#endif
