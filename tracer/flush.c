/* flush.c: from raw records to trace blocks on disk, off the program's threads.
 *
 * The flusher is a task made with clone(CLONE_VM): it shares the program's memory but is not
 * in its thread group, has its own copy of the file table, blocks every signal and has a
 * private fake thread pointer (so zlib's stack-protector reads work and no glibc thread state
 * is touched). It sleeps on a futex; writers wake it when a chunk fills, and it wakes by itself
 * every FRAGSCOPE_FLUSH_MS. Each round drains every thread's committed records, turns them
 * into events (trace_encode_event), puts each stack's and module's definition before its first
 * use, seals blocks of about 1 MiB with zlib level 1 and writes them.
 *
 * Ends of the program: exit() and fatal signals ask for a synchronous round and leave the rest
 * to the flusher; exec and _exit ask for the final round (all records, then the end marker)
 * and wait for it; a failed exec takes the end marker back. When the program is gone
 * (getppid() changes), the flusher still holds the memory, writes whatever was committed,
 * closes the file with the end marker and exits. So even SIGKILL loses nothing committed.
 *
 * If the flusher cannot be started, program threads run the same rounds themselves under
 * flush_lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include "recorder.h"
#include "rec_syscall.h"
#include "trace_wire.h"

#define RAW_TARGET (1u << 20)
#define RAW_CAP (RAW_TARGET + (256u << 10))
#define ZARENA_BYTES (2u << 20)
#define FLUSHER_STACK (256u << 10)
#define FLUSHER_TLS (128u << 10)
#define STACK_BITMAP_BYTES ((1u << 20) / 8)

/* Shared between the program's threads and the flusher. */
static volatile uint32_t wake_word, sleeping;
static volatile uint32_t req_gen, ack_gen;
static volatile uint32_t stop_req, flusher_alive;
static volatile uint32_t final_req, final_done, unfinal_req;
static volatile uint32_t exiting_hint;
static volatile uint32_t room_word, room_waiters;   /* writers waiting for chunk memory */
#define MAX_THREADS_TRACKED 1024
static volatile int flush_lock;
static int flusher_pid;
static dev_t out_dev;
static ino_t out_ino;
static uint64_t end_offset;          /* where the end marker starts, once written */
static uint64_t file_bytes;

/* Owned by whoever holds flush_lock. */
static uint8_t *raw, *sealed;
static size_t sealed_cap;
static char *zarena;
static size_t zused;
static uint8_t *stack_emitted;
static uint32_t modules_emitted;
static uint64_t blocks_written, raw_bytes;
static char *flusher_stack, *flusher_tls;

/* ---- zlib memory: a bump arena reset after every block ---- */

static void *z_alloc(void *opaque, unsigned items, unsigned size)
{
    (void)opaque;
    size_t n = ((size_t)items * size + 15) & ~(size_t)15;
    if (zused + n > ZARENA_BYTES)
        return NULL;
    void *p = zarena + zused;
    zused += n;
    return p;
}

static void z_free(void *opaque, void *addr)
{
    (void)opaque;
    (void)addr;
}

static int buffers_ready(void)
{
    if (raw)
        return 1;
    sealed_cap = trace_block_bound(RAW_CAP);
    raw = rec_map(RAW_CAP);
    sealed = rec_map(sealed_cap);
    zarena = rec_map(ZARENA_BYTES);
    stack_emitted = rec_map(STACK_BITMAP_BYTES);
    return raw && sealed && zarena && stack_emitted;
}

/* ---- writing ---- */

static int out_fd_ok(void)
{
    struct stat st;
    /* Program threads check that the descriptor is still our file (the program may have
     * closed it and reused the number). The flusher has its own descriptor table. */
    if (rsys0(SYS_getpid) == flusher_pid)
        return 1;
    if (rsys2(SYS_fstat, rec.fd, &st) != 0)
        return 0;
    return st.st_dev == out_dev && st.st_ino == out_ino;
}

static void out_write(const void *p, size_t n)
{
    if (rec.fd < 0 || !out_fd_ok())
        return;
    if (rec_write_all(rec.fd, p, n) == 0)
        file_bytes += n;
}

/* ---- building blocks ---- */

struct block {
    size_t len;
    uint32_t thread;
    uint64_t first_seq, last_seq;
    uint64_t events;
    struct trace_encode_state enc;
};

static void block_begin(struct block *b, uint32_t thread)
{
    b->len = 0;
    b->thread = thread;
    b->first_seq = b->last_seq = 0;
    b->events = 0;
    trace_encode_state_reset(&b->enc);
}

/* ---- how hard to compress ----
 * Traces of real programs shrink 5-50x at zlib level 1, fast. High-entropy streams (random
 * sizes and addresses) barely shrink, and then level 1 costs the flusher more than the program
 * spends allocating. So: level 1 normally (trace_block_seal); Huffman-only for a thread whose
 * last level-1 block shrank less than 1/4 (re-tried every 16 blocks); stored (deflate level 0)
 * while full chunks wait to be drained, so that the program never waits on compression. Every
 * mode is plain raw deflate: the reader does not know the difference. FRAGSCOPE_COMPRESS=
 * level1 / huffman / none fixes the mode. */
enum { SEAL_LEVEL1, SEAL_HUFFMAN, SEAL_STORED };
static volatile uint32_t chunks_closed;   /* by writers */
static uint32_t chunks_drained;           /* by the flusher */
static uint8_t poor_ratio[MAX_THREADS_TRACKED];
static uint8_t poor_retry[MAX_THREADS_TRACKED];
static uint64_t seal_counts[3];

void flush_note_chunk_closed(void)
{
    __atomic_add_fetch(&chunks_closed, 1, __ATOMIC_RELAXED);
}

static int seal_mode(uint32_t thread)
{
    if (rec.cfg.compress >= 0)
        return rec.cfg.compress;
    uint32_t backlog = __atomic_load_n(&chunks_closed, __ATOMIC_RELAXED) - chunks_drained;
    if (backlog >= 2 || room_waiters)
        return SEAL_STORED;
    uint32_t k = thread % MAX_THREADS_TRACKED;
    if (poor_ratio[k] && ++poor_retry[k] % 16)
        return SEAL_HUFFMAN;
    return SEAL_LEVEL1;
}

/* trace_block_seal with another deflate level/strategy (same framing: see trace_wire.h). */
static size_t seal_with(int level, int strategy, const struct block *b, const struct trace_zalloc *za)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = za->alloc;
    zs.zfree = za->free;
    zs.opaque = za->opaque;
    if (deflateInit2(&zs, level, Z_DEFLATED, -15, 8, strategy) != Z_OK)
        return 0;
    zs.next_in = raw;
    zs.avail_in = (uInt)b->len;
    zs.next_out = sealed + WIRE_BLOCK_FRAME;
    zs.avail_out = (uInt)(sealed_cap - WIRE_BLOCK_FRAME);
    int rc = deflate(&zs, Z_FINISH);
    size_t payload = zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END)
        return 0;
    uint64_t first = b->events ? b->first_seq : 0, last = b->events ? b->last_seq : 0;
    memcpy(sealed, WIRE_BLOCK_TAG, 4);
    wire_put32(sealed + 4, (uint32_t)payload);
    wire_put32(sealed + 8, (uint32_t)b->len);
    wire_put32(sealed + 12, b->thread);
    wire_put64(sealed + 16, first);
    wire_put64(sealed + 24, last);
    wire_put32(sealed + 32, (uint32_t)crc32(0, sealed + WIRE_BLOCK_FRAME, (uInt)payload));
    wire_put32(sealed + 36, (uint32_t)crc32(0, sealed, 36));
    return WIRE_BLOCK_FRAME + payload;
}

static void block_seal(struct block *b)
{
    if (b->len == 0)
        return;
    zused = 0;
    struct trace_zalloc za = {z_alloc, z_free, NULL};
    int mode = seal_mode(b->thread);
    size_t n;
    if (mode == SEAL_LEVEL1) {
        n = trace_block_seal(sealed, sealed_cap, raw, b->len, b->thread,
                             b->events ? b->first_seq : 0, b->events ? b->last_seq : 0, &za);
        if (b->len >= 4096)
            poor_ratio[b->thread % MAX_THREADS_TRACKED] = n * 4 > b->len * 3;
    } else {
        n = seal_with(mode == SEAL_STORED ? 0 : 1,
                      mode == SEAL_STORED ? Z_DEFAULT_STRATEGY : Z_HUFFMAN_ONLY, b, &za);
    }
    seal_counts[mode]++;
    if (n) {
        out_write(sealed, n);
        blocks_written++;
        raw_bytes += b->len;
    }
    block_begin(b, b->thread);
}

static void block_modules(struct block *b)
{
    uint32_t n = module_count();
    while (modules_emitted < n) {
        if (b->len + TRACE_MODULE_MAX_BYTES > RAW_CAP)
            block_seal(b);
        size_t k = trace_encode_module(raw + b->len, RAW_CAP - b->len, module_at(modules_emitted));
        b->len += k;
        modules_emitted++;
    }
}

/* Fills ev (all zero on entry) from a raw record; event_clear() zeroes it again. */
static void record_to_event(const uint64_t *w, uint32_t thread, struct trace_event *ev)
{
    uint64_t h = w[0];
    const uint64_t *a = w + 3;
    ev->kind = (uint8_t)h;
    ev->chunk_flags = (uint8_t)(h >> 8);
    ev->err = (int8_t)(h >> 24);
    ev->stack_id = (uint32_t)(h >> 32);
    ev->seq = w[1];
    ev->time_ns = w[2];
    ev->thread = thread;
    switch (ev->kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
        ev->size = a[0]; ev->ptr = a[1]; break;
    case TRACE_EV_CALLOC:
        ev->nmemb = a[0]; ev->size = a[1]; ev->ptr = a[2]; break;
    case TRACE_EV_REALLOC:
        ev->old_ptr = a[0]; ev->size = a[1]; ev->ptr = a[2]; break;
    case TRACE_EV_REALLOCARRAY:
        ev->old_ptr = a[0]; ev->nmemb = a[1]; ev->size = a[2]; ev->ptr = a[3]; break;
    case TRACE_EV_FREE:
        ev->ptr = a[0]; break;
    case TRACE_EV_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC:
        ev->alignment = a[0]; ev->size = a[1]; ev->ptr = a[2]; break;
    case TRACE_EV_POSIX_MEMALIGN:
        ev->alignment = a[0]; ev->size = a[1]; ev->ptr = a[2]; ev->result = (int64_t)a[3]; break;
    case TRACE_EV_MALLOPT:
        ev->param = (int64_t)a[0]; ev->value = (int64_t)a[1]; ev->result = (int64_t)a[2]; break;
    case TRACE_EV_MALLOC_TRIM:
        ev->size = a[0]; ev->result = (int64_t)a[1]; break;
    case TRACE_EV_THREAD_START:
        ev->thread = (uint32_t)a[0]; ev->os_tid = a[1]; ev->value = (int64_t)a[2]; break;
    case TRACE_EV_THREAD_EXIT:
        ev->thread = (uint32_t)a[0]; break;
    case TRACE_EV_FORK:
        ev->value = (int64_t)a[0]; break;
    case TRACE_EV_SAMPLE: {
        struct trace_sample *s = &ev->sample;
        uint64_t *f[13] = {&s->rss_pages, &s->heap_resident_pages, &s->brk, &s->arena,
                           &s->ordblks, &s->smblks, &s->hblks, &s->hblkhd, &s->usmblks,
                           &s->fsmblks, &s->uordblks, &s->fordblks, &s->keepcost};
        for (int i = 0; i < 13; i++)
            *f[i] = a[i];
        break;
    }
    default:
        break;
    }
}

static void event_clear(struct trace_event *ev)
{
    if (ev->kind == TRACE_EV_SAMPLE) {
        memset(ev, 0, sizeof *ev);
        return;
    }
    ev->chunk_flags = 0;
    ev->err = 0;
    ev->stack_id = 0;
    ev->size = ev->nmemb = ev->alignment = ev->old_ptr = ev->ptr = ev->os_tid = 0;
    ev->param = ev->value = ev->result = 0;
    ev->thread = 0;
}

static struct trace_event scratch_ev;    /* kept all-zero between events */

static void block_event(struct block *b, const uint64_t *w)
{
    struct trace_event *ev = &scratch_ev;
    record_to_event(w, b->thread, ev);
    if (b->len + TRACE_EVENT_MAX_BYTES + TRACE_STACK_MAX_BYTES > RAW_CAP)
        block_seal(b);
    if (b->len == 0)
        block_modules(b);
    if (ev->stack_id && ev->stack_id < (1u << 20) &&
        !(stack_emitted[ev->stack_id >> 3] & (1u << (ev->stack_id & 7)))) {
        const uint64_t *frames;
        unsigned depth = stack_frames(ev->stack_id, &frames);
        if (depth) {
            b->len += trace_encode_stack(raw + b->len, RAW_CAP - b->len, ev->stack_id, frames, depth);
            stack_emitted[ev->stack_id >> 3] |= (uint8_t)(1u << (ev->stack_id & 7));
        } else {
            ev->stack_id = 0;
        }
    }
    b->len += trace_encode_event(raw + b->len, ev, &b->enc);
    if (!b->events)
        b->first_seq = ev->seq;
    b->last_seq = ev->seq;
    b->events++;
    event_clear(ev);
    if (b->len >= RAW_TARGET)
        block_seal(b);
}

/* Drains one thread's committed records into blocks. */
static void drain_thread(struct rec_thread *t, struct block *b)
{
    struct rec_chunk *c = t->drain;
    uint64_t pos = t->drain_pos;
    if (!c)
        return;
    block_begin(b, c->thread);
    while (c) {
        uint32_t closed = __atomic_load_n(&c->closed, __ATOMIC_ACQUIRE);
        uint64_t end = __atomic_load_n(&c->committed, __ATOMIC_ACQUIRE);
        if (c->thread != b->thread) {
            block_seal(b);
            block_begin(b, c->thread);
        }
        while (pos < end) {
            const uint64_t *w = c->words + pos;
            unsigned nw = (unsigned)((w[0] >> 16) & 0xff);
            if (nw < 3 || pos + nw > end)
                break;                /* cannot happen: whole records only */
            block_event(b, w);
            pos += nw;
        }
        if (!closed || pos < end)
            break;
        struct rec_chunk *next = c->next;
        t->drain = next;
        t->drain_pos = 0;
        thread_chunk_recycle(c);
        chunks_drained++;
        c = next;
        pos = 0;
    }
    if (c) {
        t->drain = c;
        t->drain_pos = pos;
    }
    block_seal(b);
}

static void flush_round(int final)
{
    struct block b;
    if (!buffers_ready())
        return;
    block_begin(&b, 0);
    uint32_t n = thread_count();
    for (uint32_t i = 0; i < n; i++) {
        struct rec_thread *t = thread_at(i);
        if (!__atomic_load_n(&t->ready, __ATOMIC_ACQUIRE))
            continue;
        if (t->hold && !final)
            continue;
        drain_thread(t, &b);
    }
    if (modules_emitted < module_count()) {
        block_begin(&b, 0);
        block_modules(&b);
        block_seal(&b);
    }
}

static void write_end(void)
{
    uint8_t end[TRACE_END_BYTES];
    size_t n = trace_encode_end(end, sizeof end, blocks_written, rec_seq);
    end_offset = file_bytes;
    out_write(end, n);
}

static void lock_flush(void)
{
    while (__atomic_exchange_n(&flush_lock, 1, __ATOMIC_ACQUIRE))
        rsys0(SYS_sched_yield);
}
static void unlock_flush(void)
{
    __atomic_store_n(&flush_lock, 0, __ATOMIC_RELEASE);
}

/* ---- the flusher task ---- */

static void put_num(char *buf, size_t *at, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        buf[(*at)++] = tmp[--n];
}

/* FRAGSCOPE_STATS=1: one line on stderr when the flusher ends. */
static void report_stats(void)
{
    if (!rec.cfg.stats)
        return;
    struct {
        long utime_s, utime_us, stime_s, stime_us;
        long rest[14];
    } ru;
    rsys2(SYS_getrusage, 0 /* RUSAGE_SELF */, &ru);
    char buf[256];
    size_t at = 0;
    const char *parts[] = {"fragscope-trace: pid ", " events ", " blocks ", " raw_bytes ",
                           " bytes ", " flusher_cpu_ms ", " level1 ", " huffman ", " stored ",
                           "\n"};
    uint64_t vals[] = {(uint64_t)rec.pid, rec_seq, blocks_written, raw_bytes, file_bytes,
                       (uint64_t)(ru.utime_s + ru.stime_s) * 1000 +
                           (uint64_t)(ru.utime_us + ru.stime_us) / 1000,
                       seal_counts[0], seal_counts[1], seal_counts[2]};
    for (int i = 0; i < 10; i++) {
        for (const char *p = parts[i]; *p; p++)
            buf[at++] = *p;
        if (i < 9)
            put_num(buf, &at, vals[i]);
    }
    rsys3(SYS_write, 2, buf, at);
}

static __attribute__((noreturn)) void flusher_exit(void)
{
    report_stats();
    __atomic_store_n(&flusher_alive, 0, __ATOMIC_RELEASE);
    rec_futex_wake(&flusher_alive);
    for (;;)
        rsys1(SYS_exit, 0);
}

/* Is the program still running in the memory we share? getppid() changes when it has died;
 * kcmp tells an exec (the same pid, a new address space). */
static int program_gone(void)
{
    if (rsys0(SYS_getppid) != rec.pid)
        return 1;
    long r = rsys6(SYS_kcmp, rsys0(SYS_getpid), rec.pid, 0 /* KCMP_VM */, 0, 0, 0);
    return r > 0 || r == -ESRCH;
}

static int flusher_main(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t w = __atomic_load_n(&wake_word, __ATOMIC_ACQUIRE);
        if (stop_req)
            flusher_exit();
        if (program_gone()) {
            /* The program is gone (exit, signal, SIGKILL) or has become another program
             * (exec): what it committed is all there will be. */
            lock_flush();
            if (!final_done) {
                flush_round(1);
                write_end();
            }
            unlock_flush();
            rsys1(SYS_close, rec.fd);
            flusher_exit();
        }
        if (unfinal_req) {
            /* exec failed: take the end marker back and go on. */
            lock_flush();
            rsys2(SYS_ftruncate, rec.fd, end_offset);
            rsys3(SYS_lseek, rec.fd, end_offset, SEEK_SET);
            file_bytes = end_offset;
            final_done = 0;
            unlock_flush();
            __atomic_store_n(&unfinal_req, 0, __ATOMIC_RELEASE);
            rec_futex_wake(&unfinal_req);
        }
        uint32_t r = __atomic_load_n(&req_gen, __ATOMIC_ACQUIRE);
        uint32_t f = __atomic_load_n(&final_req, __ATOMIC_ACQUIRE);
        lock_flush();
        if (!final_done) {
            flush_round(f);
            if (f) {
                write_end();
                final_done = 1;
            }
        }
        unlock_flush();
        if (f) {
            __atomic_store_n(&final_req, 0, __ATOMIC_RELEASE);
            rec_futex_wake(&final_done);
        }
        if (ack_gen != r) {
            __atomic_store_n(&ack_gen, r, __ATOMIC_RELEASE);
            rec_futex_wake(&ack_gen);
        }
        __atomic_exchange_n(&sleeping, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&wake_word, __ATOMIC_SEQ_CST) == w && !stop_req && !final_req &&
            !unfinal_req && req_gen == r)
            rec_futex_wait(&wake_word, w, exiting_hint ? 2 : rec.cfg.flush_ms);
        __atomic_store_n(&sleeping, 0, __ATOMIC_SEQ_CST);
    }
    return 0;
}

int flusher_start(void)
{
    if (!buffers_ready())
        return -1;
    if (!flusher_stack)
        flusher_stack = rec_map(FLUSHER_STACK);
    if (!flusher_tls)
        flusher_tls = rec_map(FLUSHER_TLS);
    if (!flusher_stack || !flusher_tls)
        return -1;
    /* A thread pointer of its own: self pointers and the stack-protector and pointer guards
     * copied from ours; static TLS below it is zeroed scratch the flusher never relies on. */
    uint64_t *tcb = (uint64_t *)(flusher_tls + FLUSHER_TLS - 32768);
    memset(tcb, 0, 4096);
    uint64_t guard, pguard;
    __asm__("mov %%fs:0x28, %0" : "=r"(guard));
    __asm__("mov %%fs:0x30, %0" : "=r"(pguard));
    tcb[0] = (uint64_t)(uintptr_t)tcb;
    tcb[2] = (uint64_t)(uintptr_t)tcb;
    tcb[5] = guard;
    tcb[6] = pguard;
    stop_req = 0;
    final_req = final_done = unfinal_req = 0;
    __atomic_store_n(&flusher_alive, 1, __ATOMIC_RELEASE);
    uint64_t all = ~0ull, old;
    rsys4(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
    int pid = clone(flusher_main, flusher_stack + FLUSHER_STACK - 64,
                    CLONE_VM | CLONE_SETTLS | CLONE_UNTRACED, NULL, NULL, tcb, NULL);
    rsys4(SYS_rt_sigprocmask, SIG_SETMASK, &old, 0, 8);
    if (pid <= 0) {
        flusher_alive = 0;
        return -1;
    }
    flusher_pid = pid;
    return 0;
}

void flusher_wake(void)
{
    __atomic_add_fetch(&wake_word, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&sleeping, __ATOMIC_SEQ_CST))
        rec_futex_wake(&wake_word);
}

static int wait_word(volatile uint32_t *w, uint32_t until_not, unsigned timeout_ms)
{
    uint64_t deadline = rec_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
        if (v != until_not)
            return 0;
        uint64_t now = rec_now_ns();
        if (now >= deadline)
            return -1;
        unsigned ms = (unsigned)((deadline - now) / 1000000ull) + 1;
        rec_futex_wait(w, v, ms > 50 ? 50 : ms);
    }
}

static int try_lock_flush(void)
{
    return __atomic_exchange_n(&flush_lock, 1, __ATOMIC_ACQUIRE) == 0;
}

void flush_sync(unsigned timeout_ms)
{
    if (!flusher_alive) {
        lock_flush();
        flush_round(0);
        unlock_flush();
        return;
    }
    /* If the flusher is not in a round, do the round here: on a busy machine the flusher may
     * not even be running. */
    if (!final_done && try_lock_flush()) {
        if (!final_done)
            flush_round(0);
        unlock_flush();
        return;
    }
    uint32_t g = __atomic_add_fetch(&req_gen, 1, __ATOMIC_SEQ_CST);
    wake_word++;
    rec_futex_wake(&wake_word);
    uint64_t deadline = rec_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        uint32_t a = __atomic_load_n(&ack_gen, __ATOMIC_ACQUIRE);
        if ((int32_t)(a - g) >= 0 || !flusher_alive)
            return;
        uint64_t now = rec_now_ns();
        if (now >= deadline)
            return;
        rec_futex_wait(&ack_gen, a, 20);
    }
}

void flush_note_exiting(void)
{
    exiting_hint = 1;
}

void flush_final(void)
{
    if (flusher_alive) {
        __atomic_store_n(&final_req, 1, __ATOMIC_SEQ_CST);
        wake_word++;
        rec_futex_wake(&wake_word);
        /* wait until final_done becomes 1 */
        uint64_t deadline = rec_now_ns() + 10000000000ull;
        while (!__atomic_load_n(&final_done, __ATOMIC_ACQUIRE) && flusher_alive &&
               rec_now_ns() < deadline)
            rec_futex_wait(&final_done, 0, 20);
        if (final_done)
            return;
    }
    lock_flush();
    if (!final_done) {
        flush_round(1);
        write_end();
        final_done = 1;
    }
    unlock_flush();
}

void flush_resume_after_failed_exec(void)
{
    if (flusher_alive) {
        __atomic_store_n(&unfinal_req, 1, __ATOMIC_SEQ_CST);
        wake_word++;
        rec_futex_wake(&wake_word);
        wait_word(&unfinal_req, 1, 5000);
        return;
    }
    lock_flush();
    if (final_done && out_fd_ok()) {
        rsys2(SYS_ftruncate, rec.fd, end_offset);
        rsys3(SYS_lseek, rec.fd, end_offset, SEEK_SET);
        file_bytes = end_offset;
        final_done = 0;
    }
    unlock_flush();
}

void flush_wait_for_room(void)
{
    if (!flusher_alive) {
        lock_flush();
        flush_round(0);
        unlock_flush();
        return;
    }
    /* Rather than sleep while the flusher catches up, help it. */
    if (!final_done && try_lock_flush()) {
        if (!final_done)
            flush_round(0);
        unlock_flush();
        return;
    }
    __atomic_add_fetch(&room_waiters, 1, __ATOMIC_SEQ_CST);
    uint32_t w = __atomic_load_n(&room_word, __ATOMIC_SEQ_CST);
    flusher_wake();
    rec_futex_wait(&room_word, w, 5);
    __atomic_sub_fetch(&room_waiters, 1, __ATOMIC_SEQ_CST);
}

void flush_note_recycled(void)
{
    __atomic_add_fetch(&room_word, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&room_waiters, __ATOMIC_SEQ_CST))
        rec_futex_wake(&room_word);
}

/* ---- the output file ---- */

static size_t cat(char *dst, size_t cap, size_t at, const char *s)
{
    while (*s && at + 1 < cap)
        dst[at++] = *s++;
    dst[at] = 0;
    return at;
}

static size_t cat_num(char *dst, size_t cap, size_t at, unsigned long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at + 1 < cap)
        dst[at++] = tmp[--n];
    dst[at] = 0;
    return at;
}

static int create_file(const char *path, int force)
{
    if (force) {
        struct stat st;
        if (rsys2(SYS_lstat, path, &st) == 0) {
            if (!S_ISREG(st.st_mode))
                return -EEXIST;
            rsys1(SYS_unlink, path);
        }
    }
    return (int)rsys3(SYS_open, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* Reads a small /proc file into buf (NUL-terminated). Returns its length. */
static size_t read_proc(const char *path, char *buf, size_t cap)
{
    long fd = rsys3(SYS_open, path, O_RDONLY | O_CLOEXEC, 0);
    size_t n = 0;
    if (fd < 0) {
        buf[0] = 0;
        return 0;
    }
    while (n + 1 < cap) {
        long k = rsys3(SYS_read, fd, buf + n, cap - 1 - n);
        if (k == -EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    rsys1(SYS_close, fd);
    buf[n] = 0;
    return n;
}

static void write_header(pid_t parent_pid, uint64_t fork_seq, uint64_t first_seq)
{
    size_t scratch_bytes = 4u << 20;
    char *scratch = rec_map(scratch_bytes);
    struct trace_header *h = rec_map(sizeof *h);
    if (!scratch || !h)
        return;
    char *argv = scratch, *env = scratch + (1u << 20);
    uint8_t *out = (uint8_t *)scratch + (2u << 20);
    size_t n = read_proc("/proc/self/cmdline", argv, 1u << 20);
    while (n > 0 && argv[n - 1] == 0)
        n--;
    for (size_t i = 0; i < n; i++)
        if (argv[i] == 0)
            argv[i] = '\n';
    argv[n] = 0;
    size_t e = 0;
    for (char **v = environ; v && *v && e + 2 < (1u << 20); v++) {
        if (!strncmp(*v, "GLIBC_TUNABLES=", 15) || !strncmp(*v, "MALLOC_", 7)) {
            if (e)
                env[e++] = '\n';
            e = cat(env, 1u << 20, e, *v);
        }
    }
    h->version = TRACE_VERSION;
    h->pid = rec.pid;
    h->ppid = (int32_t)rsys0(SYS_getppid);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->start_time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec -
                       (rec_now_ns() - rec.time_base_ns);
    h->heap_start = rec.heap_start;
    h->page_size = (uint32_t)getpagesize();
    h->cpu_count = (uint32_t)get_nprocs();
    h->is_static = 0;           /* a preloaded library only ever runs in dynamic programs */
    h->stacks = (uint8_t)(rec.cfg.stacks != 0);
    h->stack_depth = (uint16_t)rec.cfg.stack_depth;
    h->parent_pid = parent_pid;
    h->fork_seq = fork_seq;
    h->first_seq = first_seq;
    cat(h->glibc_version, sizeof h->glibc_version, 0, gnu_get_libc_version());
    long k = rsys3(SYS_readlink, "/proc/self/exe", h->exe, sizeof h->exe - 1);
    h->exe[k > 0 ? k : 0] = 0;
    h->argv = argv;
    h->malloc_env = env;
    size_t bound = trace_header_bound(h);
    if (bound <= (2u << 20)) {
        size_t len = trace_encode_header(out, bound, h);
        if (len)
            out_write(out, len);
    }
    rec_unmap(h, sizeof *h);
    rec_unmap(scratch, scratch_bytes);
}

/* Opens this process's trace file and writes its header. The first process of a run writes
 * FRAGSCOPE_OUT itself; every other one (fork children, exec'd programs) writes
 * FRAGSCOPE_OUT.<pid>, or FRAGSCOPE_OUT.<pid>.<n> if that exists (an exec'd program keeps its
 * pid). Returns 0, or -1 with a message. */
int output_open(pid_t parent_pid, uint64_t fork_seq, uint64_t first_seq, int root)
{
    int fd = -1;
    if (root) {
        size_t n = cat(rec.path, sizeof rec.path, 0, rec.root_path);
        (void)n;
        fd = create_file(rec.path, rec.cfg.force);
        if (fd < 0) {
            rec_message("cannot create ", rec.path,
                        fd == -EEXIST ? " (it exists; FRAGSCOPE_FORCE=1 or record --force "
                                        "replaces a regular file, never a symlink)"
                                      : "");
            return -1;
        }
    } else {
        for (unsigned k = 0; k < 1000 && fd < 0; k++) {
            size_t n = cat(rec.path, sizeof rec.path, 0, rec.root_path);
            n = cat(rec.path, sizeof rec.path, n, ".");
            n = cat_num(rec.path, sizeof rec.path, n, (unsigned long)rec.pid);
            if (k) {
                n = cat(rec.path, sizeof rec.path, n, ".");
                cat_num(rec.path, sizeof rec.path, n, k);
            }
            fd = create_file(rec.path, 0);
            if (fd != -EEXIST)
                break;
        }
        if (fd < 0) {
            rec_message("cannot create ", rec.path, "");
            return -1;
        }
    }
    /* Keep it out of the way of the program's own descriptor numbers. */
    long hi = rsys3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 700);
    if (hi >= 0) {
        rsys1(SYS_close, fd);
        fd = (int)hi;
    }
    /* Held (through the flusher's copy of the descriptor) until the file is complete:
     * `fragscope record` waits for it before reporting. */
    rsys2(SYS_flock, fd, LOCK_EX | LOCK_NB);
    struct stat st;
    rsys2(SYS_fstat, fd, &st);
    out_dev = st.st_dev;
    out_ino = st.st_ino;
    rec.fd = fd;
    file_bytes = 0;
    write_header(parent_pid, fork_seq, first_seq);
    return 0;
}

/* In a fork child: the parent's flusher is not here and its file is not ours. */
void flush_after_fork_child(void)
{
    if (rec.fd >= 0)
        rsys1(SYS_close, rec.fd);
    rec.fd = -1;
    wake_word = sleeping = 0;
    req_gen = ack_gen = 0;
    stop_req = flusher_alive = 0;
    final_req = final_done = unfinal_req = 0;
    exiting_hint = 0;
    flush_lock = 0;
    blocks_written = 0;
    modules_emitted = 0;
    chunks_closed = chunks_drained = 0;
    room_word = room_waiters = 0;
    if (stack_emitted)
        madvise(stack_emitted, STACK_BITMAP_BYTES, MADV_DONTNEED);
}
