/*
 * http/proxy_response.c — the response path of the HTTP protocol: upstream response heads (interim 1xx
 * passed on, the final head rewritten for the client, a 101 handed to proxy_upgrade.c) and bodies
 * relayed under their framing; and the responses of application handlers, written when the control
 * thread posts them back.
 */
#include "http/proxy_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Parsed heads are large (100 header spans): one per worker thread, used only inside a callback. */
static _Thread_local struct op_h1_response tl_resp;

/* What the body tracker said about response-body bytes that went to the client: a framing error
 * closes, the end of the response ends the request. */
static void resp_body_verdict(struct op_conn *c, int r, size_t used, size_t n)
{
    struct http_state *st = hs(c);
    if (r == OP_H1_ERROR) {
        op_conn_close(c, "bad response body framing from upstream");
        return;
    }
    if (r == OP_H1_COMPLETE) {
        if (used < n) /* bytes after the end of the response: the upstream is not to be trusted again */
            st->up_keep = false;
        http_response_done(c);
    }
}

/* Feeds response-body bytes to the client. */
static void forward_resp_body(struct op_conn *c, const uint8_t *p, size_t n)
{
    size_t used;
    int r = http_relay_body(c, &hs(c)->resp_body, OP_CLI, p, n, &used);
    if (r != HTTP_RELAY_CLOSED) resp_body_verdict(c, r, used, n);
}

struct relay_buf {
    char *p;
    size_t len, cap;
};

/* op_h1_body_relay's emitter into http_out (head and body in one write). */
static int relay_copy(void *ctx, const char *p, size_t n, bool in_input)
{
    (void)in_input;
    struct relay_buf *rb = ctx;
    if (n > rb->cap - rb->len) return -ENOSPC;
    memcpy(rb->p + rb->len, p, n);
    rb->len += n;
    return 0;
}

/* Sends the response head written in http_out[0..hn) and the body bytes p[0..n) that arrived with it.
 * For a TLS client both go out in one write when they fit http_out, so a small response is one record. */
static void send_head_with_body(struct op_conn *c, size_t hn, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    if (op_conn_is_tls(c) && hn + n <= sizeof(http_out)) {
        size_t used;
        struct relay_buf rb = {.p = http_out, .len = hn, .cap = sizeof(http_out)};
        int r = op_h1_body_relay(&st->resp_body, (const char *)p, n, &used, relay_copy, &rb);
        if (op_conn_send(c, OP_CLI, (const uint8_t *)http_out, rb.len) < 0) {
            op_conn_close(c, "client queue full");
            return;
        }
        resp_body_verdict(c, r, used, n);
        return;
    }
    if (op_conn_send(c, OP_CLI, (const uint8_t *)http_out, hn) < 0) {
        op_conn_close(c, "client queue full");
        return;
    }
    forward_resp_body(c, p, n);
}

/*
 * Response heads are parsed in place in the receive buffer; only a head split across receives is
 * collected in rbuf. The view being parsed is (v, vn); when it is rbuf, (t, tn) are the bytes of this
 * receive that did not fit and follow it.
 */
int http_upstream_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    if (st->phase == HP_DIAL && st->await_ok) return http_dial_answer(c, p, n);
    if (st->phase != HP_WAIT && st->phase != HP_BODY) {
        /* Bytes from an idle upstream (no request outstanding): it is broken; drop it. */
        op_conn_drop_upstream(c);
        http_forget_leg(st);
        return 0;
    }
    op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->idle_ms);
    if (st->resp_head_done) {
        forward_resp_body(c, p, n);
        return 0;
    }
    const uint8_t *v = p, *t = NULL;
    size_t vn = n, tn = 0;
    if (st->rlen) {
        size_t take = OP_MIN(n, (size_t)(OP_CONN_BUF_SIZE - st->rlen));
        if (http_buf_append(c, &st->rbuf, &st->rlen, p, take) < 0) {
            http_fail(c, 502, "upstream response head too large");
            return 0;
        }
        v = st->rbuf, vn = st->rlen, t = p + take, tn = n - take;
    }
    for (;;) {
        struct op_h1_response *resp = &tl_resp;
        int r = op_h1_parse_response((const char *)v, vn, st->head_req, resp);
        if (r == OP_H1_INCOMPLETE) {
            if (v == st->rbuf && tn) { /* cannot happen: a full rbuf always parses or fails */
                http_fail(c, 502, "upstream response head too large");
            } else if (v != st->rbuf && http_buf_append(c, &st->rbuf, &st->rlen, v, vn) < 0) {
                http_fail(c, 502, "upstream response head too large");
            }
            return 0;
        }
        if (r == OP_H1_ERROR) {
            op_warn("http", "invalid response from upstream: %s", resp->error_reason);
            http_fail(c, 502, "invalid response from upstream");
            return 0;
        }
        size_t head_len = resp->head_len;
        if (resp->status == 101) {
            http_switch_protocols(c, resp, v + head_len, vn - head_len, t, tn);
            return 0;
        }
        if (resp->status >= 100 && resp->status < 200) { /* interim response: pass it on as is */
            if (op_conn_send(c, OP_CLI, v, head_len) < 0) {
                op_conn_close(c, "client queue full");
                return 0;
            }
            if (v == st->rbuf) {
                http_buf_consume(c, &st->rbuf, &st->rlen, head_len);
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
        http_count_status(c, resp->status);
        struct op_h1_resp_opts ro = http_resp_opts(c);
        ssize_t hn =
            op_h1_write_response_head_opts(resp, st->client_minor, close, &ro, http_out, sizeof(http_out));
        bool body_here = resp->framing != OP_H1_BODY_NONE && vn > head_len;
        if (hn < 0 || (!body_here && op_conn_send(c, OP_CLI, (const uint8_t *)http_out, (size_t)hn) < 0)) {
            http_fail(c, 502, "upstream response head too large");
            return 0;
        }
        op_h1_body_init(&st->resp_body, resp->framing, resp->content_length);
        op_conn_set_state(c, OP_CS_RELAY);
        if (resp->framing == OP_H1_BODY_NONE) {
            if (vn > head_len || tn)
                st->up_keep = false; /* bytes after a complete response: not to be trusted again */
            http_response_done(c);
            return 0;
        }
        /* The rest is body: forward it (zero-copy when it is still in the receive buffer). A buffered
         * head is detached first, since finishing the response may reuse rbuf. */
        uint8_t *rb = v == st->rbuf ? st->rbuf : NULL;
        if (rb) st->rbuf = NULL, st->rlen = 0;
        if (body_here) send_head_with_body(c, (size_t)hn, v + head_len, vn - head_len);
        if (tn && st->resp_head_done && !st->resp_done && op_conn_state(c) != OP_CS_CLOSING)
            forward_resp_body(c, t, tn);
        else if (tn)
            st->up_keep = false;
        op_conn_buf_put(c, rb);
        return 0;
    }
}

/* Sends what fits of an application response body; the rest follows as the client queue drains. */
void http_app_resp_pump(struct op_conn *c)
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
    http_next_request(c);
}

void http_message(struct op_conn *c, void *msg)
{
    struct http_state *st = hs(c);
    if (msg != st->job && st->dial_msg) { /* not ours: the dialer's (see op_route.dial_msg) */
        st->dial_msg(st->dial_ctx, c, msg, st->dialing);
        return;
    }
    struct op_app_job *job = msg;
    if (st->job != job || st->phase != HP_APP) {
        op_app_job_free(job);
        return;
    }
    struct op_app_response *r = &job->resp;
    if (r->grant[0]) {
        http_reroute(c, job);
        return;
    }
    bool close = !st->client_keep || op_conn_draining(c) || st->client_eof;
    if (close) st->client_keep = false;
    int status = r->status ? r->status : 200;
    const char *extra2 = hconf(c)->resp_extra;
    struct op_h1_writer w;
    op_h1_writer_init(&w, http_out, sizeof(http_out));
    op_h1_put_status(&w, status, NULL);
    op_h1_put_header(&w, "Content-Type", r->content_type ? r->content_type : "application/json");
    op_h1_put_header_u64(&w, "Content-Length", r->body_len);
    if (close) op_h1_put_header(&w, "Connection", "close");
    op_h1_put_raw(&w, r->headers, r->headers_len); /* CRLF lines from op_app_add_header */
    if (extra2) op_h1_put_raw(&w, extra2, strlen(extra2));
    op_h1_put_end_of_head(&w);
    ssize_t n = op_h1_writer_result(&w);
    http_count_status(c, status);
    if (n < 0 || op_conn_send(c, OP_CLI, (const uint8_t *)http_out, (size_t)n) < 0) {
        op_conn_close(c, n < 0 ? "response head invalid or too large" : "client queue full");
        return; /* http_close frees the job */
    }
    st->resp_started = true;
    st->phase = HP_WAIT;
    st->resp_head_done = true;
    job->body_have = 0; /* reused as the response body offset */
    http_app_resp_pump(c);
}
