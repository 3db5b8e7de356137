/* wsapp/token.c — the claims of signed app tokens and app-connect API keys (see token.h). */
#include "wsapp/token.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proto/jws.h"

/* ---- writing ---- */

struct out {
    char *p;
    size_t len, cap;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || o->len + n >= o->cap) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A JSON string of s[0..n): '"' and '\\' escaped, control bytes as \u00XX, other bytes as they are. */
static void put_str(struct out *o, const char *s, size_t n)
{
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            put(o, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(e, sizeof(e), "\\u%04x", c);
            put(o, e, 6);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
    put(o, "\"", 1);
}

/* "name":"value" with the separator before it unless first. */
static void member(struct out *o, bool first, const char *name, const char *value, size_t cap)
{
    if (!first) put(o, ",", 1);
    put_str(o, name, strlen(name));
    put(o, ":", 1);
    put_str(o, value, strnlen(value, cap));
}
#define MEMBER(o, first, name, obj, field) member(o, first, name, (obj)->field, sizeof((obj)->field))

static void put_int(struct out *o, int64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%" PRId64, v);
    put(o, b, (size_t)n);
}

static int finish(struct out *o)
{
    if (o->full || o->len > INT32_MAX) return -ENOSPC;
    return (int)o->len;
}

int op_wsapp_token_encode(const struct op_wsapp_token *t, char *out, size_t outlen)
{
    struct out o = {out, 0, outlen, outlen == 0};
    if (outlen) out[0] = '\0';
    const struct op_wsapp_req *r = &t->req;
    puts_(&o, "{\"exp\":");
    put_int(&o, t->exp);
    puts_(&o, ",\"request\":{");
    member(&o, true, "access_method", op_wsapp_access_name(r->access), 16);
    MEMBER(&o, false, "base_path", r, base_path);
    MEMBER(&o, false, "app_prefix", r, prefix);
    MEMBER(&o, false, "username_or_id", r, user);
    MEMBER(&o, false, "workspace_name_or_id", r, workspace);
    MEMBER(&o, false, "agent_name_or_id", r, agent);
    MEMBER(&o, false, "app_slug_or_port", r, slug_or_port);
    puts_(&o, "}");
    MEMBER(&o, false, "user_id", t, user_id);
    MEMBER(&o, false, "workspace_id", t, workspace_id);
    MEMBER(&o, false, "agent_id", t, agent_id);
    MEMBER(&o, false, "app_url", t, app_url);
    if (t->iat) {
        puts_(&o, ",\"iat\":");
        put_int(&o, t->iat);
    }
    if (t->username[0]) MEMBER(&o, false, "username", t, username);
    if (t->email[0]) MEMBER(&o, false, "email", t, email);
    puts_(&o, "}");
    return finish(&o);
}

/* ---- reading ---- */

static bool uuid_ok(const char *s)
{
    if (strlen(s) != 36) return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if ((i == 8 || i == 13 || i == 18 || i == 23) ? c != '-' : !hex) return false;
    }
    return true;
}

/* A string member that must be present and fit (the reader never yields a NUL inside a string); any
 * failure is a malformed token. */
static bool str(const char *json, size_t len, const char *name, char *out, size_t outlen)
{
    return op_json_flat_str(json, len, name, out, outlen) == 0;
}

/* An optional string member: absent leaves out "" (true); present must fit and hold no control byte. */
static bool opt_text(const char *json, size_t len, const char *name, char *out, size_t outlen)
{
    int rc = op_json_flat_str(json, len, name, out, outlen);
    if (rc == -ENOENT) {
        out[0] = '\0';
        return true;
    }
    if (rc != 0) return false;
    for (const unsigned char *c = (const unsigned char *)out; *c; c++)
        if (*c < 0x20 || *c == 0x7f) return false;
    return true;
}

int op_wsapp_token_decode(const char *json, size_t len, int64_t now_s, int64_t leeway_s,
                          struct op_wsapp_token *out)
{
    memset(out, 0, sizeof(*out));
    const char *rq;
    size_t rql;
    char access[16];
    if (op_json_flat_int(json, len, "exp", &out->exp) != 0 ||
        op_json_flat_obj(json, len, "request", &rq, &rql) != 0 ||
        !str(rq, rql, "access_method", access, 16) ||
        !str(rq, rql, "base_path", out->req.base_path, sizeof(out->req.base_path)) ||
        !str(rq, rql, "app_prefix", out->req.prefix, sizeof(out->req.prefix)) ||
        !str(rq, rql, "username_or_id", out->req.user, sizeof(out->req.user)) ||
        !str(rq, rql, "workspace_name_or_id", out->req.workspace, sizeof(out->req.workspace)) ||
        !str(rq, rql, "agent_name_or_id", out->req.agent, sizeof(out->req.agent)) ||
        !str(rq, rql, "app_slug_or_port", out->req.slug_or_port, sizeof(out->req.slug_or_port)) ||
        !str(json, len, "user_id", out->user_id, sizeof(out->user_id)) ||
        !str(json, len, "workspace_id", out->workspace_id, sizeof(out->workspace_id)) ||
        !str(json, len, "agent_id", out->agent_id, sizeof(out->agent_id)) ||
        !str(json, len, "app_url", out->app_url, sizeof(out->app_url)) ||
        !opt_text(json, len, "username", out->username, sizeof(out->username)) ||
        !opt_text(json, len, "email", out->email, sizeof(out->email)))
        return -EINVAL;
    int irc = op_json_flat_int(json, len, "iat", &out->iat);
    if (irc == -ENOENT)
        out->iat = 0;
    else if (irc != 0 || out->iat <= 0 || out->iat > out->exp)
        return -EINVAL;
    out->req.access = op_wsapp_access_parse(access, strlen(access));
    if ((out->user_id[0] && !uuid_ok(out->user_id)) || !uuid_ok(out->workspace_id) ||
        !uuid_ok(out->agent_id) || out->app_url[0] == '\0')
        return -EINVAL;
    op_wsapp_req_normalize(&out->req);
    if (op_wsapp_req_check(&out->req, NULL) != 0) return -EINVAL;
    if (out->iat && out->exp - out->iat < leeway_s) leeway_s = out->exp - out->iat;
    if (now_s - out->exp > leeway_s) return -ETIMEDOUT;
    return 0;
}

int op_wsapp_token_verify(const char *tok, size_t len, const struct op_wsapp_key *keys, int nkeys,
                          int64_t now_s, struct op_wsapp_token *out)
{
    struct op_jws j;
    if (op_jws_parse(tok, len, &j) != 0) return -EACCES; /* a missing kid too: no refetch finds it */
    const struct op_wsapp_key *k = NULL;
    for (int i = 0; i < nkeys && !k; i++)
        if (keys[i].kid == j.kid) k = &keys[i];
    if (!k) return -ENOKEY;
    if (k->len == 0 || k->len > sizeof(k->secret) || !op_jws_mac_ok(&j, tok, k->secret, k->len))
        return -EACCES;
    return op_wsapp_token_decode(j.payload, j.payload_len, now_s, OP_WSAPP_LEEWAY_S, out);
}

int op_wsapp_apikey_encode(const char *api_key, int64_t now_s, char *out, size_t outlen)
{
    struct out o = {out, 0, outlen, outlen == 0};
    if (outlen) out[0] = '\0';
    puts_(&o, "{\"iss\":\"coderd\",\"aud\":[\"wsproxy\"],\"exp\":");
    put_int(&o, now_s + OP_WSAPP_APIKEY_LIFETIME_S);
    puts_(&o, ",\"nbf\":");
    put_int(&o, now_s);
    put(&o, ",", 1);
    put_str(&o, "api_key", 7);
    put(&o, ":", 1);
    put_str(&o, api_key, strlen(api_key));
    puts_(&o, "}");
    return finish(&o);
}

int op_wsapp_apikey_decode(const char *json, size_t len, int64_t now_s, char *api_key, size_t keylen)
{
    char iss[16];
    bool aud = false;
    int64_t exp, nbf;
    if (op_json_flat_str(json, len, "iss", iss, sizeof(iss)) != 0 || strcmp(iss, "coderd") != 0 ||
        op_json_flat_has_str(json, len, "aud", "wsproxy", &aud) != 0 || !aud ||
        op_json_flat_int(json, len, "exp", &exp) != 0 || op_json_flat_int(json, len, "nbf", &nbf) != 0 ||
        op_json_flat_str(json, len, "api_key", api_key, keylen) != 0 || api_key[0] == '\0')
        return -EINVAL;
    if (nbf > now_s + OP_WSAPP_LEEWAY_S || exp <= now_s - OP_WSAPP_LEEWAY_S) return -ETIMEDOUT;
    return 0;
}
