/* baton.h: makes threads take turns, so that a multi-threaded sample program calls malloc in
 * the same order on every run (and a serial replay of its trace sees what the real run saw).
 *
 * One counter, one mutex, one condition variable (none of which allocate). A thread waits until
 * the counter equals its turn, does its step, then hands the baton on by setting the counter.
 * The baton starts held (BATON_HELD, nobody's turn): the main thread creates every thread first
 * and then passes turn 0, so that its own allocations (pthread_create's) never race theirs. */
#ifndef TRACES_BATON_H
#define TRACES_BATON_H

#include <pthread.h>

struct baton {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned turn;
};
#define BATON_HELD 0xffffffffu
#define BATON_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, BATON_HELD}

/* Blocks until the baton's counter is `turn`. */
void baton_wait(struct baton *b, unsigned turn);

/* Sets the counter to `turn` and wakes every waiter. */
void baton_pass(struct baton *b, unsigned turn);

#endif
