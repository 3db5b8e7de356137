/*
 * db/db.h — the primary's SQL database, SQLite or PostgreSQL behind one interface: the only header that
 * names either library. Callers write each statement once per dialect where the dialects differ (and once
 * where they do not), with `?` or `?N` placeholders in both: the PostgreSQL side numbers them ($1, $2, ...;
 * `?N` becomes `$N`, a bare `?` after it the next number, as SQLite counts).
 *
 * The shape follows SQLite's statement API, which the primary was written against: prepare, bind (1-based),
 * step until done, read columns (0-based), finalize. A connection is used by one thread at a time.
 *
 * Return conventions: 0 (or OP_DB_ROW / OP_DB_DONE from step) on success, negative errno otherwise:
 *   -EEXIST      a unique or primary-key constraint refused the write
 *   -EINVAL      a statement the database rejects (syntax, unknown column, bind index out of range)
 *   -ENOTCONN    the PostgreSQL connection is gone (the server stopped or restarted); op_db_reconnect
 *   -EBUSY       SQLite's busy timeout ran out
 *   -ENOSPC      the disk is full
 *   -EIO         anything else; op_db_errmsg says what
 */
#ifndef OP_DB_DB_H
#define OP_DB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct op_db;
struct op_db_stmt;

enum op_db_kind {
    OP_DB_SQLITE = 1,
    OP_DB_POSTGRES = 2,
};
const char *op_db_kind_name(enum op_db_kind k); /* "sqlite", "postgres" */

enum { OP_DB_DONE = 0, OP_DB_ROW = 1 };

/* True when target names a PostgreSQL server: a postgres:// or postgresql:// URL. */
bool op_db_is_postgres_url(const char *target);

/* Opens target: a PostgreSQL URL, else the path of an SQLite file (created with mode 0600 when missing;
 * WAL, foreign keys, a 5 s busy timeout). On failure *out is NULL and err says why in one line, without
 * the URL's password (e.g. "cannot connect to PostgreSQL at 127.0.0.1:5432: Connection refused",
 * "PostgreSQL refused the login of user \"x\": password authentication failed"). */
int op_db_open(const char *target, struct op_db **out, char *err, size_t errlen);
void op_db_close(struct op_db *db);
enum op_db_kind op_db_kind(const struct op_db *db);
/* The last error of this connection, one line, and its negative errno (0 when nothing failed since the
 * last op_db_begin). */
const char *op_db_errmsg(const struct op_db *db);
int op_db_last_error(const struct op_db *db);
/* Forgets the last error's errno (e.g. at the start of a request). */
void op_db_clear_error(struct op_db *db);
/* PostgreSQL: connects again after -ENOTCONN (prepared statements are prepared again on use). 0 or as
 * op_db_open's errors; SQLite: 0. */
int op_db_reconnect(struct op_db *db);

/* One or more statements without parameters or results (schema steps). */
int op_db_exec(struct op_db *db, const char *sql);
/* Transactions: SQLite takes the write lock at once (BEGIN IMMEDIATE). */
int op_db_begin(struct op_db *db);
int op_db_commit(struct op_db *db);
void op_db_rollback(struct op_db *db);

/* NULL on failure (op_db_errmsg). PostgreSQL statements are prepared on the server once per connection
 * and SQL text, and reused. */
struct op_db_stmt *op_db_prepare(struct op_db *db, const char *sql);
/* Values are copied. i is 1-based. */
int op_db_bind_text(struct op_db_stmt *st, int i, const char *s);
int op_db_bind_textn(struct op_db_stmt *st, int i, const char *s, size_t n);
int op_db_bind_int64(struct op_db_stmt *st, int i, int64_t v);
int op_db_bind_blob(struct op_db_stmt *st, int i, const void *p, size_t n);
int op_db_bind_null(struct op_db_stmt *st, int i);
/* Runs the statement on the first call: OP_DB_ROW while there is a row to read, then OP_DB_DONE, or a
 * negative errno. */
int op_db_step(struct op_db_stmt *st);
/* Column accessors for the current row; col is 0-based. A comparison's value (SQLite: 0/1, PostgreSQL:
 * a boolean) reads as the integer 0 or 1. Text of a NULL is "", its integer 0, its blob
 * NULL with *n = 0. Pointers stay valid until the next step, reset or finalize. */
bool op_db_col_is_null(struct op_db_stmt *st, int col);
const char *op_db_col_text(struct op_db_stmt *st, int col);
int64_t op_db_col_int64(struct op_db_stmt *st, int col);
const void *op_db_col_blob(struct op_db_stmt *st, int col, size_t *n);
/* Rows changed by the statement's last run (INSERT, UPDATE, DELETE). */
int64_t op_db_changes(struct op_db_stmt *st);
/* Ready to run again with new bindings (the old ones are cleared). */
void op_db_reset(struct op_db_stmt *st);
void op_db_finalize(struct op_db_stmt *st);

/*
 * Schema migrations: steps[i] brings the schema from version i to i + 1. Every step not yet applied runs
 * in its own transaction, under a lock that keeps two processes starting together from both applying it
 * (SQLite: the write lock; PostgreSQL: an advisory transaction lock). The version is PRAGMA user_version
 * (SQLite) or the table outpost_schema (PostgreSQL). A database whose version is above nsteps was made by
 * a newer build: -EPROTO with a message naming both versions, and nothing is changed.
 */
int op_db_migrate(struct op_db *db, const char *const *steps, int nsteps, char *err, size_t errlen);
/* The schema version now (0 for a new database), or a negative errno. */
int op_db_schema_version(struct op_db *db);

#endif
