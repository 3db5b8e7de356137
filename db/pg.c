/*
 * db/pg.c — the PostgreSQL back-end of db/db.h, through libpq: one PGconn per connection, statements
 * prepared on the server once per connection and SQL text (named s1, s2, ...), parameters sent as text
 * (blobs as binary), results read as text (bytea arrives hex-encoded and is decoded on access). `?`
 * placeholders become $1, $2, ... outside quoted strings, quoted identifiers and comments.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

#define MAX_PARAMS     32
#define MAX_CACHED     512
#define MIGRATION_LOCK 0x6f7574706f7374LL /* "outpost": the advisory lock id of schema migrations */

struct cached {
    char *sql;
    int n; /* s<n> */
    int nparams;
};

struct pdb {
    struct op_db base;
    PGconn *c;
    char *url;
    struct cached cache[MAX_CACHED];
    int ncache, next_name;
};

struct pstmt {
    struct op_db_stmt base;
    char name[16];
    int nparams;
    char *vals[MAX_PARAMS];
    int lens[MAX_PARAMS], fmts[MAX_PARAMS];
    PGresult *res;
    int row; /* the current row; -1 before the first */
    int ncols;
    unsigned char **blobs; /* decoded bytea per column of the current row */
    size_t *bloblens;
};

static struct pdb *P(struct op_db *db)
{
    return (struct pdb *)db;
}

/* The first line of libpq's message. */
static void first_line(char *out, size_t outlen, const char *msg)
{
    snprintf(out, outlen, "%.*s", (int)strcspn(msg ? msg : "?", "\n"), msg ? msg : "?");
}

static int map_fail(struct op_db *db, PGresult *res);

/* Maps a failed result (or a NULL one) to an errno and records it and the message. */
static int fail(struct op_db *db, PGresult *res)
{
    int rc = map_fail(db, res);
    db->last_rc = rc;
    return rc;
}

static int map_fail(struct op_db *db, PGresult *res)
{
    char line[400];
    first_line(line, sizeof(line), res ? PQresultErrorMessage(res) : PQerrorMessage(P(db)->c));
    if (!*line) first_line(line, sizeof(line), PQerrorMessage(P(db)->c));
    op_db_set_err(db, "%s", line);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(P(db)->c) == CONNECTION_BAD) return -ENOTCONN;
    if (!state) return -EIO;
    if (strcmp(state, "23505") == 0) return -EEXIST;
    if (strncmp(state, "23", 2) == 0 || strncmp(state, "42", 2) == 0 || strncmp(state, "22", 2) == 0)
        return -EINVAL;
    if (strcmp(state, "53100") == 0) return -ENOSPC;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) return -ENOTCONN;
    return -EIO;
}

/* The URL's host and port for messages (never its password). */
static void where(const PGconn *c, char *out, size_t outlen)
{
    const char *h = PQhost(c), *p = PQport(c);
    snprintf(out, outlen, "%s%s%s", h && *h ? h : "localhost", p && *p ? ":" : "", p ? p : "");
}

/* The server's notices (e.g. "there is no transaction in progress") are not errors: dropped. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int connect_url(struct pdb *db, char *err, size_t errlen)
{
    /* A server that does not answer must not hold the caller for long: 5 s unless the URL says otherwise
     * (the URL's own keywords come later and win). */
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const vals[] = {"5", db->url, NULL};
    db->c = PQconnectdbParams(keys, vals, 1);
    if (!db->c) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: out of memory");
        return -ENOMEM;
    }
    PQsetNoticeProcessor(db->c, quiet, NULL);
    if (PQstatus(db->c) != CONNECTION_OK) {
        char line[400], at[160];
        first_line(line, sizeof(line), PQerrorMessage(db->c));
        where(db->c, at, sizeof(at));
        int rc = -ECONNREFUSED;
        if (strstr(line, "password authentication failed") || strstr(line, "no password supplied") ||
            strstr(line, "authentication failed")) {
            snprintf(err, errlen, "PostgreSQL at %s refused the login: %s", at, line);
            rc = -EACCES;
        } else if (strstr(line, "does not exist")) {
            snprintf(err, errlen, "PostgreSQL at %s: %s", at, line);
            rc = -ENOENT;
        } else {
            snprintf(err, errlen, "cannot connect to PostgreSQL at %s: %s", at, line);
        }
        PQfinish(db->c);
        db->c = NULL;
        return rc;
    }
    PQclear(PQexec(db->c, "SET client_min_messages = warning"));
    return 0;
}

static void clear_cache(struct pdb *db)
{
    for (int i = 0; i < db->ncache; i++)
        free(db->cache[i].sql);
    db->ncache = 0;
}

static void p_close(struct op_db *db)
{
    struct pdb *d = P(db);
    clear_cache(d);
    if (d->c) PQfinish(d->c);
    free(d->url);
    free(d);
}

static int p_reconnect(struct op_db *db)
{
    struct pdb *d = P(db);
    clear_cache(d);
    if (d->c) PQfinish(d->c);
    d->c = NULL;
    char err[512];
    int rc = connect_url(d, err, sizeof(err));
    if (rc != 0) op_db_set_err(db, "%s", err);
    return rc;
}

static int p_exec(struct op_db *db, const char *sql)
{
    if (!P(db)->c) return fail(db, NULL);
    PGresult *r = PQexec(P(db)->c, sql);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) ? 0 : fail(db, r);
    PQclear(r);
    return rc;
}

/* sql with `?` numbered as $1, $2, ...; *n = how many. NULL when out of memory or over MAX_PARAMS. */
static char *number_params(const char *sql, int *n)
{
    size_t len = strlen(sql);
    char *out = malloc(len * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    int k = 0;
    char quote = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = sql[i];
        if (quote) {
            out[o++] = ch;
            if (ch == quote) quote = 0;
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
            out[o++] = ch;
        } else if (ch == '-' && sql[i + 1] == '-') {
            while (i < len && sql[i] != '\n')
                out[o++] = sql[i++];
            if (i < len) out[o++] = '\n';
        } else if (ch == '?') {
            int num = ++k;
            if (sql[i + 1] >= '0' && sql[i + 1] <= '9') { /* ?N: the N-th parameter */
                num = 0;
                while (sql[i + 1] >= '0' && sql[i + 1] <= '9' && num <= MAX_PARAMS)
                    num = num * 10 + (sql[++i] - '0');
                k = num > k - 1 ? num : k - 1;
            }
            if (num < 1 || num > MAX_PARAMS || k > MAX_PARAMS) {
                free(out);
                return NULL;
            }
            o += (size_t)snprintf(out + o, 4, "$%d", num);
        } else {
            out[o++] = ch;
        }
    }
    out[o] = '\0';
    *n = k;
    return out;
}

/* PQprepare, letting the server infer every parameter's type; a parameter whose type it cannot infer
 * (one the statement does not use, or one only in `? IS NULL`) is declared text and the statement
 * prepared again, as SQLite would take it. Inside a transaction the attempts run under a savepoint, since
 * a failed prepare would abort the transaction. */
static PGresult *prepare_typed(struct pdb *d, const char *name, const char *sql, int nparams)
{
    Oid types[MAX_PARAMS] = {0};
    bool in_tx = PQtransactionStatus(d->c) == PQTRANS_INTRANS;
    if (in_tx) PQclear(PQexec(d->c, "SAVEPOINT op_prepare"));
    PGresult *r = NULL;
    for (int attempt = 0; attempt <= nparams; attempt++) {
        PQclear(r);
        r = PQprepare(d->c, name, sql, nparams, types);
        if (r && PQresultStatus(r) == PGRES_COMMAND_OK) break;
        const char *msg = r ? PQresultErrorMessage(r) : "";
        const char *at = strstr(msg, "could not determine data type of parameter $");
        int k = at ? atoi(at + strlen("could not determine data type of parameter $")) : 0;
        if (k < 1 || k > nparams || types[k - 1]) break;
        types[k - 1] = 25; /* text */
        if (in_tx) PQclear(PQexec(d->c, "ROLLBACK TO SAVEPOINT op_prepare"));
    }
    if (in_tx) {
        bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) PQclear(PQexec(d->c, "ROLLBACK TO SAVEPOINT op_prepare"));
        PQclear(PQexec(d->c, "RELEASE SAVEPOINT op_prepare"));
    }
    return r;
}

static struct op_db_stmt *p_prepare(struct op_db *db, const char *sql)
{
    struct pdb *d = P(db);
    if (!d->c) {
        op_db_set_err(db, "not connected to PostgreSQL");
        db->last_rc = -ENOTCONN;
        return NULL;
    }
    struct cached *hit = NULL;
    for (int i = 0; i < d->ncache && !hit; i++)
        if (strcmp(d->cache[i].sql, sql) == 0) hit = &d->cache[i];
    struct cached fresh = {0};
    if (!hit) {
        char *pg = number_params(sql, &fresh.nparams);
        if (!pg) {
            op_db_set_err(db, "out of memory or more than %d parameters", MAX_PARAMS);
            return NULL;
        }
        fresh.n = ++d->next_name;
        char name[16];
        snprintf(name, sizeof(name), "s%d", fresh.n);
        PGresult *r = prepare_typed(d, name, pg, fresh.nparams);
        free(pg);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            (void)fail(db, r);
            PQclear(r);
            return NULL;
        }
        PQclear(r);
        fresh.sql = strdup(sql);
        if (fresh.sql && d->ncache < MAX_CACHED) {
            d->cache[d->ncache] = fresh;
            hit = &d->cache[d->ncache++];
        } else {
            hit = &fresh; /* used once; the server keeps the statement until the connection ends */
        }
    }
    struct pstmt *s = calloc(1, sizeof(*s));
    if (!s) {
        if (hit == &fresh) free(fresh.sql);
        op_db_set_err(db, "out of memory");
        return NULL;
    }
    s->base.db = db;
    snprintf(s->name, sizeof(s->name), "s%d", hit->n);
    s->nparams = hit->nparams;
    s->row = -1;
    if (hit == &fresh) free(fresh.sql);
    return &s->base;
}

static struct pstmt *PS(struct op_db_stmt *st)
{
    return (struct pstmt *)st;
}

static void drop_row(struct pstmt *s)
{
    for (int i = 0; s->blobs && i < s->ncols; i++) {
        if (s->blobs[i]) PQfreemem(s->blobs[i]);
        s->blobs[i] = NULL;
    }
}

static int p_bind(struct op_db_stmt *st, int i, int type, const void *p, size_t n, int64_t v)
{
    struct pstmt *s = PS(st);
    if (i < 1 || i > s->nparams) {
        op_db_set_err(st->db, "bind index %d out of range (the statement has %d)", i, s->nparams);
        return -EINVAL;
    }
    free(s->vals[i - 1]);
    s->vals[i - 1] = NULL;
    s->lens[i - 1] = 0;
    s->fmts[i - 1] = 0;
    if (type == DBT_NULL) return 0;
    char num[24];
    if (type == DBT_INT64) {
        n = (size_t)snprintf(num, sizeof(num), "%lld", (long long)v);
        p = num;
    }
    char *copy = malloc(n + 1);
    if (!copy) return -ENOMEM;
    if (n) memcpy(copy, p, n);
    copy[n] = '\0';
    s->vals[i - 1] = copy;
    s->lens[i - 1] = (int)n;
    s->fmts[i - 1] = type == DBT_BLOB;
    return 0;
}

static int p_step(struct op_db_stmt *st)
{
    struct pstmt *s = PS(st);
    struct pdb *d = P(st->db);
    if (!s->res) {
        if (!d->c) return fail(st->db, NULL);
        s->res = PQexecPrepared(d->c, s->name, s->nparams, (const char *const *)s->vals, s->lens, s->fmts, 0);
        ExecStatusType es = s->res ? PQresultStatus(s->res) : PGRES_FATAL_ERROR;
        if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK) {
            int rc = fail(st->db, s->res);
            PQclear(s->res);
            s->res = NULL;
            return rc;
        }
        s->ncols = PQnfields(s->res);
        s->row = -1;
    }
    drop_row(s);
    if (PQresultStatus(s->res) != PGRES_TUPLES_OK) return OP_DB_DONE;
    if (s->row + 1 >= PQntuples(s->res)) {
        s->row = PQntuples(s->res);
        return OP_DB_DONE;
    }
    s->row++;
    return OP_DB_ROW;
}

static bool in_row(struct pstmt *s, int col)
{
    return s->res && s->row >= 0 && s->row < PQntuples(s->res) && col >= 0 && col < s->ncols;
}

static bool p_col_is_null(struct op_db_stmt *st, int col)
{
    struct pstmt *s = PS(st);
    return !in_row(s, col) || PQgetisnull(s->res, s->row, col);
}

static const char *p_col_text(struct op_db_stmt *st, int col)
{
    struct pstmt *s = PS(st);
    if (p_col_is_null(st, col)) return NULL;
    return PQgetvalue(s->res, s->row, col);
}

static const void *p_col_blob(struct op_db_stmt *st, int col, size_t *n)
{
    struct pstmt *s = PS(st);
    if (p_col_is_null(st, col)) return NULL;
    if (!s->blobs) {
        s->blobs = calloc((size_t)s->ncols, sizeof(*s->blobs));
        s->bloblens = calloc((size_t)s->ncols, sizeof(*s->bloblens));
        if (!s->blobs || !s->bloblens) {
            free(s->blobs);
            free(s->bloblens);
            s->blobs = NULL;
            s->bloblens = NULL;
            return NULL;
        }
    }
    if (!s->blobs[col]) {
        const char *v = PQgetvalue(s->res, s->row, col);
        if (PQftype(s->res, col) != 17 /* bytea */) { /* text read as bytes */
            *n = strlen(v);
            return v;
        }
        s->blobs[col] = PQunescapeBytea((const unsigned char *)v, &s->bloblens[col]);
        if (!s->blobs[col]) return NULL;
    }
    *n = s->bloblens[col];
    return s->blobs[col];
}

static int64_t p_changes(struct op_db_stmt *st)
{
    struct pstmt *s = PS(st);
    const char *t = s->res ? PQcmdTuples(s->res) : "";
    return *t ? strtoll(t, NULL, 10) : 0;
}

static void p_reset(struct op_db_stmt *st)
{
    struct pstmt *s = PS(st);
    drop_row(s);
    PQclear(s->res);
    s->res = NULL;
    s->row = -1;
    for (int i = 0; i < s->nparams; i++) {
        free(s->vals[i]);
        s->vals[i] = NULL;
        s->lens[i] = s->fmts[i] = 0;
    }
}

static void p_finalize(struct op_db_stmt *st)
{
    struct pstmt *s = PS(st);
    p_reset(st);
    free(s->blobs);
    free(s->bloblens);
    free(s);
}

/* The single integer a query answers (-1 when it answers no row), or a negative errno. */
static int query_int(struct op_db *db, const char *sql, int *out)
{
    PGresult *r = PQexec(P(db)->c, sql);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = fail(db, r);
        PQclear(r);
        return rc;
    }
    *out = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atoi(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return 0;
}

static int p_get_version(struct op_db *db)
{
    if (!P(db)->c) return fail(db, NULL);
    int exists = 0, v = 0;
    int rc = query_int(db, "SELECT (to_regclass('outpost_schema') IS NOT NULL)::int", &exists);
    if (rc != 0) return rc;
    if (exists != 1) return 0;
    rc = query_int(db, "SELECT max(version) FROM outpost_schema", &v);
    if (rc != 0) return rc;
    return v < 0 ? 0 : v;
}

static int p_set_version(struct op_db *db, int v)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS outpost_schema (version INTEGER NOT NULL);"
             "DELETE FROM outpost_schema; INSERT INTO outpost_schema (version) VALUES (%d)",
             v);
    return p_exec(db, sql);
}

static int p_lock_migrations(struct op_db *db)
{
    char sql[80];
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%lld)", (long long)MIGRATION_LOCK);
    return p_exec(db, sql);
}

static const struct op_db_ops pg_ops = {
    .close = p_close,
    .reconnect = p_reconnect,
    .exec = p_exec,
    .begin_sql = "BEGIN",
    .prepare = p_prepare,
    .bind = p_bind,
    .step = p_step,
    .col_is_null = p_col_is_null,
    .col_text = p_col_text,
    .col_blob = p_col_blob,
    .changes = p_changes,
    .reset = p_reset,
    .finalize = p_finalize,
    .get_version = p_get_version,
    .set_version = p_set_version,
    .lock_migrations = p_lock_migrations,
};

int op_db_pg_open(const char *url, struct op_db **out, char *err, size_t errlen)
{
    struct pdb *db = calloc(1, sizeof(*db));
    if (db) db->url = strdup(url);
    if (!db || !db->url) {
        free(db);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    db->base.ops = &pg_ops;
    db->base.kind = OP_DB_POSTGRES;
    int rc = connect_url(db, err, errlen);
    if (rc != 0) {
        free(db->url);
        free(db);
        return rc;
    }
    *out = &db->base;
    return 0;
}
