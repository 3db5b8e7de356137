/*
 * cli/ssh.c — `outpost ssh WORKSPACE[.AGENT] [--proxy NAME|primary|auto] [-- command ...]`: runs the system
 * OpenSSH client to the agent's own SSH server (agent/ssh.h, stream port 1) with ProxyCommand
 * `outpost ssh --stdio`, and host-key checking on against Outpost's known-hosts file, into which the
 * agent's key as the primary recorded it is written first. `outpost ssh --stdio HOST` is the ProxyCommand:
 * the stream on stdin/stdout (cli/stream.h), nothing else on stdout; it never touches the known-hosts
 * file, so a key changed there is refused by ssh.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "agent/ssh.h"
#include "cli/client.h"
#include "cli/cmd.h"
#include "cli/config_ssh.h"
#include "cli/stream.h"

static const char ssh_help[] =
    "USAGE:\n"
    "  outpost ssh [flags] <[owner/]workspace[.agent]> [-- command ...]\n"
    "\n"
    "  Start an SSH session to a workspace through a region with the system's\n"
    "  OpenSSH client; the agent serves SSH itself (no sshd needed in the\n"
    "  workspace). The agent's host key comes from the primary and is checked.\n"
    "\n"
    "OPTIONS:\n"
    "      --proxy string\n"
    "          The region: a workspace proxy's name, primary, or auto. Default: the\n"
    "          one set with `outpost proxy use`, else primary.\n"
    "\n"
    "      --stdio bool\n"
    "          Pipe the SSH stream to stdin/stdout (the ProxyCommand form).\n"
    "\n"
    "      --ssh-host-prefix string\n"
    "          With --stdio: strip this prefix from the host name (e.g. outpost.).\n"
    "\n"
    "  -v, --verbose bool\n"
    "          Say on stderr which region is used and how long the stream took.\n" OP_CLIENT_GLOBAL_HELP;

static int run_stdio(struct op_client *c, const char *host, const char *prefix, const char *proxy,
                     bool verbose)
{
    if (prefix && *prefix && strncmp(host, prefix, strlen(prefix)) == 0) host += strlen(prefix);
    signal(SIGPIPE, SIG_IGN);
    struct op_cli_target t;
    int rc = op_cli_target_resolve(c, "outpost ssh", host, proxy, verbose, &t);
    if (rc) return rc;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    return op_cli_stream_pipe(c, "outpost ssh", &t, OP_AGENT_SSH_PORT, verbose ? t0 : 0, STDIN_FILENO,
                              STDOUT_FILENO);
}

int op_cmd_ssh(int argc, char **argv)
{
    enum { O_PROXY = 1, O_STDIO, O_PREFIX };
    static const struct option opts[] = {
        {"proxy", required_argument, NULL, O_PROXY},
        {"stdio", no_argument, NULL, O_STDIO},
        {"ssh-host-prefix", required_argument, NULL, O_PREFIX},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_client c = {0};
    const char *proxy = NULL, *prefix = NULL;
    bool stdio = false, verbose = false;
    int opt;
    optind = 0;
    argv[0] = (char *)"outpost ssh";
    /* options may follow the workspace; a command with flags of its own comes after "--" */
    while ((opt = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
        if (op_client_global_opt(&c, opt, optarg)) continue;
        if (opt == 'h') {
            fputs(ssh_help, stdout);
            return 0;
        }
        if (opt == O_PROXY)
            proxy = optarg;
        else if (opt == O_STDIO)
            stdio = true;
        else if (opt == O_PREFIX)
            prefix = optarg;
        else if (opt == 'v')
            verbose = true;
        else {
            fprintf(stderr, "Run 'outpost ssh --help' for usage.\n");
            return EX_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "outpost ssh: a workspace is required: <[owner/]workspace[.agent]>\n");
        return EX_USAGE;
    }
    const char *ws = argv[optind++];
    if (stdio && optind < argc) {
        fprintf(stderr, "outpost ssh: --stdio takes no command\n");
        return EX_USAGE;
    }
    int rc = op_client_load(&c, true, true);
    if (rc) return rc;
    if (stdio) return run_stdio(&c, ws, prefix, proxy, verbose);

    struct op_cli_target t;
    if ((rc = op_cli_target_resolve(&c, "outpost ssh", ws, proxy, verbose, &t))) return rc;
    if (!t.ssh_host_key[0]) {
        fprintf(stderr,
                "outpost ssh: the agent %s has not reported an SSH host key (is it running with its SSH "
                "server on?)\n",
                t.full);
        return EX_UNAVAILABLE;
    }
    /* The known-hosts line for this host, from the primary; the rest of the file is kept. */
    char host[300], kh[PATH_MAX + 16];
    snprintf(host, sizeof(host), OP_SSH_HOST_PREFIX "%s", ws);
    mkdir(c.config_dir, 0700);
    snprintf(kh, sizeof(kh), "%s/known_hosts", c.config_dir);
    char *old = op_read_file(kh), *text = op_known_hosts_set(old, host, t.ssh_host_key);
    free(old);
    int w = text ? op_write_file_atomic(kh, text, 0600) : -ENOMEM;
    free(text);
    if (w) {
        fprintf(stderr, "outpost ssh: cannot write %s: %s\n", kh, strerror(-w));
        return EX_CANTCREAT;
    }
    char exe[PATH_MAX];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (el <= 0) {
        fprintf(stderr, "outpost ssh: cannot find the outpost binary: %s\n", strerror(errno));
        return EX_OSERR;
    }
    exe[el] = '\0';
    /* The ProxyCommand child finds the same session through the environment (no token on a command line). */
    setenv("CODER_CONFIG_DIR", c.config_dir, 1);
    setenv("CODER_URL", c.url, 1);
    if (c.token[0]) setenv("CODER_SESSION_TOKEN", c.token, 1);
    char pc[PATH_MAX + 400], khopt[PATH_MAX + 48];
    snprintf(pc, sizeof(pc), "ProxyCommand '%s' ssh --stdio --proxy '%s' '%s'", exe, t.region.name, ws);
    snprintf(khopt, sizeof(khopt), "UserKnownHostsFile=%s", kh);
    char *args[64 + 32];
    int n = 0;
    args[n++] = (char *)"ssh";
    const char *fixed[] = {pc,
                           khopt,
                           "GlobalKnownHostsFile=/dev/null",
                           "StrictHostKeyChecking=yes",
                           "ServerAliveInterval=15",
                           "ServerAliveCountMax=3",
                           "LogLevel=ERROR"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        args[n++] = (char *)"-o";
        args[n++] = (char *)fixed[i];
    }
    args[n++] = (char *)"--";
    args[n++] = host;
    for (; optind < argc && n < 64 + 31; optind++)
        args[n++] = argv[optind];
    args[n] = NULL;
    execvp("ssh", args);
    fprintf(stderr, "outpost ssh: cannot run ssh (install openssh-client): %s\n", strerror(errno));
    return EX_UNAVAILABLE;
}
