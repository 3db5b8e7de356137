/*
 * region/pty.c — the web terminal's endpoint in every region (docs/apps.md, "The web terminal"):
 *
 *   GET /api/v2/workspaceagents/{agent}/pty?reconnect=<uuid>&width=N&height=N[&command=...]   (WebSocket)
 *
 * The region only authorizes and relays: the agent's PTY server (its reserved port 2) terminates the
 * WebSocket. On a proxy the query parameter coder_signed_app_token_23db1dde must be a `terminal` app token
 * of the primary for this agent and this path, verified with the region's workspace_apps_token keys; on the
 * primary the session is checked on the control thread (OP_ROUTE_APP) and the request comes back granted
 * (op_route.granted). A missing or refused token is a 404: a WebSocket cannot follow a redirect to sign in.
 * An Origin, when sent, must be the dashboard's or this region's. The request then goes through a parked
 * agent stream (`OPEN 127.0.0.1:2`) with its path cut to `/pty?...`, without the token parameter and the
 * Coder credentials (session cookies and header); the agent's 101 opens the engine's tunnel.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "region/apps_int.h"
#include "util/url.h"
#include "wsapp/token.h"

#define PTY_PREFIX      "/api/v2/workspaceagents/"
#define PTY_TOKEN_PARAM "coder_signed_app_token_23db1dde"

static const char *const drop_query[] = {PTY_TOKEN_PARAM, NULL};
static const char *const drop_headers[] = {"Coder-Session-Token", NULL};
static _Thread_local struct op_wsapp_token tl_ptok;

/* origin is the origin ("scheme://host[:port]") of url, case-insensitively. */
static bool origin_is(op_span_t origin, const char *url)
{
    size_t ol = url ? op_url_origin_len(url) : 0;
    while (origin.len && origin.p[origin.len - 1] == '/')
        origin.len--;
    return ol && origin.len == ol && strncasecmp(origin.p, url, ol) == 0;
}

/* The token of the request names this terminal: NULL, or the reason it does not (logged); *nokey when the
 * region does not know its key. */
static const char *check_token(struct op_region *r, op_span_t tok, op_span_t path, const char *agent,
                               bool *nokey)
{
    const struct keyset *ks = atomic_load_explicit(&r->keys, memory_order_acquire);
    int rc = op_wsapp_token_verify(tok.p, tok.len, ks->wk, ks->n, (int64_t)time(NULL), &tl_ptok);
    *nokey = rc == -ENOKEY;
    if (rc != 0) return rc == -ENOKEY ? "signed with a key this region does not know" : "does not verify";
    struct op_wsapp_req want = {.access = OP_WSAPP_TERMINAL};
    snprintf(want.base_path, sizeof(want.base_path), "%.*s", (int)path.len, path.p);
    snprintf(want.agent, sizeof(want.agent), "%s", agent);
    op_wsapp_req_normalize(&want);
    if (tl_ptok.req.access != OP_WSAPP_TERMINAL) return "not a terminal token";
    if (strcmp(tl_ptok.agent_id, agent) != 0 || !op_wsapp_req_equal(&tl_ptok.req, &want))
        return "for another agent";
    return NULL;
}

bool op_region_route_pty(struct op_region *r, const struct op_region_app_conf *conf, struct op_conn *c,
                         const struct op_h1_request *req, struct op_route *out)
{
    op_span_t path, query;
    op_region_split_target(req, &path, &query);
    size_t pl = strlen(PTY_PREFIX);
    if (path.len != pl + OP_ID_LEN + 4 || memcmp(path.p, PTY_PREFIX, pl) != 0 ||
        memcmp(path.p + pl + OP_ID_LEN, "/pty", 4) != 0)
        return false;
    if (op_region_on_app_host(conf, req->host)) return false; /* an app's own host: the path is the app's */
    const char *granted = out->granted;
    op_span_t aid = op_span(path.p + pl, OP_ID_LEN);
    if (!op_region_is_uuid(aid.p, aid.len)) {
        op_region_respond(out, 400, "The agent id must be a lower-case UUID.");
        return true;
    }
    char agent[OP_ID_LEN + 1];
    memcpy(agent, aid.p, OP_ID_LEN);
    agent[OP_ID_LEN] = '\0';
    if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0) {
        op_region_respond(out, 405, "Method not allowed: the terminal is a WebSocket (GET with an Upgrade).");
        return true;
    }
    if (req->absolute_form) {
        op_region_respond(out, 400, "The terminal takes an origin-form request target.");
        return true;
    }
    if (!req->upgrade || req->upgrade_proto.len != 9 ||
        strncasecmp(req->upgrade_proto.p, "websocket", 9) != 0) {
        op_region_respond(out, 426, "The terminal needs a WebSocket upgrade.");
        snprintf(out->extra, sizeof(out->extra), "Upgrade: websocket\r\n");
        return true;
    }
    const struct op_h1_header *oh = op_h1_find_header(req->headers, req->nheaders, "Origin");
    if (oh && !origin_is(oh->value, conf->dashboard_url) && !origin_is(oh->value, conf->access_url)) {
        op_debug("pty", "w%d#%u terminal of agent %s refused: Origin %.*s",
                 op_worker_index(op_conn_worker(c)), op_conn_id(c), agent, (int)OP_MIN(oh->value.len, 200),
                 oh->value.p);
        op_region_respond(out, 403, "The Origin of this request is neither the dashboard nor this region.");
        return true;
    }
    const char *user = "";
    if (conf->primary) {
        /* The session is checked on the control thread; the request comes back with the grant. */
        if (!granted) {
            out->kind = OP_ROUTE_APP;
            return true;
        }
        size_t gl = strlen(granted);
        if (gl != 4 + OP_ID_LEN + 1 + OP_ID_LEN || memcmp(granted, "pty ", 4) != 0 ||
            memcmp(granted + 4, agent, OP_ID_LEN) != 0) {
            op_region_respond(out, 500, "The terminal grant names another agent.");
            return true;
        }
        user = granted + 4 + OP_ID_LEN + 1;
    } else {
        op_span_t tok;
        const char *why = "missing";
        bool nokey = false;
        if (op_region_app_query(query, PTY_TOKEN_PARAM, &tok) && tok.len)
            why = check_token(r, tok, path, agent, &nokey);
        if (why && nokey && !granted && r->want_keys) {
            /* A key rotated in since the last fetch: the role's app handler holds the request until its
             * keys were fetched again (op_region_pty_rekey), then it is routed once more (granted). */
            out->kind = OP_ROUTE_APP;
            return true;
        }
        if (why) {
            op_debug("pty", "w%d#%u terminal of agent %s refused: token %s",
                     op_worker_index(op_conn_worker(c)), op_conn_id(c), agent, why);
            op_region_respond(out, 404, "Resource not found or you do not have access to this resource");
            return true;
        }
        user = tl_ptok.user_id;
    }
    struct op_conn_ref ctl;
    if (!op_broker_ctl_pick(r->broker, agent, &ctl)) {
        op_region_respond(out, 404, "The agent is not connected to this region.");
        return true;
    }
    op_region_dial_route(r, agent, out);
    uint64_t h = op_region_fnv(op_region_fnv(op_region_fnv(OP_REGION_FNV_BASIS, "pty"), agent), user);
    out->up_key = h ? h : 1;
    out->preamble_len =
        (size_t)snprintf(out->preamble, sizeof(out->preamble), "OPEN 127.0.0.1:%d\n", OP_WSAPP_PTY_PORT);
    out->preamble_ok = true;
    out->strip_prefix = pl + OP_ID_LEN; /* "/pty?..." is left */
    out->drop_query = drop_query;
    out->drop_headers = drop_headers;
    out->drop_cookies = op_region_coder_cookies;
    op_debug("pty", "w%d#%u terminal of agent %s for user %s", op_worker_index(op_conn_worker(c)),
             op_conn_id(c), agent, *user ? user : "?");
    return true;
}

/* The refetch a terminal request waited for ended: route it once more (its token is checked again, with
 * whatever keys the region has now; a failure is the usual 404). */
static void pty_rekeyed(void *arg)
{
    struct op_app_defer *d = arg;
    snprintf(op_app_defer_resp(d)->grant, sizeof(op_app_defer_resp(d)->grant), "rekeyed");
    op_app_finish(d);
}

bool op_region_pty_rekey(struct op_region *r, const struct op_region_app_conf *conf,
                         const struct op_region_app_hooks *h, const struct op_app_request *req,
                         struct op_app_response *resp)
{
    (void)r;
    size_t pl = strlen(PTY_PREFIX);
    op_span_t tok;
    if (!h->refetch_keys || req->path.len != pl + OP_ID_LEN + 4 || memcmp(req->path.p, PTY_PREFIX, pl) != 0 ||
        memcmp(req->path.p + pl + OP_ID_LEN, "/pty", 4) != 0 ||
        !op_region_app_query(req->query, PTY_TOKEN_PARAM, &tok) || !tok.len)
        return false;
    if (op_region_on_app_host(conf, req->host)) return false; /* as op_region_route_pty decides */
    struct op_app_defer *d = op_app_defer(resp);
    h->refetch_keys(h->ctx, pty_rekeyed, d);
    return true;
}
