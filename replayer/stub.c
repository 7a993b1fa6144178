/* placeholder until the replayer lands */
#include <stdio.h>
#include "../cli.h"
int cmd_replay(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "replay: not yet\n"); return 2; }
