/*
 * util/url.c — see url.h.
 */
#include "util/url.h"

#include <string.h>
#include <strings.h>

op_span_t op_url_http_host(const char *u)
{
    const char *h;
    if (strncasecmp(u, "http://", 7) == 0)
        h = u + 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        h = u + 8;
    else
        return op_span(NULL, 0);
    if (!*h || *h == '/' || *h == ':' || strpbrk(h, " \t\r\n")) return op_span(NULL, 0);
    size_t n = strcspn(h, "/?#");
    return n ? op_span(h, n) : op_span(NULL, 0);
}

size_t op_url_origin_len(const char *u)
{
    op_span_t h = op_url_http_host(u);
    return h.p ? (size_t)(h.p + h.len - u) : 0;
}

void op_url_trim_slashes(char *u)
{
    size_t n = strlen(u);
    while (n > 0 && u[n - 1] == '/')
        u[--n] = '\0';
}
