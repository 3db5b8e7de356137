/*
 * The web terminal's authorization on the primary, through op_primary_handle with a real SQLite file:
 * POST /api/v2/applications/reconnecting-pty-signed-token (session required; ws/wss only; the exact PTY
 * path of the agent named in agentID; only a registered, not deleted proxy's access host, never the
 * primary's own; the owner and site owners, not another member; unknown agents) and the token it gives
 * (a terminal token for that agent and path, verifiable with the workspace_apps_token keys); then the
 * primary's own GET .../pty, which answers with a grant for the owner and site owners only.
 */
#include <errno.h>
#include "db/db.h"

#include "primary/primary_int.h"
#include "tests/unit/primary_test_util.h"
#include "wsapp/token.h"

#define PTY_TOKEN "/api/v2/applications/reconnecting-pty-signed-token"
#define PRIMARY   "http://127.0.0.1:3000"

static char dir[256];
static struct t_secrets secrets;

struct fix {
    char *owner, *alice, *bob;
    char alice_id[37], owner_id[37];
    char agent[37], ws[37];
};

static void expect(struct t_resp r, int status, const char *detail, const char *what)
{
    const char *d = t_str(r.json, "detail");
    bool ok = r.status == status && (!detail || (d && strstr(d, detail))) &&
              (status != 400 || t_streq(t_str(r.json, "message"), "Invalid URL.") || !detail);
    CHECK(ok, "%s -> %d%s%s (got %d %s)", what, status, detail ? " " : "", detail ? detail : "", r.status,
          r.body ? r.body : "");
    t_free(&r);
}

static struct t_resp pty_token(struct op_primary *p, const char *url, const char *agent, const char *session)
{
    char body[1024];
    snprintf(body, sizeof(body), "{\"url\":\"%s\",\"agentID\":\"%s\"}", url, agent);
    return t_call(p, "POST", PTY_TOKEN, body, session);
}

static void register_proxy(struct op_primary *p, const char *owner, const char *name, const char *url,
                           const char *replica)
{
    char body[700];
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    struct t_resp r = t_call(p, "POST", "/api/v2/workspaceproxies", body, owner);
    char *tok = strdup(t_str(r.json, "proxy_token") ? t_str(r.json, "proxy_token") : "");
    CHECK(r.status == 201 && *tok, "create proxy %s", name);
    t_free(&r);
    snprintf(body, sizeof(body),
             "{\"access_url\":\"%s\",\"wildcard_hostname\":\"*.%s.example.com\",\"derp_enabled\":true,"
             "\"derp_only\":false,\"replica_id\":\"%s\",\"hostname\":\"h\",\"version\":\"v2.9.0\","
             "\"replica_relay_address\":\"http://10.0.0.1:3001\"}",
             url, name, replica);
    r = t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, tok);
    CHECK(r.status == 201, "register proxy %s (got %d %s)", name, r.status, r.body ? r.body : "");
    t_free(&r);
    free(tok);
}

static void user_id(struct op_primary *p, const char *session, char out[37])
{
    struct t_resp r = t_call(p, "GET", "/api/v2/users/me", NULL, session);
    snprintf(out, 37, "%s", t_str(r.json, "id") ? t_str(r.json, "id") : "");
    t_free(&r);
}

static void setup(struct op_primary *p, struct fix *f)
{
    struct t_resp r = t_call(
        p, "POST", "/api/v2/users/first",
        "{\"username\":\"admin\",\"email\":\"admin@example.com\",\"password\":\"Admin-Pass-1\"}", NULL);
    CHECK(r.status == 201, "first user");
    t_free(&r);
    f->owner = t_login(p, &secrets, "admin", "Admin-Pass-1", NULL);
    const char *users[] = {
        "{\"username\":\"alice\",\"email\":\"alice@example.com\",\"password\":\"Alice-Pass-1\"}",
        "{\"username\":\"bob\",\"email\":\"bob@example.com\",\"password\":\"Bob-Pass-1\"}"};
    for (int i = 0; i < 2; i++) {
        r = t_call(p, "POST", "/api/v2/users", users[i], f->owner);
        CHECK(r.status == 201, "create user %d", i);
        t_free(&r);
    }
    f->alice = t_login(p, &secrets, "alice", "Alice-Pass-1", NULL);
    f->bob = t_login(p, &secrets, "bob", "Bob-Pass-1", NULL);
    user_id(p, f->alice, f->alice_id);
    user_id(p, f->owner, f->owner_id);
    r = t_call(p, "POST", "/api/v2/users/me/workspaces", "{\"name\":\"dev\",\"agents\":[\"main\"]}",
               f->alice);
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "agent_tokens"), 0);
    snprintf(f->agent, 37, "%s", t_str(t, "agent_id") ? t_str(t, "agent_id") : "");
    snprintf(f->ws, 37, "%s", t_str(r.json, "id") ? t_str(r.json, "id") : "");
    CHECK(r.status == 201 && strlen(f->agent) == 36 && strlen(f->ws) == 36, "create workspace (got %d %s)",
          r.status, r.body ? r.body : "");
    t_free(&r);
    register_proxy(p, f->owner, "eu", "https://eu.example.com", "aaaaaaaa-1111-4111-8111-111111111111");
    register_proxy(p, f->owner, "us", "http://127.0.0.1:3001", "bbbbbbbb-2222-4222-8222-222222222222");
    register_proxy(p, f->owner, "gone", "https://gone.example.com", "cccccccc-3333-4333-8333-333333333333");
    r = t_call(p, "DELETE", "/api/v2/workspaceproxies/gone", NULL, f->owner);
    CHECK(r.status == 200, "delete proxy gone");
    t_free(&r);
}

/* The token of a 200 verifies with the database's keys and is a terminal token of agent for user. */
static void expect_token(struct op_primary *p, struct t_resp r, const char *user, const char *agent,
                         const char *ws, const char *base, const char *what)
{
    const char *tok = t_str(r.json, "signed_token");
    CHECK(r.status == 200 && tok, "%s -> 200 with signed_token (got %d %s)", what, r.status, r.body);
    struct op_wsapp_key keys[8];
    int n = 0;
    struct op_db_stmt *st = NULL;
    st =
        op_db_prepare(p->db, "SELECT sequence, secret FROM crypto_keys WHERE feature = 'workspace_apps_token'"
                             " AND secret IS NOT NULL");
    while (n < 8 && op_db_step(st) == OP_DB_ROW) {
        keys[n].kid = op_db_col_int64(st, 0);
        keys[n].len = 64;
        if (op_hex_decode(op_db_col_text(st, 1), 128, keys[n].secret, 64) == 0) n++;
    }
    op_db_finalize(st);
    struct op_wsapp_token t;
    int64_t now = op_wall_ms() / 1000;
    int rc = tok ? op_wsapp_token_verify(tok, strlen(tok), keys, n, now, &t) : -EINVAL;
    CHECK(rc == 0, "%s: the token verifies (%d)", what, rc);
    if (rc == 0) {
        CHECK(t.req.access == OP_WSAPP_TERMINAL, "%s: access terminal", what);
        CHECK(strcmp(t.req.agent, agent) == 0 && strcmp(t.agent_id, agent) == 0, "%s: the agent", what);
        CHECK(strcmp(t.user_id, user) == 0, "%s: the user %s (got %s)", what, user, t.user_id);
        CHECK(strcmp(t.workspace_id, ws) == 0, "%s: the workspace", what);
        CHECK(strcmp(t.req.base_path, base) == 0, "%s: base path %s (got %s)", what, base, t.req.base_path);
        CHECK(t.exp > now && t.exp <= now + OP_WSAPP_TOKEN_LIFETIME_S, "%s: expires within a minute", what);
        CHECK(!t.req.user[0] && !t.req.workspace[0] && !t.req.slug_or_port[0], "%s: names only the agent",
              what);
    }
    t_free(&r);
}

static void test_token(struct op_primary *p, const struct fix *f)
{
    char url[512], base[256], up[64];
    snprintf(base, sizeof(base), "/api/v2/workspaceagents/%s/pty/", f->agent);
    snprintf(url, sizeof(url), "wss://eu.example.com/api/v2/workspaceagents/%s/pty?reconnect=x&width=80",
             f->agent);
    expect_token(p, pty_token(p, url, f->agent, f->alice), f->alice_id, f->agent, f->ws, base, "alice, eu");
    expect_token(p, pty_token(p, url, f->agent, f->owner), f->owner_id, f->agent, f->ws, base,
                 "site owner, eu");
    snprintf(url, sizeof(url), "WSS://EU.example.com:443/api/v2/workspaceagents/%s/pty", f->agent);
    expect_token(p, pty_token(p, url, f->agent, f->alice), f->alice_id, f->agent, f->ws, base,
                 "scheme and host case-insensitive, default port");
    snprintf(url, sizeof(url), "ws://127.0.0.1:3001/api/v2/workspaceagents/%s/pty", f->agent);
    expect_token(p, pty_token(p, url, f->agent, f->alice), f->alice_id, f->agent, f->ws, base,
                 "alice, us over ws");
    /* agentID in upper case names the same agent */
    for (int i = 0; i < 36; i++)
        up[i] = (char)(f->agent[i] >= 'a' && f->agent[i] <= 'f' ? f->agent[i] - 32 : f->agent[i]);
    up[36] = '\0';
    expect_token(p, pty_token(p, url, up, f->alice), f->alice_id, f->agent, f->ws, base,
                 "agentID upper case");

    expect(t_call(p, "POST", PTY_TOKEN, "{}", NULL), 401, NULL, "no session");
    expect(pty_token(p, url, f->agent, f->bob), 404, NULL, "another member");
    expect(pty_token(p, url, "aaaaaaaa-0000-4000-8000-000000000000", f->alice), 400, "path",
           "the URL's agent differs from agentID");
    char other[512];
    snprintf(other, sizeof(other), "ws://127.0.0.1:3001/api/v2/workspaceagents/%s/pty",
             "aaaaaaaa-0000-4000-8000-000000000000");
    expect(pty_token(p, other, "aaaaaaaa-0000-4000-8000-000000000000", f->alice), 404, NULL, "unknown agent");
    expect(pty_token(p, url, "not-a-uuid", f->alice), 400, "UUID", "agentID not a UUID");
    expect(t_call(p, "POST", PTY_TOKEN, "{\"agentID\":\"x\"}", f->alice), 400, "required", "no url");
    expect(t_call(p, "GET", PTY_TOKEN, NULL, f->alice), 405, NULL, "GET");

    struct {
        const char *fmt, *detail, *what;
    } bad[] = {
        {"https://eu.example.com/api/v2/workspaceagents/%s/pty", "scheme", "https scheme"},
        {"http://eu.example.com/api/v2/workspaceagents/%s/pty", "scheme", "http scheme"},
        {"wss://eu.example.com/api/v2/workspaceagents/%s/pty/", "path", "trailing slash"},
        {"wss://eu.example.com/api/v2/workspaceagents/%s/ptyx", "path", "longer path"},
        {"wss://eu.example.com/api/v2/workspaceagents/%s/tcp", "path", "another endpoint"},
        {"wss://eu.example.com/x/api/v2/workspaceagents/%s/pty", "path", "a prefix"},
        {"ws://127.0.0.1:3000/api/v2/workspaceagents/%s/pty", "primary", "the primary's host"},
        {"ws://127.0.0.1/api/v2/workspaceagents/%s/pty", "not the access URL host", "another port"},
        {"wss://app--main--dev--alice.eu.example.com/api/v2/workspaceagents/%s/pty", "not the access URL",
         "a wildcard app host"},
        {"wss://gone.example.com/api/v2/workspaceagents/%s/pty", "not the access URL", "a deleted proxy"},
        {"wss://evil.example.com/api/v2/workspaceagents/%s/pty", "not the access URL", "an unknown host"},
        {"wss://x@eu.example.com/api/v2/workspaceagents/%s/pty", "user information", "user info"},
        {"wss:///api/v2/workspaceagents/%s/pty", "host", "no host"},
        {"wss://eu.example.com:8443/api/v2/workspaceagents/%s/pty", "not the access URL", "another eu port"},
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(bad); i++) {
        char u[512];
        snprintf(u, sizeof(u), bad[i].fmt, f->agent);
        expect(pty_token(p, u, f->agent, f->alice), 400, bad[i].detail, bad[i].what);
    }
}

static void test_authorize(struct op_primary *p, const struct fix *f)
{
    char target[256], want[128];
    snprintf(target, sizeof(target), "/api/v2/workspaceagents/%s/pty", f->agent);
    const char *sessions[] = {f->alice, f->owner, f->bob, NULL};
    const char *ids[] = {f->alice_id, f->owner_id};
    for (int i = 0; i < 4; i++) {
        struct op_app_request req = {0};
        struct op_app_header hh = {op_span("Coder-Session-Token", 19), op_span(NULL, 0)};
        if (sessions[i]) hh.value = op_span(sessions[i], strlen(sessions[i]));
        req.method = op_span("GET", 3);
        req.path = op_span(target, strlen(target));
        req.query = op_span("reconnect=x", 11);
        req.host = op_span("127.0.0.1:3000", 14);
        req.headers = &hh;
        req.nheaders = sessions[i] ? 1 : 0;
        req.remote_ip = "127.0.0.1";
        struct op_app_response resp = {0};
        op_primary_handle(p, &req, &resp);
        if (i < 2) {
            snprintf(want, sizeof(want), "pty %s %s", f->agent, ids[i]);
            CHECK(resp.status == 200 && strcmp(resp.grant, want) == 0,
                  "GET pty as user %d: grant %s (got %d %s)", i, want, resp.status, resp.grant);
        } else {
            CHECK(resp.status == (i == 2 ? 404 : 401) && !resp.grant[0],
                  "GET pty as user %d: %d, no grant (got %d)", i, i == 2 ? 404 : 401, resp.status);
        }
        free(resp.body);
    }
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/outpost-primary-pty-XXXXXX");
    struct op_primary_config cfg = {.access_url = PRIMARY, .wildcard_access_url = "*.apps.example.com"};
    struct op_primary *p = t_open(dir, &cfg);
    if (!p) return 1;
    struct fix f = {0};
    setup(p, &f);
    test_token(p, &f);
    test_authorize(p, &f);
    op_primary_close(p);
    free(f.owner);
    free(f.alice);
    free(f.bob);
    t_rm_rf(dir);
    return check_report("primary web terminal");
}
