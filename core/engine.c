/*
 * core/engine.c — engine start-up and stop (called from the control thread), cross-thread posting,
 * snapshot retirement and the per-worker state blocks of protocols and transports.
 */
#include "core/engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

const char *op_splice_mode_name(int mode)
{
    switch (mode) {
    case OP_SPLICE_OFF:
        return "off";
    case OP_SPLICE_INLINE:
        return "inline";
    case OP_SPLICE_URING:
        return "uring";
    }
    return "?";
}

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
    if (c->splice < OP_SPLICE_OFF || c->splice > OP_SPLICE_URING) {
        snprintf(err, errlen, "unknown splice mode %d", c->splice);
        free(e);
        return -EINVAL;
    }
    if (!c->pipe_size) c->pipe_size = c->splice == OP_SPLICE_INLINE ? 1024u * 1024u : SPLICE_LEN;
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
