/* mtrace_prog.c: a helper for test_mtrace_import. Under MALLOC_TRACE (and libc_malloc_debug.so
 * preloaded) it makes a known set of malloc-family calls between mtrace() and muntrace(), then
 * prints the pointers it got, one per line in hex, with write(2) so that printing allocates
 * nothing. Built without sanitizers: ASan's allocator would bypass glibc's mtrace hooks. */
#include <mcheck.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile keep[8];
static volatile size_t huge = SIZE_MAX / 2;

static void put(void *p)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lx\n", (unsigned long)(uintptr_t)p);
    if (write(1, buf, (size_t)n) != n)
        _exit(3);
}

int main(void)
{
    mtrace();
    keep[0] = malloc(24);
    keep[1] = calloc(3, 40);
    keep[2] = malloc(1000);
    keep[3] = realloc(keep[0], 200);
    free(keep[1]);
    keep[4] = malloc(40);
    keep[5] = malloc(1 << 20);
    keep[6] = malloc(huge);
    free(keep[2]);
    free(keep[4]);
    free(keep[5]);
    free(keep[3]);
    muntrace();
    for (int i = 0; i < 7; i++)
        put(keep[i]);
    return 0;
}
