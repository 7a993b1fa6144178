/* test_report_browser.c: the HTML report of the 4000-block example in a real browser.
 *
 * Records the example program (tracer preloaded), replays it into a database, sweeps two
 * tcache settings into a second one, and writes both HTML reports. Debian's Chromium, headless,
 * then loads each: the page's own script sets data-report-ok="1" on <body> only when no script
 * error happened (read back with --dump-dom), and Chromium's log (--enable-logging=stderr) must
 * hold no console message at all: no uncaught error, no blocked fetch (the page's
 * Content-Security-Policy forbids any). A page with a deliberate error shows that both checks
 * catch one. The timeline's read-out is moved by a synthetic pointer event and must show the
 * heap RSS under it. Last, a screenshot at 1400x2400 is decoded (PNG, with zlib) and must show the
 * charts: many distinct colours, among them the exact fills of the heap-RSS legend, live bytes
 * and the unsorted bin (the free-memory chart). The screenshot is kept next to the test binary
 * (report-4000-blocks.png) to look at.
 *
 * Without Chromium (scripts/install-deps.sh installs it) the test exits 77, which ctest reports
 * as skipped, saying why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "test_support.h"

#ifndef FRAGSCOPE_BIN
#error "FRAGSCOPE_BIN must be defined"
#endif

static char browser[512], dir[256];
static int launches;

static int find_browser(void)
{
    const char *env = getenv("FRAGSCOPE_CHROMIUM");
    if (env && *env && access(env, X_OK) == 0) {
        snprintf(browser, sizeof browser, "%s", env);
        return 0;
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path && *path ? path : "/usr/bin:/bin");
    static const char *names[] = {"chromium", "chromium-browser"};
    for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
        char *save = NULL;
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", buf);
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            snprintf(browser, sizeof browser, "%s/%s", d, names[n]);
            if (access(browser, X_OK) == 0)
                return 0;
        }
    }
    return -1;
}

static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

/* Runs headless Chromium on file `page` with `args`; stdout to out, stderr to log. */
static int chromium(const char *page, const char *args, const char *out, const char *log)
{
    launches++;
    return sh("timeout 120 '%s' --headless --no-sandbox --disable-gpu --disable-quic "
              "--no-first-run --disable-background-networking --disable-component-update "
              "--disable-sync --user-data-dir='%s/profile-%d' --enable-logging=stderr --v=0 "
              "%s 'file://%s' > '%s' 2> '%s'",
              browser, dir, launches, args, page, out, log);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

static int setup(void **state)
{
    (void)state;
    if (ts_tmpdir(dir, sizeof dir, "report-browser") != 0)
        return -1;
    /* Inside the folder, so the reports name the trace by its short name. */
    return sh("cd '%s' && '%s' record -q -o t.fstrace -- '%s' > /dev/null && "
              "'%s' replay t.fstrace --db t.db > /dev/null && "
              "'%s' report t.db --format html -o report.html && "
              "'%s' sweep t.fstrace --set tcache_count=0,7 --db s.db -j 2 > /dev/null 2>&1 && "
              "'%s' report s.db --format html -o sweep.html",
              dir, FRAGSCOPE_BIN, TRACE_4000_BLOCKS, FRAGSCOPE_BIN, FRAGSCOPE_BIN,
              FRAGSCOPE_BIN, FRAGSCOPE_BIN);
}

static int teardown(void **state)
{
    (void)state;
    if (getenv("FRAGSCOPE_KEEP"))
        return 0;
    return ts_rmtree(dir);
}

/* Loads page; returns the DOM and the log (caller frees both). */
static void load(const char *page, char **dom, char **log)
{
    char out[400], err[400];
    snprintf(out, sizeof out, "%s/dom-%d.html", dir, launches + 1);
    snprintf(err, sizeof err, "%s/log-%d.txt", dir, launches + 1);
    assert_int_equal(chromium(page, "--dump-dom", out, err), 0);
    *dom = slurp(out, NULL);
    *log = slurp(err, NULL);
    assert_non_null(*dom);
    assert_non_null(*log);
}

static void print_console(const char *log)
{
    for (const char *p = strstr(log, ":CONSOLE"); p; p = strstr(p + 1, ":CONSOLE")) {
        const char *e = strchr(p, '\n');
        fprintf(stderr, "console: %.*s\n", e ? (int)(e - p) : 200, p);
    }
}

static void a_script_error_is_caught(void **state)
{
    (void)state;
    char page[400];
    snprintf(page, sizeof page, "%s/broken.html", dir);
    FILE *f = fopen(page, "w");
    assert_non_null(f);
    fputs("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><script>window.fsErrors=[];"
          "window.addEventListener('error',function(e){window.fsErrors.push(String(e.message));"
          "});</script></head><body><p>broken</p><script>no_such_function();</script><script>"
          "if(!window.fsErrors.length)document.body.setAttribute('data-report-ok','1');"
          "</script></body></html>\n",
          f);
    fclose(f);
    char *dom, *log;
    load(page, &dom, &log);
    assert_true(strstr(dom, "<p>broken</p>") != NULL);   /* the page did load */
    assert_null(strstr(dom, "data-report-ok=\"1\""));
    assert_true(strstr(log, ":CONSOLE") != NULL);
    assert_true(strstr(log, "Uncaught ReferenceError") != NULL);
    free(dom);
    free(log);
}

static void report_loads_without_errors(void **state)
{
    (void)state;
    char page[400];
    snprintf(page, sizeof page, "%s/report.html", dir);
    char *dom, *log;
    load(page, &dom, &log);
    print_console(log);
    assert_null(strstr(log, ":CONSOLE"));
    assert_true(strstr(dom, "data-report-ok=\"1\"") != NULL);
    const char *charts = strstr(dom, "data-charts=\"");
    assert_non_null(charts);
    /* Timeline, free memory, three heap maps (RSS peak, retention peak, end). */
    assert_true(atoi(charts + 13) >= 5);
    assert_true(strstr(dom, "top-pinned-by-tcache") != NULL);
    assert_true(strstr(dom, "id=\"finding-1\"") != NULL);
    assert_true(strstr(dom, "pins the top") != NULL);
    free(dom);
    free(log);
}

/* The timeline's read-out: a copy of the report with a script that moves the pointer over the
 * middle of the timeline and writes what the read-out shows into <body data-hover>. */
static void timeline_readout_follows_the_pointer(void **state)
{
    (void)state;
    char src[400], page[400];
    snprintf(src, sizeof src, "%s/report.html", dir);
    snprintf(page, sizeof page, "%s/hover.html", dir);
    size_t len = 0;
    char *html = slurp(src, &len);
    assert_non_null(html);
    char *end = strstr(html, "</body>");
    assert_non_null(end);
    FILE *f = fopen(page, "w");
    assert_non_null(f);
    fwrite(html, 1, (size_t)(end - html), f);
    fputs("<script>(function(){var svg=document.getElementById('tl-svg'),"
          "r=svg.getBoundingClientRect();svg.dispatchEvent(new MouseEvent('mousemove',"
          "{clientX:r.left+r.width*0.5,clientY:r.top+r.height*0.5,bubbles:true}));"
          "var c=document.getElementById('tl-cursor');document.body.setAttribute('data-hover',"
          "c.getAttribute('visibility')+'|'+c.querySelector('text').textContent);})();</script>",
          f);
    fputs(end, f);
    fclose(f);
    free(html);
    char *dom, *log;
    load(page, &dom, &log);
    print_console(log);
    assert_null(strstr(log, ":CONSOLE"));
    const char *hover = strstr(dom, "data-hover=\"");
    assert_non_null(hover);
    const char *q = strchr(hover + 12, '"');
    assert_non_null(q);
    fprintf(stderr, "read-out: %.*s\n", (int)(q - hover - 12), hover + 12);
    /* The middle of the run: live bytes falling from the peak, heap RSS held at 201 MiB. */
    assert_true(strncmp(hover, "data-hover=\"visible|steps ", 26) == 0);
    char *rss = strstr(hover, ": heap RSS 201 MiB, live ");
    assert_true(rss != NULL && rss < q);
    free(dom);
    free(log);
}

static void sweep_report_loads_without_errors(void **state)
{
    (void)state;
    char page[400];
    snprintf(page, sizeof page, "%s/sweep.html", dir);
    char *dom, *log;
    load(page, &dom, &log);
    print_console(log);
    assert_null(strstr(log, ":CONSOLE"));
    assert_true(strstr(dom, "data-report-ok=\"1\"") != NULL);
    const char *sec = strstr(dom, "<section id=\"sweep\">");
    assert_non_null(sec);
    assert_true(strstr(sec, "tcache_count=0") != NULL);
    assert_true(strstr(sec, "tcache_count=7") != NULL);
    free(dom);
    free(log);
}

/* ---- PNG decoding: 8-bit RGB / RGBA, not interlaced (what Chromium writes) ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Decodes into RGB rows (3 bytes a pixel); returns the pixels or NULL. */
static unsigned char *png_rgb(const unsigned char *png, size_t len, uint32_t *w, uint32_t *h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len < 8 || memcmp(png, sig, 8))
        return NULL;
    size_t at = 8, idat_len = 0;
    unsigned char *idat = NULL;
    int bpp = 0;
    *w = *h = 0;
    while (at + 12 <= len) {
        uint32_t n = be32(png + at);
        const unsigned char *type = png + at + 4, *data = png + at + 8;
        if (at + 12 + n > len)
            break;
        if (!memcmp(type, "IHDR", 4)) {
            *w = be32(data);
            *h = be32(data + 4);
            if (data[8] != 8 || data[12] != 0 || (data[9] != 2 && data[9] != 6))
                break;
            bpp = data[9] == 6 ? 4 : 3;
        } else if (!memcmp(type, "IDAT", 4)) {
            unsigned char *m = realloc(idat, idat_len + n);
            if (!m)
                break;
            idat = m;
            memcpy(idat + idat_len, data, n);
            idat_len += n;
        } else if (!memcmp(type, "IEND", 4)) {
            break;
        }
        at += 12 + n;
    }
    if (!bpp || !*w || !*h || *w > 20000 || *h > 20000) {
        free(idat);
        return NULL;
    }
    size_t stride = (size_t)*w * bpp;
    uLongf raw_len = (uLongf)((stride + 1) * *h);
    unsigned char *raw = malloc(raw_len), *rgb = malloc((size_t)*w * *h * 3);
    if (!raw || !rgb || uncompress(raw, &raw_len, idat, idat_len) != Z_OK ||
        raw_len != (stride + 1) * *h) {
        free(idat);
        free(raw);
        free(rgb);
        return NULL;
    }
    free(idat);
    unsigned char *prev = NULL;
    for (uint32_t y = 0; y < *h; y++) {
        unsigned char *row = raw + y * (stride + 1) + 1;
        int filter = row[-1];
        for (size_t i = 0; i < stride; i++) {
            int a = i >= (size_t)bpp ? row[i - bpp] : 0, b = prev ? prev[i] : 0;
            int c = prev && i >= (size_t)bpp ? prev[i - bpp] : 0;
            int v = row[i];
            switch (filter) {
            case 1: v += a; break;
            case 2: v += b; break;
            case 3: v += (a + b) / 2; break;
            case 4: v += paeth(a, b, c); break;
            default: break;
            }
            row[i] = (unsigned char)v;
        }
        for (uint32_t x = 0; x < *w; x++)
            memcpy(rgb + ((size_t)y * *w + x) * 3, row + (size_t)x * bpp, 3);
        prev = row;
    }
    free(raw);
    return rgb;
}

static int has_color(const unsigned char *rgb, size_t pixels, uint32_t color)
{
    for (size_t i = 0; i < pixels; i++)
        if (((uint32_t)rgb[3 * i] << 16 | (uint32_t)rgb[3 * i + 1] << 8 | rgb[3 * i + 2]) == color)
            return 1;
    return 0;
}

static void screenshot_shows_the_charts(void **state)
{
    (void)state;
    char page[400], shot[400], out[400], log[400], args[600];
    snprintf(page, sizeof page, "%s/report.html", dir);
    snprintf(shot, sizeof shot, "%s/shot.png", dir);
    snprintf(out, sizeof out, "%s/shot-out.txt", dir);
    snprintf(log, sizeof log, "%s/shot-log.txt", dir);
    snprintf(args, sizeof args, "--hide-scrollbars --window-size=1400,2400 --screenshot='%s'",
             shot);
    assert_int_equal(chromium(page, args, out, log), 0);
    size_t len = 0;
    unsigned char *png = (unsigned char *)slurp(shot, &len);
    assert_non_null(png);
    assert_true(len > 50000);
    uint32_t w = 0, h = 0;
    unsigned char *rgb = png_rgb(png, len, &w, &h);
    assert_non_null(rgb);
    assert_int_equal(w, 1400);
    assert_int_equal(h, 2400);
    size_t pixels = (size_t)w * h;
    /* Not a blank page: count distinct colours. */
    unsigned char *seen = calloc(1 << 21, 1);
    assert_non_null(seen);
    size_t distinct = 0;
    for (size_t i = 0; i < pixels; i++) {
        uint32_t c = (uint32_t)rgb[3 * i] << 16 | (uint32_t)rgb[3 * i + 1] << 8 | rgb[3 * i + 2];
        if (!(seen[c >> 3] & (1 << (c & 7)))) {
            seen[c >> 3] |= (unsigned char)(1 << (c & 7));
            distinct++;
        }
    }
    free(seen);
    fprintf(stderr, "screenshot: %ux%u, %zu bytes, %zu distinct colours\n", w, h, len, distinct);
    assert_true(distinct >= 100);
    assert_true(has_color(rgb, pixels, 0xe45756));    /* heap RSS (legend) */
    assert_true(has_color(rgb, pixels, 0x4c78a8));    /* live bytes (legend) */
    assert_true(has_color(rgb, pixels, 0xeeca3b));    /* the unsorted bin (free memory chart) */
    free(rgb);
    free(png);
    /* Keep it next to the test, to look at. */
    sh("cp '%s' '%s/report-4000-blocks.png'", shot, SCREENSHOT_DIR);
}

int main(void)
{
    if (find_browser()) {
        printf("test_report_browser: SKIP: chromium is not installed (scripts/install-deps.sh "
               "installs Debian's chromium; FRAGSCOPE_CHROMIUM=/path/to/chromium overrides)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_script_error_is_caught),
        cmocka_unit_test(report_loads_without_errors),
        cmocka_unit_test(timeline_readout_follows_the_pointer),
        cmocka_unit_test(sweep_report_loads_without_errors),
        cmocka_unit_test(screenshot_shows_the_charts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
