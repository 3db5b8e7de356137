/*
 * Unit test for a transport on a connection's upstream side, on a real engine (two workers, splice on,
 * loopback sockets). A small framing "transport" stands in for TLS: the peer opens with one handshake byte
 * 'H', then every frame is [n 1..255][n bytes XOR 0x5a], and [0] is its close notification. So a byte that
 * reaches a socket without going through the transport cannot be taken for one that did.
 *   - op_conn_detach on a connection with that transport hands on_detached the socket AND the session
 *     (bound to no connection);
 *   - op_conn_attach_leg makes it another connection's upstream leg (on whichever worker): what is sent to
 *     the upstream goes through ->output, what it receives through ->input, both ways, 1 MiB each, while
 *     tunnelling (a tunnel with a transport leg must copy, never splice);
 *   - half-close: the leg's close notification is an EOF passed on to the client as a FIN; the client's FIN
 *     becomes the leg's close notification, then its FIN;
 *   - the session is freed with the connection (->close on the upstream side), and op_leg_close frees one
 *     that is never attached (->free): none is left at the end.
 * Skips (77) only when io_uring is absent or blocked.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "core/engine.h"
#include "tests/unit/net_test_util.h"

#define KEY 0x5a

/* ---- the framing transport ---------------------------------------------------------------------------- */

struct xs {
    struct op_conn *c; /* bound connection, NULL while detached */
    enum op_side side;
    bool ready;
    uint8_t rem;   /* payload bytes left in the current frame (0: a length byte comes next) */
    bool in_frame; /* inside a frame's payload */
};

static atomic_int live, up_closes, up_inputs, up_outputs, up_notifies, unbound;

static struct xs *xs_of(struct op_conn *c, enum op_side side)
{
    return op_conn_side_xprt(c, side);
}

static int x_open(struct op_conn *c, void *ctx)
{
    (void)ctx;
    struct xs *x = calloc(1, sizeof(*x));
    if (!x) return -ENOMEM;
    x->c = c;
    x->side = OP_CLI;
    atomic_fetch_add(&live, 1);
    op_conn_set_xprt(c, x);
    return 0;
}

static enum op_xprt_result x_input(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    struct xs *x = xs_of(c, side);
    if (x->c != c || x->side != side) return OP_XPRT_ERROR; /* not bound here */
    if (side == OP_UP) atomic_fetch_add(&up_inputs, 1);
    size_t i = 0;
    if (!x->ready && n) {
        if (side != OP_CLI || p[0] != 'H') return OP_XPRT_ERROR;
        x->ready = true;
        i = 1;
        op_conn_xprt_ready(c);
    }
    uint8_t out[256];
    while (i < n) {
        if (!x->in_frame) {
            uint8_t len = p[i++];
            if (len == 0) return OP_XPRT_CLOSE_NOTIFY;
            x->rem = len;
            x->in_frame = true;
            continue;
        }
        size_t k = OP_MIN((size_t)x->rem, n - i);
        for (size_t j = 0; j < k; j++)
            out[j] = p[i + j] ^ KEY;
        i += k;
        x->rem = (uint8_t)(x->rem - k);
        if (!x->rem) x->in_frame = false;
        if (op_conn_deliver_from(c, side, out, k) < 0) return OP_XPRT_ERROR;
    }
    return OP_XPRT_OK;
}

static int x_output(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    struct xs *x = xs_of(c, side);
    if (x->c != c || x->side != side) return -EINVAL;
    if (side == OP_UP) atomic_fetch_add(&up_outputs, 1);
    uint8_t f[256];
    while (n) {
        size_t k = OP_MIN(n, (size_t)255);
        f[0] = (uint8_t)k;
        for (size_t j = 0; j < k; j++)
            f[1 + j] = p[j] ^ KEY;
        int rc = op_conn_queue(c, side, f, k + 1);
        if (rc < 0) return rc;
        p += k;
        n -= k;
    }
    return 0;
}

static int x_shutdown(struct op_conn *c, enum op_side side)
{
    if (side == OP_UP) atomic_fetch_add(&up_notifies, 1);
    return op_conn_queue(c, side, (const uint8_t *)"", 1);
}

static void x_free(void *p)
{
    free(p);
    atomic_fetch_sub(&live, 1);
}

static void x_close(struct op_conn *c, enum op_side side)
{
    if (side == OP_UP) atomic_fetch_add(&up_closes, 1);
    x_free(op_conn_side_xprt(c, side));
}

static void x_bind(void *p, struct op_conn *c, enum op_side side)
{
    struct xs *x = p;
    x->c = c;
    x->side = side;
    if (!c) atomic_fetch_add(&unbound, 1);
}

static const struct op_xprt_ops xor_ops = {
    .name = "xor-frames",
    .open = x_open,
    .input = x_input,
    .output = x_output,
    .shutdown = x_shutdown,
    .close = x_close,
    .bind = x_bind,
    .free = x_free,
};

/* ---- the protocol: PARK detaches the client socket, JOIN attaches the parked one as the upstream ----------
 */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct op_leg parked = {-1, NULL, NULL};
static atomic_int detached_calls, connected_calls;

struct tstate {
    uint32_t n;
    char line[64];
};

static void t_detached(struct op_conn *c, struct op_leg *leg)
{
    (void)c;
    pthread_mutex_lock(&mu);
    if (parked.fd >= 0) op_leg_close(&parked);
    parked = *leg;
    pthread_mutex_unlock(&mu);
    atomic_fetch_add(&detached_calls, 1);
}

static void t_connected(struct op_conn *c, int err)
{
    atomic_fetch_add(&connected_calls, 1);
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
            op_conn_pause(c, OP_CLI);
            if (op_conn_send(c, OP_CLI, (const uint8_t *)"parked\n", 7) < 0) op_conn_close(c, "queue");
            return 0;
        }
        if (strcmp(st->line, "JOIN") == 0) {
            pthread_mutex_lock(&mu);
            struct op_leg leg = parked;
            parked = (struct op_leg){-1, NULL, NULL};
            pthread_mutex_unlock(&mu);
            if (leg.fd < 0 || op_conn_attach_leg(c, &leg) != 0) {
                op_leg_close(&leg);
                op_conn_close(c, "nothing to join");
                return 0;
            }
            if (op_conn_send(c, OP_UP, (const uint8_t *)"joined\n", 7) < 0) op_conn_close(c, "queue");
            if (i + 1 < n && op_conn_send(c, OP_UP, p + i + 1, n - i - 1) < 0) op_conn_close(c, "queue");
            return 0;
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

static const struct op_proto_ops proto = {
    .name = "test-xprt",
    .state_size = sizeof(struct tstate),
    .on_client_data = t_data,
    .on_upstream_connected = t_connected,
    .on_drained = t_drained,
    .on_eof = t_eof,
    .on_detached = t_detached,
};

/* ---- the peer's side of the framing ------------------------------------------------------------------- */

static bool frame_send(int s, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t f[256];
    while (n) {
        size_t k = n < 255 ? n : 255;
        f[0] = (uint8_t)k;
        for (size_t j = 0; j < k; j++)
            f[1 + j] = b[j] ^ KEY;
        if (!t_send_all(s, f, k + 1)) return false;
        b += k;
        n -= k;
    }
    return true;
}

struct dec {
    int s;
    uint8_t rem;
    bool notified;
};
/* Up to n decoded bytes; 0 at the close notification (then *notified) or at EOF; -1 on an error. */
static ssize_t frame_recv(struct dec *d, uint8_t *out, size_t n)
{
    for (;;) {
        if (d->rem == 0) {
            uint8_t len;
            ssize_t k = t_recv_retry(d->s, &len, 1);
            if (k <= 0) return k;
            if (len == 0) {
                d->notified = true;
                return 0;
            }
            d->rem = len;
        }
        size_t want = n < d->rem ? n : d->rem;
        ssize_t k = t_recv_retry(d->s, out, want);
        if (k <= 0) return -1; /* EOF inside a frame */
        for (ssize_t j = 0; j < k; j++)
            out[j] ^= KEY;
        d->rem = (uint8_t)(d->rem - k);
        return k;
    }
}

static bool frame_exact(struct dec *d, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = frame_recv(d, (uint8_t *)buf + got, n - got);
        if (k <= 0) return false;
        got += (size_t)k;
    }
    return true;
}

static bool raw_exact(int s, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = t_recv_retry(s, (char *)buf + got, n - got);
        if (k <= 0) return false;
        got += (size_t)k;
    }
    return true;
}

static uint8_t pat(size_t off, unsigned seed)
{
    return (uint8_t)(off * seed >> 3);
}

struct bulk {
    int s;
    size_t n;
    unsigned seed;
    bool framed; /* the agent's side: frames, then the close notification (no FIN) */
};
static void *bulk_send(void *arg)
{
    struct bulk *b = arg;
    uint8_t buf[8192];
    for (size_t off = 0; off < b->n; off += sizeof(buf)) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = pat(off + i, b->seed);
        bool ok = b->framed ? frame_send(b->s, buf, sizeof(buf)) : t_send_all(b->s, buf, sizeof(buf));
        if (!ok) break;
    }
    if (b->framed)
        t_send_all(b->s, "", 1); /* close notification only: the socket stays open for writing */
    else
        shutdown(b->s, SHUT_WR);
    return NULL;
}

/* The agent's side receives n framed bytes, then the close notification, then the FIN. */
static bool check_framed(int s, size_t n, unsigned seed)
{
    static uint8_t buf[8192];
    struct dec d = {.s = s};
    size_t off = 0;
    while (off < n) {
        ssize_t k = frame_recv(&d, buf, sizeof(buf));
        if (k <= 0) return false;
        for (ssize_t i = 0; i < k; i++)
            if (buf[i] != pat(off + (size_t)i, seed)) return false;
        off += (size_t)k;
    }
    return frame_recv(&d, buf, 1) == 0 && d.notified && t_recv_retry(s, buf, 1) == 0;
}

/* The client receives n raw bytes, then the FIN. */
static bool check_raw(int s, size_t n, unsigned seed)
{
    static uint8_t buf[8192];
    size_t off = 0;
    while (off < n) {
        ssize_t k = t_recv_retry(s, buf, sizeof(buf));
        if (k <= 0) return false;
        for (ssize_t i = 0; i < k; i++)
            if (buf[i] != pat(off + (size_t)i, seed)) return false;
        off += (size_t)k;
    }
    return t_recv_retry(s, buf, 1) == 0;
}

static int listen_conf(struct op_listener_conf *lc, const struct op_xprt_ops *x, uint16_t *port)
{
    char err[256], addr[32];
    int probe = t_listen_loopback(port);
    if (probe < 0) return -1;
    close(probe);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", *port);
    snprintf(lc->name, sizeof(lc->name), "%s", addr);
    if (op_parse_hostport(addr, &lc->addr, &lc->addrlen, err, sizeof(err)) != 0) return -1;
    lc->proto = &proto;
    lc->xprt = x;
    return 0;
}

int main(void)
{
    static struct op_listener_conf lc[2];
    uint16_t xport = 0, rport = 0;
    if (listen_conf(&lc[0], &xor_ops, &xport) != 0 || listen_conf(&lc[1], NULL, &rport) != 0) return 1;
    char err[256];
    struct op_engine_conf ec = {.workers = 2,
                                .no_pin = true,
                                .listeners = lc,
                                .nlisteners = 2,
                                .max_conns = 64,
                                .splice = true,
                                .to = {.drain_ms = 200}};
    struct op_engine *e = NULL;
    int rc = op_engine_start(&ec, &e, err, sizeof(err));
    if (rc == -ENOSYS || rc == -EPERM) {
        printf("SKIP: io_uring unavailable: %s\n", err);
        return 77;
    }
    CHECK(rc == 0, "engine start: %s", err);
    if (rc) return check_report("engine upstream transport");

    for (int round = 0; round < 4; round++) { /* both workers take both roles */
        printf("round %d: detach a transported socket with its session, join it as an upstream, 1 MiB each "
               "way\n",
               round);
        int agent = t_dial_loopback(xport, false), client = t_dial_loopback(rport, false);
        CHECK(agent >= 0 && client >= 0, "dial");
        struct dec ad = {.s = agent};
        char buf[64];
        CHECK(t_send_all(agent, "H", 1) && frame_send(agent, "PARK\n", 5), "send PARK");
        CHECK(frame_exact(&ad, buf, 7) && memcmp(buf, "parked\n", 7) == 0,
              "parked answer through the transport");
        CHECK(t_wait_int(&detached_calls, round + 1, 5000), "on_detached not called");
        pthread_mutex_lock(&mu);
        bool has = parked.fd >= 0 && parked.xops == &xor_ops && parked.xprt != NULL;
        pthread_mutex_unlock(&mu);
        CHECK(has, "on_detached got no socket with its session");
        CHECK(atomic_load(&unbound) == round + 1, "the session was not unbound when it left its connection");

        CHECK(t_send_all(client, "JOIN\nfirst", 10), "send JOIN");
        CHECK(frame_exact(&ad, buf, 12) && memcmp(buf, "joined\nfirst", 12) == 0,
              "bytes sent to the joined leg go through its transport");
        CHECK(t_wait_int(&connected_calls, round + 1, 5000), "on_upstream_connected not called");
        CHECK(frame_send(agent, "hello", 5) && raw_exact(client, buf, 5) && memcmp(buf, "hello", 5) == 0,
              "bytes from the joined leg are decoded by its transport");

        struct bulk up = {client, 1u << 20, 7u + (unsigned)round, false},
                    down = {agent, 1u << 20, 13u + (unsigned)round, true};
        pthread_t t1, t2;
        pthread_create(&t1, NULL, bulk_send, &up);
        pthread_create(&t2, NULL, bulk_send, &down);
        CHECK(check_framed(agent, up.n, up.seed),
              "client -> leg: 1 MiB framed, then the close notification, then the FIN");
        CHECK(check_raw(client, down.n, down.seed),
              "leg -> client: 1 MiB, then the leg's close notification as a FIN");
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        CHECK(t_wait_int(&up_closes, round + 1, 5000),
              "the upstream session was not closed with its connection");
        close(agent);
        close(client);
    }
    CHECK(atomic_load(&up_inputs) > 0 && atomic_load(&up_outputs) > 0 && atomic_load(&up_notifies) == 4,
          "upstream transport calls: %d inputs, %d outputs, %d notifies", atomic_load(&up_inputs),
          atomic_load(&up_outputs), atomic_load(&up_notifies));

    printf("a detached session nobody attaches is freed by op_leg_close\n");
    int agent = t_dial_loopback(xport, false);
    struct dec ad = {.s = agent};
    char buf[8];
    CHECK(t_send_all(agent, "H", 1) && frame_send(agent, "PARK\n", 5) && frame_exact(&ad, buf, 7), "park");
    CHECK(t_wait_int(&detached_calls, 5, 5000), "on_detached not called");
    pthread_mutex_lock(&mu);
    op_leg_close(&parked);
    pthread_mutex_unlock(&mu);
    CHECK(t_recv_retry(agent, buf, 1) == 0, "the closed leg's peer sees EOF");
    close(agent);
    CHECK(t_wait_int(&live, 0, 5000), "%d transport sessions left", atomic_load(&live));

    op_engine_drain(e);
    for (int i = 0; i < 400 && !op_engine_done(e); i++)
        usleep(10000);
    op_engine_free(e);
    return check_report("engine upstream transport");
}
