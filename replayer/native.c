/* native.c: `fragscope replay --native`, the trace replayed on the real allocator.
 *
 * Waiting for the differential harness's runner (native_ops.h, fragscope-native-runner).
 */
#include <stdio.h>
#include "replay_native.h"

int replay_native(const struct replay_options *o, const char *preload, FILE *out, char *err,
                  size_t errlen)
{
    (void)o;
    (void)preload;
    (void)out;
    snprintf(err, errlen, "--native: the native runner is not available in this build yet");
    return -1;
}
