/* deflate_literals.h: a raw deflate stream (RFC 1951) that codes every byte as a literal - what
 * zlib's Z_HUFFMAN_ONLY strategy makes - written by our own code, several times faster than
 * zlib's general block writer. Any inflate reads it. Private to tracer/ (column_coder.c).
 *
 * Allocation-free (compiled into the recorder and into the reader). */
#ifndef FRAGSCOPE_DEFLATE_LITERALS_H
#define FRAGSCOPE_DEFLATE_LITERALS_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of input per deflate block: each block has a code of its own, fitted to its bytes. */
#define DEFLATE_LITERALS_BLOCK 65536

/* Writes in[0..n) (n >= 1) as one complete raw deflate stream (its last block final) into
 * out[0..cap). Returns the bytes written, or 0 when the stream would not fit in cap; out's
 * contents are then undefined. Reads nothing outside in[0..n), writes nothing outside out[0..cap). */
size_t deflate_literals(uint8_t *out, size_t cap, const uint8_t *in, size_t n);

#endif
