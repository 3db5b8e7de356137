/*
 * core/conn.c — the connection API that protocols and transports call (core/engine.h), the printable
 * state names and the flags decoders.
 */
#include "core/engine_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

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

struct op_conn_ref op_conn_ref(const struct op_conn *c)
{
    struct op_conn_ref r = {(uint16_t)c->w->idx, c->gen, c->slot};
    return r;
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
    return c->side[OP_CLI].xprt;
}
void op_conn_set_xprt(struct op_conn *c, void *xprt)
{
    c->side[OP_CLI].xprt = xprt;
}
void *op_conn_side_xprt(const struct op_conn *c, enum op_side side)
{
    return c->side[side].xprt;
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
    const struct op_xprt_ops *x = c->side[side].xops;
    if (x) return x->output(c, side, p, n);
    return op_conn_queue(c, side, p, n);
}

int op_conn_forward(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    struct op_worker *w = c->w;
    bool raw = !c->side[side].xops;
    /* Zero-copy only pays for large spans that would not merge into a partly filled chunk: an extra
     * segment costs an extra send, far more than copying a few KiB. */
    const struct op_seg *t = outq_tail(&c->side[side].q);
    bool tail_open = t && t->bid < 0 && t->off + t->len < CHUNK_SIZE;
    if (raw && n >= FORWARD_ZC_MIN && !tail_open && c->side[side].q.count < OP_OUTQ_SEGS) {
        int bid = delivery_take(&w->delivering, p, n);
        if (bid >= 0) {
            queue_pbuf(c, side, (uint8_t *)p, (uint32_t)n, bid);
            return 0;
        }
    }
    return op_conn_send(c, side, p, n);
}

int op_conn_deliver(struct op_conn *c, const uint8_t *p, size_t n)
{
    if (c->state == OP_CS_CLOSING || (c->flags & OP_CF_LINGER)) return 0;
    if (c->flags & OP_CF_TUNNEL) return op_conn_send(c, OP_UP, p, n);
    return c->pops->on_client_data(c, p, n);
}

int op_conn_deliver_from(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    if (side == OP_CLI) return op_conn_deliver(c, p, n);
    if (c->state == OP_CS_CLOSING) return 0;
    if (c->flags & OP_CF_TUNNEL) return op_conn_send(c, OP_CLI, p, n);
    return c->pops->on_upstream_data ? c->pops->on_upstream_data(c, p, n) : 0;
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
    if (c->w->e->conf.splice && !c->side[OP_CLI].xops && !c->side[OP_UP].xops) c->flags |= OP_CF_SPLICE;
}

void side_xprt_close(struct op_conn *c, int side)
{
    struct op_side_st *s = &c->side[side];
    if (!s->xops) return;
    struct conn_priv *pv = conn_priv(c);
    if (s->xprt == pv->xinput && s->xops->free) { /* still inside its input(): freed when that returns */
        s->xops->bind(s->xprt, NULL, (enum op_side)side);
        pv->xdead = s->xprt;
    } else if (s->xops->close) {
        s->xops->close(c, (enum op_side)side);
    }
    s->xops = NULL;
    s->xprt = NULL;
}

void op_leg_close(struct op_leg *leg)
{
    if (leg->fd >= 0) close(leg->fd);
    if (leg->xops && leg->xprt) leg->xops->free(leg->xprt);
    leg->fd = -1;
    leg->xops = NULL;
    leg->xprt = NULL;
}

void side_reset(struct op_worker *w, struct op_side_st *s)
{
    OP_BUG_ON(s->xops != NULL); /* side_xprt_close first */
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
    side_xprt_close(c, OP_UP); /* completions still in flight only give buffers back */
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

int op_conn_attach_upstream(struct op_conn *c, int fd)
{
    struct op_leg leg = {fd, NULL, NULL};
    return op_conn_attach_leg(c, &leg);
}

int op_conn_attach_leg(struct op_conn *c, const struct op_leg *leg)
{
    int fd = leg->fd;
    OP_BUG_ON(fd < 0);
    OP_BUG_ON(leg->xops && (!leg->xprt || !leg->xops->bind || !leg->xops->free));
    struct op_side_st *up = &c->side[OP_UP];
    if (up->fd >= 0) op_conn_drop_upstream(c);
    if (c->state == OP_CS_CLOSING) return -ECANCELED;
    int type = 0;
    socklen_t tl = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM) return -ENOTSOCK;
    tune_socket(fd);
    up->fd = fd;
    up->flags = OP_SF_CONNECTING;
    if (leg->xops) {
        up->xops = leg->xops;
        up->xprt = leg->xprt;
        leg->xops->bind(leg->xprt, c, OP_UP);
    }
    /* A no-op completes the way op_conn_connect's connect does: the same path, the same callback. */
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_nop(sqe);
    conn_sqe_tag(c, sqe, TAG_CONNECT, OP_UP);
    op_conn_set_state(c, OP_CS_CONNECT);
    return 0;
}

void op_conn_detach(struct op_conn *c)
{
    OP_BUG_ON(c->state == OP_CS_FREE || c->state == OP_CS_CLOSING);
    const struct op_xprt_ops *x = c->side[OP_CLI].xops;
    OP_BUG_ON(x && (!x->bind || !x->free || !(c->flags & OP_CF_XPRT_READY)));
    OP_BUG_ON(c->side[OP_UP].fd >= 0 || conn_priv(c)->old_up_fd >= 0);
    OP_BUG_ON(c->side[OP_CLI].q.count != 0 || (c->flags & OP_CF_TUNNEL));
    OP_BUG_ON(!c->pops->on_detached);
    c->flags |= OP_CF_DETACH;
    op_conn_close(c, "client socket detached");
}

void op_conn_set_proto(struct op_conn *c, const struct op_proto_ops *ops, void *ctx)
{
    OP_BUG_ON(c->state == OP_CS_FREE || c->state == OP_CS_CLOSING || (c->flags & OP_CF_TUNNEL));
    OP_BUG_ON(ops->state_size > c->w->stride - sizeof(struct op_conn) - sizeof(struct conn_priv));
    OP_BUG_ON(ops->worker_state_size != 0 || !ops->on_client_data);
    c->pops = ops;
    c->proto_ctx = ctx;
    memset(c->proto_state, 0, ops->state_size);
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
