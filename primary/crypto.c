/* primary/crypto.c — SHA-256, HMAC, PBKDF2, randomness and token helpers (see crypto.h). */
#include "primary/crypto.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t ror(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void compress(uint32_t h[8], const uint8_t blk[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 | (uint32_t)blk[4 * i + 2] << 8 |
               (uint32_t)blk[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ror(e, 6) ^ ror(e, 11) ^ ror(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + K[i] + w[i];
        uint32_t S0 = ror(a, 2) ^ ror(a, 13) ^ ror(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void op_sha256_init(struct op_sha256 *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof(iv));
    c->total = 0;
    c->buflen = 0;
}

void op_sha256_update(struct op_sha256 *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->total += len;
    if (c->buflen) {
        size_t take = OP_MIN(len, OP_SHA256_BLOCK - c->buflen);
        memcpy(c->buf + c->buflen, p, take);
        c->buflen += take;
        p += take;
        len -= take;
        if (c->buflen < OP_SHA256_BLOCK) return;
        compress(c->h, c->buf);
        c->buflen = 0;
    }
    while (len >= OP_SHA256_BLOCK) {
        compress(c->h, p);
        p += OP_SHA256_BLOCK;
        len -= OP_SHA256_BLOCK;
    }
    if (len) {
        memcpy(c->buf, p, len);
        c->buflen = len;
    }
}

void op_sha256_final(struct op_sha256 *c, uint8_t out[OP_SHA256_LEN])
{
    uint64_t bits = c->total * 8;
    c->buf[c->buflen++] = 0x80;
    if (c->buflen > 56) {
        memset(c->buf + c->buflen, 0, OP_SHA256_BLOCK - c->buflen);
        compress(c->h, c->buf);
        c->buflen = 0;
    }
    memset(c->buf + c->buflen, 0, 56 - c->buflen);
    for (int i = 0; i < 8; i++)
        c->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(c->h, c->buf);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
    op_secure_zero(c, sizeof(*c));
}

void op_sha256(const void *data, size_t len, uint8_t out[OP_SHA256_LEN])
{
    struct op_sha256 c;
    op_sha256_init(&c);
    op_sha256_update(&c, data, len);
    op_sha256_final(&c, out);
}

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

int op_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
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
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char hex[33];
    op_hex_encode(b, 16, hex);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
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
