/* arena_pin.h: which arena each traced thread really used (--arenas recorded; internal). */
#ifndef FRAGSCOPE_ARENA_PIN_H
#define FRAGSCOPE_ARENA_PIN_H

#include <stddef.h>
#include <stdint.h>

struct arena_pin {
    int32_t *thread_arena;   /* per thread index: recorded arena (0 = main), -1 = unknown */
    uint32_t threads;
    uint32_t arenas;         /* recorded arenas, main included */
    uint64_t heaps;          /* distinct non-main heaps seen */
};

/* Reads the trace at path once (streamed) and infers the arena of every thread. Returns 0, or
 * -1 with a message naming the file in err. */
int arena_pin_infer(const char *path, struct arena_pin *ap, char *err, size_t errlen);
void arena_pin_free(struct arena_pin *ap);

#endif
