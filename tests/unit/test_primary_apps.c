/*
 * Workspace app authorization on the primary, driven through op_primary_handle with a real SQLite file:
 * issue-signed-app-token for the owner, another member, a site owner and anonymous visitors at every
 * share level, path and subdomain; path sharing forced to owner and the two dangerous flags; disabled path
 * apps; ports (HTTP, HTTPS, < 9, on a path app); agent resolution (one agent, a unique slug, ambiguous);
 * unknown apps; an offline agent; the in-process entry point. Then the auth redirect (session required,
 * strict host checks, scheme forcing, the JWE decrypts to an application_connect key that works for
 * issuance only) and the login page (cookie, local redirects only, wrong password).
 */
#include <errno.h>
#include "db/db.h"

#include "primary/primary_int.h"
#include "tests/unit/primary_test_util.h"
#include "wsapp/jwe.h"
#include "wsapp/token.h"

#define ISSUE   "/api/v2/workspaceproxies/me/issue-signed-app-token"
#define EU_URL  "https://eu.example.com"
#define EU_WILD "*.eu.example.com"
#define PRIMARY "http://127.0.0.1:3000"

static char dir[256];
static struct t_secrets secrets;
static char *proxy_tok;

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void expect(struct t_resp r, int status, const char *message, const char *what)
{
    bool ok = r.status == status && (!message || t_streq(t_str(r.json, "message"), message));
    CHECK(ok, "%s -> %d%s%s (got %d %s)", what, status, message ? " " : "", message ? message : "", r.status,
          r.body ? r.body : "");
    t_free(&r);
}

/* ---- the issue request ---- */

struct app_req {
    const char *access, *user, *ws, *agent, *slug, *base_path, *prefix;
    const char *base_url, *hostname, *app_path, *app_query;
};

static char *issue_body(const struct app_req *a, const char *session)
{
    cJSON *o = cJSON_CreateObject(), *ar = cJSON_AddObjectToObject(o, "app_request");
    cJSON_AddStringToObject(ar, "access_method", a->access);
    char bp[320];
    if (a->base_path)
        snprintf(bp, sizeof(bp), "%s", a->base_path);
    else if (strcmp(a->access, "path") == 0)
        snprintf(bp, sizeof(bp), "/@%s/%s%s%s/apps/%s/", a->user, a->ws, a->agent ? "." : "",
                 a->agent ? a->agent : "", a->slug);
    else
        snprintf(bp, sizeof(bp), "/");
    cJSON_AddStringToObject(ar, "base_path", bp);
    cJSON_AddStringToObject(ar, "app_prefix", a->prefix ? a->prefix : "");
    cJSON_AddStringToObject(ar, "username_or_id", a->user);
    cJSON_AddStringToObject(ar, "workspace_name_or_id", a->ws);
    cJSON_AddStringToObject(ar, "agent_name_or_id", a->agent ? a->agent : "");
    cJSON_AddStringToObject(ar, "app_slug_or_port", a->slug);
    cJSON_AddStringToObject(o, "path_app_base_url", a->base_url ? a->base_url : EU_URL);
    cJSON_AddStringToObject(o, "app_hostname", a->hostname ? a->hostname : EU_WILD);
    cJSON_AddStringToObject(o, "app_path", a->app_path ? a->app_path : "");
    cJSON_AddStringToObject(o, "app_query", a->app_query ? a->app_query : "");
    cJSON_AddStringToObject(o, "session_token", session ? session : "");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static struct t_resp issue(struct op_primary *p, const struct app_req *a, const char *session)
{
    char *body = issue_body(a, session);
    char h1[300];
    snprintf(h1, sizeof(h1), "Coder-External-Proxy-Token: %s", proxy_tok);
    const char *hdrs[] = {h1, "Coder-Workspace-Proxy-Real-IP: 203.0.113.7", NULL};
    struct t_resp r = t_call_h(p, "POST", ISSUE, body, hdrs);
    cJSON_free(body);
    return r;
}

/* The workspace_apps_token keys from the database. */
static int token_keys(struct op_primary *p, struct op_wsapp_key *keys, int max)
{
    struct op_db_stmt *st = NULL;
    st =
        op_db_prepare(p->db, "SELECT sequence, secret FROM crypto_keys WHERE feature = 'workspace_apps_token'"
                             " AND secret IS NOT NULL");
    int n = 0;
    while (n < max && op_db_step(st) == OP_DB_ROW) {
        keys[n].kid = op_db_col_int64(st, 0);
        keys[n].len = 64;
        if (op_hex_decode(op_db_col_text(st, 1), 128, keys[n].secret, 64) == 0) n++;
    }
    op_db_finalize(st);
    return n;
}

/* Expects a 201 whose token verifies and carries the visitor (user_id, "" = anonymous), agent and URL. */
static void expect_token(struct op_primary *p, struct t_resp r, const char *user_id, const char *agent_id,
                         const char *app_url, const char *what)
{
    struct op_wsapp_key keys[8];
    int nk = token_keys(p, keys, 8);
    const char *jws = t_str(r.json, "signed_token_str");
    struct op_wsapp_token t = {0};
    int rc = jws ? op_wsapp_token_verify(jws, strlen(jws), keys, nk, op_wall_ms() / 1000, &t) : -1;
    int64_t left = t.exp - op_wall_ms() / 1000;
    CHECK(
        r.status == 201 && rc == 0 && t_streq(t.user_id, user_id) &&
            (!agent_id || t_streq(t.agent_id, agent_id)) && (!app_url || t_streq(t.app_url, app_url)) &&
            left > 50 && left <= 60,
        "%s -> 201, token verifies: user \"%s\" agent %s url %s, 1 min (got %d rc %d user \"%s\" url %s %s)",
        what, user_id, agent_id ? agent_id : "-", app_url ? app_url : "-", r.status, rc, t.user_id, t.app_url,
        r.body ? r.body : "");
    t_free(&r);
}

/* Expects an HTML page of status whose body contains needle. */
static void expect_page(struct t_resp r, int status, const char *needle, const char *what)
{
    bool html = r.body && strstr(r.body, "<!DOCTYPE html>") && strstr(r.body, "href=\"" PRIMARY "/\"");
    CHECK(r.status == status && html && (!needle || strstr(r.body, needle)),
          "%s -> %d HTML page with \"%s\" and a link to the dashboard (got %d %.300s)", what, status,
          needle ? needle : "", r.status, r.body ? r.body : "");
    t_free(&r);
}

static void expect_redirect(struct t_resp r, int status, const char *location, const char *what)
{
    const char *loc = t_header(&r, "Location");
    CHECK(r.status == status && strcmp(loc, location) == 0, "%s -> %d Location %s (got %d %s)", what, status,
          location, r.status, loc);
    t_free(&r);
}

#define AUTH_REDIRECT PRIMARY "/api/v2/applications/auth-redirect?redirect_uri="

/* ---- fixtures ---- */

struct fix {
    char *owner, *alice, *bob;
    char alice_id[37], bob_id[37], owner_id[37];
    char dev_agent[37], off_agent[37], a1[37], a2[37];
};

static void user_id(struct op_primary *p, const char *session, char out[37])
{
    struct t_resp r = t_call(p, "GET", "/api/v2/users/me", NULL, session);
    snprintf(out, 37, "%s", t_str(r.json, "id") ? t_str(r.json, "id") : "");
    t_free(&r);
}

/* Creates user/ws with the agents named in body; agent ids (and tokens) in order. */
static void workspace(struct op_primary *p, const char *session, const char *body, int n, char ids[][37],
                      char tokens[][200])
{
    struct t_resp r = t_call(p, "POST", "/api/v2/users/me/workspaces", body, session);
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(r.json, "agent_tokens");
    CHECK(r.status == 201 && cJSON_GetArraySize(toks) == n, "create workspace %s (got %d %s)", body, r.status,
          r.body);
    for (int i = 0; i < n; i++) {
        const cJSON *t = cJSON_GetArrayItem(toks, i);
        snprintf(ids[i], 37, "%s", t_str(t, "agent_id") ? t_str(t, "agent_id") : "");
        snprintf(tokens[i], 200, "%s", t_str(t, "token") ? t_str(t, "token") : "");
    }
    t_free(&r);
}

static void report(struct op_primary *p, const char *token, const char *apps)
{
    char body[2048];
    snprintf(body, sizeof(body), "{\"lifecycle_state\":\"ready\",\"apps\":%s}", apps);
    expect(t_call(p, "POST", "/api/v2/workspaceagents/me/report", body, token), 204, NULL, "agent report");
}

static void setup(struct op_primary *p, struct fix *f)
{
    struct t_resp r = t_call(
        p, "POST", "/api/v2/users/first",
        "{\"username\":\"admin\",\"email\":\"admin@example.com\",\"password\":\"Admin-Pass-1\"}", NULL);
    CHECK(r.status == 201, "first user");
    t_free(&r);
    f->owner = t_login(p, &secrets, "admin", "Admin-Pass-1", NULL);
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"alice\",\"email\":\"alice@example.com\",\"password\":\"Alice-Pass-1\"}",
                  f->owner),
           201, NULL, "create alice");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"bob\",\"email\":\"bob@example.com\",\"password\":\"Bob-Pass-1\"}",
                  f->owner),
           201, NULL, "create bob");
    f->alice = t_login(p, &secrets, "alice", "Alice-Pass-1", NULL);
    f->bob = t_login(p, &secrets, "bob", "Bob-Pass-1", NULL);
    user_id(p, f->alice, f->alice_id);
    user_id(p, f->bob, f->bob_id);
    user_id(p, f->owner, f->owner_id);

    char ids[2][37], toks[2][200];
    workspace(p, f->alice, "{\"name\":\"dev\",\"agents\":[\"main\"]}", 1, ids, toks);
    snprintf(f->dev_agent, 37, "%s", ids[0]);
    report(p, toks[0],
           "[{\"slug\":\"own\",\"url\":\"http://127.0.0.1:8000/\",\"sharing_level\":\"owner\"},"
           "{\"slug\":\"auth\",\"url\":\"http://127.0.0.1:8001\",\"sharing_level\":\"authenticated\"},"
           "{\"slug\":\"org\",\"url\":\"http://127.0.0.1:8002\",\"sharing_level\":\"organization\"},"
           "{\"slug\":\"pub\",\"url\":\"http://127.0.0.1:8003/?folder=/src\",\"sharing_level\":\"public\","
           "\"subdomain\":true}]");
    struct op_db_stmt *st = NULL;
    st = op_db_prepare(p->db, "SELECT apps FROM workspace_agents WHERE id = ?");
    op_db_bind_text(st, 1, f->dev_agent);
    CHECK(op_db_step(st) == OP_DB_ROW && strstr(op_db_col_text(st, 0), "organization"),
          "an agent may report sharing_level organization");
    op_db_finalize(st);

    workspace(p, f->alice, "{\"name\":\"off\",\"agents\":[\"main\"]}", 1, ids, toks);
    snprintf(f->off_agent, 37, "%s", ids[0]);
    workspace(p, f->alice, "{\"name\":\"multi\",\"agents\":[\"a1\",\"a2\"]}", 2, ids, toks);
    snprintf(f->a1, 37, "%s", ids[0]);
    snprintf(f->a2, 37, "%s", ids[1]);
    report(p, toks[0],
           "[{\"slug\":\"x\",\"url\":\"http://127.0.0.1:7001\",\"sharing_level\":\"owner\"},"
           "{\"slug\":\"z\",\"url\":\"http://127.0.0.1:7003\"}]");
    report(p, toks[1],
           "[{\"slug\":\"y\",\"url\":\"http://127.0.0.1:7002\"},{\"slug\":\"z\",\"url\":\"http://"
           "127.0.0.1:7004\"}]");

    /* A proxy, registered with its access URL and wildcard. */
    r = t_call(p, "POST", "/api/v2/workspaceproxies", "{\"name\":\"eu\"}", f->owner);
    proxy_tok = t_str(r.json, "proxy_token") ? strdup(t_str(r.json, "proxy_token")) : strdup("");
    CHECK(r.status == 201 && *proxy_tok, "create proxy eu");
    t_free(&r);
    char body[600];
    snprintf(body, sizeof(body),
             "{\"access_url\":\"" EU_URL "\",\"wildcard_hostname\":\"" EU_WILD "\",\"derp_enabled\":true,"
             "\"derp_only\":false,\"replica_id\":\"aaaaaaaa-1111-4111-8111-111111111111\",\"hostname\":\"h\","
             "\"version\":\"v2.9.0\",\"replica_relay_address\":\"http://10.0.0.1:3001\"}");
    expect(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, proxy_tok), 201, NULL,
           "register proxy eu");
    /* A second one on the primary's IP address, another port; and a deleted one. */
    r = t_call(p, "POST", "/api/v2/workspaceproxies", "{\"name\":\"us\"}", f->owner);
    char *us = strdup(t_str(r.json, "proxy_token") ? t_str(r.json, "proxy_token") : "");
    t_free(&r);
    snprintf(
        body, sizeof(body),
        "{\"access_url\":\"http://127.0.0.1:3001\",\"wildcard_hostname\":\"*.us.example.com\","
        "\"derp_enabled\":true,\"derp_only\":false,\"replica_id\":\"bbbbbbbb-2222-4222-8222-222222222222\","
        "\"hostname\":\"h\",\"version\":\"v2.9.0\",\"replica_relay_address\":\"http://10.0.0.2:3001\"}");
    expect(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, us), 201, NULL,
           "register proxy us");
    free(us);
    r = t_call(p, "POST", "/api/v2/workspaceproxies", "{\"name\":\"gone\"}", f->owner);
    char *gone = strdup(t_str(r.json, "proxy_token") ? t_str(r.json, "proxy_token") : "");
    t_free(&r);
    snprintf(
        body, sizeof(body),
        "{\"access_url\":\"https://gone.example.com\",\"wildcard_hostname\":\"*.gone.example.com\","
        "\"derp_enabled\":true,\"derp_only\":false,\"replica_id\":\"cccccccc-3333-4333-8333-333333333333\","
        "\"hostname\":\"h\",\"version\":\"v2.9.0\",\"replica_relay_address\":\"http://10.0.0.3:3001\"}");
    expect(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, gone), 201, NULL,
           "register proxy gone");
    free(gone);
    expect(t_call(p, "DELETE", "/api/v2/workspaceproxies/gone", NULL, f->owner), 200, NULL,
           "delete proxy gone");
}

/* ---- issuance ---- */

static void test_subdomain_levels(struct op_primary *p, const struct fix *f)
{
    struct app_req a = {.access = "subdomain",
                        .user = "alice",
                        .ws = "dev",
                        .agent = "main",
                        .app_path = "/sub",
                        .app_query = "x=1"};
    const char *slugs[] = {"own", "auth", "org", "pub"};
    const char *urls[] = {"http://127.0.0.1:8000/", "http://127.0.0.1:8001", "http://127.0.0.1:8002",
                          "http://127.0.0.1:8003/?folder=/src"};
    for (int i = 0; i < 4; i++) {
        a.slug = slugs[i];
        char what[128];
        snprintf(what, sizeof(what), "subdomain %s: the owner", slugs[i]);
        expect_token(p, issue(p, &a, f->alice), f->alice_id, f->dev_agent, urls[i], what);
        snprintf(what, sizeof(what), "subdomain %s: a site owner", slugs[i]);
        expect_token(p, issue(p, &a, f->owner), f->owner_id, f->dev_agent, urls[i], what);
        snprintf(what, sizeof(what), "subdomain %s: another member", slugs[i]);
        if (i == 0)
            expect_page(issue(p, &a, f->bob), 404, "Application Not Found", what);
        else
            expect_token(p, issue(p, &a, f->bob), f->bob_id, f->dev_agent, urls[i], what);
        snprintf(what, sizeof(what), "subdomain %s: anonymous", slugs[i]);
        if (i == 3) {
            expect_token(p, issue(p, &a, NULL), "", f->dev_agent, urls[i], what);
        } else {
            char loc[300];
            snprintf(loc, sizeof(loc),
                     AUTH_REDIRECT "https%%3A%%2F%%2F%s--main--dev--alice.eu.example.com%%2Fsub%%3Fx%%3D1",
                     slugs[i]);
            expect_redirect(issue(p, &a, NULL), 303, loc, what);
        }
    }
    a.slug = "own";
    expect_redirect(issue(p, &a, "aaaaaaaaaa-bbbbbbbbbbbbbbbbbbbbbb"), 303,
                    AUTH_REDIRECT "https%3A%2F%2Fown--main--dev--alice.eu.example.com%2Fsub%3Fx%3D1",
                    "an unknown session token counts as anonymous");
    char *long_path = malloc(1501);
    memset(long_path, ' ', 1500);
    long_path[0] = '/';
    long_path[1500] = '\0';
    a.app_path = long_path;
    expect_redirect(issue(p, &a, NULL), 303,
                    AUTH_REDIRECT "https%3A%2F%2Fown--main--dev--alice.eu.example.com%2F",
                    "anonymous at a path too long for the auth redirect: back to the app's base");
    free(long_path);
    a.app_path = "/sub";
    a.base_url = "https://eu.example.com:8443";
    expect_redirect(issue(p, &a, NULL), 303,
                    AUTH_REDIRECT "https%3A%2F%2Fown--main--dev--alice.eu.example.com%3A8443%2Fsub%3Fx%3D1",
                    "a wildcard without a port serves on the proxy's port");
    a.hostname = "*.eu.example.com:9443";
    expect_redirect(issue(p, &a, NULL), 303,
                    AUTH_REDIRECT "https%3A%2F%2Fown--main--dev--alice.eu.example.com%3A9443%2Fsub%3Fx%3D1",
                    "a wildcard with a port keeps it");
    a.base_url = NULL;
    a.hostname = NULL;
    a.prefix = "pre---";
    a.app_path = "";
    a.app_query = "";
    expect_redirect(issue(p, &a, NULL), 303,
                    AUTH_REDIRECT "https%3A%2F%2Fpre---own--main--dev--alice.eu.example.com%2F",
                    "anonymous with a prefix and no path");
}

static void test_path_levels(struct op_primary *p, const struct fix *f)
{
    struct app_req a = {
        .access = "path", .user = "alice", .ws = "dev", .app_path = "/a b", .app_query = "q=1"};
    const char *slugs[] = {"own", "auth", "org", "pub"};
    for (int i = 0; i < 4; i++) {
        a.slug = slugs[i];
        char what[128], loc[300];
        snprintf(what, sizeof(what), "path %s: the owner", slugs[i]);
        expect_token(p, issue(p, &a, f->alice), f->alice_id, f->dev_agent, NULL, what);
        snprintf(what, sizeof(what), "path %s (forced to owner): another member", slugs[i]);
        expect_page(issue(p, &a, f->bob), 404, "Application Not Found", what);
        snprintf(what, sizeof(what), "path %s (forced to owner): a site owner", slugs[i]);
        expect_page(issue(p, &a, f->owner), 404, "Application Not Found", what);
        snprintf(what, sizeof(what), "path %s (forced to owner) on a proxy: anonymous", slugs[i]);
        snprintf(loc, sizeof(loc),
                 AUTH_REDIRECT
                 "https%%3A%%2F%%2Feu.example.com%%2F%%40alice%%2Fdev%%2Fapps%%2F%s%%2Fa%%2520b%%3Fq%%3D1",
                 slugs[i]);
        expect_redirect(issue(p, &a, NULL), 303, loc, what);
    }
    a.slug = "own";
    a.base_url = PRIMARY;
    expect_redirect(issue(p, &a, NULL), 303,
                    "/login?redirect=%2F%40alice%2Fdev%2Fapps%2Fown%2Fa%2520b%3Fq%3D1",
                    "path app on the primary's own host: anonymous goes to /login");
    a.base_url = NULL;

    p->allow_path_app_sharing = true;
    a.slug = "auth";
    expect_token(p, issue(p, &a, f->bob), f->bob_id, f->dev_agent, NULL,
                 "path sharing on: authenticated, member");
    a.slug = "org";
    expect_token(p, issue(p, &a, f->bob), f->bob_id, f->dev_agent, NULL,
                 "path sharing on: organization, member");
    a.slug = "pub";
    expect_token(p, issue(p, &a, NULL), "", f->dev_agent, NULL, "path sharing on: public, anonymous");
    a.slug = "own";
    expect_page(issue(p, &a, f->bob), 404, NULL, "path sharing on: owner level, member");
    expect_page(issue(p, &a, f->owner), 404, NULL,
                "path sharing on: owner level, site owner without the flag");
    a.slug = "auth";
    expect_token(p, issue(p, &a, f->owner), f->owner_id, f->dev_agent, NULL,
                 "path sharing on: authenticated, site owner");
    p->allow_path_app_sharing = false;

    p->allow_path_app_site_owner = true;
    a.slug = "own";
    expect_token(p, issue(p, &a, f->owner), f->owner_id, f->dev_agent, NULL,
                 "site-owner access on: site owner");
    expect_page(issue(p, &a, f->bob), 404, NULL, "site-owner access on: still not another member");
    p->allow_path_app_site_owner = false;

    p->disable_path_apps = true;
    expect_page(issue(p, &a, f->alice), 403, "Path-based applications are disabled", "path apps disabled");
    struct app_req s = {.access = "subdomain", .user = "alice", .ws = "dev", .agent = "main", .slug = "own"};
    expect_token(p, issue(p, &s, f->alice), f->alice_id, f->dev_agent, NULL,
                 "path apps disabled: subdomain ok");
    p->disable_path_apps = false;
}

static void test_ports_and_lookup(struct op_primary *p, const struct fix *f)
{
    struct app_req a = {.access = "subdomain", .user = "alice", .ws = "dev", .agent = "main", .slug = "8080"};
    expect_token(p, issue(p, &a, f->alice), f->alice_id, f->dev_agent, "http://127.0.0.1:8080", "port 8080");
    a.slug = "8443s";
    expect_token(p, issue(p, &a, f->alice), f->alice_id, f->dev_agent, "https://127.0.0.1:8443",
                 "port 8443s");
    expect_page(issue(p, &a, f->bob), 404, NULL, "a port is owner-level: another member");
    expect_token(p, issue(p, &a, f->owner), f->owner_id, f->dev_agent, NULL, "a port: a site owner");
    expect_redirect(issue(p, &a, NULL), 303,
                    AUTH_REDIRECT "https%3A%2F%2F8443s--main--dev--alice.eu.example.com%2F",
                    "a port: anonymous");
    a.slug = "8";
    expect_page(issue(p, &a, f->alice), 400,
                "Application port 8 is not permitted. Coder reserves ports less than 9 for internal use.",
                "port 8");
    a.slug = "0";
    expect_page(issue(p, &a, NULL), 400, "Application port 0 is not permitted.", "port 0");
    struct app_req pp = {.access = "path", .user = "alice", .ws = "dev", .slug = "8080"};
    expect_page(issue(p, &pp, f->alice), 400, "only supported for subdomain", "a port on a path app");
    struct app_req me = {.access = "path", .user = "me", .ws = "dev", .slug = "own"};
    expect(issue(p, &me, f->alice), 400, "Invalid app request.", "@me");
    struct app_req unknown = {
        .access = "subdomain", .user = "alice", .ws = "dev", .agent = "main", .slug = "nope"};
    expect_page(issue(p, &unknown, f->alice), 404, "Application Not Found", "unknown app");
    expect_page(issue(p, &unknown, NULL), 404, "Application Not Found", "unknown app, anonymous");
    unknown.ws = "nows";
    unknown.slug = "own";
    expect_page(issue(p, &unknown, f->alice), 404, NULL, "unknown workspace");
    unknown.ws = "dev";
    unknown.user = "nobody";
    expect_page(issue(p, &unknown, f->alice), 404, NULL, "unknown user");
    unknown.user = "alice";
    unknown.agent = "other";
    expect_page(issue(p, &unknown, f->alice), 404, NULL, "unknown agent");
    unknown.agent = f->dev_agent;
    expect_token(p, issue(p, &unknown, f->alice), f->alice_id, f->dev_agent, NULL, "agent by id");
    unknown.agent = "main";
    unknown.user = f->alice_id;
    expect_token(p, issue(p, &unknown, f->alice), f->alice_id, f->dev_agent, NULL, "user by id");

    /* Agents */
    struct app_req m = {.access = "path", .user = "alice", .ws = "multi", .slug = "x"};
    expect_token(p, issue(p, &m, f->alice), f->alice_id, f->a1, "http://127.0.0.1:7001",
                 "no agent, unique slug");
    m.slug = "y";
    expect_token(p, issue(p, &m, f->alice), f->alice_id, f->a2, "http://127.0.0.1:7002",
                 "no agent, slug of a2");
    m.slug = "z";
    expect_page(issue(p, &m, f->alice), 404, NULL, "no agent, slug on both agents");
    m.agent = "a2";
    expect_token(p, issue(p, &m, f->alice), f->alice_id, f->a2, "http://127.0.0.1:7004",
                 "ws.a2 names the agent");
    struct app_req mp = {
        .access = "subdomain", .user = "alice", .ws = "multi", .agent = "a1", .slug = "9000"};
    expect_token(p, issue(p, &mp, f->alice), f->alice_id, f->a1, "http://127.0.0.1:9000", "port on agent a1");

    /* Offline */
    struct app_req off = {
        .access = "subdomain", .user = "alice", .ws = "off", .agent = "main", .slug = "8080"};
    expect_page(issue(p, &off, f->alice), 502, "Agent offline", "agent never connected");
    expect_redirect(issue(p, &off, NULL), 303,
                    AUTH_REDIRECT "https%3A%2F%2F8080--main--off--alice.eu.example.com%2F",
                    "offline agent, anonymous: sign in first");

    /* Transport: proxy auth, the body, the in-process entry point. */
    a.slug = "8080";
    char *body = issue_body(&a, f->alice);
    expect(t_proxy_call(p, "POST", ISSUE, body, NULL), 401, NULL, "issue without the proxy token");
    expect(t_call(p, "POST", ISSUE, body, f->alice), 401, NULL, "issue with a user session only");
    expect(t_proxy_call(p, "GET", ISSUE, NULL, proxy_tok), 405, NULL, "GET issue");
    expect(t_proxy_call(p, "POST", ISSUE, "{\"app_request\":[]}", proxy_tok), 400, "Invalid app request.",
           "app_request not an object");
    expect(t_proxy_call(p, "POST", ISSUE, "nope", proxy_tok), 400, NULL, "body not JSON");
    cJSON *j = cJSON_Parse(body);
    struct op_app_response resp = {0};
    int rc = op_primary_issue_app_token(p, j, "198.51.100.1", &resp);
    CHECK(rc == 0 && resp.status == 201 && resp.body && strstr(resp.body, "signed_token_str"),
          "op_primary_issue_app_token in-process -> 0, 201");
    free(resp.body);
    cJSON_Delete(j);
    struct app_req nf = {
        .access = "subdomain", .user = "alice", .ws = "dev", .agent = "main", .slug = "nope"};
    char *b2 = issue_body(&nf, f->alice);
    j = cJSON_Parse(b2);
    memset(&resp, 0, sizeof(resp));
    rc = op_primary_issue_app_token(p, j, NULL, &resp);
    CHECK(rc == 404 && resp.status == 404 && resp.content_type && strstr(resp.content_type, "text/html"),
          "op_primary_issue_app_token: not found -> 404 HTML (rc %d)", rc);
    free(resp.body);
    cJSON_Delete(j);
    cJSON_free(b2);
    cJSON_free(body);
}

/* ---- auth redirect ---- */

static struct t_resp auth_redirect(struct op_primary *p, const char *uri_query, const char *session)
{
    char target[3000];
    snprintf(target, sizeof(target), "/api/v2/applications/auth-redirect%s%s",
             uri_query ? "?redirect_uri=" : "", uri_query ? uri_query : "");
    return t_call(p, "GET", target, NULL, session);
}

/* Decrypts the JWE in a Location and returns the API key it carries (static buffer, "" on failure). */
static const char *key_from_location(struct op_primary *p, const char *loc)
{
    static char key[128];
    key[0] = '\0';
    const char *q = strstr(loc, "coder_application_connect_api_key_35e783=");
    if (!q) return key;
    q += strlen("coder_application_connect_api_key_35e783=");
    size_t n = strcspn(q, "&#");
    int64_t kid = 0;
    if (op_jwe_kid(q, n, &kid) != 0) return key;
    struct op_db_stmt *st = NULL;
    st = op_db_prepare(
        p->db, "SELECT secret FROM crypto_keys WHERE feature = 'workspace_apps_api_key' AND sequence = ?");
    op_db_bind_int64(st, 1, kid);
    uint8_t k[32];
    char plain[OP_JWE_MAX_PLAINTEXT];
    if (op_db_step(st) == OP_DB_ROW && op_hex_decode(op_db_col_text(st, 0), 64, k, 32) == 0) {
        int pl = op_jwe_decrypt(q, n, k, plain, sizeof(plain));
        if (pl > 0) op_wsapp_apikey_decode(plain, (size_t)pl, op_wall_ms() / 1000, key, sizeof(key));
    }
    op_db_finalize(st);
    return key;
}

static void expect_refused(struct op_primary *p, const char *uri_query, const char *session, const char *what)
{
    expect(auth_redirect(p, uri_query, session), 400, "Invalid redirect_uri.", what);
}

static void test_auth_redirect(struct op_primary *p, const struct fix *f)
{
    const char *app = "https%3A%2F%2Feu.example.com%2F%40alice%2Fdev%2Fapps%2Fown%2F%3Fa%3Db";
    struct t_resp r = auth_redirect(p, app, NULL);
    expect_redirect(
        r, 303,
        "/login?redirect=%2Fapi%2Fv2%2Fapplications%2Fauth-redirect%3Fredirect_uri%3Dhttps%253A%252F%252Feu"
        ".example.com%252F%2540alice%252Fdev%252Fapps%252Fown%252F%253Fa%253Db",
        "auth-redirect without a session -> login, coming back");
    char q[600];
    snprintf(q, sizeof(q), "%s&coder_session_token=%s", app, f->alice);
    r = auth_redirect(p, q, NULL);
    CHECK(r.status == 303 && starts(t_header(&r, "Location"), "/login?redirect="),
          "a session token in the query is not taken (no session fixation through a link)");
    t_free(&r);
    expect(auth_redirect(p, NULL, f->alice), 400, "Missing redirect_uri query parameter.", "no redirect_uri");
    expect(auth_redirect(p, "", f->alice), 400, "Missing redirect_uri query parameter.",
           "empty redirect_uri");
    expect_refused(p, "http%3A%2F%2F127.0.0.1%3A3000%2F%40alice%2Fdev%2Fapps%2Fown%2F", f->alice,
                   "the primary's access URL host");
    expect_refused(p, "https%3A%2F%2Fevil.com%2F", f->alice, "an unrelated host");
    expect_refused(p, "https%3A%2F%2Feu.example.com%40evil.com%2F", f->alice,
                   "userinfo eu.example.com@evil.com");
    expect_refused(p, "https%3A%2F%2Fevil.com%40eu.example.com%2F", f->alice,
                   "userinfo evil.com@eu.example.com");
    expect_refused(p, "https%3A%2F%2Feu.example.com%5C%40evil.com%2F", f->alice, "a backslash");
    expect_refused(p, "https%3A%2F%5Ceu.example.com%2F", f->alice, "a backslash after the scheme");
    expect_refused(p, "%2F%2Fevil.com%2F", f->alice, "//evil.com");
    expect_refused(p, "%2F%2Feu.example.com%2F", f->alice, "//eu.example.com (no scheme)");
    expect_refused(p, "https%3A%2F%2Feu%252eexample.com%2F", f->alice, "an encoded dot eu%2eexample.com");
    expect_refused(p, "https%3A%2F%2Feu.example.com.%2F", f->alice, "a trailing dot");
    expect_refused(p, "https%3A%2F%2Feu..example.com%2F", f->alice, "an empty label");
    expect_refused(p, "https%3A%2F%2Feu.example.com%3A99999%2F", f->alice, "a port out of range");
    expect_refused(p, "https%3A%2F%2Feu.example.com%3A8443%2F", f->alice, "the proxy host with another port");
    expect_refused(p, "https%3A%2F%2Fa.b.eu.example.com%2F", f->alice, "two labels in the proxy wildcard");
    expect_refused(p, "https%3A%2F%2Fx.apps.example.com%3A4000%2F", f->alice, "primary wildcard, other port");
    expect_refused(p, "javascript%3Aalert(1)", f->alice, "javascript:");
    expect_refused(p, "https%3A%2F%2Feu.example.com%0D%0AX%3A1%2F", f->alice, "CR LF");
    expect_refused(p, "ftp%3A%2F%2Feu.example.com%2F", f->alice, "ftp:");
    r = auth_redirect(p, app, "aaaaaaaaaa-bbbbbbbbbbbbbbbbbbbbbb");
    CHECK(r.status == 303 && strncmp(t_header(&r, "Location"), "/login?redirect=", 16) == 0,
          "an unknown session -> login");
    t_free(&r);

    /* Allowed: the proxy access URL (scheme forced), its wildcard, the primary wildcard. */
    r = auth_redirect(p, app, f->alice);
    const char *loc = t_header(&r, "Location");
    static const char want[] =
        "https://eu.example.com/@alice/dev/apps/own/?a=b&coder_application_connect_api_key_35e783=";
    CHECK(r.status == 303 && strncmp(loc, want, sizeof(want) - 1) == 0,
          "proxy access URL -> 303 back with the key (%d %s)", r.status, loc);
    char key[128];
    snprintf(key, sizeof(key), "%s", key_from_location(p, loc));
    t_free(&r);
    CHECK(strlen(key) == 33 && key[10] == '-', "the JWE decrypts to an API key <10>-<22> (%s)", key);
    t_remember(&secrets, key + 11);

    r = auth_redirect(p, "http%3A%2F%2Feu.example.com%2Fx%23frag", f->alice);
    loc = t_header(&r, "Location");
    CHECK(r.status == 303 &&
              starts(loc, "https://eu.example.com/x?coder_application_connect_api_key_35e783=") &&
              strstr(loc, "#frag") && strlen(strstr(loc, "#frag")) == 5,
          "http:// redirect_uri for an https proxy -> scheme forced to https, fragment kept last (%s)", loc);
    t_free(&r);
    r = auth_redirect(p, "https%3A%2F%2Fpub--main--dev--alice.eu.example.com", f->alice);
    loc = t_header(&r, "Location");
    CHECK(
        r.status == 303 &&
            starts(loc,
                   "https://pub--main--dev--alice.eu.example.com/?coder_application_connect_api_key_35e783="),
        "proxy wildcard host -> 303 (%s)", loc);
    t_free(&r);
    r = auth_redirect(p, "https%3A%2F%2Fown--main--dev--alice.apps.example.com%3A3000%2Fp%3Fk%3Dv%26",
                      f->alice);
    loc = t_header(&r, "Location");
    CHECK(r.status == 303 && starts(loc, "http://own--main--dev--alice.apps.example.com:3000/"
                                         "p?k=v&coder_application_connect_api_key_35e783="),
          "primary wildcard host -> 303, scheme forced to http (%s)", loc);
    t_free(&r);

    r = auth_redirect(p, "http%3A%2F%2F127.0.0.1%3A3001%2Fx", f->alice);
    loc = t_header(&r, "Location");
    CHECK(r.status == 303 && starts(loc, "http://127.0.0.1:3001/x?coder_application_connect_api_key_35e783="),
          "a proxy on the primary's address but another port -> 303 (%s)", loc);
    t_free(&r);
    r = auth_redirect(p, "https%3A%2F%2Fx--a--b--c.us.example.com%3A3001%2F", f->alice);
    loc = t_header(&r, "Location");
    CHECK(r.status == 303 &&
              starts(loc, "http://x--a--b--c.us.example.com:3001/?coder_application_connect_api_key_35e783="),
          "a proxy wildcard without a port, on the proxy's port -> 303, scheme forced to http (%s)", loc);
    t_free(&r);
    expect_refused(p, "http%3A%2F%2Fx--a--b--c.us.example.com%3A3002%2F", f->alice,
                   "proxy wildcard, another port");
    expect_refused(p, "https%3A%2F%2Fgone.example.com%2F", f->alice, "a deleted proxy's access URL");
    expect_refused(p, "https%3A%2F%2Fx.gone.example.com%2F", f->alice, "a deleted proxy's wildcard");

    /* The key: application_connect scope, issuance only. */
    expect(t_call(p, "GET", "/api/v2/users/me", NULL, key), 401, NULL,
           "the app-connect key on /api/v2/users/me");
    expect(t_call(p, "GET", "/api/v2/workspaces", NULL, key), 401, NULL,
           "the app-connect key on /api/v2/workspaces");
    char ck[200];
    snprintf(ck, sizeof(ck), "Cookie: coder_session_token=%s", key);
    const char *hdrs[] = {ck, NULL};
    r = t_call_h(p, "GET", "/api/v2/users/me", NULL, hdrs);
    CHECK(r.status == 401, "the app-connect key as the session cookie -> 401");
    t_free(&r);
    struct app_req a = {.access = "subdomain", .user = "alice", .ws = "dev", .agent = "main", .slug = "own"};
    expect_token(p, issue(p, &a, key), f->alice_id, f->dev_agent, NULL,
                 "the app-connect key issues app tokens");
    r = auth_redirect(p, app, key);
    CHECK(r.status == 303 && strncmp(t_header(&r, "Location"), "/login?redirect=", 16) == 0,
          "the app-connect key is no session for the auth redirect -> login");
    t_free(&r);
    struct op_db_stmt *st = NULL;
    st = op_db_prepare(
        p->db, "SELECT k.scope, k.expires_at <= s.expires_at FROM api_keys k, api_keys s WHERE k.id = ?"
               " AND s.id = ?");
    op_db_bind_textn(st, 1, key, 10);
    op_db_bind_textn(st, 2, f->alice, 10);
    CHECK(op_db_step(st) == OP_DB_ROW && t_streq(op_db_col_text(st, 0), "application_connect") &&
              (int)op_db_col_int64(st, 1) == 1,
          "the key is stored with scope application_connect and expires no later than the session");
    op_db_finalize(st);
}

/* ---- login ---- */

static void test_login(struct op_primary *p)
{
    struct t_resp r = t_call(p, "GET", "/login?redirect=%2F%40alice%2Fdev%2Fapps%2Fown%2F", NULL, NULL);
    CHECK(r.status == 200 && r.body && strstr(r.body, "<form method=\"post\" action=\"/login\">") &&
              strstr(r.body, "value=\"/@alice/dev/apps/own/\""),
          "GET /login -> 200 form carrying the redirect");
    t_free(&r);
    r = t_call(p, "GET", "/login?redirect=%22%3E%3Cscript%3E", NULL, NULL);
    CHECK(r.status == 200 && r.body && !strstr(r.body, "<script>"),
          "GET /login: a hostile redirect is not echoed");
    t_free(&r);
    const char *form_hdr[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    r = t_call_h(
        p, "POST", "/login",
        "email=alice%40example.com&password=Alice-Pass-1&redirect=%2F%40alice%2Fdev%2Fapps%2Fown%2F%3Fa%3D1",
        form_hdr);
    char cookie[300];
    snprintf(cookie, sizeof(cookie), "%s", t_header(&r, "Set-Cookie"));
    char tok[64] = "";
    if (strncmp(cookie, "coder_session_token=", 20) == 0) snprintf(tok, sizeof(tok), "%.33s", cookie + 20);
    CHECK(r.status == 303 && t_streq(t_header(&r, "Location"), "/@alice/dev/apps/own/?a=1") &&
              strlen(tok) == 33 && strstr(cookie, "HttpOnly") && strstr(cookie, "SameSite=Lax") &&
              strstr(cookie, "Path=/") && !strstr(cookie, "Secure"),
          "POST /login -> 303 to the local redirect, Set-Cookie coder_session_token HttpOnly SameSite=Lax "
          "Path=/ (%d %s)",
          r.status, cookie);
    t_free(&r);
    t_remember(&secrets, tok + 11);
    char ck[200];
    snprintf(ck, sizeof(ck), "Cookie: theme=dark; coder_session_token=%s", tok);
    const char *hdrs[] = {ck, NULL};
    r = t_call_h(p, "GET", "/api/v2/users/me", NULL, hdrs);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "username"), "alice"), "the login cookie is a session");
    t_free(&r);
    const char *bad_redirects[] = {"%2F%2Fevil.com", "https%3A%2F%2Fevil.com", "%2F%5Cevil.com", "evil",
                                   "%2Fok%0D%0ASet-Cookie%3A+x%3D1"};
    for (size_t i = 0; i < OP_ARRAY_LEN(bad_redirects); i++) {
        char body[256];
        snprintf(body, sizeof(body), "username=alice&password=Alice-Pass-1&redirect=%s", bad_redirects[i]);
        r = t_call_h(p, "POST", "/login", body, form_hdr);
        CHECK(r.status == 303 && t_streq(t_header(&r, "Location"), "/"),
              "POST /login redirect=%s -> Location /", bad_redirects[i]);
        t_free(&r);
    }
    r = t_call_h(p, "POST", "/login", "email=alice&password=wrong&redirect=%2Fx", form_hdr);
    CHECK(r.status == 401 && r.body && strstr(r.body, "Incorrect email or password.") &&
              strstr(r.body, "<form") && strstr(r.body, "value=\"/x\"") && !*t_header(&r, "Set-Cookie"),
          "POST /login with a wrong password -> 401 page with the form again, no cookie");
    t_free(&r);
    r = t_call_h(p, "POST", "/login", "email=&password=", form_hdr);
    CHECK(r.status == 400 && r.body && strstr(r.body, "<form"),
          "POST /login without fields -> 400 with the form");
    t_free(&r);
    expect(t_call(p, "PUT", "/login", NULL, NULL), 405, NULL, "PUT /login");
    r = t_call_h(p, "GET", "/login?redirect=%2F%40alice%2Fdev%2Fapps%2Fown%2F", NULL, hdrs);
    expect_redirect(r, 303, "/@alice/dev/apps/own/", "GET /login already signed in -> 303 to the redirect");

    /* Over TLS the cookie is Secure. */
    struct op_app_request req = {0};
    const char *body = "username=alice&password=Alice-Pass-1";
    req.method = op_span("POST", 4);
    req.path = op_span("/login", 6);
    req.host = op_span("127.0.0.1:3000", 14);
    req.body = op_span(body, strlen(body));
    req.remote_ip = "127.0.0.1";
    req.tls = true;
    struct op_app_response resp = {0};
    op_primary_handle(p, &req, &resp);
    resp.headers[resp.headers_len] = '\0';
    char *sc = strstr(resp.headers, "Set-Cookie: coder_session_token=");
    CHECK(resp.status == 303 && sc && strstr(sc, "; Secure"), "POST /login over TLS -> the cookie is Secure");
    if (sc) {
        char t2[40];
        snprintf(t2, sizeof(t2), "%.22s", sc + strlen("Set-Cookie: coder_session_token=") + 11);
        t_remember(&secrets, t2);
    }
    free(resp.body);

    bool set = false;
    char *api = t_login(p, &secrets, "bob@example.com", "Bob-Pass-1", &set);
    CHECK(set, "POST /api/v2/users/login sets the session cookie too");
    free(api);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/outpost-primary-apps-XXXXXX");
    struct op_primary_config cfg = {.access_url = PRIMARY, .wildcard_access_url = "*.apps.example.com"};
    struct op_primary *p = t_open(dir, &cfg);
    if (!p) return 1;
    struct fix f = {0};
    setup(p, &f);
    test_subdomain_levels(p, &f);
    test_path_levels(p, &f);
    test_ports_and_lookup(p, &f);
    test_auth_redirect(p, &f);
    test_login(p);
    op_primary_close(p);
    int hits = t_plaintext_hits(&secrets, dir);
    CHECK(hits == 0, "no session or app-connect key secret is stored in plaintext (%d secrets)", secrets.n);
    free(f.owner);
    free(f.alice);
    free(f.bob);
    free(proxy_tok);
    t_rm_rf(dir);
    return check_report("primary workspace apps");
}
