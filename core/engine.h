/*
 * core/engine.h — the thread-per-core data plane.
 *
 * One worker thread per CPU, each pinned, each with its own io_uring, its own SO_REUSEPORT listener per
 * address, its own connection slots, send-chunk pool, provided-buffer ring and timer wheel. Nothing is
 * shared between workers on the hot path. io_uring performs every socket operation (accept, recv, send,
 * connect, shutdown, close, splice).
 *
 * core/ moves bytes and knows neither TLS nor HTTP. Two small interfaces plug into it:
 *   - a transport (struct op_xprt_ops) turns what a socket carries into plaintext and back (NULL = raw
 *     bytes; tls/ provides the wolfSSL transport): the client's, and an upstream leg's when that leg is a
 *     socket another connection detached with its session (op_conn_detach, op_conn_attach_leg);
 *   - a protocol (struct op_proto_ops) decides what to do with the client's plaintext: relay it to an
 *     upstream (tcp), or parse and route it (http/).
 * Once a protocol calls op_conn_tunnel(), the engine relays both directions itself (the "pump").
 *
 * Threading: every op_conn_* function must be called on the connection's own worker thread (from a
 * protocol or transport callback). Other threads talk to workers with op_engine_post().
 */
#ifndef OP_ENGINE_H
#define OP_ENGINE_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "core/common.h"
#include "core/mpsc.h"
#include "core/timer.h"

struct op_conn;
struct op_worker;
struct op_engine;

enum op_side { OP_CLI = 0, OP_UP = 1 };

#define OP_ENGINE_MAX_WORKERS 64 /* op_engine_conf.workers is capped at this */

/* Connection life cycle, as far as core knows it. Protocols keep their own finer states (e.g. which part
 * of a request they are reading) in their per-connection state. One table gives both the enum and the
 * names op_conn_state_str() prints: X(name, "printed name"). */
#define OP_CONN_STATES(X)                                                                                    \
    X(FREE, "free")           /* slot unused */                                                              \
    X(HANDSHAKE, "handshake") /* transport handshake (TLS) in progress */                                    \
    X(OPEN, "open")           /* transport ready; the protocol owns the connection */                        \
    X(CONNECT, "connect")     /* upstream connect in flight */                                               \
    X(RELAY, "relay")         /* bytes flowing between client and upstream */                                \
    X(HALF, "half-closed")    /* one direction finished (FIN propagated), the other still flowing */         \
    X(CLOSING, "closing")     /* cancelling in-flight operations; freed when none remain */

enum op_conn_state {
#define OP_CS_ENUM_(name, str) OP_CS_##name,
    OP_CONN_STATES(OP_CS_ENUM_)
#undef OP_CS_ENUM_
};
/* The state's printed name ("?" for a value outside the enum). */
const char *op_conn_state_str(enum op_conn_state st);

/* What a transport's input() reports to the engine. */
enum op_xprt_result {
    OP_XPRT_ERROR = -1, /* the session failed: the engine closes the connection */
    OP_XPRT_OK = 0,     /* input consumed; more may follow */
    OP_XPRT_CLOSE_NOTIFY =
        1, /* the client ended the session (TLS close_notify): its EOF, as a FIN would be */
};

/* Transport: byte transformation (TLS) on one side of a connection. Usually the client side (the listener's
 * transport, set up by open() at accept); a session that left another connection with op_conn_detach can
 * also become a connection's upstream side (op_conn_attach_leg). Every method that takes a side works on
 * that side's per-connection state (op_conn_side_xprt) and queues to that side. Methods run on the worker. */
struct op_xprt_ops {
    const char *name;
    /* Bytes of per-worker state the transport keeps (statistics, caches): zeroed, cache-line aligned, one
     * block per worker, reached with op_worker_xprt_state() / op_engine_xprt_state(). 0 = none. */
    size_t worker_state_size;
    /* Sets up the client side's state (op_conn_set_xprt); ctx is the listener's current transport context. */
    int (*open)(struct op_conn *c, void *ctx);
    /* Bytes received from side's socket. Plaintext goes on with op_conn_deliver_from(c, side, ...);
     * handshake replies go out with op_conn_queue(c, side, ...). On the client side it calls
     * op_conn_xprt_ready() exactly once, when the handshake completes and before it delivers any plaintext
     * (an upstream side is attached with its handshake done). Returns an op_xprt_result. */
    enum op_xprt_result (*input)(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n);
    /* Plaintext for side: encode and queue with op_conn_queue(c, side, ...). 0 or negative. */
    int (*output)(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n);
    /* Queue side's close notification, if any. */
    int (*shutdown)(struct op_conn *c, enum op_side side);
    /* The side goes away with its connection (or op_conn_drop_upstream): free its state. */
    void (*close)(struct op_conn *c, enum op_side side);
    /* Optional: moving sessions between connections (op_conn_detach, op_conn_attach_leg); both or neither.
     * bind(): from now on state x belongs to connection c's side (c NULL: to no connection: it must not
     * produce output until bound again). free(): frees state bound to no connection, on any thread. */
    void (*bind)(void *x, struct op_conn *c, enum op_side side);
    void (*free)(void *x);
};

/* A connected stream socket outside any connection slot, with the transport session it carries (xops
 * NULL: raw bytes). op_conn_detach hands one out; op_conn_attach_leg makes one an upstream leg. */
struct op_leg {
    int fd;
    const struct op_xprt_ops *xops;
    void *xprt;
};
/* Closes a leg nobody will attach: closes fd and frees its session (xops->free). Any thread. Leaves fd -1
 * and xops/xprt NULL; a leg already closed (fd -1, no session) is left alone. */
void op_leg_close(struct op_leg *leg);

/* Protocol: what the client's plaintext means. All callbacks optional except on_client_data. */
struct op_proto_ops {
    const char *name;
    size_t
        state_size; /* bytes of per-connection protocol state reserved in each slot (op_conn_proto_state) */
    /* Bytes of per-worker protocol state (statistics): zeroed, cache-line aligned, one block per worker,
     * reached with op_worker_proto_state() / op_engine_proto_state(). 0 = none. */
    size_t worker_state_size;
    /* Largest client receive handed to the protocol while not tunnelling (0 = the receive buffer size).
     * Bounds what a protocol must be able to hold at once (e.g. a head buffer plus one receive). */
    uint32_t max_recv;
    /* Transport is ready (right after accept for raw, after the handshake for TLS). */
    void (*on_open)(struct op_conn *c);
    /* Client plaintext, when not tunnelling. Must take all n bytes (copy what it keeps). 0 or negative. */
    int (*on_client_data)(struct op_conn *c, const uint8_t *p, size_t n);
    /* Upstream bytes, when not tunnelling. 0 or negative. */
    int (*on_upstream_data)(struct op_conn *c, const uint8_t *p, size_t n);
    /* Result of op_conn_connect(): err 0 or negative errno. */
    void (*on_upstream_connected)(struct op_conn *c, int err);
    /* FIN (or reset) from a side, when not tunnelling. */
    void (*on_eof)(struct op_conn *c, enum op_side side);
    /* A side's send queue just became empty. */
    void (*on_drained)(struct op_conn *c, enum op_side side);
    /* The connection's timer fired (op_conn_set_timeout). Default: close. */
    void (*on_timeout)(struct op_conn *c);
    /* Engine is draining (SIGTERM): close if idle. */
    void (*on_drain)(struct op_conn *c);
    /* A message posted to this connection by another thread (op_engine_post_conn). */
    void (*on_message)(struct op_conn *c, void *msg);
    /* Last call before the slot is freed. */
    void (*on_close)(struct op_conn *c);
    /* Instead of on_close for a connection detached with op_conn_detach: leg is the client socket with its
     * transport session (if any), now the callee's (no operation of the engine refers to it any more: attach
     * it or op_leg_close it), or leg->fd -1 when it could not be handed over intact (bytes or an EOF arrived
     * while detaching; the engine closed it and its session). Required by op_conn_detach. */
    void (*on_detached)(struct op_conn *c, struct op_leg *leg);
};

struct op_listener_conf {
    char name[80]; /* "host:port" as given */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const struct op_xprt_ops *xprt; /* NULL = plaintext */
    void *_Atomic xprt_ctx;         /* swapped atomically on reload */
    const struct op_proto_ops *proto;
    void *proto_ctx;
};

struct op_timeouts {
    uint32_t handshake_ms, connect_ms, idle_ms, tunnel_idle_ms, drain_ms;
};

/* How plaintext tunnels move bytes (op_engine_conf.splice). INLINE: the worker calls splice(2) itself on
 * non-blocking sockets and pipes when io_uring polls say a side is readable (or writable again), so a
 * splice never leaves the worker's core; URING: IORING_OP_SPLICE, which the kernel always runs in io-wq
 * threads. Measured side by side in bench/README.md. */
enum op_splice_mode { OP_SPLICE_OFF = 0, OP_SPLICE_INLINE = 1, OP_SPLICE_URING = 2 };
const char *op_splice_mode_name(int mode); /* "off", "inline", "uring" */

struct op_engine_conf {
    int workers;   /* 0 = one per online CPU */
    bool no_pin;   /* do not pin workers to CPUs */
    int first_cpu; /* pin worker i to CPU (first_cpu + i) % ncpu, or to the i-th CPU of the process's affinity
                    * mask when it excludes that one */
    struct op_listener_conf *listeners;
    int nlisteners;
    struct op_timeouts to;
    uint32_t max_conns;     /* per worker (0 = 16384) */
    uint32_t recv_bufs;     /* provided buffers per worker (power of two, 0 = 512) */
    uint32_t recv_buf_size; /* bytes (0 = 64 KiB: measured faster than 16 KiB for bulk, TLS too) */
    uint32_t send_chunks;   /* send-chunk pool per worker (0 = 2048) */
    /* Plaintext tunnels through a bounded pipe pool (op_splice_mode): OFF copies through provided buffers. */
    int splice;
    uint32_t pipe_size; /* bytes per splice pipe (0 = 1 MiB in INLINE mode, 64 KiB in URING mode) */
    uint32_t max_pipes; /* per worker (0 = 256) */
};

/* Statistics of the byte-moving layer: one block per worker, written only by its worker (OP_STAT_ADD),
 * summed by readers with relaxed loads. Protocols and transports count their own events in their
 * per-worker state (worker_state_size). */
struct op_worker_stats {
    _Atomic uint64_t accepted, active, closed, bytes_in, bytes_out, up_bytes_in, up_bytes_out;
    _Atomic uint64_t upstream_connect_errors, rejected_full, enobufs, timeouts;
} __attribute__((aligned(64)));

/* ---- engine lifecycle (called from the main / control thread) ---- */

/* Probes io_uring, starts the workers (each binds its listeners) and waits until they are all up.
 * Returns 0, or a negative errno with a readable reason in err (e.g. io_uring blocked, address in use). */
OP_MUST_USE int op_engine_start(const struct op_engine_conf *conf, struct op_engine **out, char *err,
                                size_t errlen);
/* Begins a graceful drain: stop accepting, let in-flight requests finish, close idle keep-alives,
 * force-close whatever remains after conf->to.drain_ms. Thread-safe, idempotent. */
void op_engine_drain(struct op_engine *e);
/* True once every worker has exited (after a drain). */
bool op_engine_done(struct op_engine *e);
/* Joins the workers and frees the engine. */
void op_engine_free(struct op_engine *e);
int op_engine_nworkers(const struct op_engine *e);
const struct op_worker_stats *op_engine_stats(const struct op_engine *e, int worker);
/* Reader side of the per-worker layer state (any thread; the block is written by its worker only): NULL
 * when no listener uses ops or ops->worker_state_size is 0. */
const void *op_engine_proto_state(const struct op_engine *e, int worker, const struct op_proto_ops *ops);
const void *op_engine_xprt_state(const struct op_engine *e, int worker, const struct op_xprt_ops *ops);

/* Reload: makes ctx the transport context for new connections on listener `li` (existing connections
 * keep theirs). The previous context is passed to release() once every worker has moved past any use of
 * it (each worker acknowledges a message), from a worker thread. Control thread only. 0 or -errno. */
OP_MUST_USE int op_engine_set_xprt_ctx(struct op_engine *e, int li, void *ctx, void (*release)(void *old));

/* Publishing immutable snapshots that workers read through an atomic pointer: after the caller swapped
 * the pointer, release(old) runs once every worker has acknowledged a message posted now (so no worker
 * still holds a pointer loaded before the swap), on a worker thread (or in op_engine_free). Control
 * thread only. 0 or -ENOMEM (then nothing was posted and the caller still owns old). */
OP_MUST_USE int op_engine_retire(struct op_engine *e, void *old, void (*release)(void *old));

/* Cross-thread messages. A message is delivered to fn(worker, msg) on the worker's thread. */
struct op_msg {
    struct op_mpsc_node link;
    void (*fn)(struct op_worker *w, struct op_msg *m);
};
void op_engine_post(struct op_engine *e, int worker, struct op_msg *m);
/* Identifies a connection across threads (slot + generation). */
struct op_conn_ref {
    uint16_t worker;
    uint16_t gen;
    uint32_t slot;
};
struct op_conn_ref op_conn_ref(const struct op_conn *c);
/* Delivers msg to ref's protocol on_message if the connection still exists; returns false (and does
 * nothing) if it is gone; the caller then owns msg. Runs on the worker. */
OP_MUST_USE bool op_worker_deliver(struct op_worker *w, struct op_conn_ref ref, void *msg);
int op_worker_index(const struct op_worker *w);
struct op_engine *op_worker_engine(const struct op_worker *w);
const struct op_timeouts *op_worker_timeouts(const struct op_worker *w);
struct op_worker_stats *op_worker_stats(struct op_worker *w);
/* The worker's block of per-worker state for a protocol / transport (worker thread only; the owner of the
 * state is its only writer). NULL when no listener uses ops or ops->worker_state_size is 0. */
void *op_worker_proto_state(struct op_worker *w, const struct op_proto_ops *ops);
void *op_worker_xprt_state(struct op_worker *w, const struct op_xprt_ops *ops);

/* ---- connection API for transports and protocols (worker thread only) ---- */

/* Scratch buffers from the worker's send-chunk pool (OP_CONN_BUF_SIZE bytes), for protocol state that
 * exists only while needed (e.g. a request head being read). NULL when the pool is empty. */
#define OP_CONN_BUF_SIZE (32u * 1024u)
OP_MUST_USE uint8_t *op_conn_buf_get(struct op_conn *c);
void op_conn_buf_put(struct op_conn *c, uint8_t *buf);

/* What a connection lets its protocol and transport see (the struct itself is core's own). */
struct op_worker *op_conn_worker(const struct op_conn *c);
enum op_conn_state op_conn_state(const struct op_conn *c);
/* Small number naming the connection in logs (its slot on its worker). */
uint32_t op_conn_id(const struct op_conn *c);
/* The engine is draining: the protocol should not keep this connection alive after the current exchange. */
bool op_conn_draining(const struct op_conn *c);
/* The transport handshake is done (always true without a transport). */
bool op_conn_xprt_is_ready(const struct op_conn *c);
/* The protocol's per-connection state (ops->state_size bytes, zeroed at accept) and listener context. */
void *op_conn_proto_state(const struct op_conn *c);
void *op_conn_proto_ctx(const struct op_conn *c);
/* The client transport's per-connection state, set by its open(). */
void *op_conn_xprt(const struct op_conn *c);
void op_conn_set_xprt(struct op_conn *c, void *xprt);
/* A side's transport state (NULL without a transport on that side). */
void *op_conn_side_xprt(const struct op_conn *c, enum op_side side);

/* The one signal that the transport handshake is complete: the connection leaves OP_CS_HANDSHAKE, its
 * handshake timer stops and the protocol's on_open runs. A plaintext connection passes through it at
 * accept; a transport calls it when its handshake completes. Later calls do nothing. */
void op_conn_xprt_ready(struct op_conn *c);
/* Transport hands up client plaintext (routes to the protocol or, when tunnelling, to the upstream). */
OP_MUST_USE int op_conn_deliver(struct op_conn *c, const uint8_t *p, size_t n);
/* The same for plaintext decoded on either side: from the upstream it goes to on_upstream_data or, when
 * tunnelling, to the client (through the client's transport, if any). 0 or negative. */
OP_MUST_USE int op_conn_deliver_from(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n);
/* Appends raw bytes to side's send queue (copied into pool chunks). 0 or -ENOBUFS (then nothing of the
 * bytes that did not fit is queued: the caller must close the connection, never carry on). */
OP_MUST_USE int op_conn_queue(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n);
/* Sends plaintext to a side, through that side's transport if it has one (else raw). 0 or
 * negative (as op_conn_queue: a failure means bytes were lost, so the connection must close). */
OP_MUST_USE int op_conn_send(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n);
/* Like op_conn_send, for bytes that lie inside the receive buffer being delivered right now: the first
 * such call per delivery queues them zero-copy (the buffer is given back once sent) when the destination
 * is raw; otherwise they are copied. */
OP_MUST_USE int op_conn_forward(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n);
/* Bytes queued for a side (backpressure decisions). */
uint32_t op_conn_queued(const struct op_conn *c, enum op_side side);
/* Starts a non-blocking connect to an upstream; completion via on_upstream_connected. 0 or -errno. */
OP_MUST_USE int op_conn_connect(struct op_conn *c, const struct sockaddr *sa, socklen_t len);
/* Makes fd, a connected stream socket (one that another connection detached with op_conn_detach, or any
 * the caller holds), this connection's upstream leg, as op_conn_connect does once connected: completion
 * (err 0) through on_upstream_connected, from the event loop, never inside this call. 0: the connection
 * owns fd (closed with the leg); -ECANCELED (closing) or -ENOTSOCK (not a stream socket): the caller
 * still does. */
OP_MUST_USE int op_conn_attach_upstream(struct op_conn *c, int fd);
/* The same for a leg that may carry a transport session (one op_conn_detach handed out): from then on the
 * upstream's received bytes go through leg->xops->input and what is sent to it through ->output, its
 * half-close sends the session's close notification, and the session is freed with the leg. A tunnel with
 * a transport on either leg copies (no splice). 0: the connection owns the leg; -ECANCELED or -ENOTSOCK:
 * the caller still does. */
OP_MUST_USE int op_conn_attach_leg(struct op_conn *c, const struct op_leg *leg);
/* Takes the client socket out of the engine without closing it: in-flight operations are cancelled and
 * awaited, then the protocol's on_detached(c, leg) runs and the slot is freed. The client's transport
 * session, if any, goes with the socket (its handshake must be complete and its ops must have bind/free).
 * The connection must have no upstream leg, nothing queued to the client, must not be tunnelling, and its
 * protocol must have on_detached. */
void op_conn_detach(struct op_conn *c);
/* Hands the connection to another protocol (e.g. after an HTTP Upgrade to a protocol run in the engine):
 * from now on ops' callbacks run, with ctx as op_conn_proto_ctx and a zeroed per-connection state that must
 * fit the slot (ops->state_size no larger than the largest listener protocol's) and no per-worker state
 * (ops->worker_state_size 0). Not while tunnelling. */
void op_conn_set_proto(struct op_conn *c, const struct op_proto_ops *ops, void *ctx);
/* Closes the upstream leg only (e.g. to reconnect elsewhere); the client stays. */
void op_conn_drop_upstream(struct op_conn *c);
bool op_conn_has_upstream(const struct op_conn *c);
/* Stop / restart reading a side. */
void op_conn_pause(struct op_conn *c, enum op_side side);
void op_conn_resume(struct op_conn *c, enum op_side side);
/* From now on the engine relays both directions itself (tcp mode, HTTP Upgrade). idle_ms: tunnel idle
 * timeout. Any bytes the protocol still holds must be sent with op_conn_send before calling this. */
void op_conn_tunnel(struct op_conn *c, uint32_t idle_ms);
/* Shut the write side of `side` once its queue drains (FIN; TLS sends close_notify first). */
void op_conn_shutdown(struct op_conn *c, enum op_side side);
/* Graceful close: flush what is queued to the client, close_notify/FIN, then close. */
void op_conn_finish(struct op_conn *c);
/* Immediate close (cancels everything in flight). reason is logged at debug level. */
void op_conn_close(struct op_conn *c, const char *reason);
/* (Re)arms the connection's single timer; 0 disarms. */
void op_conn_set_timeout(struct op_conn *c, uint32_t ms);
void op_conn_set_state(struct op_conn *c, enum op_conn_state st);
/* Client address as text ("127.0.0.1", "::1"). */
int op_conn_peer_ip(const struct op_conn *c, char *buf, size_t len);
bool op_conn_is_tls(const struct op_conn *c);

/* Address helper: parses "host:port", "[v6]:port", ":port" (all interfaces) with getaddrinfo (numeric or
 * resolvable names; call off the hot path). 0 or -EINVAL with a reason in err. */
OP_MUST_USE int op_parse_hostport(const char *s, struct sockaddr_storage *out, socklen_t *outlen, char *err,
                                  size_t errlen);

#endif
