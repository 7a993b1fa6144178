/* run_options.c: the replay options a run was made with, read back from its row in `runs` so
 * that analysis and what-if replays repeat the same replay (trace, settings, cpus, touch,
 * arena mode). The text forms are written by stored_options_encode (ingest.c):
 * settings "name=value name=value GLIBC_TUNABLES=...", options "cpus=N no_mallopt=0|1
 * touch=all|none arenas=serial|recorded". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analyzer_int.h"
#include "db_util.h"

static void parse_settings(struct stored_options *so, const char *text)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (!strncmp(tok, "GLIBC_TUNABLES=", 15)) {
            snprintf(so->tunables, sizeof so->tunables, "%s", tok + 15);
            so->ro.tunables = so->tunables;
        } else if (so->ro.set_count < REPLAY_MAX_OVERRIDES) {
            snprintf(so->set_text[so->ro.set_count], sizeof so->set_text[0], "%s", tok);
            so->ro.set[so->ro.set_count] = so->set_text[so->ro.set_count];
            so->ro.set_count++;
        }
    }
}

static void parse_options(struct stored_options *so, const char *text)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (!strncmp(tok, "cpus=", 5))
            so->ro.cpus = (uint32_t)strtoul(tok + 5, NULL, 10);
        else if (!strncmp(tok, "no_mallopt=", 11))
            so->ro.no_mallopt = atoi(tok + 11);
        else if (!strcmp(tok, "touch=none"))
            so->ro.touch = REPLAY_TOUCH_NONE;
        else if (!strcmp(tok, "touch=all"))
            so->ro.touch = REPLAY_TOUCH_ALL;
        else if (!strcmp(tok, "arenas=recorded"))
            so->ro.arenas = REPLAY_ARENAS_RECORDED;
        else if (!strcmp(tok, "arenas=serial"))
            so->ro.arenas = REPLAY_ARENAS_SERIAL;
    }
}

int stored_options_load(sqlite3 *db, int64_t run, struct stored_options *so, char *err,
                        size_t errlen)
{
    memset(so, 0, sizeof *so);
    replay_options_default(&so->ro);
    so->ro.verify = REPLAY_VERIFY_OFF;
    so->ro.progress = 0;
    sqlite3_stmt *st = db_prepare(db, err, errlen,
                                  "SELECT trace, settings, options FROM runs WHERE id = %lld",
                                  (long long)run);
    if (!st)
        return -1;
    int rc = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        db_text(st, 0, so->trace, sizeof so->trace);
        so->ro.trace_path = so->trace[0] ? so->trace : NULL;
        parse_settings(so, (const char *)sqlite3_column_text(st, 1) ?: "");
        parse_options(so, (const char *)sqlite3_column_text(st, 2) ?: "");
        rc = 0;
    } else {
        snprintf(err, errlen, "no run %lld in the database", (long long)run);
    }
    sqlite3_finalize(st);
    return rc;
}
