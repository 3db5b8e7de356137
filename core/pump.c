/*
 * core/pump.c — the symmetric relay pump: what runs after every completion. conn_progress() is the one
 * place that decides what to arm next for a connection (sends, receives, splices, shutdowns); the
 * completion handlers account for what finished and hand bytes to the transport or protocol.
 */
#include "core/engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

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

static void arm_poll(struct op_conn *c, int side, unsigned events)
{
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_poll_add(sqe, c->side[side].fd, events);
    conn_sqe_tag(c, sqe, TAG_POLL, side);
    c->side[side].flags |= OP_SF_POLL;
}

static void count_in(struct op_conn *c, int side, uint64_t n)
{
    STAT_ADD(c->w, bytes_in, side == OP_CLI ? n : 0);
    STAT_ADD(c->w, up_bytes_in, side == OP_UP ? n : 0);
    c->last_active_ms = c->w->now;
}

static void count_out(struct op_conn *c, int src, uint64_t n)
{
    STAT_ADD(c->w, bytes_out, src == OP_UP ? n : 0);
    STAT_ADD(c->w, up_bytes_out, src == OP_CLI ? n : 0);
}

/* Inline splice: empties the pipe of direction src into the other side's socket. True when the pipe is
 * empty; false when the destination is full (a POLLOUT is armed, SPLICE_OUT set) or the connection closed. */
static bool splice_out_inline(struct op_conn *c, int src)
{
    struct op_side_st *s = &c->side[src], *d = &c->side[!src];
    while (s->pipe_bytes > 0) {
        ssize_t n = splice(s->pipe_rd, NULL, d->fd, NULL, s->pipe_bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            s->pipe_bytes -= (uint32_t)n;
            count_out(c, src, (uint64_t)n);
        } else if (n < 0 && errno == EAGAIN) {
            struct io_uring_sqe *sqe = get_sqe(c->w);
            io_uring_prep_poll_add(sqe, d->fd, POLLOUT);
            conn_sqe_tag(c, sqe, TAG_POLL_OUT, src);
            s->flags |= OP_SF_SPLICE_OUT;
            return false;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            op_debug("conn", "w%d#%u splice out: %s", c->w->idx, c->slot, strerror(errno));
            op_conn_close(c, "splice error");
            return false;
        }
    }
    return true;
}

/* Inline splice: side src is readable. Moves socket -> pipe -> other socket until the source is empty or
 * the destination is full; at most a few pipefuls per event, so one fast tunnel cannot starve the others. */
static void splice_in_inline(struct op_conn *c, int src)
{
    struct op_side_st *s = &c->side[src];
    for (int round = 0; round < 4; round++) {
        uint32_t room = c->w->pipe_size > s->pipe_bytes ? c->w->pipe_size - s->pipe_bytes : 0;
        if (!room) return;
        ssize_t n = splice(s->fd, NULL, s->pipe_wr, NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            s->pipe_bytes += (uint32_t)n;
            count_in(c, src, (uint64_t)n);
            if (!splice_out_inline(c, src)) return;
        } else if (n == 0) {
            s->flags |= OP_SF_EOF;
            return;
        } else if (errno == EAGAIN) {
            return;
        } else if (errno != EINTR) {
            op_debug("conn", "w%d#%u splice in: %s", c->w->idx, c->slot, strerror(errno));
            op_conn_close(c, "splice error");
            return;
        }
    }
}

/* Drives one splice direction: source side `src` into the pipe it owns, then out to the other side. */
static void splice_progress(struct op_conn *c, int src)
{
    struct op_side_st *s = &c->side[src], *d = &c->side[!src];
    if (s->flags & (OP_SF_POLL | OP_SF_SPLICE_IN | OP_SF_SPLICE_OUT)) return;
    /* Bytes of this direction that took the copy path (a receive armed before the tunnel began to splice,
     * or its queued segments) go out first: splicing past them would reorder the stream. */
    if ((s->flags & OP_SF_RECV) || d->q.count || (d->flags & OP_SF_SEND)) return;
    if (s->pipe_bytes > 0 && c->w->splice_mode == OP_SPLICE_INLINE) {
        if (!splice_out_inline(c, src)) return;
    } else if (s->pipe_bytes > 0) {
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
        /* An upstream transport is attached with its handshake done; a client one may still be in it. */
        if (s->xops && !(s->flags & OP_SF_NOTIFY) && (side == OP_UP || (c->flags & OP_CF_XPRT_READY))) {
            s->flags |= OP_SF_NOTIFY;
            if (s->xops->shutdown(c, (enum op_side)side) == 0 && s->q.count) {
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
void conn_progress(struct op_conn *c)
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
        if (up->fd >= 0 && !(up->flags & OP_SF_CONNECTING)) {
            bool fresh = cli->pipe_rd < 0 || up->pipe_rd < 0;
            if (!splice_get_pipe(c->w, cli) || !splice_get_pipe(c->w, up)) {
                c->flags &= ~(uint32_t)OP_CF_SPLICE; /* pipe pool exhausted: this tunnel copies */
            } else {
                /* splice(2) on a blocking socket waits for more data even with SPLICE_F_NONBLOCK (that
                 * flag is about the pipe): the worker's sockets go non-blocking, which io_uring's own
                 * operations on them (shutdown, poll) do not mind. */
                if (fresh && c->w->splice_mode == OP_SPLICE_INLINE)
                    for (int s = 0; s < 2; s++)
                        fcntl(c->side[s].fd, F_SETFL, fcntl(c->side[s].fd, F_GETFL) | O_NONBLOCK);
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

void conn_try_free(struct op_conn *c)
{
    struct op_worker *w = c->w;
    struct conn_priv *pv = conn_priv(c);
    if (c->side[OP_CLI].inflight || c->side[OP_UP].inflight || pv->old_up_inflight) return;
    if (c->state == OP_CS_FREE) return;
    if (c->flags & OP_CF_DETACH) {
        struct op_side_st *cli = &c->side[OP_CLI];
        struct op_leg leg = {-1, NULL, NULL};
        if (!(c->flags & OP_CF_DETACH_LOST) && cli->fd >= 0) { /* the protocol's now: not closed below */
            leg = (struct op_leg){cli->fd, cli->xops, cli->xprt};
            if (cli->xops) cli->xops->bind(cli->xprt, NULL, OP_CLI);
            cli->fd = -1;
            cli->xops = NULL;
            cli->xprt = NULL;
        }
        c->pops->on_detached(c, &leg);
    } else if (c->pops && c->pops->on_close) {
        c->pops->on_close(c);
    }
    for (int s = 0; s < 2; s++)
        side_xprt_close(c, s);
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

static void on_eof(struct op_conn *c, int side);

/* Ciphertext from a side with a transport: decoded plaintext goes on through op_conn_deliver_from; a close
 * notification is that side's EOF, as a FIN would be. */
static int xprt_input(struct op_conn *c, int side, const uint8_t *data, uint32_t len)
{
    struct conn_priv *pv = conn_priv(c);
    const struct op_xprt_ops *x = c->side[side].xops;
    pv->xinput = c->side[side].xprt;
    enum op_xprt_result xr = x->input(c, (enum op_side)side, data, len);
    pv->xinput = NULL;
    if (OP_UNLIKELY(pv->xdead != NULL)) { /* the protocol dropped this leg meanwhile: what it said is moot */
        x->free(pv->xdead);
        pv->xdead = NULL;
        return 0;
    }
    if (xr == OP_XPRT_CLOSE_NOTIFY && c->state != OP_CS_CLOSING) on_eof(c, side);
    return xr == OP_XPRT_ERROR ? -1 : 0;
}

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
        } else if (c->side[OP_CLI].xops) {
            rc = xprt_input(c, OP_CLI, data, len);
        } else if ((c->flags & OP_CF_TUNNEL) && !c->side[OP_UP].xops &&
                   c->side[OP_UP].q.count < OP_OUTQ_SEGS) {
            queue_pbuf(c, OP_UP, data, len, bid);
            keep_buf = true;
        } else {
            delivery_begin(&w->delivering, data, len, bid);
            rc = op_conn_deliver(c, data, len);
            keep_buf = delivery_end(&w->delivering);
        }
    } else {
        STAT_ADD(w, up_bytes_in, len);
        if (c->side[OP_UP].xops) {
            rc = xprt_input(c, OP_UP, data, len);
        } else if (c->flags & OP_CF_TUNNEL) {
            if (c->side[OP_CLI].xops) {
                rc = c->side[OP_CLI].xops->output(c, OP_CLI, data, len);
            } else if (c->side[OP_CLI].q.count < OP_OUTQ_SEGS) {
                queue_pbuf(c, OP_CLI, data, len, bid);
                keep_buf = true;
            } else {
                rc = op_conn_queue(c, OP_CLI, data, len);
            }
        } else if (c->pops->on_upstream_data) {
            delivery_begin(&w->delivering, data, len, bid);
            rc = c->pops->on_upstream_data(c, data, len);
            keep_buf = delivery_end(&w->delivering);
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

void handle_conn_cqe(struct op_worker *w, struct io_uring_cqe *cqe)
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
        if ((c->flags & OP_CF_DETACH) && side == OP_CLI && op == TAG_RECV && res >= 0)
            c->flags |= OP_CF_DETACH_LOST; /* what it read (or the EOF) went with this receive */
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
            side_xprt_close(c, OP_UP);
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
        if (res >= 0 && w->splice_mode == OP_SPLICE_INLINE) {
            splice_in_inline(c, side);
        } else if (res >= 0) {
            struct io_uring_sqe *sqe = get_sqe(w);
            io_uring_prep_splice(sqe, s->fd, -1, s->pipe_wr, -1, w->pipe_size,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            conn_sqe_tag(c, sqe, TAG_SPLICE_IN, side);
            s->flags |= OP_SF_SPLICE_IN;
        }
        break;
    case TAG_POLL_OUT:
        s->flags &= (uint16_t)~OP_SF_SPLICE_OUT;
        if (res < 0 && res != -ECANCELED) op_conn_close(c, "poll error");
        break;
    case TAG_SPLICE_IN:
        s->flags &= (uint16_t)~OP_SF_SPLICE_IN;
        if (res > 0) {
            s->pipe_bytes += (uint32_t)res;
            count_in(c, side, (uint64_t)res);
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
            count_out(c, side, (uint64_t)res);
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

void handle_timer(struct op_timer *t)
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
