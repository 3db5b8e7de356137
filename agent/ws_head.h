/*
 * agent/ws_head.h — the request head of a WebSocket handshake as the agent's in-process WebSocket servers
 * (the web terminal, pty_server.c; the tcp endpoint's WebSocket variant, tcp_ws.c) receive it from a
 * region: `GET <path>?<query> HTTP/1.1` with Upgrade: websocket, Connection: Upgrade,
 * Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key. A strict hand-written parser: the head is small and
 * comes from the region, which rewrote it; anything unexpected is refused with a status.
 */
#ifndef OP_AGENT_WS_HEAD_H
#define OP_AGENT_WS_HEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/ws.h"

struct op_agent_ws_head {
    const char *query; /* the target's query (after '?') inside the parsed buffer; "" when none */
    size_t query_len;
    char accept[OP_WS_ACCEPT_LEN + 1]; /* Sec-WebSocket-Accept for the answer */
};

/* Parses the head in buf[0..len) (cap: the buffer's size; a head that needs more is refused). path is the
 * one path served ("/pty"); what names the server in the reasons ("the terminal"). Returns the head's
 * length (> 0) with *h filled; 0 when more bytes are needed; -1 with *status (400, 404, 405) and *why
 * (a static string) for a refused request. */
int op_agent_ws_head_parse(const char *buf, size_t len, size_t cap, const char *path,
                           struct op_agent_ws_head *h, int *status, const char **why);

/* Percent-decodes p[0..n) ('+' is a space, as in a form-encoded query) into out (NUL-terminated).
 * Returns the length, or -1 for a bad escape, a NUL, or more than cap - 1 bytes. */
long op_agent_ws_decode(const char *p, size_t n, char *out, size_t cap);

#endif
