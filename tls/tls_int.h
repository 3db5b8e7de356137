/*
 * tls/tls_int.h — what the files of tls/ share and nothing outside tls/ may include: the wolfSSL headers
 * (tls/ is the only module that includes them), the build checks that hold the static wolfSSL to the
 * security posture promised in tls.h, and the server context's layout (built by ctx.c, read by
 * session.c when it creates a wolfSSL session).
 */
#ifndef OP_TLS_INT_H
#define OP_TLS_INT_H

#include "tls/sni.h"
#include "tls/tls.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfio.h>

/* The static wolfSSL must match the security posture promised in tls.h. */
#ifndef NO_OLD_TLS
#error "wolfSSL must be built with --disable-oldtls (TLS 1.2 minimum)"
#endif
#if defined(HAVE_NULL_CIPHER) || defined(HAVE_ANON) || defined(BUILD_TLS_RSA_WITH_NULL_SHA256)
#error "wolfSSL must be built without NULL and anonymous cipher suites"
#endif
#ifdef HAVE_SECURE_RENEGOTIATION
#error "wolfSSL must be built without renegotiation support"
#endif
#ifdef WOLFSSL_EARLY_DATA
#error "wolfSSL must be built without 0-RTT early data"
#endif
#if !defined(HAVE_SNI) || !defined(HAVE_ALPN) || !defined(HAVE_SESSION_TICKET) || !defined(WOLFSSL_TLS13)
#error "wolfSSL must be built with SNI, ALPN, session tickets and TLS 1.3"
#endif
#if !defined(HAVE_CHACHA) || !defined(HAVE_POLY1305) || !defined(OPENSSL_EXTRA)
#error "wolfSSL must be built with ChaCha20-Poly1305 and the OpenSSL compatibility layer"
#endif
#ifndef WOLFSSL_USER_IO
#error "wolfSSL must be built with WOLFSSL_USER_IO (no socket I/O inside wolfSSL)"
#endif

/* A ClientHello may list up to 512 cipher suites (wolfSSL's default is 150 and refuses longer lists,
 * which scanners and some real clients send); scripts/deps.sh builds wolfSSL with this. */
#if !defined(WOLFSSL_MAX_SUITE_SZ) || WOLFSSL_MAX_SUITE_SZ < 1024
#error "wolfSSL must be built with -DWOLFSSL_MAX_SUITE_SZ=1024 (scripts/deps.sh)"
#endif

/* The key exchange groups, TLS 1.2 and 1.3 alike, in preference order (wolfSSL names). */
#define OP_TLS_GROUPS "X25519:P-256:P-384"

struct op_tls_ticket_key {
    uint8_t name[WOLFSSL_TICKET_NAME_SZ];
    uint8_t key[CHACHA20_POLY1305_AEAD_KEYSIZE];
    uint8_t nonce_prefix[4];
    uint64_t counter; /* atomic; with nonce_prefix forms the 96-bit nonce */
};

/* One configured certificate: its wolfSSL context and the names SNI matches against it. */
struct op_tls_certctx {
    WOLFSSL_CTX *wctx;
    char **names; /* lower-case DNS SANs (or CN), may start with "*." */
    size_t nnames, cap;
};

struct op_tls_ctx {
    int refs; /* atomic */
    struct op_tls_certctx *certs;
    size_t ncerts;
    char *alpn; /* comma list, NULL when ALPN is off */
    unsigned alpn_len;
    struct op_tls_ticket_key ticket;
    /* decrypt-only key inherited from the previous ctx (op_tls_ctx_inherit_tickets) */
    bool has_prev;
    uint8_t prev_name[WOLFSSL_TICKET_NAME_SZ];
    uint8_t prev_key[CHACHA20_POLY1305_AEAD_KEYSIZE];
};

/* Index into ctx->certs of the certificate for server name sni (NUL-terminated, as sent): an exact SAN
 * match first, then a one-label wildcard, else 0 (the default certificate, never a refusal). */
size_t op_tls_ctx_pick(const struct op_tls_ctx *ctx, const char *sni);

#endif
