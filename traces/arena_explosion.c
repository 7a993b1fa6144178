/* arena_explosion.c: many threads, each with a small working set, leave the process with many
 * arenas holding mostly free memory (the MALLOC_ARENA_MAX case).
 *
 * What it does: 32 threads are started together. One at a time (baton.h), each allocates a
 * working set of 1000 blocks (64..1024 bytes, written), then 4 small records (kept), then frees
 * the working set. All 32 stay alive until every one has had its turn; then they exit in a fixed
 * order, each joined before the next one goes.
 *
 * What glibc 2.36 does: a thread's first malloc attaches it to an arena: a new one while fewer
 * than 8 x CPUs arenas exist (arena_test 8, then the core-count limit; 16 on a 2-CPU machine,
 * counting the main arena), after that an existing one, round robin. Each new arena is a 64
 * MiB-aligned heap grown to hold the working set (~0.5 MiB). The records are carved from top
 * after the working set, so when the working set is freed it cannot merge into top and the heap
 * cannot shrink: every arena keeps ~0.5 MiB of free, resident memory for 64 bytes of live data.
 * At thread exit each tcache is flushed into its arena and the arena joins the free list, still
 * holding it all. With glibc.malloc.arena_max=1 (MALLOC_ARENA_MAX=1) every thread shares the main
 * arena and reuses the same 0.5 MiB: the report should rank arena_max first.
 *
 * Prints heapstat lines (heapstat.h) for the phases all_alive and after_join. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "baton.h"
#include "heapstat.h"
#include "prng.h"

#define THREADS 32
#define WORKING_SET 200
#define RECORDS 4

static struct baton baton = BATON_INIT;
static void *records[THREADS][RECORDS];

/* Turns: thread t works at turn t; all are done at THREADS; thread t exits at THREADS + 1 + t. */
static void *worker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    struct prng rng = {0xa7e4a000ull + t};
    void *set[WORKING_SET];
    baton_wait(&baton, t);
    for (unsigned i = 0; i < WORKING_SET; i++) {
        size_t size = prng_range(&rng, 1100, 4096);
        set[i] = malloc(size);
        memset(set[i], (int)t, size);
    }
    for (unsigned i = 0; i < RECORDS; i++) {
        records[t][i] = malloc(64);
        memset(records[t][i], 0x55, 64);
    }
    for (unsigned i = 0; i < WORKING_SET; i++)
        free(set[i]);
    baton_pass(&baton, t + 1);
    baton_wait(&baton, THREADS + 1 + t);
    return NULL;
}

int main(void)
{
    heapstat_init();
    pthread_t threads[THREADS];
    for (unsigned t = 0; t < THREADS; t++)
        if (pthread_create(&threads[t], NULL, worker, (void *)(uintptr_t)t) != 0)
            return 1;
    baton_pass(&baton, 0);

    struct heapstat all_alive, after_join;
    baton_wait(&baton, THREADS);
    heapstat_take(&all_alive);
    for (unsigned t = 0; t < THREADS; t++) {
        baton_pass(&baton, THREADS + 1 + t);
        pthread_join(threads[t], NULL);
    }
    heapstat_take(&after_join);

    heapstat_print("arena-explosion", "all_alive", &all_alive);
    heapstat_print("arena-explosion", "after_join", &after_join);
    return 0;
}
