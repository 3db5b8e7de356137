/*
 * agent/pty.h — the agent's web-terminal server: reconnecting PTY sessions spoken over WebSocket, the
 * protocol of Coder's reconnecting PTY. Like the SSH server it listens on no port: a stream whose OPEN
 * line names 127.0.0.1:OP_AGENT_PTY_PORT is handed (one end of an in-process socketpair) to
 * op_agent_pty_serve. The region authorised the stream; it forwards the browser's HTTP request head with
 * the path rewritten to `/pty?reconnect=<uuid>&width=<cols>&height=<rows>[&command=<cmd>]`, and the agent
 * answers the WebSocket handshake itself.
 *
 * A session is keyed by the reconnect UUID: the first socket starts a login shell (or `sh -c command`)
 * on a PTY, every later socket with the same UUID attaches to it and first gets the scrollback (the last
 * OP_AGENT_PTY_RING bytes of output). Client messages are JSON objects {"data":"keys"} and/or
 * {"height":N,"width":N}; the PTY's output goes to every attached socket as binary messages. A session
 * with no socket attached lives for the reconnect timeout, then its shell is hung up. When the shell
 * exits, every attached socket is closed with 1000 and "process exited with code N".
 *
 * One thread with one epoll set serves every connection, PTY and child (never a thread per terminal);
 * docs/terminal.md says more.
 */
#ifndef OP_AGENT_PTY_H
#define OP_AGENT_PTY_H

#include <stddef.h>

/* The reserved stream target: "OPEN 127.0.0.1:2" reaches the terminal server (the port Coder's agent
 * uses for its reconnecting PTY), whatever listens on port 2 inside the workspace. */
#define OP_AGENT_PTY_PORT 2

#define OP_AGENT_PTY_RING         (64 * 1024) /* scrollback replayed to a socket that attaches */
#define OP_AGENT_PTY_MAX_MSG      (64 * 1024) /* a client message over this: close 1009 */
#define OP_AGENT_PTY_PING_MS      15000       /* a ping to every socket this often */
#define OP_AGENT_PTY_STALL_MS     30000       /* the default stall_ms below */
#define OP_AGENT_PTY_HEAD_MS      10000       /* the request head must arrive within this */
#define OP_AGENT_PTY_DEFAULT_COLS 80
#define OP_AGENT_PTY_DEFAULT_ROWS 24

struct op_agent_pty_conf {
    int max_sessions; /* sessions at once; a handshake over it is answered 503 */
    int timeout_ms;   /* how long a session outlives its last socket */
    int stall_ms;     /* a socket with output waiting that takes none this long is cut; 0 = the default */
};

struct op_agent_pty;

/* Starts the server thread. Returns 0, or -errno with the reason in err. */
int op_agent_pty_start(const struct op_agent_pty_conf *conf, struct op_agent_pty **out, char *err,
                       size_t errlen);
/* Hands a connected stream socket to the server (ownership passes; closed in every case). Safe from any
 * thread. Returns 0, or -EAGAIN when the hand-over queue is full or the server is stopping. */
int op_agent_pty_serve(struct op_agent_pty *p, int fd);
/* Closes every socket (1001), hangs up every shell, joins the thread and frees p. */
void op_agent_pty_stop(struct op_agent_pty *p);

#endif
