/* ptr_map.h: traced pointer -> replayed chunk, for the replayer (internal).
 *
 * An open-addressing hash table (linear probing, backward-shift deletion, power-of-two
 * capacity) of 16-byte slots keyed by the pointer the traced program saw: four slots per cache
 * line. A live entry holds a value (the replayed pointer, or an op index) and the request size,
 * packed into one word when the value fits in 48 bits and the size in 15 (almost always); other
 * entries keep both in a small side table. A freed entry is kept as a tombstone with the step
 * of its free, so that a second free of the same pointer is recognised as a double free.
 * Tombstones are purged in place whenever they outnumber the live entries and the table would
 * otherwise grow, so memory follows the live set: a double free long after the first free may
 * then be counted as a free of an unknown pointer instead.
 */
#ifndef FRAGSCOPE_PTR_MAP_H
#define FRAGSCOPE_PTR_MAP_H

#include <stddef.h>
#include <stdint.h>

struct ptr_entry {       /* 16 bytes */
    uint64_t key;        /* traced pointer; 0 = empty slot */
    uint64_t word;       /* PTR_FREED | step, or (size code << 48) | value (see ptr_map.c) */
};

#define PTR_FREED (1ull << 63)

/* Entries whose value or size does not fit in the packed word. */
struct ptr_spill {
    struct ptr_spill_entry {
        uint64_t key, val, size;
    } *slots;
    uint64_t mask, count;   /* capacity - 1 (0: no table yet) */
};

struct ptr_map {
    struct ptr_entry *slots;
    uint64_t mask;      /* capacity - 1 */
    uint64_t live, freed;
    unsigned shift;     /* 64 - log2(capacity) */
    size_t mapped;      /* bytes mmap'd for the slots (large tables), 0 = calloc'd */
    struct ptr_spill spill;
};

int ptr_map_init(struct ptr_map *m);
void ptr_map_free(struct ptr_map *m);

/* The entry for `key` (live or freed), or NULL. Valid until the next put. */
struct ptr_entry *ptr_map_find(struct ptr_map *m, uint64_t key);

/* Asks the CPU to bring key's home slot into the cache (a find for it is coming). Always
 * inlined: GCC takes a function that only prefetches for pure, and drops its calls. */
__attribute__((always_inline)) static inline void ptr_map_prefetch(const struct ptr_map *m,
                                                                   uint64_t key)
{
    __builtin_prefetch(&m->slots[(key * 0x9E3779B97F4A7C15ull) >> m->shift], 1, 3);
}

/* Inserts or overwrites a live entry. Returns it, or NULL on host OOM (the map unchanged). If a
 * live entry with this key already existed (a missed free), *was_live is set to 1 and its value
 * and size go to *old_val and *old_size (either may be NULL). */
struct ptr_entry *ptr_map_put(struct ptr_map *m, uint64_t key, uint64_t val, uint64_t size,
                              int *was_live, uint64_t *old_val, uint64_t *old_size);

/* Reading an entry. */
static inline int ptr_entry_freed(const struct ptr_entry *e)
{
    return (e->word & PTR_FREED) != 0;
}
/* Freed entries: the step of the free. */
static inline uint64_t ptr_entry_step(const struct ptr_entry *e)
{
    return e->word & ~PTR_FREED;
}
uint64_t ptr_map_spilled_val(const struct ptr_map *m, uint64_t key);
uint64_t ptr_map_spilled_size(const struct ptr_map *m, uint64_t key);
#define PTR_SIZE_SPILLED 0x7fffull
/* Live entries: the value and the request size. */
static inline uint64_t ptr_entry_val(const struct ptr_map *m, const struct ptr_entry *e)
{
    if ((e->word >> 48) == PTR_SIZE_SPILLED)
        return ptr_map_spilled_val(m, e->key);
    return e->word & ((1ull << 48) - 1);
}
static inline uint64_t ptr_entry_size(const struct ptr_map *m, const struct ptr_entry *e)
{
    if ((e->word >> 48) == PTR_SIZE_SPILLED)
        return ptr_map_spilled_size(m, e->key);
    return e->word >> 48;
}

/* Replaces the value of live entry e (its size kept). Returns 0, or -1 on host OOM. */
int ptr_map_set_val(struct ptr_map *m, struct ptr_entry *e, uint64_t val);

/* Turns the live entry e into a tombstone freed at `step`. */
void ptr_map_mark_freed(struct ptr_map *m, struct ptr_entry *e, uint64_t step);

/* Removes e (live or freed) outright. */
void ptr_map_remove(struct ptr_map *m, struct ptr_entry *e);

/* Host bytes used. */
size_t ptr_map_bytes(const struct ptr_map *m);

#endif
