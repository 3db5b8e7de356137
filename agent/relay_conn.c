/*
 * agent/relay_conn.c — the relay's connections: creation and teardown, the bounded out buffer, reads and
 * writes (plain or TLS through tls/client.h), the epoll interest per state, and the region's answer to an
 * HTTP Upgrade.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
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

#include "agent/relay_int.h"
#include "core/log.h"

/* ---- conns ------------------------------------------------------------------------------------------- */

struct conn *ar_conn_new(struct op_relay *r, int fd, enum kind k, struct region *rg)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->fd = fd;
    c->kind = k;
    c->rg = rg;
    if (rg) snprintf(c->rname, sizeof(c->rname), "%s", rg->label);
    c->incap = k == K_CONTROL ? CTL_IN : k == K_SPARE ? SPARE_IN : 0;
    c->outcap = k == K_CONTROL ? CTL_OUT : STREAM_BUF;
    c->in = c->incap ? malloc(c->incap) : NULL;
    c->out = malloc(c->outcap);
    if ((c->incap && !c->in) || !c->out) {
        free(c->in);
        free(c->out);
        free(c);
        return NULL;
    }
    c->next = r->conns;
    if (r->conns) r->conns->prev = c;
    r->conns = c;
    struct epoll_event ev = {.events = 0, .data.ptr = c};
    epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev);
    return c;
}

void ar_conn_close(struct op_relay *r, struct conn *c)
{
    if (c->st == S_DEAD) return;
    if (c->kind == K_TARGET) r->nstreams--;
    if (c->kind == K_SPARE && c->rg && c->st != S_RELAY) c->rg->nspares--;
    if (c->kind == K_CONTROL && c->rg && c->rg->ctl == c) {
        c->rg->ctl = NULL;
        c->rg->up = false;
    }
    c->st = S_DEAD;
    op_tlsc_free(c->tls);
    c->tls = NULL;
    close(c->fd);
    c->fd = -1;
    if (c->peer) {
        c->peer->peer = NULL;
        struct conn *p = c->peer;
        c->peer = NULL;
        ar_conn_close(r, p);
    }
}

void ar_reap(struct op_relay *r)
{
    for (struct conn *c = r->conns, *n; c; c = n) {
        n = c->next;
        if (c->st != S_DEAD) continue;
        if (c->prev)
            c->prev->next = c->next;
        else
            r->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        free(c->in);
        free(c->out);
        free(c);
    }
}

bool ar_out_pending(const struct conn *c)
{
    return c->outoff < c->outlen;
}

size_t ar_out_space(struct conn *c)
{
    if (c->outoff == c->outlen) c->outoff = c->outlen = 0;
    if (c->outlen == c->outcap && c->outoff > 0) {
        memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
        c->outlen -= c->outoff;
        c->outoff = 0;
    }
    return c->outcap - c->outlen;
}

int ar_queue(struct conn *c, const void *p, size_t n)
{
    if (ar_out_space(c) < n) return -ENOBUFS;
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    return 0;
}

void ar_update_mask(struct op_relay *r, struct conn *c)
{
    if (c->st == S_DEAD) return;
    uint32_t m = 0;
    switch (c->st) {
    case S_CONNECTING:
        m = EPOLLOUT;
        break;
    case S_TLS:
        m = op_tlsc_wants_write(c->tls) ? EPOLLOUT : EPOLLIN;
        break;
    case S_UPGRADE:
    case S_READY:
        m = (c->inlen < c->incap ? EPOLLIN : 0) | (ar_out_pending(c) ? EPOLLOUT : 0);
        break;
    case S_DIALING:
        m = EPOLLRDHUP | (ar_out_pending(c) ? EPOLLOUT : 0);
        break;
    case S_RELAY: {
        struct conn *p = c->peer;
        if (!c->rd_eof && p && (p->outlen - p->outoff) < p->outcap) m |= EPOLLIN;
        if (ar_out_pending(c) || (c->tls && op_tlsc_wants_write(c->tls))) m |= EPOLLOUT;
        break;
    }
    case S_FLUSH:
        m = EPOLLOUT | EPOLLIN;
        break;
    default:
        break;
    }
    if (m != c->mask) {
        struct epoll_event ev = {.events = m, .data.ptr = c};
        epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->mask = m;
    }
}

ssize_t ar_read(struct conn *c, void *buf, size_t n)
{
    if (c->tls) return op_tlsc_read(c->tls, buf, n);
    for (;;) {
        ssize_t k = recv(c->fd, buf, n, 0);
        if (k >= 0) return k;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static ssize_t io_write(struct conn *c, const void *buf, size_t n)
{
    if (c->tls) return op_tlsc_write(c->tls, buf, n);
    for (;;) {
        ssize_t k = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (k >= 0) return k;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

const char *ar_io_err(const struct conn *c, ssize_t rc)
{
    if (c->tls && *op_tlsc_error(c->tls)) return op_tlsc_error(c->tls);
    return strerror((int)-rc);
}

/* Writes what is queued. Returns 0, or -errno when the connection failed. */
int ar_flush(struct conn *c)
{
    while (ar_out_pending(c)) {
        ssize_t n = io_write(c, c->out + c->outoff, c->outlen - c->outoff);
        if (n == -EAGAIN) return 0;
        if (n < 0) return (int)n;
        c->outoff += (size_t)n;
    }
    c->outoff = c->outlen = 0;
    return 0;
}

/* ---- upgrade responses ------------------------------------------------------------------------------ */

/* Looks at the response head in c->in. Returns 1 for 101 (head consumed), 0 for "need more", -1 for a
 * refusal (reason in why, *status set). */
int ar_parse_upgrade(struct conn *c, const char *proto, int *status, char *why, size_t wl)
{
    uint8_t *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!end) {
        if (c->inlen >= HEAD_MAX) {
            snprintf(why, wl, "the response head is too long");
            return -1;
        }
        if (c->rd_eof) {
            snprintf(why, wl, "the region closed the connection before answering");
            return -1;
        }
        return 0;
    }
    size_t hl = (size_t)(end - c->in) + 4;
    char head[SPARE_IN + 1];
    size_t cp = hl < SPARE_IN ? hl : SPARE_IN;
    memcpy(head, c->in, cp);
    head[cp] = '\0';
    int code = 0;
    if (sscanf(head, "HTTP/1.%*1[01] %3d", &code) != 1) {
        snprintf(why, wl, "not an HTTP response");
        return -1;
    }
    *status = code;
    if (code == 101) {
        char want[64];
        snprintf(want, sizeof(want), "\r\nupgrade: %s\r\n", proto);
        if (!strcasestr(head, want)) {
            snprintf(why, wl, "101 without \"Upgrade: %s\"", proto);
            return -1;
        }
        memmove(c->in, c->in + hl, c->inlen - hl);
        c->inlen -= hl;
        return 1;
    }
    long clen = -1;
    const char *cl = strcasestr(head, "\r\ncontent-length:");
    if (cl) clen = strtol(cl + 17, NULL, 10);
    size_t have = c->inlen - hl;
    if (clen > 0 && have < (size_t)clen && !c->rd_eof && c->inlen < c->incap) return 0;
    char body[SPARE_IN + 1];
    size_t bl = have < SPARE_IN ? have : SPARE_IN;
    memcpy(body, c->in + hl, bl);
    body[bl] = '\0';
    cJSON *j = cJSON_Parse(body);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    snprintf(why, wl, "HTTP %d%s%s", code, cJSON_IsString(m) ? ": " : "",
             cJSON_IsString(m) ? m->valuestring : "");
    cJSON_Delete(j);
    return -1;
}
