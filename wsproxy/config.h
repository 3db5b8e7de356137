/*
 * wsproxy/config.h — configuration of `outpost wsproxy server`.
 *
 * ONE option table (op_ws_opts) drives everything: command-line parsing, CODER_* environment variables,
 * the YAML config file (dotted keys), defaults, validation, `--help`, `--write-config` and `--check`;
 * the machinery is the shared one of util/options.h, this file names the proxy's table and rules.
 *
 * Precedence, highest first: flag > env-file (--env-file, re-read on SIGHUP) > environment > YAML
 * (--config / CODER_CONFIG_PATH) > default. Every value is kept as text (string arrays comma-joined);
 * typed accessors read it after op_ws_conf_validate() accepted it.
 */
#ifndef OP_WSPROXY_CONFIG_H
#define OP_WSPROXY_CONFIG_H

#include "util/options.h"

/* Option ids: the order of the table. */
enum op_ws_opt_id {
    OP_WO_PROXY_SESSION_TOKEN,
    OP_WO_PRIMARY_ACCESS_URL,
    OP_WO_DERP_ONLY,
    OP_WO_ACCESS_URL,
    OP_WO_WILDCARD_ACCESS_URL,
    OP_WO_DOCS_URL,
    OP_WO_HTTP_ADDRESS,
    OP_WO_TLS_ADDRESS,
    OP_WO_TLS_ENABLE,
    OP_WO_TLS_CERT_FILE,
    OP_WO_TLS_KEY_FILE,
    OP_WO_TLS_CLIENT_AUTH,
    OP_WO_TLS_CLIENT_CA_FILE,
    OP_WO_TLS_CLIENT_CERT_FILE,
    OP_WO_TLS_CLIENT_KEY_FILE,
    OP_WO_TLS_MIN_VERSION,
    OP_WO_TLS_CIPHERS,
    OP_WO_TLS_ALLOW_INSECURE_CIPHERS,
    OP_WO_TLS_REDIRECT,
    OP_WO_HSTS,
    OP_WO_HSTS_OPTIONS,
    OP_WO_TRUSTED_HEADERS,
    OP_WO_TRUSTED_ORIGINS,
    OP_WO_SECURE_AUTH_COOKIE,
    OP_WO_SAMESITE_AUTH_COOKIE,
    OP_WO_HOST_PREFIX_COOKIE,
    OP_WO_BLOCK_DIRECT,
    OP_WO_DERP_ENABLE,
    OP_WO_DERP_RELAY_URL,
    OP_WO_DISABLE_PATH_APPS,
    OP_WO_DISABLE_OWNER_WORKSPACE_ACCESS,
    OP_WO_EXPERIMENTS,
    OP_WO_DANGEROUS_CORS,
    OP_WO_API_RATE_LIMIT,
    OP_WO_LOG_HUMAN,
    OP_WO_LOG_JSON,
    OP_WO_LOG_LEVEL,
    OP_WO_VERBOSE,
    OP_WO_PROMETHEUS_ENABLE,
    OP_WO_PROMETHEUS_ADDRESS,
    OP_WO_WORKERS,
    OP_WO_DRAIN_TIMEOUT,
    OP_WO_AGENT_STREAM_LIMITS,
    OP_WO_HEARTBEAT_INTERVAL,
    OP_WO_CONFIG,
    OP_WO_ENV_FILE,
    OP_WO_WRITE_CONFIG,
    OP_WO_CHECK,
    OP_WO_HELP,
    OP_WO_DOCS_MARKDOWN,
    OP_WO_COUNT
};

extern const struct op_opt op_ws_opts[OP_WO_COUNT];
extern const struct op_optset op_ws_optset;

/* Loads the configuration (op_conf_load over op_ws_optset). Does not validate values. Returns 0, or
 * EX_USAGE / EX_CONFIG with a message naming the option in err. */
static inline int op_ws_conf_load(struct op_conf *c, int argc, char **argv, char *err, size_t errlen)
{
    return op_conf_load(c, &op_ws_optset, argc, argv, err, errlen);
}
/* Checks every value (types, URL schemes, readable files, addresses, wildcard rules, combinations,
 * required options). Does not bind or connect. Returns 0 or EX_CONFIG with the reason in err. */
int op_ws_conf_validate(const struct op_conf *c, char *err, size_t errlen);
static inline void op_ws_conf_free(struct op_conf *c)
{
    op_conf_free(c);
}

/* Typed reads (after validation), see util/options.h. */
static inline const char *op_ws_str(const struct op_conf *c, enum op_ws_opt_id id)
{
    return op_conf_str(c, (int)id);
}
static inline bool op_ws_bool(const struct op_conf *c, enum op_ws_opt_id id)
{
    return op_conf_bool(c, (int)id);
}
static inline long op_ws_int(const struct op_conf *c, enum op_ws_opt_id id)
{
    return op_conf_int(c, (int)id);
}
static inline long long op_ws_duration_ms(const struct op_conf *c, enum op_ws_opt_id id)
{
    return op_conf_duration_ms(c, (int)id);
}
static inline int op_ws_list(const struct op_conf *c, enum op_ws_opt_id id, char *buf, size_t buflen,
                             const char **out, int max)
{
    return op_conf_list(c, (int)id, buf, buflen, out, max);
}

/* --help, the Markdown reference (docs/wsproxy-server.md is this output), --write-config. */
static inline void op_ws_print_help(FILE *out)
{
    op_conf_print_help(&op_ws_optset, out);
}
static inline void op_ws_print_markdown(FILE *out)
{
    op_conf_print_markdown(&op_ws_optset, out);
}
static inline void op_ws_write_yaml(const struct op_conf *c, FILE *out)
{
    op_conf_write_yaml(c, out);
}

#endif
