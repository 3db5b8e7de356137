/* Unit test: util/ — Go's duration grammar, hosts without ports (IPv6 included), wildcard patterns, URL
 * hosts and origins, the capped body accumulator and the build-info object. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"
#include "util/body.h"
#include "util/buildinfo.h"
#include "util/clock.h"
#include "util/duration.h"
#include "util/host.h"
#include "util/url.h"
#include "util/uuid.h"

static void durations(void)
{
    static const struct {
        const char *in;
        uint64_t ms;
    } good[] = {
        {"0", 0},
        {"+0", 0},
        {"1m", 60000},
        {"30s", 30000},
        {"500ms", 500},
        {"1h30m", 5400000},
        {"1.5s", 1500},
        {".5s", 500},
        {"5.s", 5000},
        {"2h45m", 9900000},
        {"1.5h", 5400000},
        {"100us", 0},
        {"600us", 1},
        {"1500\xc2\xb5s", 2},
        {"2000\xce\xbcs", 2},
        {"3000000ns", 3},
        {"1m0.5s", 60500},
        {"0.1s", 100},
        {"+5s", 5000},
        {"1h1m1s1ms", 3661001},
        {"0.0000001h", 0},
        {"2562047h", 2562047ull * 3600000},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t ms = 12345;
        int rc = op_parse_duration_ms(good[i].in, &ms);
        CHECK(rc == 0 && ms == good[i].ms, "duration \"%s\": rc %d, %llu ms, want %llu", good[i].in, rc,
              (unsigned long long)ms, (unsigned long long)good[i].ms);
    }
    /* Not Go durations: no unit, unknown unit, negative, blanks, exponents, hex, lone dot, empty. */
    static const char *const bad[] = {"",     "10",    "1x",  "-1s",  "- 1s", " 1s",  "1s ",
                                      "1e3s", "0x10s", ".s",  "s",    "1.",   "1sm",  "+",
                                      "1 s",  "1S",    "inf", "nans", "1.5",  "--1s", "1d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms;
        CHECK(op_parse_duration_ms(bad[i], &ms) == -EINVAL, "duration \"%s\" must be rejected", bad[i]);
    }
    uint64_t ms;
    CHECK(op_parse_duration_ms("2562048h", &ms) == -ERANGE, "beyond 2^63 ns is a range error");
    CHECK(op_parse_duration_ms("9223372036854775808ns", &ms) == -ERANGE, "2^63 ns is a range error");
    CHECK(op_parse_duration_ms("9223372036854775807ns", &ms) == 0 && ms == 9223372036855ull,
          "2^63-1 ns fits");
}

static void span_is(op_span_t s, const char *want, const char *what)
{
    CHECK(s.p && s.len == strlen(want) && memcmp(s.p, want, s.len) == 0, "%s: got \"%.*s\", want \"%s\"",
          what, (int)s.len, s.p ? s.p : "", want);
}

static void hosts(void)
{
    static const char *const cases[][2] = {
        {"example.com:8080", "example.com"},
        {"example.com", "example.com"},
        {"[::1]:8443", "[::1]"},
        {"[::1]", "[::1]"},
        {"[2001:db8::42]:443", "[2001:db8::42]"},
        {"[fe80::1%25eth0]:80", "[fe80::1%25eth0]"},
        {"::1", "::1"},
        {"127.0.0.1:3000", "127.0.0.1"},
        {"host:", "host"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        span_is(op_host_without_port(op_span(cases[i][0], strlen(cases[i][0]))), cases[i][1], cases[i][0]);
    CHECK(op_host_without_port(op_span("", 0)).len == 0, "empty host");

    CHECK(op_wildcard_valid("*.eu.example.com"), "plain wildcard");
    CHECK(op_wildcard_valid("*.Example.COM:8443"), "port and case ignored");
    CHECK(op_wildcard_valid("*--apps.example.com"), "suffix wildcard");
    CHECK(op_wildcard_valid("*.com"), "the star label plus one more is two labels");
    CHECK(!op_wildcard_valid("*"), "one label");
    CHECK(!op_wildcard_valid("eu.*.example.com"), "star not first");
    CHECK(!op_wildcard_valid("*.*.example.com"), "two stars");
    CHECK(!op_wildcard_valid("https://*.example.com"), "scheme");
    CHECK(!op_wildcard_valid("*.example.com."), "trailing dot");
    CHECK(!op_wildcard_valid("*.exa_mple.com"), "bad label");
    CHECK(!op_wildcard_valid("*.example.com:"), "empty port");
    CHECK(!op_wildcard_valid(""), "empty");
    CHECK(op_app_slug_valid("web") && op_app_slug_valid("my-app-2") && op_app_slug_valid("a"), "slugs");
    CHECK(!op_app_slug_valid("") && !op_app_slug_valid("-web") && !op_app_slug_valid("web-") &&
              !op_app_slug_valid("we--b") && !op_app_slug_valid("Web") && !op_app_slug_valid("w_b") &&
              !op_app_slug_valid("abcdefghijklmnopqrstuvwxyz0123456"),
          "bad slugs (empty, edge or double hyphen, upper case, underscore, 33 characters)");
}

static void urls(void)
{
    span_is(op_url_http_host("https://coder.example.com/x?y"), "coder.example.com", "https host");
    span_is(op_url_http_host("HTTP://[::1]:3000"), "[::1]:3000", "uppercase scheme, IPv6 host");
    span_is(op_url_http_host("http://h:1#frag"), "h:1", "fragment");
    CHECK(!op_url_http_host("ftp://h").p, "other scheme");
    CHECK(!op_url_http_host("http://").p, "empty host");
    CHECK(!op_url_http_host("http:///x").p, "path only");
    CHECK(!op_url_http_host("http://:80").p, "port only");
    CHECK(!op_url_http_host("http://a b").p, "whitespace");
    CHECK(op_url_origin_len("https://h:8443/path") == strlen("https://h:8443"), "origin length");
    CHECK(op_url_origin_len("nope") == 0, "no origin");
    char u[] = "https://h///";
    op_url_trim_slashes(u);
    CHECK(strcmp(u, "https://h") == 0, "trailing slashes trimmed: %s", u);
}

static void bodies(void)
{
    char *b = NULL;
    size_t len = 0;
    CHECK(op_body_append(&b, &len, 8, "abcd", 4) == 0 && len == 4 && strcmp(b, "abcd") == 0, "append");
    CHECK(op_body_append(&b, &len, 8, "efgh", 4) == 0 && len == 8 && strcmp(b, "abcdefgh") == 0,
          "append up to the cap");
    CHECK(op_body_append(&b, &len, 8, "i", 1) == -EFBIG && len == 8 && strcmp(b, "abcdefgh") == 0,
          "beyond the cap: refused, unchanged");
    CHECK(op_body_append(&b, &len, 8, "", 0) == 0 && len == 8, "empty append");
    free(b);
    b = NULL;
    len = 0;
    CHECK(op_body_append(&b, &len, 4, "toolong", 7) == -EFBIG && !b && len == 0,
          "first chunk beyond the cap");
    CHECK(op_body_append(&b, &len, SIZE_MAX, "x", 1) == 0 && len == 1, "no overflow with a huge cap");
    free(b);
}

static void buildinfo(void)
{
    cJSON *o = op_buildinfo_json("v1.2.3", "https://coder.example.com", true);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    CHECK(s && strcmp(s, "{\"external_url\":\"https://github.com/outpost/outpost\",\"version\":\"v1.2.3\","
                         "\"dashboard_url\":\"https://coder.example.com\",\"workspace_proxy\":true,"
                         "\"agent_api_version\":\"2.0\"}") == 0,
          "buildinfo: %s", s ? s : "(null)");
    free(s);
    cJSON_Delete(o);
}

static void test_clock_uuid(void)
{
    char t[32];
    op_format_time(1764653453999LL, t);
    CHECK(strcmp(t, "2025-12-02T05:30:53.999Z") == 0, "RFC 3339 with ms: %s", t);
    op_format_time(0, t);
    CHECK(strcmp(t, "1970-01-01T00:00:00.000Z") == 0, "the epoch: %s", t);
    op_format_time(-1, t);
    CHECK(strcmp(t, "0001-01-01T00:00:00Z") == 0, "never is Go's zero time: %s", t);
    CHECK(op_wall_ms() > 1764000000000LL, "wall clock in ms");
    uint8_t b[16];
    memset(b, 0xff, sizeof(b));
    char u[OP_UUID_TEXT_LEN + 1];
    op_uuid_v4_text(b, u);
    CHECK(strcmp(u, "ffffffff-ffff-4fff-bfff-ffffffffffff") == 0, "version and variant bits: %s", u);
    memset(b, 0, sizeof(b));
    op_uuid_v4_text(b, u);
    CHECK(strcmp(u, "00000000-0000-4000-8000-000000000000") == 0, "zero bytes: %s", u);
}

int main(void)
{
    test_clock_uuid();
    durations();
    hosts();
    urls();
    bodies();
    buildinfo();
    return check_report("util: durations, hosts, wildcards, URLs, bodies, build info, clock, UUID text");
}
