/* heapstat.h: what the real glibc heap of this process looks like right now, measured without
 * allocating (so that measuring does not change what is measured).
 *
 * The sample programs in traces/ call heapstat_init() first thing in main(), take a snapshot at
 * the end of each phase, and print the snapshots at the very end with heapstat_print(), one
 * machine-readable line each on stdout, e.g.
 *
 *   blocks4000: phase=after_free brk_offset=211075072 heap_rss=211075072 ... fordblks=...
 *
 * All values are bytes except the counts (nonmain_heaps, ordblks, smblks, hblks). Tests parse
 * these lines to compare the model with the real glibc. */
#ifndef TRACES_HEAPSTAT_H
#define TRACES_HEAPSTAT_H

#include <stdint.h>

struct heapstat {
    uint64_t brk_offset;     /* sbrk(0) - the start of the [heap] mapping (main arena size) */
    uint64_t heap_rss;       /* Rss of the [heap] mapping, from /proc/self/smaps */
    uint64_t nonmain_heaps;  /* anonymous rw mappings starting on a 64 MiB boundary: arena heaps */
    uint64_t nonmain_rss;    /* their summed Rss */
    uint64_t rss;            /* the whole process, /proc/self/statm resident */
    /* mallinfo2(), summed over all arenas by glibc */
    uint64_t arena, ordblks, smblks, hblks, hblkhd, fsmblks, uordblks, fordblks, keepcost;
};

/* Remembers the break before the first allocation (the heap start when [heap] is absent). */
void heapstat_init(void);

/* Fills *hs. Reads /proc with open/read into static buffers: no malloc. */
void heapstat_take(struct heapstat *hs);

/* Writes "PROG: phase=PHASE key=value ..." and a newline to stdout with write(2). */
void heapstat_print(const char *prog, const char *phase, const struct heapstat *hs);

/* Writes a whole string to fd with write(2), retrying on short writes. */
void heapstat_write(int fd, const char *s);

#endif
