/* deflate_literals.c: a raw deflate stream of literals only (see deflate_literals.h).
 *
 * Each block of up to DEFLATE_LITERALS_BLOCK input bytes is a dynamic-Huffman block (BTYPE 2):
 *   - a histogram of the block's bytes (four tables, so that runs of one value do not wait on
 *     each other's increments), plus one end-of-block symbol (256);
 *   - code lengths for the 257 literal/length symbols, at most 15 bits (huffman_code.c); the two
 *     distance codes deflate wants declared (zlib declares two as well) get 1 bit each and are
 *     never used;
 *   - the 259 lengths, run-length coded with symbols 16 (repeat the last length 3-6 times), 17
 *     (3-10 zeros) and 18 (11-138 zeros), and those symbols Huffman coded with at most 7 bits;
 *     the header sends that code's lengths, 3 bits each, in deflate's permuted order, trailing
 *     zeros left out;
 *   - the bytes' codes, then the end-of-block code.
 * The block's exact size in bits is known from the histogram before anything is written, so a
 * stream that would not fit is given up (0) without writing past cap. Bits are gathered least
 * significant first in a 64-bit word and stored 8 bytes at a time, four codes per store when
 * no byte's code is longer than 14 bits (else three); the store may write up to 7 bytes past the last whole byte, which the size check keeps inside cap.
 */
#include <string.h>
#include "deflate_literals.h"
#include "huffman_code.h"

#define LITERALS 257                  /* byte values and end-of-block */
#define END_OF_BLOCK 256
#define DISTANCES 2
#define LENGTHS (LITERALS + DISTANCES)
#define CLEN_SYMBOLS 19
#define MAX_BITS 15
#define MAX_CLEN_BITS 7

static const uint8_t clen_order[CLEN_SYMBOLS] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                                 11, 4, 12, 3, 13, 2, 14, 1, 15};

struct bit_writer {
    uint8_t *q;
    uint64_t acc;
    unsigned n;                        /* bits in acc, < 8 between calls */
};

static inline void store64(uint8_t *q, uint64_t v)
{
    memcpy(q, &v, 8);                  /* little-endian: the byte order deflate's bits need */
}

/* Adds len (<= 16) bits; at most 7 + 3 * 16 bits gather before a flush. */
static inline void bits_add(struct bit_writer *b, uint32_t v, unsigned len)
{
    b->acc |= (uint64_t)v << b->n;
    b->n += len;
}

static inline void bits_flush(struct bit_writer *b)
{
    store64(b->q, b->acc);
    b->q += b->n >> 3;
    b->acc >>= b->n & ~7u;
    b->n &= 7;
}

/* The run-length coded code lengths: sym[] and their extra bits; returns how many. */
static unsigned code_length_runs(const uint8_t *len, uint8_t *sym, uint8_t *extra)
{
    unsigned k = 0;
    for (unsigned i = 0; i < LENGTHS;) {
        unsigned v = len[i], run = 1;
        while (i + run < LENGTHS && len[i + run] == v)
            run++;
        i += run;
        if (v == 0) {
            while (run >= 11) {
                unsigned r = run < 138 ? run : 138;
                sym[k] = 18, extra[k++] = (uint8_t)(r - 11);
                run -= r;
            }
            if (run >= 3) {
                sym[k] = 17, extra[k++] = (uint8_t)(run - 3);
                run = 0;
            }
        } else {
            sym[k] = (uint8_t)v, extra[k++] = 0;
            run--;
            while (run >= 3) {
                unsigned r = run < 6 ? run : 6;
                sym[k] = 16, extra[k++] = (uint8_t)(r - 3);
                run -= r;
            }
        }
        while (run > 0) {
            sym[k] = (uint8_t)v, extra[k++] = 0;
            run--;
        }
    }
    return k;
}

static const uint8_t clen_extra_bits[CLEN_SYMBOLS] = {[16] = 2, [17] = 3, [18] = 7};

/* Lengths for a code over freq[0..nsym) that has at least two codes, even when fewer than two
 * symbols occur (inflate wants complete codes): a lone symbol is paired with another. */
static void lengths_of(const uint64_t *freq, unsigned nsym, unsigned max_bits, uint8_t *len)
{
    unsigned present = 0, which = 0;
    for (unsigned s = 0; s < nsym; s++)
        if (freq[s])
            present++, which = s;
    if (present >= 2) {
        huffman_lengths(freq, nsym, max_bits, len);
        return;
    }
    memset(len, 0, nsym);
    len[which] = 1;
    len[which == 0 ? 1 : 0] = 1;
}

/* Writes one block of in[0..n); returns 0 if it would pass `end`. */

/* Appends one code (entry: code in the low 16 bits, length above) to the bit accumulator. */
static inline void put_entry(uint64_t *acc, unsigned *nb, uint32_t e)
{
    *acc |= (uint64_t)(e & 0xffff) << *nb;
    *nb += e >> 16;
}

/* Stores the accumulator's whole bytes at *q (8 bytes written, the whole ones kept). */
static inline void store_whole_bytes(uint8_t **q, uint64_t *acc, unsigned *nb)
{
    store64(*q, *acc);
    *q += *nb >> 3;
    *acc >>= *nb & ~7u;
    *nb &= 7;
}
static int write_block(struct bit_writer *b, const uint8_t *end, const uint8_t *in, size_t n,
                       int final)
{
    uint32_t h[4][256];
    memset(h, 0, sizeof h);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        h[0][in[i]]++;
        h[1][in[i + 1]]++;
        h[2][in[i + 2]]++;
        h[3][in[i + 3]]++;
    }
    for (; i < n; i++)
        h[0][in[i]]++;
    uint64_t freq[LITERALS];
    for (unsigned s = 0; s < 256; s++)
        freq[s] = (uint64_t)h[0][s] + h[1][s] + h[2][s] + h[3][s];
    freq[END_OF_BLOCK] = 1;

    uint8_t len[LENGTHS];
    lengths_of(freq, LITERALS, MAX_BITS, len);
    len[LITERALS] = len[LITERALS + 1] = 1;          /* the two unused distance codes */

    uint8_t rsym[LENGTHS], rextra[LENGTHS];
    unsigned nruns = code_length_runs(len, rsym, rextra);
    uint64_t cfreq[CLEN_SYMBOLS] = {0};
    for (unsigned k = 0; k < nruns; k++)
        cfreq[rsym[k]]++;
    uint8_t clen[CLEN_SYMBOLS];
    lengths_of(cfreq, CLEN_SYMBOLS, MAX_CLEN_BITS, clen);
    unsigned hclen = CLEN_SYMBOLS;
    while (hclen > 4 && clen[clen_order[hclen - 1]] == 0)
        hclen--;

    /* The block's size in bits, known before writing it. */
    uint64_t bits = 3 + 5 + 5 + 4 + 3 * (uint64_t)hclen;
    for (unsigned k = 0; k < nruns; k++)
        bits += clen[rsym[k]] + clen_extra_bits[rsym[k]];
    for (unsigned s = 0; s < LITERALS; s++)
        bits += freq[s] * len[s];
    if ((uint64_t)(end - b->q) < (b->n + bits + 7) / 8 + 8)
        return 0;

    uint16_t ccode[CLEN_SYMBOLS], code[LITERALS];
    huffman_codes(clen, CLEN_SYMBOLS, MAX_CLEN_BITS, ccode);
    huffman_codes(len, LITERALS, MAX_BITS, code);

    bits_add(b, final ? 1 : 0, 1);
    bits_add(b, 2, 2);                               /* dynamic Huffman codes */
    bits_add(b, LITERALS - 257, 5);
    bits_add(b, DISTANCES - 1, 5);
    bits_add(b, hclen - 4, 4);
    bits_flush(b);
    for (unsigned k = 0; k < hclen; k++) {
        bits_add(b, clen[clen_order[k]], 3);
        bits_flush(b);
    }
    for (unsigned k = 0; k < nruns; k++) {
        bits_add(b, ccode[rsym[k]], clen[rsym[k]]);
        bits_add(b, rextra[k], clen_extra_bits[rsym[k]]);
        bits_flush(b);
    }

    /* The bytes: code and length side by side, four (or three) codes per store. */
    uint32_t entry[256];
    for (unsigned s = 0; s < 256; s++)
        entry[s] = (uint32_t)code[s] | (uint32_t)len[s] << 16;
    uint8_t *q = b->q;
    uint64_t acc = b->acc;
    unsigned nb = b->n;
    unsigned longest = 0;
    for (unsigned s = 0; s < 256; s++)
        longest = len[s] > longest ? len[s] : longest;
    i = 0;
    if (longest <= 14) {                     /* 7 + 4 * 14 bits fit: four codes per store */
        for (; i + 4 <= n; i += 4) {
            uint32_t e0 = entry[in[i]], e1 = entry[in[i + 1]], e2 = entry[in[i + 2]],
                     e3 = entry[in[i + 3]];
            put_entry(&acc, &nb, e0);
            put_entry(&acc, &nb, e1);
            put_entry(&acc, &nb, e2);
            put_entry(&acc, &nb, e3);
            store_whole_bytes(&q, &acc, &nb);
        }
    }
    for (; i + 3 <= n; i += 3) {              /* 7 + 3 * 15 bits fit */
        uint32_t e0 = entry[in[i]], e1 = entry[in[i + 1]], e2 = entry[in[i + 2]];
        put_entry(&acc, &nb, e0);
        put_entry(&acc, &nb, e1);
        put_entry(&acc, &nb, e2);
        store_whole_bytes(&q, &acc, &nb);
    }
    b->q = q, b->acc = acc, b->n = nb;
    for (; i < n; i++) {
        bits_add(b, code[in[i]], len[in[i]]);
        bits_flush(b);
    }
    bits_add(b, code[END_OF_BLOCK], len[END_OF_BLOCK]);
    bits_flush(b);
    return 1;
}

size_t deflate_literals(uint8_t *out, size_t cap, const uint8_t *in, size_t n)
{
    struct bit_writer b = {out, 0, 0};
    const uint8_t *end = out + cap;
    for (size_t at = 0; at < n; at += DEFLATE_LITERALS_BLOCK) {
        size_t piece = n - at < DEFLATE_LITERALS_BLOCK ? n - at : DEFLATE_LITERALS_BLOCK;
        if (!write_block(&b, end, in + at, piece, at + piece >= n))
            return 0;
    }
    if (b.n > 0) {                                   /* the last partial byte */
        *b.q++ = (uint8_t)b.acc;
    }
    return (size_t)(b.q - out);
}
