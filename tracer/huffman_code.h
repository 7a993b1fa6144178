/* huffman_code.h: length-limited canonical prefix codes over a small alphabet, shared by the
 * column coder's own Huffman method and the literal-only deflate writer. Private to tracer/.
 *
 * Allocation-free (compiled into the recorder and into the reader). */
#ifndef FRAGSCOPE_HUFFMAN_CODE_H
#define FRAGSCOPE_HUFFMAN_CODE_H

#include <stdint.h>

#define HUFFMAN_MAX_SYMBOLS 288     /* deflate's literal/length alphabet is the largest user */

/* Fills len[0..nsym) with the code lengths of a complete prefix code of at most max_bits bits
 * (0 for symbols of frequency 0), as short in total as the limit allows: an optimal (Huffman)
 * code, then every code deeper than max_bits raised to it and shorter ones moved one level down
 * until the lengths are complete again. Symbols are ranked by frequency, then by value, so the
 * result depends on nothing else. Needs at least two symbols of nonzero frequency (otherwise
 * len[] is left untouched) and nsym <= HUFFMAN_MAX_SYMBOLS, 2^max_bits >= nsym, max_bits <= 15. */
void huffman_lengths(const uint64_t *freq, unsigned nsym, unsigned max_bits, uint8_t *len);

/* The canonical codes for len[0..nsym) (RFC 1951, 3.2.2: shorter codes first, then by symbol
 * value), each with its bits reversed so that a writer emitting the least significant bit first
 * sends the code's first bit first, as deflate does. code[s] is undefined where len[s] = 0. */
void huffman_codes(const uint8_t *len, unsigned nsym, unsigned max_bits, uint16_t *code);

#endif
