/* test_record_methods.c: FRAGSCOPE_COMPRESS chooses how the recorder codes a block's columns
 * (FORMAT.md, "Coded columns"): unset or `zlib`, deflate (format version 3); `rans`, the
 * rANS/Huffman coder; `none`, stored. A real program (method_prog) is recorded each way under
 * the preloaded recorder; each file must read back cleanly with the same events, and hold the
 * columns its method writes; and `fragscope record --compress` sets it. Labelled nosan: it
 * preloads the recorder into a plain program.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>
#include "column_coder.h"
#include "trace_decode.h"
#include "test_support.h"
#include "tracegen.h"

static char dir[200];

/* Records method_prog with FRAGSCOPE_COMPRESS=method (NULL: unset) into path; cli: through
 * `fragscope record --compress method` instead. */
static void record(const char *method, const char *path, int cli)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0 && cli) {
        unsetenv("FRAGSCOPE_COMPRESS");
        setenv("FRAGSCOPE_SAMPLE_MS", "0", 1);
        execl(FRAGSCOPE_BIN, FRAGSCOPE_BIN, "record", "-q", "--compress", method, "-o", path, "--",
              METHOD_PROG, (char *)NULL);
        _exit(127);
    }
    if (pid == 0) {
        setenv("LD_PRELOAD", PRELOAD_LIB, 1);
        setenv("FRAGSCOPE_OUT", path, 1);
        setenv("FRAGSCOPE_QUIET", "1", 1);
        setenv("FRAGSCOPE_SAMPLE_MS", "0", 1);     /* no timed samples: the same events */
        if (method)
            setenv("FRAGSCOPE_COMPRESS", method, 1);
        else
            unsetenv("FRAGSCOPE_COMPRESS");
        execl(METHOD_PROG, METHOD_PROG, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(ts_wait_trace(path));     /* the flusher finishes the file after the program */
}

/* Counts the columns of each method in the file's blocks, and its events (read back). */
static uint64_t inspect(const char *path, unsigned *per_method)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *file = malloc(len);
    assert_non_null(file);
    assert_int_equal(fread(file, 1, len, f), len);
    fclose(f);
    assert_int_equal(wire_get32(file + 8), TRACE_VERSION);
    memset(per_method, 0, 5 * sizeof *per_method);
    size_t at = WIRE_HEADER_FIXED + wire_get32(file + 12) + 4;
    while (at + WIRE_BLOCK_FRAME <= len && !memcmp(file + at, WIRE_V2_BLOCK_TAG, 4)) {
        const uint8_t *p = file + at + WIRE_BLOCK_FRAME, *end = p + wire_get32(file + at + 4);
        assert_true(gen_count_column_methods(&p, end, per_method));
        at = (size_t)(end - file);
    }
    assert_memory_equal(file + at, WIRE_END_TAG, 4);
    free(file);
    char err[512];
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    assert_non_null(r);
    struct trace_event ev;
    uint64_t n = 0;
    int rc;
    while ((rc = trace_reader_next(r, &ev)) == 1)
        n++;
    assert_int_equal(rc, 0);
    struct trace_reader_status st;
    trace_reader_status(r, &st);
    assert_true(st.clean_end);
    trace_reader_close(r);
    return n;
}

static void each_method_as_asked(void **state)
{
    (void)state;
    assert_int_equal(ts_tmpdir(dir, sizeof dir, "methods"), 0);
    static const char *methods[] = {NULL, "zlib", "rans", "none"};
    uint64_t events[4];
    for (int i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s.fstrace", dir, methods[i] ? methods[i] : "default");
        record(methods[i], path, 0);
        unsigned per[5];
        events[i] = inspect(path, per);
        print_message("%-7s %llu events: stored %u, run %u, Huffman %u, rANS %u, deflate %u columns\n",
                      methods[i] ? methods[i] : "default", (unsigned long long)events[i],
                      per[COLCODE_STORED], per[COLCODE_RUN], per[COLCODE_HUFFMAN],
                      per[COLCODE_RANS], per[COLCODE_DEFLATE]);
        assert_true(events[i] > 60000);
        if (i <= 1) {                          /* deflate, and nothing of our own coder */
            assert_true(per[COLCODE_DEFLATE] > 0);
            assert_int_equal(per[COLCODE_RANS] + per[COLCODE_HUFFMAN], 0);
        } else if (i == 2) {
            assert_int_equal(per[COLCODE_DEFLATE], 0);
            assert_true(per[COLCODE_RANS] + per[COLCODE_HUFFMAN] > 0);
        } else {
            assert_int_equal(per[COLCODE_DEFLATE] + per[COLCODE_RANS] + per[COLCODE_HUFFMAN] +
                                 per[COLCODE_RUN], 0);
        }
        unlink(path);
    }
    /* The same program, the same calls (and the recorder's own start-up calls). */
    for (int i = 1; i < 4; i++)
        assert_int_equal(events[i], events[0]);
    /* `fragscope record --compress` says the same. */
    char path[256];
    unsigned per[5];
    snprintf(path, sizeof path, "%s/cli-rans.fstrace", dir);
    record("rans", path, 1);
    assert_int_equal(inspect(path, per), events[0]);
    assert_int_equal(per[COLCODE_DEFLATE], 0);
    assert_true(per[COLCODE_RANS] + per[COLCODE_HUFFMAN] > 0);
    unlink(path);
    snprintf(path, sizeof path, "%s/cli-zlib.fstrace", dir);
    record("zlib", path, 1);
    assert_int_equal(inspect(path, per), events[0]);
    assert_true(per[COLCODE_DEFLATE] > 0);
    unlink(path);
    assert_int_equal(ts_rmtree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_method_as_asked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
