/*
 * http/proxy_upgrade.c — HTTP Upgrade in the HTTP protocol. Only the tokens in op_http_conf.upgrade_tokens
 * are relayed; any other upgrade is removed from the request, which goes on as a plain one (RFC 9110
 * §7.8 lets a server ignore Upgrade). A 101 opens the engine's byte tunnel only when its Upgrade is the
 * token the request asked for.
 */
#include "http/proxy_int.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

const char *const http_default_upgrade_tokens[] = {"websocket", NULL};

/* The allowed token that the Upgrade value v names, or NULL. v must be exactly one token: a list
 * ("websocket, h2c") is not an upgrade we relay. */
static const char *upgrade_allowed(const struct op_http_conf *cf, op_span_t v)
{
    const char *const *toks = cf->upgrade_tokens ? cf->upgrade_tokens : http_default_upgrade_tokens;
    for (; *toks; toks++)
        if (strlen(*toks) == v.len && strncasecmp(v.p, *toks, v.len) == 0) return *toks;
    return NULL;
}

int http_upgrade_request(struct op_conn *c, struct op_h1_request *req)
{
    struct http_state *st = hs(c);
    /* Upgrade and Connection are hop-by-hop, so without req->upgrade the head written upstream carries
     * neither. */
    st->upgrade_tok = req->upgrade ? upgrade_allowed(hconf(c), req->upgrade_proto) : NULL;
    if (req->upgrade && !st->upgrade_tok) {
        op_debug("http", "w%d#%u upgrade to '%.*s' removed", op_worker_index(op_conn_worker(c)),
                 op_conn_id(c), (int)req->upgrade_proto.len, req->upgrade_proto.p);
        req->upgrade = false;
    }
    st->upgrade_req = req->upgrade;
    if (st->upgrade_tok && strcmp(st->upgrade_tok, "websocket") == 0) {
        const char *why = NULL;
        if (op_h1_ws_check_request(req, &why) != 0) {
            http_fail(c, 400, why ? why : "invalid WebSocket handshake");
            return -EINVAL;
        }
    }
    return 0;
}

/* After a 101: what the upstream sent after its head (two spans: buffered, then just received) goes to
 * the client, what the client sent after its request goes upstream, and the engine takes over. */
static void start_tunnel(struct op_conn *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    struct http_state *st = hs(c);
    /* A byte that cannot be queued would leave a hole in the new protocol's stream: close instead. */
    if ((an && op_conn_send(c, OP_CLI, a, an) < 0) || (bn && op_conn_send(c, OP_CLI, b, bn) < 0)) {
        op_conn_close(c, "client queue full");
        return;
    }
    if (st->hlen) { /* bytes the client sent after its upgrade request belong to the new protocol */
        if (op_conn_send(c, OP_UP, st->hbuf, st->hlen) < 0) {
            op_conn_close(c, "upstream queue full");
            return;
        }
        http_buf_consume(c, &st->hbuf, &st->hlen, st->hlen);
    }
    if (st->xlen) {
        if (op_conn_send(c, OP_UP, st->xbuf, st->xlen) < 0) {
            op_conn_close(c, "upstream queue full");
            return;
        }
        http_buf_consume(c, &st->xbuf, &st->xlen, st->xlen);
    }
    if (st->rbuf) http_buf_consume(c, &st->rbuf, &st->rlen, st->rlen);
    http_dbuf_release(c);
    op_conn_tunnel(c, op_worker_timeouts(op_conn_worker(c))->tunnel_idle_ms);
}

void http_switch_protocols(struct op_conn *c, const struct op_h1_response *resp, const uint8_t *a, size_t an,
                           const uint8_t *b, size_t bn)
{
    struct http_state *st = hs(c);
    if (!st->upgrade_req) {
        http_fail(c, 502, "upstream switched protocols without an upgrade request");
        return;
    }
    const struct op_h1_header *uh = op_h1_find_header(resp->headers, resp->nheaders, "Upgrade");
    if (!uh || strlen(st->upgrade_tok) != uh->value.len ||
        strncasecmp(uh->value.p, st->upgrade_tok, uh->value.len) != 0) {
        http_fail(c, 502, "upstream switched to a protocol other than the one requested");
        return;
    }
    struct op_h1_resp_opts ro = http_resp_opts(c);
    ssize_t hn =
        op_h1_write_response_head_opts(resp, st->client_minor, false, &ro, http_out, sizeof(http_out));
    if (hn < 0 || op_conn_send(c, OP_CLI, (const uint8_t *)http_out, (size_t)hn) < 0) {
        http_fail(c, 502, "upstream response head too large");
        return;
    }
    st->resp_started = true;
    start_tunnel(c, a, an, b, bn);
}
