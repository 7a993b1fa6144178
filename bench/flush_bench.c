/* flush_bench.c: what the recorder's flusher costs per event, alone, on malloc_bench's stream.
 *
 *   flush_bench [EVENTS [THREADS [METHODS]]]
 *
 * METHODS: a comma-separated list of zlib, rans, stored (version-2 blocks, sealed with that
 * entropy stage) and v1 (the version-1 encoder with deflate, three ways); default zlib,rans,v1.
 * Runs malloc_bench's loop (1024 slots, xorshift, malloc 16..4096 or free) against the real
 * glibc heap, writing each call as the recorder's raw record (the long REC_HDR layout: header,
 * seq, time from the coarse clock, arguments) into memory, THREADS interleaved streams as a
 * multi-threaded program makes them. Then it times, single-threaded, turning those records into
 * sealed blocks of ~1 MiB the way the flusher does (version-2 blocks), with each entropy stage
 * asked for, and prints CPU ns/event, instructions/event (when perf events are allowed) and
 * bytes/event, for encoding and for sealing apart, and a 64-bit FNV-1a checksum of all the sealed
 * blocks' bytes per method. No recorder is loaded; nothing is written to disk.
 *
 * FLUSH_BENCH_FIXED=1 makes the stream the same in every run (so that the checksums tell whether
 * an encoder change altered a byte): times from a made-up coarse clock (a 4 ms tick every 80000
 * events, about the real loop's rate) and every pointer moved by the same amount, so that the
 * first one is 0x555555560010 whatever the heap's base. The encoding and sealing run in
 * encode_piece and seal_piece, for valgrind --tool=callgrind's inclusive counts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <zlib.h>
#include "column_coder.h"
#include "recorder.h"
#include "trace_format.h"
#include "trace_decode.h"

#define SLOTS 1024

static uint64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Instructions retired by this thread (0 when perf events are not allowed). */
static int insn_fd = -2;
static uint64_t insns(void)
{
    if (insn_fd == -2) {
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.type = PERF_TYPE_HARDWARE;
        a.config = PERF_COUNT_HW_INSTRUCTIONS;
        a.exclude_kernel = 1;
        a.exclude_hv = 1;
        insn_fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    }
    uint64_t v = 0;
    if (insn_fd < 0 || read(insn_fd, &v, sizeof v) != sizeof v)
        return 0;
    return v;
}

static int wants(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

struct stream {
    uint64_t *w;
    size_t n, cap;      /* words */
};

static void put(struct stream *s, uint64_t h, uint64_t seq, uint64_t t, uint64_t a0, uint64_t a1,
                unsigned na)
{
    if (s->n + 8 > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1 << 20;
        s->w = realloc(s->w, s->cap * 8);
    }
    uint64_t *w = s->w + s->n;
    w[0] = h;
    w[1] = seq;
    w[2] = t;
    w[3] = a0;
    w[4] = a1;
    s->n += 3 + na;
}

/* zlib's memory and the column scratch: one arena reused for every block, as the flusher's. */
static char *zarena;
static size_t zused;
#define ZARENA_BYTES (8u << 20)
static void *z_alloc(void *o, unsigned items, unsigned size)
{
    (void)o;
    size_t n = ((size_t)items * size + 15) & ~(size_t)15;
    if (zused + n > ZARENA_BYTES)
        return NULL;
    void *p = zarena + zused;
    zused += n;
    return p;
}
static void z_free(void *o, void *p)
{
    (void)o;
    (void)p;
}
static void z_reset(void)
{
    zused = 0;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
#define FNV_START 0xcbf29ce484222325ull

/* One block's records, from pos while the block is under ~1 MiB, the size looked at every 32
 * records as the flusher's drain does; returns the position after them. */
static __attribute__((noinline)) size_t encode_piece(struct trace_block_encoder *e,
                                                     const struct stream *s, size_t pos)
{
    unsigned till_check = 0;
    while (pos < s->n && (till_check-- || (till_check = 31, trace_block_encoder_raw(e) < (1u << 20)))) {
        const uint64_t *w = s->w + pos;
        unsigned kind = REC_KIND(w[0]);
        if (kind == TRACE_EV_MALLOC)
            trace_block_encoder_malloc(e, REC_FLAGS(w[0]), REC_STACK(w[0]), w[1], w[2], w[3], w[4]);
        else
            trace_block_encoder_free(e, 0, 0, w[1], w[2], w[3]);
        pos += REC_NWORDS(w[0]);
    }
    return pos;
}

static __attribute__((noinline)) size_t seal_piece(struct trace_block_encoder *e, uint8_t *out,
                                                   size_t cap)
{
    return trace_block_encoder_seal(e, out, cap);
}

static void record_to_event(const uint64_t *w, uint32_t thread, struct trace_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = (uint8_t)REC_KIND(w[0]);
    ev->chunk_flags = (uint8_t)REC_FLAGS(w[0]);
    ev->stack_id = REC_STACK(w[0]);
    ev->seq = w[1];
    ev->time_ns = w[2];
    ev->thread = thread;
    if (ev->kind == TRACE_EV_MALLOC) {
        ev->size = w[3];
        ev->ptr = w[4];
    } else {
        ev->ptr = w[3];
    }
}

int main(int argc, char **argv)
{
    long events = argc > 1 ? atol(argv[1]) : 4000000;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    if (threads < 1 || threads > 16)
        threads = 1;
    struct stream st[16] = {{0}};
    void **slot[16];
    uint64_t x[16];
    for (int t = 0; t < threads; t++) {
        slot[t] = calloc(SLOTS, sizeof(void *));
        x[t] = 0x9E3779B97F4A7C15ull ^ (uint64_t)(t + 1);
    }
    uint64_t base = now_ns(CLOCK_MONOTONIC_COARSE);
    int fixed = getenv("FLUSH_BENCH_FIXED") && atoi(getenv("FLUSH_BENCH_FIXED"));
    uint64_t ptr_shift = 0;                 /* added to every pointer (fixed streams) */
    if (fixed) {
        void *first = malloc(16);           /* where the heap's allocations start */
        ptr_shift = 0x555555560010ull - (uint64_t)(uintptr_t)first;
        free(first);
    }
    for (long i = 0; i < events; i++) {
        int t = (int)(i % threads);
        x[t] ^= x[t] << 13;
        x[t] ^= x[t] >> 7;
        x[t] ^= x[t] << 17;
        unsigned k = (unsigned)(x[t] % SLOTS);
        uint64_t tm = fixed ? (uint64_t)(i / 80000) * 4000000 : now_ns(CLOCK_MONOTONIC_COARSE) - base;
        uint32_t stack = 1 + (t & 1);
        if (slot[t][k]) {
            uint64_t p = (uint64_t)(uintptr_t)slot[t][k] + ptr_shift;
            free(slot[t][k]);
            put(&st[t], REC_HDR(TRACE_EV_FREE, 0, 1, 4, 0, 0, 0), (uint64_t)i, tm, p, 0, 1);
            slot[t][k] = NULL;
        } else {
            size_t n = 16 + (size_t)((x[t] >> 20) % 4081);
            slot[t][k] = malloc(n);
            uintptr_t hdr = (uintptr_t)slot[t][k] - 8;
            uint8_t flags = (uint8_t)(*(volatile size_t *)hdr & 7);
            put(&st[t], REC_HDR(TRACE_EV_MALLOC, flags, 1, 5, 0, stack, 0), (uint64_t)i, tm, n,
                (uint64_t)(uintptr_t)slot[t][k] + ptr_shift, 2);
        }
    }
    size_t raw_cap = (1u << 20) + (256u << 10);
    zarena = malloc(ZARENA_BYTES);
    memset(zarena, 1, ZARENA_BYTES);
    uint8_t *raw = malloc(raw_cap), *sealed = malloc(trace_block_bound(raw_cap));
    static const struct {
        const char *name;
        int level, strategy;
    } modes[] = {{"level1", 1, Z_DEFAULT_STRATEGY}, {"huffman", 1, Z_HUFFMAN_ONLY}, {"stored", 0, 0}};
    const char *methods = argc > 3 ? argv[3] : "zlib,rans,v1";
    printf("flush_bench: %ld events, %d thread(s)%s\n", events, threads,
           fixed ? ", fixed stream" : "");
    static const struct {
        const char *name;
        int method;
    } v2[] = {{"zlib", TRACE_BLOCK_ZLIB}, {"rans", TRACE_BLOCK_RANS}, {"stored", TRACE_BLOCK_STORED}};
    for (unsigned vm = 0; vm < 3; vm++) {
        if (!wants(methods, v2[vm].name))
            continue;
        /* Version-2 blocks, as the recorder writes them. */
        size_t cap = (1u << 20) + (256u << 10);
        void *mem = aligned_alloc(64, (trace_block_encoder_size(cap) + 63) & ~(size_t)63);
        struct trace_block_encoder *e = trace_block_encoder_init(mem, cap);
        trace_block_encoder_method(e, v2[vm].method);
        uint8_t *out = malloc(trace_block_encoder_size(cap));
        uint64_t bytes = 0, enc_ns = 0, seal_ns = 0, enc_in = 0, seal_in = 0;
        uint64_t col_raw[16] = {0}, col_coded[16] = {0}, sum = FNV_START;
        for (int t = 0; t < threads; t++) {
            size_t pos = 0;
            trace_block_encoder_begin(e, (uint32_t)t);
            while (pos < st[t].n) {
                uint64_t f[2] = {0x401000 + (uint64_t)t, 0x402000};
                uint64_t a = now_ns(CLOCK_THREAD_CPUTIME_ID), ai = insns();
                trace_block_encoder_stack(e, 1 + (t & 1), f, 2);
                pos = encode_piece(e, &st[t], pos);
                uint64_t b = now_ns(CLOCK_THREAD_CPUTIME_ID), bi = insns();
                size_t nb = seal_piece(e, out, trace_block_encoder_size(cap));
                uint64_t c = now_ns(CLOCK_THREAD_CPUTIME_ID), ci = insns();
                bytes += nb;
                sum = fnv1a(sum, out, nb);
                /* Where the bytes go: each coded column's size (FORMAT.md, "Coded columns"). */
                const uint8_t *q = out + 40, *qend = out + nb;
                for (unsigned k = 0; k < WIRE_V2_COLUMNS && q < qend; k++) {
                    const uint8_t *start = q;
                    uint64_t n = 0, m = 0;
                    uint8_t method = *q++;
                    wire_get_varint(&q, qend, &n);
                    col_raw[k] += n;
                    if (method == COLCODE_STORED) {
                        q += n;
                    } else if (method == COLCODE_RUN) {
                        q++;
                    } else if (method == COLCODE_DEFLATE) {
                        wire_get_varint(&q, qend, &m);
                        q += m;
                    } else if (method == COLCODE_RANS) {
                        unsigned last = *q++;
                        for (unsigned v = 0; v <= last; v++)
                            wire_get_varint(&q, qend, &m);
                        wire_get_varint(&q, qend, &m);
                        q += m;
                    } else {
                        unsigned last = *q++;
                        q += (last + 2) / 2;
                        wire_get_varint(&q, qend, &m);
                        q += m;
                    }
                    col_coded[k] += (uint64_t)(q - start);
                }
                enc_ns += b - a;
                seal_ns += c - b;
                enc_in += bi - ai;
                seal_in += ci - bi;
            }
        }
        if (enc_in)
            printf("%-8s encode %6.1f ns %5.0f insn/event  seal %6.1f ns %5.0f insn/event  total %6.1f ns/event  %.3f bytes/event\n",
                   v2[vm].name, (double)enc_ns / events, (double)enc_in / events,
                   (double)seal_ns / events, (double)seal_in / events,
                   (double)(enc_ns + seal_ns) / events, (double)bytes / events);
        else                        /* no perf events here (a VM without counters) */
            printf("%-8s encode %6.1f ns/event  seal %6.1f ns/event  total %6.1f ns/event  %.3f bytes/event\n",
                   v2[vm].name, (double)enc_ns / events, (double)seal_ns / events,
                   (double)(enc_ns + seal_ns) / events, (double)bytes / events);
        printf("%-8s checksum %016llx\n", v2[vm].name, (unsigned long long)sum);
        static const char *names[WIRE_V2_COLUMNS] = {"structure", "seq", "pointers", "time",
                                                     "freed", "opcodes", "stacks", "sizes",
                                                     "ptrs+", "freed+", "sizes+"};
        if (getenv("FLUSH_BENCH_COLUMNS"))
            for (unsigned k = 0; k < WIRE_V2_COLUMNS; k++)
                printf("  column %-9s raw %5.2f coded %5.3f bytes/event\n", names[k],
                       (double)col_raw[k] / events, (double)col_coded[k] / events);
        free(mem);
        free(out);
    }
    if (!wants(methods, "v1"))
        return 0;
    for (unsigned m = 0; m < 3; m++) {
        uint64_t bytes = 0, enc_ns = 0, seal_ns = 0, sum = FNV_START;
        struct trace_event ev;
        struct trace_zalloc za = {z_alloc, z_free, NULL};
        for (int t = 0; t < threads; t++) {
            struct trace_encode_state es;
            size_t pos = 0, len = 0;
            uint64_t first = 0, last = 0;
            trace_encode_state_reset(&es);
            int defined = 0;
            while (pos < st[t].n) {
                uint64_t a = now_ns(CLOCK_THREAD_CPUTIME_ID);
                size_t start_len = len;
                (void)start_len;
                while (pos < st[t].n && len < (1u << 20)) {
                    const uint64_t *w = st[t].w + pos;
                    if (!defined) {
                        uint64_t f[2] = {0x401000 + (uint64_t)t, 0x402000};
                        len += trace_encode_stack(raw + len, raw_cap - len, 1 + (t & 1), f, 2);
                        defined = 1;
                    }
                    record_to_event(w, (uint32_t)t, &ev);
                    if (!len || !first)
                        first = ev.seq;
                    last = ev.seq;
                    len += trace_encode_event(raw + len, &ev, &es);
                    pos += REC_NWORDS(w[0]);
                }
                uint64_t b = now_ns(CLOCK_THREAD_CPUTIME_ID);
                size_t n = trace_block_seal_level(sealed, trace_block_bound(raw_cap), raw, len,
                                                  (uint32_t)t, first, last, &za, modes[m].level,
                                                  modes[m].strategy);
                uint64_t c = now_ns(CLOCK_THREAD_CPUTIME_ID);
                z_reset();
                enc_ns += b - a;
                seal_ns += c - b;
                bytes += n;
                sum = fnv1a(sum, sealed, n);
                len = 0;
                first = 0;
                defined = 0;
                trace_encode_state_reset(&es);
            }
        }
        printf("%-8s encode %6.1f ns/event  seal %6.1f ns/event  total %6.1f ns/event  %.2f bytes/event\n",
               modes[m].name, (double)enc_ns / events, (double)seal_ns / events,
               (double)(enc_ns + seal_ns) / events, (double)bytes / events);
        printf("%-8s checksum %016llx\n", modes[m].name, (unsigned long long)sum);
    }
    return 0;
}
