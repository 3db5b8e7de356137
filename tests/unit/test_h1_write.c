/*
 * tests/unit/test_h1_write.c — HTTP/1.1 heads we send (http/h1_write.c): forwarded request and
 * response heads (hop-by-hop, X-Forwarded-*, names with '_'), small responses, and the head writer
 * (a 4 KiB Location fits whole or fails; no value can inject a header). Prints one line per failed
 * check; exits 1 on any failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "tests/unit/check.h"

#define S(lit) lit, sizeof(lit) - 1

static struct op_h1_request g_req; /* big (100 headers): keep off the stack */
static struct op_h1_response g_resp;

/* ---------------------------------------------------------------------------------------------------- */
/* Writers                                                                                                */

static void check_enospc(const char *name, ssize_t n, ssize_t (*fn)(char *, size_t))
{
    static char out[8192];
    for (size_t cap = 0; cap < (size_t)n; cap++)
        CHECK(fn(out, cap) == -ENOSPC, "[%s] cap %zu should give -ENOSPC", name, cap);
    CHECK(fn(out, (size_t)n) == n, "[%s] exact cap", name);
}

static ssize_t write_req_cb(char *out, size_t cap)
{
    return op_h1_write_request_head(&g_req, "10.0.0.7", "https", 0, "X-Extra: 1\r\n", out, cap);
}

static ssize_t write_resp_cb(char *out, size_t cap)
{
    return op_h1_write_response_head(&g_resp, 1, true, NULL, out, cap);
}

static ssize_t write_simple_cb(char *out, size_t cap)
{
    return op_h1_write_simple_response(404, "text/plain", "nope\n", 5, true, NULL, out, cap);
}

static void expect_out(const char *name, ssize_t n, const char *out, const char *want)
{
    size_t wl = strlen(want);
    bool ok = n == (ssize_t)wl && memcmp(out, want, wl) == 0;
    CHECK(ok, "[%s] output mismatch (n=%zd):\n--- got\n%.*s--- want\n%s", name, n, n > 0 ? (int)n : 0, out,
          want);
}

static void test_writers(void)
{
    static char out[8192];
    static const char raw[] = "POST /submit?a=1 HTTP/1.1\r\n"
                              "Host: app.example\r\n"
                              "Connection: keep-alive, X-Secret, Content-Length, X-Forwarded-For\r\n"
                              "X-Secret: s\r\n"
                              "Keep-Alive: timeout=5\r\n"
                              "Proxy-Connection: keep-alive\r\n"
                              "TE: trailers\r\n"
                              "Trailer: X-Sum\r\n"
                              "Proxy-Authorization: Basic abc\r\n"
                              "X-Forwarded-For: 6.6.6.6\r\n"
                              "x-forwarded-proto: http\r\n"
                              "X-Forwarded-Host: evil\r\n"
                              "Forwarded: for=6.6.6.6\r\n"
                              "X-Real-IP: 6.6.6.6\r\n"
                              "Upgrade: websocket\r\n"
                              "Content-Length:  3 \r\n"
                              "Cookie: a=b\r\n"
                              "\r\nabc";
    int rc = op_h1_parse_request(raw, sizeof(raw) - 1, &g_req);
    CHECK(rc == OP_H1_COMPLETE && !g_req.upgrade, "writer request parse: rc %d (%s)", rc, g_req.error_reason);
    ssize_t n = op_h1_write_request_head(&g_req, "10.0.0.7", "https", 0, "X-Extra: 1\r\n", out, sizeof(out));
    expect_out("request head", n, out,
               "POST /submit?a=1 HTTP/1.1\r\n"
               "Host: app.example\r\n"
               "Content-Length: 3\r\n"
               "Cookie: a=b\r\n"
               "X-Forwarded-For: 10.0.0.7\r\n"
               "X-Forwarded-Proto: https\r\n"
               "X-Forwarded-Host: app.example\r\n"
               "X-Extra: 1\r\n"
               "\r\n");
    check_enospc("request head", n, write_req_cb);

    static const char up[] = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                             "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n";
    rc = op_h1_parse_request(up, sizeof(up) - 1, &g_req);
    CHECK(rc == OP_H1_COMPLETE && g_req.upgrade, "upgrade request parse");
    n = op_h1_write_request_head(&g_req, "127.0.0.1", "http", 0, NULL, out, sizeof(out));
    expect_out("upgrade request head", n, out,
               "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n"
               "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n"
               "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");

    rc = op_h1_parse_request(S("GET / HTTP/1.0\r\nConnection: keep-alive\r\nTE: x\r\n\r\n"), &g_req);
    n = op_h1_write_request_head(&g_req, NULL, NULL, 0, NULL, out, sizeof(out));
    expect_out("1.0 request, no forwarding args", n, out, "GET / HTTP/1.0\r\n\r\n");

    static const char resp[] =
        "HTTP/1.1 200 Fine\r\nContent-Type: text/html\r\nConnection: keep-alive, X-Hop\r\n"
        "Keep-Alive: timeout=5\r\nX-Hop: 1\r\nTransfer-Encoding: chunked\r\n"
        "Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nSet-Cookie: s=1\r\n\r\n";
    rc = op_h1_parse_response(resp, sizeof(resp) - 1, false, &g_resp);
    CHECK(rc == OP_H1_COMPLETE, "writer response parse: %s", g_resp.error_reason);
    n = op_h1_write_response_head(&g_resp, 1, false, NULL, out, sizeof(out));
    expect_out("response head 1.1 keep", n, out,
               "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nSet-Cookie: "
               "s=1\r\n\r\n");
    n = op_h1_write_response_head(&g_resp, 1, true, "X-Via: op\r\n", out, sizeof(out));
    expect_out(
        "response head close", n, out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nSet-Cookie: s=1\r\n"
        "Connection: close\r\nX-Via: op\r\n\r\n");
    n = op_h1_write_response_head(&g_resp, 0, false, NULL, out, sizeof(out));
    expect_out(
        "response head 1.0 keep", n, out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nSet-Cookie: s=1\r\n"
        "Connection: keep-alive\r\n\r\n");
    check_enospc("response head", op_h1_write_response_head(&g_resp, 1, true, NULL, out, sizeof(out)),
                 write_resp_cb);

    rc = op_h1_parse_response(
        S("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: x\r\n\r\n"),
        false, &g_resp);
    CHECK(rc == OP_H1_COMPLETE && g_resp.upgrade, "101 parse");
    n = op_h1_write_response_head(&g_resp, 1, true, NULL, out, sizeof(out));
    expect_out("101 head", n, out,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n"
               "Connection: upgrade\r\n\r\n");

    rc = op_h1_parse_response(S("HTTP/1.1 599 Custom Thing\r\nContent-Length: 0\r\n\r\n"), false, &g_resp);
    n = op_h1_write_response_head(&g_resp, 1, false, NULL, out, sizeof(out));
    expect_out("unknown status keeps upstream reason", n, out,
               "HTTP/1.1 599 Custom Thing\r\nContent-Length: 0\r\n\r\n");

    n = op_h1_write_simple_response(404, "text/plain", "nope\n", 5, true, NULL, out, sizeof(out));
    expect_out("simple 404", n, out,
               "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: "
               "close\r\n\r\nnope\n");
    check_enospc("simple response", n, write_simple_cb);
    n = op_h1_write_simple_response(200, NULL, NULL, 0, false, "Location: /x\r\n", out, sizeof(out));
    expect_out("simple 200 empty", n, out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nLocation: /x\r\n\r\n");
    n = op_h1_write_simple_response(204, "text/plain", "x", 1, false, NULL, out, sizeof(out));
    expect_out("simple 204 bodyless", n, out, "HTTP/1.1 204 No Content\r\n\r\n");

    CHECK(strcmp(op_h1_reason(200), "OK") == 0 &&
              strcmp(op_h1_reason(431), "Request Header Fields Too Large") == 0 &&
              strcmp(op_h1_reason(505), "HTTP Version Not Supported") == 0 &&
              strcmp(op_h1_reason(999), "") == 0,
          "op_h1_reason");
    op_span_t v = op_span(S(" keep-alive ,Upgrade,, x "));
    CHECK(op_h1_list_has_token(v, "upgrade") && op_h1_list_has_token(v, "X") &&
              !op_h1_list_has_token(v, "keep"),
          "op_h1_list_has_token");
    CHECK(!op_h1_list_has_token(op_span(NULL, 0), "close"), "op_h1_list_has_token on an empty span");
}

/* The head writer: a 4 KiB Location fits whole or fails; nothing is cut before its CRLF; a value or
 * name that would break the head is refused. */
static ssize_t redirect_into(char *out, size_t cap, const char *target)
{
    struct op_h1_writer w;
    op_h1_writer_init(&w, out, cap);
    op_h1_put_status(&w, 308, NULL);
    op_h1_put_headerf(&w, "Location", "https://a.example%s", target);
    op_h1_put_header_u64(&w, "Content-Length", 0);
    op_h1_put_end_of_head(&w);
    return op_h1_writer_result(&w);
}

static void test_head_writer(void)
{
    static char out[8192], target[4097], want[8192];
    target[0] = '/';
    memset(target + 1, 'x', sizeof(target) - 2);
    target[sizeof(target) - 1] = '\0';
    int wl = snprintf(want, sizeof(want),
                      "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://a.example%s\r\nContent-Length: "
                      "0\r\n\r\n",
                      target);
    ssize_t n = redirect_into(out, sizeof(out), target);
    expect_out("4 KiB Location", n, out, want);
    /* every smaller buffer fails visibly, none yields a head */
    for (size_t cap = 0; cap < (size_t)wl; cap++) {
        ssize_t m = redirect_into(out, cap, target);
        CHECK(m == -ENOSPC, "4 KiB Location, cap %zu: %zd", cap, m);
    }
    /* the parser accepts what the writer wrote */
    n = redirect_into(out, sizeof(out), target);
    CHECK(n > 0 && op_h1_parse_response(out, (size_t)n, false, &g_resp) == OP_H1_COMPLETE &&
              g_resp.status == 308 &&
              op_h1_find_header(g_resp.headers, g_resp.nheaders, "location")->value.len == 17 + 4096,
          "4 KiB Location parses back");

    struct op_h1_writer w;
    op_h1_writer_init(&w, out, sizeof(out));
    op_h1_put_status(&w, 302, "Moved");
    op_h1_put_header(&w, "Location", "/a\r\nSet-Cookie: x=1");
    op_h1_put_header(&w, "X-After", "1"); /* no-op after a failure */
    CHECK(op_h1_writer_result(&w) == -EINVAL, "CRLF in a value: %zd", op_h1_writer_result(&w));
    op_h1_writer_init(&w, out, sizeof(out));
    op_h1_put_headerf(&w, "Location", "/%s", "a\nb");
    CHECK(op_h1_writer_result(&w) == -EINVAL, "LF in a formatted value");
    op_h1_writer_init(&w, out, sizeof(out));
    op_h1_put_header(&w, "Bad Name", "v");
    CHECK(op_h1_writer_result(&w) == -EINVAL, "non-token name");
    op_h1_writer_init(&w, out, sizeof(out));
    op_h1_put_status(&w, 42, NULL);
    CHECK(op_h1_writer_result(&w) == -EINVAL, "status out of range");
    op_h1_writer_init(&w, out, sizeof(out));
    op_h1_put_status(&w, 599, "Custom");
    op_h1_put_header(&w, "X-Empty", NULL);
    op_h1_put_end_of_head(&w);
    expect_out("custom reason", op_h1_writer_result(&w), out, "HTTP/1.1 599 Custom\r\nX-Empty: \r\n\r\n");
}

/* Header names with '_' are not forwarded: CGI/WSGI-style upstreams map '_' to '-', so
 * "Transfer_Encoding" would frame the body there while it framed nothing here, and "X_Forwarded_For"
 * would pass for the proxy's own header. The parser ignores them for framing in any case. */
static void test_underscore_names(void)
{
    static char out[4096];
    static const char raw[] = "POST /u HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "X_Forwarded_For: 6.6.6.6\r\n"
                              "Transfer_Encoding: chunked\r\n"
                              "Content_Length: 5\r\n"
                              "x_real_ip: 6.6.6.6\r\n"
                              "X_Custom: 1\r\n"
                              "X-Dash: 2\r\n"
                              "\r\n0\r\n\r\n";
    int rc = op_h1_parse_request(raw, sizeof(raw) - 1, &g_req);
    CHECK(rc == OP_H1_COMPLETE && g_req.framing == OP_H1_BODY_NONE && g_req.content_length == 0,
          "underscore names never frame: rc %d framing %d", rc, (int)g_req.framing);
    ssize_t n = op_h1_write_request_head(&g_req, "10.0.0.7", "http", 0, NULL, out, sizeof(out));
    expect_out("underscore names dropped", n, out,
               "POST /u HTTP/1.1\r\nHost: a\r\nX-Dash: 2\r\nX-Forwarded-For: 10.0.0.7\r\n"
               "X-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n");
    /* allowed by the option: only names that do not read as framing/forwarding/hop-by-hop ones */
    n = op_h1_write_request_head(&g_req, "10.0.0.7", "http", OP_H1_FWD_UNDERSCORES, NULL, out, sizeof(out));
    expect_out("underscore names allowed", n, out,
               "POST /u HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\nX-Dash: 2\r\nX-Forwarded-For: 10.0.0.7\r\n"
               "X-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n");
    rc = op_h1_parse_request(S("GET / HTTP/1.1\r\nHost: a\r\nCONNECTION: close\r\nproxy_connection: x\r\n"
                               "Keep_Alive: 1\r\nUpgrade_: x\r\nup_grade: y\r\nHOST_: h\r\n_: u\r\n\r\n"),
                             &g_req);
    n = op_h1_write_request_head(&g_req, NULL, NULL, OP_H1_FWD_UNDERSCORES, NULL, out, sizeof(out));
    expect_out("underscore names allowed, hop-by-hop look-alikes dropped", n, out,
               "GET / HTTP/1.1\r\nHost: a\r\nUpgrade_: x\r\nup_grade: y\r\nHOST_: h\r\n_: u\r\n"
               "X-Forwarded-Host: a\r\n\r\n");
    CHECK(rc == OP_H1_COMPLETE && !g_req.keep_alive, "underscore look-alikes parse: rc %d", rc);
}

int main(void)
{
    test_writers();
    test_head_writer();
    test_underscore_names();
    return check_report("h1 head writers");
}
