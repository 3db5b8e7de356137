/*
 * cli/tcp.c — `outpost tcp WORKSPACE[.AGENT] PORT [--proxy NAME|primary|auto]`: a byte stream to a port
 * inside a workspace through a region, on stdin/stdout (an SSH ProxyCommand). A connect token from the
 * primary (bound to the user, the agent, the port and the region), then the region's
 * /api/v2/workspaceagents/{id}/tcp Upgrade (outpost-tcp/1), then bytes both ways; stdin's EOF becomes a
 * half-close (FIN) towards the workspace, and the command ends when the workspace side closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/cmd.h"
#include "cli/region.h"
#include "cli/stream.h"
#include "cli/workspaces.h"
#include "core/common.h"
#include "tls/client.h"

#define BUF (64 * 1024)

static const char tcp_help[] =
    "USAGE:\n"
    "  outpost tcp [flags] <[owner/]workspace[.agent]> <port>\n"
    "\n"
    "  Open a byte stream to a TCP port inside a workspace through a region and\n"
    "  pipe it to stdin/stdout (e.g. ssh -o ProxyCommand='outpost tcp dev 22' dev).\n"
    "  The end of stdin half-closes the stream; it ends when the workspace side closes.\n"
    "\n"
    "OPTIONS:\n"
    "      --proxy string\n"
    "          The region: a workspace proxy's name, primary, or auto (the lowest\n"
    "          latency, picked once and remembered). Default: the one set with\n"
    "          `outpost proxy use`, else primary.\n"
    "\n"
    "  -v, --verbose bool\n"
    "          Say on stderr which region is used and how long the stream took to "
    "open.\n" OP_CLIENT_GLOBAL_HELP;

struct io {
    int fd;
    struct op_tlsc *tls;
};

static ssize_t io_read(struct io *s, void *b, size_t n)
{
    if (s->tls) return op_tlsc_read(s->tls, b, n);
    ssize_t k = recv(s->fd, b, n, 0);
    return k >= 0 ? k : (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
}

static ssize_t io_write(struct io *s, const void *b, size_t n)
{
    if (s->tls) return op_tlsc_write(s->tls, b, n);
    ssize_t k = send(s->fd, b, n, MSG_NOSIGNAL);
    return k >= 0 ? k : (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
}

/* Waits for the socket (and, with TLS, for what the session wants). */
static int wait_io(struct io *s, bool want_write, int ms)
{
    struct pollfd p = {.fd = s->fd, .events = (short)(want_write ? POLLOUT : POLLIN)};
    if (s->tls && op_tlsc_wants_write(s->tls)) p.events = POLLOUT;
    int r = poll(&p, 1, ms);
    return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : -errno;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Connects to host:port of url (TLS for https); blocking phases bounded by 10 s. */
static int dial(const char *url, struct io *s, struct op_tlsc_ctx **ctx, char *hostport, size_t hplen,
                char *err, size_t errlen)
{
    bool tls = strncasecmp(url, "https://", 8) == 0;
    const char *p = url + (tls ? 8 : strncasecmp(url, "http://", 7) == 0 ? 7 : 0);
    size_t al = strcspn(p, "/?#");
    char auth[300], host[300], port[8];
    snprintf(auth, sizeof(auth), "%.*s", (int)al, p);
    snprintf(hostport, hplen, "%s", auth);
    const char *colon = strrchr(auth, ':'), *rb = strchr(auth, ']');
    if (auth[0] == '[' && rb) {
        snprintf(host, sizeof(host), "%.*s", (int)(rb - auth - 1), auth + 1);
        snprintf(port, sizeof(port), "%s", rb[1] == ':' ? rb + 2 : tls ? "443" : "80");
    } else if (colon) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - auth), auth);
        snprintf(port, sizeof(port), "%s", colon + 1);
    } else {
        snprintf(host, sizeof(host), "%s", auth);
        snprintf(port, sizeof(port), "%s", tls ? "443" : "80");
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(g));
        return EX_UNAVAILABLE;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", auth, strerror(e));
        return EX_UNAVAILABLE;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->fd = fd;
    s->tls = NULL;
    if (!tls) return 0;
    const char *ca = getenv("CURL_CA_BUNDLE");
    if (!ca || !*ca) ca = getenv("SSL_CERT_FILE");
    if (op_tlsc_ctx_new(ca, ctx, err, errlen) != 0) return EX_CONFIG;
    s->tls = op_tlsc_new(*ctx, fd, host);
    if (!s->tls) {
        snprintf(err, errlen, "out of memory");
        return EX_OSERR;
    }
    for (;;) {
        int rc = op_tlsc_handshake(s->tls);
        if (rc == 0) return 0;
        if (rc != -EAGAIN || wait_io(s, false, 10000) != 0) {
            snprintf(err, errlen, "TLS with %s: %s", auth,
                     rc == -EAGAIN ? "timed out" : op_tlsc_error(s->tls));
            return EX_UNAVAILABLE;
        }
    }
}

static int write_all(struct io *s, const char *p, size_t n)
{
    while (n) {
        ssize_t k = io_write(s, p, n);
        if (k == -EAGAIN) {
            if (wait_io(s, true, 10000)) return -ETIMEDOUT;
            continue;
        }
        if (k < 0) return (int)k;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static bool is_pipe(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

#define SPLICE_MAX (1 << 20)

/* Plaintext stream between two pipes (OpenSSH's ProxyCommand gives us pipes): splice(2) both ways, so the
 * bytes never pass through this process. A blocked side leaves its bytes in the pipe or the socket until
 * the other side has room: no buffer here. Returns as pipe_loop does. */
static int splice_loop(int sfd, int in_fd, int out_fd)
{
    bool in_eof = false, up_blocked = false, down_blocked = false;
    const unsigned fl = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    for (;;) {
        struct pollfd p[3] = {
            {.fd = in_fd, .events = (short)(!in_eof && !up_blocked ? POLLIN : 0)},
            {.fd = sfd, .events = (short)((up_blocked ? POLLOUT : 0) | (!down_blocked ? POLLIN : 0))},
            {.fd = out_fd, .events = (short)(down_blocked ? POLLOUT : 0)}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR) continue;
            return EX_IOERR;
        }
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) ||
            (up_blocked && (p[1].revents & (POLLOUT | POLLERR)))) {
            up_blocked = false;
            for (;;) {
                ssize_t k = splice(in_fd, NULL, sfd, NULL, SPLICE_MAX, fl);
                if (k > 0) continue;
                if (k == 0) { /* stdin ended: half-close towards the workspace */
                    in_eof = true;
                    shutdown(sfd, SHUT_WR);
                } else if (errno == EAGAIN) {
                    /* the pipe is empty, or the socket is full: poll says which */
                    int avail = 0;
                    up_blocked = ioctl(in_fd, FIONREAD, &avail) == 0 && avail > 0;
                } else if (errno != EINTR) {
                    return EX_IOERR;
                } else {
                    continue;
                }
                break;
            }
        }
        if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) ||
            (down_blocked && (p[2].revents & (POLLOUT | POLLERR)))) {
            down_blocked = false;
            for (;;) {
                ssize_t k = splice(sfd, NULL, out_fd, NULL, SPLICE_MAX, fl);
                if (k > 0) continue;
                if (k == 0) return 0; /* the workspace side closed */
                if (errno == EINTR) continue;
                if (errno != EAGAIN) return EX_IOERR;
                int avail = 0; /* the socket is drained, or the pipe is full */
                down_blocked = ioctl(sfd, FIONREAD, &avail) == 0 && avail > 0;
                break;
            }
        }
        if (p[2].revents & POLLERR) return EX_IOERR;
    }
}

/* Pipes in_fd -> s and s -> out_fd until s closes. */
static int pipe_loop(struct io *s, const char *pre, size_t prelen, int in_fd, int out_fd)
{
    static char in[BUF], out[BUF];
    size_t inlen = 0, inoff = 0;
    bool in_eof = false, shut = false;
    if (prelen && write(out_fd, pre, prelen) != (ssize_t)prelen) return EX_IOERR;
    if (!s->tls && is_pipe(in_fd) && is_pipe(out_fd)) return splice_loop(s->fd, in_fd, out_fd);
    for (;;) {
        struct pollfd p[2] = {{.fd = in_fd, .events = (short)(!in_eof && inlen == inoff ? POLLIN : 0)},
                              {.fd = s->fd, .events = POLLIN}};
        if (inoff < inlen || (s->tls && op_tlsc_wants_write(s->tls))) p[1].events |= POLLOUT;
        if (!(s->tls && op_tlsc_pending(s->tls)) && poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return EX_IOERR;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = read(in_fd, in, sizeof(in));
            if (k <= 0) {
                in_eof = true;
            } else {
                inlen = (size_t)k;
                inoff = 0;
            }
        }
        while (inoff < inlen) {
            ssize_t k = io_write(s, in + inoff, inlen - inoff);
            if (k == -EAGAIN) break;
            if (k < 0) return EX_IOERR;
            inoff += (size_t)k;
        }
        if (in_eof && inoff == inlen && !shut) { /* stdin ended: half-close towards the workspace */
            if (s->tls) (void)op_tlsc_shutdown(s->tls);
            shutdown(s->fd, SHUT_WR);
            shut = true;
        }
        for (;;) {
            ssize_t k = io_read(s, out, sizeof(out));
            if (k == -EAGAIN) break;
            if (k <= 0) return k == 0 ? 0 : EX_IOERR; /* the workspace side closed */
            for (ssize_t off = 0; off < k;) {
                ssize_t w = write(out_fd, out + off, (size_t)(k - off));
                if (w <= 0) return EX_IOERR;
                off += w;
            }
        }
    }
}

static int fail_answer(const char *cmd, const char *head, const char *body, const char *region)
{
    int code = 0;
    sscanf(head, "HTTP/1.%*1[01] %3d", &code);
    cJSON *j = cJSON_Parse(body);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    fprintf(stderr, "%s: region %s refused the stream (HTTP %d): %s\n", cmd, region, code,
            cJSON_IsString(m) ? m->valuestring : "no message");
    cJSON_Delete(j);
    return code == 401 || code == 403 ? EX_NOPERM : code == 404 ? EX_DATAERR : EX_UNAVAILABLE;
}

int op_cmd_tcp(int argc, char **argv)
{
    enum { O_PROXY = 1 };
    static const struct option opts[] = {
        {"proxy", required_argument, NULL, O_PROXY},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_client c = {0};
    const char *proxy = NULL;
    bool verbose = false;
    int opt;
    optind = 0;
    argv[0] = (char *)"outpost tcp";
    while ((opt = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
        if (op_client_global_opt(&c, opt, optarg)) continue;
        if (opt == 'h') {
            fputs(tcp_help, stdout);
            return 0;
        }
        if (opt == O_PROXY) {
            proxy = optarg;
            continue;
        }
        if (opt == 'v') {
            verbose = true;
            continue;
        }
        fprintf(stderr, "Run 'outpost tcp --help' for usage.\n");
        return EX_USAGE;
    }
    if (argc - optind != 2) {
        fprintf(stderr, "outpost tcp: two arguments are required: <[owner/]workspace[.agent]> <port>\n");
        return EX_USAGE;
    }
    char *end;
    long port = strtol(argv[optind + 1], &end, 10);
    if (*end || port < 1 || port > 65535) {
        fprintf(stderr, "outpost tcp: \"%s\" is not a port (1-65535)\n", argv[optind + 1]);
        return EX_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = op_client_load(&c, true, true);
    if (rc) return rc;
    uint64_t t0 = mono_ms();
    struct op_cli_target t;
    if ((rc = op_cli_target_resolve(&c, "outpost tcp", argv[optind], proxy, verbose, &t))) return rc;
    return op_cli_stream_pipe(&c, "outpost tcp", &t, port, verbose ? t0 : 0, STDIN_FILENO, STDOUT_FILENO);
}

int op_cli_target_resolve(const struct op_client *c, const char *cmd, const char *workspace,
                          const char *proxy, bool verbose, struct op_cli_target *t)
{
    int rc;
    memset(t, 0, sizeof(*t));
    if ((rc = op_cli_find_agent_key(c, cmd, workspace, t->agent_id, sizeof(t->agent_id), t->full,
                                    sizeof(t->full), t->ssh_host_key, sizeof(t->ssh_host_key))))
        return rc;
    return op_cli_pick(c, cmd, proxy, &t->region, verbose);
}

int op_cli_stream_pipe(const struct op_client *c, const char *cmd, const struct op_cli_target *t, long port,
                       uint64_t verbose_t0, int in_fd, int out_fd)
{
    int rc;
    uint64_t t0 = verbose_t0;
    const char *agent_id = t->agent_id, *full = t->full;
    const struct op_cli_region region = t->region;
    /* The connect token: one minute, this user, this agent, this port, this region. */
    cJSON *body = cJSON_CreateObject();
    cJSON_AddNumberToObject(body, "port", (double)port);
    cJSON_AddStringToObject(body, "region", region.name);
    char path[300];
    snprintf(path, sizeof(path), "/api/v2/workspaceagents/%s/connect-token", agent_id);
    struct op_client_resp r;
    rc = op_client_call(c, "POST", path, body, &r);
    cJSON_Delete(body);
    if (rc) return rc;
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(r.json, "signed_token");
    if (r.status != 200 || !cJSON_IsString(tok)) {
        rc = op_client_fail(cmd + (strncmp(cmd, "outpost ", 8) == 0 ? 8 : 0),
                            "getting a connect token failed", &r);
        op_client_resp_free(&r);
        return rc;
    }
    char token[2048];
    snprintf(token, sizeof(token), "%s", tok->valuestring);
    op_client_resp_free(&r);
    uint64_t t1 = mono_ms();
    struct io s = {.fd = -1};
    struct op_tlsc_ctx *ctx = NULL;
    char hostport[300], err[400];
    if ((rc = dial(region.url, &s, &ctx, hostport, sizeof(hostport), err, sizeof(err)))) {
        fprintf(stderr, "%s: region %s (%s): %s\n", cmd, region.name, region.url, err);
        goto out;
    }
    char req[3000];
    int n =
        snprintf(req, sizeof(req),
                 "GET /api/v2/workspaceagents/%s/tcp?port=%ld HTTP/1.1\r\nHost: %s\r\nCoder-Connect-Token: "
                 "%s\r\nUser-Agent: outpost-cli/%s\r\nConnection: Upgrade\r\nUpgrade: outpost-tcp/1\r\n\r\n",
                 agent_id, port, hostport, token, OP_VERSION);
    memset(token, 0, sizeof(token));
    fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK);
    if (write_all(&s, req, (size_t)n) != 0) {
        fprintf(stderr, "%s: region %s: cannot send the request\n", cmd, region.name);
        rc = EX_UNAVAILABLE;
        goto out;
    }
    memset(req, 0, sizeof(req));
    /* The answer head; bytes after it are already the workspace's. */
    static char head[8192 + 1];
    size_t hl = 0;
    char *hend = NULL;
    uint64_t deadline = mono_ms() + 15000;
    while (!hend) {
        ssize_t k = io_read(&s, head + hl, sizeof(head) - 1 - hl);
        if (k == -EAGAIN) {
            if (mono_ms() > deadline || wait_io(&s, false, 1000) == -ETIMEDOUT) {
                if (mono_ms() <= deadline) continue;
                fprintf(stderr, "%s: region %s did not answer within 15 s\n", cmd, region.name);
                rc = EX_UNAVAILABLE;
                goto out;
            }
            continue;
        }
        if (k <= 0) {
            head[hl] = '\0';
            if (hl) {
                rc = fail_answer(cmd, head, strstr(head, "\r\n\r\n") ? strstr(head, "\r\n\r\n") + 4 : "",
                                 region.name);
            } else {
                fprintf(stderr, "%s: region %s closed the connection without answering\n", cmd, region.name);
                rc = EX_UNAVAILABLE;
            }
            goto out;
        }
        hl += (size_t)k;
        head[hl] = '\0';
        hend = strstr(head, "\r\n\r\n");
        if (!hend && hl == sizeof(head) - 1) {
            fprintf(stderr, "%s: region %s sent an oversized answer\n", cmd, region.name);
            rc = EX_PROTOCOL;
            goto out;
        }
    }
    int code = 0;
    sscanf(head, "HTTP/1.%*1[01] %3d", &code);
    if (code != 101) {
        /* the body (a JSON message) may still be on its way */
        const char *cl = strcasestr(head, "\r\ncontent-length:");
        size_t want = cl ? (size_t)strtoul(cl + 17, NULL, 10) : 0, have = hl - (size_t)(hend + 4 - head);
        while (have < want && hl < sizeof(head) - 1) {
            ssize_t k = io_read(&s, head + hl, sizeof(head) - 1 - hl);
            if (k == -EAGAIN) {
                if (wait_io(&s, false, 2000)) break;
                continue;
            }
            if (k <= 0) break;
            hl += (size_t)k;
            have += (size_t)k;
            head[hl] = '\0';
        }
        rc = fail_answer(cmd, head, hend + 4, region.name);
        goto out;
    }
    if (t0)
        fprintf(stderr,
                "%s: %s port %ld through region %s: stream open in %llu ms (%llu ms after the token)\n", cmd,
                full, port, region.name, (unsigned long long)(mono_ms() - t0),
                (unsigned long long)(mono_ms() - t1));
    size_t pre = hl - (size_t)(hend + 4 - head);
    rc = pipe_loop(&s, hend + 4, pre, in_fd, out_fd);
out:
    op_tlsc_free(s.tls);
    op_tlsc_ctx_free(ctx);
    if (s.fd >= 0) close(s.fd);
    return rc;
}
