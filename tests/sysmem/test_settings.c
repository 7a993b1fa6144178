/* test_settings.c: malloc settings (allocator/settings.c) as glibc 2.36 reads them: defaults,
 * GLIBC_TUNABLES (names, bounds from elf/dl-tunables.list, _dl_strtoul's number syntax, the
 * setters' own limits in malloc.c, the dynamic-threshold side effect), the MALLOC_* aliases,
 * and the strict NAME=VALUE overrides of `fragscope replay --set`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/sysinfo.h>

#include "ptmalloc.h"

static struct ptmalloc_settings defaults(void) {
    struct ptmalloc_settings s;
    ptmalloc_settings_default(&s);
    return s;
}

static void glibc_defaults(void **state) {
    (void)state;
    struct ptmalloc_settings s = defaults();
    assert_int_equal(s.mxfast, 128);
    assert_int_equal(s.trim_threshold, 128 * 1024);
    assert_int_equal(s.top_pad, 131072);
    assert_int_equal(s.mmap_threshold, 128 * 1024);
    assert_int_equal(s.mmap_max, 65536);
    assert_int_equal(s.arena_max, 0);
    assert_int_equal(s.arena_test, 8);
    assert_int_equal(s.tcache_count, 7);
    assert_int_equal(s.tcache_max, 1032);
    assert_int_equal(s.tcache_unsorted_limit, 0);
    assert_int_equal(s.perturb, 0);
    assert_int_equal(s.hugetlb, 0);
    assert_int_equal(s.no_dyn_threshold, 0);
    assert_int_equal(s.cpu_count, (uint32_t)get_nprocs());
}

static int tun(struct ptmalloc_settings *s, const char *text) {
    char err[256] = "";
    return ptmalloc_settings_tunables(s, text, err, sizeof err);
}

static void every_tunable_name(void **state) {
    (void)state;
    struct ptmalloc_settings s = defaults();
    assert_int_equal(tun(&s, "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0:"
                             "glibc.malloc.tcache_max=100:glibc.malloc.tcache_unsorted_limit=9:"
                             "glibc.malloc.perturb=165:glibc.malloc.arena_max=2:"
                             "glibc.malloc.arena_test=3:glibc.malloc.hugetlb=1:"
                             "glibc.malloc.check=3"),
                     0);
    assert_int_equal(s.tcache_count, 0);
    assert_int_equal(s.mxfast, 0);
    assert_int_equal(s.tcache_max, 100);
    assert_int_equal(s.tcache_unsorted_limit, 9);
    assert_int_equal(s.perturb, 165);
    assert_int_equal(s.arena_max, 2);
    assert_int_equal(s.arena_test, 3);
    assert_int_equal(s.hugetlb, 1);
    /* none of these is threshold-type */
    assert_int_equal(s.no_dyn_threshold, 0);
    assert_int_equal(s.top_pad, 131072);
    assert_int_equal(s.mmap_threshold, 131072);
}

static void threshold_tunables_turn_dynamic_threshold_off(void **state) {
    (void)state;
    const char *cases[] = {"glibc.malloc.top_pad=0", "glibc.malloc.mmap_threshold=131072",
                           "glibc.malloc.trim_threshold=1", "glibc.malloc.mmap_max=0"};
    for (size_t i = 0; i < 4; i++) {
        struct ptmalloc_settings s = defaults();
        assert_int_equal(tun(&s, cases[i]), 0);
        assert_int_equal(s.no_dyn_threshold, 1);
    }
    struct ptmalloc_settings s = defaults();
    assert_int_equal(tun(&s, "glibc.malloc.top_pad=0:glibc.malloc.mmap_threshold=65536:"
                             "glibc.malloc.trim_threshold=262144:glibc.malloc.mmap_max=3"),
                     0);
    assert_int_equal(s.top_pad, 0);
    assert_int_equal(s.mmap_threshold, 65536);
    assert_int_equal(s.trim_threshold, 262144);
    assert_int_equal(s.mmap_max, 3);
    /* a refused value sets nothing, side effect included */
    s = defaults();
    assert_int_equal(tun(&s, "glibc.malloc.mmap_max=-1"), 0);
    assert_int_equal(s.mmap_max, 65536);
    assert_int_equal(s.no_dyn_threshold, 0);
}

static void numbers_read_like_dl_strtoul(void **state) {
    (void)state;
    struct ptmalloc_settings s = defaults();
    assert_int_equal(tun(&s, "glibc.malloc.mmap_threshold=0x20000"), 0);
    assert_int_equal(s.mmap_threshold, 0x20000);
    assert_int_equal(tun(&s, "glibc.malloc.top_pad=010"), 0);           /* octal */
    assert_int_equal(s.top_pad, 8);
    assert_int_equal(tun(&s, "glibc.malloc.mxfast=0XA0"), 0);           /* 160: the maximum */
    assert_int_equal(s.mxfast, 160);
    assert_int_equal(tun(&s, "glibc.malloc.tcache_count= \t+12"), 0);    /* blanks and a sign */
    assert_int_equal(s.tcache_count, 12);
    /* "-1" of a SIZE_T tunable is SIZE_MAX, and accepted */
    assert_int_equal(tun(&s, "glibc.malloc.trim_threshold=-1"), 0);
    assert_int_equal(s.trim_threshold, UINT64_MAX);
    /* overflow reads as UINT64_MAX */
    assert_int_equal(tun(&s, "glibc.malloc.top_pad=99999999999999999999999"), 0);
    assert_int_equal(s.top_pad, UINT64_MAX);
}

static void bounds_of_each_tunable(void **state) {
    (void)state;
    struct ptmalloc_settings s = defaults();
    /* setters' limits: tcache_count <= 65535, tcache_max <= 1032, mxfast <= 160 */
    tun(&s, "glibc.malloc.tcache_count=65535");
    assert_int_equal(s.tcache_count, 65535);
    tun(&s, "glibc.malloc.tcache_count=65536");
    assert_int_equal(s.tcache_count, 65535);
    tun(&s, "glibc.malloc.tcache_max=1032");
    tun(&s, "glibc.malloc.tcache_max=1033");
    assert_int_equal(s.tcache_max, 1032);
    tun(&s, "glibc.malloc.mxfast=161");
    assert_int_equal(s.mxfast, 128);
    /* dl-tunables.list bounds: perturb 0..0xff, mmap_max INT_32 >= 0, arena_* >= 1 */
    tun(&s, "glibc.malloc.perturb=255");
    assert_int_equal(s.perturb, 255);
    tun(&s, "glibc.malloc.perturb=256");
    tun(&s, "glibc.malloc.perturb=-1");
    assert_int_equal(s.perturb, 255);
    tun(&s, "glibc.malloc.mmap_max=2147483647");
    assert_int_equal(s.mmap_max, 2147483647);
    tun(&s, "glibc.malloc.mmap_max=2147483648");
    assert_int_equal(s.mmap_max, 2147483647);
    tun(&s, "glibc.malloc.arena_max=0:glibc.malloc.arena_test=0");
    assert_int_equal(s.arena_max, 0);
    assert_int_equal(s.arena_test, 8);
    tun(&s, "glibc.malloc.arena_max=0x1");
    assert_int_equal(s.arena_max, 1);
}

/* glibc keeps the last accepted value of each tunable, then its setter decides once. */
static void last_value_wins_then_the_setter_decides(void **state) {
    (void)state;
    struct ptmalloc_settings s = defaults();
    tun(&s, "glibc.malloc.mxfast=100:glibc.malloc.mxfast=999");
    assert_int_equal(s.mxfast, 128);
    tun(&s, "glibc.malloc.mxfast=999:glibc.malloc.mxfast=100");
    assert_int_equal(s.mxfast, 100);
    s = defaults();
    tun(&s, "glibc.malloc.tcache_count=5:glibc.malloc.tcache_count=70000");
    assert_int_equal(s.tcache_count, 7);
    /* a value the tunable layer refuses does not replace an earlier one */
    tun(&s, "glibc.malloc.perturb=7:glibc.malloc.perturb=300");
    assert_int_equal(s.perturb, 7);
}

static void unknown_and_foreign_tunables_are_ignored(void **state) {
    (void)state;
    struct ptmalloc_settings s = defaults();
    struct ptmalloc_settings d = defaults();
    assert_int_equal(tun(&s, "glibc.rtld.nns=2:glibc.malloc.tcache_cont=0:glibc.cpu.x86_ibt=off:"
                             "glibc.malloc.mxfastt=0:xglibc.malloc.mxfast=0"),
                     0);
    assert_memory_equal(&s, &d, sizeof s);
    assert_int_equal(tun(&s, ""), 0);
    assert_memory_equal(&s, &d, sizeof s);
    assert_int_equal(tun(&s, "glibc.rtld.nns=2:glibc.malloc.tcache_count=0"), 0);
    assert_int_equal(s.tcache_count, 0);
}

static void malformed_text_is_reported_and_read_as_glibc_does(void **state) {
    (void)state;
    struct ptmalloc_settings s = defaults();
    char err[256] = "";
    assert_int_equal(ptmalloc_settings_tunables(&s, "glibc.malloc.mxfast=12abc", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "mxfast"));
    assert_non_null(strstr(err, "12abc"));
    assert_int_equal(s.mxfast, 12);                     /* glibc reads the prefix */
    err[0] = 0;
    assert_int_equal(ptmalloc_settings_tunables(&s, "glibc.malloc.mxfast=", err, sizeof err), -1);
    assert_int_equal(s.mxfast, 0);                      /* no digits: 0 */
    err[0] = 0;
    assert_int_equal(
        ptmalloc_settings_tunables(&s, "junk:glibc.malloc.tcache_count=3", err, sizeof err), -1);
    assert_non_null(strstr(err, "'junk'"));
    assert_int_equal(s.tcache_count, 3);                /* glibc skips the bad part */
    assert_int_equal(tun(&s, "glibc.malloc.tcache_count=4=5"), -1);
    assert_int_equal(s.tcache_count, 4);
    assert_int_equal(tun(&s, "glibc.malloc.tcache_count=6:glibc.malloc.mxfast"), -1);
    assert_int_equal(s.tcache_count, 6);
    assert_int_equal(tun(&s, "glibc.malloc.tcache_count=0x"), -1);
    assert_int_equal(s.tcache_count, 0);
    assert_int_equal(ptmalloc_settings_tunables(&s, NULL, err, sizeof err), -1);
}

static void legacy_variables(void **state) {
    (void)state;
    struct ptmalloc_settings s = defaults();
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_TOP_PAD_", "4096"), 1);
    assert_int_equal(s.top_pad, 4096);
    assert_int_equal(s.no_dyn_threshold, 1);
    s = defaults();
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_MMAP_THRESHOLD_", "0x10000"), 1);
    assert_int_equal(s.mmap_threshold, 65536);
    assert_int_equal(s.no_dyn_threshold, 1);
    s = defaults();
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_TRIM_THRESHOLD_", "1000"), 1);
    assert_int_equal(s.trim_threshold, 1000);
    assert_int_equal(s.no_dyn_threshold, 1);
    s = defaults();
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_MMAP_MAX_", "0"), 1);
    assert_int_equal(s.mmap_max, 0);
    assert_int_equal(s.no_dyn_threshold, 1);
    s = defaults();
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_PERTURB_", "85"), 1);
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_ARENA_MAX", "4"), 1);
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_ARENA_TEST", "2"), 1);
    assert_int_equal(s.perturb, 85);
    assert_int_equal(s.arena_max, 4);
    assert_int_equal(s.arena_test, 2);
    assert_int_equal(s.no_dyn_threshold, 0);
    /* refused by the tunable bounds */
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_PERTURB_", "300"), 1);
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_ARENA_MAX", "0"), 1);
    assert_int_equal(s.perturb, 85);
    assert_int_equal(s.arena_max, 4);
    /* MALLOC_CHECK_ is a malloc variable with no effect on placement */
    struct ptmalloc_settings before = s;
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_CHECK_", "3"), 1);
    assert_memory_equal(&s, &before, sizeof s);
    /* not malloc variables */
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_TOP_PAD", "1"), 0);
    assert_int_equal(ptmalloc_settings_env(&s, "HOME", "/root"), 0);
    assert_int_equal(ptmalloc_settings_env(&s, "MALLOC_MXFAST_", "0"), 0);
    assert_memory_equal(&s, &before, sizeof s);
    /* GLIBC_TUNABLES itself may come through here too */
    assert_int_equal(ptmalloc_settings_env(&s, "GLIBC_TUNABLES", "glibc.malloc.mxfast=64"), 1);
    assert_int_equal(s.mxfast, 64);
}

/* An alias only fills a tunable GLIBC_TUNABLES leaves unset (aliases are applied first). */
static void tunables_override_aliases(void **state) {
    (void)state;
    struct ptmalloc_settings s = defaults();
    ptmalloc_settings_env(&s, "MALLOC_TOP_PAD_", "4096");
    ptmalloc_settings_env(&s, "MALLOC_MMAP_MAX_", "5");
    assert_int_equal(tun(&s, "glibc.malloc.top_pad=8192:glibc.malloc.mmap_max=-1"), 0);
    assert_int_equal(s.top_pad, 8192);
    assert_int_equal(s.mmap_max, 5);       /* the tunable's value was refused: the alias stays */
}

static int set(struct ptmalloc_settings *s, const char *text, char *err, size_t len) {
    err[0] = 0;
    return ptmalloc_settings_set(s, text, err, len);
}

static void set_every_name(void **state) {
    (void)state;
    char err[512];
    struct ptmalloc_settings s = defaults();
    struct {
        const char *text;
        uint64_t *field;
        uint64_t want;
    } u[] = {
        {"mxfast=64", &s.mxfast, 64},
        {"trim_threshold=0x40000", &s.trim_threshold, 0x40000},
        {"top_pad=0", &s.top_pad, 0},
        {"mmap_threshold=1M", &s.mmap_threshold, 1 << 20},
        {"arena_max=2", &s.arena_max, 2},
        {"arena_test=1", &s.arena_test, 1},
        {"tcache_count=0", &s.tcache_count, 0},
        {"tcache_max=0", &s.tcache_max, 0},
        {"tcache_unsorted_limit=010", &s.tcache_unsorted_limit, 8},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        assert_int_equal(set(&s, u[i].text, err, sizeof err), 0);
        assert_int_equal(*u[i].field, u[i].want);
    }
    assert_int_equal(set(&s, "mmap_max=3", err, sizeof err), 0);
    assert_int_equal(s.mmap_max, 3);
    assert_int_equal(set(&s, "perturb=0xff", err, sizeof err), 0);
    assert_int_equal(s.perturb, 255);
    assert_int_equal(set(&s, "hugetlb=2", err, sizeof err), 0);
    assert_int_equal(s.hugetlb, 2);
    assert_int_equal(set(&s, "cpus=64", err, sizeof err), 0);
    assert_int_equal(s.cpu_count, 64);
    assert_int_equal(set(&s, "glibc.malloc.mxfast=32", err, sizeof err), 0);
    assert_int_equal(s.mxfast, 32);
    assert_int_equal(set(&s, "tcache_count=4k", err, sizeof err), 0);
    assert_int_equal(s.tcache_count, 4096);
}

static void set_threshold_side_effect(void **state) {
    (void)state;
    char err[512];
    const char *on[] = {"trim_threshold=1", "top_pad=1", "mmap_threshold=131072", "mmap_max=1"};
    for (size_t i = 0; i < 4; i++) {
        struct ptmalloc_settings s = defaults();
        assert_int_equal(set(&s, on[i], err, sizeof err), 0);
        assert_int_equal(s.no_dyn_threshold, 1);
    }
    const char *off[] = {"mxfast=0", "arena_max=1", "arena_test=1", "tcache_count=1",
                         "tcache_max=1", "tcache_unsorted_limit=1", "perturb=1", "hugetlb=1",
                         "cpus=1"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        struct ptmalloc_settings s = defaults();
        assert_int_equal(set(&s, off[i], err, sizeof err), 0);
        assert_int_equal(s.no_dyn_threshold, 0);
    }
}

static void set_errors_are_clear(void **state) {
    (void)state;
    char err[512];
    struct ptmalloc_settings s = defaults();
    struct ptmalloc_settings d = defaults();
    assert_int_equal(set(&s, "foo=1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown setting 'foo' (known: mxfast, "));
    assert_non_null(strstr(err, "tcache_unsorted_limit"));
    assert_non_null(strstr(err, "cpus"));
    assert_int_equal(set(&s, "mxfast=x", err, sizeof err), -1);
    assert_string_equal(err, "bad value 'x' for mxfast: expected 0..160");
    assert_int_equal(set(&s, "mxfast=161", err, sizeof err), -1);
    assert_string_equal(err, "bad value '161' for mxfast: expected 0..160");
    assert_int_equal(set(&s, "tcache_count=65536", err, sizeof err), -1);
    assert_string_equal(err, "bad value '65536' for tcache_count: expected 0..65535");
    assert_int_equal(set(&s, "tcache_max=1033", err, sizeof err), -1);
    assert_int_equal(set(&s, "perturb=256", err, sizeof err), -1);
    assert_int_equal(set(&s, "mmap_max=2147483648", err, sizeof err), -1);
    assert_int_equal(set(&s, "arena_max=0", err, sizeof err), -1);
    assert_string_equal(err, "bad value '0' for arena_max: expected 1..18446744073709551615");
    assert_int_equal(set(&s, "arena_test=0", err, sizeof err), -1);
    assert_int_equal(set(&s, "hugetlb=3", err, sizeof err), -1);
    assert_int_equal(set(&s, "cpus=0", err, sizeof err), -1);
    assert_int_equal(set(&s, "top_pad=-1", err, sizeof err), -1);
    assert_int_equal(set(&s, "top_pad=", err, sizeof err), -1);
    assert_int_equal(set(&s, "top_pad=12q", err, sizeof err), -1);
    assert_int_equal(set(&s, "top_pad=0x", err, sizeof err), -1);
    assert_int_equal(set(&s, "top_pad= 1", err, sizeof err), -1);
    assert_int_equal(set(&s, "top_pad=99999999999999999999", err, sizeof err), -1);
    assert_int_equal(set(&s, "top_pad=17179869184G", err, sizeof err), -1);
    assert_int_equal(set(&s, "check=1", err, sizeof err), -1);     /* not a --set name */
    assert_int_equal(set(&s, "mxfast", err, sizeof err), -1);
    assert_string_equal(err, "expected NAME=VALUE, got 'mxfast'");
    assert_int_equal(set(&s, "=5", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown setting ''"));
    /* nothing changed along the way */
    assert_memory_equal(&s, &d, sizeof s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(glibc_defaults),
        cmocka_unit_test(every_tunable_name),
        cmocka_unit_test(threshold_tunables_turn_dynamic_threshold_off),
        cmocka_unit_test(numbers_read_like_dl_strtoul),
        cmocka_unit_test(bounds_of_each_tunable),
        cmocka_unit_test(last_value_wins_then_the_setter_decides),
        cmocka_unit_test(unknown_and_foreign_tunables_are_ignored),
        cmocka_unit_test(malformed_text_is_reported_and_read_as_glibc_does),
        cmocka_unit_test(legacy_variables),
        cmocka_unit_test(tunables_override_aliases),
        cmocka_unit_test(set_every_name),
        cmocka_unit_test(set_threshold_side_effect),
        cmocka_unit_test(set_errors_are_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
