/*
 * primary/web.c — the dashboard (docs/dashboard.md): the embedded static files of web/
 * (primary/web_assets.h), the page routes that all answer the one HTML shell (the page's module picks what to
 * render), the server-rendered pages in the same look (the sign-in form), the security headers every
 * dashboard answer carries, and the same-origin check that stands in for a CSRF token on cookie-authenticated
 * changes.
 *
 * Content-Security-Policy: scripts, styles, fonts and images from the primary only, no inline code (the
 * terminal page allows inline styles for xterm.js); fetches and WebSockets to the primary and to the access
 * URLs of the registered workspace proxies (the latency probes, the terminal).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/primary_int.h"
#include "primary/web_assets.h"
#include "util/url.h"

#define HASHED_CACHE "public, max-age=31536000, immutable"

const struct op_web_asset *op_web_asset_named(const char *name)
{
    for (int i = 0; i < op_web_nassets; i++)
        if (strcmp(op_web_assets[i].name, name) == 0) return &op_web_assets[i];
    return NULL;
}

static const struct op_web_asset *asset_at(const char *url)
{
    for (int i = 0; i < op_web_nassets; i++)
        if (op_web_assets[i].url[0] && strcmp(op_web_assets[i].url, url) == 0) return &op_web_assets[i];
    return NULL;
}

/* The origins of every registered proxy, each as http(s) (the picker's probes) and as ws(s) (the terminal),
 * separated by spaces with a leading one: the CSP's connect-src after 'self', and the list the shell
 * repeats for the page (<meta name="outpost-connect-src">), so that the page knows which regions it can
 * reach. An origin is listed only if it cannot end the directive or the header. */
static void connect_origins(struct op_primary *p, struct op_strbuf *b)
{
    struct op_db_stmt *st = op_store_prepare(
        p, "SELECT url FROM workspace_proxies WHERE deleted = 0 AND url != '' ORDER BY name");
    while (st && op_db_step(st) == OP_DB_ROW) {
        const char *url = op_db_col_text(st, 0);
        size_t n = op_url_origin_len(url);
        if (n == 0 || n > 200 || memchr(url, ';', n) || memchr(url, ',', n) || memchr(url, '\'', n) ||
            memchr(url, '"', n) || memchr(url, '<', n) || memchr(url, '&', n))
            continue;
        size_t scheme = strncasecmp(url, "https://", 8) == 0 ? 8 : 7;
        op_sb_str(b, " ");
        op_sb_add(b, url, n);
        op_sb_str(b, scheme == 8 ? " wss://" : " ws://");
        op_sb_add(b, url + scheme, n - scheme);
    }
    if (st) op_db_finalize(st);
}

/* The CSP with connect-src 'self' plus origins (connect_origins()). inline_styles: the terminal page, whose
 * xterm.js adds <style> elements of its own (no inline script is allowed anywhere). */
static void add_csp(struct op_app_response *resp, const char *origins, bool inline_styles)
{
    struct op_strbuf b = {0};
    op_sb_str(&b, "default-src 'none'; script-src 'self'; style-src 'self'");
    if (inline_styles) op_sb_str(&b, " 'unsafe-inline'");
    op_sb_str(&b, "; img-src 'self' data:; font-src 'self'; manifest-src 'self'; connect-src 'self'");
    op_sb_str(&b, origins);
    op_sb_str(&b, "; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    if (b.oom || op_app_add_header(resp, "Content-Security-Policy", b.p) != 0)
        op_app_add_header(resp, "Content-Security-Policy", "default-src 'none'");
    op_sb_free(&b);
}

static void page_headers(struct op_app_response *resp, const char *origins, bool inline_styles)
{
    add_csp(resp, origins, inline_styles);
    op_app_add_header(resp, "X-Content-Type-Options", "nosniff");
    op_app_add_header(resp, "X-Frame-Options", "DENY");
    op_app_add_header(resp, "Referrer-Policy", "same-origin");
    op_app_add_header(resp, "Cache-Control", "no-cache");
}

void op_web_headers(struct op_primary *p, struct op_app_response *resp)
{
    struct op_strbuf o = {0};
    connect_origins(p, &o);
    page_headers(resp, o.oom || !o.p ? "" : o.p, false);
    op_sb_free(&o);
}

static void set_body(struct op_app_response *resp, int status, const char *ctype, const void *data,
                     size_t len)
{
    free(resp->body);
    resp->body = malloc(len ? len : 1);
    resp->body_len = 0;
    if (!resp->body) {
        op_api_error(resp, 500, "Internal error.", "out of memory");
        return;
    }
    memcpy(resp->body, data, len);
    resp->body_len = len;
    resp->status = status;
    resp->content_type = ctype;
}

void op_web_page(struct op_primary *p, struct op_app_response *resp, int status, const char *title,
                 const char *body_html)
{
    const struct op_web_asset *css = op_web_asset_named("app.css"), *ico = op_web_asset_named("favicon.svg");
    struct op_strbuf b = {0};
    op_sb_str(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
    op_sb_html(&b, title);
    op_sb_str(&b, "</title>");
    if (css) {
        op_sb_str(&b, "<link rel=\"stylesheet\" href=\"");
        op_sb_str(&b, css->url);
        op_sb_str(&b, "\" integrity=\"");
        op_sb_str(&b, css->integrity);
        op_sb_str(&b, "\">");
    }
    if (ico) {
        op_sb_str(&b, "<link rel=\"icon\" type=\"image/svg+xml\" href=\"");
        op_sb_str(&b, ico->url);
        op_sb_str(&b, "\">");
    }
    op_sb_str(&b, "</head>\n<body class=\"narrow\"><main class=\"card\"><h1>");
    op_sb_html(&b, title);
    op_sb_str(&b, "</h1>\n");
    op_sb_str(&b, body_html);
    op_sb_str(&b, "</main></body></html>\n");
    if (b.oom) {
        op_sb_free(&b);
        resp->content_type = "text/plain; charset=utf-8";
        op_app_respond(resp, 500, "out of memory");
        return;
    }
    op_web_headers(p, resp);
    set_body(resp, status, "text/html; charset=utf-8", b.p, b.len);
    op_sb_free(&b);
}

bool op_web_has_users(struct op_primary *p)
{
    struct op_db_stmt *st = op_store_prepare(p, "SELECT 1 FROM users LIMIT 1");
    bool any = !st || op_db_step(st) == OP_DB_ROW; /* a database error is not "new deployment" */
    if (st) op_db_finalize(st);
    return any;
}

static bool signed_in(struct op_primary *p, const struct op_app_request *req)
{
    char token[128];
    struct op_user u;
    struct op_auth_why why;
    bool ok = op_session_token(req, token, sizeof(token), false) > 0 &&
              op_auth_token(p, token, false, &u, &why) == 0;
    op_secure_zero(token, sizeof(token));
    return ok;
}

/* The shell with its headers; the origins of the CSP's connect-src also go into the shell's
 * <meta name="outpost-connect-src" content="">, the page's copy of the list. */
static void serve_shell(struct op_primary *p, struct op_app_response *resp, const struct op_web_asset *shell,
                        bool inline_styles)
{
    static const char mark[] = "<meta name=\"outpost-connect-src\" content=\"";
    struct op_strbuf o = {0}, b = {0};
    connect_origins(p, &o);
    const char *origins = o.oom || !o.p ? "" : o.p;
    const char *data = (const char *)shell->data, *at = strstr(data, mark);
    if (at) {
        size_t head = (size_t)(at - data) + sizeof(mark) - 1;
        op_sb_add(&b, data, head);
        op_sb_html(&b, origins[0] == ' ' ? origins + 1 : origins);
        op_sb_add(&b, data + head, shell->len - head);
    } else {
        op_sb_add(&b, data, shell->len);
    }
    if (b.oom || o.oom) {
        op_api_error(resp, 500, "Internal error.", "out of memory");
    } else {
        page_headers(resp, origins, inline_styles);
        set_body(resp, 200, shell->content_type, b.p, b.len);
    }
    op_sb_free(&b);
    op_sb_free(&o);
}

/* A workspace agent's terminal page, "/@user/ws.agent/terminal". */
static bool terminal_route(const char *path)
{
    if (path[0] != '/' || path[1] != '@') return false;
    const char *user = path + 2, *ws = strchr(user, '/');
    if (!ws || ws == user) return false;
    ws++;
    const char *end = strchr(ws, '/'), *dot = end ? memchr(ws, '.', (size_t)(end - ws)) : NULL;
    return dot && dot > ws && dot + 1 < end && strcmp(end, "/terminal") == 0;
}

/* Dashboard routes: "/", "/workspaces", "/setup", "/account/workspace-proxy",
 * "/deployment/workspace-proxies" and the terminal pages. */
static bool page_route(const char *path)
{
    static const char *const pages[] = {"/", "/workspaces", "/setup", "/account/workspace-proxy",
                                        "/deployment/workspace-proxies"};
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
        if (strcmp(path, pages[i]) == 0) return true;
    return terminal_route(path);
}

bool op_web_route(struct op_primary *p, const char *path, const struct op_app_request *req,
                  struct op_app_response *resp)
{
    bool get = req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0;
    bool head = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    if (strncmp(path, "/assets/", 8) == 0) {
        const struct op_web_asset *a = asset_at(path);
        if (!a) {
            op_api_error(resp, 404, "Route not found.", NULL);
        } else if (!get && !head) {
            op_api_error(resp, 405, "Method not allowed.", NULL);
        } else {
            op_app_add_header(resp, "Cache-Control", HASHED_CACHE);
            op_app_add_header(resp, "ETag", a->etag);
            op_app_add_header(resp, "X-Content-Type-Options", "nosniff");
            set_body(resp, 200, a->content_type, a->data, a->len);
        }
        return true;
    }
    if (!page_route(path)) return false;
    if (!get && !head) {
        op_api_error(resp, 405, "Method not allowed.", NULL);
        return true;
    }
    bool setup = strcmp(path, "/setup") == 0;
    bool users = op_web_has_users(p);
    if (!users && !setup) {
        op_redirect(resp, 303, "/setup");
        return true;
    }
    if (users && setup) {
        op_redirect(resp, 303, "/login");
        return true;
    }
    if (users && !signed_in(p, req)) {
        struct op_strbuf loc = {0};
        op_sb_str(&loc, "/login?redirect=");
        op_sb_urlenc(&loc, path);
        if (loc.oom)
            op_api_error(resp, 500, "Internal error.", "out of memory");
        else
            op_redirect(resp, 303, loc.p);
        op_sb_free(&loc);
        return true;
    }
    const struct op_web_asset *shell = op_web_asset_named("index.html");
    if (!shell) {
        op_api_error(resp, 500, "Internal error.", "the dashboard is not built in");
        return true;
    }
    serve_shell(p, resp, shell, terminal_route(path));
    return true;
}

/* Whether the request names the dashboard's own origin: Origin equal to the access URL's origin (scheme,
 * host and port, case-insensitive). */
static bool own_origin(struct op_primary *p, op_span_t origin)
{
    size_t n = op_url_origin_len(p->access_url);
    return n && origin.len == n && strncasecmp(origin.p, p->access_url, n) == 0;
}

bool op_web_csrf_ok(struct op_primary *p, const struct op_app_request *req, bool is_login)
{
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS"};
    for (size_t i = 0; i < 3; i++)
        if (req->method.len == strlen(safe[i]) && memcmp(req->method.p, safe[i], req->method.len) == 0)
            return true;
    /* A token in the header is never sent by a browser on its own: only cookie sessions need the check. */
    const struct op_app_header *h = op_app_find_header(req, "Coder-Session-Token");
    if (h && h->value.len) return true;
    char token[128];
    size_t n = op_session_token(req, token, sizeof(token), false);
    op_secure_zero(token, sizeof(token));
    if (n == 0 && !is_login) return true;
    const struct op_app_header *site = op_app_find_header(req, "Sec-Fetch-Site");
    if (site) {
        bool same = (site->value.len == 11 && strncasecmp(site->value.p, "same-origin", 11) == 0) ||
                    (site->value.len == 4 && strncasecmp(site->value.p, "none", 4) == 0);
        if (!same) return false;
    }
    const struct op_app_header *origin = op_app_find_header(req, "Origin");
    if (origin && !own_origin(p, origin->value)) return false;
    return true;
}
