/* tracegen.c: builds event streams for the tracer tests (see tracegen.h). The random streams
 * cover every kind and every encoding path; the realistic one is what the bytes-per-event
 * figure is measured on. */
#include "tracegen.h"
#include "column_coder.h"
#include "trace_decode.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int gen_count_column_methods(const uint8_t **p, const uint8_t *end, unsigned *per_method)
{
    for (unsigned c = 0; c < WIRE_V2_COLUMNS; c++) {
        uint64_t raw;
        if (!colcode_raw_length(*p, end, &raw) || **p > 4)
            return 0;
        per_method[**p]++;
        uint8_t *out = malloc(raw ? raw : 1);
        const char *why = NULL;
        int ok = out && colcode_decode(p, end, out, raw, &why);
        free(out);
        if (!ok)
            return 0;
    }
    return 1;
}

uint64_t gen_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static unsigned below(uint64_t *s, unsigned n)
{
    return (unsigned)(gen_rand(s) % n);
}

static int allocates(unsigned kind)
{
    switch (kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_CALLOC: case TRACE_EV_REALLOC: case TRACE_EV_REALLOCARRAY:
    case TRACE_EV_MEMALIGN: case TRACE_EV_POSIX_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC:
    case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
        return 1;
    default:
        return 0;
    }
}

static struct gen_item *push(struct gen_stream *g, int type, uint32_t thread)
{
    if (g->count == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 1024;
        g->items = realloc(g->items, g->cap * sizeof *g->items);
        if (!g->items)
            abort();
    }
    struct gen_item *it = &g->items[g->count++];
    memset(it, 0, sizeof *it);
    it->type = type;
    it->thread = thread;
    return it;
}

void gen_free(struct gen_stream *g)
{
    for (size_t i = 0; i < g->count; i++) {
        free(g->items[i].frames);
        free(g->items[i].module);
    }
    free(g->items);
    memset(g, 0, sizeof *g);
}

/* ---- Random streams ---- */

#define MAX_THREADS 16
#define POOL_STACKS 40
#define LIVE 64

struct rthread {
    int started, exited;
    uint64_t live[LIVE];
    unsigned nlive;
    uint64_t last_ptr, last_time;
    uint8_t defined[POOL_STACKS + 1];
};

static uint64_t odd_value(uint64_t *s)
{
    switch (below(s, 4)) {
    case 0: return UINT64_MAX;
    case 1: return 1ull << 63;
    case 2: return gen_rand(s);
    default: return below(s, 300);
    }
}

static uint64_t new_ptr(uint64_t *s, struct rthread *t)
{
    unsigned r = below(s, 100);
    if (r < 3)
        return 0;
    if (r < 5)
        return odd_value(s);
    if (r < 30 || !t->last_ptr)
        return 0x555555550000ull + 16ull * below(s, 1 << 20);
    return t->last_ptr + 16ull * below(s, 64) - 512;
}

static void use_stack(struct gen_stream *g, uint64_t *s, struct rthread *t, uint32_t thread,
                      uint32_t id, const uint64_t (*frames)[24], const unsigned *depth)
{
    if (id == 0 || t->defined[id])
        return;
    struct gen_item *it = push(g, GEN_STACK, thread);
    it->stack_id = id;
    it->depth = depth[id];
    it->frames = malloc(TRACE_MAX_STACK_DEPTH * sizeof *it->frames);
    for (unsigned d = 0; d < TRACE_MAX_STACK_DEPTH; d++)
        it->frames[d] = frames[id][d % 24] + d / 24;
    t->defined[id] = 1;
    (void)s;
}

void gen_random_stream(struct gen_stream *g, uint64_t seed, size_t events, unsigned threads)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    struct rthread th[MAX_THREADS];
    uint64_t frames[POOL_STACKS + 1][24];
    unsigned depth[POOL_STACKS + 1];
    memset(th, 0, sizeof th);
    memset(g, 0, sizeof *g);
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    for (unsigned i = 1; i <= POOL_STACKS; i++) {
        depth[i] = below(&s, 25);
        if (i == 7)
            depth[i] = 0;
        if (i == 9)
            depth[i] = TRACE_MAX_STACK_DEPTH;
        uint64_t base = 0x400000ull + 0x1000ull * below(&s, 256);
        for (unsigned d = 0; d < 24; d++)
            frames[i][d] = d == 5 && i == 3 ? UINT64_MAX : base + below(&s, 1 << 16);
    }
    g->stacks = POOL_STACKS;
    th[0].started = 1;
    for (unsigned m = 0; m < 3; m++) {
        struct gen_item *it = push(g, GEN_MODULE, 0);
        it->module = calloc(1, sizeof *it->module);
        it->module->load_address = 0x400000ull + 0x10000000ull * m;
        it->module->size = 0x100000 + m;
        snprintf(it->module->path, sizeof it->module->path, "/usr/lib/module-%u.so", m);
        it->module->build_id_len = (uint8_t)(m == 1 ? 0 : 20);
        for (unsigned b = 0; b < it->module->build_id_len; b++)
            it->module->build_id[b] = (uint8_t)gen_rand(&s);
    }
    uint64_t seq = 1000, now = 5000;
    unsigned started = 1;
    for (size_t n = 0; n < events; n++) {
        struct trace_event ev;
        memset(&ev, 0, sizeof ev);
        uint32_t tid;
        unsigned kind;
        if (started < threads && below(&s, 20) == 0) {
            tid = started++;
            th[tid].started = 1;
            kind = TRACE_EV_THREAD_START;
        } else {
            do
                tid = below(&s, started);
            while (th[tid].exited);
            unsigned r = below(&s, 100);
            if (r < 30) kind = TRACE_EV_MALLOC;
            else if (r < 60) kind = TRACE_EV_FREE;
            else kind = 1 + below(&s, TRACE_EV_KIND_COUNT - 1);
            if (kind == TRACE_EV_THREAD_START)
                kind = TRACE_EV_SAMPLE;
            if (kind == TRACE_EV_THREAD_EXIT && (tid == 0 || n + 5 > events))
                kind = TRACE_EV_MALLOC;
        }
        struct rthread *t = &th[tid];
        ev.seq = seq++;
        now += below(&s, 5000);
        ev.time_ns = now;
        if (below(&s, 50) == 0 && t->last_time > 100)
            ev.time_ns = t->last_time - below(&s, 100);     /* backwards: generic form */
        ev.thread = tid;
        ev.kind = (uint8_t)kind;
        ev.stack_id = below(&s, 10) == 0 ? 0 : 1 + below(&s, POOL_STACKS);
        if (allocates(kind))
            ev.chunk_flags = (uint8_t)below(&s, 8);
        switch (kind) {
        case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
            ev.size = below(&s, 4) ? below(&s, 2000) : odd_value(&s);
            ev.ptr = new_ptr(&s, t);
            break;
        case TRACE_EV_CALLOC:
            ev.nmemb = below(&s, 100);
            ev.size = below(&s, 100);
            ev.ptr = new_ptr(&s, t);
            break;
        case TRACE_EV_REALLOC: case TRACE_EV_REALLOCARRAY:
            ev.old_ptr = t->nlive && below(&s, 4) ? t->live[--t->nlive] : new_ptr(&s, t);
            if (kind == TRACE_EV_REALLOCARRAY)
                ev.nmemb = below(&s, 10);
            ev.size = below(&s, 5000);
            ev.ptr = below(&s, 3) ? ev.old_ptr : new_ptr(&s, t);
            break;
        case TRACE_EV_FREE:
            if (t->nlive && below(&s, 5)) {
                unsigned i = t->nlive - 1 - below(&s, t->nlive < 10 ? t->nlive : 10);
                ev.ptr = t->live[i];
                t->live[i] = t->live[--t->nlive];
            } else {
                ev.ptr = new_ptr(&s, t);
            }
            if (below(&s, 30) == 0)
                ev.chunk_flags = 1;
            break;
        case TRACE_EV_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC: case TRACE_EV_POSIX_MEMALIGN:
            ev.alignment = 16ull << below(&s, 10);
            ev.size = below(&s, 100000);
            ev.ptr = new_ptr(&s, t);
            if (kind == TRACE_EV_POSIX_MEMALIGN)
                ev.result = ev.ptr ? 0 : 12;
            break;
        case TRACE_EV_MALLOPT:
            ev.param = -8 + (int64_t)below(&s, 10);
            ev.value = (int64_t)gen_rand(&s);
            ev.result = below(&s, 2);
            break;
        case TRACE_EV_MALLOC_TRIM:
            ev.size = below(&s, 1 << 20);
            ev.result = below(&s, 2);
            break;
        case TRACE_EV_THREAD_START:
            ev.os_tid = 1000 + below(&s, 100000);
            ev.value = below(&s, started - 1);
            ev.stack_id = 0;
            break;
        case TRACE_EV_THREAD_EXIT:
            t->exited = 1;
            break;
        case TRACE_EV_FORK:
            ev.value = 2000 + below(&s, 30000);
            break;
        case TRACE_EV_MODULE:
            ev.value = below(&s, 3);
            break;
        case TRACE_EV_SAMPLE:
            for (unsigned i = 0; i < 13; i++)
                ((uint64_t *)&ev.sample)[i] = below(&s, 3) ? below(&s, 1 << 20) : odd_value(&s);
            break;
        }
        if (allocates(kind) && ev.ptr == 0 && below(&s, 2))
            ev.err = 12;                                /* ENOMEM: generic form */
        if (below(&s, 40) == 0) {                        /* a field the kind does not use */
            switch (below(&s, 5)) {
            case 0: ev.os_tid = gen_rand(&s); break;
            case 1: ev.alignment = odd_value(&s); break;
            case 2: ev.err = -(int32_t)below(&s, 200); break;
            case 3: ev.param = INT64_MIN; break;
            default: ev.sample.keepcost = 7; break;
            }
        }
        if (allocates(kind) && ev.ptr && t->nlive < LIVE)
            t->live[t->nlive++] = ev.ptr;
        if (ev.ptr)
            t->last_ptr = ev.ptr;
        t->last_time = ev.time_ns;
        use_stack(g, &s, t, tid, ev.stack_id, (const uint64_t(*)[24])frames, depth);
        struct gen_item *it = push(g, GEN_EVENT, tid);
        it->ev = ev;
        g->events++;
    }
}

/* ---- A realistic stream ----
 * A program is a set of routines, each a fixed script of calls (allocate at a call site, free
 * something the routine allocated, free an old long-lived object, grow with realloc), each call
 * preceded by the work the script does there. The program runs routines chosen with a skewed
 * frequency, often several times in a row, as loops do. Pointers come from this process's real
 * malloc; times are the script's work plus the recorder's cost with a 10 ns clock step (as
 * measured on a TSC clocksource: 80-130 ns per call with a stack) and now and then a pause. */

#define SITES 300
#define ROUTINES 60
#define MAX_OPS 40
#define MODULES 4

enum { OP_ALLOC, OP_FREE, OP_FREE_OLD, OP_REALLOC };

struct script_op {
    unsigned type, site, ref;   /* ref: index of the routine's allocation to free/realloc */
    uint64_t work_ns;
    uint32_t stack;             /* the call path: this site called from this routine */
};

struct routine {
    struct script_op ops[MAX_OPS];
    unsigned nops;
};

struct site {
    unsigned size_kind;         /* 0 fixed, 1 two sizes, 2 ranged */
    uint64_t size, size2;
    unsigned kind;              /* malloc or calloc */
};

struct held {
    void *p;
    uint64_t ptr;
    unsigned site;
};

struct program {                /* one thread's state */
    unsigned routine, op, repeat;
    struct held mine[MAX_OPS];
    uint8_t mine_live[MAX_OPS];
    unsigned nmine;
};

void gen_realistic_stream(struct gen_stream *g, uint64_t seed, size_t events, unsigned threads)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
    struct site *sites = calloc(SITES, sizeof *sites);
    struct routine *routines = calloc(ROUTINES, sizeof *routines);
    uint64_t mod_base[MODULES] = {0x555555554000ull, 0x7ffff7c00000ull, 0x7ffff7e00000ull, 0x7ffff7f80000ull};
    memset(g, 0, sizeof *g);
    if (threads < 1)
        threads = 1;
    for (unsigned m = 0; m < MODULES; m++) {
        struct gen_item *it = push(g, GEN_MODULE, 0);
        it->module = calloc(1, sizeof *it->module);
        it->module->load_address = mod_base[m];
        it->module->size = 0x180000;
        snprintf(it->module->path, sizeof it->module->path, "/usr/lib/x86_64-linux-gnu/libexample%u.so.1", m);
        it->module->build_id_len = 20;
        for (unsigned b = 0; b < 20; b++)
            it->module->build_id[b] = (uint8_t)gen_rand(&s);
    }
    /* A call site's own frames; a stack is a site's frames, then its routine's, then a tail
     * shared by everything (main and libc's start code). */
    static uint64_t site_frames[2 * SITES][12];
    unsigned site_depth[2 * SITES];
    uint64_t common[6];
    for (unsigned i = 0; i < 6; i++)
        common[i] = mod_base[i % 2 ? 1 : 0] + 0x1000 + below(&s, 0x20000);
    for (unsigned i = 0; i < 2 * SITES; i++) {
        site_depth[i] = 2 + below(&s, 8);
        for (unsigned d = 0; d < site_depth[i]; d++)
            site_frames[i][d] = mod_base[below(&s, 3) ? 0 : 2] + 0x1000 + below(&s, 0x100000);
    }
    static const uint64_t common_sizes[] = {8, 16, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024, 4096};
    for (unsigned i = 0; i < SITES; i++) {
        struct site *st = &sites[i];
        st->size_kind = below(&s, 10) < 7 ? 0 : below(&s, 2) + 1;
        st->size = below(&s, 3) ? common_sizes[below(&s, 13)] : 1 + below(&s, 2000);
        st->size2 = st->size * (2 + below(&s, 6));
        st->kind = below(&s, 100) < 94 ? TRACE_EV_MALLOC : TRACE_EV_CALLOC;
    }
    for (unsigned r = 0; r < ROUTINES; r++) {
        struct routine *rt = &routines[r];
        unsigned nalloc = 0;
        unsigned target = 4 + below(&s, MAX_OPS - 4);
        unsigned open[MAX_OPS], nopen = 0;
        while (rt->nops < target) {
            struct script_op *op = &rt->ops[rt->nops];
            unsigned x = below(&s, 100);
            op->work_ns = (uint64_t)(30 << below(&s, 7)) + below(&s, 30);
            if (nopen && x < 40) {           /* free one of ours, mostly the newest */
                unsigned k = below(&s, 4) ? nopen - 1 : below(&s, nopen);
                op->type = OP_FREE;
                op->ref = open[k];
                op->site = SITES + below(&s, SITES);
                open[k] = open[--nopen];
            } else if (nopen && x < 45) {
                op->type = OP_REALLOC;
                op->ref = open[nopen - 1];
                op->site = below(&s, SITES);
            } else if (x < 50) {
                op->type = OP_FREE_OLD;
                op->site = SITES + below(&s, SITES);
            } else {
                op->type = OP_ALLOC;
                op->site = below(&s, 8) ? below(&s, 1 + below(&s, 60)) : below(&s, SITES);
                op->ref = nalloc++;
                open[nopen++] = op->ref;
            }
            rt->nops++;
        }
    }
    uint32_t nstacks = 0;
    for (unsigned r = 0; r < ROUTINES; r++)
        nstacks += routines[r].nops;
    uint64_t (*stack_frames)[24] = calloc(nstacks + 1, sizeof *stack_frames);
    unsigned *stack_depth = calloc(nstacks + 1, sizeof *stack_depth);
    uint32_t next_stack = 1;
    for (unsigned r = 0; r < ROUTINES; r++) {
        uint64_t routine_frames[4];
        unsigned rdepth = 1 + below(&s, 4);
        for (unsigned d = 0; d < rdepth; d++)
            routine_frames[d] = mod_base[0] + 0x1000 + below(&s, 0x100000);
        for (unsigned o = 0; o < routines[r].nops; o++) {
            struct script_op *op = &routines[r].ops[o];
            uint32_t id = next_stack++;
            unsigned n = 0;
            for (unsigned d = 0; d < site_depth[op->site]; d++)
                stack_frames[id][n++] = site_frames[op->site][d];
            for (unsigned d = 0; d < rdepth; d++)
                stack_frames[id][n++] = routine_frames[d];
            for (unsigned d = 0; d < 6; d++)
                stack_frames[id][n++] = common[d];
            stack_depth[id] = n;
            op->stack = id;
        }
    }
    g->stacks = nstacks;
    struct program *prog = calloc(threads, sizeof *prog);
    for (unsigned t = 0; t < threads; t++)
        prog[t].routine = UINT32_MAX;
    uint8_t *defined = calloc((size_t)threads * (nstacks + 1), 1);
    size_t oldcap = 1 << 14, nold = 0;
    struct held *old = calloc(oldcap, sizeof *old);
    /* Threads run concurrently, each on its own clock: the next event is the pending call with
     * the earliest time, so seq order is time order. */
    uint64_t seq = 0;
    uint64_t *clock = calloc(threads, sizeof *clock);
    const struct script_op **pending = calloc(threads, sizeof *pending);
    uint64_t *pending_time = calloc(threads, sizeof *pending_time);
    for (unsigned t = 0; t < threads; t++)
        pending[t] = NULL;
    while (g->events < events) {
        for (unsigned t = 0; t < threads; t++) {
            if (pending[t])
                continue;
            struct program *pg = &prog[t];
            if (pg->routine == UINT32_MAX || pg->op == routines[pg->routine].nops) {
                /* Whatever the routine kept now lives on. */
                for (unsigned i = 0; pg->routine != UINT32_MAX && i < pg->nmine; i++)
                    if (pg->mine_live[i]) {
                        if (nold == oldcap) {
                            oldcap *= 2;
                            old = realloc(old, oldcap * sizeof *old);
                        }
                        old[nold++] = pg->mine[i];
                    }
                if (pg->repeat == 0) {
                    unsigned r = below(&s, 4) ? below(&s, 1 + below(&s, 12)) : below(&s, ROUTINES);
                    pg->routine = r;
                    pg->repeat = below(&s, 3) ? 1 + below(&s, 20) : 1;
                }
                pg->repeat--;
                pg->op = 0;
                pg->nmine = 0;
                memset(pg->mine_live, 0, sizeof pg->mine_live);
            }
            pending[t] = &routines[pg->routine].ops[pg->op++];
            clock[t] += pending[t]->work_ns + 80 + 10 * below(&s, 6) + below(&s, 2) +
                        (below(&s, 20) == 0 ? (uint64_t)1000 << below(&s, 8) : 0);
            pending_time[t] = clock[t];
        }
        uint32_t tid = 0;
        for (unsigned t = 1; t < threads; t++)
            if (pending_time[t] < pending_time[tid])
                tid = t;
        struct program *pg = &prog[tid];
        const struct script_op *op = pending[tid];
        pending[tid] = NULL;
        uint64_t now = pending_time[tid];
        struct trace_event ev;
        memset(&ev, 0, sizeof ev);
        ev.seq = seq;
        ev.thread = tid;
        uint32_t stack = op->stack;
        if (op->type == OP_FREE_OLD) {
            if (nold == 0)
                continue;
            /* Old objects die mostly in the order they were made (caches, queues). */
            size_t k = below(&s, 3) ? below(&s, nold < 8 ? (unsigned)nold : 8) : below(&s, (unsigned)nold);
            struct held h = old[k];
            memmove(&old[k], &old[k + 1], (nold - k - 1) * sizeof *old);
            nold--;
            free(h.p);
            ev.kind = TRACE_EV_FREE;
            ev.ptr = h.ptr;
        } else if (op->type == OP_FREE) {
            struct held *h = &pg->mine[op->ref];
            if (op->ref >= pg->nmine || !pg->mine_live[op->ref])
                continue;
            free(h->p);
            pg->mine_live[op->ref] = 0;
            ev.kind = TRACE_EV_FREE;
            ev.ptr = h->ptr;
        } else if (op->type == OP_REALLOC) {
            struct held *h = &pg->mine[op->ref];
            if (op->ref >= pg->nmine || !pg->mine_live[op->ref])
                continue;
            struct site *st = &sites[h->site];
            uint64_t size = st->size2 + below(&s, 64);
            void *p = realloc(h->p, size);
            ev.kind = TRACE_EV_REALLOC;
            ev.old_ptr = h->ptr;
            ev.size = size;
            ev.ptr = (uint64_t)(uintptr_t)p;
            ev.chunk_flags = TRACE_CHUNK_PREV_INUSE;
            h->p = p;
            h->ptr = ev.ptr;
        } else {
            struct site *st = &sites[op->site];
            uint64_t size = st->size_kind == 0 ? st->size
                          : st->size_kind == 1 ? (below(&s, 2) ? st->size : st->size2)
                          : st->size + below(&s, (unsigned)st->size2);
            void *p;
            ev.kind = (uint8_t)st->kind;
            if (st->kind == TRACE_EV_CALLOC) {
                ev.nmemb = 1;
                ev.size = size;
                p = calloc(1, size);
            } else {
                ev.size = size;
                p = malloc(size);
            }
            ev.ptr = (uint64_t)(uintptr_t)p;
            ev.chunk_flags = size >= 128 * 1024 ? TRACE_CHUNK_MMAPPED
                           : below(&s, 10) ? TRACE_CHUNK_PREV_INUSE : 0;
            pg->mine[op->ref] = (struct held){p, ev.ptr, op->site};
            pg->mine_live[op->ref] = 1;
            if (op->ref + 1 > pg->nmine)
                pg->nmine = op->ref + 1;
        }
        ev.time_ns = now;
        ev.stack_id = stack;
        uint8_t *def = &defined[(size_t)tid * (nstacks + 1) + stack];
        if (!*def) {
            struct gen_item *it = push(g, GEN_STACK, tid);
            it->stack_id = stack;
            it->depth = stack_depth[stack];
            it->frames = malloc(sizeof stack_frames[stack]);
            memcpy(it->frames, stack_frames[stack], sizeof stack_frames[stack]);
            *def = 1;
        }
        struct gen_item *it = push(g, GEN_EVENT, tid);
        it->ev = ev;
        g->events++;
        seq++;
    }
    for (unsigned t = 0; t < threads; t++)
        for (unsigned i = 0; i < prog[t].nmine; i++)
            if (prog[t].mine_live[i])
                free(prog[t].mine[i].p);
    for (size_t i = 0; i < nold; i++)
        free(old[i].p);
    free(old);
    free(clock);
    free(pending);
    free(pending_time);
    free(prog);
    free(defined);
    free(routines);
    free(sites);
    free(stack_frames);
    free(stack_depth);
}

/* ---- Writing and comparing ---- */

uint64_t gen_write(const struct gen_stream *g, const char *path, size_t block_size, uint64_t flush_every)
{
    struct trace_header h;
    char err[512];
    memset(&h, 0, sizeof h);
    h.pid = 4242;
    h.ppid = 1;
    h.start_time_ns = 1700000000123456789ull;
    h.heap_start = 0x555555559000ull;
    h.page_size = 4096;
    h.cpu_count = 2;
    h.stacks = 1;
    h.stack_depth = 64;
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    snprintf(h.exe, sizeof h.exe, "/usr/bin/example");
    h.argv = (char *)"example\n--flag";
    h.malloc_env = (char *)"MALLOC_ARENA_MAX=2";
    h.first_seq = 0;
    for (size_t i = 0; i < g->count; i++)
        if (g->items[i].type == GEN_EVENT) {
            h.first_seq = g->items[i].ev.seq;
            break;
        }
    unlink(path);
    struct trace_file_writer *w = trace_file_writer_open(path, 0, &h, err, sizeof err);
    if (!w) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    trace_file_writer_set_block_size(w, block_size, flush_every);
    for (size_t i = 0; i < g->count; i++) {
        const struct gen_item *it = &g->items[i];
        int rc = it->type == GEN_EVENT ? trace_file_writer_event(w, &it->ev)
               : it->type == GEN_STACK ? trace_file_writer_stack(w, it->thread, it->stack_id, it->frames, it->depth)
               : trace_file_writer_module(w, it->thread, it->module);
        if (rc < 0)
            abort();
    }
    uint64_t bytes = 0;
    if (trace_file_writer_close(w, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    FILE *f = fopen(path, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        bytes = (uint64_t)ftell(f);
        fclose(f);
    }
    return bytes;
}

int gen_event_equal(const struct trace_event *a, const struct trace_event *b)
{
    return a->seq == b->seq && a->time_ns == b->time_ns && a->thread == b->thread &&
           a->stack_id == b->stack_id && a->kind == b->kind && a->chunk_flags == b->chunk_flags &&
           a->err == b->err && a->size == b->size && a->nmemb == b->nmemb &&
           a->alignment == b->alignment && a->old_ptr == b->old_ptr && a->ptr == b->ptr &&
           a->param == b->param && a->value == b->value && a->result == b->result &&
           a->os_tid == b->os_tid && !memcmp(&a->sample, &b->sample, sizeof a->sample);
}

void gen_event_diff(const struct trace_event *w, const struct trace_event *g)
{
#define D(f) if (w->f != g->f) fprintf(stderr, "seq %llu: " #f " want %llu got %llu\n", \
        (unsigned long long)w->seq, (unsigned long long)w->f, (unsigned long long)g->f)
    D(seq); D(time_ns); D(thread); D(stack_id); D(kind); D(chunk_flags); D(err); D(size);
    D(nmemb); D(alignment); D(old_ptr); D(ptr); D(param); D(value); D(result); D(os_tid);
#undef D
    if (memcmp(&w->sample, &g->sample, sizeof w->sample))
        fprintf(stderr, "seq %llu: sample differs\n", (unsigned long long)w->seq);
}

static int by_seq(const void *a, const void *b)
{
    const struct trace_event *x = *(const struct trace_event *const *)a;
    const struct trace_event *y = *(const struct trace_event *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

const struct trace_event **gen_sorted_events(const struct gen_stream *g)
{
    const struct trace_event **v = malloc((g->events + 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < g->count; i++)
        if (g->items[i].type == GEN_EVENT)
            v[n++] = &g->items[i].ev;
    qsort(v, n, sizeof *v, by_seq);
    return v;
}

static char tmpdir[256];

const char *gen_tmpdir(void)
{
    if (!tmpdir[0]) {
        /* tmpfs when there is one: the damage tests write thousands of small files. */
        const char *base = getenv("TMPDIR");
        if (!base || !*base)
            base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(tmpdir, sizeof tmpdir, "%s/fs-tracer-test-XXXXXX", base);
        if (!mkdtemp(tmpdir))
            abort();
    }
    return tmpdir;
}

void gen_tmppath(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", gen_tmpdir(), name);
}
