/*
 * wsapp/appurl.c: the path app form, the subdomain app form against wildcard patterns (prefix split on the
 * last "---", the four names, the name rule, ports and the 's' suffix, hosts with ports and trailing dots,
 * suffix-style wildcards), the request check / normalisation / equality, the cookie name (SHA-256 hex,
 * checked against Python's hashlib run from the test) and the host a request gets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"
#include "wsapp/appurl.h"

#define EU "*.eu.example.com"

static enum op_wsapp_parse host(const char *h, const char *pattern, struct op_wsapp_req *r)
{
    int st = 0;
    const char *why = NULL;
    memset(r, 0x55, sizeof(*r)); /* garbage: the parser must fill every field it reports */
    enum op_wsapp_parse p = op_wsapp_parse_host(h, strlen(h), pattern, r, &st, &why);
    if (p == OP_WSAPP_BAD) CHECK(st == 400 && why && *why, "BAD %s says 400 and why", h);
    return p;
}

static bool req_is(const struct op_wsapp_req *r, const char *prefix, const char *slug, const char *agent,
                   const char *ws, const char *user)
{
    return strcmp(r->prefix, prefix) == 0 && strcmp(r->slug_or_port, slug) == 0 &&
           strcmp(r->agent, agent) == 0 && strcmp(r->workspace, ws) == 0 && strcmp(r->user, user) == 0;
}

static void test_subdomain(void)
{
    struct op_wsapp_req r;
    /* §6.2's examples */
    CHECK(host("code--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_OK &&
              req_is(&r, "", "code", "main", "dev", "alice") && r.access == OP_WSAPP_SUBDOMAIN &&
              strcmp(r.base_path, "/") == 0,
          "code--main--dev--alice");
    CHECK(host("8080--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_OK &&
              req_is(&r, "", "8080", "main", "dev", "alice"),
          "port 8080");
    CHECK(host("8080s--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_OK &&
              req_is(&r, "", "8080s", "main", "dev", "alice"),
          "port 8080s");
    CHECK(host("foo---8080--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_OK &&
              req_is(&r, "foo---", "8080", "main", "dev", "alice"),
          "prefix foo---");
    CHECK(host("code--main--dev--alice--apps.example.com", "*--apps.example.com", &r) == OP_WSAPP_OK &&
              req_is(&r, "", "code", "main", "dev", "alice"),
          "suffix-style wildcard");

    /* prefixes: split on the last "---" (non-overlapping, from the left) */
    CHECK(host("a---b---code--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_OK &&
              req_is(&r, "a---b---", "code", "main", "dev", "alice"),
          "two prefixes joined");
    CHECK(host("---code--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_OK &&
              req_is(&r, "---", "code", "main", "dev", "alice"),
          "empty prefix text before ---");
    CHECK(host("x----code--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_BAD, "x---- leaves '-code'");
    CHECK(host("x---code--main--dev.eu.example.com", EU, &r) == OP_WSAPP_BAD, "prefix + three names");
    CHECK(host("x_y---code--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_OK &&
              strcmp(r.prefix, "x_y---") == 0,
          "underscore in prefix");

    /* names: mandatory agent, single inner hyphens, alphanumerics, case kept */
    CHECK(host("code--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_BAD, "agent is mandatory");
    CHECK(host("code--main--dev--alice--x.eu.example.com", EU, &r) == OP_WSAPP_BAD, "five names");
    CHECK(host("my-app--main-1--dev-ws--al-ice.eu.example.com", EU, &r) == OP_WSAPP_OK &&
              req_is(&r, "", "my-app", "main-1", "dev-ws", "al-ice"),
          "inner single hyphens");
    CHECK(host("-code--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_BAD, "leading hyphen");
    CHECK(host("code---main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_BAD,
          "--- inside: prefix code---");
    CHECK(host("code--main--dev--alice-.eu.example.com", EU, &r) == OP_WSAPP_BAD, "trailing hyphen");
    CHECK(host("code--main----dev--alice.eu.example.com", EU, &r) == OP_WSAPP_BAD, "empty name");
    CHECK(host("co_de--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_BAD, "underscore in a name");
    CHECK(host("co%64e--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_BAD, "percent in a name");
    CHECK(host("coder-logout.eu.example.com", EU, &r) == OP_WSAPP_BAD, "coder-logout is not an app");
    CHECK(host("Code--Main--Dev--Alice.EU.Example.COM", EU, &r) == OP_WSAPP_OK &&
              req_is(&r, "", "Code", "Main", "Dev", "Alice"),
          "suffix case-insensitive, the names keep their case");
    char longname[200];
    snprintf(longname, sizeof(longname), "%0*d--main--dev--alice.eu.example.com", OP_WSAPP_NAME_MAX, 7);
    CHECK(host(longname, EU, &r) == OP_WSAPP_OK && strlen(r.slug_or_port) == OP_WSAPP_NAME_MAX,
          "64-byte name");
    snprintf(longname, sizeof(longname), "%0*d--main--dev--alice.eu.example.com", OP_WSAPP_NAME_MAX + 1, 7);
    CHECK(host(longname, EU, &r) == OP_WSAPP_BAD, "65-byte name");

    /* hosts: ports, trailing dot, whitespace; not matching */
    CHECK(host("code--main--dev--alice.eu.example.com:8443", EU, &r) == OP_WSAPP_OK, "host with port");
    CHECK(host("code--main--dev--alice.eu.example.com.", EU, &r) == OP_WSAPP_OK, "trailing dot");
    CHECK(host("code--main--dev--alice.eu.example.com.:8443", EU, &r) == OP_WSAPP_OK &&
              strcmp(r.user, "alice") == 0,
          "trailing dot and port");
    CHECK(host(" code--main--dev--alice.eu.example.com ", EU, &r) == OP_WSAPP_OK, "surrounding whitespace");
    CHECK(host("code--main--dev--alice.eu.example.com:", EU, &r) == OP_WSAPP_NOT_APP, "empty port");
    CHECK(host("code--main--dev--alice.eu.example.com:x1", EU, &r) == OP_WSAPP_NOT_APP, "port not digits");
    CHECK(host("code--main--dev--alice.eu.example.com..", EU, &r) == OP_WSAPP_NOT_APP, "two trailing dots");
    CHECK(host("code--main--dev--alice.us.example.com", EU, &r) == OP_WSAPP_NOT_APP, "other suffix");
    CHECK(host("a.code--main--dev--alice.eu.example.com", EU, &r) == OP_WSAPP_NOT_APP, "two labels in *");
    CHECK(host("eu.example.com", EU, &r) == OP_WSAPP_NOT_APP, "the pattern's parent");
    CHECK(host(".eu.example.com", EU, &r) == OP_WSAPP_NOT_APP, "empty capture");
    CHECK(host("localhost", EU, &r) == OP_WSAPP_NOT_APP, "no dot");
    CHECK(host("", EU, &r) == OP_WSAPP_NOT_APP, "empty host");
    CHECK(host("example.com", "example.com", &r) == OP_WSAPP_NOT_APP, "host equal to a non-wildcard pattern");
    CHECK(host("code--main--dev--alice.example.com", "example.com", &r) == OP_WSAPP_NOT_APP,
          "a non-wildcard pattern matches nothing");
    CHECK(host("code--main--dev--alice.eu.example.com", "*.EU.example.com:8443", &r) == OP_WSAPP_OK,
          "pattern case and port ignored");
    CHECK(host("--apps.example.com", "*--apps.example.com", &r) == OP_WSAPP_NOT_APP, "suffix-style, empty *");
    CHECK(host("x.y--apps.example.com", "*--apps.example.com", &r) == OP_WSAPP_NOT_APP,
          "suffix-style, dotted");

    CHECK(op_wsapp_host_matches("whatever.eu.example.com:1", 25, EU), "host_matches: any capture");
    CHECK(!op_wsapp_host_matches("eu.example.com", 14, EU), "host_matches: parent");
    CHECK(!op_wsapp_host_matches("x.eu.example.com", 16, "*.*.example.com"), "host_matches: invalid pattern");
}

static void test_ports(void)
{
    bool https = true;
    CHECK(op_wsapp_port("8080", &https) == 8080 && !https, "8080");
    CHECK(op_wsapp_port("8080s", &https) == 8080 && https, "8080s");
    CHECK(op_wsapp_port("0", &https) == 0 && !https, "0");
    CHECK(op_wsapp_port("0s", &https) == 0 && https, "0s");
    CHECK(op_wsapp_port("8", &https) == 8, "8 parses (the primary refuses < 9)");
    CHECK(op_wsapp_port("65535", &https) == 65535 && !https, "65535");
    CHECK(op_wsapp_port("65535s", &https) == 65535 && https, "65535s");
    CHECK(op_wsapp_port("65536", &https) == -1 && !https, "65536 is a slug");
    CHECK(op_wsapp_port("65536s", &https) == -1, "65536s is a slug");
    CHECK(op_wsapp_port("99999999999999999999", &https) == -1, "huge is a slug");
    CHECK(op_wsapp_port("080", &https) == 80, "leading zero");
    CHECK(op_wsapp_port("s", &https) == -1, "s alone");
    CHECK(op_wsapp_port("", &https) == -1, "empty");
    CHECK(op_wsapp_port("code", &https) == -1, "slug");
    CHECK(op_wsapp_port("80ss", &https) == -1, "80ss");
    CHECK(op_wsapp_port("80S", &https) == -1, "upper S is not the suffix");
    CHECK(op_wsapp_port("-80", &https) == -1 && op_wsapp_port("+80", &https) == -1, "signs");
    CHECK(op_wsapp_port("8080", NULL) == 8080, "https may be NULL");
    int all = 0;
    char b[16];
    for (int p = 0; p <= 65536; p++) {
        snprintf(b, sizeof(b), "%d", p);
        bool ok = op_wsapp_port(b, &https) == (p <= 65535 ? p : -1) && !https;
        snprintf(b, sizeof(b), "%ds", p);
        ok = ok && op_wsapp_port(b, &https) == (p <= 65535 ? p : -1) && https == (p <= 65535);
        all += ok;
    }
    CHECK(all == 65537, "every port 0..65535 with and without s, and 65536 (%d)", all);
}

static enum op_wsapp_parse path(const char *p, struct op_wsapp_req *r, size_t *rest, int *st,
                                const char **why)
{
    memset(r, 0x55, sizeof(*r));
    *rest = 9999;
    *st = 0;
    *why = NULL;
    return op_wsapp_parse_path(p, strlen(p), r, rest, st, why);
}

static void test_path(void)
{
    struct op_wsapp_req r;
    size_t rest;
    int st;
    const char *why;
    const char *p = "/@alice/dev.main/apps/code/sub/x.js";
    CHECK(path(p, &r, &rest, &st, &why) == OP_WSAPP_OK && r.access == OP_WSAPP_PATH &&
              strcmp(r.base_path, "/@alice/dev.main/apps/code/") == 0 &&
              req_is(&r, "", "code", "main", "dev", "alice") && strcmp(p + rest, "/sub/x.js") == 0,
          "path app with agent: base %s rest %zu", r.base_path, rest);
    CHECK(path("/@alice/dev/apps/code/", &r, &rest, &st, &why) == OP_WSAPP_OK &&
              req_is(&r, "", "code", "", "dev", "alice") && rest == 21,
          "no agent");
    CHECK(path("/%40alice/dev/apps/code/a", &r, &rest, &st, &why) == OP_WSAPP_OK &&
              strcmp(r.base_path, "/%40alice/dev/apps/code/") == 0 && strcmp(r.user, "alice") == 0 &&
              rest == 23,
          "%%40 for @ (VS Code)");
    CHECK(path("/@alice/dev.main/apps/code", &r, &rest, &st, &why) == OP_WSAPP_ADD_SLASH && rest == 26 &&
              strcmp(r.base_path, "/@alice/dev.main/apps/code/") == 0 && r.access == OP_WSAPP_PATH &&
              req_is(&r, "", "code", "main", "dev", "alice"),
          "base without slash: ADD_SLASH, out filled");
    CHECK(path("/@me/dev/apps/code/", &r, &rest, &st, &why) == OP_WSAPP_BAD && st == 404 &&
              strcmp(why, "Applications must be accessed with the full username, not @me.") == 0,
          "@me: 404");
    CHECK(path("/@me/dev/apps/code", &r, &rest, &st, &why) == OP_WSAPP_BAD && st == 404, "@me without slash");
    CHECK(path("/%40me/dev/apps/code/", &r, &rest, &st, &why) == OP_WSAPP_BAD && st == 404, "%%40me");
    CHECK(path("/@Me/dev/apps/code/", &r, &rest, &st, &why) == OP_WSAPP_OK, "@Me is a user name");
    CHECK(path("/@alice/dev/apps/8080/", &r, &rest, &st, &why) == OP_WSAPP_BAD && st == 400 &&
              strcmp(why, "Port-based URLs are only supported for subdomain-based applications.") == 0,
          "numeric slug: 400");
    CHECK(path("/@alice/dev/apps/8080", &r, &rest, &st, &why) == OP_WSAPP_BAD && st == 400,
          "numeric slug without slash");
    CHECK(path("/@alice/dev/apps/co_de/", &r, &rest, &st, &why) == OP_WSAPP_BAD && st == 400, "bad slug");
    CHECK(path("/@al%20ice/dev/apps/code/", &r, &rest, &st, &why) == OP_WSAPP_BAD && st == 400, "bad user");
    CHECK(path("/@alice/dev./apps/code/", &r, &rest, &st, &why) == OP_WSAPP_BAD && st == 400, "empty agent");
    CHECK(path("/@alice/dev.a.b/apps/code/", &r, &rest, &st, &why) == OP_WSAPP_BAD && st == 400, "two dots");
    CHECK(path("/@alice/.main/apps/code/", &r, &rest, &st, &why) == OP_WSAPP_BAD, "empty workspace");
    CHECK(path("/@alice/dev/apps/code/?", &r, &rest, &st, &why) == OP_WSAPP_OK, "rest '?' stays in rest");
    const char *not_apps[] = {"/",
                              "/@alice",
                              "/@alice/",
                              "/@alice/dev",
                              "/@alice/dev/",
                              "/@alice/dev/apps",
                              "/@alice/dev/apps/",
                              "/@alice/dev/terminal",
                              "/@alice/dev/app/code/",
                              "/@alice/dev/Apps/code/",
                              "/@/dev/apps/code/",
                              "/@alice//apps/code/",
                              "/@alice/dev/apps//",
                              "/api/v2/buildinfo",
                              "/%41alice/dev/apps/code/",
                              "@alice/dev/apps/code/",
                              ""};
    for (size_t i = 0; i < OP_ARRAY_LEN(not_apps); i++)
        CHECK(path(not_apps[i], &r, &rest, &st, &why) == OP_WSAPP_NOT_APP, "not an app: '%s'", not_apps[i]);
    /* a UUID stands for a user or workspace */
    CHECK(path("/@3f1e2d4c-0000-4000-8000-000000000001/4d2e2d4c-0000-4000-8000-000000000002/apps/code/", &r,
               &rest, &st, &why) == OP_WSAPP_OK,
          "UUIDs in the path");
}

static void fill(struct op_wsapp_req *r, enum op_wsapp_access a, const char *base, const char *prefix,
                 const char *user, const char *ws, const char *agent, const char *slug)
{
    memset(r, 0, sizeof(*r));
    r->access = a;
    snprintf(r->base_path, sizeof(r->base_path), "%s", base);
    snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
    snprintf(r->user, sizeof(r->user), "%s", user);
    snprintf(r->workspace, sizeof(r->workspace), "%s", ws);
    snprintf(r->agent, sizeof(r->agent), "%s", agent);
    snprintf(r->slug_or_port, sizeof(r->slug_or_port), "%s", slug);
}

static void test_request(void)
{
    struct op_wsapp_req r, s;
    const char *why = NULL;
    const char *uuid = "3f1e2d4c-0000-4000-8000-00000000000a";

    fill(&r, OP_WSAPP_PATH, "/@u/ws.agent/apps/code", "", "u", "ws.agent", "", "code");
    op_wsapp_req_normalize(&r);
    CHECK(strcmp(r.base_path, "/@u/ws.agent/apps/code/") == 0 && strcmp(r.workspace, "ws") == 0 &&
              strcmp(r.agent, "agent") == 0,
          "normalize: slash added, ws.agent split (%s %s %s)", r.base_path, r.workspace, r.agent);
    fill(&r, OP_WSAPP_PATH, "//a//", "", "u", "ws.x", "main", "code");
    op_wsapp_req_normalize(&r);
    CHECK(strcmp(r.base_path, "/a/") == 0 && strcmp(r.workspace, "ws.x") == 0, "normalize: trim; agent kept");
    fill(&r, OP_WSAPP_SUBDOMAIN, "", "", "u", "ws", "a", "code");
    op_wsapp_req_normalize(&r);
    CHECK(strcmp(r.base_path, "/") == 0, "normalize: empty base is /");
    fill(&r, OP_WSAPP_SUBDOMAIN, "///", "", "u", "ws", "a", "code");
    op_wsapp_req_normalize(&r);
    CHECK(strcmp(r.base_path, "/") == 0, "normalize: /// is /");

    fill(&r, OP_WSAPP_PATH, "/@u/ws/apps/code/", "", "u", "ws", "", "code");
    CHECK(op_wsapp_req_check(&r, &why) == 0, "path request ok");
    fill(&r, OP_WSAPP_PATH, "/@u/ws/apps/code/", "", "me", "ws", "", "code");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL && why, "user me");
    fill(&r, OP_WSAPP_PATH, "/@u/ws/apps/code/", "", "", "ws", "", "code");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "user required");
    fill(&r, OP_WSAPP_PATH, "/@u/ws/apps/code/", "", "u", "", "", "code");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "workspace required");
    fill(&r, OP_WSAPP_PATH, "/@u/ws/apps/code/", "", "u", "ws", "", "");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "slug required");
    fill(&r, OP_WSAPP_PATH, "", "", "u", "ws", "", "code");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "base path required");
    fill(&r, OP_WSAPP_PATH, "/@u/ws/apps/code/", "x---", "u", "ws", "", "code");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "prefix on a path app");
    fill(&r, OP_WSAPP_SUBDOMAIN, "/", "x---", "u", "ws", "a", "code");
    CHECK(op_wsapp_req_check(&r, &why) == 0, "prefix on a subdomain app");
    fill(&r, OP_WSAPP_SUBDOMAIN, "/", "x--", "u", "ws", "a", "code");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "prefix without ---");
    fill(&r, OP_WSAPP_TERMINAL, "/", "", "", "", uuid, "");
    CHECK(op_wsapp_req_check(&r, &why) == 0, "terminal with a UUID");
    fill(&r, OP_WSAPP_TERMINAL, "/", "", "", "", "main", "");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "terminal needs a UUID");
    fill(&r, OP_WSAPP_TERMINAL, "/", "", "u", "", uuid, "");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "terminal with a user");
    fill(&r, OP_WSAPP_TERMINAL, "/", "", "", "", uuid, "code");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "terminal with a slug");
    fill(&r, 0, "/", "", "u", "ws", "a", "code");
    CHECK(op_wsapp_req_check(&r, &why) == -EINVAL, "no access method");

    fill(&r, OP_WSAPP_PATH, "/@u/ws.agent/apps/code", "", "u", "ws.agent", "", "code");
    fill(&s, OP_WSAPP_PATH, "/@u/ws.agent/apps/code/", "", "u", "ws", "agent", "code");
    CHECK(op_wsapp_req_equal(&r, &s) && op_wsapp_req_equal(&s, &r), "equal after normalisation");
    s.slug_or_port[0] = 'C';
    CHECK(!op_wsapp_req_equal(&r, &s), "slug differs (case counts)");
    fill(&s, OP_WSAPP_SUBDOMAIN, "/@u/ws.agent/apps/code/", "", "u", "ws", "agent", "code");
    CHECK(!op_wsapp_req_equal(&r, &s), "access differs");
    fill(&r, OP_WSAPP_SUBDOMAIN, "/", "a---", "u", "ws", "agent", "code");
    fill(&s, OP_WSAPP_SUBDOMAIN, "/", "", "u", "ws", "agent", "code");
    CHECK(!op_wsapp_req_equal(&r, &s), "prefix differs");
    fill(&s, OP_WSAPP_SUBDOMAIN, "/", "a---", "U", "ws", "agent", "code");
    CHECK(!op_wsapp_req_equal(&r, &s), "user case differs");

    CHECK(strcmp(op_wsapp_access_name(OP_WSAPP_PATH), "path") == 0 &&
              strcmp(op_wsapp_access_name(OP_WSAPP_SUBDOMAIN), "subdomain") == 0 &&
              strcmp(op_wsapp_access_name(OP_WSAPP_TERMINAL), "terminal") == 0 &&
              strcmp(op_wsapp_access_name(0), "unknown") == 0 &&
              strcmp(op_wsapp_access_name(99), "unknown") == 0,
          "access names");
    CHECK(op_wsapp_access_parse("path", 4) == OP_WSAPP_PATH &&
              op_wsapp_access_parse("subdomain", 9) == OP_WSAPP_SUBDOMAIN &&
              op_wsapp_access_parse("terminal", 8) == OP_WSAPP_TERMINAL &&
              op_wsapp_access_parse("Path", 4) == 0 && op_wsapp_access_parse("pat", 3) == 0 &&
              op_wsapp_access_parse("paths", 5) == 0,
          "access parse");
}

static void test_cookie_and_host(void)
{
    char name[80];
    const char *pats[] = {EU, "*--apps.example.com", "*.apps.example.com:8443", "*.a.b"};
    char cmd[512];
    for (size_t i = 0; i < OP_ARRAY_LEN(pats); i++) {
        int n = op_wsapp_subdomain_cookie_name(pats[i], name, sizeof(name));
        snprintf(cmd, sizeof(cmd),
                 "python3 -c 'import hashlib,sys; print(\"coder_subdomain_app_session_token_\" + "
                 "hashlib.sha256(sys.argv[1].encode()).digest()[:16].hex())' '%s'",
                 pats[i]);
        FILE *f = popen(cmd, "r");
        char want[128] = "";
        if (f) {
            if (!fgets(want, sizeof(want), f)) want[0] = '\0';
            pclose(f);
        }
        want[strcspn(want, "\n")] = '\0';
        CHECK(n == 66 && strcmp(name, want) == 0, "cookie name of %s: %s (Python: %s)", pats[i], name, want);
    }
    op_wsapp_subdomain_cookie_name(EU, name, sizeof(name));
    CHECK(strcmp(name, "coder_subdomain_app_session_token_3a78036bedcfde827a40a4832c923f91") == 0,
          "cookie name, known value");
    CHECK(op_wsapp_subdomain_cookie_name(EU, name, 66) == -ENOSPC &&
              op_wsapp_subdomain_cookie_name(EU, name, 67) == 66,
          "cookie name: room for the NUL");

    struct op_wsapp_req r;
    char h[300];
    fill(&r, OP_WSAPP_SUBDOMAIN, "/", "foo---", "alice", "dev", "main", "8080s");
    CHECK(op_wsapp_subdomain_host(EU, &r, h, sizeof(h)) == 44 &&
              strcmp(h, "foo---8080s--main--dev--alice.eu.example.com") == 0,
          "host of a request: %s", h);
    CHECK(op_wsapp_subdomain_host("*--apps.example.com:8443", &r, h, sizeof(h)) > 0 &&
              strcmp(h, "foo---8080s--main--dev--alice--apps.example.com:8443") == 0,
          "host of a request, suffix pattern with port: %s", h);
    struct op_wsapp_req back;
    int st;
    const char *why;
    CHECK(op_wsapp_parse_host(h, strlen(h), "*--apps.example.com:8443", &back, &st, &why) == OP_WSAPP_OK &&
              op_wsapp_req_equal(&r, &back),
          "the host parses back to the request");
    CHECK(op_wsapp_subdomain_host(EU, &r, h, 44) == -ENOSPC && op_wsapp_subdomain_host(EU, &r, h, 45) == 44,
          "host: room for the NUL");
    CHECK(op_wsapp_subdomain_host("eu.example.com", &r, h, sizeof(h)) == -EINVAL, "host: pattern without *");
    r.agent[0] = '\0';
    CHECK(op_wsapp_subdomain_host(EU, &r, h, sizeof(h)) == -EINVAL, "host: agent required");
}

int main(void)
{
    test_subdomain();
    test_ports();
    test_path();
    test_request();
    test_cookie_and_host();
    return check_report("wsapp app URLs");
}
