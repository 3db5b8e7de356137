/*
 * agent/relay_region.c — one control connection per region (per replica of a region, when the manifest lists
 * its replicas: each entry of the region table is a region name with one URL): dialing (with the credential),
 * the jittered exponential backoff after a failure (one log line naming the region and the cause), the frames
 * (HELLO, WELCOME, PING/PONG, SPARES, CREDENTIAL, GOAWAY), the pool of spare stream connections, and the
 * region list handed over by the control thread.
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

/* ---- regions: connecting, backoff -------------------------------------------------------------------- */

static uint32_t rnd(void)
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v)) v = (uint32_t)now_ms() * 2654435761u;
    return v;
}

/* 1 s doubling per failure up to the cap, with a uniform jitter of +-20 %. */
static uint64_t backoff_ms(struct op_relay *r, int failures)
{
    uint64_t d = BACKOFF_MIN;
    for (int i = 1; i < failures && d < (uint64_t)r->conf.backoff_max_ms; i++)
        d *= 2;
    if (d > (uint64_t)r->conf.backoff_max_ms) d = (uint64_t)r->conf.backoff_max_ms;
    uint64_t j = d / 5;
    return d - j + rnd() % (2 * j + 1);
}

void ar_close_spares(struct op_relay *r, struct region *rg)
{
    for (struct conn *c = r->conns; c; c = c->next)
        if (c->kind == K_SPARE && c->rg == rg && c->st != S_RELAY && c->st != S_DEAD) ar_conn_close(r, c);
}

void ar_publish_connected(struct op_relay *r)
{
    pthread_mutex_lock(&r->mu);
    r->nconnected = 0;
    for (struct region *rg = r->regions; rg; rg = rg->next) {
        if (!rg->up || r->nconnected == OP_RELAY_MAX_REGIONS_HARD) continue;
        bool seen = false; /* a region is connected while any of its replicas is */
        for (int i = 0; i < r->nconnected && !seen; i++)
            seen = strcmp(r->connected[i], rg->cfg.name) == 0;
        if (!seen) snprintf(r->connected[r->nconnected++], OP_RELAY_NAME_MAX, "%s", rg->cfg.name);
    }
    pthread_mutex_unlock(&r->mu);
}

/* The control connection of rg failed: one log line with the cause, reconnect after the backoff. */
void ar_control_failed(struct op_relay *r, struct region *rg, const char *fmt, ...) OP_PRINTF(3, 4);
void ar_control_failed(struct op_relay *r, struct region *rg, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    bool was_up = rg->up;
    if (rg->ctl) ar_conn_close(r, rg->ctl);
    ar_close_spares(r, rg);
    if (was_up && now_ms() - rg->up_since >= BACKOFF_RESET) rg->failures = 0;
    rg->failures++;
    uint64_t d = backoff_ms(r, rg->failures);
    rg->retry_at = now_ms() + d;
    op_warn("agent", "region %s (%s): %s%s; retrying in %.1fs", rg->label, rg->cfg.url,
            was_up ? "control connection lost: " : "cannot connect: ", why, (double)d / 1000.0);
    if (was_up) ar_publish_connected(r);
}

int ar_new_socket(const struct sockaddr_storage *a, socklen_t alen, int *out)
{
    int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)a, alen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

static void queue_upgrade(struct op_relay *r, struct conn *c)
{
    const char *path = c->kind == K_CONTROL ? "control" : "stream";
    const char *proto = c->kind == K_CONTROL ? "outpost-agent/1" : "outpost-stream/1";
    char head[MAX_CRED + 512];
    int n = snprintf(head, sizeof(head),
                     "GET /api/v2/workspaceagents/me/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     "User-Agent: outpost-agent/%s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n",
                     path, c->rg->hostport, r->my_cred, r->conf.version, proto);
    /* the out buffers are larger than any head (CTL_OUT, STREAM_BUF > MAX_CRED + 512) */
    if (n > 0 && (size_t)n < sizeof(head)) (void)ar_queue(c, head, (size_t)n);
}

/* Opens a control (K_CONTROL) or spare (K_SPARE) connection to rg. */
static struct conn *dial_region(struct op_relay *r, struct region *rg, enum kind k, char *why, size_t wl)
{
    if (rg->alen == 0) {
        snprintf(why, wl, "%.190s", rg->resolve_err);
        return NULL;
    }
    if (!*r->my_cred) {
        snprintf(why, wl, "no agent credential yet");
        return NULL;
    }
    if (rg->tls && !r->tlsctx) {
        snprintf(why, wl, "TLS: %.180s", r->tls_err);
        return NULL;
    }
    int fd;
    int rc = ar_new_socket(&rg->addr, rg->alen, &fd);
    if (rc) {
        snprintf(why, wl, "connect: %s", strerror(-rc));
        return NULL;
    }
    struct conn *c = ar_conn_new(r, fd, k, rg);
    if (!c) {
        close(fd);
        snprintf(why, wl, "out of memory");
        return NULL;
    }
    c->st = S_CONNECTING;
    c->deadline = now_ms() + (uint64_t)r->conf.dial_timeout_ms;
    queue_upgrade(r, c);
    ar_update_mask(r, c);
    return c;
}

void ar_open_control(struct op_relay *r, struct region *rg)
{
    char why[200];
    rg->ctl = dial_region(r, rg, K_CONTROL, why, sizeof(why));
    if (!rg->ctl) ar_control_failed(r, rg, "%s", why);
}

void ar_top_up_spares(struct op_relay *r, struct region *rg, int extra)
{
    if (!rg->up || r->stop) return;
    int want = rg->spares_wanted + extra;
    if (want > r->conf.max_spares) want = r->conf.max_spares;
    while (rg->nspares < want && now_ms() >= rg->spare_retry_at) {
        char why[200];
        struct conn *c = dial_region(r, rg, K_SPARE, why, sizeof(why));
        if (!c) {
            ar_spare_backoff(r, rg, why);
            return;
        }
        rg->nspares++;
    }
}

/* Spares that keep failing (a region that refuses them) back off like control connections; the 1st, 2nd,
 * 4th, 8th... failure in a row is logged. */
void ar_spare_backoff(struct op_relay *r, struct region *rg, const char *why)
{
    rg->spare_failures++;
    uint64_t d = backoff_ms(r, rg->spare_failures);
    rg->spare_retry_at = now_ms() + d;
    if ((rg->spare_failures & (rg->spare_failures - 1)) == 0)
        op_warn("agent", "region %s: spare stream connection failed: %s (%d in a row; retrying in %.1fs)",
                rg->label, why, rg->spare_failures, (double)d / 1000.0);
}

void ar_spare_failed(struct op_relay *r, struct conn *c, const char *why)
{
    struct region *rg = c->rg;
    if (rg && rg->up && !r->stop) ar_spare_backoff(r, rg, why);
    ar_conn_close(r, c);
}

/* ---- control frames ------------------------------------------------------------------------------------ */

int ar_send_frame(struct conn *c, const struct op_af_frame *f)
{
    uint8_t buf[OP_AF_MAX_FRAME];
    int n = op_af_encode(f, buf, sizeof(buf));
    if (n < 0) return n;
    return ar_queue(c, buf, (size_t)n);
}

void ar_send_hello(struct op_relay *r, struct conn *c)
{
    struct op_af_frame f = {.type = OP_AF_HELLO,
                            .version = OP_AF_PROTO_VERSION,
                            .count = (uint16_t)r->conf.max_spares,
                            .text = r->conf.version,
                            .text_len = strlen(r->conf.version)};
    (void)ar_send_frame(c, &f);
}

static void send_credential(struct op_relay *r, struct conn *c)
{
    struct op_af_frame f = {.type = OP_AF_CREDENTIAL, .text = r->my_cred, .text_len = strlen(r->my_cred)};
    if (ar_send_frame(c, &f) != 0) op_warn("agent", "region %s: cannot queue the fresh credential", c->rname);
}

/* Handles one frame; returns false when the connection must close (reason in why). */
bool ar_on_frame(struct op_relay *r, struct conn *c, const struct op_af_frame *f, char *why, size_t wl)
{
    struct region *rg = c->rg;
    rg->last_rx = now_ms();
    switch (f->type) {
    case OP_AF_WELCOME:
        if (rg->up) break;
        rg->up = true;
        rg->up_since = now_ms();
        rg->spare_failures = 0; /* a fresh control connection: spares start over */
        rg->spare_retry_at = 0;
        rg->hb_ms = f->heartbeat_ms < 100 ? 100 : f->heartbeat_ms;
        rg->next_ping = now_ms() + rg->hb_ms;
        rg->spares_wanted = f->count < r->conf.spares ? r->conf.spares : f->count;
        if (rg->spares_wanted > r->conf.max_spares) rg->spares_wanted = r->conf.max_spares;
        op_info("agent",
                "region %s (%s): connected (region name \"%.*s\", %d spare connections, heartbeat %ums)",
                rg->label, rg->cfg.url, (int)f->text_len, f->text, rg->spares_wanted, rg->hb_ms);
        ar_publish_connected(r);
        ar_top_up_spares(r, rg, 0);
        break;
    case OP_AF_PING: {
        struct op_af_frame p = {.type = OP_AF_PONG, .nonce = f->nonce};
        (void)ar_send_frame(c, &p);
        break;
    }
    case OP_AF_PONG:
        break;
    case OP_AF_SPARES:
        ar_top_up_spares(r, rg, f->count);
        break;
    case OP_AF_GOAWAY:
        snprintf(why, wl, "the region sent GOAWAY %u: %.*s", f->code, (int)f->text_len, f->text);
        if (f->code == OP_AF_GOAWAY_REVOKED) {
            /* The agent's token was replaced or its workspace deleted: the main loop asks the primary at
             * once (a 401 there ends the agent with 77) instead of at its next manifest fetch. */
            pthread_mutex_lock(&r->mu);
            r->revoked = true;
            snprintf(r->revoked_why, sizeof(r->revoked_why), "region %.100s: %.290s", c->rname, why);
            pthread_mutex_unlock(&r->mu);
        }
        return false;
    default:
        break; /* HELLO, CREDENTIAL, STREAM_FAIL go the other way; ignorable unknown types are skipped */
    }
    return true;
}

/* ---- region list and timers -------------------------------------------------------------------------- */

void ar_region_remove(struct op_relay *r, struct region *rg, const char *why)
{
    if (rg->ctl && rg->up) {
        struct op_af_frame f = {
            .type = OP_AF_GOAWAY, .code = OP_AF_GOAWAY_SHUTDOWN, .text = why, .text_len = strlen(why)};
        (void)ar_send_frame(rg->ctl, &f);
        (void)ar_flush(rg->ctl);
    }
    if (rg->ctl) ar_conn_close(r, rg->ctl);
    ar_close_spares(r, rg);
    for (struct conn *c = r->conns; c; c = c->next)
        if (c->rg == rg) c->rg = NULL; /* streams keep running without their region */
}

void ar_apply_regions(struct op_relay *r)
{
    pthread_mutex_lock(&r->mu);
    struct region *nl = r->pending;
    bool set = r->pending_set;
    r->pending = NULL;
    r->pending_set = false;
    bool cred = r->cred_dirty;
    if (cred) snprintf(r->my_cred, sizeof(r->my_cred), "%s", r->cred);
    r->cred_dirty = false;
    pthread_mutex_unlock(&r->mu);
    if (set) {
        /* keep the regions whose name and URL are unchanged, with their connections */
        struct region *kept = NULL;
        for (struct region *o = r->regions, *on; o; o = on) {
            on = o->next;
            struct region *match = NULL, **pp = &nl;
            for (struct region *n = nl; n; pp = &n->next, n = n->next)
                if (strcmp(n->cfg.name, o->cfg.name) == 0 && strcmp(n->cfg.url, o->cfg.url) == 0) {
                    match = n;
                    *pp = n->next;
                    break;
                }
            if (match) {
                if (match->alen) { /* a fresh resolution */
                    o->addr = match->addr;
                    o->alen = match->alen;
                }
                if (strcmp(o->cfg.replica, match->cfg.replica) != 0) { /* same URL, a restarted replica */
                    op_info("agent", "region %s (%s): now %s", o->label, o->cfg.url, match->label);
                    memcpy(o->cfg.replica, match->cfg.replica, sizeof(o->cfg.replica));
                    memcpy(o->label, match->label, sizeof(o->label));
                }
                free(match);
                o->next = kept;
                kept = o;
            } else {
                op_info("agent", "region %s (%s): no longer in the manifest (%s); leaving it", o->label,
                        o->cfg.url,
                        o->cfg.replica[0] ? "replica stopped, gone or moved" : "deleted or unhealthy");
                ar_region_remove(r, o, "region left the manifest");
                free(o);
            }
        }
        for (struct region *n = nl, *nn; n; n = nn) {
            nn = n->next;
            n->next = kept;
            kept = n;
            op_info("agent", "region %s (%s): joining", n->label, n->cfg.url);
        }
        r->regions = kept;
        ar_publish_connected(r);
    } else {
        for (struct region *n = nl, *nn; n; n = nn) {
            nn = n->next;
            free(n);
        }
    }
    if (cred)
        for (struct region *rg = r->regions; rg; rg = rg->next)
            if (rg->up && rg->ctl) send_credential(r, rg->ctl);
}
