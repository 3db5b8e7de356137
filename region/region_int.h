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

enum region_msg_kind { MSG_SPARES = 1, MSG_FD };

/* A message between workers: SPARES for a control connection, a spare's socket for a waiting client. */
struct region_msg {
    struct op_msg m;
    struct op_region *r;
    enum region_msg_kind kind;
    struct op_conn_ref ref;
    int fd;
    uint16_t count;
    int32_t next; /* free list */
    char agent[OP_ID_LEN + 1];
};

struct op_region {
    char name[65];
    struct op_region_limits lim;
    struct op_broker *broker;
    struct keyset *_Atomic keys;
    pthread_mutex_t msg_mu;
    struct region_msg *msgs;
    int32_t msg_free;
    struct region_wstats ws[OP_ENGINE_MAX_WORKERS];
    struct app_wait *app_waits;    /* OP_ENGINE_MAX_WORKERS * REGION_APP_WAITS */
    struct app_stat_worker *stats; /* OP_ENGINE_MAX_WORKERS app usage tables (app_stats.c) */
};

/* The OP_ENGINE_MAX_WORKERS app usage tables, zeroed (app_stats.c; free() frees them); NULL on OOM. */
struct app_stat_worker *op_region_app_stats_alloc(void);

/* What the route function verified, for the handoff that follows on the same thread at once. */
enum region_ep { EP_CONTROL = 1, EP_STREAM, EP_TCP };
struct region_pending {
    enum region_ep ep;
    struct op_conn_ref ref;
    char agent[OP_ID_LEN + 1];
    uint16_t port;
    int64_t exp;
};
extern _Thread_local struct region_pending op_region_pending;

/* Verifies tok with the region's keys: 0, -EINVAL (malformed), -ENOKEY (unknown kid), -EACCES (MAC). */
int op_region_verify(struct op_region *r, const char *tok, size_t len, struct op_jws *out);
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
/* A spare socket arrived or came back: handed to a waiting client, parked, or closed. */
void op_region_give_spare(struct op_region *r, struct op_engine *e, const char *agent, int fd);

/* The three handoffs (http route OP_ROUTE_HANDOFF) and the protocols they switch to. */
void op_region_control_handoff(void *ctx, struct op_conn *c, const struct op_h1_request *req,
                               const uint8_t *rest, size_t n);
void op_region_stream_handoff(void *ctx, struct op_conn *c, const struct op_h1_request *req,
                              const uint8_t *rest, size_t n);
void op_region_tcp_handoff(void *ctx, struct op_conn *c, const struct op_h1_request *req, const uint8_t *rest,
                           size_t n);
extern const struct op_proto_ops op_region_control_proto, op_region_spare_proto, op_region_tcp_proto;

#endif
