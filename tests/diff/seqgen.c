/* seqgen.c: random and scripted op sequences for the differential harness.
 *
 * The random generator keeps the set of live blocks and, at each step, picks a call with fixed
 * weights (frees get heavier as the live set grows, so the heap stays bounded). Sizes are a mix
 * of small requests (the tcache and fastbin range), values clustered around the boundaries that
 * change glibc's path (24/25, 120/128, 1008, 1024/1032/1033, 64 KiB, 128 KiB, the dynamic mmap
 * threshold's 32 MiB cap), sizes seen earlier (exact fits), and a log-uniform spread from 1 byte
 * to 64 MiB. mallopt and malloc_trim come now and then in the middle; every sequence ends by
 * freeing what is left in random order. Threaded sequences start and end threads, run ops on
 * any live thread and free blocks across threads, so arenas are created, shared and reused.
 */
#include "seqgen.h"

#include <stdlib.h>
#include <string.h>

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

/* ---- settings variants ---- */

struct variant {
    const char *name;
    const char *tunables;
    const char *env[2];
};

static const struct variant variants[] = {
    {"default", "", {NULL, NULL}},
    {"tcache_count=0", "glibc.malloc.tcache_count=0", {NULL, NULL}},
    {"mxfast=0", "glibc.malloc.mxfast=0", {NULL, NULL}},
    {"trim_threshold=4096", "glibc.malloc.trim_threshold=4096", {NULL, NULL}},
    {"mmap_threshold=65536", "glibc.malloc.mmap_threshold=65536", {NULL, NULL}},
    {"top_pad=0", "glibc.malloc.top_pad=0", {NULL, NULL}},
    {"tcache_max=64", "glibc.malloc.tcache_max=64", {NULL, NULL}},
    {"tcache_count=20,unsorted_limit=2",
     "glibc.malloc.tcache_count=20:glibc.malloc.tcache_unsorted_limit=2", {NULL, NULL}},
    {"MALLOC_TOP_PAD_,MALLOC_TRIM_THRESHOLD_", "",
     {"MALLOC_TOP_PAD_=4096", "MALLOC_TRIM_THRESHOLD_=65536"}},
    {"default", "", {NULL, NULL}},
    {"mmap_threshold,trim_threshold=1M,top_pad=64K",
     "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=1048576:"
     "glibc.malloc.top_pad=65536", {NULL, NULL}},
    {"arena_max=2", "glibc.malloc.arena_max=2", {NULL, NULL}},
    {"MALLOC_ARENA_MAX=3", "", {"MALLOC_ARENA_MAX=3", NULL}},
    {"mxfast=64,tcache_count=3", "glibc.malloc.mxfast=64:glibc.malloc.tcache_count=3",
     {NULL, NULL}},
    {"perturb=165", "glibc.malloc.perturb=165", {NULL, NULL}},
    {"mmap_max=1", "glibc.malloc.mmap_max=1", {NULL, NULL}},
    {"hugetlb=1", "glibc.malloc.hugetlb=1", {NULL, NULL}},
    {"mmap_threshold=0", "glibc.malloc.mmap_threshold=0", {NULL, NULL}},
    {"arena_test=1,arena_max=1,tcache_count=1", "glibc.malloc.arena_test=1:"
     "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=1", {NULL, NULL}},
};

unsigned seqgen_variant_count(void)
{
    return sizeof variants / sizeof variants[0];
}

const char *seqgen_variant(unsigned k, struct seq_settings *set)
{
    const struct variant *v = &variants[k % seqgen_variant_count()];
    uint64_t flags = set->flags;
    memset(set, 0, sizeof *set);
    set->flags = flags;
    strncpy(set->tunables, v->tunables, sizeof set->tunables - 1);
    for (unsigned i = 0; i < 2; i++)
        if (v->env[i])
            seq_setenv(set, v->env[i]);
    return v->name;
}

unsigned seqgen_variant_of_seed(uint64_t seed)
{
    return (unsigned)(seed % seqgen_variant_count());
}

/* ---- random sequences ---- */

#define MAX_LIVE 4096
#define GEN_THREADS 40

struct gen {
    struct rng r;
    struct seq *s;
    uint32_t live[MAX_LIVE];
    uint32_t nlive;
    uint64_t seen[64];                  /* sizes requested earlier */
    unsigned nseen;
    int writes;
    uint8_t alive[GEN_THREADS];
    uint16_t alive_list[GEN_THREADS];
    unsigned nalive;                    /* threads other than main */
    uint16_t next_thread;
    int low_threshold;                  /* an mmap threshold below 64 KiB was set */
};

static const uint64_t boundary_sizes[] = {
    1, 8, 24, 25, 40, 56, 104, 120, 121, 128, 136, 504, 1000, 1008, 1009, 1016, 1024, 1032,
    1033, 1040, 1041, 2000, 4072, 4096, 8192, 32768, 65512, 65536, 131048, 131056, 131064,
    131072, 131080, 135168, 262144, 524288, 1048576, 33554424, 33554432, 33554440,
};

static uint64_t gen_size(struct gen *g)
{
    uint64_t r = rng_below(&g->r, 100), size;
    if (r < 34) {
        size = 1 + rng_below(&g->r, 1040);
    } else if (r < 52) {
        size = boundary_sizes[rng_below(&g->r, sizeof boundary_sizes / sizeof boundary_sizes[0])];
        int64_t d = (int64_t)rng_below(&g->r, 5) - 2;
        if (rng_below(&g->r, 2) && (int64_t)size + d > 0)
            size = (uint64_t)((int64_t)size + d);
    } else if (r < 64 && g->nseen) {
        size = g->seen[rng_below(&g->r, g->nseen)];
    } else if (r < 90) {
        unsigned e = (unsigned)rng_below(&g->r, 17);        /* up to 128 KiB */
        size = (1ull << e) + rng_below(&g->r, 1ull << e);
    } else {
        unsigned e = (unsigned)rng_below(&g->r, 26);        /* up to 64 MiB */
        size = (1ull << e) + rng_below(&g->r, 1ull << e);
    }
    if (size > (64ull << 20))
        size = 64ull << 20;
    if (size == 0)
        size = 1;
    if (g->nseen < 64)
        g->seen[g->nseen++] = size;
    else
        g->seen[rng_below(&g->r, 64)] = size;
    return size;
}

/* Alignments up to a page; 8 and 16 KiB only when the caller can keep the request small.
 * (Where an mmapped chunk is aligned inside its mapping depends on the mapping's address, which
 * the kernel picks at random: the model cannot follow that, so such requests stay in the heap:
 * size + alignment well below every mmap threshold the sequences use, 64 KiB.) */
static uint64_t gen_alignment(struct gen *g, int big_ok)
{
    uint64_t r = rng_below(&g->r, 20);
    if (r == 0)
        return 24 + 8 * rng_below(&g->r, 8);              /* not a power of two */
    if (r == 1)
        return 4;                                          /* too small for posix_memalign */
    if (r < 5 && big_ok)
        return 8192ull << rng_below(&g->r, 2);
    return 1ull << rng_below(&g->r, 13);                   /* 1 .. 4 KiB */
}

static uint16_t gen_thread(struct gen *g)
{
    if (!g->nalive || rng_below(&g->r, 4) == 0)
        return 0;
    return g->alive_list[rng_below(&g->r, g->nalive)];
}

static void live_add(struct gen *g, uint32_t op)
{
    if (g->nlive < MAX_LIVE)
        g->live[g->nlive++] = op;
}

/* Removes and returns a random live block. */
static uint32_t live_take(struct gen *g)
{
    uint32_t k = (uint32_t)rng_below(&g->r, g->nlive);
    uint32_t op = g->live[k];
    g->live[k] = g->live[--g->nlive];
    return op;
}

static uint32_t live_pick(struct gen *g)
{
    return g->live[rng_below(&g->r, g->nlive)];
}

static void gen_mallopt(struct gen *g, uint16_t t)
{
    static const int64_t mxfast[] = {0, 8, 16, 24, 64, 80, 120, 128, 160, 161};
    static const int64_t sizes[] = {0, 4096, 65536, 131072, 1 << 20, 4 << 20};
    static const int64_t counts[] = {0, 1, 4, 65536};
    int64_t param, value;
    switch (rng_below(&g->r, 12)) {
    case 0: case 1:
        param = 1, value = mxfast[rng_below(&g->r, 10)];
        break;
    case 2:
        param = -1, value = sizes[rng_below(&g->r, 6)];
        break;
    case 3:
        param = -2, value = sizes[rng_below(&g->r, 6)];
        break;
    case 4: case 5:
        param = -3, value = sizes[rng_below(&g->r, 6)] + (int64_t)rng_below(&g->r, 2) * 8;
        if (value < 65536)
            g->low_threshold = 1;                          /* no more page-plus alignments */
        break;
    case 6:
        param = -4, value = counts[rng_below(&g->r, 4)];
        break;
    case 7:
        param = -8, value = (int64_t)rng_below(&g->r, 4);
        break;
    case 8:
        param = -7, value = (int64_t)rng_below(&g->r, 4);
        break;
    case 9:
        param = -6, value = rng_below(&g->r, 3) ? 0 : 0xa5;
        break;
    case 10:
        param = -5, value = 3;
        break;
    default:
        param = 42, value = 1;                             /* unknown: ignored, returns 1 */
        break;
    }
    seq_add(g->s, NATIVE_OP_MALLOPT, t, NATIVE_REF_NULL, (uint64_t)param, (uint64_t)value, 0);
}

static void gen_write(struct gen *g, uint16_t t)
{
    uint32_t b = live_pick(g);
    uint64_t size = native_op_request_size(&g->s->ops[b]);
    if (size == 0 || size == UINT64_MAX)
        return;
    uint64_t off = rng_below(&g->r, 2) ? 0 : rng_below(&g->r, size);
    uint64_t len = size - off;
    if (len > (256u << 10))
        len = 1 + rng_below(&g->r, 256u << 10);
    uint32_t k = seq_add(g->s, NATIVE_OP_WRITE, t, b, off, len, 1 + rng_below(&g->r, 255));
    if (rng_below(&g->r, 3) == 0)
        g->s->ops[k].flags |= NATIVE_OPF_SAMPLE;
}

static void gen_thread_event(struct gen *g, const struct seqgen_opts *o)
{
    int can_start = g->nalive < (unsigned)o->threads;
    if (can_start && (g->nalive == 0 || rng_below(&g->r, 2))) {
        uint16_t t = 0;
        if (g->next_thread < GEN_THREADS - 1) {
            t = ++g->next_thread;
        } else {
            for (uint16_t k = 1; k < GEN_THREADS; k++)
                if (!g->alive[k] && (t == 0 || rng_below(&g->r, 2)))
                    t = k;
        }
        if (t == 0)
            return;
        seq_add(g->s, NATIVE_OP_THREAD_START, t, NATIVE_REF_NULL, 0, 0, 0);
        g->alive[t] = 1;
        g->alive_list[g->nalive++] = t;
    } else if (g->nalive) {
        unsigned k = (unsigned)rng_below(&g->r, g->nalive);
        uint16_t t = g->alive_list[k];
        g->alive_list[k] = g->alive_list[--g->nalive];
        g->alive[t] = 0;
        seq_add(g->s, NATIVE_OP_THREAD_EXIT, t, NATIVE_REF_NULL, 0, 0, 0);
    }
}

static void gen_step(struct gen *g, const struct seqgen_opts *o)
{
    struct seq *s = g->s;
    uint16_t t = gen_thread(g);
    uint64_t free_weight = 22 + (g->nlive > 64 ? 20 : 0) + (g->nlive > 400 ? 40 : 0);
    if (!g->nlive)
        free_weight = 0;
    uint64_t w_thread = o->threads ? 4 : 0;
    uint64_t total = 100 + free_weight + w_thread;
    uint64_t r = rng_below(&g->r, total);
    if (r < w_thread) {
        gen_thread_event(g, o);
        return;
    }
    r -= w_thread;
    if (r < free_weight) {
        seq_add(s, NATIVE_OP_FREE, t, live_take(g), 0, 0, 0);
        return;
    }
    r -= free_weight;
    uint32_t k;
    if (r < 50) {
        uint64_t size = gen_size(g);
        if (rng_below(&g->r, 400) == 0)
            size = UINT64_MAX - rng_below(&g->r, 1 << 20);     /* fails: ENOMEM */
        k = seq_add(s, NATIVE_OP_MALLOC, t, NATIVE_REF_NULL, size, 0, 0);
        live_add(g, k);
    } else if (r < 56) {
        uint64_t size = gen_size(g), n = 1 + rng_below(&g->r, 8);
        if (rng_below(&g->r, 100) == 0)                       /* overflows: ENOMEM */
            k = seq_add(s, NATIVE_OP_CALLOC, t, NATIVE_REF_NULL, (UINT64_MAX / size) + 1, size, 0);
        else
            k = seq_add(s, NATIVE_OP_CALLOC, t, NATIVE_REF_NULL, n, size / n ? size / n : 1, 0);
        live_add(g, k);
    } else if (r < 67) {
        uint32_t old = (g->nlive && rng_below(&g->r, 12)) ? live_take(g) : NATIVE_REF_NULL;
        uint64_t size = gen_size(g);
        if (old != NATIVE_REF_NULL && rng_below(&g->r, 3) == 0) {
            uint64_t was = native_op_request_size(&s->ops[old]);
            if (was != UINT64_MAX)
                size = rng_below(&g->r, 2) ? was + rng_below(&g->r, 64) + 1
                                           : was / 2 + rng_below(&g->r, 16);
        }
        if (old != NATIVE_REF_NULL && rng_below(&g->r, 40) == 0)
            size = 0;                                          /* realloc(p, 0) frees */
        if (rng_below(&g->r, 6) == 0) {
            uint64_t n = 1 + rng_below(&g->r, 4);
            k = seq_add(s, NATIVE_OP_REALLOCARRAY, t, old, n, size / n, 0);
        } else {
            k = seq_add(s, NATIVE_OP_REALLOC, t, old, size, 0, 0);
        }
        if (native_op_request_size(&s->ops[k]) != 0 || old == NATIVE_REF_NULL)
            live_add(g, k);
    } else if (r < 75) {
        static const unsigned kinds[] = {NATIVE_OP_MEMALIGN, NATIVE_OP_MEMALIGN,
                                         NATIVE_OP_POSIX_MEMALIGN, NATIVE_OP_ALIGNED_ALLOC,
                                         NATIVE_OP_VALLOC, NATIVE_OP_PVALLOC};
        unsigned kind = kinds[rng_below(&g->r, 6)];
        uint64_t size = gen_size(g);
        if (kind == NATIVE_OP_VALLOC || kind == NATIVE_OP_PVALLOC) {
            k = seq_add(s, kind, t, NATIVE_REF_NULL, size, 0, 0);
        } else {
            uint64_t align = gen_alignment(g, !g->low_threshold);
            if (align > 4096 && size > 16384)
                size = 1 + rng_below(&g->r, 16384);
            k = seq_add(s, kind, t, NATIVE_REF_NULL, align, size, 0);
        }
        live_add(g, k);
    } else if (r < 82) {
        if (g->nlive)
            seq_add(s, NATIVE_OP_USABLE_SIZE, t, live_pick(g), 0, 0, 0);
    } else if (r < 89) {
        if (g->nlive && o->writes)
            gen_write(g, t);
    } else if (r < 93) {
        gen_mallopt(g, t);
    } else if (r < 97) {
        static const uint64_t pads[] = {0, 0, 4096, 65536, 1 << 20};
        seq_add(s, NATIVE_OP_MALLOC_TRIM, t, NATIVE_REF_NULL, pads[rng_below(&g->r, 5)], 0, 0);
    } else {
        seq_add(s, NATIVE_OP_SAMPLE, t, NATIVE_REF_NULL, 0, 0, 0);
    }
}

/* The mmap threshold the settings start with (UINT64_MAX when none is given). */
static uint64_t settings_mmap_threshold(const struct seq_settings *set)
{
    const char *p = strstr(set->tunables, "mmap_threshold=");
    if (p)
        return strtoull(p + strlen("mmap_threshold="), NULL, 0);
    for (unsigned i = 0; i < set->env_count; i++)
        if (strncmp(set->env[i], "MALLOC_MMAP_THRESHOLD_=", 23) == 0)
            return strtoull(set->env[i] + 23, NULL, 0);
    return UINT64_MAX;
}

void seqgen_random(struct seq *s, const struct seqgen_opts *o)
{
    static struct gen g;                /* large: keep it off the stack */
    memset(&g, 0, sizeof g);
    g.r.s = o->seed * 0x2545f4914f6cdd1dull + 1;
    g.s = s;
    g.writes = o->writes;
    g.low_threshold = settings_mmap_threshold(&s->set) < 65536;
    seq_clear(s);
    while (s->n < o->ops)
        gen_step(&g, o);
    /* Free what is left, in random order, from random threads. */
    while (g.nlive) {
        seq_add(s, NATIVE_OP_FREE, gen_thread(&g), live_take(&g), 0, 0, 0);
        if (rng_below(&g.r, 50) == 0)
            seq_add(s, NATIVE_OP_MALLOC_TRIM, gen_thread(&g), NATIVE_REF_NULL, 0, 0, 0);
    }
    while (g.nalive && rng_below(&g.r, 4)) {
        uint16_t t = g.alive_list[--g.nalive];
        seq_add(s, NATIVE_OP_THREAD_EXIT, t, NATIVE_REF_NULL, 0, 0, 0);
    }
    seq_add(s, NATIVE_OP_SAMPLE, 0, NATIVE_REF_NULL, 0, 0, 0);
}

/* ---- the 4000-alternating-block case ---- */

void seqgen_alternating(struct seq *s, uint32_t pairs, int write_blocks, int mxfast0,
                        uint32_t sample_every)
{
    seq_clear(s);
    if (mxfast0)
        seq_add(s, NATIVE_OP_MALLOPT, 0, NATIVE_REF_NULL, 1, 0, 0);
    uint32_t first = (uint32_t)s->n;
    for (uint32_t i = 0; i < pairs; i++) {
        uint32_t big = seq_add(s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 52722, 0, 0);
        if (write_blocks)
            seq_add(s, NATIVE_OP_WRITE, 0, big, 0, NATIVE_WRITE_ALL, 0x5a);
        uint32_t small = seq_add(s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 1, 0, 0);
        if (write_blocks)
            seq_add(s, NATIVE_OP_WRITE, 0, small, 0, NATIVE_WRITE_ALL, 0x5a);
    }
    seq_add(s, NATIVE_OP_SAMPLE, 0, NATIVE_REF_NULL, 0, 0, 0);
    uint32_t last = (uint32_t)s->n;
    for (uint32_t i = last; i-- > first;)
        if (s->ops[i].kind == NATIVE_OP_MALLOC)
            seq_add(s, NATIVE_OP_FREE, 0, i, 0, 0, 0);
    seq_add(s, NATIVE_OP_SAMPLE, 0, NATIVE_REF_NULL, 0, 0, 0);
    uint32_t p = seq_add(s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 2000, 0, 0);
    seq_add(s, NATIVE_OP_FREE, 0, p, 0, 0, 0);
    seq_add(s, NATIVE_OP_SAMPLE, 0, NATIVE_REF_NULL, 0, 0, 0);
    if (sample_every)
        for (uint64_t i = 0; i < s->n; i += sample_every)
            s->ops[i].flags |= NATIVE_OPF_SAMPLE;
}
