/*
 * agent/tcp_ws.c — the WebSocket variant's server thread (tcp_ws.h): one epoll loop (level-triggered)
 * over the hand-over eventfd and, per connection, the client's socket (the stream from the region) and
 * the target's socket (127.0.0.1:PORT). Per connection: the request head, the dial, the answer, then the
 * pump (tcp_ws_pump.h) both ways with the interest masks following the buffers: a side is read only while
 * the other side's buffer has room.
 *
 * A connection closed during a round of events is only marked (TW_DEAD) and freed after the round, since
 * later events of the same round may still name it.
 */
#include "agent/tcp_ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/tcp_ws_pump.h"
#include "agent/ws_head.h"
#include "core/common.h"
#include "core/log.h"

#define TW_IN_CAP   (16 * 1024) /* the request head, then raw client frames */
#define TW_QUEUE    256         /* sockets handed over, not yet taken by the thread */
#define TW_CLOSE_MS 2000        /* a connection writing its last bytes is dropped after this */
#define MAX_EVENTS  64

enum tw_state {
    TW_HEAD,    /* waiting for the request head */
    TW_DIALING, /* connecting to 127.0.0.1:PORT */
    TW_OPEN,    /* 101 sent: the pump runs */
    TW_FLUSH,   /* writing an error answer, then closed */
    TW_DEAD,    /* closed; freed after the current round of events */
};

static const char *state_name(enum tw_state s)
{
    switch (s) {
    case TW_HEAD:
        return "head";
    case TW_DIALING:
        return "dialing";
    case TW_OPEN:
        return "open";
    case TW_FLUSH:
        return "flush";
    case TW_DEAD:
        return "dead";
    }
    return "?";
}

struct twconn;
struct twfd {
    struct twconn *c; /* NULL: the wake-up eventfd */
    bool target;
    uint32_t mask; /* the epoll mask now (0 = not in the set) */
};

struct twconn {
    struct op_agent_tcpws *srv;
    enum tw_state st;
    int cfd, tfd; /* client (the region's stream), target */
    struct twfd cpfd, tpfd;
    uint16_t port;
    uint8_t *in; /* client bytes not yet taken by the pump (the head first) */
    size_t inlen;
    struct tcpws_pump pump;
    bool target_eof;    /* the target closed its side: our close frame is queued */
    bool target_shut;   /* the target's write side is shut (the client's close came) */
    bool client_gone;   /* the client's socket gave EOF or an error */
    uint64_t deadline;  /* head, dial or flush deadline; 0 = none */
    uint64_t next_ping; /* TW_OPEN: the next ping */
    struct twconn *next, *prev;
};

struct op_agent_tcpws {
    struct op_agent_tcpws_conf conf;
    int ep, wakefd;
    struct twfd wpfd;
    pthread_t thread;
    pthread_mutex_t mu; /* queue, nqueue, stop */
    struct {
        int fd;
        uint16_t port;
    } queue[TW_QUEUE];
    int nqueue;
    bool stop;
    struct twconn *conns, *dead;
    int nconns;
};

/* ---- connections ----------------------------------------------------------------------------------------
 */

static void set_mask(struct op_agent_tcpws *t, int fd, struct twfd *f, uint32_t mask)
{
    if (fd < 0 || f->mask == mask) return;
    struct epoll_event e = {.events = mask, .data.ptr = f};
    if (mask == 0)
        epoll_ctl(t->ep, EPOLL_CTL_DEL, fd, NULL);
    else
        epoll_ctl(t->ep, f->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &e);
    f->mask = mask;
}

static void conn_free(struct twconn *c)
{
    if (c->st == TW_DEAD) return;
    struct op_agent_tcpws *t = c->srv;
    set_mask(t, c->cfd, &c->cpfd, 0);
    set_mask(t, c->tfd, &c->tpfd, 0);
    close(c->cfd);
    if (c->tfd >= 0) close(c->tfd);
    c->cfd = c->tfd = -1;
    c->st = TW_DEAD;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = t->dead;
    t->dead = c;
    t->nconns--;
}

static void free_dead(struct op_agent_tcpws *t)
{
    while (t->dead) {
        struct twconn *c = t->dead;
        t->dead = c->next;
        tcpws_pump_free(&c->pump);
        free(c->in);
        free(c);
    }
}

/* Writes what the pump holds for the client. false when the client is gone. */
static bool flush_client(struct twconn *c)
{
    const uint8_t *d;
    size_t n;
    while ((n = tcpws_pump_to_client(&c->pump, &d)) > 0) {
        ssize_t k = send(c->cfd, d, n, MSG_NOSIGNAL);
        if (k > 0) {
            tcpws_pump_client_sent(&c->pump, (size_t)k);
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno == EAGAIN) return true;
        return false;
    }
    return true;
}

/* An HTTP answer instead of the upgrade (queued in the pump's out buffer), then closed. */
static void refuse(struct twconn *c, int status, const char *msg)
{
    const char *phrase = status == 502   ? "Bad Gateway"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 503 ? "Service Unavailable"
                                         : "Bad Request";
    char body[400];
    size_t bl = 0;
    bl += (size_t)snprintf(body, sizeof(body), "{\"message\":\"");
    for (const char *s = msg; *s && bl + 8 < sizeof(body); s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            body[bl++] = '\\', body[bl++] = (char)ch;
        else if (ch >= 0x20 && ch < 0x7f)
            body[bl++] = (char)ch;
    }
    bl += (size_t)snprintf(body + bl, sizeof(body) - bl, "\"}");
    int n = snprintf((char *)c->pump.out, TCPWS_OUT_CAP,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%.*s",
                     status, phrase, bl, (int)bl, body);
    c->pump.outoff = 0;
    c->pump.outlen = n > 0 ? (size_t)n : 0;
    c->pump.close_sent = c->pump.peer_closed = true; /* done once the answer is out */
    c->st = TW_FLUSH;
    c->deadline = op_now_ms() + TW_CLOSE_MS;
    if (c->tfd >= 0) {
        set_mask(c->srv, c->tfd, &c->tpfd, 0);
        close(c->tfd);
        c->tfd = -1;
    }
}

static void dial_failed(struct twconn *c, int err)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "The agent could not connect to port %u: %s", c->port,
             err == ETIMEDOUT ? "connection timed out" : strerror(err));
    op_info("agent", "tcp-ws: stream to 127.0.0.1:%u refused: %s", c->port, strerror(err));
    refuse(c, 502, msg);
}

static void dial(struct twconn *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(c->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->tfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->tfd < 0) {
        dial_failed(c, errno);
        return;
    }
    c->st = TW_DIALING;
    c->deadline = op_now_ms() + (uint64_t)c->srv->conf.dial_timeout_ms;
    if (connect(c->tfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
        dial_failed(c, errno);
}

static void opened(struct twconn *c, const char *accept)
{
    char resp[200];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    memcpy(c->pump.out, resp, (size_t)n);
    c->pump.outoff = 0;
    c->pump.outlen = (size_t)n;
}

/* Everything the buffers allow, both ways, until nothing moves; then the interest masks. */
static void pump(struct twconn *c)
{
    struct op_agent_tcpws *t = c->srv;
    uint8_t buf[TCPWS_FRAME_MAX];
    /* Each round reads the client first and feeds the pump at once, so that a round limit never leaves
     * client bytes unfed while neither socket is watched for them. */
    for (int round = 0; round < 64 && c->st == TW_OPEN; round++) {
        bool moved = false;
        /* Client bytes; after its close frame they are dropped, but its EOF still ends the stream (a
         * client that gave up waiting for our close). */
        while (!c->client_gone && c->inlen < TW_IN_CAP) {
            ssize_t k = recv(c->cfd, c->in + c->inlen, TW_IN_CAP - c->inlen, 0);
            if (k > 0) {
                c->inlen += (size_t)k;
                moved = true;
                break; /* into the pump first */
            }
            if (k < 0 && errno == EINTR) continue;
            if (k < 0 && errno == EAGAIN) break;
            c->client_gone = true; /* a close without a close frame: the stream is over */
        }
        if (c->client_gone) {
            conn_free(c);
            return;
        }
        if (c->inlen) { /* client frames into the pump */
            size_t used = tcpws_pump_from_client(&c->pump, c->in, c->inlen);
            if (used) {
                memmove(c->in, c->in + used, c->inlen - used);
                c->inlen -= used;
                moved = true;
            }
        }
        const uint8_t *d;
        size_t n;
        while ((n = tcpws_pump_to_target(&c->pump, &d)) > 0) { /* their payload to the target */
            ssize_t k = send(c->tfd, d, n, MSG_NOSIGNAL);
            if (k > 0) {
                tcpws_pump_target_wrote(&c->pump, (size_t)k);
                moved = true;
                continue;
            }
            if (k < 0 && errno == EINTR) continue;
            if (k < 0 && errno == EAGAIN) break;
            /* The target stopped taking bytes: what the client sends is dropped, our close goes out. */
            c->pump.woff = c->pump.wend = 0;
            c->pump.peer_closed = true;
            tcpws_pump_close(&c->pump, OP_WS_CLOSE_GOING_AWAY, "the port's connection failed");
            c->target_eof = true;
            break;
        }
        if (c->pump.peer_closed && !c->target_shut && !tcpws_pump_to_target(&c->pump, &d)) {
            shutdown(c->tfd, SHUT_WR); /* the client's close: the target's FIN */
            c->target_shut = true;
        }
        size_t room;
        while (!c->target_eof && (room = tcpws_pump_target_room(&c->pump)) > 0) { /* target bytes */
            ssize_t k = recv(c->tfd, buf, room, 0);
            if (k > 0) {
                tcpws_pump_from_target(&c->pump, buf, (size_t)k);
                moved = true;
                continue;
            }
            if (k < 0 && errno == EINTR) continue;
            if (k < 0 && errno == EAGAIN) break;
            c->target_eof = true;
            tcpws_pump_close(&c->pump, k == 0 ? OP_WS_CLOSE_NORMAL : OP_WS_CLOSE_GOING_AWAY,
                             k == 0 ? "the port closed the connection" : "the port's connection failed");
            moved = true;
        }
        size_t before = tcpws_pump_to_client(&c->pump, &d);
        if (!flush_client(c)) {
            conn_free(c);
            return;
        }
        if (tcpws_pump_to_client(&c->pump, &d) != before) moved = true;
        if (tcpws_pump_done(&c->pump)) {
            conn_free(c);
            return;
        }
        if (!moved) break;
    }
    if (c->st != TW_OPEN) return;
    const uint8_t *d;
    uint32_t cm = 0, tm = 0;
    if (c->inlen < TW_IN_CAP) cm |= EPOLLIN | EPOLLRDHUP;
    if (tcpws_pump_to_client(&c->pump, &d)) cm |= EPOLLOUT;
    if (!c->target_eof && tcpws_pump_target_room(&c->pump)) tm |= EPOLLIN | EPOLLRDHUP;
    /* Client bytes the pump could take now (the round limit stopped it): the target's EPOLLOUT, ready at
     * once, brings the pump back. */
    if (tcpws_pump_to_target(&c->pump, &d) || (c->inlen && !c->pump.peer_closed)) tm |= EPOLLOUT;
    set_mask(t, c->cfd, &c->cpfd, cm); /* 0: out of the set until the pump wants it again */
    set_mask(t, c->tfd, &c->tpfd, tm);
}

/* Reads the request head; a complete one starts the dial. */
static void read_head(struct twconn *c)
{
    for (;;) {
        ssize_t k = recv(c->cfd, c->in + c->inlen, TW_IN_CAP - c->inlen, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno == EAGAIN) return;
        if (k <= 0) {
            conn_free(c);
            return;
        }
        c->inlen += (size_t)k;
        struct op_agent_ws_head h;
        int status;
        const char *why = "";
        int hl = op_agent_ws_head_parse((const char *)c->in, c->inlen, TW_IN_CAP, "/tcp", &h, &status, &why);
        if (hl == 0) {
            if (c->inlen < TW_IN_CAP) continue;
            hl = -1;
        }
        if (hl < 0) {
            op_info("agent", "tcp-ws: handshake refused with %d: %s", status, why);
            refuse(c, status, why);
            return;
        }
        opened(c, h.accept);                               /* queued; sent once the port answers */
        memmove(c->in, c->in + hl, c->inlen - (size_t)hl); /* frames that followed the head */
        c->inlen -= (size_t)hl;
        dial(c);
        return;
    }
}

static void on_dialed(struct twconn *c)
{
    int err = 0;
    socklen_t el = sizeof(err);
    if (getsockopt(c->tfd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
    if (err) {
        dial_failed(c, err);
        return;
    }
    c->st = TW_OPEN;
    c->deadline = 0;
    c->next_ping = op_now_ms() + OP_AGENT_TCPWS_PING_MS;
    op_debug("agent", "tcp-ws: stream to 127.0.0.1:%u open", c->port);
    pump(c);
}

static void update(struct twconn *c)
{
    struct op_agent_tcpws *t = c->srv;
    const uint8_t *d;
    switch (c->st) {
    case TW_HEAD:
        set_mask(t, c->cfd, &c->cpfd, EPOLLIN | EPOLLRDHUP);
        break;
    case TW_DIALING:
        set_mask(t, c->cfd, &c->cpfd, EPOLLRDHUP);
        set_mask(t, c->tfd, &c->tpfd, EPOLLOUT);
        break;
    case TW_FLUSH:
        if (!flush_client(c) || !tcpws_pump_to_client(&c->pump, &d)) {
            conn_free(c);
            break;
        }
        set_mask(t, c->cfd, &c->cpfd, EPOLLOUT | EPOLLRDHUP);
        break;
    case TW_OPEN:
    case TW_DEAD:
        break;
    }
}

static void on_event(struct twfd *f, uint32_t ev)
{
    struct twconn *c = f->c;
    if (c->st == TW_DEAD) return;
    if (!f->target) {
        if (c->st == TW_HEAD) {
            read_head(c);
        } else if (c->st == TW_OPEN) {
            pump(c);
        } else if ((ev & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && !(ev & EPOLLOUT)) {
            conn_free(c); /* the client left during the dial or the answer */
            return;
        }
    } else if (c->st == TW_DIALING) {
        on_dialed(c);
    } else if (c->st == TW_OPEN) {
        pump(c);
    }
    if (c->st != TW_DEAD && c->st != TW_OPEN) update(c);
}

/* ---- the thread -----------------------------------------------------------------------------------------
 */

static void answer_busy(int fd)
{
    static const char body[] = "{\"message\":\"Too many WebSocket streams on this agent.\"}";
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    /* A short answer on a socket with an empty send queue: taken whole. */
    (void)!send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void take_queue(struct op_agent_tcpws *t, bool *stop)
{
    uint64_t v;
    (void)!read(t->wakefd, &v, sizeof(v));
    pthread_mutex_lock(&t->mu);
    int n = t->nqueue;
    __typeof__(t->queue[0]) q[TW_QUEUE];
    memcpy(q, t->queue, sizeof(q[0]) * (size_t)n);
    t->nqueue = 0;
    *stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < n; i++) {
        if (*stop) {
            close(q[i].fd);
            continue;
        }
        if (t->nconns >= t->conf.max_conns) {
            op_warn("agent", "tcp-ws: %d streams open: one more refused", t->nconns);
            answer_busy(q[i].fd);
            continue;
        }
        op_debug("agent", "tcp-ws: a stream for port %u", q[i].port);
        struct twconn *c = calloc(1, sizeof(*c));
        if (!c || !(c->in = malloc(TW_IN_CAP)) || tcpws_pump_init(&c->pump) != 0) {
            if (c) free(c->in);
            free(c);
            close(q[i].fd);
            continue;
        }
        c->srv = t;
        c->cfd = q[i].fd;
        c->tfd = -1;
        c->port = q[i].port;
        c->cpfd = (struct twfd){.c = c, .target = false};
        c->tpfd = (struct twfd){.c = c, .target = true};
        c->st = TW_HEAD;
        c->deadline = op_now_ms() + OP_AGENT_TCPWS_HEAD_MS;
        fcntl(c->cfd, F_SETFL, fcntl(c->cfd, F_GETFL) | O_NONBLOCK);
        c->next = t->conns;
        if (t->conns) t->conns->prev = c;
        t->conns = c;
        t->nconns++;
        update(c);
    }
}

/* Deadlines and pings, once a second at most. */
static void tick(struct op_agent_tcpws *t, uint64_t now)
{
    for (struct twconn *c = t->conns, *next; c; c = next) {
        next = c->next;
        if (c->deadline && now >= c->deadline) {
            if (c->st == TW_DIALING) {
                dial_failed(c, ETIMEDOUT);
                update(c);
                continue;
            }
            op_debug("agent", "tcp-ws: connection in state %s timed out", state_name(c->st));
            conn_free(c);
            continue;
        }
        if (c->st == TW_OPEN && now >= c->next_ping) {
            c->next_ping = now + OP_AGENT_TCPWS_PING_MS;
            tcpws_pump_ping(&c->pump);
            pump(c);
        }
    }
}

static void *server_main(void *arg)
{
    struct op_agent_tcpws *t = arg;
    struct epoll_event evs[MAX_EVENTS];
    bool stop = false;
    uint64_t next_tick = op_now_ms() + 1000;
    while (!stop) {
        uint64_t now = op_now_ms();
        int timeout = next_tick > now ? (int)(next_tick - now) : 0;
        int n = epoll_wait(t->ep, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            struct twfd *f = evs[i].data.ptr;
            if (!f->c)
                take_queue(t, &stop);
            else
                on_event(f, evs[i].events);
        }
        now = op_now_ms();
        if (now >= next_tick) {
            tick(t, now);
            next_tick = now + 250;
        }
        free_dead(t);
    }
    return NULL;
}

int op_agent_tcpws_start(const struct op_agent_tcpws_conf *conf, struct op_agent_tcpws **out, char *err,
                         size_t errlen)
{
    struct op_agent_tcpws *t = calloc(1, sizeof(*t));
    if (!t) return -ENOMEM;
    t->conf = *conf;
    if (t->conf.max_conns < 1) t->conf.max_conns = 1;
    if (t->conf.dial_timeout_ms <= 0) t->conf.dial_timeout_ms = 5000;
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    t->wpfd = (struct twfd){.c = NULL};
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &t->wpfd};
    int rc = t->ep < 0 || t->wakefd < 0 || epoll_ctl(t->ep, EPOLL_CTL_ADD, t->wakefd, &e) != 0 ? -errno : 0;
    pthread_mutex_init(&t->mu, NULL);
    if (rc == 0) rc = -pthread_create(&t->thread, NULL, server_main, t);
    if (rc) {
        snprintf(err, errlen, "cannot start the WebSocket stream server: %s", strerror(-rc));
        if (t->ep >= 0) close(t->ep);
        if (t->wakefd >= 0) close(t->wakefd);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int op_agent_tcpws_serve(struct op_agent_tcpws *t, int fd, uint16_t port)
{
    pthread_mutex_lock(&t->mu);
    bool ok = !t->stop && t->nqueue < TW_QUEUE;
    if (ok) {
        t->queue[t->nqueue].fd = fd;
        t->queue[t->nqueue].port = port;
        t->nqueue++;
    }
    pthread_mutex_unlock(&t->mu);
    if (!ok) {
        close(fd);
        return -EAGAIN;
    }
    uint64_t one = 1;
    (void)!write(t->wakefd, &one, sizeof(one));
    return 0;
}

void op_agent_tcpws_stop(struct op_agent_tcpws *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_mutex_unlock(&t->mu);
    uint64_t one = 1;
    (void)!write(t->wakefd, &one, sizeof(one));
    pthread_join(t->thread, NULL);
    while (t->conns) { /* the thread is gone: a last close frame, best effort */
        struct twconn *c = t->conns;
        if (c->st == TW_OPEN) {
            tcpws_pump_close(&c->pump, OP_WS_CLOSE_GOING_AWAY, "the agent is shutting down");
            (void)flush_client(c);
        }
        conn_free(c);
    }
    free_dead(t);
    for (int i = 0; i < t->nqueue; i++)
        close(t->queue[i].fd);
    close(t->ep);
    close(t->wakefd);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
