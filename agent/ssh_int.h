/*
 * agent/ssh_int.h — what agent/ssh.c and agent/ssh_chan.c share; the only header besides them that sees
 * libssh. Everything of one session runs on that session's thread.
 */
#ifndef OP_AGENT_SSH_INT_H
#define OP_AGENT_SSH_INT_H

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#include "agent/ssh.h"

#define SSH_MAX_ENV 64

struct op_agent_ssh {
    ssh_bind bind;
    ssh_key key;
    char pub[256], fp[128];
    int max_sessions;
    atomic_bool stop;
    pthread_mutex_t mu; /* nsessions, ssh_bind_accept_fd */
    pthread_cond_t cv;
    int nsessions;
};

enum chan_kind { CH_FREE, CH_SESSION, CH_TCPIP };
/* An output descriptor: not yet in the event loop, watched, at its end (to remove), removed/none. */
enum rd_state { RD_NONE, RD_WATCHED, RD_EOF, RD_DONE };

struct sess;

/* One channel. wfd takes the client's data (a child's stdin, a PTY master, a forwarded socket); rfd and
 * efd are read into the channel's data and extended (stderr) data. With a PTY or a socket wfd == rfd. */
struct chan {
    struct sess *ss;
    ssh_channel ch;
    enum chan_kind kind;
    struct ssh_channel_callbacks_struct cb;
    bool pty;
    char term[64];
    struct winsize ws;
    char *env[SSH_MAX_ENV];
    int nenv;
    bool started;
    pid_t pid;
    bool reaped;
    int status;
    int wfd, rfd, efd;
    enum rd_state rst, est;
    bool peer_eof, peer_closed;
    char target[300];
};

struct sess {
    struct op_agent_ssh *srv;
    ssh_session s;
    ssh_event ev;
    int fd;
    struct ssh_server_callbacks_struct scb;
    struct chan ch[OP_AGENT_SSH_MAX_CHANNELS];
    int auth_fails;
    bool authed, cut;
};

/* ssh_chan.c */
ssh_channel ar_ssh_chan_open_session(struct sess *ss);
int ar_ssh_chan_open_tcpip(struct sess *ss, ssh_message msg);
/* After each event-loop round: children reaped, finished channels closed, new descriptors watched. */
void ar_ssh_chan_poll(struct sess *ss);
void ar_ssh_chan_close_all(struct sess *ss);

#endif
