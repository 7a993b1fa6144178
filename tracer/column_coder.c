/* column_coder.c: entropy coding of one column of bytes (see column_coder.h).
 *
 * A coded column is: a method byte, the raw length (varint), then
 *   - stored: the bytes;
 *   - run: the one byte value they all have;
 *   - Huffman: the number of code lengths given (one byte: count - 1), the 4-bit code length of
 *     each byte value from 0 (low nibble first; 0 = absent), the bit stream's length (varint) and
 *     the bit stream. Codes are canonical (shorter first, then by byte value), at most 12 bits,
 *     and written least significant bit first with each code's bits reversed, as deflate does,
 *     so a decoder peeks 12 bits and finds the symbol in one table;
 *   - rANS: the count of frequencies given (one byte: count - 1), each byte value's frequency
 *     out of 4096 (varints; 0 = absent), the stream's length (varint) and the stream: the final
 *     32-bit states (little-endian) of the two interleaved coders (even and odd positions), then
 *     their renormalisation bytes in the order the decoder reads them. A range coder spends
 *     fractional bits, so a column where one value dominates (times, stack codes, opcodes) costs
 *     well under Huffman's one bit per byte;
 *   - deflate (format version 3): the stream's length (varint) and raw deflate streams, which is
 *     what the recorder writes by default: Huffman-only streams by our own writer
 *     (deflate_literals.c, a quarter of zlib's cost), run-length and string-search ones by zlib;
 *     a reader needs nothing but zlib's inflate to check them.
 *
 * The encoder counts the bytes, then prices Huffman exactly (optimal code lengths from a
 * two-queue construction, capped at 12 bits by moving codes down the tree until the lengths form
 * a complete code again) and rANS by coding it, and keeps the smallest of them and stored.
 * rANS divides through per-value reciprocals (a multiply and a shift), so coding is a few ns per
 * byte either way, plus a fixed few us per column for the tables.
 */
#include <string.h>
#include "column_coder.h"
#include "deflate_literals.h"
#include "huffman_code.h"
#include "trace_wire.h"

#define NSYM 256
#define TABLE_SIZE (1u << COLCODE_MAX_BITS)

/* ---- code lengths ---- */

/* The column's own Huffman method: codes of at most COLCODE_MAX_BITS bits (huffman_code.c). */
static void build_lengths(const uint64_t *freq, uint8_t *len)
{
    huffman_lengths(freq, NSYM, COLCODE_MAX_BITS, len);
}

static void assign_codes(const uint8_t *len, uint16_t *code)
{
    huffman_codes(len, NSYM, COLCODE_MAX_BITS, code);
}

/* ---- rANS ---- */

#define RANS_BITS 12
#define RANS_M (1u << RANS_BITS)
#define RANS_L (1u << 23)                /* the state stays in [RANS_L, RANS_L * 256) */

/* Frequencies out of RANS_M, each present value at least 1, in proportion to the counts. */
static void normalize(const uint64_t *count, size_t n, uint32_t *freq)
{
    uint32_t total = 0;
    unsigned big = 0;
    for (unsigned s = 0; s < NSYM; s++) {
        freq[s] = 0;
        if (!count[s])
            continue;
        uint64_t f = count[s] * RANS_M / n;
        freq[s] = f ? (uint32_t)f : 1;
        total += freq[s];
        if (freq[s] > freq[big] || !count[big])
            big = s;
    }
    /* Settle the difference on the largest frequencies (the cheapest to change). */
    while (total != RANS_M) {
        unsigned best = big;
        if (total < RANS_M) {
            freq[best] += RANS_M - total;
            total = RANS_M;
        } else {
            uint32_t excess = total - RANS_M;
            for (unsigned s = 0; s < NSYM; s++)
                if (freq[s] > freq[best])
                    best = s;
            uint32_t take = freq[best] - 1 < excess ? freq[best] - 1 : excess;
            if (take == 0)
                break;                  /* cannot happen: n >= 2 values, RANS_M >= 256 */
            freq[best] -= take;
            total -= take;
        }
    }
}

struct rans_sym {
    uint32_t rcp, bias;
    uint16_t cmpl, shift;
    uint32_t x_max;                      /* renormalise while the state is at least this */
};

static void rans_prepare(const uint32_t *freq, struct rans_sym *sym)
{
    uint32_t cum = 0;
    for (unsigned s = 0; s < NSYM; s++) {
        uint32_t f = freq[s];
        struct rans_sym *r = &sym[s];
        r->x_max = ((RANS_L >> RANS_BITS) << 8) * f;
        r->cmpl = (uint16_t)(RANS_M - f);
        if (f < 2) {
            /* x / 1 = x: a reciprocal of 2^32 - 1 gives x - 1, which the bias makes up for. */
            r->rcp = 0xffffffffu;
            r->shift = 0;
            r->bias = cum + RANS_M - 1;
        } else {
            unsigned sh = 0;
            while (f > (1u << sh))
                sh++;
            r->rcp = (uint32_t)(((1ull << (sh + 31)) + f - 1) / f);
            r->shift = (uint16_t)(sh - 1);
            r->bias = cum;
        }
        cum += f;
    }
}

/* Codes in[0..n) backwards into the bytes that end at `end`, value i with state i mod 2 (two
 * states interleaved: their dependency chains overlap); returns where the stream starts (the two
 * final states first), or NULL when it would reach below `limit`. */
static uint8_t *rans_encode(const uint8_t *in, size_t n, const struct rans_sym *sym, uint8_t *limit,
                            uint8_t *end)
{
    uint8_t *p = end;
    uint32_t x[2] = {RANS_L, RANS_L};
    for (size_t i = n; i-- > 0;) {
        const struct rans_sym *r = &sym[in[i]];
        uint32_t *xs = &x[i & 1], v = *xs;
        while (v >= r->x_max) {
            if (p <= limit)
                return NULL;
            *--p = (uint8_t)v;
            v >>= 8;
        }
        uint32_t q = (uint32_t)(((uint64_t)v * r->rcp) >> 32) >> r->shift;
        *xs = v + r->bias + q * r->cmpl;
    }
    if (p - limit < 8)
        return NULL;
    p -= 8;
    wire_put32(p, x[0]);
    wire_put32(p + 4, x[1]);
    return p;
}

/* ---- encoding ---- */

size_t colcode_store(uint8_t *out, size_t cap, const uint8_t *in, size_t n)
{
    if (cap < colcode_bound(n))
        return 0;
    uint8_t *p = out;
    *p++ = COLCODE_STORED;
    p = wire_put_varint(p, n);
    memcpy(p, in, n);
    return (size_t)(p - out) + n;
}

size_t colcode_encode(uint8_t *out, size_t cap, const uint8_t *in, size_t n)
{
    if (cap < colcode_bound(n))
        return 0;
    uint64_t freq[NSYM] = {0};
    for (size_t i = 0; i < n; i++)
        freq[in[i]]++;
    unsigned present = 0, last = 0;
    for (unsigned s = 0; s < NSYM; s++)
        if (freq[s]) {
            present++;
            last = s;
        }
    uint8_t *p = out;
    if (present == 1 && n > 1) {
        *p++ = COLCODE_RUN;
        p = wire_put_varint(p, n);
        *p++ = (uint8_t)last;
        return (size_t)(p - out);
    }
    uint8_t len[NSYM];
    size_t bits = 0;
    if (present >= 2) {
        build_lengths(freq, len);
        for (unsigned s = 0; s < NSYM; s++)
            bits += freq[s] * len[s];
    }
    size_t table = 1 + (last + 2) / 2;
    size_t huff = (bits + 7) / 8 + table + WIRE_VARINT_MAX;
    size_t stored = 1 + wire_varint_len(n) + n;
    if (present < 2)
        return colcode_store(out, cap, in, n);
    /* rANS, coded backwards into the end of out, then moved behind its header if it wins. */
    uint32_t rf[NSYM];
    struct rans_sym sym[NSYM];
    normalize(freq, n, rf);
    rans_prepare(rf, sym);
    size_t head = 2 + wire_varint_len(n);
    for (unsigned s = 0; s <= last; s++)
        head += wire_varint_len(rf[s]);
    uint8_t *limit = out + head + WIRE_VARINT_MAX;
    uint8_t *stream = limit < out + cap ? rans_encode(in, n, sym, limit, out + cap) : NULL;
    size_t m = stream ? (size_t)(out + cap - stream) : 0;
    size_t rans = stream ? head + wire_varint_len(m) + m : SIZE_MAX;
    if (rans < huff && rans < stored) {
        *p++ = COLCODE_RANS;
        p = wire_put_varint(p, n);
        *p++ = (uint8_t)last;
        for (unsigned s = 0; s <= last; s++)
            p = wire_put_varint(p, rf[s]);
        p = wire_put_varint(p, m);
        memmove(p, stream, m);
        return (size_t)(p - out) + m;
    }
    if (huff >= n)
        return colcode_store(out, cap, in, n);
    uint16_t code[NSYM];
    assign_codes(len, code);
    *p++ = COLCODE_HUFFMAN;
    p = wire_put_varint(p, n);
    *p++ = (uint8_t)last;
    for (unsigned s = 0; s <= last; s += 2)
        *p++ = (uint8_t)(len[s] | (s + 1 <= last ? len[s + 1] << 4 : 0));
    p = wire_put_varint(p, (bits + 7) / 8);
    /* Bit buffer, LSB first; flushed 32 bits at a time (the slack in the bound covers the
     * last partial word). */
    uint64_t acc = 0;
    unsigned nacc = 0;
    uint8_t *q = p;
    for (size_t i = 0; i < n; i++) {
        unsigned s = in[i];
        acc |= (uint64_t)code[s] << nacc;
        nacc += len[s];
        if (nacc >= 32) {
            q[0] = (uint8_t)acc;
            q[1] = (uint8_t)(acc >> 8);
            q[2] = (uint8_t)(acc >> 16);
            q[3] = (uint8_t)(acc >> 24);
            q += 4;
            acc >>= 32;
            nacc -= 32;
        }
    }
    while (nacc > 0) {
        *q++ = (uint8_t)acc;
        acc >>= 8;
        nacc = nacc > 8 ? nacc - 8 : 0;
    }
    return (size_t)(q - out);
}

size_t colcode_deflate(uint8_t *out, size_t cap, const uint8_t *in, size_t n, z_stream *zs,
                       int strategy)
{
    if (cap < colcode_bound(n))
        return 0;
    if (n < 16)
        return colcode_store(out, cap, in, n);
    if (in[0] == in[n - 1] && in[0] == in[n / 2] && !memcmp(in, in + 1, n - 1)) {
        uint8_t *p = out;
        *p++ = COLCODE_RUN;
        p = wire_put_varint(p, n);
        *p++ = in[0];
        return (size_t)(p - out);
    }
    /* The stream goes behind the longest header it could need, and moves up if m is shorter. */
    size_t stored = 1 + wire_varint_len(n) + n;
    size_t head = 1 + wire_varint_len(n), room = stored - head;
    size_t gap = wire_varint_len(room);
    /* One stream per COLCODE_DEFLATE_PIECE bytes: zlib slides its window (and rewrites its hash
     * chains) every 32 KiB of a longer stream, a fifth of its time here; a new stream only
     * clears its hash heads. */
    uint8_t *q = out + head + gap, *qend = out + stored;
    for (size_t at = 0; at < n; at += COLCODE_DEFLATE_PIECE) {
        size_t piece = n - at < COLCODE_DEFLATE_PIECE ? n - at : COLCODE_DEFLATE_PIECE;
        if (strategy == Z_HUFFMAN_ONLY) {               /* ours: the same stream, faster */
            size_t got = deflate_literals(q, (size_t)(qend - q), in + at, piece);
            if (!got)
                return colcode_store(out, cap, in, n);
            q += got;
            continue;
        }
        if (deflateReset(zs) != Z_OK || deflateParams(zs, 1, strategy) != Z_OK)
            return colcode_store(out, cap, in, n);
        zs->next_in = (Bytef *)(uintptr_t)(in + at);
        zs->avail_in = (uInt)piece;
        zs->next_out = q;
        zs->avail_out = (uInt)(qend - q);
        if (deflate(zs, Z_FINISH) != Z_STREAM_END)      /* no smaller than stored */
            return colcode_store(out, cap, in, n);
        q = zs->next_out;
    }
    size_t m = (size_t)(q - (out + head + gap));
    uint8_t *p = out;
    *p++ = COLCODE_DEFLATE;
    p = wire_put_varint(p, n);
    p = wire_put_varint(p, m);
    if (p != out + head + gap)
        memmove(p, out + head + gap, m);
    return (size_t)(p - out) + m;
}

/* ---- decoding ---- */

/* A deflate column after its method byte and length. */
static int deflate_decode(const uint8_t **pp, const uint8_t *p, const uint8_t *end, uint8_t *out,
                          size_t n, const char **why, z_stream *zs)
{
    uint64_t m;
    if (!wire_get_varint(&p, end, &m) || m > (uint64_t)(end - p) || m == 0) {
        *why = "a deflate column's stream runs past the block";
        return 0;
    }
    z_stream own;
    if (!zs) {
        memset(&own, 0, sizeof own);
        if (inflateInit2(&own, -15) != Z_OK) {
            *why = "cannot start zlib";
            return 0;
        }
    } else if (inflateReset(zs) != Z_OK) {
        *why = "cannot reset zlib";
        return 0;
    }
    z_stream *z = zs ? zs : &own;
    /* Streams one after the other, each inflating to a piece (the last one to the rest). */
    z->next_in = (Bytef *)(uintptr_t)p;
    z->avail_in = (uInt)m;
    z->next_out = out;
    int ok = 1;
    for (size_t at = 0; ok && at < n; at += COLCODE_DEFLATE_PIECE) {
        size_t piece = n - at < COLCODE_DEFLATE_PIECE ? n - at : COLCODE_DEFLATE_PIECE;
        if (at && inflateReset(z) != Z_OK) {
            *why = "cannot reset zlib";
            ok = 0;
            break;
        }
        z->avail_out = (uInt)piece;
        int rc = inflate(z, Z_FINISH);
        if (rc == Z_STREAM_END && z->avail_out == 0)
            continue;
        ok = 0;
        *why = rc == Z_STREAM_END ? "a deflate column's stream inflates to too few bytes"
               : rc == Z_BUF_ERROR && z->avail_out == 0
                   ? "a deflate column's stream inflates to too many bytes"
               : rc == Z_BUF_ERROR ? "a deflate column's stream ends too early"
                                   : "a deflate column's stream is damaged";
    }
    if (ok && z->avail_in != 0) {
        *why = "a deflate column has bytes after its last stream";
        ok = 0;
    }
    if (!zs)
        inflateEnd(&own);
    if (ok)
        *pp = p + m;
    return ok;
}

/* The rANS column after its method byte and length: *pp is moved past the column. */
static int rans_decode(const uint8_t **pp, const uint8_t *p, const uint8_t *end, uint8_t *out,
                       size_t n, const char **why)
{
    if (p >= end) {
        *why = "a rANS column runs past the block";
        return 0;
    }
    unsigned last = *p++;
    uint32_t freq[NSYM] = {0}, cum[NSYM + 1];
    uint32_t total = 0;
    unsigned present = 0;
    for (unsigned s = 0; s <= last; s++) {
        uint64_t f;
        if (!wire_get_varint(&p, end, &f) || f > RANS_M) {
            *why = "a rANS column's frequencies are malformed";
            return 0;
        }
        freq[s] = (uint32_t)f;
        total += (uint32_t)f;
        present += f != 0;
    }
    if (total != RANS_M || present < 2) {
        *why = "a rANS column's frequencies do not add up to 4096";
        return 0;
    }
    uint64_t m;
    if (!wire_get_varint(&p, end, &m) || m > (uint64_t)(end - p) || m < 4) {
        *why = "a rANS column's stream runs past the block";
        return 0;
    }
    uint8_t slot_sym[RANS_M];
    cum[0] = 0;
    for (unsigned s = 0; s < NSYM; s++) {
        cum[s + 1] = cum[s] + freq[s];
        memset(slot_sym + cum[s], (int)s, freq[s]);
    }
    if (m < 8) {
        *why = "a rANS column's stream is too short";
        return 0;
    }
    const uint8_t *q = p + 8, *qend = p + m;
    uint32_t x[2] = {wire_get32(p), wire_get32(p + 4)};
    if (x[0] < RANS_L || x[1] < RANS_L) {
        *why = "a rANS column's state is out of range";
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t v = x[i & 1];
        uint32_t slot = v & (RANS_M - 1);
        unsigned s = slot_sym[slot];
        out[i] = (uint8_t)s;
        v = freq[s] * (v >> RANS_BITS) + slot - cum[s];
        while (v < RANS_L) {
            if (q >= qend) {
                *why = "a rANS column's stream ends too early";
                return 0;
            }
            v = v << 8 | *q++;
        }
        x[i & 1] = v;
    }
    if (x[0] != RANS_L || x[1] != RANS_L || q != qend) {
        *why = "a rANS column's stream does not end where it should";
        return 0;
    }
    *pp = qend;
    return 1;
}

int colcode_raw_length(const uint8_t *p, const uint8_t *end, uint64_t *n)
{
    if (p >= end || *p > COLCODE_DEFLATE)
        return 0;
    p++;
    return wire_get_varint(&p, end, n);
}

int colcode_decode(const uint8_t **pp, const uint8_t *end, uint8_t *out, size_t n, const char **why)
{
    return colcode_decode_z(pp, end, out, n, why, NULL);
}

int colcode_decode_z(const uint8_t **pp, const uint8_t *end, uint8_t *out, size_t n,
                     const char **why, z_stream *zs)
{
    const uint8_t *p = *pp;
    uint64_t raw;
    if (p >= end) {
        *why = "a coded column is missing";
        return 0;
    }
    uint8_t method = *p++;
    if (!wire_get_varint(&p, end, &raw) || raw != n) {
        *why = "a coded column's length does not match";
        return 0;
    }
    if (method == COLCODE_STORED) {
        if ((size_t)(end - p) < n) {
            *why = "a stored column runs past the block";
            return 0;
        }
        memcpy(out, p, n);
        *pp = p + n;
        return 1;
    }
    if (method == COLCODE_RUN) {
        if (p >= end) {
            *why = "a run column runs past the block";
            return 0;
        }
        memset(out, *p++, n);
        *pp = p;
        return 1;
    }
    if (method == COLCODE_RANS)
        return rans_decode(pp, p, end, out, n, why);
    if (method == COLCODE_DEFLATE)
        return deflate_decode(pp, p, end, out, n, why, zs);
    if (method != COLCODE_HUFFMAN) {
        *why = "a coded column has an unknown method";
        return 0;
    }
    if (p >= end) {
        *why = "a Huffman column runs past the block";
        return 0;
    }
    unsigned last = *p++;
    size_t tbytes = (last + 2) / 2;
    if ((size_t)(end - p) < tbytes) {
        *why = "a Huffman column's code lengths run past the block";
        return 0;
    }
    uint8_t len[NSYM] = {0};
    for (unsigned s = 0; s <= last; s++)
        len[s] = (uint8_t)((p[s / 2] >> (4 * (s & 1))) & 15);
    p += tbytes;
    uint64_t kraft = 0;
    unsigned present = 0;
    for (unsigned s = 0; s <= last; s++) {
        if (len[s] > COLCODE_MAX_BITS) {
            *why = "a Huffman code is longer than 12 bits";
            return 0;
        }
        if (len[s]) {
            kraft += 1u << (COLCODE_MAX_BITS - len[s]);
            present++;
        }
    }
    if (present < 2 || kraft != TABLE_SIZE) {
        *why = "a Huffman column's code lengths are not a complete code";
        return 0;
    }
    uint64_t nbytes;
    if (!wire_get_varint(&p, end, &nbytes) || nbytes > (uint64_t)(end - p)) {
        *why = "a Huffman column's bit stream runs past the block";
        return 0;
    }
    uint16_t code[NSYM];
    assign_codes(len, code);
    uint16_t table[TABLE_SIZE];
    for (unsigned s = 0; s <= last; s++) {
        if (!len[s])
            continue;
        for (unsigned k = code[s]; k < TABLE_SIZE; k += 1u << len[s])
            table[k] = (uint16_t)(s | len[s] << 8);
    }
    const uint8_t *q = p, *qend = p + nbytes;
    uint64_t acc = 0;
    unsigned nacc = 0;
    uint64_t used_bits = 0;
    for (size_t i = 0; i < n; i++) {
        while (nacc <= 56) {
            acc |= (uint64_t)(q < qend ? *q : 0) << nacc;
            q += q < qend;
            nacc += 8;
        }
        uint16_t e = table[acc & (TABLE_SIZE - 1)];
        unsigned l = e >> 8;
        out[i] = (uint8_t)e;
        acc >>= l;
        nacc -= l;
        used_bits += l;
    }
    if (used_bits > nbytes * 8) {
        *why = "a Huffman column's bit stream ends too early";
        return 0;
    }
    *pp = qend;
    return 1;
}
