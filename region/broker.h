/*
 * region/broker.h — the per-region meeting point of agents and clients: for each agent, the control
 * connections it keeps to this region, the stream connections it parked here (spares: sockets that left
 * their connection slots, each with its TLS session when the region is https, as a struct op_leg) and the
 * clients waiting for one. Touched once per spare arrival and once per stream set-up, never per byte; a
 * mutex guards it (any worker may park or take). Nothing here does I/O except the non-blocking MSG_PEEK
 * that checks a spare is still alive when it is taken. Closing a parked spare closes its socket and frees
 * its session (op_leg_close), on whichever thread closes it.
 */
#ifndef OP_REGION_BROKER_H
#define OP_REGION_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/engine.h"
#include "proto/agent_token.h"

struct op_broker_limits {
    uint32_t max_agents;        /* agents with state here at once */
    uint32_t ctl_per_agent;     /* control connections per agent */
    uint32_t spares_per_agent;  /* parked stream connections per agent */
    uint32_t waiters_per_agent; /* clients waiting for a spare, per agent */
    uint32_t
        spare_idle_ms; /* a spare parked longer is closed by op_broker_refill (0: OP_BROKER_SPARE_IDLE_MS) */
};

/* Parked spares older than this are closed (the agent replaces them): a socket parked for hours is the
 * likeliest to have been cut silently by a NAT or firewall on the way. */
#define OP_BROKER_SPARE_IDLE_MS (10u * 60u * 1000u)

struct op_broker;

/* NULL on allocation failure. Every array is allocated here, once. */
struct op_broker *op_broker_new(const struct op_broker_limits *lim);
/* Closes every parked spare and frees the broker (no worker may use it any more). */
void op_broker_free(struct op_broker *b);

/* A control connection of agent came up: 0, -EUSERS (ctl_per_agent reached) or -ENOSPC (max_agents). */
OP_MUST_USE int op_broker_ctl_add(struct op_broker *b, const char *agent, struct op_conn_ref ref);
/* It went away. When it was the agent's last one, its parked spares are closed (nobody can ask the agent
 * for streams any more). */
void op_broker_ctl_del(struct op_broker *b, const char *agent, struct op_conn_ref ref);
/* One of the agent's control connections (for SPARES), false when it has none. */
bool op_broker_ctl_pick(struct op_broker *b, const char *agent, struct op_conn_ref *out);
/* How many sockets the agent has parked right now (0 for an unknown agent). */
uint32_t op_broker_parked(struct op_broker *b, const char *agent);
/* True while the agent could take one more spare (it has a control connection and room). */
bool op_broker_can_park(struct op_broker *b, const char *agent);

/* A spare arrives. 0: parked (the leg belongs to the broker now). When a client is waiting for this agent,
 * the spare is not parked: *waiter names that client and the result is 1 (the caller still holds the leg and
 * hands it over). -ESRCH: the agent has no control connection here; -EUSERS: its spares are at the limit
 * (the caller still owns the leg in both cases). */
OP_MUST_USE int op_broker_park(struct op_broker *b, const char *agent, const struct op_leg *leg,
                               struct op_conn_ref *waiter);
/* Takes the agent's most recently parked spare that is still alive (dead ones are closed and skipped).
 * Returns its fd (>= 0) with the leg in *out (the caller's now), or when none is parked: -EINPROGRESS when
 * `wait` was given and
 * the client is now registered as waiting for the next spare (in the same step, so a spare arriving
 * meanwhile cannot be missed), -ENOENT without `wait`, -EUSERS when waiters_per_agent is reached. -ESRCH
 * when the agent has no control connection here. */
OP_MUST_USE int op_broker_take(struct op_broker *b, const char *agent, const struct op_conn_ref *wait,
                               uint32_t *ask, struct op_leg *out);
/* Spares on their way: the broker counts the ones the agent will open without being asked (one per spare
 * taken: the agent replaces each) and the ones asked for; *ask (set by op_broker_take when a client starts
 * waiting) is how many more to ask for with SPARES so that every waiting client has one coming.
 * op_broker_refill, once per heartbeat, closes the spares parked longer than spare_idle_ms (the agent sees
 * them close and replaces them itself, so they count as on their way), forgets what else is still on its way
 * (it came or it failed) and returns how many to ask for to bring the parked ones up to `wanted`. */
uint32_t op_broker_refill(struct op_broker *b, const char *agent, uint32_t wanted);
/* Removes a waiting client; false when it is no longer waiting (a spare is on its way to it). */
bool op_broker_unwait(struct op_broker *b, const char *agent, struct op_conn_ref ref);

/* Totals for metrics and tests. */
struct op_broker_stats {
    uint32_t agents, ctl, parked, waiting;
    uint64_t parked_total, taken_total, dead_total, handed_total, idle_total;
};
void op_broker_stats(struct op_broker *b, struct op_broker_stats *out);

#endif
