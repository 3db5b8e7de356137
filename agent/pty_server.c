/*
 * agent/pty_server.c — the terminal server's thread (see pty.h, pty_int.h): one epoll loop over the
 * hand-over eventfd, every socket (edge-triggered), every PTY master and every child's pidfd; per socket
 * the request head, the handshake, WebSocket frames both ways, pings and the close.
 *
 * A socket closed during a round of events is only marked (PC_DEAD) and freed after the round, since
 * later events of the same round may still name it. Sessions are freed only by the deadline tick, which
 * runs after the events.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/pty_int.h"
#include "core/common.h"
#include "core/log.h"

#define MAX_EVENTS 64

uint64_t pty_now_ms(void)
{
    return op_now_ms();
}

const char *pty_conn_state_name(enum pconn_state s)
{
    switch (s) {
    case PC_READ_HEAD:
        return "read-head";
    case PC_OPEN:
        return "open";
    case PC_CLOSING:
        return "closing";
    case PC_DEAD:
        return "dead";
    }
    return "?";
}

/* The next ping, on a whole second: the pings of many idle sockets fall due together, so the deadline
 * pass over every socket runs at most once a second for them. */
static uint64_t ping_time(uint64_t now)
{
    return (now + OP_AGENT_PTY_PING_MS) / 1000 * 1000 + 1000;
}

static void conn_free(struct pconn *c)
{
    if (c->st == PC_DEAD) return;
    struct op_agent_pty *p = c->srv;
    pty_sess_detach(c);
    epoll_ctl(p->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->st = PC_DEAD;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = p->dead;
    p->dead = c;
    p->nconns--;
}

static void free_dead(struct op_agent_pty *p)
{
    while (p->dead) {
        struct pconn *c = p->dead;
        p->dead = c->next;
        free(c->in);
        free(c->out);
        free(c->msg);
        free(c);
    }
}

static size_t out_pending(const struct pconn *c)
{
    return c->outlen - c->outoff;
}

/* Room for n more bytes at the end of out (compacting first). */
static bool out_reserve(struct pconn *c, size_t n)
{
    if (c->outoff && c->outlen + n > PTY_OUT_CAP) {
        memmove(c->out, c->out + c->outoff, out_pending(c));
        c->outlen -= c->outoff;
        c->outoff = 0;
    }
    return c->outlen + n <= PTY_OUT_CAP;
}

static bool queue(struct pconn *c, const void *d, size_t n)
{
    if (!out_reserve(c, n)) return false;
    memcpy(c->out + c->outlen, d, n);
    c->outlen += n;
    return true;
}

static bool queue_frame(struct pconn *c, uint8_t opcode, const void *payload, size_t n)
{
    uint8_t h[OP_WS_MAX_HEADER];
    size_t hl = op_ws_encode_header(h, true, opcode, n);
    if (!out_reserve(c, hl + n)) return false;
    memcpy(c->out + c->outlen, h, hl);
    if (n) memcpy(c->out + c->outlen + hl, payload, n);
    c->outlen += hl + n;
    return true;
}

/* Writes what is queued. Returns 0 (all written, or the socket is full: EPOLLOUT will say when), -1 on
 * a dead peer. */
static int flush(struct pconn *c)
{
    while (out_pending(c)) {
        ssize_t n = send(c->fd, c->out + c->outoff, out_pending(c), MSG_NOSIGNAL);
        if (n > 0) {
            c->outoff += (size_t)n;
            if (c->stall_since) c->stall_since = pty_now_ms();
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            c->wr_blocked = true;
            return 0;
        }
        return -1;
    }
    c->outoff = c->outlen = 0;
    return 0;
}

/* Queues the close frame, stops reading input and goes CLOSING (detached from its session). */
static void start_close(struct pconn *c, uint16_t code, const char *reason)
{
    if (c->st != PC_OPEN) return;
    uint8_t pl[OP_WS_MAX_CONTROL];
    size_t n = op_ws_close_payload(pl, code, reason);
    pty_sess_detach(c);
    c->st = PC_CLOSING;
    c->deadline = pty_now_ms() + PTY_CLOSE_MS;
    pty_want_tick(c->srv, c->deadline);
    if (!queue_frame(c, OP_WS_CLOSE, pl, n) || flush(c) != 0 || !out_pending(c)) conn_free(c);
}

void pty_conn_cut(struct pconn *c, uint16_t code, const char *reason)
{
    if (c->st == PC_OPEN) {
        op_debug("agent", "pty: socket closed with %u: %s", code, reason);
        start_close(c, code, reason);
    } else {
        conn_free(c);
    }
}

/* An HTTP answer instead of the upgrade, then closed. */
static void refuse(struct pconn *c, int status, const char *why)
{
    const char *phrase = status == 404   ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 503 ? "Service Unavailable"
                         : status == 500 ? "Internal Server Error"
                                         : "Bad Request";
    op_info("agent", "pty: handshake refused with %d: %s", status, why);
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, phrase, strlen(why) + 1, why);
    c->st = PC_CLOSING;
    c->deadline = pty_now_ms() + PTY_CLOSE_MS;
    pty_want_tick(c->srv, c->deadline);
    if (n < 0 || (size_t)n >= sizeof(buf) || !queue(c, buf, (size_t)n) || flush(c) != 0 || !out_pending(c))
        conn_free(c);
}

/* Feeds c binary frames from its session's ring while its out buffer has room. */
void pty_conn_output(struct pconn *c)
{
    struct psess *s = c->sess;
    if (c->st != PC_OPEN || !s) return;
    if (c->pos < pty_sess_ring_start(s)) {
        pty_conn_cut(c, OP_WS_CLOSE_POLICY, "the terminal's output was not read in time");
        return;
    }
    for (int round = 0; round < 8 && c->pos < s->total; round++) {
        size_t pend = out_pending(c);
        if (pend + OP_WS_MAX_HEADER + PTY_OUT_CTRL + 512 > PTY_OUT_CAP) break;
        size_t room = PTY_OUT_CAP - PTY_OUT_CTRL - OP_WS_MAX_HEADER - pend;
        uint64_t avail = s->total - c->pos;
        size_t n = avail < room ? (size_t)avail : room;
        uint8_t h[OP_WS_MAX_HEADER];
        size_t hl = op_ws_encode_header(h, true, OP_WS_BINARY, n);
        if (!out_reserve(c, hl + n)) break;
        memcpy(c->out + c->outlen, h, hl);
        pty_sess_copy(s, c->pos, c->out + c->outlen + hl, n);
        c->outlen += hl + n;
        c->pos += n;
        if (flush(c) != 0) {
            conn_free(c);
            return;
        }
        if (c->wr_blocked) break;
    }
    if (flush(c) != 0) {
        conn_free(c);
        return;
    }
    uint64_t now = pty_now_ms();
    if (c->pos < s->total || out_pending(c)) {
        if (!c->stall_since) {
            c->stall_since = now;
            pty_want_tick(c->srv, now + (uint64_t)c->srv->conf.stall_ms);
        }
    } else {
        c->stall_since = 0;
    }
    if (s->st == PS_EXITED && c->pos == s->total) {
        char why[64];
        pty_sess_exit_reason(s, why, sizeof(why));
        start_close(c, OP_WS_CLOSE_NORMAL, why);
        return;
    }
    pty_sess_update(s); /* the socket took output: the PTY may be read again */
}

/* Writes waiting keystrokes to the PTY. Returns true when none are left. */
static bool write_keys(struct pconn *c)
{
    struct psess *s = c->sess;
    while (c->wend > c->woff) {
        if (!s || s->master < 0 || s->st != PS_RUNNING) break; /* nobody to type to: dropped */
        ssize_t n = write(s->master, c->msg + c->woff, c->wend - c->woff);
        if (n > 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            pty_sess_update(s); /* EPOLLOUT on the master */
            return false;
        }
        break;
    }
    c->woff = c->wend = 0;
    if (s) pty_sess_update(s);
    return true;
}

/* One client message: a JSON object with "data" (keystrokes) and/or "height" and "width". */
static void on_message(struct pconn *c)
{
    cJSON *j = cJSON_ParseWithLength((const char *)c->msg, c->rd.msg_len);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "height");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "width");
    if (!cJSON_IsObject(j) || (data && !cJSON_IsString(data)) || (h && !cJSON_IsNumber(h)) ||
        (w && !cJSON_IsNumber(w))) {
        cJSON_Delete(j);
        pty_conn_cut(c, OP_WS_CLOSE_UNSUPPORTED,
                     "expected a JSON object {\"data\":string} or {\"height\":rows,\"width\":cols}");
        return;
    }
    if (h && w && c->sess) pty_sess_resize(c->sess, (int)w->valuedouble, (int)h->valuedouble);
    if (data) {
        size_t n = strlen(data->valuestring); /* never longer than the message it came in */
        memcpy(c->msg, data->valuestring, n);
        c->woff = 0;
        c->wend = n;
    }
    cJSON_Delete(j);
    if (c->wend) (void)write_keys(c);
}

static const char *close_text(int code)
{
    switch (code) {
    case OP_WS_CLOSE_TOO_BIG:
        return "message too big (the limit is 64 KiB)";
    case OP_WS_CLOSE_INVALID_DATA:
        return "invalid UTF-8 in a text message";
    default:
        return "protocol error";
    }
}

/* Frames in c->in: decoded until the input is used up, keystrokes wait for the PTY, or c closes. */
static void process_in(struct pconn *c)
{
    size_t off = 0;
    while (off < c->inlen && c->st == PC_OPEN && c->wend == c->woff) {
        size_t used = 0;
        int ev = op_ws_read(&c->rd, c->in + off, c->inlen - off, &used);
        off += used;
        if (ev < 0) {
            pty_conn_cut(c, (uint16_t)-ev, close_text(-ev));
            break;
        }
        if (ev == OP_WS_EV_MESSAGE) {
            on_message(c);
        } else if (ev == OP_WS_EV_PING) {
            if (!queue_frame(c, OP_WS_PONG, c->rd.ctrl, c->rd.ctrl_len) || flush(c) != 0) conn_free(c);
        } else if (ev == OP_WS_EV_CLOSE) {
            uint16_t code = c->rd.close_code == OP_WS_CLOSE_NO_STATUS ? OP_WS_CLOSE_NORMAL : c->rd.close_code;
            start_close(c, code, "");
        } else if (ev == OP_WS_EV_NONE && used == 0) {
            break;
        }
    }
    if (c->st == PC_DEAD) return;
    if (off >= c->inlen)
        c->inlen = 0;
    else if (off) {
        memmove(c->in, c->in + off, c->inlen - off);
        c->inlen -= off;
    }
}

static void handshake(struct pconn *c)
{
    struct pty_req req;
    int status = 400;
    const char *why = "";
    int hl = pty_parse_head((const char *)c->in, c->inlen, &req, &status, &why);
    if (hl == 0) return;
    if (hl < 0) {
        refuse(c, status, why);
        return;
    }
    struct op_agent_pty *p = c->srv;
    struct psess *s = pty_sess_find(p, req.id);
    bool fresh = !s;
    if (!s) {
        int rc = pty_sess_spawn(p, &req, &s);
        if (rc == -EAGAIN) {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "too many terminal sessions on this agent (the limit is %d): close one, or wait for "
                     "an unused one to time out",
                     p->conf.max_sessions);
            refuse(c, 503, msg);
            return;
        }
        if (rc) {
            refuse(c, 500, "cannot start a shell on the agent");
            return;
        }
    }
    c->msg = malloc(OP_AGENT_PTY_MAX_MSG);
    if (!c->msg) {
        refuse(c, 503, "out of memory");
        return;
    }
    op_ws_reader_init(&c->rd, c->msg, OP_AGENT_PTY_MAX_MSG);
    char resp[200];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     req.accept);
    (void)queue(c, resp, (size_t)n);
    c->st = PC_OPEN;
    c->deadline = 0;
    c->next_ping = ping_time(pty_now_ms());
    pty_want_tick(p, c->next_ping);
    memmove(c->in, c->in + hl, c->inlen - (size_t)hl); /* frames that followed the head */
    c->inlen -= (size_t)hl;
    pty_sess_attach(s, c);
    pty_sess_resize(s, req.cols, req.rows);
    op_debug("agent", "pty: socket %s session %s (%d attached)", fresh ? "started" : "attached to", s->id,
             s->nconns);
    pty_conn_output(c); /* the 101 and the scrollback */
    if (c->st == PC_OPEN && c->inlen) process_in(c);
}

/* Reads the socket until it is drained (the socket is edge-triggered), the input waits for the PTY, or
 * c closes. A closing socket's input is dropped, a few reads per event (its deadline ends it anyway). */
static void conn_read(struct pconn *c)
{
    for (int closing_reads = 0; c->st != PC_DEAD && closing_reads < 4;) {
        if (c->st == PC_CLOSING) closing_reads++;
        if (c->st == PC_OPEN && c->wend > c->woff) return; /* resumed once the PTY takes the keys */
        if (c->inlen >= PTY_IN_CAP) {
            if (c->st == PC_READ_HEAD) handshake(c); /* a head that fills the buffer: refused */
            if (c->st == PC_OPEN) process_in(c);
            if (c->st == PC_CLOSING) c->inlen = 0;
            if (c->inlen >= PTY_IN_CAP) return;
            continue;
        }
        ssize_t n = recv(c->fd, c->in + c->inlen, PTY_IN_CAP - c->inlen, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            conn_free(c); /* the peer is gone (in CLOSING: done either way) */
            return;
        }
        c->inlen += (size_t)n;
        if (c->st == PC_READ_HEAD)
            handshake(c);
        else if (c->st == PC_OPEN)
            process_in(c);
        if (c->st == PC_CLOSING) c->inlen = 0; /* after our close (or an error page) input is dropped */
    }
}

bool pty_conn_write_keys(struct pconn *c)
{
    if (!write_keys(c)) return true;
    /* Frames already read wait in c->in, and the socket was left unread while the keys waited. */
    if (c->st == PC_OPEN && c->inlen) process_in(c);
    if (c->st != PC_DEAD) conn_read(c);
    return c->st != PC_DEAD;
}

static void on_conn(struct pconn *c, uint32_t ev)
{
    if (ev & EPOLLOUT) {
        c->wr_blocked = false;
        if (flush(c) != 0) {
            conn_free(c);
            return;
        }
        if (c->st == PC_OPEN)
            pty_conn_output(c);
        else if (c->st == PC_CLOSING && !out_pending(c))
            conn_free(c);
    }
    if (c->st != PC_DEAD && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) conn_read(c);
}

static void take_queue(struct op_agent_pty *p, bool *stop)
{
    uint64_t v;
    (void)!read(p->wakefd, &v, sizeof(v));
    int fds[PTY_QUEUE];
    pthread_mutex_lock(&p->mu);
    int n = p->nqueue;
    memcpy(fds, p->queue, sizeof(int) * (size_t)n);
    p->nqueue = 0;
    *stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    uint64_t now = pty_now_ms();
    for (int i = 0; i < n; i++) {
        struct pconn *c = calloc(1, sizeof(*c));
        if (c) {
            c->in = malloc(PTY_IN_CAP);
            c->out = malloc(PTY_OUT_CAP);
        }
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = NULL};
        if (!c || !c->in || !c->out || (*stop)) goto fail;
        c->srv = p;
        c->fd = fds[i];
        c->pfd = (struct pfd){PFD_CONN, c};
        c->st = PC_READ_HEAD;
        c->deadline = now + OP_AGENT_PTY_HEAD_MS;
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        e.data.ptr = &c->pfd;
        if (epoll_ctl(p->ep, EPOLL_CTL_ADD, c->fd, &e) != 0) goto fail;
        c->next = p->conns;
        if (p->conns) p->conns->prev = c;
        p->conns = c;
        p->nconns++;
        pty_want_tick(p, c->deadline);
        continue;
    fail:
        close(fds[i]);
        if (c) {
            free(c->in);
            free(c->out);
        }
        free(c);
    }
}

/* Deadlines of every socket and session; sets next_tick to the earliest one left. */
static void tick(struct op_agent_pty *p, uint64_t now)
{
    p->next_tick = 0;
    for (struct pconn *c = p->conns, *next; c; c = next) {
        next = c->next;
        if (c->deadline && now >= c->deadline) {
            op_debug("agent", "pty: socket in state %s timed out", pty_conn_state_name(c->st));
            conn_free(c);
            continue;
        }
        if (c->st == PC_OPEN && c->stall_since && now - c->stall_since >= (uint64_t)p->conf.stall_ms) {
            op_info("agent", "pty: a socket took no output for %d ms: cut", p->conf.stall_ms);
            conn_free(c); /* its buffer is full: no close frame would get through */
            continue;
        }
        if (c->st == PC_OPEN && now >= c->next_ping) {
            if (!queue_frame(c, OP_WS_PING, NULL, 0) || flush(c) != 0) {
                conn_free(c);
                continue;
            }
            c->next_ping = ping_time(now);
        }
        pty_want_tick(p, c->deadline);
        if (c->st == PC_OPEN) pty_want_tick(p, c->next_ping);
        if (c->st == PC_OPEN && c->stall_since) pty_want_tick(p, c->stall_since + (uint64_t)p->conf.stall_ms);
    }
    for (struct psess *s = p->sessions, *next; s; s = next) {
        next = s->next;
        bool freed;
        pty_want_tick(p, pty_sess_tick(s, now, &freed));
    }
}

static void *server_main(void *arg)
{
    struct op_agent_pty *p = arg;
    struct epoll_event evs[MAX_EVENTS];
    bool stop = false;
    while (!stop) {
        uint64_t now = pty_now_ms();
        int timeout = 1000;
        if (p->next_tick)
            timeout = p->next_tick <= now ? 0 : (int)(p->next_tick - now < 1000 ? p->next_tick - now : 1000);
        int n = epoll_wait(p->ep, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            struct pfd *f = evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            switch (f->kind) {
            case PFD_WAKE:
                take_queue(p, &stop);
                break;
            case PFD_CONN: {
                struct pconn *c = f->owner;
                if (c->st != PC_DEAD) on_conn(c, ev);
                break;
            }
            case PFD_MASTER:
                pty_sess_on_master(f->owner, ev);
                break;
            case PFD_CHILD:
                pty_sess_on_child(f->owner);
                break;
            }
        }
        now = pty_now_ms();
        if (p->next_tick && now >= p->next_tick) tick(p, now);
        free_dead(p);
    }
    return NULL;
}

int op_agent_pty_start(const struct op_agent_pty_conf *conf, struct op_agent_pty **out, char *err,
                       size_t errlen)
{
    struct op_agent_pty *p = calloc(1, sizeof(*p));
    if (!p) return -ENOMEM;
    p->conf = *conf;
    if (p->conf.max_sessions < 1) p->conf.max_sessions = 1;
    if (p->conf.timeout_ms < 0) p->conf.timeout_ms = 0;
    if (p->conf.stall_ms <= 0) p->conf.stall_ms = OP_AGENT_PTY_STALL_MS;
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->wpfd = (struct pfd){PFD_WAKE, p};
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &p->wpfd};
    int rc = p->ep < 0 || p->wakefd < 0 || epoll_ctl(p->ep, EPOLL_CTL_ADD, p->wakefd, &e) != 0 ? -errno : 0;
    pthread_mutex_init(&p->mu, NULL);
    if (rc == 0) rc = -pthread_create(&p->thread, NULL, server_main, p);
    if (rc) {
        snprintf(err, errlen, "cannot start the terminal server: %s", strerror(-rc));
        if (p->ep >= 0) close(p->ep);
        if (p->wakefd >= 0) close(p->wakefd);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rc;
    }
    op_info("agent", "pty: terminal server up (at most %d sessions, reconnect timeout %d ms)",
            p->conf.max_sessions, p->conf.timeout_ms);
    *out = p;
    return 0;
}

int op_agent_pty_serve(struct op_agent_pty *p, int fd)
{
    pthread_mutex_lock(&p->mu);
    bool ok = !p->stop && p->nqueue < PTY_QUEUE;
    if (ok) p->queue[p->nqueue++] = fd;
    pthread_mutex_unlock(&p->mu);
    if (!ok) {
        close(fd);
        return -EAGAIN;
    }
    uint64_t one = 1;
    (void)!write(p->wakefd, &one, sizeof(one));
    return 0;
}

void op_agent_pty_stop(struct op_agent_pty *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    uint64_t one = 1;
    (void)!write(p->wakefd, &one, sizeof(one));
    pthread_join(p->thread, NULL);
    /* The thread is gone: what it held is torn down here. */
    while (p->conns) {
        struct pconn *c = p->conns;
        if (c->st == PC_OPEN) start_close(c, OP_WS_CLOSE_GOING_AWAY, "the agent is shutting down");
        if (c->st != PC_DEAD) conn_free(c);
    }
    free_dead(p);
    for (struct psess *s = p->sessions; s; s = s->next)
        pty_sess_hangup(s);
    for (int i = 0; i < 50 && p->sessions; i++) { /* up to 0.5 s for the shells to take the hang-up */
        for (struct psess *s = p->sessions, *next; s; s = next) {
            next = s->next;
            if (s->st != PS_EXITED) pty_sess_on_child(s);
            if (s->st == PS_EXITED) pty_sess_free(s);
        }
        if (p->sessions) usleep(10000);
    }
    while (p->sessions)
        pty_sess_free(p->sessions); /* SIGKILL and reap what is left */
    for (int i = 0; i < p->nqueue; i++)
        close(p->queue[i]);
    close(p->ep);
    close(p->wakefd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
