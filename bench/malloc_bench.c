/* malloc_bench.c: a malloc/free storm for measuring the recorder's cost.
 *
 *   malloc_bench THREADS EVENTS
 *
 * Each of THREADS threads makes EVENTS/THREADS calls: it keeps 1024 slots, picks one with a
 * xorshift generator, frees it if it is taken, else mallocs 16..4096 bytes into it (and touches
 * the first word). Prints the calls made and the seconds the storm took.
 *
 * With MALLOC_BENCH_COUNT=1 it also prints, on stderr, what the storm cost the program's own
 * threads: user+system CPU seconds and (where perf events are allowed) instructions and cycles,
 * counted from just before the storm to its end. A preloaded recorder's flusher task is not
 * one of those threads, so this is the program side of its cost alone. */
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

/* A counter of the calling thread and the threads it creates from now on (inherit). */
static int counter_open(uint64_t config)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_HARDWARE;
    a.config = config;
    a.inherit = 1;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

static double counter_read(int fd)
{
    uint64_t v = 0;
    if (fd < 0 || read(fd, &v, sizeof v) != sizeof v)
        return -1;
    return (double)v;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
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
    const char *count = getenv("MALLOC_BENCH_COUNT");
    int counting = count && *count == '1';
    int fd_ins = counting ? counter_open(PERF_COUNT_HW_INSTRUCTIONS) : -1;
    int fd_cyc = counting ? counter_open(PERF_COUNT_HW_CPU_CYCLES) : -1;
    double cpu0 = cpu_seconds();
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
    if (counting)
        fprintf(stderr, "malloc_bench cpu_s=%.3f instructions=%.0f cycles=%.0f\n",
                cpu_seconds() - cpu0, counter_read(fd_ins), counter_read(fd_cyc));
    printf("%ld calls in %.3f s\n", per_thread * threads,
           (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9);
    return 0;
}
