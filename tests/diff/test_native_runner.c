/* test_native_runner.c: the real-libc runner on its own (no model involved).
 *
 * Expected values come from glibc 2.36's specification (the tcache chunk of 0x290 first, the
 * first sbrk of 135168 bytes, a new arena's first user chunk at heap + 0xb70, the DTV calloc of
 * pthread_create) and from the runner's own contract (native_ops.h): bad input is refused with
 * the op named, internal calls are logged, mallinfo2 does not allocate, RSS by mincore matches
 * the kernel's smaps accounting, and every generated sequence runs to the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "native_child.h"
#include "seq.h"
#include "seqgen.h"

static void run_ok(const struct seq *s, struct native_run *nr)
{
    char err[512];
    int rc = native_run_seq(s, nr, err, sizeof err);
    if (rc != 0)
        print_message("runner: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(nr->hdr->ops_done, s->n);
}

static void test_first_malloc(void **state)
{
    (void)state;
    struct seq s;
    seq_init(&s);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 1, 0, 0);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 24, 0, 0);
    seq_add(&s, NATIVE_OP_FREE, 0, 0, 0, 0, 0);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 1, 0, 0);
    struct native_run nr;
    run_ok(&s, &nr);
    /* tcache struct (0x290) at offset 0, then the 0x20 chunk of malloc(1). */
    assert_int_equal(nr.res[0].addr.kind, NATIVE_ADDR_MAIN);
    assert_int_equal(nr.res[0].addr.offset, 0x2a0);
    assert_int_equal(nr.res[0].brk_offset, 135168);
    assert_int_equal(nr.res[0].mi.arena, 135168);
    assert_int_equal(nr.res[0].mi.uordblks, 0x290 + 0x20);
    assert_int_equal(nr.res[0].mi.fordblks, 135168 - 0x290 - 0x20);
    assert_int_equal(nr.res[0].mi.keepcost, 135168 - 0x290 - 0x20);
    assert_int_equal(nr.res[1].addr.offset, 0x2c0);
    /* the freed 0x20 chunk sits in the tcache and comes back. */
    assert_int_equal(nr.res[3].addr.offset, 0x2a0);
    assert_int_equal(nr.res[3].raw, nr.res[0].raw);
    assert_int_equal(nr.hdr->internal_count, 0);
    assert_int_equal(nr.hdr->heap_start % 4096, 0);
    native_run_release(&nr);
    seq_free(&s);
}

/* NATIVE_F_NO_MALLINFO: no mallinfo2, everything else as usual. */
static void test_no_mallinfo(void **state)
{
    (void)state;
    struct seq s;
    seq_init(&s);
    s.set.flags = NATIVE_F_NO_MALLINFO;
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 1, 0, 0);
    struct native_run nr;
    run_ok(&s, &nr);
    assert_int_equal(nr.res[0].addr.offset, 0x2a0);
    assert_int_equal(nr.res[0].brk_offset, 135168);
    assert_int_equal(nr.res[0].mi.arena, 0);
    assert_int_equal(nr.res[0].mi.uordblks, 0);
    native_run_release(&nr);
    seq_free(&s);
}

/* mallinfo2 (taken after every op) must not allocate: samples before the first malloc leave
 * the break where it was and the heap empty, and the first malloc still lands at 0x2a0. */
static void test_mallinfo2_does_not_allocate(void **state)
{
    (void)state;
    struct seq s;
    seq_init(&s);
    for (int i = 0; i < 3; i++)
        seq_add(&s, NATIVE_OP_SAMPLE, 0, NATIVE_REF_NULL, 0, 0, 0);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 1, 0, 0);
    struct native_run nr;
    run_ok(&s, &nr);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nr.res[i].brk_offset, 0);
        assert_int_equal(nr.res[i].mi.arena, 0);
        assert_int_equal(nr.res[i].mi.uordblks, 0);
        assert_int_equal(nr.res[i].heap_rss, 0);
    }
    assert_int_equal(nr.res[3].addr.offset, 0x2a0);
    assert_int_equal(nr.hdr->internal_count, 0);
    native_run_release(&nr);
    seq_free(&s);
}

static void test_mmapped_chunks(void **state)
{
    (void)state;
    struct seq s;
    seq_init(&s);
    uint32_t a = seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 200000, 0, 0);
    uint32_t b = seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 300000, 0, 0);
    uint32_t c = seq_add(&s, NATIVE_OP_REALLOC, 0, b, 300100, 0, 0);   /* same pages: mremap */
    seq_add(&s, NATIVE_OP_FREE, 0, a, 0, 0, 0);
    seq_add(&s, NATIVE_OP_MEMALIGN, 0, NATIVE_REF_NULL, 65536, 500000, 0);
    seq_add(&s, NATIVE_OP_USABLE_SIZE, 0, c, 0, 0, 0);
    struct native_run nr;
    run_ok(&s, &nr);
    assert_int_equal(nr.res[a].addr.kind, NATIVE_ADDR_MMAP);
    assert_int_equal(nr.res[a].addr.region, 0);
    assert_int_equal(nr.res[a].addr.offset, 0x10);
    /* mapping: ALIGN_UP(request2size(200000) + 8, 4096) */
    assert_int_equal(nr.res[a].mi.hblks, 1);
    assert_int_equal(nr.res[a].mi.hblkhd, 200704);
    assert_int_equal(nr.res[b].addr.region, 1);
    assert_int_equal(nr.res[c].addr.kind, NATIVE_ADDR_MMAP);
    assert_int_equal(nr.res[c].addr.region, 1);         /* stayed in its mapping */
    assert_int_equal(nr.res[c].addr.offset, 0x10);
    assert_int_equal(nr.res[4].addr.kind, NATIVE_ADDR_MMAP);
    assert_int_equal(nr.res[4].addr.region, 2);
    assert_int_equal(nr.res[4].raw % 65536, 0);
    /* the aligned chunk sits inside its mapping, which starts on a page */
    assert_true(nr.res[4].addr.offset > 0x10 && nr.res[4].addr.offset <= 65536 + 16);
    assert_int_equal((nr.res[4].raw - nr.res[4].addr.offset) % 4096, 0);
    /* usable size of an mmapped chunk: chunk size - 16 */
    assert_int_equal(nr.res[5].ret, 303104 - 16);
    /* the tcache struct came from the heap on the first malloc, even though it was mmapped */
    assert_int_equal(nr.res[0].brk_offset, 135168);
    assert_int_equal(nr.res[0].mi.uordblks, 0x290);
    native_run_release(&nr);
    seq_free(&s);
}

static void test_threads(void **state)
{
    (void)state;
    struct seq s;
    seq_init(&s);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 1, 0, 0);           /* 0 */
    seq_add(&s, NATIVE_OP_THREAD_START, 1, NATIVE_REF_NULL, 0, 0, 0);     /* 1 */
    seq_add(&s, NATIVE_OP_MALLOC, 1, NATIVE_REF_NULL, 100, 0, 0);         /* 2 */
    seq_add(&s, NATIVE_OP_FREE, 1, 0, 0, 0, 0);                           /* 3: cross-thread */
    seq_add(&s, NATIVE_OP_FREE, 0, 2, 0, 0, 0);                           /* 4: cross-thread */
    seq_add(&s, NATIVE_OP_THREAD_EXIT, 1, NATIVE_REF_NULL, 0, 0, 0);      /* 5 */
    seq_add(&s, NATIVE_OP_THREAD_START, 2, NATIVE_REF_NULL, 0, 0, 0);     /* 6 */
    seq_add(&s, NATIVE_OP_MALLOC, 2, NATIVE_REF_NULL, 100, 0, 0);         /* 7 */
    seq_add(&s, NATIVE_OP_THREAD_EXIT, 2, NATIVE_REF_NULL, 0, 0, 0);      /* 8 */
    struct native_run nr;
    run_ok(&s, &nr);
    /* pthread_create's DTV: one calloc by the main thread during op 1. */
    assert_true(nr.hdr->internal_count >= 1);
    assert_int_equal(nr.internal[0].at_op, 1);
    assert_int_equal(nr.internal[0].thread, 0);
    assert_int_equal(nr.internal[0].kind, NATIVE_OP_CALLOC);
    assert_int_equal(nr.internal[0].addr.kind, NATIVE_ADDR_MAIN);
    /* the new thread's arena: tcache chunk at heap + 0x8d0, first user chunk at + 0xb70 */
    assert_int_equal(nr.res[2].addr.kind, NATIVE_ADDR_HEAP);
    assert_int_equal(nr.res[2].addr.region, 1);
    assert_int_equal(nr.res[2].addr.heap, 0);
    assert_int_equal(nr.res[2].addr.offset, 0xb70);
    /* the tcache flush at thread exit is not visible through the interposed free */
    for (uint64_t k = 0; k < nr.hdr->internal_count; k++) {
        if (nr.internal[k].kind == NATIVE_OP_FREE)
            assert_int_equal(nr.internal[k].thread, 0);
        assert_int_not_equal(nr.internal[k].ref, NATIVE_REF_UNKNOWN);
    }
    /* thread 2 reuses thread 1's arena from the free list */
    assert_int_equal(nr.res[7].addr.kind, NATIVE_ADDR_HEAP);
    assert_int_equal(nr.res[7].addr.region, 1);
    assert_int_equal(nr.res[8].mi.arena, nr.res[7].mi.arena);
    native_run_release(&nr);
    seq_free(&s);
}

static void expect_bad_input(struct seq *s, const char *needle)
{
    struct native_run nr;
    char err[512];
    assert_int_equal(native_run_seq(s, &nr, err, sizeof err), -1);
    if (!strstr(err, needle))
        print_message("message: %s\n", err);
    assert_non_null(strstr(err, needle));
    assert_non_null(nr.hdr);
    assert_int_equal(nr.hdr->status, NATIVE_STATUS_BAD_INPUT);
    assert_int_equal(nr.exit_code, 2);
    assert_int_equal(nr.hdr->ops_done, 0);      /* refused before running anything */
    native_run_release(&nr);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct seq s;
    seq_init(&s);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 10, 0, 0);
    seq_add(&s, NATIVE_OP_FREE, 0, 0, 0, 0, 0);
    seq_add(&s, NATIVE_OP_FREE, 0, 0, 0, 0, 0);
    expect_bad_input(&s, "op 2: ref names a block already freed");
    seq_clear(&s);
    seq_add(&s, NATIVE_OP_MALLOC, 3, NATIVE_REF_NULL, 10, 0, 0);
    expect_bad_input(&s, "op 0: op on a thread that is not running");
    seq_clear(&s);
    seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 10, 0, 0);
    seq_add(&s, NATIVE_OP_WRITE, 0, 0, 5, 6, 0);
    expect_bad_input(&s, "op 1: write beyond");
    seq_clear(&s);
    seq_add(&s, 99, 0, NATIVE_REF_NULL, 10, 0, 0);
    expect_bad_input(&s, "op 0: unknown op kind");
    seq_clear(&s);
    seq_add(&s, NATIVE_OP_FREE, 0, 5, 0, 0, 0);
    expect_bad_input(&s, "op 0: ref is not an earlier op");
    seq_free(&s);
}

static const char *runner_path(void)
{
    return native_runner_path();
}

static int run_runner(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        dup2(null, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* File paths: a truncated ops file is refused; an existing output file is never overwritten. */
static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/fs-native-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ops[128], out[128];
    snprintf(ops, sizeof ops, "%s/ops", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    int fd = open(ops, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    struct native_ops_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, NATIVE_OPS_MAGIC, 8);
    h.version = NATIVE_VERSION;
    h.op_size = sizeof(struct native_op);
    h.op_count = 5;                     /* but no ops follow */
    assert_int_equal(write(fd, &h, sizeof h), sizeof h);
    close(fd);
    char *argv[] = {(char *)runner_path(), ops, out, NULL};
    assert_int_equal(run_runner(argv), 2);
    /* a correct file, run once: ok; again: the output exists, refused */
    unlink(ops);
    fd = open(ops, O_WRONLY | O_CREAT | O_EXCL, 0600);
    h.op_count = 1;
    struct native_op op = {NATIVE_OP_MALLOC, 0, 0, NATIVE_REF_NULL, 1, 0, 0};
    assert_int_equal(write(fd, &h, sizeof h), sizeof h);
    assert_int_equal(write(fd, &op, sizeof op), sizeof op);
    close(fd);
    assert_int_equal(run_runner(argv), 0);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(run_runner(argv), 2);
    char *help[] = {(char *)runner_path(), "--help", NULL};
    assert_int_equal(run_runner(help), 0);
    unlink(ops);
    unlink(out);
    rmdir(dir);
}

/* Heap RSS: mincore over [heap start, break) agrees with the kernel's [heap] Rss. */
static void test_rss(void **state)
{
    (void)state;
    struct seq s;
    seq_init(&s);
    seq_add(&s, NATIVE_OP_MALLOPT, 0, NATIVE_REF_NULL, (uint64_t)-3, 4 << 20, 0);
    uint32_t b = seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 1 << 20, 0, 0);
    seq_add(&s, NATIVE_OP_SAMPLE, 0, NATIVE_REF_NULL, 0, 0, 0);
    seq_add(&s, NATIVE_OP_WRITE, 0, b, 0, NATIVE_WRITE_ALL, 0x77);
    seq_add(&s, NATIVE_OP_SAMPLE, 0, NATIVE_REF_NULL, 0, 0, 0);
    seq_add(&s, NATIVE_OP_FREE, 0, b, 0, 0, 0);      /* into top, then trimmed */
    seq_add(&s, NATIVE_OP_SAMPLE, 0, NATIVE_REF_NULL, 0, 0, 0);
    struct native_run nr;
    run_ok(&s, &nr);
    assert_int_equal(nr.res[1].addr.kind, NATIVE_ADDR_MAIN);
    assert_true(nr.res[2].heap_rss < (64u << 10));   /* only headers written */
    assert_int_equal(nr.res[2].heap_rss, nr.res[2].smaps_rss);
    assert_true(nr.res[4].heap_rss >= (1u << 20));
    assert_int_equal(nr.res[4].heap_rss, nr.res[4].smaps_rss);
    assert_true(nr.res[6].brk_offset < nr.res[4].brk_offset);
    assert_int_equal(nr.res[6].heap_rss, nr.res[6].smaps_rss);
    assert_int_equal(nr.res[3].ret, 1 << 20);
    native_run_release(&nr);
    seq_free(&s);
}

/* Every generated sequence (all settings variants, threaded or not) is accepted and runs to
 * the end; internal calls always name a block the runner returned. */
static void test_generated_sequences_run(void **state)
{
    (void)state;
    struct seq s;
    seq_init(&s);
    for (uint64_t seed = 1; seed <= 120; seed++) {
        seqgen_variant(seqgen_variant_of_seed(seed), &s.set);
        struct seqgen_opts o = {seed, 150, seed % 3 == 0 ? 6 : 0, seed % 5 == 0};
        seqgen_random(&s, &o);
        struct native_run nr;
        char err[512];
        int rc = native_run_seq(&s, &nr, err, sizeof err);
        if (rc != 0)
            print_message("seed %llu: %s\n", (unsigned long long)seed, err);
        assert_int_equal(rc, 0);
        for (uint64_t k = 0; k < nr.hdr->internal_count; k++)
            assert_int_not_equal(nr.internal[k].ref, NATIVE_REF_UNKNOWN);
        native_run_release(&nr);
    }
    seqgen_alternating(&s, 4000, 1, 0, 1000);
    memset(&s.set, 0, sizeof s.set);
    struct native_run nr;
    run_ok(&s, &nr);
    for (uint64_t i = 0; i < s.n; i++)
        if (nr.res[i].heap_rss != NATIVE_NOT_SAMPLED)
            assert_int_equal(nr.res[i].heap_rss, nr.res[i].smaps_rss);
    native_run_release(&nr);
    seq_free(&s);
}

/* With another allocator preloaded the ops run on it: raw addresses, glibc's heap untouched. */
static void test_preload(void **state)
{
    (void)state;
    const char *lib = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    if (access(lib, R_OK) != 0) {
        print_message("skipped: %s not installed (scripts/install-deps.sh installs it)\n", lib);
        skip();
    }
    struct seq s;
    seq_init(&s);
    char env[128];
    snprintf(env, sizeof env, "LD_PRELOAD=%s", lib);
    assert_int_equal(seq_setenv(&s.set, env), 0);
    uint32_t a = seq_add(&s, NATIVE_OP_MALLOC, 0, NATIVE_REF_NULL, 100, 0, 0);
    seq_add(&s, NATIVE_OP_THREAD_START, 1, NATIVE_REF_NULL, 0, 0, 0);
    uint32_t b = seq_add(&s, NATIVE_OP_REALLOC, 1, a, 5000, 0, 0);
    seq_add(&s, NATIVE_OP_USABLE_SIZE, 1, b, 0, 0, 0);
    seq_add(&s, NATIVE_OP_FREE, 1, b, 0, 0, 0);
    seq_add(&s, NATIVE_OP_THREAD_EXIT, 1, NATIVE_REF_NULL, 0, 0, 0);
    struct native_run nr;
    run_ok(&s, &nr);
    assert_true(nr.hdr->flags & NATIVE_F_RAW_ADDRS);
    assert_int_equal(nr.res[a].addr.kind, NATIVE_ADDR_RAW);
    assert_int_equal(nr.res[a].addr.offset, nr.res[a].raw);
    assert_int_equal(nr.res[b].addr.kind, NATIVE_ADDR_RAW);
    assert_true(nr.res[3].ret >= 5000);
    for (uint64_t i = 0; i < s.n; i++) {
        assert_int_equal(nr.res[i].brk_offset, 0);          /* glibc's heap never used */
        assert_int_equal(nr.res[i].mi.arena, 0);
    }
    for (uint64_t k = 0; k < nr.hdr->internal_count; k++)
        assert_true(nr.internal[k].addr.kind == NATIVE_ADDR_RAW ||
                    nr.internal[k].kind == NATIVE_OP_FREE);
    native_run_release(&nr);
    seq_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_malloc),
        cmocka_unit_test(test_mallinfo2_does_not_allocate),
        cmocka_unit_test(test_no_mallinfo),
        cmocka_unit_test(test_mmapped_chunks),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_rss),
        cmocka_unit_test(test_generated_sequences_run),
        cmocka_unit_test(test_preload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
