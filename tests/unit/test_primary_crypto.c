/* Known-answer tests for primary/crypto.c: SHA-256 (FIPS 180-4 examples), HMAC-SHA256 (RFC 4231),
 * PBKDF2-HMAC-SHA256 (RFC 7914 §11 and the RFC 6070-style SHA-256 vectors), plus helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "primary/crypto.h"
#include "primary/primary.h"

#define CHECK_PRINT_PASSES 1
#include "tests/unit/check.h"

static void check_hex(const char *what, const uint8_t *got, size_t len, const char *want)
{
    char hex[257];
    op_hex_encode(got, len, hex);
    CHECK(strcmp(hex, want) == 0, "%s (got %s, want %s)", what, hex, want);
}

static void check(const char *what, bool ok)
{
    CHECK(ok, "%s", what);
}

int main(void)
{
    uint8_t d[64];
    op_sha256("", 0, d);
    check_hex("sha256('')", d, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    op_sha256("abc", 3, d);
    check_hex("sha256('abc')", d, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    op_sha256(m448, strlen(m448), d);
    check_hex("sha256(448-bit message)", d, 32,
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* One million 'a', fed in uneven chunks to exercise buffering. */
    struct op_sha256 c;
    op_sha256_init(&c);
    char chunk[2048];
    memset(chunk, 'a', sizeof(chunk));
    size_t left = 1000000, step = 1;
    while (left) {
        size_t n = OP_MIN(left, step);
        op_sha256_update(&c, chunk, n);
        left -= n;
        step = step % 997 + 13;
    }
    op_sha256_final(&c, d);
    check_hex("sha256(1e6 x 'a', chunked)", d, 32,
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    uint8_t key[131];
    memset(key, 0x0b, 20);
    op_hmac_sha256(key, 20, "Hi There", 8, d);
    check_hex("hmac rfc4231 #1", d, 32, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    op_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
    check_hex("hmac rfc4231 #2", d, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, sizeof(key));
    const char *big = "Test Using Larger Than Block-Size Key - Hash Key First";
    op_hmac_sha256(key, 131, big, strlen(big), d);
    check_hex("hmac rfc4231 #6 (long key)", d, 32,
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

    op_pbkdf2_sha256("passwd", 6, "salt", 4, 1, d, 64);
    check_hex("pbkdf2 rfc7914 #1", d, 64,
              "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef"
              "317c71b845"
              "b1e30bd509112041d3a19783");
    op_pbkdf2_sha256("Password", 8, "NaCl", 4, 80000, d, 64);
    check_hex("pbkdf2 rfc7914 #2 (80000 iterations)", d, 64,
              "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3"
              "176a272bde"
              "bba1d078478f62b397f33c8d");
    op_pbkdf2_sha256("password", 8, "salt", 4, 1, d, 32);
    check_hex("pbkdf2 c=1", d, 32, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
    op_pbkdf2_sha256("password", 8, "salt", 4, 2, d, 32);
    check_hex("pbkdf2 c=2", d, 32, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
    op_pbkdf2_sha256("password", 8, "salt", 4, 4096, d, 32);
    check_hex("pbkdf2 c=4096", d, 32, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
    op_pbkdf2_sha256("passwordPASSWORDpassword", 24, "saltSALTsaltSALTsaltSALTsaltSALTsalt", 36, 4096, d, 40);
    check_hex("pbkdf2 long inputs, 40 bytes", d, 40,
              "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9");
    check("pbkdf2 rejects 0 iterations", op_pbkdf2_sha256("p", 1, "s", 1, 0, d, 32) < 0);

    char tok[65];
    check("random alnum",
          op_random_alnum(tok, 64) == 0 && strlen(tok) == 64 &&
              strspn(tok, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == 64);
    char tok2[65];
    op_random_alnum(tok2, 64);
    check("random alnum differs", strcmp(tok, tok2) != 0);
    char u[37];
    check("uuid v4 valid", op_uuid_v4(u) == 0 && op_uuid_valid(u, strlen(u)) && u[14] == '4');
    check("uuid rejects junk", !op_uuid_valid("not-a-uuid", 10) &&
                                   !op_uuid_valid("0000000-00000-0000-0000-000000000000", 36) &&
                                   !op_uuid_valid("g0000000-0000-0000-0000-000000000000", 36));
    check("nil uuid", op_uuid_is_nil("00000000-0000-0000-0000-000000000000"));
    uint8_t raw[4];
    check("hex decode", op_hex_decode("deadBEEF", 8, raw, 4) == 0 && raw[0] == 0xde && raw[3] == 0xef);
    check("hex decode rejects odd/garbage",
          op_hex_decode("abc", 3, raw, 2) < 0 && op_hex_decode("zz", 2, raw, 1) < 0);
    check("ct_equal", op_ct_equal("abc", "abc", 3) && !op_ct_equal("abc", "abd", 3));

    return check_report("primary crypto known answers");
}
