/* test_mtrace_import.c: `fragscope import-mtrace` on a real mtrace log made at test time by
 * mtrace_prog (glibc's mtrace with libc_malloc_debug.so preloaded), checked against the pointers
 * the program itself reports; then the errors (file and line named), and how the output file is
 * created (exclusive, mode 0600, --force replaces a regular file but never a symlink). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../../cli.h"
#include "tracegen.h"

#define MALLOC_DEBUG_LIB "/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"

static char out[1 << 14], errtext[1 << 14];
static char out_path[512], err_path[512];

static void read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
}

/* Runs `fragscope import-mtrace ARGS...` in-process with stdout/stderr captured. */
static int run_import(int argc, const char **args)
{
    char *argv[16];
    argv[0] = (char *)"import-mtrace";
    for (int i = 0; i < argc; i++)
        argv[i + 1] = (char *)args[i];
    argv[argc + 1] = NULL;
    gen_tmppath(out_path, sizeof out_path, "import.out");
    gen_tmppath(err_path, sizeof err_path, "import.err");
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = cmd_import_mtrace(argc + 1, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(fo);
    close(fe);
    close(so);
    close(se);
    read_file(out_path, out, sizeof out);
    read_file(err_path, errtext, sizeof errtext);
    unlink(out_path);
    unlink(err_path);
    return rc;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void real_mtrace_log(void **state)
{
    (void)state;
    if (access(MALLOC_DEBUG_LIB, R_OK) != 0)
        skip();
    char log[512], trace[512], cmd[2048], err[512];
    gen_tmppath(log, sizeof log, "prog.mtrace");
    gen_tmppath(trace, sizeof trace, "prog.trace");
    unlink(log);
    unlink(trace);
    snprintf(cmd, sizeof cmd, "MALLOC_TRACE='%s' LD_PRELOAD=%s '%s'", log, MALLOC_DEBUG_LIB, MTRACE_PROG);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    unsigned long got[7];
    for (int i = 0; i < 7; i++)
        assert_int_equal(fscanf(p, "%lx", &got[i]), 1);
    assert_int_equal(pclose(p), 0);
    uint64_t a0 = got[0], b = got[1], c = got[2], a1 = got[3], d = got[4], big = got[5];
    assert_int_equal(got[6], 0);        /* the huge request failed */

    const char *args[] = {log, "-o", trace};
    int rc = run_import(3, args);
    if (rc)
        fprintf(stderr, "%s", errtext);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "12 events (6 malloc, 5 free, 1 realloc)"));

    struct stat st;
    assert_int_equal(lstat(trace, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    struct trace_reader *r = trace_reader_open(trace, err, sizeof err);
    assert_non_null(r);
    const struct trace_header *h = trace_reader_header(r);
    assert_true(h->heap_start == (a0 & ~(uint64_t)(h->page_size - 1)));
    struct { uint8_t kind; uint64_t size, old_ptr, ptr; } want[] = {
        {TRACE_EV_MALLOC, 24, 0, a0},
        {TRACE_EV_MALLOC, 120, 0, b},           /* calloc(3, 40) logs as + with 120 */
        {TRACE_EV_MALLOC, 1000, 0, c},
        {TRACE_EV_REALLOC, 200, a0, a1},
        {TRACE_EV_FREE, 0, 0, b},
        {TRACE_EV_MALLOC, 40, 0, d},
        {TRACE_EV_MALLOC, 1 << 20, 0, big},
        {TRACE_EV_MALLOC, SIZE_MAX / 2, 0, 0},
        {TRACE_EV_FREE, 0, 0, c},
        {TRACE_EV_FREE, 0, 0, d},
        {TRACE_EV_FREE, 0, 0, big},
        {TRACE_EV_FREE, 0, 0, a1},
    };
    uint32_t seen_stacks[12];
    struct trace_event ev;
    for (int i = 0; i < 12; i++) {
        assert_int_equal(trace_reader_next(r, &ev), 1);
        assert_int_equal(ev.seq, i);
        assert_int_equal(ev.thread, 0);
        assert_int_equal(ev.kind, want[i].kind);
        assert_true(ev.size == want[i].size);
        assert_true(ev.old_ptr == want[i].old_ptr);
        assert_true(ev.ptr == want[i].ptr);
        assert_int_equal(ev.err, want[i].ptr || want[i].kind == TRACE_EV_FREE ? 0 : ENOMEM);
        /* One frame, in the program's module, at the offset mtrace printed. */
        const uint64_t *frames;
        assert_int_equal(trace_reader_stack(r, ev.stack_id, &frames), 1);
        const struct trace_module *m = trace_reader_module_at(r, frames[0]);
        assert_non_null(m);
        assert_non_null(strstr(m->path, "mtrace_prog"));
        assert_true(frames[0] - m->load_address > 0x1000 && frames[0] - m->load_address < 0x10000);
        for (int j = 0; j < i; j++)
            assert_true(seen_stacks[j] != ev.stack_id);      /* 12 different call sites */
        seen_stacks[i] = ev.stack_id;
    }
    assert_int_equal(trace_reader_next(r, &ev), 0);
    struct trace_reader_status rs;
    trace_reader_status(r, &rs);
    assert_true(rs.clean_end);
    trace_reader_close(r);

    /* The output exists now: refused without --force, replaced with it. */
    assert_int_equal(run_import(3, args), 1);
    assert_non_null(strstr(errtext, "already exists"));
    const char *force[] = {log, "-o", trace, "--force"};
    assert_int_equal(run_import(4, force), 0);
    unlink(trace);
    unlink(log);
}

static void errors_name_file_and_line(void **state)
{
    (void)state;
    char log[512], trace[512], want[1024];
    gen_tmppath(log, sizeof log, "bad.mtrace");
    gen_tmppath(trace, sizeof trace, "bad.trace");
    const char *args[] = {log, "-o", trace};
    static const struct { const char *text; int line; const char *why; } cases[] = {
        {"= Start\n@ ./p:[0x10] + 0x1000 0x10\n@ ./p:[0x11] < 0x1000\n- 0x1000\n", 4, "not followed by its '>'"},
        {"= Start\n@ ./p:[0x10] > 0x1000 0x10\n", 2, "without the '<' line"},
        {"+ 0x1000 0x10\n@ ./p:[0x10] * 0x1000 0x10\n", 2, "no operation after the caller"},
        {"+ 0x1000\n", 1, "a size is missing"},
        {"+ 0xzz 0x10\n", 1, "the pointer is not a number"},
        {"+ 0x1000 0x10 trailing\n", 1, "unexpected text at the end"},
        {"@ ./p:[0x10] + 0x11112222333344445555 0x10\n", 1, "the pointer is not a number"},
        {"hello\n", 1, "expected one of"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(log, cases[i].text);
        unlink(trace);
        assert_int_equal(run_import(3, args), 1);
        snprintf(want, sizeof want, "%s:%d: ", log, cases[i].line);
        if (!strstr(errtext, want) || !strstr(errtext, cases[i].why))
            fprintf(stderr, "case %zu: %s", i, errtext);
        assert_non_null(strstr(errtext, want));
        assert_non_null(strstr(errtext, cases[i].why));
        assert_int_equal(access(trace, F_OK), -1);   /* no half-written trace left behind */
    }
    /* A log ending inside a realloc pair. */
    write_text(log, "@ [0x7f0000001234] < 0x1000\n");
    assert_int_equal(run_import(3, args), 1);
    assert_non_null(strstr(errtext, ":1: the log ends after a realloc"));
    /* Absolute callers, a caller with a symbol, mtrace's "0" size and (nil). */
    write_text(log, "= Start\n@ [0x7f0000001234] + 0x1000 0\n@ ./p:(main+0x1a)[0x1136] + (nil) 0x10\n"
                    "@ /lib/libc.so.6:[0x99] - 0x1000\n= End\n");
    unlink(trace);
    assert_int_equal(run_import(3, args), 0);
    char err[512];
    struct trace_reader *r = trace_reader_open(trace, err, sizeof err);
    assert_non_null(r);
    struct trace_event ev;
    const uint64_t *fr;
    assert_int_equal(trace_reader_next(r, &ev), 1);
    assert_true(ev.size == 0 && ev.ptr == 0x1000);
    assert_int_equal(trace_reader_stack(r, ev.stack_id, &fr), 1);
    assert_true(fr[0] == 0x7f0000001234);
    assert_null(trace_reader_module_at(r, fr[0]));
    assert_int_equal(trace_reader_next(r, &ev), 1);
    assert_true(ev.ptr == 0 && ev.err == ENOMEM && ev.size == 16);
    assert_int_equal(trace_reader_stack(r, ev.stack_id, &fr), 1);
    assert_string_equal(trace_reader_module_at(r, fr[0])->path, "./p");
    assert_true(fr[0] - trace_reader_module_at(r, fr[0])->load_address == 0x1136);
    assert_int_equal(trace_reader_next(r, &ev), 1);
    assert_int_equal(trace_reader_stack(r, ev.stack_id, &fr), 1);
    assert_string_equal(trace_reader_module_at(r, fr[0])->path, "/lib/libc.so.6");
    assert_int_equal(trace_reader_next(r, &ev), 0);
    assert_int_equal(trace_reader_module_count(r), 2);
    trace_reader_close(r);
    unlink(trace);
    unlink(log);
}

static void output_file_safety(void **state)
{
    (void)state;
    char log[512], trace[512], link[512], victim[512];
    gen_tmppath(log, sizeof log, "ok.mtrace");
    gen_tmppath(trace, sizeof trace, "ok.trace");
    gen_tmppath(link, sizeof link, "link.trace");
    gen_tmppath(victim, sizeof victim, "victim");
    write_text(log, "= Start\n+ 0x1000 0x10\n- 0x1000\n= End\n");
    write_text(victim, "precious\n");
    unlink(link);
    assert_int_equal(symlink(victim, link), 0);
    const char *args[] = {log, "-o", link};
    assert_int_equal(run_import(3, args), 1);
    assert_non_null(strstr(errtext, link));
    const char *forced[] = {"--force", log, "-o", link};
    assert_int_equal(run_import(4, forced), 1);
    assert_non_null(strstr(errtext, "symlink"));
    char buf[64];
    read_file(victim, buf, sizeof buf);
    assert_string_equal(buf, "precious\n");      /* never written through the link */
    /* A regular file with other permissions is replaced by a fresh 0600 one. */
    write_text(trace, "old");
    chmod(trace, 0644);
    const char *force_trace[] = {"-f", log, "--output", trace};
    assert_int_equal(run_import(4, force_trace), 0);
    struct stat st;
    assert_int_equal(stat(trace, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The input cannot be its own output. */
    const char *self[] = {"-f", log, "-o", log};
    assert_int_equal(run_import(4, self), 1);
    assert_non_null(strstr(errtext, "the output is the input"));
    /* Usage. */
    const char *noout[] = {log};
    assert_int_equal(run_import(1, noout), 2);
    assert_non_null(strstr(errtext, "missing -o TRACE"));
    const char *help[] = {"--help"};
    assert_int_equal(run_import(1, help), 0);
    assert_non_null(strstr(out, "usage: fragscope import-mtrace"));
    const char *missing[] = {"/nonexistent/log", "-o", trace};
    assert_int_equal(run_import(3, missing), 1);
    assert_non_null(strstr(errtext, "/nonexistent/log: cannot open"));
    unlink(trace);
    unlink(link);
    unlink(victim);
    unlink(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(real_mtrace_log),
        cmocka_unit_test(errors_name_file_and_line),
        cmocka_unit_test(output_file_safety),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(gen_tmpdir());
    return rc;
}
