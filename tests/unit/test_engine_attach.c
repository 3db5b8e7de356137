/*
 * Unit test for the engine's socket hand-over API on a real engine (two workers, loopback clients):
 *   - op_conn_detach: a connection's client socket leaves its slot intact (bytes the peer sent meanwhile
 *     stay in the socket), the slot is freed, on_detached gets the fd (with no transport: a raw leg);
 *   - op_conn_attach_upstream: another connection (on whichever worker) takes that fd as its upstream leg,
 *     completion comes through on_upstream_connected from the event loop (never inside the call), and the
 *     pump relays both legs: 1 MiB each way, a half-close passed on, nothing lost;
 *   - a non-socket fd is refused (-ENOTSOCK) and stays the caller's;
 *   - op_conn_set_proto: a connection switches protocols mid-stream with a zeroed state.
 * Skips (77) only when io_uring is absent or blocked.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"
#include "core/engine.h"
#include "tests/unit/net_test_util.h"

static atomic_int parked_fd = -1;
static atomic_int detached_calls, connected_calls, connected_inside, notsock_ok, switched_ok;
static _Thread_local bool in_attach;

struct tstate {
    uint32_t n;
    char line[64];
};

static const struct op_proto_ops proto_b;

static void t_detached(struct op_conn *c, struct op_leg *leg)
{
    (void)c;
    if (leg->xops) op_leg_close(leg); /* never: this listener has no transport */
    atomic_fetch_add(&detached_calls, 1);
    atomic_store(&parked_fd, leg->fd);
}

static void t_connected(struct op_conn *c, int err)
{
    atomic_fetch_add(&connected_calls, 1);
    if (in_attach) atomic_fetch_add(&connected_inside, 1);
    if (err) {
        op_conn_close(c, "attach failed");
        return;
    }
    op_conn_tunnel(c, 0);
}

static void t_drained(struct op_conn *c, enum op_side side)
{
    struct tstate *st = op_conn_proto_state(c);
    if (side == OP_CLI && strcmp(st->line, "PARK") == 0) op_conn_detach(c);
}

static int t_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    struct tstate *st = op_conn_proto_state(c);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (st->n < sizeof(st->line) - 1) st->line[st->n++] = (char)p[i];
            continue;
        }
        st->line[st->n] = '\0';
        if (strcmp(st->line, "PARK") == 0) {
            op_conn_pause(c, OP_CLI); /* nothing more is read: the rest stays in the socket */
            if (op_conn_send(c, OP_CLI, (const uint8_t *)"parked\n", 7) < 0) op_conn_close(c, "queue");
            return 0;
        }
        if (strcmp(st->line, "JOIN") == 0) {
            int fd = atomic_exchange(&parked_fd, -1);
            if (fd < 0) {
                op_conn_close(c, "nothing parked");
                return 0;
            }
            int pfd[2];
            if (pipe(pfd) == 0) {
                if (op_conn_attach_upstream(c, pfd[0]) == -ENOTSOCK) atomic_store(&notsock_ok, 1);
                close(pfd[0]);
                close(pfd[1]);
            }
            in_attach = true;
            int rc = op_conn_attach_upstream(c, fd);
            in_attach = false;
            if (rc != 0) {
                close(fd);
                op_conn_close(c, "attach");
            }
            /* bytes after the JOIN line go to the joined leg once the tunnel runs */
            if (i + 1 < n && op_conn_send(c, OP_UP, p + i + 1, n - i - 1) < 0) op_conn_close(c, "queue");
            return 0;
        }
        if (strcmp(st->line, "SWITCH") == 0) {
            op_conn_set_proto(c, &proto_b, (void *)&proto_b);
            struct tstate *nb = op_conn_proto_state(c);
            if (nb->n == 0 && nb->line[0] == '\0' && op_conn_proto_ctx(c) == &proto_b)
                atomic_store(&switched_ok, 1);
            return i + 1 < n ? op_conn_deliver(c, p + i + 1, n - i - 1) : 0;
        }
        st->n = 0;
    }
    return 0;
}

static void t_eof(struct op_conn *c, enum op_side side)
{
    (void)side;
    op_conn_close(c, "eof");
}

static const struct op_proto_ops proto_a = {
    .name = "test-a",
    .state_size = sizeof(struct tstate),
    .on_client_data = t_data,
    .on_upstream_connected = t_connected,
    .on_drained = t_drained,
    .on_eof = t_eof,
    .on_detached = t_detached,
};

/* proto_b: answers every byte upper-cased. */
static int b_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    uint8_t out[256];
    size_t k = n < sizeof(out) ? n : sizeof(out);
    for (size_t i = 0; i < k; i++)
        out[i] = (uint8_t)((p[i] >= 'a' && p[i] <= 'z') ? p[i] - 32 : p[i]);
    return op_conn_send(c, OP_CLI, out, k);
}
static const struct op_proto_ops proto_b = {
    .name = "test-b", .state_size = 16, .on_client_data = b_data, .on_eof = t_eof};

static bool read_exact(int s, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = t_recv_retry(s, buf + got, n - got);
        if (k <= 0) return false;
        got += (size_t)k;
    }
    return true;
}

struct bulk {
    int s;
    size_t n;
    unsigned seed;
};
static void *bulk_send(void *arg)
{
    struct bulk *b = arg;
    char buf[8192];
    for (size_t off = 0; off < b->n; off += sizeof(buf)) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (char)((off + i) * b->seed >> 3);
        if (send(b->s, buf, sizeof(buf), MSG_NOSIGNAL) != (ssize_t)sizeof(buf)) break;
    }
    shutdown(b->s, SHUT_WR);
    return NULL;
}
static bool bulk_check(int s, size_t n, unsigned seed)
{
    static char buf[8192];
    size_t off = 0;
    while (off < n) {
        ssize_t k = t_recv_retry(s, buf, sizeof(buf));
        if (k <= 0) return false;
        for (ssize_t i = 0; i < k; i++)
            if (buf[i] != (char)((off + (size_t)i) * seed >> 3)) return false;
        off += (size_t)k;
    }
    return t_recv_retry(s, buf, 1) == 0; /* then the half-close */
}

int main(void)
{
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (bind(probe, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(probe, (struct sockaddr *)&a, &al) != 0)
        return 1;
    int port = ntohs(a.sin_port);
    close(probe);

    static struct op_listener_conf lc;
    char err[256], addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(lc.name, sizeof(lc.name), "%s", addr);
    if (op_parse_hostport(addr, &lc.addr, &lc.addrlen, err, sizeof(err)) != 0) return 1;
    lc.proto = &proto_a;
    struct op_engine_conf ec = {.workers = 2,
                                .no_pin = true,
                                .listeners = &lc,
                                .nlisteners = 1,
                                .max_conns = 64,
                                .to = {.drain_ms = 200}};
    struct op_engine *e = NULL;
    int rc = op_engine_start(&ec, &e, err, sizeof(err));
    if (rc == -ENOSYS || rc == -EPERM) {
        printf("SKIP: io_uring unavailable: %s\n", err);
        return 77;
    }
    CHECK(rc == 0, "engine start: %s", err);
    if (rc) return check_report("engine attach/detach");

    for (int round = 0; round < 4; round++) { /* several rounds: both workers take both roles */
        printf("round %d: park a socket, join it from another connection, 1 MiB each way\n", round);
        int agent = t_dial_loopback((uint16_t)(port), false),
            client = t_dial_loopback((uint16_t)(port), false);
        CHECK(agent >= 0 && client >= 0, "dial");
        char buf[64];
        CHECK(send(agent, "PARK\n", 5, 0) == 5, "send PARK");
        CHECK(read_exact(agent, buf, 7) && memcmp(buf, "parked\n", 7) == 0, "parked answer");
        CHECK(send(agent, "early", 5, 0) == 5, "early bytes"); /* sent while detaching: must not be lost */
        CHECK(t_wait_int(&detached_calls, round + 1, 5000), "on_detached not called");
        CHECK(atomic_load(&parked_fd) >= 0, "on_detached got no fd");
        CHECK(send(client, "JOIN\nfirst", 10, 0) == 10, "send JOIN");
        CHECK(read_exact(agent, buf, 5) && memcmp(buf, "first", 5) == 0,
              "bytes after JOIN reach the parked socket");
        CHECK(read_exact(client, buf, 5) && memcmp(buf, "early", 5) == 0,
              "bytes sent while detaching reach the client");
        CHECK(t_wait_int(&connected_calls, round + 1, 5000), "on_upstream_connected not called");
        struct bulk up = {client, 1u << 20, 7u + (unsigned)round},
                    down = {agent, 1u << 20, 13u + (unsigned)round};
        pthread_t t1, t2;
        pthread_create(&t1, NULL, bulk_send, &up);
        pthread_create(&t2, NULL, bulk_send, &down);
        CHECK(bulk_check(agent, up.n, up.seed), "client -> parked leg: 1 MiB and the FIN");
        CHECK(bulk_check(client, down.n, down.seed), "parked leg -> client: 1 MiB and the FIN");
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        close(agent);
        close(client);
    }
    CHECK(atomic_load(&connected_inside) == 0, "on_upstream_connected ran inside op_conn_attach_upstream");
    CHECK(atomic_load(&notsock_ok) == 1, "a pipe was not refused with -ENOTSOCK");

    printf("a connection switches protocols mid-stream\n");
    int s = t_dial_loopback((uint16_t)(port), false);
    char buf[16];
    CHECK(send(s, "SWITCH\nhello", 12, 0) == 12, "send SWITCH");
    CHECK(read_exact(s, buf, 5) && memcmp(buf, "HELLO", 5) == 0, "the new protocol answers the rest");
    CHECK(send(s, "again", 5, 0) == 5 && read_exact(s, buf, 5) && memcmp(buf, "AGAIN", 5) == 0,
          "and later bytes");
    CHECK(atomic_load(&switched_ok) == 1, "state not zeroed or ctx not set");
    close(s);

    op_engine_drain(e);
    for (int i = 0; i < 400 && !op_engine_done(e); i++)
        usleep(10000);
    op_engine_free(e);
    return check_report("engine attach/detach/set_proto");
}
