/*
 * primary/workspaces.c — external workspaces (a record its owner creates; an agent running anywhere
 * brings it to life) and their agents: create with agent tokens shown once, list, get by owner and
 * name or by id, delete, and the agent's JSON with its status computed from the contact times.
 *
 * Visibility follows Coder (docs/coder-compat.md): a site owner sees every workspace, a member only their
 * own; a workspace the caller may not see answers 404 exactly like one that does not exist.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/primary_int.h"

#define AGENT_COLS                                                                                           \
    "id, workspace_id, name, connection_timeout_ms, created_at, updated_at, first_connected_at,"             \
    " last_connected_at, disconnected_at, lifecycle_state, version, operating_system, architecture, apps,"   \
    " listening_ports, regions, ssh_host_key"
#define WS_COLS "w.id, w.owner_id, u.username, w.name, w.created_at, w.updated_at"

int op_agent_new_token(const char *agent_id, char token[OP_AGENT_TOKEN_LEN + 1], uint8_t hash[OP_SHA256_LEN])
{
    char secret[OP_AGENT_TOKEN_SECRET_LEN + 1];
    int rc = op_random_alnum(secret, OP_AGENT_TOKEN_SECRET_LEN);
    if (rc) return rc;
    op_sha256(secret, OP_AGENT_TOKEN_SECRET_LEN, hash);
    snprintf(token, OP_AGENT_TOKEN_LEN + 1, "%s:%s", agent_id, secret);
    op_secure_zero(secret, sizeof(secret));
    return 0;
}

const char *op_agent_status(const struct op_primary *p, int64_t now, int64_t created, int64_t timeout_ms,
                            int64_t first, int64_t last, int64_t disconnected)
{
    if (first < 0) return timeout_ms > 0 && now - created > timeout_ms ? "timeout" : "connecting";
    if (disconnected >= 0 && disconnected >= last) return "disconnected";
    if (now - last > (int64_t)(2 * p->agent_heartbeat_ms)) return "disconnected";
    return "connected";
}

static int64_t col_time(struct op_db_stmt *st, int col)
{
    return op_db_col_is_null(st, col) ? -1 : op_db_col_int64(st, col);
}

static void add_time(cJSON *o, const char *name, int64_t ms)
{
    char t[32];
    op_format_time(ms, t);
    cJSON_AddStringToObject(o, name, t);
}

/* Adds a stored JSON array column (validated when it was written) as a member. */
static void add_array(cJSON *o, const char *name, const char *text)
{
    cJSON *a = cJSON_Parse(text);
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        a = cJSON_CreateArray();
    }
    cJSON_AddItemToObject(o, name, a);
}

/* WorkspaceAgent from a row selected with AGENT_COLS. */
static cJSON *agent_json_row(struct op_primary *p, struct op_db_stmt *st)
{
    int64_t now = op_wall_ms(), created = op_db_col_int64(st, 4), timeout_ms = op_db_col_int64(st, 3);
    int64_t first = col_time(st, 6), last = col_time(st, 7), disc = col_time(st, 8);
    const char *status = op_agent_status(p, now, created, timeout_ms, first, last, disc);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", op_db_col_text(st, 0));
    cJSON_AddStringToObject(o, "workspace_id", op_db_col_text(st, 1));
    cJSON_AddStringToObject(o, "name", op_db_col_text(st, 2));
    add_time(o, "created_at", created);
    add_time(o, "updated_at", op_db_col_int64(st, 5));
    if (first >= 0) add_time(o, "first_connected_at", first);
    if (last >= 0) add_time(o, "last_connected_at", last);
    /* A silent agent is shown as disconnected at its last contact, as Coder does. */
    if (strcmp(status, "disconnected") == 0) add_time(o, "disconnected_at", disc >= last ? disc : last);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddStringToObject(o, "lifecycle_state", op_db_col_text(st, 9));
    cJSON_AddNumberToObject(o, "connection_timeout_seconds", (double)((timeout_ms + 999) / 1000));
    cJSON_AddStringToObject(o, "version", op_db_col_text(st, 10));
    cJSON_AddStringToObject(o, "operating_system", op_db_col_text(st, 11));
    cJSON_AddStringToObject(o, "architecture", op_db_col_text(st, 12));
    add_array(o, "apps", op_db_col_text(st, 13));
    add_array(o, "listening_ports", op_db_col_text(st, 14));
    add_array(o, "regions", op_db_col_text(st, 15));
    cJSON_AddStringToObject(o, "ssh_host_key", op_db_col_text(st, 16));
    cJSON *h = cJSON_AddObjectToObject(o, "health");
    bool ok = strcmp(status, "connected") == 0;
    cJSON_AddBoolToObject(h, "healthy", ok);
    const char *reason = ok                                  ? NULL
                         : strcmp(status, "connecting") == 0 ? "agent is connecting"
                         : strcmp(status, "timeout") == 0    ? "agent is taking too long to connect"
                                                             : "agent has lost connection";
    if (reason) cJSON_AddStringToObject(h, "reason", reason);
    return o;
}

cJSON *op_agent_json(struct op_primary *p, const char *agent_id)
{
    return op_store_row_json(p, "SELECT " AGENT_COLS " FROM workspace_agents WHERE id = ?", agent_id,
                             agent_json_row);
}

/* Workspace from a row selected with WS_COLS, with its agents under latest_build.resources[0].agents as
 * in Coder's workspace JSON, and "health" summarising them. NULL on a database error. */
static cJSON *workspace_json_row(struct op_primary *p, struct op_db_stmt *ws)
{
    char org[OP_UUID_STR_LEN + 1] = "";
    op_store_get_config(p, "organization_id", org, sizeof(org));
    cJSON *o = cJSON_CreateObject();
    const char *id = op_db_col_text(ws, 0);
    cJSON_AddStringToObject(o, "id", id);
    add_time(o, "created_at", op_db_col_int64(ws, 4));
    add_time(o, "updated_at", op_db_col_int64(ws, 5));
    cJSON_AddStringToObject(o, "owner_id", op_db_col_text(ws, 1));
    cJSON_AddStringToObject(o, "owner_name", op_db_col_text(ws, 2));
    cJSON_AddStringToObject(o, "organization_id", org);
    cJSON_AddStringToObject(o, "name", op_db_col_text(ws, 3));
    cJSON *build = cJSON_AddObjectToObject(o, "latest_build");
    cJSON_AddStringToObject(build, "workspace_id", id);
    cJSON_AddStringToObject(build, "transition", "start");
    cJSON_AddStringToObject(build, "status", "running");
    cJSON *res = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(build, "resources"), res);
    cJSON_AddStringToObject(res, "name", op_db_col_text(ws, 3));
    cJSON_AddStringToObject(res, "type", "external_agent");
    cJSON *agents = cJSON_AddArrayToObject(res, "agents");
    cJSON *failing = cJSON_CreateArray();
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT " AGENT_COLS " FROM workspace_agents WHERE workspace_id = ?"
                            " ORDER BY lower(name)");
    if (!st) {
        cJSON_Delete(o);
        cJSON_Delete(failing);
        return NULL;
    }
    op_db_bind_text(st, 1, id);
    while (op_db_step(st) == OP_DB_ROW) {
        cJSON *a = agent_json_row(p, st);
        if (!cJSON_IsTrue(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(a, "health"), "healthy")))
            cJSON_AddItemToArray(failing, cJSON_CreateString(op_db_col_text(st, 0)));
        cJSON_AddItemToArray(agents, a);
    }
    op_db_finalize(st);
    cJSON *h = cJSON_AddObjectToObject(o, "health");
    cJSON_AddBoolToObject(h, "healthy", cJSON_GetArraySize(failing) == 0);
    cJSON_AddItemToObject(h, "failing_agents", failing);
    return o;
}

int op_workspace_access(struct op_primary *p, const struct op_user *u, const char *ws_id, char *owner_id)
{
    struct op_db_stmt *st = op_store_prepare(p, "SELECT owner_id FROM workspaces WHERE id = lower(?)");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, ws_id);
    int rc = op_db_step(st);
    int ret = rc == OP_DB_DONE ? -ENOENT : rc == OP_DB_ROW ? 0 : -EIO;
    if (ret == 0) {
        if (!u->owner && strcmp(op_db_col_text(st, 0), u->id) != 0) ret = -ENOENT;
        if (ret == 0 && owner_id) snprintf(owner_id, OP_UUID_STR_LEN + 1, "%s", op_db_col_text(st, 0));
    }
    op_db_finalize(st);
    return ret;
}

/* Answers with the workspace selected by sql (one text parameter), or 404 / 500. */
static void answer_workspace(struct op_primary *p, const char *sql, const char *arg, const char *arg2,
                             int status, cJSON *extra_tokens, struct op_app_response *resp)
{
    struct op_db_stmt *st = op_store_prepare(p, sql);
    if (!st) {
        cJSON_Delete(extra_tokens);
        op_api_error(resp, 500, "Internal error fetching workspace.", NULL);
        return;
    }
    op_db_bind_text(st, 1, arg);
    if (arg2) op_db_bind_text(st, 2, arg2);
    int rc = op_db_step(st);
    cJSON *o = rc == OP_DB_ROW ? workspace_json_row(p, st) : NULL;
    op_db_finalize(st);
    if (o && extra_tokens)
        cJSON_AddItemToObject(o, "agent_tokens", extra_tokens);
    else
        cJSON_Delete(extra_tokens);
    if (o)
        op_api_json(resp, status, o);
    else if (rc == OP_DB_DONE)
        op_api_error(resp, 404, OP_NOT_FOUND_MSG, NULL);
    else
        op_api_error(resp, 500, "Internal error fetching workspace.", NULL);
}

/* Agent names of a create request: absent = ["main"]; each a valid name, unique (case-insensitive). */
static bool agent_names(const cJSON *body, const char **names, int *n, char *detail, size_t dlen)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(body, "agents");
    *n = 0;
    if (!arr || cJSON_IsNull(arr)) {
        names[(*n)++] = "main";
        return true;
    }
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0 ||
        cJSON_GetArraySize(arr) > OP_MAX_AGENTS_PER_WS) {
        snprintf(detail, dlen, "agents must be a list of 1 to %d agent names", OP_MAX_AGENTS_PER_WS);
        return false;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || !op_name_valid(it->valuestring)) {
            snprintf(detail, dlen, "agent name \"%.40s\" is invalid (letters, digits and single hyphens)",
                     cJSON_IsString(it) ? it->valuestring : "");
            return false;
        }
        for (int i = 0; i < *n; i++) {
            if (strcasecmp(names[i], it->valuestring) == 0) {
                snprintf(detail, dlen, "agent name \"%.40s\" is repeated", it->valuestring);
                return false;
            }
        }
        names[(*n)++] = it->valuestring;
    }
    return true;
}

void op_api_workspace_create(struct op_primary *p, const struct op_user *u, const char *user_ref,
                             const struct op_app_request *req, struct op_app_response *resp)
{
    struct op_user owner;
    int rc = op_user_lookup(p, u, user_ref, &owner);
    if (rc) {
        op_api_lookup_error(resp, rc);
        return;
    }
    if (!u->owner && strcmp(owner.id, u->id) != 0) {
        op_api_error(resp, 403, "Forbidden.", "members create workspaces for themselves only");
        return;
    }
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool bad = false;
    const char *name = op_json_str(body, "name", &bad);
    const char *names[OP_MAX_AGENTS_PER_WS];
    int nagents = 0;
    char detail[160];
    const cJSON *cto = cJSON_GetObjectItemCaseSensitive(body, "connection_timeout_seconds");
    int64_t timeout_ms = (int64_t)p->agent_connect_timeout_ms;
    if (bad) {
        op_api_error(resp, 400, "Request body must be valid JSON.", "a field has the wrong type");
        goto out;
    }
    if (!name || !op_name_valid(name)) {
        snprintf(detail, sizeof(detail), "Validation failed for tag \"workspace_name\" with value: \"%.40s\"",
                 name ? name : "");
        op_api_validation(resp, 400, "Validation failed.", "name", detail);
        goto out;
    }
    if (!agent_names(body, names, &nagents, detail, sizeof(detail))) {
        op_api_validation(resp, 400, "Validation failed.", "agents", detail);
        goto out;
    }
    if (cto && !cJSON_IsNull(cto)) {
        if (!cJSON_IsNumber(cto) || cto->valuedouble < 0 || cto->valuedouble > 86400) {
            op_api_validation(resp, 400, "Validation failed.", "connection_timeout_seconds",
                              "must be a number of seconds from 0 (never) to 86400");
            goto out;
        }
        timeout_ms = (int64_t)(cto->valuedouble * 1000);
    }
    char ws_id[OP_UUID_STR_LEN + 1];
    if (op_uuid_v4(ws_id) || op_store_begin(p)) {
        op_api_error(resp, 500, "Internal error creating workspace.", NULL);
        goto out;
    }
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT 1 FROM workspaces WHERE owner_id = ? AND lower(name) = lower(?)");
    bool exists = false;
    if (st) {
        op_db_bind_text(st, 1, owner.id);
        op_db_bind_text(st, 2, name);
        exists = op_db_step(st) == OP_DB_ROW;
        op_db_finalize(st);
    }
    if (exists) {
        op_store_rollback(p);
        char msg[120];
        snprintf(msg, sizeof(msg), "Workspace \"%s\" already exists.", name);
        op_api_validation(resp, 409, msg, "name", "This value is already in use and should be unique.");
        goto out;
    }
    int64_t now = op_wall_ms();
    st = op_store_prepare(p, "INSERT INTO workspaces (id, owner_id, name, created_at, updated_at)"
                             " VALUES (?, ?, ?, ?, ?)");
    rc = -EIO;
    if (st) {
        op_db_bind_text(st, 1, ws_id);
        op_db_bind_text(st, 2, owner.id);
        op_db_bind_text(st, 3, name);
        op_db_bind_int64(st, 4, now);
        op_db_bind_int64(st, 5, now);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    }
    cJSON *tokens = cJSON_CreateArray();
    for (int i = 0; i < nagents && rc == 0; i++) {
        char aid[OP_UUID_STR_LEN + 1], token[OP_AGENT_TOKEN_LEN + 1];
        uint8_t hash[OP_SHA256_LEN];
        rc = op_uuid_v4(aid) || op_agent_new_token(aid, token, hash) ? -EIO : 0;
        st = rc ? NULL
                : op_store_prepare(
                      p, "INSERT INTO workspace_agents (id, workspace_id, name, token_hashed_secret,"
                         " connection_timeout_ms, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
        rc = -EIO;
        if (st) {
            op_db_bind_text(st, 1, aid);
            op_db_bind_text(st, 2, ws_id);
            op_db_bind_text(st, 3, names[i]);
            op_db_bind_blob(st, 4, hash, sizeof(hash));
            op_db_bind_int64(st, 5, timeout_ms);
            op_db_bind_int64(st, 6, now);
            op_db_bind_int64(st, 7, now);
            rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
            op_db_finalize(st);
        }
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "agent_id", aid);
        cJSON_AddStringToObject(t, "agent_name", names[i]);
        cJSON_AddStringToObject(t, "token", token);
        cJSON_AddItemToArray(tokens, t);
        op_secure_zero(token, sizeof(token));
    }
    if (!op_api_commit(p, rc, resp, "Internal error creating workspace.", true)) {
        cJSON_Delete(tokens);
        goto out;
    }
    op_info("workspaces", "%s created workspace %s/%s with %d agent(s)", u->username, owner.username, name,
            nagents);
    answer_workspace(p,
                     "SELECT " WS_COLS " FROM workspaces w JOIN users u ON u.id = w.owner_id WHERE w.id = ?",
                     ws_id, NULL, 201, tokens, resp);
out:
    cJSON_Delete(body);
}

/* The owner filter of a list: "q=owner:<user>" (Coder's search syntax) or "owner=<user>". */
static int owner_filter(const struct op_app_request *req, char *out, size_t outlen)
{
    char q[200];
    if (op_api_query(req, "q", q, sizeof(q)) == 0) {
        for (char *save = NULL, *tok = strtok_r(q, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            if (strncmp(tok, "owner:", 6) == 0) {
                snprintf(out, outlen, "%s", tok + 6);
                return 0;
            }
        }
    }
    return op_api_query(req, "owner", out, outlen) == 0 && *out ? 0 : -ENOENT;
}

void op_api_workspaces_list(struct op_primary *p, const struct op_user *u, const struct op_app_request *req,
                            struct op_app_response *resp)
{
    char ref[128];
    struct op_user filter;
    bool filtered = owner_filter(req, ref, sizeof(ref)) == 0;
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "workspaces");
    int n = 0;
    int rc = filtered ? op_user_lookup(p, u, ref, &filter) : 0;
    if (rc == -EIO) {
        cJSON_Delete(o);
        op_api_error(resp, 500, "Internal error fetching workspaces.", NULL);
        return;
    }
    if (rc == 0) {
        /* ?1: the filtered owner or NULL; ?2: the caller when only their own are visible, else NULL. */
        struct op_db_stmt *st =
            op_store_prepare(p, "SELECT " WS_COLS " FROM workspaces w JOIN users u ON u.id = w.owner_id"
                                " WHERE (?1 IS NULL OR w.owner_id = ?1) AND (?2 IS NULL OR w.owner_id = ?2)"
                                " ORDER BY lower(u.username), lower(w.name)");
        if (!st) {
            cJSON_Delete(o);
            op_api_error(resp, 500, "Internal error fetching workspaces.", NULL);
            return;
        }
        if (filtered) op_db_bind_text(st, 1, filter.id);
        if (!u->owner) op_db_bind_text(st, 2, u->id);
        while (op_db_step(st) == OP_DB_ROW) {
            cJSON *w = workspace_json_row(p, st);
            if (w) {
                cJSON_AddItemToArray(arr, w);
                n++;
            }
        }
        op_db_finalize(st);
    }
    cJSON_AddNumberToObject(o, "count", n);
    op_api_json(resp, 200, o);
}

void op_api_workspace_by_name(struct op_primary *p, const struct op_user *u, const char *user_ref,
                              const char *name, struct op_app_response *resp)
{
    struct op_user owner;
    int rc = op_user_lookup(p, u, user_ref, &owner);
    if (rc == 0 && !u->owner && strcmp(owner.id, u->id) != 0) rc = -ENOENT;
    if (rc) {
        op_api_lookup_error(resp, rc);
        return;
    }
    answer_workspace(p,
                     "SELECT " WS_COLS " FROM workspaces w JOIN users u ON u.id = w.owner_id"
                     " WHERE w.owner_id = ? AND lower(w.name) = lower(?)",
                     owner.id, name, 200, NULL, resp);
}

void op_api_workspace_get(struct op_primary *p, const struct op_user *u, const char *id,
                          struct op_app_response *resp)
{
    int rc = op_workspace_access(p, u, id, NULL);
    if (rc) {
        op_api_lookup_error(resp, rc);
        return;
    }
    answer_workspace(p,
                     "SELECT " WS_COLS " FROM workspaces w JOIN users u ON u.id = w.owner_id"
                     " WHERE w.id = lower(?)",
                     id, NULL, 200, NULL, resp);
}

void op_api_workspace_delete(struct op_primary *p, const struct op_user *u, const char *id,
                             struct op_app_response *resp)
{
    int rc = op_workspace_access(p, u, id, NULL);
    if (rc) {
        op_api_lookup_error(resp, rc);
        return;
    }
    /* The agents and their token hashes go with it (ON DELETE CASCADE): their tokens stop working, and
     * their credentials and control connections are revoked once the deletion is committed. */
    char agents[OP_MAX_AGENTS_PER_WS][OP_UUID_STR_LEN + 1];
    int nagents = 0;
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT id FROM workspace_agents WHERE workspace_id = lower(?)");
    if (st) {
        op_db_bind_text(st, 1, id);
        while (nagents < OP_MAX_AGENTS_PER_WS && op_db_step(st) == OP_DB_ROW)
            snprintf(agents[nagents++], sizeof(agents[0]), "%s", op_db_col_text(st, 0));
        op_db_finalize(st);
        st = NULL;
    }
    rc = op_store_begin(p);
    if (!rc && (st = op_store_prepare(p, "DELETE FROM workspaces WHERE id = lower(?)")) != NULL) {
        op_db_bind_text(st, 1, id);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    } else {
        rc = -EIO;
    }
    if (!op_api_commit(p, rc, resp, "Internal error deleting workspace.", false)) return;
    op_info("workspaces", "%s deleted workspace %s", u->username, id);
    for (int i = 0; i < nagents && p->region; i++)
        op_region_revoke_agent(p->region, p->engine, agents[i]);
    op_api_error(resp, 200, "Workspace has been deleted!", NULL);
}

/* The workspace of an agent, if the caller may see it. 0, -ENOENT, -EIO. */
static int agent_access(struct op_primary *p, const struct op_user *u, const char *agent_id)
{
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT workspace_id FROM workspace_agents WHERE id = lower(?)");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, agent_id);
    int rc = op_db_step(st);
    char ws[OP_UUID_STR_LEN + 1] = "";
    if (rc == OP_DB_ROW) snprintf(ws, sizeof(ws), "%s", op_db_col_text(st, 0));
    op_db_finalize(st);
    if (rc != OP_DB_ROW) return rc == OP_DB_DONE ? -ENOENT : -EIO;
    return op_workspace_access(p, u, ws, NULL);
}

void op_api_agent_get(struct op_primary *p, const struct op_user *u, const char *id,
                      struct op_app_response *resp)
{
    int rc = agent_access(p, u, id);
    char lid[OP_UUID_STR_LEN + 1];
    snprintf(lid, sizeof(lid), "%s", id);
    for (char *c = lid; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    cJSON *o = rc == 0 ? op_agent_json(p, lid) : NULL;
    if (o)
        op_api_json(resp, 200, o);
    else
        op_api_lookup_error(resp, rc);
}

void op_api_agent_ports(struct op_primary *p, const struct op_user *u, const char *id,
                        struct op_app_response *resp)
{
    int rc = agent_access(p, u, id);
    struct op_db_stmt *st =
        rc ? NULL : op_store_prepare(p, "SELECT listening_ports FROM workspace_agents WHERE id = lower(?)");
    if (!st) {
        op_api_lookup_error(resp, rc);
        return;
    }
    op_db_bind_text(st, 1, id);
    cJSON *o = cJSON_CreateObject();
    if (op_db_step(st) == OP_DB_ROW) add_array(o, "ports", op_db_col_text(st, 0));
    op_db_finalize(st);
    op_api_json(resp, 200, o);
}
