/* ptr_map.c: the replayer's traced-pointer table (see ptr_map.h).
 *
 * Keys are hashed with a Fibonacci multiply, slots are probed linearly, and deletion shifts
 * the following cluster back so that no deleted-slot markers accumulate. The table grows by
 * doubling at 70% load; before growing, if tombstones (freed entries) outnumber live ones,
 * they are dropped instead, which keeps memory proportional to the live set. Tables of 2 MiB and
 * more are mapped with transparent huge pages requested: a lookup in a large table is one cache
 * miss, and without huge pages a TLB miss too.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "ptr_map.h"

#define PTR_MAP_MIN_BITS 12
#define HUGE_PAGE (2u << 20)

static uint64_t slot_of(const struct ptr_map *m, uint64_t key)
{
    return (key * 0x9E3779B97F4A7C15ull) >> m->shift;
}

static void free_slots(struct ptr_entry *s, size_t mapped)
{
    if (mapped)
        munmap(s, mapped);
    else
        free(s);
}

static int alloc_slots(struct ptr_map *m, unsigned bits)
{
    size_t bytes = ((size_t)1 << bits) * sizeof(struct ptr_entry);
    struct ptr_entry *s;
    m->mapped = 0;
    if (bytes >= HUGE_PAGE) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -1;
        madvise(p, bytes, MADV_HUGEPAGE);
        s = p;
        m->mapped = bytes;
    } else {
        s = calloc((size_t)1 << bits, sizeof *s);
        if (!s)
            return -1;
    }
    m->slots = s;
    m->mask = ((uint64_t)1 << bits) - 1;
    m->shift = 64 - bits;
    return 0;
}

int ptr_map_init(struct ptr_map *m)
{
    memset(m, 0, sizeof *m);
    return alloc_slots(m, PTR_MAP_MIN_BITS);
}

void ptr_map_free(struct ptr_map *m)
{
    if (m->slots)
        free_slots(m->slots, m->mapped);
    memset(m, 0, sizeof *m);
}

size_t ptr_map_bytes(const struct ptr_map *m)
{
    return (size_t)(m->mask + 1) * sizeof(struct ptr_entry);
}

struct ptr_entry *ptr_map_find(struct ptr_map *m, uint64_t key)
{
    if (!key)
        return NULL;
    for (uint64_t i = slot_of(m, key);; i = (i + 1) & m->mask) {
        struct ptr_entry *e = &m->slots[i];
        if (e->key == key)
            return e;
        if (!e->key)
            return NULL;
    }
}

/* Places e into the current table (the key is known to be absent). */
static void place(struct ptr_map *m, const struct ptr_entry *e)
{
    uint64_t i = slot_of(m, e->key);
    while (m->slots[i].key)
        i = (i + 1) & m->mask;
    m->slots[i] = *e;
}

/* Rebuilds the table with 2^bits slots, keeping tombstones only if keep_freed. */
static int rebuild(struct ptr_map *m, unsigned bits, int keep_freed)
{
    struct ptr_entry *old = m->slots;
    uint64_t old_cap = m->mask + 1, old_mask = m->mask;
    size_t old_mapped = m->mapped;
    unsigned old_shift = m->shift;
    if (alloc_slots(m, bits) < 0) {
        m->slots = old;
        m->mask = old_mask;
        m->shift = old_shift;
        m->mapped = old_mapped;
        return -1;
    }
    m->live = m->freed = 0;
    for (uint64_t i = 0; i < old_cap; i++) {
        if (!old[i].key || (old[i].freed && !keep_freed))
            continue;
        place(m, &old[i]);
        if (old[i].freed)
            m->freed++;
        else
            m->live++;
    }
    free_slots(old, old_mapped);
    return 0;
}

static unsigned bits_for(uint64_t entries)
{
    unsigned bits = PTR_MAP_MIN_BITS;
    while (((uint64_t)1 << bits) * 7 / 10 <= entries)
        bits++;
    return bits;
}

/* Makes room for one more entry. */
static int reserve(struct ptr_map *m)
{
    uint64_t cap = m->mask + 1;
    if ((m->live + m->freed + 1) * 10 < cap * 7)
        return 0;
    if (m->freed > m->live)
        return rebuild(m, bits_for(m->live + 1), 0);
    return rebuild(m, 64 - m->shift + 1, 1);
}

struct ptr_entry *ptr_map_put(struct ptr_map *m, uint64_t key, uint64_t val, uint64_t size,
                              uint32_t thread, int *was_live, struct ptr_entry *old)
{
    *was_live = 0;
    struct ptr_entry *e = ptr_map_find(m, key);
    if (e) {
        if (e->freed) {
            m->freed--;
            m->live++;
        } else {
            *was_live = 1;
            if (old)
                *old = *e;
        }
    } else {
        if (reserve(m) < 0)
            return NULL;
        uint64_t i = slot_of(m, key);
        while (m->slots[i].key)
            i = (i + 1) & m->mask;
        e = &m->slots[i];
        m->live++;
    }
    e->key = key;
    e->val = val;
    e->size = size;
    e->freed = 0;
    e->thread = thread;
    return e;
}

void ptr_map_mark_freed(struct ptr_map *m, struct ptr_entry *e, uint64_t step)
{
    if (e->freed)
        return;
    e->freed = 1;
    e->val = 0;
    e->step = step;
    m->live--;
    m->freed++;
}

void ptr_map_remove(struct ptr_map *m, struct ptr_entry *e)
{
    if (e->freed)
        m->freed--;
    else
        m->live--;
    uint64_t i = (uint64_t)(e - m->slots);
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        struct ptr_entry *n = &m->slots[j];
        if (!n->key)
            break;
        uint64_t home = slot_of(m, n->key);
        /* n may move to i if its home is not in the cyclic range (i, j]. */
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->slots[i] = *n;
            i = j;
        }
    }
    memset(&m->slots[i], 0, sizeof m->slots[i]);
}
