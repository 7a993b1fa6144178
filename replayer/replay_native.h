/* replay_native.h: `fragscope replay --native` (internal): the trace on the real allocator. */
#ifndef FRAGSCOPE_REPLAY_NATIVE_H
#define FRAGSCOPE_REPLAY_NATIVE_H

#include <stdint.h>
#include <stdio.h>
#include "replay.h"

/* Decodes the trace into the native runner's ops, runs fragscope-native-runner in a child
 * (LD_PRELOAD=preload when not NULL), and prints wall time, peak RSS and the final mallinfo2
 * to out. Returns 0, or -1 with a message in err. */
int replay_native(const struct replay_options *o, const char *preload, FILE *out, char *err,
                  size_t errlen);

/* A native run's figures, exact (the text rounds them). */
struct replay_native_result {
    double wall_seconds;            /* the child's, start to exit */
    uint64_t peak_rss_bytes;        /* the child's ru_maxrss, in bytes */
    uint64_t heap_rss_peak_bytes;   /* sampled every NATIVE_SAMPLE_EVERY ops; glibc malloc only
                                       (0 with a preload) */
    uint64_t ops;
};
/* replay_native that also fills *res (when not NULL); out may be NULL (nothing printed). */
int replay_native_run(const struct replay_options *o, const char *preload, FILE *out,
                      struct replay_native_result *res, char *err, size_t errlen);

#endif
