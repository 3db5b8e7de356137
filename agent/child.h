/*
 * agent/child.h — what the agent's SSH server and terminal server share when they start a user's process:
 * its environment and the last steps between fork and exec.
 */
#ifndef OP_AGENT_CHILD_H
#define OP_AGENT_CHILD_H

#include <pwd.h>
#include <stddef.h>

/* The child's environment: the agent's own, then USER, LOGNAME, HOME and SHELL of pw, then TERM when term
 * is not NULL, then extra[0..nextra) ("NAME=value" each, e.g. what an SSH client sent); a later entry
 * replaces an earlier one of the same name. Every string is the caller's to free with op_child_env_free.
 * NULL on allocation failure. */
char **op_child_env(const struct passwd *pw, const char *term, char *const *extra, size_t nextra);
void op_child_env_free(char **env);

/* The agent's own user (getpwuid_r: the SSH and terminal servers run on different threads), its strings in
 * buf. 0, or -ENOENT / -ERANGE / -errno. */
int op_child_passwd(struct passwd *pw, char *buf, size_t len);

/* The user's login shell (pw_shell, or /bin/sh when it has none). */
const char *op_child_shell(const struct passwd *pw);

/* In the child, between fork and exec (async-signal-safe calls only): restores the signal mask and
 * SIGPIPE the agent changed, changes to dir (or / when it cannot), closes every descriptor above 2 and
 * execs path. Never returns: 126 when no directory can be entered, 127 when exec fails. */
_Noreturn void op_child_exec(const char *path, char *const argv[], char *const envp[], const char *dir);

#endif
