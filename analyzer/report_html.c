/* report_html.c: `fragscope report DB --format html`: the report as one self-contained HTML page.
 *
 * The page has no external resource at all: the style sheet and a few lines of script are
 * inline, the charts are inline SVG, and a Content-Security-Policy forbids any fetch, so it reads
 * the same offline, attached to a bug, or years later. It shows, top to bottom: the run and its
 * headline figures, the timeline of live bytes / heap RSS / system bytes / top with the findings
 * marked (report_html_timeline.c), where the free memory sits over the run, the findings with
 * the what-if replays that prove each fix, the ledger of heap RSS at the end and at its peak,
 * the fragmentation measures, heap maps of the snapshots (report_html_heapmap.c), the per-arena
 * table, the free chunks by size and, for a sweep database, the settings compared
 * (report_html_sweep.c). Every string from the trace or the database is escaped (html_esc).
 *
 * The script moves the timeline's read-out (the values under the pointer, from a small JSON of
 * the buckets), records whether any script error happened and, when none did, sets
 * data-report-ok="1" on <body>: the browser test reads that from the DOM.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "../cli.h"
#include "db_util.h"
#include "report_html.h"
#include "report_html_int.h"

static const char page_css[] =
    ":root{--fg:#1d2330;--muted:#5b6475;--line:#d9dee7;--bg:#f6f7f9;--card:#fff;"
    "--accent:#2a5db0;--good:#2e7d32;--bad:#c62828}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'DejaVu Sans','Liberation Sans',Arial,sans-serif}\n"
    "main{max-width:1180px;margin:0 auto;padding:20px 24px 48px}\n"
    "header h1{font-size:26px;margin:8px 0 4px}\n"
    "header .sub{color:var(--muted);margin:0 0 2px;word-break:break-all}\n"
    "h2{font-size:20px;margin:0 0 10px}\n"
    "h3{font-size:16px;margin:14px 0 6px}\n"
    "section{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "padding:16px 18px;margin:16px 0}\n"
    "code{font-family:ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:13px;"
    "background:#eef1f6;padding:1px 4px;border-radius:3px}\n"
    ".note{color:var(--muted);font-size:13px;margin:6px 0}\n"
    ".kpis{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0 4px}\n"
    ".kpi{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px;"
    "min-width:150px;flex:1}\n"
    ".kpi b{display:block;font-size:22px}\n"
    ".kpi span{color:var(--muted);font-size:13px}\n"
    ".kpi.alert b{color:var(--bad)}\n"
    ".tag{display:inline-block;font-size:12px;padding:1px 7px;border-radius:10px;"
    "background:#e8edf5;color:var(--muted)}\n"
    ".tag.bad{background:#fde7e7;color:var(--bad)}.tag.good{background:#e5f3e6;color:var(--good)}\n"
    "table{border-collapse:collapse;width:100%;font-size:14px}\n"
    "th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;"
    "vertical-align:top}\n"
    "th{font-weight:600;color:var(--muted);font-size:13px}\n"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "tr.best td{background:#eef8ef}tr.current td:nth-child(2){font-weight:700}\n"
    ".legend{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:13px;margin:4px 0 6px}\n"
    ".key{display:inline-flex;align-items:center;gap:6px}\n"
    ".key small{color:var(--muted)}\n"
    ".key i{display:inline-block;width:22px;height:10px;border-radius:2px}\n"
    "i.s-rss{background:#e45756}i.s-system{background:#79706e}i.s-live{background:#4c78a8}"
    "i.s-top{background:#b279a2}i.b-peak{background:#c5d3ea}i.b-final{background:#2a5db0}\n"
    ".flagkey{display:inline-block;width:18px;height:18px;border-radius:9px;background:#1d2330;"
    "color:#fff;font-size:11px;text-align:center;line-height:18px}\n"
    ".snapkey{display:inline-block;width:0;height:0;border:6px solid transparent;"
    "border-bottom:9px solid #555;margin-top:-6px}\n"
    ".markkey{display:inline-block;width:14px;height:14px;border:2px solid #000;"
    "background:#ffe600}\n"
    "svg{display:block;width:100%;height:auto}\n"
    "svg text{font-size:12px;fill:#39404d}\n"
    "svg .grid{stroke:#e6e9ef;stroke-width:1}\n"
    "rect.b-peak{fill:#c5d3ea}rect.b-final{fill:#2a5db0}.barlabel.current{font-weight:700}\n"
    "svg .frame,svg .tick{stroke:#8a93a3;stroke-width:1}\n"
    "svg .atitle{font-size:13px;fill:#5b6475}\n"
    "path.s-rss{fill:rgba(228,87,86,.25);stroke:#e45756;stroke-width:2.5;stroke-linejoin:round}\n"
    "path.line{fill:none}\n"
    "path.s-system{fill:rgba(121,112,110,.1);stroke:#79706e;stroke-width:1.5;"
    "stroke-dasharray:7 5}\n"
    "path.s-live{fill:rgba(76,120,168,.28);stroke:#4c78a8;stroke-width:1.5;stroke-linejoin:round}\n"
    "path.s-top{fill:rgba(178,121,162,.25);stroke:#b279a2;stroke-width:1.5}\n"
    ".stack path{stroke:#fff;stroke-width:.4}\n"
    ".endlabel{font-size:12px;font-weight:600}.l-rss{fill:#c23b3a}.l-system{fill:#79706e}"
    ".l-live{fill:#3b6595}.l-top{fill:#8f5a83}\n"
    ".answer{background:#fff8e6;border:1px solid #f0d9a0;border-radius:8px;padding:12px 16px;"
    "margin:14px 0;font-size:16px}\n"
    ".answer p{margin:4px 0}.answer .fixline{color:var(--good);font-weight:600}\n"
    ".flag line{stroke:#1d2330;stroke-width:1.2;stroke-dasharray:3 3}\n"
    ".flag circle{fill:#1d2330}.flag text{fill:#fff;font-size:11px;font-weight:700}\n"
    ".flag:hover circle{fill:var(--accent)}\n"
    ".snapmark path{fill:#555}\n"
    ".cursor line{stroke:#1d2330;stroke-width:1}.cursor text{font-size:12px;font-weight:600;"
    "paint-order:stroke;stroke:#fff;stroke-width:4px}\n"
    ".pk-rss circle{fill:#e45756;stroke:#fff;stroke-width:1.5}"
    ".pk-rss text{font-size:12px;font-weight:600;fill:#c23b3a;paint-order:stroke;stroke:#fff;"
    "stroke-width:3px}"
    ".pk-live circle{fill:#4c78a8;stroke:#fff;stroke-width:1.5}\n"
    ".map .rowbg{fill:#f1f3f6}.map .rowlabel{font-size:11px;fill:#6b7383}\n"
    ".map .seghead{font-size:12px;font-weight:600;fill:#39404d}\n"
    ".map rect:hover{stroke:#000;stroke-width:1}\n"
    ".mark rect{fill:#ffe600;fill-opacity:.35;stroke:#000;stroke-width:2}\n"
    ".mark text{font-size:12px;font-weight:700;fill:#000;paint-order:stroke;stroke:#fff;"
    "stroke-width:3px}\n"
    "figure.heapmap{margin:12px 0 18px}\n"
    ".lbar{display:flex;height:18px;border-radius:3px;overflow:hidden;background:#eef1f6;"
    "margin:6px 0 8px}\n"
    ".lbar span{display:block;height:100%}\n"
    ".swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}\n"
    ".cols{display:grid;grid-template-columns:1fr 1fr;gap:24px}\n"
    "@media (max-width:900px){.cols{grid-template-columns:1fr}}\n"
    ".finding{border:1px solid var(--line);border-left:4px solid var(--accent);border-radius:6px;"
    "padding:10px 14px;margin:12px 0;background:#fbfcfe}\n"
    ".finding h3{margin:2px 0 6px;display:flex;gap:10px;align-items:baseline}\n"
    ".finding .n{flex:none;display:inline-block;width:24px;height:24px;border-radius:12px;"
    "background:#1d2330;color:#fff;text-align:center;font-size:13px;line-height:24px}\n"
    ".finding dl{display:grid;grid-template-columns:110px 1fr;gap:4px 12px;margin:8px 0}\n"
    ".finding dt{color:var(--muted);font-size:13px}.finding dd{margin:0}\n"
    ".finding dd.fix{font-weight:600}\n"
    ".wbar{position:relative;height:12px;width:160px;background:#eef1f6;border-radius:2px}\n"
    ".wbar span{position:absolute;left:0;top:0;height:12px;border-radius:2px}\n"
    ".wbar .before{background:#c5d3ea}.wbar .after{background:#2a5db0;top:3px;height:6px}\n"
    "tr.helps td.verdict,td.down{color:var(--good);font-weight:600}td.up{color:var(--bad)}\n"
    "tr.nohelp td{color:var(--muted)}\n"
    "footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}\n";

static const char head_script[] =
    "window.fsErrors=[];window.addEventListener('error',function(e){"
    "window.fsErrors.push(String(e.message||e));});";

/* The timeline's read-out: the bucket under the pointer, its steps and values. */
static const char tail_script[] =
    "(function(){var d=document.getElementById('tl-data'),svg=document.getElementById('tl-svg'),"
    "c=document.getElementById('tl-cursor');if(!d||!svg||!c)return;"
    "var D=JSON.parse(d.textContent),ln=c.querySelector('line'),tx=c.querySelector('text');"
    "function fmt(v){var u=['B','KiB','MiB','GiB','TiB'],i=0;while(v>=1024&&i<4){v/=1024;i++;}"
    "return (i?v.toFixed(v<10?2:v<100?1:0):String(v))+' '+u[i];}"
    "function show(e){var p=svg.createSVGPoint();p.x=e.clientX;p.y=e.clientY;"
    "var q=p.matrixTransform(svg.getScreenCTM().inverse()),n=D.s.length,"
    "i=Math.floor((q.x-D.x0)/(D.x1-D.x0)*n);"
    "if(i<0||i>=n){c.setAttribute('visibility','hidden');return;}"
    "var b=D.s[i],x=D.x0+((b[0]+b[1])/2-D.first+0.5)/D.span*(D.x1-D.x0),"
    "right=x>(D.x0+D.x1)/2;ln.setAttribute('x1',x);ln.setAttribute('x2',x);"
    "tx.setAttribute('x',right?x-6:x+6);tx.setAttribute('text-anchor',right?'end':'start');"
    "tx.textContent=(b[0]==b[1]?'step '+b[0]:'steps '+b[0]+'-'+b[1])+': heap RSS '+fmt(b[2])+"
    "', live '+fmt(b[3])+', system '+fmt(b[4])+', top '+fmt(b[5]);"
    "c.setAttribute('visibility','visible');}"
    "svg.addEventListener('mousemove',show);"
    "svg.addEventListener('mouseleave',function(){c.setAttribute('visibility','hidden');});})();"
    "(function(){var n=document.querySelectorAll('svg').length;"
    "document.body.setAttribute('data-charts',String(n));"
    "if(!window.fsErrors.length)document.body.setAttribute('data-report-ok','1');})();";

struct pen {
    FILE *f;
    int exact;
};

static const char *B(const struct pen *p, char *buf, uint64_t v)
{
    return html_bytes(buf, 32, v, p->exact);
}

static double pct(uint64_t v, uint64_t total)
{
    return total ? 100.0 * (double)v / (double)total : 0;
}

static void page_head(const struct pen *p, const struct analyzer_report *r)
{
    FILE *f = p->f;
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
               "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<title>fragscope report: run %" PRId64 " of ",
            r->run.id);
    html_esc(f, r->run.trace[0] ? r->run.trace : "synthetic steps");
    fprintf(f, "</title>\n<style>\n%s", page_css);
    static const char *states[] = {"in_use", "internal", "tcache", "fastbin", "unsorted",
                                   "small",  "large",    "top",    "mmapped", "other"};
    for (size_t i = 0; i < sizeof states / sizeof *states; i++)
        fprintf(f, ".st-%s{fill:%s}", states[i], html_state_color(states[i]));
    fprintf(f, "\n</style>\n<script>%s</script>\n</head>\n<body>\n<main>\n", head_script);
}

static void kpi(FILE *f, const char *value, const char *label, int alert)
{
    fprintf(f, "<div class=\"kpi%s\"><b>%s</b><span>%s</span></div>\n", alert ? " alert" : "",
            value, label);
}

static void header(const struct pen *p, const struct analyzer_report *r)
{
    FILE *f = p->f;
    const struct analyzer_run_info *ri = &r->run;
    const struct analyzer_measures *m = &r->measures;
    char b1[32], b2[64];
    fprintf(f, "<header>\n<h1>fragscope report: run %" PRId64 "</h1>\n<p class=\"sub\">trace "
               "<code>",
            ri->id);
    html_esc(f, ri->trace[0] ? ri->trace : "(synthetic steps)");
    fprintf(f, "</code> &middot; settings <code>");
    html_esc(f, ri->settings[0] ? ri->settings : "as recorded");
    fprintf(f, "</code></p>\n<p class=\"sub\">%" PRIu64 " events, %" PRIu64 " steps stored%s, "
               "%" PRIu64 " arena%s, %" PRIu64 " thread%s, replayed in %.2f s by fragscope ",
            ri->events, ri->steps_stored, ri->every > 1 ? " (sampled)" : "", ri->arenas,
            ri->arenas == 1 ? "" : "s", ri->threads, ri->threads == 1 ? "" : "s", ri->seconds);
    html_esc(f, ri->tool_version);
    fprintf(f, " on ");
    html_esc(f, ri->started);
    fprintf(f, " &middot; %s</p>\n</header>\n",
            ri->completed ? "<span class=\"tag good\">complete</span>"
                          : "<span class=\"tag bad\">INCOMPLETE: interrupted or failed</span>");
    fprintf(f, "<div class=\"kpis\">\n");
    kpi(f, B(p, b1, m->peak_rss), "peak heap RSS", 0);
    kpi(f, B(p, b1, m->final_rss), "heap RSS at the end", 0);
    kpi(f, B(p, b1, m->final_live), "live at the end", 0);
    snprintf(b2, sizeof b2, "%.1f%%", 100 * m->retention);
    kpi(f, b2, "of final heap RSS not live", m->retention > 0.5 && m->final_rss > (1u << 20));
    if (m->trim_known)
        kpi(f, B(p, b1, m->trim_gain), "malloc_trim(0) would give back", 0);
    snprintf(b2, sizeof b2, "%zu", r->finding_count);
    kpi(f, b2, r->finding_count == 1 ? "finding" : "findings", r->finding_count > 0);
    fprintf(f, "</div>\n");
}

/* The answer first, as the text report gives it: what is held, the cause, the verified fix. */
static void answer(const struct pen *p, const struct analyzer_report *r)
{
    FILE *f = p->f;
    const struct analyzer_measures *m = &r->measures;
    char b1[32], b2[32], b3[32];
    fprintf(f, "<div class=\"answer\">\n<p><b>In short:</b> heap RSS is %s at the end for %s "
               "live (peak %s at step %" PRIu64 ").</p>\n",
            B(p, b1, m->final_rss), B(p, b2, m->final_live), B(p, b3, m->peak_rss),
            m->peak_rss_step);
    if (r->finding_count) {
        const struct analyzer_finding *top = &r->findings[0];
        const struct analyzer_whatif *best = NULL;
        /* A setting before a change to the program, as the findings are ranked. */
        for (int pass = 0; pass < 2 && !best; pass++)
            for (unsigned k = 0; k < top->whatif_count; k++) {
                const struct analyzer_whatif *w = &top->whatif[k];
                int setting = !strstr(w->setting, "malloc_trim") && !strstr(w->setting, "freed");
                if (w->helps && setting == !pass && (!best || w->after < best->after))
                    best = w;
            }
        fprintf(f, "<p><b>Cause</b> (<a href=\"#finding-1\">finding 1</a>): ");
        html_esc(f, top->cause);
        fprintf(f, ".</p>\n");
        if (best) {
            fprintf(f, "<p class=\"fixline\"><b>Fix:</b> ");
            html_esc(f, top->fix);
            fprintf(f, " (heap RSS %s &rarr; %s, verified by replay).</p>\n",
                    B(p, b1, best->before), B(p, b2, best->after));
        }
    } else {
        fprintf(f, "<p>No finding: nothing in this run holds memory the allocator could give "
                   "back.</p>\n");
    }
    fprintf(f, "</div>\n");
}

static void whatif_row(const struct pen *p, const struct analyzer_report *r,
                       const struct analyzer_whatif *w)
{
    FILE *f = p->f;
    char b1[32], b2[32], b3[32], b4[32];
    fprintf(f, "<tr class=\"%s\"><td><code>", w->helps ? "helps" : "nohelp");
    html_esc(f, w->setting);
    fprintf(f, "</code></td><td>");
    if (w->step && w->step != r->run.final_step)
        fprintf(f, "step %" PRIu64, w->step);
    else
        fprintf(f, "the end");
    fprintf(f, "</td><td class=\"num\">%s &rarr; %s</td>", B(p, b1, w->before), B(p, b2, w->after));
    if (w->after < w->before)
        fprintf(f, "<td class=\"num down\">&minus;%s (&minus;%.1f%%)</td>",
                B(p, b3, w->before - w->after), pct(w->before - w->after, w->before));
    else if (w->after > w->before)
        fprintf(f, "<td class=\"num up\">+%s</td>", B(p, b3, w->after - w->before));
    else
        fprintf(f, "<td class=\"num\">no change</td>");
    fprintf(f, "<td class=\"num\">%s &rarr; %s</td>", B(p, b3, w->system_before),
            B(p, b4, w->system_after));
    if (w->peak_before)
        fprintf(f, "<td class=\"num\">%s &rarr; %s</td>", B(p, b1, w->peak_before),
                B(p, b2, w->peak_after));
    else
        fprintf(f, "<td class=\"num\">-</td>");
    fprintf(f, "<td class=\"verdict\">%s</td></tr>\n",
            w->helps ? "helps, verified by replay" : "does not help");
}

static void findings(const struct pen *p, const struct analyzer_report *r)
{
    FILE *f = p->f;
    char b1[32];
    fprintf(f, "<section id=\"findings\">\n<h2>Findings</h2>\n");
    if (!r->finding_count)
        fprintf(f, "<p>No finding: nothing in this run holds memory the allocator could give "
                   "back.</p>\n");
    for (size_t i = 0; i < r->finding_count; i++) {
        const struct analyzer_finding *x = &r->findings[i];
        fprintf(f, "<article class=\"finding\" id=\"finding-%zu\">\n<h3><span class=\"n\">%zu"
                   "</span><span>",
                i + 1, i + 1);
        html_esc(f, x->cause);
        fprintf(f, "</span></h3>\n<p class=\"note\"><code>");
        html_esc(f, x->kind);
        fprintf(f, "</code> &middot; %s &middot; at step %" PRIu64, B(p, b1, x->bytes), x->step);
        if (x->arena >= 0)
            fprintf(f, " &middot; arena %d", x->arena);
        fprintf(f, "</p>\n<dl>\n<dt>evidence</dt><dd>");
        html_esc(f, x->evidence);
        fprintf(f, "</dd>\n");
        if (x->site[0]) {
            fprintf(f, "<dt>call site</dt><dd><code>");
            html_esc(f, x->site);
            fprintf(f, "</code></dd>\n");
        }
        if (x->chunk_address)
            fprintf(f, "<dt>chunk</dt><dd><code>0x%" PRIx64 "</code>, %s, allocated at step %"
                       PRIu64 "</dd>\n",
                    x->chunk_address, B(p, b1, x->chunk_size), x->alloc_step);
        fprintf(f, "<dt>fix</dt><dd class=\"fix\">");
        html_esc(f, x->fix);
        fprintf(f, "</dd>\n</dl>\n");
        if (x->whatif_count) {
            fprintf(f, "<table class=\"whatif\">\n<thead><tr><th>what if</th><th>measured at"
                       "</th><th class=\"num\">heap RSS</th><th class=\"num\">change</th>"
                       "<th class=\"num\">heap size</th><th class=\"num\">peak heap RSS</th>"
                       "<th>verdict</th></tr></thead>\n<tbody>\n");
            for (unsigned k = 0; k < x->whatif_count; k++)
                whatif_row(p, r, &x->whatif[k]);
            fprintf(f, "</tbody>\n</table>\n");
        }
        fprintf(f, "</article>\n");
    }
    fprintf(f, "</section>\n");
}

static void ledger(const struct pen *p, const char *title, const struct analyzer_ledger *l)
{
    FILE *f = p->f;
    char b1[32];
    const struct {
        const char *name, *state;
        uint64_t v;
    } lines[] = {
        {"held by the program", "held", l->held},   {"allocator overhead", "overhead", l->overhead},
        {"tcache", "tcache", l->tcache},            {"fastbins", "fastbin", l->fastbins},
        {"unsorted bin", "unsorted", l->unsorted},  {"small bins", "small", l->small},
        {"large bins", "large", l->large},          {"top", "top", l->top},
        {"mmapped chunks", "mmapped", l->mmapped},
    };
    const size_t n = sizeof lines / sizeof *lines;
    fprintf(f, "<div>\n<h3>%s (step %" PRIu64 ")</h3>\n", title, l->step);
    if (!l->exact)
        fprintf(f, "<p class=\"note\">estimated from the counters: no chunk snapshot</p>\n");
    fprintf(f, "<div class=\"lbar\">");
    for (size_t i = 0; i < n; i++)
        if (lines[i].v)
            fprintf(f, "<span style=\"width:%.3f%%;background:%s\" title=\"%s: %s\"></span>",
                    pct(lines[i].v, l->rss), html_state_color(lines[i].state), lines[i].name,
                    B(p, b1, lines[i].v));
    fprintf(f, "</div>\n<table>\n<tbody>\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "<tr><td><span class=\"swatch\" style=\"background:%s\"></span>%s</td>"
                   "<td class=\"num\">%s</td><td class=\"num\">%.1f%%</td></tr>\n",
                html_state_color(lines[i].state), lines[i].name, B(p, b1, lines[i].v),
                pct(lines[i].v, l->rss));
    fprintf(f, "<tr><th>= heap RSS</th><th class=\"num\">%s</th><th></th></tr>\n",
            B(p, b1, l->rss));
    fprintf(f, "<tr><td>mapped but not resident</td><td class=\"num\">%s</td><td></td></tr>\n",
            B(p, b1, l->not_resident));
    fprintf(f, "<tr><td>released since the peak</td><td class=\"num\">%s</td><td></td></tr>\n",
            B(p, b1, l->released));
    fprintf(f, "</tbody>\n</table>\n</div>\n");
}

static void ledgers(const struct pen *p, const struct analyzer_report *r)
{
    FILE *f = p->f;
    fprintf(f, "<section id=\"ledger\">\n<h2>Where heap RSS is</h2>\n<p class=\"note\">Every "
               "resident byte of the heap, by who holds it; the lines add up to heap RSS.</p>\n"
               "<div class=\"cols\">\n");
    if (r->at_end.valid)
        ledger(p, "At the end", &r->at_end);
    if (r->at_rss_peak.valid && r->at_rss_peak.step != r->at_end.step)
        ledger(p, "At the heap RSS peak", &r->at_rss_peak);
    if (!r->at_end.valid && !r->at_rss_peak.valid)
        fprintf(f, "<p class=\"note\">No ledger: the run stored no counters.</p>\n");
    fprintf(f, "</div>\n</section>\n");
}

static void measures(const struct pen *p, const struct analyzer_report *r)
{
    FILE *f = p->f;
    const struct analyzer_measures *m = &r->measures;
    char b1[32], b2[32];
    fprintf(f, "<section id=\"measures\">\n<h2>Fragmentation</h2>\n<table>\n<tbody>\n");
    fprintf(f, "<tr><td>at the live peak (step %" PRIu64 ")</td><td class=\"num\">%s live, %s "
               "heap RSS</td><td class=\"num\">(RSS &minus; live) / live = %.3f</td></tr>\n",
            m->peak_live_step, B(p, b1, m->peak_live), B(p, b2, m->rss_at_live_peak),
            m->frag_at_live_peak);
    fprintf(f, "<tr><td>at the heap RSS peak (step %" PRIu64 ")</td><td class=\"num\">%s live, "
               "%s heap RSS</td><td class=\"num\">(RSS &minus; live) / live = %.3f</td></tr>\n",
            m->peak_rss_step, B(p, b1, m->live_at_rss_peak), B(p, b2, m->peak_rss),
            m->frag_at_rss_peak);
    fprintf(f, "<tr><td>max heap RSS / max live (Johnstone-Wilson)</td><td class=\"num\">%s / "
               "%s</td><td class=\"num\">%.3f</td></tr>\n",
            B(p, b1, m->peak_rss), B(p, b2, m->peak_live), m->jw_ratio);
    fprintf(f, "<tr><td>retention at the end</td><td class=\"num\">%s heap RSS for %s live</td>"
               "<td class=\"num\">%.1f%% not live</td></tr>\n",
            B(p, b1, m->final_rss), B(p, b2, m->final_live), 100 * m->retention);
    if (m->trim_known) {
        fprintf(f, "<tr><td>malloc_trim(0) now would give back</td><td class=\"num\">%s</td>"
                   "<td></td></tr>\n",
                B(p, b1, m->trim_gain));
        fprintf(f, "<tr><td>trimming the top now would give back</td><td class=\"num\">%s</td>"
                   "<td></td></tr>\n",
                B(p, b1, m->top_trim_gain));
    }
    fprintf(f, "</tbody>\n</table>\n</section>\n");
}

/* Per arena at the end: from the end snapshot when there is one, else from arena_steps. */
static void arenas(const struct pen *p, sqlite3 *db, const struct analyzer_report *r)
{
    FILE *f = p->f;
    char err[256], b1[32];
    static const char *cols[] = {"in_use", "internal", "tcache", "fastbin", "unsorted", "small",
                                 "large",  "top",      "mmapped"};
    static const char *names[] = {"in use", "internal", "tcache", "fastbins", "unsorted",
                                  "small", "large", "top", "mmapped"};
    const int nc = (int)(sizeof cols / sizeof *cols);
    long long run = (long long)r->run.id;
    int have_snap = db_int(db, 0, "SELECT count(*) FROM chunks WHERE run = %lld AND snap = 2",
                           run) > 0;
    fprintf(f, "<section id=\"arenas\">\n<h2>Arenas at the end</h2>\n");
    if (have_snap) {
        fprintf(f, "<p class=\"note\">Resident bytes by chunk state and arena, from the chunk "
                   "snapshot at the end.</p>\n<table>\n<thead><tr><th>arena</th><th "
                   "class=\"num\">chunks</th>");
        for (int c = 0; c < nc; c++)
            fprintf(f, "<th class=\"num\">%s</th>", names[c]);
        fprintf(f, "<th class=\"num\">heap RSS</th></tr></thead>\n<tbody>\n");
        sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                      "SELECT arena, state, count(*), sum(resident) FROM chunks "
                                      "WHERE run = %lld AND snap = 2 GROUP BY arena, state "
                                      "ORDER BY arena",
                                      run);
        int arena = -1, rc = st ? sqlite3_step(st) : SQLITE_DONE;
        while (rc == SQLITE_ROW) {
            arena = sqlite3_column_int(st, 0);
            uint64_t v[9] = {0}, chunks = 0, total = 0;
            while (rc == SQLITE_ROW && sqlite3_column_int(st, 0) == arena) {
                const char *s = (const char *)sqlite3_column_text(st, 1);
                uint64_t res = (uint64_t)sqlite3_column_int64(st, 3);
                chunks += (uint64_t)sqlite3_column_int64(st, 2);
                total += res;
                for (int c = 0; c < nc; c++)
                    if (s && !strcmp(s, cols[c]))
                        v[c] += res;
                rc = sqlite3_step(st);
            }
            fprintf(f, "<tr><td>%d</td><td class=\"num\">%" PRIu64 "</td>", arena, chunks);
            for (int c = 0; c < nc; c++)
                fprintf(f, "<td class=\"num\">%s</td>", B(p, b1, v[c]));
            fprintf(f, "<td class=\"num\"><b>%s</b></td></tr>\n", B(p, b1, total));
        }
        sqlite3_finalize(st);
        fprintf(f, "</tbody>\n</table>\n");
    } else {
        sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                      "SELECT arena, system, in_use, rss, top, tcache_b, fast_b, "
                                      "unsorted_b, small_b, large_b FROM arena_steps a WHERE "
                                      "run = %lld AND step = (SELECT max(step) FROM arena_steps "
                                      "WHERE run = a.run AND arena = a.arena) ORDER BY arena",
                                      run);
        int rows = 0;
        while (st && sqlite3_step(st) == SQLITE_ROW) {
            if (!rows++)
                fprintf(f, "<table>\n<thead><tr><th>arena</th><th class=\"num\">system</th>"
                           "<th class=\"num\">in use</th><th class=\"num\">heap RSS</th>"
                           "<th class=\"num\">top</th><th class=\"num\">tcache</th><th "
                           "class=\"num\">fastbins</th><th class=\"num\">unsorted</th><th "
                           "class=\"num\">small</th><th class=\"num\">large</th></tr></thead>\n"
                           "<tbody>\n");
            fprintf(f, "<tr><td>%d</td>", sqlite3_column_int(st, 0));
            for (int c = 1; c < 10; c++)
                fprintf(f, "<td class=\"num\">%s</td>",
                        B(p, b1, (uint64_t)sqlite3_column_int64(st, c)));
            fprintf(f, "</tr>\n");
        }
        sqlite3_finalize(st);
        if (rows)
            fprintf(f, "</tbody>\n</table>\n");
        else
            fprintf(f, "<p class=\"note\">One arena, and no chunk snapshot: see the ledger.</p>\n");
    }
    fprintf(f, "</section>\n");
}

static void histogram(const struct pen *p, const struct analyzer_report *r)
{
    FILE *f = p->f;
    char b1[32], b2[32], b3[32];
    if (!r->hist_count)
        return;
    uint64_t mx = 1;
    for (size_t i = 0; i < r->hist_count; i++)
        if (r->hist[i].bytes > mx)
            mx = r->hist[i].bytes;
    fprintf(f, "<section id=\"histogram\">\n<h2>Free chunks by size at the end</h2>\n<table>\n"
               "<thead><tr><th>arena</th><th>chunk size</th><th class=\"num\">chunks</th><th "
               "class=\"num\">bytes</th><th></th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < r->hist_count; i++) {
        const struct analyzer_hist_bucket *h = &r->hist[i];
        fprintf(f, "<tr><td>%d</td><td>%s .. %s</td><td class=\"num\">%" PRIu64 "</td><td "
                   "class=\"num\">%s</td><td><div class=\"wbar\" style=\"width:300px\"><span "
                   "class=\"after\" style=\"width:%.2f%%\"></span></div></td></tr>\n",
                h->arena, analyzer_bytes(b1, 32, h->lo, 0), analyzer_bytes(b2, 32, h->hi - 1, 0),
                h->count, B(p, b3, h->bytes), pct(h->bytes, mx));
    }
    fprintf(f, "</tbody>\n</table>\n</section>\n");
}

int analyzer_report_html(FILE *f, struct sqlite3 *db, const struct analyzer_report *r,
                         const struct analyzer_render_options *o, char *err, size_t errlen)
{
    struct pen p = {f, o ? o->exact_bytes : 0};
    struct html_series s;
    if (html_series_load(db, r->run.id, HTML_SERIES_BUCKETS, &s, err, errlen))
        return -1;
    page_head(&p, r);
    header(&p, r);
    answer(&p, r);
    html_sweep(f, db, r, p.exact);
    html_timeline(f, db, r, &s);
    findings(&p, r);
    html_free_stack(f, r, &s);
    ledgers(&p, r);
    html_heap_maps(f, db, r);
    measures(&p, r);
    arenas(&p, db, r);
    histogram(&p, r);
    fprintf(f, "<footer>fragscope %s &middot; self-contained report: no network, no external "
               "file</footer>\n</main>\n<script>%s</script>\n</body>\n</html>\n",
            FRAGSCOPE_VERSION, tail_script);
    html_series_free(&s);
    if (ferror(f)) {
        snprintf(err, errlen, "write error");
        return -1;
    }
    return 0;
}
