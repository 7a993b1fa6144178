/* mt_workload.c: threads that allocate at the same time, for the tests that record real
 * multi-threaded programs (tests/record's contended arenas, tests/replayer's real programs).
 *
 *   mt_workload contended THREADS ITERATIONS
 *   mt_workload mixed [THREADS [ITERATIONS]]          (defaults: 4 threads, 20000)
 *
 * Each worker keeps a few dozen blocks in slots: at each step it picks a slot and either
 * reallocs its block or frees it (every Nth one through a shared queue, so that whichever worker
 * takes it frees it: a free into another thread's arena) and mallocs a new one of a size from a
 * mix (mostly small, some a few KiB, a few large enough to be mmapped), writing its first bytes;
 * every few steps it frees a block from the queue. With MALLOC_ARENA_MAX below the thread count
 * the threads share arenas, and the order in which they take an arena's lock is the scheduler's:
 * what the recorder must number and a replay with --arenas recorded must follow.
 *
 * The two profiles are the two workloads the tests were tuned with (slot and queue sizes, size
 * mix, odds). `contended` also replaces half of its threads: half run ITERATIONS/2 steps and
 * exit while the others run ITERATIONS, and as many new ones then pick up the arenas the
 * exited ones left. Prints nothing but a final line.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SLOTS 64
#define MAX_QUEUE 1024
#define MAX_THREADS 64

struct size_class {
    unsigned per_mille;                  /* cumulative odds */
    size_t base, range;
};

struct profile {
    const char *name;
    unsigned slots, queue_cap;
    uint64_t seed_mul;
    unsigned realloc_one_in, handoff_every, drain_every, write_bytes;
    int free_only_full_slots;            /* free(slot) only when it holds a block */
    int replace_half;
    unsigned min_threads;
    struct size_class sizes[4];
};

static const struct profile profiles[] = {
    {"contended", 48, 512, 0x2545F4914F6CDD1Dull, 6, 12, 4, 32, 0, 1, 2,
     {{650, 16, 240}, {985, 256, 3800}, {998, 4096, 50000}, {1000, 140000, 150000}}},
    {"mixed", 64, 1024, 0x9e3779b97f4a7c15ull, 8, 16, 5, 64, 1, 0, 1,
     {{700, 8, 256}, {980, 256, 4000}, {998, 4096, 60000}, {1000, 150000, 200000}}},
};

static const struct profile *prof;
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static void *queue[MAX_QUEUE];
static unsigned queue_len;

struct job {
    unsigned id, steps;
    uint64_t seed_index;
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
    for (unsigned c = 0;; c++)
        if (r < prof->sizes[c].per_mille || c == 3)
            return prof->sizes[c].base + next(s) % prof->sizes[c].range;
}

static void handoff(void **slot)
{
    pthread_mutex_lock(&queue_lock);
    if (queue_len < prof->queue_cap) {
        queue[queue_len++] = *slot;
        *slot = NULL;
    }
    pthread_mutex_unlock(&queue_lock);
}

static void *worker(void *arg)
{
    const struct job *job = arg;
    uint64_t seed = prof->seed_mul * job->seed_index;
    void *slot[MAX_SLOTS] = {0};
    for (unsigned i = 0; i < job->steps; i++) {
        unsigned k = (unsigned)(next(&seed) % prof->slots);
        if (slot[k] && next(&seed) % prof->realloc_one_in == 0) {
            void *p = realloc(slot[k], size_for(&seed));
            if (p)
                slot[k] = p;
            continue;
        }
        if (slot[k] && i % prof->handoff_every == 0)
            handoff(&slot[k]);
        if (slot[k] || !prof->free_only_full_slots) {
            free(slot[k]);
            slot[k] = NULL;
        }
        size_t n = size_for(&seed);
        slot[k] = malloc(n);
        if (slot[k])
            memset(slot[k], (int)i, n < prof->write_bytes ? n : prof->write_bytes);
        if (i % prof->drain_every == 0) {
            pthread_mutex_lock(&queue_lock);
            void *q = queue_len ? queue[--queue_len] : NULL;
            pthread_mutex_unlock(&queue_lock);
            free(q);
        }
    }
    for (unsigned k = 0; k < prof->slots; k++)
        free(slot[k]);
    return NULL;
}

static int start(pthread_t *th, struct job *job)
{
    if (pthread_create(th, NULL, worker, job) != 0) {
        perror("mt_workload: pthread_create");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    for (size_t i = 0; argc > 1 && i < sizeof profiles / sizeof *profiles; i++)
        if (!strcmp(argv[1], profiles[i].name))
            prof = &profiles[i];
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    unsigned iterations = argc > 3 ? (unsigned)atoi(argv[3]) : 20000;
    if (!prof || threads < prof->min_threads || threads > MAX_THREADS / 2 + 16 ||
        iterations < 1) {
        fprintf(stderr, "usage: mt_workload contended THREADS (2..48) ITERATIONS\n"
                        "       mt_workload mixed [THREADS (1..48) [ITERATIONS]]\n");
        return 2;
    }
    pthread_t th[MAX_THREADS + MAX_THREADS / 2];
    struct job jobs[MAX_THREADS + MAX_THREADS / 2];
    unsigned half = prof->replace_half ? threads / 2 : 0, n = 0;
    for (unsigned t = 0; t < threads; t++, n++) {
        /* contended: seeds id + 3, mixed: id + 1 (as the tests were tuned) */
        jobs[n] = (struct job){n, t < half ? iterations / 2 : iterations,
                               n + (prof->replace_half ? 3 : 1)};
        if (start(&th[n], &jobs[n]) != 0)
            return 1;
    }
    for (unsigned t = 0; t < half; t++)
        pthread_join(th[t], NULL);
    for (unsigned t = 0; t < half; t++, n++) {
        jobs[n] = (struct job){n, iterations / 2, n + 3};
        if (start(&th[n], &jobs[n]) != 0)
            return 1;
    }
    for (unsigned t = half; t < n; t++)
        pthread_join(th[t], NULL);
    while (queue_len)
        free(queue[--queue_len]);
    printf("%s: %u threads x %u iterations\n", prof->name, threads, iterations);
    return 0;
}
