/* bench_sysmem.c: prints the cost of sysmem_load/sysmem_store (ns/op) in a few access patterns
 * the allocator model produces. Not a test: nothing is asserted on time.
 *
 *   hot        a few chunk headers and bin heads, over and over (cache hits)
 *   heap walk  headers every 48..1040 bytes through a 64 MiB heap (mostly misses)
 *   scattered  pseudo-random words in a 1 GiB heap (misses and page-table walks)
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "sysmem.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t sink;

int main(void) {
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    struct sysmem *m = sysmem_new(&cfg);
    if (!m)
        return 1;
    uint64_t b0 = sysmem_brk_current(m);
    sysmem_sbrk(m, (int64_t)1 << 30);

    /* hot: the arena's bins (2 KiB) and 16 chunk headers in the first pages */
    const uint64_t n_hot = 50u * 1000 * 1000;
    uint64_t acc = 0;
    double t0 = now_ns();
    for (uint64_t i = 0; i < n_hot; i++) {
        uint64_t a = b0 + ((i * 40) & 0x7f8) + ((i & 15) << 12);
        sysmem_store(m, a, i);
    }
    double t1 = now_ns();
    for (uint64_t i = 0; i < n_hot; i++) {
        uint64_t a = b0 + ((i * 40) & 0x7f8) + ((i & 15) << 12);
        acc += sysmem_load(m, a);
    }
    double t2 = now_ns();
    printf("hot        store %6.2f ns/op   load %6.2f ns/op\n", (t1 - t0) / (double)n_hot,
           (t2 - t1) / (double)n_hot);

    /* heap walk: chunk headers through 64 MiB, sizes cycling 48..1040 */
    const uint64_t span = 64u << 20;
    uint64_t n_walk = 0;
    t0 = now_ns();
    for (int rep = 0; rep < 10; rep++)
        for (uint64_t off = 0, k = 0; off + 1040 < span; off += 48 + (k++ % 63) * 16) {
            sysmem_store(m, b0 + off + 8, off);
            n_walk++;
        }
    t1 = now_ns();
    for (int rep = 0; rep < 10; rep++)
        for (uint64_t off = 0, k = 0; off + 1040 < span; off += 48 + (k++ % 63) * 16)
            acc += sysmem_load(m, b0 + off + 8);
    t2 = now_ns();
    printf("heap walk  store %6.2f ns/op   load %6.2f ns/op\n", (t1 - t0) / (double)n_walk,
           (t2 - t1) / (double)n_walk);

    /* scattered: random words in 1 GiB */
    const uint64_t n_rand = 5u * 1000 * 1000;
    uint64_t x = 88172645463325252ull;
    t0 = now_ns();
    for (uint64_t i = 0; i < n_rand; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        sysmem_store(m, b0 + (x & ((1u << 30) - 8)), i);
    }
    t1 = now_ns();
    x = 88172645463325252ull;
    for (uint64_t i = 0; i < n_rand; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        acc += sysmem_load(m, b0 + (x & ((1u << 30) - 8)));
    }
    t2 = now_ns();
    printf("scattered  store %6.2f ns/op   load %6.2f ns/op\n", (t1 - t0) / (double)n_rand,
           (t2 - t1) / (double)n_rand);
    printf("host bytes %llu for %llu resident pages\n",
           (unsigned long long)sysmem_host_bytes(m), (unsigned long long)sysmem_resident_total(m));
    sink = acc;
    sysmem_free(m);
    return 0;
}
