/* findings.c: placeholder */
#include "analyzer_int.h"
int findings_compute(sqlite3 *db, int64_t run, const struct stored_options *so, int whatif,
                     int quiet, char *err, size_t errlen)
{ (void)db; (void)run; (void)so; (void)whatif; (void)quiet; (void)err; (void)errlen; return 0; }
