/* contended_prog.c: threads that really share glibc arenas at the same time.
 *
 *   contended_prog THREADS ITERATIONS
 *
 * Run with MALLOC_ARENA_MAX=2 (or any limit below the thread count): THREADS workers - half of
 * them run ITERATIONS/2 steps and exit while the others run ITERATIONS, and are then replaced by
 * as many new ones (which pick up the arenas the exited ones left) - allocate blocks of mixed sizes (mostly small, some a few KiB, a few large enough to be
 * mmapped), free and realloc them, and pass every 12th block through a shared queue to be freed
 * by whichever worker takes it (a free into another thread's arena). The order in which they
 * take each arena's lock is up to the scheduler: the recorder must number their calls in that
 * order. Prints nothing but a final line.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 48
#define QUEUE 512

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static void *queue[QUEUE];
static unsigned queue_len;
static unsigned iterations;

struct job {
    unsigned id, steps;
};

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t size_for(uint64_t *s)
{
    uint64_t r = next(s) % 1000;
    if (r < 650)
        return 16 + next(s) % 240;
    if (r < 985)
        return 256 + next(s) % 3800;
    if (r < 998)
        return 4096 + next(s) % 50000;
    return 140000 + next(s) % 150000;
}

static void *worker(void *arg)
{
    const struct job *job = arg;
    uint64_t seed = 0x2545F4914F6CDD1Dull * (job->id + 3);
    void *slot[SLOTS] = {0};
    for (unsigned i = 0; i < job->steps; i++) {
        unsigned k = (unsigned)(next(&seed) % SLOTS);
        if (slot[k] && next(&seed) % 6 == 0) {
            void *p = realloc(slot[k], size_for(&seed));
            if (p)
                slot[k] = p;
            continue;
        }
        if (slot[k] && i % 12 == 0) {
            pthread_mutex_lock(&queue_lock);
            if (queue_len < QUEUE) {
                queue[queue_len++] = slot[k];
                slot[k] = NULL;
            }
            pthread_mutex_unlock(&queue_lock);
        }
        free(slot[k]);
        size_t n = size_for(&seed);
        slot[k] = malloc(n);
        if (slot[k])
            memset(slot[k], (int)i, n < 32 ? n : 32);
        if (i % 4 == 0) {
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
    iterations = argc > 2 ? (unsigned)atoi(argv[2]) : 20000;
    if (threads < 2 || threads > 32 || iterations < 1) {
        fprintf(stderr, "usage: contended_prog THREADS (2..32) ITERATIONS\n");
        return 2;
    }
    pthread_t th[48];
    struct job jobs[48];
    unsigned half = threads / 2, n = 0;
    for (unsigned t = 0; t < threads; t++, n++) {
        jobs[n] = (struct job){n, t < half ? iterations / 2 : iterations};
        pthread_create(&th[n], NULL, worker, &jobs[n]);
    }
    for (unsigned t = 0; t < half; t++)
        pthread_join(th[t], NULL);
    for (unsigned t = 0; t < half; t++, n++) {
        jobs[n] = (struct job){n, iterations / 2};
        pthread_create(&th[n], NULL, worker, &jobs[n]);
    }
    for (unsigned t = half; t < n; t++)
        pthread_join(th[t], NULL);
    while (queue_len)
        free(queue[--queue_len]);
    printf("contended: %u threads x %u iterations\n", threads, iterations);
    return 0;
}
