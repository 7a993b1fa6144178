/* row_batch.c: batched INSERTs of integer rows (see row_batch.h).
 *
 * The multi-row statement has cap * cols parameters. Binding is the remaining per-row cost (each
 * sqlite3_bind_* call is ~90 instructions), so a parameter that already holds the value is not
 * bound again: a NULL (the ingest stores unchanged counters as NULL: most parameters stay NULL
 * from batch to batch), or the same number (the thread, the call, `did` often repeat).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "row_batch.h"

static char *insert_sql(const char *table, int cols, int rows)
{
    size_t cap = strlen(table) + 32 + (size_t)rows * ((size_t)cols * 2 + 4);
    char *sql = malloc(cap);
    if (!sql)
        return NULL;
    size_t n = (size_t)snprintf(sql, cap, "INSERT INTO %s VALUES", table);
    for (int r = 0; r < rows; r++) {
        sql[n++] = r ? ',' : ' ';
        sql[n++] = '(';
        for (int c = 0; c < cols; c++) {
            if (c)
                sql[n++] = ',';
            sql[n++] = '?';
        }
        sql[n++] = ')';
    }
    sql[n] = 0;
    return sql;
}

int row_batch_init(struct row_batch *b, sqlite3 *db, const char *table, int cols, int cap,
                   char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    b->db = db;
    b->cols = cols;
    b->cap = cap;
    b->v = calloc((size_t)cap * cols, sizeof *b->v);
    b->is_null = calloc((size_t)cap * cols, 1);
    b->bound = calloc((size_t)(cap + 1) * cols, 1);
    b->bound_v = calloc((size_t)(cap + 1) * cols, sizeof *b->bound_v);
    char *multi = insert_sql(table, cols, cap), *single = insert_sql(table, cols, 1);
    int rc = -1;
    if (!b->v || !b->is_null || !b->bound || !b->bound_v || !multi || !single)
        snprintf(err, errlen, "out of memory");
    else if (sqlite3_prepare_v2(db, multi, -1, &b->multi, NULL) != SQLITE_OK ||
             sqlite3_prepare_v2(db, single, -1, &b->single, NULL) != SQLITE_OK)
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    else
        rc = 0;
    free(multi);
    free(single);
    if (rc)
        row_batch_free(b);
    return rc;
}

/* Binds rows [first, first + count) to st's parameters from 1; `bound` is st's binding state. */
static void bind_rows(struct row_batch *b, sqlite3_stmt *st, unsigned char *bound,
                      int64_t *bound_v, int first, int count)
{
    const int64_t *v = b->v + (size_t)first * b->cols;
    const unsigned char *nul = b->is_null + (size_t)first * b->cols;
    int params = count * b->cols;
    for (int i = 0; i < params; i++) {
        if (nul[i]) {
            if (bound[i] != 1) {
                sqlite3_bind_null(st, i + 1);
                bound[i] = 1;
            }
        } else if (bound[i] != 2 || bound_v[i] != v[i]) {
            sqlite3_bind_int64(st, i + 1, v[i]);
            bound[i] = 2;
            bound_v[i] = v[i];
        }
    }
}

static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int row_batch_commit_row(struct row_batch *b)
{
    if (++b->n < b->cap)
        return SQLITE_OK;
    bind_rows(b, b->multi, b->bound, b->bound_v, 0, b->cap);
    b->n = 0;
    memset(b->is_null, 0, (size_t)b->cap * b->cols);
    return run(b->multi);
}

int row_batch_flush(struct row_batch *b)
{
    int rc = SQLITE_OK;
    for (int r = 0; r < b->n && rc == SQLITE_OK; r++) {
        bind_rows(b, b->single, b->bound + (size_t)b->cap * b->cols,
                  b->bound_v + (size_t)b->cap * b->cols, r, 1);
        rc = run(b->single);
    }
    b->n = 0;
    memset(b->is_null, 0, (size_t)b->cap * b->cols);
    return rc;
}

void row_batch_free(struct row_batch *b)
{
    sqlite3_finalize(b->multi);
    sqlite3_finalize(b->single);
    free(b->v);
    free(b->is_null);
    free(b->bound);
    free(b->bound_v);
    memset(b, 0, sizeof *b);
}
