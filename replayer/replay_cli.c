/* replay_cli.c: `fragscope replay TRACE [options]`.
 *
 * Parses the options into a struct replay_options, installs a SIGINT handler that stops the
 * replay cleanly (the summary is then marked incomplete), and runs one of:
 *   - the model replay (replay_run) with a summary on stdout;
 *   - --db FILE: the analyzer's store through replay_db_hook (see replay.h), then the summary;
 *   - --native: the trace on the real allocator in a child (replay_native, native.c).
 * Exit status: 0 done, 1 error (unreadable trace, ...), 2 bad usage, 3 --verify=strict found a
 * divergence, 130 interrupted (the summary, marked incomplete, is printed first).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../cli.h"
#include "replay.h"
#include "replay_native.h"

static volatile int replay_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    replay_interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: fragscope replay TRACE [options]\n"
        "\n"
        "Drives a recorded trace, in its recorded order, through the glibc 2.36 malloc model and\n"
        "prints a summary: events, peak and final live / system / resident bytes, fragmentation,\n"
        "frees of unknown pointers and double frees (skipped), speed.\n"
        "\n"
        "settings (default: those the trace recorded: GLIBC_TUNABLES, MALLOC_*, CPU count):\n"
        "  --set NAME=VALUE     override one setting (repeatable): mxfast, trim_threshold,\n"
        "                       top_pad, mmap_threshold, mmap_max, arena_max, arena_test,\n"
        "                       tcache_count, tcache_max, tcache_unsorted_limit, perturb, hugetlb\n"
        "  --tunables STRING    apply a GLIBC_TUNABLES string on top of the recorded settings\n"
        "  --cpus N             the CPU count the arena limit sees\n"
        "  --no-mallopt         ignore the program's own mallopt calls\n"
        "model:\n"
        "  --touch all|none     bytes the program writes (RSS model): every requested byte\n"
        "                       (default), or none\n"
        "  --arenas serial|recorded\n"
        "                       arena of each thread: as glibc picks it in a serial run\n"
        "                       (default), or the arena the thread really used\n"
        "  --frees recorded|late\n"
        "                       when frees reach the model while several threads run: in the\n"
        "                       recorded order (default), or each as late as the recording\n"
        "                       allows (a free may really have waited for an arena lock)\n"
        "  --until STEP         stop after this step\n"
        "checks and outputs:\n"
        "  --verify[=strict]    compare every replayed address with the recorded one\n"
        "                       (normalised), and mallinfo2 / residency samples; strict: exit\n"
        "                       status 3 on any divergence\n"
        "  --db FILE            store per-step statistics for `fragscope report`\n"
        "  --every N            with --db: store one step in N (peaks always)\n"
        "  --snapshot-at STEP   with --db: also store every chunk at STEP (repeatable)\n"
        "  --no-analysis        with --db: store the steps only (report analyses later)\n"
        "  --no-whatif          with --db: findings without what-if replays\n"
        "  --native             run the trace on the real allocator in a child process instead\n"
        "                       (wall time, peak RSS, final mallinfo2)\n"
        "  --preload LIB        with --native: LD_PRELOAD this allocator into the child\n"
        "  --no-progress        no progress bar (shown on a terminal after one second)\n"
        "  -h, --help           this help\n"
        "\n"
        "Exit status: 0 done, 1 error, 2 bad usage, 3 --verify=strict found a divergence,\n"
        "130 interrupted (SIGINT: the summary is printed, marked incomplete).\n");
}

static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "replay: %s: '%s' is not a number >= %llu\n", opt, s ? s : "",
            (unsigned long long)min);
    return -1;
}

enum { OPT_SET = 256, OPT_TUNABLES, OPT_CPUS, OPT_NO_MALLOPT, OPT_TOUCH, OPT_ARENAS, OPT_UNTIL,
       OPT_VERIFY, OPT_FREES, OPT_DB, OPT_NATIVE, OPT_PRELOAD, OPT_NO_PROGRESS, OPT_DB_OPTION };

int cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"set", required_argument, 0, OPT_SET},
        {"tunables", required_argument, 0, OPT_TUNABLES},
        {"cpus", required_argument, 0, OPT_CPUS},
        {"no-mallopt", no_argument, 0, OPT_NO_MALLOPT},
        {"touch", required_argument, 0, OPT_TOUCH},
        {"arenas", required_argument, 0, OPT_ARENAS},
        {"until", required_argument, 0, OPT_UNTIL},
        {"verify", optional_argument, 0, OPT_VERIFY},
        {"frees", required_argument, 0, OPT_FREES},
        {"db", required_argument, 0, OPT_DB},
        /* The store's own options: the analyzer's hook reads them from argv. */
        {"every", required_argument, 0, OPT_DB_OPTION},
        {"snapshot-at", required_argument, 0, OPT_DB_OPTION},
        {"no-analysis", no_argument, 0, OPT_DB_OPTION},
        {"no-whatif", no_argument, 0, OPT_DB_OPTION},
        {"native", no_argument, 0, OPT_NATIVE},
        {"preload", required_argument, 0, OPT_PRELOAD},
        {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct replay_options o;
    replay_options_default(&o);
    o.progress = 1;
    o.symbolize = 1;
    const char *db = NULL, *preload = NULL;
    int db_options = 0;
    int native = 0;
    uint64_t v = 0;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_SET:
            if (!strchr(optarg, '=')) {
                fprintf(stderr, "replay: --set '%s': expected NAME=VALUE\n", optarg);
                return 2;
            }
            if (o.set_count == REPLAY_MAX_OVERRIDES) {
                fprintf(stderr, "replay: --set: at most %d overrides\n", REPLAY_MAX_OVERRIDES);
                return 2;
            }
            o.set[o.set_count++] = optarg;
            break;
        case OPT_TUNABLES:
            o.tunables = optarg;
            break;
        case OPT_CPUS:
            if (parse_u64("--cpus", optarg, 1, &v) < 0 || v > 1u << 20) {
                if (v > 1u << 20)
                    fprintf(stderr, "replay: --cpus: %s is too many\n", optarg);
                return 2;
            }
            o.cpus = (uint32_t)v;
            break;
        case OPT_NO_MALLOPT:
            o.no_mallopt = 1;
            break;
        case OPT_TOUCH:
            if (!strcmp(optarg, "all"))
                o.touch = REPLAY_TOUCH_ALL;
            else if (!strcmp(optarg, "none"))
                o.touch = REPLAY_TOUCH_NONE;
            else {
                fprintf(stderr, "replay: --touch '%s': expected all or none\n", optarg);
                return 2;
            }
            break;
        case OPT_ARENAS:
            if (!strcmp(optarg, "serial"))
                o.arenas = REPLAY_ARENAS_SERIAL;
            else if (!strcmp(optarg, "recorded"))
                o.arenas = REPLAY_ARENAS_RECORDED;
            else {
                fprintf(stderr, "replay: --arenas '%s': expected serial or recorded\n", optarg);
                return 2;
            }
            break;
        case OPT_UNTIL:
            if (parse_u64("--until", optarg, 1, &v) < 0)
                return 2;
            o.until_step = v;
            break;
        case OPT_VERIFY:
            if (!optarg)
                o.verify = REPLAY_VERIFY_ON;
            else if (!strcmp(optarg, "strict"))
                o.verify = REPLAY_VERIFY_STRICT;
            else {
                fprintf(stderr, "replay: --verify='%s': expected --verify or --verify=strict\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_FREES:
            if (!strcmp(optarg, "recorded"))
                o.free_order = REPLAY_FREES_RECORDED;
            else if (!strcmp(optarg, "late"))
                o.free_order = REPLAY_FREES_LATE;
            else {
                fprintf(stderr, "replay: --frees '%s': expected recorded or late\n", optarg);
                return 2;
            }
            break;
        case OPT_DB:
            db = optarg;
            break;
        case OPT_DB_OPTION:
            db_options = 1;
            break;
        case OPT_NATIVE:
            native = 1;
            break;
        case OPT_PRELOAD:
            preload = optarg;
            break;
        case OPT_NO_PROGRESS:
            o.progress = 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "replay: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            if (optopt && optopt < 256)
                fprintf(stderr, "replay: unknown option '-%c'\n", optopt);
            else
                fprintf(stderr, "replay: unknown option '%s'\n", argv[optind - 1]);
            fprintf(stderr, "Run 'fragscope replay --help' for the options.\n");
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "replay: no trace given\nusage: fragscope replay TRACE [options]\n");
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "replay: one trace at a time ('%s' is extra)\n", argv[optind + 1]);
        return 2;
    }
    o.trace_path = argv[optind];
    if (preload && !native) {
        fprintf(stderr, "replay: --preload needs --native\n");
        return 2;
    }
    if (native && (db || o.verify != REPLAY_VERIFY_OFF)) {
        fprintf(stderr, "replay: --native runs the real allocator: it does not combine with %s\n",
                db ? "--db" : "--verify");
        return 2;
    }
    {
        /* Settings errors are usage errors: check them before touching the trace. */
        struct ptmalloc_settings scratch;
        char e[256];
        ptmalloc_settings_default(&scratch);
        if (o.tunables && ptmalloc_settings_tunables(&scratch, o.tunables, e, sizeof e) < 0) {
            fprintf(stderr, "replay: --tunables '%s': %s\n", o.tunables, e);
            return 2;
        }
        for (unsigned i = 0; i < o.set_count; i++)
            if (ptmalloc_settings_set(&scratch, o.set[i], e, sizeof e) < 0) {
                fprintf(stderr, "replay: --set '%s': %s\n", o.set[i], e);
                return 2;
            }
    }
    if (db_options && !db) {
        fprintf(stderr, "replay: --every, --snapshot-at, --no-analysis and --no-whatif need --db\n");
        return 2;
    }
    if (db && !replay_db_hook) {
        fprintf(stderr, "replay: --db: the analyzer's store is not available in this build\n");
        return 1;
    }
    o.progress = o.progress && isatty(STDERR_FILENO);

    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    replay_interrupted = 0;
    sigaction(SIGINT, &sa, &old_sa);
    o.interrupted = &replay_interrupted;

    char err[512];
    int rc;
    if (native) {
        rc = replay_native(&o, preload, stdout, err, sizeof err);
        sigaction(SIGINT, &old_sa, NULL);
        if (rc < 0) {
            fprintf(stderr, "replay: %s\n", err);
            return 1;
        }
        return 0;
    }

    struct replay_summary s;
    if (db)
        rc = replay_db_hook(db, &o, argc, argv, &s, err, sizeof err);
    else
        rc = replay_run(&o, NULL, NULL, &s, stdout, err, sizeof err);
    sigaction(SIGINT, &old_sa, NULL);
    if (rc < 0) {
        fprintf(stderr, "replay: %s\n", err);
        return 1;
    }
    replay_print_summary(stdout, &o, &s);
    fflush(stdout);
    if (!s.completed && !s.interrupted && !s.until_step)
        fprintf(stderr, "replay: warning: %s: the trace ends early at offset %llu (%s); "
                        "replayed what was readable\n", o.trace_path,
                (unsigned long long)s.reader.stop_offset,
                s.reader.reason[0] ? s.reader.reason : "no end marker");
    if (o.verify == REPLAY_VERIFY_STRICT && s.first_divergence_step)
        return 3;
    return s.interrupted ? 130 : 0;
}
