/*
 * bench/termload.c — web-terminal load for the benchmark harness (bench/workspace.sh): many WebSocket
 * terminals at once over one epoll loop, speaking Coder's reconnecting-PTY messages (masked text frames
 * {"data":"…"} in, binary frames out).
 *
 *   termload echo --connect H:P --target T [--header "Name: value"] [--terminals N] [--interval-ms 10]
 *                 [--duration S] [--warmup S]
 *   termload idle --connect H:P --target T [--header …] --terminals N [--hold S]
 *
 * T is the request target without the reconnect parameter, e.g. `/pty?width=80&height=24&command=…` or
 * `/api/v2/workspaceagents/<id>/pty?coder_signed_app_token_23db1dde=…&width=80&height=24&command=…`;
 * each terminal appends `&reconnect=<its own UUID>` (echo) or the same UUID for all (idle: one session,
 * many sockets, so the measure is the sockets and not N shells).
 *
 * echo: the command is expected to echo every byte at once (`stty raw -echo; cat`). Each terminal sends
 * one keystroke every interval on its own schedule (phases staggered), open loop: a keystroke's latency
 * runs from its intended send time to the arrival of its echo, so a stall is counted, not skipped.
 * Prints `keystrokes=… p50_us=… p99_us=… p999_us=… max_us=… errors=…`.
 * idle: opens the terminals one by one (each waits for its 101), prints `open=N` and holds them until
 * SIGTERM or the hold time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TERMS 20000
#define RBUF      8192
#define FIFO      256 /* keystrokes in flight per terminal */

struct term {
    int fd;
    bool open; /* 101 received */
    char rbuf[RBUF];
    size_t rlen;
    /* frame parsing of server frames (never masked) */
    uint64_t need; /* payload bytes left in the current frame */
    bool data;     /* current frame is a data frame (its payload is PTY output) */
    /* echo */
    int64_t next_ns;
    char next_ch;
    int64_t sent_at[FIFO];
    char sent_ch[FIFO];
    unsigned head, tail;
};

static struct term *g_t;
static int64_t *g_lat;
static size_t g_nlat, g_caplat;
static long g_errors;
static volatile sig_atomic_t g_stop;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_term(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void uuid(char out[37])
{
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != sizeof(b)) memset(b, 7, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static int dial(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Blocking handshake (terminals open one by one); then the socket turns non-blocking. 0 or -1. */
static int handshake(struct term *t, const struct sockaddr_in *sa, const char *host, const char *target,
                     const char *header, const char *reconnect)
{
    t->fd = dial(sa);
    if (t->fd < 0) return -1;
    char req[4096];
    int n = snprintf(
        req, sizeof(req),
        "GET %s%sreconnect=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s%s\r\n",
        target, strchr(target, '?') ? "&" : "?", reconnect, host, header ? header : "", header ? "\r\n" : "");
    if (n <= 0 || (size_t)n >= sizeof(req) || write(t->fd, req, (size_t)n) != n) return -1;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (t->rlen < sizeof(t->rbuf)) { /* read up to the end of the response head */
        ssize_t r = read(t->fd, t->rbuf + t->rlen, sizeof(t->rbuf) - t->rlen);
        if (r <= 0) return -1;
        t->rlen += (size_t)r;
        char *end = memmem(t->rbuf, t->rlen, "\r\n\r\n", 4);
        if (!end) continue;
        if (strncmp(t->rbuf, "HTTP/1.1 101", 12) != 0) {
            fprintf(stderr, "termload: handshake refused: %.*s\n", (int)(strcspn(t->rbuf, "\r")), t->rbuf);
            return -1;
        }
        size_t head = (size_t)(end + 4 - t->rbuf);
        memmove(t->rbuf, t->rbuf + head, t->rlen - head);
        t->rlen -= head;
        fcntl(t->fd, F_SETFL, fcntl(t->fd, F_GETFL) | O_NONBLOCK);
        t->open = true;
        return 0;
    }
    return -1;
}

/* One masked text frame carrying {"data":"<c>"}. */
static int send_key(struct term *t, char c)
{
    char payload[16];
    int pl = snprintf(payload, sizeof(payload), "{\"data\":\"%c\"}", c);
    uint8_t f[32] = {0x81, (uint8_t)(0x80 | pl), 0x11, 0x22, 0x33, 0x44};
    for (int i = 0; i < pl; i++)
        f[6 + i] = (uint8_t)payload[i] ^ f[2 + (i & 3)];
    return write(t->fd, f, (size_t)(6 + pl)) == 6 + pl ? 0 : -1;
}

static void record(int64_t lat)
{
    if (g_nlat == g_caplat) {
        size_t nc = g_caplat ? g_caplat * 2 : 1 << 16;
        int64_t *nl = realloc(g_lat, nc * sizeof(*nl));
        if (!nl) return;
        g_lat = nl;
        g_caplat = nc;
    }
    g_lat[g_nlat++] = lat;
}

/* Walks server frames in rbuf; output bytes are matched against the keystrokes in flight. */
static void on_output(struct term *t, bool measure, int64_t now)
{
    size_t p = 0;
    while (p < t->rlen) {
        if (t->need == 0) {
            if (t->rlen - p < 2) break;
            uint8_t b0 = (uint8_t)t->rbuf[p], b1 = (uint8_t)t->rbuf[p + 1];
            uint64_t len = b1 & 0x7f;
            size_t h = 2;
            if (len == 126) {
                if (t->rlen - p < 4) break;
                len = ((uint64_t)(uint8_t)t->rbuf[p + 2] << 8) | (uint8_t)t->rbuf[p + 3];
                h = 4;
            } else if (len == 127) {
                if (t->rlen - p < 10) break;
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = len << 8 | (uint8_t)t->rbuf[p + 2 + i];
                h = 10;
            }
            uint8_t op = b0 & 0x0f;
            t->data = op == 0x0 || op == 0x2 || op == 0x1;
            if (op == 0x8) g_errors++, t->open = false; /* the server closed the terminal */
            p += h;
            t->need = len;
            if (len == 0) continue;
        }
        size_t take = t->rlen - p < t->need ? t->rlen - p : (size_t)t->need;
        if (t->data && measure) {
            for (size_t i = 0; i < take; i++) {
                char c = t->rbuf[p + i];
                /* the oldest keystroke in flight with this character (echoes come back in order) */
                while (t->head != t->tail && t->sent_ch[t->head % FIFO] != c)
                    t->head++, g_errors++;
                if (t->head != t->tail) {
                    int64_t at = t->sent_at[t->head % FIFO];
                    if (at >= 0) record(now - at); /* warm-up keystrokes carry -1 */
                    t->head++;
                }
            }
        }
        p += take;
        t->need -= take;
    }
    memmove(t->rbuf, t->rbuf + p, t->rlen - p);
    t->rlen -= p;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "echo") != 0 && strcmp(argv[1], "idle") != 0)) {
        fprintf(stderr, "usage: termload echo|idle --connect H:P --target T [--header H] [--terminals N] "
                        "[--interval-ms MS] [--duration S] [--warmup S] [--hold S]\n");
        return 64;
    }
    bool echo = strcmp(argv[1], "echo") == 0;
    const char *addr = arg(argc, argv, "--connect", NULL), *target = arg(argc, argv, "--target", NULL);
    const char *header = arg(argc, argv, "--header", NULL);
    int n = atoi(arg(argc, argv, "--terminals", "100"));
    double interval_ms = atof(arg(argc, argv, "--interval-ms", "10"));
    double duration = atof(arg(argc, argv, "--duration", "5")),
           warmup = atof(arg(argc, argv, "--warmup", "1"));
    double hold = atof(arg(argc, argv, "--hold", "3600"));
    if (!addr || !target || n < 1 || n > MAX_TERMS) {
        fprintf(stderr, "termload: --connect, --target and 1..%d terminals are required\n", MAX_TERMS);
        return 64;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof(host)) return 64;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return 64;
    g_t = calloc((size_t)n, sizeof(*g_t));
    if (!g_t) return 1;
    char shared[37];
    uuid(shared);
    for (int i = 0; i < n; i++) {
        char id[37];
        if (echo) uuid(id);
        if (handshake(&g_t[i], &sa, addr, target, header, echo ? id : shared) != 0) {
            fprintf(stderr, "termload: terminal %d of %d did not open\n", i + 1, n);
            return 1;
        }
    }
    if (!echo) {
        printf("open=%d\n", n);
        fflush(stdout);
        int64_t end = now_ns() + (int64_t)(hold * 1e9);
        while (!g_stop && now_ns() < end) /* the harness measures while they are held */
            usleep(100000);
        return 0;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, g_t[i].fd, &ev);
    }
    usleep(300000); /* the shells start and print whatever they print first */
    int64_t t0 = now_ns(), step = (int64_t)(interval_ms * 1e6);
    int64_t warm_end = t0 + (int64_t)(warmup * 1e9), t_end = warm_end + (int64_t)(duration * 1e9);
    for (int i = 0; i < n; i++) {
        g_t[i].next_ns = t0 + step * i / n; /* staggered phases */
        g_t[i].next_ch = 'a';
    }
    struct epoll_event evs[256];
    long sent = 0;
    while (!g_stop) {
        int64_t now = now_ns();
        if (now >= t_end) break;
        int64_t soonest = t_end;
        for (int i = 0; i < n; i++) {
            struct term *t = &g_t[i];
            while (t->open && t->next_ns <= now) {
                if (t->tail - t->head >= FIFO) { /* too far behind: count as errors, forget the oldest */
                    t->head++;
                    g_errors++;
                }
                bool measured = t->next_ns >= warm_end;
                t->sent_at[t->tail % FIFO] = measured ? t->next_ns : -1;
                t->sent_ch[t->tail % FIFO] = t->next_ch;
                t->tail++;
                if (send_key(t, t->next_ch) != 0) {
                    g_errors++;
                    t->open = false;
                }
                sent += measured;
                t->next_ch = t->next_ch == 'z' ? 'a' : (char)(t->next_ch + 1);
                t->next_ns += step;
            }
            if (t->next_ns < soonest) soonest = t->next_ns;
        }
        int wait_ms = (int)((soonest - now_ns()) / 1000000);
        int k = epoll_wait(ep, evs, 256, wait_ms < 0 ? 0 : wait_ms);
        now = now_ns();
        for (int j = 0; j < k; j++) {
            struct term *t = &g_t[evs[j].data.u32];
            for (;;) {
                ssize_t r = read(t->fd, t->rbuf + t->rlen, sizeof(t->rbuf) - t->rlen);
                if (r <= 0) {
                    if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                        epoll_ctl(ep, EPOLL_CTL_DEL, t->fd, NULL);
                        if (t->open) g_errors++;
                        t->open = false;
                    }
                    break;
                }
                t->rlen += (size_t)r;
                on_output(t, true, now);
            }
        }
    }
    long lost = sent - (long)g_nlat;
    if (g_nlat == 0) {
        fprintf(stderr, "termload: no keystroke came back (%ld errors)\n", g_errors);
        return 1;
    }
    qsort(g_lat, g_nlat, sizeof(*g_lat), cmp_i64);
#define PCT(q) (g_lat[(size_t)((double)(g_nlat - 1) * (q))] / 1000)
    printf("keystrokes=%zu p50_us=%lld p99_us=%lld p999_us=%lld max_us=%lld errors=%ld unanswered=%ld\n",
           g_nlat, (long long)PCT(0.5), (long long)PCT(0.99), (long long)PCT(0.999),
           (long long)(g_lat[g_nlat - 1] / 1000), g_errors, lost > 0 ? lost : 0);
    return 0;
}
