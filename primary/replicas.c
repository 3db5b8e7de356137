/*
 * primary/replicas.c — several `outpost server` processes on one PostgreSQL database are replicas of one
 * deployment. Each registers itself in the replicas table (is_primary = 1) and refreshes its row every
 * few seconds; GET /api/v2/replicas lists those heard from recently. Work that must happen once — the
 * proxy health checks, key rotation, clean-up — is done by the replica holding the lease: a session-level
 * PostgreSQL advisory lock, so it is released by the server the moment the holder's connection ends (the
 * process died or lost its database), and the others try to take it every half second. On SQLite the one
 * process always holds it.
 *
 * The replica also watches its database connection: after a PostgreSQL restart the connection is gone
 * (-ENOTCONN); requests then answer 503 (api.c) and the connection is made again here, at most once a
 * second, without blocking longer than libpq's connect on loopback or the URL's connect_timeout.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "primary/primary_int.h"

#define LEASE_KEY        0x6f75746c65617365LL /* "outlease" (schema migrations lock "outpost", db/pg.c) */
#define LEASE_TRY_MS     500
#define REPLICA_BEAT_MS  5000
#define REPLICA_ALIVE_MS 15000 /* a replica silent this long is no longer listed */
#define DB_RECONNECT_MS  1000

static int beat(struct op_primary *p, bool first)
{
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) != 0) snprintf(host, sizeof(host), "unknown");
    int64_t now = op_wall_ms();
    uint64_t t0 = op_now_us();
    struct op_db_stmt *st = op_store_prepare(
        p,
        first
            ? "INSERT INTO replicas (id, hostname, region_id, relay_address, version, database_latency,"
              " created_at, started_at, updated_at, is_primary) VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?6, ?6, 1)"
            : "UPDATE replicas SET hostname = ?2, relay_address = ?3, version = ?4, database_latency = ?5,"
              " updated_at = ?6, stopped_at = NULL WHERE id = ?1");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, p->replica_id);
    op_db_bind_text(st, 2, host);
    op_db_bind_text(st, 3, p->relay_url ? p->relay_url : p->access_url);
    op_db_bind_text(st, 4, OP_PRIMARY_VERSION);
    op_db_bind_int64(st, 5, (int64_t)p->db_latency_us);
    op_db_bind_int64(st, 6, now);
    int rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
    int64_t changed = op_db_changes(st);
    op_db_finalize(st);
    p->db_latency_us = op_now_us() - t0;
    if (!rc && !first && changed == 0) return beat(p, true); /* cleaned up while away: register again */
    return rc;
}

/* Tries to take the lease (PostgreSQL); true when this replica holds it afterwards. */
static bool try_lease(struct op_primary *p)
{
    struct op_db_stmt *st = op_store_prepare(p, "SELECT pg_try_advisory_lock(?)");
    if (!st) return false;
    op_db_bind_int64(st, 1, LEASE_KEY);
    bool got = op_db_step(st) == OP_DB_ROW && op_db_col_int64(st, 0) == 1;
    op_db_finalize(st);
    return got;
}

int op_replicas_start(struct op_primary *p)
{
    if (op_uuid_v4(p->replica_id) != 0) return -EIO;
    p->replicated = op_db_kind(p->db) == OP_DB_POSTGRES;
    p->lease_held = !p->replicated || try_lease(p);
    int rc = beat(p, true);
    if (rc) return rc;
    op_info("replicas", "this primary is replica %s", p->replica_id);
    /* Without the lease, serve the holder's verdicts from the first request on; the holder itself probes at
     * its first tick (a verdict stored by an earlier process is not taken for a fresh one). */
    if (p->replicated && !p->lease_held) op_health_load(p);
    if (p->lease_held) op_info("replicas", "replica %s took the lease", p->replica_id);
    p->next_beat_ms = op_now_ms() + REPLICA_BEAT_MS;
    return 0;
}

void op_replicas_stop(struct op_primary *p)
{
    if (!p->db || !p->replica_id[0] || p->db_down) return;
    struct op_db_stmt *st =
        op_store_prepare(p, "UPDATE replicas SET stopped_at = ?, updated_at = ? WHERE id = ?");
    if (!st) return;
    int64_t now = op_wall_ms();
    op_db_bind_int64(st, 1, now);
    op_db_bind_int64(st, 2, now);
    op_db_bind_text(st, 3, p->replica_id);
    (void)op_db_step(st);
    op_db_finalize(st);
}

void op_replicas_note_db(struct op_primary *p)
{
    if (op_db_last_error(p->db) != -ENOTCONN || p->db_down) return;
    p->db_down = true;
    if (p->lease_held && p->replicated)
        op_warn("replicas", "replica %s lost the lease with its database", p->replica_id);
    p->lease_held = !p->replicated;
    op_warn("replicas", "the database connection is gone (%s); reconnecting", op_db_errmsg(p->db));
}

bool op_replicas_db_ok(struct op_primary *p)
{
    if (!p->db_down) return true;
    uint64_t now = op_now_ms();
    if (now < p->next_reconnect_ms) return false;
    p->next_reconnect_ms = now + DB_RECONNECT_MS;
    if (op_db_reconnect(p->db) != 0) return false;
    p->db_down = false;
    op_info("replicas", "the database connection is back");
    p->next_beat_ms = 0;
    p->next_lease_ms = 0;
    return true;
}

void op_replicas_tick(struct op_primary *p)
{
    if (!op_replicas_db_ok(p)) return;
    uint64_t now = op_now_ms();
    if (now >= p->next_beat_ms) {
        if (beat(p, false) != 0) op_replicas_note_db(p);
        p->next_beat_ms = now + REPLICA_BEAT_MS;
    }
    if (!p->lease_held && now >= p->next_lease_ms) {
        p->next_lease_ms = now + LEASE_TRY_MS;
        if (try_lease(p)) {
            p->lease_held = true;
            op_info("replicas", "replica %s took the lease", p->replica_id);
            op_primary_force_health(p); /* probe now, not an interval after the last holder did */
            p->next_rotate_ms = 0;
        } else {
            op_replicas_note_db(p);
        }
    }
}

cJSON *op_replica_json(struct op_db_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    char t[32];
    op_format_time(op_db_col_int64(st, 2), t);
    cJSON_AddStringToObject(o, "id", op_db_col_text(st, 0));
    cJSON_AddStringToObject(o, "hostname", op_db_col_text(st, 1));
    cJSON_AddStringToObject(o, "created_at", t);
    cJSON_AddStringToObject(o, "relay_address", op_db_col_text(st, 3));
    cJSON_AddNumberToObject(o, "region_id", (double)op_db_col_int64(st, 4));
    cJSON_AddStringToObject(o, "error", op_db_col_text(st, 5));
    cJSON_AddNumberToObject(o, "database_latency", (double)op_db_col_int64(st, 6));
    return o;
}

void op_api_replicas(struct op_primary *p, struct op_app_response *resp)
{
    struct op_db_stmt *st = op_store_prepare(
        p, "SELECT id, hostname, created_at, relay_address, region_id, error, database_latency FROM replicas"
           " WHERE is_primary = 1 AND stopped_at IS NULL AND updated_at >= ? ORDER BY created_at, id");
    cJSON *arr = st ? cJSON_CreateArray() : NULL;
    if (st) op_db_bind_int64(st, 1, op_wall_ms() - REPLICA_ALIVE_MS);
    int rc = OP_DB_DONE;
    while (arr && (rc = op_db_step(st)) == OP_DB_ROW)
        cJSON_AddItemToArray(arr, op_replica_json(st));
    op_db_finalize(st);
    if (!arr || rc != OP_DB_DONE) {
        cJSON_Delete(arr);
        op_api_error(resp, 500, "Internal error fetching replicas.", NULL);
        return;
    }
    op_api_json(resp, 200, arr);
}

void op_replicas_manifest(struct op_primary *p, cJSON *region)
{
    if (!p->replicated) return;
    struct op_db_stmt *st = op_store_prepare(p, "SELECT id, relay_address FROM replicas WHERE is_primary = 1 "
                                                "AND stopped_at IS NULL AND updated_at >= ?"
                                                " AND relay_address != '' ORDER BY created_at, id");
    if (!st) return;
    op_db_bind_int64(st, 1, op_wall_ms() - REPLICA_ALIVE_MS);
    cJSON *ra = cJSON_AddArrayToObject(region, "replicas");
    for (int n = 0; n < OP_REPLICAS_MAX && op_db_step(st) == OP_DB_ROW; n++) {
        cJSON *one = cJSON_CreateObject();
        cJSON_AddStringToObject(one, "id", op_db_col_text(st, 0));
        cJSON_AddStringToObject(one, "relay_url", op_db_col_text(st, 1));
        cJSON_AddItemToArray(ra, one);
    }
    op_db_finalize(st);
}
