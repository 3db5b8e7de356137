/*
 * primary/proxies.c — workspace proxies, the owner-facing API: create, list, get, patch, soft delete,
 * regions. Shapes and messages follow Coder's (docs/coder-compat.md, "Workspace proxies").
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/proxy_row.h"

void op_proxy_read_row(struct op_db_stmt *st, struct op_proxy_row *r)
{
    snprintf(r->id, sizeof(r->id), "%s", op_db_col_text(st, 0));
    snprintf(r->name, sizeof(r->name), "%s", op_db_col_text(st, 1));
    snprintf(r->display_name, sizeof(r->display_name), "%s", op_db_col_text(st, 2));
    snprintf(r->icon, sizeof(r->icon), "%s", op_db_col_text(st, 3));
    snprintf(r->url, sizeof(r->url), "%s", op_db_col_text(st, 4));
    snprintf(r->wildcard, sizeof(r->wildcard), "%s", op_db_col_text(st, 5));
    r->derp_enabled = (int)op_db_col_int64(st, 6) != 0;
    r->derp_only = (int)op_db_col_int64(st, 7) != 0;
    r->deleted = (int)op_db_col_int64(st, 8) != 0;
    r->region_id = (int)op_db_col_int64(st, 9);
    snprintf(r->version, sizeof(r->version), "%s", op_db_col_text(st, 10));
    r->created_at = op_db_col_int64(st, 11);
    r->updated_at = op_db_col_int64(st, 12);
}
/* Loads a non-deleted proxy by id (a UUID) or by case-insensitive name. 0, -ENOENT or -EIO. */
static int load_proxy(struct op_primary *p, const char *ref, struct op_proxy_row *r)
{
    bool by_id = op_uuid_valid(ref, strlen(ref));
    struct op_db_stmt *st =
        op_store_prepare(p, by_id ? "SELECT " OP_PROXY_COLS
                                    " FROM workspace_proxies WHERE lower(id) = lower(?) AND deleted = 0"
                                  : "SELECT " OP_PROXY_COLS
                                    " FROM workspace_proxies WHERE lower(name) = lower(?) AND deleted = 0");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, ref);
    int rc = op_db_step(st);
    if (rc == OP_DB_ROW) op_proxy_read_row(st, r);
    op_db_finalize(st);
    return rc == OP_DB_ROW ? 0 : rc == OP_DB_DONE ? -ENOENT : -EIO;
}

/* load_proxy for an endpoint: on failure answers 404 (unknown) or 500 and returns false. */
static bool load_proxy_or_answer(struct op_primary *p, const char *ref, struct op_proxy_row *r,
                                 struct op_app_response *resp)
{
    int rc = load_proxy(p, ref, r);
    if (rc == -ENOENT)
        op_api_error(resp, 404, OP_NOT_FOUND_MSG, NULL);
    else if (rc)
        op_api_error(resp, 500, "Internal error fetching workspace proxy.", NULL);
    return rc == 0;
}

static bool is_primary_ref(struct op_primary *p, const char *ref)
{
    return strcasecmp(ref, "primary") == 0 || strcasecmp(ref, p->deployment_id) == 0;
}

static void primary_names(struct op_primary *p, char *dn, size_t dnlen, char *icon, size_t iconlen)
{
    if (op_store_get_config(p, "primary_display_name", dn, dnlen) != 0) snprintf(dn, dnlen, "Default");
    if (op_store_get_config(p, "primary_icon", icon, iconlen) != 0)
        snprintf(icon, iconlen, "/emojis/1f3e1.png");
}

static void add_region_fields(cJSON *o, const char *id, const char *name, const char *dn, const char *icon,
                              bool healthy, const char *url, const char *wildcard)
{
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "display_name", dn);
    cJSON_AddStringToObject(o, "icon_url", icon);
    cJSON_AddBoolToObject(o, "healthy", healthy);
    cJSON_AddStringToObject(o, "path_app_url", url);
    cJSON_AddStringToObject(o, "wildcard_hostname", wildcard);
}

static cJSON *primary_json(struct op_primary *p, bool full)
{
    char dn[128], icon[512], now[32];
    primary_names(p, dn, sizeof(dn), icon, sizeof(icon));
    cJSON *o = cJSON_CreateObject();
    add_region_fields(o, p->deployment_id, "primary", dn, icon, true, p->access_url, p->wildcard_host);
    if (!full) return o;
    op_format_time(op_wall_ms(), now);
    cJSON_AddBoolToObject(o, "derp_enabled", true);
    cJSON_AddBoolToObject(o, "derp_only", false);
    cJSON *s = cJSON_AddObjectToObject(o, "status");
    cJSON_AddStringToObject(s, "status", "ok");
    cJSON *rep = cJSON_AddObjectToObject(s, "report");
    cJSON_AddArrayToObject(rep, "errors");
    cJSON_AddArrayToObject(rep, "warnings");
    cJSON_AddStringToObject(s, "checked_at", now);
    cJSON_AddStringToObject(o, "created_at", now);
    cJSON_AddStringToObject(o, "updated_at", now);
    cJSON_AddBoolToObject(o, "deleted", false);
    cJSON_AddStringToObject(o, "version", OP_PRIMARY_VERSION);
    return o;
}

static cJSON *proxy_json(struct op_primary *p, const struct op_proxy_row *r, bool full)
{
    cJSON *o = cJSON_CreateObject();
    enum op_health_status hs = *r->url ? op_health_get(p, r->id) : OP_HEALTH_UNREGISTERED;
    add_region_fields(o, r->id, r->name, r->display_name, r->icon, hs == OP_HEALTH_OK, r->url, r->wildcard);
    if (!full) return o;
    char t[32];
    cJSON_AddBoolToObject(o, "derp_enabled", r->derp_enabled);
    cJSON_AddBoolToObject(o, "derp_only", r->derp_only);
    op_health_status_json(p, r->id, r->url, o);
    op_format_time(r->created_at, t);
    cJSON_AddStringToObject(o, "created_at", t);
    op_format_time(r->updated_at, t);
    cJSON_AddStringToObject(o, "updated_at", t);
    cJSON_AddBoolToObject(o, "deleted", r->deleted);
    cJSON_AddStringToObject(o, "version", r->version);
    return o;
}

/* Appends every non-deleted proxy (ordered by creation) to arr; regions-only mode skips derp-only ones. */
static int append_proxies(struct op_primary *p, cJSON *arr, bool full)
{
    struct op_db_stmt *st = op_store_prepare(
        p, "SELECT " OP_PROXY_COLS " FROM workspace_proxies WHERE deleted = 0 ORDER BY created_at, name");
    if (!st) return -EIO;
    int rc;
    while ((rc = op_db_step(st)) == OP_DB_ROW) {
        struct op_proxy_row r;
        op_proxy_read_row(st, &r);
        if (!full && r.derp_only) continue;
        cJSON_AddItemToArray(arr, proxy_json(p, &r, full));
    }
    op_db_finalize(st);
    return rc == OP_DB_DONE ? 0 : -EIO;
}

static void regions_response(struct op_primary *p, struct op_app_response *resp, bool full)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "regions");
    cJSON_AddItemToArray(arr, primary_json(p, full));
    if (append_proxies(p, arr, full)) {
        cJSON_Delete(o);
        op_api_error(resp, 500, "Internal error fetching workspace proxies.", NULL);
        return;
    }
    op_api_json(resp, 200, o);
}

void op_api_proxies_list(struct op_primary *p, struct op_app_response *resp)
{
    regions_response(p, resp, true);
}

void op_api_regions(struct op_primary *p, struct op_app_response *resp)
{
    regions_response(p, resp, false);
}

int op_proxy_new_secret(char secret[65], uint8_t hash[OP_SHA256_LEN])
{
    int rc = op_random_alnum(secret, 64);
    if (rc) return rc;
    op_sha256(secret, 64, hash);
    return 0;
}

static void respond_update(struct op_primary *p, struct op_app_response *resp, int status,
                           const struct op_proxy_row *r, const char *token)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "proxy", r ? proxy_json(p, r, true) : primary_json(p, true));
    cJSON_AddStringToObject(o, "proxy_token", token ? token : "");
    op_api_json(resp, status, o);
}

/* Answers a create or patch: {"proxy", "proxy_token"} with the token "<id>:<secret>" when a new secret was
 * made (secret NULL: ""), wipes the secret and the token from memory, and schedules a health refresh. */
static void respond_changed(struct op_primary *p, struct op_app_response *resp, int status,
                            const struct op_proxy_row *r, char *secret)
{
    char token[OP_UUID_STR_LEN + 66] = "";
    if (secret) snprintf(token, sizeof(token), "%s:%s", r->id, secret);
    respond_update(p, resp, status, r, secret ? token : NULL);
    if (secret) op_secure_zero(secret, strlen(secret));
    op_secure_zero(token, sizeof(token));
    op_primary_force_health(p);
}

/* Validates name/display name/icon of a create or patch; answers 400 and returns false when invalid. */
static bool check_fields(const char *name, const char *dn, const char *icon, struct op_app_response *resp)
{
    char detail[160];
    if (name && !op_name_valid(name)) {
        snprintf(detail, sizeof(detail), "Validation failed for tag \"proxy_name\" with value: \"%.64s\"",
                 name);
        op_api_validation(resp, 400, "Validation failed.", "name", detail);
        return false;
    }
    if (name && strcasecmp(name, "primary") == 0) {
        op_api_validation(resp, 400, "The name \"primary\" is reserved for the primary region.", "name",
                          "Reserved name");
        return false;
    }
    if (dn && strlen(dn) > 64) {
        op_api_validation(resp, 400, "Validation failed.", "display_name",
                          "Validation failed for tag \"max\": at most 64 characters");
        return false;
    }
    if (icon && strlen(icon) > 256) {
        op_api_validation(resp, 400, "Validation failed.", "icon",
                          "Validation failed for tag \"max\": at most 256 characters");
        return false;
    }
    return true;
}

static bool name_taken(struct op_primary *p, const char *name, const char *except_id)
{
    struct op_db_stmt *st = op_store_prepare(
        p, "SELECT 1 FROM workspace_proxies WHERE lower(name) = lower(?) AND deleted = 0 AND id != ?");
    if (!st) return false;
    op_db_bind_text(st, 1, name);
    op_db_bind_text(st, 2, except_id ? except_id : "");
    bool taken = op_db_step(st) == OP_DB_ROW;
    op_db_finalize(st);
    return taken;
}

static void conflict(struct op_app_response *resp, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "Workspace proxy with name \"%.64s\" already exists.", name);
    op_api_error(resp, 409, msg, NULL);
}

void op_api_proxy_create(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool bad = false;
    const char *name = op_json_str(body, "name", &bad);
    const char *dn = op_json_str(body, "display_name", &bad);
    const char *icon = op_json_str(body, "icon", &bad);
    if (bad) {
        op_api_error(resp, 400, "Request body must be valid JSON.", "a field has the wrong type");
        goto out;
    }
    if (!name || !*name) {
        op_api_validation(resp, 400, "Validation failed.", "name",
                          "Validation failed for tag \"required\" with value: \"\"");
        goto out;
    }
    if (!check_fields(name, dn, icon, resp)) goto out;
    struct op_proxy_row r = {0};
    char secret[65];
    uint8_t hash[OP_SHA256_LEN];
    if (op_uuid_v4(r.id) || op_proxy_new_secret(secret, hash)) {
        op_api_error(resp, 500, "Internal error creating workspace proxy.", "no randomness");
        goto out;
    }
    snprintf(r.name, sizeof(r.name), "%s", name);
    snprintf(r.display_name, sizeof(r.display_name), "%s", dn && *dn ? dn : name);
    snprintf(r.icon, sizeof(r.icon), "%s", icon ? icon : "");
    r.derp_enabled = true;
    r.created_at = r.updated_at = op_wall_ms();
    if (op_store_begin(p)) {
        op_api_error(resp, 500, "Internal error creating workspace proxy.", "database is unavailable");
        goto out;
    }
    if (name_taken(p, name, NULL)) {
        op_store_rollback(p);
        conflict(resp, name);
        goto out;
    }
    struct op_db_stmt *st =
        op_store_prepare(p, "INSERT INTO workspace_proxies (id, name, display_name, icon, "
                            "region_id, token_hashed_secret, created_at,"
                            " updated_at) VALUES (?, ?, ?, ?, (SELECT "
                            "COALESCE(MAX(region_id), 0) + 1 FROM workspace_proxies), ?, ?, ?)"
                            " RETURNING region_id");
    int rc = -EIO;
    if (st) {
        op_db_bind_text(st, 1, r.id);
        op_db_bind_text(st, 2, r.name);
        op_db_bind_text(st, 3, r.display_name);
        op_db_bind_text(st, 4, r.icon);
        op_db_bind_blob(st, 5, hash, sizeof(hash));
        op_db_bind_int64(st, 6, r.created_at);
        op_db_bind_int64(st, 7, r.updated_at);
        if (op_db_step(st) == OP_DB_ROW) {
            r.region_id = (int)op_db_col_int64(st, 0);
            rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        }
        op_db_finalize(st);
    }
    if (!op_api_commit(p, rc, resp, "Internal error creating workspace proxy.", true)) goto out;
    op_info("proxies", "created workspace proxy %s (%s)", r.name, r.id);
    respond_changed(p, resp, 201, &r, secret);
out:
    cJSON_Delete(body);
}

void op_api_proxy_get(struct op_primary *p, const char *ref, struct op_app_response *resp)
{
    if (is_primary_ref(p, ref)) {
        op_api_json(resp, 200, primary_json(p, true));
        return;
    }
    struct op_proxy_row r;
    if (load_proxy_or_answer(p, ref, &r, resp)) op_api_json(resp, 200, proxy_json(p, &r, true));
}

static void patch_primary(struct op_primary *p, const char *name, const char *dn, const char *icon,
                          struct op_app_response *resp)
{
    if (name && *name && strcmp(name, "primary") != 0) {
        op_api_error(
            resp, 400,
            "Cannot update name of default primary proxy, did you mean to update the 'display name'?", NULL);
        return;
    }
    if ((!dn || !*dn) && (!icon || !*icon)) {
        op_api_error(resp, 400, "No update arguments provided. Nothing to do.", NULL);
        return;
    }
    if (!check_fields(NULL, dn, icon, resp)) return;
    int rc = op_store_begin(p);
    if (!rc && dn && *dn) rc = op_store_set_config(p, "primary_display_name", dn);
    if (!rc && icon && *icon) rc = op_store_set_config(p, "primary_icon", icon);
    if (!op_api_commit(p, rc, resp, "Internal error updating the primary proxy.", false)) return;
    respond_update(p, resp, 200, NULL, NULL);
}

void op_api_proxy_patch(struct op_primary *p, const char *ref, const struct op_app_request *req,
                        struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool bad = false;
    const char *name = op_json_str(body, "name", &bad);
    const char *dn = op_json_str(body, "display_name", &bad);
    const char *icon = op_json_str(body, "icon", &bad);
    const cJSON *regen = cJSON_GetObjectItemCaseSensitive(body, "regenerate_token");
    if (bad || (regen && !cJSON_IsBool(regen) && !cJSON_IsNull(regen))) {
        op_api_error(resp, 400, "Request body must be valid JSON.", "a field has the wrong type");
        goto out;
    }
    if (is_primary_ref(p, ref)) {
        patch_primary(p, name, dn, icon, resp);
        goto out;
    }
    struct op_proxy_row r;
    if (!load_proxy_or_answer(p, ref, &r, resp)) goto out;
    int rc;
    if (!check_fields(name && *name ? name : NULL, dn, icon, resp)) goto out;
    if (name && *name) snprintf(r.name, sizeof(r.name), "%s", name);
    if (dn && *dn) snprintf(r.display_name, sizeof(r.display_name), "%s", dn);
    if (icon && *icon) snprintf(r.icon, sizeof(r.icon), "%s", icon);
    bool regenerate = cJSON_IsTrue(regen);
    char secret[65] = "";
    uint8_t hash[OP_SHA256_LEN];
    if (regenerate && op_proxy_new_secret(secret, hash)) {
        op_api_error(resp, 500, "Internal error updating workspace proxy.", "no randomness");
        goto out;
    }
    if (op_store_begin(p)) {
        op_api_error(resp, 500, "Internal error updating workspace proxy.", "database is unavailable");
        goto out;
    }
    if (name && *name && name_taken(p, name, r.id)) {
        op_store_rollback(p);
        conflict(resp, name);
        goto out;
    }
    r.updated_at = op_wall_ms();
    struct op_db_stmt *st = op_store_prepare(
        p, "UPDATE workspace_proxies SET name = ?, display_name = ?, icon = ?, updated_at = ?,"
           " token_hashed_secret = COALESCE(?, token_hashed_secret) WHERE id = ?");
    rc = -EIO;
    if (st) {
        op_db_bind_text(st, 1, r.name);
        op_db_bind_text(st, 2, r.display_name);
        op_db_bind_text(st, 3, r.icon);
        op_db_bind_int64(st, 4, r.updated_at);
        if (regenerate)
            op_db_bind_blob(st, 5, hash, sizeof(hash));
        else
            op_db_bind_null(st, 5);
        op_db_bind_text(st, 6, r.id);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    }
    if (!op_api_commit(p, rc, resp, "Internal error updating workspace proxy.", true)) goto out;
    if (regenerate) op_info("proxies", "regenerated the token of workspace proxy %s", r.name);
    respond_changed(p, resp, 200, &r, regenerate ? secret : NULL);
    op_secure_zero(secret, sizeof(secret));
out:
    cJSON_Delete(body);
}

void op_api_proxy_delete(struct op_primary *p, const char *ref, struct op_app_response *resp)
{
    if (is_primary_ref(p, ref)) {
        op_api_error(resp, 400, "Cannot delete primary proxy", NULL);
        return;
    }
    struct op_proxy_row r;
    if (!load_proxy_or_answer(p, ref, &r, resp)) return;
    int rc;
    int64_t now = op_wall_ms();
    rc = op_store_begin(p);
    struct op_db_stmt *st;
    if (!rc) {
        rc = -EIO;
        st = op_store_prepare(p, "UPDATE workspace_proxies SET deleted = 1, updated_at = ? WHERE id = ?");
        if (st) {
            op_db_bind_int64(st, 1, now);
            op_db_bind_text(st, 2, r.id);
            rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
            op_db_finalize(st);
        }
    }
    if (!rc) {
        rc = -EIO;
        st = op_store_prepare(
            p,
            "UPDATE replicas SET stopped_at = ?, updated_at = ? WHERE proxy_id = ? AND stopped_at IS NULL");
        if (st) {
            op_db_bind_int64(st, 1, now);
            op_db_bind_int64(st, 2, now);
            op_db_bind_text(st, 3, r.id);
            rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
            op_db_finalize(st);
        }
    }
    if (!op_api_commit(p, rc, resp, "Internal error deleting workspace proxy.", false)) return;
    op_info("proxies", "deleted workspace proxy %s (%s)", r.name, r.id);
    op_api_error(resp, 200, "Proxy has been deleted!", NULL);
    op_primary_force_health(p);
}
