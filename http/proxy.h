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
    /* HANDOFF: called once, on the worker, after HTTP released what it held for the connection, with the
     * parsed request and the client bytes that followed its head (both valid during the call only). It
     * switches the connection to its own protocol (op_conn_set_proto) and answers, or closes it. Only for
     * requests without a body (others get 400). */
    void (*handoff)(void *ctx, struct op_conn *c, const struct op_h1_request *req, const uint8_t *rest,
                    size_t n);
    void *handoff_ctx;
};

/* Picks the route for a parsed request (worker thread; must not block). out is zeroed beforehand. */
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
