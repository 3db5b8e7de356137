/*
 * primary/apps.c — workspace app authorization (docs/apps.md): op_primary_issue_app_token resolves the
 * user, workspace, agent and app (a reported app by slug, or a port for subdomain apps), decides by the
 * share level rules whether the visitor may open it and answers with a signed app token, a redirect to
 * sign in, or an HTML page. POST /api/v2/workspaceproxies/me/issue-signed-app-token (proxies) and the
 * primary's own region (in-process) both use it. Also the HTML pages and the string builder the app and
 * login pages share.
 *
 * Share levels (Coder's rules): the workspace owner always passes; a site owner passes subdomain apps,
 * and path apps only with --dangerous-allow-path-app-site-owner-access; "authenticated" and
 * "organization" (one organization here) pass every signed-in user, "public" everybody. Path apps are
 * treated as "owner" unless --dangerous-allow-path-app-sharing, because they run on the dashboard origin.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/primary_int.h"
#include "proto/jws.h"
#include "util/url.h"
#include "wsapp/token.h"

#define NOT_FOUND_TITLE "Application Not Found"
#define NOT_FOUND_MSG                                                                                        \
    "The application or workspace you are trying to access does not exist or you do not have permission "    \
    "to access it."

/* ---- string builder ---- */

void op_sb_add(struct op_strbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void op_sb_str(struct op_strbuf *b, const char *s)
{
    op_sb_add(b, s, strlen(s));
}

void op_sb_html(struct op_strbuf *b, const char *s)
{
    for (; *s; s++) {
        const char *e = *s == '&'    ? "&amp;"
                        : *s == '<'  ? "&lt;"
                        : *s == '>'  ? "&gt;"
                        : *s == '"'  ? "&quot;"
                        : *s == '\'' ? "&#39;"
                                     : NULL;
        e ? op_sb_str(b, e) : op_sb_add(b, s, 1);
    }
}

void op_sb_urlenc(struct op_strbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~') {
            op_sb_add(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            op_sb_add(b, e, 3);
        }
    }
}

void op_sb_free(struct op_strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- HTML pages ---- */

void op_html_page_raw(struct op_primary *p, struct op_app_response *resp, int status, const char *title,
                      const char *body_html)
{
    struct op_strbuf b = {0};
    op_sb_str(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
    op_sb_html(&b, title);
    op_sb_str(&b, "</title><style>body{font-family:system-ui,sans-serif;background:#111318;color:#e4e4e7;"
                  "margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}"
                  "main{max-width:36rem;padding:2rem}h1{font-size:1.4rem}a{color:#8ab4f8}"
                  "label,input,button{display:block;margin:.4rem 0}input{width:100%;padding:.4rem}"
                  "</style></head>\n<body><main><h1>");
    op_sb_html(&b, title);
    op_sb_str(&b, "</h1>\n");
    op_sb_str(&b, body_html);
    op_sb_str(&b, "\n<p><a href=\"");
    op_sb_html(&b, p->access_url);
    op_sb_str(&b, "/\">Back to site</a></p></main></body></html>\n");
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    if (b.oom) {
        op_sb_free(&b);
        resp->content_type = "text/plain; charset=utf-8";
        op_app_respond(resp, 500, "out of memory");
        return;
    }
    resp->status = status;
    resp->content_type = "text/html; charset=utf-8";
    resp->body = b.p;
    resp->body_len = b.len;
}

void op_html_page(struct op_primary *p, struct op_app_response *resp, int status, const char *title,
                  const char *message)
{
    struct op_strbuf m = {0};
    op_sb_str(&m, "<p>");
    op_sb_html(&m, message);
    op_sb_str(&m, "</p>");
    op_html_page_raw(p, resp, status, title, m.oom ? "" : m.p);
    op_sb_free(&m);
}

void op_redirect(struct op_app_response *resp, int status, const char *location)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    if (op_app_add_header(resp, "Location", location) != 0) {
        resp->content_type = "application/json";
        op_api_error(resp, 500, "Internal error.", "the redirect location is too long");
        return;
    }
    struct op_strbuf b = {0};
    op_sb_str(&b, "<a href=\"");
    op_sb_html(&b, location);
    op_sb_str(&b, "\">See Other</a>.\n");
    resp->status = status;
    resp->content_type = "text/html; charset=utf-8";
    if (!b.oom) {
        resp->body = b.p;
        resp->body_len = b.len;
    } else {
        op_sb_free(&b);
    }
}

/* ---- the issue request ---- */

struct issue {
    struct op_wsapp_req req;
    const char *base_url; /* path_app_base_url */
    const char *hostname; /* app_hostname: the wildcard of the region, "" = none */
    const char *app_path, *app_query, *session;
};

/* Copies the string member name of o into out (absent or null = ""). False when it is not a string or
 * does not fit. */
static bool member(const cJSON *o, const char *name, char *out, size_t outlen)
{
    bool bad = false;
    const char *v = op_json_str(o, name, &bad);
    if (bad) return false;
    if (!v) v = "";
    size_t n = strlen(v);
    if (n >= outlen) return false;
    memcpy(out, v, n + 1);
    return true;
}

/* Reads the §2.9 body into is (strings point into body). 0, or -EINVAL with *why. */
static int parse_issue(const cJSON *body, struct issue *is, const char **why)
{
    memset(is, 0, sizeof(*is));
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(body, "app_request");
    if (!cJSON_IsObject(ar)) {
        *why = "app_request must be an object";
        return -EINVAL;
    }
    char access[16];
    struct op_wsapp_req *r = &is->req;
    if (!member(ar, "access_method", access, sizeof(access)) ||
        !member(ar, "base_path", r->base_path, sizeof(r->base_path)) ||
        !member(ar, "app_prefix", r->prefix, sizeof(r->prefix)) ||
        !member(ar, "username_or_id", r->user, sizeof(r->user)) ||
        !member(ar, "workspace_name_or_id", r->workspace, sizeof(r->workspace)) ||
        !member(ar, "agent_name_or_id", r->agent, sizeof(r->agent)) ||
        !member(ar, "app_slug_or_port", r->slug_or_port, sizeof(r->slug_or_port))) {
        *why = "an app_request member is not a string or is too long";
        return -EINVAL;
    }
    r->access = op_wsapp_access_parse(access, strlen(access));
    bool bad = false;
    is->base_url = op_json_str(body, "path_app_base_url", &bad);
    is->hostname = op_json_str(body, "app_hostname", &bad);
    is->app_path = op_json_str(body, "app_path", &bad);
    is->app_query = op_json_str(body, "app_query", &bad);
    is->session = op_json_str(body, "session_token", &bad);
    if (bad) {
        *why = "path_app_base_url, app_hostname, app_path, app_query and session_token must be strings";
        return -EINVAL;
    }
    if (!is->hostname) is->hostname = "";
    if (!is->app_path) is->app_path = "";
    if (!is->app_query) is->app_query = "";
    if (!is->session) is->session = "";
    if (strlen(is->app_path) > 2048 || strlen(is->app_query) > 2048) {
        *why = "app_path and app_query are limited to 2048 bytes";
        return -EINVAL;
    }
    op_wsapp_req_normalize(r);
    return op_wsapp_req_check(r, why);
}

/* ---- resolving the app ---- */

struct target {
    char owner_id[OP_UUID_STR_LEN + 1];
    char ws_id[OP_UUID_STR_LEN + 1];
    char agent_id[OP_UUID_STR_LEN + 1];
    char app_url[OP_WSAPP_URL_MAX + 1];
    char level[16];     /* owner, authenticated, organization, public */
    char status[16];    /* the agent's status */
    const char *reason; /* why it was not found (logged) */
};

/* The app of slug in an agent's stored apps JSON: fills url and level. */
static bool find_app(const char *apps_json, const char *slug, struct target *t)
{
    cJSON *apps = cJSON_Parse(apps_json);
    bool found = false;
    const cJSON *a;
    cJSON_ArrayForEach(a, apps)
    {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "slug"));
        const char *url = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "url"));
        const char *lvl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "sharing_level"));
        if (!s || !url || strcmp(s, slug) != 0 || strlen(url) > OP_WSAPP_URL_MAX) continue;
        snprintf(t->app_url, sizeof(t->app_url), "%s", url);
        snprintf(t->level, sizeof(t->level), "%s", lvl ? lvl : "owner");
        found = true;
        break;
    }
    cJSON_Delete(apps);
    return found;
}

/* Resolves r (checked) into t. port >= 0 names a port (URL and level already set). 0, -ENOENT (t->reason),
 * -EIO. */
static int resolve(struct op_primary *p, const struct op_wsapp_req *r, int port, struct target *t)
{
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT w.id, w.owner_id FROM workspaces w JOIN users u ON"
                            " u.id = w.owner_id WHERE (u.id = lower(?1) OR lower(u.username) ="
                            " lower(?1)) AND (w.id = lower(?2) OR lower(w.name) = lower(?2))");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, r->user);
    op_db_bind_text(st, 2, r->workspace);
    int rc = op_db_step(st);
    if (rc == OP_DB_ROW) {
        snprintf(t->ws_id, sizeof(t->ws_id), "%s", op_db_col_text(st, 0));
        snprintf(t->owner_id, sizeof(t->owner_id), "%s", op_db_col_text(st, 1));
    }
    op_db_finalize(st);
    if (rc != OP_DB_ROW) {
        t->reason = "no such user or workspace";
        return rc == OP_DB_DONE ? -ENOENT : -EIO;
    }
    st =
        op_store_prepare(p, "SELECT id, name, apps, created_at, connection_timeout_ms, first_connected_at,"
                            " last_connected_at, disconnected_at FROM workspace_agents WHERE workspace_id = ?"
                            " ORDER BY lower(name)");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, t->ws_id);
    int matches = 0, agents = 0;
    int64_t now = op_wall_ms();
    struct target found = *t;
    while ((rc = op_db_step(st)) == OP_DB_ROW) {
        agents++;
        const char *id = op_db_col_text(st, 0), *name = op_db_col_text(st, 1);
        if (r->agent[0] && strcasecmp(id, r->agent) != 0 && strcasecmp(name, r->agent) != 0) continue;
        struct target cand = *t;
        if (port < 0 && !find_app(op_db_col_text(st, 2), r->slug_or_port, &cand)) {
            if (r->agent[0]) break; /* the named agent has no such app */
            continue;
        }
        if (port >= 0) { /* ports are "owner" unless a port-share row raises them */
            snprintf(cand.app_url, sizeof(cand.app_url), "%s", t->app_url);
            snprintf(cand.level, sizeof(cand.level), "%s", t->level);
            int sr = op_port_share_level(p, t->ws_id, name, port, cand.level, sizeof(cand.level));
            if (sr == -EIO) {
                op_db_finalize(st);
                return -EIO;
            }
        }
#define COL_TIME(i) (op_db_col_is_null(st, i) ? -1 : op_db_col_int64(st, i))
        const char *status = op_agent_status(p, now, op_db_col_int64(st, 3), op_db_col_int64(st, 4),
                                             COL_TIME(5), COL_TIME(6), COL_TIME(7));
#undef COL_TIME
        snprintf(cand.agent_id, sizeof(cand.agent_id), "%s", id);
        snprintf(cand.status, sizeof(cand.status), "%s", status);
        found = cand;
        matches++;
        if (r->agent[0]) break;
    }
    op_db_finalize(st);
    if (rc != OP_DB_ROW && rc != OP_DB_DONE) return -EIO;
    /* Without an agent name: the only agent, or the only agent that has the app. */
    if (matches == 1 && (r->agent[0] || agents == 1 || port < 0)) {
        *t = found;
        return 0;
    }
    t->reason = matches > 1 ? "several agents match: name the agent" : "no such agent or app";
    return -ENOENT;
}

/* ---- authorization ---- */

static bool authorized(const struct op_primary *p, const struct op_user *u, const struct op_wsapp_req *r,
                       const struct target *t, const char **level_out)
{
    bool path = r->access == OP_WSAPP_PATH;
    const char *level = t->level;
    if (path && !p->allow_path_app_sharing) level = "owner";
    *level_out = level;
    bool public_app = strcmp(level, "public") == 0;
    if (!u) return public_app;
    bool own = strcmp(u->id, t->owner_id) == 0;
    if (own) return true;
    if (path && strcmp(level, "owner") == 0 && !p->allow_path_app_site_owner) return false;
    if (u->owner) return true; /* site owners may connect to any workspace */
    return public_app || strcmp(level, "authenticated") == 0 || strcmp(level, "organization") == 0;
}

/* Appends s, percent-encoding what may not stand in a URL as it is (controls, space, non-ASCII, quotes,
 * angle brackets, backslash, '#'); keep_query keeps '?' literal. */
static void url_piece(struct op_strbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '#' || c == '`' ||
            c == '{' || c == '}' || c == '|' || c == '^') {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            op_sb_add(b, e, 3);
        } else {
            op_sb_add(b, s, 1);
        }
    }
}

/* The URL the visitor was at (§2.9 AppBaseURL + app_path + app_query; the app's base alone when !where)
 * into b; path_off receives where its path starts. 0 or -EINVAL (*why). */
static int app_url(const struct issue *is, bool where, struct op_strbuf *b, size_t *path_off,
                   const char **why)
{
    const char *base = is->base_url ? is->base_url : "";
    size_t olen = op_url_origin_len(base);
    if (olen == 0) {
        *why = "path_app_base_url must be an http:// or https:// URL";
        return -EINVAL;
    }
    if (is->req.access == OP_WSAPP_SUBDOMAIN) {
        char host[512];
        if (!*is->hostname || op_wsapp_subdomain_host(is->hostname, &is->req, host, sizeof(host)) < 0) {
            *why = "app_hostname is required for subdomain apps";
            return -EINVAL;
        }
        const char *sep = strstr(base, "://");
        op_sb_add(b, base, (size_t)(sep + 3 - base));
        op_sb_str(b, host);
        /* A pattern without a port serves on the region's port (as the primary's wildcard gets the access
         * URL's port appended). */
        op_span_t bh = op_url_http_host(base);
        const char *bport = bh.p ? memchr(bh.p, ':', bh.len) : NULL;
        if (!strchr(is->hostname, ':') && bport) op_sb_add(b, bport, (size_t)(bh.p + bh.len - bport));
    } else {
        op_sb_add(b, base, olen);
    }
    *path_off = b->len;
    op_sb_str(b, is->req.base_path); /* normalised: ends with '/' */
    const char *ap = is->app_path;
    while (*ap == '/')
        ap++;
    if (where) url_piece(b, ap);
    if (where && *is->app_query) {
        op_sb_str(b, "?");
        url_piece(b, is->app_query);
    }
    return b->oom ? -ENOMEM : 0;
}

/* Not signed in and not allowed: path apps on the primary's own host go to its login page, everything
 * else to the auth redirect on the primary, which comes back with an app-connect key (§6.7). */
static int redirect_to_sign_in(struct op_primary *p, const struct issue *is, struct op_app_response *resp)
{
    struct op_strbuf u = {0}, loc = {0};
    size_t path_off = 0;
    const char *why = NULL;
    int rc = app_url(is, true, &u, &path_off, &why);
    if (rc == 0 && u.len > OP_APP_REDIRECT_URI_MAX) { /* the auth redirect would refuse it: the app's base */
        op_sb_free(&u);
        rc = app_url(is, false, &u, &path_off, &why);
    }
    if (rc != 0) {
        op_sb_free(&u);
        op_html_page(p, resp, 400, "Invalid application request", why ? why : "out of memory");
        return 400;
    }
    op_span_t ah = op_url_http_host(p->access_url), bh = op_url_http_host(is->base_url);
    bool own_host =
        is->req.access == OP_WSAPP_PATH && ah.len == bh.len && strncasecmp(ah.p, bh.p, ah.len) == 0;
    if (own_host) {
        op_sb_str(&loc, "/login?redirect=");
        op_sb_urlenc(&loc, u.p + path_off);
    } else {
        op_sb_str(&loc, p->access_url);
        op_sb_str(&loc, "/api/v2/applications/auth-redirect?redirect_uri=");
        op_sb_urlenc(&loc, u.p);
    }
    if (loc.oom)
        op_html_page(p, resp, 500, "Internal error", "out of memory");
    else
        op_redirect(resp, 303, loc.p);
    op_sb_free(&u);
    op_sb_free(&loc);
    return resp->status;
}

int op_primary_sign_app_token(struct op_primary *p, const struct op_wsapp_token *t, char *out, size_t outlen)
{
    char payload[OP_JWS_MAX_PAYLOAD];
    int n = op_wsapp_token_encode(t, payload, sizeof(payload));
    if (n < 0) return n;
    int64_t seq;
    uint8_t key[64];
    int rc = op_keys_signing(p, &seq, key);
    if (rc) return rc;
    rc = op_jws_sign(payload, (size_t)n, seq, key, sizeof(key), out, outlen);
    op_secure_zero(key, sizeof(key));
    return rc < 0 ? rc : 0;
}

int op_primary_issue_app_token(struct op_primary *p, const cJSON *issue_req, const char *real_ip,
                               struct op_app_response *resp)
{
    struct issue is;
    const char *why = "the request is not a JSON object";
    if (!cJSON_IsObject(issue_req) || parse_issue(issue_req, &is, &why) != 0) {
        op_api_error(resp, 400, "Invalid app request.", why);
        return 400;
    }
    const struct op_wsapp_req *r = &is.req;
    if (r->access == OP_WSAPP_TERMINAL) {
        op_html_page(p, resp, 400, "Invalid application request",
                     "The web terminal is not served by this deployment.");
        return 400;
    }
    if (r->access == OP_WSAPP_PATH && p->disable_path_apps) {
        op_html_page(p, resp, 403, "Unauthorized",
                     "Path-based applications are disabled on this Coder deployment by the administrator.");
        return 403;
    }
    struct target t = {0};
    bool https = false;
    int port = op_wsapp_port(r->slug_or_port, &https);
    if (port >= 0) {
        char msg[160];
        if (r->access != OP_WSAPP_SUBDOMAIN) {
            op_html_page(p, resp, 400, "Invalid application request",
                         "Port-based URLs are only supported for subdomain-based applications.");
            return 400;
        }
        if (port < 9) {
            snprintf(
                msg, sizeof(msg),
                "Application port %d is not permitted. Coder reserves ports less than 9 for internal use.",
                port);
            op_html_page(p, resp, 400, "Invalid application request", msg);
            return 400;
        }
        snprintf(t.app_url, sizeof(t.app_url), "%s://127.0.0.1:%d", https ? "https" : "http", port);
        snprintf(t.level, sizeof(t.level), "owner");
    }
    /* The visitor: an invalid or expired token counts as none (public apps still open). */
    struct op_user visitor, *u = NULL;
    struct op_auth_why aw;
    if (*is.session) {
        int rc = op_auth_token(p, is.session, true, &visitor, &aw);
        if (rc == -EIO) {
            op_html_page(p, resp, 500, "Internal error", "The session could not be checked.");
            return 500;
        }
        if (rc == 0) u = &visitor;
    }
    int rc = resolve(p, r, port, &t);
    if (rc) {
        if (rc == -ENOENT) {
            op_debug("apps", "%s/%s/%s/%s: %s", r->user, r->workspace, r->agent, r->slug_or_port, t.reason);
            op_html_page(p, resp, 404, NOT_FOUND_TITLE, NOT_FOUND_MSG);
            return 404;
        }
        op_html_page(p, resp, 500, "Internal error", "The application could not be looked up.");
        return 500;
    }
    const char *level = NULL;
    if (!authorized(p, u, r, &t, &level)) {
        if (u) {
            op_debug("apps", "%s may not open %s/%s/%s (%s, level %s)", u->username, r->user, r->workspace,
                     r->slug_or_port, op_wsapp_access_name(r->access), level);
            op_html_page(p, resp, 404, NOT_FOUND_TITLE, NOT_FOUND_MSG);
            return 404;
        }
        return redirect_to_sign_in(p, &is, resp);
    }
    if (strcmp(t.status, "connected") != 0) {
        char msg[200];
        snprintf(
            msg, sizeof(msg),
            "The workspace agent is not connected (its status is \"%s\"). Start the agent and try again.",
            t.status);
        op_html_page(p, resp, 502, "Agent offline", msg);
        return 502;
    }
    struct op_wsapp_token tok = {0};
    tok.iat = op_wall_ms() / 1000;
    tok.exp = tok.iat + p->app_token_lifetime_s;
    tok.req = *r;
    snprintf(tok.user_id, sizeof(tok.user_id), "%s", u ? u->id : "");
    snprintf(tok.workspace_id, sizeof(tok.workspace_id), "%s", t.ws_id);
    snprintf(tok.agent_id, sizeof(tok.agent_id), "%s", t.agent_id);
    snprintf(tok.app_url, sizeof(tok.app_url), "%s", t.app_url);
    if (u) { /* the app's X-Coder-Username / X-Coder-User-Email (not for anonymous visitors) */
        snprintf(tok.username, sizeof(tok.username), "%s", u->username);
        snprintf(tok.email, sizeof(tok.email), "%s", u->email);
    }
    char jws[OP_JWS_MAX_TOKEN];
    if (op_primary_sign_app_token(p, &tok, jws, sizeof(jws)) != 0) {
        op_html_page(p, resp, 500, "Internal error", "The app token could not be signed.");
        return 500;
    }
    op_debug("apps", "app token for %s: %s %s/%s/%s/%s from %s", u ? u->username : "(anonymous)",
             op_wsapp_access_name(r->access), r->user, r->workspace, r->agent, r->slug_or_port,
             real_ip ? real_ip : "?");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "signed_token_str", jws);
    op_api_json(resp, 201, o);
    return resp->status == 201 ? 0 : resp->status;
}

void op_api_issue_app_token(struct op_primary *p, const struct op_app_request *req,
                            struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    char ip[64];
    const struct op_app_header *h = op_app_find_header(req, "Coder-Workspace-Proxy-Real-IP");
    if (h && h->value.len > 0 && h->value.len < sizeof(ip)) {
        memcpy(ip, h->value.p, h->value.len);
        ip[h->value.len] = '\0';
    } else {
        snprintf(ip, sizeof(ip), "%s", req->remote_ip ? req->remote_ip : "");
    }
    op_primary_issue_app_token(p, body, ip, resp);
    cJSON_Delete(body);
}
