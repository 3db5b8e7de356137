/*
 * wsproxy/routes.c — what the proxy's own listeners serve: the snapshot the control thread builds
 * (health report, build info, the "Head to the Dashboard" page, HSTS/redirect/CORS settings) and the
 * worker-side route function that answers from it without blocking.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "runner/redirect.h"
#include "util/buildinfo.h"
#include "util/url.h"
#include "wsproxy/server_int.h"
#include "wsproxy/wsproxy.h"

/* ---- snapshot ------------------------------------------------------------------------------------ */

void op_wsp_snap_free(void *p)
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
void op_wsp_publish(struct ws *w)
{
    struct snap *s = calloc(1, sizeof(*s));
    if (!s) return;
    s->report = report_json(w, &s->report_status);
    s->buildinfo = buildinfo_json(w);
    s->dashboard = dashboard_page(w);
    if (!s->report || !s->buildinfo || !s->dashboard) {
        op_wsp_snap_free(s);
        op_warn("wsproxy", "out of memory building the health snapshot; keeping the previous one");
        return;
    }
    long hsts = op_ws_int(&w->conf, OP_WO_HSTS);
    if (hsts > 0) {
        char b[256];
        const char *it[4];
        int n = op_ws_list(&w->conf, OP_WO_HSTS_OPTIONS, b, sizeof(b), it, 4);
        const char *opt[4] = {"", "", "", ""}; /* "; preload", "; includeSubDomains" */
        for (int i = 0; i < n; i++)
            opt[i] = strcasecmp(it[i], "preload") == 0 ? "; preload" : "; includeSubDomains";
        struct op_h1_writer hw; /* one byte stays free for the NUL */
        op_h1_writer_init(&hw, s->hsts, sizeof(s->hsts) - 1);
        op_h1_put_headerf(&hw, "Strict-Transport-Security", "max-age=%ld%s%s%s%s", hsts, opt[0], opt[1],
                          opt[2], opt[3]);
        ssize_t hl = op_h1_writer_result(&hw);
        s->hsts[hl > 0 ? (size_t)hl : 0] = '\0'; /* no header rather than a cut one */
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
    if (!w->e || op_engine_retire(w->e, old, op_wsp_snap_free) != 0) {
        if (w->e) /* cannot retire safely: leak it rather than free it under a worker */
            op_warn("wsproxy", "out of memory retiring a snapshot");
        else
            op_wsp_snap_free(old);
    }
}

/* ---- worker side: routing ------------------------------------------------------------------------ */

const struct op_wsp_route_info op_wsp_rt_info[RT_N] = {
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
const char *const op_wsp_mt_names[MT_N] = {"GET", "HEAD", "OPTIONS", "POST", "OTHER"};
struct route_stats op_wsp_rstats[OP_WS_STAT_SLOTS];

static int method_index(op_span_t m)
{
    for (int i = 0; i < MT_OTHER; i++)
        if (m.len == strlen(op_wsp_mt_names[i]) && memcmp(m.p, op_wsp_mt_names[i], m.len) == 0) return i;
    return MT_OTHER;
}

static void count_route(const struct op_conn *c, const struct op_h1_request *req, int rt)
{
    struct route_stats *rs = &op_wsp_rstats[op_worker_index(op_conn_worker(c))];
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

/* CORS for the dashboard (docs/coder-compat.md, "Dashboard CORS"): the primary's origin only (any with the
 * dangerous option), GET and OPTIONS, no credentials. Returns true for a preflight, which is answered right
 * away. */
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

void op_wsp_route(void *ctx, struct op_conn *c, const struct op_h1_request *req, struct op_route *out)
{
    struct ws *w = ctx;
    const struct snap *s = atomic_load_explicit(&w->snap, memory_order_acquire);
    if (!s) { /* only if the very first snapshot could not be built (out of memory) */
        respond(out, 503, "text/plain; charset=utf-8", "starting\n");
        return;
    }
    op_span_t t = op_h1_origin_target(req);
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
    if (w->region && op_region_route_tcp_ws(w->region, &w->app_conf, c, req, out))
        return; /* the tcp endpoint as a WebSocket: relayed to the agent, which terminates it */
    if (w->region && op_region_route(w->region, c, req, out))
        return; /* agent control, spares, client streams */
    if (w->region && op_region_route_pty(w->region, &w->app_conf, c, req, out))
        return; /* the web terminal: authorized here, relayed to the agent's PTY server */
    if (w->region && op_region_route_app(w->region, &w->app_conf, c, req, out))
        return; /* workspace apps: served through an agent stream, or the slow path (apps.c) */
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
