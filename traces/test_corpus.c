/* test_corpus.c: the sample programs still show, on the real glibc, the pathology each one is
 * there for (traces/README.md), and they are deterministic.
 *
 * Each test runs a trace-NAME program (paths from the build: TRACE_BIN_DIR), optionally with
 * GLIBC_TUNABLES, captures its heapstat lines (heapstat.h) and checks the story: held memory
 * far above live memory, and the setting that fixes it. Exact values come from the real glibc
 * (the README's tables) or from the chunk arithmetic of glibc 2.36 (request2size, MINSIZE, the
 * 0x290 tcache chunk, top_pad 128 KiB). Labelled nosan: it measures the real heap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_CAP 16384

/* Runs TRACE_BIN_DIR/trace-NAME with args (may be NULL) and the given GLIBC_TUNABLES (NULL: none),
 * returns its stdout in out. Fails the test unless it exits 0. */
static void run_program(const char *name, const char *args, const char *tunables, char *out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s%s%s%s/trace-%s %s", tunables ? "GLIBC_TUNABLES=" : "",
             tunables ? tunables : "", tunables ? " " : "", TRACE_BIN_DIR, name, args ? args : "");
    unsetenv("GLIBC_TUNABLES");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, OUT_CAP - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s: exit status %d, output:\n%s", cmd, st, out);
}

/* The value of `key` on the line of `phase`. Fails the test if either is missing. */
static uint64_t stat_of(const char *out, const char *phase, const char *key)
{
    char want[128];
    snprintf(want, sizeof want, " phase=%s ", phase);
    const char *line = strstr(out, want);
    if (!line)
        fail_msg("no phase %s in:\n%s", phase, out);
    const char *eol = strchr(line, '\n');
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *v = strstr(line, k);
    if (!v || (eol && v > eol))
        fail_msg("no %s on the %s line", key, phase);
    return strtoull(v + strlen(k), NULL, 10);
}

#define PAIR_BYTES (52736u + 32u)    /* request2size(52722) + MINSIZE for malloc(1) */
#define TCACHE_CHUNK 656u            /* the 0x290 tcache_perthread_struct chunk */
#define TOP_PAD 131072u

static void blocks4000_defaults_pin_the_heap(void **state)
{
    (void)state;
    static char out[OUT_CAP];
    run_program("4000-blocks", "--trim", NULL, out);
    uint64_t brk = stat_of(out, "after_free", "brk_offset");
    assert_true(brk >= 4000ull * PAIR_BYTES);
    assert_int_equal(stat_of(out, "after_free", "arena"), brk);
    /* top = the break minus the tcache struct and the 4000 pairs */
    assert_int_equal(stat_of(out, "after_free", "keepcost"), brk - TCACHE_CHUNK - 4000ull * PAIR_BYTES);
    /* 7 small chunks in the tcache, 3993 in fastbin 0, 4000 big ones + top in the bins */
    assert_int_equal(stat_of(out, "after_free", "smblks"), 3993);
    assert_int_equal(stat_of(out, "after_free", "ordblks"), 4001);
    assert_int_equal(stat_of(out, "after_free", "uordblks"), TCACHE_CHUNK + 7 * 32);
    assert_true(stat_of(out, "after_free", "heap_rss") >= 4000ull * 52722);
    /* malloc(2000) consolidated the fastbins, but the break and the resident pages stay */
    assert_int_equal(stat_of(out, "after_extra", "smblks"), 0);
    assert_int_equal(stat_of(out, "after_extra", "ordblks"), 8);
    assert_int_equal(stat_of(out, "after_extra", "brk_offset"), brk);
    assert_true(stat_of(out, "after_extra", "heap_rss") >= 4000ull * 52722);
    /* malloc_trim gives the pages back but cannot move the pinned break */
    assert_true(stat_of(out, "after_trim", "heap_rss") < (1u << 20));
    assert_true(stat_of(out, "after_trim", "brk_offset") >= 4000ull * PAIR_BYTES);
}

static void blocks4000_tcache_off_releases_the_heap(void **state)
{
    (void)state;
    static char out[OUT_CAP];
    run_program("4000-blocks", NULL, "glibc.malloc.tcache_count=0", out);
    assert_int_equal(stat_of(out, "after_free", "smblks"), 4000);
    assert_true(stat_of(out, "after_free", "brk_offset") >= 4000ull * PAIR_BYTES);
    /* consolidation merged everything into top; the free(2000) trimmed it to top_pad */
    assert_int_equal(stat_of(out, "after_extra", "ordblks"), 1);
    assert_int_equal(stat_of(out, "after_extra", "brk_offset"), TOP_PAD + 4096);
    assert_int_equal(stat_of(out, "after_extra", "uordblks"), TCACHE_CHUNK);
}

static void blocks4000_mxfast0_coalesces_but_stays_pinned(void **state)
{
    (void)state;
    static char out[OUT_CAP];
    run_program("4000-blocks", "--no-extra", "glibc.malloc.mxfast=0", out);
    assert_int_equal(stat_of(out, "after_free", "smblks"), 0);
    assert_int_equal(stat_of(out, "after_free", "ordblks"), 8);
    assert_true(stat_of(out, "after_free", "brk_offset") >= 4000ull * PAIR_BYTES);
    assert_true(stat_of(out, "after_free", "heap_rss") >= 4000ull * 52722);
}

static void blocks4000_unwritten_blocks_stay_mostly_unresident(void **state)
{
    (void)state;
    static char out[OUT_CAP];
    run_program("4000-blocks", "--no-write --no-extra", NULL, out);
    uint64_t rss = stat_of(out, "after_free", "heap_rss");
    /* malloc's own writes: one header page per 52 KiB chunk, give or take */
    assert_true(rss > 4000ull * 4096 / 2);
    assert_true(rss < 4000ull * 4096 * 2);
}

static void hoarding_arena_max_1_reuses_the_hoard(void **state)
{
    (void)state;
    static char out[OUT_CAP], one[OUT_CAP];
    run_program("hoarding", NULL, NULL, out);
    run_program("hoarding", NULL, "glibc.malloc.arena_max=1", one);
    assert_int_equal(stat_of(out, "after_join", "nonmain_heaps"), 4);
    assert_true(stat_of(out, "after_join", "fordblks") > 4 * stat_of(out, "after_join", "uordblks"));
    assert_int_equal(stat_of(one, "after_join", "nonmain_heaps"), 0);
    assert_true(stat_of(out, "main_working_set", "arena") >
                2 * stat_of(one, "main_working_set", "arena") * 9 / 10);
}

static void arena_explosion_makes_many_mostly_free_arenas(void **state)
{
    (void)state;
    static char out[OUT_CAP], one[OUT_CAP];
    run_program("arena-explosion", NULL, NULL, out);
    run_program("arena-explosion", NULL, "glibc.malloc.arena_max=1", one);
    cpu_set_t cpus;
    assert_int_equal(sched_getaffinity(0, sizeof cpus, &cpus), 0);
    unsigned n = (unsigned)CPU_COUNT(&cpus);
    /* glibc: new arenas up to 8 x CPUs in all (at least 9: the limit is computed past 8) */
    unsigned total = 8 * n > 9 ? 8 * n : 9;
    unsigned nonmain = total - 1 < 32 ? total - 1 : 32;
    assert_int_equal(stat_of(out, "all_alive", "nonmain_heaps"), nonmain);
    assert_true(stat_of(out, "after_join", "fordblks") > 20 * stat_of(out, "after_join", "uordblks"));
    assert_true(stat_of(out, "after_join", "arena") > 5 * stat_of(one, "after_join", "arena"));
}

static void aligned_gaps_leaks_pin_the_holes(void **state)
{
    (void)state;
    static char out[OUT_CAP];
    run_program("aligned-gaps", NULL, NULL, out);
    uint64_t brk = stat_of(out, "all_live", "brk_offset");
    assert_int_equal(stat_of(out, "after_free", "brk_offset"), brk);
    assert_true(stat_of(out, "after_free", "heap_rss") > brk * 9 / 10);
    assert_true(stat_of(out, "after_free", "ordblks") > 100);   /* holes that cannot merge */
    assert_true(stat_of(out, "after_free", "fordblks") > 30 * stat_of(out, "after_free", "uordblks"));
}

static void mmap_ratchet_buffers_stay_in_the_heap(void **state)
{
    (void)state;
    static char out[OUT_CAP], fixed[OUT_CAP];
    run_program("mmap-ratchet", NULL, NULL, out);
    run_program("mmap-ratchet", NULL, "glibc.malloc.mmap_threshold=131072", fixed);
    assert_true(stat_of(out, "after_loop", "brk_offset") > (4u << 20));
    assert_true(stat_of(out, "after_loop", "heap_rss") > (4u << 20));
    assert_int_equal(stat_of(out, "after_loop", "hblks"), 0);
    assert_int_equal(stat_of(fixed, "after_loop", "brk_offset"), TOP_PAD + 4096);
    assert_int_equal(stat_of(fixed, "after_loop", "uordblks"), stat_of(out, "after_loop", "uordblks"));
}

static void producer_consumer_tcache_holds_the_producers_chunks(void **state)
{
    (void)state;
    static char out[OUT_CAP], off[OUT_CAP];
    run_program("producer-consumer", NULL, NULL, out);
    run_program("producer-consumer", NULL, "glibc.malloc.tcache_count=0", off);
    assert_int_equal(stat_of(out, "both_alive", "nonmain_heaps"), 2);
    /* nothing is live, yet ~240 KB count as in use: the consumer's tcache */
    assert_true(stat_of(out, "both_alive", "uordblks") > 100000);
    assert_true(stat_of(out, "after_consumer_exit", "uordblks") < 10000);
    assert_true(stat_of(off, "both_alive", "uordblks") < 10000);
}

static void thread_churn_reuses_four_arenas(void **state)
{
    (void)state;
    static char out[OUT_CAP], off[OUT_CAP];
    run_program("thread-churn", NULL, NULL, out);
    run_program("thread-churn", NULL, "glibc.malloc.tcache_count=0", off);
    assert_int_equal(stat_of(out, "end", "nonmain_heaps"), 4);
    assert_true(stat_of(out, "end", "uordblks") > 100000);   /* main's tcache */
    assert_true(stat_of(off, "end", "uordblks") < 20000);
}

/* Drops the whole-process rss, the one value that may differ between runs. */
static void strip_rss(char *s)
{
    char *p;
    while ((p = strstr(s, " rss=")) != NULL) {
        char *e = p + 5;
        while (*e >= '0' && *e <= '9')
            e++;
        memmove(p, e, strlen(e) + 1);
    }
}

static void programs_are_deterministic(void **state)
{
    (void)state;
    static const char *names[] = {"hoarding", "arena-explosion", "aligned-gaps", "mmap-ratchet",
                                  "producer-consumer", "thread-churn"};
    static char a[OUT_CAP], b[OUT_CAP];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        run_program(names[i], NULL, NULL, a);
        run_program(names[i], NULL, NULL, b);
        strip_rss(a);
        strip_rss(b);
        assert_string_equal(a, b);
    }
    run_program("4000-blocks", "--count=500 --trim", NULL, a);
    run_program("4000-blocks", "--count=500 --trim", NULL, b);
    strip_rss(a);
    strip_rss(b);
    assert_string_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blocks4000_defaults_pin_the_heap),
        cmocka_unit_test(blocks4000_tcache_off_releases_the_heap),
        cmocka_unit_test(blocks4000_mxfast0_coalesces_but_stays_pinned),
        cmocka_unit_test(blocks4000_unwritten_blocks_stay_mostly_unresident),
        cmocka_unit_test(hoarding_arena_max_1_reuses_the_hoard),
        cmocka_unit_test(arena_explosion_makes_many_mostly_free_arenas),
        cmocka_unit_test(aligned_gaps_leaks_pin_the_holes),
        cmocka_unit_test(mmap_ratchet_buffers_stay_in_the_heap),
        cmocka_unit_test(producer_consumer_tcache_holds_the_producers_chunks),
        cmocka_unit_test(thread_churn_reuses_four_arenas),
        cmocka_unit_test(programs_are_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
