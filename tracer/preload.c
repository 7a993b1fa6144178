/* preload.c: libfragscope-trace.so's interposed functions and its start-up.
 *
 * Every malloc-family call of the program lands here first. The hot path finds the thread's
 * state (thread_buffer.c), calls the real glibc function (the exported __libc_* entry points,
 * or dlsym(RTLD_NEXT) for those without one), takes a global sequence number after it returns
 * (holding our lock of the arena it uses, when other threads exist: call_order.c), reads the
 * returned chunk's flag bits, optionally
 * identifies the call stack (stacks.c), and appends a raw record to the thread's chunk. That is
 * all a program thread does; encoding, compression and writing happen in the flusher
 * (flush.c).
 *
 * Calls made while the recorder itself is busy on that thread (depth > 0), and calls made by
 * the thread running the start-up, are served from the recorder's own pool (mmap_pool.c):
 * the measured heap sees only the program's own requests. Pool pointers are recognised by
 * address in free, realloc and malloc_usable_size.
 *
 * Also here: thread start (through a pthread_create trampoline, or on a thread's first call)
 * and exit (a pthread key destructor, run in the last destructor round); fork (atfork handlers
 * plus a wrapper: the parent records FORK, the child opens its own trace); the exec family and
 * _exit/_Exit (final flush first); exit (a destructor waits for the flusher); fatal signals
 * (a handler installed only where the program has none, hidden from sigaction/signal queries);
 * dlopen (rescan modules); periodic samples of RSS, heap residency, brk and mallinfo2.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "recorder.h"
#include "rec_syscall.h"

#define EXPORT __attribute__((visibility("default")))

struct recorder rec = {.fd = -1};
volatile uint64_t rec_seq_line[8] __attribute__((aligned(64)));
volatile int rec_multi;

/* glibc's own entry points: calling them never re-enters us and never runs dlsym. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern int __libc_mallopt(int, int);

/* Resolved with dlsym(RTLD_NEXT) during start-up (its own allocations go to the pool). */
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_malloc_trim)(size_t);
static size_t (*real_malloc_usable_size)(void *);
static struct mallinfo2 (*real_mallinfo2)(void);
static pid_t (*real_fork)(void);
static int (*real_execve)(const char *, char *const[], char *const[]);
static int (*real_execv)(const char *, char *const[]);
static int (*real_execvp)(const char *, char *const[]);
static int (*real_execvpe)(const char *, char *const[], char *const[]);
static int (*real_fexecve)(int, char *const[], char *const[]);
static int (*real_execveat)(int, const char *, char *const[], char *const[], int);
static void (*real__exit)(int) __attribute__((noreturn));
static void (*real__Exit)(int) __attribute__((noreturn));
static int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static void *(*real_dlopen)(const char *, int);
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static sighandler_t (*real_signal)(int, sighandler_t);

static volatile int fatal_installed[65];

/* ---- small helpers ---- */

uint64_t rec_now_ns(void)
{
    struct timespec ts;
    clock_gettime((clockid_t)rec.time_clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

volatile uint64_t rec_clock;

uint64_t rec_clock_read(void)
{
    uint64_t now = rec_now_ns() - rec.time_base_ns;
    uint64_t seen = __atomic_load_n(&rec_clock, __ATOMIC_RELAXED);
    while (now > seen && !__atomic_compare_exchange_n(&rec_clock, &seen, now, 1, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED))
        ;
    return now > seen ? now : seen;
}

/* The time of an event on thread t (see recorder.h, "time"). */
volatile int rec_clock_idle;

/* The thread reads the clock itself: every 32nd call, or every call with the precise clock. */
static __attribute__((noinline)) uint64_t event_time_read(struct rec_thread *t)
{
    t->clock_calls = rec.cfg.precise_clock ? 1 : 32;
    return rec_clock_read();
}

static inline uint64_t event_time_of(struct rec_thread *t)
{
    uint32_t left = t->clock_calls;
    if (REC_UNLIKELY(left <= 1))
        return event_time_read(t);
    t->clock_calls = left - 1;
    if (REC_UNLIKELY(rec_clock_idle)) {
        rec_clock_idle = 0;
        return rec_clock_read();
    }
    return __atomic_load_n(&rec_clock, __ATOMIC_RELAXED);
}

static inline uint64_t event_time(void)
{
    return rec_clock_read();
}

void rec_message(const char *a, const char *b, const char *c)
{
    if (rec.cfg.quiet)
        return;
    const char *parts[] = {"fragscope-trace: ", a, b, c, "\n"};
    for (int i = 0; i < 5; i++)
        rsys3(SYS_write, 2, parts[i], strlen(parts[i]));
}

static unsigned env_uint(const char *name, unsigned dflt, unsigned lo, unsigned hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    unsigned long n = 0;
    for (; *v >= '0' && *v <= '9'; v++)
        n = n * 10 + (unsigned long)(*v - '0');
    if (n < lo)
        n = lo;
    if (n > hi)
        n = hi;
    return (unsigned)n;
}

static int env_true(const char *name, int dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    return !(v[0] == '0' || v[0] == 'n' || v[0] == 'N' || v[0] == 'f' || v[0] == 'F');
}

/* Same-length rewrite of NAME=1 to NAME=0 in our own environment (no allocation), so that
 * programs started from here see that the run's first process has claimed its file. */
static void env_clear_flag(const char *name)
{
    size_t n = strlen(name);
    for (char **e = environ; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=' && (*e)[n + 1] == '1' && (*e)[n + 2] == 0)
            (*e)[n + 1] = '0';
}

static inline uint8_t chunk_flags(const void *p)
{
    return p ? (uint8_t)(((const size_t *)p)[-1] & 7) : 0;
}

/* ---- entering a hook ---- */

#define HOOK_POOL ((struct rec_thread *)1)

static void rec_init(void);
static struct rec_thread *register_thread(int parent);

/* The slow half of hook_enter: start-up, new threads, exited threads. */
static __attribute__((noinline)) struct rec_thread *hook_enter_slow(void)
{
    for (;;) {
        int s = __atomic_load_n(&rec.state, __ATOMIC_ACQUIRE);
        if (s == REC_OFF) {
            rec_init();
            continue;
        }
        if (s == REC_INITIALIZING) {
            if (rsys0(SYS_gettid) == rec.init_tid)
                return HOOK_POOL;
            rsys0(SYS_sched_yield);
            continue;
        }
        if (s != REC_ON)
            return NULL;
        break;
    }
    struct rec_thread *t = thread_lookup();
    if (t && t->depth)
        return HOOK_POOL;
    if (t && (!t->exited || (pid_t)rsys0(SYS_gettid) == t->os_tid)) {
        t->depth = 1;         /* (if exited: the exiting thread's last calls) */
        return t;
    }
    return register_thread(-1);   /* depth is 1 */
}

static inline struct rec_thread *hook_enter(void)
{
    if (REC_LIKELY(rec.state == REC_ON)) {
        struct rec_thread *t = thread_lookup_fast();
        if (REC_LIKELY(t != NULL)) {
            if (REC_LIKELY(!t->depth && !t->exited)) {
                t->depth = 1;
                if ((uintptr_t)t <= (uintptr_t)HOOK_POOL)
                    __builtin_unreachable();   /* (a state's address) */
                return t;
            }
            if (t->depth)
                return HOOK_POOL;
        }
    }
    return hook_enter_slow();
}

static void maybe_sample(struct rec_thread *t, uint64_t now);

/* Writes one record: short (header with the seq's low bits, then args) when it can, else long
 * (header, seq, time, args); see recorder.h. A new chunk sets last_time to UINT64_MAX, so its
 * first record is long. `sample`: a hook's record, after which a sample may be due; that is
 * looked at only when the time moved (a long record), since the time it is due is later than
 * any time a call has seen when it was set. `multi`: 0 when the process has one thread, whose
 * numbers then follow each other (a number taken without a record, the fork's, makes the next
 * record long), so the distance to the previous number needs no check. */
static inline void put_record(struct rec_thread *t, unsigned kind, uint8_t flags, int err,
                              uint32_t stack, uint64_t seq, uint64_t now, const uint64_t *a,
                              unsigned na, int sample, int multi)
{
    uint64_t *w = rec_reserve(t, 3 + na);
    if (REC_UNLIKELY(!w))
        return;
    if (REC_LIKELY(now == t->last_time &&
                   (!multi || seq - t->last_seq - 1 < REC_SEQ_MASK))) {
        unsigned n = 1 + na;
        w[0] = REC_HDR(kind, flags, 0, n, err, stack, seq);
        for (unsigned i = 0; i < na; i++)
            w[1 + i] = a[i];
        t->last_seq = seq;
        rec_commit(t, n);
        return;
    }
    unsigned n = 3 + na;
    w[0] = REC_HDR(kind, flags, 1, n, err, stack, 0);
    w[1] = seq;
    w[2] = now;
    for (unsigned i = 0; i < na; i++)
        w[3 + i] = a[i];
    t->last_seq = seq;
    t->last_time = now;
    rec_commit(t, n);
    if (sample && REC_UNLIKELY(rec.cfg.sample_ms && now >= rec.next_sample_ns) && !t->exited)
        maybe_sample(t, now);
}

#define STACK_HERE(t)                                                                         \
    (rec.cfg.stacks ? stack_capture((t), (uintptr_t)__builtin_return_address(0),             \
                                    (uintptr_t)__builtin_dwarf_cfa())                         \
                    : 0)

/* The order of calls across threads (call_order.c). While the process has one thread a call
 * takes the next number with a plain increment and nothing else. Otherwise an allocation holds
 * the lock of its thread's arena from before the real call until it is numbered. */
static inline volatile uint32_t *order_first_call(struct rec_thread *t)
{
    /* A thread's first call, or an allocation while its arena is not known: glibc picks its
     * arena and allocates its tcache, in steps of their own: hold every lock. (After
     * THREAD_EXIT the thread holds them all already.) */
    t->ordered_once = 1;
    if (t->exited)
        return NULL;
    return arena_lock_all() ? REC_ALL_LOCKS : NULL;
}

/* (Only while other threads exist.) */
static inline volatile uint32_t *order_alloc_begin(struct rec_thread *t)
{
    if (REC_UNLIKELY(!t->home_arena || t->exited))
        return order_first_call(t);
    return arena_lock(t->home_arena);
}

/* After an allocation that returned p (of arena k) through the thread's own arena. glibc keeps
 * a thread on its arena, but the thread's tcache may return a chunk of another arena that the
 * thread freed. A tcache hit leaves the chunk's second word 0 (glibc clears its tcache key); a
 * chunk taken from a bin has its bk pointer there. So the guess is the arena of the thread's
 * first allocation (its tcache is still empty), and moves only when a chunk that surely came
 * through an arena (second word nonzero) came from another one. */
static inline void note_home(struct rec_thread *t, const void *p, uintptr_t k)
{
    if (REC_LIKELY(k == t->home_arena) || !k)
        return;
    if (!t->home_arena || ((const uint64_t *)p)[1] != 0)
        t->home_arena = k;
}

/* The allocation returned a chunk whose arena's lock is not the one it holds (lk): a tcache hit
 * on a chunk of another arena that this thread freed, or glibc moved the thread to another
 * arena. A free of that chunk by another thread is numbered under the chunk's arena lock, so
 * take that lock before numbering. The lock held is let go first (holding two could deadlock):
 * a realloc that moved old out of lk's arena announces old before (call_order.c). */
static __attribute__((noinline)) volatile uint32_t *
order_relock(volatile uint32_t *lk, uintptr_t key, const void *old, const void *p,
             volatile uint64_t **own)
{
    if (old && old != p && !*own)
        *own = inflight_claim((uint64_t)(uintptr_t)old);
    order_unlock(lk);
    return arena_lock(key);
}

/* The number of an allocation (or realloc) that returned p while other threads exist, under
 * the lock of p's arena; then lets go of lk and of the announcement own (realloc of an mmapped
 * chunk). `home`: the call went through the thread's own arena (not realloc of a pointer). */
static inline uint64_t order_alloc_end(struct rec_thread *t, volatile uint32_t *lk,
                                       volatile uint64_t *own, const void *old, int home,
                                       const void *p)
{
    uintptr_t k = 0;
    if (p) {
        k = arena_key_of(p);
        if (k && lk != REC_ALL_LOCKS && REC_UNLIKELY(arena_lock_slot(k) != lk) && !t->exited)
            lk = order_relock(lk, k, old, p, &own);
        inflight_wait((uint64_t)(uintptr_t)p, own);
    }
    uint64_t seq = __atomic_fetch_add(&rec_seq, 1, __ATOMIC_SEQ_CST);
    if (own)
        inflight_release(own);
    order_unlock(lk);
    if (home)
        note_home(t, p, k);
    return seq;
}

/* An allocation that returned p: its number (after the real call), then stack and record.
 * `multi`: other threads existed when the call began (order_alloc_begin took lk then).
 * err is errno when p is NULL (the caller computes it before anything else can touch errno);
 * nothing here changes errno (stacks.c keeps it across libunwind). */
#define RECORD_CALL(t, multi, lk, own, old, kind, p, err, ...)                                \
    do {                                                                                      \
        const uint64_t args_[] = {__VA_ARGS__};                                               \
        if (REC_LIKELY(!(multi))) {                                                           \
            uint64_t seq_ = rec_seq++;                                                        \
            uint64_t now_ = event_time_of(t);                                                 \
            uint32_t stack_ = STACK_HERE(t);                                                  \
            put_record((t), (kind), chunk_flags(p), (err), stack_, seq_, now_, args_,         \
                       sizeof args_ / sizeof args_[0], 1, 0);                                 \
        } else {                                                                              \
            uint64_t seq_ = order_alloc_end((t), (lk), (own), (old), (old) == NULL, (p));     \
            uint64_t now_ = event_time_of(t);                                                 \
            uint32_t stack_ = STACK_HERE(t);                                                  \
            put_record((t), (kind), chunk_flags(p), (err), stack_, seq_, now_, args_,         \
                       sizeof args_ / sizeof args_[0], 1, 1);                                 \
        }                                                                                     \
        (t)->depth = 0;                                                                       \
    } while (0)
#define RECORD_ALLOC(t, multi, lk, kind, p, err, ...)                                         \
    RECORD_CALL(t, multi, lk, NULL, NULL, kind, p, err, __VA_ARGS__)

/* realloc of old while other threads exist: the lock of old's arena (glibc reallocates there;
 * an mmapped old: the thread's, for the malloc it may fall back to), and an mmapped old
 * announced as in flight (glibc unmaps it). */
static inline volatile uint64_t *order_realloc_begin(struct rec_thread *t, void *old,
                                                     volatile uint32_t **lk)
{
    *lk = NULL;
    if (!old) {
        *lk = order_alloc_begin(t);
        return NULL;
    }
    uintptr_t key = arena_key_of(old);
    if (REC_UNLIKELY(!t->ordered_once || t->exited))
        *lk = t->ordered_once ? NULL : order_first_call(t);
    else if (key)
        *lk = arena_lock(key);
    else if (t->home_arena)
        *lk = arena_lock(t->home_arena);
    return key ? NULL : inflight_claim((uint64_t)(uintptr_t)old);
}

#define ERR_IF_NULL(p) ((p) ? 0 : errno)

/* ---- the malloc family ---- */

EXPORT void *malloc(size_t size)
{
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY((uintptr_t)t <= (uintptr_t)HOOK_POOL))
        return t ? pool_alloc(size, 16) : __libc_malloc(size);
    int multi = rec_is_multi();
    volatile uint32_t *lk = multi ? order_alloc_begin(t) : NULL;
    void *p = __libc_malloc(size);
    RECORD_ALLOC(t, multi, lk, TRACE_EV_MALLOC, p, ERR_IF_NULL(p), size, (uint64_t)(uintptr_t)p);
    return p;
}

/* A free while other threads exist: numbered after the call, under the lock of the chunk's
 * arena; an mmapped chunk under every lock, before the call (call_order.c). */
static inline uint64_t order_free(struct rec_thread *t, void *p)
{
    volatile uint32_t *lk = NULL;
    uintptr_t key = arena_key_of(p);
    if (REC_UNLIKELY(!t->ordered_once || t->exited))
        lk = t->ordered_once ? NULL : order_first_call(t);
    else if (key)
        lk = arena_lock(key);
    uint64_t seq;
    if (REC_UNLIKELY(!key)) {
        if (!lk && !t->exited)
            lk = arena_lock_all() ? REC_ALL_LOCKS : NULL;
        seq = __atomic_fetch_add(&rec_seq, 1, __ATOMIC_SEQ_CST);
        __libc_free(p);
    } else {
        __libc_free(p);
        seq = __atomic_fetch_add(&rec_seq, 1, __ATOMIC_SEQ_CST);
    }
    order_unlock(lk);
    return seq;
}

EXPORT void free(void *p)
{
    if (REC_UNLIKELY(p == NULL))
        return;
    if (REC_UNLIKELY(pool_owns(p))) {
        pool_free(p);
        return;
    }
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY((uintptr_t)t <= (uintptr_t)HOOK_POOL)) {
        __libc_free(p);
        return;
    }
    const uint64_t a[] = {(uint64_t)(uintptr_t)p};
    if (REC_LIKELY(!rec_is_multi())) {
        __libc_free(p);
        uint64_t seq = rec_seq++;
        put_record(t, TRACE_EV_FREE, 0, 0, 0, seq, event_time_of(t), a, 1, 1, 0);
    } else {
        uint64_t seq = order_free(t, p);
        put_record(t, TRACE_EV_FREE, 0, 0, 0, seq, event_time_of(t), a, 1, 1, 1);
    }
    t->depth = 0;
}

EXPORT void cfree(void *p)
{
    free(p);
}

EXPORT void *calloc(size_t nmemb, size_t size)
{
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY(t == NULL))
        return __libc_calloc(nmemb, size);
    if (REC_UNLIKELY(t == HOOK_POOL)) {
        size_t n;
        if (__builtin_mul_overflow(nmemb, size, &n))
            return NULL;
        void *q = pool_alloc(n, 16);
        if (q)
            memset(q, 0, n);
        return q;
    }
    int multi = rec_is_multi();
    volatile uint32_t *lk = multi ? order_alloc_begin(t) : NULL;
    void *p = __libc_calloc(nmemb, size);
    RECORD_ALLOC(t, multi, lk, TRACE_EV_CALLOC, p, ERR_IF_NULL(p), nmemb, size, (uint64_t)(uintptr_t)p);
    return p;
}

EXPORT void *realloc(void *old, size_t size)
{
    if (REC_UNLIKELY(old && pool_owns(old)))
        return pool_realloc(old, size);
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY(t == NULL))
        return __libc_realloc(old, size);
    if (REC_UNLIKELY(t == HOOK_POOL)) {
        if (old) {
            /* A program pointer reallocated from inside the recorder: keep it in its heap. */
            return __libc_realloc(old, size);
        }
        return pool_alloc(size, 16);
    }
    int multi = rec_is_multi();
    volatile uint32_t *lk = NULL;
    volatile uint64_t *own = multi ? order_realloc_begin(t, old, &lk) : NULL;
    void *p = __libc_realloc(old, size);
    int e = p || (old && size == 0) ? 0 : errno;     /* realloc(p, 0) freed p: no error */
    RECORD_CALL(t, multi, lk, own, old, TRACE_EV_REALLOC, p, e, (uint64_t)(uintptr_t)old, size,
                (uint64_t)(uintptr_t)p);
    return p;
}

static void *reallocarray_impl(void *old, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    /* glibc's reallocarray is exactly this, but its realloc call goes through the PLT, back
     * into our hook. */
    return __libc_realloc(old, n);
}

EXPORT void *reallocarray(void *old, size_t nmemb, size_t size)
{
    if (REC_UNLIKELY(old && pool_owns(old))) {
        size_t n;
        if (__builtin_mul_overflow(nmemb, size, &n)) {
            errno = ENOMEM;
            return NULL;
        }
        return pool_realloc(old, n);
    }
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY(t == NULL))
        return reallocarray_impl(old, nmemb, size);
    if (REC_UNLIKELY(t == HOOK_POOL)) {
        size_t n;
        if (__builtin_mul_overflow(nmemb, size, &n))
            return NULL;
        return old ? __libc_realloc(old, n) : pool_alloc(n, 16);
    }
    int multi = rec_is_multi();
    volatile uint32_t *lk = NULL;
    volatile uint64_t *own = multi ? order_realloc_begin(t, old, &lk) : NULL;
    void *p = reallocarray_impl(old, nmemb, size);
    int e = p || (old && (nmemb == 0 || size == 0)) ? 0 : errno;
    RECORD_CALL(t, multi, lk, own, old, TRACE_EV_REALLOCARRAY, p, e, (uint64_t)(uintptr_t)old, nmemb,
                size, (uint64_t)(uintptr_t)p);
    return p;
}

EXPORT void *memalign(size_t alignment, size_t size)
{
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY(t == NULL))
        return __libc_memalign(alignment, size);
    if (REC_UNLIKELY(t == HOOK_POOL))
        return pool_alloc(size, alignment < 16 ? 16 : alignment);
    int multi = rec_is_multi();
    volatile uint32_t *lk = multi ? order_alloc_begin(t) : NULL;
    void *p = __libc_memalign(alignment, size);
    RECORD_ALLOC(t, multi, lk, TRACE_EV_MEMALIGN, p, ERR_IF_NULL(p), alignment, size, (uint64_t)(uintptr_t)p);
    return p;
}

EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
    struct rec_thread *t = hook_enter();
    void *(*real)(size_t, size_t) = real_aligned_alloc ? real_aligned_alloc : __libc_memalign;
    if (REC_UNLIKELY(t == NULL))
        return real(alignment, size);
    if (REC_UNLIKELY(t == HOOK_POOL))
        return pool_alloc(size, alignment < 16 ? 16 : alignment);
    int multi = rec_is_multi();
    volatile uint32_t *lk = multi ? order_alloc_begin(t) : NULL;
    void *p = real(alignment, size);
    RECORD_ALLOC(t, multi, lk, TRACE_EV_ALIGNED_ALLOC, p, ERR_IF_NULL(p), alignment, size, (uint64_t)(uintptr_t)p);
    return p;
}

static int posix_memalign_impl(void **out, size_t alignment, size_t size)
{
    if (real_posix_memalign)
        return real_posix_memalign(out, alignment, size);
    if (alignment % sizeof(void *) || (alignment & (alignment - 1)) || alignment == 0)
        return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY(t == NULL))
        return posix_memalign_impl(out, alignment, size);
    if (REC_UNLIKELY(t == HOOK_POOL)) {
        void *p = pool_alloc(size, alignment < 16 ? 16 : alignment);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    void *p = NULL;
    int multi = rec_is_multi();
    volatile uint32_t *lk = multi ? order_alloc_begin(t) : NULL;
    int rc = posix_memalign_impl(&p, alignment, size);
    if (rc == 0)
        *out = p;
    else
        p = NULL;
    RECORD_ALLOC(t, multi, lk, TRACE_EV_POSIX_MEMALIGN, p, rc, alignment, size, (uint64_t)(uintptr_t)p,
                 (uint64_t)(int64_t)rc);
    return rc;
}

EXPORT void *valloc(size_t size)
{
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY(t == NULL))
        return __libc_valloc(size);
    if (REC_UNLIKELY(t == HOOK_POOL))
        return pool_alloc(size, 4096);
    int multi = rec_is_multi();
    volatile uint32_t *lk = multi ? order_alloc_begin(t) : NULL;
    void *p = __libc_valloc(size);
    RECORD_ALLOC(t, multi, lk, TRACE_EV_VALLOC, p, ERR_IF_NULL(p), size, (uint64_t)(uintptr_t)p);
    return p;
}

EXPORT void *pvalloc(size_t size)
{
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY(t == NULL))
        return __libc_pvalloc(size);
    if (REC_UNLIKELY(t == HOOK_POOL))
        return pool_alloc((size + 4095) & ~(size_t)4095, 4096);
    int multi = rec_is_multi();
    volatile uint32_t *lk = multi ? order_alloc_begin(t) : NULL;
    void *p = __libc_pvalloc(size);
    RECORD_ALLOC(t, multi, lk, TRACE_EV_PVALLOC, p, ERR_IF_NULL(p), size, (uint64_t)(uintptr_t)p);
    return p;
}

EXPORT int mallopt(int param, int value)
{
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY(t == NULL || t == HOOK_POOL))
        return __libc_mallopt(param, value);
    int all = t->exited ? 0 : arena_lock_all();
    int rc = __libc_mallopt(param, value);
    int saved = errno;
    uint64_t seq = rec_next_seq(), now = event_time();
    arena_unlock_all(all);
    const uint64_t a[] = {(uint64_t)(int64_t)param, (uint64_t)(int64_t)value, (uint64_t)(int64_t)rc};
    put_record(t, TRACE_EV_MALLOPT, 0, 0, 0, seq, now, a, 3, 1, 1);
    t->depth = 0;
    errno = saved;
    return rc;
}

EXPORT int malloc_trim(size_t pad)
{
    struct rec_thread *t = hook_enter();
    if (REC_UNLIKELY(t == NULL || t == HOOK_POOL))
        return real_malloc_trim ? real_malloc_trim(pad) : 0;
    int all = t->exited ? 0 : arena_lock_all();
    int rc = real_malloc_trim ? real_malloc_trim(pad) : 0;
    int saved = errno;
    uint64_t seq = rec_next_seq(), now = event_time();
    arena_unlock_all(all);
    const uint64_t a[] = {pad, (uint64_t)(int64_t)rc};
    put_record(t, TRACE_EV_MALLOC_TRIM, 0, 0, 0, seq, now, a, 2, 1, 1);
    t->depth = 0;
    errno = saved;
    return rc;
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (p && pool_owns(p))
        return pool_usable(p);
    if (!real_malloc_usable_size)
        real_malloc_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    return real_malloc_usable_size ? real_malloc_usable_size(p) : 0;
}

/* ---- samples ---- */

static uint8_t *mincore_vec;
#define MINCORE_PAGES (64u << 10)

static uint64_t heap_resident_pages(uint64_t lo, uint64_t hi)
{
    uint64_t pages = 0;
    if (!mincore_vec)
        mincore_vec = rec_map(MINCORE_PAGES);
    if (!mincore_vec || hi <= lo)
        return 0;
    lo &= ~4095ull;
    while (lo < hi) {
        uint64_t n = (hi - lo + 4095) / 4096;
        if (n > MINCORE_PAGES)
            n = MINCORE_PAGES;
        if (rsys3(SYS_mincore, lo, n * 4096, mincore_vec) != 0)
            break;
        for (uint64_t i = 0; i < n; i++)
            pages += mincore_vec[i] & 1;
        lo += n * 4096;
    }
    return pages;
}

static uint64_t rss_pages(void)
{
    char buf[128];
    long fd = rsys3(SYS_open, "/proc/self/statm", O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    long n = rsys3(SYS_read, fd, buf, sizeof buf - 1);
    rsys1(SYS_close, fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *p = buf;
    while (*p && *p != ' ')
        p++;
    uint64_t v = 0;
    for (p++; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (uint64_t)(*p - '0');
    return v;
}

static void maybe_sample(struct rec_thread *t, uint64_t now)
{
    if (__atomic_exchange_n(&rec.sampling, 1, __ATOMIC_ACQUIRE))
        return;
    if (now < rec.next_sample_ns) {
        __atomic_store_n(&rec.sampling, 0, __ATOMIC_RELEASE);
        return;
    }
    rec.next_sample_ns = now + (uint64_t)rec.cfg.sample_ms * 1000000ull;
    int saved = errno;
    uint64_t a[13] = {0};
    a[0] = rss_pages();
    a[1] = heap_resident_pages(rec.heap_start, (uint64_t)(uintptr_t)sbrk(0));
    /* The break, mallinfo2 and the number under every arena lock: the sample sits between the
     * calls it saw and those it did not (call_order.c). */
    int all = arena_lock_all();
    a[2] = (uint64_t)(uintptr_t)sbrk(0);
    if (real_mallinfo2) {
        struct mallinfo2 mi = real_mallinfo2();
        a[3] = mi.arena;
        a[4] = mi.ordblks;
        a[5] = mi.smblks;
        a[6] = mi.hblks;
        a[7] = mi.hblkhd;
        a[8] = mi.usmblks;
        a[9] = mi.fsmblks;
        a[10] = mi.uordblks;
        a[11] = mi.fordblks;
        a[12] = mi.keepcost;
    }
    uint64_t seq = rec_next_seq();
    arena_unlock_all(all);
    put_record(t, TRACE_EV_SAMPLE, 0, 0, 0, seq, event_time(), a, 13, 0, 1);
    errno = saved;
    __atomic_store_n(&rec.sampling, 0, __ATOMIC_RELEASE);
}

/* ---- threads ---- */

/* Registers the calling thread and records THREAD_START. Returns it with depth 1. */
static struct rec_thread *register_thread(int parent)
{
    struct rec_thread *t = thread_register(parent);
    if (!t)
        return NULL;
    t->depth = 1;
    if (rec.key_ok)
        pthread_setspecific((pthread_key_t)rec.key, t);
    uint64_t seq = rec_next_seq(), now = event_time();
    const uint64_t a[] = {t->index, (uint64_t)t->os_tid, (uint64_t)(int64_t)parent};
    put_record(t, TRACE_EV_THREAD_START, 0, 0, 0, seq, now, a, 3, 0, 1);
    t->last_time = UINT64_MAX;    /* its first call's record is long: a sample may be due */
    return t;
}

/* The pthread key destructor. glibc runs up to four rounds of destructors and frees the
 * thread's tcache only after the last, so the exit is recorded in the fourth round (re-arming
 * the key until then), after other keys' destructors have had their say. The main thread's
 * tcache is never freed that way (pthread_exit in main), so it gets no THREAD_EXIT. */
static void on_thread_exit(void *v)
{
    struct rec_thread *t = v;
    if (!t || rec.state != REC_ON)
        return;
    if (++t->exit_round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        t->depth++;
        pthread_setspecific((pthread_key_t)rec.key, t);
        t->depth--;
        return;
    }
    if (t->os_tid == rec.pid || t->exited || t->depth)
        return;
    t->depth = 1;
    /* glibc frees the thread's tcache after this, unseen: every lock stays held until the
     * thread has died, so no other thread's call is numbered after THREAD_EXIT but run before
     * those frees (call_order.c). */
    int all = arena_lock_all();
    uint64_t seq = rec_next_seq(), now = event_time();
    const uint64_t a[] = {t->index};
    put_record(t, TRACE_EV_THREAD_EXIT, 0, 0, 0, seq, now, a, 1, 0, 1);
    t->exited = 1;
    if (all)
        arena_keep_all_until_exit(t->os_tid);
    thread_retire_chunk(t);
    t->depth = 0;
}

struct trampoline {
    void *(*fn)(void *);
    void *arg;
    int parent;
};

static void *thread_trampoline(void *p)
{
    struct trampoline tr = *(struct trampoline *)p;
    pool_free(p);
    if (rec.state == REC_ON) {
        struct rec_thread *t = thread_lookup();
        if (!t || t->exited) {
            t = register_thread(tr.parent);
            if (t)
                t->depth = 0;
        }
    }
    return tr.fn(tr.arg);
}

EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (!real_pthread_create) {
        real_pthread_create = dlsym(RTLD_NEXT, "pthread_create");
        if (!real_pthread_create)
            return EAGAIN;
    }
    __atomic_store_n(&rec_multi, 1, __ATOMIC_SEQ_CST);   /* before the thread exists */
    if (rec.state != REC_ON)
        return real_pthread_create(th, attr, fn, arg);
    struct rec_thread *t = thread_lookup();
    struct trampoline *tr = pool_alloc(sizeof *tr, 16);
    if (!tr)
        return real_pthread_create(th, attr, fn, arg);
    tr->fn = fn;
    tr->arg = arg;
    tr->parent = t ? (int)t->index : -1;
    int rc = real_pthread_create(th, attr, thread_trampoline, tr);
    if (rc)
        pool_free(tr);
    return rc;
}

/* ---- fork ---- */

static void atfork_prepare(void)
{
    if (rec.state != REC_ON)
        return;
    struct rec_thread *t = thread_lookup();
    if (t) {
        t->hold = 1;
        rec.fork_seq = rec_next_seq();
    }
    stacks_atfork_prepare();
    threads_atfork_prepare();
    pool_atfork_prepare();
}

static void atfork_parent(void)
{
    if (rec.state != REC_ON)
        return;
    pool_atfork_release();
    threads_atfork_release();
    stacks_atfork_release();
    struct rec_thread *t = thread_lookup();
    if (!t || !t->hold)
        return;
    t->depth++;
    uint64_t *w = rec_reserve(t, 4);
    if (w) {
        w[0] = REC_HDR(TRACE_EV_FORK, 0, 1, 4, 0, 0, 0);
        w[1] = rec.fork_seq;
        w[2] = event_time();
        w[3] = 0;
        t->fork_rec = w;
        t->last_time = UINT64_MAX;     /* the next record is long again */
        rec_commit(t, 4);
    }
    t->depth--;
    if (!t->in_fork) {
        /* fork reached us without our wrapper (e.g. daemon()): the child's pid is unknown. */
        t->fork_rec = NULL;
        t->hold = 0;
    }
}

static void atfork_child(void)
{
    if (rec.state != REC_ON)
        return;
    pool_atfork_release();
    threads_atfork_release();
    stacks_atfork_release();
    pid_t parent = rec.pid;
    struct rec_thread *t = thread_lookup();
    rec_multi = 0;                        /* the child has one thread */
    call_order_after_fork();
    threads_reset_after_fork(t);
    flush_after_fork_child();
    rec.pid = (pid_t)rsys0(SYS_getpid);
    rec.sampling = 0;
    if (output_open(parent, rec.fork_seq, rec_seq, 0) != 0) {
        rec.state = REC_DISABLED;
        return;
    }
    if (flusher_start() != 0)
        rec_message("no flusher task in fork child ", rec.path, "; writing from the program");
    if (t) {
        t->depth = 1;
        uint64_t seq = rec_next_seq(), now = event_time();
        const uint64_t a[] = {t->index, (uint64_t)t->os_tid, (uint64_t)(int64_t)-1};
        put_record(t, TRACE_EV_THREAD_START, 0, 0, 0, seq, now, a, 3, 0, 1);
        t->depth = 0;
    }
}

EXPORT pid_t fork(void)
{
    if (!real_fork)
        real_fork = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
    struct rec_thread *t = rec.state == REC_ON ? thread_lookup() : NULL;
    if (!t && rec.state == REC_ON) {
        t = hook_enter();
        if (t && t != HOOK_POOL)
            t->depth = 0;
        else
            t = NULL;
    }
    if (t)
        t->in_fork = 1;
    pid_t pid = real_fork();
    if (pid != 0 && t) {
        int saved = errno;
        if (t->fork_rec)
            t->fork_rec[3] = (uint64_t)(int64_t)pid;
        t->fork_rec = NULL;
        t->in_fork = 0;
        __atomic_store_n(&t->hold, 0, __ATOMIC_RELEASE);
        flusher_wake();
        errno = saved;
    } else if (pid == 0 && t) {
        t->in_fork = 0;
    }
    return pid;
}

/* ---- exec, _exit ---- */

static int is_our_process(void)
{
    return rec.state == REC_ON && rsys0(SYS_getpid) == rec.pid;
}

static void exec_prepare(void)
{
    if (is_our_process())
        flush_final();
}

static void exec_failed(void)
{
    int saved = errno;
    if (is_our_process())
        flush_resume_after_failed_exec();
    errno = saved;
}

#define RESOLVE(var, name)                                                                    \
    do {                                                                                      \
        if (!(var))                                                                           \
            *(void **)&(var) = dlsym(RTLD_NEXT, (name));                                      \
    } while (0)

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    RESOLVE(real_execve, "execve");
    exec_prepare();
    int rc = real_execve(path, argv, envp);
    exec_failed();
    return rc;
}

EXPORT int execv(const char *path, char *const argv[])
{
    RESOLVE(real_execv, "execv");
    exec_prepare();
    int rc = real_execv(path, argv);
    exec_failed();
    return rc;
}

EXPORT int execvp(const char *file, char *const argv[])
{
    RESOLVE(real_execvp, "execvp");
    exec_prepare();
    int rc = real_execvp(file, argv);
    exec_failed();
    return rc;
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    RESOLVE(real_execvpe, "execvpe");
    exec_prepare();
    int rc = real_execvpe(file, argv, envp);
    exec_failed();
    return rc;
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    RESOLVE(real_fexecve, "fexecve");
    exec_prepare();
    int rc = real_fexecve(fd, argv, envp);
    exec_failed();
    return rc;
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    RESOLVE(real_execveat, "execveat");
    exec_prepare();
    int rc = real_execveat(dirfd, path, argv, envp, flags);
    exec_failed();
    return rc;
}

/* execl, execlp, execle: collect the variadic arguments into an array on the stack. */
#define COLLECT_ARGS(first, ap, argv, extra)                                                  \
    size_t argc_ = 1;                                                                         \
    va_start(ap, first);                                                                      \
    while (va_arg(ap, const char *))                                                          \
        argc_++;                                                                              \
    va_end(ap);                                                                               \
    char *argv[argc_ + 1];                                                                    \
    va_start(ap, first);                                                                      \
    argv[0] = (char *)(first);                                                                \
    for (size_t i_ = 1; i_ <= argc_; i_++)                                                    \
        argv[i_] = va_arg(ap, char *);                                                        \
    extra;                                                                                    \
    va_end(ap)

EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    COLLECT_ARGS(arg, ap, argv, (void)0);
    return execv(path, argv);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    COLLECT_ARGS(arg, ap, argv, (void)0);
    return execvp(file, argv);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    char *const *envp;
    COLLECT_ARGS(arg, ap, argv, envp = va_arg(ap, char *const *));
    return execve(path, argv, envp);
}

EXPORT void _exit(int status)
{
    RESOLVE(real__exit, "_exit");
    if (is_our_process())
        flush_final();
    real__exit(status);
}

EXPORT void _Exit(int status)
{
    RESOLVE(real__Exit, "_Exit");
    if (is_our_process())
        flush_final();
    real__Exit(status);
}

/* ---- dlopen ---- */

EXPORT void *dlopen(const char *file, int mode)
{
    RESOLVE(real_dlopen, "dlopen");
    void *h = real_dlopen(file, mode);
    if (h && rec.state == REC_ON)
        modules_scan();
    return h;
}

/* ---- fatal signals ---- */

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
                                    SIGTERM, SIGINT, SIGQUIT, SIGHUP};

static void on_fatal_signal(int sig)
{
    int saved = errno;
    if (is_our_process()) {
        flush_note_exiting();
        flush_sync(2000);
    }
    /* Back to the default action, then deliver the signal again (it stays blocked until this
     * handler returns; a fault re-executes and faults anyway). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    fatal_installed[sig] = 0;
    if (real_sigaction)
        real_sigaction(sig, &dfl, NULL);
    rsys3(SYS_tgkill, rsys0(SYS_getpid), rsys0(SYS_gettid), sig);
    errno = saved;
}

static void install_fatal_handlers(void)
{
    if (!real_sigaction)
        return;
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        int sig = fatal_signals[i];
        struct sigaction old, sa;
        if (real_sigaction(sig, NULL, &old) != 0)
            continue;
        if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
            continue;         /* the program (or its parent) chose something: leave it */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sa.sa_flags = SA_RESTART;
        if (real_sigaction(sig, &sa, NULL) == 0)
            fatal_installed[sig] = 1;
    }
}

/* The program sees its own view: where only our handler is installed, SIG_DFL. */
EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    RESOLVE(real_sigaction, "sigaction");
    if (sig > 0 && sig < 65 && fatal_installed[sig]) {
        if (old) {
            int rc = real_sigaction(sig, NULL, old);
            if (rc)
                return rc;
            if (old->sa_handler == on_fatal_signal) {
                memset(old, 0, sizeof *old);
                old->sa_handler = SIG_DFL;
            }
        }
        if (act) {
            fatal_installed[sig] = 0;
            return real_sigaction(sig, act, NULL);
        }
        return 0;
    }
    return real_sigaction(sig, act, old);
}

EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    RESOLVE(real_signal, "signal");
    int ours = sig > 0 && sig < 65 && fatal_installed[sig];
    if (ours)
        fatal_installed[sig] = 0;
    sighandler_t prev = real_signal(sig, handler);
    if (ours && prev == on_fatal_signal)
        prev = SIG_DFL;
    return prev;
}

/* ---- start-up and shutdown ---- */

static void read_config(void)
{
    struct rec_config *c = &rec.cfg;
    c->stacks = env_true("FRAGSCOPE_STACKS", 1);
    c->stack_depth = env_uint("FRAGSCOPE_STACK_DEPTH", 32, 1, TRACE_MAX_STACK_DEPTH);
    c->sample_ms = env_uint("FRAGSCOPE_SAMPLE_MS", 100, 0, 3600000);
    c->flush_ms = env_uint("FRAGSCOPE_FLUSH_MS", 200, 1, 60000);
    c->flush_events = env_uint("FRAGSCOPE_FLUSH_EVENTS", 32768, 64, 1u << 20);
    c->buffer_mb = env_uint("FRAGSCOPE_BUFFER_MB", 16, 1, 256);
    const char *clk = getenv("FRAGSCOPE_CLOCK");
    c->precise_clock = clk && !strcmp(clk, "precise");
    c->force = env_true("FRAGSCOPE_FORCE", 0);
    c->quiet = env_true("FRAGSCOPE_QUIET", 0);
    c->stats = env_true("FRAGSCOPE_STATS", 0);
    const char *z = getenv("FRAGSCOPE_COMPRESS");
    c->compress = z && !strcmp(z, "none") ? 2 : 1;
    rec.time_clock = c->precise_clock ? CLOCK_MONOTONIC : CLOCK_MONOTONIC_COARSE;
}

static void resolve_real(void)
{
    RESOLVE(real_posix_memalign, "posix_memalign");
    RESOLVE(real_aligned_alloc, "aligned_alloc");
    RESOLVE(real_malloc_trim, "malloc_trim");
    RESOLVE(real_malloc_usable_size, "malloc_usable_size");
    RESOLVE(real_mallinfo2, "mallinfo2");
    RESOLVE(real_fork, "fork");
    RESOLVE(real_execve, "execve");
    RESOLVE(real__exit, "_exit");
    RESOLVE(real__Exit, "_Exit");
    RESOLVE(real_pthread_create, "pthread_create");
    RESOLVE(real_dlopen, "dlopen");
    RESOLVE(real_sigaction, "sigaction");
    RESOLVE(real_signal, "signal");
}

/* Default output name when FRAGSCOPE_OUT is unset: <program>.<pid>.fstrace here. */
static void default_out(char *dst, size_t cap)
{
    char exe[4096];
    long n = rsys3(SYS_readlink, "/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : (n > 0 ? exe : "program");
    size_t at = 0;
    for (const char *s = base; *s && at + 32 < cap; s++)
        dst[at++] = *s;
    dst[at++] = '.';
    char num[16];
    int k = 0;
    unsigned long v = (unsigned long)rec.pid;
    do {
        num[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k)
        dst[at++] = num[--k];
    memcpy(dst + at, ".fstrace", 9);
}

/* Where glibc keeps this thread's value of our key (recorder.h, thread_lookup_fast): the
 * values of keys 0..31 live inside struct pthread, which starts at the thread pointer. Found by
 * looking for the value register_thread set, then checking that the word follows a change. The
 * scan stays inside struct pthread (its size is glibc's _thread_db_sizeof_pthread); without it,
 * or for a key of 32 or more, hooks use the hash table. */
long rec_tsd_off;

static void find_tsd_slot(struct rec_thread *t)
{
    if (!rec.key_ok || rec.key >= 32)
        return;
    const uint32_t *size = dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread");
    if (!size || *size < 64 || *size > 65536)
        return;
    pthread_key_t key = (pthread_key_t)rec.key;
    if (pthread_getspecific(key) != t)
        return;
    const char *tp = (const char *)rec_tcb();
    for (long off = 16; off + 8 <= (long)*size; off += 8) {
        const volatile uintptr_t *w = (const volatile uintptr_t *)(tp + off);
        if (*w != (uintptr_t)t)
            continue;
        pthread_setspecific(key, (char *)t + 8);
        int follows = *w == (uintptr_t)t + 8;
        pthread_setspecific(key, t);
        if (follows && *w == (uintptr_t)t) {
            rec_tsd_off = off;
            return;
        }
    }
}

static void rec_init(void)
{
    int expect = REC_OFF;
    if (!__atomic_compare_exchange_n(&rec.state, &expect, REC_INITIALIZING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    int saved = errno;
    rec.init_tid = (pid_t)rsys0(SYS_gettid);
    rec.fd = -1;
    rec.heap_start = (uint64_t)(uintptr_t)sbrk(0);
    read_config();
    rec.time_base_ns = rec_now_ns();
    rec.pid = (pid_t)rsys0(SYS_getpid);
    const char *out = getenv("FRAGSCOPE_OUT");
    if (out && *out) {
        size_t n = strnlen(out, sizeof rec.root_path - 1);
        memcpy(rec.root_path, out, n);
        rec.root_path[n] = 0;
    } else {
        default_out(rec.root_path, sizeof rec.root_path);
    }
    const char *root = getenv("FRAGSCOPE_ROOT");
    rec.is_root = !root || strcmp(root, "0") != 0;

    if (call_order_init() != 0) {
        __atomic_store_n(&rec.state, REC_DISABLED, __ATOMIC_RELEASE);
        errno = saved;
        return;
    }
    modules_scan();
    resolve_real();
    stacks_init();
    pthread_key_t key;
    if (pthread_key_create(&key, on_thread_exit) == 0) {
        rec.key = (unsigned)key;
        rec.key_ok = 1;
    }
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    rec.next_sample_ns = 0;

    if (output_open(0, 0, 0, rec.is_root) != 0) {
        __atomic_store_n(&rec.state, REC_DISABLED, __ATOMIC_RELEASE);
        errno = saved;
        return;
    }
    if (rec.is_root) {
        env_clear_flag("FRAGSCOPE_ROOT");
        env_clear_flag("FRAGSCOPE_FORCE");
    }
    if (flusher_start() != 0)
        rec_message("no flusher task for ", rec.path, "; writing from the program's threads");
    install_fatal_handlers();
    __atomic_store_n(&rec.state, REC_ON, __ATOMIC_RELEASE);
    struct rec_thread *t = register_thread(-1);
    if (t) {
        find_tsd_slot(t);
        t->depth = 0;
    }
    errno = saved;
}

__attribute__((constructor)) static void rec_constructor(void)
{
    if (rec.state == REC_OFF)
        rec_init();
}

__attribute__((destructor)) static void rec_destructor(void)
{
    if (is_our_process()) {
        flush_note_exiting();
        flush_sync(5000);
    }
}
