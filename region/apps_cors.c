/*
 * region/apps_cors.c — CORS between the subdomain apps of one user (docs/apps.md, "CORS"): a browser
 * Origin is allowed only when it is itself a subdomain app URL under the region's wildcard whose username
 * is the username of the app asked for (Coder's per-app CORS). The Origin's host is parsed with the one
 * subdomain parser (wsapp/appurl.h). Worker side, pure: no I/O, no allocation.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "region/apps_int.h"

#define CORS_METHODS "HEAD, GET, POST, PUT, PATCH, DELETE"

static bool header(const struct op_h1_request *req, const char *name, op_span_t *out)
{
    size_t nl = strlen(name);
    for (int i = 0; i < req->nheaders; i++)
        if (req->headers[i].name.len == nl && strncasecmp(req->headers[i].name.p, name, nl) == 0) {
            *out = req->headers[i].value;
            return true;
        }
    return false;
}

/* Printable ASCII only (a value we echo into a response header). */
static bool printable(op_span_t v)
{
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.p[i] < 0x20 || (unsigned char)v.p[i] >= 0x7f) return false;
    return true;
}

bool op_region_app_cors_origin_ok(const struct op_region_app_conf *conf, op_span_t origin,
                                  const struct op_wsapp_req *want)
{
    const char *pat = conf->wildcard ? conf->wildcard : "";
    if (!*pat || want->access != OP_WSAPP_SUBDOMAIN || origin.len > APP_CORS_ORIGIN_MAX || !printable(origin))
        return false;
    size_t skip = 0;
    if (origin.len > 7 && strncasecmp(origin.p, "http://", 7) == 0)
        skip = 7;
    else if (origin.len > 8 && strncasecmp(origin.p, "https://", 8) == 0)
        skip = 8;
    else
        return false;
    /* An origin is scheme://host[:port]: no path, query, fragment or userinfo. */
    char host[APP_CORS_ORIGIN_MAX + 1];
    size_t hl = origin.len - skip;
    for (size_t i = 0; i < hl; i++) {
        char ch = origin.p[skip + i];
        if (ch == '/' || ch == '?' || ch == '#' || ch == '@' || ch == '\\') return false;
        host[i] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch); /* hosts are parsed lower-cased (§6.3) */
    }
    host[hl] = '\0';
    if (!memchr(host, '.', hl) || !op_wsapp_host_matches(host, hl, pat)) return false;
    struct op_wsapp_req o;
    int status = 0;
    const char *why = NULL;
    if (op_wsapp_parse_host(host, hl, pat, &o, &status, &why) != OP_WSAPP_OK) return false;
    return strcasecmp(o.user, want->user) == 0;
}

enum app_cors op_region_app_cors(const struct op_region_app_conf *conf, const struct op_h1_request *req,
                                 const struct op_wsapp_req *want, char *extra, size_t cap)
{
    extra[0] = '\0';
    if (want->access != OP_WSAPP_SUBDOMAIN) return APP_CORS_NONE;
    op_span_t origin = op_span(NULL, 0), acrm, acrh = op_span("", 0);
    bool has_origin = header(req, "Origin", &origin);
    bool preflight = req->method.len == 7 && memcmp(req->method.p, "OPTIONS", 7) == 0 &&
                     header(req, "Access-Control-Request-Method", &acrm);
    bool ok = has_origin && op_region_app_cors_origin_ok(conf, origin, want);
    if (preflight) {
        /* The requested method must be one of ours; the requested headers are echoed (any is allowed). */
        header(req, "Access-Control-Request-Headers", &acrh);
        bool method_ok = false;
        static const char *const methods[] = {"HEAD", "GET", "POST", "PUT", "PATCH", "DELETE"};
        for (size_t i = 0; i < OP_ARRAY_LEN(methods) && !method_ok; i++)
            method_ok = acrm.len == strlen(methods[i]) && strncasecmp(acrm.p, methods[i], acrm.len) == 0;
        int n = snprintf(extra, cap,
                         "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\n");
        if (ok && method_ok && printable(acrh) && acrh.len <= APP_CORS_HEADERS_MAX) {
            int m = snprintf(extra + n, cap - (size_t)n,
                             "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\n"
                             "Access-Control-Allow-Methods: " CORS_METHODS "\r\n",
                             (int)origin.len, origin.p);
            if (m > 0 && (size_t)m < cap - (size_t)n) n += m;
            if (acrh.len) {
                m = snprintf(extra + n, cap - (size_t)n, "Access-Control-Allow-Headers: %.*s\r\n",
                             (int)acrh.len, acrh.p);
                if (m > 0 && (size_t)m < cap - (size_t)n) n += m;
            }
        }
        return APP_CORS_PREFLIGHT;
    }
    if (!ok) return APP_CORS_NONE;
    int n = snprintf(extra, cap,
                     "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\nVary: "
                     "Origin\r\n",
                     (int)origin.len, origin.p);
    if (n < 0 || (size_t)n >= cap) {
        extra[0] = '\0';
        return APP_CORS_NONE;
    }
    return APP_CORS_ALLOWED;
}
