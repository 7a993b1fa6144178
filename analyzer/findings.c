/* findings.c: why the heap holds what it holds, each reason as cause -> evidence -> fix, with
 * every suggested fix replayed (whatif.c) and the number it changes stored beside it.
 *
 * The detectors read a chunk snapshot (every chunk, its state, resident bytes and origin), the
 * run's counters and its sparse events: first the end (snapshot 2), then the step where the most
 * heap RSS was not live (snapshot 3), which adds only kinds the end did not show. Each what-if
 * replay is measured at the step of its snapshot:
 *   - the region below each arena's top: walking down from top, the free chunks that would join
 *     top if nothing pinned them. Its highest chunk is a tcache or fastbin chunk (they stay
 *     marked in use, so nothing coalesces through them): top pinned by cached chunks. Below that
 *     region, the first live chunk pins the free run under it: top pinned by a live chunk;
 *   - fastbin chunks next to free chunks: coalescing blocked;
 *   - free chunks elsewhere with whole resident pages: only malloc_trim returns them;
 *   - several arenas whose free memory dwarfs their live data (MALLOC_ARENA_MAX), and the
 *     same after threads exited;
 *   - the dynamic mmap threshold raised by a freed mmapped chunk, after which large requests
 *     land in the heap;
 *   - free leftovers next to blocks from memalign-family calls;
 *   - tcaches holding chunks of arenas their threads do not allocate from (cross-thread frees).
 * A fix counts as helping when the replay with it lowers the final (or, for the threshold, the
 * peak) heap RSS by at least 64 KiB and 5%. The fixes each kind of finding tries, its fix text
 * when none helps, and whether it is kept then, are one table (finding_kinds); a detector
 * states its evidence and the facts that select among its kind's fixes (conclude).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db_util.h"
#include "whatif.h"

enum fstate { F_IN_USE, F_INTERNAL, F_TCACHE, F_FASTBIN, F_UNSORTED, F_SMALL, F_LARGE, F_TOP,
              F_MMAPPED, F_OTHER };

struct fchunk {
    uint64_t address, size, resident, alloc_step;
    int64_t request;            /* -1 = none */
    uint32_t stack;
    int arena;
    int thread;                 /* tcache chunks: the thread whose tcache holds it, else -1 */
    int thread_arena;           /* and the arena that thread allocates from, -1 unknown */
    enum fstate state;
};

struct fctx {
    sqlite3 *db;
    int64_t run;
    struct whatif_cache *cache;  /* NULL: no what-if replays */
    struct fchunk *c;
    size_t n;
    /* The snapshot analysed: its number, step, and heap RSS / system bytes there. */
    int snap;
    uint64_t final_step, final_rss, final_system;
    uint64_t peak_rss, heap_start, run_final_step;
    const char *found[16];      /* kinds already reported (a later snapshot adds only new ones) */
    unsigned found_n;
    int next_id;
    char err[512];
};

static enum fstate parse_state(const char *s)
{
    static const char *names[] = {"in_use", "internal", "tcache", "fastbin", "unsorted", "small",
                                  "large", "top", "mmapped"};
    for (int i = 0; i < 9; i++)
        if (!strcmp(s, names[i]))
            return (enum fstate)i;
    return F_OTHER;
}

static int is_free(enum fstate s)
{
    return s == F_TCACHE || s == F_FASTBIN || s == F_UNSORTED || s == F_SMALL || s == F_LARGE;
}

static int is_binned(enum fstate s)
{
    return s == F_UNSORTED || s == F_SMALL || s == F_LARGE;
}

static int load_chunks(struct fctx *x)
{
    sqlite3_stmt *st = db_prepare(x->db, x->err, sizeof x->err,
                                  "SELECT c.address, c.size, c.resident, c.alloc_step, c.request, "
                                  "c.stack, c.arena, c.state, o.thread, o.thread_arena FROM "
                                  "chunks c LEFT JOIN tcache_owners o ON o.run = c.run AND "
                                  "o.snap = c.snap AND o.address = c.address WHERE c.run = %lld "
                                  "AND c.snap = %d "
                                  "ORDER BY c.arena, c.address",
                                  (long long)x->run, x->snap);
    if (!st)
        return -1;
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (x->n == cap) {
            cap = cap ? cap * 2 : 1024;
            struct fchunk *nc = realloc(x->c, cap * sizeof *nc);
            if (!nc) {
                sqlite3_finalize(st);
                snprintf(x->err, sizeof x->err, "out of memory");
                return -1;
            }
            x->c = nc;
        }
        struct fchunk *c = &x->c[x->n++];
        c->address = (uint64_t)sqlite3_column_int64(st, 0);
        c->size = (uint64_t)sqlite3_column_int64(st, 1);
        c->resident = (uint64_t)sqlite3_column_int64(st, 2);
        c->alloc_step = (uint64_t)sqlite3_column_int64(st, 3);
        c->request = sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 4);
        c->stack = (uint32_t)sqlite3_column_int64(st, 5);
        c->arena = sqlite3_column_int(st, 6);
        c->state = parse_state((const char *)sqlite3_column_text(st, 7));
        c->thread = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 8);
        c->thread_arena =
            sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 9);
    }
    sqlite3_finalize(st);
    return 0;
}

static void site_text(struct fctx *x, uint32_t stack, char *buf, size_t cap)
{
    buf[0] = 0;
    if (!stack)
        return;
    char e[128];
    sqlite3_stmt *st = db_prepare(x->db, e, sizeof e,
                                  "SELECT function, location FROM sites WHERE run = %lld AND "
                                  "stack = %u",
                                  (long long)x->run, stack);
    if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        const char *fn = (const char *)sqlite3_column_text(st, 0);
        const char *loc = (const char *)sqlite3_column_text(st, 1);
        snprintf(buf, cap, "%s%s%s%s (stack %u)", fn, loc && *loc ? " at " : "",
                 loc ? loc : "", "", stack);
    } else {
        snprintf(buf, cap, "stack %u", stack);
    }
    sqlite3_finalize(st);
}

static const char *B(char *buf, uint64_t v)
{
    return analyzer_bytes(buf, 32, v, 0);
}

static int lower(uint64_t before, uint64_t after)
{
    if (after >= before)
        return 0;
    uint64_t d = before - after;
    return d >= 65536 && d * 20 >= before;
}

struct finding_row {
    const char *kind;
    char cause[256], evidence[1024], fix[512], site[256];
    uint64_t bytes, step, chunk_address, chunk_size, alloc_step;
    int arena;
    unsigned nw;
    struct analyzer_whatif w[ANALYZER_MAX_WHATIF];
};

/* Replays one candidate and adds it to the finding; returns whether it helps. */
static int try_fix(struct fctx *x, struct finding_row *f, const char *label, const char *settings,
                   int trim, uint64_t free_chunk, int peak_matters)
{
    if (!x->cache || f->nw == ANALYZER_MAX_WHATIF)
        return 0;
    const struct whatif_result *r =
        whatif_cached(x->cache, settings, trim, free_chunk, f->arena, x->final_step);
    if (!r && x->cache->last_pending) {
        /* Queued (whatif.h): count it as helping for now, so that the finding is kept and the
         * replays the findings after it ask for are the ones they will ask for with the
         * answers. */
        f->w[f->nw].helps = 1;
        snprintf(f->w[f->nw++].setting, sizeof f->w[0].setting, "%s", label);
        return 1;
    }
    if (!r)
        return 0;
    struct analyzer_whatif *w = &f->w[f->nw++];
    snprintf(w->setting, sizeof w->setting, "%s", label);
    w->before = x->final_rss;
    w->after = r->final_rss;
    w->system_before = x->final_system;
    w->system_after = r->final_system;
    w->peak_before = x->peak_rss;
    w->step = x->final_step;
    w->peak_after = r->peak_rss;
    w->helps = lower(w->before, w->after) || (peak_matters && lower(w->peak_before, w->peak_after));
    return w->helps;
}

static int already_found(const struct fctx *x, const char *kind)
{
    for (unsigned i = 0; i < x->found_n; i++)
        if (!strcmp(x->found[i], kind))
            return 1;
    return 0;
}

static int store_finding(struct fctx *x, const struct finding_row *f)
{
    if (already_found(x, f->kind))
        return 0;
    if (x->found_n < sizeof x->found / sizeof *x->found)
        x->found[x->found_n++] = f->kind;
    int id = ++x->next_id;
    char *sql = sqlite3_mprintf(
        "INSERT INTO findings VALUES(%lld, %d, %Q, %Q, %Q, %Q, %llu, %llu, %d, %llu, %llu, %llu, "
        "%Q)",
        (long long)x->run, id, f->kind, f->cause, f->evidence, f->fix,
        (unsigned long long)f->bytes, (unsigned long long)f->step, f->arena,
        (unsigned long long)f->chunk_address, (unsigned long long)f->chunk_size,
        (unsigned long long)f->alloc_step, f->site);
    int rc = db_exec(x->db, sql, x->err, sizeof x->err);
    sqlite3_free(sql);
    for (unsigned i = 0; !rc && i < f->nw; i++) {
        const struct analyzer_whatif *w = &f->w[i];
        sql = sqlite3_mprintf("INSERT INTO whatifs VALUES(%lld, %d, %u, %Q, %llu, %llu, %llu, "
                              "%llu, %llu, %llu, %llu, %d)",
                              (long long)x->run, id, i + 1, w->setting, (unsigned long long)w->step,
                              (unsigned long long)w->before, (unsigned long long)w->after,
                              (unsigned long long)w->system_before,
                              (unsigned long long)w->system_after,
                              (unsigned long long)w->peak_before,
                              (unsigned long long)w->peak_after, w->helps);
        rc = db_exec(x->db, sql, x->err, sizeof x->err);
        sqlite3_free(sql);
    }
    return rc;
}

/* How a setting is applied to a real program. */
static const char *how_to_set(const char *setting, char *buf, size_t cap)
{
    char name[64];
    const char *eq = strchr(setting, '=');
    if (!eq) {
        snprintf(buf, cap, "%s", setting);
        return buf;
    }
    snprintf(name, sizeof name, "%.*s", (int)(eq - setting), setting);
    const char *v = eq + 1;
    if (!strcmp(name, "arena_max"))
        snprintf(buf, cap, "MALLOC_ARENA_MAX=%s (or mallopt(M_ARENA_MAX, %s))", v, v);
    else if (!strcmp(name, "mmap_threshold"))
        snprintf(buf, cap, "mallopt(M_MMAP_THRESHOLD, %s) (or MALLOC_MMAP_THRESHOLD_=%s)", v, v);
    else if (!strcmp(name, "mxfast"))
        snprintf(buf, cap, "mallopt(M_MXFAST, %s) (or GLIBC_TUNABLES=glibc.malloc.mxfast=%s)", v,
                 v);
    else
        snprintf(buf, cap, "GLIBC_TUNABLES=glibc.malloc.%s", setting);
    return buf;
}

static int any_helps(const struct finding_row *f)
{
    for (unsigned i = 0; i < f->nw; i++)
        if (f->w[i].helps)
            return 1;
    return 0;
}

static int is_setting(const char *label)
{
    return !strstr(label, "malloc_trim") && !strstr(label, "freed");
}

/* The fix text, from the verified candidates: a setting that helps comes first (the one with the
 * lowest result, a single setting rather than a combination when it does nearly as well); a
 * malloc_trim(0) that helps is offered beside it or alone; otherwise the code change in
 * `fallback`. */
static void choose_fix(struct finding_row *f, const char *fallback)
{
    int best = -1, trim = -1;
    for (unsigned i = 0; i < f->nw; i++) {
        if (!f->w[i].helps)
            continue;
        if (!is_setting(f->w[i].setting)) {
            if (strstr(f->w[i].setting, "malloc_trim"))
                trim = (int)i;
            continue;
        }
        if (best < 0 || f->w[i].after < f->w[best].after)
            best = (int)i;
    }
    for (unsigned i = 0; best >= 0 && i < f->nw; i++)
        if (f->w[i].helps && is_setting(f->w[i].setting) && !strchr(f->w[i].setting, ' ') &&
            strchr(f->w[best].setting, ' ') &&
            f->w[i].after <= f->w[best].after + f->w[best].before / 50)
            best = (int)i;
    char how[160], h2[160], trim_text[160] = "";
    if (trim >= 0) {
        char b1[32], b2[32];
        snprintf(trim_text, sizeof trim_text, "call malloc_trim(0) after the frees (%s -> %s)",
                 B(b1, f->w[trim].before), B(b2, f->w[trim].after));
    }
    if (best < 0) {
        if (trim >= 0 && fallback[0])
            snprintf(f->fix, sizeof f->fix, "%s; or %s", trim_text, fallback);
        else if (trim >= 0)
            snprintf(f->fix, sizeof f->fix, "%s", trim_text);
        else
            snprintf(f->fix, sizeof f->fix, "%s", fallback);
        return;
    }
    const char *s = f->w[best].setting;
    char set_text[340];
    if (strchr(s, ' ')) {
        char a[96], b[96];
        sscanf(s, "%95s %95s", a, b);
        snprintf(set_text, sizeof set_text, "set %.40s and %.40s: %.120s, %.120s", a, b,
                 how_to_set(a, how, sizeof how), how_to_set(b, h2, sizeof h2));
    } else {
        snprintf(set_text, sizeof set_text, "set %.60s: %.159s", s, how_to_set(s, how, sizeof how));
    }
    if (trim >= 0)
        snprintf(f->fix, sizeof f->fix, "%s; or %s", set_text, trim_text);
    else
        snprintf(f->fix, sizeof f->fix, "%s", set_text);
}

/* ---- the finding kinds: the fixes each one tries ---- */

/* When a candidate fix is tried: the facts a detector found (bits). */
#define WHEN_ALWAYS 0u
#define WHEN_TCACHE 1u        /* tcache chunks are involved */
#define WHEN_CACHED 2u        /* tcache or fastbin chunks are involved */
#define WHEN_AT_TOP 4u        /* the blamed block lies right below the top */
#define WHEN_ARENAS_3 8u      /* more than two arenas */

enum fix_how { FIX_SETTING, FIX_TRIM, FIX_FREE_BLOCK };

struct fix_candidate {
    const char *label;        /* the setting ("tcache_count=0 mxfast=0"), or what is done */
    enum fix_how how;         /* FIX_FREE_BLOCK: the finding's chunk freed at the end */
    int peak_matters;         /* helps also when only the peak heap RSS is lower */
    unsigned when;            /* WHEN_* facts that must all hold */
};

#define TRIM_AT_END {"malloc_trim(0) at the end", FIX_TRIM, 0, WHEN_ALWAYS}
#define CACHE_FIXES                                                                               \
    {"tcache_count=0", FIX_SETTING, 0, WHEN_TCACHE}, {"mxfast=0", FIX_SETTING, 0, WHEN_CACHED},   \
        {"tcache_count=0 mxfast=0", FIX_SETTING, 0, WHEN_TCACHE}, TRIM_AT_END
#define ARENA_FIXES                                                                               \
    {"arena_max=1", FIX_SETTING, 1, WHEN_ALWAYS}, {"arena_max=2", FIX_SETTING, 1, WHEN_ARENAS_3},  \
        TRIM_AT_END

/* Every kind of finding: the fixes replayed for it, in order (the what-if ids follow it), the
 * fix text when none helps (NULL: the detector gives it), whether the finding is dropped when
 * the replays show that no fix helps, and the fix text without replays if it differs. */
static const struct finding_kind {
    const char *kind;
    struct fix_candidate fixes[4];
    const char *fallback;
    int needs_a_fix;
    const char *fix_unverified;
} finding_kinds[] = {
    {"top-pinned-by-tcache", {CACHE_FIXES},
     "free the cached chunks' owners earlier, or return memory with malloc_trim(0)", 0, NULL},
    {"top-pinned-by-fastbin", {CACHE_FIXES},
     "free the cached chunks' owners earlier, or return memory with malloc_trim(0)", 0, NULL},
    {"top-pinned-by-live-chunk",
     {{"the block freed at the end", FIX_FREE_BLOCK, 0, WHEN_AT_TOP}, TRIM_AT_END}, NULL, 0,
     NULL},
    {"fastbin-blocks-coalescing",
     {{"mxfast=0", FIX_SETTING, 0, WHEN_ALWAYS}, {"tcache_count=0", FIX_SETTING, 0, WHEN_ALWAYS},
      {"tcache_count=0 mxfast=0", FIX_SETTING, 0, WHEN_ALWAYS}},
     "no setting lowers the heap RSS here (verified by replay): the pieces are reused by later "
     "requests of their size", 1, NULL},
    {"free-below-top-needs-trim", {TRIM_AT_END}, "", 1,
     "call malloc_trim(0) after the phase that frees them"},
    {"too-many-arenas", {ARENA_FIXES},
     "limit the arenas (MALLOC_ARENA_MAX) or call malloc_trim(0)", 1, NULL},
    {"exited-threads-memory", {ARENA_FIXES},
     "limit the arenas (MALLOC_ARENA_MAX) or call malloc_trim(0)", 1, NULL},
    {"mmap-threshold-ratchet", {{"mmap_threshold=131072", FIX_SETTING, 1, WHEN_ALWAYS}},
     "fix the threshold with mallopt(M_MMAP_THRESHOLD, 131072), which turns the dynamic "
     "adjustment off", 0, NULL},
    {"aligned-leftovers",
     {{"tcache_count=0", FIX_SETTING, 0, WHEN_ALWAYS}, {"mxfast=0", FIX_SETTING, 0, WHEN_ALWAYS},
      TRIM_AT_END},
     "allocate the long-lived small blocks apart from the aligned ones (before them, or from "
     "their own pool), or allocate the aligned blocks together in one larger aligned block", 0,
     NULL},
    {"tcache-holds-other-arenas", {{"tcache_count=0", FIX_SETTING, 1, WHEN_ALWAYS}},
     "free blocks in the thread that allocated them (hand them back), or make the tcache "
     "smaller", 1, NULL},
};

/* A detector's finding, completed: its kind's fixes tried (those whose facts hold), the fix
 * chosen (fallback: the detector's text when its kind has none), then stored unless the replays
 * showed that nothing helps a kind that needs a fix. Returns 0, or -1 on a database error. */
static int conclude(struct fctx *x, struct finding_row *f, unsigned facts, const char *fallback)
{
    const struct finding_kind *k = NULL;
    for (size_t i = 0; i < sizeof finding_kinds / sizeof *finding_kinds && !k; i++)
        if (!strcmp(finding_kinds[i].kind, f->kind))
            k = &finding_kinds[i];
    if (!k) {
        snprintf(x->err, sizeof x->err, "finding kind %s has no entry", f->kind);
        return -1;
    }
    for (size_t i = 0; i < sizeof k->fixes / sizeof *k->fixes && k->fixes[i].label; i++) {
        const struct fix_candidate *c = &k->fixes[i];
        if ((c->when & facts) != c->when)
            continue;
        try_fix(x, f, c->label, c->how == FIX_SETTING ? c->label : "", c->how == FIX_TRIM,
                c->how == FIX_FREE_BLOCK ? f->chunk_address : 0, c->peak_matters);
    }
    choose_fix(f, k->fallback ? k->fallback : fallback);
    if (x->cache && k->needs_a_fix && !any_helps(f))
        return 0;
    if (!x->cache && k->fix_unverified)
        snprintf(f->fix, sizeof f->fix, "%s", k->fix_unverified);
    return store_finding(x, f);
}

/* ---- detectors ---- */

struct region {
    size_t lo, hi;              /* chunk indices [lo, hi) below top */
    size_t top;                 /* index of the top chunk */
    uint64_t bytes, resident;
    uint64_t tcache_n, tcache_b, fast_n, fast_b, binned_n;
    int owners[4];              /* threads whose tcaches hold the region's tcache chunks */
    unsigned owner_n;
};

/* The chunks of arena a: [*first, *end). */
static void arena_range(const struct fctx *x, int arena, size_t *first, size_t *end)
{
    size_t i = 0;
    while (i < x->n && x->c[i].arena != arena)
        i++;
    *first = i;
    while (i < x->n && x->c[i].arena == arena)
        i++;
    *end = i;
}

static int top_region(const struct fctx *x, size_t first, size_t end, struct region *r)
{
    memset(r, 0, sizeof *r);
    size_t t = end;
    for (size_t i = first; i < end; i++)
        if (x->c[i].state == F_TOP)
            t = i;
    if (t == end)
        return -1;
    r->top = t;
    size_t i = t;
    while (i > first && is_free(x->c[i - 1].state) &&
           x->c[i - 1].address + x->c[i - 1].size == x->c[i].address) {
        i--;
        const struct fchunk *c = &x->c[i];
        r->bytes += c->size;
        r->resident += c->resident;
        if (c->state == F_TCACHE) {
            r->tcache_n++;
            r->tcache_b += c->size;
            int known = c->thread < 0;
            for (unsigned k = 0; k < r->owner_n; k++)
                known |= r->owners[k] == c->thread;
            if (!known && r->owner_n < 4)
                r->owners[r->owner_n++] = c->thread;
        } else if (c->state == F_FASTBIN) {
            r->fast_n++;
            r->fast_b += c->size;
        } else {
            r->binned_n++;
        }
    }
    r->lo = i;
    r->hi = t;
    return 0;
}

static int significant(const struct fctx *x, uint64_t resident)
{
    return resident >= 65536 && resident * 100 >= x->final_rss;
}

/* A counter's value at a step (the last non-NULL one stored at or before it), or -1. */
static int64_t value_at(struct fctx *x, const char *col, uint64_t step)
{
    int64_t key = (x->run << 40) + (int64_t)step;
    return db_int(x->db, -1,
                  "SELECT %s FROM steps WHERE run_step <= %lld AND run_step >= %lld AND %s IS NOT "
                  "NULL ORDER BY run_step DESC LIMIT 1",
                  col, (long long)key, (long long)(x->run << 40), col);
}

/* What the last consolidation before the snapshot did, when it left the top pinned: "; step N
 * malloc(2000): malloc_consolidate merged 3993 fastbin chunks into one 201 MiB free chunk; ...".
 * Appends to buf (empty when there was none). */
static void consolidation_story(struct fctx *x, int arena, const char *pinned_by, char *buf,
                                size_t cap)
{
    buf[0] = 0;
    sqlite3_stmt *st = db_prepare(x->db, x->err, sizeof x->err,
                                  "SELECT step, value FROM sys_events WHERE run = %lld AND what = "
                                  "'consolidate' AND arena = %d AND step <= %llu ORDER BY step "
                                  "DESC LIMIT 1",
                                  (long long)x->run, arena, (unsigned long long)x->final_step);
    if (!st)
        return;
    uint64_t step = 0, merged = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        step = (uint64_t)sqlite3_column_int64(st, 0);
        merged = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (!step)
        return;
    int64_t key = (x->run << 40) + (int64_t)step;
    int call = (int)db_int(x->db, 0, "SELECT call FROM steps WHERE run_step = %lld",
                           (long long)key);
    int64_t size = db_int(x->db, -1, "SELECT size FROM steps WHERE run_step = %lld",
                          (long long)key);
    int64_t did = db_int(x->db, 0, "SELECT did FROM steps WHERE run_step = %lld", (long long)key);
    /* The largest free chunk is counted over all arenas: named only with one arena. */
    int64_t largest = value_at(x, "arenas", step) == 1 ? value_at(x, "largest_free", step) : -1;
    int64_t binned = value_at(x, "unsorted_b", step) + value_at(x, "small_b", step) +
                     value_at(x, "large_b", step);
    int64_t sys_before = value_at(x, "system", step - 1), sys_after = value_at(x, "system", step);
    char what[64], b1[32];
    if (size >= 0)
        snprintf(what, sizeof what, "%s(%lld)", trace_event_kind_name((unsigned)call),
                 (long long)size);
    else
        snprintf(what, sizeof what, "%s", trace_event_kind_name((unsigned)call));
    size_t n = (size_t)snprintf(buf, cap,
                                "; step %" PRIu64 " %s: malloc_consolidate merged %" PRIu64
                                " fastbin chunk%s",
                                step, what, merged, merged == 1 ? "" : "s");
    if (n < cap && largest > 0 && binned > 0 && largest * 10 >= binned * 9)
        n += (size_t)snprintf(buf + n, cap - n, " into one %s free chunk",
                              B(b1, (uint64_t)largest));
    else if (n < cap && largest > 0 && value_at(x, "arenas", step) == 1)
        n += (size_t)snprintf(buf + n, cap - n, " with their free neighbours (largest free chunk "
                              "now %s)", B(b1, (uint64_t)largest));
    int trimmed = (did & (REPLAY_DID_TRIM | REPLAY_DID_SBRK_SHRINK | REPLAY_DID_HEAP_SHRINK)) ||
                  (sys_before >= 0 && sys_after >= 0 && sys_after < sys_before);
    if (n < cap)
        snprintf(buf + n, cap - n, "%s", trimmed ? "; the heap shrank"
                                     : "; top stayed pinned");
    if (n < cap && !trimmed && pinned_by)
        snprintf(buf + strlen(buf), cap - strlen(buf), " by the %s, so nothing was trimmed",
                 pinned_by);
}

static int find_top_pins(struct fctx *x, int arena, size_t first, size_t end)
{
    struct region r;
    if (top_region(x, first, end, &r))
        return 0;
    char b1[32], b2[32], b3[32];
    const struct fchunk *pin = r.lo < r.hi ? &x->c[r.hi - 1] : NULL;
    const struct fchunk *top = &x->c[r.top];
    if (pin && significant(x, r.resident) &&
        (pin->state == F_TCACHE || pin->state == F_FASTBIN)) {
        struct finding_row f;
        memset(&f, 0, sizeof f);
        int tc = pin->state == F_TCACHE;
        f.kind = tc ? "top-pinned-by-tcache" : "top-pinned-by-fastbin";
        snprintf(f.cause, sizeof f.cause,
                 "the top of arena %d is pinned by %s chunks: %s of free memory below it cannot "
                 "be trimmed",
                 arena, tc ? "tcache" : "fastbin", B(b1, r.bytes));
        site_text(x, pin->stack, f.site, sizeof f.site);
        char cached[256];
        if (r.tcache_n && r.fast_n)
            snprintf(cached, sizeof cached, "%" PRIu64 " tcache chunks (%s) and %" PRIu64
                     " fastbin chunks (%s)", r.tcache_n, B(b1, r.tcache_b), r.fast_n,
                     B(b2, r.fast_b));
        else
            snprintf(cached, sizeof cached, "%" PRIu64 " %s chunks (%s)",
                     r.tcache_n ? r.tcache_n : r.fast_n, r.tcache_n ? "tcache" : "fastbin",
                     B(b1, r.tcache_n ? r.tcache_b : r.fast_b));
        if (r.owner_n) {
            size_t l = strlen(cached);
            l += (size_t)snprintf(cached + l, sizeof cached - l, " stay marked in use (in the "
                                  "tcache%s of thread%s", r.owner_n > 1 ? "s" : "",
                                  r.owner_n > 1 ? "s" : "");
            for (unsigned k = 0; k < r.owner_n && l < sizeof cached; k++)
                l += (size_t)snprintf(cached + l, sizeof cached - l, "%s %d",
                                      k ? (k + 1 == r.owner_n ? " and" : ",") : "", r.owners[k]);
            if (l < sizeof cached)
                snprintf(cached + l, sizeof cached - l, ")");
        } else {
            size_t l = strlen(cached);
            snprintf(cached + l, sizeof cached - l, " stay marked in use");
        }
        snprintf(f.evidence, sizeof f.evidence,
                 "at step %" PRIu64 ", %s between %" PRIu64
                 " free chunks and the top (0x%" PRIx64 ", %s); %s of the %s below top is "
                 "resident; the chunk right below top is 0x%" PRIx64 " (%" PRIu64
                 " bytes, %s), allocated at step %" PRIu64,
                 x->final_step, cached, r.binned_n, top->address, B(b3, top->size),
                 analyzer_bytes((char[32]){0}, 32, r.resident, 0),
                 analyzer_bytes((char[32]){0}, 32, r.bytes, 0), pin->address,
                 pin->size, tc ? "tcache" : "fastbin", pin->alloc_step);
        if (tc) {
            char story[400], by[96];
            snprintf(by, sizeof by, "%" PRIu64 " tcache chunk%s", r.tcache_n,
                     r.tcache_n == 1 ? "" : "s");
            consolidation_story(x, arena, by, story, sizeof story);
            size_t l = strlen(f.evidence);
            snprintf(f.evidence + l, sizeof f.evidence - l, "%s", story);
        }
        f.bytes = r.resident;
        f.step = x->final_step;
        f.arena = arena;
        f.chunk_address = pin->address;
        f.chunk_size = pin->size;
        f.alloc_step = pin->alloc_step;
        unsigned facts = (r.tcache_n ? WHEN_TCACHE : 0) | (r.fast_n || r.tcache_n ? WHEN_CACHED : 0);
        if (conclude(x, &f, facts, NULL))
            return -1;
    }
    /* Below the cached region: the first live chunk and the free run it holds down. */
    size_t i = r.lo;
    if (i > first && x->c[i - 1].state == F_IN_USE) {
        const struct fchunk *live = &x->c[i - 1];
        uint64_t held = 0, res = 0, n = 0;
        size_t j = i - 1;
        while (j > first && is_free(x->c[j - 1].state)) {
            j--;
            held += x->c[j].size;
            res += x->c[j].resident;
            n++;
        }
        if (significant(x, res)) {
            struct finding_row f;
            memset(&f, 0, sizeof f);
            f.kind = "top-pinned-by-live-chunk";
            site_text(x, live->stack, f.site, sizeof f.site);
            snprintf(f.cause, sizeof f.cause,
                     "a long-lived block pins the top of arena %d: %s of free memory under it "
                     "cannot be trimmed",
                     arena, B(b1, held));
            snprintf(f.evidence, sizeof f.evidence,
                     "at step %" PRIu64 ", the live chunk 0x%" PRIx64 " (%" PRIu64
                     " bytes, %" PRId64 " requested), allocated at step %" PRIu64
                     ", sits above %" PRIu64 " free chunks (%s, %s resident)%s",
                     x->final_step, live->address, live->size, live->request,
                     live->alloc_step, n, B(b2, held), B(b3, res),
                     r.lo == r.hi ? " and right below the top" : ", below the cached chunks");
            f.bytes = res;
            f.step = x->final_step;
            f.arena = arena;
            f.chunk_address = live->address;
            f.chunk_size = live->size;
            f.alloc_step = live->alloc_step;
            char fix[256];
            snprintf(fix, sizeof fix,
                     "allocate the long-lived block (step %" PRIu64 ") before the short-lived "
                     "ones or from its own pool, so it does not end up at the top of the heap; "
                     "or call malloc_trim(0)",
                     live->alloc_step);
            if (conclude(x, &f, r.lo == r.hi ? WHEN_AT_TOP : 0, fix))
                return -1;
        }
    }
    return 0;
}

static int find_fastbin_blocking(struct fctx *x)
{
    uint64_t n = 0, bytes = 0, neighbour_free = 0, neighbours = 0;
    uint64_t first_addr = 0, first_size = 0, first_step = 0;
    uint32_t first_stack = 0;
    int arena = 0;
    size_t counted = (size_t)-1;          /* the last neighbour counted (each counts once) */
    /* The most common neighbour size, for the evidence (a small open hash of sizes). */
    struct {
        uint64_t size, count;
    } sizes[64];
    memset(sizes, 0, sizeof sizes);
    for (size_t i = 0; i < x->n; i++) {
        const struct fchunk *c = &x->c[i];
        if (c->state != F_FASTBIN)
            continue;
        size_t nb[2] = {(size_t)-1, (size_t)-1};
        if (i > 0 && x->c[i - 1].arena == c->arena && is_binned(x->c[i - 1].state))
            nb[0] = i - 1;
        if (i + 1 < x->n && x->c[i + 1].arena == c->arena && is_binned(x->c[i + 1].state))
            nb[1] = i + 1;
        if (nb[0] == (size_t)-1 && nb[1] == (size_t)-1)
            continue;
        for (int k = 0; k < 2; k++) {
            size_t j = nb[k];
            if (j == (size_t)-1 || j == counted)
                continue;
            counted = j;
            neighbours++;
            neighbour_free += x->c[j].size;
            unsigned h = (unsigned)((x->c[j].size >> 4) % 64);
            for (unsigned p = 0; p < 64; p++, h = (h + 1) % 64)
                if (!sizes[h].count || sizes[h].size == x->c[j].size) {
                    sizes[h].size = x->c[j].size;
                    sizes[h].count++;
                    break;
                }
        }
        if (!n) {
            first_addr = c->address;
            first_size = c->size;
            first_step = c->alloc_step;
            first_stack = c->stack;
            arena = c->arena;
        }
        n++;
        bytes += c->size;
    }
    if (!n || !significant(x, neighbour_free))
        return 0;
    unsigned common = 0;
    for (unsigned h = 1; h < 64; h++)
        if (sizes[h].count > sizes[common].count)
            common = h;
    char b1[32], b2[32];
    struct finding_row f;
    memset(&f, 0, sizeof f);
    f.kind = "fastbin-blocks-coalescing";
    snprintf(f.cause, sizeof f.cause,
             "fastbin chunks keep free memory in pieces: %" PRIu64 " of them sit between free "
             "chunks, which cannot coalesce until a large request or free consolidates them",
             n);
    snprintf(f.evidence, sizeof f.evidence,
             "at step %" PRIu64 ", %" PRIu64 " fastbin chunks (%s) separate %" PRIu64
             " free chunks (%s; %" PRIu64 " of them of %" PRIu64 " bytes); the first is 0x%" PRIx64
             " (%" PRIu64 " bytes) in arena %d, allocated at step %" PRIu64,
             x->final_step, n, B(b1, bytes), neighbours, B(b2, neighbour_free),
             sizes[common].count, sizes[common].size, first_addr, first_size, arena, first_step);
    site_text(x, first_stack, f.site, sizeof f.site);
    f.bytes = neighbour_free;
    f.step = x->final_step;
    f.arena = arena;
    f.chunk_address = first_addr;
    f.chunk_size = first_size;
    f.alloc_step = first_step;
    return conclude(x, &f, 0, NULL);   /* dropped when no fix gives anything back */
}

static int find_trim_only(struct fctx *x)
{
    /* Binned free chunks not in any top region, with whole resident pages inside. */
    uint64_t n = 0, bytes = 0, res = 0;
    const struct fchunk *largest = NULL;
    int arena = -1;
    size_t a0 = 0;
    while (a0 < x->n) {
        int a = x->c[a0].arena;
        size_t first, end;
        arena_range(x, a, &first, &end);
        struct region r;
        size_t lo = top_region(x, first, end, &r) == 0 ? r.lo : end;
        for (size_t i = first; i < lo; i++) {
            const struct fchunk *c = &x->c[i];
            if (!is_binned(c->state) || c->resident < 4096)
                continue;
            n++;
            bytes += c->size;
            res += c->resident;
            if (!largest || c->size > largest->size) {
                largest = c;
                arena = a;
            }
        }
        a0 = end;
    }
    if (!largest || !significant(x, res) || res < 262144)
        return 0;
    char b1[32], b2[32];
    struct finding_row f;
    memset(&f, 0, sizeof f);
    f.kind = "free-below-top-needs-trim";
    snprintf(f.cause, sizeof f.cause,
             "free memory below live blocks stays resident: only malloc_trim returns it "
             "(%s in %" PRIu64 " free chunks)",
             B(b1, res), n);
    snprintf(f.evidence, sizeof f.evidence,
             "at step %" PRIu64 ", %" PRIu64 " free chunks in the bins (%s, %s resident) lie "
             "below live chunks, out of reach of the top trim; the largest is 0x%" PRIx64
             " (%" PRIu64 " bytes) in arena %d",
             x->final_step, n, B(b1, bytes), B(b2, res), largest->address,
             largest->size, arena);
    f.bytes = res;
    f.step = x->final_step;
    f.arena = arena;
    f.chunk_address = largest->address;
    f.chunk_size = largest->size;
    f.alloc_step = largest->alloc_step;
    site_text(x, largest->stack, f.site, sizeof f.site);
    return conclude(x, &f, 0, NULL);
}

static int find_arenas(struct fctx *x)
{
    int arenas = (int)db_int(x->db, 1, "SELECT arenas FROM runs WHERE id = %lld",
                             (long long)x->run);
    if (arenas < 2)
        return 0;
    /* Threads that exited before this step, and whether the heap grew after the first exit
     * (their arenas' memory was not reused: the hoarding case) or not (too many arenas). */
    uint64_t exits = (uint64_t)db_int(x->db, 0, "SELECT count(*) FROM sys_events WHERE run = "
                                                "%lld AND what = 'thread_exit' AND step <= %llu",
                                      (long long)x->run, (unsigned long long)x->final_step);
    int64_t first_exit = db_int(x->db, 0, "SELECT min(step) FROM sys_events WHERE run = %lld "
                                          "AND what = 'thread_exit'",
                                (long long)x->run);
    int grew_after_exit = 0;
    if (exits) {
        int64_t base = x->run << 40;
        int64_t sys_at_exit = db_int(x->db, 0,
                                     "SELECT system FROM steps WHERE run_step <= %lld AND "
                                     "run_step >= %lld AND system IS NOT NULL ORDER BY run_step "
                                     "DESC LIMIT 1",
                                     (long long)(base + first_exit), (long long)base);
        int64_t sys_max_after = db_int(x->db, 0,
                                       "SELECT max(system) FROM steps WHERE run_step > %lld AND "
                                       "run_step <= %lld",
                                       (long long)(base + first_exit),
                                       (long long)(base + (int64_t)x->final_step));
        grew_after_exit = sys_max_after > sys_at_exit + 65536;
    }
    /* Free (resident, not live) memory in the non-main arenas, and the live data there. */
    uint64_t free_res = 0, live = 0;
    int worst = -1;
    uint64_t worst_free = 0, worst_live = 0;
    size_t a0 = 0;
    while (a0 < x->n) {
        int a = x->c[a0].arena;
        size_t first, end;
        arena_range(x, a, &first, &end);
        uint64_t fr = 0, lv = 0;
        for (size_t i = first; i < end; i++) {
            const struct fchunk *c = &x->c[i];
            if (c->state == F_IN_USE)
                lv += c->request > 0 ? (uint64_t)c->request : c->size;
            else if (is_free(c->state) || c->state == F_TOP)
                fr += c->resident;
        }
        if (a != 0) {
            free_res += fr;
            live += lv;
            if (worst < 0 || fr > worst_free) {
                worst = a;
                worst_free = fr;
                worst_live = lv;
            }
        }
        a0 = end;
    }
    if (!significant(x, free_res) || free_res < 262144 || free_res < 2 * live)
        return 0;
    char b1[32], b2[32], b3[32], b4[32];
    struct finding_row f;
    memset(&f, 0, sizeof f);
    if (exits && grew_after_exit) {
        f.kind = "exited-threads-memory";
        snprintf(f.cause, sizeof f.cause,
                 "arenas of threads that exited keep %s of free memory that other threads do "
                 "not reuse",
                 B(b1, free_res));
    } else {
        f.kind = "too-many-arenas";
        snprintf(f.cause, sizeof f.cause,
                 "too many arenas for the live data: %d arenas keep %s free for %s live "
                 "(MALLOC_ARENA_MAX)",
                 arenas, B(b1, free_res), B(b2, live));
    }
    int64_t last_exit = db_int(x->db, 0, "SELECT max(step) FROM sys_events WHERE run = %lld AND "
                                         "what = 'thread_exit' AND step <= %llu",
                               (long long)x->run, (unsigned long long)x->final_step);
    snprintf(f.evidence, sizeof f.evidence,
             "at step %" PRIu64 ", %d arenas; the %d non-main arenas hold %s of resident free "
             "chunks and top for %s of live blocks; arena %d alone %s free for %s live%s",
             x->final_step, arenas, arenas - 1, B(b1, free_res), B(b2, live), worst,
             B(b3, worst_free), B(b4, worst_live),
             exits ? "; threads had exited (the last at step " : "");
    if (exits) {
        size_t l = strlen(f.evidence);
        snprintf(f.evidence + l, sizeof f.evidence - l,
                 "%" PRId64 ", %" PRIu64 " exits)%s", last_exit, exits,
                 grew_after_exit ? " and the heap grew afterwards instead of reusing their memory"
                                 : "");
    }
    f.bytes = free_res;
    f.step = x->final_step;
    f.arena = worst;
    /* dropped when neither fewer arenas nor a trim would change it (verified) */
    return conclude(x, &f, arenas > 2 ? WHEN_ARENAS_3 : 0, NULL);
}

static int find_threshold_ratchet(struct fctx *x)
{
    char e[128];
    sqlite3_stmt *st = db_prepare(x->db, e, sizeof e,
                                  "SELECT step, value FROM sys_events WHERE run = %lld AND what = "
                                  "'mmap_threshold' ORDER BY step LIMIT 1",
                                  (long long)x->run);
    if (!st)
        return 0;
    uint64_t step = 0, thr = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        step = (uint64_t)sqlite3_column_int64(st, 0);
        thr = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (!step)
        return 0;
    uint64_t raises = (uint64_t)db_int(x->db, 0, "SELECT count(*) FROM sys_events WHERE run = "
                                                 "%lld AND what = 'mmap_threshold'",
                                       (long long)x->run);
    uint64_t max_thr = (uint64_t)db_int(x->db, (int64_t)thr,
                                        "SELECT max(value) FROM sys_events WHERE run = %lld AND "
                                        "what = 'mmap_threshold'",
                                        (long long)x->run);
    /* Large requests after the first raise that no longer get their own mapping. */
    int64_t base = x->run << 40;
    uint64_t n = (uint64_t)db_int(x->db, 0,
                                  "SELECT count(*) FROM steps WHERE run_step > %lld AND "
                                  "run_step <= %lld AND size >= 131072 AND size < %llu AND "
                                  "call IN (1, 2, 3, 4)",
                                  (long long)(base + (int64_t)step),
                                  (long long)(base + (int64_t)x->run_final_step),
                                  (unsigned long long)max_thr);
    uint64_t bytes = (uint64_t)db_int(x->db, 0,
                                      "SELECT sum(size) FROM steps WHERE run_step > %lld AND "
                                      "run_step <= %lld AND size >= 131072 AND size < %llu AND "
                                      "call IN (1, 2, 3, 4)",
                                      (long long)(base + (int64_t)step),
                                      (long long)(base + (int64_t)x->run_final_step),
                                      (unsigned long long)max_thr);
    if (!n)
        return 0;
    char b1[32], b2[32];
    struct finding_row f;
    memset(&f, 0, sizeof f);
    f.kind = "mmap-threshold-ratchet";
    snprintf(f.cause, sizeof f.cause,
             "the dynamic mmap threshold rose to %s after a large block was freed, so later "
             "large blocks land in the heap instead of their own mappings",
             B(b1, max_thr));
    snprintf(f.evidence, sizeof f.evidence,
             "at step %" PRIu64 " freeing a mmapped chunk raised the threshold to %" PRIu64
             " bytes (%" PRIu64 " raise%s, up to %" PRIu64 "); afterwards %" PRIu64
             " requests between 128 KiB and the threshold (%s) were served from the heap",
             step, thr, raises, raises == 1 ? "" : "s", max_thr, n, B(b2, bytes));
    f.bytes = bytes;
    f.step = step;
    f.arena = 0;
    return conclude(x, &f, 0, NULL);
}

/* The call (enum trace_event_kind) of the allocation made at `step`, or 0. */
static int call_at(struct fctx *x, uint64_t step)
{
    if (!step)
        return 0;
    return (int)db_int(x->db, 0, "SELECT call FROM steps WHERE run_step = %lld",
                       (long long)((x->run << 40) + (int64_t)step));
}

static int is_aligned_call(int call)
{
    return call == TRACE_EV_MEMALIGN || call == TRACE_EV_POSIX_MEMALIGN ||
           call == TRACE_EV_ALIGNED_ALLOC || call == TRACE_EV_VALLOC || call == TRACE_EV_PVALLOC;
}

/* Holes where aligned blocks were (the free chunk starts where an aligned call's chunk did),
 * held apart by live chunks: glibc carves an aligned block out of a larger chunk and frees the
 * leading and trailing pieces, later small requests land in those pieces, and once the aligned
 * blocks are freed the small blocks keep the holes from merging. */
static int find_aligned_leftovers(struct fctx *x)
{
    uint64_t aligned = (uint64_t)db_int(x->db, 0, "SELECT value FROM measures WHERE run = %lld "
                                                  "AND name = 'aligned_calls'",
                                        (long long)x->run);
    if (!aligned)
        return 0;
    /* Free chunks in the bins (outside the regions below the tops) with resident pages: the
     * holes; those that start where an aligned block was tell who made them. */
    uint64_t holes = 0, bytes = 0, res = 0, pins = 0, pin_bytes = 0, lookups = 0;
    uint64_t at_aligned = 0, aligned_bytes = 0;
    const struct fchunk *largest = NULL, *pin_example = NULL;
    uint32_t sites[2] = {0, 0};
    size_t last_pin = (size_t)-1;
    size_t a0 = 0;
    while (a0 < x->n) {
        size_t first, end;
        arena_range(x, x->c[a0].arena, &first, &end);
        struct region r;
        size_t lo = top_region(x, first, end, &r) == 0 ? r.lo : end;
        for (size_t i = first; i < lo; i++) {
            const struct fchunk *c = &x->c[i];
            if (!is_binned(c->state) || c->resident < 4096)
                continue;
            holes++;
            bytes += c->size;
            res += c->resident;
            if (!largest || c->size > largest->size)
                largest = c;
            if (lookups++ < 20000 && is_aligned_call(call_at(x, c->alloc_step))) {
                at_aligned++;
                aligned_bytes += c->size;
                if (c->stack && c->stack != sites[0] && c->stack != sites[1]) {
                    if (!sites[0])
                        sites[0] = c->stack;
                    else if (!sites[1])
                        sites[1] = c->stack;
                }
            }
            /* The live chunks on either side hold the hole. */
            for (int k = -1; k <= 1; k += 2) {
                if (k < 0 && i == first)
                    continue;
                size_t j = i + (size_t)k;
                if (j >= end || j == last_pin || x->c[j].state != F_IN_USE)
                    continue;
                last_pin = j;
                pins++;
                pin_bytes += x->c[j].request > 0 ? (uint64_t)x->c[j].request : x->c[j].size;
                if (!pin_example)
                    pin_example = &x->c[j];
            }
        }
        a0 = end;
    }
    /* Aligned blocks made the holes when they account for a good part of them. */
    if (!at_aligned || aligned_bytes * 4 < bytes)
        return 0;
    if (!largest || !significant(x, res))
        return 0;
    char b1[32], b2[32], s1[256] = "", s2[256] = "";
    struct finding_row f;
    memset(&f, 0, sizeof f);
    f.kind = "aligned-leftovers";
    snprintf(f.cause, sizeof f.cause,
             "holes left by freed aligned blocks stay resident: %s, held apart by %" PRIu64
             " live blocks (%s) that landed in the aligned allocations' leftovers",
             B(b1, res), pins, B(b2, pin_bytes));
    site_text(x, sites[0], s1, sizeof s1);
    site_text(x, sites[1], s2, sizeof s2);
    snprintf(f.evidence, sizeof f.evidence,
             "at step %" PRIu64 ", %" PRIu64 " free chunks (%s, %s resident) lie between live "
             "chunks; %" PRIu64 " of them start where memalign-family blocks were (%" PRIu64
             " such calls; allocated at %s%s%s); the largest is 0x%" PRIx64 " (%" PRIu64
             " bytes) in arena %d; %" PRIu64 " live chunks border them, e.g. 0x%" PRIx64
             " (%" PRIu64 " bytes, allocated at step %" PRIu64 ")",
             x->final_step, holes, B(b1, bytes), B(b2, res), at_aligned, aligned,
             s1[0] ? s1 : "?",
             s2[0] ? " and " : "", s2, largest->address, largest->size, largest->arena, pins,
             pin_example ? pin_example->address : 0, pin_example ? pin_example->size : 0,
             pin_example ? pin_example->alloc_step : 0);
    if (pin_example)
        site_text(x, pin_example->stack, f.site, sizeof f.site);
    f.bytes = res;
    f.step = x->final_step;
    f.arena = largest->arena;
    f.chunk_address = pin_example ? pin_example->address : largest->address;
    f.chunk_size = pin_example ? pin_example->size : largest->size;
    f.alloc_step = pin_example ? pin_example->alloc_step : largest->alloc_step;
    int rc = conclude(x, &f, 0, NULL);
    /* The holes are the free memory that only malloc_trim would return: said here already. */
    if (!rc && x->found_n < sizeof x->found / sizeof *x->found)
        x->found[x->found_n++] = "free-below-top-needs-trim";
    return rc;
}

/* Cross-thread frees: a thread's tcache keeps chunks of an arena it does not allocate from.
 * Only that thread could reuse them (and only for requests of their size); nobody can coalesce
 * them. */
static int find_cross_thread_tcache(struct fctx *x)
{
    enum { MAXT = 64 };
    struct {
        int thread, thread_arena, arena;
        uint64_t n, bytes;
        const struct fchunk *example;
    } per[MAXT];
    unsigned nper = 0;
    uint64_t total = 0, total_n = 0;
    for (size_t i = 0; i < x->n; i++) {
        const struct fchunk *c = &x->c[i];
        if (c->state != F_TCACHE || c->thread < 0 || c->thread_arena < 0 ||
            c->thread_arena == c->arena)
            continue;
        total += c->size;
        total_n++;
        unsigned k = 0;
        while (k < nper && per[k].thread != c->thread)
            k++;
        if (k == nper) {
            if (nper == MAXT)
                continue;
            nper++;
            per[k].thread = c->thread;
            per[k].thread_arena = c->thread_arena;
            per[k].arena = c->arena;
            per[k].n = per[k].bytes = 0;
            per[k].example = c;
        }
        per[k].n++;
        per[k].bytes += c->size;
    }
    if (!nper || total < 65536 || total * 100 < x->final_rss)
        return 0;
    unsigned w = 0;
    for (unsigned k = 1; k < nper; k++)
        if (per[k].bytes > per[w].bytes)
            w = k;
    char b1[32], b2[32];
    struct finding_row f;
    memset(&f, 0, sizeof f);
    f.kind = "tcache-holds-other-arenas";
    snprintf(f.cause, sizeof f.cause,
             "tcaches hold %s of chunks freed by threads that did not allocate them (cross-thread "
             "frees): only the caching thread could reuse them",
             B(b1, total));
    snprintf(f.evidence, sizeof f.evidence,
             "at step %" PRIu64 ", %" PRIu64 " tcache chunks (%s) sit in the tcaches of %u "
             "thread%s that allocate from other arenas; thread %d (arena %d) alone holds %" PRIu64
             " chunks (%s) of arena %d, e.g. 0x%" PRIx64 " (%" PRIu64 " bytes, allocated at step "
             "%" PRIu64 ")",
             x->final_step, total_n, B(b1, total), nper, nper == 1 ? "" : "s", per[w].thread,
             per[w].thread_arena, per[w].n, B(b2, per[w].bytes), per[w].arena,
             per[w].example->address, per[w].example->size, per[w].example->alloc_step);
    site_text(x, per[w].example->stack, f.site, sizeof f.site);
    f.bytes = total;
    f.step = x->final_step;
    f.arena = per[w].arena;
    f.chunk_address = per[w].example->address;
    f.chunk_size = per[w].example->size;
    f.alloc_step = per[w].example->alloc_step;
    return conclude(x, &f, 0, NULL);
}

static int run_detectors(struct fctx *x)
{
    int rc = 0;
    size_t a0 = 0;
    while (!rc && a0 < x->n) {
        size_t first, end;
        arena_range(x, x->c[a0].arena, &first, &end);
        rc = find_top_pins(x, x->c[a0].arena, first, end);
        a0 = end;
    }
    if (!rc)
        rc = find_cross_thread_tcache(x);
    if (!rc)
        rc = find_fastbin_blocking(x);
    if (!rc && !already_found(x, "mmap-threshold-ratchet"))
        rc = find_threshold_ratchet(x);
    if (!rc)
        rc = find_aligned_leftovers(x);
    if (!rc)
        rc = find_trim_only(x);
    if (!rc)
        rc = find_arenas(x);
    return rc;
}

int findings_compute(sqlite3 *db, int64_t run, struct whatif_cache *cache, char *err,
                     size_t errlen)
{
    struct fctx x;
    memset(&x, 0, sizeof x);
    x.db = db;
    x.run = run;
    x.cache = cache;
    char e2[256];
    char *sql = sqlite3_mprintf("DELETE FROM findings WHERE run = %lld; DELETE FROM whatifs WHERE "
                                "run = %lld",
                                (long long)run, (long long)run);
    int rc = db_exec(db, sql, e2, sizeof e2);
    sqlite3_free(sql);
    if (rc) {
        snprintf(err, errlen, "%s", e2);
        return -1;
    }
    x.run_final_step = (uint64_t)db_int(db, 0, "SELECT final_step FROM runs WHERE id = %lld",
                                        (long long)run);
    x.peak_rss = (uint64_t)db_int(db, 0, "SELECT peak_rss FROM runs WHERE id = %lld",
                                  (long long)run);
    x.heap_start = (uint64_t)db_int(db, 0, "SELECT heap_start FROM runs WHERE id = %lld",
                                    (long long)run);
    rc = db_exec(db, "BEGIN", e2, sizeof e2);
    /* The end first, then the step of the largest retention, for what the end does not show. */
    static const struct { int snap; const char *label; } points[] = {{2, "end"},
                                                                     {3, "retention_peak"}};
    for (size_t p = 0; !rc && p < sizeof points / sizeof *points; p++) {
        int64_t step = db_int(db, -1, "SELECT step FROM snapshots WHERE run = %lld AND snap = %d",
                              (long long)run, points[p].snap);
        struct run_point pt;
        if (step < 0 || run_point_load(db, run, points[p].label, &pt) || pt.step != (uint64_t)step)
            continue;
        x.snap = points[p].snap;
        x.final_step = pt.step;
        x.final_rss = stats_rss(&pt.stats);
        x.final_system = pt.stats.system_bytes + pt.stats.mmapped_bytes;
        x.n = 0;
        if (load_chunks(&x)) {
            rc = -1;
            break;
        }
        rc = run_detectors(&x);
    }
    if (rc) {
        snprintf(err, errlen, "findings: %s", x.err);
        db_exec(db, "ROLLBACK", e2, sizeof e2);
    } else if (db_exec(db, "COMMIT", e2, sizeof e2)) {
        snprintf(err, errlen, "findings: %s", e2);
        rc = -1;
    }
    free(x.c);
    return rc;
}
