/*
 * region/region.h — the region side of agent streams, mounted by the primary and by every workspace proxy
 * (wire details: docs/agent-protocol.md):
 *
 *   GET /api/v2/workspaceagents/me/control          Upgrade outpost-agent/1   an agent's control connection
 *   GET /api/v2/workspaceagents/me/stream           Upgrade outpost-stream/1  a spare stream connection
 *   GET /api/v2/workspaceagents/{agent-id}/tcp?port=N  Upgrade outpost-tcp/1  a client's byte stream
 *
 * Agent credentials and connect tokens are verified locally with the region's key set (the primary's own
 * keys, or the ones a proxy fetched): no database, no call to the primary per connection. After its 101 a
 * control connection runs the frame protocol of proto/agent_frame.h as an engine protocol of its own; a
 * stream connection leaves the engine (its socket is parked in the region's broker); a client connection
 * takes a parked socket as its upstream leg, sends `OPEN 127.0.0.1:PORT`, and after the agent's `OK` the
 * engine's pump relays the two legs like any upstream (zero-copy, splice when enabled).
 *
 * Threading: op_region_route runs on the workers (from the role's HTTP route function); op_region_set_keys
 * on the control thread. A region outlives its engine: free it after op_engine_free.
 */
#ifndef OP_REGION_H
#define OP_REGION_H

#include <stdint.h>

#include "core/engine.h"
#include "http/proxy.h"

/* Limits (0 = the default in brackets; documented in docs/agent-protocol.md). */
struct op_region_limits {
    uint32_t max_agents;        /* agents with connections here at once [1024] */
    uint32_t ctl_per_agent;     /* control connections per agent [4] */
    uint32_t spares_per_agent;  /* parked stream connections per agent [64] */
    uint32_t waiters_per_agent; /* clients waiting for a spare, per agent [256] */
    uint32_t wait_ms;           /* how long a client waits for a spare [5000] */
    uint32_t spares_wanted;     /* spares an agent keeps parked here (WELCOME) [8] */
    uint32_t heartbeat_ms;      /* PING interval; 3 missed close the connection [15000] */
    uint32_t tunnel_idle_ms;    /* an established stream idle this long is closed (0 = never) [0] */
};

/* Parses a limits spec, "name=value" pairs separated by commas, over the defaults in *out (0 = default):
 * agents, control, spares, max-spares, waiters (counts) and wait, heartbeat, idle (durations: 5s, 500ms).
 * E.g. "spares=4,max-spares=32,wait=3s". NULL or "" changes nothing. 0, or -EINVAL with the reason in err. */
OP_MUST_USE int op_region_limits_parse(const char *spec, struct op_region_limits *out, char *err,
                                       size_t errlen);
#define OP_REGION_LIMITS_HELP                                                                                \
    "Agent stream limits of this region, name=value pairs separated by commas: agents (1024), control "      \
    "connections per agent (4), spares wanted per agent (8), max-spares parked per agent (64), waiters "     \
    "per agent (256), wait for a spare (5s), heartbeat (15s), idle timeout of a stream (0s = none)."

struct op_region;

/* name: "primary" or the proxy's name (connect tokens must name it). NULL on allocation failure. */
struct op_region *op_region_new(const char *name, const struct op_region_limits *lim);
/* After op_engine_free: closes the parked sockets and frees everything. */
void op_region_free(struct op_region *r);
const char *op_region_name(const struct op_region *r);
/* Names the region (a proxy learns its name when it registers). Before the engine starts only: workers
 * read the name without synchronisation. 0 or -EINVAL (empty or longer than 64). */
OP_MUST_USE int op_region_set_name(struct op_region *r, const char *name);

/* The verification keys (workspace_apps_token: kid = the key's sequence, 64-byte HS512 secrets). */
#define OP_REGION_MAX_KEYS 16
struct op_region_key {
    int64_t kid;
    uint8_t secret[64];
};
/* Publishes a new key set (copied). e: the running engine (the old set is released once every worker moved
 * past it), or NULL before the engine starts. Control thread only. 0 or -ENOMEM / -EINVAL (n too large). */
OP_MUST_USE int op_region_set_keys(struct op_region *r, struct op_engine *e, const struct op_region_key *keys,
                                   int n);

/* The agent's token was regenerated or its workspace deleted (the primary, which checks its database):
 * every control connection of the agent here gets GOAWAY `revoked` at once (messages to their workers)
 * and credentials issued up to now are refused on new control and stream connections (401), instead of
 * being accepted until they expire. Any thread; e: the running engine (NULL: only the refusal). */
void op_region_revoke_agent(struct op_region *r, struct op_engine *e, const char *agent_id);
/* The second of the agent's newest revocation (unix seconds; 0: none). Credentials with an iat up to it are
 * refused, so the primary issues the agent's next one (made with its new token) with a later iat: one
 * issued in the same second as a revocation would be refused too. Any thread. */
int64_t op_region_revoked_until(struct op_region *r, const char *agent_id);
/* How the region asks its role for the keys again when a worker meets an unknown key id (a proxy: one
 * coalesced refetch of the crypto keys). fn runs on a worker and must not block. Before the engine starts;
 * none by default (the primary's region has every key in its database). */
void op_region_set_refetch(struct op_region *r, void (*fn)(void *ctx), void *ctx);

/* The role's route function calls this first: true when the request is one of the three endpoints above
 * (out is then filled: a handoff to the region, or an error answer), false to route it as usual. */
bool op_region_route(struct op_region *r, struct op_conn *c, const struct op_h1_request *req,
                     struct op_route *out);

/* The Upgrade tokens a role's HTTP configuration must let through (op_http_conf.upgrade_tokens) for the
 * region's endpoints, plus "websocket": NULL-terminated. */
extern const char *const op_region_upgrade_tokens[];

/* ---- workspace apps (region/apps.c, docs/apps.md) ------------------------------------------------------ */

/* How a role serves apps. The strings must stay valid while the engine runs (workers read them). */
struct op_region_app_conf {
    const char *access_url; /* this role's access URL, "http(s)://host[:port]" */
    const char *wildcard;   /* the app host pattern, e.g. "*.eu.example.com:8443"; "" = no subdomain apps */
    const char *dashboard_url; /* the primary's access URL: error pages link to it, coder-logout goes there */
    bool disable_path_apps;    /* path apps answer a 403 page here (the primary's flag) */
    bool https;                /* app cookies get Secure */
    bool primary;              /* the primary's own region: API-key smuggling on the access host is refused */
};

/* The app usage counted since the last call (region/app_stats.c): the JSON body of POST
 * /api/v2/workspaceproxies/me/app-stats ({"stats":[{user_id, workspace_id, agent_id, access_method,
 * slug_or_port, session_id, session_started_at, session_ended_at, requests}...]}, one entry per visitor and
 * app, the first and last request as the session), malloc'd, or NULL when nothing was counted; *requests
 * the total. Control thread only. */
char *op_region_app_stats_take(struct op_region *r, uint64_t *requests);

/* The role's route function calls this after op_region_route: true when the request is for a workspace
 * app (out is filled: the agent stream upstream of a request carrying a valid signed app token, an answer,
 * or OP_ROUTE_APP for the role's app handler, which calls op_region_app_handle), false otherwise. Worker
 * thread, no I/O. */
bool op_region_route_app(struct op_region *r, const struct op_region_app_conf *conf, struct op_conn *c,
                         const struct op_h1_request *req, struct op_route *out);

/* The role's route function calls this before op_region_route_app: true when the request is for the web
 * terminal, GET /api/v2/workspaceagents/{agent}/pty (region/pty.c; out is filled: the agent stream upstream
 * of an authorized request, an answer, or on the primary OP_ROUTE_APP for the session check, after which
 * the handler's grant routes it again). Worker thread, no I/O. */
bool op_region_route_pty(struct op_region *r, const struct op_region_app_conf *conf, struct op_conn *c,
                         const struct op_h1_request *req, struct op_route *out);

/* The role's route function calls this before op_region_route: true when the request is the WebSocket
 * variant of the tcp endpoint, GET /api/v2/workspaceagents/{agent}/tcp?port=N with Upgrade: websocket
 * (region/tcp_ws.c; out is filled: the agent stream upstream of a request with a valid connect token and
 * an allowed Origin, or an answer). Worker thread, no I/O. */
bool op_region_route_tcp_ws(struct op_region *r, const struct op_region_app_conf *conf, struct op_conn *c,
                            const struct op_h1_request *req, struct op_route *out);

/* What the slow path needs from its role (control thread; issue and refresh_keys may block). */
struct op_region_app_pending;
struct op_region_app_hooks {
    /* Asks for a signed app token with the §2.9 body issue (a cJSON object). Returns 0 with the token in
     * tok (NUL-terminated) on a 201; a positive status when resp holds the answer to relay as it is; or
     * -EHOSTUNREACH when the primary could not be reached (the region answers its 502 page). */
    int (*issue)(void *ctx, const void *issue, const char *real_ip, char *tok, size_t toklen,
                 struct op_app_response *resp);
    /* The 32-byte workspace_apps_api_key secret of kid: 0 or -ENOKEY. */
    int (*apikey)(void *ctx, int64_t kid, uint8_t key[32]);
    /* A token just issued is signed with a key the region does not know: refresh the region's key set now
     * (once; blocking). May be NULL. */
    void (*refresh_keys)(void *ctx);
    /* Optional, used instead of issue (a proxy: the call must not hold the control thread): starts the call
     * and returns at once. 0: the answer comes later through op_region_app_issued(p, ...), from any thread;
     * -EBUSY: too many sign-ins in progress (503 page); -EHOSTUNREACH: the primary is known to be
     * unreachable (502 page at once). */
    int (*issue_async)(void *ctx, const void *issue, const char *real_ip, struct op_region_app_pending *p);
    /* Optional, used instead of refresh_keys: asks for a key refetch (joined when one is in flight) and
     * calls done(arg) on the control thread once it ended, fetched or not. Any thread. */
    void (*refetch_keys)(void *ctx, void (*done)(void *arg), void *arg);
    void *ctx;
};

/* A slow-path request whose answer waits for the issuer (issue_async). */
struct op_region_app_pending;
/* The response an issue_async call relays into (the primary's non-201 answers: status, headers, body). */
struct op_app_response *op_region_app_pending_resp(struct op_region_app_pending *p);
/* The end of an issue_async call (any thread, once): rc and tok as the issue hook's return values. The
 * region answers the request (possibly after a key refetch) and frees p. */
void op_region_app_issued(struct op_region_app_pending *p, int rc, const char *tok);

/* The app handler's part (control thread): false when req is not an app request (answer it as usual);
 * true with resp filled: the session cookie from an app-connect key (303), a signed app token cookie (307
 * back to the same URL), or the answer the issuer gave — or, with issue_async / refetch_keys, resp deferred
 * (op_app_defer) and answered later from another thread. */
bool op_region_app_handle(struct op_region *r, const struct op_region_app_conf *conf,
                          const struct op_region_app_hooks *h, const struct op_app_request *req,
                          struct op_app_response *resp);

/* The app handler's part for a terminal request that a worker sent to it because its token is signed with a
 * key the region does not know (a proxy, h->refetch_keys set): false when req is not one; true when its
 * answer is deferred until the refetch ended, after which a grant routes it on the worker again. */
bool op_region_pty_rekey(struct op_region *r, const struct op_region_app_conf *conf,
                         const struct op_region_app_hooks *h, const struct op_app_request *req,
                         struct op_app_response *resp);

/* Counters (any thread). */
struct op_region_stats {
    uint32_t agents, control, parked, waiting;
    uint64_t streams_opened, streams_failed, parked_total, dead_spares;
};
void op_region_stats(struct op_region *r, struct op_region_stats *out);

#endif
