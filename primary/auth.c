/*
 * primary/auth.c — users, passwords (PBKDF2-HMAC-SHA256, random salt) and session tokens.
 * A session token is "<10 alphanumerics id>-<22 alphanumerics secret>"; only SHA-256(secret) is stored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/primary_int.h"

#define SIGNED_OUT_MSG "You are signed out or your session has expired. Please sign in again to continue."
#define SUSPENDED_MSG  "Your account is suspended. Contact an admin to reactivate your account."
#define KEY_ID_LEN     10
#define KEY_SECRET_LEN 22
_Static_assert(KEY_ID_LEN + 1 + KEY_SECRET_LEN == OP_API_KEY_LEN, "API key length");

int op_password_hash(const char *password, uint32_t iterations, char *out, size_t outlen)
{
    uint8_t salt[16], dk[32];
    int rc = op_random_bytes(salt, sizeof(salt));
    if (rc) return rc;
    rc = op_pbkdf2_sha256(password, strlen(password), salt, sizeof(salt), iterations, dk, sizeof(dk));
    if (rc) return rc;
    char salthex[33], dkhex[65];
    op_hex_encode(salt, sizeof(salt), salthex);
    op_hex_encode(dk, sizeof(dk), dkhex);
    op_secure_zero(dk, sizeof(dk));
    int n = snprintf(out, outlen, "pbkdf2-sha256$%u$%s$%s", iterations, salthex, dkhex);
    return n > 0 && (size_t)n < outlen ? 0 : -ENOSPC;
}

bool op_password_verify(const char *password, const char *encoded)
{
    static const char pfx[] = "pbkdf2-sha256$";
    if (strncmp(encoded, pfx, sizeof(pfx) - 1) != 0) return false;
    const char *q = encoded + sizeof(pfx) - 1;
    char *end;
    unsigned long iter = strtoul(q, &end, 10);
    if (*end != '$' || iter == 0 || iter > 10000000) return false;
    const char *salthex = end + 1, *d = strchr(salthex, '$');
    if (!d) return false;
    uint8_t salt[64], want[32], got[32];
    size_t slen = (size_t)(d - salthex) / 2;
    if (slen == 0 || slen > sizeof(salt) || op_hex_decode(salthex, (size_t)(d - salthex), salt, slen) ||
        op_hex_decode(d + 1, strlen(d + 1), want, sizeof(want)))
        return false;
    if (op_pbkdf2_sha256(password, strlen(password), salt, slen, (uint32_t)iter, got, sizeof(got)))
        return false;
    bool ok = op_ct_equal(got, want, sizeof(got));
    op_secure_zero(got, sizeof(got));
    return ok;
}

static bool has_user(struct op_primary *p)
{
    struct op_db_stmt *st = op_store_prepare(p, "SELECT 1 FROM users LIMIT 1");
    bool any = st && op_db_step(st) == OP_DB_ROW;
    op_db_finalize(st);
    return any;
}

void op_api_users_first_get(struct op_primary *p, struct op_app_response *resp)
{
    if (has_user(p))
        op_api_error(resp, 200, "The initial user has already been created!", NULL);
    else
        op_api_error(resp, 404, "The initial user has not been created!", NULL);
}

bool op_email_valid(const char *e)
{
    const char *at = strchr(e, '@');
    size_t n = strlen(e);
    return at && at != e && at[1] && !strchr(at + 1, '@') && n <= 254 && !strpbrk(e, " \t\r\n<>");
}

static cJSON *validation_failed(const char *field, const char *detail)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", "Validation failed.");
    cJSON *arr = cJSON_AddArrayToObject(o, "validations");
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "field", field);
    cJSON_AddStringToObject(v, "detail", detail);
    cJSON_AddItemToArray(arr, v);
    return o;
}

void op_api_users_first_post(struct op_primary *p, const struct op_app_request *req,
                             struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool bad = false;
    const char *email = op_json_str(body, "email", &bad);
    const char *username = op_json_str(body, "username", &bad);
    const char *name = op_json_str(body, "name", &bad);
    const char *password = op_json_str(body, "password", &bad);
    char detail[160];
    if (bad) {
        op_api_error(resp, 400, "Request body must be valid JSON.", "a field has the wrong type");
        goto out;
    }
    if (!username || !*username) {
        op_api_json(resp, 400,
                    validation_failed("username", "Validation failed for tag \"required\" with value: \"\""));
        goto out;
    }
    if (!op_name_valid(username)) {
        snprintf(detail, sizeof(detail), "Validation failed for tag \"username\" with value: \"%.64s\"",
                 username);
        op_api_json(resp, 400, validation_failed("username", detail));
        goto out;
    }
    if (!email || !op_email_valid(email)) {
        snprintf(detail, sizeof(detail), "Validation failed for tag \"email\" with value: \"%.64s\"",
                 email ? email : "");
        op_api_json(resp, 400, validation_failed("email", detail));
        goto out;
    }
    if (!password || strlen(password) < 6) {
        cJSON *o = validation_failed("password", "password must be at least 6 characters long");
        cJSON_ReplaceItemInObject(o, "message", cJSON_CreateString("Password not strong enough!"));
        op_api_json(resp, 400, o);
        goto out;
    }
    if (strlen(password) > 256 || (name && strlen(name) > 128)) {
        op_api_error(resp, 400, "Validation failed.", "a field is too long");
        goto out;
    }
    char hashed[200];
    char id[OP_UUID_STR_LEN + 1];
    if (op_password_hash(password, p->kdf_iterations, hashed, sizeof(hashed)) || op_uuid_v4(id)) {
        op_api_error(resp, 500, "Internal error creating user.", "cannot hash the password");
        goto out;
    }
    if (op_store_begin(p)) {
        op_api_error(resp, 500, "Internal error creating user.", "database is unavailable");
        goto out;
    }
    if (has_user(p)) {
        op_store_rollback(p);
        op_api_error(resp, 409, "The initial user has already been created.", NULL);
        goto out;
    }
    int rc = op_user_insert(p, id, username, email, name, hashed, true);
    if (!op_api_commit(p, rc, resp, "Internal error creating user.", true)) goto out;
    op_info("auth", "created the first user (owner) %s", username);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "user_id", id);
    char org[OP_UUID_STR_LEN + 1] = "";
    op_store_get_config(p, "organization_id", org, sizeof(org));
    cJSON_AddStringToObject(o, "organization_id", org);
    op_api_json(resp, 201, o);
out:
    cJSON_Delete(body);
}

int op_api_key_create(struct op_primary *p, const char *user_id, const char *scope, int64_t lifetime_s,
                      int64_t expires_ms, char token[OP_API_KEY_LEN + 1])
{
    char keyid[KEY_ID_LEN + 1], secret[KEY_SECRET_LEN + 1];
    uint8_t hash[OP_SHA256_LEN];
    if (op_random_alnum(keyid, KEY_ID_LEN) || op_random_alnum(secret, KEY_SECRET_LEN)) return -EIO;
    op_sha256(secret, KEY_SECRET_LEN, hash);
    int64_t now = op_wall_ms();
    int rc = op_store_begin(p);
    if (!rc) {
        struct op_db_stmt *st = op_store_prepare(
            p, "INSERT INTO api_keys (id, hashed_secret, user_id, login_type, lifetime_seconds,"
               " created_at, last_used, expires_at, scope) VALUES (?, ?, ?, 'password', ?, ?, ?, ?, ?)");
        rc = -EIO;
        if (st) {
            op_db_bind_text(st, 1, keyid);
            op_db_bind_blob(st, 2, hash, sizeof(hash));
            op_db_bind_text(st, 3, user_id);
            op_db_bind_int64(st, 4, lifetime_s);
            op_db_bind_int64(st, 5, now);
            op_db_bind_int64(st, 6, now);
            op_db_bind_int64(st, 7, expires_ms);
            op_db_bind_text(st, 8, scope);
            rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
            op_db_finalize(st);
        }
        st = rc ? NULL : op_store_prepare(p, "UPDATE users SET last_seen_at = ? WHERE id = ?");
        if (st) {
            op_db_bind_int64(st, 1, now);
            op_db_bind_text(st, 2, user_id);
            op_db_step(st);
            op_db_finalize(st);
        }
        rc = rc ? rc : op_store_commit(p);
    }
    if (rc) op_store_rollback(p);
    if (!rc) snprintf(token, OP_API_KEY_LEN + 1, "%s-%s", keyid, secret);
    op_secure_zero(secret, sizeof(secret));
    return rc ? -EIO : 0;
}

int op_login_password(struct op_primary *p, const char *who, const char *password,
                      char token[OP_API_KEY_LEN + 1], const char **message)
{
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT id, hashed_password, status FROM users WHERE lower(email) = "
                            "lower(?1) OR lower(username) = lower(?1) LIMIT 1");
    char uid[OP_UUID_STR_LEN + 1] = "", hashed[200] = "", status[16] = "";
    if (st) {
        op_db_bind_text(st, 1, who);
        if (op_db_step(st) == OP_DB_ROW) {
            snprintf(uid, sizeof(uid), "%s", op_db_col_text(st, 0));
            snprintf(hashed, sizeof(hashed), "%s", op_db_col_text(st, 1));
            snprintf(status, sizeof(status), "%s", op_db_col_text(st, 2));
        }
        op_db_finalize(st);
    }
    bool ok;
    if (*uid) {
        ok = op_password_verify(password, hashed);
    } else {
        /* Spend the same KDF time for unknown users so timing does not reveal which accounts exist. */
        uint8_t dk[32];
        op_pbkdf2_sha256(password, strlen(password), "outpost-dummy-salt", 18, p->kdf_iterations, dk,
                         sizeof(dk));
        ok = false;
    }
    if (!ok) {
        *message = "Incorrect email or password.";
        return -EACCES;
    }
    if (strcmp(status, "active") != 0) {
        *message = SUSPENDED_MSG;
        return -EACCES;
    }
    if (op_api_key_create(p, uid, "all", OP_SESSION_LIFETIME_S, op_wall_ms() + OP_SESSION_LIFETIME_S * 1000LL,
                          token) != 0) {
        *message = "Failed to create API key.";
        return -EIO;
    }
    return 0;
}

void op_session_cookie(struct op_app_response *resp, const char *token, bool tls)
{
    char cookie[160];
    snprintf(cookie, sizeof(cookie), "coder_session_token=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s",
             token, OP_SESSION_LIFETIME_S, tls ? "; Secure" : "");
    op_app_add_header(resp, "Set-Cookie", cookie);
    op_secure_zero(cookie, sizeof(cookie));
}

void op_api_users_login(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp)
{
    cJSON *body = op_api_body_object(req, resp);
    if (!body) return;
    bool bad = false;
    const char *email = op_json_str(body, "email", &bad);
    const char *username = op_json_str(body, "username", &bad);
    const char *password = op_json_str(body, "password", &bad);
    const char *who = email && *email ? email : username;
    if (bad || !who || !*who || !password || !*password) {
        op_api_json(resp, 400,
                    validation_failed(!password || !*password ? "password" : "email",
                                      "Validation failed for tag \"required\" with value: \"\""));
        cJSON_Delete(body);
        return;
    }
    char token[OP_API_KEY_LEN + 1];
    const char *msg = NULL;
    int rc = op_login_password(p, who, password, token, &msg);
    cJSON_Delete(body);
    if (rc) {
        op_api_error(resp, rc == -EACCES ? 401 : 500, msg, rc == -EACCES ? NULL : "database error");
        return;
    }
    op_session_cookie(resp, token, req->tls);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session_token", token);
    op_api_json(resp, 201, o);
    op_secure_zero(token, sizeof(token));
}

size_t op_session_token(const struct op_app_request *req, char *out, size_t outlen, bool query_ok)
{
    const struct op_app_header *h = op_app_find_header(req, "Coder-Session-Token");
    if (h && h->value.len > 0 && h->value.len < outlen) {
        memcpy(out, h->value.p, h->value.len);
        out[h->value.len] = '\0';
        return h->value.len;
    }
    for (int i = 0; i < req->nheaders; i++) {
        const struct op_app_header *c = &req->headers[i];
        if (c->name.len != 6 || strncasecmp(c->name.p, "Cookie", 6) != 0) continue;
        const char *q = c->value.p, *end = c->value.p + c->value.len;
        while (q < end) {
            while (q < end && (*q == ' ' || *q == ';'))
                q++;
            const char *semi = memchr(q, ';', (size_t)(end - q));
            const char *pe = semi ? semi : end;
            static const char nm[] = "coder_session_token=";
            size_t nl = sizeof(nm) - 1;
            if ((size_t)(pe - q) > nl && memcmp(q, nm, nl) == 0 && (size_t)(pe - q) - nl < outlen) {
                size_t n = (size_t)(pe - q) - nl;
                memcpy(out, q + nl, n);
                out[n] = '\0';
                return n;
            }
            q = pe;
        }
    }
    if (query_ok && op_api_query(req, "coder_session_token", out, outlen) == 0) return strlen(out);
    return 0;
}

int op_auth_token(struct op_primary *p, const char *token, bool app_connect_ok, struct op_user *user,
                  struct op_auth_why *why)
{
    why->message = SIGNED_OUT_MSG;
    why->detail[0] = '\0';
    const char *dash = strchr(token, '-');
    if (!dash || dash - token != KEY_ID_LEN || strlen(dash + 1) != KEY_SECRET_LEN) {
        snprintf(why->detail, sizeof(why->detail), "Invalid API key format: invalid API key format.");
        return -EACCES;
    }
    uint8_t hash[OP_SHA256_LEN];
    op_sha256(dash + 1, KEY_SECRET_LEN, hash);
    char keyid[KEY_ID_LEN + 1];
    memcpy(keyid, token, KEY_ID_LEN);
    keyid[KEY_ID_LEN] = '\0';
    struct op_db_stmt *st = op_store_prepare(
        p, "SELECT k.hashed_secret, k.expires_at, k.last_used, u.id, u.username, u.email, u.roles, u.status,"
           " k.scope FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?");
    if (!st) {
        why->message = "Internal error fetching API key by id.";
        return -EIO;
    }
    op_db_bind_text(st, 1, keyid);
    if (op_db_step(st) != OP_DB_ROW) {
        op_db_finalize(st);
        snprintf(why->detail, sizeof(why->detail), "API key is invalid.");
        return -EACCES;
    }
    size_t stored_len = 0;
    const void *stored = op_db_col_blob(st, 0, &stored_len);
    bool match = stored && stored_len == OP_SHA256_LEN && op_ct_equal(stored, hash, OP_SHA256_LEN);
    int64_t expires = op_db_col_int64(st, 1), last_used = op_db_col_int64(st, 2);
    snprintf(user->id, sizeof(user->id), "%s", op_db_col_text(st, 3));
    snprintf(user->username, sizeof(user->username), "%s", op_db_col_text(st, 4));
    snprintf(user->email, sizeof(user->email), "%s", op_db_col_text(st, 5));
    user->owner = strstr(op_db_col_text(st, 6), "owner") != NULL;
    bool active = strcmp(op_db_col_text(st, 7), "active") == 0;
    user->app_connect = strcmp(op_db_col_text(st, 8), "all") != 0;
    user->key_expires_ms = expires;
    op_db_finalize(st);
    int64_t now = op_wall_ms();
    if (!match) {
        snprintf(why->detail, sizeof(why->detail), "API key secret is invalid.");
        return -EACCES;
    }
    if (now >= expires) {
        char at[32];
        op_format_time(expires, at);
        snprintf(why->detail, sizeof(why->detail), "API key expired at \"%s\".", at);
        return -EACCES;
    }
    if (!active) {
        why->message = SUSPENDED_MSG;
        return -EACCES;
    }
    if (user->app_connect && !app_connect_ok) {
        /* Scoped keys exist for workspace proxies' app sessions; they must not reach the rest of the API. */
        snprintf(why->detail, sizeof(why->detail),
                 "This API key has the application_connect scope: it is only valid for workspace apps.");
        return -EACCES;
    }
    /* Sliding expiry: refresh at most once a minute so reads stay cheap. App-connect keys keep the
     * expiry they were given (never past the session they came from). */
    if (!user->app_connect && now - last_used > 60000) {
        if (op_store_begin(p) == 0) {
            st = op_store_prepare(
                p, "UPDATE api_keys SET last_used = ?1, expires_at = ?1 + lifetime_seconds * 1000"
                   " WHERE id = ?2");
            bool ok = false;
            if (st) {
                op_db_bind_int64(st, 1, now);
                op_db_bind_text(st, 2, keyid);
                ok = op_db_step(st) == OP_DB_DONE;
                op_db_finalize(st);
            }
            if (!ok || op_store_commit(p))
                op_store_rollback(p); /* best effort: the request itself is still authorised */
            else
                user->key_expires_ms = -1; /* re-read below */
        }
        if (user->key_expires_ms < 0) {
            st = op_store_prepare(p, "SELECT expires_at FROM api_keys WHERE id = ?");
            user->key_expires_ms = expires;
            if (st) {
                op_db_bind_text(st, 1, keyid);
                if (op_db_step(st) == OP_DB_ROW) user->key_expires_ms = op_db_col_int64(st, 0);
                op_db_finalize(st);
            }
        }
    }
    return 0;
}

bool op_auth_session(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp,
                     struct op_user *user)
{
    char token[128];
    size_t n = op_session_token(req, token, sizeof(token), true);
    if (n == 0) {
        op_api_error(resp, 401, SIGNED_OUT_MSG,
                     "Cookie \"coder_session_token\" or query parameter must be provided.");
        return false;
    }
    struct op_auth_why why;
    int rc = op_auth_token(p, token, false, user, &why);
    op_secure_zero(token, sizeof(token));
    if (rc) op_api_error(resp, rc == -EACCES ? 401 : 500, why.message, why.detail);
    return rc == 0;
}

void op_api_users_me(struct op_primary *p, const struct op_user *u, struct op_app_response *resp)
{
    cJSON *o = op_user_json(p, u->id);
    if (!o) {
        op_api_error(resp, 500, "Internal error fetching user.", NULL);
        return;
    }
    op_api_json(resp, 200, o);
}

void op_api_users_logout(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp)
{
    char token[128];
    if (op_session_token(req, token, sizeof(token), true) > KEY_ID_LEN) {
        token[KEY_ID_LEN] = '\0';
        struct op_db_stmt *st = NULL;
        if (op_store_begin(p) == 0 &&
            (st = op_store_prepare(p, "DELETE FROM api_keys WHERE id = ?")) != NULL) {
            op_db_bind_text(st, 1, token);
            int rc = op_db_step(st);
            op_db_finalize(st);
            if (rc != OP_DB_DONE || op_store_commit(p)) {
                op_store_rollback(p);
                op_api_error(resp, 500, "Internal error deleting API key.", NULL);
                return;
            }
        } else {
            op_store_rollback(p);
            op_api_error(resp, 500, "Internal error deleting API key.", NULL);
            return;
        }
    }
    op_secure_zero(token, sizeof(token));
    op_app_add_header(resp, "Set-Cookie", "coder_session_token=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    op_api_error(resp, 200, "Logged out!", NULL);
}
