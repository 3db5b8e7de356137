/*
 * region/region.c — a region's state, its key set, token checks, the route that mounts the three
 * endpoints, and the cross-thread messages between control connections and waiting clients.
 */
#include "region/region_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "http/h1.h"
#include "util/duration.h"

_Thread_local struct region_pending op_region_pending;
const char *const op_region_upgrade_tokens[] = {"websocket", REGION_UPGRADE_CONTROL, REGION_UPGRADE_STREAM,
                                                REGION_UPGRADE_TCP, NULL};
static _Thread_local char tl_body[512];
static _Thread_local struct op_jws tl_jws;

static const struct op_region_limits defaults = {
    .max_agents = 1024,
    .ctl_per_agent = 4,
    .spares_per_agent = 64,
    .waiters_per_agent = 256,
    .wait_ms = 5000,
    .spares_wanted = 8,
    .heartbeat_ms = 15000,
    .tunnel_idle_ms = 0,
};

#define DEF(f)                                                                                               \
    do {                                                                                                     \
        if (!r->lim.f) r->lim.f = defaults.f;                                                                \
    } while (0)

int op_region_limits_parse(const char *spec, struct op_region_limits *out, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        size_t off;
        bool duration, zero_ok;
        uint32_t max;
    } keys[] = {
        {"agents", offsetof(struct op_region_limits, max_agents), false, false, 1u << 20},
        {"control", offsetof(struct op_region_limits, ctl_per_agent), false, false, 1024},
        {"spares", offsetof(struct op_region_limits, spares_wanted), false, false, 1024},
        {"max-spares", offsetof(struct op_region_limits, spares_per_agent), false, false, 4096},
        {"waiters", offsetof(struct op_region_limits, waiters_per_agent), false, false, 65536},
        {"wait", offsetof(struct op_region_limits, wait_ms), true, false, 600000},
        {"heartbeat", offsetof(struct op_region_limits, heartbeat_ms), true, false, 3600000},
        {"idle", offsetof(struct op_region_limits, tunnel_idle_ms), true, true, 86400000},
    };
    const char *p = spec ? spec : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[80];
        if (len == 0 || len >= sizeof(item)) {
            snprintf(err, errlen, "an empty or overlong item in \"%s\"", spec);
            return -EINVAL;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        size_t k = 0;
        if (eq) {
            *eq = '\0';
            while (k < OP_ARRAY_LEN(keys) && strcmp(keys[k].name, item) != 0)
                k++;
        }
        if (!eq || k == OP_ARRAY_LEN(keys)) {
            snprintf(err, errlen,
                     "unknown item \"%s\" (agents, control, spares, max-spares, waiters, "
                     "wait, heartbeat, idle)",
                     item);
            return -EINVAL;
        }
        uint64_t v = 0;
        char *end = NULL;
        bool ok = keys[k].duration ? op_parse_duration_ms(eq + 1, &v) == 0
                                   : (v = strtoull(eq + 1, &end, 10), end != eq + 1 && *end == '\0');
        if (!ok || v > keys[k].max || (v == 0 && !keys[k].zero_ok)) {
            snprintf(err, errlen, "%s=%s is not a valid %s (at most %u%s)", item, eq + 1,
                     keys[k].duration ? "duration" : "count", keys[k].max, keys[k].duration ? " ms" : "");
            return -EINVAL;
        }
        *(uint32_t *)((char *)out + keys[k].off) = (uint32_t)v;
        p += len + (comma ? 1 : 0);
        if (comma && !*p) {
            snprintf(err, errlen, "an empty item at the end of \"%s\"", spec);
            return -EINVAL;
        }
    }
    return 0;
}

struct op_region *op_region_new(const char *name, const struct op_region_limits *lim)
{
    struct op_region *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    snprintf(r->name, sizeof(r->name), "%s", name);
    if (lim) r->lim = *lim;
    DEF(max_agents);
    DEF(ctl_per_agent);
    DEF(spares_per_agent);
    DEF(waiters_per_agent);
    DEF(wait_ms);
    DEF(spares_wanted);
    DEF(heartbeat_ms);
    if (r->lim.spares_wanted > r->lim.spares_per_agent) r->lim.spares_wanted = r->lim.spares_per_agent;
    struct op_broker_limits bl = {r->lim.max_agents, r->lim.ctl_per_agent, r->lim.spares_per_agent,
                                  r->lim.waiters_per_agent};
    r->broker = op_broker_new(&bl);
    r->msgs = calloc(REGION_MSGS, sizeof(*r->msgs));
    r->app_waits = calloc((size_t)OP_ENGINE_MAX_WORKERS * REGION_APP_WAITS, sizeof(*r->app_waits));
    r->stats = op_region_app_stats_alloc();
    struct keyset *ks = calloc(1, sizeof(*ks));
    if (!r->broker || !r->msgs || !ks || !r->app_waits || !r->stats) {
        free(r->stats);
        free(ks);
        free(r->app_waits);
        op_broker_free(r->broker);
        free(r->msgs);
        free(r);
        return NULL;
    }
    atomic_init(&r->keys, ks);
    for (int i = 0; i < REGION_MSGS; i++)
        r->msgs[i].next = i + 1 < REGION_MSGS ? i + 1 : -1;
    r->msg_free = 0;
    pthread_mutex_init(&r->msg_mu, NULL);
    pthread_mutex_init(&r->rev_mu, NULL);
    pthread_mutex_init(&r->keys_mu, NULL);
    return r;
}

void op_region_free(struct op_region *r)
{
    if (!r) return;
    op_broker_free(r->broker);
    struct keyset *ks = atomic_load(&r->keys);
    if (ks) {
        memset(ks, 0, sizeof(*ks));
        free(ks);
    }
    pthread_mutex_destroy(&r->msg_mu);
    pthread_mutex_destroy(&r->rev_mu);
    pthread_mutex_destroy(&r->keys_mu);
    free(r->msgs);
    free(r->app_waits);
    free(r->stats);
    free(r);
}

const char *op_region_name(const struct op_region *r)
{
    return r->name;
}

int op_region_set_name(struct op_region *r, const char *name)
{
    size_t n = strlen(name);
    if (!n || n >= sizeof(r->name)) return -EINVAL;
    memcpy(r->name, name, n + 1);
    return 0;
}

static void keyset_free(void *p)
{
    if (!p) return;
    memset(p, 0, sizeof(struct keyset));
    free(p);
}

void op_region_set_refetch(struct op_region *r, void (*fn)(void *ctx), void *ctx)
{
    r->want_keys = fn;
    r->want_keys_ctx = ctx;
}

void op_region_want_keys(struct op_region *r)
{
    if (r->want_keys) r->want_keys(r->want_keys_ctx);
}

int op_region_set_keys(struct op_region *r, struct op_engine *e, const struct op_region_key *keys, int n)
{
    if (n < 0 || n > OP_REGION_MAX_KEYS) return -EINVAL;
    struct keyset *ks = calloc(1, sizeof(*ks));
    if (!ks) return -ENOMEM;
    ks->n = n;
    memcpy(ks->k, keys, (size_t)n * sizeof(*keys));
    for (int i = 0; i < n; i++) {
        ks->wk[i].kid = keys[i].kid;
        memcpy(ks->wk[i].secret, keys[i].secret, sizeof(ks->wk[i].secret));
        ks->wk[i].len = sizeof(keys[i].secret);
    }
    pthread_mutex_lock(&r->keys_mu); /* no thread outside the workers still uses old after this */
    struct keyset *old = atomic_exchange_explicit(&r->keys, ks, memory_order_acq_rel);
    pthread_mutex_unlock(&r->keys_mu);
    if (!e) {
        keyset_free(old);
    } else if (op_engine_retire(e, old, keyset_free) != 0) {
        /* Could not post the retirement: keep the old set alive rather than free it under a reader. */
        op_warn("region", "a retired key set is kept (out of memory)");
    }
    return 0;
}

int op_region_verify(struct op_region *r, const char *tok, size_t len, struct op_jws *out)
{
    if (op_jws_parse(tok, len, out) != 0) return -EINVAL;
    const struct keyset *ks = atomic_load_explicit(&r->keys, memory_order_acquire);
    for (int i = 0; i < ks->n; i++)
        if (ks->k[i].kid == out->kid)
            return op_jws_mac_ok(out, tok, ks->k[i].secret, sizeof(ks->k[i].secret)) ? 0 : -EACCES;
    return -ENOKEY;
}

void op_region_stats(struct op_region *r, struct op_region_stats *out)
{
    struct op_broker_stats bs;
    op_broker_stats(r->broker, &bs);
    memset(out, 0, sizeof(*out));
    out->agents = bs.agents;
    out->control = bs.ctl;
    out->parked = bs.parked;
    out->waiting = bs.waiting;
    out->parked_total = bs.parked_total;
    out->dead_spares = bs.dead_total;
    for (int i = 0; i < OP_ENGINE_MAX_WORKERS; i++) {
        out->streams_opened += atomic_load_explicit(&r->ws[i].opened, memory_order_relaxed);
        out->streams_failed += atomic_load_explicit(&r->ws[i].failed, memory_order_relaxed);
    }
}

/* ---- responses written after the handoff ---------------------------------------------------------- */

static size_t json_message(char *out, size_t outlen, const char *msg)
{
    size_t o = 0;
    o += (size_t)snprintf(out, outlen, "{\"message\":\"");
    for (const char *p = msg; *p && o + 8 < outlen; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            out[o++] = ' '; /* the agent's reason is untrusted text: keep it printable ASCII */
        } else {
            out[o++] = (char)ch;
        }
    }
    o += (size_t)snprintf(out + o, outlen - o, "\"}");
    return o < outlen ? o : outlen - 1;
}

void op_region_fail(struct op_conn *c, int status, const char *msg)
{
    char body[400], out[1024];
    size_t bl = json_message(body, sizeof(body), msg);
    ssize_t n =
        op_h1_write_simple_response(status, "application/json", body, bl, true, NULL, out, sizeof(out));
    op_debug("region", "w%d#%u %d: %s", op_worker_index(op_conn_worker(c)), op_conn_id(c), status, msg);
    if (n < 0 || op_conn_send(c, OP_CLI, (const uint8_t *)out, (size_t)n) < 0) {
        op_conn_close(c, "error response did not fit");
        return;
    }
    op_conn_finish(c);
}

int op_region_switch(struct op_conn *c, const char *proto)
{
    char out[160];
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", proto);
    return op_conn_send(c, OP_CLI, (const uint8_t *)out, (size_t)n);
}

/* ---- cross-thread messages -------------------------------------------------------------------------- */

struct region_msg *op_region_msg_get(struct op_region *r)
{
    pthread_mutex_lock(&r->msg_mu);
    struct region_msg *m = NULL;
    if (r->msg_free >= 0) {
        m = &r->msgs[r->msg_free];
        r->msg_free = m->next;
    }
    pthread_mutex_unlock(&r->msg_mu);
    if (m) {
        m->r = r;
        m->leg = (struct op_leg){-1, NULL, NULL};
        m->count = 0;
    }
    return m;
}

static void msg_put(struct region_msg *m)
{
    struct op_region *r = m->r;
    OP_BUG_ON(m->leg.fd >= 0); /* a socket is never dropped with its message */
    pthread_mutex_lock(&r->msg_mu);
    m->next = r->msg_free;
    r->msg_free = (int32_t)(m - r->msgs);
    pthread_mutex_unlock(&r->msg_mu);
}

static void msg_run(struct op_worker *w, struct op_msg *om)
{
    struct region_msg *m = OP_CONTAINER_OF(om, struct region_msg, m);
    bool delivered = op_worker_deliver(w, m->ref, m); /* false: the connection went away meanwhile */
    (void)delivered;      /* either way, a socket the connection did not take goes back to the broker */
    if (m->leg.fd >= 0) { /* nobody took the socket: it is still a good spare */
        struct op_leg leg = m->leg;
        m->leg = (struct op_leg){-1, NULL, NULL};
        op_region_give_spare(m->r, op_worker_engine(w), m->agent, &leg);
    }
    msg_put(m);
}

void op_region_msg_post(struct op_engine *e, struct region_msg *m)
{
    m->m.fn = msg_run;
    op_engine_post(e, m->ref.worker, &m->m);
}

void op_region_want_spares(struct op_region *r, struct op_engine *e, const char *agent, uint16_t n)
{
    struct op_conn_ref ctl;
    if (!n || !op_broker_ctl_pick(r->broker, agent, &ctl)) return;
    struct region_msg *m = op_region_msg_get(r);
    if (!m) return; /* the next heartbeat asks again */
    m->kind = MSG_SPARES;
    m->ref = ctl;
    m->count = n;
    snprintf(m->agent, sizeof(m->agent), "%.*s", OP_ID_LEN, agent);
    op_region_msg_post(e, m);
}

void op_region_give_spare(struct op_region *r, struct op_engine *e, const char *agent, struct op_leg *leg)
{
    struct op_conn_ref waiter;
    int rc = op_broker_park(r->broker, agent, leg, &waiter);
    if (rc == 0) return;
    if (rc == 1) {
        struct region_msg *m = op_region_msg_get(r);
        if (m) {
            m->kind = MSG_FD;
            m->ref = waiter;
            m->leg = *leg;
            snprintf(m->agent, sizeof(m->agent), "%.*s", OP_ID_LEN, agent);
            op_region_msg_post(e, m);
            return;
        }
        /* No message free: the waiter times out; the socket cannot be handed over. */
    }
    op_leg_close(leg);
}

/* ---- the route -------------------------------------------------------------------------------------------
 */

static bool span_is(op_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

void op_region_respond(struct op_route *out, int status, const char *msg)
{
    out->kind = OP_ROUTE_RESPOND;
    out->status = status;
    out->content_type = "application/json";
    out->body_len = json_message(tl_body, sizeof(tl_body), msg);
    out->body = tl_body;
}

bool op_region_is_uuid(const char *p, size_t n)
{
    if (n != OP_ID_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? p[i] != '-' : !((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    }
    return true;
}

/* Value of a query parameter (no percent-decoding: the values used here never need it). */
static bool query_param(op_span_t q, const char *name, op_span_t *out)
{
    size_t nl = strlen(name);
    const char *p = q.p, *end = q.p + q.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > nl && p[nl] == '=' && memcmp(p, name, nl) == 0) {
            *out = op_span(p + nl + 1, (size_t)(e - p - (ptrdiff_t)nl - 1));
            return true;
        }
        p = e + 1;
    }
    return false;
}

static bool upgrade_is(const struct op_h1_request *req, const char *proto)
{
    size_t n = strlen(proto);
    return req->upgrade && req->upgrade_proto.len == n && strncasecmp(req->upgrade_proto.p, proto, n) == 0;
}

/* Control and stream connections: the agent credential of `Authorization: Bearer`. */
static bool check_agent(struct op_region *r, const struct op_h1_request *req, struct op_route *out)
{
    const struct op_h1_header *h = op_h1_find_header(req->headers, req->nheaders, "Authorization");
    op_span_t tok = op_span(NULL, 0);
    if (h && h->value.len > 7 && strncasecmp(h->value.p, "Bearer ", 7) == 0)
        tok = op_span(h->value.p + 7, h->value.len - 7);
    else if ((h = op_h1_find_header(req->headers, req->nheaders, "Coder-Session-Token")) && h->value.len)
        tok = h->value;
    if (!tok.len) {
        op_region_respond(out, 401, "Agent credential required (Authorization: Bearer <credential>).");
        return false;
    }
    int rc = op_region_verify(r, tok.p, tok.len, &tl_jws);
    if (rc == -ENOKEY) {
        /* A key rotated in since the last fetch: the role fetches the keys again now (coalesced), so the
         * agent's next attempt, after its reconnect delay, verifies. */
        op_region_want_keys(r);
        op_region_respond(out, 403,
                          "The agent credential is signed with a key this region does not know (yet).");
        return false;
    }
    struct op_agent_cred cred;
    if (rc == 0) rc = op_agent_cred_read(&tl_jws, (int64_t)time(NULL), &cred);
    if (rc == -ETIMEDOUT) {
        op_region_respond(out, 401, "The agent credential has expired.");
        return false;
    }
    if (rc != 0) {
        op_region_respond(out, 401, "Invalid agent credential.");
        return false;
    }
    if (op_region_is_revoked(r, cred.agent_id, cred.iat)) {
        op_region_respond(out, 401,
                          "The agent was revoked: its token was regenerated or its workspace deleted.");
        return false;
    }
    snprintf(op_region_pending.agent, sizeof(op_region_pending.agent), "%s", cred.agent_id);
    op_region_pending.iat = cred.iat;
    op_region_pending.exp = cred.exp;
    return true;
}

bool op_region_check_connect(struct op_region *r, const struct op_h1_request *req, op_span_t agent,
                             op_span_t query, struct op_route *out)
{
    op_span_t ps, tok = op_span(NULL, 0);
    long port = 0;
    if (query_param(query, "port", &ps) && ps.len && ps.len <= 5) {
        for (size_t i = 0; i < ps.len; i++)
            port = (ps.p[i] >= '0' && ps.p[i] <= '9') ? port * 10 + (ps.p[i] - '0') : -1;
        if (ps.len && port < 0) port = 0;
    }
    if (port < 1 || port > 65535) {
        op_region_respond(out, 400, "The query parameter port must be a TCP port (1-65535).");
        return false;
    }
    const struct op_h1_header *h = op_h1_find_header(req->headers, req->nheaders, "Coder-Connect-Token");
    if (h && h->value.len)
        tok = h->value;
    else if (!query_param(query, "coder_connect_token", &tok))
        tok = op_span(NULL, 0);
    if (!tok.len) {
        op_region_respond(out, 401,
                          "A connect token is required (Coder-Connect-Token header or coder_connect_token).");
        return false;
    }
    int rc = op_region_verify(r, tok.p, tok.len, &tl_jws);
    if (rc == -ENOKEY) {
        op_region_want_keys(r); /* the client's retry verifies */
        op_region_respond(out, 403,
                          "The connect token is signed with a key this region does not know (yet).");
        return false;
    }
    struct op_connect_claims cc;
    if (rc == 0) rc = op_connect_read(&tl_jws, (int64_t)time(NULL), &cc);
    if (rc == -ETIMEDOUT) {
        op_region_respond(out, 403, "The connect token has expired.");
        return false;
    }
    if (rc != 0) {
        op_region_respond(out, 403, "Invalid connect token.");
        return false;
    }
    if (strlen(cc.agent_id) != agent.len || memcmp(cc.agent_id, agent.p, agent.len) != 0) {
        op_region_respond(out, 403, "The connect token is for another agent.");
        return false;
    }
    if (cc.port != port) {
        op_region_respond(out, 403, "The connect token is for another port.");
        return false;
    }
    if (strcmp(cc.region, r->name) != 0) {
        op_region_respond(out, 403, "The connect token is for another region.");
        return false;
    }
    snprintf(op_region_pending.agent, sizeof(op_region_pending.agent), "%s", cc.agent_id);
    op_region_pending.port = (uint16_t)port;
    op_region_pending.exp = cc.exp;
    struct op_conn_ref ctl;
    if (!op_broker_ctl_pick(r->broker, op_region_pending.agent, &ctl)) {
        op_region_respond(out, 404, "The agent is not connected to this region.");
        return false;
    }
    return true;
}

#define PREFIX "/api/v2/workspaceagents/"

bool op_region_route(struct op_region *r, struct op_conn *c, const struct op_h1_request *req,
                     struct op_route *out)
{
    op_span_t t = req->target;
    const char *q = t.p ? memchr(t.p, '?', t.len) : NULL;
    op_span_t path = op_span(t.p, q ? (size_t)(q - t.p) : t.len);
    op_span_t query = q ? op_span(q + 1, t.len - (size_t)(q + 1 - t.p)) : op_span("", 0);
    size_t pl = strlen(PREFIX);
    if (path.len <= pl || memcmp(path.p, PREFIX, pl) != 0) return false;
    op_span_t rest = op_span(path.p + pl, path.len - pl);
    enum region_ep ep;
    const char *proto;
    op_span_t agent = op_span(NULL, 0);
    if (span_is(rest, "me/control")) {
        ep = EP_CONTROL;
        proto = REGION_UPGRADE_CONTROL;
    } else if (span_is(rest, "me/stream")) {
        ep = EP_STREAM;
        proto = REGION_UPGRADE_STREAM;
    } else if (rest.len == OP_ID_LEN + 4 && memcmp(rest.p + OP_ID_LEN, "/tcp", 4) == 0) {
        ep = EP_TCP;
        proto = REGION_UPGRADE_TCP;
        agent = op_span(rest.p, OP_ID_LEN);
    } else {
        return false;
    }
    memset(&op_region_pending, 0, sizeof(op_region_pending));
    if (!span_is(req->method, "GET")) {
        op_region_respond(out, 405, "Method not allowed: use GET with an Upgrade.");
        return true;
    }
    if (ep == EP_TCP && !op_region_is_uuid(agent.p, agent.len)) {
        op_region_respond(out, 400, "The agent id must be a UUID.");
        return true;
    }
    if (!upgrade_is(req, proto)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "This endpoint needs Connection: Upgrade and Upgrade: %s.", proto);
        op_region_respond(out, 426, msg);
        snprintf(out->extra, sizeof(out->extra), "Upgrade: %s\r\n", proto);
        return true;
    }
    if (req->framing != OP_H1_BODY_NONE) {
        op_region_respond(out, 400, "An upgrade request carries no body.");
        return true;
    }
    bool ok = ep == EP_TCP ? op_region_check_connect(r, req, agent, query, out) : check_agent(r, req, out);
    if (!ok) return true;
    op_region_pending.ep = ep;
    op_region_pending.ref = op_conn_ref(c);
    out->kind = OP_ROUTE_HANDOFF;
    out->handoff = ep == EP_CONTROL  ? op_region_control_handoff
                   : ep == EP_STREAM ? op_region_stream_handoff
                                     : op_region_tcp_handoff;
    out->handoff_ctx = r;
    return true;
}
