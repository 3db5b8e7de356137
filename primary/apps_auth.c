/*
 * primary/apps_auth.c — signing a browser in for workspace apps: the login page (GET/POST /login, which
 * sets the coder_session_token cookie) and GET /api/v2/applications/auth-redirect (docs/apps.md), which
 * turns the dashboard session into an application_connect API key, encrypts it for the region that
 * serves the app (JWE with the newest workspace_apps_api_key key) and sends the browser back to the app
 * with it in the coder_application_connect_api_key_35e783 query parameter.
 *
 * The redirect target is parsed strictly: http(s)://host[:port] with a host of DNS letters, digits, '-'
 * and single dots only (no userinfo, percent escapes, backslashes or IPv6 literals), and it must be the
 * primary's wildcard app host, a workspace proxy's access URL host or a proxy's wildcard app host, compared
 * exactly with its port. The primary's access URL host itself is refused: a key there would be a second
 * dashboard session.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/primary_int.h"
#include "util/url.h"
#include "wsapp/jwe.h"
#include "wsapp/token.h"

#define API_KEY_PARAM    "coder_application_connect_api_key_35e783"
#define REDIRECT_URI_MAX OP_APP_REDIRECT_URI_MAX
#define INVALID_URI_MSG  "Invalid redirect_uri."
#define INVALID_URI_DETAIL                                                                                   \
    "The redirect_uri query parameter must be the primary wildcard app hostname, a workspace proxy access "  \
    "URL or a workspace proxy wildcard app hostname."

/* ---- login ---- */

/* A redirect target after login: a local path ("/x", not "//x" or "/\x"), printable ASCII only. */
static bool local_path(const char *s)
{
    if (s[0] != '/' || s[1] == '/' || s[1] == '\\' || strlen(s) > 1024) return false;
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '\\') return false;
    return true;
}

static void login_form(struct op_primary *p, struct op_app_response *resp, int status, const char *error,
                       const char *who, const char *redirect)
{
    struct op_strbuf b = {0};
    if (error) {
        op_sb_str(&b, "<p role=\"alert\">");
        op_sb_html(&b, error);
        op_sb_str(&b, "</p>\n");
    }
    op_sb_str(&b, "<form method=\"post\" action=\"/login\">"
                  "<label for=\"email\">Email or username</label>"
                  "<input id=\"email\" name=\"email\" autocomplete=\"username\" required value=\"");
    op_sb_html(&b, who ? who : "");
    op_sb_str(&b,
              "\"><label for=\"password\">Password</label>"
              "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\""
              " required><input type=\"hidden\" name=\"redirect\" value=\"");
    op_sb_html(&b, redirect && local_path(redirect) ? redirect : "/");
    op_sb_str(&b, "\"><button type=\"submit\">Sign in</button></form>");
    op_web_page(p, resp, status, "Sign in to Outpost", b.oom ? "" : b.p);
    op_sb_free(&b);
}

void op_api_login_page(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp)
{
    char redirect[1100] = "/";
    if (op_api_query(req, "redirect", redirect, sizeof(redirect)) != 0 || !local_path(redirect))
        snprintf(redirect, sizeof(redirect), "/");
    /* Already signed in (a session cookie or header): straight on to where the form would lead. */
    char token[128];
    struct op_user u;
    struct op_auth_why why;
    bool signed_in = op_session_token(req, token, sizeof(token), false) > 0 &&
                     op_auth_token(p, token, false, &u, &why) == 0;
    op_secure_zero(token, sizeof(token));
    if (!op_web_has_users(p))
        op_redirect(resp, 303, "/setup"); /* a new deployment: its first owner comes first */
    else if (signed_in)
        op_redirect(resp, 303, redirect);
    else
        login_form(p, resp, 200, NULL, NULL, redirect);
}

void op_api_login_post(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp)
{
    char who[256] = "", password[257] = "", redirect[1100] = "/";
    if (op_api_form_value(req->body, "email", who, sizeof(who)) != 0 || !*who)
        op_api_form_value(req->body, "username", who, sizeof(who));
    op_api_form_value(req->body, "password", password, sizeof(password));
    if (op_api_form_value(req->body, "redirect", redirect, sizeof(redirect)) != 0 || !local_path(redirect))
        snprintf(redirect, sizeof(redirect), "/");
    if (!*who || !*password) {
        login_form(p, resp, 400, "Enter your email (or username) and password.", who, redirect);
        op_secure_zero(password, sizeof(password));
        return;
    }
    char token[OP_API_KEY_LEN + 1];
    const char *msg = NULL;
    int rc = op_login_password(p, who, password, token, &msg);
    op_secure_zero(password, sizeof(password));
    if (rc) {
        login_form(p, resp, rc == -EACCES ? 401 : 500, msg, who, redirect);
        return;
    }
    op_session_cookie(resp, token, req->tls);
    op_secure_zero(token, sizeof(token));
    op_redirect(resp, 303, redirect);
}

/* ---- auth redirect ---- */

/* Splits an absolute http(s) URL strictly: *https, the lower-cased "host[:port]" into hp and the offset of
 * what follows the authority ("", "/...", "?..." or "#..."). False for anything else. */
static bool parse_target(const char *u, bool *https, char *hp, size_t hplen, size_t *rest)
{
    for (const char *q = u; *q; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '\\') return false;
    size_t off;
    if (strncasecmp(u, "http://", 7) == 0)
        *https = false, off = 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        *https = true, off = 8;
    else
        return false;
    size_t alen = strcspn(u + off, "/?#");
    const char *a = u + off;
    if (alen == 0 || alen >= hplen) return false;
    size_t hlen = 0;
    bool dot_ok = false; /* a '.' may follow a label character only */
    while (hlen < alen && a[hlen] != ':') {
        char c = a[hlen];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (c == '.' && !dot_ok) return false;
        if (!alnum && c != '-' && c != '.') return false;
        dot_ok = c != '.';
        hlen++;
    }
    if (hlen == 0 || a[hlen - 1] == '.') return false;
    if (hlen < alen) { /* ":port", 1..65535 */
        size_t plen = alen - hlen - 1;
        if (plen == 0 || plen > 5) return false;
        long port = 0;
        for (size_t i = hlen + 1; i < alen; i++) {
            if (a[i] < '0' || a[i] > '9') return false;
            port = port * 10 + (a[i] - '0');
        }
        if (port < 1 || port > 65535) return false;
    }
    for (size_t i = 0; i < alen; i++)
        hp[i] = (char)((a[i] >= 'A' && a[i] <= 'Z') ? a[i] + 32 : a[i]);
    hp[alen] = '\0';
    *rest = off + alen;
    return true;
}

/* The lower-cased "host[:port]" of an access URL into out ("" when it has none). */
static void url_hostport(const char *url, char *out, size_t outlen)
{
    op_span_t h = op_url_http_host(url);
    size_t n = h.p && h.len < outlen ? h.len : 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((h.p[i] >= 'A' && h.p[i] <= 'Z') ? h.p[i] + 32 : h.p[i]);
    out[n] = '\0';
}

/* True if hp (lower-cased host[:port]) is a host of the wildcard pattern ("*.x.com", "*--apps.x.com",
 * optional ":port"): the '*' stands for one non-empty part of the first label. The port must be the
 * pattern's; a pattern without one takes hosts without a port or with the port of url_port (the access URL
 * the pattern belongs to, "" = none). */
static bool wildcard_match(const char *pattern, const char *hp, const char *url_port)
{
    if (!pattern || pattern[0] != '*') return false;
    const char *pport = strchr(pattern, ':'), *hport = strchr(hp, ':');
    size_t plen = pport ? (size_t)(pport - pattern) : strlen(pattern);
    size_t hlen = hport ? (size_t)(hport - hp) : strlen(hp);
    const char *hpnum = hport ? hport + 1 : "";
    if (pport) {
        if (strcmp(pport + 1, hpnum) != 0) return false;
    } else if (*hpnum && strcmp(hpnum, url_port) != 0) {
        return false;
    }
    size_t slen = plen - 1; /* the suffix after '*' */
    if (hlen <= slen || strncasecmp(hp + hlen - slen, pattern + 1, slen) != 0) return false;
    return memchr(hp, '.', hlen - slen) == NULL;
}

static const char *port_of(const char *hostport)
{
    const char *c = strchr(hostport, ':');
    return c ? c + 1 : "";
}

/* Whether hp may receive an app-connect key, and the scheme to force (that of the matching access URL). */
static bool allowed_host(struct op_primary *p, const char *hp, bool *https, bool *db_error)
{
    char mine[300];
    url_hostport(p->access_url, mine, sizeof(mine));
    if (strcmp(hp, mine) == 0) return false;
    if (*p->wildcard_host && wildcard_match(p->wildcard_host, hp, port_of(mine))) {
        *https = strncasecmp(p->access_url, "https:", 6) == 0;
        return true;
    }
    struct op_db_stmt *st = op_store_prepare(
        p, "SELECT url, wildcard_hostname FROM workspace_proxies WHERE deleted = 0 AND url != ''");
    if (!st) {
        *db_error = true;
        return false;
    }
    bool ok = false;
    int rc;
    while (!ok && (rc = op_db_step(st)) == OP_DB_ROW) {
        const char *url = op_db_col_text(st, 0), *wild = op_db_col_text(st, 1);
        char theirs[300];
        url_hostport(url, theirs, sizeof(theirs));
        if ((*theirs && strcmp(hp, theirs) == 0) || (*wild && wildcard_match(wild, hp, port_of(theirs)))) {
            ok = true;
            *https = strncasecmp(url, "https:", 6) == 0;
        }
    }
    op_db_finalize(st);
    return ok;
}

/* A new application_connect key of u, living as long as the session still does (at most the default
 * session lifetime), sealed as the JWE of the app-connect claims into jwe. 0 or -errno. */
static int sealed_app_key(struct op_primary *p, const struct op_user *u, char *jwe, size_t jwelen)
{
    int64_t now = op_wall_ms();
    int64_t left = u->key_expires_ms - now;
    if (left > OP_SESSION_LIFETIME_S * 1000LL) left = OP_SESSION_LIFETIME_S * 1000LL;
    if (left < 1000) return -ETIMEDOUT;
    char key[OP_API_KEY_LEN + 1], claims[512];
    int rc = op_api_key_create(p, u->id, "application_connect", left / 1000, now + left, key);
    if (rc) return rc;
    int n = op_wsapp_apikey_encode(key, now / 1000, claims, sizeof(claims));
    op_secure_zero(key, sizeof(key));
    if (n < 0) return n;
    int64_t seq;
    uint8_t k[32];
    rc = op_keys_newest(p, "workspace_apps_api_key", &seq, k, 32);
    if (!rc) rc = op_jwe_encrypt(claims, (size_t)n, seq, k, jwe, jwelen);
    op_secure_zero(k, sizeof(k));
    op_secure_zero(claims, sizeof(claims));
    return rc < 0 ? rc : 0;
}

/* No session: the login page, coming back here afterwards. */
static void to_login(const struct op_app_request *req, struct op_app_response *resp)
{
    struct op_strbuf here = {0}, loc = {0};
    op_sb_add(&here, req->path.p, req->path.len);
    if (req->query.len) {
        op_sb_str(&here, "?");
        op_sb_add(&here, req->query.p, req->query.len);
    }
    op_sb_str(&loc, "/login?redirect=");
    if (!here.oom) op_sb_urlenc(&loc, here.p);
    if (loc.oom || here.oom)
        op_api_error(resp, 500, "Internal error.", "out of memory");
    else
        op_redirect(resp, 303, loc.p);
    op_sb_free(&here);
    op_sb_free(&loc);
}

void op_api_app_auth_redirect(struct op_primary *p, const struct op_app_request *req,
                              struct op_app_response *resp)
{
    char token[128];
    struct op_user u;
    struct op_auth_why why;
    size_t tn = op_session_token(req, token, sizeof(token), false);
    int rc = tn ? op_auth_token(p, token, false, &u, &why) : -EACCES;
    op_secure_zero(token, sizeof(token));
    if (rc == -EIO) {
        op_api_error(resp, 500, why.message, NULL);
        return;
    }
    if (rc) {
        to_login(req, resp);
        return;
    }
    char *uri = malloc(REDIRECT_URI_MAX + 1);
    if (!uri) {
        op_api_error(resp, 500, "Internal error.", "out of memory");
        return;
    }
    rc = op_api_query(req, "redirect_uri", uri, REDIRECT_URI_MAX + 1);
    char hp[300];
    bool https = false, db_error = false;
    size_t rest = 0;
    if (rc == -ENOENT || (rc == 0 && !*uri)) {
        op_api_error(resp, 400, "Missing redirect_uri query parameter.", NULL);
        goto out;
    }
    if (rc != 0 || !parse_target(uri, &https, hp, sizeof(hp), &rest) ||
        !allowed_host(p, hp, &https, &db_error)) {
        if (db_error)
            op_api_error(resp, 500, "Internal error checking the redirect_uri.", NULL);
        else
            op_api_error(resp, 400, INVALID_URI_MSG, INVALID_URI_DETAIL);
        goto out;
    }
    char jwe[OP_JWE_MAX_TOKEN];
    if ((rc = sealed_app_key(p, &u, jwe, sizeof(jwe))) != 0) {
        op_error("apps", "cannot issue an app-connect key for %s: %s", u.username, strerror(-rc));
        op_api_error(resp, 500, "Internal error creating the application API key.", NULL);
        goto out;
    }
    /* scheme://host[:port] + path, the key appended to the query, the fragment kept last. */
    const char *tail = uri + rest;
    size_t before_frag = strcspn(tail, "#");
    struct op_strbuf loc = {0};
    op_sb_str(&loc, https ? "https://" : "http://");
    op_sb_str(&loc, hp);
    if (tail[0] != '/') op_sb_str(&loc, "/");
    op_sb_add(&loc, tail, before_frag);
    const char *qm = memchr(tail, '?', before_frag);
    if (!qm)
        op_sb_str(&loc, "?");
    else if (tail[before_frag - 1] != '?' && tail[before_frag - 1] != '&')
        op_sb_str(&loc, "&");
    op_sb_str(&loc, API_KEY_PARAM "=");
    op_sb_str(&loc, jwe);
    op_sb_str(&loc, tail + before_frag);
    op_secure_zero(jwe, sizeof(jwe));
    if (loc.oom)
        op_api_error(resp, 500, "Internal error.", "out of memory");
    else
        op_redirect(resp, 303, loc.p);
    if (loc.p) op_secure_zero(loc.p, loc.len);
    op_sb_free(&loc);
    op_info("apps", "app-connect key for %s sent to %s", u.username, hp);
out:
    free(uri);
}
