/* bytes.c: byte counts for people: "206 MiB", "132 KiB", "880 B" (binary units, three
 * significant digits), or the exact number with --bytes. */
#include <inttypes.h>
#include <stdio.h>
#include "analyzer.h"

const char *analyzer_bytes(char *buf, size_t cap, uint64_t bytes, int exact)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (exact || bytes < 1024) {
        snprintf(buf, cap, exact ? "%" PRIu64 : "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (v >= 100)
        snprintf(buf, cap, "%.0f %s", v, units[u]);
    else if (v >= 10)
        snprintf(buf, cap, "%.1f %s", v, units[u]);
    else
        snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}
