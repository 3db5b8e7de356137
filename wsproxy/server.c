/*
 * wsproxy/server.c — `outpost wsproxy server` (see wsproxy.h): loading and applying the configuration,
 * start-up, the engine with its listeners and control loop, SIGHUP reloads. See server_int.h for how
 * the files of the command divide the work.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "ctl/ctl.h"
#include "runner/runner.h"
#include "tls/xprt.h"
#include "util/url.h"
#include "util/uuid.h"
#include "wsproxy/server_int.h"
#include "wsproxy/wsproxy.h"

double op_wsp_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- configuration application ------------------------------------------------------------------- */

static void apply_logging(const struct op_conf *c)
{
    enum op_log_level lvl = OP_LOG_INFO;
    op_log_parse_level(op_ws_str(c, OP_WO_LOG_LEVEL), &lvl);
    if (op_ws_bool(c, OP_WO_VERBOSE)) lvl = OP_LOG_DEBUG;
    op_log_set_level(lvl);
    op_log_set_json(*op_ws_str(c, OP_WO_LOG_JSON) != '\0');
}

static void trim_url(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src);
    op_url_trim_slashes(dst);
}

/* Access URL: configured, else the TLS listener's URL, else the HTTP one (docs/coder-compat.md). */
static void compute_access_url(struct ws *w)
{
    const char *au = op_ws_str(&w->conf, OP_WO_ACCESS_URL);
    if (*au) {
        trim_url(w->access_url, sizeof(w->access_url), au);
        return;
    }
    bool tls = op_ws_bool(&w->conf, OP_WO_TLS_ENABLE);
    snprintf(w->access_url, sizeof(w->access_url), "%s://%s", tls ? "https" : "http",
             op_ws_str(&w->conf, tls ? OP_WO_TLS_ADDRESS : OP_WO_HTTP_ADDRESS));
}

static void set_client(struct ws *w)
{
    w->cl.base_url = w->primary;
    w->cl.token = op_ws_str(&w->conf, OP_WO_PROXY_SESSION_TOKEN);
    w->cl.ca_file = op_ws_str(&w->conf, OP_WO_TLS_CLIENT_CA_FILE);
    w->cl.cert_file = op_ws_str(&w->conf, OP_WO_TLS_CLIENT_CERT_FILE);
    w->cl.key_file = op_ws_str(&w->conf, OP_WO_TLS_CLIENT_KEY_FILE);
}

static int make_tls_ctx(const struct op_conf *c, void **out, char *err, size_t errlen)
{
    char b1[4096], b2[4096];
    const char *certs[OP_TLS_MAX_CERTS], *keys[OP_TLS_MAX_CERTS];
    int nc = op_ws_list(c, OP_WO_TLS_CERT_FILE, b1, sizeof(b1), certs, OP_TLS_MAX_CERTS);
    int nk = op_ws_list(c, OP_WO_TLS_KEY_FILE, b2, sizeof(b2), keys, OP_TLS_MAX_CERTS);
    if (nc != nk || nc < 1) {
        snprintf(err, errlen, "need as many TLS key files as certificate files");
        return -EINVAL;
    }
    int minv = strcmp(op_ws_str(c, OP_WO_TLS_MIN_VERSION), "tls13") == 0 ? 13 : 12;
    return op_tls_xprt_ctx_new(certs, keys, nc, minv, out, err, errlen);
}

static const enum op_ws_opt_id restart_only[] = {
    OP_WO_HTTP_ADDRESS,       OP_WO_TLS_ADDRESS, OP_WO_TLS_ENABLE,        OP_WO_PROMETHEUS_ENABLE,
    OP_WO_PROMETHEUS_ADDRESS, OP_WO_WORKERS,     OP_WO_PRIMARY_ACCESS_URL};

/* SIGHUP: re-read flags (as given at start), environment, env-file and YAML; validate; swap. */
static int reload(void *arg)
{
    struct ws *w = arg;
    struct op_conf nc;
    char err[768];
    int rc = op_ws_conf_load(&nc, w->argc, w->argv, err, sizeof(err));
    if (rc == 0) rc = op_ws_conf_validate(&nc, err, sizeof(err));
    void *ctx = NULL;
    if (rc == 0 && op_ws_bool(&nc, OP_WO_TLS_ENABLE) && w->tls_li >= 0 &&
        make_tls_ctx(&nc, &ctx, err, sizeof(err)) != 0)
        rc = EX_CONFIG;
    if (rc != 0) {
        w->reload_failures++;
        w->last_reload_ok = false;
        op_error("wsproxy", "reload rejected, keeping the running configuration: %s", err);
        op_ws_conf_free(&nc);
        return -1;
    }
    for (size_t i = 0; i < OP_ARRAY_LEN(restart_only); i++)
        if (strcmp(op_ws_str(&nc, restart_only[i]), op_ws_str(&w->conf, restart_only[i])) != 0)
            op_warn("wsproxy", "reload: --%s changed; that takes effect after a restart",
                    op_ws_opts[restart_only[i]].flag);
    if (ctx) {
        if (op_engine_set_xprt_ctx(w->e, w->tls_li, ctx, op_tls_xprt_ctx_unref) != 0) {
            op_tls_xprt_ctx_unref(ctx);
            w->reload_failures++;
            op_error("wsproxy", "reload rejected: out of memory swapping the TLS context");
            op_ws_conf_free(&nc);
            return -1;
        }
        w->tls_swapped = true; /* the engine released the start-up context */
    }
    /* Options that need a restart keep their running values. */
    for (size_t i = 0; i < OP_ARRAY_LEN(restart_only); i++) {
        char *t = nc.val[restart_only[i]];
        nc.val[restart_only[i]] = w->conf.val[restart_only[i]];
        w->conf.val[restart_only[i]] = t;
    }
    op_ws_conf_free(&w->conf);
    w->conf = nc;
    apply_logging(&w->conf);
    set_client(w);
    compute_access_url(w);
    w->reloads++;
    w->last_reload_ok = true;
    op_wsp_publish(w);
    op_info("wsproxy", "configuration reloaded%s", ctx ? " (new TLS certificates for new connections)" : "");
    return 0;
}

/* ---- start-up ------------------------------------------------------------------------------------- */

static void new_replica_id(char out[37])
{
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (uint8_t)(rand() ^ (int)op_now_ms());
    }
    op_uuid_v4_text(b, out);
}

static int listen_on(struct op_listener_conf *lc, const char *addr, const struct op_xprt_ops *xprt,
                     void *xctx, struct op_http_conf *hc)
{
    char err[256];
    if (op_runner_http_listener(lc, addr, xprt, xctx, hc, err, sizeof(err)) != 0) {
        op_error("wsproxy", "listen address %s: %s", addr, err);
        return -1;
    }
    return 0;
}

static int run(struct ws *w)
{
    static struct op_http_conf hconf, mconf;
    static struct op_listener_conf lcs[3];
    memset(lcs, 0, sizeof(lcs));
    op_http_conf_init(&hconf);
    hconf.route = op_wsp_route;
    hconf.route_ctx = w;
    hconf.upgrade_tokens = op_region_upgrade_tokens; /* the agent endpoints' upgrades reach the route */
    hconf.resp_extra = "X-Coder-Build-Version: " OP_WS_VERSION "\r\nX-Content-Type-Options: nosniff\r\n";
    hconf.app = op_wsp_app_handler; /* the slow path of workspace apps */
    hconf.app_ctx = w;
    hconf.app_submit = op_app_queue_submit;
    hconf.app_submit_ctx = &w->q;
    op_wsp_apps_init(w);
    op_http_conf_init(&mconf);
    mconf.route = op_wsp_metrics_route;
    mconf.app = op_wsp_metrics_handler;
    mconf.app_ctx = w;
    mconf.app_submit = op_app_queue_submit;
    mconf.app_submit_ctx = &w->q;
    mconf.max_app_body = 4096;

    char err[512];
    int n = 0;
    w->tls_li = -1;
    if (op_ws_bool(&w->conf, OP_WO_TLS_ENABLE)) {
        if (make_tls_ctx(&w->conf, &w->tls_ctx, err, sizeof(err)) != 0) {
            op_error("wsproxy", "TLS (--tls-cert-file / --tls-key-file): %s", err);
            return EX_CONFIG;
        }
    }
    int rc = EX_CONFIG;
    const char *http = op_ws_str(&w->conf, OP_WO_HTTP_ADDRESS);
    if (*http && listen_on(&lcs[n++], http, NULL, NULL, &hconf) != 0) goto out;
    if (w->tls_ctx) {
        w->tls_li = n;
        if (listen_on(&lcs[n++], op_ws_str(&w->conf, OP_WO_TLS_ADDRESS), &op_xprt_tls, w->tls_ctx, &hconf) !=
            0)
            goto out;
    }
    if (op_ws_bool(&w->conf, OP_WO_PROMETHEUS_ENABLE) &&
        listen_on(&lcs[n++], op_ws_str(&w->conf, OP_WO_PROMETHEUS_ADDRESS), NULL, NULL, &mconf) != 0)
        goto out;
    long long drain = op_ws_duration_ms(&w->conf, OP_WO_DRAIN_TIMEOUT);
    struct op_engine_conf ec = {
        .workers = (int)op_ws_int(&w->conf, OP_WO_WORKERS),
        .listeners = lcs,
        .nlisteners = n,
        .max_conns = 16384,
        .to = {.drain_ms = drain > 0 ? (uint32_t)(drain > 3600000 ? 3600000 : drain) : 0},
    };
    op_wsp_publish(w);
    if (op_wsp_issuer_start(w) != 0) {
        op_error("wsproxy", "cannot start the sign-in thread");
        rc = EX_OSERR;
        op_wsp_deregister(w, 5000);
        goto out;
    }
    rc = op_engine_start(&ec, &w->e, err, sizeof(err));
    if (rc != 0) {
        op_error("wsproxy", "cannot start: %s", err);
        rc = op_runner_start_exit_code(rc);
        w->e = NULL;
        op_wsp_issuer_stop(w);
        op_wsp_deregister(w, 5000);
        goto out;
    }
    for (int i = 0; i < n; i++)
        op_info("wsproxy", "listening on %s (%s)", lcs[i].name,
                lcs[i].proto_ctx == &mconf ? "prometheus"
                : lcs[i].xprt              ? "https"
                                           : "http");
    op_info("wsproxy", "View the Web UI: %s", w->access_url);
    w->next_heartbeat = op_now_ms() + (uint64_t)op_ws_duration_ms(&w->conf, OP_WO_HEARTBEAT_INTERVAL);
    w->next_keys = op_now_ms() + OP_WS_KEYS_INTERVAL_MS;
    struct op_ctl_hooks hooks = {
        .tick = op_wsp_tick,
        .tick_arg = w,
        .reload = reload,
        .reload_arg = w,
        .on_stop = op_wsp_on_stop,
        .stop_arg = w,
        .fds = {{.fd = w->q.efd, .on_readable = op_app_queue_run, .arg = &w->q},
                {.fd = w->kw_efd, .on_readable = op_wsp_refetch_run, .arg = w}},
        .nfds = 2,
    };
    rc = op_ctl_run(w->e, &hooks);
    op_app_queue_stop(&w->q); /* sign-ins still at the primary are freed, not posted, when they end */
    op_wsp_issuer_stop(w);
    op_engine_free(w->e);
    w->e = NULL;
    op_wsp_refetch_close(w); /* after the workers: they may still ask for a refetch (its eventfd) */
    op_app_queue_run(&w->q); /* jobs that raced the shutdown are freed */
    if (w->exit_code) rc = w->exit_code;
out:
    if (w->tls_ctx && !w->tls_swapped)
        op_tls_xprt_ctx_unref(w->tls_ctx);
    else if (w->tls_li >= 0 && w->tls_swapped)
        op_tls_xprt_ctx_unref(atomic_load(&lcs[w->tls_li].xprt_ctx)); /* the last reloaded context */
    return rc;
}

int op_cmd_wsproxy_server(int argc, char **argv)
{
    static struct ws ws;
    struct ws *w = &ws;
    memset(w, 0, sizeof(*w));
    char err[768];
    int rc = op_ws_conf_load(&w->conf, argc, argv, err, sizeof(err));
    if (rc == 0 && op_ws_bool(&w->conf, OP_WO_HELP)) {
        op_ws_print_help(stdout);
        op_ws_conf_free(&w->conf);
        return 0;
    }
    if (rc == 0 && op_ws_bool(&w->conf, OP_WO_DOCS_MARKDOWN)) {
        op_ws_print_markdown(stdout);
        op_ws_conf_free(&w->conf);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "outpost wsproxy server: %s\n", err);
        op_ws_conf_free(&w->conf);
        return rc;
    }
    if (op_ws_bool(&w->conf, OP_WO_WRITE_CONFIG)) {
        op_ws_write_yaml(&w->conf, stdout);
        op_ws_conf_free(&w->conf);
        return 0;
    }
    rc = op_ws_conf_validate(&w->conf, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "outpost wsproxy server: invalid configuration: %s\n", err);
        op_ws_conf_free(&w->conf);
        return rc;
    }
    if (op_ws_bool(&w->conf, OP_WO_CHECK)) {
        if (op_ws_bool(&w->conf, OP_WO_TLS_ENABLE)) { /* certificates must also load and match their keys */
            void *ctx = NULL;
            if (make_tls_ctx(&w->conf, &ctx, err, sizeof(err)) != 0) {
                fprintf(stderr,
                        "outpost wsproxy server: invalid configuration: tls-cert-file / tls-key-file: %s\n",
                        err);
                op_ws_conf_free(&w->conf);
                return EX_CONFIG;
            }
            op_tls_xprt_ctx_unref(ctx);
        }
        printf("configuration OK\n");
        op_ws_conf_free(&w->conf);
        return 0;
    }
    w->argc = argc;
    w->argv = argv;
    w->last_reload_ok = true;
    w->start_time = op_wsp_wall_now();
    apply_logging(&w->conf);
    op_ctl_block_signals();
    trim_url(w->primary, sizeof(w->primary), op_ws_str(&w->conf, OP_WO_PRIMARY_ACCESS_URL));
    compute_access_url(w);
    set_client(w);
    new_replica_id(w->replica_id);
    if (gethostname(w->hostname, sizeof(w->hostname) - 1) != 0)
        snprintf(w->hostname, sizeof(w->hostname), "unknown");
    if (op_app_queue_init(&w->q) != 0) {
        op_error("wsproxy", "eventfd: %s", strerror(errno));
        op_ws_conf_free(&w->conf);
        return EX_OSERR;
    }
    if (op_wsp_refetch_init(w) != 0) {
        op_error("wsproxy", "eventfd: %s", strerror(errno));
        op_ws_conf_free(&w->conf);
        return EX_OSERR;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    w->multi = curl_multi_init();
    op_info("wsproxy", "Outpost workspace proxy %s starting; primary %s", OP_WS_VERSION, w->primary);
    struct op_region_limits lim = {0};
    char lerr[256];
    if (op_region_limits_parse(op_ws_str(&w->conf, OP_WO_AGENT_STREAM_LIMITS), &lim, lerr, sizeof(lerr)) != 0)
        op_error("wsproxy", "%s", lerr); /* --check refuses it; cannot happen after validation */
    w->region = op_region_new("unnamed", &lim);
    rc = w->region ? op_wsp_startup(w) : EX_OSERR;
    if (rc == 0) rc = run(w);
    /* Calls still in flight at exit are abandoned. */
    for (size_t i = 0; i < OP_ARRAY_LEN(w->calls); i++)
        if (w->calls[i]) {
            curl_multi_remove_handle(w->multi, w->calls[i]->h);
            op_ws_call_free(w->calls[i]);
        }
    curl_multi_cleanup(w->multi);
    curl_global_cleanup();
    op_wsp_snap_free(atomic_exchange(&w->snap, NULL));
    op_region_free(w->region); /* after the engine: closes parked spares */
    free(w->stats_retry);
    w->region = NULL;
    for (int i = 0; i < 2; i++)
        free(w->keys_json[i]);
    op_app_queue_close(&w->q);
    if (w->kw_efd >= 0) op_wsp_refetch_close(w); /* start-up failed before the engine ran */
    op_ws_conf_free(&w->conf);
    op_info("wsproxy", "stopped (exit code %d)", rc);
    return rc;
}
