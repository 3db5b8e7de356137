/* proto/sha512.c — SHA-512 (FIPS 180-4) and HMAC-SHA512 (RFC 2104), allocation-free (see sha512.h). */
#include "proto/sha512.h"

#include <string.h>

static const uint64_t K[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

static inline uint64_t ror(uint64_t x, unsigned n)
{
    return (x >> n) | (x << (64 - n));
}

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void compress(uint64_t h[8], const uint8_t blk[OP_SHA512_BLOCK])
{
    uint64_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = load_be64(blk + 8 * i);
    for (int i = 16; i < 80; i++) {
        uint64_t s0 = ror(w[i - 15], 1) ^ ror(w[i - 15], 8) ^ (w[i - 15] >> 7);
        uint64_t s1 = ror(w[i - 2], 19) ^ ror(w[i - 2], 61) ^ (w[i - 2] >> 6);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint64_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 80; i++) {
        uint64_t S1 = ror(e, 14) ^ ror(e, 18) ^ ror(e, 41);
        uint64_t ch = (e & f) ^ (~e & g);
        uint64_t t1 = hh + S1 + ch + K[i] + w[i];
        uint64_t S0 = ror(a, 28) ^ ror(a, 34) ^ ror(a, 39);
        uint64_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint64_t t2 = S0 + maj;
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

void op_sha512_init(struct op_sha512 *c)
{
    static const uint64_t iv[8] = {
        0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
        0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
    };
    memcpy(c->h, iv, sizeof(iv));
    c->total = 0;
    c->buflen = 0;
}

void op_sha512_update(struct op_sha512 *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->total += len;
    if (c->buflen) {
        size_t take = OP_SHA512_BLOCK - c->buflen < len ? OP_SHA512_BLOCK - c->buflen : len;
        memcpy(c->buf + c->buflen, p, take);
        c->buflen += take;
        p += take;
        len -= take;
        if (c->buflen < OP_SHA512_BLOCK) return;
        compress(c->h, c->buf);
        c->buflen = 0;
    }
    while (len >= OP_SHA512_BLOCK) {
        compress(c->h, p);
        p += OP_SHA512_BLOCK;
        len -= OP_SHA512_BLOCK;
    }
    memcpy(c->buf, p, len);
    c->buflen = len;
}

void op_sha512_final(struct op_sha512 *c, uint8_t out[OP_SHA512_LEN])
{
    /* The message length is a 128-bit big-endian bit count; byte counts below 2^61 need only the low half. */
    uint64_t bits = c->total * 8;
    uint8_t pad = 0x80;
    op_sha512_update(c, &pad, 1);
    uint8_t zero = 0;
    while (c->buflen != OP_SHA512_BLOCK - 16)
        op_sha512_update(c, &zero, 1);
    uint8_t len[16] = {0};
    for (int i = 0; i < 8; i++)
        len[15 - i] = (uint8_t)(bits >> (8 * i));
    op_sha512_update(c, len, sizeof(len));
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            out[8 * i + j] = (uint8_t)(c->h[i] >> (56 - 8 * j));
    memset(c, 0, sizeof(*c));
}

void op_sha512(const void *data, size_t len, uint8_t out[OP_SHA512_LEN])
{
    struct op_sha512 c;
    op_sha512_init(&c);
    op_sha512_update(&c, data, len);
    op_sha512_final(&c, out);
}

void op_hmac_sha512_init(struct op_hmac_sha512 *m, const void *key, size_t keylen)
{
    uint8_t k[OP_SHA512_BLOCK] = {0}, pad[OP_SHA512_BLOCK];
    if (keylen > OP_SHA512_BLOCK)
        op_sha512(key, keylen, k);
    else if (keylen)
        memcpy(k, key, keylen);
    for (int i = 0; i < OP_SHA512_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    op_sha512_init(&m->inner);
    op_sha512_update(&m->inner, pad, sizeof(pad));
    for (int i = 0; i < OP_SHA512_BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    op_sha512_init(&m->outer);
    op_sha512_update(&m->outer, pad, sizeof(pad));
    volatile uint8_t *vk = k;
    for (size_t i = 0; i < sizeof(k); i++)
        vk[i] = 0;
}

void op_hmac_sha512_update(struct op_hmac_sha512 *m, const void *data, size_t len)
{
    op_sha512_update(&m->inner, data, len);
}

void op_hmac_sha512_final(struct op_hmac_sha512 *m, uint8_t out[OP_SHA512_LEN])
{
    uint8_t ih[OP_SHA512_LEN];
    op_sha512_final(&m->inner, ih);
    op_sha512_update(&m->outer, ih, sizeof(ih));
    op_sha512_final(&m->outer, out);
}

void op_hmac_sha512(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[OP_SHA512_LEN])
{
    struct op_hmac_sha512 m;
    op_hmac_sha512_init(&m, key, keylen);
    op_hmac_sha512_update(&m, data, len);
    op_hmac_sha512_final(&m, out);
}
