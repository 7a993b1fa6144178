/* test_replay_verify.c: --verify's plumbing, on traces whose "recording" is the model itself.
 *
 * A generator drives the allocator model directly with a pseudo-random program (two threads,
 * small, large and mmapped blocks, realloc, calloc, memalign, a mallopt and a malloc_trim) and
 * writes what the model returned as a trace, with mallinfo2 / break / residency samples. Replaying
 * that trace must then match 100%, samples included; changing one recorded pointer must give
 * exactly one divergence at its step, described with the bins; the trace's GLIBC_TUNABLES must
 * be applied (a --set that contradicts it must diverge); --arenas recorded must pin the second
 * thread to the arena it used. These check the replayer's normalisation and settings, not the
 * model's fidelity (the real-program tests do that).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "replay.h"
#include "trace_fixture.h"

#define HEAP 0x5600a0b11000ull     /* any page-aligned break: the replay must take it */
#define NOPS 4000
#define LIVE_MAX 300

struct gen {
    struct ptmalloc *pm;
    struct fixture_trace t;
    uint64_t live[2][LIVE_MAX], live_size[2][LIVE_MAX];
    unsigned nlive[2];
    uint64_t rng;
    uint64_t corrupt_step;     /* write this allocation's pointer off by 0x10 (0 = none) */
    uint64_t alias_real;       /* ... and call it so until it is freed */
    uint64_t alloc_events;
};

static uint64_t gen_rand(struct gen *g)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}

static uint8_t flags_of(struct gen *g, uint64_t p)
{
    return p ? (uint8_t)(sysmem_load(ptmalloc_sysmem(g->pm), p - 8) & 7) : 0;
}

static void emit_alloc(struct gen *g, struct trace_event ev, uint64_t req)
{
    ev.chunk_flags = flags_of(g, ev.ptr);
    if (ev.ptr && req)
        ptmalloc_touch(g->pm, ev.ptr, req);
    g->alloc_events++;
    if (g->t.seq + 1 == g->corrupt_step && ev.ptr) {
        g->alias_real = ev.ptr;
        ev.ptr += 0x10;
    }
    fixture_event(&g->t, ev);
}

/* The pointer as the trace names it. */
static uint64_t rec(struct gen *g, uint64_t p, int consumed)
{
    if (!p || p != g->alias_real)
        return p;
    if (consumed)
        g->alias_real = 0;
    return p + 0x10;
}

static void keep(struct gen *g, uint32_t th, uint64_t p, uint64_t size)
{
    if (p && g->nlive[th] < LIVE_MAX) {
        g->live[th][g->nlive[th]] = p;
        g->live_size[th][g->nlive[th]++] = size;
    } else if (p) {
        ptmalloc_free(g->pm, th, p);
        fixture_event(&g->t, (struct trace_event){.kind = TRACE_EV_FREE, .thread = th,
                                                   .ptr = rec(g, p, 1)});
    }
}

static void sample(struct gen *g)
{
    struct ptmalloc_mallinfo2 mi;
    ptmalloc_mallinfo2(g->pm, &mi);
    struct sysmem *m = ptmalloc_sysmem(g->pm);
    struct trace_event ev = {.kind = TRACE_EV_SAMPLE};
    ev.sample.arena = mi.arena;
    ev.sample.ordblks = mi.ordblks;
    ev.sample.smblks = mi.smblks;
    ev.sample.hblks = mi.hblks;
    ev.sample.hblkhd = mi.hblkhd;
    ev.sample.usmblks = mi.usmblks;
    ev.sample.fsmblks = mi.fsmblks;
    ev.sample.uordblks = mi.uordblks;
    ev.sample.fordblks = mi.fordblks;
    ev.sample.keepcost = mi.keepcost;
    ev.sample.brk = sysmem_brk_current(m);
    ev.sample.heap_resident_pages = sysmem_resident_pages(m, sysmem_brk_start(m), ev.sample.brk);
    fixture_event(&g->t, ev);
}

static uint64_t pick_size(struct gen *g)
{
    uint64_t r = gen_rand(g) % 100;
    if (r < 60)
        return 1 + gen_rand(g) % 200;
    if (r < 90)
        return 200 + gen_rand(g) % 3000;
    if (r < 98)
        return 4000 + gen_rand(g) % 60000;
    return 140000 + gen_rand(g) % 300000;   /* mmapped */
}

/* Writes the generated trace; settings = what the "recorded" program ran with. */
static void generate(const char *name, const char *env, uint64_t corrupt_step, char *path,
                     size_t pathlen, uint64_t *alloc_events)
{
    struct gen *g = calloc(1, sizeof *g);
    assert_non_null(g);
    g->rng = 0x9e3779b97f4a7c15ull;
    g->corrupt_step = corrupt_step;
    struct ptmalloc_settings set;
    ptmalloc_settings_default(&set);
    set.cpu_count = 4;
    char err[256];
    if (env && !strncmp(env, "GLIBC_TUNABLES=", 15))
        assert_int_equal(ptmalloc_settings_tunables(&set, env + 15, err, sizeof err), 0);
    struct sysmem_config cfg;
    sysmem_config_default(&cfg);
    cfg.brk_start = HEAP;
    g->pm = ptmalloc_new(&set, sysmem_new(&cfg));
    assert_non_null(g->pm);
    assert_int_equal(fixture_open(&g->t, name, HEAP, env, 4), 0);

    for (unsigned i = 0; i < NOPS; i++) {
        uint32_t th = i < NOPS / 4 || i >= 3 * NOPS / 4 ? 0 : 1;
        if (i == NOPS / 4) {
            ptmalloc_thread_start(g->pm, 1);
            fixture_event(&g->t, (struct trace_event){.kind = TRACE_EV_THREAD_START, .thread = 1,
                                                       .os_tid = 1001, .value = 0});
        }
        if (i == 3 * NOPS / 4) {
            /* Thread 1 frees what it holds, then exits (its tcache goes back to its arena). */
            while (g->nlive[1]) {
                uint64_t p = g->live[1][--g->nlive[1]];
                ptmalloc_free(g->pm, 1, p);
                fixture_event(&g->t, (struct trace_event){.kind = TRACE_EV_FREE, .thread = 1,
                                                           .ptr = rec(g, p, 1)});
            }
            ptmalloc_thread_exit(g->pm, 1);
            fixture_event(&g->t, (struct trace_event){.kind = TRACE_EV_THREAD_EXIT, .thread = 1});
        }
        if (i == NOPS / 2) {
            int rv = ptmalloc_mallopt(g->pm, th, PTM_M_TOP_PAD, 65536);
            fixture_event(&g->t, (struct trace_event){.kind = TRACE_EV_MALLOPT, .thread = th,
                                                       .param = PTM_M_TOP_PAD, .value = 65536,
                                                       .result = rv});
        }
        if (i == 7 * NOPS / 8) {
            int rv = ptmalloc_trim(g->pm, th, 0);
            fixture_event(&g->t, (struct trace_event){.kind = TRACE_EV_MALLOC_TRIM, .thread = th,
                                                       .size = 0, .result = rv});
        }
        if (i % 250 == 0)
            sample(g);
        uint64_t r = gen_rand(g) % 100;
        unsigned n = g->nlive[th];
        if (n && r < 40) {
            unsigned k = (unsigned)(gen_rand(g) % n);
            uint64_t p = g->live[th][k];
            g->live[th][k] = g->live[th][n - 1];
            g->live_size[th][k] = g->live_size[th][n - 1];
            g->nlive[th]--;
            ptmalloc_free(g->pm, th, p);
            fixture_event(&g->t, (struct trace_event){.kind = TRACE_EV_FREE, .thread = th,
                                                       .ptr = rec(g, p, 1)});
        } else if (n && r < 50) {
            unsigned k = (unsigned)(gen_rand(g) % n);
            uint64_t p = g->live[th][k], old = g->live_size[th][k], size = pick_size(g);
            struct ptmalloc_result res = ptmalloc_realloc(g->pm, th, p, size);
            assert_int_equal(res.status, PTM_OK);
            struct trace_event ev = {.kind = TRACE_EV_REALLOC, .thread = th,
                                     .old_ptr = rec(g, p, 1), .size = size, .ptr = res.ptr};
            g->live[th][k] = g->live[th][n - 1];
            g->live_size[th][k] = g->live_size[th][n - 1];
            g->nlive[th]--;
            ev.chunk_flags = flags_of(g, res.ptr);
            if (size > old)
                ptmalloc_touch(g->pm, res.ptr + old, size - old);
            g->alloc_events++;
            if (g->t.seq + 1 == g->corrupt_step) {
                g->alias_real = ev.ptr;
                ev.ptr += 0x10;
            }
            fixture_event(&g->t, ev);
            keep(g, th, res.ptr, size);
        } else if (r < 56) {
            uint64_t nm = 1 + gen_rand(g) % 20, sz = 1 + gen_rand(g) % 100;
            struct ptmalloc_result res = ptmalloc_calloc(g->pm, th, nm, sz);
            emit_alloc(g, (struct trace_event){.kind = TRACE_EV_CALLOC, .thread = th, .nmemb = nm,
                                               .size = sz, .ptr = res.ptr}, nm * sz);
            keep(g, th, res.ptr, nm * sz);
        } else if (r < 59) {
            uint64_t al = 32u << (gen_rand(g) % 6), sz = pick_size(g);
            struct ptmalloc_result res = ptmalloc_memalign(g->pm, th, al, sz);
            emit_alloc(g, (struct trace_event){.kind = TRACE_EV_MEMALIGN, .thread = th,
                                               .alignment = al, .size = sz, .ptr = res.ptr}, sz);
            keep(g, th, res.ptr, sz);
        } else {
            uint64_t sz = pick_size(g);
            struct ptmalloc_result res = ptmalloc_malloc(g->pm, th, sz);
            emit_alloc(g, (struct trace_event){.kind = TRACE_EV_MALLOC, .thread = th, .size = sz,
                                               .ptr = res.ptr}, sz);
            keep(g, th, res.ptr, sz);
        }
    }
    sample(g);
    assert_int_equal(fixture_close(&g->t), 0);
    snprintf(path, pathlen, "%s", g->t.path);
    if (alloc_events)
        *alloc_events = g->alloc_events;
    ptmalloc_destroy(g->pm);
    free(g);
}

static void replay_verify(const char *path, struct replay_options *o, struct replay_summary *s,
                          char **report)
{
    o->trace_path = path;
    if (o->verify == REPLAY_VERIFY_OFF)
        o->verify = REPLAY_VERIFY_ON;
    size_t len = 0;
    FILE *f = open_memstream(report, &len);
    char err[512];
    int rc = replay_run(o, NULL, NULL, s, f, err, sizeof err);
    fclose(f);
    if (rc != 0)
        fprintf(stderr, "replay: %s\n", err);
    assert_int_equal(rc, 0);
}

struct event_count {
    uint64_t by_kind[PTM_EV_THRESHOLD_RAISED + 1];
    uint64_t steps_with[16];
};

static void count_model_event(void *ctx, const struct ptmalloc_event *ev)
{
    struct event_count *c = ctx;
    if ((unsigned)ev->kind <= PTM_EV_THRESHOLD_RAISED)
        c->by_kind[ev->kind]++;
}

static int count_did(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    (void)pm;
    struct event_count *c = ctx;
    for (unsigned b = 0; b < 12; b++)
        if (s->did & (1u << b))
            c->steps_with[b]++;
    return 0;
}

static void test_self_replay_matches(void **state)
{
    (void)state;
    char path[512], *rep = NULL;
    uint64_t allocs;
    generate("self.fstrace", "", 0, path, sizeof path, &allocs);
    struct replay_options o;
    replay_options_default(&o);
    struct replay_summary s;
    replay_verify(path, &o, &s, &rep);
    if (s.matched != s.verified || s.first_divergence_step)
        fprintf(stderr, "%s", rep);
    assert_true(s.completed);
    assert_int_equal(s.verified, allocs);
    assert_int_equal(s.matched, s.verified);
    assert_int_equal(s.result_mismatches, 0);
    assert_int_equal(s.first_divergence_step, 0);
    assert_true(s.samples >= NOPS / 250);
    assert_int_equal(s.samples_mallinfo_matched, s.samples);
    assert_int_equal(s.samples_brk_matched, s.samples);
    assert_int_equal(s.residency_diff_max_pages, 0);   /* same touch model on both sides */
    assert_int_equal(s.unknown_frees + s.double_frees + s.corrupt_calls + s.missed_frees, 0);
    assert_true(s.arenas >= 2);
    free(rep);

    /* The model's system events reach alloc_event_fn, and mark their steps' `did`. */
    struct event_count ec;
    memset(&ec, 0, sizeof ec);
    replay_options_default(&o);
    o.trace_path = path;
    o.alloc_event_fn = count_model_event;
    o.alloc_event_ctx = &ec;
    char err[512];
    assert_int_equal(replay_run(&o, count_did, &ec, &s, NULL, err, sizeof err), 0);
    assert_true(ec.by_kind[PTM_EV_SBRK_GROW] > 0);
    assert_true(ec.by_kind[PTM_EV_MMAP] > 0);
    assert_true(ec.by_kind[PTM_EV_ARENA_NEW] > 0);
    assert_true(ec.steps_with[0] > 0 && ec.steps_with[0] <= ec.by_kind[PTM_EV_SBRK_GROW]);
    assert_true(ec.steps_with[2] > 0 && ec.steps_with[2] <= ec.by_kind[PTM_EV_MMAP]);

    /* --arenas recorded: thread 1 is pinned to the arena its pointers came from. */
    replay_options_default(&o);
    o.arenas = REPLAY_ARENAS_RECORDED;
    replay_verify(path, &o, &s, &rep);
    assert_int_equal(s.matched, s.verified);
    assert_int_equal(s.samples_mallinfo_matched, s.samples);   /* no arena before its time */
    free(rep);

    /* --frees late: the threads never interleave here, so deferring each free to its thread's
     * next call (or to a sample, mallopt, trim, thread exit) must change nothing. */
    replay_options_default(&o);
    o.arenas = REPLAY_ARENAS_RECORDED;
    o.free_order = REPLAY_FREES_LATE;
    replay_verify(path, &o, &s, &rep);
    assert_int_equal(s.matched, s.verified);
    assert_int_equal(s.samples_mallinfo_matched, s.samples);
    free(rep);
}

static void test_one_divergence(void **state)
{
    (void)state;
    char path[512], *rep = NULL;
    /* Step 1001 is an allocation in the generated stream? Find one: corrupt the first
     * allocation at or after seq 1000 by asking the generator for step 1001, 1002, ... */
    uint64_t step = 0;
    struct replay_options o;
    struct replay_summary s;
    for (uint64_t want = 1001; want < 1020 && !step; want++) {
        uint64_t allocs;
        generate("corrupt.fstrace", "", want, path, sizeof path, &allocs);
        replay_options_default(&o);
        replay_verify(path, &o, &s, &rep);
        if (s.first_divergence_step) {
            step = want;
            break;
        }
        free(rep);
        rep = NULL;
    }
    assert_int_not_equal(step, 0);
    assert_int_equal(s.first_divergence_step, step);
    assert_int_equal(s.verified - s.matched, 1);
    char needle[64];
    snprintf(needle, sizeof needle, "step %llu: thread", (unsigned long long)step);
    assert_non_null(strstr(rep, needle));
    assert_non_null(strstr(rep, "bins before: chunk size"));
    free(rep);

    /* --verify=strict is the CLI's business; the summary line says what diverged. */
    char *sum = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&sum, &len);
    replay_print_summary(f, &o, &s);
    fclose(f);
    assert_non_null(strstr(sum, "(1 diverged)"));
    assert_null(strstr(sum, "100.00%"));
    free(sum);
}

static void test_recorded_tunables_apply(void **state)
{
    (void)state;
    char path[512], *rep = NULL;
    generate("tcache0.fstrace", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0",
             0, path, sizeof path, NULL);
    struct replay_options o;
    replay_options_default(&o);
    struct replay_summary s;
    replay_verify(path, &o, &s, &rep);
    assert_int_equal(s.settings.tcache_count, 0);
    assert_int_equal(s.matched, s.verified);
    assert_int_equal(s.samples_mallinfo_matched, s.samples);
    free(rep);

    /* Overriding the recorded setting changes placement: the replay must notice. */
    replay_options_default(&o);
    o.set[o.set_count++] = "tcache_count=7";
    replay_verify(path, &o, &s, &rep);
    assert_int_equal(s.settings.tcache_count, 7);
    assert_true(s.matched < s.verified);
    free(rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_replay_matches),
        cmocka_unit_test(test_one_divergence),
        cmocka_unit_test(test_recorded_tunables_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
