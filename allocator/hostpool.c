/* hostpool.c: fixed-size object pools in 2 MiB huge-page slabs (see hostpool.h).
 *
 * A slab is a 2 MiB-aligned anonymous mapping marked MADV_HUGEPAGE. Its first object slot holds
 * the slab's header (pool, links, free list, counts), so an object finds its slab by rounding its
 * address down. Objects come from the slab's free list, else from its never-used tail (fresh
 * mappings read as zero); recycled objects are cleared when handed out. Each slab is on one of
 * the pool's two lists, with room or full; a slab whose objects are all free is unmapped, except
 * the last one a pool has, which is kept to avoid mapping churn.
 */
#include "hostpool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLAB_SIZE ((size_t)2 << 20)

#if defined(__SANITIZE_ADDRESS__)
#define HOSTPOOL_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOSTPOOL_PLAIN 1
#endif
#endif

struct slab {
    struct host_pool *pool;
    struct slab *prev, *next;       /* on the pool's room or full list */
    void *free;                     /* freed objects, linked through their first word */
    uint32_t used;                  /* objects handed out */
    uint32_t fresh;                 /* objects never handed out, from the end of the slab */
};

struct host_pool {
    size_t size;
    struct plain_obj *objs;         /* HOSTPOOL_PLAIN: every object handed out */
    uint32_t per_slab;              /* object slots after the header slot */
    uint32_t nslabs;
    struct slab *room;              /* slabs with a free or fresh object */
    struct slab *full;
};

struct host_pool *host_pool_new(size_t obj_size)
{
    if (obj_size == 0 || obj_size > 65536)
        return NULL;
    struct host_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->size = (obj_size + 63) & ~(size_t)63;
    if (p->size < sizeof(struct slab))
        p->size = (sizeof(struct slab) + 63) & ~(size_t)63;
    p->per_slab = (uint32_t)(SLAB_SIZE / p->size) - 1;
    return p;
}

#ifdef HOSTPOOL_PLAIN

/* each object a calloc of its own behind a link header, so deleting the pool frees them all */
struct plain_obj {
    struct plain_obj *prev, *next;
};

void host_pool_delete(struct host_pool *p)
{
    if (!p)
        return;
    while (p->objs) {
        struct plain_obj *o = p->objs;
        p->objs = o->next;
        free(o);
    }
    free(p);
}

void *host_pool_alloc(struct host_pool *p)
{
    struct plain_obj *o = calloc(1, sizeof *o + p->size);
    if (!o)
        return NULL;
    o->next = p->objs;
    if (p->objs)
        p->objs->prev = o;
    p->objs = o;
    return o + 1;
}

void host_pool_free(struct host_pool *p, void *obj)
{
    if (!obj)
        return;
    struct plain_obj *o = (struct plain_obj *)obj - 1;
    if (o->prev)
        o->prev->next = o->next;
    else
        p->objs = o->next;
    if (o->next)
        o->next->prev = o->prev;
    free(o);
}
void *host_huge_calloc(size_t bytes) { return calloc(1, bytes); }
void host_huge_free(void *mem, size_t bytes)
{
    (void)bytes;
    free(mem);
}

#else

/* A 2 MiB-aligned zeroed mapping of `bytes` (a multiple of 2 MiB), asked for huge pages. */
static void *map_aligned(size_t bytes)
{
    char *raw = mmap(NULL, bytes + SLAB_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *base = (char *)(((uintptr_t)raw + SLAB_SIZE - 1) & ~(uintptr_t)(SLAB_SIZE - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    if (base + bytes < raw + bytes + SLAB_SIZE)
        munmap(base + bytes, (size_t)(raw + bytes + SLAB_SIZE - (base + bytes)));
    madvise(base, bytes, MADV_HUGEPAGE);   /* a hint: without THP the pool still works */
    return base;
}

static void list_add(struct slab **head, struct slab *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
}

static void list_remove(struct slab **head, struct slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

void host_pool_delete(struct host_pool *p)
{
    if (!p)
        return;
    struct slab **lists[2] = {&p->room, &p->full};
    for (int i = 0; i < 2; i++)
        while (*lists[i]) {
            struct slab *s = *lists[i];
            list_remove(lists[i], s);
            munmap(s, SLAB_SIZE);
        }
    free(p);
}

void *host_pool_alloc(struct host_pool *p)
{
    struct slab *s = p->room;
    if (!s) {
        s = map_aligned(SLAB_SIZE);
        if (!s)
            return NULL;
        s->pool = p;
        s->fresh = p->per_slab;
        p->nslabs++;
        list_add(&p->room, s);
    }
    void *obj;
    if (s->free) {
        obj = s->free;
        s->free = *(void **)obj;
        memset(obj, 0, p->size);
    } else {
        obj = (char *)s + (size_t)(p->per_slab - s->fresh + 1) * p->size;
        s->fresh--;
    }
    if (++s->used == p->per_slab) {
        list_remove(&p->room, s);
        list_add(&p->full, s);
    }
    return obj;
}

void host_pool_free(struct host_pool *p, void *obj)
{
    if (!obj)
        return;
    struct slab *s = (struct slab *)((uintptr_t)obj & ~(uintptr_t)(SLAB_SIZE - 1));
    if (s->used-- == p->per_slab) {
        list_remove(&p->full, s);
        list_add(&p->room, s);
    }
    *(void **)obj = s->free;
    s->free = obj;
    if (s->used == 0 && p->nslabs > 1) {
        list_remove(&p->room, s);
        p->nslabs--;
        munmap(s, SLAB_SIZE);
    }
}

void *host_huge_calloc(size_t bytes)
{
    if (bytes < SLAB_SIZE / 2)
        return calloc(1, bytes);
    return map_aligned((bytes + SLAB_SIZE - 1) & ~(SLAB_SIZE - 1));
}

void host_huge_free(void *mem, size_t bytes)
{
    if (!mem)
        return;
    if (bytes < SLAB_SIZE / 2)
        free(mem);
    else
        munmap(mem, (bytes + SLAB_SIZE - 1) & ~(SLAB_SIZE - 1));
}

#endif
