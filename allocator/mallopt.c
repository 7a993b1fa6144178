/* mallopt.c: glibc's mallopt. Every call first consolidates the main arena's fastbins; the
 * threshold parameters switch the dynamic mmap threshold off; M_MXFAST accepts 0..160;
 * M_ARENA_TEST / M_ARENA_MAX only take values > 0 (and still return 1 otherwise). Negative ints
 * become huge size_t values, as in glibc. The tcache parameters are tunables only (settings.c).
 */
#include "model.h"

int ptmalloc_mallopt(struct ptmalloc *pm, uint32_t thread, int param, int value)
{
    (void)thread;
    int res = 1;
    malloc_consolidate(pm, main_arena(pm));
    uint64_t v = (uint64_t)(int64_t)value;
    switch (param) {
    case PTM_M_MXFAST:
        if (v <= MAX_FAST_SIZE) {
            pm->mxfast_given = v;
            pm->max_fast = max_fast_for(v);
        } else {
            res = 0;
        }
        break;
    case PTM_M_TRIM_THRESHOLD:
        pm->trim_threshold = v;
        pm->no_dyn_threshold = 1;
        break;
    case PTM_M_TOP_PAD:
        pm->top_pad = v;
        pm->no_dyn_threshold = 1;
        break;
    case PTM_M_MMAP_THRESHOLD:
        pm->mmap_threshold = v;
        pm->no_dyn_threshold = 1;
        break;
    case PTM_M_MMAP_MAX:
        pm->n_mmaps_max = value;
        pm->no_dyn_threshold = 1;
        break;
    case PTM_M_CHECK_ACTION:
        break;
    case PTM_M_PERTURB:
        pm->perturb = value;
        break;
    case PTM_M_ARENA_TEST:
        if (value > 0)
            pm->arena_test = v;
        break;
    case PTM_M_ARENA_MAX:
        if (value > 0)
            pm->arena_max = v;
        break;
    default:
        break;
    }
    return res;
}
