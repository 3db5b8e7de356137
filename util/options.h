/*
 * util/options.h — the option-table machinery shared by the long-running roles (`outpost wsproxy
 * server`, `outpost agent`): ONE table per command drives command-line parsing, CODER_* environment
 * variables, the YAML config file (dotted keys), defaults, per-type validation, `--help`, the Markdown
 * reference (docs/), `--write-config` and `--check`. A command owns its table and its combination
 * rules; everything else is here.
 *
 * Precedence, highest first: flag > env-file (the set's env_file option) > environment > YAML (the
 * set's config option) > default. Every value is kept as text (string arrays joined with their
 * separator); typed accessors read it after op_conf_check() accepted it.
 */
#ifndef OP_UTIL_OPTIONS_H
#define OP_UTIL_OPTIONS_H

#include <stdio.h>

#include "core/common.h"

enum op_opt_type {
    OP_OT_STRING,
    OP_OT_URL,      /* http:// or https:// with a host */
    OP_OT_HOSTPORT, /* "host:port"; empty = off */
    OP_OT_BOOL,
    OP_OT_INT,
    OP_OT_DURATION, /* Go style: 500ms, 10s, 1m, 1h30m */
    OP_OT_STRINGS,  /* string array: repeatable flag, comma-separated env, YAML sequence */
    OP_OT_FILES,    /* string array of readable files */
    OP_OT_FILE,     /* one readable file */
    OP_OT_ENUM,     /* one of op_opt.choices ("a|b|c") */
    OP_OT_WILDCARD, /* wildcard hostname pattern (docs/coder-compat.md) */
    OP_OT_SPECS,    /* string array whose items contain commas: repeatable flag, ';'-separated env,
                       YAML sequence */
};

enum {
    OP_OF_REQUIRED = 1u << 0,
    OP_OF_SECRET = 1u << 1, /* never logged, never written by --write-config */
    OP_OF_HIDDEN = 1u << 2, /* accepted, not listed by --help */
    OP_OF_ACTION = 1u << 3, /* command-line only (--help, --check, --write-config) */
};

struct op_opt {
    const char *flag; /* without the leading "--" */
    const char *env;  /* NULL = none */
    const char *yaml; /* dotted key, NULL = none */
    const char *def;  /* default as text, NULL = unset */
    enum op_opt_type type;
    const char *choices; /* OP_OT_ENUM: "a|b|c" */
    unsigned flags;
    const char *help;
};

#define OP_CONF_MAX 64 /* options in one table */

/* One command's table and the few options the machinery itself acts on (-1 = the command has none). */
struct op_optset {
    const struct op_opt *opts;
    int count;
    const char *command;  /* "outpost wsproxy server": the --help usage line and the Markdown title */
    const char *summary;  /* one line under the usage */
    const char *noun;     /* "server", "agent": "the <noun> takes no positional arguments" */
    const char *md_intro; /* the Markdown reference's paragraph above the table */
    int config_id;        /* the YAML file to read */
    int env_file_id;      /* the KEY=VALUE file to read */
    int verbose_id;       /* what -v means */
    int log_json_id;      /* a bare --<flag> means /dev/stderr */
};

enum op_opt_src { OP_OS_UNSET = 0, OP_OS_DEFAULT, OP_OS_YAML, OP_OS_ENV, OP_OS_ENVFILE, OP_OS_FLAG };

struct op_conf {
    const struct op_optset *set;
    char *val[OP_CONF_MAX]; /* effective value (malloc'd), NULL = unset */
    enum op_opt_src src[OP_CONF_MAX];
};

/* Loads the configuration from argv (argv[0] is the command name), the environment, the env-file and
 * the YAML file, then applies defaults. Does not validate values (op_conf_check does). Returns 0, or
 * EX_USAGE / EX_CONFIG with a message naming the option in err: unlike the 0/-errno rule of
 * core/common.h, these two return sysexits codes because their only callers are commands, which exit with
 * the code as it is (a bad flag is a usage error, a bad value a configuration error). */
int op_conf_load(struct op_conf *c, const struct op_optset *set, int argc, char **argv, char *err,
                 size_t errlen);
/* Checks that every required option is set and every value against its type (URL schemes, readable
 * files, addresses, wildcard rules, enums, durations). Returns 0 or EX_CONFIG (sysexits, as above) with
 * the reason in err. */
int op_conf_check(const struct op_conf *c, char *err, size_t errlen);
void op_conf_free(struct op_conf *c);

/* Typed reads (after op_conf_check). str: "" when unset. */
const char *op_conf_str(const struct op_conf *c, int id);
bool op_conf_bool(const struct op_conf *c, int id);
long op_conf_int(const struct op_conf *c, int id);
/* Duration in milliseconds; -1 if unset or invalid. */
long long op_conf_duration_ms(const struct op_conf *c, int id);
/* Splits a string array into at most max items that point into buf (buf gets a copy). Returns the
 * number of items. */
int op_conf_list(const struct op_conf *c, int id, char *buf, size_t buflen, const char **out, int max);

/* Prints the --help text (every visible option with its flag, env and YAML key). */
void op_conf_print_help(const struct op_optset *set, FILE *out);
/* Prints the option reference as Markdown (the docs/ page of the command). */
void op_conf_print_markdown(const struct op_optset *set, FILE *out);
/* Prints the effective configuration as YAML (every option with a YAML key, except secrets). */
void op_conf_write_yaml(const struct op_conf *c, FILE *out);

#endif
