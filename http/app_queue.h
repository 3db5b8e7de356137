/*
 * http/app_queue.h — application jobs and the queue that carries them from the workers to the control
 * thread (see http/app.h for the handlers they run).
 *
 * A worker that routes a request to the application handler (OP_ROUTE_APP) copies the whole request
 * into a job and submits it through op_http_conf.app_submit; op_app_queue_submit is that function for
 * a role with a control thread. The control thread runs the handler and posts the job back to the
 * worker, which writes the response (or frees the job when the client went away).
 */
#ifndef OP_HTTP_APP_QUEUE_H
#define OP_HTTP_APP_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/engine.h"
#include "core/mpsc.h"
#include "http/app.h"
#include "http/h1.h"

struct op_http_conf;

/* An application request in flight between a worker and the control thread. */
struct op_app_job {
    struct op_msg msg;         /* posting back to the worker */
    struct op_mpsc_node qlink; /* the control thread's queue */
    struct op_conn_ref ref;
    struct op_engine *engine;
    const struct op_http_conf *conf;
    struct op_app_request req;
    struct op_app_response resp;
    struct op_app_header headers[OP_H1_MAX_HEADERS];
    char remote_ip[64];
    char *head; /* copy of the request head; req spans point into it */
    size_t head_len;
    char *body;
    size_t body_len, body_have;
    struct op_app_queue *queue; /* the queue it came through (op_app_queue_submit), for op_app_finish */
    bool body_drop;             /* body_len bytes are read and dropped (op_route.app_head_only) */
};

/* Control-thread side: runs the handler for job and posts the response back to its worker. */
void op_app_job_run(struct op_app_job *job);
void op_app_job_free(struct op_app_job *job);

/*
 * The queue that carries application jobs from the workers to the control thread: a lock-free MPSC
 * stack plus an eventfd that the control loop polls. Wire it as conf->app_submit = op_app_queue_submit,
 * conf->app_submit_ctx = q, and a ctl fd {q->efd, op_app_queue_run, q}.
 */
struct op_app_queue {
    op_mpsc_t jobs;
    int efd;
    bool stopped; /* the engine is (being) freed: leftover and finished jobs are freed, not run or sent */
    pthread_mutex_t mu; /* orders op_app_finish against op_app_queue_stop */
};
int op_app_queue_init(struct op_app_queue *q); /* 0 or -errno */
/* Before op_engine_free (after the control loop returned): from now on queued jobs are freed unrun and
 * deferred jobs are freed when they finish, so nothing is posted to a freed engine. Any thread. */
void op_app_queue_stop(struct op_app_queue *q);
void op_app_queue_submit(void *q, struct op_app_job *job);
/* Runs every queued job, in arrival order (the control loop's on_readable callback). */
void op_app_queue_run(void *q);
/* After op_engine_free(): stops the queue, frees jobs that raced the shutdown and closes the eventfd.
 * Deferred jobs still outstanding are freed by their op_app_finish (whoever holds them must finish them
 * before the queue's memory goes). */
void op_app_queue_close(struct op_app_queue *q);

#endif
