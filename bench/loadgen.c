/*
 * bench/loadgen.c — load generator and upstream for the Outpost benchmark harness (bench/run.sh).
 *
 *   loadgen server     --listen H:P            upstream: bulk sink/source and fixed-size HTTP/1.1 responses
 *   loadgen bulk       --connect H:P [--tls] [--cipher S] [--streams N] [--bytes X] [--dir up|down|both]
 *   loadgen rate       --connect H:P [--tls] [--conns C] --rate R --duration S [--warmup S] [--path /100]
 *   loadgen idle       --connect H:P [--tls] --conns N [--hold S]
 *   loadgen handshakes --connect H:P [--resume] [--procs P] --duration S
 *
 * Every client mode prints one line of key=value pairs on stdout and exits 0, or prints the cause on
 * stderr and exits non-zero. Plain epoll + non-blocking sockets; TLS on the client side is OpenSSL
 * (bench tool only; see bench/README.md for why).
 *
 * Bulk protocol (understood by `server`, carried unchanged by any TCP relay): the client sends a 24-byte
 * header "OPBENCH1" + le64 up_bytes + le64 down_bytes, then up_bytes of payload; the server sends
 * down_bytes of payload and, once it has received all up_bytes, an 8-byte ack "OPBENCH!". Anything not
 * starting with the magic is treated as HTTP/1.1: "GET /<n> ..." is answered with an n-byte body
 * (default 100), keep-alive.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define CHUNK    (256u * 1024u)
#define HDR_LEN  24
#define ACK_LEN  8
#define MAX_FD   65536
#define HTTP_BUF 65536

static const char MAGIC[8] = {'O', 'P', 'B', 'E', 'N', 'C', 'H', '1'};
static const char ACK[ACK_LEN] = {'O', 'P', 'B', 'E', 'N', 'C', 'H', '!'};
static char g_zero[CHUNK];
static char g_sink[CHUNK];

/* ---------------------------------------------------------------- options */

struct opts {
    const char *addr;
    bool tls;
    const char *cipher;
    const char *groups;
    int streams;
    uint64_t bytes;
    const char *dir;
    int conns;
    double rate;
    double duration;
    double warmup;
    double hold;
    const char *path;
    bool resume;
    int procs;
    double timeout;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || (size_t)(colon - s) >= sizeof(host)) return -EINVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) return -EINVAL;
    return 0;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) die("fcntl");
}

/* Blocking connect with TCP_NODELAY; returns fd or -errno. */
static int tcp_connect(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* ---------------------------------------------------------------- TLS client */

static SSL_SESSION *g_session; /* latest ticket (handshakes --resume) */

static SSL_CTX *tls_ctx(const struct opts *o)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c) goto fail;
    SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    if (SSL_CTX_set_ciphersuites(c, o->cipher ? o->cipher : "TLS_AES_128_GCM_SHA256") != 1) goto fail;
    if (SSL_CTX_set1_groups_list(c, o->groups ? o->groups : "X25519") != 1) goto fail;
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    return c;
fail:
    ERR_print_errors_fp(stderr);
    fprintf(stderr, "loadgen: TLS context setup failed\n");
    exit(2);
}

/* Blocking TLS 1.3 handshake on a connected fd; returns the SSL or NULL (error printed once). */
static SSL *tls_handshake(SSL_CTX *ctx, int fd, SSL_SESSION *resume)
{
    static bool reported;
    SSL *s = SSL_new(ctx);
    if (!s) return NULL;
    SSL_set_fd(s, fd);
    if (resume) SSL_set_session(s, resume);
    if (SSL_connect(s) != 1) {
        if (!reported) {
            reported = true;
            ERR_print_errors_fp(stderr);
            fprintf(stderr, "loadgen: TLS handshake failed\n");
        }
        SSL_free(s);
        return NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- server */

enum sconn_state { SC_HEAD, SC_BULK, SC_HTTP };

struct sconn {
    enum sconn_state st;
    char *buf; /* HTTP requests (SC_HEAD / SC_HTTP) */
    size_t len;
    uint64_t up_left, down_left;
    size_t ack_off;
    char hout[160];
    size_t hout_len, hout_off;
    uint64_t body_left;
    bool close_after;
    bool want_out;
};

static struct sconn *g_sc[MAX_FD];

static void sc_close(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (g_sc[fd]) {
        free(g_sc[fd]->buf);
        free(g_sc[fd]);
        g_sc[fd] = NULL;
    }
}

static void sc_want_out(int ep, int fd, struct sconn *c, bool on)
{
    if (c->want_out == on) return;
    c->want_out = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Parse one HTTP request at the front of c->buf and queue its response. 1 = queued, 0 = need more. */
static int sc_http_parse(struct sconn *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t hlen = (size_t)(end - c->buf) + 4;
    uint64_t n = 100;
    char *sp = memchr(c->buf, ' ', hlen);
    if (sp && sp[1] == '/' && sp[2] >= '0' && sp[2] <= '9') n = strtoull(sp + 2, NULL, 10);
    if (n > (64u << 20)) n = 64u << 20;
    c->close_after = false;
    for (const char *p = c->buf; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if (strncasecmp(p, "connection:", 11) == 0 && memmem(p, (size_t)(eol - p), "close", 5))
            c->close_after = true;
        if (!nl) break;
        p = nl + 1;
    }
    memmove(c->buf, c->buf + hlen, c->len - hlen);
    c->len -= hlen;
    c->hout_len =
        (size_t)snprintf(c->hout, sizeof(c->hout),
                         "HTTP/1.1 200 OK\r\nServer: loadgen\r\nContent-Type: application/octet-stream\r\n"
                         "Content-Length: %llu\r\n\r\n",
                         (unsigned long long)n);
    c->hout_off = 0;
    c->body_left = n;
    return 1;
}

/* Push pending output. Returns 0 ok (maybe partial), -1 closed. */
static int sc_flush(int ep, int fd, struct sconn *c)
{
    for (;;) {
        if (c->st == SC_BULK) {
            if (c->down_left > 0) {
                size_t n = c->down_left < CHUNK ? (size_t)c->down_left : CHUNK;
                ssize_t w = send(fd, g_zero, n, MSG_NOSIGNAL);
                if (w < 0) goto err;
                c->down_left -= (uint64_t)w;
                continue;
            }
            if (c->up_left == 0 && c->ack_off < ACK_LEN) {
                ssize_t w = send(fd, ACK + c->ack_off, ACK_LEN - c->ack_off, MSG_NOSIGNAL);
                if (w < 0) goto err;
                c->ack_off += (size_t)w;
                continue;
            }
            sc_want_out(ep, fd, c, false);
            return 0;
        }
        if (c->st == SC_HTTP) {
            if (c->hout_off < c->hout_len || c->body_left > 0) {
                struct iovec iov[2];
                int cnt = 0;
                if (c->hout_off < c->hout_len)
                    iov[cnt++] = (struct iovec){c->hout + c->hout_off, c->hout_len - c->hout_off};
                if (c->body_left > 0)
                    iov[cnt++] = (struct iovec){g_zero, c->body_left < CHUNK ? (size_t)c->body_left : CHUNK};
                struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
                ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
                if (w < 0) goto err;
                size_t hrem = c->hout_len - c->hout_off;
                if ((size_t)w <= hrem) {
                    c->hout_off += (size_t)w;
                } else {
                    c->hout_off = c->hout_len;
                    c->body_left -= (uint64_t)w - hrem;
                }
                continue;
            }
            if (c->close_after) {
                sc_close(ep, fd);
                return -1;
            }
            if (sc_http_parse(c)) continue;
            sc_want_out(ep, fd, c, false);
            return 0;
        }
        return 0;
    }
err:
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        sc_want_out(ep, fd, c, true);
        return 0;
    }
    sc_close(ep, fd);
    return -1;
}

static void sc_readable(int ep, int fd, struct sconn *c)
{
    for (int iter = 0; iter < 64; iter++) {
        if (c->st == SC_BULK) {
            ssize_t r = recv(fd, g_sink, CHUNK, MSG_TRUNC);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                sc_close(ep, fd);
                return;
            }
            if (r < 0) break;
            c->up_left = (uint64_t)r >= c->up_left ? 0 : c->up_left - (uint64_t)r;
            if (c->up_left == 0 && c->ack_off < ACK_LEN && sc_flush(ep, fd, c) < 0) return;
            continue;
        }
        if (c->len >= HTTP_BUF) { /* request head too large */
            sc_close(ep, fd);
            return;
        }
        ssize_t r = recv(fd, c->buf + c->len, HTTP_BUF - c->len, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            sc_close(ep, fd);
            return;
        }
        if (r < 0) break;
        c->len += (size_t)r;
        if (c->st == SC_HEAD) {
            if (c->len < sizeof(MAGIC) && memcmp(c->buf, MAGIC, c->len) == 0) continue;
            if (memcmp(c->buf, MAGIC, sizeof(MAGIC)) == 0) {
                if (c->len < HDR_LEN) continue;
                uint64_t up, down;
                memcpy(&up, c->buf + 8, 8);
                memcpy(&down, c->buf + 16, 8);
                uint64_t extra = c->len - HDR_LEN;
                c->st = SC_BULK;
                c->up_left = extra >= up ? 0 : up - extra;
                c->down_left = down;
                free(c->buf);
                c->buf = NULL;
                c->len = 0;
                if (sc_flush(ep, fd, c) < 0) return;
                continue;
            }
            c->st = SC_HTTP;
        }
        if (c->hout_off >= c->hout_len && c->body_left == 0 && sc_flush(ep, fd, c) < 0) return;
    }
}

static int cmd_server(const struct opts *o)
{
    struct sockaddr_in sa;
    if (parse_addr(o->addr, &sa) < 0) {
        fprintf(stderr, "loadgen: bad --listen address\n");
        return 64;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("bind");
    if (listen(lfd, 4096) < 0) die("listen");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    memset(g_zero, 'x', sizeof(g_zero));
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (int k = 0; k < 256; k++) {
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    if (cfd >= MAX_FD) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct sconn *c = calloc(1, sizeof(*c));
                    if (c) c->buf = malloc(HTTP_BUF);
                    if (!c || !c->buf) {
                        free(c);
                        close(cfd);
                        continue;
                    }
                    g_sc[cfd] = c;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            struct sconn *c = g_sc[fd];
            if (!c) continue;
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                sc_close(ep, fd);
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && sc_flush(ep, fd, c) < 0) continue;
            if (evs[i].events & EPOLLIN) sc_readable(ep, fd, c);
        }
    }
}

/* ---------------------------------------------------------------- client I/O helpers */

struct cconn {
    int fd;
    SSL *ssl;
};

/* Non-blocking read. Returns bytes (>0), 0 on would-block, -1 on EOF/error. sink=true discards (plaintext).
 */
static ssize_t c_read(struct cconn *c, char *buf, size_t len, bool sink)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, (int)len);
        if (r > 0) return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
        return -1;
    }
    ssize_t r = recv(c->fd, buf, len, sink ? MSG_TRUNC : 0);
    if (r > 0) return r;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    return -1;
}

static ssize_t c_write(struct cconn *c, const char *buf, size_t len)
{
    if (c->ssl) {
        int w = SSL_write(c->ssl, buf, (int)len);
        if (w > 0) return w;
        int e = SSL_get_error(c->ssl, w);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
        return -1;
    }
    ssize_t w = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (w >= 0) return w;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -1;
}

/* Blocking connect (+ TLS handshake) to the target. Returns 0 or -1 (cause printed). */
static int c_open(struct cconn *c, const struct sockaddr_in *sa, SSL_CTX *ctx)
{
    c->ssl = NULL;
    c->fd = tcp_connect(sa);
    if (c->fd < 0) {
        fprintf(stderr, "loadgen: connect: %s\n", strerror(-c->fd));
        return -1;
    }
    if (ctx) {
        c->ssl = tls_handshake(ctx, c->fd, NULL);
        if (!c->ssl) {
            close(c->fd);
            c->fd = -1;
            return -1;
        }
    }
    return 0;
}

static void c_close(struct cconn *c)
{
    if (c->ssl) SSL_free(c->ssl);
    if (c->fd >= 0) close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

static void make_header(char hdr[HDR_LEN], uint64_t up, uint64_t down)
{
    memcpy(hdr, MAGIC, 8);
    memcpy(hdr + 8, &up, 8);
    memcpy(hdr + 16, &down, 8);
}

/* ---------------------------------------------------------------- bulk */

struct bstream {
    struct cconn c;
    char hdr[HDR_LEN];
    size_t hdr_off;
    uint64_t up_left, down_left; /* down_left includes the ack */
    bool out_on, done;
};

static void bs_update(int ep, struct bstream *s, int idx)
{
    bool want = s->hdr_off < HDR_LEN || s->up_left > 0;
    if (want == s->out_on) return;
    s->out_on = want;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.u32 = (uint32_t)idx};
    epoll_ctl(ep, EPOLL_CTL_MOD, s->c.fd, &ev);
}

static int cmd_bulk(const struct opts *o)
{
    struct sockaddr_in sa;
    if (parse_addr(o->addr, &sa) < 0) {
        fprintf(stderr, "loadgen: bad --connect address\n");
        return 64;
    }
    bool up = strcmp(o->dir, "up") == 0 || strcmp(o->dir, "both") == 0;
    bool down = strcmp(o->dir, "down") == 0 || strcmp(o->dir, "both") == 0;
    if (!up && !down) {
        fprintf(stderr, "loadgen: --dir must be up, down or both\n");
        return 64;
    }
    int n = o->streams;
    uint64_t per = o->bytes / (uint64_t)n;
    SSL_CTX *ctx = o->tls ? tls_ctx(o) : NULL;
    struct bstream *ss = calloc((size_t)n, sizeof(*ss));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < n; i++) {
        struct bstream *s = &ss[i];
        if (c_open(&s->c, &sa, ctx) < 0) return 1;
        s->up_left = up ? per : 0;
        s->down_left = (down ? per : 0) + ACK_LEN;
        make_header(s->hdr, s->up_left, down ? per : 0);
    }
    if (ctx)
        fprintf(stderr, "loadgen: bulk over %s %s\n", SSL_get_version(ss[0].c.ssl),
                SSL_get_cipher(ss[0].c.ssl));
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        set_nonblock(ss[i].c.fd);
        ss[i].out_on = true;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, ss[i].c.fd, &ev);
    }
    int left = n;
    uint64_t moved = 0;
    double deadline = t0 + o->timeout;
    struct epoll_event evs[64];
    while (left > 0) {
        if (now_s() > deadline) {
            fprintf(stderr, "loadgen: bulk timed out with %d of %d streams unfinished\n", left, n);
            return 3;
        }
        int k = epoll_wait(ep, evs, 64, 200);
        if (k < 0 && errno == EINTR) continue;
        for (int e = 0; e < k; e++) {
            struct bstream *s = &ss[evs[e].data.u32];
            if (s->done) continue;
            if (evs[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                while (s->hdr_off < HDR_LEN || s->up_left > 0) {
                    ssize_t w;
                    if (s->hdr_off < HDR_LEN) {
                        w = c_write(&s->c, s->hdr + s->hdr_off, HDR_LEN - s->hdr_off);
                        if (w > 0) s->hdr_off += (size_t)w;
                    } else {
                        w = c_write(&s->c, g_zero, s->up_left < CHUNK ? (size_t)s->up_left : CHUNK);
                        if (w > 0) {
                            s->up_left -= (uint64_t)w;
                            moved += (uint64_t)w;
                        }
                    }
                    if (w < 0) {
                        fprintf(stderr, "loadgen: stream write failed (peer closed?)\n");
                        return 1;
                    }
                    if (w == 0) break;
                }
                bs_update(ep, s, (int)evs[e].data.u32);
            }
            if (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                for (;;) {
                    ssize_t r = c_read(&s->c, g_sink, CHUNK, true);
                    if (r == 0) break;
                    if (r < 0) {
                        if (s->down_left > 0) {
                            fprintf(stderr, "loadgen: stream closed early (%llu bytes missing)\n",
                                    (unsigned long long)s->down_left);
                            return 1;
                        }
                        break;
                    }
                    uint64_t got = (uint64_t)r > s->down_left ? s->down_left : (uint64_t)r;
                    s->down_left -= got;
                    moved += got;
                    if (s->down_left == 0) break;
                }
            }
            if (s->down_left == 0 && s->up_left == 0 && s->hdr_off == HDR_LEN) {
                s->done = true;
                left--;
                epoll_ctl(ep, EPOLL_CTL_DEL, s->c.fd, NULL);
            }
        }
    }
    double secs = now_s() - t0;
    uint64_t payload = (up ? per : 0) * (uint64_t)n + (down ? per : 0) * (uint64_t)n;
    (void)moved;
    printf("bytes=%llu seconds=%.6f bytes_per_s=%.0f streams=%d dir=%s tls=%d\n", (unsigned long long)payload,
           secs, (double)payload / secs, n, o->dir, o->tls ? 1 : 0);
    for (int i = 0; i < n; i++)
        c_close(&ss[i].c);
    free(ss);
    return 0;
}

/* ---------------------------------------------------------------- rate (open loop) */

struct rconn {
    struct cconn c;
    char *buf;
    size_t len;
    bool busy;
    int64_t intended; /* ns: when the current/next request was meant to be sent */
    size_t req_off;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* A complete response at the front of buf? Returns its length, 0 if incomplete, -1 if malformed. */
static ssize_t http_response_len(const char *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return len > 16384 ? -1 : 0;
    size_t hlen = (size_t)(end - buf) + 4;
    const char *p = buf;
    long long cl = -1;
    while (p && p < end) {
        if (strncasecmp(p, "content-length:", 15) == 0) cl = strtoll(p + 15, NULL, 10);
        p = memchr(p, '\n', (size_t)(end - p));
        if (p) p++;
    }
    if (cl < 0) return -1;
    return (size_t)cl + hlen <= len ? (ssize_t)((size_t)cl + hlen) : 0;
}

static int cmd_rate(const struct opts *o)
{
    struct sockaddr_in sa;
    if (parse_addr(o->addr, &sa) < 0 || o->rate <= 0 || o->duration <= 0) {
        fprintf(stderr, "loadgen: rate needs --connect, --rate and --duration\n");
        return 64;
    }
    char req[256];
    int reqlen =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: loadgen\r\n\r\n", o->path);
    int nc = o->conns;
    SSL_CTX *ctx = o->tls ? tls_ctx(o) : NULL;
    struct rconn *cs = calloc((size_t)nc, sizeof(*cs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nc; i++) {
        if (c_open(&cs[i].c, &sa, ctx) < 0) return 1;
        set_nonblock(cs[i].c.fd);
        cs[i].buf = malloc(HTTP_BUF);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].c.fd, &ev);
    }
    size_t cap = (size_t)(o->rate * (o->duration + 1.0)) + 1024;
    int64_t *lat = malloc(cap * sizeof(*lat));
    size_t nlat = 0, errors = 0;
    uint64_t completed = 0, sent = 0;
    int64_t interval = (int64_t)(1e9 * nc / o->rate); /* per-connection spacing */
    int64_t t0 = now_ns() + 10000000;                 /* start 10 ms from now */
    int64_t rec_from = t0 + (int64_t)(o->warmup * 1e9);
    int64_t t_end = rec_from + (int64_t)(o->duration * 1e9);
    int64_t drain_until = t_end + 2000000000;
    for (int i = 0; i < nc; i++)
        cs[i].intended = t0 + (int64_t)(1e9 * i / o->rate);
    uint64_t rec_completed = 0;
    struct epoll_event evs[64];
    for (;;) {
        int64_t now = now_ns();
        int64_t next = INT64_MAX;
        int busy = 0;
        for (int i = 0; i < nc; i++) {
            struct rconn *c = &cs[i];
            if (c->c.fd < 0) continue;
            if (c->busy) {
                busy++;
                if (c->req_off < (size_t)reqlen) { /* finish a partial write */
                    ssize_t w = c_write(&c->c, req + c->req_off, (size_t)reqlen - c->req_off);
                    if (w > 0) c->req_off += (size_t)w;
                }
                continue;
            }
            if (c->intended >= t_end) continue;
            if (c->intended <= now) {
                ssize_t w = c_write(&c->c, req, (size_t)reqlen);
                if (w < 0) {
                    errors++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->c.fd, NULL);
                    c_close(&c->c);
                    continue;
                }
                c->req_off = (size_t)w;
                c->busy = true;
                busy++;
                sent++;
            } else if (c->intended < next) {
                next = c->intended;
            }
        }
        if (now >= t_end && busy == 0) break;
        if (now >= drain_until) break;
        struct timespec ts = {0, 0};
        int64_t wait = next == INT64_MAX ? 5000000 : next - now;
        if (wait > 5000000) wait = 5000000;
        if (wait < 0) wait = 0;
        ts.tv_nsec = wait;
        int k = epoll_pwait2(ep, evs, 64, &ts, NULL);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) die("epoll_pwait2");
        for (int e = 0; e < k; e++) {
            struct rconn *c = &cs[evs[e].data.u32];
            if (c->c.fd < 0) continue;
            for (;;) {
                ssize_t r = c_read(&c->c, c->buf + c->len, HTTP_BUF - c->len, false);
                if (r == 0) break;
                if (r < 0) {
                    if (c->busy) errors++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->c.fd, NULL);
                    c_close(&c->c);
                    break;
                }
                c->len += (size_t)r;
                ssize_t rl;
                while ((rl = http_response_len(c->buf, c->len)) > 0) {
                    int64_t t = now_ns();
                    if (c->busy) {
                        if (c->intended >= rec_from && c->intended < t_end) {
                            if (nlat < cap) lat[nlat++] = t - c->intended;
                            rec_completed++;
                        }
                        completed++;
                        c->busy = false;
                        c->intended += interval;
                    }
                    memmove(c->buf, c->buf + rl, c->len - (size_t)rl);
                    c->len -= (size_t)rl;
                }
                if (rl < 0) {
                    errors++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->c.fd, NULL);
                    c_close(&c->c);
                    break;
                }
            }
        }
    }
    /* Requests still outstanding at the end count with their latency so far (a stall must show). */
    int64_t tfin = now_ns();
    for (int i = 0; i < nc; i++)
        if (cs[i].busy && cs[i].intended >= rec_from && cs[i].intended < t_end && nlat < cap) {
            lat[nlat++] = tfin - cs[i].intended;
            errors++;
        }
    for (int i = 0; i < nc; i++) {
        if (cs[i].c.fd >= 0) c_close(&cs[i].c);
        free(cs[i].buf);
    }
    free(cs);
    close(ep);
    if (ctx) SSL_CTX_free(ctx);
    if (nlat == 0) {
        fprintf(stderr, "loadgen: no responses recorded (errors=%zu)\n", errors);
        free(lat);
        return 1;
    }
    qsort(lat, nlat, sizeof(*lat), cmp_i64);
#define PCT(p) ((double)lat[(size_t)((double)(nlat - 1) * (p))] / 1000.0)
    printf("rate_target=%.0f rate_achieved=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
           "samples=%zu errors=%zu sent=%llu\n",
           o->rate, (double)rec_completed / o->duration, PCT(0.50), PCT(0.90), PCT(0.99), PCT(0.999),
           (double)lat[nlat - 1] / 1000.0, nlat, errors, (unsigned long long)sent);
#undef PCT
    free(lat);
    return errors > nlat / 100 ? 1 : 0;
}

/* ---------------------------------------------------------------- idle */

static volatile sig_atomic_t g_stop;
static void on_term(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int cmd_idle(const struct opts *o)
{
    struct sockaddr_in sa;
    if (parse_addr(o->addr, &sa) < 0) {
        fprintf(stderr, "loadgen: bad --connect address\n");
        return 64;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    SSL_CTX *ctx = o->tls ? tls_ctx(o) : NULL;
    struct cconn *cs = calloc((size_t)o->conns, sizeof(*cs));
    int ok = 0, failed = 0;
    char hdr[HDR_LEN];
    make_header(hdr, 0, 0);
    double deadline = now_s() + o->timeout;
    for (int i = 0; i < o->conns && !g_stop && now_s() < deadline; i++) {
        struct cconn *c = &cs[ok];
        if (c_open(c, &sa, ctx) < 0) {
            if (++failed > 10) break;
            continue;
        }
        char ack[ACK_LEN];
        size_t got = 0;
        bool good = c_write(c, hdr, HDR_LEN) == HDR_LEN;
        while (good && got < ACK_LEN) {
            ssize_t r = c->ssl ? SSL_read(c->ssl, ack + got, (int)(ACK_LEN - got))
                               : recv(c->fd, ack + got, ACK_LEN - got, 0);
            if (r <= 0)
                good = false;
            else
                got += (size_t)r;
        }
        if (!good) {
            c_close(c);
            if (++failed > 10) break;
            continue;
        }
        ok++;
    }
    printf("established=%d failed=%d\nREADY\n", ok, failed);
    fflush(stdout);
    double until = now_s() + o->hold;
    while (!g_stop && now_s() < until)
        usleep(50000);
    for (int i = 0; i < ok; i++)
        c_close(&cs[i]);
    return failed > 10 ? 1 : 0;
}

/* ---------------------------------------------------------------- handshakes */

static int hs_child(const struct opts *o, const struct sockaddr_in *sa, double t_end, long out[3])
{
    SSL_CTX *ctx = tls_ctx(o);
    static const char req[] = "GET /100 HTTP/1.1\r\nHost: bench\r\n\r\n";
    char buf[4096];
    long ok = 0, resumed = 0, failed = 0;
    bool counting = !o->resume; /* with --resume, the first (full) handshake only fetches a ticket */
    while (now_s() < t_end) {
        int fd = tcp_connect(sa);
        if (fd < 0) {
            failed++;
            if (failed > 1000) break;
            continue;
        }
        struct timeval tv = {2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        SSL_SESSION *sess = o->resume ? g_session : NULL;
        if (sess) SSL_SESSION_up_ref(sess);
        SSL *s = tls_handshake(ctx, fd, sess);
        if (sess) SSL_SESSION_free(sess);
        bool good = s != NULL && SSL_write(s, req, (int)sizeof(req) - 1) > 0;
        size_t len = 0;
        while (good) {
            int r = SSL_read(s, buf + len, (int)(sizeof(buf) - len));
            if (r <= 0) {
                good = false;
                break;
            }
            len += (size_t)r;
            ssize_t rl = http_response_len(buf, len);
            if (rl != 0) {
                good = rl > 0;
                break;
            }
        }
        if (good && counting) {
            ok++;
            if (SSL_session_reused(s)) resumed++;
        } else if (!good) {
            failed++;
        }
        counting = true;
        if (good && o->resume) { /* keep the newest ticket for the next connection */
            SSL_SESSION *ns = SSL_get1_session(s);
            if (ns) {
                if (g_session) SSL_SESSION_free(g_session);
                g_session = ns;
            }
        }
        if (s) {
            /* close_notify first: OpenSSL marks the session of an unclosed connection not resumable */
            if (good) SSL_shutdown(s);
            SSL_free(s);
        }
        close(fd);
        if (failed > 1000) break;
    }
    out[0] = ok;
    out[1] = resumed;
    out[2] = failed;
    return 0;
}

static int cmd_handshakes(const struct opts *o)
{
    struct sockaddr_in sa;
    if (parse_addr(o->addr, &sa) < 0 || o->duration <= 0) {
        fprintf(stderr, "loadgen: handshakes needs --connect and --duration\n");
        return 64;
    }
    int np = o->procs;
    int(*pipes)[2] = calloc((size_t)np, sizeof(*pipes));
    pid_t *pids = calloc((size_t)np, sizeof(*pids));
    double t0 = now_s();
    double t_end = t0 + o->duration;
    for (int i = 0; i < np; i++) {
        if (pipe(pipes[i]) < 0) die("pipe");
        pids[i] = fork();
        if (pids[i] < 0) die("fork");
        if (pids[i] == 0) {
            long out[3];
            close(pipes[i][0]);
            hs_child(o, &sa, t_end, out);
            ssize_t w = write(pipes[i][1], out, sizeof(out));
            _exit(w == (ssize_t)sizeof(out) ? 0 : 1);
        }
        close(pipes[i][1]);
    }
    long tot[3] = {0, 0, 0};
    for (int i = 0; i < np; i++) {
        long out[3];
        if (read(pipes[i][0], out, sizeof(out)) == (ssize_t)sizeof(out))
            for (int k = 0; k < 3; k++)
                tot[k] += out[k];
        else
            tot[2]++;
        close(pipes[i][0]);
        waitpid(pids[i], NULL, 0);
    }
    double secs = now_s() - t0;
    printf("conns=%ld resumed=%ld failed=%ld seconds=%.3f conns_per_s=%.1f procs=%d\n", tot[0], tot[1],
           tot[2], secs, (double)tot[0] / secs, np);
    if (tot[0] == 0) return 1;
    if (o->resume && tot[1] < tot[0] / 2) {
        fprintf(stderr, "loadgen: only %ld of %ld connections resumed\n", tot[1], tot[0]);
        return 1;
    }
    return tot[2] > tot[0] / 100 ? 1 : 0;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fputs("usage: loadgen server|bulk|rate|idle|handshakes [options]  (see the top of bench/loadgen.c)\n",
          stderr);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 64;
    }
    const char *cmd = argv[1];
    struct opts o = {.streams = 1,
                     .bytes = 256u << 20,
                     .dir = "up",
                     .conns = 64,
                     .duration = 5,
                     .warmup = 1,
                     .hold = 3600,
                     .path = "/100",
                     .procs = 4,
                     .timeout = 300};
    static const struct option lo[] = {{"listen", required_argument, 0, 'l'},
                                       {"connect", required_argument, 0, 'c'},
                                       {"tls", no_argument, 0, 't'},
                                       {"cipher", required_argument, 0, 'C'},
                                       {"groups", required_argument, 0, 'g'},
                                       {"streams", required_argument, 0, 'n'},
                                       {"bytes", required_argument, 0, 'b'},
                                       {"dir", required_argument, 0, 'd'},
                                       {"conns", required_argument, 0, 'N'},
                                       {"rate", required_argument, 0, 'r'},
                                       {"duration", required_argument, 0, 'D'},
                                       {"warmup", required_argument, 0, 'w'},
                                       {"hold", required_argument, 0, 'H'},
                                       {"path", required_argument, 0, 'p'},
                                       {"resume", no_argument, 0, 'R'},
                                       {"procs", required_argument, 0, 'P'},
                                       {"timeout", required_argument, 0, 'T'},
                                       {0, 0, 0, 0}};
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'l':
        case 'c':
            o.addr = optarg;
            break;
        case 't':
            o.tls = true;
            break;
        case 'C':
            o.cipher = optarg;
            break;
        case 'g':
            o.groups = optarg;
            break;
        case 'n':
            o.streams = atoi(optarg);
            break;
        case 'b':
            o.bytes = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            o.dir = optarg;
            break;
        case 'N':
            o.conns = atoi(optarg);
            break;
        case 'r':
            o.rate = atof(optarg);
            break;
        case 'D':
            o.duration = atof(optarg);
            break;
        case 'w':
            o.warmup = atof(optarg);
            break;
        case 'H':
            o.hold = atof(optarg);
            break;
        case 'p':
            o.path = optarg;
            break;
        case 'R':
            o.resume = true;
            break;
        case 'P':
            o.procs = atoi(optarg);
            break;
        case 'T':
            o.timeout = atof(optarg);
            break;
        default:
            usage();
            return 64;
        }
    }
    if (o.streams < 1 || o.conns < 1 || o.procs < 1 || o.streams > 4096 || o.conns > 60000 || o.procs > 256) {
        fprintf(stderr, "loadgen: counts out of range\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (strcmp(cmd, "server") == 0) return cmd_server(&o);
    if (strcmp(cmd, "bulk") == 0) return cmd_bulk(&o);
    if (strcmp(cmd, "rate") == 0) return cmd_rate(&o);
    if (strcmp(cmd, "idle") == 0) return cmd_idle(&o);
    if (strcmp(cmd, "handshakes") == 0) return cmd_handshakes(&o);
    usage();
    return 64;
}
