/* mmap_ratchet.c: the dynamic mmap threshold ratchets up, so large buffers that used to be
 * mmapped (and returned to the system on free) land in the heap and stay there.
 *
 * What it does: 48 times, allocates a buffer of 1..4 MiB (fixed-seed sizes), writes it, allocates
 * a small record (64..256 bytes, kept), and frees the buffer.
 *
 * What glibc 2.36 does: a request >= mmap_threshold (128 KiB at start) is served by its own mmap
 * and munmapped on free. But freeing an mmapped chunk larger than the threshold (and <= 32 MiB)
 * raises mmap_threshold to that chunk's size and trim_threshold to twice it, unless a mallopt or a
 * tunable fixed either of them. After the first few frees the threshold sits near 4 MiB: later
 * buffers are carved from the heap's top, the record allocated after each one is carved right
 * behind it, and freeing the buffer leaves a hole the record keeps from merging into top. Later
 * buffers reuse a hole when one is big enough, otherwise grow the heap: the break only goes up,
 * and the written holes stay resident. The live data at the end is 48 records (~8 KiB); the heap
 * holds several MiB. With glibc.malloc.mmap_threshold=131072 (fixing the threshold) every buffer
 * is mmapped and the heap stays tiny: the report should propose that setting.
 *
 * Prints heapstat lines (heapstat.h) for the phase after_loop. */
#include <stdlib.h>
#include <string.h>

#include "heapstat.h"
#include "prng.h"

#define ROUNDS 48

static void *records[ROUNDS];

int main(void)
{
    heapstat_init();
    struct prng rng = {0x3a7c4e7ull};
    for (unsigned i = 0; i < ROUNDS; i++) {
        size_t size = prng_range(&rng, 1u << 20, 4u << 20);
        char *buf = malloc(size);
        size_t rsize = prng_range(&rng, 64, 256);
        if (!buf) {
            heapstat_write(2, "trace-mmap-ratchet: out of memory\n");
            return 1;
        }
        memset(buf, 0x4d, size);
        records[i] = malloc(rsize);
        memset(records[i], 0x52, rsize);
        free(buf);
    }
    struct heapstat after_loop;
    heapstat_take(&after_loop);
    heapstat_print("mmap-ratchet", "after_loop", &after_loop);
    return 0;
}
