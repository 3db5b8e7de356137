/*
 * agent/pty_int.h — what the files of the terminal server share (pty.c: sessions; pty_server.c: the
 * thread and the WebSocket connections; pty_head.c: the request head). Everything here runs on the
 * server thread, except the hand-over queue of struct op_agent_pty (under mu).
 *
 * Output flow: the PTY is read into the session's ring; the ring is both the scrollback and the output
 * not yet sent. Each socket has a position in the output stream (`pos`, absolute) and is fed binary
 * frames from the ring as its out buffer drains. The PTY is read only while some attached socket is less
 * than a ring behind; a socket that falls a whole ring behind lost output and is cut, and one that takes
 * nothing for conf.stall_ms (30 s) while output waits is cut too.
 */
#ifndef OP_AGENT_PTY_INT_H
#define OP_AGENT_PTY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#include "agent/pty.h"
#include "proto/ws.h"

#define PTY_IN_CAP   8192                                         /* request head, then raw frames */
#define PTY_OUT_CAP  (16 * 1024)                                  /* frames waiting for the socket */
#define PTY_OUT_CTRL (4 * (OP_WS_MAX_CONTROL + OP_WS_MAX_HEADER)) /* kept free for control frames */
#define PTY_READ_MAX (16 * 1024)                                  /* one read of the PTY */
#define PTY_QUEUE    256  /* sockets handed over, not yet taken by the thread */
#define PTY_CLOSE_MS 2000 /* a closing socket is dropped after this */
#define PTY_KILL_MS  5000 /* a hung-up shell still running after this gets SIGKILL */
#define PTY_UUID_LEN 36
#define PTY_CMD_MAX  4096

enum pfd_kind { PFD_WAKE, PFD_CONN, PFD_MASTER, PFD_CHILD };
struct pfd {
    enum pfd_kind kind;
    void *owner;
};

enum psess_state {
    PS_RUNNING, /* the shell runs */
    PS_HUNGUP,  /* no socket for the reconnect timeout (or stopping): SIGHUP sent, waiting to reap */
    PS_EXITED,  /* reaped; attached sockets get the rest of the output, then the close */
};

enum pconn_state {
    PC_READ_HEAD, /* waiting for the HTTP request head */
    PC_OPEN,      /* WebSocket open, attached to a session */
    PC_CLOSING,   /* writing what is queued (an error page or a close frame), then closed */
    PC_DEAD,      /* closed; freed after the current round of events */
};

struct pconn;

struct psess {
    struct op_agent_pty *srv;
    char id[PTY_UUID_LEN + 1];
    enum psess_state st;
    pid_t pid;
    int master, pidfd;
    struct pfd mpfd, cpfd;
    uint32_t mmask; /* the master's epoll mask now (0 = not in the set) */
    bool master_hup;
    int status; /* wait status once reaped */
    uint8_t *ring;
    uint64_t total; /* bytes ever put in the ring: the ring holds [total - min(total, RING), total) */
    struct pconn *conns;
    int nconns;
    uint64_t idle_deadline; /* no socket attached: hung up at this time; 0 = none */
    uint64_t kill_deadline;
    struct winsize ws;
    struct psess *next, *prev;
};

struct pconn {
    struct op_agent_pty *srv;
    int fd;
    struct pfd pfd;
    enum pconn_state st;
    struct psess *sess;
    struct pconn *snext, *sprev; /* the session's sockets */
    struct pconn *next, *prev;   /* every socket */
    uint8_t *in;
    size_t inlen;
    uint8_t *out;
    size_t outoff, outlen;
    uint8_t *msg; /* the message assembler's buffer (OP_AGENT_PTY_MAX_MSG) */
    struct op_ws_reader rd;
    uint64_t pos;      /* the next output byte this socket gets */
    size_t woff, wend; /* keystrokes in msg[woff..wend) not yet written to the PTY */
    bool rd_eof, wr_blocked;
    uint64_t deadline; /* head or closing deadline; 0 = none */
    uint64_t next_ping;
    uint64_t stall_since; /* output waits and the socket takes none since then; 0 = not stalled */
};

struct op_agent_pty {
    struct op_agent_pty_conf conf;
    int ep, wakefd;
    struct pfd wpfd;
    pthread_t thread;
    pthread_mutex_t mu; /* queue, nqueue, stop */
    int queue[PTY_QUEUE];
    int nqueue;
    bool stop;
    struct pconn *conns;
    int nconns;
    struct pconn *dead; /* closed this round, freed after it */
    struct psess *sessions;
    int nsessions;
    uint64_t next_tick; /* the earliest deadline of any socket or session */
};

/* A parsed request head. */
struct pty_req {
    char id[PTY_UUID_LEN + 1];
    int cols, rows;
    bool has_command;
    char command[PTY_CMD_MAX];
    char accept[OP_WS_ACCEPT_LEN + 1];
};

/* pty_head.c: parses the request head in buf[0..len). Returns the head's length (> 0) with *req filled;
 * 0 when more bytes are needed; -1 with *status (400, 404, 405) and *why for a refused request. */
int pty_parse_head(const char *buf, size_t len, struct pty_req *req, int *status, const char **why);
bool pty_uuid_valid(const char *s, size_t n);

/* pty.c: sessions. */
const char *pty_sess_state_name(enum psess_state s);
struct psess *pty_sess_find(struct op_agent_pty *p, const char *id);
int pty_sess_spawn(struct op_agent_pty *p, const struct pty_req *req, struct psess **out);
void pty_sess_attach(struct psess *s, struct pconn *c);
void pty_sess_detach(struct pconn *c);
void pty_sess_resize(struct psess *s, int cols, int rows);
/* Copies output [pos, pos + n) from the ring (the caller checked it is there). */
void pty_sess_copy(const struct psess *s, uint64_t pos, uint8_t *dst, size_t n);
/* The oldest output byte still in the ring. */
uint64_t pty_sess_ring_start(const struct psess *s);
void pty_sess_on_master(struct psess *s, uint32_t ev);
void pty_sess_on_child(struct psess *s);
/* Re-arms the master: readable while some socket has room, writable while keystrokes wait. */
void pty_sess_update(struct psess *s);
/* Deadlines: hangs up idle sessions, kills stubborn ones, frees finished ones. Returns the session's
 * next deadline (0 = none); s may be freed (then *freed is set). */
uint64_t pty_sess_tick(struct psess *s, uint64_t now, bool *freed);
/* The close reason of an exited session ("process exited with code 3"). */
void pty_sess_exit_reason(const struct psess *s, char *out, size_t len);
void pty_sess_hangup(struct psess *s);
void pty_sess_free(struct psess *s);

/* pty_server.c: called by the sessions. */
const char *pty_conn_state_name(enum pconn_state s);
void pty_conn_output(struct pconn *c); /* new output in the ring (or the session exited) */
void pty_conn_cut(struct pconn *c, uint16_t code, const char *reason);
bool pty_conn_write_keys(struct pconn *c); /* false when the socket was closed */
uint64_t pty_now_ms(void);

/* Makes the loop look at deadlines by time t. */
static inline void pty_want_tick(struct op_agent_pty *p, uint64_t t)
{
    if (t && (p->next_tick == 0 || t < p->next_tick)) p->next_tick = t;
}

#endif
