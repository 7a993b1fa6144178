/* test_dump.c: `fragscope dump` on a known stream - the event lines and their columns, sizes
 * human-readable or exact, stack frames with their modules, the --stats figures, and the exit
 * status and messages for cut-short, damaged and missing files; --format json (JSON Lines, and
 * one object for --stats) parsed by python3's json module, equal to the text, with strings from
 * the trace escaped. cmd_dump runs in-process with stdout and stderr captured. */
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

/* Parses the last run_dump's output with python3 (a JSON document, or JSON Lines when lines is
 * set: d is then the list of objects), strictly (no NaN / Infinity), and prints expr evaluated
 * with d (expr: no single quotes). Fails the test when it is not JSON. */
static void py(int lines, const char *expr, char *got, size_t cap)
{
    char *cmd = NULL;
    size_t len = 0;
    FILE *c = open_memstream(&cmd, &len);
    assert_non_null(c);
    fprintf(c, "python3 -c 'import json, sys\n"
               "def bad(x): sys.exit(\"not JSON: \" + x)\n"
               "f = open(sys.argv[1], encoding=\"utf-8\")\n"
               "d = [json.loads(l, parse_constant=bad) for l in f] if %d else "
               "json.load(f, parse_constant=bad)\n"
               "print(eval(sys.argv[2]))' '%s' '%s'",
            lines, out_path, expr);
    fclose(c);
    FILE *p = popen(cmd, "r");
    free(cmd);
    assert_non_null(p);
    size_t n = fread(got, 1, cap - 1, p);
    got[n] = 0;
    if (n && got[n - 1] == '\n')
        got[n - 1] = 0;
    assert_int_equal(pclose(p), 0);
}

static void stats_json(void **state)
{
    (void)state;
    static char text[1 << 16], got[1 << 14];
    char want[1024], line[512];
    const char *targs[] = {"--stats", "--bytes", trace_path};
    assert_int_equal(run_dump(3, targs), 0);
    memcpy(text, out, sizeof text);
    const char *args[] = {"--stats", "--format", "json", trace_path};
    assert_int_equal(run_dump(4, args), 0);
    assert_string_equal(errtext, "");
    /* The figures the text gives, from the text. */
    unsigned long long events, s0, s1, gaps, bytes, span_s, span_ns;
    assert_non_null(line_with(text, "events:", line, sizeof line));
    assert_int_equal(sscanf(line, "events: %llu (seq %llu to %llu, %llu", &events, &s0, &s1, &gaps), 4);
    assert_non_null(line_with(text, "bytes/event:", line, sizeof line));
    assert_int_equal(sscanf(line, "bytes/event: %*f (%llu", &bytes), 1);
    assert_non_null(line_with(text, "time span:", line, sizeof line));
    assert_int_equal(sscanf(line, "time span: %llu.%llu", &span_s, &span_ns), 2);
    py(0, "[d[\"events\"], d[\"first_seq\"], d[\"last_seq\"], d[\"seq_gaps\"], d[\"bytes_read\"], "
          "d[\"time_span_ns\"], d[\"ended\"][\"how\"], d[\"stacks_seen\"], d[\"modules\"], "
          "round(d[\"bytes_per_event\"] * d[\"events\"])]",
       got, sizeof got);
    snprintf(want, sizeof want, "[%llu, %llu, %llu, %llu, %llu, %llu, 'clean', 1, 1, %llu]",
             events, s0, s1, gaps, bytes, span_s * 1000000000ull + span_ns, bytes);
    assert_string_equal(got, want);
    assert_int_equal(bytes, trace_bytes);
    /* Operations and threads: the text's rows, exact. */
    size_t lw = 0;
    want[0] = 0;
    const char *p = strstr(text, "\nOPERATION");
    assert_non_null(p);
    for (p = strchr(p + 1, '\n') + 1; *p != '\n'; p = strchr(p, '\n') + 1) {
        char call[32], req[32];
        unsigned long long cnt, fail;
        assert_int_equal(sscanf(p, "%31s %llu %*f%% %31s %llu", call, &cnt, req, &fail), 4);
        lw += (size_t)snprintf(want + lw, sizeof want - lw, "%s %llu %s %llu\n", call, cnt,
                               strcmp(req, "-") ? req : "0", fail);
    }
    py(0, "\"\".join(\"%s %d %d %d\\n\" % (o[\"call\"], o[\"count\"], o[\"requested\"], "
          "o[\"failed\"]) for o in d[\"operations\"])",
       got, sizeof got);
    assert_string_equal(got, want);
    lw = 0;
    p = strstr(text, "\nTHREAD");
    assert_non_null(p);
    for (p = strchr(p + 1, '\n') + 1; *p; p = strchr(p, '\n') + 1) {
        unsigned long long t[8];
        assert_int_equal(sscanf(p, "%llu %llu %llu %llu %llu %llu %llu %llu", &t[0], &t[1], &t[2],
                                &t[3], &t[4], &t[5], &t[6], &t[7]),
                         8);
        lw += (size_t)snprintf(want + lw, sizeof want - lw,
                               "%llu %llu %llu %llu %llu %llu %llu %llu\n", t[0], t[1], t[2], t[3],
                               t[4], t[5], t[6], t[7]);
    }
    py(0, "\"\".join(\"%d %d %d %d %d %d %d %d\\n\" % (t[\"thread\"], t[\"events\"], "
          "t[\"allocs\"], t[\"frees\"], t[\"requested\"], t[\"failed\"], t[\"first_seq\"], "
          "t[\"last_seq\"]) for t in d[\"threads\"])",
       got, sizeof got);
    assert_string_equal(got, want);
    assert_non_null(strstr(want, "0 6 3 1 "));
    /* The header. */
    py(0, "d[\"trace\"]", got, sizeof got);
    assert_string_equal(got, trace_path);
    py(0, "[d[\"header\"][\"exe\"], d[\"header\"][\"argv\"], "
          "d[\"header\"][\"malloc_env\"], d[\"header\"][\"pid\"], d[\"header\"][\"heap_start\"], "
          "d[\"header\"][\"stack_depth\"]]",
       got, sizeof got);
    assert_string_equal(got, "['/usr/bin/prog', ['prog', '-v'], ['MALLOC_TOP_PAD_=0', "
                             "'GLIBC_TUNABLES=glibc.malloc.tcache_count=0'], 321, "
                             "93824992251904, 32]");
}

static void events_json(void **state)
{
    (void)state;
    static char text[1 << 16], got[1 << 14];
    char want[4096];
    const char *targs[] = {trace_path};
    assert_int_equal(run_dump(1, targs), 0);
    memcpy(text, out, sizeof text);
    const char *args[] = {"--format", "json", trace_path};
    assert_int_equal(run_dump(3, args), 0);
    assert_string_equal(errtext, "");
    /* One line per event, in the text's order, same seq, time, thread, call and stack. */
    size_t lw = 0;
    for (const char *p = strchr(text, '\n') + 1; *p; p = strchr(p, '\n') + 1) {
        unsigned long long seq, sec, ns;
        unsigned thread;
        char call[32], stack[16];
        assert_int_equal(sscanf(p, "%llu %llu.%llu %u %31s", &seq, &sec, &ns, &thread, call), 5);
        const char *eol = strchr(p, '\n');
        const char *sp = eol;
        while (sp[-1] != ' ')
            sp--;
        snprintf(stack, sizeof stack, "%.*s", (int)(eol - sp), sp);
        lw += (size_t)snprintf(want + lw, sizeof want - lw, "%llu %llu %u %s %s\n", seq,
                               sec * 1000000000ull + ns, thread, call,
                               strcmp(stack, "-") ? stack : "None");
    }
    py(1, "\"\".join(\"%d %d %d %s %s\\n\" % (e[\"seq\"], e[\"time_ns\"], e[\"thread\"], "
          "e[\"call\"], e[\"stack\"]) for e in d)",
       got, sizeof got);
    assert_string_equal(got, want);
    /* Each call's arguments and result, exact. */
    py(1, "[(e[\"call\"], e.get(\"size\"), e.get(\"nmemb\"), e.get(\"old_ptr\"), e.get(\"ptr\"), "
          "e.get(\"err_name\"), e.get(\"param_name\"), e.get(\"value\"), e.get(\"result\"), "
          "e.get(\"chunk_flags\")) for e in d]",
       got, sizeof got);
    assert_string_equal(
        got, "[('malloc', 24, None, None, 93824992252576, None, None, None, None, 1), "
             "('calloc', 384, 4, None, 93824992252608, None, None, None, None, 1), "
             "('mallopt', None, None, None, None, None, 'M_ARENA_MAX', 2, 1, None), "
             "('thread_start', None, None, None, None, None, None, None, None, None), "
             "('malloc', 200000, None, None, 140737353089040, None, None, None, None, 2), "
             "('malloc', 1125899906842624, None, None, 0, 'ENOMEM', None, None, None, 0), "
             "('realloc', 1536, None, 93824992252576, 93824992253008, None, None, None, None, 1), "
             "('free', None, None, None, 93824992253008, None, None, None, None, None), "
             "('free', None, None, None, 140737353089040, None, None, None, None, None), "
             "('malloc_trim', None, None, None, None, None, None, None, 1, None)]");
    py(1, "[(e[\"os_tid\"], e[\"parent_thread\"], e[\"thread\"]) for e in d if e[\"call\"] == "
          "\"thread_start\"]",
       got, sizeof got);
    assert_string_equal(got, "[(777, 0, 1)]");
    /* --stacks: the frames on the first event using the stack only; --header: a first line. */
    const char *sargs[] = {"--format", "json", "--stacks", "--header", trace_path};
    assert_int_equal(run_dump(5, sargs), 0);
    py(1, "[d[0][\"header\"][\"exe\"], len(d)] + [(e[\"seq\"], e[\"frames\"]) for e in d if "
          "\"frames\" in e]",
       got, sizeof got);
    assert_string_equal(got, "['/usr/bin/prog', 11, (0, [{'address': 93824992235830, 'module': "
                             "'/usr/bin/prog', 'offset': 4406}, {'address': 140737351851408, "
                             "'module': None, 'offset': None}])]");
}

/* A trace whose path, program, arguments and module have quotes, a backslash, a newline, a byte
 * that is not UTF-8 and one that is (e-acute): escaped in both JSON outputs. */
static void json_escaping(void **state)
{
    (void)state;
    static char got[1 << 14];
    char weird[512], err[512];
    gen_tmppath(weird, sizeof weird, "we\"ird\nname\\.trace");
    const char *odd = "/opt/a\"b\\c\nd\xff\xc3\xa9\t";
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.page_size = 4096;
    h.stacks = 1;
    h.stack_depth = 8;
    snprintf(h.exe, sizeof h.exe, "%s", odd);
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    /* Not UTF-8 either: an overlong '/', a surrogate, a sequence cut short. */
    h.argv = (char *)"prog\n\"quoted\"\n\x01\n\xc0\xaf\xed\xa0\x80\xe2\x82";
    h.malloc_env = (char *)"";
    unlink(weird);
    struct trace_file_writer *w = trace_file_writer_open(weird, 0, &h, err, sizeof err);
    assert_non_null(w);
    struct trace_module m = {.load_address = 0x400000, .size = 0x1000};
    snprintf(m.path, sizeof m.path, "%s", odd);
    trace_file_writer_module(w, 0, &m);
    uint64_t frames[1] = {0x400123};
    trace_file_writer_stack(w, 0, 1, frames, 1);
    struct trace_event ev = {.seq = 0, .time_ns = 5, .kind = TRACE_EV_MALLOC, .size = 8,
                             .ptr = 0x5555555592a0, .stack_id = 1, .chunk_flags = 1};
    assert_int_equal(trace_file_writer_event(w, &ev), 0);
    assert_int_equal(trace_file_writer_close(w, err, sizeof err), 0);

    const char *sargs[] = {"--stats", "--format", "json", weird};
    assert_int_equal(run_dump(4, sargs), 0);
    assert_non_null(strstr(out, "\"exe\": \"/opt/a\\\"b\\\\c\\nd\\u00ff\xc3\xa9\\t\""));
    assert_non_null(strstr(out, "\"\\u0001\""));
    char want[1024];
    py(0, "ascii(d[\"trace\"])", got, sizeof got);
    snprintf(want, sizeof want, "'%s/we\"ird\\nname\\\\.trace'", gen_tmpdir());
    assert_string_equal(got, want);
    py(0, "ascii(d[\"header\"][\"exe\"])", got, sizeof got);
    assert_string_equal(got, "'/opt/a\"b\\\\c\\nd\\xff\\xe9\\t'");
    py(0, "ascii(d[\"header\"][\"argv\"])", got, sizeof got);
    assert_string_equal(got, "['prog', '\"quoted\"', '\\x01', "
                             "'\\xc0\\xaf\\xed\\xa0\\x80\\xe2\\x82']");
    assert_non_null(strstr(out, "\"\\u00c0\\u00af\\u00ed\\u00a0\\u0080\\u00e2\\u0082\""));
    const char *eargs[] = {"--format", "json", "--stacks", weird};
    assert_int_equal(run_dump(4, eargs), 0);
    py(1, "ascii(d[0][\"frames\"][0][\"module\"])", got, sizeof got);
    assert_string_equal(got, "'/opt/a\"b\\\\c\\nd\\xff\\xe9\\t'");
    unlink(weird);
}

/* Cut short and damaged: JSON still whole, "ended" says which, the text's exit statuses. */
static void json_bad_files(void **state)
{
    (void)state;
    static char got[1 << 12];
    char cut[512], want[256];
    gen_tmppath(cut, sizeof cut, "dump-cut-json.trace");
    static uint8_t bytes[1 << 16];
    FILE *f = fopen(trace_path, "rb");
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    f = fopen(cut, "wb");
    fwrite(bytes, 1, n - 28, f);
    fclose(f);
    const char *sargs[] = {"--stats", "--format", "json", cut};
    assert_int_equal(run_dump(4, sargs), 0);
    py(0, "[d[\"ended\"][\"how\"], d[\"ended\"][\"offset\"], d[\"ended\"][\"reason\"] is not None]",
       got, sizeof got);
    snprintf(want, sizeof want, "['cut_short', %zu, True]", n - 28);
    assert_string_equal(got, want);
    const char *eargs[] = {"--format", "json", cut};
    assert_int_equal(run_dump(3, eargs), 0);
    py(1, "len(d)", got, sizeof got);
    assert_string_equal(got, "10");
    assert_non_null(strstr(errtext, "cut short"));
    bytes[n - 40] ^= 0x55;
    f = fopen(cut, "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
    assert_int_equal(run_dump(4, sargs), 1);
    py(0, "d[\"ended\"][\"how\"]", got, sizeof got);
    assert_string_equal(got, "damaged");
    assert_int_equal(run_dump(3, eargs), 1);
    py(1, "len(d) < 10", got, sizeof got);
    assert_string_equal(got, "True");
    assert_non_null(strstr(errtext, "damaged trace"));
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
    const char *fmt[] = {"--format", "yaml", trace_path};
    assert_int_equal(run_dump(3, fmt), 2);
    assert_non_null(strstr(errtext, "--format 'yaml'"));
    const char *nofmt[] = {trace_path, "--format"};
    assert_int_equal(run_dump(2, nofmt), 2);
    assert_non_null(strstr(errtext, "'--format' needs a value"));
    assert_int_equal(run_dump(1, help), 0);
    assert_non_null(strstr(out, "--format F"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_lines),
        cmocka_unit_test(stack_frames),
        cmocka_unit_test(stats_figures),
        cmocka_unit_test(bad_files),
        cmocka_unit_test(stats_json),
        cmocka_unit_test(events_json),
        cmocka_unit_test(json_escaping),
        cmocka_unit_test(json_bad_files),
        cmocka_unit_test(usage_and_help),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
