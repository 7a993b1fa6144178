/* dump_cli.c: `fragscope dump`, a trace as text or JSON.
 *
 * Without options it prints one aligned line per event in global order (seq, time since the
 * start, thread, call, arguments, result, chunk flags, stack id); --stacks adds the frames of
 * each stack under the first event that uses it; --stats prints the header, counts per
 * operation and per thread, bytes per event, the time span and how the file ended. With
 * --format json the events are JSON Lines (one object per event, exact numbers, the frames in
 * a "frames" member of the first event using a stack) and --stats is one JSON object; every
 * string from the trace is escaped here (this file does not depend on the analyzer). The trace is
 * streamed, so any size dumps in bounded memory. A file that cannot be opened or is damaged
 * gives exit status 1 and a message naming the file and offset; one that is merely cut short
 * (a killed recording) is dumped up to its last whole block with a note on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../cli.h"
#include "trace_format.h"

struct dump_options {
    int stats, stacks, bytes, header, json;
};

/* ---- A set / map of 32-bit ids (threads, printed stacks) ---- */

struct id_slot {
    uint32_t id;
    int used;
    uint64_t events, allocs, frees, failed, requested, first_seq, last_seq;
};

struct id_map {
    struct id_slot *slots;
    size_t cap, count;
};

static struct id_slot *id_map_get(struct id_map *m, uint32_t id, int *created)
{
    if ((m->count + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct id_slot *n = calloc(cap, sizeof *n);
        if (!n)
            return NULL;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].used)
                continue;
            size_t j = (m->slots[i].id * 2654435761u) & (cap - 1);
            while (n[j].used)
                j = (j + 1) & (cap - 1);
            n[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = n;
        m->cap = cap;
    }
    size_t j = (id * 2654435761u) & (m->cap - 1);
    while (m->slots[j].used && m->slots[j].id != id)
        j = (j + 1) & (m->cap - 1);
    if (created)
        *created = !m->slots[j].used;
    if (!m->slots[j].used) {
        m->slots[j].used = 1;
        m->slots[j].id = id;
        m->count++;
    }
    return &m->slots[j];
}

static int by_id(const void *a, const void *b)
{
    const struct id_slot *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s[0] does not start one (overlong
 * forms, surrogates and code points past U+10FFFF are not valid). */
static int utf8_len(const unsigned char *s)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    int n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;       /* overlong */
        hi = c == 0xed ? 0x9f : 0xbf;       /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;       /* overlong */
        hi = c == 0xf4 ? 0x8f : 0xbf;       /* past U+10FFFF */
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* s as a JSON string (NULL: null): quotes, backslashes and control characters escaped, valid
 * UTF-8 copied, any other byte as \u00XX. */
static void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = *p >= 0x20 && *p != 0x7f ? utf8_len(p) : 0;
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (n > 0)
            fwrite(p, 1, (size_t)n, f);
        else
            fprintf(f, "\\u%04x", *p);
        p += n > 0 ? n : 1;
    }
    fputc('"', f);
}

/* The '\n'-separated list s as a JSON array of strings ([] for NULL or ""). */
static void json_lines(FILE *f, const char *s)
{
    fputc('[', f);
    for (int first = 1; s && *s; first = 0) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        char *one = strndup(s, n);
        fputs(first ? "" : ", ", f);
        json_str(f, one ? one : "");
        free(one);
        s += n + (nl != NULL);
    }
    fputc(']', f);
}

/* ---- Formatting ---- */

static const char *human_size(char *buf, size_t cap, uint64_t v, int exact)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (exact || v < 1024) {
        snprintf(buf, cap, exact ? "%" PRIu64 : "%" PRIu64 " B", v);
        return buf;
    }
    double d = (double)v;
    int u = -1;
    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    snprintf(buf, cap, d < 10 ? "%.2f %s" : d < 100 ? "%.1f %s" : "%.0f %s", d, units[u]);
    return buf;
}

static const char *mallopt_name(int64_t param)
{
    switch (param) {
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

static const char *errno_name(int e, char *buf, size_t cap)
{
    const char *n = e > 0 ? strerrorname_np(e) : NULL;
    if (n)
        return n;
    snprintf(buf, cap, "errno %d", e);
    return buf;
}

static void format_ptr(char *buf, size_t cap, uint64_t p)
{
    if (p)
        snprintf(buf, cap, "0x%" PRIx64, p);
    else
        snprintf(buf, cap, "NULL");
}

/* The ARGS and RESULT columns of one event. */
static void format_call(const struct trace_event *ev, const struct dump_options *o,
                        struct trace_reader *r, char *args, size_t acap, char *res, size_t rcap)
{
    char a[64], b[64], c[64];
    args[0] = 0;
    snprintf(res, rcap, "-");
    switch (ev->kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
        snprintf(args, acap, "%s", human_size(a, sizeof a, ev->size, o->bytes));
        break;
    case TRACE_EV_CALLOC:
        snprintf(args, acap, "%" PRIu64 " x %s", ev->nmemb, human_size(a, sizeof a, ev->size, o->bytes));
        break;
    case TRACE_EV_REALLOC:
        format_ptr(b, sizeof b, ev->old_ptr);
        snprintf(args, acap, "%s, %s", b, human_size(a, sizeof a, ev->size, o->bytes));
        break;
    case TRACE_EV_REALLOCARRAY:
        format_ptr(b, sizeof b, ev->old_ptr);
        snprintf(args, acap, "%s, %" PRIu64 " x %s", b, ev->nmemb, human_size(a, sizeof a, ev->size, o->bytes));
        break;
    case TRACE_EV_FREE:
        format_ptr(args, acap, ev->ptr);
        break;
    case TRACE_EV_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC: case TRACE_EV_POSIX_MEMALIGN:
        snprintf(args, acap, "align %" PRIu64 ", %s", ev->alignment, human_size(a, sizeof a, ev->size, o->bytes));
        break;
    case TRACE_EV_MALLOPT: {
        const char *n = mallopt_name(ev->param);
        if (n)
            snprintf(args, acap, "%s, %" PRId64, n, ev->value);
        else
            snprintf(args, acap, "param %" PRId64 ", %" PRId64, ev->param, ev->value);
        snprintf(res, rcap, "= %" PRId64, ev->result);
        return;
    }
    case TRACE_EV_MALLOC_TRIM:
        snprintf(args, acap, "pad %s", human_size(a, sizeof a, ev->size, o->bytes));
        snprintf(res, rcap, "= %" PRId64, ev->result);
        return;
    case TRACE_EV_THREAD_START:
        snprintf(args, acap, "thread %" PRIu32 " (tid %" PRIu64 ") from thread %" PRId64,
                 ev->thread, ev->os_tid, ev->value);
        return;
    case TRACE_EV_THREAD_EXIT:
        snprintf(args, acap, "thread %" PRIu32, ev->thread);
        return;
    case TRACE_EV_FORK:
        snprintf(args, acap, "child pid %" PRId64, ev->value);
        return;
    case TRACE_EV_MODULE: {
        const struct trace_module *m = ev->value >= 0 ? trace_reader_module(r, (size_t)ev->value) : NULL;
        snprintf(args, acap, "module %" PRId64 "%s%s", ev->value, m ? " " : "", m ? m->path : "");
        return;
    }
    case TRACE_EV_SAMPLE: {
        uint64_t page = trace_reader_header(r)->page_size ? trace_reader_header(r)->page_size : 4096;
        snprintf(args, acap, "rss %s, heap resident %s, brk 0x%" PRIx64 ", in use %s",
                 human_size(a, sizeof a, ev->sample.rss_pages * page, o->bytes),
                 human_size(b, sizeof b, ev->sample.heap_resident_pages * page, o->bytes),
                 ev->sample.brk, human_size(c, sizeof c, ev->sample.uordblks, o->bytes));
        return;
    }
    default:
        snprintf(args, acap, "?");
        return;
    }
    /* Calls that return a pointer. */
    if (ev->kind == TRACE_EV_FREE)
        return;
    format_ptr(b, sizeof b, ev->ptr);
    if (ev->kind == TRACE_EV_POSIX_MEMALIGN) {
        if (ev->result)
            snprintf(res, rcap, "= %s", errno_name((int)ev->result, c, sizeof c));
        else
            snprintf(res, rcap, "= 0, %s", b);
    } else if (!ev->ptr && ev->err) {
        snprintf(res, rcap, "NULL (%s)", errno_name(ev->err, c, sizeof c));
    } else {
        snprintf(res, rcap, "%s", b);
    }
}

static void print_frames(FILE *out, struct trace_reader *r, uint32_t id)
{
    const uint64_t *frames;
    unsigned depth = trace_reader_stack(r, id, &frames);
    if (!depth) {
        fprintf(out, "    stack %" PRIu32 ": (not defined in the trace)\n", id);
        return;
    }
    fprintf(out, "    stack %" PRIu32 ":\n", id);
    for (unsigned i = 0; i < depth; i++) {
        const struct trace_module *m = trace_reader_module_at(r, frames[i]);
        if (m)
            fprintf(out, "      #%-3u 0x%-14" PRIx64 " %s+0x%" PRIx64 "\n", i, frames[i], m->path,
                    frames[i] - m->load_address);
        else
            fprintf(out, "      #%-3u 0x%" PRIx64 "\n", i, frames[i]);
    }
}

/* One event as a JSON object on one line: the fields its call uses, exact. */
static void json_event(const struct trace_event *ev, struct trace_reader *r, int with_frames)
{
    FILE *f = stdout;
    char nb[64];
    fprintf(f, "{\"seq\": %" PRIu64 ", \"time_ns\": %" PRIu64 ", \"thread\": %" PRIu32
               ", \"call\": ",
            ev->seq, ev->time_ns, ev->thread);
    json_str(f, trace_event_kind_name(ev->kind));
    int returns_ptr = 0;
    switch (ev->kind) {
    case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC:
        fprintf(f, ", \"size\": %" PRIu64, ev->size);
        returns_ptr = 1;
        break;
    case TRACE_EV_CALLOC:
        fprintf(f, ", \"nmemb\": %" PRIu64 ", \"size\": %" PRIu64, ev->nmemb, ev->size);
        returns_ptr = 1;
        break;
    case TRACE_EV_REALLOC:
        fprintf(f, ", \"old_ptr\": %" PRIu64 ", \"size\": %" PRIu64, ev->old_ptr, ev->size);
        returns_ptr = 1;
        break;
    case TRACE_EV_REALLOCARRAY:
        fprintf(f, ", \"old_ptr\": %" PRIu64 ", \"nmemb\": %" PRIu64 ", \"size\": %" PRIu64,
                ev->old_ptr, ev->nmemb, ev->size);
        returns_ptr = 1;
        break;
    case TRACE_EV_FREE:
        fprintf(f, ", \"ptr\": %" PRIu64, ev->ptr);
        break;
    case TRACE_EV_MEMALIGN: case TRACE_EV_ALIGNED_ALLOC: case TRACE_EV_POSIX_MEMALIGN:
        fprintf(f, ", \"alignment\": %" PRIu64 ", \"size\": %" PRIu64, ev->alignment, ev->size);
        returns_ptr = 1;
        if (ev->kind == TRACE_EV_POSIX_MEMALIGN) {
            fprintf(f, ", \"result\": %" PRId64 ", \"result_name\": ", ev->result);
            json_str(f, ev->result ? errno_name((int)ev->result, nb, sizeof nb) : NULL);
        }
        break;
    case TRACE_EV_MALLOPT:
        fprintf(f, ", \"param\": %" PRId64 ", \"param_name\": ", ev->param);
        json_str(f, mallopt_name(ev->param));
        fprintf(f, ", \"value\": %" PRId64 ", \"result\": %" PRId64, ev->value, ev->result);
        break;
    case TRACE_EV_MALLOC_TRIM:
        fprintf(f, ", \"pad\": %" PRIu64 ", \"result\": %" PRId64, ev->size, ev->result);
        break;
    case TRACE_EV_THREAD_START:
        fprintf(f, ", \"os_tid\": %" PRIu64 ", \"parent_thread\": %" PRId64, ev->os_tid,
                ev->value);
        break;
    case TRACE_EV_FORK:
        fprintf(f, ", \"child_pid\": %" PRId64, ev->value);
        break;
    case TRACE_EV_MODULE: {
        const struct trace_module *m =
            ev->value >= 0 ? trace_reader_module(r, (size_t)ev->value) : NULL;
        fprintf(f, ", \"module\": %" PRId64 ", \"path\": ", ev->value);
        json_str(f, m ? m->path : NULL);
        if (m)
            fprintf(f, ", \"load_address\": %" PRIu64 ", \"module_size\": %" PRIu64,
                    m->load_address, m->size);
        break;
    }
    case TRACE_EV_SAMPLE: {
        const struct trace_sample *x = &ev->sample;
        uint64_t page = trace_reader_header(r)->page_size ? trace_reader_header(r)->page_size : 4096;
        fprintf(f, ", \"rss\": %" PRIu64 ", \"heap_resident\": %" PRIu64 ", \"brk\": %" PRIu64
                   ", \"mallinfo2\": {\"arena\": %" PRIu64 ", \"ordblks\": %" PRIu64
                   ", \"smblks\": %" PRIu64 ", \"hblks\": %" PRIu64 ", \"hblkhd\": %" PRIu64
                   ", \"usmblks\": %" PRIu64 ", \"fsmblks\": %" PRIu64 ", \"uordblks\": %" PRIu64
                   ", \"fordblks\": %" PRIu64 ", \"keepcost\": %" PRIu64 "}",
                x->rss_pages * page, x->heap_resident_pages * page, x->brk, x->arena, x->ordblks,
                x->smblks, x->hblks, x->hblkhd, x->usmblks, x->fsmblks, x->uordblks, x->fordblks,
                x->keepcost);
        break;
    }
    default:
        break;
    }
    if (returns_ptr) {
        fprintf(f, ", \"ptr\": %" PRIu64, ev->ptr);
        if (!ev->ptr && ev->err) {
            fprintf(f, ", \"err\": %" PRId32 ", \"err_name\": ", ev->err);
            json_str(f, errno_name(ev->err, nb, sizeof nb));
        }
        fprintf(f, ", \"chunk_flags\": %u", (unsigned)ev->chunk_flags);
    }
    if (ev->stack_id)
        fprintf(f, ", \"stack\": %" PRIu32, ev->stack_id);
    else
        fputs(", \"stack\": null", f);
    if (with_frames) {
        const uint64_t *frames;
        unsigned depth = trace_reader_stack(r, ev->stack_id, &frames);
        fputs(", \"frames\": [", f);
        for (unsigned i = 0; i < depth; i++) {
            const struct trace_module *m = trace_reader_module_at(r, frames[i]);
            fprintf(f, "%s{\"address\": %" PRIu64 ", \"module\": ", i ? ", " : "", frames[i]);
            json_str(f, m ? m->path : NULL);
            if (m)
                fprintf(f, ", \"offset\": %" PRIu64 "}", frames[i] - m->load_address);
            else
                fputs(", \"offset\": null}", f);
        }
        fputc(']', f);
    }
    fputs("}\n", f);
}

/* ---- The two modes ---- */

/* How reading ended: 0 clean or cut short (with a note), 1 damaged. */
static int report_end(const char *path, struct trace_reader *r, int rc)
{
    struct trace_reader_status st;
    trace_reader_status(r, &st);
    if (rc < 0 || st.damaged) {
        fprintf(stderr, "fragscope dump: %s: damaged trace, stopped at offset %" PRIu64 ": %s "
                "(%" PRIu64 " events before it were printed)\n", path, st.stop_offset, st.reason, st.events);
        return 1;
    }
    if (!st.clean_end)
        fprintf(stderr, "fragscope dump: %s: note: trace cut short at offset %" PRIu64 ": %s\n", path,
                st.stop_offset, st.reason);
    if (st.seq_gaps)
        fprintf(stderr, "fragscope dump: %s: note: the events skip sequence numbers in %" PRIu64
                " place%s (events lost by the recorder)\n", path, st.seq_gaps, st.seq_gaps == 1 ? "" : "s");
    return 0;
}

static int dump_events(const char *path, struct trace_reader *r, const struct dump_options *o)
{
    struct id_map printed = {0};
    struct trace_event ev;
    char args[1024], res[128];
    int rc;
    if (o->json) {
        while ((rc = trace_reader_next(r, &ev)) == 1) {
            int created = 0;
            if (o->stacks && ev.stack_id && !id_map_get(&printed, ev.stack_id, &created))
                created = 0;
            json_event(&ev, r, created);
        }
        free(printed.slots);
        fflush(stdout);
        return report_end(path, r, rc);
    }
    printf("%10s %20s %6s  %-15s %-34s %-22s %-5s %6s\n", "SEQ", "TIME(s)", "THREAD", "CALL", "ARGS",
           "RESULT", "FLAGS", "STACK");
    while ((rc = trace_reader_next(r, &ev)) == 1) {
        format_call(&ev, o, r, args, sizeof args, res, sizeof res);
        char stack[16], flags[4];
        if (ev.stack_id)
            snprintf(stack, sizeof stack, "%" PRIu32, ev.stack_id);
        else
            snprintf(stack, sizeof stack, "-");
        flags[0] = ev.chunk_flags & TRACE_CHUNK_PREV_INUSE ? 'P' : '-';
        flags[1] = ev.chunk_flags & TRACE_CHUNK_MMAPPED ? 'M' : '-';
        flags[2] = ev.chunk_flags & TRACE_CHUNK_NON_MAIN_ARENA ? 'A' : '-';
        flags[3] = 0;
        printf("%10" PRIu64 " %10" PRIu64 ".%09" PRIu64 " %6" PRIu32 "  %-15s %-34s %-22s %-5s %6s\n",
               ev.seq, ev.time_ns / 1000000000u, ev.time_ns % 1000000000u, ev.thread,
               trace_event_kind_name(ev.kind), args, res, flags, stack);
        if (o->stacks && ev.stack_id) {
            int created = 0;
            if (id_map_get(&printed, ev.stack_id, &created) && created)
                print_frames(stdout, r, ev.stack_id);
        }
    }
    free(printed.slots);
    fflush(stdout);
    return report_end(path, r, rc);
}

static void print_header(const char *path, struct trace_reader *r)
{
    const struct trace_header *h = trace_reader_header(r);
    char when[64] = "?";
    time_t secs = (time_t)(h->start_time_ns / 1000000000u);
    struct tm tm;
    if (h->start_time_ns && gmtime_r(&secs, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    printf("trace:        %s (format version %" PRIu32 ")\n", path, h->version);
    printf("program:      %s (pid %" PRId32 ", parent %" PRId32 "%s)\n", h->exe[0] ? h->exe : "?", h->pid,
           h->ppid, h->is_static ? ", statically linked" : "");
    if (h->parent_pid)
        printf("fork child:   of pid %" PRId32 ", forked at its seq %" PRIu64 "\n", h->parent_pid, h->fork_seq);
    printf("argv:         ");
    for (const char *p = h->argv ? h->argv : ""; *p; p++)
        putchar(*p == '\n' ? ' ' : *p);
    printf("\nmalloc env:   ");
    for (const char *p = h->malloc_env ? h->malloc_env : ""; *p; p++) {
        if (*p == '\n')
            fputs("; ", stdout);
        else
            putchar(*p);
    }
    printf("%s\n", h->malloc_env && h->malloc_env[0] ? "" : "(none)");
    printf("glibc:        %s\n", h->glibc_version[0] ? h->glibc_version : "?");
    printf("started:      %s\n", when);
    printf("heap start:   0x%" PRIx64 "\n", h->heap_start);
    printf("page size:    %" PRIu32 "\n", h->page_size);
    printf("cpus:         %" PRIu32 "\n", h->cpu_count);
    if (h->stacks)
        printf("stacks:       recorded, up to %u frames\n", h->stack_depth);
    else
        printf("stacks:       not recorded\n");
}

/* The header as a JSON object. */
static void json_header(struct trace_reader *r)
{
    const struct trace_header *h = trace_reader_header(r);
    FILE *f = stdout;
    char when[64];
    time_t secs = (time_t)(h->start_time_ns / 1000000000u);
    struct tm tm;
    int known = h->start_time_ns && gmtime_r(&secs, &tm) &&
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(f, "{\"version\": %" PRIu32 ", \"exe\": ", h->version);
    json_str(f, h->exe);
    fprintf(f, ", \"pid\": %" PRId32 ", \"ppid\": %" PRId32 ", \"is_static\": %s, "
               "\"parent_pid\": %" PRId32 ", \"fork_seq\": %" PRIu64 ", \"argv\": ",
            h->pid, h->ppid, h->is_static ? "true" : "false", h->parent_pid, h->fork_seq);
    json_lines(f, h->argv);
    fputs(", \"malloc_env\": ", f);
    json_lines(f, h->malloc_env);
    fputs(", \"glibc\": ", f);
    json_str(f, h->glibc_version);
    fprintf(f, ", \"start_time_ns\": %" PRIu64 ", \"started\": ", h->start_time_ns);
    json_str(f, known ? when : NULL);
    fprintf(f, ", \"heap_start\": %" PRIu64 ", \"page_size\": %" PRIu32 ", \"cpus\": %" PRIu32
               ", \"stacks\": %s, \"stack_depth\": %u, \"first_seq\": %" PRIu64,
            h->heap_start, h->page_size, h->cpu_count, h->stacks ? "true" : "false",
            (unsigned)h->stack_depth, h->first_seq);
    fputc('}', f);
}

/* The threads of the map, sorted by id (malloc'd; NULL on OOM). */
static struct id_slot *sorted_threads(const struct id_map *threads, size_t *count)
{
    struct id_slot *list = malloc((threads->count ? threads->count : 1) * sizeof *list);
    size_t nt = 0;
    for (size_t i = 0; list && i < threads->cap; i++)
        if (threads->slots[i].used)
            list[nt++] = threads->slots[i];
    if (list)
        qsort(list, nt, sizeof *list, by_id);
    *count = nt;
    return list;
}

/* --stats --format json: the figures of the text as one object, exact. */
static void json_stats(const char *path, struct trace_reader *r,
                       const struct trace_reader_status *st, int rc, uint64_t n,
                       uint64_t first_seq, uint64_t last_seq, uint64_t span,
                       const uint64_t *count, const uint64_t *requested, const uint64_t *failed,
                       const struct id_map *threads)
{
    FILE *f = stdout;
    fputs("{\n  \"trace\": ", f);
    json_str(f, path);
    fputs(",\n  \"header\": ", f);
    json_header(r);
    const char *how = st->damaged || rc < 0 ? "damaged" : st->clean_end ? "clean" : "cut_short";
    fprintf(f, ",\n  \"stacks_seen\": %zu, \"modules\": %zu,\n  \"ended\": {\"how\": \"%s\", "
               "\"offset\": %" PRIu64 ", \"reason\": ",
            trace_reader_stack_count(r), trace_reader_module_count(r), how, st->stop_offset);
    json_str(f, strcmp(how, "clean") ? st->reason : NULL);
    fprintf(f, "},\n  \"blocks\": %" PRIu64 ", \"bytes_read\": %" PRIu64 ", \"events\": %" PRIu64,
            st->blocks, st->file_bytes, n);
    if (n)
        fprintf(f, ", \"first_seq\": %" PRIu64 ", \"last_seq\": %" PRIu64
                   ", \"bytes_per_event\": %.6f",
                first_seq, last_seq, (double)st->file_bytes / (double)n);
    else
        fputs(", \"first_seq\": null, \"last_seq\": null, \"bytes_per_event\": null", f);
    fprintf(f, ", \"seq_gaps\": %" PRIu64 ", \"time_span_ns\": %" PRIu64 ",\n  \"operations\": [",
            st->seq_gaps, span);
    int first = 1;
    for (unsigned k = 0; k < TRACE_EV_KIND_COUNT; k++) {
        if (!count[k])
            continue;
        fprintf(f, "%s\n    {\"call\": ", first ? "" : ",");
        first = 0;
        json_str(f, trace_event_kind_name(k));
        fprintf(f, ", \"count\": %" PRIu64 ", \"share\": %.6f, \"requested\": %" PRIu64
                   ", \"failed\": %" PRIu64 "}",
                count[k], (double)count[k] / (double)n, requested[k], failed[k]);
    }
    fprintf(f, "%s],\n  \"threads\": [", first ? "" : "\n  ");
    size_t nt;
    struct id_slot *list = sorted_threads(threads, &nt);
    for (size_t i = 0; i < nt; i++)
        fprintf(f, "%s\n    {\"thread\": %" PRIu32 ", \"events\": %" PRIu64 ", \"allocs\": %" PRIu64
                   ", \"frees\": %" PRIu64 ", \"requested\": %" PRIu64 ", \"failed\": %" PRIu64
                   ", \"first_seq\": %" PRIu64 ", \"last_seq\": %" PRIu64 "}",
                i ? "," : "", list[i].id, list[i].events, list[i].allocs, list[i].frees,
                list[i].requested, list[i].failed, list[i].first_seq, list[i].last_seq);
    fprintf(f, "%s]\n}\n", nt ? "\n  " : "");
    free(list);
}

static int dump_stats(const char *path, struct trace_reader *r, const struct dump_options *o)
{
    uint64_t count[TRACE_EV_KIND_COUNT] = {0}, failed[TRACE_EV_KIND_COUNT] = {0};
    uint64_t requested[TRACE_EV_KIND_COUNT] = {0};
    uint64_t first_time = 0, last_time = 0, first_seq = 0, last_seq = 0, n = 0;
    struct id_map threads = {0};
    struct trace_event ev;
    char a[64], b[64];
    int rc;
    while ((rc = trace_reader_next(r, &ev)) == 1) {
        if (n == 0) {
            first_time = ev.time_ns;
            first_seq = ev.seq;
        }
        last_time = ev.time_ns > last_time ? ev.time_ns : last_time;
        last_seq = ev.seq;
        n++;
        unsigned k = ev.kind < TRACE_EV_KIND_COUNT ? ev.kind : 0;
        count[k]++;
        uint64_t req = 0;
        int is_alloc = 0, failed_call = 0;
        switch (k) {
        case TRACE_EV_MALLOC: case TRACE_EV_VALLOC: case TRACE_EV_PVALLOC: case TRACE_EV_MEMALIGN:
        case TRACE_EV_ALIGNED_ALLOC: case TRACE_EV_POSIX_MEMALIGN: case TRACE_EV_REALLOC:
            req = ev.size;
            is_alloc = 1;
            break;
        case TRACE_EV_CALLOC: case TRACE_EV_REALLOCARRAY:
            req = ev.nmemb * ev.size;
            is_alloc = 1;
            break;
        default:
            break;
        }
        if (is_alloc && !ev.ptr && req)
            failed_call = 1;
        requested[k] += req;
        failed[k] += (uint64_t)failed_call;
        struct id_slot *t = id_map_get(&threads, ev.thread, NULL);
        if (t) {
            if (t->events == 0)
                t->first_seq = ev.seq;
            t->last_seq = ev.seq;
            t->events++;
            t->allocs += (uint64_t)is_alloc;
            t->frees += k == TRACE_EV_FREE;
            t->failed += (uint64_t)failed_call;
            t->requested += req;
        }
    }
    struct trace_reader_status st;
    trace_reader_status(r, &st);
    if (o->json) {
        json_stats(path, r, &st, rc, n, first_seq, last_seq, last_time - first_time, count,
                   requested, failed, &threads);
        free(threads.slots);
        fflush(stdout);
        return report_end(path, r, rc);
    }
    print_header(path, r);
    printf("stacks seen:  %zu\n", trace_reader_stack_count(r));
    printf("modules:      %zu\n", trace_reader_module_count(r));
    if (st.damaged || rc < 0)
        printf("ended:        DAMAGED at offset %" PRIu64 ": %s\n", st.stop_offset, st.reason);
    else if (st.clean_end)
        printf("ended:        cleanly (end marker read; %" PRIu64 " bytes)\n", st.file_bytes);
    else
        printf("ended:        cut short at offset %" PRIu64 ": %s\n", st.stop_offset, st.reason);
    printf("blocks:       %" PRIu64 "\n", st.blocks);
    printf("events:       %" PRIu64, n);
    if (n)
        printf(" (seq %" PRIu64 " to %" PRIu64 ", %" PRIu64 " gap%s)", first_seq, last_seq, st.seq_gaps,
               st.seq_gaps == 1 ? "" : "s");
    printf("\n");
    if (n)
        printf("bytes/event:  %.3f (%" PRIu64 " bytes read)\n", (double)st.file_bytes / (double)n, st.file_bytes);
    uint64_t span = last_time - first_time;
    printf("time span:    %" PRIu64 ".%09" PRIu64 " s\n", span / 1000000000u, span % 1000000000u);

    printf("\n%-16s %12s %7s %16s %8s\n", "OPERATION", "COUNT", "SHARE", "REQUESTED", "FAILED");
    for (unsigned k = 0; k < TRACE_EV_KIND_COUNT; k++) {
        if (!count[k])
            continue;
        printf("%-16s %12" PRIu64 " %6.2f%% %16s %8" PRIu64 "\n", trace_event_kind_name(k), count[k],
               100.0 * (double)count[k] / (double)n, requested[k] ? human_size(a, sizeof a, requested[k], o->bytes) : "-",
               failed[k]);
    }
    size_t nt;
    struct id_slot *list = sorted_threads(&threads, &nt);
    printf("\n%-8s %12s %12s %12s %16s %8s %14s %14s\n", "THREAD", "EVENTS", "ALLOCS", "FREES", "REQUESTED",
           "FAILED", "FIRST SEQ", "LAST SEQ");
    for (size_t i = 0; i < nt; i++)
        printf("%-8" PRIu32 " %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %16s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 "\n",
               list[i].id, list[i].events, list[i].allocs, list[i].frees,
               human_size(b, sizeof b, list[i].requested, o->bytes), list[i].failed, list[i].first_seq,
               list[i].last_seq);
    free(list);
    free(threads.slots);
    fflush(stdout);
    return report_end(path, r, rc);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fragscope dump [--stacks] [--bytes] [--format text|json] TRACE\n"
            "       fragscope dump --stats [--bytes] [--format text|json] TRACE\n\n"
            "Print a trace's events in their global order, one per line: sequence number, time since\n"
            "the start of the recording, thread, call, arguments, result, chunk flags (P prev-inuse,\n"
            "M mmapped, A non-main arena) and stack id.\n\n"
            "options:\n"
            "  -s, --stats    print the header, counts per operation and per thread, bytes per event,\n"
            "                 the time span and how the file ended, instead of the events\n"
            "  -S, --stacks   print each stack's frames under the first event that uses it\n"
            "  -b, --bytes    print sizes as exact byte counts instead of B/KiB/MiB\n"
            "  -H, --header   print the header before the events\n"
            "  --format F     text (default) or json: the events as JSON Lines, one object per\n"
            "                 event (seq, time_ns, thread, call, the call's arguments and result,\n"
            "                 stack; with --stacks the frames on the first event using a stack;\n"
            "                 with --header a first line {\"header\": {...}}); --stats as one\n"
            "                 JSON object (trace, header, ended, blocks, events, bytes_per_event,\n"
            "                 time_span_ns, operations, threads); exact numbers, --bytes ignored\n"
            "  -h, --help     show this help\n\n"
            "exit status: 0 when the trace was read to its end marker, or was cut short (a note on\n"
            "stderr says at which offset); 1 when it cannot be read or is damaged (the message names\n"
            "the file and offset); 2 for bad usage.\n");
}

int cmd_dump(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"stats", no_argument, NULL, 's'},
        {"stacks", no_argument, NULL, 'S'},
        {"bytes", no_argument, NULL, 'b'},
        {"header", no_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {"format", required_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    struct dump_options o = {0};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":sSbHh", longopts, NULL)) != -1) {
        switch (c) {
        case 's': o.stats = 1; break;
        case 'S': o.stacks = 1; break;
        case 'b': o.bytes = 1; break;
        case 'H': o.header = 1; break;
        case 'h': usage(stdout); return 0;
        case 'F':
            if (strcmp(optarg, "json") && strcmp(optarg, "text")) {
                fprintf(stderr, "fragscope dump: --format '%s': expected text or json\n", optarg);
                usage(stderr);
                return 2;
            }
            o.json = !strcmp(optarg, "json");
            break;
        case ':':
            fprintf(stderr, "fragscope dump: option '%s' needs a value\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            fprintf(stderr, "fragscope dump: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "fragscope dump: %s\n", optind >= argc ? "missing TRACE" : "expected one TRACE");
        usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    char err[512];
    struct trace_reader *r = trace_reader_open(path, err, sizeof err);
    if (!r) {
        fprintf(stderr, "fragscope dump: %s\n", err);
        return 1;
    }
    int rc;
    if (o.stats) {
        rc = dump_stats(path, r, &o);
    } else {
        if (o.header && o.json) {
            fputs("{\"header\": ", stdout);
            json_header(r);
            fputs("}\n", stdout);
        } else if (o.header) {
            print_header(path, r);
            printf("\n");
        }
        rc = dump_events(path, r, &o);
    }
    trace_reader_close(r);
    return rc;
}
