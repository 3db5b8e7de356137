/*
 * http/app_queue.c — application jobs between the workers and the control thread (see app_queue.h): a
 * lock-free MPSC stack of jobs plus an eventfd the control loop polls.
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
    q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return q->efd < 0 ? -errno : 0;
}

void op_app_queue_submit(void *ctx, struct op_app_job *job)
{
    struct op_app_queue *q = ctx;
    op_mpsc_push(&q->jobs, &job->qlink);
    uint64_t one = 1;
    ssize_t w = write(q->efd, &one, sizeof(one));
    (void)w;
}

void op_app_queue_run(void *ctx)
{
    struct op_app_queue *q = ctx;
    uint64_t v;
    ssize_t r = read(q->efd, &v, sizeof(v));
    (void)r;
    struct op_mpsc_node *n = op_mpsc_take_all(&q->jobs); /* served in arrival order */
    while (n) {
        struct op_mpsc_node *nx = n->next;
        struct op_app_job *job = OP_CONTAINER_OF(n, struct op_app_job, qlink);
        if (q->stopped)
            op_app_job_free(job);
        else
            op_app_job_run(job);
        n = nx;
    }
}

void op_app_queue_close(struct op_app_queue *q)
{
    q->stopped = true;
    op_app_queue_run(q);
    if (q->efd >= 0) close(q->efd);
    q->efd = -1;
}

void op_app_job_run(struct op_app_job *job)
{
    job->resp.status = 200;
    job->conf->app(job->conf->app_ctx, &job->req, &job->resp);
    job->msg.fn = job_deliver;
    op_engine_post(job->engine, job->ref.worker, &job->msg);
}
