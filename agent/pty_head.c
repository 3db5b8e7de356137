/*
 * agent/pty_head.c — the terminal server's request head: `GET /pty?reconnect=<uuid>&width=<cols>&
 * height=<rows>[&command=<cmd>] HTTP/1.1` with the WebSocket upgrade headers. A strict hand-written
 * parser: the head is tiny, comes from the region (which rewrote it), and anything unexpected is a 400.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/pty_int.h"

bool pty_uuid_valid(const char *s, size_t n)
{
    if (n != PTY_UUID_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i])) return false;
    }
    return true;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes p[0..n) ('+' is a space, as in a form-encoded query) into out (NUL-terminated).
 * Returns the length, or -1 for a bad escape, a NUL, or more than cap - 1 bytes. */
static long decode(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int h = i + 2 < n ? hexval(p[i + 1]) : -1, l = i + 2 < n ? hexval(p[i + 2]) : -1;
            if (h < 0 || l < 0) return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

static bool parse_dim(const char *v, int *out)
{
    if (!*v || strlen(v) > 5) return false;
    for (const char *s = v; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    long n = strtol(v, NULL, 10);
    if (n < 1 || n > 65535) return false;
    *out = (int)n;
    return true;
}

/* The query's parameters; unknown ones are ignored (a client may add its own). */
static int parse_query(const char *q, size_t n, struct pty_req *req, const char **why)
{
    bool have_id = false;
    const char *end = q + n;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ve = pe;
        const char *vs = eq ? eq + 1 : pe;
        size_t kl = (size_t)((eq ? eq : pe) - q);
        char val[PTY_CMD_MAX];
        if (decode(vs, (size_t)(ve - vs), val, sizeof(val)) < 0) {
            *why = "a query parameter is badly encoded or too long";
            return -1;
        }
        if (kl == 9 && memcmp(q, "reconnect", 9) == 0) {
            if (!pty_uuid_valid(val, strlen(val))) {
                *why = "reconnect must be a UUID";
                return -1;
            }
            for (int i = 0; i < PTY_UUID_LEN; i++)
                req->id[i] = (char)tolower((unsigned char)val[i]);
            req->id[PTY_UUID_LEN] = '\0';
            have_id = true;
        } else if (kl == 5 && memcmp(q, "width", 5) == 0) {
            if (!parse_dim(val, &req->cols)) {
                *why = "width must be a number of columns (1-65535)";
                return -1;
            }
        } else if (kl == 6 && memcmp(q, "height", 6) == 0) {
            if (!parse_dim(val, &req->rows)) {
                *why = "height must be a number of rows (1-65535)";
                return -1;
            }
        } else if (kl == 7 && memcmp(q, "command", 7) == 0) {
            memcpy(req->command, val, strlen(val) + 1);
            req->has_command = req->command[0] != '\0';
        }
        q = amp ? amp + 1 : end;
    }
    if (!have_id) {
        *why = "the reconnect parameter (a UUID naming the session) is missing";
        return -1;
    }
    return 0;
}

/* Does the comma-separated header value v[0..n) hold token (case-insensitive)? */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    const char *end = v + n;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *s = v;
        while (v < end && *v != ',')
            v++;
        const char *e = v;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0) return true;
    }
    return false;
}

static bool name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

int pty_parse_head(const char *buf, size_t len, struct pty_req *req, int *status, const char **why)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    *status = 400;
    if (!end) {
        if (len >= PTY_IN_CAP) {
            *why = "the request head is too large";
            return -1;
        }
        return 0;
    }
    size_t hlen = (size_t)(end - buf) + 4;
    memset(req, 0, sizeof(*req));
    req->cols = OP_AGENT_PTY_DEFAULT_COLS;
    req->rows = OP_AGENT_PTY_DEFAULT_ROWS;
    const char *le = memmem(buf, hlen, "\r\n", 2);
    const char *sp1 = memchr(buf, ' ', (size_t)(le - buf));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp2 == sp1 + 1) {
        *why = "malformed request line";
        return -1;
    }
    if (!((size_t)(le - sp2 - 1) == 8 && memcmp(sp2 + 1, "HTTP/1.1", 8) == 0)) {
        *why = "HTTP/1.1 is required for a WebSocket upgrade";
        return -1;
    }
    const char *target = sp1 + 1, *qm = memchr(target, '?', (size_t)(sp2 - target));
    const char *pend = qm ? qm : sp2;
    if (!((size_t)(pend - target) == 4 && memcmp(target, "/pty", 4) == 0)) {
        *status = 404;
        *why = "not found (the terminal is at /pty)";
        return -1;
    }
    if (!((size_t)(sp1 - buf) == 3 && memcmp(buf, "GET", 3) == 0)) {
        *status = 405;
        *why = "the terminal is opened with GET and a WebSocket upgrade";
        return -1;
    }
    bool upgrade = false, connection = false, version = false, key = false;
    for (const char *l = le + 2; l < end + 2;) {
        const char *e = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        const char *colon = memchr(l, ':', (size_t)(e - l));
        if (!colon || colon == l || memchr(l, ' ', (size_t)(colon - l))) {
            *why = "malformed header line";
            return -1;
        }
        const char *v = colon + 1, *ve = e;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nl = (size_t)(colon - l), vl = (size_t)(ve - v);
        if (name_is(l, nl, "Upgrade")) {
            upgrade = has_token(v, vl, "websocket");
        } else if (name_is(l, nl, "Connection")) {
            connection = connection || has_token(v, vl, "upgrade");
        } else if (name_is(l, nl, "Sec-WebSocket-Version")) {
            version = vl == 2 && memcmp(v, "13", 2) == 0;
        } else if (name_is(l, nl, "Sec-WebSocket-Key")) {
            if (key || op_ws_accept_key(v, vl, req->accept) != 0) {
                *why = "bad Sec-WebSocket-Key";
                return -1;
            }
            key = true;
        }
        l = e + 2;
    }
    if (!upgrade || !connection) {
        *why = "a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade) is required";
        return -1;
    }
    if (!version) {
        *why = "Sec-WebSocket-Version: 13 is required";
        return -1;
    }
    if (!key) {
        *why = "Sec-WebSocket-Key is missing";
        return -1;
    }
    if (parse_query(qm ? qm + 1 : sp2, qm ? (size_t)(sp2 - qm - 1) : 0, req, why) != 0) return -1;
    return (int)hlen;
}
