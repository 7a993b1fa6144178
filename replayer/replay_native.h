/* replay_native.h: `fragscope replay --native` (internal): the trace on the real allocator. */
#ifndef FRAGSCOPE_REPLAY_NATIVE_H
#define FRAGSCOPE_REPLAY_NATIVE_H

#include <stdio.h>
#include "replay.h"

/* Decodes the trace into the native runner's ops, runs fragscope-native-runner in a child
 * (LD_PRELOAD=preload when not NULL), and prints wall time, peak RSS and the final mallinfo2
 * to out. Returns 0, or -1 with a message in err. */
int replay_native(const struct replay_options *o, const char *preload, FILE *out, char *err,
                  size_t errlen);

#endif
