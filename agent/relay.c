/*
 * agent/relay.c — the relay thread (see relay.h): the epoll loop, what each connection does on an event,
 * the timers (reconnections, heartbeats, deadlines), the shutdown, and the calls of the control thread.
 *
 * Every socket is a struct conn (relay_int.h) registered with epoll (level-triggered) with the interest
 * its state needs. The files: relay_conn.c (buffers, reads and writes, HTTP Upgrade answers),
 * relay_region.c (control connections, backoff, frames, spares, the region list), relay_stream.c (OPEN,
 * the target's dial, the pump and half-close).
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

/* ---- per-connection events ----------------------------------------------------------------------------- */

void ar_fail_conn(struct op_relay *r, struct conn *c, const char *why)
{
    if (c->kind == K_CONTROL && c->rg && c->rg->ctl == c)
        ar_control_failed(r, c->rg, "%s", why);
    else if (c->kind == K_SPARE && c->st != S_RELAY)
        ar_spare_failed(r, c, why);
    else
        ar_conn_close(r, c);
}

static void handle_ready_input(struct op_relay *r, struct conn *c)
{
    char why[300] = "";
    if (c->kind == K_CONTROL) {
        size_t off = 0;
        while (off < c->inlen) {
            struct op_af_frame f;
            int n = op_af_decode(c->in + off, c->inlen - off, &f);
            if (n == 0) break;
            if (n < 0) {
                ar_fail_conn(r, c,
                             n == -EMSGSIZE ? "the region sent an oversized frame"
                                            : "the region sent an invalid frame");
                return;
            }
            if (!ar_on_frame(r, c, &f, why, sizeof(why))) {
                ar_fail_conn(r, c, why);
                return;
            }
            off += (size_t)n;
        }
        memmove(c->in, c->in + off, c->inlen - off);
        c->inlen -= off;
        if (c->rd_eof) ar_fail_conn(r, c, "the region closed the connection");
        return;
    }
    /* A parked spare: one OPEN line. */
    uint8_t *nl = memchr(c->in, '\n', c->inlen);
    if (!nl) {
        if (c->inlen >= LINE_MAX)
            ar_refuse(r, c, 0, OP_AF_FAIL_OTHER, "line too long");
        else if (c->rd_eof && !c->inlen && now_ms() - c->ready_ms >= SPARE_IDLE_QUIET_MS) {
            op_debug("agent", "region %s: the region closed an idle spare; replacing it", c->rname);
            ar_conn_close(r, c); /* replaced at the next top-up, without a warning or a backoff */
        } else if (c->rd_eof)
            ar_spare_failed(r, c, "the region closed the spare connection");
        return;
    }
    size_t ll = (size_t)(nl - c->in);
    char line[LINE_MAX + 1];
    memcpy(line, c->in, ll);
    line[ll] = '\0';
    if (ll && line[ll - 1] == '\r') line[ll - 1] = '\0';
    memmove(c->in, nl + 1, c->inlen - ll - 1);
    c->inlen -= ll + 1;
    ar_on_open(r, c, line);
}

void ar_on_event(struct op_relay *r, struct conn *c, uint32_t ev)
{
    if (c->st == S_DEAD) return;
    if (c->st == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
        if (!err && !(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        if (c->kind == K_TARGET) {
            ar_target_connected(r, c, err);
            return;
        }
        if (err) {
            char why[200];
            snprintf(why, sizeof(why), "connect: %s", strerror(err));
            ar_fail_conn(r, c, why);
            return;
        }
        if (c->rg->tls) {
            c->tls = op_tlsc_new(r->tlsctx, c->fd, c->rg->host);
            if (!c->tls) {
                ar_fail_conn(r, c, "TLS: cannot create a session");
                return;
            }
            c->st = S_TLS;
        } else {
            c->st = S_UPGRADE;
        }
    }
    if (c->st == S_TLS) {
        int rc = op_tlsc_handshake(c->tls);
        if (rc == -EAGAIN) return;
        if (c->kind == K_TARGET) { /* an https app: the stream opens once its handshake is done */
            ar_target_tls_done(r, c, rc ? op_tlsc_error(c->tls) : NULL);
            return;
        }
        if (rc) {
            char why[240];
            snprintf(why, sizeof(why), "TLS: %s", op_tlsc_error(c->tls));
            ar_fail_conn(r, c, why);
            return;
        }
        c->st = S_UPGRADE;
    }
    if (c->st == S_RELAY) {
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR) || (c->tls && op_tlsc_pending(c->tls)))
            if (!ar_pump(r, c)) return;
        if (c->st != S_DEAD && c->peer) {
            if (ar_flush(c)) {
                ar_conn_close(r, c);
                return;
            }
            ar_maybe_shut(r, c->peer);
            if (c->st != S_DEAD && c->peer && c->peer->st == S_RELAY) ar_pump(r, c->peer); /* space freed */
        }
        return;
    }
    if (c->st == S_DIALING) {
        if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            ar_conn_close(r, c); /* the region gave up */
        else if (ar_flush(c))
            ar_conn_close(r, c);
        return;
    }
    if (ar_flush(c)) {
        ar_fail_conn(r, c, "write failed");
        return;
    }
    if (c->st == S_FLUSH) {
        if (!ar_out_pending(c)) ar_conn_close(r, c);
        return;
    }
    /* S_UPGRADE, S_READY: read what there is */
    while (c->inlen < c->incap && !c->rd_eof) {
        ssize_t n = ar_read(c, c->in + c->inlen, c->incap - c->inlen);
        if (n == -EAGAIN) break;
        if (n < 0) {
            char why[240];
            snprintf(why, sizeof(why), "read: %s", ar_io_err(c, n));
            ar_fail_conn(r, c, why);
            return;
        }
        if (n == 0)
            c->rd_eof = true;
        else
            c->inlen += (size_t)n;
    }
    if (c->st == S_UPGRADE) {
        int status = 0;
        char why[300];
        int rc = ar_parse_upgrade(c, c->kind == K_CONTROL ? "outpost-agent/1" : "outpost-stream/1", &status,
                                  why, sizeof(why));
        if (rc == 0) return;
        if (rc < 0) {
            /* 401 (the credential was refused: expired, or dated before a revocation) and 403 (a key the
             * region does not know yet, or the agent is gone): the main loop fetches a fresh credential and
             * asks the primary whether the token still holds, before the connection's next attempt. */
            if ((status == 401 || status == 403) && c->kind == K_CONTROL) {
                pthread_mutex_lock(&r->mu);
                r->revoked = true;
                snprintf(r->revoked_why, sizeof(r->revoked_why), "region %.100s: %.290s", c->rname, why);
                pthread_mutex_unlock(&r->mu);
            }
            ar_fail_conn(r, c, why);
            return;
        }
        c->st = S_READY;
        c->deadline = 0;
        c->ready_ms = now_ms();
        if (c->kind == K_SPARE) c->rg->spare_failures = 0;
        if (c->kind == K_CONTROL) {
            c->rg->last_rx = now_ms();
            ar_send_hello(r, c);
            if (ar_flush(c)) {
                ar_fail_conn(r, c, "write failed");
                return;
            }
        }
    }
    if (c->st == S_READY && (c->inlen || c->rd_eof)) handle_ready_input(r, c);
}

static int timers(struct op_relay *r)
{
    uint64_t now = now_ms(), next = now + 1000;
    int nctl = 0;
    for (struct region *rg = r->regions; rg; rg = rg->next) {
        if (!rg->ctl && !r->stop && *r->my_cred) { /* nothing to present before the first credential */
            if (now >= rg->retry_at && nctl < r->conf.max_regions) ar_open_control(r, rg);
            if (!rg->ctl && rg->retry_at < next) next = rg->retry_at;
        }
        if (rg->ctl) nctl++;
        if (rg->up && rg->ctl) {
            if (now - rg->last_rx > 3ull * rg->hb_ms) {
                ar_control_failed(r, rg, "no frame from the region for 3 heartbeats (%ums each)", rg->hb_ms);
                continue;
            }
            if (now >= rg->next_ping) {
                struct op_af_frame f = {.type = OP_AF_PING, .nonce = ++rg->nonce};
                (void)ar_send_frame(rg->ctl, &f);
                if (ar_flush(rg->ctl)) {
                    ar_control_failed(r, rg, "write failed");
                    continue;
                }
                rg->next_ping = now + rg->hb_ms;
            }
            if (rg->next_ping < next) next = rg->next_ping;
            ar_top_up_spares(r, rg, 0);
            if (rg->nspares < rg->spares_wanted && rg->spare_retry_at < next) next = rg->spare_retry_at;
        }
    }
    for (struct conn *c = r->conns; c; c = c->next) {
        if (c->st == S_DEAD || !c->deadline) continue;
        if (now >= c->deadline) {
            if (c->kind == K_TARGET && (c->st == S_CONNECTING || c->st == S_TLS))
                ar_target_connected(r, c, ETIMEDOUT);
            else if (c->st == S_FLUSH || c->st == S_RELAY)
                ar_conn_close(r, c);
            else
                ar_fail_conn(
                    r, c, c->st == S_CONNECTING ? "connect: timed out" : "timed out waiting for the region");
        } else if (c->deadline < next) {
            next = c->deadline;
        }
    }
    for (struct conn *c = r->conns; c; c = c->next)
        ar_update_mask(r, c);
    ar_reap(r);
    now = now_ms();
    return next > now ? (int)(next - now) : 0;
}

static void shutdown_all(struct op_relay *r)
{
    for (struct region *rg = r->regions; rg; rg = rg->next)
        ar_region_remove(r, rg, "agent shutting down");
    ar_publish_connected(r);
    /* Streams: FIN both ways, then up to grace_ms for the peers to finish. */
    uint64_t deadline = now_ms() + (uint64_t)r->grace_ms;
    for (struct conn *c = r->conns; c; c = c->next) {
        if (c->st == S_RELAY) {
            c->rd_eof = true; /* read no more */
            (void)ar_flush(c);
            if (c->tls) (void)op_tlsc_shutdown(c->tls);
            shutdown(c->fd, SHUT_WR);
            c->wr_shut = true;
            c->deadline = deadline;
        } else if (c->st != S_DEAD) {
            ar_conn_close(r, c);
        }
    }
    ar_reap(r);
    while (r->conns && now_ms() < deadline) {
        struct epoll_event evs[64];
        int n = epoll_wait(r->ep, evs, 64, 50);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if ((void *)c == (void *)r || c->st == S_DEAD) continue;
            char sink[4096];
            ssize_t k = ar_read(c, sink, sizeof(sink));
            if (k == 0 || (k < 0 && k != -EAGAIN)) ar_conn_close(r, c); /* the peer finished */
        }
        for (struct conn *c = r->conns; c; c = c->next)
            if (c->st != S_DEAD) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        ar_reap(r);
    }
    for (struct conn *c = r->conns; c; c = c->next)
        ar_conn_close(r, c);
    ar_reap(r);
}

static void *relay_main(void *arg)
{
    struct op_relay *r = arg;
    struct epoll_event evs[128];
    for (;;) {
        int timeout = timers(r);
        int n = epoll_wait(r->ep, evs, 128, timeout);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == (void *)r) {
                uint64_t v;
                ssize_t k = read(r->wakefd, &v, sizeof(v));
                (void)k;
                ar_apply_regions(r);
                continue;
            }
            ar_on_event(r, evs[i].data.ptr, evs[i].events);
        }
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        for (struct conn *c = r->conns; c; c = c->next)
            ar_update_mask(r, c);
        ar_reap(r);
    }
    shutdown_all(r);
    return NULL;
}

/* ---- the control thread's side --------------------------------------------------------------------- */

int op_relay_start(const struct op_relay_conf *conf, struct op_relay **out, char *err, size_t errlen)
{
    struct op_relay *r = calloc(1, sizeof(*r));
    if (!r) return -ENOMEM;
    r->conf = *conf;
    pthread_mutex_init(&r->mu, NULL);
    /* An https region needs the TLS context; a bad CA file is reported when such a region is dialed. */
    if (op_tlsc_ctx_new(conf->ca_file, &r->tlsctx, r->tls_err, sizeof(r->tls_err)) != 0) r->tlsctx = NULL;
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    r->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->ep < 0 || r->wakefd < 0) {
        snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = r};
    epoll_ctl(r->ep, EPOLL_CTL_ADD, r->wakefd, &ev);
    int rc = pthread_create(&r->thread, NULL, relay_main, r);
    if (rc) {
        snprintf(err, errlen, "cannot start the relay thread: %s", strerror(rc));
        goto fail;
    }
    *out = r;
    return 0;
fail:
    if (r->ep >= 0) close(r->ep);
    if (r->wakefd >= 0) close(r->wakefd);
    op_tlsc_ctx_free(r->tlsctx);
    free(r);
    return -EIO;
}

static void wake(struct op_relay *r)
{
    uint64_t one = 1;
    ssize_t k = write(r->wakefd, &one, sizeof(one));
    (void)k;
}

void op_relay_set_regions(struct op_relay *r, const struct op_relay_region *regions, int n)
{
    struct region *list = NULL;
    for (int i = n - 1; i >= 0; i--) {
        struct region *rg = calloc(1, sizeof(*rg));
        if (!rg) continue;
        rg->cfg = regions[i];
        if (rg->cfg.replica[0])
            snprintf(rg->label, sizeof(rg->label), "%s replica %.8s", rg->cfg.name, rg->cfg.replica);
        else
            snprintf(rg->label, sizeof(rg->label), "%s", rg->cfg.name);
        uint16_t port;
        rg->tls = strncasecmp(rg->cfg.url, "https://", 8) == 0;
        if (op_agent_url_hostport(rg->cfg.url, rg->host, sizeof(rg->host), &port) != 0) {
            snprintf(rg->resolve_err, sizeof(rg->resolve_err), "the access URL \"%.60s\" is not valid",
                     rg->cfg.url);
        } else {
            bool v6 = strchr(rg->host, ':') != NULL;
            snprintf(rg->hostport, sizeof(rg->hostport), "%s%s%s:%u", v6 ? "[" : "", rg->host, v6 ? "]" : "",
                     port);
            /* resolved here, on the control thread, so that the relay loop never waits on DNS */
            struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
            char ps[8];
            snprintf(ps, sizeof(ps), "%u", port);
            int g = getaddrinfo(rg->host, ps, &hints, &res);
            if (g == 0 && res) {
                memcpy(&rg->addr, res->ai_addr, res->ai_addrlen);
                rg->alen = res->ai_addrlen;
            } else {
                snprintf(rg->resolve_err, sizeof(rg->resolve_err), "cannot resolve %s: %s", rg->host,
                         gai_strerror(g));
            }
            if (res) freeaddrinfo(res);
        }
        rg->next = list;
        list = rg;
    }
    pthread_mutex_lock(&r->mu);
    for (struct region *o = r->pending, *on; o; o = on) {
        on = o->next;
        free(o);
    }
    r->pending = list;
    r->pending_set = true;
    pthread_mutex_unlock(&r->mu);
    wake(r);
}

void op_relay_set_credential(struct op_relay *r, const char *jws)
{
    pthread_mutex_lock(&r->mu);
    snprintf(r->cred, sizeof(r->cred), "%s", jws);
    r->cred_dirty = true;
    pthread_mutex_unlock(&r->mu);
    wake(r);
}

int op_relay_connected(struct op_relay *r, char names[][OP_RELAY_NAME_MAX], int max)
{
    pthread_mutex_lock(&r->mu);
    int n = r->nconnected < max ? r->nconnected : max;
    for (int i = 0; i < n; i++)
        memcpy(names[i], r->connected[i], OP_RELAY_NAME_MAX);
    pthread_mutex_unlock(&r->mu);
    return n;
}

bool op_relay_revoked(struct op_relay *r, char *why, size_t len)
{
    pthread_mutex_lock(&r->mu);
    bool v = r->revoked;
    if (v) snprintf(why, len, "%s", r->revoked_why);
    r->revoked = false;
    pthread_mutex_unlock(&r->mu);
    return v;
}

void op_relay_stop(struct op_relay *r, int grace_ms)
{
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    r->grace_ms = grace_ms;
    pthread_mutex_unlock(&r->mu);
    wake(r);
    pthread_join(r->thread, NULL);
    for (struct region *rg = r->regions, *n; rg; rg = n) {
        n = rg->next;
        free(rg);
    }
    for (struct region *rg = r->pending, *n; rg; rg = n) {
        n = rg->next;
        free(rg);
    }
    close(r->ep);
    close(r->wakefd);
    op_tlsc_ctx_free(r->tlsctx);
    op_tlsc_ctx_free(r->app_tlsctx);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
