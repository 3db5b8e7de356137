/*
 * proto/jws.h — compact JWS with HS512 (RFC 7515/7518), the token format the primary signs with its
 * `workspace_apps_token` keys (64-byte secrets, the key id `kid` is the key's decimal sequence) and that a
 * workspace proxy verifies locally with the keys it fetched from /me/crypto-keys. Used for signed app
 * tokens, agent credentials and connect tokens. Also base64url (no padding) and a small allocation-free
 * reader for the flat JSON objects these tokens carry. Nothing here allocates, so verification may run
 * anywhere.
 */
#ifndef OP_PROTO_JWS_H
#define OP_PROTO_JWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/sha512.h"

#define OP_JWS_MAX_HEADER  512  /* decoded header bytes */
#define OP_JWS_MAX_PAYLOAD 2048 /* decoded payload bytes */
#define OP_JWS_MAX_TOKEN   4096 /* compact serialisation */

/* Length of the unpadded base64url encoding of n bytes. */
size_t op_b64url_len(size_t n);
/* Encodes n bytes as unpadded base64url plus a NUL. Returns the length, or -ENOSPC. */
int op_b64url_encode(const void *in, size_t n, char *out, size_t outlen);
/* Decodes unpadded base64url (padding, other alphabets and non-zero trailing bits are refused). Returns
 * the decoded length, -EINVAL or -ENOSPC. */
int op_b64url_decode(const char *in, size_t n, uint8_t *out, size_t outlen);

/* Signs payload (a JSON object's text) as a compact JWS with the header {"alg":"HS512","kid":"<kid>"}.
 * Writes the token plus a NUL; returns its length, or -ENOSPC / -EINVAL (kid < 0, payload too long). */
int op_jws_sign(const char *payload, size_t len, int64_t kid, const uint8_t *key, size_t keylen, char *out,
                size_t outlen);

struct op_jws {
    int64_t kid;
    size_t signing_len; /* bytes of "<header>.<payload>" at the start of the token */
    uint8_t sig[OP_SHA512_LEN];
    char payload[OP_JWS_MAX_PAYLOAD + 1]; /* decoded, NUL-terminated */
    size_t payload_len;
};

/* Parses a compact JWS without checking its MAC: three base64url parts; the header must be a JSON object
 * with "alg":"HS512", a "kid" holding a non-negative decimal (as a string, the way Coder writes it,
 * or a number) and no "crit"; the payload must be a JSON object; the signature 64 bytes.
 * Returns 0, -EINVAL (malformed), -ENOTSUP (other alg, crit), -ENOKEY (no usable kid), -EMSGSIZE. */
int op_jws_parse(const char *tok, size_t len, struct op_jws *out);
/* True if the token's MAC matches under key (constant-time comparison). tok is the text that was parsed. */
bool op_jws_mac_ok(const struct op_jws *j, const char *tok, const uint8_t *key, size_t keylen);

/* Top-level members of a JSON object text (nested values are skipped, never read). The string form
 * unescapes \" \\ \/ \b \f \n \r \t and \u00XX below 0x80; other escapes give -EINVAL.
 * Return 0, -ENOENT (absent), -EINVAL (wrong type / not an integer / malformed), -ENOSPC. Nested objects
 * are read by applying them to the span op_json_flat_obj gives. */
int op_json_flat_str(const char *json, size_t len, const char *name, char *out, size_t outlen);
int op_json_flat_int(const char *json, size_t len, const char *name, int64_t *out);
/* The span of a member whose value is an object (its text from '{' to '}'), to read with the functions
 * above. 0, -ENOENT, -EINVAL (not an object / malformed). */
int op_json_flat_obj(const char *json, size_t len, const char *name, const char **obj, size_t *objlen);
/* Whether the member, an array of strings or a single string (the two forms of a JWT "aud"), holds want.
 * 0 with *found set, -ENOENT, -EINVAL (another type, a non-string element, malformed). */
int op_json_flat_has_str(const char *json, size_t len, const char *name, const char *want, bool *found);
/* True if json[0..len) is exactly one well-formed JSON object (whitespace around it allowed). */
bool op_json_flat_valid(const char *json, size_t len);

#endif
