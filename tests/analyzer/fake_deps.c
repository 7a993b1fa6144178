/* fake_deps.c: stand-ins for the replayer and the model, for the analyzer's store tests and
 * benchmark while those libraries are placeholders. Synthetic steps never reach them (pm is
 * NULL); the replay says it is not available. */
#include <stdio.h>
#include <string.h>
#include "../../replayer/replay.h"

void replay_options_default(struct replay_options *o)
{
    memset(o, 0, sizeof *o);
}

int replay_run(const struct replay_options *o, replay_step_fn fn, void *ctx,
               struct replay_summary *out, FILE *report, char *err, size_t errlen)
{
    (void)o; (void)fn; (void)ctx; (void)out; (void)report;
    snprintf(err, errlen, "replay not available in this build");
    return -1;
}

uint64_t ptmalloc_heap_start(const struct ptmalloc *pm) { (void)pm; return 0; }
void ptmalloc_current_settings(const struct ptmalloc *pm, struct ptmalloc_settings *s)
{ (void)pm; memset(s, 0, sizeof *s); }
void ptmalloc_stats(struct ptmalloc *pm, int arena, struct ptmalloc_stats *st)
{ (void)pm; (void)arena; memset(st, 0, sizeof *st); }
int ptmalloc_walk(struct ptmalloc *pm, int arena,
                  int (*fn)(void *ctx, const struct ptmalloc_chunk *c), void *ctx)
{ (void)pm; (void)arena; (void)fn; (void)ctx; return 0; }
struct sysmem *ptmalloc_sysmem(struct ptmalloc *pm) { (void)pm; return NULL; }
uint64_t sysmem_resident_pages(const struct sysmem *m, uint64_t lo, uint64_t hi)
{ (void)m; (void)lo; (void)hi; return 0; }
int ptmalloc_trim(struct ptmalloc *pm, uint32_t thread, uint64_t pad)
{ (void)pm; (void)thread; (void)pad; return 0; }
struct ptmalloc_result ptmalloc_free(struct ptmalloc *pm, uint32_t thread, uint64_t ptr)
{ (void)pm; (void)thread; (void)ptr; struct ptmalloc_result r = {0, PTM_OK, NULL}; return r; }
