/* test_report.c: the report's figures on synthetic runs: the ledger adds up to heap RSS (from
 * the counters, and exactly from a chunk snapshot), the fragmentation measures match the steps
 * that were stored, the free-chunk histogram, and the text and JSON renderings of the same
 * model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "analyzer.h"
#include "synth.h"
#include "test_support.h"

static char dir[256], path[300];
static int64_t run_id;
static uint64_t n_steps = 6000;
static uint64_t live_at[6001], rss_at[6001];

static int setup(void **state)
{
    (void)state;
    if (ts_tmpdir(dir, sizeof dir, "analyzer-report") != 0)
        return -1;
    snprintf(path, sizeof path, "%s/r.db", dir);
    static struct synth y;
    synth_init(&y);
    char err[512];
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.no_analysis = 1;
    struct analyzer_ingest *ing = analyzer_ingest_open(path, NULL, &io, err, sizeof err);
    if (!ing)
        return -1;
    run_id = analyzer_ingest_run_id(ing);
    for (uint64_t i = 1; i <= n_steps; i++) {
        const struct replay_step *s = synth_next(&y);
        live_at[i] = s->live_bytes;
        rss_at[i] = s->stats.resident_bytes + s->stats.mmapped_resident_bytes;
        if (analyzer_ingest_step(ing, NULL, s))
            return -1;
    }
    return analyzer_ingest_finish(ing, NULL, err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    return ts_rmtree(dir);
}

static uint64_t ledger_sum(const struct analyzer_ledger *l)
{
    return l->held + l->overhead + l->tcache + l->fastbins + l->unsorted + l->small + l->large +
           l->top + l->mmapped;
}

static void ledger_and_measures_from_counters(void **state)
{
    (void)state;
    char err[512];
    struct sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    struct analyzer_report r;
    assert_int_equal(analyzer_report_load(db, -1, &r, err, sizeof err), 0);
    assert_int_equal(r.run.id, run_id);
    assert_int_equal(r.run.events, n_steps);
    assert_true(r.run.completed);

    /* The end: estimated (no snapshot), and it adds up to the heap RSS of the last step. */
    assert_true(r.at_end.valid);
    assert_false(r.at_end.exact);
    assert_int_equal(r.at_end.step, n_steps);
    assert_int_equal(r.at_end.rss, rss_at[n_steps]);
    assert_int_equal(ledger_sum(&r.at_end), r.at_end.rss);
    assert_int_equal(r.at_end.held, live_at[n_steps]);

    /* Measures, recomputed from the steps fed in. */
    uint64_t peak_live = 0, peak_live_step = 0, peak_rss = 0, peak_rss_step = 0;
    for (uint64_t i = 1; i <= n_steps; i++) {
        if (live_at[i] > peak_live) {
            peak_live = live_at[i];
            peak_live_step = i;
        }
        if (rss_at[i] > peak_rss) {
            peak_rss = rss_at[i];
            peak_rss_step = i;
        }
    }
    const struct analyzer_measures *m = &r.measures;
    assert_int_equal(m->peak_live, peak_live);
    assert_int_equal(m->peak_live_step, peak_live_step);
    assert_int_equal(m->rss_at_live_peak, rss_at[peak_live_step]);
    assert_int_equal(m->peak_rss, peak_rss);
    assert_int_equal(m->peak_rss_step, peak_rss_step);
    double frag = ((double)rss_at[peak_live_step] - (double)peak_live) / (double)peak_live;
    assert_true(m->frag_at_live_peak > frag - 1e-9 && m->frag_at_live_peak < frag + 1e-9);
    double jw = (double)peak_rss / (double)peak_live;
    assert_true(m->jw_ratio > jw - 1e-9 && m->jw_ratio < jw + 1e-9);
    assert_int_equal(m->final_live, live_at[n_steps]);
    assert_int_equal(m->final_rss, rss_at[n_steps]);
    assert_false(m->trim_known);
    assert_int_equal(r.finding_count, 0);
    analyzer_report_free(&r);
    analyzer_db_close(db);
}

/* A snapshot written by hand: the ledger comes from the chunks' resident bytes, exactly. */
static void ledger_from_a_snapshot(void **state)
{
    (void)state;
    char err[512];
    struct sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    /* run_points.end says heap RSS = rss_at[n]; make the chunks add up to it. */
    uint64_t rss = rss_at[n_steps];
    uint64_t in_use = 40960, tc = 4096, fast = 8192, large = 65536, top_res = rss - in_use - tc -
                                                                             fast - large - 656;
    char sql[4096];
    snprintf(sql, sizeof sql,
             "INSERT INTO snapshots VALUES(%lld, 2, %llu, 'end');"
             "INSERT INTO chunks VALUES(%lld, 2, 4096, 656, 'internal', 0, NULL, 656, NULL, NULL, "
             "NULL);"
             "INSERT INTO chunks VALUES(%lld, 2, 8192, 40960, 'in_use', 0, NULL, 40960, 20480, 7, "
             "3);"
             "INSERT INTO chunks VALUES(%lld, 2, 49152, 4096, 'tcache', 0, 10, 4096, NULL, 9, 3);"
             "INSERT INTO chunks VALUES(%lld, 2, 53248, 8192, 'fastbin', 0, 2, 8192, NULL, 11, 4);"
             "INSERT INTO chunks VALUES(%lld, 2, 61440, 131072, 'large', 0, 100, 65536, NULL, 12, "
             "4);"
             "INSERT INTO chunks VALUES(%lld, 2, 192512, %llu, 'top', 0, NULL, %llu, NULL, NULL, "
             "NULL);",
             (long long)run_id, (unsigned long long)n_steps, (long long)run_id,
             (long long)run_id, (long long)run_id, (long long)run_id, (long long)run_id,
             (long long)run_id, (unsigned long long)(top_res + 8192),
             (unsigned long long)top_res);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    struct analyzer_report r;
    assert_int_equal(analyzer_report_load(db, run_id, &r, err, sizeof err), 0);
    const struct analyzer_ledger *l = &r.at_end;
    assert_true(l->exact);
    assert_int_equal(l->rss, rss);
    assert_int_equal(ledger_sum(l), rss);
    assert_int_equal(l->held, 20480);                /* half of the in-use chunk's bytes */
    assert_int_equal(l->overhead, 20480 + 656);
    assert_int_equal(l->tcache, tc);
    assert_int_equal(l->fastbins, fast);
    assert_int_equal(l->large, large);
    assert_int_equal(l->top, top_res);
    assert_int_equal(l->not_resident, 65536 + 8192);
    /* Free chunks by size: 4096 (tcache), 8192 (fastbin), 131072 (large), in their buckets. */
    assert_int_equal(r.hist_count, 3);
    assert_int_equal(r.hist[0].lo, 4096);
    assert_int_equal(r.hist[0].bytes, 4096);
    assert_int_equal(r.hist[2].lo, 131072);
    assert_int_equal(r.hist[2].count, 1);

    /* Text and JSON render the same model. */
    char *text = NULL, *json = NULL;
    size_t tlen = 0, jlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    struct analyzer_render_options ro = {1, 0, 0};
    analyzer_report_text(f, &r, &ro);
    fclose(f);
    f = open_memstream(&json, &jlen);
    analyzer_report_json(f, &r);
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "%llu", (unsigned long long)rss);
    assert_non_null(strstr(text, "Heap RSS at the end"));
    assert_non_null(strstr(text, want));
    assert_null(strstr(text, "\033["));
    snprintf(want, sizeof want, "\"rss\": %llu", (unsigned long long)rss);
    assert_non_null(strstr(json, want));
    assert_non_null(strstr(json, "\"exact\": true"));
    int depth = 0;
    for (const char *p = json; *p; p++) {
        depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
        assert_true(depth >= 0);
    }
    assert_int_equal(depth, 0);
    free(text);
    free(json);
    analyzer_report_free(&r);
    analyzer_db_close(db);
}

/* Visible columns of a line (colour sequences take none). */
static size_t visible(const char *s, size_t n)
{
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\033') {
            while (i < n && s[i] != 'm')
                i++;
            continue;
        }
        v++;
    }
    return v;
}

/* Long cause, evidence and fix lines wrap at the width asked for, continued indented, colour or
 * not; the words are those of the unwrapped text; width 0 does not wrap. */
static void long_lines_wrap(void **state)
{
    (void)state;
    struct analyzer_report r;
    memset(&r, 0, sizeof r);
    snprintf(r.run.trace, sizeof r.run.trace, "/t/x.fstrace");
    r.run.completed = 1;
    struct analyzer_finding fd;
    memset(&fd, 0, sizeof fd);
    snprintf(fd.kind, sizeof fd.kind, "top-pinned-by-tcache");
    snprintf(fd.cause, sizeof fd.cause, "the top of arena 0 is pinned by tcache chunks: 201 MiB "
             "of free memory below it cannot be trimmed");
    size_t n = 0;
    for (int i = 0; i < 12; i++)
        n += (size_t)snprintf(fd.evidence + n, sizeof fd.evidence - n,
                              "%sword%d and some more words to fill", i ? " " : "", i);
    snprintf(fd.fix, sizeof fd.fix, "set tcache_count=0: GLIBC_TUNABLES=glibc.malloc.tcache_count=0"
             "; or call malloc_trim(0) after the frees");
    fd.whatif_count = 1;
    snprintf(fd.whatif[0].setting, sizeof fd.whatif[0].setting, "tcache_count=0");
    fd.whatif[0].before = 211075072;
    fd.whatif[0].after = 135168;
    fd.whatif[0].helps = 1;
    r.findings = &fd;
    r.finding_count = 1;
    for (int color = 0; color < 2; color++)
        for (int width = 80; width <= 100; width += 20) {
            char *text = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&text, &len);
            struct analyzer_render_options ro = {0, color, width};
            analyzer_report_text(f, &r, &ro);
            fclose(f);
            int continued = 0;
            for (char *line = text, *nl; *line; line = nl + 1) {
                nl = strchr(line, '\n');
                assert_non_null(nl);
                assert_true(visible(line, (size_t)(nl - line)) <= (size_t)width);
                if (!strncmp(line, "        ", 8) && line[8] != ' ')
                    continued++;
            }
            assert_true(continued >= 4);
            /* The evidence, joined again, is the original. */
            char *ev = strstr(text, "evidence: ");
            assert_non_null(ev);
            char joined[2048];
            size_t j = 0;
            for (char *q = ev + 10; *q && j < sizeof joined - 1; q++) {
                if (*q == '\n') {
                    if (strncmp(q + 1, "        ", 8))
                        break;
                    q += 8;
                    joined[j++] = ' ';
                    continue;
                }
                joined[j++] = *q;
            }
            joined[j] = 0;
            assert_string_equal(joined, fd.evidence);
            free(text);
        }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct analyzer_render_options ro = {0, 0, 0};
    analyzer_report_text(f, &r, &ro);
    fclose(f);
    char want[1100];
    snprintf(want, sizeof want, "    evidence: %s\n", fd.evidence);
    assert_non_null(strstr(text, want));
    free(text);
}

static void byte_units(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(analyzer_bytes(b, sizeof b, 880, 0), "880 B");
    assert_string_equal(analyzer_bytes(b, sizeof b, 135168, 0), "132 KiB");
    assert_string_equal(analyzer_bytes(b, sizeof b, 211075072, 0), "201 MiB");
    assert_string_equal(analyzer_bytes(b, sizeof b, 36864, 0), "36.0 KiB");
    assert_string_equal(analyzer_bytes(b, sizeof b, 211075072, 1), "211075072");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ledger_and_measures_from_counters),
        cmocka_unit_test(ledger_from_a_snapshot),
        cmocka_unit_test(byte_units),
        cmocka_unit_test(long_lines_wrap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
