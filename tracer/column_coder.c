/* column_coder.c: canonical Huffman coding of one column of bytes (see column_coder.h).
 *
 * A coded column is: a method byte, the raw length (varint), then for Huffman the number of
 * code lengths given (one byte: count - 1), the 4-bit code length of each byte value from 0
 * (low nibble first; 0 = absent), the bit stream's length (varint) and the bit stream; for
 * stored, the bytes; for a run, the one byte value. Codes are canonical (shorter first, then by
 * byte value), at most 12 bits, and written least significant bit first with each code's bits
 * reversed, as deflate does, so a decoder peeks 12 bits and finds the symbol in one table.
 *
 * The encoder counts the bytes, builds optimal code lengths (two-queue Huffman construction),
 * caps them at 12 bits by moving codes down the tree until the lengths again form a complete
 * code, and keeps whichever of Huffman and stored is smaller. Cost: a counting pass and a
 * table-driven coding pass (a few ns per byte), plus a fixed ~10 us per column for the tables.
 */
#include <string.h>
#include "column_coder.h"
#include "trace_wire.h"

#define NSYM 256
#define TABLE_SIZE (1u << COLCODE_MAX_BITS)

/* ---- code lengths ---- */

/* Sorts symbols by ascending frequency (a counting sort would need the range; 256 is small). */
static void sort_by_freq(uint16_t *sym, const uint64_t *freq, unsigned n)
{
    for (unsigned i = 1; i < n; i++) {
        uint16_t s = sym[i];
        unsigned j = i;
        while (j > 0 && (freq[sym[j - 1]] > freq[s] ||
                         (freq[sym[j - 1]] == freq[s] && sym[j - 1] > s))) {
            sym[j] = sym[j - 1];
            j--;
        }
        sym[j] = s;
    }
}

/* Fills len[] (0 for absent symbols) with lengths of a complete prefix code of at most
 * COLCODE_MAX_BITS bits, for n >= 2 present symbols. */
static void build_lengths(const uint64_t *freq, uint8_t *len)
{
    uint16_t sym[NSYM];
    unsigned n = 0;
    for (unsigned s = 0; s < NSYM; s++) {
        len[s] = 0;
        if (freq[s])
            sym[n++] = (uint16_t)s;
    }
    if (n < 2)
        return;
    sort_by_freq(sym, freq, n);
    /* Two queues: leaves in ascending order, internal nodes in creation (ascending) order. */
    uint64_t w[2 * NSYM];
    int16_t parent[2 * NSYM];
    for (unsigned i = 0; i < n; i++)
        w[i] = freq[sym[i]];
    unsigned leaf = 0, node = n, next = n;
    for (unsigned k = 0; k + 1 < n; k++) {
        unsigned pick[2];
        for (int j = 0; j < 2; j++) {
            if (leaf < n && (node >= next || w[leaf] <= w[node]))
                pick[j] = leaf++;
            else
                pick[j] = node++;
        }
        w[next] = w[pick[0]] + w[pick[1]];
        parent[pick[0]] = parent[pick[1]] = (int16_t)next;
        next++;
    }
    /* Depths: the root is next - 1. */
    uint8_t depth[2 * NSYM];
    depth[(next - 1) & (2 * NSYM - 1)] = 0;
    for (int i = (int)next - 2; i >= 0; i--)
        depth[i] = (uint8_t)(depth[parent[i]] + 1);
    unsigned count[64] = {0};
    for (unsigned i = 0; i < n; i++)
        count[depth[i] < 63 ? depth[i] : 63]++;
    /* Cap the lengths: everything deeper goes to the limit, then codes move one level down
     * (a leaf at the limit given up, a shorter one split in two) until Kraft's sum is exact. */
    for (unsigned d = COLCODE_MAX_BITS + 1; d < 64; d++) {
        count[COLCODE_MAX_BITS] += count[d];
        count[d] = 0;
    }
    uint64_t kraft = 0;
    for (unsigned d = 1; d <= COLCODE_MAX_BITS; d++)
        kraft += (uint64_t)count[d] << (COLCODE_MAX_BITS - d);
    while (kraft > TABLE_SIZE) {
        count[COLCODE_MAX_BITS]--;
        for (unsigned d = COLCODE_MAX_BITS - 1; d > 0; d--) {
            if (count[d]) {
                count[d]--;
                count[d + 1] += 2;
                break;
            }
        }
        kraft--;
    }
    /* Longest codes to the rarest symbols (sym[] is ascending by frequency). */
    unsigned i = 0;
    for (unsigned d = COLCODE_MAX_BITS; d >= 1; d--)
        for (unsigned c = 0; c < count[d]; c++)
            len[sym[i++]] = (uint8_t)d;
}

/* Canonical codes, bit-reversed for LSB-first output. */
static void assign_codes(const uint8_t *len, uint16_t *code)
{
    unsigned count[COLCODE_MAX_BITS + 1] = {0}, next[COLCODE_MAX_BITS + 2];
    for (unsigned s = 0; s < NSYM; s++)
        count[len[s]]++;
    count[0] = 0;
    unsigned c = 0;
    for (unsigned d = 1; d <= COLCODE_MAX_BITS; d++) {
        c = (c + count[d - 1]) << 1;
        next[d] = c;
    }
    for (unsigned s = 0; s < NSYM; s++) {
        if (!len[s])
            continue;
        unsigned v = next[len[s]]++, r = 0;
        for (unsigned b = 0; b < len[s]; b++)
            r |= ((v >> b) & 1u) << (len[s] - 1 - b);
        code[s] = (uint16_t)r;
    }
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
    if (present < 2 || huff >= n)
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

/* ---- decoding ---- */

int colcode_raw_length(const uint8_t *p, const uint8_t *end, uint64_t *n)
{
    if (p >= end || *p > COLCODE_RUN)
        return 0;
    p++;
    return wire_get_varint(&p, end, n);
}

int colcode_decode(const uint8_t **pp, const uint8_t *end, uint8_t *out, size_t n, const char **why)
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
