/* proto/sha1.c — SHA-1 (FIPS 180-4), allocation-free (see sha1.h). */
#include "proto/sha1.h"

#include <string.h>

static inline uint32_t rol(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void compress(uint32_t h[5], const uint8_t blk[64])
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 | (uint32_t)blk[4 * i + 2] << 8 |
               (uint32_t)blk[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void op_sha1_init(struct op_sha1 *c)
{
    static const uint32_t iv[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memcpy(c->h, iv, sizeof(iv));
    c->m.total = 0;
    c->m.buflen = 0;
}

void op_sha1_update(struct op_sha1 *c, const void *data, size_t len)
{
    op_md64_update(&c->m, c->h, compress, data, len);
}

void op_sha1_final(struct op_sha1 *c, uint8_t out[OP_SHA1_LEN])
{
    op_md64_final(&c->m, c->h, compress, out, 5);
    op_md64_wipe(c, sizeof(*c)); /* the context holds message bytes */
}

void op_sha1(const void *data, size_t len, uint8_t out[OP_SHA1_LEN])
{
    struct op_sha1 c;
    op_sha1_init(&c);
    op_sha1_update(&c, data, len);
    op_sha1_final(&c, out);
}
