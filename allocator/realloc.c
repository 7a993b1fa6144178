/* realloc.c: _int_realloc and mremap_chunk.
 *
 * A heap chunk is resized in place when it is already big enough, when it borders top and top
 * can give the difference plus MINSIZE, or when the next chunk is free and big enough;
 * otherwise a new chunk comes from _int_malloc(nb - 15) (no tcache lookup), the contents are
 * copied and the old chunk freed. A split-off tail of at least MINSIZE goes through _int_free,
 * so it can land in the tcache or a fastbin. mmapped chunks are resized with mremap (no call
 * when the page count does not change).
 */
#include "model.h"

static uint64_t nm_bit(const struct pm_arena *av) { return is_main(av) ? 0 : NON_MAIN_ARENA; }

uint64_t int_realloc(struct ptmalloc *pm, struct pm_arena *av, uint64_t oldp, uint64_t oldsize,
                     uint64_t nb)
{
    struct sysmem *m = pm->mem;
    uint64_t newp, newsize;
    uint64_t next = oldp + oldsize;
    uint64_t nextsize = chunk_size(m, next);

    if (oldsize >= nb) {
        newp = oldp;
        newsize = oldsize;
    } else if (next == av->top && (newsize = oldsize + nextsize) >= nb + MINSIZE) {
        set_head_size(m, oldp, nb | nm_bit(av));
        av->top = oldp + nb;
        set_head(m, av->top, (newsize - nb) | PREV_INUSE);
        chunk_note(pm, oldp, nb, av->index, CS_INTERNAL);
        return oldp + 16;
    } else if (next != av->top && !inuse_bit_at(m, next, nextsize) && (newsize = oldsize + nextsize) >= nb) {
        newp = oldp;
        unlink_chunk(pm, av, next);
        chunk_forget(pm, next);
    } else {
        uint64_t newmem = int_malloc(pm, av, nb - MALLOC_ALIGN_MASK);
        if (!newmem)
            return 0;
        newp = newmem - 16;
        newsize = chunk_size(m, newp);
        if (newp == next) {
            chunk_forget(pm, next);
            newsize += oldsize;
            newp = oldp;
        } else {
            sysmem_copy(m, newmem, oldp + 16, oldsize - SIZE_SZ);
            int_free(pm, av, oldp);
            return newmem;
        }
    }

    uint64_t remainder_size = newsize - nb;
    if (remainder_size < MINSIZE) {
        set_head_size(m, newp, newsize | nm_bit(av));
        set_inuse_bit_at(m, newp, newsize);
        chunk_note(pm, newp, newsize, av->index, CS_INTERNAL);
    } else {
        uint64_t remainder = newp + nb;
        set_head_size(m, newp, nb | nm_bit(av));
        set_head(m, remainder, remainder_size | PREV_INUSE | nm_bit(av));
        set_inuse_bit_at(m, remainder, remainder_size);
        chunk_note(pm, newp, nb, av->index, CS_INTERNAL);
        chunk_note(pm, remainder, remainder_size, av->index, CS_INTERNAL);
        int_free(pm, av, remainder);
    }
    return newp + 16;
}

/* Resizes an mmapped chunk's mapping; returns the (possibly moved) chunk or 0 if mremap failed. */
uint64_t mremap_chunk(struct ptmalloc *pm, uint64_t p, uint64_t new_size)
{
    struct sysmem *m = pm->mem;
    uint64_t offset = chunk_prev_size(m, p);
    uint64_t size = chunk_size(m, p);
    uint64_t block = p - offset;
    uint64_t total = offset + size;
    new_size = ALIGN_UP(new_size + offset + SIZE_SZ, PAGESIZE);
    if (total == new_size)
        return p;
    uint64_t cp = sysmem_mremap(m, block, total, new_size, 1);
    if (cp == SYSMEM_FAIL)
        return 0;
    struct cm_entry *e = cm_find(&pm->map, p);
    uint32_t ai = e ? cm_arena(e->val) : 0;
    pm_event(pm, PTM_EV_MREMAP, ai, cp, new_size);
    chunk_forget(pm, p);
    p = cp + offset;
    set_head(m, p, (new_size - offset) | IS_MMAPPED);
    pm->mmapped_mem += new_size - size - offset;
    if (pm->mmapped_mem > pm->max_mmapped_mem)
        pm->max_mmapped_mem = pm->mmapped_mem;
    chunk_note(pm, p, new_size - offset, ai, CS_MMAPPED);
    return p;
}
