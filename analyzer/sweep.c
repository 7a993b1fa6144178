/* sweep.c: `fragscope sweep TRACE --set NAME=V1,V2 ... --db FILE [-j N]`: the trace replayed
 * under every combination of the given settings, ranked by final heap RSS.
 *
 * Each combination runs in its own child process (at most N at once, default one per CPU) that
 * ingests into its own temporary database next to FILE (SQLite serialises writers, so children
 * never share a file); as each child finishes, the parent copies its run into FILE under a new
 * run id (steps re-keyed to the new run) and removes the temporary file. The children store the
 * steps and aggregates only; `fragscope report FILE --run N` analyses a run when asked.
 *
 * With --preload LIB the trace also runs natively (the replayer's native runner, the allocator
 * preloaded into it): those runs have no model, only the whole process's peak RSS and the time.
 *
 * --format json prints the ranking as a JSON array, one object per run in the same order:
 * {"run", "trace", "settings", "native", "allocator", "peak_rss", "final_rss", "peak_frag",
 * "final_frag", "seconds", "failed"} (exact bytes; null where the text shows "-"), failed
 * combinations last with "run": null.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../cli.h"
#include "../replayer/replay_native.h"
#include "analyzer_int.h"
#include "db_util.h"
#include "json_out.h"

#define MAX_DIMS 8
#define MAX_VALUES 16
#define MAX_COMBOS 4096
#define MAX_PRELOAD 8

struct dim {
    char name[64];
    char values[MAX_VALUES][64];
    unsigned count;
};

struct job {
    pid_t pid;
    const char *preload;        /* a native run with this allocator preloaded (no model) */
    char settings[REPLAY_MAX_OVERRIDES][128];
    unsigned set_count;
    char label[512];
    char tmp[4200];
    int64_t run;                /* in FILE, after the merge */
    int failed;
};

static const char *tables_with_run[] = {"arena_rows", "run_points", "sys_events", "snapshots",
                                        "chunks",      "tcache_owners", "sites", "measures",
                                        "findings",    "whatifs",       "series"};

/* Copies table T's rows of run `old` from schema `s` into main under run `nu`. */
static int copy_table(sqlite3 *db, const char *t, int64_t old, int64_t nu, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = db_prepare(db, err, errlen, "PRAGMA main.table_info(%s)", t);
    if (!st)
        return -1;
    char cols[1024] = "", sel[1024] = "";
    size_t lc = 0, ls = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        lc += (size_t)snprintf(cols + lc, sizeof cols - lc, "%s%s", lc ? ", " : "", name);
        if (!strcmp(name, "run"))
            ls += (size_t)snprintf(sel + ls, sizeof sel - ls, "%s%lld", ls ? ", " : "",
                                   (long long)nu);
        else
            ls += (size_t)snprintf(sel + ls, sizeof sel - ls, "%s%s", ls ? ", " : "", name);
    }
    sqlite3_finalize(st);
    char *sql = sqlite3_mprintf("INSERT INTO main.%s(%s) SELECT %s FROM s.%s WHERE run = %lld", t,
                                cols, sel, t, (long long)old);
    int rc = db_exec(db, sql, err, errlen);
    sqlite3_free(sql);
    return rc;
}

static int merge(sqlite3 *db, const char *tmp, int64_t *new_run, char *err, size_t errlen)
{
    char *sql = sqlite3_mprintf("ATTACH %Q AS s", tmp);
    int rc = db_exec(db, sql, err, errlen);
    sqlite3_free(sql);
    if (rc)
        return -1;
    rc = db_exec(db, "BEGIN", err, errlen);
    int64_t old = db_int(db, -1, "SELECT max(id) FROM s.runs");
    if (!rc && old < 0) {
        snprintf(err, errlen, "%s: no run", tmp);
        rc = -1;
    }
    if (!rc) {
        /* runs: every column but the id. */
        sqlite3_stmt *st = db_prepare(db, err, errlen, "PRAGMA main.table_info(runs)");
        char cols[2048] = "";
        size_t l = 0;
        while (st && sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 1);
            if (strcmp(name, "id"))
                l += (size_t)snprintf(cols + l, sizeof cols - l, "%s%s", l ? ", " : "", name);
        }
        sqlite3_finalize(st);
        sql = sqlite3_mprintf("INSERT INTO main.runs(%s) SELECT %s FROM s.runs WHERE id = %lld",
                              cols, cols, (long long)old);
        rc = db_exec(db, sql, err, errlen);
        sqlite3_free(sql);
    }
    int64_t nu = sqlite3_last_insert_rowid(db);
    if (!rc) {
        sql = sqlite3_mprintf("INSERT INTO main.steps SELECT (%lld << 40) + (run_step & "
                              "1099511627775), time_ns, thread, call, size, address, stack, live, "
                              "in_use, system, mmapped, rss, top, largest_free, tcache_n, "
                              "tcache_b, fast_n, fast_b, unsorted_n, unsorted_b, small_n, "
                              "small_b, large_n, large_b, mmapped_n, arenas, arena, did, a_arena, "
                              "a_in_use, a_tcache_b, a_unsorted_b, a_small_b, a_large_b FROM "
                              "s.steps WHERE run_step >> 40 = %lld",
                              (long long)nu, (long long)old);
        rc = db_exec(db, sql, err, errlen);
        sqlite3_free(sql);
    }
    for (size_t i = 0; !rc && i < sizeof tables_with_run / sizeof *tables_with_run; i++)
        rc = copy_table(db, tables_with_run[i], old, nu, err, errlen);
    char e2[256];
    if (!rc)
        rc = db_exec(db, "COMMIT", err, errlen);
    else
        db_exec(db, "ROLLBACK", e2, sizeof e2);
    db_exec(db, "DETACH s", e2, sizeof e2);
    *new_run = nu;
    return rc;
}

static int child_run(const char *trace, const struct job *j, const struct replay_options *base,
                     uint64_t every)
{
    struct replay_options ro = *base;
    ro.trace_path = trace;
    for (unsigned i = 0; i < j->set_count && ro.set_count < REPLAY_MAX_OVERRIDES; i++)
        ro.set[ro.set_count++] = j->settings[i];
    ro.progress = 0;
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    io.no_analysis = 1;
    io.quiet = 1;
    io.every = every;
    struct replay_summary sum;
    char err[1024];
    if (analyzer_replay_to_db(&ro, j->tmp, &io, &sum, err, sizeof err)) {
        fprintf(stderr, "sweep: %s: %s\n", j->label, err);
        return 1;
    }
    return 0;
}

/* A native run: the trace on the real process with `preload`, through the replayer's native
 * runner; its peak RSS (whole child) and wall time are stored as a run without steps. */
static int child_native(const char *trace, const struct job *j, const struct replay_options *base)
{
    struct replay_options ro = *base;
    ro.trace_path = trace;
    ro.progress = 0;
    char err[1024];
    struct replay_native_result res;
    if (replay_native_run(&ro, j->preload, NULL, &res, err, sizeof err)) {
        fprintf(stderr, "sweep: %s: %s\n", j->label, err);
        return 1;
    }
    sqlite3 *db = analyzer_db_open(j->tmp, 1, err, sizeof err);
    if (!db) {
        fprintf(stderr, "sweep: %s\n", err);
        return 1;
    }
    char now[32];
    db_now(now, sizeof now);
    char *sql = sqlite3_mprintf(
        "INSERT INTO runs(trace, settings, options, tool_version, started_at, ended_at, "
        "completed, peak_rss, seconds, analyzed) VALUES(%Q, %Q, 'native', %Q, %Q, %Q, 1, %llu, "
        "%.17g, 1)",
        trace, j->label, FRAGSCOPE_VERSION, now, now, (unsigned long long)res.peak_rss_bytes,
        res.wall_seconds);
    int rc = db_exec(db, sql, err, sizeof err);
    sqlite3_free(sql);
    analyzer_db_close(db);
    if (rc)
        fprintf(stderr, "sweep: %s: %s\n", j->label, err);
    return rc ? 1 : 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fragscope sweep TRACE --set NAME=V1,V2,... [--set ...] --db FILE [options]\n"
               "\n"
               "Replays the trace under every combination of the settings, one process per CPU,\n"
               "into one database (a run each), and ranks them by final heap RSS.\n"
               "\n"
               "  --set NAME=V1,V2    a setting and its values (repeatable): mxfast, tcache_count,\n"
               "                      arena_max, mmap_threshold, trim_threshold, top_pad, ...\n"
               "  --db FILE           the database the runs go to (created if missing)\n"
               "  -j, --jobs N        replays at once (default: the number of CPUs)\n"
               "  --cpus N            the CPU count the arena limit sees\n"
               "  --every N           store one step in N (peaks always)\n"
               "  --preload LIB       also run the trace natively with this allocator preloaded\n"
               "                      (repeatable; peak RSS of the whole process and time only)\n"
               "  --bytes             exact byte counts instead of KiB/MiB\n"
               "  --format F          text (default) or json: the ranking as a JSON array, one\n"
               "                      object per run: run, trace, settings, native, allocator\n"
               "                      (--preload runs), peak_rss, final_rss, peak_frag, final_frag,\n"
               "                      seconds, failed (exact bytes; null where text shows \"-\")\n"
               "  -h, --help          this help\n");
}

static int split_dim(const char *arg, struct dim *d)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1] || (size_t)(eq - arg) >= sizeof d->name)
        return -1;
    snprintf(d->name, sizeof d->name, "%.*s", (int)(eq - arg), arg);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", eq + 1);
    d->count = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (d->count == MAX_VALUES || strlen(t) >= sizeof d->values[0])
            return -1;
        snprintf(d->values[d->count++], sizeof d->values[0], "%s", t);
    }
    return d->count ? 0 : -1;
}

int cmd_sweep(int argc, char **argv)
{
    enum { OPT_SET = 256, OPT_DB, OPT_CPUS, OPT_EVERY, OPT_PRELOAD, OPT_BYTES, OPT_FORMAT };
    static const struct option opts[] = {
        {"set", required_argument, 0, OPT_SET},   {"db", required_argument, 0, OPT_DB},
        {"jobs", required_argument, 0, 'j'},      {"cpus", required_argument, 0, OPT_CPUS},
        {"every", required_argument, 0, OPT_EVERY}, {"preload", required_argument, 0, OPT_PRELOAD},
        {"bytes", no_argument, 0, OPT_BYTES},     {"help", no_argument, 0, 'h'},
        {"format", required_argument, 0, OPT_FORMAT},
        {0, 0, 0, 0},
    };
    static struct dim dims[MAX_DIMS];
    int exact = 0, json = 0;
    unsigned ndims = 0;
    const char *preloads[MAX_PRELOAD];
    unsigned npreload = 0;
    const char *db_path = NULL;
    long jobs = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t every = 1;
    struct replay_options base;
    replay_options_default(&base);
    int c;
    char *end;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hj:", opts, NULL)) != -1) {
        switch (c) {
        case OPT_SET:
            if (ndims == MAX_DIMS || split_dim(optarg, &dims[ndims])) {
                fprintf(stderr, "sweep: --set '%s': expected NAME=V1,V2,... (at most %d "
                                "settings of %d values)\n",
                        optarg, MAX_DIMS, MAX_VALUES);
                return 2;
            }
            ndims++;
            break;
        case OPT_DB:
            db_path = optarg;
            break;
        case 'j':
            jobs = strtol(optarg, &end, 10);
            if (!*optarg || *end || jobs < 1 || jobs > 256) {
                fprintf(stderr, "sweep: --jobs '%s': expected 1..256\n", optarg);
                return 2;
            }
            break;
        case OPT_CPUS:
            base.cpus = (uint32_t)strtoul(optarg, &end, 10);
            if (!*optarg || *end || base.cpus < 1) {
                fprintf(stderr, "sweep: --cpus '%s': expected a number >= 1\n", optarg);
                return 2;
            }
            break;
        case OPT_EVERY:
            every = strtoull(optarg, &end, 10);
            if (!*optarg || *end || every < 1) {
                fprintf(stderr, "sweep: --every '%s': expected a number >= 1\n", optarg);
                return 2;
            }
            break;
        case OPT_PRELOAD:
            if (npreload == MAX_PRELOAD) {
                fprintf(stderr, "sweep: --preload: at most %d allocators\n", MAX_PRELOAD);
                return 2;
            }
            if (access(optarg, R_OK)) {
                fprintf(stderr, "sweep: --preload %s: %s\n", optarg, strerror(errno));
                return 2;
            }
            preloads[npreload++] = optarg;
            break;
        case OPT_BYTES:
            exact = 1;
            break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "json") || !strcmp(optarg, "text")) {
                json = !strcmp(optarg, "json");
                break;
            }
            fprintf(stderr, "sweep: --format '%s': expected text or json\n", optarg);
            return 2;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "sweep: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "sweep: unknown option '%s'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1 || !db_path) {
        fprintf(stderr, "sweep: expected one trace and --db FILE\n"
                        "usage: fragscope sweep TRACE --set NAME=V1,V2 ... --db FILE\n");
        return 2;
    }
    const char *trace = argv[optind];
    if (access(trace, R_OK)) {
        fprintf(stderr, "sweep: %s: %s\n", trace, strerror(errno));
        return 1;
    }
    /* Validate every value as a setting before starting anything. */
    unsigned combos = 1;
    for (unsigned d = 0; d < ndims; d++) {
        for (unsigned v = 0; v < dims[d].count; v++) {
            struct ptmalloc_settings scratch;
            char kv[160], e[256];
            ptmalloc_settings_default(&scratch);
            snprintf(kv, sizeof kv, "%.63s=%.63s", dims[d].name, dims[d].values[v]);
            if (ptmalloc_settings_set(&scratch, kv, e, sizeof e)) {
                fprintf(stderr, "sweep: --set '%s': %s\n", kv, e);
                return 2;
            }
        }
        combos *= dims[d].count;
        if (combos > MAX_COMBOS) {
            fprintf(stderr, "sweep: more than %d combinations\n", MAX_COMBOS);
            return 2;
        }
    }
    char err[1024];
    sqlite3 *db = analyzer_db_open(db_path, 1, err, sizeof err);
    if (!db) {
        fprintf(stderr, "sweep: %s\n", err);
        return 1;
    }
    unsigned model_jobs = combos;
    combos += npreload;
    struct job *js = calloc(combos, sizeof *js);
    if (!js) {
        analyzer_db_close(db);
        return 1;
    }
    for (unsigned k = 0; k < combos; k++) {
        snprintf(js[k].tmp, sizeof js[k].tmp, "%s.sweep-%d-%u", db_path, (int)getpid(), k);
        unlink(js[k].tmp);
        if (k >= model_jobs) {
            js[k].preload = preloads[k - model_jobs];
            snprintf(js[k].label, sizeof js[k].label, "preload=%.400s (native)", js[k].preload);
            continue;
        }
        unsigned rest = k;
        size_t l = 0;
        for (unsigned d = 0; d < ndims; d++) {
            unsigned v = rest % dims[d].count;
            rest /= dims[d].count;
            snprintf(js[k].settings[js[k].set_count++], sizeof js[k].settings[0], "%.63s=%.63s",
                     dims[d].name, dims[d].values[v]);
            l += (size_t)snprintf(js[k].label + l, sizeof js[k].label - l, "%s%.63s=%.63s",
                                  l ? " " : "", dims[d].name, dims[d].values[v]);
        }
        if (!l)
            snprintf(js[k].label, sizeof js[k].label, "as recorded");
    }
    fflush(NULL);
    unsigned next = 0, running = 0, done = 0;
    int status = 0;
    while (done < combos) {
        while (running < (unsigned)jobs && next < combos) {
            struct job *j = &js[next++];
            pid_t pid = fork();
            if (pid == 0)
                _exit(j->preload ? child_native(trace, j, &base)
                                 : child_run(trace, j, &base, every));
            if (pid < 0) {
                j->failed = 1;
                done++;
                continue;
            }
            j->pid = pid;
            running++;
        }
        if (!running)
            continue;
        int st;
        pid_t pid = wait(&st);
        if (pid < 0)
            break;
        for (unsigned k = 0; k < combos; k++) {
            struct job *j = &js[k];
            if (j->pid != pid)
                continue;
            running--;
            done++;
            j->pid = 0;
            if (!WIFEXITED(st) || WEXITSTATUS(st)) {
                j->failed = 1;
                status = 1;
            } else if (merge(db, j->tmp, &j->run, err, sizeof err)) {
                fprintf(stderr, "sweep: %s: merging: %s\n", j->label, err);
                j->failed = 1;
                status = 1;
            } else {
                fprintf(stderr, "sweep: %u/%u %s: run %lld\n", done, combos, j->label,
                        (long long)j->run);
            }
            char journal[4300];
            snprintf(journal, sizeof journal, "%s-journal", j->tmp);
            unlink(j->tmp);
            unlink(journal);
        }
    }
    /* The ranking. */
    if (!json)
        printf("%-4s %-40s %12s %12s %10s %10s %8s\n", "run", "settings", "peak RSS",
               "final RSS", "peak frag", "final frag", "time");
    char ids[8192] = "";
    size_t l = 0;
    for (unsigned k = 0; k < combos && l < sizeof ids - 32; k++)
        if (!js[k].failed)
            l += (size_t)snprintf(ids + l, sizeof ids - l, "%s%lld", l ? "," : "",
                                  (long long)js[k].run);
    sqlite3_stmt *st = l ? db_prepare(db, err, sizeof err,
                                      "SELECT id, settings, peak_rss, final_rss, "
                                      "frag_at_rss_peak, CASE WHEN final_live > 0 THEN "
                                      "(final_rss - final_live) * 1.0 / final_live END, seconds, "
                                      "trace FROM runs WHERE id IN (%s) ORDER BY final_rss IS "
                                      "NULL, final_rss, peak_rss, settings",
                                      ids)
                         : NULL;
    /* Unknown figures (native runs: no model, so no final heap RSS) print as "-". */
    if (json)
        printf("[");
    int rows = 0;
    while (json && st && sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *allocator = NULL;
        for (unsigned k = 0; k < combos; k++)
            if (!js[k].failed && js[k].run == id)
                allocator = js[k].preload;
        printf("%s\n  {\"run\": %lld, \"trace\": ", rows++ ? "," : "", (long long)id);
        json_str(stdout, (const char *)sqlite3_column_text(st, 7));
        printf(", \"settings\": ");
        json_str(stdout, (const char *)sqlite3_column_text(st, 1));
        printf(", \"native\": %s, \"allocator\": ", allocator ? "true" : "false");
        json_str(stdout, allocator);
        printf(", \"peak_rss\": %llu, \"final_rss\": ",
               (unsigned long long)sqlite3_column_int64(st, 2));
        if (sqlite3_column_type(st, 3) == SQLITE_NULL)
            printf("null");
        else
            printf("%llu", (unsigned long long)sqlite3_column_int64(st, 3));
        for (int col = 4; col <= 6; col++) {
            printf(col == 4 ? ", \"peak_frag\": " : col == 5 ? ", \"final_frag\": "
                                                             : ", \"seconds\": ");
            if (sqlite3_column_type(st, col) == SQLITE_NULL)
                printf("null");
            else
                json_real(stdout, sqlite3_column_double(st, col));
        }
        printf(", \"failed\": false}");
    }
    while (!json && st && sqlite3_step(st) == SQLITE_ROW) {
        char b1[32], b2[32], pk[32], fin[32];
        if (sqlite3_column_type(st, 3) == SQLITE_NULL)
            snprintf(b2, sizeof b2, "-");
        else
            analyzer_bytes(b2, sizeof b2, (uint64_t)sqlite3_column_int64(st, 3), exact);
        if (sqlite3_column_type(st, 4) == SQLITE_NULL)
            snprintf(pk, sizeof pk, "-");
        else
            snprintf(pk, sizeof pk, "%.2f", sqlite3_column_double(st, 4));
        if (sqlite3_column_type(st, 5) == SQLITE_NULL)
            snprintf(fin, sizeof fin, "-");
        else
            snprintf(fin, sizeof fin, "%.2f", sqlite3_column_double(st, 5));
        printf("%-4lld %-40s %12s %12s %10s %10s %7.2fs\n", (long long)sqlite3_column_int64(st, 0),
               (const char *)sqlite3_column_text(st, 1),
               analyzer_bytes(b1, sizeof b1, (uint64_t)sqlite3_column_int64(st, 2), exact), b2, pk,
               fin, sqlite3_column_double(st, 6));
    }
    sqlite3_finalize(st);
    for (unsigned k = 0; k < combos; k++) {
        if (!js[k].failed)
            continue;
        if (!json) {
            printf("-    %-40s failed\n", js[k].label);
            continue;
        }
        printf("%s\n  {\"run\": null, \"trace\": ", rows++ ? "," : "");
        json_str(stdout, trace);
        printf(", \"settings\": ");
        json_str(stdout, js[k].label);
        printf(", \"native\": %s, \"allocator\": ", js[k].preload ? "true" : "false");
        json_str(stdout, js[k].preload);
        printf(", \"peak_rss\": null, \"final_rss\": null, \"peak_frag\": null, "
               "\"final_frag\": null, \"seconds\": null, \"failed\": true}");
    }
    if (json)
        printf("%s]\n", rows ? "\n" : "");
    free(js);
    analyzer_db_close(db);
    return status;
}
