/* test_color.c: `report` and `heap` colour their output on a terminal unless NO_COLOR is set to a
 * non-empty value (no-color.org: an empty NO_COLOR does not turn colour off).
 *
 * A database is made from the corpus's 4000-block trace; each command runs on a pseudo-terminal
 * (forkpty) with NO_COLOR unset, empty and "1", and its output is searched for ANSI escapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "analyzer.h"
#include "test_support.h"

static char dir[256], db[512];

static int setup(void **state)
{
    (void)state;
    if (ts_tmpdir(dir, sizeof dir, "analyzer-color") != 0)
        return -1;
    snprintf(db, sizeof db, "%s/b4000.db", dir);
    struct replay_options ro;
    replay_options_default(&ro);
    ro.trace_path = TRACES_DIR "/4000-blocks.fstrace";
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.quiet = 1;
    io.no_whatif = 1;
    char err[512];
    if (analyzer_replay_to_db(&ro, db, &io, NULL, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return ts_rmtree(dir);
}

/* Runs FRAGSCOPE_BIN with args on a pseudo-terminal, NO_COLOR as given (NULL: unset); returns
 * whether its output had an ANSI escape. */
static int colored_on_tty(const char *no_color, const char *a1, const char *a2, const char *a3,
                          const char *a4)
{
    int master;
    struct winsize ws = {.ws_row = 50, .ws_col = 120};
    pid_t pid = forkpty(&master, NULL, NULL, &ws);
    assert_true(pid >= 0);
    if (pid == 0) {
        if (no_color)
            setenv("NO_COLOR", no_color, 1);
        else
            unsetenv("NO_COLOR");
        execl(FRAGSCOPE_BIN, FRAGSCOPE_BIN, a1, a2, a3, a4, (char *)NULL);
        _exit(127);
    }
    static char out[1 << 20];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(master, out + n, sizeof out - 1 - n);
        if (r <= 0)
            break;   /* EIO once the child has exited and closed the terminal */
        n += (size_t)r;
    }
    out[n] = 0;
    close(master);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s %s: status %d:\n%s", a1, a2, st, out);
    assert_true(n > 100);
    return strstr(out, "\033[") != NULL;
}

static void report_color(void **state)
{
    (void)state;
    assert_true(colored_on_tty(NULL, "report", db, NULL, NULL));
    assert_true(colored_on_tty("", "report", db, NULL, NULL));
    assert_false(colored_on_tty("1", "report", db, NULL, NULL));
}

static void heap_color(void **state)
{
    (void)state;
    assert_true(colored_on_tty(NULL, "heap", db, "--step", "100"));
    assert_true(colored_on_tty("", "heap", db, "--step", "100"));
    assert_false(colored_on_tty("1", "heap", db, "--step", "100"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(report_color),
        cmocka_unit_test(heap_color),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
