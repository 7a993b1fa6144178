/* report_text.c: the report as text for a terminal or a file: the run, where heap RSS is (a
 * ledger whose lines add up to it), the fragmentation measures, the free-chunk histogram and the
 * findings as cause -> evidence -> fix with the what-if replays that prove each fix. Colour is
 * the caller's decision (only on a terminal, never with a non-empty NO_COLOR). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "analyzer.h"

struct pen {
    FILE *f;
    const struct analyzer_render_options *o;
};

static const char *bold(const struct pen *p) { return p->o->color ? "\033[1m" : ""; }
static const char *green(const struct pen *p) { return p->o->color ? "\033[32m" : ""; }
static const char *red(const struct pen *p) { return p->o->color ? "\033[31m" : ""; }
static const char *plain(const struct pen *p) { return p->o->color ? "\033[0m" : ""; }

/* Prints a formatted line (its own leading indentation included), broken at spaces so that no
 * line passes o->width columns (a word longer than that stays whole); continuation lines start
 * with `indent`. Colour sequences take no column. */
__attribute__((format(printf, 3, 4))) static void wrapped(const struct pen *p, const char *indent,
                                                          const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    int width = p->o->width;
    if (width <= 0) {
        fprintf(p->f, "%s\n", text);
        return;
    }
    int col = 0, ind = (int)strlen(indent);
    const char *s = text;
    /* The leading indentation belongs to the first line. */
    while (*s == ' ') {
        fputc(' ', p->f);
        col++;
        s++;
    }
    int line_start = 1;
    while (*s) {
        const char *w = s;
        int vis = 0;
        while (*s && *s != ' ') {
            if (*s == '\033') {
                while (*s && *s != 'm')
                    s++;
                if (*s)
                    s++;
                continue;
            }
            vis++;
            s++;
        }
        if (!line_start && col + 1 + vis > width) {
            fprintf(p->f, "\n%s", indent);
            col = ind;
        } else if (!line_start) {
            fputc(' ', p->f);
            col++;
        }
        fwrite(w, 1, (size_t)(s - w), p->f);
        col += vis;
        line_start = 0;
        while (*s == ' ')
            s++;
    }
    fputc('\n', p->f);
}

static const char *B(const struct pen *p, char *buf, uint64_t v)
{
    return analyzer_bytes(buf, 32, v, p->o->exact_bytes);
}

static void ledger_line(const struct pen *p, const char *name, uint64_t v, uint64_t total)
{
    char b[32];
    double pct = total ? 100.0 * (double)v / (double)total : 0;
    fprintf(p->f, "    %-28s %14s  %5.1f%%\n", name, B(p, b, v), pct);
}

static void ledger(const struct pen *p, const char *title, const struct analyzer_ledger *l)
{
    char b[32];
    if (!l->valid)
        return;
    fprintf(p->f, "%s%s (step %" PRIu64 ")%s%s\n", bold(p), title, l->step, plain(p),
            l->exact ? "" : "  [estimated from counters: no chunk snapshot]");
    ledger_line(p, "held by the program", l->held, l->rss);
    ledger_line(p, "allocator overhead", l->overhead, l->rss);
    ledger_line(p, "tcache", l->tcache, l->rss);
    ledger_line(p, "fastbins", l->fastbins, l->rss);
    ledger_line(p, "unsorted bin", l->unsorted, l->rss);
    ledger_line(p, "small bins", l->small, l->rss);
    ledger_line(p, "large bins", l->large, l->rss);
    ledger_line(p, "top", l->top, l->rss);
    ledger_line(p, "mmapped chunks", l->mmapped, l->rss);
    fprintf(p->f, "    %-28s %14s\n", "= heap RSS", B(p, b, l->rss));
    fprintf(p->f, "    %-28s %14s\n", "mapped but not resident", B(p, b, l->not_resident));
    fprintf(p->f, "    %-28s %14s\n", "released since the peak", B(p, b, l->released));
    fprintf(p->f, "\n");
}

void analyzer_report_text(FILE *f, const struct analyzer_report *r,
                          const struct analyzer_render_options *o)
{
    struct pen p = {f, o};
    char b1[32], b2[32], b3[32];
    const struct analyzer_run_info *ri = &r->run;
    fprintf(f, "%sfragscope report: run %" PRId64 "%s of %s\n", bold(&p), ri->id, plain(&p),
            ri->trace[0] ? ri->trace : "(synthetic steps)");
    wrapped(&p, "    ", "  settings: %s", ri->settings[0] ? ri->settings : "as recorded");
    wrapped(&p, "    ",
            "  %" PRIu64 " events, %" PRIu64 " steps stored%s, %" PRIu64 " arena%s, %" PRIu64
            " thread%s, %.2f s, fragscope %s, %s%s%s\n",
            ri->events, ri->steps_stored, ri->every > 1 ? " (sampled)" : "", ri->arenas,
            ri->arenas == 1 ? "" : "s", ri->threads, ri->threads == 1 ? "" : "s", ri->seconds,
            ri->tool_version, ri->completed ? "" : red(&p),
            ri->completed ? "complete" : "INCOMPLETE (interrupted or failed)", plain(&p));

    /* The answer first: what is held, and the best verified fix. */
    const struct analyzer_measures *mm = &r->measures;
    wrapped(&p, "    ", "%sIn short:%s heap RSS %s at the end for %s live (peak %s at step %" PRIu64
            ").",
            bold(&p), plain(&p), B(&p, b1, mm->final_rss), B(&p, b2, mm->final_live),
            B(&p, b3, mm->peak_rss), mm->peak_rss_step);
    if (r->finding_count) {
        const struct analyzer_finding *top = &r->findings[0];
        const struct analyzer_whatif *best = NULL;
        /* As the fix text ranks them: a setting before a change to the program. */
        for (int pass = 0; pass < 2 && !best; pass++)
            for (unsigned k = 0; k < top->whatif_count; k++) {
                const struct analyzer_whatif *w = &top->whatif[k];
                int setting = !strstr(w->setting, "malloc_trim") && !strstr(w->setting, "freed");
                if (w->helps && setting == !pass && (!best || w->after < best->after))
                    best = w;
            }
        wrapped(&p, "    ", "  Cause: %s.", top->cause);
        if (best)
            wrapped(&p, "    ", "  Fix: %s%s%s: heap RSS %s -> %s, verified by replay (finding 1 "
                    "below).",
                    green(&p), best->setting, plain(&p), B(&p, b1, best->before),
                    B(&p, b2, best->after));
    }
    fprintf(f, "\n");

    ledger(&p, "Heap RSS at the end", &r->at_end);
    if (r->at_rss_peak.valid && r->at_rss_peak.step != r->at_end.step)
        ledger(&p, "Heap RSS at its peak", &r->at_rss_peak);

    const struct analyzer_measures *m = &r->measures;
    fprintf(f, "%sFragmentation%s\n", bold(&p), plain(&p));
    wrapped(&p, "        ",
            "    at the live peak (step %" PRIu64 "): %s live, %s heap RSS: (held - live) / live "
            "= %.2f",
            m->peak_live_step, B(&p, b1, m->peak_live), B(&p, b2, m->rss_at_live_peak),
            m->frag_at_live_peak);
    wrapped(&p, "        ",
            "    at the RSS peak (step %" PRIu64 "): %s live, %s heap RSS: (held - live) / live "
            "= %.2f",
            m->peak_rss_step, B(&p, b1, m->live_at_rss_peak), B(&p, b2, m->peak_rss),
            m->frag_at_rss_peak);
    wrapped(&p, "        ", "    max held / max live (Johnstone-Wilson): %s / %s = %.2f",
            B(&p, b1, m->peak_rss), B(&p, b2, m->peak_live), m->jw_ratio);
    wrapped(&p, "        ",
            "    retention at the end: %s held for %s live (%.1f%% of heap RSS not live)",
            B(&p, b1, m->final_rss), B(&p, b2, m->final_live), 100 * m->retention);
    if (m->trim_known) {
        fprintf(f, "    malloc_trim(0) now would give back: %s\n", B(&p, b3, m->trim_gain));
        fprintf(f, "    trimming the top now would give back: %s\n", B(&p, b3, m->top_trim_gain));
    }
    fprintf(f, "\n");

    if (r->hist_count) {
        fprintf(f, "%sFree chunks by size at the end%s\n", bold(&p), plain(&p));
        int arena = -1;
        for (size_t i = 0; i < r->hist_count; i++) {
            const struct analyzer_hist_bucket *h = &r->hist[i];
            if (h->arena != arena) {
                arena = h->arena;
                fprintf(f, "  arena %d\n", arena);
            }
            char range[64];
            snprintf(range, sizeof range, "%s .. %s", analyzer_bytes(b1, 32, h->lo, 0),
                     analyzer_bytes(b2, 32, h->hi - 1, 0));
            fprintf(f, "    %-24s %8" PRIu64 " chunks %14s\n", range, h->count,
                    B(&p, b3, h->bytes));
        }
        fprintf(f, "\n");
    }

    fprintf(f, "%sFindings%s\n", bold(&p), plain(&p));
    if (!r->finding_count)
        fprintf(f, "    none\n");
    for (size_t i = 0; i < r->finding_count; i++) {
        const struct analyzer_finding *x = &r->findings[i];
        wrapped(&p, "    ", "%s%2zu. %s%s [%s]", bold(&p), i + 1, x->cause, plain(&p), x->kind);
        wrapped(&p, "        ", "    evidence: %s", x->evidence);
        if (x->site[0])
            wrapped(&p, "        ", "    call site: %s", x->site);
        wrapped(&p, "        ", "    fix: %s", x->fix);
        for (unsigned k = 0; k < x->whatif_count; k++) {
            const struct analyzer_whatif *w = &x->whatif[k];
            char where[48] = "final heap RSS", heap[96] = "", peak[96] = "";
            if (w->step && w->step != ri->final_step)
                snprintf(where, sizeof where, "heap RSS at step %" PRIu64 ":", w->step);
            if (w->after != w->before)
                snprintf(heap, sizeof heap, " (heap size %s -> %s)", B(&p, b1, w->system_before),
                         B(&p, b2, w->system_after));
            if (w->peak_after != w->peak_before && w->peak_before)
                snprintf(peak, sizeof peak, ", peak heap RSS %s -> %s", B(&p, b1, w->peak_before),
                         B(&p, b2, w->peak_after));
            wrapped(&p, "        ", "    %s%s: %s %s -> %s%s%s%s, verified by replay%s",
                    w->helps ? green(&p) : "", w->setting, where, B(&p, b1, w->before),
                    B(&p, b2, w->after), heap, peak, w->helps ? "" : " (does not help)",
                    plain(&p));
        }
    }
}
