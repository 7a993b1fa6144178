/* recorder.h: the inside of libfragscope-trace.so, shared by its files (not a public contract).
 *
 * The recorder is one LD_PRELOAD library. Program threads append fixed-layout "raw records"
 * to per-thread chunks of mmap'd memory (thread_buffer.c); a flusher task (flush.c), a clone of
 * the process that shares its memory but not its thread group, encodes the records into
 * version-2 blocks (trace_block_encoder.c) and writes them. Because the flusher
 * keeps the program's memory mapped after the program dies, a crash or a SIGKILL still leaves
 * every committed record on disk.
 *
 * Nothing here allocates from the C heap being measured: memory comes from mmap, calls that
 * reach malloc from inside the recorder (dlsym, libunwind, pthread internals) are served from
 * an mmap'd pool (mmap_pool.c), and the flusher uses raw system calls only.
 */
#ifndef FRAGSCOPE_RECORDER_H
#define FRAGSCOPE_RECORDER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "trace_format.h"

#define REC_LIKELY(x) __builtin_expect(!!(x), 1)
#define REC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define REC_HIDDEN __attribute__((visibility("hidden")))

/* ---- Configuration (FRAGSCOPE_* environment variables, read once) ---- */
struct rec_config {
    int stacks;               /* FRAGSCOPE_STACKS (default 1) */
    unsigned stack_depth;     /* FRAGSCOPE_STACK_DEPTH (default 32, max TRACE_MAX_STACK_DEPTH) */
    unsigned sample_ms;       /* FRAGSCOPE_SAMPLE_MS (default 100, 0 = no samples) */
    unsigned flush_ms;        /* FRAGSCOPE_FLUSH_MS (default 200) */
    unsigned flush_events;    /* FRAGSCOPE_FLUSH_EVENTS: records per chunk (default 32768) */
    unsigned buffer_mb;       /* FRAGSCOPE_BUFFER_MB: chunk memory before writers wait (16) */
    int precise_clock;        /* FRAGSCOPE_CLOCK=precise: CLOCK_MONOTONIC instead of _COARSE */
    int force;                /* FRAGSCOPE_FORCE=1: replace an existing regular file */
    int quiet;                /* FRAGSCOPE_QUIET=1: no messages on stderr */
    int stats;                /* FRAGSCOPE_STATS=1: the flusher reports its work at the end */
    int compress;             /* FRAGSCOPE_COMPRESS: 2 none (stored columns), else Huffman */
};

/* ---- Raw records: what program threads write (8-byte words) ----
 * word 0: kind (5) | chunk_flags (3) | long (1) | nwords (5) | err (8) | stack id (20) |
 *         seq low bits (22)
 * A long record follows it with its full seq and its time (ns since start), then the kind's
 * arguments; a short one goes straight to the arguments, its seq being the thread's previous
 * record's plus (low bits - previous low bits) mod 2^22 and its time the previous record's. A
 * writer uses the long form for the first record of a chunk, when its time changed, and when
 * its seq is 2^22 or more past its previous one: a malloc takes 3 words, a free 2. */
#define REC_SEQ_BITS 22
#define REC_SEQ_MASK ((1ull << REC_SEQ_BITS) - 1)
#define REC_HDR(kind, flags, lng, nwords, err, stack, seq)                                    \
    ((uint64_t)(kind) | (uint64_t)(flags) << 5 | (uint64_t)(lng) << 8 |                       \
     (uint64_t)(nwords) << 9 | (uint64_t)(uint8_t)(err) << 14 | (uint64_t)(stack) << 22 |     \
     ((uint64_t)(seq) & REC_SEQ_MASK) << 42)
#define REC_KIND(h) ((unsigned)((h) & 31))
#define REC_FLAGS(h) ((unsigned)((h) >> 5 & 7))
#define REC_LONG(h) ((unsigned)((h) >> 8 & 1))
#define REC_NWORDS(h) ((unsigned)((h) >> 9 & 31))
#define REC_ERR(h) ((int)(int8_t)((h) >> 14))
#define REC_STACK(h) ((uint32_t)((h) >> 22 & 0xfffff))
#define REC_SEQ_LOW(h) ((h) >> 42)
#define REC_MAX_WORDS 16      /* sample: 3 + 13 */
#define REC_MAX_STACK_ID ((1u << 20) - 1)

struct rec_chunk {
    struct rec_chunk *next;       /* written by the owner before `closed` */
    uint32_t thread;              /* thread index of every record in this chunk */
    volatile uint32_t closed;     /* the owner moved on: `committed` is final */
    volatile uint64_t committed;  /* words of whole records */
    uint64_t cap;                 /* words */
    uint64_t words[];
};

/* One program thread. Found from the thread pointer (%fs:0x10) through a hash table, so the
 * recorder needs no TLS of its own (a TLS module would change the size of the DTV that
 * pthread_create callocs); hooks find it faster still through the thread's own slot for the
 * recorder's pthread key (thread_lookup_fast). The fields every call touches come first, in
 * one cache line. */
struct rec_thread {
    /* written by the owner, on every call */
    uint64_t *wp, *wend;
    struct rec_chunk *cur;
    uint64_t last_seq, last_time; /* of its last record (the writer's) */
    uintptr_t home_arena;         /* call_order.c: the arena of its allocations, 0 unknown */
    /* depth and exited are not in one 8-byte word: a hook tests both, and one wide load of
     * depth (just stored narrow by the previous call, perhaps still queued behind stores to the
     * record chunk that miss the cache) could not be forwarded from the store: it would wait
     * for the queue to drain. */
    int depth;                    /* >0: inside the recorder; malloc goes to the pool */
    uint32_t clock_calls;         /* calls left before it reads the clock itself */
    int exited;                   /* THREAD_EXIT recorded */
    int ordered_once;             /* call_order.c: its first call is done */
    /* written by the owner, rarely */
    uint32_t index;
    pid_t os_tid;
    int exit_round;
    int parent;                   /* parent thread index, -1 unknown */
    uintptr_t tcb;
    void *stack_cache;            /* stacks.c: recent call sites of this thread */
    uint64_t *fork_rec;           /* the FORK record awaiting the child's pid */
    int in_fork;                  /* inside our fork() wrapper */
    /* read by the flusher */
    volatile int hold;            /* fork in progress: the flusher leaves this thread alone */
    volatile int ready;           /* set once the state is initialised */
    volatile int drain_lock;      /* held by the one drainer of this thread's records */
    volatile int helper_wants;    /* the thread itself waits for drain_lock: the flusher yields */
    struct rec_chunk *drain;      /* oldest chunk not yet consumed */
    uint64_t drain_pos;
    uint64_t drain_seq, drain_time; /* of the last record drained (the drainer's) */
};

/* ---- Global state (defined in preload.c) ---- */
struct recorder {
    volatile int state;           /* REC_OFF, REC_INITIALIZING, REC_ON, REC_DISABLED */
    pid_t init_tid;               /* the thread running init (its calls go to the pool) */
    pid_t pid;
    struct rec_config cfg;
    uint64_t time_base_ns;        /* monotonic clock at start */
    uint64_t heap_start;
    int fd;                       /* the trace file */
    char path[4096];              /* this process's trace file */
    char root_path[4096];         /* FRAGSCOPE_OUT: children derive their names from it */
    uintptr_t self_lo, self_hi;   /* our own text, skipped in stacks */
    uint64_t next_sample_ns;
    volatile int sampling;
    int key_ok;
    unsigned key;                 /* pthread key whose destructor sees thread exits */
    uint64_t fork_seq;
    int is_root;                  /* writes root_path itself (not root_path.<pid>) */
    uint64_t time_clock;          /* clockid for event times */
};

extern struct recorder rec REC_HIDDEN;
/* The global order: the next sequence number, alone in its cache line. */
extern volatile uint64_t rec_seq_line[8] REC_HIDDEN;
#define rec_seq (rec_seq_line[0])

enum { REC_OFF = 0, REC_INITIALIZING, REC_ON, REC_DISABLED };

/* ---- time ----
 * Event times come from the coarse clock (4 ms steps), which costs ~20 ns to read: as much as the
 * rest of a hook. So a thread reads it itself every 32nd call only, and otherwise takes the
 * latest time any thread or the flusher (which reads it every 4 ms while the program makes
 * calls) has seen: rec_clock, a running maximum, so times never run backwards. When the
 * program has been quiet for a while the flusher stops ticking and raises rec_clock_idle: the
 * next call reads the clock itself. FRAGSCOPE_CLOCK=precise reads the precise clock on every
 * call. */
uint64_t rec_now_ns(void) REC_HIDDEN;
extern volatile uint64_t rec_clock REC_HIDDEN;   /* ns since the start, the latest seen */
extern volatile int rec_clock_idle REC_HIDDEN;   /* the flusher stopped ticking: read the clock */
uint64_t rec_clock_read(void) REC_HIDDEN;        /* reads the clock and raises rec_clock */

/* ---- mmap_pool.c ---- */
void *pool_alloc(size_t size, size_t align) REC_HIDDEN;
void pool_free(void *p) REC_HIDDEN;
void *pool_realloc(void *p, size_t size) REC_HIDDEN;
size_t pool_usable(const void *p) REC_HIDDEN;
extern char *rec_pool_base REC_HIDDEN;
#define REC_POOL_RESERVE (1ull << 30)
static inline int pool_owns(const void *p)
{
    return (uintptr_t)p - (uintptr_t)rec_pool_base < REC_POOL_RESERVE;
}
void pool_atfork_prepare(void) REC_HIDDEN;
void pool_atfork_release(void) REC_HIDDEN;
void *rec_map(size_t bytes) REC_HIDDEN;          /* zeroed anonymous memory, NULL on failure */
void rec_unmap(void *p, size_t bytes) REC_HIDDEN;

/* ---- thread_buffer.c ---- */
#define REC_THREAD_SLOT 192u           /* bytes per state, a cache-line multiple */
#define REC_TCB_SLOTS (1u << 18)
struct rec_tcb_slot {
    volatile uintptr_t key;            /* the thread pointer */
    volatile uint32_t state;           /* index + 1 into rec_states */
    uint32_t pad;
};
extern struct rec_tcb_slot *rec_tcb_table REC_HIDDEN;
extern char *rec_states REC_HIDDEN;
struct rec_thread *thread_register(int parent) REC_HIDDEN;
uint32_t thread_count(void) REC_HIDDEN;             /* states allocated so far */
struct rec_thread *thread_at(uint32_t i) REC_HIDDEN;
int thread_new_chunk(struct rec_thread *t) REC_HIDDEN;   /* 0 ok, -1 no memory */
void thread_retire_chunk(struct rec_thread *t) REC_HIDDEN;
void thread_chunk_recycle(struct rec_chunk *c) REC_HIDDEN;
void threads_reset_after_fork(struct rec_thread *self) REC_HIDDEN;
void threads_atfork_prepare(void) REC_HIDDEN;
void threads_atfork_release(void) REC_HIDDEN;
uint32_t thread_next_index(void) REC_HIDDEN;

static inline uintptr_t rec_tcb(void)
{
    uintptr_t p;
    __asm__("mov %%fs:0x10, %0" : "=r"(p));
    return p;
}

static inline uint32_t rec_tcb_hash(uintptr_t k)
{
    return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 40) & (REC_TCB_SLOTS - 1);
}

/* The calling thread's state, NULL if it has none yet. */
static inline struct rec_thread *thread_lookup(void)
{
    struct rec_tcb_slot *tab = rec_tcb_table;
    if (REC_UNLIKELY(!tab))
        return 0;
    uintptr_t k = rec_tcb();
    for (uint32_t i = rec_tcb_hash(k);; i = (i + 1) & (REC_TCB_SLOTS - 1)) {
        uintptr_t s = tab[i].key;
        if (REC_LIKELY(s == k)) {
            uint32_t st = tab[i].state;
            return st ? (struct rec_thread *)(rec_states + (size_t)(st - 1) * REC_THREAD_SLOT) : 0;
        }
        if (s == 0)
            return 0;
    }
}

/* Where the calling thread keeps its value of the recorder's pthread key, as an offset from
 * the thread pointer (glibc's struct pthread holds the values of the first 32 keys inline);
 * 0 when unknown (then the hash table above). The recorder sets the value to the thread's
 * state when it registers the thread, and glibc clears it when the thread exits; a thread
 * whose slot is empty takes the slow path, which looks in the table. */
extern long rec_tsd_off REC_HIDDEN;
static inline struct rec_thread *thread_lookup_fast(void)
{
    long off = rec_tsd_off;
    if (REC_LIKELY(off != 0)) {
        struct rec_thread *t;
        __asm__("mov %%fs:(%1), %0" : "=r"(t) : "r"(off));
        return t;
    }
    return thread_lookup();
}

/* Reserves room for a record of n words; returns where to write it. */
static inline uint64_t *rec_reserve(struct rec_thread *t, unsigned n)
{
    uint64_t *w = t->wp;
    if (REC_UNLIKELY(w + n > t->wend)) {
        if (thread_new_chunk(t) != 0)
            return 0;
        return t->wp;
    }
    if (!w)
        __builtin_unreachable();  /* (room in a chunk: wp points into it) */
    return w;
}

/* Publishes the record written at t->wp (n words) to the flusher. */
static inline void rec_commit(struct rec_thread *t, unsigned n)
{
    t->wp += n;
    __atomic_store_n(&t->cur->committed, (uint64_t)(t->wp - t->cur->words), __ATOMIC_RELEASE);
}

/* While the process has one thread, no other thread can take a number, and a signal handler
 * that interrupts a hook is served from the pool without one: a plain increment is enough.
 * rec_multi is set by our pthread_create before the second thread exists (and by any thread
 * registering later); glibc's __libc_single_threaded also covers threads libc creates itself
 * (it is cleared in pthread_create before the thread exists, and never set again). Otherwise
 * one atomic add, which is also the full barrier. */
extern char __libc_single_threaded;
extern volatile int rec_multi REC_HIDDEN;
static inline uint64_t rec_next_seq(void)
{
    if (REC_LIKELY(!rec_multi && __libc_single_threaded))
        return rec_seq++;
    return __atomic_fetch_add(&rec_seq, 1, __ATOMIC_SEQ_CST);
}

static inline int rec_is_multi(void)
{
    return rec_multi || !__libc_single_threaded;
}

/* ---- call_order.c: the order of calls across threads ----
 * Arena locks: a call that uses arena A holds our lock for A from before the real call until it
 * has its number, so calls on one arena are numbered in the order they really ran. */
#define REC_ARENA_LOCKS 64u
#define REC_MAIN_ARENA_KEY ((uintptr_t)1)
#define REC_HEAP_MAX (64ull << 20)    /* glibc's HEAP_MAX_SIZE on x86_64 */
extern volatile uint32_t *rec_arena_locks REC_HIDDEN;
extern volatile uint32_t rec_gate REC_HIDDEN;   /* nonzero: a call holds (or is taking) every lock */
void arena_lock_slow(volatile uint32_t *l) REC_HIDDEN;
void arena_lock_gated(volatile uint32_t *l) REC_HIDDEN;
void arena_unlock_wake(volatile uint32_t *l) REC_HIDDEN;
int arena_lock_all(void) REC_HIDDEN;
void arena_unlock_all(int taken) REC_HIDDEN;
void arena_keep_all_until_exit(pid_t tid) REC_HIDDEN;

/* The arena that owns the chunk of user pointer p (a live glibc chunk): its malloc_state address,
 * REC_MAIN_ARENA_KEY for the main arena, 0 for an mmapped chunk (no arena). */
static inline uintptr_t arena_key_of(const void *p)
{
    uint64_t size = ((const uint64_t *)p)[-1];
    if (size & 2)
        return 0;
    if (!(size & 4))
        return REC_MAIN_ARENA_KEY;
    return *(const uintptr_t *)((uintptr_t)p & ~(uintptr_t)(REC_HEAP_MAX - 1));
}

/* Our lock for arena key (one of 64, each in its own cache line). */
static inline volatile uint32_t *arena_lock_slot(uintptr_t key)
{
    return rec_arena_locks + (((key >> 4) * 0x9E3779B97F4A7C15ull) >> 58) * 16;
}

static inline volatile uint32_t *arena_lock(uintptr_t key)
{
    volatile uint32_t *l = arena_lock_slot(key);
    uint32_t zero = 0;
    if (REC_UNLIKELY(!__atomic_compare_exchange_n(l, &zero, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)))
        arena_lock_slow(l);
    if (REC_UNLIKELY(__atomic_load_n(&rec_gate, __ATOMIC_SEQ_CST)))
        arena_lock_gated(l);      /* give way to the call taking every lock */
    return l;
}

static inline void arena_unlock(volatile uint32_t *l)
{
    if (REC_UNLIKELY(__atomic_exchange_n(l, 0, __ATOMIC_RELEASE) == 2))
        arena_unlock_wake(l);
}

/* What a call holds: one lock, every lock (REC_ALL_LOCKS), or nothing (NULL). */
#define REC_ALL_LOCKS ((volatile uint32_t *)1)
static inline void order_unlock(volatile uint32_t *l)
{
    if (REC_UNLIKELY(l == REC_ALL_LOCKS))
        arena_unlock_all(1);
    else if (l)
        arena_unlock(l);
}

/* Blocks in flight: a pointer a call gives back to glibc without holding the lock that orders
 * it (a realloc of an mmapped chunk: glibc unmaps it, and any arena's next mmap may return the
 * address), announced before it is given back and withdrawn once the call is numbered. An
 * allocation that returns an announced pointer waits until it is withdrawn. While nothing is
 * announced (rec_inflight_active == 0, the usual case) allocations do not look: the announcing
 * thread raises the count before glibc lets go of the block, and glibc (its lock, or the
 * kernel's for mmap) hands the block to another thread only after that. */
#define REC_INFLIGHT_BUCKETS 512u
#define REC_INFLIGHT_WAYS 8u          /* one cache line per bucket */
extern volatile uint64_t *rec_inflight REC_HIDDEN;
/* Announcements outstanding, alone in its cache line (read by every allocation). */
extern volatile uint32_t rec_inflight_active_line[16] REC_HIDDEN;
#define rec_inflight_active (rec_inflight_active_line[0])
int call_order_init(void) REC_HIDDEN;
void inflight_wait_slow(volatile uint64_t *slot, uint64_t p) REC_HIDDEN;
void call_order_after_fork(void) REC_HIDDEN;

static inline volatile uint64_t *inflight_bucket(uint64_t p)
{
    return rec_inflight +
           ((p >> 4) * 0x9E3779B97F4A7C15ull >> 55 & (REC_INFLIGHT_BUCKETS - 1)) * REC_INFLIGHT_WAYS;
}

static inline volatile uint64_t *inflight_try_claim(volatile uint64_t *b, uint64_t p)
{
    for (unsigned i = 0; i < REC_INFLIGHT_WAYS; i++) {
        uint64_t zero = 0;
        if (b[i] == 0 && __atomic_compare_exchange_n(&b[i], &zero, p, 0, __ATOMIC_SEQ_CST,
                                                     __ATOMIC_RELAXED))
            return &b[i];
    }
    return 0;
}
volatile uint64_t *inflight_claim_slow(volatile uint64_t *b, uint64_t p) REC_HIDDEN;

/* Announces p. A full bucket is waited for (its slots are held for one call each); NULL only
 * after 50 ms of that (then p goes unannounced). */
static inline volatile uint64_t *inflight_claim(uint64_t p)
{
    __atomic_add_fetch(&rec_inflight_active, 1, __ATOMIC_SEQ_CST);
    volatile uint64_t *b = inflight_bucket(p);
    volatile uint64_t *s = inflight_try_claim(b, p);
    if (REC_UNLIKELY(s == 0))
        s = inflight_claim_slow(b, p);
    if (REC_UNLIKELY(s == 0))
        __atomic_sub_fetch(&rec_inflight_active, 1, __ATOMIC_SEQ_CST);
    return s;
}

/* The call that announced slot has its number. */
static inline void inflight_release(volatile uint64_t *slot)
{
    __atomic_store_n(slot, 0, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&rec_inflight_active, 1, __ATOMIC_SEQ_CST);
}

/* Before numbering an allocation that returned p: waits while another call's announcement of
 * p (other than the caller's own, `own`) is outstanding. */
static inline void inflight_wait(uint64_t p, volatile uint64_t *own)
{
    if (REC_LIKELY(__atomic_load_n(&rec_inflight_active, __ATOMIC_ACQUIRE) == 0))
        return;
    volatile uint64_t *b = inflight_bucket(p);
    for (unsigned i = 0; i < REC_INFLIGHT_WAYS; i++)
        if (REC_UNLIKELY(b[i] == p) && &b[i] != own)
            inflight_wait_slow(&b[i], p);
}

/* ---- stacks.c ---- */
void stacks_init(void) REC_HIDDEN;
/* The stack of the hooked call whose return address is ra and whose caller's stack pointer
 * (the hook's CFA) is cfa. 0 when stacks are off or unwinding failed. */
uint32_t stack_capture(struct rec_thread *t, uintptr_t ra, uintptr_t cfa) REC_HIDDEN;
void stack_cache_forget(struct rec_thread *t) REC_HIDDEN;
/* Frames of stack id; returns depth (0 unknown). */
unsigned stack_frames(uint32_t id, const uint64_t **frames) REC_HIDDEN;
uint32_t stack_count(void) REC_HIDDEN;
void stacks_atfork_prepare(void) REC_HIDDEN;
void stacks_atfork_release(void) REC_HIDDEN;

/* ---- modules.c ---- */
void modules_scan(void) REC_HIDDEN;
uint32_t module_count(void) REC_HIDDEN;
const struct trace_module *module_at(uint32_t i) REC_HIDDEN;

/* ---- output_file.c ---- */
int output_open(pid_t parent_pid, uint64_t fork_seq, uint64_t first_seq, int root) REC_HIDDEN;

/* ---- block_writer.c ---- */
void blocks_set_output(int fd) REC_HIDDEN;
void blocks_write_raw(const void *p, size_t n) REC_HIDDEN;
/* ctx 0: the flusher, 1: program threads; closed_only: only chunks their writers have left */
int blocks_round(int ctx, int final, int closed_only) REC_HIDDEN;
void blocks_write_end(void) REC_HIDDEN;
void blocks_take_back_end(void) REC_HIDDEN;
int blocks_ended(void) REC_HIDDEN;
void blocks_stats(uint64_t *v) REC_HIDDEN;        /* blocks, raw bytes, file bytes */
void blocks_after_fork(void) REC_HIDDEN;
void blocks_program_dead(void) REC_HIDDEN;
int blocks_help(struct rec_thread *t) REC_HIDDEN;  /* a writer drains its own records */

/* ---- flush.c ---- */
int flush_room_waiters(void) REC_HIDDEN;
int flusher_start(void) REC_HIDDEN;
void flusher_wake(void) REC_HIDDEN;
void flush_sync(unsigned timeout_ms) REC_HIDDEN;      /* everything committed so far is written */
void flush_final(void) REC_HIDDEN;                    /* stop the flusher, write all, end marker */
void flush_resume_after_failed_exec(void) REC_HIDDEN;
void flush_after_fork_child(void) REC_HIDDEN;         /* forget the parent's flusher and file */
void flush_wait_for_room(struct rec_thread *t) REC_HIDDEN; /* t is out of chunk memory */
void flush_note_exiting(void) REC_HIDDEN;
void flush_note_recycled(void) REC_HIDDEN;           /* the flusher freed chunk memory */
void flush_note_chunk_closed(void) REC_HIDDEN;       /* a writer filled a chunk */

/* ---- preload.c ---- */
void rec_message(const char *a, const char *b, const char *c) REC_HIDDEN;

#endif
