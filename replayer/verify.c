/* verify.c: --verify, replayed addresses against recorded ones.
 *
 * Addresses differ between the real run and the model only by where the kernel put things, so
 * both sides are normalised before they are compared:
 *   - main-heap chunks (neither mmapped nor NON_MAIN_ARENA) by their offset from the heap start
 *     (the trace header's heap_start; the model's ptmalloc_heap_start);
 *   - chunks of non-main heaps by their offset inside their 64 MiB aligned heap, and by which
 *     heap: heaps are paired in order of first appearance (the first time a recorded heap and a
 *     replayed heap show up in the same step they become a pair; a pointer in a paired heap must
 *     come with its partner);
 *   - mmapped chunks by their offset inside their page (the user pointer is the mapping + 0x10
 *     unless aligned further), in order: the n-th mmapped chunk is compared with the n-th.
 * The replayed chunk's flags are read from its header in the simulated space.
 *
 * Samples of the real process (TRACE_EV_SAMPLE) are compared too: mallinfo2 must be equal field
 * for field, the break offset must be equal, and heap residency (mincore over the break area)
 * is compared with the model's page residency, which depends on the --touch model: only the
 * difference is reported.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "verify.h"

#define HEAP_ALIGN (64ull << 20)
#define MAX_SAMPLE_REPORTS 5

void verify_init(struct verify *v, uint64_t recorded_heap_start, uint64_t replayed_heap_start,
                 unsigned details_max)
{
    memset(v, 0, sizeof *v);
    v->recorded_heap_start = recorded_heap_start;
    v->replayed_heap_start = replayed_heap_start;
    v->details_max = details_max > VERIFY_MAX_DETAILS ? VERIFY_MAX_DETAILS : details_max;
}

void verify_free(struct verify *v)
{
    free(v->heaps);
    v->heaps = NULL;
}

static unsigned replayed_flags(struct ptmalloc *pm, uint64_t ptr)
{
    if (!ptr || (ptr & 7))
        return 0;
    return (unsigned)(sysmem_load(ptmalloc_sysmem(pm), ptr - 8) & 7);
}

/* Index of the pair holding base on the given side, or -1. */
static int heap_index(const struct verify *v, int recorded, uint64_t base)
{
    for (uint32_t i = 0; i < v->nheaps; i++)
        if ((recorded ? v->heaps[i].recorded : v->heaps[i].replayed) == base)
            return (int)i;
    return -1;
}

void verify_describe(struct verify *v, struct ptmalloc *pm, int recorded, uint64_t ptr,
                     unsigned chunk_flags, char *buf, size_t len)
{
    if (!ptr) {
        snprintf(buf, len, "NULL");
        return;
    }
    unsigned fl = recorded ? chunk_flags : replayed_flags(pm, ptr);
    if (fl & TRACE_CHUNK_MMAPPED) {
        snprintf(buf, len, "mmap+0x%" PRIx64, ptr & (SYSMEM_PAGE - 1));
    } else if (fl & TRACE_CHUNK_NON_MAIN_ARENA) {
        uint64_t base = ptr & ~(HEAP_ALIGN - 1);
        int i = heap_index(v, recorded, base);
        if (i >= 0)
            snprintf(buf, len, "heap%d+0x%" PRIx64, i + 1, ptr - base);
        else
            snprintf(buf, len, "heap?+0x%" PRIx64, ptr - base);
    } else {
        uint64_t start = recorded ? v->recorded_heap_start : v->replayed_heap_start;
        if (ptr >= start)
            snprintf(buf, len, "main+0x%" PRIx64, ptr - start);
        else
            snprintf(buf, len, "main-0x%" PRIx64, start - ptr);
    }
}

void verify_call_text(const struct trace_event *ev, char *buf, size_t len)
{
    const char *name = trace_event_kind_name(ev->kind);
    switch (ev->kind) {
    case TRACE_EV_CALLOC:
        snprintf(buf, len, "%s(%" PRIu64 ", %" PRIu64 ")", name, ev->nmemb, ev->size);
        break;
    case TRACE_EV_REALLOC:
        snprintf(buf, len, "%s(0x%" PRIx64 ", %" PRIu64 ")", name, ev->old_ptr, ev->size);
        break;
    case TRACE_EV_REALLOCARRAY:
        snprintf(buf, len, "%s(0x%" PRIx64 ", %" PRIu64 ", %" PRIu64 ")", name, ev->old_ptr,
                 ev->nmemb, ev->size);
        break;
    case TRACE_EV_MEMALIGN: case TRACE_EV_POSIX_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC:
        snprintf(buf, len, "%s(%" PRIu64 ", %" PRIu64 ")", name, ev->alignment, ev->size);
        break;
    case TRACE_EV_FREE:
        snprintf(buf, len, "%s(0x%" PRIx64 ")", name, ev->ptr);
        break;
    case TRACE_EV_MALLOPT:
        snprintf(buf, len, "%s(%" PRId64 ", %" PRId64 ")", name, ev->param, ev->value);
        break;
    default:
        snprintf(buf, len, "%s(%" PRIu64 ")", name, ev->size);
        break;
    }
}

/* Recorded and replayed heap bases must be paired with each other (pairing them if both new). */
static int heap_pair_ok(struct verify *v, uint64_t rbase, uint64_t mbase)
{
    int ri = heap_index(v, 1, rbase), mi = heap_index(v, 0, mbase);
    if (ri >= 0 || mi >= 0)
        return ri == mi;
    if (v->nheaps == v->heap_cap) {
        uint32_t n = v->heap_cap ? v->heap_cap * 2 : 16;
        struct verify_heap_pair *h = realloc(v->heaps, n * sizeof *h);
        if (!h)
            return 0;
        v->heaps = h;
        v->heap_cap = n;
    }
    v->heaps[v->nheaps].recorded = rbase;
    v->heaps[v->nheaps].replayed = mbase;
    v->nheaps++;
    return 1;
}

static int same_place(struct verify *v, struct ptmalloc *pm, const struct trace_event *ev,
                      uint64_t m)
{
    uint64_t r = ev->ptr;
    if (!r || !m)
        return !r && !m;
    unsigned rf = ev->chunk_flags & (TRACE_CHUNK_MMAPPED | TRACE_CHUNK_NON_MAIN_ARENA);
    unsigned mf = replayed_flags(pm, m) & (TRACE_CHUNK_MMAPPED | TRACE_CHUNK_NON_MAIN_ARENA);
    if (rf != mf)
        return 0;
    if (rf & TRACE_CHUNK_MMAPPED)
        return (r & (SYSMEM_PAGE - 1)) == (m & (SYSMEM_PAGE - 1));
    if (rf & TRACE_CHUNK_NON_MAIN_ARENA) {
        uint64_t rb = r & ~(HEAP_ALIGN - 1), mb = m & ~(HEAP_ALIGN - 1);
        return r - rb == m - mb && heap_pair_ok(v, rb, mb);
    }
    return r - v->recorded_heap_start == m - v->replayed_heap_start;
}

static uint64_t request_of(const struct trace_event *ev)
{
    if (ev->kind == TRACE_EV_CALLOC || ev->kind == TRACE_EV_REALLOCARRAY)
        return ev->nmemb * ev->size;
    return ev->size;
}

int verify_alloc(struct verify *v, struct ptmalloc *pm, const struct trace_event *ev,
                 uint64_t step, uint64_t replayed, int arena)
{
    v->verified++;
    if (same_place(v, pm, ev, replayed)) {
        v->matched++;
        return 1;
    }
    if (!v->first_divergence_step)
        v->first_divergence_step = step;
    if (v->ndetails < v->details_max) {
        struct verify_detail *d = &v->details[v->ndetails++];
        char call[96], exp[64], got[64];
        verify_call_text(ev, call, sizeof call);
        verify_describe(v, pm, 1, ev->ptr, ev->chunk_flags, exp, sizeof exp);
        verify_describe(v, pm, 0, replayed, 0, got, sizeof got);
        d->step = step;
        d->thread = ev->thread;
        d->arena = arena;
        d->request = request_of(ev);
        snprintf(d->line, sizeof d->line,
                 "step %" PRIu64 ": thread %u %s: expected %s (0x%" PRIx64 "), replayed %s (0x%"
                 PRIx64 ")", step, ev->thread, call, exp, ev->ptr, got, replayed);
    }
    return 0;
}

void verify_result(struct verify *v, const struct trace_event *ev, uint64_t step,
                   int64_t replayed, FILE *report)
{
    if (replayed == ev->result)
        return;
    v->result_mismatches++;
    if (!v->first_divergence_step)
        v->first_divergence_step = step;
    if (report && v->result_mismatches <= 10) {
        char call[96];
        verify_call_text(ev, call, sizeof call);
        fprintf(report, "verify: step %" PRIu64 ": thread %u %s returned %" PRId64
                        " in the recording, %" PRId64 " in the replay\n",
                step, ev->thread, call, ev->result, replayed);
    }
}

void verify_sample(struct verify *v, struct ptmalloc *pm, const struct trace_event *ev,
                   uint64_t step, FILE *report)
{
    const struct trace_sample *s = &ev->sample;
    struct ptmalloc_mallinfo2 mi;
    ptmalloc_mallinfo2(pm, &mi);
    struct sysmem *mem = ptmalloc_sysmem(pm);
    v->samples++;

    const uint64_t real[10] = {s->arena, s->ordblks, s->smblks, s->hblks, s->hblkhd,
                               s->usmblks, s->fsmblks, s->uordblks, s->fordblks, s->keepcost};
    const uint64_t model[10] = {mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd,
                                mi.usmblks, mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost};
    static const char *const names[10] = {"arena", "ordblks", "smblks", "hblks", "hblkhd",
                                          "usmblks", "fsmblks", "uordblks", "fordblks",
                                          "keepcost"};
    int same = 1;
    for (int i = 0; i < 10; i++)
        same &= real[i] == model[i];
    uint64_t brk = sysmem_brk_current(mem);
    int brk_same = s->brk - v->recorded_heap_start == brk - v->replayed_heap_start;
    uint64_t lo = sysmem_brk_start(mem);
    uint64_t model_pages = brk > lo ? sysmem_resident_pages(mem, lo, brk) : 0;
    int64_t d = (int64_t)model_pages - (int64_t)s->heap_resident_pages;

    if (same)
        v->mallinfo_matched++;
    if (brk_same)
        v->brk_matched++;
    if ((d < 0 ? -d : d) > (v->residency_diff_max < 0 ? -v->residency_diff_max
                                                      : v->residency_diff_max))
        v->residency_diff_max = d;
    v->residency_diff_sum += (double)d;

    if ((!same || !brk_same) && report && v->sample_reports < MAX_SAMPLE_REPORTS) {
        v->sample_reports++;
        if (!v->first_divergence_step)
            v->first_divergence_step = step;
        fprintf(report, "verify: step %" PRIu64 ": sample differs:", step);
        for (int i = 0; i < 10; i++)
            if (real[i] != model[i])
                fprintf(report, " %s real %" PRIu64 " model %" PRIu64 ";", names[i], real[i],
                        model[i]);
        if (!brk_same)
            fprintf(report, " brk real main+0x%" PRIx64 " model main+0x%" PRIx64 ";",
                    s->brk - v->recorded_heap_start, brk - v->replayed_heap_start);
        fputc('\n', report);
    } else if ((!same || !brk_same) && !v->first_divergence_step) {
        v->first_divergence_step = step;
    }
}

/* ---- the bins summary for a divergence ---- */

static void appendf(char *buf, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
    if (*n + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *n, len - *n, fmt, ap);
    va_end(ap);
    if (w > 0)
        *n = *n + (size_t)w < len ? *n + (size_t)w : len - 1;
}

struct bins_ctx {
    uint64_t nb;
    uint64_t count[PTM_CHUNK_OVERHEAD + 1], bytes[PTM_CHUNK_OVERHEAD + 1];
    uint64_t fit_count[PTM_CHUNK_OVERHEAD + 1];
    uint64_t first_fit[PTM_CHUNK_OVERHEAD + 1];
    uint64_t unsorted_first[4];
    uint64_t unsorted_size[4];
};

static int bins_cb(void *ctx, enum ptmalloc_chunk_state kind, int bin, uint64_t address,
                   uint64_t size)
{
    (void)bin;
    struct bins_ctx *b = ctx;
    if ((unsigned)kind > PTM_CHUNK_OVERHEAD)
        return 0;
    if (kind == PTM_CHUNK_UNSORTED && b->count[kind] < 4) {
        b->unsorted_first[b->count[kind]] = address;
        b->unsorted_size[b->count[kind]] = size;
    }
    b->count[kind]++;
    b->bytes[kind] += size;
    if (size == b->nb) {
        if (!b->fit_count[kind])
            b->first_fit[kind] = address;
        b->fit_count[kind]++;
    }
    return 0;
}

void verify_bins_summary(struct ptmalloc *pm, int arena, uint32_t thread, uint64_t request,
                         char *buf, size_t len)
{
    struct bins_ctx b;
    memset(&b, 0, sizeof b);
    b.nb = request + 8 + 15 < 32 ? 32 : (request + 8 + 15) & ~15ull;
    if (b.nb < 32)
        b.nb = 32;
    ptmalloc_bins(pm, arena < 0 ? 0 : arena, thread, bins_cb, &b);
    struct ptmalloc_stats st;
    ptmalloc_stats(pm, arena < 0 ? 0 : arena, &st);
    static const enum ptmalloc_chunk_state kinds[] = {PTM_CHUNK_TCACHE, PTM_CHUNK_FASTBIN,
                                                      PTM_CHUNK_UNSORTED, PTM_CHUNK_SMALL,
                                                      PTM_CHUNK_LARGE};
    size_t n = 0;
    appendf(buf, len, &n, "chunk size 0x%" PRIx64 ":", b.nb);
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        enum ptmalloc_chunk_state k = kinds[i];
        if (!b.count[k])
            continue;
        appendf(buf, len, &n, " %s %" PRIu64, ptmalloc_chunk_state_name(k), b.count[k]);
        if (b.fit_count[k])
            appendf(buf, len, &n, " (%" PRIu64 " of this size, first 0x%" PRIx64 ")",
                    b.fit_count[k], b.first_fit[k]);
        appendf(buf, len, &n, ";");
    }
    for (uint64_t i = 0; i < b.count[PTM_CHUNK_UNSORTED] && i < 4; i++)
        appendf(buf, len, &n, "%s0x%" PRIx64 "/0x%" PRIx64, i ? ", " : " unsorted head: ",
                b.unsorted_first[i], b.unsorted_size[i]);
    appendf(buf, len, &n, " top 0x%" PRIx64 " bytes", st.top_bytes);
}
