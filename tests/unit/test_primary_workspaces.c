/*
 * Users besides the first owner, external workspaces, agents and the agent-facing API, driven through
 * op_primary_handle with a real SQLite file: every endpoint as owner, member and anonymous; another
 * member's workspace is 404; agent tokens (format, 401s, regeneration locks the old one out at once,
 * deletion too); agent status transitions with a short heartbeat window and connection timeout; agent
 * credentials and connect tokens verified with proto/jws against the key in the database; and no token
 * or password ever in the database files.
 */
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include "db/db.h"
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "primary/primary_int.h"
#include "proto/agent_token.h"
#include "tests/unit/primary_test_util.h"

#define HEARTBEAT_MS 300 /* disconnected after 600 ms of silence */
#define TIMEOUT_MS   1000

static char dir[256];
static struct t_secrets secrets;

static void remember(const char *s)
{
    t_remember(&secrets, s);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void expect(struct t_resp r, int status, const char *message, const char *what)
{
    bool ok = r.status == status && (!message || t_streq(t_str(r.json, "message"), message));
    CHECK(ok, "%s -> %d%s%s (got %d %s)", what, status, message ? " " : "", message ? message : "", r.status,
          r.body ? r.body : "");
    t_free(&r);
}

static char *login(struct op_primary *p, const char *who, const char *password)
{
    return t_login(p, &secrets, who, password, NULL);
}

static const cJSON *ws_agent(const cJSON *ws, int i)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(ws, "latest_build");
    const cJSON *res = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "resources"), 0);
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "agents"), i);
}

static const char *agent_status(struct op_primary *p, const char *agent_id, const char *session)
{
    static char st[32];
    char path[128];
    snprintf(path, sizeof(path), "/api/v2/workspaceagents/%s", agent_id);
    struct t_resp r = t_call(p, "GET", path, NULL, session);
    snprintf(st, sizeof(st), "%s",
             r.status == 200 && t_str(r.json, "status") ? t_str(r.json, "status") : "?");
    t_free(&r);
    return st;
}

static bool token_format(const char *t, const char *agent_id)
{
    if (!t || strlen(t) != OP_AGENT_TOKEN_LEN || t[36] != ':' || strncmp(t, agent_id, 36) != 0) return false;
    for (int i = 37; t[i]; i++)
        if (!isalnum((unsigned char)t[i])) return false;
    return true;
}

struct ws {
    char id[37];
    char agent_id[4][37];
    char token[4][OP_AGENT_TOKEN_LEN + 1];
};

static void create_ws(struct op_primary *p, const char *session, const char *user, const char *body,
                      int nagents, struct ws *out, const char *what)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v2/users/%s/workspaces", user);
    struct t_resp r = t_call(p, "POST", path, body, session);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(r.json, "agent_tokens");
    bool ok = r.status == 201 && cJSON_GetArraySize(tokens) == nagents && t_str(r.json, "id");
    memset(out, 0, sizeof(*out));
    for (int i = 0; ok && i < nagents; i++) {
        const cJSON *t = cJSON_GetArrayItem(tokens, i);
        const char *aid = t_str(t, "agent_id"), *tok = t_str(t, "token");
        ok = aid && token_format(tok, aid) && t_streq(t_str(ws_agent(r.json, i), "status"), "connecting") &&
             t_str(ws_agent(r.json, i), "id") && cJSON_GetArraySize(tokens) == nagents;
        if (!ok) break;
        snprintf(out->agent_id[i], 37, "%s", aid);
        snprintf(out->token[i], sizeof(out->token[i]), "%s", tok);
        remember(tok + 37);
    }
    if (ok) snprintf(out->id, sizeof(out->id), "%s", t_str(r.json, "id"));
    CHECK(ok, "%s -> 201 with %d agent token(s) <agent id>:<64 alnum>, agents connecting (got %d %s)", what,
          nagents, r.status, r.body ? r.body : "");
    t_free(&r);
}

/* The workspace_apps_token secret of sequence kid, straight from the database. */
static bool key_of(struct op_primary *p, int64_t kid, uint8_t key[64])
{
    struct op_db_stmt *st = NULL;
    st = op_db_prepare(
        p->db, "SELECT secret FROM crypto_keys WHERE feature = 'workspace_apps_token' AND sequence = ?");
    op_db_bind_int64(st, 1, kid);
    bool ok = op_db_step(st) == OP_DB_ROW && op_hex_decode(op_db_col_text(st, 0), 128, key, 64) == 0;
    op_db_finalize(st);
    return ok;
}

/* Parses and verifies a JWS the primary issued. */
static bool verify(struct op_primary *p, const char *tok, struct op_jws *j)
{
    uint8_t key[64];
    return tok && op_jws_parse(tok, strlen(tok), j) == 0 && key_of(p, j->kid, key) &&
           op_jws_mac_ok(j, tok, key, sizeof(key));
}

static void test_users(struct op_primary *p, char **owner, char **alice, char **carol, char *alice_id)
{
    struct t_resp r = t_call(
        p, "POST", "/api/v2/users/first",
        "{\"username\":\"admin\",\"email\":\"admin@example.com\",\"password\":\"Admin-Pass-1\"}", NULL);
    CHECK(r.status == 201, "first user");
    t_free(&r);
    remember("Admin-Pass-1");
    *owner = login(p, "admin", "Admin-Pass-1");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"alice\",\"email\":\"a@x.io\",\"password\":\"x1\"}", NULL),
           401, "You are signed out or your session has expired. Please sign in again to continue.",
           "anonymous POST users");
    r = t_call(p, "POST", "/api/v2/users",
               "{\"username\":\"alice\",\"email\":\"alice@example.com\",\"password\":\"Alice-Pass-1\"}",
               *owner);
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(r.json, "roles");
    CHECK(r.status == 201 && t_streq(t_str(r.json, "username"), "alice") && cJSON_IsArray(roles) &&
              cJSON_GetArraySize(roles) == 0 && t_streq(t_str(r.json, "status"), "active") &&
              t_streq(t_str(r.json, "login_type"), "password"),
          "owner creates member alice -> 201 User, roles [] (got %d %s)", r.status, r.body);
    snprintf(alice_id, 37, "%s", t_str(r.json, "id") ? t_str(r.json, "id") : "");
    t_free(&r);
    remember("Alice-Pass-1");
    r = t_call(p, "POST", "/api/v2/users",
               "{\"username\":\"root2\",\"email\":\"root2@example.com\",\"password\":\"Root2-Pass\","
               "\"roles\":[\"owner\"]}",
               *owner);
    CHECK(r.status == 201 &&
              t_streq(t_str(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "roles"), 0), "name"), "owner"),
          "owner creates a second owner with roles [owner]");
    t_free(&r);
    remember("Root2-Pass");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"Alice\",\"email\":\"other@example.com\",\"password\":\"Alice-Pass-1\"}",
                  *owner),
           409, "User already exists.", "duplicate username (case-insensitive)");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"x2\",\"email\":\"ALICE@example.com\",\"password\":\"Alice-Pass-1\"}",
                  *owner),
           409, "User already exists.", "duplicate email");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"bad name\",\"email\":\"b@x.io\",\"password\":\"123456\"}", *owner),
           400, "Validation failed.", "invalid username");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"me\",\"email\":\"b@x.io\",\"password\":\"123456\"}", *owner),
           400, "Validation failed.", "username me is reserved");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"bob\",\"email\":\"bob\",\"password\":\"123456\"}", *owner),
           400, "Validation failed.", "invalid email");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"bob\",\"email\":\"b@x.io\",\"password\":\"12\"}", *owner),
           400, "Password not strong enough!", "short password");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"bob\",\"email\":\"b@x.io\",\"password\":\"123456\",\"roles\":[\"admin\"]}",
                  *owner),
           400, "Validation failed.", "unknown role");
    expect(t_call(p, "POST", "/api/v2/users", "[]", *owner), 400, "Request body must be valid JSON.",
           "body not an object");
    r = t_call(p, "POST", "/api/v2/users",
               "{\"username\":\"carol\",\"email\":\"carol@example.com\",\"password\":\"Carol-Pass-1\","
               "\"roles\":[\"member\"]}",
               *owner);
    CHECK(r.status == 201, "owner creates member carol");
    t_free(&r);
    remember("Carol-Pass-1");
    *alice = login(p, "alice@example.com", "Alice-Pass-1");
    *carol = login(p, "carol", "Carol-Pass-1");
    expect(t_call(p, "POST", "/api/v2/users",
                  "{\"username\":\"dave\",\"email\":\"d@x.io\",\"password\":\"123456\"}", *alice),
           403, "Forbidden.", "member POST users");
    r = t_call(p, "GET", "/api/v2/users", NULL, *alice);
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(r.json, "users");
    CHECK(r.status == 200 && cJSON_GetArraySize(users) == 4 &&
              cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "count")) == 4 &&
              t_streq(t_str(cJSON_GetArrayItem(users, 0), "username"), "admin"),
          "GET users -> users sorted, count 4 (got %d %s)", r.status, r.body);
    t_free(&r);
    r = t_call(p, "GET", "/api/v2/users/me", NULL, *alice);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "username"), "alice") &&
              cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "roles")) == 0,
          "member GET users/me");
    t_free(&r);
    r = t_call(p, "GET", "/api/v2/users/CAROL", NULL, *alice);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "email"), "carol@example.com"), "GET users/{username}");
    t_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/api/v2/users/%s", alice_id);
    r = t_call(p, "GET", path, NULL, *owner);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "username"), "alice"), "GET users/{id}");
    t_free(&r);
    expect(t_call(p, "GET", "/api/v2/users/nobody", NULL, *owner), 404, OP_NOT_FOUND_MSG, "GET unknown user");
    expect(t_call(p, "GET", "/api/v2/users", NULL, NULL), 401, NULL, "anonymous GET users");
    expect(t_call(p, "DELETE", "/api/v2/users/carol", NULL, *alice), 403, "Forbidden.", "member DELETE user");
    expect(t_call(p, "DELETE", "/api/v2/users/admin", NULL, *owner), 403, "You cannot delete yourself!",
           "owner deletes themselves");
    expect(t_call(p, "PATCH", "/api/v2/users", NULL, *owner), 405, "Method not allowed.", "PATCH users");
    r = t_call(p, "PUT", "/api/v2/users/root2/roles", "{\"roles\":[]}", *owner);
    CHECK(r.status == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "roles")) == 0,
          "PUT users/{user}/roles [] makes an owner a member");
    t_free(&r);
    r = t_call(p, "PUT", "/api/v2/users/root2/roles", "{\"roles\":[\"owner\"]}", *owner);
    CHECK(r.status == 200 &&
              t_streq(t_str(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "roles"), 0), "name"), "owner"),
          "PUT users/{user}/roles [owner] makes them an owner again");
    t_free(&r);
    expect(t_call(p, "PUT", "/api/v2/users/admin/roles", "{\"roles\":[]}", *owner), 400,
           "You cannot change your own roles.", "owner changes their own roles");
    expect(t_call(p, "PUT", "/api/v2/users/root2/roles", "{\"roles\":[\"root\"]}", *owner), 400,
           "Validation failed.", "unknown role in PUT roles");
    expect(t_call(p, "PUT", "/api/v2/users/root2/roles", "{}", *owner), 400, "Validation failed.",
           "PUT roles without roles");
    expect(t_call(p, "PUT", "/api/v2/users/carol/roles", "{\"roles\":[\"owner\"]}", *alice), 403,
           "Forbidden.", "member PUT roles");
    expect(t_call(p, "PUT", "/api/v2/users/nobody/roles", "{\"roles\":[]}", *owner), 404, OP_NOT_FOUND_MSG,
           "PUT roles of an unknown user");
    expect(t_call(p, "POST", "/api/v2/users/root2/roles", "{\"roles\":[]}", *owner), 405,
           "Method not allowed.", "POST roles");
    expect(t_call(p, "DELETE", "/api/v2/users/root2", NULL, *owner), 200, "User has been deleted!",
           "DELETE user");
    expect(t_call(p, "DELETE", "/api/v2/users/root2", NULL, *owner), 404, OP_NOT_FOUND_MSG,
           "DELETE it again");
}

static void test_workspaces(struct op_primary *p, const char *owner, const char *alice, const char *carol,
                            struct ws *dev, struct ws *ci)
{
    create_ws(p, alice, "me", "{\"name\":\"dev\"}", 1, dev,
              "member creates dev for themselves (default agent)");
    struct t_resp r;
    char path[256];
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s", dev->id);
    r = t_call(p, "GET", path, NULL, alice);
    CHECK(r.status == 200 && t_streq(t_str(ws_agent(r.json, 0), "name"), "main") &&
              t_streq(t_str(r.json, "owner_name"), "alice") && !t_str(r.json, "agent_tokens") &&
              cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "health"), "healthy")) &&
              t_streq(t_str(cJSON_GetObjectItem(ws_agent(r.json, 0), "health"), "reason"),
                      "agent is connecting"),
          "GET workspaces/{id}: agent main, no tokens, unhealthy while connecting (%s)", r.body);
    t_free(&r);
    create_ws(p, owner, "alice", "{\"name\":\"ci\",\"agents\":[\"build\",\"test\"]}", 2, ci,
              "owner creates ci for alice with two agents");
    expect(t_call(p, "POST", "/api/v2/users/carol/workspaces", "{\"name\":\"x\"}", alice), 403, "Forbidden.",
           "member creates a workspace for another user");
    expect(t_call(p, "POST", "/api/v2/users/nobody/workspaces", "{\"name\":\"x\"}", owner), 404,
           OP_NOT_FOUND_MSG, "workspace for an unknown user");
    expect(t_call(p, "POST", "/api/v2/users/me/workspaces", "{\"name\":\"DEV\"}", alice), 409,
           "Workspace \"DEV\" already exists.", "duplicate workspace name");
    expect(t_call(p, "POST", "/api/v2/users/me/workspaces", "{\"name\":\"-x\"}", alice), 400,
           "Validation failed.", "invalid workspace name");
    expect(
        t_call(p, "POST", "/api/v2/users/me/workspaces", "{\"name\":\"y\",\"agents\":[\"a\",\"A\"]}", alice),
        400, "Validation failed.", "repeated agent name");
    expect(t_call(p, "POST", "/api/v2/users/me/workspaces", "{\"name\":\"y\",\"agents\":[]}", alice), 400,
           "Validation failed.", "empty agent list");
    expect(t_call(p, "POST", "/api/v2/users/me/workspaces", "{\"name\":\"y\"}", NULL), 401, NULL,
           "anonymous create");

    /* Another member's workspace is invisible: 404 everywhere, like one that does not exist. */
    expect(t_call(p, "GET", "/api/v2/users/alice/workspace/dev", NULL, carol), 404, OP_NOT_FOUND_MSG,
           "member GET another member's workspace by name");
    expect(t_call(p, "GET", path, NULL, carol), 404, OP_NOT_FOUND_MSG,
           "member GET another member's workspace by id");
    expect(t_call(p, "DELETE", path, NULL, carol), 404, OP_NOT_FOUND_MSG,
           "member DELETE another member's workspace");
    snprintf(path, sizeof(path), "/api/v2/workspaceagents/%s", dev->agent_id[0]);
    expect(t_call(p, "GET", path, NULL, carol), 404, OP_NOT_FOUND_MSG, "member GET another member's agent");
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s/external-agent/main/credentials", dev->id);
    expect(t_call(p, "POST", path, NULL, carol), 404, OP_NOT_FOUND_MSG,
           "member regenerates another's agent token");
    r = t_call(p, "GET", "/api/v2/users/alice/workspace/DEV", NULL, alice);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "id"), dev->id),
          "owner of it: GET by name (case-insensitive)");
    t_free(&r);
    r = t_call(p, "GET", "/api/v2/users/alice/workspace/dev", NULL, owner);
    CHECK(r.status == 200, "site owner GET alice's workspace by name");
    t_free(&r);
    expect(t_call(p, "GET", "/api/v2/users/alice/workspace/nope", NULL, alice), 404, OP_NOT_FOUND_MSG,
           "unknown workspace name");

    struct {
        const char *session, *query;
        int count;
    } lists[] = {
        {carol, "", 0},
        {alice, "", 2},
        {owner, "", 2},
        {owner, "?q=owner:alice", 2},
        {owner, "?owner=carol", 0},
        {owner, "?q=owner:nobody", 0},
        {carol, "?q=owner:alice", 0},
        {alice, "?q=owner:me", 2},
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(lists); i++) {
        snprintf(path, sizeof(path), "/api/v2/workspaces%s", lists[i].query);
        r = t_call(p, "GET", path, NULL, lists[i].session);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r.json, "workspaces");
        CHECK(r.status == 200 && cJSON_GetArraySize(arr) == lists[i].count &&
                  cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "count")) == lists[i].count,
              "GET workspaces%s as %s -> %d (got %d)", lists[i].query,
              lists[i].session == owner   ? "owner"
              : lists[i].session == alice ? "alice"
                                          : "carol",
              lists[i].count, cJSON_GetArraySize(arr));
        t_free(&r);
    }
}

static void test_agent_api(struct op_primary *p, const char *owner, const char *alice, const char *carol,
                           const struct ws *dev, struct ws *ci)
{
    const char *tok = dev->token[0];
    struct t_resp r = t_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, tok);
    const cJSON *regions = cJSON_GetObjectItemCaseSensitive(r.json, "regions");
    CHECK(r.status == 200 && t_streq(t_str(r.json, "agent_id"), dev->agent_id[0]) &&
              t_streq(t_str(r.json, "agent_name"), "main") &&
              t_streq(t_str(r.json, "workspace_id"), dev->id) &&
              t_streq(t_str(r.json, "workspace_name"), "dev") &&
              t_streq(t_str(r.json, "owner_name"), "alice") && cJSON_GetArraySize(regions) == 1 &&
              t_streq(t_str(cJSON_GetArrayItem(regions, 0), "name"), "primary") &&
              t_streq(t_str(cJSON_GetArrayItem(regions, 0), "access_url"), "http://127.0.0.1:3000") &&
              cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "report_interval_ms")) == HEARTBEAT_MS,
          "manifest: identity, regions [primary] (an unregistered proxy is not a region) (%s)", r.body);
    t_free(&r);
    CHECK(t_streq(agent_status(p, dev->agent_id[0], alice), "connecting"), "a manifest fetch is not contact");
    const char *unauth = "Workspace agent not authorized.";
    expect(t_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, NULL), 401, unauth,
           "manifest without token");
    expect(t_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, "abc"), 401, unauth,
           "malformed token");
    expect(t_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, owner), 401, unauth,
           "a user session is not an agent token");
    char wrong[OP_AGENT_TOKEN_LEN + 1];
    snprintf(wrong, sizeof(wrong), "%s", tok);
    wrong[40] = wrong[40] == 'a' ? 'b' : 'a';
    expect(t_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, wrong), 401, unauth, "wrong secret");
    expect(t_call(p, "GET", "/api/v2/workspaceagents/me/report", NULL, tok), 405, NULL, "GET report");
    expect(t_call(p, "POST", "/api/v2/workspaceagents/me/nope", "{}", tok), 404, "Route not found.",
           "unknown me route");

    /* Reports: contact, apps, ports, regions. */
    const char *report =
        "{\"lifecycle_state\":\"ready\",\"version\":\"v0.1.0\",\"operating_system\":\"linux\","
        "\"architecture\":\"amd64\","
        "\"apps\":[{\"slug\":\"web\",\"url\":\"http://"
        "127.0.0.1:8000\",\"display_name\":\"Web\",\"sharing_level\":"
        "\"authenticated\",\"subdomain\":true},{\"slug\":\"docs\",\"url\":\"http://127.0.0.1:9000\"}],"
        "\"listening_ports\":[{\"port\":8000,\"network\":\"tcp\",\"process_name\":\"python3\"},{\"port\":22}]"
        ","
        "\"regions\":[\"primary\"]}";
    expect(t_call(p, "POST", "/api/v2/workspaceagents/me/report", report, tok), 204, NULL, "report");
    char path[256];
    snprintf(path, sizeof(path), "/api/v2/workspaceagents/%s", dev->agent_id[0]);
    r = t_call(p, "GET", path, NULL, alice);
    const cJSON *apps = cJSON_GetObjectItem(r.json, "apps"),
                *ports = cJSON_GetObjectItem(r.json, "listening_ports");
    CHECK(r.status == 200 && t_streq(t_str(r.json, "status"), "connected") &&
              t_streq(t_str(r.json, "lifecycle_state"), "ready") &&
              t_streq(t_str(r.json, "version"), "v0.1.0") && t_str(r.json, "first_connected_at") &&
              t_str(r.json, "last_connected_at") && !t_str(r.json, "disconnected_at") &&
              cJSON_GetArraySize(apps) == 2 &&
              t_streq(t_str(cJSON_GetArrayItem(apps, 0), "sharing_level"), "authenticated") &&
              cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(apps, 0), "subdomain")) &&
              t_streq(t_str(cJSON_GetArrayItem(apps, 1), "sharing_level"), "owner") &&
              t_streq(t_str(cJSON_GetArrayItem(apps, 1), "display_name"), "docs") &&
              cJSON_GetArraySize(ports) == 2 &&
              t_streq(t_str(cJSON_GetArrayItem(ports, 1), "network"), "tcp") &&
              cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "health"), "healthy")),
          "after a report: connected, apps normalised, ports, healthy (%s)", r.body);
    CHECK(t_streq(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "regions"), 0)),
                  "primary"),
          "regions reported");
    t_free(&r);
    snprintf(path, sizeof(path), "/api/v2/workspaceagents/%s/listening-ports", dev->agent_id[0]);
    r = t_call(p, "GET", path, NULL, owner);
    CHECK(r.status == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "ports")) == 2,
          "listening-ports");
    t_free(&r);
    struct {
        const char *body, *field;
    } bad[] = {
        {"{\"apps\":[{\"slug\":\"Web\",\"url\":\"http://x\"}]}", "apps"},
        {"{\"apps\":[{\"slug\":\"web\",\"url\":\"ftp://x\"}]}", "apps"},
        {"{\"apps\":[{\"slug\":\"web\",\"url\":\"http://x\",\"sharing_level\":\"everyone\"}]}", "apps"},
        {"{\"apps\":[{\"slug\":\"a\",\"url\":\"http://x\"},{\"slug\":\"a\",\"url\":\"http://y\"}]}", "apps"},
        {"{\"listening_ports\":[{\"port\":0}]}", "listening_ports"},
        {"{\"listening_ports\":[{\"port\":80,\"network\":\"udp\"}]}", "listening_ports"},
        {"{\"regions\":[\"bad name\"]}", "regions"},
        {"{\"lifecycle_state\":\"dancing\"}", "lifecycle_state"},
        {"{\"version\":7}", "body"},
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(bad); i++) {
        r = t_call(p, "POST", "/api/v2/workspaceagents/me/report", bad[i].body, tok);
        const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "validations"), 0);
        CHECK(r.status == 400 && t_streq(t_str(v, "field"), bad[i].field),
              "bad report %s -> 400 field %s (got %d %s)", bad[i].body, bad[i].field, r.status, r.body);
        t_free(&r);
    }
    r = t_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, tok);
    t_free(&r);

    /* Status transitions: silence past two heartbeats disconnects; a report reconnects; "off" disconnects at
     * once; an agent never heard from times out. */
    sleep_ms(TIMEOUT_MS + 200); /* past both two heartbeats and the connection timeout */
    snprintf(path, sizeof(path), "/api/v2/workspaceagents/%s", dev->agent_id[0]);
    r = t_call(p, "GET", path, NULL, alice);
    CHECK(t_streq(t_str(r.json, "status"), "disconnected") &&
              t_streq(t_str(r.json, "disconnected_at"), t_str(r.json, "last_connected_at")) &&
              t_streq(t_str(cJSON_GetObjectItem(r.json, "health"), "reason"), "agent has lost connection"),
          "silent for two heartbeats -> disconnected at the last contact (%s)", r.body);
    t_free(&r);
    CHECK(t_streq(agent_status(p, ci->agent_id[0], alice), "timeout"),
          "never connected past the timeout -> timeout");
    expect(t_call(p, "POST", "/api/v2/workspaceagents/me/report", "{}", tok), 204, NULL, "empty report");
    CHECK(t_streq(agent_status(p, dev->agent_id[0], alice), "connected"), "a report reconnects it");
    r = t_call(p, "GET", path, NULL, alice);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "apps")) == 2, "an empty report keeps the apps");
    t_free(&r);
    expect(t_call(p, "POST", "/api/v2/workspaceagents/me/report", "{}", ci->token[0]), 204, NULL,
           "late first report");
    CHECK(t_streq(agent_status(p, ci->agent_id[0], alice), "connected"),
          "timeout -> connected on first contact");
    CHECK(t_streq(agent_status(p, ci->agent_id[1], alice), "timeout"), "the other agent still times out");
    expect(t_call(p, "POST", "/api/v2/workspaceagents/me/report", "{\"lifecycle_state\":\"off\"}", tok), 204,
           NULL, "report lifecycle off");
    CHECK(t_streq(agent_status(p, dev->agent_id[0], alice), "disconnected"),
          "a stopping agent is disconnected at once");
    r = t_call(p, "GET", "/api/v2/users/alice/workspace/ci", NULL, alice);
    const cJSON *failing = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "health"), "failing_agents");
    CHECK(cJSON_GetArraySize(failing) == 1 &&
              t_streq(cJSON_GetStringValue(cJSON_GetArrayItem(failing, 0)), ci->agent_id[1]),
          "workspace health lists the failing agent");
    t_free(&r);

    /* Agent credential. */
    r = t_call(p, "POST", "/api/v2/workspaceagents/me/credential", NULL, tok);
    struct op_jws j;
    struct op_agent_cred cred;
    int64_t now = time(NULL);
    bool ok = r.status == 200 && verify(p, t_str(r.json, "credential"), &j) &&
              op_agent_cred_read(&j, now, &cred) == 0;
    CHECK(ok && strcmp(cred.agent_id, dev->agent_id[0]) == 0 && strcmp(cred.workspace_id, dev->id) == 0 &&
              cred.exp - cred.iat == OP_AGENT_CRED_LIFETIME_S && cred.iat >= now - 5 &&
              t_str(r.json, "expires_at"),
          "credential: HS512 JWS with the crypto key, agent/workspace/owner ids, 5 min (%s)", r.body);
    struct op_connect_claims cc;
    CHECK(ok && op_connect_read(&j, now, &cc) == -EINVAL, "a credential is not a connect token");
    const char *ctok = t_str(r.json, "credential");
    struct op_jws j2;
    CHECK(ctok && op_keys_verify_jws(p, ctok, strlen(ctok), &j2) == 0 &&
              op_agent_cred_read(&j2, now, &cred) == 0,
          "op_keys_verify_jws accepts the primary's own credential");
    char forged[OP_JWS_MAX_TOKEN];
    uint8_t other[64] = {1};
    int flen = op_jws_sign(j2.payload, j2.payload_len, j2.kid, other, sizeof(other), forged, sizeof(forged));
    CHECK(flen > 0 && op_keys_verify_jws(p, forged, (size_t)flen, &j2) == -EPERM,
          "a credential signed with another key: -EPERM");
    flen = op_jws_sign(j2.payload, j2.payload_len, 999, other, sizeof(other), forged, sizeof(forged));
    CHECK(flen > 0 && op_keys_verify_jws(p, forged, (size_t)flen, &j2) == -ENOKEY, "an unknown kid: -ENOKEY");
    CHECK(op_keys_verify_jws(p, "x.y.z", 5, &j2) == -EINVAL, "garbage: -EINVAL");
    CHECK(ok && op_agent_cred_read(&j, now + OP_AGENT_CRED_LIFETIME_S + OP_JWS_LEEWAY_S + 1, &cred) ==
                    -ETIMEDOUT,
          "a credential expires");
    t_free(&r);
    expect(t_call(p, "GET", "/api/v2/workspaceagents/me/credential", NULL, tok), 405, NULL, "GET credential");

    /* Connect tokens. */
    char body[128];
    snprintf(path, sizeof(path), "/api/v2/workspaceagents/%s/connect-token", dev->agent_id[0]);
    r = t_call(p, "POST", path, "{\"port\":8000,\"region\":\"primary\"}", alice);
    ok =
        r.status == 200 && verify(p, t_str(r.json, "signed_token"), &j) && op_connect_read(&j, now, &cc) == 0;
    char alice_id[37];
    struct t_resp me = t_call(p, "GET", "/api/v2/users/me", NULL, alice);
    snprintf(alice_id, sizeof(alice_id), "%s", t_str(me.json, "id") ? t_str(me.json, "id") : "");
    t_free(&me);
    CHECK(ok && strcmp(cc.user_id, alice_id) == 0 && strcmp(cc.agent_id, dev->agent_id[0]) == 0 &&
              strcmp(cc.workspace_id, dev->id) == 0 && cc.port == 8000 && strcmp(cc.region, "primary") == 0 &&
              cc.exp >= now + 55 && cc.exp <= now + 65,
          "connect token: bound to user, agent, port and region, 1 minute (%s)", r.body);
    CHECK(ok && op_agent_cred_read(&j, now, &cred) == -EINVAL, "a connect token is not a credential");
    t_free(&r);
    r = t_call(p, "POST", path, "{\"port\":22,\"region\":\"primary\"}", owner);
    CHECK(r.status == 200 && verify(p, t_str(r.json, "signed_token"), &j), "site owner gets a connect token");
    t_free(&r);
    expect(t_call(p, "POST", path, "{\"port\":22,\"region\":\"primary\"}", carol), 404, OP_NOT_FOUND_MSG,
           "another member gets no connect token");
    expect(t_call(p, "POST", path, "{\"port\":22,\"region\":\"primary\"}", NULL), 401, NULL,
           "anonymous connect token");
    expect(t_call(p, "POST", path, "{\"port\":0,\"region\":\"primary\"}", alice), 400, "Validation failed.",
           "port 0");
    expect(t_call(p, "POST", path, "{\"port\":70000,\"region\":\"primary\"}", alice), 400,
           "Validation failed.", "port 70000");
    expect(t_call(p, "POST", path, "{\"port\":22}", alice), 400, "Validation failed.", "no region");
    expect(t_call(p, "POST", path, "{\"port\":22,\"region\":\"mars\"}", alice), 400,
           "Region \"mars\" does not exist.", "unknown region");
    r = t_call(p, "POST", "/api/v2/workspaceproxies", "{\"name\":\"eu\"}", owner);
    CHECK(r.status == 201, "create proxy eu");
    if (t_str(r.json, "proxy_token")) remember(t_str(r.json, "proxy_token") + 37);
    expect(t_proxy_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, t_str(r.json, "proxy_token")),
           401, unauth, "a proxy token is not an agent token");
    t_free(&r);
    r = t_call(p, "POST", path, "{\"port\":22,\"region\":\"EU\"}", alice);
    CHECK(r.status == 200 && t_streq(t_str(r.json, "region"), "eu") &&
              verify(p, t_str(r.json, "signed_token"), &j) && op_connect_read(&j, now, &cc) == 0 &&
              strcmp(cc.region, "eu") == 0,
          "a proxy region, by its stored name");
    t_free(&r);
    snprintf(body, sizeof(body), "/api/v2/workspaceagents/%s/connect-token",
             "00000000-0000-4000-8000-000000000000");
    expect(t_call(p, "POST", body, "{\"port\":22,\"region\":\"primary\"}", owner), 404, OP_NOT_FOUND_MSG,
           "connect token for an unknown agent");

    /* Regeneration: the old token stops working at once, the new one works. */
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s/external-agent/main/credentials", dev->id);
    r = t_call(p, "POST", path, NULL, alice);
    const char *nt = t_str(r.json, "agent_token");
    char newtok[OP_AGENT_TOKEN_LEN + 1] = "";
    if (nt) snprintf(newtok, sizeof(newtok), "%s", nt);
    CHECK(r.status == 200 && token_format(newtok, dev->agent_id[0]) && strcmp(newtok, tok) != 0 &&
              t_str(r.json, "command") && strstr(t_str(r.json, "command"), "CODER_AGENT_TOKEN="),
          "regenerate the agent token -> 200 new token and a command");
    remember(newtok + 37);
    t_free(&r);
    expect(t_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, tok), 401, unauth,
           "old token after regeneration");
    expect(t_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, newtok), 200, NULL,
           "new token works");
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s/external-agent/nope/credentials", dev->id);
    expect(t_call(p, "POST", path, NULL, alice), 404, OP_NOT_FOUND_MSG, "regenerate an unknown agent");
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s/external-agent/main/credentials", dev->id);
    expect(t_call(p, "GET", path, NULL, alice), 405, NULL, "GET credentials");
    snprintf(ci->token[0], sizeof(ci->token[0]), "%s", newtok); /* reused below as "a token of dev" */
}

static void test_delete(struct op_primary *p, const char *owner, const char *alice, const struct ws *dev,
                        const struct ws *ci, const char *dev_token)
{
    char path[128];
    expect(t_call(p, "DELETE", "/api/v2/users/alice", NULL, owner), 417,
           "You cannot remove a user with workspaces. Delete their workspaces first.",
           "delete a user with workspaces");
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s", dev->id);
    expect(t_call(p, "DELETE", path, NULL, alice), 200, "Workspace has been deleted!",
           "member deletes own workspace");
    expect(t_call(p, "GET", path, NULL, alice), 404, OP_NOT_FOUND_MSG, "deleted workspace is gone");
    expect(t_call(p, "GET", "/api/v2/workspaceagents/me/manifest", NULL, dev_token), 401,
           "Workspace agent not authorized.", "the deleted workspace's agent token is refused");
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s", ci->id);
    expect(t_call(p, "DELETE", path, NULL, owner), 200, NULL, "site owner deletes alice's workspace");
    expect(t_call(p, "DELETE", "/api/v2/users/alice", NULL, owner), 200, "User has been deleted!",
           "delete alice");
    expect(t_call(p, "GET", "/api/v2/users/me", NULL, alice), 401, NULL,
           "the deleted user's session is refused");
}

static void check_no_plaintext(const char *when)
{
    int hits = t_plaintext_hits(&secrets, dir);
    CHECK(hits == 0 && secrets.n >= 12,
          "%s: none of %d secrets (agent tokens, sessions, passwords) is in the database", when, secrets.n);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/outpost-primary-ws-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    struct op_primary_config cfg = {0};
    cfg.data_dir = dir;
    cfg.postgres_url = t_pg_url(dir, true);
    cfg.access_url = "http://127.0.0.1:3000";
    cfg.kdf_iterations = 1000;
    cfg.agent_heartbeat_ms = HEARTBEAT_MS;
    cfg.agent_connection_timeout_ms = TIMEOUT_MS;
    struct op_primary *p = NULL;
    char err[256] = "";
    if (op_primary_open(&cfg, &p, err, sizeof(err)) != 0) {
        printf("FAIL open: %s\n", err);
        return 1;
    }
    char *owner = NULL, *alice = NULL, *carol = NULL, alice_id[37] = "";
    test_users(p, &owner, &alice, &carol, alice_id);
    struct ws dev, ci;
    test_workspaces(p, owner, alice, carol, &dev, &ci);
    test_agent_api(p, owner, alice, carol, &dev, &ci);
    check_no_plaintext("while running");
    test_delete(p, owner, alice, &dev, &ci, ci.token[0]);
    op_primary_close(p);
    check_no_plaintext("after close");
    free(owner);
    free(alice);
    free(carol);
    t_rm_rf(dir);
    return check_report("primary workspaces, users and agents");
}
