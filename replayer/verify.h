/* verify.h: comparing replayed addresses with recorded ones (--verify; internal). */
#ifndef FRAGSCOPE_VERIFY_H
#define FRAGSCOPE_VERIFY_H

#include <stdint.h>
#include <stdio.h>
#include "replay.h"

#define VERIFY_MAX_DETAILS 16

struct verify_heap_pair {
    uint64_t recorded, replayed;   /* 64 MiB heap bases */
};

struct verify {
    uint64_t recorded_heap_start, replayed_heap_start;
    struct verify_heap_pair *heaps;
    uint32_t nheaps, heap_cap;
    uint64_t verified, matched, result_mismatches, first_divergence_step;
    unsigned details_max, ndetails;
    struct verify_detail {
        uint64_t step;
        uint32_t thread;
        int arena;
        uint64_t request;        /* the request size (for the bin summary) */
        char line[320];
        char bins[512];          /* the model's bins just before the step (second pass) */
    } details[VERIFY_MAX_DETAILS];
    /* samples */
    uint64_t samples, mallinfo_matched, brk_matched, sample_reports;
    int64_t residency_diff_max;
    double residency_diff_sum;
};

void verify_init(struct verify *v, uint64_t recorded_heap_start, uint64_t replayed_heap_start,
                 unsigned details_max);
void verify_free(struct verify *v);

/* An allocation step: compares the recorded pointer (and its chunk flags) with the replayed
 * one. Returns 1 on a match, 0 on a divergence (recorded for the report). */
int verify_alloc(struct verify *v, struct ptmalloc *pm, const struct trace_event *ev,
                 uint64_t step, uint64_t replayed, int arena);

/* A mallopt / malloc_trim return value, or a NULL-vs-non-NULL mismatch of another kind. */
void verify_result(struct verify *v, const struct trace_event *ev, uint64_t step,
                   int64_t replayed, FILE *report);

/* A TRACE_EV_SAMPLE: compares mallinfo2 exactly, the break, and heap residency. */
void verify_sample(struct verify *v, struct ptmalloc *pm, const struct trace_event *ev,
                   uint64_t step, FILE *report);

/* "main+0x2a0", "heap2+0xb70", "mmap+0x10" for a recorded (recorded=1) or replayed pointer. */
void verify_describe(struct verify *v, struct ptmalloc *pm, int recorded, uint64_t ptr,
                     unsigned chunk_flags, char *buf, size_t len);

/* One line summarising the model's bins relevant to a request of `request` bytes by thread t
 * in arena `arena` (tcache bin, fastbin / small bin, unsorted list, top). */
void verify_bins_summary(struct ptmalloc *pm, int arena, uint32_t thread, uint64_t request,
                         char *buf, size_t len);

/* The call as text: "malloc(24)", "realloc(0x..., 100)". */
void verify_call_text(const struct trace_event *ev, char *buf, size_t len);

#endif
