/*
 * http/h1.c — HTTP/1.1 heads: strict scanner + llhttp cross-check, framing rules, head writers.
 *
 * Parsing a head is two passes over the same bytes:
 *   1. our scanner (scan_*): byte-exact syntax and size limits, run on every call so that a partial head
 *      is rejected as soon as a bad or excess byte arrives; it records the spans;
 *   2. once the head is complete: the semantic checks (framing, Host, target form), then llhttp on the
 *      stack, paused at on_headers_complete, whose spans must match ours one for one. Debian's llhttp
 *      8.1.0 is lenient (obs-fold, bare LF, "Host :"), so it is never the only judge; it is a second
 *      opinion that catches anything our scanner might have let through.
 * The body tracker (op_h1_body_*) is our own strict state machine; llhttp never sees bodies.
 */
#include "http/h1.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

/* ---------------------------------------------------------------------------------------------------- */
/* Character classes (RFC 9110 §5.6.2 token, §5.5 field-value)                                          */

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

/* field-vchar / SP / HTAB: everything but CTLs (NUL, CR, LF included) and DEL. */
static bool is_field_char(unsigned char c)
{
    return c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f);
}

/* Request-target bytes: visible ASCII only (no SP, CTL, DEL or obs-text). */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

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

static bool span_ieq(op_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

static bool span_ieq_span(op_span_t a, op_span_t b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.p, b.p, a.len) == 0);
}

static op_span_t span_trim(const char *p, size_t n)
{
    while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return op_span(p, n);
}

/* Iterates a comma-separated list: returns false at the end; *elem is the next trimmed element (may be
 * empty). *off is the cursor, start it at 0. */
static bool list_next(op_span_t v, size_t *off, op_span_t *elem)
{
    if (*off > v.len) return false;
    const char *start = v.len ? v.p + *off : v.p; /* no arithmetic on a NULL empty span */
    const char *comma = v.len > *off ? memchr(start, ',', v.len - *off) : NULL;
    size_t n = comma ? (size_t)(comma - start) : v.len - *off;
    *elem = span_trim(start, n);
    *off += n + 1;
    return true;
}

static bool list_has_span(op_span_t v, op_span_t token)
{
    size_t off = 0;
    op_span_t e;
    while (list_next(v, &off, &e))
        if (span_ieq_span(e, token)) return true;
    return false;
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
/* Pass 1: the strict scanner                                                                             */

struct scan {
    const char *buf;
    size_t len;
    int limit_status;  /* 431 for requests, 502 for responses */
    int syntax_status; /* 400 / 502 */
    int status;        /* set on error */
    const char *reason;
    struct op_h1_header *hdrs;
    int nhdrs;
    size_t head_len;
};

static int scan_fail(struct scan *s, int status, const char *reason)
{
    s->status = status;
    s->reason = reason;
    return OP_H1_ERROR;
}

/* Ran out of bytes at the head-size cap (elen) or at the end of what was received. */
static int scan_out(struct scan *s)
{
    if (s->len >= OP_H1_MAX_HEAD - 1) return scan_fail(s, s->limit_status, "head too large");
    return OP_H1_INCOMPLETE;
}

/* Field lines from pos up to and including the empty line. */
static int scan_fields(struct scan *s, size_t pos)
{
    const char *b = s->buf;
    /* A head of OP_H1_MAX_HEAD bytes or more is refused: its last byte would sit at index >= MAX-1. */
    size_t elen = OP_MIN(s->len, (size_t)OP_H1_MAX_HEAD - 1);
    for (;;) {
        if (pos >= elen) return scan_out(s);
        unsigned char c = (unsigned char)b[pos];
        if (c == '\r') {
            if (pos + 1 >= elen) return scan_out(s);
            if (b[pos + 1] != '\n') return scan_fail(s, s->syntax_status, "CR not followed by LF");
            s->head_len = pos + 2;
            return OP_H1_COMPLETE;
        }
        if (c == '\n') return scan_fail(s, s->syntax_status, "bare LF in head");
        if (c == ' ' || c == '\t') return scan_fail(s, s->syntax_status, "obs-fold in header");
        if (s->nhdrs >= OP_H1_MAX_HEADERS) return scan_fail(s, s->limit_status, "too many headers");
        size_t name_start = pos;
        while (pos < elen && is_tchar((unsigned char)b[pos]))
            pos++;
        if (pos >= elen) return scan_out(s);
        c = (unsigned char)b[pos];
        if (c != ':') {
            if (c == ' ' || c == '\t')
                return scan_fail(s, s->syntax_status, "whitespace before colon in header");
            if (c == '\r' || c == '\n') return scan_fail(s, s->syntax_status, "header line without colon");
            return scan_fail(s, s->syntax_status, "invalid header name");
        }
        if (pos == name_start) return scan_fail(s, s->syntax_status, "empty header name");
        op_span_t name = op_span(b + name_start, pos - name_start);
        pos++;
        size_t vstart = pos;
        while (pos < elen) {
            c = (unsigned char)b[pos];
            if (c == '\r') break;
            if (!is_field_char(c))
                return scan_fail(s, s->syntax_status, c == '\n' ? "bare LF in head" : "CTL in header value");
            pos++;
        }
        if (pos + 1 >= elen) return scan_out(s);
        if (b[pos + 1] != '\n') return scan_fail(s, s->syntax_status, "CR not followed by LF");
        s->hdrs[s->nhdrs].name = name;
        s->hdrs[s->nhdrs].value = span_trim(b + vstart, pos - vstart);
        s->nhdrs++;
        pos += 2;
    }
}

/* "HTTP/" DIGIT "." DIGIT at *pos (bounded by end). Returns INCOMPLETE if it ran out, ERROR (400/502,
 * or 505 for a well-formed other version) or COMPLETE with *minor set. */
static int scan_version(struct scan *s, size_t *pos, size_t end, int *minor, int bad_version_status)
{
    static const char pfx[] = "HTTP/";
    const char *b = s->buf;
    size_t p = *pos;
    for (size_t i = 0; i < 5; i++, p++) {
        if (p >= end) return OP_H1_INCOMPLETE;
        if (b[p] != pfx[i]) return scan_fail(s, s->syntax_status, "invalid HTTP version");
    }
    if (p >= end) return OP_H1_INCOMPLETE;
    if (b[p] < '0' || b[p] > '9') return scan_fail(s, s->syntax_status, "invalid HTTP version");
    int major = b[p++] - '0';
    if (p >= end) return OP_H1_INCOMPLETE;
    if (b[p++] != '.') return scan_fail(s, s->syntax_status, "invalid HTTP version");
    if (p >= end) return OP_H1_INCOMPLETE;
    if (b[p] < '0' || b[p] > '9') return scan_fail(s, s->syntax_status, "invalid HTTP version");
    int mn = b[p++] - '0';
    if (major != 1 || mn > 1) return scan_fail(s, bad_version_status, "unsupported HTTP version");
    *minor = mn;
    *pos = p;
    return OP_H1_COMPLETE;
}

/* CRLF at pos (< len) ending the start line; the LF may lie beyond the line cap (it is not part of the
 * line), so running out here never means "line too long". */
static int scan_eol(struct scan *s, size_t pos, size_t *next)
{
    if (s->buf[pos] != '\r')
        return scan_fail(s, s->syntax_status,
                         s->buf[pos] == '\n' ? "bare LF in head" : "invalid character in start line");
    if (pos + 1 >= s->len) return OP_H1_INCOMPLETE;
    if (s->buf[pos + 1] != '\n') return scan_fail(s, s->syntax_status, "CR not followed by LF");
    *next = pos + 2;
    return OP_H1_COMPLETE;
}

static int scan_request_line(struct scan *s, struct op_h1_request *req, size_t *next)
{
    const char *b = s->buf;
    /* The line (without CRLF) must stay below OP_H1_MAX_REQLINE bytes. */
    size_t end = OP_MIN(s->len, (size_t)OP_H1_MAX_REQLINE);
    int rc = OP_H1_INCOMPLETE;
    size_t pos = 0;
    while (pos < end && is_tchar((unsigned char)b[pos]))
        pos++;
    if (pos >= end) goto out;
    if (b[pos] != ' ') return scan_fail(s, 400, pos == 0 ? "missing method" : "invalid method");
    if (pos == 0) return scan_fail(s, 400, "missing method");
    req->method = op_span(b, pos);
    size_t tstart = ++pos;
    while (pos < end && is_target_char((unsigned char)b[pos]))
        pos++;
    if (pos >= end) goto out;
    if (b[pos] != ' ')
        return scan_fail(s, 400,
                         b[pos] == '\r' || b[pos] == '\n' ? "missing HTTP version"
                                                          : "invalid character in request target");
    if (pos == tstart) return scan_fail(s, 400, "empty request target");
    req->target = op_span(b + tstart, pos - tstart);
    pos++;
    rc = scan_version(s, &pos, end, &req->version_minor, 505);
    if (rc != OP_H1_COMPLETE) goto out;
    rc = OP_H1_INCOMPLETE;
    if (pos >= end) goto out;
    return scan_eol(s, pos, next);
out:
    if (rc == OP_H1_INCOMPLETE && s->len >= OP_H1_MAX_REQLINE)
        return scan_fail(s, 414, "request line too long");
    return rc;
}

static int scan_status_line(struct scan *s, struct op_h1_response *resp, size_t *next)
{
    const char *b = s->buf;
    size_t end = OP_MIN(s->len, (size_t)OP_H1_MAX_REQLINE);
    size_t pos = 0;
    int rc = scan_version(s, &pos, end, &resp->version_minor, 502);
    if (rc != OP_H1_COMPLETE) goto out;
    rc = OP_H1_INCOMPLETE;
    if (pos >= end) goto out;
    if (b[pos++] != ' ') return scan_fail(s, 502, "invalid status line");
    int status = 0;
    for (int i = 0; i < 3; i++, pos++) {
        if (pos >= end) goto out;
        if (b[pos] < '0' || b[pos] > '9') return scan_fail(s, 502, "invalid status code");
        status = status * 10 + (b[pos] - '0');
    }
    if (status < 100) return scan_fail(s, 502, "invalid status code");
    resp->status = status;
    resp->reason = op_span(b + pos, 0);
    if (pos >= end) goto out;
    if (b[pos] == ' ') { /* reason-phrase, possibly empty; tolerated when absent altogether */
        size_t rstart = ++pos;
        while (pos < end && b[pos] != '\r') {
            if (!is_field_char((unsigned char)b[pos]))
                return scan_fail(s, 502, b[pos] == '\n' ? "bare LF in head" : "CTL in reason phrase");
            pos++;
        }
        resp->reason = op_span(b + rstart, pos - rstart);
    }
    if (pos >= end) goto out;
    return scan_eol(s, pos, next);
out:
    if (rc == OP_H1_INCOMPLETE && s->len >= OP_H1_MAX_REQLINE)
        return scan_fail(s, 502, "status line too long");
    return rc;
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

/* Transfer-Encoding codings: returns 0 if the last coding is "chunked" and chunked appears once,
 * 501 if no coding is chunked (all well-formed), 400 otherwise. */
static int check_te(op_span_t v, const char **reason)
{
    size_t off = 0;
    op_span_t e;
    int nchunked = 0;
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

static int req_fail(struct op_h1_request *req, int status, const char *reason)
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

int op_h1_parse_request(const char *buf, size_t len, struct op_h1_request *req)
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

    struct scan s = {.buf = buf, .len = len, .limit_status = 431, .syntax_status = 400, .hdrs = req->headers};
    size_t pos = 0;
    int rc = scan_request_line(&s, req, &pos);
    if (rc == OP_H1_COMPLETE) rc = scan_fields(&s, pos);
    req->nheaders = s.nhdrs;
    if (rc == OP_H1_ERROR) return req_fail(req, s.status, s.reason);
    if (rc == OP_H1_INCOMPLETE) return OP_H1_INCOMPLETE;
    req->head_len = s.head_len;

    struct fields f;
    const char *reason = NULL;
    int st = collect_fields(req->headers, req->nheaders, &f, true, &reason);
    if (st) return req_fail(req, st, reason);
    if (f.have_te) {
        if (req->version_minor == 0) return req_fail(req, 400, "Transfer-Encoding in HTTP/1.0");
        if (f.have_cl) return req_fail(req, 400, "both Content-Length and Transfer-Encoding");
        st = check_te(f.te, &reason);
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

/* ---------------------------------------------------------------------------------------------------- */
/* Responses                                                                                              */

static int resp_fail(struct op_h1_response *resp, const char *reason)
{
    resp->error_status = 502;
    resp->error_reason = reason;
    return OP_H1_ERROR;
}

int op_h1_parse_response(const char *buf, size_t len, bool req_was_head, struct op_h1_response *resp)
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

    struct scan s = {
        .buf = buf, .len = len, .limit_status = 502, .syntax_status = 502, .hdrs = resp->headers};
    size_t pos = 0;
    int rc = scan_status_line(&s, resp, &pos);
    if (rc == OP_H1_COMPLETE) rc = scan_fields(&s, pos);
    resp->nheaders = s.nhdrs;
    if (rc == OP_H1_ERROR) return resp_fail(resp, s.reason);
    if (rc == OP_H1_INCOMPLETE) return OP_H1_INCOMPLETE;
    resp->head_len = s.head_len;

    struct fields f;
    const char *reason = NULL;
    if (collect_fields(resp->headers, resp->nheaders, &f, false, &reason)) return resp_fail(resp, reason);
    if (f.have_te) {
        if (resp->version_minor == 0) return resp_fail(resp, "Transfer-Encoding in HTTP/1.0");
        if (f.have_cl) return resp_fail(resp, "both Content-Length and Transfer-Encoding");
        if (check_te(f.te, &reason)) return resp_fail(resp, reason);
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
        return 400;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Body tracker                                                                                           */

enum body_state {
    BS_DONE,
    BS_ERROR,
    BS_LENGTH,
    BS_CLOSE,
    CS_SIZE,     /* hex digits of a chunk-size */
    CS_EXT,      /* after ';' up to CR */
    CS_SIZE_LF,  /* LF after the chunk-size line's CR */
    CS_DATA,     /* remaining bytes of chunk data */
    CS_DATA_CR,  /* CR after chunk data */
    CS_DATA_LF,  /* LF after chunk data */
    CS_TR_START, /* start of a trailer line (or the final CRLF) */
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,
    CS_END_LF, /* LF of the final empty line */
};

void op_h1_body_init(struct op_h1_body *b, enum op_h1_framing f, uint64_t content_length)
{
    memset(b, 0, sizeof(*b));
    b->framing = f;
    switch (f) {
    case OP_H1_BODY_LENGTH:
        b->remaining = content_length;
        b->state = content_length ? BS_LENGTH : BS_DONE;
        break;
    case OP_H1_BODY_CHUNKED:
        b->state = CS_SIZE;
        break;
    case OP_H1_BODY_UNTIL_CLOSE:
        b->state = BS_CLOSE;
        break;
    default:
        b->state = BS_DONE;
        break;
    }
}

bool op_h1_body_done(const struct op_h1_body *b)
{
    return b->state == BS_DONE;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int body_fail(struct op_h1_body *b, const char *reason, size_t i, size_t *used)
{
    b->state = BS_ERROR;
    b->error_reason = reason;
    b->consumed += i;
    *used = i;
    return OP_H1_ERROR;
}

static int body_chunked(struct op_h1_body *b, const char *p, size_t len, size_t *used)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)p[i];
        switch (b->state) {
        case CS_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                if (++b->ndigits > 16) return body_fail(b, "chunk size too long", i, used);
                b->remaining = (b->remaining << 4) | (uint64_t)v;
            } else if (b->ndigits == 0) {
                return body_fail(b, "invalid chunk size", i, used);
            } else if (c == ';') {
                if (++b->ext_len > OP_H1_MAX_CHUNK_EXT)
                    return body_fail(b, "chunk extensions too long", i, used);
                b->state = CS_EXT;
            } else if (c == '\r') {
                b->state = CS_SIZE_LF;
            } else {
                return body_fail(b, "invalid character after chunk size", i, used);
            }
            i++;
            break;
        }
        case CS_EXT:
            if (c == '\r') {
                b->state = CS_SIZE_LF;
            } else if (!is_field_char(c)) {
                return body_fail(b, c == '\n' ? "bare LF in chunk extension" : "CTL in chunk extension", i,
                                 used);
            } else if (++b->ext_len > OP_H1_MAX_CHUNK_EXT) {
                return body_fail(b, "chunk extensions too long", i, used);
            }
            i++;
            break;
        case CS_SIZE_LF:
            if (c != '\n') return body_fail(b, "CR not followed by LF in chunk size line", i, used);
            b->state = b->remaining ? CS_DATA : CS_TR_START;
            i++;
            break;
        case CS_DATA: {
            size_t take = (size_t)OP_MIN((uint64_t)(len - i), b->remaining);
            b->remaining -= take;
            i += take;
            if (b->remaining == 0) b->state = CS_DATA_CR;
            break;
        }
        case CS_DATA_CR:
            if (c != '\r') return body_fail(b, "missing CRLF after chunk data", i, used);
            b->state = CS_DATA_LF;
            i++;
            break;
        case CS_DATA_LF:
            if (c != '\n') return body_fail(b, "CR not followed by LF after chunk data", i, used);
            b->state = CS_SIZE;
            b->ndigits = 0;
            b->remaining = 0;
            i++;
            break;
        case CS_TR_START:
            if (c == '\r') {
                b->state = CS_END_LF;
                i++;
                break;
            }
            if (c == ' ' || c == '\t') return body_fail(b, "obs-fold in trailer", i, used);
            if (!is_tchar(c)) return body_fail(b, "invalid trailer field name", i, used);
            b->state = CS_TR_NAME;
            goto trailer_byte;
        case CS_TR_NAME:
            if (c == ':')
                b->state = CS_TR_VALUE;
            else if (c == ' ' || c == '\t')
                return body_fail(b, "whitespace before colon in trailer", i, used);
            else if (!is_tchar(c))
                return body_fail(b, "invalid trailer field name", i, used);
            goto trailer_byte;
        case CS_TR_VALUE:
            if (c == '\r')
                b->state = CS_TR_LF;
            else if (!is_field_char(c))
                return body_fail(b, c == '\n' ? "bare LF in trailer" : "CTL in trailer value", i, used);
            goto trailer_byte;
        case CS_TR_LF:
            if (c != '\n') return body_fail(b, "CR not followed by LF in trailer", i, used);
            b->state = CS_TR_START;
            goto trailer_byte;
        case CS_END_LF:
            if (c != '\n') return body_fail(b, "CR not followed by LF at end of chunked body", i, used);
            i++;
            b->state = BS_DONE;
            b->consumed += i;
            *used = i;
            return OP_H1_COMPLETE;
        default:
            return body_fail(b, "internal body state", i, used);
        }
        continue;
    trailer_byte:
        if (++b->trailer_len > OP_H1_MAX_TRAILERS) return body_fail(b, "trailers too large", i, used);
        i++;
    }
    b->consumed += i;
    *used = i;
    return OP_H1_INCOMPLETE;
}

int op_h1_body_feed(struct op_h1_body *b, const char *p, size_t len, size_t *used)
{
    *used = 0;
    switch (b->state) {
    case BS_DONE:
        return OP_H1_COMPLETE;
    case BS_ERROR:
        return OP_H1_ERROR;
    case BS_CLOSE:
        *used = len;
        b->consumed += len;
        return OP_H1_INCOMPLETE;
    case BS_LENGTH: {
        size_t take = (size_t)OP_MIN((uint64_t)len, b->remaining);
        b->remaining -= take;
        b->consumed += take;
        *used = take;
        if (b->remaining == 0) {
            b->state = BS_DONE;
            return OP_H1_COMPLETE;
        }
        return OP_H1_INCOMPLETE;
    }
    default:
        return body_chunked(b, p, len, used);
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* Writers                                                                                                */

struct wbuf {
    char *p;
    size_t cap, len;
    bool overflow;
};

static void w_put(struct wbuf *w, const char *s, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    if (n) memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void w_str(struct wbuf *w, const char *s)
{
    if (s) w_put(w, s, strlen(s));
}

static void w_span(struct wbuf *w, op_span_t s)
{
    w_put(w, s.p, s.len);
}

static void w_u64(struct wbuf *w, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    w_put(w, tmp, (size_t)n);
}

static void w_header(struct wbuf *w, op_span_t name, op_span_t value)
{
    w_span(w, name);
    w_put(w, ": ", 2);
    w_span(w, value);
    w_put(w, "\r\n", 2);
}

static ssize_t w_result(const struct wbuf *w)
{
    return w->overflow ? -ENOSPC : (ssize_t)w->len;
}

enum hop_flags {
    HOP_REQUEST = 1,     /* also drop client-supplied forwarding headers */
    HOP_KEEP_UPGRADE = 2 /* keep the Upgrade header (101 response) */
};

/* True if the header must not be forwarded. */
static bool is_hop_by_hop(op_span_t name, const struct op_h1_header *h, int n, int flags)
{
    static const char *const always[] = {"connection", "keep-alive",          "proxy-connection",  "te",
                                         "trailer",    "proxy-authorization", "proxy-authenticate"};
    static const char *const forwarding[] = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                                             "x-real-ip", "forwarded"};
    static const char *const protected[] = {"content-length", "transfer-encoding", "host"};
    for (size_t i = 0; i < OP_ARRAY_LEN(always); i++)
        if (span_ieq(name, always[i])) return true;
    if (span_ieq(name, "upgrade")) return !(flags & HOP_KEEP_UPGRADE);
    if (flags & HOP_REQUEST)
        for (size_t i = 0; i < OP_ARRAY_LEN(forwarding); i++)
            if (span_ieq(name, forwarding[i])) return true;
    /* Headers nominated by Connection are hop-by-hop too, except the framing ones and Host: dropping
     * those would change how the upstream delimits the body we forward unchanged. */
    for (size_t i = 0; i < OP_ARRAY_LEN(protected); i++)
        if (span_ieq(name, protected[i])) return false;
    for (int i = 0; i < n; i++)
        if (span_ieq(h[i].name, "connection") && list_has_span(h[i].value, name)) return true;
    return false;
}

ssize_t op_h1_write_request_head(const struct op_h1_request *req, const char *client_ip, const char *proto,
                                 const char *extra, char *out, size_t cap)
{
    struct wbuf w = {.p = out, .cap = cap};
    w_span(&w, req->method);
    w_put(&w, " ", 1);
    w_span(&w, req->target);
    w_str(&w, req->version_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    for (int i = 0; i < req->nheaders; i++) {
        const struct op_h1_header *h = &req->headers[i];
        if (!is_hop_by_hop(h->name, req->headers, req->nheaders, HOP_REQUEST))
            w_header(&w, h->name, h->value);
    }
    if (client_ip && *client_ip)
        w_header(&w, op_span("X-Forwarded-For", 15), op_span(client_ip, strlen(client_ip)));
    if (proto && *proto) w_header(&w, op_span("X-Forwarded-Proto", 17), op_span(proto, strlen(proto)));
    if (req->host.len) w_header(&w, op_span("X-Forwarded-Host", 16), req->host);
    if (req->upgrade) {
        w_str(&w, "Connection: upgrade\r\n");
        w_header(&w, op_span("Upgrade", 7), req->upgrade_proto);
    }
    w_str(&w, extra);
    w_put(&w, "\r\n", 2);
    return w_result(&w);
}

static void w_status_line(struct wbuf *w, int status, op_span_t fallback_reason)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "HTTP/1.1 %03d ", status);
    w_put(w, tmp, (size_t)n);
    const char *r = op_h1_reason(status);
    if (*r)
        w_str(w, r);
    else
        w_span(w, fallback_reason);
    w_put(w, "\r\n", 2);
}

ssize_t op_h1_write_response_head(const struct op_h1_response *resp, int client_minor, bool close,
                                  const char *extra, char *out, size_t cap)
{
    struct wbuf w = {.p = out, .cap = cap};
    w_status_line(&w, resp->status, resp->reason);
    int flags = resp->status == 101 ? HOP_KEEP_UPGRADE : 0;
    for (int i = 0; i < resp->nheaders; i++) {
        const struct op_h1_header *h = &resp->headers[i];
        if (!is_hop_by_hop(h->name, resp->headers, resp->nheaders, flags)) w_header(&w, h->name, h->value);
    }
    if (resp->status == 101)
        w_str(&w, "Connection: upgrade\r\n");
    else if (close)
        w_str(&w, "Connection: close\r\n");
    else if (client_minor == 0)
        w_str(&w, "Connection: keep-alive\r\n");
    w_str(&w, extra);
    w_put(&w, "\r\n", 2);
    return w_result(&w);
}

ssize_t op_h1_write_simple_response(int status, const char *ctype, const char *body, size_t body_len,
                                    bool close, const char *extra, char *out, size_t cap)
{
    struct wbuf w = {.p = out, .cap = cap};
    bool bodyless = (status >= 100 && status < 200) || status == 204;
    w_status_line(&w, status, op_span("", 0));
    if (ctype && !bodyless) {
        w_str(&w, "Content-Type: ");
        w_str(&w, ctype);
        w_put(&w, "\r\n", 2);
    }
    if (!bodyless) {
        w_str(&w, "Content-Length: ");
        w_u64(&w, body_len);
        w_put(&w, "\r\n", 2);
    }
    if (close) w_str(&w, "Connection: close\r\n");
    w_str(&w, extra);
    w_put(&w, "\r\n", 2);
    if (!bodyless && body) w_put(&w, body, body_len);
    return w_result(&w);
}

const char *op_h1_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}
