/* json_out.c: JSON string escaping and numbers for the analyzer's JSON writers.
 *
 * Strings come from traces (executable paths, module paths, symbols, settings typed by the
 * user), so nothing is assumed about them: each byte is checked as part of a UTF-8 sequence
 * (no overlong forms, no surrogates, nothing past U+10FFFF); a valid sequence is copied, any
 * other byte becomes \u00XX. Quotes and backslashes are escaped, control characters get their
 * short escape or \u00XX.
 */
#include <math.h>
#include "json_out.h"

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 when s[0] does not start one. */
static int utf8_sequence(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    int n;
    unsigned char lo = 0x80, hi = 0xbf;     /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;                       /* overlong */
        else if (c == 0xed)
            hi = 0x9f;                       /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;                       /* overlong */
        else if (c == 0xf4)
            hi = 0x8f;                       /* past U+10FFFF */
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        unsigned char c = *p;
        int n;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            p++;
        } else if (c == '\n') {
            fputs("\\n", f);
            p++;
        } else if (c == '\t') {
            fputs("\\t", f);
            p++;
        } else if (c == '\r') {
            fputs("\\r", f);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            p++;
        } else if ((n = utf8_sequence(p)) > 0) {
            fwrite(p, 1, (size_t)n, f);
            p += n;
        } else {
            fprintf(f, "\\u%04x", c);
            p++;
        }
    }
    fputc('"', f);
}

void json_real(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6f", v);
    else
        fputs("null", f);
}
