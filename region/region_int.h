/*
 * region/region_int.h — what the files of region/ share (not included outside region/).
 */
#ifndef OP_REGION_INT_H
#define OP_REGION_INT_H

#include <pthread.h>

#include "proto/agent_token.h"
#include "proto/jws.h"
#include "region/broker.h"
#include "region/region.h"
#include "wsapp/token.h"

#define REGION_UPGRADE_CONTROL "outpost-agent/1"
#define REGION_UPGRADE_STREAM  "outpost-stream/1"
#define REGION_UPGRADE_TCP     "outpost-tcp/1"
#define REGION_LINE_MAX        512  /* OPEN / OK / ERR lines */
#define REGION_MSGS            4096 /* cross-thread messages in flight at once */

struct keyset {
    int n;
    struct op_region_key k[OP_REGION_MAX_KEYS];
    struct op_wsapp_key wk[OP_REGION_MAX_KEYS]; /* the same keys for op_wsapp_token_verify */
};

/* An app request's connection waiting for a spare of agent (region/apps.c): one table per worker. */
#define REGION_APP_WAITS 256
struct app_wait {
    bool used;
    struct op_conn_ref ref;
    char agent[OP_ID_LEN + 1];
};

/* Per-worker counters: written by their worker only. */
struct region_wstats {
    _Atomic uint64_t opened, failed;
} __attribute__((aligned(64)));

enum region_msg_kind { MSG_SPARES = 1, MSG_FD, MSG_REVOKE };

/* A message between workers: SPARES for a control connection, a spare's socket for a waiting client, the
 * revocation of a control connection's agent. */
struct region_msg {
    struct op_msg m;
    struct op_region *r;
    enum region_msg_kind kind;
    struct op_conn_ref ref;
    struct op_leg leg; /* MSG_FD: a spare (fd -1 once taken) */
    uint16_t count;
    int32_t next; /* free list */
    char agent[OP_ID_LEN + 1];
};

/* Agents revoked on this region (the primary: token regenerated, workspace deleted): credentials issued at
 * or before `at` (unix seconds) are refused. A ring: an entry is needed only while such a credential can
 * still be valid (its lifetime plus the leeway), so the oldest is overwritten. */
#define REGION_REVOKED 256
struct region_revoked {
    char agent[OP_ID_LEN + 1];
    int64_t at;
};

struct op_region {
    char name[65];
    struct op_region_limits lim;
    struct op_broker *broker;
    struct keyset *_Atomic keys;
    /* Threads other than the workers (a proxy's sign-in thread) hold it while they use the key set: the
     * engine's retirement only waits for the workers. */
    pthread_mutex_t keys_mu;
    pthread_mutex_t msg_mu;
    struct region_msg *msgs;
    int32_t msg_free;
    struct region_wstats ws[OP_ENGINE_MAX_WORKERS];
    struct app_wait *app_waits;    /* OP_ENGINE_MAX_WORKERS * REGION_APP_WAITS */
    struct app_stat_worker *stats; /* OP_ENGINE_MAX_WORKERS app usage tables (app_stats.c) */
    pthread_mutex_t rev_mu;        /* revoked, rev_next */
    struct region_revoked revoked[REGION_REVOKED];
    uint32_t rev_next;
    void (*want_keys)(void *ctx); /* op_region_set_refetch: set before the engine starts */
    void *want_keys_ctx;
};

/* A worker met a token signed with a key the region does not know: asks the role to refetch (no-op when
 * the role set no refetch function). Never blocks. */
void op_region_want_keys(struct op_region *r);

/* The OP_ENGINE_MAX_WORKERS app usage tables, zeroed (app_stats.c; free() frees them); NULL on OOM. */
struct app_stat_worker *op_region_app_stats_alloc(void);

/* What the route function verified, for the handoff that follows on the same thread at once. */
enum region_ep { EP_CONTROL = 1, EP_STREAM, EP_TCP };
struct region_pending {
    enum region_ep ep;
    struct op_conn_ref ref;
    char agent[OP_ID_LEN + 1];
    uint16_t port;
    int64_t iat, exp;
};
extern _Thread_local struct region_pending op_region_pending;

/* A credential of agent issued at iat (unix seconds) was revoked here (region/revoke.c). Any thread. */
bool op_region_is_revoked(struct op_region *r, const char *agent, int64_t iat);
/* Sends MSG_REVOKE to one of agent's control connections (the newest); it answers GOAWAY `revoked` and,
 * as it closes, passes the message on to the next one. false when it has none (or no message is free:
 * the heartbeat check catches it then). */
bool op_region_post_revoke(struct op_region *r, struct op_engine *e, const char *agent);

/* Verifies tok with the region's keys: 0, -EINVAL (malformed), -ENOKEY (unknown kid), -EACCES (MAC). */
int op_region_verify(struct op_region *r, const char *tok, size_t len, struct op_jws *out);
/* The tcp endpoint's token rules (docs/agent-protocol.md §5): the port query parameter, a connect token
 * (Coder-Connect-Token header or coder_connect_token parameter) for this agent, port and region, and a
 * control connection of the agent here. true with op_region_pending.agent/port set; false with out
 * filled with the answer (400, 401, 403, 404). */
bool op_region_check_connect(struct op_region *r, const struct op_h1_request *req, op_span_t agent,
                             op_span_t query, struct op_route *out);
/* Writes a complete JSON error response {"message": msg} and closes once it is out. */
void op_region_fail(struct op_conn *c, int status, const char *msg);
/* Fills out with an answer `{"message": msg}` (JSON-escaped) on a per-thread buffer. */
void op_region_respond(struct op_route *out, int status, const char *msg);
/* p[0..n) is a UUID in its lower-case canonical text form. */
bool op_region_is_uuid(const char *p, size_t n);
/* Writes `101 Switching Protocols` with `Upgrade: proto`. 0 or -ENOBUFS. */
OP_MUST_USE int op_region_switch(struct op_conn *c, const char *proto);
/* Sends a message to a connection on another (or the same) worker; false when none is free. */
struct region_msg *op_region_msg_get(struct op_region *r);
void op_region_msg_post(struct op_engine *e, struct region_msg *m);
/* Asks one of agent's control connections for n more spares (best effort). */
void op_region_want_spares(struct op_region *r, struct op_engine *e, const char *agent, uint16_t n);
/* A spare arrived or came back: handed to a waiting client, parked, or closed (the leg is taken in every
 * case). */
void op_region_give_spare(struct op_region *r, struct op_engine *e, const char *agent, struct op_leg *leg);

/* The three handoffs (http route OP_ROUTE_HANDOFF) and the protocols they switch to. */
void op_region_control_handoff(void *ctx, struct op_conn *c, const struct op_h1_request *req,
                               const uint8_t *rest, size_t n);
void op_region_stream_handoff(void *ctx, struct op_conn *c, const struct op_h1_request *req,
                              const uint8_t *rest, size_t n);
void op_region_tcp_handoff(void *ctx, struct op_conn *c, const struct op_h1_request *req, const uint8_t *rest,
                           size_t n);
extern const struct op_proto_ops op_region_control_proto, op_region_spare_proto, op_region_tcp_proto;

#endif
