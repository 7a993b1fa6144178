/* test_trace_methods.c: the ways a version-2 block's columns are coded (FORMAT.md, "Coded
 * columns"), end to end: zlib's deflate (the default, format version 3), our rANS/Huffman coder
 * and stored columns must each give back every event of a realistic multi-threaded stream; a
 * deflate file must really hold deflate columns (and a rANS one none); and damage inside deflate
 * columns - a cut anywhere, bit flips behind valid CRCs - must stop the reader at the damaged
 * block's offset with a reason, after every event of the blocks before it (the suite also runs
 * under ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "column_coder.h"
#include "trace_decode.h"
#include "tracegen.h"

static struct gen_stream g;
static const struct trace_event **sorted;
static char path[512];

static int setup(void **state)
{
    (void)state;
    gen_realistic_stream(&g, 4242, 6000, 3);
    sorted = gen_sorted_events(&g);
    gen_tmppath(path, sizeof path, "methods.trace");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(sorted);
    gen_free(&g);
    unlink(path);
    rmdir(gen_tmpdir());
    return 0;
}

/* Writes the stream with blocks of block_size raw bytes, columns coded with `method`; returns
 * the file's bytes (malloc'd) and length. */
static uint8_t *write_with(int method, size_t block_size, size_t *len)
{
    struct trace_header h;
    char err[512];
    memset(&h, 0, sizeof h);
    h.pid = 77;
    h.page_size = 4096;
    h.cpu_count = 2;
    h.stacks = 1;
    h.stack_depth = 32;
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    snprintf(h.exe, sizeof h.exe, "methods");
    h.argv = (char *)"methods";
    h.malloc_env = (char *)"";
    h.first_seq = sorted[0]->seq;
    unlink(path);
    struct trace_file_writer *w = trace_file_writer_open(path, 0, &h, err, sizeof err);
    assert_non_null(w);
    trace_file_writer_set_method(w, method);
    trace_file_writer_set_block_size(w, block_size, 500);
    for (size_t i = 0; i < g.count; i++) {
        const struct gen_item *it = &g.items[i];
        int rc = it->type == GEN_EVENT ? trace_file_writer_event(w, &it->ev)
               : it->type == GEN_STACK
                   ? trace_file_writer_stack(w, it->thread, it->stack_id, it->frames, it->depth)
                   : trace_file_writer_module(w, it->thread, it->module);
        assert_int_equal(rc, 0);
    }
    assert_int_equal(trace_file_writer_close(w, err, sizeof err), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *bytes = malloc(*len);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, *len, f), *len);
    fclose(f);
    return bytes;
}

static void put_file(const uint8_t *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
}

/* The frames of a file: where each block starts and ends. */
struct frame {
    size_t start, end;
};

static size_t frames_of(const uint8_t *file, size_t len, struct frame *fr, size_t max)
{
    size_t at = WIRE_HEADER_FIXED + wire_get32(file + 12) + 4, n = 0;
    while (at + WIRE_BLOCK_FRAME <= len && !memcmp(file + at, WIRE_V2_BLOCK_TAG, 4) && n < max) {
        fr[n].start = at;
        at += WIRE_BLOCK_FRAME + wire_get32(file + at + 4);
        fr[n++].end = at;
    }
    return n;
}

/* How many columns of each method the file's blocks hold. */
static void count_methods(const uint8_t *file, size_t len, unsigned *per_method)
{
    struct frame fr[4096];
    size_t n = frames_of(file, len, fr, 4096);
    assert_true(n > 0);
    memset(per_method, 0, 5 * sizeof *per_method);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = file + fr[i].start + WIRE_BLOCK_FRAME, *end = file + fr[i].end;
        assert_true(gen_count_column_methods(&p, end, per_method));
        assert_ptr_equal(p, end);
    }
}

/* Reads `path`: every event delivered must be the generated one with its seq, in increasing
 * order; returns how many, with the reader's final value and status. */
static size_t read_back(int *rc, struct trace_reader_status *st)
{
    char err[512];
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    assert_non_null(r);
    struct trace_event ev;
    size_t n = 0, at = 0;
    while ((*rc = trace_reader_next(r, &ev)) == 1) {
        while (at < g.events && sorted[at]->seq < ev.seq)
            at++;
        assert_true(at < g.events);
        if (!gen_event_equal(sorted[at], &ev)) {
            gen_event_diff(sorted[at], &ev);
            fail();
        }
        at++;
        n++;
    }
    trace_reader_status(r, st);
    trace_reader_close(r);
    return n;
}

static void every_method_round_trips(void **state)
{
    (void)state;
    static const struct {
        int method;
        const char *name;
    } m[] = {{TRACE_BLOCK_ZLIB, "zlib"}, {TRACE_BLOCK_RANS, "rans"}, {TRACE_BLOCK_STORED, "stored"}};
    size_t sizes[3];
    for (int i = 0; i < 3; i++) {
        size_t len;
        uint8_t *file = write_with(m[i].method, 64 << 10, &len);
        assert_int_equal(wire_get32(file + 8), TRACE_VERSION);
        unsigned per[5];
        count_methods(file, len, per);
        if (m[i].method == TRACE_BLOCK_ZLIB)
            assert_true(per[COLCODE_DEFLATE] > 0);
        else
            assert_int_equal(per[COLCODE_DEFLATE], 0);
        if (m[i].method == TRACE_BLOCK_STORED)
            assert_int_equal(per[COLCODE_RANS] + per[COLCODE_HUFFMAN] + per[COLCODE_RUN], 0);
        int rc;
        struct trace_reader_status st;
        assert_int_equal(read_back(&rc, &st), g.events);
        assert_int_equal(rc, 0);
        assert_true(st.clean_end);
        sizes[i] = len;
        print_message("%s: %zu bytes, %.3f bytes/event (deflate columns %u, rANS %u, Huffman %u)\n",
                      m[i].name, len, (double)len / (double)g.events, per[COLCODE_DEFLATE],
                      per[COLCODE_RANS], per[COLCODE_HUFFMAN]);
        free(file);
    }
    assert_true(sizes[0] * 10 < sizes[2] * 9);      /* deflate does compress (stack definitions,
                                                       most of this short stream, hardly) */
}

/* A cut anywhere: every event of the blocks wholly before the cut, then a stop there, not
 * damage. */
static void deflate_cuts(void **state)
{
    (void)state;
    size_t len;
    uint8_t *file = write_with(TRACE_BLOCK_ZLIB, 4096, &len);
    struct frame fr[4096];
    size_t nfr = frames_of(file, len, fr, 4096);
    assert_true(nfr > 10);
    size_t head = fr[0].start;
    for (size_t cut = head; cut < len; cut += cut < fr[3].end ? 1 : 97) {
        put_file(file, cut);
        size_t good = 0;
        while (good < nfr && fr[good].end <= cut)
            good++;
        int rc;
        struct trace_reader_status st;
        read_back(&rc, &st);
        assert_int_equal(rc, 0);
        assert_false(st.damaged);
        assert_false(st.clean_end);
        assert_int_equal(st.blocks, good);
        assert_int_equal(st.stop_offset, good < nfr ? fr[good].start : len - TRACE_END_BYTES);
    }
    free(file);
}

/* Bit flips inside a block's deflate columns, its CRCs made valid again: the reader must stop
 * at that block, damaged, with a reason naming its offset - or, when the flip still inflates
 * to records that decode, go on with those records. Never a crash or a read out of bounds. */
static void deflate_damage_behind_good_crcs(void **state)
{
    (void)state;
    size_t len;
    uint8_t *file = write_with(TRACE_BLOCK_ZLIB, 8192, &len);
    struct frame fr[4096];
    size_t nfr = frames_of(file, len, fr, 4096);
    assert_true(nfr > 4);
    uint8_t *copy = malloc(len);
    uint64_t seed = 99;
    unsigned refused = 0, tries = 0;
    for (size_t b = 1; b < nfr && tries < 400; b += 1 + nfr / 40) {
        for (int k = 0; k < 10; k++, tries++) {
            memcpy(copy, file, len);
            uint8_t *payload = copy + fr[b].start + WIRE_BLOCK_FRAME;
            size_t plen = fr[b].end - fr[b].start - WIRE_BLOCK_FRAME;
            size_t at = (size_t)(gen_rand(&seed) % plen);
            payload[at] ^= (uint8_t)(1u << (gen_rand(&seed) % 8));
            wire_put32(copy + fr[b].start + 32, (uint32_t)crc32(0, payload, (uInt)plen));
            wire_put32(copy + fr[b].start + 36, (uint32_t)crc32(0, copy + fr[b].start, 36));
            put_file(copy, len);
            int rc;
            struct trace_reader_status st;
            char err[512];
            struct trace_reader *r = trace_reader_open(path, err, sizeof err);
            assert_non_null(r);
            struct trace_event ev;
            while ((rc = trace_reader_next(r, &ev)) == 1)
                ;
            trace_reader_status(r, &st);
            trace_reader_close(r);
            if (rc < 0) {
                /* A flip that still decodes may show only later (a stack defined again with
                 * other frames): the stop is then at that later block. */
                assert_true(st.damaged);
                assert_true(st.blocks < nfr);
                char want[64];
                snprintf(want, sizeof want, "offset %zu", fr[st.blocks].start);
                assert_non_null(strstr(st.reason, want));
                refused++;
            }
        }
    }
    print_message("%u of %u flips refused\n", refused, tries);
    assert_true(refused > tries / 2);
    free(copy);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_method_round_trips),
        cmocka_unit_test(deflate_cuts),
        cmocka_unit_test(deflate_damage_behind_good_crcs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
