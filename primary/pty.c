/*
 * primary/pty.c — authorization of the web terminal (docs/apps.md, "The web terminal"):
 *
 *   POST /api/v2/applications/reconnecting-pty-signed-token {"url":"wss://<proxy>/api/v2/workspaceagents/
 *     <agent>/pty?...","agentID":"<agent>"} → 200 {"signed_token":"…"}: a `terminal` app token for that
 *     agent, which the proxy named by the URL's host verifies locally (the query parameter
 *     coder_signed_app_token_23db1dde). The URL must be ws/wss, its path exactly the agent's PTY path and its
 *     host the access host of a registered workspace proxy: never the primary's own host (the primary's
 *     terminal uses the session) nor a wildcard app host.
 *   GET /api/v2/workspaceagents/<agent>/pty on the primary itself: the request comes here from the region
 *     (no token: a session) and goes back with a grant, with which the region relays it to the agent.
 *
 * Who may open a terminal: the workspace's owner and site owners (Coder's "ssh" action on the workspace).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proto/jws.h"
#include "primary/primary_int.h"
#include "util/url.h"
#include "wsapp/token.h"

#define PTY_PREFIX "/api/v2/workspaceagents/"

/* "host:port" of an authority, lower-cased, with the scheme's default port when it names none. false when
 * it does not fit or is empty. */
static bool authority(const char *a, size_t n, bool tls, char *out, size_t outlen)
{
    if (!n || n + 8 >= outlen) return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((a[i] >= 'A' && a[i] <= 'Z') ? a[i] + 32 : a[i]);
    out[n] = '\0';
    while (n && out[n - 1] == '.')
        out[--n] = '\0';
    const char *rb = strrchr(out, ']');
    const char *colon = strrchr(out, ':');
    if (!colon || (rb && colon < rb)) snprintf(out + n, outlen - n, ":%s", tls ? "443" : "80");
    return n > 0 && out[0] != ':';
}

/* The authority of an http(s) access URL, normalised as above. */
static bool url_authority(const char *url, char *out, size_t outlen)
{
    op_span_t h = op_url_http_host(url);
    return h.p && authority(h.p, h.len, strncasecmp(url, "https://", 8) == 0, out, outlen);
}

/* Whether host (normalised) is the access host of a registered, not deleted workspace proxy. */
static int proxy_host(struct op_primary *p, const char *host, bool *found)
{
    *found = false;
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT url FROM workspace_proxies WHERE deleted = 0 AND url != ''");
    if (!st) return -EIO;
    int rc;
    while (!*found && (rc = op_db_step(st)) == OP_DB_ROW) {
        char a[300];
        if (url_authority(op_db_col_text(st, 0), a, sizeof(a)) && strcmp(a, host) == 0) *found = true;
    }
    op_db_finalize(st);
    return 0;
}

/* The workspace of agent_id the user may open a terminal on: 0, -ENOENT, -EIO. */
static int agent_workspace(struct op_primary *p, const struct op_user *u, const char *agent_id, char *ws_id)
{
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT workspace_id FROM workspace_agents WHERE id = lower(?)");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, agent_id);
    int rc = op_db_step(st);
    if (rc == OP_DB_ROW) snprintf(ws_id, OP_UUID_STR_LEN + 1, "%s", op_db_col_text(st, 0));
    op_db_finalize(st);
    if (rc != OP_DB_ROW) return rc == OP_DB_DONE ? -ENOENT : -EIO;
    return op_workspace_access(p, u, ws_id, NULL);
}

static bool is_uuid(const char *s)
{
    if (strlen(s) != OP_UUID_STR_LEN) return false;
    for (int i = 0; i < OP_UUID_STR_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* Checks the URL of the request (§9.3 step 2) and fills base (its path). NULL, or the detail of a 400. */
static const char *check_url(struct op_primary *p, const char *url, const char *agent, char *base,
                             size_t baselen, int *status)
{
    *status = 400;
    bool tls = strncasecmp(url, "wss://", 6) == 0;
    if (!tls && strncasecmp(url, "ws://", 5) != 0) return "The URL scheme must be ws or wss.";
    const char *a = url + (tls ? 6 : 5);
    size_t al = strcspn(a, "/?#");
    if (memchr(a, '@', al)) return "The URL must not carry user information.";
    char host[300];
    if (!authority(a, al, tls, host, sizeof(host))) return "The URL has no valid host.";
    const char *path = a + al;
    size_t pl = strcspn(path, "?#");
    char want[128];
    snprintf(want, sizeof(want), PTY_PREFIX "%s/pty", agent);
    if (pl != strlen(want) || strncasecmp(path, want, pl) != 0)
        return "The URL path must be /api/v2/workspaceagents/<agentID>/pty for the agent of agentID.";
    char own[300];
    if (url_authority(p->access_url, own, sizeof(own)) && strcmp(own, host) == 0)
        return "The URL host is the primary's own: its terminal uses the session, not a signed token.";
    bool found = false;
    if (proxy_host(p, host, &found) != 0) {
        *status = 500;
        return "The workspace proxies could not be read.";
    }
    if (!found) return "The URL host is not the access URL host of a workspace proxy.";
    snprintf(base, baselen, "%.*s", (int)pl, path);
    return NULL;
}

void op_api_pty_token(struct op_primary *p, const struct op_user *u, const struct op_app_request *req,
                      struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool bad = false;
    const char *url = op_json_str(body, "url", &bad);
    const char *agent = op_json_str(body, "agentID", &bad);
    char agent_id[OP_UUID_STR_LEN + 1], base[OP_WSAPP_BASE_MAX + 1], ws_id[OP_UUID_STR_LEN + 1];
    int status = 400;
    const char *why = NULL;
    if (bad || !url || !agent)
        why = "url and agentID are required strings.";
    else if (!is_uuid(agent))
        why = "agentID must be a UUID.";
    if (!why) {
        for (int i = 0; i <= OP_UUID_STR_LEN; i++)
            agent_id[i] = (char)((agent[i] >= 'A' && agent[i] <= 'Z') ? agent[i] + 32 : agent[i]);
        why = check_url(p, url, agent_id, base, sizeof(base), &status);
    }
    if (why) {
        op_api_error(resp, status, status == 400 ? "Invalid URL." : "Internal error.", why);
        cJSON_Delete(body);
        return;
    }
    cJSON_Delete(body);
    int rc = agent_workspace(p, u, agent_id, ws_id);
    if (rc != 0) {
        op_api_lookup_error(resp, rc);
        return;
    }
    struct op_wsapp_token t = {0};
    t.iat = op_wall_ms() / 1000;
    t.exp = t.iat + p->app_token_lifetime_s;
    t.req.access = OP_WSAPP_TERMINAL;
    snprintf(t.req.base_path, sizeof(t.req.base_path), "%s", base);
    snprintf(t.req.agent, sizeof(t.req.agent), "%s", agent_id);
    op_wsapp_req_normalize(&t.req);
    snprintf(t.user_id, sizeof(t.user_id), "%s", u->id);
    snprintf(t.workspace_id, sizeof(t.workspace_id), "%s", ws_id);
    snprintf(t.agent_id, sizeof(t.agent_id), "%s", agent_id);
    snprintf(t.app_url, sizeof(t.app_url), "http://127.0.0.1:%d", OP_WSAPP_PTY_PORT);
    char jws[OP_JWS_MAX_TOKEN];
    if (op_primary_sign_app_token(p, &t, jws, sizeof(jws)) != 0) {
        op_api_error(resp, 500, "Internal error.", "the token could not be signed");
        return;
    }
    op_debug("pty", "terminal token for %s on agent %s", u->username, agent_id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "signed_token", jws);
    op_api_json(resp, 200, o);
    op_secure_zero(jws, sizeof(jws));
}

void op_api_pty_authorize(struct op_primary *p, const struct op_user *u, const char *agent_id,
                          struct op_app_response *resp)
{
    char ws_id[OP_UUID_STR_LEN + 1];
    int rc = is_uuid(agent_id) ? agent_workspace(p, u, agent_id, ws_id) : -ENOENT;
    if (rc != 0) {
        op_api_lookup_error(resp, rc);
        return;
    }
    int n = snprintf(resp->grant, sizeof(resp->grant), "pty %s %s", agent_id, u->id);
    if (n < 0 || (size_t)n >= sizeof(resp->grant)) {
        resp->grant[0] = '\0';
        op_api_error(resp, 500, "Internal error.", "grant too long");
        return;
    }
    resp->status = 200;
    op_debug("pty", "terminal on agent %s for %s (session)", agent_id, u->username);
}
