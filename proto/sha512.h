/*
 * proto/sha512.h — SHA-512 (FIPS 180-4) and HMAC-SHA512 (RFC 2104) for HS512 JWS. Below the roles so that
 * the primary (signing) and a workspace proxy (verifying) share one implementation; no wolfSSL headers
 * outside tls/. Nothing here allocates.
 */
#ifndef OP_PROTO_SHA512_H
#define OP_PROTO_SHA512_H

#include <stddef.h>
#include <stdint.h>

#define OP_SHA512_LEN   64
#define OP_SHA512_BLOCK 128

struct op_sha512 {
    uint64_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t buf[OP_SHA512_BLOCK];
    size_t buflen;
};

void op_sha512_init(struct op_sha512 *c);
void op_sha512_update(struct op_sha512 *c, const void *data, size_t len);
/* Writes the digest and wipes the context. */
void op_sha512_final(struct op_sha512 *c, uint8_t out[OP_SHA512_LEN]);
void op_sha512(const void *data, size_t len, uint8_t out[OP_SHA512_LEN]);

struct op_hmac_sha512 {
    struct op_sha512 inner, outer;
};
/* Keys longer than a block are hashed first, as RFC 2104 says. */
void op_hmac_sha512_init(struct op_hmac_sha512 *m, const void *key, size_t keylen);
void op_hmac_sha512_update(struct op_hmac_sha512 *m, const void *data, size_t len);
void op_hmac_sha512_final(struct op_hmac_sha512 *m, uint8_t out[OP_SHA512_LEN]);
void op_hmac_sha512(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[OP_SHA512_LEN]);

#endif
