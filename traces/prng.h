/* prng.h: a fixed-seed pseudo-random generator (splitmix64) for the sample programs, so that
 * their request sizes are the same on every run and every machine. */
#ifndef TRACES_PRNG_H
#define TRACES_PRNG_H

#include <stdint.h>

struct prng {
    uint64_t state;
};

static inline uint64_t prng_next(struct prng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A value in [lo, hi]. */
static inline uint64_t prng_range(struct prng *r, uint64_t lo, uint64_t hi)
{
    return lo + prng_next(r) % (hi - lo + 1);
}

#endif
