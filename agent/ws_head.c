/*
 * agent/ws_head.c — the WebSocket handshake's request head for the agent's in-process servers (ws_head.h).
 */
#include "agent/ws_head.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

long op_agent_ws_decode(const char *p, size_t n, char *out, size_t cap)
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

int op_agent_ws_head_parse(const char *buf, size_t len, size_t cap, const char *path,
                           struct op_agent_ws_head *h, int *status, const char **why)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    *status = 400;
    if (!end) {
        if (len >= cap) {
            *why = "the request head is too large";
            return -1;
        }
        return 0;
    }
    size_t hlen = (size_t)(end - buf) + 4;
    memset(h, 0, sizeof(*h));
    h->query = "";
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
    size_t pl = strlen(path);
    if (!((size_t)(pend - target) == pl && memcmp(target, path, pl) == 0)) {
        *status = 404;
        *why = "not found (this server has one path)";
        return -1;
    }
    if (!((size_t)(sp1 - buf) == 3 && memcmp(buf, "GET", 3) == 0)) {
        *status = 405;
        *why = "a WebSocket is opened with GET and an upgrade";
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
            if (key || op_ws_accept_key(v, vl, h->accept) != 0) {
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
    if (qm) {
        h->query = qm + 1;
        h->query_len = (size_t)(sp2 - qm - 1);
    }
    return (int)hlen;
}
