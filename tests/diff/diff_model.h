/* diff_model.h: the differential check: one sequence on the real glibc and on the model.
 *
 * diff_run() runs the sequence in a fresh fragscope-native-runner child, then drives the model
 * (ptmalloc_new with the same GLIBC_TUNABLES / MALLOC_* settings and CPU count, the default
 * sysmem) through the identical stream: the runner's internal calls (the DTV calloc of
 * pthread_create, the frees of reused thread stacks) at the points where they happened, then
 * each op. After every op it requires the same normalised address, return value and errno, the
 * same mallinfo2, the same break offset, the same arena for the calling thread where the result
 * shows it (calloc, memalign: a consistent mapping between the child's arenas and
 * ptmalloc_thread_arena; every address also names its arena), and, where the op was sampled,
 * the same heap RSS (model: resident pages of [heap start, break) in the sysmem, i.e. pages
 * written; child: the [heap] Rss line of /proc/self/smaps. mincore over the same range is
 * reported too but not compared: it also counts pages only ever read, mapped to the zero page).
 */
#ifndef FRAGSCOPE_DIFF_MODEL_H
#define FRAGSCOPE_DIFF_MODEL_H

#include <stdint.h>
#include "seq.h"

struct diff_result {
    uint64_t op;            /* op where the first difference showed (UINT64_MAX: none) */
    char what[1536];        /* what differed, native vs model */
};

/* Compare heap RSS where ops are sampled (1, the default) or not (0). */
extern int diff_compare_rss;

/* Fault injection for the harness's own tests (a harness that cannot see a difference proves
 * nothing): extra GLIBC_TUNABLES text given to the model only, and dropping the program's
 * writes on the model side. Both off (NULL, 0) normally. */
extern const char *diff_model_only_tunables;
extern int diff_model_skip_writes;

/* Returns 0 when model and glibc agree at every step, 1 on the first difference (described
 * in r), -1 when the sequence could not be run (err). */
int diff_run(const struct seq *s, struct diff_result *r, char *err, size_t errlen);

/* Formats a normalised address: "main+0x2a0", "mmap#3+0x10", "arena2.heap0+0xb70", "NULL". */
void diff_format_addr(char *buf, size_t len, const struct native_addr *a);

#endif
