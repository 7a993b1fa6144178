/* placeholder until the trace reader lands */
#include <stdio.h>
#include "../cli.h"
int cmd_dump(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "dump: not yet\n"); return 2; }
