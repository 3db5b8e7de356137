/*
 * cli/wsproxy.c — `outpost wsproxy create|ls|edit|delete|regenerate-token` (Coder's CLI,
 * docs/coder-compat.md): admin commands against the primary's /api/v2/workspaceproxies API, with -o
 * text|json|table and -c columns.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/cmd.h"
#include "cli/wsproxy_int.h"

#define DEFAULT_ICON "/emojis/1f5fa.png"

static const char wsproxy_help[] =
    "USAGE:\n"
    "  outpost wsproxy <subcommand>\n"
    "\n"
    "  Workspace proxies provide low-latency experiences for geo-distributed teams.\n"
    "\n"
    "  Aliases: workspace-proxy\n"
    "\n"
    "SUBCOMMANDS:\n"
    "    create              Create a workspace proxy\n"
    "    delete              Delete a workspace proxy\n"
    "    edit                Edit a workspace proxy\n"
    "    ls                  List all workspace proxies\n"
    "    regenerate-token    Regenerate a workspace proxy authentication token.\n"
    "                        This will invalidate the existing authentication token.\n"
    "    server              Start a workspace proxy server\n"
    "\n"
    "Run 'outpost wsproxy <subcommand> --help' for a subcommand's options.\n";

static const char create_help[] =
    "USAGE:\n"
    "  outpost wsproxy create [flags]\n"
    "\n"
    "  Create a workspace proxy\n"
    "\n"
    "OPTIONS:\n"
    "  -c, --column [name|url|proxy token] (default: name,url,proxy token)\n"
    "          Columns to display in table output.\n"
    "\n"
    "      --display-name string\n"
    "          Display name of the proxy. If omitted, the name is reused as the\n"
    "          display name.\n"
    "\n"
    "      --icon string\n"
    "          Display icon of the proxy: a relative path to an emoji\n"
    "          (/emojis/...) or an http(s) URL.\n"
    "\n"
    "      --name string\n"
    "          Name of the proxy. This is used to identify the proxy.\n"
    "\n"
    "      --no-prompt bool\n"
    "          Disable all input prompting, and fail if any required flags are\n"
    "          missing.\n"
    "\n"
    "      --only-token bool\n"
    "          Only print the token. This is useful for scripting.\n"
    "\n"
    "  -o, --output text|json|table (default: text)\n"
    "          Output format.\n" OP_CLIENT_GLOBAL_HELP;

static const char ls_help[] =
    "USAGE:\n"
    "  outpost wsproxy ls [flags]\n"
    "\n"
    "  List all workspace proxies\n"
    "\n"
    "  Aliases: list\n"
    "\n"
    "OPTIONS:\n"
    "  -c, --column [id|name|display name|icon url|healthy|url|wildcard hostname|derp enabled|derp "
    "only|status|proxy "
    "status|proxy report|proxy checked at|created at|updated at|deleted|version] (default: name,url,status)\n"
    "          Columns to display in table output.\n"
    "\n"
    "  -o, --output table|json|text (default: table)\n"
    "          Output format.\n" OP_CLIENT_GLOBAL_HELP;

static const char edit_help[] =
    "USAGE:\n"
    "  outpost wsproxy edit [flags] <name|id>\n"
    "\n"
    "  Edit a workspace proxy\n"
    "\n"
    "OPTIONS:\n"
    "  -c, --column [name|url|display name|icon url|proxy status] (default: name,url)\n"
    "          Columns to display in table output.\n"
    "\n"
    "      --display-name string\n"
    "          Display Name of the proxy.\n"
    "\n"
    "      --icon string\n"
    "          Display icon of the proxy.\n"
    "\n"
    "      --name string\n"
    "          Name of the proxy.\n"
    "\n"
    "  -o, --output text|json|table (default: text)\n"
    "          Output format.\n" OP_CLIENT_GLOBAL_HELP;

static const char delete_help[] = "USAGE:\n"
                                  "  outpost wsproxy delete [flags] <name|id>\n"
                                  "\n"
                                  "  Delete a workspace proxy\n"
                                  "\n"
                                  "  Aliases: rm\n"
                                  "\n"
                                  "OPTIONS:\n"
                                  "  -y, --yes bool\n"
                                  "          Bypass prompts.\n" OP_CLIENT_GLOBAL_HELP;

static const char regen_help[] = "USAGE:\n"
                                 "  outpost wsproxy regenerate-token [flags] <name|id>\n"
                                 "\n"
                                 "  Regenerate a workspace proxy authentication token. This will invalidate\n"
                                 "  the existing authentication token.\n"
                                 "\n"
                                 "OPTIONS:\n"
                                 "  -c, --column [name|url|proxy token] (default: name,url,proxy token)\n"
                                 "          Columns to display in table output.\n"
                                 "\n"
                                 "      --only-token bool\n"
                                 "          Only print the token. This is useful for scripting.\n"
                                 "\n"
                                 "  -o, --output text|json|table (default: text)\n"
                                 "          Output format.\n" OP_CLIENT_GLOBAL_HELP;

/* ---- shared plumbing ---- */

static int load_client(struct op_client *c)
{
    return op_client_load(c, true, true);
}

/* GET /api/v2/workspaceproxies/<ref>; on success *proxy owns the parsed JSON. */
static int fetch_proxy(struct op_client *c, const char *cmd, const char *ref, cJSON **proxy)
{
    char path[600], full[64];
    snprintf(path, sizeof(path), "/api/v2/workspaceproxies/%s", ref);
    snprintf(full, sizeof(full), "outpost wsproxy %s", cmd);
    return op_client_get_object(c, path, full, cmd, "workspace proxy", ref, proxy);
}

static bool valid_ref(const char *ref)
{
    if (!*ref || strlen(ref) > 64) return false;
    for (const char *q = ref; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '-') return false;
    return true;
}

/* The <name|id> argument of edit/delete/regenerate-token: checked, then the session is loaded and the
 * proxy fetched. Returns 0 with *proxy set, or an exit code (the cause already printed). */
static int resolve_proxy(struct op_client *c, const char *cmd, const char *ref, cJSON **proxy)
{
    if (!valid_ref(ref)) {
        fprintf(stderr, "outpost wsproxy %s: workspace proxy \"%s\" not found\n", cmd, ref);
        return EX_DATAERR;
    }
    int rc = load_client(c);
    if (rc) return rc;
    return fetch_proxy(c, cmd, ref, proxy);
}

/* Output of create / regenerate-token: the UpdateWorkspaceProxyResponse. */
static int print_token_result(const struct op_client *c, const cJSON *resp, const char *verb, bool only_token,
                              const struct op_out_opts *o)
{
    const cJSON *proxy = cJSON_GetObjectItemCaseSensitive(resp, "proxy");
    const char *token = op_wsp_jstr(resp, "proxy_token");
    if (only_token) {
        printf("%s\n", token);
        return 0;
    }
    if (o->fmt == OP_OUT_JSON) {
        op_wsp_print_json(resp);
        return 0;
    }
    if (o->fmt == OP_OUT_TABLE) {
        static const enum op_wsp_col allowed[] = {C_NAME, C_URL, C_TOKEN, C_ID, C_DISPLAY, C_ICON};
        enum op_wsp_col cols[16];
        int n = op_wsp_parse_columns(verb, o->columns ? o->columns : "name,url,proxy token", allowed,
                                     (int)OP_ARRAY_LEN(allowed), cols);
        if (n < 0) return EX_USAGE;
        op_wsp_print_table(&proxy, 1, token, cols, n);
        return 0;
    }
    printf("Workspace Proxy \"%s\" %s successfully. Save this token, it will not be shown again.\n",
           op_wsp_jstr(proxy, "name"), strcmp(verb, "create") == 0 ? "created" : "updated");
    printf("%s\n\n", token);
    printf("Start the proxy by running:\n");
    printf("  CODER_PROXY_SESSION_TOKEN=%s outpost wsproxy server --primary-access-url %s "
           "--http-address=0.0.0.0:3001\n",
           token, c->url);
    return 0;
}

enum { W_NAME = 1, W_DISPLAY, W_ICON, W_NO_PROMPT, W_ONLY_TOKEN };

static bool icon_ok(const char *icon)
{
    return !*icon || strncmp(icon, "/emojis/", 8) == 0 || strncmp(icon, "http", 4) == 0;
}

static int cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, W_NAME},
        {"display-name", required_argument, NULL, W_DISPLAY},
        {"icon", required_argument, NULL, W_ICON},
        {"no-prompt", no_argument, NULL, W_NO_PROMPT},
        {"only-token", no_argument, NULL, W_ONLY_TOKEN},
        {"output", required_argument, NULL, 'o'},
        {"column", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost wsproxy create",
                       .help = create_help,
                       .formats = "text, json or table",
                       .o = {OP_OUT_TEXT, NULL}};
    const char *name = NULL, *dn = NULL, *icon = NULL;
    bool no_prompt = false, only_token = false;
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "o:c:h", opts)) >= 0) {
        switch (opt) {
        case W_NAME:
            name = optarg;
            break;
        case W_DISPLAY:
            dn = optarg;
            break;
        case W_ICON:
            icon = optarg;
            break;
        case W_NO_PROMPT:
            no_prompt = true;
            break;
        case W_ONLY_TOKEN:
            only_token = true;
            break;
        }
    }
    if (opt == OP_CLI_EXIT) return k.rc;
    if (op_cli_no_args(&k, argc, argv, " (use --name)")) return EX_USAGE;
    char nbuf[128], dbuf[128], ibuf[512];
    bool interactive = !no_prompt && op_stdin_is_tty();
    if (!name && interactive && op_prompt("Proxy Name:", NULL, false, nbuf, sizeof(nbuf)) == 0) name = nbuf;
    if (!name || !*name) {
        fprintf(stderr, "outpost wsproxy create: proxy name is required (--name)\n");
        return EX_USAGE;
    }
    if (!dn && interactive && op_prompt("Display Name:", name, false, dbuf, sizeof(dbuf)) == 0) dn = dbuf;
    if (!icon && interactive && op_prompt("Icon URL:", DEFAULT_ICON, false, ibuf, sizeof(ibuf)) == 0)
        icon = ibuf;
    if (!dn || !*dn) dn = name;
    if (!icon) icon = "";
    if (!icon_ok(icon)) {
        fprintf(stderr,
                "outpost wsproxy create: --icon must be a relative path to an emoji (/emojis/...) or an "
                "http(s) URL\n");
        return EX_USAGE;
    }
    int rc = load_client(&k.c);
    if (rc) return rc;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", name);
    cJSON_AddStringToObject(b, "display_name", dn);
    cJSON_AddStringToObject(b, "icon", icon);
    struct op_client_resp r;
    rc = op_client_call(&k.c, "POST", "/api/v2/workspaceproxies", b, &r);
    cJSON_Delete(b);
    if (rc) return rc;
    if (r.status != 201 || !cJSON_IsObject(r.json)) {
        rc = op_client_fail("create", "creating the workspace proxy failed", &r);
    } else {
        rc = print_token_result(&k.c, r.json, "create", only_token, &k.o);
    }
    op_client_resp_free(&r);
    return rc;
}

static int cmd_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"column", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost wsproxy ls",
                       .help = ls_help,
                       .formats = "table, json or text",
                       .o = {OP_OUT_TABLE, NULL}};
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "o:c:h", opts)) >= 0)
        continue;
    if (opt == OP_CLI_EXIT) return k.rc;
    if (op_cli_no_args(&k, argc, argv, "")) return EX_USAGE;
    enum op_wsp_col cols[16];
    int ncols = 0;
    if (k.o.fmt == OP_OUT_TABLE) {
        enum op_wsp_col allowed[C_NCOLS - 1];
        for (int i = 0; i < C_NCOLS - 1; i++)
            allowed[i] = (enum op_wsp_col)i;
        ncols = op_wsp_parse_columns("ls", k.o.columns ? k.o.columns : "name,url,status", allowed,
                                     C_NCOLS - 1, cols);
        if (ncols < 0) return EX_USAGE;
    }
    int rc = load_client(&k.c);
    if (rc) return rc;
    struct op_client_resp r;
    if ((rc = op_client_call(&k.c, "GET", "/api/v2/workspaceproxies", NULL, &r)) != 0) return rc;
    const cJSON *regions = cJSON_GetObjectItemCaseSensitive(r.json, "regions");
    if (r.status != 200 || !cJSON_IsArray(regions)) {
        rc = op_client_fail("ls", "listing workspace proxies failed", &r);
        op_client_resp_free(&r);
        return rc;
    }
    int n = cJSON_GetArraySize(regions);
    const cJSON **list = calloc((size_t)n + 1, sizeof(*list));
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, regions) list[i++] = it;
    if (k.o.fmt == OP_OUT_JSON) {
        op_wsp_print_json(regions);
    } else if (k.o.fmt == OP_OUT_TEXT) {
        for (i = 0; i < n; i++) {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(list[i], "status");
            printf("%d: %s %s %s\n", i, op_wsp_jstr(list[i], "name"), op_wsp_jstr(list[i], "path_app_url"),
                   op_wsp_jstr(st, "status"));
            op_wsp_print_report(list[i], "    ");
        }
    } else {
        op_wsp_print_table(list, n, NULL, cols, ncols);
        bool first = true;
        for (i = 0; i < n; i++) {
            if (!op_wsp_has_report(list[i])) continue;
            if (first) putchar('\n');
            first = false;
            printf("%s (%s):\n", op_wsp_jstr(list[i], "name"),
                   op_wsp_jstr(cJSON_GetObjectItemCaseSensitive(list[i], "status"), "status"));
            op_wsp_print_report(list[i], "  ");
        }
    }
    free(list);
    op_client_resp_free(&r);
    return 0;
}

static int cmd_edit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, W_NAME},
        {"display-name", required_argument, NULL, W_DISPLAY},
        {"icon", required_argument, NULL, W_ICON},
        {"output", required_argument, NULL, 'o'},
        {"column", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost wsproxy edit",
                       .help = edit_help,
                       .formats = "text, json or table",
                       .o = {OP_OUT_TEXT, NULL}};
    const char *name = NULL, *dn = NULL, *icon = NULL;
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "o:c:h", opts)) >= 0) {
        switch (opt) {
        case W_NAME:
            name = optarg;
            break;
        case W_DISPLAY:
            dn = optarg;
            break;
        case W_ICON:
            icon = optarg;
            break;
        }
    }
    if (opt == OP_CLI_EXIT) return k.rc;
    if (argc - optind != 1) {
        fprintf(stderr, "outpost wsproxy edit: exactly one argument <name|id> is required\n\n%s", edit_help);
        return EX_USAGE;
    }
    const char *ref = argv[optind];
    if (!name && !dn && !icon) {
        fprintf(stderr, "%s\noutpost wsproxy edit: specify at least one field to update\n", edit_help);
        return EX_USAGE;
    }
    if (icon && !icon_ok(icon)) {
        fprintf(stderr,
                "outpost wsproxy edit: --icon must be a relative path to an emoji (/emojis/...) or an "
                "http(s) URL\n");
        return EX_USAGE;
    }
    cJSON *cur = NULL;
    int rc = resolve_proxy(&k.c, "edit", ref, &cur);
    if (rc) return rc;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "id", op_wsp_jstr(cur, "id"));
    cJSON_AddStringToObject(b, "name", name ? name : op_wsp_jstr(cur, "name"));
    cJSON_AddStringToObject(b, "display_name", dn ? dn : op_wsp_jstr(cur, "display_name"));
    cJSON_AddStringToObject(b, "icon", icon ? icon : op_wsp_jstr(cur, "icon_url"));
    char path[600];
    snprintf(path, sizeof(path), "/api/v2/workspaceproxies/%s", op_wsp_jstr(cur, "id"));
    struct op_client_resp r;
    rc = op_client_call(&k.c, "PATCH", path, b, &r);
    cJSON_Delete(b);
    cJSON_Delete(cur);
    if (rc) return rc;
    const cJSON *proxy = cJSON_GetObjectItemCaseSensitive(r.json, "proxy");
    if (r.status != 200 || !cJSON_IsObject(proxy)) {
        rc = op_client_fail("edit", "updating the workspace proxy failed", &r);
    } else if (k.o.fmt == OP_OUT_JSON) {
        op_wsp_print_json(proxy);
    } else if (k.o.fmt == OP_OUT_TABLE) {
        static const enum op_wsp_col allowed[] = {C_NAME,    C_URL,    C_DISPLAY, C_ICON,
                                                  C_PSTATUS, C_STATUS, C_ID};
        enum op_wsp_col cols[16];
        int n = op_wsp_parse_columns("edit", k.o.columns ? k.o.columns : "name,url", allowed,
                                     (int)OP_ARRAY_LEN(allowed), cols);
        if (n < 0)
            rc = EX_USAGE;
        else
            op_wsp_print_table(&proxy, 1, NULL, cols, n);
    } else {
        printf("Workspace Proxy \"%s\" updated successfully.\n", op_wsp_jstr(proxy, "name"));
    }
    op_client_resp_free(&r);
    return rc;
}

static int cmd_delete(int argc, char **argv)
{
    static const struct option opts[] = {
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost wsproxy delete", .help = delete_help};
    bool yes = false;
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "yh", opts)) >= 0)
        yes = yes || opt == 'y';
    if (opt == OP_CLI_EXIT) return k.rc;
    const char *ref = op_cli_one_arg(&k, argc, argv, "<name|id>");
    if (!ref) return EX_USAGE;
    cJSON *cur = NULL;
    int rc = resolve_proxy(&k.c, "delete", ref, &cur);
    if (rc) return rc;
    if (!yes) {
        char q[300];
        snprintf(q, sizeof(q), "Delete this workspace proxy: %s? (yes/no)", op_wsp_jstr(cur, "display_name"));
        if ((rc = op_confirm(k.cmd, q)) != 0) {
            cJSON_Delete(cur);
            return rc;
        }
    }
    char path[600], done[200];
    snprintf(path, sizeof(path), "/api/v2/workspaceproxies/%s", op_wsp_jstr(cur, "id"));
    snprintf(done, sizeof(done), "Workspace proxy \"%s\" deleted successfully", ref);
    cJSON_Delete(cur);
    return op_client_delete(&k.c, path, "delete", "workspace proxy", done);
}

static int cmd_regen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"only-token", no_argument, NULL, W_ONLY_TOKEN},
        {"output", required_argument, NULL, 'o'},
        {"column", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost wsproxy regenerate-token",
                       .help = regen_help,
                       .formats = "text, json or table",
                       .o = {OP_OUT_TEXT, NULL}};
    bool only_token = false;
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "o:c:h", opts)) >= 0)
        only_token = only_token || opt == W_ONLY_TOKEN;
    if (opt == OP_CLI_EXIT) return k.rc;
    const char *ref = op_cli_one_arg(&k, argc, argv, "<name|id>");
    if (!ref) return EX_USAGE;
    cJSON *cur = NULL;
    int rc = resolve_proxy(&k.c, "regenerate-token", ref, &cur);
    if (rc) return rc;
    char path[600];
    snprintf(path, sizeof(path), "/api/v2/workspaceproxies/%s", op_wsp_jstr(cur, "id"));
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "id", op_wsp_jstr(cur, "id"));
    cJSON_AddBoolToObject(b, "regenerate_token", true);
    cJSON_Delete(cur);
    struct op_client_resp r;
    rc = op_client_call(&k.c, "PATCH", path, b, &r);
    cJSON_Delete(b);
    if (rc) return rc;
    if (r.status != 200 || !cJSON_IsObject(r.json))
        rc = op_client_fail("regenerate-token", "regenerating the token failed", &r);
    else
        rc = print_token_result(&k.c, r.json, "regenerate-token", only_token, &k.o);
    op_client_resp_free(&r);
    return rc;
}

int op_cmd_wsproxy(int argc, char **argv)
{
    static const struct op_subcmd subs[] = {
        {"create", NULL, cmd_create},
        {"ls", "list", cmd_ls},
        {"edit", NULL, cmd_edit},
        {"delete", "rm", cmd_delete},
        {"regenerate-token", NULL, cmd_regen},
        {"server", NULL, op_cmd_wsproxy_server},
    };
    return op_subcmd_run("outpost wsproxy", wsproxy_help, subs, OP_ARRAY_LEN(subs), argc, argv);
}
