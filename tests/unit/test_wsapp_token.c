/*
 * wsapp/token.c: the signed app token (the iat/username/email extension members, encode → sign → verify →
 * decode round trip, expiry with the 60 s leeway, wrong key, unknown kid, tampered payload, a token signed by
 * Python's hmac/hashlib run from the test, escaping of what we write, malformed payloads) and the app-connect
 * API key claims (round trip, iss/aud/nbf/exp rules, aud as one string). Also proto/jws.c's op_json_flat_obj
 * and op_json_flat_has_str.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/jws.h"
#include "tests/unit/check.h"
#include "wsapp/token.h"

#define NOW   1700000000
#define U_ID  "11111111-2222-4333-8444-555555555555"
#define WS_ID "22222222-2222-4333-8444-555555555555"
#define AG_ID "33333333-2222-4333-8444-555555555555"

static void sample(struct op_wsapp_token *t)
{
    memset(t, 0, sizeof(*t));
    t->exp = NOW + OP_WSAPP_TOKEN_LIFETIME_S;
    t->req.access = OP_WSAPP_PATH;
    strcpy(t->req.base_path, "/@alice/dev.main/apps/code/");
    strcpy(t->req.user, "alice");
    strcpy(t->req.workspace, "dev");
    strcpy(t->req.agent, "main");
    strcpy(t->req.slug_or_port, "code");
    strcpy(t->user_id, U_ID);
    strcpy(t->workspace_id, WS_ID);
    strcpy(t->agent_id, AG_ID);
    strcpy(t->app_url, "http://127.0.0.1:8080/?folder=/home/\"q\"\\x");
}

static bool same(const struct op_wsapp_token *a, const struct op_wsapp_token *b)
{
    return a->exp == b->exp && op_wsapp_req_equal(&a->req, &b->req) && strcmp(a->user_id, b->user_id) == 0 &&
           strcmp(a->workspace_id, b->workspace_id) == 0 && strcmp(a->agent_id, b->agent_id) == 0 &&
           strcmp(a->app_url, b->app_url) == 0;
}

static struct op_wsapp_key keys[2];
static int sign(const struct op_wsapp_token *t, int64_t kid, const uint8_t *key, char *tok, size_t cap);

/* The members we add to the reference's payload: iat (the leeway never exceeds the lifetime), username and
 * email (the app's visitor headers). */
static void test_extension_claims(void)
{
    struct op_wsapp_token t, d;
    char tok[OP_JWS_MAX_TOKEN], pl[OP_JWS_MAX_PAYLOAD + 1];
    sample(&t);
    t.iat = NOW;
    t.exp = NOW + 3;
    strcpy(t.username, "alice");
    strcpy(t.email, "alice@example.com");
    int n = sign(&t, 7, keys[1].secret, tok, sizeof(tok));
    CHECK(n > 0 && op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW, &d) == 0 && same(&t, &d) &&
              d.iat == NOW && strcmp(d.username, "alice") == 0 && strcmp(d.email, "alice@example.com") == 0,
          "iat, username, email round trip");
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW + 6, &d) == 0,
          "3 s token: exp + 3 s still good");
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW + 7, &d) == -ETIMEDOUT,
          "3 s token: the leeway is the lifetime, not 60 s");
    /* a 1-minute token with iat keeps the full 60 s leeway */
    t.exp = NOW + 60;
    n = sign(&t, 7, keys[1].secret, tok, sizeof(tok));
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW + 120, &d) == 0 &&
              op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW + 121, &d) == -ETIMEDOUT,
          "1-minute token with iat: 60 s leeway");
    /* absent members are not written and decode as absent */
    sample(&t);
    n = op_wsapp_token_encode(&t, pl, sizeof(pl));
    CHECK(n > 0 && !strstr(pl, "\"iat\"") && !strstr(pl, "\"username\"") && !strstr(pl, "\"email\""),
          "absent members not written: %s", pl);
    CHECK(op_wsapp_token_decode(pl, (size_t)n, NOW, 0, &d) == 0 && d.iat == 0 && !d.username[0] &&
              !d.email[0],
          "absent members decode empty");
    /* malformed extension members */
    const char *base =
        "{\"exp\":1700000060,\"request\":{\"access_method\":\"path\",\"base_path\":\"/@a/w.m/apps/"
        "c/\",\"app_prefix\":\"\",\"username_or_id\":\"a\",\"workspace_name_or_id\":\"w\","
        "\"agent_name_or_id\":\"m\",\"app_slug_or_port\":\"c\"},\"user_id\":\"" U_ID
        "\",\"workspace_id\":\"" WS_ID "\",\"agent_id\":\"" AG_ID "\",\"app_url\":\"http://x\"";
    static const char *const bad[] = {
        ",\"username\":\"a\\nX-Evil: 1\"}",
        ",\"email\":\"a\\u000db\"}",
        ",\"email\":\"a\\u007f\"}",
        ",\"username\":1}",
        ",\"iat\":\"1\"}",
        ",\"iat\":1700000061}",
        ",\"iat\":0}",
        ",\"iat\":-5}",
    };
    char m[1024];
    for (size_t i = 0; i < OP_ARRAY_LEN(bad); i++) {
        snprintf(m, sizeof(m), "%s%s", base, bad[i]);
        CHECK(op_wsapp_token_decode(m, strlen(m), NOW, 0, &d) == -EINVAL, "malformed extension %s", bad[i]);
    }
    snprintf(m, sizeof(m), "%s%s", base, ",\"iat\":1700000000,\"username\":\"b\",\"email\":\"b@x\"}");
    CHECK(op_wsapp_token_decode(m, strlen(m), NOW, 60, &d) == 0 && d.iat == NOW && !strcmp(d.email, "b@x"),
          "well-formed extension members");
    CHECK(op_wsapp_token_decode(m, strlen(m), NOW + 121, 60, &d) == -ETIMEDOUT,
          "iat caps the leeway at 60 s");
    CHECK(op_wsapp_token_decode(m, strlen(m), NOW + 120, 60, &d) == 0, "iat: exp + lifetime is still good");
}

static int sign(const struct op_wsapp_token *t, int64_t kid, const uint8_t *key, char *tok, size_t cap)
{
    char pl[OP_JWS_MAX_PAYLOAD + 1];
    int n = op_wsapp_token_encode(t, pl, sizeof(pl));
    if (n < 0) return n;
    return op_jws_sign(pl, (size_t)n, kid, key, 64, tok, cap);
}

static void test_round_trip(void)
{
    struct op_wsapp_token t, d;
    char tok[OP_JWS_MAX_TOKEN];
    sample(&t);
    int n = sign(&t, 7, keys[1].secret, tok, sizeof(tok));
    CHECK(n > 0, "signed (%d)", n);
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW, &d) == 0 && same(&t, &d), "round trip");
    CHECK(strcmp(d.req.base_path, t.req.base_path) == 0 && d.req.access == OP_WSAPP_PATH, "request fields");
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW + 60 + 60, &d) == 0, "exp + leeway: still good");
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW + 60 + 61, &d) == -ETIMEDOUT, "expired");
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 1, NOW, &d) == -ENOKEY, "unknown kid");
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 0, NOW, &d) == -ENOKEY, "no keys");
    struct op_wsapp_key wrong = keys[1];
    wrong.secret[5] ^= 1;
    CHECK(op_wsapp_token_verify(tok, (size_t)n, &wrong, 1, NOW, &d) == -EACCES, "wrong key");
    n = sign(&t, 7, keys[0].secret, tok, sizeof(tok));
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW, &d) == -EACCES,
          "signed with another kid's key");

    /* tampered payload: re-encode a changed payload under the original header and signature */
    n = sign(&t, 7, keys[1].secret, tok, sizeof(tok));
    struct op_wsapp_token t2 = t;
    strcpy(t2.req.slug_or_port, "cod3");
    char tok2[OP_JWS_MAX_TOKEN];
    int n2 = sign(&t2, 7, keys[1].secret, tok2, sizeof(tok2));
    char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    char *e1 = strchr(tok2, '.'), *e2 = strrchr(tok2, '.');
    char mix[OP_JWS_MAX_TOKEN];
    snprintf(mix, sizeof(mix), "%.*s%.*s%s", (int)(d1 - tok), tok, (int)(e2 - e1), e1, d2);
    CHECK(n2 > 0 && op_wsapp_token_verify(mix, strlen(mix), keys, 2, NOW, &d) == -EACCES, "tampered payload");
    strcpy(mix, tok);
    mix[strlen(mix) - 3] = mix[strlen(mix) - 3] == 'A' ? 'B' : 'A';
    CHECK(op_wsapp_token_verify(mix, strlen(mix), keys, 2, NOW, &d) == -EACCES, "tampered signature");
    CHECK(op_wsapp_token_verify("a.b", 3, keys, 2, NOW, &d) == -EACCES, "not a JWS");
    CHECK(op_wsapp_token_verify("", 0, keys, 2, NOW, &d) == -EACCES, "empty");

    /* subdomain, prefix, anonymous visitor */
    sample(&t);
    t.req.access = OP_WSAPP_SUBDOMAIN;
    strcpy(t.req.base_path, "/");
    strcpy(t.req.prefix, "x---");
    strcpy(t.req.slug_or_port, "8080s");
    t.user_id[0] = '\0';
    n = sign(&t, 3, keys[0].secret, tok, sizeof(tok));
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW, &d) == 0 && same(&t, &d) &&
              strcmp(d.req.prefix, "x---") == 0 && d.user_id[0] == '\0',
          "subdomain token, anonymous");
    /* the request is normalised on decode */
    sample(&t);
    strcpy(t.req.base_path, "/@alice/dev.main/apps/code");
    strcpy(t.req.workspace, "dev.main");
    t.req.agent[0] = '\0';
    n = sign(&t, 3, keys[0].secret, tok, sizeof(tok));
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW, &d) == 0 &&
              strcmp(d.req.base_path, "/@alice/dev.main/apps/code/") == 0 &&
              strcmp(d.req.workspace, "dev") == 0 && strcmp(d.req.agent, "main") == 0,
          "normalised on decode");
    /* a request that fails the check */
    sample(&t);
    strcpy(t.req.user, "me");
    n = sign(&t, 3, keys[0].secret, tok, sizeof(tok));
    CHECK(op_wsapp_token_verify(tok, (size_t)n, keys, 2, NOW, &d) == -EINVAL, "user me in a token");

    /* escaping: control bytes and quotes survive a round trip through our own reader */
    sample(&t);
    strcpy(t.app_url, "http://127.0.0.1:1/\x01\t\"\\/\x7f\xc3\xa9");
    char pl[OP_JWS_MAX_PAYLOAD + 1];
    n = op_wsapp_token_encode(&t, pl, sizeof(pl));
    CHECK(n > 0 && op_json_flat_valid(pl, (size_t)n) &&
              op_wsapp_token_decode(pl, (size_t)n, NOW, 0, &d) == 0 && strcmp(d.app_url, t.app_url) == 0,
          "escaped app_url round trip: %s", pl);
    CHECK(op_wsapp_token_encode(&t, pl, (size_t)n) == -ENOSPC &&
              op_wsapp_token_encode(&t, pl, (size_t)n + 1) == n,
          "encode: room for the NUL");
    CHECK(op_wsapp_token_encode(&t, pl, 0) == -ENOSPC, "encode: no room");
}

static void test_decode_malformed(void)
{
    struct op_wsapp_token t, d;
    char pl[OP_JWS_MAX_PAYLOAD + 1];
    sample(&t);
    int n = op_wsapp_token_encode(&t, pl, sizeof(pl));
    CHECK(op_wsapp_token_decode(pl, (size_t)n, NOW, 0, &d) == 0, "sample decodes");
    CHECK(op_wsapp_token_decode(pl, (size_t)n, NOW + 60, 0, &d) == 0, "exp == now is not passed");
    CHECK(op_wsapp_token_decode(pl, (size_t)n, NOW + 61, 0, &d) == -ETIMEDOUT, "passed by 1 s, no leeway");
    CHECK(op_wsapp_token_decode(pl, (size_t)n, NOW + 61, 1, &d) == 0, "passed by 1 s, 1 s leeway");
    const char *drop[] = {"\"exp\"",
                          "\"request\"",
                          "\"access_method\"",
                          "\"base_path\"",
                          "\"app_prefix\"",
                          "\"username_or_id\"",
                          "\"workspace_name_or_id\"",
                          "\"agent_name_or_id\"",
                          "\"app_slug_or_port\"",
                          "\"user_id\"",
                          "\"workspace_id\"",
                          "\"agent_id\"",
                          "\"app_url\""};
    for (size_t i = 0; i < OP_ARRAY_LEN(drop); i++) {
        char m[OP_JWS_MAX_PAYLOAD + 1];
        strcpy(m, pl);
        char *p = strstr(m, drop[i]);
        p[1] = 'X'; /* renames the member */
        CHECK(op_wsapp_token_decode(m, strlen(m), NOW, 0, &d) == -EINVAL, "without %s", drop[i]);
    }
    const char *bad[] = {
        "{}",
        "[]",
        "{\"exp\":\"1\",\"request\":{}}",
        "{\"exp\":1700000060,\"request\":[],\"user_id\":\"\",\"workspace_id\":\"" WS_ID
        "\",\"agent_id\":\"" AG_ID "\",\"app_url\":\"http://x\"}",
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(bad); i++)
        CHECK(op_wsapp_token_decode(bad[i], strlen(bad[i]), NOW, 0, &d) == -EINVAL, "malformed %zu", i);
    /* ids must be UUIDs; the access method known */
    struct op_wsapp_token v;
    sample(&v);
    strcpy(v.workspace_id, "not-a-uuid");
    n = op_wsapp_token_encode(&v, pl, sizeof(pl));
    CHECK(op_wsapp_token_decode(pl, (size_t)n, NOW, 0, &d) == -EINVAL, "workspace_id not a UUID");
    sample(&v);
    strcpy(v.user_id, "x");
    n = op_wsapp_token_encode(&v, pl, sizeof(pl));
    CHECK(op_wsapp_token_decode(pl, (size_t)n, NOW, 0, &d) == -EINVAL, "user_id not a UUID");
    sample(&v);
    v.req.access = 0;
    n = op_wsapp_token_encode(&v, pl, sizeof(pl));
    CHECK(strstr(pl, "\"access_method\":\"unknown\"") &&
              op_wsapp_token_decode(pl, (size_t)n, NOW, 0, &d) == -EINVAL,
          "unknown access method");
}

/* A token made by Python (hmac/hashlib/json), as the reference's primary would write it. */
static const char py[] =
    "import hashlib, hmac, base64, json, sys\n"
    "def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()\n"
    "key = bytes(range(64))\n"
    "pl = {'exp': 1700000060, 'request': {'access_method': 'subdomain', 'base_path': '/', 'app_prefix': '',\n"
    "  'username_or_id': 'alice', 'workspace_name_or_id': 'dev', 'agent_name_or_id': 'main',\n"
    "  'app_slug_or_port': '8080'}, 'user_id': '" U_ID "', 'workspace_id': '" WS_ID "',\n"
    "  'agent_id': '" AG_ID "', 'app_url': 'http://127.0.0.1:8080/?a=1&b=<\\u00e9>\"'}\n"
    "# the way Go's encoding/json writes: UTF-8 as is, & < > as \\u escapes\n"
    "js = json.dumps(pl, indent=1, ensure_ascii=False)\n"
    "js = js.replace('&', '\\\\u0026').replace('<', '\\\\u003c').replace('>', '\\\\u003e')\n"
    "si = b64(json.dumps({'alg': 'HS512', 'kid': '9', 'typ': 'JWT'}).encode()) + '.' + b64(js.encode())\n"
    "print(si + '.' + b64(hmac.new(key, si.encode(), hashlib.sha512).digest()))\n"
    "ak = {'iss': 'coderd', 'aud': 'wsproxy', 'exp': 1700000060, 'nbf': 1700000000, 'api_key': 'abc-def'}\n"
    "print(json.dumps(ak))\n";

static void test_python(void)
{
    char script[] = "/tmp/outpost-test-wsapp-token-XXXXXX";
    int fd = mkstemp(script);
    if (fd < 0 || write(fd, py, sizeof(py) - 1) != (ssize_t)(sizeof(py) - 1)) {
        CHECK(false, "cannot write the Python script");
        return;
    }
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "python3 %s", script);
    FILE *f = popen(cmd, "r");
    static char tok[8192], ak[1024];
    bool ok = f && fgets(tok, sizeof(tok), f) && fgets(ak, sizeof(ak), f);
    if (f) pclose(f);
    unlink(script);
    CHECK(ok, "python3 ran");
    if (!ok) return;
    tok[strcspn(tok, "\n")] = '\0';
    ak[strcspn(ak, "\n")] = '\0';
    struct op_wsapp_key k = {.kid = 9, .len = 64};
    for (int i = 0; i < 64; i++)
        k.secret[i] = (uint8_t)i;
    struct op_wsapp_token d;
    int rc = op_wsapp_token_verify(tok, strlen(tok), &k, 1, NOW, &d);
    CHECK(rc == 0 && d.exp == 1700000060 && d.req.access == OP_WSAPP_SUBDOMAIN &&
              strcmp(d.req.slug_or_port, "8080") == 0 && strcmp(d.req.agent, "main") == 0 &&
              strcmp(d.user_id, U_ID) == 0 && strcmp(d.agent_id, AG_ID) == 0 &&
              strcmp(d.app_url, "http://127.0.0.1:8080/?a=1&b=<\xc3\xa9>\"") == 0,
          "Python's token: rc %d, app_url %s", rc, d.app_url);
    char key[64];
    CHECK(op_wsapp_apikey_decode(ak, strlen(ak), NOW, key, sizeof(key)) == 0 && strcmp(key, "abc-def") == 0,
          "Python's API key claims, aud as one string");
}

static void test_apikey(void)
{
    char js[512], key[128];
    int n = op_wsapp_apikey_encode("id1-s3cr\"et", NOW, js, sizeof(js));
    CHECK(n > 0 && op_json_flat_valid(js, (size_t)n), "apikey encode: %s", js);
    CHECK(strstr(js, "\"iss\":\"coderd\"") && strstr(js, "\"aud\":[\"wsproxy\"]") &&
              strstr(js, "\"nbf\":1700000000") && strstr(js, "\"exp\":1700000060"),
          "apikey claims");
    CHECK(op_wsapp_apikey_decode(js, (size_t)n, NOW, key, sizeof(key)) == 0 &&
              strcmp(key, "id1-s3cr\"et") == 0,
          "apikey round trip");
    CHECK(op_wsapp_apikey_decode(js, (size_t)n, NOW + 119, key, sizeof(key)) == 0, "exp + leeway - 1");
    CHECK(op_wsapp_apikey_decode(js, (size_t)n, NOW + 120, key, sizeof(key)) == -ETIMEDOUT, "expired");
    CHECK(op_wsapp_apikey_decode(js, (size_t)n, NOW - 60, key, sizeof(key)) == 0, "nbf within leeway");
    CHECK(op_wsapp_apikey_decode(js, (size_t)n, NOW - 61, key, sizeof(key)) == -ETIMEDOUT, "not yet valid");
    CHECK(op_wsapp_apikey_decode(js, (size_t)n, NOW, key, 5) == -EINVAL, "key buffer too small");
    CHECK(op_wsapp_apikey_encode("k", NOW, js, 10) == -ENOSPC, "encode: no room");
    const char *bad[] = {
        "{\"iss\":\"coder\",\"aud\":[\"wsproxy\"],\"exp\":1700000060,\"nbf\":1700000000,\"api_key\":\"a-b\"}",
        "{\"aud\":[\"wsproxy\"],\"exp\":1700000060,\"nbf\":1700000000,\"api_key\":\"a-b\"}",
        "{\"iss\":\"coderd\",\"aud\":[\"coderd\"],\"exp\":1700000060,\"nbf\":1700000000,\"api_key\":\"a-b\"}",
        "{\"iss\":\"coderd\",\"aud\":[],\"exp\":1700000060,\"nbf\":1700000000,\"api_key\":\"a-b\"}",
        "{\"iss\":\"coderd\",\"aud\":[1],\"exp\":1700000060,\"nbf\":1700000000,\"api_key\":\"a-b\"}",
        "{\"iss\":\"coderd\",\"exp\":1700000060,\"nbf\":1700000000,\"api_key\":\"a-b\"}",
        "{\"iss\":\"coderd\",\"aud\":[\"wsproxy\"],\"nbf\":1700000000,\"api_key\":\"a-b\"}",
        "{\"iss\":\"coderd\",\"aud\":[\"wsproxy\"],\"exp\":1700000060,\"api_key\":\"a-b\"}",
        "{\"iss\":\"coderd\",\"aud\":[\"wsproxy\"],\"exp\":1700000060,\"nbf\":1700000000}",
        "{\"iss\":\"coderd\",\"aud\":[\"wsproxy\"],\"exp\":1700000060,\"nbf\":1700000000,\"api_key\":\"\"}",
        "{\"iss\":\"coderd\",\"aud\":[\"wsproxy\"],\"exp\":1.5,\"nbf\":1700000000,\"api_key\":\"a-b\"}",
        "not json",
    };
    for (size_t i = 0; i < OP_ARRAY_LEN(bad); i++)
        CHECK(op_wsapp_apikey_decode(bad[i], strlen(bad[i]), NOW, key, sizeof(key)) == -EINVAL,
              "bad claims %zu", i);
    const char *multi = "{\"iss\":\"coderd\",\"aud\":[\"a\", \"ws\\u0070roxy\" ],\"exp\":1700000060,\"nbf\":"
                        "1700000000,\"api_key\":\"a-b\"}";
    CHECK(op_wsapp_apikey_decode(multi, strlen(multi), NOW, key, sizeof(key)) == 0, "aud with two, escaped");
}

static void test_json_helpers(void)
{
    const char *j = "{\"a\":1,\"o\":{\"x\":\"y\",\"n\":{\"z\":2}},\"s\":\"str\",\"l\":[\"p\",\"q\"]}";
    const char *o;
    size_t ol;
    char b[16];
    int64_t v;
    CHECK(op_json_flat_obj(j, strlen(j), "o", &o, &ol) == 0 && o[0] == '{' && o[ol - 1] == '}' &&
              op_json_flat_str(o, ol, "x", b, sizeof(b)) == 0 && strcmp(b, "y") == 0,
          "obj: span of o");
    const char *o2;
    size_t ol2;
    CHECK(op_json_flat_obj(o, ol, "n", &o2, &ol2) == 0 && op_json_flat_int(o2, ol2, "z", &v) == 0 && v == 2,
          "obj: nested twice");
    CHECK(op_json_flat_obj(j, strlen(j), "s", &o, &ol) == -EINVAL, "obj: a string");
    CHECK(op_json_flat_obj(j, strlen(j), "zz", &o, &ol) == -ENOENT, "obj: absent");
    bool found = true;
    CHECK(op_json_flat_has_str(j, strlen(j), "l", "q", &found) == 0 && found, "has: q");
    CHECK(op_json_flat_has_str(j, strlen(j), "l", "r", &found) == 0 && !found, "has: not r");
    CHECK(op_json_flat_has_str(j, strlen(j), "l", "", &found) == 0 && !found, "has: not empty");
    CHECK(op_json_flat_has_str(j, strlen(j), "s", "str", &found) == 0 && found, "has: single string");
    CHECK(op_json_flat_has_str(j, strlen(j), "a", "1", &found) == -EINVAL, "has: a number");
    CHECK(op_json_flat_has_str(j, strlen(j), "zz", "1", &found) == -ENOENT, "has: absent");
    const char *big =
        "{\"l\":[\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "\",\"k\"]}";
    CHECK(op_json_flat_has_str(big, strlen(big), "l", "k", &found) == 0 && found,
          "has: after a long element");
}

int main(void)
{
    for (int i = 0; i < 2; i++) {
        keys[i].kid = i == 0 ? 3 : 7;
        keys[i].len = 64;
        for (int b = 0; b < 64; b++)
            keys[i].secret[b] = (uint8_t)(b * 7 + i * 31 + 1);
    }
    test_round_trip();
    test_extension_claims();
    test_decode_malformed();
    test_python();
    test_apikey();
    test_json_helpers();
    return check_report("wsapp tokens");
}
