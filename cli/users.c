/*
 * cli/users.c — `outpost users create|list|delete` against the primary's /api/v2/users API (owners
 * create and delete; anyone signed in lists). Output options as `outpost wsproxy`: -o and -c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli/client.h"
#include "cli/cmd.h"

static const char users_help[] = "USAGE:\n"
                                 "  outpost users <subcommand>\n"
                                 "\n"
                                 "  Manage users\n"
                                 "\n"
                                 "  Aliases: user\n"
                                 "\n"
                                 "SUBCOMMANDS:\n"
                                 "    create    Create a new user\n"
                                 "    delete    Delete a user by username or user_id\n"
                                 "    list      List users\n"
                                 "\n"
                                 "Run 'outpost users <subcommand> --help' for a subcommand's options.\n";

static const char create_help[] = "USAGE:\n"
                                  "  outpost users create [flags]\n"
                                  "\n"
                                  "  Create a new user (owners only)\n"
                                  "\n"
                                  "OPTIONS:\n"
                                  "  -e, --email string\n"
                                  "          Specifies an email address for the new user.\n"
                                  "\n"
                                  "  -n, --full-name string\n"
                                  "          Specifies an optional human-readable name for the new user.\n"
                                  "\n"
                                  "  -o, --output text|json (default: text)\n"
                                  "          Output format.\n"
                                  "\n"
                                  "  -p, --password string\n"
                                  "          Specifies a password for the new user (prompted for, without\n"
                                  "          echo, when omitted on a terminal).\n"
                                  "\n"
                                  "      --role owner|member (default: member)\n"
                                  "          The new user's role: owners manage users, proxies and every\n"
                                  "          workspace; members their own workspaces.\n"
                                  "\n"
                                  "  -u, --username string\n"
                                  "          Specifies a username for the new user.\n" OP_CLIENT_GLOBAL_HELP;

static const char list_help[] = "USAGE:\n"
                                "  outpost users list [flags]\n"
                                "\n"
                                "  List users\n"
                                "\n"
                                "  Aliases: ls\n"
                                "\n"
                                "OPTIONS:\n"
                                "  -c, --column [id|username|email|name|role|created at|updated at|last seen "
                                "at|status|login type] (default: username,email,role,created at,status)\n"
                                "          Columns to display in table output.\n"
                                "\n"
                                "  -o, --output table|json (default: table)\n"
                                "          Output format.\n" OP_CLIENT_GLOBAL_HELP;

static const char delete_help[] =
    "USAGE:\n"
    "  outpost users delete <username|user_id>\n"
    "\n"
    "  Delete a user by username or user_id (owners only; the user must own no\n"
    "  workspaces)\n"
    "\n"
    "  Aliases: rm\n" OP_CLIENT_GLOBAL_HELP;

enum { C_ID, C_USERNAME, C_EMAIL, C_NAME, C_ROLE, C_CREATED, C_UPDATED, C_SEEN, C_STATUS, C_LOGIN, C_NCOLS };
static const char *const col_names[C_NCOLS] = {
    "id",         "username",   "email",        "name",   "role",
    "created at", "updated at", "last seen at", "status", "login type",
};
static const char *const col_keys[C_NCOLS] = {
    "id",         "username",   "email",        "name",   NULL,
    "created_at", "updated_at", "last_seen_at", "status", "login_type",
};

static const char *role_of(const cJSON *user)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(user, "roles"))
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, "owner") == 0) return "owner";
    }
    return "member";
}

enum { U_ROLE = 1 };

static int cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"username", required_argument, NULL, 'u'},
        {"email", required_argument, NULL, 'e'},
        {"password", required_argument, NULL, 'p'},
        {"full-name", required_argument, NULL, 'n'},
        {"role", required_argument, NULL, U_ROLE},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost users create",
                       .help = create_help,
                       .formats = "text or json",
                       .o = {OP_OUT_TEXT, NULL}};
    const char *username = NULL, *email = NULL, *password = NULL, *name = NULL, *role = "member";
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "u:e:p:n:o:h", opts)) >= 0) {
        switch (opt) {
        case 'u':
            username = optarg;
            break;
        case 'e':
            email = optarg;
            break;
        case 'p':
            password = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case U_ROLE:
            role = optarg;
            break;
        }
    }
    if (opt == OP_CLI_EXIT) return k.rc;
    int rc;
    if ((rc = op_cli_no_args(&k, argc, argv, " (use --username)")) != 0 ||
        (rc = op_cli_refuse_format(&k, OP_OUT_TABLE)) != 0)
        return rc;
    if (!username || !*username || !email || !*email) {
        fprintf(stderr, "outpost users create: --username and --email are required\n");
        return EX_USAGE;
    }
    if (strcmp(role, "owner") != 0 && strcmp(role, "member") != 0) {
        fprintf(stderr, "outpost users create: --role must be owner or member\n");
        return EX_USAGE;
    }
    char pbuf[300];
    if (!password) {
        int pr = op_prompt("Password:", NULL, true, pbuf, sizeof(pbuf));
        if (pr == -ENOTTY) {
            fprintf(stderr, "outpost users create: stdin is not a terminal; pass --password\n");
            return EX_USAGE;
        }
        if (pr != 0 || !*pbuf) {
            fprintf(stderr, "outpost users create: no password entered\n");
            return EX_USAGE;
        }
        password = pbuf;
    }
    if ((rc = op_client_load(&k.c, true, true)) != 0) return rc;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "username", username);
    cJSON_AddStringToObject(b, "email", email);
    cJSON_AddStringToObject(b, "name", name ? name : "");
    cJSON_AddStringToObject(b, "password", password);
    cJSON_AddStringToObject(b, "login_type", "password");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(b, "roles"), cJSON_CreateString(role));
    struct op_client_resp r;
    rc = op_client_call(&k.c, "POST", "/api/v2/users", b, &r);
    cJSON_Delete(b);
    memset(pbuf, 0, sizeof(pbuf));
    if (rc) return rc;
    if (r.status != 201 || !cJSON_IsObject(r.json)) {
        rc = op_client_fail("users create", "creating the user failed", &r);
    } else if (k.o.fmt == OP_OUT_JSON) {
        op_json_print(stdout, r.json);
    } else {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r.json, "username");
        printf("User \"%s\" created (%s).\n", cJSON_IsString(id) ? id->valuestring : username,
               role_of(r.json));
        printf("They can sign in with:\n  outpost login %s --username %s\n", k.c.url, username);
    }
    op_client_resp_free(&r);
    return rc;
}

static int cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"column", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost users list",
                       .help = list_help,
                       .formats = "table or json",
                       .o = {OP_OUT_TABLE, NULL}};
    int opt, rc;
    while ((opt = op_cli_opt(&k, argc, argv, "o:c:h", opts)) >= 0)
        continue;
    if (opt == OP_CLI_EXIT) return k.rc;
    if ((rc = op_cli_no_args(&k, argc, argv, "")) != 0 || (rc = op_cli_refuse_format(&k, OP_OUT_TEXT)) != 0)
        return rc;
    int cols[OP_TABLE_MAX_COLS];
    int ncols = op_cli_columns(&k, "username,email,role,created at,status", col_names, C_NCOLS, cols);
    if (ncols < 0) return EX_USAGE;
    if ((rc = op_client_load(&k.c, true, true)) != 0) return rc;
    struct op_client_resp r;
    if ((rc = op_client_call(&k.c, "GET", "/api/v2/users", NULL, &r)) != 0) return rc;
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(r.json, "users");
    if (r.status != 200 || !cJSON_IsArray(users)) {
        rc = op_client_fail("users list", "listing users failed", &r);
    } else if (k.o.fmt == OP_OUT_JSON) {
        op_json_print(stdout, users);
    } else {
        struct op_table t;
        op_table_init(&t);
        for (int i = 0; i < ncols; i++)
            op_table_col(&t, col_names[cols[i]]);
        const cJSON *u;
        cJSON_ArrayForEach(u, users)
        {
            op_table_row(&t);
            for (int i = 0; i < ncols; i++) {
                const cJSON *v =
                    col_keys[cols[i]] ? cJSON_GetObjectItemCaseSensitive(u, col_keys[cols[i]]) : NULL;
                op_table_cell(&t, cols[i] == C_ROLE ? role_of(u) : cJSON_IsString(v) ? v->valuestring : "");
            }
        }
        op_table_print(&t, stdout);
        op_table_free(&t);
    }
    op_client_resp_free(&r);
    return rc;
}

static int cmd_delete(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost users delete", .help = delete_help};
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "h", opts)) >= 0)
        continue;
    if (opt == OP_CLI_EXIT) return k.rc;
    const char *ref = op_cli_one_arg(&k, argc, argv, "<username|user_id>");
    if (!ref) return EX_USAGE;
    if (!*ref || strlen(ref) > 64 || strchr(ref, '/') || strchr(ref, '?') || strchr(ref, '%')) {
        fprintf(stderr, "outpost users delete: user \"%s\" not found\n", ref);
        return EX_DATAERR;
    }
    int rc = op_client_load(&k.c, true, true);
    if (rc) return rc;
    char path[128];
    snprintf(path, sizeof(path), "/api/v2/users/%s", ref);
    struct op_client_resp r;
    if ((rc = op_client_call(&k.c, "DELETE", path, NULL, &r)) != 0) return rc;
    if (r.status == 404) {
        fprintf(stderr, "outpost users delete: user \"%s\" not found\n", ref);
        rc = EX_DATAERR;
    } else if (r.status == 417) {
        /* The user still owns workspaces: a data problem the caller can fix, not a protocol error. */
        op_client_fail("users delete", "deleting the user failed", &r);
        rc = EX_DATAERR;
    } else if (r.status != 200) {
        rc = op_client_fail("users delete", "deleting the user failed", &r);
    } else {
        printf("User \"%s\" deleted successfully\n", ref);
    }
    op_client_resp_free(&r);
    return rc;
}

int op_cmd_users(int argc, char **argv)
{
    static const struct op_subcmd subs[] = {
        {"create", NULL, cmd_create},
        {"list", "ls", cmd_list},
        {"delete", "rm", cmd_delete},
    };
    return op_subcmd_run("outpost users", users_help, subs, OP_ARRAY_LEN(subs), argc, argv);
}
