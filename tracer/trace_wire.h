/* trace_wire.h: the byte-level vocabulary of the trace format, shared by the encoder
 * (trace_encode.c) and the reader (trace_reader.c). Private to tracer/; FORMAT.md is the prose
 * version of every constant here.
 *
 * Integers are little-endian. A varint is 7 bits per byte, least significant group first, the
 * high bit saying "more follows"; a ninth byte, if reached, carries 8 bits and ends the number,
 * so a 64-bit value never takes more than 9 bytes. Signed values are zigzag-mapped first.
 *
 * The per-thread delta state (struct trace_encode_state) is advanced by exactly the same steps
 * on both sides: the helpers at the bottom of this file are those steps.
 */
#ifndef FRAGSCOPE_TRACE_WIRE_H
#define FRAGSCOPE_TRACE_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "trace_format.h"

/* ---- File framing ---- */
#define WIRE_MAGIC_BYTES 8
#define WIRE_HEADER_FIXED 16            /* magic, version, payload length */
#define WIRE_HEADER_MAX_PAYLOAD (64u << 20)
#define WIRE_BLOCK_TAG "BLK1"
#define WIRE_END_TAG "END1"
#define WIRE_BLOCK_FRAME 40             /* tag, lengths, thread, seqs, CRCs */
#define WIRE_END_FRAME TRACE_END_BYTES

/* ---- Record opcodes: low 5 bits = code, high 3 bits = aux ---- */
#define WIRE_CODE_MAX_KIND 23           /* codes 1..23: an event of that kind, explicit seq */
#define WIRE_CODE_STACK 24
#define WIRE_CODE_MODULE 25
#define WIRE_CODE_GENERIC 26            /* kind byte + presence varint + fields */
#define WIRE_CODE_MALLOC_NEXT 27        /* codes 27..30: seq = previous seq + 1 */
#define WIRE_CODE_FREE_NEXT 28
#define WIRE_CODE_CALLOC_NEXT 29
#define WIRE_CODE_REALLOC_NEXT 30
/* For FREE codes, aux is the index of the freed pointer among the recent pointers, or
 * WIRE_FREE_EXPLICIT when the pointer follows. For every other event code aux = chunk_flags. */
#define WIRE_FREE_EXPLICIT 7

/* ---- Event fields, in the order they are written ---- */
enum wire_field {
    WF_STACK, WF_THREAD, WF_SIZE, WF_NMEMB, WF_ALIGNMENT, WF_PARAM, WF_VALUE, WF_OS_TID,
    WF_SAMPLE, WF_TIME, WF_OLD_PTR, WF_PTR, WF_RESULT, WF_ERR, WF_COUNT
};
#define WF(f) (1u << (f))

/* The fields a kind's standard form always carries (besides seq). Anything else nonzero, a time
 * running backwards, or an error code sends the event to the generic form. */
static inline unsigned wire_standard_fields(unsigned kind)
{
    const unsigned base = WF(WF_STACK) | WF(WF_TIME);
    switch (kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
        return base | WF(WF_SIZE) | WF(WF_PTR);
    case TRACE_EV_CALLOC: return base | WF(WF_NMEMB) | WF(WF_SIZE) | WF(WF_PTR);
    case TRACE_EV_REALLOC: return base | WF(WF_OLD_PTR) | WF(WF_SIZE) | WF(WF_PTR);
    case TRACE_EV_REALLOCARRAY:
        return base | WF(WF_OLD_PTR) | WF(WF_NMEMB) | WF(WF_SIZE) | WF(WF_PTR);
    case TRACE_EV_FREE: return base | WF(WF_PTR);
    case TRACE_EV_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC:
        return base | WF(WF_ALIGNMENT) | WF(WF_SIZE) | WF(WF_PTR);
    case TRACE_EV_POSIX_MEMALIGN:
        return base | WF(WF_ALIGNMENT) | WF(WF_SIZE) | WF(WF_PTR) | WF(WF_RESULT);
    case TRACE_EV_MALLOPT: return base | WF(WF_PARAM) | WF(WF_VALUE) | WF(WF_RESULT);
    case TRACE_EV_MALLOC_TRIM: return base | WF(WF_SIZE) | WF(WF_RESULT);
    case TRACE_EV_THREAD_START: return base | WF(WF_THREAD) | WF(WF_OS_TID) | WF(WF_VALUE);
    case TRACE_EV_THREAD_EXIT: return base | WF(WF_THREAD);
    case TRACE_EV_FORK: case TRACE_EV_MODULE: return base | WF(WF_VALUE);
    case TRACE_EV_SAMPLE: return base | WF(WF_SAMPLE);
    default: return 0;
    }
}

static inline int wire_kind_allocates(unsigned kind)
{
    switch (kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_CALLOC: case TRACE_EV_REALLOC:
    case TRACE_EV_REALLOCARRAY: case TRACE_EV_MEMALIGN: case TRACE_EV_POSIX_MEMALIGN:
    case TRACE_EV_ALIGNED_ALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
        return 1;
    default:
        return 0;
    }
}

/* The thread field is carried only by thread start/exit; other events belong to their block's
 * thread. */
static inline int wire_kind_names_thread(unsigned kind)
{
    return kind == TRACE_EV_THREAD_START || kind == TRACE_EV_THREAD_EXIT;
}

#define WIRE_SAMPLE_FIELDS 13
static inline uint64_t *wire_sample_field(struct trace_sample *s, unsigned i)
{
    uint64_t *f[WIRE_SAMPLE_FIELDS] = {&s->rss_pages, &s->heap_resident_pages, &s->brk,
                                       &s->arena, &s->ordblks, &s->smblks, &s->hblks,
                                       &s->hblkhd, &s->usmblks, &s->fsmblks, &s->uordblks,
                                       &s->fordblks, &s->keepcost};
    return f[i];
}

/* ---- Little-endian fixed-width integers ---- */
static inline void wire_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void wire_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t wire_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t wire_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- Varints ---- */
#define WIRE_VARINT_MAX 9

static inline uint8_t *wire_put_varint(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        if (v < 0x80) {
            *p++ = (uint8_t)v;
            return p;
        }
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;      /* ninth byte: the last 8 bits */
    return p;
}

static inline unsigned wire_varint_len(uint64_t v)
{
    unsigned n = 1;
    while (v >= 0x80 && n < 9) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Reads a varint from [*p, end). Returns 0 (and leaves *p) when the bytes run out. */
static inline int wire_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    const uint8_t *q = *p;
    uint64_t v = 0;
    for (int i = 0; i < 9; i++) {
        if (q >= end)
            return 0;
        uint8_t b = *q++;
        if (i == 8) {
            v |= (uint64_t)b << 56;
            break;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    *p = q;
    *out = v;
    return 1;
}

static inline uint64_t wire_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));
}
static inline int64_t wire_unzigzag(uint64_t u)
{
    return (int64_t)((u >> 1) ^ (0 - (u & 1)));
}

/* ---- Pointers in the standard form: 0 = NULL, else zigzag(delta from last_ptr) + 1 ---- */
static inline int wire_ptr_delta_fits(uint64_t ptr, uint64_t last)
{
    return ptr == 0 || wire_zigzag((int64_t)(ptr - last)) != UINT64_MAX;
}
static inline uint64_t wire_ptr_code(uint64_t ptr, uint64_t last)
{
    return ptr ? wire_zigzag((int64_t)(ptr - last)) + 1 : 0;
}
static inline uint64_t wire_ptr_from_code(uint64_t code, uint64_t last)
{
    return code ? last + (uint64_t)wire_unzigzag(code - 1) : 0;
}

/* ---- The recent-pointer list: live pointers most recently returned, newest first ---- */
static inline int wire_recent_find(const struct trace_encode_state *st, uint64_t ptr)
{
    unsigned n = st->recent_count < TRACE_RECENT_PTRS ? st->recent_count : TRACE_RECENT_PTRS;
    for (unsigned i = 0; i < n; i++)
        if (st->recent[i] == ptr)
            return (int)i;
    return -1;
}
static inline void wire_recent_remove_at(struct trace_encode_state *st, unsigned i)
{
    unsigned n = st->recent_count < TRACE_RECENT_PTRS ? st->recent_count : TRACE_RECENT_PTRS;
    if (i >= n)
        return;
    memmove(&st->recent[i], &st->recent[i + 1], (n - i - 1) * sizeof st->recent[0]);
    st->recent_count = n - 1;
}
static inline void wire_recent_push(struct trace_encode_state *st, uint64_t ptr)
{
    unsigned n = st->recent_count < TRACE_RECENT_PTRS ? st->recent_count : TRACE_RECENT_PTRS;
    if (n == TRACE_RECENT_PTRS)
        n--;
    memmove(&st->recent[1], &st->recent[0], n * sizeof st->recent[0]);
    st->recent[0] = ptr;
    st->recent_count = n + 1;
}

/* After an event (either form): what it did to the live pointers, and its stack and seq. */
static inline void wire_state_after_event(struct trace_encode_state *st, const struct trace_event *ev)
{
    int i;
    if (ev->kind == TRACE_EV_FREE && ev->ptr && (i = wire_recent_find(st, ev->ptr)) >= 0)
        wire_recent_remove_at(st, (unsigned)i);
    if ((ev->kind == TRACE_EV_REALLOC || ev->kind == TRACE_EV_REALLOCARRAY) && ev->old_ptr &&
        ev->ptr && (i = wire_recent_find(st, ev->old_ptr)) >= 0)
        wire_recent_remove_at(st, (unsigned)i);
    if (wire_kind_allocates(ev->kind) && ev->ptr)
        wire_recent_push(st, ev->ptr);
    st->last_stack = ev->stack_id;
    st->last_seq = ev->seq;
    st->last_time_ns = ev->time_ns;
}

/* The stack field: 0 = the same stack as the thread's previous event, else id + 1. */
static inline uint64_t wire_stack_code(uint32_t id, uint32_t last)
{
    return id == last ? 0 : (uint64_t)id + 1;
}

#endif
