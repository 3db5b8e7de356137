/*
 * proto/md64.h — the message framing SHA-1 and SHA-256 share (FIPS 180-4 §5.1.1, §5.2.1): the message
 * goes through a compression function in 64-byte blocks, then 0x80, zeros, and the message length in
 * bits as a big-endian 64-bit number in the last 8 bytes of the last block. Used by proto/sha1.c and
 * proto/sha256.c only; nothing here allocates.
 */
#ifndef OP_PROTO_MD64_H
#define OP_PROTO_MD64_H

#include <stddef.h>
#include <stdint.h>

#define OP_MD64_BLOCK 64

/* The state words h[] are the hash's own; this holds the partial block and the length. */
struct op_md64 {
    uint64_t total; /* bytes hashed so far */
    uint8_t buf[OP_MD64_BLOCK];
    size_t buflen;
};

typedef void (*op_md64_compress_fn)(uint32_t *h, const uint8_t block[OP_MD64_BLOCK]);

void op_md64_update(struct op_md64 *m, uint32_t *h, op_md64_compress_fn f, const void *data, size_t len);
/* Pads, compresses the last block(s) and writes h[0..nwords) big-endian to out. */
void op_md64_final(struct op_md64 *m, uint32_t *h, op_md64_compress_fn f, uint8_t *out, int nwords);
/* Zeroes p[0..n) in a way the compiler keeps (a hash context holds message bytes). */
void op_md64_wipe(void *p, size_t n);

#endif
