/* blocks4000.c: the 4000-block example. Freed memory that glibc cannot give back because a
 * small block pins every large one, and the tcache pins the top of the heap.
 *
 * What it does: 4000 times malloc(52722) then malloc(1), writing every block (memset); then frees
 * them all in reverse order (small[i], big[i], i = 3999..0); then malloc(2000) and free it; then,
 * with --trim, malloc_trim(0).
 *
 * What glibc 2.36 does (x86_64, defaults): each pair is a 52736-byte chunk and a 32-byte chunk
 * carved from top, so the heap grows to about 211 MB. On the frees, the first 7 small chunks go
 * to the tcache (they stay "in use" to the allocator) and the other 3993 to fastbin 0, which
 * never coalesces; each big chunk is then bordered by an in-use small chunk above it and goes to
 * the unsorted bin whole. Nothing merges, nothing reaches top, no trim: the break stays where
 * it was and every written page stays resident. malloc(2000) is a large-bin request, so it runs
 * malloc_consolidate: the fastbin chunks merge with their big neighbours into one huge free
 * chunk, but the small chunks held by the tcache (the highest ones, next to top) keep it from
 * merging into top, so still nothing is trimmed and the pages stay resident. malloc_trim(0)
 * finally MADV_DONTNEEDs the interior pages of the free chunks (RSS drops) but cannot move the
 * break. With GLIBC_TUNABLES=glibc.malloc.tcache_count=0 every small chunk is a fastbin chunk,
 * the consolidation merges everything into top, and the free(2000) that follows trims the heap.
 *
 * Options:  --no-extra      skip the malloc(2000)/free
 *           --trim          call malloc_trim(0) at the end
 *           --no-write      do not memset the blocks (RSS then shows malloc's own writes)
 *           --count=N       N pairs instead of 4000
 *           --pause[=SEC]   sleep SEC seconds (default 60) at the end, so RSS can be read
 * At the end it prints one heapstat line per phase (after_free, after_extra, after_trim; see
 * heapstat.h). Nothing is printed before that: stdio would allocate its buffer mid-trace. */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heapstat.h"

#define BIG_SIZE 52722
#define SMALL_SIZE 1
#define MAX_PAIRS 100000

static void *big[MAX_PAIRS], *small[MAX_PAIRS];
/* Keeps the compiler from pairing a malloc with its free and removing both. */
static void *volatile extra_block;

static void usage(FILE *f)
{
    fprintf(f, "usage: trace-blocks4000 [--no-extra] [--trim] [--no-write] [--count=N] "
               "[--pause[=SEC]]\n");
}

int main(int argc, char **argv)
{
    heapstat_init();
    int extra = 1, trim = 0, write_blocks = 1;
    long count = 4000, pause_seconds = 0;
    static const struct option opts[] = {
        {"no-extra", no_argument, NULL, 'e'}, {"trim", no_argument, NULL, 't'},
        {"no-write", no_argument, NULL, 'w'}, {"count", required_argument, NULL, 'n'},
        {"pause", optional_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e': extra = 0; break;
        case 't': trim = 1; break;
        case 'w': write_blocks = 0; break;
        case 'n':
            count = strtol(optarg, NULL, 10);
            if (count < 1 || count > MAX_PAIRS) {
                fprintf(stderr, "trace-blocks4000: --count must be 1..%d\n", MAX_PAIRS);
                return 2;
            }
            break;
        case 'p': pause_seconds = optarg ? strtol(optarg, NULL, 10) : 60; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    for (long i = 0; i < count; i++) {
        big[i] = malloc(BIG_SIZE);
        small[i] = malloc(SMALL_SIZE);
        if (!big[i] || !small[i]) {
            heapstat_write(STDERR_FILENO, "trace-blocks4000: out of memory\n");
            return 1;
        }
        if (write_blocks) {
            memset(big[i], 0xa5, BIG_SIZE);
            memset(small[i], 0x5a, SMALL_SIZE);
        }
    }
    for (long i = count - 1; i >= 0; i--) {
        free(small[i]);
        free(big[i]);
    }
    struct heapstat after_free, after_extra, after_trim;
    heapstat_take(&after_free);

    if (extra) {
        extra_block = malloc(2000);
        if (extra_block && write_blocks)
            memset(extra_block, 0x11, 2000);
        free(extra_block);
        heapstat_take(&after_extra);
    }
    if (trim) {
        malloc_trim(0);
        heapstat_take(&after_trim);
    }

    heapstat_print("blocks4000", "after_free", &after_free);
    if (extra)
        heapstat_print("blocks4000", "after_extra", &after_extra);
    if (trim)
        heapstat_print("blocks4000", "after_trim", &after_trim);
    if (pause_seconds > 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "blocks4000: paused pid=%ld for %lds\n", (long)getpid(),
                 pause_seconds);
        heapstat_write(STDOUT_FILENO, msg);
        sleep((unsigned)pause_seconds);
    }
    return 0;
}
