/* placeholder until the analyzer lands */
#include <stdio.h>
#include "../cli.h"
int cmd_report(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "report: not yet\n"); return 2; }
int cmd_sweep(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "sweep: not yet\n"); return 2; }
int cmd_heap(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "heap: not yet\n"); return 2; }
int cmd_flame(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "flame: not yet\n"); return 2; }
