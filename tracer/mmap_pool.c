/* mmap_pool.c: the recorder's own small allocator, never the heap being measured.
 *
 * Calls that reach malloc while the recorder itself is running (dlsym's error buffers,
 * libunwind, pthread_setspecific's second-level array, pthread_atfork's list, a signal handler
 * that interrupts a hook) are served here, so the program's heap holds exactly what the program
 * would have allocated without the recorder. free/realloc recognise these pointers by address.
 *
 * One region is reserved with mmap (MAP_NORESERVE, touched only as used) and carved by a bump
 * pointer into power-of-two blocks with one free list per size. A 16-byte header before each
 * pointer names its size class and where its block starts (so aligned requests work). A
 * spinlock guards it, with every signal blocked while held so a handler cannot deadlock on it.
 * Also here: rec_map/rec_unmap, raw mmap for the rest of the recorder.
 */
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include "recorder.h"
#include "rec_syscall.h"

#define POOL_RESERVE REC_POOL_RESERVE
#define POOL_MAGIC 0x46524147u
#define POOL_CLASSES 26             /* 32 bytes .. 1 GiB */
#define POOL_HDR 16

struct pool_hdr {
    uint32_t magic;
    uint32_t cls;
    uint64_t block;
};

/* Until the pool is mapped, a base in kernel space: no user pointer falls in its range. */
char *rec_pool_base = (char *)(uintptr_t)(0 - REC_POOL_RESERVE);
static int pool_mapped;
#define pool_base rec_pool_base
static uint64_t pool_used;
static void *pool_free_list[POOL_CLASSES];
static volatile int pool_lock;

void *rec_map(size_t bytes)
{
    long p = rsys6(SYS_mmap, 0, (long)bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p < 0 && p > -4096)
        return NULL;
    return (void *)p;
}

void rec_unmap(void *p, size_t bytes)
{
    if (p)
        rsys2(SYS_munmap, p, bytes);
}

struct pool_sigsave {
    uint64_t old;
};

static void pool_lock_take(struct pool_sigsave *s)
{
    uint64_t all = ~0ull;
    rsys4(SYS_rt_sigprocmask, SIG_BLOCK, &all, &s->old, 8);
    for (unsigned spins_ = 0; __atomic_exchange_n(&pool_lock, 1, __ATOMIC_ACQUIRE);)
        rec_spin_pause(&spins_);
}

static void pool_lock_give(struct pool_sigsave *s)
{
    __atomic_store_n(&pool_lock, 0, __ATOMIC_RELEASE);
    rsys4(SYS_rt_sigprocmask, SIG_SETMASK, &s->old, 0, 8);
}

static unsigned class_for(uint64_t need)
{
    unsigned c = 0;
    while (c < POOL_CLASSES && (32ull << c) < need)
        c++;
    return c;
}

void *pool_alloc(size_t size, size_t align)
{
    struct pool_sigsave s;
    if (align < 16)
        align = 16;
    if (align & (align - 1))
        return NULL;
    if (size > (1ull << 29))
        return NULL;
    uint64_t need = (uint64_t)size + POOL_HDR + (align > 16 ? align : 0);
    unsigned c = class_for(need);
    if (c >= POOL_CLASSES)
        return NULL;
    pool_lock_take(&s);
    if (!pool_mapped) {
        char *m = rec_map(POOL_RESERVE);
        if (!m) {
            pool_lock_give(&s);
            return NULL;
        }
        pool_base = m;
        pool_mapped = 1;
    }
    char *b = pool_free_list[c];
    if (b) {
        pool_free_list[c] = *(void **)b;
    } else {
        uint64_t bytes = 32ull << c;
        uint64_t start = (pool_used + 15) & ~15ull;
        if (start + bytes > POOL_RESERVE) {
            pool_lock_give(&s);
            return NULL;
        }
        b = pool_base + start;
        pool_used = start + bytes;
    }
    pool_lock_give(&s);
    uintptr_t p = ((uintptr_t)b + POOL_HDR + align - 1) & ~(uintptr_t)(align - 1);
    struct pool_hdr *h = (struct pool_hdr *)(p - POOL_HDR);
    h->magic = POOL_MAGIC;
    h->cls = c;
    h->block = (uint64_t)(uintptr_t)b;
    return (void *)p;
}

static struct pool_hdr *hdr_of(const void *p)
{
    struct pool_hdr *h = (struct pool_hdr *)((uintptr_t)p - POOL_HDR);
    return h->magic == POOL_MAGIC && h->cls < POOL_CLASSES ? h : NULL;
}

void pool_free(void *p)
{
    struct pool_sigsave s;
    struct pool_hdr *h = hdr_of(p);
    if (!h)
        return;               /* not ours after all: leak rather than corrupt */
    void *b = (void *)(uintptr_t)h->block;
    unsigned c = h->cls;
    h->magic = 0;
    pool_lock_take(&s);
    *(void **)b = pool_free_list[c];
    pool_free_list[c] = b;
    pool_lock_give(&s);
}

size_t pool_usable(const void *p)
{
    struct pool_hdr *h = hdr_of(p);
    if (!h)
        return 0;
    return (size_t)((32ull << h->cls) - ((uintptr_t)p - h->block));
}

void *pool_realloc(void *p, size_t size)
{
    if (!p)
        return pool_alloc(size, 16);
    size_t old = pool_usable(p);
    if (size <= old)
        return p;
    void *n = pool_alloc(size, 16);
    if (!n)
        return NULL;
    memcpy(n, p, old);
    pool_free(p);
    return n;
}

/* fork: the child must not inherit the lock held by a thread that does not exist there. */
static struct pool_sigsave fork_save;
void pool_atfork_prepare(void)
{
    pool_lock_take(&fork_save);
}
void pool_atfork_release(void)
{
    pool_lock_give(&fork_save);
}
