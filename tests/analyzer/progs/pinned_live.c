/* pinned_live.c: a long-lived block that pins the top of the heap.
 *
 * 64 blocks of 20000 bytes (beyond the tcache and the fastbins, written), then one record of
 * 200 bytes (written, kept), then the 64 blocks are freed: they coalesce into one free chunk of
 * about 1.25 MiB right below the record, and the record keeps it from merging into top, so
 * nothing is trimmed and the pages stay resident. With --free-record the record is freed at the
 * end, which changes nothing: a 208-byte chunk goes to the tcache and does not coalesce. Prints
 * one heapstat line ("end"). */
#include <stdlib.h>
#include <string.h>
#include "heapstat.h"

#define BLOCKS 64
#define BLOCK_SIZE 20000

static void *blocks[BLOCKS];
static void *volatile record;

int main(int argc, char **argv)
{
    heapstat_init();
    int free_record = argc > 1 && !strcmp(argv[1], "--free-record");
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_SIZE);
        if (!blocks[i])
            return 1;
        memset(blocks[i], 0x42, BLOCK_SIZE);
    }
    record = malloc(200);
    if (!record)
        return 1;
    memset(record, 0x17, 200);
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    if (free_record)
        free(record);
    struct heapstat end;
    heapstat_take(&end);
    heapstat_print("pinned_live", "end", &end);
    return 0;
}
