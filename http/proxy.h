/*
 * http/proxy.h — the "http" protocol for the engine: HTTP/1.1 reverse proxying with per-request
 * routing.
 *
 * Every request head on a connection is parsed and validated (http/h1.h) and routed on its own. Body
 * framing is tracked both ways, so a pipelined second request never rides to the first request's
 * upstream and the connection returns to reading heads only after the response is complete. A route is
 * one of: relay to an upstream address, answer from a built-in responder, or hand the whole request to
 * an application handler on the control thread (http/app.h). An `Upgrade` request for one of the
 * configured tokens (op_http_conf.upgrade_tokens) switches the connection to the engine's byte tunnel
 * once the upstream answers 101 with the same token; other upgrades are removed from the request.
 */
#ifndef OP_HTTP_PROXY_H
#define OP_HTTP_PROXY_H

#include "core/engine.h"
#include "core/tcp.h"
#include "http/app.h"
#include "http/app_queue.h"
#include "http/h1.h"

enum op_route_kind {
    OP_ROUTE_UPSTREAM = 1, /* relay to addr */
    OP_ROUTE_RESPOND,      /* answer status/body now */
    OP_ROUTE_APP,          /* hand to the application handler on the control thread */
    OP_ROUTE_HANDOFF,      /* the connection leaves HTTP: handoff() takes it over (an Upgrade to a protocol
                              the role runs in the engine itself) */
};

struct op_route {
    enum op_route_kind kind;
    /* UPSTREAM: must stay valid while the connection may use it (point into a route table). */
    const struct sockaddr *addr;
    socklen_t addrlen;
    /* RESPOND: body is copied before the route function's caller returns. */
    int status;
    const char *content_type;
    const char *body;
    size_t body_len;
    char extra[512]; /* extra header lines, each ending CRLF */
    /* UPSTREAM through a dialer (addr NULL, dial set): the upstream leg is not a TCP connect but a socket
     * the route's owner provides (an agent stream of a workspace). When the connection has no reusable leg
     * (see up_key), dial(dial_ctx, c) is called on the worker and must return at once: 0 when it will
     * call op_conn_attach_upstream(c, fd) (completion through on_upstream_connected, as for a connect) or
     * op_http_dial_failed(c, status, msg) later on this worker, or <0 (answered 502). The connect timeout
     * runs meanwhile. dial_ctx must stay valid until then (and as long as the connection lives when
     * dial_msg is set). op_http_dial_failed may also be called inside dial(). */
    int (*dial)(void *ctx, struct op_conn *c);
    void *dial_ctx;
    /* Optional, for a dialer that completes through a message to the connection (op_worker_deliver, e.g.
     * a parked socket handed over from another worker): every message delivered to the connection that
     * is not HTTP's own goes to dial_msg(dial_ctx, c, msg, waiting) of the connection's latest dial route.
     * waiting: the connection still waits for that dial (the dialer attaches or fails it now); false: the
     * wait is over (timeout, failure), the dialer must not attach and keeps what it sent (the socket goes
     * back). HTTP never frees such a message. */
    void (*dial_msg)(void *ctx, struct op_conn *c, void *msg, bool waiting);
    /* Optional: called once, on the worker, when the connection stops waiting for a dial that neither
     * attached nor failed (connect timeout, client gone, connection closed), so the dialer forgets c
     * (leaves a wait queue). Not called after op_conn_attach_upstream or op_http_dial_failed. */
    void (*dial_cancel)(void *ctx, struct op_conn *c);
    /* An open upstream leg is kept for the next request only when that request's route has the same
     * non-zero up_key (dial routes; address routes compare addresses). Different users, workspaces or
     * targets must have different keys, so that no response ever reaches another user's request. */
    uint64_t up_key;
    /* Written to a new upstream leg once it is attached, before the first request head (an agent
     * stream's "OPEN host:port\n"). With preamble_ok, the leg must then answer one line before anything
     * else: "OK\n" lets the request head go; "ERR <code> <reason>\n" (or a close) is answered 502 with
     * the reason, or the line longer than 512 bytes. Nothing of the request reaches the leg before OK. */
    char preamble[520];
    size_t preamble_len;
    bool preamble_ok;
    /* Optional, with preamble_ok: the body of the 502 for a refused preamble (an ERR answer, a close, a
     * line too long) instead of the JSON {"message": msg}. err_page(err_page_ctx, status, msg, out, outlen)
     * writes a whole text/html page into out (msg is plain text, printable ASCII, e.g. "The agent could
     * not connect: connection refused"; the callee escapes it) and returns its length (< outlen; 0: the
     * JSON answer). Called on the worker; err_page_ctx must stay valid as long as the connection. */
    size_t (*err_page)(void *ctx, int status, const char *msg, char *out, size_t outlen);
    void *err_page_ctx;
    /* Request head rewriting for this request (all optional):
     * strip_prefix: bytes removed from the start of the request path (the base path of a path app; the
     *   path keeps its leading '/', the query is kept);
     * drop_cookies: names removed from every Cookie header (NULL-terminated; a name ending in '*' is a
     *   prefix); a Cookie header left empty is dropped; read only before the route function's caller
     *   returns (the head is written then, also when it waits for a dialled leg);
     * path_prefix: path_prefix_len bytes ("/sub", the path of an app's URL) put before the path left, joined
     *   with one '/' (op_h1_req_opts); read only before the route function's caller returns, like
     * drop_cookies; req_extra: header lines added to the forwarded head (each ending CRLF), after
     * X-Forwarded-*. */
    size_t strip_prefix;
    const char *path_prefix;
    size_t path_prefix_len;
    const char *const *drop_cookies;
    /* drop_query: query parameter names removed from the target (exact; a credential meant for us, e.g.
     * a signed token in the URL); read only before the route function's caller returns, like
     * drop_cookies. */
    const char *const *drop_query;
    const char *const *drop_headers; /* header names not forwarded (case-insensitive), like drop_cookies */
    char req_extra[512];
    /* Response head rewriting: OP_ROUTE_RESP_NO_CORS drops the upstream's Access-Control-Allow-Origin,
     * -Credentials, -Methods, -Headers and removes Origin, Access-Control-Request-Method(s) and
     * Access-Control-Request-Headers from Vary (a Vary left empty is dropped). resp_extra: header lines
     * added to the response (each ending CRLF). */
    unsigned resp_flags;
    char resp_extra[512];
    /* HANDOFF: called once, on the worker, after HTTP released what it held for the connection, with the
     * parsed request and the client bytes that followed its head (both valid during the call only). It
     * switches the connection to its own protocol (op_conn_set_proto) and answers, or closes it. Only for
     * requests without a body (others get 400). */
    void (*handoff)(void *ctx, struct op_conn *c, const struct op_h1_request *req, const uint8_t *rest,
                    size_t n);
    void *handoff_ctx;
    /* Set (not zeroed) before the route function runs again for a request that the application handler
     * authorized (op_app_response.grant): the handler's grant text, NULL on a first routing. The route
     * may then send the request upstream (UPSTREAM) or answer it (RESPOND); OP_ROUTE_APP and HANDOFF are
     * answered 500. */
    const char *granted;
    /* APP: the handler needs the head only (the slow path of workspace apps, which answers with a redirect
     * the client repeats with its body): a Content-Length body of any size is read and dropped instead of
     * collected (no max_app_body limit); the handler sees an empty body and op_app_request.body_dropped. */
    bool app_head_only;
};
#define OP_HTTP_MAX_DROPPED_BODY (1ull << 32) /* a larger body for a head-only handler is a 413 */

#define OP_ROUTE_RESP_NO_CORS 1u

/* A dialer's failure (see op_route.dial): answers status with the body (copied; content_type a static
 * string, e.g. an HTML error page) and closes the connection. Worker thread of c, inside dial() or later;
 * does nothing when c is not waiting for a dial. */
void op_http_dial_failed(struct op_conn *c, int status, const char *content_type, const char *body,
                         size_t len);

/* Picks the route for a parsed request (worker thread; must not block). out is zeroed beforehand, except
 * granted (see op_route.granted). */
typedef void (*op_route_fn)(void *ctx, struct op_conn *c, const struct op_h1_request *req,
                            struct op_route *out);

struct op_http_conf {
    const struct op_tcp_route *static_upstream; /* used when route is NULL */
    op_route_fn route;
    void *route_ctx;
    /* OP_ROUTE_APP: the handler, and how a job reaches the control thread (runner/runner.c). */
    op_app_handler_fn app;
    void *app_ctx;
    void (*app_submit)(void *ctx, struct op_app_job *job);
    void *app_submit_ctx;
    size_t max_app_body;    /* bytes; larger bodies get 413 (default 1 MiB) */
    uint32_t head_ms;       /* a request head must be complete this long after its first byte (10 s) */
    uint32_t keepalive_ms;  /* an idle keep-alive connection is closed after this long (60 s) */
    const char *resp_extra; /* header lines added to every response we write (e.g. version headers) */
    /* Upgrade tokens relayed to an upstream (NULL-terminated; default {"websocket"}; NULL = default).
     * A request whose Upgrade value is not exactly one of them is forwarded as a plain request, without
     * Upgrade and without the "upgrade" Connection option; "websocket" requests must also pass the
     * handshake checks (400). A 101 whose Upgrade differs from the request's gets 502, no tunnel. */
    const char *const *upgrade_tokens;
};

void op_http_conf_init(struct op_http_conf *conf);

extern const struct op_proto_ops op_proto_http;

/* The HTTP protocol's per-worker counters: written only by their worker (OP_STAT_ADD), summed by readers
 * with relaxed loads. Request durations run from a parsed head to the complete response, in buckets that
 * are not cumulative: req_dur[i] counts durations <= op_http_dur_bounds_us[i] and > the previous bound,
 * the last bucket is +Inf. */
#define OP_HTTP_DUR_BUCKETS 15 /* 14 bounds + Inf */
extern const uint64_t op_http_dur_bounds_us[OP_HTTP_DUR_BUCKETS - 1];
struct op_http_stats {
    _Atomic uint64_t requests, responses_4xx, responses_5xx;
    _Atomic uint64_t req_dur[OP_HTTP_DUR_BUCKETS], req_dur_sum_us, req_dur_count;
};
/* Worker `worker`'s HTTP counters, or NULL when no listener of e speaks HTTP. Any thread. */
const struct op_http_stats *op_http_worker_stats(const struct op_engine *e, int worker);

#endif
