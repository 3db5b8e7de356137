/*
 * primary/proxies_me.c — workspace proxies, the proxy-facing API authenticated by
 * Coder-External-Proxy-Token: register, deregister, app-stats (docs/coder-compat.md, "Workspace proxies").
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/proxy_row.h"
#include "util/host.h"

#define INVALID_PROXY_TOKEN "Invalid external proxy token"
#define REPLICA_ALIVE_MS    15000

bool op_auth_proxy(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp,
                   struct op_proxy_auth *px)
{
    const struct op_app_header *h = op_app_find_header(req, "Coder-External-Proxy-Token");
    if (!h || h->value.len == 0) {
        op_api_error(resp, 401, "Missing required external proxy token", NULL);
        return false;
    }
    const char *v = h->value.p;
    size_t n = h->value.len;
    const char *colon = memchr(v, ':', n);
    if (!colon || memchr(colon + 1, ':', n - (size_t)(colon - v) - 1) ||
        !op_uuid_valid(v, (size_t)(colon - v)) || n - (size_t)(colon - v) - 1 != 64) {
        op_api_error(resp, 401, INVALID_PROXY_TOKEN, NULL);
        return false;
    }
    char id[OP_UUID_STR_LEN + 1];
    memcpy(id, v, OP_UUID_STR_LEN);
    id[OP_UUID_STR_LEN] = '\0';
    for (char *c = id; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    uint8_t hash[OP_SHA256_LEN];
    op_sha256(colon + 1, 64, hash);
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT name, deleted, token_hashed_secret FROM workspace_proxies WHERE id = ?");
    if (!st) {
        op_api_error(resp, 500, "Internal error checking the external proxy token.", NULL);
        return false;
    }
    op_db_bind_text(st, 1, id);
    bool ok = false;
    if (op_db_step(st) != OP_DB_ROW) {
        op_api_error(resp, 401, INVALID_PROXY_TOKEN, "Proxy not found.");
    } else if ((int)op_db_col_int64(st, 1)) {
        op_api_error(resp, 401, INVALID_PROXY_TOKEN, "Proxy has been deleted.");
    } else {
        size_t hash_len = 0;
        const void *stored = op_db_col_blob(st, 2, &hash_len);
        if (!stored || hash_len != OP_SHA256_LEN || !op_ct_equal(stored, hash, OP_SHA256_LEN)) {
            op_api_error(resp, 401, INVALID_PROXY_TOKEN, "Invalid proxy token secret.");
        } else {
            snprintf(px->id, sizeof(px->id), "%s", id);
            snprintf(px->name, sizeof(px->name), "%s", op_db_col_text(st, 0));
            ok = true;
        }
    }
    op_db_finalize(st);
    return ok;
}

/* Access URL of a registering proxy: http(s)://host[:port] with an empty or "/" path. */
static bool access_url_valid(const char *u, const char **why)
{
    const char *rest;
    if (strncmp(u, "http://", 7) == 0)
        rest = u + 7;
    else if (strncmp(u, "https://", 8) == 0)
        rest = u + 8;
    else {
        *why = "scheme must be http or https";
        return false;
    }
    size_t hl = strcspn(rest, "/?#");
    if (hl == 0) {
        *why = "host is empty";
        return false;
    }
    for (size_t i = 0; i < hl; i++) {
        if ((unsigned char)rest[i] <= ' ' || rest[i] == '@' || rest[i] == '\\') {
            *why = "host contains invalid characters";
            return false;
        }
    }
    const char *path = rest + hl;
    if (*path && strcmp(path, "/") != 0) {
        *why = "path must be empty or \"/\"";
        return false;
    }
    return true;
}

static cJSON *derp_map_json(struct op_primary *p)
{
    cJSON *m = cJSON_CreateObject();
    cJSON *regions = cJSON_AddObjectToObject(m, "regions");
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT " OP_PROXY_COLS
                            " FROM workspace_proxies WHERE deleted = 0 AND derp_enabled = 1 AND url != ''");
    while (st && op_db_step(st) == OP_DB_ROW) {
        struct op_proxy_row r;
        op_proxy_read_row(st, &r);
        if (op_health_get(p, r.id) != OP_HEALTH_OK) continue;
        int rid = OP_DERP_REGION_START + r.region_id;
        char key[16], code[80], node[24], host[256] = "";
        snprintf(key, sizeof(key), "%d", rid);
        snprintf(code, sizeof(code), "coder_%s", r.name);
        for (char *c = code; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        snprintf(node, sizeof(node), "%da", rid);
        bool http = strncmp(r.url, "http://", 7) == 0;
        const char *hp = r.url + (http ? 7 : 8);
        size_t hl = strcspn(hp, "/");
        snprintf(host, sizeof(host), "%.*s", (int)hl, hp);
        int port = http ? 80 : 443;
        char *pc = strrchr(host, ':');
        if (pc && !strchr(pc, ']')) {
            port = atoi(pc + 1);
            *pc = '\0';
        }
        cJSON *reg = cJSON_AddObjectToObject(regions, key);
        cJSON_AddNumberToObject(reg, "regionID", rid);
        cJSON_AddStringToObject(reg, "regionCode", code);
        cJSON_AddStringToObject(reg, "regionName", *r.display_name ? r.display_name : r.name);
        cJSON_AddBoolToObject(reg, "embeddedRelay", false);
        cJSON_AddBoolToObject(reg, "avoid", false);
        cJSON *nodes = cJSON_AddArrayToObject(reg, "nodes");
        cJSON *nd = cJSON_CreateObject();
        cJSON_AddStringToObject(nd, "name", node);
        cJSON_AddNumberToObject(nd, "regionID", rid);
        cJSON_AddStringToObject(nd, "hostName", host);
        cJSON_AddNumberToObject(nd, "stunport", -1);
        cJSON_AddNumberToObject(nd, "derpport", port);
        cJSON_AddBoolToObject(nd, "forceHTTP", http);
        cJSON_AddItemToArray(nodes, nd);
    }
    op_db_finalize(st);
    cJSON_AddBoolToObject(m, "omitDefaultRegions", false);
    return m;
}

static bool json_bool(const cJSON *o, const char *name, bool dflt, bool *bad)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!it || cJSON_IsNull(it)) return dflt;
    if (!cJSON_IsBool(it)) {
        *bad = true;
        return dflt;
    }
    return cJSON_IsTrue(it);
}

static int upsert_replica(struct op_primary *p, const char *proxy_id, const char *rid, const char *hostname,
                          int region_id, const char *relay, const char *version, const char *error,
                          int64_t now, const char **why)
{
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT proxy_id, stopped_at IS NOT NULL FROM replicas WHERE id = ?");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, rid);
    int rc = op_db_step(st);
    bool exists = rc == OP_DB_ROW;
    if (exists && (int)op_db_col_int64(st, 1)) {
        op_db_finalize(st);
        *why = "replica has been stopped (deregistered); restart the proxy with a new replica ID";
        return -ESTALE;
    }
    if (exists && strcmp(op_db_col_text(st, 0), proxy_id) != 0) {
        op_db_finalize(st);
        *why = "replica belongs to another workspace proxy";
        return -EPERM;
    }
    op_db_finalize(st);
    if (rc != OP_DB_ROW && rc != OP_DB_DONE) return -EIO;
    st = op_store_prepare(
        p, exists
               ? "UPDATE replicas SET hostname = ?2, region_id = ?3, relay_address = ?4, version = ?5,"
                 " error = ?6, updated_at = ?7 WHERE id = ?1"
               : "INSERT INTO replicas (id, hostname, region_id, relay_address, version, error, created_at,"
                 " started_at, updated_at, proxy_id) VALUES (?1, ?2, ?3, ?4, ?5, '', ?7, ?7, ?7, ?8)");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, rid);
    op_db_bind_text(st, 2, hostname);
    op_db_bind_int64(st, 3, region_id);
    op_db_bind_text(st, 4, relay);
    op_db_bind_text(st, 5, version);
    op_db_bind_text(st, 6, error); /* stored only on subsequent registrations */
    op_db_bind_int64(st, 7, now);
    if (!exists) op_db_bind_text(st, 8, proxy_id);
    rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
    op_db_finalize(st);
    return rc;
}

static cJSON *siblings_json(struct op_primary *p, const char *proxy_id, const char *self, int64_t now)
{
    cJSON *arr = cJSON_CreateArray();
    struct op_db_stmt *st = op_store_prepare(
        p, "SELECT id, hostname, created_at, relay_address, region_id, error, database_latency FROM replicas"
           " WHERE proxy_id = ? AND id != ? AND stopped_at IS NULL AND updated_at >= ? ORDER BY created_at");
    if (!st) return arr;
    op_db_bind_text(st, 1, proxy_id);
    op_db_bind_text(st, 2, self);
    op_db_bind_int64(st, 3, now - REPLICA_ALIVE_MS);
    while (op_db_step(st) == OP_DB_ROW)
        cJSON_AddItemToArray(arr, op_replica_json(st));
    op_db_finalize(st);
    return arr;
}

int op_proxy_live_replicas(struct op_primary *p, const char *proxy_id, const char *access_url,
                           struct op_replica_ref *out, int max, char *no_relay)
{
    char first_bare[OP_UUID_STR_LEN + 1] = ""; /* a live replica without a relay address */
    int live = 0, n = 0;
    if (no_relay) no_relay[0] = '\0';
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT id, relay_address FROM replicas WHERE proxy_id = ? AND stopped_at IS NULL"
                            " AND updated_at >= ? ORDER BY created_at, id");
    if (!st) return 0;
    op_db_bind_text(st, 1, proxy_id);
    op_db_bind_int64(st, 2, op_wall_ms() - REPLICA_ALIVE_MS);
    while (op_db_step(st) == OP_DB_ROW) {
        const char *id = op_db_col_text(st, 0), *relay = op_db_col_text(st, 1);
        live++;
        if (!*relay && !*first_bare) snprintf(first_bare, sizeof(first_bare), "%s", id);
        if (n == max) continue;
        struct op_replica_ref *r = &out[n];
        snprintf(r->id, sizeof(r->id), "%s", id);
        snprintf(r->url, sizeof(r->url), "%s", *relay ? relay : access_url);
        size_t ul = strlen(r->url);
        while (ul > 0 && r->url[ul - 1] == '/')
            r->url[--ul] = '\0';
        bool dup = false; /* replicas without a relay address share the access URL (the load balancer) */
        for (int i = 0; i < n && !dup; i++)
            dup = strcmp(out[i].url, r->url) == 0;
        if (!dup && *r->url) n++;
    }
    op_db_finalize(st);
    if (no_relay && live > 1) snprintf(no_relay, OP_UUID_STR_LEN + 1, "%s", first_bare);
    return n;
}

void op_api_proxy_register(struct op_primary *p, const struct op_proxy_auth *px,
                           const struct op_app_request *req, struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool bad = false;
    const char *url = op_json_str(body, "access_url", &bad);
    const char *wildcard = op_json_str(body, "wildcard_hostname", &bad);
    bool derp_enabled = json_bool(body, "derp_enabled", false, &bad);
    bool derp_only = json_bool(body, "derp_only", false, &bad);
    const char *rid = op_json_str(body, "replica_id", &bad);
    const char *hostname = op_json_str(body, "hostname", &bad);
    const char *rerr = op_json_str(body, "replica_error", &bad);
    const char *relay = op_json_str(body, "replica_relay_address", &bad);
    const char *version = op_json_str(body, "version", &bad);
    const char *why = "";
    if (bad) {
        op_api_error(resp, 400, "Request body must be valid JSON.", "a field has the wrong type");
        goto out;
    }
    if (!url || !access_url_valid(url, &why) || strlen(url) >= 512) {
        op_api_error(resp, 400, "URL is invalid.", url ? why : "access_url is required");
        goto out;
    }
    if (wildcard && *wildcard && (strlen(wildcard) >= 256 || !op_wildcard_valid(wildcard))) {
        op_api_error(resp, 400, "Wildcard URL is invalid.",
                     "the wildcard hostname does not follow the pattern rules");
        goto out;
    }
    if (derp_only && !derp_enabled) {
        op_api_error(resp, 400, "DerpOnly cannot be true when DerpEnabled is false.", NULL);
        goto out;
    }
    if (!rid || !op_uuid_valid(rid, strlen(rid)) || op_uuid_is_nil(rid)) {
        op_api_error(resp, 400, "Replica ID is invalid.", NULL);
        goto out;
    }
    if ((hostname && strlen(hostname) > 255) || (version && strlen(version) > 63) ||
        (relay && strlen(relay) > 511) || (rerr && strlen(rerr) > 4096)) {
        op_api_error(resp, 400, "Validation failed.", "a field is too long");
        goto out;
    }
    char replica[OP_UUID_STR_LEN + 1];
    for (int i = 0; i <= OP_UUID_STR_LEN; i++)
        replica[i] = (char)tolower((unsigned char)rid[i]);
    char mesh[80] = "";
    op_store_get_config(p, "derp_mesh_key", mesh, sizeof(mesh));
    if (derp_enabled && !*mesh) {
        op_api_error(resp, 500, "Internal error registering workspace proxy.", "the DERP mesh key is empty");
        goto out;
    }
    int64_t now = op_wall_ms();
    int region_id = 0;
    int rc = op_store_begin(p);
    if (!rc) {
        rc = -EIO;
        struct op_db_stmt *st = op_store_prepare(
            p, "UPDATE workspace_proxies SET url = ?, wildcard_hostname = ?, derp_enabled = ?, derp_only = ?,"
               " version = ?, updated_at = ? WHERE id = ? AND deleted = 0 RETURNING region_id");
        if (st) {
            op_db_bind_text(st, 1, url);
            op_db_bind_text(st, 2, wildcard ? wildcard : "");
            op_db_bind_int64(st, 3, derp_enabled);
            op_db_bind_int64(st, 4, derp_only);
            op_db_bind_text(st, 5, version ? version : "");
            op_db_bind_int64(st, 6, now);
            op_db_bind_text(st, 7, px->id);
            if (op_db_step(st) == OP_DB_ROW) {
                region_id = (int)op_db_col_int64(st, 0);
                rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
            }
            op_db_finalize(st);
        }
    }
    if (!rc)
        rc = upsert_replica(p, px->id, replica, hostname ? hostname : "", region_id, relay ? relay : "",
                            version ? version : "", rerr ? rerr : "", now, &why);
    if (rc || op_store_commit(p)) {
        op_store_rollback(p);
        op_api_error(resp, 500, "Internal error registering workspace proxy.",
                     rc == -ESTALE || rc == -EPERM ? why : "database error");
        goto out;
    }
    op_debug("proxies", "proxy %s registered replica %s", px->name, replica);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "derp_mesh_key", derp_enabled ? mesh : "");
    cJSON_AddNumberToObject(o, "derp_region_id", OP_DERP_REGION_START + region_id);
    cJSON_AddItemToObject(o, "derp_map", derp_map_json(p));
    cJSON_AddBoolToObject(o, "derp_force_websockets", false);
    cJSON_AddItemToObject(o, "sibling_replicas", siblings_json(p, px->id, replica, now));
    cJSON_AddStringToObject(o, "proxy_name", px->name); /* beyond the reference: the region name of streams */
    op_api_json(resp, 201, o);
    op_primary_force_health(p);
out:
    cJSON_Delete(body);
}

void op_api_proxy_deregister(struct op_primary *p, const struct op_proxy_auth *px,
                             const struct op_app_request *req, struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool bad = false;
    const char *rid = op_json_str(body, "replica_id", &bad);
    if (bad || !rid || !op_uuid_valid(rid, strlen(rid))) {
        op_api_error(resp, 400, "Replica ID is invalid.", NULL);
        goto out;
    }
    char replica[OP_UUID_STR_LEN + 1];
    for (int i = 0; i <= OP_UUID_STR_LEN; i++)
        replica[i] = (char)tolower((unsigned char)rid[i]);
    if (op_store_begin(p)) {
        op_api_error(resp, 500, "Internal error deregistering workspace proxy.", NULL);
        goto out;
    }
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT stopped_at IS NOT NULL FROM replicas WHERE id = ? AND proxy_id = ?");
    int state = -1; /* -1 missing, 0 running, 1 stopped */
    if (st) {
        op_db_bind_text(st, 1, replica);
        op_db_bind_text(st, 2, px->id);
        if (op_db_step(st) == OP_DB_ROW) state = (int)op_db_col_int64(st, 0);
        op_db_finalize(st);
    }
    if (state != 0) {
        op_store_rollback(p);
        if (state < 0)
            op_api_error(resp, 404, OP_NOT_FOUND_MSG, NULL);
        else
            op_api_error(resp, 500, "Internal error deregistering workspace proxy.",
                         "replica is already stopped");
        goto out;
    }
    int64_t now = op_wall_ms();
    int rc = -EIO;
    st = op_store_prepare(p, "UPDATE replicas SET stopped_at = ?1, updated_at = ?1 WHERE id = ?2");
    if (st) {
        op_db_bind_int64(st, 1, now);
        op_db_bind_text(st, 2, replica);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    }
    if (!op_api_commit(p, rc, resp, "Internal error deregistering workspace proxy.", false)) goto out;
    op_info("proxies", "proxy %s deregistered replica %s", px->name, replica);
    resp->status = 204;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    op_primary_force_health(p);
out:
    cJSON_Delete(body);
}

static const char *stat_str(const cJSON *s, const char *name, bool *bad)
{
    const char *v = op_json_str(s, name, bad);
    if (v && strlen(v) > 256) *bad = true;
    return v ? v : "";
}

void op_api_proxy_app_stats(struct op_primary *p, const struct op_proxy_auth *px,
                            const struct op_app_request *req, struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(body, "stats");
    if (stats && !cJSON_IsArray(stats) && !cJSON_IsNull(stats)) {
        op_api_error(resp, 400, "Request body must be valid JSON.", "stats must be an array");
        goto out;
    }
    int64_t now = op_wall_ms();
    if (op_store_begin(p)) {
        op_api_error(resp, 500, "Internal error saving workspace app stats.", NULL);
        goto out;
    }
    struct op_db_stmt *st = op_store_prepare(
        p,
        "INSERT INTO app_usage_stats (proxy_id, user_id, workspace_id, agent_id, access_method, slug_or_port,"
        " session_id, session_started_at, session_ended_at, requests, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    const cJSON *s;
    int rc = st ? 0 : -EIO;
    cJSON_ArrayForEach(s, stats)
    {
        if (rc) break;
        bool bad = !cJSON_IsObject(s);
        const char *f[8];
        static const char *const names[8] = {
            "user_id",      "workspace_id", "agent_id",           "access_method",
            "slug_or_port", "session_id",   "session_started_at", "session_ended_at"};
        for (int i = 0; i < 8; i++)
            f[i] = bad ? "" : stat_str(s, names[i], &bad);
        const cJSON *reqs = bad ? NULL : cJSON_GetObjectItemCaseSensitive(s, "requests");
        if (bad || (reqs && !cJSON_IsNumber(reqs))) {
            rc = -EINVAL;
            break;
        }
        op_db_reset(st);
        op_db_bind_text(st, 1, px->id);
        for (int i = 0; i < 8; i++)
            op_db_bind_text(st, 2 + i, f[i]);
        double rq = reqs ? reqs->valuedouble : 0;
        op_db_bind_int64(st, 10, rq > 0 && rq < 1e15 ? (int64_t)rq : 0);
        op_db_bind_int64(st, 11, now);
        if (op_db_step(st) != OP_DB_DONE) rc = -EIO;
    }
    op_db_finalize(st);
    if (rc || op_store_commit(p)) {
        op_store_rollback(p);
        if (rc == -EINVAL)
            op_api_error(resp, 400, "Request body must be valid JSON.", "a stats entry has the wrong shape");
        else
            op_api_error(resp, 500, "Internal error saving workspace app stats.", NULL);
        goto out;
    }
    resp->status = 204;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
out:
    cJSON_Delete(body);
}
