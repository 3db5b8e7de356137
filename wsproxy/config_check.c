/*
 * wsproxy/config_check.c — typed reads of loaded values and their validation: each value against its
 * type, then the combinations and what this build supports.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "core/engine.h"
#include "util/duration.h"
#include "util/host.h"
#include "util/url.h"
#include "wsproxy/config_int.h"

/* ---- typed reads -------------------------------------------------------------------------------------- */

int op_ws_parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True", "yes"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False", "no", ""};
    for (size_t i = 0; i < OP_ARRAY_LEN(t); i++)
        if (strcmp(s, t[i]) == 0) return *out = true, 0;
    for (size_t i = 0; i < OP_ARRAY_LEN(f); i++)
        if (strcmp(s, f[i]) == 0) return *out = false, 0;
    return -EINVAL;
}

int op_ws_parse_int(const char *s, long *out)
{
    if (!*s) return -EINVAL;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return -EINVAL;
    *out = v;
    return 0;
}

const char *op_ws_str(const struct op_ws_conf *c, enum op_ws_opt_id id)
{
    return c->val[id] ? c->val[id] : "";
}

bool op_ws_bool(const struct op_ws_conf *c, enum op_ws_opt_id id)
{
    bool b = false;
    return c->val[id] && op_ws_parse_bool(c->val[id], &b) == 0 && b;
}

long op_ws_int(const struct op_ws_conf *c, enum op_ws_opt_id id)
{
    long v = 0;
    if (c->val[id]) op_ws_parse_int(c->val[id], &v);
    return v;
}

long long op_ws_duration_ms(const struct op_ws_conf *c, enum op_ws_opt_id id)
{
    uint64_t v;
    return c->val[id] && op_parse_duration_ms(c->val[id], &v) == 0 ? (long long)v : -1;
}

int op_ws_list(const struct op_ws_conf *c, enum op_ws_opt_id id, char *buf, size_t buflen, const char **out,
               int max)
{
    snprintf(buf, buflen, "%s", op_ws_str(c, id));
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t))
            t++;
        size_t l = strlen(t);
        while (l && isspace((unsigned char)t[l - 1]))
            t[--l] = '\0';
        if (*t) out[n++] = t;
    }
    return n;
}

/* ---- validation --------------------------------------------------------------------------------------- */

static const char *src_name(enum op_ws_src s)
{
    switch (s) {
    case OP_WS_FLAG:
        return "flag";
    case OP_WS_ENV:
        return "environment";
    case OP_WS_ENVFILE:
        return "env-file";
    case OP_WS_YAML:
        return "config file";
    default:
        return "default";
    }
}

/* Names the option for error messages: "--tls-address (CODER_TLS_ADDRESS, from the environment)". */
static void optname(const struct op_ws_conf *c, int id, char *buf, size_t len)
{
    const struct op_ws_opt *o = &op_ws_opts[id];
    snprintf(buf, len, "--%s%s%s, from the %s", o->flag, o->env ? " / " : "", o->env ? o->env : "",
             src_name(c->src[id]));
}

static int check_value(const struct op_ws_conf *c, int id, char *err, size_t errlen)
{
    const struct op_ws_opt *o = &op_ws_opts[id];
    const char *v = c->val[id];
    char on[160];
    optname(c, id, on, sizeof(on));
    if (!v) return 0;
    switch (o->type) {
    case OP_WT_URL:
        if (*v && !op_url_http_host(v).p) {
            op_ws_seterr(err, errlen, "%s (%s): \"%s\" is not an http:// or https:// URL with a host",
                         o->flag, on, v);
            return EX_CONFIG;
        }
        break;
    case OP_WT_HOSTPORT:
        if (*v) {
            struct sockaddr_storage ss;
            socklen_t sl;
            char e2[256];
            const char *colon = strrchr(v, ':');
            if (!colon || !colon[1] || op_parse_hostport(v, &ss, &sl, e2, sizeof(e2)) != 0) {
                op_ws_seterr(err, errlen, "%s (%s): \"%s\" is not a valid host:port address", o->flag, on, v);
                return EX_CONFIG;
            }
        }
        break;
    case OP_WT_BOOL: {
        bool b;
        if (op_ws_parse_bool(v, &b) != 0) {
            op_ws_seterr(err, errlen, "%s (%s): \"%s\" is not a boolean (true or false)", o->flag, on, v);
            return EX_CONFIG;
        }
        break;
    }
    case OP_WT_INT: {
        long l;
        if (op_ws_parse_int(v, &l) != 0 || l < -1000000000L || l > 1000000000L) {
            op_ws_seterr(err, errlen, "%s (%s): \"%s\" is not an integer", o->flag, on, v);
            return EX_CONFIG;
        }
        break;
    }
    case OP_WT_DURATION: {
        uint64_t ms;
        if (op_parse_duration_ms(v, &ms) != 0) {
            op_ws_seterr(err, errlen, "%s (%s): \"%s\" is not a duration (e.g. 500ms, 10s, 1m)", o->flag, on,
                         v);
            return EX_CONFIG;
        }
        break;
    }
    case OP_WT_ENUM: {
        size_t vl = strlen(v);
        const char *ch = o->choices;
        bool found = false;
        while (*ch) {
            size_t l = strcspn(ch, "|");
            if (l == vl && strncmp(ch, v, l) == 0) found = true;
            ch += l + (ch[l] == '|');
        }
        if (!found) {
            op_ws_seterr(err, errlen, "%s (%s): \"%s\" is not one of %s", o->flag, on, v, o->choices);
            return EX_CONFIG;
        }
        break;
    }
    case OP_WT_FILE:
    case OP_WT_FILES: {
        char buf[4096];
        const char *items[16];
        int n = op_ws_list(c, id, buf, sizeof(buf), items, 16);
        for (int i = 0; i < n; i++)
            if (access(items[i], R_OK) != 0) {
                op_ws_seterr(err, errlen, "%s (%s): cannot read \"%s\": %s", o->flag, on, items[i],
                             strerror(errno));
                return EX_CONFIG;
            }
        break;
    }
    case OP_WT_WILDCARD:
        if (*v) {
            char pat[256];
            snprintf(pat, sizeof(pat), "%s", v);
            char *colon = strchr(pat, ':');
            bool bad = strlen(v) >= sizeof(pat) || strstr(v, "http:") || strstr(v, "https:");
            if (colon && !bad) {
                char *e;
                long port = strtol(colon + 1, &e, 10);
                bad = *e || port < 1 || port > 65535;
                *colon = '\0';
            }
            if (bad || !op_wildcard_valid(pat)) {
                op_ws_seterr(
                    err, errlen,
                    "%s (%s): \"%s\" is not a valid wildcard hostname: it needs exactly one '*' at the "
                    "start, "
                    "at least two DNS labels, no scheme, e.g. \"*.eu.example.com\"",
                    o->flag, on, v);
                return EX_CONFIG;
            }
        }
        break;
    default:
        break;
    }
    return 0;
}

int op_ws_conf_validate(const struct op_ws_conf *c, char *err, size_t errlen)
{
    char missing[256] = "";
    for (int i = 0; i < OP_WO_COUNT; i++)
        if ((op_ws_opts[i].flags & OP_WF_REQUIRED) && (!c->val[i] || !*c->val[i]))
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
                     *missing ? ", " : "", op_ws_opts[i].flag);
    if (*missing) {
        op_ws_seterr(err, errlen, "Missing values for the required flags: %s", missing);
        return EX_CONFIG;
    }
    for (int i = 0; i < OP_WO_COUNT; i++) {
        int rc = check_value(c, i, err, errlen);
        if (rc) return rc;
    }
    /* Combinations and what this build supports. */
    const char *tok = op_ws_str(c, OP_WO_PROXY_SESSION_TOKEN);
    const char *colon = strchr(tok, ':');
    if (!colon || strlen(colon + 1) != 64 || colon - tok != 36) {
        op_ws_seterr(
            err, errlen,
            "proxy-session-token: expected \"<proxy-id>:<64-character secret>\" as printed by `outpost "
            "wsproxy "
            "create` (check --proxy-session-token / CODER_PROXY_SESSION_TOKEN)");
        return EX_CONFIG;
    }
    const char *au = op_ws_str(c, OP_WO_ACCESS_URL);
    if (*au) {
        const char *path = strchr(strstr(au, "://") + 3, '/');
        if (path && strcmp(path, "/") != 0) {
            op_ws_seterr(err, errlen,
                         "access-url: \"%s\" has a path; the primary accepts only scheme://host[:port]", au);
            return EX_CONFIG;
        }
    }
    bool tls = op_ws_bool(c, OP_WO_TLS_ENABLE);
    bool http = *op_ws_str(c, OP_WO_HTTP_ADDRESS);
    if (tls) {
        char b1[4096], b2[4096];
        const char *certs[16], *keys[16];
        int nc = op_ws_list(c, OP_WO_TLS_CERT_FILE, b1, sizeof(b1), certs, 16);
        int nk = op_ws_list(c, OP_WO_TLS_KEY_FILE, b2, sizeof(b2), keys, 16);
        if (!*op_ws_str(c, OP_WO_TLS_ADDRESS)) {
            op_ws_seterr(err, errlen, "tls-address: TLS is enabled (--tls-enable) but no TLS address is set");
            return EX_CONFIG;
        }
        if (nc == 0 || nc != nk || nc > 8) {
            op_ws_seterr(
                err, errlen,
                "tls-cert-file / tls-key-file: TLS is enabled, so give 1 to 8 certificate files and as "
                "many key "
                "files (got %d certificates and %d keys)",
                nc, nk);
            return EX_CONFIG;
        }
    } else if (!http) {
        op_ws_seterr(err, errlen,
                     "http-address: HTTP is disabled and TLS is not enabled, so the proxy would not listen");
        return EX_CONFIG;
    }
    if (strcmp(op_ws_str(c, OP_WO_TLS_CLIENT_AUTH), "none") != 0) {
        op_ws_seterr(err, errlen, "tls-client-auth: \"%s\" is not supported by this build (only \"none\")",
                     op_ws_str(c, OP_WO_TLS_CLIENT_AUTH));
        return EX_CONFIG;
    }
    const char *mv = op_ws_str(c, OP_WO_TLS_MIN_VERSION);
    if (strcmp(mv, "tls12") != 0 && strcmp(mv, "tls13") != 0) {
        op_ws_seterr(
            err, errlen,
            "tls-min-version: \"%s\" is not allowed: outpost serves TLS 1.2 and newer only (tls12, tls13)",
            mv);
        return EX_CONFIG;
    }
    if (*op_ws_str(c, OP_WO_TLS_CIPHERS) || op_ws_bool(c, OP_WO_TLS_ALLOW_INSECURE_CIPHERS)) {
        op_ws_seterr(err, errlen,
                     "tls-ciphers / tls-allow-insecure-ciphers: not supported by this build (the cipher "
                     "policy is fixed); unset them");
        return EX_CONFIG;
    }
    if (!!*op_ws_str(c, OP_WO_TLS_CLIENT_CERT_FILE) != !!*op_ws_str(c, OP_WO_TLS_CLIENT_KEY_FILE)) {
        op_ws_seterr(err, errlen, "tls-client-cert-file / tls-client-key-file: give both or neither");
        return EX_CONFIG;
    }
    if (op_ws_bool(c, OP_WO_DERP_ONLY) && !op_ws_bool(c, OP_WO_DERP_ENABLE)) {
        op_ws_seterr(
            err, errlen,
            "derp-only: cannot be true when the DERP server is disabled (--derp-server-enable=false)");
        return EX_CONFIG;
    }
    if (op_ws_int(c, OP_WO_HSTS) < 0) {
        op_ws_seterr(err, errlen,
                     "strict-transport-security: must be 0 (off) or a positive number of seconds");
        return EX_CONFIG;
    }
    {
        char b[1024];
        const char *it[16];
        int n = op_ws_list(c, OP_WO_HSTS_OPTIONS, b, sizeof(b), it, 16);
        for (int i = 0; i < n; i++)
            if (strcasecmp(it[i], "includeSubDomains") != 0 && strcasecmp(it[i], "preload") != 0) {
                op_ws_seterr(err, errlen,
                             "strict-transport-security-options: \"%s\" is not includeSubDomains or preload",
                             it[i]);
                return EX_CONFIG;
            }
    }
    const char *lh = op_ws_str(c, OP_WO_LOG_HUMAN), *lj = op_ws_str(c, OP_WO_LOG_JSON);
    if ((*lh && strcmp(lh, "/dev/stderr") != 0) || (*lj && strcmp(lj, "/dev/stderr") != 0)) {
        op_ws_seterr(err, errlen, "log-human / log-json: only /dev/stderr is supported (got \"%s\")",
                     *lj && strcmp(lj, "/dev/stderr") ? lj : lh);
        return EX_CONFIG;
    }
    long long hb = op_ws_duration_ms(c, OP_WO_HEARTBEAT_INTERVAL);
    if (hb < 100 || hb > 3600000) {
        op_ws_seterr(err, errlen, "heartbeat-interval: must be between 100ms and 1h");
        return EX_CONFIG;
    }
    long w = op_ws_int(c, OP_WO_WORKERS);
    if (w < 0 || w > 256) {
        op_ws_seterr(err, errlen, "workers: must be between 0 (one per CPU) and 256");
        return EX_CONFIG;
    }
    return 0;
}
