/*
 * tls/sni.c — the ClientHello SNI reader (see sni.h). Pure bounds-checked parsing of one record: the
 * record header, the handshake header, then the fixed ClientHello fields and the extensions until
 * server_name. Anything it cannot read is reported, never guessed; wolfSSL judges the bytes afterwards.
 */
#include "tls/sni.h"

#include <errno.h>
#include <string.h>

static inline size_t be16(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

ssize_t op_tls_sni_from_hello(const uint8_t *p, size_t n, char *out, size_t outlen)
{
    if (n < 5) return -EAGAIN;
    if (p[0] != 0x16 || p[1] != 0x03) return -EINVAL;
    size_t rl = be16(p + 3);
    if (rl < 4 || rl > OP_TLS_RECORD_MAX) return -EINVAL;
    if (n < 5 + rl) return -EAGAIN;
    const uint8_t *q = p + 5, *end = p + 5 + rl;
    if (q[0] != 0x01) /* client_hello */
        return -EINVAL;
    size_t ml = (size_t)q[1] << 16 | (size_t)q[2] << 8 | q[3];
    q += 4;
    if (ml > (size_t)(end - q))
        return -EMSGSIZE; /* the ClientHello spans several records: we do not reassemble */
    end = q + ml;
#define NEED(k)                                                                                              \
    do {                                                                                                     \
        if ((size_t)(end - q) < (size_t)(k)) return -EINVAL;                                                 \
    } while (0)
    NEED(2 + 32 + 1); /* version, random, session id length */
    q += 2 + 32;
    size_t l = q[0];
    q += 1;
    NEED(l + 2);
    q += l;
    l = be16(q); /* cipher suites */
    q += 2;
    NEED(l + 1);
    q += l;
    l = q[0]; /* compression methods */
    q += 1;
    NEED(l);
    q += l;
    if (q == end) return 0; /* no extensions */
    NEED(2);
    l = be16(q);
    q += 2;
    NEED(l);
    end = q + l;
    while (end - q >= 4) {
        size_t type = be16(q), el = be16(q + 2);
        q += 4;
        NEED(el);
        if (type != 0) { /* server_name */
            q += el;
            continue;
        }
        end = q + el;
        NEED(2);
        size_t ll = be16(q);
        q += 2;
        NEED(ll);
        end = q + ll;
        while (end - q >= 3) {
            size_t nt = q[0], nl = be16(q + 1);
            q += 3;
            NEED(nl);
            if (nt == 0) { /* host_name */
                if (nl == 0 || nl > 255 || nl >= outlen) return -EINVAL;
                for (size_t i = 0; i < nl; i++)
                    if (q[i] <= 0x20 || q[i] >= 0x7f) return -EINVAL;
                memcpy(out, q, nl);
                out[nl] = '\0';
                return (ssize_t)nl;
            }
            q += nl;
        }
        return 0;
    }
#undef NEED
    return 0;
}
