/*
 * region/apps_slow.c — the slow path of workspace apps, on the control thread (docs/apps.md): a request
 * for an app that carried no usable signed app token. Either it brings an app-connect API key from the
 * primary's auth redirect (the query parameter coder_application_connect_api_key_35e783, a JWE): the key
 * becomes the app session cookie and the browser is sent back without the parameter (303). Or the role's
 * issuer (the primary in-process, or a proxy's call to the primary) is asked for a signed token with the
 * session the request has: on success the token is checked and set as the coder_signed_app_token cookie
 * and the browser retries the same URL (307), which the workers then serve on the fast path; any other
 * answer of the issuer (a redirect to sign in, an error page) is relayed as it is.
 *
 * With the role's asynchronous hooks (a proxy: issue_async, refetch_keys) nothing here waits: the request is
 * deferred (http/app.h) and answered from op_region_app_issued (the sign-in thread) or after a key refetch
 * (the control thread); the request and resp stay the deferred job's until op_app_finish. The primary's
 * hooks are synchronous (its issuer is in-process).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "region/apps_int.h"
#include "wsapp/jwe.h"

static void html(struct op_app_response *resp, const struct op_region_app_conf *conf, int status,
                 const char *title, const char *msg)
{
    char page[4096];
    size_t n = op_region_app_page(page, sizeof(page), conf->dashboard_url, title, msg);
    resp->status = status;
    resp->content_type = "text/html; charset=utf-8";
    free(resp->body);
    resp->body = malloc(n + 1);
    resp->body_len = resp->body ? n : 0;
    if (resp->body) memcpy(resp->body, page, n + 1);
}

static void redirect(struct op_app_response *resp, int status, const char *location)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    if (op_app_add_header(resp, "Location", location) != 0) {
        resp->status = 500;
        resp->headers_len = 0;
    }
}

/* The Cookie headers of req. */
static int cookie_headers(const struct op_app_request *req, op_span_t *out, int max)
{
    int n = 0;
    for (int i = 0; i < req->nheaders && n < max; i++)
        if (req->headers[i].name.len == 6 && strncasecmp(req->headers[i].name.p, "Cookie", 6) == 0)
            out[n++] = req->headers[i].value;
    return n;
}

/* Domain of the subdomain session cookie: everything after the first '.' of the pattern, without port. */
static void cookie_domain(const char *pattern, char *out, size_t outlen)
{
    const char *dot = strchr(pattern, '.');
    const char *s = dot ? dot + 1 : pattern;
    snprintf(out, outlen, "%.*s", (int)strcspn(s, ":"), s);
}

/* The query without the smuggling parameter: "?rest" or "". */
static void query_without(op_span_t q, char *out, size_t outlen)
{
    size_t o = 0, pl = strlen(APP_SMUGGLE_PARAM);
    out[0] = '\0';
    const char *p = q.p, *end = q.p + q.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        size_t l = (size_t)(e - p);
        bool drop = l >= pl && memcmp(p, APP_SMUGGLE_PARAM, pl) == 0 && (l == pl || p[pl] == '=');
        if (!drop && l && o + l + 2 < outlen) {
            out[o] = o == 0 ? '?' : '&';
            o++;
            memcpy(out + o, p, l);
            o += l;
            out[o] = '\0';
        }
        p = e + 1;
    }
}

/* A request whose answer waits (for the issuer, or a key refetch): what finishing it needs. */
struct op_region_app_pending {
    struct op_region *r;
    const struct op_region_app_conf *conf;
    struct op_region_app_hooks h;
    struct op_app_defer *d;
    const struct op_app_request *req; /* the deferred job's: valid until op_app_finish */
    struct app_match m;
    bool smuggled; /* waits for a refetch to decrypt an app-connect key, not for a token */
    char tok[OP_JWS_MAX_TOKEN];
};

static void defer_on_keys(struct op_region *r, const struct op_region_app_conf *conf,
                          const struct op_region_app_hooks *h, const struct app_match *m,
                          struct op_app_response *resp, const char *tok);

/* Returns true when the answer waits for a key refetch (h->refetch_keys; resp is deferred then). */
static bool smuggled_key(const struct op_region_app_conf *conf, const struct op_region_app_hooks *h,
                         const struct op_app_request *req, const struct app_match *m, op_span_t jwe,
                         struct op_app_response *resp, struct op_region *r)
{
    if (conf->primary && m->on_access_host) {
        html(resp, conf, 400, "Bad request",
             "An API key cannot be passed to the dashboard's own host. Please remove the query parameter "
             "and try again.");
        return false;
    }
    const char *fail = "Could not decrypt API key. Please remove the query parameter and try again.";
    int64_t kid;
    uint8_t key[32];
    char plain[OP_JWE_MAX_PLAINTEXT + 1], api_key[256];
    int rc = jwe.len < OP_JWE_MAX_TOKEN ? op_jwe_kid(jwe.p, jwe.len, &kid) : -EINVAL;
    if (rc == 0) {
        rc = h->apikey(h->ctx, kid, key);
        if (rc == -ENOKEY && h->refetch_keys && r) { /* a key rotated in since the last fetch */
            defer_on_keys(r, conf, h, m, resp, NULL);
            return true;
        }
        if (rc == -ENOKEY && h->refresh_keys) {
            h->refresh_keys(h->ctx);
            rc = h->apikey(h->ctx, kid, key);
        }
    }
    if (rc == 0) rc = op_jwe_decrypt(jwe.p, jwe.len, key, plain, sizeof(plain));
    memset(key, 0, sizeof(key));
    if (rc >= 0)
        rc = op_wsapp_apikey_decode(plain, (size_t)rc, (int64_t)time(NULL), api_key, sizeof(api_key));
    memset(plain, 0, sizeof(plain));
    if (rc != 0) {
        op_debug("apps", "app-connect key refused: %s", strerror(-rc));
        html(resp, conf, 400, "Bad request", fail);
        return false;
    }
    char name[128], domain[256], cookie[1024], q[2048], loc[4096];
    if (m->req.access == OP_WSAPP_SUBDOMAIN) {
        if (op_wsapp_subdomain_cookie_name(conf->wildcard, name, sizeof(name)) < 0) name[0] = '\0';
        cookie_domain(conf->wildcard, domain, sizeof(domain));
        snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Domain=%s; HttpOnly; SameSite=Lax%s", name, api_key,
                 domain, conf->https ? "; Secure" : "");
    } else {
        snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Lax%s", APP_PATH_COOKIE, api_key,
                 conf->https ? "; Secure" : "");
    }
    memset(api_key, 0, sizeof(api_key));
    query_without(req->query, q, sizeof(q));
    snprintf(loc, sizeof(loc), "%.*s%s", (int)req->path.len, req->path.p, q);
    redirect(resp, 303, loc);
    if (op_app_add_header(resp, "Set-Cookie", cookie) != 0) html(resp, conf, 500, "Internal error", "cookie");
    memset(cookie, 0, sizeof(cookie));
    return false;
}

/* The session the visitor has: the app session cookie, the Coder-Session-Token header, the dashboard
 * cookie (the app cookie first, so that an Authorization of the app's own does not get in the way). */
static void session_of(const struct op_region_app_conf *conf, const struct op_app_request *req,
                       const struct app_match *m, char *out, size_t outlen)
{
    op_span_t hdrs[8], v = op_span(NULL, 0);
    int n = cookie_headers(req, hdrs, 8);
    char name[128] = APP_PATH_COOKIE;
    if (m->req.access == OP_WSAPP_SUBDOMAIN &&
        op_wsapp_subdomain_cookie_name(conf->wildcard, name, sizeof(name)) < 0)
        name[0] = '\0';
    const struct op_app_header *hh;
    if (!(*name && op_region_app_cookie(hdrs, n, name, 0, &v) && v.len)) {
        if ((hh = op_app_find_header(req, "Coder-Session-Token")) && hh->value.len)
            v = hh->value;
        else if (!op_region_app_cookie(hdrs, n, "coder_session_token", 0, &v))
            v = op_span(NULL, 0);
    }
    snprintf(out, outlen, "%.*s", v.len < outlen ? (int)v.len : 0, v.p ? v.p : "");
}

static cJSON *issue_body(const struct op_region_app_conf *conf, const struct op_app_request *req,
                         const struct app_match *m, const char *session)
{
    cJSON *o = cJSON_CreateObject(), *ar = cJSON_AddObjectToObject(o, "app_request");
    const struct op_wsapp_req *r = &m->req;
    cJSON_AddStringToObject(ar, "access_method", op_wsapp_access_name(r->access));
    cJSON_AddStringToObject(ar, "base_path", r->base_path);
    cJSON_AddStringToObject(ar, "app_prefix", r->prefix);
    cJSON_AddStringToObject(ar, "username_or_id", r->user);
    cJSON_AddStringToObject(ar, "workspace_name_or_id", r->workspace);
    cJSON_AddStringToObject(ar, "agent_name_or_id", r->agent);
    cJSON_AddStringToObject(ar, "app_slug_or_port", r->slug_or_port);
    cJSON_AddStringToObject(o, "path_app_base_url", conf->access_url);
    cJSON_AddStringToObject(o, "app_hostname", conf->wildcard ? conf->wildcard : "");
    char path[2100], query[2100];
    size_t off = r->access == OP_WSAPP_PATH ? OP_MIN(m->rest_off, req->path.len) : 0;
    snprintf(path, sizeof(path), "%.*s", (int)OP_MIN(req->path.len - off, 2048), req->path.p + off);
    snprintf(query, sizeof(query), "%.*s", (int)OP_MIN(req->query.len, 2048), req->query.p);
    cJSON_AddStringToObject(o, "app_path", path);
    cJSON_AddStringToObject(o, "app_query", query);
    cJSON_AddStringToObject(o, "session_token", session);
    return o;
}

static void token_cookie(const struct op_region_app_conf *conf, const struct op_app_request *req,
                         const struct op_wsapp_token *t, const char *jws, struct op_app_response *resp)
{
    char exp[64], cookie[4096], loc[4200];
    time_t e = (time_t)t->exp;
    struct tm tm;
    gmtime_r(&e, &tm);
    strftime(exp, sizeof(exp), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=%s; Expires=%s; SameSite=Lax%s", APP_SIGNED_COOKIE, jws,
             t->req.base_path, exp, conf->https ? "; Secure" : "");
    snprintf(loc, sizeof(loc), "%.*s%s%.*s", (int)req->path.len, req->path.p, req->query.len ? "?" : "",
             (int)req->query.len, req->query.p);
    redirect(resp, 307, loc);
    if (op_app_add_header(resp, "Set-Cookie", cookie) != 0) html(resp, conf, 500, "Internal error", "cookie");
}

/* A token the issuer gave: verified (vr: -ENOKEY when the region does not know its key) and checked against
 * the request, then set as the cookie (307), or a 502 page. Returns the verification result. */
static int answer_token(struct op_region *r, const struct op_region_app_conf *conf,
                        const struct op_app_request *req, const struct app_match *m, const char *tok,
                        struct op_app_response *resp, bool final)
{
    struct op_wsapp_token *t = calloc(1, sizeof(*t));
    int vr = -ENOMEM;
    if (t) { /* any thread: the issuer's answer arrives on a proxy's sign-in thread */
        pthread_mutex_lock(&r->keys_mu);
        const struct keyset *ks = atomic_load_explicit(&r->keys, memory_order_acquire);
        vr = op_wsapp_token_verify(tok, strlen(tok), ks->wk, ks->n, (int64_t)time(NULL), t);
        pthread_mutex_unlock(&r->keys_mu);
    }
    if (vr == -ENOKEY && !final) {
        free(t);
        return vr;
    }
    if (vr != 0 || !op_wsapp_req_equal(&t->req, &m->req)) {
        op_warn("apps", "the primary's app token for %s/%s/%s is unusable (%s)", m->req.user,
                m->req.workspace, m->req.slug_or_port, vr ? strerror(-vr) : "another request");
        html(resp, conf, 502, "Bad gateway", "The app token from the primary could not be verified.");
    } else {
        token_cookie(conf, req, t, tok, resp);
    }
    free(t);
    return vr;
}

/* The issuer's outcome into resp (rc as the issue hook returns it). Returns true when the token is signed
 * with a key the region does not know and the caller may refetch the keys (resp untouched then). */
static bool answer_issued(struct op_region *r, const struct op_region_app_conf *conf,
                          const struct op_app_request *req, const struct app_match *m, int rc,
                          const char *tok, struct op_app_response *resp, bool final)
{
    if (rc == -EHOSTUNREACH) {
        html(resp, conf, 502, "The primary is unreachable",
             "This workspace proxy cannot reach the primary to sign you in to the app. Sessions that "
             "were already open keep working; please try again in a moment.");
    } else if (rc == -EBUSY) {
        html(resp, conf, 503, "Too many sign-ins in progress",
             "This workspace proxy is waiting for the primary on too many sign-ins at once. Please try again "
             "in a moment.");
    } else if (rc < 0) {
        html(resp, conf, 500, "Internal error", "The app token could not be requested.");
    } else if (rc == 0) {
        return answer_token(r, conf, req, m, tok, resp, final) == -ENOKEY;
    }
    return false;
}

struct op_app_response *op_region_app_pending_resp(struct op_region_app_pending *p)
{
    return op_app_defer_resp(p->d);
}

static void pending_free(struct op_region_app_pending *p)
{
    memset(p->tok, 0, sizeof(p->tok));
    free(p);
}

/* The refetch a pending request waited for has ended: answer with the keys the region has now. */
static void rekeyed(void *arg)
{
    struct op_region_app_pending *p = arg;
    struct op_app_response *resp = op_app_defer_resp(p->d);
    if (p->smuggled) {
        op_span_t jwe;
        struct op_region_app_hooks h = p->h;
        h.refetch_keys = NULL; /* one refetch per request */
        h.refresh_keys = NULL;
        if (op_region_app_query(p->req->query, APP_SMUGGLE_PARAM, &jwe))
            smuggled_key(p->conf, &h, p->req, &p->m, jwe, resp, NULL);
        else
            html(resp, p->conf, 500, "Internal error", "The app-connect key went missing.");
    } else {
        answer_token(p->r, p->conf, p->req, &p->m, p->tok, resp, true);
    }
    op_app_finish(p->d);
    pending_free(p);
}

void op_region_app_issued(struct op_region_app_pending *p, int rc, const char *tok)
{
    struct op_app_response *resp = op_app_defer_resp(p->d);
    if (answer_issued(p->r, p->conf, p->req, &p->m, rc, tok, resp, !p->h.refetch_keys)) {
        snprintf(p->tok, sizeof(p->tok), "%s", tok);
        p->h.refetch_keys(p->h.ctx, rekeyed, p); /* a key rotated in since the last fetch */
        return;
    }
    op_app_finish(p->d);
    pending_free(p);
}

static struct op_region_app_pending *pending_new(struct op_region *r, const struct op_region_app_conf *conf,
                                                 const struct op_region_app_hooks *h,
                                                 const struct app_match *m)
{
    struct op_region_app_pending *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->r = r;
    p->conf = conf;
    p->h = *h;
    p->m = *m;
    return p;
}

/* The answer waits for a key refetch: an app-connect key (tok NULL) or an issued token with an unknown kid.
 */
static void defer_on_keys(struct op_region *r, const struct op_region_app_conf *conf,
                          const struct op_region_app_hooks *h, const struct app_match *m,
                          struct op_app_response *resp, const char *tok)
{
    struct op_region_app_pending *p = pending_new(r, conf, h, m);
    if (!p) {
        html(resp, conf, 500, "Internal error", "out of memory");
        return;
    }
    p->smuggled = tok == NULL;
    if (tok) snprintf(p->tok, sizeof(p->tok), "%s", tok);
    p->d = op_app_defer(resp);
    p->req = op_app_defer_req(p->d);
    h->refetch_keys(h->ctx, rekeyed, p);
}

/* The proxy's way: the issuer answers later; the request waits deferred (the control thread goes on). */
static void issue_deferred(struct op_region *r, const struct op_region_app_conf *conf,
                           const struct op_region_app_hooks *h, const struct op_app_request *req,
                           const struct app_match *m, const cJSON *body, struct op_app_response *resp)
{
    struct op_region_app_pending *p = pending_new(r, conf, h, m);
    if (!p) {
        html(resp, conf, 500, "Internal error", "out of memory");
        return;
    }
    p->d = op_app_defer(resp);
    p->req = op_app_defer_req(p->d);
    int rc = h->issue_async(h->ctx, body, req->remote_ip, p);
    if (rc != 0) op_region_app_issued(p, rc, ""); /* answered at once: busy, or the primary is down */
}

bool op_region_app_handle(struct op_region *r, const struct op_region_app_conf *conf,
                          const struct op_region_app_hooks *h, const struct op_app_request *req,
                          struct op_app_response *resp)
{
    struct app_match *m = calloc(1, sizeof(*m));
    if (!m) {
        op_app_respond(resp, 500, "{\"message\":\"out of memory\"}");
        return true;
    }
    bool handled = true;
    enum app_kind k = op_region_app_match(conf, req->host, req->path, req->query, m);
    op_span_t jwe;
    if (k == APP_NONE) {
        handled = false;
    } else if (k == APP_ANSWER) {
        if (m->location[0])
            redirect(resp, m->status, m->location);
        else
            html(resp, conf, m->status, m->title, m->msg);
    } else if (op_region_app_query(req->query, APP_SMUGGLE_PARAM, &jwe)) {
        smuggled_key(conf, h, req, m, jwe, resp, r);
    } else {
        char session[512], tok[OP_JWS_MAX_TOKEN];
        session_of(conf, req, m, session, sizeof(session));
        cJSON *body = issue_body(conf, req, m, session);
        memset(session, 0, sizeof(session));
        if (body && h->issue_async) {
            issue_deferred(r, conf, h, req, m, body, resp);
        } else {
            int rc = body ? h->issue(h->ctx, body, req->remote_ip, tok, sizeof(tok), resp) : -ENOMEM;
            if (answer_issued(r, conf, req, m, rc, tok, resp, !h->refresh_keys)) {
                h->refresh_keys(h->ctx); /* a key rotated in since the last fetch */
                answer_token(r, conf, req, m, tok, resp, true);
            }
        }
        cJSON_Delete(body);
        memset(tok, 0, sizeof(tok));
    }
    free(m);
    return handled;
}
