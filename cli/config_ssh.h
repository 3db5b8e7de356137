/*
 * cli/config_ssh.h — the pieces of `outpost config-ssh` that other commands and the unit test use: the
 * managed section of an OpenSSH client config (between OP_SSH_MARK_START and OP_SSH_MARK_END lines) and
 * the known-hosts file Outpost keeps with its agents' host keys (<config dir>/known_hosts, one line
 * "outpost.<workspace>[.<agent>] ssh-ed25519 AAAA..." per agent).
 */
#ifndef OP_CLI_CONFIG_SSH_H
#define OP_CLI_CONFIG_SSH_H

#include <stddef.h>

#define OP_SSH_MARK_START  "# ------------START-OUTPOST-----------"
#define OP_SSH_MARK_END    "# ------------END-OUTPOST------------"
#define OP_SSH_HOST_PREFIX "outpost."

/* Rewrites config text old (may be NULL: no file) so that it holds section (the full text between and
 * including the two marker lines, ending in a newline) exactly once: in place of an existing section,
 * else appended after a blank line. Every other byte of old is kept. Returns a malloc'd text, or NULL
 * with the reason in err (a start marker without its end marker, two sections, out of memory). */
char *op_ssh_config_rewrite(const char *old, const char *section, char *err, size_t errlen);

/* Sets (or with key NULL removes) the line for host in the known-hosts text old (may be NULL), keeping
 * every other line. Returns a malloc'd text or NULL (out of memory). */
char *op_known_hosts_set(const char *old, const char *host, const char *key);

/* Reads a whole file (NULL when it does not exist or cannot be read, errno set). */
char *op_read_file(const char *path);
/* Writes text to path through a temporary file renamed into place (mode: of the old file, else mode).
 * Returns 0 or -errno. */
int op_write_file_atomic(const char *path, const char *text, unsigned mode);

#endif
