/* test_ptmalloc.c: properties of the ptmalloc model derived from glibc 2.36's malloc.c/arena.c.
 *
 * Every expected address or size here follows from the specification (request2size, the 0x290
 * tcache struct, DEFAULT_TOP_PAD 128 KiB, LIFO tcache, fastbin-to-tcache refill, the 4000-block
 * cases, trim rules, the malloc_state at heap + 0x30 of a 64 MiB-aligned heap, ...); the
 * differential harness in tests/diff checks the same model against the real glibc.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ptmalloc.h"

#define ALIGN_UP_TEST(x, a) (((x) + (a) - 1) / (a) * (a))

static struct ptmalloc *model(void (*tweak)(struct ptmalloc_settings *))
{
    struct ptmalloc_settings s;
    ptmalloc_settings_default(&s);
    s.cpu_count = 2;
    if (tweak)
        tweak(&s);
    struct ptmalloc *pm = ptmalloc_new(&s, NULL);
    assert_non_null(pm);
    return pm;
}

static uint64_t M(struct ptmalloc *pm, uint32_t t, uint64_t n)
{
    struct ptmalloc_result r = ptmalloc_malloc(pm, t, n);
    assert_int_equal(r.status, PTM_OK);
    assert_true(r.ptr != 0);
    return r.ptr;
}

static void F(struct ptmalloc *pm, uint32_t t, uint64_t p)
{
    struct ptmalloc_result r = ptmalloc_free(pm, t, p);
    assert_int_equal(r.status, PTM_OK);
}

static uint64_t brk_now(struct ptmalloc *pm) { return sysmem_brk_current(ptmalloc_sysmem(pm)); }

struct evlog {
    struct ptmalloc_event ev[256];
    int n;
};
static void log_event(void *ctx, const struct ptmalloc_event *ev)
{
    struct evlog *l = ctx;
    if (l->n < 256)
        l->ev[l->n++] = *ev;
}
static int count_events(const struct evlog *l, enum ptmalloc_event_kind k)
{
    int c = 0;
    for (int i = 0; i < l->n; i++)
        c += l->ev[i].kind == k;
    return c;
}

static void test_first_malloc(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct evlog log = {.n = 0};
    ptmalloc_set_event_hook(pm, log_event, &log);
    uint64_t h = ptmalloc_heap_start(pm);
    assert_int_equal(M(pm, 0, 1), h + 0x2a0);
    /* 656 (tcache struct) + top_pad + MINSIZE, page-rounded */
    assert_int_equal(brk_now(pm) - h, 135168);
    assert_int_equal(count_events(&log, PTM_EV_SBRK_GROW), 1);
    assert_int_equal(log.ev[0].length, 135168);
    /* the next chunk follows: 0x2a0 + 0x20 */
    assert_int_equal(M(pm, 0, 24), h + 0x2c0);
    assert_int_equal(M(pm, 0, 25), h + 0x2e0);   /* request2size(25) = 48 */
    assert_int_equal(M(pm, 0, 0), h + 0x310);
    ptmalloc_destroy(pm);
}

static void test_tcache_lifo(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    uint64_t a = M(pm, 0, 100), b = M(pm, 0, 100), c = M(pm, 0, 100);
    F(pm, 0, a);
    F(pm, 0, b);
    F(pm, 0, c);
    assert_int_equal(M(pm, 0, 100), c);
    assert_int_equal(M(pm, 0, 100), b);
    assert_int_equal(M(pm, 0, 100), a);
    /* a different size of the same tcache bin (request2size(97..104) = 112) */
    F(pm, 0, b);
    assert_int_equal(M(pm, 0, 97), b);
    ptmalloc_destroy(pm);
}

/* Ten chunks of 32 bytes freed: the first 7 fill the tcache, 3 go to the fastbin. malloc takes
 * the tcache (LIFO) first; the 8th takes the fastbin head and moves the other two into the
 * tcache (so they come back in fastbin order). */
static void test_fastbin_refill(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    uint64_t p[10];
    for (int i = 0; i < 10; i++)
        p[i] = M(pm, 0, 20);
    for (int i = 0; i < 10; i++)
        F(pm, 0, p[i]);
    struct ptmalloc_stats st;
    ptmalloc_stats(pm, -1, &st);
    assert_int_equal(st.tcache_count, 7);
    assert_int_equal(st.fastbin_count, 3);
    for (int i = 6; i >= 0; i--)
        assert_int_equal(M(pm, 0, 20), p[i]);
    /* fastbin list: p9 -> p8 -> p7 */
    assert_int_equal(M(pm, 0, 20), p[9]);
    ptmalloc_stats(pm, -1, &st);
    assert_int_equal(st.fastbin_count, 0);
    assert_int_equal(st.tcache_count, 2);
    /* p8 was put first, then p7: the tcache head is p7 */
    assert_int_equal(M(pm, 0, 20), p[7]);
    assert_int_equal(M(pm, 0, 20), p[8]);
    ptmalloc_destroy(pm);
}

static void no_tcache(struct ptmalloc_settings *s) { s->tcache_count = 0; }
static void no_fastbins(struct ptmalloc_settings *s) { s->mxfast = 0; }

/* malloc(52722), malloc(1) x 4000, free all in reverse, then malloc(2000) and free it. */
static void four_thousand(struct ptmalloc *pm, uint64_t *brk_after_frees, struct ptmalloc_stats *after)
{
    uint64_t big = M(pm, 0, 52722);
    static uint64_t p[4000];
    for (int i = 0; i < 4000; i++)
        p[i] = M(pm, 0, 1);
    for (int i = 3999; i >= 0; i--)
        F(pm, 0, p[i]);
    F(pm, 0, big);
    *brk_after_frees = brk_now(pm);
    ptmalloc_stats(pm, -1, after);
    uint64_t q = M(pm, 0, 2000);
    F(pm, 0, q);
}

static void test_4000_defaults(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct evlog log = {.n = 0};
    uint64_t brk1;
    struct ptmalloc_stats st;
    ptmalloc_set_event_hook(pm, log_event, &log);
    four_thousand(pm, &brk1, &st);
    assert_int_equal(st.fastbin_count, 3993);
    assert_int_equal(st.fastbin_bytes, 3993 * 32);
    assert_int_equal(st.tcache_count, 7);
    struct ptmalloc_mallinfo2 mi;
    ptmalloc_mallinfo2(pm, &mi);
    assert_int_equal(mi.smblks, 0);                 /* consolidated by the large malloc */
    assert_int_equal(brk_now(pm), brk1);            /* nothing trimmed */
    assert_int_equal(count_events(&log, PTM_EV_TRIM), 0);
    assert_int_equal(count_events(&log, PTM_EV_SBRK_SHRINK), 0);
    ptmalloc_destroy(pm);
}

static void test_4000_no_tcache(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(no_tcache);
    uint64_t h = ptmalloc_heap_start(pm);
    uint64_t brk1;
    struct ptmalloc_stats st;
    four_thousand(pm, &brk1, &st);
    assert_int_equal(st.fastbin_count, 4000);
    assert_int_equal(st.tcache_count, 0);
    /* everything merged into top and the break went back to top_pad above the tcache struct */
    assert_true(brk1 - h > 180000);
    assert_true(brk_now(pm) - h <= 0x290 + 131072 + 4096 + 32);
    ptmalloc_stats(pm, -1, &st);
    assert_int_equal(st.unsorted_count + st.small_count + st.large_count, 0);
    ptmalloc_destroy(pm);
}

static void test_4000_no_fastbins(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(no_fastbins);
    uint64_t brk1;
    struct ptmalloc_stats st;
    four_thousand(pm, &brk1, &st);
    assert_int_equal(st.fastbin_count, 0);
    assert_int_equal(st.tcache_count, 7);
    /* the 3993 small chunks and the big one coalesced as they were freed */
    assert_int_equal(st.unsorted_count, 1);
    assert_int_equal(st.unsorted_bytes, 52736 + 3993 * 32);
    assert_int_equal(brk_now(pm), brk1);            /* the tcache chunks pin the top: no trim */
    ptmalloc_destroy(pm);
}

/* malloc_trim(0) releases the whole free pages inside a free chunk with MADV_DONTNEED and, with
 * a top smaller than a page, leaves the break alone. */
static void test_malloc_trim_madvise(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct sysmem *m = ptmalloc_sysmem(pm);
    struct evlog log = {.n = 0};
    uint64_t a = M(pm, 0, 64 * 1024);
    M(pm, 0, 20);                                   /* guard: a never touches top */
    struct ptmalloc_stats st;
    ptmalloc_stats(pm, -1, &st);
    uint64_t fill = st.top_bytes - 2048;            /* leave a top of 2048 bytes */
    M(pm, 0, fill - 8);
    ptmalloc_stats(pm, -1, &st);
    assert_int_equal(st.top_bytes, 2048);
    ptmalloc_touch(pm, a, 64 * 1024);
    F(pm, 0, a);
    uint64_t res_before = sysmem_resident_brk(m);
    uint64_t brk_before = brk_now(pm);
    ptmalloc_set_event_hook(pm, log_event, &log);
    assert_int_equal(ptmalloc_trim(pm, 0, 0), 1);
    assert_int_equal(brk_now(pm), brk_before);
    assert_int_equal(count_events(&log, PTM_EV_MADVISE), 1);
    /* chunk a is at 0x290: its pages 1..15 are whole and free; page 0 holds the header and the
     * tcache struct, page 16 holds the next chunk */
    assert_int_equal(log.ev[0].address, ptmalloc_heap_start(pm) + 0x1000);
    assert_int_equal(log.ev[0].length, 15 * 4096);
    assert_int_equal(res_before - sysmem_resident_brk(m), 15);
    ptmalloc_destroy(pm);
}

static void test_systrim_on_free(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    uint64_t h = ptmalloc_heap_start(pm);
    uint64_t a = M(pm, 0, 100000);
    uint64_t b = M(pm, 0, 100000);
    assert_true(brk_now(pm) - h > 200000);
    F(pm, 0, b);
    F(pm, 0, a);
    /* top = everything after the tcache struct; trimmed down to top_pad (page-rounded) */
    uint64_t top_end = brk_now(pm) - h;
    assert_int_equal(top_end, ALIGN_UP_TEST(0x290 + 131072 + 33, 4096));
    ptmalloc_destroy(pm);
}

static void test_mallinfo2(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct ptmalloc_mallinfo2 mi;
    uint64_t p = M(pm, 0, 1);
    ptmalloc_mallinfo2(pm, &mi);
    assert_int_equal(mi.arena, 135168);
    assert_int_equal(mi.ordblks, 1);
    assert_int_equal(mi.uordblks, 0x290 + 0x20);
    assert_int_equal(mi.fordblks, 135168 - 0x2b0);
    assert_int_equal(mi.keepcost, 135168 - 0x2b0);
    assert_int_equal(mi.hblks, 0);
    F(pm, 0, p);                                    /* into the tcache: still "in use" */
    ptmalloc_mallinfo2(pm, &mi);
    assert_int_equal(mi.uordblks, 0x2b0);
    uint64_t big = M(pm, 0, 200000);                /* above mmap_threshold */
    ptmalloc_mallinfo2(pm, &mi);
    assert_int_equal(mi.hblks, 1);
    assert_int_equal(mi.hblkhd, 200704);            /* ALIGN_UP(200016 + 8, 4096) */
    assert_int_equal(ptmalloc_usable_size(pm, big), 200704 - 16);
    F(pm, 0, big);
    /* the dynamic threshold moved up to the freed chunk's size */
    struct ptmalloc_settings s;
    ptmalloc_current_settings(pm, &s);
    assert_int_equal(s.mmap_threshold, 200704);
    assert_int_equal(s.trim_threshold, 2 * 200704);
    ptmalloc_mallinfo2(pm, &mi);
    assert_int_equal(mi.hblks, 0);
    assert_int_equal(mi.hblkhd, 0);
    /* a fastbin chunk (tcache full) counts in smblks/fsmblks */
    uint64_t q[8];
    for (int i = 0; i < 8; i++)
        q[i] = M(pm, 0, 40);
    for (int i = 0; i < 8; i++)
        F(pm, 0, q[i]);
    ptmalloc_mallinfo2(pm, &mi);
    assert_int_equal(mi.smblks, 1);
    assert_int_equal(mi.fsmblks, 48);
    assert_int_equal(mi.uordblks + mi.fordblks, mi.arena);
    ptmalloc_destroy(pm);
}

static void test_double_free_messages(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct ptmalloc_result r;
    uint64_t a = M(pm, 0, 50);
    F(pm, 0, a);
    r = ptmalloc_free(pm, 0, a);
    assert_int_equal(r.status, PTM_CORRUPT);
    assert_string_equal(r.message, "free(): double free detected in tcache 2");
    r = ptmalloc_free(pm, 0, a + 8);
    assert_int_equal(r.status, PTM_CORRUPT);
    assert_string_equal(r.message, "free(): invalid pointer");
    r = ptmalloc_free(pm, 0, 0x1234560);
    assert_int_equal(r.status, PTM_CORRUPT);
    assert_string_equal(r.message, "free(): invalid pointer");
    r = ptmalloc_realloc(pm, 0, a, 100);
    assert_int_equal(r.status, PTM_CORRUPT);
    assert_string_equal(r.message, "realloc(): invalid pointer");
    /* the model is intact: a is handed out again */
    assert_int_equal(M(pm, 0, 50), a);

    uint64_t big = M(pm, 0, 2000);                 /* beyond the tcache */
    M(pm, 0, 20);
    F(pm, 0, big);
    r = ptmalloc_free(pm, 0, big);
    assert_int_equal(r.status, PTM_CORRUPT);
    assert_string_equal(r.message, "double free or corruption (!prev)");
    ptmalloc_destroy(pm);

    pm = model(no_tcache);
    a = M(pm, 0, 20);
    F(pm, 0, a);
    r = ptmalloc_free(pm, 0, a);
    assert_int_equal(r.status, PTM_CORRUPT);
    assert_string_equal(r.message, "double free or corruption (fasttop)");
    struct ptmalloc_stats st;
    ptmalloc_stats(pm, -1, &st);
    assert_int_equal(st.fastbin_count, 1);
    ptmalloc_destroy(pm);
}

/* calloc does not clear mmapped chunks, nor the part of a chunk that sysmalloc just added
 * to top; memory carved from the existing top or from a bin is cleared (written). */
static void test_calloc_clearing(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct sysmem *m = ptmalloc_sysmem(pm);
    M(pm, 0, 1);
    uint64_t before = sysmem_resident_total(m);
    struct ptmalloc_result r = ptmalloc_calloc(pm, 0, 1, 200000);
    assert_int_equal(r.status, PTM_OK);
    assert_int_equal(r.ptr & 0xfff, 0x10);
    assert_int_equal(sysmem_resident_total(m) - before, 1);       /* the header page */
    before = sysmem_resident_brk(m);
    r = ptmalloc_calloc(pm, 0, 1, 120000);                        /* from the existing top */
    assert_true(sysmem_resident_brk(m) - before >= 29);
    before = sysmem_resident_brk(m);
    r = ptmalloc_calloc(pm, 0, 1, 100000);                        /* top extended: fresh */
    assert_true(sysmem_resident_brk(m) - before <= 6);
    uint64_t g = M(pm, 0, 12000);
    M(pm, 0, 10);
    F(pm, 0, g);                                                  /* unsorted */
    before = sysmem_resident_brk(m);
    r = ptmalloc_calloc(pm, 0, 1, 12000);
    assert_int_equal(r.ptr, g);
    assert_true(sysmem_resident_brk(m) - before >= 1);
    r = ptmalloc_calloc(pm, 0, (uint64_t)1 << 32, (uint64_t)1 << 32);
    assert_int_equal(r.status, PTM_ENOMEM);
    assert_int_equal(r.ptr, 0);
    ptmalloc_destroy(pm);
}

static void test_realloc_paths(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    uint64_t h = ptmalloc_heap_start(pm);
    uint64_t a = M(pm, 0, 100);                     /* chunk 0x290 + ... = 0x2a0, size 112 */
    assert_int_equal(a, h + 0x2a0);
    /* grows into top in place */
    struct ptmalloc_result r = ptmalloc_realloc(pm, 0, a, 5000);
    assert_int_equal(r.ptr, a);
    uint64_t b = M(pm, 0, 100);
    /* shrink in place: the tail (>= MINSIZE) is freed */
    r = ptmalloc_realloc(pm, 0, a, 100);
    assert_int_equal(r.ptr, a);
    /* moving: a's neighbour b is in use */
    r = ptmalloc_realloc(pm, 0, b, 200000);
    assert_int_equal(r.status, PTM_OK);
    assert_true(r.ptr != b);
    assert_int_equal(r.ptr & 0xfff, 0x10);          /* mmapped */
    /* realloc(p, 0) frees */
    r = ptmalloc_realloc(pm, 0, r.ptr, 0);
    assert_int_equal(r.status, PTM_OK);
    assert_int_equal(r.ptr, 0);
    /* reallocarray overflow */
    r = ptmalloc_reallocarray(pm, 0, a, UINT64_MAX / 2, 3);
    assert_int_equal(r.status, PTM_ENOMEM);
    assert_int_equal(ptmalloc_usable_size(pm, a), 104);
    ptmalloc_destroy(pm);
}

static void test_memalign_family(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct ptmalloc_result r;
    r = ptmalloc_memalign(pm, 0, 4096, 100);
    assert_int_equal(r.status, PTM_OK);
    assert_int_equal(r.ptr % 4096, 0);
    r = ptmalloc_posix_memalign(pm, 0, 12, 100);
    assert_int_equal(r.status, PTM_EINVAL);
    r = ptmalloc_posix_memalign(pm, 0, 0, 100);
    assert_int_equal(r.status, PTM_EINVAL);
    r = ptmalloc_posix_memalign(pm, 0, 64, 100);
    assert_int_equal(r.status, PTM_OK);
    assert_int_equal(r.ptr % 64, 0);
    r = ptmalloc_memalign(pm, 0, 48, 10);           /* rounded up to 64 */
    assert_int_equal(r.ptr % 64, 0);
    r = ptmalloc_memalign(pm, 0, (uint64_t)1 << 63 | 1, 10);
    assert_int_equal(r.status, PTM_EINVAL);
    r = ptmalloc_valloc(pm, 0, 10);
    assert_int_equal(r.ptr % 4096, 0);
    /* pvalloc(4096) asks for 4097 bytes (glibc masks with -(pagesize - 1)) */
    r = ptmalloc_pvalloc(pm, 0, 4096);
    assert_int_equal(r.ptr % 4096, 0);
    assert_true(ptmalloc_usable_size(pm, r.ptr) >= 4097);
    assert_true(ptmalloc_usable_size(pm, r.ptr) < 4097 + 48);
    ptmalloc_destroy(pm);
}

static void test_mallopt(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct ptmalloc_settings s;
    assert_int_equal(ptmalloc_mallopt(pm, 0, PTM_M_MXFAST, 161), 0);
    assert_int_equal(ptmalloc_mallopt(pm, 0, PTM_M_MXFAST, -1), 0);
    assert_int_equal(ptmalloc_mallopt(pm, 0, PTM_M_MXFAST, 0), 1);
    assert_int_equal(ptmalloc_mallopt(pm, 0, PTM_M_ARENA_MAX, 0), 1);
    ptmalloc_current_settings(pm, &s);
    assert_int_equal(s.arena_max, 0);
    assert_int_equal(s.no_dyn_threshold, 0);
    assert_int_equal(ptmalloc_mallopt(pm, 0, PTM_M_TOP_PAD, 0), 1);
    ptmalloc_current_settings(pm, &s);
    assert_int_equal(s.top_pad, 0);
    assert_int_equal(s.no_dyn_threshold, 1);
    assert_int_equal(s.mxfast, 0);
    /* with top_pad 0 the first sbrk is just the tcache struct + the chunk + MINSIZE, rounded */
    uint64_t h = ptmalloc_heap_start(pm);
    M(pm, 0, 1);
    assert_int_equal(brk_now(pm) - h, 4096);
    /* fastbins off: the eighth 32-byte chunk is coalesced, not kept in a fastbin */
    uint64_t q[9];
    for (int i = 0; i < 9; i++)
        q[i] = M(pm, 0, 20);
    for (int i = 0; i < 8; i++)
        F(pm, 0, q[i]);
    struct ptmalloc_stats st;
    ptmalloc_stats(pm, -1, &st);
    assert_int_equal(st.fastbin_count, 0);
    assert_int_equal(st.unsorted_count, 1);
    ptmalloc_destroy(pm);
}

/* Thread 1's first malloc creates arena 1 on a 64 MiB-aligned heap: heap_info at the start,
 * malloc_state at +0x30, top at +0x8d0, the tcache struct there and the block at +0xb70. */
/* ptmalloc_chunk_arena: the arena of each chunk the model handed out, kept while it is free. */
static void test_chunk_arena(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    uint64_t a = M(pm, 0, 10);
    uint64_t b = M(pm, 1, 10);
    uint64_t big = M(pm, 0, 1 << 20);   /* above the mmap threshold: its own mapping */
    assert_int_equal(ptmalloc_chunk_arena(pm, a), 0);
    assert_int_equal(ptmalloc_chunk_arena(pm, b), 1);
    assert_int_equal(ptmalloc_chunk_arena(pm, big), PTMALLOC_CHUNK_MMAPPED);
    F(pm, 0, b);   /* into thread 0's tcache: still arena 1's chunk */
    assert_int_equal(ptmalloc_chunk_arena(pm, b), 1);
    assert_int_equal(ptmalloc_chunk_arena(pm, a + 16), -1);   /* no chunk starts there */
    assert_int_equal(ptmalloc_chunk_arena(pm, a + 8), -1);    /* misaligned */
    assert_int_equal(ptmalloc_chunk_arena(pm, 0), -1);
    ptmalloc_destroy(pm);
}

static void test_thread_arena(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    M(pm, 0, 10);
    uint64_t p = M(pm, 1, 10);
    uint64_t heap = p & ~((64ull << 20) - 1);
    assert_int_equal(p - heap, 0xb70);
    assert_int_equal(ptmalloc_thread_arena(pm, 1), 1);
    assert_int_equal(ptmalloc_arena_count(pm), 2);
    /* chunks carry NON_MAIN_ARENA; the heap_info's ar_ptr points at heap + 0x30 */
    struct sysmem *m = ptmalloc_sysmem(pm);
    assert_int_equal(sysmem_load(m, p - 8) & 7, 5);
    assert_int_equal(sysmem_load(m, heap), heap + 0x30);
    /* the heap: max(32 KiB, size + top_pad), page-rounded, read/write */
    struct ptmalloc_stats st;
    ptmalloc_stats(pm, 1, &st);
    assert_int_equal(st.system_bytes, ALIGN_UP_TEST(640 + 48 + 2200 + 16 + 131072, 4096));
    /* exit: the tcache goes back through free, the arena to the free list; thread 2 reuses it */
    F(pm, 1, p);
    ptmalloc_thread_exit(pm, 1);
    assert_int_equal(ptmalloc_thread_arena(pm, 1), -1);
    uint64_t q = M(pm, 2, 10);
    assert_int_equal(ptmalloc_thread_arena(pm, 2), 1);
    assert_int_equal(ptmalloc_arena_count(pm), 2);
    /* tcache struct and p merged back into top: thread 2's tcache lands where thread 1's was */
    assert_int_equal(q, heap + 0xb70);
    /* a free from another thread goes into that thread's tcache */
    F(pm, 0, q);
    assert_int_equal(M(pm, 0, 10), q);
    ptmalloc_destroy(pm);
}

static void arena_max_2(struct ptmalloc_settings *s) { s->arena_max = 2; }

static void test_arena_limit_round_robin(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(arena_max_2);
    M(pm, 0, 10);
    M(pm, 1, 10);                                   /* new arena 1: limit reached */
    assert_int_equal(ptmalloc_thread_arena(pm, 1), 1);
    M(pm, 2, 10);                                   /* reused_arena: next_to_use = main */
    assert_int_equal(ptmalloc_thread_arena(pm, 2), 0);
    M(pm, 3, 10);                                   /* then main's next: the newest arena */
    assert_int_equal(ptmalloc_thread_arena(pm, 3), 1);
    assert_int_equal(ptmalloc_arena_count(pm), 2);
    /* pinning creates arenas in order */
    assert_int_equal(ptmalloc_thread_set_arena(pm, 4, 3), 0);
    assert_int_equal(ptmalloc_thread_arena(pm, 4), 3);
    assert_int_equal(ptmalloc_arena_count(pm), 4);
    ptmalloc_destroy(pm);
}

struct walk_sum {
    uint64_t bytes[9];
    uint64_t count[9];
    uint64_t last_addr;
    uint64_t max_free;
    int ordered;
};
static int walk_cb(void *ctx, const struct ptmalloc_chunk *c)
{
    struct walk_sum *w = ctx;
    w->bytes[c->state] += c->size;
    w->count[c->state]++;
    if (c->state != PTM_CHUNK_MMAPPED && c->address < w->last_addr)
        w->ordered = 0;
    w->last_addr = c->address;
    if (c->state != PTM_CHUNK_IN_USE && c->state != PTM_CHUNK_MMAPPED &&
        c->state != PTM_CHUNK_OVERHEAD && c->size > w->max_free)
        w->max_free = c->size;
    return 0;
}

/* The walk covers system memory exactly and agrees with the running statistics. */
static void test_walk_matches_stats(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    uint64_t live[400] = {0};
    uint64_t x = 12345;
    for (int i = 0; i < 4000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % 400);
        uint32_t t = (uint32_t)((x >> 20) % 3);
        if (live[k]) {
            F(pm, t, live[k]);
            live[k] = 0;
        } else {
            uint64_t sz = (x >> 40) % 4 == 0 ? (x >> 45) % 20000 : (x >> 45) % 300;
            live[k] = M(pm, t, sz);
        }
    }
    for (int a = 0; a < (int)ptmalloc_arena_count(pm); a++) {
        struct walk_sum w;
        memset(&w, 0, sizeof w);
        w.ordered = 1;
        ptmalloc_walk(pm, a, walk_cb, &w);
        struct ptmalloc_stats st;
        ptmalloc_stats(pm, a, &st);
        uint64_t heap = 0;
        for (int s = 0; s < 9; s++)
            if (s != PTM_CHUNK_MMAPPED)
                heap += w.bytes[s];
        assert_true(w.ordered);
        assert_int_equal(heap, st.system_bytes);
        assert_int_equal(w.bytes[PTM_CHUNK_IN_USE], st.in_use_bytes);
        assert_int_equal(w.count[PTM_CHUNK_IN_USE], st.in_use_count);
        assert_int_equal(w.bytes[PTM_CHUNK_TCACHE], st.tcache_bytes);
        assert_int_equal(w.count[PTM_CHUNK_FASTBIN], st.fastbin_count);
        assert_int_equal(w.bytes[PTM_CHUNK_UNSORTED], st.unsorted_bytes);
        assert_int_equal(w.bytes[PTM_CHUNK_SMALL], st.small_bytes);
        assert_int_equal(w.bytes[PTM_CHUNK_LARGE], st.large_bytes);
        assert_int_equal(w.bytes[PTM_CHUNK_TOP], st.top_bytes);
    }
    struct ptmalloc_mallinfo2 mi;
    ptmalloc_mallinfo2(pm, &mi);
    assert_int_equal(mi.uordblks + mi.fordblks, mi.arena);
    assert_int_equal(sysmem_fault_count(ptmalloc_sysmem(pm)), 0);
    ptmalloc_destroy(pm);
}

/* largest_free (kept with a bound on the unsorted list) always equals the walk's largest free
 * chunk, through many steps that move big chunks in and out of the unsorted list. */
static void test_largest_free(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    uint64_t live[100] = {0};
    uint64_t x = 4242;
    for (int i = 0; i < 3000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % 100);
        uint32_t t = (uint32_t)((x >> 20) % 2);
        if (live[k]) {
            F(pm, t, live[k]);
            live[k] = 0;
        } else {
            live[k] = M(pm, t, (x >> 40) % 3 == 0 ? (x >> 44) % 60000 : (x >> 44) % 2000);
        }
        if (i % 7 == 0) {
            struct walk_sum w;
            memset(&w, 0, sizeof w);
            w.ordered = 1;
            ptmalloc_walk(pm, -1, walk_cb, &w);
            struct ptmalloc_stats st;
            ptmalloc_stats(pm, -1, &st);
            assert_int_equal(st.largest_free, w.max_free);
        }
    }
    ptmalloc_destroy(pm);
}

/* Per-arena statistics against the walk: largest free chunk (tcache chunks count for the arena
 * that holds them in memory), and residency: each arena's heaps (counted here page range by page
 * range, not from the zone counters), the mmapped chunks, and the whole space. */
struct arena_walk {
    uint64_t max_free;
    uint64_t heaps[16];
    int nheaps;
    uint64_t mmapped_pages;
    struct sysmem *m;
};
static int arena_walk_cb(void *ctx, const struct ptmalloc_chunk *c)
{
    struct arena_walk *w = ctx;
    if (c->state == PTM_CHUNK_MMAPPED) {
        uint64_t lo = c->address & ~(uint64_t)4095, hi = (c->address + c->size + 4095) & ~(uint64_t)4095;
        w->mmapped_pages += sysmem_resident_pages(w->m, lo, hi);
        return 0;
    }
    if (c->state != PTM_CHUNK_IN_USE && c->state != PTM_CHUNK_OVERHEAD && c->size > w->max_free)
        w->max_free = c->size;
    uint64_t h = c->address & ~((uint64_t)(64 << 20) - 1);
    for (int i = 0; i < w->nheaps; i++)
        if (w->heaps[i] == h)
            return 0;
    if (w->nheaps < 16)
        w->heaps[w->nheaps++] = h;
    return 0;
}

/* big: 1 = some mmapped sizes, 0 = small ones, -1 = fastbin sizes only */
static void stats_per_arena_run(struct ptmalloc *pm, uint64_t seed, int big)
{
    struct sysmem *m = ptmalloc_sysmem(pm);
    uint64_t live[300] = {0};
    uint64_t x = seed;
    for (int i = 0; i < 6000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % 300);
        uint32_t t = (uint32_t)((x >> 20) % 4);
        if (live[k]) {
            F(pm, t, live[k]);
            live[k] = 0;
        } else {
            uint64_t sz = big > 0 && (x >> 40) % 5 == 0 ? (x >> 44) % 200000 : (x >> 44) % 1100;
            if (big < 0)
                sz %= 120;
            live[k] = M(pm, t, sz);
            if ((x >> 12) % 3 == 0)
                ptmalloc_touch(pm, live[k], sz);
        }
        if (i % 50 != 0 && big > 0)
            continue;
        struct ptmalloc_stats all;
        ptmalloc_stats(pm, -1, &all);
        uint64_t resident_sum = 0, max_free = 0, mmapped_pages = 0;
        for (uint32_t a = 0; a < ptmalloc_arena_count(pm); a++) {
            struct arena_walk w;
            memset(&w, 0, sizeof w);
            w.m = m;
            ptmalloc_walk(pm, (int)a, arena_walk_cb, &w);
            struct ptmalloc_stats st;
            ptmalloc_stats(pm, (int)a, &st);
            assert_int_equal(st.largest_free, w.max_free);
            uint64_t pages = 0;
            if (a == 0) {
                pages = sysmem_resident_brk(m);
            } else {
                for (int h = 0; h < w.nheaps; h++)    /* in two pieces: not one whole zone */
                    pages += sysmem_resident_pages(m, w.heaps[h], w.heaps[h] + 4096) +
                             sysmem_resident_pages(m, w.heaps[h] + 4096, w.heaps[h] + (64 << 20));
            }
            assert_int_equal(st.resident_bytes, pages * 4096);
            assert_int_equal(st.mmapped_resident_bytes, all.mmapped_resident_bytes);
            struct ptmalloc_stats own;              /* the same without the global figures */
            ptmalloc_stats_arena(pm, a, &own);
            st.mmapped_count = st.mmapped_bytes = st.mmapped_resident_bytes = 0;
            assert_memory_equal(&own, &st, sizeof st);
            mmapped_pages += w.mmapped_pages;     /* each arena's own mmapped chunks */
            resident_sum += st.resident_bytes;
            if (w.max_free > max_free)
                max_free = w.max_free;
        }
        assert_int_equal(all.resident_bytes, resident_sum);
        assert_int_equal(all.mmapped_resident_bytes, mmapped_pages * 4096);
        assert_int_equal(all.largest_free, max_free);
        assert_int_equal(all.resident_bytes + all.mmapped_resident_bytes,
                         sysmem_resident_total(m) * 4096);
    }
    assert_true(ptmalloc_arena_count(pm) >= 3);
}

static void small_top(struct ptmalloc_settings *s)
{
    s->top_pad = 0;                  /* top stays under a page or so: small chunks can be the */
    s->trim_threshold = 1ull << 40;  /* largest free ones (tcache and fastbin size classes) */
}

static void small_top_no_tcache(struct ptmalloc_settings *s)
{
    small_top(s);
    s->tcache_count = 0;
}

static void test_stats_per_arena(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    stats_per_arena_run(pm, 777, 1);
    ptmalloc_destroy(pm);
    pm = model(small_top);
    stats_per_arena_run(pm, 778, 0);
    ptmalloc_destroy(pm);
    pm = model(small_top_no_tcache);
    stats_per_arena_run(pm, 779, -1);
    ptmalloc_destroy(pm);
}

/* The host-side copies (fastbin and tcache stacks, large-bin skip lists, counters) agree with
 * the lists in simulated memory after every step of a mixed sequence: many large chunks of
 * repeated sizes (long skip lists, groups gaining and losing their first chunk), reallocs,
 * memalign, calloc, trims, a mallopt, threads that exit. */
static void check_ok(struct ptmalloc *pm, int step)
{
    char err[256];
    if (ptmalloc_check(pm, err, sizeof err) != 0)
        fail_msg("step %d: %s", step, err);
}

static void mirrors_run(struct ptmalloc *pm, uint64_t seed)
{
    uint64_t live[200] = {0};
    uint32_t owner[200] = {0};
    uint64_t x = seed;
    for (int i = 0; i < 5000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % 200);
        uint32_t t = (uint32_t)((x >> 20) % 3);
        uint64_t r = (x >> 40) % 16;
        uint64_t sz = r < 6 ? 1024 + (x >> 50) % 8 * 512          /* few large sizes, repeated */
                    : r < 9 ? (x >> 44) % 70000
                    : r < 13 ? (x >> 44) % 200 : (x >> 44) % 1100;
        if (live[k] && r == 15) {
            struct ptmalloc_result res = ptmalloc_realloc(pm, t, live[k], sz);
            assert_int_equal(res.status, PTM_OK);
            live[k] = res.ptr;
        } else if (live[k]) {
            F(pm, t, live[k]);
            live[k] = 0;
        } else if (r == 14) {
            struct ptmalloc_result res = ptmalloc_memalign(pm, t, 64 << (x >> 56) % 6, sz);
            assert_int_equal(res.status, PTM_OK);
            live[k] = res.ptr;
        } else if (r == 13) {
            struct ptmalloc_result res = ptmalloc_calloc(pm, t, 1, sz);
            assert_int_equal(res.status, PTM_OK);
            live[k] = res.ptr;
        } else {
            live[k] = M(pm, t, sz);
        }
        owner[k] = t;
        if (i % 997 == 0)
            ptmalloc_trim(pm, t, (x >> 30) % 70000);
        if (i == 2500)
            ptmalloc_mallopt(pm, 0, PTM_M_MXFAST, 64);
        if (i % 1500 == 1499) {               /* thread 2 exits: its tcache is flushed */
            for (int j = 0; j < 200; j++)
                if (live[j] && owner[j] == 2) {
                    F(pm, 2, live[j]);
                    live[j] = 0;
                }
            ptmalloc_thread_exit(pm, 2);
        }
        check_ok(pm, i);
    }
    for (int j = 0; j < 200; j++)
        if (live[j])
            F(pm, 0, live[j]);
    check_ok(pm, -1);
}

static void test_mirrors_match_memory(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    mirrors_run(pm, 31337);
    ptmalloc_destroy(pm);
    pm = model(no_tcache);
    mirrors_run(pm, 31338);
    ptmalloc_destroy(pm);
    pm = model(no_fastbins);
    mirrors_run(pm, 31339);
    ptmalloc_destroy(pm);
}

/* A break that cannot grow (a mapping right after it): sysmalloc falls back to mmap. glibc
 * 2.36 passes its minsize/pagesize arguments swapped, so the mapping is (request + top_pad +
 * MINSIZE - old top, page-rounded, + old top) rounded up to 1 MiB; the old top is fenced and
 * freed, and the arena is non-contiguous from then on. */
static void test_sbrk_failure_fallback(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct sysmem *m = ptmalloc_sysmem(pm);
    uint64_t h = ptmalloc_heap_start(pm);
    M(pm, 0, 1);
    assert_int_equal(sysmem_mmap(m, h + 0x21000, 4096, SYSMEM_PROT_NONE), h + 0x21000);
    M(pm, 0, 100000);
    struct ptmalloc_stats st;
    ptmalloc_stats(pm, -1, &st);
    uint64_t old_top = st.top_bytes;
    struct evlog log = {.n = 0};
    ptmalloc_set_event_hook(pm, log_event, &log);
    uint64_t p = M(pm, 0, 50000);
    assert_int_equal(count_events(&log, PTM_EV_MMAP), 1);
    assert_int_equal(log.ev[log.n - 1].length, 1 << 20);
    assert_int_equal(p, log.ev[log.n - 1].address + 16);
    assert_int_equal(brk_now(pm), h + 0x21000);
    ptmalloc_stats(pm, -1, &st);
    assert_int_equal(st.system_bytes, 135168 + (1 << 20));
    /* the old top minus two 16-byte fenceposts went to the unsorted list */
    assert_int_equal(st.unsorted_count, 1);
    assert_int_equal(st.unsorted_bytes, old_top - 32);
    assert_int_equal(st.top_bytes, (1 << 20) - 50016);
    /* the walk covers both pieces */
    struct walk_sum w;
    memset(&w, 0, sizeof w);
    w.ordered = 1;
    ptmalloc_walk(pm, 0, walk_cb, &w);
    uint64_t heap = 0;
    for (int k = 0; k < 9; k++)
        heap += w.bytes[k];
    assert_int_equal(heap, st.system_bytes);
    assert_int_equal(w.count[PTM_CHUNK_OVERHEAD], 2);
    ptmalloc_destroy(pm);
}

/* A statically linked program's break need not be aligned: sysmalloc skips to the next
 * 16-byte boundary (+ the header) and corrects the end to a page boundary with a second sbrk. */
static void test_unaligned_break(void **state)
{
    (void)state;
    struct ptmalloc_settings s;
    ptmalloc_settings_default(&s);
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    cfg.brk_start += 8;
    struct ptmalloc *pm = ptmalloc_new(&s, sysmem_new(&cfg));
    assert_non_null(pm);
    uint64_t h = ptmalloc_heap_start(pm);
    assert_int_equal(h, cfg.brk_start);
    assert_int_equal(M(pm, 0, 1), h + 8 + 0x2a0);
    assert_int_equal(brk_now(pm) % 4096, 0);
    struct ptmalloc_stats st;
    ptmalloc_stats(pm, 0, &st);
    assert_int_equal(st.system_bytes, brk_now(pm) - h);
    struct walk_sum w;
    memset(&w, 0, sizeof w);
    w.ordered = 1;
    ptmalloc_walk(pm, 0, walk_cb, &w);
    uint64_t heap = 0;
    for (int k = 0; k < 9; k++)
        heap += w.bytes[k];
    assert_int_equal(heap, st.system_bytes);
    assert_int_equal(w.bytes[PTM_CHUNK_OVERHEAD], 8);
    ptmalloc_destroy(pm);
}

/* Garbage handed to free and realloc (interior, unaligned, freed, top, unmapped pointers, from
 * several threads) is refused without touching the model: no simulated-memory fault, and the
 * walk and statistics still agree afterwards. */
static void test_garbage_requests(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    uint64_t live[64] = {0}, dead[64] = {0};
    uint64_t x = 777;
    int refused = 0;
    for (int i = 0; i < 6000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % 64);
        uint32_t t = (uint32_t)((x >> 13) % 3);
        int what = (int)((x >> 40) % 8);
        if (what < 3) {
            if (live[k]) {
                F(pm, t, live[k]);
                dead[k] = live[k];
                live[k] = 0;
            } else {
                live[k] = M(pm, t, (x >> 45) % 3 ? (x >> 50) % 600 : (x >> 44) % 300000);
            }
            continue;
        }
        uint64_t bad;
        switch (what) {
        case 3: bad = dead[k]; break;                               /* double free */
        case 4: bad = live[k] ? live[k] + 16 * (1 + (x >> 56) % 4) : 0; break;   /* interior */
        case 5: bad = live[k] ? live[k] + 8 : 0; break;             /* unaligned */
        case 6: bad = 0x10000 + ((x >> 20) & 0xffffff0); break;     /* unmapped */
        default: bad = ptmalloc_heap_start(pm) + 16 * ((x >> 30) % 20000); break;
        }
        if (!bad)
            continue;
        int is_live = 0;
        for (int j = 0; j < 64; j++)
            is_live |= live[j] == bad;
        if (is_live)
            continue;
        struct ptmalloc_result r = (x >> 60) & 1 ? ptmalloc_free(pm, t, bad) : ptmalloc_realloc(pm, t, bad, 100);
        assert_int_equal(r.status, PTM_CORRUPT);
        assert_non_null(r.message);
        refused++;
    }
    assert_true(refused > 1000);
    assert_int_equal(sysmem_fault_count(ptmalloc_sysmem(pm)), 0);
    for (int a = 0; a < (int)ptmalloc_arena_count(pm); a++) {
        struct walk_sum w;
        memset(&w, 0, sizeof w);
        w.ordered = 1;
        ptmalloc_walk(pm, a, walk_cb, &w);
        struct ptmalloc_stats st;
        ptmalloc_stats(pm, a, &st);
        uint64_t heap = 0;
        for (int k = 0; k < 9; k++)
            if (k != PTM_CHUNK_MMAPPED)
                heap += w.bytes[k];
        assert_int_equal(heap, st.system_bytes);
        assert_int_equal(w.count[PTM_CHUNK_IN_USE], st.in_use_count);
        assert_int_equal(w.bytes[PTM_CHUNK_TCACHE], st.tcache_bytes);
    }
    ptmalloc_destroy(pm);
}

/* ptmalloc_prefetch is a hint only: a model given hints before every call (the right pointer,
 * other blocks, freed blocks, garbage) makes exactly the same choices and ends in exactly the
 * same state as one given none. */
static void test_prefetch_changes_nothing(void **state)
{
    (void)state;
    struct ptmalloc *a = model(NULL), *b = model(NULL);
    uint64_t live_a[128] = {0}, live_b[128] = {0}, freed_b[128] = {0};
    uint64_t x = 4242;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % 128);
        uint32_t t = (uint32_t)((x >> 13) % 3);
        uint64_t size = (x >> 45) % 4 ? (x >> 50) % 1100 : (x >> 44) % 200000;
        /* hints for b: the block this call uses, another block, garbage, freed blocks */
        uint64_t y = x ^ (x >> 29);
        ptmalloc_prefetch(b, live_b[k]);
        ptmalloc_prefetch(b, live_b[(y >> 8) % 128]);
        ptmalloc_prefetch(b, (y >> 3) & ~(uint64_t)7);
        ptmalloc_prefetch(b, freed_b[(y >> 16) % 128]);
        struct ptmalloc_result ra, rb;
        if (!live_a[k]) {
            ra = ptmalloc_malloc(a, t, size);
            rb = ptmalloc_malloc(b, t, size);
            live_a[k] = ra.ptr;
            live_b[k] = rb.ptr;
        } else if ((x >> 40) % 5 == 0) {
            ra = ptmalloc_realloc(a, t, live_a[k], size);
            rb = ptmalloc_realloc(b, t, live_b[k], size);
            live_a[k] = ra.ptr;
            live_b[k] = rb.ptr;
        } else {
            ra = ptmalloc_free(a, t, live_a[k]);
            rb = ptmalloc_free(b, t, live_b[k]);
            freed_b[k] = live_b[k];
            live_a[k] = live_b[k] = 0;
        }
        assert_int_equal(ra.status, PTM_OK);
        assert_int_equal(rb.status, PTM_OK);
        assert_int_equal(ra.ptr, rb.ptr);
    }
    assert_int_equal(ptmalloc_arena_count(a), ptmalloc_arena_count(b));
    for (int ar = 0; ar < (int)ptmalloc_arena_count(a); ar++) {
        struct ptmalloc_stats sa, sb;
        memset(&sa, 0, sizeof sa);
        memset(&sb, 0, sizeof sb);
        ptmalloc_stats(a, ar, &sa);
        ptmalloc_stats(b, ar, &sb);
        assert_memory_equal(&sa, &sb, sizeof sa);
        struct walk_sum wa, wb;
        memset(&wa, 0, sizeof wa);
        memset(&wb, 0, sizeof wb);
        ptmalloc_walk(a, ar, walk_cb, &wa);
        ptmalloc_walk(b, ar, walk_cb, &wb);
        assert_memory_equal(&wa, &wb, sizeof wa);
    }
    assert_int_equal(sysmem_brk_current(ptmalloc_sysmem(a)), sysmem_brk_current(ptmalloc_sysmem(b)));
    ptmalloc_destroy(a);
    ptmalloc_destroy(b);
}

struct bin_rec {
    uint64_t addr[16];
    int n;
};
static int bins_cb(void *ctx, enum ptmalloc_chunk_state kind, int bin, uint64_t address,
                   uint64_t size)
{
    struct bin_rec *r = ctx;
    (void)bin;
    (void)size;
    if (kind == PTM_CHUNK_LARGE && r->n < 16)
        r->addr[r->n++] = address;
    return 0;
}

/* Large bins are sorted by size, largest first; an equal size goes second. */
static void test_largebin_order(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    /* 1120- and 1136-byte chunks share large bin 65 */
    uint64_t a = M(pm, 0, 1100), g1 = M(pm, 0, 10);
    uint64_t b = M(pm, 0, 1120), g2 = M(pm, 0, 10);
    uint64_t c = M(pm, 0, 1100), g3 = M(pm, 0, 10);
    (void)g1, (void)g2, (void)g3;
    F(pm, 0, a);
    F(pm, 0, b);
    F(pm, 0, c);
    M(pm, 0, 3000);                                 /* scans the unsorted list into bins */
    struct bin_rec r = {.n = 0};
    ptmalloc_bins(pm, 0, 0, bins_cb, &r);
    assert_int_equal(r.n, 3);
    /* unsorted is processed from the tail: a (1120) first, then b (1136), then c (1120) */
    assert_int_equal(r.addr[0], b - 16);
    assert_int_equal(r.addr[1], a - 16);
    assert_int_equal(r.addr[2], c - 16);
    ptmalloc_destroy(pm);
}

/* A chunk in a tcache is in use as glibc sees it; it is told apart by its key word and the bin's
 * entries, as glibc tells it. Freed again by its thread: glibc's tcache check; by another thread:
 * a double free glibc misses (refused, nothing changes); realloc: invalid pointer; the walk says
 * tcache. At its thread's exit it goes to a fastbin keeping the key word (glibc does not clear
 * it); handed out again, it is an ordinary chunk its holder can free. */
struct find_chunk {
    uint64_t address;
    struct ptmalloc_chunk c;
};
static int find_chunk_cb(void *ctx, const struct ptmalloc_chunk *c)
{
    struct find_chunk *f = ctx;
    if (c->address == f->address)
        f->c = *c;
    return 0;
}
static void assert_checks(struct ptmalloc *pm)
{
    char err[256] = "";
    int r = ptmalloc_check(pm, err, sizeof err);
    if (r != 0)
        fail_msg("%s", err);
}
static void test_tcache_chunk_identity(void **state)
{
    (void)state;
    struct ptmalloc *pm = model(NULL);
    struct sysmem *mem = ptmalloc_sysmem(pm);
    M(pm, 0, 24);
    uint64_t a = M(pm, 1, 24);                     /* chunk size 32: tcache bin 0, fastbin 0 */
    M(pm, 1, 24);                                  /* keeps a off top */
    int arena = ptmalloc_chunk_arena(pm, a);
    assert_true(arena >= 0);
    F(pm, 1, a);
    uint64_t key = sysmem_load(mem, a + 8);
    assert_true(key != 0);
    assert_checks(pm);
    struct ptmalloc_stats st0, st1;
    ptmalloc_stats(pm, -1, &st0);
    assert_int_equal(st0.tcache_count, 1);
    struct ptmalloc_result r = ptmalloc_free(pm, 0, a);
    assert_int_equal(r.status, PTM_CORRUPT);
    assert_string_equal(r.message, "free(): double free of an already free chunk (glibc does not "
                                   "detect this one and would corrupt its heap)");
    r = ptmalloc_free(pm, 1, a);
    assert_int_equal(r.status, PTM_CORRUPT);
    assert_string_equal(r.message, "free(): double free detected in tcache 2");
    r = ptmalloc_realloc(pm, 0, a, 10);
    assert_int_equal(r.status, PTM_CORRUPT);
    assert_string_equal(r.message, "realloc(): invalid pointer");
    assert_int_equal(ptmalloc_usable_size(pm, a), 24);
    ptmalloc_stats(pm, -1, &st1);
    assert_memory_equal(&st0, &st1, sizeof st0);
    struct find_chunk f = {a - 16, {0, 0, PTM_CHUNK_OVERHEAD, 0, 0}};
    ptmalloc_walk(pm, -1, find_chunk_cb, &f);
    assert_int_equal(f.c.state, PTM_CHUNK_TCACHE);
    assert_int_equal(f.c.bin, 0);
    assert_int_equal(f.c.size, 32);
    assert_checks(pm);

    /* thread exit: a into its arena's fastbin, the key word left in place */
    ptmalloc_thread_exit(pm, 1);
    assert_int_equal(sysmem_load(mem, a + 8), key);
    ptmalloc_stats(pm, -1, &st1);
    assert_int_equal(st1.tcache_count, 0);
    assert_int_equal(st1.fastbin_count, 1);
    f.c.state = PTM_CHUNK_OVERHEAD;
    ptmalloc_walk(pm, -1, find_chunk_cb, &f);
    assert_int_equal(f.c.state, PTM_CHUNK_FASTBIN);
    assert_checks(pm);
    assert_int_equal(ptmalloc_thread_set_arena(pm, 2, (uint32_t)arena), 0);
    assert_int_equal(M(pm, 2, 24), a);             /* from the fastbin, key word still there */
    assert_int_equal(sysmem_load(mem, a + 8), key);
    f.c.state = PTM_CHUNK_OVERHEAD;
    ptmalloc_walk(pm, -1, find_chunk_cb, &f);
    assert_int_equal(f.c.state, PTM_CHUNK_IN_USE);
    assert_checks(pm);
    r = ptmalloc_realloc(pm, 2, a, 20);            /* held: realloc accepts it (in place) */
    assert_int_equal(r.status, PTM_OK);
    assert_int_equal(r.ptr, a);
    F(pm, 0, a);                                   /* held: any thread may free it */
    assert_int_equal(sysmem_load(mem, a + 8), key);
    ptmalloc_stats(pm, -1, &st1);
    assert_int_equal(st1.tcache_count, 1);
    assert_int_equal(M(pm, 0, 24), a);
    assert_int_equal(sysmem_load(mem, a + 8), 0);  /* tcache_get clears the key */
    assert_checks(pm);
    ptmalloc_destroy(pm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_malloc),
        cmocka_unit_test(test_tcache_lifo),
        cmocka_unit_test(test_fastbin_refill),
        cmocka_unit_test(test_4000_defaults),
        cmocka_unit_test(test_4000_no_tcache),
        cmocka_unit_test(test_4000_no_fastbins),
        cmocka_unit_test(test_malloc_trim_madvise),
        cmocka_unit_test(test_systrim_on_free),
        cmocka_unit_test(test_mallinfo2),
        cmocka_unit_test(test_double_free_messages),
        cmocka_unit_test(test_calloc_clearing),
        cmocka_unit_test(test_realloc_paths),
        cmocka_unit_test(test_memalign_family),
        cmocka_unit_test(test_mallopt),
        cmocka_unit_test(test_thread_arena),
        cmocka_unit_test(test_chunk_arena),
        cmocka_unit_test(test_arena_limit_round_robin),
        cmocka_unit_test(test_walk_matches_stats),
        cmocka_unit_test(test_largest_free),
        cmocka_unit_test(test_stats_per_arena),
        cmocka_unit_test(test_mirrors_match_memory),
        cmocka_unit_test(test_largebin_order),
        cmocka_unit_test(test_sbrk_failure_fallback),
        cmocka_unit_test(test_unaligned_break),
        cmocka_unit_test(test_garbage_requests),
        cmocka_unit_test(test_prefetch_changes_nothing),
        cmocka_unit_test(test_tcache_chunk_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
