/* replay_settings.c: the malloc settings a replay starts with.
 *
 * glibc reads its settings once, at start-up: the MALLOC_* variables are aliases of tunables and
 * only take effect when GLIBC_TUNABLES does not set the same tunable, so the trace's MALLOC_*
 * lines are applied first (the first occurrence of a name wins, as glibc's scan of environ
 * does) and its GLIBC_TUNABLES after them. Then the trace's CPU count, and the user's overrides
 * in the order --cpus, --tunables, --set.
 */
#include <stdio.h>
#include <string.h>
#include "replay.h"

/* Applies the header's "NAME=VALUE\n..." environment lines. */
static int apply_env(struct ptmalloc_settings *s, const char *env, char *err, size_t errlen)
{
    char seen[16][64];
    unsigned nseen = 0;
    const char *tunables = NULL;
    size_t tunables_len = 0;

    for (const char *line = env; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *eq = memchr(line, '=', len);
        if (eq) {
            size_t nlen = (size_t)(eq - line);
            if (nlen == strlen("GLIBC_TUNABLES") && !memcmp(line, "GLIBC_TUNABLES", nlen)) {
                if (!tunables) {
                    tunables = eq + 1;
                    tunables_len = len - nlen - 1;
                }
            } else if (nlen < 64) {
                char name[64], value[256];
                memcpy(name, line, nlen);
                name[nlen] = 0;
                size_t vlen = len - nlen - 1;
                if (vlen >= sizeof value)
                    vlen = sizeof value - 1;
                memcpy(value, eq + 1, vlen);
                value[vlen] = 0;
                int dup = 0;
                for (unsigned i = 0; i < nseen; i++)
                    dup |= !strcmp(seen[i], name);
                if (!dup) {
                    ptmalloc_settings_env(s, name, value);
                    if (nseen < 16)
                        strcpy(seen[nseen++], name);
                }
            }
        }
        line = end ? end + 1 : line + len;
    }
    if (tunables) {
        char text[4096];
        if (tunables_len >= sizeof text)
            tunables_len = sizeof text - 1;
        memcpy(text, tunables, tunables_len);
        text[tunables_len] = 0;
        char e[256];
        if (ptmalloc_settings_tunables(s, text, e, sizeof e) < 0) {
            snprintf(err, errlen, "the trace's GLIBC_TUNABLES: %s", e);
            return -1;
        }
    }
    return 0;
}

int replay_build_settings(const struct trace_header *h, const struct replay_options *o,
                          struct ptmalloc_settings *s, char *err, size_t errlen)
{
    char e[256];
    ptmalloc_settings_default(s);
    if (h) {
        if (h->malloc_env && apply_env(s, h->malloc_env, err, errlen) < 0)
            return -1;
        if (h->cpu_count)
            s->cpu_count = h->cpu_count;
    }
    if (o->cpus)
        s->cpu_count = o->cpus;
    if (o->tunables && ptmalloc_settings_tunables(s, o->tunables, e, sizeof e) < 0) {
        snprintf(err, errlen, "--tunables '%s': %s", o->tunables, e);
        return -1;
    }
    for (unsigned i = 0; i < o->set_count && i < REPLAY_MAX_OVERRIDES; i++) {
        if (ptmalloc_settings_set(s, o->set[i], e, sizeof e) < 0) {
            snprintf(err, errlen, "--set '%s': %s", o->set[i], e);
            return -1;
        }
    }
    return 0;
}
