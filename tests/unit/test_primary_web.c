/*
 * The dashboard's routes on the primary (primary/web.c), through op_primary_handle with a real SQLite file:
 * a new deployment sends every page to /setup and /login there too; once the owner exists /setup sends to
 * /login, pages want a session (303 to /login?redirect=), and signed in they answer the HTML shell with the
 * strict CSP (inline styles on the terminal page only, the proxies' origins in connect-src); the hashed
 * assets (every one the shell names), their year-long cache and ETag, 404 for an unknown one, 405 for a
 * POST; the sign-in page's look; the same-origin rule on cookie-authenticated changes and on sign-in.
 */
#include "db/db.h"

#include "primary/primary_int.h"
#include "primary/web_assets.h"
#include "tests/unit/primary_test_util.h"

#define PRIMARY "http://127.0.0.1:3000"

static char dir[256];

static struct t_resp get_cookie(struct op_primary *p, const char *target, const char *session)
{
    char c[300];
    snprintf(c, sizeof(c), "Cookie: coder_session_token=%s", session ? session : "none");
    const char *hdrs[] = {c, NULL};
    return t_call_h(p, "GET", target, NULL, session ? hdrs : NULL);
}

static void test_new_deployment(struct op_primary *p)
{
    const char *pages[] = {"/",
                           "/workspaces",
                           "/account/workspace-proxy",
                           "/deployment/workspace-proxies",
                           "/@admin/ws.main/terminal",
                           "/login"};
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        struct t_resp r = t_call(p, "GET", pages[i], NULL, NULL);
        CHECK(r.status == 303 && t_streq(t_header(&r, "Location"), "/setup"), "new deployment: %s -> /setup",
              pages[i]);
        t_free(&r);
    }
    struct t_resp r = t_call(p, "GET", "/setup", NULL, NULL);
    CHECK(r.status == 200 && r.body && strstr(r.body, "<script type=\"module\" src=\"/assets/app."),
          "new deployment: /setup is the shell");
    CHECK(strstr(t_header(&r, "Content-Security-Policy"), "script-src 'self'") != NULL, "/setup has the CSP");
    t_free(&r);
}

static void test_pages(struct op_primary *p, const char *session)
{
    struct t_resp r = t_call(p, "GET", "/setup", NULL, NULL);
    CHECK(r.status == 303 && t_streq(t_header(&r, "Location"), "/login"),
          "/setup once an owner exists -> /login");
    t_free(&r);
    r = t_call(p, "GET", "/account/workspace-proxy", NULL, NULL);
    CHECK(r.status == 303 &&
              t_streq(t_header(&r, "Location"), "/login?redirect=%2Faccount%2Fworkspace-proxy"),
          "signed out: a page -> /login?redirect= (got %d %s)", r.status, t_header(&r, "Location"));
    t_free(&r);
    r = get_cookie(p, "/workspaces", session);
    const char *csp = t_header(&r, "Content-Security-Policy");
    CHECK(r.status == 200 && strstr(r.body, "<main id=\"main\">"), "signed in: /workspaces is the shell");
    CHECK(strncmp(csp, "default-src 'none'; script-src 'self'; style-src 'self'; ", 57) == 0,
          "the shell's CSP: %s", csp);
    CHECK(strstr(csp, "connect-src 'self' http://eu.example.com:8080 ws://eu.example.com:8080;") != NULL,
          "connect-src names the proxy's origin, http and ws: %s", csp);
    CHECK(strstr(r.body, "<meta name=\"outpost-connect-src\" content=\"http://eu.example.com:8080 "
                         "ws://eu.example.com:8080\">") != NULL,
          "the shell repeats connect-src's origins for the page");
    CHECK(strstr(csp, "frame-ancestors 'none'") &&
              t_streq(t_header(&r, "X-Content-Type-Options"), "nosniff") &&
              t_streq(t_header(&r, "Cache-Control"), "no-cache"),
          "frame-ancestors, nosniff, no-cache on the shell");
    /* Every hashed file the shell names is served, with integrity values that match the table. */
    int named = 0;
    for (int i = 0; i < op_web_nassets; i++) {
        const struct op_web_asset *a = &op_web_assets[i];
        bool sri = strstr(a->name, ".js") || strstr(a->name, ".css"); /* icons take no integrity */
        if (!a->url[0] || !strstr(r.body, a->url) || !sri) continue;
        named++;
        CHECK(strstr(r.body, a->integrity) != NULL, "the shell names %s with its integrity value", a->name);
    }
    CHECK(named >= 3, "the shell names the script and both stylesheets (%d)", named);
    t_free(&r);
    r = get_cookie(p, "/@admin/ws.main/terminal", session);
    CHECK(r.status == 200 &&
              strstr(t_header(&r, "Content-Security-Policy"), "style-src 'self' 'unsafe-inline';"),
          "the terminal page allows inline styles (xterm.js)");
    t_free(&r);
    const char *not_pages[] = {"/@admin/ws/terminal", "/@admin/ws.main/terminal/x", "/@/ws.main/terminal",
                               "/workspaces/x"};
    for (size_t i = 0; i < sizeof(not_pages) / sizeof(not_pages[0]); i++) {
        r = get_cookie(p, not_pages[i], session);
        CHECK(r.status == 404, "%s is not a dashboard page (got %d)", not_pages[i], r.status);
        t_free(&r);
    }
    r = t_call(p, "POST", "/workspaces", "", session);
    CHECK(r.status == 405, "POST on a page -> 405");
    t_free(&r);
    r = t_call(p, "GET", "/login", NULL, NULL);
    CHECK(r.status == 200 && strstr(r.body, "<form method=\"post\" action=\"/login\">") &&
              strstr(r.body, "/assets/app.") && !strstr(r.body, "<style"),
          "the sign-in page: the form, the dashboard's stylesheet, no inline style");
    CHECK(strstr(t_header(&r, "Content-Security-Policy"), "script-src 'self'") != NULL,
          "the sign-in page's CSP");
    t_free(&r);
}

static void test_assets(struct op_primary *p)
{
    int served = 0;
    for (int i = 0; i < op_web_nassets; i++) {
        const struct op_web_asset *a = &op_web_assets[i];
        if (!a->url[0]) continue;
        struct t_resp r = t_call(p, "GET", a->url, NULL, NULL);
        CHECK(r.status == 200 && r.body && memcmp(r.body, a->data, a->len) == 0, "%s is served", a->url);
        CHECK(t_streq(t_header(&r, "Cache-Control"), "public, max-age=31536000, immutable") &&
                  t_streq(t_header(&r, "ETag"), a->etag),
              "%s: a year's cache and its ETag", a->url);
        served++;
        t_free(&r);
    }
    CHECK(served >= 8, "hashed assets served (%d)", served);
    struct t_resp r = t_call(p, "GET", "/assets/app.000000000000.js", NULL, NULL);
    CHECK(r.status == 404, "an unknown asset -> 404");
    t_free(&r);
    r = t_call(p, "POST", op_web_asset_named("app.js")->url, "", NULL);
    CHECK(r.status == 405, "POST on an asset -> 405");
    t_free(&r);
}

static void test_csrf(struct op_primary *p, const char *session)
{
    char cookie[300];
    snprintf(cookie, sizeof(cookie), "Cookie: coder_session_token=%s", session);
    const char *body = "{}";
    struct {
        const char *h1, *h2;
        int want;
        const char *what;
    } cases[] = {
        {"Origin: http://evil.example", NULL, 403, "a foreign Origin"},
        {"Origin: http://127.0.0.1:3001", NULL, 403, "another port of the same host"},
        {"Sec-Fetch-Site: cross-site", NULL, 403, "Sec-Fetch-Site: cross-site"},
        {"Sec-Fetch-Site: same-site", NULL, 403, "Sec-Fetch-Site: same-site"},
        {"Origin: null", NULL, 403, "Origin: null"},
        {"Origin: http://127.0.0.1:3000", "Sec-Fetch-Site: same-origin", 400, "the dashboard's own origin"},
        {"Origin: HTTP://127.0.0.1:3000", NULL, 400, "the dashboard's origin in capitals"},
        {NULL, NULL, 400, "neither header (a non-browser client)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *hdrs[] = {cookie, cases[i].h1, cases[i].h2, NULL};
        struct t_resp r = t_call_h(p, "POST", "/api/v2/workspaceproxies", body, hdrs);
        CHECK(r.status == cases[i].want, "cookie POST with %s -> %d (got %d)", cases[i].what, cases[i].want,
              r.status);
        t_free(&r);
    }
    char token[300];
    snprintf(token, sizeof(token), "Coder-Session-Token: %s", session);
    const char *hdrs[] = {token, "Origin: http://evil.example", NULL};
    struct t_resp r = t_call_h(p, "POST", "/api/v2/workspaceproxies", body, hdrs);
    CHECK(r.status == 400, "a header token is not subject to the check (got %d)", r.status);
    t_free(&r);
    const char *login[] = {"Origin: http://evil.example", NULL};
    r = t_call_h(p, "POST", "/login", "email=admin&password=x", login);
    CHECK(r.status == 403, "a cross-origin sign-in form post -> 403 (got %d)", r.status);
    t_free(&r);
    r = t_call_h(p, "POST", "/api/v2/users/login", "{\"email\":\"admin@example.com\",\"password\":\"x\"}",
                 login);
    CHECK(r.status == 403, "a cross-origin JSON sign-in -> 403 (got %d)", r.status);
    t_free(&r);
    const char *safe[] = {cookie, "Origin: http://evil.example", NULL};
    r = t_call_h(p, "GET", "/api/v2/users/me", NULL, safe);
    CHECK(r.status == 200, "a GET is not subject to the check");
    t_free(&r);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/outpost-primary-web-XXXXXX");
    struct op_primary_config cfg = {.access_url = PRIMARY};
    struct op_primary *p = t_open(dir, &cfg);
    if (!p) return 1;
    test_new_deployment(p);
    struct t_resp r = t_call(
        p, "POST", "/api/v2/users/first",
        "{\"username\":\"admin\",\"email\":\"admin@example.com\",\"password\":\"Admin-Pass-1\"}", NULL);
    CHECK(r.status == 201, "first owner");
    t_free(&r);
    struct t_secrets secrets = {0};
    char *owner = t_login(p, &secrets, "admin@example.com", "Admin-Pass-1", NULL);
    r = t_call(p, "POST", "/api/v2/workspaceproxies", "{\"name\":\"eu\"}", owner);
    const char *tok = t_str(r.json, "proxy_token");
    char *ptok = strdup(tok ? tok : "");
    CHECK(r.status == 201, "create proxy eu");
    t_free(&r);
    r = t_proxy_call(
        p, "POST", "/api/v2/workspaceproxies/me/register",
        "{\"access_url\":\"http://eu.example.com:8080\",\"wildcard_hostname\":\"*.eu.example.com\","
        "\"derp_enabled\":false,\"derp_only\":false,\"replica_id\":"
        "\"7f0c7d37-5b0a-4f0e-9d55-0a0c1d2e3f40\",\"hostname\":\"h\",\"version\":\"v2.9.0\","
        "\"replica_relay_address\":\"http://10.0.0.1:3001\"}",
        ptok);
    CHECK(r.status == 201, "register eu (got %d %s)", r.status, r.body ? r.body : "");
    t_free(&r);
    test_pages(p, owner);
    test_assets(p);
    test_csrf(p, owner);
    op_primary_close(p);
    free(owner);
    free(ptok);
    t_rm_rf(dir);
    return check_report("primary dashboard routes");
}
