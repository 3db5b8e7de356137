/*
 * tls/aead.c and wsapp/jwe.c against Python's `cryptography` (AESGCM) and zlib, run from the test:
 * AES-256-GCM vectors for several plaintext and AAD lengths; JWEs that Python builds the way go-jose does
 * (A256GCMKW key wrap with the iv and tag in the protected header, A256GCM content with the encoded header
 * as AAD, raw DEFLATE) open with op_jwe_decrypt; tokens op_jwe_encrypt wrote open in Python and carry the
 * header go-jose writes (sorted members, string kid). Then the refusals: wrong key and every tampered
 * part (-EACCES), other alg/enc/zip and crit (-ENOTSUP), malformed tokens (-EINVAL), oversize tokens,
 * plaintexts and a decompression bomb (-EMSGSIZE), and op_jwe_kid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/jws.h"
#include "tls/aead.h"
#include "wsapp/jwe.h"
#include "tests/unit/check.h"

static const char py[] =
    "import base64, json, os, sys, zlib\n"
    "from cryptography.hazmat.primitives.ciphers.aead import AESGCM\n"
    "def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()\n"
    "def ub64(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))\n"
    "key = bytes.fromhex(sys.argv[1])\n"
    "for n, an in [(0, 0), (1, 0), (15, 3), (16, 16), (17, 20), (100, 0), (333, 77)]:\n"
    "    k, iv, a, p = os.urandom(32), os.urandom(12), os.urandom(an), os.urandom(n)\n"
    "    c = AESGCM(k).encrypt(iv, p, a)\n"
    "    print('gcm', k.hex(), iv.hex(), a.hex() or '-', p.hex() or '-', c[:-16].hex() or '-', "
    "c[-16:].hex())\n"
    "def deflate(p):\n"
    "    c = zlib.compressobj(wbits=-15)\n"
    "    return c.compress(p) + c.flush()\n"
    "def jwe(pt, k=key, alg='A256GCMKW', enc='A256GCM', zip='DEF', kid='7', extra=None, wiv_len=12,\n"
    "        body=None, header=None):\n"
    "    cek, wiv = os.urandom(32), os.urandom(wiv_len)\n"
    "    w = AESGCM(k).encrypt(wiv, cek, None)\n"
    "    h = {'alg': alg, 'enc': enc, 'iv': b64(wiv), 'tag': b64(w[-16:])}\n"
    "    if kid is not None: h['kid'] = kid\n"
    "    if zip is not None: h['zip'] = zip\n"
    "    h.update(extra or {})\n"
    "    if alg is None: del h['alg']\n"
    "    ph = b64(header or json.dumps(h, separators=(',', ':'), sort_keys=True).encode())\n"
    "    data = body if body is not None else (deflate(pt) if zip else pt)\n"
    "    iv = os.urandom(12)\n"
    "    c = AESGCM(cek).encrypt(iv, data, ph.encode())\n"
    "    return '.'.join([ph, b64(w[:-16]), b64(iv), b64(c[:-16]), b64(c[-16:])])\n"
    "claims = json.dumps({'iss': 'coderd', 'aud': ['wsproxy'], 'exp': 1700000060, 'nbf': 1699999940,\n"
    "                     'api_key': 'Abc123def4-0123456789abcdefghijklmn'}, separators=(',', "
    "':')).encode()\n"
    "big = (b'{\"api_key\":\"' + b'0123456789abcdef' * 200)[:2046] + b'\"}'\n"
    "rnd = bytes(33 + b % 90 for b in os.urandom(2049))\n"
    "for name, pt in [('claims', claims), ('big', big), ('rnd2048', rnd[:2048])]: print('pt', name, "
    "pt.hex())\n"
    "print('tok good', jwe(claims))\n"
    "print('tok nozip', jwe(claims, zip=None))\n"
    "print('tok numkid', jwe(claims, kid=12))\n"
    "print('tok big', jwe(big))\n"
    "print('tok bigraw', jwe(big, zip=None))\n"
    "print('tok rnd2048', jwe(rnd[:2048]))\n"
    "print('tok over', jwe(rnd))\n"
    "print('tok overraw', jwe(rnd, zip=None))\n"
    "print('tok bomb', jwe(b'0' * (1 << 20)))\n"
    "print('tok wrongkey', jwe(claims, k=os.urandom(32)))\n"
    "print('tok a128kw', jwe(claims, alg='A128GCMKW'))\n"
    "print('tok dir', jwe(claims, alg='dir'))\n"
    "print('tok noalg', jwe(claims, alg=None))\n"
    "print('tok a128', jwe(claims, enc='A128GCM'))\n"
    "print('tok gzip', jwe(claims, zip='GZIP'))\n"
    "print('tok crit', jwe(claims, extra={'crit': ['exp'], 'exp': 1}))\n"
    "print('tok nokid', jwe(claims, kid=None))\n"
    "print('tok badkid', jwe(claims, kid='x1'))\n"
    "print('tok shortiv', jwe(claims, wiv_len=8))\n"
    "print('tok notobj', jwe(claims, header=b'[\"A256GCMKW\"]'))\n"
    "print('tok baddeflate', jwe(claims, body=b'\\x07\\x00\\x00\\x00'))\n"
    "print('tok trailing', jwe(claims, body=deflate(claims) + b'junk'))\n"
    "print('tok truncated', jwe(claims, body=deflate(claims)[:-3]))\n"
    "print('tok nul', jwe(b'{\"a\":\"\\x00\"}'))\n"
    "for i, tok in enumerate(sys.argv[2:]):\n"
    "    p = tok.split('.')\n"
    "    assert len(p) == 5\n"
    "    raw = ub64(p[0]); h = json.loads(raw)\n"
    "    exact = raw == json.dumps(h, separators=(',', ':'), sort_keys=True).encode()\n"
    "    cek = AESGCM(key).decrypt(ub64(h['iv']), ub64(p[1]) + ub64(h['tag']), None)\n"
    "    pt = zlib.decompress(AESGCM(cek).decrypt(ub64(p[2]), ub64(p[3]) + ub64(p[4]), p[0].encode()), -15)\n"
    "    print('dec', i, ','.join(h), h['alg'] + '/' + h['enc'] + '/' + h['zip'], repr(h['kid']), "
    "int(exact),\n"
    "          pt.hex() or '-')\n";

static int unhex(const char *s, uint8_t *out, size_t cap)
{
    if (!s) return -1;
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

static char vectors[64][20000];
static int nvec;

static const char *vec(const char *kind, const char *name)
{
    size_t k = strlen(kind), n = strlen(name);
    for (int i = 0; i < nvec; i++)
        if (strncmp(vectors[i], kind, k) == 0 && vectors[i][k] == ' ' &&
            strncmp(vectors[i] + k + 1, name, n) == 0 && vectors[i][k + 1 + n] == ' ')
            return vectors[i] + k + n + 2;
    printf("missing vector %s %s\n", kind, name);
    exit(1);
}

static uint8_t key[32];
static char out[OP_JWE_MAX_PLAINTEXT + 1];

static int dec(const char *tok)
{
    return op_jwe_decrypt(tok, strlen(tok), key, out, sizeof(out));
}

/* Decrypts Python's token name and compares with its plaintext vector. */
static void check_opens(const char *name, const char *ptname)
{
    static uint8_t want[OP_JWE_MAX_PLAINTEXT + 1];
    int wn = unhex(vec("pt", ptname), want, sizeof(want));
    int r = dec(vec("tok", name));
    CHECK(r == wn && memcmp(out, want, (size_t)wn) == 0 && out[r] == '\0', "Python's %s token opens (%d)",
          name, r);
}

static void check_refused(const char *name, int want)
{
    int r = dec(vec("tok", name));
    CHECK(r == want, "Python's %s token refused with %d (got %d)", name, want, r);
}

static void test_aead_vectors(char *line)
{
    static uint8_t k[32], iv[12], a[512], p[512], c[512], t[16], got[512], gt[16];
    char *save = NULL;
    strtok_r(line, " ", &save);
    int kl = unhex(strtok_r(NULL, " ", &save), k, sizeof(k));
    int il = unhex(strtok_r(NULL, " ", &save), iv, sizeof(iv));
    int al = unhex(strtok_r(NULL, " ", &save), a, sizeof(a));
    int pl = unhex(strtok_r(NULL, " ", &save), p, sizeof(p));
    int cl = unhex(strtok_r(NULL, " ", &save), c, sizeof(c));
    int tl = unhex(strtok_r(NULL, " ", &save), t, sizeof(t));
    CHECK(kl == 32 && il == 12 && al >= 0 && pl >= 0 && cl == pl && tl == 16, "gcm vector read");
    CHECK(op_aes256gcm_seal(k, iv, a, (size_t)al, p, (size_t)pl, got, gt) == 0 &&
              memcmp(got, c, (size_t)cl) == 0 && memcmp(gt, t, 16) == 0,
          "AES-256-GCM seal = Python, %d bytes, aad %d", pl, al);
    CHECK(op_aes256gcm_open(k, iv, a, (size_t)al, c, (size_t)cl, t, got) == 0 &&
              memcmp(got, p, (size_t)pl) == 0,
          "AES-256-GCM open of Python's, %d bytes, aad %d", pl, al);
    t[pl % 16] ^= 1;
    memset(got, 0xaa, sizeof(got));
    int r = op_aes256gcm_open(k, iv, a, (size_t)al, c, (size_t)cl, t, got);
    bool wiped = true;
    for (int i = 0; i < cl; i++)
        wiped = wiped && got[i] == 0;
    CHECK(r == -EACCES && wiped, "a changed tag: -EACCES (%d) and the output wiped, %d bytes", r, pl);
    t[pl % 16] ^= 1;
    if (al > 0) {
        a[0] ^= 0x80;
        CHECK(op_aes256gcm_open(k, iv, a, (size_t)al, c, (size_t)cl, t, got) == -EACCES,
              "a changed AAD: -EACCES");
    }
    if (cl > 0) {
        c[cl - 1] ^= 1;
        CHECK(op_aes256gcm_open(k, iv, a, (size_t)al, c, (size_t)cl, t, got) == -EACCES,
              "a changed ciphertext: -EACCES");
    }
}

/* Replaces the first character of part `which` (0..4) of tok with another base64url letter. */
static void flip_part(const char *tok, int which, char *dst)
{
    strcpy(dst, tok);
    char *p = dst;
    for (int i = 0; i < which; i++)
        p = strchr(p, '.') + 1;
    *p = *p == 'A' ? 'B' : 'A';
}

/* Rewrites tok's protected header: the first `from` in the decoded JSON becomes `to` (same length). */
static void edit_header(const char *tok, const char *from, const char *to, char *dst)
{
    char hdr[512];
    const char *dot = strchr(tok, '.');
    int hl = op_b64url_decode(tok, (size_t)(dot - tok), (uint8_t *)hdr, sizeof(hdr) - 1);
    hdr[hl > 0 ? hl : 0] = '\0';
    char *at = strstr(hdr, from);
    if (at) memcpy(at, to, strlen(to));
    int o = op_b64url_encode(hdr, strlen(hdr), dst, 8192);
    strcpy(dst + o, dot);
}

static void test_encrypt(void)
{
    char tok[OP_JWE_MAX_TOKEN], tok2[OP_JWE_MAX_TOKEN], bad[OP_JWE_MAX_TOKEN + 8];
    const char *pt =
        "{\"iss\":\"coderd\",\"aud\":[\"wsproxy\"],\"exp\":1700000060,\"api_key\":\"id-secret\"}";
    size_t pl = strlen(pt);
    int tl = op_jwe_encrypt(pt, pl, 7, key, tok, sizeof(tok));
    CHECK(tl > 0 && (size_t)tl == strlen(tok), "encrypt: %d", tl);
    int64_t kid = -1;
    CHECK(op_jwe_kid(tok, (size_t)tl, &kid) == 0 && kid == 7, "op_jwe_kid reads 7");
    CHECK(dec(tok) == (int)pl && strcmp(out, pt) == 0, "round trip");
    CHECK(op_jwe_encrypt(pt, pl, 7, key, tok2, sizeof(tok2)) == tl && strcmp(tok, tok2) != 0,
          "a second encryption differs (random key and IVs)");
    CHECK(op_jwe_encrypt("", 0, 0, key, tok2, sizeof(tok2)) > 0 && dec(tok2) == 0 && out[0] == '\0',
          "an empty plaintext round-trips");

    /* Output sizes: the exact size (token plus NUL) works, one byte less is -ENOSPC. */
    CHECK(op_jwe_encrypt(pt, pl, 7, key, tok2, (size_t)tl + 1) == tl, "encrypt into exactly len + 1");
    CHECK(op_jwe_encrypt(pt, pl, 7, key, tok2, (size_t)tl) == -ENOSPC, "encrypt into len: -ENOSPC");
    CHECK(op_jwe_encrypt(pt, pl, -1, key, tok2, sizeof(tok2)) == -EINVAL, "encrypt: kid < 0");
    static char long_pt[OP_JWE_MAX_PLAINTEXT + 2];
    memset(long_pt, 'a', sizeof(long_pt) - 1);
    CHECK(op_jwe_encrypt(long_pt, OP_JWE_MAX_PLAINTEXT + 1, 1, key, tok2, sizeof(tok2)) == -EINVAL,
          "encrypt: over OP_JWE_MAX_PLAINTEXT");
    CHECK(op_jwe_encrypt("a\0b", 3, 1, key, tok2, sizeof(tok2)) == -EINVAL, "encrypt: a NUL byte");
    char small[80];
    CHECK(op_jwe_decrypt(tok, (size_t)tl, key, small, pl) == -EMSGSIZE, "decrypt into len bytes: -EMSGSIZE");
    CHECK(op_jwe_decrypt(tok, (size_t)tl, key, small, pl + 1) == (int)pl && strcmp(small, pt) == 0,
          "decrypt into exactly len + 1");

    uint8_t other[32];
    memcpy(other, key, 32);
    other[31] ^= 1;
    CHECK(op_jwe_decrypt(tok, (size_t)tl, other, out, sizeof(out)) == -EACCES, "wrong key: -EACCES");
    const char *names[] = {"header", "encrypted key", "iv", "ciphertext", "tag"};
    for (int i = 1; i < 5; i++) {
        flip_part(tok, i, bad);
        CHECK(dec(bad) == -EACCES, "tampered %s: -EACCES (%d)", names[i], dec(bad));
    }
    edit_header(tok, "\"kid\":\"7\"", "\"kid\":\"8\"", bad);
    CHECK(dec(bad) == -EACCES && op_jwe_kid(bad, strlen(bad), &kid) == 0 && kid == 8,
          "tampered header (kid 8): -EACCES");
    edit_header(tok, "\"iv\":\"", "\"iv\":\"A", bad); /* the wrap IV's first character */
    if (strcmp(bad, tok) == 0) edit_header(tok, "\"iv\":\"", "\"iv\":\"B", bad);
    CHECK(dec(bad) == -EACCES, "tampered wrap IV in the header: -EACCES");
    edit_header(tok, "\"tag\":\"", "\"tag\":\"A", bad);
    if (strcmp(bad, tok) == 0) edit_header(tok, "\"tag\":\"", "\"tag\":\"B", bad);
    CHECK(dec(bad) == -EACCES, "tampered wrap tag in the header: -EACCES");
    edit_header(tok, "\"zip\":\"DEF\"", "\"zip\":\"DEX\"", bad);
    CHECK(dec(bad) == -ENOTSUP, "zip DEX: -ENOTSUP");

    /* Every one-character change fails, with one of the documented errors. */
    int n_fail = 0;
    for (int i = 0; i < tl; i++) {
        strcpy(bad, tok);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        int r = dec(bad);
        if (!(r == -EINVAL || r == -EACCES || r == -ENOTSUP || r == -EMSGSIZE)) n_fail++;
    }
    CHECK(n_fail == 0, "every one-character change refused (%d accepted)", n_fail);

    /* Malformed: part counts, base64, sizes. */
    char *end = bad + tl;
    strcpy(bad, tok);
    *strrchr(bad, '.') = '\0';
    CHECK(dec(bad) == -EINVAL && op_jwe_kid(bad, strlen(bad), &kid) == -EINVAL, "four parts: -EINVAL");
    strcpy(bad, tok);
    strcat(bad, ".");
    CHECK(dec(bad) == -EINVAL && op_jwe_kid(bad, strlen(bad), &kid) == -EINVAL, "six parts: -EINVAL");
    strcpy(bad, tok);
    *strchr(strchr(strchr(bad, '.') + 1, '.') + 1, '.') = '+';
    CHECK(dec(bad) == -EINVAL, "a '+' for a dot: -EINVAL");
    strcpy(bad, tok);
    end[-1] = '=';
    CHECK(dec(bad) == -EINVAL, "padding: -EINVAL");
    strcpy(bad, tok);
    memmove(strchr(bad, '.') + 1, strchr(strchr(bad, '.') + 1, '.'),
            strlen(strchr(strchr(bad, '.') + 1, '.')) + 1);
    CHECK(dec(bad) == -EINVAL, "empty encrypted key: -EINVAL");
    CHECK(dec("") == -EINVAL && dec("....") == -EINVAL && op_jwe_kid("....", 4, &kid) == -EINVAL,
          "empty parts: -EINVAL");
    static char huge[OP_JWE_MAX_TOKEN + 2];
    memset(huge, 'A', sizeof(huge) - 1);
    for (int i = 1; i <= 4; i++)
        huge[i * 800] = '.';
    CHECK(op_jwe_decrypt(huge, OP_JWE_MAX_TOKEN + 1, key, out, sizeof(out)) == -EMSGSIZE,
          "a token over OP_JWE_MAX_TOKEN: -EMSGSIZE");
    CHECK(op_jwe_kid(huge, OP_JWE_MAX_TOKEN + 1, &kid) == -EINVAL,
          "op_jwe_kid of an oversize token: -EINVAL");

    /* The largest plaintext round-trips, compressible or not. */
    static char maxpt[OP_JWE_MAX_PLAINTEXT + 1];
    uint8_t r[OP_JWE_MAX_PLAINTEXT];
    CHECK(op_random_bytes(r, sizeof(r)) == 0, "random bytes");
    for (size_t i = 0; i < sizeof(r); i++)
        maxpt[i] = (char)(33 + r[i] % 90);
    CHECK(op_jwe_encrypt(maxpt, OP_JWE_MAX_PLAINTEXT, 99, key, tok2, sizeof(tok2)) > 0 &&
              dec(tok2) == OP_JWE_MAX_PLAINTEXT && memcmp(out, maxpt, OP_JWE_MAX_PLAINTEXT) == 0,
          "a random %d-byte plaintext round-trips", OP_JWE_MAX_PLAINTEXT);
    memset(maxpt, 'z', OP_JWE_MAX_PLAINTEXT);
    CHECK(op_jwe_encrypt(maxpt, OP_JWE_MAX_PLAINTEXT, 99, key, tok2, sizeof(tok2)) > 0 &&
              dec(tok2) == OP_JWE_MAX_PLAINTEXT && memcmp(out, maxpt, OP_JWE_MAX_PLAINTEXT) == 0,
          "a repetitive %d-byte plaintext round-trips", OP_JWE_MAX_PLAINTEXT);
}

int main(void)
{
    CHECK(op_random_bytes(key, sizeof(key)) == 0, "random key");
    char keyhex[65];
    for (int i = 0; i < 32; i++)
        sprintf(keyhex + 2 * i, "%02x", key[i]);

    /* Our tokens, for Python to open: claims, the largest repetitive and random plaintexts, empty. */
    static char ours[4][OP_JWE_MAX_TOKEN];
    static char plains[4][OP_JWE_MAX_PLAINTEXT + 1];
    strcpy(plains[0], "{\"iss\":\"coderd\",\"aud\":[\"wsproxy\"],\"exp\":1700000060,\"api_key\":\"k-s\"}");
    memset(plains[1], 'q', OP_JWE_MAX_PLAINTEXT);
    uint8_t r[OP_JWE_MAX_PLAINTEXT];
    op_random_bytes(r, sizeof(r));
    for (int i = 0; i < OP_JWE_MAX_PLAINTEXT; i++)
        plains[2][i] = (char)(33 + r[i] % 90);
    plains[3][0] = '\0';
    int64_t kids[4] = {7, 0, 123456789012345678, 3};
    for (int i = 0; i < 4; i++)
        CHECK(op_jwe_encrypt(plains[i], strlen(plains[i]), kids[i], key, ours[i], sizeof(ours[i])) > 0,
              "encrypt token %d for Python", i);

    char script[] = "/tmp/outpost-test-jwe-XXXXXX";
    int fd = mkstemp(script);
    if (fd < 0 || write(fd, py, sizeof(py) - 1) != (ssize_t)(sizeof(py) - 1)) return 1;
    close(fd);
    static char cmd[4 * OP_JWE_MAX_TOKEN + 256];
    snprintf(cmd, sizeof(cmd), "python3 %s %s %s %s %s %s", script, keyhex, ours[0], ours[1], ours[2],
             ours[3]);
    FILE *f = popen(cmd, "r");
    if (!f) return 77;
    static char line[20000];
    int ngcm = 0, ndec = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "gcm ", 4) == 0) {
            test_aead_vectors(line);
            ngcm++;
        } else if (strncmp(line, "dec ", 4) == 0) {
            /* dec <i> <member order> <alg/enc/zip> <repr(kid)> <header is Go's sorted compact JSON> <hex> */
            char *save = NULL;
            strtok_r(line, " ", &save);
            int i = atoi(strtok_r(NULL, " ", &save));
            const char *order = strtok_r(NULL, " ", &save), *algs = strtok_r(NULL, " ", &save);
            const char *kid = strtok_r(NULL, " ", &save), *exact = strtok_r(NULL, " ", &save);
            static uint8_t got[OP_JWE_MAX_PLAINTEXT + 1];
            int n = unhex(strtok_r(NULL, " ", &save), got, sizeof(got));
            char want_kid[32];
            snprintf(want_kid, sizeof(want_kid), "'%lld'", (long long)kids[i]);
            CHECK(i >= 0 && i < 4 && strcmp(order, "alg,enc,iv,kid,tag,zip") == 0 &&
                      strcmp(algs, "A256GCMKW/A256GCM/DEF") == 0 && strcmp(kid, want_kid) == 0 &&
                      strcmp(exact, "1") == 0,
                  "token %d: go-jose's header (%s %s %s %s)", i, order, algs, kid, exact);
            CHECK(n == (int)strlen(plains[i]) && memcmp(got, plains[i], (size_t)n) == 0,
                  "Python opens our token %d (%d bytes)", i, n);
            ndec++;
        } else if (nvec < 64) {
            snprintf(vectors[nvec++], sizeof(vectors[0]), "%s", line);
        }
    }
    int prc = pclose(f);
    unlink(script);
    if (prc != 0) {
        printf("python3 failed (%d); needs the cryptography package\n", prc);
        return 77;
    }
    CHECK(ngcm == 7 && ndec == 4, "all vectors read (%d gcm, %d dec)", ngcm, ndec);

    check_opens("good", "claims");
    check_opens("nozip", "claims");
    check_opens("numkid", "claims");
    check_opens("big", "big");
    check_opens("bigraw", "big");
    check_opens("rnd2048", "rnd2048");
    int64_t kid = -1;
    const char *t = vec("tok", "good");
    CHECK(op_jwe_kid(t, strlen(t), &kid) == 0 && kid == 7, "op_jwe_kid of Python's token: 7");
    t = vec("tok", "numkid");
    CHECK(op_jwe_kid(t, strlen(t), &kid) == 0 && kid == 12, "op_jwe_kid of a numeric kid: 12");
    t = vec("tok", "nokid");
    CHECK(op_jwe_kid(t, strlen(t), &kid) == -ENOKEY, "op_jwe_kid without kid: -ENOKEY");
    t = vec("tok", "badkid");
    CHECK(op_jwe_kid(t, strlen(t), &kid) == -ENOKEY, "op_jwe_kid of kid x1: -ENOKEY");
    t = vec("tok", "notobj");
    CHECK(op_jwe_kid(t, strlen(t), &kid) == -EINVAL, "op_jwe_kid of a non-object header: -EINVAL");

    check_refused("over", -EMSGSIZE);
    check_refused("overraw", -EMSGSIZE);
    check_refused("bomb", -EMSGSIZE);
    check_refused("wrongkey", -EACCES);
    check_refused("a128kw", -ENOTSUP);
    check_refused("dir", -ENOTSUP);
    check_refused("noalg", -ENOTSUP);
    check_refused("a128", -ENOTSUP);
    check_refused("gzip", -ENOTSUP);
    check_refused("crit", -ENOTSUP);
    check_refused("nokid", -EINVAL);
    check_refused("badkid", -EINVAL);
    check_refused("shortiv", -EINVAL);
    check_refused("notobj", -EINVAL);
    check_refused("baddeflate", -EINVAL);
    check_refused("trailing", -EINVAL);
    check_refused("truncated", -EINVAL);
    check_refused("nul", -EINVAL);

    test_encrypt();
    return check_report("AES-256-GCM and compact JWE (A256GCMKW, A256GCM, DEF) against Python");
}
