/* memalign.c: _int_memalign.
 *
 * Allocates nb + alignment + MINSIZE through _int_malloc, finds the first aligned spot at least
 * MINSIZE into the chunk, gives the leading piece back through _int_free (an mmapped chunk just
 * records the larger offset in prev_size) and gives back the tail when it exceeds nb + MINSIZE.
 */
#include "model.h"

uint64_t int_memalign(struct ptmalloc *pm, struct pm_arena *av, uint64_t alignment, uint64_t bytes)
{
    struct sysmem *m = pm->mem;
    uint64_t nb = request2size(bytes);
    if (nb == 0 || alignment > (uint64_t)INT64_MAX)
        return 0;
    uint64_t nm = is_main(av) ? 0 : NON_MAIN_ARENA;
    uint64_t mem = int_malloc(pm, av, nb + alignment + MINSIZE);
    if (!mem)
        return 0;
    uint64_t p = mem - 16;
    if (mem % alignment != 0) {
        uint64_t brk = ((mem + alignment - 1) & -alignment) - 16;
        if (brk - p < MINSIZE)
            brk += alignment;
        uint64_t newp = brk;
        uint64_t leadsize = brk - p;
        uint64_t newsize = chunk_size(m, p) - leadsize;
        if (chunk_head(m, p) & IS_MMAPPED) {
            struct cm_entry *e = cm_find(&pm->map, p);
            uint32_t ai = e ? cm_arena(e->val) : 0;
            set_prev_size(m, newp, chunk_prev_size(m, p) + leadsize);
            set_head(m, newp, newsize | IS_MMAPPED);
            chunk_forget(pm, p);
            chunk_note(pm, newp, newsize, ai, CS_MMAPPED);
            return newp + 16;
        }
        set_head(m, newp, newsize | PREV_INUSE | nm);
        set_inuse_bit_at(m, newp, newsize);
        set_head_size(m, p, leadsize | nm);
        chunk_note(pm, p, leadsize, av->index, CS_INTERNAL);
        chunk_note(pm, newp, newsize, av->index, CS_INTERNAL);
        int_free(pm, av, p);
        p = newp;
    }
    if (!(chunk_head(m, p) & IS_MMAPPED)) {
        uint64_t size = chunk_size(m, p);
        if (size > nb + MINSIZE) {
            uint64_t remainder_size = size - nb;
            uint64_t remainder = p + nb;
            set_head(m, remainder, remainder_size | PREV_INUSE | nm);
            set_head_size(m, p, nb);
            chunk_note(pm, p, nb, av->index, CS_INTERNAL);
            chunk_note(pm, remainder, remainder_size, av->index, CS_INTERNAL);
            int_free(pm, av, remainder);
        }
    }
    return p + 16;
}
