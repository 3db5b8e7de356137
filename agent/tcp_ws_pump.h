/*
 * agent/tcp_ws_pump.h — the byte pump of the tcp endpoint's WebSocket variant (tcp_ws.h), with no I/O:
 * client frames in, their payload out towards the target; target bytes in, binary frames out towards the
 * client. The server thread (tcp_ws.c) moves the bytes between the sockets and this state; the unit test
 * drives it alone.
 *
 * Backpressure: a client message (at most OP_AGENT_TCPWS_MAX_MSG, else close 1009) is assembled in msg
 * and no more client input is taken until the target took all of it; target bytes are taken only while
 * out has room for another frame. Both buffers are allocated once per connection.
 *
 * Half-close: the client's close frame means it sends nothing more (the server shuts the target's write
 * side); the target's EOF queues our close frame 1000 (nothing more for the client). Both done and out
 * flushed: the connection is finished (tcpws_pump_done). Pings are answered with a pong of the latest
 * ping's payload (RFC 6455 §5.5.3 allows skipping older ones); text messages are forwarded as their bytes
 * like binary ones.
 */
#ifndef OP_AGENT_TCP_WS_PUMP_H
#define OP_AGENT_TCP_WS_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/ws.h"

#define OP_AGENT_TCPWS_MAX_MSG (64 * 1024) /* a client message over this: close 1009 */
#define TCPWS_FRAME_MAX        (16 * 1024) /* target bytes per binary frame */
#define TCPWS_OUT_CTRL         (2 * (OP_WS_MAX_CONTROL + OP_WS_MAX_HEADER)) /* kept for a pong and a close */
#define TCPWS_OUT_CAP          (4 * (TCPWS_FRAME_MAX + OP_WS_MAX_HEADER) + TCPWS_OUT_CTRL)

struct tcpws_pump {
    struct op_ws_reader rd;
    uint8_t *msg;      /* rd's buffer: the message being assembled, then its payload for the target */
    size_t woff, wend; /* msg[woff..wend): client bytes not yet written to the target */
    uint8_t *out;      /* frames for the client: out[outoff..outlen) */
    size_t outoff, outlen;
    bool pong_due; /* a ping came and its pong is not queued yet (no room) */
    uint8_t pong[OP_WS_MAX_CONTROL];
    size_t pong_len;
    bool peer_closed; /* the client's close came: nothing more for the target */
    bool close_sent;  /* our close is queued: no more data frames */
    uint16_t peer_code;
};

/* 0 or -ENOMEM. */
int tcpws_pump_init(struct tcpws_pump *p);
void tcpws_pump_free(struct tcpws_pump *p);

/* Client bytes: consumes from in[0..len) while no client payload waits for the target; returns the bytes
 * used (the caller keeps the rest for later). On a protocol error the close frame with its code is queued
 * (close_sent) and the rest is ignored. */
size_t tcpws_pump_from_client(struct tcpws_pump *p, const uint8_t *in, size_t len);
/* The client's payload waiting for the target, and how much of it was written. */
static inline size_t tcpws_pump_to_target(const struct tcpws_pump *p, const uint8_t **data)
{
    *data = p->msg + p->woff;
    return p->wend - p->woff;
}
void tcpws_pump_target_wrote(struct tcpws_pump *p, size_t n);

/* How many target bytes may be framed now (0 once our close is queued or while out is full). */
size_t tcpws_pump_target_room(const struct tcpws_pump *p);
/* Frames data[0..n) (n <= tcpws_pump_target_room) as binary frames. */
void tcpws_pump_from_target(struct tcpws_pump *p, const uint8_t *data, size_t n);
/* The target closed its side (or failed): our close frame, with code and reason. */
void tcpws_pump_close(struct tcpws_pump *p, uint16_t code, const char *reason);

/* A ping of our own (the server's keep-alive), when there is room; never after our close. */
void tcpws_pump_ping(struct tcpws_pump *p);

/* Frames waiting for the client, and how much of them went out. */
static inline size_t tcpws_pump_to_client(const struct tcpws_pump *p, const uint8_t **data)
{
    *data = p->out + p->outoff;
    return p->outlen - p->outoff;
}
void tcpws_pump_client_sent(struct tcpws_pump *p, size_t n);

/* Both closes happened and everything queued went out: the connection is finished. */
static inline bool tcpws_pump_done(const struct tcpws_pump *p)
{
    return p->peer_closed && p->close_sent && p->outoff == p->outlen;
}

#endif
