#include "ctl/ctl.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"

static atomic_bool g_stop_requested;

int op_ctl_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    return rc ? -rc : 0;
}

void op_ctl_request_stop(void)
{
    atomic_store(&g_stop_requested, true);
}

int op_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof(sa.sun_path)) return -EINVAL;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@') /* abstract namespace */
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    int e = errno;
    close(fd);
    return w < 0 ? -e : 0;
}

int op_ctl_run(struct op_engine *e, const struct op_ctl_hooks *h)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        op_error("ctl", "signalfd: %s", strerror(errno));
        return 1;
    }
    op_sd_notify("READY=1");
    bool stopping = false;
    int rc = 0;
    uint64_t last_tick = 0;
    while (!op_engine_done(e)) {
        struct pollfd pfd[5];
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        for (int i = 0; h && i < h->nfds; i++)
            pfd[n++] = (struct pollfd){.fd = h->fds[i].fd, .events = POLLIN};
        int pr = poll(pfd, (nfds_t)n, 100);
        if (pr < 0 && errno != EINTR) {
            op_error("ctl", "poll: %s", strerror(errno));
            break;
        }
        if (pr > 0 && (pfd[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                    op_sd_notify("RELOADING=1");
                    if (h && h->reload) {
                        int r = h->reload(h->reload_arg);
                        op_info("ctl", "reload %s",
                                r == 0 ? "applied" : "failed: keeping the running config");
                    } else {
                        op_info("ctl", "SIGHUP: nothing to reload");
                    }
                    op_sd_notify("READY=1");
                } else if (!stopping) {
                    atomic_store(&g_stop_requested, true);
                } else {
                    op_warn("ctl", "second %s: exiting now", strsignal((int)si.ssi_signo));
                    rc = 1;
                    goto out;
                }
            }
        }
        uint64_t busy0 = op_now_ms();
        for (int i = 1; i < n; i++)
            if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) h->fds[i - 1].on_readable(h->fds[i - 1].arg);
        uint64_t busy = op_now_ms() - busy0;
        /* Ticks (heartbeats, health probes, key refresh) wait while queued requests run: say so when it
         * is long enough to matter to them. */
        if (busy >= 1000)
            op_warn("ctl", "the control thread spent %llu ms on queued requests; its periodic work waited",
                    (unsigned long long)busy);
        if (!stopping && atomic_load(&g_stop_requested)) {
            stopping = true;
            op_sd_notify("STOPPING=1");
            op_info("ctl", "stopping: draining connections");
            if (h && h->on_stop) h->on_stop(h->stop_arg);
            op_engine_drain(e);
        }
        uint64_t now = op_now_ms();
        if (h && h->tick && now - last_tick >= 100) {
            last_tick = now;
            h->tick(h->tick_arg);
        }
    }
out:
    close(sfd);
    return rc;
}
