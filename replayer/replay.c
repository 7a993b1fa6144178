/* replay.c: the replay loop, a recorded trace driven through the ptmalloc model.
 *
 * The trace is read as a stream in its global sequence order (trace_reader_next); each event
 * becomes the same call on the model, made by the same thread index. A traced pointer is mapped
 * to the replayed one through ptr_map (live set only, plus tombstones for double-free detection).
 * Calls the model cannot perform the way the program did are counted and skipped, never fatal:
 *   - free of a pointer the trace never allocated (allocated before tracing started, or by a
 *     path the tracer missed): counted by call site, skipped;
 *   - a second free of a pointer already freed: counted, reported with its step, skipped;
 *   - realloc of an unknown pointer: counted, replayed as malloc of the new size (realloc(p, 0)
 *     of an unknown p: skipped, as it would only have freed p);
 *   - an allocation returning a pointer that is still live in the trace: the program's free of
 *     it went untraced; counted, and the old replayed chunk is freed just before the call (so
 *     the model may hand it out again, as glibc did), reported on the step;
 *   - anything else the model refuses (PTM_CORRUPT, where glibc would have aborted): counted,
 *     reported, skipped.
 * After each step the model's counters go to the caller's step callback and into the summary
 * (peaks of live, system and resident bytes).
 *
 * --arenas recorded first reads the trace once to infer each thread's arena (arena_pin.c) and
 * pins the threads at their first event. --verify compares each allocation's address with the
 * recorded one (verify.c); when there were divergences, a second pass replays the trace up to
 * each of the first few divergent steps to describe the model's bins just before them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "arena_pin.h"
#include "ptr_map.h"
#include "replay.h"
#include "symbolize.h"
#include "verify.h"

replay_db_hook_fn replay_db_hook;

#define MAX_SITES 4096
#define THREAD_STARTED 1
#define THREAD_PINNED 2
/* Model events after which heap + mmapped bytes may have changed. */
#define HELD_CHANGES (REPLAY_DID_SBRK_GROW | REPLAY_DID_SBRK_SHRINK | REPLAY_DID_MMAP |            \
                      REPLAY_DID_MUNMAP | REPLAY_DID_MREMAP | REPLAY_DID_HEAP_GROW |                \
                      REPLAY_DID_HEAP_SHRINK | REPLAY_DID_TRIM | REPLAY_DID_ARENA_NEW)
#define MAX_DOUBLE_FREE_REPORTS 10
#define MAX_CORRUPT_REPORTS 10

struct site_count {
    uint32_t stack_id;
    uint64_t count;
};

/* The model's totals after each step, for the step callback, kept from per-arena figures:
 * ptmalloc_stats(-1) costs O(arenas) (each arena's residency, its largest free chunk), while a
 * step changes only the arenas it touches. Those are marked during the step (mark_arena,
 * mark_chunk), their figures read again with ptmalloc_stats_arena and the totals moved by the
 * difference. Steps that may change arenas they do not name (thread exit, malloc_trim, mallopt,
 * a new arena, an allocation that failed, an mmap, munmap or mremap, which also move the global
 * mmapped figures) read everything again. tests/replayer/test_replay_stats.c compares the
 * totals with ptmalloc_stats(-1) after every step of multi-arena traces. */
#define DIRTY_MAX 8
struct step_stats {
    int active;                       /* a step callback wants statistics */
    int all;                          /* this step: read every arena again */
    unsigned ndirty;
    uint32_t dirty[DIRTY_MAX];        /* this step's arenas to read again */
    uint32_t narenas, cap;
    struct ptmalloc_stats *arena;     /* each arena's figures after the last read */
    struct ptmalloc_stats total;      /* their sums (largest_free: the largest), with the
                                         mmapped figures of the last full read */
};

struct replay {
    const struct replay_options *o;
    struct trace_reader *r;
    const struct trace_header *h;
    struct ptmalloc *pm;
    struct sysmem *mem;
    uint64_t heap_shift;              /* model heap start - recorded heap start (mod 2^64) */
    uint64_t held;                    /* system + mmapped bytes after the last step */
    int held_known;
    struct ptr_map map;
    struct verify *v;                 /* NULL unless verifying in this pass */
    const struct arena_pin *pins;     /* NULL unless --arenas recorded */
    uint8_t *thread_seen;
    uint32_t nthreads, threads_used;
    uint32_t alive;                   /* threads seen and not exited */
    /* --frees late: at most one deferred free per thread (see replay.h) */
    struct pending_free {
        int active;
        uint64_t step, val, size, lo, hi;
        struct trace_event ev;
    } *pending;
    uint32_t npending;
    unsigned did;
    uint64_t live;
    struct replay_summary *out;
    FILE *report;                     /* NULL in the details pass */
    struct site_count *sites;
    uint32_t nsites;
    uint64_t other_site_count;
    /* details pass: describe the bins before these steps */
    unsigned next_detail;
    replay_step_fn fn;
    void *ctx;
    int report_events;                /* forward model events (the main pass, not the details) */
    struct step_stats stats;          /* the totals handed to the step callback */
    double start;
    double next_progress;
    int progress_shown;
    uint64_t file_size;
};

void replay_options_default(struct replay_options *o)
{
    memset(o, 0, sizeof *o);
    o->touch = REPLAY_TOUCH_ALL;
    o->arenas = REPLAY_ARENAS_SERIAL;
    o->verify = REPLAY_VERIFY_OFF;
    o->verify_details = 10;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the totals for the step callback (struct step_stats) ---- */

static void mark_arena(struct replay *rp, int arena)
{
    struct step_stats *ss = &rp->stats;
    if (arena < 0 || ss->all)
        return;
    for (unsigned i = 0; i < ss->ndirty; i++)
        if (ss->dirty[i] == (uint32_t)arena)
            return;
    if (ss->ndirty == DIRTY_MAX)
        ss->all = 1;
    else
        ss->dirty[ss->ndirty++] = (uint32_t)arena;
}

/* The arena of the chunk at user pointer p marked (the allocator knows each chunk's arena).
 * Mmapped chunks change only the global figures, which the mmap or munmap event reads; a pointer
 * the model does not know reads everything. */
static void mark_chunk(struct replay *rp, uint64_t p)
{
    struct step_stats *ss = &rp->stats;
    if (!ss->active || ss->all || !p)
        return;
    int arena = ptmalloc_chunk_arena(rp->pm, p);
    if (arena == PTMALLOC_CHUNK_MMAPPED)
        return;
    if (arena < 0)
        ss->all = 1;
    else
        mark_arena(rp, arena);
}

static int stats_grow(struct step_stats *ss, uint32_t n)
{
    if (n <= ss->cap)
        return 0;
    uint32_t cap = ss->cap ? ss->cap : 8;
    while (cap < n)
        cap *= 2;
    struct ptmalloc_stats *a = realloc(ss->arena, cap * sizeof *a);
    if (!a)
        return -1;
    ss->arena = a;
    ss->cap = cap;
    return 0;
}

/* Every arena read again, and the global mmapped figures. */
static int stats_read_all(struct replay *rp)
{
    struct step_stats *ss = &rp->stats;
    uint32_t n = ptmalloc_arena_count(rp->pm);
    if (stats_grow(ss, n) < 0)
        return -1;
    ptmalloc_stats(rp->pm, -1, &ss->total);
    for (uint32_t a = 0; a < n; a++)
        ptmalloc_stats_arena(rp->pm, a, &ss->arena[a]);
    ss->narenas = n;
    return 0;
}

/* The marked arenas read again; the totals moved by their differences. */
static void stats_read_dirty(struct replay *rp)
{
    struct step_stats *ss = &rp->stats;
    struct ptmalloc_stats *t = &ss->total;
    int largest_dropped = 0;
    for (unsigned i = 0; i < ss->ndirty; i++) {
        uint32_t a = ss->dirty[i];
        struct ptmalloc_stats *old = &ss->arena[a], now;
        ptmalloc_stats_arena(rp->pm, a, &now);
#define MOVE(f) t->f += now.f - old->f
        MOVE(system_bytes);
        MOVE(in_use_bytes);
        MOVE(in_use_count);
        MOVE(top_bytes);
        MOVE(tcache_count);
        MOVE(tcache_bytes);
        MOVE(fastbin_count);
        MOVE(fastbin_bytes);
        MOVE(unsorted_count);
        MOVE(unsorted_bytes);
        MOVE(small_count);
        MOVE(small_bytes);
        MOVE(large_count);
        MOVE(large_bytes);
        MOVE(resident_bytes);
#undef MOVE
        if (now.largest_free >= t->largest_free)
            t->largest_free = now.largest_free;
        else if (old->largest_free == t->largest_free)
            largest_dropped = 1;   /* it may have been the largest */
        *old = now;
    }
    if (largest_dropped) {
        uint64_t m = 0;
        for (uint32_t a = 0; a < ss->narenas; a++)
            if (ss->arena[a].largest_free > m)
                m = ss->arena[a].largest_free;
        t->largest_free = m;
    }
    /* the mapped chunks' residency: all of it but the heaps' (as ptmalloc_stats has it) */
    uint64_t total = sysmem_resident_total(rp->mem) * SYSMEM_PAGE;
    t->mmapped_resident_bytes = total > t->resident_bytes ? total - t->resident_bytes : 0;
}

/* After a step: the totals up to date in rp->stats.total. */
static int stats_update(struct replay *rp)
{
    struct step_stats *ss = &rp->stats;
    for (unsigned i = 0; i < ss->ndirty && !ss->all; i++)
        ss->all = ss->dirty[i] >= ss->narenas;   /* an arena not read yet */
    if (ss->all || ss->narenas != ptmalloc_arena_count(rp->pm)) {
        if (stats_read_all(rp) < 0)
            return -1;
    } else {
        stats_read_dirty(rp);
    }
    ss->all = 0;
    ss->ndirty = 0;
    return 0;
}

static void on_model_event(void *ctx, const struct ptmalloc_event *ev)
{
    struct replay *rp = ctx;
    static const unsigned bit[] = {
        [PTM_EV_SBRK_GROW] = REPLAY_DID_SBRK_GROW,   [PTM_EV_SBRK_SHRINK] = REPLAY_DID_SBRK_SHRINK,
        [PTM_EV_MMAP] = REPLAY_DID_MMAP,             [PTM_EV_MUNMAP] = REPLAY_DID_MUNMAP,
        [PTM_EV_MREMAP] = REPLAY_DID_MREMAP,         [PTM_EV_MADVISE] = REPLAY_DID_MADVISE,
        [PTM_EV_HEAP_GROW] = REPLAY_DID_HEAP_GROW,   [PTM_EV_HEAP_SHRINK] = REPLAY_DID_HEAP_SHRINK,
        [PTM_EV_CONSOLIDATE] = REPLAY_DID_CONSOLIDATE, [PTM_EV_TRIM] = REPLAY_DID_TRIM,
        [PTM_EV_ARENA_NEW] = REPLAY_DID_ARENA_NEW,   [PTM_EV_THRESHOLD_RAISED] = REPLAY_DID_THRESHOLD,
    };
    if ((unsigned)ev->kind < sizeof bit / sizeof bit[0])
        rp->did |= bit[ev->kind];
    if (rp->stats.active) {
        struct step_stats *ss = &rp->stats;
        switch (ev->kind) {
        case PTM_EV_ARENA_NEW:
        case PTM_EV_MMAP: case PTM_EV_MUNMAP: case PTM_EV_MREMAP:
            ss->all = 1;   /* a new arena; the mmapped figures are global */
            break;
        default:
            mark_arena(rp, (int)ev->arena);
            break;
        }
    }
    if (rp->report_events && rp->o->alloc_event_fn)
        rp->o->alloc_event_fn(rp->o->alloc_event_ctx, ev);
}

/* ---- threads ---- */

static int thread_begin(struct replay *rp, uint32_t t)
{
    if (t >= rp->nthreads) {
        uint32_t n = rp->nthreads ? rp->nthreads : 16;
        while (n <= t)
            n *= 2;
        uint8_t *p = realloc(rp->thread_seen, n);
        if (!p)
            return -1;
        memset(p + rp->nthreads, 0, n - rp->nthreads);
        rp->thread_seen = p;
        struct pending_free *pf = realloc(rp->pending, n * sizeof *pf);
        if (!pf)
            return -1;
        memset(pf + rp->nthreads, 0, (n - rp->nthreads) * sizeof *pf);
        rp->pending = pf;
        rp->nthreads = n;
    }
    if (rp->thread_seen[t] & THREAD_STARTED)
        return 0;
    rp->thread_seen[t] |= THREAD_STARTED;
    rp->threads_used++;
    rp->alive++;
    if (t)
        ptmalloc_thread_start(rp->pm, t);
    return 0;
}

/* --arenas recorded: attach the thread to its recorded arena just before its first call that
 * makes glibc pick an arena (an allocation, or a free / realloc of a real pointer), as glibc
 * creates a thread's arena only then. */
static void thread_pin(struct replay *rp, const struct trace_event *ev)
{
    uint32_t t = ev->thread;
    if (!rp->pins || (rp->thread_seen[t] & THREAD_PINNED))
        return;
    if (ev->kind == TRACE_EV_THREAD_START || ev->kind == TRACE_EV_THREAD_EXIT ||
        ev->kind == TRACE_EV_MALLOPT || ev->kind == TRACE_EV_MALLOC_TRIM ||
        ev->kind == TRACE_EV_FORK || (ev->kind == TRACE_EV_FREE && !ev->ptr))
        return;
    rp->thread_seen[t] |= THREAD_PINNED;
    if (t < rp->pins->threads && rp->pins->thread_arena[t] >= 0)
        ptmalloc_thread_set_arena(rp->pm, t, (uint32_t)rp->pins->thread_arena[t]);
}

/* ---- call sites of unknown frees ---- */

static void count_site(struct replay *rp, uint32_t stack_id)
{
    for (uint32_t i = 0; i < rp->nsites; i++)
        if (rp->sites[i].stack_id == stack_id) {
            rp->sites[i].count++;
            return;
        }
    if (rp->nsites < MAX_SITES) {
        if (!rp->sites)
            rp->sites = calloc(MAX_SITES, sizeof *rp->sites);
        if (rp->sites) {
            rp->sites[rp->nsites].stack_id = stack_id;
            rp->sites[rp->nsites++].count = 1;
            return;
        }
    }
    rp->other_site_count++;
}

static int by_count_desc(const void *a, const void *b)
{
    const struct site_count *x = a, *y = b;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

#define SITE_FRAMES 16

/* The most frequent sites into the summary: the innermost frame outside libc, the loader and
 * the recorder, as module+offset, and with --symbolize as function and file:line too. */
static void resolve_sites(struct replay *rp)
{
    struct replay_summary *out = rp->out;
    if (!rp->nsites)
        return;
    qsort(rp->sites, rp->nsites, sizeof *rp->sites, by_count_desc);
    enum { MAX = sizeof out->unknown_free_sites / sizeof out->unknown_free_sites[0] };
    struct sym_frame (*frames)[SITE_FRAMES] = calloc(MAX, sizeof *frames);
    if (!frames)
        return;
    struct sym_frame *all[MAX * SITE_FRAMES];
    unsigned depth[MAX];
    size_t nall = 0;
    uint32_t n = rp->nsites < MAX ? rp->nsites : MAX;
    for (uint32_t i = 0; i < n; i++) {
        const uint64_t *fr;
        unsigned d = rp->sites[i].stack_id ? trace_reader_stack(rp->r, rp->sites[i].stack_id, &fr)
                                           : 0;
        depth[i] = d < SITE_FRAMES ? d : SITE_FRAMES;
        for (unsigned k = 0; k < depth[i]; k++) {
            frames[i][k].address = fr[k];
            all[nall++] = &frames[i][k];
        }
    }
    /* module+offset for all; addr2line only for the frames that name a site. */
    symbolize_modules(rp->r, all, nall);
    struct sym_frame *picked[MAX];
    unsigned pick[MAX];
    size_t npicked = 0;
    for (uint32_t i = 0; i < n; i++) {
        pick[i] = symbolize_pick(rp->r, frames[i], depth[i]);
        if (depth[i])
            picked[npicked++] = &frames[i][pick[i]];
    }
    if (rp->o->symbolize && npicked)
        symbolize_frames(rp->r, picked, npicked, 0);
    for (uint32_t i = 0; i < n; i++) {
        struct replay_site *s = &out->unknown_free_sites[i];
        memset(s, 0, sizeof *s);
        s->stack_id = rp->sites[i].stack_id;
        s->count = rp->sites[i].count;
        if (depth[i]) {
            const struct sym_frame *f = &frames[i][pick[i]];
            snprintf(s->where, sizeof s->where, "%s", f->where);
            if (rp->o->symbolize && strcmp(f->function, f->where))
                snprintf(s->function, sizeof s->function, "%s", f->function);
            if (rp->o->symbolize)
                snprintf(s->location, sizeof s->location, "%s", f->location);
        }
        out->unknown_free_site_count = i + 1;
    }
    free(frames);
}

/* ---- the calls ---- */

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static void report_corrupt(struct replay *rp, const struct trace_event *ev, uint64_t step,
                           const struct ptmalloc_result *res, struct replay_step *s)
{
    rp->out->corrupt_calls++;
    s->skipped = 1;
    if (rp->report && rp->out->corrupt_calls <= MAX_CORRUPT_REPORTS) {
        char call[96];
        verify_call_text(ev, call, sizeof call);
        fprintf(rp->report, "replay: step %" PRIu64 ": thread %u %s: the model refused it (%s); "
                            "skipped\n", step, ev->thread, call,
                res->message ? res->message : "corrupt");
    }
}

/* An allocation is about to return traced pointer ev->ptr while the map still has it live: the
 * program's free of it went untraced. The old replayed chunk is freed now, before the call, and
 * the step says so. (A realloc that returns its own input is not such a case.) */
static void untraced_free(struct replay *rp, const struct trace_event *ev, uint64_t step,
                          struct replay_step *s)
{
    if (!ev->ptr || ((ev->kind == TRACE_EV_REALLOC || ev->kind == TRACE_EV_REALLOCARRAY) &&
                     ev->ptr == ev->old_ptr))
        return;
    struct ptr_entry *e = ptr_map_find(&rp->map, ev->ptr);
    if (!e || ptr_entry_freed(e))
        return;
    uint64_t val = ptr_entry_val(&rp->map, e);
    rp->out->missed_frees++;
    rp->live -= ptr_entry_size(&rp->map, e);
    ptr_map_mark_freed(&rp->map, e, step);
    if (!val)
        return;   /* the model never had it */
    mark_chunk(rp, val);
    struct ptmalloc_result res = ptmalloc_free(rp->pm, ev->thread, val);
    if (res.status == PTM_CORRUPT) {
        int skipped = s->skipped;
        report_corrupt(rp, ev, step, &res, s);
        s->skipped = skipped;
        return;
    }
    s->implied_free_ptr = val;
    rp->did |= REPLAY_DID_UNTRACED_FREE;
}

/* Records an allocation's result: verify, map the traced pointer, model the program's writes. */
static int note_alloc(struct replay *rp, const struct trace_event *ev, uint64_t step,
                      struct ptmalloc_result res, uint64_t req, struct replay_step *s)
{
    uint32_t t = ev->thread;
    s->replayed_ptr = res.ptr;
    s->request_bytes = req;
    if (res.status == PTM_CORRUPT) {
        report_corrupt(rp, ev, step, &res, s);
        return 0;
    }
    if (res.ptr)
        mark_chunk(rp, res.ptr);
    else
        rp->stats.all = 1;   /* a failed call may have tried (and changed) several arenas */
    if (rp->v)
        s->verify = verify_alloc(rp->v, rp->pm, ev, step, res.ptr, ptmalloc_thread_arena(rp->pm, t));
    if (!ev->ptr) {
        rp->out->failed_calls++;
        if (res.ptr) {   /* the program got NULL: it holds nothing */
            ptmalloc_free(rp->pm, t, res.ptr);
            s->implied_free_ptr = res.ptr;
            rp->did |= REPLAY_DID_DISCARDED;
        }
        s->replayed_ptr = 0;
        return 0;
    }
    if (res.ptr && rp->o->touch == REPLAY_TOUCH_ALL && req)
        ptmalloc_touch(rp->pm, res.ptr, req);
    int was_live;
    if (!ptr_map_put(&rp->map, ev->ptr, res.ptr, req, &was_live, NULL, NULL))
        return -1;
    /* untraced_free() ran before the call: the pointer was not live. */
    rp->live += req;
    return 0;
}

static void do_free(struct replay *rp, const struct trace_event *ev, uint64_t step,
                    struct replay_step *s)
{
    if (!ev->ptr)
        return;   /* free(NULL) does nothing, not even start the tcache */
    struct ptr_entry *e = ptr_map_find(&rp->map, ev->ptr);
    if (!e) {
        rp->out->unknown_frees++;
        count_site(rp, ev->stack_id);
        s->skipped = 1;
        return;
    }
    if (ptr_entry_freed(e)) {
        rp->out->double_frees++;
        s->skipped = 1;
        if (rp->report && rp->out->double_frees <= MAX_DOUBLE_FREE_REPORTS)
            fprintf(rp->report, "replay: step %" PRIu64 ": thread %u: double free of 0x%" PRIx64
                                " (already freed at step %" PRIu64 "); skipped\n",
                    step, ev->thread, ev->ptr, ptr_entry_step(e));
        return;
    }
    uint64_t val = ptr_entry_val(&rp->map, e);
    s->replayed_old_ptr = val;
    if (val && rp->o->free_order == REPLAY_FREES_LATE && rp->alive > 1) {
        struct pending_free *pf = &rp->pending[ev->thread];
        pf->active = 1;
        pf->step = step;
        pf->val = val;
        pf->ev = *ev;
        uint64_t csize = sysmem_load(rp->mem, val - 8) & ~7ull;
        pf->lo = ev->ptr - 16;
        pf->hi = pf->lo + (csize ? csize : 32);
        rp->npending++;
    } else if (val) {
        mark_chunk(rp, val);
        struct ptmalloc_result res = ptmalloc_free(rp->pm, ev->thread, val);
        if (res.status == PTM_CORRUPT)
            report_corrupt(rp, ev, step, &res, s);
    }
    rp->live -= ptr_entry_size(&rp->map, e);
    ptr_map_mark_freed(&rp->map, e, step);
}

/* ---- --frees late ---- */

static void flush_one(struct replay *rp, struct pending_free *pf, struct replay_step *s)
{
    pf->active = 0;
    rp->npending--;
    mark_chunk(rp, pf->val);
    struct ptmalloc_result res = ptmalloc_free(rp->pm, pf->ev.thread, pf->val);
    if (res.status == PTM_CORRUPT) {
        int skipped = s->skipped;
        report_corrupt(rp, &pf->ev, pf->step, &res, s);
        s->skipped = skipped;
    }
}

/* Performs the pending frees that must come before ev (in their recorded order). */
static void flush_for(struct replay *rp, const struct trace_event *ev, struct replay_step *s)
{
    int all = 0;
    uint64_t lo = 0, hi = 0;
    switch (ev->kind) {
    case TRACE_EV_MODULE:
        return;
    case TRACE_EV_SAMPLE: case TRACE_EV_MALLOPT: case TRACE_EV_MALLOC_TRIM:
    case TRACE_EV_THREAD_START: case TRACE_EV_THREAD_EXIT: case TRACE_EV_FORK:
        all = 1;
        break;
    case TRACE_EV_FREE:
        break;
    default:
        if (ev->ptr) {   /* the chunk the recorded allocation occupies */
            uint64_t req = ev->size;
            if (ev->kind == TRACE_EV_CALLOC || ev->kind == TRACE_EV_REALLOCARRAY)
                req = mul_sat(ev->nmemb, ev->size);
            uint64_t span = req > (1ull << 48) ? 1ull << 48 : (req + 8 + 15) & ~15ull;
            lo = ev->ptr - 16;
            hi = lo + (span < 32 ? 32 : span);
        }
        break;
    }
    for (;;) {
        struct pending_free *first = NULL;
        for (uint32_t u = 0; u < rp->nthreads && rp->npending; u++) {
            struct pending_free *pf = &rp->pending[u];
            if (!pf->active)
                continue;
            if (all || u == ev->thread || (hi && pf->lo < hi && lo < pf->hi))
                if (!first || pf->step < first->step)
                    first = pf;
        }
        if (!first)
            return;
        flush_one(rp, first, s);
    }
}

static void flush_all(struct replay *rp, struct replay_step *s)
{
    struct trace_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = TRACE_EV_SAMPLE;
    flush_for(rp, &ev, s);
}

static int do_realloc(struct replay *rp, const struct trace_event *ev, uint64_t step,
                      struct replay_step *s)
{
    uint32_t t = ev->thread;
    int array = ev->kind == TRACE_EV_REALLOCARRAY;
    uint64_t req = array ? mul_sat(ev->nmemb, ev->size) : ev->size;
    untraced_free(rp, ev, step, s);
    struct ptr_entry *e = ev->old_ptr ? ptr_map_find(&rp->map, ev->old_ptr) : NULL;
    struct ptmalloc_result res;

    int e_live = e && !ptr_entry_freed(e);
    if (ev->old_ptr && (!e_live || !ptr_entry_val(&rp->map, e))) {
        if (!e_live)
            rp->out->unknown_reallocs++;
        if (e && !e_live && rp->report && rp->out->unknown_reallocs <= MAX_DOUBLE_FREE_REPORTS)
            fprintf(rp->report, "replay: step %" PRIu64 ": thread %u: realloc of 0x%" PRIx64
                                ", freed at step %" PRIu64 "; replayed as malloc\n",
                    step, t, ev->old_ptr, ptr_entry_step(e));
        if (!req) {
            s->skipped = 1;
            if (e_live) {
                rp->live -= ptr_entry_size(&rp->map, e);
                ptr_map_mark_freed(&rp->map, e, step);
            }
            return 0;
        }
        if (e_live) {   /* the model failed to allocate it earlier */
            rp->live -= ptr_entry_size(&rp->map, e);
            ptr_map_mark_freed(&rp->map, e, step);
        }
        res = array ? ptmalloc_reallocarray(rp->pm, t, 0, ev->nmemb, ev->size)
                    : ptmalloc_realloc(rp->pm, t, 0, ev->size);
        return note_alloc(rp, ev, step, res, req, s);
    }
    if (!ev->old_ptr) {
        res = array ? ptmalloc_reallocarray(rp->pm, t, 0, ev->nmemb, ev->size)
                    : ptmalloc_realloc(rp->pm, t, 0, ev->size);
        return note_alloc(rp, ev, step, res, req, s);
    }

    uint64_t old_val = ptr_entry_val(&rp->map, e), old_size = ptr_entry_size(&rp->map, e);
    s->replayed_old_ptr = old_val;
    mark_chunk(rp, old_val);
    res = array ? ptmalloc_reallocarray(rp->pm, t, old_val, ev->nmemb, ev->size)
                : ptmalloc_realloc(rp->pm, t, old_val, ev->size);
    s->replayed_ptr = res.ptr;
    s->request_bytes = req;
    if (res.status == PTM_CORRUPT) {
        report_corrupt(rp, ev, step, &res, s);
        return 0;
    }
    if (res.ptr)
        mark_chunk(rp, res.ptr);
    else if (req)
        rp->stats.all = 1;   /* a failed call may have tried (and changed) several arenas */
    if (!req) {   /* realloc(p, 0): freed, NULL returned */
        if (rp->v && ev->ptr)
            s->verify = verify_alloc(rp->v, rp->pm, ev, step, res.ptr, ptmalloc_thread_arena(rp->pm, t));
        rp->live -= old_size;
        ptr_map_mark_freed(&rp->map, e, step);
        return 0;
    }
    if (rp->v)
        s->verify = verify_alloc(rp->v, rp->pm, ev, step, res.ptr, ptmalloc_thread_arena(rp->pm, t));
    if (!ev->ptr) {
        /* The real realloc failed and the program keeps its old block. */
        rp->out->failed_calls++;
        if (res.ptr && ptr_map_set_val(&rp->map, e, res.ptr) < 0)
            return -1;
        return 0;
    }
    if (!res.ptr) {
        /* The model failed where glibc did not: the program now calls the block ev->ptr, the
         * model still has it at old_val. */
        res.ptr = old_val;
        req = old_size;
    } else if (rp->o->touch == REPLAY_TOUCH_ALL && req > old_size) {
        ptmalloc_touch(rp->pm, res.ptr + old_size, req - old_size);
    }
    rp->live -= old_size;
    if (ev->ptr != ev->old_ptr)
        ptr_map_mark_freed(&rp->map, e, step);
    int was_live;
    if (!ptr_map_put(&rp->map, ev->ptr, res.ptr, req, &was_live, NULL, NULL))
        return -1;
    rp->live += req;
    return 0;
}

/* Events that are not calls: samples are compared under --verify, modules only name code. */
static int do_observation(struct replay *rp, const struct trace_event *ev, uint64_t step)
{
    if (ev->kind == TRACE_EV_SAMPLE && rp->v)
        verify_sample(rp->v, rp->pm, ev, step, rp->report);
    return 0;
}

/* Performs one event on the model. Returns -1 on host OOM. */
static int do_event(struct replay *rp, const struct trace_event *ev, uint64_t step,
                    struct replay_step *s)
{
    struct ptmalloc *pm = rp->pm;
    uint32_t t = ev->thread;
    struct ptmalloc_result res;
    if (ev->kind == TRACE_EV_MODULE || ev->kind == TRACE_EV_SAMPLE)
        return do_observation(rp, ev, step);
    if (thread_begin(rp, t) < 0)
        return -1;
    thread_pin(rp, ev);
    switch (ev->kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_CALLOC: case TRACE_EV_MEMALIGN:
    case TRACE_EV_POSIX_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC: case TRACE_EV_VALLOC:
    case TRACE_EV_PVALLOC:
        untraced_free(rp, ev, step, s);   /* realloc: in do_realloc */
        break;
    default:
        break;
    }
    switch (ev->kind) {
    case TRACE_EV_MALLOC:
        res = ptmalloc_malloc(pm, t, ev->size);
        return note_alloc(rp, ev, step, res, ev->size, s);
    case TRACE_EV_CALLOC:
        res = ptmalloc_calloc(pm, t, ev->nmemb, ev->size);
        return note_alloc(rp, ev, step, res, mul_sat(ev->nmemb, ev->size), s);
    case TRACE_EV_MEMALIGN:
        res = ptmalloc_memalign(pm, t, ev->alignment, ev->size);
        return note_alloc(rp, ev, step, res, ev->size, s);
    case TRACE_EV_POSIX_MEMALIGN:
        res = ptmalloc_posix_memalign(pm, t, ev->alignment, ev->size);
        return note_alloc(rp, ev, step, res, ev->size, s);
    case TRACE_EV_ALIGNED_ALLOC:
        res = ptmalloc_aligned_alloc(pm, t, ev->alignment, ev->size);
        return note_alloc(rp, ev, step, res, ev->size, s);
    case TRACE_EV_VALLOC:
        res = ptmalloc_valloc(pm, t, ev->size);
        return note_alloc(rp, ev, step, res, ev->size, s);
    case TRACE_EV_PVALLOC:
        res = ptmalloc_pvalloc(pm, t, ev->size);
        return note_alloc(rp, ev, step, res, ev->size, s);
    case TRACE_EV_REALLOC:
    case TRACE_EV_REALLOCARRAY:
        return do_realloc(rp, ev, step, s);
    case TRACE_EV_FREE:
        do_free(rp, ev, step, s);
        return 0;
    case TRACE_EV_MALLOPT:
        if (!rp->o->no_mallopt) {
            int rv = ptmalloc_mallopt(pm, t, (int)ev->param, (int)ev->value);
            if (rp->v)
                verify_result(rp->v, ev, step, rv, rp->report);
        }
        return 0;
    case TRACE_EV_MALLOC_TRIM: {
        int rv = ptmalloc_trim(pm, t, ev->size);
        if (rp->v)
            verify_result(rp->v, ev, step, rv, rp->report);
        return 0;
    }
    case TRACE_EV_THREAD_START:
        return 0;   /* thread_begin did it */
    case TRACE_EV_THREAD_EXIT:
        ptmalloc_thread_exit(pm, t);
        if (rp->alive)
            rp->alive--;
        return 0;
    default:   /* fork (the child has its own trace) */
        return 0;
    }
}

/* ---- progress ---- */

static void show_progress(struct replay *rp, uint64_t step)
{
    double t = now_seconds();
    if (t < rp->next_progress)
        return;
    rp->next_progress = t + 0.25;
    struct trace_reader_status st;
    trace_reader_status(rp->r, &st);
    double el = t - rp->start;
    char bar[41];
    uint64_t done = st.file_bytes ? st.file_bytes : st.stop_offset;
    double frac = rp->file_size && done ? (double)done / (double)rp->file_size : 0;
    if (frac > 1)
        frac = 1;
    int fill = (int)(frac * 40);
    for (int i = 0; i < 40; i++)
        bar[i] = i < fill ? '#' : ' ';
    bar[40] = 0;
    fprintf(stderr, "\r[%s] %3.0f%%  %" PRIu64 " steps  %.1fM steps/s ", bar, frac * 100, step,
            el > 0 ? (double)step / el / 1e6 : 0);
    rp->progress_shown = 1;
}

/* Before a step: the arenas it may change that the calls will not name. */
static void stats_mark_before(struct replay *rp, const struct trace_event *ev)
{
    switch (ev->kind) {
    case TRACE_EV_MODULE: case TRACE_EV_SAMPLE:
        return;
    case TRACE_EV_MALLOPT: case TRACE_EV_MALLOC_TRIM: case TRACE_EV_THREAD_START:
    case TRACE_EV_THREAD_EXIT: case TRACE_EV_FORK:
        rp->stats.all = 1;   /* every arena, or a thread's tcache going back to any */
        return;
    default:
        /* the arena the call starts in (an allocation that fails there moves on) */
        mark_arena(rp, ptmalloc_thread_arena(rp->pm, ev->thread));
        return;
    }
}

/* ---- one pass ---- */

#define LOOKAHEAD 8

/* The map slots an event will look up (always inlined: see ptr_map_prefetch). */
__attribute__((always_inline)) static inline void prefetch_event(const struct ptr_map *m, const struct trace_event *ev)
{
    if (ev->ptr)
        ptr_map_prefetch(m, ev->ptr);
    if (ev->old_ptr)
        ptr_map_prefetch(m, ev->old_ptr);
}

/* Tells the model which chunk a coming free or realloc will touch (ptmalloc_prefetch). The
 * model places chunks where glibc did, so the traced pointer moved by the heap starts' distance
 * names the replayed chunk (always for the main heap; anywhere else the hint is merely wasted,
 * and a wrong hint changes nothing) without a pointer-map lookup. */
static inline void hint_model(struct replay *rp, const struct trace_event *n)
{
    if (n->kind == TRACE_EV_FREE)
        ptmalloc_prefetch(rp->pm, n->ptr + rp->heap_shift);
    else if (n->kind == TRACE_EV_REALLOC || n->kind == TRACE_EV_REALLOCARRAY)
        ptmalloc_prefetch(rp->pm, n->old_ptr + rp->heap_shift);
}

static int setup_model(struct replay *rp, const struct ptmalloc_settings *set, char *err,
                       size_t errlen)
{
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    if (rp->h->heap_start && rp->h->heap_start < cfg.mmap_base - (1ull << 32))
        cfg.brk_start = rp->h->heap_start;
    struct sysmem *mem = sysmem_new(&cfg);
    if (!mem) {
        snprintf(err, errlen, "out of memory creating the model");
        return -1;
    }
    rp->pm = ptmalloc_new(set, mem);
    if (!rp->pm) {
        sysmem_free(mem);
        snprintf(err, errlen, "out of memory creating the model");
        return -1;
    }
    ptmalloc_set_event_hook(rp->pm, on_model_event, rp);
    rp->mem = ptmalloc_sysmem(rp->pm);
    rp->heap_shift = ptmalloc_heap_start(rp->pm) - rp->h->heap_start;
    rp->held_known = 0;
    return 0;
}

static void update_summary(struct replay *rp, struct replay_step *s)
{
    struct replay_summary *out = rp->out;
    uint64_t step = s->step;
    if (rp->live > out->peak_live_bytes) {
        out->peak_live_bytes = rp->live;
        out->peak_live_step = step;
        out->rss_at_live_peak = s->rss_bytes;
    }
    if (s->held_bytes > out->peak_system_bytes) {
        out->peak_system_bytes = s->held_bytes;
        out->peak_system_step = step;
    }
    if (s->rss_bytes > out->peak_rss_bytes) {
        out->peak_rss_bytes = s->rss_bytes;
        out->peak_rss_step = step;
        out->live_at_rss_peak = rp->live;
    }
}

/* Runs the trace through a fresh model. details: 1 for the second pass that only describes
 * the bins before the divergent steps listed in `v`. */
static int replay_pass(struct replay *rp, const struct ptmalloc_settings *set,
                       struct verify *details, char *err, size_t errlen)
{
    const struct replay_options *o = rp->o;
    struct replay_summary *out = rp->out;
    int ret = 0;

    rp->r = trace_reader_open(o->trace_path, err, errlen);
    if (!rp->r)
        return -1;
    rp->h = trace_reader_header(rp->r);
    if (setup_model(rp, set, err, errlen) < 0 || ptr_map_init(&rp->map) < 0) {
        if (rp->pm)
            snprintf(err, errlen, "out of memory");
        ret = -1;
        goto done;
    }
    rp->stats.active = rp->fn && !details;
    rp->stats.all = 1;
    rp->stats.ndirty = 0;
    rp->stats.narenas = 0;
    if (!details && rp->v)
        verify_init(rp->v, rp->h->heap_start, ptmalloc_heap_start(rp->pm), o->verify_details);

    /* Summary mode reads a few events ahead and prefetches their pointer-map slots, so that
     * the map's cache misses overlap the model's work on the events before them, and tells the
     * model what the event after next will touch (hint_model). With a step
     * callback the reader stays at the current event (it may look at the reader). */
    struct trace_event ring[LOOKAHEAD];
    unsigned depth = rp->fn || details ? 1 : LOOKAHEAD, head = 0, queued = 0;
    int at_end = 0;
    uint64_t step = 0;
    int rc = 0;
    rp->start = now_seconds();
    rp->next_progress = rp->start + 1.0;
    for (;;) {
        if (o->interrupted && *o->interrupted) {
            out->interrupted = 1;
            break;
        }
        while (queued < depth && !at_end) {
            struct trace_event *n = &ring[(head + queued) % LOOKAHEAD];
            rc = trace_reader_next(rp->r, n);
            if (rc <= 0) {
                at_end = 1;
                break;
            }
            prefetch_event(&rp->map, n);
            queued++;
        }
        if (!queued)
            break;
        const struct trace_event *ev = &ring[head];
        head = (head + 1) % LOOKAHEAD;
        queued--;
        if (queued >= 2)
            hint_model(rp, &ring[(head + 1) % LOOKAHEAD]);
        step++;
        if (details) {
            while (rp->next_detail < details->ndetails &&
                   details->details[rp->next_detail].step == step) {
                struct verify_detail *d = &details->details[rp->next_detail++];
                verify_bins_summary(rp->pm, ptmalloc_thread_arena(rp->pm, d->thread), d->thread,
                                    d->request, d->bins, sizeof d->bins);
            }
            if (rp->next_detail >= details->ndetails)
                break;
        }
        /* Every field is set below (stats only for a callback): no memset on the hot path. */
        struct replay_step s;
        s.step = step;
        s.event = ev;
        s.replayed_ptr = 0;
        s.skipped = 0;
        s.arena = -1;
        s.verify = -1;
        s.reader = rp->r;
        s.replayed_old_ptr = 0;
        s.request_bytes = 0;
        s.implied_free_ptr = 0;
        s.arena_stats = NULL;
        s.arena_stats_count = 0;
        rp->did = 0;
        if (rp->stats.active)
            stats_mark_before(rp, ev);
        if (rp->npending)
            flush_for(rp, ev, &s);
        if (do_event(rp, ev, step, &s) < 0) {
            snprintf(err, errlen, "%s: step %" PRIu64 ": out of memory", o->trace_path, step);
            ret = -1;
            break;
        }
        if (details)
            continue;
        if (ev->kind < TRACE_EV_KIND_COUNT)
            out->events_by_kind[ev->kind]++;
        s.did = rp->did;
        s.live_bytes = rp->live;
        if (rp->fn) {
            s.arena = ev->kind == TRACE_EV_MODULE || ev->kind == TRACE_EV_SAMPLE
                          ? -1 : ptmalloc_thread_arena(rp->pm, ev->thread);
            mark_arena(rp, s.arena);
            if (stats_update(rp) < 0) {
                snprintf(err, errlen, "%s: step %" PRIu64 ": out of memory", o->trace_path, step);
                ret = -1;
                break;
            }
            s.stats = rp->stats.total;
            s.arena_stats = rp->stats.arena;
            s.arena_stats_count = rp->stats.narenas;
            rp->held = s.stats.system_bytes + s.stats.mmapped_bytes;
        } else if (!rp->held_known || (rp->did & HELD_CHANGES)) {
            /* Held memory moves only with a system event: read the counters then. */
            struct ptmalloc_stats st;
            ptmalloc_stats(rp->pm, -1, &st);
            rp->held = st.system_bytes + st.mmapped_bytes;
        }
        rp->held_known = 1;
        s.held_bytes = rp->held;
        s.rss_bytes = sysmem_resident_total(rp->mem) * SYSMEM_PAGE;
        update_summary(rp, &s);
        out->steps = step;
        if (rp->fn && rp->fn(rp->ctx, rp->pm, &s)) {
            out->until_step = step;
            break;
        }
        if (o->until_step && step >= o->until_step) {
            out->until_step = step;
            break;
        }
        if (o->progress && !(step & 0x3fff))
            show_progress(rp, step);
    }
    if (rp->npending && ret == 0) {
        struct replay_step last;
        memset(&last, 0, sizeof last);
        flush_all(rp, &last);
    }
    if (details || ret < 0)
        goto done;

    out->events = step;
    trace_reader_status(rp->r, &out->reader);
    out->completed = rc == 0 && out->reader.clean_end && !out->interrupted && !out->until_step;
    out->final_live_bytes = rp->live;
    if (out->peak_live_bytes)
        out->frag_at_live_peak = ((double)out->rss_at_live_peak - (double)out->peak_live_bytes) /
                                 (double)out->peak_live_bytes;
    if (out->live_at_rss_peak)
        out->frag_at_rss_peak = ((double)out->peak_rss_bytes - (double)out->live_at_rss_peak) /
                                (double)out->live_at_rss_peak;
    if (o->end_fn)
        o->end_fn(o->end_ctx, rp->pm);
    {
        struct ptmalloc_stats st;
        ptmalloc_stats(rp->pm, -1, &st);
        out->final_system_bytes = st.system_bytes + st.mmapped_bytes;
        out->final_rss_bytes = st.resident_bytes + st.mmapped_resident_bytes;
        out->arenas = ptmalloc_arena_count(rp->pm);
    }
    out->threads = rp->threads_used;
    out->max_host_bytes = ptr_map_bytes(&rp->map);
    resolve_sites(rp);
    if (rp->progress_shown)
        fprintf(stderr, "\r%*s\r", 90, "");
done:
    ptr_map_free(&rp->map);
    if (rp->pm)
        ptmalloc_destroy(rp->pm);
    rp->pm = NULL;
    trace_reader_close(rp->r);
    rp->r = NULL;
    return ret;
}

static void print_details(FILE *f, const struct verify *v)
{
    if (!v->ndetails)
        return;
    fprintf(f, "verify: the first %u divergences:\n", v->ndetails);
    for (unsigned i = 0; i < v->ndetails; i++) {
        fprintf(f, "  %s\n", v->details[i].line);
        if (v->details[i].bins[0])
            fprintf(f, "    bins before: %s\n", v->details[i].bins);
    }
}

int replay_run(const struct replay_options *o, replay_step_fn fn, void *ctx,
               struct replay_summary *out, FILE *report, char *err, size_t errlen)
{
    struct replay rp;
    struct arena_pin pins;
    struct verify v;
    struct ptmalloc_settings set;
    int ret = 0;

    memset(out, 0, sizeof *out);
    memset(&rp, 0, sizeof rp);
    memset(&pins, 0, sizeof pins);
    memset(&v, 0, sizeof v);
    if (!o->trace_path) {
        snprintf(err, errlen, "no trace given");
        return -1;
    }
    double t0 = now_seconds();

    /* The header first, for the settings. */
    struct trace_reader *r = trace_reader_open(o->trace_path, err, errlen);
    if (!r)
        return -1;
    if (replay_build_settings(trace_reader_header(r), o, &set, err, errlen) < 0) {
        trace_reader_close(r);
        return -1;
    }
    trace_reader_close(r);
    out->settings = set;

    if (o->arenas == REPLAY_ARENAS_RECORDED) {
        if (arena_pin_infer(o->trace_path, &pins, err, errlen) < 0)
            return -1;
        rp.pins = &pins;
    }
    struct stat sb;
    rp.file_size = stat(o->trace_path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    rp.o = o;
    rp.out = out;
    rp.report = report;
    rp.fn = fn;
    rp.ctx = ctx;
    rp.report_events = 1;
    rp.v = o->verify != REPLAY_VERIFY_OFF ? &v : NULL;

    ret = replay_pass(&rp, &set, NULL, err, errlen);
    free(rp.sites);
    rp.sites = NULL;
    rp.nsites = 0;

    if (ret == 0 && rp.v) {
        out->verified = v.verified;
        out->matched = v.matched;
        out->result_mismatches = v.result_mismatches;
        out->first_divergence_step = v.first_divergence_step;
        out->samples = v.samples;
        out->samples_mallinfo_matched = v.mallinfo_matched;
        out->samples_brk_matched = v.brk_matched;
        out->residency_diff_max_pages = v.residency_diff_max;
        out->residency_diff_mean_pages = v.samples ? v.residency_diff_sum / (double)v.samples : 0;
        for (unsigned i = 0; i < v.ndetails && i < 16; i++)
            out->first_divergence_detail_steps[i] = v.details[i].step;
        if (v.ndetails && report && !out->interrupted) {
            /* Second pass: the bins just before each described divergence. */
            struct replay_summary scratch;
            struct replay rp2;
            memset(&scratch, 0, sizeof scratch);
            memset(&rp2, 0, sizeof rp2);
            rp2.o = o;
            rp2.out = &scratch;
            rp2.pins = rp.pins;
            char e2[256];
            if (replay_pass(&rp2, &set, &v, e2, sizeof e2) < 0)
                fprintf(report, "verify: could not describe the bins: %s\n", e2);
            free(rp2.thread_seen);
            free(rp2.pending);
            free(rp2.sites);
        }
        if (report)
            print_details(report, &v);
    }
    free(rp.thread_seen);
    free(rp.pending);
    free(rp.stats.arena);
    verify_free(&v);
    arena_pin_free(&pins);
    out->seconds = now_seconds() - t0;
    return ret;
}
