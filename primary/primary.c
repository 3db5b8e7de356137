/*
 * primary/primary.c — lifetime of the primary: open (database, identity, health checker, keys), the
 * periodic tick and close.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/log.h"
#include "http/h1.h"
#include "primary/primary_int.h"
#include "proto/sha512.h"
#include "wsapp/token.h"
#include "region/region.h"
#include "util/host.h"
#include "util/url.h"

#define ROTATE_INTERVAL_MS (10u * 60 * 1000)
#define REGION_KEYS_MS     (10u * 1000) /* how often the region's key set is compared with the database */

static void region_keys(struct op_primary *p);

static int mkdir_p(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(buf)) return -EINVAL;
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -errno;
            buf[i] = c;
        }
    }
    return 0;
}

/* Stores a random value under key unless present; out receives the value. Runs in the caller's tx. */
static int ensure_config(struct op_primary *p, const char *key, bool uuid, char *out, size_t outlen)
{
    int rc = op_store_get_config(p, key, out, outlen);
    if (rc != -ENOENT) return rc;
    char v[80];
    if (uuid) {
        rc = op_uuid_v4(v);
    } else {
        uint8_t raw[32];
        rc = op_random_bytes(raw, sizeof(raw));
        op_hex_encode(raw, sizeof(raw), v);
    }
    if (rc) return rc;
    /* Replicas starting together on a new database: the first value stored wins, and all read it. */
    struct op_db_stmt *st = op_store_prepare(
        p, "INSERT INTO site_config (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, key);
    op_db_bind_text(st, 2, v);
    rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
    op_db_finalize(st);
    op_secure_zero(v, sizeof(v));
    return rc ? rc : op_store_get_config(p, key, out, outlen);
}

/* Wildcard access URL ("https://" + pattern, or the bare pattern) to the app hostname pattern, with the
 * access URL's port appended when the pattern has none. */
static int wildcard_host(const char *wild, const char *access_url, char **out)
{
    *out = NULL;
    if (!wild || !*wild) {
        *out = strdup("");
        return *out ? 0 : -ENOMEM;
    }
    const char *w = strstr(wild, "://") ? strstr(wild, "://") + 3 : wild;
    size_t wl = strcspn(w, "/");
    char pat[256];
    if (wl == 0 || wl >= sizeof(pat) - 8) return -EINVAL;
    memcpy(pat, w, wl);
    pat[wl] = '\0';
    if (!op_wildcard_valid(pat)) return -EINVAL;
    const char *a = strstr(access_url, "://") + 3;
    size_t al = strcspn(a, "/");
    const char *colon = memchr(a, ':', al);
    if (!strchr(pat, ':') && colon)
        snprintf(pat + wl, sizeof(pat) - wl, "%.*s", (int)(al - (size_t)(colon - a)), colon);
    *out = strdup(pat);
    return *out ? 0 : -ENOMEM;
}

int op_primary_open(const struct op_primary_config *cfg, struct op_primary **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->data_dir || !*cfg->data_dir) {
        snprintf(err, errlen, "a data directory is required");
        return -EINVAL;
    }
    const char *au = cfg->access_url;
    if (!au || !op_url_http_host(au).p) {
        snprintf(err, errlen, "access URL \"%s\" must be an http:// or https:// URL with a host",
                 au ? au : "");
        return -EINVAL;
    }
    struct op_primary *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    p->data_dir = strdup(cfg->data_dir);
    p->access_url = strdup(au);
    if (!p->data_dir || !p->access_url) {
        op_primary_close(p);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    op_url_trim_slashes(p->access_url);
    if (cfg->relay_url && *cfg->relay_url) {
        if (!op_url_http_host(cfg->relay_url).p || !(p->relay_url = strdup(cfg->relay_url))) {
            snprintf(err, errlen, "invalid --derp-server-relay-url \"%s\" (an http:// or https:// URL)",
                     cfg->relay_url);
            op_primary_close(p);
            return -EINVAL;
        }
        op_url_trim_slashes(p->relay_url);
    }
    int rc = wildcard_host(cfg->wildcard_access_url, p->access_url, &p->wildcard_host);
    if (rc) {
        snprintf(err, errlen, "wildcard access URL \"%s\" is invalid (expected e.g. *.example.com)",
                 cfg->wildcard_access_url);
        op_primary_close(p);
        return rc;
    }
    p->health_interval_ms = cfg->health_interval_ms ? cfg->health_interval_ms : OP_PRIMARY_DEFAULT_HEALTH_MS;
    p->kdf_iterations = cfg->kdf_iterations ? cfg->kdf_iterations : OP_PRIMARY_DEFAULT_KDF_ITER;
    p->agent_heartbeat_ms =
        cfg->agent_heartbeat_ms ? cfg->agent_heartbeat_ms : OP_PRIMARY_DEFAULT_AGENT_HEARTBEAT_MS;
    p->agent_connect_timeout_ms = cfg->agent_connection_timeout_ms ? cfg->agent_connection_timeout_ms
                                                                   : OP_PRIMARY_DEFAULT_AGENT_TIMEOUT_MS;
    p->disable_path_apps = cfg->disable_path_apps;
    p->allow_path_app_sharing = cfg->allow_path_app_sharing;
    p->app_token_lifetime_s =
        cfg->app_token_lifetime_s ? cfg->app_token_lifetime_s : OP_WSAPP_TOKEN_LIFETIME_S;
    p->allow_path_app_site_owner = cfg->allow_path_app_site_owner;
    rc = mkdir_p(cfg->data_dir);
    if (rc) {
        snprintf(err, errlen, "cannot create data directory %s: %s", cfg->data_dir, strerror(-rc));
        op_primary_close(p);
        return rc;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/outpost.db", cfg->data_dir);
    rc = op_store_open(p, cfg->postgres_url ? cfg->postgres_url : path, err, errlen);
    if (rc) {
        op_primary_close(p);
        return rc;
    }
    char org[OP_UUID_STR_LEN + 1], mesh[80];
    rc = op_store_begin(p);
    if (!rc) rc = ensure_config(p, "deployment_id", true, p->deployment_id, sizeof(p->deployment_id));
    if (!rc) rc = ensure_config(p, "organization_id", true, org, sizeof(org));
    if (!rc) rc = ensure_config(p, "derp_mesh_key", false, mesh, sizeof(mesh));
    if (rc || (rc = op_store_commit(p)) != 0) {
        op_store_rollback(p);
        snprintf(err, errlen, "cannot initialise the deployment identity in %s", path);
        op_primary_close(p);
        return -EIO;
    }
    op_secure_zero(mesh, sizeof(mesh));
    rc = op_health_init(p);
    if (!rc && op_replicas_start(p) != 0) {
        snprintf(err, errlen, "cannot register this replica: %s", op_db_errmsg(p->db));
        op_primary_close(p);
        return -EIO;
    }
    /* The lease holder makes and rotates the keys; the others read them. */
    if (rc || (p->lease_held && op_keys_rotate(p) != 0)) {
        snprintf(err, errlen, "cannot initialise the health checker or the crypto keys");
        op_primary_close(p);
        return rc ? rc : -EIO;
    }
    p->next_rotate_ms = op_now_ms() + ROTATE_INTERVAL_MS;
    struct op_region_limits lim = {0};
    if (op_region_limits_parse(cfg->agent_stream_limits, &lim, err, errlen) != 0) {
        op_primary_close(p);
        return -EINVAL;
    }
    p->region = op_region_new("primary", &lim);
    if (!p->region) {
        snprintf(err, errlen, "out of memory");
        op_primary_close(p);
        return -ENOMEM;
    }
    region_keys(p);
    p->next_region_keys_ms = op_now_ms() + REGION_KEYS_MS;
    p->app_conf.access_url = p->access_url;
    p->app_conf.wildcard = p->wildcard_host;
    p->app_conf.dashboard_url = p->access_url;
    p->app_conf.disable_path_apps = p->disable_path_apps;
    p->app_conf.https = strncasecmp(p->access_url, "https://", 8) == 0;
    p->app_conf.primary = true;
    op_info("primary", "database %s, deployment %s, access URL %s", cfg->postgres_url ? "PostgreSQL" : path,
            p->deployment_id, p->access_url);
    *out = p;
    return 0;
}

/* Gives the region the workspace_apps_token keys it verifies agent credentials and connect tokens with
 * (the same keys proxies fetch), when they changed. Control thread. */
static void region_keys(struct op_primary *p)
{
    struct op_region_key keys[OP_REGION_MAX_KEYS];
    int n = 0;
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT sequence, secret FROM crypto_keys WHERE feature = "
                            "'workspace_apps_token' AND secret IS NOT NULL ORDER BY sequence DESC");
    while (st && n < OP_REGION_MAX_KEYS && op_db_step(st) == OP_DB_ROW) {
        const char *hex = op_db_col_text(st, 1);
        keys[n].kid = op_db_col_int64(st, 0);
        if (op_hex_decode(hex, strlen(hex), keys[n].secret, sizeof(keys[n].secret)) == 0) n++;
    }
    if (st) op_db_finalize(st);
    uint8_t digest[64];
    op_sha512(keys, (size_t)n * sizeof(keys[0]), digest);
    if (memcmp(digest, p->region_keys_digest, sizeof(digest)) != 0) {
        if (op_region_set_keys(p->region, p->engine, keys, n) == 0)
            memcpy(p->region_keys_digest, digest, sizeof(digest));
    }
    op_secure_zero(keys, sizeof(keys));
    op_secure_zero(digest, sizeof(digest));
}

/* The dashboard's latency probe of the primary region (GET <path_app_url>/latency-check), answered on the
 * worker so that it measures the network and not the control thread's queue; the same headers as a
 * proxy's answer (Timing-Allow-Origin for the Performance API). */
static bool latency_check(const struct op_h1_request *req, struct op_route *out)
{
    static const char path[] = "/latency-check";
    op_span_t t = op_h1_origin_target(req);
    size_t n = sizeof(path) - 1;
    if (t.len < n || memcmp(t.p, path, n) != 0 || (t.len > n && t.p[n] != '?')) return false;
    struct op_h1_writer hw; /* one byte stays free for the NUL */
    op_h1_writer_init(&hw, out->extra, sizeof(out->extra) - 1);
    op_h1_put_header(&hw, "Timing-Allow-Origin", "*");
    op_h1_put_header(&hw, "Access-Control-Allow-Origin", "*");
    op_h1_put_header(&hw, "Access-Control-Allow-Headers", "*");
    op_h1_put_header(&hw, "Cache-Control", "no-store");
    ssize_t hl = op_h1_writer_result(&hw);
    out->extra[hl > 0 ? (size_t)hl : 0] = '\0';
    out->kind = OP_ROUTE_RESPOND;
    out->status = 200;
    out->content_type = "text/plain; charset=utf-8";
    out->body = "OK";
    out->body_len = 2;
    return true;
}

void op_primary_route(void *ctx, struct op_conn *c, const struct op_h1_request *req, struct op_route *out)
{
    struct op_primary *p = ctx;
    if (latency_check(req, out)) return;
    if (op_region_route_tcp_ws(p->region, &p->app_conf, c, req, out)) return; /* WebSocket streams */
    if (op_region_route(p->region, c, req, out)) return; /* agent control, spares, client streams */
    if (op_region_route_pty(p->region, &p->app_conf, c, req, out)) return; /* the web terminal */
    op_region_route_app(p->region, &p->app_conf, c, req, out);             /* false: the handler answers */
}

/* ---- the slow path of workspace apps, in-process ---- */

static int app_issue(void *ctx, const void *body, const char *real_ip, char *tok, size_t toklen,
                     struct op_app_response *resp)
{
    struct op_primary *p = ctx;
    resp->headers_len = 0;
    int rc = op_primary_issue_app_token(p, body, real_ip, resp);
    op_store_rollback(p); /* a transaction never stays open across requests */
    if (rc != 0) return rc;
    cJSON *o = resp->body ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "signed_token_str"));
    rc = s && strlen(s) < toklen ? 0 : -EPROTO;
    if (rc == 0) memcpy(tok, s, strlen(s) + 1);
    cJSON_Delete(o);
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->headers_len = 0;
    return rc;
}

static int app_apikey(void *ctx, int64_t kid, uint8_t key[32])
{
    struct op_primary *p = ctx;
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT secret FROM crypto_keys WHERE feature = "
                            "'workspace_apps_api_key' AND sequence = ? AND secret IS NOT NULL");
    if (!st) return -ENOKEY;
    op_db_bind_int64(st, 1, kid);
    int rc = -ENOKEY;
    if (op_db_step(st) == OP_DB_ROW) {
        const char *hex = op_db_col_text(st, 0);
        if (op_hex_decode(hex, strlen(hex), key, 32) == 0) rc = 0;
    }
    op_db_finalize(st);
    return rc;
}

static void app_refresh(void *ctx)
{
    region_keys(ctx);
}

void op_primary_app_handle(void *ctx, const struct op_app_request *req, struct op_app_response *resp)
{
    struct op_primary *p = ctx;
    struct op_region_app_hooks h = {
        .issue = app_issue, .apikey = app_apikey, .refresh_keys = app_refresh, .ctx = p};
    if (!op_region_app_handle(p->region, &p->app_conf, &h, req, resp)) op_primary_handle(p, req, resp);
}

void op_primary_on_engine(void *ctx, struct op_engine *e)
{
    struct op_primary *p = ctx;
    p->engine = e;
}

void op_primary_tick(void *ctx)
{
    struct op_primary *p = ctx;
    op_replicas_tick(p);
    if (p->db_down) return;
    op_health_tick(p);
    uint64_t now = op_now_ms();
    if (p->lease_held && now >= p->next_rotate_ms) {
        op_keys_rotate(p);
        op_store_gc(p);
        p->next_rotate_ms = now + ROTATE_INTERVAL_MS;
        p->next_region_keys_ms = 0; /* rotation may have changed them */
    }
    if (now >= p->next_region_keys_ms) {
        region_keys(p);
        p->next_region_keys_ms = now + REGION_KEYS_MS;
    }
}

void op_primary_close(struct op_primary *p)
{
    if (!p) return;
    op_health_free(p);
    op_replicas_stop(p);
    op_region_free(p->region); /* after the engine: closes parked spares */
    op_store_close(p);
    free(p->data_dir);
    free(p->access_url);
    free(p->relay_url);
    free(p->wildcard_host);
    free(p);
}
