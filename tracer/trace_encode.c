/* trace_encode.c: turns events, stacks, modules and the header into trace bytes, and seals a
 * thread's records into a compressed, framed block.
 *
 * This file is linked into the LD_PRELOAD recorder, so it never allocates from the C heap and
 * never touches stdio: every function writes into a buffer the caller owns, and zlib runs with
 * the caller's allocation functions. It depends on nothing from the reader.
 *
 * An event is written in its kind's standard form when it can be (opcode, then the kind's fields
 * as deltas against the thread's previous event), otherwise in the generic form, which names
 * every nonzero field and so round-trips any struct trace_event exactly. See FORMAT.md.
 */
#include <zlib.h>
#include "trace_decode.h"

/* ---- Events ---- */

static int kind_has_next_code(unsigned kind, unsigned *code)
{
    switch (kind) {
    case TRACE_EV_MALLOC: *code = WIRE_CODE_MALLOC_NEXT; return 1;
    case TRACE_EV_FREE: *code = WIRE_CODE_FREE_NEXT; return 1;
    case TRACE_EV_CALLOC: *code = WIRE_CODE_CALLOC_NEXT; return 1;
    case TRACE_EV_REALLOC: *code = WIRE_CODE_REALLOC_NEXT; return 1;
    default: return 0;
    }
}

/* Writes the fields in `fields`, in wire order. `generic` selects the generic encodings for
 * time (signed delta) and pointers (absolute). Pointer fields advance st->last_ptr. */
static uint8_t *put_fields(uint8_t *p, const struct trace_event *ev, unsigned fields, int generic,
                           struct trace_encode_state *st)
{
    if (fields & WF(WF_STACK))
        p = wire_put_varint(p, generic ? ev->stack_id : wire_stack_code(ev->stack_id, st->last_stack));
    if (fields & WF(WF_THREAD)) p = wire_put_varint(p, ev->thread);
    if (fields & WF(WF_SIZE)) p = wire_put_varint(p, ev->size);
    if (fields & WF(WF_NMEMB)) p = wire_put_varint(p, ev->nmemb);
    if (fields & WF(WF_ALIGNMENT)) p = wire_put_varint(p, ev->alignment);
    if (fields & WF(WF_PARAM)) p = wire_put_varint(p, wire_zigzag(ev->param));
    if (fields & WF(WF_VALUE)) p = wire_put_varint(p, wire_zigzag(ev->value));
    if (fields & WF(WF_OS_TID)) p = wire_put_varint(p, ev->os_tid);
    if (fields & WF(WF_SAMPLE)) {
        struct trace_sample s = ev->sample;
        for (unsigned i = 0; i < WIRE_SAMPLE_FIELDS; i++)
            p = wire_put_varint(p, *wire_sample_field(&s, i));
    }
    return p;
}

/* The code of a standard-form free's pointer when aux is WIRE_FREE_EXPLICIT (see trace_wire.h):
 * returns 0 and leaves *code when it does not fit. */
static int free_code(const struct trace_encode_state *st, uint64_t ptr, uint64_t *code)
{
    if (!ptr) {
        *code = 0;
        return 1;
    }
    int i = wire_recent_find(st, ptr);
    if (i >= WIRE_FREE_AUX_SLOTS) {
        *code = (uint64_t)(i - WIRE_FREE_AUX_SLOTS) + 1;
        return 1;
    }
    uint64_t z = wire_zigzag((int64_t)(ptr - st->last_ptr));
    if (z > UINT64_MAX - WIRE_FREE_DELTA_BASE)
        return 0;
    *code = z + WIRE_FREE_DELTA_BASE;
    return 1;
}

static uint8_t *put_tail_fields(uint8_t *p, const struct trace_event *ev, unsigned fields,
                                int generic, struct trace_encode_state *st)
{
    if (fields & WF(WF_OLD_PTR)) {
        p = wire_put_varint(p, generic ? ev->old_ptr : wire_ptr_code(st, ev->old_ptr, st->last_ptr));
        if (ev->old_ptr)
            st->last_ptr = ev->old_ptr;
    }
    if (fields & WF(WF_PTR)) {
        uint64_t code = 0;
        if (generic)
            code = ev->ptr;
        else if (ev->kind == TRACE_EV_FREE)
            free_code(st, ev->ptr, &code);
        else
            code = wire_ptr_code(st, ev->ptr, st->last_ptr);
        p = wire_put_varint(p, code);
        if (ev->ptr)
            st->last_ptr = ev->ptr;
    }
    if (fields & WF(WF_TIME)) {
        uint64_t d = ev->time_ns - st->last_time_ns, predicted;
        if (generic)
            p = wire_put_varint(p, wire_zigzag((int64_t)d));
        else if (wire_time_predicted(st, ev->stack_id, &predicted))
            p = wire_put_varint(p, wire_zigzag((int64_t)(d - predicted)));
        else
            p = wire_put_varint(p, d);
    }
    if (fields & WF(WF_RESULT)) p = wire_put_varint(p, wire_zigzag(ev->result));
    if (fields & WF(WF_ERR)) p = wire_put_varint(p, wire_zigzag(ev->err));
    return p;
}

/* Worst case, generic form: opcode, kind, presence (2), seq, time and 9 other 64-bit fields,
 * stack, thread and err (5 each), 13 sample fields = 1+1+2+9*11+5*3+9*13 = 235 bytes. */
size_t trace_encode_event(uint8_t *out, const struct trace_event *ev, struct trace_encode_state *st)
{
    uint8_t *p = out;
    unsigned kind = ev->kind;
    unsigned std = (kind >= 1 && kind <= WIRE_CODE_MAX_KIND) ? wire_standard_fields(kind) : 0;
    unsigned present = wire_nonzero_fields(ev);
    uint64_t unused;
    int standard = std != 0 && (present & ~std) == 0 && ev->time_ns >= st->last_time_ns;
    if (standard && kind == TRACE_EV_FREE)
        standard = !ev->chunk_flags && free_code(st, ev->ptr, &unused);
    else if (standard)
        standard = wire_ptr_fits(ev->old_ptr, st->last_ptr) &&
                   wire_ptr_fits(ev->ptr, ev->old_ptr ? ev->old_ptr : st->last_ptr);
    if (!standard) {
        *p++ = (uint8_t)(WIRE_CODE_GENERIC | (ev->chunk_flags & 7) << 5);
        *p++ = ev->kind;
        p = wire_put_varint(p, present);
        p = wire_put_varint(p, ev->seq - st->last_seq);
        p = put_fields(p, ev, present, 1, st);
        p = put_tail_fields(p, ev, present, 1, st);
        wire_state_after_event(st, ev);
        return (size_t)(p - out);
    }

    unsigned code = kind, aux = ev->chunk_flags & 7, fields = std;
    unsigned next_code;
    int next = ev->seq == st->last_seq + 1 && kind_has_next_code(kind, &next_code);
    if (next)
        code = next_code;
    if (kind == TRACE_EV_FREE) {
        int i = ev->ptr ? wire_recent_find(st, ev->ptr) : -1;
        if (i >= 0 && i < WIRE_FREE_AUX_SLOTS) {
            aux = (unsigned)i;
            fields &= ~WF(WF_PTR);
        } else {
            aux = WIRE_FREE_EXPLICIT;
        }
    }
    *p++ = (uint8_t)(code | aux << 5);
    p = put_fields(p, ev, fields, 0, st);
    if (!next)
        p = wire_put_varint(p, ev->seq - st->last_seq);
    p = put_tail_fields(p, ev, fields, 0, st);
    if (kind == TRACE_EV_FREE && !(fields & WF(WF_PTR)))
        st->last_ptr = ev->ptr;
    wire_state_after_event(st, ev);
    return (size_t)(p - out);
}

/* ---- Stacks and modules ---- */

size_t trace_encode_stack(uint8_t *out, size_t cap, uint32_t id, const uint64_t *frames, unsigned depth)
{
    uint8_t tmp[TRACE_STACK_MAX_BYTES];
    uint8_t *p = tmp;
    if (depth > TRACE_MAX_STACK_DEPTH)
        depth = TRACE_MAX_STACK_DEPTH;
    *p++ = WIRE_CODE_STACK;
    p = wire_put_varint(p, id);
    p = wire_put_varint(p, depth);
    uint64_t prev = 0;
    for (unsigned i = 0; i < depth; i++) {
        p = wire_put_varint(p, wire_zigzag((int64_t)(frames[i] - prev)));
        prev = frames[i];
    }
    size_t n = (size_t)(p - tmp);
    if (n > cap)
        return 0;
    memcpy(out, tmp, n);
    return n;
}

size_t trace_encode_module(uint8_t *out, size_t cap, const struct trace_module *m)
{
    uint8_t tmp[TRACE_MODULE_MAX_BYTES];
    uint8_t *p = tmp;
    size_t path_len = strnlen(m->path, sizeof m->path - 1);
    unsigned id_len = m->build_id_len > sizeof m->build_id ? sizeof m->build_id : m->build_id_len;
    *p++ = WIRE_CODE_MODULE;
    p = wire_put_varint(p, m->load_address);
    p = wire_put_varint(p, m->size);
    p = wire_put_varint(p, path_len);
    memcpy(p, m->path, path_len);
    p += path_len;
    *p++ = (uint8_t)id_len;
    memcpy(p, m->build_id, id_len);
    p += id_len;
    size_t n = (size_t)(p - tmp);
    if (n > cap)
        return 0;
    memcpy(out, tmp, n);
    return n;
}

/* ---- Header ---- */

static size_t str_len(const char *s, size_t max)
{
    return s ? strnlen(s, max) : 0;
}

size_t trace_header_bound(const struct trace_header *h)
{
    return WIRE_HEADER_FIXED + 4 + 16 * WIRE_VARINT_MAX + sizeof h->glibc_version + sizeof h->exe +
           str_len(h->argv, WIRE_HEADER_MAX_PAYLOAD) + str_len(h->malloc_env, WIRE_HEADER_MAX_PAYLOAD);
}

static uint8_t *put_string(uint8_t *p, const char *s, size_t len)
{
    p = wire_put_varint(p, len);
    if (len)
        memcpy(p, s, len);
    return p + len;
}

size_t trace_encode_header(uint8_t *out, size_t cap, const struct trace_header *h)
{
    size_t glibc_len = str_len(h->glibc_version, sizeof h->glibc_version - 1);
    size_t exe_len = str_len(h->exe, sizeof h->exe - 1);
    size_t argv_len = str_len(h->argv, WIRE_HEADER_MAX_PAYLOAD);
    size_t env_len = str_len(h->malloc_env, WIRE_HEADER_MAX_PAYLOAD);
    size_t need = WIRE_HEADER_FIXED + 4 + 16 * WIRE_VARINT_MAX + glibc_len + exe_len + argv_len + env_len;
    if (cap < need || argv_len + env_len + 8192 > WIRE_HEADER_MAX_PAYLOAD)
        return 0;
    memcpy(out, TRACE_MAGIC, WIRE_MAGIC_BYTES);
    wire_put32(out + 8, TRACE_VERSION);
    uint8_t *p = out + WIRE_HEADER_FIXED;
    p = wire_put_varint(p, wire_zigzag(h->pid));
    p = wire_put_varint(p, wire_zigzag(h->ppid));
    p = wire_put_varint(p, h->start_time_ns);
    p = wire_put_varint(p, h->heap_start);
    p = wire_put_varint(p, h->page_size);
    p = wire_put_varint(p, h->cpu_count);
    p = wire_put_varint(p, h->is_static);
    p = wire_put_varint(p, h->stacks);
    p = wire_put_varint(p, h->stack_depth);
    p = wire_put_varint(p, wire_zigzag(h->parent_pid));
    p = wire_put_varint(p, h->fork_seq);
    p = wire_put_varint(p, h->first_seq);
    p = put_string(p, h->glibc_version, glibc_len);
    p = put_string(p, h->exe, exe_len);
    p = put_string(p, h->argv, argv_len);
    p = put_string(p, h->malloc_env, env_len);
    uint32_t payload = (uint32_t)(p - (out + WIRE_HEADER_FIXED));
    wire_put32(out + 12, payload);
    wire_put32(p, (uint32_t)crc32(0, out, (uInt)(p - out)));
    return (size_t)(p - out) + 4;
}

size_t trace_encode_end(uint8_t *out, size_t cap, uint64_t blocks, uint64_t next_seq)
{
    if (cap < WIRE_END_FRAME)
        return 0;
    memcpy(out, WIRE_END_TAG, 4);
    wire_put64(out + 4, blocks);
    wire_put64(out + 12, next_seq);
    wire_put32(out + 20, 0);
    wire_put32(out + 24, (uint32_t)crc32(0, out, 24));
    return WIRE_END_FRAME;
}

/* ---- Blocks ---- */

size_t trace_block_bound(size_t raw_len)
{
    return WIRE_BLOCK_FRAME + compressBound((uLong)(raw_len + WIRE_COLUMN_TABLE)) + 64;
}

/* Splits rows into the column layout in cols (raw_len + WIRE_COLUMN_TABLE bytes): a first pass
 * measures the columns, a second copies each field's bytes to its column. 0 if raw does not
 * decode (it is then sealed as rows, as given). */
static int split_columns(const uint8_t *raw, size_t raw_len, uint8_t *cols)
{
    struct trace_encode_state st;
    struct trace_event ev;
    struct wire_defs defs;
    struct wire_in in;
    const char *why;
    size_t len[WIRE_COLUMNS];
    for (int pass = 0; pass < 2; pass++) {
        wire_in_rows(&in, raw, raw_len);
        in.sinking = 1;
        if (pass == 1) {
            size_t off = WIRE_COLUMN_TABLE;
            for (unsigned c = 0; c < WIRE_COLUMNS; c++) {
                wire_put32(cols + 4 * c, (uint32_t)len[c]);
                in.sink[c] = cols + off;
                off += len[c];
            }
        }
        trace_encode_state_reset(&st);
        while (!wire_in_done(&in))
            if (wire_decode_record(&in, &st, 0, &ev, &defs, &why) == REC_ERROR)
                return 0;
        memcpy(len, in.sink_len, sizeof len);
    }
    return 1;
}

size_t trace_block_seal_level(uint8_t *out, size_t out_cap, const uint8_t *raw, size_t raw_len,
                              uint32_t thread, uint64_t first_seq, uint64_t last_seq,
                              const struct trace_zalloc *za, int level, int strategy)
{
    if (!za || !za->alloc || !za->free || raw_len > TRACE_BLOCK_MAX_RAW || out_cap <= WIRE_BLOCK_FRAME)
        return 0;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = za->alloc;
    zs.zfree = za->free;
    zs.opaque = za->opaque;
    if (deflateInit2(&zs, level, Z_DEFLATED, -15, 8, strategy) != Z_OK)
        return 0;
    /* zlib's state first, the scratch second: an arena that cannot lend both still seals. */
    size_t cols_len = raw_len + WIRE_COLUMN_TABLE;
    uint8_t *cols = raw_len ? za->alloc(za->opaque, (unsigned)cols_len, 1) : NULL;
    if (cols && !split_columns(raw, raw_len, cols)) {
        za->free(za->opaque, cols);
        cols = NULL;
    }
    size_t room = out_cap - WIRE_BLOCK_FRAME;
    zs.next_out = out + WIRE_BLOCK_FRAME;
    zs.avail_out = room > 0xffffffffu ? 0xffffffffu : (uInt)room;
    int rc;
    if (cols) {
        /* Each column gets deflate blocks (and Huffman codes) of its own. */
        size_t off = 0;
        for (unsigned c = 0; c < WIRE_COLUMNS; c++) {
            size_t n = wire_get32(cols + 4 * c) + (c == 0 ? WIRE_COLUMN_TABLE : 0);
            zs.next_in = cols + off;
            zs.avail_in = (uInt)n;
            off += n;
            if (n == 0 && c + 1 < WIRE_COLUMNS)
                continue;       /* nothing to close a block on (zlib would say Z_BUF_ERROR) */
            rc = deflate(&zs, c + 1 < WIRE_COLUMNS ? Z_BLOCK : Z_FINISH);
            if (rc != Z_OK && rc != Z_STREAM_END)
                break;
        }
        za->free(za->opaque, cols);
    } else {
        zs.next_in = (Bytef *)(uintptr_t)raw;
        zs.avail_in = (uInt)raw_len;
        rc = deflate(&zs, Z_FINISH);
    }
    size_t payload = zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END)
        return 0;
    memcpy(out, cols ? WIRE_COLUMN_BLOCK_TAG : WIRE_BLOCK_TAG, 4);
    wire_put32(out + 4, (uint32_t)payload);
    wire_put32(out + 8, (uint32_t)(cols ? cols_len : raw_len));
    wire_put32(out + 12, thread);
    wire_put64(out + 16, first_seq);
    wire_put64(out + 24, last_seq);
    wire_put32(out + 32, (uint32_t)crc32(0, out + WIRE_BLOCK_FRAME, (uInt)payload));
    wire_put32(out + 36, (uint32_t)crc32(0, out, 36));
    return WIRE_BLOCK_FRAME + payload;
}

size_t trace_block_seal(uint8_t *out, size_t out_cap, const uint8_t *raw, size_t raw_len,
                        uint32_t thread, uint64_t first_seq, uint64_t last_seq,
                        const struct trace_zalloc *za)
{
    return trace_block_seal_level(out, out_cap, raw, raw_len, thread, first_seq, last_seq, za, 1,
                                  Z_DEFAULT_STRATEGY);
}
