/*
 * core/conn_int.h — the connection slot as core sees it. Included by core/ only: protocols and
 * transports go through the op_conn_* accessors of core/engine.h, so these internals can change.
 */
#ifndef OP_CONN_INT_H
#define OP_CONN_INT_H

#include "core/engine.h"

/* Per-connection flags word. */
enum {
    OP_CF_TUNNEL = 1u << 0,      /* engine relays both ways without the protocol */
    OP_CF_TLS = 1u << 1,         /* client leg has a transport */
    OP_CF_XPRT_READY = 1u << 2,  /* transport handshake done */
    OP_CF_FINISH = 1u << 3,      /* close once the client queue drains (graceful) */
    OP_CF_DRAIN_CLOSE = 1u << 4, /* engine is draining: protocol should not keep alive */
    OP_CF_SPLICE = 1u << 5,      /* tunnel uses splice(2) */
    OP_CF_LINGER = 1u << 6,      /* write side shut; reading and discarding until EOF */
    OP_CF_NOTIFY = 1u << 7,      /* transport close notification queued */
};

/* Per-side flags. */
enum {
    OP_SF_RECV = 1u << 0,      /* recv in flight */
    OP_SF_SEND = 1u << 1,      /* send in flight */
    OP_SF_EOF = 1u << 2,       /* peer sent FIN (or error) */
    OP_SF_SHUT_WANT = 1u << 3, /* shut our write side once the queue drains */
    OP_SF_SHUT_DONE = 1u << 4,
    OP_SF_PAUSED = 1u << 5,  /* protocol asked not to read this side */
    OP_SF_WAITBUF = 1u << 6, /* recv got -ENOBUFS; waiting for buffers */
    OP_SF_CONNECTING = 1u << 7,
    OP_SF_SPLICE_IN = 1u << 8, /* socket -> pipe splice in flight */
    OP_SF_SPLICE_OUT = 1u << 9,
    OP_SF_POLL = 1u << 10,         /* poll for readability in flight (splice path) */
    OP_SF_BACKPRESSURE = 1u << 11, /* not read: the other side's queue went over the high watermark */
    OP_SF_NONEMPTY = 1u << 12,     /* the last receive left data in the socket */
};

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
