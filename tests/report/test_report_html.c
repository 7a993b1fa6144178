/* test_report_html.c: the HTML report on synthetic databases, without a browser.
 *
 * A run of 50000 synthetic steps with one heap-RSS spike, a chunk snapshot of 200000 chunks, a
 * finding naming the chunk that pins the top, and strings with HTML in them (the trace path, a
 * call site, the finding's cause) is rendered and checked: the page is well-formed (a small
 * checker: every tag closed in order, every '&' an entity, no stray '<'), self-contained, holds
 * its SVG charts, escapes every string from the database, keeps the spike in the downsampled
 * timeline (min/max buckets), draws the big snapshot with a bounded number of marks and outlines
 * the pinning chunk. A sweep database (three runs of one trace) gets the settings comparison,
 * a single run does not; a run with no step still renders. Report files are created 0600, never
 * over an existing file without --force, never through a symlink even with it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../../cli.h"
#include "report_html.h"
#include "report_html_int.h"
#include "test_support.h"

#define N_STEPS 50000
#define SPIKE_STEP 31337
#define SPIKE_RSS (900ull << 20)
#define EVIL "<script>alert(1)</script>"
#define HEAP_BASE 0x555500000000ull
#define PAIRS 100000

static char dir[256], db1[300], db2[300], db3[300], db4[300], db5[300];
static uint64_t series_min_steps = 1000000;  /* ingest_run: store the series from this many steps */
static uint64_t pin_address;

/* A synthetic step: live bytes rise to the middle and fall; heap RSS follows the highest live
 * so far, with one spike. */
static void make_step(struct replay_step *s, struct trace_event *ev, uint64_t i, double scale)
{
    memset(s, 0, sizeof *s);
    memset(ev, 0, sizeof *ev);
    s->event = ev;
    s->step = i;
    ev->seq = i;
    ev->time_ns = i * 1000;
    ev->kind = TRACE_EV_MALLOC;
    ev->size = 64;
    ev->ptr = s->replayed_ptr = 0x10000 + i * 64;
    s->request_bytes = 64;
    uint64_t half = N_STEPS / 2;
    uint64_t live = (uint64_t)((double)(i <= half ? i : N_STEPS - i) * 4096 * scale);
    uint64_t high = (uint64_t)((double)(i <= half ? i : half) * 4096 * scale) + 65536;
    s->live_bytes = live;
    struct ptmalloc_stats *st = &s->stats;
    st->system_bytes = high + 4096;
    st->in_use_bytes = live + live / 16;
    st->resident_bytes = i == SPIKE_STEP ? SPIKE_RSS : high;
    st->top_bytes = 4096 + (i % 7) * 16;
    st->tcache_bytes = (i % 8) * 32;
    st->unsorted_bytes = i > half ? (high - live) / 2 : 0;
    st->arena_count = 1;
    s->arena = 0;
}

static int ingest_run(const char *path, const char *trace, const char *setting, double scale,
                      uint64_t every)
{
    char err[512];
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.no_analysis = 1;
    io.quiet = 1;
    io.every = every;
    io.series_min_steps = series_min_steps;
    struct replay_options ro;
    replay_options_default(&ro);
    ro.trace_path = trace;
    if (setting)
        ro.set[ro.set_count++] = setting;
    struct analyzer_ingest *ing = analyzer_ingest_open(path, &ro, &io, err, sizeof err);
    if (!ing) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct replay_step s;
    struct trace_event ev;
    for (uint64_t i = 1; i <= N_STEPS; i++) {
        make_step(&s, &ev, i, scale);
        if (analyzer_ingest_step(ing, NULL, &s))
            return -1;
    }
    if (analyzer_ingest_finish(ing, NULL, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    char *msg = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* A snapshot at the end: PAIRS (in-use 32 B, fastbin 48 B) pairs, one in-use 64 KiB chunk that
 * pins the top, then the top; a site and a finding (with what-ifs) whose strings carry HTML. */
static int add_analysis(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    char *msg = NULL;
    int rc = sqlite3_exec(db,
                          "BEGIN;"
                          "UPDATE runs SET analyzed = 1;"
                          "INSERT INTO snapshots VALUES(1, 2, 50000, 'end');"
                          "INSERT INTO sites VALUES(1, 7, 'make_" EVIL "', '/src/" EVIL ".c:12', "
                          "'frames');",
                          NULL, NULL, &msg);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT INTO chunks VALUES(1, 2, ?, ?, ?, 0, NULL, ?, ?, ?, ?)",
                                -1, &st, NULL);
    uint64_t a = HEAP_BASE;
    for (int i = 0; rc == SQLITE_OK && i <= 2 * PAIRS + 1; i++) {
        int top = i == 2 * PAIRS + 1, pin = i == 2 * PAIRS, used = !top && i % 2 == 0;
        uint64_t size = top ? 1 << 20 : pin ? 65536 : used ? 32 : 48;
        if (pin)
            pin_address = a;
        sqlite3_bind_int64(st, 1, (int64_t)a);
        sqlite3_bind_int64(st, 2, (int64_t)size);
        sqlite3_bind_text(st, 3, top ? "top" : used ? "in_use" : "fastbin", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (int64_t)size);
        if (used) {
            sqlite3_bind_int64(st, 5, 20);
            sqlite3_bind_int64(st, 6, 100 + i);
            sqlite3_bind_int64(st, 7, 7);
        } else {
            sqlite3_bind_null(st, 5);
            sqlite3_bind_null(st, 6);
            sqlite3_bind_null(st, 7);
        }
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
        a += size;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) {
        char *sql = sqlite3_mprintf(
            "INSERT INTO findings VALUES(1, 1, 'top-pinned-by-live-chunk', "
            "'the top is pinned by " EVIL "', 'evidence & more <b>', 'fix it: a<b', 4800000, "
            "50000, 0, %lld, 32, 199999, 'make_" EVIL " at /src/x.c:12');"
            "INSERT INTO whatifs VALUES(1, 1, 1, 'tcache_count=0', 50000, 104857600, 131072, "
            "104857600, 131072, 104857600, 104857600, 1);"
            "INSERT INTO whatifs VALUES(1, 1, 2, 'mxfast=0', 50000, 104857600, 104857600, "
            "104857600, 104857600, 104857600, 104857600, 0);"
            "COMMIT;",
            (long long)pin_address);
        rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
        sqlite3_free(sql);
    }
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    if (ts_tmpdir(dir, sizeof dir, "report-html") != 0)
        return -1;
    snprintf(db1, sizeof db1, "%s/one.db", dir);
    snprintf(db2, sizeof db2, "%s/sweep.db", dir);
    snprintf(db3, sizeof db3, "%s/sampled.db", dir);
    if (ingest_run(db1, "/tmp/" EVIL "/t.fstrace", NULL, 1.0, 1) || add_analysis(db1))
        return -1;
    /* A sweep: three runs of one trace; the second setting ends smallest. */
    if (ingest_run(db2, "/tmp/sweep.fstrace", "tcache_count=7", 1.0, 1) ||
        ingest_run(db2, "/tmp/sweep.fstrace", "tcache_count=0", 0.25, 1) ||
        ingest_run(db2, "/tmp/sweep.fstrace", "mxfast=0", 0.5, 1))
        return -1;
    if (ingest_run(db3, "/tmp/sampled.fstrace", NULL, 1.0, 97))
        return -1;
    /* The same runs as one.db and sampled.db, with their series stored at ingest. */
    snprintf(db4, sizeof db4, "%s/stored.db", dir);
    snprintf(db5, sizeof db5, "%s/stored-sampled.db", dir);
    series_min_steps = 0;
    int rc = ingest_run(db4, "/tmp/stored.fstrace", NULL, 1.0, 1) ||
             ingest_run(db5, "/tmp/stored-sampled.fstrace", NULL, 1.0, 97);
    series_min_steps = 1000000;
    if (rc)
        return -1;
    return exec_sql(db2, "UPDATE runs SET analyzed = 1") || exec_sql(db3, "UPDATE runs SET "
                                                                          "analyzed = 1");
}

static int teardown(void **state)
{
    (void)state;
    return ts_rmtree(dir);
}

/* ---- a small well-formedness checker ---- */

static int is_void(const char *name, size_t n)
{
    static const char *v[] = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col",
                              "embed", "source", "track", "wbr"};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        if (strlen(v[i]) == n && !strncmp(v[i], name, n))
            return 1;
    return 0;
}

/* 0 when every element is closed in order, attributes are quoted, '&' starts an entity and '<'
 * starts markup; else -1 with the reason and the offset in why. */
static int check_html(const char *h, char *why, size_t cap)
{
    const char *stack[512];
    size_t len[512], depth = 0;
    const char *p = h;
    while (*p) {
        if (*p == '&') {
            const char *q = p + 1;
            if (*q == '#')
                q++;
            while (isalnum((unsigned char)*q))
                q++;
            if (*q != ';' || q == p + 1) {
                snprintf(why, cap, "bare '&' at %td", p - h);
                return -1;
            }
            p = q + 1;
            continue;
        }
        if (*p != '<') {
            p++;
            continue;
        }
        if (!strncmp(p, "<!--", 4)) {
            const char *e = strstr(p, "-->");
            if (!e) {
                snprintf(why, cap, "unclosed comment at %td", p - h);
                return -1;
            }
            p = e + 3;
            continue;
        }
        if (p[1] == '!') {
            p = strchr(p, '>');
            if (!p)
                return -1;
            p++;
            continue;
        }
        int closing = p[1] == '/';
        const char *name = p + 1 + closing, *q = name;
        while (isalnum((unsigned char)*q) || *q == '-')
            q++;
        size_t n = (size_t)(q - name);
        if (!n) {
            snprintf(why, cap, "stray '<' at %td", p - h);
            return -1;
        }
        /* Attributes: name="value" pairs, until '>' or '/>'. */
        int self = 0;
        while (*q && *q != '>') {
            if (*q == '"' || *q == '\'') {
                const char *e = strchr(q + 1, *q);
                if (!e) {
                    snprintf(why, cap, "unterminated attribute at %td", q - h);
                    return -1;
                }
                if (memchr(q + 1, '<', (size_t)(e - q - 1))) {
                    snprintf(why, cap, "'<' inside an attribute at %td", q - h);
                    return -1;
                }
                q = e + 1;
                continue;
            }
            if (*q == '<') {
                snprintf(why, cap, "'<' inside a tag at %td", q - h);
                return -1;
            }
            self = *q == '/' && q[1] == '>';
            q++;
        }
        if (!*q) {
            snprintf(why, cap, "unterminated tag at %td", p - h);
            return -1;
        }
        p = q + 1;
        if (closing) {
            if (!depth || len[depth - 1] != n || strncmp(stack[depth - 1], name, n)) {
                snprintf(why, cap, "</%.*s> at %td closes <%.*s>", (int)n, name, name - h,
                         depth ? (int)len[depth - 1] : 4, depth ? stack[depth - 1] : "none");
                return -1;
            }
            depth--;
            continue;
        }
        if ((n == 6 && !strncmp(name, "script", 6)) || (n == 5 && !strncmp(name, "style", 5))) {
            char end[16];
            snprintf(end, sizeof end, "</%.*s>", (int)n, name);
            const char *e = strstr(p, end);
            if (!e) {
                snprintf(why, cap, "unclosed <%.*s>", (int)n, name);
                return -1;
            }
            p = e + strlen(end);
            continue;
        }
        if (self || is_void(name, n))
            continue;
        if (depth == 512) {
            snprintf(why, cap, "nesting too deep");
            return -1;
        }
        stack[depth] = name;
        len[depth++] = n;
    }
    if (depth) {
        snprintf(why, cap, "<%.*s> at %td never closed", (int)len[depth - 1], stack[depth - 1],
                 stack[depth - 1] - h);
        return -1;
    }
    return 0;
}

static size_t count(const char *h, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(h, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Renders run `run` (-1: the newest) of path into a malloc'd string. */
static char *render(const char *path, int64_t run)
{
    char err[512];
    struct sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    assert_non_null(db);
    struct analyzer_report r;
    assert_int_equal(analyzer_report_load(db, run, &r, err, sizeof err), 0);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    struct analyzer_render_options o = {0, 0, 0};
    assert_int_equal(analyzer_report_html(f, db, &r, &o, err, sizeof err), 0);
    fclose(f);
    analyzer_report_free(&r);
    analyzer_db_close(db);
    return buf;
}

static void checker_catches_bad_html(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(check_html("<div><p>a &amp; b</p><br><svg><rect/></svg></div>", why,
                                sizeof why),
                     0);
    assert_int_equal(check_html("<div><span></div>", why, sizeof why), -1);
    assert_int_equal(check_html("<p>a & b</p>", why, sizeof why), -1);
    assert_int_equal(check_html("<p>1 < 2</p>", why, sizeof why), -1);
    assert_int_equal(check_html("<p title=\"x\">", why, sizeof why), -1);
    assert_int_equal(check_html("<p title=\"<b>\"></p>", why, sizeof why), -1);
}

static void page_is_well_formed_and_self_contained(void **state)
{
    (void)state;
    char *h = render(db1, -1);
    char why[256] = "";
    int rc = check_html(h, why, sizeof why);
    if (rc)
        fprintf(stderr, "not well-formed: %s\n", why);
    assert_int_equal(rc, 0);
    assert_int_equal(strncmp(h, "<!DOCTYPE html>", 15), 0);
    /* The charts: timeline, free memory, a heap map. */
    assert_true(strstr(h, "<section id=\"timeline\">") != NULL);
    assert_true(strstr(h, "<section id=\"free\">") != NULL);
    assert_true(strstr(h, "<figure class=\"heapmap\" id=\"heapmap-2\">") != NULL);
    assert_true(count(h, "<svg ") >= 3);
    assert_true(strstr(h, "<section id=\"findings\">") != NULL);
    assert_true(strstr(h, "<section id=\"ledger\">") != NULL);
    assert_true(strstr(h, "<section id=\"arenas\">") != NULL);
    /* The finding flag on the timeline links to its card. */
    assert_true(strstr(h, "<a href=\"#finding-1\"><g class=\"flag\">") != NULL);
    assert_true(strstr(h, "id=\"finding-1\"") != NULL);
    /* Nothing to fetch. */
    assert_null(strstr(h, "http://"));
    assert_null(strstr(h, "https://"));
    assert_null(strstr(h, " src="));
    assert_null(strstr(h, "<link"));
    assert_null(strstr(h, "url("));
    assert_true(strstr(h, "Content-Security-Policy") != NULL);
    /* A single run: no sweep comparison. */
    assert_null(strstr(h, "id=\"sweep\""));
    free(h);
}

static void strings_from_the_trace_are_escaped(void **state)
{
    (void)state;
    char *h = render(db1, -1);
    /* Only our two inline scripts; the trace's "<script>" only escaped. */
    assert_int_equal(count(h, "<script>"), 2);
    assert_null(strstr(h, EVIL));
    const char *escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    /* The trace path (title and header), the site (in chunk tooltips), the cause, the site. */
    assert_true(count(h, escaped) >= 5);
    assert_true(strstr(h, "/tmp/&lt;script&gt;alert(1)&lt;/script&gt;/t.fstrace") != NULL);
    assert_true(strstr(h, "allocated at step 200100 by make_&lt;script&gt;alert(1)&lt;/script&gt; "
                          "(") != NULL);
    assert_true(strstr(h, "evidence &amp; more &lt;b&gt;") != NULL);
    assert_true(strstr(h, "fix it: a&lt;b") != NULL);
    free(h);
}

static void timeline_keeps_the_spike(void **state)
{
    (void)state;
    char err[512];
    struct sqlite3 *db = analyzer_db_open(db1, 0, err, sizeof err);
    assert_non_null(db);
    struct html_series s;
    assert_int_equal(html_series_load(db, 1, HTML_SERIES_BUCKETS, &s, err, sizeof err), 0);
    assert_int_equal(s.count, HTML_SERIES_BUCKETS);
    assert_int_equal(s.first_step, 1);
    assert_int_equal(s.last_step, N_STEPS);
    assert_int_equal(s.rows, N_STEPS);
    uint64_t top = 0, covered = 0;
    size_t at = 0;
    struct replay_step st;
    struct trace_event ev;
    for (size_t i = 0; i < s.count; i++) {
        const struct html_bucket *b = &s.b[i];
        covered += b->step_hi - b->step_lo + 1;
        if (b->max[HS_RSS] > top) {
            top = b->max[HS_RSS];
            at = i;
        }
        /* min and max are those of the steps in the bucket. */
        uint64_t mn = UINT64_MAX, mx = 0;
        for (uint64_t k = b->step_lo; k <= b->step_hi; k++) {
            make_step(&st, &ev, k, 1.0);
            mn = st.live_bytes < mn ? st.live_bytes : mn;
            mx = st.live_bytes > mx ? st.live_bytes : mx;
        }
        assert_int_equal(b->min[HS_LIVE], mn);
        assert_int_equal(b->max[HS_LIVE], mx);
    }
    assert_int_equal(covered, N_STEPS);
    assert_int_equal(top, SPIKE_RSS);
    assert_true(s.b[at].step_lo <= SPIKE_STEP && SPIKE_STEP <= s.b[at].step_hi);
    make_step(&st, &ev, N_STEPS, 1.0);
    assert_int_equal(s.last[HS_LIVE], st.live_bytes);
    html_series_free(&s);

    /* Fewer steps than buckets: one bucket per step. */
    assert_int_equal(html_series_load(db, 1, 100000, &s, err, sizeof err), 0);
    assert_int_equal(s.count, N_STEPS);
    assert_int_equal(s.b[SPIKE_STEP - 1].max[HS_RSS], SPIKE_RSS);
    html_series_free(&s);
    analyzer_db_close(db);
}

/* The series stored at ingest: whole buckets with exact min and max, the spike kept, read instead
 * of the steps; the same page without it (a database from before the table) still renders. */
static void stored_series_is_read(void **state)
{
    (void)state;
    char err[512];
    struct sqlite3 *db = analyzer_db_open(db4, 0, err, sizeof err);
    assert_non_null(db);
    struct html_series s;
    assert_int_equal(html_series_load(db, 1, HTML_SERIES_BUCKETS, &s, err, sizeof err), 0);
    /* 50000 steps in fine buckets of 16, grouped by two: 1563 buckets of 32 steps. */
    assert_true(s.count > HTML_SERIES_BUCKETS / 2 && s.count <= HTML_SERIES_BUCKETS);
    assert_int_equal(s.first_step, 1);
    assert_int_equal(s.last_step, N_STEPS);
    assert_int_equal(s.rows, N_STEPS);
    uint64_t top = 0, next = 1;
    size_t at = 0;
    struct replay_step st;
    struct trace_event ev;
    for (size_t i = 0; i < s.count; i++) {
        const struct html_bucket *b = &s.b[i];
        assert_int_equal(b->step_lo, next);
        next = b->step_hi + 1;
        if (b->max[HS_RSS] > top) {
            top = b->max[HS_RSS];
            at = i;
        }
        uint64_t mn = UINT64_MAX, mx = 0;
        double sum = 0;
        for (uint64_t k = b->step_lo; k <= b->step_hi; k++) {
            make_step(&st, &ev, k, 1.0);
            mn = st.live_bytes < mn ? st.live_bytes : mn;
            mx = st.live_bytes > mx ? st.live_bytes : mx;
            sum += (double)st.live_bytes;
        }
        assert_int_equal(b->min[HS_LIVE], mn);
        assert_int_equal(b->max[HS_LIVE], mx);
        assert_int_equal(b->rows, b->step_hi - b->step_lo + 1);
        assert_true(b->avg[HS_LIVE] >= sum / (double)b->rows - 1 &&
                    b->avg[HS_LIVE] <= sum / (double)b->rows + 1);
    }
    assert_int_equal(next, N_STEPS + 1);
    assert_int_equal(top, SPIKE_RSS);
    assert_true(s.b[at].step_lo <= SPIKE_STEP && SPIKE_STEP <= s.b[at].step_hi);
    make_step(&st, &ev, N_STEPS, 1.0);
    assert_int_equal(s.last[HS_LIVE], st.live_bytes);
    html_series_free(&s);
    /* Read from the table: the steps are not needed any more. */
    char *e = NULL;
    assert_int_equal(sqlite3_exec(db, "DELETE FROM steps", NULL, NULL, &e), SQLITE_OK);
    assert_int_equal(html_series_load(db, 1, HTML_SERIES_BUCKETS, &s, err, sizeof err), 0);
    assert_true(s.count > HTML_SERIES_BUCKETS / 2);
    html_series_free(&s);
    analyzer_db_close(db);

    /* A sampled run: every bucket has values, carried where no step was stored. */
    db = analyzer_db_open(db5, 0, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(html_series_load(db, 1, HTML_SERIES_BUCKETS, &s, err, sizeof err), 0);
    assert_true(s.count > 100);
    for (size_t i = 0; i < s.count; i++) {
        assert_true(s.b[i].rows > 0);
        assert_true(s.b[i].min[HS_SYSTEM] > 0);
    }
    html_series_free(&s);
    /* Without the table (an older database): the steps are streamed, the page renders. */
    assert_int_equal(sqlite3_exec(db, "DROP TABLE series", NULL, NULL, &e), SQLITE_OK);
    analyzer_db_close(db);
    char *h = render(db5, -1);
    assert_non_null(strstr(h, "id=\"tl-svg\""));
    free(h);
    h = render(db1, -1);
    assert_non_null(strstr(h, "id=\"tl-svg\""));
    free(h);
}

static void sampled_run_carries_values(void **state)
{
    (void)state;
    char err[512];
    struct sqlite3 *db = analyzer_db_open(db3, 0, err, sizeof err);
    assert_non_null(db);
    struct html_series s;
    assert_int_equal(html_series_load(db, 1, HTML_SERIES_BUCKETS, &s, err, sizeof err), 0);
    assert_int_equal(s.count, HTML_SERIES_BUCKETS);
    /* Every step of the first half is a new peak (stored); the second half keeps one in 97,
     * so most of its buckets (25 steps each) hold no stored step. */
    assert_true(s.rows < N_STEPS * 3 / 4);
    /* Every bucket holds a value carried from the stored step before it: system bytes never
     * drop in this run, so no bucket may fall back to zero. */
    for (size_t i = 0; i < s.count; i++) {
        assert_true(s.b[i].rows > 0);
        assert_true(s.b[i].min[HS_SYSTEM] > 0);
        if (i)
            assert_true(s.b[i].max[HS_SYSTEM] >= s.b[i - 1].min[HS_SYSTEM]);
    }
    html_series_free(&s);
    analyzer_db_close(db);
}

static void big_heap_map_stays_small(void **state)
{
    (void)state;
    char err[512];
    struct sqlite3 *db = analyzer_db_open(db1, 0, err, sizeof err);
    assert_non_null(db);
    struct analyzer_report r;
    assert_int_equal(analyzer_report_load(db, 1, &r, err, sizeof err), 0);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    long rects = html_heap_map(f, db, &r, 2, "at the end");
    fclose(f);
    /* 200002 chunks, gathered: a few thousand marks and well under 2 MB of SVG. */
    assert_true(rects > 100);
    assert_true(rects < 8000);
    assert_true(size < (2u << 20));
    char why[256];
    assert_int_equal(check_html(buf, why, sizeof why), 0);
    /* The pinning chunk is outlined and labelled, linking to its finding. */
    char want[128];
    snprintf(want, sizeof want, "finding 1 names this chunk (0x%llx): it pins the top",
             (unsigned long long)pin_address);
    assert_true(strstr(buf, want) != NULL);
    assert_true(strstr(buf, ">1: pins the top</text>") != NULL);
    /* Gathered marks count their chunks by state. */
    assert_true(strstr(buf, " in use (") != NULL && strstr(buf, " fastbin (") != NULL);
    free(buf);
    /* A snapshot that does not exist draws nothing. */
    f = open_memstream(&buf, &size);
    assert_int_equal(html_heap_map(f, db, &r, 9, "nothing"), -1);
    fclose(f);
    assert_int_equal(size, 0);
    free(buf);
    analyzer_report_free(&r);
    analyzer_db_close(db);
}

static void sweep_database_compares_settings(void **state)
{
    (void)state;
    char *h = render(db2, 2);
    char why[256];
    assert_int_equal(check_html(h, why, sizeof why), 0);
    const char *sec = strstr(h, "<section id=\"sweep\">");
    assert_non_null(sec);
    /* Ranked by final heap RSS: tcache_count=0 (scale 0.25), mxfast=0, tcache_count=7. */
    const char *a = strstr(sec, "<td>tcache_count=0</td>"), *b = strstr(sec, "<td>mxfast=0</td>"),
               *c = strstr(sec, "<td>tcache_count=7</td>");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_true(strstr(sec, "<tr class=\"best current\"><td>1</td><td>2 (this report)") != NULL);
    assert_int_equal(count(sec, "<rect class=\"b-peak\""), 3);
    assert_int_equal(count(sec, "<rect class=\"b-final\""), 3);
    free(h);
}

/* A run that stored no step (stopped at once): the page still renders, saying so. */
static void empty_run_renders(void **state)
{
    (void)state;
    char path[400], err[512];
    snprintf(path, sizeof path, "%s/empty.db", dir);
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.no_analysis = 1;
    io.quiet = 1;
    struct analyzer_ingest *ing = analyzer_ingest_open(path, NULL, &io, err, sizeof err);
    assert_non_null(ing);
    assert_int_equal(analyzer_ingest_finish(ing, NULL, err, sizeof err), 0);
    char *h = render(path, -1);
    char why[256];
    assert_int_equal(check_html(h, why, sizeof why), 0);
    assert_true(strstr(h, "The run stored no step.") != NULL);
    assert_true(strstr(h, "The run has no chunk snapshot") != NULL);
    assert_null(strstr(h, "id=\"tl-data\""));
    free(h);
}

static void output_file_is_created_safely(void **state)
{
    (void)state;
    char path[400], link[400], target[400], err[512];
    snprintf(path, sizeof path, "%s/out.html", dir);
    snprintf(link, sizeof link, "%s/link.html", dir);
    snprintf(target, sizeof target, "%s/target.txt", dir);
    FILE *f = report_output_open(path, 0, err, sizeof err);
    assert_non_null(f);
    fputs("first", f);
    assert_int_equal(report_output_close(f, path, err, sizeof err), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* Exists: refused without force, replaced with it. */
    assert_null(report_output_open(path, 0, err, sizeof err));
    assert_true(strstr(err, "already exists") != NULL);
    f = report_output_open(path, 1, err, sizeof err);
    assert_non_null(f);
    fputs("second!", f);
    assert_int_equal(report_output_close(f, path, err, sizeof err), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 7);
    /* A symlink: refused even with force, and its target untouched. */
    FILE *t = fopen(target, "w");
    assert_non_null(t);
    fputs("keep", t);
    fclose(t);
    assert_int_equal(symlink(target, link), 0);
    assert_null(report_output_open(link, 1, err, sizeof err));
    assert_true(strstr(err, "symbolic link") != NULL);
    assert_int_equal(stat(target, &sb), 0);
    assert_int_equal(sb.st_size, 4);
    /* A directory. */
    assert_null(report_output_open(dir, 1, err, sizeof err));
}

static void report_command_writes_html(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/cli.html", dir);
    char *argv1[] = {"report", db1, "--format", "html", "-o", path, NULL};
    assert_int_equal(cmd_report(6, argv1), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char head[32] = "";
    assert_true(fread(head, 1, 15, f) == 15);
    fclose(f);
    assert_string_equal(head, "<!DOCTYPE html>");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* Again: refused without --force, done with it. */
    assert_int_equal(cmd_report(6, argv1), 1);
    char *argv2[] = {"report", db1, "--format", "html", "-o", path, "--force", NULL};
    assert_int_equal(cmd_report(7, argv2), 0);
    char *argv3[] = {"report", db1, "--format", "pdf", NULL};
    assert_int_equal(cmd_report(4, argv3), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checker_catches_bad_html),
        cmocka_unit_test(page_is_well_formed_and_self_contained),
        cmocka_unit_test(strings_from_the_trace_are_escaped),
        cmocka_unit_test(timeline_keeps_the_spike),
        cmocka_unit_test(sampled_run_carries_values),
        cmocka_unit_test(stored_series_is_read),
        cmocka_unit_test(big_heap_map_stays_small),
        cmocka_unit_test(sweep_database_compares_settings),
        cmocka_unit_test(empty_run_renders),
        cmocka_unit_test(output_file_is_created_safely),
        cmocka_unit_test(report_command_writes_html),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
