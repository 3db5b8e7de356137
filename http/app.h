/*
 * http/app.h — application handlers: code that answers whole HTTP requests itself (the primary's API,
 * the CLI-facing endpoints) instead of relaying them.
 *
 * The engine's worker reads the complete request (head and body, body capped by the route's limit),
 * hands it to the control thread, and the handler runs THERE: it may block (SQLite, libcurl). The worker
 * never waits; it writes the response when the control thread posts it back.
 *
 * A handler that must wait for something slow (a call to another server) without holding the control
 * thread defers its answer: op_app_defer() while it runs, then op_app_finish() from any thread once resp
 * is filled. The request (spans, body) stays valid until op_app_finish.
 */
#ifndef OP_HTTP_APP_H
#define OP_HTTP_APP_H

#include <stddef.h>

#include "core/common.h"

struct op_app_header {
    op_span_t name;
    op_span_t value;
};

struct op_app_request {
    op_span_t method;
    op_span_t path;  /* target without the query string, not percent-decoded */
    op_span_t query; /* after '?', empty if none */
    op_span_t host;  /* Host header */
    op_span_t body;
    const struct op_app_header *headers;
    int nheaders;
    size_t body_dropped;   /* the body's length when the route asked for the head only (op_route) */
    const char *remote_ip; /* NUL-terminated */
    bool tls;              /* the client connection is TLS */
};

struct op_app_response {
    int status;               /* default 200 */
    const char *content_type; /* static string; default "application/json" */
    char headers[8192];       /* extra header lines, each "Name: value\r\n" */
    size_t headers_len;
    char *body; /* malloc'd by the handler (or NULL); the engine frees it */
    size_t body_len;
    /* A handler that authorized the request instead of answering it sets grant (NUL-terminated) and no
     * body: the worker routes the same request again with op_route.granted = grant (http/proxy.h) and goes
     * on as that route says. Only for requests without a body. */
    char grant[128];
};

/* Runs on the control thread. Must always fill resp (status and body). */
typedef void (*op_app_handler_fn)(void *ctx, const struct op_app_request *req, struct op_app_response *resp);

/* Defers the answer of the request whose resp this is (only inside the handler, on the control thread; only
 * for requests that came through an op_app_queue). When the handler returns, nothing is sent yet; the
 * handle's owner fills resp (status, body, headers or grant) and calls op_app_finish exactly once, from any
 * thread, which posts the response to the worker. A client that went away meanwhile is no error: the
 * worker frees the job. After op_app_queue_stop (engine shutdown) op_app_finish frees the job instead.
 * Never NULL. */
struct op_app_defer;
struct op_app_defer *op_app_defer(struct op_app_response *resp);
/* The response and the request of a deferred job (valid until op_app_finish). */
struct op_app_response *op_app_defer_resp(struct op_app_defer *d);
const struct op_app_request *op_app_defer_req(struct op_app_defer *d);
/* Posts the deferred response to its worker (thread-safe; once per handle; d is gone afterwards). */
void op_app_finish(struct op_app_defer *d);

/* Header lookup, case-insensitive; returns NULL if absent. */
const struct op_app_header *op_app_find_header(const struct op_app_request *req, const char *name);
/* Appends "name: value\r\n" to resp->headers; returns 0 or -ENOSPC. */
int op_app_add_header(struct op_app_response *resp, const char *name, const char *value);
/* Sets resp->body to a copy of the NUL-terminated JSON text (or any text) and the status. */
void op_app_respond(struct op_app_response *resp, int status, const char *body);

#endif
