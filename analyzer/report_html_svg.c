/* report_html_svg.c: small helpers of the HTML report: escaping text from the trace, labels for
 * bytes and steps, "nice" axis ticks, and the colour of each chunk state.
 *
 * Every string that comes from a trace or a database (paths, symbols, settings, findings) goes
 * through html_esc, which escapes the five HTML metacharacters, so it is safe both as element
 * text and inside a quoted attribute, and replaces control characters (which HTML forbids) by
 * U+FFFD. Axis ticks step by 1, 2, 2.5 or 5 times a power of ten; a bytes axis first picks a
 * binary unit (KiB, MiB, ...) from its maximum, so the labels read "50 MiB", "100 MiB".
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "report_html_int.h"

void html_esc(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
                fputs("\xef\xbf\xbd", f);
            else
                fputc(*p, f);
        }
    }
}

const char *html_bytes(char *buf, size_t cap, uint64_t v, int exact)
{
    if (exact) {
        snprintf(buf, cap, "%" PRIu64 " B", v);
        return buf;
    }
    return analyzer_bytes(buf, cap, v, 0);
}

const char *html_step_label(char *buf, size_t cap, double step)
{
    if (step >= 1e9)
        snprintf(buf, cap, "%gG", step / 1e9);
    else if (step >= 1e6)
        snprintf(buf, cap, "%gM", step / 1e6);
    else if (step >= 1e4)
        snprintf(buf, cap, "%gk", step / 1e3);
    else
        snprintf(buf, cap, "%.0f", step);
    return buf;
}

/* The nice step for a span in `target` intervals. */
static double nice_step(double span, int target)
{
    if (span <= 0 || target < 1)
        return 1;
    double raw = span / target, p = 1;
    while (p * 10 <= raw)
        p *= 10;
    while (p > raw)
        p /= 10;
    static const double mult[] = {1, 2, 2.5, 5, 10};
    for (size_t i = 0; i < sizeof mult / sizeof *mult; i++)
        if (mult[i] * p >= raw)
            return mult[i] * p;
    return 10 * p;
}

void html_axis_bytes(struct html_axis *a, double hi, int target_ticks)
{
    static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    memset(a, 0, sizeof *a);
    if (hi < 1)
        hi = 1;
    unsigned u = 0;
    double unit = 1;
    while (u < 5 && hi / unit >= 1024) {
        unit *= 1024;
        u++;
    }
    /* Below 2 units the ticks would be fractions: use the smaller unit. */
    if (u > 0 && hi / unit < 2) {
        unit /= 1024;
        u--;
    }
    a->unit = unit;
    a->unit_name = names[u];
    double span = hi / unit;
    double st = nice_step(span, target_ticks);
    if (u == 0 && st < 1)
        st = 1;
    a->step = st * unit;
    a->ticks = (int)(span / st - 1e-9) + 1;
    if (a->ticks < 1)
        a->ticks = 1;
    a->lo = 0;
    a->hi = a->ticks * a->step;
}

void html_axis_steps(struct html_axis *a, double lo, double hi, int target_ticks)
{
    memset(a, 0, sizeof *a);
    if (hi <= lo)
        hi = lo + 1;
    double st = nice_step(hi - lo, target_ticks);
    if (st < 1)
        st = 1;
    a->unit = 1;
    a->unit_name = "";
    a->step = st;
    a->lo = lo;
    a->hi = hi;
    /* Ticks at multiples of the step inside [lo, hi]. */
    a->ticks = 0;
    for (double v = st * (double)(uint64_t)(lo / st); v <= hi; v += st)
        a->ticks += v >= lo;
}

const char *html_axis_bytes_label(const struct html_axis *a, char *buf, size_t cap, double v)
{
    double x = v / a->unit;
    if (v == 0)
        snprintf(buf, cap, "0");
    else
        snprintf(buf, cap, "%g %s", x, a->unit_name);
    return buf;
}

const char *html_state_color(const char *state)
{
    static const struct {
        const char *state, *color;
    } colors[] = {
        {"in_use", "#4c78a8"},   {"held", "#4c78a8"},     {"internal", "#9d9d9d"},
        {"overhead", "#9d9d9d"}, {"tcache", "#e45756"},   {"fastbin", "#f58518"},
        {"unsorted", "#eeca3b"}, {"small", "#72b7b2"},    {"large", "#54a24b"},
        {"top", "#b279a2"},      {"mmapped", "#8c6d31"},  {"mixed", "#c8c8c8"},
    };
    for (size_t i = 0; i < sizeof colors / sizeof *colors; i++)
        if (!strcmp(colors[i].state, state))
            return colors[i].color;
    return "#bbbbbb";
}
