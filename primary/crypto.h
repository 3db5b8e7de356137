/*
 * primary/crypto.h — the small amount of cryptography the control plane needs, implemented here so
 * that only tls/ links against wolfSSL headers: HMAC-SHA256 (RFC 2104), PBKDF2-HMAC-SHA256 (RFC 8018)
 * over proto/sha256.h (included here, so the primary's callers keep their one include), random bytes from
 * getrandom(2), and token/UUID/hex helpers. None of these functions allocate. Secrets passed in are never
 * logged.
 */
#ifndef OP_PRIMARY_CRYPTO_H
#define OP_PRIMARY_CRYPTO_H

#include "core/common.h"
#include "proto/sha256.h" /* SHA-256 itself lives in proto/ (shared with wsapp/) */

#define OP_UUID_STR_LEN 36 /* without the NUL */

/* HMAC-SHA256(key, data). Keys longer than a block are hashed first, as RFC 2104 says. */
void op_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[OP_SHA256_LEN]);
/* PBKDF2-HMAC-SHA256: derives outlen bytes. iterations >= 1. Returns 0 or -EINVAL. */
int op_pbkdf2_sha256(const void *pass, size_t passlen, const void *salt, size_t saltlen, uint32_t iterations,
                     uint8_t *out, size_t outlen);

/* Fills buf with len cryptographically random bytes (getrandom(2), retried on EINTR). 0 or -errno.
 * Defined in tls/aead.c and declared in tls/aead.h too, where wsapp/ (below primary/) finds it. */
int op_random_bytes(void *buf, size_t len);
/* Writes n characters drawn uniformly (rejection sampling) from [0-9A-Za-z] plus a NUL. 0 or -errno. */
int op_random_alnum(char *out, size_t n);
/* Writes a random (version 4) UUID in canonical lower-case form plus NUL into out[37]. 0 or -errno. */
int op_uuid_v4(char out[OP_UUID_STR_LEN + 1]);
/* True if s[0..len) is a canonical 8-4-4-4-12 hex UUID (either case). */
bool op_uuid_valid(const char *s, size_t len);
/* True if s is the nil UUID 00000000-0000-0000-0000-000000000000. */
bool op_uuid_is_nil(const char *s);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void op_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes exactly 2*outlen hex characters; returns 0 or -EINVAL. */
int op_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen);
/* Constant-time equality of two equal-length buffers. */
bool op_ct_equal(const void *a, const void *b, size_t len);
/* Overwrites len bytes with zeros in a way the compiler cannot drop. */
void op_secure_zero(void *p, size_t len);

#endif
