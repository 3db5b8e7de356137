/* Unit test: runner/redirect — the HTTPS redirect's Location for IPv4, names and IPv6 literals (with and
 * without ports), the 443 default, and a 4 KiB target: written whole when it fits, else 414 and no
 * header at all (never one cut before its CRLF). */
#include <errno.h>
#include <string.h>

#include "runner/redirect.h"
#include "tests/unit/check.h"

static op_span_t S(const char *s)
{
    return op_span(s, strlen(s));
}

static void location(const char *host, const char *port, const char *target, const char *want)
{
    char buf[256];
    struct op_h1_writer w;
    op_h1_writer_init(&w, buf, sizeof(buf));
    op_put_https_location(&w, S(host), port, S(target));
    ssize_t n = op_h1_writer_result(&w);
    CHECK(n > 0 && (size_t)n == strlen(want) && memcmp(buf, want, (size_t)n) == 0,
          "Host \"%s\", port %s: got \"%.*s\", want \"%s\"", host, port, n > 0 ? (int)n : 0, buf, want);
}

int main(void)
{
    location("example.com", "443", "/a?b", "Location: https://example.com/a?b\r\n");
    location("example.com:8080", "8443", "/", "Location: https://example.com:8443/\r\n");
    location("127.0.0.1:3000", "3443", "/x", "Location: https://127.0.0.1:3443/x\r\n");
    location("[::1]:8443", "8443", "/", "Location: https://[::1]:8443/\r\n");
    location("[::1]:80", "443", "/p", "Location: https://[::1]/p\r\n");
    location("[::1]", "9443", "/p", "Location: https://[::1]:9443/p\r\n");
    location("[2001:db8::1]:8080", "443", "/", "Location: https://[2001:db8::1]/\r\n");

    /* The route: 308 with the header after what is already in extra. */
    struct op_route r;
    memset(&r, 0, sizeof(r));
    strcpy(r.extra, "X-A: 1\r\n");
    CHECK(op_route_https_redirect(&r, 8, S("[::1]:8080"), S("/q"), "8443") == 308 && r.status == 308 &&
              r.kind == OP_ROUTE_RESPOND &&
              strcmp(r.extra, "X-A: 1\r\nLocation: https://[::1]:8443/q\r\n") == 0,
          "redirect route: %d %s", r.status, r.extra);

    /* A 4 KiB target: the writer writes it whole into a buffer that holds it ... */
    static char target[4097], buf[8192];
    target[0] = '/';
    memset(target + 1, 'a', sizeof(target) - 2);
    target[sizeof(target) - 1] = '\0';
    struct op_h1_writer w;
    op_h1_writer_init(&w, buf, sizeof(buf));
    op_put_https_location(&w, S("example.com"), "8443", S(target));
    ssize_t n = op_h1_writer_result(&w);
    size_t want = strlen("Location: https://example.com:8443") + strlen(target) + 2;
    CHECK(n == (ssize_t)want && memcmp(buf + n - 2, "\r\n", 2) == 0, "4 KiB Location written whole: %zd", n);
    /* ... and fails, writing nothing usable, when the buffer is one byte short. */
    op_h1_writer_init(&w, buf, want - 1);
    op_put_https_location(&w, S("example.com"), "8443", S(target));
    CHECK(op_h1_writer_result(&w) == -ENOSPC, "a Location one byte too long is -ENOSPC");
    /* The route's header space is smaller than 4 KiB: 414, and extra keeps only what was there. */
    memset(&r, 0, sizeof(r));
    strcpy(r.extra, "X-A: 1\r\n");
    CHECK(op_route_https_redirect(&r, 8, S("example.com"), S(target), "8443") == 414 && r.status == 414 &&
              strcmp(r.extra, "X-A: 1\r\n") == 0,
          "4 KiB target through the route: %d, extra \"%.40s\"", r.status, r.extra);
    return check_report("runner: HTTPS redirect (IPv6 hosts, 4 KiB targets)");
}
