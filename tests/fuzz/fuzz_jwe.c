/*
 * tests/fuzz/fuzz_jwe.c — libFuzzer target for wsapp/jwe.c. The input is a compact JWE, read by
 * op_jwe_kid and decrypted by op_jwe_decrypt with the fixed key 00 01 … 1f (the committed corpus holds
 * tokens Python's `cryptography` wrote under that key — good ones, one with a bad DEFLATE stream, a
 * decompression bomb, other algorithms — so the paths past authentication are replayed too). Checked on
 * every input:
 *   1. both return only documented results, and a decrypted plaintext is NUL-terminated, as long as the
 *      result says, within OP_JWE_MAX_PLAINTEXT and without NUL bytes;
 *   2. a token that decrypts has a kid op_jwe_kid reads;
 *   3. the output size is honoured: exactly the plaintext's size plus one works, one byte less is
 *      -EMSGSIZE;
 *   4. the input taken as a plaintext (when it can be one) survives op_jwe_encrypt and op_jwe_decrypt.
 * Each call reads an exact-size heap copy, so ASan catches any read past the end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wsapp/jwe.h"

#define ASSERT(c)                                                                                            \
    do {                                                                                                     \
        if (!(c)) __builtin_trap();                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

static int decrypt(const uint8_t *p, size_t n, char *out, size_t outlen)
{
    char *cp = malloc(n ? n : 1);
    ASSERT(cp != NULL);
    memcpy(cp, p, n);
    int r = op_jwe_decrypt(cp, n, key, out, outlen);
    free(cp);
    return r;
}

static int kid_of(const uint8_t *p, size_t n, int64_t *kid)
{
    char *cp = malloc(n ? n : 1);
    ASSERT(cp != NULL);
    memcpy(cp, p, n);
    int r = op_jwe_kid(cp, n, kid);
    free(cp);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[OP_JWE_MAX_PLAINTEXT + 1], out2[OP_JWE_MAX_PLAINTEXT + 1];
    static char tok[OP_JWE_MAX_TOKEN];

    /* 1. */
    int64_t kid = -1;
    int kr = kid_of(data, size, &kid);
    ASSERT(kr == 0 || kr == -EINVAL || kr == -ENOKEY);
    if (kr == 0) ASSERT(kid >= 0);
    int r = decrypt(data, size, out, sizeof(out));
    ASSERT(r >= 0 || r == -EINVAL || r == -ENOTSUP || r == -EACCES || r == -EMSGSIZE);
    if (r >= 0) {
        ASSERT(r <= OP_JWE_MAX_PLAINTEXT);
        ASSERT(out[r] == '\0' && strlen(out) == (size_t)r);
        /* 2. */
        ASSERT(kr == 0);
        /* 3. */
        ASSERT(decrypt(data, size, out2, (size_t)r + 1) == r && memcmp(out, out2, (size_t)r + 1) == 0);
        ASSERT(decrypt(data, size, out2, (size_t)r) == -EMSGSIZE);
    }

    /* 4. */
    if (size <= OP_JWE_MAX_PLAINTEXT && !memchr(data, '\0', size)) {
        char *pt = malloc(size ? size : 1);
        ASSERT(pt != NULL);
        memcpy(pt, data, size);
        int tl = op_jwe_encrypt(pt, size, (int64_t)size, key, tok, sizeof(tok));
        free(pt);
        ASSERT(tl > 0 && (size_t)tl == strlen(tok));
        ASSERT(op_jwe_kid(tok, (size_t)tl, &kid) == 0 && kid == (int64_t)size);
        ASSERT(op_jwe_decrypt(tok, (size_t)tl, key, out2, sizeof(out2)) == (int)size);
        ASSERT(memcmp(out2, data, size) == 0);
    }
    return 0;
}
