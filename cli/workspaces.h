/*
 * cli/workspaces.h — what other commands use of cli/workspaces.c: finding a workspace agent by
 * "[owner/]workspace[.agent]" (the agent may be omitted when the workspace has only one).
 */
#ifndef OP_CLI_WORKSPACES_H
#define OP_CLI_WORKSPACES_H

#include <stddef.h>

#include "cli/client.h"

/* Resolves arg to the agent's id (and "owner/workspace.agent" in full). Prints the cause and returns a
 * sysexits code on failure (EX_USAGE malformed, EX_DATAERR not found or ambiguous, or the call's). */
int op_cli_find_agent(const struct op_client *c, const char *cmd, const char *arg, char *agent_id,
                      size_t idlen, char *full, size_t fulllen);
/* The same, also copying the agent's reported SSH host key ("" when none). */
int op_cli_find_agent_key(const struct op_client *c, const char *cmd, const char *arg, char *agent_id,
                          size_t idlen, char *full, size_t fulllen, char *key, size_t keylen);

#endif
