/*
 * wsproxy/server.c — `outpost wsproxy server` (see wsproxy.h).
 *
 * Threads: the engine's workers answer every request of the proxy's own listeners from `snap`, an
 * immutable snapshot published by the control thread (atomic pointer; the previous one is released with
 * op_engine_retire once every worker has moved on). The control thread owns everything else: the
 * configuration, the curl multi handle, registration state, metrics rendering (Prometheus listener
 * requests reach it as application jobs through a lock-free stack + eventfd) and reloads.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <dirent.h>
#include <sys/random.h>
#include <time.h>
#include <sysexits.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mpsc.h"
#include "ctl/ctl.h"
#include "http/proxy.h"
#include "runner/redirect.h"
#include "runner/runner.h"
#include "tls/xprt.h"
#include "util/buildinfo.h"
#include "util/url.h"
#include "wsproxy/config.h"
#include "wsproxy/primary_client.h"
#include "wsproxy/wsproxy.h"

enum { K_BUILDINFO = 1, K_REGISTER, K_KEYS_SIGN, K_KEYS_ENC };
static const char *const key_features[2] = {"workspace_apps_token", "workspace_apps_api_key"};

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
    struct op_ws_conf conf;
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
    int reg_failures; /* consecutive */
    uint64_t reg_failures_total, reg_success_total;
    bool registered, shutting_down, deregistered, have_region;
    long region_id;
    int exit_code;
    uint64_t next_heartbeat, next_keys;
    CURLM *multi;
    int inflight_reg, inflight_bi, inflight_keys;
    struct op_ws_call *calls[8]; /* in the multi handle */
    char *keys_json[2];          /* latest crypto-keys responses (never logged) */
    /* listeners */
    int tls_li;
    void *tls_ctx; /* the context the TLS listener started with, or NULL (the engine owns swaps) */
    bool tls_swapped;
    uint64_t reloads, reload_failures;
    bool last_reload_ok;
    double start_time, last_register_ok; /* wall clock, seconds */
    /* application jobs (Prometheus listener) */
    struct op_app_queue q;
};

/* ---- version rule ------------------------------------------------------------------------------- */

static int major_minor(const char *v, long *maj, long *min)
{
    if (*v == 'v') v++;
    char *e;
    *maj = strtol(v, &e, 10);
    if (e == v || *e != '.') return -1;
    v = e + 1;
    *min = strtol(v, &e, 10);
    return e == v ? -1 : 0;
}

int op_ws_versions_match(const char *a, const char *b)
{
    if (strstr(a, "devel") || strstr(b, "devel") || strstr(a, "-dev") || strstr(b, "-dev")) return 1;
    long am, an, bm, bn;
    if (major_minor(a, &am, &an) || major_minor(b, &bm, &bn)) return 0;
    return am == bm && an == bn;
}

/* ---- snapshot ------------------------------------------------------------------------------------ */

static void snap_free(void *p)
{
    struct snap *s = p;
    if (!s) return;
    free(s->report);
    free(s->buildinfo);
    free(s->dashboard);
    free(s);
}

static char *html_escape(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += (*p == '<' || *p == '>' || *p == '&' || *p == '"' || *p == '\'') ? 6 : 1;
    char *o = malloc(n + 1), *q = o;
    if (!o) return NULL;
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '<':
            q = stpcpy(q, "&lt;");
            break;
        case '>':
            q = stpcpy(q, "&gt;");
            break;
        case '&':
            q = stpcpy(q, "&amp;");
            break;
        case '"':
            q = stpcpy(q, "&#34;");
            break;
        case '\'':
            q = stpcpy(q, "&#39;");
            break;
        default:
            *q++ = *p;
        }
    }
    *q = '\0';
    return o;
}

static char *dashboard_page(const struct ws *w)
{
    bool derp_only = op_ws_bool(&w->conf, OP_WO_DERP_ONLY);
    const char *text =
        derp_only ? "This workspace proxy is DERP-only and cannot be used for browser connections. "
                    "Please use a different region directly from the dashboard."
                  : "Workspace Proxies route traffic in terminals and apps directly to your workspace. "
                    "This page must be loaded from the dashboard. Click to be redirected!";
    char *url = html_escape(w->primary);
    if (!url) return NULL;
    char *out = NULL;
    if (asprintf(
            &out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>Head to the Dashboard</title>\n<style>body{font-family:sans-serif;background:#17172e;"
            "color:#fff;display:flex;align-items:center;justify-content:center;height:100vh;margin:0}"
            "main{max-width:36em;text-align:center}a{display:inline-block;margin-top:1.5em;padding:.6em "
            "1.2em;"
            "border:1px solid "
            "#fff;color:#fff;text-decoration:none;border-radius:4px}</style>\n</head>\n<body>\n"
            "<main>\n<h1>Head to the Dashboard</h1>\n<p>%s</p>\n<a href=\"%s\">Back to site</a>\n</main>\n"
            "</body>\n</html>\n",
            text, url) < 0)
        out = NULL;
    free(url);
    return out;
}

static char *report_json(const struct ws *w, int *status)
{
    if (w->shutting_down) {
        *status = 500;
        return strdup("\"workspace proxy in middle of shutting down\"");
    }
    *status = 200;
    cJSON *o = cJSON_CreateObject(), *errs = cJSON_AddArrayToObject(o, "errors"),
          *warns = cJSON_AddArrayToObject(o, "warnings");
    if (*w->bi_error) cJSON_AddItemToArray(errs, cJSON_CreateString(w->bi_error));
    if (*w->reg_error) cJSON_AddItemToArray(errs, cJSON_CreateString(w->reg_error));
    if (*w->bi_warning) cJSON_AddItemToArray(warns, cJSON_CreateString(w->bi_warning));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *buildinfo_json(const struct ws *w)
{
    cJSON *o = op_buildinfo_json(OP_WS_VERSION, w->primary, true);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* Builds a snapshot from the control thread's state and publishes it. */
static void publish(struct ws *w)
{
    struct snap *s = calloc(1, sizeof(*s));
    if (!s) return;
    s->report = report_json(w, &s->report_status);
    s->buildinfo = buildinfo_json(w);
    s->dashboard = dashboard_page(w);
    if (!s->report || !s->buildinfo || !s->dashboard) {
        snap_free(s);
        op_warn("wsproxy", "out of memory building the health snapshot; keeping the previous one");
        return;
    }
    long hsts = op_ws_int(&w->conf, OP_WO_HSTS);
    if (hsts > 0) {
        char b[256];
        const char *it[4];
        int n = op_ws_list(&w->conf, OP_WO_HSTS_OPTIONS, b, sizeof(b), it, 4);
        int off = snprintf(s->hsts, sizeof(s->hsts), "Strict-Transport-Security: max-age=%ld", hsts);
        for (int i = 0; i < n && off > 0 && (size_t)off < sizeof(s->hsts); i++)
            off += snprintf(s->hsts + off, sizeof(s->hsts) - (size_t)off, "; %s",
                            strcasecmp(it[i], "preload") == 0 ? "preload" : "includeSubDomains");
        if (off > 0 && (size_t)off + 2 < sizeof(s->hsts))
            strcat(s->hsts, "\r\n");
        else
            s->hsts[0] = '\0';
    }
    s->redirect = op_ws_bool(&w->conf, OP_WO_TLS_ENABLE) && op_ws_bool(&w->conf, OP_WO_TLS_REDIRECT);
    const char *colon = strrchr(op_ws_str(&w->conf, OP_WO_TLS_ADDRESS), ':');
    snprintf(s->https_port, sizeof(s->https_port), "%s", colon ? colon + 1 : "443");
    size_t ol = op_url_origin_len(w->primary);
    if (ol < sizeof(s->cors_origin))
        snprintf(s->cors_origin, sizeof(s->cors_origin), "%.*s", (int)ol, w->primary);
    s->cors_any = op_ws_bool(&w->conf, OP_WO_DANGEROUS_CORS);
    struct snap *old = atomic_exchange_explicit(&w->snap, s, memory_order_acq_rel);
    if (!old) return;
    if (!w->e || op_engine_retire(w->e, old, snap_free) != 0) {
        if (w->e) /* cannot retire safely: leak it rather than free it under a worker */
            op_warn("wsproxy", "out of memory retiring a snapshot");
        else
            snap_free(old);
    }
}

/* ---- worker side: routing ------------------------------------------------------------------------ */

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
static const struct {
    const char *path;
    int code;
} rt_info[RT_N] = {
    [RT_HEALTHZ] = {"/healthz", 200},
    [RT_REPORT] = {"/healthz-report", 200},
    [RT_REPORT_500] = {"/healthz-report", 500},
    [RT_LATENCY] = {"/latency-check", 200},
    [RT_BUILDINFO] = {"/api/v2/buildinfo", 200},
    [RT_DERP] = {"/derp/*", 400},
    [RT_DASHBOARD] = {"/*", 400},
    [RT_REDIRECT] = {"/*", 308},
    [RT_PREFLIGHT] = {"/*", 200},
};
static const char *const mt_names[MT_N] = {"GET", "HEAD", "OPTIONS", "POST", "OTHER"};
#define OP_WS_STAT_SLOTS OP_ENGINE_MAX_WORKERS
struct route_stats {
    _Atomic uint64_t n[RT_N][MT_N];
} __attribute__((aligned(64)));
static struct route_stats g_rstats[OP_WS_STAT_SLOTS];

static int method_index(op_span_t m)
{
    for (int i = 0; i < MT_OTHER; i++)
        if (m.len == strlen(mt_names[i]) && memcmp(m.p, mt_names[i], m.len) == 0) return i;
    return MT_OTHER;
}

static void count_route(const struct op_conn *c, const struct op_h1_request *req, int rt)
{
    struct route_stats *rs = &g_rstats[op_worker_index(op_conn_worker(c))];
    OP_STAT_ADD(rs->n[rt][method_index(req->method)], 1);
}

static bool path_is(op_span_t target, const char *p)
{
    size_t n = strlen(p), tl = target.len;
    const char *q = target.p ? memchr(target.p, '?', tl) : NULL;
    if (q) tl = (size_t)(q - target.p);
    return tl == n && memcmp(target.p, p, n) == 0;
}

static bool path_prefix(op_span_t target, const char *p)
{
    size_t n = strlen(p);
    return target.len >= n && memcmp(target.p, p, n) == 0;
}

/* CORS for the dashboard (reference §4.1): the primary's origin only (any with the dangerous option),
 * GET and OPTIONS, no credentials. Returns true for a preflight, which is answered right away. */
static bool cors(const struct snap *s, const struct op_h1_request *req, struct op_route *out, size_t *off)
{
    const struct op_h1_header *o = op_h1_find_header(req->headers, req->nheaders, "Origin");
    if (!o || o->value.len == 0 || o->value.len >= 200) return false;
    bool match = s->cors_any || (strlen(s->cors_origin) == o->value.len &&
                                 strncasecmp(s->cors_origin, o->value.p, o->value.len) == 0);
    if (!match) return false;
    struct op_h1_writer hw; /* one byte stays free for the NUL that ends out->extra */
    op_h1_writer_init(&hw, out->extra + *off, sizeof(out->extra) - *off - 1);
    op_h1_put_header_span(&hw, op_span("Access-Control-Allow-Origin", 27), o->value);
    op_h1_put_header(&hw, "Access-Control-Allow-Methods", "GET, OPTIONS");
    op_h1_put_header(&hw, "Access-Control-Allow-Headers",
                     "Accept, Content-Type, X-LATENCY-CHECK, X-CSRF-TOKEN");
    op_h1_put_header(&hw, "Vary", "Origin");
    ssize_t n = op_h1_writer_result(&hw);
    if (n > 0) *off += (size_t)n; /* else no CORS headers at all, never a cut one */
    out->extra[*off] = '\0';
    return req->method.len == 7 && memcmp(req->method.p, "OPTIONS", 7) == 0 &&
           op_h1_find_header(req->headers, req->nheaders, "Access-Control-Request-Method") != NULL;
}

static void respond(struct op_route *out, int status, const char *ctype, const char *body)
{
    out->kind = OP_ROUTE_RESPOND;
    out->status = status;
    out->content_type = ctype;
    out->body = body;
    out->body_len = strlen(body);
}

static void ws_route(void *ctx, struct op_conn *c, const struct op_h1_request *req, struct op_route *out)
{
    struct ws *w = ctx;
    const struct snap *s = atomic_load_explicit(&w->snap, memory_order_acquire);
    if (!s) { /* only if the very first snapshot could not be built (out of memory) */
        respond(out, 503, "text/plain; charset=utf-8", "starting\n");
        return;
    }
    op_span_t t = req->target;
    if (req->absolute_form) { /* http://host/path -> /path */
        const char *p = memchr(t.p, '/', t.len);
        p = p && p + 1 < t.p + t.len && p[1] == '/' ? memchr(p + 2, '/', t.len - (size_t)(p + 2 - t.p))
                                                    : NULL;
        t = p ? op_span(p, t.len - (size_t)(p - t.p)) : op_span("/", 1);
    }
    size_t off = 0;
    if (s->hsts[0]) off = (size_t)snprintf(out->extra, sizeof(out->extra), "%s", s->hsts);
    if (path_is(t,
                "/latency-check")) { /* served even on plain HTTP: the browser probe must not be redirected */
        struct op_h1_writer hw;
        op_h1_writer_init(&hw, out->extra + off, sizeof(out->extra) - off - 1);
        op_h1_put_header(&hw, "Timing-Allow-Origin", "*");
        op_h1_put_header(&hw, "Access-Control-Allow-Origin", "*");
        op_h1_put_header(&hw, "Access-Control-Allow-Headers", "*");
        op_h1_put_header(&hw, "Access-Control-Allow-Credentials", "false");
        op_h1_put_header(&hw, "Access-Control-Allow-Methods", "*");
        ssize_t n = op_h1_writer_result(&hw);
        out->extra[off + (n > 0 ? (size_t)n : 0)] = '\0';
        respond(out, 200, "text/plain; charset=utf-8", "OK");
        count_route(c, req, RT_LATENCY);
        return;
    }
    if (s->redirect && !op_conn_is_tls(c)) {
        int status = op_route_https_redirect(out, off, req->host, t, s->https_port);
        respond(out, status, "text/plain; charset=utf-8", "");
        count_route(c, req, RT_REDIRECT);
        return;
    }
    int rt;
    if (cors(s, req, out, &off)) {
        respond(out, 200, "text/plain; charset=utf-8", "");
        rt = RT_PREFLIGHT;
    } else if (path_is(t, "/healthz")) {
        respond(out, 200, "text/plain; charset=utf-8", "OK");
        rt = RT_HEALTHZ;
    } else if (path_is(t, "/healthz-report")) {
        respond(out, s->report_status, "application/json", s->report);
        rt = s->report_status == 200 ? RT_REPORT : RT_REPORT_500;
    } else if (path_is(t, "/api/v2/buildinfo") || path_is(t, "/buildinfo")) {
        respond(out, 200, "application/json", s->buildinfo);
        rt = RT_BUILDINFO;
    } else if (path_is(t, "/derp") || path_prefix(t, "/derp/") || path_prefix(t, "/derp?")) {
        respond(out, 400, "application/json", "{\"message\":\"DERP is disabled on this proxy.\"}");
        rt = RT_DERP;
    } else {
        respond(out, 400, "text/html; charset=utf-8", s->dashboard);
        rt = RT_DASHBOARD;
    }
    count_route(c, req, rt);
}

/* ---- Prometheus listener: jobs to the control thread --------------------------------------------- */

static void metrics_route(void *ctx, struct op_conn *c, const struct op_h1_request *req, struct op_route *out)
{
    (void)ctx;
    (void)c;
    (void)req;
    out->kind = OP_ROUTE_APP;
}

struct mbuf {
    char *p;
    size_t len, cap;
};

static void mprintf(struct mbuf *b, const char *fmt, ...) OP_PRINTF(2, 3);
static void mprintf(struct mbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = b->p ? vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 8192;
        char *np = realloc(b->p, nc);
        if (!np) return;
        b->p = np;
        b->cap = nc;
    }
}

static void metric(struct mbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    mprintf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, (unsigned long long)v);
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* process_* metrics from /proc/self (what the Go process collector exports). */
static void process_metrics(struct mbuf *b, const struct ws *w)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    uint64_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *de; (de = readdir(d));)
            fds += de->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory stream itself */
    }
    metric(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE));
    metric(b, "process_open_fds", "gauge", "Number of open file descriptors.", fds);
    mprintf(b,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
            w->start_time);
    mprintf(
        b,
        "# HELP outpost_wsproxy_build_info The proxy's version.\n# TYPE outpost_wsproxy_build_info gauge\n"
        "outpost_wsproxy_build_info{version=\"%s\"} 1\n",
        OP_WS_VERSION);
    metric(b, "outpost_wsproxy_config_last_reload_successful", "gauge",
           "1 if the last reload was applied (or none happened), 0 if it was rejected.", w->last_reload_ok);
    mprintf(
        b,
        "# HELP outpost_wsproxy_primary_last_register_success_timestamp_seconds When the last registration "
        "succeeded.\n# TYPE outpost_wsproxy_primary_last_register_success_timestamp_seconds gauge\n"
        "outpost_wsproxy_primary_last_register_success_timestamp_seconds %.3f\n",
        w->last_register_ok);
}

static void metrics_handler(void *ctx, const struct op_app_request *req, struct op_app_response *resp)
{
    struct ws *w = ctx;
    (void)req;
    uint64_t acc = 0, act = 0, bin = 0, bout = 0, upin = 0, upout = 0, hs = 0, hsf = 0, uce = 0, rq = 0,
             r5 = 0, r4 = 0, tmo = 0, dur[OP_HTTP_DUR_BUCKETS] = {0}, dur_sum = 0, dur_count = 0;
    for (int i = 0; i < op_engine_nworkers(w->e); i++) {
        const struct op_worker_stats *s = op_engine_stats(w->e, i);
        acc += atomic_load_explicit(&s->accepted, memory_order_relaxed);
        act += atomic_load_explicit(&s->active, memory_order_relaxed);
        bin += atomic_load_explicit(&s->bytes_in, memory_order_relaxed);
        bout += atomic_load_explicit(&s->bytes_out, memory_order_relaxed);
        upin += atomic_load_explicit(&s->up_bytes_in, memory_order_relaxed);
        upout += atomic_load_explicit(&s->up_bytes_out, memory_order_relaxed);
        uce += atomic_load_explicit(&s->upstream_connect_errors, memory_order_relaxed);
        tmo += atomic_load_explicit(&s->timeouts, memory_order_relaxed);
        const struct op_tls_stats *ts = op_tls_worker_stats(w->e, i);
        if (ts) {
            hs += atomic_load_explicit(&ts->handshakes, memory_order_relaxed);
            hsf += atomic_load_explicit(&ts->failures, memory_order_relaxed);
        }
        const struct op_http_stats *h = op_http_worker_stats(w->e, i);
        if (h) {
            rq += atomic_load_explicit(&h->requests, memory_order_relaxed);
            r5 += atomic_load_explicit(&h->responses_5xx, memory_order_relaxed);
            r4 += atomic_load_explicit(&h->responses_4xx, memory_order_relaxed);
            for (int k = 0; k < OP_HTTP_DUR_BUCKETS; k++)
                dur[k] += atomic_load_explicit(&h->req_dur[k], memory_order_relaxed);
            dur_sum += atomic_load_explicit(&h->req_dur_sum_us, memory_order_relaxed);
            dur_count += atomic_load_explicit(&h->req_dur_count, memory_order_relaxed);
        }
    }
    struct mbuf b = {0};
    metric(&b, "outpost_wsproxy_connections_accepted_total", "counter", "Client connections accepted.", acc);
    metric(&b, "outpost_wsproxy_connections_active", "gauge", "Client connections open now.", act);
    metric(&b, "outpost_wsproxy_client_bytes_received_total", "counter", "Bytes received from clients.", bin);
    metric(&b, "outpost_wsproxy_client_bytes_sent_total", "counter", "Bytes sent to clients.", bout);
    metric(&b, "outpost_wsproxy_upstream_bytes_received_total", "counter", "Bytes received from upstreams.",
           upin);
    metric(&b, "outpost_wsproxy_upstream_bytes_sent_total", "counter", "Bytes sent to upstreams.", upout);
    metric(&b, "outpost_wsproxy_tls_handshakes_total", "counter", "TLS handshakes completed.", hs);
    metric(&b, "outpost_wsproxy_tls_handshake_failures_total", "counter", "TLS handshakes failed.", hsf);
    metric(&b, "outpost_wsproxy_upstream_connect_errors_total", "counter", "Failed upstream connects.", uce);
    metric(&b, "outpost_wsproxy_http_requests_total", "counter", "HTTP requests read (all listeners).", rq);
    metric(&b, "outpost_wsproxy_http_responses_5xx_total", "counter", "5xx responses written.", r5);
    metric(&b, "outpost_wsproxy_http_responses_4xx_total", "counter", "4xx responses written.", r4);
    metric(&b, "outpost_wsproxy_timeouts_total", "counter", "Connections closed by a timeout.", tmo);
    mprintf(&b, "# HELP outpost_wsproxy_http_request_duration_seconds Time from a parsed request head to its "
                "complete response.\n# TYPE outpost_wsproxy_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int k = 0; k < OP_HTTP_DUR_BUCKETS; k++) {
        cum += dur[k];
        if (k < OP_HTTP_DUR_BUCKETS - 1)
            mprintf(&b, "outpost_wsproxy_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                    (double)op_http_dur_bounds_us[k] / 1e6, (unsigned long long)cum);
        else
            mprintf(&b, "outpost_wsproxy_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cum);
    }
    mprintf(&b, "outpost_wsproxy_http_request_duration_seconds_sum %.6f\n", (double)dur_sum / 1e6);
    mprintf(&b, "outpost_wsproxy_http_request_duration_seconds_count %llu\n", (unsigned long long)dur_count);
    metric(&b, "outpost_wsproxy_registered", "gauge",
           "1 when the last registration with the primary succeeded.", w->registered);
    metric(&b, "outpost_wsproxy_registration_consecutive_failures", "gauge",
           "Registration failures since the last success.", (uint64_t)w->reg_failures);
    metric(&b, "outpost_wsproxy_registration_failures_total", "counter", "Failed registrations.",
           w->reg_failures_total);
    metric(&b, "outpost_wsproxy_registrations_total", "counter", "Successful registrations.",
           w->reg_success_total);
    metric(&b, "outpost_wsproxy_reloads_total", "counter", "Configuration reloads applied (SIGHUP).",
           w->reloads);
    metric(&b, "outpost_wsproxy_reload_failures_total", "counter", "Reloads rejected (old config kept).",
           w->reload_failures);
    process_metrics(&b, w);
    mprintf(&b, "# HELP coderd_api_requests_processed_total The total number of processed API requests.\n"
                "# TYPE coderd_api_requests_processed_total counter\n");
    for (int r = 0; r < RT_N; r++)
        for (int m = 0; m < MT_N; m++) {
            uint64_t v = 0;
            for (int i = 0; i < OP_WS_STAT_SLOTS; i++)
                v += atomic_load_explicit(&g_rstats[i].n[r][m], memory_order_relaxed);
            if (v)
                mprintf(&b,
                        "coderd_api_requests_processed_total{code=\"%d\",method=\"%s\",path=\"%s\"} %llu\n",
                        rt_info[r].code, mt_names[m], rt_info[r].path, (unsigned long long)v);
        }
    if (!b.p) {
        op_app_respond(resp, 500, "out of memory\n");
        resp->content_type = "text/plain";
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = b.p;
    resp->body_len = b.len;
}

/* ---- control thread: calls to the primary --------------------------------------------------------- */

static char *register_body(const struct ws *w)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "access_url", w->access_url);
    cJSON_AddStringToObject(o, "wildcard_hostname", op_ws_str(&w->conf, OP_WO_WILDCARD_ACCESS_URL));
    /* This build does not serve DERP yet: never advertise it, or clients would be sent to a dead region. */
    cJSON_AddBoolToObject(o, "derp_enabled", false);
    cJSON_AddBoolToObject(o, "derp_only", false);
    cJSON_AddStringToObject(o, "replica_id", w->replica_id);
    cJSON_AddStringToObject(o, "hostname", w->hostname);
    cJSON_AddStringToObject(o, "replica_error", "");
    cJSON_AddStringToObject(o, "replica_relay_address", op_ws_str(&w->conf, OP_WO_DERP_RELAY_URL));
    cJSON_AddStringToObject(o, "version", OP_WS_VERSION);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static struct op_ws_call *new_call(struct ws *w, int kind, long timeout_ms)
{
    switch (kind) {
    case K_BUILDINFO:
        return op_ws_call_new(&w->cl, kind, "GET", "/api/v2/buildinfo", NULL, timeout_ms);
    case K_REGISTER: {
        char *body = register_body(w);
        if (!body) return NULL;
        struct op_ws_call *x =
            op_ws_call_new(&w->cl, kind, "POST", "/api/v2/workspaceproxies/me/register", body, timeout_ms);
        free(body);
        return x;
    }
    default: {
        char path[160];
        snprintf(path, sizeof(path), "/api/v2/workspaceproxies/me/crypto-keys?feature=%s",
                 key_features[kind - K_KEYS_SIGN]);
        return op_ws_call_new(&w->cl, kind, "GET", path, NULL, timeout_ms);
    }
    }
}

/* Result of a buildinfo call: updates bi_error / bi_warning. Returns 0 if usable. */
static int on_buildinfo(struct ws *w, const struct op_ws_call *x)
{
    char why[512];
    w->bi_warning[0] = '\0';
    if (op_ws_call_failure(x) != OP_WS_FAIL_NONE) {
        op_ws_call_describe(x, why, sizeof(why));
        snprintf(w->bi_error, sizeof(w->bi_error), "failed to get build info: %s", why);
        return -1;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(x->json, "version");
    const cJSON *isp = cJSON_GetObjectItemCaseSensitive(x->json, "workspace_proxy");
    if (!cJSON_IsString(ver)) {
        snprintf(w->bi_error, sizeof(w->bi_error),
                 "failed to get build info: the reply is not build info JSON (is %s a primary?)", w->primary);
        return -1;
    }
    if (cJSON_IsTrue(isp)) {
        snprintf(w->bi_error, sizeof(w->bi_error),
                 "dashboard url (%s) is a workspace proxy, must be a primary coderd", w->primary);
        return -2;
    }
    w->bi_error[0] = '\0';
    snprintf(w->primary_version, sizeof(w->primary_version), "%s", ver->valuestring);
    if (!op_ws_versions_match(ver->valuestring, OP_WS_VERSION))
        snprintf(w->bi_warning, sizeof(w->bi_warning),
                 "version mismatch: primary coderd (%s) != workspace proxy (%s)", ver->valuestring,
                 OP_WS_VERSION);
    return 0;
}

static void on_keys(struct ws *w, const struct op_ws_call *x)
{
    int i = x->kind - K_KEYS_SIGN;
    if (op_ws_call_failure(x) != OP_WS_FAIL_NONE ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(x->json, "crypto_keys"))) {
        char why[512];
        op_ws_call_describe(x, why, sizeof(why));
        op_warn("wsproxy", "fetching %s keys from the primary failed: %s", key_features[i], why);
        return;
    }
    free(w->keys_json[i]);
    w->keys_json[i] = strdup(x->body);
    op_debug("wsproxy", "crypto keys for %s refreshed (%d keys)", key_features[i],
             cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x->json, "crypto_keys")));
}

static bool is_deleted(const struct op_ws_call *x)
{
    return x->code == CURLE_OK && x->status == 401 && strstr(op_ws_call_detail(x), "deleted") != NULL;
}

static void deregister(struct ws *w, long timeout_ms)
{
    if (w->deregistered || !w->registered) return;
    w->deregistered = true;
    char body[80];
    snprintf(body, sizeof(body), "{\"replica_id\":\"%s\"}", w->replica_id);
    struct op_ws_call *x =
        op_ws_call_new(&w->cl, 0, "POST", "/api/v2/workspaceproxies/me/deregister", body, timeout_ms);
    if (!x) return;
    op_ws_call_perform(x);
    if (op_ws_call_failure(x) == OP_WS_FAIL_NONE) {
        op_info("wsproxy", "deregistered replica %s from the primary", w->replica_id);
    } else {
        char why[512];
        op_ws_call_describe(x, why, sizeof(why));
        op_warn("wsproxy", "deregistering failed (%s); the primary will consider the replica gone shortly",
                why);
    }
    op_ws_call_free(x);
}

static void fatal_exit(struct ws *w, const char *why)
{
    if (w->exit_code) return;
    op_error("wsproxy", "%s", why);
    deregister(w, OP_WS_REGISTER_TIMEOUT_MS);
    w->exit_code = 1;
    op_ctl_request_stop();
}

/* Result of a heartbeat registration. */
static void on_register(struct ws *w, const struct op_ws_call *x)
{
    char why[512];
    if (is_deleted(x)) {
        w->registered = true; /* try to deregister anyway */
        fatal_exit(w, "the primary says this workspace proxy has been deleted; exiting");
        return;
    }
    if (op_ws_call_failure(x) != OP_WS_FAIL_NONE || x->status != 201) {
        op_ws_call_describe(x, why, sizeof(why));
        w->reg_failures++;
        w->reg_failures_total++;
        snprintf(w->reg_error, sizeof(w->reg_error), "failed to register with the primary: %s", why);
        op_warn("wsproxy", "registration with the primary failed (%d in a row): %s", w->reg_failures, why);
        if (w->reg_failures > OP_WS_MAX_FAILURES) {
            char msg[700];
            snprintf(msg, sizeof(msg), "registration failed more than %d times in a row (last: %s); exiting",
                     OP_WS_MAX_FAILURES, why);
            fatal_exit(w, msg);
        }
        return;
    }
    if (w->reg_failures)
        op_info("wsproxy", "registered with the primary again after %d failures", w->reg_failures);
    w->reg_failures = 0;
    w->reg_success_total++;
    w->last_register_ok = wall_now();
    w->registered = true;
    w->reg_error[0] = '\0';
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(x->json, "derp_region_id");
    if (cJSON_IsNumber(rid)) {
        if (w->have_region && (long)rid->valuedouble != w->region_id)
            fatal_exit(w, "the primary changed this proxy's DERP region id; the proxy must be restarted");
        w->have_region = true;
        w->region_id = (long)rid->valuedouble;
    }
}

static void start_call(struct ws *w, int kind)
{
    struct op_ws_call *x = new_call(w, kind, OP_WS_REGISTER_TIMEOUT_MS);
    if (!x) return;
    int slot = -1;
    for (int i = 0; i < (int)OP_ARRAY_LEN(w->calls) && slot < 0; i++)
        if (!w->calls[i]) slot = i;
    if (slot < 0 || curl_multi_add_handle(w->multi, x->h) != CURLM_OK) {
        op_ws_call_free(x);
        return;
    }
    w->calls[slot] = x;
    if (kind == K_REGISTER)
        w->inflight_reg++;
    else if (kind == K_BUILDINFO)
        w->inflight_bi++;
    else
        w->inflight_keys++;
}

static void tick(void *arg)
{
    struct ws *w = arg;
    if (w->shutting_down) return;
    uint64_t now = op_now_ms();
    if (now >= w->next_heartbeat) {
        w->next_heartbeat = now + (uint64_t)op_ws_duration_ms(&w->conf, OP_WO_HEARTBEAT_INTERVAL);
        if (!w->inflight_reg) start_call(w, K_REGISTER);
        if (!w->inflight_bi) start_call(w, K_BUILDINFO);
    }
    if (now >= w->next_keys) {
        w->next_keys = now + OP_WS_KEYS_INTERVAL_MS;
        if (!w->inflight_keys) {
            start_call(w, K_KEYS_SIGN);
            start_call(w, K_KEYS_ENC);
        }
    }
    int running = 0;
    curl_multi_perform(w->multi, &running);
    bool changed = false;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct op_ws_call *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode res = m->data.result;
        curl_multi_remove_handle(w->multi, x->h);
        for (size_t i = 0; i < OP_ARRAY_LEN(w->calls); i++)
            if (w->calls[i] == x) w->calls[i] = NULL;
        op_ws_call_finish(x, res);
        switch (x->kind) {
        case K_REGISTER:
            w->inflight_reg--;
            on_register(w, x);
            changed = true;
            break;
        case K_BUILDINFO: {
            w->inflight_bi--;
            char before[1200];
            snprintf(before, sizeof(before), "%s", w->bi_error);
            if (on_buildinfo(w, x) == 0 && *before)
                op_info("wsproxy", "the primary's build info is reachable again");
            else if (*w->bi_error && strcmp(before, w->bi_error) != 0)
                op_warn("wsproxy", "%s", w->bi_error);
            changed = true;
            break;
        }
        default:
            w->inflight_keys--;
            on_keys(w, x);
        }
        op_ws_call_free(x);
        if (w->exit_code) break;
    }
    if (changed && !w->shutting_down) publish(w);
}

static void on_stop(void *arg)
{
    struct ws *w = arg;
    w->shutting_down = true;
    publish(w); /* /healthz-report answers 500 from now on */
    op_info("wsproxy", "shutting down: deregistering from the primary");
    deregister(w, 5000);
}

/* ---- configuration application ------------------------------------------------------------------- */

static void apply_logging(const struct op_ws_conf *c)
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

/* Access URL: configured, else the TLS listener's URL, else the HTTP one (reference §1.6). */
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

static int make_tls_ctx(const struct op_ws_conf *c, void **out, char *err, size_t errlen)
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
    struct op_ws_conf nc;
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
    publish(w);
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
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* A blocking call at start-up that failed to connect: an actionable message. */
static void explain_transport(const struct ws *w, const struct op_ws_call *x, const char *what)
{
    char why[512];
    op_ws_call_describe(x, why, sizeof(why));
    if (op_ws_call_failure(x) == OP_WS_FAIL_TLS)
        op_error("wsproxy",
                 "%s: TLS connection to the primary at %s failed: %s. If the primary uses a private CA, pass "
                 "it with "
                 "--tls-client-ca-file (CODER_TLS_CLIENT_CA_FILE).",
                 what, w->primary, why);
    else
        op_error("wsproxy",
                 "%s: cannot reach the primary at %s: %s. Check --primary-access-url "
                 "(CODER_PRIMARY_ACCESS_URL) and "
                 "that the primary is running and reachable from this host.",
                 what, w->primary, why);
}

static int startup(struct ws *w)
{
    struct op_ws_call *x = new_call(w, K_BUILDINFO, OP_WS_REGISTER_TIMEOUT_MS);
    if (!x) return EX_OSERR;
    op_ws_call_perform(x);
    if (op_ws_call_failure(x) == OP_WS_FAIL_TRANSPORT || op_ws_call_failure(x) == OP_WS_FAIL_TLS) {
        explain_transport(w, x, "unable to fetch build info from the primary");
        op_ws_call_free(x);
        return EX_UNAVAILABLE;
    }
    int r = on_buildinfo(w, x);
    op_ws_call_free(x);
    if (r == -2) {
        op_error("wsproxy",
                 "%s is a workspace proxy, not a primary: point --primary-access-url at the primary",
                 w->primary);
        return EX_CONFIG;
    }
    if (r != 0) {
        op_error(
            "wsproxy",
            "unable to fetch build info from the primary. Are you sure \"%s\" is an outpost primary? (%s)",
            w->primary, w->bi_error);
        return EX_UNAVAILABLE;
    }
    if (*w->bi_warning) op_warn("wsproxy", "%s", w->bi_warning);
    for (int k = K_KEYS_SIGN; k <= K_KEYS_ENC; k++) {
        x = new_call(w, k, OP_WS_REGISTER_TIMEOUT_MS);
        if (!x) return EX_OSERR;
        op_ws_call_perform(x);
        if (x->code == CURLE_OK && x->status == 401) {
            char why[512];
            op_ws_call_describe(x, why, sizeof(why));
            op_error(
                "wsproxy",
                "the proxy session token was refused by the primary (%s). Check --proxy-session-token "
                "(CODER_PROXY_SESSION_TOKEN); `outpost wsproxy regenerate-token <name>` issues a new one.",
                why);
            op_ws_call_free(x);
            return EX_CONFIG;
        }
        on_keys(w, x); /* a key fetch failure is logged, not fatal (reference §1.6) */
        op_ws_call_free(x);
    }
    x = new_call(w, K_REGISTER, OP_WS_REGISTER_TIMEOUT_MS);
    if (!x) return EX_OSERR;
    op_ws_call_perform(x);
    enum op_ws_failure f = op_ws_call_failure(x);
    int rc = 0;
    char why[512];
    op_ws_call_describe(x, why, sizeof(why));
    if (f == OP_WS_FAIL_TRANSPORT || f == OP_WS_FAIL_TLS) {
        explain_transport(w, x, "register proxy: initial registration");
        rc = EX_UNAVAILABLE;
    } else if (x->status == 401) {
        op_error("wsproxy",
                 "the proxy session token was refused by the primary (%s). Check --proxy-session-token "
                 "(CODER_PROXY_SESSION_TOKEN); `outpost wsproxy regenerate-token <name>` issues a new one.",
                 why);
        rc = EX_CONFIG;
    } else if (f != OP_WS_FAIL_NONE || x->status != 201) {
        op_error("wsproxy", "register proxy: initial registration: the primary refused it (%s)", why);
        rc = x->status == 400 ? EX_CONFIG : EX_UNAVAILABLE;
    } else {
        on_register(w, x);
        op_info("wsproxy", "registered with the primary %s as replica %s (access URL %s)", w->primary,
                w->replica_id, w->access_url);
    }
    op_ws_call_free(x);
    return rc;
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
    hconf.route = ws_route;
    hconf.route_ctx = w;
    hconf.resp_extra = "X-Coder-Build-Version: " OP_WS_VERSION "\r\nX-Content-Type-Options: nosniff\r\n";
    op_http_conf_init(&mconf);
    mconf.route = metrics_route;
    mconf.app = metrics_handler;
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
    publish(w);
    rc = op_engine_start(&ec, &w->e, err, sizeof(err));
    if (rc != 0) {
        op_error("wsproxy", "cannot start: %s", err);
        rc = op_runner_start_exit_code(rc);
        w->e = NULL;
        deregister(w, 5000);
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
        .tick = tick,
        .tick_arg = w,
        .reload = reload,
        .reload_arg = w,
        .on_stop = on_stop,
        .stop_arg = w,
        .fds = {{.fd = w->q.efd, .on_readable = op_app_queue_run, .arg = &w->q}},
        .nfds = 1,
    };
    rc = op_ctl_run(w->e, &hooks);
    op_engine_free(w->e);
    w->e = NULL;
    w->q.stopped = true;
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
    w->start_time = wall_now();
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
    curl_global_init(CURL_GLOBAL_DEFAULT);
    w->multi = curl_multi_init();
    op_info("wsproxy", "Outpost workspace proxy %s starting; primary %s", OP_WS_VERSION, w->primary);
    rc = startup(w);
    if (rc == 0) rc = run(w);
    /* Calls still in flight at exit are abandoned. */
    for (size_t i = 0; i < OP_ARRAY_LEN(w->calls); i++)
        if (w->calls[i]) {
            curl_multi_remove_handle(w->multi, w->calls[i]->h);
            op_ws_call_free(w->calls[i]);
        }
    curl_multi_cleanup(w->multi);
    curl_global_cleanup();
    snap_free(atomic_exchange(&w->snap, NULL));
    for (int i = 0; i < 2; i++)
        free(w->keys_json[i]);
    op_app_queue_close(&w->q);
    op_ws_conf_free(&w->conf);
    op_info("wsproxy", "stopped (exit code %d)", rc);
    return rc;
}
