/*
 * cli/client.h — what the admin CLI commands share: the global options (--global-config, --url,
 * --token and their CODER_* variables), the config directory (files `url` and `session`, mode 0600),
 * a small libcurl wrapper for JSON calls to the primary, output helpers (tables, columns) and prompts.
 */
#ifndef OP_CLI_CLIENT_H
#define OP_CLI_CLIENT_H

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>

#include "core/common.h"

/* getopt_long ids of the global options; every command adds OP_CLIENT_GLOBAL_OPTS to its table. */
enum { OP_OPT_GLOBAL_CONFIG = 900, OP_OPT_URL, OP_OPT_TOKEN };
#define OP_CLIENT_GLOBAL_OPTS                                                                                \
    {"global-config", required_argument, NULL, OP_OPT_GLOBAL_CONFIG},                                        \
        {"url", required_argument, NULL, OP_OPT_URL},                                                        \
    {                                                                                                        \
        "token", required_argument, NULL, OP_OPT_TOKEN                                                       \
    }

#define OP_CLIENT_GLOBAL_HELP                                                                                \
    "\nGLOBAL OPTIONS:\n"                                                                                    \
    "      --global-config string, $CODER_CONFIG_DIR\n"                                                      \
    "          Path to the global `outpost` config directory (default:\n"                                    \
    "          $XDG_CONFIG_HOME/outpost or ~/.config/outpost).\n"                                            \
    "\n"                                                                                                     \
    "      --token string, $CODER_SESSION_TOKEN\n"                                                           \
    "          Specify an authentication token (overrides the stored session).\n"                            \
    "\n"                                                                                                     \
    "      --url url, $CODER_URL\n"                                                                          \
    "          URL of the primary (overrides the stored URL).\n"

struct op_client {
    char config_dir[4096];
    char url[1024];  /* without trailing '/' */
    char token[256]; /* session token, "" if none */
    const char *flag_config, *flag_url, *flag_token;
};

/* Handles one getopt result if it is a global option; returns true when consumed. */
bool op_client_global_opt(struct op_client *c, int opt, const char *arg);

/* Resolves config dir, URL and token (flag > env > config files). need_url / need_token make a missing
 * value an error, printed on stderr. Returns 0 or a sysexits code. */
int op_client_load(struct op_client *c, bool need_url, bool need_token);

/* Writes url and session into the config dir (dir 0700, files 0600). Returns 0 or a sysexits code. */
int op_client_save(const struct op_client *c);
/* Removes the stored session file. */
void op_client_forget_session(const struct op_client *c);

/* Normalises a user-typed URL (adds https:// when no scheme, strips trailing '/'). 0 or -EINVAL. */
int op_client_normalize_url(const char *in, char *out, size_t outlen);

struct op_client_resp {
    long status;
    char *body;
    size_t len;
    cJSON *json; /* parsed body or NULL */
};

/* Performs METHOD url+path with an optional JSON body (session token attached when set); a private CA can be
 * given with CURL_CA_BUNDLE or SSL_CERT_FILE. On a transport
 * failure prints "cannot reach the primary at <url>: <reason>" and returns EX_UNAVAILABLE; otherwise 0
 * (any HTTP status). */
int op_client_call(const struct op_client *c, const char *method, const char *path, const cJSON *body,
                   struct op_client_resp *out);
void op_client_resp_free(struct op_client_resp *r);

/* GET path, expecting 200 and a JSON object; on success *obj owns it. A 404 prints
 * "<cmd>: <what> \"<ref>\" not found" (EX_DATAERR); any other answer goes to
 * op_client_fail(failcmd, "fetching the <what> failed"). */
int op_client_get_object(const struct op_client *c, const char *path, const char *cmd, const char *failcmd,
                         const char *what, const char *ref, cJSON **obj);

/* DELETE path: a 200 prints done (one line) on stdout (0); any other answer goes to
 * op_client_fail(failcmd, "deleting the <what> failed"). */
int op_client_delete(const struct op_client *c, const char *path, const char *failcmd, const char *what,
                     const char *done);

/* Prints "<cmd>: <what>: <message> (<detail>)" from a Coder error body and maps the status to a
 * sysexits code (401/403 EX_NOPERM, 404/400/409 EX_DATAERR, 5xx EX_UNAVAILABLE, other EX_PROTOCOL). */
int op_client_fail(const char *cmd, const char *what, const struct op_client_resp *r);

/* Prompts on stderr and reads a line from the terminal; secret disables echo. Returns 0, or -ENOTTY when
 * stdin is not a terminal, or -EIO on EOF. */
int op_prompt(const char *question, const char *dflt, bool secret, char *out, size_t outlen);
bool op_stdin_is_tty(void);
/* Asks question (ending in "(yes/no)") on the terminal: yes or y, in any case, confirms (0). Otherwise prints
 * "<cmd>: stdin is not a terminal; pass --yes to confirm" (EX_USAGE) or "<cmd>: canceled" (EX_TEMPFAIL). */
int op_confirm(const char *cmd, const char *question);

/* One subcommand of a command group (`outpost users`, `outpost wsproxy`). */
struct op_subcmd {
    const char *name, *alias;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
};
/* Runs the subcommand argv[1] names (by name or alias) with argv shifted by one. Without an argument the
 * group's help goes to stderr (EX_USAGE); --help, -h or help prints it on stdout (0); an unknown name
 * prints "<group>: unknown subcommand \"<name>\"", a blank line and the help (EX_USAGE). */
int op_subcmd_run(const char *group, const char *help, const struct op_subcmd *subs, size_t nsubs, int argc,
                  char **argv);

/* ---- output ---- */
/* Prints v as JSON indented by two spaces per level (like Go's json.MarshalIndent), plus a newline. */
void op_json_print(FILE *out, const cJSON *v);
enum op_out_format { OP_OUT_TEXT, OP_OUT_JSON, OP_OUT_TABLE };
/* Parses "text|json|table"; returns 0 or -EINVAL. */
int op_out_parse(const char *s, enum op_out_format *out);

/* The -o/--output and -c/--column options of a listing command. */
struct op_out_opts {
    enum op_out_format fmt;
    const char *columns; /* the -c value, NULL = the command's default */
};
/* Handles one getopt result: returns 1 when opt was -o or -c, 0 when it was neither, -1 (after printing
 * "<cmd>: --output must be <formats>") for an unknown format. cmd is the full name ("outpost users list"). */
int op_out_opt(struct op_out_opts *o, int opt, const char *arg, const char *cmd, const char *formats);
/* Parses a -c list ("a,b,c", case-insensitive) against the allowed column ids (indices into names); writes
 * the chosen ids to out (room for OP_TABLE_MAX_COLS). Returns the count, or -1 after printing
 * "<cmd>: unknown column ..." or "<cmd>: no columns selected". */
int op_out_columns(const char *cmd, const char *spec, const char *const *names, const int *allowed,
                   int nallowed, int *out);

/* The option loop of an admin command: its name, help, session options and -o/-c. */
struct op_cli {
    const char *cmd;     /* full name ("outpost users create"); getopt's messages and ours use it */
    const char *help;    /* printed on stdout for -h/--help */
    const char *formats; /* the -o values for its error ("text or json"); NULL: no -o/-c */
    struct op_client c;
    struct op_out_opts o;
    int rc;       /* the exit code once op_cli_opt returned OP_CLI_EXIT */
    bool started; /* getopt reset and argv[0] set */
};
#define OP_CLI_EXIT (-2)
/* The next option for the command itself to handle, -1 after the last one, or OP_CLI_EXIT with k->rc set.
 * The first call resets getopt and names the command in argv[0]. Global options and (with formats) -o/-c
 * are consumed; -h prints the help (rc 0); a bad -o value (op_out_opt's message) or an unknown option
 * ("Run '<cmd> --help' for usage.") gives rc EX_USAGE. */
int op_cli_opt(struct op_cli *k, int argc, char **argv, const char *shortopts, const struct option *longopts);
/* EX_USAGE after "<cmd>: unexpected argument \"<arg>\"<hint>" when arguments follow the options, else 0. */
int op_cli_no_args(const struct op_cli *k, int argc, char **argv, const char *hint);
/* The one argument after the options, or NULL after "<cmd>: exactly one argument <what> is required". */
const char *op_cli_one_arg(const struct op_cli *k, int argc, char **argv, const char *what);
/* The -c choice (dflt without one) among all nnames columns of a listing command: the ids go to cols
 * (room for OP_TABLE_MAX_COLS); returns their count, 0 when -o is not table, or -1 after op_out_columns'
 * message. */
int op_cli_columns(const struct op_cli *k, const char *dflt, const char *const *names, int nnames, int *cols);
/* EX_USAGE after "<cmd>: --output must be <formats>" when -o chose fmt, which the command does not print. */
int op_cli_refuse_format(const struct op_cli *k, enum op_out_format fmt);

#define OP_TABLE_MAX_COLS 16
/* A table with up to 16 columns, cells copied. */
struct op_table {
    int ncols, nrows, cap;
    char *head[16];
    char **cells; /* nrows * ncols */
};
void op_table_init(struct op_table *t);
void op_table_col(struct op_table *t, const char *header);
/* Starts a row; op_table_cell fills it left to right. */
void op_table_row(struct op_table *t);
void op_table_cell(struct op_table *t, const char *text);
/* Prints uppercase headers and rows, columns separated by two spaces, no trailing blanks. */
void op_table_print(const struct op_table *t, FILE *out);
void op_table_free(struct op_table *t);

#endif
