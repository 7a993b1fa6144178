/* symbolize.c: return addresses to function and file:line with addr2line (see symbolize.h).
 *
 * For each module that holds frames, the frames' addresses go to `addr2line -f -C -e MODULE`
 * (spawned with its output on a pipe, its errors to /dev/null) in batches of BATCH; its answer
 * is two lines per address, the function then file:line, "??" when unknown. A position-
 * dependent executable (ELF type ET_EXEC) is asked for absolute addresses, anything else for the
 * offset from its load address.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "symbolize.h"

extern char **environ;

#define BATCH 256

static int module_of(struct trace_reader *r, uint64_t a)
{
    size_t n = trace_reader_module_count(r);
    for (size_t i = 0; i < n; i++) {
        const struct trace_module *m = trace_reader_module(r, i);
        if (a >= m->load_address && a - m->load_address < m->size)
            return (int)i;
    }
    return -1;
}

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

int symbolize_uninteresting(const char *path)
{
    const char *b = base_name(path);
    return !strncmp(b, "libc.so", 7) || !strncmp(b, "libc-", 5) || !strncmp(b, "ld-linux", 8) ||
           strstr(b, "fragscope-trace") != NULL || !strncmp(b, "libstdc++", 9);
}

unsigned symbolize_pick(struct trace_reader *r, const struct sym_frame *frames, unsigned depth)
{
    for (unsigned k = 0; k < depth; k++)
        if (frames[k].module < 0 ||
            !symbolize_uninteresting(trace_reader_module(r, (size_t)frames[k].module)->path))
            return k;
    return 0;
}

/* Is the file an ELF executable of type ET_EXEC (addresses are absolute)? */
static int is_fixed_exec(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    unsigned char h[18];
    ssize_t n = read(fd, h, sizeof h);
    close(fd);
    return n == (ssize_t)sizeof h && !memcmp(h, "\177ELF", 4) && h[16] == 2 && h[17] == 0;
}

/* One addr2line run over `count` addresses of `module`. */
static void addr2line_batch(const char *module, const uint64_t *addrs, struct sym_frame **out,
                            size_t count)
{
    char **argv = calloc(count + 6, sizeof *argv);
    char (*hex)[24] = calloc(count, sizeof *hex);
    int pfd[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int have_fa = 0;
    pid_t pid = -1;
    FILE *f = NULL;
    if (!argv || !hex || pipe(pfd) != 0)
        goto done;
    size_t k = 0;
    argv[k++] = "addr2line";
    argv[k++] = "-f";
    argv[k++] = "-C";
    argv[k++] = "-e";
    argv[k++] = (char *)module;
    for (size_t i = 0; i < count; i++) {
        snprintf(hex[i], sizeof hex[i], "0x%" PRIx64, addrs[i]);
        argv[k++] = hex[i];
    }
    argv[k] = NULL;
    if (posix_spawn_file_actions_init(&fa) != 0)
        goto done;
    have_fa = 1;
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    posix_spawn_file_actions_addclose(&fa, pfd[1]);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, "addr2line", &fa, NULL, argv, environ) != 0)
        pid = -1;
    close(pfd[1]);
    pfd[1] = -1;
    if (pid < 0)
        goto done;
    f = fdopen(pfd[0], "r");
    if (!f)
        goto done;
    pfd[0] = -1;
    char fn[512], loc[512];
    for (size_t i = 0; i < count && fgets(fn, sizeof fn, f) && fgets(loc, sizeof loc, f); i++) {
        fn[strcspn(fn, "\n")] = 0;
        loc[strcspn(loc, "\n")] = 0;
        if (fn[0] && strcmp(fn, "??"))
            snprintf(out[i]->function, sizeof out[i]->function, "%.159s", fn);
        if (loc[0] && strncmp(loc, "??", 2)) {
            char *disc = strstr(loc, " (discriminator");
            if (disc)
                *disc = 0;
            snprintf(out[i]->location, sizeof out[i]->location, "%.199s", loc);
        }
    }
done:
    if (f)
        fclose(f);
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    if (pid > 0) {
        int st;
        waitpid(pid, &st, 0);
    }
    if (have_fa)
        posix_spawn_file_actions_destroy(&fa);
    free(argv);
    free(hex);
}

void symbolize_modules(struct trace_reader *r, struct sym_frame *const *frames, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct sym_frame *f = frames[i];
        f->module = module_of(r, f->address);
        f->location[0] = 0;
        if (f->module >= 0) {
            const struct trace_module *m = trace_reader_module(r, (size_t)f->module);
            snprintf(f->where, sizeof f->where, "%.64s+0x%" PRIx64, base_name(m->path),
                     f->address - m->load_address);
        } else {
            snprintf(f->where, sizeof f->where, "0x%" PRIx64, f->address);
        }
        snprintf(f->function, sizeof f->function, "%s", f->where);
    }
}

void symbolize_frames(struct trace_reader *r, struct sym_frame *const *frames, size_t n,
                      int skip_uninteresting)
{
    symbolize_modules(r, frames, n);
    uint64_t *addrs = malloc(BATCH * sizeof *addrs);
    struct sym_frame **outs = malloc(BATCH * sizeof *outs);
    size_t nmod = trace_reader_module_count(r);
    for (size_t m = 0; addrs && outs && m < nmod; m++) {
        const struct trace_module *mod = trace_reader_module(r, m);
        if ((skip_uninteresting && symbolize_uninteresting(mod->path)) ||
            access(mod->path, R_OK) != 0)
            continue;
        int fixed = -1;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            struct sym_frame *f = frames[i];
            if (f->module != (int)m)
                continue;
            if (fixed < 0)
                fixed = is_fixed_exec(mod->path);
            uint64_t a = f->address ? f->address - 1 : 0;
            addrs[k] = fixed ? a : a - mod->load_address;
            outs[k++] = f;
            if (k == BATCH) {
                addr2line_batch(mod->path, addrs, outs, k);
                k = 0;
            }
        }
        if (k)
            addr2line_batch(mod->path, addrs, outs, k);
    }
    free(addrs);
    free(outs);
}
