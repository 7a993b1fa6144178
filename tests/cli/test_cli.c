/* test_cli.c: the fragscope command line as a user meets it: help, version, unknown commands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "test_support.h"

static int run(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", FRAGSCOPE_BIN, args);
    return ts_shell(cmd, out, cap);
}

static void help_lists_every_command(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run("--help", out, sizeof out), 0);
    const char *names[] = {"record", "dump", "import-mtrace", "replay", "report", "sweep", "heap", "flame"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(strstr(out, names[i]));
}

static void unknown_command_is_usage_error(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run("frobnicate", out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown command 'frobnicate'"));
}

static void no_arguments_is_usage_error(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run("", out, sizeof out), 2);
    assert_non_null(strstr(out, "usage:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_lists_every_command),
        cmocka_unit_test(unknown_command_is_usage_error),
        cmocka_unit_test(no_arguments_is_usage_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
