/*
 * http/proxy_int.h — what the files of the HTTP protocol share (http/proxy*.c only; the protocol's
 * interface is http/proxy.h).
 *
 *   proxy.c           per-connection state, held client bytes, responses we write ourselves, the end of
 *                     a request, the engine's events
 *   proxy_request.c   client bytes: heads parsed and routed, bodies forwarded or collected, the loop that
 *                     serves pipelined requests
 *   proxy_response.c  upstream bytes: response heads and bodies; application responses
 *   proxy_upgrade.c   Upgrade: which tokens are relayed, the check of a 101, the switch to the tunnel
 *
 * Functions here follow core/common.h's return conventions; the ones that answer the client themselves
 * (http_fail, http_upgrade_request) say so.
 */
#ifndef OP_HTTP_PROXY_INT_H
#define OP_HTTP_PROXY_INT_H

#include "http/proxy.h"

/* Where a connection's current request is. Printable with http_phase_str() (names next to the enum). */
enum http_phase {
    HP_HEAD = 0, /* reading a request head (or idle between requests) */
    HP_BODY,     /* forwarding a request body to the upstream */
    HP_WAIT,     /* request sent; relaying the response */
    HP_APP_BODY, /* collecting a body for the application handler */
    HP_APP,      /* the application handler has the request */
    HP_DONE,     /* an error response is going out; the connection closes after it */
};
#define HTTP_PHASE_NAMES                                                                                     \
    {                                                                                                        \
        "head", "body", "wait", "app-body", "app", "done"                                                    \
    }
const char *http_phase_str(unsigned phase);

struct http_state {
    uint8_t phase; /* enum http_phase */
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

static inline struct http_state *hs(struct op_conn *c)
{
    return op_conn_proto_state(c);
}
static inline const struct op_http_conf *hconf(struct op_conn *c)
{
    return op_conn_proto_ctx(c);
}

/* Scratch for one head we write (a request head, a response head, a whole error response) and, on the
 * response path, the first body bytes that go out in the same write. One per worker thread. Contract:
 * a function that writes it sends what it wrote before it returns, and passes its length explicitly to
 * any helper that finishes the write (send_head_with_body); nothing in it survives a call to another
 * function that writes it. */
#define HTTP_OUT_SIZE (OP_H1_MAX_HEAD + 4096)
extern _Thread_local char http_out[HTTP_OUT_SIZE];

/* ---- held client bytes (proxy.c) ------------------------------------------------------------------ */

/* Appends to a pool buffer (taken on first use): 0, -ENOBUFS (pool empty) or -ENOSPC (buffer full). */
OP_MUST_USE int http_buf_append(struct op_conn *c, uint8_t **buf, uint32_t *len, const uint8_t *p, size_t n);
/* Drops the first n bytes; the buffer goes back to the pool when it empties. */
void http_buf_consume(struct op_conn *c, uint8_t **buf, uint32_t *len, size_t n);
OP_MUST_USE int http_hold(struct op_conn *c, const uint8_t *p, size_t n);
void http_refill(struct op_conn *c);

/* ---- responses we write, the end of a request (proxy.c) -------------------------------------------- */

struct op_http_stats *http_wstats(struct op_conn *c);
void http_count_status(struct op_conn *c, int status);
OP_MUST_USE int http_write_simple(struct op_conn *c, int status, const char *ctype, const char *body,
                                  size_t blen, bool close, const char *extra1);
void http_fail(struct op_conn *c, int status, const char *why);
void http_observe_request(struct op_conn *c);
bool http_end_request(struct op_conn *c);
void http_next_request(struct op_conn *c);
void http_response_done(struct op_conn *c);

/* Feeds body bytes through tracker b and forwards those that belong to the message to side `to`.
 * Returns the tracker's verdict (enum op_h1_result: the caller needs its three outcomes, so this is not
 * 0/-errno), or HTTP_RELAY_CLOSED when the send queue refused the bytes (the connection is then closed). */
#define HTTP_RELAY_CLOSED (OP_H1_ERROR - 1)
OP_MUST_USE int http_relay_body(struct op_conn *c, struct op_h1_body *b, enum op_side to, const uint8_t *p,
                                size_t n, size_t *used);

/* ---- request path (proxy_request.c) --------------------------------------------------------------- */

int http_client_data(struct op_conn *c, const uint8_t *p, size_t n);
void http_serve_held(struct op_conn *c, bool resume);

/* ---- response path (proxy_response.c) ------------------------------------------------------------- */

int http_upstream_data(struct op_conn *c, const uint8_t *p, size_t n);
void http_message(struct op_conn *c, void *msg);
void http_app_resp_pump(struct op_conn *c);

/* ---- upgrades (proxy_upgrade.c) ------------------------------------------------------------------- */

extern const char *const http_default_upgrade_tokens[];
/* Decides what becomes of a parsed request's upgrade: a relayed token is remembered (st->upgrade_tok),
 * any other is removed (req->upgrade cleared, so the head written upstream carries neither Upgrade nor
 * the "upgrade" Connection option). 0 to go on, or -EINVAL when a WebSocket handshake is invalid: the
 * client has then been answered 400 (http_fail). */
OP_MUST_USE int http_upgrade_request(struct op_conn *c, struct op_h1_request *req);
/* The upstream answered 101 to the request in progress: switch to the tunnel, or answer 502 when the
 * request asked for no upgrade or for another token. (a, an) and (b, bn) are what the upstream sent
 * after the head (buffered, then just received). */
void http_switch_protocols(struct op_conn *c, const struct op_h1_response *resp, const uint8_t *a, size_t an,
                           const uint8_t *b, size_t bn);

#endif
