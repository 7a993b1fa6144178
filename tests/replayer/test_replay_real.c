/* test_replay_real.c: real programs recorded now, on this machine, replayed with --verify.
 *
 * Each case runs a real program under `fragscope record` (sqlite3 running a SQL script, perl,
 * sort, jq, git, python3, and the multi-threaded sample programs of traces/), then replays the
 * trace with --verify=strict: every replayed address must be the one glibc really returned
 * (normalised), and every mallinfo2 sample the tracer took must be equal. Single-threaded
 * programs must match 100%, with default settings and under GLIBC_TUNABLES / MALLOC_*
 * variants (the replay takes the settings from the trace). Multi-threaded programs whose threads
 * take turns (the baton of traces/: no two threads in malloc at once, so the recorded order is
 * the order glibc saw) must match 100% too, with --verify=strict --arenas recorded, also with
 * fewer arenas than threads under GLIBC_TUNABLES; truly concurrent ones at least 99.9% with
 * --arenas recorded. --native must run the sqlite3 trace on glibc and on each installed
 * alternative allocator (--preload). On failure the replay's report (the first
 * divergences and the model's bins before them) is printed.
 *
 * Label nosan: the recorder is preloaded into uninstrumented programs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "replay.h"
#include "test_support.h"

#ifndef FRAGSCOPE_BIN
#error FRAGSCOPE_BIN must name the fragscope binary
#endif
#ifndef TRACE_BIN_DIR
#error TRACE_BIN_DIR must name the directory of the sample programs
#endif
#ifndef MT_WORKLOAD
#error MT_WORKLOAD must name the mt_workload program of tests/support
#endif

static char dir[256];

enum { SINGLE, THREADS_TURNS, THREADS_CONCURRENT };

struct real_case {
    const char *name;
    const char *env;        /* "NAME=VALUE ..." for the recorded program, or "" */
    const char *command;    /* shell words; %D = the scratch directory, %T = TRACE_BIN_DIR,
                               %M = tests/support's mt_workload */
    const char *needs;      /* a program that must exist, or NULL */
    int threaded;           /* THREADS_TURNS: --verify=strict --arenas recorded, 100%;
                               THREADS_CONCURRENT: --verify --arenas recorded, >= 99.9% */
    int any_exit;           /* the program's exit status says nothing (git diff: 1 = differ) */
};

static void expand(const char *in, char *out, size_t len)
{
    size_t n = 0;
    for (const char *p = in; *p && n + 1 < len; p++) {
        const char *sub = NULL;
        if (p[0] == '%' && p[1] == 'D')
            sub = dir;
        else if (p[0] == '%' && p[1] == 'T')
            sub = TRACE_BIN_DIR;
        else if (p[0] == '%' && p[1] == 'M')
            sub = MT_WORKLOAD;
        if (sub) {
            n += (size_t)snprintf(out + n, len - n, "%s", sub);
            p++;
        } else {
            out[n++] = *p;
        }
    }
    out[n < len ? n : len - 1] = 0;
}

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int have(const char *prog)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return sh(cmd) == 0;
}

static int make_inputs(void **state)
{
    (void)state;
    if (ts_tmpdir(dir, sizeof dir, "real") != 0)
        return -1;
    char cmd[4096];
    /* A SQL script: a table, an index, updates and deletes that free and reuse memory. */
    snprintf(cmd, sizeof cmd,
             "{ echo 'create table t(id integer primary key, name text, body blob);';"
             "  echo 'create index ti on t(name);'; echo 'begin;';"
             "  i=0; while [ $i -lt 1500 ]; do"
             "    echo \"insert into t(name, body) values ('n$((i * 7919 %% 1000))', randomblob($((i %% 700 + 1))));\";"
             "    i=$((i + 1)); done;"
             "  echo 'commit;'; echo 'delete from t where id %% 3 = 0;';"
             "  echo 'update t set body = randomblob(900) where id %% 5 = 0;';"
             "  echo 'select name, count(*), sum(length(body)) from t group by name order by 2 desc limit 5;';"
             "  echo 'vacuum;'; } > '%s/script.sql'", dir);
    if (sh(cmd) != 0)
        return -1;
    /* Lines to sort, JSON for jq, two files for git diff. */
    snprintf(cmd, sizeof cmd,
             "awk 'BEGIN { for (i = 0; i < 30000; i++) printf \"%%d line %%x %%s\\n\", (i * 7919) %% 10007,"
             " i * 31, substr(\"abcdefghijklmnopqrstuvwxyz\", 1 + i %% 26) }' > '%s/lines.txt' &&"
             "awk 'BEGIN { printf \"[\"; for (i = 0; i < 4000; i++) printf \"%%s{\\\"id\\\":%%d,\\\"name\\\":\\\"n%%d\\\","
             "\\\"tags\\\":[%%d,%%d,%%d]}\", i ? \",\" : \"\", i, i %% 97, i, i * 2, i * 3; print \"]\" }' > '%s/data.json' &&"
             "awk 'NR %% 7 != 0' '%s/lines.txt' > '%s/lines2.txt'",
             dir, dir, dir, dir);
    return sh(cmd) == 0 ? 0 : -1;
}

static int remove_inputs(void **state)
{
    (void)state;
    return ts_rmtree(dir);
}

/* The match rate printed on the summary's verify line. */
static double match_rate(const char *out)
{
    const char *v = strstr(out, "\nverify ");
    if (!v)
        return -1;
    double r = -1;
    if (sscanf(v + 8, " %lf%%", &r) != 1)
        return -1;
    return r;
}

static void test_real(void **state)
{
    const struct real_case *c = *state;
    if (c->needs && !have(c->needs)) {
        fprintf(stderr, "%s: %s is not installed; skipped\n", c->name, c->needs);
        skip();
    }
    char command[2048], trace[512], cmd[4096];
    expand(c->command, command, sizeof command);
    snprintf(trace, sizeof trace, "%s/%s.fstrace", dir, c->name);
    snprintf(cmd, sizeof cmd, "cd '%s' && env %s '%s' record -o '%s' --force -- %s >/dev/null 2>'%s.err'",
             dir, c->env, FRAGSCOPE_BIN, trace, command, trace);
    int st = sh(cmd);
    struct stat sb;
    if (st != 0 && !(c->any_exit && st < 128 && stat(trace, &sb) == 0)) {
        char *err = NULL;
        snprintf(cmd, sizeof cmd, "cat '%s.err'", trace);
        ts_shell_all(cmd, &err);
        fprintf(stderr, "%s: recording failed (status %d): %s\n%s\n", c->name, st, command,
                err ? err : "");
        free(err);
        fail();
    }
    char *out = NULL;
    static const char *const how[] = {"--verify=strict", "--verify=strict --arenas recorded",
                                      "--verify --arenas recorded"};
    snprintf(cmd, sizeof cmd, "'%s' replay '%s' --no-progress %s 2>&1", FRAGSCOPE_BIN, trace,
             how[c->threaded]);
    st = ts_shell_all(cmd, &out);
    double rate = match_rate(out);
    fprintf(stderr, "%s: %.2f%% of allocations match (%s)\n", c->name, rate, how[c->threaded]);
    int ok = c->threaded == THREADS_CONCURRENT ? (st == 0 && rate >= 99.9)
                                               : (st == 0 && rate == 100.0);
    /* The samples the tracer took (if any) must agree exactly on mallinfo2. */
    const char *smp = strstr(out, "\nsamples ");
    if (ok && smp && c->threaded != THREADS_CONCURRENT) {
        unsigned long long n = 0, exact = 0;
        if (sscanf(smp + 9, " %llu: mallinfo2 exact in %llu", &n, &exact) == 2 && n != exact)
            ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "%s: replay status %d, output:\n%s\n", c->name, st, out);
        free(out);
        fail();
    }
    free(out);
}

/* --native: the sqlite3 trace (recorded by the first case) on the real allocator, then on each
 * installed alternative allocator. */
static void test_native(void **state)
{
    (void)state;
    char trace[512], cmd[2048], *out = NULL;
    struct stat sb;
    snprintf(trace, sizeof trace, "%s/sqlite3.fstrace", dir);
    if (stat(trace, &sb) != 0)
        skip();
    snprintf(cmd, sizeof cmd, "'%s' replay '%s' --native 2>&1", FRAGSCOPE_BIN, trace);
    int st = ts_shell_all(cmd, &out);
    if (st != 0 || !strstr(out, "glibc malloc") || !strstr(out, "mallinfo2      arena ") ||
        !strstr(out, "0 frees of unknown pointers and double frees skipped")) {
        fprintf(stderr, "replay --native: status %d:\n%s\n", st, out);
        free(out);
        fail();
    }
    free(out);
    static const char *const libs[] = {"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
                                       "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
                                       "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        if (stat(libs[i], &sb) != 0)
            continue;
        snprintf(cmd, sizeof cmd, "'%s' replay '%s' --native --preload '%s' 2>&1", FRAGSCOPE_BIN,
                 trace, libs[i]);
        st = ts_shell_all(cmd, &out);
        if (st != 0 || !strstr(out, libs[i]) || !strstr(out, "wall time")) {
            fprintf(stderr, "replay --native --preload %s: status %d:\n%s\n", libs[i], st, out);
            free(out);
            fail();
        }
        free(out);
    }
}

/* --until and the summary figures against the real run: for each mallinfo2 sample the tracer
 * took while recording sqlite3, a replay stopped at that step must end with the sample's
 * mallinfo2 and break, and its final system bytes must be the sample's arena + hblkhd. */
static int mallinfo_at_end(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    (void)s;
    ptmalloc_mallinfo2(pm, ctx);
    return 0;
}

static void test_until_against_samples(void **state)
{
    (void)state;
    char trace[512], err[512];
    struct stat sb;
    snprintf(trace, sizeof trace, "%s/sqlite3.fstrace", dir);
    if (stat(trace, &sb) != 0)
        skip();
    struct trace_reader *r = trace_reader_open(trace, err, sizeof err);
    assert_non_null(r);
    uint64_t heap_start = trace_reader_header(r)->heap_start;
    struct trace_event ev;
    uint64_t step = 0, checked = 0;
    while (trace_reader_next(r, &ev) == 1) {
        step++;
        if (ev.kind != TRACE_EV_SAMPLE || ev.sample.arena == 0)
            continue;
        struct replay_options o;
        replay_options_default(&o);
        o.trace_path = trace;
        o.until_step = step;
        struct replay_summary sum;
        struct ptmalloc_mallinfo2 mi;
        memset(&mi, 0, sizeof mi);
        assert_int_equal(replay_run(&o, mallinfo_at_end, &mi, &sum, NULL, err, sizeof err), 0);
        assert_int_equal(sum.steps, step);
        assert_int_equal(sum.until_step, step);
        assert_false(sum.completed);
        assert_int_equal(mi.arena, ev.sample.arena);
        assert_int_equal(mi.uordblks, ev.sample.uordblks);
        assert_int_equal(mi.fordblks, ev.sample.fordblks);
        assert_int_equal(mi.hblkhd, ev.sample.hblkhd);
        assert_int_equal(mi.ordblks, ev.sample.ordblks);
        assert_int_equal(sum.final_system_bytes, ev.sample.arena + ev.sample.hblkhd);
        /* Live bytes are requests, mallinfo's uordblks whole chunks plus the tcache. */
        assert_true(sum.final_live_bytes <= ev.sample.uordblks + ev.sample.hblkhd);
        fprintf(stderr, "step %llu: mallinfo2 arena %llu uordblks %llu equal; heap RSS model %llu "
                        "real %llu bytes; break main+0x%llx\n",
                (unsigned long long)step, (unsigned long long)mi.arena,
                (unsigned long long)mi.uordblks, (unsigned long long)sum.final_rss_bytes,
                (unsigned long long)ev.sample.heap_resident_pages * 4096,
                (unsigned long long)(ev.sample.brk - heap_start));
        checked++;
    }
    trace_reader_close(r);
    assert_true(checked >= 1);
}

static const struct real_case cases[] = {
    {"sqlite3", "", "sqlite3 ':memory:' < %D/script.sql", "sqlite3", SINGLE, 0},
    {"sqlite3-tcache0", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0",
     "sqlite3 ':memory:' < %D/script.sql", "sqlite3", SINGLE, 0},
    {"sqlite3-mxfast0-toppad", "GLIBC_TUNABLES=glibc.malloc.mxfast=0:glibc.malloc.top_pad=0",
     "sqlite3 ':memory:' < %D/script.sql", "sqlite3", SINGLE, 0},
    {"sqlite3-mmap4k", "MALLOC_MMAP_THRESHOLD_=4096 MALLOC_TRIM_THRESHOLD_=0",
     "sqlite3 ':memory:' < %D/script.sql", "sqlite3", SINGLE, 0},
    {"perl", "", "perl -e 'my %h; $h{$_} = \"x\" x ($_ % 300) for 1..20000;"
                 " delete $h{$_} for grep { $_ % 3 } keys %h; my @a = sort keys %h; print scalar(@a), \"\\n\"'",
     "perl", SINGLE, 0},
    {"perl-tcache-small", "GLIBC_TUNABLES=glibc.malloc.tcache_count=2:glibc.malloc.tcache_max=64",
     "perl -e 'my @a; push @a, \"y\" x ($_ % 1500) for 1..8000; splice(@a, 100, 4000); print scalar(@a), \"\\n\"'",
     "perl", SINGLE, 0},
    {"sort", "", "sort -k2 %D/lines.txt", "sort", SINGLE, 0},
    {"jq", "", "jq '[.[] | select(.id % 3 == 0) | {id, n: (.tags | add)}] | length' %D/data.json",
     "jq", SINGLE, 0},
    {"git-diff", "", "git diff --no-index --stat %D/lines.txt %D/lines2.txt", "git", SINGLE, 1},
    {"python3", "", "\"$(python3 -c 'import sys; print(sys.executable)')\" -c 'd = {i: str(i) * (i % 50) for i in range(20000)}; "
                    "[d.pop(i) for i in range(0, 20000, 3)]; print(len(d))'", "python3", SINGLE, 0},
    /* Threads taking turns: strict. arena-explosion runs 32 threads, more than the arena limit
     * of 8 per CPU on small machines: threads share arenas. */
    {"producer-consumer", "", "%T/trace-producer-consumer", NULL, THREADS_TURNS, 0},
    {"thread-churn", "", "%T/trace-thread-churn", NULL, THREADS_TURNS, 0},
    {"arena-explosion", "", "%T/trace-arena-explosion", NULL, THREADS_TURNS, 0},
    {"arena-explosion-arena2-tcache1",
     "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.tcache_count=1",
     "%T/trace-arena-explosion", NULL, THREADS_TURNS, 0},
    {"producer-consumer-arena1", "MALLOC_ARENA_MAX=1", "%T/trace-producer-consumer", NULL,
     THREADS_TURNS, 0},
    /* Two concurrent threads, each on its own arena, freeing into each other's. (With more
     * threads than arenas the recorded order of a free and another thread's call on a shared
     * arena is not always the order of the arena lock; see replay.h, --frees.) */
    {"mt-alloc-2", "", "%M mixed 2 20000", NULL, THREADS_CONCURRENT, 0},
    {"sort-parallel", "", "sort --parallel=4 -S 20M -k2 %D/lines.txt", "sort",
     THREADS_CONCURRENT, 0},
};

int main(void)
{
    struct CMUnitTest tests[sizeof cases / sizeof cases[0] + 2];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tests[i] = (struct CMUnitTest)cmocka_unit_test_prestate(test_real, (void *)&cases[i]);
        tests[i].name = cases[i].name;
    }
    tests[sizeof cases / sizeof cases[0]] = (struct CMUnitTest)cmocka_unit_test(test_native);
    tests[sizeof cases / sizeof cases[0] + 1] =
        (struct CMUnitTest)cmocka_unit_test(test_until_against_samples);
    return _cmocka_run_group_tests("replay_real", tests, sizeof tests / sizeof tests[0],
                                   make_inputs, remove_inputs);
}
