/* test_column_coder.c: the entropy stage of version-2 blocks (column_coder.c), on its own.
 *
 * Columns of many shapes must decode to exactly their bytes, and the coder must pick the method
 * that suits them: a run for one repeated value, stored for random bytes, a range coder (rANS)
 * for skewed ones - well under Huffman's one bit per byte when one value dominates, which is
 * why it exists. Damaged or cut columns must be refused with a reason, never read out of bounds
 * (the suite also runs under ASan). The same for deflate columns (format version 3), whose
 * streams come from zlib.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "column_coder.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Codes and decodes in[0..n); returns the coded size and the method. */
static size_t round_trip(const uint8_t *in, size_t n, int *method)
{
    size_t cap = colcode_bound(n);
    uint8_t *coded = malloc(cap), *out = malloc(n ? n : 1);
    assert_non_null(coded);
    assert_non_null(out);
    size_t k = colcode_encode(coded, cap, in, n);
    assert_true(k > 0 && k <= cap);
    *method = coded[0];
    uint64_t raw;
    assert_true(colcode_raw_length(coded, coded + k, &raw));
    assert_int_equal(raw, n);
    const uint8_t *p = coded;
    const char *why = NULL;
    if (!colcode_decode(&p, coded + k, out, n, &why))
        fail_msg("decode failed: %s", why);
    assert_ptr_equal(p, coded + k);
    if (n)
        assert_memory_equal(out, in, n);
    free(coded);
    free(out);
    return k;
}

static void shapes_round_trip(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    uint8_t *in = calloc(n, 1);
    int method;
    assert_non_null(in);

    assert_int_equal(round_trip(in, 0, &method), 2);          /* empty: stored, 2 bytes */
    in[0] = 7;
    round_trip(in, 1, &method);

    memset(in, 0x42, n);                                      /* one value: a run */
    assert_true(round_trip(in, n, &method) < 8);
    assert_int_equal(method, COLCODE_RUN);

    for (size_t i = 0; i < n; i++)                            /* random: stored */
        in[i] = (uint8_t)next();
    assert_true(round_trip(in, n, &method) <= n + 8);
    assert_int_equal(method, COLCODE_STORED);

    memset(in, 0, n);                                         /* 1 in 1000 not zero */
    for (size_t i = 0; i < n; i += 1000)
        in[i] = (uint8_t)(1 + next() % 200);
    size_t k = round_trip(in, n, &method);
    assert_int_equal(method, COLCODE_RANS);
    print_message("1 in 1000 nonzero: %zu bytes for %zu (Huffman would need >= %zu)\n", k, n, n / 8);
    assert_true(k < n / 50);

    for (size_t i = 0; i < n; i++) {                          /* geometric */
        unsigned v = 0;
        while (v < 255 && (next() & 3))
            v++;
        in[i] = (uint8_t)v;
    }
    k = round_trip(in, n, &method);
    assert_true(method == COLCODE_RANS || method == COLCODE_HUFFMAN);
    assert_true(k < n / 2);

    for (size_t i = 0; i < n; i++)                            /* all 256 values, skewed */
        in[i] = (uint8_t)((next() % 4096) * (next() % 4096) >> 16);
    k = round_trip(in, n, &method);
    assert_true(k < n);

    for (size_t len = 2; len < 600; len += 37) {              /* small columns, two values */
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)(next() % 7 == 0);
        round_trip(in, len, &method);
    }
    free(in);
}

/* Every cut and every single-byte change of coded columns: refused with a reason or decoded to
 * some bytes of the right length, never a read outside the column. */
static void damage_is_refused(void **state)
{
    (void)state;
    enum { N = 3000 };
    uint8_t in[N], out[N];
    for (int shape = 0; shape < 3; shape++) {
        for (size_t i = 0; i < N; i++)
            in[i] = shape == 0 ? (uint8_t)(next() % 3 == 0)            /* rANS */
                  : shape == 1 ? (uint8_t)(next() % 5 ? 0 : next())    /* rANS or Huffman */
                               : (uint8_t)(i % 61 == 0 ? next() : i & 3);
        uint8_t coded[N + 64];
        size_t k = colcode_encode(coded, sizeof coded, in, N);
        assert_true(k > 0);
        unsigned refused = 0;
        for (size_t cut = 0; cut < k; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1);             /* exact size: ASan sees overreads */
            memcpy(copy, coded, cut);
            const uint8_t *p = copy;
            const char *why = NULL;
            if (!colcode_decode(&p, copy + cut, out, N, &why)) {
                assert_non_null(why);
                refused++;
            }
            free(copy);
        }
        assert_int_equal(refused, k);                            /* every cut is refused */
        for (size_t at = 0; at < k; at++) {
            for (int bit = 0; bit < 8; bit += 3) {
                uint8_t *copy = malloc(k);
                memcpy(copy, coded, k);
                copy[at] ^= (uint8_t)(1u << bit);
                const uint8_t *p = copy;
                const char *why = NULL;
                uint64_t n;
                if (colcode_raw_length(copy, copy + k, &n) && n == N &&
                    !colcode_decode(&p, copy + k, out, N, &why))
                    assert_non_null(why);
                free(copy);
            }
        }
    }
}

/* zlib's memory for the deflate tests: plain malloc here (the recorder's encoder uses its own). */
static z_stream *deflater(void)
{
    static z_stream zs;
    static int ready;
    if (!ready) {
        memset(&zs, 0, sizeof zs);
        assert_int_equal(deflateInit2(&zs, 1, Z_DEFLATED, -15, 9, Z_HUFFMAN_ONLY), Z_OK);
        ready = 1;
    }
    return &zs;
}

static size_t deflate_round_trip(const uint8_t *in, size_t n, int strategy, int *method)
{
    size_t cap = colcode_bound(n);
    uint8_t *coded = malloc(cap), *out = malloc(n ? n : 1);
    assert_non_null(coded);
    assert_non_null(out);
    size_t k = colcode_deflate(coded, cap, in, n, deflater(), strategy);
    assert_true(k > 0 && k <= cap);
    *method = coded[0];
    const uint8_t *p = coded;
    const char *why = NULL;
    if (!colcode_decode(&p, coded + k, out, n, &why))
        fail_msg("decode failed: %s", why);
    assert_ptr_equal(p, coded + k);
    if (n)
        assert_memory_equal(out, in, n);
    free(coded);
    free(out);
    return k;
}

/* Deflate columns (format version 3): several streams of COLCODE_DEFLATE_PIECE bytes, runs,
 * stored when deflate does not help. */
static void deflate_shapes_round_trip(void **state)
{
    (void)state;
    size_t n = 3 * COLCODE_DEFLATE_PIECE + 1234;
    uint8_t *in = calloc(n, 1);
    int method;
    assert_non_null(in);
    assert_int_equal(deflate_round_trip(in, 0, Z_RLE, &method), 2);
    memset(in, 9, n);
    assert_true(deflate_round_trip(in, n, Z_RLE, &method) < 8);
    assert_int_equal(method, COLCODE_RUN);
    for (size_t i = 0; i < n; i++)                            /* random: stored */
        in[i] = (uint8_t)next();
    deflate_round_trip(in, n, Z_HUFFMAN_ONLY, &method);
    assert_int_equal(method, COLCODE_STORED);
    memset(in, 0, n);                                         /* 1 in 1000 not zero */
    for (size_t i = 0; i < n; i += 1000)
        in[i] = (uint8_t)(1 + next() % 200);
    size_t k = deflate_round_trip(in, n, Z_RLE, &method);
    assert_int_equal(method, COLCODE_DEFLATE);
    assert_true(k < n / 50);
    for (size_t i = 0; i < n; i++) {                          /* geometric, both strategies */
        unsigned v = 0;
        while (v < 255 && (next() & 3))
            v++;
        in[i] = (uint8_t)v;
    }
    assert_true(deflate_round_trip(in, n, Z_HUFFMAN_ONLY, &method) < n / 2);
    assert_int_equal(method, COLCODE_DEFLATE);
    assert_true(deflate_round_trip(in, n, Z_RLE, &method) < n / 2);
    for (size_t len = 2; len < 600; len += 37) {              /* small columns */
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)(next() % 7 == 0);
        deflate_round_trip(in, len, Z_HUFFMAN_ONLY, &method);
    }
    for (size_t len = COLCODE_DEFLATE_PIECE - 1; len <= COLCODE_DEFLATE_PIECE + 1; len++) {
        for (size_t i = 0; i < len; i++)                      /* a piece boundary */
            in[i] = (uint8_t)(next() % 3);
        deflate_round_trip(in, len, Z_HUFFMAN_ONLY, &method);
        assert_int_equal(method, COLCODE_DEFLATE);
    }
    free(in);
}

/* Every cut of a deflate column is refused; single-bit changes are refused with a reason or
 * inflate to the right length, never read outside the column. */
static void deflate_damage_is_refused(void **state)
{
    (void)state;
    enum { N = COLCODE_DEFLATE_PIECE + 3000 };
    uint8_t *in = malloc(N), *out = malloc(N);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < N; i++)
        in[i] = (uint8_t)(next() % 5 ? next() % 3 : next());
    size_t cap = colcode_bound(N);
    uint8_t *coded = malloc(cap);
    size_t k = colcode_deflate(coded, cap, in, N, deflater(), Z_HUFFMAN_ONLY);
    assert_int_equal(coded[0], COLCODE_DEFLATE);
    z_stream inflater;
    memset(&inflater, 0, sizeof inflater);
    assert_int_equal(inflateInit2(&inflater, -15), Z_OK);
    for (size_t cut = 0; cut < k; cut += cut < 64 || cut > k - 64 ? 1 : 13) {
        uint8_t *copy = malloc(cut ? cut : 1);                 /* exact size: ASan sees overreads */
        memcpy(copy, coded, cut);
        const uint8_t *p = copy;
        const char *why = NULL;
        assert_false(colcode_decode_z(&p, copy + cut, out, N, &why, cut & 1 ? &inflater : NULL));
        assert_non_null(why);
        free(copy);
    }
    unsigned refused = 0, tries = 0;
    for (size_t at = 0; at < k; at += 1 + at / 16) {
        for (int bit = 0; bit < 8; bit += 3, tries++) {
            uint8_t *copy = malloc(k);
            memcpy(copy, coded, k);
            copy[at] ^= (uint8_t)(1u << bit);
            const uint8_t *p = copy;
            const char *why = NULL;
            uint64_t n;
            if (colcode_raw_length(copy, copy + k, &n) && n == N &&
                !colcode_decode_z(&p, copy + k, out, N, &why, &inflater)) {
                assert_non_null(why);
                refused++;
            }
            free(copy);
        }
    }
    print_message("deflate column: %u of %u bit flips refused\n", refused, tries);
    inflateEnd(&inflater);
    free(coded);
    free(in);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shapes_round_trip),
        cmocka_unit_test(damage_is_refused),
        cmocka_unit_test(deflate_shapes_round_trip),
        cmocka_unit_test(deflate_damage_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
