/* placeholder until the tracer lands */
#include <stdio.h>
#include "../cli.h"
int cmd_record(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "record: not yet\n"); return 2; }
int cmd_dump(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "dump: not yet\n"); return 2; }
int cmd_import_mtrace(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "import-mtrace: not yet\n"); return 2; }
