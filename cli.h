/* cli.h: the subcommands of `fragscope`. Each lives with the library it drives and parses its
 * own options with getopt_long; argv[0] is the subcommand's name. Each prints its --help and
 * returns the process exit status (2 for bad usage, with a message naming the bad option). */
#ifndef FRAGSCOPE_CLI_H
#define FRAGSCOPE_CLI_H

int cmd_record(int argc, char **argv);        /* tracer/record_cli.c */
int cmd_dump(int argc, char **argv);          /* tracer/dump_cli.c */
int cmd_import_mtrace(int argc, char **argv); /* tracer/mtrace_import.c */
int cmd_replay(int argc, char **argv);        /* replayer/replay_cli.c */
int cmd_report(int argc, char **argv);        /* analyzer/report_cli.c */
int cmd_sweep(int argc, char **argv);         /* analyzer/sweep.c */
int cmd_heap(int argc, char **argv);          /* analyzer/heap_cli.c */
int cmd_flame(int argc, char **argv);         /* analyzer/flame.c */

#define FRAGSCOPE_VERSION "0.1.0"

#endif
