/*
 * http/app_queue.c — application jobs between the workers and the control thread (see app_queue.h): a
 * lock-free MPSC stack of jobs plus an eventfd the control loop polls, and deferred answers (http/app.h).
 */
#include "http/app_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "http/proxy.h"

void op_app_job_free(struct op_app_job *job)
{
    if (!job) return;
    free(job->resp.body);
    free(job->head);
    free(job->body);
    free(job);
}

static void job_deliver(struct op_worker *w, struct op_msg *m)
{
    struct op_app_job *job = OP_CONTAINER_OF(m, struct op_app_job, msg);
    if (!op_worker_deliver(w, job->ref, job)) op_app_job_free(job); /* the client went away */
}

int op_app_queue_init(struct op_app_queue *q)
{
    atomic_init(&q->jobs, NULL);
    q->stopped = false;
    int rc = pthread_mutex_init(&q->mu, NULL);
    if (rc != 0) return -rc;
    q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->efd < 0) {
        rc = -errno;
        pthread_mutex_destroy(&q->mu);
        return rc;
    }
    return 0;
}

void op_app_queue_submit(void *ctx, struct op_app_job *job)
{
    struct op_app_queue *q = ctx;
    job->queue = q;
    op_mpsc_push(&q->jobs, &job->qlink);
    uint64_t one = 1;
    ssize_t w = write(q->efd, &one, sizeof(one));
    (void)w;
}

void op_app_queue_stop(struct op_app_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stopped = true;
    pthread_mutex_unlock(&q->mu);
}

void op_app_queue_run(void *ctx)
{
    struct op_app_queue *q = ctx;
    uint64_t v;
    ssize_t r = read(q->efd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&q->mu);
    bool stopped = q->stopped; /* set by the control thread itself, which is the only runner */
    pthread_mutex_unlock(&q->mu);
    struct op_mpsc_node *n = op_mpsc_take_all(&q->jobs); /* served in arrival order */
    while (n) {
        struct op_mpsc_node *nx = n->next;
        struct op_app_job *job = OP_CONTAINER_OF(n, struct op_app_job, qlink);
        if (stopped)
            op_app_job_free(job);
        else
            op_app_job_run(job);
        n = nx;
    }
}

void op_app_queue_close(struct op_app_queue *q)
{
    if (q->efd < 0) return;
    op_app_queue_stop(q);
    op_app_queue_run(q);
    close(q->efd);
    q->efd = -1;
    /* The mutex is not destroyed: a deferred job still out takes it in op_app_finish (a default mutex
     * holds no resources on Linux). */
}

/* The job whose handler runs on this thread, and whether it deferred: a deferred job may be finished (and
 * freed by its worker) on another thread before its handler has returned, so op_app_job_run must not look
 * at the job again to learn it. */
static _Thread_local struct op_app_job *tl_running;
static _Thread_local bool tl_deferred;

void op_app_job_run(struct op_app_job *job)
{
    job->resp.status = 200;
    tl_running = job;
    tl_deferred = false;
    job->conf->app(job->conf->app_ctx, &job->req, &job->resp);
    tl_running = NULL;
    if (tl_deferred) return; /* op_app_finish posts it (perhaps already did) */
    job->msg.fn = job_deliver;
    op_engine_post(job->engine, job->ref.worker, &job->msg);
}

struct op_app_defer *op_app_defer(struct op_app_response *resp)
{
    struct op_app_job *job = OP_CONTAINER_OF(resp, struct op_app_job, resp);
    if (job == tl_running) tl_deferred = true;
    return (struct op_app_defer *)job;
}

struct op_app_response *op_app_defer_resp(struct op_app_defer *d)
{
    return &((struct op_app_job *)d)->resp;
}

const struct op_app_request *op_app_defer_req(struct op_app_defer *d)
{
    return &((struct op_app_job *)d)->req;
}

void op_app_finish(struct op_app_defer *d)
{
    struct op_app_job *job = (struct op_app_job *)d;
    struct op_app_queue *q = job->queue;
    if (!q) { /* run outside a queue (a test calling op_app_job_run): post as the queue would */
        job->msg.fn = job_deliver;
        op_engine_post(job->engine, job->ref.worker, &job->msg);
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (q->stopped) {
        op_app_job_free(job);
    } else {
        job->msg.fn = job_deliver;
        op_engine_post(job->engine, job->ref.worker, &job->msg);
    }
    pthread_mutex_unlock(&q->mu);
}
