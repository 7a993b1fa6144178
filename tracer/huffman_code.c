/* huffman_code.c: length-limited canonical prefix codes (see huffman_code.h).
 *
 * Lengths come from the two-queue construction: the symbols sorted by ascending frequency are
 * one queue, the internal nodes (made in ascending order of weight) the other, and each step
 * joins the two lightest heads. A node's depth is its parent's plus one. Lengths above the limit
 * are cut to it, which makes Kraft's sum exceed 1; then, one unit at a time, a leaf at the limit
 * is given up and the deepest shorter leaf is split in two, until the sum is exactly 1. The
 * longest lengths go to the rarest symbols. Sorting packs (frequency, symbol) into one key and
 * merge-sorts the keys, so a deflate block's 257 symbols cost a few thousand steps.
 */
#include <string.h>
#include "huffman_code.h"

#define SYMBOL_BITS 9                     /* a packed sort key: frequency << 9 | symbol */
#define MAX_NODES (2 * HUFFMAN_MAX_SYMBOLS)

/* Sorts keys[0..n) ascending (bottom-up merge sort through tmp). */
static void sort_keys(uint64_t *keys, uint64_t *tmp, unsigned n)
{
    uint64_t *a = keys, *b = tmp;
    for (unsigned width = 1; width < n; width *= 2) {
        for (unsigned lo = 0; lo < n; lo += 2 * width) {
            unsigned mid = lo + width < n ? lo + width : n;
            unsigned hi = lo + 2 * width < n ? lo + 2 * width : n;
            unsigned i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                b[k++] = a[i] <= a[j] ? a[i++] : a[j++];
            while (i < mid)
                b[k++] = a[i++];
            while (j < hi)
                b[k++] = a[j++];
        }
        uint64_t *t = a;
        a = b;
        b = t;
    }
    if (a != keys)
        memcpy(keys, a, n * sizeof *keys);
}

void huffman_lengths(const uint64_t *freq, unsigned nsym, unsigned max_bits, uint8_t *len)
{
    uint64_t keys[HUFFMAN_MAX_SYMBOLS], tmp[HUFFMAN_MAX_SYMBOLS];
    unsigned n = 0;
    for (unsigned s = 0; s < nsym; s++)
        if (freq[s])
            keys[n++] = freq[s] << SYMBOL_BITS | s;
    if (n < 2)
        return;
    sort_keys(keys, tmp, n);
    uint64_t w[MAX_NODES];
    int16_t parent[MAX_NODES];
    for (unsigned i = 0; i < n; i++)
        w[i] = keys[i] >> SYMBOL_BITS;
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
    uint8_t depth[MAX_NODES];
    depth[next - 1] = 0;                  /* the root */
    for (int i = (int)next - 2; i >= 0; i--)
        depth[i] = (uint8_t)(depth[parent[i]] + 1);
    unsigned count[64] = {0};
    for (unsigned i = 0; i < n; i++)
        count[depth[i] < 63 ? depth[i] : 63]++;
    for (unsigned d = max_bits + 1; d < 64; d++) {
        count[max_bits] += count[d];
        count[d] = 0;
    }
    uint64_t kraft = 0, full = 1ull << max_bits;
    for (unsigned d = 1; d <= max_bits; d++)
        kraft += (uint64_t)count[d] << (max_bits - d);
    while (kraft > full) {
        count[max_bits]--;
        for (unsigned d = max_bits - 1; d > 0; d--) {
            if (count[d]) {
                count[d]--;
                count[d + 1] += 2;
                break;
            }
        }
        kraft--;
    }
    memset(len, 0, nsym);
    unsigned i = 0;
    for (unsigned d = max_bits; d >= 1; d--)
        for (unsigned c = 0; c < count[d]; c++)
            len[keys[i++] & ((1u << SYMBOL_BITS) - 1)] = (uint8_t)d;
}

void huffman_codes(const uint8_t *len, unsigned nsym, unsigned max_bits, uint16_t *code)
{
    unsigned count[16] = {0}, next[17];
    for (unsigned s = 0; s < nsym; s++)
        count[len[s]]++;
    count[0] = 0;
    unsigned c = 0;
    for (unsigned d = 1; d <= max_bits; d++) {
        c = (c + count[d - 1]) << 1;
        next[d] = c;
    }
    for (unsigned s = 0; s < nsym; s++) {
        if (!len[s])
            continue;
        unsigned v = next[len[s]]++, r = 0;
        for (unsigned b = 0; b < len[s]; b++)
            r |= ((v >> b) & 1u) << (len[s] - 1 - b);
        code[s] = (uint16_t)r;
    }
}
