/*
 * region/apps.c — workspace apps on the workers (docs/apps.md): which app a request names (path form
 * `/@user/ws[.agent]/apps/slug/...` or the subdomain form under the role's wildcard host pattern), and the
 * fast path: a `coder_signed_app_token` cookie that verifies with the region's workspace_apps_token keys
 * and names the same request sends the request to the app through a parked agent stream (the HTTP
 * protocol's dial route: a spare from the broker, `OPEN host:port`, the agent's OK). Everything else goes
 * to the role's app handler on the control thread (region/apps_slow.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "region/apps_int.h"
#include "util/url.h"

const char *const op_region_coder_cookies[] = {"coder_session_token",
                                               "oauth_state",
                                               "oauth_redirect",
                                               APP_PATH_COOKIE,
                                               "coder_subdomain_app_session_token*",
                                               APP_SIGNED_COOKIE,
                                               NULL};

static _Thread_local char tl_page[4096];
/* Visitor headers the app gets from us only: a client's copies are always removed (§6.8). */
static const char *const visitor_headers[] = {"X-Coder-User-Id", "X-Coder-Username", "X-Coder-User-Email",
                                              NULL};

static _Thread_local struct app_match tl_match;
static _Thread_local struct op_wsapp_token tl_tok;
static _Thread_local char tl_agent[OP_ID_LEN + 1]; /* the agent of the dial route just returned */
static _Thread_local char tl_cors[512];            /* CORS header lines of the request being routed */

/* ---- matching ------------------------------------------------------------------------------------ */

static op_span_t bare_host(op_span_t h)
{
    size_t n = h.len;
    if (n && h.p[0] != '[') {
        const char *colon = memchr(h.p, ':', n);
        if (colon) n = (size_t)(colon - h.p);
    } else if (n) {
        const char *rb = memchr(h.p, ']', n);
        if (rb) n = (size_t)(rb + 1 - h.p);
    }
    while (n && h.p[n - 1] == '.')
        n--;
    return op_span(h.p, n);
}

bool op_region_app_host_is(op_span_t host, const char *url)
{
    if (!url || !*url) return false;
    op_span_t a = bare_host(host), b = bare_host(op_url_http_host(url));
    return b.p && a.len == b.len && strncasecmp(a.p, b.p, a.len) == 0;
}

bool op_region_on_app_host(const struct op_region_app_conf *conf, op_span_t host)
{
    if (!conf->wildcard || !*conf->wildcard) return false;
    char lower[256]; /* hosts are matched lower-cased, as the app routes do */
    if (host.len < sizeof(lower)) {
        for (size_t i = 0; i < host.len; i++)
            lower[i] = (char)((host.p[i] >= 'A' && host.p[i] <= 'Z') ? host.p[i] + 32 : host.p[i]);
        host = op_span(lower, host.len);
    }
    return !op_region_app_host_is(host, conf->access_url) &&
           op_wsapp_host_matches(host.p, host.len, conf->wildcard);
}

/* The `*` capture of host under pattern ("*suffix[:port]"), or an empty span. */
static op_span_t capture(op_span_t host, const char *pattern)
{
    op_span_t h = bare_host(host);
    const char *suffix = pattern + 1;
    size_t sl = strcspn(suffix, ":");
    if (h.len <= sl || strncasecmp(h.p + h.len - sl, suffix, sl) != 0) return op_span(NULL, 0);
    op_span_t cap = op_span(h.p, h.len - sl);
    return memchr(cap.p, '.', cap.len) ? op_span(NULL, 0) : cap;
}

static enum app_kind page(struct app_match *m, int status, const char *title, const char *msg)
{
    m->status = status;
    m->title = title;
    m->msg = msg;
    return APP_ANSWER;
}

enum app_kind op_region_app_match(const struct op_region_app_conf *conf, op_span_t host, op_span_t path,
                                  op_span_t query, struct app_match *m)
{
    memset(&m->req, 0, sizeof(m->req));
    m->rest_off = 0;
    m->status = 0;
    m->title = m->msg = NULL;
    m->json = false;
    m->location[0] = '\0';
    char lower[256]; /* hosts are matched and parsed lower-cased (§6.3), as Coder does */
    if (host.len < sizeof(lower)) {
        for (size_t i = 0; i < host.len; i++)
            lower[i] = (char)((host.p[i] >= 'A' && host.p[i] <= 'Z') ? host.p[i] + 32 : host.p[i]);
        host = op_span(lower, host.len);
    }
    m->on_access_host = op_region_app_host_is(host, conf->access_url);
    const char *pat = conf->wildcard ? conf->wildcard : "";
    bool sub = false;
    if (*pat) { /* §6.2, the host-handling order of the subdomain middleware */
        if (!host.len) {
            m->json = true;
            return page(m, 400, "Bad request", "Could not determine request Host.");
        }
        sub = !m->on_access_host && !op_region_app_host_is(host, conf->dashboard_url) &&
              memchr(host.p, '.', host.len) && op_wsapp_host_matches(host.p, host.len, pat);
    }
    if (sub) {
        op_span_t cap = capture(host, pat);
        if (cap.len == 12 && strncasecmp(cap.p, "coder-logout", 12) == 0) {
            m->status = 303;
            snprintf(m->location, sizeof(m->location), "%s", conf->dashboard_url);
            return APP_ANSWER;
        }
        int status = 400;
        const char *why = "Could not parse subdomain application URL.";
        enum op_wsapp_parse pr = op_wsapp_parse_host(host.p, host.len, pat, &m->req, &status, &why);
        if (pr == OP_WSAPP_NOT_APP) return APP_NONE;
        if (pr != OP_WSAPP_OK) return page(m, status, "Invalid Application URL", why);
        op_wsapp_req_normalize(&m->req);
        return APP_REQ;
    }
    int status = 400;
    const char *why = "Invalid application URL.";
    size_t rest = 0;
    enum op_wsapp_parse pr = op_wsapp_parse_path(path.p, path.len, &m->req, &rest, &status, &why);
    if (pr == OP_WSAPP_NOT_APP) return APP_NONE;
    if (pr == OP_WSAPP_BAD) return page(m, status, "Invalid application URL", why);
    if (conf->disable_path_apps)
        return page(m, 403, "Unauthorized",
                    "Path-based applications are disabled on this Coder deployment by the administrator.");
    if (pr == OP_WSAPP_ADD_SLASH) {
        m->status = 307;
        int n = snprintf(m->location, sizeof(m->location), "%.*s/%s%.*s", (int)path.len, path.p,
                         query.len ? "?" : "", (int)query.len, query.p);
        if (n < 0 || (size_t)n >= sizeof(m->location)) return page(m, 414, "URI too long", "URI too long.");
        return APP_ANSWER;
    }
    m->rest_off = rest;
    op_wsapp_req_normalize(&m->req);
    return APP_REQ;
}

/* ---- small helpers shared with the slow path ------------------------------------------------------- */

static size_t html_esc(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        const char *e = *s == '<'    ? "&lt;"
                        : *s == '>'  ? "&gt;"
                        : *s == '&'  ? "&amp;"
                        : *s == '"'  ? "&#34;"
                        : *s == '\'' ? "&#39;"
                                     : NULL;
        if (e) {
            size_t el = strlen(e);
            memcpy(out + o, e, el);
            o += el;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return o;
}

size_t op_region_app_page(char *out, size_t outlen, const char *dashboard, const char *title, const char *msg)
{
    char t[256], mm[1024], d[512];
    html_esc(t, sizeof(t), title);
    html_esc(mm, sizeof(mm), msg);
    html_esc(d, sizeof(d), dashboard && *dashboard ? dashboard : "/");
    int n =
        snprintf(out, outlen,
                 "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n"
                 "<style>body{font-family:sans-serif;background:#17172e;color:#fff;display:flex;"
                 "align-items:center;justify-content:center;min-height:100vh;margin:0}main{max-width:"
                 "40em;text-align:center}a{color:#fff}</style>\n</head>\n<body>\n<main>\n<h1>%s</h1>\n"
                 "<p>%s</p>\n<p><a href=\"%s\">Back to site</a></p>\n</main>\n</body>\n</html>\n",
                 t, t, mm, d);
    if (n < 0) return 0;
    return (size_t)n < outlen ? (size_t)n : outlen - 1;
}

bool op_region_app_cookie(const op_span_t *hdrs, int n, const char *name, int idx, op_span_t *out)
{
    size_t nl = strlen(name);
    for (int i = 0; i < n; i++) {
        const char *p = hdrs[i].p, *end = p + hdrs[i].len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *e = semi ? semi : end;
            if ((size_t)(e - p) > nl && p[nl] == '=' && memcmp(p, name, nl) == 0 && idx-- == 0) {
                const char *v = p + nl + 1, *ve = e;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                if (ve - v >= 2 && *v == '"' && ve[-1] == '"') v++, ve--;
                *out = op_span(v, (size_t)(ve - v));
                return true;
            }
            p = e;
        }
    }
    return false;
}

bool op_region_app_query(op_span_t q, const char *name, op_span_t *out)
{
    size_t nl = strlen(name);
    const char *p = q.p, *end = q.p + q.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) >= nl && memcmp(p, name, nl) == 0 && (e - p == (ptrdiff_t)nl || p[nl] == '=')) {
            *out = e - p == (ptrdiff_t)nl ? op_span(e, 0) : op_span(p + nl + 1, (size_t)(e - p) - nl - 1);
            return true;
        }
        p = e + 1;
    }
    return false;
}

int op_region_app_target(const char *url, char *out, size_t outlen)
{
    bool https = strncasecmp(url, "https://", 8) == 0;
    op_span_t hp = op_url_http_host(url);
    if (!hp.p) return -EINVAL;
    const char *last = hp.p + hp.len;
    bool has_port = false;
    for (const char *q = last; q > hp.p; q--) {
        if (q[-1] == ':') {
            has_port = true;
            break;
        }
        if (q[-1] == ']' || q[-1] < '0' || q[-1] > '9') break;
    }
    /* An https app: "tls:" asks the agent to speak TLS to it (docs/agent-protocol.md). */
    int n = snprintf(out, outlen, "%s%.*s%s", https ? "tls:" : "", (int)hp.len, hp.p,
                     has_port ? ""
                     : https  ? ":443"
                              : ":80");
    return n < 0 || (size_t)n >= outlen ? -EINVAL : 0;
}

/* ---- the dialer: a parked agent stream -------------------------------------------------------------- */

static struct app_wait *waits_of(struct op_region *r, struct op_conn *c)
{
    return r->app_waits + (size_t)op_worker_index(op_conn_worker(c)) * REGION_APP_WAITS;
}

static struct app_wait *wait_find(struct op_region *r, struct op_conn *c)
{
    struct app_wait *w = waits_of(r, c);
    struct op_conn_ref me = op_conn_ref(c);
    for (int i = 0; i < REGION_APP_WAITS; i++)
        if (w[i].used && w[i].ref.slot == me.slot && w[i].ref.gen == me.gen) return &w[i];
    return NULL;
}

static void dial_fail(struct op_conn *c, int status, const char *title, const char *msg)
{
    size_t n = op_region_app_page(tl_page, sizeof(tl_page), NULL, title, msg);
    op_http_dial_failed(c, status, "text/html; charset=utf-8", tl_page, n);
}

static void attach(struct op_region *r, struct op_conn *c, struct op_leg *leg)
{
    if (op_conn_attach_leg(c, leg) != 0) {
        op_leg_close(leg);
        OP_STAT_ADD(r->ws[op_worker_index(op_conn_worker(c))].failed, 1);
        dial_fail(c, 502, "Bad gateway", "Could not use the agent's stream connection.");
        return;
    }
    OP_STAT_ADD(r->ws[op_worker_index(op_conn_worker(c))].opened, 1);
}

static int app_dial(void *ctx, struct op_conn *c)
{
    struct op_region *r = ctx;
    struct op_conn_ref me = op_conn_ref(c);
    uint32_t ask = 0;
    struct app_wait *w = waits_of(r, c), *slot = NULL;
    for (int i = 0; i < REGION_APP_WAITS && !slot; i++)
        if (!w[i].used) slot = &w[i];
    struct op_leg leg;
    int fd = op_broker_take(r->broker, tl_agent, slot ? &me : NULL, &ask, &leg);
    if (fd >= 0) {
        attach(r, c, &leg);
        return 0;
    }
    if (fd == -EINPROGRESS) {
        slot->used = true;
        slot->ref = me;
        memcpy(slot->agent, tl_agent, sizeof(slot->agent));
        op_region_want_spares(r, op_worker_engine(op_conn_worker(c)), tl_agent,
                              (uint16_t)OP_MIN(ask, 0xffffu));
        return 0;
    }
    OP_STAT_ADD(r->ws[op_worker_index(op_conn_worker(c))].failed, 1);
    if (fd == -ESRCH)
        dial_fail(c, 502, "Agent offline", "The workspace agent is not connected to this region.");
    else
        dial_fail(c, 503, "Service unavailable", "Too many requests are waiting for this workspace agent.");
    return 0;
}

static void app_dial_msg(void *ctx, struct op_conn *c, void *msg, bool waiting)
{
    struct op_region *r = ctx;
    struct region_msg *m = msg;
    struct app_wait *w = wait_find(r, c);
    if (m->kind != MSG_FD || !waiting || !w) return; /* the socket goes back to the broker */
    w->used = false;
    struct op_leg leg = m->leg;
    m->leg = (struct op_leg){-1, NULL, NULL};
    attach(r, c, &leg);
}

static void app_dial_cancel(void *ctx, struct op_conn *c)
{
    struct op_region *r = ctx;
    struct app_wait *w = wait_find(r, c);
    if (!w) return;
    w->used = false;
    op_broker_unwait(r->broker, w->agent, w->ref); /* false: a spare is on its way; it comes back */
}

void op_region_dial_route(struct op_region *r, const char *agent, struct op_route *out)
{
    out->kind = OP_ROUTE_UPSTREAM;
    out->addr = NULL;
    out->dial = app_dial;
    out->dial_ctx = r;
    out->dial_msg = app_dial_msg;
    out->dial_cancel = app_dial_cancel;
    snprintf(tl_agent, sizeof(tl_agent), "%s", agent);
}

/* ---- the route ------------------------------------------------------------------------------------ */

/* The path of an app URL (after host[:port], up to '?' or '#'; empty when none) and its query (after '?',
 * up to '#'; NULL span when none). false when either holds a byte that cannot go into a request line or
 * a Location header. */
static bool app_url_parts(const char *url, op_span_t *path, op_span_t *query)
{
    op_span_t hp = op_url_http_host(url);
    const char *p = hp.p + hp.len;
    size_t pl = strcspn(p, "?#");
    *path = op_span(p, pl);
    *query = p[pl] == '?' ? op_span(p + pl + 1, strcspn(p + pl + 1, "#")) : op_span(NULL, 0);
    for (const char *s = p; s < p + pl + (p[pl] == '?' ? 1 + query->len : 0); s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) return false;
    return true;
}

/* The page for an app stream the agent refused (its port refuses; op_route.err_page). */
static size_t app_err_page(void *ctx, int status, const char *msg, char *out, size_t outlen)
{
    const struct op_region_app_conf *conf = ctx;
    (void)status;
    return op_region_app_page(out, outlen, conf->dashboard_url, "Application unavailable", msg);
}

uint64_t op_region_fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull; /* the separator */
}

void op_region_split_target(const struct op_h1_request *req, op_span_t *path, op_span_t *query)
{
    op_span_t t = op_h1_origin_target(req);
    const char *q = t.p ? memchr(t.p, '?', t.len) : NULL;
    *path = op_span(t.p, q ? (size_t)(q - t.p) : t.len);
    *query = q ? op_span(q + 1, t.len - (size_t)(q + 1 - t.p)) : op_span("", 0);
}

static void answer(struct op_route *out, const struct op_region_app_conf *conf, const struct app_match *m)
{
    out->kind = OP_ROUTE_RESPOND;
    out->status = m->status;
    if (m->location[0]) {
        size_t ll = strlen(m->location);
        if (ll + 13 < sizeof(out->extra)) {
            memcpy(out->extra, "Location: ", 10);
            memcpy(out->extra + 10, m->location, ll);
            memcpy(out->extra + 10 + ll, "\r\n", 3);
        } else {
            out->status = 414; /* no cut Location */
        }
        out->content_type = "text/plain; charset=utf-8";
        out->body = "";
        out->body_len = 0;
        return;
    }
    if (m->json) {
        out->content_type = "application/json";
        out->body_len = (size_t)snprintf(tl_page, sizeof(tl_page), "{\"message\":\"%s\"}", m->msg);
    } else {
        out->content_type = "text/html; charset=utf-8";
        out->body_len = op_region_app_page(tl_page, sizeof(tl_page), conf->dashboard_url, m->title, m->msg);
    }
    out->body = tl_page;
}

/* A signed app token among the request's cookies that verifies and names this request: in tl_tok. */
static bool signed_token(struct op_region *r, const struct op_h1_request *req,
                         const struct op_wsapp_req *want)
{
    op_span_t hdrs[8];
    int nh = 0;
    for (int i = 0; i < req->nheaders && nh < (int)OP_ARRAY_LEN(hdrs); i++)
        if (req->headers[i].name.len == 6 && strncasecmp(req->headers[i].name.p, "Cookie", 6) == 0)
            hdrs[nh++] = req->headers[i].value;
    const struct keyset *ks = atomic_load_explicit(&r->keys, memory_order_acquire);
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < APP_SIGNED_COOKIES; i++) {
        op_span_t v;
        if (!op_region_app_cookie(hdrs, nh, APP_SIGNED_COOKIE, i, &v)) return false;
        if (op_wsapp_token_verify(v.p, v.len, ks->wk, ks->n, now, &tl_tok) == 0 &&
            op_wsapp_req_equal(&tl_tok.req, want))
            return true;
    }
    return false;
}

bool op_region_route_app(struct op_region *r, const struct op_region_app_conf *conf, struct op_conn *c,
                         const struct op_h1_request *req, struct op_route *out)
{
    op_span_t path, query;
    op_region_split_target(req, &path, &query);
    struct app_match *m = &tl_match;
    enum app_kind k = op_region_app_match(conf, req->host, path, query, m);
    if (k == APP_NONE) return false;
    if (k == APP_ANSWER) {
        answer(out, conf, m);
        return true;
    }
    /* A CORS preflight carries no cookies, so no token can authorize it: subdomain apps answer it here,
     * with the Allow-* headers only for an Origin of the same user's apps (as Coder's per-app CORS). */
    enum app_cors cors = op_region_app_cors(conf, req, &m->req, tl_cors, sizeof(tl_cors));
    if (cors == APP_CORS_PREFLIGHT) {
        out->kind = OP_ROUTE_RESPOND;
        out->status = 204;
        out->content_type = "text/plain; charset=utf-8";
        out->body = "";
        out->body_len = 0;
        snprintf(out->extra, sizeof(out->extra), "%s", tl_cors);
        return true;
    }
    op_span_t smuggled;
    if (op_region_app_query(query, APP_SMUGGLE_PARAM, &smuggled) || !signed_token(r, req, &m->req) ||
        req->absolute_form) {
        out->kind = OP_ROUTE_APP;  /* the slow path: sign-in, a new token */
        out->app_head_only = true; /* it answers with a redirect the client repeats with its body */
        return true;
    }
    char hp[300];
    op_span_t apath, aquery;
    int rc = op_region_app_target(tl_tok.app_url, hp, sizeof(hp));
    if (rc == 0 && !app_url_parts(tl_tok.app_url, &apath, &aquery)) rc = -EINVAL;
    if (rc != 0) {
        m->status = 502;
        m->title = "Bad gateway";
        m->msg = "The app's URL is not valid.";
        answer(out, conf, m);
        return true;
    }
    /* A path app's base with no query, for an app URL with a query: 307 to it with the app's query. */
    if (m->req.access == OP_WSAPP_PATH && aquery.len && !query.len && path.len == m->rest_off + 1) {
        m->status = 307;
        int n = snprintf(m->location, sizeof(m->location), "%.*s?%.*s", (int)path.len, path.p,
                         (int)aquery.len, aquery.p);
        if (n < 0 || (size_t)n >= sizeof(m->location)) {
            m->location[0] = '\0';
            page(m, 414, "URI too long", "URI too long.");
        }
        answer(out, conf, m);
        return true;
    }
    op_region_app_stat(r, op_worker_index(op_conn_worker(c)), &tl_tok);
    op_region_dial_route(r, tl_tok.agent_id, out);
    uint64_t h =
        op_region_fnv(op_region_fnv(op_region_fnv(OP_REGION_FNV_BASIS, tl_tok.agent_id), hp), tl_tok.user_id);
    out->up_key = h ? h : 1;
    int n = snprintf(out->preamble, sizeof(out->preamble), "OPEN %s\n", hp);
    out->preamble_len = (size_t)n;
    out->preamble_ok = true;
    out->err_page = app_err_page;
    out->err_page_ctx = (void *)conf; /* the role's, as long as the role runs */
    out->strip_prefix = m->req.access == OP_WSAPP_PATH ? m->rest_off : 0;
    out->path_prefix = apath.p; /* the app URL's path, then the path under the app */
    out->path_prefix_len = apath.len;
    out->drop_cookies = op_region_coder_cookies;
    out->drop_headers = visitor_headers;
    if (tl_tok.user_id[0]) { /* anonymous visitors of public apps get none; the token's text is printable */
        int xn = snprintf(out->req_extra, sizeof(out->req_extra), "X-Coder-User-Id: %s\r\n", tl_tok.user_id);
        if (tl_tok.username[0])
            xn += snprintf(out->req_extra + xn, sizeof(out->req_extra) - (size_t)xn,
                           "X-Coder-Username: %s\r\n", tl_tok.username);
        if (tl_tok.email[0] && (size_t)xn + strlen(tl_tok.email) + 23 < sizeof(out->req_extra))
            snprintf(out->req_extra + xn, sizeof(out->req_extra) - (size_t)xn, "X-Coder-User-Email: %s\r\n",
                     tl_tok.email);
    }
    out->resp_flags = OP_ROUTE_RESP_NO_CORS; /* the app's own CORS headers go; ours (if any) are added */
    if (cors == APP_CORS_ALLOWED) snprintf(out->resp_extra, sizeof(out->resp_extra), "%s", tl_cors);
    op_debug("apps", "w%d#%u %s app %s/%s/%s/%s -> agent %s %s", op_worker_index(op_conn_worker(c)),
             op_conn_id(c), op_wsapp_access_name(m->req.access), m->req.user, m->req.workspace, m->req.agent,
             m->req.slug_or_port, tl_tok.agent_id, hp);
    return true;
}
