/* call_order.c: numbering calls of different threads in the order they really used the heap.
 *
 * Every call takes its sequence number after the real call returns, frees included. Calls on
 * one arena are serialised by glibc's arena lock, but a number taken after glibc has unlocked
 * can still come late: unlocking a contended lock wakes the waiter with a system call, the
 * kernel often runs the woken thread at once, and it numbers its own call first. (Numbering a
 * free before the call was worse: a free that then waits for the lock lands before the other
 * thread's calls that really came first.) So:
 *
 * - Arena locks. A call holds a lock of ours for the arena it will use from before the real call
 *   until it has its number: calls on one arena are then numbered exactly in the order they ran.
 *   The arena is known exactly for free and realloc (from the chunk: its NON_MAIN_ARENA bit and
 *   the heap_info at the start of its 64 MiB heap) and guessed for allocations (the arena of the
 *   thread's previous allocation; a thread's first call, or one while its arena is unknown, holds
 *   every lock). 64 locks, hashed by arena; a contended lock sleeps on a futex. Only while the
 *   process has more than one thread. Calls that use every arena (malloc_trim, mallopt, the
 *   mallinfo2 of a sample) hold all 64.
 *
 * - Allocations checked after the call. An allocation that returned a chunk of an arena other
 *   than the one whose lock it holds (a tcache hit on a chunk of another arena that this thread
 *   freed, or glibc moved the thread) lets its lock go and takes the lock of the chunk's arena
 *   before it is numbered. A free of that chunk by another thread held that lock until it was
 *   numbered, so a free of an address always precedes any allocation that returns it again,
 *   even for a call whose arena was guessed wrong; and no table shared by all threads is
 *   written or read on each call.
 *
 * - Blocks in flight. The one release the arena locks cannot order is a realloc of an mmapped
 *   chunk (glibc unmaps it, and any arena's mmap may return the address): the realloc announces
 *   the pointer here before the call and withdraws it once numbered, and an allocation that
 *   returned an announced pointer waits for that. So does a realloc that moved its block out of
 *   the arena it locked and must let that lock go before numbering. Allocations look only while
 *   something is announced (a count read from a line nobody writes otherwise). 512 buckets of
 *   one cache line (8 pointers) each.
 *
 * - Frees of mmapped chunks hold every lock and take their number before the call: glibc raises
 *   the mmap threshold (process-wide, under no lock) first thing, then unmaps with a slow
 *   system call. An allocation that read the old threshold (and is perhaps still in its own
 *   mmap) holds its arena's lock until it is numbered, so it is numbered before the free.
 *
 * Any wait here ends after 50 ms whatever happens (a thread stopped by a signal handler that
 * waits for this one); a pointer that still has no slot then goes unannounced.
 */
#include <string.h>
#include "recorder.h"
#include "rec_syscall.h"

#define INFLIGHT_BYTES (REC_INFLIGHT_BUCKETS * REC_INFLIGHT_WAYS * sizeof(uint64_t))
#define LOCKS_BYTES (REC_ARENA_LOCKS * 64)
#define WAIT_LIMIT_NS 50000000ull          /* frees in flight, the gate of an exited thread */
#define LOCK_LIMIT_NS 1000000000ull        /* an arena lock (its holder may be descheduled) */

volatile uint64_t *rec_inflight;
volatile uint32_t rec_inflight_active_line[16] __attribute__((aligned(64)));
volatile uint32_t *rec_arena_locks;

int call_order_init(void)
{
    if (!rec_inflight)
        rec_inflight = rec_map(INFLIGHT_BYTES);
    if (!rec_arena_locks)
        rec_arena_locks = rec_map(LOCKS_BYTES);
    if (!rec_inflight || !rec_arena_locks)
        return -1;
    /* Touch every page now, not between a call and its number. */
    memset((void *)rec_inflight, 0, INFLIGHT_BYTES);
    memset((void *)rec_arena_locks, 0, LOCKS_BYTES);
    return 0;
}

/* Locked: 1, or 2 when a thread may sleep on it. */
void arena_lock_slow(volatile uint32_t *l)
{
    for (unsigned spins = 0; spins < 100; spins++) {
        __builtin_ia32_pause();
        uint32_t zero = 0;
        if (*l == 0 && __atomic_compare_exchange_n(l, &zero, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return;
    }
    uint64_t deadline = 0;
    while (__atomic_exchange_n(l, 2, __ATOMIC_SEQ_CST) != 0) {
        uint64_t now = rec_now_ns();
        if (!deadline) {
            deadline = now + LOCK_LIMIT_NS;
        } else if (now >= deadline) {
            /* The holder is stuck (or died holding it): go on without the lock. Its unlock
             * will clear the word under us, which only costs order, never correctness. */
            return;
        }
        rec_futex_wait(l, 2, 10);
    }
}

void arena_unlock_wake(volatile uint32_t *l)
{
    rsys6(SYS_futex, (long)l, 1 /* FUTEX_WAKE */, 1, 0, 0, 0);
}

/* ---- the gate: taking every lock without starving ----
 * A call that needs every lock first closes the gate (rec_gate = 1), then takes the locks one
 * by one; a thread that gets a lock while the gate is closed lets it go again and waits for the
 * gate to open, so the locks cannot be taken back from under the gate's holder forever. An
 * exiting thread keeps the gate closed past its last code (gate_owner: its tid): glibc frees the
 * thread's tcache after the last key destructor, through calls nobody sees, and no other
 * thread's call may be numbered after THREAD_EXIT yet run before those frees. The first thread
 * that waits after the owner has died opens the gate. */
volatile uint32_t rec_gate;
static volatile int32_t gate_owner;
static volatile uint64_t gate_since;

static void unlock_every_lock(void)
{
    for (unsigned i = 0; i < REC_ARENA_LOCKS; i++)
        arena_unlock(rec_arena_locks + i * 16);
}

static void gate_open(void)
{
    __atomic_store_n(&rec_gate, 0, __ATOMIC_SEQ_CST);
    rsys6(SYS_futex, (long)&rec_gate, 1 /* FUTEX_WAKE */, 0x7fffffff, 0, 0, 0);
}

/* Waits (a while) for the gate to open; takes it over from an exited owner. */
static void gate_wait(void)
{
    uint32_t g = __atomic_load_n(&rec_gate, __ATOMIC_SEQ_CST);
    if (!g)
        return;
    int32_t owner = __atomic_load_n(&gate_owner, __ATOMIC_ACQUIRE);
    if (owner) {
        long alive = rsys3(SYS_tgkill, rec.pid, owner, 0) == 0;
        uint64_t since = gate_since;
        if (alive && rec_now_ns() - since < WAIT_LIMIT_NS) {
            struct rec_timespec ts = {0, 20000};
            rsys2(SYS_nanosleep, &ts, 0);
            return;
        }
        if (__atomic_compare_exchange_n(&gate_owner, &owner, 0, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            gate_open();
        return;
    }
    rec_futex_wait(&rec_gate, g, 10);
}

void arena_lock_gated(volatile uint32_t *l)
{
    do {
        arena_unlock(l);
        gate_wait();
        uint32_t zero = 0;
        if (!__atomic_compare_exchange_n(l, &zero, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            arena_lock_slow(l);
    } while (__atomic_load_n(&rec_gate, __ATOMIC_SEQ_CST));
}

/* Calls that read or change every arena (mallinfo2 for a sample, malloc_trim, mallopt) and a
 * thread's first call hold every lock. Returns 1 if taken (only with other threads around). */
int arena_lock_all(void)
{
    if (!rec_is_multi())
        return 0;
    for (;;) {
        uint32_t zero = 0;
        if (__atomic_compare_exchange_n(&rec_gate, &zero, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            break;
        gate_wait();
    }
    for (unsigned i = 0; i < REC_ARENA_LOCKS; i++) {
        volatile uint32_t *l = rec_arena_locks + i * 16;
        uint32_t zero = 0;
        if (!__atomic_compare_exchange_n(l, &zero, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            arena_lock_slow(l);
    }
    return 1;
}

void arena_unlock_all(int taken)
{
    if (!taken)
        return;
    unlock_every_lock();
    gate_open();
}

/* The calling thread holds every lock (arena_lock_all) and is about to exit: the gate stays
 * closed until it has died. The locks themselves are let go (a thread that gets one finds the
 * gate closed and waits at the gate, where it can see the owner die). */
void arena_keep_all_until_exit(pid_t tid)
{
    gate_since = rec_now_ns();
    __atomic_store_n(&gate_owner, tid, __ATOMIC_RELEASE);
    unlock_every_lock();
}

void inflight_wait_slow(volatile uint64_t *slot, uint64_t p)
{
    uint64_t deadline = 0;
    for (unsigned spins = 0; __atomic_load_n(slot, __ATOMIC_ACQUIRE) == p; spins++) {
        if (spins < 64) {
            __builtin_ia32_pause();
            continue;
        }
        uint64_t now = rec_now_ns();
        if (!deadline)
            deadline = now + WAIT_LIMIT_NS;
        else if (now >= deadline)
            return;
        rsys0(SYS_sched_yield);
    }
}

volatile uint64_t *inflight_claim_slow(volatile uint64_t *b, uint64_t p)
{
    uint64_t deadline = rec_now_ns() + WAIT_LIMIT_NS;
    for (;;) {
        volatile uint64_t *s = inflight_try_claim(b, p);
        if (s || rec_now_ns() >= deadline)
            return s;
        rsys0(SYS_sched_yield);
    }
}

/* In a fork child only the forking thread exists: nothing is in flight, no lock is held. */
void call_order_after_fork(void)
{
    if (rec_inflight)
        memset((void *)rec_inflight, 0, INFLIGHT_BYTES);
    rec_inflight_active = 0;
    if (rec_arena_locks)
        memset((void *)rec_arena_locks, 0, LOCKS_BYTES);
    rec_gate = 0;
    gate_owner = 0;
}
