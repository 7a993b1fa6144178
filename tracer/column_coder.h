/* column_coder.h: the entropy stage of version-2 blocks (BLK3): one column of bytes, coded on
 * its own with zlib's deflate (format version 3), or with a range coder (rANS) or a canonical
 * Huffman code of its byte values (or stored, or as one repeated value). Private to tracer/; FORMAT.md ("Coded columns") is the byte-level description.
 *
 * Allocation-free and bounded by its input: compiled into the recorder and into the reader.
 */
#ifndef FRAGSCOPE_COLUMN_CODER_H
#define FRAGSCOPE_COLUMN_CODER_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#define COLCODE_STORED 0
#define COLCODE_HUFFMAN 1
#define COLCODE_RUN 2
#define COLCODE_RANS 3
#define COLCODE_DEFLATE 4            /* format version 3: a raw deflate stream (RFC 1951) */
#define COLCODE_DEFLATE_PIECE 65024   /* raw bytes per deflate stream (the last: the rest) */
#define COLCODE_MAX_BITS 12          /* longest code: one 4096-entry table decodes */

/* Bytes a coded column of n raw bytes may take at most (stored, plus its small header). */
static inline size_t colcode_bound(size_t n)
{
    return n + 16;
}

/* Codes in[0..n) into out (cap >= colcode_bound(n)); returns the bytes written. */
size_t colcode_encode(uint8_t *out, size_t cap, const uint8_t *in, size_t n);

/* The same, always stored. */
size_t colcode_store(uint8_t *out, size_t cap, const uint8_t *in, size_t n);

/* Codes in[0..n) with deflate through zs (raw deflate, windowBits -15, set up by the caller
 * with its own allocation functions), at level 1 with `strategy`: Z_HUFFMAN_ONLY (written by
 * deflate_literals.c, not zlib; zs is not used), Z_RLE, or Z_DEFAULT_STRATEGY (level 1's string
 * search):
 * a run when every byte is the same, stored when deflate would not be smaller. Returns the bytes
 * written (cap >= colcode_bound(n)). */
size_t colcode_deflate(uint8_t *out, size_t cap, const uint8_t *in, size_t n, z_stream *zs,
                       int strategy);

/* The raw length of the coded column at [p, end), without decoding it. 0 = malformed. */
int colcode_raw_length(const uint8_t *p, const uint8_t *end, uint64_t *n);

/* Decodes the coded column at *p (advancing *p past it) into out, which must hold exactly its
 * raw length (colcode_raw_length). Returns 1, or 0 with *why set when the column is malformed:
 * a bad method, lengths that do not form a complete prefix code, a bit stream that runs out. */
int colcode_decode(const uint8_t **p, const uint8_t *end, uint8_t *out, size_t n, const char **why);

/* colcode_decode with an inflate stream to reuse for deflate columns (inflateInit2(zs, -15)
 * done by the caller); colcode_decode makes one of its own for each such column. */
int colcode_decode_z(const uint8_t **p, const uint8_t *end, uint8_t *out, size_t n,
                     const char **why, z_stream *zs);

#endif
