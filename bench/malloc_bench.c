/* malloc_bench.c: a malloc/free storm for measuring the recorder's cost.
 *
 *   malloc_bench THREADS EVENTS
 *
 * Each of THREADS threads makes EVENTS/THREADS calls: it keeps 1024 slots, picks one with a
 * xorshift generator, frees it if it is taken, else mallocs 16..4096 bytes into it (and touches
 * the first word). Prints the calls made and the seconds the storm took. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SLOTS 1024

static long per_thread;

static void *storm(void *arg)
{
    uint64_t x = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)arg;
    void **slot = calloc(SLOTS, sizeof *slot);
    long calls = 1;          /* the calloc above */
    while (calls < per_thread) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned i = (unsigned)(x % SLOTS);
        if (slot[i]) {
            free(slot[i]);
            slot[i] = NULL;
        } else {
            slot[i] = malloc(16 + (size_t)((x >> 20) % 4081));
            *(volatile char *)slot[i] = 1;
        }
        calls++;
    }
    for (unsigned i = 0; i < SLOTS; i++)
        free(slot[i]);
    free(slot);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    long events = argc > 2 ? atol(argv[2]) : 20000000L;
    if (threads < 1 || threads > 64 || events < threads) {
        fprintf(stderr, "usage: malloc_bench THREADS EVENTS\n");
        return 2;
    }
    per_thread = events / threads;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (threads == 1) {
        storm((void *)1);
    } else {
        pthread_t th[64];
        for (int i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, storm, (void *)(uintptr_t)(i + 1));
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%ld calls in %.3f s\n", per_thread * threads,
           (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9);
    return 0;
}
