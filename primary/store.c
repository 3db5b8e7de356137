/*
 * primary/store.c — the SQLite database: open with WAL, foreign keys and a busy timeout, apply the
 * migration steps not yet recorded in PRAGMA user_version (each step in its own transaction), and small
 * helpers (transactions, site_config, time formatting).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "primary/primary_int.h"

/* Migration steps; index i brings the schema from user_version i to i+1. Never edit a shipped step:
 * append a new one. */
static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE site_config (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY, username TEXT NOT NULL, email TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',"
    "  hashed_password TEXT NOT NULL, roles TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',"
    "  login_type TEXT NOT NULL DEFAULT 'password',"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX users_username_idx ON users (lower(username));"
    "CREATE UNIQUE INDEX users_email_idx ON users (lower(email));"
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY, hashed_secret BLOB NOT NULL,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  login_type TEXT NOT NULL, lifetime_seconds INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, last_used INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
    "CREATE INDEX api_keys_user_idx ON api_keys (user_id);"
    "CREATE TABLE workspace_proxies ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, display_name TEXT NOT NULL, icon TEXT NOT NULL,"
    "  url TEXT NOT NULL DEFAULT '', wildcard_hostname TEXT NOT NULL DEFAULT '',"
    "  derp_enabled INTEGER NOT NULL DEFAULT 1, derp_only INTEGER NOT NULL DEFAULT 0,"
    "  region_id INTEGER NOT NULL UNIQUE, token_hashed_secret BLOB NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0, version TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX workspace_proxies_lower_name_idx ON workspace_proxies (lower(name)) WHERE deleted = "
    "0;"
    "CREATE TABLE replicas ("
    "  id TEXT PRIMARY KEY, proxy_id TEXT REFERENCES workspace_proxies(id) ON DELETE CASCADE,"
    "  hostname TEXT NOT NULL, region_id INTEGER NOT NULL, relay_address TEXT NOT NULL DEFAULT '',"
    "  version TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', database_latency INTEGER NOT NULL "
    "DEFAULT 0,"
    "  created_at INTEGER NOT NULL, started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    "  stopped_at INTEGER, is_primary INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE crypto_keys ("
    "  feature TEXT NOT NULL, sequence INTEGER NOT NULL, secret TEXT,"
    "  starts_at INTEGER NOT NULL, deletes_at INTEGER,"
    "  PRIMARY KEY (feature, sequence));"
    "CREATE TABLE app_usage_stats ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, proxy_id TEXT NOT NULL, user_id TEXT NOT NULL,"
    "  workspace_id TEXT NOT NULL, agent_id TEXT NOT NULL, access_method TEXT NOT NULL,"
    "  slug_or_port TEXT NOT NULL, session_id TEXT NOT NULL, session_started_at TEXT NOT NULL,"
    "  session_ended_at TEXT NOT NULL, requests INTEGER NOT NULL, created_at INTEGER NOT NULL);",
    /* 2: external workspaces and their agents. Agent tokens are stored as SHA-256 of the secret only;
     * times are ms since the epoch, NULL = never. apps, listening_ports and regions hold the JSON arrays
     * the agent last reported (validated and re-serialised by the primary). */
    "CREATE TABLE workspaces ("
    "  id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES users(id), name TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX workspaces_owner_name_idx ON workspaces (owner_id, lower(name));"
    "CREATE TABLE workspace_agents ("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL, token_hashed_secret BLOB NOT NULL, connection_timeout_ms INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    "  first_connected_at INTEGER, last_connected_at INTEGER, disconnected_at INTEGER,"
    "  lifecycle_state TEXT NOT NULL DEFAULT 'created', version TEXT NOT NULL DEFAULT '',"
    "  operating_system TEXT NOT NULL DEFAULT '', architecture TEXT NOT NULL DEFAULT '',"
    "  apps TEXT NOT NULL DEFAULT '[]', listening_ports TEXT NOT NULL DEFAULT '[]',"
    "  regions TEXT NOT NULL DEFAULT '[]');"
    "CREATE UNIQUE INDEX workspace_agents_name_idx ON workspace_agents (workspace_id, lower(name));",
    /* 3: the SSH host public key an agent reports ("ssh-ed25519 AAAA..."), '' until it does. */
    "ALTER TABLE workspace_agents ADD COLUMN ssh_host_key TEXT NOT NULL DEFAULT '';",
    /* 4: API key scopes: 'all' (sessions, the whole API) or 'application_connect' (made by the app
     * auth redirect for workspace proxies: good for app-token issuance only). */
    "ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'all';",
    /* 5: workspace port sharing (port_share.c): a port of an agent (by its name, as Coder keys it) at a share
     * level above the ports' default "owner"; the rows go with their workspace. */
    "CREATE TABLE workspace_agent_port_shares ("
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE, agent_name TEXT NOT NULL,"
    "  port INTEGER NOT NULL, share_level TEXT NOT NULL, protocol TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (workspace_id, agent_name, port));",
};

const char *op_col_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

sqlite3_stmt *op_store_prepare(struct op_primary *p, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(p->db, sql, -1, &st, NULL) != SQLITE_OK) {
        op_error("store", "prepare failed: %s", sqlite3_errmsg(p->db));
        return NULL;
    }
    return st;
}

static int exec(struct op_primary *p, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(p->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        op_error("store", "%s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

int op_store_begin(struct op_primary *p)
{
    return exec(p, "BEGIN IMMEDIATE");
}

int op_store_commit(struct op_primary *p)
{
    int rc = exec(p, "COMMIT");
    if (rc) op_store_rollback(p);
    return rc;
}

void op_store_rollback(struct op_primary *p)
{
    if (!sqlite3_get_autocommit(p->db)) sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
}

int op_store_get_config(struct op_primary *p, const char *key, char *out, size_t outlen)
{
    sqlite3_stmt *st = op_store_prepare(p, "SELECT value FROM site_config WHERE key = ?");
    if (!st) return -EIO;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int ret = -ENOENT;
    if (rc == SQLITE_ROW) {
        snprintf(out, outlen, "%s", op_col_text(st, 0));
        ret = 0;
    } else if (rc != SQLITE_DONE) {
        ret = -EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

int op_store_set_config(struct op_primary *p, const char *key, const char *value)
{
    sqlite3_stmt *st = op_store_prepare(p, "INSERT INTO site_config (key, value) VALUES (?, ?) ON CONFLICT "
                                           "(key) DO UPDATE SET value = excluded.value");
    if (!st) return -EIO;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(st);
    return rc;
}

static int user_version(struct op_primary *p)
{
    sqlite3_stmt *st = op_store_prepare(p, "PRAGMA user_version");
    if (!st) return -EIO;
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -EIO;
    sqlite3_finalize(st);
    return v;
}

static int migrate(struct op_primary *p, char *err, size_t errlen)
{
    int v = user_version(p);
    if (v < 0) {
        snprintf(err, errlen, "cannot read the schema version");
        return -EIO;
    }
    if ((size_t)v > OP_ARRAY_LEN(migrations)) {
        snprintf(err, errlen, "database schema version %d is newer than this binary (%zu)", v,
                 OP_ARRAY_LEN(migrations));
        return -EPROTO;
    }
    for (size_t i = (size_t)v; i < OP_ARRAY_LEN(migrations); i++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %zu", i + 1);
        if (op_store_begin(p) || exec(p, migrations[i]) || exec(p, bump) || op_store_commit(p)) {
            op_store_rollback(p);
            snprintf(err, errlen, "migration %zu failed: %s", i + 1, sqlite3_errmsg(p->db));
            return -EIO;
        }
        op_info("store", "applied migration %zu", i + 1);
    }
    return 0;
}

int op_store_open(struct op_primary *p, const char *path, char *err, size_t errlen)
{
    /* The database holds password and token hashes and the app-token keys: owner-only from the start
     * (SQLite gives the -wal and -shm files the same mode). */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        snprintf(err, errlen, "cannot open database %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -EIO;
    }
    close(fd);
    int rc = sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 p->db ? sqlite3_errmsg(p->db) : "out of memory");
        sqlite3_close(p->db);
        p->db = NULL;
        return -EIO;
    }
    sqlite3_busy_timeout(p->db, 5000);
    if (exec(p, "PRAGMA journal_mode = WAL") || exec(p, "PRAGMA foreign_keys = ON") ||
        exec(p, "PRAGMA synchronous = NORMAL")) {
        snprintf(err, errlen, "cannot configure database %s: %s", path, sqlite3_errmsg(p->db));
        op_store_close(p);
        return -EIO;
    }
    rc = migrate(p, err, errlen);
    if (rc) {
        op_store_close(p);
        return rc;
    }
    return 0;
}

void op_store_close(struct op_primary *p)
{
    if (p->db) {
        sqlite3_close_v2(p->db);
        p->db = NULL;
    }
}

int op_store_gc(struct op_primary *p)
{
    int64_t now = op_wall_ms();
    if (op_store_begin(p)) return -EIO;
    sqlite3_stmt *st = op_store_prepare(p, "DELETE FROM api_keys WHERE expires_at < ?");
    int rc = -EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, now);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        sqlite3_finalize(st);
    }
    /* Replicas silent for 30 minutes are forgotten (Coder's cleanup interval). */
    st = rc ? NULL : op_store_prepare(p, "DELETE FROM replicas WHERE updated_at < ?");
    if (st) {
        sqlite3_bind_int64(st, 1, now - 30LL * 60 * 1000);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        sqlite3_finalize(st);
    }
    if (rc || op_store_commit(p)) {
        op_store_rollback(p);
        return -EIO;
    }
    return 0;
}

cJSON *op_store_row_json(struct op_primary *p, const char *sql, const char *key,
                         cJSON *(*row_json)(struct op_primary *p, sqlite3_stmt *st))
{
    sqlite3_stmt *st = op_store_prepare(p, sql);
    if (!st) return NULL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    cJSON *o = sqlite3_step(st) == SQLITE_ROW ? row_json(p, st) : NULL;
    sqlite3_finalize(st);
    return o;
}
