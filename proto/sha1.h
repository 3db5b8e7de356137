/*
 * proto/sha1.h — SHA-1 (FIPS 180-4). Only for the WebSocket handshake's Sec-WebSocket-Accept, which
 * RFC 6455 defines with SHA-1; nothing uses it as a security hash. Nothing here allocates.
 */
#ifndef OP_PROTO_SHA1_H
#define OP_PROTO_SHA1_H

#include <stddef.h>
#include <stdint.h>

#include "proto/md64.h"

#define OP_SHA1_LEN   20
#define OP_SHA1_BLOCK 64

struct op_sha1 {
    uint32_t h[5];
    struct op_md64 m; /* the partial block and the length */
};

void op_sha1_init(struct op_sha1 *c);
void op_sha1_update(struct op_sha1 *c, const void *data, size_t len);
/* Writes the digest and wipes the context. */
void op_sha1_final(struct op_sha1 *c, uint8_t out[OP_SHA1_LEN]);
/* One-shot SHA-1 of data[0..len). */
void op_sha1(const void *data, size_t len, uint8_t out[OP_SHA1_LEN]);

#endif
