/*
 * util/host.c — host-name helpers shared by the primary and the workspace proxy.
 */
#include "util/host.h"

#include <ctype.h>
#include <string.h>

op_span_t op_host_without_port(op_span_t h)
{
    if (!h.p || h.len == 0) return h;
    if (h.p[0] == '[') {
        const char *close = memchr(h.p, ']', h.len);
        return close ? op_span(h.p, (size_t)(close - h.p) + 1) : h;
    }
    const char *colon = memchr(h.p, ':', h.len);
    if (!colon || memchr(colon + 1, ':', h.len - (size_t)(colon + 1 - h.p))) return h;
    return op_span(h.p, (size_t)(colon - h.p));
}

static bool dns_label_ok(const char *l, size_t n)
{
    if (n == 0 || n > 63 || l[0] == '-' || l[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)l[i]) || isdigit((unsigned char)l[i]) || l[i] == '-')) return false;
    return true;
}

bool op_wildcard_valid(const char *pattern)
{
    char s[256];
    size_t n = strlen(pattern);
    if (n == 0 || n >= sizeof(s)) return false;
    for (size_t i = 0; i <= n; i++)
        s[i] = (char)tolower((unsigned char)pattern[i]);
    if (strstr(s, "http:") || strstr(s, "https:")) return false;
    char *colon = strchr(s, ':'); /* an optional :port is ignored */
    if (colon) {
        if (!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1)) return false;
        *colon = '\0';
    }
    n = strlen(s);
    if (n == 0 || s[0] == '.' || s[n - 1] == '.' || s[0] != '*' || strchr(s + 1, '*')) return false;
    s[0] = 'a'; /* the star counts as a letter for the label check */
    int labels = 0;
    for (char *q = s; *q;) {
        char *dot = strchr(q, '.');
        size_t l = dot ? (size_t)(dot - q) : strlen(q);
        if (!dns_label_ok(q, l)) return false;
        labels++;
        q += l + (dot ? 1 : 0);
        if (dot && !*q) return false;
    }
    return labels >= 2;
}

bool op_app_slug_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        bool ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-';
        if (!ok || (s[i] == '-' && s[i + 1] == '-')) return false;
    }
    return true;
}
