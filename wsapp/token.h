/*
 * wsapp/token.h — the claims of the two tokens of workspace apps (docs/apps.md):
 *
 *   signed app token (compact JWS HS512, proto/jws.h, key feature workspace_apps_token, lifetime 1 min
 *   unless the primary's --app-token-lifetime says otherwise):
 *     {"exp":<unix s>,"request":{"access_method","base_path","app_prefix","username_or_id",
 *      "workspace_name_or_id","agent_name_or_id","app_slug_or_port"},"user_id","workspace_id","agent_id",
 *      "app_url"[,"iat":<unix s>][,"username","email"]}
 *     The reference's payload plus three optional members we write: "iat" (when it was issued: the exp
 *     leeway never exceeds the token's lifetime, so a short-lived token really expires), and the visitor's
 *     "username" and "email" (the X-Coder-Username / X-Coder-User-Email headers the app gets). Tokens
 *     without them (the reference's) verify as before.
 *   app-connect API key (compact JWE, wsapp/jwe.h, key feature workspace_apps_api_key, lifetime 1 min):
 *     {"iss":"coderd","aud":["wsproxy"],"exp":<unix s>,"nbf":<unix s>,"api_key":"<id>-<secret>"}
 *
 * Encoding writes JSON text; parsing reads a payload that was already authenticated (MAC or AEAD) and
 * allocates nothing (worker threads verify app tokens on every request).
 */
#ifndef OP_WSAPP_TOKEN_H
#define OP_WSAPP_TOKEN_H

#include "wsapp/appurl.h"

#define OP_WSAPP_TOKEN_LIFETIME_S  60
#define OP_WSAPP_APIKEY_LIFETIME_S 60
#define OP_WSAPP_URL_MAX           512
#define OP_WSAPP_PTY_PORT          2  /* the agent's reconnecting-PTY port: terminal tokens lead there */
#define OP_WSAPP_LEEWAY_S          60 /* clock leeway of exp/nbf checks: go-jose's default, as Coder uses */
#define OP_WSAPP_USERNAME_MAX      64
#define OP_WSAPP_EMAIL_MAX         256

struct op_wsapp_token {
    int64_t exp; /* unix seconds */
    int64_t iat; /* unix seconds; 0 = absent (not written) */
    struct op_wsapp_req req;
    char user_id[37], workspace_id[37],
        agent_id[37];                   /* UUIDs; user_id is the visitor ("" = anonymous, public apps) */
    char app_url[OP_WSAPP_URL_MAX + 1]; /* "http://127.0.0.1:8080/..." inside the workspace */
    /* The visitor's name and email ("" = absent, not written); printable, no control bytes (they become
     * request headers). */
    char username[OP_WSAPP_USERNAME_MAX + 1], email[OP_WSAPP_EMAIL_MAX + 1];
};

/* The payload JSON of a signed app token. Returns its length or -ENOSPC. */
int op_wsapp_token_encode(const struct op_wsapp_token *t, char *out, size_t outlen);
/* Parses a verified payload: every required member present and well formed (request normalised), the
 * optional ones well formed when present (username and email without control bytes, iat <= exp), exp not
 * passed by more than the leeway at now_s: leeway_s, or the token's lifetime (exp - iat) when iat is present
 * and that is shorter. 0, -EINVAL (malformed), -ETIMEDOUT (expired). */
int op_wsapp_token_decode(const char *json, size_t len, int64_t now_s, int64_t leeway_s,
                          struct op_wsapp_token *out);

/* A signed app token of `tok` (the compact JWS text): verifies it with keys (kid → 64-byte secret) and
 * decodes it with OP_WSAPP_LEEWAY_S of leeway. 0, -ENOKEY (kid unknown: the caller may refetch keys), -EACCES
 * (bad MAC / format), -ETIMEDOUT, -EINVAL. */
struct op_wsapp_key {
    int64_t kid;
    uint8_t secret[64];
    size_t len; /* 64 for workspace_apps_token, 32 for workspace_apps_api_key */
};
int op_wsapp_token_verify(const char *tok, size_t len, const struct op_wsapp_key *keys, int nkeys,
                          int64_t now_s, struct op_wsapp_token *out);

/* The app-connect API key claims. */
int op_wsapp_apikey_encode(const char *api_key, int64_t now_s, char *out, size_t outlen);
/* Checks iss "coderd", aud contains "wsproxy" (an array, or one string), nbf present and <= now + leeway,
 * exp > now - leeway (leeway OP_WSAPP_LEEWAY_S); copies api_key (non-empty). 0, -EINVAL (also when keylen
 * is too small), -ETIMEDOUT. */
int op_wsapp_apikey_decode(const char *json, size_t len, int64_t now_s, char *api_key, size_t keylen);

#endif
