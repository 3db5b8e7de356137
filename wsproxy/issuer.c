/*
 * wsproxy/issuer.c — the proxy's sign-in calls to the primary (POST .../issue-signed-app-token) on one
 * dedicated thread with its own curl multi handle (docs/apps.md, "Slow path").
 *
 * Why a thread of its own rather than the control loop: the control loop polls a fixed set of fds and
 * wakes every 100 ms; curl's socket and timer callbacks would need it to watch a changing set of sockets
 * and to time out in milliseconds, and everything the loop does (heartbeats, reloads, metrics) would share
 * its latency with sign-ins. Here curl_multi_poll sleeps on exactly curl's sockets and timers, woken by
 * curl_multi_wakeup when a call is queued, so a primary that hangs costs each sign-in its own timeout (not
 * a place in a line) and heartbeats and key refreshes on the control thread never wait behind sign-ins.
 *
 * Calls are set up on the control thread (op_ws_call_new: the client settings are read there), handed over
 * through a mutex-protected list, and from then on touched only by this thread until their done callback,
 * which runs here; the call is freed after it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/log.h"
#include "wsproxy/server_int.h"

struct issue_call {
    struct op_ws_call *x;
    void (*done)(struct op_ws_call *x, void *arg);
    void *arg;
    struct issue_call *next;
};

struct op_wsp_issuer {
    pthread_t thr;
    pthread_mutex_t mu;
    CURLM *multi;
    struct issue_call *incoming; /* queued by the control thread, not yet in the multi handle */
    struct issue_call *active;   /* in the multi handle (this thread only) */
    int count;                   /* incoming + active (under mu) */
    bool stop;
};

static void finish(struct op_wsp_issuer *is, struct issue_call *c, CURLcode code)
{
    op_ws_call_finish(c->x, code);
    c->done(c->x, c->arg);
    op_ws_call_free(c->x);
    free(c);
    pthread_mutex_lock(&is->mu);
    is->count--;
    pthread_mutex_unlock(&is->mu);
}

static void *issuer_main(void *arg)
{
    struct op_wsp_issuer *is = arg;
    for (;;) {
        pthread_mutex_lock(&is->mu);
        struct issue_call *in = is->incoming;
        is->incoming = NULL;
        bool stop = is->stop;
        pthread_mutex_unlock(&is->mu);
        while (in) {
            struct issue_call *nx = in->next;
            if (stop || curl_multi_add_handle(is->multi, in->x->h) != CURLM_OK) {
                finish(is, in, CURLE_ABORTED_BY_CALLBACK);
            } else {
                in->next = is->active;
                is->active = in;
            }
            in = nx;
        }
        if (stop) break;
        int running = 0;
        curl_multi_perform(is->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(is->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            CURL *h = m->easy_handle;
            CURLcode res = m->data.result;
            curl_multi_remove_handle(is->multi, h);
            for (struct issue_call **pp = &is->active; *pp; pp = &(*pp)->next)
                if ((*pp)->x->h == h) {
                    struct issue_call *c = *pp;
                    *pp = c->next;
                    finish(is, c, res);
                    break;
                }
        }
        curl_multi_poll(is->multi, NULL, 0, 1000, NULL);
    }
    while (is->active) { /* shutting down: the calls still out end as failed */
        struct issue_call *c = is->active;
        is->active = c->next;
        curl_multi_remove_handle(is->multi, c->x->h);
        finish(is, c, CURLE_ABORTED_BY_CALLBACK);
    }
    return NULL;
}

int op_wsp_issuer_start(struct ws *w)
{
    struct op_wsp_issuer *is = calloc(1, sizeof(*is));
    if (!is) return -ENOMEM;
    pthread_mutex_init(&is->mu, NULL);
    is->multi = curl_multi_init();
    int rc = is->multi ? pthread_create(&is->thr, NULL, issuer_main, is) : ENOMEM;
    if (rc != 0) {
        if (is->multi) curl_multi_cleanup(is->multi);
        pthread_mutex_destroy(&is->mu);
        free(is);
        return -rc;
    }
    w->issuer = is;
    return 0;
}

int op_wsp_issuer_submit(struct ws *w, struct op_ws_call *x, void (*done)(struct op_ws_call *x, void *arg),
                         void *arg)
{
    struct op_wsp_issuer *is = w->issuer;
    if (!is) return -ESHUTDOWN;
    struct issue_call *c = calloc(1, sizeof(*c));
    if (!c) return -ENOMEM;
    c->x = x;
    c->done = done;
    c->arg = arg;
    pthread_mutex_lock(&is->mu);
    int rc = 0;
    if (is->stop)
        rc = -ESHUTDOWN;
    else if (is->count >= OP_WSP_MAX_SIGNINS)
        rc = -EBUSY;
    if (rc == 0) {
        c->next = is->incoming;
        is->incoming = c;
        is->count++;
    }
    pthread_mutex_unlock(&is->mu);
    if (rc != 0) {
        free(c);
        return rc;
    }
    curl_multi_wakeup(is->multi);
    return 0;
}

void op_wsp_issuer_stop(struct ws *w)
{
    struct op_wsp_issuer *is = w->issuer;
    if (!is) return;
    pthread_mutex_lock(&is->mu);
    is->stop = true;
    pthread_mutex_unlock(&is->mu);
    curl_multi_wakeup(is->multi);
    pthread_join(is->thr, NULL);
    curl_multi_cleanup(is->multi);
    pthread_mutex_destroy(&is->mu);
    free(is);
    w->issuer = NULL;
}
