/* test_deflate_literals.c: our literal-only deflate writer (deflate_literals.c) and the
 * length-limited prefix codes under it (huffman_code.c).
 *
 * The writer's streams must inflate with zlib to exactly their input, whatever the input's
 * shape (one value, two values, skewed, uniform random, text-like, every length across block
 * boundaries), and be no larger than zlib's own Huffman-only stream of the same bytes by more
 * than a few header bytes per block. A cap that is one byte too small must give 0 without a
 * write past it (ASan checks the bound: the buffer is exactly cap bytes). The prefix codes must
 * be complete (Kraft's sum exactly 1), respect their length limit, and equal an unlimited
 * Huffman code's total length when the limit does not bind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "deflate_literals.h"
#include "huffman_code.h"
#include "tracegen.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    return gen_rand(&rng);
}

/* Inflates a raw deflate stream; returns the bytes produced (-1 on an error or leftovers). */
static long inflate_all(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(inflateInit2(&zs, -15), Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int rc = inflate(&zs, Z_FINISH);
    long got = rc == Z_STREAM_END && zs.avail_in == 0 ? (long)(cap - zs.avail_out) : -1;
    inflateEnd(&zs);
    return got;
}

/* zlib's own Huffman-only stream of the same bytes: its size. */
static size_t zlib_huffman_size(const uint8_t *in, size_t n)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 1, Z_DEFLATED, -15, 9, Z_HUFFMAN_ONLY), Z_OK);
    size_t cap = deflateBound(&zs, n);
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t m = cap - zs.avail_out;
    deflateEnd(&zs);
    free(out);
    return m;
}

/* Writes in[0..n) with deflate_literals and checks the stream; returns its size. */
static size_t check_stream(const uint8_t *in, size_t n)
{
    size_t cap = n + n / 2 + 1024;
    uint8_t *out = malloc(cap), *back = malloc(n + 1);
    assert_non_null(out);
    assert_non_null(back);
    size_t m = deflate_literals(out, cap, in, n);
    assert_true(m > 0 && m <= cap);
    assert_int_equal(inflate_all(out, m, back, n + 1), (long)n);
    assert_memory_equal(back, in, n);
    size_t blocks = (n + DEFLATE_LITERALS_BLOCK - 1) / DEFLATE_LITERALS_BLOCK;
    assert_true(m <= zlib_huffman_size(in, n) + 64 * blocks);
    free(out);
    free(back);
    return m;
}

enum shape { ONE_VALUE, TWO_VALUES, SKEWED, UNIFORM, TEXT, SHAPES };

static void fill(uint8_t *buf, size_t n, enum shape s)
{
    static const char words[] = "malloc free realloc calloc the heap is fragmented ";
    for (size_t i = 0; i < n; i++) {
        uint64_t r = next();
        switch (s) {
        case ONE_VALUE: buf[i] = 0x5a; break;
        case TWO_VALUES: buf[i] = r & 1 ? 7 : 200; break;
        case SKEWED: buf[i] = (uint8_t)__builtin_ctzll(r | 1ull << 40); break;
        case UNIFORM: buf[i] = (uint8_t)r; break;
        default: buf[i] = (uint8_t)words[r % (sizeof words - 1)]; break;
        }
    }
}

static void shapes_inflate_to_their_bytes(void **state)
{
    (void)state;
    static const size_t lengths[] = {1, 2, 3, 4, 5, 17, 255, 1000, 32767, 32768, 32769,
                                     65535, 65536, 65537, 150001};
    uint8_t *buf = malloc(150001);
    assert_non_null(buf);
    for (int s = 0; s < SHAPES; s++)
        for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
            fill(buf, lengths[k], (enum shape)s);
            size_t m = check_stream(buf, lengths[k]);
            /* Two values and the end-of-block symbol: codes of 1, 2 and 2 bits, so 1.5 bits per
             * byte at most, plus headers. */
            if (s == TWO_VALUES && lengths[k] >= 1000)
                assert_true(m <= lengths[k] * 3 / 16 + 64 * (lengths[k] / DEFLATE_LITERALS_BLOCK + 1));
        }
    /* Every byte value, each present: the longest codes the limit allows. */
    for (size_t i = 0; i < 70000; i++)
        buf[i] = (uint8_t)(i < 256 ? i : (size_t)__builtin_ctzll(next() | 1ull << 30));
    check_stream(buf, 70000);
    free(buf);
}

static void too_small_a_buffer_gives_zero(void **state)
{
    (void)state;
    size_t n = 40000;
    uint8_t *in = malloc(n);
    assert_non_null(in);
    for (int s = 0; s < SHAPES; s++) {
        fill(in, n, (enum shape)s);
        uint8_t *big = malloc(2 * n + 1024);
        assert_non_null(big);
        size_t m = deflate_literals(big, 2 * n + 1024, in, n);
        assert_true(m > 0);
        free(big);
        /* A buffer of exactly m + 7 bytes may still be too small for the last 8-byte store: the
         * writer either fits or says 0, never writes past. Exactly m - 1 must fail. */
        for (size_t cap = m - 1; cap <= m + 8; cap++) {
            uint8_t *out = malloc(cap);
            assert_non_null(out);
            size_t got = deflate_literals(out, cap, in, n);
            if (cap < m)
                assert_int_equal(got, 0);
            else if (got) {
                assert_int_equal(got, m);
                uint8_t *back = malloc(n);
                assert_non_null(back);
                assert_int_equal(inflate_all(out, got, back, n), (long)n);
                assert_memory_equal(back, in, n);
                free(back);
            }
            free(out);
        }
        uint8_t none[1];
        assert_int_equal(deflate_literals(none, 0, in, n), 0);
    }
    free(in);
}

/* Kraft's sum of lengths limited to max_bits, scaled to 2^max_bits. */
static uint64_t kraft(const uint8_t *len, unsigned nsym, unsigned max_bits)
{
    uint64_t k = 0;
    for (unsigned s = 0; s < nsym; s++)
        if (len[s])
            k += 1ull << (max_bits - len[s]);
    return k;
}

static void codes_are_complete_and_limited(void **state)
{
    (void)state;
    for (int round = 0; round < 300; round++) {
        unsigned nsym = 2 + (unsigned)(next() % (HUFFMAN_MAX_SYMBOLS - 1));
        unsigned max_bits = 9 + (unsigned)(next() % 7);
        uint64_t freq[HUFFMAN_MAX_SYMBOLS] = {0};
        unsigned present = 0;
        for (unsigned s = 0; s < nsym; s++) {
            /* Fibonacci-like weights make deep trees that the limit must cut. */
            uint64_t r = next();
            freq[s] = r % 3 == 0 ? 0 : round % 2 ? 1ull << (r % 40) : 1 + r % 1000;
            present += freq[s] != 0;
        }
        if (present < 2)
            freq[0] = freq[1] = 1;
        uint8_t len[HUFFMAN_MAX_SYMBOLS];
        memset(len, 0xee, sizeof len);
        huffman_lengths(freq, nsym, max_bits, len);
        for (unsigned s = 0; s < nsym; s++) {
            assert_true(len[s] <= max_bits);
            assert_true((len[s] == 0) == (freq[s] == 0));
        }
        assert_int_equal(kraft(len, nsym, max_bits), 1ull << max_bits);
        uint16_t code[HUFFMAN_MAX_SYMBOLS];
        huffman_codes(len, nsym, max_bits, code);
        /* Prefix-free: no code is the start of another (codes are bit-reversed). */
        for (unsigned a = 0; a < nsym; a++)
            for (unsigned b = 0; b < nsym && len[a]; b++)
                if (a != b && len[b] && len[b] >= len[a])
                    assert_true((code[b] & ((1u << len[a]) - 1)) != code[a]);
    }
}

static void unlimited_codes_are_optimal(void **state)
{
    (void)state;
    /* Up to 31 symbols of weights 1..100 never need 15 bits: the code must cost exactly what Huffman's algorithm gives, computed here the slow way (repeatedly joining the two
     * lightest weights; the total cost is the sum of the joined weights). */
    for (int round = 0; round < 200; round++) {
        unsigned nsym = 2 + (unsigned)(next() % 30);
        uint64_t freq[HUFFMAN_MAX_SYMBOLS] = {0}, w[64];
        for (unsigned s = 0; s < nsym; s++)
            w[s] = freq[s] = 1 + next() % 100;
        uint64_t cost = 0;
        for (unsigned m = nsym; m > 1; m--) {
            for (int pass = 0; pass < 2; pass++)       /* the two lightest to the end */
                for (unsigned i = 0; i + 1 + pass < m; i++)
                    if (w[i] < w[i + 1]) {
                        uint64_t t = w[i];
                        w[i] = w[i + 1];
                        w[i + 1] = t;
                    }
            w[m - 2] += w[m - 1];
            cost += w[m - 2];
        }
        uint8_t len[HUFFMAN_MAX_SYMBOLS];
        huffman_lengths(freq, nsym, 15, len);
        uint64_t got = 0;
        for (unsigned s = 0; s < nsym; s++)
            got += freq[s] * len[s];
        assert_int_equal(got, cost);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shapes_inflate_to_their_bytes),
        cmocka_unit_test(too_small_a_buffer_gives_zero),
        cmocka_unit_test(codes_are_complete_and_limited),
        cmocka_unit_test(unlimited_codes_are_optimal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
