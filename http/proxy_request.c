/*
 * http/proxy_request.c — the request path of the HTTP protocol: client bytes are held or forwarded,
 * each request head is parsed and routed (upstream, built-in response, application handler), request
 * bodies are forwarded to the upstream or collected for the handler, and one loop serves pipelined
 * requests in order.
 */
#include "http/proxy_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Parsed heads are large (100 header spans): one per worker thread, used only inside a callback. */
static _Thread_local struct op_h1_request tl_req;
/* Heads served from inside a client receive (http_client_data), and whether a route handed the
 * connection off: after a handoff the per-connection state belongs to another protocol, so nothing up
 * the stack may touch it. Only a receive's frame is known to be safe for that (its callers return at
 * once); a handoff asked for elsewhere (a head pipelined behind a response) is refused. */
static _Thread_local bool tl_in_receive, tl_handed_off;
/* Routing a request again that came back from the application handler with a grant: its head is no
 * longer in the held bytes (route_app consumed it), so nothing is consumed for it. */
static _Thread_local bool tl_rerouting;

_Static_assert(OP_CONN_BUF_SIZE - OP_H1_MAX_HEAD >= 8192, "head buffer too small for a useful receive");

/* Built-in responses are written synchronously; serving a pipelined run of them stops while this much
 * is queued for the client and goes on when the queue drains (on_drained), so a client that sends
 * requests without reading responses is stopped by TCP instead of filling the send queue. */
#define BUILTIN_QUEUE_MAX (64u * 1024u)

static bool same_addr(const struct sockaddr *a, socklen_t al, const struct sockaddr *b, socklen_t bl)
{
    return a && b && al == bl && memcmp(a, b, al) == 0;
}

/* Feeds request-body bytes from the client to the upstream. Returns the bytes used, or -ECONNABORTED
 * when the connection is failing (the client was answered, or the connection closed). */
static ssize_t forward_req_body(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    size_t used;
    int r = http_relay_body(c, &st->req_body, OP_UP, p, n, &used);
    if (r == HTTP_RELAY_CLOSED) return -ECONNABORTED;
    if (r == OP_H1_ERROR) {
        http_fail(c, 400, st->req_body.error_reason ? st->req_body.error_reason : "bad request body");
        return -ECONNABORTED;
    }
    if (r == OP_H1_COMPLETE) {
        st->req_done = true;
        st->phase = HP_WAIT;
        op_conn_pause(c, OP_CLI); /* the next request waits until this response is complete */
    }
    /* The body timeout is an idle timeout: every piece that moves restarts it, so a slow upload lives
     * as long as it keeps moving. While the upstream connect is in flight the connect timeout runs. */
    if ((used || r == OP_H1_COMPLETE) && op_conn_state(c) != OP_CS_CONNECT)
        op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->idle_ms);
    return (ssize_t)used;
}

/* The open leg may carry this request: a dial route's leg only for the same non-zero up_key, an address
 * route's only for the same address (a dialled leg has no address, so neither is taken for the other). */
static bool leg_reusable(struct op_conn *c, const struct op_route *rt)
{
    struct http_state *st = hs(c);
    if (!op_conn_has_upstream(c)) return false;
    if (rt->dial) return rt->up_key && !st->up_addr && st->up_key == rt->up_key;
    return !st->up_key && same_addr(st->up_addr, st->up_addrlen, rt->addr, rt->addrlen);
}

static void route_upstream(struct op_conn *c, const struct op_h1_request *req, const struct op_route *rt)
{
    struct http_state *st = hs(c);
    if (!rt->dial && !rt->addr) {
        http_fail(c, 502, "no upstream");
        return;
    }
    bool reuse = leg_reusable(c, rt);
    /* A new leg that is dialled or gets a preamble: the head waits for it (HP_DIAL, proxy_dial.c). */
    bool hold = !reuse && (rt->dial || rt->preamble_len);
    st->resp_flags = (uint8_t)rt->resp_flags;
    http_dbuf_release(c); /* normally released already, when the previous request ended */
    if (hold || rt->resp_extra[0]) {
        st->dbuf = (struct http_dbuf *)op_conn_buf_get(c);
        if (!st->dbuf) {
            http_fail(c, 503, "out of buffers");
            return;
        }
        size_t el = strnlen(rt->resp_extra, sizeof(rt->resp_extra) - 1);
        memcpy(st->dbuf->resp_extra, rt->resp_extra, el);
        st->dbuf->resp_extra[el] = '\0';
        st->dbuf->preamble_len = st->dbuf->line_len = st->dbuf->head_len = 0;
    }
    if (!hold) {
        if (!reuse) {
            int rc = op_conn_connect(c, rt->addr, rt->addrlen);
            if (rc < 0) {
                http_fail(c, 502, "cannot create the upstream socket");
                return;
            }
            st->up_addr = rt->addr;
            st->up_addrlen = rt->addrlen;
            st->up_key = 0;
            op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->connect_ms);
        } else {
            op_conn_set_state(c, OP_CS_RELAY);
            op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->idle_ms);
        }
    }
    char ip[64];
    op_conn_peer_ip(c, ip, sizeof(ip));
    size_t rx = strnlen(rt->req_extra, sizeof(rt->req_extra) - 1);
    char req_extra[sizeof(rt->req_extra)];
    memcpy(req_extra, rt->req_extra, rx);
    req_extra[rx] = '\0';
    struct op_h1_req_opts ro = {.extra = req_extra,
                                .strip_prefix = rt->strip_prefix,
                                .drop_cookies = rt->drop_cookies,
                                .path_prefix = rt->path_prefix,
                                .path_prefix_len = rt->path_prefix_len,
                                .drop_query = rt->drop_query,
                                .drop_headers = rt->drop_headers};
    char *out = hold ? st->dbuf->head : http_out;
    size_t cap = hold ? HTTP_DBUF_HEAD_CAP : sizeof(http_out);
    ssize_t n = op_h1_write_request_head_opts(req, ip, op_conn_is_tls(c) ? "https" : "http", &ro, out, cap);
    if (n < 0 || (!hold && op_conn_send(c, OP_UP, (const uint8_t *)http_out, (size_t)n) < 0)) {
        http_fail(c, 431, "request head too large to forward");
        return;
    }
    st->resp_head_done = st->resp_done = st->resp_started = false;
    st->up_keep = true;
    op_h1_body_init(&st->req_body, req->framing, req->content_length);
    if (!tl_rerouting) http_buf_consume(c, &st->hbuf, &st->hlen, req->head_len);
    st->req_done = req->framing == OP_H1_BODY_NONE;
    if (hold) {
        st->dbuf->head_len = (uint32_t)n;
        size_t pl = OP_MIN(rt->preamble_len, sizeof(rt->preamble));
        memcpy(st->dbuf->preamble, rt->preamble, pl);
        st->dbuf->preamble_len = (uint32_t)pl;
        st->phase = HP_DIAL;
        op_conn_pause(c, OP_CLI); /* body bytes wait for the leg, held */
        http_dial_start(c, rt);
        return;
    }
    if (st->req_done) {
        st->phase = HP_WAIT;
        op_conn_pause(c, OP_CLI);
        return;
    }
    st->phase = HP_BODY; /* body bytes already held are forwarded by http_serve_held */
}

static void respond_builtin(struct op_conn *c, const struct op_h1_request *req, const struct op_route *rt)
{
    struct http_state *st = hs(c);
    if (req->framing != OP_H1_BODY_NONE) /* a responder does not read bodies: close after answering */
        st->client_keep = false;
    size_t blen = st->head_req ? 0 : rt->body_len;
    bool close = !st->client_keep || op_conn_draining(c);
    if (http_write_simple(c, rt->status ? rt->status : 200, rt->content_type, rt->body, blen, close,
                          rt->extra) < 0) {
        op_conn_close(c, "response too large");
        return;
    }
    if (!tl_rerouting) http_buf_consume(c, &st->hbuf, &st->hlen, req->head_len);
    st->req_done = true;
    st->resp_started = true;
    http_end_request(c); /* serve_held, our caller, goes on with the next pipelined request */
}

static void app_submit(struct op_conn *c)
{
    struct http_state *st = hs(c);
    struct op_app_job *job = st->job;
    if (job->body_drop) { /* read to its end and dropped: the handler answers from the head */
        job->req.body_dropped = job->body_len;
        job->body_len = job->body_have = 0;
    }
    job->req.body = op_span(job->body, job->body_len);
    st->phase = HP_APP;
    st->req_done = true;
    op_conn_pause(c, OP_CLI);
    op_conn_set_state(c, OP_CS_OPEN);
    op_conn_set_timeout(c, 0);
    hconf(c)->app_submit(hconf(c)->app_submit_ctx, job);
}

static void route_app(struct op_conn *c, const struct op_h1_request *req, const struct op_route *rt)
{
    struct http_state *st = hs(c);
    const struct op_http_conf *cf = hconf(c);
    if (!cf->app || !cf->app_submit) {
        http_fail(c, 500, "no application handler");
        return;
    }
    if (req->framing == OP_H1_BODY_CHUNKED) {
        http_fail(c, 411, "chunked request bodies are not accepted here");
        return;
    }
    bool drop = rt->app_head_only && req->content_length;
    if ((!drop && req->content_length > cf->max_app_body) || req->content_length > OP_HTTP_MAX_DROPPED_BODY) {
        http_fail(c, 413, "request body too large");
        return;
    }
    struct op_app_job *job = calloc(1, sizeof(*job));
    char *head = job ? malloc(req->head_len) : NULL;
    char *body = req->content_length && !drop ? malloc(req->content_length) : NULL;
    if (!job || !head || (req->content_length && !drop && !body)) {
        free(job);
        free(head);
        free(body);
        http_fail(c, 503, "out of memory");
        return;
    }
    /* Copy the head and rebase every span into the copy. */
    memcpy(head, st->hbuf, req->head_len);
    const char *base = (const char *)st->hbuf;
#define REBASE(sp) op_span((sp).p ? head + ((sp).p - base) : NULL, (sp).len)
    job->req.method = REBASE(req->method);
    op_span_t target = REBASE(req->target);
    const char *q = memchr(target.p, '?', target.len);
    job->req.path = op_span(target.p, q ? (size_t)(q - target.p) : target.len);
    job->req.query = q ? op_span(q + 1, target.len - (size_t)(q + 1 - target.p)) : op_span("", 0);
    job->req.host = REBASE(req->host);
    for (int i = 0; i < req->nheaders; i++) {
        job->headers[i].name = REBASE(req->headers[i].name);
        job->headers[i].value = REBASE(req->headers[i].value);
    }
#undef REBASE
    job->req.headers = job->headers;
    job->req.nheaders = req->nheaders;
    op_conn_peer_ip(c, job->remote_ip, sizeof(job->remote_ip));
    job->req.remote_ip = job->remote_ip;
    job->req.tls = op_conn_is_tls(c);
    job->head = head;
    job->head_len = req->head_len;
    job->body = body;
    job->body_len = req->content_length;
    job->body_drop = drop;
    job->ref = op_conn_ref(c);
    job->engine = op_worker_engine(op_conn_worker(c));
    job->conf = cf;
    st->job = job;
    bool expect = req->expect_continue;
    http_buf_consume(c, &st->hbuf, &st->hlen, req->head_len);
    if (job->body_len == 0) {
        app_submit(c);
        return;
    }
    /* Body bytes already held are collected by http_serve_held; only when they do not complete the body
     * is the client asked to send it. */
    if (expect && (size_t)st->hlen + st->xlen < job->body_len) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (op_conn_send(c, OP_CLI, (const uint8_t *)cont, sizeof(cont) - 1) < 0) {
            op_conn_close(c, "client queue full");
            return;
        }
    }
    st->phase = HP_APP_BODY;
    op_conn_set_timeout(c, hconf(c)->head_ms);
}

void http_reroute(struct op_conn *c, struct op_app_job *job)
{
    struct http_state *st = hs(c);
    const struct op_http_conf *cf = hconf(c);
    struct op_h1_request *req = &tl_req;
    st->job = NULL;
    if (job->body_len || op_h1_parse_request(job->head, job->head_len, req) != OP_H1_COMPLETE) {
        op_app_job_free(job);
        http_fail(c, 500, "a granted request cannot be routed again");
        return;
    }
    st->phase = HP_HEAD;
    if (http_upgrade_request(c, req) < 0) {
        op_app_job_free(job);
        return;
    }
    struct op_route rt;
    memset(&rt, 0, sizeof(rt));
    rt.granted = job->resp.grant;
    if (cf->route) cf->route(cf->route_ctx, c, req, &rt);
    tl_rerouting = true;
    if (rt.kind == OP_ROUTE_UPSTREAM)
        route_upstream(c, req, &rt); /* writes the head it sends before returning: job may go */
    else if (rt.kind == OP_ROUTE_RESPOND)
        respond_builtin(c, req, &rt);
    else
        http_fail(c, 500, "a granted request was not routed upstream");
    tl_rerouting = false;
    op_app_job_free(job);
    /* Answered at once and kept alive: what was pipelined behind it is served now (no loop above us). */
    if (rt.kind == OP_ROUTE_RESPOND && st->phase == HP_HEAD) http_serve_held(c, true);
}

/* Body bytes of the current request, fresh or held: forwarded upstream (HP_BODY) or collected for the
 * application handler (HP_APP_BODY). Returns the bytes used, or -ECONNABORTED as forward_req_body. */
static ssize_t request_body(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    if (st->phase == HP_BODY) return forward_req_body(c, p, n);
    struct op_app_job *job = st->job;
    size_t take = OP_MIN(n, job->body_len - job->body_have);
    if (!job->body_drop) memcpy(job->body + job->body_have, p, take);
    job->body_have += take;
    if (job->body_have == job->body_len)
        app_submit(c);
    else /* idle, as for relayed bodies: progress restarts it */
        op_conn_set_timeout(c, hconf(c)->head_ms);
    return (ssize_t)take;
}

/* The connection leaves HTTP (an upgrade to a protocol the role runs in the engine): HTTP forgets the
 * request, releases its buffers and gives the bytes that followed the head to the handoff function,
 * which switches the connection to its own protocol. */
static void route_handoff(struct op_conn *c, const struct op_h1_request *req, const struct op_route *rt)
{
    struct http_state *st = hs(c);
    if (req->framing != OP_H1_BODY_NONE || !rt->handoff) {
        http_fail(c, 400, "an upgrade request with a body");
        return;
    }
    if (!tl_in_receive) {
        http_fail(c, 400, "this upgrade cannot be pipelined behind another request");
        return;
    }
    http_observe_request(c);
    uint8_t *hbuf = st->hbuf, *xbuf = st->xbuf;
    uint32_t hlen = st->hlen, xlen = st->xlen;
    op_conn_buf_put(c, st->rbuf);
    memset(st, 0, sizeof(*st)); /* the next protocol's once handoff() switches */
    op_conn_set_timeout(c, 0);
    tl_handed_off = true;
    rt->handoff(rt->handoff_ctx, c, req, hbuf + req->head_len, hlen - req->head_len);
    op_conn_buf_put(c, hbuf);
    if (xlen && op_conn_deliver(c, xbuf, xlen) < 0) op_conn_close(c, "handed-off protocol refused bytes");
    op_conn_buf_put(c, xbuf);
}

static void process_head(struct op_conn *c)
{
    struct http_state *st = hs(c);
    struct op_h1_request *req = &tl_req;
    int r = op_h1_parse_request_resume((const char *)st->hbuf, st->hlen, &st->hscan, req);
    if (r == OP_H1_INCOMPLETE) return;
    if (r == OP_H1_ERROR) {
        http_fail(c, req->error_status, req->error_reason);
        return;
    }
    OP_STAT_ADD(http_wstats(c)->requests, 1);
    st->req_start_us = op_now_us();
    op_conn_set_state(c, OP_CS_OPEN);
    st->client_minor = (uint8_t)req->version_minor;
    st->client_keep = req->keep_alive;
    st->head_req = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    st->req_done = false;
    if (req->method.len == 7 && memcmp(req->method.p, "CONNECT", 7) == 0) {
        http_fail(c, 405, "CONNECT is not supported");
        return;
    }
    if (http_upgrade_request(c, req) < 0) return;
    const struct op_http_conf *cf = hconf(c);
    struct op_route rt;
    memset(&rt, 0, sizeof(rt));
    if (cf->route) {
        cf->route(cf->route_ctx, c, req, &rt);
    } else if (cf->static_upstream) {
        rt.kind = OP_ROUTE_UPSTREAM;
        rt.addr = (const struct sockaddr *)&cf->static_upstream->addr;
        rt.addrlen = cf->static_upstream->addrlen;
    }
    switch (rt.kind) {
    case OP_ROUTE_UPSTREAM:
        route_upstream(c, req, &rt);
        break;
    case OP_ROUTE_RESPOND:
        respond_builtin(c, req, &rt);
        break;
    case OP_ROUTE_APP:
        route_app(c, req, &rt);
        break;
    case OP_ROUTE_HANDOFF:
        route_handoff(c, req, &rt);
        break;
    default:
        http_fail(c, 404, "no route");
    }
}

/*
 * Serves what is held, one request after another, in this one frame: body bytes of the request in
 * progress, then each complete pipelined head. A request that completes at once (a built-in response)
 * comes back here for the next; one that goes upstream or to the application handler stops the loop
 * until its response is complete (then http_next_request calls this again). resume: also restart reading
 * the client when the loop ends wanting more bytes. Inside a client receive it is false: the engine
 * re-arms the read itself once the receive is handled, and no read may be armed while the rest of that
 * receive is still to come (see http_hold()).
 */
void http_serve_held(struct op_conn *c, bool resume)
{
    struct http_state *st = hs(c);
    for (;;) {
        http_refill(c);
        if (st->phase == HP_BODY || st->phase == HP_APP_BODY) {
            if (!st->hlen) break;
            ssize_t used = request_body(c, st->hbuf, st->hlen);
            if (used < 0) return;
            http_buf_consume(c, &st->hbuf, &st->hlen, (size_t)used);
            continue;
        }
        if (st->phase != HP_HEAD || !st->hlen) break;
        if (op_conn_queued(c, OP_CLI) >= BUILTIN_QUEUE_MAX) {
            op_conn_pause(c, OP_CLI); /* http_drained goes on */
            return;
        }
        uint32_t before = st->hlen;
        tl_handed_off = false;
        process_head(c);
        if (tl_handed_off) return; /* st is another protocol's now */
        if (st->phase == HP_HEAD && st->hlen == before) {
            /* Incomplete head: more bytes needed. A full hbuf always holds a complete head or an
             * error (431), so reading more can only complete the one at its start. */
            OP_BUG_ON(st->hlen == OP_CONN_BUF_SIZE);
            break;
        }
    }
    if (resume && (st->phase == HP_HEAD || st->phase == HP_BODY || st->phase == HP_APP_BODY))
        op_conn_resume(c, OP_CLI);
}

int http_client_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    /* Body bytes of the request in progress go on at once; everything else is held and served in
     * order (a phase change, e.g. a body that completes, may leave bytes for the next pass). */
    while (n) {
        switch (st->phase) {
        case HP_DONE:
            return 0; /* closing: drop */
        case HP_BODY:
        case HP_APP_BODY: {
            ssize_t used = request_body(c, p, n);
            if (used < 0) return 0;
            p += used;
            n -= (size_t)used;
            continue;
        }
        default: {
            bool first = st->hlen == 0;
            int rc = http_hold(c, p, n);
            if (rc < 0) {
                op_warn("http", "w%d#%u cannot hold client bytes: %s", op_worker_index(op_conn_worker(c)),
                        op_conn_id(c), strerror(-rc));
                return rc;
            }
            if (st->phase == HP_HEAD) {
                if (first) op_conn_set_timeout(c, hconf(c)->head_ms);
                tl_in_receive = true;
                http_serve_held(c, false);
                tl_in_receive = false;
            } else { /* HP_WAIT, HP_APP: pipelined bytes wait for the response in progress */
                op_conn_pause(c, OP_CLI);
            }
            return 0;
        }
        }
    }
    return 0;
}
