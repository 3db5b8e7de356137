/*
 * db/sqlite.c — the SQLite back-end of db/db.h: one sqlite3 handle per connection, WAL, foreign keys,
 * a 5 s busy timeout; bound values are copied (SQLITE_TRANSIENT).
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db_int.h"

struct sdb {
    struct op_db base;
    sqlite3 *h;
};

struct sstmt {
    struct op_db_stmt base;
    sqlite3_stmt *st;
};

static sqlite3 *H(struct op_db *db)
{
    return ((struct sdb *)db)->h;
}

static int map_rc(struct op_db *db, int rc)
{
    op_db_set_err(db, "%s", sqlite3_errmsg(H(db)));
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) ? -EEXIST : -EINVAL;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_ERROR:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
        return -EINVAL;
    default:
        return -EIO;
    }
}

static void s_close(struct op_db *db)
{
    sqlite3_close_v2(H(db));
    free(db);
}

static int s_exec(struct op_db *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(H(db), sql, NULL, NULL, &msg);
    sqlite3_free(msg);
    return rc == SQLITE_OK ? 0 : map_rc(db, sqlite3_extended_errcode(H(db)));
}

static struct op_db_stmt *s_prepare(struct op_db *db, const char *sql)
{
    struct sstmt *s = calloc(1, sizeof(*s));
    if (!s) {
        op_db_set_err(db, "out of memory");
        return NULL;
    }
    if (sqlite3_prepare_v2(H(db), sql, -1, &s->st, NULL) != SQLITE_OK) {
        op_db_set_err(db, "%s", sqlite3_errmsg(H(db)));
        free(s);
        return NULL;
    }
    s->base.db = db;
    return &s->base;
}

static sqlite3_stmt *S(struct op_db_stmt *st)
{
    return ((struct sstmt *)st)->st;
}

static int s_bind(struct op_db_stmt *st, int i, int type, const void *p, size_t n, int64_t v)
{
    int rc;
    switch (type) {
    case DBT_TEXT:
        rc = sqlite3_bind_text64(S(st), i, p, n, SQLITE_TRANSIENT, SQLITE_UTF8);
        break;
    case DBT_INT64:
        rc = sqlite3_bind_int64(S(st), i, v);
        break;
    case DBT_BLOB:
        rc = sqlite3_bind_blob64(S(st), i, n ? p : "", n, SQLITE_TRANSIENT);
        break;
    default:
        rc = sqlite3_bind_null(S(st), i);
        break;
    }
    return rc == SQLITE_OK ? 0 : map_rc(st->db, rc);
}

static int s_step(struct op_db_stmt *st)
{
    int rc = sqlite3_step(S(st));
    if (rc == SQLITE_ROW) return OP_DB_ROW;
    if (rc == SQLITE_DONE) return OP_DB_DONE;
    return map_rc(st->db, sqlite3_extended_errcode(H(st->db)));
}

static bool s_col_is_null(struct op_db_stmt *st, int col)
{
    return sqlite3_column_type(S(st), col) == SQLITE_NULL;
}

static const char *s_col_text(struct op_db_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(S(st), col);
}

static const void *s_col_blob(struct op_db_stmt *st, int col, size_t *n)
{
    const void *p = sqlite3_column_blob(S(st), col);
    *n = (size_t)sqlite3_column_bytes(S(st), col);
    return p;
}

static int64_t s_changes(struct op_db_stmt *st)
{
    return sqlite3_changes64(H(st->db));
}

static void s_reset(struct op_db_stmt *st)
{
    sqlite3_reset(S(st));
    sqlite3_clear_bindings(S(st));
}

static void s_finalize(struct op_db_stmt *st)
{
    sqlite3_finalize(S(st));
    free(st);
}

static int s_get_version(struct op_db *db)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(H(db), "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return map_rc(db, sqlite3_extended_errcode(H(db)));
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -EIO;
    sqlite3_finalize(st);
    return v;
}

static int s_set_version(struct op_db *db, int v)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
    return s_exec(db, sql);
}

static int s_lock_migrations(struct op_db *db)
{
    (void)db; /* BEGIN IMMEDIATE took the write lock */
    return 0;
}

static const struct op_db_ops sqlite_ops = {
    .close = s_close,
    .exec = s_exec,
    .begin_sql = "BEGIN IMMEDIATE",
    .prepare = s_prepare,
    .bind = s_bind,
    .step = s_step,
    .col_is_null = s_col_is_null,
    .col_text = s_col_text,
    .col_blob = s_col_blob,
    .changes = s_changes,
    .reset = s_reset,
    .finalize = s_finalize,
    .get_version = s_get_version,
    .set_version = s_set_version,
    .lock_migrations = s_lock_migrations,
};

int op_db_sqlite_open(const char *path, struct op_db **out, char *err, size_t errlen)
{
    /* Created here with 0600 so the file never exists world-readable (it holds password hashes). */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        return -e;
    }
    close(fd);
    struct sdb *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    db->base.ops = &sqlite_ops;
    db->base.kind = OP_DB_SQLITE;
    if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, db->h ? sqlite3_errmsg(db->h) : "out of memory");
        sqlite3_close_v2(db->h);
        free(db);
        return -EIO;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, 5000);
    if (s_exec(&db->base, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;") !=
        0) {
        snprintf(err, errlen, "cannot set up %s: %s", path, db->base.err);
        s_close(&db->base);
        return -EIO;
    }
    *out = &db->base;
    return 0;
}
