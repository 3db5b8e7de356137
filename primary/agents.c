/*
 * primary/agents.c — what an agent calls with its token (Coder-Session-Token: "<agent id>:<secret>"):
 * its manifest (identity and the regions to dial), its reports (apps, listening ports, connected
 * regions, lifecycle; each one is contact for the status rules) and short-lived agent credentials that a
 * region verifies locally; plus, for users, connect tokens (a stream to one port of a workspace through
 * one region) and agent token regeneration. Credentials and connect tokens are HS512 JWS signed with the
 * workspace_apps_token key that the proxies already fetch (proto/jws.h, proto/agent_token.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/primary_int.h"
#include "proto/agent_token.h"
#include "util/host.h"

#define AGENT_UNAUTHORIZED "Workspace agent not authorized."
#define MAX_APPS           32
#define MAX_PORTS          256
#define MAX_REGIONS        32

int op_keys_newest(struct op_primary *p, const char *feature, int64_t *seq, uint8_t *key, size_t keylen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct op_db_stmt *st = op_store_prepare(
            p, "SELECT sequence, secret FROM crypto_keys WHERE feature = ?2 AND secret IS NOT"
               " NULL AND starts_at <= ?1 AND (deletes_at IS NULL OR deletes_at > ?1)"
               " ORDER BY sequence DESC LIMIT 1");
        if (!st) return -EIO;
        op_db_bind_int64(st, 1, op_wall_ms());
        op_db_bind_text(st, 2, feature);
        int rc = op_db_step(st);
        int ret = rc == OP_DB_ROW ? 0 : rc == OP_DB_DONE ? -ENOENT : -EIO;
        if (ret == 0) {
            *seq = op_db_col_int64(st, 0);
            const char *hex = op_db_col_text(st, 1);
            if (op_hex_decode(hex, strlen(hex), key, keylen) != 0) ret = -EIO;
        }
        op_db_finalize(st);
        if (ret != -ENOENT || attempt == 1) return ret;
        if (op_keys_rotate(p) != 0) return -EIO;
    }
    return -ENOENT;
}

int op_keys_signing(struct op_primary *p, int64_t *seq, uint8_t key[64])
{
    return op_keys_newest(p, "workspace_apps_token", seq, key, 64);
}

int op_keys_verify_jws(struct op_primary *p, const char *tok, size_t len, struct op_jws *out)
{
    int rc = op_jws_parse(tok, len, out);
    if (rc) return rc;
    /* A key verifies while its secret is kept and its deletion time has not come (it may not have
     * started yet: clocks differ). */
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT secret FROM crypto_keys WHERE feature = 'workspace_apps_token'"
                            " AND sequence = ? AND secret IS NOT NULL"
                            " AND (deletes_at IS NULL OR deletes_at > ?)");
    if (!st) return -EIO;
    op_db_bind_int64(st, 1, out->kid);
    op_db_bind_int64(st, 2, op_wall_ms());
    uint8_t key[64];
    rc = -ENOKEY;
    if (op_db_step(st) == OP_DB_ROW) {
        const char *hex = op_db_col_text(st, 0);
        if (op_hex_decode(hex, strlen(hex), key, sizeof(key)) == 0)
            rc = op_jws_mac_ok(out, tok, key, sizeof(key)) ? 0 : -EPERM;
        op_secure_zero(key, sizeof(key));
    }
    op_db_finalize(st);
    return rc;
}

bool op_auth_agent(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp,
                   struct op_agent_auth *a)
{
    const struct op_app_header *h = op_app_find_header(req, "Coder-Session-Token");
    if (!h || h->value.len == 0) {
        op_api_error(resp, 401, AGENT_UNAUTHORIZED,
                     "The agent token is missing (Coder-Session-Token header).");
        return false;
    }
    const char *v = h->value.p;
    size_t n = h->value.len;
    if (n != OP_AGENT_TOKEN_LEN || v[OP_UUID_STR_LEN] != ':' || !op_uuid_valid(v, OP_UUID_STR_LEN)) {
        op_api_error(resp, 401, AGENT_UNAUTHORIZED, "Invalid agent token format.");
        return false;
    }
    char id[OP_UUID_STR_LEN + 1];
    for (int i = 0; i < OP_UUID_STR_LEN; i++)
        id[i] = (char)tolower((unsigned char)v[i]);
    id[OP_UUID_STR_LEN] = '\0';
    uint8_t hash[OP_SHA256_LEN];
    op_sha256(v + OP_UUID_STR_LEN + 1, OP_AGENT_TOKEN_SECRET_LEN, hash);
    struct op_db_stmt *st = op_store_prepare(
        p, "SELECT a.token_hashed_secret, a.name, w.id, w.name, u.id, u.username FROM workspace_agents a"
           " JOIN workspaces w ON w.id = a.workspace_id JOIN users u ON u.id = w.owner_id WHERE a.id = ?");
    if (!st) {
        op_api_error(resp, 500, "Internal error checking the agent token.", NULL);
        return false;
    }
    op_db_bind_text(st, 1, id);
    bool ok = false;
    if (op_db_step(st) != OP_DB_ROW) {
        op_api_error(resp, 401, AGENT_UNAUTHORIZED, "The agent does not exist (its workspace was deleted?).");
    } else {
        size_t hash_len = 0;
        const void *stored = op_db_col_blob(st, 0, &hash_len);
        if (!stored || hash_len != OP_SHA256_LEN || !op_ct_equal(stored, hash, OP_SHA256_LEN)) {
            op_api_error(resp, 401, AGENT_UNAUTHORIZED, "The agent token is invalid or was regenerated.");
        } else {
            snprintf(a->id, sizeof(a->id), "%s", id);
            snprintf(a->name, sizeof(a->name), "%s", op_db_col_text(st, 1));
            snprintf(a->workspace_id, sizeof(a->workspace_id), "%s", op_db_col_text(st, 2));
            snprintf(a->workspace_name, sizeof(a->workspace_name), "%s", op_db_col_text(st, 3));
            snprintf(a->owner_id, sizeof(a->owner_id), "%s", op_db_col_text(st, 4));
            snprintf(a->owner_name, sizeof(a->owner_name), "%s", op_db_col_text(st, 5));
            ok = true;
        }
    }
    op_db_finalize(st);
    return ok;
}

static cJSON *region(const char *id, const char *name, const char *dn, const char *icon, const char *url)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "id", id);
    cJSON_AddStringToObject(r, "name", name);
    cJSON_AddStringToObject(r, "display_name", dn);
    cJSON_AddStringToObject(r, "icon_url", icon);
    cJSON_AddStringToObject(r, "access_url", url);
    cJSON_AddBoolToObject(r, "healthy", true);
    return r;
}

void op_api_agent_manifest(struct op_primary *p, const struct op_agent_auth *a, struct op_app_response *resp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "agent_id", a->id);
    cJSON_AddStringToObject(o, "agent_name", a->name);
    cJSON_AddStringToObject(o, "workspace_id", a->workspace_id);
    cJSON_AddStringToObject(o, "workspace_name", a->workspace_name);
    cJSON_AddStringToObject(o, "owner_id", a->owner_id);
    cJSON_AddStringToObject(o, "owner_name", a->owner_name);
    cJSON_AddNumberToObject(o, "report_interval_ms", (double)p->agent_heartbeat_ms);
    cJSON *regions = cJSON_AddArrayToObject(o, "regions");
    char dn[128], icon[256];
    if (op_store_get_config(p, "primary_display_name", dn, sizeof(dn)) != 0)
        snprintf(dn, sizeof(dn), "Default");
    if (op_store_get_config(p, "primary_icon", icon, sizeof(icon)) != 0)
        snprintf(icon, sizeof(icon), "/emojis/1f3e1.png");
    cJSON *prim = region(p->deployment_id, "primary", dn, icon, p->access_url);
    op_replicas_manifest(p, prim);
    cJSON_AddItemToArray(regions, prim);
    /* Every proxy that can carry streams now: registered, healthy, not deleted, not DERP-only. */
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT id, name, display_name, icon, url FROM workspace_proxies"
                            " WHERE deleted = 0 AND derp_only = 0 AND url != ''"
                            " ORDER BY region_id");
    if (!st) {
        cJSON_Delete(o);
        op_api_error(resp, 500, "Internal error fetching the manifest.", NULL);
        return;
    }
    while (op_db_step(st) == OP_DB_ROW) {
        if (op_health_get(p, op_db_col_text(st, 0)) != OP_HEALTH_OK) continue;
        cJSON *rg = region(op_db_col_text(st, 0), op_db_col_text(st, 1), op_db_col_text(st, 2),
                           op_db_col_text(st, 3), op_db_col_text(st, 4));
        /* The live replicas, each reachable on its own: an agent needs a control connection on every one
         * (docs/agent-protocol.md §2). */
        struct op_replica_ref reps[OP_REPLICAS_MAX];
        int nr = op_proxy_live_replicas(p, op_db_col_text(st, 0), op_db_col_text(st, 4), reps,
                                        OP_REPLICAS_MAX, NULL);
        cJSON *ra = cJSON_AddArrayToObject(rg, "replicas");
        for (int i = 0; i < nr; i++) {
            cJSON *one = cJSON_CreateObject();
            cJSON_AddStringToObject(one, "id", reps[i].id);
            cJSON_AddStringToObject(one, "relay_url", reps[i].url);
            cJSON_AddItemToArray(ra, one);
        }
        cJSON_AddItemToArray(regions, rg);
    }
    op_db_finalize(st);
    op_api_json(resp, 200, o);
}

static bool short_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20) return false;
    return true;
}

/* Validates the reported apps and re-serialises them with every field present. NULL + detail on error. */
static char *normalize_apps(const cJSON *apps, char *detail, size_t dlen)
{
    if (!cJSON_IsArray(apps) || cJSON_GetArraySize(apps) > MAX_APPS) {
        snprintf(detail, dlen, "apps must be a list of at most %d apps", MAX_APPS);
        return NULL;
    }
    cJSON *out = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, apps)
    {
        bool bad = false;
        const char *slug = op_json_str(it, "slug", &bad), *url = op_json_str(it, "url", &bad);
        const char *dn = op_json_str(it, "display_name", &bad), *icon = op_json_str(it, "icon", &bad);
        const char *share = op_json_str(it, "sharing_level", &bad);
        const cJSON *sub = cJSON_GetObjectItemCaseSensitive(it, "subdomain");
        const char *why = NULL;
        if (!cJSON_IsObject(it) || bad)
            why = "each app is an object of strings (and a boolean subdomain)";
        else if (!slug || !op_app_slug_valid(slug))
            why = "slug must be 1-32 lower-case letters, digits and single inner hyphens";
        else if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
                 !short_text(url, 512))
            why = "url must be an http:// or https:// URL";
        else if ((dn && !short_text(dn, 64)) || (icon && !short_text(icon, 256)))
            why = "display_name (64) or icon (256) is too long";
        else if (share && strcmp(share, "owner") != 0 && strcmp(share, "authenticated") != 0 &&
                 strcmp(share, "organization") != 0 && strcmp(share, "public") != 0)
            why = "sharing_level must be owner, authenticated, organization or public";
        else if (sub && !cJSON_IsBool(sub))
            why = "subdomain must be a boolean";
        const cJSON *prev;
        cJSON_ArrayForEach(prev, out)
        {
            if (!why && strcmp(cJSON_GetObjectItemCaseSensitive(prev, "slug")->valuestring, slug) == 0)
                why = "slugs must be unique";
        }
        if (why) {
            snprintf(detail, dlen, "%s", why);
            cJSON_Delete(out);
            return NULL;
        }
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "slug", slug);
        cJSON_AddStringToObject(a, "display_name", dn && *dn ? dn : slug);
        cJSON_AddStringToObject(a, "url", url);
        cJSON_AddStringToObject(a, "icon", icon ? icon : "");
        cJSON_AddStringToObject(a, "sharing_level", share ? share : "owner");
        cJSON_AddBoolToObject(a, "subdomain", cJSON_IsTrue(sub));
        cJSON_AddItemToArray(out, a);
    }
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    return text;
}

static char *normalize_ports(const cJSON *ports, char *detail, size_t dlen)
{
    if (!cJSON_IsArray(ports) || cJSON_GetArraySize(ports) > MAX_PORTS) {
        snprintf(detail, dlen, "listening_ports must be a list of at most %d ports", MAX_PORTS);
        return NULL;
    }
    cJSON *out = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, ports)
    {
        const cJSON *port = cJSON_GetObjectItemCaseSensitive(it, "port");
        bool bad = false;
        const char *net = op_json_str(it, "network", &bad), *proc = op_json_str(it, "process_name", &bad);
        if (!cJSON_IsNumber(port) || port->valuedouble < 1 || port->valuedouble > 65535 ||
            port->valuedouble != (double)(int)port->valuedouble || bad || (net && strcmp(net, "tcp") != 0) ||
            (proc && !short_text(proc, 64))) {
            snprintf(detail, dlen,
                     "each port is {\"port\":1-65535,\"network\":\"tcp\",\"process_name\":\"...\"}");
            cJSON_Delete(out);
            return NULL;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "process_name", proc ? proc : "");
        cJSON_AddStringToObject(o, "network", "tcp");
        cJSON_AddNumberToObject(o, "port", port->valuedouble);
        cJSON_AddItemToArray(out, o);
    }
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    return text;
}

static char *normalize_regions(const cJSON *regions, char *detail, size_t dlen)
{
    bool ok = cJSON_IsArray(regions) && cJSON_GetArraySize(regions) <= MAX_REGIONS;
    const cJSON *it;
    cJSON_ArrayForEach(it, regions) ok = ok && cJSON_IsString(it) && op_name_valid(it->valuestring);
    if (!ok) {
        snprintf(detail, dlen, "regions must be a list of at most %d region names", MAX_REGIONS);
        return NULL;
    }
    return cJSON_PrintUnformatted(regions);
}

/* An agent's SSH host key as it reports it: "ssh-ed25519 " and base64 (an ed25519 key is 68 characters). */
static bool ssh_key_ok(const char *k)
{
    if (strncmp(k, "ssh-ed25519 ", 12) != 0 || strlen(k) > 12 + 200 || !k[12]) return false;
    for (const char *p = k + 12; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' ||
              *p == '/' || *p == '='))
            return false;
    return true;
}

static const char *const lifecycle_states[] = {
    "created",       "starting",         "start_timeout",  "start_error", "ready",
    "shutting_down", "shutdown_timeout", "shutdown_error", "off",
};

void op_api_agent_report(struct op_primary *p, const struct op_agent_auth *a,
                         const struct op_app_request *req, struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    char detail[160] = "", *apps = NULL, *ports = NULL, *regions = NULL;
    const char *field = NULL;
    bool bad = false;
    const char *life = op_json_str(body, "lifecycle_state", &bad);
    const char *strs[3] = {op_json_str(body, "version", &bad), op_json_str(body, "operating_system", &bad),
                           op_json_str(body, "architecture", &bad)};
    const char *host_key = op_json_str(body, "ssh_host_key", &bad);
    const cJSON *j;
    if (bad) {
        field = "body";
        snprintf(detail, sizeof(detail), "a field has the wrong type");
    }
    if (!field && (j = cJSON_GetObjectItemCaseSensitive(body, "apps")) &&
        !(apps = normalize_apps(j, detail, sizeof(detail))))
        field = "apps";
    if (!field && (j = cJSON_GetObjectItemCaseSensitive(body, "listening_ports")) &&
        !(ports = normalize_ports(j, detail, sizeof(detail))))
        field = "listening_ports";
    if (!field && (j = cJSON_GetObjectItemCaseSensitive(body, "regions")) &&
        !(regions = normalize_regions(j, detail, sizeof(detail))))
        field = "regions";
    bool stopping = false, known = !life;
    for (size_t i = 0; life && i < OP_ARRAY_LEN(lifecycle_states); i++)
        if (strcmp(life, lifecycle_states[i]) == 0) known = true;
    if (!field && !known) {
        field = "lifecycle_state";
        snprintf(detail, sizeof(detail), "unknown lifecycle state \"%.32s\"", life);
    }
    for (int i = 0; !field && i < 3; i++) {
        if (strs[i] && !short_text(strs[i], 64)) {
            field = i == 0 ? "version" : i == 1 ? "operating_system" : "architecture";
            snprintf(detail, sizeof(detail), "at most 64 characters");
        }
    }
    if (!field && host_key && !ssh_key_ok(host_key)) {
        field = "ssh_host_key";
        snprintf(detail, sizeof(detail), "expected \"ssh-ed25519 <base64>\"");
    }
    if (field) {
        op_api_validation(resp, 400, "Invalid agent report.", field, detail);
        goto out;
    }
    stopping = life && (strncmp(life, "shut", 4) == 0 || strcmp(life, "off") == 0);
    int64_t now = op_wall_ms();
    /* Absent fields keep their stored value; a stopping agent is disconnected at once. */
    struct op_db_stmt *st = NULL;
    int rc = op_store_begin(p);
    if (!rc)
        st = op_store_prepare(
            p, "UPDATE workspace_agents SET first_connected_at = COALESCE(first_connected_at, ?1),"
               " last_connected_at = ?1, updated_at = ?1,"
               " disconnected_at = CASE WHEN ?2 THEN ?1 ELSE disconnected_at END,"
               " apps = COALESCE(?3, apps), listening_ports = COALESCE(?4, listening_ports),"
               " regions = COALESCE(?5, regions), lifecycle_state = COALESCE(?6, lifecycle_state),"
               " version = COALESCE(?7, version), operating_system = COALESCE(?8, operating_system),"
               " architecture = COALESCE(?9, architecture), ssh_host_key = COALESCE(?11, ssh_host_key)"
               " WHERE id = ?10");
    rc = -EIO;
    if (st) {
        op_db_bind_int64(st, 1, now);
        op_db_bind_int64(st, 2, stopping);
        const char *vals[] = {apps, ports, regions, life, strs[0], strs[1], strs[2]};
        for (int i = 0; i < 7; i++)
            if (vals[i]) op_db_bind_text(st, 3 + i, vals[i]);
        op_db_bind_text(st, 10, a->id);
        if (host_key) op_db_bind_text(st, 11, host_key);
        rc = op_db_step(st) == OP_DB_DONE && op_db_changes(st) == 1 ? 0 : -EIO;
        op_db_finalize(st);
    }
    if (!op_api_commit(p, rc, resp, "Internal error storing the agent report.", false)) goto out;
    if (stopping)
        op_info("agents", "agent %s of %s/%s is stopping (%s)", a->name, a->owner_name, a->workspace_name,
                life);
    resp->status = 204;
    resp->content_type = NULL;
out:
    cJSON_free(apps);
    cJSON_free(ports);
    cJSON_free(regions);
    cJSON_Delete(body);
}

/* Signs payload with the current workspace_apps_token key; 0 or -errno. */
static int sign(struct op_primary *p, const char *payload, int plen, char *out, size_t outlen)
{
    int64_t seq;
    uint8_t key[64];
    int rc = op_keys_signing(p, &seq, key);
    if (rc) return rc;
    rc = plen > 0 ? op_jws_sign(payload, (size_t)plen, seq, key, sizeof(key), out, outlen) : -EINVAL;
    op_secure_zero(key, sizeof(key));
    return rc < 0 ? rc : 0;
}

void op_api_agent_credential(struct op_primary *p, const struct op_agent_auth *a,
                             struct op_app_response *resp)
{
    struct op_agent_cred c = {0};
    snprintf(c.agent_id, sizeof(c.agent_id), "%s", a->id);
    snprintf(c.workspace_id, sizeof(c.workspace_id), "%s", a->workspace_id);
    snprintf(c.owner_id, sizeof(c.owner_id), "%s", a->owner_id);
    c.iat = op_wall_ms() / 1000;
    /* After a revocation in this very second (the token was just regenerated and the new agent is quick),
     * the credential dates from the next second, the first one the regions accept for this agent. */
    int64_t revoked = p->region ? op_region_revoked_until(p->region, c.agent_id) : 0;
    if (revoked >= c.iat) c.iat = revoked + 1;
    c.exp = c.iat + OP_AGENT_CRED_LIFETIME_S;
    char payload[512], tok[OP_JWS_MAX_TOKEN];
    if (sign(p, payload, op_agent_cred_payload(&c, payload, sizeof(payload)), tok, sizeof(tok)) != 0) {
        op_api_error(resp, 500, "Internal error signing the agent credential.", NULL);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "credential", tok);
    char t[32];
    op_format_time(c.exp * 1000, t);
    cJSON_AddStringToObject(o, "expires_at", t);
    op_api_json(resp, 200, o);
}

void op_api_agent_connect_token(struct op_primary *p, const struct op_user *u, const char *agent_id,
                                const struct op_app_request *req, struct op_app_response *resp)
{
    struct op_connect_claims c = {0};
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT a.id, a.workspace_id FROM workspace_agents a WHERE a.id = lower(?)");
    int rc = -EIO;
    if (st) {
        op_db_bind_text(st, 1, agent_id);
        int s = op_db_step(st);
        rc = s == OP_DB_ROW ? 0 : s == OP_DB_DONE ? -ENOENT : -EIO;
        if (rc == 0) {
            snprintf(c.agent_id, sizeof(c.agent_id), "%s", op_db_col_text(st, 0));
            snprintf(c.workspace_id, sizeof(c.workspace_id), "%s", op_db_col_text(st, 1));
        }
        op_db_finalize(st);
    }
    if (rc == 0) rc = op_workspace_access(p, u, c.workspace_id, NULL);
    if (rc) {
        op_api_lookup_error(resp, rc);
        return;
    }
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(body, "port");
    bool bad = false;
    const char *reg = op_json_str(body, "region", &bad);
    if (!cJSON_IsNumber(port) || port->valuedouble < 1 || port->valuedouble > 65535 ||
        port->valuedouble != (double)(int)port->valuedouble) {
        op_api_validation(resp, 400, "Validation failed.", "port", "port must be an integer from 1 to 65535");
        goto out;
    }
    if (bad || !reg || !*reg) {
        op_api_validation(resp, 400, "Validation failed.", "region",
                          "region is required (\"primary\" or a proxy name)");
        goto out;
    }
    /* The region must be one that can carry streams: the primary or a live, non-DERP-only proxy. */
    if (strcasecmp(reg, "primary") == 0) {
        snprintf(c.region, sizeof(c.region), "primary");
    } else {
        st = op_store_prepare(
            p, "SELECT name FROM workspace_proxies WHERE lower(name) = lower(?) AND deleted = 0"
               " AND derp_only = 0");
        if (st) {
            op_db_bind_text(st, 1, reg);
            if (op_db_step(st) == OP_DB_ROW)
                snprintf(c.region, sizeof(c.region), "%s", op_db_col_text(st, 0));
            op_db_finalize(st);
        }
        if (!*c.region) {
            char msg[120];
            snprintf(msg, sizeof(msg), "Region \"%.64s\" does not exist.", reg);
            op_api_validation(resp, 400, msg, "region", "use \"primary\" or the name of a workspace proxy");
            goto out;
        }
    }
    snprintf(c.user_id, sizeof(c.user_id), "%s", u->id);
    c.port = (uint16_t)port->valuedouble;
    c.exp = op_wall_ms() / 1000 + OP_CONNECT_TOKEN_LIFETIME_S;
    char payload[512], tok[OP_JWS_MAX_TOKEN];
    if (sign(p, payload, op_connect_payload(&c, payload, sizeof(payload)), tok, sizeof(tok)) != 0) {
        op_api_error(resp, 500, "Internal error signing the connect token.", NULL);
        goto out;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "signed_token", tok);
    cJSON_AddStringToObject(o, "region", c.region);
    char t[32];
    op_format_time(c.exp * 1000, t);
    cJSON_AddStringToObject(o, "expires_at", t);
    op_api_json(resp, 200, o);
out:
    cJSON_Delete(body);
}

void op_api_agent_regen_token(struct op_primary *p, const struct op_user *u, const char *ws_id,
                              const char *agent_name, struct op_app_response *resp)
{
    int rc = op_workspace_access(p, u, ws_id, NULL);
    char aid[OP_UUID_STR_LEN + 1] = "";
    struct op_db_stmt *st =
        rc ? NULL
           : op_store_prepare(p, "SELECT id FROM workspace_agents WHERE workspace_id = lower(?) AND"
                                 " lower(name) = lower(?)");
    if (st) {
        op_db_bind_text(st, 1, ws_id);
        op_db_bind_text(st, 2, agent_name);
        int s = op_db_step(st);
        rc = s == OP_DB_ROW ? 0 : s == OP_DB_DONE ? -ENOENT : -EIO;
        if (rc == 0) snprintf(aid, sizeof(aid), "%s", op_db_col_text(st, 0));
        op_db_finalize(st);
    } else if (!rc) {
        rc = -EIO;
    }
    if (rc) {
        op_api_lookup_error(resp, rc);
        return;
    }
    char token[OP_AGENT_TOKEN_LEN + 1];
    uint8_t hash[OP_SHA256_LEN];
    rc = op_agent_new_token(aid, token, hash) || op_store_begin(p) ? -EIO : 0;
    st = rc ? NULL
            : op_store_prepare(
                  p, "UPDATE workspace_agents SET token_hashed_secret = ?, updated_at = ? WHERE id = ?");
    rc = -EIO;
    if (st) {
        op_db_bind_blob(st, 1, hash, sizeof(hash));
        op_db_bind_int64(st, 2, op_wall_ms());
        op_db_bind_text(st, 3, aid);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    }
    if (rc || op_store_commit(p)) {
        op_store_rollback(p);
        op_secure_zero(token, sizeof(token));
        op_api_error(resp, 500, "Internal error regenerating the agent token.", NULL);
        return;
    }
    op_info("agents", "%s regenerated the token of agent %s (%s)", u->username, agent_name, aid);
    /* The old token is refused from now on; its credentials too, and its control connection is closed. */
    if (p->region) op_region_revoke_agent(p->region, p->engine, aid);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "agent_id", aid);
    cJSON_AddStringToObject(o, "agent_token", token);
    char cmd[OP_AGENT_TOKEN_LEN + 1200];
    snprintf(cmd, sizeof(cmd), "CODER_AGENT_URL=%s CODER_AGENT_TOKEN=%s outpost agent", p->access_url, token);
    cJSON_AddStringToObject(o, "command", cmd);
    op_secure_zero(token, sizeof(token));
    op_api_json(resp, 200, o);
    op_secure_zero(cmd, sizeof(cmd));
}
