/* primary/crypto.c — HMAC-SHA256, PBKDF2, randomness and token helpers (see crypto.h); SHA-256 is
 * proto/sha256.c. */
#include "primary/crypto.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "util/uuid.h"

/* Precomputed inner/outer states so PBKDF2 does not rehash the key pads on every iteration. */
struct hmac_ctx {
    struct op_sha256 inner, outer;
};

static void hmac_setup(struct hmac_ctx *h, const void *key, size_t keylen)
{
    uint8_t k[OP_SHA256_BLOCK] = {0}, pad[OP_SHA256_BLOCK];
    if (keylen > OP_SHA256_BLOCK)
        op_sha256(key, keylen, k);
    else if (keylen)
        memcpy(k, key, keylen);
    for (int i = 0; i < OP_SHA256_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    op_sha256_init(&h->inner);
    op_sha256_update(&h->inner, pad, sizeof(pad));
    for (int i = 0; i < OP_SHA256_BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    op_sha256_init(&h->outer);
    op_sha256_update(&h->outer, pad, sizeof(pad));
    op_secure_zero(k, sizeof(k));
    op_secure_zero(pad, sizeof(pad));
}

static void hmac_run(const struct hmac_ctx *h, const void *data, size_t len, uint8_t out[OP_SHA256_LEN])
{
    struct op_sha256 c = h->inner;
    uint8_t ih[OP_SHA256_LEN];
    op_sha256_update(&c, data, len);
    op_sha256_final(&c, ih);
    c = h->outer;
    op_sha256_update(&c, ih, sizeof(ih));
    op_sha256_final(&c, out);
}

void op_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[OP_SHA256_LEN])
{
    struct hmac_ctx h;
    hmac_setup(&h, key, keylen);
    hmac_run(&h, data, len, out);
    op_secure_zero(&h, sizeof(h));
}

int op_pbkdf2_sha256(const void *pass, size_t passlen, const void *salt, size_t saltlen, uint32_t iterations,
                     uint8_t *out, size_t outlen)
{
    if (iterations == 0 || outlen == 0 || saltlen > 1024) return -EINVAL;
    struct hmac_ctx h;
    hmac_setup(&h, pass, passlen);
    uint8_t msg[1024 + 4];
    memcpy(msg, salt, saltlen);
    for (uint32_t block = 1; outlen > 0; block++) {
        msg[saltlen] = (uint8_t)(block >> 24);
        msg[saltlen + 1] = (uint8_t)(block >> 16);
        msg[saltlen + 2] = (uint8_t)(block >> 8);
        msg[saltlen + 3] = (uint8_t)block;
        uint8_t u[OP_SHA256_LEN], t[OP_SHA256_LEN];
        hmac_run(&h, msg, saltlen + 4, u);
        memcpy(t, u, sizeof(t));
        for (uint32_t i = 1; i < iterations; i++) {
            hmac_run(&h, u, sizeof(u), u);
            for (int j = 0; j < OP_SHA256_LEN; j++)
                t[j] ^= u[j];
        }
        size_t take = OP_MIN(outlen, (size_t)OP_SHA256_LEN);
        memcpy(out, t, take);
        out += take;
        outlen -= take;
        op_secure_zero(u, sizeof(u));
        op_secure_zero(t, sizeof(t));
    }
    op_secure_zero(&h, sizeof(h));
    return 0;
}

int op_random_alnum(char *out, size_t n)
{
    static const char cs[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t i = 0;
    while (i < n) {
        uint8_t b[64];
        int rc = op_random_bytes(b, sizeof(b));
        if (rc) return rc;
        for (size_t j = 0; j < sizeof(b) && i < n; j++)
            if (b[j] < 248) /* 248 = 4 * 62: reject the tail so every character is equally likely */
                out[i++] = cs[b[j] % 62];
    }
    out[n] = '\0';
    return 0;
}

int op_uuid_v4(char out[OP_UUID_STR_LEN + 1])
{
    uint8_t b[16];
    int rc = op_random_bytes(b, sizeof(b));
    if (rc) return rc;
    op_uuid_v4_text(b, out);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool op_uuid_valid(const char *s, size_t len)
{
    if (!s || len != OP_UUID_STR_LEN) return false;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return false;
        } else if (hexval(s[i]) < 0) {
            return false;
        }
    }
    return true;
}

bool op_uuid_is_nil(const char *s)
{
    return strcmp(s, "00000000-0000-0000-0000-000000000000") == 0;
}

void op_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * len] = '\0';
}

int op_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen)
{
    if (inlen != 2 * outlen) return -EINVAL;
    for (size_t i = 0; i < outlen; i++) {
        int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0) return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

bool op_ct_equal(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < len; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

void op_secure_zero(void *p, size_t len)
{
    volatile uint8_t *v = p;
    while (len--)
        *v++ = 0;
}
