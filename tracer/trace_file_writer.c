/* trace_file_writer.c: writes a trace file from ordinary code (import-mtrace, tests, tools).
 *
 * Unlike the recorder, this writer may allocate: it keeps one block encoder per thread
 * (trace_block_encoder.c: version-2 blocks), seals a thread's block when it reaches the block
 * size, and seals every thread's block every `flush_every` events so that, as in a recording, no thread lags far behind in the
 * file (which is what keeps the reader's lookahead small). The file is created exclusively
 * (O_EXCL|O_NOFOLLOW, mode 0600) and never through a symlink.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "trace_format.h"

struct thread_buf {
    struct trace_block_encoder *enc;     /* NULL until the thread's first record */
    void *mem;
    size_t cap;                          /* the encoder's column capacity */
};

struct trace_file_writer {
    char *path;
    int fd;
    struct thread_buf *threads;
    size_t nthreads;
    size_t block_size;
    int method;                          /* TRACE_BLOCK_* */
    uint64_t flush_every, since_flush;
    uint64_t blocks, next_seq, bytes;
    uint8_t *out;
    size_t out_cap;
    int failed;
    char err[512];
};

static void fail(struct trace_file_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct trace_file_writer *w, const char *fmt, ...)
{
    if (w->failed)
        return;
    w->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
}

static int write_all(struct trace_file_writer *w, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            fail(w, "%s: write error at offset %llu: %s", w->path, (unsigned long long)w->bytes,
                 strerror(errno));
            return -1;
        }
        p += k;
        n -= (size_t)k;
        w->bytes += (uint64_t)k;
    }
    return 0;
}

/* Creates path exclusively; with force, first removes an existing regular file. */
static int create_exclusive(const char *path, int force, char *err, size_t errlen)
{
    struct stat sb;
    if (force && lstat(path, &sb) == 0) {
        if (!S_ISREG(sb.st_mode)) {
            snprintf(err, errlen, "%s: exists and is not a regular file (not replacing it%s)", path,
                     S_ISLNK(sb.st_mode) ? ": it is a symlink" : "");
            return -1;
        }
        if (unlink(path) < 0) {
            snprintf(err, errlen, "%s: cannot remove the existing file: %s", path, strerror(errno));
            return -1;
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            snprintf(err, errlen, "%s: already exists (use --force to replace a regular file)", path);
        else
            snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    }
    return fd;
}

struct trace_file_writer *trace_file_writer_open(const char *path, int force,
                                                 const struct trace_header *h,
                                                 char *err, size_t errlen)
{
    struct trace_file_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(w);
        return NULL;
    }
    w->block_size = 256 << 10;
    w->flush_every = 1 << 16;
    w->next_seq = h->first_seq;
    size_t cap = trace_header_bound(h);
    uint8_t *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(w->path);
        free(w);
        return NULL;
    }
    size_t n = trace_encode_header(buf, cap, h);
    if (n == 0) {
        snprintf(err, errlen, "%s: the header is too large to encode", path);
        goto fail;
    }
    w->fd = create_exclusive(path, force, err, errlen);
    if (w->fd < 0)
        goto fail;
    if (write_all(w, buf, n) < 0) {
        snprintf(err, errlen, "%s", w->err);
        close(w->fd);
        goto fail;
    }
    free(buf);
    return w;
fail:
    free(buf);
    free(w->path);
    free(w);
    return NULL;
}

void trace_file_writer_set_block_size(struct trace_file_writer *w, size_t raw_bytes, uint64_t flush_every)
{
    if (raw_bytes < 1)
        raw_bytes = 1;
    if (raw_bytes > TRACE_BLOCK_MAX_RAW - TRACE_STACK_MAX_BYTES - TRACE_MODULE_MAX_BYTES)
        raw_bytes = TRACE_BLOCK_MAX_RAW - TRACE_STACK_MAX_BYTES - TRACE_MODULE_MAX_BYTES;
    w->block_size = raw_bytes;
    w->flush_every = flush_every ? flush_every : UINT64_MAX;
}

static struct thread_buf *thread_buf(struct trace_file_writer *w, uint32_t thread)
{
    if (thread >= w->nthreads) {
        if (thread > (1u << 20)) {
            fail(w, "%s: thread index %u is too large for this writer", w->path, thread);
            return NULL;
        }
        size_t n = (size_t)thread + 1;
        struct thread_buf *t = realloc(w->threads, n * sizeof *t);
        if (!t) {
            fail(w, "%s: out of memory", w->path);
            return NULL;
        }
        memset(t + w->nthreads, 0, (n - w->nthreads) * sizeof *t);
        w->threads = t;
        w->nthreads = n;
    }
    return &w->threads[thread];
}

static int seal(struct trace_file_writer *w, uint32_t thread)
{
    struct thread_buf *t = &w->threads[thread];
    if (!t->enc || trace_block_encoder_raw(t->enc) == 0)
        return 0;
    size_t need = trace_block_encoder_bound(t->enc);
    if (need > w->out_cap) {
        uint8_t *o = realloc(w->out, need);
        if (!o) {
            fail(w, "%s: out of memory", w->path);
            return -1;
        }
        w->out = o;
        w->out_cap = need;
    }
    size_t n = trace_block_encoder_seal(t->enc, w->out, w->out_cap);
    if (n == 0) {
        fail(w, "%s: cannot seal a block", w->path);
        return -1;
    }
    w->blocks++;
    return write_all(w, w->out, n);
}

/* The thread's encoder, its block sealed first if it has reached the block size. */
static struct trace_block_encoder *room(struct trace_file_writer *w, uint32_t thread)
{
    if (w->failed)
        return NULL;
    struct thread_buf *t = thread_buf(w, thread);
    if (!t)
        return NULL;
    size_t cap = w->block_size + TRACE_STACK_MAX_BYTES + TRACE_MODULE_MAX_BYTES + 1024;
    if (t->enc && t->cap < cap) {
        /* The block size grew: a new encoder with longer columns. */
        if (seal(w, thread) < 0)
            return NULL;
        free(t->mem);
        t->enc = NULL;
    }
    if (!t->enc) {
        t->cap = cap;
        t->mem = aligned_alloc(64, (trace_block_encoder_size(cap) + 63) & ~(size_t)63);
        if (!t->mem) {
            fail(w, "%s: out of memory", w->path);
            return NULL;
        }
        t->enc = trace_block_encoder_init(t->mem, cap);
        trace_block_encoder_method(t->enc, w->method);
        trace_block_encoder_begin(t->enc, thread);
    }
    if (trace_block_encoder_raw(t->enc) >= w->block_size && seal(w, thread) < 0)
        return NULL;
    return t->enc;
}

void trace_file_writer_set_method(struct trace_file_writer *w, int method)
{
    w->method = method;
    for (size_t i = 0; i < w->nthreads; i++)
        if (w->threads[i].enc)
            trace_block_encoder_method(w->threads[i].enc, method);
}

int trace_file_writer_event(struct trace_file_writer *w, const struct trace_event *ev)
{
    struct trace_block_encoder *e = room(w, ev->thread);
    if (!e)
        return -1;
    if (trace_block_encoder_event(e, ev) != 0) {
        fail(w, "%s: an event does not fit its block", w->path);
        return -1;
    }
    if (ev->seq + 1 > w->next_seq)
        w->next_seq = ev->seq + 1;
    if (++w->since_flush >= w->flush_every)
        return trace_file_writer_flush(w);
    return 0;
}

int trace_file_writer_stack(struct trace_file_writer *w, uint32_t thread, uint32_t id,
                            const uint64_t *frames, unsigned depth)
{
    struct trace_block_encoder *e = room(w, thread);
    if (!e)
        return -1;
    return trace_block_encoder_stack(e, id, frames, depth);
}

int trace_file_writer_module(struct trace_file_writer *w, uint32_t thread, const struct trace_module *m)
{
    struct trace_block_encoder *e = room(w, thread);
    if (!e)
        return -1;
    return trace_block_encoder_module(e, m);
}

int trace_file_writer_flush(struct trace_file_writer *w)
{
    w->since_flush = 0;
    for (size_t i = 0; i < w->nthreads && !w->failed; i++)
        seal(w, (uint32_t)i);
    return w->failed ? -1 : 0;
}

uint64_t trace_file_writer_bytes(const struct trace_file_writer *w)
{
    return w->bytes;
}

static void release(struct trace_file_writer *w)
{
    for (size_t i = 0; i < w->nthreads; i++)
        free(w->threads[i].mem);
    free(w->threads);
    free(w->out);
    free(w->path);
    free(w);
}

int trace_file_writer_close(struct trace_file_writer *w, char *err, size_t errlen)
{
    trace_file_writer_flush(w);
    if (!w->failed) {
        uint8_t end[TRACE_END_BYTES];
        size_t n = trace_encode_end(end, sizeof end, w->blocks, w->next_seq);
        write_all(w, end, n);
    }
    if (close(w->fd) < 0)
        fail(w, "%s: close: %s", w->path, strerror(errno));
    int rc = w->failed ? -1 : 0;
    if (rc && err)
        snprintf(err, errlen, "%s", w->err);
    release(w);
    return rc;
}

void trace_file_writer_abandon(struct trace_file_writer *w)
{
    close(w->fd);
    release(w);
}
