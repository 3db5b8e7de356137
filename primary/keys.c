/*
 * primary/keys.c — crypto keys served to proxies (`/me/crypto-keys`): "workspace_apps_token" (64-byte
 * HS512 signing secret) and "workspace_apps_api_key" (32-byte encryption secret), hex encoded.
 * Created on first need; rotated as Coder does (docs/coder-compat.md, "Crypto keys"): keys live 30 days, a
 * successor is inserted 1 h before expiry starting at max(expiry, now + 30 min), and the old key is deleted 1
 * h + the token lifetime (1 min) after its successor starts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "primary/primary_int.h"

#define KEY_LIFETIME_MS    (30LL * 24 * 3600 * 1000)
#define ROTATE_BEFORE_MS   (3600LL * 1000)
#define MIN_START_DELAY_MS (30LL * 60 * 1000)
#define DELETE_GRACE_MS    (3600LL * 1000 + 60LL * 1000)

struct feature {
    const char *name;
    size_t secret_len;
};

static const struct feature features[] = {
    {"workspace_apps_token", 64},
    {"workspace_apps_api_key", 32},
};

static int insert_key(struct op_primary *p, const struct feature *f, int64_t seq, int64_t starts_at)
{
    uint8_t raw[64];
    char hex[129];
    int rc = op_random_bytes(raw, f->secret_len);
    if (rc) return rc;
    op_hex_encode(raw, f->secret_len, hex);
    op_secure_zero(raw, sizeof(raw));
    struct op_db_stmt *st = op_store_prepare(
        p, "INSERT INTO crypto_keys (feature, sequence, secret, starts_at) VALUES (?, ?, ?, ?)");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, f->name);
    op_db_bind_int64(st, 2, seq);
    op_db_bind_text(st, 3, hex);
    op_db_bind_int64(st, 4, starts_at);
    rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
    op_db_finalize(st);
    op_secure_zero(hex, sizeof(hex));
    if (!rc) op_info("keys", "new %s key, sequence %lld", f->name, (long long)seq);
    return rc;
}

static int rotate_feature(struct op_primary *p, const struct feature *f, int64_t now)
{
    /* Forget the secrets of keys past their deletion time. */
    struct op_db_stmt *st = op_store_prepare(p, "UPDATE crypto_keys SET secret = NULL WHERE feature = ? AND "
                                                "deletes_at IS NOT NULL AND deletes_at <= ?"
                                                " AND secret IS NOT NULL");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, f->name);
    op_db_bind_int64(st, 2, now);
    int rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
    op_db_finalize(st);
    if (rc) return rc;

    int64_t max_seq = 0, latest_seq = -1, latest_start = 0;
    bool latest_has_delete = false;
    st = op_store_prepare(p, "SELECT sequence, starts_at, deletes_at FROM crypto_keys WHERE feature = ?"
                             " ORDER BY sequence");
    if (!st) return -EIO;
    op_db_bind_text(st, 1, f->name);
    while ((rc = op_db_step(st)) == OP_DB_ROW) {
        int64_t seq = op_db_col_int64(st, 0), start = op_db_col_int64(st, 1);
        bool has_del = !op_db_col_is_null(st, 2);
        int64_t del = op_db_col_int64(st, 2);
        max_seq = OP_MAX(max_seq, seq);
        bool can_sign = start <= now && (!has_del || now < del);
        if (can_sign) {
            latest_seq = seq;
            latest_start = start;
            latest_has_delete = has_del;
        }
    }
    op_db_finalize(st);
    if (rc != OP_DB_DONE) return -EIO;
    if (latest_seq < 0) return insert_key(p, f, max_seq + 1, now);
    int64_t expiry = latest_start + KEY_LIFETIME_MS;
    if (now < expiry - ROTATE_BEFORE_MS || max_seq > latest_seq || latest_has_delete) return 0;
    int64_t start = OP_MAX(expiry, now + MIN_START_DELAY_MS);
    rc = insert_key(p, f, max_seq + 1, start);
    if (rc) return rc;
    st = op_store_prepare(p, "UPDATE crypto_keys SET deletes_at = ? WHERE feature = ? AND sequence = ?");
    if (!st) return -EIO;
    op_db_bind_int64(st, 1, start + DELETE_GRACE_MS);
    op_db_bind_text(st, 2, f->name);
    op_db_bind_int64(st, 3, latest_seq);
    rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
    op_db_finalize(st);
    return rc;
}

int op_keys_rotate(struct op_primary *p)
{
    int64_t now = op_wall_ms();
    int rc = op_store_begin(p);
    for (size_t i = 0; !rc && i < OP_ARRAY_LEN(features); i++)
        rc = rotate_feature(p, &features[i], now);
    if (rc || op_store_commit(p)) {
        op_store_rollback(p);
        op_error("keys", "key rotation failed");
        return -EIO;
    }
    return 0;
}

void op_api_crypto_keys(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp)
{
    char feat[64];
    int q = op_api_query(req, "feature", feat, sizeof(feat));
    if (q == -ENOENT || (q == 0 && !*feat)) {
        op_api_error(resp, 400, "Missing feature query parameter.", NULL);
        return;
    }
    const struct feature *f = NULL;
    for (size_t i = 0; q == 0 && i < OP_ARRAY_LEN(features); i++)
        if (strcmp(feat, features[i].name) == 0) f = &features[i];
    if (!f) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Invalid feature: \"%.64s\"", q == 0 ? feat : "");
        op_api_error(resp, 400, msg, NULL);
        return;
    }
    if (op_keys_rotate(p)) {
        op_api_error(resp, 500, "Internal error fetching crypto keys.", NULL);
        return;
    }
    struct op_db_stmt *st =
        op_store_prepare(p, "SELECT sequence, secret, starts_at, deletes_at FROM crypto_keys"
                            " WHERE feature = ? AND secret IS NOT NULL ORDER BY sequence");
    if (!st) {
        op_api_error(resp, 500, "Internal error fetching crypto keys.", NULL);
        return;
    }
    op_db_bind_text(st, 1, f->name);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "crypto_keys");
    while (op_db_step(st) == OP_DB_ROW) {
        char t[32];
        cJSON *k = cJSON_CreateObject();
        cJSON_AddStringToObject(k, "feature", f->name);
        cJSON_AddStringToObject(k, "secret", op_db_col_text(st, 1));
        cJSON_AddNumberToObject(k, "sequence", (double)op_db_col_int64(st, 0));
        op_format_time(op_db_col_int64(st, 2), t);
        cJSON_AddStringToObject(k, "starts_at", t);
        op_format_time(op_db_col_is_null(st, 3) ? -1 : op_db_col_int64(st, 3), t);
        cJSON_AddStringToObject(k, "deletes_at", t);
        cJSON_AddItemToArray(arr, k);
    }
    op_db_finalize(st);
    op_api_json(resp, 200, o);
}
