/*
 * region/control.c — an agent's control connection after its 101: the frames of proto/agent_frame.h,
 * run as an engine protocol of its own. HELLO first, answered by WELCOME (spares wanted, heartbeat,
 * region name); a PING every heartbeat (a connection that sent nothing for three heartbeats is closed);
 * SPARES when the region's pool of this agent's spares runs short or a client waits; CREDENTIAL keeps
 * the connection authorised past the first credential's expiry; GOAWAY on drain, and GOAWAY `revoked` when
 * the primary revokes the agent (MSG_REVOKE, region/revoke.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "proto/agent_frame.h"
#include "region/region_int.h"

#define REVOKED_WHY "the agent was revoked: its token was regenerated or its workspace deleted"

struct ctl_state {
    struct op_region *r;
    uint8_t *buf; /* a partial frame (pool buffer), only while one is incomplete */
    uint32_t blen;
    bool hello, registered, goaway;
    uint16_t wanted;            /* spares this agent keeps parked here: ours, or fewer if its HELLO says so */
    int64_t cred_iat, cred_exp; /* the newest credential's, unix seconds */
    uint64_t last_rx;           /* worker clock, ms */
    uint64_t nonce;
    char agent[OP_ID_LEN + 1];
};

static inline struct ctl_state *cs(struct op_conn *c)
{
    return op_conn_proto_state(c);
}

static int send_frame(struct op_conn *c, const struct op_af_frame *f)
{
    uint8_t out[OP_AF_HEADER_LEN + OP_AF_MAX_NAME + 16 + OP_AF_MAX_REASON];
    int n = op_af_encode(f, out, sizeof(out));
    if (n < 0) return n;
    return op_conn_send(c, OP_CLI, out, (size_t)n);
}

static void goaway(struct op_conn *c, enum op_af_goaway code, const char *why)
{
    struct ctl_state *st = cs(c);
    if (st->goaway) return;
    st->goaway = true;
    op_info("region", "agent %s control connection: GOAWAY (%s)", st->agent, why);
    struct op_af_frame f = {
        .type = OP_AF_GOAWAY, .code = (uint16_t)code, .text = why, .text_len = strlen(why)};
    if (send_frame(c, &f) < 0) {
        op_conn_close(c, "control queue full");
        return;
    }
    op_conn_finish(c);
}

static void send_spares(struct op_conn *c, uint16_t n)
{
    struct ctl_state *st = cs(c);
    if (!st->hello || st->goaway || !n) return;
    struct op_af_frame f = {.type = OP_AF_SPARES, .count = n};
    if (send_frame(c, &f) < 0) op_conn_close(c, "control queue full");
}

static void on_credential(struct op_conn *c, const struct op_af_frame *f)
{
    struct ctl_state *st = cs(c);
    static _Thread_local struct op_jws j;
    struct op_agent_cred cred;
    int rc = op_region_verify(st->r, f->text, f->text_len, &j);
    if (rc == 0) rc = op_agent_cred_read(&j, (int64_t)time(NULL), &cred);
    if (rc == 0 && strcmp(cred.agent_id, st->agent) != 0) rc = -EPERM;
    if (rc != 0) {
        goaway(c, rc == -EPERM ? OP_AF_GOAWAY_REVOKED : OP_AF_GOAWAY_EXPIRED,
               rc == -EPERM ? "credential for another agent" : "invalid credential");
        return;
    }
    if (rc == 0 && op_region_is_revoked(st->r, st->agent, cred.iat)) {
        goaway(c, OP_AF_GOAWAY_REVOKED, "the agent was revoked");
        return;
    }
    if (cred.exp > st->cred_exp) st->cred_exp = cred.exp;
    if (cred.iat > st->cred_iat) st->cred_iat = cred.iat;
}

/* One decoded frame. */
static void on_frame(struct op_conn *c, const struct op_af_frame *f)
{
    struct ctl_state *st = cs(c);
    struct op_region *r = st->r;
    if (!st->hello && f->type != OP_AF_HELLO) {
        goaway(c, OP_AF_GOAWAY_PROTOCOL, "HELLO must come first");
        return;
    }
    switch (f->type) {
    case OP_AF_HELLO: {
        if (st->hello) {
            goaway(c, OP_AF_GOAWAY_PROTOCOL, "a second HELLO");
            return;
        }
        st->hello = true;
        st->wanted = (uint16_t)OP_MIN(r->lim.spares_wanted, f->count ? f->count : r->lim.spares_wanted);
        struct op_af_frame w = {.type = OP_AF_WELCOME,
                                .version = OP_AF_PROTO_VERSION,
                                .count = st->wanted,
                                .heartbeat_ms = r->lim.heartbeat_ms,
                                .text = r->name,
                                .text_len = strlen(r->name)};
        if (send_frame(c, &w) < 0) op_conn_close(c, "control queue full");
        op_info("region", "agent %s connected (control, agent version %.*s)", st->agent, (int)f->text_len,
                f->text);
        break;
    }
    case OP_AF_PING: {
        struct op_af_frame p = {.type = OP_AF_PONG, .nonce = f->nonce};
        if (send_frame(c, &p) < 0) op_conn_close(c, "control queue full");
        break;
    }
    case OP_AF_PONG:
    case OP_AF_UNKNOWN:
        break;
    case OP_AF_CREDENTIAL:
        on_credential(c, f);
        break;
    case OP_AF_GOAWAY:
        op_info("region", "agent %s says GOAWAY (%u: %.*s)", st->agent, f->code, (int)f->text_len, f->text);
        st->goaway = true;
        op_conn_finish(c);
        break;
    case OP_AF_STREAM_FAIL:
        op_info("region", "agent %s could not dial port %u (%u: %.*s)", st->agent, f->port, f->code,
                (int)f->text_len, f->text);
        break;
    default: /* WELCOME, SPARES: region -> agent only */
        goaway(c, OP_AF_GOAWAY_PROTOCOL, "unexpected frame type");
    }
}

/* Decodes what can be decoded from p[0..n); returns the bytes used or -1 after a protocol error. */
static ssize_t decode_all(struct op_conn *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n && op_conn_state(c) != OP_CS_CLOSING && !cs(c)->goaway) {
        struct op_af_frame f;
        int k = op_af_decode(p + off, n - off, &f);
        if (k == 0) break;
        if (k < 0) {
            goaway(c, OP_AF_GOAWAY_PROTOCOL, k == -EMSGSIZE ? "frame too large" : "invalid frame");
            return -1;
        }
        off += (size_t)k;
        on_frame(c, &f);
    }
    return (ssize_t)off;
}

static int ctl_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct ctl_state *st = cs(c);
    st->last_rx = op_now_ms();
    if (st->goaway) return 0; /* closing: the rest is dropped */
    if (st->blen) {           /* complete the buffered frame first */
        size_t take = OP_MIN(n, (size_t)OP_CONN_BUF_SIZE - st->blen);
        memcpy(st->buf + st->blen, p, take);
        st->blen += (uint32_t)take;
        p += take;
        n -= take;
        ssize_t used = decode_all(c, st->buf, st->blen);
        if (used < 0) return 0;
        memmove(st->buf, st->buf + used, st->blen - (size_t)used);
        st->blen -= (uint32_t)used;
        if (st->blen >= OP_AF_MAX_FRAME) { /* cannot happen: the decoder refuses larger frames */
            goaway(c, OP_AF_GOAWAY_PROTOCOL, "frame too large");
            return 0;
        }
        if (n && st->blen) return 0; /* (n > 0 only if the buffer was full, which a frame never fills) */
        if (!st->blen) {
            op_conn_buf_put(c, st->buf);
            st->buf = NULL;
        }
    }
    if (!n) return 0;
    ssize_t used = decode_all(c, p, n);
    if (used < 0 || (size_t)used == n || st->goaway) return 0;
    if (!st->buf && !(st->buf = op_conn_buf_get(c))) return -ENOBUFS;
    memcpy(st->buf, p + used, n - (size_t)used);
    st->blen = (uint32_t)(n - (size_t)used);
    return 0;
}

static void ctl_timeout(struct op_conn *c)
{
    struct ctl_state *st = cs(c);
    struct op_region *r = st->r;
    uint64_t now = op_now_ms();
    if (st->goaway) {
        op_conn_close(c, "control connection did not close after GOAWAY");
        return;
    }
    if (now - st->last_rx > 3ull * r->lim.heartbeat_ms) {
        op_info("region", "agent %s: no frame for three heartbeats; closing its control connection",
                st->agent);
        op_conn_close(c, "heartbeat missed");
        return;
    }
    if (op_region_is_revoked(r, st->agent, st->cred_iat)) {
        goaway(c, OP_AF_GOAWAY_REVOKED, REVOKED_WHY);
        return;
    }
    if ((int64_t)time(NULL) > st->cred_exp + OP_JWS_LEEWAY_S) {
        goaway(c, OP_AF_GOAWAY_EXPIRED, "the agent credential expired");
        return;
    }
    op_conn_set_timeout(c, r->lim.heartbeat_ms);
    if (!st->hello) return;
    struct op_af_frame p = {.type = OP_AF_PING, .nonce = ++st->nonce};
    if (send_frame(c, &p) < 0) {
        op_conn_close(c, "control queue full");
        return;
    }
    send_spares(c, (uint16_t)OP_MIN(op_broker_refill(r->broker, st->agent, st->wanted), 0xffffu));
}

static void ctl_message(struct op_conn *c, void *msg)
{
    struct region_msg *m = msg;
    struct ctl_state *st = cs(c);
    if (m->kind == MSG_SPARES) send_spares(c, m->count);
    if (m->kind == MSG_REVOKE && op_region_is_revoked(st->r, st->agent, st->cred_iat))
        goaway(c, OP_AF_GOAWAY_REVOKED, REVOKED_WHY);
}

static void ctl_eof(struct op_conn *c, enum op_side side)
{
    (void)side;
    op_conn_close(c, "agent closed its control connection");
}

static void ctl_drain(struct op_conn *c)
{
    goaway(c, OP_AF_GOAWAY_SHUTDOWN, "the region is shutting down");
}

static void ctl_close(struct op_conn *c)
{
    struct ctl_state *st = cs(c);
    if (st->registered) {
        op_broker_ctl_del(st->r->broker, st->agent, op_conn_ref(c));
        op_info("region", "agent %s control connection closed", st->agent);
        /* A revoked agent's other control connections are told one after the other. */
        if (op_region_is_revoked(st->r, st->agent, st->cred_iat))
            (void)op_region_post_revoke(st->r, op_worker_engine(op_conn_worker(c)), st->agent);
    }
    st->registered = false;
    op_conn_buf_put(c, st->buf);
    st->buf = NULL;
}

const struct op_proto_ops op_region_control_proto = {
    .name = "agent-control",
    .state_size = sizeof(struct ctl_state),
    .max_recv = OP_CONN_BUF_SIZE - OP_AF_MAX_FRAME, /* a partial frame plus one receive fits a buffer */
    .on_client_data = ctl_data,
    .on_eof = ctl_eof,
    .on_timeout = ctl_timeout,
    .on_drain = ctl_drain,
    .on_message = ctl_message,
    .on_close = ctl_close,
};

void op_region_control_handoff(void *ctx, struct op_conn *c, const struct op_h1_request *req,
                               const uint8_t *rest, size_t n)
{
    (void)req;
    struct op_region *r = ctx;
    struct region_pending *pd = &op_region_pending;
    OP_BUG_ON(pd->ep != EP_CONTROL); /* the route function verified this very request */
    op_conn_set_proto(c, &op_region_control_proto, r);
    struct ctl_state *st = cs(c);
    st->r = r;
    memcpy(st->agent, pd->agent, sizeof(st->agent));
    st->cred_iat = pd->iat;
    st->cred_exp = pd->exp;
    st->last_rx = op_now_ms();
    int rc = op_broker_ctl_add(r->broker, st->agent, op_conn_ref(c));
    if (rc != 0) {
        op_region_fail(c, 503,
                       rc == -EUSERS ? "Too many control connections from this agent to this region."
                                     : "Too many agents are connected to this region.");
        return;
    }
    st->registered = true;
    if (op_region_switch(c, REGION_UPGRADE_CONTROL) < 0) {
        op_conn_close(c, "client queue full");
        return;
    }
    op_conn_set_state(c, OP_CS_RELAY);
    op_conn_set_timeout(c, r->lim.heartbeat_ms);
    if (n && ctl_data(c, rest, n) < 0) op_conn_close(c, "out of buffers");
}
