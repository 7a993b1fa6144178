/* hostpool.h: host memory for the simulation's own small objects, on huge pages when possible.
 *
 * The simulated address space keeps hundreds of thousands of small host objects (4 KiB blocks
 * of contents, region tables) that the model reaches in no particular order. Spread over 4 KiB
 * pages they cost the host a TLB miss on most accesses; packed into 2 MiB slabs that the kernel
 * is asked to back with transparent huge pages (madvise, which THP's "madvise" mode honours)
 * they mostly do not. A pool hands out zeroed objects of one size from such slabs and gives a
 * slab back to the system when its last object is freed.
 *
 * Under AddressSanitizer every object is a plain calloc, so overruns are still caught.
 */
#ifndef FRAGSCOPE_HOSTPOOL_H
#define FRAGSCOPE_HOSTPOOL_H

#include <stddef.h>

struct host_pool;

/* A pool of objects of obj_size bytes (at most 64 KiB); NULL on host OOM. */
struct host_pool *host_pool_new(size_t obj_size);
/* Frees the pool and every object still in it. */
void host_pool_delete(struct host_pool *p);
/* A zeroed, 16-byte aligned object, or NULL on host OOM. */
void *host_pool_alloc(struct host_pool *p);
/* obj came from host_pool_alloc(p); NULL is ignored. */
void host_pool_free(struct host_pool *p, void *obj);

/* A zeroed array of `bytes` for a big table, in whole huge pages from 1 MiB up (calloc below);
 * NULL on OOM. Free it with the same size. */
void *host_huge_calloc(size_t bytes);
void host_huge_free(void *mem, size_t bytes);

#endif
