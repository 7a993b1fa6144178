/* aligned_gaps.c: aligned allocations of large blocks between small leaked ones leave gaps that
 * nothing fills, and the leaks pin every gap once the aligned blocks are freed.
 *
 * What it does: 400 times, allocates a small record (malloc(24), never freed: a leak) and then
 * a large aligned block: alternately aligned_alloc(4096, 8..24 KiB) and posix_memalign(512,
 * 6..20 KiB), written. Then it frees every aligned block and finally mallocs 300 blocks of
 * 200 bytes (a typical small-object phase afterwards).
 *
 * What glibc 2.36 does: an aligned request with alignment > 16 becomes _int_malloc(size +
 * alignment + 32) and the chunk is split: the misaligned leading piece is freed back (to the
 * tcache, a fastbin or the unsorted bin, by its size) and a trailing piece larger than MINSIZE is
 * freed too. The next malloc(24) then usually comes out of such a leftover, so the leaks end up
 * spread between the aligned blocks. When the aligned blocks are freed, each hole is bounded by
 * leaked 32-byte chunks: the holes cannot merge into one another nor into top, the break cannot
 * move and every page written stays resident (only malloc_trim could MADV_DONTNEED the hole
 * interiors). The live data is 400 x 24 bytes. The report should show the heap held by a few
 * KiB of live data and name the aligned calls' sites.
 *
 * Prints heapstat lines (heapstat.h) for the phases all_live, after_free and after_small. */
#include <stdlib.h>
#include <string.h>

#include "heapstat.h"
#include "prng.h"

#define ROUNDS 400
#define SMALL_AFTER 300

static void *leaks[ROUNDS], *blocks[ROUNDS], *smalls[SMALL_AFTER];

int main(void)
{
    heapstat_init();
    struct prng rng = {0xa119edull};
    for (unsigned i = 0; i < ROUNDS; i++) {
        leaks[i] = malloc(24);
        memset(leaks[i], 0x24, 24);
        size_t size;
        if (i % 2 == 0) {
            size = 4096 * prng_range(&rng, 2, 6);   /* aligned_alloc wants a multiple */
            blocks[i] = aligned_alloc(4096, size);
        } else {
            size = prng_range(&rng, 6 * 1024, 20 * 1024);
            if (posix_memalign(&blocks[i], 512, size) != 0)
                blocks[i] = NULL;
        }
        if (!blocks[i] || !leaks[i]) {
            heapstat_write(2, "trace-aligned-gaps: out of memory\n");
            return 1;
        }
        memset(blocks[i], 0xa1, size);
    }
    struct heapstat all_live, after_free, after_small;
    heapstat_take(&all_live);

    for (unsigned i = 0; i < ROUNDS; i++)
        free(blocks[i]);
    heapstat_take(&after_free);

    for (unsigned i = 0; i < SMALL_AFTER; i++) {
        smalls[i] = malloc(200);
        memset(smalls[i], 0x20, 200);
    }
    heapstat_take(&after_small);

    heapstat_print("aligned-gaps", "all_live", &all_live);
    heapstat_print("aligned-gaps", "after_free", &after_free);
    heapstat_print("aligned-gaps", "after_small", &after_small);
    return 0;
}
