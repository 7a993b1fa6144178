/* test_replay_cli.c: `fragscope replay` as a user meets it: --help, bad options, a missing
 * trace, and the summary of a small synthetic trace. Runs the built binary and checks the exit
 * status and that the message names the bad option, value or file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "trace_fixture.h"
#include "test_support.h"

#ifndef FRAGSCOPE_BIN
#error FRAGSCOPE_BIN must name the fragscope binary
#endif

static char trace_path[512];

/* Runs `fragscope replay ARGS` with stdout and stderr captured together; returns the status. */
static int run(const char *args, char *out, size_t outlen)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' replay %s 2>&1 </dev/null", FRAGSCOPE_BIN, args);
    int st = ts_shell(cmd, out, outlen);
    assert_true(st >= 0 && st < 128);          /* exited, not killed */
    return st;
}

static int setup(void **state)
{
    (void)state;
    struct fixture_trace t;
    if (fixture_open(&t, "cli.fstrace", 0x555555559000ull, "", 2) < 0)
        return -1;
    for (int i = 0; i < 20; i++)
        fixture_malloc(&t, 0, 100, 0x555555559000ull + 0x2a0 + (uint64_t)i * 0x70);
    fixture_free(&t, 0, 0x7f0012345670ull, 0);
    if (fixture_close(&t) < 0)
        return -1;
    snprintf(trace_path, sizeof trace_path, "%s", t.path);
    return 0;
}

struct bad_case {
    const char *args;     /* %s = the trace */
    int status;
    const char *message;
};

static void test_bad_options(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"", 2, "no trace given"},
        {"%s --touch some", 2, "--touch 'some'"},
        {"%s --arenas bogus", 2, "--arenas 'bogus'"},
        {"%s --verify=loose", 2, "--verify='loose'"},
        {"%s --until 0", 2, "--until"},
        {"%s --until 12abc", 2, "'12abc'"},
        {"%s --cpus -1", 2, "--cpus"},
        {"%s --bogus", 2, "unknown option '--bogus'"},
        {"%s --set tcache_count", 2, "expected NAME=VALUE"},
        {"%s --set no_such_thing=1", 2, "no_such_thing"},
        {"%s --until", 2, "needs a value"},
        {"%s other.fstrace", 2, "'other.fstrace' is extra"},
        {"--preload /lib/x.so %s", 2, "--preload needs --native"},
        {"--native --verify %s", 2, "--native"},
        {"/nonexistent/t.fstrace", 1, "/nonexistent/t.fstrace"},
        {"%s --frees sometimes", 2, "--frees 'sometimes': expected recorded or late"},
        {"%s --tunables glibc.malloc.tcache_count=x", 2,
         "--tunables 'glibc.malloc.tcache_count=x': value 'x' of glibc.malloc.tcache_count"},
        {"%s --set tcache_count=abc", 2, "--set 'tcache_count=abc': bad value 'abc'"},
        {"%s --cpus 0", 2, "--cpus: '0' is not a number >= 1"},
        {"%s --cpus 99999999", 2, "--cpus: 99999999 is too many"},
        {"%s --every 5", 2, "--every, --snapshot-at, --no-analysis and --no-whatif need --db"},
        {"%s --snapshot-at 3", 2, "need --db"},
        {"%s --native --db x.db", 2, "--native runs the real allocator: it does not combine "
                                     "with --db"},
        {"%s --native --preload /nonexistent/lib.so", 1, "--preload /nonexistent/lib.so: "},
        {"%s -x", 2, "unknown option '-x'"},
        {"%s --set", 2, "option '--set' needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1024], out[8192];
        snprintf(args, sizeof args, cases[i].args, trace_path);
        int st = run(args, out, sizeof out);
        if (st != cases[i].status || !strstr(out, cases[i].message)) {
            fprintf(stderr, "replay %s: status %d (want %d), output:\n%s\n", args, st,
                    cases[i].status, out);
            fail();
        }
    }
}

static void test_help(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "usage: fragscope replay TRACE"));
    assert_non_null(strstr(out, "--verify[=strict]"));
    assert_non_null(strstr(out, "--arenas serial|recorded"));
}

static void test_summary(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run(trace_path, out, sizeof out), 0);
    assert_non_null(strstr(out, "events         21 (malloc 20, free 1)"));
    assert_non_null(strstr(out, "live bytes     peak 2.0 KiB at step 20"));
    assert_non_null(strstr(out, "1 frees of unknown pointers"));
    assert_non_null(strstr(out, "status         complete"));
    char args[1024];
    snprintf(args, sizeof args, "%s --until 7", trace_path);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "INCOMPLETE: stopped at step 7"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
