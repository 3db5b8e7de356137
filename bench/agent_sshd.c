/*
 * bench/agent_sshd.c — the agent's SSH server (agent/ssh.h, the same code `outpost agent` runs) on a
 * listening TCP port, for the harness's "direct" SSH row: the OpenSSH client talks to it with no relay,
 * no agent stream and no region in between, so the workload's other rows show what the relay path adds.
 * A bench tool, not product code: the agent itself never listens.
 *
 *   agent_sshd --listen 127.0.0.1:PORT --data-dir DIR [--max-sessions N]
 *
 * Runs until SIGTERM/SIGINT; every accepted connection is one SSH session (op_agent_ssh_serve).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    const char *addr = NULL, *dir = NULL;
    int max = 16;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            addr = argv[i + 1];
        else if (strcmp(argv[i], "--data-dir") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--max-sessions") == 0)
            max = atoi(argv[i + 1]);
    }
    if (!addr || !dir) {
        fprintf(stderr, "usage: agent_sshd --listen HOST:PORT --data-dir DIR [--max-sessions N]\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: accept returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    char err[256] = "";
    struct op_agent_ssh *s = NULL;
    if (op_agent_ssh_start(dir, max, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "agent_sshd: %s\n", err);
        return 1;
    }
    int lfd = listen_on(addr);
    if (lfd < 0) {
        fprintf(stderr, "agent_sshd: cannot listen on %s: %s\n", addr, strerror(-lfd));
        op_agent_ssh_stop(s, 0);
        return 1;
    }
    while (!g_stop) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            fprintf(stderr, "agent_sshd: accept: %s\n", strerror(errno));
            break;
        }
        int rc = op_agent_ssh_serve(s, fd); /* fd is the server's in every case */
        if (rc) fprintf(stderr, "agent_sshd: session refused: %s\n", strerror(-rc));
    }
    close(lfd);
    op_agent_ssh_stop(s, 1000);
    return 0;
}
