/* row_batch.h: batched INSERTs of integer rows (internal to the analyzer).
 *
 * The ingest stores one or two rows per replayed step; SQLite's fixed cost per executed statement
 * (step, reset, halt) is larger than the cost of a row, so rows are gathered in memory and
 * inserted `cap` at a time by one multi-row INSERT. Values are 64-bit integers or NULL. A batch
 * is written when full and by row_batch_flush (before every COMMIT: a committed chunk holds every
 * row added before it).
 */
#ifndef FRAGSCOPE_ROW_BATCH_H
#define FRAGSCOPE_ROW_BATCH_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct row_batch {
    sqlite3 *db;
    sqlite3_stmt *multi;        /* INSERT ... VALUES (?,...), ... cap rows */
    sqlite3_stmt *single;       /* the same for one row: what is left at a flush */
    int cols, cap, n;
    int64_t *v;                 /* cap * cols values */
    unsigned char *is_null;     /* cap * cols */
    unsigned char *bound;       /* per parameter of multi, then of single: 0 unset, 1 NULL,
                                   2 a value (bindings stay across resets) */
    int64_t *bound_v;           /* the value bound where bound is 2 */
};

/* Prepares the statements for `table` with `cols` columns. 0, or -1 with a message. */
int row_batch_init(struct row_batch *b, sqlite3 *db, const char *table, int cols, int cap,
                   char *err, size_t errlen);
/* The next row's slots (cols values and null flags, to be filled by the caller; the flags are
 * cleared). Call row_batch_commit_row after filling them. */
static inline int64_t *row_batch_next(struct row_batch *b, unsigned char **is_null)
{
    *is_null = b->is_null + (size_t)b->n * b->cols;
    return b->v + (size_t)b->n * b->cols;
}
/* Counts the row filled in; writes the batch when it is full. SQLITE_OK or an error code. */
int row_batch_commit_row(struct row_batch *b);
/* Writes the rows gathered so far. SQLITE_OK or an error code. */
int row_batch_flush(struct row_batch *b);
void row_batch_free(struct row_batch *b);

#endif
