/* dump_cli.c: `fragscope dump`, a trace as text.
 *
 * Without options it prints one aligned line per event in global order (seq, time since the
 * start, thread, call, arguments, result, chunk flags, stack id); --stacks adds the frames of
 * each stack under the first event that uses it; --stats prints the header, counts per
 * operation and per thread, bytes per event, the time span and how the file ended. The trace is
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
    int stats, stacks, bytes, header;
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
    struct id_slot *list = malloc((threads.count ? threads.count : 1) * sizeof *list);
    size_t nt = 0;
    for (size_t i = 0; list && i < threads.cap; i++)
        if (threads.slots[i].used)
            list[nt++] = threads.slots[i];
    if (list)
        qsort(list, nt, sizeof *list, by_id);
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
            "usage: fragscope dump [--stacks] [--bytes] TRACE\n"
            "       fragscope dump --stats [--bytes] TRACE\n\n"
            "Print a trace's events in their global order, one per line: sequence number, time since\n"
            "the start of the recording, thread, call, arguments, result, chunk flags (P prev-inuse,\n"
            "M mmapped, A non-main arena) and stack id.\n\n"
            "options:\n"
            "  -s, --stats    print the header, counts per operation and per thread, bytes per event,\n"
            "                 the time span and how the file ended, instead of the events\n"
            "  -S, --stacks   print each stack's frames under the first event that uses it\n"
            "  -b, --bytes    print sizes as exact byte counts instead of B/KiB/MiB\n"
            "  -H, --header   print the header before the events\n"
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
        if (o.header) {
            print_header(path, r);
            printf("\n");
        }
        rc = dump_events(path, r, &o);
    }
    trace_reader_close(r);
    return rc;
}
