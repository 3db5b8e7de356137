/*
 * region/broker.h — the per-region meeting point of agents and clients: for each agent, the control
 * connections it keeps to this region, the stream connections it parked here (spares, as bare sockets that
 * left their connection slots) and the clients waiting for one. Touched once per spare arrival and once per
 * stream set-up, never per byte; a mutex guards it (any worker may park or take). Nothing here does I/O
 * except the non-blocking MSG_PEEK that checks a spare is still alive when it is taken.
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
};

struct op_broker;

/* NULL on allocation failure. Every array is allocated here, once. */
struct op_broker *op_broker_new(const struct op_broker_limits *lim);
/* Closes every parked socket and frees the broker (no worker may use it any more). */
void op_broker_free(struct op_broker *b);

/* A control connection of agent came up: 0, -EUSERS (ctl_per_agent reached) or -ENOSPC (max_agents). */
OP_MUST_USE int op_broker_ctl_add(struct op_broker *b, const char *agent, struct op_conn_ref ref);
/* It went away. When it was the agent's last one, its parked sockets are closed (nobody can ask the agent
 * for streams any more). */
void op_broker_ctl_del(struct op_broker *b, const char *agent, struct op_conn_ref ref);
/* One of the agent's control connections (for SPARES), false when it has none. */
bool op_broker_ctl_pick(struct op_broker *b, const char *agent, struct op_conn_ref *out);
/* How many sockets the agent has parked right now (0 for an unknown agent). */
uint32_t op_broker_parked(struct op_broker *b, const char *agent);
/* True while the agent could take one more spare (it has a control connection and room). */
bool op_broker_can_park(struct op_broker *b, const char *agent);

/* A spare arrives (fd now belongs to the broker on success). When a client is waiting for this agent, the
 * socket is not parked: it is returned for that client, *waiter names it, and the result is 1 (the caller
 * hands fd over). 0: parked. -ESRCH: the agent has no control connection here; -EUSERS: its spares are at
 * the limit (the caller still owns fd in both cases). */
OP_MUST_USE int op_broker_park(struct op_broker *b, const char *agent, int fd, struct op_conn_ref *waiter);
/* Takes the agent's most recently parked socket that is still alive (dead ones are closed and skipped).
 * Returns the fd (>= 0, the caller's now), or when none is parked: -EINPROGRESS when `wait` was given and
 * the client is now registered as waiting for the next spare (in the same step, so a spare arriving
 * meanwhile cannot be missed), -ENOENT without `wait`, -EUSERS when waiters_per_agent is reached. -ESRCH
 * when the agent has no control connection here. */
OP_MUST_USE int op_broker_take(struct op_broker *b, const char *agent, const struct op_conn_ref *wait,
                               uint32_t *ask);
/* Spares on their way: the broker counts the ones the agent will open without being asked (one per spare
 * taken: the agent replaces each) and the ones asked for; *ask (set by op_broker_take when a client starts
 * waiting) is how many more to ask for with SPARES so that every waiting client has one coming.
 * op_broker_refill, once per heartbeat, forgets what is still on its way (it came or it failed) and returns
 * how many to ask for to bring the parked ones up to `wanted`. */
uint32_t op_broker_refill(struct op_broker *b, const char *agent, uint32_t wanted);
/* Removes a waiting client; false when it is no longer waiting (a spare is on its way to it). */
bool op_broker_unwait(struct op_broker *b, const char *agent, struct op_conn_ref ref);

/* Totals for metrics and tests. */
struct op_broker_stats {
    uint32_t agents, ctl, parked, waiting;
    uint64_t parked_total, taken_total, dead_total, handed_total;
};
void op_broker_stats(struct op_broker *b, struct op_broker_stats *out);

#endif
