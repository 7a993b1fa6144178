/* analyzer_int.h: what the analyzer's files share among themselves (not part of the contract). */
#ifndef FRAGSCOPE_ANALYZER_INT_H
#define FRAGSCOPE_ANALYZER_INT_H

#include <sqlite3.h>
#include "analyzer.h"
#include "origins.h"

int analyzer_schema_create(sqlite3 *db, char *err, size_t errlen);

/* Heap RSS as the report counts it: resident heap pages plus resident mmapped chunks. */
static inline uint64_t stats_rss(const struct ptmalloc_stats *st)
{
    return st->resident_bytes + st->mmapped_resident_bytes;
}

/* One stored "point" of a run: the model's counters at a step (peaks, end). */
struct run_point {
    int valid;
    uint64_t step, live;
    struct ptmalloc_stats stats;
};
int run_point_store(sqlite3 *db, int64_t run, const char *label, const struct run_point *p,
                    char *err, size_t errlen);
int run_point_load(sqlite3 *db, int64_t run, const char *label, struct run_point *p);

/* Replay options stored with a run, and rebuilt from it (strings owned by `store`). */
struct stored_options {
    struct replay_options ro;
    char trace[4096];
    char tunables[1024];
    char set_text[REPLAY_MAX_OVERRIDES][128];
};
int stored_options_load(sqlite3 *db, int64_t run, struct stored_options *so, char *err,
                        size_t errlen);
void stored_options_encode(const struct replay_options *ro, char *settings, size_t scap,
                           char *options, size_t ocap);

/* Chunk snapshot of the model, written to `chunks` as snapshot `snap`. */
int snapshot_write(sqlite3 *db, int64_t run, int snap, uint64_t step, const char *reason,
                   struct ptmalloc *pm, const struct origins *org, char *err, size_t errlen);
/* Resident bytes of [address, address + size) in the model's address space. */
uint64_t snapshot_resident(struct sysmem *mem, uint64_t address, uint64_t size);

/* What trimming the main arena's top (systrim, pad 0) would give back now; reads the model
 * without changing it. */
uint64_t analysis_top_trim_gain(struct ptmalloc *pm);

/* Symbolised call sites for the stacks the snapshots and findings refer to. */
int sites_resolve(sqlite3 *db, int64_t run, const char *trace_path, char *err, size_t errlen);

/* Colour for output on fd: a terminal, and NO_COLOR unset or empty (color.c). */
int analyzer_color_wanted(int fd);

/* Findings with their what-if replays (cache NULL: none). */
struct whatif_cache;
int findings_compute(sqlite3 *db, int64_t run, struct whatif_cache *cache, char *err,
                     size_t errlen);

#endif
