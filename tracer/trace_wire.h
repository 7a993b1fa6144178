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
#define WIRE_BLOCK_TAG "BLK1"                 /* records in rows */
#define WIRE_COLUMN_BLOCK_TAG "BLK2"          /* the same records split into columns */
#define WIRE_V2_BLOCK_TAG "BLK3"              /* version 2: own columns and pointer codes, each column coded on its own */
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
    WF_SAMPLE, WF_OLD_PTR, WF_PTR, WF_TIME, WF_RESULT, WF_ERR, WF_COUNT
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

/* The fields of ev that are nonzero (the thread only for the kinds that carry one). */
static inline unsigned wire_nonzero_fields(const struct trace_event *ev)
{
    static const struct trace_sample zero_sample;
    unsigned m = 0;
    if (ev->stack_id) m |= WF(WF_STACK);
    if (wire_kind_names_thread(ev->kind)) m |= WF(WF_THREAD);
    if (ev->size) m |= WF(WF_SIZE);
    if (ev->nmemb) m |= WF(WF_NMEMB);
    if (ev->alignment) m |= WF(WF_ALIGNMENT);
    if (ev->param) m |= WF(WF_PARAM);
    if (ev->value) m |= WF(WF_VALUE);
    if (ev->os_tid) m |= WF(WF_OS_TID);
    if (memcmp(&ev->sample, &zero_sample, sizeof zero_sample)) m |= WF(WF_SAMPLE);
    if (ev->time_ns) m |= WF(WF_TIME);
    if (ev->old_ptr) m |= WF(WF_OLD_PTR);
    if (ev->ptr) m |= WF(WF_PTR);
    if (ev->result) m |= WF(WF_RESULT);
    if (ev->err) m |= WF(WF_ERR);
    return m;
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

/* ---- Pointers in the standard form ----
 * 0 = NULL; 1..TRACE_FREED_PTRS = the pointer at that position (minus one) of the recently freed
 * list (an allocation reusing a chunk just freed); above that, zigzag(delta from last_ptr) plus
 * TRACE_FREED_PTRS + 1. */
#define WIRE_PTR_DELTA_BASE (TRACE_FREED_PTRS + 1)

static inline int wire_freed_find(const struct trace_encode_state *st, uint64_t ptr)
{
    unsigned n = st->freed_count < TRACE_FREED_PTRS ? st->freed_count : TRACE_FREED_PTRS;
    for (unsigned i = 0; i < n; i++)
        if (st->freed[i] == ptr)
            return (int)i;
    return -1;
}
static inline int wire_ptr_fits(uint64_t ptr, uint64_t last)
{
    return ptr == 0 || wire_zigzag((int64_t)(ptr - last)) <= UINT64_MAX - WIRE_PTR_DELTA_BASE;
}
static inline uint64_t wire_ptr_code(const struct trace_encode_state *st, uint64_t ptr, uint64_t last)
{
    if (!ptr)
        return 0;
    int i = wire_freed_find(st, ptr);
    if (i >= 0)
        return (uint64_t)i + 1;
    return wire_zigzag((int64_t)(ptr - last)) + WIRE_PTR_DELTA_BASE;
}
/* Returns 0 when the code names a freed-list position that does not exist. */
static inline int wire_ptr_from_code(const struct trace_encode_state *st, uint64_t code, uint64_t last,
                                     uint64_t *ptr)
{
    if (code == 0) {
        *ptr = 0;
    } else if (code < WIRE_PTR_DELTA_BASE) {
        if (code - 1 >= st->freed_count || code - 1 >= TRACE_FREED_PTRS)
            return 0;
        *ptr = st->freed[code - 1];
    } else {
        *ptr = last + (uint64_t)wire_unzigzag(code - WIRE_PTR_DELTA_BASE);
    }
    return 1;
}

/* ---- Time in the standard form ----
 * When the thread's previous event with the same (nonzero) stack left a delta in its slot, the
 * time is svarint(delta - that delta); otherwise it is the delta as a varint. */
static inline unsigned wire_time_slot(uint32_t stack_id)
{
    return (stack_id * 2654435761u) >> 24 & (TRACE_TIME_SLOTS - 1);
}
static inline int wire_time_predicted(const struct trace_encode_state *st, uint32_t stack_id,
                                      uint64_t *predicted)
{
    unsigned slot = wire_time_slot(stack_id);
    if (!stack_id || st->time_stack[slot] != stack_id)
        return 0;
    *predicted = st->time_delta[slot];
    return 1;
}

/* ---- Frees in the standard form ----
 * aux 0..6 names recent[0..6]; aux 7 is followed by a varint: 0 = NULL, 1 .. TRACE_RECENT_PTRS-7
 * name recent[7..], above that svarint(ptr - last_ptr) + TRACE_RECENT_PTRS - 6. */
#define WIRE_FREE_AUX_SLOTS 7
#define WIRE_FREE_DELTA_BASE (TRACE_RECENT_PTRS - WIRE_FREE_AUX_SLOTS + 1)

/* ---- Pointer lists: recent live allocations (for frees) and recent frees (for allocations) ---- */
static inline int wire_list_find(const uint64_t *list, uint32_t count, unsigned cap, uint64_t ptr)
{
    unsigned n = count < cap ? count : cap;
    for (unsigned i = 0; i < n; i++)
        if (list[i] == ptr)
            return (int)i;
    return -1;
}
static inline void wire_list_remove(uint64_t *list, uint32_t *count, unsigned cap, uint64_t ptr)
{
    int i = wire_list_find(list, *count, cap, ptr);
    unsigned n = *count < cap ? *count : cap;
    if (i < 0)
        return;
    memmove(&list[i], &list[i + 1], (n - (unsigned)i - 1) * sizeof list[0]);
    *count = n - 1;
}
static inline void wire_list_push(uint64_t *list, uint32_t *count, unsigned cap, uint64_t ptr)
{
    unsigned n = *count < cap ? *count : cap;
    if (n == cap)
        n--;
    memmove(&list[1], &list[0], n * sizeof list[0]);
    list[0] = ptr;
    *count = n + 1;
}
static inline int wire_recent_find(const struct trace_encode_state *st, uint64_t ptr)
{
    return wire_list_find(st->recent, st->recent_count, TRACE_RECENT_PTRS, ptr);
}

/* ---- Pointers in version-2 blocks (BLK3) ----
 * A live pointer (a free's, a realloc's old pointer) is named by how many allocations ago it
 * was returned (format versions 2 and 3; from version 4 by its rank among the live allocations,
 * below), a pointer an allocation returns by how many frees ago it was freed, within the
 * last WIRE_V2_WINDOW of each. Codes: 0 = NULL; 1 .. WIRE_V2_WINDOW - skip = that many
 * (+ skip) ago; above: zigzag(pointer - last_ptr) + WIRE_V2_WINDOW - skip + 1. skip is 7 for a
 * free whose opcode aux is 7 (aux 0-6 name 1-7 allocations ago), else 0. A decoder's rings hold
 * at least min(WIRE_V2_WINDOW, events in the block) pointers each. */
#define WIRE_V2_WINDOW 4096u

static inline uint64_t wire_v2_alloc_at(const struct trace_encode_state *st, uint64_t d)
{
    return st->ring[(st->allocs - d) & st->ring_mask];
}
static inline uint64_t wire_v2_free_at(const struct trace_encode_state *st, uint64_t d)
{
    return st->ring[st->ring_mask + 1 + ((st->frees - d) & st->ring_mask)];
}
static inline int wire_v2_live_from_code(const struct trace_encode_state *st, uint64_t code,
                                         unsigned skip, uint64_t *ptr)
{
    uint64_t base = WIRE_V2_WINDOW - skip + 1;
    if (code == 0) {
        *ptr = 0;
    } else if (code < base) {
        if (code + skip > st->allocs)
            return 0;
        *ptr = wire_v2_alloc_at(st, code + skip);
    } else {
        *ptr = st->last_ptr + (uint64_t)wire_unzigzag(code - base);
    }
    return 1;
}
static inline int wire_v2_freed_from_code(const struct trace_encode_state *st, uint64_t code,
                                          uint64_t *ptr)
{
    if (code == 0) {
        *ptr = 0;
    } else if (code <= WIRE_V2_WINDOW) {
        if (code > st->frees)
            return 0;
        *ptr = wire_v2_free_at(st, code);
    } else {
        *ptr = st->last_ptr + (uint64_t)wire_unzigzag(code - WIRE_V2_WINDOW - 1);
    }
    return 1;
}

/* Version-2 predictions, after the rings in the decoder's memory (zeroed at a block's start):
 * the stack that followed each stack last time (one table for frees, one for everything else),
 * and the size last allocated at each stack. In version-2 blocks the stack field is 0 = the
 * same stack as the last free's (for a free) or as the last other event's that had a stack, 1 =
 * the stack that followed that one last time, else id + 2; an allocation's size is 0 = the size
 * last allocated at its stack, else size + 1. */
#define WIRE_V2_PRED_SLOTS 1024u
#define WIRE_V2_PRED_WORDS (4 * (size_t)WIRE_V2_PRED_SLOTS)
/* Version 4 also keeps which allocations of the window are live, after the predictions (the
 * live area, below). */
#define WIRE_V2_LIVE_BITS (WIRE_V2_WINDOW / 64)
#define WIRE_V2_LIVE_WORDS (WIRE_V2_LIVE_BITS + 20)
#define WIRE_V2_RING_WORDS(cap) (2 * (size_t)(cap) + WIRE_V2_PRED_WORDS + WIRE_V2_LIVE_WORDS)

static inline uint64_t *wire_v2_pred(const struct trace_encode_state *st)
{
    return st->ring + 2 * (st->ring_mask + 1);
}
static inline unsigned wire_v2_slot(uint32_t id)
{
    return (id * 2654435761u) >> 22;
}
/* The stack a kind's code 0 repeats. */
static inline uint32_t wire_v2_last_stack(const struct trace_encode_state *st, unsigned kind)
{
    return kind == TRACE_EV_FREE ? st->last_free_stack : st->last_stack;
}
static inline int wire_v2_next_stack(const struct trace_encode_state *st, unsigned kind, uint32_t *id)
{
    uint32_t last = wire_v2_last_stack(st, kind);
    unsigned table = kind == TRACE_EV_FREE ? 3 * WIRE_V2_PRED_SLOTS : 0;
    uint64_t e = wire_v2_pred(st)[table + wire_v2_slot(last)];
    if ((e >> 32) != (uint64_t)last + 1)
        return 0;
    *id = (uint32_t)e;
    return 1;
}
static inline int wire_v2_stack_size(const struct trace_encode_state *st, uint32_t stack, uint64_t *size)
{
    const uint64_t *pred = wire_v2_pred(st);
    unsigned k = wire_v2_slot(stack);
    if (!stack || pred[WIRE_V2_PRED_SLOTS + k] != (uint64_t)stack + 1)
        return 0;
    *size = pred[2 * WIRE_V2_PRED_SLOTS + k];
    return 1;
}
static inline void wire_v2_note_stack(struct trace_encode_state *st, unsigned kind, uint32_t stack,
                                      uint64_t size)
{
    uint64_t *pred = wire_v2_pred(st);
    if (kind == TRACE_EV_FREE) {
        if (stack != st->last_free_stack)
            pred[3 * WIRE_V2_PRED_SLOTS + wire_v2_slot(st->last_free_stack)] =
                ((uint64_t)st->last_free_stack + 1) << 32 | stack;
        st->last_free_stack = stack;
        return;
    }
    if (!stack)
        return;
    if (stack != st->last_stack)
        pred[wire_v2_slot(st->last_stack)] = ((uint64_t)st->last_stack + 1) << 32 | stack;
    if (wire_kind_allocates(kind)) {
        unsigned k = wire_v2_slot(stack);
        pred[WIRE_V2_PRED_SLOTS + k] = (uint64_t)stack + 1;
        pred[2 * WIRE_V2_PRED_SLOTS + k] = size;
    }
    st->last_stack = stack;
}

/* ---- Version 4: live allocations named by rank ----
 * A free (or a realloc's old_ptr) names an allocation of the window that is still live by how
 * many live allocations are newer than it (its rank: 0 = the newest live one). An allocation
 * slot becomes live when an allocation kind returns a nonzero pointer into it (replacing
 * whatever the slot held W allocations ago), and stops being live when a free names it by rank,
 * or a realloc that returned a nonzero pointer names it by rank as its old_ptr. A pointer coded
 * any other way (a delta, the generic form) changes no live bit: the decoder could not tell which
 * slot held it.
 *
 * The live area (after the predictions) holds a bit per allocation slot (W = 4096: 64 words);
 * for each group of 8 words, how many slots are live in the words before each in the group, as
 * 16-bit lanes (2 words per group); how many are live in the groups before each group (lanes,
 * 2 words); the live total; and how many slots up to the newest allocation's (physically,
 * [0, newest]) are live. A change adds a constant to 4 words, a prefix count is two lanes and a
 * popcount: no loops, no popcnt instruction. */
#define WIRE_V2_LIVE_IN_GROUP WIRE_V2_LIVE_BITS          /* 16 words: per group, 8 lanes */
#define WIRE_V2_LIVE_GROUPS (WIRE_V2_LIVE_IN_GROUP + 16) /* 2 words: 8 lanes */
#define WIRE_V2_LIVE_TOTAL (WIRE_V2_LIVE_GROUPS + 2)
#define WIRE_V2_LIVE_UPTO (WIRE_V2_LIVE_TOTAL + 1)      /* live among [0, newest slot] */
_Static_assert(WIRE_V2_LIVE_UPTO + 1 == WIRE_V2_LIVE_WORDS, "the live area's size");
_Static_assert(WIRE_V2_WINDOW == 4096, "the live area is laid out for 64 words of 64 slots");

static inline uint64_t *wire_v2_live(const struct trace_encode_state *st)
{
    return wire_v2_pred(st) + WIRE_V2_PRED_WORDS;
}
static inline int wire_v2_ranks(const struct trace_encode_state *st)
{
    return st->version >= 4;
}
/* Bits set in x (portable: no popcnt instruction assumed). */
static inline unsigned wire_popcount(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
}
/* Lane i of 16-bit lanes packed in words, least significant first (on a little-endian machine
 * a 16-bit load at byte 2i). */
static inline uint64_t wire_lane(const uint64_t *words, uint64_t i)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint16_t v;
    memcpy(&v, (const uint8_t *)words + 2 * i, 2);
    return v;
#else
    return words[i >> 2] >> (16 * (i & 3)) & 0xffff;
#endif
}
/* A 1 in each of the 8 lanes after lane i, as two words. */
static inline const uint64_t *wire_lanes_after(uint64_t i)
{
    static const uint64_t after[8][2] = {
        {0x0001000100010000ull, 0x0001000100010001ull}, {0x0001000100000000ull, 0x0001000100010001ull},
        {0x0001000000000000ull, 0x0001000100010001ull}, {0, 0x0001000100010001ull},
        {0, 0x0001000100010000ull}, {0, 0x0001000100000000ull}, {0, 0x0001000000000000ull}, {0, 0}};
    return after[i];
}
static inline int wire_v2_is_live(const uint64_t *live, uint64_t slot)
{
    return (int)(live[slot >> 6] >> (slot & 63) & 1);
}
/* An allocation returned a nonzero pointer into `slot` (the newest slot from now on), which
 * turns live if it was not (branch-free: whether the slot's previous allocation is live is a
 * coin toss on some programs). */
static inline void wire_v2_live_alloc(uint64_t *live, uint64_t slot)
{
    uint64_t w = slot >> 6, g = w >> 3;
    uint64_t turns = (live[w] >> (slot & 63) & 1) - 1;     /* all ones if it was dead */
    const uint64_t *in_group = wire_lanes_after(w & 7), *groups = wire_lanes_after(g);
    uint64_t *lg = live + WIRE_V2_LIVE_IN_GROUP + 2 * g, *gs = live + WIRE_V2_LIVE_GROUPS;
    live[w] |= 1ull << (slot & 63);
    lg[0] += in_group[0] & turns;
    lg[1] += in_group[1] & turns;
    gs[0] += groups[0] & turns;
    gs[1] += groups[1] & turns;
    live[WIRE_V2_LIVE_TOTAL] -= turns;
    live[WIRE_V2_LIVE_UPTO] = slot ? live[WIRE_V2_LIVE_UPTO] + 1 : 1;
}
/* A rank named the live `slot`, and the event ends it; newest: the newest allocation's slot. */
static inline void wire_v2_live_retire(uint64_t *live, uint64_t slot, uint64_t newest)
{
    uint64_t w = slot >> 6, g = w >> 3;
    const uint64_t *in_group = wire_lanes_after(w & 7), *groups = wire_lanes_after(g);
    uint64_t *lg = live + WIRE_V2_LIVE_IN_GROUP + 2 * g, *gs = live + WIRE_V2_LIVE_GROUPS;
    live[w] &= ~(1ull << (slot & 63));
    lg[0] -= in_group[0];
    lg[1] -= in_group[1];
    gs[0] -= groups[0];
    gs[1] -= groups[1];
    live[WIRE_V2_LIVE_TOTAL]--;
    live[WIRE_V2_LIVE_UPTO] -= slot <= newest;
}
/* The slot of the newest allocation (allocs > 0). */
static inline uint64_t wire_v2_newest_slot(const struct trace_encode_state *st)
{
    return (st->allocs - 1) & st->ring_mask;
}
/* Live slots among [0, x), x < W. */
static inline uint64_t wire_v2_live_before(const uint64_t *live, uint64_t x)
{
    uint64_t w = x >> 6;
    return wire_lane(live + WIRE_V2_LIVE_GROUPS, w >> 3) + wire_lane(live + WIRE_V2_LIVE_IN_GROUP, w) +
           wire_popcount(live[w] & ((1ull << (x & 63)) - 1));
}
/* How many live slots are newer than the live `slot`; newest: the newest allocation's slot. */
static inline uint64_t wire_v2_rank(const uint64_t *live, uint64_t slot, uint64_t newest)
{
    uint64_t r = live[WIRE_V2_LIVE_UPTO] - wire_v2_live_before(live, slot) - 1;
    return r + (live[WIRE_V2_LIVE_TOTAL] & (0 - (uint64_t)(slot > newest)));   /* no branch */
}
/* The index of the j-th (from 0) set bit of x, which has more than j. */
static inline unsigned wire_select_bit(uint64_t x, uint64_t j)
{
    unsigned at = 0;
    for (int i = 0; i < 7; i++) {
        unsigned c = wire_popcount(x & 0xff);
        if (j < c)
            break;
        j -= c;
        x >>= 8;
        at += 8;
    }
    for (int i = 0; i < 8 && x; i++, x >>= 1, at++)
        if ((x & 1) && j-- == 0)
            break;
    return at & 63;
}
/* The slot of the live allocation of rank k; 0 when fewer than k + 1 are live. */
static inline int wire_v2_select(const struct trace_encode_state *st, uint64_t k, uint64_t *slot)
{
    const uint64_t *live = wire_v2_live(st);
    uint64_t total = live[WIRE_V2_LIVE_TOTAL], upto = live[WIRE_V2_LIVE_UPTO];
    if (k >= total || upto > total)
        return 0;
    /* the j-th live slot counting from slot 0 up: in the last group (word of the group) whose
     * count before it is at most j */
    uint64_t j = k < upto ? upto - 1 - k : total - 1 - (k - upto);
    unsigned g = 7, w = 7;
    while (g && wire_lane(live + WIRE_V2_LIVE_GROUPS, g) > j)
        g--;
    j -= wire_lane(live + WIRE_V2_LIVE_GROUPS, g);
    while (w && wire_lane(live + WIRE_V2_LIVE_IN_GROUP, 8 * g + w) > j)
        w--;
    w += 8 * g;
    j -= wire_lane(live + WIRE_V2_LIVE_IN_GROUP, w);
    if (wire_popcount(live[w]) <= j)
        return 0;                           /* (cannot happen: the counts match the bits) */
    *slot = (uint64_t)w * 64 + wire_select_bit(live[w], j);
    return 1;
}
/* A live pointer's code (a free's with skip 7 after aux, a realloc's old_ptr with skip 0) from
 * its rank: the decoder's side. *slot gets the allocation's slot, or -1 for NULL or a delta. */
static inline int wire_v2_ranked_from_code(const struct trace_encode_state *st, uint64_t code,
                                           unsigned skip, uint64_t *ptr, int64_t *slot)
{
    uint64_t base = WIRE_V2_WINDOW - skip + 1, s;
    *slot = -1;
    if (code == 0) {
        *ptr = 0;
    } else if (code < base) {
        if (!wire_v2_select(st, code - 1 + skip, &s))
            return 0;
        *ptr = st->ring[s];
        *slot = (int64_t)s;
    } else {
        *ptr = st->last_ptr + (uint64_t)wire_unzigzag(code - base);
    }
    return 1;
}

/* The pointer an event frees: a free's, or the old pointer of a realloc that moved. */
static inline uint64_t wire_freed_by(const struct trace_event *ev)
{
    if (ev->kind == TRACE_EV_FREE)
        return ev->ptr;
    if ((ev->kind == TRACE_EV_REALLOC || ev->kind == TRACE_EV_REALLOCARRAY) && ev->ptr &&
        ev->old_ptr != ev->ptr)
        return ev->old_ptr;
    return 0;
}

/* After an event (either form): what it did to the live and freed pointers, its stack, seq and
 * time. (last_ptr is advanced while the pointer fields are written or read.) */
static inline void wire_state_after_event(struct trace_encode_state *st, const struct trace_event *ev)
{
    uint64_t gone = wire_freed_by(ev);
    if (st->ring) {
        if (gone)
            st->ring[st->ring_mask + 1 + (st->frees++ & st->ring_mask)] = gone;
        if (wire_kind_allocates(ev->kind) && ev->ptr) {
            uint64_t slot = st->allocs++ & st->ring_mask;
            st->ring[slot] = ev->ptr;
            if (wire_v2_ranks(st))
                wire_v2_live_alloc(wire_v2_live(st), slot);
        }
        gone = 0;
    } else if (gone) {
        wire_list_remove(st->recent, &st->recent_count, TRACE_RECENT_PTRS, gone);
        wire_list_push(st->freed, &st->freed_count, TRACE_FREED_PTRS, gone);
    }
    if (!st->ring && wire_kind_allocates(ev->kind) && ev->ptr) {
        wire_list_remove(st->freed, &st->freed_count, TRACE_FREED_PTRS, ev->ptr);
        wire_list_push(st->recent, &st->recent_count, TRACE_RECENT_PTRS, ev->ptr);
    }
    unsigned slot = wire_time_slot(ev->stack_id);
    st->time_stack[slot] = ev->stack_id;
    st->time_delta[slot] = ev->time_ns - st->last_time_ns;
    if (!st->ring)
        st->last_stack = ev->stack_id;
    else
        wire_v2_note_stack(st, ev->kind, ev->stack_id, ev->size);
    st->last_seq = ev->seq;
    st->last_time_ns = ev->time_ns;
}

/* The stack field: 0 = the same stack as the thread's previous event, else id + 1. */
static inline uint64_t wire_stack_code(uint32_t id, uint32_t last)
{
    return id == last ? 0 : (uint64_t)id + 1;
}

#endif
