/* heap_cli.c: `fragscope heap DB --step N [--arena K] [--run N] [--bytes]`: the heap at one
 * step, the way pwndbg's `heap` and `bins` show a live process: every chunk with its state (and,
 * for the program's blocks, the step and stack that allocated them), then per arena the tcache
 * of each thread, the fastbins, the unsorted bin, the small and large bins and the top.
 *
 * The run's trace is replayed with the run's settings to that step (replay_run, until_step), so
 * any step can be shown. When the trace is gone, a chunk snapshot stored at that step is shown
 * instead (chunks and the contents of each bin, without the order inside a bin).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "../cli.h"
#include "analyzer_int.h"
#include "db_util.h"

struct heap_view {
    FILE *f;
    int exact, color;
    int width;                 /* bin lists wrap at this column */
    int arena;                 /* -1 = all */
    unsigned max;              /* bin entries shown per list (0 = all) */
    uint64_t step;
    uint32_t threads;
    struct origins org;
    int shown, failed;
    char err[512];
};

static const char *state_color(const struct heap_view *v, const char *state)
{
    if (!v->color)
        return "";
    if (!strcmp(state, "in_use"))
        return "\033[32m";
    if (!strcmp(state, "top"))
        return "\033[36m";
    if (!strcmp(state, "tcache") || !strcmp(state, "fastbin"))
        return "\033[33m";
    if (!strcmp(state, "internal"))
        return "\033[2m";
    return "\033[34m";
}

static void chunk_line(const struct heap_view *v, uint64_t address, uint64_t size,
                       const char *state, int arena, int bin, uint64_t step, uint32_t stack)
{
    char b[32], binbuf[16] = "", stepbuf[24] = "", stackbuf[24] = "";
    if (bin >= 0)
        snprintf(binbuf, sizeof binbuf, "%d", bin);
    if (step)
        snprintf(stepbuf, sizeof stepbuf, "%" PRIu64, step);
    if (stack)
        snprintf(stackbuf, sizeof stackbuf, "%u", stack);
    fprintf(v->f, "  0x%-14" PRIx64 " %12s  %s%-9s%s %5d %5s %12s %8s\n", address,
            analyzer_bytes(b, sizeof b, size, v->exact), state_color(v, state), state,
            v->color ? "\033[0m" : "", arena, binbuf, stepbuf, stackbuf);
}

static void chunk_header(const struct heap_view *v)
{
    fprintf(v->f, "  %-16s %12s  %-9s %5s %5s %12s %8s\n", "address", "size", "state", "arena",
            "bin", "alloc step", "stack");
}

static const char *state_name(enum ptmalloc_chunk_state s)
{
    static const char *n[] = {"in_use", "tcache", "fastbin", "unsorted", "small", "large",
                              "top", "mmapped", "internal"};
    return (unsigned)s < 9 ? n[s] : "internal";
}

static int walk_chunk(void *ctx, const struct ptmalloc_chunk *c)
{
    struct heap_view *v = ctx;
    const struct chunk_origin *o = chunk_map_get(&v->org.chunks, c->address);
    int in_use = c->state == PTM_CHUNK_IN_USE || c->state == PTM_CHUNK_MMAPPED;
    const char *state = state_name(c->state);
    if (in_use && (!o || o->freed || (uint64_t)o->request + 8 > c->size)) {
        if (c->state == PTM_CHUNK_IN_USE)
            state = "internal";
        o = NULL;
    }
    chunk_line(v, c->address, c->size, state, (int)c->arena, c->bin, o ? o->step : 0,
               o ? o->stack : 0);
    return 0;
}

struct bin_print {
    struct heap_view *v;
    int only_tcache;            /* 1: only tcache entries, 0: only the arena's bins */
    int kind, bin;              /* the list being printed */
    unsigned in_list;
    uint64_t shown, hidden;     /* entries of the current list printed / left out */
    unsigned max;               /* entries printed per list (0 = all) */
    int col;                    /* column the output is at */
};

/* Prints one " -> ..." piece of a bin list, on a new indented line when it would pass the
 * width. */
static void bin_piece(struct bin_print *p, const char *text)
{
    int len = (int)strlen(text);
    if (p->col + len > p->v->width && p->col > 10) {
        fprintf(p->v->f, "\n         ");
        p->col = 9;
    }
    fputs(text, p->v->f);
    p->col += len;
}

static void bin_end(struct bin_print *p)
{
    if (p->hidden) {
        char t[96];
        snprintf(t, sizeof t, " -> ... (%" PRIu64 " more, %" PRIu64 " in all)", p->hidden,
                 p->hidden + p->shown);
        bin_piece(p, t);
    }
    p->shown = p->hidden = 0;
}

static const char *kind_title(int kind)
{
    switch (kind) {
    case PTM_CHUNK_TCACHE: return "tcache";
    case PTM_CHUNK_FASTBIN: return "fastbins";
    case PTM_CHUNK_UNSORTED: return "unsorted bin";
    case PTM_CHUNK_SMALL: return "small bins";
    default: return "large bins";
    }
}

static int bin_entry(void *ctx, enum ptmalloc_chunk_state kind, int bin, uint64_t address,
                     uint64_t size)
{
    struct bin_print *p = ctx;
    if (p->only_tcache != (kind == PTM_CHUNK_TCACHE))
        return 0;
    char b[32];
    if ((int)kind != p->kind) {
        bin_end(p);
        fprintf(p->v->f, "\n  %s:", kind_title(kind));
        p->kind = (int)kind;
        p->bin = -1;
    }
    if (bin != p->bin) {
        bin_end(p);
        fprintf(p->v->f, "\n    [%3d]", bin);
        p->col = 9;
        p->bin = bin;
    }
    p->in_list = 1;
    if (p->max && p->shown >= p->max) {
        p->hidden++;
        return 0;
    }
    p->shown++;
    char t[96];
    snprintf(t, sizeof t, " -> 0x%" PRIx64 " (%s)", address,
             analyzer_bytes(b, sizeof b, size, p->v->exact));
    bin_piece(p, t);
    return 0;
}

static void show_model(struct heap_view *v, struct ptmalloc *pm)
{
    uint32_t arenas = ptmalloc_arena_count(pm);
    for (uint32_t a = 0; a < arenas; a++) {
        if (v->arena >= 0 && (uint32_t)v->arena != a)
            continue;
        fprintf(v->f, "arena %u%s at step %" PRIu64 "\n", a, a == 0 ? " (main)" : "", v->step);
        chunk_header(v);
        ptmalloc_walk(pm, (int)a, walk_chunk, v);
        for (uint32_t t = 0; t < v->threads; t++) {
            if (ptmalloc_thread_arena(pm, t) != (int)a)
                continue;
            struct bin_print p = {v, 1, -1, -1, 0, 0, 0, v->max, 0};
            fprintf(v->f, "thread %u", t);
            ptmalloc_bins(pm, (int)a, t, bin_entry, &p);
            bin_end(&p);
            fprintf(v->f, "%s\n", p.in_list ? "" : ": tcache empty");
        }
        struct bin_print p = {v, 0, -1, -1, 0, 0, 0, v->max, 0};
        fprintf(v->f, "bins");
        ptmalloc_bins(pm, (int)a, 0, bin_entry, &p);
        bin_end(&p);
        fprintf(v->f, "%s\n", p.in_list ? "" : ": all empty");
        struct ptmalloc_stats st;
        ptmalloc_stats(pm, (int)a, &st);
        char b[32];
        fprintf(v->f, "top: %s\n\n", analyzer_bytes(b, sizeof b, st.top_bytes, v->exact));
    }
    v->shown = 1;
}

static int heap_step(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    struct heap_view *v = ctx;
    if (origins_step(&v->org, s)) {
        v->failed = 1;
        return 1;
    }
    if (s->step == v->step) {
        show_model(v, pm);
        return 1;
    }
    return 0;
}

static int show_snapshot(struct heap_view *v, sqlite3 *db, int64_t run)
{
    int64_t snap = db_int(db, -1, "SELECT snap FROM snapshots WHERE run = %lld AND step = %llu",
                          (long long)run, (unsigned long long)v->step);
    if (snap < 0)
        return -1;
    char e[256];
    sqlite3_stmt *st = db_prepare(db, e, sizeof e,
                                  "SELECT address, size, state, arena, bin, alloc_step, stack "
                                  "FROM chunks WHERE run = %lld AND snap = %lld AND (%d < 0 OR "
                                  "arena = %d) ORDER BY arena, address",
                                  (long long)run, (long long)snap, v->arena, v->arena);
    if (!st)
        return -1;
    fprintf(v->f, "step %" PRIu64 " (stored snapshot; bin order not kept)\n", v->step);
    chunk_header(v);
    while (sqlite3_step(st) == SQLITE_ROW)
        chunk_line(v, (uint64_t)sqlite3_column_int64(st, 0),
                   (uint64_t)sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 2),
                   sqlite3_column_int(st, 3),
                   sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 4),
                   (uint64_t)sqlite3_column_int64(st, 5), (uint32_t)sqlite3_column_int64(st, 6));
    sqlite3_finalize(st);
    st = db_prepare(db, e, sizeof e,
                    "SELECT arena, state, bin, count(*), sum(size) FROM chunks WHERE run = %lld "
                    "AND snap = %lld AND bin IS NOT NULL AND (%d < 0 OR arena = %d) GROUP BY "
                    "arena, state, bin ORDER BY arena, state, bin",
                    (long long)run, (long long)snap, v->arena, v->arena);
    fprintf(v->f, "bins\n");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        char b[32];
        fprintf(v->f, "  arena %d %-9s [%3d] %6lld chunks %12s\n", sqlite3_column_int(st, 0),
                (const char *)sqlite3_column_text(st, 1), sqlite3_column_int(st, 2),
                (long long)sqlite3_column_int64(st, 3),
                analyzer_bytes(b, sizeof b, (uint64_t)sqlite3_column_int64(st, 4), v->exact));
    }
    sqlite3_finalize(st);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fragscope heap DB --step N [options]\n"
               "\n"
               "Shows every chunk and every bin at a step of a stored run (replaying the run's\n"
               "trace to that step, or from a snapshot stored at it).\n"
               "\n"
               "  --step N        the step (1 = after the first event)\n"
               "  --arena K       only arena K (0 = main)\n"
               "  --run N         the run (default: the newest)\n"
               "  --bytes         exact sizes instead of KiB / MiB\n"
               "  --all           every entry of every bin (default: the first 8 of each)\n"
               "  -h, --help      this help\n"
               "\n"
               "Colour only on a terminal, and never when NO_COLOR is set.\n");
}

static int parse_num(const char *opt, const char *s, int64_t min, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < min) {
        fprintf(stderr, "heap: %s '%s': expected a number >= %lld\n", opt, s, (long long)min);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_heap(int argc, char **argv)
{
    enum { OPT_STEP = 256, OPT_ARENA, OPT_RUN, OPT_BYTES, OPT_ALL };
    static const struct option opts[] = {
        {"step", required_argument, 0, OPT_STEP}, {"arena", required_argument, 0, OPT_ARENA},
        {"run", required_argument, 0, OPT_RUN},   {"bytes", no_argument, 0, OPT_BYTES},
        {"all", no_argument, 0, OPT_ALL},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    int64_t step = -1, arena = -1, run = -1;
    int exact = 0, all = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_STEP:
            if (parse_num("--step", optarg, 1, &step))
                return 2;
            break;
        case OPT_ARENA:
            if (parse_num("--arena", optarg, 0, &arena))
                return 2;
            break;
        case OPT_RUN:
            if (parse_num("--run", optarg, 1, &run))
                return 2;
            break;
        case OPT_BYTES:
            exact = 1;
            break;
        case OPT_ALL:
            all = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "heap: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "heap: unknown option '%s'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1 || step < 0) {
        fprintf(stderr, "heap: expected a database and --step N\n"
                        "usage: fragscope heap DB --step N [--arena K] [--run N]\n");
        return 2;
    }
    char err[1024];
    sqlite3 *db = analyzer_db_open(argv[optind], 0, err, sizeof err);
    if (!db) {
        fprintf(stderr, "heap: %s\n", err);
        return 1;
    }
    if (run < 0)
        run = analyzer_db_last_run(db);
    int64_t final_step = db_int(db, -1, "SELECT final_step FROM runs WHERE id = %lld",
                                (long long)run);
    if (run < 0 || final_step < 0) {
        fprintf(stderr, "heap: %s: no run %lld\n", argv[optind], (long long)run);
        analyzer_db_close(db);
        return 1;
    }
    if (step > final_step) {
        fprintf(stderr, "heap: --step %lld: run %lld has %lld steps\n", (long long)step,
                (long long)run, (long long)final_step);
        analyzer_db_close(db);
        return 2;
    }
    struct heap_view v;
    memset(&v, 0, sizeof v);
    v.f = stdout;
    v.exact = exact;
    v.color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    /* Bin lists fit the terminal (100 columns for a file or a pipe). */
    struct winsize ws;
    v.width = isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 &&
                      ws.ws_col >= 40
                  ? ws.ws_col
                  : 100;
    v.arena = (int)arena;
    v.max = all ? 0 : 8;
    v.step = (uint64_t)step;
    v.threads = (uint32_t)db_int(db, 1, "SELECT threads FROM runs WHERE id = %lld",
                                 (long long)run);
    struct stored_options so;
    int rc = 1;
    if (stored_options_load(db, run, &so, err, sizeof err) == 0 && so.ro.trace_path &&
        access(so.ro.trace_path, R_OK) == 0 && origins_init(&v.org) == 0) {
        struct replay_summary sum;
        memset(&sum, 0, sizeof sum);
        so.ro.until_step = (uint64_t)step;
        if (replay_run(&so.ro, heap_step, &v, &sum, NULL, err, sizeof err) == 0 && v.shown)
            rc = 0;
        else
            fprintf(stderr, "heap: replaying %s: %s\n", so.ro.trace_path,
                    v.shown ? "" : err[0] ? err : "the step was not reached");
        origins_free(&v.org);
    } else if (show_snapshot(&v, db, run) == 0) {
        rc = 0;
    } else {
        fprintf(stderr, "heap: run %lld: its trace cannot be read and no snapshot is stored at "
                        "step %lld\n",
                (long long)run, (long long)step);
    }
    analyzer_db_close(db);
    return rc;
}
