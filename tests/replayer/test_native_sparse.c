/* test_native_sparse.c: the native runner's long-sequence mode (NATIVE_F_SPARSE, native_ops.h).
 *
 * Op sequences are written to the runner through a pipe (as `fragscope replay --native` does)
 * and its results read back from a memory file. Checked: only the sampled ops and the last one
 * keep a result, the rest stay zero and their pages are never written (the file's allocated
 * blocks stay far below its size); every op ran (ops_done, and the blocks the ops made are the
 * ones later ops free and write); addresses are raw; mallinfo2 is taken at the last op only;
 * threads work as in the full mode; a bad op in the stream stops the run at that op with a
 * message naming it; a stream shorter than op_count is an error, not a hang.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "native_ops.h"

extern char **environ;

struct run {
    struct native_out_header h;
    int fd;              /* the result file */
    int status;          /* the runner's wait status */
    uint64_t file_size, file_blocks;
};

static struct native_op op(uint8_t kind, uint16_t thread, uint32_t ref, uint64_t a, uint64_t b)
{
    struct native_op o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.thread = thread;
    o.ref = ref;
    o.a = a;
    o.b = b;
    return o;
}

/* Streams `n` ops (of which the header claims `claimed`) to the runner through a pipe. */
static void run_sparse(const struct native_op *ops, uint64_t n, uint64_t claimed,
                       uint64_t thread_ops, struct run *r)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    r->fd = memfd_create("sparse-out", 0);
    assert_true(r->fd >= 0);
    char a1[16], a2[16];
    snprintf(a1, sizeof a1, "%d", p[0]);
    snprintf(a2, sizeof a2, "%d", r->fd);
    char *argv[] = {NATIVE_RUNNER, "--ops-fd", a1, "--out-fd", a2, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, NATIVE_RUNNER, NULL, NULL, argv, environ), 0);
    close(p[0]);
    struct native_ops_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, NATIVE_OPS_MAGIC, 8);
    h.version = NATIVE_VERSION;
    h.op_size = sizeof(struct native_op);
    h.op_count = claimed;
    h.flags = NATIVE_F_SPARSE;
    h.thread_ops = thread_ops;
    signal(SIGPIPE, SIG_IGN);
    /* A runner that stopped early closes the pipe: writes then fail, which is fine here. */
    if (write(p[1], &h, sizeof h) == (ssize_t)sizeof h) {
        const char *b = (const char *)ops;
        size_t left = n * sizeof *ops;
        while (left) {
            ssize_t w = write(p[1], b, left);
            if (w <= 0)
                break;
            b += w;
            left -= (size_t)w;
        }
    }
    close(p[1]);
    assert_int_equal(waitpid(pid, &r->status, 0), pid);
    assert_int_equal(pread(r->fd, &r->h, sizeof r->h, 0), (ssize_t)sizeof r->h);
    struct stat st;
    assert_int_equal(fstat(r->fd, &st), 0);
    r->file_size = (uint64_t)st.st_size;
    r->file_blocks = (uint64_t)st.st_blocks * 512;
}

static struct native_result result(const struct run *r, uint64_t i)
{
    struct native_result res;
    assert_int_equal(pread(r->fd, &res, sizeof res,
                           (off_t)(r->h.result_offset + i * sizeof res)),
                     (ssize_t)sizeof res);
    return res;
}

/* 200,000 ops: mallocs, writes, frees over a window of 100 live blocks; every 1000th sampled. */
static void test_results_only_where_kept(void **state)
{
    (void)state;
    enum { N = 200000, WINDOW = 100 };
    struct native_op *ops = calloc(N, sizeof *ops);
    assert_non_null(ops);
    uint64_t n = 0;
    uint32_t live[WINDOW];
    unsigned nlive = 0, next = 0;
    while (n < N - 3) {
        if (nlive == WINDOW) {
            ops[n++] = op(NATIVE_OP_FREE, 0, live[next], 0, 0);
            live[next] = 0;
            nlive--;
        }
        uint32_t idx = (uint32_t)n;
        uint64_t size = 16 + n % 500;
        ops[n++] = op(NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, size, 0);
        ops[n++] = op(NATIVE_OP_WRITE, 0, idx, 0, NATIVE_WRITE_ALL);
        ops[n - 1].c = 0x5a;
        live[next] = idx;
        next = (next + 1) % WINDOW;
        nlive++;
    }
    /* The last op: how big the block of the last malloc is (it must still be live). */
    uint32_t last_malloc = live[(next + WINDOW - 1) % WINDOW];
    ops[n++] = op(NATIVE_OP_USABLE_SIZE, 0, last_malloc, 0, 0);
    for (uint64_t i = 999; i < n; i += 1000)
        ops[i].flags |= NATIVE_OPF_SAMPLE;
    struct run r;
    run_sparse(ops, n, n, 0, &r);
    assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    assert_int_equal(r.h.status, NATIVE_STATUS_OK);
    assert_int_equal(r.h.ops_done, n);
    assert_true(r.h.flags & NATIVE_F_RAW_ADDRS);
    /* 200 kept results of 144 bytes: a few hundred pages at most, against 28 MB of file. */
    assert_true(r.file_size >= n * sizeof(struct native_result));
    assert_true(r.file_blocks < r.file_size / 16);
    for (uint64_t i = 0; i < n; i++) {
        if (i % 1000 != 999 && i + 1 != n && i % 97 != 0)
            continue;
        struct native_result res = result(&r, i);
        int kept = i % 1000 == 999 || i + 1 == n;
        assert_int_equal(res.done, kept);
        if (!kept) {
            assert_int_equal(res.raw, 0);
            continue;
        }
        if (ops[i].flags & NATIVE_OPF_SAMPLE)
            assert_true(res.heap_rss != NATIVE_NOT_SAMPLED && res.heap_rss > 0);
        assert_int_equal(res.smaps_rss, NATIVE_NOT_SAMPLED);
        if (ops[i].kind == NATIVE_OP_MALLOC) {
            assert_int_equal(res.addr.kind, NATIVE_ADDR_RAW);
            assert_int_equal(res.addr.offset, res.raw);
            assert_int_not_equal(res.raw, 0);
        }
        if (i + 1 == n) {
            /* the usable size of the live block, and mallinfo2 with the window in use */
            assert_true((uint64_t)res.ret >= ops[last_malloc].a);
            assert_true(res.mi.uordblks >= WINDOW * 16);
            assert_true(res.mi.arena > 0);
        } else {
            assert_int_equal(res.mi.arena, 0);
        }
    }
    close(r.fd);
    free(ops);
}

/* Threads: ops handed to a worker, its exit, then the main thread again. */
static void test_threads(void **state)
{
    (void)state;
    struct native_op ops[] = {
        op(NATIVE_OP_THREAD_START, 1, NATIVE_REF_NULL, 0, 0),
        op(NATIVE_OP_MALLOC, 1, NATIVE_REF_NULL, 100, 0),
        op(NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 100, 0),
        op(NATIVE_OP_FREE, 1, 1, 0, 0),
        op(NATIVE_OP_MALLOC, 1, NATIVE_REF_NULL, 100, 0),
        op(NATIVE_OP_THREAD_EXIT, 1, NATIVE_REF_NULL, 0, 0),
        op(NATIVE_OP_FREE, 0, 4, 0, 0),
        op(NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 200, 0),
    };
    uint64_t n = sizeof ops / sizeof ops[0];
    ops[1].flags |= NATIVE_OPF_SAMPLE;
    ops[4].flags |= NATIVE_OPF_SAMPLE;
    struct run r;
    run_sparse(ops, n, n, 2, &r);
    assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    assert_int_equal(r.h.ops_done, n);
    /* The thread's second malloc of 100 reuses the block it freed (its tcache, last in first
     * out), which the main thread's malloc did not take (another arena, another tcache). */
    struct native_result first = result(&r, 1), second = result(&r, 4);
    assert_int_equal(first.done, 1);
    assert_int_equal(second.done, 1);
    assert_int_not_equal(first.raw, 0);
    assert_int_equal(second.raw, first.raw);
    /* The thread's pthread_create and exit made internal calls (the DTV at least). */
    assert_true(r.h.internal_count > 0);
    assert_int_equal(result(&r, n - 1).done, 1);
    assert_int_equal(result(&r, 2).done, 0);
    close(r.fd);
}

/* A bad op stops the run at that op; the ops before it ran. */
static void test_bad_op_stops_there(void **state)
{
    (void)state;
    struct native_op ops[] = {
        op(NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 10, 0),
        op(NATIVE_OP_FREE, 0, 0, 0, 0),
        op(NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 10, 0),
        op(NATIVE_OP_FREE, 0, 0, 0, 0),          /* op 0's block again: already freed */
        op(NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 10, 0),
    };
    struct run r;
    run_sparse(ops, 5, 5, 0, &r);
    assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2);
    assert_int_equal(r.h.status, NATIVE_STATUS_BAD_INPUT);
    assert_int_equal(r.h.ops_done, 3);
    assert_non_null(strstr(r.h.error, "op 3: "));
    assert_non_null(strstr(r.h.error, "freed"));
    close(r.fd);

    struct native_op w[] = {
        op(NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 10, 0),
        op(NATIVE_OP_WRITE, 0, 0, 4, 7),          /* bytes 4..10 of a 10-byte block */
    };
    w[1].c = 1;
    run_sparse(w, 2, 2, 0, &r);
    assert_int_equal(r.h.status, NATIVE_STATUS_BAD_INPUT);
    assert_int_equal(r.h.ops_done, 1);
    assert_non_null(strstr(r.h.error, "op 1: write beyond"));
    close(r.fd);

    struct native_op t[] = {op(NATIVE_OP_MALLOC, 3, NATIVE_REF_NULL, 10, 0)};
    run_sparse(t, 1, 1, 0, &r);
    assert_int_equal(r.h.status, NATIVE_STATUS_BAD_INPUT);
    assert_non_null(strstr(r.h.error, "op 0: op on a thread that is not running"));
    close(r.fd);
}

/* Fewer ops than op_count: the runner says so instead of waiting forever. */
static void test_short_stream(void **state)
{
    (void)state;
    struct native_op ops[] = {
        op(NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 10, 0),
        op(NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 20, 0),
    };
    struct run r;
    run_sparse(ops, 2, 5, 0, &r);
    assert_int_equal(r.h.status, NATIVE_STATUS_BAD_INPUT);
    assert_int_equal(r.h.ops_done, 2);
    assert_non_null(strstr(r.h.error, "op 2: the op stream ended before op_count ops"));
    close(r.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results_only_where_kept),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bad_op_stops_there),
        cmocka_unit_test(test_short_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
