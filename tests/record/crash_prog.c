/* crash_prog.c: a program that dies before it can exit, for the crash-safety tests.
 *
 *   crash_prog segv N    allocates N blocks of 1234 bytes, checks that SIGSEGV looks untouched
 *                        (sigaction reports SIG_DFL even though the recorder watches it), then
 *                        writes through a null pointer
 *   crash_prog wait N    allocates N blocks of 777 bytes, writes "ready" and waits to be killed
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int n = atoi(argv[2]);
    int segv = !strcmp(argv[1], "segv");
    size_t size = segv ? 1234 : 777;
    void *volatile keep = NULL;
    for (int i = 0; i < n; i++) {
        void **p = malloc(size);
        if (!p)
            return 3;
        *p = keep;
        keep = p;
    }
    if (segv) {
        struct sigaction old;
        if (sigaction(SIGSEGV, NULL, &old) != 0 || old.sa_handler != SIG_DFL)
            return 4;
        if (write(1, "dfl\n", 4) != 4)
            return 5;
        *(volatile int *)(uintptr_t)argc = 1;   /* address 3: unmapped */
        return 6;
    }
    if (write(1, "ready\n", 6) != 6)
        return 5;
    for (;;)
        pause();
}
