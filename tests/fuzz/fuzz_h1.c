/*
 * tests/fuzz/fuzz_h1.c — libFuzzer target for http/h1.c. The same input is used as:
 *   1. a request head: invariants (head_len <= len, spans inside the head, error status/reason set),
 *      prefix consistency (an early verdict never contradicts the full one), and on COMPLETE the
 *      upstream head we write must fit its cap, fail cleanly with -ENOSPC when short, and re-parse with
 *      the same request line, framing and upgrade; the bytes after the head go through the body tracker;
 *   2. a response head (HEAD or not, from the first byte): the same invariants, plus the client head we
 *      write must re-parse with the same status and framing;
 *   3. a chunked body: fed whole, split in two, and byte by byte, the tracker must agree on the verdict
 *      and on where the message ends.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

#define ASSERT(c)                                                                                            \
    do {                                                                                                     \
        if (!(c)) __builtin_trap();                                                                          \
    } while (0)

static struct op_h1_request g_req, g_req2;
static struct op_h1_response g_resp, g_resp2;
static char g_out[32768];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_span(op_span_t s, const char *buf, size_t head_len)
{
    if (s.len == 0) return;
    ASSERT(s.p >= buf && s.p + s.len <= buf + head_len);
}

static void check_headers(const struct op_h1_header *h, int n, const char *buf, size_t head_len)
{
    ASSERT(n >= 0 && n <= OP_H1_MAX_HEADERS);
    for (int i = 0; i < n; i++) {
        ASSERT(h[i].name.len > 0);
        check_span(h[i].name, buf, head_len);
        check_span(h[i].value, buf, head_len);
    }
}

struct sink {
    char *p;
    size_t len, cap;
};

static int sink_emit(void *ctx, const char *p, size_t n, bool in_input)
{
    (void)in_input;
    struct sink *s = ctx;
    ASSERT(n <= s->cap - s->len);
    memcpy(s->p + s->len, p, n);
    s->len += n;
    return 0;
}

/* op_h1_body_relay in pieces of input-derived sizes: same verdict and length as the feed; what it
 * emits is never more than it consumed, is itself a complete chunked body when the input was, and
 * relaying that again changes nothing (everything unforwardable was dropped the first time). */
static void relay_consistency(enum op_h1_framing f, uint64_t cl, const char *p, size_t len, int want_rc,
                              size_t want_used)
{
    static char out[64 * 1024], out2[64 * 1024];
    struct sink s = {out, 0, sizeof(out)};
    struct op_h1_body b;
    op_h1_body_init(&b, f, cl);
    int rc = OP_H1_INCOMPLETE;
    size_t off = 0;
    for (size_t i = 0; rc == OP_H1_INCOMPLETE && off < len; i++) {
        size_t step = OP_MIN(len - off, 1 + (size_t)(unsigned char)p[i % len] % 11), u = 0;
        rc = op_h1_body_relay(&b, p + off, step, &u, sink_emit, &s);
        ASSERT(u <= step && (rc != OP_H1_INCOMPLETE || u == step));
        off += u;
    }
    if (len == 0) rc = op_h1_body_feed(&b, p, 0, &off);
    ASSERT(rc == want_rc && off == want_used);
    ASSERT(s.len <= off);
    if (rc != OP_H1_COMPLETE || f != OP_H1_BODY_CHUNKED) return;
    struct sink s2 = {out2, 0, sizeof(out2)};
    size_t u = 0;
    op_h1_body_init(&b, f, cl);
    ASSERT(op_h1_body_relay(&b, out, s.len, &u, sink_emit, &s2) == OP_H1_COMPLETE && u == s.len);
    ASSERT(s2.len == s.len && memcmp(out, out2, s.len) == 0);
}

/* Whole vs split vs byte-by-byte must agree. Returns the verdict of the whole feed. */
static int body_consistency(enum op_h1_framing f, uint64_t cl, const char *p, size_t len, size_t *used_out)
{
    struct op_h1_body b;
    size_t used = 0;
    op_h1_body_init(&b, f, cl);
    int rc = op_h1_body_feed(&b, p, len, &used);
    ASSERT(used <= len);
    ASSERT(rc != OP_H1_INCOMPLETE || used == len);
    ASSERT(rc != OP_H1_ERROR || b.error_reason);
    *used_out = used;

    size_t k = len / 3, u1 = 0, u2 = 0;
    op_h1_body_init(&b, f, cl);
    int rc2 = op_h1_body_feed(&b, p, k, &u1);
    if (rc2 == OP_H1_INCOMPLETE) {
        ASSERT(u1 == k);
        rc2 = op_h1_body_feed(&b, p + k, len - k, &u2);
    }
    ASSERT(rc2 == rc && u1 + u2 == used);

    if (len <= 4096) {
        op_h1_body_init(&b, f, cl);
        size_t sum = 0;
        int rc3 = op_h1_body_feed(&b, p, 0, &sum); /* a zero-length feed gives the verdict for len == 0 */
        ASSERT(sum == 0);
        for (size_t i = 0; i < len && rc3 == OP_H1_INCOMPLETE; i++) {
            size_t u = 0;
            rc3 = op_h1_body_feed(&b, p + i, 1, &u);
            ASSERT(u <= 1);
            sum += u;
        }
        ASSERT(rc3 == rc && sum == used);
    }
    relay_consistency(f, cl, p, len, rc, used);
    return rc;
}

static void fuzz_request(const char *buf, size_t len)
{
    int rc = op_h1_parse_request(buf, len, &g_req);
    ASSERT(rc == OP_H1_ERROR || rc == OP_H1_INCOMPLETE || rc == OP_H1_COMPLETE);
    if (rc == OP_H1_ERROR) {
        int st = g_req.error_status;
        ASSERT(st == 400 || st == 414 || st == 431 || st == 501 || st == 505);
        ASSERT(g_req.error_reason && *g_req.error_reason);
    }
    int full_rc = rc, full_status = g_req.error_status;
    size_t full_head = g_req.head_len;

    /* prefix consistency at one derived point */
    size_t k = len ? (size_t)(buf[0] & 0x7f) * len / 128 : 0;
    int prc = op_h1_parse_request(buf, k, &g_req);
    if (prc == OP_H1_ERROR) ASSERT(full_rc == OP_H1_ERROR && g_req.error_status == full_status);
    if (prc == OP_H1_COMPLETE) ASSERT(full_rc == OP_H1_COMPLETE && g_req.head_len == full_head);

    /* the resumable parse, fed in pieces whose sizes come from the input, gives the one-shot verdict,
     * and never later than the one-shot parse of the same prefix */
    struct op_h1_scan scan = {0};
    int rrc = OP_H1_INCOMPLETE;
    size_t have = 0;
    for (size_t i = 0; rrc == OP_H1_INCOMPLETE && have < len; i++) {
        size_t step = 1 + (size_t)(unsigned char)buf[i % len] % 7;
        have = OP_MIN(len, have + step);
        rrc = op_h1_parse_request_resume(buf, have, &scan, &g_req);
        int one = op_h1_parse_request(buf, have, &g_req2);
        ASSERT(rrc == one);
        ASSERT(rrc != OP_H1_ERROR || g_req.error_status == g_req2.error_status);
        ASSERT(rrc != OP_H1_COMPLETE || g_req.head_len == g_req2.head_len);
    }
    ASSERT(rrc == full_rc);
    ASSERT(rrc == OP_H1_INCOMPLETE ? scan.pos == have : scan.pos == 0);

    rc = op_h1_parse_request(buf, len, &g_req);
    if (rc != OP_H1_COMPLETE) return;
    ASSERT(g_req.head_len <= len && g_req.head_len < OP_H1_MAX_HEAD);
    ASSERT(g_req.version_minor == 0 || g_req.version_minor == 1);
    check_span(g_req.method, buf, g_req.head_len);
    check_span(g_req.target, buf, g_req.head_len);
    check_span(g_req.host, buf, g_req.head_len);
    check_span(g_req.upgrade_proto, buf, g_req.head_len);
    ASSERT(g_req.method.len > 0 && g_req.target.len > 0);
    check_headers(g_req.headers, g_req.nheaders, buf, g_req.head_len);
    ASSERT(g_req.framing != OP_H1_BODY_UNTIL_CLOSE);
    ASSERT(g_req.version_minor == 0 || g_req.host.len > 0);
    const char *why = NULL;
    int ws = op_h1_ws_check_request(&g_req, &why);
    ASSERT(ws == 0 ? g_req.upgrade : (ws == -EINVAL && why));

    /* the rewritten head: fits, -ENOSPC when short, and re-parses the same */
    ssize_t n =
        op_h1_write_request_head(&g_req, "192.0.2.1", "https", 0, "X-Test: 1\r\n", g_out, sizeof(g_out));
    ASSERT(n > 0 && (size_t)n <= sizeof(g_out));
    size_t cap = (size_t)n - 1 - (len ? (size_t)(unsigned char)buf[len - 1] % (size_t)n : 0);
    ssize_t n2 = op_h1_write_request_head(&g_req, "192.0.2.1", "https", 0, "X-Test: 1\r\n", g_out, cap);
    ASSERT(n2 == -ENOSPC);
    n = op_h1_write_request_head(&g_req, "192.0.2.1", "https",
                                 len && (buf[0] & 2) ? OP_H1_FWD_UNDERSCORES : 0, "X-Test: 1\r\n", g_out,
                                 sizeof(g_out));
    if ((size_t)n < OP_H1_MAX_HEAD - 1 && g_req.nheaders + 6 <= OP_H1_MAX_HEADERS) {
        char *copy = malloc((size_t)n);
        memcpy(copy, g_out, (size_t)n);
        int rc2 = op_h1_parse_request(copy, (size_t)n, &g_req2);
        ASSERT(rc2 == OP_H1_COMPLETE);
        ASSERT(g_req2.head_len == (size_t)n);
        ASSERT(g_req2.method.len == g_req.method.len &&
               memcmp(g_req2.method.p, g_req.method.p, g_req.method.len) == 0);
        ASSERT(g_req2.target.len == g_req.target.len &&
               memcmp(g_req2.target.p, g_req.target.p, g_req.target.len) == 0);
        ASSERT(g_req2.version_minor == g_req.version_minor);
        ASSERT(g_req2.framing == g_req.framing && g_req2.content_length == g_req.content_length);
        ASSERT(g_req2.upgrade == g_req.upgrade);
        free(copy);
    }

    /* Walk the pipeline the way the proxy does: head, body up to where the tracker says it ends, then
     * the next request from exactly there. Every message boundary stays inside the input. */
    size_t off = 0;
    for (int msg = 0; msg < 8 && off < len; msg++) {
        if (op_h1_parse_request(buf + off, len - off, &g_req2) != OP_H1_COMPLETE) break;
        ASSERT(g_req2.head_len <= len - off);
        off += g_req2.head_len;
        size_t used = 0;
        int brc = body_consistency(g_req2.framing, g_req2.content_length, buf + off, len - off, &used);
        ASSERT(used <= len - off);
        off += used;
        if (brc != OP_H1_COMPLETE || g_req2.upgrade) break;
    }
}

static void fuzz_response(const char *buf, size_t len, bool head)
{
    int rc = op_h1_parse_response(buf, len, head, &g_resp);
    if (rc == OP_H1_ERROR) ASSERT(g_resp.error_status == 502 && g_resp.error_reason);
    if (rc != OP_H1_COMPLETE) return;
    ASSERT(g_resp.head_len <= len && g_resp.head_len < OP_H1_MAX_HEAD);
    ASSERT(g_resp.status >= 100 && g_resp.status <= 999);
    check_span(g_resp.reason, buf, g_resp.head_len);
    check_headers(g_resp.headers, g_resp.nheaders, buf, g_resp.head_len);
    if (g_resp.framing == OP_H1_BODY_UNTIL_CLOSE) ASSERT(!g_resp.keep_alive);
    if (head) ASSERT(g_resp.framing == OP_H1_BODY_NONE);

    bool close = len & 1;
    ssize_t n = op_h1_write_response_head(&g_resp, 1, close, NULL, g_out, sizeof(g_out));
    ASSERT(n > 0 && (size_t)n <= sizeof(g_out));
    ASSERT(op_h1_write_response_head(&g_resp, 1, close, NULL, g_out, (size_t)n - 1) == -ENOSPC);
    if ((size_t)n < OP_H1_MAX_HEAD - 1 && g_resp.nheaders + 2 <= OP_H1_MAX_HEADERS) {
        char *copy = malloc((size_t)n);
        memcpy(copy, g_out, (size_t)n);
        int rc2 = op_h1_parse_response(copy, (size_t)n, head, &g_resp2);
        ASSERT(rc2 == OP_H1_COMPLETE);
        ASSERT(g_resp2.status == g_resp.status && g_resp2.framing == g_resp.framing &&
               g_resp2.content_length == g_resp.content_length);
        free(copy);
    }
    size_t used;
    body_consistency(g_resp.framing, g_resp.content_length, buf + g_resp.head_len, len - g_resp.head_len,
                     &used);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024) return 0;
    /* exact-size copy so ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    if (size) memcpy(buf, data, size);

    fuzz_request(buf, size);
    fuzz_response(buf, size, size > 0 && (buf[0] & 1));

    size_t used;
    body_consistency(OP_H1_BODY_CHUNKED, 0, buf, size, &used);
    char n = 0;
    ssize_t w = op_h1_write_simple_response(size ? 100 + (unsigned char)buf[0] * 2 : 200, "text/plain", buf,
                                            size, size & 2, NULL, &n, 0);
    ASSERT(w == -ENOSPC);
    free(buf);
    return 0;
}
