/* bench_ingest.c: how fast, and how compactly, the analyzer stores steps.
 *
 * Feeds N synthetic steps (default 2,000,000) to analyzer_ingest_step straight, without a
 * replay, into a fresh database and prints steps/s and bytes/step on disk. The steps imitate a
 * program with a working set of mixed small and medium blocks: a malloc/free mix, counters that
 * move the way the model's do (live and in-use bytes every step, tcache and fastbin counts
 * often, bins and the top now and then, system bytes and RSS rarely), real-looking heap
 * addresses and times. Then it times a report on the database (text and JSON).
 * Usage: bench_ingest [STEPS] [DB]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "analyzer.h"

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

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    char path[256];
    if (argc > 2)
        snprintf(path, sizeof path, "%s", argv[2]);
    else
        snprintf(path, sizeof path, "/tmp/bench_ingest.%d.db", (int)getpid());
    unlink(path);
    char err[512];
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.no_analysis = 1;
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
    struct stat sb;
    stat(path, &sb);
    printf("ingest: %llu steps in %.2f s: %.0f steps/s (%.0f steps per CPU second), %.1f "
           "bytes/step (%s, %lld bytes)\n",
           (unsigned long long)n, secs, n / secs, n / cpu, (double)sb.st_size / n, path,
           (long long)sb.st_size);

    /* The report on it: loaded from the per-run rows, rendered. */
    double r0 = now();
    struct sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    struct analyzer_report rep;
    if (!db || analyzer_report_load(db, -1, &rep, err, sizeof err)) {
        fprintf(stderr, "bench_ingest: report: %s\n", err);
        return 1;
    }
    FILE *devnull = fopen("/dev/null", "w");
    struct analyzer_render_options ro = {0, 0};
    analyzer_report_text(devnull, &rep, &ro);
    analyzer_report_json(devnull, &rep);
    fclose(devnull);
    analyzer_report_free(&rep);
    analyzer_db_close(db);
    printf("report: %.3f s on %llu steps\n", now() - r0, (unsigned long long)n);
    if (argc <= 2)
        unlink(path);
    return 0;
}
