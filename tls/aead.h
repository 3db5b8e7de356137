/*
 * tls/aead.h — AES-256-GCM from wolfSSL for the formats above TLS that need authenticated encryption (the
 * JWE of wsapp/jwe.h), and the system's random bytes. 96-bit IVs, 128-bit tags.
 */
#ifndef OP_TLS_AEAD_H
#define OP_TLS_AEAD_H

#include <stddef.h>
#include <stdint.h>

/* out receives n bytes of ciphertext, tag 16 bytes. 0 or -EIO. */
int op_aes256gcm_seal(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aadlen,
                      const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[16]);
/* 0, or -EACCES when the tag does not authenticate (out is then wiped), -EIO. */
int op_aes256gcm_open(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aadlen,
                      const uint8_t *in, size_t n, const uint8_t tag[16], uint8_t *out);
/* n random bytes (getrandom). 0 or -errno. */
int op_random_bytes(void *out, size_t n);

#endif
