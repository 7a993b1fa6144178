/* seqgen.h: generators of op sequences for the differential harness.
 *
 * Random sequences (from a seed: the same seed always gives the same sequence and settings),
 * the named settings variants they cycle through, and the 4000-alternating-block case.
 */
#ifndef FRAGSCOPE_DIFF_SEQGEN_H
#define FRAGSCOPE_DIFF_SEQGEN_H

#include <stdint.h>
#include "seq.h"

struct seqgen_opts {
    uint64_t seed;
    uint32_t ops;          /* approximate length before the final free-everything phase */
    int threads;           /* 0: main thread only; else up to this many threads alive at once */
    int writes;            /* 1: write blocks now and then (and sample RSS) */
};

/* Settings variants (GLIBC_TUNABLES / MALLOC_* sets). variant k of seqgen_variant_count(). */
unsigned seqgen_variant_count(void);
const char *seqgen_variant(unsigned k, struct seq_settings *set);
/* The variant a seed uses by default. */
unsigned seqgen_variant_of_seed(uint64_t seed);

/* Replaces s's ops with a random sequence; settings are left as they are. */
void seqgen_random(struct seq *s, const struct seqgen_opts *o);

/* pairs x (malloc(52722), malloc(1)), optionally writing every block; all freed in reverse
 * order; then malloc(2000) and its free. With mxfast0, mallopt(M_MXFAST, 0) first. RSS is
 * sampled every `sample_every` ops and at the end of each phase. */
void seqgen_alternating(struct seq *s, uint32_t pairs, int write_blocks, int mxfast0,
                        uint32_t sample_every);

#endif
