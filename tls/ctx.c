/*
 * tls/ctx.c — the server context: wolfSSL initialisation, certificate loading (PEM files, key check, the
 * DNS SANs that SNI selects on), the session-ticket key and its callback, and reference counting.
 *
 * Design:
 *   - one WOLFSSL_CTX per configured certificate, all configured identically; session.c creates a
 *     conn's WOLFSSL on the CTX that op_tls_ctx_pick() chooses for the ClientHello's SNI;
 *   - tickets: our own ChaCha20-Poly1305 ticket callback with one random key per op_tls_ctx, shared by
 *     all its CTXs (wolfSSL's default callback keeps a separate key per CTX, and could not hand the key
 *     on to the next ctx on reload, see op_tls_ctx_inherit_tickets). Nonces are a per-key random prefix
 *     plus an atomic counter, so no RNG and no lock sits on the handshake path. The server-side session
 *     cache is off (tickets only: it is a process-wide locked table in wolfSSL).
 * Everything here runs at start-up or reload, off the workers' hot path, except the ticket callback.
 */
#include "tls/tls_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

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
/* Certificate choice by SNI                                                                         */

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

size_t op_tls_ctx_pick(const struct op_tls_ctx *ctx, const char *sni)
{
    size_t len = strlen(sni);
    for (size_t i = 0; i < ctx->ncerts; i++)
        for (size_t j = 0; j < ctx->certs[i].nnames; j++)
            if (ctx->certs[i].names[j][0] != '*' && name_eq(sni, len, ctx->certs[i].names[j])) return i;
    for (size_t i = 0; i < ctx->ncerts; i++)
        for (size_t j = 0; j < ctx->certs[i].nnames; j++)
            if (name_wild_match(ctx->certs[i].names[j], sni, len)) return i;
    return 0; /* unknown names get the default certificate (like nginx's default_server), never abort */
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
    /* The groups, in preference order. set1_groups_list both sets the TLS 1.3 groups (key shares) and
     * disables every other curve, which TLS 1.2's ECDHE curve choice honours; wolfSSL_CTX_set_groups alone
     * leaves TLS 1.2 free to pick any curve wolfSSL was built with (secp521r1 among them). */
    if (wolfSSL_CTX_set1_groups_list(w, OP_TLS_GROUPS) != WOLFSSL_SUCCESS) {
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
    wolfSSL_CTX_set_group_messages(w);                             /* one out() call per handshake flight */
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
