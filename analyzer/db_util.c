/* db_util.c: small SQLite helpers: one-shot statements, scalar queries with printf-style SQL
 * (sqlite3_vmprintf, so %Q quotes text safely), column text copies and timestamps. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "db_util.h"

int db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static sqlite3_stmt *prepare_v(sqlite3 *db, const char *fmt, va_list ap)
{
    char *sql = sqlite3_vmprintf(fmt, ap);
    if (!sql)
        return NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        st = NULL;
    sqlite3_free(sql);
    return st;
}

int64_t db_int(sqlite3 *db, int64_t dflt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prepare_v(db, fmt, ap);
    va_end(ap);
    if (!st)
        return dflt;
    int64_t v = dflt;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

double db_real(sqlite3 *db, double dflt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prepare_v(db, fmt, ap);
    va_end(ap);
    if (!st)
        return dflt;
    double v = dflt;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

sqlite3_stmt *db_prepare(sqlite3 *db, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prepare_v(db, fmt, ap);
    va_end(ap);
    if (!st)
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    return st;
}

void db_text(sqlite3_stmt *st, int col, char *buf, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(buf, cap, "%s", t ? (const char *)t : "");
}

void db_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
