/* trace_decode.h: decoding a block's records, shared by the reader and by the encoder.
 *
 * A block's records come in one of two layouts (FORMAT.md, "Blocks"): rows, where each record's
 * bytes follow each other (BLK1), or columns, where the same bytes are split by kind of field -
 * structure, seq deltas, pointer codes, times, freed pointers - into five runs that compress far
 * better apart (BLK2). The decoder reads every field through a cursor per column (in the row
 * layout all are the same run), so one decoder serves both; with sinks set, it also copies the bytes of each
 * field to its column, which is how trace_block_seal turns rows into columns.
 *
 * Everything here is bounded by its input and allocation-free (it is compiled into the recorder).
 */
#ifndef FRAGSCOPE_TRACE_DECODE_H
#define FRAGSCOPE_TRACE_DECODE_H

#include "trace_wire.h"

/* The classes of bytes: structure (definitions, generic forms, threads, samples...), seq deltas,
 * the pointers of allocations, times, the pointers of frees, opcodes, stack codes, sizes. Rows
 * (BLK1) hold every class in one run; version-1 columns (BLK2) put opcodes, stack codes and sizes
 * with the structure (five columns); version-2 columns (BLK3) give each class its own. */
enum { WIRE_COL_MAIN, WIRE_COL_SEQ, WIRE_COL_PTR, WIRE_COL_TIME, WIRE_COL_FREE_PTR,
       WIRE_COL_OP, WIRE_COL_STACK, WIRE_COL_SIZE,
       /* BLK3: the bytes after the first of each varint of these three classes */
       WIRE_COL_PTR_HI, WIRE_COL_FREE_HI, WIRE_COL_SIZE_HI, WIRE_CLASSES };

/* The class that holds the rest of a varint whose first byte is in class cls. */
static inline unsigned wire_hi_class(unsigned cls)
{
    return cls == WIRE_COL_PTR ? WIRE_COL_PTR_HI
         : cls == WIRE_COL_FREE_PTR ? WIRE_COL_FREE_HI
         : cls == WIRE_COL_SIZE ? WIRE_COL_SIZE_HI
                                : cls;
}
#define WIRE_COLUMNS 5                  /* BLK2 */
#define WIRE_V2_COLUMNS WIRE_CLASSES    /* BLK3 */

struct wire_in {
    const uint8_t *p[WIRE_CLASSES], *end[WIRE_CLASSES];
    unsigned columns;               /* 1: rows (everything in p[0]); else columns */
    uint8_t col[WIRE_CLASSES];      /* the column of each class */
    int sinking;                    /* copy each field's bytes to its column */
    uint8_t *sink[WIRE_CLASSES];    /* NULL: only count */
    size_t sink_len[WIRE_CLASSES];
};

/* BLK2's column of each class. */
static inline void wire_in_map_v1_columns(struct wire_in *in)
{
    static const uint8_t map[WIRE_CLASSES] = {0, 1, 2, 3, 4, 0, 0, 0, 2, 4, 0};
    memcpy(in->col, map, sizeof map);
}

static inline void wire_in_rows(struct wire_in *in, const uint8_t *raw, size_t len)
{
    memset(in, 0, sizeof *in);
    in->columns = 1;
    in->p[0] = raw;
    in->end[0] = raw + len;
}

/* The column layout: a u32 length per column, then the columns in order. */
#define WIRE_COLUMN_TABLE (4 * WIRE_COLUMNS)

/* Sets the cursors over a column-layout block of `columns` columns (WIRE_COLUMNS for BLK2,
 * WIRE_V2_COLUMNS for BLK3: a u32 length per column, then the columns); 0 when its column table
 * does not add up. */
static inline int wire_in_columns(struct wire_in *in, const uint8_t *raw, size_t len, unsigned columns)
{
    memset(in, 0, sizeof *in);
    size_t table = 4 * (size_t)columns;
    if (len < table)
        return 0;
    size_t off = table;
    for (unsigned c = 0; c < columns; c++) {
        uint32_t n = wire_get32(raw + 4 * c);
        if (n > len - off)
            return 0;
        in->p[c] = raw + off;
        in->end[c] = raw + off + n;
        off += n;
    }
    in->columns = columns;
    if (columns == WIRE_COLUMNS)
        wire_in_map_v1_columns(in);
    else
        for (unsigned c = 0; c < WIRE_CLASSES; c++)
            in->col[c] = (uint8_t)c;
    return off == len;
}

/* Every column used up exactly (the records ran out of structure bytes at the same time). */
static inline int wire_in_all_done(const struct wire_in *in)
{
    for (unsigned c = 0; c < in->columns; c++)
        if (in->p[c] != in->end[c])
            return 0;
    return 1;
}

/* The records end with the opcodes. */
static inline int wire_in_done(const struct wire_in *in)
{
    unsigned c = in->col[WIRE_COL_OP];
    return in->p[c] >= in->end[c];
}

/* While splitting rows into BLK2 columns (sinking), each field's bytes go to its column. */
static inline void wire_in_sink(struct wire_in *in, unsigned cls, const uint8_t *from, size_t n)
{
    if (!in->sinking)
        return;
    static const uint8_t v1[WIRE_CLASSES] = {0, 1, 2, 3, 4, 0, 0, 0, 2, 4, 0};
    unsigned c = v1[cls];
    if (in->sink[c])
        memcpy(in->sink[c] + in->sink_len[c], from, n);
    in->sink_len[c] += n;
}

static inline int wire_in_varint(struct wire_in *in, unsigned cls, uint64_t *v)
{
    unsigned c = in->col[cls], h = in->col[wire_hi_class(cls)];
    if (c == h) {
        const uint8_t *start = in->p[c];
        if (!wire_get_varint(&in->p[c], in->end[c], v))
            return 0;
        wire_in_sink(in, cls, start, (size_t)(in->p[c] - start));
        return 1;
    }
    /* BLK3: the first byte in the class's column, the rest in its high column. */
    if (in->p[c] >= in->end[c])
        return 0;
    uint8_t b = *in->p[c];
    uint64_t x = b & 0x7f;
    const uint8_t *q = in->p[h];
    for (int i = 1; (b & 0x80) && i < 9; i++) {
        if (q >= in->end[h])
            return 0;
        b = *q++;
        if (i == 8) {
            x |= (uint64_t)b << 56;
            break;
        }
        x |= (uint64_t)(b & 0x7f) << (7 * i);
    }
    in->p[c]++;
    in->p[h] = q;
    *v = x;
    return 1;
}

static inline int wire_in_bytes(struct wire_in *in, unsigned cls, size_t n, const uint8_t **data)
{
    unsigned c = in->col[cls];
    if ((size_t)(in->end[c] - in->p[c]) < n)
        return 0;
    *data = in->p[c];
    in->p[c] += n;
    wire_in_sink(in, cls, *data, n);
    return 1;
}

static inline int wire_in_byte(struct wire_in *in, unsigned cls, uint8_t *b)
{
    const uint8_t *d;
    if (!wire_in_bytes(in, cls, 1, &d))
        return 0;
    *b = *d;
    return 1;
}

enum { REC_ERROR, REC_EVENT, REC_STACK, REC_MODULE };


struct wire_defs {            /* what a definition record held */
    uint32_t stack_id;
    unsigned depth;
    uint64_t frames[TRACE_MAX_STACK_DEPTH];
    struct trace_module module;
};

#define GET(cls, var) do { if (!wire_in_varint(in, (cls), &(var))) goto truncated; } while (0)

static inline int wire_decode_fields(struct wire_in *in, struct trace_event *ev, unsigned fields,
                                     int generic, struct trace_encode_state *st, const char **why)
{
    uint64_t v;
    if (fields & WF(WF_STACK)) {
        GET(WIRE_COL_STACK, v);
        if (generic) {
            if (v > UINT32_MAX) goto bad;
            ev->stack_id = (uint32_t)v;
        } else if (st->ring) {
            if (v == 0) {
                ev->stack_id = wire_v2_last_stack(st, ev->kind);
            } else if (v == 1) {
                if (!wire_v2_next_stack(st, ev->kind, &ev->stack_id)) goto bad_prediction;
            } else {
                if (v - 2 > UINT32_MAX) goto bad;
                ev->stack_id = (uint32_t)(v - 2);
            }
        } else if (v == 0) {
            ev->stack_id = st->last_stack;
        } else {
            if (v - 1 > UINT32_MAX) goto bad;
            ev->stack_id = (uint32_t)(v - 1);
        }
    }
    if (fields & WF(WF_THREAD)) {
        GET(WIRE_COL_MAIN, v);
        if (v > UINT32_MAX) goto bad;
        ev->thread = (uint32_t)v;
    }
    if (fields & WF(WF_SIZE)) {
        GET(WIRE_COL_SIZE, ev->size);
        if (st->ring && !generic && wire_kind_allocates(ev->kind)) {
            if (ev->size == 0) {
                if (!wire_v2_stack_size(st, ev->stack_id, &ev->size)) goto bad_prediction;
            } else {
                ev->size--;
            }
        }
    }
    if (fields & WF(WF_NMEMB)) GET(WIRE_COL_SIZE, ev->nmemb);
    if (fields & WF(WF_ALIGNMENT)) GET(WIRE_COL_SIZE, ev->alignment);
    if (fields & WF(WF_PARAM)) { GET(WIRE_COL_MAIN, v); ev->param = wire_unzigzag(v); }
    if (fields & WF(WF_VALUE)) { GET(WIRE_COL_MAIN, v); ev->value = wire_unzigzag(v); }
    if (fields & WF(WF_OS_TID)) GET(WIRE_COL_MAIN, ev->os_tid);
    if (fields & WF(WF_SAMPLE))
        for (unsigned i = 0; i < WIRE_SAMPLE_FIELDS; i++)
            GET(WIRE_COL_MAIN, *wire_sample_field(&ev->sample, i));
    return 1;
truncated:
    *why = "an event runs past the end of its block";
    return 0;
bad:
    *why = "an event field is out of range";
    return 0;
bad_prediction:
    *why = "an event names a predicted stack or size that does not exist";
    return 0;
}

/* *named: the allocation slot a version-4 rank named (old_ptr, or a free's ptr), else -1. */
static inline int wire_decode_tail(struct wire_in *in, struct trace_event *ev, unsigned fields,
                                   int generic, struct trace_encode_state *st, int64_t *named,
                                   const char **why)
{
    uint64_t v;
    int ranks = st->ring && wire_v2_ranks(st);
    if (fields & WF(WF_OLD_PTR)) {
        GET(WIRE_COL_PTR, v);
        if (generic)
            ev->old_ptr = v;
        else if (ranks ? !wire_v2_ranked_from_code(st, v, 0, &ev->old_ptr, named)
                 : st->ring ? !wire_v2_live_from_code(st, v, 0, &ev->old_ptr)
                            : !wire_ptr_from_code(st, v, st->last_ptr, &ev->old_ptr))
            goto bad_ptr;
        if (ev->old_ptr)
            st->last_ptr = ev->old_ptr;
    }
    if (fields & WF(WF_PTR)) {
        GET(ev->kind == TRACE_EV_FREE ? WIRE_COL_FREE_PTR : WIRE_COL_PTR, v);
        if (generic) {
            ev->ptr = v;
        } else if (st->ring) {
            if (ev->kind != TRACE_EV_FREE ? !wire_v2_freed_from_code(st, v, &ev->ptr)
                : ranks ? !wire_v2_ranked_from_code(st, v, WIRE_FREE_AUX_SLOTS, &ev->ptr, named)
                        : !wire_v2_live_from_code(st, v, WIRE_FREE_AUX_SLOTS, &ev->ptr))
                goto bad_ptr;
        } else if (ev->kind == TRACE_EV_FREE) {
            if (v == 0)
                ev->ptr = 0;
            else if (v < WIRE_FREE_DELTA_BASE) {
                uint64_t i = v - 1 + WIRE_FREE_AUX_SLOTS;
                if (i >= st->recent_count || i >= TRACE_RECENT_PTRS)
                    goto bad_ptr;
                ev->ptr = st->recent[i];
            } else {
                ev->ptr = st->last_ptr + (uint64_t)wire_unzigzag(v - WIRE_FREE_DELTA_BASE);
            }
        } else if (!wire_ptr_from_code(st, v, st->last_ptr, &ev->ptr)) {
            goto bad_ptr;
        }
        if (ev->ptr)
            st->last_ptr = ev->ptr;
    }
    if (fields & WF(WF_TIME)) {
        uint64_t predicted;
        GET(WIRE_COL_TIME, v);
        if (generic)
            ev->time_ns = st->last_time_ns + (uint64_t)wire_unzigzag(v);
        else if (wire_time_predicted(st, ev->stack_id, &predicted))
            ev->time_ns = st->last_time_ns + predicted + (uint64_t)wire_unzigzag(v);
        else
            ev->time_ns = st->last_time_ns + v;
    } else {
        ev->time_ns = generic ? 0 : st->last_time_ns;
    }
    if (fields & WF(WF_RESULT)) { GET(WIRE_COL_MAIN, v); ev->result = wire_unzigzag(v); }
    if (fields & WF(WF_ERR)) {
        GET(WIRE_COL_MAIN, v);
        int64_t e = wire_unzigzag(v);
        if (e < INT32_MIN || e > INT32_MAX) {
            *why = "an event's errno is out of range";
            return 0;
        }
        ev->err = (int32_t)e;
    }
    return 1;
truncated:
    *why = "an event runs past the end of its block";
    return 0;
bad_ptr:
    *why = "an event names a recently freed pointer that does not exist";
    return 0;
}

/* Decodes the record at *pp: an event into ev (with block_thread unless it names its thread), or a
 * definition into defs. Returns REC_* and advances *pp; REC_ERROR sets *why. */
static inline int wire_decode_record(struct wire_in *in, struct trace_encode_state *st,
                                     uint32_t block_thread, struct trace_event *ev,
                                     struct wire_defs *defs, const char **why)
{
    uint64_t v;
    uint8_t op;
    if (!wire_in_byte(in, WIRE_COL_OP, &op)) {
        *why = "a record runs past the end of its block";
        return REC_ERROR;
    }
    unsigned code = op & 31, aux = op >> 5;

    if (code == WIRE_CODE_STACK || code == WIRE_CODE_MODULE) {
        if (aux) {
            *why = "a definition record has unknown flag bits";
            return REC_ERROR;
        }
        if (code == WIRE_CODE_STACK) {
            uint64_t id, depth, prev = 0;
            GET(WIRE_COL_MAIN, id);
            GET(WIRE_COL_MAIN, depth);
            if (id > UINT32_MAX || depth > TRACE_MAX_STACK_DEPTH) {
                *why = "a stack definition has an out-of-range id or depth";
                return REC_ERROR;
            }
            for (unsigned i = 0; i < depth; i++) {
                GET(WIRE_COL_MAIN, v);
                prev += (uint64_t)wire_unzigzag(v);
                defs->frames[i] = prev;
            }
            defs->stack_id = (uint32_t)id;
            defs->depth = (unsigned)depth;
                    return REC_STACK;
        }
        struct trace_module *m = &defs->module;
        uint64_t len;
        memset(m, 0, sizeof *m);
        GET(WIRE_COL_MAIN, m->load_address);
        GET(WIRE_COL_MAIN, m->size);
        GET(WIRE_COL_MAIN, len);
        const uint8_t *bytes;
        uint8_t id_len;
        if (len >= sizeof m->path || !wire_in_bytes(in, WIRE_COL_MAIN, (size_t)len, &bytes)) {
            *why = "a module record has a bad path length";
            return REC_ERROR;
        }
        memcpy(m->path, bytes, len);
        m->path[len] = 0;
        if (!wire_in_byte(in, WIRE_COL_MAIN, &id_len) || id_len > sizeof m->build_id ||
            !wire_in_bytes(in, WIRE_COL_MAIN, id_len, &bytes)) {
            *why = "a module record has a bad build-id length";
            return REC_ERROR;
        }
        m->build_id_len = id_len;
        memcpy(m->build_id, bytes, id_len);
        return REC_MODULE;
    }

    memset(ev, 0, sizeof *ev);
    ev->thread = block_thread;
    unsigned fields;
    int generic = 0, next = 0, free_index = -1;
    int64_t named = -1;
    if (code == WIRE_CODE_GENERIC) {
        if (!wire_in_byte(in, WIRE_COL_MAIN, &ev->kind))
            goto truncated;
        GET(WIRE_COL_MAIN, v);
        if (v >> WF_COUNT) {
            *why = "an event names unknown fields";
            return REC_ERROR;
        }
        fields = (unsigned)v;
        generic = 1;
        ev->chunk_flags = (uint8_t)aux;
    } else if (code >= 1 && code <= WIRE_CODE_MAX_KIND) {
        ev->kind = (uint8_t)code;
    } else if (code >= WIRE_CODE_MALLOC_NEXT && code <= WIRE_CODE_REALLOC_NEXT) {
        static const uint8_t kinds[] = {TRACE_EV_MALLOC, TRACE_EV_FREE, TRACE_EV_CALLOC, TRACE_EV_REALLOC};
        ev->kind = kinds[code - WIRE_CODE_MALLOC_NEXT];
        next = 1;
    } else {
        *why = "unknown record opcode";
        return REC_ERROR;
    }
    if (ev->kind == 0 || ev->kind >= TRACE_EV_KIND_COUNT) {
        *why = "unknown event kind";
        return REC_ERROR;
    }
    if (generic) {
        if (wire_kind_names_thread(ev->kind) != !!(fields & WF(WF_THREAD))) {
            *why = "an event's thread field does not match its kind";
            return REC_ERROR;
        }
        GET(WIRE_COL_SEQ, v);
        ev->seq = st->last_seq + v;
    } else {
        fields = wire_standard_fields(ev->kind);
        if (ev->kind == TRACE_EV_FREE) {
            if (aux != WIRE_FREE_EXPLICIT) {
                uint64_t slot;
                if (st->ring && wire_v2_ranks(st) ? !wire_v2_select(st, aux, &slot)
                    : st->ring ? aux >= st->allocs
                               : (aux >= st->recent_count || aux >= WIRE_FREE_AUX_SLOTS)) {
                    *why = "a free names a recent pointer that does not exist";
                    return REC_ERROR;
                }
                free_index = (int)aux;
                if (st->ring && wire_v2_ranks(st))
                    named = (int64_t)slot;
                fields &= ~WF(WF_PTR);
            }
        } else {
            ev->chunk_flags = (uint8_t)aux;
        }
    }
    if (!wire_decode_fields(in, ev, fields, generic, st, why))
        return REC_ERROR;
    if (!generic) {
        if (next) {
            ev->seq = st->last_seq + 1;
        } else {
            GET(WIRE_COL_SEQ, v);
            ev->seq = st->last_seq + v;
        }
    }
    if (!wire_decode_tail(in, ev, fields, generic, st, &named, why))
        return REC_ERROR;
    if (free_index >= 0) {
        ev->ptr = named >= 0 ? st->ring[named]
                  : st->ring ? wire_v2_alloc_at(st, (uint64_t)free_index + 1) : st->recent[free_index];
        st->last_ptr = ev->ptr;
    }
    /* Version 4: a free, or a realloc that returned a pointer, retires the allocation it named by
     * rank (before the event's own allocation, if any, takes its slot). */
    if (named >= 0 && (ev->kind == TRACE_EV_FREE || ev->ptr))
        wire_v2_live_retire(wire_v2_live(st), (uint64_t)named, wire_v2_newest_slot(st));
    wire_state_after_event(st, ev);
    return REC_EVENT;
truncated:
    *why = "a record runs past the end of its block";
    return REC_ERROR;
}

/* ---- The merge heap ---- */

#undef GET

#endif
