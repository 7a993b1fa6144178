/* sites.c: call sites with names: the stacks that the snapshots hold the most bytes for,
 * symbolised to function and file:line where the modules have debug information.
 *
 * The trace is read (decoded only, not replayed) until every wanted stack has been defined;
 * then the replayer's symbolizer (replayer/symbolize.h: modules, addr2line in batches) names
 * the frames. The site of a stack is its innermost frame outside libc, the dynamic loader and
 * the tracer itself (symbolize_pick).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analyzer_int.h"
#include "db_util.h"
#include "../replayer/symbolize.h"

#define MAX_SITES 500
#define MAX_FRAMES 16

struct site {
    uint32_t stack;
    unsigned depth;
    struct sym_frame frames[MAX_FRAMES];
};

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
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t *fr;
        unsigned d = trace_reader_stack(r, sites[i].stack, &fr);
        sites[i].depth = d < MAX_FRAMES ? d : MAX_FRAMES;
        for (unsigned k = 0; k < sites[i].depth; k++)
            sites[i].frames[k].address = fr[k];
        total += sites[i].depth;
    }
    struct sym_frame **all = malloc((total ? total : 1) * sizeof *all);
    if (all) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (unsigned j = 0; j < sites[i].depth; j++)
                all[k++] = &sites[i].frames[j];
        symbolize_frames(r, all, total, 1);
        free(all);
    } else {
        for (size_t i = 0; i < n; i++)
            sites[i].depth = 0;
    }

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
        unsigned pick = symbolize_pick(r, s->frames, s->depth);
        char frames[2048];
        size_t len = 0;
        frames[0] = 0;
        for (unsigned k = pick; k < s->depth && len < sizeof frames - 1; k++) {
            const struct sym_frame *f = &s->frames[k];
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
