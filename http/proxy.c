/*
 * http/proxy.c — HTTP/1.1 reverse proxy protocol (see http/proxy.h).
 *
 * Client bytes that are not body bytes of the request in progress are held in `hbuf` (a pool buffer
 * held only while there are unprocessed bytes), and what does not fit there in `xbuf` (see hold()).
 * Pipelined requests wait there, and the client is not read while they do (back-pressure): they are
 * served one at a time, in order, each when the previous response is complete, by one loop
 * (serve_held) that never recurses. Upstream response heads are collected in `rbuf` the same way.
 * Bodies are never buffered: the body trackers say how many of the bytes just received belong to the
 * current message and those are sent on at once; the engine's backpressure (a side is read only while
 * the other side's queue has room) bounds memory.
 */
#include "http/proxy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

enum http_phase {
    HP_HEAD = 0, /* reading a request head (or idle between requests) */
    HP_BODY,     /* forwarding a request body to the upstream */
    HP_WAIT,     /* request sent; relaying the response */
    HP_APP_BODY, /* collecting a body for the application handler */
    HP_APP,      /* the application handler has the request */
    HP_DONE,     /* an error response is going out; the connection closes after it */
};

struct http_state {
    uint8_t phase;
    bool req_done, resp_head_done, resp_done, resp_started;
    bool head_req, upgrade_req, client_keep, up_keep, client_eof;
    uint8_t client_minor;
    uint8_t *hbuf, *xbuf, *rbuf;
    uint32_t hlen, xlen, rlen;
    struct op_h1_body req_body, resp_body;
    struct op_h1_scan hscan; /* where the scan of the request head in hbuf stopped */
    const struct sockaddr *up_addr;
    socklen_t up_addrlen;
    struct op_app_job *job;
    const char *upgrade_tok; /* the allowed token the request asked to upgrade to (NULL: none) */
    uint64_t req_start_us;   /* head parsed; 0 when no request is being timed */
};

/* Parsed heads are large (100 header spans): one per worker thread, used only inside a callback. */
static _Thread_local struct op_h1_request tl_req;
static _Thread_local struct op_h1_response tl_resp;
static _Thread_local char tl_out[OP_H1_MAX_HEAD + 4096];

static inline struct http_state *hs(struct op_conn *c)
{
    return op_conn_proto_state(c);
}
static inline const struct op_http_conf *hconf(struct op_conn *c)
{
    return op_conn_proto_ctx(c);
}

static const char *const default_upgrade_tokens[] = {"websocket", NULL};

void op_http_conf_init(struct op_http_conf *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->max_app_body = 1u << 20;
    conf->head_ms = 10000;
    conf->keepalive_ms = 60000;
    conf->upgrade_tokens = default_upgrade_tokens;
}

const uint64_t op_http_dur_bounds_us[OP_HTTP_DUR_BUCKETS - 1] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

/* This worker's HTTP counters (the protocol's per-worker state; this worker is their only writer). */
static struct op_http_stats *wstats(struct op_conn *c)
{
    return op_worker_proto_state(op_conn_worker(c), &op_proto_http);
}

const struct op_http_stats *op_http_worker_stats(const struct op_engine *e, int worker)
{
    return op_engine_proto_state(e, worker, &op_proto_http);
}

/* The allowed token that the Upgrade value v names, or NULL. v must be exactly one token: a list
 * ("websocket, h2c") is not an upgrade we relay. */
static const char *upgrade_allowed(const struct op_http_conf *cf, op_span_t v)
{
    const char *const *toks = cf->upgrade_tokens ? cf->upgrade_tokens : default_upgrade_tokens;
    for (; *toks; toks++)
        if (strlen(*toks) == v.len && strncasecmp(v.p, *toks, v.len) == 0) return *toks;
    return NULL;
}

static void process_head(struct op_conn *c);
static void observe_request(struct op_conn *c);
static void serve_held(struct op_conn *c, bool resume);

/* ---- buffers ---------------------------------------------------------------------------------- */

static int buf_append(struct op_conn *c, uint8_t **buf, uint32_t *len, const uint8_t *p, size_t n)
{
    if (!n) return 0;
    if (!*buf) {
        *buf = op_conn_buf_get(c);
        if (!*buf) return -ENOBUFS;
    }
    if (*len + n > OP_CONN_BUF_SIZE) return -ENOSPC;
    memcpy(*buf + *len, p, n);
    *len += (uint32_t)n;
    return 0;
}

static void buf_consume(struct op_conn *c, uint8_t **buf, uint32_t *len, size_t n)
{
    if (n >= *len) {
        op_conn_buf_put(c, *buf);
        *buf = NULL;
        *len = 0;
        return;
    }
    memmove(*buf, *buf + n, *len - n);
    *len -= (uint32_t)n;
}

/*
 * Holds client bytes that must wait: a head being read, pipelined requests behind the one in progress.
 * hbuf fills first; xbuf takes what does not fit, and refill() moves it up as hbuf empties, so hbuf
 * always starts with the oldest held byte and a full hbuf always holds a whole head (heads are smaller
 * than OP_H1_MAX_HEAD).
 *
 * Why two buffers are enough: the client is read only while the held bytes are an incomplete head
 * (< OP_H1_MAX_HEAD) and xbuf is empty, and reading stops as soon as a request is routed. What can
 * still arrive is what one receive yields: at most max_recv bytes, or with TLS that much ciphertext
 * plus the rest of one record already inside the transport (< OP_H1_MAX_HEAD plaintext more). The
 * total stays under two buffers; -ENOSPC would mean that bound is broken.
 */
static int hold(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    if (!st->xlen) {
        size_t k = OP_MIN(n, (size_t)(OP_CONN_BUF_SIZE - st->hlen));
        int rc = buf_append(c, &st->hbuf, &st->hlen, p, k);
        if (rc < 0) return rc;
        p += k;
        n -= k;
    }
    return buf_append(c, &st->xbuf, &st->xlen, p, n);
}

static void refill(struct op_conn *c)
{
    struct http_state *st = hs(c);
    size_t k = OP_MIN((size_t)st->xlen, (size_t)(OP_CONN_BUF_SIZE - st->hlen));
    if (!k || buf_append(c, &st->hbuf, &st->hlen, st->xbuf, k) < 0) return;
    buf_consume(c, &st->xbuf, &st->xlen, k);
}

/* ---- responses we write ourselves --------------------------------------------------------------- */

static void count_status(struct op_conn *c, int status)
{
    struct op_http_stats *st = wstats(c);
    if (status >= 500)
        OP_STAT_ADD(st->responses_5xx, 1);
    else if (status >= 400)
        OP_STAT_ADD(st->responses_4xx, 1);
}

OP_MUST_USE static int write_simple(struct op_conn *c, int status, const char *ctype, const char *body,
                                    size_t blen, bool close, const char *extra1)
{
    const char *extra2 = hconf(c)->resp_extra;
    char extra[1600];
    snprintf(extra, sizeof(extra), "%s%s", extra1 ? extra1 : "", extra2 ? extra2 : "");
    ssize_t n = op_h1_write_simple_response(status, ctype, body, blen, close, extra, tl_out, sizeof(tl_out));
    if (n < 0) return (int)n;
    count_status(c, status);
    return op_conn_send(c, OP_CLI, (const uint8_t *)tl_out, (size_t)n);
}

/* Answers with an error and closes once it is out. Nothing more is read from this client. */
static void fail(struct op_conn *c, int status, const char *why)
{
    struct http_state *st = hs(c);
    op_debug("http", "w%d#%u %d: %s", op_worker_index(op_conn_worker(c)), op_conn_id(c), status, why);
    if (!st->resp_started) {
        char body[160];
        int bl = snprintf(body, sizeof(body), "%d %s: %s\n", status, op_h1_reason(status), why);
        if (write_simple(c, status, "text/plain; charset=utf-8", body, (size_t)bl, true, NULL) < 0) {
            st->phase = HP_DONE;
            observe_request(c);
            op_conn_close(c, "error response did not fit the client queue");
            return;
        }
    }
    st->phase = HP_DONE;
    observe_request(c);
    op_conn_finish(c);
}

/* ---- after a response ----------------------------------------------------------------------------- */

/* The request's response is complete (or an error answered it): count its duration once. */
static void observe_request(struct op_conn *c)
{
    struct http_state *st = hs(c);
    if (st->req_start_us) {
        uint64_t us = op_now_us() - st->req_start_us;
        struct op_http_stats *ws = wstats(c);
        size_t i = 0;
        while (i < OP_HTTP_DUR_BUCKETS - 1 && us > op_http_dur_bounds_us[i])
            i++;
        OP_STAT_ADD(ws->req_dur[i], 1);
        OP_STAT_ADD(ws->req_dur_sum_us, us);
        OP_STAT_ADD(ws->req_dur_count, 1);
        st->req_start_us = 0;
    }
}

/* The request is over (its response is complete or queued): back to reading heads, or close.
 * Returns false when the connection is closing. */
static bool end_request(struct op_conn *c)
{
    struct http_state *st = hs(c);
    observe_request(c);
    bool keep = st->client_keep && !st->client_eof && !op_conn_draining(c) && st->req_done;
    if (!keep) {
        st->phase = HP_DONE;
        op_conn_finish(c);
        return false;
    }
    st->phase = HP_HEAD;
    st->req_done = st->resp_head_done = st->resp_done = st->resp_started = false;
    op_conn_set_state(c, OP_CS_OPEN);
    op_conn_set_timeout(c, hconf(c)->keepalive_ms);
    return true;
}

/* After a response that completed asynchronously: serve what was pipelined behind it. */
static void next_request(struct op_conn *c)
{
    if (end_request(c)) serve_held(c, true);
}

static void response_done(struct op_conn *c)
{
    struct http_state *st = hs(c);
    st->resp_done = true;
    if (st->rbuf) buf_consume(c, &st->rbuf, &st->rlen, st->rlen);
    if (!st->up_keep) {
        op_conn_drop_upstream(c);
        st->up_addr = NULL;
    }
    if (!st->req_done) /* the upstream answered before the request body ended (e.g. an early 413) */
        st->client_keep = false;
    next_request(c);
}

/* ---- request side ----------------------------------------------------------------------------- */

static bool same_addr(const struct sockaddr *a, socklen_t al, const struct sockaddr *b, socklen_t bl)
{
    return a && b && al == bl && memcmp(a, b, al) == 0;
}

#define RELAY_CLOSED (OP_H1_ERROR - 1)
/* Feeds body bytes through tracker b and sends those that belong to the message on to side `to`.
 * Returns the tracker's verdict (*used set), or RELAY_CLOSED when the send queue refused them (the
 * connection is then closed). */
static int relay_body(struct op_conn *c, struct op_h1_body *b, enum op_side to, const uint8_t *p, size_t n,
                      size_t *used)
{
    *used = 0;
    int r = op_h1_body_feed(b, (const char *)p, n, used);
    if (*used && op_conn_forward(c, to, p, *used) < 0) {
        op_conn_close(c, to == OP_UP ? "upstream queue full" : "client queue full");
        return RELAY_CLOSED;
    }
    return r;
}

/* Feeds request-body bytes from the client to the upstream; returns bytes used or -1 (closed). */
static ssize_t forward_req_body(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    size_t used;
    int r = relay_body(c, &st->req_body, OP_UP, p, n, &used);
    if (r == RELAY_CLOSED) return -1;
    if (r == OP_H1_ERROR) {
        fail(c, 400, st->req_body.error_reason ? st->req_body.error_reason : "bad request body");
        return -1;
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

static void route_upstream(struct op_conn *c, const struct op_h1_request *req, const struct op_route *rt)
{
    struct http_state *st = hs(c);
    if (!same_addr(st->up_addr, st->up_addrlen, rt->addr, rt->addrlen) || !op_conn_has_upstream(c)) {
        int rc = op_conn_connect(c, rt->addr, rt->addrlen);
        if (rc < 0) {
            fail(c, 502, "cannot create the upstream socket");
            return;
        }
        st->up_addr = rt->addr;
        st->up_addrlen = rt->addrlen;
        op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->connect_ms);
    } else {
        op_conn_set_state(c, OP_CS_RELAY);
        op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->idle_ms);
    }
    char ip[64];
    op_conn_peer_ip(c, ip, sizeof(ip));
    ssize_t n = op_h1_write_request_head(req, ip, op_conn_is_tls(c) ? "https" : "http", 0, NULL, tl_out,
                                         sizeof(tl_out));
    if (n < 0 || op_conn_send(c, OP_UP, (const uint8_t *)tl_out, (size_t)n) < 0) {
        fail(c, 431, "request head too large to forward");
        return;
    }
    st->resp_head_done = st->resp_done = st->resp_started = false;
    st->up_keep = true;
    op_h1_body_init(&st->req_body, req->framing, req->content_length);
    buf_consume(c, &st->hbuf, &st->hlen, req->head_len);
    if (req->framing == OP_H1_BODY_NONE) {
        st->req_done = true;
        st->phase = HP_WAIT;
        op_conn_pause(c, OP_CLI);
        return;
    }
    st->phase = HP_BODY; /* body bytes already held are forwarded by serve_held */
}

static void respond_builtin(struct op_conn *c, const struct op_h1_request *req, const struct op_route *rt)
{
    struct http_state *st = hs(c);
    if (req->framing != OP_H1_BODY_NONE) /* a responder does not read bodies: close after answering */
        st->client_keep = false;
    size_t blen = st->head_req ? 0 : rt->body_len;
    bool close = !st->client_keep || op_conn_draining(c);
    if (write_simple(c, rt->status ? rt->status : 200, rt->content_type, rt->body, blen, close, rt->extra) <
        0) {
        op_conn_close(c, "response too large");
        return;
    }
    buf_consume(c, &st->hbuf, &st->hlen, req->head_len);
    st->req_done = true;
    st->resp_started = true;
    end_request(c); /* serve_held, our caller, goes on with the next pipelined request */
}

static void app_submit(struct op_conn *c)
{
    struct http_state *st = hs(c);
    struct op_app_job *job = st->job;
    job->req.body = op_span(job->body, job->body_len);
    st->phase = HP_APP;
    st->req_done = true;
    op_conn_pause(c, OP_CLI);
    op_conn_set_state(c, OP_CS_OPEN);
    op_conn_set_timeout(c, 0);
    hconf(c)->app_submit(hconf(c)->app_submit_ctx, job);
}

static void route_app(struct op_conn *c, const struct op_h1_request *req)
{
    struct http_state *st = hs(c);
    const struct op_http_conf *cf = hconf(c);
    if (!cf->app || !cf->app_submit) {
        fail(c, 500, "no application handler");
        return;
    }
    if (req->framing == OP_H1_BODY_CHUNKED) {
        fail(c, 411, "chunked request bodies are not accepted here");
        return;
    }
    if (req->content_length > cf->max_app_body) {
        fail(c, 413, "request body too large");
        return;
    }
    struct op_app_job *job = calloc(1, sizeof(*job));
    char *head = job ? malloc(req->head_len) : NULL;
    char *body = req->content_length ? malloc(req->content_length) : NULL;
    if (!job || !head || (req->content_length && !body)) {
        free(job);
        free(head);
        free(body);
        fail(c, 503, "out of memory");
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
    job->body = body;
    job->body_len = req->content_length;
    job->ref = op_conn_ref(c);
    job->engine = op_worker_engine(op_conn_worker(c));
    job->conf = cf;
    st->job = job;
    bool expect = req->expect_continue;
    buf_consume(c, &st->hbuf, &st->hlen, req->head_len);
    if (job->body_len == 0) {
        app_submit(c);
        return;
    }
    /* Body bytes already held are collected by serve_held; only when they do not complete the body
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

/* Body bytes of the current request, fresh or held: forwarded upstream (HP_BODY) or collected for the
 * application handler (HP_APP_BODY). Returns the bytes used, or -1 when the connection is failing. */
static ssize_t request_body(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    if (st->phase == HP_BODY) return forward_req_body(c, p, n);
    struct op_app_job *job = st->job;
    size_t take = OP_MIN(n, job->body_len - job->body_have);
    memcpy(job->body + job->body_have, p, take);
    job->body_have += take;
    if (job->body_have == job->body_len)
        app_submit(c);
    else /* idle, as for relayed bodies: progress restarts it */
        op_conn_set_timeout(c, hconf(c)->head_ms);
    return (ssize_t)take;
}

static void process_head(struct op_conn *c)
{
    struct http_state *st = hs(c);
    struct op_h1_request *req = &tl_req;
    int r = op_h1_parse_request_resume((const char *)st->hbuf, st->hlen, &st->hscan, req);
    if (r == OP_H1_INCOMPLETE) return;
    if (r == OP_H1_ERROR) {
        fail(c, req->error_status, req->error_reason);
        return;
    }
    OP_STAT_ADD(wstats(c)->requests, 1);
    st->req_start_us = op_now_us();
    op_conn_set_state(c, OP_CS_OPEN);
    st->client_minor = (uint8_t)req->version_minor;
    st->client_keep = req->keep_alive;
    st->head_req = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    st->req_done = false;
    if (req->method.len == 7 && memcmp(req->method.p, "CONNECT", 7) == 0) {
        fail(c, 405, "CONNECT is not supported");
        return;
    }
    const struct op_http_conf *cf = hconf(c);
    /* Only the configured upgrade tokens are relayed. Any other upgrade (h2c, ...) is dropped and the
     * request goes on as a plain one: Upgrade and Connection are hop-by-hop, so without req->upgrade
     * the head written upstream carries neither (RFC 9110 §7.8 lets a server ignore Upgrade). */
    st->upgrade_tok = req->upgrade ? upgrade_allowed(cf, req->upgrade_proto) : NULL;
    if (req->upgrade && !st->upgrade_tok) {
        op_debug("http", "w%d#%u upgrade to '%.*s' removed", op_worker_index(op_conn_worker(c)),
                 op_conn_id(c), (int)req->upgrade_proto.len, req->upgrade_proto.p);
        req->upgrade = false;
    }
    st->upgrade_req = req->upgrade;
    if (st->upgrade_tok && strcmp(st->upgrade_tok, "websocket") == 0) {
        const char *why = NULL;
        if (op_h1_ws_check_request(req, &why) != 0) {
            fail(c, 400, why ? why : "invalid WebSocket handshake");
            return;
        }
    }
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
        route_app(c, req);
        break;
    default:
        fail(c, 404, "no route");
    }
}

_Static_assert(OP_CONN_BUF_SIZE - OP_H1_MAX_HEAD >= 8192, "head buffer too small for a useful receive");

/* Built-in responses are written synchronously; serving a pipelined run of them stops while this much
 * is queued for the client and goes on when the queue drains (on_drained), so a client that sends
 * requests without reading responses is stopped by TCP instead of filling the send queue. */
#define BUILTIN_QUEUE_MAX (64u * 1024u)

/*
 * Serves what is held, one request after another, in this one frame: body bytes of the request in
 * progress, then each complete pipelined head. A request that completes at once (a built-in response)
 * comes back here for the next; one that goes upstream or to the application handler stops the loop
 * until its response is complete (then next_request calls this again). resume: also restart reading
 * the client when the loop ends wanting more bytes. Inside a client receive it is false: the engine
 * re-arms the read itself once the receive is handled, and no read may be armed while the rest of that
 * receive is still to come (see hold()).
 */
static void serve_held(struct op_conn *c, bool resume)
{
    struct http_state *st = hs(c);
    for (;;) {
        refill(c);
        if (st->phase == HP_BODY || st->phase == HP_APP_BODY) {
            if (!st->hlen) break;
            ssize_t used = request_body(c, st->hbuf, st->hlen);
            if (used < 0) return;
            buf_consume(c, &st->hbuf, &st->hlen, (size_t)used);
            continue;
        }
        if (st->phase != HP_HEAD || !st->hlen) break;
        if (op_conn_queued(c, OP_CLI) >= BUILTIN_QUEUE_MAX) {
            op_conn_pause(c, OP_CLI); /* http_drained goes on */
            return;
        }
        uint32_t before = st->hlen;
        process_head(c);
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

static int http_client_data(struct op_conn *c, const uint8_t *p, size_t n)
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
            int rc = hold(c, p, n);
            if (rc < 0) {
                op_warn("http", "w%d#%u cannot hold client bytes: %s", op_worker_index(op_conn_worker(c)),
                        op_conn_id(c), strerror(-rc));
                return rc;
            }
            if (st->phase == HP_HEAD) {
                if (first) op_conn_set_timeout(c, hconf(c)->head_ms);
                serve_held(c, false);
            } else { /* HP_WAIT, HP_APP: pipelined bytes wait for the response in progress */
                op_conn_pause(c, OP_CLI);
            }
            return 0;
        }
        }
    }
    return 0;
}

/* ---- response side ------------------------------------------------------------------------------ */

/* Feeds response-body bytes to the client. `prefix` bytes of response head may be waiting in tl_out:
 * for a TLS client, head and body then go out in one write, so a small response is one record. */
static void forward_resp_body(struct op_conn *c, const uint8_t *p, size_t n, size_t prefix)
{
    struct http_state *st = hs(c);
    size_t used;
    int r;
    if (prefix && op_conn_is_tls(c) && prefix + n <= sizeof(tl_out)) {
        r = op_h1_body_feed(&st->resp_body, (const char *)p, n, &used);
        memcpy(tl_out + prefix, p, used);
        if (op_conn_send(c, OP_CLI, (const uint8_t *)tl_out, prefix + used) < 0) {
            op_conn_close(c, "client queue full");
            return;
        }
    } else {
        if (prefix && op_conn_send(c, OP_CLI, (const uint8_t *)tl_out, prefix) < 0) {
            op_conn_close(c, "client queue full");
            return;
        }
        r = relay_body(c, &st->resp_body, OP_CLI, p, n, &used);
        if (r == RELAY_CLOSED) return;
    }
    if (r == OP_H1_ERROR) {
        op_conn_close(c, "bad response body framing from upstream");
        return;
    }
    if (r == OP_H1_COMPLETE) {
        if (used < n) /* bytes after the end of the response: the upstream is not to be trusted again */
            st->up_keep = false;
        response_done(c);
    }
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
        buf_consume(c, &st->hbuf, &st->hlen, st->hlen);
    }
    if (st->xlen) {
        if (op_conn_send(c, OP_UP, st->xbuf, st->xlen) < 0) {
            op_conn_close(c, "upstream queue full");
            return;
        }
        buf_consume(c, &st->xbuf, &st->xlen, st->xlen);
    }
    if (st->rbuf) buf_consume(c, &st->rbuf, &st->rlen, st->rlen);
    op_conn_tunnel(c, op_worker_timeouts(op_conn_worker(c))->tunnel_idle_ms);
}

/*
 * Response heads are parsed in place in the receive buffer; only a head split across receives is
 * collected in rbuf. The view being parsed is (v, vn); when it is rbuf, (t, tn) are the bytes of this
 * receive that did not fit and follow it.
 */
static int http_upstream_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    if (st->phase != HP_WAIT && st->phase != HP_BODY) {
        /* Bytes from an idle upstream (no request outstanding): it is broken; drop it. */
        op_conn_drop_upstream(c);
        st->up_addr = NULL;
        return 0;
    }
    op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->idle_ms);
    if (st->resp_head_done) {
        forward_resp_body(c, p, n, 0);
        return 0;
    }
    const uint8_t *v = p, *t = NULL;
    size_t vn = n, tn = 0;
    if (st->rlen) {
        size_t take = OP_MIN(n, (size_t)(OP_CONN_BUF_SIZE - st->rlen));
        if (buf_append(c, &st->rbuf, &st->rlen, p, take) < 0) {
            fail(c, 502, "upstream response head too large");
            return 0;
        }
        v = st->rbuf, vn = st->rlen, t = p + take, tn = n - take;
    }
    for (;;) {
        struct op_h1_response *resp = &tl_resp;
        int r = op_h1_parse_response((const char *)v, vn, st->head_req, resp);
        if (r == OP_H1_INCOMPLETE) {
            if (v == st->rbuf && tn) { /* cannot happen: a full rbuf always parses or fails */
                fail(c, 502, "upstream response head too large");
            } else if (v != st->rbuf && buf_append(c, &st->rbuf, &st->rlen, v, vn) < 0) {
                fail(c, 502, "upstream response head too large");
            }
            return 0;
        }
        if (r == OP_H1_ERROR) {
            op_warn("http", "invalid response from upstream: %s", resp->error_reason);
            fail(c, 502, "invalid response from upstream");
            return 0;
        }
        size_t head_len = resp->head_len;
        if (resp->status == 101) {
            if (!st->upgrade_req) {
                fail(c, 502, "upstream switched protocols without an upgrade request");
                return 0;
            }
            const struct op_h1_header *uh = op_h1_find_header(resp->headers, resp->nheaders, "Upgrade");
            if (!uh || strlen(st->upgrade_tok) != uh->value.len ||
                strncasecmp(uh->value.p, st->upgrade_tok, uh->value.len) != 0) {
                fail(c, 502, "upstream switched to a protocol other than the one requested");
                return 0;
            }
            ssize_t hn = op_h1_write_response_head(resp, st->client_minor, false, hconf(c)->resp_extra,
                                                   tl_out, sizeof(tl_out));
            if (hn < 0 || op_conn_send(c, OP_CLI, (const uint8_t *)tl_out, (size_t)hn) < 0) {
                fail(c, 502, "upstream response head too large");
                return 0;
            }
            st->resp_started = true;
            start_tunnel(c, v + head_len, vn - head_len, t, tn);
            return 0;
        }
        if (resp->status >= 100 && resp->status < 200) { /* interim response: pass it on as is */
            if (op_conn_send(c, OP_CLI, v, head_len) < 0) {
                op_conn_close(c, "client queue full");
                return 0;
            }
            if (v == st->rbuf) {
                buf_consume(c, &st->rbuf, &st->rlen, head_len);
                if (st->rlen)
                    v = st->rbuf, vn = st->rlen;
                else
                    v = t, vn = tn, t = NULL, tn = 0;
            } else {
                v += head_len, vn -= head_len;
            }
            if (!vn) return 0;
            continue;
        }
        st->resp_head_done = true;
        st->resp_started = true;
        st->up_keep = resp->keep_alive;
        if (resp->framing == OP_H1_BODY_UNTIL_CLOSE ||
            (st->client_minor == 0 && resp->framing == OP_H1_BODY_CHUNKED))
            st->client_keep = false; /* the end of the body is marked by closing */
        bool close = !st->client_keep || op_conn_draining(c) || st->client_eof;
        if (close) st->client_keep = false;
        count_status(c, resp->status);
        ssize_t hn = op_h1_write_response_head(resp, st->client_minor, close, hconf(c)->resp_extra, tl_out,
                                               sizeof(tl_out));
        bool body_here = resp->framing != OP_H1_BODY_NONE && vn > head_len;
        if (hn < 0 || (!body_here && op_conn_send(c, OP_CLI, (const uint8_t *)tl_out, (size_t)hn) < 0)) {
            fail(c, 502, "upstream response head too large");
            return 0;
        }
        op_h1_body_init(&st->resp_body, resp->framing, resp->content_length);
        op_conn_set_state(c, OP_CS_RELAY);
        if (resp->framing == OP_H1_BODY_NONE) {
            if (vn > head_len || tn)
                st->up_keep = false; /* bytes after a complete response: not to be trusted again */
            response_done(c);
            return 0;
        }
        /* The rest is body: forward it (zero-copy when it is still in the receive buffer). A buffered
         * head is detached first, since finishing the response may reuse rbuf. */
        uint8_t *rb = v == st->rbuf ? st->rbuf : NULL;
        if (rb) st->rbuf = NULL, st->rlen = 0;
        if (body_here) forward_resp_body(c, v + head_len, vn - head_len, (size_t)hn); /* head goes with it */
        if (tn && st->resp_head_done && !st->resp_done && op_conn_state(c) != OP_CS_CLOSING)
            forward_resp_body(c, t, tn, 0);
        else if (tn)
            st->up_keep = false;
        op_conn_buf_put(c, rb);
        return 0;
    }
}

/* ---- events ---------------------------------------------------------------------------------------- */

static void http_open(struct op_conn *c)
{
    struct http_state *st = hs(c);
    memset(st, 0, sizeof(*st));
    st->phase = HP_HEAD;
    op_conn_set_state(c, OP_CS_OPEN);
    op_conn_set_timeout(c, hconf(c)->head_ms);
}

static void http_connected(struct op_conn *c, int err)
{
    struct http_state *st = hs(c);
    if (err < 0) {
        op_warn("http", "upstream connect failed: %s", strerror(-err));
        st->up_addr = NULL;
        fail(c, 502, "upstream connect failed");
        return;
    }
    op_conn_set_state(c, OP_CS_RELAY);
    op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->idle_ms);
}

static void http_eof(struct op_conn *c, enum op_side side)
{
    struct http_state *st = hs(c);
    if (side == OP_CLI) {
        st->client_eof = true;
        if (st->phase == HP_HEAD && st->hlen == 0)
            op_conn_close(c, "client closed");
        else if (st->phase == HP_HEAD || st->phase == HP_BODY || st->phase == HP_APP_BODY)
            op_conn_close(c, "client closed mid-request");
        /* HP_WAIT / HP_APP: let the response go out, then close (next_request sees client_eof). */
        return;
    }
    if (st->phase == HP_WAIT || st->phase == HP_BODY) {
        if (st->resp_head_done && st->resp_body.framing == OP_H1_BODY_UNTIL_CLOSE) {
            st->up_keep = false;
            st->client_keep = false;
            response_done(c);
        } else if (!st->resp_started) {
            st->up_addr = NULL;
            fail(c, 502, "upstream closed the connection without a response");
        } else {
            op_conn_finish(c); /* truncated response: the client sees the connection close */
            st->phase = HP_DONE;
        }
        return;
    }
    /* Idle upstream closed its keep-alive connection: forget it. */
    op_conn_drop_upstream(c);
    st->up_addr = NULL;
}

static void http_timeout(struct op_conn *c)
{
    struct http_state *st = hs(c);
    OP_STAT_ADD(op_worker_stats(op_conn_worker(c))->timeouts, 1);
    switch (st->phase) {
    case HP_HEAD:
        if (st->hlen == 0)
            op_conn_close(c, "keep-alive timeout");
        else
            fail(c, 408, "request head timeout");
        break;
    case HP_BODY:
    case HP_APP_BODY:
        fail(c, 408, "request body timeout");
        break;
    case HP_WAIT:
        if (op_conn_state(c) == OP_CS_CONNECT)
            fail(c, 504, "upstream connect timeout");
        else if (!st->resp_started)
            fail(c, 504, "upstream response timeout");
        else
            op_conn_close(c, "upstream idle timeout");
        break;
    default:
        op_conn_close(c, "timeout");
    }
}

static void http_drain(struct op_conn *c)
{
    struct http_state *st = hs(c);
    if (st->phase == HP_HEAD && st->hlen == 0) op_conn_close(c, "draining");
}

/* Sends what fits of an application response body; the rest follows as the client queue drains. */
static void app_resp_pump(struct op_conn *c)
{
    struct http_state *st = hs(c);
    struct op_app_job *job = st->job;
    size_t blen = st->head_req ? 0 : job->resp.body_len;
    while (job->body_have < blen && op_conn_queued(c, OP_CLI) < 128 * 1024) {
        size_t k = OP_MIN(blen - job->body_have, (size_t)16 * 1024);
        if (op_conn_send(c, OP_CLI, (const uint8_t *)job->resp.body + job->body_have, k) < 0) {
            op_conn_close(c, "client send queue full");
            return;
        }
        job->body_have += k;
    }
    if (job->body_have < blen) return;
    st->job = NULL;
    op_app_job_free(job);
    next_request(c);
}

static void http_message(struct op_conn *c, void *msg)
{
    struct http_state *st = hs(c);
    struct op_app_job *job = msg;
    if (st->job != job || st->phase != HP_APP) {
        op_app_job_free(job);
        return;
    }
    struct op_app_response *r = &job->resp;
    bool close = !st->client_keep || op_conn_draining(c) || st->client_eof;
    if (close) st->client_keep = false;
    int status = r->status ? r->status : 200;
    const char *extra2 = hconf(c)->resp_extra;
    int n = snprintf(
        tl_out, sizeof(tl_out), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%.*s%s\r\n",
        status, op_h1_reason(status), r->content_type ? r->content_type : "application/json", r->body_len,
        close ? "Connection: close\r\n" : "", (int)r->headers_len, r->headers, extra2 ? extra2 : "");
    count_status(c, status);
    if (n < 0 || (size_t)n >= sizeof(tl_out) ||
        op_conn_send(c, OP_CLI, (const uint8_t *)tl_out, (size_t)n) < 0) {
        op_conn_close(c, "response head too large");
        return; /* http_close frees the job */
    }
    st->resp_started = true;
    st->phase = HP_WAIT;
    st->resp_head_done = true;
    job->body_have = 0; /* reused as the response body offset */
    app_resp_pump(c);
}

static void http_drained(struct op_conn *c, enum op_side side)
{
    struct http_state *st = hs(c);
    if (side != OP_CLI) return;
    if (st->job && st->phase == HP_WAIT)
        app_resp_pump(c);
    else if (st->phase == HP_HEAD && st->hlen) /* built-in responses stopped by a full queue */
        serve_held(c, true);
}

static void http_close(struct op_conn *c)
{
    struct http_state *st = hs(c);
    if (st->hbuf) op_conn_buf_put(c, st->hbuf);
    if (st->xbuf) op_conn_buf_put(c, st->xbuf);
    if (st->rbuf) op_conn_buf_put(c, st->rbuf);
    st->hbuf = st->xbuf = st->rbuf = NULL;
    st->hlen = st->xlen = st->rlen = 0;
    if (st->job && st->phase != HP_APP)
        op_app_job_free(st->job); /* not submitted, or already back from the control thread: ours */
    st->job = NULL;               /* a submitted job comes back and is freed by the poster */
}

const struct op_proto_ops op_proto_http = {
    .name = "http",
    .worker_state_size = sizeof(struct op_http_stats),
    .state_size = sizeof(struct http_state),
    /* An incomplete head (< OP_H1_MAX_HEAD) plus what one receive yields fits the hold (see hold()). */
    .max_recv = OP_CONN_BUF_SIZE - OP_H1_MAX_HEAD,
    .on_open = http_open,
    .on_client_data = http_client_data,
    .on_upstream_data = http_upstream_data,
    .on_upstream_connected = http_connected,
    .on_eof = http_eof,
    .on_timeout = http_timeout,
    .on_drain = http_drain,
    .on_message = http_message,
    .on_drained = http_drained,
    .on_close = http_close,
};
