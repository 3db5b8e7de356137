/*
 * http/proxy_dial.c — a request on a new upstream leg that a dialer provides (op_route.dial: an agent
 * stream socket) or that must first receive a preamble (op_route.preamble, "OPEN host:port\n").
 *
 * The rewritten request head is written at routing time into the connection's dial buffer (st->dbuf)
 * and waits there, the request in HP_DIAL, with body bytes held and the client paused, until the leg is
 * ready: attached or connected (on_upstream_connected), the preamble sent and, with preamble_ok, the
 * leg's answer line read. "OK" lets the head (and the held body) go; "ERR <code> <reason>", a close or a
 * line over HTTP_ANSWER_MAX bytes is answered 502 and the connection closes. Nothing of the request
 * reaches the leg before the answer. The connect timeout runs while waiting for the dialer and again
 * while waiting for the answer. A reused leg (same up_key) skips all of this: its preamble was answered.
 */
#include "http/proxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

_Static_assert(HTTP_DBUF_HEAD_CAP >= HTTP_OUT_SIZE, "a request head must fit the dial buffer");

void http_dial_start(struct op_conn *c, const struct op_route *rt)
{
    struct http_state *st = hs(c);
    st->await_ok = rt->preamble_ok;
    st->err_page = rt->err_page;
    st->err_page_ctx = rt->err_page_ctx;
    op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->connect_ms);
    if (!rt->dial) { /* an address route with a preamble */
        if (op_conn_connect(c, rt->addr, rt->addrlen) < 0) {
            http_fail(c, 502, "cannot create the upstream socket");
            return;
        }
        st->up_addr = rt->addr;
        st->up_addrlen = rt->addrlen;
        st->up_key = 0;
        return;
    }
    op_conn_drop_upstream(c);
    st->up_addr = NULL;
    st->up_key = rt->up_key;
    st->dial_msg = rt->dial_msg;
    st->dial_cancel = rt->dial_cancel;
    st->dial_ctx = rt->dial_ctx;
    st->dialing = true;
    int rc = rt->dial(rt->dial_ctx, c);
    if (rc < 0 && st->dialing) { /* (dialing is false when it attached or failed inside dial()) */
        st->dialing = false;
        http_fail(c, 502, "the upstream could not be dialled");
    }
}

void http_dial_abandon(struct op_conn *c)
{
    struct http_state *st = hs(c);
    if (!st->dialing) return;
    st->dialing = false;
    if (st->dial_cancel) st->dial_cancel(st->dial_ctx, c);
}

void op_http_dial_failed(struct op_conn *c, int status, const char *content_type, const char *body,
                         size_t len)
{
    struct http_state *st = hs(c);
    if (!st->dialing) return;
    st->dialing = false;
    op_debug("http", "w%d#%u dial failed: %d", op_worker_index(op_conn_worker(c)), op_conn_id(c), status);
    http_forget_leg(st);
    http_fail_body(c, status, content_type, body, len);
}

/* The held head goes to the leg; the request goes on as one sent at routing time would. */
static void send_held_head(struct op_conn *c)
{
    struct http_state *st = hs(c);
    struct http_dbuf *d = st->dbuf;
    if (op_conn_send(c, OP_UP, (const uint8_t *)d->head, d->head_len) < 0) {
        op_conn_close(c, "upstream queue full");
        return;
    }
    d->head_len = 0;
    op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->idle_ms);
    if (st->req_done) {
        st->phase = HP_WAIT;
        return;
    }
    st->phase = HP_BODY;
    http_serve_held(c, true); /* the body bytes held meanwhile, then the client is read again */
}

void http_leg_ready(struct op_conn *c)
{
    struct http_state *st = hs(c);
    struct http_dbuf *d = st->dbuf;
    if (d->preamble_len && op_conn_send(c, OP_UP, (const uint8_t *)d->preamble, d->preamble_len) < 0) {
        op_conn_close(c, "upstream queue full");
        return;
    }
    if (st->await_ok) {
        d->line_len = 0;
        op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->connect_ms);
        return;
    }
    send_held_head(c);
}

/* A 502 {"message": "<why><reason>"} (the reason made printable and JSON-escaped), or the route's HTML page
 * for that message (op_route.err_page). */
static void answer_failed(struct op_conn *c, const char *why, const char *reason, size_t rl)
{
    static _Thread_local char page[4096];
    char msg[HTTP_ANSWER_MAX + 128], body[2 * sizeof(msg) + 32];
    size_t m = (size_t)snprintf(msg, sizeof(msg), "%s", why);
    for (size_t i = 0; i < rl && m < sizeof(msg) - 1; i++) {
        unsigned char ch = (unsigned char)reason[i];
        msg[m++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    msg[m] = '\0';
    struct http_state *st = hs(c);
    http_forget_leg(st);
    op_debug("http", "w%d#%u preamble refused: %.*s", op_worker_index(op_conn_worker(c)), op_conn_id(c),
             (int)rl, reason);
    size_t pl = st->err_page ? st->err_page(st->err_page_ctx, 502, msg, page, sizeof(page)) : 0;
    if (pl && pl < sizeof(page)) {
        http_fail_body(c, 502, "text/html; charset=utf-8", page, pl);
        return;
    }
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"message\":\"");
    for (size_t i = 0; i < m; i++) {
        if (msg[i] == '"' || msg[i] == '\\') body[n++] = '\\';
        body[n++] = msg[i];
    }
    n += (size_t)snprintf(body + n, sizeof(body) - n, "\"}\n");
    http_fail_body(c, 502, "application/json", body, OP_MIN(n, sizeof(body) - 1));
}

int http_dial_answer(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct http_state *st = hs(c);
    struct http_dbuf *d = st->dbuf;
    if (!p) {
        answer_failed(c, "The agent closed the connection without answering.", "", 0);
        return 0;
    }
    const uint8_t *nl = memchr(p, '\n', n);
    size_t k = nl ? (size_t)(nl - p) : n;
    if (d->line_len + k > HTTP_ANSWER_MAX) {
        answer_failed(c, "The agent's answer is too long.", "", 0);
        return 0;
    }
    memcpy(d->line + d->line_len, p, k);
    d->line_len += (uint32_t)k;
    if (!nl) return 0;
    size_t ll = d->line_len;
    if (ll && d->line[ll - 1] == '\r') ll--;
    const char *l = d->line;
    if (ll == 2 && memcmp(l, "OK", 2) == 0) {
        st->await_ok = false;
        send_held_head(c);
        size_t rest = n - k - 1;
        /* An upstream that speaks before it has a request: its bytes are a response to it, or an error. */
        if (rest && (st->phase == HP_WAIT || st->phase == HP_BODY) && op_conn_state(c) != OP_CS_CLOSING)
            return http_upstream_data(c, nl + 1, rest);
        return 0;
    }
    if (ll > 4 && memcmp(l, "ERR ", 4) == 0) {
        const char *sp = memchr(l + 4, ' ', ll - 4);
        const char *reason = sp ? sp + 1 : "";
        size_t rl = sp ? ll - (size_t)(sp + 1 - l) : 0;
        answer_failed(c, "The agent could not connect: ", reason, rl);
        return 0;
    }
    answer_failed(c, "The agent answered with something other than OK or ERR.", "", 0);
    return 0;
}
