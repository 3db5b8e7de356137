/*
 * region/apps_slow.c — the slow path of workspace apps, on the control thread (docs/apps.md): a request
 * for an app that carried no usable signed app token. Either it brings an app-connect API key from the
 * primary's auth redirect (the query parameter coder_application_connect_api_key_35e783, a JWE): the key
 * becomes the app session cookie and the browser is sent back without the parameter (303). Or the role's
 * issuer (the primary in-process, or a proxy's call to the primary) is asked for a signed token with the
 * session the request has: on success the token is checked and set as the coder_signed_app_token cookie
 * and the browser retries the same URL (307), which the workers then serve on the fast path; any other
 * answer of the issuer (a redirect to sign in, an error page) is relayed as it is.
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

static void smuggled_key(const struct op_region_app_conf *conf, const struct op_region_app_hooks *h,
                         const struct op_app_request *req, const struct app_match *m, op_span_t jwe,
                         struct op_app_response *resp)
{
    if (conf->primary && m->on_access_host) {
        html(resp, conf, 400, "Bad request",
             "An API key cannot be passed to the dashboard's own host. Please remove the query parameter "
             "and try again.");
        return;
    }
    const char *fail = "Could not decrypt API key. Please remove the query parameter and try again.";
    int64_t kid;
    uint8_t key[32];
    char plain[OP_JWE_MAX_PLAINTEXT + 1], api_key[256];
    int rc = jwe.len < OP_JWE_MAX_TOKEN ? op_jwe_kid(jwe.p, jwe.len, &kid) : -EINVAL;
    if (rc == 0) {
        rc = h->apikey(h->ctx, kid, key);
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
        return;
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
        smuggled_key(conf, h, req, m, jwe, resp);
    } else {
        char session[512], tok[OP_JWS_MAX_TOKEN];
        session_of(conf, req, m, session, sizeof(session));
        cJSON *body = issue_body(conf, req, m, session);
        memset(session, 0, sizeof(session));
        int rc = body ? h->issue(h->ctx, body, req->remote_ip, tok, sizeof(tok), resp) : -ENOMEM;
        cJSON_Delete(body);
        if (rc == -EHOSTUNREACH) {
            html(resp, conf, 502, "The primary is unreachable",
                 "This workspace proxy cannot reach the primary to sign you in to the app. Sessions that "
                 "were already open keep working; please try again in a moment.");
        } else if (rc < 0) {
            html(resp, conf, 500, "Internal error", "The app token could not be requested.");
        } else if (rc == 0) {
            struct op_wsapp_token *t = calloc(1, sizeof(*t));
            const struct keyset *ks = atomic_load_explicit(&r->keys, memory_order_acquire);
            int64_t now = (int64_t)time(NULL);
            int vr = t ? op_wsapp_token_verify(tok, strlen(tok), ks->wk, ks->n, now, t) : -ENOMEM;
            if (vr == -ENOKEY && h->refresh_keys) { /* a key rotated in since the last fetch */
                h->refresh_keys(h->ctx);
                ks = atomic_load_explicit(&r->keys, memory_order_acquire);
                vr = op_wsapp_token_verify(tok, strlen(tok), ks->wk, ks->n, now, t);
            }
            if (vr != 0 || !op_wsapp_req_equal(&t->req, &m->req)) {
                op_warn("apps", "the primary's app token for %s/%s/%s is unusable (%s)", m->req.user,
                        m->req.workspace, m->req.slug_or_port, vr ? strerror(-vr) : "another request");
                html(resp, conf, 502, "Bad gateway", "The app token from the primary could not be verified.");
            } else {
                token_cookie(conf, req, t, tok, resp);
            }
            free(t);
        }
        memset(tok, 0, sizeof(tok));
    }
    free(m);
    return handled;
}
