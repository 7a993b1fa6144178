/* test_chunkmap.c: the model's host-side chunk table against a plain array: inserts, updates,
 * deletions (backward shift) and growth keep every key findable with its value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "chunkmap.h"

#define N 20000

static void test_random_ops(void **state)
{
    (void)state;
    struct chunkmap m;
    assert_int_equal(cm_init(&m), 0);
    static uint64_t val[N];
    uint64_t x = 99, live = 0;
    for (int step = 0; step < 200000; step++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t k = (x >> 33) % N;
        uint64_t key = 0x555555559000ull + k * 48;   /* chunk-like keys, 16-aligned */
        if (val[k] && (x >> 20) % 3 == 0) {
            cm_del(&m, key);
            val[k] = 0;
            live--;
        } else {
            uint64_t v = cm_pack((enum chunk_state)((x >> 10) % CS_NSTATES), (uint32_t)(x >> 50) & 0xffff,
                                 ((x >> 24) & 0xfffff) << 4);
            if (!val[k])
                live++;
            assert_int_equal(cm_put(&m, key, v), 0);
            val[k] = v | 1ull << 63;                 /* mark present even when v == 0 */
        }
        assert_int_equal(m.count, live);
    }
    for (uint64_t k = 0; k < N; k++) {
        struct cm_entry *e = cm_find(&m, 0x555555559000ull + k * 48);
        if (val[k]) {
            assert_non_null(e);
            assert_int_equal(e->val, val[k] & ~(1ull << 63));
        } else {
            assert_null(e);
        }
    }
    cm_free(&m);
}

static void test_pack(void **state)
{
    (void)state;
    uint64_t v = cm_pack(CS_LARGE, 513, (uint64_t)1 << 46);
    assert_int_equal(cm_state(v), CS_LARGE);
    assert_int_equal(cm_arena(v), 513);
    assert_int_equal(cm_size(v), (uint64_t)1 << 46);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_ops),
        cmocka_unit_test(test_pack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
