/* output_file.c: this process's trace file: its name, its creation and its header.
 *
 * The first process of a run writes FRAGSCOPE_OUT itself; every other one (fork children,
 * exec'd programs) writes FRAGSCOPE_OUT.<pid>, or FRAGSCOPE_OUT.<pid>.<n> if that exists (an
 * exec'd program keeps its pid). Files are created O_CREAT|O_EXCL|O_NOFOLLOW with mode 0600;
 * an existing file is replaced only with FRAGSCOPE_FORCE=1, only by the first process, and only
 * if it is a regular file. The descriptor is moved to 700 or above (out of the program's way)
 * and locked (flock) for as long as any copy of it is open, which `fragscope record` uses to
 * wait until the flusher has finished the file. The header comes from /proc/self (cmdline,
 * exe) read with raw system calls into mmap'd scratch memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>
#include "recorder.h"
#include "rec_syscall.h"

static size_t cat(char *dst, size_t cap, size_t at, const char *s)
{
    while (*s && at + 1 < cap)
        dst[at++] = *s++;
    dst[at] = 0;
    return at;
}

static size_t cat_num(char *dst, size_t cap, size_t at, unsigned long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at + 1 < cap)
        dst[at++] = tmp[--n];
    dst[at] = 0;
    return at;
}

static int create_file(const char *path, int force)
{
    if (force) {
        struct stat st;
        if (rsys2(SYS_lstat, path, &st) == 0) {
            if (!S_ISREG(st.st_mode))
                return -EEXIST;
            rsys1(SYS_unlink, path);
        }
    }
    return (int)rsys3(SYS_open, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* Reads a small /proc file into buf (NUL-terminated). Returns its length. */
static size_t read_proc(const char *path, char *buf, size_t cap)
{
    long fd = rsys3(SYS_open, path, O_RDONLY | O_CLOEXEC, 0);
    size_t n = 0;
    if (fd < 0) {
        buf[0] = 0;
        return 0;
    }
    while (n + 1 < cap) {
        long k = rsys3(SYS_read, fd, buf + n, cap - 1 - n);
        if (k == -EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    rsys1(SYS_close, fd);
    buf[n] = 0;
    return n;
}

static void write_header(pid_t parent_pid, uint64_t fork_seq, uint64_t first_seq)
{
    size_t scratch_bytes = 4u << 20;
    char *scratch = rec_map(scratch_bytes);
    struct trace_header *h = rec_map(sizeof *h);
    if (!scratch || !h)
        return;
    char *argv = scratch, *env = scratch + (1u << 20);
    uint8_t *out = (uint8_t *)scratch + (2u << 20);
    size_t n = read_proc("/proc/self/cmdline", argv, 1u << 20);
    while (n > 0 && argv[n - 1] == 0)
        n--;
    for (size_t i = 0; i < n; i++)
        if (argv[i] == 0)
            argv[i] = '\n';
    argv[n] = 0;
    size_t e = 0;
    for (char **v = environ; v && *v && e + 2 < (1u << 20); v++) {
        if (!strncmp(*v, "GLIBC_TUNABLES=", 15) || !strncmp(*v, "MALLOC_", 7)) {
            if (e)
                env[e++] = '\n';
            e = cat(env, 1u << 20, e, *v);
        }
    }
    h->version = TRACE_VERSION;
    h->pid = rec.pid;
    h->ppid = (int32_t)rsys0(SYS_getppid);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->start_time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec -
                       (rec_now_ns() - rec.time_base_ns);
    h->heap_start = rec.heap_start;
    h->page_size = (uint32_t)getpagesize();
    h->cpu_count = (uint32_t)get_nprocs();
    h->is_static = 0;           /* a preloaded library only ever runs in dynamic programs */
    h->stacks = (uint8_t)(rec.cfg.stacks != 0);
    h->stack_depth = (uint16_t)rec.cfg.stack_depth;
    h->parent_pid = parent_pid;
    h->fork_seq = fork_seq;
    h->first_seq = first_seq;
    cat(h->glibc_version, sizeof h->glibc_version, 0, gnu_get_libc_version());
    long k = rsys3(SYS_readlink, "/proc/self/exe", h->exe, sizeof h->exe - 1);
    h->exe[k > 0 ? k : 0] = 0;
    h->argv = argv;
    h->malloc_env = env;
    size_t bound = trace_header_bound(h);
    if (bound <= (2u << 20)) {
        size_t len = trace_encode_header(out, bound, h);
        if (len)
            blocks_write_raw(out, len);
    }
    rec_unmap(h, sizeof *h);
    rec_unmap(scratch, scratch_bytes);
}

/* Opens this process's trace file and writes its header. The first process of a run writes
 * FRAGSCOPE_OUT itself; every other one (fork children, exec'd programs) writes
 * FRAGSCOPE_OUT.<pid>, or FRAGSCOPE_OUT.<pid>.<n> if that exists (an exec'd program keeps its
 * pid). Returns 0, or -1 with a message. */
int output_open(pid_t parent_pid, uint64_t fork_seq, uint64_t first_seq, int root)
{
    int fd = -1;
    if (root) {
        size_t n = cat(rec.path, sizeof rec.path, 0, rec.root_path);
        (void)n;
        fd = create_file(rec.path, rec.cfg.force);
        if (fd < 0) {
            rec_message("cannot create ", rec.path,
                        fd == -EEXIST ? " (it exists; FRAGSCOPE_FORCE=1 or record --force "
                                        "replaces a regular file, never a symlink)"
                                      : "");
            return -1;
        }
    } else {
        for (unsigned k = 0; k < 1000 && fd < 0; k++) {
            size_t n = cat(rec.path, sizeof rec.path, 0, rec.root_path);
            n = cat(rec.path, sizeof rec.path, n, ".");
            n = cat_num(rec.path, sizeof rec.path, n, (unsigned long)rec.pid);
            if (k) {
                n = cat(rec.path, sizeof rec.path, n, ".");
                cat_num(rec.path, sizeof rec.path, n, k);
            }
            fd = create_file(rec.path, 0);
            if (fd != -EEXIST)
                break;
        }
        if (fd < 0) {
            rec_message("cannot create ", rec.path, "");
            return -1;
        }
    }
    /* Keep it out of the way of the program's own descriptor numbers. */
    long hi = rsys3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 700);
    if (hi >= 0) {
        rsys1(SYS_close, fd);
        fd = (int)hi;
    }
    /* Held (through the flusher's copy of the descriptor) until the file is complete:
     * `fragscope record` waits for it before reporting. */
    rsys2(SYS_flock, fd, LOCK_EX | LOCK_NB);
    rec.fd = fd;
    blocks_set_output(fd);
    write_header(parent_pid, fork_seq, first_seq);
    return 0;
}

