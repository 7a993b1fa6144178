/* native_child.c: spawns fragscope-native-runner on a sequence and maps its results.
 *
 * Both files are memfds: no temporary files to clean up, nothing to race on. The child gets the
 * fds by number (they are created without close-on-exec and closed here after the spawn).
 */
#include "native_child.h"

#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef FRAGSCOPE_NATIVE_RUNNER
#define FRAGSCOPE_NATIVE_RUNNER "fragscope-native-runner"
#endif

const char *native_runner_path(void)
{
    const char *p = getenv("FRAGSCOPE_NATIVE_RUNNER");
    return p && *p ? p : FRAGSCOPE_NATIVE_RUNNER;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

void native_run_release(struct native_run *r)
{
    if (r->map)
        munmap(r->map, r->len);
    memset(r, 0, sizeof *r);
}

int native_run_seq(const struct seq *s, struct native_run *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int ops_fd = memfd_create("fragscope-ops", 0);
    int out_fd = memfd_create("fragscope-out", 0);
    if (ops_fd < 0 || out_fd < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        if (ops_fd >= 0)
            close(ops_fd);
        if (out_fd >= 0)
            close(out_fd);
        return -1;
    }
    struct native_ops_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, NATIVE_OPS_MAGIC, 8);
    h.version = NATIVE_VERSION;
    h.op_size = sizeof(struct native_op);
    h.op_count = s->n;
    h.flags = s->set.flags;
    int rc = -1;
    if (write_all(ops_fd, &h, sizeof h) != 0 ||
        write_all(ops_fd, s->ops, s->n * sizeof(struct native_op)) != 0) {
        snprintf(err, errlen, "writing the ops: %s", strerror(errno));
        goto done;
    }

    char ops_arg[16], out_arg[16], tun[300];
    snprintf(ops_arg, sizeof ops_arg, "%d", ops_fd);
    snprintf(out_arg, sizeof out_arg, "%d", out_fd);
    const char *runner = native_runner_path();
    char *argv[] = {(char *)runner, "--ops-fd", ops_arg, "--out-fd", out_arg, NULL};
    char *envp[SEQ_MAX_ENV + 2];
    unsigned ne = 0;
    if (s->set.tunables[0]) {
        snprintf(tun, sizeof tun, "GLIBC_TUNABLES=%s", s->set.tunables);
        envp[ne++] = tun;
    }
    for (unsigned i = 0; i < s->set.env_count; i++)
        envp[ne++] = (char *)s->set.env[i];
    envp[ne] = NULL;

    pid_t pid;
    int e = posix_spawn(&pid, runner, NULL, NULL, argv, envp);
    if (e != 0) {
        snprintf(err, errlen, "cannot run %s: %s", runner, strerror(e));
        goto done;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "waitpid: %s", strerror(errno));
            goto done;
        }
    }
    out->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    out->term_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;

    struct stat sb;
    if (fstat(out_fd, &sb) != 0 || (size_t)sb.st_size < sizeof(struct native_out_header)) {
        snprintf(err, errlen, "runner wrote no output (exit %d, signal %d)", out->exit_code,
                 out->term_signal);
        goto done;
    }
    out->len = (size_t)sb.st_size;
    out->map = mmap(NULL, out->len, PROT_READ, MAP_SHARED, out_fd, 0);
    if (out->map == MAP_FAILED) {
        out->map = NULL;
        snprintf(err, errlen, "mmap of the runner output: %s", strerror(errno));
        goto done;
    }
    out->hdr = out->map;
    if (memcmp(out->hdr->magic, NATIVE_OUT_MAGIC, 8) != 0 ||
        out->hdr->result_size != sizeof(struct native_result) ||
        out->hdr->internal_size != sizeof(struct native_internal) ||
        out->hdr->internal_offset + out->hdr->internal_capacity * sizeof(struct native_internal) >
            out->len ||
        out->hdr->internal_count > out->hdr->internal_capacity) {
        snprintf(err, errlen, "runner output malformed (exit %d, signal %d)", out->exit_code,
                 out->term_signal);
        goto done;
    }
    out->res = (const struct native_result *)((const char *)out->map + out->hdr->result_offset);
    out->internal =
        (const struct native_internal *)((const char *)out->map + out->hdr->internal_offset);
    if (out->hdr->status != NATIVE_STATUS_OK || out->exit_code != 0) {
        snprintf(err, errlen, "runner failed at op %" PRIu64 " of %" PRIu64
                 " (status %u, exit %d, signal %d): %.200s",
                 out->hdr->ops_done, s->n, out->hdr->status, out->exit_code, out->term_signal,
                 out->hdr->error[0] ? out->hdr->error : "no message");
        goto done;
    }
    rc = 0;
done:
    close(ops_fd);
    close(out_fd);
    return rc;
}
