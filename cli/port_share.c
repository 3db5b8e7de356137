/*
 * cli/port_share.c — `outpost port-share add|ls|rm`: the workspace port sharing API of the primary
 * (docs/apps.md, "Port sharing"). add and rm name "[owner/]workspace[.agent]" and a port (the agent may be
 * omitted when the workspace has one); ls names the workspace.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli/cmd.h"
#include "cli/workspaces.h"

static const char group_help[] =
    "USAGE:\n"
    "  outpost port-share <subcommand>\n"
    "\n"
    "  Share workspace ports beyond their owner (port URLs are owner-only by default)\n"
    "\n"
    "SUBCOMMANDS:\n"
    "    add    Share a port: outpost port-share add WORKSPACE[.AGENT] PORT\n"
    "           [--level authenticated|organization|public|owner] [--protocol http|https]\n"
    "    ls     List a workspace's shared ports: outpost port-share ls WORKSPACE [-o json]\n"
    "    rm     Stop sharing a port: outpost port-share rm WORKSPACE[.AGENT] PORT\n"
    "\n"
    "Run 'outpost port-share <subcommand> --help' for a subcommand's options.\n";

static const char add_help[] = "USAGE:\n"
                               "  outpost port-share add [owner/]workspace[.agent] <port> [flags]\n"
                               "\n"
                               "OPTIONS:\n"
                               "  -l, --level string (default: authenticated)\n"
                               "          owner, authenticated, organization or public.\n"
                               "\n"
                               "  -p, --protocol string (default: http)\n"
                               "          http or https.\n";
static const char ls_help[] = "USAGE:\n"
                              "  outpost port-share ls [owner/]workspace [flags]\n"
                              "\n"
                              "OPTIONS:\n"
                              "  -o, --output string (default: table)\n"
                              "          table or json.\n";
static const char rm_help[] = "USAGE:\n"
                              "  outpost port-share rm [owner/]workspace[.agent] <port>\n";

/* The workspace id and agent name of "[owner/]ws[.agent]" (the agent's own spelling), via its agent. */
static int target(const struct op_client *c, const char *cmd, const char *arg, char *ws_id, size_t idlen,
                  char *agent, size_t alen)
{
    char agent_id[64], full[300];
    int rc = op_cli_find_agent(c, cmd, arg, agent_id, sizeof(agent_id), full, sizeof(full));
    if (rc) return rc;
    char *slash = strchr(full, '/'), *dot = strrchr(full, '.');
    if (!slash || !dot || dot < slash) return EX_SOFTWARE;
    snprintf(agent, alen, "%s", dot + 1);
    *dot = '\0';
    *slash = '\0';
    char path[700];
    snprintf(path, sizeof(path), "/api/v2/users/%s/workspace/%s", full, slash + 1);
    cJSON *ws = NULL;
    if ((rc = op_client_get_object(c, path, cmd, cmd + 8, "workspace", arg, &ws)) != 0) return rc;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(ws, "id");
    snprintf(ws_id, idlen, "%s", cJSON_IsString(id) ? id->valuestring : "");
    cJSON_Delete(ws);
    return 0;
}

static int parse_port(const char *cmd, const char *s, int *port)
{
    char *e;
    long v = strtol(s, &e, 10);
    if (!*s || *e || v < 9 || v > 65535) {
        fprintf(stderr, "%s: port must be a number from 9 to 65535, not \"%s\"\n", cmd, s);
        return EX_USAGE;
    }
    *port = (int)v;
    return 0;
}

static int call(const struct op_client *c, const char *cmd, const char *method, const char *ws_id,
                cJSON *body, struct op_client_resp *r)
{
    char path[200];
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s/port-share", ws_id);
    int rc = op_client_call(c, method, path, body, r);
    cJSON_Delete(body);
    (void)cmd;
    return rc;
}

static int two_args(const struct op_cli *k, int argc)
{
    if (argc - optind != 2) {
        fprintf(stderr, "%s: exactly two arguments <[owner/]workspace[.agent]> <port> are required\n",
                k->cmd);
        return EX_USAGE;
    }
    return 0;
}

/* The WORKSPACE[.AGENT] PORT arguments of add and rm: the port, the workspace's id and the agent's name
 * (signed in). 0 or the command's exit status. */
static int port_target(struct op_cli *k, int argc, char **argv, int *port, char *ws_id, size_t idlen,
                       char *agent, size_t agentlen)
{
    int rc = two_args(k, argc);
    if (rc || (rc = parse_port(k->cmd, argv[optind + 1], port)) != 0) return rc;
    if ((rc = op_client_load(&k->c, true, true)) != 0) return rc;
    return target(&k->c, k->cmd, argv[optind], ws_id, idlen, agent, agentlen);
}

static int cmd_add(int argc, char **argv)
{
    static const struct option opts[] = {
        {"level", required_argument, NULL, 'l'},
        {"protocol", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost port-share add", .help = add_help};
    const char *level = "authenticated", *proto = "http";
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "l:p:h", opts)) >= 0) {
        if (opt == 'l') level = optarg;
        if (opt == 'p') proto = optarg;
    }
    if (opt == OP_CLI_EXIT) return k.rc;
    int port = 0;
    char ws_id[64], agent[128];
    int rc = port_target(&k, argc, argv, &port, ws_id, sizeof(ws_id), agent, sizeof(agent));
    if (rc) return rc;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "agent_name", agent);
    cJSON_AddNumberToObject(b, "port", port);
    cJSON_AddStringToObject(b, "share_level", level);
    cJSON_AddStringToObject(b, "protocol", proto);
    struct op_client_resp r;
    if ((rc = call(&k.c, k.cmd, "POST", ws_id, b, &r)) != 0) return rc;
    if (r.status == 200)
        printf("Port %d of %s is shared: %s (%s)\n", port, argv[optind], level, proto);
    else
        rc = op_client_fail("port-share add", "sharing the port failed", &r);
    op_client_resp_free(&r);
    return rc;
}

static int cmd_rm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost port-share rm", .help = rm_help};
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "h", opts)) >= 0)
        continue;
    if (opt == OP_CLI_EXIT) return k.rc;
    int port = 0;
    char ws_id[64], agent[128];
    int rc = port_target(&k, argc, argv, &port, ws_id, sizeof(ws_id), agent, sizeof(agent));
    if (rc) return rc;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "agent_name", agent);
    cJSON_AddNumberToObject(b, "port", port);
    struct op_client_resp r;
    if ((rc = call(&k.c, k.cmd, "DELETE", ws_id, b, &r)) != 0) return rc;
    if (r.status == 200)
        printf("Port %d of %s is no longer shared\n", port, argv[optind]);
    else
        rc = op_client_fail("port-share rm", "removing the port share failed", &r);
    op_client_resp_free(&r);
    return rc;
}

static int cmd_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost port-share ls", .help = ls_help};
    bool json = false;
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "o:h", opts)) >= 0) {
        if (opt != 'o') continue;
        if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0) {
            fprintf(stderr, "%s: --output must be table or json\n", k.cmd);
            return EX_USAGE;
        }
        json = strcmp(optarg, "json") == 0;
    }
    if (opt == OP_CLI_EXIT) return k.rc;
    const char *arg = op_cli_one_arg(&k, argc, argv, "<[owner/]workspace>");
    if (!arg) return EX_USAGE;
    char ws_id[64], agent[128];
    int rc;
    if ((rc = op_client_load(&k.c, true, true)) != 0 ||
        (rc = target(&k.c, k.cmd, arg, ws_id, sizeof(ws_id), agent, sizeof(agent))) != 0)
        return rc;
    struct op_client_resp r;
    if ((rc = call(&k.c, k.cmd, "GET", ws_id, NULL, &r)) != 0) return rc;
    const cJSON *shares = r.json ? cJSON_GetObjectItemCaseSensitive(r.json, "shares") : NULL;
    if (r.status != 200 || !cJSON_IsArray(shares)) {
        rc = op_client_fail("port-share ls", "listing the port shares failed", &r);
    } else if (json) {
        op_json_print(stdout, shares);
    } else {
        struct op_table t;
        op_table_init(&t);
        static const char *const cols[] = {"agent_name", "port", "share_level", "protocol"};
        op_table_col(&t, "AGENT");
        op_table_col(&t, "PORT");
        op_table_col(&t, "SHARE LEVEL");
        op_table_col(&t, "PROTOCOL");
        const cJSON *s;
        cJSON_ArrayForEach(s, shares)
        {
            op_table_row(&t);
            for (size_t i = 0; i < OP_ARRAY_LEN(cols); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, cols[i]);
                char num[24];
                if (cJSON_IsNumber(v)) snprintf(num, sizeof(num), "%d", v->valueint);
                op_table_cell(&t, cJSON_IsString(v) ? v->valuestring : cJSON_IsNumber(v) ? num : "");
            }
        }
        op_table_print(&t, stdout);
        op_table_free(&t);
    }
    op_client_resp_free(&r);
    return rc;
}

int op_cmd_port_share(int argc, char **argv)
{
    static const struct op_subcmd subs[] = {
        {"add", "create", cmd_add},
        {"list", "ls", cmd_ls},
        {"remove", "rm", cmd_rm},
    };
    return op_subcmd_run("outpost port-share", group_help, subs, OP_ARRAY_LEN(subs), argc, argv);
}
