/*
 * primary/store_copy.c — `outpost server --migrate-from-sqlite`: copies an embedded deployment (an
 * outpost.db) into an empty PostgreSQL database. Both are first brought to this build's schema, so the
 * copy is column for column; it runs in one PostgreSQL transaction, so a failure leaves the target as
 * empty as it was. Live replica rows are not copied (they describe processes of the old deployment, and
 * the replicas of the new one register themselves).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "primary/primary_int.h"

/* The tables in foreign-key order, each with its columns and their types: t text, i integer, b blob. */
static const struct copy_table {
    const char *name, *cols, *types;
} tables[] = {
    {"site_config", "key, value", "tt"},
    {"users",
     "id, username, email, name, hashed_password, roles, status, login_type, created_at, updated_at, "
     "last_seen_at",
     "ttttttttiii"},
    {"api_keys",
     "id, hashed_secret, user_id, login_type, lifetime_seconds, created_at, last_used, expires_at, scope",
     "tbttiiiit"},
    {"workspace_proxies",
     "id, name, display_name, icon, url, wildcard_hostname, derp_enabled, derp_only, region_id, "
     "token_hashed_secret, deleted, version, created_at, updated_at",
     "ttttttiiibitii"},
    {"crypto_keys", "feature, sequence, secret, starts_at, deletes_at", "titii"},
    {"app_usage_stats",
     "id, proxy_id, user_id, workspace_id, agent_id, access_method, slug_or_port, session_id, "
     "session_started_at, session_ended_at, requests, created_at",
     "itttttttttii"},
    {"workspaces", "id, owner_id, name, created_at, updated_at", "tttii"},
    {"workspace_agents",
     "id, workspace_id, name, token_hashed_secret, connection_timeout_ms, created_at, updated_at, "
     "first_connected_at, last_connected_at, disconnected_at, lifecycle_state, version, operating_system, "
     "architecture, apps, listening_ports, regions, ssh_host_key",
     "tttbiiiiiitttttttt"},
    {"workspace_agent_port_shares", "workspace_id, agent_name, port, share_level, protocol, created_at",
     "ttitti"},
};

bool op_primary_is_postgres_url(const char *url)
{
    return op_db_is_postgres_url(url);
}

/* Rows in table of db, or a negative errno. */
static int64_t count_rows(struct op_primary *db, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    struct op_db_stmt *st = op_store_prepare(db, sql);
    if (!st) return -EIO;
    int64_t n = op_db_step(st) == OP_DB_ROW ? op_db_col_int64(st, 0) : -EIO;
    op_db_finalize(st);
    return n;
}

/* Copies one table; the number of rows, or a negative errno with msg set. */
static int64_t copy_table(struct op_primary *src, struct op_primary *dst, const struct copy_table *t,
                          char *msg, size_t msglen)
{
    char sel[640], ins[900], qs[64] = "";
    size_t ncol = strlen(t->types);
    for (size_t i = 0; i < ncol; i++)
        strcat(qs, i ? ", ?" : "?");
    snprintf(sel, sizeof(sel), "SELECT %s FROM %s", t->cols, t->name);
    snprintf(ins, sizeof(ins), "INSERT INTO %s (%s) VALUES (%s)", t->name, t->cols, qs);
    struct op_db_stmt *r = op_store_prepare(src, sel), *w = op_store_prepare(dst, ins);
    int64_t n = 0;
    int rc = r && w ? 0 : -EIO;
    while (!rc && (rc = op_db_step(r)) == OP_DB_ROW) {
        rc = 0;
        op_db_reset(w);
        for (size_t i = 0; i < ncol; i++) {
            int c = (int)i;
            if (op_db_col_is_null(r, c)) {
                op_db_bind_null(w, c + 1);
            } else if (t->types[i] == 'i') {
                op_db_bind_int64(w, c + 1, op_db_col_int64(r, c));
            } else if (t->types[i] == 'b') {
                size_t len = 0;
                const void *b = op_db_col_blob(r, c, &len);
                op_db_bind_blob(w, c + 1, b ? b : "", len);
            } else {
                op_db_bind_text(w, c + 1, op_db_col_text(r, c));
            }
        }
        rc = op_db_step(w) == OP_DB_DONE ? 0 : -EIO;
        n++;
    }
    if (rc < 0)
        snprintf(msg, msglen, "copying table %s failed: %s", t->name,
                 op_db_errmsg(r && op_db_last_error(src->db) ? src->db : dst->db));
    op_db_finalize(r);
    op_db_finalize(w);
    return rc < 0 ? rc : n;
}

int op_primary_copy_sqlite(const char *sqlite_path, const char *pg_url, char *msg, size_t msglen)
{
    /* Never create an empty file in place of a mistyped path. */
    if (access(sqlite_path, R_OK | W_OK) != 0) {
        snprintf(msg, msglen, "cannot open the SQLite database %s: %s", sqlite_path, strerror(errno));
        return -ENOENT;
    }
    struct op_primary src = {0}, dst = {0};
    char err[400];
    int rc = op_store_open(&src, sqlite_path, err, sizeof(err));
    if (rc) {
        snprintf(msg, msglen, "the SQLite database %s: %s", sqlite_path, err);
        return rc;
    }
    rc = op_store_open(&dst, pg_url, err, sizeof(err));
    if (rc) {
        snprintf(msg, msglen, "the PostgreSQL database: %s", err);
        op_store_close(&src);
        return rc;
    }
    for (size_t i = 0; i < OP_ARRAY_LEN(tables) && !rc; i++) {
        int64_t n = count_rows(&dst, tables[i].name);
        if (n != 0) {
            snprintf(msg, msglen,
                     n < 0 ? "cannot read table %s of the PostgreSQL database: %s"
                           : "the PostgreSQL database already holds a deployment (table %s has rows); copy "
                             "only into an empty database%s",
                     tables[i].name, n < 0 ? op_db_errmsg(dst.db) : "");
            rc = n < 0 ? (int)n : -EEXIST;
        }
    }
    int64_t total = 0;
    if (!rc) rc = op_store_begin(&dst);
    for (size_t i = 0; i < OP_ARRAY_LEN(tables) && !rc; i++) {
        int64_t n = copy_table(&src, &dst, &tables[i], msg, msglen);
        if (n < 0)
            rc = (int)n;
        else
            total += n;
    }
    /* The usage rows keep their ids: move the identity past them. */
    if (!rc && op_db_exec(dst.db, "SELECT setval(pg_get_serial_sequence('app_usage_stats', 'id'),"
                                  " COALESCE(MAX(id), 0) + 1, false) FROM app_usage_stats") != 0) {
        snprintf(msg, msglen, "cannot set the usage id sequence: %s", op_db_errmsg(dst.db));
        rc = -EIO;
    }
    if (!rc && op_store_commit(&dst) != 0) {
        snprintf(msg, msglen, "commit failed: %s", op_db_errmsg(dst.db));
        rc = -EIO;
    }
    if (rc) {
        op_store_rollback(&dst);
    } else {
        snprintf(msg, msglen, "copied %lld rows of %zu tables from %s into PostgreSQL", (long long)total,
                 OP_ARRAY_LEN(tables), sqlite_path);
        op_info("store", "%s", msg);
    }
    op_store_close(&src);
    op_store_close(&dst);
    return rc;
}
