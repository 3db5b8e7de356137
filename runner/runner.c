/*
 * runner/runner.c — an HTTP(S) server on the engine whose requests are answered by an application
 * handler on the control thread. Workers parse and validate requests and never block; complete requests
 * travel to the control thread through a lock-free stack plus an eventfd, and responses come back through
 * the engine's per-worker inbox.
 */
#include "runner/runner.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sysexits.h>
#include <unistd.h>

#include "core/log.h"
#include "ctl/ctl.h"
#include "http/proxy.h"
#include "runner/redirect.h"
#include "tls/xprt.h"

struct app_server {
    const struct op_app_server_opts *opts;
    struct op_app_queue q;
    const char *https_port; /* for redirects */
};

/* Plaintext listener with TLS on: redirect to https (308 keeps the method and body). */
static void route_redirect(void *ctx, struct op_conn *c, const struct op_h1_request *req,
                           struct op_route *out)
{
    struct app_server *s = ctx;
    if (op_conn_is_tls(c) || !s->opts->listen.redirect_to_https) {
        if (s->opts->route) s->opts->route(s->opts->route_ctx, c, req, out);
        if (!out->kind) out->kind = OP_ROUTE_APP;
        return;
    }
    op_route_https_redirect(out, 0, req->host, req->target, s->https_port);
}

int op_runner_http_listener(struct op_listener_conf *lc, const char *addr, const struct op_xprt_ops *xprt,
                            void *xprt_ctx, struct op_http_conf *hc, char *err, size_t errlen)
{
    snprintf(lc->name, sizeof(lc->name), "%s", addr);
    int rc = op_parse_hostport(addr, &lc->addr, &lc->addrlen, err, errlen);
    if (rc != 0) return rc;
    lc->xprt = xprt;
    atomic_store(&lc->xprt_ctx, xprt_ctx);
    lc->proto = &op_proto_http;
    lc->proto_ctx = hc;
    return 0;
}

int op_runner_start_exit_code(int rc)
{
    return rc == -EADDRINUSE || rc == -EACCES || rc == -EADDRNOTAVAIL ? EX_UNAVAILABLE : EX_OSERR;
}

int op_app_server_run(const struct op_app_server_opts *opts)
{
    const struct op_listen_opts *lo = &opts->listen;
    bool want_http = lo->http_address && *lo->http_address;
    bool want_tls = lo->tls_address && *lo->tls_address;
    if (!want_http && !want_tls) {
        op_error("server", "no listener: set an HTTP address or enable TLS");
        return EX_CONFIG;
    }
    char err[512];
    void *tls_ctx = NULL;
    if (want_tls) {
        if (lo->ntls < 1) {
            op_error("server", "TLS is enabled but no certificate/key pair was given");
            return EX_CONFIG;
        }
        if (op_tls_xprt_ctx_new(lo->tls_cert_files, lo->tls_key_files, lo->ntls, lo->tls_min_version,
                                &tls_ctx, err, sizeof(err)) != 0) {
            op_error("server", "TLS: %s", err);
            return EX_CONFIG;
        }
    }
    static struct app_server srv;
    memset(&srv, 0, sizeof(srv));
    srv.opts = opts;
    if (op_app_queue_init(&srv.q) != 0) {
        op_error("server", "eventfd: %s", strerror(errno));
        if (tls_ctx) op_tls_xprt_ctx_unref(tls_ctx);
        return EX_OSERR;
    }
    srv.https_port = "443";
    if (want_tls) {
        const char *colon = strrchr(lo->tls_address, ':');
        srv.https_port = colon ? colon + 1 : "443";
    }
    static struct op_http_conf hconf;
    op_http_conf_init(&hconf);
    hconf.route = route_redirect;
    hconf.route_ctx = &srv;
    hconf.app = opts->handler;
    hconf.app_ctx = opts->handler_ctx;
    hconf.app_submit = op_app_queue_submit;
    hconf.app_submit_ctx = &srv.q;
    if (opts->max_body) hconf.max_app_body = opts->max_body;
    hconf.upgrade_tokens = opts->upgrade_tokens;

    static struct op_listener_conf lcs[2];
    memset(lcs, 0, sizeof(lcs));
    int n = 0;
    const char *addrs[2] = {want_http ? lo->http_address : NULL, want_tls ? lo->tls_address : NULL};
    for (int i = 0; i < 2; i++) {
        if (!addrs[i]) continue;
        if (op_runner_http_listener(&lcs[n++], addrs[i], i == 1 ? &op_xprt_tls : NULL,
                                    i == 1 ? tls_ctx : NULL, &hconf, err, sizeof(err)) != 0) {
            op_error("server", "listen address: %s", err);
            return EX_CONFIG;
        }
    }
    struct op_engine_conf ec = {
        .workers = opts->workers, .listeners = lcs, .nlisteners = n, .max_conns = 4096};
    op_ctl_block_signals();
    struct op_engine *e = NULL;
    int rc = op_engine_start(&ec, &e, err, sizeof(err));
    if (rc != 0) {
        op_error("server", "cannot start: %s", err);
        if (tls_ctx) op_tls_xprt_ctx_unref(tls_ctx);
        op_app_queue_close(&srv.q);
        return op_runner_start_exit_code(rc);
    }
    for (int i = 0; i < n; i++)
        op_info(opts->server_name ? opts->server_name : "server", "listening on %s (%s)", lcs[i].name,
                lcs[i].xprt ? "https" : "http");
    struct op_ctl_hooks hooks = {
        .tick = opts->tick,
        .tick_arg = opts->tick_ctx,
        .fds = {{.fd = srv.q.efd, .on_readable = op_app_queue_run, .arg = &srv.q}},
        .nfds = 1,
    };
    if (opts->on_engine) opts->on_engine(opts->on_engine_ctx, e);
    rc = op_ctl_run(e, &hooks);
    if (opts->on_engine) opts->on_engine(opts->on_engine_ctx, NULL);
    op_engine_free(e);
    op_app_queue_close(&srv.q); /* jobs that raced the shutdown: their workers are gone, just free them */
    if (tls_ctx) op_tls_xprt_ctx_unref(tls_ctx);
    return rc;
}
