/* placeholder until the trace reader lands */
#include <stdio.h>
#include "../cli.h"
int cmd_import_mtrace(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "import-mtrace: not yet\n"); return 2; }
