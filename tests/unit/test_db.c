/*
 * tests/unit/test_db.c — db/db.h against real databases: a temporary SQLite file always, and the
 * PostgreSQL server named by OUTPOST_TEST_PG_URL when it is set (tests/integration/db_postgres.sh starts
 * one and runs this binary with it). The same checks run on both: types round-trip, placeholders inside
 * string literals stay, unique violations are -EEXIST, rollback keeps nothing, migrations run once, stop
 * at a newer schema, and a statement is reusable after reset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "tests/unit/check.h"

static const char *const steps_v1[] = {
    "CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT NOT NULL, b BYTEA, note TEXT);"
    "CREATE TABLE log (line TEXT NOT NULL);",
};
static const char *const steps_sqlite_v1[] = {
    "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL, b BLOB, note TEXT);"
    "CREATE TABLE log (line TEXT NOT NULL);",
};

static int64_t count(struct op_db *db, const char *sql)
{
    struct op_db_stmt *st = op_db_prepare(db, sql);
    if (!st) return -1;
    int64_t n = op_db_step(st) == OP_DB_ROW ? op_db_col_int64(st, 0) : -1;
    op_db_finalize(st);
    return n;
}

static void run(struct op_db *db, const char *what)
{
    printf("-- %s (%s)\n", what, op_db_kind_name(op_db_kind(db)));
    bool pg = op_db_kind(db) == OP_DB_POSTGRES;
    char err[512] = "";
    CHECK(op_db_schema_version(db) == 0, "a new database has version 0, not %d", op_db_schema_version(db));
    const char *const *steps = pg ? steps_v1 : steps_sqlite_v1;
    CHECK(op_db_migrate(db, steps, 1, err, sizeof(err)) == 0, "migrate to 1: %s", err);
    CHECK(op_db_schema_version(db) == 1, "version 1 after one step");
    CHECK(op_db_migrate(db, steps, 1, err, sizeof(err)) == 0, "migrate again does nothing: %s", err);

    /* Round trips of every type, with a `?` inside a literal that must not count as a parameter. */
    struct op_db_stmt *ins = op_db_prepare(db, "INSERT INTO t (id, n, b, note) VALUES (?, ?, ?, ?)");
    CHECK(ins != NULL, "prepare insert: %s", op_db_errmsg(db));
    if (!ins) return;
    static const unsigned char blob[] = {0, 1, 2, 0xff, 0x7f, 0, '\\', 'x'};
    CHECK(op_db_bind_text(ins, 1, "a") == 0, "bind text");
    CHECK(op_db_bind_int64(ins, 2, 1767225600123LL) == 0, "bind int64");
    CHECK(op_db_bind_blob(ins, 3, blob, sizeof(blob)) == 0, "bind blob");
    CHECK(op_db_bind_null(ins, 4) == 0, "bind null");
    CHECK(op_db_step(ins) == OP_DB_DONE, "insert a: %s", op_db_errmsg(db));
    CHECK(op_db_changes(ins) == 1, "one row inserted");
    op_db_reset(ins);
    CHECK(op_db_bind_text(ins, 1, "b") == 0 && op_db_bind_int64(ins, 2, -5) == 0 &&
              op_db_bind_blob(ins, 3, "", 0) == 0 &&
              op_db_bind_textn(ins, 4, "what? it's 'quoted'xx", 19) == 0,
          "bind b");
    CHECK(op_db_step(ins) == OP_DB_DONE, "insert b after reset: %s", op_db_errmsg(db));
    op_db_reset(ins);
    CHECK(op_db_bind_text(ins, 1, "a") == 0 && op_db_bind_int64(ins, 2, 0) == 0, "bind dup");
    CHECK(op_db_step(ins) == -EEXIST, "a duplicate key is -EEXIST");
    CHECK(strlen(op_db_errmsg(db)) > 0 && !strchr(op_db_errmsg(db), '\n'), "one-line message: %s",
          op_db_errmsg(db));
    op_db_reset(ins);
    CHECK(op_db_bind_text(ins, 9, "x") == -EINVAL, "a bind index out of range is -EINVAL");
    op_db_finalize(ins);

    struct op_db_stmt *sel =
        op_db_prepare(db, "SELECT id, n, b, note, 'literal ? stays' FROM t WHERE n > ? ORDER BY id");
    CHECK(sel != NULL, "prepare select: %s", op_db_errmsg(db));
    if (!sel) return;
    CHECK(op_db_bind_int64(sel, 1, -100) == 0, "bind");
    CHECK(op_db_step(sel) == OP_DB_ROW, "row a");
    CHECK(strcmp(op_db_col_text(sel, 0), "a") == 0, "id a");
    CHECK(op_db_col_int64(sel, 1) == 1767225600123LL, "int64 round trip: %lld",
          (long long)op_db_col_int64(sel, 1));
    size_t n = 0;
    const void *b = op_db_col_blob(sel, 2, &n);
    CHECK(n == sizeof(blob) && b && memcmp(b, blob, n) == 0, "blob round trip (%zu bytes)", n);
    CHECK(op_db_col_is_null(sel, 3) && strcmp(op_db_col_text(sel, 3), "") == 0, "NULL reads as \"\"");
    CHECK(strcmp(op_db_col_text(sel, 4), "literal ? stays") == 0, "a ? in a literal is not a parameter: %s",
          op_db_col_text(sel, 4));
    CHECK(op_db_step(sel) == OP_DB_ROW, "row b");
    CHECK(op_db_col_int64(sel, 1) == -5, "negative int64");
    b = op_db_col_blob(sel, 2, &n);
    CHECK(n == 0, "empty blob has length 0 (%zu)", n);
    CHECK(strcmp(op_db_col_text(sel, 3), "what? it's 'quoted'") == 0, "text with quotes: %s",
          op_db_col_text(sel, 3));
    CHECK(op_db_step(sel) == OP_DB_DONE, "done after two rows");
    op_db_reset(sel);
    CHECK(op_db_bind_int64(sel, 1, 0) == 0 && op_db_step(sel) == OP_DB_ROW &&
              strcmp(op_db_col_text(sel, 0), "a") == 0 && op_db_step(sel) == OP_DB_DONE,
          "the statement runs again after reset with a new binding");
    op_db_finalize(sel);

    /* Transactions: a rollback keeps nothing, a commit keeps everything. */
    CHECK(op_db_begin(db) == 0, "begin: %s", op_db_errmsg(db));
    CHECK(op_db_exec(db, "INSERT INTO log (line) VALUES ('one')") == 0, "insert in tx");
    op_db_rollback(db);
    CHECK(count(db, "SELECT count(*) FROM log") == 0, "rolled back");
    CHECK(op_db_begin(db) == 0, "begin");
    CHECK(op_db_exec(db, "INSERT INTO log (line) VALUES ('one'); INSERT INTO log (line) VALUES ('two')") == 0,
          "two statements in one exec");
    CHECK(op_db_commit(db) == 0, "commit");
    CHECK(count(db, "SELECT count(*) FROM log") == 2, "committed");
    struct op_db_stmt *up = op_db_prepare(db, "UPDATE log SET line = ? WHERE line <> ?");
    CHECK(up && op_db_bind_text(up, 1, "x") == 0 && op_db_bind_text(up, 2, "none") == 0 &&
              op_db_step(up) == OP_DB_DONE && op_db_changes(up) == 2,
          "update counts its rows");
    op_db_finalize(up);

    /* Errors. */
    CHECK(op_db_prepare(db, "SELEKT 1") == NULL && *op_db_errmsg(db), "a syntax error fails to prepare: %s",
          op_db_errmsg(db));
    CHECK(op_db_exec(db, "INSERT INTO nowhere VALUES (1)") == -EINVAL, "an unknown table is -EINVAL");

    /* Migrations: one more step; a failing step changes nothing; a newer schema is refused. */
    const char *steps2[] = {steps[0], "ALTER TABLE log ADD COLUMN at BIGINT NOT NULL DEFAULT 0;"};
    CHECK(op_db_migrate(db, steps2, 2, err, sizeof(err)) == 0, "migrate to 2: %s", err);
    CHECK(op_db_schema_version(db) == 2, "version 2");
    const char *steps3[] = {steps[0], steps2[1],
                            "CREATE TABLE u (x INTEGER); INSERT INTO nowhere VALUES (1);"};
    CHECK(op_db_migrate(db, steps3, 3, err, sizeof(err)) < 0, "a failing step fails");
    CHECK(strstr(err, "schema step 3") != NULL, "the message names the step: %s", err);
    CHECK(op_db_schema_version(db) == 2, "still version 2");
    CHECK(op_db_exec(db, "INSERT INTO u (x) VALUES (1)") < 0, "the failed step's table does not exist");
    CHECK(op_db_migrate(db, steps, 1, err, sizeof(err)) == -EPROTO, "an older build refuses version 2");
    CHECK(strstr(err, "schema version 2") && strstr(err, "newer build"), "it says why: %s", err);
}

/* url with the first `from` replaced by `to`. */
static void replaced(char *out, size_t outlen, const char *url, const char *from, const char *to)
{
    const char *at = strstr(url, from);
    if (!at) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    snprintf(out, outlen, "%.*s%s%s", (int)(at - url), url, to, at + strlen(from));
}

/* What a user with a wrong URL is told (the URL's password never appears). */
static void pg_errors(const char *url)
{
    printf("-- postgres: wrong URLs\n");
    char bad[512], err[512];
    struct op_db *db = NULL;
    replaced(bad, sizeof(bad), url, ":outpost-test@", ":wrong-password@");
    int rc = op_db_open(bad, &db, err, sizeof(err));
    CHECK(rc == -EACCES && strstr(err, "refused the login") && !strstr(err, "wrong-password"),
          "a bad password: %d %s", rc, err);
    replaced(bad, sizeof(bad), url, "/outpost?", "/no_such_db?");
    rc = op_db_open(bad, &db, err, sizeof(err));
    CHECK(rc == -ENOENT && strstr(err, "no_such_db") && strstr(err, "does not exist"), "no database: %d %s",
          rc, err);
    const char *port = getenv("OUTPOST_TEST_PG_FREE_PORT");
    if (port) {
        char from[16], to[16];
        snprintf(from, sizeof(from), ":%s/",
                 getenv("OUTPOST_TEST_PG_PORT") ? getenv("OUTPOST_TEST_PG_PORT") : "");
        snprintf(to, sizeof(to), ":%s/", port);
        replaced(bad, sizeof(bad), url, from, to);
        rc = op_db_open(bad, &db, err, sizeof(err));
        CHECK(rc == -ECONNREFUSED && strstr(err, "cannot connect to PostgreSQL at 127.0.0.1:") &&
                  strstr(err, port) && !strstr(err, "outpost-test"),
              "a refused connection: %d %s", rc, err);
    }
    CHECK(db == NULL, "no handle after a failed open");
}

/* The server restarts under an open connection: the next statement is -ENOTCONN, op_db_reconnect
 * brings it back, prepared statements are prepared again. */
static void pg_restart(const char *url)
{
    const char *cmd = getenv("OUTPOST_TEST_PG_RESTART");
    if (!cmd) return;
    printf("-- postgres: server restart\n");
    struct op_db *db = NULL;
    char err[512];
    CHECK(op_db_open(url, &db, err, sizeof(err)) == 0, "open: %s", err);
    if (!db) return;
    CHECK(count(db, "SELECT 41 + 1") == 42, "a query before the restart");
    CHECK(system(cmd) == 0, "restart command");
    struct op_db_stmt *st = op_db_prepare(db, "SELECT 41 + 1");
    int rc = st ? op_db_step(st) : -ENOTCONN;
    op_db_finalize(st);
    CHECK(rc == -ENOTCONN, "the statement after the restart is -ENOTCONN (%d: %s)", rc, op_db_errmsg(db));
    CHECK(op_db_reconnect(db) == 0, "reconnect: %s", op_db_errmsg(db));
    CHECK(count(db, "SELECT 41 + 1") == 42, "the cached statement is prepared again after reconnecting");
    op_db_close(db);
}

int main(void)
{
    char dir[] = "/tmp/test_db.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256];
    snprintf(path, sizeof(path), "%s/store.db", dir);
    struct op_db *db = NULL;
    char err[512] = "";
    CHECK(op_db_open(path, &db, err, sizeof(err)) == 0, "open sqlite: %s", err);
    if (db) {
        run(db, "sqlite file");
        op_db_close(db);
    }
    CHECK(op_db_open("/nonexistent/dir/x.db", &db, err, sizeof(err)) < 0 &&
              strstr(err, "/nonexistent/dir/x.db"),
          "a path that cannot be opened says so: %s", err);
    CHECK(!op_db_is_postgres_url("/var/lib/x.db") && op_db_is_postgres_url("postgres://u@h/db") &&
              op_db_is_postgres_url("postgresql://h/db"),
          "URL detection");
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");

    const char *url = getenv("OUTPOST_TEST_PG_URL");
    if (url && *url) {
        CHECK(op_db_open(url, &db, err, sizeof(err)) == 0, "open postgres: %s", err);
        if (db) {
            op_db_exec(db, "DROP TABLE IF EXISTS t, log, u, outpost_schema");
            run(db, "postgres server");
            op_db_exec(db, "DROP TABLE IF EXISTS t, log, u, outpost_schema");
            op_db_close(db);
        }
        pg_errors(url);
        pg_restart(url);
    } else {
        printf("-- postgres: OUTPOST_TEST_PG_URL not set (tests/integration/db_postgres.sh sets it)\n");
    }
    return check_report("db layer");
}
