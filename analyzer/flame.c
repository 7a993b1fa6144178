/* flame.c: `fragscope flame DB [--at peak|end] [--run N] [--only live|pinned]`: folded stacks
 * (one "root;caller;...;site BYTES" line per stack, the format of flamegraph.pl and speedscope)
 * of the bytes live at the snapshot and of the bytes pinned, by the call site responsible.
 *
 * Live bytes are the requests of in-use chunks. Pinned bytes are free memory the heap cannot
 * give back because of a chunk above it: walking each arena's chunks from the top down, a run of
 * free chunks is charged to the nearest chunk above it that does not coalesce (a live block, or
 * a tcache / fastbin chunk, charged to the site that last allocated it); cached chunks are
 * charged their own size as well. The two trees sit under the roots "live" and "pinned".
 * Stacks are named from `sites` (symbolised at ingest); others appear as "stack N".
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../cli.h"
#include "analyzer_int.h"
#include "db_util.h"

struct charge {
    uint32_t stack;
    uint64_t live, pinned;
};

/* Charges by stack: an array and an open-addressing index of (position + 1). */
struct charges {
    struct charge *v;
    size_t n, cap;
    uint32_t *index;
    size_t index_cap;
};

static int charges_reindex(struct charges *c, size_t cap)
{
    uint32_t *ix = calloc(cap, sizeof *ix);
    if (!ix)
        return -1;
    for (size_t i = 0; i < c->n; i++) {
        size_t j = (c->v[i].stack * 2654435761u) & (cap - 1);
        while (ix[j])
            j = (j + 1) & (cap - 1);
        ix[j] = (uint32_t)i + 1;
    }
    free(c->index);
    c->index = ix;
    c->index_cap = cap;
    return 0;
}

static struct charge *charge_of(struct charges *c, uint32_t stack)
{
    if (c->index_cap) {
        size_t j = (stack * 2654435761u) & (c->index_cap - 1);
        while (c->index[j]) {
            if (c->v[c->index[j] - 1].stack == stack)
                return &c->v[c->index[j] - 1];
            j = (j + 1) & (c->index_cap - 1);
        }
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        struct charge *n = realloc(c->v, c->cap * sizeof *n);
        if (!n)
            return NULL;
        c->v = n;
    }
    struct charge *x = &c->v[c->n++];
    memset(x, 0, sizeof *x);
    x->stack = stack;
    if (c->n * 2 > c->index_cap)
        return charges_reindex(c, c->index_cap ? c->index_cap * 2 : 256) ? NULL : x;
    size_t j = (stack * 2654435761u) & (c->index_cap - 1);
    while (c->index[j])
        j = (j + 1) & (c->index_cap - 1);
    c->index[j] = (uint32_t)c->n;
    return x;
}

static void print_stack(FILE *f, sqlite3 *db, int64_t run, const char *root, uint32_t stack,
                        uint64_t bytes)
{
    char e[128];
    fprintf(f, "%s", root);
    sqlite3_stmt *st = db_prepare(db, e, sizeof e,
                                  "SELECT frames FROM sites WHERE run = %lld AND stack = %u",
                                  (long long)run, stack);
    const char *frames = NULL;
    if (stack && st && sqlite3_step(st) == SQLITE_ROW)
        frames = (const char *)sqlite3_column_text(st, 0);
    if (frames && *frames) {
        /* frames: innermost first, one per line; folded stacks go outermost first. */
        const char *lines[64];
        size_t n = 0;
        char *copy = strdup(frames);
        for (char *save = NULL, *t = strtok_r(copy, "\n", &save); t && n < 64;
             t = strtok_r(NULL, "\n", &save))
            lines[n++] = t;
        while (n--) {
            fputc(';', f);
            for (const char *p = lines[n]; *p; p++)
                fputc(*p == ';' ? ':' : *p, f);
        }
        free(copy);
    } else if (stack) {
        fprintf(f, ";stack %u", stack);
    } else {
        fprintf(f, ";(no stack)");
    }
    fprintf(f, " %" PRIu64 "\n", bytes);
    sqlite3_finalize(st);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fragscope flame DB [options] > out.folded\n"
               "\n"
               "Folded stacks of the bytes live and the bytes pinned at a snapshot, by call site,\n"
               "for flamegraph.pl or speedscope.\n"
               "\n"
               "  --at peak|end       the RSS-peak or the end snapshot (default end)\n"
               "  --only live|pinned  one of the two trees\n"
               "  --run N             the run (default: the newest)\n"
               "  -h, --help          this help\n");
}

int cmd_flame(int argc, char **argv)
{
    enum { OPT_AT = 256, OPT_ONLY, OPT_RUN };
    static const struct option opts[] = {
        {"at", required_argument, 0, OPT_AT}, {"only", required_argument, 0, OPT_ONLY},
        {"run", required_argument, 0, OPT_RUN}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int snap = 2, want_live = 1, want_pinned = 1, c;
    int64_t run = -1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_AT:
            if (!strcmp(optarg, "peak"))
                snap = 1;
            else if (!strcmp(optarg, "end"))
                snap = 2;
            else {
                fprintf(stderr, "flame: --at '%s': expected peak or end\n", optarg);
                return 2;
            }
            break;
        case OPT_ONLY:
            if (!strcmp(optarg, "live"))
                want_pinned = 0;
            else if (!strcmp(optarg, "pinned"))
                want_live = 0;
            else {
                fprintf(stderr, "flame: --only '%s': expected live or pinned\n", optarg);
                return 2;
            }
            break;
        case OPT_RUN: {
            char *end;
            run = strtoll(optarg, &end, 10);
            if (!*optarg || *end || run < 1) {
                fprintf(stderr, "flame: --run '%s': expected a run number >= 1\n", optarg);
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "flame: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "flame: unknown option '%s'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "flame: expected one database\nusage: fragscope flame DB [options]\n");
        return 2;
    }
    char err[1024];
    sqlite3 *db = analyzer_db_open(argv[optind], 0, err, sizeof err);
    if (!db) {
        fprintf(stderr, "flame: %s\n", err);
        return 1;
    }
    if (run < 0)
        run = analyzer_db_last_run(db);
    if (db_int(db, 0, "SELECT count(*) FROM snapshots WHERE run = %lld AND snap = %d",
               (long long)run, snap) == 0) {
        int64_t has_trace = db_int(db, 0, "SELECT trace IS NOT NULL FROM runs WHERE id = %lld",
                                   (long long)run);
        struct analyzer_ingest_options io;
        analyzer_ingest_options_default(&io);
        io.quiet = 1;
        if (!has_trace || analyzer_analyze_run(db, run, &io, err, sizeof err)) {
            fprintf(stderr, "flame: %s: run %lld has no %s snapshot%s%s\n", argv[optind],
                    (long long)run, snap == 1 ? "RSS-peak" : "end", has_trace ? ": " : "",
                    has_trace ? err : "");
            analyzer_db_close(db);
            return 1;
        }
    }
    sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                  "SELECT arena, state, size, request, stack FROM chunks WHERE "
                                  "run = %lld AND snap = %d ORDER BY arena, address DESC",
                                  (long long)run, snap);
    struct charges ch = {0};
    int arena = -1, have_pinner = 0;
    uint32_t pinner = 0;            /* the stack charged for the free chunks below it */
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        int a = sqlite3_column_int(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        uint64_t size = (uint64_t)sqlite3_column_int64(st, 2);
        int64_t request = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1
                                                                    : sqlite3_column_int64(st, 3);
        uint32_t stack = (uint32_t)sqlite3_column_int64(st, 4);
        struct charge *x;
        if (a != arena) {
            arena = a;
            have_pinner = 0;
        }
        if (!strcmp(state, "in_use") || !strcmp(state, "mmapped")) {
            if ((x = charge_of(&ch, stack)))
                x->live += request >= 0 ? (uint64_t)request : size;
            if (!strcmp(state, "in_use")) {
                pinner = stack;
                have_pinner = 1;
            }
        } else if (!strcmp(state, "tcache") || !strcmp(state, "fastbin")) {
            pinner = stack;
            have_pinner = 1;
            if ((x = charge_of(&ch, stack)))
                x->pinned += size;
        } else if (!strcmp(state, "unsorted") || !strcmp(state, "small") ||
                   !strcmp(state, "large")) {
            if (have_pinner && (x = charge_of(&ch, pinner)))
                x->pinned += size;
        } else if (!strcmp(state, "internal")) {
            have_pinner = 0;
        }
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < ch.n; i++) {
        if (want_live && ch.v[i].live)
            print_stack(stdout, db, run, "live", ch.v[i].stack, ch.v[i].live);
        if (want_pinned && ch.v[i].pinned)
            print_stack(stdout, db, run, "pinned", ch.v[i].stack, ch.v[i].pinned);
    }
    free(ch.v);
    free(ch.index);
    analyzer_db_close(db);
    return 0;
}
