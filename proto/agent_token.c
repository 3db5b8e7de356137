/* proto/agent_token.c — agent credential and connect token claims (see agent_token.h). */
#include "proto/agent_token.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool uuid_lower(const char *s)
{
    if (strlen(s) != OP_ID_LEN) return false;
    for (int i = 0; i < OP_ID_LEN; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

static bool region_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

static int done(int n, size_t outlen)
{
    return n < 0 || (size_t)n >= outlen ? -ENOSPC : n;
}

int op_agent_cred_payload(const struct op_agent_cred *c, char *out, size_t outlen)
{
    if (!uuid_lower(c->agent_id) || !uuid_lower(c->workspace_id) || !uuid_lower(c->owner_id)) return -EINVAL;
    return done(snprintf(out, outlen,
                         "{\"aud\":\"" OP_AGENT_CRED_AUD "\",\"agent_id\":\"%s\",\"workspace_id\":\"%s\","
                         "\"owner_id\":\"%s\",\"iat\":%lld,\"exp\":%lld}",
                         c->agent_id, c->workspace_id, c->owner_id, (long long)c->iat, (long long)c->exp),
                outlen);
}

int op_connect_payload(const struct op_connect_claims *c, char *out, size_t outlen)
{
    if (!uuid_lower(c->user_id) || !uuid_lower(c->agent_id) || !uuid_lower(c->workspace_id) ||
        !region_ok(c->region) || c->port == 0)
        return -EINVAL;
    return done(snprintf(out, outlen,
                         "{\"aud\":\"" OP_CONNECT_AUD "\",\"user_id\":\"%s\",\"agent_id\":\"%s\","
                         "\"workspace_id\":\"%s\",\"port\":%u,\"region\":\"%s\",\"exp\":%lld}",
                         c->user_id, c->agent_id, c->workspace_id, (unsigned)c->port, c->region,
                         (long long)c->exp),
                outlen);
}

static int read_id(const struct op_jws *j, const char *name, char out[OP_ID_LEN + 1])
{
    if (op_json_flat_str(j->payload, j->payload_len, name, out, OP_ID_LEN + 1) != 0 || !uuid_lower(out))
        return -EINVAL;
    return 0;
}

static int check_aud_exp(const struct op_jws *j, const char *aud, int64_t now_s, int64_t *exp)
{
    char a[32];
    if (op_json_flat_str(j->payload, j->payload_len, "aud", a, sizeof(a)) != 0 || strcmp(a, aud) != 0)
        return -EINVAL;
    if (op_json_flat_int(j->payload, j->payload_len, "exp", exp) != 0) return -EINVAL;
    return *exp + OP_JWS_LEEWAY_S > now_s ? 0 : -ETIMEDOUT;
}

int op_agent_cred_read(const struct op_jws *j, int64_t now_s, struct op_agent_cred *out)
{
    memset(out, 0, sizeof(*out));
    if (read_id(j, "agent_id", out->agent_id) || read_id(j, "workspace_id", out->workspace_id) ||
        read_id(j, "owner_id", out->owner_id) ||
        op_json_flat_int(j->payload, j->payload_len, "iat", &out->iat) != 0)
        return -EINVAL;
    return check_aud_exp(j, OP_AGENT_CRED_AUD, now_s, &out->exp);
}

int op_connect_read(const struct op_jws *j, int64_t now_s, struct op_connect_claims *out)
{
    memset(out, 0, sizeof(*out));
    int64_t port = 0;
    if (read_id(j, "user_id", out->user_id) || read_id(j, "agent_id", out->agent_id) ||
        read_id(j, "workspace_id", out->workspace_id) ||
        op_json_flat_int(j->payload, j->payload_len, "port", &port) != 0 || port < 1 || port > 65535 ||
        op_json_flat_str(j->payload, j->payload_len, "region", out->region, sizeof(out->region)) != 0 ||
        !region_ok(out->region))
        return -EINVAL;
    out->port = (uint16_t)port;
    return check_aud_exp(j, OP_CONNECT_AUD, now_s, &out->exp);
}
