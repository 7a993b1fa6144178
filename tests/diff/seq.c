/* seq.c: the in-memory op sequence: building, copying, and removing ops with their dependents.
 *
 * Removal keeps a sequence valid for the runner: a dropped allocation takes every op that names
 * its block with it (frees, reallocs and, through the realloc's new block, their descendants),
 * and a dropped thread start or exit takes that thread's whole life.
 */
#include "seq.h"

#include <stdlib.h>
#include <string.h>

void seq_init(struct seq *s)
{
    memset(s, 0, sizeof *s);
}

void seq_free(struct seq *s)
{
    free(s->ops);
    memset(s, 0, sizeof *s);
}

void seq_clear(struct seq *s)
{
    s->n = 0;
}

uint32_t seq_add(struct seq *s, unsigned kind, uint16_t thread, uint32_t ref, uint64_t a,
                 uint64_t b, uint64_t c)
{
    if (s->n == s->cap) {
        uint64_t cap = s->cap ? s->cap * 2 : 256;
        struct native_op *ops = realloc(s->ops, cap * sizeof *ops);
        if (!ops)
            abort();
        s->ops = ops;
        s->cap = cap;
    }
    struct native_op *op = &s->ops[s->n];
    memset(op, 0, sizeof *op);
    op->kind = (uint8_t)kind;
    op->thread = thread;
    op->ref = ref;
    op->a = a;
    op->b = b;
    op->c = c;
    return (uint32_t)s->n++;
}

void seq_copy(struct seq *dst, const struct seq *src)
{
    dst->n = 0;
    dst->set = src->set;
    for (uint64_t i = 0; i < src->n; i++) {
        const struct native_op *o = &src->ops[i];
        uint32_t k = seq_add(dst, o->kind, o->thread, o->ref, o->a, o->b, o->c);
        dst->ops[k].flags = o->flags;
    }
}

int seq_setenv(struct seq_settings *set, const char *nv)
{
    if (set->env_count >= SEQ_MAX_ENV || strlen(nv) >= sizeof set->env[0])
        return -1;
    strcpy(set->env[set->env_count++], nv);
    return 0;
}

static int uses_ref(unsigned kind)
{
    return kind == NATIVE_OP_FREE || kind == NATIVE_OP_REALLOC || kind == NATIVE_OP_REALLOCARRAY ||
           kind == NATIVE_OP_USABLE_SIZE || kind == NATIVE_OP_WRITE;
}

/* Marks the life of the thread whose start or exit is op i. */
static void drop_thread_life(const struct seq *s, uint8_t *drop, uint64_t i)
{
    uint16_t t = s->ops[i].thread;
    uint64_t start = i, end = s->n;
    if (s->ops[i].kind == NATIVE_OP_THREAD_EXIT) {
        while (start > 0 && !(s->ops[start].kind == NATIVE_OP_THREAD_START &&
                              s->ops[start].thread == t))
            start--;
    }
    for (uint64_t j = start + 1; j < s->n; j++) {
        if (s->ops[j].kind == NATIVE_OP_THREAD_EXIT && s->ops[j].thread == t) {
            end = j;
            break;
        }
    }
    for (uint64_t j = start; j < s->n && j <= end; j++)
        if (s->ops[j].thread == t)
            drop[j] = 1;
}

void seq_remove(struct seq *s, uint8_t *drop)
{
    for (uint64_t i = 0; i < s->n; i++)
        if (drop[i] && (s->ops[i].kind == NATIVE_OP_THREAD_START ||
                        s->ops[i].kind == NATIVE_OP_THREAD_EXIT))
            drop_thread_life(s, drop, i);
    for (uint64_t i = 0; i < s->n; i++)
        if (!drop[i] && uses_ref(s->ops[i].kind) && s->ops[i].ref != NATIVE_REF_NULL &&
            drop[s->ops[i].ref])
            drop[i] = 1;
    uint32_t *map = malloc((s->n + 1) * sizeof *map);
    if (!map)
        abort();
    uint64_t k = 0;
    for (uint64_t i = 0; i < s->n; i++) {
        map[i] = (uint32_t)k;
        if (drop[i])
            continue;
        struct native_op op = s->ops[i];
        if (uses_ref(op.kind) && op.ref != NATIVE_REF_NULL)
            op.ref = map[op.ref];
        s->ops[k++] = op;
    }
    s->n = k;
    free(map);
}
