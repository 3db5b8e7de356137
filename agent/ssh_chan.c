/*
 * agent/ssh_chan.c — the channels of an agent SSH session (see ssh.h, ssh_int.h):
 *  - session channels: env, pty-req, window-change, then one of shell, exec or the sftp subsystem (the
 *    system's OpenSSH sftp-server run as the channel's command, as libssh's own server example does), as
 *    the agent's user with its login shell; exit status or signal passed back when the child ends and its
 *    output has been read to the end;
 *  - direct-tcpip (ssh -L): loopback destinations of this workspace only, dialed with a 5 s bound.
 * Client data is written to the child or socket as it arrives (a slow reader there slows that session);
 * output is read when the session's event loop says it is readable and written to the channel, whose
 * window bounds it. Nothing is freed inside a libssh callback: finished channels are closed after the
 * event-loop round (ar_ssh_chan_poll).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/apps.h"
#include "agent/child.h"
#include "agent/ssh_int.h"
#include "core/log.h"

#define IO_BUF 32768

static const char *const sftp_servers[] = {"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                                           "/usr/lib/sftp-server", "/usr/libexec/sftp-server"};

static struct chan *free_slot(struct sess *ss)
{
    for (int i = 0; i < OP_AGENT_SSH_MAX_CHANNELS; i++)
        if (ss->ch[i].kind == CH_FREE) return &ss->ch[i];
    op_warn("agent", "ssh: a session asked for more than %d channels at once: refused",
            OP_AGENT_SSH_MAX_CHANNELS);
    return NULL;
}

/* Writes all of p to fd (non-blocking or not), waiting for it to drain. false when fd is gone. */
static bool write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            if (poll(&pf, 1, 30000) <= 0) return false;
            continue;
        }
        return false;
    }
    return true;
}

/* ---- channel callbacks (no freeing here) ---- */

static int on_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr, void *ud)
{
    (void)s;
    (void)ch;
    (void)is_stderr;
    struct chan *c = ud;
    if (c->wfd >= 0 && !write_all(c->wfd, data, len)) {
        if (c->wfd != c->rfd) { /* a child that closed its stdin: what follows is dropped, as sshd does */
            close(c->wfd);
            c->wfd = -1;
        } else { /* a socket or PTY that broke or stopped reading: the channel ends, no byte is lost unseen */
            c->peer_closed = true;
        }
    }
    return (int)len; /* consumed (or dropped: the reader is gone) */
}

static void on_eof(ssh_session s, ssh_channel ch, void *ud)
{
    (void)s;
    (void)ch;
    struct chan *c = ud;
    c->peer_eof = true;
    if (c->wfd < 0) return;
    if (c->kind == CH_TCPIP) {
        shutdown(c->wfd, SHUT_WR);
    } else if (!c->pty) { /* the child's stdin ends */
        close(c->wfd);
        c->wfd = -1;
    }
}

static void on_close(ssh_session s, ssh_channel ch, void *ud)
{
    (void)s;
    (void)ch;
    struct chan *c = ud;
    c->peer_closed = true;
    if (c->kind == CH_SESSION && c->pid > 0 && !c->reaped) kill(-c->pid, SIGHUP);
}

static int on_pty(ssh_session s, ssh_channel ch, const char *term, int w, int h, int pw, int ph, void *ud)
{
    (void)s;
    (void)ch;
    struct chan *c = ud;
    if (c->started) return SSH_ERROR;
    c->pty = true;
    snprintf(c->term, sizeof(c->term), "%s", term && *term ? term : "xterm");
    c->ws = (struct winsize){.ws_row = (unsigned short)h,
                             .ws_col = (unsigned short)w,
                             .ws_xpixel = (unsigned short)pw,
                             .ws_ypixel = (unsigned short)ph};
    return SSH_OK;
}

static int on_winch(ssh_session s, ssh_channel ch, int w, int h, int pw, int ph, void *ud)
{
    (void)s;
    (void)ch;
    struct chan *c = ud;
    c->ws = (struct winsize){.ws_row = (unsigned short)h,
                             .ws_col = (unsigned short)w,
                             .ws_xpixel = (unsigned short)pw,
                             .ws_ypixel = (unsigned short)ph};
    if (c->pty && c->rfd >= 0) ioctl(c->rfd, TIOCSWINSZ, &c->ws);
    return SSH_OK;
}

static bool env_name_ok(const char *n)
{
    if (!n || !(*n == '_' || (*n >= 'A' && *n <= 'Z') || (*n >= 'a' && *n <= 'z'))) return false;
    for (const char *p = n; *p; p++)
        if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return false;
    return strlen(n) < 256;
}

static int on_env(ssh_session s, ssh_channel ch, const char *name, const char *value, void *ud)
{
    (void)s;
    (void)ch;
    struct chan *c = ud;
    if (c->started || c->nenv == SSH_MAX_ENV || !env_name_ok(name) || !value || strlen(value) > 4096)
        return SSH_ERROR;
    if (asprintf(&c->env[c->nenv], "%s=%s", name, value) < 0) return SSH_ERROR;
    c->nenv++;
    return SSH_OK;
}

/* Starts command (NULL: a login shell; sftp: the sftp server) for channel c. */
static int start_child(struct chan *c, const char *command, bool sftp)
{
    if (c->started) return SSH_ERROR;
    struct passwd pwd, *pw = &pwd;
    char pwbuf[2048];
    if (op_child_passwd(&pwd, pwbuf, sizeof(pwbuf)) != 0) return SSH_ERROR;
    const char *shell = op_child_shell(pw);
    const char *path = shell;
    char argv0[256];
    const char *base = strrchr(shell, '/') ? strrchr(shell, '/') + 1 : shell;
    snprintf(argv0, sizeof(argv0), "-%s", base);
    char *argv[4] = {argv0, NULL, NULL, NULL};
    if (sftp) {
        path = NULL;
        for (size_t i = 0; i < sizeof(sftp_servers) / sizeof(sftp_servers[0]) && !path; i++)
            if (access(sftp_servers[i], X_OK) == 0) path = sftp_servers[i];
        if (!path) {
            op_warn("agent", "ssh: sftp refused: no sftp-server found (install openssh-sftp-server)");
            return SSH_ERROR;
        }
        argv[0] = (char *)"sftp-server";
    } else if (command) {
        argv[0] = (char *)base;
        argv[1] = (char *)"-c";
        argv[2] = (char *)command;
    }
    char **envp = op_child_env(pw, c->pty ? c->term : NULL, c->env, (size_t)c->nenv);
    if (!envp) return SSH_ERROR;
    pid_t pid;
    if (c->pty) {
        int master = -1;
        pid = forkpty(&master, NULL, NULL, &c->ws);
        if (pid == 0) op_child_exec(path, argv, envp, pw->pw_dir);
        if (pid > 0) {
            fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
            fcntl(master, F_SETFD, FD_CLOEXEC);
            c->wfd = c->rfd = master;
            c->efd = -1;
        }
    } else {
        int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
        if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC)) {
            for (int i = 0; i < 2; i++) {
                if (in[i] >= 0) close(in[i]);
                if (out[i] >= 0) close(out[i]);
                if (er[i] >= 0) close(er[i]);
            }
            op_child_env_free(envp);
            return SSH_ERROR;
        }
        pid = fork();
        if (pid == 0) {
            setsid();
            dup2(in[0], 0);
            dup2(out[1], 1);
            dup2(er[1], 2);
            op_child_exec(path, argv, envp, pw->pw_dir);
        }
        close(in[0]);
        close(out[1]);
        close(er[1]);
        if (pid < 0) {
            close(in[1]);
            close(out[0]);
            close(er[0]);
        } else {
            fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
            fcntl(er[0], F_SETFL, fcntl(er[0], F_GETFL) | O_NONBLOCK);
            c->wfd = in[1];
            c->rfd = out[0];
            c->efd = er[0];
        }
    }
    op_child_env_free(envp);
    if (pid < 0) {
        op_warn("agent", "ssh: cannot start a process: %s", strerror(errno));
        return SSH_ERROR;
    }
    c->pid = pid;
    c->started = true;
    op_debug("agent", "ssh: %s started (pid %d%s)",
             sftp      ? "sftp-server"
             : command ? "command"
                       : "shell",
             (int)pid, c->pty ? ", pty" : "");
    return SSH_OK;
}

static int on_shell(ssh_session s, ssh_channel ch, void *ud)
{
    (void)s;
    (void)ch;
    return start_child(ud, NULL, false);
}

static int on_exec(ssh_session s, ssh_channel ch, const char *command, void *ud)
{
    (void)s;
    (void)ch;
    return start_child(ud, command, false);
}

static int on_subsystem(ssh_session s, ssh_channel ch, const char *name, void *ud)
{
    (void)s;
    (void)ch;
    if (strcmp(name, "sftp") != 0) return SSH_ERROR;
    return start_child(ud, NULL, true);
}

static void init_chan(struct sess *ss, struct chan *c, ssh_channel ch, enum chan_kind kind)
{
    memset(c, 0, sizeof(*c));
    c->ss = ss;
    c->ch = ch;
    c->kind = kind;
    c->wfd = c->rfd = c->efd = -1;
    c->cb = (struct ssh_channel_callbacks_struct){
        .userdata = c,
        .channel_data_function = on_data,
        .channel_eof_function = on_eof,
        .channel_close_function = on_close,
    };
    if (kind == CH_SESSION) {
        c->cb.channel_pty_request_function = on_pty;
        c->cb.channel_pty_window_change_function = on_winch;
        c->cb.channel_env_request_function = on_env;
        c->cb.channel_shell_request_function = on_shell;
        c->cb.channel_exec_request_function = on_exec;
        c->cb.channel_subsystem_request_function = on_subsystem;
    }
    ssh_callbacks_init(&c->cb);
    ssh_set_channel_callbacks(ch, &c->cb);
}

ssh_channel ar_ssh_chan_open_session(struct sess *ss)
{
    struct chan *c = free_slot(ss);
    if (!c) return NULL;
    ssh_channel ch = ssh_channel_new(ss->s);
    if (!ch) return NULL;
    init_chan(ss, c, ch, CH_SESSION);
    return ch;
}

/* A loopback destination as an address: localhost names, 127/8 and ::1 literals. */
static int loopback_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (!op_agent_host_is_loopback(host)) return -EPERM;
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*a6);
        return 0;
    }
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *sl = sizeof(*a4);
    return 0;
}

static int dial(const struct sockaddr_storage *a, socklen_t al)
{
    int fd = socket(a->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (const struct sockaddr *)a, al) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t el = sizeof(err);
    if (poll(&pf, 1, 5000) != 1)
        err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
        err = errno;
    if (err) {
        close(fd);
        return -err;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int ar_ssh_chan_open_tcpip(struct sess *ss, ssh_message msg)
{
    const char *host = ssh_message_channel_request_open_destination(msg);
    int port = ssh_message_channel_request_open_destination_port(msg);
    struct chan *c = free_slot(ss);
    if (!c || !host || port < 1 || port > 65535) return 1;
    struct sockaddr_storage a;
    socklen_t al;
    if (loopback_addr(host, port, &a, &al) != 0) {
        op_warn("agent", "ssh: direct-tcpip to %s:%d refused: only loopback ports of the workspace", host,
                port);
        return 1;
    }
    int fd = dial(&a, al);
    if (fd < 0) {
        op_info("agent", "ssh: direct-tcpip to %s:%d: %s", host, port, strerror(-fd));
        return 1; /* the default reply: open failure */
    }
    ssh_channel ch = ssh_message_channel_request_open_reply_accept(msg);
    if (!ch) {
        close(fd);
        return 0;
    }
    init_chan(ss, c, ch, CH_TCPIP);
    snprintf(c->target, sizeof(c->target), "%s:%d", host, port);
    c->wfd = c->rfd = fd;
    c->started = true;
    return 0;
}

/* ---- output: descriptor -> channel ---- */

static int on_readable(socket_t fd, int revents, void *ud)
{
    (void)revents;
    struct chan *c = ud;
    bool is_err = fd == c->efd;
    enum rd_state *st = is_err ? &c->est : &c->rst;
    if (*st != RD_WATCHED) return 0; /* already at its end */
    static _Thread_local char buf[IO_BUF];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
        int w = is_err ? ssh_channel_write_stderr(c->ch, buf, (uint32_t)n)
                       : ssh_channel_write(c->ch, buf, (uint32_t)n);
        if (w == SSH_ERROR) c->peer_closed = true;
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    /* EOF (or EIO: a PTY whose last holder closed it); removed from the loop after this round */
    *st = RD_EOF;
    return 0;
}

/* Moves one output along: watched once started, out of the loop once at its end. */
static void step_fd(struct sess *ss, struct chan *c, int fd, enum rd_state *st)
{
    if (fd < 0) {
        *st = RD_DONE;
    } else if (*st == RD_NONE) {
        if (ssh_event_add_fd(ss->ev, fd, POLLIN, on_readable, c) == SSH_OK) *st = RD_WATCHED;
    } else if (*st == RD_EOF) {
        ssh_event_remove_fd(ss->ev, fd);
        *st = RD_DONE;
        if (c->kind == CH_TCPIP) ssh_channel_send_eof(c->ch);
    }
}

/* Closes c's descriptors (each once), removes its callbacks and frees the channel. */
static void finish(struct sess *ss, struct chan *c)
{
    if (c->rfd >= 0 && (c->rst == RD_WATCHED || c->rst == RD_EOF)) ssh_event_remove_fd(ss->ev, c->rfd);
    if (c->efd >= 0 && (c->est == RD_WATCHED || c->est == RD_EOF)) ssh_event_remove_fd(ss->ev, c->efd);
    if (c->wfd >= 0 && c->wfd != c->rfd) close(c->wfd);
    if (c->rfd >= 0) close(c->rfd);
    if (c->efd >= 0) close(c->efd);
    if (c->pid > 0 && !c->reaped) {
        kill(-c->pid, SIGHUP);
        for (int i = 0; i < 20 && waitpid(c->pid, NULL, WNOHANG) == 0; i++)
            usleep(10000);
    }
    for (int i = 0; i < c->nenv; i++)
        free(c->env[i]);
    ssh_remove_channel_callbacks(c->ch, &c->cb);
    if (ssh_channel_is_open(c->ch)) ssh_channel_close(c->ch);
    ssh_channel_free(c->ch);
    memset(c, 0, sizeof(*c));
    c->kind = CH_FREE;
}

static void send_exit(struct chan *c)
{
    if (WIFEXITED(c->status)) {
        ssh_channel_request_send_exit_status(c->ch, WEXITSTATUS(c->status));
    } else if (WIFSIGNALED(c->status)) {
        const char *name = sigabbrev_np(WTERMSIG(c->status));
        ssh_channel_request_send_exit_signal(c->ch, name ? name : "KILL", WCOREDUMP(c->status), "", "");
    }
}

/* A PTY whose shell has exited: what is left in it, then done (a background process may keep the
 * slave open, so its EOF is not waited for). */
static void drain_pty(struct chan *c)
{
    static _Thread_local char buf[IO_BUF];
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(c->rfd, buf, sizeof(buf));
        if (n <= 0) break;
        if (ssh_channel_write(c->ch, buf, (uint32_t)n) == SSH_ERROR) break;
    }
    if (c->rst == RD_WATCHED) c->rst = RD_EOF;
}

void ar_ssh_chan_poll(struct sess *ss)
{
    for (int i = 0; i < OP_AGENT_SSH_MAX_CHANNELS; i++) {
        struct chan *c = &ss->ch[i];
        if (c->kind == CH_FREE) continue;
        if (c->peer_closed) {
            finish(ss, c);
            continue;
        }
        if (!c->started) continue;
        if (c->kind == CH_SESSION && !c->reaped && waitpid(c->pid, &c->status, WNOHANG) == c->pid) {
            c->reaped = true;
            if (c->pty && c->rfd >= 0) drain_pty(c);
        }
        step_fd(ss, c, c->rfd, &c->rst);
        step_fd(ss, c, c->efd, &c->est);
        bool out_done = c->rst == RD_DONE && c->est == RD_DONE;
        if (c->kind == CH_SESSION && c->reaped && out_done) {
            send_exit(c);
            ssh_channel_send_eof(c->ch);
            finish(ss, c);
        } else if (c->kind == CH_TCPIP && out_done && c->peer_eof) {
            finish(ss, c);
        }
    }
}

void ar_ssh_chan_close_all(struct sess *ss)
{
    for (int i = 0; i < OP_AGENT_SSH_MAX_CHANNELS; i++)
        if (ss->ch[i].kind != CH_FREE) finish(ss, &ss->ch[i]);
}
