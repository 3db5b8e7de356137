/*
 * Unit test for dial routes in the HTTP protocol (http/proxy_dial.c) on a real engine: the dialer hands over
 * one end of a socketpair whose other end is a fake agent thread that reads "OPEN <target>\n", answers "OK\n"
 * (then speaks HTTP/1.1), "ERR 1 refused\n", a line too long, nothing, or closes. Covers: a GET through the
 * preamble; nothing of the request reaching the leg before OK; ERR, a close and a long line answered 502
 * (JSON, or the route's err_page), no answer 504; keep-alive reuse for the same up_key, new legs for another
 * key and for none; strip_prefix, dropped cookies, extra request and response lines, NO_CORS; POST bodies
 * (Content-Length, large, chunked) held during the set-up and forwarded after OK; a WebSocket upgrade;
 * dialers that complete through a message (dial_msg) with a socket or op_http_dial_failed, fail inside
 * dial(), return < 0, or never complete (504 after the connect timeout, dial_cancel called); address routes
 * next to dial routes on one connection (no leg shared), one with a preamble. Skips (77) only when io_uring
 * is unavailable.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/engine.h"
#include "http/proxy.h"
#include "tests/unit/check.h"
#include "tests/unit/net_test_util.h"
#define CONNECT_MS 300

/* Value of header name in a head (NUL-terminated), copied into v; false when absent. */
static bool hdr(const char *head, const char *name, char *v, size_t vcap)
{
    size_t n = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        const char *line = l + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *s = line + n + 1;
            while (*s == ' ')
                s++;
            const char *e = strstr(s, "\r\n");
            snprintf(v, vcap, "%.*s", (int)(e - s), s);
            return true;
        }
    }
    return false;
}

/* ---- the fake agent: one thread per leg ---------------------------------------------------------- */

static atomic_int opens, early_bytes, late_msgs, cancels;
static pthread_mutex_t agent_mu = PTHREAD_MUTEX_INITIALIZER;
static char last_head[8192];
static char last_open[300];

/* One more read into buf at *len: false on a close or error. */
static bool more(int fd, char *buf, size_t *len)
{
    ssize_t k = t_recv_retry(fd, buf + *len, 65536);
    if (k <= 0) return false;
    *len += (size_t)k;
    return true;
}

/* Reads the body the head announces; returns its length and a byte sum, or -1. */
static long read_body(int fd, char *buf, size_t *len, size_t head_len, const char *head, unsigned *sum)
{
    char v[64];
    *sum = 0;
    size_t have = *len - head_len; /* body bytes already in buf after the head */
    memmove(buf, buf + head_len, have);
    *len = have;
    if (hdr(head, "Content-Length", v, sizeof(v))) {
        size_t want = strtoul(v, NULL, 10);
        long total;
        while (*len < want)
            if (!more(fd, buf, len)) return -1;
        for (size_t i = 0; i < want; i++)
            *sum += (unsigned char)buf[i];
        total = (long)want;
        memmove(buf, buf + want, *len - want);
        *len -= want;
        return total;
    }
    if (hdr(head, "Transfer-Encoding", v, sizeof(v))) { /* chunked: size lines, data, CRLF, 0, CRLF */
        long total = 0;
        size_t pos = 0;
        for (;;) {
            char *nl;
            while (!(nl = memchr(buf + pos, '\n', *len - pos)))
                if (!more(fd, buf, len)) return -1;
            size_t sz = strtoul(buf + pos, NULL, 16);
            pos = (size_t)(nl - buf) + 1;
            while (*len < pos + sz + 2)
                if (!more(fd, buf, len)) return -1;
            for (size_t i = 0; i < sz; i++)
                *sum += (unsigned char)buf[pos + i];
            total += (long)sz;
            pos += sz + 2; /* data, CRLF (the last chunk's: the empty trailer section) */
            if (sz == 0) break;
        }
        memmove(buf, buf + pos, *len - pos);
        *len -= pos;
        return total;
    }
    return 0;
}

#define PLAIN_HTTP (1 << 30) /* in agent()'s argument: an address route's upstream, HTTP only */

static void *agent(void *arg)
{
    int fd = (int)((intptr_t)arg & ~(intptr_t)PLAIN_HTTP);
    bool plain = (intptr_t)arg & PLAIN_HTTP;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){.tv_sec = 5}, sizeof(struct timeval));
    char line[300];
    size_t ln = 0;
    const char *target = "noack";
    if (plain) goto http;
    for (;;) { /* byte by byte: nothing after the line is read before the answer */
        char ch;
        if (t_recv_retry(fd, &ch, 1) != 1) goto out;
        if (ch == '\n') break;
        if (ln < sizeof(line) - 1) line[ln++] = ch;
    }
    line[ln] = '\0';
    atomic_fetch_add(&opens, 1);
    pthread_mutex_lock(&agent_mu);
    snprintf(last_open, sizeof(last_open), "%s", line);
    pthread_mutex_unlock(&agent_mu);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 30) > 0) atomic_fetch_add(&early_bytes, 1); /* the request must wait for OK */
    target = strncmp(line, "OPEN ", 5) == 0 ? line + 5 : "";
    if (strcmp(target, "refuse") == 0) {
        t_send_all(fd, "ERR 1 connection \"refused\"\n", 27);
        goto out;
    }
    if (strcmp(target, "eof") == 0) goto out;
    if (strcmp(target, "silent") == 0 || strcmp(target, "long") == 0) { /* silent: until the timeout */
        char junk[600];
        memset(junk, 'x', sizeof(junk));
        if (*target == 'l') t_send_all(fd, junk, sizeof(junk));
        t_recv_retry(fd, junk, 1);
        goto out;
    }
    if (strcmp(target, "noack") != 0 && !t_send_all(fd, "OK\n", 3)) goto out; /* noack: HTTP at once */
http:;
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        char *end;
        buf[len] = '\0';
        while (!(end = strstr(buf, "\r\n\r\n"))) {
            ssize_t k = t_recv_retry(fd, buf + len, cap - len);
            if (k <= 0) goto done;
            len += (size_t)k;
            buf[len] = '\0';
        }
        size_t head_len = (size_t)(end - buf) + 4;
        char head[8192];
        snprintf(head, sizeof(head), "%.*s", (int)head_len, buf);
        pthread_mutex_lock(&agent_mu);
        snprintf(last_head, sizeof(last_head), "%s", head);
        pthread_mutex_unlock(&agent_mu);
        char method[16], path[2048];
        if (sscanf(head, "%15s %2047s", method, path) != 2) goto done;
        unsigned sum;
        long n = read_body(fd, buf, &len, head_len, head, &sum);
        if (n < 0) goto done;
        char out[4096];
        int on;
        if (strcmp(path, "/ws") == 0) {
            on = snprintf(
                out, sizeof(out),
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
            if (!t_send_all(fd, out, (size_t)on) || (len && !t_send_all(fd, buf, len))) goto done;
            for (;;) { /* echo */
                ssize_t k = t_recv_retry(fd, buf, 65536);
                if (k <= 0 || !t_send_all(fd, buf, (size_t)k)) goto done;
            }
        }
        char body[2200];
        int bn = snprintf(body, sizeof(body), "%s %s n=%ld sum=%u", method, path, n, sum);
        on =
            snprintf(out, sizeof(out),
                     "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: "
                     "true\r\nVary: Origin, Accept-Encoding\r\nContent-Length: %d\r\n\r\n%s",
                     bn, body);
        if (!t_send_all(fd, out, (size_t)on)) goto done;
    }
done:
    free(buf);
out:
    close(fd);
    return NULL;
}

/* One end of a new socketpair for the engine; the other runs the fake agent. */
static int new_leg(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
    pthread_t t;
    pthread_create(&t, NULL, agent, (void *)(intptr_t)sv[1]);
    pthread_detach(t);
    return sv[0];
}

/* TCP upstreams for address routes: plain HTTP, or OPEN/OK first. */
struct tcp_up {
    int lfd;
    bool plain;
    struct sockaddr_in addr;
};
static struct tcp_up up_plain = {.plain = true}, up_pre;

static void *tcp_accept(void *arg)
{
    struct tcp_up *u = arg;
    for (;;) {
        int fd = accept(u->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            return NULL;
        }
        pthread_t t;
        pthread_create(&t, NULL, agent, (void *)(intptr_t)(fd | (u->plain ? PLAIN_HTTP : 0)));
        pthread_detach(t);
    }
}

static bool tcp_up_start(struct tcp_up *u)
{
    u->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    u->addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(u->addr);
    if (bind(u->lfd, (struct sockaddr *)&u->addr, sizeof(u->addr)) != 0 || listen(u->lfd, 64) != 0 ||
        getsockname(u->lfd, (struct sockaddr *)&u->addr, &al) != 0)
        return false;
    pthread_t t;
    pthread_create(&t, NULL, tcp_accept, u);
    pthread_detach(t);
    return true;
}

/* ---- dialers ------------------------------------------------------------------------------------- */

static struct op_engine *g_engine;

enum dial_mode { D_SYNC = 1, D_MSG, D_MSG_FAIL, D_FAIL_INSIDE, D_NEG, D_NEVER };

struct dial_msg {
    struct op_msg m;
    struct op_conn_ref ref;
    int fd;
    bool fail;
};

static void dial_msg_run(struct op_worker *w, struct op_msg *om)
{
    struct dial_msg *m = OP_CONTAINER_OF(om, struct dial_msg, m);
    bool delivered = op_worker_deliver(w, m->ref, m); /* the dialer keeps its message either way */
    (void)delivered;
    if (m->fd >= 0) close(m->fd);
    free(m);
}

static void *msg_poster(void *arg)
{
    struct dial_msg *m = arg;
    usleep(20000); /* the socket arrives a little later, from another thread */
    if (!m->fail) m->fd = new_leg();
    op_engine_post(g_engine, m->ref.worker, &m->m);
    return NULL;
}

static void t_dial_msg(void *ctx, struct op_conn *c, void *msg, bool waiting)
{
    (void)ctx;
    struct dial_msg *m = msg;
    if (!waiting) {
        atomic_fetch_add(&late_msgs, 1);
        return;
    }
    if (m->fail) {
        static const char page[] = "<p>agent offline</p>";
        op_http_dial_failed(c, 503, "text/html", page, sizeof(page) - 1);
        return;
    }
    if (m->fd >= 0 && op_conn_attach_upstream(c, m->fd) == 0) m->fd = -1;
}

static void t_dial_cancel(void *ctx, struct op_conn *c)
{
    (void)ctx;
    (void)c;
    atomic_fetch_add(&cancels, 1);
}

static int t_dial(void *ctx, struct op_conn *c)
{
    enum dial_mode mode = (enum dial_mode)(intptr_t)ctx;
    switch (mode) {
    case D_SYNC: {
        int fd = new_leg();
        if (fd < 0) return -1;
        if (op_conn_attach_upstream(c, fd) != 0) {
            close(fd);
            return -1;
        }
        return 0;
    }
    case D_MSG:
    case D_MSG_FAIL: {
        struct dial_msg *m = calloc(1, sizeof(*m));
        m->m.fn = dial_msg_run;
        m->ref = op_conn_ref(c);
        m->fd = -1;
        m->fail = mode == D_MSG_FAIL;
        pthread_t t;
        pthread_create(&t, NULL, msg_poster, m);
        pthread_detach(t);
        return 0;
    }
    case D_FAIL_INSIDE:
        op_http_dial_failed(c, 404, "text/plain", "no such agent", 13);
        return 0;
    case D_NEG:
        return -1;
    case D_NEVER:
        return 0;
    }
    return -1;
}

static size_t t_err_page(void *ctx, int status, const char *msg, char *out, size_t outlen)
{
    return (size_t)snprintf(out, outlen, "<title>%s</title><p>%d %s</p>", (char *)ctx, status, msg);
}

static const char *const drop_list[] = {"coder_session_token", "coder_subdomain_app_session_token_*", NULL};

/* Routes by the first path segment (the dial mode); headers choose the rest: X-Key (up_key), X-Target
 * (the OPEN target), X-Strip (strip_prefix), X-Drop (drop_cookies), X-No-Cors, X-No-Ok (no preamble_ok),
 * X-Page (err_page). */
static void t_route(void *ctx, struct op_conn *c, const struct op_h1_request *req, struct op_route *out)
{
    (void)ctx;
    (void)c;
    static const struct {
        const char *p;
        enum dial_mode m;
    } modes[] = {{"/sync", D_SYNC},          {"/msg/", D_MSG}, {"/msgfail", D_MSG_FAIL},
                 {"/inside", D_FAIL_INSIDE}, {"/neg", D_NEG},  {"/never", D_NEVER}};
    if (req->target.len >= 5 &&
        (memcmp(req->target.p, "/addr", 5) == 0 || memcmp(req->target.p, "/apre", 5) == 0)) {
        bool pre = req->target.p[2] == 'p';
        struct tcp_up *u = pre ? &up_pre : &up_plain;
        out->kind = OP_ROUTE_UPSTREAM;
        out->addr = (const struct sockaddr *)&u->addr;
        out->addrlen = sizeof(u->addr);
        if (pre) {
            out->preamble_len = (size_t)snprintf(out->preamble, sizeof(out->preamble), "OPEN tcp:1\n");
            out->preamble_ok = true;
        }
        return;
    }
    enum dial_mode mode = 0;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (req->target.len >= strlen(modes[i].p) &&
            memcmp(req->target.p, modes[i].p, strlen(modes[i].p)) == 0)
            mode = modes[i].m;
    if (!mode) {
        out->kind = OP_ROUTE_RESPOND;
        out->status = 404;
        return;
    }
    out->kind = OP_ROUTE_UPSTREAM;
    out->dial = t_dial;
    out->dial_ctx = (void *)(intptr_t)mode;
    out->dial_msg = t_dial_msg;
    out->dial_cancel = t_dial_cancel;
    char target[64] = "app:8080";
    const struct op_h1_header *h;
    if ((h = op_h1_find_header(req->headers, req->nheaders, "X-Target")))
        snprintf(target, sizeof(target), "%.*s", (int)h->value.len, h->value.p);
    out->preamble_len = (size_t)snprintf(out->preamble, sizeof(out->preamble), "OPEN %s\n", target);
    out->preamble_ok = !op_h1_find_header(req->headers, req->nheaders, "X-No-Ok");
    if ((h = op_h1_find_header(req->headers, req->nheaders, "X-Key")))
        out->up_key = strtoull(h->value.p, NULL, 10);
    if ((h = op_h1_find_header(req->headers, req->nheaders, "X-Strip")))
        out->strip_prefix = strtoul(h->value.p, NULL, 10);
    out->err_page_ctx = "unavailable"; /* (err_page's, with X-Page) */
    if (op_h1_find_header(req->headers, req->nheaders, "X-Page")) out->err_page = t_err_page;
    if (op_h1_find_header(req->headers, req->nheaders, "X-Drop")) out->drop_cookies = drop_list;
    if (op_h1_find_header(req->headers, req->nheaders, "X-No-Cors")) out->resp_flags = OP_ROUTE_RESP_NO_CORS;
    snprintf(out->req_extra, sizeof(out->req_extra), "X-Visitor: v1\r\n");
    snprintf(out->resp_extra, sizeof(out->resp_extra), "X-Route: dial\r\n");
}

/* ---- the client ---------------------------------------------------------------------------------- */

static uint16_t relay_port;

struct resp {
    int status;
    char head[8192];
    char body[8192];
    size_t body_len;
};

/* Reads one response (Content-Length framed). false on a close or timeout before it is whole. */
static bool read_resp(int fd, struct resp *r)
{
    static char buf[16384];
    size_t len = 0;
    char *end;
    memset(r, 0, sizeof(*r));
    buf[0] = '\0';
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        if (len >= sizeof(buf) - 1) return false;
        ssize_t k = t_recv_retry(fd, buf + len, 1); /* byte by byte: nothing of what follows is taken */
        if (k <= 0) return false;
        len += (size_t)k;
        buf[len] = '\0';
    }
    snprintf(r->head, sizeof(r->head), "%s", buf);
    r->status = atoi(buf + 9);
    char v[32];
    size_t want = hdr(r->head, "Content-Length", v, sizeof(v)) ? strtoul(v, NULL, 10) : 0;
    if (want >= sizeof(r->body)) return false;
    while (r->body_len < want) {
        ssize_t k = t_recv_retry(fd, r->body + r->body_len, want - r->body_len);
        if (k <= 0) return false;
        r->body_len += (size_t)k;
    }
    r->body[r->body_len] = '\0';
    return true;
}

static bool closed_after(int fd)
{
    char b;
    return t_recv_retry(fd, &b, 1) == 0;
}

static bool exchange(int fd, const char *req, struct resp *r)
{
    return t_send_all(fd, req, strlen(req)) && read_resp(fd, r);
}

/* ---- cases --------------------------------------------------------------------------------------- */

static void test_ok_and_reuse(void)
{
    printf("OK then GET; reuse for the same key, new legs for another key and for none\n");
    struct resp r;
    int fd = t_dial_loopback(relay_port, true);
    atomic_store(&opens, 0);
    CHECK(exchange(fd, "GET /sync/a HTTP/1.1\r\nHost: h\r\nX-Key: 7\r\n\r\n", &r), "first response");
    CHECK(r.status == 200 && strcmp(r.body, "GET /sync/a n=0 sum=0") == 0, "first: %d %s", r.status, r.body);
    char v[128];
    CHECK(hdr(r.head, "X-Route", v, sizeof(v)) && strcmp(v, "dial") == 0, "resp_extra added");
    CHECK(hdr(r.head, "Access-Control-Allow-Origin", v, sizeof(v)), "CORS kept without NO_CORS");
    pthread_mutex_lock(&agent_mu);
    CHECK(strcmp(last_open, "OPEN app:8080") == 0, "preamble: %s", last_open);
    CHECK(hdr(last_head, "X-Visitor", v, sizeof(v)) && strcmp(v, "v1") == 0, "req_extra added");
    CHECK(hdr(last_head, "X-Forwarded-Host", v, sizeof(v)), "X-Forwarded-* as usual");
    pthread_mutex_unlock(&agent_mu);
    CHECK(exchange(fd, "GET /sync/b HTTP/1.1\r\nHost: h\r\nX-Key: 7\r\n\r\n", &r) && r.status == 200 &&
              strcmp(r.body, "GET /sync/b n=0 sum=0") == 0,
          "second: %d %s", r.status, r.body);
    CHECK(atomic_load(&opens) == 1, "one OPEN for two requests with the same key (%d)", atomic_load(&opens));
    CHECK(exchange(fd, "GET /sync/c HTTP/1.1\r\nHost: h\r\nX-Key: 8\r\n\r\n", &r) && r.status == 200,
          "another key");
    CHECK(atomic_load(&opens) == 2, "a new leg for another key (%d)", atomic_load(&opens));
    CHECK(exchange(fd, "GET /sync/d HTTP/1.1\r\nHost: h\r\n\r\n", &r) && r.status == 200, "no key");
    CHECK(exchange(fd, "GET /sync/e HTTP/1.1\r\nHost: h\r\n\r\n", &r) && r.status == 200, "no key again");
    CHECK(atomic_load(&opens) == 4, "no key: never reused (%d)", atomic_load(&opens));
    CHECK(exchange(fd, "GET /msg/f HTTP/1.1\r\nHost: h\r\nX-Key: 8\r\n\r\n", &r) && r.status == 200 &&
              strcmp(r.body, "GET /msg/f n=0 sum=0") == 0,
          "a dial through a message: %d %s", r.status, r.body);
    close(fd);
    /* Without preamble_ok the head follows the preamble at once, and the leg answers in HTTP. */
    fd = t_dial_loopback(relay_port, true);
    atomic_store(&early_bytes, 0);
    CHECK(exchange(fd, "GET /sync/noack HTTP/1.1\r\nHost: h\r\nX-No-Ok: 1\r\nX-Target: noack\r\n\r\n", &r) &&
              r.status == 200 && strcmp(r.body, "GET /sync/noack n=0 sum=0") == 0,
          "no preamble_ok: %d %s", r.status, r.body);
    close(fd);
    CHECK(atomic_load(&early_bytes) == 1, "without preamble_ok the head is sent with the preamble");
    atomic_store(&early_bytes, 0);
}

static void test_address_routes(void)
{
    struct resp r;
    printf("dial and address routes on one connection never share a leg; an address route with a preamble\n");
    int fd = t_dial_loopback(relay_port, true);
    atomic_store(&opens, 0);
    CHECK(exchange(fd, "GET /sync/a HTTP/1.1\r\nHost: h\r\nX-Key: 9\r\n\r\n", &r) && r.status == 200, "dial");
    CHECK(exchange(fd, "GET /addr/b HTTP/1.1\r\nHost: h\r\n\r\n", &r) && r.status == 200 &&
              strcmp(r.body, "GET /addr/b n=0 sum=0") == 0,
          "address route after a dial route: %d %s", r.status, r.body);
    CHECK(exchange(fd, "GET /addr/c HTTP/1.1\r\nHost: h\r\n\r\n", &r) && r.status == 200, "address again");
    CHECK(exchange(fd, "GET /sync/d HTTP/1.1\r\nHost: h\r\nX-Key: 9\r\n\r\n", &r) && r.status == 200 &&
              strcmp(r.body, "GET /sync/d n=0 sum=0") == 0,
          "dial again: %s", r.body);
    CHECK(atomic_load(&opens) == 2, "the dialled leg was not kept across the address route (%d)",
          atomic_load(&opens));
    CHECK(exchange(fd, "POST /apre/e HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody", &r) &&
              r.status == 200 && strstr(r.body, "POST /apre/e n=4"),
          "address route with a preamble: %d %s", r.status, r.body);
    CHECK(exchange(fd, "GET /apre/f HTTP/1.1\r\nHost: h\r\n\r\n", &r) && r.status == 200, "reused");
    CHECK(atomic_load(&opens) == 3, "one OPEN for two requests to the same address (%d)",
          atomic_load(&opens));
    pthread_mutex_lock(&agent_mu);
    CHECK(strcmp(last_open, "OPEN tcp:1") == 0, "address preamble: %s", last_open);
    pthread_mutex_unlock(&agent_mu);
    close(fd);
}

static void test_failures(void)
{
    struct resp r;
    printf("ERR, a close, a long line: 502 and close\n");
    int fd = t_dial_loopback(relay_port, true);
    CHECK(exchange(fd, "GET /sync/x HTTP/1.1\r\nHost: h\r\nX-Target: refuse\r\n\r\n", &r), "ERR response");
    CHECK(r.status == 502 && strstr(r.body, "The agent could not connect: connection \\\"refused\\\"") &&
              strstr(r.head, "application/json"),
          "ERR: %d %s", r.status, r.body);
    CHECK(closed_after(fd), "closed after ERR");
    close(fd);
    fd = t_dial_loopback(relay_port, true); /* err_page set: its page instead of the JSON */
    CHECK(exchange(fd, "GET /sync/x HTTP/1.1\r\nHost: h\r\nX-Target: refuse\r\nX-Page: 1\r\n\r\n", &r) &&
              r.status == 502 && strstr(r.head, "Content-Type: text/html") &&
              strcmp(r.body, "<title>unavailable</title><p>502 The agent could not connect: connection "
                             "\"refused\"</p>") == 0,
          "ERR with err_page: %d %s", r.status, r.body);
    CHECK(closed_after(fd), "closed after ERR with err_page");
    close(fd);
    fd = t_dial_loopback(relay_port, true);
    CHECK(exchange(fd, "GET /sync/x HTTP/1.1\r\nHost: h\r\nX-Target: eof\r\nX-Page: 1\r\n\r\n", &r) &&
              r.status == 502 && strstr(r.body, "<p>502 The agent closed the connection without answering."),
          "EOF before the answer (err_page): %d %s", r.status, r.body);
    CHECK(closed_after(fd), "closed after EOF");
    close(fd);
    fd = t_dial_loopback(relay_port, true);
    CHECK(exchange(fd, "GET /sync/x HTTP/1.1\r\nHost: h\r\nX-Target: long\r\n\r\n", &r) && r.status == 502 &&
              strstr(r.body, "too long"),
          "long answer: %d %s", r.status, r.body);
    close(fd);
    fd = t_dial_loopback(relay_port, true);
    CHECK(exchange(fd, "GET /sync/x HTTP/1.1\r\nHost: h\r\nX-Target: silent\r\n\r\n", &r) &&
              r.status == 504 && strstr(r.body, "preamble"),
          "no answer to the preamble: %d %s", r.status, r.body);
    close(fd);
    printf("dialers that fail: by message, inside dial(), < 0, never\n");
    fd = t_dial_loopback(relay_port, true);
    CHECK(exchange(fd, "GET /msgfail HTTP/1.1\r\nHost: h\r\n\r\n", &r) && r.status == 503 &&
              strcmp(r.body, "<p>agent offline</p>") == 0 && strstr(r.head, "Content-Type: text/html"),
          "op_http_dial_failed from dial_msg: %d %s", r.status, r.body);
    CHECK(closed_after(fd), "closed after a dial failure");
    close(fd);
    fd = t_dial_loopback(relay_port, true);
    CHECK(exchange(fd, "GET /inside HTTP/1.1\r\nHost: h\r\n\r\n", &r) && r.status == 404 &&
              strcmp(r.body, "no such agent") == 0,
          "op_http_dial_failed inside dial(): %d %s", r.status, r.body);
    close(fd);
    fd = t_dial_loopback(relay_port, true);
    CHECK(exchange(fd, "GET /neg HTTP/1.1\r\nHost: h\r\n\r\n", &r) && r.status == 502, "dial < 0: %d",
          r.status);
    close(fd);
    atomic_store(&cancels, 0);
    fd = t_dial_loopback(relay_port, true);
    CHECK(exchange(fd, "GET /never HTTP/1.1\r\nHost: h\r\n\r\n", &r) && r.status == 504,
          "no dial result: %d after the connect timeout", r.status);
    close(fd);
    CHECK(t_wait_int(&cancels, 1, 3000), "dial_cancel called once (%d)", atomic_load(&cancels));
    /* A client that goes away while its dial waits: the dialer hears of it too. */
    fd = t_dial_loopback(relay_port, true);
    CHECK(t_send_all(fd, "GET /never HTTP/1.1\r\nHost: h\r\n\r\n", 33), "send");
    usleep(50000);
    close(fd);
    CHECK(t_wait_int(&cancels, 2, 3000), "dial_cancel on a close (%d)", atomic_load(&cancels));
}

static void test_rewriting(void)
{
    struct resp r;
    char v[256];
    printf("strip_prefix, cookies, NO_CORS\n");
    int fd = t_dial_loopback(relay_port, true);
    const char *base = "/sync/@u/ws/apps/code/";
    char req[1024];
    snprintf(req, sizeof(req),
             "GET %sstatic/x.js?q=1 HTTP/1.1\r\nHost: h\r\nX-Strip: %zu\r\nX-Drop: 1\r\nX-No-Cors: 1\r\n"
             "Cookie: a=1; coder_session_token=secret; coder_subdomain_app_session_token_12=s; b=2\r\n"
             "Cookie: coder_session_token=again\r\n\r\n",
             base, strlen(base) - 1);
    CHECK(exchange(fd, req, &r) && r.status == 200, "rewritten request: %d", r.status);
    CHECK(strcmp(r.body, "GET /static/x.js?q=1 n=0 sum=0") == 0, "prefix stripped, query kept: %s", r.body);
    pthread_mutex_lock(&agent_mu);
    CHECK(hdr(last_head, "Cookie", v, sizeof(v)) && strcmp(v, "a=1; b=2") == 0, "cookies dropped: %s", v);
    CHECK(!strstr(last_head, "secret") && !strstr(last_head, "again"), "no dropped cookie reaches the leg");
    pthread_mutex_unlock(&agent_mu);
    CHECK(!hdr(r.head, "Access-Control-Allow-Origin", v, sizeof(v)) &&
              !hdr(r.head, "Access-Control-Allow-Credentials", v, sizeof(v)),
          "NO_CORS drops the CORS headers");
    CHECK(hdr(r.head, "Vary", v, sizeof(v)) && strcmp(v, "Accept-Encoding") == 0, "Vary without Origin: %s",
          v);
    CHECK(hdr(r.head, "X-Route", v, sizeof(v)), "resp_extra with NO_CORS");
    close(fd);
}

static void test_bodies(void)
{
    struct resp r;
    printf("POST bodies held until OK, then forwarded\n");
    int fd = t_dial_loopback(relay_port, true);
    size_t n = 200000;
    char *body = malloc(n);
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        body[i] = (char)(i * 31 + 7);
        sum += (unsigned char)body[i];
    }
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "POST /sync/up HTTP/1.1\r\nHost: h\r\nX-Key: 3\r\nContent-Length: %zu\r\n\r\n", n);
    /* Head and body in one go: the first bytes of the body arrive with the head and wait for OK. */
    char *all = malloc((size_t)hl + n);
    memcpy(all, head, (size_t)hl);
    memcpy(all + hl, body, n);
    CHECK(t_send_all(fd, all, (size_t)hl + n) && read_resp(fd, &r), "Content-Length POST");
    char want[128];
    snprintf(want, sizeof(want), "POST /sync/up n=%zu sum=%u", n, sum);
    CHECK(r.status == 200 && strcmp(r.body, want) == 0, "Content-Length body: %d %s (want %s)", r.status,
          r.body, want);
    free(all);
    /* Chunked, on a new leg (another key). */
    static const char chunked[] =
        "POST /sync/chunks HTTP/1.1\r\nHost: h\r\nX-Key: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    unsigned csum = 0;
    for (const char *p = "hello world"; *p; p++)
        csum += (unsigned char)*p;
    snprintf(want, sizeof(want), "POST /sync/chunks n=11 sum=%u", csum);
    CHECK(exchange(fd, chunked, &r) && r.status == 200 && strcmp(r.body, want) == 0, "chunked body: %d %s",
          r.status, r.body);
    /* And a GET pipelined behind a POST on a fresh leg. */
    static const char pipelined[] =
        "POST /sync/p1 HTTP/1.1\r\nHost: h\r\nX-Key: 5\r\nContent-Length: 3\r\n\r\nabc"
        "GET /sync/p2 HTTP/1.1\r\nHost: h\r\nX-Key: 5\r\n\r\n";
    atomic_store(&opens, 0);
    CHECK(t_send_all(fd, pipelined, sizeof(pipelined) - 1), "send pipelined");
    CHECK(read_resp(fd, &r) && r.status == 200 && strstr(r.body, "POST /sync/p1 n=3"), "pipelined 1: %s",
          r.body);
    CHECK(read_resp(fd, &r) && r.status == 200 && strstr(r.body, "GET /sync/p2 n=0"), "pipelined 2: %s",
          r.body);
    CHECK(atomic_load(&opens) == 1, "pipelined pair on one leg (%d)", atomic_load(&opens));
    close(fd);
    free(body);
}

static void test_upgrade(void)
{
    struct resp r;
    printf("a WebSocket upgrade through a dial route\n");
    int fd = t_dial_loopback(relay_port, true);
    static const char ws[] =
        "GET /sync/ws HTTP/1.1\r\nHost: h\r\nX-Strip: 5\r\nX-No-Cors: 1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\nearly";
    CHECK(t_send_all(fd, ws, sizeof(ws) - 1) && read_resp(fd, &r), "101 response");
    char v[64];
    CHECK(r.status == 101 && hdr(r.head, "Upgrade", v, sizeof(v)) && strcasecmp(v, "websocket") == 0,
          "101 with Upgrade: %d", r.status);
    char buf[16] = {0};
    size_t got = 0;
    while (got < 5) {
        ssize_t k = t_recv_retry(fd, buf + got, 5 - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    CHECK(got == 5 && memcmp(buf, "early", 5) == 0, "bytes after the upgrade request reach the tunnel");
    CHECK(t_send_all(fd, "hello", 5), "send in tunnel");
    got = 0;
    while (got < 5) {
        ssize_t k = t_recv_retry(fd, buf + got, 5 - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    CHECK(got == 5 && memcmp(buf, "hello", 5) == 0, "echo through the tunnel");
    close(fd);
}

int main(void)
{
    if (!tcp_up_start(&up_plain) || !tcp_up_start(&up_pre)) return 1;
    static struct op_http_conf hc;
    op_http_conf_init(&hc);
    hc.route = t_route;
    static struct op_listener_conf lc;
    char err[256];
    int rc = -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        int probe = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof(a);
        if (bind(probe, (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(probe, (struct sockaddr *)&a, &al) != 0)
            return 1;
        relay_port = ntohs(a.sin_port);
        close(probe);
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", relay_port);
        memset(&lc, 0, sizeof(lc));
        snprintf(lc.name, sizeof(lc.name), "%s", addr);
        if (op_parse_hostport(addr, &lc.addr, &lc.addrlen, err, sizeof(err)) != 0) return 1;
        lc.proto = &op_proto_http;
        lc.proto_ctx = &hc;
        struct op_engine_conf ec = {.workers = 1,
                                    .no_pin = true,
                                    .listeners = &lc,
                                    .nlisteners = 1,
                                    .max_conns = 64,
                                    .to = {.connect_ms = CONNECT_MS, .idle_ms = 3000, .drain_ms = 300}};
        rc = op_engine_start(&ec, &g_engine, err, sizeof(err));
        if (rc != -EADDRINUSE) break;
    }
    if (rc == -ENOSYS || rc == -EPERM) {
        printf("SKIP: io_uring unavailable: %s\n", err);
        return 77;
    }
    CHECK(rc == 0, "engine start: %s", err);
    if (rc) return check_report("http dial routes");
    test_ok_and_reuse();
    test_address_routes();
    test_failures();
    test_rewriting();
    test_bodies();
    test_upgrade();
    CHECK(atomic_load(&early_bytes) == 0, "a request byte reached a leg before its OK (%d)",
          atomic_load(&early_bytes));
    op_engine_drain(g_engine);
    for (int i = 0; i < 400 && !op_engine_done(g_engine); i++)
        usleep(10000);
    op_engine_free(g_engine);
    return check_report("http dial routes");
}
