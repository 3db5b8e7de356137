/*
 * http/h1_parse.c — HTTP/1.1 heads: the framing and semantic rules and the llhttp cross-check. The one
 * file that includes llhttp.
 *
 * Parsing a head is two passes over the same bytes:
 *   1. our scanner (h1_scan.c): byte-exact syntax and size limits, so that a partial head is rejected as
 *      soon as a bad or excess byte arrives; it records the spans. It can stop at any byte and resume, so
 *      a head that trickles in is scanned once, not once per receive (op_h1_parse_request_resume);
 *   2. once the head is complete: the semantic checks (framing, Host, target form), then llhttp on the
 *      stack, paused at on_headers_complete, whose spans must match ours one for one. Debian's llhttp
 *      8.1.0 is lenient (obs-fold, bare LF, "Host :"), so it is never the only judge; it is a second
 *      opinion that catches anything our scanner might have let through.
 * The body tracker (h1_body.c) is our own strict state machine; llhttp never sees bodies.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "http/h1_internal.h"

/* Host / authority bytes: unreserved, sub-delims, '%', ':' and IP-literal brackets. No '@' (userinfo),
 * '/', '?', '#', '\\' or whitespace. */
static bool is_host_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case '%':
    case ':':
    case '[':
    case ']':
        return true;
    default:
        return false;
    }
}

bool op_h1_list_has_token(op_span_t v, const char *token)
{
    return list_has_span(v, op_span(token, strlen(token)));
}

const struct op_h1_header *op_h1_find_header(const struct op_h1_header *h, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (span_ieq(h[i].name, name)) return &h[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Semantic checks shared by requests and responses                                                      */

struct fields {
    bool have_cl, have_te, have_host, have_upgrade;
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool expect_continue;
    uint64_t cl;
    op_span_t te, host, upgrade;
};

/* 1*DIGIT, at most 2^63-1. */
static bool parse_content_length(op_span_t v, uint64_t *out)
{
    if (v.len == 0) return false;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c < '0' || c > '9') return false;
        if (n > (UINT64_C(0x7fffffffffffffff) - (uint64_t)(c - '0')) / 10) return false;
        n = n * 10 + (uint64_t)(c - '0');
    }
    *out = n;
    return true;
}

/*
 * Transfer-Encoding codings (RFC 9112 §6.1): returns 0 if the last coding is "chunked" and chunked
 * appears once, 501 if no coding is chunked (all well-formed), 400 otherwise; an internal helper, so
 * it returns the HTTP status to answer with rather than an errno.
 * only_chunked (requests): any coding besides the final chunked is 501 too. The relay decodes no
 * content coding and forwards the body bytes unchanged, so forwarding "gzip, chunked" verbatim leaves
 * the upstream to decode a coding the relay never checked (and "identity" is no longer a registered
 * transfer coding, read differently by different servers); rewriting it to "chunked" would hand the
 * upstream gzip bytes as if they were plain. Refusing is the one answer on which every upstream agrees.
 * Responses keep the wider rule: the client frames "gzip, chunked" by its final chunked, as we do.
 */
static int check_te(op_span_t v, bool only_chunked, const char **reason)
{
    size_t off = 0;
    op_span_t e;
    int nchunked = 0, ncodings = 0;
    bool last_chunked = false;
    if (v.len == 0) {
        *reason = "empty Transfer-Encoding";
        return 400;
    }
    while (list_next(v, &off, &e)) {
        if (e.len == 0) {
            *reason = "empty transfer coding";
            return 400;
        }
        for (size_t i = 0; i < e.len; i++)
            if (!is_tchar((unsigned char)e.p[i])) {
                *reason = "invalid transfer coding";
                return 400;
            }
        last_chunked = span_ieq(e, "chunked");
        nchunked += last_chunked;
        ncodings++;
    }
    if (nchunked == 0) {
        *reason = "unsupported transfer coding";
        return 501;
    }
    if (nchunked > 1) {
        *reason = "chunked applied more than once";
        return 400;
    }
    if (!last_chunked) {
        *reason = "chunked is not the final transfer coding";
        return 400;
    }
    if (only_chunked && ncodings > 1) {
        *reason = "transfer coding other than chunked";
        return 501;
    }
    return 0;
}

static bool check_token_list(op_span_t v)
{
    size_t off = 0;
    op_span_t e;
    while (list_next(v, &off, &e))
        for (size_t i = 0; i < e.len; i++)
            if (!is_tchar((unsigned char)e.p[i])) return false;
    return true;
}

/* Collects the framing-relevant headers; returns 0 or an HTTP status with *reason set. */
static int collect_fields(const struct op_h1_header *h, int n, struct fields *f, bool is_request,
                          const char **reason)
{
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < n; i++) {
        op_span_t name = h[i].name, v = h[i].value;
        if (span_ieq(name, "content-length")) {
            if (f->have_cl) {
                *reason = "duplicate Content-Length";
                return 400;
            }
            if (!parse_content_length(v, &f->cl)) {
                *reason = "invalid Content-Length";
                return 400;
            }
            f->have_cl = true;
        } else if (span_ieq(name, "transfer-encoding")) {
            if (f->have_te) {
                *reason = "repeated Transfer-Encoding";
                return 400;
            }
            f->have_te = true;
            f->te = v;
        } else if (span_ieq(name, "connection")) {
            if (!check_token_list(v)) {
                *reason = "invalid Connection header";
                return 400;
            }
            size_t off = 0;
            op_span_t e;
            while (list_next(v, &off, &e)) {
                if (span_ieq(e, "close"))
                    f->conn_close = true;
                else if (span_ieq(e, "keep-alive"))
                    f->conn_keep_alive = true;
                else if (span_ieq(e, "upgrade"))
                    f->conn_upgrade = true;
            }
        } else if (is_request && span_ieq(name, "host")) {
            if (f->have_host) {
                *reason = "duplicate Host";
                return 400;
            }
            f->have_host = true;
            f->host = v;
        } else if (span_ieq(name, "upgrade")) {
            if (f->have_upgrade) {
                *reason = "duplicate Upgrade";
                return 400;
            }
            f->have_upgrade = true;
            f->upgrade = v;
        } else if (is_request && span_ieq(name, "expect")) {
            if (span_ieq(v, "100-continue")) f->expect_continue = true;
        }
    }
    return 0;
}

static bool valid_authority(op_span_t a)
{
    if (a.len == 0) return false;
    for (size_t i = 0; i < a.len; i++)
        if (!is_host_char((unsigned char)a.p[i])) return false;
    return true;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Pass 2: llhttp as a second opinion                                                                     */

struct xcheck {
    const struct op_h1_header *hdrs;
    int nhdrs;
    op_span_t method, url;
    int idx;       /* header being assembled, -1 before the first */
    bool in_value; /* last callback was on_header_value */
    op_span_t name, value;
    bool mismatch;
    bool complete;
};

/* Appends a data callback's bytes to a span; llhttp may split a span only at buffer ends, and we give
 * it the whole head at once, so anything non-contiguous is a disagreement. */
static void xc_append(struct xcheck *x, op_span_t *s, const char *at, size_t n)
{
    if (s->p == NULL)
        *s = op_span(at, n);
    else if (s->p + s->len == at)
        s->len += n;
    else
        x->mismatch = true;
}

static void xc_finish_header(struct xcheck *x)
{
    if (x->idx < 0) return;
    if (x->idx >= x->nhdrs) {
        x->mismatch = true;
        return;
    }
    const struct op_h1_header *h = &x->hdrs[x->idx];
    op_span_t v = x->value.p ? span_trim(x->value.p, x->value.len) : op_span(NULL, 0);
    if (x->name.p != h->name.p || x->name.len != h->name.len) x->mismatch = true;
    if (v.len != h->value.len || (v.len && v.p != h->value.p)) x->mismatch = true;
}

static struct xcheck *xc_of(llhttp_t *p)
{
    return (struct xcheck *)p->data;
}

static int xc_on_method(llhttp_t *p, const char *at, size_t n)
{
    struct xcheck *x = xc_of(p);
    xc_append(x, &x->method, at, n);
    return 0;
}

static int xc_on_url(llhttp_t *p, const char *at, size_t n)
{
    struct xcheck *x = xc_of(p);
    xc_append(x, &x->url, at, n);
    return 0;
}

static int xc_on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct xcheck *x = xc_of(p);
    if (x->idx < 0 || x->in_value) {
        xc_finish_header(x);
        x->idx++;
        x->name = op_span(NULL, 0);
        x->value = op_span(NULL, 0);
        x->in_value = false;
    }
    xc_append(x, &x->name, at, n);
    return 0;
}

static int xc_on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct xcheck *x = xc_of(p);
    if (x->idx < 0) {
        x->mismatch = true;
        return 0;
    }
    x->in_value = true;
    xc_append(x, &x->value, at, n);
    return 0;
}

static int xc_on_headers_complete(llhttp_t *p)
{
    struct xcheck *x = xc_of(p);
    xc_finish_header(x);
    if (x->idx + 1 != x->nhdrs) x->mismatch = true;
    x->complete = true;
    return HPE_PAUSED;
}

/* Runs llhttp over buf[0..head_len). Returns 0 when it agrees with our scan, else an llhttp errno
 * (HPE_*) or -1 for a disagreement; *reason is set. */
static int llhttp_crosscheck(llhttp_type_t type, const char *buf, size_t head_len,
                             const struct op_h1_header *hdrs, int nhdrs, op_span_t method, op_span_t url,
                             int minor, const char **reason)
{
    llhttp_settings_t settings;
    llhttp_settings_init(&settings);
    if (type == HTTP_REQUEST) {
        settings.on_method = xc_on_method;
        settings.on_url = xc_on_url;
    }
    settings.on_header_field = xc_on_header_field;
    settings.on_header_value = xc_on_header_value;
    settings.on_headers_complete = xc_on_headers_complete;
    struct xcheck x = {.hdrs = hdrs, .nhdrs = nhdrs, .idx = -1};
    llhttp_t parser;
    llhttp_init(&parser, type, &settings);
    parser.data = &x;
    llhttp_errno_t err = llhttp_execute(&parser, buf, head_len);
    h1_count_scanned(head_len);
    if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
        if (err == HPE_OK) {
            *reason = "llhttp: head not complete";
            return -1;
        }
        const char *r = llhttp_get_error_reason(&parser);
        *reason = r ? r : llhttp_errno_name(err);
        return (int)err;
    }
    if (!x.complete || x.mismatch || llhttp_get_error_pos(&parser) != buf + head_len ||
        llhttp_get_http_major(&parser) != 1 || llhttp_get_http_minor(&parser) != minor) {
        *reason = "llhttp disagrees with the head scan";
        return -1;
    }
    if (type == HTTP_REQUEST &&
        (x.method.p != method.p || x.method.len != method.len || x.url.p != url.p || x.url.len != url.len)) {
        *reason = "llhttp disagrees on the request line";
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Requests                                                                                               */

static enum op_h1_result req_fail(struct op_h1_request *req, int status, const char *reason)
{
    req->error_status = status;
    req->error_reason = reason;
    return OP_H1_ERROR;
}

/* Checks the target form against the method; fills absolute_form (and host for a Host-less 1.0). */
static int check_target(struct op_h1_request *req, const struct fields *f)
{
    op_span_t t = req->target;
    if (memchr(t.p, '#', t.len)) return req_fail(req, 400, "fragment in request target");
    if (span_ieq(req->method, "CONNECT")) {
        /* authority-form: host:port. Whether CONNECT is allowed is the caller's decision. */
        if (!valid_authority(t) || !memchr(t.p, ':', t.len))
            return req_fail(req, 400, "invalid CONNECT target");
        return 0;
    }
    if (t.p[0] == '/') return 0;
    if (t.len == 1 && t.p[0] == '*') {
        if (!span_ieq(req->method, "OPTIONS"))
            return req_fail(req, 400, "asterisk-form target outside OPTIONS");
        return 0;
    }
    size_t skip = 0;
    if (t.len >= 7 && strncasecmp(t.p, "http://", 7) == 0)
        skip = 7;
    else if (t.len >= 8 && strncasecmp(t.p, "https://", 8) == 0)
        skip = 8;
    else
        return req_fail(req, 400, "invalid request target");
    size_t end = skip;
    while (end < t.len && t.p[end] != '/' && t.p[end] != '?')
        end++;
    op_span_t auth = op_span(t.p + skip, end - skip);
    if (!valid_authority(auth)) return req_fail(req, 400, "invalid authority in absolute-form target");
    if (f->have_host && !span_ieq_span(auth, f->host))
        return req_fail(req, 400, "absolute-form authority differs from Host");
    if (!f->have_host) req->host = auth;
    req->absolute_form = true;
    return 0;
}

static void req_reset(struct op_h1_request *req)
{
    req->method = req->target = req->upgrade_proto = req->host = op_span(NULL, 0);
    req->version_minor = 0;
    req->nheaders = 0;
    req->head_len = 0;
    req->framing = OP_H1_BODY_NONE;
    req->content_length = 0;
    req->keep_alive = req->upgrade = req->expect_continue = req->absolute_form = false;
    req->error_status = 0;
    req->error_reason = NULL;
}

/* Scans from scan's position recording spans into req (scan must start at 0 for the spans to be
 * whole), then on a complete head runs the semantic checks and llhttp. */
static enum op_h1_result parse_request(const char *buf, size_t len, struct op_h1_scan *scan,
                                       struct op_h1_request *req)
{
    req_reset(req);
    struct h1_scan s = {.buf = buf, .len = len, .st = scan, .hdrs = req->headers};
    enum op_h1_result rc = h1_scan_run(&s);
    req->method = s.method;
    req->target = s.target;
    req->version_minor = s.minor;
    req->nheaders = scan->nhdrs;
    if (rc == OP_H1_ERROR) return req_fail(req, s.err_status, s.err_reason);
    if (rc == OP_H1_INCOMPLETE) return OP_H1_INCOMPLETE;
    req->head_len = s.head_len;

    struct fields f;
    const char *reason = NULL;
    int st = collect_fields(req->headers, req->nheaders, &f, true, &reason);
    if (st) return req_fail(req, st, reason);
    if (f.have_te) {
        if (req->version_minor == 0) return req_fail(req, 400, "Transfer-Encoding in HTTP/1.0");
        if (f.have_cl) return req_fail(req, 400, "both Content-Length and Transfer-Encoding");
        st = check_te(f.te, true, &reason);
        if (st) return req_fail(req, st, reason);
        req->framing = OP_H1_BODY_CHUNKED;
    } else if (f.have_cl && f.cl > 0) {
        req->framing = OP_H1_BODY_LENGTH;
        req->content_length = f.cl;
    }
    if (f.have_host) {
        if (!valid_authority(f.host)) return req_fail(req, 400, f.host.len ? "invalid Host" : "empty Host");
        req->host = f.host;
    } else if (req->version_minor == 1) {
        return req_fail(req, 400, "missing Host");
    }
    if (check_target(req, &f) != 0) return OP_H1_ERROR;
    if (req->version_minor == 1)
        req->keep_alive = !f.conn_close;
    else
        req->keep_alive = f.conn_keep_alive && !f.conn_close;
    if (f.have_upgrade) {
        req->upgrade_proto = f.upgrade;
        req->upgrade = f.conn_upgrade;
        if (req->upgrade && f.upgrade.len == 0) return req_fail(req, 400, "empty Upgrade");
    }
    req->expect_continue = f.expect_continue;

    st = llhttp_crosscheck(HTTP_REQUEST, buf, req->head_len, req->headers, req->nheaders, req->method,
                           req->target, req->version_minor, &reason);
    if (st == HPE_INVALID_METHOD) return req_fail(req, 501, "unknown method");
    if (st) return req_fail(req, 400, reason);
    return OP_H1_COMPLETE;
}

enum op_h1_result op_h1_parse_request(const char *buf, size_t len, struct op_h1_request *req)
{
    struct op_h1_scan scan = {0};
    return parse_request(buf, len, &scan, req);
}

enum op_h1_result op_h1_parse_request_resume(const char *buf, size_t len, struct op_h1_scan *scan,
                                             struct op_h1_request *req)
{
    enum op_h1_result rc;
    if (scan->pos == 0) { /* first look: scan and record in one pass; a one-receive head is done here */
        rc = parse_request(buf, len, scan, req);
    } else { /* resumed: check only the new bytes; the spans are recorded once the head is whole */
        struct h1_scan s = {.buf = buf, .len = len, .st = scan};
        rc = h1_scan_run(&s);
        if (rc == OP_H1_INCOMPLETE) return rc;
        if (rc == OP_H1_ERROR) {
            req_reset(req);
            req->nheaders = scan->nhdrs;
            rc = req_fail(req, s.err_status, s.err_reason);
        } else {
            struct op_h1_scan fresh = {0};
            rc = parse_request(buf, len, &fresh, req);
        }
    }
    if (rc != OP_H1_INCOMPLETE) *scan = (struct op_h1_scan){0};
    return rc;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Responses                                                                                              */

static enum op_h1_result resp_fail(struct op_h1_response *resp, const char *reason)
{
    resp->error_status = 502;
    resp->error_reason = reason;
    return OP_H1_ERROR;
}

enum op_h1_result op_h1_parse_response(const char *buf, size_t len, bool req_was_head,
                                       struct op_h1_response *resp)
{
    resp->status = 0;
    resp->version_minor = 0;
    resp->reason = op_span(NULL, 0);
    resp->nheaders = 0;
    resp->head_len = 0;
    resp->framing = OP_H1_BODY_NONE;
    resp->content_length = 0;
    resp->keep_alive = resp->upgrade = false;
    resp->error_status = 0;
    resp->error_reason = NULL;

    struct op_h1_scan scan = {.state = S_VERSION}; /* a status line starts with the version */
    struct h1_scan s = {.buf = buf, .len = len, .response = true, .st = &scan, .hdrs = resp->headers};
    enum op_h1_result rc = h1_scan_run(&s);
    resp->status = s.status;
    resp->version_minor = s.minor;
    resp->reason = s.reason;
    resp->nheaders = scan.nhdrs;
    if (rc == OP_H1_ERROR) return resp_fail(resp, s.err_reason);
    if (rc == OP_H1_INCOMPLETE) return OP_H1_INCOMPLETE;
    resp->head_len = s.head_len;

    struct fields f;
    const char *reason = NULL;
    if (collect_fields(resp->headers, resp->nheaders, &f, false, &reason)) return resp_fail(resp, reason);
    if (f.have_te) {
        if (resp->version_minor == 0) return resp_fail(resp, "Transfer-Encoding in HTTP/1.0");
        if (f.have_cl) return resp_fail(resp, "both Content-Length and Transfer-Encoding");
        if (check_te(f.te, false, &reason)) return resp_fail(resp, reason);
    }
    resp->keep_alive = resp->version_minor == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
    int st = resp->status;
    resp->upgrade = st == 101;
    if (req_was_head || (st >= 100 && st < 200) || st == 204 || st == 304) {
        resp->framing = OP_H1_BODY_NONE;
    } else if (f.have_te) {
        resp->framing = OP_H1_BODY_CHUNKED;
    } else if (f.have_cl) {
        resp->framing = f.cl ? OP_H1_BODY_LENGTH : OP_H1_BODY_NONE;
        resp->content_length = f.cl;
    } else {
        resp->framing = OP_H1_BODY_UNTIL_CLOSE;
        resp->keep_alive = false;
    }

    if (llhttp_crosscheck(HTTP_RESPONSE, buf, resp->head_len, resp->headers, resp->nheaders, op_span(NULL, 0),
                          op_span(NULL, 0), resp->version_minor, &reason))
        return resp_fail(resp, reason);
    return OP_H1_COMPLETE;
}

static bool is_base64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int op_h1_ws_check_request(const struct op_h1_request *req, const char **reason)
{
    const char *why = NULL;
    const op_span_t *key = NULL, *version = NULL;
    if (!req->upgrade)
        why = "not an upgrade request";
    else if (!span_ieq(req->method, "GET") || memcmp(req->method.p, "GET", 3) != 0)
        why = "websocket upgrade must be GET";
    else if (req->version_minor != 1)
        why = "websocket upgrade must be HTTP/1.1";
    else if (!span_ieq(req->upgrade_proto, "websocket"))
        why = "unsupported upgrade protocol";
    for (int i = 0; !why && i < req->nheaders; i++) {
        const struct op_h1_header *h = &req->headers[i];
        if (span_ieq(h->name, "sec-websocket-key")) {
            if (key) why = "duplicate Sec-WebSocket-Key";
            key = &h->value;
        } else if (span_ieq(h->name, "sec-websocket-version")) {
            if (version) why = "duplicate Sec-WebSocket-Version";
            version = &h->value;
        }
    }
    if (!why && !key) why = "missing Sec-WebSocket-Key";
    if (!why) { /* base64 of 16 bytes: 22 alphabet characters and "==" */
        bool ok = key->len == 24 && key->p[22] == '=' && key->p[23] == '=';
        for (size_t i = 0; ok && i < 22; i++)
            ok = is_base64_char((unsigned char)key->p[i]);
        if (!ok) why = "malformed Sec-WebSocket-Key";
    }
    if (!why && (!version || version->len != 2 || memcmp(version->p, "13", 2) != 0))
        why = "unsupported Sec-WebSocket-Version";
    if (why) {
        *reason = why;
        return -EINVAL;
    }
    return 0;
}

op_span_t op_h1_origin_target(const struct op_h1_request *req)
{
    op_span_t t = req->target;
    if (!req->absolute_form) return t;
    const char *p = memchr(t.p, '/', t.len); /* the "//" after the scheme, then the path's '/' */
    p = p && p + 1 < t.p + t.len && p[1] == '/' ? memchr(p + 2, '/', t.len - (size_t)(p + 2 - t.p)) : NULL;
    return p ? op_span(p, t.len - (size_t)(p - t.p)) : op_span("/", 1);
}
