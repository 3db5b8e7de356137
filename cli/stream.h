/*
 * cli/stream.h — the streaming of `outpost tcp` (cli/tcp.c) for the commands built on it (`outpost ssh`,
 * `outpost port-forward`): resolve a workspace agent and a region once, then open any number of streams
 * to a port inside the workspace, each a connect token from the primary and the region's outpost-tcp/1
 * Upgrade, piped to a pair of descriptors.
 */
#ifndef OP_CLI_STREAM_H
#define OP_CLI_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/client.h"
#include "cli/region.h"

struct op_cli_target {
    char agent_id[64];
    char full[200];         /* owner/workspace.agent */
    char ssh_host_key[300]; /* "ssh-ed25519 AAAA..." as the agent reported it, "" if it has not */
    struct op_cli_region region;
};

/* Finds the agent of "[owner/]workspace[.agent]" and picks the region (NULL: the stored default). Prints
 * the cause and returns a sysexits code on failure. */
int op_cli_target_resolve(const struct op_client *c, const char *cmd, const char *workspace,
                          const char *proxy, bool verbose, struct op_cli_target *t);
/* Opens a stream to 127.0.0.1:port in the workspace and pipes in_fd -> stream -> out_fd until the
 * workspace side closes (in_fd's EOF half-closes the stream). verbose_t0: 0, or the monotonic ms the
 * command started at, to print the set-up time. Returns 0 or a sysexits code (cause printed, cmd first). */
int op_cli_stream_pipe(const struct op_client *c, const char *cmd, const struct op_cli_target *t, long port,
                       uint64_t verbose_t0, int in_fd, int out_fd);

#endif
