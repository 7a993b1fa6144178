/* mtrace_import.c: `fragscope import-mtrace LOG -o TRACE`, a glibc mtrace(3) log as a trace.
 *
 * glibc's mtrace writes one line per call, optionally preceded by where it was called from:
 *
 *     @ ./prog:[0x11b0] + 0x561c451a12a0 0x10     malloc/calloc/memalign: pointer, size
 *     @ ./prog:(main+0x1a)[0x11d8] - 0x561c...    free (also realloc(p, 0))
 *     @ ./prog:[0x11d8] < 0x561c451a12a0          realloc: the old pointer ...
 *     @ ./prog:[0x11d8] > 0x561c451a14d0 0x64     ... then the new pointer and size
 *     @ [0x7f12...] ! 0x561c451a12a0 0x100        realloc that failed
 *
 * The address in brackets is relative to the module named before it, or absolute when no module
 * is named. Each becomes a one-frame stack; each module gets a module record at a synthetic load
 * address ((index + 1) << 40, size 1 << 40) so that frame - load address is mtrace's offset.
 * Everything lands on thread 0 with time 0 (mtrace records neither); calloc, memalign and friends
 * are indistinguishable from malloc in the log and are imported as malloc; a failed call gets
 * errno ENOMEM. The heap start, which mtrace does not record, is taken as the page holding the
 * first pointer returned for a request below the default mmap threshold (128 KiB); allocations
 * made before mtrace() was called may lie below it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#include "../cli.h"
#include "trace_format.h"

#define MAX_LINE (64u << 10)
#define MMAP_THRESHOLD_DEFAULT (128u << 10)
#define MODULE_SPAN (1ull << 40)

/* ---- Call sites: frame address -> stack id, module path -> index ---- */

struct site_map {
    uint64_t *keys;
    uint32_t *ids;
    size_t cap, count;
};

/* Returns the id of frame (creating it when new: *created = 1), 0 on no memory. */
static uint32_t site_id(struct site_map *m, uint64_t frame, int *created)
{
    *created = 0;
    if ((m->count + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        uint64_t *k = calloc(cap, sizeof *k);
        uint32_t *v = calloc(cap, sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return 0;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->ids[i])
                continue;
            size_t j = (m->keys[i] * 0x9E3779B97F4A7C15ull) >> 32 & (cap - 1);
            while (v[j])
                j = (j + 1) & (cap - 1);
            k[j] = m->keys[i];
            v[j] = m->ids[i];
        }
        free(m->keys);
        free(m->ids);
        m->keys = k;
        m->ids = v;
        m->cap = cap;
    }
    size_t j = (frame * 0x9E3779B97F4A7C15ull) >> 32 & (m->cap - 1);
    while (m->ids[j] && m->keys[j] != frame)
        j = (j + 1) & (m->cap - 1);
    if (!m->ids[j]) {
        m->keys[j] = frame;
        m->ids[j] = (uint32_t)++m->count;
        *created = 1;
    }
    return m->ids[j];
}

struct module_list {
    char **paths;
    size_t count, cap;
};

/* Index of the module, adding it when new (*created = 1); -1 on no memory. */
static long module_index(struct module_list *l, const char *path, size_t len, int *created)
{
    *created = 0;
    for (size_t i = 0; i < l->count; i++)
        if (strlen(l->paths[i]) == len && !memcmp(l->paths[i], path, len))
            return (long)i;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **n = realloc(l->paths, cap * sizeof *n);
        if (!n)
            return -1;
        l->paths = n;
        l->cap = cap;
    }
    char *copy = strndup(path, len);
    if (!copy)
        return -1;
    l->paths[l->count] = copy;
    *created = 1;
    return (long)l->count++;
}

/* ---- Parsing one line ---- */

struct mtrace_line {
    char op;                    /* + - < > !, or 0 for a line to skip */
    int has_caller;
    uint64_t caller;            /* absolute, or the offset in `module` */
    const char *module;         /* NULL: caller is absolute */
    size_t module_len;
    uint64_t ptr, size;
    int has_size;
};

/* A pointer or size as mtrace prints it: 0x<hex>, 0, or (nil). */
static int parse_number(const char **pp, uint64_t *v)
{
    const char *p = *pp;
    if (!strncmp(p, "(nil)", 5)) {
        *v = 0;
        *pp = p + 5;
        return 1;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        p += 2;
    const char *start = p;
    uint64_t x = 0;
    for (;; p++) {
        int d;
        if (*p >= '0' && *p <= '9') d = *p - '0';
        else if (*p >= 'a' && *p <= 'f') d = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F') d = *p - 'A' + 10;
        else break;
        if (x >> 60)
            return 0;             /* more than 64 bits */
        x = x << 4 | (uint64_t)d;
    }
    if (p == start)
        return 0;
    *v = x;
    *pp = p;
    return 1;
}

static const char *parse_line(char *line, struct mtrace_line *out)
{
    memset(out, 0, sizeof out[0]);
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = 0;
    if (len == 0 || line[0] == '=')
        return NULL;            /* blank, "= Start", "= End" */
    const char *p = line;
    if (line[0] == '@' && line[1] == ' ') {
        /* The caller ends at the last "] X " with X an operation. */
        size_t end = 0;
        for (size_t i = len; i-- > 2;)
            if (line[i] == ']' && i + 3 < len + 1 && line[i + 1] == ' ' && line[i + 2] &&
                strchr("+-<>!", line[i + 2]) && (line[i + 3] == ' ' || line[i + 3] == 0)) {
                end = i;
                break;
            }
        if (!end)
            return "no operation after the caller";
        size_t lb = end;
        while (lb > 2 && line[lb] != '[')
            lb--;
        if (line[lb] != '[')
            return "the caller has no [address]";
        const char *a = line + lb + 1;
        if (!parse_number(&a, &out->caller) || a != line + end)
            return "the caller address is not a number";
        out->has_caller = 1;
        size_t plen = lb - 2;           /* "file:", "file:(sym+off)", "(sym+off)" or "" */
        const char *prefix = line + 2;
        if (plen > 0) {
            size_t flen;
            if (prefix[plen - 1] == ':') {
                flen = plen - 1;
            } else if (prefix[plen - 1] == ')') {
                flen = 0;
                for (size_t i = plen; i-- > 1;)
                    if (prefix[i] == '(' && prefix[i - 1] == ':') {
                        flen = i - 1;
                        break;
                    }
            } else {
                return "the caller is neither [address] nor file:[offset]";
            }
            out->module = flen ? prefix : "(unknown module)";
            out->module_len = flen ? flen : strlen("(unknown module)");
            if (out->module_len >= sizeof ((struct trace_module *)0)->path)
                out->module_len = sizeof ((struct trace_module *)0)->path - 1;
        }
        p = line + end + 2;
    }
    if (!*p || !strchr("+-<>!", *p) || (p[1] != ' '))
        return "expected one of + - < > ! and a pointer";
    out->op = *p;
    p += 2;
    if (!parse_number(&p, &out->ptr))
        return "the pointer is not a number";
    if (out->op == '+' || out->op == '>' || out->op == '!') {
        if (*p != ' ')
            return "a size is missing";
        p++;
        if (!parse_number(&p, &out->size))
            return "the size is not a number";
        out->has_size = 1;
    }
    while (*p == ' ')
        p++;
    if (*p)
        return "unexpected text at the end";
    return NULL;
}

/* ---- The conversion ---- */

struct import {
    const char *log_path;
    struct trace_file_writer *w;
    struct site_map sites;
    struct module_list modules;
    uint64_t seq, lines;
    uint64_t count[TRACE_EV_KIND_COUNT];
    uint64_t pending_old;       /* '<' seen, waiting for '>' */
    int pending;
    uint64_t pending_line;
};

/* The stack id for a line's caller, defining its module and stack on first use. */
static int caller_stack(struct import *im, const struct mtrace_line *l, uint32_t *id, char *err, size_t errlen)
{
    *id = 0;
    if (!l->has_caller)
        return 0;
    uint64_t frame = l->caller;
    if (l->module) {
        int created;
        long mi = module_index(&im->modules, l->module, l->module_len, &created);
        if (mi < 0)
            goto nomem;
        if (mi >= (1l << 20)) {
            snprintf(err, errlen, "%s:%" PRIu64 ": too many modules", im->log_path, im->lines);
            return -1;
        }
        uint64_t base = (uint64_t)(mi + 1) * MODULE_SPAN;
        if (created) {
            struct trace_module m;
            memset(&m, 0, sizeof m);
            m.load_address = base;
            m.size = MODULE_SPAN;
            memcpy(m.path, l->module, l->module_len);
            if (trace_file_writer_module(im->w, 0, &m) < 0)
                return -2;
        }
        frame = base + (l->caller & (MODULE_SPAN - 1));
    }
    int created;
    *id = site_id(&im->sites, frame, &created);
    if (!*id)
        goto nomem;
    if (created && trace_file_writer_stack(im->w, 0, *id, &frame, 1) < 0)
        return -2;
    return 0;
nomem:
    snprintf(err, errlen, "%s:%" PRIu64 ": out of memory", im->log_path, im->lines);
    return -1;
}

static int emit(struct import *im, struct trace_event *ev)
{
    ev->seq = im->seq++;
    im->count[ev->kind]++;
    return trace_file_writer_event(im->w, ev) < 0 ? -2 : 0;
}

/* Converts one parsed line. 0 ok, -1 error in err, -2 writer error. */
static int convert_line(struct import *im, const struct mtrace_line *l, char *err, size_t errlen)
{
    if (im->pending && l->op != '>') {
        snprintf(err, errlen, "%s:%" PRIu64 ": the realloc '<' on line %" PRIu64
                 " is not followed by its '>' line", im->log_path, im->lines, im->pending_line);
        return -1;
    }
    if (l->op == '<') {
        im->pending = 1;
        im->pending_old = l->ptr;
        im->pending_line = im->lines;
        return 0;
    }
    struct trace_event ev;
    memset(&ev, 0, sizeof ev);
    int rc = caller_stack(im, l, &ev.stack_id, err, errlen);
    if (rc)
        return rc;
    switch (l->op) {
    case '+':
        ev.kind = TRACE_EV_MALLOC;
        ev.size = l->size;
        ev.ptr = l->ptr;
        break;
    case '-':
        ev.kind = TRACE_EV_FREE;
        ev.ptr = l->ptr;
        break;
    case '>':
        if (!im->pending) {
            snprintf(err, errlen, "%s:%" PRIu64 ": a realloc '>' line without the '<' line before it",
                     im->log_path, im->lines);
            return -1;
        }
        im->pending = 0;
        ev.kind = TRACE_EV_REALLOC;
        ev.old_ptr = im->pending_old;
        ev.size = l->size;
        ev.ptr = l->ptr;
        break;
    case '!':
        ev.kind = TRACE_EV_REALLOC;
        ev.old_ptr = l->ptr;
        ev.size = l->size;
        break;
    }
    if (ev.kind != TRACE_EV_FREE && ev.ptr == 0)
        ev.err = ENOMEM;
    return emit(im, &ev);
}

/* Finds the first heap pointer (see the top of this file); 0 if none. */
static uint64_t first_heap_pointer(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t found = 0;
    while (!found && (n = getline(&line, &cap, f)) > 0 && (size_t)n <= MAX_LINE) {
        struct mtrace_line l;
        if (parse_line(line, &l) == NULL && (l.op == '+' || l.op == '>') && l.ptr &&
            l.size < MMAP_THRESHOLD_DEFAULT)
            found = l.ptr;
    }
    free(line);
    return found;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fragscope import-mtrace LOG -o TRACE [--force]\n\n"
            "Convert a glibc mtrace(3) log (MALLOC_TRACE=LOG with mtrace() called; on glibc 2.34\n"
            "and later also LD_PRELOAD=libc_malloc_debug.so.0) into a single-thread trace.\n"
            "Each caller becomes a one-frame stack; times are 0 (mtrace records none); calloc and\n"
            "memalign appear as malloc; the heap start is the page of the first heap pointer.\n\n"
            "options:\n"
            "  -o, --output TRACE  the trace to write (created with mode 0600; never through a symlink)\n"
            "  -f, --force         replace TRACE if it is an existing regular file\n"
            "  -h, --help          show this help\n");
}

int cmd_import_mtrace(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out_path = NULL;
    int force = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:fh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out_path = optarg; break;
        case 'f': force = 1; break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "fragscope import-mtrace: option '%s' needs an argument\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            fprintf(stderr, "fragscope import-mtrace: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || !out_path) {
        fprintf(stderr, "fragscope import-mtrace: %s\n",
                !out_path ? "missing -o TRACE" : optind >= argc ? "missing LOG" : "expected one LOG");
        usage(stderr);
        return 2;
    }
    const char *log_path = argv[optind];
    FILE *f = fopen(log_path, "r");
    if (!f) {
        fprintf(stderr, "fragscope import-mtrace: %s: cannot open: %s\n", log_path, strerror(errno));
        return 1;
    }
    struct stat in_st, out_st;
    if (fstat(fileno(f), &in_st) == 0 && stat(out_path, &out_st) == 0 && in_st.st_dev == out_st.st_dev &&
        in_st.st_ino == out_st.st_ino) {
        fprintf(stderr, "fragscope import-mtrace: %s: the output is the input log\n", out_path);
        fclose(f);
        return 1;
    }
    uint64_t first = first_heap_pointer(f);
    if (fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "fragscope import-mtrace: %s: cannot read it twice (not a regular file?): %s\n",
                log_path, strerror(errno));
        fclose(f);
        return 1;
    }
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.version = TRACE_VERSION;
    h.page_size = (uint32_t)page;
    h.cpu_count = (uint32_t)get_nprocs();
    h.heap_start = first & ~(uint64_t)(page - 1);
    h.stacks = 1;
    h.stack_depth = 1;
    h.argv = (char *)"";
    h.malloc_env = (char *)"";

    char err[1024];
    struct import im;
    memset(&im, 0, sizeof im);
    im.log_path = log_path;
    im.w = trace_file_writer_open(out_path, force, &h, err, sizeof err);
    if (!im.w) {
        fprintf(stderr, "fragscope import-mtrace: %s\n", err);
        fclose(f);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    err[0] = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        im.lines++;
        if ((size_t)n > MAX_LINE) {
            snprintf(err, sizeof err, "%s:%" PRIu64 ": line longer than %u bytes", log_path, im.lines, MAX_LINE);
            rc = -1;
            break;
        }
        struct mtrace_line l;
        char shown[80];
        snprintf(shown, sizeof shown, "%s", line);
        shown[strcspn(shown, "\r\n")] = 0;
        const char *why = parse_line(line, &l);
        if (why) {
            snprintf(err, sizeof err, "%s:%" PRIu64 ": %s: '%s%s'", log_path, im.lines, why, shown,
                     strlen(line) >= sizeof shown ? "..." : "");
            rc = -1;
            break;
        }
        if (!l.op)
            continue;
        if ((rc = convert_line(&im, &l, err, sizeof err)) != 0)
            break;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, sizeof err, "%s: read error after line %" PRIu64 ": %s", log_path, im.lines, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && im.pending) {
        snprintf(err, sizeof err, "%s:%" PRIu64 ": the log ends after a realloc '<' line without its '>'",
                 log_path, im.pending_line);
        rc = -1;
    }
    free(line);
    fclose(f);
    char werr[1024];
    if (rc == 0) {
        if (trace_file_writer_close(im.w, werr, sizeof werr) < 0) {
            snprintf(err, sizeof err, "%s", werr);
            rc = -1;
            unlink(out_path);
        }
    } else {
        if (rc == -2)
            snprintf(err, sizeof err, "%s: cannot write the trace", out_path);
        trace_file_writer_abandon(im.w);
        unlink(out_path);       /* ours, created exclusively above */
    }
    for (size_t i = 0; i < im.modules.count; i++)
        free(im.modules.paths[i]);
    free(im.modules.paths);
    free(im.sites.keys);
    free(im.sites.ids);
    if (rc) {
        fprintf(stderr, "fragscope import-mtrace: %s\n", err);
        return 1;
    }
    printf("%s: %" PRIu64 " lines -> %s: %" PRIu64 " events (%" PRIu64 " malloc, %" PRIu64
           " free, %" PRIu64 " realloc), %zu call sites in %zu modules, heap start 0x%" PRIx64 "\n",
           log_path, im.lines, out_path, im.seq, im.count[TRACE_EV_MALLOC], im.count[TRACE_EV_FREE],
           im.count[TRACE_EV_REALLOC], im.sites.count, im.modules.count, h.heap_start);
    return 0;
}
