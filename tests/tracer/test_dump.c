/* test_dump.c: `fragscope dump` on a known stream - the event lines and their columns, sizes
 * human-readable or exact, stack frames with their modules, the --stats figures, and the exit
 * status and messages for cut-short, damaged and missing files. cmd_dump runs in-process with
 * stdout and stderr captured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../cli.h"
#include "tracegen.h"

static char trace_path[512], out_path[512], err_path[512];
static char out[1 << 16], errtext[1 << 14];
static uint64_t trace_bytes;

static void read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
}

/* Runs `fragscope dump ARGS...` in-process; returns its exit status. */
static int run_dump(int argc, const char **args)
{
    char *argv[16];
    argv[0] = (char *)"dump";
    for (int i = 0; i < argc; i++)
        argv[i + 1] = (char *)args[i];
    argv[argc + 1] = NULL;
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = cmd_dump(argc + 1, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(fo);
    close(fe);
    close(saved_out);
    close(saved_err);
    read_file(out_path, out, sizeof out);
    read_file(err_path, errtext, sizeof errtext);
    return rc;
}

/* The known stream: two threads, stacks in a module, each kind of line. */
static int setup(void **state)
{
    (void)state;
    gen_tmppath(trace_path, sizeof trace_path, "dump.trace");
    gen_tmppath(out_path, sizeof out_path, "dump.out");
    gen_tmppath(err_path, sizeof err_path, "dump.err");
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.pid = 321;
    h.ppid = 1;
    h.page_size = 4096;
    h.cpu_count = 2;
    h.heap_start = 0x555555559000;
    h.stacks = 1;
    h.stack_depth = 32;
    snprintf(h.exe, sizeof h.exe, "/usr/bin/prog");
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    h.argv = (char *)"prog\n-v";
    h.malloc_env = (char *)"MALLOC_TOP_PAD_=0\nGLIBC_TUNABLES=glibc.malloc.tcache_count=0";
    char err[512];
    unlink(trace_path);
    struct trace_file_writer *w = trace_file_writer_open(trace_path, 0, &h, err, sizeof err);
    assert_non_null(w);
    struct trace_module m = {.load_address = 0x555555554000, .size = 0x5000};
    snprintf(m.path, sizeof m.path, "/usr/bin/prog");
    trace_file_writer_module(w, 0, &m);
    uint64_t frames[2] = {0x555555555136, 0x7ffff7dd1d90};
    trace_file_writer_stack(w, 0, 1, frames, 2);
    trace_file_writer_stack(w, 1, 1, frames, 2);
    struct trace_event evs[] = {
        {.seq = 0, .time_ns = 1000, .kind = TRACE_EV_MALLOC, .size = 24, .ptr = 0x5555555592a0, .stack_id = 1, .chunk_flags = 1},
        {.seq = 1, .time_ns = 2000, .kind = TRACE_EV_CALLOC, .nmemb = 4, .size = 384, .ptr = 0x5555555592c0, .stack_id = 1, .chunk_flags = 1},
        {.seq = 2, .time_ns = 3000, .kind = TRACE_EV_MALLOPT, .param = -8, .value = 2, .result = 1},
        {.seq = 3, .time_ns = 4000, .kind = TRACE_EV_THREAD_START, .thread = 1, .os_tid = 777, .value = 0},
        {.seq = 4, .time_ns = 5000, .thread = 1, .kind = TRACE_EV_MALLOC, .size = 200000, .ptr = 0x7ffff7f00010, .stack_id = 1, .chunk_flags = 2},
        {.seq = 5, .time_ns = 6000, .thread = 1, .kind = TRACE_EV_MALLOC, .size = 1ull << 50, .err = 12},
        {.seq = 6, .time_ns = 7000, .kind = TRACE_EV_REALLOC, .old_ptr = 0x5555555592a0, .size = 1536, .ptr = 0x555555559450, .chunk_flags = 1},
        {.seq = 7, .time_ns = 8000, .kind = TRACE_EV_FREE, .ptr = 0x555555559450},
        {.seq = 8, .time_ns = 9000, .thread = 1, .kind = TRACE_EV_FREE, .ptr = 0x7ffff7f00010},
        {.seq = 9, .time_ns = 1500000000, .kind = TRACE_EV_MALLOC_TRIM, .size = 0, .result = 1},
    };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        assert_int_equal(trace_file_writer_event(w, &evs[i]), 0);
    trace_bytes = 0;
    assert_int_equal(trace_file_writer_close(w, err, sizeof err), 0);
    FILE *f = fopen(trace_path, "rb");
    fseek(f, 0, SEEK_END);
    trace_bytes = (uint64_t)ftell(f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(trace_path);
    unlink(out_path);
    unlink(err_path);
    rmdir(gen_tmpdir());
    return 0;
}

static const char *line_with(const char *text, const char *needle, char *line, size_t cap)
{
    const char *p = strstr(text, needle);
    if (!p)
        return NULL;
    if (*needle == '\n')
        p++;
    const char *start = p;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - start) : strlen(start);
    if (n >= cap)
        n = cap - 1;
    memcpy(line, start, n);
    line[n] = 0;
    return line;
}

static void event_lines(void **state)
{
    (void)state;
    const char *args[] = {trace_path};
    assert_int_equal(run_dump(1, args), 0);
    assert_string_equal(errtext, "");
    char line[512];
    /* One header line and ten event lines. */
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 11);
    /* The CALL column starts at the same place on every line. */
    size_t call_col = (size_t)(strstr(out, "CALL") - out);
    for (const char *p = strchr(out, '\n') + 1; *p; p = strchr(p, '\n') + 1) {
        assert_true(p[call_col - 1] == ' ');
        assert_true(p[call_col] >= 'a' && p[call_col] <= 'z');
    }
    assert_non_null(line_with(out, "malloc          24 B", line, sizeof line));
    assert_non_null(strstr(line, "0x5555555592a0"));
    assert_non_null(strstr(line, "0.000001000"));
    assert_non_null(strstr(line, "P--"));
    assert_non_null(line_with(out, "calloc", line, sizeof line));
    assert_non_null(strstr(line, "4 x 384 B"));
    assert_non_null(line_with(out, "mallopt", line, sizeof line));
    assert_non_null(strstr(line, "M_ARENA_MAX, 2"));
    assert_non_null(strstr(line, "= 1"));
    assert_non_null(line_with(out, "thread_start", line, sizeof line));
    assert_non_null(strstr(line, "thread 1 (tid 777) from thread 0"));
    assert_non_null(line_with(out, "195 KiB", line, sizeof line));      /* 200000 bytes */
    assert_non_null(strstr(line, "-M-"));
    assert_non_null(line_with(out, "NULL (ENOMEM)", line, sizeof line));
    assert_non_null(strstr(line, "1.00 PiB"));
    assert_non_null(line_with(out, "realloc", line, sizeof line));
    assert_non_null(strstr(line, "0x5555555592a0, 1.50 KiB"));
    assert_non_null(strstr(line, "0x555555559450"));
    assert_non_null(line_with(out, "malloc_trim", line, sizeof line));
    assert_non_null(strstr(line, "1.500000000"));
    /* Exact sizes with --bytes. */
    const char *args2[] = {"--bytes", trace_path};
    assert_int_equal(run_dump(2, args2), 0);
    assert_non_null(strstr(out, "0x5555555592a0, 1536 "));
    assert_non_null(strstr(out, "1125899906842624"));
    assert_null(strstr(out, "KiB"));
}

static void stack_frames(void **state)
{
    (void)state;
    const char *args[] = {"--stacks", trace_path};
    assert_int_equal(run_dump(2, args), 0);
    /* Printed once, under the first event using it, resolved against the module. */
    const char *s = strstr(out, "stack 1:");
    assert_non_null(s);
    assert_null(strstr(s + 1, "stack 1:"));
    assert_non_null(strstr(s, "/usr/bin/prog+0x1136"));
    assert_non_null(strstr(s, "0x7ffff7dd1d90"));
    assert_true(strstr(out, "malloc") < s);
}

static void stats_figures(void **state)
{
    (void)state;
    const char *args[] = {"--stats", trace_path};
    assert_int_equal(run_dump(2, args), 0);
    char line[512], want[128];
    assert_non_null(strstr(out, "ended:        cleanly"));
    assert_non_null(strstr(out, "events:       10 (seq 0 to 9, 0 gaps)"));
    snprintf(want, sizeof want, "bytes/event:  %.3f (%llu bytes read)", (double)trace_bytes / 10,
             (unsigned long long)trace_bytes);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "time span:    1.499999000 s"));
    assert_non_null(strstr(out, "malloc env:   MALLOC_TOP_PAD_=0; GLIBC_TUNABLES=glibc.malloc.tcache_count=0"));
    assert_non_null(strstr(out, "stacks seen:  1"));
    assert_non_null(strstr(out, "modules:      1"));
    /* Operations: 3 mallocs (one failed), 2 frees. */
    assert_non_null(line_with(out, "\nmalloc     ", line, sizeof line));
    int count;
    double share;
    char req[32], unit[8];
    unsigned failed;
    assert_int_equal(sscanf(line, "malloc %d %lf%% %31s %7s %u", &count, &share, req, unit, &failed), 5);
    assert_int_equal(count, 3);
    assert_int_equal(failed, 1);
    assert_non_null(line_with(out, "\nfree ", line, sizeof line));
    assert_int_equal(sscanf(line, "free %d", &count), 1);
    assert_int_equal(count, 2);
    /* Threads: 0 has 6 events (thread start names thread 1), 1 has 4. */
    assert_non_null(line_with(out, "\n0 ", line, sizeof line));
    unsigned ev, allocs, frees;
    assert_int_equal(sscanf(line, "0 %u %u %u", &ev, &allocs, &frees), 3);
    assert_int_equal(ev, 6);
    assert_int_equal(allocs, 3);
    assert_int_equal(frees, 1);
    assert_non_null(line_with(out, "\n1 ", line, sizeof line));
    assert_int_equal(sscanf(line, "1 %u %u %u", &ev, &allocs, &frees), 3);
    assert_int_equal(ev, 4);
    assert_int_equal(allocs, 2);
    assert_int_equal(frees, 1);
}

static void bad_files(void **state)
{
    (void)state;
    char cut[512], want[1024];
    gen_tmppath(cut, sizeof cut, "dump-cut.trace");
    static uint8_t bytes[1 << 16];
    FILE *f = fopen(trace_path, "rb");
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    /* Without its end marker: events printed, a note naming the offset, status 0. */
    f = fopen(cut, "wb");
    fwrite(bytes, 1, n - 28, f);
    fclose(f);
    const char *args[] = {cut};
    assert_int_equal(run_dump(1, args), 0);
    snprintf(want, sizeof want, "%s: note: trace cut short at offset %zu", cut, n - 28);
    assert_non_null(strstr(errtext, want));
    const char *sargs[] = {"--stats", cut};
    assert_int_equal(run_dump(2, sargs), 0);
    assert_non_null(strstr(out, "ended:        cut short at offset"));
    /* A damaged block: status 1, file and offset named. */
    bytes[n - 40] ^= 0x55;
    f = fopen(cut, "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
    assert_int_equal(run_dump(1, args), 1);
    assert_non_null(strstr(errtext, cut));
    assert_non_null(strstr(errtext, "damaged trace, stopped at offset"));
    assert_int_equal(run_dump(2, sargs), 1);
    assert_non_null(strstr(out, "ended:        DAMAGED at offset"));
    /* Not a trace / missing. */
    f = fopen(cut, "wb");
    fputs("hello\n", f);
    fclose(f);
    assert_int_equal(run_dump(1, args), 1);
    snprintf(want, sizeof want, "fragscope dump: %s: not a fragscope trace (no FRAGSCP1 magic at offset 0)", cut);
    assert_non_null(strstr(errtext, want));
    const char *missing[] = {"/nonexistent/trace"};
    assert_int_equal(run_dump(1, missing), 1);
    assert_non_null(strstr(errtext, "/nonexistent/trace: cannot open"));
    unlink(cut);
}

static void usage_and_help(void **state)
{
    (void)state;
    const char *help[] = {"--help"};
    assert_int_equal(run_dump(1, help), 0);
    assert_non_null(strstr(out, "usage: fragscope dump"));
    assert_non_null(strstr(out, "--stats"));
    const char *bad[] = {"--frobnicate", trace_path};
    assert_int_equal(run_dump(2, bad), 2);
    assert_non_null(strstr(errtext, "--frobnicate"));
    assert_int_equal(run_dump(0, NULL), 2);
    assert_non_null(strstr(errtext, "missing TRACE"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_lines),
        cmocka_unit_test(stack_frames),
        cmocka_unit_test(stats_figures),
        cmocka_unit_test(bad_files),
        cmocka_unit_test(usage_and_help),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
