/* native_runner.c: fragscope-native-runner, performs an op sequence on the real allocator.
 *
 * Usage: fragscope-native-runner [--ops-fd N | OPS_FILE] [--out-fd N | OUT_FILE]
 * The formats and the address normalisation are described in native_ops.h.
 *
 * How it works. The process is fresh and its only heap allocations are the sequence's: the ops
 * file is mmap'd, the output file is mmap'd and written in place, nothing uses stdio, and the
 * runner's own tables live in static or mmap'd memory. The heap start is sbrk(0) taken before
 * the first allocation of the process.
 *
 * Long sequences (NATIVE_F_SPARSE, for `fragscope replay --native`): the ops are read op by op
 * with read() (from a pipe, while the writer still produces them) and checked one at a time;
 * the blocks live so far are kept in an open-addressing table by op index (the results, which
 * hold them otherwise, are written only for sampled ops), so the runner's memory follows the
 * live set and the output file stays sparse.
 *
 * This executable defines malloc, calloc, realloc, free, memalign, aligned_alloc, valloc and
 * pvalloc. Being in the executable, they interpose the allocator for the whole process,
 * including the dynamic loader's __rtld_malloc (pthread_create's DTV). Each forwards to the
 * next definition (a preloaded allocator, else glibc's) and, unless the op executor itself is
 * calling (g_in_op), logs the call as an internal record so that a model can be fed exactly the
 * same stream. glibc's own internal calls (the tcache flush at thread exit) bypass the symbols
 * and are not seen, as intended.
 *
 * Threads run strictly one at a time: the main thread hands op i to worker K by raising K's
 * flag and waits on g_done, which K raises when the op is over (a short spin, then a futex
 * sleep). So only one thread runs allocator code at any moment and plain globals suffice for the
 * runner's state; the thread that makes an internal call is the main thread or else the one
 * worker allowed to run.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/futex.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native_ops.h"

/* glibc's entry points, used before the forwarding targets are known. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    void *(*memalign)(size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
} next = {__libc_malloc, __libc_calloc, __libc_realloc, __libc_free,
          __libc_memalign, __libc_memalign, __libc_valloc, __libc_pvalloc};

/* ---- runner state ---- */

static const struct native_op *g_ops;
static uint64_t g_nops;
static uint64_t g_flags;
static struct native_out_header *g_out;
static struct native_result *g_res;
static struct native_internal *g_int;      /* output internal records (after setup) */
static uint64_t g_int_cap;
static uint64_t g_page;

static uint64_t g_heap_start;
static int g_heap_start_set;
static int g_foreign;                       /* malloc is not glibc's (LD_PRELOAD) */
static struct native_norm g_norm;

static int g_sparse;                        /* NATIVE_F_SPARSE */
static int g_spin;                          /* hand-over spins before sleeping (0: one CPU) */

static volatile int g_in_op;                /* the executor is calling the allocator */
static uint32_t g_cur_op = NATIVE_AT_START; /* the op being performed */
static uint16_t g_cur_thread;               /* the worker currently allowed to run */
static pthread_t g_main_thread;
static int g_main_set;

/* Internal calls made before the output exists (none expected; kept to be safe). */
#define EARLY_MAX 256
static struct native_internal g_early[EARLY_MAX];
static uint64_t g_int_count;
static int g_int_overflow;
static atomic_flag g_log_lock = ATOMIC_FLAG_INIT;

struct worker {
    pthread_t th;
    _Atomic uint32_t go;
    uint32_t op;                            /* op to run, or UINT32_MAX: return */
    const struct native_op *opp;            /* that op */
};
static struct worker g_workers[NATIVE_MAX_THREADS];
static _Atomic uint32_t g_done;
static _Atomic uint32_t g_workers_running;  /* started and not yet exited */

/* ---- small helpers (no stdio, no malloc) ---- */

static size_t str_len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void put_err(const char *s)
{
    ssize_t r = write(2, s, str_len(s));
    (void)r;
}

static char *fmt_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Formats "op N: msg" (N omitted when op is UINT64_MAX) into the output header and stderr, then
 * exits with status 2. */
static void fail(uint64_t op, const char *msg)
{
    char buf[256];
    char *p = buf, *end = buf + sizeof buf - 2;
    const char *pre = "fragscope-native-runner: ";
    for (const char *q = pre; *q && p < end; q++)
        *p++ = *q;
    if (op != UINT64_MAX) {
        for (const char *q = "op "; *q; q++)
            *p++ = *q;
        p = fmt_u64(p, op);
        *p++ = ':';
        *p++ = ' ';
    }
    for (const char *q = msg; *q && p < end; q++)
        *p++ = *q;
    *p++ = '\n';
    *p = 0;
    if (g_out) {
        size_t n = (size_t)(p - buf);           /* < 256 = sizeof g_out->error */
        memcpy(g_out->error, buf, n + 1 < sizeof g_out->error ? n + 1 : sizeof g_out->error);
        g_out->error[sizeof g_out->error - 1] = 0;
        g_out->status = NATIVE_STATUS_BAD_INPUT;
    }
    put_err(buf);
    _exit(2);
}

static void futex_wait(_Atomic uint32_t *w, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* A hand-over flag: 0 lowered, 1 raised, 2 lowered with its (only) waiter asleep. Each flag has
 * one waiter and one raiser, which alternate. The waiter may spin a little first (`spin`
 * rounds): an op takes about a microsecond, far less than a futex sleep and wake-up, and a trace
 * that alternates between threads hands over at every op. Only a sleeping waiter costs the
 * raiser a system call. */
static void flag_wait(_Atomic uint32_t *w, int spin)
{
    for (int i = 0; i < spin; i++) {
        if (atomic_load_explicit(w, memory_order_acquire) == 1) {
            atomic_store(w, 0);
            return;
        }
        __builtin_ia32_pause();
    }
    for (;;) {
        uint32_t v = 1;
        if (atomic_compare_exchange_strong(w, &v, 0))
            return;
        if (v == 0 && !atomic_compare_exchange_strong(w, &v, 2))
            continue;                       /* raised meanwhile */
        futex_wait(w, 2);
    }
}

static void flag_raise(_Atomic uint32_t *w)
{
    if (atomic_exchange(w, 1) == 2)
        futex_wake(w);
}

static void resolve_next(void);
static int g_resolved;

static void resolve_next_once(void)
{
    if (!g_resolved) {
        g_resolved = 1;
        resolve_next();
    }
}

static uint64_t load_word(void *ctx, uint64_t addr)
{
    (void)ctx;
    return *(const uint64_t *)(uintptr_t)addr;
}

/* The break before the first allocation; then (first call only) where malloc & co. live. */
static void note_heap_start(void)
{
    if (!g_heap_start_set) {
        g_heap_start = (uint64_t)(uintptr_t)sbrk(0);
        g_heap_start_set = 1;
        native_norm_init(&g_norm, g_heap_start, load_word, NULL);
    }
    resolve_next_once();
}

static struct native_addr normalise(uint64_t p, const struct native_addr *old)
{
    if ((g_flags & NATIVE_F_RAW_ADDRS) || g_foreign) {
        struct native_addr a = {p ? NATIVE_ADDR_RAW : NATIVE_ADDR_NULL, 0, 0, 0, p};
        return a;
    }
    return native_norm_addr(&g_norm, p, old);
}

/* ---- internal-call log ---- */

static struct native_internal *internal_at(uint64_t i)
{
    return g_int ? &g_int[i] : &g_early[i];
}

static uint16_t calling_thread(void)
{
    if (g_main_set && !pthread_equal(pthread_self(), g_main_thread))
        return g_cur_thread;
    return 0;
}

/* The block that raw pointer p is: an internal record or an op (latest allocation first). */
static uint32_t find_block(uint64_t p, struct native_addr *old)
{
    for (uint64_t i = g_int_count; i-- > 0;) {
        struct native_internal *r = internal_at(i);
        if (r->kind != NATIVE_OP_FREE && r->raw == p) {
            *old = r->addr;
            return NATIVE_REF_INTERNAL | (uint32_t)i;
        }
    }
    if (g_res && !g_sparse) {               /* sparse: op results are not kept */
        uint64_t top = g_cur_op == NATIVE_AT_START ? 0 : (uint64_t)g_cur_op + 1;
        for (uint64_t i = top; i-- > 0;) {
            if (native_op_allocates(g_ops[i].kind) && g_res[i].done && g_res[i].raw == p) {
                *old = g_res[i].addr;
                return (uint32_t)i;
            }
        }
    }
    return NATIVE_REF_UNKNOWN;
}

static void log_internal(unsigned kind, uint64_t a, uint64_t b, void *in, void *out)
{
    int saved = errno;
    while (atomic_flag_test_and_set(&g_log_lock))
        ;
    uint64_t cap = g_int ? g_int_cap : EARLY_MAX;
    if (g_int_count >= cap) {
        g_int_overflow = 1;
        if (g_out)
            g_out->status = NATIVE_STATUS_OVERFLOW;
    } else {
        struct native_internal r;
        memset(&r, 0, sizeof r);
        r.at_op = g_cur_op;
        r.thread = calling_thread();
        r.kind = (uint8_t)kind;
        r.a = a;
        r.b = b;
        r.ref = NATIVE_REF_NULL;
        struct native_addr old = {0, 0, 0, 0, 0};
        if (kind == NATIVE_OP_FREE || kind == NATIVE_OP_REALLOC) {
            if (in)
                r.ref = find_block((uint64_t)(uintptr_t)in, &old);
        }
        r.raw = (uint64_t)(uintptr_t)out;
        if (kind != NATIVE_OP_FREE)
            r.addr = normalise(r.raw, kind == NATIVE_OP_REALLOC && in ? &old : NULL);
        *internal_at(g_int_count) = r;
        g_int_count++;
        if (g_out)
            g_out->internal_count = g_int_count;
    }
    atomic_flag_clear(&g_log_lock);
    errno = saved;
}

/* ---- the interposed allocator symbols ---- */

static void resolve_next(void);

void *malloc(size_t n)
{
    if (g_in_op)
        return next.malloc(n);
    note_heap_start();
    void *p = next.malloc(n);
    log_internal(NATIVE_OP_MALLOC, n, 0, NULL, p);
    return p;
}

void *calloc(size_t n, size_t size)
{
    if (g_in_op)
        return next.calloc(n, size);
    note_heap_start();
    void *p = next.calloc(n, size);
    log_internal(NATIVE_OP_CALLOC, n, size, NULL, p);
    return p;
}

void *realloc(void *old, size_t n)
{
    if (g_in_op)
        return next.realloc(old, n);
    note_heap_start();
    void *p = next.realloc(old, n);
    log_internal(NATIVE_OP_REALLOC, n, 0, old, p);
    return p;
}

void free(void *p)
{
    if (g_in_op || p == NULL) {
        next.free(p);
        return;
    }
    /* Resolve the block before the free: afterwards the address may be handed out again. */
    note_heap_start();
    int saved = errno;
    log_internal(NATIVE_OP_FREE, 0, 0, p, NULL);
    next.free(p);
    errno = saved;
}

void *memalign(size_t align, size_t n)
{
    if (g_in_op)
        return next.memalign(align, n);
    note_heap_start();
    void *p = next.memalign(align, n);
    log_internal(NATIVE_OP_MEMALIGN, align, n, NULL, p);
    return p;
}

void *aligned_alloc(size_t align, size_t n)
{
    if (g_in_op)
        return next.aligned_alloc(align, n);
    note_heap_start();
    void *p = next.aligned_alloc(align, n);
    log_internal(NATIVE_OP_ALIGNED_ALLOC, align, n, NULL, p);
    return p;
}

void *valloc(size_t n)
{
    if (g_in_op)
        return next.valloc(n);
    note_heap_start();
    void *p = next.valloc(n);
    log_internal(NATIVE_OP_VALLOC, n, 0, NULL, p);
    return p;
}

void *pvalloc(size_t n)
{
    if (g_in_op)
        return next.pvalloc(n);
    note_heap_start();
    void *p = next.pvalloc(n);
    log_internal(NATIVE_OP_PVALLOC, n, 0, NULL, p);
    return p;
}

/* With an allocator preloaded, forward to it rather than to glibc. Done on the first call of
 * any of the symbols (a preloaded library's constructors may allocate before main: libstdc++'s
 * exception pool under jemalloc); a call made while resolving goes to glibc. */
static void resolve_next(void)
{
    static int state;                       /* 0 not yet, 1 resolving, 2 done */
    if (state)
        return;
    state = 1;
    void *s;
    if ((s = dlsym(RTLD_NEXT, "malloc")))
        next.malloc = (void *(*)(size_t))s;
    if ((s = dlsym(RTLD_NEXT, "calloc")))
        next.calloc = (void *(*)(size_t, size_t))s;
    if ((s = dlsym(RTLD_NEXT, "realloc")))
        next.realloc = (void *(*)(void *, size_t))s;
    if ((s = dlsym(RTLD_NEXT, "free")))
        next.free = (void (*)(void *))s;
    if ((s = dlsym(RTLD_NEXT, "memalign")))
        next.memalign = (void *(*)(size_t, size_t))s;
    if ((s = dlsym(RTLD_NEXT, "aligned_alloc")))
        next.aligned_alloc = (void *(*)(size_t, size_t))s;
    if ((s = dlsym(RTLD_NEXT, "valloc")))
        next.valloc = (void *(*)(size_t))s;
    if ((s = dlsym(RTLD_NEXT, "pvalloc")))
        next.pvalloc = (void *(*)(size_t))s;
    /* Another allocator: its pointers have no glibc chunk headers to read. */
    if (next.malloc != (void *(*)(size_t))__libc_malloc)
        g_foreign = 1;
    state = 2;
}

/* ---- measurements ---- */

static uint64_t heap_rss_mincore(void)
{
    static unsigned char vec[16384];
    uint64_t lo = g_heap_start & ~(g_page - 1);
    uint64_t hi = ((uint64_t)(uintptr_t)sbrk(0) + g_page - 1) & ~(g_page - 1);
    uint64_t pages = 0;
    for (uint64_t a = lo; a < hi;) {
        uint64_t n = (hi - a) / g_page;
        if (n > sizeof vec)
            n = sizeof vec;
        if (mincore((void *)(uintptr_t)a, n * g_page, vec) != 0)
            break;
        for (uint64_t i = 0; i < n; i++)
            pages += vec[i] & 1;
        a += n * g_page;
    }
    return pages * g_page;
}

static int starts_with(const char *s, const char *pre)
{
    while (*pre)
        if (*s++ != *pre++)
            return 0;
    return 1;
}

/* Parses one smaps line; state: 0 = outside a [heap] mapping, 1 = inside one. The break area
 * can be several mappings (madvise or mprotect on part of it splits it: hugetlb=1 does), each
 * labelled [heap]: their Rss lines are summed. */
static void smaps_line(const char *line, size_t len, int *state, uint64_t *rss)
{
    int is_header = len > 0 && ((line[0] >= '0' && line[0] <= '9') ||
                                (line[0] >= 'a' && line[0] <= 'f'));
    if (is_header) {
        *state = len >= 6 && memcmp(line + len - 6, "[heap]", 6) == 0;
        return;
    }
    if (*state == 1 && len > 4 && starts_with(line, "Rss:")) {
        uint64_t v = 0;
        for (size_t i = 4; i < len; i++)
            if (line[i] >= '0' && line[i] <= '9')
                v = v * 10 + (uint64_t)(line[i] - '0');
        *rss += v * 1024;
        *state = 0;
    }
}

/* [heap] Rss from /proc/self/smaps, read with open/read into a static buffer; 0 if no [heap]. */
static uint64_t heap_rss_smaps(void)
{
    static char buf[65536];
    int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NATIVE_NOT_SAMPLED;
    size_t have = 0;
    int state = 0;
    uint64_t rss = 0;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        if (r <= 0)
            break;
        have += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < have; i++) {
            if (buf[i] == '\n') {
                smaps_line(buf + start, i - start, &state, &rss);
                start = i + 1;
            }
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == sizeof buf)
            have = 0;                       /* an absurd line: drop it */
    }
    close(fd);
    return rss;
}

static void record_stats(uint32_t i, int sample)
{
    struct native_result *r = &g_res[i];
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    /* Sparse: mallinfo2 (a walk over every bin) at the last op only. */
    if (!(g_flags & NATIVE_F_NO_MALLINFO) && (!g_sparse || (uint64_t)i + 1 == g_nops))
        mi = mallinfo2();
    r->mi.arena = mi.arena;
    r->mi.ordblks = mi.ordblks;
    r->mi.smblks = mi.smblks;
    r->mi.hblks = mi.hblks;
    r->mi.hblkhd = mi.hblkhd;
    r->mi.usmblks = mi.usmblks;
    r->mi.fsmblks = mi.fsmblks;
    r->mi.uordblks = mi.uordblks;
    r->mi.fordblks = mi.fordblks;
    r->mi.keepcost = mi.keepcost;
    r->brk_offset = (uint64_t)(uintptr_t)sbrk(0) - g_heap_start;
    r->heap_rss = NATIVE_NOT_SAMPLED;
    r->smaps_rss = NATIVE_NOT_SAMPLED;
    if (sample || (g_flags & NATIVE_F_RSS))
        r->heap_rss = heap_rss_mincore();
    if ((sample && !g_sparse) || (g_flags & NATIVE_F_SMAPS))
        r->smaps_rss = heap_rss_smaps();
    r->done = 1;
    g_out->ops_done = (uint64_t)i + 1;
}

/* ---- NATIVE_F_SPARSE: the live blocks, the op stream ---- */

/* Live blocks by op index (key = index + 1, 0 = empty): open addressing, linear probing,
 * backward-shift deletion, at most half full, in mmap'd memory (never the heap under test). */
struct blk {
    uint64_t key, raw, req;
};
static struct blk *g_blk;
static uint64_t g_blk_mask, g_blk_count;
static unsigned g_blk_bits;

static uint64_t blk_home(uint64_t key)
{
    return (key * 0x9E3779B97F4A7C15ull) >> (64 - g_blk_bits);
}

static struct blk *blk_find(uint64_t idx)
{
    if (!g_blk)
        return NULL;
    for (uint64_t i = blk_home(idx + 1);; i = (i + 1) & g_blk_mask) {
        if (g_blk[i].key == idx + 1)
            return &g_blk[i];
        if (!g_blk[i].key)
            return NULL;
    }
}

static void blk_insert(const struct blk *b)
{
    uint64_t i = blk_home(b->key);
    while (g_blk[i].key)
        i = (i + 1) & g_blk_mask;
    g_blk[i] = *b;
}

static void blk_put(uint64_t idx, uint64_t raw, uint64_t req)
{
    if (!g_blk || (g_blk_count + 1) * 2 > g_blk_mask + 1) {
        struct blk *old = g_blk;
        uint64_t old_cap = old ? g_blk_mask + 1 : 0;
        unsigned bits = old ? g_blk_bits + 1 : 12;
        void *m = mmap(NULL, ((size_t)1 << bits) * sizeof *g_blk, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            fail(idx, "out of memory for the live-block table");
        g_blk = m;
        g_blk_bits = bits;
        g_blk_mask = ((uint64_t)1 << bits) - 1;
        for (uint64_t i = 0; i < old_cap; i++)
            if (old[i].key)
                blk_insert(&old[i]);
        if (old)
            munmap(old, old_cap * sizeof *old);
    }
    struct blk b = {idx + 1, raw, req};
    blk_insert(&b);
    g_blk_count++;
}

static void blk_del(struct blk *e)
{
    uint64_t i = (uint64_t)(e - g_blk), j = i;
    g_blk_count--;
    for (;;) {
        j = (j + 1) & g_blk_mask;
        if (!g_blk[j].key)
            break;
        uint64_t home = blk_home(g_blk[j].key);
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            g_blk[i] = g_blk[j];
            i = j;
        }
    }
    g_blk[i].key = 0;
}

/* The op stream: read() into a buffer (the ops file may be a pipe). */
#define STREAM_OPS 4096
static struct native_op g_sbuf[STREAM_OPS];
static size_t g_shave, g_spos;              /* bytes in g_sbuf, offset of the next op */
static int g_ops_fd = -1;

static const struct native_op *stream_next(uint64_t i)
{
    char *buf = (char *)g_sbuf;
    if (g_shave - g_spos < sizeof(struct native_op)) {
        size_t rest = g_shave - g_spos;
        memmove(buf, buf + g_spos, rest);
        g_shave = rest;
        g_spos = 0;
        while (g_shave < sizeof(struct native_op)) {
            ssize_t r = read(g_ops_fd, buf + g_shave, sizeof g_sbuf - g_shave);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                fail(i, r < 0 ? "reading the op stream failed"
                              : "the op stream ended before op_count ops");
            g_shave += (size_t)r;
        }
    }
    const struct native_op *op = (const struct native_op *)(buf + g_spos);
    g_spos += sizeof *op;
    return op;
}

/* The checks of an op that need no block table: kind, thread life, and whether it names a
 * block. Returns 1 when op->ref must name a live block (the caller checks which), 0 if not. */
static int check_op_shape(uint64_t i, const struct native_op *op, uint8_t *alive)
{
    if (op->kind == 0 || op->kind >= NATIVE_OP_KIND_COUNT)
        fail(i, "unknown op kind");
    if (op->thread >= NATIVE_MAX_THREADS)
        fail(i, "thread index too large");
    alive[0] = 1;
    if (op->kind == NATIVE_OP_THREAD_START) {
        if (op->thread == 0 || alive[op->thread])
            fail(i, "thread start of a thread that is running");
        alive[op->thread] = 1;
        return 0;
    }
    if (op->kind == NATIVE_OP_THREAD_EXIT) {
        if (op->thread == 0 || !alive[op->thread])
            fail(i, "thread exit of a thread that is not running");
        alive[op->thread] = 0;
        return 0;
    }
    if (!alive[op->thread])
        fail(i, "op on a thread that is not running");
    int uses_ref = op->kind == NATIVE_OP_FREE || op->kind == NATIVE_OP_REALLOC ||
                   op->kind == NATIVE_OP_REALLOCARRAY || op->kind == NATIVE_OP_USABLE_SIZE ||
                   op->kind == NATIVE_OP_WRITE;
    if (!uses_ref || op->ref == NATIVE_REF_NULL) {
        if (op->kind == NATIVE_OP_WRITE && op->ref == NATIVE_REF_NULL)
            fail(i, "write to NULL");
        return 0;
    }
    if (op->ref >= i)
        fail(i, "ref is not an earlier op");
    return 1;
}

/* A write op stays inside the `size` bytes its block was asked for. */
static void check_write_bounds(uint64_t i, const struct native_op *op, uint64_t size)
{
    uint64_t end;
    if (op->kind == NATIVE_OP_WRITE &&
        (op->b == NATIVE_WRITE_ALL ? op->a > size
                                   : (__builtin_add_overflow(op->a, op->b, &end) || end > size)))
        fail(i, "write beyond the requested size of its block");
}

/* The checks of validate(), op by op: refs against the live-block table. */
static uint8_t g_alive[NATIVE_MAX_THREADS];

static void check_op(uint64_t i, const struct native_op *op)
{
    if (!check_op_shape(i, op, g_alive))
        return;
    const struct blk *b = blk_find(op->ref);
    if (!b)
        fail(i, "ref names no live block (an op that does not allocate, or a block already "
                "freed or reallocated)");
    check_write_bounds(i, op, b->req);
}

/* Does op i keep a result (always, unless sparse)? */
static int keeps_result(uint64_t i, const struct native_op *op)
{
    return !g_sparse || (op->flags & NATIVE_OPF_SAMPLE) || op->kind == NATIVE_OP_SAMPLE ||
           i + 1 == g_nops;
}

/* ---- the op executor ---- */

static void *block_ptr(uint32_t ref)
{
    if (ref == NATIVE_REF_NULL)
        return NULL;
    if (g_sparse)
        return (void *)(uintptr_t)blk_find(ref)->raw;   /* check_op made sure it is there */
    return (void *)(uintptr_t)g_res[ref].raw;
}

/* The requested size of the block op `ref` allocated. */
static uint64_t block_request(uint32_t ref)
{
    if (g_sparse)
        return blk_find(ref)->req;
    return native_op_request_size(&g_ops[ref]);
}

static void run_op(uint32_t i, const struct native_op *op)
{
    void *p = NULL, *in = NULL;
    int64_t ret = 0;
    int err = 0;
    g_cur_op = i;
    errno = 0;
    g_in_op = 1;
    switch (op->kind) {
    case NATIVE_OP_MALLOC:
        p = malloc(op->a);
        break;
    case NATIVE_OP_CALLOC:
        p = calloc(op->a, op->b);
        break;
    case NATIVE_OP_REALLOC:
        in = block_ptr(op->ref);
        p = realloc(in, op->a);
        break;
    case NATIVE_OP_REALLOCARRAY:
        in = block_ptr(op->ref);
        p = reallocarray(in, op->a, op->b);
        break;
    case NATIVE_OP_FREE:
        free(block_ptr(op->ref));
        break;
    case NATIVE_OP_MEMALIGN:
        p = memalign(op->a, op->b);
        break;
    case NATIVE_OP_POSIX_MEMALIGN: {
        void *m = NULL;
        ret = posix_memalign(&m, op->a, op->b);
        p = ret == 0 ? m : NULL;
        break;
    }
    case NATIVE_OP_ALIGNED_ALLOC:
        p = aligned_alloc(op->a, op->b);
        break;
    case NATIVE_OP_VALLOC:
        p = valloc(op->a);
        break;
    case NATIVE_OP_PVALLOC:
        p = pvalloc(op->a);
        break;
    case NATIVE_OP_MALLOPT:
        ret = mallopt((int)(int64_t)op->a, (int)(int64_t)op->b);
        break;
    case NATIVE_OP_MALLOC_TRIM:
        ret = malloc_trim(op->a);
        break;
    case NATIVE_OP_USABLE_SIZE:
        ret = (int64_t)malloc_usable_size(block_ptr(op->ref));
        break;
    case NATIVE_OP_WRITE: {
        char *b = block_ptr(op->ref);
        uint64_t len = op->b;
        if (len == NATIVE_WRITE_ALL)
            len = block_request(op->ref) - op->a;
        if (b) {
            memset(b + op->a, (int)(op->c & 0xff), len);
            ret = (int64_t)len;
        } else {
            ret = -1;
        }
        break;
    }
    default:
        break;
    }
    if (native_op_allocates(op->kind) && p == NULL && op->kind != NATIVE_OP_POSIX_MEMALIGN)
        err = errno;
    g_in_op = 0;
    int moved_from = (op->kind == NATIVE_OP_REALLOC || op->kind == NATIVE_OP_REALLOCARRAY) &&
                     op->ref != NATIVE_REF_NULL;
    if (g_sparse) {
        struct blk *b;
        if ((moved_from || op->kind == NATIVE_OP_FREE) && op->ref != NATIVE_REF_NULL &&
            (b = blk_find(op->ref)))
            blk_del(b);
        if (native_op_allocates(op->kind))
            blk_put(i, (uint64_t)(uintptr_t)p, native_op_request_size(op));
        if (!keeps_result(i, op))
            return;
    }
    struct native_result *r = &g_res[i];
    r->raw = (uint64_t)(uintptr_t)p;
    if (native_op_allocates(op->kind))
        r->addr = normalise(r->raw, moved_from && !g_sparse ? &g_res[op->ref].addr : NULL);
    r->ret = ret;
    r->err = err;
    record_stats(i, (op->flags & NATIVE_OPF_SAMPLE) || op->kind == NATIVE_OP_SAMPLE);
}

/* ---- threads ---- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    flag_raise(&g_done);                    /* ready */
    for (;;) {
        /* The main thread always spins for an op to finish; a worker for its next op only when
         * it is the only one (spinning workers would take the CPU from the one running). */
        flag_wait(&w->go, atomic_load(&g_workers_running) == 1 ? g_spin : 0);
        if (w->op == UINT32_MAX)
            return NULL;
        run_op(w->op, w->opp);
        flag_raise(&g_done);
    }
}

static void thread_start(uint32_t i, uint16_t t)
{
    struct worker *w = &g_workers[t];
    g_cur_thread = t;
    atomic_store(&w->go, 0);
    w->op = 0;
    atomic_fetch_add(&g_workers_running, 1);
    int e = pthread_create(&w->th, NULL, worker_main, w);
    if (e != 0)
        fail(i, "pthread_create failed");
    flag_wait(&g_done, g_spin);
}

static void thread_exit(uint16_t t)
{
    struct worker *w = &g_workers[t];
    g_cur_thread = t;
    w->op = UINT32_MAX;
    atomic_fetch_sub(&g_workers_running, 1);
    flag_raise(&w->go);
    pthread_join(w->th, NULL);
}

static void thread_run(uint32_t i, const struct native_op *op)
{
    struct worker *w = &g_workers[op->thread];
    g_cur_thread = op->thread;
    w->op = i;
    w->opp = op;
    flag_raise(&w->go);
    flag_wait(&g_done, g_spin);
}

/* ---- input checking ---- */

static void validate(void)
{
    uint64_t words = (g_nops + 63) / 64;
    uint64_t *gone = mmap(NULL, words * 8 + 8, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    static uint8_t alive[NATIVE_MAX_THREADS];
    if (gone == MAP_FAILED)
        fail(UINT64_MAX, "out of memory checking the ops");
    for (uint64_t i = 0; i < g_nops; i++) {
        const struct native_op *op = &g_ops[i];
        if (!check_op_shape(i, op, alive))
            continue;
        if (!native_op_allocates(g_ops[op->ref].kind))
            fail(i, "ref names an op that does not allocate");
        if (gone[op->ref / 64] >> (op->ref % 64) & 1)
            fail(i, "ref names a block already freed or reallocated");
        check_write_bounds(i, op, native_op_request_size(&g_ops[op->ref]));
        if (op->kind == NATIVE_OP_FREE || op->kind == NATIVE_OP_REALLOC ||
            op->kind == NATIVE_OP_REALLOCARRAY)
            gone[op->ref / 64] |= 1ull << (op->ref % 64);
    }
    munmap(gone, words * 8 + 8);
}

/* ---- setup ---- */

static int parse_fd(const char *s)
{
    long v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > INT_MAX / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return (int)v;
}

static void usage(int to_err)
{
    const char *u =
        "usage: fragscope-native-runner [--ops-fd N | OPS_FILE] [--out-fd N | OUT_FILE]\n"
        "Performs the op sequence of OPS_FILE (replayer/native_ops.h) on this process's real\n"
        "allocator and writes the results to OUT_FILE (created, must not exist).\n"
        "  --ops-fd N   read the ops from file descriptor N instead of a path (a pipe when\n"
        "               the sequence has NATIVE_F_SPARSE)\n"
        "  --out-fd N   write the results to file descriptor N (resized) instead of a path\n"
        "  -h, --help   this text\n";
    ssize_t r = write(to_err ? 2 : 1, u, str_len(u));
    (void)r;
}

int main(int argc, char **argv)
{
    /* The break before anything can allocate; then where malloc & co. really live (a
     * preloaded allocator's, else glibc's). */
    note_heap_start();

    static const struct option opts[] = {
        {"ops-fd", required_argument, NULL, 'i'},
        {"out-fd", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ops_fd = -1, out_fd = -1, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if ((ops_fd = parse_fd(optarg)) < 0)
                fail(UINT64_MAX, "--ops-fd needs a file descriptor number");
            break;
        case 'o':
            if ((out_fd = parse_fd(optarg)) < 0)
                fail(UINT64_MAX, "--out-fd needs a file descriptor number");
            break;
        case 'h':
            usage(0);
            return 0;
        default:
            usage(1);
            return 2;
        }
    }
    const char *ops_path = NULL, *out_path = NULL;
    if (ops_fd < 0 && optind < argc)
        ops_path = argv[optind++];
    if (out_fd < 0 && optind < argc)
        out_path = argv[optind++];
    if (optind < argc || (ops_fd < 0 && !ops_path) || (out_fd < 0 && !out_path)) {
        usage(1);
        return 2;
    }
    g_page = (uint64_t)sysconf(_SC_PAGESIZE);

    /* The ops: the header first, read (the ops file may be a pipe with NATIVE_F_SPARSE), then
     * the whole file mapped, or with NATIVE_F_SPARSE op by op as they run. */
    if (ops_path && (ops_fd = open(ops_path, O_RDONLY | O_CLOEXEC)) < 0)
        fail(UINT64_MAX, "cannot open the ops file");
    struct native_ops_header h;
    size_t got = 0;
    int seekable = lseek(ops_fd, 0, SEEK_CUR) >= 0;
    while (got < sizeof h) {
        /* A file from its start (the writer may have left its offset at the end). */
        ssize_t r = seekable ? pread(ops_fd, (char *)&h + got, sizeof h - got, (off_t)got)
                             : read(ops_fd, (char *)&h + got, sizeof h - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < sizeof h)
        fail(UINT64_MAX, "ops file shorter than its header");
    if (memcmp(h.magic, NATIVE_OPS_MAGIC, 8) != 0)
        fail(UINT64_MAX, "ops file: bad magic (not a native op sequence)");
    if (h.version != NATIVE_VERSION || h.op_size != sizeof(struct native_op))
        fail(UINT64_MAX, "ops file: unsupported version or op size");
    g_nops = h.op_count;
    g_flags = h.flags;
    g_sparse = (h.flags & NATIVE_F_SPARSE) != 0;
    uint64_t thread_ops = 0;
    if (g_sparse) {
        if (h.op_count > NATIVE_MAX_OPS)
            fail(UINT64_MAX, "ops file: op_count above the runner's limit");
        if (seekable && lseek(ops_fd, sizeof h, SEEK_SET) < 0)
            fail(UINT64_MAX, "cannot seek in the ops file");
        g_ops_fd = ops_fd;
        thread_ops = h.thread_ops;
    } else {
        struct stat st;
        if (fstat(ops_fd, &st) != 0 || (uint64_t)st.st_size < sizeof h)
            fail(UINT64_MAX, "ops file shorter than its header");
        void *in = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, ops_fd, 0);
        if (in == MAP_FAILED)
            fail(UINT64_MAX, "cannot map the ops file");
        if (h.op_count > NATIVE_MAX_OPS ||
            h.op_count > ((uint64_t)st.st_size - sizeof h) / sizeof(struct native_op))
            fail(UINT64_MAX, "ops file: op_count larger than the file");
        g_ops = (const struct native_op *)((const char *)in + sizeof h);
        for (uint64_t i = 0; i < g_nops; i++)
            thread_ops += g_ops[i].kind == NATIVE_OP_THREAD_START ||
                          g_ops[i].kind == NATIVE_OP_THREAD_EXIT;
    }

    /* The output: header, results, internal records. Internal calls come from thread starts
     * and exits (a handful each) and from libc itself (rare). With NATIVE_F_SPARSE only the
     * pages of the results kept are ever written. */
    g_int_cap = 4096 + 64 * thread_ops;
    uint64_t res_off = (sizeof(struct native_out_header) + 63) & ~63ull;
    uint64_t int_off = res_off + g_nops * sizeof(struct native_result);
    uint64_t out_size = int_off + g_int_cap * sizeof(struct native_internal);
    if (out_path) {
        out_fd = open(out_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out_fd < 0)
            fail(UINT64_MAX, errno == EEXIST ? "output file exists" : "cannot create the output");
    }
    if (ftruncate(out_fd, (off_t)out_size) != 0)
        fail(UINT64_MAX, "cannot size the output file");
    void *outm = mmap(NULL, out_size, PROT_READ | PROT_WRITE, MAP_SHARED, out_fd, 0);
    if (outm == MAP_FAILED)
        fail(UINT64_MAX, "cannot map the output file");
    g_out = outm;
    memset(g_out, 0, sizeof *g_out);
    memcpy(g_out->magic, NATIVE_OUT_MAGIC, 8);
    g_out->version = NATIVE_VERSION;
    g_out->status = NATIVE_STATUS_RUNNING;
    g_out->result_size = sizeof(struct native_result);
    g_out->internal_size = sizeof(struct native_internal);
    g_out->op_count = g_nops;
    g_out->internal_capacity = g_int_cap;
    g_out->result_offset = res_off;
    g_out->internal_offset = int_off;
    g_out->heap_start = g_heap_start;
    g_out->page_size = g_page;
    g_res = (struct native_result *)((char *)outm + res_off);
    g_int = (struct native_internal *)((char *)outm + int_off);
    for (uint64_t i = 0; i < g_int_count && i < EARLY_MAX; i++)
        g_int[i] = g_early[i];
    g_out->internal_count = g_int_count;
    if (g_int_overflow)
        g_out->status = NATIVE_STATUS_OVERFLOW;

    if (!g_sparse)
        validate();
    if (g_foreign || g_sparse)
        g_flags |= NATIVE_F_RAW_ADDRS;
    g_out->flags = g_flags;
    /* The model has no transparent huge pages; keep the heap's residency page by page. */
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    g_main_thread = pthread_self();
    g_main_set = 1;
    cpu_set_t cpus;
    g_spin = sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) > 1 ? 100 : 0;

    for (uint64_t i = 0; i < g_nops; i++) {
        const struct native_op *op = g_sparse ? stream_next(i) : &g_ops[i];
        if (g_sparse)
            check_op(i, op);
        g_cur_op = (uint32_t)i;
        if (op->kind == NATIVE_OP_THREAD_START) {
            thread_start((uint32_t)i, op->thread);
            g_cur_thread = 0;
            if (keeps_result(i, op))
                record_stats((uint32_t)i, op->flags & NATIVE_OPF_SAMPLE);
        } else if (op->kind == NATIVE_OP_THREAD_EXIT) {
            thread_exit(op->thread);
            g_cur_thread = 0;
            if (keeps_result(i, op))
                record_stats((uint32_t)i, op->flags & NATIVE_OPF_SAMPLE);
        } else if (op->thread == 0) {
            run_op((uint32_t)i, op);
        } else {
            thread_run((uint32_t)i, op);
            g_cur_thread = 0;
        }
        if (g_sparse)
            g_out->ops_done = i + 1;
    }
    if (g_out->status == NATIVE_STATUS_RUNNING)
        g_out->status = NATIVE_STATUS_OK;
    _exit(g_out->status == NATIVE_STATUS_OK ? 0 : 3);
}
