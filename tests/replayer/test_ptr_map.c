/* test_ptr_map.c: the replayer's traced-pointer table against a plain reference array.
 *
 * Random puts, frees and removes over a small key space (so keys collide and come back), with
 * every entry checked after each operation; tombstones must report the step of their free until
 * a purge, and memory must follow the live set when many distinct pointers come and go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include "ptr_map.h"

#define KEYS 5000

struct ref {
    int state;      /* 0 absent, 1 live, 2 freed */
    uint64_t val, size, step;
};

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t key_of(unsigned i)
{
    return 0x555555559000ull + (uint64_t)i * 16;
}

static void test_random_against_reference(void **state)
{
    (void)state;
    struct ptr_map m;
    assert_int_equal(ptr_map_init(&m), 0);
    struct ref *ref = calloc(KEYS, sizeof *ref);
    assert_non_null(ref);
    for (uint64_t step = 1; step <= 200000; step++) {
        unsigned i = (unsigned)(next_rand() % KEYS);
        uint64_t k = key_of(i);
        unsigned op = (unsigned)(next_rand() % 10);
        if (op < 5) {
            int was_live;
            struct ptr_entry old;
            struct ptr_entry *e = ptr_map_put(&m, k, step * 3, step % 1000, 0, &was_live,
                                              &old);
            assert_non_null(e);
            assert_int_equal(was_live, ref[i].state == 1);
            if (was_live)
                assert_int_equal(old.val, ref[i].val);
            ref[i] = (struct ref){1, step * 3, step % 1000, step};
        } else if (op < 9) {
            struct ptr_entry *e = ptr_map_find(&m, k);
            if (ref[i].state == 1) {
                assert_non_null(e);
                assert_int_equal(e->freed, 0);
                assert_int_equal(e->val, ref[i].val);
                assert_int_equal(e->size, ref[i].size);
                ptr_map_mark_freed(&m, e, step);
                ref[i].state = 2;
                ref[i].step = step;
            } else if (e) {
                /* Freed (a purge may have dropped it: then e is NULL and that is allowed). */
                assert_int_equal(ref[i].state, 2);
                assert_int_equal(e->freed, 1);
                assert_int_equal(e->step, ref[i].step);
            }
        } else {
            struct ptr_entry *e = ptr_map_find(&m, k);
            if (e) {
                assert_int_not_equal(ref[i].state, 0);
                ptr_map_remove(&m, e);
            }
            ref[i].state = 0;
            assert_null(ptr_map_find(&m, k));
        }
        if (step % 20000 == 0) {
            uint64_t live = 0;
            for (unsigned j = 0; j < KEYS; j++) {
                struct ptr_entry *e = ptr_map_find(&m, key_of(j));
                if (ref[j].state == 1) {
                    live++;
                    assert_non_null(e);
                    assert_int_equal(e->freed, 0);
                    assert_int_equal(e->val, ref[j].val);
                } else if (ref[j].state == 0) {
                    assert_null(e);
                } else if (e) {
                    assert_int_equal(e->freed, 1);
                }
            }
            assert_int_equal(m.live, live);
        }
    }
    free(ref);
    ptr_map_free(&m);
}

/* Millions of distinct pointers with a tiny live set: the table must stay small. */
static void test_memory_follows_live_set(void **state)
{
    (void)state;
    struct ptr_map m;
    assert_int_equal(ptr_map_init(&m), 0);
    size_t initial = ptr_map_bytes(&m);
    for (uint64_t i = 1; i <= 2000000; i++) {
        int was_live;
        uint64_t k = 0x7f0000000000ull + i * 48;
        assert_non_null(ptr_map_put(&m, k, i, 8, 0, &was_live, NULL));
        if (i > 100) {
            struct ptr_entry *e = ptr_map_find(&m, 0x7f0000000000ull + (i - 100) * 48);
            assert_non_null(e);
            ptr_map_mark_freed(&m, e, i);
        }
    }
    assert_int_equal(m.live, 100);
    assert_true(ptr_map_bytes(&m) <= 4 * initial);
    /* A recent double free is still recognised. */
    struct ptr_entry *e = ptr_map_find(&m, 0x7f0000000000ull + (2000000 - 100) * 48);
    assert_non_null(e);
    assert_int_equal(e->freed, 1);
    ptr_map_free(&m);
}

/* A large live set grows the table and keeps every entry. */
static void test_growth(void **state)
{
    (void)state;
    struct ptr_map m;
    assert_int_equal(ptr_map_init(&m), 0);
    for (uint64_t i = 1; i <= 300000; i++) {
        int was_live;
        assert_non_null(ptr_map_put(&m, i * 32, i, i, 0, &was_live, NULL));
        assert_int_equal(was_live, 0);
    }
    for (uint64_t i = 1; i <= 300000; i++) {
        struct ptr_entry *e = ptr_map_find(&m, i * 32);
        assert_non_null(e);
        assert_int_equal(e->val, i);
    }
    assert_null(ptr_map_find(&m, 0));
    assert_null(ptr_map_find(&m, 7));
    ptr_map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_memory_follows_live_set),
        cmocka_unit_test(test_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
