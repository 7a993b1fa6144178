/* test_analysis.c: the whole analysis in-process, on a trace written here and replayed through
 * the real model (so it runs under the sanitizers too): the 4000-block pattern scaled down to
 * 400 pairs, stored with analyzer_replay_to_db, then the report's cause and what-ifs, and the
 * `report`, `heap`, `flame` and `sweep` subcommands on the database (their text, and `heap` and
 * `sweep` --format json checked by python3's json module against the text).
 *
 * The expectations follow glibc 2.36's rules (traces/README.md, 4000-blocks): the first 7 small
 * chunks freed go to the tcache, the rest to fastbin 0; malloc(2000) consolidates the fastbins,
 * but the 7 tcache chunks below top keep the heap from being trimmed; tcache_count=0 gives it
 * back (down to the initial 132 KiB heap), mxfast=0 does not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../cli.h"
#include "analyzer.h"
#include "test_support.h"

#define PAIRS 400

static char dir[256], trace_path[300], db_path[300];

static uint64_t seq;
static void event(struct trace_file_writer *w, struct trace_event ev)
{
    ev.seq = seq++;
    ev.time_ns = seq * 1000;
    assert_int_equal(trace_file_writer_event(w, &ev), 0);
}

/* Writes the pairs trace to path, its call sites in a module named module_path. */
static int write_pairs(const char *path, const char *module_path)
{
    seq = 0;
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.version = TRACE_VERSION;
    h.pid = 4242;
    h.ppid = 1;
    h.heap_start = 0x555555559000ull;
    h.page_size = 4096;
    h.cpu_count = 2;
    h.stacks = 1;
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    snprintf(h.exe, sizeof h.exe, "/synthetic/pairs");
    h.argv = (char *)"pairs";
    h.malloc_env = (char *)"";
    char err[512];
    struct trace_file_writer *w = trace_file_writer_open(path, 1, &h, err, sizeof err);
    if (!w)
        return -1;
    /* Two call sites in a module that does not exist on disk: named module+offset. */
    struct trace_module m;
    memset(&m, 0, sizeof m);
    m.load_address = 0x400000;
    m.size = 0x10000;
    snprintf(m.path, sizeof m.path, "%s", module_path);
    trace_file_writer_module(w, 0, &m);
    uint64_t big_frames[] = {0x401234, 0x405678}, small_frames[] = {0x401300, 0x405678};
    trace_file_writer_stack(w, 0, 1, big_frames, 2);
    trace_file_writer_stack(w, 0, 2, small_frames, 2);
    for (uint64_t i = 0; i < PAIRS; i++) {
        event(w, (struct trace_event){.kind = TRACE_EV_MALLOC, .size = 52722, .stack_id = 1,
                                      .ptr = 0x10000000 + i * 0x10000,
                                      .chunk_flags = TRACE_CHUNK_PREV_INUSE});
        event(w, (struct trace_event){.kind = TRACE_EV_MALLOC, .size = 1, .stack_id = 2,
                                      .ptr = 0x10000000 + i * 0x10000 + 0x8000,
                                      .chunk_flags = TRACE_CHUNK_PREV_INUSE});
    }
    for (uint64_t i = PAIRS; i-- > 0;) {
        event(w, (struct trace_event){.kind = TRACE_EV_FREE, .stack_id = 2,
                                      .ptr = 0x10000000 + i * 0x10000 + 0x8000});
        event(w, (struct trace_event){.kind = TRACE_EV_FREE, .stack_id = 1,
                                      .ptr = 0x10000000 + i * 0x10000});
    }
    event(w, (struct trace_event){.kind = TRACE_EV_MALLOC, .size = 2000, .stack_id = 1,
                                  .ptr = 0x20000000, .chunk_flags = TRACE_CHUNK_PREV_INUSE});
    event(w, (struct trace_event){.kind = TRACE_EV_FREE, .stack_id = 1, .ptr = 0x20000000});
    return trace_file_writer_close(w, err, sizeof err) ? -1 : 0;
}

/* Replays a trace into a new database (with the analysis). */
static int replay_to_db(const char *trace, const char *db)
{
    char err[512];
    struct replay_options ro;
    replay_options_default(&ro);
    ro.trace_path = trace;
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.quiet = 1;
    struct replay_summary sum;
    if (analyzer_replay_to_db(&ro, db, &io, &sum, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return sum.completed ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    if (ts_tmpdir(dir, sizeof dir, "analyzer-analysis") != 0)
        return -1;
    snprintf(trace_path, sizeof trace_path, "%s/pairs.fstrace", dir);
    snprintf(db_path, sizeof db_path, "%s/pairs.db", dir);
    if (write_pairs(trace_path, "/synthetic/pairs"))
        return -1;
    return replay_to_db(trace_path, db_path);
}

static int teardown(void **state)
{
    (void)state;
    return ts_rmtree(dir);
}

static const struct analyzer_whatif *whatif(const struct analyzer_finding *f, const char *setting)
{
    for (unsigned i = 0; i < f->whatif_count; i++)
        if (!strcmp(f->whatif[i].setting, setting))
            return &f->whatif[i];
    fail_msg("finding %s has no what-if '%s'", f->kind, setting);
    abort();
}

static void report_model(void **state)
{
    (void)state;
    char err[512];
    struct sqlite3 *db = analyzer_db_open(db_path, 0, err, sizeof err);
    assert_non_null(db);
    struct analyzer_report r;
    assert_int_equal(analyzer_report_load(db, -1, &r, err, sizeof err), 0);
    analyzer_db_close(db);
    assert_true(r.run.completed);
    assert_int_equal(r.run.events, 4 * PAIRS + 2);

    /* Exact ledger at the end: it adds up, 7 x 32 bytes in the tcache, the rest free. */
    const struct analyzer_ledger *l = &r.at_end;
    assert_true(l->exact);
    assert_int_equal(l->held + l->overhead + l->tcache + l->fastbins + l->unsorted + l->small +
                         l->large + l->top + l->mmapped,
                     l->rss);
    assert_int_equal(l->rss, r.measures.final_rss);
    assert_int_equal(l->tcache, 7 * 32);
    assert_int_equal(l->held, 0);
    assert_true(l->large + l->unsorted > (uint64_t)PAIRS * 52736 / 10 * 9);

    assert_true(r.finding_count >= 2);
    const struct analyzer_finding *f = &r.findings[0];
    assert_string_equal(f->kind, "top-pinned-by-tcache");
    assert_int_equal(f->chunk_size, 32);
    assert_non_null(strstr(f->evidence, "7 tcache chunks"));
    assert_non_null(strstr(f->site, "pairs+0x1300"));
    const struct analyzer_whatif *w = whatif(f, "tcache_count=0");
    assert_true(w->helps);
    assert_int_equal(w->after, 135168);          /* the first sbrk: 656 + 128 KiB + 32, paged */
    assert_false(whatif(f, "mxfast=0")->helps);
    assert_true(whatif(f, "malloc_trim(0) at the end")->helps);

    /* Right after the frees: PAIRS - 7 fastbin chunks between the big ones. */
    size_t k = 0;
    while (k < r.finding_count && strcmp(r.findings[k].kind, "fastbin-blocks-coalescing"))
        k++;
    assert_true(k < r.finding_count);
    const struct analyzer_finding *g = &r.findings[k];
    char want[64];
    snprintf(want, sizeof want, "%d fastbin chunks", PAIRS - 7);
    assert_non_null(strstr(g->evidence, want));
    assert_int_equal(g->step, 4 * PAIRS);
    assert_true(whatif(g, "tcache_count=0 mxfast=0")->helps);
    assert_false(whatif(g, "mxfast=0")->helps);
    analyzer_report_free(&r);
}

static char cap_err[16384];     /* the stderr of the last capture() */

static void read_text(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    fclose(f);
}

/* Runs a subcommand in-process with stdout in a file (dir/out.txt, kept until the next call) and
 * stderr in cap_err; returns its status and the output. */
static int capture(int (*cmd)(int, char **), char **argv, int argc, char *out, size_t cap)
{
    char path[320], epath[320];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    snprintf(epath, sizeof epath, "%s/err.txt", dir);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(1), saved_err = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int efd = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && efd >= 0 && saved >= 0 && saved_err >= 0);
    dup2(fd, 1);
    dup2(efd, 2);
    close(fd);
    close(efd);
    int rc = cmd(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, 1);
    dup2(saved_err, 2);
    close(saved);
    close(saved_err);
    read_text(path, out, cap);
    read_text(epath, cap_err, sizeof cap_err);
    return rc;
}

/* Parses the last capture's output with python3's json module (strictly: no NaN or Infinity)
 * and prints expr evaluated with d the document (expr: no single quotes). Fails the test when
 * it is not JSON. */
static void py(const char *expr, char *out, size_t cap)
{
    char *cmd = NULL;
    size_t len = 0;
    FILE *c = open_memstream(&cmd, &len);
    assert_non_null(c);
    fprintf(c, "python3 -c 'import json, sys\n"
               "def bad(x): sys.exit(\"not JSON: \" + x)\n"
               "d = json.load(open(sys.argv[1], encoding=\"utf-8\"), parse_constant=bad)\n"
               "print(eval(sys.argv[2]))' '%s/out.txt' '%s'",
            dir, expr);
    fclose(c);
    FILE *p = popen(cmd, "r");
    free(cmd);
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    if (n && out[n - 1] == '\n')
        out[n - 1] = 0;
    assert_int_equal(pclose(p), 0);
}

static void subcommands(void **state)
{
    (void)state;
    static char out[1 << 20];
    char *report_json[] = {"report", db_path, "--format", "json", NULL};
    assert_int_equal(capture(cmd_report, report_json, 4, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"kind\": \"top-pinned-by-tcache\""));
    assert_non_null(strstr(out, "\"setting\": \"tcache_count=0\""));

    char *report_text[] = {"report", db_path, "--bytes", NULL};
    assert_int_equal(capture(cmd_report, report_text, 3, out, sizeof out), 0);
    assert_non_null(strstr(out, "tcache_count=0: final heap RSS"));
    assert_non_null(strstr(out, "-> 135168"));

    char step[32];
    snprintf(step, sizeof step, "%d", 4 * PAIRS);
    char *heap[] = {"heap", db_path, "--step", step, "--arena", "0", NULL};
    assert_int_equal(capture(cmd_heap, heap, 6, out, sizeof out), 0);
    assert_non_null(strstr(out, "  tcache:"));
    assert_non_null(strstr(out, "  fastbins:"));
    snprintf(step, sizeof step, "(%d more, %d in all)", PAIRS - 7 - 8, PAIRS - 7);
    assert_non_null(strstr(out, step));
    char *heap_bad[] = {"heap", db_path, "--step", "999999", NULL};
    assert_int_equal(capture(cmd_heap, heap_bad, 4, out, sizeof out), 2);

    char *flame[] = {"flame", db_path, "--only", "pinned", NULL};
    assert_int_equal(capture(cmd_flame, flame, 4, out, sizeof out), 0);
    assert_non_null(strstr(out, "pinned;pairs+0x5678;pairs+0x1300 "));
    assert_null(strstr(out, "live;"));

    char sweep_db[320];
    snprintf(sweep_db, sizeof sweep_db, "%s/sweep.db", dir);
    char *sweep[] = {"sweep", trace_path, "--set", "tcache_count=0,7", "--db", sweep_db, "-j", "2",
                     NULL};
    assert_int_equal(capture(cmd_sweep, sweep, 8, out, sizeof out), 0);
    char *first = strchr(out, '\n');
    assert_non_null(first);
    assert_non_null(strstr(first, "tcache_count=0"));
    assert_true(strstr(first, "tcache_count=0") < strstr(first, "tcache_count=7"));
    char *sweep_bad[] = {"sweep", trace_path, "--set", "nosuch=1", "--db", sweep_db, NULL};
    assert_int_equal(capture(cmd_sweep, sweep_bad, 6, out, sizeof out), 2);

    /* The sweep's runs are reportable (analysed on demand). */
    char *report_run[] = {"report", sweep_db, "--run", "1", "--format", "json", NULL};
    assert_int_equal(capture(cmd_report, report_run, 6, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"completed\": true"));
}

/* `heap` text (--bytes --all) in the canonical forms the JSON checks below print: one
 * "0xADDRESS SIZE STATE" line per chunk, "KIND/INDEX:0xADDRESS:SIZE " per bin entry in order,
 * and the top's size. */
static void heap_text_canon(const char *text, char *chunks, size_t ccap, char *bins, size_t bcap,
                            unsigned long long *top)
{
    size_t lc = 0, lb = 0;
    const char *kind = NULL;
    int idx = -1;
    chunks[0] = bins[0] = 0;
    *top = 0;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char l[4096];
        snprintf(l, sizeof l, "%.*s", (int)n, line);
        line = nl ? nl + 1 : line + n;
        unsigned long long a, sz;
        char st[16];
        if (sscanf(l, "  0x%llx %llu %15s", &a, &sz, st) == 3) {
            lc += (size_t)snprintf(chunks + lc, ccap - lc, "0x%llx %llu %s\n", a, sz, st);
            continue;
        }
        if (!strcmp(l, "  tcache:"))
            kind = "tcache";
        else if (!strcmp(l, "  fastbins:"))
            kind = "fastbins";
        else if (!strcmp(l, "  unsorted bin:"))
            kind = "unsorted";
        else if (!strcmp(l, "  small bins:"))
            kind = "small";
        else if (!strcmp(l, "  large bins:"))
            kind = "large";
        else if (sscanf(l, "top: %llu", top) == 1)
            kind = NULL;
        if (!kind)
            continue;
        const char *p = strchr(l, '[');
        if (p)
            assert_int_equal(sscanf(p, "[%d]", &idx), 1);
        for (p = strstr(l, "-> 0x"); p; p = strstr(p + 1, "-> 0x")) {
            assert_int_equal(sscanf(p, "-> 0x%llx (%llu)", &a, &sz), 2);
            lb += (size_t)snprintf(bins + lb, bcap - lb, "%s/%d:0x%llx:%llu ", kind, idx, a, sz);
        }
        assert_true(lc < ccap && lb < bcap);
    }
}

#define PY_CHUNKS "\"\".join(\"0x%x %d %s\\n\" % (c[\"address\"], c[\"size\"], c[\"state\"]) " \
                  "for a in d[\"arenas\"] for c in a[\"chunks\"])"
#define PY_BINS "\"\".join(\"%s/%d:0x%x:%d \" % (k, b[\"index\"], c[\"address\"], c[\"size\"]) " \
                "for a in d[\"arenas\"] for k, bl in [(\"tcache\", [b for t in a[\"tcache\"] " \
                "for b in t[\"bins\"]])] + [(k, a[k]) for k in (\"fastbins\", \"unsorted\", " \
                "\"small\", \"large\")] for b in bl for c in b[\"chunks\"])"

/* heap --format json: the same chunks, bins (in list order) and top as the text, every entry of
 * every bin, call sites; sweep --format json: the same ranking as the text; strings from the
 * trace (its path, module paths in call sites) escaped; bad --format values refused. */
static void json_formats(void **state)
{
    (void)state;
    static char text[1 << 20], out[1 << 20], got[1 << 20], want_chunks[1 << 20],
        want_bins[1 << 18];
    char step[32], want[1024];
    unsigned long long top;
    snprintf(step, sizeof step, "%d", 4 * PAIRS);
    char *heap_text[] = {"heap", db_path, "--step", step, "--arena", "0", "--bytes", "--all", NULL};
    assert_int_equal(capture(cmd_heap, heap_text, 8, text, sizeof text), 0);
    heap_text_canon(text, want_chunks, sizeof want_chunks, want_bins, sizeof want_bins, &top);
    assert_non_null(strstr(want_bins, "tcache/0:"));
    assert_non_null(strstr(want_bins, "fastbins/0:"));
    char *heap_json[] = {"heap", db_path, "--step", step, "--arena", "0", "--format", "json",
                         NULL};
    assert_int_equal(capture(cmd_heap, heap_json, 8, out, sizeof out), 0);
    py(PY_CHUNKS, got, sizeof got);
    assert_string_equal(got, want_chunks);
    py(PY_BINS, got, sizeof got);
    assert_string_equal(got, want_bins);
    py("d[\"arenas\"][0][\"top\"][\"size\"]", got, sizeof got);
    assert_int_equal(strtoull(got, NULL, 10), top);
    /* Every fastbin entry (the text shows 8 of each list by default), one arena, thread 0. */
    py("[d[\"step\"], d[\"source\"], [a[\"arena\"] for a in d[\"arenas\"]], "
       "sum(len(b[\"chunks\"]) for b in d[\"arenas\"][0][\"fastbins\"]), "
       "[(t[\"thread\"], sum(len(b[\"chunks\"]) for b in t[\"bins\"])) for t in "
       "d[\"arenas\"][0][\"tcache\"]]]",
       got, sizeof got);
    snprintf(want, sizeof want, "[%d, 'replay', [0], %d, [(0, 7)]]", 4 * PAIRS, PAIRS - 7);
    assert_string_equal(got, want);
    /* The freed chunks name the step and site that allocated them. */
    py("sorted(set(c[\"site\"] for a in d[\"arenas\"] for c in a[\"chunks\"] if c[\"site\"]))",
       got, sizeof got);
    assert_string_equal(got, "['pairs+0x1234', 'pairs+0x1300']");

    /* A trace path and a module path with quotes, a backslash, a newline, a byte that is not
     * UTF-8 and one that is (e-acute). */
    char weird_trace[400], weird_db[320];
    snprintf(weird_trace, sizeof weird_trace, "%s/we\"ird\nname.fstrace", dir);
    snprintf(weird_db, sizeof weird_db, "%s/weird.db", dir);
    assert_int_equal(write_pairs(weird_trace, "/synthetic/a\"b\\c\nd\xff\xc3\xa9"), 0);
    assert_int_equal(replay_to_db(weird_trace, weird_db), 0);
    char *heap_weird[] = {"heap", weird_db, "--step", step, "--format", "json", NULL};
    assert_int_equal(capture(cmd_heap, heap_weird, 6, out, sizeof out), 0);
    snprintf(want, sizeof want, "\"trace\": \"%s/we\\\"ird\\nname.fstrace\"", dir);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "\"site\": \"a\\\"b\\\\c\\nd\\u00ff\xc3\xa9+0x1300\""));
    py("ascii(d[\"trace\"])", got, sizeof got);
    snprintf(want, sizeof want, "'%s/we\"ird\\nname.fstrace'", dir);
    assert_string_equal(got, want);
    py("ascii(sorted(set(c[\"site\"] for a in d[\"arenas\"] for c in a[\"chunks\"] if "
       "c[\"site\"])))",
       got, sizeof got);
    assert_string_equal(got, "['a\"b\\\\c\\nd\\xff\\xe9+0x1234', 'a\"b\\\\c\\nd\\xff\\xe9+0x1300']");

    /* Trace gone: the stored end snapshot gives the same chunks, bins (in address order) and
     * top as the replay did. */
    char end_step[32], moved[420];
    snprintf(end_step, sizeof end_step, "%d", 4 * PAIRS + 2);
    char *heap_end[] = {"heap", weird_db, "--step", end_step, "--format", "json", NULL};
    assert_int_equal(capture(cmd_heap, heap_end, 6, out, sizeof out), 0);
#define PY_HEAP_SORTED "[d[\"source\"], " PY_CHUNKS ", sorted(" PY_BINS ".split()), " \
                       "[a[\"top\"] for a in d[\"arenas\"]]]"
    py(PY_HEAP_SORTED, want_chunks, sizeof want_chunks);
    snprintf(moved, sizeof moved, "%s.moved", weird_trace);
    assert_int_equal(rename(weird_trace, moved), 0);
    assert_int_equal(capture(cmd_heap, heap_end, 6, out, sizeof out), 0);
    py(PY_HEAP_SORTED, got, sizeof got);
    assert_int_equal(rename(moved, weird_trace), 0);
    assert_non_null(strstr(want_chunks, "['replay', "));
    assert_non_null(strstr(got, "['snapshot', "));
    assert_string_equal(got + strlen("['snapshot'"), want_chunks + strlen("['replay'"));

    /* sweep: the text's ranking, exact. */
    char sweep_db[320];
    snprintf(sweep_db, sizeof sweep_db, "%s/sweep-json.db", dir);
    char *sweep_text[] = {"sweep", weird_trace, "--set", "tcache_count=0,7", "--set", "mxfast=0,64",
                          "--db", sweep_db, "-j", "2", "--bytes", NULL};
    assert_int_equal(capture(cmd_sweep, sweep_text, 11, text, sizeof text), 0);
    size_t lw = 0;
    want_chunks[0] = 0;
    for (const char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        long long run;
        char s1[64], s2[64], peak[32], fin[32], pf[32], ff[32];
        assert_int_equal(sscanf(line + 1, "%lld %63s %63s %31s %31s %31s %31s", &run, s1, s2,
                                peak, fin, pf, ff),
                         7);
        lw += (size_t)snprintf(want_chunks + lw, sizeof want_chunks - lw, "%s %s %s %s %s %s\n",
                               s1, s2, peak, fin, pf, ff);
    }
    assert_int_equal(lw > 0, 1);
    char *sweep_json[] = {"sweep", weird_trace, "--set", "tcache_count=0,7", "--set", "mxfast=0,64",
                          "--db", sweep_db, "-j", "2", "--format", "json", NULL};
    assert_int_equal(capture(cmd_sweep, sweep_json, 12, out, sizeof out), 0);
    py("\"\".join(\"%s %d %s %s %s\\n\" % (r[\"settings\"], r[\"peak_rss\"], "
       "\"-\" if r[\"final_rss\"] is None else r[\"final_rss\"], "
       "\"-\" if r[\"peak_frag\"] is None else \"%.2f\" % r[\"peak_frag\"], "
       "\"-\" if r[\"final_frag\"] is None else \"%.2f\" % r[\"final_frag\"]) for r in d)",
       got, sizeof got);
    assert_string_equal(got, want_chunks);
    py("[len(d), len(set(r[\"trace\"] for r in d)), sorted(set((r[\"native\"], "
       "r[\"allocator\"], r[\"failed\"], type(r[\"run\"]).__name__, r[\"seconds\"] > 0) "
       "for r in d))]",
       got, sizeof got);
    assert_string_equal(got, "[4, 1, [(False, None, False, 'int', True)]]");
    py("ascii(d[0][\"trace\"])", got, sizeof got);
    snprintf(want, sizeof want, "'%s/we\"ird\\nname.fstrace'", dir);
    assert_string_equal(got, want);

    /* Bad formats: usage errors naming the value. */
    char *heap_bad[] = {"heap", db_path, "--step", step, "--format", "xml", NULL};
    assert_int_equal(capture(cmd_heap, heap_bad, 6, out, sizeof out), 2);
    assert_non_null(strstr(cap_err, "--format 'xml'"));
    char *sweep_bad[] = {"sweep", trace_path, "--set", "tcache_count=0", "--db", sweep_db,
                         "--format", "JSON", NULL};
    assert_int_equal(capture(cmd_sweep, sweep_bad, 8, out, sizeof out), 2);
    assert_non_null(strstr(cap_err, "--format 'JSON'"));
    /* --help names the option. */
    char *heap_help[] = {"heap", "--help", NULL};
    assert_int_equal(capture(cmd_heap, heap_help, 2, out, sizeof out), 0);
    assert_non_null(strstr(out, "--format F"));
    char *sweep_help[] = {"sweep", "--help", NULL};
    assert_int_equal(capture(cmd_sweep, sweep_help, 2, out, sizeof out), 0);
    assert_non_null(strstr(out, "--format F"));
}

static volatile int stop_flag;
static void on_alarm(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* A replay stopped the way SIGINT stops it: the steps so far are stored and consistent, the run
 * is marked incomplete, and no analysis ran. */
static void interrupted_replay(void **state)
{
    (void)state;
    char path[320], db[320], err[512];
    snprintf(path, sizeof path, "%s/long.fstrace", dir);
    snprintf(db, sizeof db, "%s/long.db", dir);
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.version = TRACE_VERSION;
    h.heap_start = 0x555555559000ull;
    h.page_size = 4096;
    h.cpu_count = 2;
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    h.argv = (char *)"long";
    h.malloc_env = (char *)"";
    struct trace_file_writer *w = trace_file_writer_open(path, 1, &h, err, sizeof err);
    assert_non_null(w);
    seq = 0;
    for (uint64_t i = 0; i < 2000000; i++) {
        uint64_t p = 0x30000000 + (i % 512) * 0x1000;
        if (i % 2 == 0)
            event(w, (struct trace_event){.kind = TRACE_EV_MALLOC, .size = 16 + i % 1000,
                                          .ptr = p, .chunk_flags = TRACE_CHUNK_PREV_INUSE});
        else
            event(w, (struct trace_event){.kind = TRACE_EV_FREE, .ptr = p});
    }
    assert_int_equal(trace_file_writer_close(w, err, sizeof err), 0);

    struct replay_options ro;
    replay_options_default(&ro);
    ro.trace_path = path;
    stop_flag = 0;
    ro.interrupted = &stop_flag;
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.quiet = 1;
    io.commit_every = 4096;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct replay_summary sum;
    assert_int_equal(analyzer_replay_to_db(&ro, db, &io, &sum, err, sizeof err), 0);
    signal(SIGALRM, SIG_DFL);
    assert_true(stop_flag);
    assert_false(sum.completed);
    assert_true(sum.steps > 0 && sum.steps < 2000000);

    sqlite3 *d = NULL;
    assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(d, "SELECT completed, final_step, steps_stored, analyzed, "
                                           "(SELECT count(*) FROM steps), (SELECT count(*) FROM "
                                           "findings) FROM runs",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 0);
    assert_int_equal((uint64_t)sqlite3_column_int64(q, 1), sum.steps);
    assert_int_equal(sqlite3_column_int64(q, 2), sqlite3_column_int64(q, 4));
    assert_int_equal(sqlite3_column_int64(q, 4), (int64_t)sum.steps);
    assert_int_equal(sqlite3_column_int(q, 3), 0);
    assert_int_equal(sqlite3_column_int(q, 5), 0);
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(d, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(d);
}

/* The findings' what-if replays give the same numbers run in worker processes side by side as
 * run one after another. */
static char *findings_text(const char *path)
{
    sqlite3 *d = NULL;
    assert_int_equal(sqlite3_open(path, &d), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(d, "SELECT kind || '|' || evidence || '|' || fix FROM "
                                           "findings UNION ALL SELECT setting || '|' || "
                                           "rss_after || '|' || system_after || '|' || "
                                           "peak_after || '|' || helps FROM whatifs UNION ALL "
                                           "SELECT name || '|' || value FROM measures",
                                        -1, &q, NULL),
                     SQLITE_OK);
    size_t cap = 1 << 16, n = 0;
    char *text = calloc(1, cap);
    assert_non_null(text);
    while (sqlite3_step(q) == SQLITE_ROW)
        n += (size_t)snprintf(text + n, cap - n, "%s\n", (const char *)sqlite3_column_text(q, 0));
    assert_true(n < cap);
    sqlite3_finalize(q);
    sqlite3_close(d);
    return text;
}

static void whatifs_in_parallel(void **state)
{
    (void)state;
    char texts[2][300], err[512];
    char *got[2];
    for (int w = 0; w < 2; w++) {
        snprintf(texts[w], sizeof texts[w], "%s/workers%d.db", dir, w + 1);
        struct replay_options ro;
        replay_options_default(&ro);
        ro.trace_path = trace_path;
        struct analyzer_ingest_options io;
        analyzer_ingest_options_default(&io);
        io.quiet = 1;
        io.whatif_workers = (unsigned)w + 1;
        struct replay_summary sum;
        assert_int_equal(analyzer_replay_to_db(&ro, texts[w], &io, &sum, err, sizeof err), 0);
        got[w] = findings_text(texts[w]);
    }
    assert_non_null(strstr(got[0], "tcache_count=0|"));
    assert_string_equal(got[0], got[1]);
    free(got[0]);
    free(got[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(report_model),
        cmocka_unit_test(subcommands),
        cmocka_unit_test(json_formats),
        cmocka_unit_test(interrupted_replay),
        cmocka_unit_test(whatifs_in_parallel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
