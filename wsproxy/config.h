/*
 * wsproxy/config.h — configuration of `outpost wsproxy server`.
 *
 * ONE option table (op_ws_opts) drives everything: command-line parsing, CODER_* environment variables,
 * the YAML config file (dotted keys), defaults, validation, `--help`, `--write-config` and `--check`.
 *
 * Precedence, highest first: flag > env-file (--env-file, re-read on SIGHUP) > environment > YAML
 * (--config / CODER_CONFIG_PATH) > default. Every value is kept as text (string arrays comma-joined);
 * typed accessors read it after op_ws_conf_validate() accepted it.
 */
#ifndef OP_WSPROXY_CONFIG_H
#define OP_WSPROXY_CONFIG_H

#include <stdio.h>

#include "core/common.h"

enum op_ws_type {
    OP_WT_STRING,
    OP_WT_URL,      /* http:// or https:// with a host */
    OP_WT_HOSTPORT, /* "host:port"; empty = off */
    OP_WT_BOOL,
    OP_WT_INT,
    OP_WT_DURATION, /* Go style: 500ms, 10s, 1m, 1h30m */
    OP_WT_STRINGS,  /* string array: repeatable flag, comma-separated env, YAML sequence */
    OP_WT_FILES,    /* string array of readable files */
    OP_WT_FILE,     /* one readable file */
    OP_WT_ENUM,     /* one of ws_opt.choices ("a|b|c") */
    OP_WT_WILDCARD, /* wildcard hostname pattern (reference §6.3) */
};

enum {
    OP_WF_REQUIRED = 1u << 0,
    OP_WF_SECRET = 1u << 1, /* never logged */
    OP_WF_HIDDEN = 1u << 2, /* accepted, not listed by --help */
    OP_WF_ACTION = 1u << 3, /* command-line only (--help, --check, --write-config) */
};

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
    OP_WO_HEARTBEAT_INTERVAL,
    OP_WO_CONFIG,
    OP_WO_ENV_FILE,
    OP_WO_WRITE_CONFIG,
    OP_WO_CHECK,
    OP_WO_HELP,
    OP_WO_DOCS_MARKDOWN,
    OP_WO_COUNT
};

struct op_ws_opt {
    const char *flag; /* without the leading "--" */
    const char *env;  /* NULL = none */
    const char *yaml; /* dotted key, NULL = none */
    const char *def;  /* default as text, NULL = unset */
    enum op_ws_type type;
    const char *choices; /* OP_WT_ENUM: "a|b|c" */
    unsigned flags;
    const char *help;
};

extern const struct op_ws_opt op_ws_opts[OP_WO_COUNT];

enum op_ws_src { OP_WS_UNSET = 0, OP_WS_DEFAULT, OP_WS_YAML, OP_WS_ENV, OP_WS_ENVFILE, OP_WS_FLAG };

struct op_ws_conf {
    char *val[OP_WO_COUNT]; /* effective value (malloc'd), NULL = unset */
    enum op_ws_src src[OP_WO_COUNT];
};

/* Loads the configuration from argv (argv[0] is the command name), the environment, the env-file and
 * the YAML file, then applies defaults. Does not validate values (op_ws_conf_validate does). Returns 0,
 * or EX_USAGE / EX_CONFIG with a message naming the option in err. */
int op_ws_conf_load(struct op_ws_conf *c, int argc, char **argv, char *err, size_t errlen);
/* Checks every value (types, URL schemes, readable files, addresses, wildcard rules, combinations,
 * required options). Does not bind or connect. Returns 0 or EX_CONFIG with the reason in err. */
int op_ws_conf_validate(const struct op_ws_conf *c, char *err, size_t errlen);
void op_ws_conf_free(struct op_ws_conf *c);

/* Typed reads (after validation). str: "" when unset. */
const char *op_ws_str(const struct op_ws_conf *c, enum op_ws_opt_id id);
bool op_ws_bool(const struct op_ws_conf *c, enum op_ws_opt_id id);
long op_ws_int(const struct op_ws_conf *c, enum op_ws_opt_id id);
/* Duration in milliseconds; -1 if unset or invalid. */
long long op_ws_duration_ms(const struct op_ws_conf *c, enum op_ws_opt_id id);
/* Splits a string array into at most max malloc'd-free views stored in buf (buf gets a copy). Returns the
 * number of items. */
int op_ws_list(const struct op_ws_conf *c, enum op_ws_opt_id id, char *buf, size_t buflen, const char **out,
               int max);

/* Prints the --help text (every visible option with its flag, env and YAML key). */
void op_ws_print_help(FILE *out);
/* Prints the option reference as Markdown (docs/wsproxy-server.md is this output). */
void op_ws_print_markdown(FILE *out);
/* Prints the effective configuration as YAML (every option with a YAML key, except secrets). */
void op_ws_write_yaml(const struct op_ws_conf *c, FILE *out);

#endif
