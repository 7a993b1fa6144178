/* trace_reader.c: reads a trace as one stream of events in global seq order, in bounded memory.
 *
 * The file is a header and then framed blocks, one thread's records each. The reader reads
 * frames in file order; each block is checked (framing CRC, payload CRC, inflate or column
 * decoding, then decoding every record, which registers its stack and module definitions and
 * checks its seqs) before any of its events is delivered, so damage stops the stream at a block
 * boundary: everything before the first bad block is delivered, nothing after it. That one
 * decoding pass keeps the events, packed (48 bytes each; the rare event with more fields than a
 * call's, whole), and delivering them only unpacks: a block is decoded once.
 *
 * Merging: the good blocks wait in a min-heap keyed by the seq of their next event. Since seqs are
 * dense, the reader delivers seq N as soon as a block holding it is at the top, reading further
 * blocks only while N has not turned up - and at most `lookahead` bytes of decoded blocks ahead.
 * If the window fills (or the file ends) without N, it delivers the smallest seq it has and
 * counts a gap. The window counts a block's raw (decompressed) bytes, as FORMAT.md says; the
 * packed events it holds take about 7 times as much memory.
 *
 * Nothing in the input is trusted: every length is bounded before use, counts are capped, and
 * every varint read is checked against the end of its buffer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "column_coder.h"
#include "trace_decode.h"

#define MAX_MODULES (1u << 16)
#define MAX_STACK_FRAMES_TOTAL (1ull << 26)
#define MAX_PENDING_BLOCKS (1u << 16)

/* An event as a block keeps it until delivery: what a call has. Any other event (an error, a
 * thread, alignment, mallopt's or a sample's fields, reallocarray's old pointer and count) is
 * kept whole in the block's list of full events and marked PACKED_FULL here. */
struct packed_event {
    uint64_t seq, time_ns, size, ptr;
    uint64_t a;                 /* old_ptr, or nmemb when PACKED_NMEMB */
    uint32_t stack_id;
    uint8_t kind, chunk_flags;
    uint16_t flags;
};
#define PACKED_FULL 1
#define PACKED_NMEMB 2

struct pending {                /* one checked block, waiting in the merge */
    size_t len;                 /* its raw bytes (what the lookahead window counts) */
    struct packed_event *ev;    /* its events, decoded */
    size_t n, next;             /* how many; the next to become head */
    struct trace_event *full;   /* the events marked PACKED_FULL, in order */
    size_t nfull, next_full;
    uint32_t thread;
    uint64_t offset;            /* of its frame in the file */
    struct trace_event head;    /* its next event */
};

struct stack_slot {
    uint32_t id, depth;
    uint64_t *frames;
    int used;
};

struct trace_reader {
    char *path;
    FILE *f;
    uint64_t offset;            /* next byte of the file to read */
    struct trace_header h;

    struct pending **heap;
    size_t heap_len, heap_cap;
    size_t buffered, lookahead;
    uint64_t expected;          /* the seq to deliver next */
    uint64_t last_delivered;
    int delivered_any;

    int stopped;                /* no more frames will be read */
    int damaged, clean, finished, final_rc;
    uint64_t stop_offset, end_next_seq;
    char reason[256];
    uint64_t blocks, events, gaps;

    struct stack_slot *stacks;
    size_t stack_cap, stack_count;
    uint64_t stack_frames;
    struct trace_module *modules;
    size_t module_count, module_cap;

    z_stream zs;
    int zs_ready;
    uint64_t *check_ring;       /* BLK3: rings, predictions and live bits for checking a block */
    uint32_t file_version;
};

enum { LAYOUT_ROWS, LAYOUT_COLUMNS, LAYOUT_V2 };

/* ---- Stopping ---- */

static void stop(struct trace_reader *r, int damaged, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void stop(struct trace_reader *r, int damaged, uint64_t offset, const char *fmt, ...)
{
    if (r->stopped)
        return;
    r->stopped = 1;
    r->damaged = damaged;
    r->stop_offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

/* Reads exactly n bytes unless the file ends; returns the count read, or -1 on an I/O error. */
static long read_bytes(struct trace_reader *r, void *buf, size_t n)
{
    size_t got = fread(buf, 1, n, r->f);
    r->offset += got;
    if (got < n && ferror(r->f))
        return -1;
    return (long)got;
}

/* ---- Stack and module tables ---- */

static struct stack_slot *stack_slot_for(struct trace_reader *r, uint32_t id)
{
    if (!r->stack_cap)
        return NULL;
    size_t mask = r->stack_cap - 1;
    for (size_t i = (id * 2654435761u) & mask;; i = (i + 1) & mask) {
        if (!r->stacks[i].used || r->stacks[i].id == id)
            return &r->stacks[i];
    }
}

static int stack_table_grow(struct trace_reader *r)
{
    size_t cap = r->stack_cap ? r->stack_cap * 2 : 1024;
    struct stack_slot *old = r->stacks;
    size_t old_cap = r->stack_cap;
    r->stacks = calloc(cap, sizeof *r->stacks);
    if (!r->stacks) {
        r->stacks = old;
        return -1;
    }
    r->stack_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].used)
            *stack_slot_for(r, old[i].id) = old[i];
    free(old);
    return 0;
}

/* Registers a stack definition; 0 = ok, -1 = a conflict or no memory (reason in *why). */
static int stack_define(struct trace_reader *r, uint32_t id, const uint64_t *frames, unsigned depth,
                        const char **why)
{
    struct stack_slot *s = stack_slot_for(r, id);
    if (s && s->used) {
        if (s->depth != depth || (depth && memcmp(s->frames, frames, depth * sizeof *frames))) {
            *why = "a stack is defined again with different frames";
            return -1;
        }
        return 0;
    }
    if (r->stack_frames + depth > MAX_STACK_FRAMES_TOTAL) {
        *why = "too many stack frames";
        return -1;
    }
    if ((r->stack_count + 1) * 2 > r->stack_cap) {
        if (stack_table_grow(r) < 0) {
            *why = "out of memory for stacks";
            return -1;
        }
    }
    s = stack_slot_for(r, id);
    uint64_t *copy = malloc((depth ? depth : 1) * sizeof *copy);
    if (!copy) {
        *why = "out of memory for stacks";
        return -1;
    }
    if (depth)
        memcpy(copy, frames, depth * sizeof *frames);
    s->used = 1;
    s->id = id;
    s->depth = depth;
    s->frames = copy;
    r->stack_count++;
    r->stack_frames += depth;
    return 0;
}

static int module_add(struct trace_reader *r, const struct trace_module *m, const char **why)
{
    if (r->module_count >= MAX_MODULES) {
        *why = "too many modules";
        return -1;
    }
    if (r->module_count == r->module_cap) {
        size_t cap = r->module_cap ? r->module_cap * 2 : 16;
        struct trace_module *n = realloc(r->modules, cap * sizeof *n);
        if (!n) {
            *why = "out of memory for modules";
            return -1;
        }
        r->modules = n;
        r->module_cap = cap;
    }
    r->modules[r->module_count++] = *m;
    return 0;
}

/* ---- The merge heap ---- */

static int pending_before(const struct pending *a, const struct pending *b)
{
    return a->head.seq < b->head.seq;
}

static void heap_sift_down(struct trace_reader *r, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < r->heap_len && pending_before(r->heap[l], r->heap[m]))
            m = l;
        if (l + 1 < r->heap_len && pending_before(r->heap[l + 1], r->heap[m]))
            m = l + 1;
        if (m == i)
            return;
        struct pending *t = r->heap[i];
        r->heap[i] = r->heap[m];
        r->heap[m] = t;
        i = m;
    }
}

static int heap_push(struct trace_reader *r, struct pending *b)
{
    if (r->heap_len == r->heap_cap) {
        size_t cap = r->heap_cap ? r->heap_cap * 2 : 64;
        struct pending **n = realloc(r->heap, cap * sizeof *n);
        if (!n)
            return -1;
        r->heap = n;
        r->heap_cap = cap;
    }
    size_t i = r->heap_len++;
    r->heap[i] = b;
    while (i && pending_before(r->heap[i], r->heap[(i - 1) / 2])) {
        struct pending *t = r->heap[i];
        r->heap[i] = r->heap[(i - 1) / 2];
        r->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
    return 0;
}

static void pending_free(struct trace_reader *r, struct pending *b)
{
    r->buffered -= b->len;
    free(b->ev);
    free(b->full);
    free(b);
}

/* Moves b's head to its next event. Returns 0 when the block has no more events. */
static int pending_advance(struct pending *b)
{
    if (b->next >= b->n)
        return 0;
    const struct packed_event *p = &b->ev[b->next++];
    struct trace_event *h = &b->head;
    if (p->flags & PACKED_FULL) {
        *h = b->full[b->next_full++];
        return 1;
    }
    memset(h, 0, sizeof *h);
    h->seq = p->seq;
    h->time_ns = p->time_ns;
    h->thread = b->thread;
    h->stack_id = p->stack_id;
    h->kind = p->kind;
    h->chunk_flags = p->chunk_flags;
    h->size = p->size;
    h->ptr = p->ptr;
    if (p->flags & PACKED_NMEMB)
        h->nmemb = p->a;
    else
        h->old_ptr = p->a;
    return 1;
}

/* Keeps a decoded event in b; 0 when out of memory. */
static int pending_keep(struct pending *b, const struct trace_event *ev, size_t *cap,
                        size_t *full_cap)
{
    if (b->n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        struct packed_event *n = realloc(b->ev, c * sizeof *n);
        if (!n)
            return 0;
        b->ev = n;
        *cap = c;
    }
    struct packed_event *p = &b->ev[b->n++];
    p->seq = ev->seq;
    p->time_ns = ev->time_ns;
    p->size = ev->size;
    p->ptr = ev->ptr;
    p->stack_id = ev->stack_id;
    p->kind = ev->kind;
    p->chunk_flags = ev->chunk_flags;
    p->flags = 0;
    p->a = ev->old_ptr;
    int plain = ev->thread == b->thread && !ev->err && !ev->alignment && !ev->param &&
                !ev->value && !ev->result && !ev->os_tid && !(ev->old_ptr && ev->nmemb);
    if (plain) {
        const struct trace_sample *sm = &ev->sample;
        plain = !(sm->rss_pages | sm->heap_resident_pages | sm->brk | sm->arena | sm->ordblks |
                  sm->smblks | sm->hblks | sm->hblkhd | sm->usmblks | sm->fsmblks |
                  sm->uordblks | sm->fordblks | sm->keepcost);
    }
    if (plain && ev->nmemb) {
        p->a = ev->nmemb;
        p->flags = PACKED_NMEMB;
    }
    if (plain)
        return 1;
    if (b->nfull == *full_cap) {
        size_t c = *full_cap ? *full_cap * 2 : 16;
        struct trace_event *n = realloc(b->full, c * sizeof *n);
        if (!n)
            return 0;
        b->full = n;
        *full_cap = c;
    }
    b->full[b->nfull++] = *ev;
    p->flags = PACKED_FULL;
    return 1;
}

/* ---- Reading frames ---- */

/* Sets up the cursors of a block in the row (BLK1), column (BLK2) or version-2 (BLK3) layout;
 * 0 if malformed. */
static int block_cursors(struct wire_in *in, const uint8_t *raw, size_t len, int layout)
{
    if (layout == LAYOUT_ROWS) {
        wire_in_rows(in, raw, len);
        return 1;
    }
    return wire_in_columns(in, raw, len, layout == LAYOUT_V2 ? WIRE_V2_COLUMNS : WIRE_COLUMNS);
}

/* Decodes and checks a block's records, registers its definitions and keeps its events in b.
 * 0 = good. */
static int check_block(struct trace_reader *r, const uint8_t *raw, size_t len, int layout,
                       uint32_t thread, uint64_t first_seq, uint64_t last_seq, uint64_t *events,
                       struct pending *b, const char **why)
{
    struct trace_encode_state st;
    struct trace_event ev;
    struct wire_in in;
    *events = 0;
    if (!block_cursors(&in, raw, len, layout)) {
        *why = "its column table does not add up";
        return -1;
    }
    if (layout == LAYOUT_V2 && !r->check_ring &&
        !(r->check_ring = malloc(WIRE_V2_RING_WORDS(WIRE_V2_WINDOW) * sizeof *r->check_ring))) {
        *why = "out of memory";
        return -1;
    }
    struct wire_defs *defs = malloc(sizeof *defs);
    if (!defs) {
        *why = "out of memory";
        return -1;
    }
    trace_encode_state_reset(&st);
    if (layout == LAYOUT_V2) {
        st.ring = r->check_ring;
        st.ring_mask = WIRE_V2_WINDOW - 1;
        st.version = r->file_version;        /* 4: live pointers named by rank */
        memset(wire_v2_pred(&st), 0, (WIRE_V2_PRED_WORDS + WIRE_V2_LIVE_WORDS) * sizeof(uint64_t));
    }
    uint64_t n = 0, prev = 0;
    size_t cap = 0, full_cap = 0;
    int rc = 0;
    if (layout == LAYOUT_V2) {
        /* One opcode per record: the events are at most that many (room for the first 64k
         * at once; more as they come). */
        size_t ops = wire_get32(raw + 4 * WIRE_COL_OP);
        if (ops > (1u << 16))
            ops = 1u << 16;
        if (ops && !(b->ev = malloc(ops * sizeof *b->ev))) {
            *why = "out of memory";
            free(defs);
            return -1;
        }
        cap = ops;
    }
    while (!wire_in_done(&in)) {
        int rec = wire_decode_record(&in, &st, thread, &ev, defs, why);
        if (rec == REC_ERROR) {
            rc = -1;
            break;
        }
        if (rec == REC_STACK && stack_define(r, defs->stack_id, defs->frames, defs->depth, why) < 0) {
            rc = -1;
            break;
        }
        if (rec == REC_MODULE && module_add(r, &defs->module, why) < 0) {
            rc = -1;
            break;
        }
        if (rec == REC_EVENT) {
            if (n == 0 && ev.seq != first_seq) {
                *why = "its first event's seq differs from the block's first seq";
                rc = -1;
                break;
            }
            if (n > 0 && ev.seq <= prev) {
                *why = "its events' seqs do not increase";
                rc = -1;
                break;
            }
            prev = ev.seq;
            n++;
            if (!pending_keep(b, &ev, &cap, &full_cap)) {
                *why = "out of memory";
                rc = -1;
                break;
            }
        }
    }
    if (rc == 0 && !wire_in_all_done(&in)) {
        *why = "its columns hold bytes that no record uses";
        rc = -1;
    }
    if (rc == 0 && n > 0 && prev != last_seq) {
        *why = "its last event's seq differs from the block's last seq";
        rc = -1;
    }
    free(defs);
    *events = n;
    return rc;
}

/* A BLK3 payload: the coded columns, decoded into raw (a u32 length per column, then the
 * columns: the BLK2 arrangement with more columns). 0 and *why when malformed. */
static int decode_v2_payload(const uint8_t *p, size_t plen, uint8_t *raw, size_t raw_len,
                             const char **why, z_stream *zs)
{
    const uint8_t *end = p + plen;
    size_t off = 4 * WIRE_V2_COLUMNS;
    if (raw_len < off) {
        *why = "its raw length is too small for its columns";
        return 0;
    }
    for (unsigned c = 0; c < WIRE_V2_COLUMNS; c++) {
        uint64_t n;
        if (!colcode_raw_length(p, end, &n) || n > raw_len - off) {
            *why = "a coded column is malformed or longer than the block";
            return 0;
        }
        if (!colcode_decode_z(&p, end, raw + off, (size_t)n, why, zs))
            return 0;
        wire_put32(raw + 4 * c, (uint32_t)n);
        off += (size_t)n;
    }
    if (p != end || off != raw_len) {
        *why = "its coded columns do not add up to its lengths";
        return 0;
    }
    return 1;
}

static void read_block(struct trace_reader *r, const uint8_t *fh, uint64_t at, int layout)
{
    uint32_t payload_len = wire_get32(fh + 4), raw_len = wire_get32(fh + 8);
    uint32_t thread = wire_get32(fh + 12);
    uint64_t first_seq = wire_get64(fh + 16), last_seq = wire_get64(fh + 24);
    uint32_t payload_crc = wire_get32(fh + 32);
    if (wire_get32(fh + 36) != (uint32_t)crc32(0, fh, 36)) {
        stop(r, 1, at, "block at offset %" PRIu64 ": frame header CRC mismatch", at);
        return;
    }
    size_t max_payload = layout == LAYOUT_V2 ? (size_t)raw_len + 16 * WIRE_V2_COLUMNS + 64
                                             : (size_t)compressBound(raw_len) + 64;
    if (raw_len > TRACE_BLOCK_MAX_RAW + 4 * WIRE_V2_COLUMNS || payload_len > max_payload ||
        payload_len == 0) {
        stop(r, 1, at, "block at offset %" PRIu64 ": implausible lengths (payload %" PRIu32
             ", raw %" PRIu32 ")", at, payload_len, raw_len);
        return;
    }
    uint8_t *payload = malloc(payload_len);
    uint8_t *raw = malloc(raw_len ? raw_len : 1);
    struct pending *b = calloc(1, sizeof *b);
    if (!payload || !raw || !b) {
        stop(r, 1, at, "block at offset %" PRIu64 ": out of memory", at);
        goto fail;
    }
    long got = read_bytes(r, payload, payload_len);
    if (got < 0) {
        stop(r, 1, at, "block at offset %" PRIu64 ": read error: %s", at, strerror(errno));
        goto fail;
    }
    if ((uint32_t)got < payload_len) {
        stop(r, 0, at, "block at offset %" PRIu64 ": the file ends inside it (%ld of %" PRIu32
             " payload bytes)", at, got, payload_len);
        goto fail;
    }
    if ((uint32_t)crc32(0, payload, payload_len) != payload_crc) {
        stop(r, 1, at, "block at offset %" PRIu64 ": payload CRC mismatch", at);
        goto fail;
    }
    const char *why = "";
    if (!r->zs_ready) {
        memset(&r->zs, 0, sizeof r->zs);
        if (inflateInit2(&r->zs, -15) != Z_OK) {
            stop(r, 1, at, "block at offset %" PRIu64 ": cannot start zlib", at);
            goto fail;
        }
        r->zs_ready = 1;
    } else {
        inflateReset(&r->zs);
    }
    if (layout == LAYOUT_V2) {
        if (!decode_v2_payload(payload, payload_len, raw, raw_len, &why, &r->zs)) {
            stop(r, 1, at, "block at offset %" PRIu64 ": %s", at, why);
            goto fail;
        }
        goto decoded;
    }
    r->zs.next_in = payload;
    r->zs.avail_in = payload_len;
    r->zs.next_out = raw;
    r->zs.avail_out = raw_len;
    int zrc = inflate(&r->zs, Z_FINISH);
    if (zrc != Z_STREAM_END || r->zs.avail_out != 0 || r->zs.avail_in != 0) {
        stop(r, 1, at, "block at offset %" PRIu64 ": compressed data is damaged (%s)", at,
             zrc == Z_STREAM_END ? "wrong length" : "inflate failed");
        goto fail;
    }
decoded:
    free(payload);
    payload = NULL;

    uint64_t events;
    b->thread = thread;
    if (check_block(r, raw, raw_len, layout, thread, first_seq, last_seq, &events, b, &why) < 0) {
        stop(r, 1, at, "block at offset %" PRIu64 " (thread %" PRIu32 "): %s", at, thread, why);
        goto fail;
    }
    free(raw);
    raw = NULL;
    r->blocks++;
    if (events == 0) {
        free(b->ev);
        free(b->full);
        free(b);
        return;
    }
    b->len = raw_len;
    b->offset = at;
    r->buffered += b->len;
    pending_advance(b);
    if (heap_push(r, b) < 0) {
        stop(r, 1, at, "block at offset %" PRIu64 ": out of memory", at);
        pending_free(r, b);
    }
    return;
fail:
    free(payload);
    free(raw);
    if (b) {
        free(b->ev);
        free(b->full);
    }
    free(b);
}

static void read_end(struct trace_reader *r, const uint8_t *fh, uint64_t at)
{
    if (wire_get32(fh + 24) != (uint32_t)crc32(0, fh, 24)) {
        stop(r, 1, at, "end marker at offset %" PRIu64 ": CRC mismatch", at);
        return;
    }
    uint64_t blocks = wire_get64(fh + 4);
    if (blocks != r->blocks) {
        stop(r, 1, at, "end marker at offset %" PRIu64 ": it counts %" PRIu64
             " blocks but %" PRIu64 " were read", at, blocks, r->blocks);
        return;
    }
    uint8_t extra;
    long got = read_bytes(r, &extra, 1);
    if (got != 0) {
        stop(r, 1, at + WIRE_END_FRAME, "unexpected bytes after the end marker at offset %" PRIu64, at);
        return;
    }
    r->end_next_seq = wire_get64(fh + 12);
    r->clean = 1;
    stop(r, 0, r->offset, "%s", "");
}

/* Reads the next frame: a block joins the merge, or the end marker, or reading stops. */
static void read_frame(struct trace_reader *r)
{
    uint8_t fh[WIRE_BLOCK_FRAME];
    uint64_t at = r->offset;
    long got = read_bytes(r, fh, 4);
    if (got < 0) {
        stop(r, 1, at, "read error at offset %" PRIu64 ": %s", at, strerror(errno));
        return;
    }
    if (got == 0) {
        stop(r, 0, at, "the file ends at offset %" PRIu64 " without an end marker "
             "(the recording was cut short)", at);
        return;
    }
    int is_rows = got == 4 && !memcmp(fh, WIRE_BLOCK_TAG, 4);
    int is_columns = got == 4 && !memcmp(fh, WIRE_COLUMN_BLOCK_TAG, 4);
    int is_v2 = got == 4 && r->h.version >= 2 && !memcmp(fh, WIRE_V2_BLOCK_TAG, 4);
    int is_block = is_rows || is_columns || is_v2;
    int is_end = got == 4 && !memcmp(fh, WIRE_END_TAG, 4);
    if (got == 4 && !is_block && !is_end) {
        stop(r, 1, at, "offset %" PRIu64 ": not a block (unknown frame tag)", at);
        return;
    }
    size_t frame = is_end ? WIRE_END_FRAME : WIRE_BLOCK_FRAME;
    long more = got == 4 ? read_bytes(r, fh + 4, frame - 4) : 0;
    if (more < 0) {
        stop(r, 1, at, "read error at offset %" PRIu64 ": %s", r->offset, strerror(errno));
        return;
    }
    if (got < 4 || (size_t)more < frame - 4) {
        stop(r, 0, at, "%s at offset %" PRIu64 ": the file ends inside its frame header",
             is_end ? "end marker" : "block", at);
        return;
    }
    if (is_end)
        read_end(r, fh, at);
    else
        read_block(r, fh, at, is_v2 ? LAYOUT_V2 : is_columns ? LAYOUT_COLUMNS : LAYOUT_ROWS);
}

/* ---- Opening ---- */

static int parse_header(struct trace_reader *r, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    const uint8_t *p = buf, *end = buf + len;
    struct trace_header *h = &r->h;
    uint64_t v[12];
    static const char *names[12] = {"pid", "ppid", "start time", "heap start", "page size",
                                    "cpu count", "static flag", "stacks flag", "stack depth",
                                    "parent pid", "fork seq", "first seq"};
    for (int i = 0; i < 12; i++) {
        if (!wire_get_varint(&p, end, &v[i])) {
            snprintf(err, errlen, "%s: header field '%s' at offset %zu is truncated", r->path,
                     names[i], WIRE_HEADER_FIXED + (size_t)(p - buf));
            return -1;
        }
    }
    int64_t pid = wire_unzigzag(v[0]), ppid = wire_unzigzag(v[1]), parent = wire_unzigzag(v[9]);
    if (pid < INT32_MIN || pid > INT32_MAX || ppid < INT32_MIN || ppid > INT32_MAX ||
        parent < INT32_MIN || parent > INT32_MAX || v[4] > UINT32_MAX || v[5] > UINT32_MAX ||
        v[6] > 1 || v[7] > 1 || v[8] > UINT16_MAX) {
        snprintf(err, errlen, "%s: header at offset %d holds out-of-range values", r->path,
                 WIRE_HEADER_FIXED);
        return -1;
    }
    h->version = r->file_version;
    h->pid = (int32_t)pid;
    h->ppid = (int32_t)ppid;
    h->start_time_ns = v[2];
    h->heap_start = v[3];
    h->page_size = (uint32_t)v[4];
    h->cpu_count = (uint32_t)v[5];
    h->is_static = (uint8_t)v[6];
    h->stacks = (uint8_t)v[7];
    h->stack_depth = (uint16_t)v[8];
    h->parent_pid = (int32_t)parent;
    h->fork_seq = v[10];
    h->first_seq = v[11];
    struct { char *fixed; size_t cap; char **dyn; const char *name; } strs[4] = {
        {h->glibc_version, sizeof h->glibc_version, NULL, "glibc version"},
        {h->exe, sizeof h->exe, NULL, "exe"},
        {NULL, 0, &h->argv, "argv"},
        {NULL, 0, &h->malloc_env, "malloc environment"},
    };
    for (int i = 0; i < 4; i++) {
        uint64_t n;
        size_t at = WIRE_HEADER_FIXED + (size_t)(p - buf);
        if (!wire_get_varint(&p, end, &n) || n > (uint64_t)(end - p) ||
            (strs[i].fixed && n >= strs[i].cap)) {
            snprintf(err, errlen, "%s: header string '%s' at offset %zu is malformed", r->path,
                     strs[i].name, at);
            return -1;
        }
        char *dst = strs[i].fixed;
        if (!dst) {
            dst = malloc(n + 1);
            if (!dst) {
                snprintf(err, errlen, "%s: out of memory reading the header", r->path);
                return -1;
            }
            *strs[i].dyn = dst;
        }
        memcpy(dst, p, n);
        dst[n] = 0;
        p += n;
    }
    /* Fields appended by later versions of the format follow here; this reader skips them. */
    return 0;
}

struct trace_reader *trace_reader_open(const char *path, char *err, size_t errlen)
{
    struct trace_reader *r = calloc(1, sizeof *r);
    uint8_t fixed[WIRE_HEADER_FIXED];
    uint8_t *buf = NULL;
    if (!r || !(r->path = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(r);
        return NULL;
    }
    r->lookahead = TRACE_READER_LOOKAHEAD;
    r->f = fopen(path, "rb");
    if (!r->f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    long got = read_bytes(r, fixed, sizeof fixed);
    if (got < 0) {
        snprintf(err, errlen, "%s: read error at offset 0: %s", path, strerror(errno));
        goto fail;
    }
    if (got < WIRE_MAGIC_BYTES || memcmp(fixed, TRACE_MAGIC, WIRE_MAGIC_BYTES)) {
        snprintf(err, errlen, "%s: not a fragscope trace (no %s magic at offset 0)", path, TRACE_MAGIC);
        goto fail;
    }
    if (got < (long)sizeof fixed) {
        snprintf(err, errlen, "%s: the file ends at offset %ld inside the header", path, got);
        goto fail;
    }
    uint32_t version = wire_get32(fixed + 8), len = wire_get32(fixed + 12);
    if (version < 1 || version > TRACE_VERSION) {
        snprintf(err, errlen, "%s: trace format version %" PRIu32 " (offset 8) is not one this "
                 "fragscope reads (1 to %d)", path, version, TRACE_VERSION);
        goto fail;
    }
    r->file_version = version;
    if (len > WIRE_HEADER_MAX_PAYLOAD) {
        snprintf(err, errlen, "%s: header length %" PRIu32 " at offset 12 is implausible "
                 "(damaged header)", path, len);
        goto fail;
    }
    buf = malloc((size_t)len + 4);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    got = read_bytes(r, buf, (size_t)len + 4);
    if (got < 0) {
        snprintf(err, errlen, "%s: read error at offset %" PRIu64 ": %s", path, r->offset, strerror(errno));
        goto fail;
    }
    if ((size_t)got < (size_t)len + 4) {
        snprintf(err, errlen, "%s: the file ends at offset %" PRIu64 " inside the header", path, r->offset);
        goto fail;
    }
    uint32_t crc = (uint32_t)crc32(0, fixed, sizeof fixed);
    crc = (uint32_t)crc32(crc, buf, len);
    if (crc != wire_get32(buf + len)) {
        snprintf(err, errlen, "%s: header CRC mismatch (bytes 0 to %" PRIu32 "): damaged header",
                 path, WIRE_HEADER_FIXED + len + 4);
        goto fail;
    }
    if (parse_header(r, buf, len, err, errlen) < 0)
        goto fail;
    free(buf);
    r->expected = r->h.first_seq;
    return r;
fail:
    free(buf);
    trace_reader_close(r);
    return NULL;
}

/* ---- Delivering events ---- */

static int finish(struct trace_reader *r)
{
    if (!r->finished) {
        r->finished = 1;
        uint64_t next = r->delivered_any ? r->last_delivered + 1 : r->h.first_seq;
        if (r->clean && r->end_next_seq > next)
            r->gaps++;      /* events missing at the tail */
        r->final_rc = r->damaged ? -1 : 0;
    }
    return r->final_rc;
}

static int lookahead_room(const struct trace_reader *r)
{
    return r->buffered < r->lookahead && r->heap_len < MAX_PENDING_BLOCKS;
}

static int stack_known(struct trace_reader *r, uint32_t id)
{
    struct stack_slot *s = stack_slot_for(r, id);
    return s && s->used;
}

int trace_reader_next(struct trace_reader *r, struct trace_event *ev)
{
    if (r->finished)
        return r->final_rc;
    for (;;) {
        while (!r->stopped && (r->heap_len == 0 || r->heap[0]->head.seq != r->expected) &&
               (r->heap_len == 0 || lookahead_room(r)))
            read_frame(r);
        if (r->heap_len == 0)
            return finish(r);
        /* A stack defined in a block further on (another thread's, flushed later) is still
         * found if it lies within the window. */
        uint32_t id = r->heap[0]->head.stack_id;
        if (!id || r->stopped || !lookahead_room(r) || stack_known(r, id))
            break;
        read_frame(r);
    }
    struct pending *b = r->heap[0];
    if (r->delivered_any && b->head.seq <= r->last_delivered) {
        /* Only possible when blocks lag further behind than the lookahead window, or the file
         * repeats a seq: the merged order cannot be kept. */
        r->stopped = 0;
        stop(r, 1, b->offset, "block at offset %" PRIu64 ": seq %" PRIu64 " comes after seq %"
             PRIu64 " was delivered (out of order beyond the lookahead window, or repeated)",
             b->offset, b->head.seq, r->last_delivered);
        while (r->heap_len)
            pending_free(r, r->heap[--r->heap_len]);
        r->clean = 0;
        return finish(r);
    }
    if (b->head.seq != r->expected)
        r->gaps++;
    *ev = b->head;
    r->last_delivered = ev->seq;
    r->delivered_any = 1;
    r->expected = ev->seq + 1;
    r->events++;
    if (pending_advance(b)) {
        heap_sift_down(r, 0);
    } else {
        r->heap[0] = r->heap[--r->heap_len];
        pending_free(r, b);
        if (r->heap_len)
            heap_sift_down(r, 0);
    }
    return 1;
}

/* ---- Accessors ---- */

const struct trace_header *trace_reader_header(const struct trace_reader *r)
{
    return &r->h;
}

unsigned trace_reader_stack(struct trace_reader *r, uint32_t stack_id, const uint64_t **frames)
{
    struct stack_slot *s = stack_slot_for(r, stack_id);
    if (!s || !s->used) {
        *frames = NULL;
        return 0;
    }
    *frames = s->frames;
    return s->depth;
}

size_t trace_reader_stack_count(const struct trace_reader *r)
{
    return r->stack_count;
}

size_t trace_reader_module_count(const struct trace_reader *r)
{
    return r->module_count;
}

const struct trace_module *trace_reader_module(const struct trace_reader *r, size_t i)
{
    return i < r->module_count ? &r->modules[i] : NULL;
}

const struct trace_module *trace_reader_module_at(const struct trace_reader *r, uint64_t addr)
{
    for (size_t i = r->module_count; i-- > 0;) {
        const struct trace_module *m = &r->modules[i];
        if (addr >= m->load_address && addr - m->load_address < m->size)
            return m;
    }
    return NULL;
}

void trace_reader_set_lookahead(struct trace_reader *r, size_t bytes)
{
    r->lookahead = bytes ? bytes : 1;
}

void trace_reader_status(const struct trace_reader *r, struct trace_reader_status *st)
{
    memset(st, 0, sizeof *st);
    st->clean_end = r->clean;
    st->stop_offset = r->stopped ? r->stop_offset : r->offset;
    if (!r->clean) {
        if (r->stopped)
            snprintf(st->reason, sizeof st->reason, "%s", r->reason);
        else
            snprintf(st->reason, sizeof st->reason, "still reading");
    }
    st->blocks = r->blocks;
    st->events = r->events;
    st->damaged = r->damaged;
    st->seq_gaps = r->gaps;
    st->file_bytes = r->offset;
}

void trace_reader_close(struct trace_reader *r)
{
    if (!r)
        return;
    while (r->heap_len)
        pending_free(r, r->heap[--r->heap_len]);
    free(r->heap);
    for (size_t i = 0; i < r->stack_cap; i++)
        if (r->stacks[i].used)
            free(r->stacks[i].frames);
    free(r->stacks);
    free(r->modules);
    free(r->h.argv);
    free(r->h.malloc_env);
    if (r->zs_ready)
        inflateEnd(&r->zs);
    free(r->check_ring);
    if (r->f)
        fclose(r->f);
    free(r->path);
    free(r);
}

const char *trace_event_kind_name(unsigned kind)
{
    static const char *names[TRACE_EV_KIND_COUNT] = {
        [TRACE_EV_MALLOC] = "malloc", [TRACE_EV_CALLOC] = "calloc",
        [TRACE_EV_REALLOC] = "realloc", [TRACE_EV_REALLOCARRAY] = "reallocarray",
        [TRACE_EV_FREE] = "free", [TRACE_EV_MEMALIGN] = "memalign",
        [TRACE_EV_POSIX_MEMALIGN] = "posix_memalign", [TRACE_EV_ALIGNED_ALLOC] = "aligned_alloc",
        [TRACE_EV_VALLOC] = "valloc", [TRACE_EV_PVALLOC] = "pvalloc",
        [TRACE_EV_MALLOPT] = "mallopt", [TRACE_EV_MALLOC_TRIM] = "malloc_trim",
        [TRACE_EV_THREAD_START] = "thread_start", [TRACE_EV_THREAD_EXIT] = "thread_exit",
        [TRACE_EV_FORK] = "fork", [TRACE_EV_MODULE] = "module", [TRACE_EV_SAMPLE] = "sample",
    };
    return kind < TRACE_EV_KIND_COUNT && names[kind] ? names[kind] : "unknown";
}
