/*
 * tests/unit/test_h1_rewrite.c — the head rewriting a route asks for (http/h1_write.c,
 * op_h1_write_request_head_opts / op_h1_write_response_head_opts): a path prefix stripped (query kept,
 * leading '/' kept, absolute- and asterisk-form), an app URL's path put before the path left, cookies dropped
 * from every Cookie header (exact names,
 * '*' prefixes, an emptied header dropped), extra request lines; CORS response headers dropped and CORS
 * request headers removed from Vary (an emptied Vary dropped), two extra response line sets; every
 * rewritten head fits exactly or fails with -ENOSPC. Prints one line per failed check; exits 1 on any
 * failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "tests/unit/check.h"

static struct op_h1_request g_req; /* big (100 headers): keep off the stack */
static struct op_h1_response g_resp;
static char out[16384];

static void expect_out(const char *name, ssize_t n, const char *want)
{
    size_t wl = strlen(want);
    bool ok = n == (ssize_t)wl && memcmp(out, want, wl) == 0;
    CHECK(ok, "[%s] output mismatch (n=%zd):\n--- got\n%.*s--- want\n%s", name, n, n > 0 ? (int)n : 0, out,
          want);
}

/* Parses raw, writes it with opts, compares; then checks every smaller capacity fails whole. */
static void req_case(const char *name, const char *raw, const struct op_h1_req_opts *o, const char *want)
{
    int rc = op_h1_parse_request(raw, strlen(raw), &g_req);
    CHECK(rc == OP_H1_COMPLETE, "[%s] parse: rc %d (%s)", name, rc, g_req.error_reason);
    if (rc != OP_H1_COMPLETE) return;
    ssize_t n = op_h1_write_request_head_opts(&g_req, NULL, NULL, o, out, sizeof(out));
    expect_out(name, n, want);
    for (ssize_t cap = 0; cap < n; cap++)
        CHECK(op_h1_write_request_head_opts(&g_req, NULL, NULL, o, out, (size_t)cap) == -ENOSPC,
              "[%s] cap %zd should give -ENOSPC", name, cap);
}

static void resp_case(const char *name, const char *raw, const struct op_h1_resp_opts *o, const char *want)
{
    int rc = op_h1_parse_response(raw, strlen(raw), false, &g_resp);
    CHECK(rc == OP_H1_COMPLETE, "[%s] parse: rc %d (%s)", name, rc, g_resp.error_reason);
    if (rc != OP_H1_COMPLETE) return;
    ssize_t n = op_h1_write_response_head_opts(&g_resp, 1, false, o, out, sizeof(out));
    expect_out(name, n, want);
    for (ssize_t cap = 0; cap < n; cap++)
        CHECK(op_h1_write_response_head_opts(&g_resp, 1, false, o, out, (size_t)cap) == -ENOSPC,
              "[%s] cap %zd should give -ENOSPC", name, cap);
}

static void test_strip_prefix(void)
{
    struct op_h1_req_opts o = {.strip_prefix = 16}; /* "/@u/ws/apps/code/" minus its final '/' */
    req_case("strip: path and query", "GET /@u/ws/apps/code/x/y.js?a=1&b=/@u HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /x/y.js?a=1&b=/@u HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    req_case("strip: to the trailing slash", "GET /@u/ws/apps/code/?q HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /?q HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    req_case("strip: the whole path", "GET /@u/ws/apps/code HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    req_case("strip: more than the path keeps the query", "GET /a?long=query HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /?long=query HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    o.strip_prefix = 3;
    req_case("strip: a leading '/' is put back", "GET /abc/d HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /c/d HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    o.strip_prefix = 4;
    req_case("strip: absolute-form keeps scheme and authority",
             "GET http://h/app/x?y HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET http://h/x?y HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    req_case("strip: asterisk-form unchanged", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "OPTIONS * HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    o.strip_prefix = 0;
    req_case("strip: none", "GET /@u/ws/apps/code/x HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /@u/ws/apps/code/x HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
}

/* The path of an app's URL put before the path left (/sub + /a?b = /sub/a?b). */
static void test_path_prefix(void)
{
    const char *X = "Host: h\r\nX-Forwarded-Host: h\r\n\r\n";
    char want[256];
    static const struct {
        const char *pre, *target, *want;
        size_t strip;
    } cases[] = {
        {"/sub", "/@u/ws/apps/x/a?b", "/sub/a?b", 13},
        {"/sub/", "/@u/ws/apps/x/a?b", "/sub/a?b", 13},
        {"/sub", "/@u/ws/apps/x/", "/sub/", 13},
        {"/sub/", "/@u/ws/apps/x/?q=1", "/sub/?q=1", 13},
        {"/sub", "/@u/ws/apps/x", "/sub/", 13},
        {"/a/b", "/x/y", "/a/b/x/y", 0}, /* a subdomain app: nothing stripped */
        {"/a/b/", "/?z", "/a/b/?z", 0},
        {"/", "/x", "/x", 0}, /* a bare '/': unchanged */
        {"", "/x", "/x", 0},
        {"/sub", "http://h/app/x?y", "http://h/sub/x?y", 4},
        {"/sub", "http://h?y", "http://h/sub/?y", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct op_h1_req_opts o = {.strip_prefix = cases[i].strip,
                                   .path_prefix = cases[i].pre,
                                   .path_prefix_len = strlen(cases[i].pre)};
        char raw[256], name[64];
        snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].target);
        snprintf(want, sizeof(want), "GET %s HTTP/1.1\r\n%s", cases[i].want, X);
        snprintf(name, sizeof(name), "path_prefix %s + %s", cases[i].pre, cases[i].target);
        req_case(name, raw, &o, want);
    }
    struct op_h1_req_opts o = {.path_prefix = "/sub", .path_prefix_len = 4};
    req_case("path_prefix: asterisk-form unchanged", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "OPTIONS * HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    o.path_prefix_len = 2; /* only path_prefix_len bytes count */
    req_case("path_prefix: its length", "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /s/x HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
}

static void test_drop_cookies(void)
{
    static const char *const drop[] = {"coder_session_token", "coder_signed_app_token",
                                       "coder_subdomain_app_session_token_*", NULL};
    struct op_h1_req_opts o = {.drop_cookies = drop, .extra = "X-Coder-Visitor: 1\r\n"};
    req_case("cookies: some dropped, order kept, rejoined",
             "GET / HTTP/1.1\r\nHost: h\r\n"
             "Cookie: a=1;coder_session_token=s;  b=2 ;coder_subdomain_app_session_token_ab12=x; c\r\n"
             "Cookie: coder_signed_app_token=jws\r\n"
             "cookie: d=4; Coder_Session_Token=case\r\n"
             "X-Other: coder_session_token=kept\r\n\r\n",
             &o,
             "GET / HTTP/1.1\r\nHost: h\r\n"
             "Cookie: a=1; b=2; c\r\n"
             "cookie: d=4; Coder_Session_Token=case\r\n"
             "X-Other: coder_session_token=kept\r\n"
             "X-Forwarded-Host: h\r\n"
             "X-Coder-Visitor: 1\r\n\r\n");
    req_case(
        "cookies: an emptied header is dropped",
        "GET / HTTP/1.1\r\nHost: h\r\nCookie: coder_session_token=s ; ; coder_signed_app_token=t\r\n\r\n", &o,
        "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\nX-Coder-Visitor: 1\r\n\r\n");
    req_case(
        "cookies: prefix needs the whole prefix",
        "GET / HTTP/1.1\r\nHost: h\r\nCookie: coder_subdomain_app_session_token=z; "
        "coder_session_token_x=y; coder_session_tokenx=w\r\n\r\n",
        &o,
        "GET / HTTP/1.1\r\nHost: h\r\n"
        "Cookie: coder_subdomain_app_session_token=z; coder_session_token_x=y; coder_session_tokenx=w\r\n"
        "X-Forwarded-Host: h\r\nX-Coder-Visitor: 1\r\n\r\n");
    static const char *const all[] = {"*", NULL};
    struct op_h1_req_opts o2 = {.drop_cookies = all, .strip_prefix = 4};
    req_case("cookies: '*' drops every cookie, with strip_prefix",
             "POST /app/submit HTTP/1.1\r\nHost: h\r\nCookie: a=1; b=2\r\nContent-Length: 0\r\n\r\n", &o2,
             "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nX-Forwarded-Host: h\r\n\r\n");
    req_case("cookies: hop-by-hop rules still apply",
             "GET / HTTP/1.1\r\nHost: h\r\nConnection: Cookie\r\nCookie: a=1\r\nX_Y: 1\r\n\r\n", &o,
             "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\nX-Coder-Visitor: 1\r\n\r\n");
    /* The old entry point is the same writer without rewriting. */
    static const char raw[] = "GET /p?q HTTP/1.1\r\nHost: h\r\nCookie: coder_session_token=s\r\n\r\n";
    int rc = op_h1_parse_request(raw, sizeof(raw) - 1, &g_req);
    CHECK(rc == OP_H1_COMPLETE, "plain parse");
    ssize_t n = op_h1_write_request_head(&g_req, "1.2.3.4", "http", 0, NULL, out, sizeof(out));
    expect_out("plain writer unchanged", n,
               "GET /p?q HTTP/1.1\r\nHost: h\r\nCookie: coder_session_token=s\r\nX-Forwarded-For: 1.2.3.4\r\n"
               "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n");
    n = op_h1_write_request_head_opts(&g_req, "1.2.3.4", "http", NULL, out, sizeof(out));
    expect_out("NULL opts", n,
               "GET /p?q HTTP/1.1\r\nHost: h\r\nCookie: coder_session_token=s\r\nX-Forwarded-For: 1.2.3.4\r\n"
               "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n");
}

static void test_no_cors(void)
{
    struct op_h1_resp_opts o = {.flags = OP_H1_RESP_NO_CORS, .extra = "X-A: 1\r\n", .extra2 = "X-B: 2\r\n"};
    resp_case(
        "no-cors: headers dropped, Vary filtered",
        "HTTP/1.1 200 OK\r\n"
        "Access-Control-Allow-Origin: *\r\n"
        "access-control-allow-credentials: true\r\n"
        "Access-Control-Allow-Methods: GET\r\n"
        "ACCESS-CONTROL-ALLOW-HEADERS: X\r\n"
        "Access-Control-Expose-Headers: X-Kept\r\n"
        "Vary: Origin, Accept-Encoding ,access-control-request-method,ACCESS-CONTROL-REQUEST-HEADERS\r\n"
        "Vary: Access-Control-Request-Methods\r\n"
        "Vary: Cookie,,origin\r\n"
        "Content-Length: 0\r\n\r\n",
        &o,
        "HTTP/1.1 200 OK\r\n"
        "Access-Control-Expose-Headers: X-Kept\r\n"
        "Vary: Accept-Encoding\r\n"
        "Vary: Cookie\r\n"
        "Content-Length: 0\r\n"
        "X-A: 1\r\nX-B: 2\r\n\r\n");
    resp_case("no-cors: Vary: * kept",
              "HTTP/1.1 204 No Content\r\nVary: *\r\nVary: Origin\r\nAccess-Control-Allow-Origin: x\r\n\r\n",
              &o, "HTTP/1.1 204 No Content\r\nVary: *\r\nX-A: 1\r\nX-B: 2\r\n\r\n");
    struct op_h1_resp_opts plain = {.extra2 = "X-B: 2\r\n"};
    resp_case(
        "without the flag nothing is dropped",
        "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nVary: Origin\r\nContent-Length: 0\r\n\r\n",
        &plain,
        "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nVary: Origin\r\nContent-Length: 0\r\n"
        "X-B: 2\r\n\r\n");
    resp_case("NULL opts", "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 0\r\n\r\n",
              NULL, "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 0\r\n\r\n");
    resp_case("no-cors on a 101 keeps the upgrade",
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Access-Control-Allow-Origin: *\r\n\r\n",
              &o,
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
              "X-A: 1\r\nX-B: 2\r\n\r\n");
}

/* Query parameters and headers meant for us are not forwarded (a token in the URL, the session header). */
static void test_drop_query_headers(void)
{
    static const char *const q[] = {"tok", "t2", NULL};
    static const char *const h[] = {"Coder-Session-Token", NULL};
    struct op_h1_req_opts o = {.drop_query = q, .drop_headers = h};
    req_case("drop query: middle", "GET /pty?a=1&tok=x&b=2 HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /pty?a=1&b=2 HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    req_case("drop query: first, last, bare, empty pieces",
             "GET /pty?tok=x&a=1&&t2&tokx=3&b&tok HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /pty?a=1&tokx=3&b HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    req_case("drop query: all of it loses the '?'", "GET /pty?tok=1&t2=2 HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /pty HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    req_case("drop query: case-sensitive names", "GET /pty?TOK=1 HTTP/1.1\r\nHost: h\r\n\r\n", &o,
             "GET /pty?TOK=1 HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
    req_case("drop headers: case-insensitive, others kept",
             "GET /x HTTP/1.1\r\nHost: h\r\ncoder-session-token: s\r\nCoder-Session-Token-X: k\r\n\r\n", &o,
             "GET /x HTTP/1.1\r\nHost: h\r\nCoder-Session-Token-X: k\r\nX-Forwarded-Host: h\r\n\r\n");
    o.strip_prefix = 44;
    req_case("drop query with strip_prefix",
             "GET /api/v2/workspaceagents/0123456789abcdef0123/pty?reconnect=u&tok=x&width=80 HTTP/1.1\r\n"
             "Host: h\r\n\r\n",
             &o, "GET /pty?reconnect=u&width=80 HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n\r\n");
}

int main(void)
{
    test_strip_prefix();
    test_path_prefix();
    test_drop_cookies();
    test_no_cors();
    test_drop_query_headers();
    return check_report("h1 rewrite");
}
