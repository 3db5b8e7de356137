/*
 * primary/port_share.c — workspace port sharing (docs/apps.md, "Port sharing"): a workspace's owner (or a
 * site owner) raises the share level of one port of one agent above "owner", the default of port URLs.
 *
 *   POST   /api/v2/workspaces/{id}/port-share {"agent_name","port","share_level","protocol"} → 200 the share
 *          (an upsert: the same agent and port again replaces it)
 *   GET    /api/v2/workspaces/{id}/port-share → 200 {"shares":[{"workspace_id","agent_name","port",
 *          "share_level","protocol"}...]}
 *   DELETE /api/v2/workspaces/{id}/port-share {"agent_name","port"} → 200, 404 when there is no such share
 *
 * Rows live in workspace_agent_port_shares (store.c migration 5) and go with their workspace. The app token
 * issuance (apps.c) reads them through op_port_share_level.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/primary_int.h"

#define AGENT_NAME_MAX 64

static cJSON *share_json(const char *ws, const char *agent, int port, const char *level, const char *proto)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "workspace_id", ws);
    cJSON_AddStringToObject(o, "agent_name", agent);
    cJSON_AddNumberToObject(o, "port", port);
    cJSON_AddStringToObject(o, "share_level", level);
    cJSON_AddStringToObject(o, "protocol", proto);
    return o;
}

int op_port_share_level(struct op_primary *p, const char *ws_id, const char *agent_name, int port,
                        char *level, size_t levellen)
{
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT share_level FROM workspace_agent_port_shares WHERE"
                            " workspace_id = lower(?) AND lower(agent_name) = lower(?) AND port = ?");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, ws_id);
    op_db_bind_text(st, 2, agent_name);
    op_db_bind_int64(st, 3, port);
    int rc = op_db_step(st);
    int ret = rc == OP_DB_ROW ? 0 : rc == OP_DB_DONE ? -ENOENT : -EIO;
    if (ret == 0) snprintf(level, levellen, "%s", op_db_col_text(st, 0));
    op_db_finalize(st);
    return ret;
}

/* agent_name and port of a share request body; the agent's own name (as stored) into name. 0 or answered. */
static int share_key(struct op_primary *p, const char *ws_id, const cJSON *body, char *name, size_t namelen,
                     int *port, struct op_app_response *resp)
{
    bool bad = false;
    const char *agent = op_json_str(body, "agent_name", &bad);
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(body, "port");
    if (bad || !agent || !*agent) {
        op_api_validation(resp, 400, "Invalid port share request.", "agent_name",
                          "an agent name is required");
        return -EINVAL;
    }
    if (!cJSON_IsNumber(pj) || !(pj->valuedouble >= 9 && pj->valuedouble <= 65535) ||
        pj->valuedouble != (double)(int)pj->valuedouble) {
        op_api_validation(resp, 400, "Invalid port share request.", "port",
                          "the port must be a number from 9 to 65535 (ports below 9 are reserved)");
        return -EINVAL;
    }
    *port = pj->valueint;
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT name FROM workspace_agents WHERE workspace_id = lower(?) AND"
                            " lower(name) = lower(?)");
    if (!st) {
        op_api_error(resp, 500, "Internal error.", NULL);
        return -EIO;
    }
    op_db_bind_text(st, 1, ws_id);
    op_db_bind_text(st, 2, agent);
    int rc = op_db_step(st);
    if (rc == OP_DB_ROW) snprintf(name, namelen, "%s", op_db_col_text(st, 0));
    op_db_finalize(st);
    if (rc == OP_DB_ROW) return 0;
    if (rc == OP_DB_DONE)
        op_api_validation(resp, 400, "Invalid port share request.", "agent_name",
                          "the workspace has no agent of that name");
    else
        op_api_error(resp, 500, "Internal error.", NULL);
    return -EINVAL;
}

static void share_list(struct op_primary *p, const char *ws_id, struct op_app_response *resp)
{
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT workspace_id, agent_name, port, share_level, protocol FROM"
                            " workspace_agent_port_shares WHERE workspace_id = lower(?)"
                            " ORDER BY lower(agent_name), port");
    if (!st) {
        op_api_error(resp, 500, "Internal error.", NULL);
        return;
    }
    op_db_bind_text(st, 1, ws_id);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "shares");
    int rc;
    while ((rc = op_db_step(st)) == OP_DB_ROW)
        cJSON_AddItemToArray(arr, share_json(op_db_col_text(st, 0), op_db_col_text(st, 1),
                                             (int)op_db_col_int64(st, 2), op_db_col_text(st, 3),
                                             op_db_col_text(st, 4)));
    op_db_finalize(st);
    if (rc != OP_DB_DONE) {
        cJSON_Delete(o);
        op_api_error(resp, 500, "Internal error.", NULL);
        return;
    }
    op_api_json(resp, 200, o);
}

static void share_upsert(struct op_primary *p, const struct op_user *u, const char *ws_id, const cJSON *body,
                         struct op_app_response *resp)
{
    char agent[AGENT_NAME_MAX + 1];
    int port = 0;
    if (share_key(p, ws_id, body, agent, sizeof(agent), &port, resp) != 0) return;
    bool bad = false;
    const char *level = op_json_str(body, "share_level", &bad), *proto = op_json_str(body, "protocol", &bad);
    if (bad || !level ||
        (strcmp(level, "authenticated") != 0 && strcmp(level, "public") != 0 &&
         strcmp(level, "organization") != 0 && strcmp(level, "owner") != 0)) {
        op_api_validation(resp, 400, "Invalid port share request.", "share_level",
                          "share_level must be owner, authenticated, organization or public");
        return;
    }
    if (!proto || !*proto) proto = "http";
    if (strcmp(proto, "http") != 0 && strcmp(proto, "https") != 0) {
        op_api_validation(resp, 400, "Invalid port share request.", "protocol",
                          "protocol must be http or https");
        return;
    }
    int rc = op_store_begin(p);
    struct op_db_stmt *st = NULL;
    if (!rc && (st = op_store_prepare(
                    p, "INSERT INTO workspace_agent_port_shares (workspace_id, agent_name, port,"
                       " share_level, protocol, created_at) VALUES (lower(?), ?, ?, ?, ?, ?)"
                       " ON CONFLICT (workspace_id, agent_name, port) DO UPDATE SET"
                       " share_level = excluded.share_level, protocol = excluded.protocol")) != NULL) {
        op_db_bind_text(st, 1, ws_id);
        op_db_bind_text(st, 2, agent);
        op_db_bind_int64(st, 3, port);
        op_db_bind_text(st, 4, level);
        op_db_bind_text(st, 5, proto);
        op_db_bind_int64(st, 6, op_wall_ms());
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    } else if (!rc) {
        rc = -EIO;
    }
    if (!op_api_commit(p, rc, resp, "Internal error sharing the port.", false)) return;
    op_info("apps", "%s shared port %d of %s in workspace %s: %s (%s)", u->username, port, agent, ws_id,
            level, proto);
    char lower[OP_UUID_STR_LEN + 1];
    snprintf(lower, sizeof(lower), "%s", ws_id);
    for (char *c = lower; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
    op_api_json(resp, 200, share_json(lower, agent, port, level, proto));
}

static void share_delete(struct op_primary *p, const struct op_user *u, const char *ws_id, const cJSON *body,
                         struct op_app_response *resp)
{
    char agent[AGENT_NAME_MAX + 1];
    int port = 0;
    if (share_key(p, ws_id, body, agent, sizeof(agent), &port, resp) != 0) return;
    int rc = op_store_begin(p), changed = 0;
    struct op_db_stmt *st = NULL;
    if (!rc &&
        (st = op_store_prepare(p, "DELETE FROM workspace_agent_port_shares WHERE workspace_id = lower(?)"
                                  " AND agent_name = ? AND port = ?")) != NULL) {
        op_db_bind_text(st, 1, ws_id);
        op_db_bind_text(st, 2, agent);
        op_db_bind_int64(st, 3, port);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        changed = op_db_changes(st);
        op_db_finalize(st);
    } else if (!rc) {
        rc = -EIO;
    }
    if (!op_api_commit(p, rc, resp, "Internal error removing the port share.", false)) return;
    if (!changed) {
        op_api_error(resp, 404, "Port share not found.", NULL);
        return;
    }
    op_info("apps", "%s stopped sharing port %d of %s in workspace %s", u->username, port, agent, ws_id);
    op_api_json(resp, 200, cJSON_CreateObject());
}

void op_api_port_share(struct op_primary *p, const struct op_user *u, const char *ws_id,
                       const struct op_app_request *req, struct op_app_response *resp)
{
    int rc = op_workspace_access(p, u, ws_id, NULL); /* the owner or a site owner */
    if (rc) {
        op_api_lookup_error(resp, rc);
        return;
    }
    if (req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0) {
        share_list(p, ws_id, resp);
        return;
    }
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    if (req->method.len == 4 && memcmp(req->method.p, "POST", 4) == 0)
        share_upsert(p, u, ws_id, body, resp);
    else
        share_delete(p, u, ws_id, body, resp);
    cJSON_Delete(body);
}
