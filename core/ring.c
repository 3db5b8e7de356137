/*
 * core/ring.c — io_uring set-up and submission: getting an SQE (submitting when the queue is full),
 * tagging it for a connection, cancelling a descriptor's operations, socket tuning.
 */
#include "core/engine_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Latency and buffering options on a connected socket. Tuning only: a socket that refuses them still works,
 * so a failure is not an error. */
void tune_socket(int fd)
{
    int one = 1, lowat = NOTSENT_LOWAT;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
}

struct io_uring_sqe *get_sqe(struct op_worker *w)
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

void conn_sqe_tag(struct op_conn *c, struct io_uring_sqe *sqe, enum op_tag op, int side)
{
    struct conn_priv *pv = conn_priv(c);
    io_uring_sqe_set_data64(sqe, mk_tag(op, side, side == OP_UP ? pv->up_epoch : 0, c->gen, c->slot));
    c->side[side].inflight++;
}

void cancel_fd(struct op_conn *c, int side, int fd)
{
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    conn_sqe_tag(c, sqe, TAG_CANCEL, side);
}

int ring_init(struct io_uring *ring, unsigned entries, char *err, size_t errlen)
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
