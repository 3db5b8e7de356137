/*
 * agent/pty.c — the terminal server's sessions (see pty.h, pty_int.h): the shell on a PTY, the output
 * ring, attach and detach, resize, the reconnect timeout, reaping and the exit status.
 *
 * A child is watched through a pidfd in the epoll set (no SIGCHLD handler: the agent's SSH server reaps
 * its own children by pid on other threads); on a kernel without pidfd the deadline tick polls it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/child.h"
#include "agent/pty_int.h"
#include "core/log.h"

#define POLL_CHILD_MS 200

const char *pty_sess_state_name(enum psess_state s)
{
    switch (s) {
    case PS_RUNNING:
        return "running";
    case PS_HUNGUP:
        return "hung-up";
    case PS_EXITED:
        return "exited";
    }
    return "?";
}

struct psess *pty_sess_find(struct op_agent_pty *p, const char *id)
{
    for (struct psess *s = p->sessions; s; s = s->next)
        if (s->st == PS_RUNNING && strcmp(s->id, id) == 0) return s;
    return NULL;
}

uint64_t pty_sess_ring_start(const struct psess *s)
{
    return s->total > OP_AGENT_PTY_RING ? s->total - OP_AGENT_PTY_RING : 0;
}

void pty_sess_copy(const struct psess *s, uint64_t pos, uint8_t *dst, size_t n)
{
    size_t at = (size_t)(pos % OP_AGENT_PTY_RING), first = OP_AGENT_PTY_RING - at;
    if (first > n) first = n;
    memcpy(dst, s->ring + at, first);
    memcpy(dst + first, s->ring, n - first);
}

/* How much may be read from the PTY now: anything with no socket attached (the ring just rolls), else
 * what keeps the least-behind socket within one ring. */
static size_t read_room(const struct psess *s)
{
    if (!s->conns) return PTY_READ_MAX;
    uint64_t lag = UINT64_MAX;
    for (const struct pconn *c = s->conns; c && lag; c = c->snext) /* 0 cannot be beaten: stop there */
        if (s->total - c->pos < lag) lag = s->total - c->pos;
    size_t room = lag >= OP_AGENT_PTY_RING ? 0 : (size_t)(OP_AGENT_PTY_RING - lag);
    return room < PTY_READ_MAX ? room : PTY_READ_MAX;
}

/* Kept as a count so that this stays O(1) with thousands of sockets on one session. */
static bool keys_waiting(const struct psess *s)
{
    return s->nkeyed > 0;
}

void pty_sess_update(struct psess *s)
{
    if (s->master < 0) return;
    uint32_t want = 0;
    if (!s->master_hup && s->st == PS_RUNNING) {
        if (read_room(s) > 0) want |= EPOLLIN;
        if (keys_waiting(s)) want |= EPOLLOUT;
    }
    if (want == s->mmask) return;
    /* A mask of 0 is "out of the set": a hung-up PTY reports EPOLLHUP whatever the mask. */
    struct epoll_event ev = {.events = want, .data.ptr = &s->mpfd};
    int op = want == 0 ? EPOLL_CTL_DEL : s->mmask == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(s->srv->ep, op, s->master, &ev) == 0) s->mmask = want;
}

int pty_sess_spawn(struct op_agent_pty *p, const struct pty_req *req, struct psess **out)
{
    if (p->nsessions >= p->conf.max_sessions) return -EAGAIN;
    struct passwd pwd, *pw = &pwd;
    char pwbuf[2048];
    if (op_child_passwd(&pwd, pwbuf, sizeof(pwbuf)) != 0) pw = NULL;
    const char *shell = getenv("SHELL");
    if (!shell || !*shell) shell = op_child_shell(pw);
    char *argv[4] = {(char *)shell, (char *)"-l", NULL, NULL};
    const char *path = shell;
    if (req->has_command) {
        path = "/bin/sh";
        argv[0] = (char *)"sh";
        argv[1] = (char *)"-c";
        argv[2] = (char *)req->command;
    }
    struct psess *s = calloc(1, sizeof(*s));
    char shellvar[512];
    snprintf(shellvar, sizeof(shellvar), "SHELL=%s", shell);
    char *extra[1] = {shellvar};
    char **envp = op_child_env(pw, "xterm-256color", extra, 1);
    if (s) s->ring = malloc(OP_AGENT_PTY_RING);
    if (!s || !s->ring || !envp) {
        if (s) free(s->ring);
        free(s);
        op_child_env_free(envp);
        return -ENOMEM;
    }
    s->ws.ws_col = (unsigned short)req->cols;
    s->ws.ws_row = (unsigned short)req->rows;
    int master = -1;
    pid_t pid = forkpty(&master, NULL, NULL, &s->ws);
    if (pid == 0) op_child_exec(path, argv, envp, pw ? pw->pw_dir : NULL);
    int err = errno;
    op_child_env_free(envp);
    if (pid < 0) {
        op_warn("agent", "pty: cannot start a shell: %s", strerror(err));
        free(s->ring);
        free(s);
        return -err;
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    fcntl(master, F_SETFD, FD_CLOEXEC);
    s->srv = p;
    memcpy(s->id, req->id, sizeof(s->id));
    s->st = PS_RUNNING;
    s->pid = pid;
    s->master = master;
    s->mpfd = (struct pfd){PFD_MASTER, s};
    s->cpfd = (struct pfd){PFD_CHILD, s};
    s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (s->pidfd >= 0) {
        fcntl(s->pidfd, F_SETFD, FD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->cpfd};
        if (epoll_ctl(p->ep, EPOLL_CTL_ADD, s->pidfd, &ev) != 0) {
            close(s->pidfd);
            s->pidfd = -1;
        }
    }
    if (s->pidfd < 0) pty_want_tick(p, pty_now_ms() + POLL_CHILD_MS);
    s->next = p->sessions;
    if (p->sessions) p->sessions->prev = s;
    p->sessions = s;
    p->nsessions++;
    pty_sess_update(s);
    op_info("agent", "pty: session %s: %s started (pid %d, %dx%d); %d session%s", s->id,
            req->has_command ? "command" : shell, (int)pid, req->cols, req->rows, p->nsessions,
            p->nsessions == 1 ? "" : "s");
    *out = s;
    return 0;
}

void pty_sess_attach(struct psess *s, struct pconn *c)
{
    c->sess = s;
    c->pos = pty_sess_ring_start(s); /* the scrollback first */
    c->sprev = NULL;
    c->snext = s->conns;
    if (s->conns) s->conns->sprev = c;
    s->conns = c;
    s->nconns++;
    s->idle_deadline = 0;
    pty_sess_update(s);
}

void pty_sess_detach(struct pconn *c)
{
    struct psess *s = c->sess;
    if (!s) return;
    if (c->sprev)
        c->sprev->snext = c->snext;
    else
        s->conns = c->snext;
    if (c->snext) c->snext->sprev = c->sprev;
    c->snext = c->sprev = NULL;
    c->sess = NULL;
    s->nconns--;
    if (c->keyed) s->nkeyed--;
    c->keyed = false;
    uint64_t now = pty_now_ms();
    if (s->nconns == 0) {
        s->idle_deadline = s->st == PS_RUNNING ? now + (uint64_t)s->srv->conf.timeout_ms : 0;
        pty_want_tick(s->srv, s->idle_deadline ? s->idle_deadline : now);
    }
    pty_sess_update(s);
}

void pty_sess_resize(struct psess *s, int cols, int rows)
{
    if (cols < 1 || rows < 1 || cols > 65535 || rows > 65535) return;
    s->ws.ws_col = (unsigned short)cols;
    s->ws.ws_row = (unsigned short)rows;
    if (s->master >= 0) (void)ioctl(s->master, TIOCSWINSZ, &s->ws);
}

static void close_master(struct psess *s)
{
    if (s->master < 0) return;
    if (s->mmask) epoll_ctl(s->srv->ep, EPOLL_CTL_DEL, s->master, NULL);
    s->mmask = 0;
    close(s->master);
    s->master = -1;
}

/* Reads the PTY into the ring while there is room; tells the sockets. */
static void read_master(struct psess *s, int rounds)
{
    bool got = false;
    for (int i = 0; i < rounds && !s->master_hup; i++) {
        size_t room = read_room(s), at = (size_t)(s->total % OP_AGENT_PTY_RING);
        if (room > OP_AGENT_PTY_RING - at) room = OP_AGENT_PTY_RING - at;
        if (room == 0) break;
        ssize_t n = read(s->master, s->ring + at, room);
        if (n > 0) {
            s->total += (uint64_t)n;
            got = true;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        s->master_hup = true; /* EIO: the slave side is closed (the shell is gone or going) */
    }
    if (!got) return;
    for (struct pconn *c = s->conns, *next; c; c = next) {
        next = c->snext;
        pty_conn_output(c);
    }
}

void pty_sess_on_master(struct psess *s, uint32_t ev)
{
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_master(s, 4);
    if (ev & EPOLLOUT)
        for (struct pconn *c = s->conns, *next; c; c = next) {
            next = c->snext;
            if (c->wend > c->woff) (void)pty_conn_write_keys(c);
        }
    if (s->master_hup && s->mmask) {
        epoll_ctl(s->srv->ep, EPOLL_CTL_DEL, s->master, NULL);
        s->mmask = 0;
    }
    pty_sess_update(s);
}

void pty_sess_exit_reason(const struct psess *s, char *out, size_t len)
{
    if (WIFSIGNALED(s->status))
        snprintf(out, len, "process killed by signal %d", WTERMSIG(s->status));
    else
        snprintf(out, len, "process exited with code %d", WEXITSTATUS(s->status));
}

void pty_sess_on_child(struct psess *s)
{
    if (s->st == PS_EXITED) return;
    int status = 0;
    pid_t r = waitpid(s->pid, &status, WNOHANG);
    if (r == 0) return;
    s->status = r == s->pid ? status : 0;
    if (s->pidfd >= 0) {
        epoll_ctl(s->srv->ep, EPOLL_CTL_DEL, s->pidfd, NULL);
        close(s->pidfd);
        s->pidfd = -1;
    }
    bool was_running = s->st == PS_RUNNING;
    s->st = PS_EXITED;
    if (was_running && s->master >= 0) read_master(s, 16); /* what the shell wrote last */
    close_master(s);
    char why[64];
    pty_sess_exit_reason(s, why, sizeof(why));
    op_info("agent", "pty: session %s: %s", s->id, why);
    for (struct pconn *c = s->conns, *next; c; c = next) {
        next = c->snext;
        pty_conn_output(c); /* each gets the rest of the output, then the close */
    }
    pty_want_tick(s->srv, pty_now_ms());
}

void pty_sess_hangup(struct psess *s)
{
    if (s->st != PS_RUNNING) return;
    s->st = PS_HUNGUP;
    close_master(s); /* the slave's hang-up: SIGHUP to the shell's session */
    kill(-s->pid, SIGHUP);
    s->kill_deadline = pty_now_ms() + PTY_KILL_MS;
    pty_want_tick(s->srv, s->kill_deadline);
}

void pty_sess_free(struct psess *s)
{
    struct op_agent_pty *p = s->srv;
    while (s->conns)
        pty_conn_cut(s->conns, OP_WS_CLOSE_GOING_AWAY, "the terminal session ended");
    close_master(s);
    if (s->pidfd >= 0) {
        epoll_ctl(p->ep, EPOLL_CTL_DEL, s->pidfd, NULL);
        close(s->pidfd);
    }
    if (s->st != PS_EXITED) { /* stopping: make sure nothing is left behind */
        kill(-s->pid, SIGKILL);
        kill(s->pid, SIGKILL);
        (void)waitpid(s->pid, NULL, 0);
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        p->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    p->nsessions--;
    op_debug("agent", "pty: session %s freed; %d left", s->id, p->nsessions);
    free(s->ring);
    free(s);
}

uint64_t pty_sess_tick(struct psess *s, uint64_t now, bool *freed)
{
    *freed = false;
    if (s->st == PS_RUNNING && s->nconns == 0 && s->idle_deadline && now >= s->idle_deadline) {
        op_info("agent", "pty: session %s: no socket for %d ms: hanging up", s->id, s->srv->conf.timeout_ms);
        pty_sess_hangup(s);
    }
    if (s->st == PS_HUNGUP && s->kill_deadline && now >= s->kill_deadline) {
        op_warn("agent", "pty: session %s: still running %d ms after the hang-up: killed", s->id,
                PTY_KILL_MS);
        kill(-s->pid, SIGKILL);
        kill(s->pid, SIGKILL);
        s->kill_deadline = 0;
    }
    if (s->pidfd < 0 && s->st != PS_EXITED) pty_sess_on_child(s);
    if (s->st == PS_EXITED && s->nconns == 0) {
        pty_sess_free(s);
        *freed = true;
        return 0;
    }
    uint64_t next = 0;
    if (s->idle_deadline && s->st == PS_RUNNING) next = s->idle_deadline;
    if (s->kill_deadline && (!next || s->kill_deadline < next)) next = s->kill_deadline;
    if (s->pidfd < 0 && s->st != PS_EXITED && (!next || now + POLL_CHILD_MS < next))
        next = now + POLL_CHILD_MS;
    return next;
}
