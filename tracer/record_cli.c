/* record_cli.c: `fragscope record`, run a program under libfragscope-trace.so.
 *
 * Finds the preload library next to the fragscope binary (the directory of /proc/self/exe,
 * then ../lib/fragscope), checks the output path (never through a symlink, never over an
 * existing file without --force), starts the program with LD_PRELOAD (appended to any existing
 * one) and the FRAGSCOPE_* settings, waits for it, then waits for the recorder's flusher to
 * release each trace file (it holds a lock until the file is complete, which may be a moment
 * after a crash or a SIGKILL) and lists every file of the run: PATH for the program itself,
 * PATH.<pid> for each process it forked or exec'd (PATH.<pid>.<n> when one pid wrote several).
 * Returns the program's exit status, or 128 + the signal that killed it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../cli.h"

#define PRELOAD_NAME "libfragscope-trace.so"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fragscope record [OPTIONS] -- PROGRAM [ARGS...]\n\n"
            "Runs PROGRAM with the malloc recorder preloaded and writes its trace.\n\n"
            "  -o, --output FILE     trace file (default: PROGRAM.<pid>.fstrace here); processes\n"
            "                        the program forks or execs write FILE.<pid>\n"
            "  -f, --force           replace an existing regular file (never a symlink)\n"
            "      --no-stacks       do not record call stacks\n"
            "      --stack-depth N   frames per stack (1..%d, default 32)\n"
            "      --sample-ms N     RSS/heap sample period in ms (0 = none, default 100)\n"
            "      --flush-ms N      write buffered events at least every N ms (default 200)\n"
            "      --compress HOW    how blocks are compressed: zlib (default), rans (our own\n"
            "                        range coder) or none\n"
            "  -q, --quiet           print nothing but errors\n"
            "  -h, --help            this help\n\n"
            "The program's exit status is returned (128+N when killed by signal N).\n"
            "Environment equivalents for the bare preload (LD_PRELOAD=.../" PRELOAD_NAME "):\n"
            "FRAGSCOPE_OUT, FRAGSCOPE_FORCE, FRAGSCOPE_STACKS, FRAGSCOPE_STACK_DEPTH,\n"
            "FRAGSCOPE_SAMPLE_MS, FRAGSCOPE_FLUSH_MS, FRAGSCOPE_FLUSH_EVENTS, FRAGSCOPE_BUFFER_MB,\n"
            "FRAGSCOPE_CLOCK=precise, FRAGSCOPE_QUIET, FRAGSCOPE_COMPRESS.\n",
            128);
}

static int parse_uint(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == 0 || *end || v < lo || v > hi) {
        fprintf(stderr, "fragscope record: %s needs a number in %ld..%ld, not '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* The preload library: next to our binary, then ../lib/fragscope. FRAGSCOPE_PRELOAD
 * overrides. */
static int find_preload(char *out, size_t cap)
{
    const char *env = getenv("FRAGSCOPE_PRELOAD");
    if (env && *env) {
        if (access(env, R_OK) != 0) {
            fprintf(stderr, "fragscope record: FRAGSCOPE_PRELOAD=%s: %s\n", env, strerror(errno));
            return -1;
        }
        snprintf(out, cap, "%s", env);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "fragscope record: cannot read /proc/self/exe: %s\n", strerror(errno));
        return -1;
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    const char *candidates[] = {"%s/" PRELOAD_NAME, "%s/../lib/fragscope/" PRELOAD_NAME,
                                "%s/tracer/" PRELOAD_NAME};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        snprintf(out, cap, candidates[i], self);
        if (access(out, R_OK) == 0)
            return 0;
    }
    fprintf(stderr, "fragscope record: cannot find %s next to %s (nor in ../lib/fragscope)\n",
            PRELOAD_NAME, self);
    return -1;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* An absolute path, so that a program that changes directory still writes where we look. */
static int absolute(const char *path, char *out, size_t cap)
{
    if (path[0] == '/') {
        snprintf(out, cap, "%s", path);
        return 0;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
        fprintf(stderr, "fragscope record: getcwd: %s\n", strerror(errno));
        return -1;
    }
    if ((size_t)snprintf(out, cap, "%s/%s", cwd, path) >= cap) {
        fprintf(stderr, "fragscope record: output path too long\n");
        return -1;
    }
    return 0;
}

/* Refuses symlinks always, existing files without force, and anything but a regular file. */
static int check_output(const char *path, int force)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (fprintf(stderr, "fragscope record: %s: %s\n", path,
                                              strerror(errno)), -1);
    if (S_ISLNK(st.st_mode)) {
        fprintf(stderr, "fragscope record: %s is a symbolic link; refusing to write through it\n", path);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "fragscope record: %s exists and is not a regular file\n", path);
        return -1;
    }
    if (!force) {
        fprintf(stderr, "fragscope record: %s exists; use --force to replace it\n", path);
        return -1;
    }
    return 0;
}

/* Waits (up to timeout_ms) until nobody holds the recorder's lock on path. */
static int wait_complete(const char *path, unsigned timeout_ms)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int ok = -1;
    for (unsigned waited = 0; waited <= timeout_ms; waited += 10) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
            ok = 0;
            break;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    close(fd);
    return ok;
}

/* PATH.<digits> or PATH.<digits>.<digits> */
static int is_run_file(const char *name, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(name, base, n) || name[n] != '.')
        return 0;
    const char *p = name + n + 1;
    int parts = 0;
    while (*p) {
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
        parts++;
        if (*p == '.')
            p++;
        else if (*p)
            return 0;
    }
    return parts >= 1 && parts <= 2;
}

static void report_files(const char *path, int quiet)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = base_name(path);
    if (slash)
        *slash = 0;
    struct stat st;
    if (wait_complete(path, 30000) != 0 && access(path, F_OK) == 0)
        fprintf(stderr, "fragscope record: %s is still being written by a process of the run\n", path);
    if (stat(path, &st) == 0) {
        if (!quiet)
            fprintf(stderr, "fragscope record: trace written to %s (%lld bytes)\n", path,
                    (long long)st.st_size);
    } else {
        fprintf(stderr, "fragscope record: no trace was written to %s\n", path);
    }
    DIR *d = opendir(slash ? dir : ".");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_run_file(e->d_name, base))
            continue;
        char full[PATH_MAX + 256];
        snprintf(full, sizeof full, "%s/%s", slash ? dir : ".", e->d_name);
        if (wait_complete(full, 30000) != 0)
            fprintf(stderr, "fragscope record: %s is still being written\n", full);
        if (stat(full, &st) == 0 && !quiet)
            fprintf(stderr, "fragscope record:   and %s (%lld bytes, a forked or exec'd process)\n",
                    full, (long long)st.st_size);
    }
    closedir(d);
}

int cmd_record(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"force", no_argument, 0, 'f'},
        {"no-stacks", no_argument, 0, 'S'},    {"stack-depth", required_argument, 0, 'D'},
        {"sample-ms", required_argument, 0, 'M'}, {"flush-ms", required_argument, 0, 'F'},
        {"compress", required_argument, 0, 'Z'},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *output = NULL, *compress = NULL;
    int force = 0, stacks = 1, quiet = 0;
    long depth = -1, sample_ms = -1, flush_ms = -1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+o:fqh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'f': force = 1; break;
        case 'S': stacks = 0; break;
        case 'D': if (parse_uint("--stack-depth", optarg, 1, 128, &depth)) return 2; break;
        case 'M': if (parse_uint("--sample-ms", optarg, 0, 3600000, &sample_ms)) return 2; break;
        case 'F': if (parse_uint("--flush-ms", optarg, 1, 60000, &flush_ms)) return 2; break;
        case 'Z':
            if (strcmp(optarg, "zlib") && strcmp(optarg, "rans") && strcmp(optarg, "none")) {
                fprintf(stderr, "fragscope record: --compress: '%s' is not zlib, rans or none\n",
                        optarg);
                return 2;
            }
            compress = optarg;
            break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "fragscope record: no program given (fragscope record [OPTIONS] -- PROGRAM ...)\n");
        return 2;
    }
    char **prog = argv + optind;

    char preload[PATH_MAX];
    if (find_preload(preload, sizeof preload))
        return 1;
    char lib_abs[PATH_MAX];
    if (!realpath(preload, lib_abs))
        snprintf(lib_abs, sizeof lib_abs, "%s", preload);

    /* The default name holds the child's pid, so the child waits on a pipe until the parent
     * has checked that name; a closed pipe without the go-ahead means: give up quietly. */
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) != 0) {
        fprintf(stderr, "fragscope record: pipe: %s\n", strerror(errno));
        return 1;
    }
    fflush(NULL);
    char path[PATH_MAX], given[PATH_MAX];
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fragscope record: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        char go = 0, num[32];
        close(gate[1]);
        if (read(gate[0], &go, 1) != 1 || go != 'g')
            _exit(127);
        close(gate[0]);
        if (output)
            snprintf(given, sizeof given, "%s", output);
        else
            snprintf(given, sizeof given, "%s.%d.fstrace", base_name(prog[0]), (int)getpid());
        if (absolute(given, path, sizeof path))
            _exit(127);
        const char *old = getenv("LD_PRELOAD");
        size_t need = strlen(lib_abs) + (old ? strlen(old) + 2 : 1);
        char *ld = malloc(need);
        if (!ld)
            _exit(127);
        if (old && *old)
            snprintf(ld, need, "%s:%s", old, lib_abs);
        else
            snprintf(ld, need, "%s", lib_abs);
        setenv("LD_PRELOAD", ld, 1);
        setenv("FRAGSCOPE_OUT", path, 1);
        setenv("FRAGSCOPE_ROOT", "1", 1);
        setenv("FRAGSCOPE_FORCE", force ? "1" : "0", 1);
        setenv("FRAGSCOPE_STACKS", stacks ? "1" : "0", 1);
        if (depth > 0) {
            snprintf(num, sizeof num, "%ld", depth);
            setenv("FRAGSCOPE_STACK_DEPTH", num, 1);
        }
        if (sample_ms >= 0) {
            snprintf(num, sizeof num, "%ld", sample_ms);
            setenv("FRAGSCOPE_SAMPLE_MS", num, 1);
        }
        if (flush_ms > 0) {
            snprintf(num, sizeof num, "%ld", flush_ms);
            setenv("FRAGSCOPE_FLUSH_MS", num, 1);
        }
        if (quiet)
            setenv("FRAGSCOPE_QUIET", "1", 1);
        if (compress)
            setenv("FRAGSCOPE_COMPRESS", compress, 1);
        execvp(prog[0], prog);
        fprintf(stderr, "fragscope record: cannot run %s: %s\n", prog[0], strerror(errno));
        _exit(127);
    }
    close(gate[0]);
    if (output)
        snprintf(given, sizeof given, "%s", output);
    else
        snprintf(given, sizeof given, "%s.%d.fstrace", base_name(prog[0]), (int)pid);
    if (absolute(given, path, sizeof path) || check_output(path, force)) {
        close(gate[1]);
        waitpid(pid, NULL, 0);
        return 1;
    }
    if (write(gate[1], "g", 1) != 1) {
        fprintf(stderr, "fragscope record: cannot start the program: %s\n", strerror(errno));
        close(gate[1]);
        waitpid(pid, NULL, 0);
        return 1;
    }
    close(gate[1]);

    /* Like system(): the terminal's SIGINT/SIGQUIT are for the program. */
    struct sigaction ign, old_int, old_quit;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);

    int rc;
    if (WIFEXITED(status)) {
        rc = WEXITSTATUS(status);
        if (!quiet && rc)
            fprintf(stderr, "fragscope record: %s exited with status %d\n", prog[0], rc);
    } else if (WIFSIGNALED(status)) {
        rc = 128 + WTERMSIG(status);
        if (!quiet)
            fprintf(stderr, "fragscope record: %s was killed by signal %d (%s)\n", prog[0],
                    WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        rc = 1;
    }
    report_files(path, quiet);
    return rc;
}
