/* mt_alloc.c: a multi-threaded allocation workload for the replayer's real-program tests.
 *
 * Usage: mt_alloc [THREADS [ITERATIONS]]. THREADS workers (default 4) run truly concurrently:
 * each allocates blocks of pseudo-random sizes (mostly small, some of a few KiB, a few large
 * enough to be mmapped), keeps up to 64 of them, frees a random one now and then, reallocs some,
 * and hands every 16th block to a shared queue from which any worker frees it (frees from a
 * thread that is not the allocating one, into another arena). With MALLOC_ARENA_MAX below the
 * thread count, threads also share arenas, so the order in which they take an arena's lock is
 * decided by the scheduler: this is what --arenas recorded must replay.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64
#define QUEUE 1024

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static void *queue[QUEUE];
static unsigned queue_len;
static unsigned iterations = 20000;

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *s)
{
    uint64_t r = next_rand(s) % 1000;
    if (r < 700)
        return 8 + next_rand(s) % 256;
    if (r < 980)
        return 256 + next_rand(s) % 4000;
    if (r < 998)
        return 4096 + next_rand(s) % 60000;
    return 150000 + next_rand(s) % 200000;
}

static void *worker(void *arg)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
    void *slot[SLOTS] = {0};
    for (unsigned i = 0; i < iterations; i++) {
        unsigned k = (unsigned)(next_rand(&seed) % SLOTS);
        if (slot[k] && next_rand(&seed) % 8 == 0) {
            void *p = realloc(slot[k], pick_size(&seed));
            if (p)
                slot[k] = p;
            continue;
        }
        if (slot[k]) {
            if (i % 16 == 0) {
                pthread_mutex_lock(&queue_lock);
                if (queue_len < QUEUE) {
                    queue[queue_len++] = slot[k];
                    slot[k] = NULL;
                }
                pthread_mutex_unlock(&queue_lock);
            }
            free(slot[k]);
            slot[k] = NULL;
        }
        size_t n = pick_size(&seed);
        slot[k] = malloc(n);
        if (slot[k])
            memset(slot[k], (int)i, n < 64 ? n : 64);
        if (i % 5 == 0) {
            pthread_mutex_lock(&queue_lock);
            void *q = queue_len ? queue[--queue_len] : NULL;
            pthread_mutex_unlock(&queue_lock);
            free(q);
        }
    }
    for (unsigned k = 0; k < SLOTS; k++)
        free(slot[k]);
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
    if (argc > 2)
        iterations = (unsigned)atoi(argv[2]);
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "usage: mt_alloc [THREADS (1..64) [ITERATIONS]]\n");
        return 2;
    }
    pthread_t th[64];
    for (unsigned t = 0; t < threads; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t) != 0) {
            perror("pthread_create");
            return 1;
        }
    for (unsigned t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    while (queue_len)
        free(queue[--queue_len]);
    printf("done: %u threads x %u iterations\n", threads, iterations);
    return 0;
}
