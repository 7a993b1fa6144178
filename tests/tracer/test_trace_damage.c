/* test_trace_damage.c: a trace cut at every byte, or damaged anywhere, reads as exactly the events
 * of its whole good blocks before the damage, then a clean status naming the offset - never a
 * crash (this suite also runs under ASan/UBSan). Blocks whose CRCs are right but whose contents
 * are garbage (the decoder's own defences) are covered too. */
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
#include "tracegen.h"

struct frame {
    uint64_t start, end;        /* [start, end) in the file */
    uint32_t thread;
    uint64_t first_seq, last_seq;
    int is_block;
};

static uint8_t *file;
static size_t file_len, header_len;
static struct frame frames[4096];
static size_t nframes;
static struct gen_stream g;
static const struct trace_event **sorted;
static char path[512], cut_path[512];

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Splits the file into frames by the layout FORMAT.md gives (independently of the reader). */
static void index_frames(void)
{
    header_len = 16 + le32(file + 12) + 4;
    size_t off = header_len;
    nframes = 0;
    while (off < file_len) {
        struct frame *f = &frames[nframes++];
        f->start = off;
        if (!memcmp(file + off, "BLK1", 4) || !memcmp(file + off, "BLK2", 4) ||
            !memcmp(file + off, "BLK3", 4)) {
            f->is_block = 1;
            f->thread = le32(file + off + 12);
            f->first_seq = le64(file + off + 16);
            f->last_seq = le64(file + off + 24);
            off += 40 + le32(file + off + 4);
        } else {
            assert_memory_equal(file + off, "END1", 4);
            off += 28;
        }
        f->end = off;
    }
    assert_int_equal(off, file_len);
    assert_false(frames[nframes - 1].is_block);
}

static size_t *event_frame;      /* sorted[i] lives in frames[event_frame[i]] */

static void index_events(void)
{
    event_frame = malloc(g.events * sizeof *event_frame);
    for (size_t e = 0; e < g.events; e++) {
        event_frame[e] = SIZE_MAX;
        for (size_t i = 0; i < nframes; i++)
            if (frames[i].is_block && frames[i].thread == sorted[e]->thread &&
                sorted[e]->seq >= frames[i].first_seq && sorted[e]->seq <= frames[i].last_seq)
                event_frame[e] = i;
        assert_true(event_frame[e] != SIZE_MAX);
    }
}

/* Is the event in one of the blocks before frame index `upto`? */
static int event_in_good_blocks(size_t e, size_t upto)
{
    return event_frame[e] < upto;
}

static int setup(void **state)
{
    (void)state;
    gen_random_stream(&g, 77, 200, 3);
    gen_tmppath(path, sizeof path, "damage.trace");
    gen_tmppath(cut_path, sizeof cut_path, "cut.trace");
    gen_write(&g, path, 150, 25);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    file_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    file = malloc(file_len);
    if (fread(file, 1, file_len, f) != file_len)
        abort();
    fclose(f);
    index_frames();
    printf("damage tests on a %zu-byte trace of %zu frames\n", file_len, nframes);
    sorted = gen_sorted_events(&g);
    index_events();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(file);
    free(sorted);
    free(event_frame);
    gen_free(&g);
    unlink(path);
    unlink(cut_path);
    rmdir(gen_tmpdir());
    return 0;
}

static void write_file(const uint8_t *bytes, size_t len)
{
    FILE *f = fopen(cut_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
}

/* Reads cut_path and checks it delivers exactly the events of frames [0, good) in seq order.
 * Returns trace_reader_next's final value; *st gets the status. */
static int read_expecting(size_t good, struct trace_reader_status *st)
{
    char err[512];
    struct trace_reader *r = trace_reader_open(cut_path, err, sizeof err);
    assert_non_null(r);
    struct trace_event ev;
    size_t want = 0;
    int rc;
    while ((rc = trace_reader_next(r, &ev)) == 1) {
        while (want < g.events && !event_in_good_blocks(want, good))
            want++;
        assert_true(want < g.events);
        if (!gen_event_equal(sorted[want], &ev)) {
            gen_event_diff(sorted[want], &ev);
            fail();
        }
        want++;
    }
    while (want < g.events && !event_in_good_blocks(want, good))
        want++;
    assert_int_equal(want, g.events);         /* nothing of the good blocks was left out */
    trace_reader_status(r, st);
    trace_reader_close(r);
    return rc;
}

static void every_truncation_point(void **state)
{
    (void)state;
    assert_true(nframes > 10);
    for (size_t cut = 0; cut <= file_len; cut++) {
        write_file(file, cut);
        if (cut < header_len) {
            char err[512];
            struct trace_reader *r = trace_reader_open(cut_path, err, sizeof err);
            assert_null(r);
            assert_non_null(strstr(err, cut_path));
            continue;
        }
        size_t good = 0;
        while (good < nframes && frames[good].end <= cut)
            good++;
        struct trace_reader_status st;
        int rc = read_expecting(good, &st);
        assert_int_equal(rc, 0);              /* cut short is not damage */
        assert_false(st.damaged);
        if (cut == file_len) {
            assert_true(st.clean_end);
            assert_int_equal(st.stop_offset, file_len);
        } else {
            assert_false(st.clean_end);
            size_t stop = good < nframes ? frames[good].start : file_len;
            assert_int_equal(st.stop_offset, stop);
            assert_non_null(strstr(st.reason, "offset"));
        }
    }
}

static void random_byte_corruptions(void **state)
{
    (void)state;
    uint8_t *copy = malloc(file_len);
    uint64_t seed = 12345;
    for (int iter = 0; iter < 600; iter++) {
        memcpy(copy, file, file_len);
        size_t at = (size_t)(gen_rand(&seed) % file_len);
        size_t span = iter % 3 == 0 ? 1 + (size_t)(gen_rand(&seed) % 64) : 1;
        if (at + span > file_len)
            span = file_len - at;
        for (size_t i = 0; i < span; i++)
            copy[at + i] ^= (uint8_t)(1 + gen_rand(&seed) % 255);
        write_file(copy, file_len);
        if (at < header_len) {
            char err[512];
            struct trace_reader *r = trace_reader_open(cut_path, err, sizeof err);
            assert_null(r);
            assert_non_null(strstr(err, cut_path));
            continue;
        }
        size_t bad = 0;
        while (frames[bad].end <= at)
            bad++;
        struct trace_reader_status st;
        int rc = read_expecting(bad, &st);
        assert_int_equal(rc, -1);
        assert_true(st.damaged);
        assert_false(st.clean_end);
        assert_int_equal(st.stop_offset, frames[bad].start);
        char where[64];
        snprintf(where, sizeof where, "offset %llu", (unsigned long long)frames[bad].start);
        assert_non_null(strstr(st.reason, where));
    }
    free(copy);
}

/* ---- Garbage with valid CRCs: the decoder itself must hold ---- */

static void *z_alloc(void *o, unsigned n, unsigned s)
{
    (void)o;
    return calloc(n, s);
}

static void z_free(void *o, void *p)
{
    (void)o;
    free(p);
}

static void garbage_blocks_with_good_crcs(void **state)
{
    (void)state;
    /* Take the raw records of one real block, mutate them, and seal them properly. */
    uint8_t raw[1 << 16], mutated[1 << 16], out[1 << 17];
    struct trace_encode_state st;
    trace_encode_state_reset(&st);
    size_t len = 0;
    uint64_t first = 0, last = 0;
    for (size_t i = 0; i < g.count && len < sizeof raw - 4096; i++) {
        const struct gen_item *it = &g.items[i];
        if (it->thread != 0)
            continue;
        if (it->type == GEN_EVENT) {
            if (!first)
                first = it->ev.seq;
            last = it->ev.seq;
            len += trace_encode_event(raw + len, &it->ev, &st);
        } else if (it->type == GEN_STACK) {
            len += trace_encode_stack(raw + len, sizeof raw - len, it->stack_id, it->frames, it->depth);
        } else {
            len += trace_encode_module(raw + len, sizeof raw - len, it->module);
        }
    }
    struct trace_zalloc za = {z_alloc, z_free, NULL};
    uint64_t seed = 99;
    for (int iter = 0; iter < 500; iter++) {
        size_t n = len;
        memcpy(mutated, raw, len);
        int flips = 1 + (int)(gen_rand(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(gen_rand(&seed) % n);
            switch (gen_rand(&seed) % 4) {
            case 0: mutated[at] = (uint8_t)gen_rand(&seed); break;
            case 1: mutated[at] ^= 0x80; break;
            case 2: n = at + 1; break;                                /* cut a record short */
            default: memset(mutated + at, 0xff, n - at < 12 ? n - at : 12); break;
            }
        }
        if (iter % 50 == 0)                  /* pure noise */
            for (size_t i = 0; i < n; i++)
                mutated[i] = (uint8_t)gen_rand(&seed);
        size_t off = header_len;
        memcpy(out, file, header_len);
        size_t b = trace_block_seal(out + off, sizeof out - off, mutated, n, 0, first, last, &za);
        assert_true(b > 0);
        off += b;
        off += trace_encode_end(out + off, sizeof out - off, 1, 0);
        write_file(out, off);
        char err[512];
        struct trace_reader *r = trace_reader_open(cut_path, err, sizeof err);
        assert_non_null(r);
        struct trace_event ev;
        int rc;
        uint64_t events = 0;
        while ((rc = trace_reader_next(r, &ev)) == 1) {
            const uint64_t *fr;
            trace_reader_stack(r, ev.stack_id, &fr);
            events++;
        }
        struct trace_reader_status rs;
        trace_reader_status(r, &rs);
        /* Either the block decodes (mutations that remain valid records) or it is refused as a
         * whole, with the reason and its offset. */
        if (rc == -1) {
            assert_int_equal(events, 0);
            assert_true(rs.damaged);
            assert_non_null(strstr(rs.reason, "offset"));
        } else {
            assert_int_equal(rc, 0);
        }
        trace_reader_close(r);
    }
}

/* A BLK2 frame around `raw` (a column table and columns, however wrong), with good CRCs. */
static size_t frame_columns(uint8_t *out, const uint8_t *raw, size_t len, uint64_t first, uint64_t last)
{
    uLongf n = compressBound(len) + 64;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)raw;
    zs.avail_in = (uInt)len;
    zs.next_out = out + 40;
    zs.avail_out = (uInt)n;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    n = zs.total_out;
    deflateEnd(&zs);
    uint8_t *h = out;
    memcpy(h, "BLK2", 4);
    for (int i = 0; i < 4; i++) {
        h[4 + i] = (uint8_t)(n >> (8 * i));
        h[8 + i] = (uint8_t)(len >> (8 * i));
        h[12 + i] = 0;
    }
    for (int i = 0; i < 8; i++) {
        h[16 + i] = (uint8_t)(first >> (8 * i));
        h[24 + i] = (uint8_t)(last >> (8 * i));
    }
    uint32_t c = (uint32_t)crc32(0, out + 40, (uInt)n);
    for (int i = 0; i < 4; i++)
        h[32 + i] = (uint8_t)(c >> (8 * i));
    c = (uint32_t)crc32(0, h, 36);
    for (int i = 0; i < 4; i++)
        h[36 + i] = (uint8_t)(c >> (8 * i));
    return 40 + n;
}

static void garbage_column_blocks(void **state)
{
    (void)state;
    /* A real column block's raw bytes, from sealing thread 0's records. */
    static uint8_t raw[1 << 16], cols[1 << 16], mutated[1 << 16], out[1 << 17];
    struct trace_encode_state st;
    trace_encode_state_reset(&st);
    size_t len = 0;
    uint64_t first = 0, last = 0;
    for (size_t i = 0; i < g.count; i++) {
        const struct gen_item *it = &g.items[i];
        if (it->thread != 0 || it->type != GEN_EVENT)
            continue;
        if (!first)
            first = it->ev.seq;
        last = it->ev.seq;
        len += trace_encode_event(raw + len, &it->ev, &st);
    }
    struct trace_zalloc za = {z_alloc, z_free, NULL};
    size_t n = trace_block_seal(out, sizeof out, raw, len, 0, first, last, &za);
    assert_memory_equal(out, "BLK2", 4);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    inflateInit2(&zs, -15);
    zs.next_in = out + 40;
    zs.avail_in = (uInt)(n - 40);
    zs.next_out = cols;
    zs.avail_out = sizeof cols;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t cols_len = zs.total_out;
    inflateEnd(&zs);
    assert_int_equal(cols_len, len + 20);
    uint64_t seed = 4242;
    for (int iter = 0; iter < 500; iter++) {
        size_t m = cols_len;
        memcpy(mutated, cols, m);
        int flips = 1 + (int)(gen_rand(&seed) % 3);
        for (int k = 0; k < flips; k++) {
            size_t at = iter % 5 == 0 ? gen_rand(&seed) % 20 : (size_t)(gen_rand(&seed) % m);
            mutated[at] = (uint8_t)gen_rand(&seed);
        }
        if (iter % 7 == 0)
            m = 20 + (size_t)(gen_rand(&seed) % (m - 20));      /* columns cut short */
        size_t off = header_len;
        memcpy(out, file, header_len);
        off += frame_columns(out + off, mutated, m, first, last);
        off += trace_encode_end(out + off, sizeof out - off, 1, 0);
        write_file(out, off);
        char err[512];
        struct trace_reader *r = trace_reader_open(cut_path, err, sizeof err);
        assert_non_null(r);
        struct trace_event ev;
        int rc;
        uint64_t events = 0;
        while ((rc = trace_reader_next(r, &ev)) == 1)
            events++;
        struct trace_reader_status rs;
        trace_reader_status(r, &rs);
        if (rc == -1) {
            assert_int_equal(events, 0);
            assert_true(rs.damaged);
            assert_non_null(strstr(rs.reason, "offset"));
        } else {
            assert_int_equal(rc, 0);
        }
        trace_reader_close(r);
    }
}

static void not_a_trace(void **state)
{
    (void)state;
    char err[512];
    write_file((const uint8_t *)"", 0);
    assert_null(trace_reader_open(cut_path, err, sizeof err));
    assert_non_null(strstr(err, cut_path));
    write_file((const uint8_t *)"#!/bin/sh\necho hello\n", 21);
    assert_null(trace_reader_open(cut_path, err, sizeof err));
    assert_non_null(strstr(err, "not a fragscope trace"));
    /* A future version is refused by name. */
    uint8_t copy[64];
    memcpy(copy, file, sizeof copy);
    copy[8] = 9;
    write_file(copy, sizeof copy);
    assert_null(trace_reader_open(cut_path, err, sizeof err));
    assert_non_null(strstr(err, "version 9"));
    /* An absurd header length is refused before anything is allocated for it. */
    memcpy(copy, file, sizeof copy);
    copy[15] = 0x7f;
    write_file(copy, sizeof copy);
    assert_null(trace_reader_open(cut_path, err, sizeof err));
    assert_non_null(strstr(err, "offset 12"));
    assert_null(trace_reader_open("/nonexistent/x.trace", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/x.trace"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_truncation_point),
        cmocka_unit_test(random_byte_corruptions),
        cmocka_unit_test(garbage_blocks_with_good_crcs),
        cmocka_unit_test(garbage_column_blocks),
        cmocka_unit_test(not_a_trace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
