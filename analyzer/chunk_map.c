/* chunk_map.c: an open-addressing hash table (linear probing, power-of-two capacity, grown at
 * 70% load) from a model chunk address to the allocation that last returned that chunk.
 *
 * Entries are never removed: a free does not say which model chunk it released, and keeping the
 * last allocation of a freed chunk is what lets a report blame the call site of a tcache or
 * fastbin chunk that pins the top. A new allocation at the same address replaces the entry. */
#include <stdlib.h>
#include "chunk_map.h"

static uint64_t slot_of(uint64_t address, uint64_t cap)
{
    uint64_t h = (address >> 4) * 0x9e3779b97f4a7c15ull;
    return (h ^ (h >> 29)) & (cap - 1);
}

int chunk_map_init(struct chunk_map *m)
{
    m->cap = 1u << 16;
    m->count = 0;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->values = calloc(m->cap, sizeof *m->values);
    if (!m->keys || !m->values) {
        chunk_map_free(m);
        return -1;
    }
    return 0;
}

void chunk_map_free(struct chunk_map *m)
{
    free(m->keys);
    free(m->values);
    m->keys = NULL;
    m->values = NULL;
    m->cap = m->count = 0;
}

static int grow(struct chunk_map *m)
{
    struct chunk_map n = {0};
    n.cap = m->cap * 2;
    n.keys = calloc(n.cap, sizeof *n.keys);
    n.values = calloc(n.cap, sizeof *n.values);
    if (!n.keys || !n.values) {
        free(n.keys);
        free(n.values);
        return -1;
    }
    for (uint64_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        uint64_t j = slot_of(m->keys[i], n.cap);
        while (n.keys[j])
            j = (j + 1) & (n.cap - 1);
        n.keys[j] = m->keys[i];
        n.values[j] = m->values[i];
    }
    n.count = m->count;
    free(m->keys);
    free(m->values);
    *m = n;
    return 0;
}

int chunk_map_put(struct chunk_map *m, uint64_t address, const struct chunk_origin *o)
{
    if (!address)
        return 0;
    if ((m->count + 1) * 10 > m->cap * 7 && grow(m))
        return -1;
    uint64_t j = slot_of(address, m->cap);
    while (m->keys[j] && m->keys[j] != address)
        j = (j + 1) & (m->cap - 1);
    if (!m->keys[j]) {
        m->keys[j] = address;
        m->count++;
    }
    m->values[j] = *o;
    return 0;
}

const struct chunk_origin *chunk_map_get(const struct chunk_map *m, uint64_t address)
{
    if (!address || !m->cap)
        return NULL;
    uint64_t j = slot_of(address, m->cap);
    while (m->keys[j]) {
        if (m->keys[j] == address)
            return &m->values[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

void chunk_map_mark_freed(struct chunk_map *m, uint64_t address)
{
    struct chunk_origin *o = (struct chunk_origin *)chunk_map_get(m, address);
    if (o)
        o->freed = 1;
}
