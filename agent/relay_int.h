/*
 * agent/relay_int.h — what the files of the agent's relay share (relay.c, relay_conn.c, relay_region.c,
 * relay_stream.c); not for use outside them. Everything here runs on the relay thread, except the fields
 * of struct op_relay marked "under mu".
 */
#ifndef OP_AGENT_RELAY_INT_H
#define OP_AGENT_RELAY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "agent/relay.h"
#include "core/common.h"
#include "proto/agent_frame.h"
#include "tls/client.h"

#define STREAM_BUF    (64 * 1024)
#define CTL_IN        (2 * OP_AF_MAX_FRAME)
#define CTL_OUT       (8 * 1024 + OP_AF_MAX_FRAME)
#define SPARE_IN      1024 /* the 101 head and the OPEN line (at most 512 bytes) */
#define LINE_MAX      512
#define MAX_CRED      4096
#define HEAD_MAX      (SPARE_IN - 1)
#define BACKOFF_MIN   1000
#define BACKOFF_RESET 60000 /* connected this long: the next failure starts the backoff over */
/* A spare the region closes after sitting parked this long was closed for idleness (the region closes
 * spares parked for 10 minutes): it is replaced without a warning or a backoff. */
#define SPARE_IDLE_QUIET_MS 60000

enum kind { K_CONTROL, K_SPARE, K_TARGET };
enum state {
    S_CONNECTING, /* TCP connect in progress */
    S_TLS,        /* TLS handshake */
    S_UPGRADE,    /* request sent, waiting for 101 */
    S_READY,      /* control: frames; spare: parked, waiting for OPEN */
    S_DIALING,    /* spare: OPEN received, target connecting */
    S_RELAY,      /* stream: bytes both ways */
    S_FLUSH,      /* write what is queued, then close */
    S_DEAD,
};

struct region;

struct conn {
    int fd;
    enum kind kind;
    enum state st;
    struct region *rg;                  /* NULL for targets, and once the region is gone */
    char rname[OP_RELAY_NAME_MAX + 60]; /* the region's label, for log lines */
    struct op_tlsc *tls;
    struct conn *peer;
    uint8_t *in, *out;
    size_t inlen, incap, outoff, outlen, outcap;
    bool rd_eof, wr_shut;
    uint32_t mask;
    uint64_t deadline; /* connect/dial/upgrade/flush deadline, 0 = none */
    uint64_t ready_ms; /* when it reached S_READY (a spare: when it was parked) */
    bool tls_target;   /* a target reached over TLS ("OPEN tls:host:port": an https app) */
    char target[LINE_MAX + 1];
    struct conn *next, *prev;
};

/* One entry of the region table: a region, or one replica of a region (cfg.replica set). */
struct region {
    struct op_relay_region cfg;
    char label[OP_RELAY_NAME_MAX + 60]; /* "eu" or "eu replica 1a2b3c4d" in log lines */
    char host[256];
    char hostport[300]; /* Host header */
    bool tls;
    struct sockaddr_storage addr;
    socklen_t alen;
    char resolve_err[320];
    struct conn *ctl;
    bool up; /* WELCOME received */
    uint64_t retry_at;
    int failures;
    int spares_wanted, nspares;
    uint64_t spare_retry_at;
    int spare_failures; /* in a row; reset by a spare that got its 101 */
    uint32_t hb_ms;
    uint64_t last_rx, next_ping, nonce, up_since;
    struct region *next;
};

struct op_relay {
    struct op_relay_conf conf;
    struct op_tlsc_ctx *tlsctx;
    struct op_tlsc_ctx *app_tlsctx; /* https app targets: no certificate check; made on first use */
    char tls_err[200];
    int ep, wakefd;
    pthread_t thread;
    struct conn *conns;
    struct region *regions;
    int nstreams;
    /* shared with the control thread: under mu */
    pthread_mutex_t mu;
    struct region *pending; /* a new list, resolved, not yet applied */
    bool pending_set;
    char cred[MAX_CRED];
    bool cred_dirty;
    char connected[OP_RELAY_MAX_REGIONS_HARD][OP_RELAY_NAME_MAX];
    int nconnected;
    bool revoked;
    char revoked_why[400];
    bool stop;
    int grace_ms;
    /* relay-thread copy of the credential */
    char my_cred[MAX_CRED];
};

static inline uint64_t now_ms(void)
{
    return op_now_ms();
}

/* relay_conn.c: connections, buffers, I/O, the Upgrade answer. */
struct conn *ar_conn_new(struct op_relay *r, int fd, enum kind k, struct region *rg);
void ar_conn_close(struct op_relay *r, struct conn *c);
void ar_reap(struct op_relay *r);
bool ar_out_pending(const struct conn *c);
size_t ar_out_space(struct conn *c);
int ar_queue(struct conn *c, const void *p, size_t n);
void ar_update_mask(struct op_relay *r, struct conn *c);
ssize_t ar_read(struct conn *c, void *buf, size_t n);
const char *ar_io_err(const struct conn *c, ssize_t rc);
int ar_flush(struct conn *c);
int ar_parse_upgrade(struct conn *c, const char *proto, int *status, char *why, size_t wl);

/* relay_region.c: control connections, frames, spares, the region list. */
void ar_open_control(struct op_relay *r, struct region *rg);
void ar_close_spares(struct op_relay *r, struct region *rg);
void ar_publish_connected(struct op_relay *r);
void ar_control_failed(struct op_relay *r, struct region *rg, const char *fmt, ...) OP_PRINTF(3, 4);
int ar_new_socket(const struct sockaddr_storage *a, socklen_t alen, int *out);
void ar_top_up_spares(struct op_relay *r, struct region *rg, int extra);
void ar_spare_failed(struct op_relay *r, struct conn *c, const char *why);
void ar_spare_backoff(struct op_relay *r, struct region *rg, const char *why);
int ar_send_frame(struct conn *c, const struct op_af_frame *f);
void ar_send_hello(struct op_relay *r, struct conn *c);
bool ar_on_frame(struct op_relay *r, struct conn *c, const struct op_af_frame *f, char *why, size_t wl);
void ar_region_remove(struct op_relay *r, struct region *rg, const char *why);
void ar_apply_regions(struct op_relay *r);

/* relay_stream.c: OPEN, dials, the pump. */
void ar_refuse(struct op_relay *r, struct conn *spare, uint16_t port, int code, const char *why);
void ar_on_open(struct op_relay *r, struct conn *spare, char *line);
void ar_target_connected(struct op_relay *r, struct conn *t, int err);
/* An https app target's handshake finished (err NULL) or failed (err says why; the stream is refused). */
void ar_target_tls_done(struct op_relay *r, struct conn *t, const char *err);
void ar_maybe_shut(struct op_relay *r, struct conn *a);
bool ar_pump(struct op_relay *r, struct conn *a);

/* relay.c: events. */
void ar_fail_conn(struct op_relay *r, struct conn *c, const char *why);
void ar_on_event(struct op_relay *r, struct conn *c, uint32_t ev);

#endif
