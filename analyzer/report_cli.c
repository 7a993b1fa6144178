/* report_cli.c: `fragscope report DB [--run N] [--format text|json|html] [-o FILE] [--bytes]`, and the
 * analyzer's side of `fragscope replay --db FILE`.
 *
 * The report loads the model of one run (report_model.c) and renders it. A run stored without
 * its analysis (an older database, --no-analysis, or a run whose analysis failed) is analysed
 * first when its trace is still readable, so the findings are there.
 *
 * `replay --db` reaches the store through replay_db_hook (replay.h): this file always links
 * into fragscope (it defines cmd_report), and its constructor sets the hook. The hook reads the
 * store's own options from the replay's arguments: --every N, --snapshot-at STEP (repeatable),
 * --no-analysis and --no-whatif.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "../cli.h"
#include "analyzer_int.h"
#include "db_util.h"
#include "report_html.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fragscope report DB [options]\n"
            "\n"
            "Explains where a replayed run's heap RSS is and why: a ledger that adds up to heap\n"
            "RSS, fragmentation measures, free chunks by size, and findings (cause, evidence,\n"
            "fix), each fix proven by a what-if replay.\n"
            "\n"
            "  --run N              the run to report (default: the newest)\n"
            "  --format text|json|html  output format (default text; html: one self-contained page)\n"
            "  -o, --output FILE    write to FILE (created 0600; never through a symlink)\n"
            "  -f, --force          replace FILE if it is an existing regular file\n"
            "  --bytes              exact byte counts instead of KiB / MiB\n"
            "  --width N            wrap text lines at N columns (default: the terminal's width,\n"
            "                       or 100 when not a terminal; 0: no wrapping)\n"
            "  --reanalyze          recompute snapshots, call sites and findings first\n"
            "  --no-whatif          with --reanalyze: skip the what-if replays\n"
            "  -h, --help           this help\n"
            "\n"
            "Colour only on a terminal, and never when NO_COLOR is set (not empty).\n");
}

static int parse_run(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v <= 0)
        return -1;
    *out = v;
    return 0;
}

int cmd_report(int argc, char **argv)
{
    enum { OPT_RUN = 256, OPT_FORMAT, OPT_BYTES, OPT_REANALYZE, OPT_NO_WHATIF, OPT_WIDTH };
    static const struct option opts[] = {
        {"run", required_argument, 0, OPT_RUN},
        {"format", required_argument, 0, OPT_FORMAT},
        {"bytes", no_argument, 0, OPT_BYTES},
        {"width", required_argument, 0, OPT_WIDTH},
        {"reanalyze", no_argument, 0, OPT_REANALYZE},
        {"no-whatif", no_argument, 0, OPT_NO_WHATIF},
        {"help", no_argument, 0, 'h'},
        {"output", required_argument, 0, 'o'},
        {"force", no_argument, 0, 'f'},
        {0, 0, 0, 0},
    };
    int64_t run = -1;
    int json = 0, reanalyze = 0, no_whatif = 0, html = 0, force = 0;
    const char *out_path = NULL;
    struct analyzer_render_options ro = {0, 0, -1};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ho:f", opts, NULL)) != -1) {
        switch (c) {
        case OPT_RUN:
            if (parse_run(optarg, &run)) {
                fprintf(stderr, "report: --run '%s': expected a run number >= 1\n", optarg);
                return 2;
            }
            break;
        case OPT_FORMAT:
            html = !strcmp(optarg, "html");
            if (!strcmp(optarg, "json"))
                json = 1;
            else if (!strcmp(optarg, "text") || html)
                json = 0;
            else {
                fprintf(stderr, "report: --format '%s': expected text, json or html\n", optarg);
                return 2;
            }
            break;
        case OPT_BYTES:
            ro.exact_bytes = 1;
            break;
        case OPT_WIDTH: {
            char *end;
            long w = strtol(optarg, &end, 10);
            if (!*optarg || *end || w < 0 || (w > 0 && w < 40) || w > 10000) {
                fprintf(stderr, "report: --width '%s': expected 0 or a number from 40 to 10000\n",
                        optarg);
                return 2;
            }
            ro.width = (int)w;
            break;
        }
        case OPT_REANALYZE:
            reanalyze = 1;
            break;
        case OPT_NO_WHATIF:
            no_whatif = 1;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "report: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "report: unknown option '%s'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "report: expected one database\nusage: fragscope report DB [options]\n");
        return 2;
    }
    const char *path = argv[optind];
    char err[1024];
    sqlite3 *db = analyzer_db_open(path, 0, err, sizeof err);
    if (!db) {
        fprintf(stderr, "report: %s\n", err);
        return 1;
    }
    if (run < 0)
        run = analyzer_db_last_run(db);
    if (run < 0) {
        fprintf(stderr, "report: %s: the database holds no run\n", path);
        analyzer_db_close(db);
        return 1;
    }
    int analyzed = (int)db_int(db, 0, "SELECT analyzed FROM runs WHERE id = %lld", (long long)run);
    int has_trace = (int)db_int(db, 0, "SELECT trace IS NOT NULL AND final_step > 0 FROM runs "
                                       "WHERE id = %lld", (long long)run);
    if ((reanalyze || !analyzed) && has_trace) {
        struct analyzer_ingest_options io;
        analyzer_ingest_options_default(&io);
        io.no_whatif = no_whatif;
        if (reanalyze) {
            char *sql = sqlite3_mprintf("DELETE FROM snapshots WHERE run = %lld AND snap IN (1, 3);"
                                        "DELETE FROM chunks WHERE run = %lld AND snap IN (1, 3);",
                                        (long long)run, (long long)run);
            db_exec(db, sql, err, sizeof err);
            sqlite3_free(sql);
        }
        if (analyzer_analyze_run(db, run, &io, err, sizeof err))
            fprintf(stderr, "report: warning: run %lld not analysed: %s\n", (long long)run, err);
    }
    struct analyzer_report r;
    if (analyzer_report_load(db, run, &r, err, sizeof err)) {
        fprintf(stderr, "report: %s: %s\n", path, err);
        analyzer_db_close(db);
        return 1;
    }
    FILE *out = out_path ? report_output_open(out_path, force, err, sizeof err) : stdout;
    int status = out ? 0 : 1;
    ro.color = !json && !html && !out_path && analyzer_color_wanted(STDOUT_FILENO);
    if (ro.width < 0) {
        /* The terminal's width; 100 columns for a file or a pipe. */
        struct winsize ws;
        ro.width = !out_path && isatty(STDOUT_FILENO) &&
                           ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40
                       ? ws.ws_col
                       : 100;
    }
    if (out && html)
        status = analyzer_report_html(out, db, &r, &ro, err, sizeof err) ? 1 : 0;
    else if (out && json)
        analyzer_report_json(out, &r);
    else if (out)
        analyzer_report_text(out, &r, &ro);
    if (out_path && out && report_output_close(out, out_path, err, sizeof err))
        status = 1;
    if (status)
        fprintf(stderr, "report: %s\n", err);
    analyzer_report_free(&r);
    analyzer_db_close(db);
    return status;
}

/* ---- replay --db ---- */

static int db_hook(const char *db_path, const struct replay_options *o, int argc, char **argv,
                   struct replay_summary *out, char *err, size_t errlen)
{
    struct analyzer_ingest_options io;
    analyzer_ingest_options_default(&io);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--"))
            break;
        if (!strncmp(a, "--every", 7) || !strncmp(a, "--snapshot-at", 13)) {
            const char *eq = strchr(a, '=');
            v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            char *end;
            unsigned long long n = v ? strtoull(v, &end, 10) : 0;
            if (!v || !*v || *end || n == 0) {
                snprintf(err, errlen, "%.*s: '%s' is not a number >= 1",
                         eq ? (int)(eq - a) : (int)strlen(a), a, v ? v : "");
                return -1;
            }
            if (a[2] == 'e')
                io.every = n;
            else if (io.snapshot_at_count < ANALYZER_MAX_SNAPSHOT_AT)
                io.snapshot_at[io.snapshot_at_count++] = n;
        } else if (!strcmp(a, "--no-analysis")) {
            io.no_analysis = 1;
        } else if (!strcmp(a, "--no-whatif")) {
            io.no_whatif = 1;
        }
    }
    io.quiet = !isatty(STDERR_FILENO);
    if (analyzer_replay_to_db(o, db_path, &io, out, err, errlen))
        return -1;
    char e2[256];
    sqlite3 *db = analyzer_db_open(db_path, 0, e2, sizeof e2);
    int64_t run = db ? analyzer_db_last_run(db) : -1;
    if (db)
        analyzer_db_close(db);
    fprintf(stderr, "replay: stored as run %lld in %s%s; see: fragscope report %s --run %lld\n",
            (long long)run, db_path, out && !out->completed ? " (incomplete)" : "", db_path,
            (long long)run);
    return 0;
}

__attribute__((constructor)) static void install_db_hook(void)
{
    replay_db_hook = db_hook;
}
