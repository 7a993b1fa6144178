/* heap_cli.c: `fragscope heap DB --step N [--arena K] [--run N] [--bytes] [--format F]`: the
 * heap at one step, the way pwndbg's `heap` and `bins` show a live process: every chunk with its
 * state (and, for the program's blocks, the step and stack that allocated them), then per arena
 * the tcache of each thread, the fastbins, the unsorted bin, the small and large bins and the top.
 * A thread's tcache is shown whole under the arena the thread allocates from, chunks of other
 * arenas included (a consumer thread caching a producer's chunks).
 *
 * --format json gives the same as one JSON object (exact numbers, every bin entry, each chunk's
 * call site when the run's sites table names its stack): {"run", "trace", "step", "source",
 * "bin_order", "arenas": [{"arena", "main", "chunks": [...], "tcache": [{"thread", "bins"}],
 * "fastbins", "unsorted", "small", "large", "top"}]}, each bin {"index", "chunks": [{"address",
 * "size"}]}.
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
#include "json_out.h"

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
    int json;                  /* --format json */
    int64_t run;
    sqlite3 *db;
    sqlite3_stmt *site;        /* json: a stack's call site from the sites table (or NULL) */
    int first;                 /* json: no element written yet in the current array */
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

/* The state shown for a chunk and the allocation it came from (NULL: none known): an in-use
 * chunk the program was not given (or not this big) is the allocator's own. */
static const char *chunk_state(const struct heap_view *v, const struct ptmalloc_chunk *c,
                               const struct chunk_origin **origin)
{
    const struct chunk_origin *o = chunk_map_get(&v->org.chunks, c->address);
    int in_use = c->state == PTM_CHUNK_IN_USE || c->state == PTM_CHUNK_MMAPPED;
    const char *state = state_name(c->state);
    if (in_use && (!o || o->freed || (uint64_t)o->request + 8 > c->size)) {
        if (c->state == PTM_CHUNK_IN_USE)
            state = "internal";
        o = NULL;
    }
    *origin = o;
    return state;
}

static int walk_chunk(void *ctx, const struct ptmalloc_chunk *c)
{
    struct heap_view *v = ctx;
    const struct chunk_origin *o;
    const char *state = chunk_state(v, c, &o);
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


/* ---- JSON ---- */

static void json_sep(struct heap_view *v)
{
    fputs(v->first ? "\n      " : ",\n      ", v->f);
    v->first = 0;
}

/* The call site the run's sites table gives a stack ("function at file:line"), or null. */
static void json_site(struct heap_view *v, uint32_t stack)
{
    const char *fn = NULL, *loc = NULL;
    if (stack && v->site) {
        sqlite3_reset(v->site);
        sqlite3_bind_int64(v->site, 1, v->run);
        sqlite3_bind_int64(v->site, 2, stack);
        if (sqlite3_step(v->site) == SQLITE_ROW) {
            fn = (const char *)sqlite3_column_text(v->site, 0);
            loc = (const char *)sqlite3_column_text(v->site, 1);
        }
    }
    if (!fn) {
        fputs("null", v->f);
        return;
    }
    char *text = sqlite3_mprintf("%s%s%s", fn, loc && *loc ? " at " : "", loc ? loc : "");
    json_str(v->f, text);
    sqlite3_free(text);
}

static void json_chunk(struct heap_view *v, uint64_t address, uint64_t size, const char *state,
                       int arena, int bin, uint64_t step, uint32_t stack)
{
    json_sep(v);
    fprintf(v->f, "{\"address\": %" PRIu64 ", \"size\": %" PRIu64 ", \"state\": ", address, size);
    json_str(v->f, state);
    fprintf(v->f, ", \"arena\": %d, \"bin\": ", arena);
    if (bin >= 0)
        fprintf(v->f, "%d", bin);
    else
        fputs("null", v->f);
    if (step)
        fprintf(v->f, ", \"alloc_step\": %" PRIu64, step);
    else
        fputs(", \"alloc_step\": null", v->f);
    if (stack)
        fprintf(v->f, ", \"stack\": %" PRIu32 ", \"site\": ", stack);
    else
        fputs(", \"stack\": null, \"site\": ", v->f);
    json_site(v, stack);
    fputc('}', v->f);
}

/* A list of bins written from (bin, address, size) entries in list order, grouped by bin:
 * [{"index": B, "chunks": [{"address": A, "size": S}, ...]}, ...]. */
struct json_bins {
    FILE *f;
    const char *indent;
    int kind;                  /* only entries of this kind (ptmalloc_bins) */
    int bin;                   /* the bin being written, -1 before the first */
    uint64_t top_address, top_size;
};

static void json_bins_begin(struct json_bins *b, FILE *f, const char *name, int kind,
                            const char *indent)
{
    b->f = f;
    b->indent = indent;
    b->kind = kind;
    b->bin = -1;
    fprintf(f, "\"%s\": [", name);
}

static void json_bins_entry(struct json_bins *b, int bin, uint64_t address, uint64_t size)
{
    if (bin != b->bin) {
        fprintf(b->f, "%s\n%s  {\"index\": %d, \"chunks\": [", b->bin < 0 ? "" : "]},", b->indent,
                bin);
        b->bin = bin;
    } else {
        fputs(", ", b->f);
    }
    fprintf(b->f, "{\"address\": %" PRIu64 ", \"size\": %" PRIu64 "}", address, size);
}

static void json_bins_end(struct json_bins *b)
{
    if (b->bin < 0)
        fputc(']', b->f);
    else
        fprintf(b->f, "]}\n%s]", b->indent);
}

static int json_bin_entry(void *ctx, enum ptmalloc_chunk_state kind, int bin, uint64_t address,
                          uint64_t size)
{
    struct json_bins *b = ctx;
    if ((int)kind == b->kind)
        json_bins_entry(b, bin, address, size);
    return 0;
}

static const struct {
    const char *name;
    enum ptmalloc_chunk_state kind;
    const char *state;         /* the chunks table's name for it */
} json_kinds[] = {
    {"fastbins", PTM_CHUNK_FASTBIN, "fastbin"},
    {"unsorted", PTM_CHUNK_UNSORTED, "unsorted"},
    {"small", PTM_CHUNK_SMALL, "small"},
    {"large", PTM_CHUNK_LARGE, "large"},
};

static void json_top(FILE *f, int found, uint64_t address, uint64_t size)
{
    if (found)
        fprintf(f, "\"top\": {\"address\": %" PRIu64 ", \"size\": %" PRIu64 "}", address, size);
    else
        fprintf(f, "\"top\": {\"address\": null, \"size\": %" PRIu64 "}", size);
}

struct json_top_find {
    struct heap_view *v;
    int found;
    uint64_t address, size;
};

static int json_walk_chunk(void *ctx, const struct ptmalloc_chunk *c)
{
    struct json_top_find *t = ctx;
    const struct chunk_origin *o;
    const char *state = chunk_state(t->v, c, &o);
    if (c->state == PTM_CHUNK_TOP) {
        t->found = 1;
        t->address = c->address;
        t->size = c->size;
    }
    json_chunk(t->v, c->address, c->size, state, (int)c->arena, c->bin, o ? o->step : 0,
               o ? o->stack : 0);
    return 0;
}

/* {"run", "trace", "step", "source", "bin_order", "arenas": [ */
static void json_head(struct heap_view *v, const char *source, int bin_order)
{
    fprintf(v->f, "{\n  \"run\": %lld, \"trace\": ", (long long)v->run);
    char e[128];
    sqlite3_stmt *st = db_prepare(v->db, e, sizeof e, "SELECT trace FROM runs WHERE id = %lld",
                                  (long long)v->run);
    json_str(v->f, st && sqlite3_step(st) == SQLITE_ROW
                       ? (const char *)sqlite3_column_text(st, 0)
                       : NULL);
    sqlite3_finalize(st);
    fprintf(v->f, ", \"step\": %" PRIu64 ", \"source\": \"%s\", \"bin_order\": %s,\n  \"arenas\": [",
            v->step, source, bin_order ? "true" : "false");
}

static void json_model(struct heap_view *v, struct ptmalloc *pm)
{
    FILE *f = v->f;
    uint32_t arenas = ptmalloc_arena_count(pm);
    int first_arena = 1;
    json_head(v, "replay", 1);
    for (uint32_t a = 0; a < arenas; a++) {
        if (v->arena >= 0 && (uint32_t)v->arena != a)
            continue;
        fprintf(f, "%s\n    {\"arena\": %u, \"main\": %s,\n     \"chunks\": [", first_arena ? "" : ",",
                a, a == 0 ? "true" : "false");
        first_arena = 0;
        struct json_top_find top = {v, 0, 0, 0};
        v->first = 1;
        ptmalloc_walk(pm, (int)a, json_walk_chunk, &top);
        fprintf(f, "%s],\n     \"tcache\": [", v->first ? "" : "\n     ");
        int first_thread = 1;
        for (uint32_t t = 0; t < v->threads; t++) {
            if (ptmalloc_thread_arena(pm, t) != (int)a)
                continue;
            fprintf(f, "%s\n       {\"thread\": %u, ", first_thread ? "" : ",", t);
            first_thread = 0;
            struct json_bins b = {0};
            json_bins_begin(&b, f, "bins", PTM_CHUNK_TCACHE, "       ");
            ptmalloc_bins(pm, -1, t, json_bin_entry, &b);
            json_bins_end(&b);
            fputc('}', f);
        }
        fprintf(f, "%s],\n", first_thread ? "" : "\n     ");
        for (size_t k = 0; k < sizeof json_kinds / sizeof *json_kinds; k++) {
            struct json_bins b = {0};
            fputs("     ", f);
            json_bins_begin(&b, f, json_kinds[k].name, (int)json_kinds[k].kind, "     ");
            ptmalloc_bins(pm, (int)a, 0, json_bin_entry, &b);
            json_bins_end(&b);
            fputs(",\n", f);
        }
        struct ptmalloc_stats st;
        ptmalloc_stats(pm, (int)a, &st);
        fputs("     ", f);
        json_top(f, top.found, top.address, st.top_bytes);
        fputc('}', f);
    }
    fprintf(f, "%s]\n}\n", first_arena ? "" : "\n  ");
    v->shown = 1;
}

static void show_model(struct heap_view *v, struct ptmalloc *pm)
{
    if (v->json) {
        json_model(v, pm);
        return;
    }
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
            ptmalloc_bins(pm, -1, t, bin_entry, &p);
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

/* The snapshot as JSON: the same shape as json_model, bins in address order (bin_order false),
 * each tcache chunk under the thread tcache_owners names, in that thread's arena (as the replay
 * shows it; the chunk's own arena and thread null when no owner is stored). */
static int json_snapshot(struct heap_view *v, sqlite3 *db, int64_t run, int64_t snap)
{
    FILE *f = v->f;
    char e[256];
    sqlite3_stmt *ar = db_prepare(db, e, sizeof e,
                                  "SELECT DISTINCT arena FROM chunks WHERE run = %lld AND snap = "
                                  "%lld AND (%d < 0 OR arena = %d) ORDER BY arena",
                                  (long long)run, (long long)snap, v->arena, v->arena);
    if (!ar)
        return -1;
    int has_owners = db_int(db, 0, "SELECT count(*) FROM sqlite_master WHERE name = "
                                   "'tcache_owners'") > 0;
    json_head(v, "snapshot", 0);
    int first_arena = 1;
    while (sqlite3_step(ar) == SQLITE_ROW) {
        int a = sqlite3_column_int(ar, 0);
        fprintf(f, "%s\n    {\"arena\": %d, \"main\": %s,\n     \"chunks\": [", first_arena ? "" : ",",
                a, a == 0 ? "true" : "false");
        first_arena = 0;
        sqlite3_stmt *st = db_prepare(db, e, sizeof e,
                                      "SELECT address, size, state, arena, bin, alloc_step, stack "
                                      "FROM chunks WHERE run = %lld AND snap = %lld AND arena = %d "
                                      "ORDER BY address",
                                      (long long)run, (long long)snap, a);
        v->first = 1;
        int top_found = 0;
        uint64_t top_address = 0, top_size = 0;
        while (st && sqlite3_step(st) == SQLITE_ROW) {
            const char *state = (const char *)sqlite3_column_text(st, 2);
            uint64_t address = (uint64_t)sqlite3_column_int64(st, 0);
            uint64_t size = (uint64_t)sqlite3_column_int64(st, 1);
            if (state && !strcmp(state, "top")) {
                top_found = 1;
                top_address = address;
                top_size += size;
            }
            json_chunk(v, address, size, state ? state : "?", sqlite3_column_int(st, 3),
                       sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 4),
                       (uint64_t)sqlite3_column_int64(st, 5),
                       (uint32_t)sqlite3_column_int64(st, 6));
        }
        sqlite3_finalize(st);
        fprintf(f, "%s],\n     \"tcache\": [", v->first ? "" : "\n     ");
        /* Tcache: grouped by owning thread (-1: not stored). */
        st = db_prepare(db, e, sizeof e,
                        has_owners
                            ? "SELECT coalesce(o.thread, -1), c.bin, c.address, c.size FROM chunks c "
                              "LEFT JOIN tcache_owners o ON o.run = c.run AND o.snap = c.snap AND "
                              "o.address = c.address WHERE c.run = %lld AND c.snap = %lld AND "
                              "coalesce(o.thread_arena, c.arena) = %d AND c.state = 'tcache' "
                              "ORDER BY 1, 2, 3"
                            : "SELECT -1, bin, address, size FROM chunks WHERE run = %lld AND "
                              "snap = %lld AND arena = %d AND state = 'tcache' ORDER BY 1, 2, 3",
                        (long long)run, (long long)snap, a);
        int64_t thread = -2;
        struct json_bins b = {0};
        while (st && sqlite3_step(st) == SQLITE_ROW) {
            int64_t t = sqlite3_column_int64(st, 0);
            if (t != thread) {
                if (thread != -2) {
                    json_bins_end(&b);
                    fputs("},", f);
                }
                if (t < 0)
                    fprintf(f, "\n       {\"thread\": null, ");
                else
                    fprintf(f, "\n       {\"thread\": %lld, ", (long long)t);
                json_bins_begin(&b, f, "bins", PTM_CHUNK_TCACHE, "       ");
                thread = t;
            }
            json_bins_entry(&b, sqlite3_column_int(st, 1), (uint64_t)sqlite3_column_int64(st, 2),
                            (uint64_t)sqlite3_column_int64(st, 3));
        }
        sqlite3_finalize(st);
        if (thread != -2) {
            json_bins_end(&b);
            fputs("}\n     ", f);
        }
        fputs("],\n", f);
        for (size_t k = 0; k < sizeof json_kinds / sizeof *json_kinds; k++) {
            fputs("     ", f);
            json_bins_begin(&b, f, json_kinds[k].name, (int)json_kinds[k].kind, "     ");
            st = db_prepare(db, e, sizeof e,
                            "SELECT bin, address, size FROM chunks WHERE run = %lld AND snap = "
                            "%lld AND arena = %d AND state = '%s' AND bin IS NOT NULL ORDER BY "
                            "bin, address",
                            (long long)run, (long long)snap, a, json_kinds[k].state);
            while (st && sqlite3_step(st) == SQLITE_ROW)
                json_bins_entry(&b, sqlite3_column_int(st, 0),
                                (uint64_t)sqlite3_column_int64(st, 1),
                                (uint64_t)sqlite3_column_int64(st, 2));
            sqlite3_finalize(st);
            json_bins_end(&b);
            fputs(",\n", f);
        }
        fputs("     ", f);
        json_top(f, top_found, top_address, top_size);
        fputc('}', f);
    }
    sqlite3_finalize(ar);
    fprintf(f, "%s]\n}\n", first_arena ? "" : "\n  ");
    return 0;
}

static int show_snapshot(struct heap_view *v, sqlite3 *db, int64_t run)
{
    int64_t snap = db_int(db, -1, "SELECT snap FROM snapshots WHERE run = %lld AND step = %llu",
                          (long long)run, (unsigned long long)v->step);
    if (snap < 0)
        return -1;
    if (v->json)
        return json_snapshot(v, db, run, snap);
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
               "  --format F      text (default) or json: one object with every chunk (address,\n"
               "                  size, state, arena, bin, alloc_step, stack, site) and per arena\n"
               "                  the tcache of each thread, fastbins, unsorted, small and large\n"
               "                  bins (each {index, chunks: [{address, size}]}) and the top;\n"
               "                  exact numbers, every bin entry\n"
               "  -h, --help      this help\n"
               "\n"
               "Colour only on a terminal, and never when NO_COLOR is set (not empty).\n");
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
    enum { OPT_STEP = 256, OPT_ARENA, OPT_RUN, OPT_BYTES, OPT_ALL, OPT_FORMAT };
    static const struct option opts[] = {
        {"step", required_argument, 0, OPT_STEP}, {"arena", required_argument, 0, OPT_ARENA},
        {"run", required_argument, 0, OPT_RUN},   {"bytes", no_argument, 0, OPT_BYTES},
        {"all", no_argument, 0, OPT_ALL},         {"format", required_argument, 0, OPT_FORMAT},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    int64_t step = -1, arena = -1, run = -1;
    int exact = 0, all = 0, json = 0, c;
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
        case OPT_FORMAT:
            if (!strcmp(optarg, "json") || !strcmp(optarg, "text")) {
                json = !strcmp(optarg, "json");
                break;
            }
            fprintf(stderr, "heap: --format '%s': expected text or json\n", optarg);
            return 2;
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
                        "usage: fragscope heap DB --step N [--arena K] [--run N] [--format text|json]\n");
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
    v.color = analyzer_color_wanted(STDOUT_FILENO);
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
    v.run = run;
    v.db = db;
    v.json = json;
    if (json) {
        v.color = 0;
        if (sqlite3_prepare_v2(db, "SELECT function, location FROM sites WHERE run = ? AND "
                                   "stack = ?",
                               -1, &v.site, NULL) != SQLITE_OK)
            v.site = NULL;
    }
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
    sqlite3_finalize(v.site);
    analyzer_db_close(db);
    return rc;
}
