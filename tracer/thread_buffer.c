/* thread_buffer.c: per-thread recorder state and the chunks its records go into.
 *
 * A thread's state is found from its thread pointer (the TCB address glibc keeps at %fs:0x10)
 * through an open-addressing table in mmap'd memory: no TLS, no locks, a few loads. States live
 * in one reserved array and are never freed; a state whose thread has exited is taken over by
 * the next thread that gets the same TCB address (glibc reuses thread stacks).
 *
 * Records go into chunks (mmap'd, recycled through a free list by the flusher). The owner
 * thread appends and publishes `committed` with a release store; the flusher consumes up to
 * `committed`. When a chunk is full the owner links a fresh one after it and marks the old one
 * closed. Chunk memory is capped (FRAGSCOPE_BUFFER_MB); at the cap a writer waits for the
 * flusher to hand chunks back.
 */
#include <string.h>
#include <sys/mman.h>
#include "recorder.h"
#include "rec_syscall.h"

#define MAX_THREADS 65536u
#define THREAD_SLOT REC_THREAD_SLOT
#define TCB_SLOTS REC_TCB_SLOTS
#define states rec_states
#define tcb_table rec_tcb_table
#define tcb_hash rec_tcb_hash

_Static_assert(sizeof(struct rec_thread) <= THREAD_SLOT, "rec_thread fits its slot");

char *rec_states;                     /* MAX_THREADS * THREAD_SLOT */
struct rec_tcb_slot *rec_tcb_table;
static volatile uint32_t states_used;
static volatile uint32_t next_index;  /* dense trace thread index */

static struct rec_chunk *free_chunks;
static volatile int chunk_lock;
static uint64_t chunk_bytes_total;

static int tables_ready(void)
{
    if (REC_LIKELY(tcb_table != NULL))
        return 1;
    /* Called during init (single thread) before any lookup. */
    states = rec_map((size_t)MAX_THREADS * THREAD_SLOT);
    tcb_table = rec_map((size_t)TCB_SLOTS * sizeof(struct rec_tcb_slot));
    return states && tcb_table;
}

struct rec_thread *thread_at(uint32_t i)
{
    return (struct rec_thread *)(states + (size_t)i * THREAD_SLOT);
}

uint32_t thread_count(void)
{
    return __atomic_load_n(&states_used, __ATOMIC_ACQUIRE);
}

uint32_t thread_next_index(void)
{
    return __atomic_fetch_add(&next_index, 1, __ATOMIC_RELAXED);
}

/* ---- chunks ---- */

static uint64_t chunk_words(void)
{
    uint64_t w = (uint64_t)rec.cfg.flush_events * 6;
    if (w < 4096)
        w = 4096;
    if (w > (1u << 19))
        w = 1u << 19;
    return w;
}

static void chunk_lock_take(void)
{
    for (unsigned spins_ = 0; __atomic_exchange_n(&chunk_lock, 1, __ATOMIC_ACQUIRE);)
        rec_spin_pause(&spins_);
}
static void chunk_lock_give(void)
{
    __atomic_store_n(&chunk_lock, 0, __ATOMIC_RELEASE);
}

/* Two sizes. A thread starts in a small chunk and moves to large ones once it fills it, and
 * an exiting thread moves to a small one for its last calls, so that the chunk a dead thread
 * keeps forever is small. Large chunks count against FRAGSCOPE_BUFFER_MB; small ones do not. */
#define SMALL_WORDS 8192u

static struct rec_chunk *free_small;

static struct rec_chunk *chunk_get(struct rec_thread *t, int small)
{
    uint64_t words = small ? SMALL_WORDS : chunk_words();
    uint64_t bytes = sizeof(struct rec_chunk) + words * 8;
    uint64_t cap = (uint64_t)rec.cfg.buffer_mb << 20;
    for (unsigned tries = 0;; tries++) {
        struct rec_chunk *c = NULL;
        int may_map = 0;
        chunk_lock_take();
        struct rec_chunk **list = small ? &free_small : &free_chunks;
        if (*list) {
            c = *list;
            *list = c->next;
        } else if (small || chunk_bytes_total + bytes <= cap || tries > 400) {
            /* Past the cap after ~2 s of waiting: the flusher is stuck or gone; grow rather
             * than stop the program. */
            if (!small)
                chunk_bytes_total += bytes;
            may_map = 1;
        }
        chunk_lock_give();
        if (may_map) {
            c = rec_map(bytes);
            if (c)
                c->cap = words;
        }
        if (c) {
            c->next = NULL;
            c->closed = 0;
            c->committed = 0;
            return c;
        }
        if (may_map)
            return NULL;
        flush_wait_for_room(t);
    }
}

void thread_chunk_recycle(struct rec_chunk *c)
{
    chunk_lock_take();
    struct rec_chunk **list = c->cap == SMALL_WORDS ? &free_small : &free_chunks;
    c->next = *list;
    *list = c;
    chunk_lock_give();
    flush_note_recycled();
}

static int new_chunk(struct rec_thread *t, int small)
{
    t->depth++;
    struct rec_chunk *c = chunk_get(t, small);
    t->depth--;
    if (!c)
        return -1;
    c->thread = t->index;
    if (t->cur) {
        t->cur->next = c;
        __atomic_store_n(&t->cur->closed, 1, __ATOMIC_RELEASE);
        flush_note_chunk_closed();
        flusher_wake();
    } else {
        t->drain = c;
        t->drain_pos = 0;
    }
    t->cur = c;
    t->wp = c->words;
    t->wend = c->words + c->cap;
    t->last_time = UINT64_MAX;    /* the chunk's first record is a long one (recorder.h) */
    return 0;
}

/* The current chunk is full (or the thread index changed): move on. */
int thread_new_chunk(struct rec_thread *t)
{
    return new_chunk(t, t->cur == NULL || t->exited);
}

/* The thread has recorded its exit: hand its chunk to the flusher, keep a small one. */
void thread_retire_chunk(struct rec_thread *t)
{
    if (t->cur && t->cur->cap != SMALL_WORDS)
        new_chunk(t, 1);
}

/* ---- registration ---- */

static int slot_insert(uintptr_t k, uint32_t state_plus1)
{
    for (uint32_t i = tcb_hash(k), n = 0; n < TCB_SLOTS; i = (i + 1) & (TCB_SLOTS - 1), n++) {
        uintptr_t s = tcb_table[i].key;
        if (s == k) {
            tcb_table[i].state = state_plus1;
            return 0;
        }
        if (s == 0) {
            uintptr_t z = 0;
            if (__atomic_compare_exchange_n(&tcb_table[i].key, &z, k, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                __atomic_store_n(&tcb_table[i].state, state_plus1, __ATOMIC_RELEASE);
                return 0;
            }
            if (z == k) {
                tcb_table[i].state = state_plus1;
                return 0;
            }
        }
    }
    return -1;
}

/* Makes (or renews) the calling thread's state. The caller records THREAD_START. */
struct rec_thread *thread_register(int parent)
{
    if (!tables_ready())
        return NULL;
    uintptr_t k = rec_tcb();
    struct rec_thread *t = thread_lookup();
    if (t) {
        /* The TCB of an exited thread, reused by a new one. */
        t->index = thread_next_index();
        t->exited = 1;            /* (so that thread_new_chunk picks a small chunk) */
        t->exit_round = 0;
        t->parent = parent;
        t->os_tid = (pid_t)rsys0(SYS_gettid);
        t->home_arena = 0;   /* a new thread: glibc picks its arena anew */
        t->ordered_once = 0;
        stack_cache_forget(t);
        if (t->cur) {
            /* Move to a chunk of the new index; keep the old one for the flusher. */
            t->depth++;
            int rc = thread_new_chunk(t);
            t->depth--;
            if (rc)
                return NULL;
        }
        t->exited = 0;
        return t;
    }
    uint32_t i = __atomic_fetch_add(&states_used, 1, __ATOMIC_ACQ_REL);
    if (i >= MAX_THREADS)
        return NULL;
    if (i > 0)
        __atomic_store_n(&rec_multi, 1, __ATOMIC_SEQ_CST);
    t = thread_at(i);
    memset(t, 0, sizeof *t);
    t->tcb = k;
    t->index = thread_next_index();
    t->parent = parent;
    t->os_tid = (pid_t)rsys0(SYS_gettid);
    t->depth = 1;
    int rc = thread_new_chunk(t);
    t->depth = 0;
    if (rc)
        return NULL;
    __atomic_store_n(&t->ready, 1, __ATOMIC_RELEASE);
    if (slot_insert(k, i + 1))
        return NULL;
    return t;
}

/* ---- fork ---- */

void threads_atfork_prepare(void)
{
    chunk_lock_take();
}

void threads_atfork_release(void)
{
    chunk_lock_give();
}

/* In the child: only the forking thread exists. Everything recorded so far belongs to the
 * parent's trace; the child's trace starts empty with this thread as thread 0. */
void threads_reset_after_fork(struct rec_thread *self)
{
    uint32_t n = thread_count();
    for (uint32_t i = 0; i < n; i++) {
        struct rec_thread *t = thread_at(i);
        if (t != self)
            t->ready = 0;
    }
    /* Inherited chunks are copies the child never needs: forget them (their pages stay
     * copy-on-write untouched). */
    free_chunks = NULL;
    free_small = NULL;
    chunk_bytes_total = 0;
    chunk_lock = 0;
    madvise(tcb_table, (size_t)TCB_SLOTS * sizeof(struct rec_tcb_slot), MADV_DONTNEED);
    next_index = 0;
    if (!self)
        return;
    self->index = thread_next_index();
    self->cur = NULL;
    self->drain = NULL;
    self->drain_pos = 0;
    self->exited = 0;
    self->exit_round = 0;
    self->parent = -1;
    self->hold = 0;
    self->drain_lock = 0;
    self->os_tid = (pid_t)rsys0(SYS_gettid);
    self->depth++;
    thread_new_chunk(self);
    self->depth--;
    slot_insert(rec_tcb(), (uint32_t)(((char *)self - states) / THREAD_SLOT) + 1);
}
