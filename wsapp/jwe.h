/*
 * wsapp/jwe.h — compact JWE (RFC 7516) as Coder's primary writes it for the app-connect API key:
 * protected header {"alg":"A256GCMKW","enc":"A256GCM","iv":…,"tag":…,"zip":"DEF","kid":"<sequence>"},
 * a random 32-byte content key wrapped with AES-256-GCM under the 32-byte workspace_apps_api_key secret
 * (RFC 7518 §4.7), the DEFLATE-compressed (raw, RFC 1951) plaintext sealed with AES-256-GCM (A256GCM, the
 * protected header as AAD). Ciphers come from tls/aead.h (wolfSSL); zlib does DEFLATE. Decryption caps every
 * size (token, header, inflated plaintext) and allocates nothing beyond the caller's buffers.
 * Fuzzed by tests/fuzz/fuzz_jwe.c.
 */
#ifndef OP_WSAPP_JWE_H
#define OP_WSAPP_JWE_H

#include <stddef.h>
#include <stdint.h>

#define OP_JWE_MAX_TOKEN     4096
#define OP_JWE_MAX_PLAINTEXT 2048

/* Encrypts plaintext under key (32 bytes) with key id kid. Writes the token plus a NUL; returns its length,
 * or -ENOSPC / -EINVAL (kid < 0, over OP_JWE_MAX_PLAINTEXT, a NUL byte) / -EIO (cipher or random failure). */
int op_jwe_encrypt(const char *plaintext, size_t len, int64_t kid, const uint8_t key[32], char *out,
                   size_t outlen);

/* Reads the kid of a compact JWE without decrypting (to pick the key). 0, -EINVAL, -ENOKEY. */
int op_jwe_kid(const char *tok, size_t len, int64_t *kid);

/* Decrypts with key (32 bytes): header alg/enc/zip must be exactly the values above (zip may be absent),
 * no "crit". Writes the plaintext plus a NUL; returns its length, or -EINVAL (malformed, also a plaintext
 * with a NUL byte), -ENOTSUP (other algorithms), -EACCES (authentication failed), -EMSGSIZE (over the caps,
 * or a plaintext longer than outlen - 1), -EIO. */
int op_jwe_decrypt(const char *tok, size_t len, const uint8_t key[32], char *out, size_t outlen);

#endif
