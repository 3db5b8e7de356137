/*
 * core/conn_int.h — the connection slot as core sees it. Included by core/ only: protocols and
 * transports go through the op_conn_* accessors of core/engine.h, so these internals can change.
 */
#ifndef OP_CONN_INT_H
#define OP_CONN_INT_H

#include "core/engine.h"

/* Per-connection flags word: X(name, bit). op_conn_flags_str() decodes it from the same table. */
#define OP_CONN_FLAGS(X)                                                                                     \
    X(TUNNEL, 0)      /* engine relays both ways without the protocol */                                     \
    X(TLS, 1)         /* client leg has a transport */                                                       \
    X(XPRT_READY, 2)  /* transport handshake done */                                                         \
    X(FINISH, 3)      /* close once the client queue drains (graceful) */                                    \
    X(DRAIN_CLOSE, 4) /* engine is draining: protocol should not keep alive */                               \
    X(SPLICE, 5)      /* tunnel uses splice(2) */                                                            \
    X(LINGER, 6)      /* write side shut; reading and discarding until EOF */                                \
    X(NOTIFY, 7)      /* transport close notification queued */

/* Per-side flags word: X(name, bit). op_side_flags_str() decodes it. */
#define OP_SIDE_FLAGS(X)                                                                                     \
    X(RECV, 0)          /* recv in flight */                                                                 \
    X(SEND, 1)          /* send in flight */                                                                 \
    X(EOF, 2)           /* peer sent FIN (or error) */                                                       \
    X(SHUT_WANT, 3)     /* shut our write side once the queue drains */                                      \
    X(SHUT_DONE, 4)     /* shutdown(SHUT_WR) issued */                                                       \
    X(PAUSED, 5)        /* protocol asked not to read this side */                                           \
    X(WAITBUF, 6)       /* recv got -ENOBUFS; waiting for buffers */                                         \
    X(CONNECTING, 7)    /* upstream connect in flight */                                                     \
    X(SPLICE_IN, 8)     /* socket -> pipe splice in flight */                                                \
    X(SPLICE_OUT, 9)    /* pipe -> socket splice in flight */                                                \
    X(POLL, 10)         /* poll for readability in flight (splice path) */                                   \
    X(BACKPRESSURE, 11) /* not read: the other side's queue went over the high watermark */                  \
    X(NONEMPTY, 12)     /* the last receive left data in the socket */

enum {
#define OP_CF_ENUM_(name, bit) OP_CF_##name = 1u << (bit),
    OP_CONN_FLAGS(OP_CF_ENUM_)
#undef OP_CF_ENUM_
};
enum {
#define OP_SF_ENUM_(name, bit) OP_SF_##name = 1u << (bit),
    OP_SIDE_FLAGS(OP_SF_ENUM_)
#undef OP_SF_ENUM_
};

/* Decode a flags word into buf as "NAME|NAME|0x..." (unknown bits in hex; "0" when none is set), for
 * debug logs. Return buf, always NUL-terminated (cut short when len is too small). */
const char *op_conn_flags_str(uint32_t flags, char *buf, size_t len);
const char *op_side_flags_str(uint32_t flags, char *buf, size_t len);

/* A queued piece of outgoing data: a provided receive buffer (zero-copy forward) or a pool chunk. */
struct op_seg {
    uint8_t *base;
    uint32_t off, len;
    int32_t bid; /* >= 0: provided-buffer id to give back after sending; -1: pool chunk */
};

#define OP_OUTQ_SEGS 8
struct op_outq {
    struct op_seg seg[OP_OUTQ_SEGS];
    uint8_t head, count;
    uint32_t bytes;
};

struct op_side_st {
    int fd;
    uint16_t flags;
    uint8_t inflight; /* operations in flight on this fd (recv, send, connect, cancel, ...) */
    struct op_outq q;
    int pipe_rd, pipe_wr; /* splice path only */
    uint32_t pipe_bytes;
};

struct op_conn {
    enum op_conn_state state;
    uint32_t flags;
    uint32_t slot;
    uint16_t gen;
    uint8_t listener;
    struct op_worker *w;
    struct op_side_st side[2];
    struct op_timer timer;
    uint64_t last_active_ms;
    uint32_t idle_ms; /* while tunnelling: idle timeout */
    void *xprt;       /* transport state */
    void *xprt_ctx;
    const struct op_xprt_ops *xops;
    const struct op_proto_ops *pops;
    void *proto_ctx;
    void *proto_state; /* pops->state_size bytes, zeroed at accept */
    uint64_t accepted_ms;
};

#endif
