/*
 * primary/api.c — the request router (op_primary_handle) and the JSON response helpers. Errors use
 * codersdk.Response: {"message", "detail" (omitted when empty), "validations" (omitted when empty)}.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "primary/primary_int.h"
#include "util/buildinfo.h"

void op_api_json(struct op_app_response *resp, int status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->content_type = "application/json";
    if (!text) {
        op_app_respond(resp, 500, "{\"message\":\"Internal error.\",\"detail\":\"out of memory\"}");
        return;
    }
    resp->status = status;
    resp->body = text;
    resp->body_len = strlen(text);
}

static cJSON *error_obj(const char *message, const char *detail)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", message);
    if (detail && *detail) cJSON_AddStringToObject(o, "detail", detail);
    return o;
}

void op_api_error(struct op_app_response *resp, int status, const char *message, const char *detail)
{
    op_api_json(resp, status, error_obj(message, detail));
}

bool op_api_commit(struct op_primary *p, int rc, struct op_app_response *resp, const char *message,
                   bool db_detail)
{
    if (!rc && !op_store_commit(p)) return true;
    /* A full disk is the operator's to fix, not a bug: say so (507), and what still works. */
    bool full = op_db_last_error(p->db) == -ENOSPC;
    char detail[300];
    snprintf(detail, sizeof(detail), "%s", op_db_errmsg(p->db));
    op_store_rollback(p);
    if (full)
        op_api_error(resp, 507,
                     "The primary's database is full: no space left on its disk. Nothing was changed; reads "
                     "keep working until space is freed.",
                     detail);
    else
        op_api_error(resp, 500, message, db_detail ? detail : NULL);
    return false;
}

void op_api_lookup_error(struct op_app_response *resp, int rc)
{
    op_api_error(resp, rc == -ENOENT ? 404 : 500, rc == -ENOENT ? OP_NOT_FOUND_MSG : "Internal error.", NULL);
}

void op_api_validation(struct op_app_response *resp, int status, const char *message, const char *field,
                       const char *detail)
{
    cJSON *o = error_obj(message, NULL);
    cJSON *arr = cJSON_AddArrayToObject(o, "validations");
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "field", field);
    cJSON_AddStringToObject(v, "detail", detail);
    cJSON_AddItemToArray(arr, v);
    op_api_json(resp, status, o);
}

cJSON *op_api_body_object(const struct op_app_request *req, struct op_app_response *resp)
{
    const char *end = NULL;
    cJSON *o = req->body.len ? cJSON_ParseWithLengthOpts(req->body.p, req->body.len, &end, false) : NULL;
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        op_api_error(resp, 400, "Request body must be valid JSON.",
                     req->body.len ? "the body is not a JSON object" : "the body is empty");
        return NULL;
    }
    /* Only whitespace may follow the object. */
    for (const char *q = end; q && q < req->body.p + req->body.len; q++) {
        if (!isspace((unsigned char)*q)) {
            cJSON_Delete(o);
            op_api_error(resp, 400, "Request body must be valid JSON.",
                         "trailing data after the JSON object");
            return NULL;
        }
    }
    return o;
}

const char *op_json_str(const cJSON *obj, const char *name, bool *bad)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it || cJSON_IsNull(it)) return NULL;
    if (!cJSON_IsString(it) || !it->valuestring) {
        *bad = true;
        return NULL;
    }
    return it->valuestring;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Percent-decodes src[0..len) into out ('+' is a space in queries). Returns 0 or -ENOSPC/-EINVAL. */
static int pct_decode(const char *src, size_t len, char *out, size_t outlen, bool plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len || hexv(src[i + 1]) < 0 || hexv(src[i + 2]) < 0) return -EINVAL;
            c = (char)(hexv(src[i + 1]) << 4 | hexv(src[i + 2]));
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == '\0') return -EINVAL;
        if (o + 1 >= outlen) return -ENOSPC;
        out[o++] = c;
    }
    if (outlen == 0) return -ENOSPC;
    out[o] = '\0';
    return 0;
}

int op_api_form_value(op_span_t form, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *q = form.p, *end = form.p + form.len;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - q) == nlen && memcmp(q, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : pe;
            int rc = pct_decode(v, (size_t)(pe - v), out, outlen, true);
            return rc == -EINVAL ? -ENOENT : rc;
        }
        q = pe + 1;
    }
    return -ENOENT;
}

int op_api_query(const struct op_app_request *req, const char *name, char *out, size_t outlen)
{
    return op_api_form_value(req->query, name, out, outlen);
}

bool op_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32) return false;
    bool prev_hyphen = true; /* no leading hyphen */
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-') {
            if (prev_hyphen) return false;
            prev_hyphen = true;
        } else if (isalnum((unsigned char)s[i]) && (unsigned char)s[i] < 128) {
            prev_hyphen = false;
        } else {
            return false;
        }
    }
    return !prev_hyphen;
}

static bool span_eq(op_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static void buildinfo(struct op_primary *p, struct op_app_response *resp)
{
    cJSON *o = op_buildinfo_json(OP_PRIMARY_VERSION, p->access_url, false);
    cJSON_AddStringToObject(o, "deployment_id", p->deployment_id);
    op_api_json(resp, 200, o);
}

static void method_not_allowed(struct op_app_response *resp)
{
    op_api_error(resp, 405, "Method not allowed.", NULL);
}

static bool require_owner(const struct op_user *u, struct op_app_response *resp)
{
    if (u->owner) return true;
    op_api_error(resp, 403, "You are not authorized to use this endpoint.", NULL);
    return false;
}

/* Splits path after prefix into '/'-separated segments (none empty); the count, or -1 if more than max. */
static int split_path(const char *path, const char *prefix, char seg[][128], int max)
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0) return -1;
    int n = 0;
    for (const char *q = path + pl; *q;) {
        size_t l = strcspn(q, "/");
        if (l == 0 || l >= 128 || n == max) return -1;
        memcpy(seg[n], q, l);
        seg[n++][l] = '\0';
        q += l;
        if (*q == '/') q++;
    }
    return n;
}

/* /api/v2/workspaceagents/me/<action> (agent-token authenticated). */
static void route_agent_me(struct op_primary *p, const char *action, const struct op_app_request *req,
                           struct op_app_response *resp)
{
    bool get = span_eq(req->method, "GET"), post = span_eq(req->method, "POST");
    bool manifest = strcmp(action, "manifest") == 0, report = strcmp(action, "report") == 0;
    bool cred = strcmp(action, "credential") == 0;
    if (!manifest && !report && !cred) {
        op_api_error(resp, 404, "Route not found.", NULL);
        return;
    }
    if ((manifest && !get) || ((report || cred) && !post)) {
        method_not_allowed(resp);
        return;
    }
    struct op_agent_auth a;
    if (!op_auth_agent(p, req, resp, &a)) return;
    if (manifest)
        op_api_agent_manifest(p, &a, resp);
    else if (report)
        op_api_agent_report(p, &a, req, resp);
    else
        op_api_agent_credential(p, &a, resp);
}

/* Users, workspaces and agents (session-authenticated). Returns false when path is none of them. */
static bool route_workspaces(struct op_primary *p, const char *path, const struct op_app_request *req,
                             struct op_app_response *resp)
{
    char seg[5][128];
    int n;
    bool get = span_eq(req->method, "GET"), post = span_eq(req->method, "POST");
    bool del = span_eq(req->method, "DELETE");
    enum {
        W_NONE,
        W_USERS,
        W_USER,
        W_USER_ROLES,
        W_USER_WS,
        W_USER_WS_NAME,
        W_WSS,
        W_WS,
        W_WS_CRED,
        W_AGENT,
        W_CONNECT,
        W_PORTS,
        W_PTY,
        W_PTY_TOKEN,
        W_PORT_SHARE
    };
    int r = W_NONE;
    bool allowed = false;
    if (strcmp(path, "/api/v2/users") == 0) {
        r = W_USERS, allowed = get || post;
    } else if (strcmp(path, "/api/v2/workspaces") == 0) {
        r = W_WSS, allowed = get;
    } else if ((n = split_path(path, "/api/v2/users/", seg, 3)) >= 1) {
        if (n == 1) r = W_USER, allowed = get || del;
        if (n == 2 && strcmp(seg[1], "roles") == 0) r = W_USER_ROLES, allowed = span_eq(req->method, "PUT");
        if (n == 2 && strcmp(seg[1], "workspaces") == 0) r = W_USER_WS, allowed = post;
        if (n == 3 && strcmp(seg[1], "workspace") == 0) r = W_USER_WS_NAME, allowed = get;
    } else if ((n = split_path(path, "/api/v2/workspaces/", seg, 4)) >= 1) {
        if (n == 1) r = W_WS, allowed = get || del;
        if (n == 2 && strcmp(seg[1], "port-share") == 0) r = W_PORT_SHARE, allowed = get || post || del;
        if (n == 4 && strcmp(seg[1], "external-agent") == 0 && strcmp(seg[3], "credentials") == 0)
            r = W_WS_CRED, allowed = post;
    } else if ((n = split_path(path, "/api/v2/workspaceagents/", seg, 2)) >= 1) {
        if (n == 1) r = W_AGENT, allowed = get;
        if (n == 2 && strcmp(seg[1], "connect-token") == 0) r = W_CONNECT, allowed = post;
        if (n == 2 && strcmp(seg[1], "listening-ports") == 0) r = W_PORTS, allowed = get;
        if (n == 2 && strcmp(seg[1], "pty") == 0) r = W_PTY, allowed = get;
    } else if (strcmp(path, "/api/v2/applications/reconnecting-pty-signed-token") == 0) {
        r = W_PTY_TOKEN, allowed = post;
    }
    if (r == W_NONE) return false;
    struct op_user u;
    if (!op_auth_session(p, req, resp, &u)) return true;
    if (!allowed) {
        method_not_allowed(resp);
        return true;
    }
    switch (r) {
    case W_USERS:
        get ? op_api_users_list(p, resp) : op_api_users_create(p, &u, req, resp);
        break;
    case W_USER:
        if (get && strcmp(seg[0], "me") == 0)
            op_api_users_me(p, &u, resp);
        else
            get ? op_api_user_get(p, &u, seg[0], resp) : op_api_user_delete(p, &u, seg[0], resp);
        break;
    case W_USER_ROLES:
        op_api_user_roles(p, &u, seg[0], req, resp);
        break;
    case W_USER_WS:
        op_api_workspace_create(p, &u, seg[0], req, resp);
        break;
    case W_USER_WS_NAME:
        op_api_workspace_by_name(p, &u, seg[0], seg[2], resp);
        break;
    case W_WSS:
        op_api_workspaces_list(p, &u, req, resp);
        break;
    case W_WS:
        get ? op_api_workspace_get(p, &u, seg[0], resp) : op_api_workspace_delete(p, &u, seg[0], resp);
        break;
    case W_WS_CRED:
        op_api_agent_regen_token(p, &u, seg[0], seg[2], resp);
        break;
    case W_AGENT:
        op_api_agent_get(p, &u, seg[0], resp);
        break;
    case W_CONNECT:
        op_api_agent_connect_token(p, &u, seg[0], req, resp);
        break;
    case W_PORTS:
        op_api_agent_ports(p, &u, seg[0], resp);
        break;
    case W_PTY:
        op_api_pty_authorize(p, &u, seg[0], resp);
        break;
    case W_PTY_TOKEN:
        op_api_pty_token(p, &u, req, resp);
        break;
    case W_PORT_SHARE:
        op_api_port_share(p, &u, seg[0], req, resp);
        break;
    default:
        break;
    }
    return true;
}

/* /api/v2/workspaceproxies/me/<action> (proxy-token authenticated). */
static void route_proxy_me(struct op_primary *p, const char *action, const struct op_app_request *req,
                           struct op_app_response *resp)
{
    bool get = span_eq(req->method, "GET"), post = span_eq(req->method, "POST");
    bool known = strcmp(action, "register") == 0 || strcmp(action, "deregister") == 0 ||
                 strcmp(action, "crypto-keys") == 0 || strcmp(action, "app-stats") == 0 ||
                 strcmp(action, "issue-signed-app-token") == 0;
    if (!known) {
        op_api_error(resp, 404, "Route not found.", NULL);
        return;
    }
    struct op_proxy_auth px;
    if (!op_auth_proxy(p, req, resp, &px)) return;
    if (strcmp(action, "register") == 0 && post)
        op_api_proxy_register(p, &px, req, resp);
    else if (strcmp(action, "deregister") == 0 && post)
        op_api_proxy_deregister(p, &px, req, resp);
    else if (strcmp(action, "crypto-keys") == 0 && get)
        op_api_crypto_keys(p, req, resp);
    else if (strcmp(action, "app-stats") == 0 && post)
        op_api_proxy_app_stats(p, &px, req, resp);
    else if (strcmp(action, "issue-signed-app-token") == 0 && post)
        op_api_issue_app_token(p, req, resp);
    else
        method_not_allowed(resp);
}

static void route(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp)
{
    char path[512];
    if (req->path.len >= sizeof(path) ||
        pct_decode(req->path.p, req->path.len, path, sizeof(path), false) != 0) {
        op_api_error(resp, 404, "Route not found.", NULL);
        return;
    }
    size_t pl = strlen(path);
    while (pl > 1 && path[pl - 1] == '/')
        path[--pl] = '\0';
    bool get = span_eq(req->method, "GET"), post = span_eq(req->method, "POST");
    bool patch = span_eq(req->method, "PATCH"), del = span_eq(req->method, "DELETE");

    /* Changes a browser could be made to send from another site are refused (docs/dashboard.md). */
    bool login = strcmp(path, "/login") == 0 || strcmp(path, "/api/v2/users/login") == 0 ||
                 strcmp(path, "/api/v2/users/first") == 0;
    if (!op_web_csrf_ok(p, req, login)) {
        op_api_error(
            resp, 403, "Cross-site request refused.",
            "Requests that change state with the session cookie must come from the dashboard's origin.");
        return;
    }
    if (op_web_route(p, path, req, resp)) return;

    if (strcmp(path, "/api/v2/buildinfo") == 0) {
        get ? buildinfo(p, resp) : method_not_allowed(resp);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        resp->content_type = "text/plain";
        op_app_respond(resp, 200, "OK");
        return;
    }
    if (strcmp(path, "/api/v2/users/first") == 0) {
        if (get)
            op_api_users_first_get(p, resp);
        else if (post)
            op_api_users_first_post(p, req, resp);
        else
            method_not_allowed(resp);
        return;
    }
    if (strcmp(path, "/api/v2/users/login") == 0) {
        post ? op_api_users_login(p, req, resp) : method_not_allowed(resp);
        return;
    }
    if (strcmp(path, "/login") == 0) {
        if (get)
            op_api_login_page(p, req, resp);
        else if (post)
            op_api_login_post(p, req, resp);
        else
            method_not_allowed(resp);
        return;
    }
    if (strcmp(path, "/api/v2/applications/auth-redirect") == 0) {
        get ? op_api_app_auth_redirect(p, req, resp) : method_not_allowed(resp);
        return;
    }
    static const char me_prefix[] = "/api/v2/workspaceproxies/me/";
    if (strncmp(path, me_prefix, sizeof(me_prefix) - 1) == 0 && !strchr(path + sizeof(me_prefix) - 1, '/')) {
        route_proxy_me(p, path + sizeof(me_prefix) - 1, req, resp);
        return;
    }

    static const char agent_me[] = "/api/v2/workspaceagents/me/";
    if (strncmp(path, agent_me, sizeof(agent_me) - 1) == 0 && !strchr(path + sizeof(agent_me) - 1, '/')) {
        route_agent_me(p, path + sizeof(agent_me) - 1, req, resp);
        return;
    }

    /* Everything below needs a user session. Unknown routes still answer 404 first. */
    static const char px_prefix[] = "/api/v2/workspaceproxies/";
    const char *ref = NULL;
    enum { R_NONE, R_ME, R_LOGOUT, R_REGIONS, R_PROXIES, R_PROXY, R_REPLICAS } r = R_NONE;
    if (strcmp(path, "/api/v2/users/me") == 0)
        r = R_ME;
    else if (strcmp(path, "/api/v2/replicas") == 0)
        r = R_REPLICAS;
    else if (strcmp(path, "/api/v2/users/logout") == 0)
        r = R_LOGOUT;
    else if (strcmp(path, "/api/v2/regions") == 0)
        r = R_REGIONS;
    else if (strcmp(path, "/api/v2/workspaceproxies") == 0)
        r = R_PROXIES;
    else if (strncmp(path, px_prefix, sizeof(px_prefix) - 1) == 0 && path[sizeof(px_prefix) - 1] &&
             !strchr(path + sizeof(px_prefix) - 1, '/')) {
        r = R_PROXY;
        ref = path + sizeof(px_prefix) - 1;
    }
    if (r == R_NONE && route_workspaces(p, path, req, resp)) return;
    if (r == R_NONE) {
        op_api_error(resp, 404, "Route not found.", NULL);
        return;
    }
    struct op_user u;
    if (!op_auth_session(p, req, resp, &u)) return;
    switch (r) {
    case R_ME:
        get ? op_api_users_me(p, &u, resp) : method_not_allowed(resp);
        break;
    case R_LOGOUT:
        post ? op_api_users_logout(p, req, resp) : method_not_allowed(resp);
        break;
    case R_REGIONS:
        get ? op_api_regions(p, resp) : method_not_allowed(resp);
        break;
    case R_REPLICAS:
        if (!get)
            method_not_allowed(resp);
        else if (require_owner(&u, resp))
            op_api_replicas(p, resp);
        break;
    case R_PROXIES:
        if (!get && !post) {
            method_not_allowed(resp);
        } else if (require_owner(&u, resp)) {
            if (get)
                op_api_proxies_list(p, resp);
            else
                op_api_proxy_create(p, req, resp);
        }
        break;
    case R_PROXY:
        if (!get && !patch && !del) {
            method_not_allowed(resp);
        } else if (require_owner(&u, resp)) {
            if (get)
                op_api_proxy_get(p, ref, resp);
            else if (patch)
                op_api_proxy_patch(p, ref, req, resp);
            else
                op_api_proxy_delete(p, ref, resp);
        }
        break;
    default:
        break;
    }
}

/* 503 for a request the primary cannot serve while its database is unreachable (replaces any answer). */
static void db_unavailable(struct op_app_response *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->headers_len = 0; /* nor a header of the abandoned answer (a Set-Cookie, say) */
    resp->headers[0] = '\0';
    op_api_error(resp, 503, "The primary cannot reach its database.",
                 "The database connection was lost; the primary is reconnecting. Retry shortly.");
}

void op_primary_handle(void *ctx, const struct op_app_request *req, struct op_app_response *resp)
{
    struct op_primary *p = ctx;
    resp->status = 0;
    resp->content_type = "application/json";
    op_db_clear_error(p->db);
    bool no_db = span_eq(req->path, "/healthz") || span_eq(req->path, "/api/v2/buildinfo");
    if (!no_db && !op_replicas_db_ok(p))
        db_unavailable(resp);
    else
        route(p, req, resp);
    /* An answer made while the connection broke (a 401 for a session it could not look up, say) is not the
     * answer: 503 instead. */
    bool lost = op_db_last_error(p->db) == -ENOTCONN;
    op_replicas_note_db(p);
    if (lost) db_unavailable(resp);
    if (resp->status == 0) op_api_error(resp, 500, "Internal error.", "the handler produced no response");
    op_app_add_header(resp, "X-Coder-Build-Version", OP_PRIMARY_VERSION);
    /* A transaction must never stay open across requests. */
    op_store_rollback(p);
    op_debug("api", "%.*s %.*s -> %d", (int)req->method.len, req->method.p, (int)req->path.len, req->path.p,
             resp->status);
}
