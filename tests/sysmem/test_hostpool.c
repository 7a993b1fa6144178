/* test_hostpool.c: the host object pools under the simulated address space (allocator/hostpool.c):
 * objects are zeroed, aligned, never overlap, are reused after a free (zeroed again), survive
 * slabs filling up and emptying, and big tables come back zeroed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hostpool.h"

#define N 30000   /* several 2 MiB slabs of 512-byte objects */

static void fill(uint64_t *o, size_t words, uint64_t v)
{
    for (size_t i = 0; i < words; i++)
        o[i] = v + i;
}

static int holds(const uint64_t *o, size_t words, uint64_t v)
{
    for (size_t i = 0; i < words; i++)
        if (o[i] != v + i)
            return 0;
    return 1;
}

static int zero(const uint64_t *o, size_t words)
{
    for (size_t i = 0; i < words; i++)
        if (o[i])
            return 0;
    return 1;
}

static void objects_are_zeroed_distinct_and_reused(void **state)
{
    (void)state;
    const size_t size = 512, words = size / 8;
    struct host_pool *p = host_pool_new(size);
    assert_non_null(p);
    uint64_t **o = calloc(N, sizeof *o);
    assert_non_null(o);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            if (o[i])
                continue;
            o[i] = host_pool_alloc(p);
            assert_non_null(o[i]);
            assert_int_equal((uintptr_t)o[i] % 16, 0);
            assert_true(zero(o[i], words));
            fill(o[i], words, (uint64_t)i << 20);
        }
        for (int i = 0; i < N; i++)       /* nothing overwrote anything */
            assert_true(holds(o[i], words, (uint64_t)i << 20));
        uint64_t x = 7 + (uint64_t)round;
        for (int i = 0; i < N; i++) {     /* free about half, in no order */
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            if ((x >> 40) & 1) {
                host_pool_free(p, o[i]);
                o[i] = NULL;
            }
        }
    }
    for (int i = 0; i < N; i++)           /* every slab empties */
        host_pool_free(p, o[i]);
    for (int i = 0; i < N; i++) {
        o[i] = host_pool_alloc(p);
        assert_non_null(o[i]);
        assert_true(zero(o[i], words));
    }
    host_pool_delete(p);                  /* with objects still out */
    free(o);
}

static void odd_sizes_and_big_tables(void **state)
{
    (void)state;
    struct host_pool *p = host_pool_new(2056);
    assert_non_null(p);
    void *a = host_pool_alloc(p), *b = host_pool_alloc(p);
    assert_non_null(a);
    assert_non_null(b);
    assert_true((char *)b >= (char *)a + 2056 || (char *)a >= (char *)b + 2056);
    memset(a, 0xff, 2056);
    memset(b, 0xee, 2056);
    host_pool_free(p, a);
    a = host_pool_alloc(p);
    assert_true(zero(a, 2056 / 8));
    host_pool_delete(p);
    assert_null(host_pool_new(0));
    assert_null(host_pool_new(1 << 20));
    for (size_t bytes = 4096; bytes <= ((size_t)5 << 20); bytes *= 4) {
        uint64_t *t = host_huge_calloc(bytes);
        assert_non_null(t);
        assert_true(zero(t, bytes / 8));
        fill(t, bytes / 8, 1);
        host_huge_free(t, bytes);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(objects_are_zeroed_distinct_and_reused),
        cmocka_unit_test(odd_sizes_and_big_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
