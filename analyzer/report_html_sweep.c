/* report_html_sweep.c: the settings comparison of a sweep database (`fragscope sweep`: one run
 * of the same trace per combination of settings).
 *
 * When the database holds other runs of the reported run's trace, they are ranked as `sweep`
 * ranks them (final heap RSS, then peak heap RSS) in a table, with the best and the reported run
 * picked out, and drawn as a bar chart of peak and final heap RSS per setting. The figures come
 * from the per-run aggregates in `runs`, so the comparison costs one small query.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db_util.h"
#include "report_html_int.h"

#define MAX_RUNS 64

struct run_row {
    int64_t id;
    char settings[512];
    uint64_t peak_rss, final_rss, peak_system, final_live;
    double seconds;
    int completed;
};

void html_sweep(FILE *f, sqlite3 *db, const struct analyzer_report *r, int exact)
{
    char err[256], b1[32], b2[32], b3[32], b4[32];
    int64_t others = db_int(db, 0, "SELECT count(*) FROM runs WHERE trace IS %Q AND id <> %lld",
                            r->run.trace[0] ? r->run.trace : NULL, (long long)r->run.id);
    if (others < 1)
        return;
    sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                  "SELECT id, settings, coalesce(peak_rss, 0), "
                                  "coalesce(final_rss, 0), coalesce(peak_system, 0), "
                                  "coalesce(final_live, 0), coalesce(seconds, 0), completed "
                                  "FROM runs WHERE trace IS %Q ORDER BY final_rss, peak_rss, id "
                                  "LIMIT %d",
                                  r->run.trace[0] ? r->run.trace : NULL, MAX_RUNS);
    if (!st)
        return;
    struct run_row *rows = calloc(MAX_RUNS, sizeof *rows);
    size_t n = 0;
    while (rows && sqlite3_step(st) == SQLITE_ROW && n < MAX_RUNS) {
        struct run_row *x = &rows[n++];
        x->id = sqlite3_column_int64(st, 0);
        db_text(st, 1, x->settings, sizeof x->settings);
        x->peak_rss = (uint64_t)sqlite3_column_int64(st, 2);
        x->final_rss = (uint64_t)sqlite3_column_int64(st, 3);
        x->peak_system = (uint64_t)sqlite3_column_int64(st, 4);
        x->final_live = (uint64_t)sqlite3_column_int64(st, 5);
        x->seconds = sqlite3_column_double(st, 6);
        x->completed = sqlite3_column_int(st, 7);
    }
    sqlite3_finalize(st);
    if (!rows)
        return;
    int64_t total = db_int(db, 0, "SELECT count(*) FROM runs WHERE trace IS %Q",
                           r->run.trace[0] ? r->run.trace : NULL);

    fprintf(f, "<section id=\"sweep\">\n<h2>Settings compared</h2>\n");
    fprintf(f, "<p class=\"note\">%lld runs of this trace in the database, ranked by final heap "
               "RSS, then peak heap RSS%s. Report another one with <code>--run N</code>.</p>\n",
            (long long)total, total > MAX_RUNS ? " (the best 64 shown)" : "");
    fprintf(f, "<table class=\"sweep\">\n<thead><tr><th>rank</th><th>run</th><th>settings</th>"
               "<th class=\"num\">peak heap RSS</th><th class=\"num\">final heap RSS</th>"
               "<th class=\"num\">peak system</th><th class=\"num\">final live</th>"
               "<th class=\"num\">replay time</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < n; i++) {
        const struct run_row *x = &rows[i];
        int best = x->final_rss == rows[0].final_rss && x->peak_rss == rows[0].peak_rss;
        fprintf(f, "<tr class=\"%s%s\"><td>%zu</td><td>%lld%s</td><td>", best ? "best" : "",
                x->id == r->run.id ? " current" : "", i + 1, (long long)x->id,
                x->id == r->run.id ? " (this report)" : "");
        html_esc(f, x->settings[0] ? x->settings : "as recorded");
        if (!x->completed)
            fprintf(f, " <span class=\"tag bad\">incomplete</span>");
        fprintf(f, "</td><td class=\"num\">%s</td><td class=\"num\">%s</td><td class=\"num\">%s"
                   "</td><td class=\"num\">%s</td><td class=\"num\">%.2f s</td></tr>\n",
                html_bytes(b1, sizeof b1, x->peak_rss, exact),
                html_bytes(b2, sizeof b2, x->final_rss, exact),
                html_bytes(b3, sizeof b3, x->peak_system, exact),
                html_bytes(b4, sizeof b4, x->final_live, exact), x->seconds);
    }
    fprintf(f, "</tbody>\n</table>\n");

    /* The bar chart: per run a bar of peak heap RSS with the final heap RSS inside it. */
    uint64_t ymax = 1;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].peak_rss > ymax)
            ymax = rows[i].peak_rss;
        if (rows[i].final_rss > ymax)
            ymax = rows[i].final_rss;
    }
    struct html_axis xa;
    html_axis_bytes(&xa, (double)ymax, 6);
    const double W = 1100, L = 300, R = 90, BAR = 22, GAP = 10, TOP = 10;
    double H = TOP + (double)n * (BAR + GAP) + 40, pw = W - L - R;
    fprintf(f, "<div class=\"legend\"><span class=\"key\"><i class=\"b-peak\"></i>peak heap RSS"
               "</span><span class=\"key\"><i class=\"b-final\"></i>final heap RSS</span></div>\n");
    fprintf(f, "<svg class=\"chart\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"heap RSS "
               "by settings\">\n",
            W, H);
    double y0 = TOP + (double)n * (BAR + GAP);
    for (int t = 0; t <= xa.ticks; t++) {
        double v = t * xa.step, x = L + v / xa.hi * pw;
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                   "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                x, TOP - 4, x, y0, x, y0 + 16, html_axis_bytes_label(&xa, b1, sizeof b1, v));
    }
    fprintf(f, "<text class=\"atitle\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">heap RSS"
               "</text>\n",
            L + pw / 2, y0 + 34);
    for (size_t i = 0; i < n; i++) {
        const struct run_row *x = &rows[i];
        double y = TOP + (double)i * (BAR + GAP);
        double wp = (double)x->peak_rss / xa.hi * pw, wf = (double)x->final_rss / xa.hi * pw;
        fprintf(f, "<g><title>run %lld, ", (long long)x->id);
        html_esc(f, x->settings[0] ? x->settings : "as recorded");
        fprintf(f, ": peak %s, final %s</title>", html_bytes(b1, sizeof b1, x->peak_rss, 0),
                html_bytes(b2, sizeof b2, x->final_rss, 0));
        fprintf(f, "<text class=\"barlabel%s\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
                x->id == r->run.id ? " current" : "", L - 8, y + BAR / 2 + 4);
        char label[64];
        snprintf(label, sizeof label, "%.60s", x->settings[0] ? x->settings : "as recorded");
        html_esc(f, label);
        fprintf(f, "</text><rect class=\"b-peak\" x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" "
                   "height=\"%.0f\"/><rect class=\"b-final\" x=\"%.1f\" y=\"%.1f\" "
                   "width=\"%.2f\" height=\"%.0f\"/>",
                L, y, wp, BAR, L, y + 5, wf, BAR - 10);
        fprintf(f, "<text class=\"barvalue\" x=\"%.1f\" y=\"%.1f\">final %s</text></g>\n",
                L + (wp > wf ? wp : wf) + 6, y + BAR / 2 + 4,
                html_bytes(b1, sizeof b1, x->final_rss, 0));
    }
    fprintf(f, "</svg>\n</section>\n");
    free(rows);
}
