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
 *   proxy_dial.c      a new upstream leg that is dialled or gets a preamble: the request head held
 *                     until the leg is ready (attached, preamble sent, "OK" read); the dialer's messages
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
    HP_DIAL,     /* the request head waits for a new leg: the dialer, the connect or the preamble's answer */
    HP_DONE,     /* an error response is going out; the connection closes after it */
};
#define HTTP_PHASE_NAMES                                                                                     \
    {                                                                                                        \
        "head", "body", "wait", "app-body", "app", "dial", "done"                                            \
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
    struct op_h1_scan hscan;        /* where the scan of the request head in hbuf stopped */
    const struct sockaddr *up_addr; /* the open leg was connected to this (address routes) */
    socklen_t up_addrlen;
    uint64_t up_key;        /* the open leg came from a dial route with this key (0: none) */
    struct http_dbuf *dbuf; /* the route's held head, preamble and response lines (pool buffer) or NULL */
    uint8_t resp_flags;     /* the route's OP_ROUTE_RESP_* for the response in progress */
    bool dialing;           /* waiting for the dialer: op_conn_attach_upstream or op_http_dial_failed */
    bool await_ok;          /* the preamble is out: waiting for the leg's answer line */
    /* The connection's latest dial route's callbacks (messages may come after the request). */
    void (*dial_msg)(void *ctx, struct op_conn *c, void *msg, bool waiting);
    void (*dial_cancel)(void *ctx, struct op_conn *c);
    void *dial_ctx;
    /* The route's page for a refused preamble (op_route.err_page), NULL: JSON. */
    size_t (*err_page)(void *ctx, int status, const char *msg, char *out, size_t outlen);
    void *err_page_ctx;
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

/* What a request through a new dialled (or preambled) leg keeps until the leg is ready, and the route's
 * response lines. Lives in a pool buffer (OP_CONN_BUF_SIZE), taken only by routes that need it. */
#define HTTP_ANSWER_MAX 512 /* the leg's answer line to a preamble, without its LF */
struct http_dbuf {
    char resp_extra[sizeof(((struct op_route *)0)->resp_extra)]; /* NUL-terminated */
    char preamble[sizeof(((struct op_route *)0)->preamble)];
    uint32_t preamble_len, line_len, head_len;
    char line[HTTP_ANSWER_MAX + 1];
    char head[]; /* the rewritten request head, sent once the leg is ready */
};
#define HTTP_DBUF_HEAD_CAP (OP_CONN_BUF_SIZE - offsetof(struct http_dbuf, head))

/* The open leg is not to be reused (it is gone, or closing). */
static inline void http_forget_leg(struct http_state *st)
{
    st->up_addr = NULL;
    st->up_key = 0;
}

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
/* http_fail with a body of the caller's (copied; ctype a static string). */
void http_fail_body(struct op_conn *c, int status, const char *ctype, const char *body, size_t len);
/* The route's response rewriting for the response in progress (conf resp_extra, the route's). */
struct op_h1_resp_opts http_resp_opts(struct op_conn *c);
void http_dbuf_release(struct op_conn *c);
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
/* The application handler granted the request of job instead of answering it (op_app_response.grant):
 * routes it again with op_route.granted and goes on as that route says. Frees job. */
void http_reroute(struct op_conn *c, struct op_app_job *job);
void http_serve_held(struct op_conn *c, bool resume);

/* ---- response path (proxy_response.c) ------------------------------------------------------------- */

int http_upstream_data(struct op_conn *c, const uint8_t *p, size_t n);
void http_message(struct op_conn *c, void *msg);
void http_app_resp_pump(struct op_conn *c);

/* ---- dialled legs and preambles (proxy_dial.c) ------------------------------------------------------ */

/* A new leg for a route with dial or a preamble: the head (already written into st->dbuf) waits in
 * HP_DIAL; dials or connects. Answers the client itself on failure. */
void http_dial_start(struct op_conn *c, const struct op_route *rt);
/* The leg is connected/attached (err 0): preamble, then the held head or the wait for the answer. */
void http_leg_ready(struct op_conn *c);
/* Upstream bytes in HP_DIAL: the answer line. */
int http_dial_answer(struct op_conn *c, const uint8_t *p, size_t n);
/* The connection stops waiting for its dialer without a result: tells the dialer (dial_cancel). */
void http_dial_abandon(struct op_conn *c);

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
