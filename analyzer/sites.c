/* sites.c: call sites with names: the stacks that the snapshots hold the most bytes for,
 * symbolised to function and file:line where the modules have debug information.
 *
 * The trace is read (decoded only, not replayed) until every wanted stack has been defined;
 * each frame is mapped to the module that contains it (the trace's module records), and the
 * frames of each module go to one `addr2line -f -C -e MODULE` process in batches (return
 * addresses minus one, so the line is the call's). A module that cannot be read leaves its
 * frames as module+0xoffset. The site of a stack is its innermost frame outside libc, the
 * dynamic loader and the tracer itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "analyzer_int.h"
#include "db_util.h"

#define MAX_SITES 500
#define MAX_FRAMES 16
#define BATCH 256

struct frame {
    uint64_t address;
    int module;             /* -1 = none */
    char function[160];
    char location[200];
};

struct site {
    uint32_t stack;
    unsigned depth;
    struct frame frames[MAX_FRAMES];
};

static int module_of(struct trace_reader *r, uint64_t a)
{
    size_t n = trace_reader_module_count(r);
    for (size_t i = 0; i < n; i++) {
        const struct trace_module *m = trace_reader_module(r, i);
        if (a >= m->load_address && a < m->load_address + m->size)
            return (int)i;
    }
    return -1;
}

/* ET_EXEC modules are looked up by absolute address, others by offset from the load address. */
static int module_is_exec(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    unsigned char h[18];
    ssize_t n = read(fd, h, sizeof h);
    close(fd);
    return n == (ssize_t)sizeof h && !memcmp(h, "\177ELF", 4) && h[16] == 2 && h[17] == 0;
}

/* Runs addr2line on `count` addresses of one module; fills function/location. */
static int addr2line_batch(const char *module, const uint64_t *addrs, struct frame **out,
                           size_t count)
{
    if (access(module, R_OK))
        return -1;
    char **argv = calloc(count + 6, sizeof *argv);
    char (*hex)[24] = calloc(count, sizeof *hex);
    if (!argv || !hex) {
        free(argv);
        free(hex);
        return -1;
    }
    size_t k = 0;
    argv[k++] = "addr2line";
    argv[k++] = "-f";
    argv[k++] = "-C";
    argv[k++] = "-e";
    argv[k++] = (char *)module;
    for (size_t i = 0; i < count; i++) {
        snprintf(hex[i], sizeof hex[i], "0x%" PRIx64, addrs[i]);
        argv[k++] = hex[i];
    }
    argv[k] = NULL;
    int pfd[2];
    if (pipe(pfd)) {
        free(argv);
        free(hex);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        execvp("addr2line", argv);
        _exit(127);
    }
    close(pfd[1]);
    free(argv);
    free(hex);
    if (pid < 0) {
        close(pfd[0]);
        return -1;
    }
    FILE *f = fdopen(pfd[0], "r");
    char fn[512], loc[512];
    size_t i = 0;
    while (f && i < count && fgets(fn, sizeof fn, f) && fgets(loc, sizeof loc, f)) {
        fn[strcspn(fn, "\n")] = 0;
        loc[strcspn(loc, "\n")] = 0;
        if (strcmp(fn, "??"))
            snprintf(out[i]->function, sizeof out[i]->function, "%.159s", fn);
        if (strncmp(loc, "??", 2)) {
            char *disc = strstr(loc, " (discriminator");
            if (disc)
                *disc = 0;
            snprintf(out[i]->location, sizeof out[i]->location, "%.199s", loc);
        }
        i++;
    }
    if (f)
        fclose(f);
    else
        close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    return 0;
}

static int uninteresting(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return !strncmp(base, "libc.so", 7) || !strncmp(base, "libc-", 5) ||
           !strncmp(base, "ld-linux", 8) || strstr(base, "fragscope-trace") ||
           !strncmp(base, "libstdc++", 9);
}

int sites_resolve(sqlite3 *db, int64_t run, const char *trace_path, char *err, size_t errlen)
{
    sqlite3_stmt *st = db_prepare(db, err, errlen,
                                  "SELECT stack FROM chunks WHERE run = %lld AND stack IS NOT "
                                  "NULL GROUP BY stack ORDER BY sum(size) DESC LIMIT %d",
                                  (long long)run, MAX_SITES);
    if (!st)
        return -1;
    struct site *sites = calloc(MAX_SITES, sizeof *sites);
    size_t n = 0;
    while (sites && sqlite3_step(st) == SQLITE_ROW && n < MAX_SITES)
        sites[n++].stack = (uint32_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (!sites) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!n) {
        free(sites);
        return 0;
    }
    struct trace_reader *r = trace_reader_open(trace_path, err, errlen);
    if (!r) {
        free(sites);
        return -1;
    }
    /* Read until every wanted stack is defined. */
    struct trace_event ev;
    uint64_t events = 0;
    size_t known = 0;
    for (;;) {
        if (events % 65536 == 0) {
            known = 0;
            for (size_t i = 0; i < n; i++) {
                const uint64_t *fr;
                if (trace_reader_stack(r, sites[i].stack, &fr))
                    known++;
            }
            if (known == n)
                break;
        }
        if (trace_reader_next(r, &ev) != 1)
            break;
        events++;
    }
    size_t nmod = trace_reader_module_count(r);
    for (size_t i = 0; i < n; i++) {
        const uint64_t *fr;
        unsigned d = trace_reader_stack(r, sites[i].stack, &fr);
        sites[i].depth = d < MAX_FRAMES ? d : MAX_FRAMES;
        for (unsigned k = 0; k < sites[i].depth; k++) {
            struct frame *f = &sites[i].frames[k];
            f->address = fr[k];
            f->module = module_of(r, fr[k]);
            if (f->module >= 0) {
                const struct trace_module *m = trace_reader_module(r, (size_t)f->module);
                const char *base = strrchr(m->path, '/');
                snprintf(f->function, sizeof f->function, "%.120s+0x%" PRIx64,
                         base ? base + 1 : m->path, fr[k] - m->load_address);
            } else {
                snprintf(f->function, sizeof f->function, "0x%" PRIx64, fr[k]);
            }
        }
    }
    /* One addr2line per module, in batches. */
    uint64_t *addrs = malloc(BATCH * sizeof *addrs);
    struct frame **outs = malloc(BATCH * sizeof *outs);
    for (size_t m = 0; addrs && outs && m < nmod; m++) {
        const struct trace_module *mod = trace_reader_module(r, m);
        if (uninteresting(mod->path))
            continue;
        int exec = module_is_exec(mod->path);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (unsigned j = 0; j < sites[i].depth; j++) {
                struct frame *f = &sites[i].frames[j];
                if (f->module != (int)m)
                    continue;
                uint64_t a = f->address ? f->address - 1 : 0;
                addrs[k] = exec ? a : a - mod->load_address;
                outs[k++] = f;
                if (k == BATCH) {
                    addr2line_batch(mod->path, addrs, outs, k);
                    k = 0;
                }
            }
        if (k)
            addr2line_batch(mod->path, addrs, outs, k);
    }
    free(addrs);
    free(outs);

    char e2[256];
    int rc = db_exec(db, "BEGIN", e2, sizeof e2);
    sqlite3_stmt *ins = NULL;
    if (!rc && sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO sites VALUES(?,?,?,?,?)", -1, &ins,
                                  NULL) != SQLITE_OK)
        rc = -1;
    for (size_t i = 0; !rc && i < n; i++) {
        struct site *s = &sites[i];
        if (!s->depth)
            continue;
        unsigned pick = 0;
        for (unsigned k = 0; k < s->depth; k++) {
            const struct frame *f = &s->frames[k];
            if (f->module < 0 ||
                !uninteresting(trace_reader_module(r, (size_t)f->module)->path)) {
                pick = k;
                break;
            }
        }
        char frames[2048];
        size_t len = 0;
        frames[0] = 0;
        for (unsigned k = pick; k < s->depth && len < sizeof frames - 1; k++) {
            const struct frame *f = &s->frames[k];
            len += (size_t)snprintf(frames + len, sizeof frames - len, "%s%s%s%s%s",
                                    k > pick ? "\n" : "", f->function,
                                    f->location[0] ? " (" : "", f->location,
                                    f->location[0] ? ")" : "");
        }
        sqlite3_bind_int64(ins, 1, run);
        sqlite3_bind_int64(ins, 2, s->stack);
        sqlite3_bind_text(ins, 3, s->frames[pick].function, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 4, s->frames[pick].location, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 5, frames, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE)
            rc = -1;
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    if (rc) {
        snprintf(err, errlen, "sites: %s", sqlite3_errmsg(db));
        db_exec(db, "ROLLBACK", e2, sizeof e2);
    } else {
        rc = db_exec(db, "COMMIT", err, errlen);
    }
    trace_reader_close(r);
    free(sites);
    return rc;
}
