/*
 * wsproxy/config.c — the option table and everything it drives (see config.h). The only file that
 * includes <yaml.h>.
 */
#include "wsproxy/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>
#include <yaml.h>

#include "core/engine.h"
#include "util/duration.h"
#include "util/host.h"
#include "util/url.h"

#define S OP_WT_STRING
const struct op_ws_opt op_ws_opts[OP_WO_COUNT] = {
    [OP_WO_PROXY_SESSION_TOKEN] =
        {"proxy-session-token", "CODER_PROXY_SESSION_TOKEN", "externalWorkspaceProxy.proxySessionToken", NULL,
         S, NULL, OP_WF_REQUIRED | OP_WF_SECRET,
         "Authentication token for the primary, as printed by `outpost wsproxy create`."},
    [OP_WO_PRIMARY_ACCESS_URL] = {"primary-access-url", "CODER_PRIMARY_ACCESS_URL",
                                  "externalWorkspaceProxy.primaryAccessURL", NULL, OP_WT_URL, NULL,
                                  OP_WF_REQUIRED,
                                  "URL of the primary (http or https); must match its access URL."},
    [OP_WO_DERP_ONLY] = {"derp-only", "CODER_PROXY_DERP_ONLY", "externalWorkspaceProxy.derpOnly", "false",
                         OP_WT_BOOL, NULL, 0, "Serve only DERP: no app or terminal proxying."},
    [OP_WO_ACCESS_URL] = {"access-url", "CODER_ACCESS_URL", "networking.accessURL", NULL, OP_WT_URL, NULL, 0,
                          "Public URL of this proxy (default: the TLS listener's URL, else the HTTP one)."},
    [OP_WO_WILDCARD_ACCESS_URL] = {"wildcard-access-url", "CODER_WILDCARD_ACCESS_URL",
                                   "networking.wildcardAccessURL", NULL, OP_WT_WILDCARD, NULL, 0,
                                   "Wildcard host pattern for subdomain apps, e.g. \"*.eu.example.com\"."},
    [OP_WO_DOCS_URL] = {"docs-url", "CODER_DOCS_URL", "networking.docsURL", "https://coder.com/docs",
                        OP_WT_URL, NULL, 0, "Documentation URL."},
    [OP_WO_HTTP_ADDRESS] = {"http-address", "CODER_HTTP_ADDRESS", "networking.http.httpAddress",
                            "127.0.0.1:3000", OP_WT_HOSTPORT, NULL, 0,
                            "HTTP bind address. Set it to \"\" to disable HTTP."},
    [OP_WO_TLS_ADDRESS] = {"tls-address", "CODER_TLS_ADDRESS", "networking.tls.address", "127.0.0.1:3443",
                           OP_WT_HOSTPORT, NULL, 0, "HTTPS bind address (used when TLS is enabled)."},
    [OP_WO_TLS_ENABLE] = {"tls-enable", "CODER_TLS_ENABLE", "networking.tls.enable", "false", OP_WT_BOOL,
                          NULL, 0, "Serve HTTPS on the TLS address."},
    [OP_WO_TLS_CERT_FILE] = {"tls-cert-file", "CODER_TLS_CERT_FILE", "networking.tls.certFiles", NULL,
                             OP_WT_FILES, NULL, 0,
                             "PEM certificate files (chain leaf first), one per key file."},
    [OP_WO_TLS_KEY_FILE] = {"tls-key-file", "CODER_TLS_KEY_FILE", "networking.tls.keyFiles", NULL,
                            OP_WT_FILES, NULL, 0, "PEM private key files, one per certificate file."},
    [OP_WO_TLS_CLIENT_AUTH] = {"tls-client-auth", "CODER_TLS_CLIENT_AUTH", "networking.tls.clientAuth",
                               "none", OP_WT_ENUM,
                               "none|request|require-any|verify-if-given|require-and-verify", 0,
                               "Client certificate policy; this build supports \"none\" only."},
    [OP_WO_TLS_CLIENT_CA_FILE] = {"tls-client-ca-file", "CODER_TLS_CLIENT_CA_FILE",
                                  "networking.tls.clientCAFile", NULL, OP_WT_FILE, NULL, 0,
                                  "CA bundle; also the root CA for the proxy's requests to the primary."},
    [OP_WO_TLS_CLIENT_CERT_FILE] = {"tls-client-cert-file", "CODER_TLS_CLIENT_CERT_FILE",
                                    "networking.tls.clientCertFile", NULL, OP_WT_FILE, NULL, 0,
                                    "Client certificate presented to the primary (mTLS)."},
    [OP_WO_TLS_CLIENT_KEY_FILE] = {"tls-client-key-file", "CODER_TLS_CLIENT_KEY_FILE",
                                   "networking.tls.clientKeyFile", NULL, OP_WT_FILE, NULL, 0,
                                   "Key of the client certificate."},
    [OP_WO_TLS_MIN_VERSION] = {"tls-min-version", "CODER_TLS_MIN_VERSION", "networking.tls.minVersion",
                               "tls12", OP_WT_ENUM, "tls10|tls11|tls12|tls13", 0,
                               "Minimum TLS version; this build serves tls12 or tls13."},
    [OP_WO_TLS_CIPHERS] = {"tls-ciphers", "CODER_TLS_CIPHERS", "networking.tls.tlsCiphers", NULL,
                           OP_WT_STRINGS, NULL, 0,
                           "Explicit cipher list; not supported by this build (the cipher policy is fixed)."},
    [OP_WO_TLS_ALLOW_INSECURE_CIPHERS] = {"tls-allow-insecure-ciphers", "CODER_TLS_ALLOW_INSECURE_CIPHERS",
                                          "networking.tls.tlsAllowInsecureCiphers", "false", OP_WT_BOOL, NULL,
                                          0, "Allow insecure ciphers; not supported by this build."},
    [OP_WO_TLS_REDIRECT] = {"tls-redirect-http-to-https", "CODER_TLS_REDIRECT_HTTP_TO_HTTPS",
                            "networking.tls.redirectHTTP", "true", OP_WT_BOOL, NULL, OP_WF_HIDDEN,
                            "With TLS on, answer plain HTTP with a redirect to HTTPS."},
    [OP_WO_HSTS] = {"strict-transport-security", "CODER_STRICT_TRANSPORT_SECURITY",
                    "networking.tls.strictTransportSecurity", "0", OP_WT_INT, NULL, 0,
                    "HSTS max-age in seconds; 0 disables the header."},
    [OP_WO_HSTS_OPTIONS] = {"strict-transport-security-options", "CODER_STRICT_TRANSPORT_SECURITY_OPTIONS",
                            "networking.tls.strictTransportSecurityOptions", NULL, OP_WT_STRINGS, NULL, 0,
                            "HSTS options: includeSubDomains, preload."},
    [OP_WO_TRUSTED_HEADERS] = {"proxy-trusted-headers", "CODER_PROXY_TRUSTED_HEADERS",
                               "networking.proxyTrustedHeaders", NULL, OP_WT_STRINGS, NULL, 0,
                               "Headers trusted for the client IP (e.g. X-Forwarded-For)."},
    [OP_WO_TRUSTED_ORIGINS] = {"proxy-trusted-origins", "CODER_PROXY_TRUSTED_ORIGINS",
                               "networking.proxyTrustedOrigins", NULL, OP_WT_STRINGS, NULL, 0,
                               "Source CIDRs whose trusted headers are honoured."},
    [OP_WO_SECURE_AUTH_COOKIE] = {"secure-auth-cookie", "CODER_SECURE_AUTH_COOKIE",
                                  "networking.secureAuthCookie", "false", OP_WT_BOOL, NULL, 0,
                                  "Set the Secure attribute on cookies."},
    [OP_WO_SAMESITE_AUTH_COOKIE] = {"samesite-auth-cookie", "CODER_SAMESITE_AUTH_COOKIE",
                                    "networking.sameSiteAuthCookie", "lax", OP_WT_ENUM, "lax|none", 0,
                                    "SameSite attribute of session cookies."},
    [OP_WO_HOST_PREFIX_COOKIE] = {"host-prefix-cookie", "CODER_HOST_PREFIX_COOKIE",
                                  "networking.hostPrefixCookie", "false", OP_WT_BOOL, NULL, 0,
                                  "Use the __Host- cookie name prefix."},
    [OP_WO_BLOCK_DIRECT] = {"block-direct-connections", "CODER_BLOCK_DIRECT", "networking.derp.blockDirect",
                            "false", OP_WT_BOOL, NULL, 0, "Never negotiate direct (P2P) paths to agents."},
    [OP_WO_DERP_ENABLE] = {"derp-server-enable", "CODER_DERP_SERVER_ENABLE", "networking.derp.enable", "true",
                           OP_WT_BOOL, NULL, 0, "Run the embedded DERP relay."},
    [OP_WO_DERP_RELAY_URL] = {"derp-server-relay-url", "CODER_DERP_SERVER_RELAY_URL",
                              "networking.derp.relayURL", NULL, OP_WT_URL, NULL, 0,
                              "URL sibling replicas of this proxy use to mesh DERP."},
    [OP_WO_DISABLE_PATH_APPS] = {"disable-path-apps", "CODER_DISABLE_PATH_APPS", "disablePathApps", "false",
                                 OP_WT_BOOL, NULL, 0, "Reject path-based apps."},
    [OP_WO_DISABLE_OWNER_WORKSPACE_ACCESS] = {"disable-owner-workspace-access",
                                              "CODER_DISABLE_OWNER_WORKSPACE_ACCESS",
                                              "disableOwnerWorkspaceAccess", "false", OP_WT_BOOL, NULL, 0,
                                              "Same as the primary's flag (authorization happens there)."},
    [OP_WO_EXPERIMENTS] = {"experiments", "CODER_EXPERIMENTS", "experiments", NULL, OP_WT_STRINGS, NULL, 0,
                           "Experiments to enable (comma separated, or *)."},
    [OP_WO_DANGEROUS_CORS] = {"dangerous-allow-cors-requests", "CODER_DANGEROUS_ALLOW_CORS_REQUESTS", NULL,
                              "false", OP_WT_BOOL, NULL, OP_WF_HIDDEN,
                              "Allow any CORS origin (development only)."},
    [OP_WO_API_RATE_LIMIT] = {"api-rate-limit", "CODER_API_RATE_LIMIT", NULL, "512", OP_WT_INT, NULL,
                              OP_WF_HIDDEN, "App requests per minute per user or IP; negative = unlimited."},
    [OP_WO_LOG_HUMAN] = {"log-human", "CODER_LOGGING_HUMAN", "introspection.logging.humanPath", "/dev/stderr",
                         S, NULL, 0, "Human-readable log destination (only /dev/stderr is supported)."},
    [OP_WO_LOG_JSON] = {"log-json", "CODER_LOGGING_JSON", "introspection.logging.jsonPath", NULL, S, NULL, 0,
                        "JSON log destination (/dev/stderr: log JSON lines on stderr)."},
    [OP_WO_LOG_LEVEL] = {"log-level", "CODER_LOG_LEVEL", "introspection.logging.level", "info", OP_WT_ENUM,
                         "debug|info|warn|error", 0, "Log level (applied again on SIGHUP)."},
    [OP_WO_VERBOSE] = {"verbose", "CODER_VERBOSE", "introspection.logging.verbose", "false", OP_WT_BOOL, NULL,
                       OP_WF_HIDDEN, "Debug logs (same as --log-level debug)."},
    [OP_WO_PROMETHEUS_ENABLE] = {"prometheus-enable", "CODER_PROMETHEUS_ENABLE",
                                 "introspection.prometheus.enable", "false", OP_WT_BOOL, NULL, 0,
                                 "Serve Prometheus metrics on the metrics address."},
    [OP_WO_PROMETHEUS_ADDRESS] = {"prometheus-address", "CODER_PROMETHEUS_ADDRESS",
                                  "introspection.prometheus.address", "127.0.0.1:2112", OP_WT_HOSTPORT, NULL,
                                  0, "Prometheus metrics bind address."},
    [OP_WO_WORKERS] = {"workers", "CODER_WORKERS", "outpost.workers", "0", OP_WT_INT, NULL, 0,
                       "Data-plane worker threads (0 = one per CPU)."},
    [OP_WO_DRAIN_TIMEOUT] = {"drain-timeout", "CODER_DRAIN_TIMEOUT", "outpost.drainTimeout", "10s",
                             OP_WT_DURATION, NULL, 0,
                             "On SIGTERM, how long in-flight requests may take before being closed."},
    [OP_WO_HEARTBEAT_INTERVAL] =
        {"heartbeat-interval", "CODER_PROXY_HEARTBEAT_INTERVAL", NULL, "5s", OP_WT_DURATION, NULL,
         OP_WF_HIDDEN, "Registration heartbeat interval (tests; the reference's fixed value is 5s)."},
    [OP_WO_CONFIG] = {"config", "CODER_CONFIG_PATH", NULL, NULL, OP_WT_FILE, NULL, 0,
                      "YAML config file (dotted keys as listed here). Re-read on SIGHUP."},
    [OP_WO_ENV_FILE] =
        {"env-file", "CODER_ENV_FILE", NULL, NULL, OP_WT_FILE, NULL, 0,
         "KEY=VALUE file (a systemd EnvironmentFile); overrides the environment, re-read on SIGHUP."},
    [OP_WO_WRITE_CONFIG] = {"write-config", NULL, NULL, NULL, OP_WT_BOOL, NULL, OP_WF_ACTION,
                            "Write the effective configuration as YAML to stdout, then exit."},
    [OP_WO_CHECK] = {"check", NULL, NULL, NULL, OP_WT_BOOL, NULL, OP_WF_ACTION,
                     "Validate the configuration without binding or connecting; exit 78 on error."},
    [OP_WO_HELP] = {"help", NULL, NULL, NULL, OP_WT_BOOL, NULL, OP_WF_ACTION, "Show this help."},
    [OP_WO_DOCS_MARKDOWN] = {"docs-markdown", NULL, NULL, NULL, OP_WT_BOOL, NULL, OP_WF_ACTION | OP_WF_HIDDEN,
                             "Print the option reference as Markdown (docs/wsproxy-server.md)."},
};
#undef S

static const char *type_name(enum op_ws_type t)
{
    switch (t) {
    case OP_WT_URL:
        return "url";
    case OP_WT_HOSTPORT:
        return "host:port";
    case OP_WT_BOOL:
        return "bool";
    case OP_WT_INT:
        return "int";
    case OP_WT_DURATION:
        return "duration";
    case OP_WT_STRINGS:
    case OP_WT_FILES:
        return "string-array";
    case OP_WT_ENUM:
        return NULL;
    default:
        return "string";
    }
}

static bool is_array(enum op_ws_type t)
{
    return t == OP_WT_STRINGS || t == OP_WT_FILES;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) OP_PRINTF(3, 4);
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Sets (or, for arrays from repeated flags, appends) a value. */
static int set_val(struct op_ws_conf *c, int id, const char *v, enum op_ws_src src, bool append)
{
    char *nv;
    if (append && c->val[id] && c->src[id] == src && *c->val[id]) {
        size_t a = strlen(c->val[id]), b = strlen(v);
        nv = malloc(a + b + 2);
        if (!nv) return -ENOMEM;
        memcpy(nv, c->val[id], a);
        nv[a] = ',';
        memcpy(nv + a + 1, v, b + 1);
    } else {
        nv = strdup(v);
        if (!nv) return -ENOMEM;
    }
    free(c->val[id]);
    c->val[id] = nv;
    c->src[id] = src;
    return 0;
}

static int find_flag(const char *name, size_t len)
{
    for (int i = 0; i < OP_WO_COUNT; i++)
        if (strlen(op_ws_opts[i].flag) == len && memcmp(op_ws_opts[i].flag, name, len) == 0) return i;
    if (len == 1 && name[0] == 'v') return OP_WO_VERBOSE;
    return -1;
}

static int find_env(const char *name)
{
    for (int i = 0; i < OP_WO_COUNT; i++)
        if (op_ws_opts[i].env && strcmp(op_ws_opts[i].env, name) == 0) return i;
    return -1;
}

static int find_yaml(const char *key)
{
    for (int i = 0; i < OP_WO_COUNT; i++)
        if (op_ws_opts[i].yaml && strcmp(op_ws_opts[i].yaml, key) == 0) return i;
    return -1;
}

static int parse_flags(struct op_ws_conf *c, int argc, char **argv, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0) a = "--help";
        if (a[0] != '-') {
            seterr(err, errlen, "unexpected argument \"%s\" (the server takes no positional arguments)", a);
            return EX_USAGE;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        int id = find_flag(name, nl);
        if (id < 0) {
            seterr(err, errlen, "unknown flag \"%s\" (see --help)", a);
            return EX_USAGE;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (op_ws_opts[id].type == OP_WT_BOOL) {
            v = "true";
        } else if (id == OP_WO_LOG_JSON && (i + 1 >= argc || argv[i + 1][0] == '-')) {
            v = "/dev/stderr"; /* a bare --log-json: JSON lines on stderr */
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            seterr(err, errlen, "flag --%s needs a value", op_ws_opts[id].flag);
            return EX_USAGE;
        }
        if (set_val(c, id, v, OP_WS_FLAG, is_array(op_ws_opts[id].type)) != 0) {
            seterr(err, errlen, "out of memory");
            return EX_OSERR;
        }
    }
    return 0;
}

/* ---- env-file ---------------------------------------------------------------------------------------- */

static int load_env_file(struct op_ws_conf *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        seterr(err, errlen, "--env-file: cannot read \"%s\": %s", path, strerror(errno));
        return EX_CONFIG;
    }
    char line[8192];
    int ln = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        ln++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        size_t n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1]))
            s[--n] = '\0';
        if (!*s || *s == '#' || *s == ';') continue;
        if (strncmp(s, "export ", 7) == 0) s += 7;
        char *eq = strchr(s, '=');
        if (!eq) {
            seterr(err, errlen, "--env-file %s:%d: expected KEY=VALUE", path, ln);
            rc = EX_CONFIG;
            break;
        }
        *eq = '\0';
        char *k = s, *v = eq + 1;
        size_t kl = strlen(k);
        while (kl && isspace((unsigned char)k[kl - 1]))
            k[--kl] = '\0';
        while (isspace((unsigned char)*v))
            v++;
        size_t vl = strlen(v);
        if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
            v[vl - 1] = '\0';
            v++;
        }
        int id = find_env(k);
        if (id < 0 || id == OP_WO_ENV_FILE)
            continue; /* other variables in a shared EnvironmentFile are not ours */
        if (c->src[id] == OP_WS_FLAG) continue;
        if (set_val(c, id, v, OP_WS_ENVFILE, false) != 0) {
            rc = EX_OSERR;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* ---- YAML --------------------------------------------------------------------------------------------- */

struct yctx {
    yaml_parser_t p;
    struct op_ws_conf *c;
    const char *path;
    char *err;
    size_t errlen;
};

static int ynext(struct yctx *y, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&y->p, ev)) {
        seterr(y->err, y->errlen, "config file %s: YAML error at line %zu: %s", y->path,
               y->p.problem_mark.line + 1, y->p.problem ? y->p.problem : "parse error");
        return EX_CONFIG;
    }
    return 0;
}

static int yset(struct yctx *y, const char *key, const char *v, size_t line)
{
    int id = find_yaml(key);
    if (id < 0) {
        seterr(y->err, y->errlen, "config file %s:%zu: unknown key \"%s\"", y->path, line + 1, key);
        return EX_CONFIG;
    }
    if (y->c->src[id] >= OP_WS_ENV) return 0; /* flag and environment win */
    return set_val(y->c, id, v, OP_WS_YAML, false) ? EX_OSERR : 0;
}

/* Called after MAPPING_START: reads key/value pairs until MAPPING_END. */
static int ymapping(struct yctx *y, const char *prefix, int depth)
{
    if (depth > 8) {
        seterr(y->err, y->errlen, "config file %s: nesting too deep", y->path);
        return EX_CONFIG;
    }
    for (;;) {
        yaml_event_t ev;
        int rc = ynext(y, &ev);
        if (rc) return rc;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            seterr(y->err, y->errlen, "config file %s:%zu: expected a key", y->path, ev.start_mark.line + 1);
            yaml_event_delete(&ev);
            return EX_CONFIG;
        }
        char key[256];
        snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", (const char *)ev.data.scalar.value);
        yaml_event_delete(&ev);
        if ((rc = ynext(y, &ev))) return rc;
        size_t line = ev.start_mark.line;
        if (ev.type == YAML_SCALAR_EVENT) {
            const char *v = (const char *)ev.data.scalar.value;
            bool null =
                ev.data.scalar.plain_implicit && (!*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0);
            rc = null ? (find_yaml(key) < 0 ? yset(y, key, "", line) : 0) : yset(y, key, v, line);
            yaml_event_delete(&ev);
        } else if (ev.type == YAML_MAPPING_START_EVENT) {
            yaml_event_delete(&ev);
            rc = ymapping(y, key, depth + 1);
        } else if (ev.type == YAML_SEQUENCE_START_EVENT) {
            yaml_event_delete(&ev);
            char *joined = calloc(1, 1);
            size_t jl = 0;
            for (;;) {
                if ((rc = ynext(y, &ev))) break;
                if (ev.type == YAML_SEQUENCE_END_EVENT) {
                    yaml_event_delete(&ev);
                    break;
                }
                if (ev.type != YAML_SCALAR_EVENT) {
                    seterr(y->err, y->errlen,
                           "config file %s:%zu: %s: only lists of plain values are supported", y->path,
                           ev.start_mark.line + 1, key);
                    yaml_event_delete(&ev);
                    rc = EX_CONFIG;
                    break;
                }
                size_t vl = strlen((const char *)ev.data.scalar.value);
                char *nj = realloc(joined, jl + vl + 2);
                if (!nj) {
                    yaml_event_delete(&ev);
                    rc = EX_OSERR;
                    break;
                }
                joined = nj;
                if (jl) joined[jl++] = ',';
                memcpy(joined + jl, ev.data.scalar.value, vl + 1);
                jl += vl;
                yaml_event_delete(&ev);
            }
            if (!rc) {
                int id = find_yaml(key);
                if (id >= 0 && !is_array(op_ws_opts[id].type)) {
                    seterr(y->err, y->errlen, "config file %s:%zu: %s takes a single value, not a list",
                           y->path, line + 1, key);
                    rc = EX_CONFIG;
                } else {
                    rc = yset(y, key, joined, line);
                }
            }
            free(joined);
        } else {
            seterr(y->err, y->errlen,
                   "config file %s:%zu: unsupported YAML construct (aliases are not supported)", y->path,
                   line + 1);
            yaml_event_delete(&ev);
            rc = EX_CONFIG;
        }
        if (rc) return rc;
    }
}

static int load_yaml(struct op_ws_conf *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(err, errlen, "--config: cannot read \"%s\": %s", path, strerror(errno));
        return EX_CONFIG;
    }
    struct yctx y = {.c = c, .path = path, .err = err, .errlen = errlen};
    yaml_parser_initialize(&y.p);
    yaml_parser_set_input_file(&y.p, f);
    int rc = 0;
    bool done = false;
    while (!rc && !done) {
        yaml_event_t ev;
        if ((rc = ynext(&y, &ev))) break;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_MAPPING_START_EVENT:
            rc = ymapping(&y, "", 0);
            break;
        case YAML_SCALAR_EVENT:
            if (ev.data.scalar.length == 0) break; /* empty document */
            /* fallthrough */
        default:
            seterr(err, errlen, "config file %s: the top level must be a mapping of keys", path);
            rc = EX_CONFIG;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&y.p);
    fclose(f);
    return rc;
}

/* ---- load --------------------------------------------------------------------------------------------- */

int op_ws_conf_load(struct op_ws_conf *c, int argc, char **argv, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    int rc = parse_flags(c, argc, argv, err, errlen);
    if (rc) return rc;
    for (int i = 0; i < OP_WO_COUNT; i++) {
        if (c->src[i] || !op_ws_opts[i].env) continue;
        const char *v = getenv(op_ws_opts[i].env);
        if (v && set_val(c, i, v, OP_WS_ENV, false) != 0) return EX_OSERR;
    }
    if (c->val[OP_WO_ENV_FILE] && *c->val[OP_WO_ENV_FILE] &&
        (rc = load_env_file(c, c->val[OP_WO_ENV_FILE], err, errlen)))
        return rc;
    if (c->val[OP_WO_CONFIG] && *c->val[OP_WO_CONFIG] &&
        (rc = load_yaml(c, c->val[OP_WO_CONFIG], err, errlen)))
        return rc;
    for (int i = 0; i < OP_WO_COUNT; i++)
        if (!c->src[i] && op_ws_opts[i].def) {
            if (set_val(c, i, op_ws_opts[i].def, OP_WS_DEFAULT, false) != 0) return EX_OSERR;
        }
    return 0;
}

void op_ws_conf_free(struct op_ws_conf *c)
{
    for (int i = 0; i < OP_WO_COUNT; i++)
        free(c->val[i]);
    memset(c, 0, sizeof(*c));
}

/* ---- typed reads -------------------------------------------------------------------------------------- */

static int parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True", "yes"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False", "no", ""};
    for (size_t i = 0; i < OP_ARRAY_LEN(t); i++)
        if (strcmp(s, t[i]) == 0) return *out = true, 0;
    for (size_t i = 0; i < OP_ARRAY_LEN(f); i++)
        if (strcmp(s, f[i]) == 0) return *out = false, 0;
    return -EINVAL;
}

static int parse_int(const char *s, long *out)
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
    return c->val[id] && parse_bool(c->val[id], &b) == 0 && b;
}

long op_ws_int(const struct op_ws_conf *c, enum op_ws_opt_id id)
{
    long v = 0;
    if (c->val[id]) parse_int(c->val[id], &v);
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
            seterr(err, errlen, "%s (%s): \"%s\" is not an http:// or https:// URL with a host", o->flag, on,
                   v);
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
                seterr(err, errlen, "%s (%s): \"%s\" is not a valid host:port address", o->flag, on, v);
                return EX_CONFIG;
            }
        }
        break;
    case OP_WT_BOOL: {
        bool b;
        if (parse_bool(v, &b) != 0) {
            seterr(err, errlen, "%s (%s): \"%s\" is not a boolean (true or false)", o->flag, on, v);
            return EX_CONFIG;
        }
        break;
    }
    case OP_WT_INT: {
        long l;
        if (parse_int(v, &l) != 0 || l < -1000000000L || l > 1000000000L) {
            seterr(err, errlen, "%s (%s): \"%s\" is not an integer", o->flag, on, v);
            return EX_CONFIG;
        }
        break;
    }
    case OP_WT_DURATION: {
        uint64_t ms;
        if (op_parse_duration_ms(v, &ms) != 0) {
            seterr(err, errlen, "%s (%s): \"%s\" is not a duration (e.g. 500ms, 10s, 1m)", o->flag, on, v);
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
            seterr(err, errlen, "%s (%s): \"%s\" is not one of %s", o->flag, on, v, o->choices);
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
                seterr(err, errlen, "%s (%s): cannot read \"%s\": %s", o->flag, on, items[i],
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
                seterr(err, errlen,
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
        seterr(err, errlen, "Missing values for the required flags: %s", missing);
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
        seterr(err, errlen,
               "proxy-session-token: expected \"<proxy-id>:<64-character secret>\" as printed by `outpost "
               "wsproxy "
               "create` (check --proxy-session-token / CODER_PROXY_SESSION_TOKEN)");
        return EX_CONFIG;
    }
    const char *au = op_ws_str(c, OP_WO_ACCESS_URL);
    if (*au) {
        const char *path = strchr(strstr(au, "://") + 3, '/');
        if (path && strcmp(path, "/") != 0) {
            seterr(err, errlen,
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
            seterr(err, errlen, "tls-address: TLS is enabled (--tls-enable) but no TLS address is set");
            return EX_CONFIG;
        }
        if (nc == 0 || nc != nk || nc > 8) {
            seterr(err, errlen,
                   "tls-cert-file / tls-key-file: TLS is enabled, so give 1 to 8 certificate files and as "
                   "many key "
                   "files (got %d certificates and %d keys)",
                   nc, nk);
            return EX_CONFIG;
        }
    } else if (!http) {
        seterr(err, errlen,
               "http-address: HTTP is disabled and TLS is not enabled, so the proxy would not listen");
        return EX_CONFIG;
    }
    if (strcmp(op_ws_str(c, OP_WO_TLS_CLIENT_AUTH), "none") != 0) {
        seterr(err, errlen, "tls-client-auth: \"%s\" is not supported by this build (only \"none\")",
               op_ws_str(c, OP_WO_TLS_CLIENT_AUTH));
        return EX_CONFIG;
    }
    const char *mv = op_ws_str(c, OP_WO_TLS_MIN_VERSION);
    if (strcmp(mv, "tls12") != 0 && strcmp(mv, "tls13") != 0) {
        seterr(err, errlen,
               "tls-min-version: \"%s\" is not allowed: outpost serves TLS 1.2 and newer only (tls12, tls13)",
               mv);
        return EX_CONFIG;
    }
    if (*op_ws_str(c, OP_WO_TLS_CIPHERS) || op_ws_bool(c, OP_WO_TLS_ALLOW_INSECURE_CIPHERS)) {
        seterr(err, errlen,
               "tls-ciphers / tls-allow-insecure-ciphers: not supported by this build (the cipher "
               "policy is fixed); unset them");
        return EX_CONFIG;
    }
    if (!!*op_ws_str(c, OP_WO_TLS_CLIENT_CERT_FILE) != !!*op_ws_str(c, OP_WO_TLS_CLIENT_KEY_FILE)) {
        seterr(err, errlen, "tls-client-cert-file / tls-client-key-file: give both or neither");
        return EX_CONFIG;
    }
    if (op_ws_bool(c, OP_WO_DERP_ONLY) && !op_ws_bool(c, OP_WO_DERP_ENABLE)) {
        seterr(err, errlen,
               "derp-only: cannot be true when the DERP server is disabled (--derp-server-enable=false)");
        return EX_CONFIG;
    }
    if (op_ws_int(c, OP_WO_HSTS) < 0) {
        seterr(err, errlen, "strict-transport-security: must be 0 (off) or a positive number of seconds");
        return EX_CONFIG;
    }
    {
        char b[1024];
        const char *it[16];
        int n = op_ws_list(c, OP_WO_HSTS_OPTIONS, b, sizeof(b), it, 16);
        for (int i = 0; i < n; i++)
            if (strcasecmp(it[i], "includeSubDomains") != 0 && strcasecmp(it[i], "preload") != 0) {
                seterr(err, errlen,
                       "strict-transport-security-options: \"%s\" is not includeSubDomains or preload",
                       it[i]);
                return EX_CONFIG;
            }
    }
    const char *lh = op_ws_str(c, OP_WO_LOG_HUMAN), *lj = op_ws_str(c, OP_WO_LOG_JSON);
    if ((*lh && strcmp(lh, "/dev/stderr") != 0) || (*lj && strcmp(lj, "/dev/stderr") != 0)) {
        seterr(err, errlen, "log-human / log-json: only /dev/stderr is supported (got \"%s\")",
               *lj && strcmp(lj, "/dev/stderr") ? lj : lh);
        return EX_CONFIG;
    }
    long long hb = op_ws_duration_ms(c, OP_WO_HEARTBEAT_INTERVAL);
    if (hb < 100 || hb > 3600000) {
        seterr(err, errlen, "heartbeat-interval: must be between 100ms and 1h");
        return EX_CONFIG;
    }
    long w = op_ws_int(c, OP_WO_WORKERS);
    if (w < 0 || w > 256) {
        seterr(err, errlen, "workers: must be between 0 (one per CPU) and 256");
        return EX_CONFIG;
    }
    return 0;
}

/* ---- help and YAML output ----------------------------------------------------------------------------- */

void op_ws_print_help(FILE *out)
{
    fprintf(out, "USAGE:\n  outpost wsproxy server [flags]\n\n  Start a workspace proxy server\n\n"
                 "  Precedence: flag > --env-file > environment > --config YAML > default.\n\nOPTIONS:\n");
    for (int i = 0; i < OP_WO_COUNT; i++) {
        const struct op_ws_opt *o = &op_ws_opts[i];
        if (o->flags & OP_WF_HIDDEN) continue;
        const char *tn = type_name(o->type);
        char tbuf[96];
        if (!tn) {
            snprintf(tbuf, sizeof(tbuf), "%s", o->choices);
            tn = tbuf;
        }
        fprintf(out, "      --%s", o->flag);
        if (!(o->flags & OP_WF_ACTION)) fprintf(out, " %s", tn);
        if (o->env) fprintf(out, ", $%s", o->env);
        fputc('\n', out);
        fprintf(out, "          %s", o->help);
        if (o->flags & OP_WF_REQUIRED) fprintf(out, " (required)");
        if (o->def && *o->def) fprintf(out, " (default: %s)", o->def);
        if (o->yaml) fprintf(out, " (yaml: %s)", o->yaml);
        fputs("\n\n", out);
    }
}

void op_ws_print_markdown(FILE *out)
{
    fprintf(
        out,
        "# `outpost wsproxy server` options\n\n"
        "Generated from the option table in `wsproxy/config.c` (`outpost wsproxy server --docs-markdown`).\n"
        "Precedence, highest first: flag, `--env-file` (re-read on SIGHUP), environment, the YAML file of "
        "`--config` (dotted keys below, nested), default. String arrays repeat on the command line, are "
        "comma-separated in the environment and YAML sequences in the file. An environment variable set "
        "to the empty string is a value (e.g. `CODER_HTTP_ADDRESS=` disables HTTP). `--check` validates "
        "everything without binding (exit 78 on error); SIGHUP reloads certificates, log level, HSTS, "
        "token and the other non-listener options.\n\n"
        "| Flag | Environment | YAML key | Default | Description |\n|---|---|---|---|---|\n");
    for (int i = 0; i < OP_WO_COUNT; i++) {
        const struct op_ws_opt *o = &op_ws_opts[i];
        const char *tn = type_name(o->type);
        char choices[160] = "";
        if (o->choices) {
            size_t k = (size_t)snprintf(choices, sizeof(choices), " One of: ");
            for (const char *p = o->choices; *p && k + 3 < sizeof(choices); p++) {
                if (*p == '|') {
                    choices[k++] = ',';
                    choices[k++] = ' ';
                } else {
                    choices[k++] = *p;
                }
            }
            choices[k++] = '.';
            choices[k] = '\0';
        }
        fprintf(out, "| `--%s`%s%s%s | %s%s%s | %s%s%s | %s%s%s | %s%s%s%s%s |\n", o->flag,
                o->flags & OP_WF_ACTION ? "" : " (", o->flags & OP_WF_ACTION ? "" : (tn ? tn : "enum"),
                o->flags & OP_WF_ACTION ? "" : ")", o->env ? "`" : "", o->env ? o->env : "—",
                o->env ? "`" : "", o->yaml ? "`" : "", o->yaml ? o->yaml : "—", o->yaml ? "`" : "",
                o->def && *o->def ? "`" : "", o->def && *o->def ? o->def : "—", o->def && *o->def ? "`" : "",
                o->help, choices, o->flags & OP_WF_REQUIRED ? " **Required.**" : "",
                o->flags & OP_WF_HIDDEN ? " (hidden)" : "",
                o->flags & OP_WF_SECRET ? " Secret: never logged or written by `--write-config`." : "");
    }
}

static void yaml_quote(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static int seg_split(const char *key, char segs[8][64])
{
    int n = 0;
    while (*key && n < 8) {
        size_t l = strcspn(key, ".");
        snprintf(segs[n++], 64, "%.*s", (int)l, key);
        key += l + (key[l] == '.');
    }
    return n;
}

static int cmp_yaml(const void *a, const void *b)
{
    char sa[8][64], sb[8][64];
    int na = seg_split(op_ws_opts[*(const int *)a].yaml, sa),
        nb = seg_split(op_ws_opts[*(const int *)b].yaml, sb);
    for (int i = 0; i < na && i < nb; i++) {
        /* a leaf sorts before a mapping at the same level so that groups stay together */
        bool la = i == na - 1, lb = i == nb - 1;
        int r = strcmp(sa[i], sb[i]);
        if (r) return la != lb ? (la ? -1 : 1) : r;
    }
    return na - nb;
}

void op_ws_write_yaml(const struct op_ws_conf *c, FILE *out)
{
    int ids[OP_WO_COUNT], n = 0;
    for (int i = 0; i < OP_WO_COUNT; i++)
        if (op_ws_opts[i].yaml && !(op_ws_opts[i].flags & OP_WF_SECRET)) /* secrets are never written */
            ids[n++] = i;
    qsort(ids, (size_t)n, sizeof(ids[0]), cmp_yaml);
    char prev[8][64];
    int np = 0;
    for (int k = 0; k < n; k++) {
        const struct op_ws_opt *o = &op_ws_opts[ids[k]];
        char segs[8][64];
        int ns = seg_split(o->yaml, segs);
        int common = 0;
        while (common < np && common < ns - 1 && strcmp(prev[common], segs[common]) == 0)
            common++;
        for (int d = common; d < ns - 1; d++)
            fprintf(out, "%*s%s:\n", d * 2, "", segs[d]);
        int d = ns - 1;
        fprintf(out, "%*s# %s\n", d * 2, "", o->help);
        fprintf(out, "%*s%s:", d * 2, "", segs[d]);
        const char *v = c->val[ids[k]];
        if (is_array(o->type)) {
            char buf[4096];
            const char *items[32];
            int ni = op_ws_list(c, ids[k], buf, sizeof(buf), items, 32);
            if (!ni)
                fprintf(out, " []\n");
            else {
                fputc('\n', out);
                for (int i = 0; i < ni; i++) {
                    fprintf(out, "%*s- ", d * 2, "");
                    yaml_quote(out, items[i]);
                    fputc('\n', out);
                }
            }
        } else if (!v) {
            fprintf(out, " \"\"\n");
        } else if (o->type == OP_WT_BOOL) {
            fprintf(out, " %s\n", op_ws_bool(c, ids[k]) ? "true" : "false");
        } else if (o->type == OP_WT_INT) {
            fprintf(out, " %ld\n", op_ws_int(c, ids[k]));
        } else {
            fputc(' ', out);
            yaml_quote(out, v);
            fputc('\n', out);
        }
        memcpy(prev, segs, sizeof(prev));
        np = ns - 1;
    }
}
