/*
 * tests/unit/test_h1_body.c — HTTP/1.1 body framing (http/h1_body.c): the Content-Length countdown and
 * the chunked tracker (split at every byte, pipelined next request, every malformed shape), and
 * op_h1_body_relay's trailer filter (forbidden trailer fields dropped whole at any receive boundary).
 * Prints one line per failed check; exits 1 on any failure.
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

/* ---------------------------------------------------------------------------------------------------- */
/* Body tracker                                                                                           */

static const char g_next_req[] = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

/* Feeds body+next request split into two pieces at every position and one byte at a time; the body must
 * end exactly at body_len and the remainder must parse as the pipelined request. */
static void check_chunked_ok(const char *name, const char *body, size_t body_len)
{
    size_t nl = sizeof(g_next_req) - 1, total = body_len + nl;
    char *buf = malloc(total);
    memcpy(buf, body, body_len);
    memcpy(buf + body_len, g_next_req, nl);
    struct op_h1_body b;
    size_t used = 0;

    op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
    int rc = op_h1_body_feed(&b, buf, total, &used);
    CHECK(rc == OP_H1_COMPLETE && used == body_len, "[%s] whole: rc %d used %zu/%zu (%s)", name, rc, used,
          body_len, b.error_reason ? b.error_reason : "");
    rc = op_h1_parse_request(buf + used, total - used, &g_req);
    CHECK(rc == OP_H1_COMPLETE && span_is(g_req.target, "/next"), "[%s] pipelined request after body", name);

    for (size_t k = 0; k <= total; k++) { /* two pieces */
        op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
        size_t u1 = 0, u2 = 0;
        rc = op_h1_body_feed(&b, buf, k, &u1);
        if (k < body_len) {
            CHECK(rc == OP_H1_INCOMPLETE && u1 == k, "[%s] split %zu first: rc %d used %zu", name, k, rc, u1);
            rc = op_h1_body_feed(&b, buf + k, total - k, &u2);
            CHECK(rc == OP_H1_COMPLETE && u1 + u2 == body_len, "[%s] split %zu second: rc %d used %zu", name,
                  k, rc, u1 + u2);
        } else {
            CHECK(rc == OP_H1_COMPLETE && u1 == body_len, "[%s] split %zu: rc %d used %zu", name, k, rc, u1);
        }
        CHECK(op_h1_body_done(&b), "[%s] split %zu: not done", name, k);
    }

    op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0); /* one byte at a time */
    size_t sum = 0;
    for (size_t k = 0; k < body_len; k++) {
        rc = op_h1_body_feed(&b, buf + k, 1, &used);
        sum += used;
        int want = k + 1 == body_len ? OP_H1_COMPLETE : OP_H1_INCOMPLETE;
        CHECK(rc == want && used == 1, "[%s] byte %zu: rc %d used %zu", name, k, rc, used);
        if (rc != want) break;
    }
    rc = op_h1_body_feed(&b, buf + body_len, nl, &used);
    CHECK(rc == OP_H1_COMPLETE && used == 0 && sum == body_len, "[%s] after completion: rc %d used %zu", name,
          rc, used);
    free(buf);
}

static void check_chunked_bad(const char *name, const char *body, size_t len)
{
    struct op_h1_body b;
    size_t used = 0;
    op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
    int rc = op_h1_body_feed(&b, body, len, &used);
    CHECK(rc == OP_H1_ERROR && b.error_reason, "[%s] whole: expected ERROR, rc %d used %zu", name, rc, used);
    /* byte by byte: must also end in ERROR, never COMPLETE */
    op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
    rc = OP_H1_INCOMPLETE;
    for (size_t k = 0; k < len && rc == OP_H1_INCOMPLETE; k++)
        rc = op_h1_body_feed(&b, body + k, 1, &used);
    CHECK(rc == OP_H1_ERROR, "[%s] byte by byte: rc %d", name, rc);
    rc = op_h1_body_feed(&b, "0\r\n\r\n", 5, &used);
    CHECK(rc == OP_H1_ERROR, "[%s] error is sticky", name);
}

static void test_body(void)
{
    check_chunked_ok("simple", S("5\r\nhello\r\n0\r\n\r\n"));
    check_chunked_ok("two chunks hex",
                     S("A\r\n0123456789\r\n1f\r\n0123456789012345678901234567890\r\n0\r\n\r\n"));
    check_chunked_ok("uppercase hex, leading zeros", S("000B\r\nhello world\r\n00\r\n\r\n"));
    check_chunked_ok("extensions", S("5;name=value;flag\r\nhello\r\n0;last\r\n\r\n"));
    check_chunked_ok("trailers", S("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:\r\n\r\n"));
    check_chunked_ok("empty body", S("0\r\n\r\n"));
    check_chunked_ok("data with CRLF inside", S("4\r\n\r\n\r\n\r\n0\r\n\r\n"));

    check_chunked_bad("space after size", S("5 \r\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("space before size", S(" 5\r\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("plus sign", S("+5\r\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("minus sign", S("-5\r\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("0x prefix", S("0x5\r\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("empty size", S("\r\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("non-hex", S("5g\r\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("17 hex digits", S("00000000000000005\r\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("bare LF after size", S("5\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("CR without LF after size", S("5\rxhello\r\n0\r\n\r\n"));
    check_chunked_bad("bare LF after data", S("5\r\nhello\n0\r\n\r\n"));
    check_chunked_bad("data longer than size", S("5\r\nhello!\r\n0\r\n\r\n"));
    check_chunked_bad("bare LF at end", S("5\r\nhello\r\n0\r\n\n"));
    check_chunked_bad("CTL in extension", S("5;a\x01\r\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("bare LF in extension", S("5;a\nhello\r\n0\r\n\r\n"));
    check_chunked_bad("trailer obs-fold", S("0\r\nX: a\r\n b\r\n\r\n"));
    check_chunked_bad("trailer SP before colon", S("0\r\nX : a\r\n\r\n"));
    check_chunked_bad("trailer without colon", S("0\r\nXa\r\n\r\n"));
    check_chunked_bad("trailer CTL", S("0\r\nX: a\x7f\r\n\r\n"));
    check_chunked_bad("trailer bare LF", S("0\r\nX: a\n\r\n"));

    /* 16 hex digits is the maximum: accepted (then waits for data) */
    struct op_h1_body b;
    size_t used;
    op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
    int rc = op_h1_body_feed(&b, S("ffffffffffffffff\r\nabc"), &used);
    CHECK(rc == OP_H1_INCOMPLETE && used == 21, "16 hex digits: rc %d used %zu", rc, used);

    /* chunk-extension cap: exactly OP_H1_MAX_CHUNK_EXT bytes (incl. ';') fine, one more refused */
    static char buf[16384];
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = 0;
        buf[n++] = '0';
        buf[n++] = ';';
        memset(buf + n, 'e', OP_H1_MAX_CHUNK_EXT - 1 + (size_t)extra);
        n += OP_H1_MAX_CHUNK_EXT - 1 + (size_t)extra;
        memcpy(buf + n, "\r\n\r\n", 4);
        n += 4;
        op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
        rc = op_h1_body_feed(&b, buf, n, &used);
        CHECK(rc == (extra ? OP_H1_ERROR : OP_H1_COMPLETE), "chunk ext of %d bytes: rc %d",
              OP_H1_MAX_CHUNK_EXT + extra, rc);
    }
    /* the cap is per message: many small extensions add up */
    {
        size_t n = 0;
        while (n < 8000) {
            memcpy(buf + n, "1;abcdefghij\r\nx\r\n", 17);
            n += 17;
        }
        memcpy(buf + n, "0\r\n\r\n", 5);
        n += 5;
        op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
        rc = op_h1_body_feed(&b, buf, n, &used);
        CHECK(rc == OP_H1_ERROR, "chunk ext summed over chunks: rc %d", rc);
    }
    /* trailer cap */
    for (int big = 0; big <= 1; big++) {
        size_t n = 0;
        memcpy(buf, "0\r\n", 3);
        n = 3;
        size_t line = OP_H1_MAX_TRAILERS + (size_t)big; /* "X: vvv\r\n" */
        memcpy(buf + n, "X: ", 3);
        memset(buf + n + 3, 'v', line - 5);
        memcpy(buf + n + line - 2, "\r\n", 2);
        n += line;
        memcpy(buf + n, "\r\n", 2);
        n += 2;
        op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
        rc = op_h1_body_feed(&b, buf, n, &used);
        CHECK(rc == (big ? OP_H1_ERROR : OP_H1_COMPLETE), "trailers of %zu bytes: rc %d", line, rc);
    }

    /* Content-Length */
    static const char cl_body[] = "0123456789GET / HTTP/1.1\r\n";
    for (size_t k = 0; k <= sizeof(cl_body) - 1; k++) {
        op_h1_body_init(&b, OP_H1_BODY_LENGTH, 10);
        size_t u1, u2 = 0;
        rc = op_h1_body_feed(&b, cl_body, k, &u1);
        if (rc == OP_H1_INCOMPLETE) rc = op_h1_body_feed(&b, cl_body + k, sizeof(cl_body) - 1 - k, &u2);
        CHECK(rc == OP_H1_COMPLETE && u1 + u2 == 10, "CL split %zu: rc %d used %zu", k, rc, u1 + u2);
    }
    op_h1_body_init(&b, OP_H1_BODY_LENGTH, 0);
    rc = op_h1_body_feed(&b, "x", 1, &used);
    CHECK(rc == OP_H1_COMPLETE && used == 0, "CL 0");
    op_h1_body_init(&b, OP_H1_BODY_NONE, 0);
    rc = op_h1_body_feed(&b, "x", 1, &used);
    CHECK(rc == OP_H1_COMPLETE && used == 0, "NONE");
    op_h1_body_init(&b, OP_H1_BODY_UNTIL_CLOSE, 0);
    for (int i = 0; i < 3; i++) {
        rc = op_h1_body_feed(&b, "0\r\n\r\n", 5, &used);
        CHECK(rc == OP_H1_INCOMPLETE && used == 5, "UNTIL_CLOSE never completes");
    }
}

/* Trailers: op_h1_body_relay forwards the chunked framing and data unchanged and drops the trailer
 * fields that must not be forwarded, whole lines, whatever the receive boundaries. */
struct collect {
    char buf[4096];
    size_t len;
    int fail_after; /* calls before the emitter refuses (-1: never) */
};

static int collect_emit(void *ctx, const char *p, size_t n, bool in_input)
{
    (void)in_input;
    struct collect *c = ctx;
    if (c->fail_after == 0) return -ENOBUFS;
    if (c->fail_after > 0) c->fail_after--;
    if (n > sizeof(c->buf) - c->len) return -ENOSPC;
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    return 0;
}

/* Relays body in pieces of `step` bytes (0: split once at `split`); returns the verdict. */
static int relay_split(const char *body, size_t len, size_t step, size_t split, struct collect *out,
                       size_t *used_total)
{
    struct op_h1_body b;
    op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
    out->len = 0;
    *used_total = 0;
    int rc = OP_H1_INCOMPLETE;
    size_t off = 0;
    for (int piece_no = 0; rc == OP_H1_INCOMPLETE && off < len; piece_no++) {
        size_t n = step ? OP_MIN(step, len - off) : (piece_no == 0 ? split : len - off);
        char *piece = malloc(n ? n : 1); /* exact size: ASan catches a read outside the piece */
        memcpy(piece, body + off, n);
        size_t used = 0;
        rc = op_h1_body_relay(&b, piece, n, &used, collect_emit, out);
        free(piece);
        off += used;
        *used_total += used;
        if (used < n) break;
    }
    return rc;
}

static void test_trailers(void)
{
    static const char body[] = "5\r\nhello\r\n0\r\n"
                               "Content-Length: 50\r\n"
                               "X-Sum: abc\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "host: evil\r\n"
                               "Authorization: Bearer x\r\n"
                               "Set-Cookie: s=1\r\n"
                               "X_Forwarded_For: 6.6.6.6\r\n"
                               "Server-Timing: db;dur=53\r\n"
                               "Connection: close\r\n"
                               "\r\nGET /next";
    static const char want[] = "5\r\nhello\r\n0\r\nX-Sum: abc\r\nServer-Timing: db;dur=53\r\n\r\n";
    size_t len = sizeof(body) - 1, blen = len - 9;
    static struct collect out;
    out.fail_after = -1;
    size_t used;
    for (size_t split = 0; split <= len; split++) {
        int rc = relay_split(body, len, 0, split, &out, &used);
        bool ok = rc == OP_H1_COMPLETE && used == blen && out.len == sizeof(want) - 1 &&
                  memcmp(out.buf, want, out.len) == 0;
        CHECK(ok, "trailers split at %zu: rc %d used %zu out %.*s", split, rc, used, (int)out.len, out.buf);
    }
    for (size_t step = 1; step <= 7; step++) {
        int rc = relay_split(body, len, step, 0, &out, &used);
        CHECK(rc == OP_H1_COMPLETE && used == blen && out.len == sizeof(want) - 1 &&
                  memcmp(out.buf, want, out.len) == 0,
              "trailers in %zu-byte pieces: rc %d out %.*s", step, rc, (int)out.len, out.buf);
    }
    /* op_h1_body_feed, which only counts, agrees on where the body ends */
    struct op_h1_body b;
    op_h1_body_init(&b, OP_H1_BODY_CHUNKED, 0);
    int rc = op_h1_body_feed(&b, body, len, &used);
    CHECK(rc == OP_H1_COMPLETE && used == blen, "feed: rc %d used %zu", rc, used);

    /* no trailers, and a long name: kept whole when it fits, dropped past OP_H1_TRAILER_NAME_MAX */
    static char big[1024];
    static char name64[OP_H1_TRAILER_NAME_MAX + 1], name65[OP_H1_TRAILER_NAME_MAX + 2];
    memset(name64, 'n', OP_H1_TRAILER_NAME_MAX);
    memset(name65, 'n', OP_H1_TRAILER_NAME_MAX + 1);
    int bl = snprintf(big, sizeof(big), "3\r\nabc\r\n0\r\n%s: 1\r\n%s: 2\r\n\r\n", name64, name65);
    char wantbig[1024];
    int wl = snprintf(wantbig, sizeof(wantbig), "3\r\nabc\r\n0\r\n%s: 1\r\n\r\n", name64);
    for (size_t step = 1; step <= 80; step += 13) {
        rc = relay_split(big, (size_t)bl, step, 0, &out, &used);
        CHECK(rc == OP_H1_COMPLETE && out.len == (size_t)wl && memcmp(out.buf, wantbig, out.len) == 0,
              "long trailer names, step %zu: %.*s", step, (int)out.len, out.buf);
    }
    rc = relay_split(S("0\r\n\r\n"), 1, 0, &out, &used);
    CHECK(rc == OP_H1_COMPLETE && out.len == 5 && memcmp(out.buf, "0\r\n\r\n", 5) == 0, "no trailers");

    /* a bad byte in a trailer: ERROR, what came before it is emitted, the rest is not */
    rc = relay_split(S("1\r\nx\r\n0\r\nX-A: 1\r\nBad Name: 2\r\n\r\n"), 100, 0, &out, &used);
    CHECK(rc == OP_H1_ERROR && out.len == 17 && memcmp(out.buf, "1\r\nx\r\n0\r\nX-A: 1\r\n", 17) == 0,
          "bad trailer: rc %d out %.*s", rc, (int)out.len, out.buf);
    /* an emitter failure stops the relay with ERROR */
    out.fail_after = 1;
    rc = relay_split(S("1\r\nx\r\n0\r\nX-A: 1\r\n\r\n"), 1, 0, &out, &used);
    CHECK(rc == OP_H1_ERROR, "emitter failure: rc %d", rc);
    out.fail_after = -1;
    /* Content-Length bodies pass through whole */
    op_h1_body_init(&b, OP_H1_BODY_LENGTH, 4);
    out.len = 0;
    rc = op_h1_body_relay(&b, "abcdGET", 7, &used, collect_emit, &out);
    CHECK(rc == OP_H1_COMPLETE && used == 4 && out.len == 4 && memcmp(out.buf, "abcd", 4) == 0,
          "length relay");
}

int main(void)
{
    test_body();
    test_trailers();
    return check_report("h1 body framing and trailer filter");
}
