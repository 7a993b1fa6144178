/* arena.c: non-main heaps and arenas, arena selection, and the arena side of thread exit
 * (glibc's arena.c).
 *
 * Heaps are 64 MiB-aligned: map 128 MiB PROT_NONE, keep the aligned 64 MiB (remembering an
 * already aligned upper half as the hint for the next heap), then make `size` bytes read/write.
 * heap_info sits at the heap start, the first heap of an arena holds the malloc_state right
 * after it, so the first top chunk starts at heap + 0x8d0. grow_heap / shrink_heap move the
 * read/write part; heap_trim unmaps emptied heaps and shrinks the last one like systrim.
 *
 * Threads get an arena on their first call that needs one (arena_get2): the free list of
 * arenas left by exited threads (LIFO), else a new arena while under the limit (arena_max, or
 * 8 * CPUs once more than arena_test exist), else round robin through the ring from
 * next_to_use (in a serial replay no lock is ever held, so "the first unlocked arena" is the
 * next one).
 */
#include "model.h"

#include <stdlib.h>

#define MAIN_ARENA_FAKE_BASE ((uint64_t)1 << 47)   /* outside any user address */

static uint64_t heap_min_size(const struct ptmalloc *pm)
{
    return pm->hp_pagesize ? pm->hp_pagesize : HEAP_MIN_SIZE;
}

uint64_t new_heap(struct ptmalloc *pm, uint32_t arena, uint64_t size, uint64_t top_pad)
{
    struct sysmem *m = pm->mem;
    uint64_t min_size = heap_min_size(pm), max_size = heap_max_size(pm);
    uint64_t pagesize = PAGESIZE;
    if (size + top_pad < min_size)
        size = min_size;
    else if (size + top_pad <= max_size)
        size += top_pad;
    else if (size > max_size)
        return 0;
    else
        size = max_size;
    size = ALIGN_UP(size, pagesize);

    uint64_t p2 = SYSMEM_FAIL;
    if (pm->aligned_heap_area) {
        p2 = sysmem_mmap(m, pm->aligned_heap_area, max_size, SYSMEM_PROT_NONE);
        pm->aligned_heap_area = 0;
        if (p2 != SYSMEM_FAIL && (p2 & (max_size - 1))) {
            sysmem_munmap(m, p2, max_size);
            p2 = SYSMEM_FAIL;
        }
    }
    if (p2 == SYSMEM_FAIL) {
        uint64_t p1 = sysmem_mmap(m, 0, max_size << 1, SYSMEM_PROT_NONE);
        if (p1 != SYSMEM_FAIL) {
            p2 = ALIGN_UP(p1, max_size);
            uint64_t ul = p2 - p1;
            if (ul)
                sysmem_munmap(m, p1, ul);
            else
                pm->aligned_heap_area = p2 + max_size;
            sysmem_munmap(m, p2 + max_size, max_size - ul);
        } else {
            p2 = sysmem_mmap(m, 0, max_size, SYSMEM_PROT_NONE);
            if (p2 == SYSMEM_FAIL)
                return 0;
            if (p2 & (max_size - 1)) {
                sysmem_munmap(m, p2, max_size);
                return 0;
            }
        }
    }
    if (sysmem_mprotect(m, p2, size, SYSMEM_PROT_RW) != 0) {
        sysmem_munmap(m, p2, max_size);
        return 0;
    }
    mem_st(m, p2 + HI_SIZE, size);
    mem_st(m, p2 + HI_MPROTECT, size);
    mem_st(m, p2 + HI_PAGESIZE, pagesize);
    pm_event(pm, PTM_EV_HEAP_GROW, arena, p2, size);
    return p2;
}

int grow_heap(struct ptmalloc *pm, struct pm_arena *av, uint64_t h, int64_t diff)
{
    struct sysmem *m = pm->mem;
    uint64_t pagesize = mem_ld(m, h + HI_PAGESIZE);
    uint64_t max_size = heap_max_size(pm);
    uint64_t old = mem_ld(m, h + HI_SIZE);
    diff = (int64_t)ALIGN_UP((uint64_t)diff, pagesize);
    uint64_t new_size = old + (uint64_t)diff;
    if (new_size > max_size)
        return -1;
    uint64_t mp = mem_ld(m, h + HI_MPROTECT);
    if (new_size > mp) {
        if (sysmem_mprotect(m, h + mp, new_size - mp, SYSMEM_PROT_RW) != 0)
            return -2;
        mem_st(m, h + HI_MPROTECT, new_size);
    }
    mem_st(m, h + HI_SIZE, new_size);
    pm_event(pm, PTM_EV_HEAP_GROW, av->index, h + old, new_size - old);
    return 0;
}

static int shrink_heap(struct ptmalloc *pm, struct pm_arena *av, uint64_t h, int64_t diff)
{
    struct sysmem *m = pm->mem;
    int64_t new_size = (int64_t)mem_ld(m, h + HI_SIZE) - diff;
    if (new_size < (int64_t)HEAP_INFO_SIZE)
        return -1;
    /* glibc remaps PROT_NONE instead when overcommit is strict (mode 2) or the program is
     * setuid; the model assumes neither, as on this system: MADV_DONTNEED. */
    sysmem_madvise_dontneed(m, h + (uint64_t)new_size, (uint64_t)diff);
    mem_st(m, h + HI_SIZE, (uint64_t)new_size);
    pm_event(pm, PTM_EV_HEAP_SHRINK, av->index, h + (uint64_t)new_size, (uint64_t)diff);
    return 0;
}

int heap_trim(struct ptmalloc *pm, struct pm_arena *av, uint64_t heap, uint64_t pad)
{
    struct sysmem *m = pm->mem;
    uint64_t top_chunk = av->top;
    uint64_t max_size = heap_max_size(pm);

    while (top_chunk == heap + HEAP_INFO_SIZE) {
        uint64_t prev_heap = mem_ld(m, heap + HI_PREV);
        uint64_t prev_heap_size = mem_ld(m, prev_heap + HI_SIZE);
        uint64_t prev_sz = prev_heap_size - (MINSIZE - 2 * SIZE_SZ);
        uint64_t p = prev_heap + prev_sz;
        uint64_t misalign = p & MALLOC_ALIGN_MASK;
        p = prev_heap + prev_sz - misalign;
        p = p - chunk_prev_size(m, p);
        uint64_t new_size = chunk_size(m, p) + (MINSIZE - 2 * SIZE_SZ) + misalign;
        if (!prev_inuse(m, p))
            new_size += chunk_prev_size(m, p);
        if (new_size + (max_size - prev_heap_size) < pad + MINSIZE + mem_ld(m, heap + HI_PAGESIZE))
            break;
        av->system_mem -= mem_ld(m, heap + HI_SIZE);
        if (heap + max_size == pm->aligned_heap_area)
            pm->aligned_heap_area = 0;
        pm_munmap(pm, av->index, heap, max_size);
        heap = prev_heap;
        if (!prev_inuse(m, p)) {
            p = p - chunk_prev_size(m, p);
            unlink_chunk(pm, av, p);
            chunk_forget(pm, p);
        }
        av->top = top_chunk = p;
        set_head(m, top_chunk, new_size | PREV_INUSE);
    }

    uint64_t tsize = chunk_size(m, top_chunk);
    if (tsize < pm->trim_threshold)
        return 0;
    int64_t top_area = (int64_t)tsize - MINSIZE - 1;
    if (top_area < 0 || (uint64_t)top_area <= pad)
        return 0;
    int64_t extra = (int64_t)ALIGN_DOWN((uint64_t)top_area - pad, mem_ld(m, heap + HI_PAGESIZE));
    if (extra == 0)
        return 0;
    if (shrink_heap(pm, av, heap, extra) != 0)
        return 0;
    av->system_mem -= (uint64_t)extra;
    set_head(m, top_chunk, (tsize - (uint64_t)extra) | PREV_INUSE);
    pm_event(pm, PTM_EV_TRIM, av->index, heap + mem_ld(m, heap + HI_SIZE), (uint64_t)extra);
    return 1;
}

/* Host-side arena object; base is where its malloc_state lives. */
static struct pm_arena *arena_alloc(struct ptmalloc *pm, uint64_t base)
{
    if (pm->arena_count == pm->arena_cap) {
        uint32_t cap = pm->arena_cap ? pm->arena_cap * 2 : 8;
        struct pm_arena **n = realloc(pm->arenas, cap * sizeof *n);
        if (!n)
            return 0;
        pm->arenas = n;
        pm->arena_cap = cap;
    }
    struct pm_arena *a = calloc(1, sizeof *a);
    if (!a)
        return 0;
    a->base = base;
    a->binfield0 = base + MS_BINS;
    a->index = pm->arena_count;
    pm->arenas[pm->arena_count++] = a;
    return a;
}

struct pm_arena *arena_create_main(struct ptmalloc *pm)
{
    struct pm_arena *a = arena_alloc(pm, MAIN_ARENA_FAKE_BASE);
    if (!a)
        return 0;
    arena_init_state(pm, a);
    a->next = a;
    a->attached_threads = 1;
    return a;
}

static void detach_arena(struct pm_arena *replaced)
{
    if (replaced)
        --replaced->attached_threads;
}

/* glibc's _int_new_arena; attaches it to thread t. */
static struct pm_arena *int_new_arena(struct ptmalloc *pm, struct pm_thread *t, uint64_t size)
{
    struct sysmem *m = pm->mem;
    uint32_t idx = pm->arena_count;
    uint64_t h = new_heap(pm, idx, size + (HEAP_INFO_SIZE + MALLOC_STATE_SIZE + MALLOC_ALIGNMENT), pm->top_pad);
    if (!h) {
        h = new_heap(pm, idx, HEAP_INFO_SIZE + MALLOC_STATE_SIZE + MALLOC_ALIGNMENT, pm->top_pad);
        if (!h)
            return 0;
    }
    uint64_t base = h + HEAP_INFO_SIZE;
    struct pm_arena *a = arena_alloc(pm, base);
    if (!a)
        return 0;
    mem_st(m, h + HI_AR_PTR, base);
    arena_init_state(pm, a);
    a->attached_threads = 1;
    uint64_t hs = mem_ld(m, h + HI_SIZE);
    a->system_mem = a->max_system_mem = hs;
    uint64_t ptr = base + MALLOC_STATE_SIZE;
    uint64_t misalign = (ptr + CHUNK_HDR_SZ) & MALLOC_ALIGN_MASK;
    if (misalign > 0)
        ptr += MALLOC_ALIGNMENT - misalign;
    a->top = ptr;
    set_head(m, ptr, (h + hs - ptr) | PREV_INUSE);
    mem_st(m, base + MS_TOP, ptr);
    mem_st(m, base + MS_ATTACHED, 1);
    mem_st(m, base + MS_SYSTEM_MEM, hs);
    mem_st(m, base + MS_MAX_SYSTEM_MEM, hs);

    struct pm_arena *replaced = t ? t->arena : 0;
    if (t)
        t->arena = a;
    struct pm_arena *ma = main_arena(pm);
    a->next = ma->next;
    ma->next = a;
    mem_st(m, base + MS_NEXT, a->next->base);
    detach_arena(replaced);
    pm_event(pm, PTM_EV_ARENA_NEW, a->index, h, hs);
    return a;
}

static struct pm_arena *get_free_list(struct ptmalloc *pm, struct pm_thread *t)
{
    struct pm_arena *result = pm->free_list;
    if (result) {
        pm->free_list = result->next_free;
        result->attached_threads = 1;
        detach_arena(t->arena);
        t->arena = result;
    }
    return result;
}

static void remove_from_free_list(struct ptmalloc *pm, struct pm_arena *arena)
{
    struct pm_arena **previous = &pm->free_list;
    for (struct pm_arena *p = pm->free_list; p; p = p->next_free) {
        if (p == arena) {
            *previous = p->next_free;
            break;
        }
        previous = &p->next_free;
    }
}

static struct pm_arena *reused_arena(struct ptmalloc *pm, struct pm_thread *t)
{
    if (!pm->next_to_use)
        pm->next_to_use = main_arena(pm);
    struct pm_arena *result = pm->next_to_use;
    detach_arena(t->arena);
    remove_from_free_list(pm, result);
    ++result->attached_threads;
    t->arena = result;
    pm->next_to_use = result->next;
    return result;
}

static struct pm_arena *arena_get2(struct ptmalloc *pm, struct pm_thread *t, uint64_t size)
{
    struct pm_arena *a = get_free_list(pm, t);
    if (a)
        return a;
    if (pm->narenas_limit == 0) {
        if (pm->arena_max != 0)
            pm->narenas_limit = pm->arena_max;
        else if (pm->narenas > pm->arena_test)
            pm->narenas_limit = 8ull * (pm->cpu_count >= 1 ? pm->cpu_count : 2);
    }
    if (pm->narenas <= pm->narenas_limit - 1) {
        pm->narenas++;
        a = int_new_arena(pm, t, size);
        if (!a)
            pm->narenas--;
    } else {
        a = reused_arena(pm, t);
    }
    return a;
}

struct pm_arena *arena_get(struct ptmalloc *pm, struct pm_thread *t, uint64_t size)
{
    if (t->arena)
        return t->arena;
    return arena_get2(pm, t, size);
}

struct pm_arena *arena_get_retry(struct ptmalloc *pm, struct pm_thread *t, struct pm_arena *av,
                                 uint64_t bytes)
{
    if (!is_main(av))
        return main_arena(pm);
    return arena_get2(pm, t, bytes);
}

struct pm_arena *arena_new(struct ptmalloc *pm, struct pm_thread *t, uint64_t size)
{
    pm->narenas++;
    struct pm_arena *a = int_new_arena(pm, t, size);
    if (!a)
        pm->narenas--;
    return a;
}

void arena_pin(struct ptmalloc *pm, struct pm_thread *t, struct pm_arena *a)
{
    if (t->arena == a)
        return;
    detach_arena(t->arena);
    remove_from_free_list(pm, a);
    ++a->attached_threads;
    t->arena = a;
}

void arena_thread_exit(struct ptmalloc *pm, struct pm_thread *t)
{
    struct pm_arena *a = t->arena;
    t->arena = 0;
    if (a && --a->attached_threads == 0) {
        a->next_free = pm->free_list;
        pm->free_list = a;
    }
}
