/* tracegen.h: random and realistic event streams for the tracer tests, and the helpers that
 * write them to a file and compare what the reader gives back. */
#ifndef FRAGSCOPE_TEST_TRACEGEN_H
#define FRAGSCOPE_TEST_TRACEGEN_H

#include <stddef.h>
#include <stdint.h>
#include "trace_format.h"

/* One item of a stream, in the order it is handed to the writer. */
struct gen_item {
    int type;                   /* GEN_EVENT, GEN_STACK, GEN_MODULE */
    uint32_t thread;
    struct trace_event ev;
    uint32_t stack_id;
    unsigned depth;
    uint64_t *frames;           /* GEN_STACK: malloc'd, freed by gen_free */
    struct trace_module *module; /* GEN_MODULE: malloc'd, freed by gen_free */
};
enum { GEN_EVENT = 1, GEN_STACK, GEN_MODULE };

struct gen_stream {
    struct gen_item *items;
    size_t count, cap;
    size_t events;
    uint32_t stacks;            /* stack ids 1..stacks are defined */
};

uint64_t gen_rand(uint64_t *s);

/* Decodes every column of the BLK3 payload at *p (up to end), counting the columns of each
 * coding method in per_method[0..4] (added to); *p moves past them. Returns 1, or 0 at the first
 * column that does not decode. */
int gen_count_column_methods(const uint8_t **p, const uint8_t *end, unsigned *per_method);

/* Random events of every kind over `threads` threads, with stacks and modules; some events are
 * chosen to need the generic form (extra fields, time going backwards, errors, odd pointers). */
void gen_random_stream(struct gen_stream *g, uint64_t seed, size_t events, unsigned threads);

/* A malloc/free stream shaped like a real program's (call sites with typical sizes and
 * lifetimes, real pointers from this process's malloc, nanosecond times with jitter). */
void gen_realistic_stream(struct gen_stream *g, uint64_t seed, size_t events, unsigned threads);

void gen_free(struct gen_stream *g);

/* Writes the stream to path (replacing it); returns the file size. */
uint64_t gen_write(const struct gen_stream *g, const char *path, size_t block_size,
                   uint64_t flush_every);

/* 1 when every field is equal. */
int gen_event_equal(const struct trace_event *a, const struct trace_event *b);
/* Prints the first difference to stderr. */
void gen_event_diff(const struct trace_event *want, const struct trace_event *got);

/* The events of the stream sorted by seq (malloc'd array of pointers into g). */
const struct trace_event **gen_sorted_events(const struct gen_stream *g);

/* A fresh temporary directory, and a path inside it. */
const char *gen_tmpdir(void);
void gen_tmppath(char *out, size_t cap, const char *name);

#endif
