/*
 * region/stream.c — the two sides of a stream.
 *
 * A spare (`/me/stream`): after its 101 is out, the connection detaches its socket from the engine
 * (op_conn_detach) and the socket goes to the broker, with its TLS session when the region is https (a
 * struct op_leg), parked for its agent or handed at once to a client waiting for one.
 *
 * A client (`/{agent}/tcp?port=N`): takes a parked spare (or waits for the next one, asking the agent's
 * control connection for SPARES, up to wait_ms), attaches it as the connection's upstream leg
 * (op_conn_attach_leg: the OPEN line, the answer and the tunnel go through the spare's TLS session, if it
 * has one), writes `OPEN 127.0.0.1:N\n` and reads the agent's one-line answer. `OK`:
 * the client gets its 101 and the engine relays both legs (op_conn_tunnel). `ERR code reason`: 502 with
 * the reason, before the upgrade. Client bytes that arrive during the set-up are held and sent after OK.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "region/region_int.h"

/* ---- spares ------------------------------------------------------------------------------------------ */

struct spare_state {
    struct op_region *r;
    char agent[OP_ID_LEN + 1];
};

static int spare_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    (void)p;
    (void)n;
    op_conn_close(c, "a spare stream connection sent bytes before OPEN");
    return 0;
}

static void spare_eof(struct op_conn *c, enum op_side side)
{
    (void)side;
    op_conn_close(c, "spare closed before it was parked");
}

static void spare_drained(struct op_conn *c, enum op_side side)
{
    if (side != OP_CLI || op_conn_state(c) == OP_CS_CLOSING) return;
    op_conn_detach(c);
}

static void spare_detached(struct op_conn *c, struct op_leg *leg)
{
    struct spare_state *st = op_conn_proto_state(c);
    if (leg->fd < 0) return; /* it sent bytes or closed while detaching: not usable */
    op_region_give_spare(st->r, op_worker_engine(op_conn_worker(c)), st->agent, leg);
}

static void spare_drain(struct op_conn *c)
{
    op_conn_close(c, "draining");
}

const struct op_proto_ops op_region_spare_proto = {
    .name = "agent-spare",
    .state_size = sizeof(struct spare_state),
    .on_client_data = spare_data,
    .on_eof = spare_eof,
    .on_drained = spare_drained,
    .on_drain = spare_drain,
    .on_detached = spare_detached,
};

void op_region_stream_handoff(void *ctx, struct op_conn *c, const struct op_h1_request *req,
                              const uint8_t *rest, size_t n)
{
    (void)req;
    struct op_region *r = ctx;
    struct region_pending *pd = &op_region_pending;
    OP_BUG_ON(pd->ep != EP_STREAM);
    op_conn_set_proto(c, &op_region_spare_proto, r);
    struct spare_state *st = op_conn_proto_state(c);
    st->r = r;
    memcpy(st->agent, pd->agent, sizeof(st->agent));
    (void)rest;
    if (n) {
        op_region_fail(c, 400, "A stream connection sends nothing before OPEN.");
        return;
    }
    if (!op_broker_can_park(r->broker, st->agent)) {
        op_region_fail(c, 503, "No room for another spare stream connection (or no control connection).");
        return;
    }
    op_conn_pause(c, OP_CLI); /* nothing is read until the socket is detached */
    op_conn_set_timeout(c, 10000);
    if (op_region_switch(c, REGION_UPGRADE_STREAM) < 0) op_conn_close(c, "client queue full");
}

/* ---- clients ----------------------------------------------------------------------------------------- */

enum tcp_phase { TP_WAIT = 1, TP_OPEN, TP_DONE };

/* Per-connection state; the line and the held client bytes live in a pool buffer during the set-up. */
struct tcp_state {
    struct op_region *r;
    uint8_t *buf; /* [0, REGION_LINE_MAX]: the agent's answer; after it: client bytes held */
    uint32_t held, line;
    uint16_t port;
    uint8_t phase;
    bool waiting;
    uint64_t t0_us;
    char agent[OP_ID_LEN + 1];
};
#define HELD_OFF (REGION_LINE_MAX + 1)
#define HELD_MAX (OP_CONN_BUF_SIZE - HELD_OFF)

static inline struct tcp_state *ts(struct op_conn *c)
{
    return op_conn_proto_state(c);
}

static void count(struct op_conn *c, bool ok)
{
    struct region_wstats *w = &ts(c)->r->ws[op_worker_index(op_conn_worker(c))];
    if (ok)
        OP_STAT_ADD(w->opened, 1);
    else
        OP_STAT_ADD(w->failed, 1);
}

static void tcp_fail(struct op_conn *c, int status, const char *msg)
{
    struct tcp_state *st = ts(c);
    st->phase = TP_DONE;
    count(c, false);
    op_conn_buf_put(c, st->buf);
    st->buf = NULL;
    op_region_fail(c, status, msg);
}

static void attach(struct op_conn *c, struct op_leg *leg)
{
    struct tcp_state *st = ts(c);
    int rc = op_conn_attach_leg(c, leg);
    if (rc != 0) {
        op_leg_close(leg);
        tcp_fail(c, 502, "Could not use the agent's stream connection.");
        return;
    }
    st->phase = TP_OPEN;
    op_conn_set_timeout(c, 10000); /* the agent dials with a 5 s timeout, then answers */
}

static void tcp_connected(struct op_conn *c, int err)
{
    struct tcp_state *st = ts(c);
    if (err < 0) {
        tcp_fail(c, 502, "The agent's stream connection failed.");
        return;
    }
    char line[64];
    int n = snprintf(line, sizeof(line), "OPEN 127.0.0.1:%u\n", st->port);
    if (op_conn_send(c, OP_UP, (const uint8_t *)line, (size_t)n) < 0) op_conn_close(c, "upstream queue full");
}

static void tcp_message(struct op_conn *c, void *msg)
{
    struct region_msg *m = msg;
    struct tcp_state *st = ts(c);
    if (m->kind != MSG_FD || st->phase != TP_WAIT || !st->waiting) return; /* the socket goes back */
    st->waiting = false;
    struct op_leg leg = m->leg;
    m->leg = (struct op_leg){-1, NULL, NULL};
    attach(c, &leg);
}

/* The agent's answer: OK, or ERR <code> <reason>. */
static void answer(struct op_conn *c, const char *l, size_t n, const uint8_t *after, size_t an)
{
    struct tcp_state *st = ts(c);
    if (n == 2 && memcmp(l, "OK", 2) == 0) {
        if (op_region_switch(c, REGION_UPGRADE_TCP) < 0 || (an && op_conn_send(c, OP_CLI, after, an) < 0) ||
            (st->held && op_conn_send(c, OP_UP, st->buf + HELD_OFF, st->held) < 0)) {
            op_conn_close(c, "send queue full");
            return;
        }
        st->phase = TP_DONE;
        count(c, true);
        op_conn_buf_put(c, st->buf);
        st->buf = NULL;
        op_conn_set_timeout(c, 0);
        op_debug("region", "stream to agent %s port %u open after %llu us", st->agent, st->port,
                 (unsigned long long)(op_now_us() - st->t0_us));
        op_conn_tunnel(c, st->r->lim.tunnel_idle_ms);
        return;
    }
    char msg[REGION_LINE_MAX + 96];
    if (n > 4 && memcmp(l, "ERR ", 4) == 0) {
        const char *sp = memchr(l + 4, ' ', n - 4);
        const char *reason = sp ? sp + 1 : "";
        size_t rl = sp ? n - (size_t)(sp + 1 - l) : 0;
        snprintf(msg, sizeof(msg), "The agent could not connect to port %u: %.*s", st->port, (int)rl, reason);
    } else {
        snprintf(msg, sizeof(msg), "The agent answered OPEN with something other than OK or ERR.");
    }
    tcp_fail(c, 502, msg);
}

static int tcp_upstream_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct tcp_state *st = ts(c);
    if (st->phase != TP_OPEN) return 0;
    const uint8_t *nl = memchr(p, '\n', n);
    size_t k = nl ? (size_t)(nl - p) : n;
    if (st->line + k > REGION_LINE_MAX) {
        tcp_fail(c, 502, "The agent's answer line is too long.");
        return 0;
    }
    memcpy(st->buf + st->line, p, k);
    st->line += (uint32_t)k;
    if (!nl) return 0;
    size_t ll = st->line;
    if (ll && st->buf[ll - 1] == '\r') ll--;
    answer(c, (const char *)st->buf, ll, nl + 1, n - k - 1);
    return 0;
}

static int tcp_client_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct tcp_state *st = ts(c);
    if (st->phase == TP_DONE) return 0;
    if (st->held + n > HELD_MAX) {
        tcp_fail(c, 503, "Too many bytes before the stream was open.");
        return 0;
    }
    memcpy(st->buf + HELD_OFF + st->held, p, n);
    st->held += (uint32_t)n;
    op_conn_pause(c, OP_CLI);
    return 0;
}

static void tcp_eof(struct op_conn *c, enum op_side side)
{
    struct tcp_state *st = ts(c);
    if (side == OP_CLI) {
        if (st->phase != TP_DONE) count(c, false);
        op_conn_close(c, "client closed during stream set-up");
        return;
    }
    if (st->phase == TP_OPEN)
        tcp_fail(c, 502, "The agent closed the stream connection without answering.");
    else
        op_conn_drop_upstream(c);
}

static void tcp_timeout(struct op_conn *c)
{
    struct tcp_state *st = ts(c);
    if (st->phase == TP_WAIT) {
        if (st->waiting && !op_broker_unwait(st->r->broker, st->agent, op_conn_ref(c))) {
            op_conn_set_timeout(c, 1000); /* a spare is on its way to this connection */
            return;
        }
        st->waiting = false;
        char msg[128];
        snprintf(msg, sizeof(msg), "The agent provided no stream connection within %u ms.",
                 st->r->lim.wait_ms);
        tcp_fail(c, 502, msg);
        return;
    }
    if (st->phase == TP_OPEN) {
        tcp_fail(c, 504, "The agent did not answer OPEN in time.");
        return;
    }
    op_conn_close(c, "timeout");
}

static void tcp_close(struct op_conn *c)
{
    struct tcp_state *st = ts(c);
    if (st->waiting) op_broker_unwait(st->r->broker, st->agent, op_conn_ref(c));
    st->waiting = false;
    op_conn_buf_put(c, st->buf);
    st->buf = NULL;
}

const struct op_proto_ops op_region_tcp_proto = {
    .name = "agent-tcp",
    .state_size = sizeof(struct tcp_state),
    .max_recv = HELD_MAX,
    .on_client_data = tcp_client_data,
    .on_upstream_data = tcp_upstream_data,
    .on_upstream_connected = tcp_connected,
    .on_eof = tcp_eof,
    .on_timeout = tcp_timeout,
    .on_message = tcp_message,
    .on_close = tcp_close,
};

void op_region_tcp_handoff(void *ctx, struct op_conn *c, const struct op_h1_request *req, const uint8_t *rest,
                           size_t n)
{
    (void)req;
    struct op_region *r = ctx;
    struct region_pending *pd = &op_region_pending;
    OP_BUG_ON(pd->ep != EP_TCP);
    op_conn_set_proto(c, &op_region_tcp_proto, r);
    struct tcp_state *st = ts(c);
    st->r = r;
    st->port = pd->port;
    st->t0_us = op_now_us();
    memcpy(st->agent, pd->agent, sizeof(st->agent));
    op_conn_pause(c, OP_CLI); /* held until the stream is open; the tunnel resumes it */
    st->buf = op_conn_buf_get(c);
    if (!st->buf) {
        tcp_fail(c, 503, "Out of buffers.");
        return;
    }
    if (n > HELD_MAX) {
        tcp_fail(c, 503, "Too many bytes before the stream was open.");
        return;
    }
    memcpy(st->buf + HELD_OFF, rest, n);
    st->held = (uint32_t)n;
    st->phase = TP_WAIT;
    struct op_conn_ref me = op_conn_ref(c);
    uint32_t ask;
    struct op_leg leg;
    int fd = op_broker_take(r->broker, st->agent, &me, &ask, &leg);
    if (fd >= 0) {
        attach(c, &leg);
        return;
    }
    if (fd == -EINPROGRESS) {
        st->waiting = true;
        op_conn_set_timeout(c, r->lim.wait_ms);
        op_region_want_spares(r, op_worker_engine(op_conn_worker(c)), st->agent,
                              (uint16_t)OP_MIN(ask, 0xffffu));
        return;
    }
    tcp_fail(c, fd == -ESRCH ? 404 : 503,
             fd == -ESRCH ? "The agent is not connected to this region."
                          : "Too many clients are waiting for this agent.");
}
