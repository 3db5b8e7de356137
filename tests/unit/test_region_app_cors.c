/*
 * region/apps_cors.c: the CORS rule of subdomain apps — which Origins count as the same user's apps
 * (the subdomain parser on the Origin's host, the same wildcard, the same username), and the header lines
 * of an allowed request, a preflight (allowed, another user's, a method not allowed) and a path app.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "http/h1.h"
#include "region/apps_int.h"

static const struct op_region_app_conf conf = {
    .access_url = "http://eu.example.com:8080",
    .wildcard = "*.eu.example.com:8080",
    .dashboard_url = "http://coder.example.com",
};

static struct op_wsapp_req want(const char *user)
{
    struct op_wsapp_req r;
    memset(&r, 0, sizeof(r));
    r.access = OP_WSAPP_SUBDOMAIN;
    strcpy(r.base_path, "/");
    snprintf(r.user, sizeof(r.user), "%s", user);
    strcpy(r.workspace, "ws");
    strcpy(r.agent, "main");
    strcpy(r.slug_or_port, "web");
    return r;
}

static bool origin_ok(const char *origin, const char *user)
{
    struct op_wsapp_req r = want(user);
    return op_region_app_cors_origin_ok(&conf, op_span(origin, strlen(origin)), &r);
}

static void test_origins(void)
{
    static const char *const yes[] = {
        "http://api--main--ws--alice.eu.example.com:8080",
        "https://api--main--ws--alice.eu.example.com:8080",
        "http://8000--main--ws--alice.eu.example.com:8080",
        "http://pre---api--main--other--alice.eu.example.com:8080",
        "http://API--Main--WS--Alice.EU.example.com:8080", /* hosts compare lower-cased */
        "http://web--main--ws--alice.eu.example.com",      /* the pattern's port is not compared */
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(yes); i++)
        CHECK(origin_ok(yes[i], "alice"), "allowed: %s", yes[i]);
    CHECK(origin_ok("http://api--main--ws--alice.eu.example.com:8080", "Alice"), "username case-insensitive");
    static const char *const no[] = {
        "http://api--main--ws--bob.eu.example.com:8080",        /* another user */
        "http://api--main--ws--alicex.eu.example.com:8080",     /* a longer name */
        "http://api--main--ws--alice.us.example.com:8080",      /* another wildcard */
        "http://api--main--ws--alice.x.eu.example.com:8080",    /* two labels */
        "http://eu.example.com:8080",                           /* the access host */
        "http://api--ws--alice.eu.example.com:8080",            /* does not parse */
        "http://api--main--ws--alice.eu.example.com:8080/",     /* a path */
        "http://u@api--main--ws--alice.eu.example.com:8080",    /* userinfo */
        "ftp://api--main--ws--alice.eu.example.com:8080",       /* scheme */
        "api--main--ws--alice.eu.example.com:8080",             /* no scheme */
        "http://api--main--ws--alice.eu.example.com:8080?x",    /* query */
        "http://api--main--ws--alice.eu.example.com\\@evil.io", /* backslash */
        "null",
        "",
        "http://",
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(no); i++)
        CHECK(!origin_ok(no[i], "alice"), "refused: %s", no[i]);
    char big[400];
    memset(big, 'a', sizeof(big));
    memcpy(big, "http://", 7);
    snprintf(big + 300, sizeof(big) - 300, "--main--ws--alice.eu.example.com");
    CHECK(!origin_ok(big, "alice"), "refused: a very long origin");
    struct op_region_app_conf none = conf;
    none.wildcard = "";
    struct op_wsapp_req r = want("alice");
    const char *o = "http://api--main--ws--alice.eu.example.com:8080";
    CHECK(!op_region_app_cors_origin_ok(&none, op_span(o, strlen(o)), &r), "no wildcard: never");
    r.access = OP_WSAPP_PATH;
    CHECK(!op_region_app_cors_origin_ok(&conf, op_span(o, strlen(o)), &r), "path apps: never");
}

static enum app_cors decide(const char *head, const struct op_wsapp_req *w, char *extra, size_t cap)
{
    static struct op_h1_request req;
    if (op_h1_parse_request(head, strlen(head), &req) != OP_H1_COMPLETE) return (enum app_cors) - 1;
    return op_region_app_cors(&conf, &req, w, extra, cap);
}

static void test_headers(void)
{
    char x[512];
    struct op_wsapp_req w = want("alice");
    enum app_cors k = decide("GET / HTTP/1.1\r\nHost: web--main--ws--alice.eu.example.com:8080\r\nOrigin: "
                             "http://api--main--ws--alice.eu.example.com:8080\r\n\r\n",
                             &w, x, sizeof(x));
    CHECK(k == APP_CORS_ALLOWED &&
              strcmp(x, "Access-Control-Allow-Origin: http://api--main--ws--alice.eu.example.com:8080\r\n"
                        "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n") == 0,
          "allowed request: %s", x);
    k = decide("GET / HTTP/1.1\r\nHost: h\r\nOrigin: http://api--main--ws--bob.eu.example.com:8080\r\n\r\n",
               &w, x, sizeof(x));
    CHECK(k == APP_CORS_NONE && !x[0], "another user's origin: nothing");
    k = decide("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &w, x, sizeof(x));
    CHECK(k == APP_CORS_NONE && !x[0], "no origin: nothing");
    k = decide(
        "OPTIONS / HTTP/1.1\r\nHost: h\r\nOrigin: http://api--main--ws--alice.eu.example.com:8080\r\n"
        "Access-Control-Request-Method: PATCH\r\nAccess-Control-Request-Headers: x-a, content-type\r\n\r\n",
        &w, x, sizeof(x));
    CHECK(k == APP_CORS_PREFLIGHT && strstr(x, "Access-Control-Allow-Origin: http://api--main--ws--alice.") &&
              strstr(x, "Access-Control-Allow-Methods: HEAD, GET, POST, PUT, PATCH, DELETE\r\n") &&
              strstr(x, "Access-Control-Allow-Headers: x-a, content-type\r\n") &&
              strstr(x, "Access-Control-Allow-Credentials: true\r\n") && strstr(x, "Vary: Origin"),
          "allowed preflight: %s", x);
    k = decide("OPTIONS / HTTP/1.1\r\nHost: h\r\nOrigin: http://api--main--ws--bob.eu.example.com:8080\r\n"
               "Access-Control-Request-Method: GET\r\n\r\n",
               &w, x, sizeof(x));
    CHECK(k == APP_CORS_PREFLIGHT && !strstr(x, "Access-Control-Allow"), "another user's preflight: %s", x);
    k = decide("OPTIONS / HTTP/1.1\r\nHost: h\r\nOrigin: http://api--main--ws--alice.eu.example.com:8080\r\n"
               "Access-Control-Request-Method: TRACE\r\n\r\n",
               &w, x, sizeof(x));
    CHECK(k == APP_CORS_PREFLIGHT && !strstr(x, "Access-Control-Allow"), "a method not allowed: %s", x);
    k = decide(
        "OPTIONS / HTTP/1.1\r\nHost: h\r\nOrigin: http://api--main--ws--alice.eu.example.com:8080\r\n\r\n",
        &w, x, sizeof(x));
    CHECK(k == APP_CORS_ALLOWED, "OPTIONS without Access-Control-Request-Method is a plain request");
    w.access = OP_WSAPP_PATH;
    k = decide("OPTIONS / HTTP/1.1\r\nHost: h\r\nOrigin: http://api--main--ws--alice.eu.example.com:8080\r\n"
               "Access-Control-Request-Method: GET\r\n\r\n",
               &w, x, sizeof(x));
    CHECK(k == APP_CORS_NONE && !x[0], "path apps: no CORS, preflights go on");
}

int main(void)
{
    test_origins();
    test_headers();
    return check_report("subdomain app CORS");
}
