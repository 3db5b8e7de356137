/*
 * tests/unit/test_h1.c — HTTP/1.1 heads (http/h1_scan.c, h1_parse.c): request/response head parsing
 * (every request-smuggling shape we know of (CL.TE, TE.CL, duplicate lengths), the Transfer-Encoding
 * shapes, limits at their exact boundaries, byte-by-byte prefixes, the resumable parse and its linear
 * cost), keep-alive and upgrade rules, response framing. Bodies: test_h1_body.c; writers:
 * test_h1_write.c. Prints one line per failed check; exits 1 on any failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "tests/unit/check.h"

#define S(lit) lit, sizeof(lit) - 1

static bool span_is(op_span_t s, const char *lit)
{
    return s.len == strlen(lit) && (s.len == 0 || memcmp(s.p, lit, s.len) == 0);
}

static struct op_h1_request g_req; /* big (100 headers): keep off the stack */
static struct op_h1_response g_resp;
static struct op_h1_request g_resume_req;

/* ---------------------------------------------------------------------------------------------------- */
/* Request table                                                                                          */

#define ANY (-1)
struct rcase {
    const char *name;
    const char *raw;
    size_t len;
    int status;  /* 0 = must parse COMPLETE */
    int framing; /* ANY or enum op_h1_framing (accepted cases) */
    long long cl;
};

#define OK(name, raw, fr, cl)                                                                                \
    {                                                                                                        \
        name, S(raw), 0, fr, cl                                                                              \
    }
#define BAD(name, raw, st)                                                                                   \
    {                                                                                                        \
        name, S(raw), st, ANY, ANY                                                                           \
    }
#define NONE    OP_H1_BODY_NONE
#define LEN     OP_H1_BODY_LENGTH
#define CHUNKED OP_H1_BODY_CHUNKED

static const struct rcase g_rcases[] = {
    /* accepted */
    OK("simple GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0),
    OK("HTTP/1.0 without Host", "GET /x HTTP/1.0\r\n\r\n", NONE, 0),
    OK("POST with CL", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", LEN, 5),
    OK("POST chunked", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", CHUNKED, 0),
    OK("TE chunked with OWS", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t chunked \t\r\n\r\n",
       CHUNKED, 0),
    OK("TE Chunked mixed case", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n", CHUNKED,
       0),
    OK("CL 0 is no body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", NONE, 0),
    OK("CL leading zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", LEN, 7),
    OK("CL 2^63-1", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", LEN,
       9223372036854775807LL),
    OK("CL with leading OWS", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:   12\r\n\r\n", LEN, 12),
    OK("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0),
    OK("CONNECT authority", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", NONE, 0),
    OK("absolute-form = Host", "GET http://a.example/x?y HTTP/1.1\r\nHost: A.example\r\n\r\n", NONE, 0),
    OK("absolute-form https", "GET https://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", NONE, 0),
    OK("absolute-form 1.0 no Host", "GET http://b.example/ HTTP/1.0\r\n\r\n", NONE, 0),
    OK("obs-text in value", "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n", NONE, 0),
    OK("empty value", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n", NONE, 0),
    OK("whitespace-only value", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty: \t \r\n\r\n", NONE, 0),
    OK("Host with port", "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", NONE, 0),
    OK("Host IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", NONE, 0),
    OK("PUT/DELETE style method", "DELETE /r HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0),
    OK("PATCH", "PATCH /r HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n", LEN, 1),
    OK("HEAD", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0),
    OK("websocket upgrade",
       "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
       "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
       NONE, 0),
    OK("query with punctuation", "GET /a/b?c=d&e=%20f;g HTTP/1.1\r\nHost: a\r\n\r\n", NONE, 0),
    OK("header name punctuation", "GET / HTTP/1.1\r\nHost: a\r\nX-A_b.c!#$%&'*+^`|~: v\r\n\r\n", NONE, 0),

    /* obs-fold, whitespace, line endings */
    BAD("obs-fold SP", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
    BAD("obs-fold HT", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400),
    BAD("obs-fold on TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400),
    BAD("leading whitespace first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    BAD("SP before colon (Host)", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    BAD("SP before colon (TE)", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
    BAD("HT before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    BAD("bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    BAD("bare LF after header", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    BAD("bare LF final line", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    BAD("bare LF inside value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n", 400),
    BAD("CR without LF in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    BAD("CR without LF end of line", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
    BAD("CR without LF final", "GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n", 400),
    BAD("CR in request line", "GET / HTTP/1.1\rX\r\nHost: a\r\n\r\n", 400),
    BAD("NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
    BAD("CTL 0x01 in value",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01"
        "b\r\n\r\n",
        400),
    BAD("DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400),
    BAD("line without colon", "GET / HTTP/1.1\r\nHost: a\r\nXnocolon\r\n\r\n", 400),
    BAD("empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400),
    BAD("non-token header name", "GET / HTTP/1.1\r\nHost: a\r\nX(a): v\r\n\r\n", 400),
    BAD("header name with slash", "GET / HTTP/1.1\r\nHost: a\r\nX/a: v\r\n\r\n", 400),
    BAD("leading CRLF before request", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),

    /* framing: CL / TE */
    BAD("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    BAD("CL + TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400),
    BAD("TE + CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400),
    BAD("dup CL different", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        400),
    BAD("dup CL identical", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
        400),
    BAD("CL list 5, 5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
    BAD("CL +5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
    BAD("CL -1", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    BAD("CL 0x5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400),
    BAD("CL inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
    BAD("CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400),
    BAD("CL 2^63", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 400),
    BAD("CL huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    /* RFC-valid trailing OWS, but llhttp 8.1.0 refuses it: the stricter verdict wins (no disagreement). */
    BAD("CL trailing OWS", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12 \t\r\n\r\n", 400),
    BAD("CL decimal point", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", 400),
    BAD("TE chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    BAD("TE chunked, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        400),
    BAD("TE twice (two lines)",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400),
    BAD("TE chunked then gzip line",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    BAD("TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400),
    BAD("TE empty element", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,,chunked\r\n\r\n", 400),
    BAD("TE trailing comma", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", 400),
    BAD("TE with parameter", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 400),
    BAD("TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
    BAD("TE chunkedx", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n", 501),
    BAD("TE gzip alone", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    BAD("TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
    /* codings before chunked: the relay decodes none, so an upstream could not be sure to frame and
     * decode the body as the client meant; refused (501) rather than forwarded or rewritten */
    BAD("TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    BAD("TE identity, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
        501),
    BAD("TE gzip with OWS", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip ,\t chunked \r\n\r\n",
        501),
    BAD("TE deflate, gzip, chunked",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: deflate, gzip, chunked\r\n\r\n", 501),
    BAD("TE x-custom, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-custom, chunked\r\n\r\n",
        501),
    BAD("TE chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        400),

    /* Host */
    BAD("missing Host 1.1", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400),
    BAD("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    BAD("duplicate Host 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    BAD("empty Host 1.1", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
    BAD("Host userinfo", "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),
    BAD("Host inner space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    BAD("Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    BAD("Host with fragment", "GET / HTTP/1.1\r\nHost: a#b\r\n\r\n", 400),

    /* request line */
    BAD("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("CTL in target",
        "GET /a\x01"
        "b HTTP/1.1\r\nHost: a\r\n\r\n",
        400),
    BAD("obs-text in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("TAB in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("relative target", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("absolute-form != Host", "GET http://evil.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    BAD("absolute-form userinfo", "GET http://u@a.example/ HTTP/1.1\r\nHost: u@a.example\r\n\r\n", 400),
    BAD("absolute-form ftp", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("CONNECT origin-form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("invalid method token", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("missing method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("lowercase method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    BAD("unknown method", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    BAD("double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("missing version", "GET /\r\nHost: a\r\n\r\n", 400),
    BAD("lowercase http", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("HTTP/1.1 trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    BAD("HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
    BAD("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    BAD("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
    BAD("HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
    BAD("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),

    /* other headers */
    BAD("duplicate Upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n\r\n", 400),
    BAD("Connection non-token", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, a b\r\n\r\n", 400),
};

static void test_request_table(void)
{
    int n = 0;
    for (size_t i = 0; i < OP_ARRAY_LEN(g_rcases); i++) {
        const struct rcase *c = &g_rcases[i];
        int rc = op_h1_parse_request(c->raw, c->len, &g_req);
        n++;
        if (c->status == 0) {
            CHECK(rc == OP_H1_COMPLETE, "[%s] expected COMPLETE, got %d (%d %s)", c->name, rc,
                  g_req.error_status, g_req.error_reason ? g_req.error_reason : "");
            if (rc != OP_H1_COMPLETE) continue;
            CHECK(g_req.head_len == c->len, "[%s] head_len %zu != %zu", c->name, g_req.head_len, c->len);
            if (c->framing != ANY)
                CHECK((int)g_req.framing == c->framing, "[%s] framing %d != %d", c->name, g_req.framing,
                      c->framing);
            if (c->cl != ANY)
                CHECK(g_req.content_length == (uint64_t)c->cl, "[%s] CL %llu != %lld", c->name,
                      (unsigned long long)g_req.content_length, c->cl);
        } else {
            CHECK(rc == OP_H1_ERROR && g_req.error_status == c->status,
                  "[%s] expected ERROR %d, got rc=%d status=%d", c->name, c->status, rc, g_req.error_status);
            CHECK(rc != OP_H1_ERROR || (g_req.error_reason && *g_req.error_reason), "[%s] no error reason",
                  c->name);
        }
        /* Every prefix: never COMPLETE early, an early ERROR must equal the final verdict. */
        int full_rc = rc, full_status = g_req.error_status;
        size_t full_head = g_req.head_len;
        for (size_t k = 0; k < c->len; k++) {
            int prc = op_h1_parse_request(c->raw, k, &g_req);
            if (prc == OP_H1_ERROR)
                CHECK(full_rc == OP_H1_ERROR && g_req.error_status == full_status,
                      "[%s] prefix %zu: ERROR %d (%s) but full input gives rc=%d", c->name, k,
                      g_req.error_status, g_req.error_reason, full_rc);
            else if (prc == OP_H1_COMPLETE)
                CHECK(full_rc == OP_H1_COMPLETE && g_req.head_len == full_head && k >= full_head,
                      "[%s] prefix %zu: COMPLETE early", c->name, k);
        }
    }
    printf("request table: %d cases\n", n);
}

static void test_request_fields(void)
{
    static const char raw[] = "POST /up?x=1 HTTP/1.1\r\nHost:  a.example:8443 \r\nX-Pad:\t v  v \t\r\n"
                              "Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabcGET";
    int rc = op_h1_parse_request(raw, sizeof(raw) - 1, &g_req);
    CHECK(rc == OP_H1_COMPLETE, "fields: rc %d", rc);
    CHECK(span_is(g_req.method, "POST"), "fields: method");
    CHECK(span_is(g_req.target, "/up?x=1"), "fields: target");
    CHECK(g_req.version_minor == 1, "fields: minor");
    CHECK(span_is(g_req.host, "a.example:8443"), "fields: host trimmed");
    CHECK(g_req.nheaders == 4, "fields: nheaders %d", g_req.nheaders);
    CHECK(span_is(g_req.headers[1].name, "X-Pad") && span_is(g_req.headers[1].value, "v  v"), "fields: trim");
    CHECK(g_req.expect_continue, "fields: expect");
    CHECK(g_req.head_len == sizeof(raw) - 1 - 6, "fields: head_len %zu", g_req.head_len);
    CHECK(g_req.framing == OP_H1_BODY_LENGTH && g_req.content_length == 3, "fields: CL");
    const struct op_h1_header *h = op_h1_find_header(g_req.headers, g_req.nheaders, "content-LENGTH");
    CHECK(h && span_is(h->value, "3"), "find_header");
    CHECK(op_h1_find_header(g_req.headers, g_req.nheaders, "nope") == NULL, "find_header absent");
    /* spans inside the buffer */
    for (int i = 0; i < g_req.nheaders; i++)
        CHECK(g_req.headers[i].name.p >= raw &&
                  g_req.headers[i].value.p + g_req.headers[i].value.len <= raw + g_req.head_len,
              "fields: header %d span outside head", i);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Limits at their boundaries                                                                             */

static char g_big[24 * 1024];

static size_t build_reqline(size_t line_len) /* request line of exactly line_len bytes (without CRLF) */
{
    /* "GET /aaaa HTTP/1.1" : 4 + target + 9 */
    size_t tlen = line_len - 13;
    size_t n = 0;
    memcpy(g_big, "GET /", 5);
    n = 5;
    memset(g_big + n, 'a', tlen - 1);
    n += tlen - 1;
    memcpy(g_big + n, " HTTP/1.1\r\nHost: a\r\n\r\n", 22);
    return n + 22;
}

static size_t build_headers(int nhdr) /* request with nhdr headers (Host included) */
{
    size_t n = (size_t)snprintf(g_big, sizeof(g_big), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < nhdr; i++)
        n += (size_t)snprintf(g_big + n, sizeof(g_big) - n, "X-H%d: v\r\n", i);
    n += (size_t)snprintf(g_big + n, sizeof(g_big) - n, "\r\n");
    return n;
}

static size_t build_head_of(size_t total) /* valid head of exactly total bytes */
{
    static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
    size_t n = sizeof(pre) - 1;
    memcpy(g_big, pre, n);
    size_t pad = total - n - 4;
    memset(g_big + n, 'p', pad);
    n += pad;
    memcpy(g_big + n, "\r\n\r\n", 4);
    return n + 4;
}

static void test_limits(void)
{
    size_t n = build_reqline(8191);
    CHECK(n == 8191 + 2 + 9 + 2, "reqline builder");
    int rc = op_h1_parse_request(g_big, n, &g_req);
    CHECK(rc == OP_H1_COMPLETE, "8191-byte request line: rc %d status %d", rc, g_req.error_status);
    /* the request line's CR at 8191, its LF not yet there: still fine */
    rc = op_h1_parse_request(g_big, 8192, &g_req);
    CHECK(rc == OP_H1_INCOMPLETE, "8191-byte request line, LF missing: rc %d (%d)", rc, g_req.error_status);
    n = build_reqline(8192);
    rc = op_h1_parse_request(g_big, n, &g_req);
    CHECK(rc == OP_H1_ERROR && g_req.error_status == 414, "8192-byte request line: rc %d status %d", rc,
          g_req.error_status);
    rc = op_h1_parse_request(g_big, 8192, &g_req);
    CHECK(rc == OP_H1_ERROR && g_req.error_status == 414, "8192 bytes of request line, no CRLF: %d",
          g_req.error_status);
    rc = op_h1_parse_request(g_big, 8191, &g_req);
    CHECK(rc == OP_H1_INCOMPLETE, "8191 bytes of request line, no CRLF: rc %d", rc);
    memset(g_big + 5, 'a', 9000);
    rc = op_h1_parse_request(g_big, 9005, &g_req);
    CHECK(rc == OP_H1_ERROR && g_req.error_status == 414, "9 KiB request line at once: %d",
          g_req.error_status);

    n = build_headers(100);
    rc = op_h1_parse_request(g_big, n, &g_req);
    CHECK(rc == OP_H1_COMPLETE && g_req.nheaders == 100, "100 headers: rc %d n %d", rc, g_req.nheaders);
    n = build_headers(101);
    rc = op_h1_parse_request(g_big, n, &g_req);
    CHECK(rc == OP_H1_ERROR && g_req.error_status == 431, "101 headers: rc %d status %d", rc,
          g_req.error_status);

    n = build_head_of(OP_H1_MAX_HEAD - 1);
    CHECK(n == OP_H1_MAX_HEAD - 1, "head builder");
    rc = op_h1_parse_request(g_big, n, &g_req);
    CHECK(rc == OP_H1_COMPLETE && g_req.head_len == n, "head of 16383 bytes: rc %d status %d", rc,
          g_req.error_status);
    for (size_t k = n - 4; k < n; k++) {
        rc = op_h1_parse_request(g_big, k, &g_req);
        CHECK(rc == OP_H1_INCOMPLETE, "head of 16383 bytes, prefix %zu: rc %d", k, rc);
    }
    n = build_head_of(OP_H1_MAX_HEAD);
    rc = op_h1_parse_request(g_big, n, &g_req);
    CHECK(rc == OP_H1_ERROR && g_req.error_status == 431, "head of 16384 bytes: rc %d status %d", rc,
          g_req.error_status);
    n = build_head_of(OP_H1_MAX_HEAD + 1);
    rc = op_h1_parse_request(g_big, n, &g_req);
    CHECK(rc == OP_H1_ERROR && g_req.error_status == 431, "head of 16385 bytes: %d", g_req.error_status);
    /* 20 KiB without CRLFCRLF: refused as soon as it reaches the limit, INCOMPLETE just below */
    n = build_head_of(20 * 1024);
    rc = op_h1_parse_request(g_big, n - 4, &g_req);
    CHECK(rc == OP_H1_ERROR && g_req.error_status == 431, "20 KiB unterminated: %d", g_req.error_status);
    rc = op_h1_parse_request(g_big, OP_H1_MAX_HEAD - 1, &g_req);
    CHECK(rc == OP_H1_ERROR && g_req.error_status == 431, "16383 bytes unterminated: %d", g_req.error_status);
    rc = op_h1_parse_request(g_big, OP_H1_MAX_HEAD - 2, &g_req);
    CHECK(rc == OP_H1_INCOMPLETE, "16382 bytes unterminated: rc %d", rc);

    /* responses: the same head cap, reported as 502 */
    n = (size_t)snprintf(g_big, sizeof(g_big), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 101; i++)
        n += (size_t)snprintf(g_big + n, sizeof(g_big) - n, "X-H%d: v\r\n", i);
    n += (size_t)snprintf(g_big + n, sizeof(g_big) - n, "\r\n");
    rc = op_h1_parse_response(g_big, n, false, &g_resp);
    CHECK(rc == OP_H1_ERROR && g_resp.error_status == 502, "response with 101 headers: rc %d", rc);
}

/* Feeds a valid request byte by byte: INCOMPLETE for every proper prefix, COMPLETE at the end. */
static void test_byte_by_byte(void)
{
    static const char *const reqs[] = {
        "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
        "POST /api HTTP/1.1\r\nHost: a:1\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n",
    };
    for (size_t r = 0; r < OP_ARRAY_LEN(reqs); r++) {
        size_t len = strlen(reqs[r]);
        char *copy = malloc(len); /* exact-size heap copy: ASan catches any read past len */
        memcpy(copy, reqs[r], len);
        for (size_t k = 0; k < len; k++) {
            char *pre = malloc(k ? k : 1);
            memcpy(pre, copy, k);
            int rc = op_h1_parse_request(pre, k, &g_req);
            CHECK(rc == OP_H1_INCOMPLETE, "byte-by-byte req %zu prefix %zu: rc %d (%s)", r, k, rc,
                  g_req.error_reason ? g_req.error_reason : "");
            free(pre);
        }
        int rc = op_h1_parse_request(copy, len, &g_req);
        CHECK(rc == OP_H1_COMPLETE && g_req.head_len == len, "byte-by-byte req %zu full: rc %d", r, rc);
        free(copy);
    }
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nok";
    size_t hl = sizeof(resp) - 1 - 2;
    for (size_t k = 0; k < hl; k++) {
        int rc = op_h1_parse_response(resp, k, false, &g_resp);
        CHECK(rc == OP_H1_INCOMPLETE, "byte-by-byte response prefix %zu: rc %d", k, rc);
    }
    for (size_t k = hl; k <= sizeof(resp) - 1; k++) {
        int rc = op_h1_parse_response(resp, k, false, &g_resp);
        CHECK(rc == OP_H1_COMPLETE && g_resp.head_len == hl, "response prefix %zu: rc %d", k, rc);
    }
}

/* A head that trickles in one byte per receive costs O(n) parser work through the resumable parser:
 * each call scans only the new byte, and the full parse (spans, semantics, llhttp) runs once. Work is
 * counted in bytes scanned (op_h1_scan_work), not time. Rescanning from byte 0 on every receive, as
 * op_h1_parse_request does when called per receive, would cost n(n+1)/2 (134 M for 16 KiB). */
static void test_trickle_linear(void)
{
    static struct op_h1_scan scan; /* zero: start of a head */
    size_t n = build_head_of(OP_H1_MAX_HEAD - 1);
    char *head = malloc(n); /* exact size: ASan catches a read past what has "arrived" */
    memcpy(head, g_big, n);
    uint64_t w0 = op_h1_scan_work();
    int rc = OP_H1_INCOMPLETE;
    size_t k;
    for (k = 1; k <= n && rc == OP_H1_INCOMPLETE; k++)
        rc = op_h1_parse_request_resume(head, k, &scan, &g_req);
    uint64_t work = op_h1_scan_work() - w0;
    CHECK(rc == OP_H1_COMPLETE && k - 1 == n && g_req.head_len == n, "trickled 16 KiB head: rc %d at %zu", rc,
          k - 1);
    CHECK(work <= 3 * (uint64_t)n, "trickled %zu-byte head cost %llu bytes of parser work (limit 3n)", n,
          (unsigned long long)work);
    CHECK(scan.pos == 0 && scan.state == 0, "scan state reset after COMPLETE");
    printf("trickled %zu-byte head: %llu bytes scanned (%.2f per byte)\n", n, (unsigned long long)work,
           (double)work / (double)n);
    free(head);

    /* 100 short header lines, trickled: also linear, and the spans are those of a one-shot parse */
    n = build_headers(100);
    w0 = op_h1_scan_work();
    rc = OP_H1_INCOMPLETE;
    for (k = 1; k <= n && rc == OP_H1_INCOMPLETE; k++)
        rc = op_h1_parse_request_resume(g_big, k, &scan, &g_req);
    work = op_h1_scan_work() - w0;
    CHECK(rc == OP_H1_COMPLETE && g_req.nheaders == 100 && span_is(g_req.headers[99].name, "X-H99"),
          "trickled 100 headers: rc %d n %d", rc, g_req.nheaders);
    CHECK(work <= 3 * (uint64_t)n, "trickled 100 headers cost %llu for %zu bytes", (unsigned long long)work,
          n);

    /* every table case fed byte by byte gives the one-shot verdict, and an error as soon as the bad
     * byte arrives (never later than the one-shot parse of that prefix) */
    for (size_t i = 0; i < OP_ARRAY_LEN(g_rcases); i++) {
        const struct rcase *c = &g_rcases[i];
        int want = op_h1_parse_request(c->raw, c->len, &g_req);
        int want_status = g_req.error_status;
        memset(&scan, 0, sizeof(scan));
        rc = OP_H1_INCOMPLETE;
        for (k = 1; k <= c->len && rc == OP_H1_INCOMPLETE; k++) {
            rc = op_h1_parse_request_resume(c->raw, k, &scan, &g_req);
            int one = op_h1_parse_request(c->raw, k, &g_resume_req);
            CHECK(rc == one || (rc == OP_H1_COMPLETE && one == OP_H1_COMPLETE),
                  "[%s] prefix %zu: resume %d, one-shot %d", c->name, k, rc, one);
        }
        CHECK(rc == want && (rc != OP_H1_ERROR || g_req.error_status == want_status),
              "[%s] trickled: rc %d status %d, one-shot rc %d status %d", c->name, rc, g_req.error_status,
              want, want_status);
        memset(&scan, 0, sizeof(scan));
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* Keep-alive and upgrade                                                                                 */

static void test_keepalive_upgrade(void)
{
    static const struct {
        const char *raw;
        bool keep_alive, upgrade;
        const char *proto;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false, ""},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, false, ""},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false, false, ""},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: close\r\n\r\n", false, false, ""},
        {"GET / HTTP/1.0\r\n\r\n", false, false, ""},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false, ""},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false, ""},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, false, ""},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", true, true,
         "websocket"},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, upgrade\r\n\r\n", true,
         true, "websocket"},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", true, false, "websocket"},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", true, false, ""},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade, "
         "HTTP2-Settings\r\nHTTP2-Settings: x\r\n\r\n",
         true, true, "h2c"},
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(cases); i++) {
        int rc = op_h1_parse_request(cases[i].raw, strlen(cases[i].raw), &g_req);
        CHECK(rc == OP_H1_COMPLETE, "ka/upgrade case %zu: rc %d (%s)", i, rc, g_req.error_reason);
        CHECK(g_req.keep_alive == cases[i].keep_alive, "ka/upgrade case %zu: keep_alive %d", i,
              g_req.keep_alive);
        CHECK(g_req.upgrade == cases[i].upgrade, "ka/upgrade case %zu: upgrade %d", i, g_req.upgrade);
        CHECK(span_is(g_req.upgrade_proto, cases[i].proto) ||
                  (!*cases[i].proto && g_req.upgrade_proto.len == 0),
              "ka/upgrade case %zu: proto", i);
    }
}

static void test_websocket(void)
{
#define WS_OK_HDRS "Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    static const struct {
        const char *raw;
        int want;
    } cases[] = {
        {"GET /ws HTTP/1.1\r\n" WS_OK_HDRS
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         0},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\n"
         "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         0},
        {"POST /ws HTTP/1.1\r\n" WS_OK_HDRS
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /ws HTTP/1.1\r\n" WS_OK_HDRS "Sec-WebSocket-Version: 13\r\n\r\n", 400},
        {"GET /ws HTTP/1.1\r\n" WS_OK_HDRS "Sec-WebSocket-Key: short==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /ws HTTP/1.1\r\n" WS_OK_HDRS
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!=\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /ws HTTP/1.1\r\n" WS_OK_HDRS "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /ws HTTP/1.1\r\n" WS_OK_HDRS
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
         400},
        {"GET /ws HTTP/1.1\r\n" WS_OK_HDRS "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400},
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(cases); i++) {
        int rc = op_h1_parse_request(cases[i].raw, strlen(cases[i].raw), &g_req);
        CHECK(rc == OP_H1_COMPLETE, "ws case %zu: parse rc %d (%s)", i, rc, g_req.error_reason);
        const char *why = NULL;
        int st = op_h1_ws_check_request(&g_req, &why);
        CHECK((cases[i].want ? st == -EINVAL : st == 0) && (st == 0 || why), "ws case %zu: %d expected %d", i,
              st, cases[i].want);
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* Responses                                                                                              */

static void test_responses(void)
{
    static const struct {
        const char *name, *raw;
        bool head;
        int rc, framing;
        long long cl;
        bool keep_alive, upgrade;
    } cases[] = {
        {"200 CL", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false, 1, LEN, 10, true, false},
        {"200 chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 1, CHUNKED, 0, true,
         false},
        {"200 gzip,chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, 1, CHUNKED,
         0, true, false},
        {"200 until close", "HTTP/1.1 200 OK\r\nX: y\r\n\r\n", false, 1, OP_H1_BODY_UNTIL_CLOSE, 0, false,
         false},
        {"200 CL 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 1, NONE, 0, true, false},
        {"HEAD 200 CL", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, 1, NONE, 0, true, false},
        {"HEAD 200 chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, 1, NONE, 0, true,
         false},
        {"HEAD 200 no length", "HTTP/1.1 200 OK\r\n\r\n", true, 1, NONE, 0, true, false},
        {"204", "HTTP/1.1 204 No Content\r\n\r\n", false, 1, NONE, 0, true, false},
        {"304 with CL", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, 1, NONE, 0, true,
         false},
        {"100 continue", "HTTP/1.1 100 Continue\r\n\r\n", false, 1, NONE, 0, true, false},
        {"103 early hints", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, 1, NONE, 0, true, false},
        {"101 switching",
         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false, 1,
         NONE, 0, true, true},
        {"1.0 CL", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, 1, LEN, 1, false, false},
        {"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false, 1,
         LEN, 1, true, false},
        {"1.1 close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false, 1, LEN, 1,
         false, false},
        {"no reason phrase", "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", false, 1, LEN, 1, true, false},
        {"empty reason phrase", "HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n", false, 1, LEN, 1, true, false},
        {"unknown status", "HTTP/1.1 599 Whatever Text\r\nContent-Length: 1\r\n\r\n", false, 1, LEN, 1, true,
         false},
        {"CL+TE", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", false, -1, 0,
         0, 0, 0},
        {"dup CL", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", false, -1, 0, 0, 0,
         0},
        {"bad CL", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"TE chunked, gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, -1, 0, 0,
         0, 0},
        {"TE in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"2-digit status", "HTTP/1.1 20 OK\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"4-digit status", "HTTP/1.1 2000 OK\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"status 099", "HTTP/1.1 099 X\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"SP before colon", "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"bare LF", "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"CTL in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", false, -1, 0, 0, 0, 0},
        {"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", false, -1, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(cases); i++) {
        int rc = op_h1_parse_response(cases[i].raw, strlen(cases[i].raw), cases[i].head, &g_resp);
        CHECK(rc == cases[i].rc, "[resp %s] rc %d expected %d (%s)", cases[i].name, rc, cases[i].rc,
              g_resp.error_reason ? g_resp.error_reason : "");
        if (rc == OP_H1_ERROR) {
            CHECK(g_resp.error_status == 502 && g_resp.error_reason, "[resp %s] status %d", cases[i].name,
                  g_resp.error_status);
            continue;
        }
        if (rc != OP_H1_COMPLETE) continue;
        CHECK((int)g_resp.framing == cases[i].framing, "[resp %s] framing %d expected %d", cases[i].name,
              g_resp.framing, cases[i].framing);
        CHECK(g_resp.content_length == (uint64_t)cases[i].cl, "[resp %s] CL %llu", cases[i].name,
              (unsigned long long)g_resp.content_length);
        CHECK(g_resp.keep_alive == cases[i].keep_alive, "[resp %s] keep_alive %d", cases[i].name,
              g_resp.keep_alive);
        CHECK(g_resp.upgrade == cases[i].upgrade, "[resp %s] upgrade %d", cases[i].name, g_resp.upgrade);
        CHECK(g_resp.head_len == strlen(cases[i].raw), "[resp %s] head_len", cases[i].name);
    }
    int rc = op_h1_parse_response(S("HTTP/1.1 418 I'm a teapot\r\n\r\n"), false, &g_resp);
    CHECK(rc == OP_H1_COMPLETE && g_resp.status == 418 && span_is(g_resp.reason, "I'm a teapot"),
          "response status/reason");
}

int main(void)
{
    test_request_table();
    test_request_fields();
    test_limits();
    test_byte_by_byte();
    test_trickle_linear();
    test_keepalive_upgrade();
    test_websocket();
    test_responses();
    return check_report("h1 head parser");
}
