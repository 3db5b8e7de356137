/*
 * bench/agentd.c — the agent's own servers (agent/ssh.h and agent/pty.h, the same code `outpost agent`
 * runs in-process) on listening TCP ports, for the harness's "direct" rows: the client talks to them
 * with no relay, no agent stream and no region in between, so the other rows show what the relay path
 * adds. A bench tool, not product code: the agent itself never listens.
 *
 *   agentd [--ssh 127.0.0.1:PORT --data-dir DIR] [--pty 127.0.0.1:PORT] [--max-sessions N]
 *          [--pty-timeout-ms MS]
 *
 * --max-sessions bounds SSH sessions and terminal sessions (each); --pty-timeout-ms is how long a
 * terminal session outlives its last socket (the harness keeps it short so one row's shells are gone
 * before the next row starts).
 *
 * Runs until SIGTERM/SIGINT; every connection accepted on the SSH port is one SSH session
 * (op_agent_ssh_serve), every one on the terminal port one terminal socket (op_agent_pty_serve).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/pty.h"
#include "agent/ssh.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int listen_on(const char *hostport)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof(host)) return -EINVAL;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *ssh_addr = NULL, *pty_addr = NULL, *dir = NULL;
    int max = 16, pty_timeout = 300000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ssh") == 0)
            ssh_addr = argv[i + 1];
        else if (strcmp(argv[i], "--pty") == 0)
            pty_addr = argv[i + 1];
        else if (strcmp(argv[i], "--data-dir") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--max-sessions") == 0)
            max = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--pty-timeout-ms") == 0)
            pty_timeout = atoi(argv[i + 1]);
    }
    if ((!ssh_addr && !pty_addr) || (ssh_addr && !dir)) {
        fprintf(stderr, "usage: agentd [--ssh HOST:PORT --data-dir DIR] [--pty HOST:PORT] [--max-sessions N] "
                        "[--pty-timeout-ms MS]\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    char err[256] = "";
    struct op_agent_ssh *ssh = NULL;
    struct op_agent_pty *pty = NULL;
    struct pollfd pf[2] = {{.fd = -1, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
    int rc = 1;
    if (ssh_addr && op_agent_ssh_start(dir, max, &ssh, err, sizeof(err)) != 0) {
        fprintf(stderr, "agentd: ssh: %s\n", err);
        goto out;
    }
    struct op_agent_pty_conf pc = {.max_sessions = max, .timeout_ms = pty_timeout};
    if (pty_addr && op_agent_pty_start(&pc, &pty, err, sizeof(err)) != 0) {
        fprintf(stderr, "agentd: pty: %s\n", err);
        goto out;
    }
    const char *addrs[2] = {ssh_addr, pty_addr};
    for (int i = 0; i < 2; i++) {
        if (!addrs[i]) continue;
        pf[i].fd = listen_on(addrs[i]);
        if (pf[i].fd < 0) {
            fprintf(stderr, "agentd: cannot listen on %s: %s\n", addrs[i], strerror(-pf[i].fd));
            goto out;
        }
    }
    while (!g_stop) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "agentd: poll: %s\n", strerror(errno));
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & POLLIN)) continue;
            int fd = accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) continue;
            int r = i == 0 ? op_agent_ssh_serve(ssh, fd) : op_agent_pty_serve(pty, fd); /* fd passes */
            if (r)
                fprintf(stderr, "agentd: %s connection refused: %s\n", i == 0 ? "ssh" : "pty", strerror(-r));
        }
    }
    rc = 0;
out:
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0) close(pf[i].fd);
    if (pty) op_agent_pty_stop(pty);
    if (ssh) op_agent_ssh_stop(ssh, 1000);
    return rc;
}
