/*
 * tests/unit/tls_test_util.h — the harness shared by test_tls.c (sessions) and test_tls_hello.c (what the
 * server does with a ClientHello): tls/ against a real wolfSSL client, entirely in memory (no sockets).
 *
 * The client is a wolfSSL client with custom I/O over two in-memory pipes; the server side is
 * op_tls_conn fed through op_tls_conn_input() in random-sized chunks (single bytes included) so that
 * records split at every possible position. Certificates come from tests/lib/certs.sh in a temp dir
 * (tls_test_setup / tls_test_teardown).
 */
#ifndef OP_TLS_TEST_UTIL_H
#define OP_TLS_TEST_UTIL_H

#include "tls/sni.h"
#include "tls/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfio.h>

/* CHECK counts atomically: the session callbacks check too, and test_threads runs sessions on two threads. */
#include "tests/unit/check.h"

static char g_dir[256];

static inline const char *path(const char *name)
{
    static _Thread_local char bufs[8][512];
    static _Thread_local int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

/* xorshift, deterministic */
static _Thread_local uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static inline uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}

/* ---------------------------------------------------------------------------------------------- */
/* In-memory pipes                                                                                 */

struct buf {
    uint8_t *p;
    size_t len, off, cap;
};

static inline void buf_put(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL) abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static inline size_t buf_avail(const struct buf *b)
{
    return b->len - b->off;
}

static inline void buf_reset(struct buf *b)
{
    b->len = b->off = 0;
}

static inline void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

struct pair {
    struct op_tls_conn *srv;
    WOLFSSL_CTX *cctx;
    WOLFSSL *cli;
    struct buf c2s, s2c;
    struct buf srv_plain, cli_plain;
    int srv_status;
    bool out_fail;
    bool plain_stop;
    int max_chunk; /* largest chunk fed to op_tls_conn_input */
    int out_calls;
    int opened; /* calls of the opened() callback: exactly one per completed handshake */
};

static inline int srv_out(void *arg, const uint8_t *p, size_t n)
{
    struct pair *pr = arg;
    if (pr->out_fail) return -1;
    pr->out_calls++;
    buf_put(&pr->s2c, p, n);
    return 0;
}

static inline void srv_opened(void *arg)
{
    struct pair *pr = arg;
    pr->opened++;
    CHECK(pr->opened == 1, "opened() called %d times", pr->opened);
    CHECK(op_tls_conn_is_open(pr->srv), "open when opened() runs");
}

static inline int srv_plain(void *arg, const uint8_t *p, size_t n)
{
    struct pair *pr = arg;
    CHECK(pr->opened == 1, "plain() before opened()");
    if (pr->plain_stop) return -1;
    buf_put(&pr->srv_plain, p, n);
    return 0;
}

static inline int cli_send(WOLFSSL *ssl, char *p, int sz, void *arg)
{
    (void)ssl;
    buf_put(&((struct pair *)arg)->c2s, p, (size_t)sz);
    return sz;
}

static inline int cli_recv(WOLFSSL *ssl, char *p, int sz, void *arg)
{
    (void)ssl;
    struct buf *b = &((struct pair *)arg)->s2c;
    size_t n = buf_avail(b);
    if (n == 0) return WOLFSSL_CBIO_ERR_WANT_READ;
    if (n > (size_t)sz) n = (size_t)sz;
    memcpy(p, b->p + b->off, n);
    b->off += n;
    if (b->off == b->len) buf_reset(b);
    return (int)n;
}

/* Feeds everything the client wrote to the server, in random chunk sizes (1..max_chunk). */
static inline int pump(struct pair *pr)
{
    struct buf *b = &pr->c2s;
    if (buf_avail(b) == 0) {
        pr->srv_status = op_tls_conn_input(pr->srv, NULL, 0, srv_plain, pr);
        return pr->srv_status;
    }
    while (buf_avail(b) > 0) {
        size_t n = 1 + rnd((uint32_t)pr->max_chunk);
        if (n > buf_avail(b)) n = buf_avail(b);
        pr->srv_status = op_tls_conn_input(pr->srv, b->p + b->off, n, srv_plain, pr);
        b->off += n;
        if (pr->srv_status == OP_TLS_ERROR || pr->srv_status == OP_TLS_PEER_CLOSED) break;
    }
    buf_reset(b);
    return pr->srv_status;
}

struct cli_opts {
    int version;      /* 0 any, 12, 13 */
    const char *sni;  /* NULL: none */
    const char *alpn; /* NULL: "http/1.1" */
    bool no_alpn;
    WOLFSSL_SESSION *resume;
    bool verify_host; /* check the cert against sni (or "localhost") */
};

static inline int pair_init(struct pair *pr, struct op_tls_ctx *ctx, const struct cli_opts *o)
{
    memset(pr, 0, sizeof(*pr));
    pr->max_chunk = 1500;
    pr->srv = op_tls_conn_new(ctx, srv_out, srv_opened, pr);
    if (pr->srv == NULL) return -1;
    WOLFSSL_METHOD *m = o->version == 12   ? wolfTLSv1_2_client_method()
                        : o->version == 13 ? wolfTLSv1_3_client_method()
                                           : wolfSSLv23_client_method();
    pr->cctx = wolfSSL_CTX_new(m);
    if (pr->cctx == NULL) return -1;
    if (wolfSSL_CTX_load_verify_locations(pr->cctx, path("ca.pem"), NULL) != WOLFSSL_SUCCESS) return -1;
    wolfSSL_CTX_set_verify(pr->cctx, WOLFSSL_VERIFY_PEER, NULL);
    wolfSSL_CTX_SetIORecv(pr->cctx, cli_recv);
    wolfSSL_CTX_SetIOSend(pr->cctx, cli_send);
    pr->cli = wolfSSL_new(pr->cctx);
    if (pr->cli == NULL) return -1;
    wolfSSL_SetIOReadCtx(pr->cli, pr);
    wolfSSL_SetIOWriteCtx(pr->cli, pr);
    wolfSSL_UseSessionTicket(pr->cli);
    if (o->sni) wolfSSL_UseSNI(pr->cli, WOLFSSL_SNI_HOST_NAME, o->sni, (unsigned short)strlen(o->sni));
    if (!o->no_alpn) {
        char alpn[64];
        snprintf(alpn, sizeof(alpn), "%s", o->alpn ? o->alpn : "http/1.1");
        wolfSSL_UseALPN(pr->cli, alpn, (unsigned)strlen(alpn), WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    }
    if (o->verify_host) wolfSSL_check_domain_name(pr->cli, o->sni ? o->sni : "localhost");
    if (o->resume) /* fails when the session holds nothing resumable; the handshake is then full */
        wolfSSL_set_session(pr->cli, o->resume);
    return 0;
}

static inline void pair_free(struct pair *pr)
{
    op_tls_conn_free(pr->srv);
    if (pr->cli) wolfSSL_free(pr->cli);
    if (pr->cctx) wolfSSL_CTX_free(pr->cctx);
    buf_free(&pr->c2s);
    buf_free(&pr->s2c);
    buf_free(&pr->srv_plain);
    buf_free(&pr->cli_plain);
}

/* Runs the handshake to completion on both sides. Returns 0, or -1 (client or server failed). */
static inline int handshake(struct pair *pr)
{
    for (int i = 0; i < 50; i++) {
        int r = wolfSSL_connect(pr->cli);
        int st = pump(pr);
        if (st == OP_TLS_ERROR) return -1;
        if (r == WOLFSSL_SUCCESS && st == OP_TLS_OPEN) {
            CHECK(pr->opened == 1, "opened() %d times for one handshake", pr->opened);
            CHECK(strcmp(op_tls_conn_state_str(pr->srv), "open") == 0, "state %s",
                  op_tls_conn_state_str(pr->srv));
            return 0;
        }
        if (r != WOLFSSL_SUCCESS && wolfSSL_get_error(pr->cli, r) != WOLFSSL_ERROR_WANT_READ) {
            char e[128];
            wolfSSL_ERR_error_string_n((unsigned long)wolfSSL_get_error(pr->cli, r), e, sizeof(e));
            fprintf(stderr, "  client handshake error: %s\n", e);
            return -1;
        }
    }
    return -1;
}

/* Client reads everything available into cli_plain. Returns the last wolfSSL error code. */
static inline int cli_drain(struct pair *pr)
{
    static _Thread_local char tmp[20000];
    for (int i = 0; i < 100000; i++) {
        int r = wolfSSL_read(pr->cli, tmp, (int)sizeof(tmp));
        if (r > 0) {
            buf_put(&pr->cli_plain, tmp, (size_t)r);
            continue;
        }
        return wolfSSL_get_error(pr->cli, r);
    }
    return -1;
}

static inline void cli_write(struct pair *pr, const void *p, size_t n)
{
    if (n == 0) return;
    int r = wolfSSL_write(pr->cli, p, (int)n);
    CHECK(r == (int)n, "client write %zu -> %d", n, r);
}

/* CN of the certificate the client got. */
static inline void peer_cn(struct pair *pr, char *out, size_t outlen)
{
    out[0] = '\0';
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(pr->cli);
    if (x == NULL) return;
    wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, out, (int)outlen);
    wolfSSL_X509_free(x);
}

static inline struct op_tls_ctx *make_ctx(const struct op_tls_config *cfg)
{
    struct op_tls_ctx *ctx = NULL;
    char err[256];
    int rc = op_tls_ctx_new(cfg, &ctx, err, sizeof(err));
    CHECK(rc == 0 && ctx != NULL, "ctx_new: %d %s", rc, err);
    return ctx;
}

static const struct op_tls_cert g_certs[] = {{"server.pem", "server.key"},
                                             {"wild.pem", "wild.key"},
                                             {"rsa.pem", "rsa.key"},
                                             {"chain.pem", "chain.key"}};

static struct op_tls_cert g_cert_paths[4];

static inline void fill_cert_paths(void)
{
    for (size_t i = 0; i < 4; i++) {
        g_cert_paths[i].cert_file = strdup(path(g_certs[i].cert_file));
        g_cert_paths[i].key_file = strdup(path(g_certs[i].key_file));
    }
}

/* Makes the temp dir, the certificates and wolfSSL's global state. Returns 0 or -1 (reason printed). */
static inline int tls_test_setup(const char *name)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(g_dir, sizeof(g_dir), "/tmp/%s.XXXXXX", name);
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    const char *root = getenv("OUTPOST_ROOT");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s/tests/lib/certs.sh %s", root ? root : ".", g_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "certs.sh failed\n");
        return -1;
    }
    fill_cert_paths();
    CHECK(op_tls_global_init() == 0, "init");
    CHECK(op_tls_global_init() == 0, "init twice");
    return 0;
}

static inline void tls_test_teardown(void)
{
    op_tls_global_cleanup();
    for (size_t i = 0; i < 4; i++) {
        free((void *)g_cert_paths[i].cert_file);
        free((void *)g_cert_paths[i].key_file);
    }
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", g_dir);
}

#endif
