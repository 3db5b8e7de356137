/*
 * proto/sha256.h — SHA-256 (FIPS 180-4). Below the roles so that the primary (API key, proxy and agent
 * token hashes) and wsapp/ (the subdomain app cookie name) share one implementation; no wolfSSL headers
 * outside tls/. Nothing here allocates.
 */
#ifndef OP_PROTO_SHA256_H
#define OP_PROTO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "proto/md64.h"

#define OP_SHA256_LEN   32
#define OP_SHA256_BLOCK 64

struct op_sha256 {
    uint32_t h[8];
    struct op_md64 m; /* the partial block and the length */
};

void op_sha256_init(struct op_sha256 *c);
void op_sha256_update(struct op_sha256 *c, const void *data, size_t len);
/* Writes the digest and wipes the context. */
void op_sha256_final(struct op_sha256 *c, uint8_t out[OP_SHA256_LEN]);
/* One-shot SHA-256 of data[0..len). */
void op_sha256(const void *data, size_t len, uint8_t out[OP_SHA256_LEN]);

#endif
