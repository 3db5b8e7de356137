/*
 * primary/users.c — users besides the first owner (codersdk.User shapes): create (owners only), list,
 * get by id, username or "me", delete (owners only; never oneself, never a user who still owns
 * workspaces). Roles are "owner" or "member"; a member appears with an empty "roles" list, as the
 * implicit member role of Coder does.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "primary/primary_int.h"

#define FORBIDDEN "Forbidden."

static void user_row_to(struct op_db_stmt *st, struct op_user *out)
{
    snprintf(out->id, sizeof(out->id), "%s", op_db_col_text(st, 0));
    snprintf(out->username, sizeof(out->username), "%s", op_db_col_text(st, 1));
    snprintf(out->email, sizeof(out->email), "%s", op_db_col_text(st, 2));
    out->owner = strstr(op_db_col_text(st, 3), "owner") != NULL;
    out->app_connect = false;
}

int op_user_lookup(struct op_primary *p, const struct op_user *self, const char *ref, struct op_user *out)
{
    if (strcmp(ref, "me") == 0) {
        *out = *self;
        return 0;
    }
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT id, username, email, roles FROM users"
                            " WHERE id = lower(?1) OR lower(username) = lower(?1) LIMIT 1");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, ref);
    int rc = op_db_step(st);
    int ret = rc == OP_DB_ROW ? 0 : rc == OP_DB_DONE ? -ENOENT : -EIO;
    if (ret == 0) user_row_to(st, out);
    op_db_finalize(st);
    return ret;
}

static cJSON *user_json_row(struct op_primary *p, struct op_db_stmt *st)
{
    char t[32], org[OP_UUID_STR_LEN + 1] = "";
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", op_db_col_text(st, 0));
    cJSON_AddStringToObject(o, "username", op_db_col_text(st, 1));
    cJSON_AddStringToObject(o, "email", op_db_col_text(st, 2));
    cJSON_AddStringToObject(o, "name", op_db_col_text(st, 4));
    op_format_time(op_db_col_int64(st, 5), t);
    cJSON_AddStringToObject(o, "created_at", t);
    op_format_time(op_db_col_int64(st, 6), t);
    cJSON_AddStringToObject(o, "updated_at", t);
    op_format_time(op_db_col_int64(st, 7), t);
    cJSON_AddStringToObject(o, "last_seen_at", t);
    cJSON_AddStringToObject(o, "status", op_db_col_text(st, 8));
    cJSON_AddStringToObject(o, "login_type", op_db_col_text(st, 9));
    cJSON_AddStringToObject(o, "avatar_url", "");
    cJSON *roles = cJSON_AddArrayToObject(o, "roles");
    if (strstr(op_db_col_text(st, 3), "owner")) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "name", "owner");
        cJSON_AddStringToObject(r, "display_name", "Owner");
        cJSON_AddItemToArray(roles, r);
    }
    cJSON *orgs = cJSON_AddArrayToObject(o, "organization_ids");
    if (op_store_get_config(p, "organization_id", org, sizeof(org)) == 0)
        cJSON_AddItemToArray(orgs, cJSON_CreateString(org));
    return o;
}

#define USER_COLS "id, username, email, roles, name, created_at, updated_at, last_seen_at, status, login_type"

cJSON *op_user_json(struct op_primary *p, const char *id)
{
    return op_store_row_json(p, "SELECT " USER_COLS " FROM users WHERE id = ?", id, user_json_row);
}

void op_api_users_list(struct op_primary *p, struct op_app_response *resp)
{
    struct op_db_stmt *st = op_store_prepare(p, "SELECT " USER_COLS " FROM users ORDER BY lower(username)");
    if (!st) {
        op_api_error(resp, 500, "Internal error fetching users.", NULL);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "users");
    int n = 0;
    while (op_db_step(st) == OP_DB_ROW) {
        cJSON_AddItemToArray(arr, user_json_row(p, st));
        n++;
    }
    op_db_finalize(st);
    cJSON_AddNumberToObject(o, "count", n);
    op_api_json(resp, 200, o);
}

void op_api_user_get(struct op_primary *p, const struct op_user *u, const char *ref,
                     struct op_app_response *resp)
{
    struct op_user who;
    int rc = op_user_lookup(p, u, ref, &who);
    cJSON *o = rc == 0 ? op_user_json(p, who.id) : NULL;
    if (rc == -ENOENT)
        op_api_error(resp, 404, OP_NOT_FOUND_MSG, NULL);
    else if (!o)
        op_api_error(resp, 500, "Internal error fetching user.", NULL);
    else
        op_api_json(resp, 200, o);
}

/* Reads the optional "roles" of a create request: absent, [] or ["member"] = member; ["owner"] = owner. */
static bool parse_roles(const cJSON *body, bool *owner)
{
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(body, "roles");
    *owner = false;
    if (!roles || cJSON_IsNull(roles)) return true;
    if (!cJSON_IsArray(roles)) return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, roles)
    {
        if (!cJSON_IsString(it)) return false;
        if (strcmp(it->valuestring, "owner") == 0)
            *owner = true;
        else if (strcmp(it->valuestring, "member") != 0)
            return false;
    }
    return true;
}

int op_user_insert(struct op_primary *p, const char *id, const char *username, const char *email,
                   const char *name, const char *hashed, bool owner)
{
    struct op_db_stmt *st =
        op_store_prepare(p, "INSERT INTO users (id, username, email, name, hashed_password, roles,"
                            " created_at, updated_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st) return -EIO;
    int64_t now = op_wall_ms();
    op_db_bind_text(st, 1, id);
    op_db_bind_text(st, 2, username);
    op_db_bind_text(st, 3, email);
    op_db_bind_text(st, 4, name ? name : "");
    op_db_bind_text(st, 5, hashed);
    op_db_bind_text(st, 6, owner ? "owner" : "member");
    op_db_bind_int64(st, 7, now);
    op_db_bind_int64(st, 8, now);
    op_db_bind_int64(st, 9, now);
    int rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
    op_db_finalize(st);
    return rc;
}

void op_api_users_create(struct op_primary *p, const struct op_user *u, const struct op_app_request *req,
                         struct op_app_response *resp)
{
    if (!u->owner) {
        op_api_error(resp, 403, FORBIDDEN, "only owners create users");
        return;
    }
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool bad = false, owner = false;
    const char *email = op_json_str(body, "email", &bad);
    const char *username = op_json_str(body, "username", &bad);
    const char *name = op_json_str(body, "name", &bad);
    const char *password = op_json_str(body, "password", &bad);
    const char *login_type = op_json_str(body, "login_type", &bad);
    char detail[160];
    if (bad) {
        op_api_error(resp, 400, "Request body must be valid JSON.", "a field has the wrong type");
        goto out;
    }
    if (!parse_roles(body, &owner)) {
        op_api_validation(resp, 400, "Validation failed.", "roles",
                          "roles must be [\"owner\"] or [\"member\"]");
        goto out;
    }
    if (login_type && *login_type && strcmp(login_type, "password") != 0) {
        op_api_validation(resp, 400, "Validation failed.", "login_type",
                          "only the password login type is supported");
        goto out;
    }
    if (!username || !*username) {
        op_api_validation(resp, 400, "Validation failed.", "username",
                          "Validation failed for tag \"required\" with value: \"\"");
        goto out;
    }
    if (!op_name_valid(username) || strcmp(username, "me") == 0) {
        snprintf(detail, sizeof(detail), "Validation failed for tag \"username\" with value: \"%.64s\"",
                 username);
        op_api_validation(resp, 400, "Validation failed.", "username", detail);
        goto out;
    }
    if (!email || !op_email_valid(email)) {
        snprintf(detail, sizeof(detail), "Validation failed for tag \"email\" with value: \"%.64s\"",
                 email ? email : "");
        op_api_validation(resp, 400, "Validation failed.", "email", detail);
        goto out;
    }
    if (!password || strlen(password) < 6) {
        op_api_validation(resp, 400, "Password not strong enough!", "password",
                          "password must be at least 6 characters long");
        goto out;
    }
    if (strlen(password) > 256 || (name && strlen(name) > 128)) {
        op_api_error(resp, 400, "Validation failed.", "a field is too long");
        goto out;
    }
    char hashed[200], id[OP_UUID_STR_LEN + 1];
    if (op_password_hash(password, p->kdf_iterations, hashed, sizeof(hashed)) || op_uuid_v4(id)) {
        op_api_error(resp, 500, "Internal error creating user.", "cannot hash the password");
        goto out;
    }
    if (op_store_begin(p)) {
        op_api_error(resp, 500, "Internal error creating user.", "database is unavailable");
        goto out;
    }
    struct op_db_stmt *st = op_store_prepare(p, "SELECT 1 FROM users WHERE lower(username) = lower(?) OR "
                                                "lower(email) = lower(?)");
    bool exists = false;
    if (st) {
        op_db_bind_text(st, 1, username);
        op_db_bind_text(st, 2, email);
        exists = op_db_step(st) == OP_DB_ROW;
        op_db_finalize(st);
    }
    if (exists) {
        op_store_rollback(p);
        op_api_error(resp, 409, "User already exists.", NULL);
        goto out;
    }
    int rc = op_user_insert(p, id, username, email, name, hashed, owner);
    if (!op_api_commit(p, rc, resp, "Internal error creating user.", true)) goto out;
    op_info("users", "%s created user %s (%s)", u->username, username, owner ? "owner" : "member");
    cJSON *o = op_user_json(p, id);
    if (o)
        op_api_json(resp, 201, o);
    else
        op_api_error(resp, 500, "Internal error fetching user.", NULL);
out:
    cJSON_Delete(body);
}

void op_api_user_delete(struct op_primary *p, const struct op_user *u, const char *ref,
                        struct op_app_response *resp)
{
    if (!u->owner) {
        op_api_error(resp, 403, FORBIDDEN, "only owners delete users");
        return;
    }
    struct op_user who;
    int rc = op_user_lookup(p, u, ref, &who);
    if (rc == -ENOENT) {
        op_api_error(resp, 404, OP_NOT_FOUND_MSG, NULL);
        return;
    }
    if (rc) {
        op_api_error(resp, 500, "Internal error fetching user.", NULL);
        return;
    }
    if (strcmp(who.id, u->id) == 0) {
        op_api_error(resp, 403, "You cannot delete yourself!", NULL);
        return;
    }
    if (op_store_begin(p)) {
        op_api_error(resp, 500, "Internal error deleting user.", "database is unavailable");
        return;
    }
    struct op_db_stmt *st = op_store_prepare(p, "SELECT count(*) FROM workspaces WHERE owner_id = ?");
    int nws = -1;
    if (st) {
        op_db_bind_text(st, 1, who.id);
        if (op_db_step(st) == OP_DB_ROW) nws = (int)op_db_col_int64(st, 0);
        op_db_finalize(st);
    }
    if (nws != 0) {
        op_store_rollback(p);
        if (nws > 0)
            op_api_error(resp, 417,
                         "You cannot remove a user with workspaces. Delete their workspaces first.", NULL);
        else
            op_api_error(resp, 500, "Internal error deleting user.", NULL);
        return;
    }
    /* Sessions go with the user (ON DELETE CASCADE). */
    st = op_store_prepare(p, "DELETE FROM users WHERE id = ?");
    rc = -EIO;
    if (st) {
        op_db_bind_text(st, 1, who.id);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    }
    if (!op_api_commit(p, rc, resp, "Internal error deleting user.", false)) return;
    op_info("users", "%s deleted user %s", u->username, who.username);
    op_api_error(resp, 200, "User has been deleted!", NULL);
}

void op_api_user_roles(struct op_primary *p, const struct op_user *u, const char *ref,
                       const struct op_app_request *req, struct op_app_response *resp)
{
    if (!u->owner) {
        op_api_error(resp, 403, FORBIDDEN, "only owners change roles");
        return;
    }
    struct op_user who;
    int rc = op_user_lookup(p, u, ref, &who);
    if (rc) {
        op_api_lookup_error(resp, rc);
        return;
    }
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool owner = false;
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(body, "roles")) || !parse_roles(body, &owner)) {
        op_api_validation(resp, 400, "Validation failed.", "roles",
                          "roles must be [\"owner\"] or [] (member)");
        goto out;
    }
    if (strcmp(who.id, u->id) == 0) {
        op_api_error(resp, 400, "You cannot change your own roles.", NULL);
        goto out;
    }
    struct op_db_stmt *st = NULL;
    rc = op_store_begin(p);
    if (!rc &&
        (st = op_store_prepare(p, "UPDATE users SET roles = ?, updated_at = ? WHERE id = ?")) != NULL) {
        op_db_bind_text(st, 1, owner ? "owner" : "member");
        op_db_bind_int64(st, 2, op_wall_ms());
        op_db_bind_text(st, 3, who.id);
        rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        op_db_finalize(st);
    } else {
        rc = -EIO;
    }
    if (!op_api_commit(p, rc, resp, "Internal error updating roles.", false)) goto out;
    op_info("users", "%s made %s %s", u->username, who.username, owner ? "an owner" : "a member");
    cJSON *o = op_user_json(p, who.id);
    if (o)
        op_api_json(resp, 200, o);
    else
        op_api_error(resp, 500, "Internal error fetching user.", NULL);
out:
    cJSON_Delete(body);
}
