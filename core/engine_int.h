/*
 * core/engine_int.h — what the engine's own files share; included by the .c files of core/ only. Protocols
 * and transports see core/engine.h, never this: the connection slot, the worker and the engine can change.
 *
 * The engine's files, one job each:
 *   ring.c     io_uring set-up, submission entries and operation tags
 *   bufpool.c  buffer pools: the provided-buffer ring, send chunks and send queues, splice pipes
 *   conn.c     the op_conn_* API that protocols and transports call, state names, flag decoders
 *   pump.c     the relay pump: arming receives/sends/splices, completions, progress, freeing a slot
 *   worker.c   the worker thread: set-up, accept (with its pause at the descriptor limit), messages,
 *              drain, the loop
 *   engine.c   start-up, cross-thread posting, snapshot retirement, per-worker layer state, stop
 *   addr.c     parsing "host:port" addresses
 *
 * Operation tags: every SQE's user_data packs {op, side, upstream epoch, generation, slot}, so a
 * completion that arrives after its connection slot was reused is recognised (generation mismatch)
 * and only releases what it holds (a provided buffer). A connection is freed only when no operation
 * of it remains in flight; teardown cancels everything first.
 */
#ifndef OP_ENGINE_INT_H
#define OP_ENGINE_INT_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/engine.h"

/* ---- the connection slot ------------------------------------------------------------------------ */

/* Per-connection flags word: X(name, bit). op_conn_flags_str() decodes it from the same table. */
#define OP_CONN_FLAGS(X)                                                                                     \
    X(TUNNEL, 0)      /* engine relays both ways without the protocol */                                     \
    X(TLS, 1)         /* client leg has a transport */                                                       \
    X(XPRT_READY, 2)  /* transport handshake done */                                                         \
    X(FINISH, 3)      /* close once the client queue drains (graceful) */                                    \
    X(DRAIN_CLOSE, 4) /* engine is draining: protocol should not keep alive */                               \
    X(SPLICE, 5)      /* tunnel uses splice(2) */                                                            \
    X(LINGER, 6)      /* write side shut; reading and discarding until EOF */                                \
    X(DETACH, 8)      /* closing hands the client socket to on_detached instead of closing it */             \
    X(DETACH_LOST, 9) /* bytes or an EOF were read while detaching: the socket is closed instead */

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
    X(SPLICE_OUT, 9)    /* pipe -> socket splice in flight (inline: waiting for the destination to drain) */ \
    X(POLL, 10)         /* poll for readability in flight (splice path) */                                   \
    X(BACKPRESSURE, 11) /* not read: the other side's queue went over the high watermark */                  \
    X(NONEMPTY, 12)     /* the last receive left data in the socket */                                       \
    X(NOTIFY, 13)       /* the side's transport close notification queued */

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
    const struct op_xprt_ops *xops; /* NULL: raw bytes */
    void *xprt;                     /* the transport's state for this side */
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
    void *xprt_ctx;
    const struct op_proto_ops *pops;
    void *proto_ctx;
    void *proto_state; /* pops->state_size bytes, zeroed at accept */
    uint64_t accepted_ms;
};

/* ---- limits and tags ---------------------------------------------------------------------------- */

#define MAX_LISTENERS  16
#define MAX_WORKERS    OP_ENGINE_MAX_WORKERS
#define CHUNK_SIZE     OP_CONN_BUF_SIZE
#define HIGH_WATERMARK (160u * 1024u)
#define LOW_WATERMARK  (48u * 1024u) /* a side stopped by backpressure resumes below this */
#define SEG_RESERVE    3 /* a side is read only while the other queue has this many free segments */
#define SPLICE_LEN     (64u * 1024u)
/* TCP_NOTSENT_LOWAT on both legs bounds what sits unsent in the kernel. 128 KiB cost 12-18% of
 * one-stream bulk throughput on loopback (more wake-ups); 1 MiB measured at par with no lowat. */
#define NOTSENT_LOWAT  (1024 * 1024)
#define FORWARD_ZC_MIN (16u * 1024u) /* op_conn_forward: smaller spans are copied */
#define BGID           0
/* Out of descriptors (EMFILE/ENFILE) on accept: accepting pauses this long, or until a connection closes. */
#define ACCEPT_BACKOFF_MS 100
#define EMFILE_WARN_MS    1000 /* at most one warning per worker this often */

enum op_tag {
    TAG_NONE = 0,
    TAG_ACCEPT,
    TAG_RECV,
    TAG_SEND,
    TAG_CONNECT,
    TAG_SHUTDOWN,
    TAG_CANCEL,
    TAG_WAKE,
    TAG_POLL,
    TAG_SPLICE_IN,
    TAG_SPLICE_OUT,
    TAG_POLL_OUT, /* inline splice: the destination of this side's direction is writable again */
};

static inline uint64_t mk_tag(enum op_tag op, int side, int epoch, uint16_t gen, uint32_t slot)
{
    return (uint64_t)op | ((uint64_t)side << 8) | ((uint64_t)epoch << 9) | ((uint64_t)gen << 16) |
           ((uint64_t)slot << 32);
}
#define TAG_OP(t)    ((enum op_tag)((t)&0xff))
#define TAG_SIDE(t)  ((int)(((t) >> 8) & 1))
#define TAG_EPOCH(t) ((int)(((t) >> 9) & 1))
#define TAG_GEN(t)   ((uint16_t)(((t) >> 16) & 0xffff))
#define TAG_SLOT(t)  ((uint32_t)((t) >> 32))

/* Single-writer statistics: plain load + store, no locked instructions on the hot path. */
#define STAT_ADD(w, field, n) OP_STAT_ADD((w)->stats.field, n)

/*
 * The zero-copy contract between the pump and op_conn_forward(): while a protocol callback
 * (on_client_data, on_upstream_data) reads the bytes of one provided receive buffer, the worker records
 * that buffer here. op_conn_forward() may then queue a span of it on the other side as is, instead of
 * copying; the buffer is "kept" (at most one span per delivery), and the pump does not give it back to
 * the ring until that send completes. Outside a delivery bid is -1, and forwarding copies. One per
 * worker: deliveries never nest (a callback cannot cause another receive completion to be handled).
 */
struct op_delivery {
    uint8_t *base;
    uint32_t len;
    int bid; /* provided-buffer id, -1 outside a delivery */
    bool kept;
};

static inline void delivery_begin(struct op_delivery *d, uint8_t *base, uint32_t len, int bid)
{
    OP_BUG_ON(d->bid >= 0); /* nested delivery */
    d->base = base, d->len = len, d->bid = bid, d->kept = false;
}
/* Ends the delivery; true when op_conn_forward kept the buffer (the pump must not recycle it). */
static inline bool delivery_end(struct op_delivery *d)
{
    d->bid = -1;
    return d->kept;
}
/* The buffer id to queue [p, p+n) zero-copy with (marking the buffer kept), or -1 when those bytes are not
 * in an unkept buffer being delivered. */
static inline int delivery_take(struct op_delivery *d, const uint8_t *p, size_t n)
{
    if (d->bid < 0 || d->kept || p < d->base || p + n > d->base + d->len) return -1;
    d->kept = true;
    return d->bid;
}

/* Per-connection extras that protocols never see: the upstream "graveyard" (an upstream leg that was
 * dropped while operations were still in flight), the epoch that tells its completions apart, and a
 * transport state dropped while it was decoding. */
struct conn_priv {
    int old_up_fd;
    uint8_t old_up_inflight;
    uint8_t up_epoch;
    /* The transport state whose input() is running (a protocol callback inside it may drop that leg), and
     * such a dropped state: freed once input() returned. */
    void *xinput, *xdead;
};

struct op_worker {
    int idx;
    struct op_engine *e;
    pthread_t thr;
    struct io_uring ring;
    int listen_fd[MAX_LISTENERS];
    bool accept_armed[MAX_LISTENERS];
    /* Accepting paused after EMFILE/ENFILE: re-armed at accept_resume_ms or as soon as a connection closes
     * (which frees a descriptor), so a full process neither spins on accept nor stops serving. */
    bool accept_paused[MAX_LISTENERS];
    bool any_accept_paused;
    uint64_t accept_resume_ms;
    uint64_t emfile_warned_ms;  /* last warning (0 = never) */
    uint32_t emfile_since_warn; /* accept failures since that warning */
    int efd;
    uint64_t efd_buf;
    bool wake_armed;

    uint8_t *slots;
    size_t stride;
    uint32_t nslots;
    uint32_t *free_slots;
    uint32_t nfree;
    uint32_t nconns;

    struct io_uring_buf_ring *br;
    uint8_t *pbuf_mem;
    uint32_t nbufs, buf_size, bufs_held;

    uint8_t *chunk_mem;
    uint32_t *free_chunks;
    uint32_t nchunks, nfree_chunks;

    int *pipes; /* free pipe pairs: [rd, wr] */
    uint32_t npipes_free, max_pipes, pipes_made, pipe_size;
    int splice_mode; /* enum op_splice_mode */

    struct op_wheel wheel;
    uint64_t now;
    uint32_t nwaiting;             /* sides waiting for receive buffers */
    struct op_delivery delivering; /* the receive buffer a protocol callback is reading right now */
    op_mpsc_t inbox;

    bool draining;
    bool stop;
    uint64_t drain_deadline;
    struct op_worker_stats stats;

    int start_rc;
    char start_err[256];
};

/* Per-worker state of the protocols and transports the listeners use: one entry per distinct ops, each
 * block cache-line aligned at `off` within the worker's stretch of layer_mem. */
struct layer_slot {
    const void *ops;
    size_t off;
};

struct op_engine {
    struct op_engine_conf conf;
    int nworkers;
    struct op_worker *workers;
    struct layer_slot layers[2 * MAX_LISTENERS];
    int nlayers;
    size_t layer_stride; /* bytes of layer state per worker (a multiple of 64) */
    uint8_t *layer_mem;
    atomic_bool draining;
    atomic_int running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started;
};

static inline struct conn_priv *conn_priv(struct op_conn *c)
{
    return (struct conn_priv *)((uint8_t *)c + sizeof(struct op_conn));
}

static inline struct op_conn *slot_conn(struct op_worker *w, uint32_t slot)
{
    return (struct op_conn *)(w->slots + (size_t)slot * w->stride);
}

static inline struct op_seg *outq_tail(struct op_outq *q)
{
    return q->count ? &q->seg[(q->head + q->count - 1) % OP_OUTQ_SEGS] : NULL;
}

/* ---- shared between the engine's files ---------------------------------------------------------- */

/* ring.c */
void tune_socket(int fd); /* TCP_NODELAY + TCP_NOTSENT_LOWAT, best effort */
/* The next free SQE (submits once when the queue is full; aborts if it stays full). */
struct io_uring_sqe *get_sqe(struct op_worker *w);
/* Tags sqe for connection c's side and counts it in flight there. */
void conn_sqe_tag(struct op_conn *c, struct io_uring_sqe *sqe, enum op_tag op, int side);
void cancel_fd(struct op_conn *c, int side, int fd); /* cancels every operation on fd */
/* io_uring set-up with the engine's flags (older kernels: cooperative task running); 0 or -errno with the
 * cause in err. */
OP_MUST_USE int ring_init(struct io_uring *ring, unsigned entries, char *err, size_t errlen);

/* bufpool.c */
void recycle_pbuf(struct op_worker *w, int bid); /* gives a provided buffer back to the ring */
void seg_release(struct op_worker *w, struct op_seg *s);
void outq_clear(struct op_worker *w, struct op_outq *q); /* releases every queued segment */
/* Queues provided buffer bid itself (zero-copy); the caller checked there is a free segment. */
void queue_pbuf(struct op_conn *c, enum op_side side, uint8_t *base, uint32_t len, int bid);
bool has_room(const struct op_conn *c, enum op_side dest); /* under the high watermark (bytes, segments) */
void pipe_release(struct op_worker *w, struct op_side_st *s);
bool splice_get_pipe(struct op_worker *w, struct op_side_st *s); /* false when the pipe pool is exhausted */
void buf_wait(struct op_conn *c, int side); /* the side's receive got -ENOBUFS: wait for buffers */
void wake_buf_waiters(struct op_worker *w); /* once half the ring is back */
OP_MUST_USE int pools_init(struct op_worker *w, char *err, size_t errlen);
void pools_ring_teardown(struct op_worker *w); /* before the ring exits */
void pools_free(struct op_worker *w);          /* in op_engine_free */

/* conn.c */
void side_reset(struct op_worker *w, struct op_side_st *s); /* empties a side (queue, pipe), fd -1 */
void side_xprt_close(struct op_conn *c, int side);          /* frees the side's transport state, if any */

/* pump.c */
void conn_progress(struct op_conn *c); /* decides what to arm next after any event */
void conn_try_free(struct op_conn *c); /* frees the slot once nothing of it is in flight */
void handle_conn_cqe(struct op_worker *w, struct io_uring_cqe *cqe);
void handle_timer(struct op_timer *t);

/* worker.c */
void accept_resume(struct op_worker *w); /* re-arms paused accepts (a descriptor was freed) */
void worker_free(struct op_worker *w);   /* in op_engine_free: late messages, pools, slots */
void *worker_main(void *arg);

#endif
