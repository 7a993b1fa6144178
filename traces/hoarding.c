/* hoarding.c: per-thread arenas hoard memory. Threads build long-lived data interleaved with
 * bursts of short-lived data; what the bursts leave behind stays in each thread's arena, pinned
 * by the long-lived objects scattered through it, and is of no use to any other thread.
 *
 * What it does: 4 worker threads, each in its own arena, take turns (baton.h) for 150 rounds.
 * In a round a worker allocates a burst of 8..160 short-lived blocks (64..4096 bytes), allocates one
 * long-lived record (48..320 bytes) in the middle of the burst, writes all of them, and frees the
 * burst. The workers then exit in a fixed order (joined one by one), and the main thread, whose
 * arena is the main heap, allocates a working set of its own (2000 blocks of 64..1024 bytes).
 * Finally main frees the workers' records and its working set.
 *
 * What glibc 2.36 does: each worker's first malloc gives it a new arena (a 64 MiB-aligned heap),
 * and its bursts are carved from that heap's top. Each record lands between burst chunks, so when
 * a burst is freed the hole below the record cannot merge back into top; the next burst partly
 * reuses the holes and partly extends top, and the heaps keep growing in small steps. After the
 * workers exit their arenas go to the free list with all that free memory (their tcaches are
 * flushed into them at exit); main cannot use it: its working set grows the main heap with sbrk.
 * The report should show several arenas whose free bytes dwarf their live bytes (the records),
 * and that MALLOC_ARENA_MAX=1 (glibc.malloc.arena_max=1) makes the main working set reuse it.
 *
 * Prints heapstat lines (heapstat.h) for the phases built (workers parked), after_join,
 * main_working_set and end. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "baton.h"
#include "heapstat.h"
#include "prng.h"

#define WORKERS 4
#define ROUNDS 150
#define BURST_MAX 160
#define MAIN_SET 2000

static struct baton baton = BATON_INIT;
static void *records[WORKERS][ROUNDS];
static void *main_set[MAIN_SET];

/* Turns: worker w does round r at r * WORKERS + w; all rounds are done at WORK_TURNS; then
 * worker w exits at WORK_TURNS + 1 + w. */
#define WORK_TURNS (ROUNDS * WORKERS)

static void *worker(void *arg)
{
    unsigned w = (unsigned)(uintptr_t)arg;
    struct prng rng = {0x486f617264ull + w};
    void *burst[BURST_MAX];
    for (unsigned r = 0; r < ROUNDS; r++) {
        baton_wait(&baton, r * WORKERS + w);
        unsigned burst_len = (unsigned)prng_range(&rng, 8, BURST_MAX);
        for (unsigned i = 0; i < burst_len; i++) {
            size_t size = prng_range(&rng, 64, 4096);
            burst[i] = malloc(size);
            memset(burst[i], (int)i, size);
            if (i == burst_len / 2) {
                size_t rsize = prng_range(&rng, 48, 320);
                records[w][r] = malloc(rsize);
                memset(records[w][r], 0x77, rsize);
            }
        }
        for (unsigned i = 0; i < burst_len; i++)
            free(burst[i]);
        baton_pass(&baton, r * WORKERS + w + 1);
    }
    baton_wait(&baton, WORK_TURNS + 1 + w);
    return NULL;
}

int main(void)
{
    heapstat_init();
    pthread_t threads[WORKERS];
    for (unsigned w = 0; w < WORKERS; w++)
        if (pthread_create(&threads[w], NULL, worker, (void *)(uintptr_t)w) != 0)
            return 1;
    baton_pass(&baton, 0);

    struct heapstat built, after_join, main_working_set, end;
    baton_wait(&baton, WORK_TURNS);
    heapstat_take(&built);
    for (unsigned w = 0; w < WORKERS; w++) {
        baton_pass(&baton, WORK_TURNS + 1 + w);
        pthread_join(threads[w], NULL);
    }
    heapstat_take(&after_join);

    struct prng rng = {0x6d61696eull};
    for (unsigned i = 0; i < MAIN_SET; i++) {
        size_t size = prng_range(&rng, 64, 1024);
        main_set[i] = malloc(size);
        memset(main_set[i], 0x33, size);
    }
    heapstat_take(&main_working_set);

    for (unsigned w = 0; w < WORKERS; w++)
        for (unsigned r = 0; r < ROUNDS; r++)
            free(records[w][r]);
    for (unsigned i = 0; i < MAIN_SET; i++)
        free(main_set[i]);
    heapstat_take(&end);

    heapstat_print("hoarding", "built", &built);
    heapstat_print("hoarding", "after_join", &after_join);
    heapstat_print("hoarding", "main_working_set", &main_working_set);
    heapstat_print("hoarding", "end", &end);
    return 0;
}
