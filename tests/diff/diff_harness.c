/* diff_harness.c: command-line front end of the differential harness.
 *
 *   diff_harness --seed N [--ops M] [--count K] [--threads] [--writes]
 *                [--tunables T] [--env NAME=VALUE]... [--variant V]
 *                [--alternating [--pairs P] [--write-blocks] [--mxfast0]]
 *                [--no-shrink] [--repro FILE] [--print] [--keep-going]
 *
 * Generates the sequence of each seed (the seed also picks a settings variant unless --tunables,
 * --env or --variant say otherwise), runs it on glibc and on the model, and stops at the first
 * seed where they differ: prints the difference, shrinks the sequence, prints the reproducer as
 * C-like lines and, with --repro, writes it to FILE (created, never overwritten). With
 * --keep-going it runs every seed instead, prints one line per failing seed and the pass rate.
 * Exit status: 0 all agree, 1 a difference, 2 usage or run error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "diff_model.h"
#include "seq.h"
#include "seqgen.h"
#include "shrink.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: diff_harness --seed N [options]\n"
            "Runs generated allocation sequences on the real glibc and on the ptmalloc model,\n"
            "and reports the first difference with a shrunk reproducer.\n"
            "  --seed N            first seed (default 1)\n"
            "  --count K           run K seeds from N, stop at the first failing one (default 1)\n"
            "  --ops M             ops per sequence before the final frees (default 200)\n"
            "  --threads[=T]       threaded sequences, up to T threads alive (default 6)\n"
            "  --writes            write blocks now and then and compare heap RSS\n"
            "  --tunables T        GLIBC_TUNABLES for every seed (instead of the seed's variant)\n"
            "  --env NAME=VALUE    a MALLOC_* variable for every seed (repeatable)\n"
            "  --variant V         settings variant V for every seed (0..%u)\n"
            "  --alternating       the 4000-alternating-block case instead of random sequences\n"
            "  --pairs P           pairs for --alternating (default 4000)\n"
            "  --write-blocks      --alternating: write every block (RSS compared)\n"
            "  --mxfast0           --alternating: mallopt(M_MXFAST, 0) first\n"
            "  --no-shrink         print the failing sequence as it is\n"
            "  --max-shrink-runs R trial runs allowed while shrinking (default 3000)\n"
            "  --repro FILE        also write the reproducer to FILE\n"
            "  --print             print each sequence before running it\n"
            "  --keep-going        run every seed; one line per failure, then the pass rate\n"
            "  --model-tunables T  extra GLIBC_TUNABLES for the model only (to test the harness)\n"
            "  -h, --help          this text\n",
            seqgen_variant_count() - 1);
}

static int write_repro(const char *path, const struct seq *s, const struct diff_result *r,
                       const char *title)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "diff_harness: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -1;
    }
    fprintf(f, "/* difference: %s */\n", r->what);
    seq_print(f, s, r->op, title);
    return fclose(f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"seed", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'c'},
        {"ops", required_argument, NULL, 'o'},
        {"threads", optional_argument, NULL, 't'},
        {"writes", no_argument, NULL, 'w'},
        {"tunables", required_argument, NULL, 'T'},
        {"env", required_argument, NULL, 'e'},
        {"variant", required_argument, NULL, 'v'},
        {"alternating", no_argument, NULL, 'A'},
        {"pairs", required_argument, NULL, 'P'},
        {"write-blocks", no_argument, NULL, 'W'},
        {"mxfast0", no_argument, NULL, 'M'},
        {"no-shrink", no_argument, NULL, 'n'},
        {"max-shrink-runs", required_argument, NULL, 'R'},
        {"repro", required_argument, NULL, 'r'},
        {"print", no_argument, NULL, 'p'},
        {"keep-going", no_argument, NULL, 'k'},
        {"model-tunables", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t seed = 1, count = 1;
    unsigned ops = 200, pairs = 4000, max_runs = 3000;
    int threads = 0, writes = 0, alternating = 0, write_blocks = 0, mxfast0 = 0;
    int shrink = 1, print = 0, variant = -1, fixed = 0, keep_going = 0;
    uint64_t failed = 0;
    const char *repro = NULL;
    struct seq_settings fixed_set;
    memset(&fixed_set, 0, sizeof fixed_set);
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 's': seed = strtoull(optarg, &end, 0); break;
        case 'c': count = strtoull(optarg, &end, 0); break;
        case 'o': ops = (unsigned)strtoul(optarg, &end, 0); break;
        case 't': threads = optarg ? (int)strtol(optarg, &end, 0) : 6; break;
        case 'w': writes = 1; break;
        case 'T':
            if (strlen(optarg) >= sizeof fixed_set.tunables) {
                fprintf(stderr, "diff_harness: --tunables too long\n");
                return 2;
            }
            strcpy(fixed_set.tunables, optarg);
            fixed = 1;
            break;
        case 'e':
            if (!strchr(optarg, '=') || seq_setenv(&fixed_set, optarg) != 0) {
                fprintf(stderr, "diff_harness: --env wants NAME=VALUE (at most %d)\n",
                        SEQ_MAX_ENV);
                return 2;
            }
            fixed = 1;
            break;
        case 'v': variant = (int)strtol(optarg, &end, 0); break;
        case 'A': alternating = 1; break;
        case 'P': pairs = (unsigned)strtoul(optarg, &end, 0); break;
        case 'W': write_blocks = 1; break;
        case 'M': mxfast0 = 1; break;
        case 'n': shrink = 0; break;
        case 'R': max_runs = (unsigned)strtoul(optarg, &end, 0); break;
        case 'r': repro = optarg; break;
        case 'p': print = 1; break;
        case 'k': keep_going = 1; break;
        case 'm': diff_model_only_tunables = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (end && *end) {
            fprintf(stderr, "diff_harness: bad number '%s'\n", optarg);
            return 2;
        }
    }
    if (optind < argc || count == 0 ||
        (variant >= 0 && (unsigned)variant >= seqgen_variant_count())) {
        usage(stderr);
        return 2;
    }

    struct seq s;
    seq_init(&s);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t k = 0; k < count; k++) {
        uint64_t sd = seed + k;
        const char *vname = "given";
        if (fixed) {
            s.set = fixed_set;
        } else {
            unsigned v = variant >= 0 ? (unsigned)variant : seqgen_variant_of_seed(sd);
            if (alternating && variant < 0)
                v = 0;
            vname = seqgen_variant(v, &s.set);
        }
        if (alternating) {
            seqgen_alternating(&s, pairs, write_blocks, mxfast0, 500);
        } else {
            struct seqgen_opts go = {sd, ops, threads, writes};
            seqgen_random(&s, &go);
        }
        char title[320];
        if (alternating)
            snprintf(title, sizeof title, "alternating %u pairs%s%s, settings %s", pairs,
                     write_blocks ? ", written" : "", mxfast0 ? ", M_MXFAST=0" : "", vname);
        else
            snprintf(title, sizeof title, "seed %" PRIu64 " ops %u%s%s, settings %s", sd, ops,
                     threads ? " threaded" : "", writes ? " writes" : "", vname);
        if (diff_model_only_tunables) {
            size_t l = strlen(title);
            snprintf(title + l, sizeof title - l, ", model only: %s", diff_model_only_tunables);
        }
        if (print)
            seq_print(stdout, &s, UINT64_MAX, title);
        struct diff_result r;
        char err[512];
        int rc = diff_run(&s, &r, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "diff_harness: %s: %s\n", title, err);
            seq_free(&s);
            return 2;
        }
        if (rc == 1 && keep_going) {
            failed++;
            printf("FAIL %s: %s\n", title, r.what);
            fflush(stdout);
            continue;
        }
        if (rc == 1) {
            printf("FAIL %s (sequence of %" PRIu64 " ops)\n  %s\n", title, s.n, r.what);
            if (shrink) {
                unsigned runs = shrink_seq(&s, &r, max_runs);
                printf("shrunk to %" PRIu64 " ops in %u runs; difference now:\n  %s\n", s.n, runs,
                       r.what);
            }
            seq_print(stdout, &s, r.op, title);
            if (repro && write_repro(repro, &s, &r, title) != 0) {
                seq_free(&s);
                return 2;
            }
            seq_free(&s);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    seq_free(&s);
    if (failed) {
        printf("%" PRIu64 "/%" PRIu64 " sequences agree (%.1f%%), %.2f s\n", count - failed,
               count, 100.0 * (double)(count - failed) / (double)count, secs);
        return 1;
    }
    printf("OK: %" PRIu64 " sequence%s agree (%.2f s)\n", count, count == 1 ? "" : "s", secs);
    return 0;
}
