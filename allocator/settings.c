/* settings.c: malloc settings as glibc 2.36 (x86_64) reads them: defaults, GLIBC_TUNABLES, the
 * legacy MALLOC_* variables, and fragscope's own NAME=VALUE overrides (ptmalloc.h).
 *
 * glibc takes a setting in two steps, and so does this file:
 *
 * 1. The tunable layer (elf/dl-tunables.c and dl-tunables.list). A value is read like glibc's
 *    _dl_strtoul: leading blanks, an optional sign, decimal, 0x hex or 0 octal, stopping at the
 *    first other character (no digits reads as 0, overflow as UINT64_MAX). It is then checked
 *    against the tunable's type and bounds: SIZE_T tunables compare unsigned, INT_32 ones signed
 *    within [INT32_MIN, INT32_MAX] (so "-1" is refused for perturb and mmap_max but read as
 *    SIZE_MAX for top_pad). A refused value leaves the tunable unset. Within one GLIBC_TUNABLES
 *    string the last accepted value of each tunable wins.
 *
 * 2. ptmalloc_init hands each set tunable, in a fixed order, to malloc's setter, which may
 *    refuse it once more (tcache_max above 1032, tcache_count above 65535, mxfast above 160) and
 *    may have a side effect: the four threshold-type settings switch the dynamic mmap threshold
 *    off. So "mxfast=100:mxfast=999" leaves glibc's default, not 100.
 *
 * The MALLOC_* variables are aliases that only fill a tunable GLIBC_TUNABLES does not set: the
 * caller applies them first and GLIBC_TUNABLES after (replay_settings.c does). Their setters
 * never refuse, so applying an alias at once is the same as glibc's deferred call.
 *
 * ptmalloc_settings_set is stricter, for people: the whole value must be a number (k/M/G
 * suffixes allowed), in the range glibc would accept, or the call fails with a message naming
 * the setting and the range. It has the same side effects as the tunable.
 */
#include "ptmalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>

enum setting_id {
    /* in ptmalloc_init's order (check first: it has no setter there) */
    SET_CHECK,
    SET_TOP_PAD,
    SET_PERTURB,
    SET_MMAP_THRESHOLD,
    SET_TRIM_THRESHOLD,
    SET_MMAP_MAX,
    SET_ARENA_MAX,
    SET_ARENA_TEST,
    SET_TCACHE_MAX,
    SET_TCACHE_COUNT,
    SET_TCACHE_UNSORTED_LIMIT,
    SET_MXFAST,
    SET_HUGETLB,
    SET_CPUS,               /* fragscope's own: the CPU count behind the arena limit */
    SET_COUNT
};

enum tunable_type { TYPE_NONE, TYPE_SIZE, TYPE_INT32 };

struct setting_desc {
    const char *name;           /* short name, and the tunable is glibc.malloc.<name> */
    const char *env;            /* legacy alias, or NULL */
    enum tunable_type type;     /* TYPE_NONE: not a glibc tunable */
    int64_t minval, maxval;     /* tunable bounds (INT_32: signed; SIZE_T: minval only) */
    int settable;               /* accepted by ptmalloc_settings_set */
    uint64_t set_min, set_max;  /* the range ptmalloc_settings_set accepts */
};

#define U64MAX UINT64_MAX
#define I32MAX ((int64_t)INT32_MAX)

static const struct setting_desc settings[SET_COUNT] = {
    [SET_CHECK] = {"check", "MALLOC_CHECK_", TYPE_INT32, 0, 3, 0, 0, 0},
    [SET_TOP_PAD] = {"top_pad", "MALLOC_TOP_PAD_", TYPE_SIZE, 0, 0, 1, 0, U64MAX},
    [SET_PERTURB] = {"perturb", "MALLOC_PERTURB_", TYPE_INT32, 0, 0xff, 1, 0, 0xff},
    [SET_MMAP_THRESHOLD] = {"mmap_threshold", "MALLOC_MMAP_THRESHOLD_", TYPE_SIZE, 0, 0, 1, 0,
                            U64MAX},
    [SET_TRIM_THRESHOLD] = {"trim_threshold", "MALLOC_TRIM_THRESHOLD_", TYPE_SIZE, 0, 0, 1, 0,
                            U64MAX},
    [SET_MMAP_MAX] = {"mmap_max", "MALLOC_MMAP_MAX_", TYPE_INT32, 0, I32MAX, 1, 0,
                      (uint64_t)I32MAX},
    [SET_ARENA_MAX] = {"arena_max", "MALLOC_ARENA_MAX", TYPE_SIZE, 1, 0, 1, 1, U64MAX},
    [SET_ARENA_TEST] = {"arena_test", "MALLOC_ARENA_TEST", TYPE_SIZE, 1, 0, 1, 1, U64MAX},
    [SET_TCACHE_MAX] = {"tcache_max", NULL, TYPE_SIZE, 0, 0, 1, 0, 1032},
    [SET_TCACHE_COUNT] = {"tcache_count", NULL, TYPE_SIZE, 0, 0, 1, 0, 65535},
    [SET_TCACHE_UNSORTED_LIMIT] = {"tcache_unsorted_limit", NULL, TYPE_SIZE, 0, 0, 1, 0, U64MAX},
    [SET_MXFAST] = {"mxfast", NULL, TYPE_SIZE, 0, 0, 1, 0, 160},
    [SET_HUGETLB] = {"hugetlb", NULL, TYPE_SIZE, 0, 0, 1, 0, 2},
    [SET_CPUS] = {"cpus", NULL, TYPE_NONE, 0, 0, 1, 1, UINT32_MAX},
};

/* glibc's limits inside the setters (malloc.c). */
#define MAX_TCACHE_REQUEST 1032u
#define MAX_TCACHE_COUNT 65535u
#define MAX_FAST_REQUEST 160u

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void ptmalloc_settings_default(struct ptmalloc_settings *s) {
    memset(s, 0, sizeof *s);
    s->mxfast = 128;
    s->trim_threshold = 128 * 1024;
    s->top_pad = 131072;
    s->mmap_threshold = 128 * 1024;
    s->mmap_max = 65536;
    s->arena_max = 0;
    s->arena_test = 8;
    s->tcache_count = 7;
    s->tcache_max = 1032;
    s->tcache_unsorted_limit = 0;
    s->perturb = 0;
    s->hugetlb = 0;
    s->no_dyn_threshold = 0;
    int n = get_nprocs();
    s->cpu_count = n > 0 ? (uint32_t)n : 1;
}

/* glibc's _dl_strtoul. *end is where reading stopped; *digits whether any digit was read. */
static uint64_t glibc_strtoul(const char *p, const char **end, int *digits) {
    uint64_t result = 0;
    int negative = 0, overflow = 0;
    *digits = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '-') {
        negative = 1;
        p++;
    } else if (*p == '+') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        *end = p;
        return 0;
    }
    unsigned base = 10, max_digit = 9;
    if (*p == '0') {
        if (p[1] == 'x' || p[1] == 'X') {
            base = 16;
            p += 2;
        } else {
            base = 8;
            max_digit = 7;
            *digits = 1;        /* the leading 0 itself */
        }
    }
    for (;;) {
        unsigned d;
        if (*p >= '0' && *p <= (char)('0' + max_digit))
            d = (unsigned)(*p - '0');
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = (unsigned)(*p - 'a') + 10;
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            d = (unsigned)(*p - 'A') + 10;
        else
            break;
        *digits = 1;
        /* glibc's (slightly early) overflow test; it then returns UINT64_MAX, sign ignored
         * (we read on to the end of the digits only to find where the number ends) */
        if (!overflow && result >= (UINT64_MAX - d) / base)
            overflow = 1;
        result = result * base + d;
        p++;
    }
    *end = p;
    if (overflow)
        return UINT64_MAX;
    return negative ? (uint64_t)0 - result : result;
}

/* The tunable layer's check of a value read for setting id. */
static int tunable_accepts(enum setting_id id, uint64_t v) {
    const struct setting_desc *d = &settings[id];
    if (d->type == TYPE_SIZE)
        return v >= (uint64_t)d->minval;
    if (d->type == TYPE_INT32) {
        int64_t sv = (int64_t)v;
        int64_t lo = d->minval, hi = d->maxval ? d->maxval : I32MAX;
        return sv >= lo && sv <= hi;
    }
    return 0;
}

/* malloc's setter (do_set_*) for a value the tunable layer accepted: 1 if taken. */
static int apply_setting(struct ptmalloc_settings *s, enum setting_id id, uint64_t v) {
    switch (id) {
    case SET_CHECK:
        return 1;       /* only meaningful with libc_malloc_debug.so; no effect on placement */
    case SET_TOP_PAD:
        s->top_pad = v;
        s->no_dyn_threshold = 1;
        return 1;
    case SET_PERTURB:
        s->perturb = (int32_t)v;
        return 1;
    case SET_MMAP_THRESHOLD:
        s->mmap_threshold = v;
        s->no_dyn_threshold = 1;
        return 1;
    case SET_TRIM_THRESHOLD:
        s->trim_threshold = v;
        s->no_dyn_threshold = 1;
        return 1;
    case SET_MMAP_MAX:
        s->mmap_max = (int32_t)v;
        s->no_dyn_threshold = 1;
        return 1;
    case SET_ARENA_MAX:
        s->arena_max = v;
        return 1;
    case SET_ARENA_TEST:
        s->arena_test = v;
        return 1;
    case SET_TCACHE_MAX:
        if (v > MAX_TCACHE_REQUEST)
            return 0;
        s->tcache_max = v;
        return 1;
    case SET_TCACHE_COUNT:
        if (v > MAX_TCACHE_COUNT)
            return 0;
        s->tcache_count = v;
        return 1;
    case SET_TCACHE_UNSORTED_LIMIT:
        s->tcache_unsorted_limit = v;
        return 1;
    case SET_MXFAST:
        if (v > MAX_FAST_REQUEST)
            return 0;
        s->mxfast = v;
        return 1;
    case SET_HUGETLB:
        /* 0 off, 1 THP madvise, 2 default huge pages, larger: a huge page size to look up */
        if (v > (uint64_t)INT32_MAX)
            return 0;
        s->hugetlb = (int32_t)v;
        return 1;
    case SET_CPUS:
        if (v < 1 || v > UINT32_MAX)
            return 0;
        s->cpu_count = (uint32_t)v;
        return 1;
    case SET_COUNT:
        break;
    }
    return 0;
}

int ptmalloc_settings_tunables(struct ptmalloc_settings *s, const char *text, char *err,
                               size_t errlen) {
    static const char prefix[] = "glibc.malloc.";
    uint64_t value[SET_COUNT];
    int have[SET_COUNT] = {0};
    int bad = 0;

    if (!text) {
        set_err(err, errlen, "no tunables text");
        return -1;
    }
    const char *p = text;
    while (*p) {
        const char *name = p;
        size_t nlen = strcspn(p, "=:");
        if (p[nlen] != '=') {
            /* glibc skips a name without a value; at the very end it stops */
            if (!bad)
                set_err(err, errlen, "'%.*s' at offset %zu has no '=VALUE'", (int)nlen, name,
                        (size_t)(name - text));
            bad = 1;
            if (p[nlen] == '\0')
                break;
            p += nlen + 1;
            continue;
        }
        const char *val = p + nlen + 1;
        size_t vlen = strcspn(val, ":");
        p = val[vlen] ? val + vlen + 1 : val + vlen;

        if (nlen <= sizeof prefix - 1 || strncmp(name, prefix, sizeof prefix - 1) != 0)
            continue;       /* not a malloc tunable: glibc's business, not ours */
        const char *short_name = name + sizeof prefix - 1;
        size_t slen = nlen - (sizeof prefix - 1);
        enum setting_id id = SET_COUNT;
        for (int i = 0; i < SET_COUNT; i++)
            if (settings[i].type != TYPE_NONE && strlen(settings[i].name) == slen &&
                !strncmp(settings[i].name, short_name, slen))
                id = (enum setting_id)i;
        if (id == SET_COUNT)
            continue;       /* unknown names are ignored, as glibc does */

        /* reading stops at the ':' that ends the value at the latest */
        const char *end;
        int digits;
        uint64_t v = glibc_strtoul(val, &end, &digits);
        if ((!digits || end != val + vlen) && !bad) {
            set_err(err, errlen,
                    "value '%.*s' of glibc.malloc.%s at offset %zu is not a number "
                    "(glibc reads it as %llu)",
                    (int)vlen, val, settings[id].name, (size_t)(val - text),
                    (unsigned long long)v);
            bad = 1;
        }
        if (tunable_accepts(id, v)) {
            value[id] = v;
            have[id] = 1;
        }
    }
    for (int i = 0; i < SET_COUNT; i++)
        if (have[i])
            apply_setting(s, (enum setting_id)i, value[i]);
    return bad ? -1 : 0;
}

int ptmalloc_settings_env(struct ptmalloc_settings *s, const char *name, const char *value) {
    if (!name)
        return 0;
    if (!strcmp(name, "GLIBC_TUNABLES")) {
        if (value)
            ptmalloc_settings_tunables(s, value, NULL, 0);
        return 1;
    }
    for (int i = 0; i < SET_COUNT; i++) {
        if (!settings[i].env || strcmp(settings[i].env, name) != 0)
            continue;
        if (value) {
            const char *end;
            int digits;
            uint64_t v = glibc_strtoul(value, &end, &digits);
            if (tunable_accepts((enum setting_id)i, v))
                apply_setting(s, (enum setting_id)i, v);
        }
        return 1;
    }
    return 0;
}

/* A whole-string number for people: decimal, 0x hex or 0 octal, optional k/M/G (powers of
 * 1024). 0 with *out, or -1. */
static int parse_user_number(const char *text, uint64_t *out) {
    if (!*text || *text == '-' || *text == '+' || *text == ' ' || *text == '\t')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 0);
    if (errno || end == text)
        return -1;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift) {
        end++;
        if (v > (UINT64_MAX >> shift))
            return -1;
        v <<= shift;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

/* The --set names, in mallopt's order then the tcache ones, for error messages. */
static void known_names(char *buf, size_t len) {
    static const enum setting_id order[] = {
        SET_MXFAST,       SET_TRIM_THRESHOLD, SET_TOP_PAD,      SET_MMAP_THRESHOLD,
        SET_MMAP_MAX,     SET_ARENA_MAX,      SET_ARENA_TEST,   SET_TCACHE_COUNT,
        SET_TCACHE_MAX,   SET_TCACHE_UNSORTED_LIMIT, SET_PERTURB, SET_HUGETLB,
        SET_CPUS};
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0] && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", settings[order[i]].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

int ptmalloc_settings_set(struct ptmalloc_settings *s, const char *name_equals_value, char *err,
                          size_t errlen) {
    char known[256];
    if (!name_equals_value) {
        set_err(err, errlen, "no setting given");
        return -1;
    }
    const char *eq = strchr(name_equals_value, '=');
    if (!eq) {
        set_err(err, errlen, "expected NAME=VALUE, got '%s'", name_equals_value);
        return -1;
    }
    const char *name = name_equals_value;
    size_t nlen = (size_t)(eq - name);
    /* the tunable's full name works too */
    static const char prefix[] = "glibc.malloc.";
    if (nlen > sizeof prefix - 1 && !strncmp(name, prefix, sizeof prefix - 1)) {
        name += sizeof prefix - 1;
        nlen -= sizeof prefix - 1;
    }
    enum setting_id id = SET_COUNT;
    for (int i = 0; i < SET_COUNT; i++)
        if (settings[i].settable && strlen(settings[i].name) == nlen &&
            !strncmp(settings[i].name, name, nlen))
            id = (enum setting_id)i;
    if (id == SET_COUNT) {
        known_names(known, sizeof known);
        set_err(err, errlen, "unknown setting '%.*s' (known: %s)", (int)(eq - name_equals_value),
                name_equals_value, known);
        return -1;
    }
    const struct setting_desc *d = &settings[id];
    uint64_t v;
    if (parse_user_number(eq + 1, &v) || v < d->set_min || v > d->set_max) {
        set_err(err, errlen, "bad value '%s' for %s: expected %llu..%llu", eq + 1, d->name,
                (unsigned long long)d->set_min, (unsigned long long)d->set_max);
        return -1;
    }
    if (!apply_setting(s, id, v)) {
        set_err(err, errlen, "bad value '%s' for %s", eq + 1, d->name);
        return -1;
    }
    return 0;
}
