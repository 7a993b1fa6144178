/* test_sim_space.c: the simulated address space (allocator/sim_space.c) against sysmem.h's
 * contract and the Linux rules it models: the break and its guard page, top-down placement that
 * reuses holes, hints, merged and split mappings, mremap, residency, contents and faults.
 * Expected addresses are derived from the configured layout by the kernel's rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysmem.h"

#define PG ((uint64_t)4096)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

static struct sysmem *fresh(void) {
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    struct sysmem *m = sysmem_new(&cfg);
    assert_non_null(m);
    return m;
}

static void default_layout(void **state) {
    (void)state;
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    assert_int_equal(cfg.brk_start, 0x555555559000ull);
    assert_int_equal(cfg.mmap_base, 0x7ffff7fff000ull);
    struct sysmem *m = sysmem_new(&cfg);
    assert_int_equal(sysmem_brk_current(m), cfg.brk_start);
    assert_int_equal(sysmem_brk_start(m), cfg.brk_start);
    assert_int_equal(sysmem_resident_total(m), 0);
    assert_int_equal(sysmem_mapped_bytes(m), 0);
    assert_int_equal(sysmem_fault_count(m), 0);
    assert_int_equal(sysmem_first_fault(m), SYSMEM_FAIL);
    assert_null(sysmem_first_fault_reason(m));
    sysmem_free(m);
}

static void bad_config_is_refused(void **state) {
    (void)state;
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    cfg.mmap_base = 0x7ffff7fff001ull;          /* not page-aligned */
    assert_null(sysmem_new(&cfg));
    sysmem_config_default(&cfg);
    cfg.mmap_base = (uint64_t)1 << 48;          /* beyond user space */
    assert_null(sysmem_new(&cfg));
}

static void sbrk_moves_the_break(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t b0 = sysmem_brk_current(m);
    assert_int_equal(sysmem_sbrk(m, 0), b0);
    assert_int_equal(sysmem_sbrk(m, 135168), b0);
    assert_int_equal(sysmem_brk_current(m), b0 + 135168);
    assert_int_equal(sysmem_sbrk(m, -4096), b0 + 135168);
    assert_int_equal(sysmem_brk_current(m), b0 + 131072);
    /* below the start fails and changes nothing */
    assert_int_equal(sysmem_sbrk(m, -(int64_t)131073), SYSMEM_FAIL);
    assert_int_equal(sysmem_brk_current(m), b0 + 131072);
    assert_int_equal(sysmem_sbrk(m, -(int64_t)131072), b0 + 131072);
    assert_int_equal(sysmem_brk_current(m), b0);
    assert_int_equal(sysmem_mapped_bytes(m), 0);   /* the break area is not a mapping */
    sysmem_free(m);
}

static void sbrk_shrink_drops_pages_wholly_above(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t b0 = sysmem_brk_current(m);
    sysmem_sbrk(m, 8 * PG);
    for (uint64_t i = 0; i < 8; i++)
        sysmem_store(m, b0 + i * PG + 8, 100 + i);
    assert_int_equal(sysmem_resident_total(m), 8);
    assert_int_equal(sysmem_resident_brk(m), 8);
    /* new break in the middle of page 3: page 3 stays (not wholly above), 4..7 go */
    sysmem_sbrk(m, -(int64_t)(5 * PG - 100));
    assert_int_equal(sysmem_brk_current(m), b0 + 3 * PG + 100);
    assert_int_equal(sysmem_resident_brk(m), 4);
    assert_int_equal(sysmem_resident_total(m), 4);
    assert_int_equal(sysmem_load(m, b0 + 3 * PG + 8), 103);
    /* regrow: the dropped pages read as zero */
    sysmem_sbrk(m, 4 * PG);
    assert_int_equal(sysmem_load(m, b0 + 5 * PG + 8), 0);
    assert_int_equal(sysmem_load(m, b0 + 2 * PG + 8), 102);
    assert_int_equal(sysmem_resident_brk(m), 4);
    assert_int_equal(sysmem_fault_count(m), 0);
    sysmem_free(m);
}

static void sbrk_respects_brk_limit(void **state) {
    (void)state;
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    cfg.brk_limit = cfg.brk_start + 1 * MiB;
    struct sysmem *m = sysmem_new(&cfg);
    assert_int_equal(sysmem_sbrk(m, (int64_t)MiB), cfg.brk_start);
    assert_int_equal(sysmem_sbrk(m, 1), SYSMEM_FAIL);
    assert_int_equal(sysmem_brk_current(m), cfg.brk_start + MiB);
    sysmem_free(m);
}

static void sbrk_keeps_a_guard_page_below_a_mapping(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t b0 = sysmem_brk_current(m);
    /* a mapping two pages above the break (through a hint) */
    uint64_t map = sysmem_mmap(m, b0 + 3 * PG, PG, SYSMEM_PROT_RW);
    assert_int_equal(map, b0 + 3 * PG);
    /* a break two pages up leaves one free page before the mapping: allowed */
    assert_int_equal(sysmem_sbrk(m, (int64_t)(2 * PG)), b0);
    /* growing within the same page never fails */
    assert_int_equal(sysmem_sbrk(m, 0), b0 + 2 * PG);
    sysmem_sbrk(m, -1);
    assert_int_equal(sysmem_sbrk(m, 1), b0 + 2 * PG - 1);
    /* one more page would leave no guard page */
    assert_int_equal(sysmem_sbrk(m, 1), SYSMEM_FAIL);
    assert_int_equal(sysmem_brk_current(m), b0 + 2 * PG);
    /* a hint into the break area is not taken */
    uint64_t other = sysmem_mmap(m, b0, PG, SYSMEM_PROT_RW);
    assert_true(other != b0 && other != SYSMEM_FAIL);
    sysmem_free(m);
}

static void mmap_is_top_down_and_reuses_holes(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t base = 0x7ffff7fff000ull;
    uint64_t a = sysmem_mmap(m, 0, 10 * PG, SYSMEM_PROT_RW);
    uint64_t b = sysmem_mmap(m, 0, 3 * PG + 1, SYSMEM_PROT_RW);     /* rounds to 4 pages */
    uint64_t c = sysmem_mmap(m, 0, 2 * PG, SYSMEM_PROT_RW);
    assert_int_equal(a, base - 10 * PG);
    assert_int_equal(b, a - 4 * PG);
    assert_int_equal(c, b - 2 * PG);
    assert_int_equal(sysmem_mapped_bytes(m), 16 * PG);
    /* adjacent read/write mappings behave as one */
    assert_int_equal(sysmem_mapping_count(m), 1);
    /* a hole of 4 pages where b was */
    assert_int_equal(sysmem_munmap(m, b, 4 * PG), 0);
    assert_int_equal(sysmem_mapping_count(m), 2);
    assert_int_equal(sysmem_mapped_bytes(m), 12 * PG);
    /* too big for the hole: below everything */
    uint64_t d = sysmem_mmap(m, 0, 5 * PG, SYSMEM_PROT_RW);
    assert_int_equal(d, c - 5 * PG);
    /* fits: at the top of the hole */
    uint64_t e = sysmem_mmap(m, 0, 3 * PG, SYSMEM_PROT_RW);
    assert_int_equal(e, b + PG);
    uint64_t f = sysmem_mmap(m, 0, PG, SYSMEM_PROT_RW);
    assert_int_equal(f, b);
    assert_int_equal(sysmem_mapping_count(m), 1);
    /* the highest hole that fits wins over a lower, larger one */
    assert_int_equal(sysmem_munmap(m, a + 2 * PG, 2 * PG), 0);      /* 2-page hole, high */
    assert_int_equal(sysmem_munmap(m, d, 3 * PG), 0);               /* 3-page hole, low */
    assert_int_equal(sysmem_mmap(m, 0, 2 * PG, SYSMEM_PROT_RW), a + 2 * PG);
    assert_int_equal(sysmem_mmap(m, 0, 2 * PG, SYSMEM_PROT_RW), d + PG);
    sysmem_free(m);
}

static void mmap_hint_is_used_when_free(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t h = 0x7f0000000000ull;
    assert_int_equal(sysmem_mmap(m, h, 64 * MiB, SYSMEM_PROT_NONE), h);
    /* overlapping: falls back to top-down */
    assert_int_equal(sysmem_mmap(m, h + PG, PG, SYSMEM_PROT_RW), 0x7ffff7fff000ull - PG);
    /* unaligned: rounded up, as the kernel does */
    assert_int_equal(sysmem_mmap(m, h - PG - 5, PG, SYSMEM_PROT_RW), h - PG);
    /* below mmap_min_addr: ignored */
    assert_int_equal(sysmem_mmap(m, 4096, PG, SYSMEM_PROT_RW), 0x7ffff7fff000ull - 2 * PG);
    /* a hint above mmap_base is fine */
    assert_int_equal(sysmem_mmap(m, 0x7ffff8000000ull, PG, SYSMEM_PROT_RW), 0x7ffff8000000ull);
    sysmem_free(m);
}

/* glibc's new_heap: map 128 MiB PROT_NONE, keep the 64 MiB-aligned half, open part of it. */
static void glibc_heap_sequence(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    const uint64_t hmax = 64 * MiB;
    uint64_t p1 = sysmem_mmap(m, 0, 2 * hmax, SYSMEM_PROT_NONE);
    /* a 2 MiB multiple without a hint: THP-aligned below mmap_base */
    assert_int_equal(p1, (0x7ffff7fff000ull - 2 * hmax) & ~(2 * MiB - 1));
    uint64_t p2 = (p1 + hmax - 1) & ~(hmax - 1);
    uint64_t ul = p2 - p1;
    if (ul)
        assert_int_equal(sysmem_munmap(m, p1, ul), 0);
    assert_int_equal(sysmem_munmap(m, p2 + hmax, hmax - ul), 0);
    assert_int_equal(sysmem_mapped_bytes(m), hmax);
    assert_int_equal(sysmem_mprotect(m, p2, 33 * PG, SYSMEM_PROT_RW), 0);
    assert_int_equal(sysmem_mapping_count(m), 2);
    uint64_t s, e;
    int prot;
    assert_true(sysmem_mapping_at(m, p2, &s, &e, &prot));
    assert_int_equal(s, p2);
    assert_int_equal(e, p2 + 33 * PG);
    assert_int_equal(prot, SYSMEM_PROT_RW);
    assert_true(sysmem_mapping_at(m, p2 + 33 * PG, &s, &e, &prot));
    assert_int_equal(prot, SYSMEM_PROT_NONE);
    assert_int_equal(e, p2 + hmax);
    sysmem_store(m, p2 + 48, 0xabc);
    assert_int_equal(sysmem_load(m, p2 + 48), 0xabc);
    /* the next heap, hinted at the next aligned slot below? glibc hints aligned_heap_area (the
     * upper half it unmapped); that space is free again, so the hint is honoured */
    uint64_t p3 = sysmem_mmap(m, p2 + hmax, hmax, SYSMEM_PROT_NONE);
    assert_int_equal(p3, p2 + hmax);
    /* shrink_heap-style: back to PROT_NONE; the part merges with the rest */
    assert_int_equal(sysmem_mprotect(m, p2, 33 * PG, SYSMEM_PROT_NONE), 0);
    assert_int_equal(sysmem_mapping_count(m), 1);
    assert_int_equal(sysmem_load(m, p2 + 48), 0);
    assert_true(sysmem_fault_count(m) == 1);
    assert_int_equal(sysmem_first_fault(m), p2 + 48);
    /* mprotect of an unmapped range fails and changes nothing */
    assert_int_equal(sysmem_mprotect(m, p2 - PG, 2 * PG, SYSMEM_PROT_RW), -1);
    assert_int_equal(sysmem_mapping_count(m), 1);
    sysmem_free(m);
}

/* Hintless mappings whose length is a multiple of 2 MiB are THP-aligned: a top-down search for
 * length + 2 MiB, then aligned down to 2 MiB (the sequence was checked on this machine's kernel,
 * 6.18). Hinted ones and other lengths are placed as before. */
static void thp_alignment_of_large_mappings(void **state) {
    (void)state;
    const uint64_t base = 0x7ffff7fff000ull, two = 2 * MiB;
    struct sysmem *m = fresh();
    uint64_t a = sysmem_mmap(m, 0, PG, SYSMEM_PROT_RW);
    assert_int_equal(a, base - PG);
    uint64_t b = sysmem_mmap(m, 0, 4 * MiB, SYSMEM_PROT_RW);
    assert_int_equal(b, (a - 4 * MiB) & ~(two - 1));
    assert_true(b + 4 * MiB < a);                              /* a gap is left */
    uint64_t c = sysmem_mmap(m, 0, two, SYSMEM_PROT_RW);
    assert_int_equal(c, b - two);                              /* aligned already: adjacent */
    uint64_t d = sysmem_mmap(m, 0, 4 * MiB + PG, SYSMEM_PROT_RW);
    assert_int_equal(d, c - 4 * MiB - PG);                     /* not a multiple: plain */
    uint64_t e = sysmem_mmap(m, a, 4 * MiB, SYSMEM_PROT_RW);   /* busy hint: plain top-down */
    assert_int_equal(e, d - 4 * MiB);
    /* the gap between b and a (under 2 MiB + 4 MiB) is still free for small mappings */
    assert_int_equal(sysmem_mmap(m, 0, PG, SYSMEM_PROT_RW), a - PG);
    /* an aligned 2 MiB hole is not reused by a 2 MiB request (it needs 4 MiB of room) */
    assert_int_equal(sysmem_munmap(m, c, two), 0);
    uint64_t f = sysmem_mmap(m, 0, two, SYSMEM_PROT_RW);
    assert_int_equal(f, (e - two) & ~(two - 1));
    /* but a 2 MiB hint there is honoured */
    assert_int_equal(sysmem_mmap(m, c, two, SYSMEM_PROT_RW), c);
    sysmem_free(m);

    /* an mremap move follows the hintless rule */
    m = fresh();
    uint64_t g = sysmem_mmap(m, 0, PG, SYSMEM_PROT_RW);
    uint64_t h = sysmem_mmap(m, 0, PG, SYSMEM_PROT_RW);
    assert_int_equal(h, g - PG);
    assert_int_equal(sysmem_mremap(m, h, PG, 4 * MiB, 1), (h - 4 * MiB) & ~(two - 1));
    sysmem_free(m);

    /* older kernels: plain top-down for every length */
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    cfg.thp_align = 0;
    m = sysmem_new(&cfg);
    a = sysmem_mmap(m, 0, PG, SYSMEM_PROT_RW);
    b = sysmem_mmap(m, 0, 4 * MiB, SYSMEM_PROT_RW);
    assert_int_equal(b, a - 4 * MiB);
    h = sysmem_mmap(m, 0, PG, SYSMEM_PROT_RW);
    assert_int_equal(sysmem_mremap(m, h, PG, 4 * MiB, 1), h - 4 * MiB);
    sysmem_free(m);
}

static void partial_munmap_and_mprotect_split(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t a = sysmem_mmap(m, 0, 8 * PG, SYSMEM_PROT_RW);
    assert_int_equal(sysmem_mprotect(m, a + 2 * PG, 2 * PG, SYSMEM_PROT_NONE), 0);
    assert_int_equal(sysmem_mapping_count(m), 3);
    assert_int_equal(sysmem_mprotect(m, a + 2 * PG, PG, SYSMEM_PROT_RW), 0);
    assert_int_equal(sysmem_mapping_count(m), 3);
    assert_int_equal(sysmem_mprotect(m, a + 3 * PG, PG, SYSMEM_PROT_RW), 0);
    assert_int_equal(sysmem_mapping_count(m), 1);
    assert_int_equal(sysmem_munmap(m, a + 5 * PG, PG), 0);
    assert_int_equal(sysmem_mapping_count(m), 2);
    assert_int_equal(sysmem_mapped_bytes(m), 7 * PG);
    assert_int_equal(sysmem_munmap(m, a + 1, PG), -1);       /* not page-aligned */
    assert_int_equal(sysmem_munmap(m, a, 0), -1);
    /* munmap of already free space is fine */
    assert_int_equal(sysmem_munmap(m, a + 5 * PG, PG), 0);
    assert_int_equal(sysmem_mapped_bytes(m), 7 * PG);
    /* munmap over the break area is refused */
    assert_int_equal(sysmem_sbrk(m, 4096), 0x555555559000ull);
    assert_int_equal(sysmem_munmap(m, 0x555555559000ull, PG), -1);
    sysmem_free(m);
}

static void mremap_grows_in_place_moves_and_shrinks(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t a = sysmem_mmap(m, 0, 4 * PG, SYSMEM_PROT_RW);
    uint64_t b = sysmem_mmap(m, 0, 4 * PG, SYSMEM_PROT_RW);
    assert_int_equal(b, a - 4 * PG);                          /* right below a */
    sysmem_store(m, b + 16, 7);
    sysmem_store(m, b + 3 * PG, 9);
    sysmem_touch(m, b + PG, 10);
    assert_int_equal(sysmem_resident_total(m), 3);
    /* a is in the way: b moves; contents and residency follow */
    uint64_t b2 = sysmem_mremap(m, b, 4 * PG, 6 * PG, 1);
    assert_int_equal(b2, b - 6 * PG);
    assert_int_equal(sysmem_load(m, b2 + 16), 7);
    assert_int_equal(sysmem_load(m, b2 + 3 * PG), 9);
    assert_int_equal(sysmem_resident_pages(m, b2, b2 + 6 * PG), 3);
    assert_int_equal(sysmem_resident_pages(m, b, b + 4 * PG), 0);
    assert_int_equal(sysmem_resident_total(m), 3);
    assert_int_equal(sysmem_mapped_bytes(m), 10 * PG);
    assert_int_equal(sysmem_load(m, b + 16), 0);                 /* old place is gone */
    assert_int_equal(sysmem_fault_count(m), 1);
    /* there is now a 4-page hole above b2 (where b was): grows in place into it */
    assert_int_equal(sysmem_mremap(m, b2, 6 * PG, 10 * PG, 1), b2);
    assert_int_equal(sysmem_mapped_bytes(m), 14 * PG);
    /* no room and no move: fails */
    assert_int_equal(sysmem_mremap(m, b2, 10 * PG, 11 * PG, 0), SYSMEM_FAIL);
    /* shrink in place drops the tail */
    assert_int_equal(sysmem_mremap(m, b2, 10 * PG, PG, 0), b2);
    assert_int_equal(sysmem_resident_total(m), 1);
    assert_int_equal(sysmem_load(m, b2 + 16), 7);
    assert_int_equal(sysmem_mapped_bytes(m), 5 * PG);
    /* same length: nothing happens */
    assert_int_equal(sysmem_mremap(m, b2, PG, PG, 1), b2);
    /* an unmapped range cannot be remapped */
    assert_int_equal(sysmem_mremap(m, b2 + PG, PG, 2 * PG, 1), SYSMEM_FAIL);
    sysmem_free(m);
}

static void loads_stores_and_residency(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t b0 = sysmem_brk_current(m);
    sysmem_sbrk(m, 64 * PG);
    assert_int_equal(sysmem_load(m, b0 + 8), 0);
    assert_int_equal(sysmem_resident_total(m), 0);      /* loads do not make pages resident */
    sysmem_store(m, b0 + 8, 0x291);
    sysmem_store(m, b0 + 0x298, 0x21);
    assert_int_equal(sysmem_load(m, b0 + 8), 0x291);
    assert_int_equal(sysmem_load(m, b0 + 0x298), 0x21);
    assert_int_equal(sysmem_load(m, b0 + 0x290), 0);
    assert_int_equal(sysmem_resident_total(m), 1);
    sysmem_touch(m, b0 + PG - 1, 2);                   /* straddles pages 0 and 1 */
    assert_int_equal(sysmem_resident_brk(m), 2);
    sysmem_touch(m, b0 + 10 * PG, 20 * PG);
    assert_int_equal(sysmem_resident_brk(m), 22);
    assert_int_equal(sysmem_resident_pages(m, b0, b0 + 64 * PG), 22);
    assert_int_equal(sysmem_resident_pages(m, b0 + 10 * PG + 1, b0 + 11 * PG), 1);
    assert_int_equal(sysmem_resident_pages(m, b0 + 30 * PG, b0 + 64 * PG), 0);
    /* dontneed drops residency and contents */
    assert_int_equal(sysmem_madvise_dontneed(m, b0, PG), 0);
    assert_int_equal(sysmem_load(m, b0 + 8), 0);
    assert_int_equal(sysmem_resident_brk(m), 21);
    assert_int_equal(sysmem_madvise_dontneed(m, b0 + 1, PG), -1);
    /* mappings: residency outside the break area */
    uint64_t a = sysmem_mmap(m, 0, 4 * PG, SYSMEM_PROT_RW);
    sysmem_store(m, a, 1);
    sysmem_store(m, a + PG, 2);
    assert_int_equal(sysmem_resident_total(m), 23);
    assert_int_equal(sysmem_resident_brk(m), 21);
    assert_int_equal(sysmem_load(m, a), 1);                    /* cached now */
    assert_int_equal(sysmem_munmap(m, a, PG), 0);
    assert_int_equal(sysmem_resident_total(m), 22);
    assert_int_equal(sysmem_load(m, a + PG), 2);
    /* mapped again at the same place: fresh zero memory, not the cached old block */
    assert_int_equal(sysmem_mmap(m, a, PG, SYSMEM_PROT_RW), a);
    assert_int_equal(sysmem_load(m, a), 0);
    assert_int_equal(sysmem_munmap(m, a, PG), 0);
    /* dontneed over an unmapped part: the mapped part is dropped, -1 reported */
    assert_int_equal(sysmem_madvise_dontneed(m, a, 2 * PG), -1);
    assert_int_equal(sysmem_load(m, a + PG), 0);
    assert_int_equal(sysmem_resident_total(m), 21);
    assert_int_equal(sysmem_fault_count(m), 0);
    sysmem_free(m);
}

static void values_survive_cache_pressure(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t b0 = sysmem_brk_current(m);
    sysmem_sbrk(m, 8 * MiB);
    /* strides that collide in the cache, interleaved */
    for (uint64_t i = 0; i < 20000; i++)
        sysmem_store(m, b0 + (i * 4104) % (8 * MiB - 8) / 8 * 8, i * 2654435761u);
    for (uint64_t i = 0; i < 20000; i += 97) {
        uint64_t addr = b0 + (i * 4104) % (8 * MiB - 8) / 8 * 8;
        uint64_t last = 0;
        for (uint64_t j = i; j < 20000; j++)      /* the last store to that address wins */
            if (b0 + (j * 4104) % (8 * MiB - 8) / 8 * 8 == addr)
                last = j * 2654435761u;
        assert_int_equal(sysmem_load(m, addr), last);
    }
    sysmem_free(m);
}

static void faults_are_counted_not_fatal(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t b0 = sysmem_brk_current(m);
    assert_int_equal(sysmem_load(m, b0), 0);                   /* break area empty */
    assert_int_equal(sysmem_fault_count(m), 1);
    assert_int_equal(sysmem_first_fault(m), b0);
    assert_non_null(strstr(sysmem_first_fault_reason(m), "unmapped"));
    sysmem_store(m, 0, 1);
    sysmem_store(m, (uint64_t)1 << 60, 1);
    assert_int_equal(sysmem_fault_count(m), 3);
    sysmem_sbrk(m, PG);
    sysmem_store(m, b0 + 4, 5);                                /* misaligned */
    assert_int_equal(sysmem_load(m, b0 + 4), 0);
    assert_int_equal(sysmem_fault_count(m), 5);
    sysmem_store(m, b0, 5);
    assert_int_equal(sysmem_load(m, b0 + 1), 0);              /* misaligned hits no cache */
    assert_int_equal(sysmem_fault_count(m), 6);
    uint64_t a = sysmem_mmap(m, 0, PG, SYSMEM_PROT_NONE);
    sysmem_store(m, a, 1);
    sysmem_touch(m, a, 1);
    assert_int_equal(sysmem_fault_count(m), 8);
    assert_int_equal(sysmem_resident_total(m), 1);
    /* a cached block stops answering once its page is PROT_NONE */
    uint64_t r = sysmem_mmap(m, 0, PG, SYSMEM_PROT_RW);
    sysmem_store(m, r, 42);
    assert_int_equal(sysmem_load(m, r), 42);
    assert_int_equal(sysmem_mprotect(m, r, PG, SYSMEM_PROT_NONE), 0);
    assert_int_equal(sysmem_load(m, r), 0);
    sysmem_store(m, r, 43);
    assert_int_equal(sysmem_fault_count(m), 10);
    assert_int_equal(sysmem_mprotect(m, r, PG, SYSMEM_PROT_RW), 0);
    assert_int_equal(sysmem_load(m, r), 42);                   /* contents kept */
    assert_int_equal(sysmem_first_fault(m), b0);               /* still the first */
    sysmem_free(m);
}

static void mmap_limit_is_enforced(void **state) {
    (void)state;
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    cfg.mmap_limit = 10 * PG;
    struct sysmem *m = sysmem_new(&cfg);
    uint64_t a = sysmem_mmap(m, 0, 8 * PG, SYSMEM_PROT_RW);
    assert_true(a != SYSMEM_FAIL);
    assert_int_equal(sysmem_mmap(m, 0, 3 * PG, SYSMEM_PROT_RW), SYSMEM_FAIL);
    assert_true(sysmem_mmap(m, 0, 2 * PG, SYSMEM_PROT_RW) != SYSMEM_FAIL);
    assert_int_equal(sysmem_mremap(m, a, 8 * PG, 9 * PG, 1), SYSMEM_FAIL);
    assert_int_equal(sysmem_munmap(m, a, 8 * PG), 0);
    assert_true(sysmem_mmap(m, 0, 8 * PG, SYSMEM_PROT_RW) != SYSMEM_FAIL);
    assert_int_equal(sysmem_mmap(m, 0, 0, SYSMEM_PROT_RW), SYSMEM_FAIL);
    sysmem_free(m);
}

static void copy_moves_contents_and_residency(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t b0 = sysmem_brk_current(m);
    sysmem_sbrk(m, 64 * PG);
    for (uint64_t i = 0; i < 1024; i++)
        sysmem_store(m, b0 + 16 + i * 8, i + 1);
    uint64_t dst = b0 + 20 * PG + 48;                          /* different block offsets */
    sysmem_store(m, dst + 8 * 1030, 77);                     /* beyond the copied range */
    sysmem_store(m, dst + 8 * 2000, 99);                     /* inside, src has no data */
    uint64_t before = sysmem_resident_total(m);
    sysmem_copy(m, dst, b0 + 16, 8 * 1024 + 8 * 1000);
    for (uint64_t i = 0; i < 1024; i++)
        assert_int_equal(sysmem_load(m, dst + i * 8), i + 1);
    assert_int_equal(sysmem_load(m, dst + 8 * 2000), 0);
    assert_int_equal(sysmem_load(m, dst + 8 * 1030), 0);      /* src word 1030 is zero */
    assert_int_equal(sysmem_resident_pages(m, dst, dst + 8 * 2024), 4);
    assert_true(sysmem_resident_total(m) >= before);
    assert_int_equal(sysmem_fault_count(m), 0);
    sysmem_copy(m, dst, b0 + 100 * PG, 8);                    /* source outside */
    assert_int_equal(sysmem_fault_count(m), 1);
    sysmem_free(m);
}

/* A 10 GiB heap costs the host only what is written: residency is one bit a page, a stored
 * word costs its page's 4 KiB block plus its region's table (a few hundred bytes) and, in the
 * first SYSMEM_WINDOW_BYTES of the break area, the host page of the break window that lists its
 * block (one page for each 2 MiB with anything stored: here, one per two headers). */
static void ten_gib_heap_is_cheap(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    uint64_t b0 = sysmem_brk_current(m);
    uint64_t idle = sysmem_host_bytes(m);
    const uint64_t size = 10 * GiB;
    assert_int_equal(sysmem_sbrk(m, (int64_t)size), b0);
    assert_int_equal(sysmem_host_bytes(m), idle);
    sysmem_touch(m, b0, size);
    assert_int_equal(sysmem_resident_brk(m), size / PG);
    uint64_t touched = sysmem_host_bytes(m) - idle;
    assert_true(touched < size / PG);                          /* < 1 byte per page */
    /* a chunk header every 1 MiB */
    for (uint64_t off = 0; off < size; off += MiB)
        sysmem_store(m, b0 + off + 8, off | 1);
    uint64_t stored = sysmem_host_bytes(m) - idle - touched;
    assert_true(stored < (size / MiB) * (PG + 512) + (SYSMEM_WINDOW_BYTES / (2 * MiB)) * PG);
    assert_int_equal(sysmem_load(m, b0 + 5 * GiB + 8), (5 * GiB) | 1);
    assert_int_equal(sysmem_resident_pages(m, b0, b0 + size), size / PG);
    /* shrink most of it away: the host memory goes back */
    assert_int_equal(sysmem_sbrk(m, -(int64_t)(size - MiB)), b0 + size);
    assert_int_equal(sysmem_resident_brk(m), MiB / PG);
    assert_true(sysmem_host_bytes(m) - idle < 1 * MiB);
    sysmem_free(m);
}

/* ---- a randomized comparison with a naive model of the same rules ---- */

struct ref_map {
    uint64_t start, end;
    int prot;
};
struct ref {
    struct ref_map v[4096];
    int n;
};

static int ref_prot_at(const struct ref *r, uint64_t a) {
    for (int i = 0; i < r->n; i++)
        if (a >= r->v[i].start && a < r->v[i].end)
            return r->v[i].prot;
    return -1;
}

static int cmp_map(const void *a, const void *b) {
    const struct ref_map *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* the truth: the reference's intervals in [lo, hi), sorted, adjacent equal protections merged */
static int ref_runs(const struct ref *r, uint64_t lo, uint64_t hi, struct ref_map *out) {
    struct ref_map tmp[4096];
    int k = 0, n = 0;
    for (int i = 0; i < r->n; i++) {
        struct ref_map x = r->v[i];
        if (x.end <= lo || x.start >= hi)
            continue;
        x.start = x.start < lo ? lo : x.start;
        x.end = x.end > hi ? hi : x.end;
        tmp[k++] = x;
    }
    qsort(tmp, (size_t)k, sizeof *tmp, cmp_map);
    for (int i = 0; i < k; i++) {
        if (n && out[n - 1].end == tmp[i].start && out[n - 1].prot == tmp[i].prot)
            out[n - 1].end = tmp[i].end;
        else
            out[n++] = tmp[i];
    }
    return n;
}

static int ref_range_free(const struct ref *r, uint64_t lo, uint64_t hi) {
    for (int i = 0; i < r->n; i++)
        if (r->v[i].start < hi && r->v[i].end > lo)
            return 0;
    return 1;
}

/* top-down: the end of the highest gap in [floor, base) that holds len, minus len */
static uint64_t ref_place_plain(const struct ref *r, uint64_t floor, uint64_t base, uint64_t len) {
    static struct ref_map runs[4096];
    int n = ref_runs(r, floor, base, runs);
    uint64_t hi = base;
    for (int i = n - 1; i >= -1; i--) {
        uint64_t lo = i >= 0 ? runs[i].end : floor;
        if (hi >= lo && hi - lo >= len)
            return hi - len;
        if (i >= 0)
            hi = runs[i].start;
    }
    return SYSMEM_FAIL;
}

/* without a hint: 2 MiB multiples are searched with 2 MiB of slack and aligned down */
static uint64_t ref_place(const struct ref *r, uint64_t floor, uint64_t base, uint64_t len) {
    const uint64_t two = 2 * MiB;
    if (len % two == 0) {
        uint64_t a = ref_place_plain(r, floor, base, len + two);
        if (a != SYSMEM_FAIL)
            return (a + two) & ~(two - 1);
    }
    return ref_place_plain(r, floor, base, len);
}

static void ref_remove(struct ref *r, uint64_t lo, uint64_t hi) {
    struct ref nr;
    nr.n = 0;
    for (int i = 0; i < r->n; i++) {
        struct ref_map x = r->v[i];
        if (x.end <= lo || x.start >= hi) {
            nr.v[nr.n++] = x;
            continue;
        }
        if (x.start < lo)
            nr.v[nr.n++] = (struct ref_map){x.start, lo, x.prot};
        if (x.end > hi)
            nr.v[nr.n++] = (struct ref_map){hi, x.end, x.prot};
    }
    *r = nr;
}

struct collect {
    struct ref_map v[4096];
    int n;
};
static int collect_fn(void *ctx, uint64_t s, uint64_t e, int prot) {
    struct collect *c = ctx;
    c->v[c->n++] = (struct ref_map){s, e, prot};
    return 0;
}

static void random_ops_match_a_naive_model(void **state) {
    (void)state;
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    const uint64_t window = 8192 * PG;               /* a small area so holes matter */
    cfg.mmap_base = cfg.brk_start + 64 * PG + window;
    struct sysmem *m = sysmem_new(&cfg);
    uint64_t floor = cfg.brk_start + 64 * PG;
    uint64_t top = (uint64_t)1 << 47;              /* hints and growth may go above mmap_base */
    /* fill the space below the window so placement stays inside it */
    assert_int_equal(sysmem_mmap(m, 0x10000, floor - 0x10000, SYSMEM_PROT_NONE), 0x10000);
    struct ref *r = calloc(1, sizeof *r);
    struct ref_map *truth = calloc(4096, sizeof *truth);
    struct collect *got = calloc(1, sizeof *got);
    assert_non_null(r);
    uint64_t seed = 12345;
    for (int step = 0; step < 3000; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t x = seed >> 33;
        int op = (int)(x % 6);
        uint64_t z = (seed * 0x9E3779B97F4A7C15ull) >> 59;      /* 5 more bits */
        uint64_t len = z % 8 ? (1 + (x >> 3) % 24) * PG : (1 + (z >> 4)) * 2 * MiB;
        uint64_t at = floor + ((x >> 8) % 8192) * PG;
        int prot = (x >> 20) & 1 ? SYSMEM_PROT_RW : SYSMEM_PROT_NONE;
        if (op <= 1) {
            uint64_t hint = op == 1 ? at : 0;
            uint64_t want = SYSMEM_FAIL;
            if (hint && ref_range_free(r, hint, hint + len))
                want = hint;
            if (want == SYSMEM_FAIL)
                want = hint ? ref_place_plain(r, floor, cfg.mmap_base, len)
                            : ref_place(r, floor, cfg.mmap_base, len);
            uint64_t got_addr = sysmem_mmap(m, hint, len, prot);
            if (want == SYSMEM_FAIL) {
                /* our window is full; the model may place below the floor only if free there,
                 * and it is not */
                assert_int_equal(got_addr, SYSMEM_FAIL);
                continue;
            }
            assert_int_equal(got_addr, want);
            r->v[r->n++] = (struct ref_map){want, want + len, prot};
        } else if (op == 2 || op == 5) {
            assert_int_equal(sysmem_munmap(m, at, len), 0);
            ref_remove(r, at, at + len);
        } else if (op == 3) {
            int mapped = 1;
            for (uint64_t a = at; a < at + len; a += PG)
                mapped &= ref_prot_at(r, a) >= 0;
            int rc = sysmem_mprotect(m, at, len, prot);
            assert_int_equal(rc, mapped ? 0 : -1);
            if (mapped) {
                ref_remove(r, at, at + len);
                r->v[r->n++] = (struct ref_map){at, at + len, prot};
            }
        } else if (op == 4) {
            /* mremap a whole merged run grown by len (may move) */
            int n = ref_runs(r, floor, top, truth);
            if (!n)
                continue;
            struct ref_map run = truth[(x >> 12) % (uint64_t)n];
            uint64_t old_len = run.end - run.start;
            uint64_t new_len = old_len + len;
            uint64_t want;
            if (ref_range_free(r, run.end, run.end + len))
                want = run.start;
            else
                want = ref_place(r, floor, cfg.mmap_base, new_len);
            uint64_t res = sysmem_mremap(m, run.start, old_len, new_len, 1);
            if (getenv("SIM_DEBUG"))
                fprintf(stderr, "mremap %llx-%llx +%llx -> %llx want %llx\n",
                        (unsigned long long)run.start, (unsigned long long)run.end,
                        (unsigned long long)len, (unsigned long long)res,
                        (unsigned long long)want);
            assert_int_equal(res, want);
            if (want != SYSMEM_FAIL) {
                ref_remove(r, run.start, run.end);
                r->v[r->n++] = (struct ref_map){want, want + new_len, run.prot};
            }
        }
        /* compress the reference now and then */
        if (r->n > 200) {
            int n = ref_runs(r, floor, top, truth);
            memcpy(r->v, truth, (size_t)n * sizeof *truth);
            r->n = n;
        }
        if (getenv("SIM_DEBUG"))
            fprintf(stderr, "step %d op %d len %llx at %llx prot %d\n", step, op,
                    (unsigned long long)len, (unsigned long long)at, prot);
        if (step % 25 == 0 || getenv("SIM_DEBUG")) {
            int n = ref_runs(r, floor, top, truth);
            got->n = 0;
            sysmem_mappings(m, collect_fn, got);
            /* the first mapping is the filler (it merges with a NONE run at the floor) */
            int gi = 0;
            if (getenv("SIM_DEBUG")) {
                for (int i = 0; i < n; i++)
                    fprintf(stderr, " ref %llx-%llx %d\n", (unsigned long long)truth[i].start,
                            (unsigned long long)truth[i].end, truth[i].prot);
                for (int i = 0; i < got->n; i++)
                    fprintf(stderr, " got %llx-%llx %d\n", (unsigned long long)got->v[i].start,
                            (unsigned long long)got->v[i].end, got->v[i].prot);
            }
            for (int i = 0; i < n; i++) {
                while (gi < got->n && got->v[gi].end <= floor)
                    gi++;
                assert_true(gi < got->n);
                uint64_t s = got->v[gi].start < floor ? floor : got->v[gi].start;
                assert_int_equal(s, truth[i].start);
                assert_int_equal(got->v[gi].end, truth[i].end);
                assert_int_equal(got->v[gi].prot, truth[i].prot);
                gi++;
            }
            while (gi < got->n && got->v[gi].end <= floor)
                gi++;
            assert_int_equal(gi, got->n);
            uint64_t bytes = 0;
            for (int i = 0; i < got->n; i++)
                bytes += got->v[i].end - got->v[i].start;
            assert_int_equal(sysmem_mapped_bytes(m), bytes);
        }
    }
    free(r);
    free(truth);
    free(got);
    sysmem_free(m);
}

/* ---- contents against a naive reference, through protection changes and moves ----
 *
 * Words stored, read back, mprotected away and back, unmapped, discarded and moved by mremap in
 * a 512-page window (16 of the 128 KiB regions the access cache works by): every load must give
 * what the reference holds (zero for unwritten or dropped memory) and every access to a page that
 * is not read/write must count a fault, whatever the cache holds at that moment. */

#define CW_PAGES 512
#define CW_WORDS (PG / 8)

struct content_ref {
    int prot[CW_PAGES];                 /* -1 unmapped */
    uint64_t word[CW_PAGES][CW_WORDS];
};

static void cw_zero(struct content_ref *r, uint64_t pg) {
    memset(r->word[pg], 0, sizeof r->word[pg]);
}

/* The longest run from page `pg` with one protection, at most `max` pages. */
static uint64_t cw_run(const struct content_ref *r, uint64_t pg, uint64_t max) {
    uint64_t n = 0;
    while (pg + n < CW_PAGES && n < max && r->prot[pg + n] == r->prot[pg])
        n++;
    return n;
}

static void contents_follow_protection_and_moves(void **state) {
    (void)state;
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    uint64_t floor = (cfg.brk_start + 64 * PG + (2 * MiB - 1)) & ~(2 * MiB - 1);
    cfg.mmap_base = floor + CW_PAGES * PG;
    cfg.thp_align = 0;
    struct sysmem *m = sysmem_new(&cfg);
    assert_non_null(m);
    /* everything below the window is taken, so every placement lands inside it */
    assert_int_equal(sysmem_mmap(m, 0x10000, floor - 0x10000, SYSMEM_PROT_NONE), 0x10000);
    struct content_ref *r = calloc(1, sizeof *r);
    assert_non_null(r);
    for (int i = 0; i < CW_PAGES; i++)
        r->prot[i] = -1;
    uint64_t faults = sysmem_fault_count(m);
    uint64_t seed = 777;
    for (int step = 0; step < 6000; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t x = seed >> 20;
        uint64_t pg = (x >> 4) % CW_PAGES;
        uint64_t len = 1 + (x >> 14) % 40;
        if (pg + len > CW_PAGES)
            len = CW_PAGES - pg;
        uint64_t addr = floor + pg * PG;
        int prot = (x >> 20) % 3 ? SYSMEM_PROT_RW : SYSMEM_PROT_NONE;
        switch (x % 16) {
        case 0: {   /* mmap at a hint: expected there only when the range is free */
            int is_free = 1;
            for (uint64_t i = 0; i < len; i++)
                is_free &= r->prot[pg + i] < 0;
            uint64_t got = sysmem_mmap(m, addr, len * PG, prot);
            if (is_free)
                assert_int_equal(got, addr);
            if (got == SYSMEM_FAIL)
                break;
            assert_true(got >= floor && got + len * PG <= floor + CW_PAGES * PG);
            for (uint64_t i = 0; i < len; i++) {
                uint64_t q = (got - floor) / PG + i;
                assert_true(r->prot[q] < 0);
                r->prot[q] = prot;
                cw_zero(r, q);
            }
            break;
        }
        case 1:
            assert_int_equal(sysmem_munmap(m, addr, len * PG), 0);
            for (uint64_t i = 0; i < len; i++) {
                r->prot[pg + i] = -1;
                cw_zero(r, pg + i);
            }
            break;
        case 2: case 3: {
            int mapped = 1;
            for (uint64_t i = 0; i < len; i++)
                mapped &= r->prot[pg + i] >= 0;
            assert_int_equal(sysmem_mprotect(m, addr, len * PG, prot), mapped ? 0 : -1);
            if (mapped)
                for (uint64_t i = 0; i < len; i++)
                    r->prot[pg + i] = prot;
            break;
        }
        case 4: {
            int mapped = 1;
            for (uint64_t i = 0; i < len; i++)
                mapped &= r->prot[pg + i] >= 0;
            assert_int_equal(sysmem_madvise_dontneed(m, addr, len * PG), mapped ? 0 : -1);
            for (uint64_t i = 0; i < len; i++)
                cw_zero(r, pg + i);
            break;
        }
        case 5: {   /* mremap part of one mapping, growing or shrinking, maybe moving */
            if (r->prot[pg] < 0)
                break;
            uint64_t old = cw_run(r, pg, len);
            uint64_t nl = 1 + (x >> 24) % 48;
            if (pg + nl > CW_PAGES)     /* growing in place must stay in the window */
                nl = CW_PAGES - pg;
            uint64_t got = sysmem_mremap(m, addr, old * PG, nl * PG, 1);
            if (got == SYSMEM_FAIL)
                break;
            int p = r->prot[pg];
            uint64_t keep = nl < old ? nl : old;
            static uint64_t saved[48][CW_WORDS];
            for (uint64_t i = 0; i < keep; i++)
                memcpy(saved[i], r->word[pg + i], sizeof saved[i]);
            if (got != addr || nl < old)
                for (uint64_t i = got == addr ? nl : 0; i < old; i++) {
                    r->prot[pg + i] = -1;
                    cw_zero(r, pg + i);
                }
            assert_true(got >= floor && got + nl * PG <= floor + CW_PAGES * PG);
            uint64_t q0 = (got - floor) / PG;
            for (uint64_t i = 0; i < nl; i++) {
                if (i >= old || got != addr)
                    assert_true(r->prot[q0 + i] < 0);
                r->prot[q0 + i] = p;
                if (i < keep)
                    memcpy(r->word[q0 + i], saved[i], sizeof saved[i]);
                else
                    cw_zero(r, q0 + i);
            }
            break;
        }
        default: {  /* stores and loads, a few words of a few pages */
            for (int k = 0; k < 8; k++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                uint64_t y = seed >> 16;
                uint64_t q = (pg + (y & 7)) % CW_PAGES;
                uint64_t w = (y >> 3) % 64 * 8 + (y >> 9) % 8;   /* clustered words */
                uint64_t a = floor + q * PG + w * 8;
                if ((y >> 12) & 1) {
                    uint64_t v = y | 1;
                    sysmem_store(m, a, v);
                    if (r->prot[q] == SYSMEM_PROT_RW)
                        r->word[q][w] = v;
                    else
                        faults++;
                } else {
                    uint64_t v = sysmem_load(m, a);
                    if (r->prot[q] == SYSMEM_PROT_RW) {
                        assert_int_equal(v, r->word[q][w]);
                    } else {
                        assert_int_equal(v, 0);
                        faults++;
                    }
                }
                assert_int_equal(sysmem_fault_count(m), faults);
            }
            break;
        }
        }
        if (step % 500 == 499) {
            for (uint64_t q = 0; q < CW_PAGES; q++) {
                if (r->prot[q] != SYSMEM_PROT_RW)
                    continue;
                for (uint64_t w = 0; w < CW_WORDS; w++)
                    assert_int_equal(sysmem_load(m, floor + q * PG + w * 8), r->word[q][w]);
            }
            assert_int_equal(sysmem_fault_count(m), faults);
        }
    }
    free(r);
    sysmem_free(m);
}

/* Resident pages over whole 64 MiB-aligned zones (read from a counter) and over ranges that cut
 * through them agree with a page-by-page count, through stores, touches, drops and moves. */
static uint64_t resident_by_page(struct sysmem *m, uint64_t lo, uint64_t hi) {
    uint64_t n = 0;
    for (uint64_t a = lo; a < hi; a += PG)
        n += sysmem_resident_pages(m, a, a + PG);
    return n;
}

static void resident_counts_over_zones(void **state) {
    (void)state;
    struct sysmem *m = fresh();
    const uint64_t zone = 64 * MiB;
    uint64_t big = sysmem_mmap(m, 0, 4 * zone, SYSMEM_PROT_RW);
    assert_int_not_equal(big, SYSMEM_FAIL);
    uint64_t z0 = (big + zone - 1) & ~(zone - 1);          /* two whole zones inside */
    uint64_t seed = 99;
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 3000; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t off = (seed >> 20) % (2 * zone + 2 * MiB) / 8 * 8;
            uint64_t a = z0 - MiB + off;
            if ((seed >> 12) & 1)
                sysmem_store(m, a, seed | 1);
            else
                sysmem_touch(m, a, 1 + (seed >> 40) % (3 * PG));
        }
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t cut = z0 + (seed >> 30) % (2 * zone / PG - 64) * PG;
        assert_int_equal(sysmem_madvise_dontneed(m, cut, 40 * PG), 0);
        assert_int_equal(sysmem_resident_pages(m, z0, z0 + zone), resident_by_page(m, z0, z0 + zone));
        assert_int_equal(sysmem_resident_pages(m, z0, z0 + 2 * zone),
                         resident_by_page(m, z0, z0 + 2 * zone));
        uint64_t lo = z0 - 3 * PG, hi = z0 + 2 * zone + 5 * PG;
        assert_int_equal(sysmem_resident_pages(m, lo, hi), resident_by_page(m, lo, hi));
        assert_int_equal(sysmem_resident_pages(m, z0 + 7 * PG, z0 + zone + 9 * PG),
                         resident_by_page(m, z0 + 7 * PG, z0 + zone + 9 * PG));
        assert_int_equal(sysmem_resident_pages(m, big, big + 4 * zone), sysmem_resident_total(m));
    }
    /* moved away (a page mapped right after it stops growth in place), the zones are empty */
    assert_int_equal(sysmem_mmap(m, big + 4 * zone, PG, SYSMEM_PROT_NONE), big + 4 * zone);
    uint64_t moved = sysmem_mremap(m, big, 4 * zone, 5 * zone, 1);
    assert_int_not_equal(moved, big);
    assert_int_equal(sysmem_resident_pages(m, z0, z0 + 2 * zone), 0);
    assert_int_equal(sysmem_resident_pages(m, moved, moved + 5 * zone), sysmem_resident_total(m));
    assert_int_equal(sysmem_fault_count(m), 0);
    sysmem_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_layout),
        cmocka_unit_test(bad_config_is_refused),
        cmocka_unit_test(sbrk_moves_the_break),
        cmocka_unit_test(sbrk_shrink_drops_pages_wholly_above),
        cmocka_unit_test(sbrk_respects_brk_limit),
        cmocka_unit_test(sbrk_keeps_a_guard_page_below_a_mapping),
        cmocka_unit_test(mmap_is_top_down_and_reuses_holes),
        cmocka_unit_test(mmap_hint_is_used_when_free),
        cmocka_unit_test(glibc_heap_sequence),
        cmocka_unit_test(thp_alignment_of_large_mappings),
        cmocka_unit_test(partial_munmap_and_mprotect_split),
        cmocka_unit_test(mremap_grows_in_place_moves_and_shrinks),
        cmocka_unit_test(loads_stores_and_residency),
        cmocka_unit_test(values_survive_cache_pressure),
        cmocka_unit_test(faults_are_counted_not_fatal),
        cmocka_unit_test(mmap_limit_is_enforced),
        cmocka_unit_test(copy_moves_contents_and_residency),
        cmocka_unit_test(ten_gib_heap_is_cheap),
        cmocka_unit_test(random_ops_match_a_naive_model),
        cmocka_unit_test(contents_follow_protection_and_moves),
        cmocka_unit_test(resident_counts_over_zones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
