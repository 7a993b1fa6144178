/* test_replay.c: the replay loop on synthetic traces.
 *
 * Traces written with the tracer's file writer: frees of pointers the trace never allocated,
 * double frees and reallocs of unknown pointers must be counted (by call site) and skipped, the
 * replay must reach the end; --until must stop at its step; a trace cut short must replay what
 * is readable and say so; a missing file is a clear error. The live-byte figures are checked
 * against the request sizes written into the trace. The call site of unknown frees is named by
 * function and file:line when asked (symbolize): the trace's stack points into this test
 * program (built with debug information) under a frame in libc, which the site skips. Every
 * chunk the model hands out or takes back is visible to the step callback, the untraced frees
 * and discarded blocks included: a tracker fed only by the steps matches the model's in-use
 * chunks (ptmalloc_walk) after every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <link.h>
#include <limits.h>
#include <unistd.h>
#include "replay.h"
#include "trace_fixture.h"

#define HEAP 0x555555559000ull
#define P(n) (HEAP + 0x2a0 + (uint64_t)(n) * 0x40)

struct steps_seen {
    uint64_t n;
    uint64_t live[64];
    int skipped[64];
    uint64_t replayed[64];
};

static int record_step(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    (void)pm;
    struct steps_seen *seen = ctx;
    assert_int_equal(s->step, seen->n + 1);
    if (s->step < 64) {
        seen->live[s->step] = s->live_bytes;
        seen->skipped[s->step] = s->skipped;
        seen->replayed[s->step] = s->replayed_ptr;
    }
    seen->n++;
    return 0;
}

/* The trace of test_unknown_and_double_frees: 13 events. */
static void write_bad_frees(struct fixture_trace *t)
{
    static const uint64_t frames7[] = {0x401234, 0x401500};
    static const uint64_t frames9[] = {0x7f0000002000};
    struct trace_module mod;
    memset(&mod, 0, sizeof mod);
    mod.load_address = 0x400000;
    mod.size = 0x10000;
    snprintf(mod.path, sizeof mod.path, "/usr/bin/synthetic");
    assert_int_equal(trace_file_writer_module(t->w, 0, &mod), 0);
    assert_int_equal(trace_file_writer_stack(t->w, 0, 7, frames7, 2), 0);
    assert_int_equal(trace_file_writer_stack(t->w, 0, 9, frames9, 1), 0);

    fixture_malloc(t, 0, 24, P(1));                                  /* 1 */
    fixture_malloc(t, 0, 40, P(2));                                  /* 2 */
    fixture_free(t, 0, P(1), 0);                                     /* 3 */
    fixture_free(t, 0, P(1), 0);                                     /* 4: double free */
    fixture_free(t, 0, 0x7f00deadbe00ull, 7);                        /* 5: unknown */
    fixture_free(t, 0, 0x7f00deadbe00ull, 7);                        /* 6: unknown */
    fixture_free(t, 0, 0x7f00deadbf00ull, 9);                        /* 7: unknown */
    fixture_event(t, (struct trace_event){.kind = TRACE_EV_REALLOC, .old_ptr = 0x7f00deadc000ull,
                                          .size = 100, .ptr = P(3),
                                          .chunk_flags = TRACE_CHUNK_PREV_INUSE}); /* 8 */
    fixture_free(t, 0, 0, 0);                                        /* 9: free(NULL) */
    fixture_event(t, (struct trace_event){.kind = TRACE_EV_CALLOC, .nmemb = 3, .size = 8,
                                          .ptr = P(4), .chunk_flags = TRACE_CHUNK_PREV_INUSE}); /* 10 */
    fixture_free(t, 0, P(2), 0);                                     /* 11 */
    fixture_free(t, 0, P(3), 0);                                     /* 12 */
    fixture_free(t, 0, P(4), 0);                                     /* 13 */
}

static void test_unknown_and_double_frees(void **state)
{
    (void)state;
    struct fixture_trace t;
    assert_int_equal(fixture_open(&t, "bad-frees.fstrace", HEAP, "", 2), 0);
    write_bad_frees(&t);
    assert_int_equal(fixture_close(&t), 0);

    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = t.path;
    struct replay_summary s;
    struct steps_seen seen;
    memset(&seen, 0, sizeof seen);
    char err[512];
    char *rep = NULL;
    size_t replen = 0;
    FILE *report = open_memstream(&rep, &replen);
    assert_int_equal(replay_run(&o, record_step, &seen, &s, report, err, sizeof err), 0);
    fclose(report);

    assert_int_equal(seen.n, 13);
    assert_int_equal(s.steps, 13);
    assert_true(s.completed);
    assert_int_equal(s.unknown_frees, 3);
    assert_int_equal(s.double_frees, 1);
    assert_int_equal(s.unknown_reallocs, 1);
    assert_int_equal(s.corrupt_calls, 0);
    assert_int_equal(s.events_by_kind[TRACE_EV_MALLOC], 2);
    assert_int_equal(s.events_by_kind[TRACE_EV_FREE], 9);
    assert_int_equal(s.events_by_kind[TRACE_EV_REALLOC], 1);
    assert_int_equal(s.events_by_kind[TRACE_EV_CALLOC], 1);
    /* Live bytes follow the request sizes. */
    assert_int_equal(seen.live[2], 64);
    assert_int_equal(seen.live[3], 40);
    assert_int_equal(seen.live[8], 140);
    assert_int_equal(seen.live[10], 164);
    assert_int_equal(seen.live[13], 0);
    assert_int_equal(s.peak_live_bytes, 164);
    assert_int_equal(s.peak_live_step, 10);
    assert_int_equal(s.final_live_bytes, 0);
    for (int i = 4; i <= 7; i++)
        assert_true(seen.skipped[i]);
    assert_false(seen.skipped[3]);
    assert_false(seen.skipped[8]);
    assert_true(seen.replayed[8] != 0);   /* the unknown realloc was replayed as a malloc */
    /* Call sites, most frequent first, resolved through the module record. */
    assert_int_equal(s.unknown_free_site_count, 2);
    assert_int_equal(s.unknown_free_sites[0].stack_id, 7);
    assert_int_equal(s.unknown_free_sites[0].count, 2);
    assert_non_null(strstr(s.unknown_free_sites[0].where, "synthetic+0x1234"));
    assert_int_equal(s.unknown_free_sites[1].stack_id, 9);
    assert_int_equal(s.unknown_free_sites[1].count, 1);
    /* The double free is reported with its step and the step of the first free. */
    assert_non_null(rep);
    assert_non_null(strstr(rep, "step 4"));
    assert_non_null(strstr(rep, "double free"));
    assert_non_null(strstr(rep, "freed at step 3"));
    free(rep);

    /* The printed summary carries the counts. */
    char *sum = NULL;
    size_t sumlen = 0;
    FILE *f = open_memstream(&sum, &sumlen);
    replay_print_summary(f, &o, &s);
    fclose(f);
    assert_non_null(strstr(sum, "3 frees of unknown pointers, 1 double frees"));
    assert_non_null(strstr(sum, "status         complete"));
    free(sum);
}

static void test_until(void **state)
{
    (void)state;
    struct fixture_trace t;
    assert_int_equal(fixture_open(&t, "until.fstrace", HEAP, "", 2), 0);
    write_bad_frees(&t);
    assert_int_equal(fixture_close(&t), 0);

    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = t.path;
    o.until_step = 5;
    struct replay_summary s;
    struct steps_seen seen;
    memset(&seen, 0, sizeof seen);
    char err[512];
    assert_int_equal(replay_run(&o, record_step, &seen, &s, NULL, err, sizeof err), 0);
    assert_int_equal(seen.n, 5);
    assert_int_equal(s.steps, 5);
    assert_int_equal(s.until_step, 5);
    assert_false(s.completed);
    assert_int_equal(s.unknown_frees, 1);
    assert_int_equal(s.double_frees, 1);
    assert_int_equal(s.final_live_bytes, 40);
}

/* A trace whose writer died (no end marker, last block missing) replays what is readable. */
static void test_cut_short(void **state)
{
    (void)state;
    struct fixture_trace t;
    assert_int_equal(fixture_open(&t, "cut.fstrace", HEAP, "", 2), 0);
    for (int i = 0; i < 100; i++) {
        fixture_malloc(&t, 0, 16 + (uint64_t)i, P(i));
        if (i == 49)
            assert_int_equal(trace_file_writer_flush(t.w), 0);
    }
    trace_file_writer_abandon(t.w);

    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = t.path;
    struct replay_summary s;
    char err[512];
    assert_int_equal(replay_run(&o, NULL, NULL, &s, NULL, err, sizeof err), 0);
    assert_false(s.completed);
    assert_false(s.reader.clean_end);
    assert_int_equal(s.steps, 50);
    char *sum = NULL;
    size_t sumlen = 0;
    FILE *f = open_memstream(&sum, &sumlen);
    replay_print_summary(f, &o, &s);
    fclose(f);
    assert_non_null(strstr(sum, "INCOMPLETE: the trace ends early"));
    free(sum);
}

static void test_missing_file(void **state)
{
    (void)state;
    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = "/nonexistent/dir/x.fstrace";
    struct replay_summary s;
    char err[512] = "";
    assert_int_equal(replay_run(&o, NULL, NULL, &s, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/dir/x.fstrace"));
}

static void test_bad_override(void **state)
{
    (void)state;
    struct fixture_trace t;
    assert_int_equal(fixture_open(&t, "set.fstrace", HEAP, "", 2), 0);
    fixture_malloc(&t, 0, 10, P(0));
    assert_int_equal(fixture_close(&t), 0);
    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = t.path;
    o.set[o.set_count++] = "no_such_setting=3";
    struct replay_summary s;
    char err[512] = "";
    assert_int_equal(replay_run(&o, NULL, NULL, &s, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "no_such_setting"));
}

/* Steps stop when the callback asks. */
static int stop_at_3(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    (void)ctx;
    (void)pm;
    return s->step == 3;
}

static void test_callback_stops(void **state)
{
    (void)state;
    struct fixture_trace t;
    assert_int_equal(fixture_open(&t, "stop.fstrace", HEAP, "", 2), 0);
    for (int i = 0; i < 10; i++)
        fixture_malloc(&t, 0, 32, P(i));
    assert_int_equal(fixture_close(&t), 0);
    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = t.path;
    struct replay_summary s;
    char err[512];
    assert_int_equal(replay_run(&o, stop_at_3, NULL, &s, NULL, err, sizeof err), 0);
    assert_int_equal(s.steps, 3);
    assert_false(s.completed);
}

/* The function the synthetic stack calls free from (its address is taken, so it exists). */
__attribute__((noinline)) int unknown_free_caller(int x)
{
    __asm__ volatile("" : "+r"(x));
    return x * 3 + 1;
}

static int first_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uint64_t *out = data;
    out[0] = info->dlpi_addr;
    uint64_t hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD &&
            info->dlpi_phdr[i].p_vaddr + info->dlpi_phdr[i].p_memsz > hi)
            hi = info->dlpi_phdr[i].p_vaddr + info->dlpi_phdr[i].p_memsz;
    out[1] = hi;
    return 1;   /* the executable is the first object */
}

static void test_unknown_free_site_symbolised(void **state)
{
    (void)state;
    uint64_t exe[2];
    dl_iterate_phdr(first_object, exe);
    struct trace_module me, libc;
    memset(&me, 0, sizeof me);
    memset(&libc, 0, sizeof libc);
    me.load_address = exe[0];
    me.size = exe[1];
    ssize_t n = readlink("/proc/self/exe", me.path, sizeof me.path - 1);
    assert_true(n > 0);
    me.path[n] = 0;
    libc.load_address = 0x7f0000000000ull;
    libc.size = 0x200000;
    snprintf(libc.path, sizeof libc.path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
    /* A return address inside unknown_free_caller, under a frame in "libc". */
    uint64_t ret = (uint64_t)(uintptr_t)&unknown_free_caller + 4;
    const uint64_t frames[] = {0x7f0000001234ull, ret};

    struct fixture_trace t;
    assert_int_equal(fixture_open(&t, "symbols.fstrace", HEAP, "", 2), 0);
    assert_int_equal(trace_file_writer_module(t.w, 0, &libc), 0);
    assert_int_equal(trace_file_writer_module(t.w, 0, &me), 0);
    assert_int_equal(trace_file_writer_stack(t.w, 0, 3, frames, 2), 0);
    fixture_malloc(&t, 0, 24, P(1));
    fixture_free(&t, 0, 0x7f00deadbe00ull, 3);
    fixture_free(&t, 0, P(1), 0);
    assert_int_equal(fixture_close(&t), 0);

    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = t.path;
    struct replay_summary s;
    char err[512];
    /* Without symbolize: module+offset of the frame outside libc, no names. */
    assert_int_equal(replay_run(&o, NULL, NULL, &s, NULL, err, sizeof err), 0);
    assert_int_equal(s.unknown_free_site_count, 1);
    char want[160];
    const char *base = strrchr(me.path, '/');
    snprintf(want, sizeof want, "%s+0x%llx", base + 1, (unsigned long long)(ret - exe[0]));
    assert_string_equal(s.unknown_free_sites[0].where, want);
    assert_string_equal(s.unknown_free_sites[0].function, "");
    assert_string_equal(s.unknown_free_sites[0].location, "");

    o.symbolize = 1;
    assert_int_equal(replay_run(&o, NULL, NULL, &s, NULL, err, sizeof err), 0);
    assert_int_equal(s.unknown_free_site_count, 1);
    assert_string_equal(s.unknown_free_sites[0].where, want);
    if (access("/usr/bin/addr2line", X_OK) != 0)
        skip();
    assert_string_equal(s.unknown_free_sites[0].function, "unknown_free_caller");
    assert_non_null(strstr(s.unknown_free_sites[0].location, "test_replay.c:"));
    /* The summary prints it. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    replay_print_summary(f, &o, &s);
    fclose(f);
    assert_non_null(strstr(text, "unknown frees: 1 from stack 3 at unknown_free_caller ("));
    assert_non_null(strstr(text, want));
    free(text);
}

/* The in-use chunks as the step callback sees them (user pointers). */
struct tracker {
    uint64_t live[64];
    unsigned n;
    uint64_t steps, untraced, discarded;
    uint64_t replayed[32], implied[32];
    unsigned did[32];
};

static void tracker_add(struct tracker *t, uint64_t p)
{
    assert_true(t->n < 64);
    t->live[t->n++] = p;
}

static void tracker_del(struct tracker *t, uint64_t p)
{
    for (unsigned i = 0; i < t->n; i++)
        if (t->live[i] == p) {
            t->live[i] = t->live[--t->n];
            return;
        }
    fail_msg("step %llu: chunk 0x%llx taken back but never handed out",
             (unsigned long long)t->steps, (unsigned long long)p);
}

struct walk_check {
    const struct tracker *t;
    unsigned seen;
};

static int check_chunk(void *ctx, const struct ptmalloc_chunk *c)
{
    struct walk_check *w = ctx;
    if ((c->state != PTM_CHUNK_IN_USE && c->state != PTM_CHUNK_MMAPPED) || c->size == 0x290)
        return 0;   /* free chunks, and the tcache's own block */
    for (unsigned i = 0; i < w->t->n; i++)
        if (w->t->live[i] == c->address + 16) {
            w->seen++;
            return 0;
        }
    fail_msg("step %llu: the model has chunk 0x%llx in use, the steps never said so",
             (unsigned long long)w->t->steps, (unsigned long long)c->address);
    return 1;
}

static int track_step(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    struct tracker *t = ctx;
    const struct trace_event *ev = s->event;
    t->steps = s->step;
    if (s->step < 32) {
        t->replayed[s->step] = s->replayed_ptr;
        t->implied[s->step] = s->implied_free_ptr;
        t->did[s->step] = s->did;
    }
    if (s->did & REPLAY_DID_UNTRACED_FREE) {
        tracker_del(t, s->implied_free_ptr);
        t->untraced++;
    }
    if (s->did & REPLAY_DID_DISCARDED)
        t->discarded++;   /* handed out and taken back within the step */
    if (!s->skipped) {
        if (s->replayed_old_ptr)
            tracker_del(t, s->replayed_old_ptr);
        if (s->replayed_ptr && ev->kind != TRACE_EV_FREE)
            tracker_add(t, s->replayed_ptr);
    }
    struct walk_check w = {t, 0};
    ptmalloc_walk(pm, -1, check_chunk, &w);
    assert_int_equal(w.seen, t->n);
    return 0;
}

static void test_every_model_chunk_visible(void **state)
{
    (void)state;
    struct fixture_trace t;
    assert_int_equal(fixture_open(&t, "implied.fstrace", HEAP, "", 2), 0);
    fixture_malloc(&t, 0, 24, P(1));                                          /* 1 */
    fixture_malloc(&t, 0, 24, P(1));                                          /* 2: untraced */
    fixture_malloc(&t, 0, 100, P(2));                                         /* 3 */
    fixture_event(&t, (struct trace_event){.kind = TRACE_EV_REALLOC, .old_ptr = P(2),
                                           .size = 200, .ptr = P(1),
                                           .chunk_flags = TRACE_CHUNK_PREV_INUSE}); /* 4 */
    fixture_event(&t, (struct trace_event){.kind = TRACE_EV_MALLOC, .size = 5000, .ptr = 0,
                                           .err = 12});                       /* 5: failed */
    fixture_event(&t, (struct trace_event){.kind = TRACE_EV_CALLOC, .nmemb = 3, .size = 8,
                                           .ptr = P(3),
                                           .chunk_flags = TRACE_CHUNK_PREV_INUSE}); /* 6 */
    fixture_free(&t, 0, P(3), 0);                                             /* 7 */
    fixture_free(&t, 0, P(3), 0);                                             /* 8: double */
    fixture_free(&t, 0, 0x7f00deadbe00ull, 0);                                /* 9: unknown */
    fixture_malloc(&t, 0, 64, P(4));                                          /* 10 */
    fixture_event(&t, (struct trace_event){.kind = TRACE_EV_MEMALIGN, .alignment = 64,
                                           .size = 100, .ptr = P(4),
                                           .chunk_flags = TRACE_CHUNK_PREV_INUSE}); /* 11 */
    fixture_malloc(&t, 0, 300000, 0x7ffff7a00010ull);                         /* 12: mmapped */
    fixture_malloc(&t, 0, 32, 0x7ffff7a00010ull);                             /* 13: untraced */
    fixture_free(&t, 0, P(1), 0);                                             /* 14 */
    assert_int_equal(fixture_close(&t), 0);

    struct replay_options o;
    replay_options_default(&o);
    o.trace_path = t.path;
    struct replay_summary s;
    struct tracker tr;
    memset(&tr, 0, sizeof tr);
    char err[512];
    assert_int_equal(replay_run(&o, track_step, &tr, &s, NULL, err, sizeof err), 0);
    assert_true(s.completed);
    assert_int_equal(s.missed_frees, 4);
    assert_int_equal(tr.untraced, 4);
    assert_int_equal(tr.discarded, 1);
    assert_int_equal(s.failed_calls, 1);
    /* Step 2: the old chunk freed first, so the tcache hands the same chunk out again, as
     * glibc did for the program. */
    assert_true(tr.did[2] & REPLAY_DID_UNTRACED_FREE);
    assert_int_equal(tr.implied[2], tr.replayed[1]);
    assert_int_equal(tr.replayed[2], tr.replayed[1]);
    assert_false(tr.did[3] & (REPLAY_DID_UNTRACED_FREE | REPLAY_DID_DISCARDED));
    assert_int_equal(tr.implied[4], tr.replayed[2]);
    assert_true(tr.did[5] & REPLAY_DID_DISCARDED);
    assert_int_equal(tr.replayed[5], 0);
    assert_int_not_equal(tr.implied[5], 0);
    assert_int_equal(tr.implied[11], tr.replayed[10]);
    assert_true(tr.did[13] & REPLAY_DID_UNTRACED_FREE);
    assert_true(tr.did[13] & REPLAY_DID_MUNMAP);
    assert_int_equal(tr.implied[13], tr.replayed[12]);
    /* Live bytes: the untraced frees took their blocks' bytes out. */
    assert_int_equal(s.final_live_bytes, 100 + 32);
    /* Two chunks left in use: the memalign's and the last malloc's. */
    assert_int_equal(tr.n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_and_double_frees),
        cmocka_unit_test(test_until),
        cmocka_unit_test(test_cut_short),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_bad_override),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_unknown_free_site_symbolised),
        cmocka_unit_test(test_every_model_chunk_visible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
