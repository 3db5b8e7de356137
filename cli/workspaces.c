/*
 * cli/workspaces.c — `outpost create|list|delete|agent-token` for external workspaces: the record is made
 * here, an agent running wherever the workspace is brings it to life with the token printed once.
 * A workspace is named "[owner/]name" (the caller's own when no owner is given), an agent
 * "[owner/]workspace[.agent]". Output options as `outpost wsproxy`: -o and -c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "cli/client.h"
#include "cli/workspaces.h"
#include "cli/cmd.h"

#define MAX_AGENTS 16

static const char create_help[] =
    "USAGE:\n"
    "  outpost create [flags] <name>\n"
    "\n"
    "  Create an external workspace. Each agent's token is printed once: run\n"
    "  `outpost agent` with it wherever the workspace is (a VM, a container, a\n"
    "  laptop) to bring the workspace to life.\n"
    "\n"
    "OPTIONS:\n"
    "      --agent string\n"
    "          Name of an agent in the workspace; repeat for several (default:\n"
    "          one agent named main).\n"
    "\n"
    "  -o, --output text|json (default: text)\n"
    "          Output format.\n"
    "\n"
    "      --owner string (default: me)\n"
    "          The user who owns the workspace (owners may create workspaces\n"
    "          for others). \"<owner>/<name>\" works too.\n" OP_CLIENT_GLOBAL_HELP;

static const char list_help[] =
    "USAGE:\n"
    "  outpost list [flags]\n"
    "\n"
    "  List workspaces, one row per agent\n"
    "\n"
    "  Aliases: ls\n"
    "\n"
    "OPTIONS:\n"
    "  -a, --all bool\n"
    "          Show every workspace you can see (owners: all users'), not only\n"
    "          yours.\n"
    "\n"
    "  -c, --column [workspace|owner|name|agent|status|lifecycle|apps|ports|regions|last "
    "seen|version|id|agent "
    "id] (default: workspace,agent,status,apps,ports,regions)\n"
    "          Columns to display in table output.\n"
    "\n"
    "  -o, --output table|json (default: table)\n"
    "          Output format.\n" OP_CLIENT_GLOBAL_HELP;

static const char delete_help[] = "USAGE:\n"
                                  "  outpost delete [flags] <[owner/]workspace>\n"
                                  "\n"
                                  "  Delete a workspace and its agents (their tokens stop working)\n"
                                  "\n"
                                  "  Aliases: rm\n"
                                  "\n"
                                  "OPTIONS:\n"
                                  "  -y, --yes bool\n"
                                  "          Bypass prompts.\n" OP_CLIENT_GLOBAL_HELP;

static const char token_help[] =
    "USAGE:\n"
    "  outpost agent-token <[owner/]workspace[.agent]>\n"
    "\n"
    "  Regenerate an agent's token. The old token stops working at once; the\n"
    "  new one is printed once. The agent may be omitted when the workspace has\n"
    "  only one.\n" OP_CLIENT_GLOBAL_HELP;

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

struct ws_ref {
    char owner[64]; /* "me" when not given */
    char name[64];
    char agent[64]; /* "" when not given */
};

/* Parses "[owner/]name[.agent]"; prints the cause and returns EX_USAGE when malformed. */
static int parse_ref(const char *cmd, const char *arg, bool with_agent, struct ws_ref *r)
{
    memset(r, 0, sizeof(*r));
    char buf[200];
    snprintf(buf, sizeof(buf), "%s", arg);
    char *name = buf, *slash = strchr(buf, '/'), *dot;
    snprintf(r->owner, sizeof(r->owner), "me");
    if (slash) {
        *slash = '\0';
        snprintf(r->owner, sizeof(r->owner), "%.63s", buf);
        name = slash + 1;
    }
    if (with_agent && (dot = strchr(name, '.')) != NULL) {
        *dot = '\0';
        snprintf(r->agent, sizeof(r->agent), "%.63s", dot + 1);
        if (!name_ok(r->agent)) goto bad;
    }
    snprintf(r->name, sizeof(r->name), "%.63s", name);
    if (strlen(arg) >= sizeof(buf) || !name_ok(r->owner) || !name_ok(r->name)) goto bad;
    return 0;
bad:
    fprintf(stderr, "%s: \"%s\" is not a workspace name (expected [owner/]name%s)\n", cmd, arg,
            with_agent ? "[.agent]" : "");
    return EX_USAGE;
}

/* GET /api/v2/users/<owner>/workspace/<name>; on success *ws owns the JSON. */
static int fetch_ws(const struct op_client *c, const char *cmd, const char *arg, const struct ws_ref *r,
                    cJSON **ws)
{
    char path[300];
    snprintf(path, sizeof(path), "/api/v2/users/%s/workspace/%s", r->owner, r->name);
    return op_client_get_object(c, path, cmd, cmd + strlen("outpost "), "workspace", arg, ws);
}

static const cJSON *agents_of(const cJSON *ws)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(ws, "latest_build");
    const cJSON *res = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "resources"), 0);
    return cJSON_GetObjectItemCaseSensitive(res, "agents");
}

enum { O_AGENT = 1, O_OWNER };

int op_cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"agent", required_argument, NULL, O_AGENT},
        {"owner", required_argument, NULL, O_OWNER},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {
        .cmd = "outpost create", .help = create_help, .formats = "text or json", .o = {OP_OUT_TEXT, NULL}};
    const char *agents[MAX_AGENTS], *owner = NULL;
    int nagents = 0, opt;
    while ((opt = op_cli_opt(&k, argc, argv, "o:h", opts)) >= 0) {
        switch (opt) {
        case O_AGENT:
            if (nagents == MAX_AGENTS) {
                fprintf(stderr, "outpost create: at most %d agents\n", MAX_AGENTS);
                return EX_USAGE;
            }
            agents[nagents++] = optarg;
            break;
        case O_OWNER:
            owner = optarg;
            break;
        }
    }
    if (opt == OP_CLI_EXIT) return k.rc;
    int rc = op_cli_refuse_format(&k, OP_OUT_TABLE);
    if (rc) return rc;
    const char *arg = op_cli_one_arg(&k, argc, argv, "<name>");
    if (!arg) return EX_USAGE;
    struct ws_ref r;
    if ((rc = parse_ref(k.cmd, arg, false, &r)) != 0) return rc;
    if (owner) {
        if (strchr(arg, '/') || !name_ok(owner)) {
            fprintf(stderr, "outpost create: give the owner either as --owner or as <owner>/<name>, once\n");
            return EX_USAGE;
        }
        snprintf(r.owner, sizeof(r.owner), "%s", owner);
    }
    for (int i = 0; i < nagents; i++) {
        if (!name_ok(agents[i])) {
            fprintf(stderr, "outpost create: agent name \"%s\" is invalid (letters, digits and hyphens)\n",
                    agents[i]);
            return EX_USAGE;
        }
    }
    if ((rc = op_client_load(&k.c, true, true)) != 0) return rc;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", r.name);
    if (nagents) {
        cJSON *arr = cJSON_AddArrayToObject(b, "agents");
        for (int i = 0; i < nagents; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(agents[i]));
    }
    char path[200];
    snprintf(path, sizeof(path), "/api/v2/users/%s/workspaces", r.owner);
    struct op_client_resp resp;
    rc = op_client_call(&k.c, "POST", path, b, &resp);
    cJSON_Delete(b);
    if (rc) return rc;
    if (resp.status == 404) {
        fprintf(stderr, "outpost create: user \"%s\" not found\n", r.owner);
        rc = EX_DATAERR;
    } else if (resp.status != 201 || !cJSON_IsObject(resp.json)) {
        rc = op_client_fail("create", "creating the workspace failed", &resp);
    } else if (k.o.fmt == OP_OUT_JSON) {
        op_json_print(stdout, resp.json);
    } else {
        printf("Workspace \"%s/%s\" created. Save the agent token%s, %s will not be shown again.\n",
               jstr(resp.json, "owner_name"), jstr(resp.json, "name"),
               cJSON_GetArraySize(cJSON_GetObjectItem(resp.json, "agent_tokens")) > 1 ? "s" : "",
               cJSON_GetArraySize(cJSON_GetObjectItem(resp.json, "agent_tokens")) > 1 ? "they" : "it");
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(resp.json, "agent_tokens"))
        {
            printf("\nAgent \"%s\":\n", jstr(t, "agent_name"));
            printf("CODER_AGENT_TOKEN=%s\n", jstr(t, "token"));
        }
        printf("\nStart each agent where the workspace runs (a VM, a container, a laptop) with its token:\n");
        printf("  CODER_AGENT_URL=%s CODER_AGENT_TOKEN=<token> outpost agent\n", k.c.url);
    }
    op_client_resp_free(&resp);
    return rc;
}

enum {
    C_WS,
    C_OWNER,
    C_NAME,
    C_AGENT,
    C_STATUS,
    C_LIFE,
    C_APPS,
    C_PORTS,
    C_REGIONS,
    C_SEEN,
    C_VERSION,
    C_ID,
    C_AGENT_ID,
    C_NCOLS
};
static const char *const col_names[C_NCOLS] = {
    "workspace", "owner",   "name",      "agent",   "status", "lifecycle", "apps",
    "ports",     "regions", "last seen", "version", "id",     "agent id",
};

/* Joins the member key (or the element itself when key is NULL) of each element of arr with ",". */
static void join(const cJSON *arr, const char *key, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *v = key ? cJSON_GetObjectItemCaseSensitive(it, key) : it;
        char num[24];
        const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
        if (cJSON_IsNumber(v)) {
            snprintf(num, sizeof(num), "%d", (int)v->valuedouble);
            s = num;
        }
        if (!s) continue;
        int w = snprintf(out + o, outlen - o, "%s%s", o ? "," : "", s);
        if (w < 0 || (size_t)w >= outlen - o) break;
        o += (size_t)w;
    }
}

/* "8000(python3),22": each port with the name of the process listening on it, when the agent knew it. */
static void ports_cell(const cJSON *arr, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *port = cJSON_GetObjectItemCaseSensitive(it, "port");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "process_name");
        if (!cJSON_IsNumber(port)) continue;
        bool named = cJSON_IsString(name) && name->valuestring[0];
        int w = snprintf(out + o, outlen - o, "%s%d%s%s%s", o ? "," : "", (int)port->valuedouble,
                         named ? "(" : "", named ? name->valuestring : "", named ? ")" : "");
        if (w < 0 || (size_t)w >= outlen - o) break;
        o += (size_t)w;
    }
}

static void cell(struct op_table *t, const cJSON *ws, const cJSON *agent, int col)
{
    char buf[1024];
    switch (col) {
    case C_WS:
        snprintf(buf, sizeof(buf), "%s/%s", jstr(ws, "owner_name"), jstr(ws, "name"));
        op_table_cell(t, buf);
        break;
    case C_OWNER:
        op_table_cell(t, jstr(ws, "owner_name"));
        break;
    case C_NAME:
        op_table_cell(t, jstr(ws, "name"));
        break;
    case C_AGENT:
        op_table_cell(t, jstr(agent, "name"));
        break;
    case C_STATUS:
        op_table_cell(t, jstr(agent, "status"));
        break;
    case C_LIFE:
        op_table_cell(t, jstr(agent, "lifecycle_state"));
        break;
    case C_APPS:
        join(cJSON_GetObjectItemCaseSensitive(agent, "apps"), "slug", buf, sizeof(buf));
        op_table_cell(t, buf);
        break;
    case C_PORTS:
        ports_cell(cJSON_GetObjectItemCaseSensitive(agent, "listening_ports"), buf, sizeof(buf));
        op_table_cell(t, buf);
        break;
    case C_REGIONS:
        join(cJSON_GetObjectItemCaseSensitive(agent, "regions"), NULL, buf, sizeof(buf));
        op_table_cell(t, buf);
        break;
    case C_SEEN:
        op_table_cell(t, jstr(agent, "last_connected_at"));
        break;
    case C_VERSION:
        op_table_cell(t, jstr(agent, "version"));
        break;
    case C_ID:
        op_table_cell(t, jstr(ws, "id"));
        break;
    case C_AGENT_ID:
        op_table_cell(t, jstr(agent, "id"));
        break;
    default:
        op_table_cell(t, "");
    }
}

/* The agent of ws that ref names, or its only agent when ref names none; NULL after printing
 * "<cmd>: workspace ... has no agent ..." or "... has several agents ...". */
static const cJSON *pick_agent(const char *cmd, const struct ws_ref *ref, const cJSON *ws)
{
    const cJSON *agents = agents_of(ws), *a, *found = NULL;
    cJSON_ArrayForEach(a, agents)
    {
        if (*ref->agent ? strcasecmp(jstr(a, "name"), ref->agent) == 0 : cJSON_GetArraySize(agents) == 1)
            found = a;
    }
    if (!found) {
        char names[512];
        join(agents, "name", names, sizeof(names));
        fprintf(stderr,
                *ref->agent ? "%s: workspace \"%s\" has no agent \"%s\" (its agents: %s)\n"
                            : "%s: workspace \"%s\" has several agents; name one as %s.<agent> (%s)\n",
                cmd, ref->name, *ref->agent ? ref->agent : ref->name, names);
    }
    return found;
}

int op_cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'},
        {"output", required_argument, NULL, 'o'},
        {"column", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {
        .cmd = "outpost list", .help = list_help, .formats = "table or json", .o = {OP_OUT_TABLE, NULL}};
    bool all = false;
    int opt, rc;
    while ((opt = op_cli_opt(&k, argc, argv, "ao:c:h", opts)) >= 0)
        all = all || opt == 'a';
    if (opt == OP_CLI_EXIT) return k.rc;
    if ((rc = op_cli_no_args(&k, argc, argv, "")) != 0 || (rc = op_cli_refuse_format(&k, OP_OUT_TEXT)) != 0)
        return rc;
    int cols[OP_TABLE_MAX_COLS];
    int ncols = op_cli_columns(&k, "workspace,agent,status,apps,ports,regions", col_names, C_NCOLS, cols);
    if (ncols < 0) return EX_USAGE;
    if ((rc = op_client_load(&k.c, true, true)) != 0) return rc;
    struct op_client_resp r;
    if ((rc = op_client_call(&k.c, "GET", all ? "/api/v2/workspaces" : "/api/v2/workspaces?q=owner:me", NULL,
                             &r)) != 0)
        return rc;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r.json, "workspaces");
    if (r.status != 200 || !cJSON_IsArray(list)) {
        rc = op_client_fail("list", "listing workspaces failed", &r);
    } else if (k.o.fmt == OP_OUT_JSON) {
        op_json_print(stdout, list);
    } else {
        struct op_table t;
        op_table_init(&t);
        for (int i = 0; i < ncols; i++)
            op_table_col(&t, col_names[cols[i]]);
        const cJSON *ws, *agent;
        cJSON_ArrayForEach(ws, list)
        {
            cJSON_ArrayForEach(agent, agents_of(ws))
            {
                op_table_row(&t);
                for (int i = 0; i < ncols; i++)
                    cell(&t, ws, agent, cols[i]);
            }
        }
        op_table_print(&t, stdout);
        op_table_free(&t);
    }
    op_client_resp_free(&r);
    return rc;
}

int op_cmd_delete(int argc, char **argv)
{
    static const struct option opts[] = {
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost delete", .help = delete_help};
    bool yes = false;
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "yh", opts)) >= 0)
        yes = yes || opt == 'y';
    if (opt == OP_CLI_EXIT) return k.rc;
    const char *arg = op_cli_one_arg(&k, argc, argv, "<[owner/]workspace>");
    if (!arg) return EX_USAGE;
    struct ws_ref ref;
    int rc = parse_ref(k.cmd, arg, false, &ref);
    cJSON *ws = NULL;
    if (rc || (rc = op_client_load(&k.c, true, true)) != 0 ||
        (rc = fetch_ws(&k.c, k.cmd, arg, &ref, &ws)) != 0)
        return rc;
    char full[200];
    snprintf(full, sizeof(full), "%s/%s", jstr(ws, "owner_name"), jstr(ws, "name"));
    if (!yes) {
        char q[300];
        snprintf(q, sizeof(q), "Delete workspace %s and its agents? (yes/no)", full);
        if ((rc = op_confirm(k.cmd, q)) != 0) {
            cJSON_Delete(ws);
            return rc;
        }
    }
    char path[200], done[300];
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s", jstr(ws, "id"));
    snprintf(done, sizeof(done), "Workspace \"%s\" deleted successfully", full);
    cJSON_Delete(ws);
    return op_client_delete(&k.c, path, "delete", "workspace", done);
}

int op_cmd_agent_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost agent-token", .help = token_help};
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "h", opts)) >= 0)
        continue;
    if (opt == OP_CLI_EXIT) return k.rc;
    const char *arg = op_cli_one_arg(&k, argc, argv, "<[owner/]workspace[.agent]>");
    if (!arg) return EX_USAGE;
    struct ws_ref ref;
    int rc = parse_ref(k.cmd, arg, true, &ref);
    cJSON *ws = NULL;
    if (rc || (rc = op_client_load(&k.c, true, true)) != 0 ||
        (rc = fetch_ws(&k.c, k.cmd, arg, &ref, &ws)) != 0)
        return rc;
    const cJSON *found = pick_agent(k.cmd, &ref, ws);
    if (!found) {
        cJSON_Delete(ws);
        return EX_DATAERR;
    }
    char path[300], agent[64], full[200];
    snprintf(agent, sizeof(agent), "%s", jstr(found, "name"));
    snprintf(full, sizeof(full), "%s/%s", jstr(ws, "owner_name"), jstr(ws, "name"));
    snprintf(path, sizeof(path), "/api/v2/workspaces/%s/external-agent/%s/credentials", jstr(ws, "id"),
             agent);
    cJSON_Delete(ws);
    struct op_client_resp r;
    if ((rc = op_client_call(&k.c, "POST", path, NULL, &r)) != 0) return rc;
    if (r.status != 200 || !*jstr(r.json, "agent_token")) {
        rc = op_client_fail("agent-token", "regenerating the agent token failed", &r);
    } else {
        printf(
            "New token for agent \"%s\" of workspace \"%s\"; the old one no longer works. Save it, it will "
            "not be shown again.\n",
            agent, full);
        printf("CODER_AGENT_TOKEN=%s\n", jstr(r.json, "agent_token"));
    }
    op_client_resp_free(&r);
    return rc;
}

int op_cli_find_agent(const struct op_client *c, const char *cmd, const char *arg, char *agent_id,
                      size_t idlen, char *full, size_t fulllen)
{
    char key[8];
    return op_cli_find_agent_key(c, cmd, arg, agent_id, idlen, full, fulllen, key, sizeof(key));
}

int op_cli_find_agent_key(const struct op_client *c, const char *cmd, const char *arg, char *agent_id,
                          size_t idlen, char *full, size_t fulllen, char *key, size_t keylen)
{
    struct ws_ref ref;
    cJSON *ws = NULL;
    int rc = parse_ref(cmd, arg, true, &ref);
    if (rc || (rc = fetch_ws(c, cmd, arg, &ref, &ws)) != 0) return rc;
    const cJSON *found = pick_agent(cmd, &ref, ws);
    if (!found) {
        cJSON_Delete(ws);
        return EX_DATAERR;
    }
    snprintf(agent_id, idlen, "%s", jstr(found, "id"));
    snprintf(full, fulllen, "%s/%s.%s", jstr(ws, "owner_name"), jstr(ws, "name"), jstr(found, "name"));
    snprintf(key, keylen, "%s", jstr(found, "ssh_host_key"));
    cJSON_Delete(ws);
    return 0;
}
