/* test_support.c: temporary directories, shell commands with their output, complete
 * recordings (see test_support.h). popen/pclose for commands; flock for the recorder's lock.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_support.h"

int ts_tmpdir(char *dir, size_t cap, const char *name)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(dir, cap, "%s/fs-%s.XXXXXX", base && *base ? base : "/tmp", name);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

int ts_rmtree(const char *dir)
{
    if (!dir || !dir[0] || strchr(dir, '\''))
        return -1;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int status_of(int st)
{
    if (st == -1)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

int ts_shell(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = 0;
    if (out && cap > 0) {
        size_t r;
        while (n + 1 < cap && (r = fread(out + n, 1, cap - 1 - n, p)) > 0)
            n += r;
        out[n] = 0;
    }
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    return status_of(pclose(p));
}

int ts_shell_all(const char *cmd, char **out)
{
    *out = NULL;
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap);
    if (!buf) {
        pclose(p);
        return -1;
    }
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                pclose(p);
                return -1;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    buf[n] = 0;
    *out = buf;
    return status_of(pclose(p));
}

int ts_wait_trace(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int ok = 0;
    for (int i = 0; i < 1000 && !ok; i++) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0)
            ok = 1;
        else
            usleep(10000);
    }
    close(fd);
    return ok;
}
