/* shrink.h: reduces a sequence on which model and glibc disagree to a short reproducer.
 *
 * Delta debugging over the ops: cut everything after the first difference, then try dropping
 * chunks of ops (halving the chunk size when nothing can go), keeping a removal whenever the
 * shorter sequence still shows a difference. Removal goes through seq_remove, so dependents
 * (frees of a dropped block, a dropped thread's life) go too and the result stays runnable.
 */
#ifndef FRAGSCOPE_DIFF_SHRINK_H
#define FRAGSCOPE_DIFF_SHRINK_H

#include "diff_model.h"
#include "seq.h"

/* s fails with difference *r; on return s is the shortest failing sequence found and *r its
 * difference. At most max_runs trial runs. Returns the number of runs made. */
unsigned shrink_seq(struct seq *s, struct diff_result *r, unsigned max_runs);

#endif
