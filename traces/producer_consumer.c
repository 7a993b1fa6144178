/* producer_consumer.c: one thread allocates, another frees. The freed chunks fill the consumer's
 * tcache, which the consumer never drains, and the rest go back to the producer's arena.
 *
 * What it does: a producer thread and a consumer thread take turns (baton.h) for 300 rounds: the
 * producer allocates a batch of 64 messages (16..1024 bytes, one in eight 1..8 KiB), writes them
 * and hands the batch over; the consumer frees the batch. When all rounds are done the consumer
 * exits first, then the producer.
 *
 * What glibc 2.36 does: the consumer's first free initialises its tcache, which needs an arena:
 * the consumer gets a heap of its own just to hold its 640-byte tcache struct. Its frees then go
 * to its tcache while the bin for the size has room (7 chunks per size class), and otherwise to
 * the arena the chunk came from (the producer's, found from the chunk's heap). The producer never
 * frees, so its own tcache stays empty and every message is carved from its arena's bins or top.
 * The consumer's tcache thus holds up to 7 x 64 chunks of the producer's memory (counted as in
 * use by mallinfo2, free for the program) until the consumer exits, when glibc flushes them back
 * to the producer's arena. The report should show two arenas, chunks of arena 1 cached by thread
 * 2, and the held memory that tcache_count=0 would release.
 *
 * Prints heapstat lines (heapstat.h) for the phases both_alive, after_consumer_exit and
 * after_join. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "baton.h"
#include "heapstat.h"
#include "prng.h"

#define ROUNDS 300
#define BATCH 64

static struct baton baton = BATON_INIT;
static void *batch[BATCH];

/* Turns: round r: producer at 2r, consumer at 2r + 1; all done at DONE; the consumer exits at
 * DONE + 1, the producer at DONE + 2. */
#define DONE (2 * ROUNDS)

static void *producer(void *arg)
{
    (void)arg;
    struct prng rng = {0x9e0d0ce5ull};
    for (unsigned r = 0; r < ROUNDS; r++) {
        baton_wait(&baton, 2 * r);
        for (unsigned i = 0; i < BATCH; i++) {
            size_t size = prng_range(&rng, 0, 7) == 0 ? prng_range(&rng, 1024, 8192)
                                                      : prng_range(&rng, 16, 1024);
            batch[i] = malloc(size);
            memset(batch[i], (int)r, size);
        }
        baton_pass(&baton, 2 * r + 1);
    }
    baton_wait(&baton, DONE + 2);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (unsigned r = 0; r < ROUNDS; r++) {
        baton_wait(&baton, 2 * r + 1);
        for (unsigned i = 0; i < BATCH; i++) {
            free(batch[i]);
            batch[i] = NULL;
        }
        baton_pass(&baton, 2 * r + 2);
    }
    baton_wait(&baton, DONE + 1);
    return NULL;
}

int main(void)
{
    heapstat_init();
    pthread_t prod, cons;
    if (pthread_create(&prod, NULL, producer, NULL) != 0 ||
        pthread_create(&cons, NULL, consumer, NULL) != 0)
        return 1;
    baton_pass(&baton, 0);

    struct heapstat both_alive, after_consumer_exit, after_join;
    baton_wait(&baton, DONE);
    heapstat_take(&both_alive);
    baton_pass(&baton, DONE + 1);
    pthread_join(cons, NULL);
    heapstat_take(&after_consumer_exit);
    baton_pass(&baton, DONE + 2);
    pthread_join(prod, NULL);
    heapstat_take(&after_join);

    heapstat_print("producer-consumer", "both_alive", &both_alive);
    heapstat_print("producer-consumer", "after_consumer_exit", &after_consumer_exit);
    heapstat_print("producer-consumer", "after_join", &after_join);
    return 0;
}
