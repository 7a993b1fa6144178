/* thread_churn.c: short-lived threads. Each exit flushes a tcache into an arena that then waits
 * on the free list for the next thread, and objects handed to the main thread outlive the thread
 * that made them.
 *
 * What it does: 40 waves of 4 threads. In a wave the threads run one at a time (baton.h): each
 * allocates 200 objects (16..1024 bytes, written), frees 150 of them (fixed-seed choice) and
 * hands the other 50 to the main thread. Then the 4 exit in a fixed order, each joined before
 * the next one goes. After each wave main frees the objects handed over two waves earlier.
 *
 * What glibc 2.36 does: the first wave creates 4 arenas. At exit a thread's tcache is flushed
 * (bins 0..63, each from its head, through _int_free, then the tcache struct itself) into its
 * arena, which joins the free list; these frees never pass through an interposed free, so the
 * trace must carry the thread exits and the replay must perform them. A later thread takes the
 * arena most recently freed first (LIFO), so wave w's threads get wave w-1's arenas in reverse
 * order. Main's frees of handed-over objects go first to main's tcache (7 per size class: they
 * are never reused by the workers) and otherwise into the arena each object came from. The
 * report should show 4 non-main arenas reused 40 times, the tcache flushes at every thread exit
 * (performed by the replay), and memory held in main's tcache.
 *
 * Prints heapstat lines (heapstat.h) for the phases after_waves and end. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "baton.h"
#include "heapstat.h"
#include "prng.h"

#define WAVES 40
#define PER_WAVE 4
#define OBJECTS 200
#define HANDED 50

static struct baton baton = BATON_INIT;
static void *handed[WAVES][PER_WAVE][HANDED];
static unsigned current_wave;

/* Turns within a wave (main holds the baton between waves and passes 0 once the wave's threads
 * exist): thread i works at i; all are done at PER_WAVE; thread i exits at PER_WAVE + 1 + i. */
static void *worker(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    unsigned w = current_wave;
    struct prng rng = {0xc4a0ull * (w + 1) + i};
    void *objs[OBJECTS];
    baton_wait(&baton, i);
    for (unsigned k = 0; k < OBJECTS; k++) {
        size_t size = prng_range(&rng, 16, 1024);
        objs[k] = malloc(size);
        memset(objs[k], (int)k, size);
    }
    /* Hand over 50 objects chosen by a fixed-seed shuffle, free the rest in allocation order. */
    for (unsigned k = 0; k < HANDED; k++) {
        unsigned pick = k + (unsigned)prng_range(&rng, 0, OBJECTS - 1 - k);
        void *tmp = objs[k];
        objs[k] = objs[pick];
        objs[pick] = tmp;
        handed[w][i][k] = objs[k];
    }
    for (unsigned k = HANDED; k < OBJECTS; k++)
        free(objs[k]);
    baton_pass(&baton, i + 1);
    baton_wait(&baton, PER_WAVE + 1 + i);
    return NULL;
}

static void free_wave(unsigned w)
{
    for (unsigned i = 0; i < PER_WAVE; i++)
        for (unsigned k = 0; k < HANDED; k++)
            free(handed[w][i][k]);
}

int main(void)
{
    heapstat_init();
    for (unsigned w = 0; w < WAVES; w++) {
        pthread_t threads[PER_WAVE];
        current_wave = w;
        for (unsigned i = 0; i < PER_WAVE; i++)
            if (pthread_create(&threads[i], NULL, worker, (void *)(uintptr_t)i) != 0)
                return 1;
        baton_pass(&baton, 0);
        baton_wait(&baton, PER_WAVE);
        for (unsigned i = 0; i < PER_WAVE; i++) {
            baton_pass(&baton, PER_WAVE + 1 + i);
            pthread_join(threads[i], NULL);
        }
        baton_pass(&baton, BATON_HELD);
        if (w >= 2)
            free_wave(w - 2);
    }
    struct heapstat after_waves, end;
    heapstat_take(&after_waves);
    free_wave(WAVES - 2);
    free_wave(WAVES - 1);
    heapstat_take(&end);

    heapstat_print("thread-churn", "after_waves", &after_waves);
    heapstat_print("thread-churn", "end", &end);
    return 0;
}
