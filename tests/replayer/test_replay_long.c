/* test_replay_long.c: a long trace with a small live set replays in memory that follows the live
 * set, not the trace length; so does `fragscope replay --native`.
 *
 * A child process writes a 10-million-event trace (two threads; malloc, calloc, realloc and free
 * over 64 live slots per thread, so at most 128 blocks are live at any time). The parent replays
 * it in summary mode and checks the replay reached the end with the right counts while its peak
 * RSS (getrusage) grew by less than 32 MiB: the trace is streamed, the pointer map holds the live
 * set, the model's simulated space holds the few pages the heap uses. The same kind of trace,
 * 500,000 events long (760,000 ops, which a runner keeping every op and its 144-byte result
 * held as 130 MiB), replays with --native in a child whose peak RSS stays under 48 MiB. nosan:
 * ASan's shadow memory and quarantine would measure themselves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "replay.h"
#include "trace_fixture.h"

#define EVENTS 10000000ull
#define NATIVE_EVENTS 500000ull
#define SLOTS 64

struct long_counts {
    uint64_t events, mallocs, frees, reallocs, callocs;
};

/* The trace of `events` events: written to t, or only counted when t is NULL. */
static void long_trace(struct fixture_trace *t, uint64_t events, struct long_counts *c)
{
    memset(c, 0, sizeof *c);
    uint64_t live[2][SLOTS] = {{0}};
    uint64_t rng = 12345;
    if (t)
        fixture_event(t, (struct trace_event){.kind = TRACE_EV_THREAD_START, .thread = 1});
    c->events = 1;
    for (uint64_t i = 0; c->events < events - 1; i++) {
        uint32_t th = (uint32_t)(i & 1);
        unsigned slot = (unsigned)((i >> 1) % SLOTS);
        /* Distinct addresses per thread and slot, reused as the slot is refilled. */
        uint64_t addr = (th ? 0x7ffff0000b70ull : 0x5555555592a0ull) + (uint64_t)slot * 0x400;
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t size = 16 + (rng >> 56);
        if (live[th][slot] && (rng >> 20) % 4 == 0) {
            if (t)
                fixture_event(t, (struct trace_event){.kind = TRACE_EV_REALLOC, .thread = th,
                                                       .old_ptr = addr, .size = size + 100,
                                                       .ptr = addr, .chunk_flags = 1});
            c->reallocs++;
            c->events++;
            continue;
        }
        if (live[th][slot]) {
            if (t)
                fixture_free(t, th, addr, 0);
            c->frees++;
            c->events++;
        }
        if ((rng >> 24) % 8 == 0) {
            if (t)
                fixture_event(t, (struct trace_event){.kind = TRACE_EV_CALLOC, .thread = th,
                                                       .nmemb = 2, .size = size, .ptr = addr,
                                                       .chunk_flags = 1});
            c->callocs++;
        } else {
            if (t)
                fixture_malloc(t, th, size, addr);
            c->mallocs++;
        }
        c->events++;
        live[th][slot] = 1;
    }
}

/* Writes the trace `name` of `events` events in a child (the writer buffers and compresses:
 * that stays out of the parent's measurements). */
static void write_long_trace(const char *name, uint64_t events, char *path, size_t len)
{
    fixture_path(name, path, len);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct fixture_trace t;
        struct long_counts c;
        if (fixture_open(&t, name, 0x555555559000ull, "", 2) < 0)
            _exit(1);
        long_trace(&t, events, &c);
        _exit(fixture_close(&t) < 0 ? 1 : 0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_long_trace_small_memory(void **state)
{
    (void)state;
    char path[512];
    write_long_trace("long.fstrace", EVENTS, path, sizeof path);
    struct long_counts want;
    long_trace(NULL, EVENTS, &want);

    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = path;
    struct replay_summary s;
    char err[512];
    assert_int_equal(replay_run(&o, NULL, NULL, &s, NULL, err, sizeof err), 0);
    getrusage(RUSAGE_SELF, &after);

    assert_true(s.completed);
    assert_true(want.events >= EVENTS - 1);
    assert_int_equal(s.steps, want.events);
    assert_int_equal(s.events_by_kind[TRACE_EV_MALLOC], want.mallocs);
    assert_int_equal(s.events_by_kind[TRACE_EV_CALLOC], want.callocs);
    assert_int_equal(s.events_by_kind[TRACE_EV_REALLOC], want.reallocs);
    assert_int_equal(s.events_by_kind[TRACE_EV_FREE], want.frees);
    assert_int_equal(s.unknown_frees + s.double_frees + s.missed_frees + s.corrupt_calls, 0);
    assert_true(s.peak_live_bytes < 2 * SLOTS * (2 * 271 + 100));
    long grew_kib = after.ru_maxrss - before.ru_maxrss;
    fprintf(stderr, "10M events: %.2f s, peak RSS %ld KiB (grew %ld KiB), pointer map %llu KiB\n",
            s.seconds, after.ru_maxrss, grew_kib, (unsigned long long)s.max_host_bytes / 1024);
    assert_true(grew_kib < 32 * 1024);
    assert_true(s.max_host_bytes < 1024 * 1024);
}

/* A value from `fragscope replay --native`'s output: the number after `label` (MiB when the
 * text after it says so). */
static double output_value(const char *out, const char *label)
{
    const char *p = strstr(out, label);
    assert_non_null(p);
    return strtod(p + strlen(label), NULL);
}

static void test_native_long_trace_small_memory(void **state)
{
    (void)state;
    char path[512];
    write_long_trace("native.fstrace", NATIVE_EVENTS, path, sizeof path);
    struct long_counts want;
    long_trace(NULL, NATIVE_EVENTS, &want);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' replay --native '%s' 2>&1", FRAGSCOPE_BIN, path);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    static char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    int st = pclose(f);
    fprintf(stderr, "%s", out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Every event made its op (the 64 slots per thread are written as they are allocated). */
    double ops = output_value(out, "ops            ");
    double events = output_value(out, " from ");
    assert_int_equal((uint64_t)events, want.events);
    assert_true(ops > (double)(want.mallocs + want.callocs + want.reallocs + want.frees));
    const char *rss = strstr(out, "peak RSS       ");
    assert_non_null(rss);
    assert_non_null(strstr(rss, "MiB"));
    assert_true(output_value(out, "peak RSS       ") < 48.0);
    assert_non_null(strstr(out, "mallinfo2      arena "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_trace_small_memory),
        cmocka_unit_test(test_native_long_trace_small_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
