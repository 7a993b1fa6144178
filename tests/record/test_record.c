/* test_record.c: the recorder in real processes, checked through the trace reader.
 *
 * Each test runs a small program (built in this folder) or a program from the machine with
 * libfragscope-trace.so preloaded, waits until the recorder has released the trace file, and
 * compares what the program says it did with what the trace says: addresses identical with and
 * without the recorder, every traced call with its arguments and results, threads and their
 * exits, fork and exec files, traces of crashed and killed programs, a consistent stream from a
 * real multi-threaded program, and the rules for the files themselves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "trace_format.h"
#include "test_support.h"

static char tmpdir[256];

/* ---- running programs ---- */

/* Runs argv with extra environment entries ("NAME=value"), stdout captured into out. Returns the
 * wait status. */
static int run(char *const argv[], const char *const env[], char *out, size_t cap, size_t *out_len)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 1);
        close(pfd[1]);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t n = 0;
    for (;;) {
        ssize_t k = read(pfd[0], out + n, cap - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        if (n == cap - 1)
            break;
    }
    close(pfd[0]);
    out[n] = 0;
    if (out_len)
        *out_len = n;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

static void path_in_tmp(char *dst, size_t cap, const char *name)
{
    snprintf(dst, cap, "%s/%s", tmpdir, name);
}

/* ---- reading traces ---- */

struct loaded {
    struct trace_header h;
    char argv[4096];
    struct trace_event *ev;
    size_t n;
    struct trace_reader_status st;
    int last_rc;
};

static void load(const char *path, struct loaded *L)
{
    char err[512];
    assert_true(ts_wait_trace(path));
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    const struct trace_header *h = trace_reader_header(r);
    L->h = *h;
    snprintf(L->argv, sizeof L->argv, "%s", h->argv ? h->argv : "");
    L->h.argv = L->argv;
    L->h.malloc_env = NULL;
    size_t cap = 1024;
    L->ev = malloc(cap * sizeof *L->ev);
    L->n = 0;
    struct trace_event e;
    while ((L->last_rc = trace_reader_next(r, &e)) == 1) {
        if (L->n == cap) {
            cap *= 2;
            L->ev = realloc(L->ev, cap * sizeof *L->ev);
        }
        L->ev[L->n++] = e;
    }
    trace_reader_status(r, &L->st);
    trace_reader_close(r);
}

static void unload(struct loaded *L)
{
    free(L->ev);
    L->ev = NULL;
}

static int allocates(unsigned kind)
{
    switch (kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_CALLOC: case TRACE_EV_REALLOC:
    case TRACE_EV_REALLOCARRAY: case TRACE_EV_MEMALIGN: case TRACE_EV_POSIX_MEMALIGN:
    case TRACE_EV_ALIGNED_ALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
        return 1;
    default:
        return 0;
    }
}

static int is_meta(unsigned kind)
{
    return kind == TRACE_EV_SAMPLE || kind == TRACE_EV_THREAD_START ||
           kind == TRACE_EV_THREAD_EXIT || kind == TRACE_EV_FORK || kind == TRACE_EV_MODULE;
}

static void assert_mode_0600(const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* ---- address identity ---- */

static void addresses_identical(void **state)
{
    (void)state;
    static char plain[200000], stk[200000], nostk[200000];
    size_t nplain, nstk, nnostk;
    char trace[512], trace2[512], envout[600], envout2[600];
    char *argv[] = {ADDR_PROG, NULL};
    path_in_tmp(trace, sizeof trace, "addr.fstrace");
    path_in_tmp(trace2, sizeof trace2, "addr-nostacks.fstrace");
    snprintf(envout, sizeof envout, "FRAGSCOPE_OUT=%s", trace);
    snprintf(envout2, sizeof envout2, "FRAGSCOPE_OUT=%s", trace2);
    const char *env_stacks[] = {"LD_PRELOAD=" PRELOAD_LIB, envout, "FRAGSCOPE_QUIET=1", NULL};
    const char *env_nostacks[] = {"LD_PRELOAD=" PRELOAD_LIB, envout2, "FRAGSCOPE_STACKS=0",
                                  "FRAGSCOPE_QUIET=1", NULL};

    assert_int_equal(run(argv, NULL, plain, sizeof plain, &nplain), 0);
    assert_int_equal(run(argv, env_stacks, stk, sizeof stk, &nstk), 0);
    assert_int_equal(run(argv, env_nostacks, nostk, sizeof nostk, &nnostk), 0);
    /* everything after the "base" line (the base itself moves with ASLR) */
    const char *a = strchr(plain, '\n'), *b = strchr(stk, '\n'), *c = strchr(nostk, '\n');
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(strlen(a) > 1000);
    assert_string_equal(a, b);
    assert_string_equal(a, c);

    /* ... and equal to the trace's */
    const char *files[] = {trace, trace2};
    const char *outs[] = {stk, nostk};
    for (int f = 0; f < 2; f++) {
        struct loaded L;
        load(files[f], &L);
        assert_int_equal(L.last_rc, 0);
        assert_true(L.st.clean_end);
        uint64_t base = strtoull(outs[f] + 5, NULL, 16);
        assert_int_equal(L.h.heap_start, base);
        assert_int_equal(L.h.stacks, f == 0);
        const char *line = strchr(outs[f], '\n') + 1;
        size_t matched = 0, stacks_seen = 0;
        for (size_t i = 0; i < L.n && *line; i++) {
            const struct trace_event *e = &L.ev[i];
            if (!allocates(e->kind) || e->ptr == 0)
                continue;
            if (e->stack_id)
                stacks_seen++;
            if (!strncmp(line, "mmap", 4)) {
                assert_true(e->ptr < base || (e->chunk_flags & TRACE_CHUNK_MMAPPED) ||
                            e->ptr > base + (1ull << 32));
            } else {
                uint64_t off = strtoull(line, NULL, 16);
                if (e->ptr - base != off)
                    fail_msg("allocation %zu: trace says heap+%#" PRIx64 ", program heap+%#" PRIx64,
                             matched, e->ptr - base, off);
            }
            matched++;
            line = strchr(line, '\n') + 1;
        }
        assert_int_equal(*line, 0);
        assert_true(matched > 3000);
        if (f == 0)
            assert_int_equal(stacks_seen, matched);
        else
            assert_int_equal(stacks_seen, 0);
        unload(&L);
        assert_mode_0600(files[f]);
    }
}

/* ---- every traced call ---- */

struct logline {
    char who[4];
    uint64_t kind, size, nmemb, align, old, ptr, err;
    int64_t result;
    int used;
};

static size_t parse_log(const char *out, struct logline *lines, size_t cap, uint64_t *fork_pid)
{
    size_t n = 0;
    const char *p = out;
    while (*p && n < cap) {
        struct logline *l = &lines[n];
        memset(l, 0, sizeof *l);
        if (p[0] == 'f' && p[1] == ' ') {
            *fork_pid = strtoull(p + 2, NULL, 16);
        } else {
            uint64_t res;
            int k = sscanf(p, "%3s %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64
                              " %" SCNx64 " %" SCNx64 " %" SCNx64,
                           l->who, &l->kind, &l->size, &l->nmemb, &l->align, &l->old, &l->ptr,
                           &l->err, &res);
            assert_int_equal(k, 9);
            l->result = (int64_t)res;
            n++;
        }
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    return n;
}

static int event_matches(const struct trace_event *e, const struct logline *l)
{
    int64_t result = e->result;
    return e->kind == l->kind && e->size == l->size && e->nmemb == l->nmemb &&
           e->alignment == l->align && e->old_ptr == l->old && e->ptr == l->ptr &&
           (uint64_t)(int64_t)e->err == l->err && result == l->result;
}

/* The log lines of `who`, in order, must appear in the thread's events in order; returns how
 * many events of that thread were not in the log. */
static size_t match_thread(const struct loaded *L, uint32_t thread, struct logline *lines,
                           size_t n, const char *who)
{
    size_t li = 0, extra = 0;
    for (size_t i = 0; i < L->n; i++) {
        const struct trace_event *e = &L->ev[i];
        if (e->thread != thread || is_meta(e->kind))
            continue;
        while (li < n && strcmp(lines[li].who, who))
            li++;
        if (li < n && event_matches(e, &lines[li])) {
            lines[li].used = 1;
            li++;
        } else {
            extra++;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(lines[i].who, who) && !lines[i].used)
            fail_msg("%s: logged call kind %" PRIu64 " ptr %#" PRIx64 " not found in the trace",
                     who, lines[i].kind, lines[i].ptr);
    return extra;
}

static void every_call_in_the_trace(void **state)
{
    (void)state;
    static char out[100000];
    static struct logline lines[512];
    char trace[512], envout[600];
    char *argv[] = {EXERCISE_PROG, NULL};
    path_in_tmp(trace, sizeof trace, "ex.fstrace");
    snprintf(envout, sizeof envout, "FRAGSCOPE_OUT=%s", trace);
    const char *env[] = {"LD_PRELOAD=" PRELOAD_LIB, envout, "FRAGSCOPE_ROOT=1",
                         "FRAGSCOPE_QUIET=1", NULL};
    int st = run(argv, env, out, sizeof out, NULL);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    uint64_t child = 0;
    size_t n = parse_log(out, lines, 512, &child);
    assert_true(n > 40);
    assert_true(child > 0);

    struct loaded L;
    load(trace, &L);
    assert_int_equal(L.last_rc, 0);
    assert_true(L.st.clean_end);
    assert_int_equal(L.st.seq_gaps, 0);
    /* main thread: every logged call in order; the only others are pthread_create's
     * callocs of the new threads' DTVs */
    size_t extra = match_thread(&L, 0, lines, n, "m");
    assert_true(extra <= 2);

    /* two threads: started by thread 0, their calls, then their exit last */
    int found[2] = {0, 0};
    uint64_t fork_seq = 0;
    for (size_t i = 0; i < L.n; i++) {
        const struct trace_event *e = &L.ev[i];
        if (e->kind == TRACE_EV_FORK) {
            assert_int_equal(e->value, (int64_t)child);
            fork_seq = e->seq;
        }
        if (e->kind != TRACE_EV_THREAD_START || e->thread == 0)
            continue;
        assert_int_equal(e->value, 0);
        uint32_t t = e->thread;
        /* which worker is it? its first malloc's size says (100 + n) */
        size_t j = i + 1;
        while (j < L.n && (L.ev[j].thread != t || L.ev[j].kind != TRACE_EV_MALLOC))
            j++;
        assert_true(j < L.n);
        int w = (int)(L.ev[j].size - 100);
        assert_true(w == 0 || w == 1);
        found[w]++;
        assert_int_equal(match_thread(&L, t, lines, n, w ? "t2" : "t1"), 0);
        size_t last = 0;
        for (size_t k = 0; k < L.n; k++)
            if (L.ev[k].thread == t && L.ev[k].kind != TRACE_EV_SAMPLE)
                last = k;
        assert_int_equal(L.ev[last].kind, TRACE_EV_THREAD_EXIT);
        /* non-main arena chunks */
        assert_true(L.ev[j].chunk_flags & TRACE_CHUNK_NON_MAIN_ARENA);
    }
    assert_int_equal(found[0], 1);
    assert_int_equal(found[1], 1);
    assert_true(fork_seq > 0);
    /* the mmapped chunk is flagged */
    for (size_t i = 0; i < L.n; i++)
        if (L.ev[i].kind == TRACE_EV_MALLOC && L.ev[i].size == (1u << 20))
            assert_true(L.ev[i].chunk_flags & TRACE_CHUNK_MMAPPED);
    int main_pid = L.h.pid;
    unload(&L);

    /* the fork child's own file, then the program it exec'd (same pid, next name) */
    char cpath[600], xpath[700];
    snprintf(cpath, sizeof cpath, "%s.%" PRIu64, trace, child);
    snprintf(xpath, sizeof xpath, "%s.1", cpath);
    load(cpath, &L);
    assert_int_equal(L.last_rc, 0);
    assert_true(L.st.clean_end);
    assert_int_equal(L.h.pid, (int)child);
    assert_int_equal(L.h.parent_pid, main_pid);
    assert_int_equal(L.h.fork_seq, fork_seq);
    assert_true(L.h.first_seq > fork_seq);
    assert_int_equal(match_thread(&L, 0, lines, n, "c"), 0);
    unload(&L);
    assert_mode_0600(cpath);

    load(xpath, &L);
    assert_int_equal(L.last_rc, 0);
    assert_true(L.st.clean_end);
    assert_int_equal(L.h.pid, (int)child);
    assert_non_null(strstr(L.h.exe, "exercise_prog"));
    assert_non_null(strstr(L.argv, "exec"));
    assert_int_equal(match_thread(&L, 0, lines, n, "x"), 0);
    unload(&L);
    assert_mode_0600(xpath);
}

struct consistency {
    size_t events, allocs, frees, unknown_frees, double_allocs, threads;
};
static void check_stream(const char *path, struct consistency *c);

/* ---- samples, modules after dlopen, _exit ---- */

static void samples_modules_and_exit(void **state)
{
    (void)state;
    char out[256], trace[512], envout[600];
    char *argv[] = {EXERCISE_PROG, (char *)"dlopen", NULL};
    path_in_tmp(trace, sizeof trace, "dl.fstrace");
    snprintf(envout, sizeof envout, "FRAGSCOPE_OUT=%s", trace);
    const char *env[] = {"LD_PRELOAD=" PRELOAD_LIB, envout, "FRAGSCOPE_QUIET=1", NULL};
    int st = run(argv, env, out, sizeof out, NULL);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 5);
    assert_string_equal(out, "dl\n");
    char err[512];
    assert_true(ts_wait_trace(trace));
    struct trace_reader *r = trace_reader_open(trace, err, sizeof err);
    assert_non_null(r);
    const struct trace_header *h = trace_reader_header(r);
    uint64_t heap = h->heap_start;
    assert_int_equal(h->page_size, 4096);
    assert_true(h->cpu_count >= 1);
    assert_string_equal(h->glibc_version, "2.36");
    struct trace_event e;
    size_t samples = 0, big = 0;
    int rc;
    while ((rc = trace_reader_next(r, &e)) == 1) {
        if (e.kind == TRACE_EV_SAMPLE) {
            samples++;
            assert_true(e.sample.rss_pages > 0);
            assert_true(e.sample.brk >= heap);
            assert_true(e.sample.arena > 0);          /* mallinfo2 */
            assert_true(e.sample.heap_resident_pages <= (e.sample.brk - heap) / 4096 + 1);
        }
        big += e.kind == TRACE_EV_MALLOC && e.size == 4321;
    }
    assert_int_equal(rc, 0);
    struct trace_reader_status rs;
    trace_reader_status(r, &rs);
    assert_true(rs.clean_end);                  /* _exit flushed and closed the file */
    assert_true(samples >= 1);
    assert_int_equal(big, 1);
    int libm = 0, self = 0;
    for (size_t i = 0; i < trace_reader_module_count(r); i++) {
        const struct trace_module *m = trace_reader_module(r, i);
        libm |= strstr(m->path, "libm.so") != NULL;
        self |= strstr(m->path, "rec_exercise_prog") != NULL && m->build_id_len == 20;
    }
    assert_true(libm);
    assert_true(self);
    trace_reader_close(r);
}

/* ---- many short-lived threads: TCB reuse, every start and exit ---- */

static void thread_churn(void **state)
{
    (void)state;
    char out[256], trace[512], envout[600];
    char *argv[] = {EXERCISE_PROG, (char *)"churn", (char *)"200", NULL};
    path_in_tmp(trace, sizeof trace, "churn.fstrace");
    snprintf(envout, sizeof envout, "FRAGSCOPE_OUT=%s", trace);
    const char *env[] = {"LD_PRELOAD=" PRELOAD_LIB, envout, "FRAGSCOPE_QUIET=1", NULL};
    int st = run(argv, env, out, sizeof out, NULL);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "churn c8\n");
    struct loaded L;
    load(trace, &L);
    assert_int_equal(L.last_rc, 0);
    assert_true(L.st.clean_end);
    assert_int_equal(L.st.seq_gaps, 0);
    static int started[1024], exited[1024], after_exit[1024], mallocs[1024];
    for (size_t i = 0; i < L.n; i++) {
        const struct trace_event *e = &L.ev[i];
        assert_true(e->thread < 1024);
        if (e->kind == TRACE_EV_THREAD_START)
            started[e->thread]++;
        else if (e->kind == TRACE_EV_THREAD_EXIT)
            exited[e->thread]++;
        else if (exited[e->thread] && e->kind != TRACE_EV_SAMPLE)
            after_exit[e->thread]++;
        if (e->kind == TRACE_EV_MALLOC && e->thread)
            mallocs[e->thread]++;
    }
    assert_int_equal(started[0], 1);
    assert_int_equal(exited[0], 0);
    for (int t = 1; t <= 200; t++) {
        assert_int_equal(started[t], 1);
        assert_int_equal(exited[t], 1);
        assert_int_equal(mallocs[t], 16);
        assert_int_equal(after_exit[t], 0);
    }
    assert_int_equal(started[201], 0);
    unload(&L);
    struct consistency c;
    check_stream(trace, &c);
    assert_int_equal(c.double_allocs, 0);
    assert_int_equal(c.unknown_frees, 0);
}

/* ---- crashes ---- */

static void segv_leaves_trace(void **state)
{
    (void)state;
    char out[256], trace[512], envout[600];
    char *argv[] = {CRASH_PROG, (char *)"segv", (char *)"3000", NULL};
    path_in_tmp(trace, sizeof trace, "segv.fstrace");
    snprintf(envout, sizeof envout, "FRAGSCOPE_OUT=%s", trace);
    const char *env[] = {"LD_PRELOAD=" PRELOAD_LIB, envout, "FRAGSCOPE_QUIET=1", NULL};
    int st = run(argv, env, out, sizeof out, NULL);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
    assert_string_equal(out, "dfl\n");   /* the program saw SIG_DFL for SIGSEGV */
    struct loaded L;
    load(trace, &L);
    assert_true(L.last_rc == 0);
    size_t mallocs = 0;
    for (size_t i = 0; i < L.n; i++)
        mallocs += L.ev[i].kind == TRACE_EV_MALLOC && L.ev[i].size == 1234;
    assert_int_equal(mallocs, 3000);
    unload(&L);
}

static void sigkill_leaves_trace(void **state)
{
    (void)state;
    char trace[512], envout[600];
    path_in_tmp(trace, sizeof trace, "kill.fstrace");
    snprintf(envout, sizeof envout, "FRAGSCOPE_OUT=%s", trace);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        putenv((char *)"LD_PRELOAD=" PRELOAD_LIB);
        putenv(envout);
        putenv((char *)"FRAGSCOPE_QUIET=1");
        execl(CRASH_PROG, CRASH_PROG, "wait", "20000", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char buf[16] = {0};
    assert_int_equal(read(pfd[0], buf, 6), 6);
    assert_string_equal(buf, "ready\n");
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    close(pfd[0]);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    struct loaded L;
    load(trace, &L);
    assert_int_equal(L.last_rc, 0);
    size_t mallocs = 0;
    for (size_t i = 0; i < L.n; i++)
        mallocs += L.ev[i].kind == TRACE_EV_MALLOC && L.ev[i].size == 777;
    /* everything the program committed before the kill is there */
    assert_int_equal(mallocs, 20000);
    unload(&L);
}

/* ---- a real program: the stream must be consistent ---- */

struct ptrset {
    uint64_t *k;
    size_t cap, n;
};

static size_t ps_slot(const struct ptrset *s, uint64_t p)
{
    size_t i = (size_t)((p * 0x9E3779B97F4A7C15ull) >> 20) & (s->cap - 1);
    while (s->k[i] && s->k[i] != p)
        i = (i + 1) & (s->cap - 1);
    return i;
}

static int ps_has(const struct ptrset *s, uint64_t p)
{
    return s->k[ps_slot(s, p)] == p;
}

static void ps_add(struct ptrset *s, uint64_t p)
{
    if (2 * (s->n + 1) > s->cap) {
        struct ptrset t = {calloc(s->cap * 2, 8), s->cap * 2, 0};
        for (size_t i = 0; i < s->cap; i++)
            if (s->k[i] && s->k[i] != 1)
                ps_add(&t, s->k[i]);
        free(s->k);
        *s = t;
    }
    size_t i = ps_slot(s, p);
    if (!s->k[i])
        s->n++;
    s->k[i] = p;
}

static void ps_del(struct ptrset *s, uint64_t p)
{
    /* rebuild-free deletion: re-insert the cluster after the hole */
    size_t i = ps_slot(s, p);
    if (s->k[i] != p)
        return;
    s->k[i] = 0;
    s->n--;
    for (size_t j = (i + 1) & (s->cap - 1); s->k[j]; j = (j + 1) & (s->cap - 1)) {
        uint64_t v = s->k[j];
        s->k[j] = 0;
        s->n--;
        ps_add(s, v);
    }
}


static void check_stream(const char *path, struct consistency *c)
{
    struct loaded L;
    load(path, &L);
    assert_int_equal(L.last_rc, 0);
    assert_true(L.st.clean_end);
    struct ptrset live = {calloc(1024, 8), 1024, 0};
    memset(c, 0, sizeof *c);
    uint64_t prev_seq = 0;
    for (size_t i = 0; i < L.n; i++) {
        const struct trace_event *e = &L.ev[i];
        if (i)
            assert_true(e->seq > prev_seq);
        prev_seq = e->seq;
        c->events++;
        if (e->kind == TRACE_EV_THREAD_START)
            c->threads++;
        uint64_t gone = e->kind == TRACE_EV_FREE ? e->ptr
                        : (e->kind == TRACE_EV_REALLOC || e->kind == TRACE_EV_REALLOCARRAY) &&
                                  (e->ptr || e->size == 0)
                            ? e->old_ptr
                            : 0;
        if (gone) {
            c->frees++;
            if (ps_has(&live, gone))
                ps_del(&live, gone);
            else
                c->unknown_frees++;
        }
        if (allocates(e->kind) && e->ptr) {
            c->allocs++;
            if (ps_has(&live, e->ptr))
                c->double_allocs++;
            ps_add(&live, e->ptr);
        }
    }
    free(live.k);
    unload(&L);
}

static void real_programs_consistent(void **state)
{
    (void)state;
    char input[512], trace[512], out[4096];
    path_in_tmp(input, sizeof input, "lines.txt");
    FILE *f = fopen(input, "w");
    assert_non_null(f);
    unsigned r = 7;
    for (int i = 0; i < 200000; i++) {
        r = r * 1103515245u + 12345u;
        fprintf(f, "%08x line %d %.*s\n", r, i, (int)(r >> 27), "abcdefghijklmnopqrstuvwxyzABCDEF");
    }
    fclose(f);
    path_in_tmp(trace, sizeof trace, "sort.fstrace");
    char *argv[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"-q", (char *)"-o", trace,
                    (char *)"--",  (char *)"/usr/bin/sort", (char *)"--parallel=4",
                    (char *)"-S", (char *)"100M", (char *)"-o", (char *)"/dev/null", input, NULL};
    int st = run(argv, NULL, out, sizeof out, NULL);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    struct consistency c;
    check_stream(trace, &c);
    print_message("sort: %zu events, %zu allocations, %zu frees, %zu frees of pointers never "
                  "seen allocated, %zu addresses handed out twice, %zu threads\n",
                  c.events, c.allocs, c.frees, c.unknown_frees, c.double_allocs, c.threads);
    assert_true(c.allocs > 100);
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
        assert_true(c.threads >= 2);    /* sort sorts with threads */
    assert_int_equal(c.double_allocs, 0);
    assert_true(c.unknown_frees <= c.frees / 100);

    /* perl (Debian's perl-base is essential): half a million calls */
    path_in_tmp(trace, sizeof trace, "perl.fstrace");
    char *argv3[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"-q", (char *)"-o", trace,
                     (char *)"--", (char *)"/usr/bin/perl", (char *)"-e",
                     (char *)"my %h; $h{$_} = 'x' x ($_ % 100) for 1..100000; "
                             "delete $h{$_} for 1..50000; print scalar(keys %h), qq(\\n)",
                     NULL};
    st = run(argv3, NULL, out, sizeof out, NULL);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "50000\n");
    check_stream(trace, &c);
    print_message("perl: %zu events, %zu allocations, %zu frees, %zu unknown frees, "
                  "%zu double allocations\n",
                  c.events, c.allocs, c.frees, c.unknown_frees, c.double_allocs);
    assert_true(c.allocs > 100000);
    assert_int_equal(c.double_allocs, 0);
    assert_true(c.unknown_frees <= c.frees / 100);

    if (access("/usr/bin/sqlite3", X_OK) == 0) {
        char db[512], sql[600];
        path_in_tmp(db, sizeof db, "t.db");
        path_in_tmp(trace, sizeof trace, "sqlite.fstrace");
        snprintf(sql, sizeof sql,
                 "create table t(a integer primary key, b text);"
                 "with recursive c(x) as (select 1 union all select x+1 from c where x<20000)"
                 " insert into t(b) select hex(randomblob(40)) from c;"
                 "create index tb on t(b); select count(*), sum(length(b)) from t;");
        char *argv2[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"-q", (char *)"-o", trace,
                         (char *)"--", (char *)"/usr/bin/sqlite3", db, sql, NULL};
        st = run(argv2, NULL, out, sizeof out, NULL);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_non_null(strstr(out, "20000|"));
        check_stream(trace, &c);
        print_message("sqlite3: %zu events, %zu allocations, %zu frees, %zu unknown frees, "
                      "%zu double allocations\n",
                      c.events, c.allocs, c.frees, c.unknown_frees, c.double_allocs);
        assert_true(c.allocs > 10000);
        assert_int_equal(c.double_allocs, 0);
        assert_true(c.unknown_frees <= c.frees / 100);
    }
}

/* ---- files: never overwritten, never through a symlink, mode 0600 ---- */

static int file_size(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0 ? (int)st.st_size : -1;
}

static int ends_with_marker(const char *p)
{
    char tail[7] = {0};
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, -6, SEEK_END);
    size_t n = fread(tail, 1, 6, f);
    fclose(f);
    return n == 6 && !strcmp(tail, "marker");
}

static void record_file_rules(void **state)
{
    (void)state;
    char trace[512], link[512], out[8192];
    path_in_tmp(trace, sizeof trace, "rules.fstrace");
    path_in_tmp(link, sizeof link, "rules-link.fstrace");
    char *rec_true[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"-q", (char *)"-o", trace,
                        (char *)"--", (char *)"/bin/true", NULL};
    int st = run(rec_true, NULL, out, sizeof out, NULL);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_mode_0600(trace);
    int size = file_size(trace);
    assert_true(size > 0);

    /* exists: refused, untouched */
    FILE *f = fopen(trace, "a");
    fputs("marker", f);
    fclose(f);
    st = run(rec_true, NULL, out, sizeof out, NULL);
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_int_equal(file_size(trace), size + 6);
    assert_true(ends_with_marker(trace));

    /* --force replaces a regular file */
    char *rec_force[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"-q", (char *)"--force",
                         (char *)"-o", trace, (char *)"--", (char *)"/bin/true", NULL};
    st = run(rec_force, NULL, out, sizeof out, NULL);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_false(ends_with_marker(trace));
    assert_mode_0600(trace);

    /* a symlink is refused even with --force, and its target is untouched */
    assert_int_equal(symlink(trace, link), 0);
    int before = file_size(trace);
    char *rec_link[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"-q", (char *)"--force",
                        (char *)"-o", link, (char *)"--", (char *)"/bin/true", NULL};
    st = run(rec_link, NULL, out, sizeof out, NULL);
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_int_equal(file_size(trace), before);

    /* the bare preload: same rules (and the program still runs) */
    char envout[600];
    snprintf(envout, sizeof envout, "FRAGSCOPE_OUT=%s", link);
    const char *env[] = {"LD_PRELOAD=" PRELOAD_LIB, envout, "FRAGSCOPE_FORCE=1",
                         "FRAGSCOPE_QUIET=1", NULL};
    char *sh[] = {(char *)"/bin/sh", (char *)"-c", (char *)"echo ran", NULL};
    st = run(sh, env, out, sizeof out, NULL);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "ran\n");
    assert_int_equal(file_size(trace), before);

    /* the exit status comes through, 128+N for a signal */
    char *rec_exit[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"-q", (char *)"--force",
                        (char *)"-o", trace, (char *)"--", (char *)"/bin/sh", (char *)"-c",
                        (char *)"exit 7", NULL};
    assert_int_equal(WEXITSTATUS(run(rec_exit, NULL, out, sizeof out, NULL)), 7);
    char *rec_kill[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"-q", (char *)"--force",
                        (char *)"-o", trace, (char *)"--", (char *)"/bin/sh", (char *)"-c",
                        (char *)"kill -9 $$", NULL};
    assert_int_equal(WEXITSTATUS(run(rec_kill, NULL, out, sizeof out, NULL)), 128 + 9);
    char *rec_usage[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"--stack-depth", (char *)"0",
                         (char *)"--", (char *)"/bin/true", NULL};
    assert_int_equal(WEXITSTATUS(run(rec_usage, NULL, out, sizeof out, NULL)), 2);
}

/* The flusher must not keep the program's descriptors: a reader sees EOF as soon as a fork
 * child (with its own flusher) closes its end of a pipe, not when the child exits. */
static void program_pipes_close(void **state)
{
    (void)state;
    char trace[512], out[256];
    path_in_tmp(trace, sizeof trace, "pipe.fstrace");
    char *argv[] = {FRAGSCOPE_BIN, (char *)"record", (char *)"-q", (char *)"-o", trace,
                    (char *)"--", (char *)"/usr/bin/perl", (char *)"-e",
                    (char *)"pipe(R, W) or die; my $pid = fork(); "
                            "if (!$pid) { close R; close W; my @a = map { 'x' x $_ } 1..1000; "
                            "sleep 2; exit 0 } "
                            "close W; my $t = time; my $l = <R>; print time - $t < 2 ? 'eof' : 'late'; "
                            "waitpid($pid, 0);",
                    NULL};
    int st = run(argv, NULL, out, sizeof out, NULL);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "eof");
}

static int setup(void **state)
{
    (void)state;
    return ts_tmpdir(tmpdir, sizeof tmpdir, "record");
}

static int teardown(void **state)
{
    (void)state;
    return ts_rmtree(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses_identical),
        cmocka_unit_test(every_call_in_the_trace),
        cmocka_unit_test(samples_modules_and_exit),
        cmocka_unit_test(thread_churn),
        cmocka_unit_test(segv_leaves_trace),
        cmocka_unit_test(sigkill_leaves_trace),
        cmocka_unit_test(real_programs_consistent),
        cmocka_unit_test(record_file_rules),
        cmocka_unit_test(program_pipes_close),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
