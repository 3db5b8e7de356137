/*
 * tests/fuzz/fuzz_appurl.c — libFuzzer target for wsapp/appurl.c and wsapp/token.c. The input is tried as
 * a request path, as a Host header against three wildcard patterns, as a slug-or-port, and as the JSON
 * payload of a signed app token and of app-connect API key claims. Checked on every input:
 *   1. path: an OK parse has a base path that is a prefix of the input ending in '/', rest_off at its last
 *      '/', a request that passes op_wsapp_req_check, and a subdomain host that parses back to the same
 *      names; BAD carries a 400 or 404 and a message;
 *   2. host: OK or BAD exactly when op_wsapp_host_matches; an OK request passes the check and its host
 *      (op_wsapp_subdomain_host) parses back to an equal request;
 *   3. port: -1 or 0..65535; https only with a trailing 's';
 *   4. token payload: a decode that succeeds re-encodes to JSON that decodes to the same token (iat,
 *      username and email included), and its username and email hold no control byte (they become headers);
 *      API key claims: never crash, a success gives a NUL-terminated key.
 * Each parser reads an exact-size heap copy, so ASan catches any read past the end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wsapp/appurl.h"
#include "wsapp/token.h"

#define ASSERT(c)                                                                                            \
    do {                                                                                                     \
        if (!(c)) __builtin_trap();                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const patterns[] = {"*.eu.example.com", "*--apps.example.com:8443", "*.A.b"};

static void host_back(const struct op_wsapp_req *r)
{
    char h[512];
    struct op_wsapp_req back;
    int st;
    const char *why;
    for (size_t i = 0; i < OP_ARRAY_LEN(patterns); i++) {
        int n = op_wsapp_subdomain_host(patterns[i], r, h, sizeof(h));
        ASSERT(n > 0 && (size_t)n == strlen(h));
        ASSERT(op_wsapp_parse_host(h, (size_t)n, patterns[i], &back, &st, &why) == OP_WSAPP_OK);
        ASSERT(strcmp(back.prefix, r->prefix) == 0 && strcmp(back.user, r->user) == 0 &&
               strcmp(back.workspace, r->workspace) == 0 && strcmp(back.agent, r->agent) == 0 &&
               strcmp(back.slug_or_port, r->slug_or_port) == 0);
    }
}

static void fuzz_path(const char *p, size_t n)
{
    struct op_wsapp_req r;
    size_t rest = 0;
    int st = 0;
    const char *why = NULL;
    memset(&r, 0, sizeof(r));
    enum op_wsapp_parse res = op_wsapp_parse_path(p, n, &r, &rest, &st, &why);
    ASSERT(res == OP_WSAPP_OK || res == OP_WSAPP_NOT_APP || res == OP_WSAPP_ADD_SLASH || res == OP_WSAPP_BAD);
    if (res == OP_WSAPP_BAD) ASSERT((st == 400 || st == 404) && why && *why);
    if (res != OP_WSAPP_OK) return;
    size_t bl = strlen(r.base_path);
    ASSERT(r.access == OP_WSAPP_PATH && bl >= 2 && bl <= n && memcmp(r.base_path, p, bl) == 0);
    ASSERT(r.base_path[bl - 1] == '/' && rest == bl - 1 && p[rest] == '/');
    ASSERT(r.prefix[0] == '\0');
    const char *why2 = NULL;
    ASSERT(op_wsapp_req_check(&r, &why2) == 0);
    struct op_wsapp_req c = r;
    op_wsapp_req_normalize(&c);
    ASSERT(op_wsapp_req_equal(&r, &c) && strcmp(c.base_path, r.base_path) == 0);
    if (r.agent[0]) host_back(&r);
}

static void fuzz_host(const char *h, size_t n)
{
    for (size_t i = 0; i < OP_ARRAY_LEN(patterns); i++) {
        struct op_wsapp_req r;
        int st = 0;
        const char *why = NULL;
        memset(&r, 0, sizeof(r));
        enum op_wsapp_parse res = op_wsapp_parse_host(h, n, patterns[i], &r, &st, &why);
        bool m = op_wsapp_host_matches(h, n, patterns[i]);
        ASSERT(res == OP_WSAPP_OK || res == OP_WSAPP_NOT_APP || res == OP_WSAPP_BAD);
        ASSERT((res != OP_WSAPP_NOT_APP) == m);
        if (res == OP_WSAPP_BAD) ASSERT(st == 400 && why && *why);
        if (res != OP_WSAPP_OK) continue;
        ASSERT(r.access == OP_WSAPP_SUBDOMAIN && strcmp(r.base_path, "/") == 0);
        const char *why2 = NULL;
        ASSERT(op_wsapp_req_check(&r, &why2) == 0);
        host_back(&r);
    }
}

static void fuzz_port(const char *s, size_t n)
{
    char b[OP_WSAPP_NAME_MAX + 1];
    size_t l = n < OP_WSAPP_NAME_MAX ? n : OP_WSAPP_NAME_MAX;
    memcpy(b, s, l);
    b[l] = '\0';
    bool https = false;
    int p = op_wsapp_port(b, &https);
    ASSERT(p >= -1 && p <= 65535);
    size_t bl = strlen(b);
    if (https) ASSERT(p >= 0 && bl > 1 && b[bl - 1] == 's');
}

static void fuzz_token(const char *j, size_t n)
{
    static struct op_wsapp_token t, t2;
    int rc = op_wsapp_token_decode(j, n, 1700000000, 60, &t);
    ASSERT(rc == 0 || rc == -EINVAL || rc == -ETIMEDOUT);
    if (rc == 0) {
        static char out[8192];
        int l = op_wsapp_token_encode(&t, out, sizeof(out));
        ASSERT(l > 0);
        ASSERT(op_wsapp_token_decode(out, (size_t)l, 1700000000, 60, &t2) == 0);
        ASSERT(t.exp == t2.exp && op_wsapp_req_equal(&t.req, &t2.req) && strcmp(t.user_id, t2.user_id) == 0 &&
               strcmp(t.workspace_id, t2.workspace_id) == 0 && strcmp(t.agent_id, t2.agent_id) == 0 &&
               strcmp(t.app_url, t2.app_url) == 0);
        ASSERT(t.iat == t2.iat && strcmp(t.username, t2.username) == 0 && strcmp(t.email, t2.email) == 0);
        ASSERT(t.iat == 0 || (t.iat > 0 && t.iat <= t.exp));
        for (const char *q = t.username; *q; q++)
            ASSERT((unsigned char)*q >= 0x20 && (unsigned char)*q != 0x7f);
        for (const char *q = t.email; *q; q++)
            ASSERT((unsigned char)*q >= 0x20 && (unsigned char)*q != 0x7f);
    }
    char key[128];
    rc = op_wsapp_apikey_decode(j, n, 1700000000, key, sizeof(key));
    ASSERT(rc == 0 || rc == -EINVAL || rc == -ETIMEDOUT);
    if (rc == 0) ASSERT(strlen(key) > 0 && strlen(key) < sizeof(key));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *cp = malloc(size ? size : 1);
    ASSERT(cp != NULL);
    memcpy(cp, data, size);
    fuzz_path(cp, size);
    fuzz_host(cp, size);
    fuzz_port(cp, size);
    fuzz_token(cp, size);
    free(cp);
    return 0;
}
