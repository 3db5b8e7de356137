/*
 * core/tcp.h — the "tcp" protocol: every accepted connection is relayed byte for byte to one fixed
 * upstream (like nginx `stream` or HAProxy `mode tcp`). With a TLS transport on the listener this is
 * a TLS terminator.
 */
#ifndef OP_TCP_H
#define OP_TCP_H

#include "core/engine.h"

struct op_tcp_route {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char name[80];
};

/* proto_ctx must point at a struct op_tcp_route that outlives the engine. */
extern const struct op_proto_ops op_proto_tcp;

#endif
