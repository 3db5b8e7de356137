/*
 * http/proxy.c — HTTP/1.1 reverse proxy protocol (see http/proxy.h): the per-connection state, the
 * client bytes it holds, the responses it writes itself, the end of a request, and the engine's events.
 * The request path is in proxy_request.c, the response path in proxy_response.c, upgrades in
 * proxy_upgrade.c (proxy_int.h says what they share).
 *
 * Client bytes that are not body bytes of the request in progress are held in `hbuf` (a pool buffer
 * held only while there are unprocessed bytes), and what does not fit there in `xbuf` (see http_hold()).
 * Pipelined requests wait there, and the client is not read while they do (back-pressure): they are
 * served one at a time, in order, each when the previous response is complete, by one loop
 * (http_serve_held) that never recurses. Upstream response heads are collected in `rbuf` the same way.
 * Bodies are never buffered: the body trackers say how many of the bytes just received belong to the
 * current message and those are sent on at once; the engine's backpressure (a side is read only while
 * the other side's queue has room) bounds memory.
 */
#include "http/proxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

_Thread_local char http_out[HTTP_OUT_SIZE];

static const char *const phase_names[] = HTTP_PHASE_NAMES;
_Static_assert(OP_ARRAY_LEN(phase_names) == HP_DONE + 1, "a phase without a name");

const char *http_phase_str(unsigned phase)
{
    return phase < OP_ARRAY_LEN(phase_names) ? phase_names[phase] : "?";
}

void op_http_conf_init(struct op_http_conf *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->max_app_body = 1u << 20;
    conf->head_ms = 10000;
    conf->keepalive_ms = 60000;
    conf->upgrade_tokens = http_default_upgrade_tokens;
}

const uint64_t op_http_dur_bounds_us[OP_HTTP_DUR_BUCKETS - 1] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

/* This worker's HTTP counters (the protocol's per-worker state; this worker is their only writer). */
struct op_http_stats *http_wstats(struct op_conn *c)
{
    return op_worker_proto_state(op_conn_worker(c), &op_proto_http);
}

const struct op_http_stats *op_http_worker_stats(const struct op_engine *e, int worker)
{
    return op_engine_proto_state(e, worker, &op_proto_http);
}

/* ---- held client bytes --------------------------------------------------------------------------------- */

int http_buf_append(struct op_conn *c, uint8_t **buf, uint32_t *len, const uint8_t *p, size_t n)
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

void http_buf_consume(struct op_conn *c, uint8_t **buf, uint32_t *len, size_t n)
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
 * hbuf fills first; xbuf takes what does not fit, and http_refill() moves it up as hbuf empties, so hbuf
 * always starts with the oldest held byte and a full hbuf always holds a whole head (heads are smaller
 * than OP_H1_MAX_HEAD).
 *
 * Why two buffers are enough: the client is read only while the held bytes are an incomplete head
 * (< OP_H1_MAX_HEAD) and xbuf is empty, and reading stops as soon as a request is routed. What can
 * still arrive is what one receive yields: at most max_recv bytes, or with TLS that much ciphertext
 * plus the rest of one record already inside the transport (< OP_H1_MAX_HEAD plaintext more). The
 * total stays under two buffers; -ENOSPC would mean that bound is broken.
 */
int http_hold(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    if (!st->xlen) {
        size_t k = OP_MIN(n, (size_t)(OP_CONN_BUF_SIZE - st->hlen));
        int rc = http_buf_append(c, &st->hbuf, &st->hlen, p, k);
        if (rc < 0) return rc;
        p += k;
        n -= k;
    }
    return http_buf_append(c, &st->xbuf, &st->xlen, p, n);
}

void http_refill(struct op_conn *c)
{
    struct http_state *st = hs(c);
    size_t k = OP_MIN((size_t)st->xlen, (size_t)(OP_CONN_BUF_SIZE - st->hlen));
    if (!k || http_buf_append(c, &st->hbuf, &st->hlen, st->xbuf, k) < 0) return;
    http_buf_consume(c, &st->xbuf, &st->xlen, k);
}

/* ---- responses we write ourselves ---------------------------------------------------------------------- */

void http_count_status(struct op_conn *c, int status)
{
    struct op_http_stats *st = http_wstats(c);
    if (status >= 500)
        OP_STAT_ADD(st->responses_5xx, 1);
    else if (status >= 400)
        OP_STAT_ADD(st->responses_4xx, 1);
}

OP_MUST_USE int http_write_simple(struct op_conn *c, int status, const char *ctype, const char *body,
                                  size_t blen, bool close, const char *extra1)
{
    const char *extra2 = hconf(c)->resp_extra;
    char extra[1600];
    int en = snprintf(extra, sizeof(extra), "%s%s", extra1 ? extra1 : "", extra2 ? extra2 : "");
    if (en < 0 || (size_t)en >= sizeof(extra)) return -ENOSPC; /* never a head with its last line cut */
    ssize_t n =
        op_h1_write_simple_response(status, ctype, body, blen, close, extra, http_out, sizeof(http_out));
    if (n < 0) return (int)n;
    http_count_status(c, status);
    return op_conn_send(c, OP_CLI, (const uint8_t *)http_out, (size_t)n);
}

/* Answers with an error and closes once it is out. Nothing more is read from this client. */
void http_fail(struct op_conn *c, int status, const char *why)
{
    struct http_state *st = hs(c);
    op_debug("http", "w%d#%u %d in %s: %s", op_worker_index(op_conn_worker(c)), op_conn_id(c), status,
             http_phase_str(st->phase), why);
    char body[160];
    int bl = snprintf(body, sizeof(body), "%d %s: %s\n", status, op_h1_reason(status), why);
    http_fail_body(c, status, "text/plain; charset=utf-8", body, (size_t)OP_MIN(bl, (int)sizeof(body) - 1));
}

void http_fail_body(struct op_conn *c, int status, const char *ctype, const char *body, size_t len)
{
    struct http_state *st = hs(c);
    if (!st->resp_started) {
        if (http_write_simple(c, status, ctype, body, len, true, NULL) < 0) {
            st->phase = HP_DONE;
            http_observe_request(c);
            op_conn_close(c, "error response did not fit the client queue");
            return;
        }
    }
    st->phase = HP_DONE;
    http_observe_request(c);
    op_conn_finish(c);
}

/* ---- the end of a request ------------------------------------------------------------------------------ */

/* The request's response is complete (or an error answered it): count its duration once. */
void http_observe_request(struct op_conn *c)
{
    struct http_state *st = hs(c);
    if (st->req_start_us) {
        uint64_t us = op_now_us() - st->req_start_us;
        struct op_http_stats *ws = http_wstats(c);
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
bool http_end_request(struct op_conn *c)
{
    struct http_state *st = hs(c);
    http_observe_request(c);
    bool keep = st->client_keep && !st->client_eof && !op_conn_draining(c) && st->req_done;
    if (!keep) {
        st->phase = HP_DONE;
        op_conn_finish(c);
        return false;
    }
    http_dbuf_release(c);
    st->resp_flags = 0;
    st->phase = HP_HEAD;
    st->req_done = st->resp_head_done = st->resp_done = st->resp_started = false;
    op_conn_set_state(c, OP_CS_OPEN);
    op_conn_set_timeout(c, hconf(c)->keepalive_ms);
    return true;
}

/* After a response that completed asynchronously: serve what was pipelined behind it. */
void http_next_request(struct op_conn *c)
{
    if (http_end_request(c)) http_serve_held(c, true);
}

void http_response_done(struct op_conn *c)
{
    struct http_state *st = hs(c);
    st->resp_done = true;
    if (st->rbuf) http_buf_consume(c, &st->rbuf, &st->rlen, st->rlen);
    if (!st->up_keep || (!st->up_addr && !st->up_key)) { /* a dialled leg without a key is not kept */
        op_conn_drop_upstream(c);
        http_forget_leg(st);
    }
    if (!st->req_done) /* the upstream answered before the request body ended (e.g. an early 413) */
        st->client_keep = false;
    http_next_request(c);
}

struct relay_to {
    struct op_conn *c;
    enum op_side to;
    bool failed;
};

/* op_h1_body_relay's emitter: bytes of the receive buffer go zero-copy, the tracker's own copy of a
 * held trailer name is copied. */
static int relay_emit(void *ctx, const char *p, size_t n, bool in_input)
{
    struct relay_to *r = ctx;
    int rc = in_input ? op_conn_forward(r->c, r->to, (const uint8_t *)p, n)
                      : op_conn_send(r->c, r->to, (const uint8_t *)p, n);
    if (rc < 0) r->failed = true;
    return rc;
}

/* Feeds body bytes through tracker b and sends those that belong to the message on to side `to`
 * (minus the trailer fields that must not be forwarded). Returns the tracker's verdict (*used set), or
 * HTTP_RELAY_CLOSED when the send queue refused them (the connection is then closed). */
int http_relay_body(struct op_conn *c, struct op_h1_body *b, enum op_side to, const uint8_t *p, size_t n,
                    size_t *used)
{
    struct relay_to rt = {.c = c, .to = to};
    int r = op_h1_body_relay(b, (const char *)p, n, used, relay_emit, &rt);
    if (rt.failed) {
        op_conn_close(c, to == OP_UP ? "upstream queue full" : "client queue full");
        return HTTP_RELAY_CLOSED;
    }
    return r;
}

void http_dbuf_release(struct op_conn *c)
{
    struct http_state *st = hs(c);
    if (st->dbuf) op_conn_buf_put(c, (uint8_t *)st->dbuf);
    st->dbuf = NULL;
}

struct op_h1_resp_opts http_resp_opts(struct op_conn *c)
{
    struct http_state *st = hs(c);
    return (struct op_h1_resp_opts){
        .flags = (st->resp_flags & OP_ROUTE_RESP_NO_CORS) ? OP_H1_RESP_NO_CORS : 0,
        .extra = hconf(c)->resp_extra,
        .extra2 = st->dbuf && st->dbuf->resp_extra[0] ? st->dbuf->resp_extra : NULL,
    };
}

/* ---- events -------------------------------------------------------------------------------------------- */

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
    st->dialing = false; /* an attached leg completes its dial */
    if (err < 0) {
        op_warn("http", "upstream connect failed: %s", strerror(-err));
        http_forget_leg(st);
        http_fail(c, 502, "upstream connect failed");
        return;
    }
    op_conn_set_state(c, OP_CS_RELAY);
    op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->idle_ms);
    if (st->phase == HP_DIAL) http_leg_ready(c);
}

static void http_eof(struct op_conn *c, enum op_side side)
{
    struct http_state *st = hs(c);
    if (side == OP_CLI) {
        st->client_eof = true;
        if (st->phase == HP_HEAD && st->hlen == 0)
            op_conn_close(c, "client closed");
        else if (st->phase == HP_HEAD || st->phase == HP_BODY || st->phase == HP_APP_BODY ||
                 (st->phase == HP_DIAL && !st->req_done))
            op_conn_close(c, "client closed mid-request");
        /* HP_WAIT / HP_APP / HP_DIAL without a body: let the response go out, then close
         * (http_end_request sees client_eof). */
        return;
    }
    if (st->phase == HP_DIAL) {
        if (st->await_ok) {
            http_dial_answer(c, NULL, 0); /* EOF: no answer */
            return;
        }
        return; /* not connected yet: the connect's completion reports it */
    }
    if (st->phase == HP_WAIT || st->phase == HP_BODY) {
        if (st->resp_head_done && st->resp_body.framing == OP_H1_BODY_UNTIL_CLOSE) {
            st->up_keep = false;
            st->client_keep = false;
            http_response_done(c);
        } else if (!st->resp_started) {
            http_forget_leg(st);
            http_fail(c, 502, "upstream closed the connection without a response");
        } else {
            op_conn_finish(c); /* truncated response: the client sees the connection close */
            st->phase = HP_DONE;
        }
        return;
    }
    /* Idle upstream closed its keep-alive connection: forget it. */
    op_conn_drop_upstream(c);
    http_forget_leg(st);
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
            http_fail(c, 408, "request head timeout");
        break;
    case HP_BODY:
    case HP_APP_BODY:
        http_fail(c, 408, "request body timeout");
        break;
    case HP_WAIT:
        if (op_conn_state(c) == OP_CS_CONNECT)
            http_fail(c, 504, "upstream connect timeout");
        else if (!st->resp_started)
            http_fail(c, 504, "upstream response timeout");
        else
            op_conn_close(c, "upstream idle timeout");
        break;
    case HP_DIAL:
        if (st->dialing || op_conn_state(c) == OP_CS_CONNECT) {
            http_dial_abandon(c);
            http_fail(c, 504, "upstream connect timeout");
        } else {
            http_fail(c, 504, "the upstream did not answer the preamble in time");
        }
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

static void http_drained(struct op_conn *c, enum op_side side)
{
    struct http_state *st = hs(c);
    if (side != OP_CLI) return;
    if (st->job && st->phase == HP_WAIT)
        http_app_resp_pump(c);
    else if (st->phase == HP_HEAD && st->hlen) /* built-in responses stopped by a full queue */
        http_serve_held(c, true);
}

static void http_close(struct op_conn *c)
{
    struct http_state *st = hs(c);
    if (st->hbuf) op_conn_buf_put(c, st->hbuf);
    if (st->xbuf) op_conn_buf_put(c, st->xbuf);
    if (st->rbuf) op_conn_buf_put(c, st->rbuf);
    st->hbuf = st->xbuf = st->rbuf = NULL;
    st->hlen = st->xlen = st->rlen = 0;
    http_dial_abandon(c);
    http_dbuf_release(c);
    if (st->job && st->phase != HP_APP)
        op_app_job_free(st->job); /* not submitted, or already back from the control thread: ours */
    st->job = NULL;               /* a submitted job comes back and is freed by the poster */
}

const struct op_proto_ops op_proto_http = {
    .name = "http",
    .worker_state_size = sizeof(struct op_http_stats),
    .state_size = sizeof(struct http_state),
    /* An incomplete head (< OP_H1_MAX_HEAD) plus what one receive yields fits the hold (see http_hold()). */
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
