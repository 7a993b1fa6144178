/* ptr_map.c: the replayer's traced-pointer table (see ptr_map.h).
 *
 * Keys are hashed with a Fibonacci multiply (the top bits of key * 2^64/phi), slots are probed
 * linearly, and deletion shifts the following cluster back so that no deleted-slot markers
 * accumulate. A slot is 16 bytes: the key and one word, which is either PTR_FREED | the step of
 * the free, or (size << 48) | value for a live entry whose value is below 2^48 (replayed
 * pointers, op indices) and whose size is below PTR_SIZE_SPILLED; any other live entry has the
 * size code PTR_SIZE_SPILLED and its value and size in the spill table (same scheme, 24-byte
 * slots), so that the common lookup touches one cache line.
 *
 * The table grows by doubling at 70% load; before growing, if tombstones (freed entries)
 * outnumber live ones, they are dropped instead, in place (no new memory: the scan starts after
 * an empty slot, so each cluster is met from its start and a backward shift only moves entries
 * not yet visited), or into a smaller table when the live set has shrunk a lot. Tables of 2 MiB
 * and more are mapped with transparent huge pages requested: a lookup in a large table is one
 * cache miss, and without huge pages a TLB miss too.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "ptr_map.h"

#define PTR_MAP_MIN_BITS 12
#define HUGE_PAGE (2u << 20)
#define VAL_BITS 48
#define VAL_MASK ((1ull << VAL_BITS) - 1)
#define GOLDEN 0x9E3779B97F4A7C15ull

static uint64_t slot_of(const struct ptr_map *m, uint64_t key)
{
    return (key * GOLDEN) >> m->shift;
}

/* ---- the spill table (rare entries) ---- */

static uint64_t spill_home(const struct ptr_spill *s, uint64_t key)
{
    return ((key * GOLDEN) >> 32) & s->mask;
}

static struct ptr_spill_entry *spill_find(const struct ptr_spill *s, uint64_t key)
{
    if (!s->slots)
        return NULL;
    for (uint64_t i = spill_home(s, key);; i = (i + 1) & s->mask) {
        struct ptr_spill_entry *e = &s->slots[i];
        if (e->key == key)
            return e;
        if (!e->key)
            return NULL;
    }
}

static void spill_place(struct ptr_spill *s, const struct ptr_spill_entry *e)
{
    uint64_t i = spill_home(s, e->key);
    while (s->slots[i].key)
        i = (i + 1) & s->mask;
    s->slots[i] = *e;
}

static int spill_put(struct ptr_spill *s, uint64_t key, uint64_t val, uint64_t size)
{
    struct ptr_spill_entry *e = spill_find(s, key);
    if (e) {
        e->val = val;
        e->size = size;
        return 0;
    }
    uint64_t cap = s->slots ? s->mask + 1 : 0;
    if ((s->count + 1) * 10 >= cap * 7) {
        uint64_t ncap = cap ? cap * 2 : 64;
        struct ptr_spill n = {calloc(ncap, sizeof *n.slots), ncap - 1, s->count};
        if (!n.slots)
            return -1;
        for (uint64_t i = 0; i < cap; i++)
            if (s->slots[i].key)
                spill_place(&n, &s->slots[i]);
        free(s->slots);
        *s = n;
    }
    struct ptr_spill_entry ne = {key, val, size};
    spill_place(s, &ne);
    s->count++;
    return 0;
}

static void spill_del(struct ptr_spill *s, uint64_t key)
{
    struct ptr_spill_entry *e = spill_find(s, key);
    if (!e)
        return;
    s->count--;
    uint64_t i = (uint64_t)(e - s->slots), j = i;
    for (;;) {
        j = (j + 1) & s->mask;
        struct ptr_spill_entry *n = &s->slots[j];
        if (!n->key)
            break;
        uint64_t home = spill_home(s, n->key);
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            s->slots[i] = *n;
            i = j;
        }
    }
    memset(&s->slots[i], 0, sizeof s->slots[i]);
}

uint64_t ptr_map_spilled_val(const struct ptr_map *m, uint64_t key)
{
    const struct ptr_spill_entry *e = spill_find(&m->spill, key);
    return e ? e->val : 0;
}

uint64_t ptr_map_spilled_size(const struct ptr_map *m, uint64_t key)
{
    const struct ptr_spill_entry *e = spill_find(&m->spill, key);
    return e ? e->size : 0;
}

static int spilled(const struct ptr_entry *e)
{
    return !(e->word & PTR_FREED) && (e->word >> VAL_BITS) == PTR_SIZE_SPILLED;
}

/* The live word for (val, size), spilling when it does not pack. -1 on host OOM. */
static int encode_live(struct ptr_map *m, uint64_t key, uint64_t val, uint64_t size,
                       uint64_t *word)
{
    if (val <= VAL_MASK && size < PTR_SIZE_SPILLED) {
        *word = size << VAL_BITS | val;
        return 0;
    }
    if (spill_put(&m->spill, key, val, size) < 0)
        return -1;
    *word = PTR_SIZE_SPILLED << VAL_BITS;
    return 0;
}

/* ---- the main table ---- */

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
    free(m->spill.slots);
    memset(m, 0, sizeof *m);
}

size_t ptr_map_bytes(const struct ptr_map *m)
{
    size_t spill = m->spill.slots ? (size_t)(m->spill.mask + 1) * sizeof *m->spill.slots : 0;
    return (size_t)(m->mask + 1) * sizeof(struct ptr_entry) + spill;
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

/* Empties slot i and shifts the cluster after it back. */
static void delete_at(struct ptr_map *m, uint64_t i)
{
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
    m->slots[i].key = 0;
    m->slots[i].word = 0;
}

/* Drops every tombstone without moving to new memory. */
static void purge_in_place(struct ptr_map *m)
{
    uint64_t cap = m->mask + 1, start = 0;
    while (m->slots[start].key)          /* load < 70%: an empty slot exists */
        start++;
    uint64_t i = (start + 1) & m->mask;
    for (uint64_t seen = 1; seen < cap;) {
        struct ptr_entry *e = &m->slots[i];
        if (e->key && (e->word & PTR_FREED)) {
            delete_at(m, i);             /* slot i now holds a later entry, or nothing */
            m->freed--;
            continue;
        }
        i = (i + 1) & m->mask;
        seen++;
    }
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
        const struct ptr_entry *e = &old[i];
        int freed = (e->word & PTR_FREED) != 0;
        if (!e->key || (freed && !keep_freed))
            continue;
        uint64_t j = slot_of(m, e->key);
        while (m->slots[j].key)
            j = (j + 1) & m->mask;
        m->slots[j] = *e;
        if (freed)
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
    unsigned bits = 64 - m->shift;
    if ((m->live + m->freed + 1) * 10 < cap * 7)
        return 0;
    if (m->freed > m->live) {
        /* Shrink only when the live set fits a table a quarter of the size or less. */
        unsigned want = bits_for(2 * (m->live + 1));
        if (want + 2 <= bits)
            return rebuild(m, want, 0);
        purge_in_place(m);
        return 0;
    }
    return rebuild(m, bits + 1, 1);
}

struct ptr_entry *ptr_map_put(struct ptr_map *m, uint64_t key, uint64_t val, uint64_t size,
                              int *was_live, uint64_t *old_val, uint64_t *old_size)
{
    *was_live = 0;
    uint64_t i = slot_of(m, key);
    struct ptr_entry *e;
    for (;; i = (i + 1) & m->mask) {
        e = &m->slots[i];
        if (e->key == key || !e->key)
            break;
    }
    if (e->key == key && !(e->word & PTR_FREED)) {
        *was_live = 1;
        if (old_val)
            *old_val = ptr_entry_val(m, e);
        if (old_size)
            *old_size = ptr_entry_size(m, e);
        int was_spilled = spilled(e);
        uint64_t word;
        if (encode_live(m, key, val, size, &word) < 0)
            return NULL;
        if (was_spilled && (word >> VAL_BITS) != PTR_SIZE_SPILLED)
            spill_del(&m->spill, key);
        e->word = word;
        return e;
    }
    uint64_t word;
    if (encode_live(m, key, val, size, &word) < 0)
        return NULL;
    if (e->key == key) {                 /* a tombstone comes back to life */
        m->freed--;
        m->live++;
        e->word = word;
        return e;
    }
    if ((m->live + m->freed + 1) * 10 >= (m->mask + 1) * 7) {
        if (reserve(m) < 0) {
            if ((word >> VAL_BITS) == PTR_SIZE_SPILLED)
                spill_del(&m->spill, key);
            return NULL;
        }
        for (i = slot_of(m, key); m->slots[i].key; i = (i + 1) & m->mask)
            ;
        e = &m->slots[i];
    }
    e->key = key;
    e->word = word;
    m->live++;
    return e;
}

int ptr_map_set_val(struct ptr_map *m, struct ptr_entry *e, uint64_t val)
{
    uint64_t size = ptr_entry_size(m, e), word;
    int was_spilled = spilled(e);
    if (encode_live(m, e->key, val, size, &word) < 0)
        return -1;
    if (was_spilled && (word >> VAL_BITS) != PTR_SIZE_SPILLED)
        spill_del(&m->spill, e->key);
    e->word = word;
    return 0;
}

void ptr_map_mark_freed(struct ptr_map *m, struct ptr_entry *e, uint64_t step)
{
    if (e->word & PTR_FREED)
        return;
    if (spilled(e))
        spill_del(&m->spill, e->key);
    e->word = PTR_FREED | (step & ~PTR_FREED);
    m->live--;
    m->freed++;
}

void ptr_map_remove(struct ptr_map *m, struct ptr_entry *e)
{
    if (e->word & PTR_FREED)
        m->freed--;
    else {
        if (spilled(e))
            spill_del(&m->spill, e->key);
        m->live--;
    }
    delete_at(m, (uint64_t)(e - m->slots));
}
