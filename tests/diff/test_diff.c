/* test_diff.c: the differential suites: glibc 2.36 (the runner) against the ptmalloc model.
 *
 *   test_diff random A B      random single-threaded sequences, seeds A..B (every fourth seed
 *                             writes blocks and compares heap RSS)
 *   test_diff threaded A B    threaded sequences, seeds A..B
 *   test_diff alternating     the 4000-alternating-block case: default, tcache_count=0 and
 *                             M_MXFAST=0, blocks written (RSS vs mincore and smaps) or not
 *   test_diff smoke           a little of each (also run under ASan+UBSan)
 *   test_diff selftest        the harness sees injected differences and shrinks them
 * Every seed runs; the failing ones are listed with their difference, the first is shrunk and
 * printed as a reproducer (rerun it with diff_harness --seed N ...). Ranges above 10000 are the
 * long suites: they run only with FRAGSCOPE_DIFF_LONG=1 (otherwise skipped, exit 77).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diff_model.h"
#include "seq.h"
#include "seqgen.h"
#include "shrink.h"

#define RANDOM_OPS 150
#define SHOW_FAILURES 8

static uint64_t g_from = 1, g_to = 100;
static uint64_t g_failed, g_ran;
static int g_shrunk;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Runs one sequence; records and reports a failure. Returns 1 if model and glibc agree. */
static int check(struct seq *s, const char *title, const char *rerun)
{
    struct diff_result r;
    char err[512];
    int rc = diff_run(s, &r, err, sizeof err);
    g_ran++;
    if (rc < 0) {
        print_message("%s: cannot run: %s\n", title, err);
        g_failed++;
        return 0;
    }
    if (rc == 0)
        return 1;
    g_failed++;
    if (g_failed <= SHOW_FAILURES)
        print_message("DIFF %s\n  %s\n  rerun: %s\n", title, r.what, rerun);
    if (!g_shrunk) {
        g_shrunk = 1;
        unsigned runs = shrink_seq(s, &r, 400);
        print_message("first failure shrunk to %" PRIu64 " ops (%u runs): %s\n", s->n, runs,
                      r.what);
        seq_print(stderr, s, r.op, title);
    }
    return 0;
}

static void report(const char *suite, double t0)
{
    print_message("%s: %" PRIu64 "/%" PRIu64 " sequences agree (%.1f%%), %.1f s\n", suite,
                  g_ran - g_failed, g_ran, g_ran ? 100.0 * (double)(g_ran - g_failed) /
                  (double)g_ran : 0.0, now() - t0);
}

static void run_random(uint64_t from, uint64_t to, int threads)
{
    struct seq s;
    seq_init(&s);
    for (uint64_t seed = from; seed <= to; seed++) {
        const char *vname = seqgen_variant(seqgen_variant_of_seed(seed), &s.set);
        int writes = seed % 4 == 0;
        struct seqgen_opts o = {seed, RANDOM_OPS, threads, writes};
        seqgen_random(&s, &o);
        char title[160], rerun[200];
        snprintf(title, sizeof title, "seed %" PRIu64 "%s%s (settings %s)", seed,
                 threads ? " threaded" : "", writes ? " writes" : "", vname);
        snprintf(rerun, sizeof rerun, "diff_harness --seed %" PRIu64 " --ops %d%s%s", seed,
                 RANDOM_OPS, threads ? " --threads=6" : "", writes ? " --writes" : "");
        check(&s, title, rerun);
    }
    seq_free(&s);
}

static void test_random(void **state)
{
    (void)state;
    double t0 = now();
    run_random(g_from, g_to, 0);
    report("random", t0);
    assert_int_equal(g_failed, 0);
}

static void test_threaded(void **state)
{
    (void)state;
    double t0 = now();
    run_random(g_from, g_to, 6);
    report("threaded", t0);
    assert_int_equal(g_failed, 0);
}

static void run_alternating(uint32_t pairs)
{
    struct seq s;
    seq_init(&s);
    for (int settings = 0; settings < 3; settings++) {
        for (int written = 0; written < 2; written++) {
            memset(&s.set, 0, sizeof s.set);
            if (settings == 1)
                strcpy(s.set.tunables, "glibc.malloc.tcache_count=0");
            seqgen_alternating(&s, pairs, written, settings == 2, 500);
            char title[160], rerun[200];
            static const char *names[3] = {"default", "tcache_count=0", "M_MXFAST=0"};
            snprintf(title, sizeof title, "alternating %u pairs, %s, %s", pairs,
                     names[settings], written ? "blocks written" : "blocks not written");
            snprintf(rerun, sizeof rerun, "diff_harness --alternating --pairs %u%s%s", pairs,
                     written ? " --write-blocks" : "",
                     settings == 1 ? " --tunables glibc.malloc.tcache_count=0"
                                   : settings == 2 ? " --mxfast0" : "");
            check(&s, title, rerun);
        }
    }
    seq_free(&s);
}

static void test_alternating(void **state)
{
    (void)state;
    double t0 = now();
    run_alternating(4000);
    report("alternating", t0);
    assert_int_equal(g_failed, 0);
}

static void test_smoke(void **state)
{
    (void)state;
    double t0 = now();
    run_random(1, 200, 0);
    run_random(1, 40, 6);
    run_alternating(1000);
    report("smoke", t0);
    assert_int_equal(g_failed, 0);
}

/* The harness must see differences: settings given to the model only, writes the model does
 * not get, and the shrinker must cut a failing random sequence down while it still fails. */
static void test_selftest(void **state)
{
    (void)state;
    struct seq s;
    seq_init(&s);
    struct diff_result r;
    char err[512];
    /* malloc(24); free; malloc(24): same address either way, but with the tcache off in the
     * model only, the freed chunk shows in a fastbin: mallinfo2 differs after the free. */
    uint32_t p = seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 24, 0, 0);
    seq_add(&s, NATIVE_OP_FREE, 0, p, 0, 0, 0);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 24, 0, 0);
    assert_int_equal(diff_run(&s, &r, err, sizeof err), 0);
    diff_model_only_tunables = "glibc.malloc.tcache_count=0";
    assert_int_equal(diff_run(&s, &r, err, sizeof err), 1);
    assert_int_equal(r.op, 1);
    assert_non_null(strstr(r.what, "mallinfo2"));
    assert_non_null(strstr(r.what, "smblks native 0 model 1"));
    /* a different threshold in the model only: an address differs */
    seq_clear(&s);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 1, 0, 0);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 200000, 0, 0);
    diff_model_only_tunables = "glibc.malloc.mmap_threshold=300000";
    assert_int_equal(diff_run(&s, &r, err, sizeof err), 1);
    assert_int_equal(r.op, 1);
    assert_non_null(strstr(r.what, "address native mmap#0+0x10, model main+0x2c0"));
    diff_model_only_tunables = NULL;
    /* writes the model does not get: heap RSS differs at the sample */
    seq_clear(&s);
    p = seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 100000, 0, 0);
    seq_add(&s, NATIVE_OP_WRITE, 0, p, 0, NATIVE_WRITE_ALL, 1);
    seq_add(&s, NATIVE_OP_SAMPLE, 0, NATIVE_REF_NULL, 0, 0, 0);
    assert_int_equal(diff_run(&s, &r, err, sizeof err), 0);
    diff_model_skip_writes = 1;
    assert_int_equal(diff_run(&s, &r, err, sizeof err), 1);
    diff_model_skip_writes = 0;
    assert_int_equal(r.op, 2);
    assert_non_null(strstr(r.what, "heap RSS"));
    /* the shrinker: a random sequence failing under model-only mxfast=0 shrinks to a few ops
     * that still fail */
    diff_model_only_tunables = "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0";
    memset(&s.set, 0, sizeof s.set);
    struct seqgen_opts o = {7, 150, 0, 0};
    seqgen_random(&s, &o);
    uint64_t before = s.n;
    assert_int_equal(diff_run(&s, &r, err, sizeof err), 1);
    shrink_seq(&s, &r, 300);
    assert_true(s.n < before);
    assert_true(s.n <= 6);
    assert_int_equal(diff_run(&s, &r, err, sizeof err), 1);
    diff_model_only_tunables = NULL;
    seq_print(stderr, &s, r.op, "shrunk self-test reproducer");
    seq_free(&s);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "smoke";
    if (argc > 3) {
        g_from = strtoull(argv[2], NULL, 0);
        g_to = strtoull(argv[3], NULL, 0);
    }
    if (g_from > 10000 && !getenv("FRAGSCOPE_DIFF_LONG")) {
        fprintf(stderr, "long differential suite: set FRAGSCOPE_DIFF_LONG=1 to run it\n");
        return 77;
    }
    struct CMUnitTest t;
    if (strcmp(mode, "random") == 0)
        t = (struct CMUnitTest)cmocka_unit_test(test_random);
    else if (strcmp(mode, "threaded") == 0)
        t = (struct CMUnitTest)cmocka_unit_test(test_threaded);
    else if (strcmp(mode, "alternating") == 0)
        t = (struct CMUnitTest)cmocka_unit_test(test_alternating);
    else if (strcmp(mode, "smoke") == 0)
        t = (struct CMUnitTest)cmocka_unit_test(test_smoke);
    else if (strcmp(mode, "selftest") == 0)
        t = (struct CMUnitTest)cmocka_unit_test(test_selftest);
    else {
        fprintf(stderr, "usage: test_diff random|threaded A B | alternating | smoke | selftest\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {t};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
