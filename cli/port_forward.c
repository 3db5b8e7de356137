/*
 * cli/port_forward.c — `outpost port-forward WORKSPACE[.AGENT] --tcp [ADDR:]LOCAL:REMOTE [--tcp ...]
 * [--proxy NAME|primary|auto]`: listeners on 127.0.0.1:LOCAL (or ADDR); each accepted connection becomes
 * its own stream to 127.0.0.1:REMOTE inside the workspace (cli/stream.h), carried by a child process, so
 * one slow or stuck connection never holds up another. The agent and the region are resolved once.
 * SIGINT/SIGTERM close the listeners, end the streams (SIGTERM to the children) and exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/cmd.h"
#include "cli/stream.h"

#define MAX_FWD   32
#define MAX_CHILD 1024

static const char pf_help[] =
    "USAGE:\n"
    "  outpost port-forward [flags] <[owner/]workspace[.agent]> --tcp [addr:]local:remote ...\n"
    "\n"
    "  Forward local TCP ports to ports inside a workspace through a region: every\n"
    "  connection accepted on 127.0.0.1:local (or addr:local) is a new stream to\n"
    "  127.0.0.1:remote in the workspace. Ctrl-C stops.\n"
    "\n"
    "OPTIONS:\n"
    "      --tcp string\n"
    "          [addr:]local:remote, repeatable.\n"
    "\n"
    "      --proxy string\n"
    "          The region: a workspace proxy's name, primary, or auto. Default: the\n"
    "          one set with `outpost proxy use`, else primary.\n"
    "\n"
    "  -v, --verbose bool\n"
    "          Log each connection and its stream's set-up time on stderr.\n" OP_CLIENT_GLOBAL_HELP;

struct fwd {
    char addr[64];
    int local, remote;
    int fd;
};

static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
    stop_sig = sig;
}

static int parse_spec(const char *spec, struct fwd *f)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *last = strrchr(buf, ':');
    if (!last) return -1;
    *last = '\0';
    char *mid = strrchr(buf, ':');
    const char *local = mid ? mid + 1 : buf;
    if (mid) *mid = '\0';
    if (strlen(mid ? buf : "127.0.0.1") >= sizeof(f->addr)) return -1;
    strcpy(f->addr, mid ? buf : "127.0.0.1");
    char *e1, *e2;
    long l = strtol(local, &e1, 10), r = strtol(last + 1, &e2, 10);
    if (*e1 || *e2 || !*local || !last[1] || l < 1 || l > 65535 || r < 1 || r > 65535) return -1;
    struct in_addr a;
    if (inet_pton(AF_INET, f->addr, &a) != 1) return -1;
    f->local = (int)l;
    f->remote = (int)r;
    return 0;
}

static int listen_on(struct fwd *f)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->local)};
    inet_pton(AF_INET, f->addr, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0) return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 512) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    f->fd = fd;
    return 0;
}

int op_cmd_port_forward(int argc, char **argv)
{
    enum { O_TCP = 1, O_PROXY };
    static const struct option opts[] = {
        {"tcp", required_argument, NULL, O_TCP},
        {"proxy", required_argument, NULL, O_PROXY},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    static struct fwd fw[MAX_FWD];
    int nfw = 0;
    struct op_client c = {0};
    const char *proxy = NULL;
    bool verbose = false;
    int opt;
    optind = 0;
    argv[0] = (char *)"outpost port-forward";
    while ((opt = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
        if (op_client_global_opt(&c, opt, optarg)) continue;
        if (opt == 'h') {
            fputs(pf_help, stdout);
            return 0;
        }
        if (opt == O_TCP) {
            if (nfw == MAX_FWD || parse_spec(optarg, &fw[nfw]) != 0) {
                fprintf(stderr,
                        "outpost port-forward: --tcp \"%s\": expected [addr:]local:remote (ports 1-65535, "
                        "an IPv4 address; at most %d)\n",
                        optarg, MAX_FWD);
                return EX_USAGE;
            }
            nfw++;
        } else if (opt == O_PROXY) {
            proxy = optarg;
        } else if (opt == 'v') {
            verbose = true;
        } else {
            fprintf(stderr, "Run 'outpost port-forward --help' for usage.\n");
            return EX_USAGE;
        }
    }
    if (argc - optind != 1 || nfw == 0) {
        fprintf(stderr,
                "outpost port-forward: one workspace and at least one --tcp local:remote are required\n");
        return EX_USAGE;
    }
    int rc = op_client_load(&c, true, true);
    if (rc) return rc;
    struct op_cli_target t;
    if ((rc = op_cli_target_resolve(&c, "outpost port-forward", argv[optind], proxy, verbose, &t))) return rc;
    for (int i = 0; i < nfw; i++) {
        int e = listen_on(&fw[i]);
        if (e) {
            fprintf(stderr, "outpost port-forward: cannot listen on %s:%d: %s\n", fw[i].addr, fw[i].local,
                    strerror(-e));
            for (int j = 0; j < i; j++)
                close(fw[j].fd);
            return EX_UNAVAILABLE;
        }
        printf("Forwarding %s:%d -> %s port %d (region %s)\n", fw[i].addr, fw[i].local, t.full, fw[i].remote,
               t.region.name);
    }
    fflush(stdout);
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    static pid_t kids[MAX_CHILD];
    int nkids = 0;
    struct pollfd pf[MAX_FWD];
    while (!stop_sig) {
        for (int i = 0; i < nfw; i++)
            pf[i] = (struct pollfd){.fd = fw[i].fd, .events = POLLIN};
        int pr = poll(pf, (nfds_t)nfw, 500);
        /* reap the streams that ended */
        for (pid_t p; (p = waitpid(-1, NULL, WNOHANG)) > 0;)
            for (int k = 0; k < nkids; k++)
                if (kids[k] == p) {
                    kids[k] = kids[--nkids];
                    break;
                }
        if (pr <= 0) continue;
        for (int i = 0; i < nfw; i++) {
            if (!(pf[i].revents & POLLIN)) continue;
            for (;;) {
                int cfd = accept4(fw[i].fd, NULL, NULL, SOCK_CLOEXEC);
                if (cfd < 0) break;
                if (nkids == MAX_CHILD) {
                    fprintf(stderr, "outpost port-forward: %d connections open: refusing another\n",
                            MAX_CHILD);
                    close(cfd);
                    continue;
                }
                pid_t p = fork();
                if (p == 0) {
                    signal(SIGINT, SIG_DFL);
                    signal(SIGTERM, SIG_DFL);
                    for (int j = 0; j < nfw; j++)
                        close(fw[j].fd);
                    struct timespec ts;
                    clock_gettime(CLOCK_MONOTONIC, &ts);
                    uint64_t t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
                    int r = op_cli_stream_pipe(&c, "outpost port-forward", &t, fw[i].remote, verbose ? t0 : 0,
                                               cfd, cfd);
                    shutdown(cfd, SHUT_RDWR);
                    close(cfd);
                    _exit(r);
                }
                close(cfd);
                if (p > 0)
                    kids[nkids++] = p;
                else
                    fprintf(stderr, "outpost port-forward: cannot fork: %s\n", strerror(errno));
            }
        }
    }
    for (int i = 0; i < nfw; i++)
        close(fw[i].fd);
    for (int k = 0; k < nkids; k++)
        kill(kids[k], SIGTERM);
    for (int k = 0; k < nkids; k++)
        waitpid(kids[k], NULL, 0);
    fprintf(stderr, "outpost port-forward: %s: listeners closed, %d stream%s ended\n",
            stop_sig == SIGINT ? "interrupted" : "terminated", nkids, nkids == 1 ? "" : "s");
    return 0;
}
