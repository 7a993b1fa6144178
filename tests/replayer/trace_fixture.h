/* trace_fixture.h: writing small synthetic traces for the replayer's tests.
 *
 * A thin layer over the tracer's trace_file_writer: a header that looks like a fresh
 * single-process recording, events numbered in the order they are written, and a scratch
 * directory that is removed at exit.
 */
#ifndef FRAGSCOPE_TEST_TRACE_FIXTURE_H
#define FRAGSCOPE_TEST_TRACE_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "trace_format.h"

struct fixture_trace {
    struct trace_file_writer *w;
    uint64_t seq;
    char path[512];
};

static char fixture_dir[256];

static void fixture_cleanup(void)
{
    if (fixture_dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fixture_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", fixture_dir);
    }
}

/* A path in the test's scratch directory. */
static inline const char *fixture_path(const char *name, char *buf, size_t len)
{
    if (!fixture_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fixture_dir, sizeof fixture_dir, "%s/fragscope-replay-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(fixture_dir)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(fixture_cleanup);
    }
    snprintf(buf, len, "%s/%s", fixture_dir, name);
    return buf;
}

/* Opens a trace whose heap starts at heap_start, with the given malloc environment. */
static inline int fixture_open(struct fixture_trace *t, const char *name, uint64_t heap_start,
                               const char *malloc_env, uint32_t cpus)
{
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.version = TRACE_VERSION;
    h.pid = 4242;
    h.ppid = 1;
    h.heap_start = heap_start;
    h.page_size = 4096;
    h.cpu_count = cpus;
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    snprintf(h.exe, sizeof h.exe, "/synthetic/test");
    h.argv = (char *)"test";
    h.malloc_env = (char *)(malloc_env ? malloc_env : "");
    char err[512];
    fixture_path(name, t->path, sizeof t->path);
    t->seq = 0;
    t->w = trace_file_writer_open(t->path, 1, &h, err, sizeof err);
    if (!t->w) {
        fprintf(stderr, "fixture: %s\n", err);
        return -1;
    }
    return 0;
}

static inline void fixture_event(struct fixture_trace *t, struct trace_event ev)
{
    ev.seq = t->seq++;
    if (trace_file_writer_event(t->w, &ev) != 0) {
        fprintf(stderr, "fixture: writing event %llu failed\n", (unsigned long long)ev.seq);
        exit(1);
    }
}

static inline void fixture_malloc(struct fixture_trace *t, uint32_t thread, uint64_t size,
                                  uint64_t ptr)
{
    fixture_event(t, (struct trace_event){.kind = TRACE_EV_MALLOC, .thread = thread, .size = size,
                                          .ptr = ptr, .chunk_flags = TRACE_CHUNK_PREV_INUSE});
}

static inline void fixture_free(struct fixture_trace *t, uint32_t thread, uint64_t ptr,
                                uint32_t stack_id)
{
    fixture_event(t, (struct trace_event){.kind = TRACE_EV_FREE, .thread = thread, .ptr = ptr,
                                          .stack_id = stack_id});
}

static inline int fixture_close(struct fixture_trace *t)
{
    char err[512];
    if (trace_file_writer_close(t->w, err, sizeof err) != 0) {
        fprintf(stderr, "fixture: %s\n", err);
        return -1;
    }
    t->w = NULL;
    return 0;
}

#endif
