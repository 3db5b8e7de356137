/*
 * agent/child.c — the environment and exec of a user's process (see child.h).
 */
#include "agent/child.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int op_child_passwd(struct passwd *pw, char *buf, size_t len)
{
    struct passwd *res = NULL;
    int rc = getpwuid_r(getuid(), pw, buf, len, &res);
    if (rc != 0) return -rc;
    return res ? 0 : -ENOENT;
}

const char *op_child_shell(const struct passwd *pw)
{
    return pw && pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh";
}

/* True when some entry of set (n of them) names the same variable as var ("NAME=..."). */
static bool named_in(const char *var, char *const *set, size_t n)
{
    size_t nl = strcspn(var, "=");
    for (size_t j = 0; j < n; j++)
        if (set[j] && strncmp(set[j], var, nl + 1) == 0) return true;
    return false;
}

/* *out = "name=value"; false (and *out NULL) when out of memory. */
static bool var(char **out, const char *name, const char *value)
{
    if (asprintf(out, "%s=%s", name, value ? value : "") >= 0) return true;
    *out = NULL;
    return false;
}

char **op_child_env(const struct passwd *pw, const char *term, char *const *extra, size_t nextra)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **e = calloc(n + nextra + 8, sizeof(*e));
    if (!e) return NULL;
    char *own[5] = {NULL};
    size_t k = 0;
    bool ok = true;
    if (pw) {
        ok = ok && var(&own[k++], "USER", pw->pw_name);
        ok = ok && var(&own[k++], "LOGNAME", pw->pw_name);
        ok = ok && var(&own[k++], "HOME", pw->pw_dir);
        ok = ok && var(&own[k++], "SHELL", op_child_shell(pw));
    }
    if (term) ok = ok && var(&own[k++], "TERM", term);
    size_t m = 0;
    for (size_t i = 0; i < n && ok; i++) /* drop what is set again below */
        if (!named_in(environ[i], own, k) && !named_in(environ[i], extra, nextra) &&
            !(e[m++] = strdup(environ[i])))
            ok = false;
    for (size_t j = 0; j < k; j++) {
        if (ok && own[j] && !named_in(own[j], extra, nextra)) {
            e[m++] = own[j];
        } else {
            free(own[j]);
        }
    }
    for (size_t j = 0; j < nextra && ok; j++)
        if (!named_in(extra[j], extra + j + 1, nextra - j - 1) && !(e[m++] = strdup(extra[j]))) ok = false;
    if (!ok) {
        op_child_env_free(e);
        return NULL;
    }
    return e;
}

void op_child_env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

void op_child_exec(const char *path, char *const argv[], char *const envp[], const char *dir)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the agent blocks SIGTERM/SIGINT in its threads */
    signal(SIGPIPE, SIG_DFL);
    if ((!dir || chdir(dir) != 0) && chdir("/") != 0) _exit(126);
    close_range(3, ~0U, 0);
    execve(path, argv, envp);
    _exit(127);
}
