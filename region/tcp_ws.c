/*
 * region/tcp_ws.c — the tcp endpoint's WebSocket variant in every region (docs/agent-protocol.md §5):
 *
 *   GET /api/v2/workspaceagents/{agent}/tcp?port=N&coder_connect_token=<jws>   (Upgrade: websocket)
 *
 * For browsers, which can neither send Upgrade: outpost-tcp/1 nor set headers on a WebSocket: the same
 * connect token rules as the raw variant (region.c, op_region_check_connect: the Coder-Connect-Token
 * header or the coder_connect_token query parameter), and the terminal's Origin rule (an Origin, when
 * sent, must be the dashboard's or this region's access URL's, else 403). The region stays a pure
 * tunnel: the request goes through a parked agent stream (`OPEN ws:127.0.0.1:N`) with its path cut to
 * `/tcp?port=N`, without the token parameter and the Coder credentials; the agent (agent/tcp_ws.c)
 * terminates the WebSocket, dials the port and answers 101 or a JSON 502; its 101 opens the engine's
 * tunnel. Nothing reaches the agent before the checks pass.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "region/apps_int.h"
#include "util/url.h"

#define TCPWS_PREFIX "/api/v2/workspaceagents/"

static const char *const drop_query[] = {"coder_connect_token", NULL};
static const char *const drop_headers[] = {"Coder-Connect-Token", "Coder-Session-Token", NULL};

/* origin is the origin ("scheme://host[:port]") of url, case-insensitively. */
static bool origin_is(op_span_t origin, const char *url)
{
    size_t ol = url ? op_url_origin_len(url) : 0;
    while (origin.len && origin.p[origin.len - 1] == '/')
        origin.len--;
    return ol && origin.len == ol && strncasecmp(origin.p, url, ol) == 0;
}

bool op_region_route_tcp_ws(struct op_region *r, const struct op_region_app_conf *conf, struct op_conn *c,
                            const struct op_h1_request *req, struct op_route *out)
{
    if (!req->upgrade || req->upgrade_proto.len != 9 ||
        strncasecmp(req->upgrade_proto.p, "websocket", 9) != 0)
        return false; /* the raw variant (or no upgrade): op_region_route */
    op_span_t path, query;
    op_region_split_target(req, &path, &query);
    size_t pl = strlen(TCPWS_PREFIX);
    if (path.len != pl + OP_ID_LEN + 4 || memcmp(path.p, TCPWS_PREFIX, pl) != 0 ||
        memcmp(path.p + pl + OP_ID_LEN, "/tcp", 4) != 0)
        return false;
    if (op_region_on_app_host(conf, req->host)) return false; /* an app's own host: the path is the app's */
    op_span_t aid = op_span(path.p + pl, OP_ID_LEN);
    memset(&op_region_pending, 0, sizeof(op_region_pending));
    if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0) {
        op_region_respond(out, 405, "Method not allowed: use GET with an Upgrade.");
        return true;
    }
    if (!op_region_is_uuid(aid.p, aid.len)) {
        op_region_respond(out, 400, "The agent id must be a UUID.");
        return true;
    }
    if (req->absolute_form) {
        op_region_respond(out, 400, "The WebSocket stream takes an origin-form request target.");
        return true;
    }
    if (req->framing != OP_H1_BODY_NONE) {
        op_region_respond(out, 400, "An upgrade request carries no body.");
        return true;
    }
    const struct op_h1_header *oh = op_h1_find_header(req->headers, req->nheaders, "Origin");
    if (oh && !origin_is(oh->value, conf->dashboard_url) && !origin_is(oh->value, conf->access_url)) {
        op_debug("region", "w%d#%u WebSocket stream to agent %.*s refused: Origin %.*s",
                 op_worker_index(op_conn_worker(c)), op_conn_id(c), (int)aid.len, aid.p,
                 (int)OP_MIN(oh->value.len, 200), oh->value.p);
        op_region_respond(out, 403, "The Origin of this request is neither the dashboard nor this region.");
        return true;
    }
    if (!op_region_check_connect(r, req, aid, query, out)) return true;
    const char *agent = op_region_pending.agent;
    uint16_t port = op_region_pending.port;
    op_region_dial_route(r, agent, out);
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    uint64_t h = op_region_fnv(op_region_fnv(op_region_fnv(OP_REGION_FNV_BASIS, "tcp-ws"), agent), ps);
    out->up_key = h ? h : 1;
    out->preamble_len =
        (size_t)snprintf(out->preamble, sizeof(out->preamble), "OPEN ws:127.0.0.1:%u\n", (unsigned)port);
    out->preamble_ok = true;
    out->strip_prefix = pl + OP_ID_LEN; /* "/tcp?port=N" is left */
    out->drop_query = drop_query;
    out->drop_headers = drop_headers;
    out->drop_cookies = op_region_coder_cookies;
    op_debug("region", "w%d#%u WebSocket stream to agent %s port %u", op_worker_index(op_conn_worker(c)),
             op_conn_id(c), agent, (unsigned)port);
    return true;
}
