/* proto/md64.c — 64-byte-block message framing for SHA-1 and SHA-256 (see md64.h). */
#include "proto/md64.h"

#include <string.h>

void op_md64_update(struct op_md64 *m, uint32_t *h, op_md64_compress_fn f, const void *data, size_t len)
{
    const uint8_t *p = data;
    m->total += len;
    if (m->buflen) {
        size_t take = len < OP_MD64_BLOCK - m->buflen ? len : OP_MD64_BLOCK - m->buflen;
        memcpy(m->buf + m->buflen, p, take);
        m->buflen += take;
        p += take;
        len -= take;
        if (m->buflen < OP_MD64_BLOCK) return;
        f(h, m->buf);
        m->buflen = 0;
    }
    while (len >= OP_MD64_BLOCK) {
        f(h, p);
        p += OP_MD64_BLOCK;
        len -= OP_MD64_BLOCK;
    }
    if (len) {
        memcpy(m->buf, p, len);
        m->buflen = len;
    }
}

void op_md64_final(struct op_md64 *m, uint32_t *h, op_md64_compress_fn f, uint8_t *out, int nwords)
{
    uint64_t bits = m->total * 8;
    m->buf[m->buflen++] = 0x80;
    if (m->buflen > OP_MD64_BLOCK - 8) {
        memset(m->buf + m->buflen, 0, OP_MD64_BLOCK - m->buflen);
        f(h, m->buf);
        m->buflen = 0;
    }
    memset(m->buf + m->buflen, 0, OP_MD64_BLOCK - 8 - m->buflen);
    for (int i = 0; i < 8; i++)
        m->buf[OP_MD64_BLOCK - 8 + i] = (uint8_t)(bits >> (56 - 8 * i));
    f(h, m->buf);
    for (int i = 0; i < nwords; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

void op_md64_wipe(void *p, size_t n)
{
    volatile uint8_t *z = p;
    for (size_t i = 0; i < n; i++)
        z[i] = 0;
}
