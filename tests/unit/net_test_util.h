/*
 * tests/unit/net_test_util.h — loopback socket helpers the engine and HTTP tests share: whole sends,
 * receives that survive EINTR, a listener on a free port, a client connection with a receive timeout, and a
 * bounded wait on a counter another thread moves.
 */
#ifndef OP_NET_TEST_UTIL_H
#define OP_NET_TEST_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Sends all n bytes (MSG_NOSIGNAL); false on an error or a closed peer. */
static inline bool t_send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        s += k;
        n -= (size_t)k;
    }
    return true;
}

/* A blocking recv on a socket with SO_RCVTIMEO fails with EINTR (not restarted) when the kernel notifies
 * the thread of task work, with no signal involved (sock_intr_errno); that is not the peer's doing, so
 * the test clients retry it. The receive timeout still bounds every wait (EAGAIN). */
static inline ssize_t t_recv_retry(int fd, void *buf, size_t n)
{
    ssize_t k;
    do
        k = recv(fd, buf, n, 0);
    while (k < 0 && errno == EINTR);
    return k;
}

/* A listening socket on 127.0.0.1 and a free port (*port); -1 on failure. */
static inline int t_listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A blocking client connection to 127.0.0.1:port with a 5 s receive timeout (TCP_NODELAY when asked);
 * -1 on failure. */
static inline int t_dial_loopback(uint16_t port, bool nodelay)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    if (nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){.tv_sec = 5}, sizeof(struct timeval));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Polls *v every 10 ms until it equals want, for at most max_ms. */
static inline bool t_wait_int(atomic_int *v, int want, int max_ms)
{
    for (int i = 0; i < max_ms / 10; i++) {
        if (atomic_load(v) == want) return true;
        usleep(10000);
    }
    return atomic_load(v) == want;
}

#endif
