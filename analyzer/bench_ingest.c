/* bench_ingest.c: how fast, and how compactly, the analyzer stores steps.
 *
 * Three modes, each printing steps/s and bytes/step (medians of --runs runs) and the ratio to the
 * 500K steps/s target:
 *
 *   bench_ingest [STEPS] [DB]
 *       the store alone: N synthetic steps (default 2,000,000) fed to analyzer_ingest_step
 *       straight, without a replay. The steps imitate a program with a working set of mixed
 *       small and medium blocks: counters move the way the model's do (live and in-use bytes
 *       every step, tcache and fastbin counts often, bins and the top now and then, system bytes
 *       and RSS rarely). Then it times a report on the database (text, JSON and HTML). With DB
 *       the database is kept (e.g. the 10M-step database the HTML report is timed on).
 *   bench_ingest --replay TRACE [--runs N] [--db DB] [--workers N]
 *       a whole `replay --db`: the trace through the model into a fresh database, timed in
 *       parts: the replay alone with a no-op step callback (model + its per-step statistics, the
 *       replayer's share), the ingest (the same replay storing every step), and finish
 *       (aggregates, snapshots, call sites, findings with their what-if replays, run by N
 *       workers at once: 0, the default, one per CPU; 1 one after another).
 *   bench_ingest --synth-trace STEPS FILE
 *       writes a single-thread, single-arena trace of STEPS malloc/free events (a working set of
 *       mixed sizes, a few large blocks) for --replay.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "analyzer.h"
#include "report_html.h"

#define TARGET_STEPS_PER_S 500000.0
#define MAX_RUNS 15

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of this process: the rate that does not depend on what else the machine runs. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double s[MAX_RUNS];
    memcpy(s, v, n * sizeof *v);
    qsort(s, n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* Removes a database left by an earlier run; refuses to remove anything that is not one (a
 * trace given by mistake). */
static int remove_old_db(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char magic[16] = "";
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got && (got < sizeof magic || memcmp(magic, "SQLite format 3", 16))) {
        fprintf(stderr, "bench_ingest: %s exists and is not a database; not replacing it\n", path);
        return -1;
    }
    unlink(path);
    return 0;
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) ? 0 : (long long)sb.st_size;
}

/* ---- the store alone ---- */

static int bench_store(uint64_t n, const char *keep_path)
{
    char path[256];
    if (keep_path)
        snprintf(path, sizeof path, "%s", keep_path);
    else
        snprintf(path, sizeof path, "/tmp/bench_ingest.%d.db", (int)getpid());
    if (remove_old_db(path))
        return 1;
    char err[512];
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.no_analysis = 1;
    io.quiet = 1;
    double t0 = now(), c0 = cpu_now();
    struct analyzer_ingest *ing = analyzer_ingest_open(path, NULL, &io, err, sizeof err);
    if (!ing) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        return 1;
    }
    enum { SLOTS = 4096 };
    static uint64_t slot_ptr[SLOTS], slot_size[SLOTS];
    struct trace_event ev;
    struct replay_step s;
    memset(&s, 0, sizeof s);
    memset(&ev, 0, sizeof ev);
    s.event = &ev;
    const uint64_t heap = 0x555555559000ull;
    uint64_t live = 0, in_use = 0, brk = 135168, t = 0, tc = 0, fb = 0, sm = 0;
    for (uint64_t i = 1; i <= n; i++) {
        uint64_t r = rnd(), k = r % SLOTS;
        t += 200 + (r >> 40) % 3000;
        ev.seq = i;
        ev.time_ns = t;
        ev.thread = 0;
        ev.stack_id = 1 + (uint32_t)((r >> 20) % 300);
        s.step = i;
        s.did = 0;
        s.replayed_old_ptr = 0;
        s.request_bytes = 0;
        if (slot_ptr[k]) {
            ev.kind = TRACE_EV_FREE;
            ev.ptr = slot_ptr[k];
            s.replayed_old_ptr = slot_ptr[k];
            s.replayed_ptr = 0;
            live -= slot_size[k];
            in_use -= (slot_size[k] + 23) & ~15ull;
            if (slot_size[k] <= 1032 && tc < 7 * 8)
                tc++;
            else if (slot_size[k] <= 120)
                fb++;
            else
                sm++;
            slot_ptr[k] = 0;
        } else {
            uint64_t size = (r >> 12) % 8 ? 8 + (r >> 24) % 256 : 256 + (r >> 24) % 8192;
            ev.kind = TRACE_EV_MALLOC;
            ev.size = size;
            s.request_bytes = size;
            uint64_t off = ((r >> 8) % (brk - 64)) & ~15ull;
            slot_ptr[k] = s.replayed_ptr = ev.ptr = heap + 0x2a0 + off;
            slot_size[k] = size;
            live += size;
            in_use += (size + 23) & ~15ull;
            if (tc && size <= 1032)
                tc--;
            else if (fb && size <= 120)
                fb--;
            else if (sm && size > 120)
                sm--;
            if (in_use + 65536 > brk) {
                brk += 135168;
                s.did = REPLAY_DID_SBRK_GROW;
            }
        }
        s.live_bytes = live;
        struct ptmalloc_stats *st = &s.stats;
        st->system_bytes = brk;
        st->in_use_bytes = in_use;
        st->in_use_count = SLOTS / 2;
        st->tcache_count = tc;
        st->tcache_bytes = tc * 48;
        st->fastbin_count = fb;
        st->fastbin_bytes = fb * 64;
        st->small_count = sm;
        st->small_bytes = sm * 400;
        st->top_bytes = brk - in_use - tc * 48 - fb * 64 - sm * 400 > brk ? 0 : brk - in_use;
        st->largest_free = st->top_bytes;
        st->resident_bytes = brk - 4096 * ((r >> 50) % 4 == 0);
        st->arena_count = 1;
        s.arena = 0;
        if (analyzer_ingest_step(ing, NULL, &s)) {
            analyzer_ingest_finish(ing, NULL, err, sizeof err);
            fprintf(stderr, "bench_ingest: %s\n", err);
            return 1;
        }
    }
    if (analyzer_ingest_finish(ing, NULL, err, sizeof err)) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        return 1;
    }
    double secs = now() - t0, cpu = cpu_now() - c0;
    long long size = file_size(path);
    printf("ingest: %llu steps in %.2f s: %.0f steps/s (%.0f steps per CPU second, %.2fx the "
           "500K target), %.1f bytes/step (%s, %lld bytes)\n",
           (unsigned long long)n, secs, n / secs, n / cpu, n / cpu / TARGET_STEPS_PER_S,
           (double)size / n, path, size);

    /* The report on it: loaded from the per-run rows, rendered. */
    double r0 = now();
    struct sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    struct analyzer_report rep;
    if (!db || analyzer_report_load(db, -1, &rep, err, sizeof err)) {
        fprintf(stderr, "bench_ingest: report: %s\n", err);
        return 1;
    }
    FILE *devnull = fopen("/dev/null", "w");
    struct analyzer_render_options ro = {0, 0, 0};
    analyzer_report_text(devnull, &rep, &ro);
    analyzer_report_json(devnull, &rep);
    double r1 = now();
    int hrc = analyzer_report_html(devnull, db, &rep, &ro, err, sizeof err);
    double r2 = now();
    fclose(devnull);
    analyzer_report_free(&rep);
    analyzer_db_close(db);
    printf("report: text+json %.3f s, html %.3f s%s on %llu steps\n", r1 - r0, r2 - r1,
           hrc ? " (failed)" : "", (unsigned long long)n);
    if (!keep_path)
        unlink(path);
    return 0;
}

/* ---- a synthetic trace ---- */

static int write_synth_trace(uint64_t n, const char *path)
{
    struct trace_header h;
    memset(&h, 0, sizeof h);
    h.version = TRACE_VERSION;
    h.pid = 4242;
    h.ppid = 1;
    h.heap_start = 0x555555559000ull;
    h.page_size = 4096;
    h.cpu_count = 2;
    snprintf(h.glibc_version, sizeof h.glibc_version, "2.36");
    snprintf(h.exe, sizeof h.exe, "/synthetic/bench");
    h.argv = (char *)"bench";
    h.malloc_env = (char *)"";
    char err[512];
    struct trace_file_writer *w = trace_file_writer_open(path, 1, &h, err, sizeof err);
    if (!w) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        return 1;
    }
    enum { SLOTS = 8192 };
    static uint64_t slot_ptr[SLOTS];
    struct trace_event ev;
    uint64_t t = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = rnd(), k = r % SLOTS;
        memset(&ev, 0, sizeof ev);
        ev.seq = i;
        t += 200 + (r >> 40) % 3000;
        ev.time_ns = t;
        if (slot_ptr[k]) {
            ev.kind = TRACE_EV_FREE;
            ev.ptr = slot_ptr[k];
            slot_ptr[k] = 0;
        } else {
            /* Mostly small (tcache and fastbin sizes), some medium, one in 4096 large. */
            uint64_t size = (r >> 12) % 8 ? 8 + (r >> 24) % 256 : 256 + (r >> 24) % 8192;
            if ((r >> 52) % 4096 == 0)
                size = 100000 + (r >> 24) % 300000;
            ev.kind = TRACE_EV_MALLOC;
            ev.size = size;
            ev.ptr = slot_ptr[k] = 0x10000000ull + k * 0x80000;
            ev.chunk_flags = TRACE_CHUNK_PREV_INUSE;
        }
        if (trace_file_writer_event(w, &ev)) {
            trace_file_writer_close(w, err, sizeof err);
            fprintf(stderr, "bench_ingest: %s: %s\n", path, err);
            return 1;
        }
    }
    if (trace_file_writer_close(w, err, sizeof err)) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        return 1;
    }
    printf("wrote %s: %llu events, %lld bytes\n", path, (unsigned long long)n, file_size(path));
    return 0;
}

/* ---- a whole replay --db ---- */

static int noop_step(void *ctx, struct ptmalloc *pm, const struct replay_step *s)
{
    (void)pm;
    (void)s;
    ++*(uint64_t *)ctx;
    return 0;
}

static void end_to_ingest(void *ctx, struct ptmalloc *pm)
{
    analyzer_ingest_end_state(ctx, pm);
}

struct replay_times {
    double nocb, replay, ingest, ingest_cpu, finish, total;
    long long bytes, bytes_steps;
    uint64_t steps;
};

/* Bytes of the steps and arena_rows tables (dbstat), or -1. */
static long long table_bytes(const char *path)
{
    char err[256];
    struct sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    if (!db)
        return -1;
    long long v = -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT sum(pgsize) FROM dbstat WHERE name IN ('steps', "
                               "'arena_rows')", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    analyzer_db_close(db);
    return v;
}

static unsigned whatif_workers;        /* --workers: 0 one per CPU, 1 one after another */

static int bench_replay_once(const char *trace, const char *db_path, struct replay_times *t)
{
    char err[512];
    struct replay_options ro;
    replay_options_default(&ro);
    ro.trace_path = trace;
    struct replay_summary sum;

    /* The replay with no step callback: the model alone. */
    double t0 = now();
    if (replay_run(&ro, NULL, NULL, &sum, NULL, err, sizeof err)) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        return -1;
    }
    t->nocb = now() - t0;
    /* With a no-op step callback: what the replayer does for any callback (statistics). */
    uint64_t count = 0;
    t0 = now();
    if (replay_run(&ro, noop_step, &count, &sum, NULL, err, sizeof err)) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        return -1;
    }
    t->replay = now() - t0;
    t->steps = count;

    if (remove_old_db(db_path))
        return -1;
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.quiet = 1;
    io.whatif_workers = whatif_workers;
    t0 = now();
    double c0 = cpu_now();
    struct analyzer_ingest *ing = analyzer_ingest_open(db_path, &ro, &io, err, sizeof err);
    if (!ing) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        return -1;
    }
    struct replay_options o = ro;
    o.end_fn = end_to_ingest;
    o.end_ctx = ing;
    if (replay_run(&o, analyzer_ingest_step, ing, &sum, NULL, err, sizeof err)) {
        sum.completed = 0;
        analyzer_ingest_finish(ing, &sum, err, sizeof err);
        fprintf(stderr, "bench_ingest: %s\n", err);
        return -1;
    }
    double t1 = now();
    t->ingest_cpu = cpu_now() - c0;
    if (analyzer_ingest_finish(ing, &sum, err, sizeof err)) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        return -1;
    }
    double t2 = now();
    t->ingest = t1 - t0;
    t->finish = t2 - t1;
    t->total = t2 - t0;
    t->bytes = file_size(db_path);
    t->bytes_steps = table_bytes(db_path);
    return 0;
}

static int bench_replay(const char *trace, int runs, const char *keep_db)
{
    char db_path[512];
    if (keep_db)
        snprintf(db_path, sizeof db_path, "%s", keep_db);
    else
        snprintf(db_path, sizeof db_path, "/tmp/bench_ingest.%d.db", (int)getpid());
    double nocb[MAX_RUNS], replay[MAX_RUNS], ingest[MAX_RUNS], cpu[MAX_RUNS], finish[MAX_RUNS],
        total[MAX_RUNS];
    struct replay_times t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < runs; i++) {
        if (bench_replay_once(trace, db_path, &t))
            return 1;
        nocb[i] = t.nocb;
        replay[i] = t.replay;
        ingest[i] = t.ingest;
        cpu[i] = t.ingest_cpu;
        finish[i] = t.finish;
        total[i] = t.total;
    }
    double n = (double)t.steps, ing = median(ingest, runs), rep = median(replay, runs);
    double nc = median(nocb, runs);
    printf("%s: %llu steps, medians of %d runs\n", trace, (unsigned long long)t.steps, runs);
    printf("  replay alone:        %.3f s (%.0f steps/s); with a no-op step callback %.3f s "
           "(the replayer's per-step statistics: %.3f s)\n",
           nc, n / nc, rep, rep - nc);
    printf("  ingest (replay+store): %.3f s = %.0f steps/s (%.0f per CPU second), %.2fx the 500K "
           "target; the store's own share %.3f s (%.0f%%), the replay's %.0f%%\n",
           ing, n / ing, n / median(cpu, runs), n / ing / TARGET_STEPS_PER_S, ing - rep,
           100 * (ing - rep) / ing, 100 * rep / ing);
    printf("  finish (analysis, what-ifs with %s): %.3f s; whole replay --db %.3f s\n",
           whatif_workers == 1 ? "one replay at a time" : "a worker per CPU",
           median(finish, runs), median(total, runs));
    printf("  database: %lld bytes = %.1f bytes/step (steps + arena_rows tables: %.1f "
           "bytes/step)\n",
           t.bytes, t.bytes / n, t.bytes_steps / n);
    if (!keep_db)
        unlink(db_path);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_ingest [STEPS] [DB]\n"
               "       bench_ingest --replay TRACE [--runs N] [--db DB] [--workers N]\n"
               "       bench_ingest --synth-trace STEPS FILE\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (argc > 3 && !strcmp(argv[1], "--synth-trace"))
        return write_synth_trace(strtoull(argv[2], NULL, 10), argv[3]);
    if (argc > 2 && !strcmp(argv[1], "--replay")) {
        int runs = 5;
        const char *db = NULL;
        for (int i = 3; i + 1 < argc; i += 2) {
            if (!strcmp(argv[i], "--runs"))
                runs = atoi(argv[i + 1]);
            else if (!strcmp(argv[i], "--db"))
                db = argv[i + 1];
            else if (!strcmp(argv[i], "--workers"))
                whatif_workers = (unsigned)atoi(argv[i + 1]);
        }
        if (runs < 1 || runs > MAX_RUNS) {
            fprintf(stderr, "bench_ingest: --runs: 1 to %d\n", MAX_RUNS);
            return 2;
        }
        return bench_replay(argv[2], runs, db);
    }
    if (argc > 1 && argv[1][0] == '-') {
        usage(stderr);
        return 2;
    }
    return bench_store(argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000, argc > 2 ? argv[2] : NULL);
}
