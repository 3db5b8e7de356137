/*
 * db/db_int.h — what the two back-ends of db/db.h share: the connection and statement heads and the
 * back-end's operations.
 */
#ifndef OP_DB_INT_H
#define OP_DB_INT_H

#include "db/db.h"

struct op_db_ops {
    void (*close)(struct op_db *db);
    int (*reconnect)(struct op_db *db);
    int (*exec)(struct op_db *db, const char *sql);
    const char *begin_sql;
    struct op_db_stmt *(*prepare)(struct op_db *db, const char *sql);
    int (*bind)(struct op_db_stmt *st, int i, int type, const void *p, size_t n, int64_t v);
    int (*step)(struct op_db_stmt *st);
    bool (*col_is_null)(struct op_db_stmt *st, int col);
    const char *(*col_text)(struct op_db_stmt *st, int col);
    const void *(*col_blob)(struct op_db_stmt *st, int col, size_t *n);
    int64_t (*changes)(struct op_db_stmt *st);
    void (*reset)(struct op_db_stmt *st);
    void (*finalize)(struct op_db_stmt *st);
    int (*get_version)(struct op_db *db);
    int (*set_version)(struct op_db *db, int v); /* inside the step's transaction */
    int (*lock_migrations)(struct op_db *db);    /* inside a transaction; held until its end */
};

/* Bind types. */
enum { DBT_NULL, DBT_TEXT, DBT_INT64, DBT_BLOB };

struct op_db {
    const struct op_db_ops *ops;
    enum op_db_kind kind;
    int last_rc; /* the negative errno of the last failed operation, 0 = none yet */
    char err[512];
};

struct op_db_stmt {
    struct op_db *db;
};

/* Records a one-line error message on db (newlines folded to spaces, trailing space dropped). */
void op_db_set_err(struct op_db *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int op_db_sqlite_open(const char *path, struct op_db **out, char *err, size_t errlen);
int op_db_pg_open(const char *url, struct op_db **out, char *err, size_t errlen);

#endif
