/*
 * agent/ssh.h — the agent's own SSH server (libssh's server API, behind this header only), so a workspace
 * needs no sshd. It listens on no port: a stream whose OPEN line names 127.0.0.1:OP_AGENT_SSH_PORT is not
 * dialed; the relay hands op_agent_ssh_serve the stream's own socket (plaintext) or one end of an
 * in-process socketpair whose other end it relays (docs/ssh.md). One thread per SSH session (the relay
 * thread never blocks on SSH).
 *
 * No user authentication: the stream that carries a session was authorised by the region (a connect
 * token for this agent), so the `none` method and any public key are accepted; password and other
 * methods are refused, and a session is cut after OP_AGENT_SSH_MAX_AUTH refused attempts. Shell and exec
 * (with or without a PTY, as the agent's user), environment variables, window changes, exit status and
 * signals, the sftp subsystem and direct-tcpip to loopback ports; docs/agent.md says more.
 */
#ifndef OP_AGENT_SSH_H
#define OP_AGENT_SSH_H

#include <stdbool.h>
#include <stddef.h>

/* The reserved stream target: "OPEN 127.0.0.1:1" reaches the agent's SSH server (the port Coder's agent
 * uses for SSH on its tailnet), whatever listens on port 1 inside the workspace. */
#define OP_AGENT_SSH_PORT 1

#define OP_AGENT_SSH_MAX_AUTH     6  /* refused authentication attempts before the session is cut */
#define OP_AGENT_SSH_MAX_CHANNELS 10 /* channels at once per session (as OpenSSH's MaxSessions) */
#define OP_AGENT_SSH_KEEPALIVE_MS 15000

struct op_agent_ssh;

/* Loads the ed25519 host key from <data_dir>/ssh_host_ed25519_key, generating it (mode 0600, the
 * directory created 0700) on first start. max_sessions bounds SSH sessions at once. Returns 0, or -errno
 * with the reason in err. */
int op_agent_ssh_start(const char *data_dir, int max_sessions, struct op_agent_ssh **out, char *err,
                       size_t errlen);
/* The host public key as an OpenSSH known-hosts key ("ssh-ed25519 AAAA...") and its SHA256 fingerprint. */
const char *op_agent_ssh_pubkey(const struct op_agent_ssh *s);
const char *op_agent_ssh_fingerprint(const struct op_agent_ssh *s);
/* Serves one SSH session on fd (a connected stream socket; ownership passes, closed in every case) on a
 * new thread. Returns 0, or -EAGAIN over the session limit, or -errno. */
int op_agent_ssh_serve(struct op_agent_ssh *s, int fd);
/* Whether op_agent_ssh_serve would take one more session now (sessions only end elsewhere, so a caller
 * that is the only one to call op_agent_ssh_serve can rely on a true). */
bool op_agent_ssh_has_room(struct op_agent_ssh *s);
/* Disconnects every session (waiting up to grace_ms for them to end) and frees s. */
void op_agent_ssh_stop(struct op_agent_ssh *s, int grace_ms);

#endif
