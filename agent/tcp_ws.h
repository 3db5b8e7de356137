/*
 * agent/tcp_ws.h — the agent's end of the tcp endpoint's WebSocket variant (docs/agent-protocol.md §5):
 * a browser's byte stream to a workspace port, carried in binary WebSocket messages. Like the web
 * terminal it listens on no port: a stream whose OPEN line is `OPEN ws:127.0.0.1:PORT` is handed to
 * op_agent_tcpws_serve with PORT (the stream's own socket when it is plaintext, else one end of an
 * in-process socketpair). The region authorised the stream and forwards the client's request head with
 * the path cut to `/tcp?port=PORT`; this server dials 127.0.0.1:PORT (bounded by the dial timeout) and only
 * then answers the handshake: 101, or a JSON 502 `{"message":"The agent could not connect to port N:
 * <reason>"}` before the upgrade, as the raw variant's region answers. After the 101 the pump of
 * tcp_ws_pump.h moves binary-message payloads to the port and the port's bytes back as binary messages.
 *
 * One thread with one epoll set serves every connection (never a thread per stream).
 */
#ifndef OP_AGENT_TCP_WS_H
#define OP_AGENT_TCP_WS_H

#include <stddef.h>
#include <stdint.h>

/* The OPEN line's prefix that names this server: "OPEN ws:127.0.0.1:8000". */
#define OP_AGENT_TCPWS_PREFIX  "ws:"
#define OP_AGENT_TCPWS_HEAD_MS 10000 /* the request head must arrive within this */
#define OP_AGENT_TCPWS_PING_MS 15000 /* a ping to every open socket this often */

struct op_agent_tcpws_conf {
    int max_conns;       /* connections at once; one over it is answered 503 */
    int dial_timeout_ms; /* connecting to the port may take this long; then 502 */
};

struct op_agent_tcpws;

/* Starts the server thread. Returns 0, or -errno with the reason in err. */
int op_agent_tcpws_start(const struct op_agent_tcpws_conf *conf, struct op_agent_tcpws **out, char *err,
                         size_t errlen);
/* Hands a connected stream socket for port to the server (ownership passes; closed in every case). Safe
 * from any thread. Returns 0, or -EAGAIN when the hand-over queue is full or the server is stopping. */
int op_agent_tcpws_serve(struct op_agent_tcpws *t, int fd, uint16_t port);
/* Closes every connection (1001), joins the thread and frees t. NULL is ignored. */
void op_agent_tcpws_stop(struct op_agent_tcpws *t);

#endif
