/*
 * core/worker.c — the worker thread: its set-up and teardown, accepting (paused with a short backoff
 * at the descriptor limit), cross-thread messages, the graceful drain and the event loop.
 */
#include "core/engine_int.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"

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
        c->side[OP_CLI].xops = lc->xprt;
        c->flags |= OP_CF_TLS;
        c->state = OP_CS_HANDSHAKE;
        void *ctx = atomic_load_explicit(&lc->xprt_ctx, memory_order_acquire);
        if (lc->xprt->open(c, ctx) != 0) {
            c->side[OP_CLI].xops = NULL; /* nothing to close */
            c->side[OP_CLI].xprt = NULL;
            op_conn_close(c, "transport setup failed");
        } else {
            op_conn_set_timeout(c, w->e->conf.to.handshake_ms);
        }
    } else {
        c->state = OP_CS_HANDSHAKE; /* no transport: the handshake is complete at once */
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

void accept_resume(struct op_worker *w)
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

    rc = pools_init(w, err, errlen);
    if (rc < 0) return rc;

    size_t pstate = 0;
    for (int i = 0; i < cf->nlisteners; i++)
        pstate = OP_MAX(pstate, cf->listeners[i].proto->state_size);
    w->stride = (sizeof(struct op_conn) + sizeof(struct conn_priv) + pstate + 63) & ~(size_t)63;
    w->nslots = cf->max_conns;
    w->slots = mmap(NULL, w->stride * w->nslots, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    w->free_slots = malloc(sizeof(uint32_t) * w->nslots);
    if (w->slots == MAP_FAILED || !w->free_slots) {
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
    w->delivering.bid = -1;
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
    pools_ring_teardown(w);
    if (w->ring.ring_fd > 0) io_uring_queue_exit(&w->ring);
}

void worker_free(struct op_worker *w)
{
    if (w->start_rc == 0)
        handle_msgs(w); /* late messages: their connections are gone, so they only free themselves */
    if (w->efd >= 0) close(w->efd);
    pools_free(w);
    if (w->slots && w->slots != MAP_FAILED) munmap(w->slots, w->stride * w->nslots);
    free(w->free_slots);
}

/* Pins the calling worker thread to one CPU: (first_cpu + idx) % ncpu when the process may run there,
 * else the idx-th CPU the process may run on. A proxy started under taskset, systemd's CPUAffinity= or a
 * container's cpuset keeps its workers inside that set instead of moving them onto CPUs it was kept off
 * (where they would share a core with whatever the operator put there). */
static void pin_worker(int first_cpu, int idx)
{
    cpu_set_t allowed, set;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int want = (first_cpu + idx) % (ncpu > 0 ? (int)ncpu : 1);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && !CPU_ISSET(want, &allowed)) {
        int n = CPU_COUNT(&allowed), k = n > 0 ? idx % n : 0;
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
            if (!CPU_ISSET(cpu, &allowed)) continue;
            if (k-- == 0) {
                want = cpu;
                break;
            }
        }
    }
    CPU_ZERO(&set);
    CPU_SET(want, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}
void *worker_main(void *arg)
{
    struct op_worker *w = arg;
    struct op_engine *e = w->e;
    char name[16];
    snprintf(name, sizeof(name), "outpost-w%d", w->idx);
    pthread_setname_np(pthread_self(), name);
    if (!e->conf.no_pin) pin_worker(e->conf.first_cpu, w->idx);
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
