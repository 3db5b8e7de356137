/* cli/main.c — `outpost <command>`: dispatch to the subcommand table. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli/cmd.h"
#include "core/common.h"

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("outpost %s\n", OP_VERSION);
    return 0;
}

static const struct op_cmd commands[] = {
    {"relay", NULL, "Run the relay engine with a static route (TLS terminator / TCP or HTTP proxy)",
     op_cmd_relay},
    {"server", NULL, "Start the primary control plane (users, workspace proxies, health)", op_cmd_server},
    {"login", NULL, "Authenticate with the primary (creates the first user on a fresh one)", op_cmd_login},
    {"logout", NULL, "Unauthenticate your local session", op_cmd_logout},
    {"wsproxy", "workspace-proxy", "Manage workspace proxies (create, ls, edit, delete, regenerate-token)",
     op_cmd_wsproxy},
    {"users", "user", "Manage users (create, list, delete)", op_cmd_users},
    {"create", NULL, "Create an external workspace and print its agent tokens", op_cmd_create},
    {"list", "ls", "List workspaces with their agents' status, apps, ports and regions", op_cmd_list},
    {"delete", "rm", "Delete a workspace and its agents", op_cmd_delete},
    {"agent-token", NULL, "Regenerate a workspace agent's token", op_cmd_agent_token},
    {"agent", NULL, "Run the workspace agent (dials out to every region, carries streams)", op_cmd_agent},
    {"tcp", NULL, "Pipe stdin/stdout to a TCP port inside a workspace through a region", op_cmd_tcp},
    {"proxy", NULL, "Choose the region for outpost tcp (ls, use NAME|primary|auto)", op_cmd_proxy},
    {"ssh", NULL, "SSH into a workspace through a region (the agent serves SSH; host key checked)",
     op_cmd_ssh},
    {"config-ssh", NULL, "Add a Host outpost.* section to ~/.ssh/config (ssh, scp, sftp, rsync)",
     op_cmd_config_ssh},
    {"port-forward", NULL, "Forward local TCP ports to ports inside a workspace through a region",
     op_cmd_port_forward},
    {"port-share", NULL, "Share workspace ports with other users or everybody (add, ls, rm)",
     op_cmd_port_share},
    {"version", NULL, "Print the version", cmd_version},
};

static void usage(FILE *out)
{
    fprintf(out, "outpost %s — workspace proxy system\n\nUsage: outpost <command> [options]\n\nCommands:\n",
            OP_VERSION);
    for (size_t i = 0; i < OP_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'outpost <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) return cmd_version(0, NULL);
    for (size_t i = 0; i < OP_ARRAY_LEN(commands); i++) {
        if (strcmp(name, commands[i].name) == 0 ||
            (commands[i].alias && strcmp(name, commands[i].alias) == 0))
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "outpost: unknown command '%s'\n\n", name);
    usage(stderr);
    return EX_USAGE;
}
