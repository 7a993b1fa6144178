/* diff_model.c: drives the model through the stream a native run recorded, and compares.
 *
 * The child ran first (native_child.c); its output lists, per op, what glibc returned and the
 * state after it, and the internal calls with the op during which they happened. Here the
 * model is fed the same stream in the same order: for op i, the internal calls tagged i (for a
 * thread exit: the exiting thread's calls, then ptmalloc_thread_exit, then the rest), then op i
 * itself, and the comparison after it. Model addresses are normalised with the runner's own
 * code (native_norm_addr) over the model's simulated memory, so both sides use one definition.
 */
#include "diff_model.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>

#include "native_child.h"
#include "ptmalloc.h"
#include "sysmem.h"

int diff_compare_rss = 1;
const char *diff_model_only_tunables;
int diff_model_skip_writes;

void diff_format_addr(char *buf, size_t len, const struct native_addr *a)
{
    switch (a->kind) {
    case NATIVE_ADDR_NULL:
        snprintf(buf, len, "NULL");
        break;
    case NATIVE_ADDR_MAIN:
        snprintf(buf, len, "main+0x%" PRIx64, a->offset);
        break;
    case NATIVE_ADDR_MMAP:
        snprintf(buf, len, "mmap#%u+0x%" PRIx64, a->region, a->offset);
        break;
    case NATIVE_ADDR_HEAP:
        snprintf(buf, len, "arena%u.heap%u+0x%" PRIx64, a->region, a->heap, a->offset);
        break;
    default:
        snprintf(buf, len, "raw 0x%" PRIx64, a->offset);
        break;
    }
}

struct model_run {
    const struct seq *s;
    const struct native_run *nr;
    struct ptmalloc *pm;
    struct sysmem *mem;
    struct native_norm norm;
    uint64_t *op_ptr;                   /* model pointer of each op's block */
    struct native_addr *op_addr;
    uint64_t *int_ptr;                  /* model pointer of each internal record's block */
    struct native_addr *int_addr;
    int32_t arena_map[NATIVE_MAX_ARENAS];   /* child arena ordinal -> model arena index */
    struct diff_result *r;
};

static uint64_t model_load(void *ctx, uint64_t addr)
{
    return sysmem_load(ctx, addr);
}

static int differ(struct model_run *m, uint64_t op, const char *fmt, ...)
{
    m->r->op = op;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->r->what, sizeof m->r->what, fmt, ap);
    va_end(ap);
    return 1;
}

static int same_addr(const struct native_addr *a, const struct native_addr *b)
{
    return a->kind == b->kind && a->region == b->region && a->heap == b->heap &&
           a->offset == b->offset;
}

static int status_errno(enum ptmalloc_status st)
{
    switch (st) {
    case PTM_ENOMEM: return ENOMEM;
    case PTM_EINVAL: return EINVAL;
    default: return 0;
    }
}

/* Builds the model's settings from the sequence's GLIBC_TUNABLES and MALLOC_* variables. */
static int model_settings(const struct seq *s, struct ptmalloc_settings *ps, char *err,
                          size_t errlen)
{
    ptmalloc_settings_default(ps);
    if (s->set.tunables[0] && ptmalloc_settings_tunables(ps, s->set.tunables, err, errlen) != 0)
        return -1;
    if (diff_model_only_tunables &&
        ptmalloc_settings_tunables(ps, diff_model_only_tunables, err, errlen) != 0)
        return -1;
    for (unsigned i = 0; i < s->set.env_count; i++) {
        char name[64];
        const char *eq = strchr(s->set.env[i], '=');
        if (!eq || (size_t)(eq - s->set.env[i]) >= sizeof name) {
            snprintf(err, errlen, "bad environment entry '%s'", s->set.env[i]);
            return -1;
        }
        memcpy(name, s->set.env[i], (size_t)(eq - s->set.env[i]));
        name[eq - s->set.env[i]] = 0;
        ptmalloc_settings_env(ps, name, eq + 1);
    }
    ps->cpu_count = (uint32_t)get_nprocs();
    return 0;
}

static uint64_t int_block_ptr(struct model_run *m, uint32_t ref, struct native_addr **addr)
{
    *addr = NULL;
    if (ref == NATIVE_REF_NULL)
        return 0;
    if (ref & NATIVE_REF_INTERNAL) {
        *addr = &m->int_addr[ref & ~NATIVE_REF_INTERNAL];
        return m->int_ptr[ref & ~NATIVE_REF_INTERNAL];
    }
    *addr = &m->op_addr[ref];
    return m->op_ptr[ref];
}

/* Performs internal record k in the model and compares its result. */
static int model_internal(struct model_run *m, uint64_t k, uint64_t op)
{
    const struct native_internal *in = &m->nr->internal[k];
    struct ptmalloc_result res = {0, PTM_OK, NULL};
    struct native_addr *old = NULL;
    uint64_t old_ptr = 0;
    if (in->ref == NATIVE_REF_UNKNOWN)
        return differ(m, op, "internal call %" PRIu64 " (%s by thread %u) names a pointer the "
                      "runner never returned", k, seq_kind_name(in->kind), in->thread);
    if (in->kind == NATIVE_OP_FREE || in->kind == NATIVE_OP_REALLOC)
        old_ptr = int_block_ptr(m, in->ref, &old);
    switch (in->kind) {
    case NATIVE_OP_MALLOC: res = ptmalloc_malloc(m->pm, in->thread, in->a); break;
    case NATIVE_OP_CALLOC: res = ptmalloc_calloc(m->pm, in->thread, in->a, in->b); break;
    case NATIVE_OP_REALLOC: res = ptmalloc_realloc(m->pm, in->thread, old_ptr, in->a); break;
    case NATIVE_OP_FREE: res = ptmalloc_free(m->pm, in->thread, old_ptr); break;
    case NATIVE_OP_MEMALIGN: res = ptmalloc_memalign(m->pm, in->thread, in->a, in->b); break;
    case NATIVE_OP_ALIGNED_ALLOC:
        res = ptmalloc_aligned_alloc(m->pm, in->thread, in->a, in->b);
        break;
    case NATIVE_OP_VALLOC: res = ptmalloc_valloc(m->pm, in->thread, in->a); break;
    case NATIVE_OP_PVALLOC: res = ptmalloc_pvalloc(m->pm, in->thread, in->a); break;
    default:
        return differ(m, op, "internal call %" PRIu64 " has unknown kind %u", k, in->kind);
    }
    if (res.status == PTM_CORRUPT)
        return differ(m, op, "internal %s by thread %u: model reports corruption: %s",
                      seq_kind_name(in->kind), in->thread, res.message ? res.message : "?");
    m->int_ptr[k] = res.ptr;
    if (in->kind == NATIVE_OP_FREE)
        return 0;
    m->int_addr[k] = native_norm_addr(&m->norm, res.ptr, old);
    if (!same_addr(&m->int_addr[k], &in->addr)) {
        char a[64], b[64];
        diff_format_addr(a, sizeof a, &in->addr);
        diff_format_addr(b, sizeof b, &m->int_addr[k]);
        return differ(m, op, "internal %s(%" PRIu64 ", %" PRIu64 ") by thread %u (libc/ld.so's "
                      "own call): native %s, model %s", seq_kind_name(in->kind), in->a, in->b,
                      in->thread, a, b);
    }
    return 0;
}

static uint64_t model_heap_rss(struct model_run *m)
{
    uint64_t lo = sysmem_brk_start(m->mem) & ~(uint64_t)(SYSMEM_PAGE - 1);
    uint64_t hi = (sysmem_brk_current(m->mem) + SYSMEM_PAGE - 1) & ~(uint64_t)(SYSMEM_PAGE - 1);
    return sysmem_resident_pages(m->mem, lo, hi) * SYSMEM_PAGE;
}

static int compare_state(struct model_run *m, uint64_t i, const char *opline)
{
    const struct native_result *nr = &m->nr->res[i];
    struct ptmalloc_mallinfo2 mi;
    ptmalloc_mallinfo2(m->pm, &mi);
    const uint64_t nat[10] = {nr->mi.arena, nr->mi.ordblks, nr->mi.smblks, nr->mi.hblks,
                              nr->mi.hblkhd, nr->mi.usmblks, nr->mi.fsmblks, nr->mi.uordblks,
                              nr->mi.fordblks, nr->mi.keepcost};
    const uint64_t mod[10] = {mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd, mi.usmblks,
                              mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost};
    static const char *names[10] = {"arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                    "fsmblks", "uordblks", "fordblks", "keepcost"};
    char buf[1024];
    size_t used = 0;
    for (int f = 0; f < 10; f++)
        if (nat[f] != mod[f])
            used += (size_t)snprintf(buf + used, used < sizeof buf ? sizeof buf - used : 0,
                                     " %s native %" PRIu64 " model %" PRIu64 ";", names[f],
                                     nat[f], mod[f]);
    if (used)
        return differ(m, i, "op %" PRIu64 " %s: mallinfo2 differs:%s", i, opline, buf);
    uint64_t brk = sysmem_brk_current(m->mem) - sysmem_brk_start(m->mem);
    if (brk != nr->brk_offset)
        return differ(m, i, "op %" PRIu64 " %s: break offset native %" PRIu64 " model %" PRIu64,
                      i, opline, nr->brk_offset, brk);
    /* The model's residency is "pages written" (by malloc or the program), which is what the
     * kernel counts as RSS: compare with smaps. mincore also counts pages that were only read
     * (realloc's copy from a never-written block maps the zero page), so it is only reported. */
    if (diff_compare_rss && nr->smaps_rss != NATIVE_NOT_SAMPLED) {
        uint64_t rss = model_heap_rss(m);
        if (rss != nr->smaps_rss)
            return differ(m, i, "op %" PRIu64 " %s: heap RSS native %" PRIu64 " (smaps [heap] "
                          "Rss; mincore %" PRIu64 ") model %" PRIu64 " (%+" PRId64 " pages)", i,
                          opline, nr->smaps_rss, nr->heap_rss, rss,
                          ((int64_t)rss - (int64_t)nr->smaps_rss) / (int64_t)SYSMEM_PAGE);
    }
    return 0;
}

/* Checks that child arena ordinal `child` and model arena `model` pair up consistently. */
static int compare_arena(struct model_run *m, uint64_t i, uint16_t thread,
                         const struct native_addr *a, const char *opline)
{
    if (a->kind != NATIVE_ADDR_MAIN && a->kind != NATIVE_ADDR_HEAP)
        return 0;
    uint32_t child = a->kind == NATIVE_ADDR_MAIN ? 0 : a->region;
    int model = ptmalloc_thread_arena(m->pm, thread);
    if (child >= NATIVE_MAX_ARENAS)
        return 0;
    if (model < 0)
        return differ(m, i, "op %" PRIu64 " %s: thread %u has no arena in the model", i, opline,
                      thread);
    if (m->arena_map[child] < 0) {
        for (uint32_t k = 0; k < NATIVE_MAX_ARENAS; k++)
            if (m->arena_map[k] == model)
                return differ(m, i, "op %" PRIu64 " %s: thread %u is in native arena %u but in "
                              "model arena %d, which matched native arena %u before", i, opline,
                              thread, child, model, k);
        m->arena_map[child] = model;
    } else if (m->arena_map[child] != model) {
        return differ(m, i, "op %" PRIu64 " %s: thread %u is in native arena %u (model arena %d)"
                      " but the model says arena %d", i, opline, thread, child,
                      m->arena_map[child], model);
    }
    return 0;
}

static void op_line(char *buf, size_t len, const struct native_op *o)
{
    char r[16];
    if (o->ref == NATIVE_REF_NULL)
        snprintf(r, sizeof r, "NULL");
    else
        snprintf(r, sizeof r, "p%u", o->ref);
    snprintf(buf, len, "[t%u] %s(a=%" PRIu64 ", b=%" PRIu64 ", ref=%s)", o->thread,
             seq_kind_name(o->kind), o->a, o->b, r);
}

static int model_op(struct model_run *m, uint64_t i)
{
    const struct native_op *o = &m->s->ops[i];
    const struct native_result *nr = &m->nr->res[i];
    struct ptmalloc_result res = {0, PTM_OK, NULL};
    int64_t ret = 0;
    char line[160];
    op_line(line, sizeof line, o);
    uint64_t old_ptr = 0;
    struct native_addr *old = NULL;
    if (o->ref != NATIVE_REF_NULL && (o->kind == NATIVE_OP_FREE || o->kind == NATIVE_OP_REALLOC ||
                                      o->kind == NATIVE_OP_REALLOCARRAY ||
                                      o->kind == NATIVE_OP_USABLE_SIZE ||
                                      o->kind == NATIVE_OP_WRITE)) {
        old_ptr = m->op_ptr[o->ref];
        old = &m->op_addr[o->ref];
    }
    uint32_t t = o->thread;
    switch (o->kind) {
    case NATIVE_OP_MALLOC: res = ptmalloc_malloc(m->pm, t, o->a); break;
    case NATIVE_OP_CALLOC: res = ptmalloc_calloc(m->pm, t, o->a, o->b); break;
    case NATIVE_OP_REALLOC: res = ptmalloc_realloc(m->pm, t, old_ptr, o->a); break;
    case NATIVE_OP_REALLOCARRAY:
        res = ptmalloc_reallocarray(m->pm, t, old_ptr, o->a, o->b);
        break;
    case NATIVE_OP_FREE: res = ptmalloc_free(m->pm, t, old_ptr); break;
    case NATIVE_OP_MEMALIGN: res = ptmalloc_memalign(m->pm, t, o->a, o->b); break;
    case NATIVE_OP_POSIX_MEMALIGN:
        res = ptmalloc_posix_memalign(m->pm, t, o->a, o->b);
        ret = status_errno(res.status);
        break;
    case NATIVE_OP_ALIGNED_ALLOC: res = ptmalloc_aligned_alloc(m->pm, t, o->a, o->b); break;
    case NATIVE_OP_VALLOC: res = ptmalloc_valloc(m->pm, t, o->a); break;
    case NATIVE_OP_PVALLOC: res = ptmalloc_pvalloc(m->pm, t, o->a); break;
    case NATIVE_OP_MALLOPT:
        ret = ptmalloc_mallopt(m->pm, t, (int)(int64_t)o->a, (int)(int64_t)o->b);
        break;
    case NATIVE_OP_MALLOC_TRIM: ret = ptmalloc_trim(m->pm, t, o->a); break;
    case NATIVE_OP_USABLE_SIZE: ret = (int64_t)ptmalloc_usable_size(m->pm, old_ptr); break;
    case NATIVE_OP_WRITE:
        if (old_ptr) {
            uint64_t len = o->b;
            if (len == NATIVE_WRITE_ALL)
                len = native_op_request_size(&m->s->ops[o->ref]) - o->a;
            if (!diff_model_skip_writes)
                ptmalloc_touch(m->pm, old_ptr + o->a, len);
            ret = (int64_t)len;
        } else {
            ret = -1;
        }
        break;
    case NATIVE_OP_THREAD_START:
        if (ptmalloc_thread_start(m->pm, t) != 0)
            return differ(m, i, "op %" PRIu64 ": model refused to start thread %u", i, t);
        break;
    case NATIVE_OP_THREAD_EXIT:
        break;                          /* performed in the internal-call ordering */
    default:
        break;
    }
    if (res.status == PTM_CORRUPT)
        return differ(m, i, "op %" PRIu64 " %s: model reports corruption (glibc would abort): %s",
                      i, line, res.message ? res.message : "?");
    if (native_op_allocates(o->kind)) {
        m->op_ptr[i] = res.ptr;
        m->op_addr[i] = native_norm_addr(&m->norm, res.ptr, old);
        if (!same_addr(&m->op_addr[i], &nr->addr)) {
            char a[64], b[64];
            diff_format_addr(a, sizeof a, &nr->addr);
            diff_format_addr(b, sizeof b, &m->op_addr[i]);
            return differ(m, i, "op %" PRIu64 " %s: address native %s, model %s", i, line, a, b);
        }
        int merr = res.ptr ? 0 : status_errno(res.status);
        if (o->kind != NATIVE_OP_POSIX_MEMALIGN && merr != nr->err)
            return differ(m, i, "op %" PRIu64 " %s: errno native %d, model %d", i, line, nr->err,
                          merr);
        /* calloc and the memalign family never take from the tcache (which may hold chunks of
         * other arenas freed by this thread), and realloc stays in the old chunk's arena: only
         * their results show the calling thread's own arena. Except when a large request
         * failed in a thread's arena (its heaps full, no mmap allowed): glibc then retries in
         * the main arena and the thread stays where it was. */
        int shows_arena = o->kind == NATIVE_OP_CALLOC || o->kind == NATIVE_OP_VALLOC ||
                          o->kind == NATIVE_OP_PVALLOC ||
                          ((o->kind == NATIVE_OP_MEMALIGN || o->kind == NATIVE_OP_ALIGNED_ALLOC ||
                            o->kind == NATIVE_OP_POSIX_MEMALIGN) && o->a > 16);
        if (native_op_request_size(o) >= (1ull << 20) && nr->addr.kind == NATIVE_ADDR_MAIN)
            shows_arena = 0;
        if (shows_arena && compare_arena(m, i, o->thread, &nr->addr, line))
            return 1;
    }
    if (ret != nr->ret)
        return differ(m, i, "op %" PRIu64 " %s: returned native %" PRId64 ", model %" PRId64, i,
                      line, nr->ret, ret);
    return compare_state(m, i, line);
}

int diff_run(const struct seq *s, struct diff_result *r, char *err, size_t errlen)
{
    struct native_run nr;
    memset(r, 0, sizeof *r);
    r->op = UINT64_MAX;
    if (native_run_seq(s, &nr, err, errlen) != 0) {
        native_run_release(&nr);
        return -1;
    }
    struct ptmalloc_settings ps;
    if (model_settings(s, &ps, err, errlen) != 0) {
        native_run_release(&nr);
        return -1;
    }
    static struct model_run m;          /* the normaliser's arena table is large */
    memset(&m, 0, sizeof m);
    m.s = s;
    m.nr = &nr;
    m.r = r;
    /* The model's break starts where the child's did: memalign with alignments above a page
     * places chunks by absolute address, and the child's break start moves with ASLR. */
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    if (nr.hdr->heap_start && nr.hdr->heap_start < cfg.mmap_base - (1ull << 32))
        cfg.brk_start = nr.hdr->heap_start;
    struct sysmem *mem = sysmem_new(&cfg);
    m.pm = mem ? ptmalloc_new(&ps, mem) : NULL;
    if (!m.pm) {
        if (mem)
            sysmem_free(mem);
        snprintf(err, errlen, "ptmalloc_new failed");
        native_run_release(&nr);
        return -1;
    }
    m.mem = ptmalloc_sysmem(m.pm);
    native_norm_init(&m.norm, ptmalloc_heap_start(m.pm), model_load, m.mem);
    uint64_t nint = nr.hdr->internal_count;
    m.op_ptr = calloc(s->n + 1, sizeof *m.op_ptr);
    m.op_addr = calloc(s->n + 1, sizeof *m.op_addr);
    m.int_ptr = calloc(nint + 1, sizeof *m.int_ptr);
    m.int_addr = calloc(nint + 1, sizeof *m.int_addr);
    for (uint32_t k = 0; k < NATIVE_MAX_ARENAS; k++)
        m.arena_map[k] = -1;
    int rc = 0;
    if (!m.op_ptr || !m.op_addr || !m.int_ptr || !m.int_addr) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
        goto out;
    }
    uint64_t k = 0;
    /* Calls made before the first op. */
    while (k < nint && nr.internal[k].at_op == NATIVE_AT_START)
        if ((rc = model_internal(&m, k++, 0)) != 0)
            goto out;
    for (uint64_t i = 0; i < s->n; i++) {
        const struct native_op *o = &s->ops[i];
        if (o->kind == NATIVE_OP_THREAD_EXIT) {
            while (k < nint && nr.internal[k].at_op == i && nr.internal[k].thread == o->thread)
                if ((rc = model_internal(&m, k++, i)) != 0)
                    goto out;
            if (ptmalloc_thread_exit(m.pm, o->thread) != 0) {
                rc = differ(&m, i, "op %" PRIu64 ": model refused thread %u's exit", i,
                            o->thread);
                goto out;
            }
        }
        while (k < nint && nr.internal[k].at_op == i)
            if ((rc = model_internal(&m, k++, i)) != 0)
                goto out;
        if ((rc = model_op(&m, i)) != 0)
            goto out;
    }
    if (k < nint) {
        rc = differ(&m, s->n, "internal call %" PRIu64 " at op %u was never replayed", k,
                    nr.internal[k].at_op);
    }
out:
    free(m.op_ptr);
    free(m.op_addr);
    free(m.int_ptr);
    free(m.int_addr);
    ptmalloc_destroy(m.pm);
    native_run_release(&nr);
    return rc;
}
