/* bench_sysmem.c: prints the cost of sysmem_load/sysmem_store (ns per access) in access patterns
 * like the allocator model's. Not a test: nothing is asserted on time.
 *
 *   bench_sysmem [hot|walk|mini|scattered]     all patterns, or the one named
 *
 *   hot        a few chunk headers and bin heads, over and over (cache hits)
 *   walk       headers every 48..1040 bytes through a 1, 8 or 64 MiB heap (mostly misses)
 *   mini       a tcache-like allocator: free-list heads, headers, links, a bump top; printed
 *              next to the same code on plain host memory, the floor any model pays
 *   scattered  pseudo-random words in a 1 GiB heap (misses, page-table walks, host allocation)
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "sysmem.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t sink;

static struct sysmem *heap(uint64_t size, uint64_t *base) {
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    struct sysmem *m = sysmem_new(&cfg);
    if (!m)
        return NULL;
    *base = sysmem_brk_current(m);
    sysmem_sbrk(m, (int64_t)size);
    return m;
}

static void bench_hot(void) {
    uint64_t b0;
    struct sysmem *m = heap(1 << 20, &b0);
    const uint64_t n = 50u * 1000 * 1000;
    uint64_t acc = 0;
    double t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        sysmem_store(m, b0 + ((i * 40) & 0x7f8) + ((i & 15) << 12), i);
    double t1 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        acc += sysmem_load(m, b0 + ((i * 40) & 0x7f8) + ((i & 15) << 12));
    double t2 = now_ns();
    printf("hot          store %6.2f ns   load %6.2f ns\n", (t1 - t0) / (double)n,
           (t2 - t1) / (double)n);
    sink = acc;
    sysmem_free(m);
}

static void bench_walk(void) {
    uint64_t b0, acc = 0;
    struct sysmem *m = heap(64u << 20, &b0);
    for (uint64_t span = 1u << 20; span <= 64u << 20; span *= 8) {
        uint64_t n = 0;
        int reps = (int)((640u << 20) / span);
        double t0 = now_ns();
        for (int rep = 0; rep < reps; rep++)
            for (uint64_t off = 0, k = 0; off + 1040 < span; off += 48 + (k++ % 63) * 16) {
                sysmem_store(m, b0 + off + 8, off);
                n++;
            }
        double t1 = now_ns();
        for (int rep = 0; rep < reps; rep++)
            for (uint64_t off = 0, k = 0; off + 1040 < span; off += 48 + (k++ % 63) * 16)
                acc += sysmem_load(m, b0 + off + 8);
        double t2 = now_ns();
        printf("walk %2llu MiB  store %6.2f ns   load %6.2f ns\n",
               (unsigned long long)(span >> 20), (t1 - t0) / (double)n, (t2 - t1) / (double)n);
    }
    sink = acc;
    sysmem_free(m);
}

/* The tiny allocator, written once over two memories. */
#define MINI_SLOTS 20000
#define MINI_STEPS 4000000
#define MINI_BODY(LD, ST)                                                                      \
    do {                                                                                       \
        static uint64_t slot[MINI_SLOTS];                                                      \
        memset(slot, 0, sizeof slot);                                                          \
        uint64_t top = hb + 0x290, y = 2463534242u;                                            \
        for (int step = 0; step < MINI_STEPS; step++) {                                        \
            y ^= y << 13, y ^= y >> 17, y ^= y << 5;                                           \
            uint64_t *sl = &slot[y % MINI_SLOTS];                                              \
            if (*sl) {                                                                         \
                uint64_t size = LD(*sl - 8) & ~(uint64_t)7;                                    \
                uint64_t head = hb + 16 + ((size - 32) / 16) * 8;                              \
                ST(*sl, LD(head));                                                             \
                ST(head, *sl);                                                                 \
                *sl = 0;                                                                       \
                accesses += 4;                                                                 \
            } else {                                                                           \
                uint64_t size = 32 + ((y >> 8) % 64) * 16;                                     \
                uint64_t head = hb + 16 + ((size - 32) / 16) * 8;                              \
                uint64_t p = LD(head);                                                         \
                if (p) {                                                                       \
                    ST(head, LD(p));                                                           \
                    accesses += 3;                                                             \
                } else {                                                                       \
                    p = top + 16;                                                              \
                    ST(top + 8, size | 1);                                                     \
                    top += size;                                                               \
                    accesses += 2;                                                             \
                }                                                                              \
                *sl = p;                                                                       \
            }                                                                                  \
        }                                                                                      \
        heap_bytes = top - hb;                                                                 \
    } while (0)

static void bench_mini(void) {
    uint64_t hb, accesses = 0, heap_bytes = 0;
    struct sysmem *m = heap(1u << 30, &hb);
#define SIM_LD(a) sysmem_load(m, (a))
#define SIM_ST(a, v) sysmem_store(m, (a), (v))
    double t0 = now_ns();
    MINI_BODY(SIM_LD, SIM_ST);
    double t1 = now_ns();
    double sim = (t1 - t0) / (double)accesses;
    sysmem_free(m);

    char *host = mmap(NULL, 1u << 30, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (host == MAP_FAILED)
        return;
    hb = 4096;
    accesses = 0;
#define HOST_LD(a) (*(volatile uint64_t *)(void *)(host + (a)))
#define HOST_ST(a, v) (*(volatile uint64_t *)(void *)(host + (a)) = (v))
    t0 = now_ns();
    MINI_BODY(HOST_LD, HOST_ST);
    t1 = now_ns();
    munmap(host, 1u << 30);
    printf("mini         %6.2f ns per access (host memory: %.2f ns; heap %llu KiB)\n", sim,
           (t1 - t0) / (double)accesses, (unsigned long long)(heap_bytes >> 10));
}

static void bench_scattered(void) {
    uint64_t b0, acc = 0;
    struct sysmem *m = heap(1u << 30, &b0);
    const uint64_t n = 5u * 1000 * 1000;
    uint64_t x = 88172645463325252ull;
    double t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        sysmem_store(m, b0 + (x & ((1u << 30) - 8)), i);
    }
    double t1 = now_ns();
    x = 88172645463325252ull;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        acc += sysmem_load(m, b0 + (x & ((1u << 30) - 8)));
    }
    double t2 = now_ns();
    printf("scattered    store %6.2f ns   load %6.2f ns   (host %llu MiB for %llu pages)\n",
           (t1 - t0) / (double)n, (t2 - t1) / (double)n,
           (unsigned long long)(sysmem_host_bytes(m) >> 20),
           (unsigned long long)sysmem_resident_total(m));
    sink = acc;
    sysmem_free(m);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "hot"))
        bench_hot();
    if (!only || !strcmp(only, "walk"))
        bench_walk();
    if (!only || !strcmp(only, "mini"))
        bench_mini();
    if (!only || !strcmp(only, "scattered"))
        bench_scattered();
    return 0;
}
