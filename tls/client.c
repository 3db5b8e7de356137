/*
 * tls/client.c — TLS client sessions over a caller-owned non-blocking socket (see client.h). wolfSSL is
 * built with WOLFSSL_USER_IO, so the socket I/O is done here in two small callbacks.
 */
#include "tls/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tls/tls_int.h"

struct op_tlsc_ctx {
    WOLFSSL_CTX *w;
    bool unverified; /* no certificate or name check (op_tlsc_ctx_new_unverified) */
};

struct op_tlsc {
    WOLFSSL *ssl;
    int fd;
    uint8_t ip[16]; /* an IP-literal host: checked against the certificate's iPAddress SANs */
    int iplen;
    bool want_write;
    bool eof; /* the socket read 0: the peer's FIN (with or without close_notify) */
    bool done;
    bool shut;
    char err[160];
};

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct op_tlsc *c = arg;
    for (;;) {
        ssize_t n = recv(c->fd, buf, (size_t)sz, 0);
        if (n > 0) return (int)n;
        if (n == 0) {
            c->eof = true;
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return WOLFSSL_CBIO_ERR_WANT_READ;
        if (errno == ECONNRESET) return WOLFSSL_CBIO_ERR_CONN_RST;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct op_tlsc *c = arg;
    for (;;) {
        ssize_t n = send(c->fd, buf, (size_t)sz, MSG_NOSIGNAL);
        if (n >= 0) return (int)n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return WOLFSSL_CBIO_ERR_WANT_WRITE;
        if (errno == ECONNRESET || errno == EPIPE) return WOLFSSL_CBIO_ERR_CONN_RST;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
}

static int ctx_new(const char *ca_file, bool verify, struct op_tlsc_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    if (op_tls_global_init() != 0) {
        snprintf(err, errlen, "wolfSSL_Init failed");
        return -EIO;
    }
    WOLFSSL_CTX *w = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    if (wolfSSL_CTX_SetMinVersion(w, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(w, OP_TLS_DEFAULT_CIPHERS) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set1_groups_list(w, OP_TLS_GROUPS) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot set the TLS version, ciphers or groups");
        rc = -EINVAL;
    } else if (!verify) {
        /* nothing to load: no certificate is checked */
    } else if (ca_file && *ca_file) {
        if (wolfSSL_CTX_load_verify_locations(w, ca_file, NULL) != WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "cannot load the CA file \"%s\" (missing, unreadable or not PEM)", ca_file);
            rc = -ENOENT;
        }
    } else if (wolfSSL_CTX_load_system_CA_certs(w) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot load the system's CA certificates");
        rc = -ENOENT;
    }
    if (rc) {
        wolfSSL_CTX_free(w);
        return rc;
    }
    wolfSSL_CTX_set_verify(w, verify ? WOLFSSL_VERIFY_PEER : WOLFSSL_VERIFY_NONE, NULL);
    wolfSSL_CTX_SetIORecv(w, io_recv);
    wolfSSL_CTX_SetIOSend(w, io_send);
    struct op_tlsc_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        wolfSSL_CTX_free(w);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ctx->w = w;
    ctx->unverified = !verify;
    *out = ctx;
    return 0;
}

int op_tlsc_ctx_new(const char *ca_file, struct op_tlsc_ctx **out, char *err, size_t errlen)
{
    return ctx_new(ca_file, true, out, err, errlen);
}

int op_tlsc_ctx_new_unverified(struct op_tlsc_ctx **out, char *err, size_t errlen)
{
    return ctx_new(NULL, false, out, err, errlen);
}

void op_tlsc_ctx_free(struct op_tlsc_ctx *ctx)
{
    if (!ctx) return;
    wolfSSL_CTX_free(ctx->w);
    free(ctx);
}

struct op_tlsc *op_tlsc_new(struct op_tlsc_ctx *ctx, int fd, const char *host)
{
    struct op_tlsc *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->fd = fd;
    c->ssl = wolfSSL_new(ctx->w);
    if (!c->ssl) {
        free(c);
        return NULL;
    }
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    struct in6_addr a6;
    struct in_addr a4;
    bool ip = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
    int ok;
    if (ctx->unverified) {
        ok = ip || wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, host, (unsigned short)strlen(host)) ==
                       WOLFSSL_SUCCESS;
    } else if (ip) {
        /* This wolfSSL is built without IP alternative names, so they are checked here after the
         * handshake (the chain itself is verified by wolfSSL), before any byte is written. */
        c->iplen = inet_pton(AF_INET, host, c->ip) == 1 ? 4 : 16;
        if (c->iplen == 16) inet_pton(AF_INET6, host, c->ip);
        ok = 1;
    } else {
        ok = wolfSSL_check_domain_name(c->ssl, host) == WOLFSSL_SUCCESS &&
             wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, host, (unsigned short)strlen(host)) ==
                 WOLFSSL_SUCCESS;
    }
    if (!ok) {
        op_tlsc_free(c);
        return NULL;
    }
    return c;
}

void op_tlsc_free(struct op_tlsc *c)
{
    if (!c) return;
    wolfSSL_free(c->ssl);
    free(c);
}

/* Maps a wolfSSL failure to -EAGAIN (with the direction) or an error with its text. */
static int failure(struct op_tlsc *c, int ret, int hard)
{
    int e = wolfSSL_get_error(c->ssl, ret);
    c->want_write = false;
    if (e == WOLFSSL_ERROR_WANT_READ) return -EAGAIN;
    if (e == WOLFSSL_ERROR_WANT_WRITE) {
        c->want_write = true;
        return -EAGAIN;
    }
    if (!*c->err) {
        char buf[WOLFSSL_MAX_ERROR_SZ];
        wolfSSL_ERR_error_string_n((unsigned long)e, buf, sizeof(buf));
        if (e == DOMAIN_NAME_MISMATCH || e == IPADDR_MISMATCH)
            snprintf(c->err, sizeof(c->err), "the certificate does not name this host (%s)", buf);
        else if (e == ASN_NO_SIGNER_E || e == ASN_SELF_SIGNED_E)
            snprintf(c->err, sizeof(c->err), "the certificate is not signed by a trusted CA (%s)", buf);
        else if (e == ASN_AFTER_DATE_E || e == ASN_BEFORE_DATE_E)
            snprintf(c->err, sizeof(c->err), "the certificate is expired or not yet valid (%s)", buf);
        else
            snprintf(c->err, sizeof(c->err), "%s", buf);
    }
    return hard;
}

/* Reads a DER length at p[0..n); returns the header size (tag + length bytes) or 0. */
static size_t der_len(const uint8_t *p, size_t n, size_t *len)
{
    if (n < 2) return 0;
    if (p[1] < 0x80) {
        *len = p[1];
        return 2;
    }
    size_t k = p[1] & 0x7f;
    if (k == 0 || k > 3 || n < 2 + k) return 0;
    size_t v = 0;
    for (size_t i = 0; i < k; i++)
        v = v << 8 | p[2 + i];
    *len = v;
    return 2 + k;
}

/* True when the certificate's subjectAltName extension (OID 2.5.29.17) lists ip as an iPAddress. */
static bool cert_names_ip(const uint8_t *der, size_t n, const uint8_t *ip, int iplen)
{
    static const uint8_t oid[] = {0x06, 0x03, 0x55, 0x1d, 0x11};
    for (size_t i = 0; i + sizeof(oid) < n; i++) {
        if (memcmp(der + i, oid, sizeof(oid)) != 0) continue;
        const uint8_t *p = der + i + sizeof(oid), *end = der + n;
        if (p < end && *p == 0x01) { /* critical BOOLEAN */
            size_t l, h = der_len(p, (size_t)(end - p), &l);
            if (!h) return false;
            p += h + l;
        }
        size_t l, h;
        if (p >= end || *p != 0x04 || !(h = der_len(p, (size_t)(end - p), &l)))
            return false; /* OCTET STRING */
        p += h;
        if (p >= end || *p != 0x30 || !(h = der_len(p, (size_t)(end - p), &l))) return false; /* SEQUENCE */
        const uint8_t *q = p + h, *qe = q + l;
        if (qe > end) return false;
        while (q < qe) {
            size_t gl, gh = der_len(q, (size_t)(qe - q), &gl);
            if (!gh || q + gh + gl > qe) return false;
            if (q[0] == 0x87 && gl == (size_t)iplen && memcmp(q + gh, ip, gl) == 0) return true;
            q += gh + gl;
        }
        return false;
    }
    return false;
}

int op_tlsc_handshake(struct op_tlsc *c)
{
    if (c->done) return 0;
    int r = wolfSSL_connect(c->ssl);
    if (r == WOLFSSL_SUCCESS) {
        c->want_write = false;
        if (c->iplen) {
            WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(c->ssl);
            int n = 0;
            const unsigned char *der = x ? wolfSSL_X509_get_der(x, &n) : NULL;
            bool ok = der && n > 0 && cert_names_ip(der, (size_t)n, c->ip, c->iplen);
            wolfSSL_X509_free(x);
            if (!ok) {
                snprintf(c->err, sizeof(c->err), "the certificate does not name this IP address");
                return -EPROTO;
            }
        }
        c->done = true;
        return 0;
    }
    return failure(c, r, -EPROTO);
}

ssize_t op_tlsc_read(struct op_tlsc *c, void *buf, size_t n)
{
    int r = wolfSSL_read(c->ssl, buf, n > 65536 ? 65536 : (int)n);
    if (r > 0) return r;
    int e = wolfSSL_get_error(c->ssl, r);
    /* A FIN without close_notify ends the byte stream too (a half-closed stream has no more to say; the
     * bytes before it were authenticated record by record). */
    if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E ||
        (c->eof && e != WOLFSSL_ERROR_WANT_READ && e != WOLFSSL_ERROR_WANT_WRITE))
        return 0;
    return failure(c, r, -EIO);
}

ssize_t op_tlsc_write(struct op_tlsc *c, const void *buf, size_t n)
{
    int r = wolfSSL_write(c->ssl, buf, n > 16384 ? 16384 : (int)n);
    if (r > 0) return r;
    return failure(c, r, -EIO);
}

int op_tlsc_shutdown(struct op_tlsc *c)
{
    if (c->shut) return 0;
    int r = wolfSSL_shutdown(c->ssl);
    if (r == WOLFSSL_SUCCESS || r == WOLFSSL_SHUTDOWN_NOT_DONE) {
        c->shut = true;
        return 0;
    }
    return failure(c, r, -EIO);
}

bool op_tlsc_wants_write(const struct op_tlsc *c)
{
    return c->want_write;
}

bool op_tlsc_pending(const struct op_tlsc *c)
{
    return wolfSSL_pending(c->ssl) > 0;
}

const char *op_tlsc_error(const struct op_tlsc *c)
{
    return c->err;
}
