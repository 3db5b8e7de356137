/*
 * cli/cmd.h — the subcommands of the single `outpost` binary. Each returns a process exit code
 * (sysexits.h values on errors: EX_USAGE 64, EX_DATAERR 65, EX_UNAVAILABLE 69, EX_SOFTWARE 70,
 * EX_CONFIG 78, ...). Errors go to stderr and name their cause.
 */
#ifndef OP_CLI_CMD_H
#define OP_CLI_CMD_H

struct op_cmd {
    const char *name;
    const char *alias;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
};

int op_cmd_relay(int argc, char **argv);
/* Primary control plane and its admin CLI. */
int op_cmd_server(int argc, char **argv);
int op_cmd_login(int argc, char **argv);
int op_cmd_logout(int argc, char **argv);
int op_cmd_wsproxy(int argc, char **argv);
/* Users, external workspaces and their agents (cli/users.c, cli/workspaces.c). */
int op_cmd_users(int argc, char **argv);
int op_cmd_create(int argc, char **argv);
int op_cmd_list(int argc, char **argv);
int op_cmd_delete(int argc, char **argv);
int op_cmd_agent_token(int argc, char **argv);
/* `outpost wsproxy server` (wsproxy/). argv[0] is "server". */
int op_cmd_wsproxy_server(int argc, char **argv);

/* `outpost agent` (agent/): the workspace agent. */
int op_cmd_agent(int argc, char **argv);
/* `outpost tcp` and `outpost proxy ls|use`: streams to workspace ports through a chosen region. */
int op_cmd_tcp(int argc, char **argv);
int op_cmd_proxy(int argc, char **argv);
/* `outpost ssh`, `outpost config-ssh`, `outpost port-forward`: SSH and port forwarding over those streams. */
int op_cmd_ssh(int argc, char **argv);
int op_cmd_config_ssh(int argc, char **argv);
int op_cmd_port_forward(int argc, char **argv);
int op_cmd_port_share(int argc, char **argv);

#endif
