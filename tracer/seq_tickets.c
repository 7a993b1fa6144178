/* seq_tickets.c: dense sequence numbers for the calls of many threads, without a counter that
 * every call writes.
 *
 * While the process has one thread, a call's number is the next value of rec_seq. Once it has
 * more, a call numbered under one of our arena locks (call_order.c) takes a *ticket* from that
 * lock's batch instead: each lock's cache line holds the batch its callers draw from (an id
 * from a global counter of batches, taken once per batch) and how many tickets it has handed
 * out, both changed with plain stores by the lock's holder. The ticket (batch id, index) is
 * what the thread writes as its record's seq (bit 63 set); the drain turns it into the dense
 * number once every earlier batch has closed and so has a known size:
 *
 *     seq = the first number of the process's multi-threaded part
 *         + the sizes of all batches with a smaller id + index.
 *
 * A batch closes when it is full (REC_BATCH_MAX), when a thread whose previous ticket is in a
 * later batch takes the lock (so each thread's tickets grow: its program order), when a call
 * must come after calls of other arenas (an allocation that returned an mmapped chunk or a
 * chunk of another heap, one that waited for an announced pointer: a fresh batch, after every
 * batch taken so far), at every barrier (a call holding every lock closes every batch and
 * takes a batch of its own), and when a drainer finds it idle (it takes the lock for that). So
 * calls on one arena keep the order of its lock, each thread keeps its program order, barriers
 * stand between what came before and after them, and calls of different arenas in between are
 * as unordered as they really were; the file's seqs stay dense and its format does not change.
 *
 * The sizes and first numbers of batches live in two rings of REC_TICKET_RING entries: an entry
 * is reused once the frontier (the first batch whose size is not known) is a ring ahead, so the
 * records of a batch must be drained before that many more batches have closed.
 */
#include <string.h>
#include "recorder.h"
#include "rec_syscall.h"

#define RING REC_TICKET_RING
#define RING_MASK (RING - 1)

volatile uint64_t rec_batch_line[8] __attribute__((aligned(64)));  /* [0]: the next batch id */
#define batch_next (rec_batch_line[0])
volatile int rec_tickets_on;

static volatile uint32_t *sizes;    /* size + 1 of a closed batch, 0 while open or unknown */
static uint64_t *bases;             /* the dense number of a batch's first ticket */
static volatile uint64_t frontier;  /* the first batch whose size is not known */
static volatile int advance_lock, start_lock;

int tickets_init(void)
{
    if (!sizes)
        sizes = rec_map(RING * sizeof *sizes);
    if (!bases)
        bases = rec_map(RING * sizeof *bases);
    return sizes && bases ? 0 : -1;
}

static void lock_spin(volatile int *l)
{
    for (unsigned spins_ = 0; __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE);)
        rec_spin_pause(&spins_);
}

/* The process has just become multi-threaded: numbers from here on are tickets. Every number
 * of the single-threaded part has been taken (rec_seq stops before the second thread exists). */
static void tickets_start(void)
{
    lock_spin(&start_lock);
    if (!rec_tickets_on) {
        __atomic_store_n(&batch_next, 1, __ATOMIC_RELAXED);
        frontier = 1;
        bases[1] = rec_seq;
        __atomic_store_n(&rec_tickets_on, 1, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&start_lock, 0, __ATOMIC_RELEASE);
}

static inline void batch_close(uint64_t v)
{
    uint64_t id = v >> REC_TICKET_IDX_BITS;
    __atomic_store_n(&sizes[id & RING_MASK], (uint32_t)(v & REC_TICKET_IDX_MASK) + 1,
                     __ATOMIC_RELEASE);
}

/* A new batch id, once the rings have room for it. */
static uint64_t batch_new(void)
{
    if (REC_UNLIKELY(!__atomic_load_n(&rec_tickets_on, __ATOMIC_ACQUIRE)))
        tickets_start();
    uint64_t id = __atomic_fetch_add(&batch_next, 1, __ATOMIC_SEQ_CST);
    for (unsigned spins_ = 0; id - __atomic_load_n(&frontier, __ATOMIC_ACQUIRE) >= RING - 1;) {
        tickets_advance();
        rec_spin_pause(&spins_);
    }
    return id;
}

uint64_t ticket_open(volatile uint64_t *w, struct rec_thread *t)
{
    uint64_t v = *w;
    if (v)
        batch_close(v);
    uint64_t id = batch_new();
    *w = id << REC_TICKET_IDX_BITS | 1;
    if (t)
        t->last_batch = id;
    return REC_TICKET | id << REC_TICKET_IDX_BITS;
}

uint64_t ticket_fresh(struct rec_thread *t)
{
    uint64_t id = batch_new();
    __atomic_store_n(&sizes[id & RING_MASK], 2, __ATOMIC_RELEASE);
    if (t)
        t->last_batch = id;
    return REC_TICKET | id << REC_TICKET_IDX_BITS;
}

uint64_t ticket_barrier(struct rec_thread *t)
{
    for (unsigned i = 0; i < REC_ARENA_LOCKS; i++) {
        volatile uint64_t *w = ticket_word(rec_arena_locks + i * 16);
        uint64_t v = *w;
        if (v) {
            batch_close(v);
            *w = 0;
        }
    }
    return ticket_fresh(t);
}

void tickets_advance(void)
{
    if (__atomic_exchange_n(&advance_lock, 1, __ATOMIC_ACQUIRE))
        return;
    uint64_t f = frontier;
    for (;;) {
        uint32_t s = __atomic_load_n(&sizes[f & RING_MASK], __ATOMIC_ACQUIRE);
        if (!s)
            break;
        bases[(f + 1) & RING_MASK] = bases[f & RING_MASK] + s - 1;
        sizes[f & RING_MASK] = 0;
        f++;
    }
    __atomic_store_n(&frontier, f, __ATOMIC_RELEASE);
    __atomic_store_n(&advance_lock, 0, __ATOMIC_RELEASE);
}

/* Closes the batches of arenas nobody is using (taking their locks for a moment; `force`:
 * also when the lock stays held, for the final round: the holder is dead or about to be). */
void tickets_settle(int force)
{
    if (!__atomic_load_n(&rec_tickets_on, __ATOMIC_ACQUIRE))
        return;
    for (unsigned i = 0; i < REC_ARENA_LOCKS; i++) {
        volatile uint32_t *l = rec_arena_locks + i * 16;
        volatile uint64_t *w = ticket_word(l);
        if (!*w)
            continue;
        int got = 0;
        for (unsigned tries = 0; tries < 2000 && !got; tries++) {
            uint32_t zero = 0;
            got = *l == 0 && __atomic_compare_exchange_n(l, &zero, 1, 0, __ATOMIC_SEQ_CST,
                                                         __ATOMIC_RELAXED);
            if (!got)
                __builtin_ia32_pause();
        }
        if (got || force) {
            uint64_t v = *w;
            if (v) {
                batch_close(v);
                *w = 0;
            }
        }
        if (got)
            arena_unlock(l);
    }
    tickets_advance();
}

int ticket_dense_slow(uint64_t raw, uint64_t *out)
{
    uint64_t id = (raw & ~REC_TICKET) >> REC_TICKET_IDX_BITS;
    if (id > __atomic_load_n(&frontier, __ATOMIC_ACQUIRE)) {
        tickets_advance();
        if (id > __atomic_load_n(&frontier, __ATOMIC_ACQUIRE))
            return 0;
    }
    *out = bases[id & RING_MASK] + (raw & REC_TICKET_IDX_MASK);
    return 1;
}

/* The dense number of a barrier's ticket, waiting for batches that other threads are taking. */
uint64_t ticket_dense_wait(uint64_t raw)
{
    uint64_t d = raw;
    for (unsigned spins_ = 0; !ticket_dense(raw, &d);) {
        tickets_advance();
        rec_spin_pause(&spins_);
    }
    return d;
}

/* The dense numbers handed out before the frontier: the next seq after everything drainable. */
uint64_t tickets_next_seq(void)
{
    if (!__atomic_load_n(&rec_tickets_on, __ATOMIC_ACQUIRE))
        return rec_seq;
    tickets_advance();
    return bases[__atomic_load_n(&frontier, __ATOMIC_ACQUIRE) & RING_MASK];
}

/* Something that moves whenever any call is numbered (the flusher's test for a quiet program). */
uint64_t tickets_progress(void)
{
    uint64_t v = rec_seq + batch_next;
    if (rec_tickets_on && rec_arena_locks)
        for (unsigned i = 0; i < REC_ARENA_LOCKS; i++)
            v += *ticket_word(rec_arena_locks + i * 16);
    return v;
}

/* In a fork child: one thread again, numbered from rec_seq; the rings are the parent's. */
void tickets_after_fork(void)
{
    rec_tickets_on = 0;
    batch_next = 0;
    frontier = 0;
    advance_lock = start_lock = 0;
    if (sizes)
        rsys3(SYS_madvise, (long)sizes, RING * sizeof *sizes, 4 /* MADV_DONTNEED */);
}
