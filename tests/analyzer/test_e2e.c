/* test_e2e.c: the report on real programs, recorded at test time, against the real glibc.
 *
 * Each case records a small program with `fragscope record`, stores its replay with
 * `fragscope replay --db`, loads the report and checks its cause (the finding ranked first) and
 * its numbers: the heap RSS the report gives for the run, and for each verified fix, against
 * what the same program measures on the real glibc when run with that setting (the programs
 * print their own heap RSS, see traces/heapstat.h). Label nosan: the recorder is an LD_PRELOAD
 * library and the programs measure the real heap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "analyzer.h"
#include "test_support.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return ts_tmpdir(dir, sizeof dir, "analyzer-e2e");
}

static int teardown(void **state)
{
    (void)state;
    return ts_rmtree(dir);
}

/* The heap RSS (main heap + arena heaps) a heapstat line of `phase` reports. */
static uint64_t heap_rss_of(const char *out, const char *phase)
{
    char key[64];
    snprintf(key, sizeof key, "phase=%s ", phase);
    const char *line = strstr(out, key);
    assert_non_null(line);
    const char *a = strstr(line, " heap_rss="), *b = strstr(line, " nonmain_rss=");
    assert_non_null(a);
    assert_non_null(b);
    return strtoull(a + 10, NULL, 10) + strtoull(b + 13, NULL, 10);
}

/* Field NAME (brk_offset, smblks, fordblks, ...) of the heapstat line of `phase`. */
static uint64_t field_of(const char *out, const char *phase, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "phase=%s ", phase);
    const char *line = strstr(out, key);
    assert_non_null(line);
    const char *eol = strchr(line, '\n');
    snprintf(key, sizeof key, " %s=", name);
    const char *a = strstr(line, key);
    assert_non_null(a);
    assert_true(!eol || a < eol);
    return strtoull(a + strlen(key), NULL, 10);
}

/* Real run of PROG with an environment prefix; the heap RSS of `phase`. */
static uint64_t real(const char *env, const char *prog, const char *args, const char *phase)
{
    char cmd[2048], out[16384];
    snprintf(cmd, sizeof cmd, "env %s '%s' %s", env, prog, args);
    assert_int_equal(ts_shell(cmd, out, sizeof out), 0);
    return heap_rss_of(out, phase);
}

/* Records PROG ARGS and stores the replay in NAME.db; loads the report; returns the recording's
 * stdout in out. */
static void record_and_report(const char *name, const char *prog, const char *args,
                              struct analyzer_report *r, char *out, size_t cap)
{
    char cmd[4096], trace[512], db[512], err[512];
    snprintf(trace, sizeof trace, "%s/%s.fstrace", dir, name);
    snprintf(db, sizeof db, "%s/%s.db", dir, name);
    snprintf(cmd, sizeof cmd, "'%s' record -q -o '%s' -- '%s' %s", FRAGSCOPE_BIN, trace, prog,
             args);
    assert_int_equal(ts_shell(cmd, out, cap), 0);
    snprintf(cmd, sizeof cmd, "'%s' replay '%s' --db '%s' --no-progress 2>&1", FRAGSCOPE_BIN,
             trace, db);
    char rout[8192];
    int rc = ts_shell(cmd, rout, sizeof rout);
    if (rc)
        fprintf(stderr, "%s", rout);
    assert_int_equal(rc, 0);
    struct sqlite3 *h = analyzer_db_open(db, 0, err, sizeof err);
    assert_non_null(h);
    assert_int_equal(analyzer_report_load(h, -1, r, err, sizeof err), 0);
    analyzer_db_close(h);
    assert_true(r->run.completed);
}

static const struct analyzer_whatif *whatif(const struct analyzer_finding *f, const char *setting)
{
    for (unsigned i = 0; i < f->whatif_count; i++)
        if (!strcmp(f->whatif[i].setting, setting))
            return &f->whatif[i];
    fail_msg("finding %s has no what-if '%s'", f->kind, setting);
    abort();
}

static const struct analyzer_finding *finding(const struct analyzer_report *r, const char *kind)
{
    for (size_t i = 0; i < r->finding_count; i++)
        if (!strcmp(r->findings[i].kind, kind))
            return &r->findings[i];
    fail_msg("no finding %s", kind);
    abort();
}

/* Model and real heap RSS agree within a page per MiB (the model is page-exact for these). */
static void assert_close(uint64_t model, uint64_t real_bytes)
{
    uint64_t d = model > real_bytes ? model - real_bytes : real_bytes - model;
    if (d > 4096 + real_bytes / 256)
        fail_msg("model %llu vs real %llu", (unsigned long long)model,
                 (unsigned long long)real_bytes);
}

static void blocks4000(void **state)
{
    (void)state;
    static char out[16384];
    struct analyzer_report r;
    record_and_report("b4000", TRACE_4000_BLOCKS, "", &r, out, sizeof out);
    uint64_t real_end = heap_rss_of(out, "after_extra");
    assert_int_equal(r.measures.final_rss, real_end);
    assert_int_equal(r.at_end.rss, real_end);
    /* The ledger adds up to heap RSS, almost all of it free chunks in the bins. */
    const struct analyzer_ledger *l = &r.at_end;
    assert_true(l->exact);
    assert_int_equal(l->held + l->overhead + l->tcache + l->fastbins + l->unsorted + l->small +
                         l->large + l->top + l->mmapped,
                     l->rss);
    assert_int_equal(l->tcache, 7 * 32);
    assert_true(l->large > l->rss / 10 * 9);

    /* Cause: the top pinned by the 7 tcache chunks of 32 bytes; the call site is named. */
    assert_true(r.finding_count >= 2);
    const struct analyzer_finding *f = &r.findings[0];
    assert_string_equal(f->kind, "top-pinned-by-tcache");
    assert_int_equal(f->chunk_size, 32);
    assert_non_null(strstr(f->evidence, "7 tcache chunks"));
    assert_non_null(strstr(f->site, "blocks4000.c"));
    assert_non_null(strstr(f->fix, "tcache_count=0"));
    /* Each fix against the real glibc run with that setting. */
    const struct analyzer_whatif *w = whatif(f, "tcache_count=0");
    assert_true(w->helps);
    assert_int_equal(w->before, real_end);
    assert_int_equal(w->after, real("GLIBC_TUNABLES=glibc.malloc.tcache_count=0",
                                    TRACE_4000_BLOCKS, "", "after_extra"));
    w = whatif(f, "mxfast=0");
    assert_false(w->helps);
    assert_int_equal(w->after, real("GLIBC_TUNABLES=glibc.malloc.mxfast=0", TRACE_4000_BLOCKS, "",
                                    "after_extra"));
    w = whatif(f, "malloc_trim(0) at the end");
    uint64_t real_trim = real("", TRACE_4000_BLOCKS, "--trim", "after_trim");
    assert_int_equal(w->after, real_trim);
    /* The RSS comes back, the heap barely shrinks (only the top is trimmed). */
    assert_true(w->system_after > w->system_before / 100 * 99);
    assert_true(r.measures.trim_known);
    assert_int_equal(r.measures.trim_gain, real_end - real_trim);

    /* What the extra malloc(2000) did: it consolidated the fastbins (as many chunks as the real
     * heap had in its fastbins after the frees) into one free chunk of what the real heap holds
     * free below top, and nothing was trimmed (the real break did not move). */
    char db[512], err[512];
    snprintf(db, sizeof db, "%s/b4000.db", dir);
    struct sqlite3 *h = analyzer_db_open(db, 0, err, sizeof err);
    assert_non_null(h);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT step FROM steps_v WHERE run = 1 AND call = 1 "
                                           "AND size = 2000", -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    uint64_t extra_step = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    analyzer_db_close(h);
    assert_int_equal(field_of(out, "after_extra", "brk_offset"),
                     field_of(out, "after_free", "brk_offset"));
    char b1[32], story[256];
    snprintf(story, sizeof story,
             "step %llu malloc(2000): malloc_consolidate merged %llu fastbin chunks into one %s "
             "free chunk; top stayed pinned by the 7 tcache chunks, so nothing was trimmed",
             (unsigned long long)extra_step,
             (unsigned long long)field_of(out, "after_free", "smblks"),
             analyzer_bytes(b1, sizeof b1,
                            field_of(out, "after_extra", "fordblks") -
                                field_of(out, "after_extra", "keepcost"),
                            0));
    if (!strstr(f->evidence, story))
        fail_msg("evidence: %s\nwanted: %s", f->evidence, story);

    /* After the frees (before malloc(2000)): 3993 fastbin chunks between the big ones; only
     * tcache_count=0 with mxfast=0 gives the memory back there. */
    f = finding(&r, "fastbin-blocks-coalescing");
    assert_non_null(strstr(f->evidence, "3993 fastbin chunks"));
    assert_non_null(strstr(f->evidence, "of 52736 bytes"));
    w = whatif(f, "mxfast=0");
    assert_false(w->helps);
    assert_int_equal(w->after, real("GLIBC_TUNABLES=glibc.malloc.mxfast=0", TRACE_4000_BLOCKS, "",
                                    "after_free"));
    w = whatif(f, "tcache_count=0 mxfast=0");
    assert_true(w->helps);
    assert_int_equal(w->after,
                     real("GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0",
                          TRACE_4000_BLOCKS, "", "after_free"));
    analyzer_report_free(&r);
}

static void pinned_by_live_chunk(void **state)
{
    (void)state;
    static char out[16384];
    struct analyzer_report r;
    record_and_report("pinned", PINNED_LIVE, "", &r, out, sizeof out);
    assert_int_equal(r.measures.final_rss, heap_rss_of(out, "end"));
    const struct analyzer_finding *f = &r.findings[0];
    assert_string_equal(f->kind, "top-pinned-by-live-chunk");
    assert_int_equal(f->chunk_size, 208);
    assert_non_null(strstr(f->site, "pinned_live.c"));
    /* Without the block (freed, not cached), the free memory under it joins top and is
     * trimmed; the real program that frees it instead keeps it in the tcache, so nothing
     * changes there: what the report offers is the verified malloc_trim(0). */
    const struct analyzer_whatif *w = whatif(f, "the block freed at the end");
    assert_true(w->helps);
    assert_true(w->after < w->before / 4);
    w = whatif(f, "malloc_trim(0) at the end");
    assert_true(w->helps);
    assert_close(w->before, real("", PINNED_LIVE, "--free-record", "end"));
    analyzer_report_free(&r);
}

static void mmap_threshold_ratchet(void **state)
{
    (void)state;
    static char out[16384];
    struct analyzer_report r;
    record_and_report("ratchet", TRACE_MMAP_RATCHET, "", &r, out, sizeof out);
    const struct analyzer_finding *f = &r.findings[0];
    assert_string_equal(f->kind, "mmap-threshold-ratchet");
    const struct analyzer_whatif *w = whatif(f, "mmap_threshold=131072");
    assert_true(w->helps);
    assert_close(w->after, real("MALLOC_MMAP_THRESHOLD_=131072", TRACE_MMAP_RATCHET, "", "after_loop"));
    analyzer_report_free(&r);
}

static void too_many_arenas(void **state)
{
    (void)state;
    static char out[16384];
    struct analyzer_report r;
    record_and_report("arenas", TRACE_ARENA_EXPLOSION, "", &r, out, sizeof out);
    const struct analyzer_finding *f = &r.findings[0];
    assert_string_equal(f->kind, "too-many-arenas");
    assert_non_null(strstr(f->fix, "arena_max=1"));
    const struct analyzer_whatif *w = whatif(f, "arena_max=1");
    assert_true(w->helps);
    assert_close(w->after, real("MALLOC_ARENA_MAX=1", TRACE_ARENA_EXPLOSION, "", "after_join"));
    analyzer_report_free(&r);
}

static void exited_threads(void **state)
{
    (void)state;
    static char out[16384];
    struct analyzer_report r;
    record_and_report("hoarding", TRACE_HOARDING, "", &r, out, sizeof out);
    const struct analyzer_finding *f = finding(&r, "exited-threads-memory");
    const struct analyzer_whatif *w = whatif(f, "arena_max=1");
    assert_true(w->helps);
    assert_close(w->after, real("MALLOC_ARENA_MAX=1", TRACE_HOARDING, "", "end"));
    analyzer_report_free(&r);
}

static void aligned_leftovers(void **state)
{
    (void)state;
    static char out[16384];
    struct analyzer_report r;
    record_and_report("aligned", TRACE_ALIGNED_GAPS, "", &r, out, sizeof out);
    const struct analyzer_finding *f = &r.findings[0];
    assert_string_equal(f->kind, "aligned-leftovers");
    assert_non_null(strstr(f->evidence, "aligned_gaps.c"));
    /* No setting gives it back; malloc_trim does. */
    assert_false(whatif(f, "tcache_count=0")->helps);
    assert_false(whatif(f, "mxfast=0")->helps);
    assert_true(whatif(f, "malloc_trim(0) at the end")->helps);
    analyzer_report_free(&r);
}

static void tcache_cached_by_other_thread(void **state)
{
    (void)state;
    static char out[16384];
    struct analyzer_report r;
    record_and_report("prodcons", TRACE_PRODUCER_CONSUMER, "", &r, out, sizeof out);
    const struct analyzer_finding *f = &r.findings[0];
    assert_string_equal(f->kind, "top-pinned-by-tcache");
    assert_true(whatif(f, "tcache_count=0")->helps);
    /* The consumer's tcache holds the producer's chunks (~240 KB). */
    f = finding(&r, "tcache-holds-other-arenas");
    assert_true(f->bytes > 200 * 1024);
    assert_true(whatif(f, "tcache_count=0")->helps);
    /* heap shows that tcache whole under the consumer's arena (chunks of the producer's arena
     * in it), in the text and in the JSON alike. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' heap '%s/prodcons.db' --step %llu --format json | python3 -c 'import json, sys\n"
             "d = json.load(sys.stdin)\n"
             "home = {c[\"address\"]: a[\"arena\"] for a in d[\"arenas\"] for c in a[\"chunks\"]}\n"
             "print(sum(c[\"size\"] for a in d[\"arenas\"] for t in a[\"tcache\"] for b in t[\"bins\"] "
             "for c in b[\"chunks\"] if home[c[\"address\"]] != a[\"arena\"]))'",
             FRAGSCOPE_BIN, dir, (unsigned long long)f->step);
    assert_int_equal(ts_shell(cmd, out, sizeof out), 0);
    assert_true(strtoull(out, NULL, 10) > 200 * 1024);
    analyzer_report_free(&r);
}

/* The other subcommands on the 4000-block database. */
static void heap_flame_sweep(void **state)
{
    (void)state;
    static char out[1 << 21];
    char cmd[2048], err[512], db[512];
    /* The step right after the frees: the report's retention-peak finding is seen there. */
    snprintf(db, sizeof db, "%s/b4000.db", dir);
    struct sqlite3 *h = analyzer_db_open(db, 0, err, sizeof err);
    assert_non_null(h);
    struct analyzer_report r;
    assert_int_equal(analyzer_report_load(h, -1, &r, err, sizeof err), 0);
    analyzer_db_close(h);
    uint64_t step = finding(&r, "fastbin-blocks-coalescing")->step;
    analyzer_report_free(&r);
    snprintf(cmd, sizeof cmd, "NO_COLOR=1 '%s' heap '%s' --step %llu --bytes", FRAGSCOPE_BIN, db,
             (unsigned long long)step);
    assert_int_equal(ts_shell(cmd, out, sizeof out), 0);
    char want[64];
    snprintf(want, sizeof want, "arena 0 (main) at step %llu", (unsigned long long)step);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "  fastbins:"));
    assert_non_null(strstr(out, "3993 in all"));
    assert_non_null(strstr(out, "52736"));
    assert_null(strstr(out, "\033["));
    /* Not a terminal: lines fit 100 columns (long bin lists continue on indented lines). */
    for (const char *line = out, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            break;
        if (nl - line > 100)
            fail_msg("heap line of %d columns: %.*s", (int)(nl - line), (int)(nl - line), line);
    }

    snprintf(cmd, sizeof cmd, "'%s' flame '%s/b4000.db'", FRAGSCOPE_BIN, dir);
    assert_int_equal(ts_shell(cmd, out, sizeof out), 0);
    /* The 7 tcache chunks pin the whole free region; their site is the malloc(1) in main. */
    unsigned long long pinned_bytes = 0;
    for (char *line = out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (!strncmp(line, "pinned;", 7) && strstr(line, "blocks4000.c")) {
            const char *sp = strrchr(line, ' ');
            assert_non_null(sp);
            pinned_bytes += strtoull(sp + 1, NULL, 10);
        }
    }
    assert_true(pinned_bytes > 200ull << 20);

    snprintf(cmd, sizeof cmd,
             "'%s' sweep '%s/b4000.fstrace' --set tcache_count=0,7 --set mxfast=0,128 --db "
             "'%s/sweep.db' -j 2 --preload /usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 "
             "2>/dev/null",
             FRAGSCOPE_BIN, dir, dir);
    assert_int_equal(ts_shell(cmd, out, sizeof out), 0);
    /* Ranked by final heap RSS: a tcache_count=0 run first. */
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    char *first = nl + 1, *eol = strchr(first, '\n');
    assert_non_null(eol);
    *eol = 0;
    assert_non_null(strstr(first, "tcache_count=0"));
    *eol = '\n';
    assert_non_null(strstr(out, "132 KiB"));
    assert_non_null(strstr(out, "201 MiB"));
    /* The native run with the preloaded allocator: last, its peak RSS that of the process. */
    const char *native = strstr(out, "libc_malloc_debug.so.0 (native)");
    assert_non_null(native);
    assert_null(strstr(native, "tcache_count"));
    assert_non_null(strstr(native, " MiB"));
    /* --bytes: the exact numbers (the tcache_count=0 run ends with the initial 132 KiB heap). */
    snprintf(cmd, sizeof cmd,
             "'%s' sweep '%s/b4000.fstrace' --set tcache_count=0 --db '%s/sweep-bytes.db' --bytes "
             "2>/dev/null",
             FRAGSCOPE_BIN, dir, dir);
    assert_int_equal(ts_shell(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, " 135168 "));
    assert_null(strstr(out, "KiB"));
    /* --format json: the native run names its allocator; no model figures for it. */
    snprintf(cmd, sizeof cmd,
             "'%s' sweep '%s/b4000.fstrace' --set tcache_count=0 --db '%s/sweep-json.db' "
             "--preload /usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 --format json "
             "2>/dev/null | python3 -c 'import json, sys\n"
             "d = json.load(sys.stdin)\n"
             "print([(r[\"settings\"], r[\"native\"], r[\"allocator\"], r[\"final_rss\"], "
             "r[\"peak_rss\"] > 100 << 20) for r in d])'",
             FRAGSCOPE_BIN, dir, dir);
    assert_int_equal(ts_shell(cmd, out, sizeof out), 0);
    assert_string_equal(out, "[('tcache_count=0', False, None, 135168, True), "
                             "('preload=/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 (native)', "
                             "True, '/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0', None, "
                             "True)]\n");
    /* The native runs' figures are the exact ones (the child's ru_maxrss: whole pages; the
     * wall time to the nanosecond), not read back from the rounded text of `replay --native`
     * ("201.52 MiB", "1.234 s"). */
    snprintf(cmd, sizeof cmd,
             "'%s' sweep '%s/b4000.fstrace' --set tcache_count=0 --db '%s/sweep-exact.db' "
             "--preload /usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 --preload "
             "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 >/dev/null 2>&1",
             FRAGSCOPE_BIN, dir, dir);
    assert_int_equal(ts_shell(cmd, NULL, 0), 0);
    snprintf(db, sizeof db, "%s/sweep-exact.db", dir);
    h = analyzer_db_open(db, 0, err, sizeof err);
    assert_non_null(h);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT peak_rss, seconds FROM runs WHERE options = "
                                           "'native'", -1, &q, NULL), SQLITE_OK);
    int natives = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t peak = sqlite3_column_int64(q, 0);
        double ms = sqlite3_column_double(q, 1) * 1000;
        assert_true(peak > 1 << 20);
        if (peak % 4096)
            fail_msg("native peak RSS %lld: not whole pages", (long long)peak);
        if (ms - (double)(int64_t)ms < 1e-6 || ms - (double)(int64_t)ms > 1 - 1e-6)
            fail_msg("native wall time %.9f s: whole milliseconds", ms / 1000);
        natives++;
    }
    sqlite3_finalize(q);
    analyzer_db_close(h);
    assert_int_equal(natives, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blocks4000),
        cmocka_unit_test(pinned_by_live_chunk),
        cmocka_unit_test(mmap_threshold_ratchet),
        cmocka_unit_test(too_many_arenas),
        cmocka_unit_test(exited_threads),
        cmocka_unit_test(aligned_leftovers),
        cmocka_unit_test(tcache_cached_by_other_thread),
        cmocka_unit_test(heap_flame_sweep),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
