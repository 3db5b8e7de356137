/*
 * Fuzz target for the primary API's request decoding: the first input byte picks an endpoint, the rest is
 * the request body (JSON), the query string or the path tail. The handler runs against a real primary
 * (temp data dir, SQLite) with a valid owner session and proxy token, so decoding reaches the deep paths.
 * Invariants: the handler always answers with a 2xx-5xx status, and every non-empty body is valid JSON.
 */
#include <cjson/cJSON.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "http/app.h"
#include "primary/primary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct op_primary *P;
static char dir[64];
static char session[64];
static char proxy_token[128];
static char agent_token[128];
static char agent_path[128]; /* /api/v2/workspaceagents/<id>/connect-token */

static int call(const char *method, const char *path, const char *query, size_t qlen, const char *body,
                size_t blen, const char *hname, const char *hval, char **out)
{
    struct op_app_header h[1] = {{op_span(hname, strlen(hname)), op_span(hval, strlen(hval))}};
    struct op_app_request req = {0};
    req.method = op_span(method, strlen(method));
    req.path = op_span(path, strlen(path));
    req.query = op_span(query ? query : "", qlen);
    req.body = op_span(body ? body : "", blen);
    req.headers = h;
    req.nheaders = 1;
    req.remote_ip = "127.0.0.1";
    struct op_app_response resp = {0};
    op_primary_handle(P, &req, &resp);
    if (resp.status < 200 || resp.status > 599) abort();
    if (resp.body_len) {
        cJSON *j = cJSON_ParseWithLength(resp.body, resp.body_len);
        if (!j && strcmp(path, "/healthz") != 0) abort();
        cJSON_Delete(j);
    }
    if (out)
        *out = resp.body;
    else
        free(resp.body);
    return resp.status;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    op_primary_close(P);
    P = NULL;
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    op_log_set_level(OP_LOG_ERROR);
    snprintf(dir, sizeof(dir), "/tmp/outpost-fuzz-api-XXXXXX");
    if (!mkdtemp(dir)) abort();
    struct op_primary_config cfg = {0};
    cfg.data_dir = dir;
    cfg.access_url = "http://127.0.0.1:3000";
    cfg.wildcard_access_url = "*.apps.example.com";
    cfg.kdf_iterations = 1;
    char err[256];
    if (op_primary_open(&cfg, &P, err, sizeof(err)) != 0) abort();
    atexit(cleanup);
    const char *first = "{\"username\":\"admin\",\"email\":\"a@example.com\",\"password\":\"password1\"}";
    call("POST", "/api/v2/users/first", NULL, 0, first, strlen(first), "X", "", NULL);
    const char *login = "{\"email\":\"a@example.com\",\"password\":\"password1\"}";
    char *body = NULL;
    call("POST", "/api/v2/users/login", NULL, 0, login, strlen(login), "X", "", &body);
    cJSON *j = cJSON_Parse(body);
    snprintf(session, sizeof(session), "%s", cJSON_GetObjectItem(j, "session_token")->valuestring);
    cJSON_Delete(j);
    free(body);
    const char *create = "{\"name\":\"fuzz\"}";
    call("POST", "/api/v2/workspaceproxies", NULL, 0, create, strlen(create), "Coder-Session-Token", session,
         &body);
    j = cJSON_Parse(body);
    snprintf(proxy_token, sizeof(proxy_token), "%s", cJSON_GetObjectItem(j, "proxy_token")->valuestring);
    cJSON_Delete(j);
    free(body);
    const char *ws = "{\"name\":\"fz\",\"agents\":[\"main\"]}";
    call("POST", "/api/v2/users/me/workspaces", NULL, 0, ws, strlen(ws), "Coder-Session-Token", session,
         &body);
    j = cJSON_Parse(body);
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "agent_tokens"), 0);
    snprintf(agent_token, sizeof(agent_token), "%s", cJSON_GetObjectItem(t, "token")->valuestring);
    snprintf(agent_path, sizeof(agent_path), "/api/v2/workspaceagents/%s/connect-token",
             cJSON_GetObjectItem(t, "agent_id")->valuestring);
    cJSON_Delete(j);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!P) setup();
    if (size == 0) return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    const char *S = "Coder-Session-Token", *X = "Coder-External-Proxy-Token";
    switch (data[0] % 18) {
    case 0:
        call("POST", "/api/v2/users/first", NULL, 0, rest, n, "X", "", NULL);
        break;
    case 1:
        call("POST", "/api/v2/users/login", NULL, 0, rest, n, "X", "", NULL);
        break;
    case 2:
        call("POST", "/api/v2/workspaceproxies", NULL, 0, rest, n, S, session, NULL);
        break;
    case 3:
        call("PATCH", "/api/v2/workspaceproxies/fuzz", NULL, 0, rest, n, S, session, NULL);
        break;
    case 4:
        call("PATCH", "/api/v2/workspaceproxies/primary", NULL, 0, rest, n, S, session, NULL);
        break;
    case 5:
        call("POST", "/api/v2/workspaceproxies/me/register", NULL, 0, rest, n, X, proxy_token, NULL);
        break;
    case 6:
        call("POST", "/api/v2/workspaceproxies/me/deregister", NULL, 0, rest, n, X, proxy_token, NULL);
        break;
    case 7:
        call("POST", "/api/v2/workspaceproxies/me/app-stats", NULL, 0, rest, n, X, proxy_token, NULL);
        break;
    case 8:
        call("GET", "/api/v2/workspaceproxies/me/crypto-keys", rest, n, NULL, 0, X, proxy_token, NULL);
        break;
    case 9: {
        /* the token header itself */
        char tok[300];
        size_t l = n < sizeof(tok) - 1 ? n : sizeof(tok) - 1;
        memcpy(tok, rest, l);
        tok[l] = '\0';
        call("GET", "/api/v2/workspaceproxies/me/crypto-keys", "feature=workspace_apps_token", 28, NULL, 0, X,
             tok, NULL);
        call("GET", "/api/v2/users/me", NULL, 0, NULL, 0, S, tok, NULL);
        call("GET", "/api/v2/users/me", NULL, 0, NULL, 0, "Cookie", tok, NULL);
        break;
    }
    case 10: {
        /* path tail: proxy references, percent-encoding, traversal shapes */
        char path[600];
        size_t l = n < 500 ? n : 500;
        memcpy(path, "/api/v2/workspaceproxies/", 25);
        memcpy(path + 25, rest, l);
        path[25 + l] = '\0';
        if (strlen(path) == 25 + l) {
            call("GET", path, NULL, 0, NULL, 0, S, session, NULL);
            call("PATCH", path, NULL, 0, "{\"display_name\":\"x\"}", 20, S, session, NULL);
        }
        break;
    }
    case 12:
        call("POST", "/api/v2/users", NULL, 0, rest, n, S, session, NULL);
        break;
    case 13:
        call("POST", "/api/v2/users/me/workspaces", NULL, 0, rest, n, S, session, NULL);
        break;
    case 14:
        call("POST", "/api/v2/workspaceagents/me/report", NULL, 0, rest, n, S, agent_token, NULL);
        break;
    case 15:
        call("POST", agent_path, NULL, 0, rest, n, S, session, NULL);
        break;
    case 16:
        call("GET", "/api/v2/workspaces", rest, n, NULL, 0, S, session, NULL);
        break;
    case 17: {
        /* the agent token header itself, and user/workspace path tails */
        char tok[300], path[700];
        size_t l = n < sizeof(tok) - 1 ? n : sizeof(tok) - 1;
        memcpy(tok, rest, l);
        tok[l] = '\0';
        call("GET", "/api/v2/workspaceagents/me/manifest", NULL, 0, NULL, 0, S, tok, NULL);
        if (strlen(tok) == l) {
            snprintf(path, sizeof(path), "/api/v2/users/%s/workspace/%s", tok, tok);
            call("GET", path, NULL, 0, NULL, 0, S, session, NULL);
            snprintf(path, sizeof(path), "/api/v2/workspaceagents/%s", tok);
            call("GET", path, NULL, 0, NULL, 0, S, session, NULL);
        }
        break;
    }
    default:
        call("GET", "/api/v2/users/me", rest, n, NULL, 0, "X", "", NULL);
        break;
    }
    return 0;
}
