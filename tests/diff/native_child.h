/* native_child.h: runs an op sequence in a fresh fragscope-native-runner process.
 *
 * The ops go to the child through a memfd, the results come back through another one, mapped
 * read-only here. The child's environment holds only the sequence's GLIBC_TUNABLES and MALLOC_*
 * variables (nothing inherited: no LD_PRELOAD, no stray tunables).
 */
#ifndef FRAGSCOPE_DIFF_NATIVE_CHILD_H
#define FRAGSCOPE_DIFF_NATIVE_CHILD_H

#include <stddef.h>
#include "seq.h"

struct native_run {
    void *map;
    size_t len;
    const struct native_out_header *hdr;
    const struct native_result *res;         /* hdr->op_count entries */
    const struct native_internal *internal;  /* hdr->internal_count entries */
    int exit_code;                           /* -1 if killed by a signal */
    int term_signal;
};

/* The runner executable: $FRAGSCOPE_NATIVE_RUNNER, else the one built with the tests. */
const char *native_runner_path(void);

/* Runs s in a child. Returns 0 when the runner completed every op; -1 with a message (naming
 * the op reached) otherwise. On -1 the run may still hold the partial output (map != NULL). */
int native_run_seq(const struct seq *s, struct native_run *out, char *err, size_t errlen);
void native_run_release(struct native_run *r);

#endif
