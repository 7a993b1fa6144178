/* placeholder until the recorder lands */
#include <stdio.h>
#include "../cli.h"
int cmd_record(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "record: not yet\n"); return 2; }
