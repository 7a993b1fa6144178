/* report_html_timeline.c: the two charts over steps, drawn as inline SVG from the downsampled
 * series (report_html_series.c).
 *
 * The timeline draws live bytes, heap RSS, system bytes and the top chunk over steps. Each series
 * is a band from its per-bucket minimum to its maximum (a thin line where they agree), so a spike
 * shorter than a bucket still shows. The findings are marked by numbered flags linking to their
 * cards, the heap maps' snapshots by ticks under the axis, the peaks by dots. The second chart is
 * a stacked area of where the free memory sits (tcache, fastbins, unsorted, small and large bins,
 * top) from the per-bucket means, which add up to the mean of the total.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "db_util.h"
#include "report_html_int.h"

/* Chart geometry (SVG user units; the SVG scales to the page width). */
#define CW 1100
#define CH 360
#define ML 78
#define MR 150
#define MT 34
#define MB 46

struct frame {
    double x0, x1, y0, y1;      /* the plot area: x0..x1 left to right, y0 (bottom)..y1 (top) */
    uint64_t first, span;       /* steps first .. first + span - 1 */
    double ymax;
};

static double fx(const struct frame *fr, double step)
{
    return fr->x0 + (step - (double)fr->first + 0.5) / (double)fr->span * (fr->x1 - fr->x0);
}

static double fy(const struct frame *fr, double v)
{
    return fr->y0 - v / fr->ymax * (fr->y0 - fr->y1);
}

static double bucket_x(const struct frame *fr, const struct html_bucket *b)
{
    return fx(fr, ((double)b->step_lo + (double)b->step_hi) / 2);
}

/* Axes, grid, tick labels and axis titles. */
static void axes(FILE *f, const struct frame *fr, const struct html_axis *ya, const char *ytitle)
{
    char buf[64];
    fprintf(f, "<g class=\"axis\">\n");
    for (int i = 0; i <= ya->ticks; i++) {
        double v = i * ya->step, y = fy(fr, v);
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", fr->x0,
                y, fr->x1, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", fr->x0 - 6,
                y + 4, html_axis_bytes_label(ya, buf, sizeof buf, v));
    }
    struct html_axis xa;
    html_axis_steps(&xa, (double)fr->first, (double)(fr->first + fr->span - 1), 10);
    double start = xa.step * (double)(uint64_t)((double)fr->first / xa.step);
    for (double s = start; s <= (double)(fr->first + fr->span - 1); s += xa.step) {
        if (s < (double)fr->first)
            continue;
        double x = fx(fr, s);
        fprintf(f, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x,
                fr->y0, x, fr->y0 + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x,
                fr->y0 + 18, html_step_label(buf, sizeof buf, s));
    }
    fprintf(f, "<line class=\"frame\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", fr->x0,
            fr->y0, fr->x1, fr->y0);
    fprintf(f, "<line class=\"frame\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
            fr->x0, fr->y0, fr->x0, fr->y1);
    fprintf(f, "<text class=\"atitle\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">step (trace "
               "event number)</text>\n",
            (fr->x0 + fr->x1) / 2, CH - 6);
    fprintf(f, "<text class=\"atitle\" transform=\"translate(16 %.1f) rotate(-90)\" "
               "text-anchor=\"middle\">%s</text>\n",
            (fr->y0 + fr->y1) / 2, ytitle);
    fprintf(f, "</g>\n");
}

/* One series as a min..max band: the max edge forward, the min edge back (or the axis, for an
 * area). A series whose buckets each hold one value is a plain line. */
static void band(FILE *f, const struct frame *fr, const struct html_series *s, int k,
                 const char *cls, int area)
{
    int flat = 1;
    for (size_t i = 0; i < s->count && flat; i++)
        flat = s->b[i].min[k] == s->b[i].max[k];
    fprintf(f, "<path class=\"%s%s\" d=\"", cls, flat && !area ? " line" : "");
    for (size_t i = 0; i < s->count; i++)
        fprintf(f, "%c%.1f %.1f", i ? 'L' : 'M', bucket_x(fr, &s->b[i]),
                fy(fr, (double)s->b[i].max[k]));
    if (area) {
        fprintf(f, "L%.1f %.1fL%.1f %.1fZ", bucket_x(fr, &s->b[s->count - 1]), fr->y0,
                bucket_x(fr, &s->b[0]), fr->y0);
    } else if (!flat) {
        for (size_t i = s->count; i-- > 0;)
            fprintf(f, "L%.1f %.1f", bucket_x(fr, &s->b[i]), fy(fr, (double)s->b[i].min[k]));
        fprintf(f, "Z");
    }
    fprintf(f, "\"/>\n");
}

/* Flags for the findings (numbered as in the report) and ticks for the snapshots. */
static void markers(FILE *f, sqlite3 *db, const struct frame *fr, const struct analyzer_report *r)
{
    char b1[32];
    for (size_t i = 0; i < r->finding_count; i++) {
        const struct analyzer_finding *x = &r->findings[i];
        if (x->step < fr->first || x->step >= fr->first + fr->span)
            continue;
        /* Flags at the same place stack upwards instead of overlapping. */
        int level = 0;
        for (size_t j = 0; j < i; j++) {
            double d = fx(fr, (double)r->findings[j].step) - fx(fr, (double)x->step);
            if (d > -22 && d < 22)
                level++;
        }
        double x0 = fx(fr, (double)x->step), ytop = fr->y1 - 22;
        double xf = x0 - 20.0 * level;
        fprintf(f, "<a href=\"#finding-%zu\"><g class=\"flag\"><title>finding %zu at step %" PRIu64
                   ": ",
                i + 1, i + 1, x->step);
        html_esc(f, x->cause);
        fprintf(f, " (%s)</title>", html_bytes(b1, sizeof b1, x->bytes, 0));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x0, fr->y0, x0,
                ytop + 16);
        if (xf != x0)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x0, ytop + 16,
                    xf, ytop + 9);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"9\"/><text x=\"%.1f\" y=\"%.1f\" "
                   "text-anchor=\"middle\">%zu</text></g></a>\n",
                xf, ytop + 8, xf, ytop + 12, i + 1);
    }
    char err[128];
    sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                  "SELECT step, reason FROM snapshots WHERE run = %lld ORDER BY "
                                  "step",
                                  (long long)r->run.id);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        uint64_t step = (uint64_t)sqlite3_column_int64(st, 0);
        if (step < fr->first || step >= fr->first + fr->span)
            continue;
        double x = fx(fr, (double)step);
        fprintf(f, "<g class=\"snapmark\"><title>heap map: ");
        html_esc(f, (const char *)sqlite3_column_text(st, 1));
        fprintf(f, " (step %" PRIu64 ")</title><path d=\"M%.1f %.1fl-5 8h10z\"/></g>\n", step,
                x, fr->y0 + 1);
    }
    sqlite3_finalize(st);
}

static void peak_dot(FILE *f, const struct frame *fr, uint64_t step, uint64_t v, const char *what,
                     const char *cls, int label)
{
    char b1[32];
    if (!step || step < fr->first || step >= fr->first + fr->span)
        return;
    double x = fx(fr, (double)step), y = fy(fr, (double)v);
    fprintf(f, "<g class=\"%s\"><title>%s: %s at step %" PRIu64 "</title><circle cx=\"%.1f\" "
               "cy=\"%.1f\" r=\"4\"/>",
            cls, what, html_bytes(b1, sizeof b1, v, 0), step, x, y);
    /* The label above the dot, kept inside the plot. */
    if (label) {
        double lx = x < fr->x0 + 90 ? fr->x0 + 90 : x > fr->x1 - 90 ? fr->x1 - 90 : x;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s %s</text>", lx,
                y - 9 < fr->y1 + 10 ? y + 18 : y - 9, what, b1);
    }
    fprintf(f, "</g>\n");
}

/* The final value of each series, written at the right end of its line, pushed apart so that
 * labels of nearly equal values do not overlap. */
static void end_labels(FILE *f, const struct frame *fr, const struct html_series *s)
{
    static const struct {
        int k;
        const char *name, *cls;
    } series[] = {{HS_RSS, "heap RSS", "l-rss"}, {HS_SYSTEM, "system", "l-system"},
                  {HS_LIVE, "live", "l-live"}, {HS_TOP, "top", "l-top"}};
    const int n = (int)(sizeof series / sizeof *series);
    double y[4];
    int order[4];
    for (int i = 0; i < n; i++) {
        y[i] = fy(fr, (double)s->last[series[i].k]);
        order[i] = i;
    }
    for (int i = 1; i < n; i++)             /* by y, top first */
        for (int j = i; j > 0 && y[order[j]] < y[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double pos[4], prev = -1e9;
    for (int i = 0; i < n; i++) {
        pos[order[i]] = y[order[i]] > prev + 14 ? y[order[i]] : prev + 14;
        prev = pos[order[i]];
    }
    /* Labels pushed below the axis move up together. */
    double over = prev - (fr->y0 + 4);
    if (over > 0)
        for (int i = 0; i < n; i++)
            pos[i] -= over;
    char b[32];
    for (int i = 0; i < n; i++)
        fprintf(f, "<text class=\"endlabel %s\" x=\"%.1f\" y=\"%.1f\">%s %s</text>\n",
                series[i].cls, fr->x1 + 8, pos[i] + 4,
                html_bytes(b, sizeof b, s->last[series[i].k], 0), series[i].name);
}

static void legend_item(FILE *f, const char *cls, const char *name, const char *desc)
{
    fprintf(f, "<span class=\"key\"><i class=\"%s\"></i>%s<small>%s</small></span>\n", cls, name,
            desc);
}

void html_timeline(FILE *f, sqlite3 *db, const struct analyzer_report *r,
                   const struct html_series *s)
{
    fprintf(f, "<section id=\"timeline\">\n<h2>Memory over the run</h2>\n");
    if (!s->count) {
        fprintf(f, "<p class=\"note\">The run stored no step.</p>\n</section>\n");
        return;
    }
    uint64_t ymax = 1;
    for (size_t i = 0; i < s->count; i++)
        for (int k = HS_LIVE; k <= HS_TOP; k++)
            if (s->b[i].max[k] > ymax)
                ymax = s->b[i].max[k];
    struct html_axis ya;
    html_axis_bytes(&ya, (double)ymax, 6);
    struct frame fr = {ML, CW - MR, CH - MB, MT, s->first_step, s->last_step - s->first_step + 1,
                       ya.hi};
    fprintf(f, "<div class=\"legend\">\n");
    legend_item(f, "s-rss", "heap RSS", "resident heap pages and mmapped chunks");
    legend_item(f, "s-system", "system bytes", "heaps and mmapped chunks obtained from the OS");
    legend_item(f, "s-live", "live bytes", "requested by the program and not freed");
    legend_item(f, "s-top", "top chunk", "free space at the end of the heap");
    fprintf(f, "<span class=\"key\"><b class=\"flagkey\">1</b>finding (click for details)</span>"
               "<span class=\"key\"><b class=\"snapkey\"></b>heap map snapshot</span>\n");
    fprintf(f, "</div>\n");
    fprintf(f, "<svg class=\"chart\" id=\"tl-svg\" viewBox=\"0 0 %d %d\" role=\"img\" "
               "aria-label=\"memory over the run\">\n",
            CW, CH);
    axes(f, &fr, &ya, "bytes");
    band(f, &fr, s, HS_LIVE, "s-live", 1);
    band(f, &fr, s, HS_TOP, "s-top", 0);
    band(f, &fr, s, HS_RSS, "s-rss", 0);
    band(f, &fr, s, HS_SYSTEM, "s-system", 0);
    end_labels(f, &fr, s);
    const struct analyzer_measures *m = &r->measures;
    peak_dot(f, &fr, m->peak_live_step, m->peak_live, "live peak", "pk-live", 0);
    peak_dot(f, &fr, m->peak_rss_step, m->peak_rss, "heap RSS peak", "pk-rss", 1);
    markers(f, db, &fr, r);
    /* The hover read-out (the page's script moves it; hidden until then). */
    fprintf(f, "<g id=\"tl-cursor\" class=\"cursor\" visibility=\"hidden\"><line x1=\"0\" "
               "y1=\"%.1f\" x2=\"0\" y2=\"%.1f\"/><text x=\"0\" y=\"%.1f\"></text></g>\n",
            fr.y1, fr.y0, fr.y1 + 12);
    fprintf(f, "</svg>\n");
    /* The buckets for the read-out: [first step, last step, heap RSS, live, system, top]. */
    fprintf(f, "<script type=\"application/json\" id=\"tl-data\">{\"x0\":%.1f,\"x1\":%.1f,"
               "\"first\":%" PRIu64 ",\"span\":%" PRIu64 ",\"s\":[",
            fr.x0, fr.x1, fr.first, fr.span);
    for (size_t i = 0; i < s->count; i++) {
        const struct html_bucket *b = &s->b[i];
        fprintf(f, "%s[%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]",
                i ? "," : "", b->step_lo, b->step_hi, b->max[HS_RSS], b->max[HS_LIVE],
                b->max[HS_SYSTEM], b->max[HS_TOP]);
    }
    fprintf(f, "]}</script>\n");
    uint64_t per = (fr.span + s->count - 1) / s->count;
    fprintf(f, "<p class=\"note\">%" PRIu64 " steps (%" PRIu64 " stored) drawn as %zu points",
            fr.span, s->rows, s->count);
    if (per > 1)
        fprintf(f, " of up to %" PRIu64 " steps each; each band spans the minimum to the maximum "
                   "within its point", per);
    fprintf(f, ". Hover over the chart for the values at a step.</p>\n");
    fprintf(f, "</section>\n");
}

void html_free_stack(FILE *f, const struct analyzer_report *r, const struct html_series *s)
{
    (void)r;
    static const struct {
        int k;
        const char *state, *name;
    } layers[] = {
        {HS_TCACHE, "tcache", "tcache"},       {HS_FAST, "fastbin", "fastbins"},
        {HS_UNSORTED, "unsorted", "unsorted bin"}, {HS_SMALL, "small", "small bins"},
        {HS_LARGE, "large", "large bins"},     {HS_TOP, "top", "top chunk"},
    };
    const int nl = (int)(sizeof layers / sizeof *layers);
    fprintf(f, "<section id=\"free\">\n<h2>Where the free memory sits</h2>\n");
    if (!s->count) {
        fprintf(f, "<p class=\"note\">The run stored no step.</p>\n</section>\n");
        return;
    }
    double ymax = 1;
    for (size_t i = 0; i < s->count; i++) {
        double t = 0;
        for (int l = 0; l < nl; l++)
            t += s->b[i].avg[layers[l].k];
        if (t > ymax)
            ymax = t;
    }
    struct html_axis ya;
    html_axis_bytes(&ya, ymax, 6);
    struct frame fr = {ML, CW - MR, CH - MB, MT - 20, s->first_step,
                       s->last_step - s->first_step + 1, ya.hi};
    fprintf(f, "<div class=\"legend\">\n");
    for (int l = 0; l < nl; l++)
        fprintf(f, "<span class=\"key\"><i style=\"background:%s\"></i>%s</span>\n",
                html_state_color(layers[l].state), layers[l].name);
    fprintf(f, "</div>\n<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" "
               "aria-label=\"free memory by bin over the run\">\n",
            CW, CH);
    axes(f, &fr, &ya, "free bytes (stacked)");
    /* Layer l is drawn as the area of the sum of layers 0..l, from the top layer down, each
     * covering the ones below it: one edge per path. Empty layers are left out. */
    fprintf(f, "<g class=\"stack\">\n");
    for (int l = nl - 1; l >= 0; l--) {
        int empty = 1;
        for (size_t i = 0; i < s->count && empty; i++)
            empty = s->b[i].avg[layers[l].k] <= 0;
        if (empty)
            continue;
        fprintf(f, "<path fill=\"%s\" d=\"", html_state_color(layers[l].state));
        for (size_t i = 0; i < s->count; i++) {
            double sum = 0;
            for (int j = 0; j <= l; j++)
                sum += s->b[i].avg[layers[j].k];
            fprintf(f, "%c%.1f %.1f", i ? 'L' : 'M', bucket_x(&fr, &s->b[i]), fy(&fr, sum));
        }
        fprintf(f, "L%.1f %.1fL%.1f %.1fZ\"><title>%s</title></path>\n",
                bucket_x(&fr, &s->b[s->count - 1]), fr.y0, bucket_x(&fr, &s->b[0]), fr.y0,
                layers[l].name);
    }
    fprintf(f, "</g>\n</svg>\n");
    fprintf(f, "<p class=\"note\">Free chunks by where the allocator keeps them, averaged within "
               "each point. tcache and fastbin chunks stay marked in use, so they never "
               "coalesce with their neighbours; memory below an in-use chunk cannot return to the "
               "system by trimming the top.</p>\n");
    fprintf(f, "</section>\n");
}
