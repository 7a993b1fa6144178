/* test_ptr_map.c: the replayer's traced-pointer table against a plain reference array.
 *
 * Random puts, frees and removes over a small key space (so keys collide and come back), with
 * every entry checked after each operation (values and sizes that do not pack into a slot
 * included); tombstones must report the step of their free until a purge; a stream of new
 * pointers with a bounded live set purges the tombstones in place many times and must keep
 * every live entry; memory must follow the live set when many distinct pointers come and go.
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

/* Values and sizes that mostly pack into the slot's word, and sometimes do not. */
static uint64_t value_of(uint64_t step)
{
    return step % 13 == 0 ? 0xffff800000000000ull + step * 16 : 0x7ff000000000ull + step * 16;
}

static uint64_t size_of(uint64_t step)
{
    return step % 11 == 0 ? (1ull << 20) + step : step % 32767;
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
            uint64_t old_val = 0, old_size = 0;
            uint64_t val = value_of(step), size = size_of(step);
            struct ptr_entry *e = ptr_map_put(&m, k, val, size, &was_live, &old_val, &old_size);
            assert_non_null(e);
            assert_int_equal(was_live, ref[i].state == 1);
            if (was_live) {
                assert_int_equal(old_val, ref[i].val);
                assert_int_equal(old_size, ref[i].size);
            }
            ref[i] = (struct ref){1, val, size, step};
        } else if (op == 5) {
            /* A realloc that the model failed: the value changes, the size stays. */
            struct ptr_entry *e = ptr_map_find(&m, k);
            if (ref[i].state == 1) {
                assert_non_null(e);
                uint64_t val = value_of(step + 7);
                assert_int_equal(ptr_map_set_val(&m, e, val), 0);
                ref[i].val = val;
                assert_int_equal(ptr_entry_size(&m, e), ref[i].size);
            }
        } else if (op < 9) {
            struct ptr_entry *e = ptr_map_find(&m, k);
            if (ref[i].state == 1) {
                assert_non_null(e);
                assert_int_equal(ptr_entry_freed(e), 0);
                assert_int_equal(ptr_entry_val(&m, e), ref[i].val);
                assert_int_equal(ptr_entry_size(&m, e), ref[i].size);
                ptr_map_mark_freed(&m, e, step);
                ref[i].state = 2;
                ref[i].step = step;
            } else if (e) {
                /* Freed (a purge may have dropped it: then e is NULL and that is allowed). */
                assert_int_equal(ref[i].state, 2);
                assert_int_equal(ptr_entry_freed(e), 1);
                assert_int_equal(ptr_entry_step(e), ref[i].step);
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
                    assert_int_equal(ptr_entry_freed(e), 0);
                    assert_int_equal(ptr_entry_val(&m, e), ref[j].val);
                    assert_int_equal(ptr_entry_size(&m, e), ref[j].size);
                } else if (ref[j].state == 0) {
                    assert_null(e);
                } else if (e) {
                    assert_int_equal(ptr_entry_freed(e), 1);
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
        assert_non_null(ptr_map_put(&m, k, i, 8, &was_live, NULL, NULL));
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
    assert_int_equal(ptr_entry_freed(e), 1);
    assert_int_equal(ptr_entry_step(e), 2000000);
    ptr_map_free(&m);
}

/* New pointers all the time, a live set of a few thousand freed in random order: the table
 * purges its tombstones in place again and again and must keep every live entry and every
 * tombstone it still has right. */
static void test_purges_keep_live_entries(void **state)
{
    (void)state;
    enum { N = 400000, LIVE = 3000 };
    struct ptr_map m;
    assert_int_equal(ptr_map_init(&m), 0);
    struct ref *ref = calloc(N, sizeof *ref);
    uint32_t *live = calloc(LIVE + 1, sizeof *live);
    assert_non_null(ref);
    assert_non_null(live);
    unsigned nlive = 0;
    size_t initial = ptr_map_bytes(&m);
    for (uint64_t i = 0; i < N; i++) {
        int was_live;
        uint64_t val = value_of(i + 1), size = size_of(i + 1);
        assert_non_null(ptr_map_put(&m, key_of((unsigned)i), val, size, &was_live, NULL, NULL));
        assert_int_equal(was_live, 0);
        ref[i] = (struct ref){1, val, size, 0};
        live[nlive++] = (uint32_t)i;
        if (nlive > LIVE) {
            unsigned pick = (unsigned)(next_rand() % nlive);
            uint32_t k = live[pick];
            live[pick] = live[--nlive];
            struct ptr_entry *e = ptr_map_find(&m, key_of(k));
            assert_non_null(e);
            assert_int_equal(ptr_entry_freed(e), 0);
            assert_int_equal(ptr_entry_val(&m, e), ref[k].val);
            assert_int_equal(ptr_entry_size(&m, e), ref[k].size);
            ptr_map_mark_freed(&m, e, i + 1);
            ref[k].state = 2;
            ref[k].step = i + 1;
        }
        if (i % 50000 == 49999) {
            for (unsigned j = 0; j <= i; j++) {
                struct ptr_entry *e = ptr_map_find(&m, key_of(j));
                if (ref[j].state == 1) {
                    assert_non_null(e);
                    assert_int_equal(ptr_entry_freed(e), 0);
                    assert_int_equal(ptr_entry_val(&m, e), ref[j].val);
                    assert_int_equal(ptr_entry_size(&m, e), ref[j].size);
                } else if (e) {
                    assert_int_equal(ptr_entry_freed(e), 1);
                    assert_int_equal(ptr_entry_step(e), ref[j].step);
                }
            }
            assert_int_equal(m.live, nlive);
        }
    }
    /* 3000 live entries and as many tombstones at most: a table of 8192 or 16384 slots, and
     * the spill table for the entries that do not pack. */
    assert_true(ptr_map_bytes(&m) <= 8 * initial);
    free(live);
    free(ref);
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
        assert_non_null(ptr_map_put(&m, i * 32, i, i, &was_live, NULL, NULL));
        assert_int_equal(was_live, 0);
    }
    for (uint64_t i = 1; i <= 300000; i++) {
        struct ptr_entry *e = ptr_map_find(&m, i * 32);
        assert_non_null(e);
        assert_int_equal(ptr_entry_val(&m, e), i);
        assert_int_equal(ptr_entry_size(&m, e), i);   /* above 32766: spilled */
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
        cmocka_unit_test(test_purges_keep_live_entries),
        cmocka_unit_test(test_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
