/*
 * ctl/ctl.h — the control thread's loop: signals, periodic ticks, extra file descriptors, systemd
 * notifications. Everything slow happens here; workers are only ever sent messages.
 *
 * Call op_ctl_block_signals() before starting any thread so that SIGTERM/SIGINT/SIGHUP are delivered
 * only through the control loop's signalfd.
 */
#ifndef OP_CTL_H
#define OP_CTL_H

#include "core/engine.h"

struct op_ctl_fd {
    int fd;
    void (*on_readable)(void *arg);
    void *arg;
};

struct op_ctl_hooks {
    void (*tick)(void *arg); /* about every 100 ms */
    void *tick_arg;
    /* SIGHUP: re-read configuration. Returns 0 when applied, negative when the old config stays. */
    int (*reload)(void *arg);
    void *reload_arg;
    /* Called once when SIGTERM/SIGINT starts the drain (e.g. deregister from the primary). */
    void (*on_stop)(void *arg);
    void *stop_arg;
    struct op_ctl_fd fds[4];
    int nfds;
};

/* Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread (and threads it starts). 0 or -errno. */
int op_ctl_block_signals(void);
/* Runs until the engine has drained after SIGTERM/SIGINT (or op_ctl_request_stop). Returns 0, or 1 if a
 * second signal forced an immediate exit. */
int op_ctl_run(struct op_engine *e, const struct op_ctl_hooks *hooks);
/* Asks the loop to stop as if SIGTERM arrived (thread-safe). */
void op_ctl_request_stop(void);
/* sd_notify(3) without libsystemd: sends state to $NOTIFY_SOCKET if set. Returns 0 or -errno. */
int op_sd_notify(const char *state);

#endif
