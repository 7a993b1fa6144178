/* block_writer.c: turns the threads' raw records into trace blocks and writes them.
 *
 * A drain takes a thread's committed records in order and hands each to the block encoder
 * (trace_block_encoder.c: straight into the columns of a version-2 block; the common calls
 * without building a struct trace_event), after the definitions of any stack or module the
 * file does not hold yet, seals ~1 MiB of records into a block (each column deflated with zlib)
 * and appends it to the file.
 *
 * Several drainers may work at once, each in its own context (block encoder, sealed buffer):
 * context 0 belongs to the flusher task, contexts 1 and 2 to program threads (one out of buffer
 * memory drains its own records rather than wait; exit() does a round). A thread's records are
 * drained by one drainer at a time (its drain lock, held until its blocks are written, so each
 * thread's blocks stay in order); writes are serialised by the output lock. A stack counts as
 * defined for later blocks only once the block defining it is written; until then a concurrent
 * block defines it again (allowed by the format). Modules are written by context 0 only.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "recorder.h"
#include "rec_syscall.h"

#define RAW_TARGET (1u << 20)
#define COLUMN_CAP (RAW_TARGET + (256u << 10))
#define STACK_BITMAP_BYTES ((1u << 20) / 8)
#define DEFINED_MAX 512u
#define N_CTX 3                 /* 0: the flusher; 1, 2: program threads helping */

struct drain_ctx {
    volatile int lock;
    struct trace_block_encoder *enc;
    size_t enc_bytes;
    uint8_t *sealed;
    size_t sealed_cap;
    struct trace_event ev;               /* kept all-zero between events */
    uint32_t defined[DEFINED_MAX];       /* stacks defined in blocks not yet written */
    unsigned ndefined;
    uint8_t *defined_bits;               /* the same, a bit per stack id */
};

static struct drain_ctx ctxs[N_CTX];
static uint8_t *stack_written;           /* bit per stack id: defined in a written block */
static volatile int out_lock;
static int out_fd = -1;
static int out_owner_pid;                /* the process whose descriptor table holds out_fd */
static dev_t out_dev;
static ino_t out_ino;
static uint64_t file_bytes, end_offset, blocks_written, raw_bytes;
static uint32_t modules_written;
static int ended;
static volatile uint32_t chunks_closed, chunks_drained;
static int block_method = TRACE_BLOCK_DEFAULT;   /* FRAGSCOPE_COMPRESS=zlib|rans */

struct block {
    struct drain_ctx *ctx;
    struct trace_block_encoder *enc;
    int fresh;                           /* nothing in the block yet: modules first */
};

/* ---- locks ----
 * Once the program is dead (blocks_program_dead), a lock still held after ~200 ms belongs to a
 * thread that died holding it: the flusher takes it over. A drainer that died mid-piece had not
 * yet moved its thread's drain position, so its records are simply drained again. */
static volatile int program_dead;

void blocks_program_dead(void)
{
    program_dead = 1;
}

static void spin_lock(volatile int *l)
{
    for (unsigned spins = 0; __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE); spins++) {
        if (program_dead && spins > 2000) {
            struct rec_timespec ts = {0, 100000};
            rsys2(SYS_nanosleep, &ts, 0);
            if (spins > 4000)
                return;
        }
        rsys0(SYS_sched_yield);
    }
}
static int spin_trylock(volatile int *l)
{
    return __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE) == 0;
}
static void spin_unlock(volatile int *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* ---- memory ---- */

static int ctx_ready(struct drain_ctx *c)
{
    if (c->enc)
        return 1;
    if (!stack_written && !(stack_written = rec_map(STACK_BITMAP_BYTES)))
        return 0;
    if (!c->defined_bits && !(c->defined_bits = rec_map(STACK_BITMAP_BYTES)))
        return 0;
    c->enc_bytes = trace_block_encoder_size(COLUMN_CAP);
    /* The sealed block: every column stored at worst. */
    c->sealed_cap = COLUMN_CAP + 1024;
    void *mem = rec_map(c->enc_bytes);
    c->sealed = rec_map(c->sealed_cap);
    if (mem && c->sealed) {
        c->enc = trace_block_encoder_init(mem, COLUMN_CAP);
        trace_block_encoder_method(c->enc, rec.cfg.compress == 2 ? TRACE_BLOCK_STORED : block_method);
        return 1;
    }
    rec_unmap(mem, c->enc_bytes);
    rec_unmap(c->sealed, c->sealed_cap);
    c->sealed = NULL;
    return 0;
}

/* ---- the output file ---- */

/* FRAGSCOPE_COMPRESS names the entropy stage (FORMAT.md, "Coded columns"): zlib (the default),
 * rans, or none (preload.c's configuration: stored columns). Read here, in the program, when the
 * file is opened: the flusher never reads the environment. */
static void read_method(void)
{
    const char *z = getenv("FRAGSCOPE_COMPRESS");
    block_method = z && !strcmp(z, "rans") ? TRACE_BLOCK_RANS
                 : z && !strcmp(z, "zlib") ? TRACE_BLOCK_ZLIB
                                           : TRACE_BLOCK_DEFAULT;
}

void blocks_set_output(int fd)
{
    struct stat st;
    read_method();
    out_fd = fd;
    out_owner_pid = (int)rsys0(SYS_getpid);
    rsys2(SYS_fstat, fd, &st);
    out_dev = st.st_dev;
    out_ino = st.st_ino;
    file_bytes = end_offset = blocks_written = raw_bytes = 0;
    modules_written = 0;
    ended = 0;
}

/* The flusher task has its own copy of the descriptor table; in the program the descriptor
 * may have been closed (and its number reused) by the program itself. */
static int out_fd_ok(void)
{
    struct stat st;
    if (out_fd < 0)
        return 0;
    if (rsys0(SYS_getpid) != out_owner_pid)
        return 1;
    if (rsys2(SYS_fstat, out_fd, &st) != 0)
        return 0;
    return st.st_dev == out_dev && st.st_ino == out_ino;
}

/* Appends bytes; the caller holds out_lock. */
static void out_append(const void *p, size_t n)
{
    if (out_fd_ok() && rec_write_all(out_fd, p, n) == 0)
        file_bytes += n;
}

void blocks_write_raw(const void *p, size_t n)
{
    spin_lock(&out_lock);
    out_append(p, n);
    spin_unlock(&out_lock);
}

void flush_note_chunk_closed(void)
{
    __atomic_add_fetch(&chunks_closed, 1, __ATOMIC_RELAXED);
}

/* ---- blocks ---- */

static void block_begin(struct block *b, uint32_t thread)
{
    b->enc = b->ctx->enc;
    b->fresh = 1;
    trace_block_encoder_begin(b->enc, thread);
}

static void block_seal(struct block *b)
{
    struct drain_ctx *c = b->ctx;
    if (trace_block_encoder_raw(b->enc) == 0)
        return;
    size_t raw = trace_block_encoder_raw(b->enc);
    size_t n = trace_block_encoder_seal(b->enc, c->sealed, c->sealed_cap);
    b->fresh = 1;
    spin_lock(&out_lock);
    if (n && !ended) {
        out_append(c->sealed, n);
        blocks_written++;
        raw_bytes += raw;
    }
    /* Now that the block is in the file, later blocks may use its stacks. */
    for (unsigned i = 0; i < c->ndefined; i++) {
        uint32_t id = c->defined[i];
        stack_written[id >> 3] |= (uint8_t)(1u << (id & 7));
        c->defined_bits[id >> 3] &= (uint8_t)~(1u << (id & 7));
    }
    spin_unlock(&out_lock);
    c->ndefined = 0;
}

static void block_modules(struct block *b)
{
    uint32_t n = module_count();
    while (modules_written < n) {
        if (trace_block_encoder_module(b->enc, module_at(modules_written)) != 0) {
            block_seal(b);
            continue;
        }
        modules_written++;
    }
}

/* Fills ev (all zero on entry) from a raw record (header h, its seq and time, its arguments a);
 * event_clear() zeroes it again. */
static void record_to_event(uint64_t h, uint64_t seq, uint64_t time_ns, const uint64_t *a,
                            uint32_t thread, struct trace_event *ev)
{
    ev->kind = (uint8_t)REC_KIND(h);
    ev->chunk_flags = (uint8_t)REC_FLAGS(h);
    ev->err = REC_ERR(h);
    ev->stack_id = REC_STACK(h);
    ev->seq = seq;
    ev->time_ns = time_ns;
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

/* Puts the definition of stack id (depth frames) in the block unless the block has it (the
 * caller has seen that the file does not). */
static void block_stack(struct block *b, uint32_t id, const uint64_t *frames, unsigned depth)
{
    struct drain_ctx *c = b->ctx;
    if (c->defined_bits[id >> 3] & (1u << (id & 7)))
        return;
    if (c->ndefined == DEFINED_MAX || trace_block_encoder_stack(b->enc, id, frames, depth) != 0) {
        block_seal(b);
        trace_block_encoder_stack(b->enc, id, frames, depth);
    }
    c->defined[c->ndefined++] = id;
    c->defined_bits[id >> 3] |= (uint8_t)(1u << (id & 7));
}

/* One raw record (header h, seq, time, arguments a) into the block. */
static __attribute__((noinline)) void block_event_slow(struct block *b, uint64_t h, uint64_t seq,
                                                      uint64_t time_ns, const uint64_t *a,
                                                      int with_modules)
{
    unsigned kind = REC_KIND(h), flags = REC_FLAGS(h);
    uint32_t stack = REC_STACK(h);
    if (REC_UNLIKELY(b->fresh)) {
        b->fresh = 0;
        if (with_modules)
            block_modules(b);
    }
    /* A stack the file holds is known; any other is defined in the block first. */
    if (stack && REC_UNLIKELY(!(stack_written[stack >> 3] & (1u << (stack & 7))))) {
        const uint64_t *frames;
        unsigned depth = stack_frames(stack, &frames);
        if (depth)
            block_stack(b, stack, frames, depth);
        else
            stack = 0;
    }
    /* The common calls go straight in; errors and the rare kinds through a struct trace_event. */
    if (REC_ERR(h) == 0) {
        int rc = -2;
        switch (kind) {
        case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
            rc = trace_block_encoder_call(b->enc, kind, flags, stack, seq, time_ns, 0, a[0], 0,
                                          a[1]);
            break;
        case TRACE_EV_FREE:
            rc = trace_block_encoder_call(b->enc, kind, flags, stack, seq, time_ns, 0, 0, 0, a[0]);
            break;
        case TRACE_EV_CALLOC:
            rc = trace_block_encoder_call(b->enc, kind, flags, stack, seq, time_ns, a[0], a[1], 0,
                                          a[2]);
            break;
        case TRACE_EV_REALLOC:
            rc = trace_block_encoder_call(b->enc, kind, flags, stack, seq, time_ns, 0, a[1], a[0],
                                          a[2]);
            break;
        default:
            break;
        }
        if (rc == 0)
            return;
        if (rc == -1) {
            block_seal(b);
            block_event_slow(b, h, seq, time_ns, a, with_modules);
            return;
        }
    }
    struct trace_event *ev = &b->ctx->ev;
    record_to_event(h, seq, time_ns, a, trace_block_encoder_thread(b->enc), ev);
    ev->stack_id = stack;
    if (trace_block_encoder_event(b->enc, ev) != 0) {
        block_seal(b);
        trace_block_encoder_event(b->enc, ev);
    }
    event_clear(ev);
}

/* The common case inline in the drain loop: a call without error, whose stack the file already
 * holds, in a block under way. Anything else (or an encoder that says no room, or not this
 * shape: it has then written nothing) goes the whole way. */
static inline __attribute__((always_inline)) void block_event(struct block *b, uint64_t h,
                                                              uint64_t seq, uint64_t time_ns,
                                                              const uint64_t *a, int with_modules)
{
    uint32_t stack = REC_STACK(h);
    if (REC_LIKELY(!b->fresh && REC_ERR(h) == 0 &&
                   (!stack || (stack_written[stack >> 3] & (1u << (stack & 7)))))) {
        unsigned kind = REC_KIND(h), flags = REC_FLAGS(h);
        int rc = -2;
        if (kind == TRACE_EV_MALLOC)
            rc = trace_block_encoder_malloc(b->enc, flags, stack, seq, time_ns, a[0], a[1]);
        else if (kind == TRACE_EV_FREE)
            rc = trace_block_encoder_free(b->enc, flags, stack, seq, time_ns, a[0]);
        if (REC_LIKELY(rc == 0))
            return;
    }
    block_event_slow(b, h, seq, time_ns, a, with_modules);
}

/* Drains one piece of a thread's committed records: one full block, or up to the end of what
 * is committed, across the thread's chunks (while they carry the same thread index), sealed and
 * written before the thread's drain lock is released (so the thread's blocks stay in order, and
 * another drainer can take the next piece if this one stalls). Chunks are recycled and the
 * drain position moved only once the block is written: a drainer that dies mid-piece leaves the
 * records to be drained again. closed_only: leave the chunk the thread is still writing alone
 * (reading the lines it writes would bounce them between the cores). Returns 1 if records were
 * drained, 0 if none or another drainer has the thread. */
enum { PIECE_TRY, PIECE_WAIT, PIECE_LOCKED };

static int drain_piece(struct block *b, struct rec_thread *t, int how, int with_modules,
                       int closed_only)
{
    if (how == PIECE_WAIT)
        spin_lock(&t->drain_lock);
    else if (how == PIECE_TRY && (t->helper_wants || !spin_trylock(&t->drain_lock)))
        return 0;
    struct rec_chunk *first = t->drain, *c = first;
    uint64_t pos = t->drain_pos, seq = t->drain_seq, time_ns = t->drain_time;
    int progress = 0;
    if (c && (!closed_only || __atomic_load_n(&c->closed, __ATOMIC_ACQUIRE))) {
        uint32_t thread = c->thread;
        block_begin(b, thread);
        for (;;) {
            uint32_t closed = __atomic_load_n(&c->closed, __ATOMIC_ACQUIRE);
            if (closed_only && !closed)
                break;
            uint64_t end = __atomic_load_n(&c->committed, __ATOMIC_ACQUIRE);
            /* The block's size is looked at every 32 records (at most 8 KiB over the target:
             * the columns have room for 256 KiB more). */
            unsigned till_check = 0;
            while (pos < end && (till_check-- ||
                                 (till_check = 31, trace_block_encoder_raw(b->enc) < RAW_TARGET))) {
                const uint64_t *w = c->words + pos;
                /* The records were written on another core: ask for the lines ahead early. */
                __builtin_prefetch(w + 64);
                uint64_t h = w[0];
                unsigned nw = REC_NWORDS(h);
                if (nw < 1 + 2 * REC_LONG(h) || pos + nw > end)
                    break;            /* cannot happen: only whole records are committed */
                if (REC_LONG(h)) {
                    seq = w[1];
                    time_ns = w[2];
                    block_event(b, h, seq, time_ns, w + 3, with_modules);
                } else {
                    seq += (REC_SEQ_LOW(h) - seq) & REC_SEQ_MASK;
                    block_event(b, h, seq, time_ns, w + 1, with_modules);
                }
                pos += nw;
                progress = 1;
            }
            if (!closed || pos < end || !c->next || c->next->thread != thread)
                break;
            c = c->next;              /* the next chunk of the same thread: same block */
            pos = 0;
            progress = 1;
        }
        block_seal(b);
        /* The block is written: everything before (c, pos) is done with. */
        if (__atomic_load_n(&c->closed, __ATOMIC_ACQUIRE) &&
            pos >= __atomic_load_n(&c->committed, __ATOMIC_ACQUIRE)) {
            c = c->next;
            pos = 0;
            progress = 1;
        }
        t->drain = c;
        t->drain_pos = pos;
        t->drain_seq = seq;
        t->drain_time = time_ns;
        while (first != c) {
            struct rec_chunk *next = first->next;
            thread_chunk_recycle(first);
            __atomic_add_fetch(&chunks_drained, 1, __ATOMIC_RELAXED);
            first = next;
        }
    }
    if (how != PIECE_LOCKED)
        spin_unlock(&t->drain_lock);
    return progress;
}

/* Passes over every thread with context ctx, one piece per thread per pass, until nothing is
 * left (or, outside the final round, for at most a few passes). Returns the pieces drained, or
 * -1 if the context is busy. final: wait for threads another drainer has, include threads held
 * for a fork, and drain to the end. */
int blocks_round(int ctx, int final, int closed_only)
{
    struct drain_ctx *c = &ctxs[ctx];
    if (final)
        spin_lock(&c->lock);
    else if (!spin_trylock(&c->lock))
        return -1;
    if (!ctx_ready(c) || ended) {
        spin_unlock(&c->lock);
        return 0;
    }
    struct block b;
    b.ctx = c;
    b.enc = c->enc;
    b.fresh = 1;
    int total = 0;
    for (unsigned pass = 0;; pass++) {
        int progress = 0;
        uint32_t n = thread_count();
        for (uint32_t i = 0; i < n; i++) {
            struct rec_thread *t = thread_at(i);
            if (!__atomic_load_n(&t->ready, __ATOMIC_ACQUIRE) || (t->hold && !final))
                continue;
            progress += drain_piece(&b, t, final ? PIECE_WAIT : PIECE_TRY, ctx == 0,
                                    closed_only && !final);
        }
        total += progress;
        /* Stop when dry; outside the final round also after a few passes, so that a busy
         * program cannot keep one round (and its context) going forever. */
        if (!progress || (!final && pass >= 8))
            break;
    }
    if (ctx == 0 && modules_written < module_count()) {
        block_begin(&b, 0);
        block_modules(&b);
        block_seal(&b);
    }
    spin_unlock(&c->lock);
    return total;
}

/* Thread t (the caller) is out of buffer memory: it drains a few pieces of its own records in
 * a free helper context, taking its drain lock from the flusher between two pieces. Returns the
 * pieces drained (0: no context free). */
int blocks_help(struct rec_thread *t)
{
    struct drain_ctx *c = NULL;
    for (int i = 1; i < N_CTX && !c; i++)
        if (spin_trylock(&ctxs[i].lock))
            c = &ctxs[i];
    if (!c)
        return 0;
    int total = 0;
    if (ctx_ready(c) && !ended) {
        struct block b;
        b.ctx = c;
        b.enc = c->enc;
        b.fresh = 1;
        t->helper_wants = 1;
        spin_lock(&t->drain_lock);
        t->helper_wants = 0;
        for (int i = 0; i < 4; i++) {
            int p = drain_piece(&b, t, PIECE_LOCKED, 0, 0);
            total += p;
            if (!p)
                break;
        }
        spin_unlock(&t->drain_lock);
    }
    spin_unlock(&c->lock);
    return total;
}

/* The end marker: nothing is written after it (until blocks_take_back_end). */
void blocks_write_end(void)
{
    uint8_t end[TRACE_END_BYTES];
    spin_lock(&out_lock);
    if (!ended) {
        size_t n = trace_encode_end(end, sizeof end, blocks_written, rec_seq);
        end_offset = file_bytes;
        out_append(end, n);
        ended = 1;
    }
    spin_unlock(&out_lock);
}

/* exec failed: remove the end marker and carry on. */
void blocks_take_back_end(void)
{
    spin_lock(&out_lock);
    if (ended && out_fd_ok()) {
        rsys2(SYS_ftruncate, out_fd, end_offset);
        rsys3(SYS_lseek, out_fd, end_offset, 0 /* SEEK_SET */);
        file_bytes = end_offset;
        ended = 0;
    }
    spin_unlock(&out_lock);
}

int blocks_ended(void)
{
    return __atomic_load_n(&ended, __ATOMIC_ACQUIRE);
}

void blocks_stats(uint64_t *v)
{
    v[0] = blocks_written;
    v[1] = raw_bytes;
    v[2] = file_bytes;
}

/* In a fork child: everything here described the parent's file. */
void blocks_after_fork(void)
{
    for (int i = 0; i < N_CTX; i++) {
        ctxs[i].lock = 0;
        for (unsigned k = 0; k < ctxs[i].ndefined && ctxs[i].defined_bits; k++)
            ctxs[i].defined_bits[ctxs[i].defined[k] >> 3] = 0;
        ctxs[i].ndefined = 0;
    }
    out_lock = 0;
    out_fd = -1;
    program_dead = 0;
    chunks_closed = chunks_drained = 0;
    if (stack_written)
        rsys3(SYS_madvise, stack_written, STACK_BITMAP_BYTES, 4 /* MADV_DONTNEED */);
}
