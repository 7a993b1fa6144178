/* snapshot.c: a chunk snapshot: every chunk of the model at one step, written to `chunks`.
 *
 * Each chunk is stored with its state, arena, bin, the bytes of it that are resident (pages
 * shared by two chunks are split at the chunk boundary, so the resident bytes of all chunks of a
 * heap add up to its RSS) and, from origins.c, the request, step and stack of the allocation that
 * returned it; a tcache chunk also names the thread whose tcache holds it. In-use chunks without a plausible live origin are stored as state 'internal'
 * (tcache structs, arena headers): they are the allocator's, not the program's.
 */
#include <stdlib.h>
#include <string.h>
#include "analyzer_int.h"
#include "db_util.h"

uint64_t snapshot_resident(struct sysmem *mem, uint64_t a, uint64_t size)
{
    const uint64_t page = SYSMEM_PAGE;
    uint64_t b = a + size, total = 0;
    if (!size || !mem)
        return 0;
    uint64_t first_full = (a + page - 1) & ~(page - 1), last_full = b & ~(page - 1);
    if (first_full >= last_full) {
        /* Within one page, or straddling one page boundary without a full page. */
        uint64_t pa = a & ~(page - 1);
        uint64_t cut = pa + page < b ? pa + page : b;
        if (sysmem_resident_pages(mem, pa, pa + page))
            total += cut - a;
        if (cut < b && sysmem_resident_pages(mem, cut, cut + page))
            total += b - cut;
        return total;
    }
    if (a < first_full && sysmem_resident_pages(mem, first_full - page, first_full))
        total += first_full - a;
    total += sysmem_resident_pages(mem, first_full, last_full) * page;
    if (last_full < b && sysmem_resident_pages(mem, last_full, last_full + page))
        total += b - last_full;
    return total;
}

/* Which thread's tcache holds each tcache chunk: (address, thread) pairs sorted by address. */
struct tcache_owner {
    uint64_t address;
    uint32_t thread;
    int32_t thread_arena;       /* the arena that thread allocates from, -1 none */
};

struct owner_list {
    struct tcache_owner *v;
    size_t n, cap;
    uint32_t thread;
    int32_t thread_arena;
};

static int collect_owner(void *ctx, enum ptmalloc_chunk_state kind, int bin, uint64_t address,
                         uint64_t size)
{
    (void)bin;
    (void)size;
    struct owner_list *l = ctx;
    if (kind != PTM_CHUNK_TCACHE)
        return 1;                /* the tcache comes first; the arena's bins are not needed */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct tcache_owner *n = realloc(l->v, cap * sizeof *n);
        if (!n)
            return 1;
        l->v = n;
        l->cap = cap;
    }
    l->v[l->n].address = address;
    l->v[l->n].thread_arena = l->thread_arena;
    l->v[l->n++].thread = l->thread;
    return 0;
}

static int owner_cmp(const void *a, const void *b)
{
    const struct tcache_owner *x = a, *y = b;
    return x->address < y->address ? -1 : x->address > y->address;
}

static const struct tcache_owner *owner_of(const struct owner_list *l, uint64_t address)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->v[mid].address < address)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->v[lo].address == address ? &l->v[lo] : NULL;
}

struct snap_ctx {
    sqlite3_stmt *ins, *ins_owner;
    struct owner_list owners;
    struct sysmem *mem;
    const struct origins *org;
    int64_t run;
    int snap;
    int failed;
};

static const char *state_name(enum ptmalloc_chunk_state s)
{
    switch (s) {
    case PTM_CHUNK_IN_USE: return "in_use";
    case PTM_CHUNK_TCACHE: return "tcache";
    case PTM_CHUNK_FASTBIN: return "fastbin";
    case PTM_CHUNK_UNSORTED: return "unsorted";
    case PTM_CHUNK_SMALL: return "small";
    case PTM_CHUNK_LARGE: return "large";
    case PTM_CHUNK_TOP: return "top";
    case PTM_CHUNK_MMAPPED: return "mmapped";
    default: return "internal";
    }
}

static int snap_chunk(void *vctx, const struct ptmalloc_chunk *c)
{
    struct snap_ctx *x = vctx;
    sqlite3_stmt *q = x->ins;
    const struct chunk_origin *o = x->org ? chunk_map_get(&x->org->chunks, c->address) : NULL;
    const char *state = state_name(c->state);
    int in_use = c->state == PTM_CHUNK_IN_USE || c->state == PTM_CHUNK_MMAPPED;
    if (in_use) {
        uint64_t header = c->state == PTM_CHUNK_MMAPPED ? 16 : 8;
        if (!o || o->freed || !o->step || (uint64_t)o->request + header > c->size) {
            if (c->state == PTM_CHUNK_IN_USE)
                state = "internal";
            o = NULL;
        }
    }
    sqlite3_bind_int64(q, 1, x->run);
    sqlite3_bind_int(q, 2, x->snap);
    sqlite3_bind_int64(q, 3, (int64_t)c->address);
    sqlite3_bind_int64(q, 4, (int64_t)c->size);
    sqlite3_bind_text(q, 5, state, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 6, (int)c->arena);
    if (c->bin >= 0)
        sqlite3_bind_int(q, 7, c->bin);
    else
        sqlite3_bind_null(q, 7);
    sqlite3_bind_int64(q, 8, (int64_t)snapshot_resident(x->mem, c->address, c->size));
    if (o && in_use)
        sqlite3_bind_int64(q, 9, o->request);
    else
        sqlite3_bind_null(q, 9);
    if (o) {
        sqlite3_bind_int64(q, 10, (int64_t)o->step);
        if (o->stack)
            sqlite3_bind_int64(q, 11, o->stack);
        else
            sqlite3_bind_null(q, 11);
    } else {
        sqlite3_bind_null(q, 10);
        sqlite3_bind_null(q, 11);
    }
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    const struct tcache_owner *owner =
        c->state == PTM_CHUNK_TCACHE ? owner_of(&x->owners, c->address) : NULL;
    if (rc == SQLITE_DONE && owner) {
        sqlite3_stmt *o2 = x->ins_owner;
        sqlite3_bind_int64(o2, 1, x->run);
        sqlite3_bind_int(o2, 2, x->snap);
        sqlite3_bind_int64(o2, 3, (int64_t)c->address);
        sqlite3_bind_int(o2, 4, (int)owner->thread);
        if (owner->thread_arena >= 0)
            sqlite3_bind_int(o2, 5, owner->thread_arena);
        else
            sqlite3_bind_null(o2, 5);
        rc = sqlite3_step(o2);
        sqlite3_reset(o2);
    }
    if (rc != SQLITE_DONE) {
        x->failed = 1;
        return 1;
    }
    return 0;
}

int snapshot_write(sqlite3 *db, int64_t run, int snap, uint64_t step, const char *reason,
                   struct ptmalloc *pm, const struct origins *org, char *err, size_t errlen)
{
    char *sql = sqlite3_mprintf("DELETE FROM chunks WHERE run = %lld AND snap = %d;"
                                "DELETE FROM tcache_owners WHERE run = %lld AND snap = %d;"
                                "INSERT OR REPLACE INTO snapshots VALUES(%lld, %d, %llu, %Q)",
                                (long long)run, snap, (long long)run, snap, (long long)run,
                                snap, (unsigned long long)step, reason);
    int rc = db_exec(db, sql, err, errlen);
    sqlite3_free(sql);
    if (rc)
        return -1;
    struct snap_ctx x = {.mem = ptmalloc_sysmem(pm), .org = org, .run = run, .snap = snap};
    for (uint32_t t = 0; org && t < org->threads; t++) {
        x.owners.thread = t;
        x.owners.thread_arena = ptmalloc_thread_arena(pm, t);
        ptmalloc_bins(pm, -1, t, collect_owner, &x.owners);
    }
    if (x.owners.n)
        qsort(x.owners.v, x.owners.n, sizeof *x.owners.v, owner_cmp);
    if (sqlite3_prepare_v2(db, "INSERT INTO chunks VALUES(?,?,?,?,?,?,?,?,?,?,?)", -1, &x.ins,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO tcache_owners VALUES(?,?,?,?,?)", -1, &x.ins_owner,
                           NULL) != SQLITE_OK) {
        sqlite3_finalize(x.ins);
        free(x.owners.v);
        snprintf(err, errlen, "chunks: %s", sqlite3_errmsg(db));
        return -1;
    }
    ptmalloc_walk(pm, -1, snap_chunk, &x);
    sqlite3_finalize(x.ins);
    sqlite3_finalize(x.ins_owner);
    free(x.owners.v);
    if (x.failed) {
        snprintf(err, errlen, "chunks: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}
