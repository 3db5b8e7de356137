/*
 * primary/store.c — the primary's database through db/: SQLite (a file in the data directory, the default)
 * or PostgreSQL (a URL). Opens it, applies the schema steps of its dialect not yet applied (db/ runs each
 * in its own transaction under a lock, so replicas starting together apply a step once), and small helpers
 * (transactions, site_config, clean-up, one-row lookups).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "primary/primary_int.h"

/* Migration steps of each dialect; index i brings the schema from version i to i+1, and the two lists
 * stay step for step the same schema (so a version means the same in both stores). Never edit a shipped
 * step: append a new one to both lists. Times are ms since the epoch (64-bit), hashes raw bytes. */
static const char *const sqlite_steps[] = {
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
    /* 6: the proxies' health as the replica holding the lease last found it, for every replica to serve
     * (replicas.c): the status (enum op_health_status), its report's arrays as JSON, when it was found. */
    "CREATE TABLE proxy_health ("
    "  proxy_id TEXT PRIMARY KEY, status INTEGER NOT NULL, errors TEXT NOT NULL, warnings TEXT NOT NULL,"
    "  replicas TEXT NOT NULL DEFAULT '', checked_at INTEGER NOT NULL);",
};

static const char *const pg_steps[] = {
    /* 1: initial schema */
    "CREATE TABLE site_config (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY, username TEXT NOT NULL, email TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',"
    "  hashed_password TEXT NOT NULL, roles TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',"
    "  login_type TEXT NOT NULL DEFAULT 'password',"
    "  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL);"
    "CREATE UNIQUE INDEX users_username_idx ON users (lower(username));"
    "CREATE UNIQUE INDEX users_email_idx ON users (lower(email));"
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY, hashed_secret BYTEA NOT NULL,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  login_type TEXT NOT NULL, lifetime_seconds BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL, last_used BIGINT NOT NULL, expires_at BIGINT NOT NULL);"
    "CREATE INDEX api_keys_user_idx ON api_keys (user_id);"
    "CREATE TABLE workspace_proxies ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, display_name TEXT NOT NULL, icon TEXT NOT NULL,"
    "  url TEXT NOT NULL DEFAULT '', wildcard_hostname TEXT NOT NULL DEFAULT '',"
    "  derp_enabled INTEGER NOT NULL DEFAULT 1, derp_only INTEGER NOT NULL DEFAULT 0,"
    "  region_id INTEGER NOT NULL UNIQUE, token_hashed_secret BYTEA NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0, version TEXT NOT NULL DEFAULT '',"
    "  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);"
    "CREATE UNIQUE INDEX workspace_proxies_lower_name_idx ON workspace_proxies (lower(name)) WHERE deleted = "
    "0;"
    "CREATE TABLE replicas ("
    "  id TEXT PRIMARY KEY, proxy_id TEXT REFERENCES workspace_proxies(id) ON DELETE CASCADE,"
    "  hostname TEXT NOT NULL, region_id INTEGER NOT NULL, relay_address TEXT NOT NULL DEFAULT '',"
    "  version TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', database_latency BIGINT NOT NULL "
    "DEFAULT 0,"
    "  created_at BIGINT NOT NULL, started_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
    "  stopped_at BIGINT, is_primary INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE crypto_keys ("
    "  feature TEXT NOT NULL, sequence INTEGER NOT NULL, secret TEXT,"
    "  starts_at BIGINT NOT NULL, deletes_at BIGINT,"
    "  PRIMARY KEY (feature, sequence));"
    "CREATE TABLE app_usage_stats ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, proxy_id TEXT NOT NULL, user_id TEXT NOT NULL,"
    "  workspace_id TEXT NOT NULL, agent_id TEXT NOT NULL, access_method TEXT NOT NULL,"
    "  slug_or_port TEXT NOT NULL, session_id TEXT NOT NULL, session_started_at TEXT NOT NULL,"
    "  session_ended_at TEXT NOT NULL, requests BIGINT NOT NULL, created_at BIGINT NOT NULL);",
    /* 2: external workspaces and their agents */
    "CREATE TABLE workspaces ("
    "  id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES users(id), name TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);"
    "CREATE UNIQUE INDEX workspaces_owner_name_idx ON workspaces (owner_id, lower(name));"
    "CREATE TABLE workspace_agents ("
    "  id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL, token_hashed_secret BYTEA NOT NULL, connection_timeout_ms BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
    "  first_connected_at BIGINT, last_connected_at BIGINT, disconnected_at BIGINT,"
    "  lifecycle_state TEXT NOT NULL DEFAULT 'created', version TEXT NOT NULL DEFAULT '',"
    "  operating_system TEXT NOT NULL DEFAULT '', architecture TEXT NOT NULL DEFAULT '',"
    "  apps TEXT NOT NULL DEFAULT '[]', listening_ports TEXT NOT NULL DEFAULT '[]',"
    "  regions TEXT NOT NULL DEFAULT '[]');"
    "CREATE UNIQUE INDEX workspace_agents_name_idx ON workspace_agents (workspace_id, lower(name));",
    /* 3: agent SSH host keys */
    "ALTER TABLE workspace_agents ADD COLUMN ssh_host_key TEXT NOT NULL DEFAULT '';",
    /* 4: API key scopes */
    "ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'all';",
    /* 5: workspace port sharing */
    "CREATE TABLE workspace_agent_port_shares ("
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE, agent_name TEXT NOT NULL,"
    "  port INTEGER NOT NULL, share_level TEXT NOT NULL, protocol TEXT NOT NULL, created_at BIGINT NOT NULL,"
    "  PRIMARY KEY (workspace_id, agent_name, port));",
    /* 6: shared proxy health */
    "CREATE TABLE proxy_health ("
    "  proxy_id TEXT PRIMARY KEY, status INTEGER NOT NULL, errors TEXT NOT NULL, warnings TEXT NOT NULL,"
    "  replicas TEXT NOT NULL DEFAULT '', checked_at BIGINT NOT NULL);",
};
_Static_assert(OP_ARRAY_LEN(sqlite_steps) == OP_ARRAY_LEN(pg_steps), "one schema step per dialect");

struct op_db_stmt *op_store_prepare(struct op_primary *p, const char *sql)
{
    struct op_db_stmt *st = op_db_prepare(p->db, sql);
    if (!st) op_error("store", "prepare failed: %s", op_db_errmsg(p->db));
    return st;
}

int op_store_begin(struct op_primary *p)
{
    int rc = op_db_begin(p->db);
    if (rc) op_error("store", "BEGIN: %s", op_db_errmsg(p->db));
    return rc ? -EIO : 0;
}

int op_store_commit(struct op_primary *p)
{
    int rc = op_db_commit(p->db);
    if (rc) {
        op_error("store", "COMMIT: %s", op_db_errmsg(p->db));
        op_store_rollback(p);
    }
    return rc ? -EIO : 0;
}

void op_store_rollback(struct op_primary *p)
{
    op_db_rollback(p->db);
}

int op_store_get_config(struct op_primary *p, const char *key, char *out, size_t outlen)
{
    struct op_db_stmt *st = op_store_prepare(p, "SELECT value FROM site_config WHERE key = ?");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, key);
    int rc = op_db_step(st);
    int ret = -ENOENT;
    if (rc == OP_DB_ROW) {
        snprintf(out, outlen, "%s", op_db_col_text(st, 0));
        ret = 0;
    } else if (rc != OP_DB_DONE) {
        ret = -EIO;
    }
    op_db_finalize(st);
    return ret;
}

int op_store_set_config(struct op_primary *p, const char *key, const char *value)
{
    struct op_db_stmt *st =
        op_store_prepare(p, "INSERT INTO site_config (key, value) VALUES (?, ?) ON CONFLICT "
                            "(key) DO UPDATE SET value = excluded.value");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, key);
    op_db_bind_text(st, 2, value);
    int rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
    op_db_finalize(st);
    return rc;
}

int op_store_open(struct op_primary *p, const char *target, char *err, size_t errlen)
{
    int rc = op_db_open(target, &p->db, err, errlen);
    if (rc) return rc;
    bool pg = op_db_kind(p->db) == OP_DB_POSTGRES;
    rc = op_db_migrate(p->db, pg ? pg_steps : sqlite_steps, (int)OP_ARRAY_LEN(sqlite_steps), err, errlen);
    if (rc) {
        op_store_close(p);
        return rc;
    }
    op_info("store", "%s database at schema version %zu", op_db_kind_name(op_db_kind(p->db)),
            OP_ARRAY_LEN(sqlite_steps));
    return 0;
}

void op_store_close(struct op_primary *p)
{
    if (p->db) {
        op_db_close(p->db);
        p->db = NULL;
    }
}

int op_store_gc(struct op_primary *p)
{
    int64_t now = op_wall_ms();
    if (op_store_begin(p)) return -EIO;
    struct op_db_stmt *st = op_store_prepare(p, "DELETE FROM api_keys WHERE expires_at < ?");
    int rc = -EIO;
    if (st) {
        op_db_bind_int64(st, 1, now);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    }
    /* Replicas silent for 30 minutes are forgotten (Coder's cleanup interval). */
    st = rc ? NULL : op_store_prepare(p, "DELETE FROM replicas WHERE updated_at < ?");
    if (st) {
        op_db_bind_int64(st, 1, now - 30LL * 60 * 1000);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    }
    if (rc || op_store_commit(p)) {
        op_store_rollback(p);
        return -EIO;
    }
    return 0;
}

cJSON *op_store_row_json(struct op_primary *p, const char *sql, const char *key,
                         cJSON *(*row_json)(struct op_primary *p, struct op_db_stmt *st))
{
    struct op_db_stmt *st = op_store_prepare(p, sql);
    if (!st) return NULL;
    op_db_bind_text(st, 1, key);
    cJSON *o = op_db_step(st) == OP_DB_ROW ? row_json(p, st) : NULL;
    op_db_finalize(st);
    return o;
}
