/* addr_prog.c: prints where glibc put each of its allocations, relative to the heap start.
 *
 * The address-identity test runs this with and without the recorder: if the recorder allocated
 * anything from the heap it measures, every later address would move. The program takes
 * sbrk(0) before its first allocation, runs a fixed pseudo-random mix of malloc, calloc,
 * realloc, memalign, posix_memalign, valloc and free (up to 256 live blocks, sizes 1..70000,
 * plus a few mmap-sized ones), and only at the end writes its results with write(2), so that
 * stdio never allocates. Output: "base HEX" then one line per allocation result: the offset
 * from the base for heap memory, "mmap" for chunks outside [base, brk).
 */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STEPS 6000
#define LIVE 256

static char out[STEPS * 24 + 64];
static size_t out_len;

static void put(const char *s)
{
    while (*s)
        out[out_len++] = *s++;
}

static void put_hex(uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        out[out_len++] = tmp[--n];
}

static uintptr_t base;

static void note(void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (a >= base && a < (uintptr_t)sbrk(0)) {
        put_hex(a - base);
    } else {
        put("mmap");
    }
    put("\n");
}

static uint32_t rng = 12345;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

int main(void)
{
    base = (uintptr_t)sbrk(0);
    static void *live[LIVE];
    for (int i = 0; i < STEPS; i++) {
        uint32_t r = next();
        int slot = (int)(r % LIVE);
        if (live[slot]) {
            if ((r >> 8) % 4 == 0) {
                size_t sz = 1 + (next() % 9000);
                void *q = realloc(live[slot], sz);
                if (q) {
                    live[slot] = q;
                    note(q);
                }
            } else {
                free(live[slot]);
                live[slot] = NULL;
            }
            continue;
        }
        size_t sz = (r >> 12) % 16 == 0 ? 1 + next() % 70000 : 1 + next() % 600;
        if (i % 997 == 0)
            sz = 200000 + next() % 100000;          /* above the mmap threshold */
        void *p;
        switch ((r >> 20) % 8) {
        case 0: p = calloc(1 + sz % 7, (sz + sz % 7) / (1 + sz % 7) + 1); break;
        case 1: p = memalign(64, sz); break;
        case 2: if (posix_memalign(&p, 256, sz)) p = NULL; break;
        case 3: p = (r >> 24) % 8 == 0 ? valloc(sz) : malloc(sz); break;
        default: p = malloc(sz); break;
        }
        if (!p)
            return 1;
        memset(p, 0x5a, sz < 64 ? sz : 64);
        live[slot] = p;
        note(p);
    }
    for (int i = 0; i < LIVE; i++)
        free(live[i]);
    malloc_trim(0);
    char head[64];
    size_t hl = 0;
    const char *b = "base ";
    while (*b)
        head[hl++] = *b++;
    {
        char tmp[20];
        int n = 0;
        uint64_t v = base;
        do {
            tmp[n++] = "0123456789abcdef"[v & 15];
            v >>= 4;
        } while (v);
        while (n)
            head[hl++] = tmp[--n];
    }
    head[hl++] = '\n';
    if (write(1, head, hl) != (ssize_t)hl || write(1, out, out_len) != (ssize_t)out_len)
        return 2;
    return 0;
}
