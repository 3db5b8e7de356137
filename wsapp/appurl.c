/* wsapp/appurl.c — path and subdomain app URLs, the app request and its checks (see appurl.h). */
#include "wsapp/appurl.h"

#include <errno.h>
#include <string.h>

#include "proto/sha256.h"
#include "util/host.h"

static const char *const access_names[] = {
    [OP_WSAPP_PATH] = "path",
    [OP_WSAPP_SUBDOMAIN] = "subdomain",
    [OP_WSAPP_TERMINAL] = "terminal",
};

const char *op_wsapp_access_name(enum op_wsapp_access a)
{
    if ((int)a < OP_WSAPP_PATH || (int)a > OP_WSAPP_TERMINAL) return "unknown";
    return access_names[a];
}

enum op_wsapp_access op_wsapp_access_parse(const char *s, size_t n)
{
    for (int a = OP_WSAPP_PATH; a <= OP_WSAPP_TERMINAL; a++)
        if (strlen(access_names[a]) == n && memcmp(access_names[a], s, n) == 0)
            return (enum op_wsapp_access)a;
    return 0;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The name rule of app URLs: [a-zA-Z0-9]+(-[a-zA-Z0-9]+)*, case kept. */
static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-') {
            if (s[i + 1] == '-') return false; /* i + 1 < n: the last byte is not '-' */
        } else if (!is_alnum(s[i])) {
            return false;
        }
    }
    return true;
}

/* Copies s[0..n) into a NAME_MAX field; false if it does not fit. */
static bool put_name(char dst[OP_WSAPP_NAME_MAX + 1], const char *s, size_t n)
{
    if (n > OP_WSAPP_NAME_MAX) return false;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

/* Decimal 0..65535 over the whole of s[0..n) (leading zeros allowed, no sign), or -1. */
static int port_digits(const char *s, size_t n)
{
    if (n == 0) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
        if (v > 65535) return -1;
    }
    return (int)v;
}

int op_wsapp_port(const char *slug_or_port, bool *https)
{
    size_t n = strnlen(slug_or_port, OP_WSAPP_NAME_MAX + 1);
    bool tls = false;
    int p = -1;
    if (n > 1 && slug_or_port[n - 1] == 's') {
        p = port_digits(slug_or_port, n - 1);
        tls = p >= 0;
    }
    if (p < 0) p = port_digits(slug_or_port, n);
    if (https) *https = p >= 0 && tls;
    return p;
}

/* ---- path apps ---- */

/* The end of the segment that starts at p (the next '/' or end). */
static size_t seg_len(const char *p, const char *end)
{
    const char *s = memchr(p, '/', (size_t)(end - p));
    return s ? (size_t)(s - p) : (size_t)(end - p);
}

static enum op_wsapp_parse bad(int *status, const char **why, int st, const char *msg)
{
    *status = st;
    *why = msg;
    return OP_WSAPP_BAD;
}

enum op_wsapp_parse op_wsapp_parse_path(const char *path, size_t len, struct op_wsapp_req *out,
                                        size_t *rest_off, int *status, const char **why)
{
    const char *p = path, *end = path + len;
    if (len >= 2 && memcmp(p, "/@", 2) == 0)
        p += 2;
    else if (len >= 4 && memcmp(p, "/%40", 4) == 0)
        p += 4;
    else
        return OP_WSAPP_NOT_APP;
    /* user / workspace[.agent] / "apps" / slug, each non-empty, then end or '/' */
    const char *seg[4];
    size_t sl[4];
    for (int i = 0; i < 4; i++) {
        seg[i] = p;
        sl[i] = seg_len(p, end);
        if (sl[i] == 0) return OP_WSAPP_NOT_APP;
        if (i < 3) {
            if (p + sl[i] == end) return OP_WSAPP_NOT_APP; /* no '/' after it: too few segments */
            p += sl[i] + 1;
        }
    }
    if (sl[2] != 4 || memcmp(seg[2], "apps", 4) != 0) return OP_WSAPP_NOT_APP;
    bool slash = seg[3] + sl[3] < end; /* the slug is followed by '/' */

    if (sl[0] == 2 && memcmp(seg[0], "me", 2) == 0)
        return bad(status, why, 404, "Applications must be accessed with the full username, not @me.");
    const char *dot = memchr(seg[1], '.', sl[1]);
    size_t wl = dot ? (size_t)(dot - seg[1]) : sl[1];
    size_t al = dot ? sl[1] - wl - 1 : 0;
    if (!name_ok(seg[0], sl[0]) || !name_ok(seg[1], wl) || (dot && !name_ok(dot + 1, al)) ||
        !name_ok(seg[3], sl[3]))
        return bad(status, why, 400, "Invalid application URL: a name in the path is not valid.");
    if (port_digits(seg[3], sl[3]) >= 0)
        return bad(status, why, 400, "Port-based URLs are only supported for subdomain-based applications.");
    size_t base = (size_t)(seg[3] + sl[3] - path) + 1; /* with the trailing '/' */
    if (base > OP_WSAPP_BASE_MAX || !put_name(out->user, seg[0], sl[0]) ||
        !put_name(out->workspace, seg[1], wl) || !put_name(out->agent, dot ? dot + 1 : "", al) ||
        !put_name(out->slug_or_port, seg[3], sl[3]))
        return bad(status, why, 400, "Invalid application URL: a name in the path is too long.");
    out->access = OP_WSAPP_PATH;
    memcpy(out->base_path, path, base - 1);
    out->base_path[base - 1] = '/'; /* ADD_SLASH: the path lacks it, the base path it redirects to has it */
    out->base_path[base] = '\0';
    out->prefix[0] = '\0';
    *rest_off = slash ? base - 1 : len;
    return slash ? OP_WSAPP_OK : OP_WSAPP_ADD_SLASH;
}

/* ---- subdomain apps ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'; /* a regexp's \s */
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The `*` capture of host against pattern: surrounding whitespace, a ":digits" port and one trailing '.'
 * of the host are allowed; the rest of the pattern's host part must follow the capture exactly (ASCII
 * case-insensitive); the capture is non-empty and has no '.'. */
static bool capture(const char *host, size_t len, const char *pattern, op_span_t *cap)
{
    if (!host || len == 0 || !pattern || !op_wildcard_valid(pattern)) return false;
    op_span_t ps = op_host_without_port(op_span(pattern, strlen(pattern)));
    const char *suf = ps.p + 1; /* after the '*' */
    size_t sufl = ps.len - 1;
    while (len && is_space(host[0])) {
        host++;
        len--;
    }
    while (len && is_space(host[len - 1]))
        len--;
    op_span_t h = op_host_without_port(op_span(host, len));
    if (h.len < len) { /* the rest is the port: ':' then digits */
        if (h.len + 1 == len || host[h.len] != ':') return false;
        for (size_t i = h.len + 1; i < len; i++)
            if (host[i] < '0' || host[i] > '9') return false;
    }
    if (h.len && h.p[h.len - 1] == '.') h.len--;
    if (!memchr(h.p, '.', h.len) || h.len <= sufl) return false;
    size_t cl = h.len - sufl;
    for (size_t i = 0; i < sufl; i++)
        if (lower(h.p[cl + i]) != lower(suf[i])) return false;
    if (memchr(h.p, '.', cl)) return false;
    *cap = op_span(h.p, cl);
    return true;
}

bool op_wsapp_host_matches(const char *host, size_t len, const char *pattern)
{
    op_span_t cap;
    return capture(host, len, pattern, &cap);
}

/* The offset of the last of the non-overlapping "---" found from the left (the way a split on "---"
 * cuts), or -1. */
static long last_triple(const char *s, size_t n)
{
    long last = -1;
    for (size_t i = 0; i + 3 <= n;) {
        if (memcmp(s + i, "---", 3) == 0) {
            last = (long)i;
            i += 3;
        } else {
            i++;
        }
    }
    return last;
}

enum op_wsapp_parse op_wsapp_parse_host(const char *host, size_t len, const char *pattern,
                                        struct op_wsapp_req *out, int *status, const char **why)
{
    op_span_t cap;
    if (!capture(host, len, pattern, &cap)) return OP_WSAPP_NOT_APP;
    const char *s = cap.p;
    size_t n = cap.len;
    size_t pl = 0;
    long t = last_triple(s, n);
    if (t >= 0) {
        pl = (size_t)t + 3;
        for (size_t i = 0; i < pl; i++)
            if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_')
                return bad(status, why, 400, "Invalid application URL");
    }
    /* APP--AGENT--WORKSPACE--USER: names never hold "--", so the parts are the pieces between "--" */
    const char *part[4];
    size_t partl[4];
    const char *p = s + pl, *end = s + n;
    for (int i = 0; i < 4; i++) {
        const char *q = p;
        while (q < end && !(q + 1 < end && q[0] == '-' && q[1] == '-'))
            q++;
        part[i] = p;
        partl[i] = (size_t)(q - p);
        if (!name_ok(p, partl[i])) return bad(status, why, 400, "Invalid application URL");
        if (i < 3) {
            if (q == end) return bad(status, why, 400, "Invalid application URL");
            p = q + 2;
        } else if (q != end) {
            return bad(status, why, 400, "Invalid application URL");
        }
    }
    if (!put_name(out->prefix, s, pl) || !put_name(out->slug_or_port, part[0], partl[0]) ||
        !put_name(out->agent, part[1], partl[1]) || !put_name(out->workspace, part[2], partl[2]) ||
        !put_name(out->user, part[3], partl[3]))
        return bad(status, why, 400, "Invalid application URL");
    out->access = OP_WSAPP_SUBDOMAIN;
    memcpy(out->base_path, "/", 2);
    return OP_WSAPP_OK;
}

/* ---- the request ---- */

static bool uuid_ok(const char *s)
{
    if (strnlen(s, 37) != 36) return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

static size_t flen(const char *f, size_t cap)
{
    return strnlen(f, cap);
}
#define FLEN(r, field) flen((r)->field, sizeof((r)->field))

int op_wsapp_req_check(const struct op_wsapp_req *r, const char **why)
{
    const char *w = NULL;
    size_t pl = FLEN(r, prefix);
    if (r->access != OP_WSAPP_PATH && r->access != OP_WSAPP_SUBDOMAIN && r->access != OP_WSAPP_TERMINAL)
        w = "invalid access method";
    else if (FLEN(r, base_path) == 0 || r->base_path[0] != '/')
        w = "base path is required";
    else if (r->access == OP_WSAPP_TERMINAL &&
             (FLEN(r, user) || FLEN(r, workspace) || FLEN(r, slug_or_port) || pl))
        w = "terminal requests name only the agent";
    else if (r->access == OP_WSAPP_TERMINAL && !uuid_ok(r->agent))
        w = "terminal requests need the agent's UUID";
    else if (r->access != OP_WSAPP_TERMINAL && !FLEN(r, user))
        w = "username or ID is required";
    else if (r->access != OP_WSAPP_TERMINAL && !FLEN(r, workspace))
        w = "workspace name or ID is required";
    else if (r->access != OP_WSAPP_TERMINAL && !FLEN(r, slug_or_port))
        w = "app slug or port is required";
    else if (strcmp(r->user, "me") == 0)
        w = "username cannot be \"me\"";
    else if (pl && r->access != OP_WSAPP_SUBDOMAIN)
        w = "app prefix is only valid for subdomain apps";
    else if (pl && (pl < 3 || memcmp(r->prefix + pl - 3, "---", 3) != 0))
        w = "app prefix must end with \"---\"";
    if (!w) return 0;
    if (why) *why = w;
    return -EINVAL;
}

void op_wsapp_req_normalize(struct op_wsapp_req *r)
{
    /* base_path: "/" + the path without its leading and trailing '/' + "/" (just "/" when nothing is left) */
    char *b = r->base_path;
    size_t n = FLEN(r, base_path), s = 0;
    while (s < n && b[s] == '/')
        s++;
    while (n > s && b[n - 1] == '/')
        n--;
    size_t core = n - s;
    if (core == 0) {
        memcpy(b, "/", 2);
    } else if (core + 2 <= OP_WSAPP_BASE_MAX) {
        memmove(b + 1, b + s, core);
        b[0] = '/';
        b[core + 1] = '/';
        b[core + 2] = '\0';
    } /* else it cannot grow: left as it is (no base path of a parsed URL is that long) */
    if (r->access != OP_WSAPP_TERMINAL && r->agent[0] == '\0') {
        char *dot = memchr(r->workspace, '.', FLEN(r, workspace));
        if (dot) {
            *dot = '\0';
            size_t al = strnlen(dot + 1, OP_WSAPP_NAME_MAX);
            memmove(r->agent, dot + 1, al);
            r->agent[al] = '\0';
        }
    }
}

static bool feq(const char *a, const char *b, size_t cap)
{
    size_t la = strnlen(a, cap), lb = strnlen(b, cap);
    return la == lb && memcmp(a, b, la) == 0;
}
#define FEQ(a, b, field) feq((a)->field, (b)->field, sizeof((a)->field))

bool op_wsapp_req_equal(const struct op_wsapp_req *a, const struct op_wsapp_req *b)
{
    struct op_wsapp_req x = *a, y = *b;
    op_wsapp_req_normalize(&x);
    op_wsapp_req_normalize(&y);
    return x.access == y.access && FEQ(&x, &y, base_path) && FEQ(&x, &y, prefix) && FEQ(&x, &y, user) &&
           FEQ(&x, &y, workspace) && FEQ(&x, &y, agent) && FEQ(&x, &y, slug_or_port);
}

#define COOKIE_PREFIX "coder_subdomain_app_session_token_"

int op_wsapp_subdomain_cookie_name(const char *pattern, char *out, size_t outlen)
{
    size_t pre = sizeof(COOKIE_PREFIX) - 1;
    if (outlen < pre + 32 + 1) return -ENOSPC;
    uint8_t d[OP_SHA256_LEN];
    op_sha256(pattern, strlen(pattern), d);
    memcpy(out, COOKIE_PREFIX, pre);
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[pre + 2 * i] = hx[d[i] >> 4];
        out[pre + 2 * i + 1] = hx[d[i] & 15];
    }
    out[pre + 32] = '\0';
    return (int)(pre + 32);
}

int op_wsapp_subdomain_host(const char *pattern, const struct op_wsapp_req *r, char *out, size_t outlen)
{
    if (!pattern || pattern[0] != '*' || !FLEN(r, slug_or_port) || !FLEN(r, agent) || !FLEN(r, workspace) ||
        !FLEN(r, user))
        return -EINVAL;
    const char *parts[] = {r->prefix, r->slug_or_port, "--",       r->agent, "--", r->workspace,
                           "--",      r->user,         pattern + 1};
    size_t o = 0;
    for (size_t i = 0; i < OP_ARRAY_LEN(parts); i++) {
        size_t n = i + 1 == OP_ARRAY_LEN(parts) ? strlen(parts[i]) : strnlen(parts[i], OP_WSAPP_NAME_MAX);
        if (o + n + 1 > outlen) return -ENOSPC;
        memcpy(out + o, parts[i], n);
        o += n;
    }
    out[o] = '\0';
    return (int)o;
}
