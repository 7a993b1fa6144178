/* method_prog.c: a helper for test_record_methods: a fixed storm of malloc, calloc, realloc and
 * free calls (a few call sites, sizes from a fixed-seed generator) for the recorder to write, so
 * that each way of coding a block's columns has columns worth coding. Built without sanitizers
 * (it is run under the preloaded recorder). */
#include <stdint.h>
#include <stdlib.h>

static void *volatile slot[512];

int main(void)
{
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 60000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned k = (unsigned)(x % 512);
        if (slot[k] && (x >> 20) % 3 == 0) {
            slot[k] = realloc(slot[k], 16 + (x >> 32) % 2000);
        } else if (slot[k]) {
            free(slot[k]);
            slot[k] = NULL;
        } else if ((x >> 24) % 4 == 0) {
            slot[k] = calloc(1 + (x >> 40) % 8, 24);
        } else {
            slot[k] = malloc(16 + (x >> 32) % 1000);
        }
    }
    for (int k = 0; k < 512; k++)
        free(slot[k]);
    return 0;
}
