/* fragscope.c: the command line. One binary, one subcommand per capability; each subcommand
 * parses its own options (getopt_long) and has its own --help. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"record", cmd_record, "run a program and record its malloc calls into a trace"},
    {"dump", cmd_dump, "print a trace's events, or --stats"},
    {"import-mtrace", cmd_import_mtrace, "convert a glibc mtrace(3) log into a trace"},
    {"replay", cmd_replay, "replay a trace through the ptmalloc2 model (--verify, --db, --native)"},
    {"report", cmd_report, "explain the fragmentation of a replayed run"},
    {"sweep", cmd_sweep, "replay a trace under many settings and rank them"},
    {"heap", cmd_heap, "show every chunk and bin at a step"},
    {"flame", cmd_flame, "folded stacks of live and pinned bytes"},
};
#define N_SUBCOMMANDS (sizeof subcommands / sizeof subcommands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: fragscope COMMAND [OPTIONS] ...\n\n"
               "Why is my process holding memory it has freed, and what would fix it?\n\n"
               "commands:\n");
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(f, "  %-14s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\nRun 'fragscope COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("fragscope %s (models glibc 2.36 malloc, x86_64)\n", FRAGSCOPE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        if (!strcmp(argv[1], subcommands[i].name))
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "fragscope: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
