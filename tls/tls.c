/*
 * tls/tls.c — TLS server sessions over wolfSSL custom I/O (see tls.h for the contract).
 *
 * Design:
 *   - one WOLFSSL_CTX per configured certificate, all configured identically. The WOLFSSL of a conn is
 *     created only when the first ClientHello record is complete: we read its SNI ourselves
 *     (op_tls_sni_from_hello) and create the WOLFSSL on the matching CTX. (wolfSSL 5.7.2 as built here
 *     has no wolfSSL_set_SSL_CTX/wolfSSL_get_servername, and switching CTX mid-handshake is fragile.)
 *     Usually the ClientHello arrives in one recv and is fed straight from the borrowed cursor; only a
 *     fragmented one is copied into a temporary per-conn buffer (at most one record, freed at once);
 *   - receive: a borrowed cursor {rx, rx_len} set by op_tls_conn_input(); the recv callback copies from
 *     it and says WANT_READ once it is empty, so every byte is inside wolfSSL when input() returns;
 *   - send: the send callback hands whole records to the conn's out() and never blocks;
 *   - tickets: our own ChaCha20-Poly1305 ticket callback with one random key per op_tls_ctx, shared by
 *     all its CTXs (wolfSSL's default callback keeps a separate key per CTX, and could not hand the key
 *     on to the next ctx on reload, see op_tls_ctx_inherit_tickets). Nonces are a per-key random prefix
 *     plus an atomic counter, so no RNG and no lock sits on the handshake path. The server-side session
 *     cache is off (tickets only: it is a process-wide locked table in wolfSSL).
 */
#include "tls/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

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

#define OP_TLS_RECORD_MAX 16384

/* ------------------------------------------------------------------------------------------------ */
/* Types                                                                                             */

struct op_tls_ticket_key {
    uint8_t name[WOLFSSL_TICKET_NAME_SZ];
    uint8_t key[CHACHA20_POLY1305_AEAD_KEYSIZE];
    uint8_t nonce_prefix[4];
    uint64_t counter; /* atomic; with nonce_prefix forms the 96-bit nonce */
};

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

enum op_tls_conn_state {
    OP_TLS_ST_HELLO = 0, /* waiting for the first ClientHello record; no WOLFSSL yet */
    OP_TLS_ST_HANDSHAKE,
    OP_TLS_ST_OPEN,
    OP_TLS_ST_PEER_CLOSED,
    OP_TLS_ST_READ_STOPPED, /* plain() returned -1: no more input, but writes and close_notify still work */
    OP_TLS_ST_FAILED,
};

struct op_tls_conn {
    WOLFSSL *ssl; /* NULL in OP_TLS_ST_HELLO */
    struct op_tls_ctx *ctx;
    op_tls_out_fn out;
    void *out_arg;
    const uint8_t *rx; /* borrowed cursor, valid only during op_tls_conn_input() */
    size_t rx_len;
    enum op_tls_conn_state state;
    bool out_failed;
    bool shutdown_sent;
    bool established; /* the handshake completed (stays true after close or failure) */
    uint8_t *hello;   /* fragmented first record being collected (OP_TLS_ST_HELLO only), else NULL */
    size_t hello_len;
    char *sni;              /* host name from the ClientHello, NULL if none */
    const uint8_t *pending; /* input not yet fed (after the collected hello), during input() only */
    size_t pending_len;
    char err[96];
};

static int conn_drive(struct op_tls_conn *c, op_tls_plain_fn plain, void *arg);

static _Thread_local uint8_t tls_scratch[OP_TLS_RECORD_MAX];

/* ------------------------------------------------------------------------------------------------ */
/* Global init                                                                                       */

static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool g_inited;

int op_tls_global_init(void)
{
    int rc = 0;
    pthread_mutex_lock(&g_init_lock);
    if (!g_inited) {
        if (wolfSSL_Init() == WOLFSSL_SUCCESS)
            g_inited = true;
        else
            rc = -EIO;
    }
    pthread_mutex_unlock(&g_init_lock);
    return rc;
}

void op_tls_global_cleanup(void)
{
    pthread_mutex_lock(&g_init_lock);
    if (g_inited) {
        wolfSSL_Cleanup();
        g_inited = false;
    }
    pthread_mutex_unlock(&g_init_lock);
}

/* ------------------------------------------------------------------------------------------------ */
/* Custom I/O                                                                                        */

static int tls_recv_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct op_tls_conn *c = arg;
    if (c->rx_len == 0 || sz <= 0) return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = OP_MIN((size_t)sz, c->rx_len);
    memcpy(buf, c->rx, n);
    c->rx += n;
    c->rx_len -= n;
    return (int)n;
}

static int tls_send_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct op_tls_conn *c = arg;
    if (sz <= 0) return 0;
    if (c->out_failed || c->out(c->out_arg, (const uint8_t *)buf, (size_t)sz) != 0) {
        c->out_failed = true;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    return sz;
}

/* ------------------------------------------------------------------------------------------------ */
/* Session tickets                                                                                   */

static int tls_ticket_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                         unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
                         int enc, unsigned char *ticket, int in_len, int *out_len, void *user)
{
    (void)ssl;
    struct op_tls_ctx *ctx = user;
    uint8_t aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ];
    if (ctx == NULL || in_len < 0) return WOLFSSL_TICKET_RET_FATAL;
    struct op_tls_ticket_key *k = &ctx->ticket;
    if (enc) {
        uint64_t n = __atomic_fetch_add(&k->counter, 1, __ATOMIC_RELAXED);
        memcpy(key_name, k->name, WOLFSSL_TICKET_NAME_SZ);
        memset(iv, 0, WOLFSSL_TICKET_IV_SZ);
        memcpy(iv, k->nonce_prefix, 4);
        memcpy(iv + 4, &n, 8);
        memcpy(aad, key_name, WOLFSSL_TICKET_NAME_SZ);
        memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
        if (wc_ChaCha20Poly1305_Encrypt(k->key, iv, aad, sizeof(aad), ticket, (word32)in_len, ticket, mac) !=
            0)
            return WOLFSSL_TICKET_RET_FATAL;
        *out_len = in_len;
        return WOLFSSL_TICKET_RET_OK;
    }
    /* Decrypt with the current key, or the inherited one. A ticket under any other key is simply not
     * resumed: full handshake. (WOLFSSL_TICKET_RET_CREATE, "resume and re-issue", is not used: in
     * wolfSSL 5.7.2 it fails TLS 1.2 handshakes and does not resume TLS 1.3 ones. TLS 1.3 clients get
     * a fresh ticket under the current key after every handshake anyway.) */
    const uint8_t *key;
    if (memcmp(key_name, k->name, WOLFSSL_TICKET_NAME_SZ) == 0) {
        key = k->key;
    } else if (ctx->has_prev && memcmp(key_name, ctx->prev_name, WOLFSSL_TICKET_NAME_SZ) == 0) {
        key = ctx->prev_key;
    } else {
        return WOLFSSL_TICKET_RET_REJECT;
    }
    memcpy(aad, key_name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
    if (wc_ChaCha20Poly1305_Decrypt(key, iv, aad, sizeof(aad), ticket, (word32)in_len, mac, ticket) != 0)
        return WOLFSSL_TICKET_RET_REJECT;
    *out_len = in_len;
    return WOLFSSL_TICKET_RET_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* SNI                                                                                               */

static bool name_eq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* pattern "*.example.com" matches exactly one extra label in front of ".example.com". */
static bool name_wild_match(const char *pattern, const char *sni, size_t len)
{
    if (pattern[0] != '*' || pattern[1] != '.') return false;
    const char *dot = memchr(sni, '.', len);
    if (dot == NULL || dot == sni) return false;
    return name_eq(dot, len - (size_t)(dot - sni), pattern + 1);
}

static int pick_cert(const struct op_tls_ctx *ctx, const char *sni)
{
    size_t len = strlen(sni);
    for (size_t i = 0; i < ctx->ncerts; i++)
        for (size_t j = 0; j < ctx->certs[i].nnames; j++)
            if (ctx->certs[i].names[j][0] != '*' && name_eq(sni, len, ctx->certs[i].names[j])) return (int)i;
    for (size_t i = 0; i < ctx->ncerts; i++)
        for (size_t j = 0; j < ctx->certs[i].nnames; j++)
            if (name_wild_match(ctx->certs[i].names[j], sni, len)) return (int)i;
    return 0; /* unknown names get the default certificate (like nginx's default_server), never abort */
}

static inline size_t be16(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

int op_tls_sni_from_hello(const uint8_t *p, size_t n, char *out, size_t outlen)
{
    if (n < 5) return -EAGAIN;
    if (p[0] != 0x16 || p[1] != 0x03) return -EINVAL;
    size_t rl = be16(p + 3);
    if (rl < 4 || rl > OP_TLS_RECORD_MAX) return -EINVAL;
    if (n < 5 + rl) return -EAGAIN;
    const uint8_t *q = p + 5, *end = p + 5 + rl;
    if (q[0] != 0x01) /* client_hello */
        return -EINVAL;
    size_t ml = (size_t)q[1] << 16 | (size_t)q[2] << 8 | q[3];
    q += 4;
    if (ml > (size_t)(end - q))
        return -EMSGSIZE; /* the ClientHello spans several records: we do not reassemble */
    end = q + ml;
#define NEED(k)                                                                                              \
    do {                                                                                                     \
        if ((size_t)(end - q) < (size_t)(k)) return -EINVAL;                                                 \
    } while (0)
    NEED(2 + 32 + 1); /* version, random, session id length */
    q += 2 + 32;
    size_t l = q[0];
    q += 1;
    NEED(l + 2);
    q += l;
    l = be16(q); /* cipher suites */
    q += 2;
    NEED(l + 1);
    q += l;
    l = q[0]; /* compression methods */
    q += 1;
    NEED(l);
    q += l;
    if (q == end) return 0; /* no extensions */
    NEED(2);
    l = be16(q);
    q += 2;
    NEED(l);
    end = q + l;
    while (end - q >= 4) {
        size_t type = be16(q), el = be16(q + 2);
        q += 4;
        NEED(el);
        if (type != 0) { /* server_name */
            q += el;
            continue;
        }
        end = q + el;
        NEED(2);
        size_t ll = be16(q);
        q += 2;
        NEED(ll);
        end = q + ll;
        while (end - q >= 3) {
            size_t nt = q[0], nl = be16(q + 1);
            q += 3;
            NEED(nl);
            if (nt == 0) { /* host_name */
                if (nl == 0 || nl > 255 || nl >= outlen) return -EINVAL;
                for (size_t i = 0; i < nl; i++)
                    if (q[i] <= 0x20 || q[i] >= 0x7f) return -EINVAL;
                memcpy(out, q, nl);
                out[nl] = '\0';
                return 1;
            }
            q += nl;
        }
        return 0;
    }
#undef NEED
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Context                                                                                           */

static void set_err(char *err, size_t errlen, const char *fmt, ...) OP_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void ctx_destroy(struct op_tls_ctx *ctx)
{
    if (ctx == NULL) return;
    for (size_t i = 0; i < ctx->ncerts; i++) {
        struct op_tls_certctx *cc = &ctx->certs[i];
        if (cc->wctx) wolfSSL_CTX_free(cc->wctx);
        for (size_t j = 0; j < cc->nnames; j++)
            free(cc->names[j]);
        free(cc->names);
    }
    free(ctx->certs);
    free(ctx->alpn);
    explicit_bzero(&ctx->ticket, sizeof(ctx->ticket));
    explicit_bzero(ctx->prev_key, sizeof(ctx->prev_key));
    free(ctx);
}

static bool is_dns_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '-' || ch == '.' || ch == '_' || (ch == '*' && i == 0 && s[1] == '.');
        if (!ok) return false;
    }
    return true;
}

static int add_name(struct op_tls_certctx *cc, const char *name)
{
    if (!is_dns_name(name)) return 0;
    if (cc->nnames == cc->cap) {
        size_t cap = cc->cap ? cc->cap * 2 : 4;
        char **names = realloc(cc->names, cap * sizeof(char *));
        if (names == NULL) return -ENOMEM;
        cc->names = names;
        cc->cap = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL) return -ENOMEM;
    for (char *p = copy; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    cc->names[cc->nnames++] = copy;
    return 0;
}

/* Collects the leaf's DNS SANs, or its CN when it has none. */
static int load_names(struct op_tls_certctx *cc, const char *file, char *err, size_t errlen)
{
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(file, WOLFSSL_FILETYPE_PEM);
    if (x == NULL) {
        set_err(err, errlen, "cert file %s: cannot parse the first PEM certificate", file);
        return -EINVAL;
    }
    int rc = 0;
    char *alt;
    while (rc == 0 && (alt = wolfSSL_X509_get_next_altname(x)) != NULL)
        rc = add_name(cc, alt);
    if (rc == 0 && cc->nnames == 0) {
        char cn[256];
        WOLFSSL_X509_NAME *subj = wolfSSL_X509_get_subject_name(x);
        if (subj && wolfSSL_X509_NAME_get_text_by_NID(subj, NID_commonName, cn, (int)sizeof(cn)) > 0)
            rc = add_name(cc, cn);
    }
    wolfSSL_X509_free(x);
    if (rc != 0) set_err(err, errlen, "out of memory");
    return rc;
}

static int check_readable(const char *what, const char *file, char *err, size_t errlen)
{
    if (file == NULL || file[0] == '\0') {
        set_err(err, errlen, "%s file not set", what);
        return -EINVAL;
    }
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        int e = errno;
        set_err(err, errlen, "%s file %s: %s", what, file, strerror(e));
        return -e;
    }
    fclose(f);
    return 0;
}

static int setup_wctx(struct op_tls_ctx *ctx, struct op_tls_certctx *cc, const struct op_tls_cert *cert,
                      const struct op_tls_config *cfg, char *err, size_t errlen)
{
    int rc;
    if ((rc = check_readable("cert", cert->cert_file, err, errlen)) != 0 ||
        (rc = check_readable("key", cert->key_file, err, errlen)) != 0)
        return rc;

    WOLFSSL_CTX *w = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (w == NULL) {
        set_err(err, errlen, "out of memory (wolfSSL_CTX_new)");
        return -ENOMEM;
    }
    cc->wctx = w;

    int minv = cfg->min_version == 13 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2;
    if (wolfSSL_CTX_SetMinVersion(w, minv) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "cannot set the minimum TLS version");
        return -EINVAL;
    }
    const char *ciphers = cfg->ciphers ? cfg->ciphers : OP_TLS_DEFAULT_CIPHERS;
    if (wolfSSL_CTX_set_cipher_list(w, ciphers) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "invalid cipher list \"%s\"", ciphers);
        return -EINVAL;
    }
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};
    if (wolfSSL_CTX_set_groups(w, groups, (int)OP_ARRAY_LEN(groups)) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "cannot set the key exchange groups");
        return -EINVAL;
    }
    if (wolfSSL_CTX_use_certificate_chain_file(w, cert->cert_file) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "cert file %s: no valid PEM certificate (chain)", cert->cert_file);
        return -EINVAL;
    }
    if (wolfSSL_CTX_use_PrivateKey_file(w, cert->key_file, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "key file %s: no valid PEM private key", cert->key_file);
        return -EINVAL;
    }
    if (wolfSSL_CTX_check_private_key(w) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "key file %s does not match the certificate in %s", cert->key_file,
                cert->cert_file);
        return -EINVAL;
    }
    if ((rc = load_names(cc, cert->cert_file, err, errlen)) != 0) return rc;

    wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_NONE, NULL);
    wolfSSL_CTX_set_group_messages(w); /* one out() call per handshake flight */
    wolfSSL_CTX_SetIORecv(w, tls_recv_cb);
    wolfSSL_CTX_SetIOSend(w, tls_send_cb);
    wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_OFF); /* tickets only, no global lock */
    if (cfg->no_session_tickets) {
        wolfSSL_CTX_NoTicketTLSv12(w);
        wolfSSL_CTX_no_ticket_TLSv13(w);
    } else {
        if (wolfSSL_CTX_set_TicketEncCb(w, tls_ticket_cb) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_set_TicketEncCtx(w, ctx) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_set_TicketHint(w, OP_TLS_TICKET_LIFETIME_S) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_set_timeout(w, OP_TLS_TICKET_LIFETIME_S) != WOLFSSL_SUCCESS) {
            set_err(err, errlen, "cannot configure session tickets");
            return -EINVAL;
        }
    }
    return 0;
}

static int check_alpn(const char *list)
{
    /* comma list of 1..255-byte names, no empty entries */
    size_t n = 0;
    for (const char *p = list;; p++) {
        if (*p == ',' || *p == '\0') {
            if (n == 0 || n > 255) return -EINVAL;
            if (*p == '\0') return 0;
            n = 0;
        } else if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
            return -EINVAL;
        } else {
            n++;
        }
    }
}

int op_tls_ctx_new(const struct op_tls_config *cfg, struct op_tls_ctx **out, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    if (out == NULL) {
        set_err(err, errlen, "no output pointer");
        return -EINVAL;
    }
    *out = NULL;
    if (cfg == NULL || cfg->certs == NULL || cfg->ncerts == 0) {
        set_err(err, errlen, "at least one certificate is required");
        return -EINVAL;
    }
    if (cfg->min_version != 0 && cfg->min_version != 12 && cfg->min_version != 13) {
        set_err(err, errlen, "min_version must be 12 or 13 (got %d)", cfg->min_version);
        return -EINVAL;
    }
    const char *alpn = cfg->alpn ? cfg->alpn : "http/1.1";
    if (alpn[0] != '\0' && (strlen(alpn) > 1024 || check_alpn(alpn) != 0)) {
        set_err(err, errlen, "invalid ALPN list \"%s\"", alpn);
        return -EINVAL;
    }
    int rc = op_tls_global_init();
    if (rc != 0) {
        set_err(err, errlen, "wolfSSL_Init failed");
        return rc;
    }

    struct op_tls_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL || (ctx->certs = calloc(cfg->ncerts, sizeof(*ctx->certs))) == NULL) {
        free(ctx);
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ctx->refs = 1;
    ctx->ncerts = cfg->ncerts;
    if (alpn[0] != '\0') {
        ctx->alpn = strdup(alpn);
        ctx->alpn_len = (unsigned)strlen(alpn);
        if (ctx->alpn == NULL) {
            ctx_destroy(ctx);
            set_err(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    uint8_t rnd[sizeof(ctx->ticket.name) + sizeof(ctx->ticket.key) + sizeof(ctx->ticket.nonce_prefix)];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        ctx_destroy(ctx);
        set_err(err, errlen, "getrandom failed for the ticket key");
        return -EIO;
    }
    memcpy(ctx->ticket.name, rnd, sizeof(ctx->ticket.name));
    memcpy(ctx->ticket.key, rnd + sizeof(ctx->ticket.name), sizeof(ctx->ticket.key));
    memcpy(ctx->ticket.nonce_prefix, rnd + sizeof(ctx->ticket.name) + sizeof(ctx->ticket.key),
           sizeof(ctx->ticket.nonce_prefix));
    explicit_bzero(rnd, sizeof(rnd));

    for (size_t i = 0; i < cfg->ncerts; i++) {
        rc = setup_wctx(ctx, &ctx->certs[i], &cfg->certs[i], cfg, err, errlen);
        if (rc != 0) {
            ctx_destroy(ctx);
            wolfSSL_ERR_clear_error();
            return rc;
        }
    }
    wolfSSL_ERR_clear_error();
    *out = ctx;
    return 0;
}

void op_tls_ctx_inherit_tickets(struct op_tls_ctx *ctx, const struct op_tls_ctx *prev)
{
    if (ctx == NULL || prev == NULL || ctx == prev) return;
    memcpy(ctx->prev_name, prev->ticket.name, sizeof(ctx->prev_name));
    memcpy(ctx->prev_key, prev->ticket.key, sizeof(ctx->prev_key));
    ctx->has_prev = true;
}

void op_tls_ctx_ref(struct op_tls_ctx *ctx)
{
    if (ctx) __atomic_fetch_add(&ctx->refs, 1, __ATOMIC_RELAXED);
}

void op_tls_ctx_unref(struct op_tls_ctx *ctx)
{
    if (ctx && __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) == 0) ctx_destroy(ctx);
}

/* ------------------------------------------------------------------------------------------------ */
/* Connections                                                                                       */

struct op_tls_conn *op_tls_conn_new(struct op_tls_ctx *ctx, op_tls_out_fn out, void *out_arg)
{
    if (ctx == NULL || out == NULL) return NULL;
    struct op_tls_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    op_tls_ctx_ref(ctx);
    c->ctx = ctx;
    c->out = out;
    c->out_arg = out_arg;
    c->state = OP_TLS_ST_HELLO;
    return c;
}

void op_tls_conn_free(struct op_tls_conn *c)
{
    if (c == NULL) return;
    if (c->ssl) wolfSSL_free(c->ssl);
    free(c->hello);
    free(c->sni);
    op_tls_ctx_unref(c->ctx);
    free(c);
}

static int conn_fail(struct op_tls_conn *c, const char *what, int code)
{
    c->state = OP_TLS_ST_FAILED;
    if (c->out_failed)
        snprintf(c->err, sizeof(c->err), "%s: output queue refused the data", what);
    else if (code != 0)
        snprintf(c->err, sizeof(c->err), "%s: %s (%d)", what,
                 wolfSSL_ERR_reason_error_string((unsigned long)code), code);
    else
        snprintf(c->err, sizeof(c->err), "%s", what);
    wolfSSL_ERR_clear_error();
    c->rx = NULL;
    c->rx_len = 0;
    free(c->hello);
    c->hello = NULL;
    c->hello_len = 0;
    return OP_TLS_ERROR;
}

/* Creates the WOLFSSL on the CTX of certificate `pick`. */
static int conn_create_ssl(struct op_tls_conn *c, int pick)
{
    struct op_tls_ctx *ctx = c->ctx;
    c->ssl = wolfSSL_new(ctx->certs[pick].wctx);
    if (c->ssl == NULL) return -ENOMEM;
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    if (ctx->alpn && wolfSSL_UseALPN(c->ssl, ctx->alpn, ctx->alpn_len, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) !=
                         WOLFSSL_SUCCESS)
        return -ENOMEM;
    return 0;
}

/* OP_TLS_ST_HELLO: collect the first record, read its SNI, create the WOLFSSL on the right CTX and point
 * the cursor at the bytes to feed it. Returns OP_TLS_WANT (need more; everything was copied),
 * OP_TLS_OPEN (ssl created, go on with the handshake), or OP_TLS_ERROR. */
static int conn_hello(struct op_tls_conn *c, const uint8_t *p, size_t n)
{
    char name[256];
    const uint8_t *rec = p;
    size_t rec_len = n;
    if (c->hello != NULL || n == 0) {
        if (n == 0 && c->hello == NULL) return OP_TLS_WANT;
        /* A record is at most 5 + 16 KiB; keep only what can belong to the first one plus the rest. */
        if (c->hello == NULL && (c->hello = malloc(5 + OP_TLS_RECORD_MAX)) == NULL)
            return conn_fail(c, "handshake: out of memory", 0);
        size_t room = 5 + OP_TLS_RECORD_MAX - c->hello_len;
        size_t take = OP_MIN(room, n);
        if (take > 0) {
            memcpy(c->hello + c->hello_len, p, take);
            c->hello_len += take;
            p += take;
            n -= take;
        }
        rec = c->hello;
        rec_len = c->hello_len;
    }
    int r = op_tls_sni_from_hello(rec, rec_len, name, sizeof(name));
    if (r == -EAGAIN) {
        if (c->hello == NULL) {
            if ((c->hello = malloc(5 + OP_TLS_RECORD_MAX)) == NULL)
                return conn_fail(c, "handshake: out of memory", 0);
            memcpy(c->hello, p, n); /* n < 5 + record length <= 5 + 16 KiB */
            c->hello_len = n;
        }
        return OP_TLS_WANT;
    }
    int pick = 0;
    if (r == 1) {
        if ((c->sni = strdup(name)) == NULL) return conn_fail(c, "handshake: out of memory", 0);
        pick = c->ctx->ncerts > 1 ? pick_cert(c->ctx, name) : 0;
    }
    /* Anything else (no SNI, malformed, multi-record hello) goes to the default cert and wolfSSL judges
     * the bytes itself (and sends the alert). */
    if (conn_create_ssl(c, pick) != 0) return conn_fail(c, "handshake: out of memory", 0);
    c->state = OP_TLS_ST_HANDSHAKE;
    c->rx = rec;
    c->rx_len = rec_len;
    /* The rest of the input (beyond the hello buffer) is fed after the collected bytes. */
    c->pending = p;
    c->pending_len = c->hello ? n : 0;
    return OP_TLS_OPEN;
}

int op_tls_conn_input(struct op_tls_conn *c, const uint8_t *p, size_t n, op_tls_plain_fn plain, void *arg)
{
    if (c->state == OP_TLS_ST_FAILED || c->state == OP_TLS_ST_READ_STOPPED) return OP_TLS_ERROR;
    if (c->state == OP_TLS_ST_PEER_CLOSED) return OP_TLS_PEER_CLOSED;
    if (p == NULL) n = 0;
    c->rx = p;
    c->rx_len = n;
    c->pending = NULL;
    c->pending_len = 0;

    if (c->state == OP_TLS_ST_HELLO) {
        int r = conn_hello(c, p, n);
        if (r != OP_TLS_OPEN) {
            c->rx = NULL;
            c->rx_len = 0;
            return r;
        }
    }
    int status = conn_drive(c, plain, arg);
    if (c->pending_len > 0 && (status == OP_TLS_WANT || status == OP_TLS_OPEN)) {
        c->rx = c->pending;
        c->rx_len = c->pending_len;
        status = conn_drive(c, plain, arg);
    }
    c->pending = NULL;
    c->pending_len = 0;
    if (c->hello) {
        free(c->hello);
        c->hello = NULL;
        c->hello_len = 0;
    }
    return status;
}

/* Runs the handshake and the read loop over the current cursor until it is empty. */
static int conn_drive(struct op_tls_conn *c, op_tls_plain_fn plain, void *arg)
{
    if (c->state == OP_TLS_ST_HANDSHAKE) {
        int r = wolfSSL_accept(c->ssl);
        if (r != WOLFSSL_SUCCESS) {
            int e = wolfSSL_get_error(c->ssl, r);
            if (e == WOLFSSL_ERROR_WANT_READ && !c->out_failed) {
                /* WANT_READ only comes from tls_recv_cb on an empty cursor: all input consumed */
                if (c->rx_len != 0)
                    return conn_fail(c, "handshake: input left unconsumed (internal error)", 0);
                c->rx = NULL;
                return OP_TLS_WANT;
            }
            return conn_fail(c, "handshake", e);
        }
        c->state = OP_TLS_ST_OPEN;
        c->established = true;
    }
    if (c->state == OP_TLS_ST_PEER_CLOSED) return OP_TLS_PEER_CLOSED;

    /* Bounded: every iteration either consumes input or returns decrypted data, and both are finite;
     * the cap only guards against a wolfSSL surprise. */
    for (int guard = 0; guard < 1 << 20; guard++) {
        int r = wolfSSL_read(c->ssl, tls_scratch, (int)sizeof(tls_scratch));
        if (r > 0) {
            if (plain == NULL || plain(arg, tls_scratch, (size_t)r) != 0) {
                c->state = OP_TLS_ST_READ_STOPPED;
                snprintf(c->err, sizeof(c->err), "input stopped by the application");
                c->rx = NULL;
                c->rx_len = 0;
                return OP_TLS_ERROR;
            }
            continue;
        }
        int e = wolfSSL_get_error(c->ssl, r);
        if (e == WOLFSSL_ERROR_WANT_READ && !c->out_failed) {
            if (c->rx_len != 0) return conn_fail(c, "read: input left unconsumed (internal error)", 0);
            c->rx = NULL;
            return OP_TLS_OPEN;
        }
        if (e == WOLFSSL_ERROR_ZERO_RETURN) {
            c->state = OP_TLS_ST_PEER_CLOSED;
            c->rx = NULL;
            c->rx_len = 0;
            wolfSSL_ERR_clear_error();
            return OP_TLS_PEER_CLOSED;
        }
        return conn_fail(c, "read", e);
    }
    return conn_fail(c, "read: no progress", 0);
}

int op_tls_conn_write(struct op_tls_conn *c, const uint8_t *p, size_t n)
{
    if (c->state != OP_TLS_ST_OPEN && c->state != OP_TLS_ST_PEER_CLOSED &&
        c->state != OP_TLS_ST_READ_STOPPED) {
        if (c->state != OP_TLS_ST_FAILED)
            snprintf(c->err, sizeof(c->err), "write: the handshake is not complete");
        return OP_TLS_ERROR;
    }
    while (n > 0) {
        int chunk = (int)OP_MIN(n, (size_t)1 << 20);
        int r = wolfSSL_write(c->ssl, p, chunk);
        if (r <= 0) return conn_fail(c, "write", wolfSSL_get_error(c->ssl, r));
        /* Without WANT_WRITE from our send callback wolfSSL writes everything or fails. */
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int op_tls_conn_shutdown(struct op_tls_conn *c)
{
    if (c->state == OP_TLS_ST_FAILED) return OP_TLS_ERROR;
    if (c->state == OP_TLS_ST_HELLO || c->state == OP_TLS_ST_HANDSHAKE || c->shutdown_sent) return 0;
    c->shutdown_sent = true;
    int r = wolfSSL_shutdown(c->ssl);
    if (r == WOLFSSL_SUCCESS || r == WOLFSSL_SHUTDOWN_NOT_DONE)
        return c->out_failed ? conn_fail(c, "shutdown", 0) : 0;
    return conn_fail(c, "shutdown", wolfSSL_get_error(c->ssl, r));
}

bool op_tls_conn_is_open(const struct op_tls_conn *c)
{
    return c->state == OP_TLS_ST_OPEN;
}

const char *op_tls_conn_error(const struct op_tls_conn *c)
{
    return c->err;
}

static bool handshake_done(const struct op_tls_conn *c)
{
    return c->ssl != NULL && c->established;
}

const char *op_tls_conn_version(const struct op_tls_conn *c)
{
    if (!handshake_done(c)) return "";
    const char *v = wolfSSL_get_version(c->ssl);
    return v ? v : "";
}

const char *op_tls_conn_cipher(const struct op_tls_conn *c)
{
    if (!handshake_done(c)) return "";
    const char *v = wolfSSL_get_cipher_name(c->ssl);
    return v ? v : "";
}

const char *op_tls_conn_sni(const struct op_tls_conn *c)
{
    return c->sni;
}

const char *op_tls_conn_alpn(const struct op_tls_conn *c)
{
    char *name = NULL;
    unsigned short len = 0;
    if (!handshake_done(c) || wolfSSL_ALPN_GetProtocol(c->ssl, &name, &len) != WOLFSSL_SUCCESS ||
        name == NULL || len == 0)
        return NULL;
    return name;
}

bool op_tls_conn_resumed(const struct op_tls_conn *c)
{
    return handshake_done(c) && wolfSSL_session_reused(c->ssl) == 1;
}
