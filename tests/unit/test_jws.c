/*
 * proto/sha512.c and proto/jws.c against vectors computed independently by Python's hashlib/hmac/base64
 * (run from the test, so the vectors cover random keys and lengths around the block boundaries), plus
 * the rules of op_jws_parse: only HS512, exactly three parts, a decimal kid, no crit, canonical base64url,
 * and a MAC that fails on any changed byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/agent_token.h"
#include "proto/jws.h"
#include "tests/unit/check.h"

static const char py[] =
    "import hashlib, hmac, base64, json, os, sys\n"
    "def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()\n"
    "rnd = __import__('random').Random(7)\n"
    "for n in [0, 1, 3, 55, 111, 112, 127, 128, 129, 200, 255, 256, 1000, 4096]:\n"
    "    m = bytes(rnd.randrange(256) for _ in range(n))\n"
    "    print('sha', m.hex() or '-', hashlib.sha512(m).hexdigest())\n"
    "for kl in [0, 1, 32, 64, 127, 128, 129, 300]:\n"
    "    k = bytes(rnd.randrange(256) for _ in range(kl)); m = bytes(rnd.randrange(256) for _ in range(kl * "
    "3 + 5))\n"
    "    print('hmac', k.hex() or '-', m.hex(), hmac.new(k, m, hashlib.sha512).hexdigest())\n"
    "for n in range(0, 9):\n"
    "    m = bytes(rnd.randrange(256) for _ in range(n)); print('b64', m.hex() or '-', b64(m) or '-')\n"
    "key = bytes(rnd.randrange(256) for _ in range(64))\n"
    "def jws(header, payload, k=key):\n"
    "    si = b64(json.dumps(header, separators=(',', ':')).encode()) + '.' + b64(payload.encode())\n"
    "    return si + '.' + b64(hmac.new(k, si.encode(), hashlib.sha512).digest())\n"
    "pl = json.dumps({'agent_id': 'a1', 'exp': 1700000000, 'port': 8080, 'nested': {'x': [1, 2]}, 's': "
    "'q\\\"\\\\/'})\n"
    "print('key', key.hex())\n"
    "print('payload', b64(pl.encode()))\n"
    "print('good', jws({'alg': 'HS512', 'kid': '3'}, pl))\n"
    "print('goodnum', jws({'alg': 'HS512', 'kid': 12, 'typ': 'JWT'}, pl))\n"
    "print('hs256', jws({'alg': 'HS256', 'kid': '3'}, pl))\n"
    "print('none', b64(b'{\"alg\":\"none\",\"kid\":\"3\"}') + '.' + b64(pl.encode()) + '.')\n"
    "print('nokid', jws({'alg': 'HS512'}, pl))\n"
    "print('badkid', jws({'alg': 'HS512', 'kid': 'x1'}, pl))\n"
    "print('crit', jws({'alg': 'HS512', 'kid': '1', 'crit': ['exp']}, pl))\n"
    "print('notobj', jws({'alg': 'HS512', 'kid': '1'}, '[1,2]'))\n"
    "print('wrongkey', jws({'alg': 'HS512', 'kid': '3'}, pl, bytes(64)))\n";

static int unhex(const char *s, uint8_t *out, size_t cap)
{
    if (strcmp(s, "-") == 0) return 0;
    size_t n = strlen(s) / 2;
    if (n > cap) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return (int)n;
}

static void hex(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
    out[2 * n] = '\0';
}

static char vectors[64][8200];
static int nvec;

static const char *vec(const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < nvec; i++)
        if (strncmp(vectors[i], name, n) == 0 && vectors[i][n] == ' ') return vectors[i] + n + 1;
    printf("missing vector %s\n", name);
    exit(1);
}

static int parse(const char *tok, struct op_jws *j)
{
    return op_jws_parse(tok, strlen(tok), j);
}

int main(void)
{
    char script[] = "/tmp/outpost-test-jws-XXXXXX";
    int fd = mkstemp(script);
    if (fd < 0 || write(fd, py, sizeof(py) - 1) != (ssize_t)(sizeof(py) - 1)) return 1;
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "python3 %s", script);
    FILE *f = popen(cmd, "r");
    if (!f) return 77;
    static char line[20000];
    static uint8_t a[8192], b[8192];
    char h[300];
    int nsha = 0, nhmac = 0, nb64 = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL, *kind = strtok_r(line, " ", &save);
        if (!kind) continue;
        if (strcmp(kind, "sha") == 0) {
            int n = unhex(strtok_r(NULL, " ", &save), a, sizeof(a));
            uint8_t d[OP_SHA512_LEN];
            op_sha512(a, (size_t)n, d);
            hex(d, sizeof(d), h);
            CHECK(strcmp(h, strtok_r(NULL, " ", &save)) == 0, "sha512 of %d bytes: %s", n, h);
            /* Byte-by-byte updates give the same digest. */
            struct op_sha512 c;
            op_sha512_init(&c);
            for (int i = 0; i < n; i++)
                op_sha512_update(&c, a + i, 1);
            uint8_t d2[OP_SHA512_LEN];
            op_sha512_final(&c, d2);
            CHECK(memcmp(d, d2, sizeof(d)) == 0, "sha512 incremental, %d bytes", n);
            nsha++;
        } else if (strcmp(kind, "hmac") == 0) {
            int kl = unhex(strtok_r(NULL, " ", &save), a, sizeof(a));
            int ml = unhex(strtok_r(NULL, " ", &save), b, sizeof(b));
            uint8_t d[OP_SHA512_LEN];
            op_hmac_sha512(a, (size_t)kl, b, (size_t)ml, d);
            hex(d, sizeof(d), h);
            CHECK(strcmp(h, strtok_r(NULL, " ", &save)) == 0, "hmac-sha512 key %d msg %d", kl, ml);
            nhmac++;
        } else if (strcmp(kind, "b64") == 0) {
            int n = unhex(strtok_r(NULL, " ", &save), a, sizeof(a));
            const char *want = strtok_r(NULL, " ", &save);
            if (strcmp(want, "-") == 0) want = "";
            char out[32];
            int l = op_b64url_encode(a, (size_t)n, out, sizeof(out));
            CHECK(l == (int)strlen(want) && strcmp(out, want) == 0, "b64url encode %d bytes: %s", n, out);
            CHECK(op_b64url_decode(want, strlen(want), b, sizeof(b)) == n && memcmp(a, b, (size_t)n) == 0,
                  "b64url decode %s", want);
            nb64++;
        } else if (nvec < 64) {
            snprintf(vectors[nvec++], sizeof(vectors[0]), "%s %s", kind, save ? save : "");
        }
    }
    int prc = pclose(f);
    unlink(script);
    if (prc != 0) {
        printf("python3 failed (%d)\n", prc);
        return 77;
    }
    CHECK(nsha == 14 && nhmac == 8 && nb64 == 9, "all vectors read (%d %d %d)", nsha, nhmac, nb64);

    /* Known answer from FIPS 180-4: SHA-512("abc"). */
    uint8_t d[OP_SHA512_LEN];
    op_sha512("abc", 3, d);
    hex(d, sizeof(d), h);
    CHECK(
        strcmp(h,
               "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3fe"
               "ebbd454d4423643ce80e2a9ac94fa54ca49f") == 0,
        "sha512('abc')");

    uint8_t key[64];
    CHECK(unhex(vec("key"), key, sizeof(key)) == 64, "key vector");
    struct op_jws j;
    const char *good = vec("good");
    CHECK(parse(good, &j) == 0 && j.kid == 3, "Python's token parses, kid 3");
    CHECK(op_jws_mac_ok(&j, good, key, 64), "Python's token verifies with the key");
    CHECK(!op_jws_mac_ok(&j, good, key, 63), "a shorter key does not verify");
    int64_t v = 0;
    char s[64];
    CHECK(op_json_flat_int(j.payload, j.payload_len, "exp", &v) == 0 && v == 1700000000, "exp claim");
    CHECK(op_json_flat_int(j.payload, j.payload_len, "port", &v) == 0 && v == 8080, "port claim");
    CHECK(op_json_flat_str(j.payload, j.payload_len, "agent_id", s, sizeof(s)) == 0 && strcmp(s, "a1") == 0,
          "agent_id claim");
    CHECK(op_json_flat_str(j.payload, j.payload_len, "s", s, sizeof(s)) == 0 && strcmp(s, "q\"\\/") == 0,
          "escaped string claim unescaped: %s", s);
    CHECK(op_json_flat_str(j.payload, j.payload_len, "x", s, sizeof(s)) == -ENOENT,
          "nested member not top-level");
    CHECK(op_json_flat_str(j.payload, j.payload_len, "exp", s, sizeof(s)) == -EINVAL, "int read as string");
    CHECK(op_json_flat_int(j.payload, j.payload_len, "agent_id", &v) == -EINVAL, "string read as int");
    CHECK(op_json_flat_str(j.payload, j.payload_len, "agent_id", s, 2) == -ENOSPC, "too small buffer");

    /* Our own signature equals Python's for the same header, payload and key. */
    uint8_t pl[OP_JWS_MAX_PAYLOAD];
    const char *plb = vec("payload");
    int pn = op_b64url_decode(plb, strlen(plb), pl, sizeof(pl));
    char tok[OP_JWS_MAX_TOKEN];
    int tl = op_jws_sign((const char *)pl, (size_t)pn, 3, key, 64, tok, sizeof(tok));
    CHECK(tl > 0 && strcmp(tok, good) == 0, "op_jws_sign reproduces Python's token byte for byte");
    CHECK(op_jws_sign((const char *)pl, (size_t)pn, 3, key, 64, tok, 40) == -ENOSPC, "sign: small buffer");

    const char *gn = vec("goodnum");
    CHECK(parse(gn, &j) == 0 && j.kid == 12 && op_jws_mac_ok(&j, gn, key, 64),
          "numeric kid and typ accepted");
    CHECK(parse(vec("hs256"), &j) == -ENOTSUP, "HS256 refused");
    CHECK(parse(vec("none"), &j) == -EINVAL, "alg none with an empty signature refused");
    CHECK(parse(vec("nokid"), &j) == -ENOKEY, "missing kid refused");
    CHECK(parse(vec("badkid"), &j) == -ENOKEY, "non-decimal kid refused");
    CHECK(parse(vec("crit"), &j) == -ENOTSUP, "crit refused");
    CHECK(parse(vec("notobj"), &j) == -EINVAL, "a payload that is not an object is refused");
    const char *wk = vec("wrongkey");
    CHECK(parse(wk, &j) == 0 && !op_jws_mac_ok(&j, wk, key, 64), "signed with another key: MAC fails");

    /* Every single-character change of the good token either fails to parse or fails the MAC. */
    char t2[OP_JWS_MAX_TOKEN];
    size_t gl = strlen(good);
    int accepted = 0;
    for (size_t i = 0; i < gl; i++) {
        memcpy(t2, good, gl + 1);
        t2[i] = t2[i] == 'A' ? 'B' : 'A';
        if (parse(t2, &j) == 0 && op_jws_mac_ok(&j, t2, key, 64)) accepted++;
    }
    CHECK(accepted == 0, "no tampered token verifies (%d did)", accepted);
    memcpy(t2, good, gl + 1);
    strcat(t2, ".x");
    CHECK(parse(t2, &j) == -EINVAL, "four parts refused");
    CHECK(parse("a.b", &j) == -EINVAL, "two parts refused");
    CHECK(op_b64url_decode("QQ==", 4, b, sizeof(b)) == -EINVAL, "padding refused");
    CHECK(op_b64url_decode("QR", 2, b, sizeof(b)) == -EINVAL, "non-zero trailing bits refused");
    CHECK(op_b64url_decode("Q", 1, b, sizeof(b)) == -EINVAL, "impossible length refused");
    CHECK(op_b64url_decode("a+b/", 4, b, sizeof(b)) == -EINVAL, "standard alphabet refused");
    static char big[OP_JWS_MAX_TOKEN + 2];
    memset(big, 'A', sizeof(big) - 1);
    big[10] = '.';
    big[20] = '.';
    CHECK(op_jws_parse(big, sizeof(big) - 1, &j) == -EMSGSIZE, "oversized token refused");
    CHECK(op_json_flat_valid("{\"a\":[1,{\"b\":null}],\"c\":-1.5e3} ", 31), "flat reader skips nesting");
    CHECK(!op_json_flat_valid("{\"a\":1,}", 8), "trailing comma refused");
    CHECK(!op_json_flat_valid("{\"a\":01}", 8), "leading zero refused");
    CHECK(!op_json_flat_valid("{\"a\":\"\x01\"}", 8), "control character refused");

    /* Agent credential and connect token claims: written, signed, parsed and read back; bad fields refused.
     */
    struct op_agent_cred cred = {"11111111-2222-4333-8444-555555555555",
                                 "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                                 "99999999-8888-4777-8666-555555555555", 1000, 1300};
    char payload[512];
    int plen = op_agent_cred_payload(&cred, payload, sizeof(payload));
    CHECK(plen > 0 && op_jws_sign(payload, (size_t)plen, 7, key, 64, tok, sizeof(tok)) > 0,
          "sign a credential");
    struct op_agent_cred back;
    struct op_connect_claims cc;
    CHECK(parse(tok, &j) == 0 && j.kid == 7 && op_jws_mac_ok(&j, tok, key, 64) &&
              op_agent_cred_read(&j, 1200, &back) == 0 && strcmp(back.agent_id, cred.agent_id) == 0 &&
              strcmp(back.owner_id, cred.owner_id) == 0 && back.iat == 1000 && back.exp == 1300,
          "credential claims round-trip");
    CHECK(op_agent_cred_read(&j, 1300 + OP_JWS_LEEWAY_S - 1, &back) == 0, "inside the leeway");
    CHECK(op_agent_cred_read(&j, 1300 + OP_JWS_LEEWAY_S, &back) == -ETIMEDOUT, "past the leeway");
    CHECK(op_connect_read(&j, 1200, &cc) == -EINVAL, "a credential does not read as a connect token");
    struct op_agent_cred upper = cred;
    upper.agent_id[0] = 'A';
    CHECK(op_agent_cred_payload(&upper, payload, sizeof(payload)) == -EINVAL, "upper-case id refused");
    CHECK(op_agent_cred_payload(&cred, payload, 40) == -ENOSPC, "credential payload: small buffer");
    struct op_connect_claims c = {"11111111-2222-4333-8444-555555555555",
                                  "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                                  "99999999-8888-4777-8666-555555555555",
                                  "eu-west",
                                  8080,
                                  2000};
    plen = op_connect_payload(&c, payload, sizeof(payload));
    CHECK(plen > 0 && op_jws_sign(payload, (size_t)plen, 7, key, 64, tok, sizeof(tok)) > 0 &&
              parse(tok, &j) == 0 && op_connect_read(&j, 1990, &cc) == 0 && cc.port == 8080 &&
              strcmp(cc.region, "eu-west") == 0 && strcmp(cc.user_id, c.user_id) == 0,
          "connect claims round-trip");
    CHECK(op_agent_cred_read(&j, 1990, &back) == -EINVAL, "a connect token does not read as a credential");
    struct op_connect_claims bad = c;
    bad.port = 0;
    CHECK(op_connect_payload(&bad, payload, sizeof(payload)) == -EINVAL, "port 0 refused");
    bad = c;
    snprintf(bad.region, sizeof(bad.region), "eu west");
    CHECK(op_connect_payload(&bad, payload, sizeof(payload)) == -EINVAL, "region with a space refused");
    /* A well-signed token whose port is out of range is still refused by the claim reader. */
    const char *p70k =
        "{\"aud\":\"outpost-connect\",\"user_id\":\"11111111-2222-4333-8444-555555555555\","
        "\"agent_id\":\"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee\",\"workspace_id\":"
        "\"99999999-8888-4777-8666-555555555555\",\"port\":70000,\"region\":\"eu\",\"exp\":2000}";
    CHECK(op_jws_sign(p70k, strlen(p70k), 7, key, 64, tok, sizeof(tok)) > 0 && parse(tok, &j) == 0 &&
              op_jws_mac_ok(&j, tok, key, 64) && op_connect_read(&j, 1990, &cc) == -EINVAL,
          "port 70000 in a signed token refused");
    return check_report("sha512, hmac-sha512, base64url, HS512 JWS and agent token claims");
}
