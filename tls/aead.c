/*
 * tls/aead.c — AES-256-GCM through wolfCrypt and random bytes from getrandom(2) (see aead.h). The Aes
 * context lives on the stack and is wiped after every call, so nothing here allocates or keeps state.
 */
#include "tls/aead.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

/* scripts/deps.sh configures wolfSSL with --enable-aesgcm (the TLS suites need it too). */
#if !defined(HAVE_AESGCM) || defined(NO_AES) || !defined(WOLFSSL_AES_256)
#error "wolfSSL must be built with AES-256-GCM (--enable-aesgcm)"
#endif

enum { OP_GCM_IV = 12, OP_GCM_TAG = 16 };

/* Sets up aes with key for GCM. 0 or -EIO (aes is then already freed). */
static int gcm_init(Aes *aes, const uint8_t key[32])
{
    if (wc_AesInit(aes, NULL, INVALID_DEVID) != 0) return -EIO;
    if (wc_AesGcmSetKey(aes, key, 32) != 0) {
        wc_AesFree(aes);
        explicit_bzero(aes, sizeof(*aes));
        return -EIO;
    }
    return 0;
}

static void gcm_done(Aes *aes)
{
    wc_AesFree(aes);
    explicit_bzero(aes, sizeof(*aes));
}

int op_aes256gcm_seal(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aadlen,
                      const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[16])
{
    if (n > UINT32_MAX || aadlen > UINT32_MAX) return -EIO;
    Aes aes;
    if (gcm_init(&aes, key) != 0) return -EIO;
    int rc = wc_AesGcmEncrypt(&aes, n ? out : NULL, n ? in : NULL, (word32)n, iv, OP_GCM_IV, tag, OP_GCM_TAG,
                              aadlen ? aad : NULL, (word32)aadlen);
    gcm_done(&aes);
    return rc == 0 ? 0 : -EIO;
}

int op_aes256gcm_open(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aadlen,
                      const uint8_t *in, size_t n, const uint8_t tag[16], uint8_t *out)
{
    if (n > UINT32_MAX || aadlen > UINT32_MAX) return -EIO;
    Aes aes;
    if (gcm_init(&aes, key) != 0) return -EIO;
    int rc = wc_AesGcmDecrypt(&aes, n ? out : NULL, n ? in : NULL, (word32)n, iv, OP_GCM_IV, tag, OP_GCM_TAG,
                              aadlen ? aad : NULL, (word32)aadlen);
    gcm_done(&aes);
    if (rc == 0) return 0;
    /* Nothing of an unauthenticated plaintext may reach the caller, whatever wolfCrypt left in out. */
    if (n) explicit_bzero(out, n);
    return rc == AES_GCM_AUTH_E ? -EACCES : -EIO;
}

int op_random_bytes(void *out, size_t n)
{
    uint8_t *p = out;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}
