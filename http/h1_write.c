/*
 * http/h1_write.c — heads we send: the head writer (op_h1_writer: appends fit completely or fail the
 * head), the forwarded request and response heads (hop-by-hop and X-Forwarded-* handling), small complete
 * responses, reason phrases; the rewriting a route asks for (a path prefix stripped, cookies dropped,
 * CORS headers removed from a response).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "http/h1_internal.h"

/* ---------------------------------------------------------------------------------------------------- */
/* The head writer: every append fits completely or fails the whole head                                 */

void op_h1_writer_init(struct op_h1_writer *w, char *buf, size_t cap)
{
    w->p = buf;
    w->cap = cap;
    w->len = 0;
    w->err = 0;
}

static void w_fail(struct op_h1_writer *w, int err)
{
    if (!w->err) w->err = err;
}

void op_h1_put_raw(struct op_h1_writer *w, const void *p, size_t n)
{
    if (w->err) return;
    if (n > w->cap - w->len) {
        w_fail(w, -ENOSPC);
        return;
    }
    if (n) memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void w_str(struct op_h1_writer *w, const char *s)
{
    if (s) op_h1_put_raw(w, s, strlen(s));
}

static void w_span(struct op_h1_writer *w, op_span_t s)
{
    op_h1_put_raw(w, s.p, s.len);
}

/* A header line from spans the parser already validated (forwarded headers): no re-check. */
static void w_header(struct op_h1_writer *w, op_span_t name, op_span_t value)
{
    w_span(w, name);
    op_h1_put_raw(w, ": ", 2);
    w_span(w, value);
    op_h1_put_raw(w, "\r\n", 2);
}

static bool valid_name(op_span_t name)
{
    if (name.len == 0) return false;
    for (size_t i = 0; i < name.len; i++)
        if (!is_tchar((unsigned char)name.p[i])) return false;
    return true;
}

static bool valid_value(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_field_char((unsigned char)p[i])) return false;
    return true;
}

void op_h1_put_header_span(struct op_h1_writer *w, op_span_t name, op_span_t value)
{
    if (w->err) return;
    if (!valid_name(name) || !valid_value(value.p, value.len)) {
        w_fail(w, -EINVAL);
        return;
    }
    w_header(w, name, value);
}

void op_h1_put_header(struct op_h1_writer *w, const char *name, const char *value)
{
    op_h1_put_header_span(w, op_span(name, strlen(name)),
                          op_span(value ? value : "", value ? strlen(value) : 0));
}

void op_h1_put_header_u64(struct op_h1_writer *w, const char *name, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    op_h1_put_header_span(w, op_span(name, strlen(name)), op_span(tmp, (size_t)n));
}

void op_h1_put_headerf(struct op_h1_writer *w, const char *name, const char *fmt, ...)
{
    op_span_t nm = op_span(name, strlen(name));
    if (w->err) return;
    if (!valid_name(nm)) {
        w_fail(w, -EINVAL);
        return;
    }
    size_t mark = w->len;
    w_span(w, nm);
    op_h1_put_raw(w, ": ", 2);
    if (w->err) return;
    /* Formatted straight into the free space; bytes past len are not part of the head until counted. */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->p + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        w_fail(w, -EINVAL);
        return;
    }
    if ((size_t)n >= w->cap - w->len) { /* did not fit (vsnprintf needs room for its NUL too) */
        w_fail(w, -ENOSPC);
        return;
    }
    if (!valid_value(w->p + w->len, (size_t)n)) {
        w->len = mark;
        w_fail(w, -EINVAL);
        return;
    }
    w->len += (size_t)n;
    op_h1_put_raw(w, "\r\n", 2);
}

static void w_status_line(struct op_h1_writer *w, int status, op_span_t fallback_reason)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "HTTP/1.1 %03d ", status);
    op_h1_put_raw(w, tmp, (size_t)n);
    const char *r = op_h1_reason(status);
    if (*r)
        w_str(w, r);
    else
        w_span(w, fallback_reason);
    op_h1_put_raw(w, "\r\n", 2);
}

void op_h1_put_status(struct op_h1_writer *w, int status, const char *reason)
{
    if (w->err) return;
    if (status < 100 || status > 999 || (reason && !valid_value(reason, strlen(reason)))) {
        w_fail(w, -EINVAL);
        return;
    }
    if (reason) {
        char tmp[32];
        int n = snprintf(tmp, sizeof(tmp), "HTTP/1.1 %03d ", status);
        op_h1_put_raw(w, tmp, (size_t)n);
        w_str(w, reason);
        op_h1_put_raw(w, "\r\n", 2);
    } else {
        w_status_line(w, status, op_span("", 0));
    }
}

void op_h1_put_end_of_head(struct op_h1_writer *w)
{
    op_h1_put_raw(w, "\r\n", 2);
}

ssize_t op_h1_writer_result(const struct op_h1_writer *w)
{
    return w->err ? w->err : (ssize_t)w->len;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Forwarded heads and small responses                                                                    */

enum hop_flags {
    HOP_REQUEST = 1,     /* also drop client-supplied forwarding headers */
    HOP_KEEP_UPGRADE = 2 /* keep the Upgrade header (101 response) */
};

static const char *const always[] = {"connection", "keep-alive",          "proxy-connection",  "te",
                                     "trailer",    "proxy-authorization", "proxy-authenticate"};
static const char *const forwarding[] = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                                         "x-real-ip", "forwarded"};
static const char *const protected[] = {"content-length", "transfer-encoding", "host"};

/* name equals lit (lower case) when each '_' in name is read as '-', as CGI/WSGI upstreams read it. */
static bool span_ieq_dashed(op_span_t name, const char *lit)
{
    size_t n = strlen(lit);
    if (name.len != n) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name.p[i] == '_' ? '-' : name.p[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != lit[i]) return false;
    }
    return true;
}

static bool in_set_dashed(op_span_t name, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (span_ieq_dashed(name, set[i])) return true;
    return false;
}

/*
 * A request header name with '_' is dropped (as nginx does by default): an upstream that maps '_' to
 * '-' would read "Transfer_Encoding" as framing we never applied and "X_Forwarded_For" as ours. With
 * OP_H1_FWD_UNDERSCORES such names pass, except the ones that would then read as a framing, routing,
 * hop-by-hop or forwarding header.
 */
static bool underscore_dropped(op_span_t name, unsigned fwd_flags)
{
    if (!memchr(name.p, '_', name.len)) return false;
    if (!(fwd_flags & OP_H1_FWD_UNDERSCORES)) return true;
    return in_set_dashed(name, always, OP_ARRAY_LEN(always)) ||
           in_set_dashed(name, forwarding, OP_ARRAY_LEN(forwarding)) ||
           in_set_dashed(name, protected, OP_ARRAY_LEN(protected)) || span_ieq_dashed(name, "upgrade");
}

/* True if the header must not be forwarded. */
static bool is_hop_by_hop(op_span_t name, const struct op_h1_header *h, int n, int flags)
{
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

/* The request target with o->strip_prefix bytes removed from the start of its path and o->path_prefix put
 * before what is left: the path keeps a leading '/', the query (and an absolute-form scheme and authority)
 * are kept. */
/* name is one of the NULL-terminated names. */
static bool name_in(op_span_t name, const char *const *names)
{
    for (; *names; names++)
        if (strlen(*names) == name.len && memcmp(*names, name.p, name.len) == 0) return true;
    return false;
}

/* The query q ("a=1&b" after '?', may be empty) without the parameters named in drop: "?rest" or nothing. */
static void w_query(struct op_h1_writer *w, op_span_t q, const char *const *drop)
{
    bool first = true;
    const char *p = q.p, *end = q.p + q.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        op_span_t name = op_span(p, (size_t)((eq ? eq : e) - p));
        if (e > p && !name_in(name, drop)) {
            op_h1_put_raw(w, first ? "?" : "&", 1);
            op_h1_put_raw(w, p, (size_t)(e - p));
            first = false;
        }
        p = e + 1;
    }
}

static void w_target_path(struct op_h1_writer *w, op_span_t t, const struct op_h1_req_opts *o);

static void w_target(struct op_h1_writer *w, op_span_t t, const struct op_h1_req_opts *o)
{
    const char *q = o->drop_query ? memchr(t.p, '?', t.len) : NULL;
    if (!q) {
        w_target_path(w, t, o);
        return;
    }
    w_target_path(w, op_span(t.p, (size_t)(q - t.p)), o);
    w_query(w, op_span(q + 1, t.len - (size_t)(q + 1 - t.p)), o->drop_query);
}

static void w_target_path(struct op_h1_writer *w, op_span_t t, const struct op_h1_req_opts *o)
{
    size_t start = 0, strip = o->strip_prefix;
    op_span_t pre = op_span(o->path_prefix, o->path_prefix ? o->path_prefix_len : 0);
    if (pre.len && pre.p[pre.len - 1] == '/') pre.len--; /* joined with the path's own '/' */
    if (!pre.len && !strip) {
        w_span(w, t);
        return;
    }
    if (t.len && t.p[0] != '/') { /* absolute-form: the path starts after the authority */
        const char *ss = t.len >= 3 ? memmem(t.p, t.len, "://", 3) : NULL;
        if (!ss) { /* asterisk-form: nothing to strip or prepend */
            w_span(w, t);
            return;
        }
        start = (size_t)(ss - t.p) + 3;
        while (start < t.len && t.p[start] != '/' && t.p[start] != '?')
            start++;
    }
    const char *q = memchr(t.p + start, '?', t.len - start);
    size_t pend = q ? (size_t)(q - t.p) : t.len;
    size_t from = strip < pend - start ? start + strip : pend;
    op_h1_put_raw(w, t.p, start);
    op_h1_put_raw(w, pre.p, pre.len);
    if (from == pend || t.p[from] != '/') op_h1_put_raw(w, "/", 1);
    op_h1_put_raw(w, t.p + from, t.len - from);
}

/* name matches one of the patterns (exact, case-sensitive as cookie names are; "x*" is a prefix). */
static bool cookie_dropped(op_span_t name, const char *const *pats)
{
    for (; *pats; pats++) {
        size_t n = strlen(*pats);
        if (n && (*pats)[n - 1] == '*') {
            if (name.len >= n - 1 && memcmp(name.p, *pats, n - 1) == 0) return true;
        } else if (name.len == n && memcmp(name.p, *pats, n) == 0) {
            return true;
        }
    }
    return false;
}

/* A Cookie header without the dropped cookies (pairs rejoined with "; "), or nothing when none is left. */
static void w_cookie(struct op_h1_writer *w, const struct op_h1_header *h, const char *const *drop)
{
    size_t mark = w->len;
    bool any = false;
    const char *p = h->value.p, *end = h->value.p + h->value.len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        op_span_t pair = span_trim(p, (size_t)((semi ? semi : end) - p));
        p = semi ? semi + 1 : end;
        if (!pair.len) continue;
        const char *eq = memchr(pair.p, '=', pair.len);
        op_span_t name = span_trim(pair.p, eq ? (size_t)(eq - pair.p) : pair.len);
        if (cookie_dropped(name, drop)) continue;
        if (!any) {
            w_span(w, h->name);
            op_h1_put_raw(w, ": ", 2);
        } else {
            op_h1_put_raw(w, "; ", 2);
        }
        w_span(w, pair);
        any = true;
    }
    if (any)
        op_h1_put_raw(w, "\r\n", 2);
    else if (!w->err)
        w->len = mark;
}

/* name is one of the NULL-terminated names (case-insensitive); false without names. */
static bool header_dropped(op_span_t name, const char *const *names)
{
    for (; names && *names; names++)
        if (span_ieq(name, *names)) return true;
    return false;
}

ssize_t op_h1_write_request_head_opts(const struct op_h1_request *req, const char *client_ip,
                                      const char *proto, const struct op_h1_req_opts *o, char *out,
                                      size_t cap)
{
    static const struct op_h1_req_opts none;
    if (!o) o = &none;
    struct op_h1_writer w;
    op_h1_writer_init(&w, out, cap);
    w_span(&w, req->method);
    op_h1_put_raw(&w, " ", 1);
    w_target(&w, req->target, o);
    w_str(&w, req->version_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    for (int i = 0; i < req->nheaders; i++) {
        const struct op_h1_header *h = &req->headers[i];
        if (is_hop_by_hop(h->name, req->headers, req->nheaders, HOP_REQUEST) ||
            underscore_dropped(h->name, o->fwd_flags) || header_dropped(h->name, o->drop_headers))
            continue;
        if (o->drop_cookies && span_ieq(h->name, "cookie"))
            w_cookie(&w, h, o->drop_cookies);
        else
            w_header(&w, h->name, h->value);
    }
    if (client_ip && *client_ip) op_h1_put_header(&w, "X-Forwarded-For", client_ip);
    if (proto && *proto) op_h1_put_header(&w, "X-Forwarded-Proto", proto);
    if (req->host.len) w_header(&w, op_span("X-Forwarded-Host", 16), req->host);
    if (req->upgrade) {
        w_str(&w, "Connection: upgrade\r\n");
        w_header(&w, op_span("Upgrade", 7), req->upgrade_proto);
    }
    w_str(&w, o->extra);
    op_h1_put_raw(&w, "\r\n", 2);
    return op_h1_writer_result(&w);
}

ssize_t op_h1_write_request_head(const struct op_h1_request *req, const char *client_ip, const char *proto,
                                 unsigned fwd_flags, const char *extra, char *out, size_t cap)
{
    struct op_h1_req_opts o = {.fwd_flags = fwd_flags, .extra = extra};
    return op_h1_write_request_head_opts(req, client_ip, proto, &o, out, cap);
}

static const char *const cors_headers[] = {"access-control-allow-origin", "access-control-allow-credentials",
                                           "access-control-allow-methods", "access-control-allow-headers"};
static const char *const cors_vary[] = {"origin", "access-control-request-method",
                                        "access-control-request-methods", "access-control-request-headers"};

/* A Vary header without the CORS request headers (elements rejoined with ", "), or nothing when none
 * is left. */
static void w_vary_no_cors(struct op_h1_writer *w, const struct op_h1_header *h)
{
    size_t mark = w->len, off = 0;
    bool any = false;
    op_span_t e;
    while (list_next(h->value, &off, &e)) {
        bool drop = !e.len;
        for (size_t i = 0; i < OP_ARRAY_LEN(cors_vary) && !drop; i++)
            drop = span_ieq(e, cors_vary[i]);
        if (drop) continue;
        if (!any) {
            w_span(w, h->name);
            op_h1_put_raw(w, ": ", 2);
        } else {
            op_h1_put_raw(w, ", ", 2);
        }
        w_span(w, e);
        any = true;
    }
    if (any)
        op_h1_put_raw(w, "\r\n", 2);
    else if (!w->err)
        w->len = mark;
}

static bool is_cors_header(op_span_t name)
{
    for (size_t i = 0; i < OP_ARRAY_LEN(cors_headers); i++)
        if (span_ieq(name, cors_headers[i])) return true;
    return false;
}

ssize_t op_h1_write_response_head_opts(const struct op_h1_response *resp, int client_minor, bool close,
                                       const struct op_h1_resp_opts *o, char *out, size_t cap)
{
    static const struct op_h1_resp_opts none;
    if (!o) o = &none;
    bool no_cors = o->flags & OP_H1_RESP_NO_CORS;
    struct op_h1_writer w;
    op_h1_writer_init(&w, out, cap);
    w_status_line(&w, resp->status, resp->reason);
    int flags = resp->status == 101 ? HOP_KEEP_UPGRADE : 0;
    for (int i = 0; i < resp->nheaders; i++) {
        const struct op_h1_header *h = &resp->headers[i];
        if (is_hop_by_hop(h->name, resp->headers, resp->nheaders, flags)) continue;
        if (no_cors && is_cors_header(h->name)) continue;
        if (no_cors && span_ieq(h->name, "vary"))
            w_vary_no_cors(&w, h);
        else
            w_header(&w, h->name, h->value);
    }
    if (resp->status == 101)
        w_str(&w, "Connection: upgrade\r\n");
    else if (close)
        w_str(&w, "Connection: close\r\n");
    else if (client_minor == 0)
        w_str(&w, "Connection: keep-alive\r\n");
    w_str(&w, o->extra);
    w_str(&w, o->extra2);
    op_h1_put_raw(&w, "\r\n", 2);
    return op_h1_writer_result(&w);
}

ssize_t op_h1_write_response_head(const struct op_h1_response *resp, int client_minor, bool close,
                                  const char *extra, char *out, size_t cap)
{
    struct op_h1_resp_opts o = {.extra = extra};
    return op_h1_write_response_head_opts(resp, client_minor, close, &o, out, cap);
}

ssize_t op_h1_write_simple_response(int status, const char *ctype, const char *body, size_t body_len,
                                    bool close, const char *extra, char *out, size_t cap)
{
    struct op_h1_writer w;
    op_h1_writer_init(&w, out, cap);
    bool bodyless = (status >= 100 && status < 200) || status == 204;
    w_status_line(&w, status, op_span("", 0));
    if (ctype && !bodyless) op_h1_put_header(&w, "Content-Type", ctype);
    if (!bodyless) op_h1_put_header_u64(&w, "Content-Length", body_len);
    if (close) w_str(&w, "Connection: close\r\n");
    w_str(&w, extra);
    op_h1_put_raw(&w, "\r\n", 2);
    if (!bodyless && body) op_h1_put_raw(&w, body, body_len);
    return op_h1_writer_result(&w);
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
