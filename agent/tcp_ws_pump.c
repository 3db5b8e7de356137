/*
 * agent/tcp_ws_pump.c — frames <-> bytes for the tcp endpoint's WebSocket variant (tcp_ws_pump.h).
 */
#include "agent/tcp_ws_pump.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int tcpws_pump_init(struct tcpws_pump *p)
{
    memset(p, 0, sizeof(*p));
    p->msg = malloc(OP_AGENT_TCPWS_MAX_MSG);
    p->out = malloc(TCPWS_OUT_CAP);
    if (!p->msg || !p->out) {
        tcpws_pump_free(p);
        return -ENOMEM;
    }
    op_ws_reader_init(&p->rd, p->msg, OP_AGENT_TCPWS_MAX_MSG);
    return 0;
}

void tcpws_pump_free(struct tcpws_pump *p)
{
    free(p->msg);
    free(p->out);
    p->msg = p->out = NULL;
}

/* Room at the end of out for n bytes, compacting first. */
static bool out_room(struct tcpws_pump *p, size_t n)
{
    if (p->outoff && p->outlen + n > TCPWS_OUT_CAP) {
        memmove(p->out, p->out + p->outoff, p->outlen - p->outoff);
        p->outlen -= p->outoff;
        p->outoff = 0;
    }
    return p->outlen + n <= TCPWS_OUT_CAP;
}

static void put_frame(struct tcpws_pump *p, uint8_t opcode, const uint8_t *payload, size_t n)
{
    size_t hl = op_ws_encode_header(p->out + p->outlen, true, opcode, n);
    if (n) memcpy(p->out + p->outlen + hl, payload, n);
    p->outlen += hl + n;
}

/* The pong of the latest ping, when it fits (control frames may use the reserve). */
static void queue_pong(struct tcpws_pump *p)
{
    if (!p->pong_due || p->close_sent || !out_room(p, OP_WS_MAX_HEADER + p->pong_len)) return;
    put_frame(p, OP_WS_PONG, p->pong, p->pong_len);
    p->pong_due = false;
}

void tcpws_pump_close(struct tcpws_pump *p, uint16_t code, const char *reason)
{
    if (p->close_sent) return;
    uint8_t pl[OP_WS_MAX_CONTROL];
    size_t n = op_ws_close_payload(pl, code, reason);
    queue_pong(p);
    p->pong_due = false;
    if (out_room(p, OP_WS_MAX_HEADER + n)) put_frame(p, OP_WS_CLOSE, pl, n); /* the reserve holds it */
    p->close_sent = true;
}

size_t tcpws_pump_from_client(struct tcpws_pump *p, const uint8_t *in, size_t len)
{
    size_t off = 0;
    while (off < len && !p->peer_closed && p->woff == p->wend) {
        size_t used = 0;
        int ev = op_ws_read(&p->rd, in + off, len - off, &used);
        off += used;
        if (ev < 0) {
            tcpws_pump_close(p, (uint16_t)-ev,
                             ev == OP_WS_ETOOBIG ? "message too big (the limit is 64 KiB)"
                                                 : "protocol error");
            p->peer_closed = true; /* nothing more is read from a client that broke the protocol */
            return len;
        }
        if (ev == OP_WS_EV_MESSAGE) {
            p->woff = 0;
            p->wend = p->rd.msg_len;
        } else if (ev == OP_WS_EV_PING) {
            memcpy(p->pong, p->rd.ctrl, p->rd.ctrl_len);
            p->pong_len = p->rd.ctrl_len;
            p->pong_due = true;
            queue_pong(p);
        } else if (ev == OP_WS_EV_CLOSE) {
            p->peer_closed = true;
            p->peer_code = p->rd.close_code;
        } else if (ev == OP_WS_EV_NONE && used == 0) {
            break;
        }
    }
    return p->peer_closed ? len : off; /* after the client's close, its bytes are dropped */
}

void tcpws_pump_target_wrote(struct tcpws_pump *p, size_t n)
{
    p->woff += n;
    if (p->woff >= p->wend) p->woff = p->wend = 0;
}

size_t tcpws_pump_target_room(const struct tcpws_pump *p)
{
    if (p->close_sent) return 0;
    size_t used = p->outlen - p->outoff;
    size_t need = used + OP_WS_MAX_HEADER + TCPWS_OUT_CTRL;
    if (need >= TCPWS_OUT_CAP) return 0;
    size_t room = TCPWS_OUT_CAP - need;
    return room < TCPWS_FRAME_MAX ? room : TCPWS_FRAME_MAX;
}

void tcpws_pump_from_target(struct tcpws_pump *p, const uint8_t *data, size_t n)
{
    if (!n || p->close_sent) return;
    if (!out_room(p, OP_WS_MAX_HEADER + n)) return; /* the caller asked target_room: never */
    put_frame(p, OP_WS_BINARY, data, n);
}

void tcpws_pump_client_sent(struct tcpws_pump *p, size_t n)
{
    p->outoff += n;
    if (p->outoff >= p->outlen) p->outoff = p->outlen = 0;
    queue_pong(p);
}

void tcpws_pump_ping(struct tcpws_pump *p)
{
    if (p->close_sent || !out_room(p, OP_WS_MAX_HEADER + TCPWS_OUT_CTRL)) return;
    put_frame(p, OP_WS_PING, NULL, 0);
}
