/*
 * wsproxy/server_int.h — what the files of `outpost wsproxy server` share (not for use outside
 * wsproxy/): the proxy's state, the snapshot the workers serve, the per-route request counters, and the
 * functions each file offers the others.
 *
 *   server.c    start-up, run, reload, the command's entry point
 *   routes.c    the snapshot (built on the control thread) and the worker-side routes that serve it
 *   metrics.c   the Prometheus listener (/metrics, answered on the control thread)
 *   register.c  calls to the primary: build info, registration heartbeat, crypto keys, deregistration
 *   apps.c      the slow path of workspace apps (the region's hooks)
 *   issuer.c    the sign-in thread: app-token calls to the primary, off the control thread
 *
 * Threads: the engine's workers answer every request of the proxy's own listeners from `snap`, an
 * immutable snapshot published by the control thread (atomic pointer; the previous one is released with
 * op_engine_retire once every worker has moved on). The control thread owns everything else: the
 * configuration, the curl multi handle, registration state, metrics rendering (Prometheus listener
 * requests reach it as application jobs through a lock-free stack + eventfd) and reloads.
 */
#ifndef OP_WSPROXY_SERVER_INT_H
#define OP_WSPROXY_SERVER_INT_H

#include <stdatomic.h>

#include "http/proxy.h"
#include "region/region.h"
#include "wsproxy/config.h"
#include "wsproxy/primary_client.h"

/* What the workers serve. Immutable once published. */
struct snap {
    int report_status;
    char *report;
    char *buildinfo;
    char *dashboard;
    char hsts[192]; /* "Strict-Transport-Security: ...\r\n" or "" */
    bool redirect;  /* plaintext listener redirects to https */
    char https_port[8];
    char cors_origin[200]; /* the dashboard's origin (the primary's scheme://host[:port]) */
    bool cors_any;         /* --dangerous-allow-cors-requests */
};

struct ws {
    struct op_conf conf;
    int argc;
    char **argv;
    char primary[1024]; /* without trailing '/' */
    char access_url[1024];
    char replica_id[37];
    char hostname[256];
    struct op_ws_client cl;
    struct op_engine *e;
    _Atomic(struct snap *) snap;
    /* health state (control thread) */
    char bi_error[1200];  /* "failed to get build info: ..." or "" */
    char bi_warning[300]; /* version mismatch or "" */
    char reg_error[600];  /* last registration failure or "" */
    char primary_version[64];
    int reg_failures;    /* consecutive */
    int reg_unreachable; /* of those, the ones where the primary could not be reached */
    uint64_t reg_failures_total, reg_success_total;
    bool registered, shutting_down, deregistered, have_region;
    long region_id;
    int exit_code;
    uint64_t next_heartbeat, next_keys;
    CURLM *multi;
    int inflight_reg, inflight_bi, inflight_keys, inflight_stats;
    char *stats_retry; /* an app stats body the primary did not take: sent again at the next heartbeat */
    struct op_ws_call *calls[8]; /* in the multi handle */
    char *keys_json[2];          /* latest crypto-keys responses (never logged) */
    struct op_region *region;    /* agent streams; named after the first registration */
    /* workspace apps (apps.c): set before the engine starts, read by the workers */
    struct op_region_app_conf app_conf;
    char app_wildcard[300];
    /* listeners */
    int tls_li;
    void *tls_ctx; /* the context the TLS listener started with, or NULL (the engine owns swaps) */
    bool tls_swapped;
    uint64_t reloads, reload_failures;
    bool last_reload_ok;
    double start_time, last_register_ok; /* wall clock, seconds */
    /* application jobs (Prometheus listener, the slow path of apps) */
    struct op_app_queue q;
    /* sign-in calls to the primary (issuer.c) */
    struct op_wsp_issuer *issuer;
    /* The last heartbeat registration failed to connect (set and read on the control thread): new sign-ins
     * get the "primary unreachable" page at once instead of a call that cannot succeed. */
    bool primary_down;
    /* key refetches on an unknown key id (register.c): asked for from any thread */
    pthread_mutex_t kw_mu;
    struct op_wsp_key_waiter *kw_want;     /* waiting for the next refetch (under kw_mu) */
    bool kw_wanted;                        /* a refetch was asked for (under kw_mu) */
    int kw_efd;                            /* wakes the control thread when one is asked for */
    struct op_wsp_key_waiter *kw_fetching; /* waiting for the refetch in flight (control thread) */
    int inflight_rkeys;
    uint64_t kw_last_ms, key_refetches_total;
};

/* Per-worker request counters for coderd_api_requests_processed_total{code,method,path}: each worker adds
 * to its own cache line (one slot per possible worker, so every slot has a single writer). */
enum {
    RT_HEALTHZ,
    RT_REPORT,
    RT_REPORT_500,
    RT_LATENCY,
    RT_BUILDINFO,
    RT_DERP,
    RT_DASHBOARD,
    RT_REDIRECT,
    RT_PREFLIGHT,
    RT_N
};
enum { MT_GET, MT_HEAD, MT_OPTIONS, MT_POST, MT_OTHER, MT_N };
struct op_wsp_route_info {
    const char *path;
    int code;
};
extern const struct op_wsp_route_info op_wsp_rt_info[RT_N];
extern const char *const op_wsp_mt_names[MT_N];
#define OP_WS_STAT_SLOTS OP_ENGINE_MAX_WORKERS
struct route_stats {
    _Atomic uint64_t n[RT_N][MT_N];
} __attribute__((aligned(64)));
extern struct route_stats op_wsp_rstats[OP_WS_STAT_SLOTS];

/* routes.c */
/* Builds a snapshot from the control thread's state and publishes it (the old one is retired). */
void op_wsp_publish(struct ws *w);
void op_wsp_snap_free(void *snap);
/* The route function of the proxy's HTTP and HTTPS listeners (worker threads). */
void op_wsp_route(void *ctx, struct op_conn *c, const struct op_h1_request *req, struct op_route *out);

/* metrics.c */
void op_wsp_metrics_route(void *ctx, struct op_conn *c, const struct op_h1_request *req,
                          struct op_route *out);
void op_wsp_metrics_handler(void *ctx, const struct op_app_request *req, struct op_app_response *resp);

/* register.c */
/* The blocking calls at start-up: build info, crypto keys, the first registration. A process exit code. */
int op_wsp_startup(struct ws *w);
/* The control thread's tick: heartbeats and key refreshes through the curl multi handle. */
void op_wsp_tick(void *arg);
/* SIGTERM/SIGINT: /healthz-report turns 500, then the replica deregisters. */
void op_wsp_on_stop(void *arg);
/* Deregisters the replica (blocking, at most timeout_ms) if it registered and has not yet. */
void op_wsp_deregister(struct ws *w, long timeout_ms);

/* apps.c */
/* Fills w->app_conf from the configuration (before the engine starts). */
void op_wsp_apps_init(struct ws *w);
/* The app handler of the proxy's listeners (control thread): the slow path of workspace apps. */
void op_wsp_app_handler(void *ctx, const struct op_app_request *req, struct op_app_response *resp);

/* register.c: key refetches on an unknown key id. One fetch of both features at a time, at most one a
 * second: requests that ask while one is in flight join it. done(arg) (may be NULL) runs on the control
 * thread once the fetch ended, fetched or not (the region has the new keys then). Any thread, never
 * blocks. */
struct op_wsp_key_waiter;
int op_wsp_refetch_init(struct ws *w); /* 0 or -errno */
void op_wsp_refetch_keys(struct ws *w, void (*done)(void *arg), void *arg);
/* The control loop's fd callback for w->kw_efd. */
void op_wsp_refetch_run(void *w);
/* After the engine stopped: runs the waiters left (their answers are freed, not sent). */
void op_wsp_refetch_close(struct ws *w);

/* issuer.c: the thread that runs sign-in calls to the primary (apps.c), so that none waits for another and
 * the control thread waits for none. */
#define OP_WSP_MAX_SIGNINS 256 /* calls in flight at once; more get a 503 page */
struct op_wsp_issuer;
/* Starts the thread (before the engine's first request). 0 or -errno. */
int op_wsp_issuer_start(struct ws *w);
/* Runs x (set up by op_ws_call_new) on the issuer thread; done(x, arg) runs there when it ended (x->code
 * CURLE_ABORTED_BY_CALLBACK at shutdown), then x is freed. Control thread. 0 (x is the issuer's), or
 * -EBUSY (OP_WSP_MAX_SIGNINS in flight), -ESHUTDOWN, -ENOMEM (x stays the caller's). */
int op_wsp_issuer_submit(struct ws *w, struct op_ws_call *x, void (*done)(struct op_ws_call *x, void *arg),
                         void *arg);
/* Ends the calls still out (their done callbacks run) and joins the thread. After op_app_queue_stop. */
void op_wsp_issuer_stop(struct ws *w);

/* server.c */
/* Wall-clock seconds since the epoch. */
double op_wsp_wall_now(void);

#endif
