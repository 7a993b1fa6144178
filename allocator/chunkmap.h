/* chunkmap.h: the model's own knowledge of every chunk: address -> (state, arena, size).
 *
 * glibc trusts the pointers it is given; the model cannot (a trace may free garbage or free
 * twice), so it keeps a host-side record of each chunk it knows about, outside the simulated
 * memory: chunks held by the program, chunks in a tcache, a fastbin, the unsorted list, a small
 * or large bin, and mmapped chunks. The top chunk and fenceposts are not recorded. A chunk in a
 * tcache is recorded CS_USER (in use, as glibc sees it; model.h tells it apart by its key word
 * and the tcache bins); CS_TCACHE is the state the per-arena counters count it in. Frees and
 * reallocs are validated against it before any simulated memory is read, and it gives the walk
 * and the statistics the state of each chunk in O(1).
 *
 * An open-addressing hash table (linear probing, backward-shift deletion) keyed by the chunk
 * address; the value packs state (4 bits), arena index (16 bits) and size / 16 (44 bits).
 */
#ifndef FRAGSCOPE_CHUNKMAP_H
#define FRAGSCOPE_CHUNKMAP_H

#include <stdint.h>

enum chunk_state {
    CS_USER = 0,      /* returned to the program */
    CS_INTERNAL,      /* allocated by malloc itself (a tcache struct, or mid-operation) */
    CS_TCACHE,        /* counters only: the table records a tcache chunk as CS_USER */
    CS_FAST,
    CS_UNSORTED,
    CS_SMALL,
    CS_LARGE,
    CS_MMAPPED,
    CS_NSTATES
};

struct cm_entry {
    uint64_t key;     /* chunk address; 0 = empty slot */
    uint64_t val;
};

struct chunkmap {
    struct cm_entry *tab;
    uint64_t mask;    /* capacity - 1 */
    uint64_t count;
    int shift;        /* 64 - log2(capacity) */
};

static inline uint64_t cm_pack(enum chunk_state st, uint32_t arena, uint64_t size)
{
    return (uint64_t)st | ((uint64_t)arena << 4) | ((size >> 4) << 20);
}
static inline enum chunk_state cm_state(uint64_t v) { return (enum chunk_state)(v & 15); }
static inline uint32_t cm_arena(uint64_t v) { return (uint32_t)((v >> 4) & 0xffff); }
static inline uint64_t cm_size(uint64_t v) { return (v >> 20) << 4; }

int cm_init(struct chunkmap *m);
void cm_free(struct chunkmap *m);

static inline uint64_t cm_slot(const struct chunkmap *m, uint64_t key)
{
    return ((key >> 4) * 0x9E3779B97F4A7C15ull) >> m->shift;
}

/* The entry for key, or the empty slot where key would go (its key is then 0). */
static inline struct cm_entry *cm_probe(struct chunkmap *m, uint64_t key)
{
    uint64_t i = cm_slot(m, key);
    for (;;) {
        struct cm_entry *e = &m->tab[i];
        if (e->key == key || e->key == 0)
            return e;
        i = (i + 1) & m->mask;
    }
}

/* Starts bringing key's home slot into the cache (a hint: no state changes). */
static inline void cm_prefetch(const struct chunkmap *m, uint64_t key)
{
    __builtin_prefetch(&m->tab[cm_slot(m, key)], 1);
}

/* The entry for key, or NULL. */
static inline struct cm_entry *cm_find(struct chunkmap *m, uint64_t key)
{
    struct cm_entry *e = cm_probe(m, key);
    return e->key ? e : 0;
}

/* Inserts or overwrites. Returns 0, or -1 on host OOM. */
int cm_put(struct chunkmap *m, uint64_t key, uint64_t val);
/* Inserts key, absent, into e, the empty slot cm_probe gave for it (no other change since).
 * Returns 0, or -1 on host OOM. */
int cm_claim(struct chunkmap *m, struct cm_entry *e, uint64_t key, uint64_t val);
/* Removes key if present. */
void cm_del(struct chunkmap *m, uint64_t key);
/* Removes e, an entry cm_find or cm_probe gave (no other change since). */
void cm_del_entry(struct chunkmap *m, struct cm_entry *e);

#endif
