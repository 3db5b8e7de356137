/*
 * core/engine.c — workers, rings, listeners, connection slots and the symmetric relay pump.
 *
 * Operation tags: every SQE's user_data packs {op, side, upstream epoch, generation, slot}, so a
 * completion that arrives after its connection slot was reused is recognised (generation mismatch)
 * and only releases what it holds (a provided buffer). A connection is freed only when no operation
 * of it remains in flight; teardown cancels everything first.
 *
 * Buffers: receives use a per-worker provided-buffer ring (no per-connection receive buffers, so an
 * idle connection holds none). Raw bytes are forwarded zero-copy: the provided buffer itself is queued
 * on the other side and given back to the ring when the send completes. Transformed bytes (TLS, HTTP
 * heads) are copied into send chunks from a per-worker pool. Both pools are allocated at start-up.
 *
 * Backpressure: a side is read only while the other side's queue is under the high watermark
 * (bytes and segments), so a slow reader stops its writer at the TCP level.
 */
#include "core/engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/conn_int.h"
#include "core/log.h"

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

/* Per-connection extras that protocols never see: the upstream "graveyard" (an upstream leg that was
 * dropped while operations were still in flight) and the epoch that tells its completions apart. */
struct conn_priv {
    int old_up_fd;
    uint8_t old_up_inflight;
    uint8_t up_epoch;
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
    uint32_t npipes_free, max_pipes, pipes_made;

    struct op_wheel wheel;
    uint64_t now;
    uint32_t nwaiting; /* sides waiting for receive buffers */
    struct {           /* the receive buffer being delivered to a protocol (op_conn_forward) */
        uint8_t *base;
        uint32_t len;
        int bid;
        bool kept;
    } cur;
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

static void conn_progress(struct op_conn *c);
static void conn_try_free(struct op_conn *c);
static void accept_resume(struct op_worker *w);
static void handle_timer(struct op_timer *t);

static const char *const state_names[] = {
#define STATE_NAME_(name, str) [OP_CS_##name] = str,
    OP_CONN_STATES(STATE_NAME_)
#undef STATE_NAME_
};
const char *op_conn_state_str(enum op_conn_state st)
{
    return (unsigned)st < OP_ARRAY_LEN(state_names) ? state_names[st] : "?";
}

struct flag_name {
    uint32_t bit;
    const char *name;
};
static const struct flag_name conn_flag_names[] = {
#define FLAG_NAME_(name, bit) {1u << (bit), #name},
    OP_CONN_FLAGS(FLAG_NAME_)};
static const struct flag_name side_flag_names[] = {OP_SIDE_FLAGS(FLAG_NAME_)};
#undef FLAG_NAME_

static const char *flags_str(const struct flag_name *names, size_t n, uint32_t flags, char *buf, size_t len)
{
    size_t at = 0;
    if (!len) return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < n && at < len; i++) {
        if (!(flags & names[i].bit)) continue;
        flags &= ~names[i].bit;
        int k = snprintf(buf + at, len - at, "%s%s", at ? "|" : "", names[i].name);
        at += k > 0 ? (size_t)k : 0;
    }
    if (flags && at < len) {
        int k = snprintf(buf + at, len - at, "%s0x%x", at ? "|" : "", flags);
        at += k > 0 ? (size_t)k : 0;
    }
    if (at == 0) snprintf(buf, len, "0");
    return buf;
}
const char *op_conn_flags_str(uint32_t flags, char *buf, size_t len)
{
    return flags_str(conn_flag_names, OP_ARRAY_LEN(conn_flag_names), flags, buf, len);
}
const char *op_side_flags_str(uint32_t flags, char *buf, size_t len)
{
    return flags_str(side_flag_names, OP_ARRAY_LEN(side_flag_names), flags, buf, len);
}

static inline struct conn_priv *conn_priv(struct op_conn *c)
{
    return (struct conn_priv *)((uint8_t *)c + sizeof(struct op_conn));
}

static inline struct op_conn *slot_conn(struct op_worker *w, uint32_t slot)
{
    return (struct op_conn *)(w->slots + (size_t)slot * w->stride);
}

/* ---------------------------------------------------------------------------------------------- */
/* submission helpers                                                                               */

/* Latency and buffering options on a connected socket. Tuning only: a socket that refuses them still works,
 * so a failure is not an error. */
static void tune_socket(int fd)
{
    int one = 1, lowat = NOTSENT_LOWAT;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
}

static struct io_uring_sqe *get_sqe(struct op_worker *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (OP_UNLIKELY(!sqe)) {
        io_uring_submit(&w->ring);
        sqe = io_uring_get_sqe(&w->ring);
        if (!sqe) {
            op_error("engine", "worker %d: submission queue stuck full", w->idx);
            abort();
        }
    }
    return sqe;
}

static void conn_sqe_tag(struct op_conn *c, struct io_uring_sqe *sqe, enum op_tag op, int side)
{
    struct conn_priv *pv = conn_priv(c);
    io_uring_sqe_set_data64(sqe, mk_tag(op, side, side == OP_UP ? pv->up_epoch : 0, c->gen, c->slot));
    c->side[side].inflight++;
}

/* ---------------------------------------------------------------------------------------------- */
/* buffers                                                                                          */

static void recycle_pbuf(struct op_worker *w, int bid)
{
    io_uring_buf_ring_add(w->br, w->pbuf_mem + (size_t)bid * w->buf_size, w->buf_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(w->nbufs), 0);
    io_uring_buf_ring_advance(w->br, 1);
    w->bufs_held--;
}

static uint8_t *chunk_get(struct op_worker *w)
{
    if (!w->nfree_chunks) return NULL;
    return w->chunk_mem + (size_t)w->free_chunks[--w->nfree_chunks] * CHUNK_SIZE;
}

static void chunk_put(struct op_worker *w, uint8_t *p)
{
    w->free_chunks[w->nfree_chunks++] = (uint32_t)((size_t)(p - w->chunk_mem) / CHUNK_SIZE);
}

uint8_t *op_conn_buf_get(struct op_conn *c)
{
    return chunk_get(c->w);
}
void op_conn_buf_put(struct op_conn *c, uint8_t *buf)
{
    if (buf) chunk_put(c->w, buf);
}

static void seg_release(struct op_worker *w, struct op_seg *s)
{
    if (s->bid >= 0)
        recycle_pbuf(w, s->bid);
    else
        chunk_put(w, s->base);
    s->base = NULL;
}

static void outq_clear(struct op_worker *w, struct op_outq *q)
{
    while (q->count) {
        seg_release(w, &q->seg[q->head]);
        q->head = (uint8_t)((q->head + 1) % OP_OUTQ_SEGS);
        q->count--;
    }
    q->bytes = 0;
}

static inline struct op_seg *outq_tail(struct op_outq *q)
{
    return q->count ? &q->seg[(q->head + q->count - 1) % OP_OUTQ_SEGS] : NULL;
}

int op_conn_queue(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    struct op_outq *q = &c->side[side].q;
    while (n) {
        struct op_seg *t = outq_tail(q);
        if (t && t->bid < 0 && t->off + t->len < CHUNK_SIZE) {
            size_t room = CHUNK_SIZE - (t->off + t->len);
            size_t k = OP_MIN(room, n);
            memcpy(t->base + t->off + t->len, p, k);
            t->len += (uint32_t)k;
            q->bytes += (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        if (q->count == OP_OUTQ_SEGS) return -ENOBUFS;
        uint8_t *ch = chunk_get(c->w);
        if (!ch) {
            STAT_ADD(c->w, enobufs, 1);
            return -ENOBUFS;
        }
        struct op_seg *s = &q->seg[(q->head + q->count) % OP_OUTQ_SEGS];
        s->base = ch;
        s->off = s->len = 0;
        s->bid = -1;
        q->count++;
    }
    return 0;
}

/* Queues a provided buffer itself (zero-copy forward). The caller checked there is a free segment. */
static void queue_pbuf(struct op_conn *c, enum op_side side, uint8_t *base, uint32_t len, int bid)
{
    struct op_outq *q = &c->side[side].q;
    struct op_seg *s = &q->seg[(q->head + q->count) % OP_OUTQ_SEGS];
    s->base = base;
    s->off = 0;
    s->len = len;
    s->bid = bid;
    q->count++;
    q->bytes += len;
}

static bool has_room(const struct op_conn *c, enum op_side dest)
{
    const struct op_outq *q = &c->side[dest].q;
    return q->count <= OP_OUTQ_SEGS - SEG_RESERVE && q->bytes < HIGH_WATERMARK;
}

/* ---------------------------------------------------------------------------------------------- */
/* connection API                                                                                   */

struct op_conn_ref op_conn_ref(const struct op_conn *c)
{
    struct op_conn_ref r = {(uint16_t)c->w->idx, c->gen, c->slot};
    return r;
}

int op_worker_index(const struct op_worker *w)
{
    return w->idx;
}
struct op_engine *op_worker_engine(const struct op_worker *w)
{
    return w->e;
}
const struct op_timeouts *op_worker_timeouts(const struct op_worker *w)
{
    return &w->e->conf.to;
}
struct op_worker_stats *op_worker_stats(struct op_worker *w)
{
    return &w->stats;
}

static uint8_t *layer_block(const struct op_engine *e, int worker, const void *ops)
{
    for (int i = 0; i < e->nlayers; i++)
        if (e->layers[i].ops == ops)
            return e->layer_mem + (size_t)worker * e->layer_stride + e->layers[i].off;
    return NULL;
}
void *op_worker_proto_state(struct op_worker *w, const struct op_proto_ops *ops)
{
    return layer_block(w->e, w->idx, ops);
}
void *op_worker_xprt_state(struct op_worker *w, const struct op_xprt_ops *ops)
{
    return layer_block(w->e, w->idx, ops);
}
const void *op_engine_proto_state(const struct op_engine *e, int worker, const struct op_proto_ops *ops)
{
    return worker >= 0 && worker < e->nworkers ? layer_block(e, worker, ops) : NULL;
}
const void *op_engine_xprt_state(const struct op_engine *e, int worker, const struct op_xprt_ops *ops)
{
    return worker >= 0 && worker < e->nworkers ? layer_block(e, worker, ops) : NULL;
}

struct op_worker *op_conn_worker(const struct op_conn *c)
{
    return c->w;
}
enum op_conn_state op_conn_state(const struct op_conn *c)
{
    return c->state;
}
uint32_t op_conn_id(const struct op_conn *c)
{
    return c->slot;
}
bool op_conn_draining(const struct op_conn *c)
{
    return (c->flags & OP_CF_DRAIN_CLOSE) != 0;
}
bool op_conn_xprt_is_ready(const struct op_conn *c)
{
    return (c->flags & OP_CF_XPRT_READY) != 0;
}
void *op_conn_proto_state(const struct op_conn *c)
{
    return c->proto_state;
}
void *op_conn_proto_ctx(const struct op_conn *c)
{
    return c->proto_ctx;
}
void *op_conn_xprt(const struct op_conn *c)
{
    return c->xprt;
}
void op_conn_set_xprt(struct op_conn *c, void *xprt)
{
    c->xprt = xprt;
}
uint32_t op_conn_queued(const struct op_conn *c, enum op_side side)
{
    return c->side[side].q.bytes;
}
bool op_conn_is_tls(const struct op_conn *c)
{
    return (c->flags & OP_CF_TLS) != 0;
}
bool op_conn_has_upstream(const struct op_conn *c)
{
    return c->side[OP_UP].fd >= 0;
}

void op_conn_set_state(struct op_conn *c, enum op_conn_state st)
{
    if (c->state != OP_CS_CLOSING) c->state = st;
}

void op_conn_set_timeout(struct op_conn *c, uint32_t ms)
{
    if (ms == 0)
        op_timer_cancel(&c->w->wheel, &c->timer);
    else
        op_timer_set(&c->w->wheel, &c->timer, c->w->now, ms);
}

void op_conn_pause(struct op_conn *c, enum op_side side)
{
    c->side[side].flags |= OP_SF_PAUSED;
}

void op_conn_resume(struct op_conn *c, enum op_side side)
{
    c->side[side].flags &= (uint16_t)~OP_SF_PAUSED;
    conn_progress(c);
}

int op_conn_peer_ip(const struct op_conn *c, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(c->side[OP_CLI].fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(buf, len, "unknown");
        return -errno;
    }
    const void *a = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                             : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (!inet_ntop(ss.ss_family, a, buf, (socklen_t)len)) {
        snprintf(buf, len, "unknown");
        return -errno;
    }
    return 0;
}

void op_conn_xprt_ready(struct op_conn *c)
{
    if (c->flags & OP_CF_XPRT_READY) return;
    c->flags |= OP_CF_XPRT_READY;
    if (c->state == OP_CS_HANDSHAKE) c->state = OP_CS_OPEN;
    op_conn_set_timeout(c, 0);
    if (c->pops->on_open) c->pops->on_open(c);
}

int op_conn_send(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    if (side == OP_CLI && c->xops) return c->xops->output(c, p, n);
    return op_conn_queue(c, side, p, n);
}

int op_conn_forward(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    struct op_worker *w = c->w;
    bool raw = side == OP_UP || !c->xops;
    /* Zero-copy only pays for large spans that would not merge into a partly filled chunk: an extra
     * segment costs an extra send, far more than copying a few KiB. */
    const struct op_seg *t = outq_tail(&c->side[side].q);
    bool tail_open = t && t->bid < 0 && t->off + t->len < CHUNK_SIZE;
    if (raw && n >= FORWARD_ZC_MIN && !tail_open && w->cur.bid >= 0 && !w->cur.kept && p >= w->cur.base &&
        p + n <= w->cur.base + w->cur.len && c->side[side].q.count < OP_OUTQ_SEGS) {
        queue_pbuf(c, side, (uint8_t *)p, (uint32_t)n, w->cur.bid);
        w->cur.kept = true;
        return 0;
    }
    return op_conn_send(c, side, p, n);
}

int op_conn_deliver(struct op_conn *c, const uint8_t *p, size_t n)
{
    if (c->state == OP_CS_CLOSING || (c->flags & OP_CF_LINGER)) return 0;
    if (c->flags & OP_CF_TUNNEL) return op_conn_queue(c, OP_UP, p, n);
    return c->pops->on_client_data(c, p, n);
}

void op_conn_shutdown(struct op_conn *c, enum op_side side)
{
    c->side[side].flags |= OP_SF_SHUT_WANT;
}

void op_conn_finish(struct op_conn *c)
{
    if (c->flags & OP_CF_FINISH) return;
    c->flags |= OP_CF_FINISH;
    c->side[OP_CLI].flags &= (uint16_t)~OP_SF_PAUSED; /* read (and drop) until the client's FIN */
    op_conn_shutdown(c, OP_CLI);
    op_conn_drop_upstream(c);
    /* Whatever happens, the client gets at most this long to take the rest and say goodbye. */
    op_conn_set_timeout(c, 30000);
}

void op_conn_tunnel(struct op_conn *c, uint32_t idle_ms)
{
    c->flags |= OP_CF_TUNNEL;
    c->idle_ms = idle_ms;
    op_conn_set_state(c, OP_CS_RELAY);
    c->side[OP_CLI].flags &= (uint16_t)~OP_SF_PAUSED;
    c->side[OP_UP].flags &= (uint16_t)~OP_SF_PAUSED;
    if (idle_ms) op_conn_set_timeout(c, idle_ms);
    if (c->w->e->conf.splice && !(c->flags & OP_CF_TLS)) c->flags |= OP_CF_SPLICE;
}

static void cancel_fd(struct op_conn *c, int side, int fd)
{
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    conn_sqe_tag(c, sqe, TAG_CANCEL, side);
}

static void pipe_release(struct op_worker *w, struct op_side_st *s)
{
    if (s->pipe_rd < 0) return;
    if (s->pipe_bytes == 0 && w->npipes_free < w->max_pipes) {
        w->pipes[2 * w->npipes_free] = s->pipe_rd;
        w->pipes[2 * w->npipes_free + 1] = s->pipe_wr;
        w->npipes_free++;
    } else { /* a pipe that still holds bytes is not reusable */
        close(s->pipe_rd);
        close(s->pipe_wr);
        w->pipes_made--;
    }
    s->pipe_rd = s->pipe_wr = -1;
    s->pipe_bytes = 0;
}

static void side_reset(struct op_worker *w, struct op_side_st *s)
{
    outq_clear(w, &s->q);
    pipe_release(w, s);
    s->fd = -1;
    s->flags = 0;
    s->q.head = 0;
}

void op_conn_drop_upstream(struct op_conn *c)
{
    struct op_side_st *up = &c->side[OP_UP];
    struct conn_priv *pv = conn_priv(c);
    if (up->fd < 0) return;
    if (up->inflight == 0) {
        close(up->fd);
    } else {
        if (pv->old_up_fd >= 0) { /* one leg is already being torn down: give up on this connection */
            op_conn_close(c, "upstream dropped twice while busy");
            return;
        }
        cancel_fd(c, OP_UP, up->fd);
        pv->old_up_fd = up->fd;
        pv->old_up_inflight = up->inflight;
        pv->up_epoch ^= 1;
    }
    up->inflight = 0;
    side_reset(c->w, up);
}

int op_conn_connect(struct op_conn *c, const struct sockaddr *sa, socklen_t len)
{
    struct op_side_st *up = &c->side[OP_UP];
    if (up->fd >= 0) op_conn_drop_upstream(c);
    if (c->state == OP_CS_CLOSING) return -ECANCELED;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    tune_socket(fd);
    up->fd = fd;
    up->flags = OP_SF_CONNECTING;
    /* The sockaddr must stay valid until the kernel copied it: io_uring copies it at prep/issue time for
     * connect (it is read during submission), and we submit before returning to the caller's stack. */
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_connect(sqe, fd, sa, len);
    conn_sqe_tag(c, sqe, TAG_CONNECT, OP_UP);
    io_uring_submit(&c->w->ring);
    op_conn_set_state(c, OP_CS_CONNECT);
    return 0;
}

void op_conn_close(struct op_conn *c, const char *reason)
{
    if (c->state == OP_CS_CLOSING || c->state == OP_CS_FREE) return;
    if (op_log_enabled(OP_LOG_DEBUG)) {
        char f[128], cf[160], uf[160];
        op_debug("conn", "w%d#%u close in %s [%s] cli [%s] up [%s]: %s", c->w->idx, c->slot,
                 op_conn_state_str(c->state), op_conn_flags_str(c->flags, f, sizeof(f)),
                 op_side_flags_str(c->side[OP_CLI].flags, cf, sizeof(cf)),
                 op_side_flags_str(c->side[OP_UP].flags, uf, sizeof(uf)), reason);
    }
    c->state = OP_CS_CLOSING;
    op_timer_cancel(&c->w->wheel, &c->timer);
    if (c->side[OP_CLI].inflight || c->side[OP_UP].inflight) /* splice ops may sit on the other fd */
        for (int s = 0; s < 2; s++)
            if (c->side[s].fd >= 0) cancel_fd(c, s, c->side[s].fd);
}

/* ---------------------------------------------------------------------------------------------- */
/* the pump                                                                                         */

static void arm_recv(struct op_conn *c, int side)
{
    struct op_side_st *s = &c->side[side];
    struct io_uring_sqe *sqe = get_sqe(c->w);
    uint32_t len = c->w->buf_size;
    if (side == OP_CLI && !(c->flags & OP_CF_TUNNEL) && c->pops->max_recv && c->pops->max_recv < len)
        len = c->pops->max_recv; /* with a transport this bounds ciphertext, so plaintext too */
    io_uring_prep_recv(sqe, s->fd, NULL, len, 0);
    /* Unless the last receive said more is queued, poll first: skips a receive attempt that would only
     * find an empty socket (the common case between requests). */
    if (!(s->flags & OP_SF_NONEMPTY)) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    conn_sqe_tag(c, sqe, TAG_RECV, side);
    s->flags |= OP_SF_RECV;
}

static void arm_send(struct op_conn *c, int side)
{
    struct op_side_st *s = &c->side[side];
    struct op_seg *g = &s->q.seg[s->q.head];
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_send(sqe, s->fd, g->base + g->off, g->len, MSG_NOSIGNAL);
    conn_sqe_tag(c, sqe, TAG_SEND, side);
    s->flags |= OP_SF_SEND;
}

static void arm_shutdown(struct op_conn *c, int side)
{
    struct op_side_st *s = &c->side[side];
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_shutdown(sqe, s->fd, SHUT_WR);
    conn_sqe_tag(c, sqe, TAG_SHUTDOWN, side);
    s->flags |= OP_SF_SHUT_DONE;
}

/* Splice path: poll the source for readability, then socket -> pipe -> socket. */
static bool splice_get_pipe(struct op_worker *w, struct op_side_st *s)
{
    if (s->pipe_rd >= 0) return true;
    if (w->npipes_free) {
        w->npipes_free--;
        s->pipe_rd = w->pipes[2 * w->npipes_free];
        s->pipe_wr = w->pipes[2 * w->npipes_free + 1];
        return true;
    }
    if (w->pipes_made >= w->max_pipes) return false;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return false;
    fcntl(p[1], F_SETPIPE_SZ, (int)SPLICE_LEN);
    w->pipes_made++;
    s->pipe_rd = p[0];
    s->pipe_wr = p[1];
    return true;
}

static void arm_poll(struct op_conn *c, int side, unsigned events)
{
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_poll_add(sqe, c->side[side].fd, events);
    conn_sqe_tag(c, sqe, TAG_POLL, side);
    c->side[side].flags |= OP_SF_POLL;
}

/* Drives one splice direction: source side `src` into the pipe it owns, then out to the other side. */
static void splice_progress(struct op_conn *c, int src)
{
    struct op_side_st *s = &c->side[src], *d = &c->side[!src];
    if (s->flags & (OP_SF_POLL | OP_SF_SPLICE_IN | OP_SF_SPLICE_OUT)) return;
    if (s->pipe_bytes > 0) {
        struct io_uring_sqe *sqe = get_sqe(c->w);
        io_uring_prep_splice(sqe, s->pipe_rd, -1, d->fd, -1, s->pipe_bytes, SPLICE_F_MOVE);
        conn_sqe_tag(c, sqe, TAG_SPLICE_OUT, src);
        s->flags |= OP_SF_SPLICE_OUT;
        return;
    }
    if (s->flags & OP_SF_EOF) {
        if (!(d->flags & OP_SF_SHUT_WANT)) op_conn_shutdown(c, (enum op_side) !src);
        return;
    }
    arm_poll(c, src, POLLIN | POLLRDHUP);
}

static void maybe_arm_recv(struct op_conn *c, int side)
{
    struct op_side_st *s = &c->side[side];
    if (s->fd < 0 || (s->flags & (OP_SF_RECV | OP_SF_EOF | OP_SF_PAUSED | OP_SF_WAITBUF | OP_SF_CONNECTING)))
        return;
    if (!(c->flags & OP_CF_LINGER)) {
        const struct op_outq *dq = &c->side[!side].q;
        if (s->flags & OP_SF_BACKPRESSURE) { /* hysteresis: wait until the other side drained well down */
            if (dq->bytes > LOW_WATERMARK || dq->count > SEG_RESERVE) return;
            s->flags &= (uint16_t)~OP_SF_BACKPRESSURE;
        } else if (!has_room(c, (enum op_side) !side)) {
            s->flags |= OP_SF_BACKPRESSURE;
            return;
        }
    }
    arm_recv(c, side);
}

static void side_flush(struct op_conn *c, int side)
{
    struct op_side_st *s = &c->side[side];
    if (s->fd < 0 || (s->flags & (OP_SF_SEND | OP_SF_CONNECTING | OP_SF_SPLICE_OUT))) return;
    if (s->q.count) {
        arm_send(c, side);
        return;
    }
    if ((s->flags & OP_SF_SHUT_WANT) && !(s->flags & OP_SF_SHUT_DONE)) {
        if (side == OP_CLI && c->xops && !(c->flags & OP_CF_NOTIFY) && (c->flags & OP_CF_XPRT_READY)) {
            c->flags |= OP_CF_NOTIFY;
            if (c->xops->shutdown(c) == 0 && s->q.count) {
                arm_send(c, side);
                return;
            }
        }
        if (side == OP_CLI && (c->flags & OP_CF_FINISH))
            c->flags |= OP_CF_LINGER; /* from now on client bytes are read and dropped until its FIN */
        arm_shutdown(c, side);
    }
}

/* The single place that decides what to do next for a connection after any event. */
static void conn_progress(struct op_conn *c)
{
    if (c->state == OP_CS_FREE) return;
    if (c->state == OP_CS_CLOSING) {
        conn_try_free(c);
        return;
    }
    struct op_side_st *cli = &c->side[OP_CLI], *up = &c->side[OP_UP];
    for (int s = 0; s < 2; s++)
        side_flush(c, s);
    if (c->flags & OP_CF_SPLICE) {
        if (cli->q.count == 0 && up->q.count == 0 && up->fd >= 0 && !(up->flags & OP_SF_CONNECTING)) {
            if (!splice_get_pipe(c->w, cli) || !splice_get_pipe(c->w, up)) {
                c->flags &= ~(uint32_t)OP_CF_SPLICE; /* pipe pool exhausted: this tunnel copies */
            } else {
                splice_progress(c, OP_CLI);
                splice_progress(c, OP_UP);
                for (int s = 0; s < 2; s++) /* a direction that just ended wants its FIN sent */
                    side_flush(c, s);
            }
        }
    }
    if (!(c->flags & OP_CF_SPLICE)) {
        maybe_arm_recv(c, OP_CLI);
        maybe_arm_recv(c, OP_UP);
    }
    if (c->flags & OP_CF_TUNNEL) {
        bool cli_done = (cli->flags & OP_SF_EOF) && (up->flags & OP_SF_SHUT_DONE);
        bool up_done = (up->flags & OP_SF_EOF) && (cli->flags & OP_SF_SHUT_DONE);
        if (cli_done && up_done && !(cli->flags & OP_SF_SEND) && !(up->flags & OP_SF_SEND))
            op_conn_close(c, "both directions finished");
        else if ((cli->flags & OP_SF_EOF) || (up->flags & OP_SF_EOF))
            op_conn_set_state(c, OP_CS_HALF);
    } else if ((c->flags & OP_CF_FINISH) && (cli->flags & OP_SF_SHUT_DONE) && (cli->flags & OP_SF_EOF) &&
               !(cli->flags & OP_SF_SEND)) {
        op_conn_close(c, "finished");
    }
    if (c->state == OP_CS_CLOSING) conn_try_free(c);
}

static void conn_try_free(struct op_conn *c)
{
    struct op_worker *w = c->w;
    struct conn_priv *pv = conn_priv(c);
    if (c->side[OP_CLI].inflight || c->side[OP_UP].inflight || pv->old_up_inflight) return;
    if (c->state == OP_CS_FREE) return;
    if (c->pops && c->pops->on_close) c->pops->on_close(c);
    if (c->xops && c->xops->close) c->xops->close(c);
    for (int s = 0; s < 2; s++) {
        if (c->side[s].flags & OP_SF_WAITBUF) w->nwaiting--;
        if (c->side[s].fd >= 0) close(c->side[s].fd);
        side_reset(w, &c->side[s]);
    }
    if (pv->old_up_fd >= 0) close(pv->old_up_fd);
    op_timer_cancel(&w->wheel, &c->timer);
    c->state = OP_CS_FREE;
    c->gen++;
    w->free_slots[w->nfree++] = c->slot;
    w->nconns--;
    STAT_ADD(w, active, (uint64_t)-1);
    STAT_ADD(w, closed, 1);
    if (w->any_accept_paused) accept_resume(w); /* a descriptor was just freed */
}

/* ---------------------------------------------------------------------------------------------- */
/* completions                                                                                      */

static void on_recv_data(struct op_conn *c, int side, uint8_t *data, uint32_t len, int bid)
{
    struct op_worker *w = c->w;
    c->last_active_ms = w->now;
    bool keep_buf = false;
    int rc = 0;
    if (side == OP_CLI) {
        STAT_ADD(w, bytes_in, len);
        if (c->flags & OP_CF_LINGER) {
            /* discarding: we are closing and only wait for the client's FIN */
        } else if (c->xops) {
            enum op_xprt_result xr = c->xops->input(c, data, len);
            rc = xr == OP_XPRT_ERROR ? -1 : 0;
            if (xr == OP_XPRT_CLOSE_NOTIFY) {
                c->side[OP_CLI].flags |= OP_SF_EOF;
                if (c->flags & OP_CF_TUNNEL)
                    op_conn_shutdown(c, OP_UP);
                else if (c->pops->on_eof)
                    c->pops->on_eof(c, OP_CLI);
            }
        } else if ((c->flags & OP_CF_TUNNEL) && c->side[OP_UP].q.count < OP_OUTQ_SEGS) {
            queue_pbuf(c, OP_UP, data, len, bid);
            keep_buf = true;
        } else {
            w->cur.base = data, w->cur.len = len, w->cur.bid = bid, w->cur.kept = false;
            rc = op_conn_deliver(c, data, len);
            keep_buf = w->cur.kept;
            w->cur.bid = -1;
        }
    } else {
        STAT_ADD(w, up_bytes_in, len);
        if (c->flags & OP_CF_TUNNEL) {
            if (c->xops) {
                rc = c->xops->output(c, data, len);
            } else if (c->side[OP_CLI].q.count < OP_OUTQ_SEGS) {
                queue_pbuf(c, OP_CLI, data, len, bid);
                keep_buf = true;
            } else {
                rc = op_conn_queue(c, OP_CLI, data, len);
            }
        } else if (c->pops->on_upstream_data) {
            w->cur.base = data, w->cur.len = len, w->cur.bid = bid, w->cur.kept = false;
            rc = c->pops->on_upstream_data(c, data, len);
            keep_buf = w->cur.kept;
            w->cur.bid = -1;
        }
    }
    if (!keep_buf) recycle_pbuf(w, bid);
    if (rc < 0) op_conn_close(c, rc == -ENOBUFS ? "send queue full" : "protocol or transport error");
}

static void on_eof(struct op_conn *c, int side)
{
    c->side[side].flags |= OP_SF_EOF;
    if (c->flags & OP_CF_LINGER && side == OP_CLI && (c->flags & OP_CF_FINISH)) {
        return; /* conn_progress closes */
    }
    if (c->flags & OP_CF_TUNNEL) {
        op_conn_shutdown(c, (enum op_side) !side);
    } else if (c->pops->on_eof) {
        c->pops->on_eof(c, (enum op_side)side);
    } else {
        op_conn_close(c, "peer closed");
    }
}

/* Receive buffers ran out (-ENOBUFS): the side waits until half the ring is back. Exhaustion is rare
 * (it needs many fast flows at once), so waking scans the slots instead of keeping a list. */
static void buf_wait(struct op_conn *c, int side)
{
    if (!(c->side[side].flags & OP_SF_WAITBUF)) c->w->nwaiting++;
    c->side[side].flags |= OP_SF_WAITBUF;
    STAT_ADD(c->w, enobufs, 1);
}

static void wake_buf_waiters(struct op_worker *w)
{
    if (!w->nwaiting || w->bufs_held > w->nbufs / 2) return;
    w->nwaiting = 0;
    for (uint32_t i = 0; i < w->nslots; i++) {
        struct op_conn *c = slot_conn(w, i);
        if (c->state == OP_CS_FREE || !((c->side[0].flags | c->side[1].flags) & OP_SF_WAITBUF)) continue;
        c->side[0].flags &= (uint16_t)~OP_SF_WAITBUF;
        c->side[1].flags &= (uint16_t)~OP_SF_WAITBUF;
        conn_progress(c);
    }
}

static void handle_conn_cqe(struct op_worker *w, struct io_uring_cqe *cqe)
{
    uint64_t tag = cqe->user_data;
    enum op_tag op = TAG_OP(tag);
    int side = TAG_SIDE(tag);
    struct op_conn *c = slot_conn(w, TAG_SLOT(tag));
    int res = cqe->res;
    bool has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    int bid = has_buf ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1;
    if (has_buf) w->bufs_held++;

    if (OP_UNLIKELY(c->gen != TAG_GEN(tag) || c->state == OP_CS_FREE)) {
        op_error("engine", "w%d: completion for a freed slot %u (op %d)", w->idx, TAG_SLOT(tag), op);
        if (has_buf) recycle_pbuf(w, bid);
        return;
    }
    struct conn_priv *pv = conn_priv(c);
    if (side == OP_UP && TAG_EPOCH(tag) != pv->up_epoch) { /* completion of a dropped upstream leg */
        if (has_buf) recycle_pbuf(w, bid);
        if (--pv->old_up_inflight == 0) {
            close(pv->old_up_fd);
            pv->old_up_fd = -1;
            if (c->state == OP_CS_CLOSING) conn_try_free(c);
        }
        return;
    }
    struct op_side_st *s = &c->side[side];
    s->inflight--;

    if (c->state == OP_CS_CLOSING) {
        if (has_buf) recycle_pbuf(w, bid);
        conn_try_free(c);
        return;
    }

    switch (op) {
    case TAG_RECV:
        s->flags &= (uint16_t) ~(OP_SF_RECV | OP_SF_NONEMPTY);
        if (cqe->flags & IORING_CQE_F_SOCK_NONEMPTY) s->flags |= OP_SF_NONEMPTY;
        if (res > 0) {
            on_recv_data(c, side, w->pbuf_mem + (size_t)bid * w->buf_size, (uint32_t)res, bid);
        } else {
            if (has_buf) recycle_pbuf(w, bid);
            if (res == 0)
                on_eof(c, side);
            else if (res == -ENOBUFS)
                buf_wait(c, side);
            else if (res != -ECANCELED && res != -EINTR && res != -EAGAIN)
                op_conn_close(c, side == OP_CLI ? "client recv error" : "upstream recv error");
        }
        break;
    case TAG_SEND: {
        s->flags &= (uint16_t)~OP_SF_SEND;
        if (res < 0) {
            if (res != -EINTR && res != -EAGAIN) {
                op_conn_close(c, side == OP_CLI ? "client send error" : "upstream send error");
                break;
            }
            res = 0;
        }
        struct op_seg *g = &s->q.seg[s->q.head];
        g->off += (uint32_t)res;
        g->len -= (uint32_t)res;
        s->q.bytes -= (uint32_t)res;
        if (side == OP_CLI)
            STAT_ADD(w, bytes_out, (uint64_t)res);
        else
            STAT_ADD(w, up_bytes_out, (uint64_t)res);
        c->last_active_ms = w->now;
        if (g->len == 0) {
            seg_release(w, g);
            s->q.head = (uint8_t)((s->q.head + 1) % OP_OUTQ_SEGS);
            s->q.count--;
            if (s->q.count == 0) s->q.head = 0;
            if (s->q.count == 0 && c->pops->on_drained && !(c->flags & OP_CF_TUNNEL))
                c->pops->on_drained(c, (enum op_side)side);
        }
        break;
    }
    case TAG_CONNECT:
        s->flags &= (uint16_t)~OP_SF_CONNECTING;
        if (res < 0) {
            STAT_ADD(w, upstream_connect_errors, 1);
            close(s->fd);
            side_reset(w, s);
        }
        c->last_active_ms = w->now;
        if (c->pops->on_upstream_connected) c->pops->on_upstream_connected(c, res);
        break;
    case TAG_SHUTDOWN:
        break;
    case TAG_POLL:
        s->flags &= (uint16_t)~OP_SF_POLL;
        if (res < 0 && res != -ECANCELED) {
            op_conn_close(c, "poll error");
            break;
        }
        if (res >= 0) {
            struct io_uring_sqe *sqe = get_sqe(w);
            io_uring_prep_splice(sqe, s->fd, -1, s->pipe_wr, -1, SPLICE_LEN,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            conn_sqe_tag(c, sqe, TAG_SPLICE_IN, side);
            s->flags |= OP_SF_SPLICE_IN;
        }
        break;
    case TAG_SPLICE_IN:
        s->flags &= (uint16_t)~OP_SF_SPLICE_IN;
        if (res > 0) {
            s->pipe_bytes += (uint32_t)res;
            c->last_active_ms = w->now;
            STAT_ADD(w, bytes_in, side == OP_CLI ? (uint64_t)res : 0);
            STAT_ADD(w, up_bytes_in, side == OP_UP ? (uint64_t)res : 0);
        } else if (res == 0) {
            s->flags |= OP_SF_EOF;
        } else if (res != -EAGAIN && res != -EINTR) {
            op_conn_close(c, "splice error");
        }
        break;
    case TAG_SPLICE_OUT:
        s->flags &= (uint16_t)~OP_SF_SPLICE_OUT;
        if (res > 0) {
            s->pipe_bytes -= (uint32_t)res;
            STAT_ADD(w, bytes_out, side == OP_UP ? (uint64_t)res : 0);
            STAT_ADD(w, up_bytes_out, side == OP_CLI ? (uint64_t)res : 0);
        } else if (res != -EAGAIN && res != -EINTR) {
            op_conn_close(c, "splice error");
        }
        break;
    case TAG_CANCEL:
    default:
        break;
    }
    conn_progress(c);
}

static void handle_timer(struct op_timer *t)
{
    struct op_conn *c = OP_CONTAINER_OF(t, struct op_conn, timer);
    struct op_worker *w = c->w;
    if (c->state == OP_CS_CLOSING || c->state == OP_CS_FREE) return;
    if ((c->flags & OP_CF_TUNNEL) && c->idle_ms && !(c->flags & OP_CF_FINISH)) {
        uint64_t idle = w->now - c->last_active_ms;
        if (idle < c->idle_ms) {
            op_timer_set(&w->wheel, t, w->now, c->idle_ms - idle);
            return;
        }
        STAT_ADD(w, timeouts, 1);
        op_conn_close(c, "tunnel idle timeout");
    } else if (c->state == OP_CS_HANDSHAKE || (c->flags & OP_CF_FINISH) || !c->pops->on_timeout) {
        STAT_ADD(w, timeouts, 1);
        op_conn_close(c, "timeout");
    } else {
        c->pops->on_timeout(c);
    }
    conn_progress(c);
}

static void accept_conn(struct op_worker *w, int li, int fd)
{
    struct op_listener_conf *lc = &w->e->conf.listeners[li];
    if (w->nfree == 0 || w->draining) {
        close(fd);
        STAT_ADD(w, rejected_full, 1);
        return;
    }
    uint32_t slot = w->free_slots[--w->nfree];
    struct op_conn *c = slot_conn(w, slot);
    uint16_t gen = c->gen;
    memset(c, 0, w->stride);
    c->gen = gen;
    c->slot = slot;
    c->w = w;
    c->listener = (uint8_t)li;
    c->side[OP_CLI].fd = fd;
    c->side[OP_UP].fd = -1;
    c->side[OP_CLI].pipe_rd = c->side[OP_CLI].pipe_wr = -1;
    c->side[OP_UP].pipe_rd = c->side[OP_UP].pipe_wr = -1;
    conn_priv(c)->old_up_fd = -1;
    c->pops = lc->proto;
    c->proto_ctx = lc->proto_ctx;
    c->proto_state = (uint8_t *)c + sizeof(struct op_conn) + sizeof(struct conn_priv);
    c->accepted_ms = c->last_active_ms = w->now;
    op_timer_init(&c->timer, handle_timer);
    w->nconns++;
    STAT_ADD(w, accepted, 1);
    STAT_ADD(w, active, 1);

    tune_socket(fd);

    if (lc->xprt) {
        c->xops = lc->xprt;
        c->flags |= OP_CF_TLS;
        c->state = OP_CS_HANDSHAKE;
        void *ctx = atomic_load_explicit(&lc->xprt_ctx, memory_order_acquire);
        if (c->xops->open(c, ctx) != 0) {
            c->xops = NULL; /* nothing to close */
            op_conn_close(c, "transport setup failed");
        } else {
            op_conn_set_timeout(c, w->e->conf.to.handshake_ms);
        }
    } else {
        c->state = OP_CS_OPEN;
        op_conn_xprt_ready(c);
    }
    conn_progress(c);
}

static void arm_accept(struct op_worker *w, int li)
{
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_multishot_accept(sqe, w->listen_fd[li], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    io_uring_sqe_set_data64(sqe, mk_tag(TAG_ACCEPT, 0, 0, 0, (uint32_t)li));
    w->accept_armed[li] = true;
}

/* accept failed for want of descriptors: the multishot accept has ended (errors end it), so simply not
 * re-arming it pauses accepting; pending clients wait in the listen backlog. */
static void accept_pause(struct op_worker *w, int li, int err)
{
    STAT_ADD(w, rejected_full, 1);
    w->accept_paused[li] = true;
    w->any_accept_paused = true;
    w->accept_resume_ms = w->now + ACCEPT_BACKOFF_MS;
    w->emfile_since_warn++;
    if (w->emfile_warned_ms && w->now - w->emfile_warned_ms < EMFILE_WARN_MS) return;
    if (err == EMFILE) {
        struct rlimit rl;
        unsigned long long lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0;
        op_warn("engine",
                "worker %d: out of file descriptors (open-file limit %llu, ulimit -n): accepting paused, "
                "retried every %u ms and whenever a connection closes (%u refusals since the last warning)",
                w->idx, lim, ACCEPT_BACKOFF_MS, w->emfile_since_warn);
    } else {
        op_warn(
            "engine",
            "worker %d: the system-wide file table is full (ENFILE, sysctl fs.file-max): accepting paused, "
            "retried every %u ms and whenever a connection closes (%u refusals since the last warning)",
            w->idx, ACCEPT_BACKOFF_MS, w->emfile_since_warn);
    }
    w->emfile_warned_ms = w->now;
    w->emfile_since_warn = 0;
}

static void accept_resume(struct op_worker *w)
{
    w->any_accept_paused = false;
    for (int i = 0; i < w->e->conf.nlisteners; i++) {
        if (!w->accept_paused[i]) continue;
        w->accept_paused[i] = false;
        if (w->listen_fd[i] >= 0 && !w->draining && !w->accept_armed[i]) arm_accept(w, i);
    }
}

static void arm_wake(struct op_worker *w)
{
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_read(sqe, w->efd, &w->efd_buf, sizeof(w->efd_buf), 0);
    io_uring_sqe_set_data64(sqe, mk_tag(TAG_WAKE, 0, 0, 0, 0));
    w->wake_armed = true;
}

static void begin_drain(struct op_worker *w)
{
    if (w->draining) return;
    w->draining = true;
    w->drain_deadline = w->now + w->e->conf.to.drain_ms;
    for (int i = 0; i < w->e->conf.nlisteners; i++) {
        if (w->listen_fd[i] < 0) continue;
        if (!w->accept_armed[i]) { /* accepting is paused: nothing to cancel */
            close(w->listen_fd[i]);
            w->listen_fd[i] = -1;
            continue;
        }
        struct io_uring_sqe *sqe = get_sqe(w);
        io_uring_prep_cancel_fd(sqe, w->listen_fd[i], IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, mk_tag(TAG_NONE, 0, 0, 0, 0));
    }
    for (uint32_t i = 0; i < w->nslots; i++) {
        struct op_conn *c = slot_conn(w, i);
        if (c->state == OP_CS_FREE || c->state == OP_CS_CLOSING) continue;
        c->flags |= OP_CF_DRAIN_CLOSE;
        if (c->pops->on_drain) c->pops->on_drain(c);
        conn_progress(c);
    }
}

static void handle_msgs(struct op_worker *w)
{
    struct op_mpsc_node *n = op_mpsc_take_all(&w->inbox);
    while (n) {
        struct op_mpsc_node *nx = n->next;
        struct op_msg *m = OP_CONTAINER_OF(n, struct op_msg, link);
        m->fn(w, m);
        n = nx;
    }
    if (atomic_load(&w->e->draining) && !w->stop) begin_drain(w);
}

bool op_worker_deliver(struct op_worker *w, struct op_conn_ref ref, void *msg)
{
    if (ref.slot >= w->nslots) return false;
    struct op_conn *c = slot_conn(w, ref.slot);
    if (c->gen != ref.gen || c->state == OP_CS_FREE || c->state == OP_CS_CLOSING || !c->pops->on_message)
        return false;
    c->pops->on_message(c, msg);
    conn_progress(c);
    return true;
}

static void handle_cqe(struct op_worker *w, struct io_uring_cqe *cqe)
{
    uint64_t tag = cqe->user_data;
    switch (TAG_OP(tag)) {
    case TAG_ACCEPT: {
        int li = (int)TAG_SLOT(tag);
        if (!(cqe->flags & IORING_CQE_F_MORE)) w->accept_armed[li] = false;
        if (cqe->res >= 0) {
            accept_conn(w, li, cqe->res);
        } else if ((cqe->res == -EMFILE || cqe->res == -ENFILE) && !w->draining) {
            if (!w->accept_armed[li]) {
                accept_pause(w, li, -cqe->res);
                return;
            }
        } else if (cqe->res != -ECANCELED && cqe->res != -EINTR && cqe->res != -EAGAIN) {
            op_debug("engine", "w%d accept: %s", w->idx, strerror(-cqe->res));
        }
        if (!w->accept_armed[li]) {
            if (w->draining) {
                close(w->listen_fd[li]);
                w->listen_fd[li] = -1;
            } else {
                arm_accept(w, li);
            }
        }
        return;
    }
    case TAG_WAKE:
        w->wake_armed = false;
        handle_msgs(w);
        if (!w->stop) arm_wake(w);
        return;
    case TAG_NONE:
        return;
    default:
        handle_conn_cqe(w, cqe);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* worker setup and loop                                                                            */

static int make_listener(const struct op_listener_conf *lc, char *err, size_t errlen)
{
    int fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket for %s: %s", lc->name, strerror(errno));
        return -errno;
    }
    /* Every worker binds its own socket to the same address: without SO_REUSEPORT the second bind fails
     * with a misleading "address in use", so a refused option is reported as itself. */
    int one = 1;
    const char *opt = NULL;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        opt = "SO_REUSEADDR";
    else if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        opt = "SO_REUSEPORT";
    else if (lc->addr.ss_family == AF_INET6 &&
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
        opt = "IPV6_V6ONLY";
    if (opt) {
        int e = errno;
        snprintf(err, errlen, "%s on %s: %s", opt, lc->name, strerror(e));
        close(fd);
        return -e;
    }
    if (bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) != 0) {
        int e = errno;
        snprintf(err, errlen, "bind %s: %s", lc->name, strerror(e));
        close(fd);
        return -e;
    }
    if (listen(fd, 4096) != 0) {
        int e = errno;
        snprintf(err, errlen, "listen %s: %s", lc->name, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

static int ring_init(struct io_uring *ring, unsigned entries, char *err, size_t errlen)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
              IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CLAMP;
    p.cq_entries = entries * 16;
    int rc = io_uring_queue_init_params(entries, ring, &p);
    if (rc == -EINVAL) { /* older kernel: cooperative task running instead */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = entries * 16;
        rc = io_uring_queue_init_params(entries, ring, &p);
    }
    if (rc < 0) {
        const char *why = rc == -EPERM    ? " (io_uring is blocked: a container seccomp profile, or sysctl "
                                            "kernel.io_uring_disabled=2)"
                          : rc == -ENOSYS ? " (this kernel has no io_uring)"
                          : rc == -ENOMEM ? " (locked-memory limit too low: raise ulimit -l)"
                                          : "";
        snprintf(err, errlen, "io_uring setup failed: %s%s", strerror(-rc), why);
        return rc;
    }
    if (!(p.features & IORING_FEAT_EXT_ARG)) {
        snprintf(err, errlen, "io_uring lacks IORING_FEAT_EXT_ARG (kernel 5.11+ required)");
        io_uring_queue_exit(ring);
        return -ENOTSUP;
    }
    return 0;
}

static int worker_setup(struct op_worker *w)
{
    const struct op_engine_conf *cf = &w->e->conf;
    char *err = w->start_err;
    size_t errlen = sizeof(w->start_err);
    int rc = ring_init(&w->ring, 512, err, errlen);
    if (rc < 0) return rc;
    io_uring_register_ring_fd(&w->ring);
    unsigned iowq[2] = {4, 8}; /* splice runs in io-wq: keep that pool small */
    io_uring_register_iowq_max_workers(&w->ring, iowq);

    w->nbufs = cf->recv_bufs;
    w->buf_size = cf->recv_buf_size;
    w->pbuf_mem = mmap(NULL, (size_t)w->nbufs * w->buf_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w->pbuf_mem == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %u receive buffers", w->nbufs);
        return -ENOMEM;
    }
    int brc = 0;
    w->br = io_uring_setup_buf_ring(&w->ring, w->nbufs, BGID, 0, &brc);
    if (!w->br) {
        snprintf(err, errlen, "provided-buffer ring setup failed: %s (kernel 5.19+ required)",
                 strerror(-brc));
        return brc ? brc : -ENOTSUP;
    }
    for (uint32_t i = 0; i < w->nbufs; i++)
        io_uring_buf_ring_add(w->br, w->pbuf_mem + (size_t)i * w->buf_size, w->buf_size, (unsigned short)i,
                              io_uring_buf_ring_mask(w->nbufs), (int)i);
    io_uring_buf_ring_advance(w->br, (int)w->nbufs);
    w->bufs_held = 0;

    w->nchunks = cf->send_chunks;
    w->chunk_mem = mmap(NULL, (size_t)w->nchunks * CHUNK_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    w->free_chunks = malloc(sizeof(uint32_t) * w->nchunks);
    if (w->chunk_mem == MAP_FAILED || !w->free_chunks) {
        snprintf(err, errlen, "cannot map the send-chunk pool");
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < w->nchunks; i++)
        w->free_chunks[i] = w->nchunks - 1 - i;
    w->nfree_chunks = w->nchunks;

    w->max_pipes = cf->max_pipes;
    w->pipes = calloc(2 * (size_t)w->max_pipes + 2, sizeof(int));

    size_t pstate = 0;
    for (int i = 0; i < cf->nlisteners; i++)
        pstate = OP_MAX(pstate, cf->listeners[i].proto->state_size);
    w->stride = (sizeof(struct op_conn) + sizeof(struct conn_priv) + pstate + 63) & ~(size_t)63;
    w->nslots = cf->max_conns;
    w->slots = mmap(NULL, w->stride * w->nslots, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    w->free_slots = malloc(sizeof(uint32_t) * w->nslots);
    if (w->slots == MAP_FAILED || !w->free_slots || !w->pipes) {
        snprintf(err, errlen, "cannot allocate %u connection slots", w->nslots);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < w->nslots; i++)
        w->free_slots[i] = w->nslots - 1 - i;
    w->nfree = w->nslots;

    w->efd = eventfd(0, EFD_CLOEXEC);
    if (w->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -errno;
    }
    for (int i = 0; i < cf->nlisteners; i++) {
        w->listen_fd[i] = make_listener(&cf->listeners[i], err, errlen);
        if (w->listen_fd[i] < 0) return w->listen_fd[i];
    }
    w->now = op_now_ms();
    w->cur.bid = -1;
    op_wheel_init(&w->wheel, w->now);
    for (int i = 0; i < cf->nlisteners; i++)
        arm_accept(w, i);
    arm_wake(w);
    io_uring_submit(&w->ring);
    return 0;
}

/* Runs on the worker as it exits: everything tied to the ring. Slots, pools and the eventfd stay until
 * op_engine_free(), so messages posted late (an app response racing the shutdown) are still safe. */
static void worker_teardown(struct op_worker *w)
{
    for (int i = 0; i < w->e->conf.nlisteners; i++)
        if (w->listen_fd[i] >= 0) close(w->listen_fd[i]);
    for (uint32_t i = 0; i < w->npipes_free; i++) {
        close(w->pipes[2 * i]);
        close(w->pipes[2 * i + 1]);
    }
    if (w->br) io_uring_free_buf_ring(&w->ring, w->br, w->nbufs, BGID);
    if (w->ring.ring_fd > 0) io_uring_queue_exit(&w->ring);
    if (w->pbuf_mem && w->pbuf_mem != MAP_FAILED) munmap(w->pbuf_mem, (size_t)w->nbufs * w->buf_size);
    w->pbuf_mem = NULL;
}

static void worker_free(struct op_worker *w)
{
    if (w->start_rc == 0)
        handle_msgs(w); /* late messages: their connections are gone, so they only free themselves */
    if (w->efd >= 0) close(w->efd);
    if (w->chunk_mem && w->chunk_mem != MAP_FAILED) munmap(w->chunk_mem, (size_t)w->nchunks * CHUNK_SIZE);
    if (w->slots && w->slots != MAP_FAILED) munmap(w->slots, w->stride * w->nslots);
    free(w->free_chunks);
    free(w->free_slots);
    free(w->pipes);
}

static void *worker_main(void *arg)
{
    struct op_worker *w = arg;
    struct op_engine *e = w->e;
    char name[16];
    snprintf(name, sizeof(name), "outpost-w%d", w->idx);
    pthread_setname_np(pthread_self(), name);
    if (!e->conf.no_pin) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((e->conf.first_cpu + w->idx) % (ncpu > 0 ? ncpu : 1), &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    for (int i = 0; i < MAX_LISTENERS; i++)
        w->listen_fd[i] = -1;
    w->efd = -1;
    w->start_rc = worker_setup(w);
    pthread_mutex_lock(&e->lock);
    e->started++;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    if (w->start_rc != 0) {
        atomic_fetch_sub(&e->running, 1);
        return NULL;
    }

    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)OP_WHEEL_TICK_MS * 1000000LL};
    while (!w->stop) {
        struct io_uring_cqe *cqe = NULL;
        int rc = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
            op_error("engine", "worker %d: io_uring wait failed: %s", w->idx, strerror(-rc));
            break;
        }
        w->now = op_now_ms();
        unsigned head, n = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe)
        {
            handle_cqe(w, cqe);
            n++;
        }
        io_uring_cq_advance(&w->ring, n);
        op_wheel_run(&w->wheel, w->now);
        wake_buf_waiters(w);
        if (w->any_accept_paused && w->now >= w->accept_resume_ms) accept_resume(w);
        if (w->draining) {
            if (w->nconns > 0 && w->now >= w->drain_deadline) {
                for (uint32_t i = 0; i < w->nslots; i++) {
                    struct op_conn *c = slot_conn(w, i);
                    if (c->state != OP_CS_FREE && c->state != OP_CS_CLOSING) {
                        op_conn_close(c, "drain deadline");
                        conn_try_free(c);
                    }
                }
            }
            bool listeners_closed = true;
            for (int i = 0; i < e->conf.nlisteners; i++)
                listeners_closed &= w->listen_fd[i] < 0;
            if (w->nconns == 0 && listeners_closed) w->stop = true;
        }
    }
    worker_teardown(w);
    atomic_fetch_sub(&e->running, 1);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* engine                                                                                           */

static void layer_add(struct op_engine *e, const void *ops, size_t size)
{
    if (!ops || !size) return;
    for (int i = 0; i < e->nlayers; i++)
        if (e->layers[i].ops == ops) return;
    e->layers[e->nlayers].ops = ops;
    e->layers[e->nlayers].off = e->layer_stride;
    e->nlayers++;
    e->layer_stride += (size + 63) & ~(size_t)63;
}

/* One zeroed block per worker and per distinct protocol / transport that asks for per-worker state. */
static int layers_init(struct op_engine *e)
{
    for (int i = 0; i < e->conf.nlisteners; i++) {
        const struct op_listener_conf *lc = &e->conf.listeners[i];
        layer_add(e, lc->proto, lc->proto->worker_state_size);
        if (lc->xprt) layer_add(e, lc->xprt, lc->xprt->worker_state_size);
    }
    if (!e->layer_stride) return 0;
    size_t total = e->layer_stride * (size_t)e->nworkers;
    e->layer_mem = aligned_alloc(64, total);
    if (!e->layer_mem) return -ENOMEM;
    memset(e->layer_mem, 0, total);
    return 0;
}

int op_engine_start(const struct op_engine_conf *conf, struct op_engine **out, char *err, size_t errlen)
{
    if (conf->nlisteners < 1 || conf->nlisteners > MAX_LISTENERS) {
        snprintf(err, errlen, "between 1 and %d listeners are supported", MAX_LISTENERS);
        return -EINVAL;
    }
    /* Probe io_uring once here so the error names the cause before any thread starts. */
    struct io_uring probe;
    int rc = ring_init(&probe, 8, err, errlen);
    if (rc < 0) return rc;
    io_uring_queue_exit(&probe);

    struct op_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    e->conf = *conf;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    e->nworkers = conf->workers > 0 ? conf->workers : (int)(ncpu > 0 ? ncpu : 1);
    if (e->nworkers > MAX_WORKERS) e->nworkers = MAX_WORKERS;
    struct op_engine_conf *c = &e->conf;
    if (!c->max_conns) c->max_conns = 16384;
    if (!c->recv_bufs) c->recv_bufs = 512;
    if (c->recv_bufs & (c->recv_bufs - 1)) {
        snprintf(err, errlen, "receive buffer count must be a power of two");
        free(e);
        return -EINVAL;
    }
    if (!c->recv_buf_size) c->recv_buf_size = 64 * 1024;
    if (!c->send_chunks) c->send_chunks = 2048;
    if (!c->max_pipes) c->max_pipes = 256;
    if (!c->to.handshake_ms) c->to.handshake_ms = 10000;
    if (!c->to.connect_ms) c->to.connect_ms = 5000;
    if (!c->to.idle_ms) c->to.idle_ms = 60000;
    if (!c->to.tunnel_idle_ms) c->to.tunnel_idle_ms = 3600000;
    if (!c->to.drain_ms) c->to.drain_ms = 10000;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    e->workers = calloc((size_t)e->nworkers, sizeof(struct op_worker));
    if (!e->workers) {
        free(e);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (layers_init(e) != 0) {
        free(e->workers);
        free(e);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    atomic_store(&e->running, e->nworkers);
    int launched = 0;
    for (int i = 0; i < e->nworkers; i++) {
        struct op_worker *w = &e->workers[i];
        w->idx = i;
        w->e = e;
        if (pthread_create(&w->thr, NULL, worker_main, w) != 0) {
            snprintf(err, errlen, "cannot start worker thread %d", i);
            atomic_fetch_sub(&e->running, e->nworkers - i);
            break;
        }
        launched++;
    }
    pthread_mutex_lock(&e->lock);
    while (e->started < launched)
        pthread_cond_wait(&e->cond, &e->lock);
    pthread_mutex_unlock(&e->lock);
    rc = launched == e->nworkers ? 0 : -EAGAIN;
    for (int i = 0; i < launched; i++) {
        if (e->workers[i].start_rc != 0 && rc == 0) {
            rc = e->workers[i].start_rc;
            snprintf(err, errlen, "%s", e->workers[i].start_err);
        }
    }
    e->nworkers = launched;
    if (rc != 0) {
        op_engine_drain(e);
        op_engine_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void op_engine_post(struct op_engine *e, int worker, struct op_msg *m)
{
    struct op_worker *w = &e->workers[worker];
    op_mpsc_push(&w->inbox, &m->link);
    uint64_t one = 1;
    ssize_t r = write(w->efd, &one, sizeof(one));
    (void)r;
}

struct retire {
    atomic_int remaining;
    void *old;
    void (*release)(void *old);
    struct op_msg msgs[]; /* one per worker: a message sits in one inbox at a time */
};

static void retire_ack(struct op_worker *w, struct op_msg *m)
{
    struct retire *r = OP_CONTAINER_OF(m - w->idx, struct retire, msgs);
    if (atomic_fetch_sub(&r->remaining, 1) == 1) {
        if (r->release && r->old) r->release(r->old);
        free(r);
    }
}

/* Allocated before anything is swapped, so a failed allocation leaves everything as it was. */
static struct retire *retire_new(struct op_engine *e)
{
    return calloc(1, sizeof(struct retire) + sizeof(struct op_msg) * (size_t)e->nworkers);
}

static void retire_post(struct op_engine *e, struct retire *r, void *old, void (*release)(void *old))
{
    r->old = old;
    r->release = release;
    atomic_store(&r->remaining, e->nworkers);
    for (int i = 0; i < e->nworkers; i++) {
        r->msgs[i].fn = retire_ack;
        op_engine_post(e, i, &r->msgs[i]);
    }
}

int op_engine_set_xprt_ctx(struct op_engine *e, int li, void *ctx, void (*release)(void *old))
{
    if (li < 0 || li >= e->conf.nlisteners) return -EINVAL;
    struct retire *r = retire_new(e);
    if (!r) return -ENOMEM;
    retire_post(e, r, atomic_exchange_explicit(&e->conf.listeners[li].xprt_ctx, ctx, memory_order_acq_rel),
                release);
    return 0;
}

int op_engine_retire(struct op_engine *e, void *old, void (*release)(void *old))
{
    struct retire *r = retire_new(e);
    if (!r) return -ENOMEM;
    retire_post(e, r, old, release);
    return 0;
}

void op_engine_drain(struct op_engine *e)
{
    atomic_store(&e->draining, true);
    for (int i = 0; i < e->nworkers; i++) {
        if (e->workers[i].efd >= 0 && e->workers[i].start_rc == 0) {
            uint64_t one = 1;
            ssize_t r = write(e->workers[i].efd, &one, sizeof(one));
            (void)r;
        }
    }
}

bool op_engine_done(struct op_engine *e)
{
    return atomic_load(&e->running) == 0;
}

void op_engine_free(struct op_engine *e)
{
    if (!e) return;
    for (int i = 0; i < e->nworkers; i++)
        pthread_join(e->workers[i].thr, NULL);
    for (int i = 0; i < e->nworkers; i++)
        worker_free(&e->workers[i]);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e->layer_mem);
    free(e->workers);
    free(e);
}

int op_engine_nworkers(const struct op_engine *e)
{
    return e->nworkers;
}
const struct op_worker_stats *op_engine_stats(const struct op_engine *e, int worker)
{
    return &e->workers[worker].stats;
}

/* ---------------------------------------------------------------------------------------------- */
/* addresses                                                                                        */

int op_parse_hostport(const char *s, struct sockaddr_storage *out, socklen_t *outlen, char *err,
                      size_t errlen)
{
    char host[256];
    const char *port;
    if (!s || !*s) {
        snprintf(err, errlen, "empty address");
        return -EINVAL;
    }
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host)) {
            snprintf(err, errlen, "bad address '%s' (want [v6]:port)", s);
            return -EINVAL;
        }
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        port = rb + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host)) {
            snprintf(err, errlen, "bad address '%s' (want host:port)", s);
            return -EINVAL;
        }
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535) {
        snprintf(err, errlen, "bad port in '%s'", s);
        return -EINVAL;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    /* Prefer IPv4 for "" (all interfaces) and for names that resolve to both. */
    struct addrinfo *pick = res;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    memcpy(out, pick->ai_addr, pick->ai_addrlen);
    *outlen = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
