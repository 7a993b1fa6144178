/* baton.c: turn-taking between threads (see baton.h). */
#include "baton.h"

void baton_wait(struct baton *b, unsigned turn)
{
    pthread_mutex_lock(&b->mu);
    while (b->turn != turn)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

void baton_pass(struct baton *b, unsigned turn)
{
    pthread_mutex_lock(&b->mu);
    b->turn = turn;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}
