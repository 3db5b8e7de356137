/*
 * db/db.c — the back-end independent half of db/db.h: dispatch, transactions, migrations.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db/db_int.h"

const char *op_db_kind_name(enum op_db_kind k)
{
    switch (k) {
    case OP_DB_SQLITE:
        return "sqlite";
    case OP_DB_POSTGRES:
        return "postgres";
    }
    return "?";
}

bool op_db_is_postgres_url(const char *target)
{
    return target &&
           (strncasecmp(target, "postgres://", 11) == 0 || strncasecmp(target, "postgresql://", 13) == 0);
}

void op_db_set_err(struct op_db *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof(db->err), fmt, ap);
    va_end(ap);
    for (char *p = db->err; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    size_t n = strlen(db->err);
    while (n && db->err[n - 1] == ' ')
        db->err[--n] = '\0';
}

int op_db_open(const char *target, struct op_db **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!target || !*target) {
        snprintf(err, errlen, "no database given");
        return -EINVAL;
    }
    if (op_db_is_postgres_url(target)) return op_db_pg_open(target, out, err, errlen);
    return op_db_sqlite_open(target, out, err, errlen);
}

void op_db_close(struct op_db *db)
{
    if (db) db->ops->close(db);
}

enum op_db_kind op_db_kind(const struct op_db *db)
{
    return db->kind;
}

const char *op_db_errmsg(const struct op_db *db)
{
    return db->err;
}

int op_db_reconnect(struct op_db *db)
{
    return db->ops->reconnect ? db->ops->reconnect(db) : 0;
}

/* Remembers a failure's errno for op_db_last_error. */
static int note(struct op_db *db, int rc)
{
    if (rc < 0) db->last_rc = rc;
    return rc;
}

int op_db_last_error(const struct op_db *db)
{
    return db->last_rc;
}

void op_db_clear_error(struct op_db *db)
{
    db->last_rc = 0;
}

int op_db_exec(struct op_db *db, const char *sql)
{
    return note(db, db->ops->exec(db, sql));
}

int op_db_begin(struct op_db *db)
{
    db->last_rc = 0; /* op_db_last_error tells of this transaction only */
    return note(db, db->ops->exec(db, db->ops->begin_sql));
}

int op_db_commit(struct op_db *db)
{
    return note(db, db->ops->exec(db, "COMMIT"));
}

void op_db_rollback(struct op_db *db)
{
    char keep[sizeof(db->err)];
    memcpy(keep, db->err, sizeof(keep)); /* the cause of the rollback is the interesting error */
    (void)db->ops->exec(db, "ROLLBACK");
    memcpy(db->err, keep, sizeof(keep));
}

struct op_db_stmt *op_db_prepare(struct op_db *db, const char *sql)
{
    int before = db->last_rc;
    db->last_rc = 0;
    struct op_db_stmt *st = db->ops->prepare(db, sql);
    if (!st && !db->last_rc) db->last_rc = -EINVAL; /* the back-end said nothing more precise */
    if (st) db->last_rc = before;
    return st;
}

int op_db_bind_text(struct op_db_stmt *st, int i, const char *s)
{
    if (!s) return op_db_bind_null(st, i);
    return st->db->ops->bind(st, i, DBT_TEXT, s, strlen(s), 0);
}

int op_db_bind_textn(struct op_db_stmt *st, int i, const char *s, size_t n)
{
    return st->db->ops->bind(st, i, DBT_TEXT, s, n, 0);
}

int op_db_bind_int64(struct op_db_stmt *st, int i, int64_t v)
{
    return st->db->ops->bind(st, i, DBT_INT64, NULL, 0, v);
}

int op_db_bind_blob(struct op_db_stmt *st, int i, const void *p, size_t n)
{
    return st->db->ops->bind(st, i, DBT_BLOB, p, n, 0);
}

int op_db_bind_null(struct op_db_stmt *st, int i)
{
    return st->db->ops->bind(st, i, DBT_NULL, NULL, 0, 0);
}

int op_db_step(struct op_db_stmt *st)
{
    return note(st->db, st->db->ops->step(st));
}

bool op_db_col_is_null(struct op_db_stmt *st, int col)
{
    return st->db->ops->col_is_null(st, col);
}

const char *op_db_col_text(struct op_db_stmt *st, int col)
{
    const char *s = st->db->ops->col_text(st, col);
    return s ? s : "";
}

int64_t op_db_col_int64(struct op_db_stmt *st, int col)
{
    const char *s = st->db->ops->col_text(st, col);
    if (s && (s[0] == 't' || s[0] == 'f') && !s[1]) return s[0] == 't'; /* a PostgreSQL boolean */
    return s ? strtoll(s, NULL, 10) : 0;
}

const void *op_db_col_blob(struct op_db_stmt *st, int col, size_t *n)
{
    *n = 0;
    return st->db->ops->col_blob(st, col, n);
}

int64_t op_db_changes(struct op_db_stmt *st)
{
    return st->db->ops->changes(st);
}

void op_db_reset(struct op_db_stmt *st)
{
    st->db->ops->reset(st);
}

void op_db_finalize(struct op_db_stmt *st)
{
    if (st) st->db->ops->finalize(st);
}

int op_db_schema_version(struct op_db *db)
{
    return db->ops->get_version(db);
}

int op_db_migrate(struct op_db *db, const char *const *steps, int nsteps, char *err, size_t errlen)
{
    for (;;) {
        int rc = op_db_begin(db);
        if (rc == 0) rc = db->ops->lock_migrations(db);
        int v = rc == 0 ? db->ops->get_version(db) : rc;
        if (v < 0) {
            snprintf(err, errlen, "cannot read the schema version: %s", db->err);
            if (rc == 0) op_db_rollback(db);
            return v;
        }
        if (v > nsteps) {
            op_db_rollback(db);
            snprintf(
                err, errlen,
                "the database has schema version %d, made by a newer build (this one knows versions up to "
                "%d); use a newer outpost",
                v, nsteps);
            return -EPROTO;
        }
        if (v == nsteps) {
            op_db_rollback(db); /* nothing to do; ends the read transaction */
            return 0;
        }
        rc = op_db_exec(db, steps[v]);
        if (rc == 0) rc = db->ops->set_version(db, v + 1);
        if (rc == 0) rc = op_db_commit(db);
        if (rc != 0) {
            snprintf(err, errlen, "schema step %d failed: %s", v + 1, db->err);
            op_db_rollback(db);
            return rc;
        }
    }
}
