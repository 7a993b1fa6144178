/* stacks.c: the call stack of each allocation, stored once per distinct stack.
 *
 * Unwinding is libunwind's (DWARF CFI, so code without frame pointers is handled), with its
 * per-thread cache. Unwinding on every malloc would cost far more than the malloc, so each
 * thread keeps a small direct-mapped cache of the call sites it has unwound, keyed by the
 * hook's return address and the caller's stack pointer. An entry remembers, for every outer
 * frame, where its return address lives on the stack and what it was; a hit re-reads those
 * slots and, if every one still holds the same return address, the whole chain is the same
 * (each frame's slot position follows from the frames inside it), so the cached stack id is
 * reused without unwinding. Entries that cross a signal frame are never cached.
 *
 * Distinct stacks go into one global open-addressing table (mmap'd), ids are dense from 1,
 * frames live in an append-only arena. Lookups are lock-free; inserts take a spinlock.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <errno.h>
#include <string.h>
#include "recorder.h"
#include "rec_syscall.h"

#define STACK_SLOTS (1u << 20)
#define STACK_MAX_IDS (STACK_SLOTS - 1)
#define FRAME_ARENA_WORDS (64ull << 20)   /* 512 MiB reserved, touched as used */
#define CACHE_ENTRIES 512u

struct stack_slot {
    uint64_t hash;
    uint32_t depth;
    volatile uint32_t id;          /* 0 = empty; published last */
    uint64_t off;                  /* into the frame arena */
};

struct stack_def {
    uint64_t off;
    uint32_t depth;
    uint32_t pad;
};

static struct stack_slot *table;
static struct stack_def *defs;      /* by id */
static uint64_t *frames_arena;
static uint64_t frames_used;
static volatile uint32_t ids_used;
static volatile int stack_lock;
static int stacks_ready;

/* Per-thread call-site cache entry (depth words of slots and values follow). */
struct cache_entry {
    uintptr_t ra, cfa;
    uint32_t id, n;
    uint64_t words[];              /* slot[0..n-1] then value[0..n-1] (frames 1..n) */
};

void stacks_init(void)
{
    if (!rec.cfg.stacks || stacks_ready)
        return;
    table = rec_map((size_t)STACK_SLOTS * sizeof *table);
    defs = rec_map((size_t)STACK_SLOTS * sizeof *defs);
    frames_arena = rec_map(FRAME_ARENA_WORDS * 8);
    if (!table || !defs || !frames_arena) {
        rec.cfg.stacks = 0;
        return;
    }
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    stacks_ready = 1;
}

uint32_t stack_count(void)
{
    return __atomic_load_n(&ids_used, __ATOMIC_ACQUIRE);
}

unsigned stack_frames(uint32_t id, const uint64_t **frames)
{
    if (!stacks_ready || id == 0 || id > stack_count())
        return 0;
    *frames = frames_arena + defs[id].off;
    return defs[id].depth;
}

static uint64_t hash_frames(const uint64_t *f, unsigned n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (unsigned i = 0; i < n; i++) {
        h ^= f[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h | 1;
}

static uint32_t intern(const uint64_t *f, unsigned n)
{
    uint64_t h = hash_frames(f, n);
    uint32_t mask = STACK_SLOTS - 1;
    for (int locked = 0;; locked++) {
        uint32_t i = (uint32_t)h & mask;
        for (uint32_t probes = 0; probes < STACK_SLOTS; probes++, i = (i + 1) & mask) {
            uint32_t id = __atomic_load_n(&table[i].id, __ATOMIC_ACQUIRE);
            if (id == 0)
                break;
            if (table[i].hash == h && table[i].depth == n &&
                !memcmp(frames_arena + table[i].off, f, n * 8)) {
                if (locked)
                    __atomic_store_n(&stack_lock, 0, __ATOMIC_RELEASE);
                return id;
            }
        }
        if (locked) {
            /* Still absent with the lock held: insert at the empty slot found. */
            uint32_t id = 0;
            if (ids_used < STACK_MAX_IDS && frames_used + n <= FRAME_ARENA_WORDS &&
                table[i].id == 0) {
                memcpy(frames_arena + frames_used, f, n * 8);
                id = ids_used + 1;
                defs[id].off = frames_used;
                defs[id].depth = n;
                table[i].hash = h;
                table[i].depth = n;
                table[i].off = frames_used;
                frames_used += n;
                __atomic_store_n(&ids_used, id, __ATOMIC_RELEASE);
                __atomic_store_n(&table[i].id, id, __ATOMIC_RELEASE);
            }
            __atomic_store_n(&stack_lock, 0, __ATOMIC_RELEASE);
            return id;
        }
        for (unsigned spins_ = 0; __atomic_exchange_n(&stack_lock, 1, __ATOMIC_ACQUIRE);)
            rec_spin_pause(&spins_);
    }
}

static size_t entry_bytes(void)
{
    return (sizeof(struct cache_entry) + 2 * 8 * (size_t)rec.cfg.stack_depth + 63) & ~(size_t)63;
}

void stack_cache_forget(struct rec_thread *t)
{
    if (t->stack_cache)
        memset(t->stack_cache, 0, CACHE_ENTRIES * entry_bytes());
}

static inline struct cache_entry *cache_slot(struct rec_thread *t, uintptr_t ra, uintptr_t cfa)
{
    uint64_t k = (ra ^ (cfa * 0x9E3779B97F4A7C15ull)) * 0xff51afd7ed558ccdull;
    return (struct cache_entry *)((char *)t->stack_cache +
                                  (size_t)((k >> 40) & (CACHE_ENTRIES - 1)) * entry_bytes());
}

static inline int in_self(uintptr_t ip)
{
    return ip >= rec.self_lo && ip < rec.self_hi;
}

/* Unwinds from here: frames (and the stack pointer of each) outside the recorder. */
static unsigned unwind(uint64_t *ips, uint64_t *sps, unsigned max, int *cacheable)
{
    unw_context_t uc;
    unw_cursor_t cur;
    unsigned n = 0;
    *cacheable = 1;
    if (unw_getcontext(&uc) != 0 || unw_init_local(&cur, &uc) != 0)
        return 0;
    int started = 0;
    while (n < max && unw_step(&cur) > 0) {
        unw_word_t ip = 0, sp = 0;
        if (unw_get_reg(&cur, UNW_REG_IP, &ip) != 0 || unw_get_reg(&cur, UNW_REG_SP, &sp) != 0)
            break;
        if (!started) {
            if (in_self(ip))
                continue;
            started = 1;
        }
        if (unw_is_signal_frame(&cur) > 0)
            *cacheable = 0;
        ips[n] = ip;
        sps[n] = sp;
        n++;
    }
    return n;
}

/* A call site the cache does not know (or no longer matches): unwind, intern, remember. Kept
 * out of line so that the cache hit, nearly every call, runs without this frame's 4 KiB of
 * frame arrays and saved registers. */
static __attribute__((noinline)) uint32_t stack_capture_slow(struct rec_thread *t,
                                                             struct cache_entry *e,
                                                             uintptr_t ra, uintptr_t cfa)
{
    unsigned depth = rec.cfg.stack_depth;
    uint64_t ips[TRACE_MAX_STACK_DEPTH], sps[TRACE_MAX_STACK_DEPTH];
    int cacheable;
    int saved_errno = errno;
    t->depth++;
    unsigned n = unwind(ips, sps, depth, &cacheable);
    t->depth--;
    errno = saved_errno;
    if (n == 0)
        return 0;
    uint32_t id = intern(ips, n);
    if (id && cacheable && ips[0] == ra && sps[0] == cfa) {
        /* Frame k (k >= 1) returns to ips[k]; that address sits just below sps[k]. */
        e->id = 0;
        e->ra = ra;
        e->cfa = cfa;
        e->n = n - 1;
        for (unsigned k = 1; k < n; k++) {
            e->words[k - 1] = sps[k] - 8;
            e->words[(n - 1) + k - 1] = ips[k];
        }
        e->id = id;
    }
    return id;
}

uint32_t stack_capture(struct rec_thread *t, uintptr_t ra, uintptr_t cfa)
{
    if (!stacks_ready)
        return 0;
    if (REC_UNLIKELY(!t->stack_cache)) {
        t->stack_cache = rec_map(CACHE_ENTRIES * entry_bytes());
        if (!t->stack_cache)
            return 0;
    }
    struct cache_entry *e = cache_slot(t, ra, cfa);
    if (e->id && e->ra == ra && e->cfa == cfa) {
        const uint64_t *slot = e->words, *val = e->words + e->n;
        unsigned k = 0;
        for (; k < e->n; k++)
            if (*(const volatile uint64_t *)(uintptr_t)slot[k] != val[k])
                break;
        if (k == e->n)
            return e->id;
    }
    return stack_capture_slow(t, e, ra, cfa);
}

void stacks_atfork_prepare(void)
{
    for (unsigned spins_ = 0; __atomic_exchange_n(&stack_lock, 1, __ATOMIC_ACQUIRE);)
        rec_spin_pause(&spins_);
}

void stacks_atfork_release(void)
{
    __atomic_store_n(&stack_lock, 0, __ATOMIC_RELEASE);
}
