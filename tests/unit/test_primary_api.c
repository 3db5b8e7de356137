/*
 * The primary's HTTP API, driven through op_primary_handle with a real SQLite file in a temp dir:
 * every endpoint and error path, token hashing (no plaintext token in the database files), and a
 * close/open restart that keeps users, proxies, keys and the deployment identity.
 */
#include <ctype.h>
#include <ftw.h>
#include <sys/stat.h>
#include "db/db.h"
#include <unistd.h>

#include "primary/primary_int.h"
#include "tests/unit/primary_test_util.h"

static char dir[256];
static struct t_secrets secrets;

static void remember(const char *s)
{
    t_remember(&secrets, s);
}

static void check_no_plaintext(const char *when)
{
    int hits = t_plaintext_hits(&secrets, dir);
    CHECK(hits == 0 && secrets.n >= 6,
          "%s: none of %d secrets (tokens, password) appears in the database files", when, secrets.n);
}

static struct op_primary *open_primary(void)
{
    struct op_primary_config cfg = {0};
    static bool opened; /* the second open is a restart: same data */
    cfg.data_dir = dir;
    cfg.postgres_url = t_pg_url(dir, !opened);
    opened = true;
    cfg.access_url = "http://127.0.0.1:3000/";
    cfg.wildcard_access_url = "*.apps.example.com";
    cfg.kdf_iterations = 2000;
    struct op_primary *p = NULL;
    char err[256] = "";
    int rc = op_primary_open(&cfg, &p, err, sizeof(err));
    CHECK(rc == 0 && p, "open primary in %s (%s)", dir, err);
    if (!p) exit(1);
    return p;
}

static void expect_error(struct t_resp r, int status, const char *message, const char *detail,
                         const char *what)
{
    bool ok = r.status == status && t_streq(t_str(r.json, "message"), message) &&
              (detail ? t_streq(t_str(r.json, "detail"), detail) : true);
    CHECK(ok, "%s -> %d \"%s\"%s%s (got %d %s)", what, status, message, detail ? " / " : "",
          detail ? detail : "", r.status, r.body ? r.body : "");
    t_free(&r);
}

static char *login(struct op_primary *p, const char *who, const char *password)
{
    bool cookie = false;
    char *out = t_login(p, &secrets, who, password, &cookie);
    CHECK(cookie, "login sets the session cookie");
    return out;
}

static void test_users(struct op_primary *p, char **owner_token)
{
    struct t_resp r = t_call(p, "GET", "/api/v2/buildinfo", NULL, NULL);
    CHECK(r.status == 200 && t_str(r.json, "version") &&
              t_streq(t_str(r.json, "dashboard_url"), "http://127.0.0.1:3000") &&
              cJSON_IsFalse(cJSON_GetObjectItem(r.json, "workspace_proxy")),
          "GET buildinfo -> 200 with version, dashboard_url, workspace_proxy=false");
    CHECK(strstr(r.headers, "X-Coder-Build-Version:") != NULL, "responses carry X-Coder-Build-Version");
    t_free(&r);

    expect_error(t_call(p, "GET", "/api/v2/users/first", NULL, NULL), 404,
                 "The initial user has not been created!", NULL, "GET users/first on a fresh primary");
    expect_error(t_call(p, "GET", "/api/v2/users/me", NULL, NULL), 401,
                 "You are signed out or your session has expired. Please sign in again to continue.",
                 "Cookie \"coder_session_token\" or query parameter must be provided.",
                 "GET users/me without a token");
    expect_error(t_call(p, "POST", "/api/v2/users/first", "{not json", NULL), 400,
                 "Request body must be valid JSON.", NULL, "POST users/first with broken JSON");
    expect_error(
        t_call(p, "POST", "/api/v2/users/first", "{\"email\":\"a@b.c\",\"password\":\"secret123\"}", NULL),
        400, "Validation failed.", NULL, "POST users/first without username");
    expect_error(t_call(p, "POST", "/api/v2/users/first",
                        "{\"username\":\"bad name\",\"email\":\"a@b.c\",\"password\":\"secret123\"}", NULL),
                 400, "Validation failed.", NULL, "POST users/first with an invalid username");
    expect_error(t_call(p, "POST", "/api/v2/users/first",
                        "{\"username\":\"admin\",\"email\":\"nope\",\"password\":\"secret123\"}", NULL),
                 400, "Validation failed.", NULL, "POST users/first with an invalid email");
    expect_error(t_call(p, "POST", "/api/v2/users/first",
                        "{\"username\":\"admin\",\"email\":\"admin@example.com\",\"password\":\"abc\"}",
                        NULL),
                 400, "Password not strong enough!", NULL, "POST users/first with a short password");
    expect_error(t_call(p, "POST", "/api/v2/users/first", "{\"username\":7}", NULL), 400,
                 "Request body must be valid JSON.", NULL, "POST users/first with a wrongly typed field");
    r = t_call(p, "POST", "/api/v2/users/first",
               "{\"username\":\"admin\",\"email\":\"admin@example.com\",\"password\":\"hunter2-Correct\"}",
               NULL);
    CHECK(r.status == 201 && t_str(r.json, "user_id") && t_str(r.json, "organization_id"),
          "POST users/first -> 201 user_id, organization_id");
    t_free(&r);
    remember("hunter2-Correct");
    expect_error(
        t_call(p, "POST", "/api/v2/users/first",
               "{\"username\":\"admin2\",\"email\":\"admin2@example.com\",\"password\":\"hunter2-Correct\"}",
               NULL),
        409, "The initial user has already been created.", NULL, "second POST users/first");
    expect_error(t_call(p, "GET", "/api/v2/users/first", NULL, NULL), 200,
                 "The initial user has already been created!", NULL, "GET users/first after setup");

    expect_error(t_call(p, "POST", "/api/v2/users/login",
                        "{\"email\":\"admin@example.com\",\"password\":\"wrong\"}", NULL),
                 401, "Incorrect email or password.", NULL, "login with a wrong password");
    expect_error(t_call(p, "POST", "/api/v2/users/login",
                        "{\"email\":\"ghost@example.com\",\"password\":\"x\"}", NULL),
                 401, "Incorrect email or password.", NULL, "login as an unknown user");
    expect_error(t_call(p, "POST", "/api/v2/users/login", "{\"email\":\"admin@example.com\"}", NULL), 400,
                 "Validation failed.", NULL, "login without a password");
    *owner_token = login(p, "admin@example.com", "hunter2-Correct");
    char *by_name = login(p, "ADMIN", "hunter2-Correct");

    r = t_call(p, "GET", "/api/v2/users/me", NULL, *owner_token);
    const cJSON *roles = cJSON_GetObjectItem(r.json, "roles");
    CHECK(r.status == 200 && t_streq(t_str(r.json, "username"), "admin") &&
              t_streq(t_str(cJSON_GetArrayItem(roles, 0), "name"), "owner"),
          "GET users/me with the header -> admin, role owner");
    t_free(&r);
    char cookie[200];
    snprintf(cookie, sizeof(cookie), "Cookie: theme=dark; coder_session_token=%s", by_name);
    const char *hdrs[] = {cookie, NULL};
    r = t_call_h(p, "GET", "/api/v2/users/me", NULL, hdrs);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "email"), "admin@example.com"),
          "GET users/me with the cookie");
    t_free(&r);
    char q[200];
    snprintf(q, sizeof(q), "/api/v2/users/me?coder_session_token=%s", by_name);
    r = t_call(p, "GET", q, NULL, NULL);
    CHECK(r.status == 200, "GET users/me with the query parameter");
    t_free(&r);

    char bad[64];
    snprintf(bad, sizeof(bad), "%s", *owner_token);
    bad[20] = bad[20] == 'a' ? 'b' : 'a';
    expect_error(t_call(p, "GET", "/api/v2/users/me", NULL, bad), 401,
                 "You are signed out or your session has expired. Please sign in again to continue.",
                 "API key secret is invalid.", "GET users/me with a wrong secret");
    expect_error(t_call(p, "GET", "/api/v2/users/me", NULL, "AAAAAAAAAA-BBBBBBBBBBBBBBBBBBBBBB"), 401,
                 "You are signed out or your session has expired. Please sign in again to continue.",
                 "API key is invalid.", "GET users/me with an unknown key id");
    expect_error(t_call(p, "GET", "/api/v2/users/me", NULL, "garbage"), 401,
                 "You are signed out or your session has expired. Please sign in again to continue.", NULL,
                 "GET users/me with a malformed token");

    r = t_call(p, "POST", "/api/v2/users/logout", NULL, by_name);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "message"), "Logged out!"),
          "POST users/logout -> 200 Logged out!");
    t_free(&r);
    expect_error(t_call(p, "GET", "/api/v2/users/me", NULL, by_name), 401,
                 "You are signed out or your session has expired. Please sign in again to continue.",
                 "API key is invalid.", "the logged-out token is refused");
    free(by_name);
}

/* Adds a member (non-owner) user straight into the database and logs in as them. */
static char *make_member(struct op_primary *p)
{
    char hashed[200];
    op_password_hash("member-pass", 1000, hashed, sizeof(hashed));
    struct op_db_stmt *st = NULL;
    st = op_db_prepare(
        p->db, "INSERT INTO users (id, username, email, hashed_password, roles, created_at, updated_at,"
               " last_seen_at) VALUES ('11111111-2222-4333-8444-555555555555', 'bob', 'bob@example.com', ?,"
               " 'member', 0, 0, 0)");
    op_db_bind_text(st, 1, hashed);
    CHECK(op_db_step(st) == OP_DB_DONE, "insert a member user");
    op_db_finalize(st);
    remember("member-pass");
    return login(p, "bob", "member-pass");
}

static char *create_proxy(struct op_primary *p, const char *tok, const char *name, char *id_out)
{
    char body[200];
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"display_name\":\"\",\"icon\":\"/emojis/1f5fa.png\"}",
             name);
    struct t_resp r = t_call(p, "POST", "/api/v2/workspaceproxies", body, tok);
    const char *token = t_str(r.json, "proxy_token");
    const char *id = t_str(r.json, "proxy.id");
    bool fmt = token && strlen(token) == 36 + 1 + 64 && token[36] == ':' && op_uuid_valid(token, 36) &&
               strncmp(token, id ? id : "", 36) == 0;
    for (int i = 37; fmt && i < 101; i++)
        fmt = isalnum((unsigned char)token[i]) != 0;
    CHECK(
        r.status == 201 && fmt && t_streq(t_str(r.json, "proxy.status.status"), "unregistered") &&
            t_streq(t_str(r.json, "proxy.display_name"), name) &&
            t_streq(t_str(r.json, "proxy.path_app_url"), ""),
        "create proxy %s -> 201, token <uuid>:<64 alnum>, status unregistered, display name defaults to name",
        name);
    char *out = token ? strdup(token) : NULL;
    if (id_out) snprintf(id_out, 37, "%s", id ? id : "");
    remember(out ? out + 37 : NULL);
    t_free(&r);
    return out;
}

static void test_proxies(struct op_primary *p, const char *tok, const char *member)
{
    expect_error(t_call(p, "GET", "/api/v2/workspaceproxies", NULL, NULL), 401,
                 "You are signed out or your session has expired. Please sign in again to continue.", NULL,
                 "list proxies unauthenticated");
    expect_error(t_call(p, "GET", "/api/v2/workspaceproxies", NULL, member), 403,
                 "You are not authorized to use this endpoint.", NULL, "list proxies as a member");
    expect_error(t_call(p, "POST", "/api/v2/workspaceproxies", "{\"name\":\"x\"}", member), 403,
                 "You are not authorized to use this endpoint.", NULL, "create a proxy as a member");

    struct t_resp r = t_call(p, "GET", "/api/v2/workspaceproxies", NULL, tok);
    const cJSON *regions = cJSON_GetObjectItem(r.json, "regions");
    const cJSON *prim = cJSON_GetArrayItem(regions, 0);
    CHECK(r.status == 200 && cJSON_GetArraySize(regions) == 1 && t_streq(t_str(prim, "name"), "primary") &&
              t_streq(t_str(prim, "status.status"), "ok") &&
              t_streq(t_str(prim, "display_name"), "Default") &&
              t_streq(t_str(prim, "icon_url"), "/emojis/1f3e1.png") &&
              t_streq(t_str(prim, "path_app_url"), "http://127.0.0.1:3000") &&
              t_streq(t_str(prim, "wildcard_hostname"), "*.apps.example.com:3000") &&
              cJSON_IsTrue(cJSON_GetObjectItem(prim, "healthy")),
          "list -> only the synthetic primary: ok, Default, access URL, wildcard with the port");
    char deployment[40];
    snprintf(deployment, sizeof(deployment), "%s", t_str(prim, "id") ? t_str(prim, "id") : "");
    t_free(&r);

    expect_error(t_call(p, "POST", "/api/v2/workspaceproxies", "{}", tok), 400, "Validation failed.", NULL,
                 "create without a name");
    r = t_call(p, "POST", "/api/v2/workspaceproxies", "{\"name\":\"Primary\"}", tok);
    const cJSON *v0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "validations"), 0);
    CHECK(r.status == 400 &&
              t_streq(t_str(r.json, "message"), "The name \"primary\" is reserved for the primary region.") &&
              t_streq(t_str(v0, "field"), "name") && t_streq(t_str(v0, "detail"), "Reserved name"),
          "create 'Primary' -> 400 reserved name with validation");
    t_free(&r);
    expect_error(t_call(p, "POST", "/api/v2/workspaceproxies", "{\"name\":\"no spaces!\"}", tok), 400,
                 "Validation failed.", NULL, "create with an invalid name");
    expect_error(t_call(p, "POST", "/api/v2/workspaceproxies", "[1,2]", tok), 400,
                 "Request body must be valid JSON.", NULL, "create with a JSON array body");

    char eu_id[40], us_id[40];
    char *eu = create_proxy(p, tok, "eu", eu_id);
    char *us = create_proxy(p, tok, "us-east", us_id);
    expect_error(t_call(p, "POST", "/api/v2/workspaceproxies", "{\"name\":\"EU\"}", tok), 409,
                 "Workspace proxy with name \"EU\" already exists.", NULL,
                 "create a duplicate name (case-insensitive)");

    r = t_call(p, "GET", "/api/v2/workspaceproxies", NULL, tok);
    regions = cJSON_GetObjectItem(r.json, "regions");
    CHECK(
        cJSON_GetArraySize(regions) == 3 &&
            t_streq(t_str(cJSON_GetArrayItem(regions, 0), "name"), "primary") &&
            t_streq(t_str(cJSON_GetArrayItem(regions, 1), "name"), "eu") &&
            t_streq(t_str(cJSON_GetArrayItem(regions, 1), "status.status"), "unregistered") &&
            cJSON_IsArray(cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(regions, 1), "status"), "report"),
                "errors")),
        "list -> primary first, then eu (unregistered, errors array not null), us-east");
    t_free(&r);

    char path[200];
    snprintf(path, sizeof(path), "/api/v2/workspaceproxies/%s", eu_id);
    r = t_call(p, "GET", path, NULL, tok);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "name"), "eu"), "get by id");
    t_free(&r);
    r = t_call(p, "GET", "/api/v2/workspaceproxies/EU", NULL, tok);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "id"), eu_id), "get by name (case-insensitive)");
    t_free(&r);
    r = t_call(p, "GET", "/api/v2/workspaceproxies/primary", NULL, tok);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "id"), deployment), "get 'primary' -> deployment id");
    t_free(&r);
    snprintf(path, sizeof(path), "/api/v2/workspaceproxies/%s", deployment);
    r = t_call(p, "GET", path, NULL, tok);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "name"), "primary"), "get by deployment id -> primary");
    t_free(&r);
    expect_error(t_call(p, "GET", "/api/v2/workspaceproxies/nope", NULL, tok), 404,
                 "Resource not found or you do not have access to this resource", NULL,
                 "get an unknown proxy");

    /* patch */
    r = t_call(p, "PATCH", "/api/v2/workspaceproxies/eu",
               "{\"display_name\":\"Europe\",\"icon\":\"/emojis/1f1ea.png\"}", tok);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "proxy.display_name"), "Europe") &&
              t_streq(t_str(r.json, "proxy.icon_url"), "/emojis/1f1ea.png") &&
              t_streq(t_str(r.json, "proxy_token"), ""),
          "patch display name and icon -> 200, empty proxy_token");
    t_free(&r);
    expect_error(t_call(p, "PATCH", "/api/v2/workspaceproxies/eu", "{\"name\":\"us-east\"}", tok), 409,
                 "Workspace proxy with name \"us-east\" already exists.", NULL,
                 "rename onto an existing name");
    expect_error(t_call(p, "PATCH", "/api/v2/workspaceproxies/eu", "{\"name\":\"primary\"}", tok), 400,
                 "The name \"primary\" is reserved for the primary region.", NULL, "rename to primary");
    expect_error(t_call(p, "PATCH", "/api/v2/workspaceproxies/primary", "{\"name\":\"main\"}", tok), 400,
                 "Cannot update name of default primary proxy, did you mean to update the 'display name'?",
                 NULL, "rename the primary");
    expect_error(t_call(p, "PATCH", "/api/v2/workspaceproxies/primary", "{}", tok), 400,
                 "No update arguments provided. Nothing to do.", NULL, "patch the primary with nothing");
    r = t_call(p, "PATCH", "/api/v2/workspaceproxies/primary", "{\"display_name\":\"HQ\"}", tok);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "proxy.display_name"), "HQ") &&
              t_streq(t_str(r.json, "proxy.icon_url"), "/emojis/1f3e1.png"),
          "patch the primary's display name (icon kept)");
    t_free(&r);

    /* proxy token authentication */
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "{}", NULL), 401,
                 "Missing required external proxy token", NULL, "register without a token");
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "{}", "abc"), 401,
                 "Invalid external proxy token", NULL, "token without a colon");
    char tokbuf[200];
    snprintf(tokbuf, sizeof(tokbuf), "%s:extra", eu);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "{}", tokbuf), 401,
                 "Invalid external proxy token", NULL, "token with two colons");
    snprintf(tokbuf, sizeof(tokbuf), "%.36s:short", eu);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "{}", tokbuf), 401,
                 "Invalid external proxy token", NULL, "secret not 64 characters");
    snprintf(tokbuf, sizeof(tokbuf), "not-a-uuid:%s", eu + 37);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "{}", tokbuf), 401,
                 "Invalid external proxy token", NULL, "id not a UUID");
    snprintf(tokbuf, sizeof(tokbuf), "12345678-1234-4234-8234-123456789abc:%s", eu + 37);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "{}", tokbuf), 401,
                 "Invalid external proxy token", "Proxy not found.", "unknown proxy id");
    snprintf(tokbuf, sizeof(tokbuf), "%.36s:%s", eu, us + 37);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "{}", tokbuf), 401,
                 "Invalid external proxy token", "Invalid proxy token secret.", "wrong secret");
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "{}", tok), 401,
                 "Invalid external proxy token", NULL, "a session token is not a proxy token");

    /* register */
    const char *reg_fmt =
        "{\"access_url\":\"%s\",\"wildcard_hostname\":\"%s\",\"derp_enabled\":%s,"
        "\"derp_only\":%s,\"replica_id\":\"%s\",\"hostname\":\"host-a\",\"version\":\"v2.9.0\","
        "\"replica_relay_address\":\"http://10.0.0.1:3001\"}";
    const char *rep1 = "aaaaaaaa-1111-4111-8111-111111111111", *rep2 = "bbbbbbbb-2222-4222-8222-222222222222";
    char body[700];
    snprintf(body, sizeof(body), reg_fmt, "ftp://eu.example.com", "", "true", "false", rep1);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, eu), 400,
                 "URL is invalid.", NULL, "register with an ftp URL");
    snprintf(body, sizeof(body), reg_fmt, "https://eu.example.com/sub", "", "true", "false", rep1);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, eu), 400,
                 "URL is invalid.", NULL, "register with a path in the URL");
    snprintf(body, sizeof(body), reg_fmt, "https://eu.example.com", "eu.example.com", "true", "false", rep1);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, eu), 400,
                 "Wildcard URL is invalid.", NULL, "register with a wildcard lacking '*'");
    snprintf(body, sizeof(body), reg_fmt, "https://eu.example.com", "*.a*.example.com", "true", "false",
             rep1);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, eu), 400,
                 "Wildcard URL is invalid.", NULL, "register with two '*'");
    snprintf(body, sizeof(body), reg_fmt, "https://eu.example.com", "", "false", "true", rep1);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, eu), 400,
                 "DerpOnly cannot be true when DerpEnabled is false.", NULL,
                 "register derp_only without derp");
    snprintf(body, sizeof(body), reg_fmt, "https://eu.example.com", "", "true", "false",
             "00000000-0000-0000-0000-000000000000");
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, eu), 400,
                 "Replica ID is invalid.", NULL, "register with the nil replica id");
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "not json", eu), 400,
                 "Request body must be valid JSON.", NULL, "register with a broken body");

    snprintf(body, sizeof(body), reg_fmt, "https://eu.example.com/", "*--apps.eu.example.com:8443", "true",
             "false", rep1);
    r = t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, eu);
    const char *mesh = t_str(r.json, "derp_mesh_key");
    const cJSON *rid = cJSON_GetObjectItem(r.json, "derp_region_id");
    CHECK(r.status == 201 && mesh && strlen(mesh) == 64 && cJSON_IsNumber(rid) && rid->valueint == 10001 &&
              cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "sibling_replicas")) == 0 &&
              cJSON_IsObject(cJSON_GetObjectItem(r.json, "derp_map")),
          "register -> 201, mesh key, region 10001, no siblings, derp_map");
    t_free(&r);
    snprintf(body, sizeof(body), reg_fmt, "https://eu.example.com/", "*--apps.eu.example.com:8443", "true",
             "false", rep2);
    r = t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, eu);
    const cJSON *sib = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "sibling_replicas"), 0);
    CHECK(r.status == 201 && t_streq(t_str(sib, "id"), rep1) && t_streq(t_str(sib, "hostname"), "host-a") &&
              t_streq(t_str(sib, "relay_address"), "http://10.0.0.1:3001"),
          "a second replica sees the first as a sibling");
    t_free(&r);
    snprintf(body, sizeof(body), reg_fmt, "https://us.example.com", "", "false", "false", rep1);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, us), 500,
                 "Internal error registering workspace proxy.", NULL, "a replica id owned by another proxy");
    snprintf(body, sizeof(body), reg_fmt, "https://us.example.com", "", "false", "false",
             "cccccccc-3333-4333-8333-333333333333");
    r = t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, us);
    CHECK(r.status == 201 && t_streq(t_str(r.json, "derp_mesh_key"), ""), "derp disabled -> empty mesh key");
    t_free(&r);

    r = t_call(p, "GET", "/api/v2/workspaceproxies/eu", NULL, tok);
    CHECK(t_streq(t_str(r.json, "path_app_url"), "https://eu.example.com/") &&
              t_streq(t_str(r.json, "wildcard_hostname"), "*--apps.eu.example.com:8443") &&
              t_streq(t_str(r.json, "version"), "v2.9.0") &&
              t_streq(t_str(r.json, "status.status"), "unknown"),
          "after register: url, wildcard and version stored; status unknown until probed");
    t_free(&r);

    /* deregister */
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/deregister",
                              "{\"replica_id\":\"dddddddd-4444-4444-8444-444444444444\"}", eu),
                 404, "Resource not found or you do not have access to this resource", NULL,
                 "deregister an unknown replica");
    snprintf(body, sizeof(body), "{\"replica_id\":\"%s\"}", rep2);
    r = t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/deregister", body, eu);
    CHECK(r.status == 204 && !r.body, "deregister -> 204 without a body");
    t_free(&r);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/deregister", body, eu), 500,
                 "Internal error deregistering workspace proxy.", NULL, "deregister twice");
    snprintf(body, sizeof(body), reg_fmt, "https://eu.example.com", "", "true", "false", rep2);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, eu), 500,
                 "Internal error registering workspace proxy.", NULL,
                 "a stopped replica cannot register again");

    /* crypto keys */
    expect_error(t_proxy_call(p, "GET", "/api/v2/workspaceproxies/me/crypto-keys", NULL, eu), 400,
                 "Missing feature query parameter.", NULL, "crypto-keys without feature");
    expect_error(
        t_proxy_call(p, "GET", "/api/v2/workspaceproxies/me/crypto-keys?feature=oidc_convert", NULL, eu), 400,
        "Invalid feature: \"oidc_convert\"", NULL, "crypto-keys for oidc_convert");
    r = t_proxy_call(p, "GET", "/api/v2/workspaceproxies/me/crypto-keys?feature=workspace_apps_token", NULL,
                     eu);
    const cJSON *k0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "crypto_keys"), 0);
    const cJSON *seq = cJSON_GetObjectItem(k0, "sequence");
    CHECK(r.status == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "crypto_keys")) == 1 &&
              t_streq(t_str(k0, "feature"), "workspace_apps_token") && t_str(k0, "secret") &&
              strlen(t_str(k0, "secret")) == 128 && cJSON_IsNumber(seq) && seq->valueint == 1 &&
              t_streq(t_str(k0, "deletes_at"), "0001-01-01T00:00:00Z") && t_str(k0, "starts_at"),
          "signing key: 64 bytes hex, sequence 1, no deletion time");
    t_free(&r);
    r = t_proxy_call(p, "GET", "/api/v2/workspaceproxies/me/crypto-keys?feature=workspace_apps_api_key", NULL,
                     eu);
    k0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "crypto_keys"), 0);
    CHECK(r.status == 200 && t_str(k0, "secret") && strlen(t_str(k0, "secret")) == 64,
          "encryption key: 32 bytes hex");
    t_free(&r);

    /* app stats */
    r = t_proxy_call(
        p, "POST", "/api/v2/workspaceproxies/me/app-stats",
        "{\"stats\":[{\"user_id\":\"u\",\"workspace_id\":\"w\",\"agent_id\":\"a\",\"access_method\":"
        "\"path\",\"slug_or_port\":\"code\",\"session_id\":\"s\",\"session_started_at\":"
        "\"2024-01-01T00:00:00Z\",\"session_ended_at\":\"2024-01-01T00:01:00Z\",\"requests\":3}]}",
        eu);
    CHECK(r.status == 204, "app-stats -> 204");
    t_free(&r);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/app-stats", "{\"stats\":[1]}", eu), 400,
                 "Request body must be valid JSON.", NULL, "app-stats with a bad entry");
    expect_error(t_proxy_call(p, "GET", "/api/v2/workspaceproxies/me/app-stats", NULL, eu), 405,
                 "Method not allowed.", NULL, "GET app-stats");

    /* regions (any user) */
    r = t_call(p, "GET", "/api/v2/regions", NULL, member);
    regions = cJSON_GetObjectItem(r.json, "regions");
    CHECK(r.status == 200 && cJSON_GetArraySize(regions) == 3 &&
              t_streq(t_str(cJSON_GetArrayItem(regions, 0), "display_name"), "HQ") &&
              !cJSON_GetObjectItem(cJSON_GetArrayItem(regions, 1), "status"),
          "GET regions as a member -> primary + 2 proxies, Region shape only");
    t_free(&r);

    /* regenerate token */
    r = t_call(p, "PATCH", "/api/v2/workspaceproxies/us-east", "{\"regenerate_token\":true}", tok);
    const char *newtok = t_str(r.json, "proxy_token");
    char *us2 = newtok ? strdup(newtok) : NULL;
    CHECK(r.status == 200 && us2 && strlen(us2) == 101 && strcmp(us2, us) != 0,
          "regenerate token -> a new token");
    t_free(&r);
    remember(us2 ? us2 + 37 : NULL);
    expect_error(
        t_proxy_call(p, "GET", "/api/v2/workspaceproxies/me/crypto-keys?feature=workspace_apps_token", NULL,
                     us),
        401, "Invalid external proxy token", "Invalid proxy token secret.", "the old token stops working");
    r = t_proxy_call(p, "GET", "/api/v2/workspaceproxies/me/crypto-keys?feature=workspace_apps_token", NULL,
                     us2);
    CHECK(r.status == 200, "the new token works");
    t_free(&r);

    /* delete */
    expect_error(t_call(p, "DELETE", "/api/v2/workspaceproxies/primary", NULL, tok), 400,
                 "Cannot delete primary proxy", NULL, "delete the primary");
    expect_error(t_call(p, "DELETE", "/api/v2/workspaceproxies/us-east", NULL, member), 403,
                 "You are not authorized to use this endpoint.", NULL, "delete as a member");
    r = t_call(p, "DELETE", "/api/v2/workspaceproxies/us-east", NULL, tok);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "message"), "Proxy has been deleted!"), "delete -> 200");
    t_free(&r);
    expect_error(t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", "{}", us2), 401,
                 "Invalid external proxy token", "Proxy has been deleted.", "a deleted proxy's token");
    expect_error(t_call(p, "GET", "/api/v2/workspaceproxies/us-east", NULL, tok), 404,
                 "Resource not found or you do not have access to this resource", NULL,
                 "get a deleted proxy");
    expect_error(t_call(p, "DELETE", "/api/v2/workspaceproxies/us-east", NULL, tok), 404,
                 "Resource not found or you do not have access to this resource", NULL, "delete twice");
    char *us3 = create_proxy(p, tok, "us-east", NULL);

    /* routing */
    expect_error(t_call(p, "GET", "/api/v2/nothing", NULL, tok), 404, "Route not found.", NULL,
                 "unknown route");
    expect_error(t_call(p, "PUT", "/api/v2/workspaceproxies", NULL, tok), 405, "Method not allowed.", NULL,
                 "PUT on the proxies collection");
    expect_error(t_call(p, "GET", "/api/v2/users/login", NULL, NULL), 405, "Method not allowed.", NULL,
                 "GET login");
    free(eu);
    free(us);
    free(us2);
    free(us3);
}

static void test_restart(const char *tok)
{
    struct op_primary *p = open_primary();
    struct t_resp r = t_call(p, "GET", "/api/v2/workspaceproxies", NULL, tok);
    const cJSON *regions = cJSON_GetObjectItem(r.json, "regions");
    CHECK(r.status == 200 && cJSON_GetArraySize(regions) == 4 &&
              t_streq(t_str(cJSON_GetArrayItem(regions, 0), "display_name"), "HQ") &&
              t_streq(t_str(cJSON_GetArrayItem(regions, 1), "display_name"), "Europe"),
          "after restart: the session still works, proxies and the primary's display name are kept");
    t_free(&r);
    r = t_call(p, "GET", "/api/v2/users/first", NULL, NULL);
    CHECK(r.status == 200, "after restart: the first user exists");
    t_free(&r);
    char *again = login(p, "admin@example.com", "hunter2-Correct");
    free(again);
    struct op_db_stmt *st = NULL;
    CHECK(op_db_schema_version(p->db) == 6,
          "schema version is 6 (workspaces and agents, agents' SSH host keys, "
          "API key scopes, port shares, shared proxy health)");
    st = op_db_prepare(p->db, "SELECT COUNT(*) FROM crypto_keys");
    CHECK(op_db_step(st) == OP_DB_ROW && (int)op_db_col_int64(st, 0) == 4,
          "keys kept across the restart (3 + 1)");
    op_db_finalize(st);
    if (t_on_pg()) {
        CHECK(op_db_kind(p->db) == OP_DB_POSTGRES, "the store is PostgreSQL");
    } else {
        st = op_db_prepare(p->db, "PRAGMA journal_mode");
        CHECK(op_db_step(st) == OP_DB_ROW && strcmp(op_db_col_text(st, 0), "wal") == 0,
              "journal mode is WAL");
        op_db_finalize(st);
    }
    check_no_plaintext("after restart");
    op_primary_close(p);
}

static void exec_sql(struct op_primary *p, const char *sql)
{
    int rc = op_db_exec(p->db, sql);
    CHECK(rc == 0, "sql: %.60s %s", sql, rc ? op_db_errmsg(p->db) : "");
}

static int key_count(struct op_primary *p, const char *proxy_token, const char *feature, int64_t *max_seq)
{
    char q[200];
    snprintf(q, sizeof(q), "/api/v2/workspaceproxies/me/crypto-keys?feature=%s", feature);
    struct t_resp r = t_proxy_call(p, "GET", q, NULL, proxy_token);
    const cJSON *keys = cJSON_GetObjectItem(r.json, "crypto_keys"), *k;
    *max_seq = 0;
    cJSON_ArrayForEach(k, keys)
    {
        int64_t sq = (int64_t)cJSON_GetObjectItem(k, "sequence")->valuedouble;
        *max_seq = sq > *max_seq ? sq : *max_seq;
    }
    int n = cJSON_GetArraySize(keys);
    t_free(&r);
    return n;
}

/* Key rotation (docs/coder-compat.md, "Crypto keys") and session expiry, by moving timestamps in the
 * database. */
static void test_rotation_and_expiry(struct op_primary *p, const char *owner)
{
    char *ptok = create_proxy(p, owner, "rot", NULL);
    int64_t seq;
    int n = key_count(p, ptok, "workspace_apps_token", &seq);
    CHECK(n == 1 && seq == 1, "one signing key before rotation");
    /* The key started 30 days minus 30 minutes ago: it expires in 30 min, inside the 1 h rotation window. */
    int64_t now = op_wall_ms();
    char sql[300];
    snprintf(sql, sizeof(sql),
             "UPDATE crypto_keys SET starts_at = %lld WHERE feature = 'workspace_apps_token'",
             (long long)(now - 30LL * 24 * 3600 * 1000 + 30LL * 60 * 1000));
    exec_sql(p, sql);
    n = key_count(p, ptok, "workspace_apps_token", &seq);
    CHECK(n == 2 && seq == 2, "near expiry: a successor key (sequence 2) is added");
    struct op_db_stmt *st = NULL;
    st = op_db_prepare(
        p->db,
        "SELECT a.deletes_at - b.starts_at, b.starts_at - a.starts_at FROM crypto_keys a, crypto_keys b"
        " WHERE a.feature = b.feature AND a.feature = 'workspace_apps_token' AND a.sequence = 1 AND"
        " b.sequence = 2");
    bool row = op_db_step(st) == OP_DB_ROW;
    int64_t grace = row ? op_db_col_int64(st, 0) : 0, gap = row ? op_db_col_int64(st, 1) : 0;
    op_db_finalize(st);
    CHECK(row && grace == 3600000 + 60000 && gap >= 30LL * 24 * 3600 * 1000 - 1000,
          "successor starts at the old expiry; the old key is deleted 1 h + 1 min after that");
    n = key_count(p, ptok, "workspace_apps_token", &seq);
    CHECK(n == 2 && seq == 2, "rotation is idempotent");
    /* Past its deletion time the old key disappears; the successor has not started, so with no key able to
     * sign a new one is inserted. */
    snprintf(
        sql, sizeof(sql),
        "UPDATE crypto_keys SET deletes_at = %lld WHERE feature = 'workspace_apps_token' AND sequence = 1",
        (long long)(now - 1000));
    exec_sql(p, sql);
    n = key_count(p, ptok, "workspace_apps_token", &seq);
    CHECK(n == 2 && seq == 3, "deleted key dropped; a key that can sign now is added (sequence 3)");
    free(ptok);

    char *s = login(p, "admin@example.com", "hunter2-Correct");
    char id[11];
    snprintf(id, sizeof(id), "%.10s", s);
    snprintf(sql, sizeof(sql), "UPDATE api_keys SET expires_at = %lld WHERE id = '%s'",
             (long long)(now - 1000), id);
    exec_sql(p, sql);
    struct t_resp r = t_call(p, "GET", "/api/v2/users/me", NULL, s);
    const char *detail = t_str(r.json, "detail");
    CHECK(r.status == 401 && detail && strncmp(detail, "API key expired at \"", 20) == 0,
          "expired session -> 401 (%s)", detail ? detail : "");
    t_free(&r);
    free(s);

    /* Garbage collection: the expired session and a replica silent for an hour go; live rows stay. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO replicas (id, proxy_id, hostname, region_id, created_at, started_at, updated_at)"
             " SELECT 'eeeeeeee-5555-4555-8555-555555555555', id, 'old', region_id, 0, 0, %lld FROM"
             " workspace_proxies WHERE name = 'eu'",
             (long long)(now - 3600 * 1000));
    exec_sql(p, sql);
    CHECK(op_store_gc(p) == 0, "op_store_gc");
    st = op_db_prepare(
        p->db, "SELECT (SELECT COUNT(*) FROM api_keys WHERE id = ?1),"
               " (SELECT COUNT(*) FROM replicas WHERE hostname = 'old'), (SELECT COUNT(*) FROM api_keys)");
    op_db_bind_text(st, 1, id);
    row = op_db_step(st) == OP_DB_ROW;
    CHECK(row && (int)op_db_col_int64(st, 0) == 0 && (int)op_db_col_int64(st, 1) == 0 &&
              (int)op_db_col_int64(st, 2) >= 2,
          "gc removed the expired session and the stale replica, kept live sessions");
    op_db_finalize(st);

    if (t_on_pg()) return; /* no database files: the secrets check reads the rows instead */
    char path[300];
    struct stat stt;
    snprintf(path, sizeof(path), "%s/outpost.db", dir);
    CHECK(stat(path, &stt) == 0 && (stt.st_mode & 0777) == 0600, "database file mode 0600 (%o)",
          stt.st_mode & 0777);
    snprintf(path, sizeof(path), "%s/outpost.db-wal", dir);
    CHECK(stat(path, &stt) == 0 && (stt.st_mode & 0077) == 0, "WAL file not readable by others (%o)",
          stt.st_mode & 0777);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/outpost-primary-api-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    struct op_primary *p = open_primary();
    char *owner = NULL;
    test_users(p, &owner);
    char *member = make_member(p);
    test_proxies(p, owner, member);
    test_rotation_and_expiry(p, owner);
    check_no_plaintext("while running");
    op_primary_close(p);
    check_no_plaintext("after close");
    test_restart(owner);
    free(owner);
    free(member);
    t_rm_rf(dir);
    return check_report("primary API");
}
