/* db_util.h: small SQLite helpers shared by the analyzer's files (not part of the contract). */
#ifndef FRAGSCOPE_DB_UTIL_H
#define FRAGSCOPE_DB_UTIL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Runs SQL text (several statements); -1 with the message in err. */
int db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* The first column of the first row of a printf-formatted (sqlite3_mprintf: %lld, %Q) query, or
 * dflt when there is no row or it is NULL. */
int64_t db_int(sqlite3 *db, int64_t dflt, const char *fmt, ...);
double db_real(sqlite3 *db, double dflt, const char *fmt, ...);
/* Prepares a printf-formatted statement; NULL with the message in err. */
sqlite3_stmt *db_prepare(sqlite3 *db, char *err, size_t errlen, const char *fmt, ...);
/* Copies a text column (or "" for NULL) into buf. */
void db_text(sqlite3_stmt *st, int col, char *buf, size_t cap);
/* Current UTC time as ISO 8601 text. */
void db_now(char *buf, size_t cap);

#endif
