/* bench_exec.c: runs a command and reports what it cost.
 *
 *   bench_exec [-e NAME=VALUE]... -- COMMAND ARGS...
 *
 * -e sets a variable for the command only (so a preload library set this way does not also
 * run inside bench_exec).
 * Prints one line on stderr: "bench_exec wall_s=W maxrss_kb=M cpu_s=C status=S", where W is
 * the wall-clock time from fork to the command's exit, M its peak resident set (wait4's
 * ru_maxrss) and C its user+system time (including children it waited for). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int first = 1;
    while (first + 1 < argc && !strcmp(argv[first], "-e"))
        first += 2;
    if (first < argc && !strcmp(argv[first], "--"))
        first++;
    if (first >= argc) {
        fprintf(stderr, "usage: bench_exec [-e NAME=VALUE]... -- COMMAND ARGS...\n");
        return 2;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_exec: fork");
        return 1;
    }
    if (pid == 0) {
        for (int i = 1; i + 1 < argc && !strcmp(argv[i], "-e"); i += 2)
            putenv(argv[i + 1]);
        execvp(argv[first], argv + first);
        perror("bench_exec: exec");
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("bench_exec: wait4");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double wall = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    fprintf(stderr, "bench_exec wall_s=%.4f maxrss_kb=%ld cpu_s=%.4f status=%d\n", wall,
            ru.ru_maxrss, cpu, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
