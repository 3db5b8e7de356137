/*
 * bench/minrelay.c — the ceiling row of the plaintext bulk workload: the simplest relay this kernel allows,
 * one thread, level-triggered epoll, each direction either read()/write() through a 1 MiB user buffer
 * ("copy") or splice() through a 1 MiB pipe ("splice"), non-blocking sockets, nothing else (no timeouts,
 * no limits, no HTTP). A bench tool, not product code: it shows what a relay costs per byte on this machine
 * when it does nothing but move bytes, so the harness can say how far Outpost is from that.
 *
 *   minrelay --listen PORT --upstream HOST:PORT --mode copy|splice
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (1u << 20)

/* One direction: bytes from src to dst, held in buf (copy) or the pipe (splice) while dst is full. */
struct dir {
    int src, dst;
    char *buf;
    size_t off, len; /* copy: pending bytes buf[off, off + len) */
    int pipe[2];
    size_t inpipe; /* splice: bytes in the pipe */
    int eof;
};

struct tunnel {
    int fd[2];
    struct dir d[2]; /* d[0]: client -> upstream, d[1]: upstream -> client */
    int closed;
};

static int splice_mode;
static int ep;

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void watch(struct tunnel *t)
{
    for (int i = 0; i < 2; i++) {
        /* fd[i] is the source of d[i] and the destination of d[!i] */
        uint32_t ev = 0;
        struct dir *in = &t->d[i], *out = &t->d[!i];
        if (!in->eof && (splice_mode ? in->inpipe == 0 : in->len == 0)) ev |= EPOLLIN;
        if (splice_mode ? out->inpipe : out->len) ev |= EPOLLOUT;
        struct epoll_event e = {.events = ev, .data.ptr = t};
        epoll_ctl(ep, EPOLL_CTL_MOD, t->fd[i], &e);
    }
}

static void finish(struct tunnel *t)
{
    for (int i = 0; i < 2; i++) {
        close(t->fd[i]);
        if (splice_mode) {
            close(t->d[i].pipe[0]);
            close(t->d[i].pipe[1]);
        }
        free(t->d[i].buf);
    }
    free(t);
}

/* Moves what it can in one direction; -1 when the tunnel must close. */
static int pump(struct dir *d)
{
    for (;;) {
        if (splice_mode ? d->inpipe : d->len) {
            ssize_t n = splice_mode ? splice(d->pipe[0], NULL, d->dst, NULL, d->inpipe,
                                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                                    : write(d->dst, d->buf + d->off, d->len);
            if (n < 0) return errno == EAGAIN ? 0 : -1;
            if (splice_mode) {
                d->inpipe -= (size_t)n;
            } else {
                d->off += (size_t)n;
                d->len -= (size_t)n;
            }
            if (splice_mode ? d->inpipe : d->len) return 0;
        }
        if (d->eof) return 0;
        ssize_t n = splice_mode
                        ? splice(d->src, NULL, d->pipe[1], NULL, BUF, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                        : read(d->src, d->buf, BUF);
        if (n < 0) return errno == EAGAIN ? 0 : -1;
        if (n == 0) {
            d->eof = 1;
            shutdown(d->dst, SHUT_WR);
            return 0;
        }
        if (splice_mode) {
            d->inpipe = (size_t)n;
        } else {
            d->off = 0;
            d->len = (size_t)n;
        }
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1024)) {
        perror("minrelay: listen");
        exit(1);
    }
    nonblock(fd);
    return fd;
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *up = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--listen"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--upstream"))
            up = argv[i + 1];
        else if (!strcmp(argv[i], "--mode"))
            splice_mode = !strcmp(argv[i + 1], "splice");
    }
    const char *colon = up ? strrchr(up, ':') : NULL;
    if (!port || !colon) {
        fprintf(stderr, "usage: minrelay --listen PORT --upstream HOST:PORT --mode copy|splice\n");
        return 2;
    }
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - up), up);
    if (inet_pton(AF_INET, host, &ua.sin_addr) != 1) {
        fprintf(stderr, "minrelay: upstream must be an IPv4 address and port\n");
        return 2;
    }
    int lfd = listen_on(port);
    ep = epoll_create1(0);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1), ndead = 0;
        struct tunnel *dead[64];
        for (int i = 0; i < n; i++) {
            struct tunnel *t = evs[i].data.ptr;
            if (!t) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int u = socket(AF_INET, SOCK_STREAM, 0), one = 1;
                    if (connect(u, (struct sockaddr *)&ua, sizeof(ua)) != 0) { /* loopback: immediate */
                        close(u);
                        close(c);
                        continue;
                    }
                    nonblock(u);
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    t = calloc(1, sizeof(*t));
                    t->fd[0] = c;
                    t->fd[1] = u;
                    for (int k = 0; k < 2; k++) {
                        t->d[k].src = t->fd[k];
                        t->d[k].dst = t->fd[!k];
                        if (splice_mode) {
                            if (pipe2(t->d[k].pipe, O_NONBLOCK) == 0)
                                fcntl(t->d[k].pipe[1], F_SETPIPE_SZ, BUF);
                        } else {
                            t->d[k].buf = malloc(BUF);
                        }
                        struct epoll_event e = {.events = EPOLLIN, .data.ptr = t};
                        epoll_ctl(ep, EPOLL_CTL_ADD, t->fd[k], &e);
                    }
                }
                continue;
            }
            if (t->closed) continue;
            if (pump(&t->d[0]) < 0 || pump(&t->d[1]) < 0 ||
                (t->d[0].eof && t->d[1].eof &&
                 !(splice_mode ? t->d[0].inpipe + t->d[1].inpipe : t->d[0].len + t->d[1].len))) {
                t->closed = 1;
                epoll_ctl(ep, EPOLL_CTL_DEL, t->fd[0], NULL);
                epoll_ctl(ep, EPOLL_CTL_DEL, t->fd[1], NULL);
                dead[ndead++] = t; /* freed after the batch: a later event of it may still be in evs */
                continue;
            }
            watch(t);
        }
        for (int i = 0; i < ndead; i++)
            finish(dead[i]);
    }
}
