/*
 * agent/relay_stream.c — streams: a parked spare's OPEN line is checked (loopback of this workspace, or
 * an app URL's host), the target is dialed (bounded by the dial timeout), OK or ERR is answered, then the
 * pump moves bytes both ways. A conn's `out` holds the bytes still to be written to it and the pump reads
 * one side straight into the other side's `out`, so each direction is bounded by one buffer
 * (STREAM_BUF): a full buffer stops reading that side until the other drains. A FIN read on one side
 * becomes shutdown(SHUT_WR) (close_notify first on TLS) on the other once its buffer is drained; the
 * stream ends when both directions have.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/pty.h"
#include "agent/relay_int.h"
#include "agent/ssh.h"
#include "agent/tcp_ws.h"
#include "core/log.h"

/* ---- streams --------------------------------------------------------------------------------------------
 */

static void stream_fail_frame(struct op_relay *r, struct conn *spare, uint16_t port, int code,
                              const char *why)
{
    (void)r;
    struct region *rg = spare->rg;
    if (!rg || !rg->up || !rg->ctl) return;
    struct op_af_frame f = {.type = OP_AF_STREAM_FAIL,
                            .port = port ? port : 1,
                            .code = (uint16_t)code,
                            .text = why,
                            .text_len = strlen(why)};
    (void)ar_send_frame(rg->ctl, &f);
}

/* Answers ERR on the spare and closes it once written. */
void ar_refuse(struct op_relay *r, struct conn *spare, uint16_t port, int code, const char *why)
{
    op_warn("agent", "region %s: stream to %s refused: %s", spare->rname, spare->target, why);
    char line[LINE_MAX];
    int n = snprintf(line, sizeof(line), "ERR %d %s\n", code, why);
    if (n > 0) (void)ar_queue(spare, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    stream_fail_frame(r, spare, port, code, why);
    if (spare->rg && spare->st != S_DIALING) spare->rg->nspares--;
    spare->st = S_FLUSH;
    spare->deadline = now_ms() + 2000;
    if (spare->peer) {
        struct conn *t = spare->peer;
        spare->peer = NULL;
        t->peer = NULL;
        ar_conn_close(r, t);
    }
}

/* May a stream dial host:port? Loopback always; another host only when an app's URL names it. */
static bool target_allowed(struct op_relay *r, const char *host, uint16_t port)
{
    if (op_agent_host_is_loopback(host)) return true;
    for (int i = 0; i < r->conf.napps; i++)
        if (strcasecmp(r->conf.apps[i].host, host) == 0 && r->conf.apps[i].port == port) return true;
    return false;
}

static int resolve_target(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof(*ss));
    size_t n = strlen(host);
    if (n && host[n - 1] == '.') n--;
    bool lo_name = (n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
                   (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (lo_name) { /* RFC 6761: never sent to a resolver */
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *sl = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *sl = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *sl = sizeof(*a6);
        return 0;
    }
    /* An app's host name: resolved here, once per stream (app hosts are the exception, not the rule). */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0 || !res) return -EHOSTUNREACH;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sl = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* A socketpair: one end to the agent's own SSH or terminal server, the other relayed as the stream's
 * target. Its "connect" completes at once (the first EPOLLOUT), like a dial to a port that answers. */
static int open_local(struct op_relay *r, long port, int *fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
    int rc = port == OP_AGENT_SSH_PORT ? op_agent_ssh_serve(r->conf.ssh, sv[1])
                                       : op_agent_pty_serve(r->conf.pty, sv[1]);
    if (rc) {
        close(sv[0]);
        return rc == -EAGAIN ? -EBUSY : rc;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    *fd = sv[0];
    return 0;
}

/* A plaintext stream to the agent's SSH or terminal server with nothing queued either way: after its OK
 * the stream's own socket goes to the server, so the bytes skip this thread's copy and a socketpair (two
 * descriptors and two wake-ups fewer per stream). A TLS stream, bytes already after the OPEN line, or an
 * SSH server at its session limit (refused below with a clear error) keep the relayed path. The OK goes
 * first: the SSH server speaks at once. Returns true when the stream was handed over (or failed after
 * its OK and is closed). */
static bool hand_off_local(struct op_relay *r, struct conn *spare, long port)
{
    if (spare->tls || spare->inlen || ar_out_pending(spare)) return false;
    if (port == OP_AGENT_SSH_PORT && !op_agent_ssh_has_room(r->conf.ssh)) return false;
    /* A 3-byte send on a stream socket with an empty send queue is taken whole or not at all. */
    if (send(spare->fd, "OK\n", 3, MSG_NOSIGNAL | MSG_DONTWAIT) != 3) return false;
    int fd = spare->fd;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, fd, NULL);
    spare->fd = -1;      /* the server owns it now */
    spare->st = S_RELAY; /* counted out of the region's spares already (ar_on_open) */
    ar_conn_close(r, spare);
    int rc;
    if (port == OP_AGENT_SSH_PORT) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); /* a session thread does blocking I/O */
        rc = op_agent_ssh_serve(r->conf.ssh, fd);
    } else {
        rc = op_agent_pty_serve(r->conf.pty, fd); /* both close fd when they refuse */
    }
    if (rc) op_warn("agent", "the in-process server refused a stream to port %ld: %s", port, strerror(-rc));
    return true;
}

/* ---- the tcp endpoint's WebSocket variant: `OPEN ws:127.0.0.1:PORT` is served in-process (tcp_ws.h) -- */

/* A plaintext stream with nothing queued: after its OK the stream's own socket goes to the server (as
 * hand_off_local does). Returns true when it was handed over. */
static bool ws_hand_off(struct op_relay *r, struct conn *spare, uint16_t port)
{
    if (spare->tls || spare->inlen || ar_out_pending(spare)) return false;
    if (send(spare->fd, "OK\n", 3, MSG_NOSIGNAL | MSG_DONTWAIT) != 3) return false;
    int fd = spare->fd;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, fd, NULL);
    spare->fd = -1;
    spare->st = S_RELAY;
    ar_conn_close(r, spare);
    int rc = op_agent_tcpws_serve(r->conf.tcpws, fd, port); /* closes fd when it refuses */
    if (rc)
        op_warn("agent", "the WebSocket stream server refused a stream to port %u: %s", port, strerror(-rc));
    return true;
}

/* Otherwise one end of a socketpair goes to the server and the other is relayed as the target. */
static int ws_open_pair(struct op_relay *r, uint16_t port, int *fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
    int rc = op_agent_tcpws_serve(r->conf.tcpws, sv[1], port);
    if (rc) {
        close(sv[0]);
        return -EBUSY;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    *fd = sv[0];
    return 0;
}

/* The spare got its OPEN line (NUL-terminated, without the newline). */
void ar_on_open(struct op_relay *r, struct conn *spare, char *line)
{
    snprintf(spare->target, sizeof(spare->target), "%s", line + (strncmp(line, "OPEN ", 5) == 0 ? 5 : 0));
    struct region *rg = spare->rg;
    if (strncmp(line, "OPEN ", 5) != 0) {
        ar_refuse(r, spare, 0, OP_AF_FAIL_OTHER, "expected OPEN host:port");
        return;
    }
    char *hp = line + 5;
    bool tls = strncmp(hp, "tls:", 4) == 0; /* an https app: the agent speaks TLS to it */
    if (tls) hp += 4;
    bool ws = !tls && strncmp(hp, OP_AGENT_TCPWS_PREFIX, 3) == 0; /* the WebSocket variant (tcp_ws.h) */
    if (ws) hp += 3;
    char *colon = strrchr(hp, ':');
    char host[256];
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    size_t hl = colon ? (size_t)(colon - hp) : 0;
    if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') hp++, hl -= 2;
    if (!colon || port < 1 || port > 65535 || hl == 0 || hl >= sizeof(host)) {
        ar_refuse(r, spare, 0, OP_AF_FAIL_OTHER, "expected OPEN host:port");
        return;
    }
    memcpy(host, hp, hl);
    host[hl] = '\0';
    /* This spare is used: its replacement is dialed now, whatever becomes of the stream. */
    if (rg) {
        rg->nspares--;
        ar_top_up_spares(r, rg, 0);
    }
    spare->st = S_DIALING;
    if (!target_allowed(r, host, (uint16_t)port)) {
        ar_refuse(r, spare, (uint16_t)port, OP_AF_FAIL_FORBIDDEN,
                  "the agent dials only loopback ports of its workspace and its apps' hosts");
        return;
    }
    if (r->nstreams >= r->conf.max_streams) {
        ar_refuse(r, spare, (uint16_t)port, OP_AF_FAIL_LIMIT, "too many streams");
        return;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, rc;
    if (ws && (!r->conf.tcpws || !op_agent_host_is_loopback(host))) {
        ar_refuse(r, spare, (uint16_t)port, OP_AF_FAIL_OTHER, "WebSocket streams go to loopback ports only");
        return;
    }
    if (ws && ws_hand_off(r, spare, (uint16_t)port)) return;
    bool local = !tls && !ws && op_agent_host_is_loopback(host) &&
                 ((port == OP_AGENT_SSH_PORT && r->conf.ssh) || (port == OP_AGENT_PTY_PORT && r->conf.pty));
    if (local && hand_off_local(r, spare, port)) return;
    if (ws)
        rc = ws_open_pair(r, (uint16_t)port, &fd);
    else if (local)
        rc = open_local(r, port, &fd); /* the agent's own SSH or terminal server, in-process */
    else if ((rc = resolve_target(host, (uint16_t)port, &ss, &sl)) == 0)
        rc = ar_new_socket(&ss, sl, &fd);
    if (rc) {
        ar_refuse(r, spare, (uint16_t)port,
                  rc == -ECONNREFUSED ? OP_AF_FAIL_REFUSED
                  : rc == -EBUSY      ? OP_AF_FAIL_LIMIT
                                      : OP_AF_FAIL_OTHER,
                  rc == -EBUSY ? (ws                          ? "the WebSocket stream server is busy"
                                  : port == OP_AGENT_SSH_PORT ? "too many SSH sessions"
                                                              : "the terminal server is busy")
                               : strerror(-rc));
        return;
    }
    struct conn *t = ar_conn_new(r, fd, K_TARGET, NULL);
    if (!t) {
        close(fd);
        ar_refuse(r, spare, (uint16_t)port, OP_AF_FAIL_OTHER, "out of memory");
        return;
    }
    r->nstreams++;
    snprintf(t->rname, sizeof(t->rname), "%s", spare->rname);
    snprintf(t->target, sizeof(t->target), "%s", spare->target + (tls ? 4 : 0));
    t->tls_target = tls;
    t->st = S_CONNECTING;
    t->deadline = now_ms() + (uint64_t)r->conf.dial_timeout_ms;
    t->peer = spare;
    spare->peer = t;
    ar_update_mask(r, t);
}

static uint16_t target_port(const struct conn *c)
{
    const char *colon = strrchr(c->target, ':');
    return colon ? (uint16_t)strtol(colon + 1, NULL, 10) : 0;
}

/* Starts the TLS session of an https app target (no certificate check: see tls/client.h). Returns 0, or
 * -1 when the stream was refused and closed. */
static int start_target_tls(struct op_relay *r, struct conn *t)
{
    char err[200] = "", host[256];
    if (!r->app_tlsctx && op_tlsc_ctx_new_unverified(&r->app_tlsctx, err, sizeof(err)) != 0)
        r->app_tlsctx = NULL;
    const char *hp = t->target, *colon = strrchr(hp, ':');
    size_t hl = colon ? (size_t)(colon - hp) : strlen(hp);
    if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') hp++, hl -= 2;
    snprintf(host, sizeof(host), "%.*s", (int)hl, hp);
    if (r->app_tlsctx) t->tls = op_tlsc_new(r->app_tlsctx, t->fd, host);
    if (t->tls) return 0;
    ar_target_tls_done(r, t, err[0] ? err : "cannot start a TLS session");
    return -1;
}

void ar_target_tls_done(struct op_relay *r, struct conn *t, const char *err)
{
    struct conn *s = t->peer;
    if (!err && s) {
        ar_target_connected(r, t, 0);
        return;
    }
    uint16_t port = target_port(t);
    char why[300];
    snprintf(why, sizeof(why), "TLS to the app: %s", err ? err : "the stream is gone");
    if (s) t->peer = s->peer = NULL;
    ar_conn_close(r, t);
    if (s) ar_refuse(r, s, port, OP_AF_FAIL_OTHER, why);
}

/* The target's connect finished (err 0) or failed. */
void ar_target_connected(struct op_relay *r, struct conn *t, int err)
{
    struct conn *s = t->peer;
    if (!s) {
        ar_conn_close(r, t);
        return;
    }
    if (err) {
        uint16_t port = target_port(t);
        t->peer = s->peer = NULL;
        ar_conn_close(r, t);
        ar_refuse(r, s, port,
                  err == ECONNREFUSED ? OP_AF_FAIL_REFUSED
                  : err == ETIMEDOUT  ? OP_AF_FAIL_TIMEOUT
                                      : OP_AF_FAIL_OTHER,
                  err == ECONNREFUSED ? "connection refused (nothing listens on that port)" : strerror(err));
        return;
    }
    if (t->tls_target && !t->tls) { /* TCP is up: the TLS handshake first, then the OK */
        if (start_target_tls(r, t)) return;
        t->st = S_TLS;
        int rc = op_tlsc_handshake(t->tls); /* sends the ClientHello */
        if (rc == -EAGAIN) {
            ar_update_mask(r, t);
            return;
        }
        ar_target_tls_done(r, t, rc ? op_tlsc_error(t->tls) : NULL);
        return;
    }
    t->st = S_RELAY;
    t->deadline = 0;
    s->st = S_RELAY;
    s->deadline = 0;
    (void)ar_queue(s, "OK\n", 3);
    if (s->inlen) { /* bytes that followed the OPEN line belong to the target */
        (void)ar_queue(t, s->in, s->inlen);
        s->inlen = 0;
    }
    op_debug("agent", "region %s: stream to %s open", s->rname, t->target);
}

/* Half-close: a's reader saw EOF and b has written everything: FIN (or close_notify) towards b. */
void ar_maybe_shut(struct op_relay *r, struct conn *a)
{
    struct conn *b = a->peer;
    if (!b || !a->rd_eof || b->wr_shut || ar_out_pending(b)) return;
    if (b->tls) (void)op_tlsc_shutdown(b->tls);
    shutdown(b->fd, SHUT_WR);
    b->wr_shut = true;
    if (b->rd_eof && a->wr_shut) ar_conn_close(r, a); /* both directions done */
}

/* Moves bytes a -> a->peer. Returns false when the stream was closed. */
bool ar_pump(struct op_relay *r, struct conn *a)
{
    struct conn *b = a->peer;
    if (!b) return false;
    while (!a->rd_eof) {
        size_t space = ar_out_space(b);
        if (space == 0) break;
        ssize_t n = ar_read(a, b->out + b->outlen, space);
        if (n == -EAGAIN) break;
        if (n < 0) {
            op_debug("agent", "stream %s: read failed: %s", a->target[0] ? a->target : b->target,
                     ar_io_err(a, n));
            ar_conn_close(r, a);
            return false;
        }
        if (n == 0) {
            a->rd_eof = true;
            break;
        }
        b->outlen += (size_t)n;
    }
    int rc = ar_flush(b);
    if (rc) {
        ar_conn_close(r, b);
        return false;
    }
    ar_maybe_shut(r, a);
    return a->st != S_DEAD;
}
