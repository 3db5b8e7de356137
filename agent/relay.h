/*
 * agent/relay.h — the agent's data side, one thread with an epoll loop over non-blocking sockets:
 * a control connection to every region (every replica of a region) it is told about (HTTP Upgrade to
 * outpost-agent/1, then the frames of proto/agent_frame.h), a pool of pre-dialed spare stream connections per
 * region (outpost-stream/1) and the streams: on "OPEN host:port" a spare dials the target inside the
 * workspace and relays bytes both ways through two bounded buffers, half-close propagated.
 * Outbound only: the relay never listens.
 *
 * The control thread (agent.c) feeds it the region list and the credential; the relay answers which
 * regions are connected. Those three calls take a mutex and wake the loop through an eventfd; nothing
 * else is shared.
 */
#ifndef OP_AGENT_RELAY_H
#define OP_AGENT_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/apps.h"

#define OP_RELAY_NAME_MAX         65
#define OP_RELAY_MAX_REGIONS_HARD 64

/* One control connection (and its spares) per entry. A region with several replicas is listed once per
 * replica, with the replica's relay URL and id; entries are told apart by name and URL. */
struct op_relay_region {
    char name[OP_RELAY_NAME_MAX];
    char replica[40]; /* the replica id, "" = the region's access URL (one replica, or a load balancer) */
    char url[1024];   /* access URL or replica relay URL: http[s]://host[:port] */
};

struct op_agent_ssh;
struct op_agent_pty;
struct op_agent_tcpws;

struct op_relay_conf {
    int spares;      /* spare stream connections kept per region */
    int max_spares;  /* cap on spares per region, whatever the region asks for */
    int max_streams; /* streams at once, every region together */
    int max_regions; /* control connections at once */
    int dial_timeout_ms;
    int backoff_max_ms;              /* reconnect backoff cap */
    const char *ca_file;             /* for https regions; NULL = the system's trust store */
    const struct op_agent_app *apps; /* app URLs name the non-loopback targets a stream may dial */
    int napps;
    const char *version;
    struct op_agent_ssh *ssh;     /* NULL: streams to OP_AGENT_SSH_PORT are dialed like any port */
    struct op_agent_pty *pty;     /* NULL: streams to OP_AGENT_PTY_PORT are dialed like any port */
    struct op_agent_tcpws *tcpws; /* `OPEN ws:…` streams (tcp_ws.h); NULL: refused */
};

struct op_relay;

/* Returns 0 and a started relay thread, or -errno with the reason in err. */
int op_relay_start(const struct op_relay_conf *conf, struct op_relay **out, char *err, size_t errlen);
/* Replaces the region list (regions gone get GOAWAY; their streams finish on their own). */
void op_relay_set_regions(struct op_relay *r, const struct op_relay_region *regions, int n);
/* A fresh agent credential (JWS): used by new connections and sent as CREDENTIAL on the others. */
void op_relay_set_credential(struct op_relay *r, const char *jws);
/* Names of the regions whose control connection is up (WELCOME received); returns the count. */
int op_relay_connected(struct op_relay *r, char names[][OP_RELAY_NAME_MAX], int max);
/* True once a region refused the credential with 403 (the agent was revoked); reason copied. */
bool op_relay_revoked(struct op_relay *r, char *why, size_t len);
/* GOAWAY on every control connection, spares closed, streams given grace_ms to finish, thread joined,
 * everything freed. */
void op_relay_stop(struct op_relay *r, int grace_ms);

#endif
