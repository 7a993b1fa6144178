/* seq_print.c: renders an op sequence as readable C-like lines, for reproducers.
 *
 * Blocks are named pN after the op that made them, so "p7 = realloc(p3, 100);" reads as the
 * runner performs it. Ops of other threads are prefixed with the thread ("[t2] "), thread starts
 * and exits read as pthread_create/pthread_join, and the settings come first as a comment.
 */
#include "seq.h"

#include <inttypes.h>

const char *seq_kind_name(unsigned kind)
{
    static const char *names[NATIVE_OP_KIND_COUNT] = {
        [NATIVE_OP_MALLOC] = "malloc",
        [NATIVE_OP_CALLOC] = "calloc",
        [NATIVE_OP_REALLOC] = "realloc",
        [NATIVE_OP_REALLOCARRAY] = "reallocarray",
        [NATIVE_OP_FREE] = "free",
        [NATIVE_OP_MEMALIGN] = "memalign",
        [NATIVE_OP_POSIX_MEMALIGN] = "posix_memalign",
        [NATIVE_OP_ALIGNED_ALLOC] = "aligned_alloc",
        [NATIVE_OP_VALLOC] = "valloc",
        [NATIVE_OP_PVALLOC] = "pvalloc",
        [NATIVE_OP_MALLOPT] = "mallopt",
        [NATIVE_OP_MALLOC_TRIM] = "malloc_trim",
        [NATIVE_OP_USABLE_SIZE] = "malloc_usable_size",
        [NATIVE_OP_WRITE] = "memset",
        [NATIVE_OP_THREAD_START] = "thread_start",
        [NATIVE_OP_THREAD_EXIT] = "thread_exit",
        [NATIVE_OP_SAMPLE] = "sample",
    };
    return kind < NATIVE_OP_KIND_COUNT && names[kind] ? names[kind] : "?";
}

static const char *mallopt_name(int64_t p)
{
    switch (p) {
    case 1: return "M_MXFAST";
    case -1: return "M_TRIM_THRESHOLD";
    case -2: return "M_TOP_PAD";
    case -3: return "M_MMAP_THRESHOLD";
    case -4: return "M_MMAP_MAX";
    case -5: return "M_CHECK_ACTION";
    case -6: return "M_PERTURB";
    case -7: return "M_ARENA_TEST";
    case -8: return "M_ARENA_MAX";
    default: return NULL;
    }
}

static void ref_name(char *buf, size_t len, uint32_t ref)
{
    if (ref == NATIVE_REF_NULL)
        snprintf(buf, len, "NULL");
    else
        snprintf(buf, len, "p%" PRIu32, ref);
}

void seq_print(FILE *f, const struct seq *s, uint64_t mark, const char *title)
{
    fprintf(f, "/* %s: %" PRIu64 " ops", title ? title : "sequence", s->n);
    if (s->set.tunables[0])
        fprintf(f, ", GLIBC_TUNABLES=%s", s->set.tunables);
    for (unsigned i = 0; i < s->set.env_count; i++)
        fprintf(f, ", %s", s->set.env[i]);
    fprintf(f, " */\n");
    for (uint64_t i = 0; i < s->n; i++) {
        const struct native_op *o = &s->ops[i];
        char r[24];
        ref_name(r, sizeof r, o->ref);
        fprintf(f, "/* %4" PRIu64 " */ ", i);
        if (o->thread && o->kind != NATIVE_OP_THREAD_START && o->kind != NATIVE_OP_THREAD_EXIT)
            fprintf(f, "[t%u] ", o->thread);
        switch (o->kind) {
        case NATIVE_OP_MALLOC: case NATIVE_OP_VALLOC: case NATIVE_OP_PVALLOC:
            fprintf(f, "p%" PRIu64 " = %s(%" PRIu64 ");", i, seq_kind_name(o->kind), o->a);
            break;
        case NATIVE_OP_CALLOC:
            fprintf(f, "p%" PRIu64 " = calloc(%" PRIu64 ", %" PRIu64 ");", i, o->a, o->b);
            break;
        case NATIVE_OP_REALLOC:
            fprintf(f, "p%" PRIu64 " = realloc(%s, %" PRIu64 ");", i, r, o->a);
            break;
        case NATIVE_OP_REALLOCARRAY:
            fprintf(f, "p%" PRIu64 " = reallocarray(%s, %" PRIu64 ", %" PRIu64 ");", i, r, o->a,
                    o->b);
            break;
        case NATIVE_OP_FREE:
            fprintf(f, "free(%s);", r);
            break;
        case NATIVE_OP_MEMALIGN: case NATIVE_OP_ALIGNED_ALLOC:
            fprintf(f, "p%" PRIu64 " = %s(%" PRIu64 ", %" PRIu64 ");", i, seq_kind_name(o->kind),
                    o->a, o->b);
            break;
        case NATIVE_OP_POSIX_MEMALIGN:
            fprintf(f, "posix_memalign(&p%" PRIu64 ", %" PRIu64 ", %" PRIu64 ");", i, o->a, o->b);
            break;
        case NATIVE_OP_MALLOPT: {
            const char *n = mallopt_name((int64_t)o->a);
            if (n)
                fprintf(f, "mallopt(%s, %d);", n, (int)(int64_t)o->b);
            else
                fprintf(f, "mallopt(%d, %d);", (int)(int64_t)o->a, (int)(int64_t)o->b);
            break;
        }
        case NATIVE_OP_MALLOC_TRIM:
            fprintf(f, "malloc_trim(%" PRIu64 ");", o->a);
            break;
        case NATIVE_OP_USABLE_SIZE:
            fprintf(f, "malloc_usable_size(%s);", r);
            break;
        case NATIVE_OP_WRITE:
            if (o->b == NATIVE_WRITE_ALL)
                fprintf(f, "memset(%s + %" PRIu64 ", 0x%02x, <to the end>);", r, o->a,
                        (unsigned)(o->c & 0xff));
            else
                fprintf(f, "memset(%s + %" PRIu64 ", 0x%02x, %" PRIu64 ");", r, o->a,
                        (unsigned)(o->c & 0xff), o->b);
            break;
        case NATIVE_OP_THREAD_START:
            fprintf(f, "pthread_create(&t%u, ...);", o->thread);
            break;
        case NATIVE_OP_THREAD_EXIT:
            fprintf(f, "/* t%u returns */ pthread_join(t%u, NULL);", o->thread, o->thread);
            break;
        case NATIVE_OP_SAMPLE:
            fprintf(f, "/* sample heap RSS */");
            break;
        default:
            fprintf(f, "/* unknown op kind %u */", o->kind);
            break;
        }
        if (o->flags & NATIVE_OPF_SAMPLE)
            fprintf(f, " /* + RSS */");
        if (i == mark)
            fprintf(f, "   /* <-- diverges here */");
        fputc('\n', f);
    }
}
