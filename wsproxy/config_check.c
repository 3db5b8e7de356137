/*
 * wsproxy/config_check.c — validation of the proxy's configuration: every value against its type
 * (util/options.h), then the combinations and what this build supports.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "region/region.h"
#include "wsproxy/config.h"

int op_ws_conf_validate(const struct op_conf *c, char *err, size_t errlen)
{
    int rc = op_conf_check(c, err, errlen);
    if (rc) return rc;
    /* Combinations and what this build supports. */
    const char *tok = op_ws_str(c, OP_WO_PROXY_SESSION_TOKEN);
    const char *colon = strchr(tok, ':');
    if (!colon || strlen(colon + 1) != 64 || colon - tok != 36) {
        snprintf(err, errlen,
                 "proxy-session-token: expected \"<proxy-id>:<64-character secret>\" as printed by `outpost "
                 "wsproxy "
                 "create` (check --proxy-session-token / CODER_PROXY_SESSION_TOKEN)");
        return EX_CONFIG;
    }
    const char *au = op_ws_str(c, OP_WO_ACCESS_URL);
    if (*au) {
        const char *path = strchr(strstr(au, "://") + 3, '/');
        if (path && strcmp(path, "/") != 0) {
            snprintf(err, errlen,
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
            snprintf(err, errlen, "tls-address: TLS is enabled (--tls-enable) but no TLS address is set");
            return EX_CONFIG;
        }
        if (nc == 0 || nc != nk || nc > 8) {
            snprintf(err, errlen,
                     "tls-cert-file / tls-key-file: TLS is enabled, so give 1 to 8 certificate files and as "
                     "many key "
                     "files (got %d certificates and %d keys)",
                     nc, nk);
            return EX_CONFIG;
        }
    } else if (!http) {
        snprintf(err, errlen,
                 "http-address: HTTP is disabled and TLS is not enabled, so the proxy would not listen");
        return EX_CONFIG;
    }
    if (strcmp(op_ws_str(c, OP_WO_TLS_CLIENT_AUTH), "none") != 0) {
        snprintf(err, errlen, "tls-client-auth: \"%s\" is not supported by this build (only \"none\")",
                 op_ws_str(c, OP_WO_TLS_CLIENT_AUTH));
        return EX_CONFIG;
    }
    const char *mv = op_ws_str(c, OP_WO_TLS_MIN_VERSION);
    if (strcmp(mv, "tls12") != 0 && strcmp(mv, "tls13") != 0) {
        snprintf(
            err, errlen,
            "tls-min-version: \"%s\" is not allowed: outpost serves TLS 1.2 and newer only (tls12, tls13)",
            mv);
        return EX_CONFIG;
    }
    if (*op_ws_str(c, OP_WO_TLS_CIPHERS) || op_ws_bool(c, OP_WO_TLS_ALLOW_INSECURE_CIPHERS)) {
        snprintf(err, errlen,
                 "tls-ciphers / tls-allow-insecure-ciphers: not supported by this build (the cipher "
                 "policy is fixed); unset them");
        return EX_CONFIG;
    }
    if (!!*op_ws_str(c, OP_WO_TLS_CLIENT_CERT_FILE) != !!*op_ws_str(c, OP_WO_TLS_CLIENT_KEY_FILE)) {
        snprintf(err, errlen, "tls-client-cert-file / tls-client-key-file: give both or neither");
        return EX_CONFIG;
    }
    if (op_ws_bool(c, OP_WO_DERP_ONLY) && !op_ws_bool(c, OP_WO_DERP_ENABLE)) {
        snprintf(err, errlen,
                 "derp-only: cannot be true when the DERP server is disabled (--derp-server-enable=false)");
        return EX_CONFIG;
    }
    if (op_ws_int(c, OP_WO_HSTS) < 0) {
        snprintf(err, errlen, "strict-transport-security: must be 0 (off) or a positive number of seconds");
        return EX_CONFIG;
    }
    {
        char b[1024];
        const char *it[16];
        int n = op_ws_list(c, OP_WO_HSTS_OPTIONS, b, sizeof(b), it, 16);
        for (int i = 0; i < n; i++)
            if (strcasecmp(it[i], "includeSubDomains") != 0 && strcasecmp(it[i], "preload") != 0) {
                snprintf(err, errlen,
                         "strict-transport-security-options: \"%s\" is not includeSubDomains or preload",
                         it[i]);
                return EX_CONFIG;
            }
    }
    const char *lh = op_ws_str(c, OP_WO_LOG_HUMAN), *lj = op_ws_str(c, OP_WO_LOG_JSON);
    if ((*lh && strcmp(lh, "/dev/stderr") != 0) || (*lj && strcmp(lj, "/dev/stderr") != 0)) {
        snprintf(err, errlen, "log-human / log-json: only /dev/stderr is supported (got \"%s\")",
                 *lj && strcmp(lj, "/dev/stderr") ? lj : lh);
        return EX_CONFIG;
    }
    long long hb = op_ws_duration_ms(c, OP_WO_HEARTBEAT_INTERVAL);
    if (hb < 100 || hb > 3600000) {
        snprintf(err, errlen, "heartbeat-interval: must be between 100ms and 1h");
        return EX_CONFIG;
    }
    struct op_region_limits lim = {0};
    char lerr[256];
    if (op_region_limits_parse(op_ws_str(c, OP_WO_AGENT_STREAM_LIMITS), &lim, lerr, sizeof(lerr)) != 0) {
        snprintf(err, errlen, "agent-stream-limits: %s", lerr);
        return EX_CONFIG;
    }
    long w = op_ws_int(c, OP_WO_WORKERS);
    if (w < 0 || w > 256) {
        snprintf(err, errlen, "workers: must be between 0 (one per CPU) and 256");
        return EX_CONFIG;
    }
    return 0;
}
