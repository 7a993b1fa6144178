/* seq.h: an op sequence in memory (replayer/native_ops.h ops) and the settings of its run.
 *
 * The unit the differential harness works on: generators build one, the runner and the model
 * both execute it, the shrinker removes ops from it, seq_print renders it as C-like lines.
 */
#ifndef FRAGSCOPE_DIFF_SEQ_H
#define FRAGSCOPE_DIFF_SEQ_H

#include <stdint.h>
#include <stdio.h>
#include "../../replayer/native_ops.h"

#define SEQ_MAX_ENV 6

/* How the process runs: GLIBC_TUNABLES and MALLOC_* variables (given to the child's environment
 * and to the model), and recording flags. */
struct seq_settings {
    char tunables[256];                 /* value of GLIBC_TUNABLES; "" = unset */
    char env[SEQ_MAX_ENV][64];          /* "MALLOC_ARENA_MAX=2" ... */
    unsigned env_count;
    uint64_t flags;                     /* NATIVE_F_* */
};

struct seq {
    struct native_op *ops;
    uint64_t n, cap;
    struct seq_settings set;
};

void seq_init(struct seq *s);
void seq_free(struct seq *s);
void seq_clear(struct seq *s);
/* Appends an op; returns its index. Aborts on host OOM. */
uint32_t seq_add(struct seq *s, unsigned kind, uint16_t thread, uint32_t ref, uint64_t a,
                 uint64_t b, uint64_t c);
void seq_copy(struct seq *dst, const struct seq *src);
/* Adds "NAME=VALUE" to the environment; returns -1 if full or too long. */
int seq_setenv(struct seq_settings *set, const char *name_equals_value);

/* Removes the ops with drop[i] != 0, plus everything that depends on them (ops naming a dropped
 * block, a thread's whole life when its start or exit goes), and renumbers refs. drop is
 * updated to the full set removed. */
void seq_remove(struct seq *s, uint8_t *drop);

/* Writes the sequence as C-like lines (one per op; "p7 = malloc(24);"), with a header comment
 * naming the settings; `mark` (or UINT64_MAX) gets a "<-- diverges here" note. */
void seq_print(FILE *f, const struct seq *s, uint64_t mark, const char *title);

/* The name of an op kind ("malloc", "posix_memalign", ...). */
const char *seq_kind_name(unsigned kind);

#endif
