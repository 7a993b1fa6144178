/* exercise_prog.c: calls every function the recorder traces and logs what each call did.
 *
 * The test compares this log, call by call, with the trace. Each logged line is
 *   WHO KIND SIZE NMEMB ALIGN OLD PTR ERR RESULT    (numbers in hex, KIND a trace kind number)
 * where WHO is "m" (main thread), "t1"/"t2" (two threads), "c" (a fork child) or "x" (this
 * program exec'd again by the fork child). Logs are kept in static buffers and written with
 * write(2) at the end of each process, so that logging allocates nothing.
 *
 *   exercise_prog            the full run: every call, two threads (joined: they exit), a fork
 *                            whose child allocates and then execs "exercise_prog exec"
 *   exercise_prog exec       a few calls, then exit
 *   exercise_prog churn N    N short-lived threads, 4 at a time, each allocating and freeing
 *                            (thread stacks and TCBs get reused); prints "churn N"
 *   exercise_prog dlopen     dlopens libm, allocates once more, and ends with _exit(5)
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "trace_format.h"

struct log {
    char buf[16384];
    size_t len;
};

static void put_hex(struct log *l, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n && l->len < sizeof l->buf - 1)
        l->buf[l->len++] = tmp[--n];
}

static void entry(struct log *l, const char *who, unsigned kind, uint64_t size, uint64_t nmemb,
                  uint64_t align, const void *old, const void *ptr, int err, int64_t result)
{
    const uint64_t f[] = {kind, size, nmemb, align, (uintptr_t)old, (uintptr_t)ptr,
                          (uint64_t)err, (uint64_t)result};
    for (const char *s = who; *s; s++)
        l->buf[l->len++] = *s;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        l->buf[l->len++] = ' ';
        put_hex(l, f[i]);
    }
    l->buf[l->len++] = '\n';
}

static void flush_log(struct log *l)
{
    size_t off = 0;
    while (off < l->len) {
        ssize_t n = write(1, l->buf + off, l->len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    l->len = 0;
}

static struct log main_log, thread_log[2], child_log;

struct thread_arg {
    int n;
};

static void *worker(void *p)
{
    struct thread_arg *a = p;
    struct log *l = &thread_log[a->n];
    const char *who = a->n ? "t2" : "t1";
    void *keep[8];
    for (int i = 0; i < 8; i++) {
        keep[i] = malloc(100 + (size_t)i * 24 + (size_t)a->n);
        entry(l, who, TRACE_EV_MALLOC, 100 + (uint64_t)i * 24 + (uint64_t)a->n, 0, 0, NULL, keep[i], 0, 0);
    }
    for (int i = 0; i < 8; i += 2) {
        free(keep[i]);
        entry(l, who, TRACE_EV_FREE, 0, 0, 0, NULL, keep[i], 0, 0);
    }
    /* the odd ones stay in this thread's tcache at exit */
    for (int i = 1; i < 8; i += 2) {
        free(keep[i]);
        entry(l, who, TRACE_EV_FREE, 0, 0, 0, NULL, keep[i], 0, 0);
    }
    return NULL;
}

static void exec_image(void)
{
    struct log *l = &child_log;
    void *a = malloc(77);
    entry(l, "x", TRACE_EV_MALLOC, 77, 0, 0, NULL, a, 0, 0);
    void *b = calloc(3, 50);
    entry(l, "x", TRACE_EV_CALLOC, 50, 3, 0, NULL, b, 0, 0);
    free(a);
    entry(l, "x", TRACE_EV_FREE, 0, 0, 0, NULL, a, 0, 0);
    free(b);
    entry(l, "x", TRACE_EV_FREE, 0, 0, 0, NULL, b, 0, 0);
    flush_log(l);
}

static void *churn_worker(void *p)
{
    uintptr_t n = (uintptr_t)p;
    void *a[16];
    for (int i = 0; i < 16; i++)
        a[i] = malloc(32 + (n % 7) * 16 + (size_t)i * 8);
    for (int i = 0; i < 16; i++)
        free(a[i]);
    return NULL;
}

static int churn(int n)
{
    for (int i = 0; i < n; i += 4) {
        pthread_t th[4];
        int k = 0;
        for (; k < 4 && i + k < n; k++)
            pthread_create(&th[k], NULL, churn_worker, (void *)(uintptr_t)(i + k));
        for (int j = 0; j < k; j++)
            pthread_join(th[j], NULL);
    }
    struct log *l = &main_log;
    const char *s = "churn ";
    for (; *s; s++)
        l->buf[l->len++] = *s;
    put_hex(l, (uint64_t)n);
    l->buf[l->len++] = '\n';
    flush_log(l);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "exec")) {
        exec_image();
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "churn"))
        return churn(atoi(argv[2]));
    if (argc > 1 && !strcmp(argv[1], "dlopen")) {
        void *h = dlopen("libm.so.6", RTLD_NOW);
        void *p = malloc(4321);
        if (write(1, h ? "dl\n" : "nodl\n", h ? 3 : 5) < 0)
            _exit(1);
        free(p);
        _exit(5);
    }
    struct log *l = &main_log;
    void *p, *q, *r;
    int rc;

    p = malloc(40);
    entry(l, "m", TRACE_EV_MALLOC, 40, 0, 0, NULL, p, 0, 0);
    q = calloc(10, 30);
    entry(l, "m", TRACE_EV_CALLOC, 30, 10, 0, NULL, q, 0, 0);
    r = realloc(p, 4000);
    entry(l, "m", TRACE_EV_REALLOC, 4000, 0, 0, p, r, 0, 0);
    p = r;
    r = realloc(NULL, 24);
    entry(l, "m", TRACE_EV_REALLOC, 24, 0, 0, NULL, r, 0, 0);
    void *r0 = r;
    r = realloc(r0, 0);                        /* frees, returns NULL */
    entry(l, "m", TRACE_EV_REALLOC, 0, 0, 0, r0, r, 0, 0);
    r = reallocarray(p, 20, 100);
    entry(l, "m", TRACE_EV_REALLOCARRAY, 100, 20, 0, p, r, 0, 0);
    p = r;
    errno = 0;
    r = reallocarray(p, SIZE_MAX / 2, 4);      /* overflows: NULL, ENOMEM, p untouched */
    entry(l, "m", TRACE_EV_REALLOCARRAY, 4, SIZE_MAX / 2, 0, p, r, errno, 0);
    free(p);
    entry(l, "m", TRACE_EV_FREE, 0, 0, 0, NULL, p, 0, 0);
    free(q);
    entry(l, "m", TRACE_EV_FREE, 0, 0, 0, NULL, q, 0, 0);

    p = memalign(128, 300);
    entry(l, "m", TRACE_EV_MEMALIGN, 300, 0, 128, NULL, p, 0, 0);
    q = NULL;
    rc = posix_memalign(&q, 64, 500);
    entry(l, "m", TRACE_EV_POSIX_MEMALIGN, 500, 0, 64, NULL, q, 0, rc);
    void *bad = (void *)1;
    rc = posix_memalign(&bad, 3, 16);          /* EINVAL: not a power of two */
    entry(l, "m", TRACE_EV_POSIX_MEMALIGN, 16, 0, 3, NULL, NULL, EINVAL, rc);
    r = aligned_alloc(32, 96);
    entry(l, "m", TRACE_EV_ALIGNED_ALLOC, 96, 0, 32, NULL, r, 0, 0);
    void *v = valloc(1000);
    entry(l, "m", TRACE_EV_VALLOC, 1000, 0, 0, NULL, v, 0, 0);
    void *pv = pvalloc(5000);
    entry(l, "m", TRACE_EV_PVALLOC, 5000, 0, 0, NULL, pv, 0, 0);
    errno = 0;
    void *huge = malloc(SIZE_MAX - 4096);      /* fails: NULL and ENOMEM */
    entry(l, "m", TRACE_EV_MALLOC, SIZE_MAX - 4096, 0, 0, NULL, huge, errno, 0);
    void *big = malloc(1 << 20);               /* mmapped chunk */
    entry(l, "m", TRACE_EV_MALLOC, 1 << 20, 0, 0, NULL, big, 0, 0);
    rc = mallopt(M_MXFAST, 64);
    entry(l, "m", TRACE_EV_MALLOPT, 0, 0, 0, NULL, NULL, 0, rc);
    free(p);
    entry(l, "m", TRACE_EV_FREE, 0, 0, 0, NULL, p, 0, 0);
    free(q);
    entry(l, "m", TRACE_EV_FREE, 0, 0, 0, NULL, q, 0, 0);
    free(r);
    entry(l, "m", TRACE_EV_FREE, 0, 0, 0, NULL, r, 0, 0);
    free(v);
    entry(l, "m", TRACE_EV_FREE, 0, 0, 0, NULL, v, 0, 0);
    free(pv);
    entry(l, "m", TRACE_EV_FREE, 0, 0, 0, NULL, pv, 0, 0);
    free(big);
    entry(l, "m", TRACE_EV_FREE, 0, 0, 0, NULL, big, 0, 0);
    rc = malloc_trim(0);
    entry(l, "m", TRACE_EV_MALLOC_TRIM, 0, 0, 0, NULL, NULL, 0, rc);

    /* threads that allocate, free and exit */
    pthread_t th[2];
    struct thread_arg args[2] = {{0}, {1}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, worker, &args[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);

    /* fork: the child allocates, then execs this program again */
    p = malloc(64);
    entry(l, "m", TRACE_EV_MALLOC, 64, 0, 0, NULL, p, 0, 0);
    pid_t pid = fork();
    if (pid == 0) {
        void *c = malloc(90);
        entry(&child_log, "c", TRACE_EV_MALLOC, 90, 0, 0, NULL, c, 0, 0);
        free(p);
        entry(&child_log, "c", TRACE_EV_FREE, 0, 0, 0, NULL, p, 0, 0);
        flush_log(&child_log);
        char *args2[] = {argv[0], (char *)"exec", NULL};
        execv(argv[0], args2);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    free(p);
    entry(l, "m", TRACE_EV_FREE, 0, 0, 0, NULL, p, 0, 0);
    /* "f PID" names the fork child for the test */
    const char *f = "f ";
    for (; *f; f++)
        l->buf[l->len++] = *f;
    put_hex(l, (uint64_t)pid);
    l->buf[l->len++] = '\n';
    flush_log(&thread_log[0]);
    flush_log(&thread_log[1]);
    flush_log(l);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}
