/*
 * Unit test for the HTTP protocol (http/proxy*.c) against a real engine on loopback sockets: a test upstream
 * runs in threads of this process, the engine runs one worker, and a blocking client speaks raw HTTP/1.1 to
 * it. Covers interim responses (1xx, 100-continue towards an upstream and towards an application handler),
 * pipelining (a few requests, thousands through an upstream and thousands of built-in responses, answered in
 * order at a constant stack depth), upgrades (WebSocket accepted and refused, h2c and unknown tokens
 * stripped, a 101 that does not match the request), response framing (Content-Length, chunked, until close,
 * HEAD, 204), requests an application handler grants (routed again: answered, upstream with rewriting, a
 * WebSocket; a body or a second handler round is a 500), and the body idle timeout (a slow upload that makes
 * steady progress outlives the idle timeout many times over). An engine that does not start is a failure; the
 * test skips (77) only when io_uring is unavailable (op_engine_start: -ENOSYS, -EPERM).
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
#include <time.h>
#include <unistd.h>

#include "core/engine.h"
#include "http/proxy.h"
#include "tests/unit/check.h"
#include "tests/unit/net_test_util.h"

#define IDLE_MS 400 /* the engine's idle timeout in this test: short, so a stall is seen quickly */

/* ---- helpers ------------------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *find_hdr(const char *head, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        const char *line = l + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            *vlen = (size_t)(strstr(v, "\r\n") - v);
            return v;
        }
    }
    return NULL;
}

/* ---- the test upstream: one thread per connection, keep-alive, answers by path ------------------- */

static struct {
    int lfd;
    uint16_t port;
    atomic_int requests;
    atomic_int conns;
    pthread_mutex_t mu;
    char last_upgrade[128];    /* Upgrade header of the last request ("-" if none) */
    char last_connection[128]; /* Connection header of the last request ("-" if none) */
} up;

static void record(const char *head)
{
    size_t n;
    const char *v;
    pthread_mutex_lock(&up.mu);
    v = find_hdr(head, "Upgrade", &n);
    snprintf(up.last_upgrade, sizeof(up.last_upgrade), "%.*s", v ? (int)n : 1, v ? v : "-");
    v = find_hdr(head, "Connection", &n);
    snprintf(up.last_connection, sizeof(up.last_connection), "%.*s", v ? (int)n : 1, v ? v : "-");
    pthread_mutex_unlock(&up.mu);
}

static void upstream_echo_raw(int fd, char *buf, size_t have)
{
    if (have && !t_send_all(fd, buf, have)) return;
    for (;;) {
        ssize_t k = recv(fd, buf, 65536, 0);
        if (k <= 0 || !t_send_all(fd, buf, (size_t)k)) return;
    }
}

static void *upstream_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    atomic_fetch_add(&up.conns, 1);
    for (;;) {
        char *end;
        buf[len] = '\0';
        while (!(end = strstr(buf, "\r\n\r\n"))) {
            ssize_t k = recv(fd, buf + len, cap - len, 0);
            if (k <= 0) goto out;
            len += (size_t)k;
            buf[len] = '\0';
        }
        size_t head_len = (size_t)(end - buf) + 4;
        char head[16384];
        snprintf(head, sizeof(head), "%.*s", (int)head_len, buf);
        char method[16], path[2048];
        if (sscanf(head, "%15s %2047s", method, path) != 2) goto out;
        atomic_fetch_add(&up.requests, 1);
        record(head);
        size_t vn;
        const char *v = find_hdr(head, "Expect", &vn);
        if (v && vn == 12 && strncasecmp(v, "100-continue", 12) == 0 &&
            !t_send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25))
            goto out;
        v = find_hdr(head, "Content-Length", &vn);
        size_t body_len = v ? strtoul(v, NULL, 10) : 0;
        while (len < head_len + body_len) {
            ssize_t k = recv(fd, buf + len, cap - len, 0);
            if (k <= 0) goto out;
            len += (size_t)k;
        }
        memmove(buf, buf + head_len + body_len, len - head_len - body_len);
        len -= head_len + body_len;
        char out[4096];
        int on;
        if (strcmp(path, "/early") == 0) {
            on = snprintf(out, sizeof(out),
                          "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 "
                          "OK\r\nContent-Length: 8\r\n\r\nearly-ok");
        } else if (strcmp(path, "/chunked") == 0) {
            on = snprintf(out, sizeof(out),
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n "
                          "world\r\n0\r\n\r\n");
        } else if (strcmp(path, "/until-close") == 0) {
            t_send_all(fd, "HTTP/1.1 200 OK\r\n\r\nuntil-close", 30);
            goto out;
        } else if (strcmp(path, "/204") == 0) {
            on = snprintf(out, sizeof(out), "HTTP/1.1 204 No Content\r\n\r\n");
        } else if (strcmp(path, "/ws") == 0 || strcmp(path, "/ws-mismatch") == 0 ||
                   strcmp(path, "/101-h2c") == 0) {
            const char *tok = strcmp(path, "/ws") == 0 ? "websocket" : "h2c";
            on = snprintf(out, sizeof(out),
                          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n",
                          tok);
            if (t_send_all(fd, out, (size_t)on)) upstream_echo_raw(fd, buf, len);
            goto out;
        } else if (strcmp(path, "/ws-refuse") == 0) {
            on = snprintf(out, sizeof(out), "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno ws!");
        } else {
            char body[2200];
            int bn = snprintf(body, sizeof(body), "%s %s n=%zu", method, path, body_len);
            on = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", bn,
                          strcmp(method, "HEAD") == 0 ? "" : body);
        }
        if (!t_send_all(fd, out, (size_t)on)) goto out;
    }
out:
    free(buf);
    close(fd);
    return NULL;
}

static void *upstream_accept(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(up.lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            return NULL;
        }
        pthread_t t;
        pthread_create(&t, NULL, upstream_conn, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

/* ---- the relay: routes, application handler, control thread -------------------------------------- */

static struct op_tcp_route up_route;
static atomic_uintptr_t route_sp_min, route_sp_max; /* stack addresses seen by the route function */

/* /grant/...: the application handler grants it first; granted, /grant/up/X goes to the upstream as /X,
 * /grant/loop asks for the handler again, anything else is answered with the grant. */
static void grant_route(const struct op_h1_request *req, struct op_route *out)
{
    static _Thread_local char body[256];
    bool loop = req->target.len >= 11 && memcmp(req->target.p, "/grant/loop", 11) == 0;
    if (!out->granted || loop) {
        out->kind = OP_ROUTE_APP;
    } else if (req->target.len >= 10 && memcmp(req->target.p, "/grant/up/", 10) == 0) {
        out->kind = OP_ROUTE_UPSTREAM;
        out->addr = (const struct sockaddr *)&up_route.addr;
        out->addrlen = up_route.addrlen;
        out->strip_prefix = 9;
    } else {
        out->kind = OP_ROUTE_RESPOND;
        out->status = 200;
        out->content_type = "text/plain";
        out->body_len = (size_t)snprintf(body, sizeof(body), "granted %s", out->granted);
        out->body = body;
    }
}

static void test_route(void *ctx, struct op_conn *c, const struct op_h1_request *req, struct op_route *out)
{
    (void)ctx;
    (void)c;
    volatile char here;
    uintptr_t sp = (uintptr_t)&here;
    if (!atomic_load(&route_sp_min) || sp < atomic_load(&route_sp_min)) atomic_store(&route_sp_min, sp);
    if (sp > atomic_load(&route_sp_max)) atomic_store(&route_sp_max, sp);
    if (req->target.len >= 3 && memcmp(req->target.p, "/b/", 3) == 0) {
        out->kind = OP_ROUTE_RESPOND;
        out->status = 200;
        out->content_type = "text/plain";
        out->body = req->target.p; /* copied before the caller returns */
        out->body_len = req->target.len;
    } else if (req->target.len >= 7 && memcmp(req->target.p, "/grant/", 7) == 0) {
        grant_route(req, out);
    } else if (req->target.len >= 4 && memcmp(req->target.p, "/app", 4) == 0) {
        out->kind = OP_ROUTE_APP;
    } else {
        out->kind = OP_ROUTE_UPSTREAM;
        out->addr = (const struct sockaddr *)&up_route.addr;
        out->addrlen = up_route.addrlen;
    }
}

/* A deferred answer, finished by another thread after ms milliseconds. */
struct later {
    struct op_app_defer *d;
    int ms;
};
static atomic_int later_done;

static void *finish_later(void *arg)
{
    struct later *l = arg;
    usleep((useconds_t)l->ms * 1000);
    struct op_app_response *resp = op_app_defer_resp(l->d);
    const struct op_app_request *req = op_app_defer_req(l->d);
    char body[256];
    snprintf(body, sizeof(body), "later %.*s body=%.*s", (int)req->path.len, req->path.p, (int)req->body.len,
             req->body.p);
    op_app_respond(resp, 200, body);
    resp->content_type = "text/plain";
    op_app_finish(l->d);
    free(l);
    atomic_fetch_add(&later_done, 1);
    return NULL;
}

static void test_app(void *ctx, const struct op_app_request *req, struct op_app_response *resp)
{
    (void)ctx;
    char body[256];
    if (req->path.len >= 11 && memcmp(req->path.p, "/app/defer/", 11) == 0) {
        struct later *l = calloc(1, sizeof(*l));
        l->ms = atoi(req->path.p + 11);
        l->d = op_app_defer(resp);
        pthread_t t;
        pthread_create(&t, NULL, finish_later, l);
        pthread_detach(t);
        return;
    }
    if (req->path.len >= 7 && memcmp(req->path.p, "/grant/", 7) == 0 &&
        !(req->path.len == 9 && memcmp(req->path.p, "/grant/no", 9) == 0)) {
        snprintf(resp->grant, sizeof(resp->grant), "ok %.*s", (int)req->path.len, req->path.p);
        return;
    }
    snprintf(body, sizeof(body), "app %.*s body=%.*s", (int)req->path.len, req->path.p, (int)req->body.len,
             req->body.p);
    op_app_respond(resp, 200, body);
    resp->content_type = "text/plain";
}

static struct op_app_queue appq;
static atomic_bool ctl_stop;

static void *ctl_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&ctl_stop)) {
        struct pollfd p = {.fd = appq.efd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) op_app_queue_run(&appq);
    }
    return NULL;
}

static uint16_t relay_port;

static int start_rc;

/* Starts the relay on a free port: the port is probed first, so another process may take it before the
 * engine binds it; then the next one is tried. */
static struct op_engine *start_relay(struct op_listener_conf *lc, struct op_http_conf *hc)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char err[256];
        uint16_t port;
        int probe = t_listen_loopback(&port);
        if (probe < 0) return NULL;
        close(probe);
        char name[32];
        snprintf(name, sizeof(name), "127.0.0.1:%u", port);
        memset(lc, 0, sizeof(*lc));
        snprintf(lc->name, sizeof(lc->name), "%s", name);
        if (op_parse_hostport(name, &lc->addr, &lc->addrlen, err, sizeof(err)) != 0) return NULL;
        lc->proto = &op_proto_http;
        lc->proto_ctx = hc;
        struct op_engine_conf ec = {.workers = 1,
                                    .no_pin = true,
                                    .listeners = lc,
                                    .nlisteners = 1,
                                    .max_conns = 256,
                                    .to = {.idle_ms = IDLE_MS, .drain_ms = 500}};
        struct op_engine *e = NULL;
        start_rc = op_engine_start(&ec, &e, err, sizeof(err));
        if (start_rc == 0) {
            relay_port = port;
            return e;
        }
        printf("engine start: %s (%d)\n", err, start_rc);
        if (start_rc != -EADDRINUSE) return NULL;
    }
    return NULL;
}

/* ---- the client ---------------------------------------------------------------------------------- */

struct cli {
    int fd;
    size_t len;
    char buf[1 << 18];
};

static struct cli *cli_open_rcvbuf(int rcvbuf)
{
    struct cli *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(relay_port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        printf("connect: %s\n", strerror(errno));
        c->fd = -1;
    }
    return c;
}

static struct cli *cli_open(void)
{
    return cli_open_rcvbuf(0);
}

static void cli_close(struct cli *c)
{
    if (c->fd >= 0) close(c->fd);
    free(c);
}

static bool cli_send(struct cli *c, const char *s)
{
    return t_send_all(c->fd, s, strlen(s));
}

/* Reads more bytes into c->buf; 0 on EOF, -1 on timeout/error. */
static int cli_fill(struct cli *c, int timeout_ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (c->len == sizeof(c->buf) || poll(&p, 1, timeout_ms) <= 0) return -1;
    ssize_t k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (k < 0) return -1;
    c->len += (size_t)k;
    return k > 0 ? 1 : 0;
}

static void cli_consume(struct cli *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

struct resp {
    int status;
    char head[4096];
    char body[4096];
    size_t body_len;
    bool closed; /* the body ended with the connection */
};

/* Reads one response (an interim 1xx counts as one). Returns false on timeout or a malformed reply. */
static bool cli_response(struct cli *c, bool head_req, struct resp *r)
{
    memset(r, 0, sizeof(*r));
    char *end;
    for (;;) {
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end) break;
        if (cli_fill(c, 5000) <= 0) return false;
    }
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof(r->head) || sscanf(c->buf, "HTTP/1.%*d %d", &r->status) != 1) return false;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    cli_consume(c, hl);
    size_t vn;
    const char *te = find_hdr(r->head, "Transfer-Encoding", &vn);
    const char *cl = find_hdr(r->head, "Content-Length", &vn);
    if ((r->status >= 100 && r->status < 200) || r->status == 204 || r->status == 304 || head_req)
        return true;
    if (te) { /* chunked: decode */
        for (;;) {
            char *eol;
            while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
                if (cli_fill(c, 5000) <= 0) return false;
            size_t sz = strtoul(c->buf, NULL, 16);
            size_t need = (size_t)(eol - c->buf) + 2 + sz + 2;
            while (c->len < need)
                if (cli_fill(c, 5000) <= 0) return false;
            if (r->body_len + sz < sizeof(r->body)) memcpy(r->body + r->body_len, eol + 2, sz);
            r->body_len += sz;
            cli_consume(c, need);
            if (sz == 0) return true;
        }
    }
    if (cl) {
        size_t n = strtoul(cl, NULL, 10);
        while (c->len < n)
            if (cli_fill(c, 5000) <= 0) return false;
        memcpy(r->body, c->buf, OP_MIN(n, sizeof(r->body) - 1));
        r->body_len = n;
        cli_consume(c, n);
        return true;
    }
    for (;;) { /* until close */
        int k = cli_fill(c, 5000);
        if (k < 0) return false;
        if (k == 0) break;
    }
    r->body_len = OP_MIN(c->len, sizeof(r->body) - 1);
    memcpy(r->body, c->buf, r->body_len);
    cli_consume(c, c->len);
    r->closed = true;
    return true;
}

/* True once the relay closed the connection (EOF within timeout_ms, nothing else received). */
static bool cli_sees_close(struct cli *c, int timeout_ms)
{
    size_t before = c->len;
    int k = cli_fill(c, timeout_ms);
    return k == 0 && c->len == before;
}

static bool body_is(const struct resp *r, const char *want)
{
    return r->body_len == strlen(want) && memcmp(r->body, want, r->body_len) == 0;
}

static void get_last(char *upg, char *conn)
{
    pthread_mutex_lock(&up.mu);
    strcpy(upg, up.last_upgrade);
    strcpy(conn, up.last_connection);
    pthread_mutex_unlock(&up.mu);
}

/* ---- tests --------------------------------------------------------------------------------------- */

static void test_basic_and_framing(void)
{
    printf("responses framed by length, chunked, until close, HEAD and 204 reach the client intact\n");
    struct cli *c = cli_open();
    struct resp r;
    CHECK(cli_send(c, "GET /plain HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "GET /plain n=0"), "plain: %d '%s'",
          r.status, r.body);
    CHECK(cli_send(c, "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "hello world"), "chunked: %d '%s'",
          r.status, r.body);
    CHECK(cli_send(c, "HEAD /head HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, true, &r) && r.status == 200 && strstr(r.head, "Content-Length: 14"), "HEAD: %s",
          r.head);
    CHECK(cli_send(c, "GET /204 HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 204, "204: %d", r.status);
    CHECK(cli_send(c, "GET /until-close HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 200 && r.closed && body_is(&r, "until-close"),
          "until close: %d closed=%d '%s'", r.status, r.closed, r.body);
    cli_close(c);
}

static void test_interim(void)
{
    printf("1xx from the upstream is passed on before the final response\n");
    struct cli *c = cli_open();
    struct resp r;
    CHECK(cli_send(c, "GET /early HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 103 && strstr(r.head, "Link: </a.css>"), "103: %d %s",
          r.status, r.head);
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "early-ok"), "after 103: %d '%s'",
          r.status, r.body);

    printf("100-continue: the upstream's 100 reaches the client, then the body goes up\n");
    CHECK(cli_send(c, "POST /cont HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"),
          "send");
    CHECK(cli_response(c, false, &r) && r.status == 100, "100 from upstream: %d", r.status);
    CHECK(cli_send(c, "hello"), "send body");
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "POST /cont n=5"),
          "after 100: %d '%s'", r.status, r.body);

    printf("100-continue: for an application handler the relay answers 100 itself\n");
    CHECK(cli_send(c, "POST /app/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
          "send");
    CHECK(cli_response(c, false, &r) && r.status == 100, "100 from relay: %d", r.status);
    CHECK(cli_send(c, "abcd"), "send body");
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "app /app/x body=abcd"),
          "app: %d '%s'", r.status, r.body);
    cli_close(c);
}

static void test_pipelining_small(void)
{
    printf("three pipelined requests (upstream, built-in, application) answered in order\n");
    struct cli *c = cli_open();
    struct resp r;
    CHECK(cli_send(c, "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /b/two HTTP/1.1\r\nHost: a\r\n\r\nGET "
                      "/app/three HTTP/1.1\r\nHost: a\r\n\r\nGET /four HTTP/1.1\r\nHost: a\r\n\r\n"),
          "send");
    CHECK(cli_response(c, false, &r) && body_is(&r, "GET /one n=0"), "1: '%s'", r.body);
    CHECK(cli_response(c, false, &r) && body_is(&r, "/b/two"), "2: '%s'", r.body);
    CHECK(cli_response(c, false, &r) && body_is(&r, "app /app/three body="), "3: '%s'", r.body);
    CHECK(cli_response(c, false, &r) && body_is(&r, "GET /four n=0"), "4: '%s'", r.body);
    cli_close(c);
}

static void test_defer(void)
{
    printf("deferred application answers: finished from another thread, in order, while the control thread "
           "goes on; a client gone before the answer\n");
    struct cli *c = cli_open(), *c2 = cli_open();
    struct resp r;
    int before = atomic_load(&later_done);
    CHECK(cli_send(c, "POST /app/defer/300 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyzGET /app/now "
                      "HTTP/1.1\r\nHost: a\r\n\r\n"),
          "send");
    /* Another connection's application request is answered while the first waits. */
    CHECK(cli_send(c2, "GET /app/other HTTP/1.1\r\nHost: a\r\n\r\n"), "send 2");
    CHECK(cli_response(c2, false, &r) && body_is(&r, "app /app/other body="), "other: '%s'", r.body);
    CHECK(atomic_load(&later_done) == before, "the deferred answer is not finished yet");
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "later /app/defer/300 body=xyz"),
          "deferred: %d '%s'", r.status, r.body);
    CHECK(cli_response(c, false, &r) && body_is(&r, "app /app/now body="), "after it: '%s'", r.body);
    cli_close(c);
    cli_close(c2);
    c = cli_open();
    CHECK(cli_send(c, "GET /app/defer/200 HTTP/1.1\r\nHost: a\r\n\r\n"), "send gone");
    usleep(50000);
    cli_close(c); /* the answer finds no connection: the worker frees it */
    for (int i = 0; i < 300 && atomic_load(&later_done) < before + 2; i++)
        usleep(10000);
    CHECK(atomic_load(&later_done) == before + 2, "both deferred answers finished");
    usleep(50000); /* the worker has taken the orphaned answer */
    c = cli_open();
    CHECK(cli_send(c, "GET /app/again HTTP/1.1\r\nHost: a\r\n\r\n") && cli_response(c, false, &r) &&
              body_is(&r, "app /app/again body="),
          "the relay goes on: '%s'", r.body);
    cli_close(c);
}

struct burst {
    int fd;
    char *data;
    size_t len;
    bool ok;
};

static void *burst_sender(void *arg)
{
    struct burst *b = arg;
    ssize_t k = send(b->fd, b->data, b->len, MSG_NOSIGNAL); /* one write; blocks until all is taken */
    b->ok = k == (ssize_t)b->len || (k > 0 && t_send_all(b->fd, b->data + k, b->len - (size_t)k));
    return NULL;
}

/* n pipelined GETs in one write; every one must be answered 200, in order. slow_reader: the client
 * has a small receive buffer and reads nothing for a while, so responses back up in the relay. */
static int pipeline_burst(const char *prefix, int n, bool builtin, bool slow_reader)
{
    struct cli *c = cli_open_rcvbuf(slow_reader ? 4096 : 0);
    struct burst b = {.fd = c->fd, .data = malloc((size_t)n * 64)};
    for (int i = 0; i < n; i++)
        b.len += (size_t)sprintf(b.data + b.len, "GET %s%d HTTP/1.1\r\nHost: a\r\n\r\n", prefix, i);
    pthread_t t;
    pthread_create(&t, NULL, burst_sender, &b);
    if (slow_reader) usleep(500 * 1000);
    int answered = 0;
    struct resp r;
    for (int i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof(want), builtin ? "%s%d" : "GET %s%d n=0", prefix, i);
        if (!cli_response(c, false, &r) || r.status != 200 || !body_is(&r, want)) {
            printf("  response %d: status %d body '%.*s', want '%s'\n", i, r.status, (int)r.body_len, r.body,
                   want);
            break;
        }
        answered++;
    }
    shutdown(c->fd, SHUT_RDWR);
    pthread_join(t, NULL);
    cli_close(c);
    free(b.data);
    return answered;
}

static void test_pipelining_upstream(void)
{
    static const int sizes[] = {1100, 5000};
    for (size_t k = 0; k < OP_ARRAY_LEN(sizes); k++) {
        int n = sizes[k];
        printf("%d pipelined GETs in one write through the upstream: all 200, in order\n", n);
        int before = atomic_load(&up.requests);
        int got = pipeline_burst("/p", n, false, false);
        CHECK(got == n, "%d of %d answered in order", got, n);
        CHECK(atomic_load(&up.requests) - before == n, "upstream saw %d requests, want %d",
              atomic_load(&up.requests) - before, n);
    }
}

static void test_pipelining_builtin(void)
{
    printf("5000 pipelined built-in responses in one write: all answered, in order, without recursion\n");
    atomic_store(&route_sp_min, 0);
    atomic_store(&route_sp_max, 0);
    int got = pipeline_burst("/b/", 5000, true, false);
    CHECK(got == 5000, "%d of 5000 answered in order", got);
    uintptr_t depth = atomic_load(&route_sp_max) - atomic_load(&route_sp_min);
    CHECK(depth < 8192, "the route function ran at stack depths %zu bytes apart (requests nest)",
          (size_t)depth);

    printf("20000 pipelined built-in responses to a client that does not read for 0.5 s: the relay stops "
           "reading it instead of overfilling its send queue, then answers all, in order\n");
    got = pipeline_burst("/b/", 20000, true, true);
    CHECK(got == 20000, "%d of 20000 answered in order", got);
}

static const char ws_head[] = "Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                              "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static void test_upgrade_websocket(void)
{
    struct resp r;
    char upg[128], conn[128], req[512];

    printf("WebSocket upgrade accepted: 101, then bytes flow both ways unparsed\n");
    struct cli *c = cli_open();
    snprintf(req, sizeof(req), "GET /ws HTTP/1.1\r\n%s", ws_head);
    CHECK(cli_send(c, req), "send");
    CHECK(cli_response(c, false, &r) && r.status == 101, "ws: %d", r.status);
    get_last(upg, conn);
    CHECK(strcasecmp(upg, "websocket") == 0, "upstream saw Upgrade '%s'", upg);
    CHECK(cli_send(c, "not http at all\r\n\r\n"), "send");
    while (c->len < 19 && cli_fill(c, 5000) > 0) {
    }
    CHECK(c->len == 19 && memcmp(c->buf, "not http at all\r\n\r\n", 19) == 0, "tunnel echo: %zu bytes",
          c->len);
    cli_close(c);

    printf("WebSocket upgrade refused by the upstream: no tunnel, the connection stays HTTP\n");
    c = cli_open();
    snprintf(req, sizeof(req), "GET /ws-refuse HTTP/1.1\r\n%s", ws_head);
    CHECK(cli_send(c, req), "send");
    CHECK(cli_response(c, false, &r) && r.status == 403 && body_is(&r, "no ws!"), "refused: %d", r.status);
    CHECK(cli_send(c, "GET /after-refuse HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "GET /after-refuse n=0"),
          "after a refused upgrade: %d '%s'", r.status, r.body);
    cli_close(c);
}

static void test_grant(void)
{
    printf("a request the application handler grants is routed again with the grant\n");
    struct resp r;
    char req[512];
    struct cli *c = cli_open();
    CHECK(cli_send(c, "GET /grant/x HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "granted ok /grant/x"),
          "respond: %d '%s'", r.status, r.body);
    CHECK(cli_send(c, "GET /grant/up/plain?q=1 HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "GET /plain?q=1 n=0"),
          "upstream, prefix stripped: %d '%s'", r.status, r.body);
    CHECK(cli_send(c, "GET /grant/no HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, "app /grant/no body="),
          "not granted: the handler's answer: %d '%s'", r.status, r.body);
    CHECK(cli_send(c, "GET /grant/loop HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 500, "granted, then the handler again: %d", r.status);
    cli_close(c);
    c = cli_open();
    CHECK(cli_send(c, "POST /grant/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"), "send");
    CHECK(cli_response(c, false, &r) && r.status == 500, "a granted request with a body: %d", r.status);
    cli_close(c);
    c = cli_open();
    snprintf(req, sizeof(req), "GET /grant/up/ws HTTP/1.1\r\n%s", ws_head);
    CHECK(cli_send(c, req), "send");
    CHECK(cli_response(c, false, &r) && r.status == 101, "granted WebSocket: %d", r.status);
    CHECK(cli_send(c, "raw bytes"), "send");
    while (c->len < 9 && cli_fill(c, 5000) > 0) {
    }
    CHECK(c->len == 9 && memcmp(c->buf, "raw bytes", 9) == 0, "granted tunnel echo: %zu bytes", c->len);
    cli_close(c);
}

static void test_slow_upload(void)
{
    /* 30 pieces of 1 KiB, one every 100 ms: 3 s in all, 7.5 times the idle timeout, but never idle for
     * more than a quarter of it. */
    enum { PIECES = 30, PIECE = 1024, GAP_MS = 100 };
    printf("a slow upload (1 KiB every %d ms for %d ms, idle timeout %d ms) reaches the upstream whole\n",
           GAP_MS, PIECES * GAP_MS, IDLE_MS);
    struct cli *c = cli_open();
    char req[128], piece[PIECE];
    memset(piece, 'u', sizeof(piece));
    snprintf(req, sizeof(req), "POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n",
             PIECES * PIECE);
    CHECK(cli_send(c, req), "send");
    uint64_t t0 = now_ms();
    int sent = 0;
    for (; sent < PIECES; sent++) {
        usleep(GAP_MS * 1000);
        if (!t_send_all(c->fd, piece, sizeof(piece))) break;
    }
    struct resp r;
    char want[64];
    snprintf(want, sizeof(want), "POST /slow n=%d", PIECES * PIECE);
    bool got = cli_response(c, false, &r);
    CHECK(sent == PIECES && got && r.status == 200 && body_is(&r, want),
          "slow upload: %d pieces sent, status %d '%.*s' after %llu ms", sent, r.status, (int)r.body_len,
          r.body, (unsigned long long)(now_ms() - t0));
    cli_close(c);
}

static void test_upgrade_tokens(void)
{
    struct resp r;
    char upg[128], conn[128], req[512];
    struct cli *c;
    static const char *const stripped[] = {"h2c", "foo", "websocket, h2c"};
    for (size_t i = 0; i < OP_ARRAY_LEN(stripped); i++) {
        printf("Upgrade: %s is removed: the upstream sees a plain request\n", stripped[i]);
        c = cli_open();
        snprintf(req, sizeof(req),
                 "GET /plain-%zu HTTP/1.1\r\nHost: a\r\nUpgrade: %s\r\nConnection: Upgrade, "
                 "HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
                 i, stripped[i]);
        CHECK(cli_send(c, req), "send");
        char want[64];
        snprintf(want, sizeof(want), "GET /plain-%zu n=0", i);
        CHECK(cli_response(c, false, &r) && r.status == 200 && body_is(&r, want), "%s: %d '%s'", stripped[i],
              r.status, r.body);
        get_last(upg, conn);
        CHECK(strcmp(upg, "-") == 0 && strcasestr(conn, "upgrade") == NULL,
              "%s: upstream saw Upgrade '%s' Connection '%s'", stripped[i], upg, conn);
        CHECK(cli_send(c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
        CHECK(cli_response(c, false, &r) && body_is(&r, "GET /next n=0"), "%s then: '%s'", stripped[i],
              r.body);
        cli_close(c);
    }

    printf("an h2c upgrade never becomes a tunnel, even when the upstream answers 101\n");
    c = cli_open();
    CHECK(cli_send(c, "GET /101-h2c HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"),
          "send");
    CHECK(cli_response(c, false, &r) && r.status == 502, "h2c answered 101: client got %d", r.status);
    CHECK(cli_sees_close(c, 2000), "connection not closed after the 502");
    cli_close(c);

    printf("a 101 whose Upgrade does not match the request's gets 502 and no tunnel\n");
    c = cli_open();
    snprintf(req, sizeof(req), "GET /ws-mismatch HTTP/1.1\r\n%s", ws_head);
    CHECK(cli_send(c, req), "send");
    CHECK(cli_response(c, false, &r) && r.status == 502, "mismatching 101: client got %d", r.status);
    CHECK(cli_sees_close(c, 2000), "connection not closed after the 502");
    cli_close(c);
}

static void test_body_stall(void)
{
    struct resp r;
    printf("an upload that stalls for longer than the idle timeout gets 408\n");
    struct cli *c = cli_open();
    CHECK(cli_send(c, "POST /stall HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc"), "send");
    uint64_t t0 = now_ms();
    CHECK(cli_response(c, false, &r) && r.status == 408, "stalled upload: %d", r.status);
    uint64_t took = now_ms() - t0;
    CHECK(took >= IDLE_MS - 50 && took < IDLE_MS * 4, "408 after %llu ms, idle timeout %d",
          (unsigned long long)took, IDLE_MS);
    CHECK(cli_sees_close(c, 2000), "connection not closed after the 408");
    cli_close(c);
}

int main(void)
{
    pthread_mutex_init(&up.mu, NULL);
    up.lfd = t_listen_loopback(&up.port);
    if (up.lfd < 0) {
        printf("cannot listen\n");
        return 1;
    }
    char name[32], err[128];
    snprintf(name, sizeof(name), "127.0.0.1:%u", up.port);
    if (op_parse_hostport(name, &up_route.addr, &up_route.addrlen, err, sizeof(err)) != 0) return 1;
    pthread_t ta, tc;
    pthread_create(&ta, NULL, upstream_accept, NULL);
    pthread_detach(ta);

    static struct op_listener_conf lc;
    static struct op_http_conf hc;
    op_http_conf_init(&hc);
    hc.route = test_route;
    hc.app = test_app;
    hc.app_submit = op_app_queue_submit;
    hc.app_submit_ctx = &appq;
    if (op_app_queue_init(&appq) != 0) return 1;
    struct op_engine *e = start_relay(&lc, &hc);
    if (!e) {
        if (start_rc == -ENOSYS || start_rc == -EPERM) {
            printf("SKIP: io_uring is not available here\n");
            return 77;
        }
        printf("FAIL: the engine did not start\n");
        return 1;
    }
    pthread_create(&tc, NULL, ctl_thread, NULL);

    test_basic_and_framing();
    test_interim();
    test_pipelining_small();
    test_pipelining_builtin();
    test_pipelining_upstream();
    test_upgrade_websocket();
    test_upgrade_tokens();
    test_grant();
    test_body_stall();
    test_slow_upload();
    test_defer();

    /* Shutdown with a deferred answer outstanding: it finishes after the engine is gone and is freed. */
    struct cli *late = cli_open();
    CHECK(cli_send(late, "GET /app/defer/400 HTTP/1.1\r\nHost: a\r\n\r\n"), "send late");
    usleep(100000);
    int late_before = atomic_load(&later_done);
    op_engine_drain(e);
    for (int i = 0; i < 300 && !op_engine_done(e); i++)
        usleep(10000);
    op_app_queue_stop(&appq);
    op_engine_free(e);
    atomic_store(&ctl_stop, true);
    pthread_join(tc, NULL);
    op_app_queue_close(&appq);
    for (int i = 0; i < 300 && atomic_load(&later_done) == late_before; i++)
        usleep(10000);
    CHECK(atomic_load(&later_done) == late_before + 1,
          "the deferred answer outstanding at shutdown finished");
    cli_close(late);
    return check_report("http protocol state machine on a real engine");
}
