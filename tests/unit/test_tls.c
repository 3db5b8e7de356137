/*
 * tests/unit/test_tls.c — tls/ against a real wolfSSL client, entirely in memory (no sockets).
 *
 * The client is a wolfSSL client with custom I/O over two in-memory pipes; the server side is
 * op_tls_conn fed through op_tls_conn_input() in random-sized chunks (single bytes included) so that
 * records split at every possible position. Certificates come from tests/lib/certs.sh in a temp dir.
 */
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

static const char *path(const char *name)
{
    static _Thread_local char bufs[8][512];
    static _Thread_local int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

/* xorshift, deterministic */
static _Thread_local uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
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

static void buf_put(struct buf *b, const void *p, size_t n)
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

static size_t buf_avail(const struct buf *b)
{
    return b->len - b->off;
}

static void buf_reset(struct buf *b)
{
    b->len = b->off = 0;
}

static void buf_free(struct buf *b)
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

static int srv_out(void *arg, const uint8_t *p, size_t n)
{
    struct pair *pr = arg;
    if (pr->out_fail) return -1;
    pr->out_calls++;
    buf_put(&pr->s2c, p, n);
    return 0;
}

static void srv_opened(void *arg)
{
    struct pair *pr = arg;
    pr->opened++;
    CHECK(pr->opened == 1, "opened() called %d times", pr->opened);
    CHECK(op_tls_conn_is_open(pr->srv), "open when opened() runs");
}

static int srv_plain(void *arg, const uint8_t *p, size_t n)
{
    struct pair *pr = arg;
    CHECK(pr->opened == 1, "plain() before opened()");
    if (pr->plain_stop) return -1;
    buf_put(&pr->srv_plain, p, n);
    return 0;
}

static int cli_send(WOLFSSL *ssl, char *p, int sz, void *arg)
{
    (void)ssl;
    buf_put(&((struct pair *)arg)->c2s, p, (size_t)sz);
    return sz;
}

static int cli_recv(WOLFSSL *ssl, char *p, int sz, void *arg)
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
static int pump(struct pair *pr)
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

static int pair_init(struct pair *pr, struct op_tls_ctx *ctx, const struct cli_opts *o)
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

static void pair_free(struct pair *pr)
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
static int handshake(struct pair *pr)
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
static int cli_drain(struct pair *pr)
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

static void cli_write(struct pair *pr, const void *p, size_t n)
{
    if (n == 0) return;
    int r = wolfSSL_write(pr->cli, p, (int)n);
    CHECK(r == (int)n, "client write %zu -> %d", n, r);
}

/* CN of the certificate the client got. */
static void peer_cn(struct pair *pr, char *out, size_t outlen)
{
    out[0] = '\0';
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(pr->cli);
    if (x == NULL) return;
    wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, out, (int)outlen);
    wolfSSL_X509_free(x);
}

static struct op_tls_ctx *make_ctx(const struct op_tls_config *cfg)
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

static void fill_cert_paths(void)
{
    for (size_t i = 0; i < 4; i++) {
        g_cert_paths[i].cert_file = strdup(path(g_certs[i].cert_file));
        g_cert_paths[i].key_file = strdup(path(g_certs[i].key_file));
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Tests                                                                                           */

static void test_ctx_errors(void)
{
    printf("ctx_new refuses bad configs with a clear reason\n");
    struct op_tls_ctx *ctx = (struct op_tls_ctx *)0x1;
    char err[256];
    struct op_tls_cert c = {path("missing.pem"), path("server.key")};
    struct op_tls_config cfg = {.certs = &c, .ncerts = 1};
    int rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -ENOENT && ctx == NULL, "missing cert: %d", rc);
    CHECK(strstr(err, "missing.pem") && strstr(err, "No such file"), "err=%s", err);
    printf("  missing file: %s\n", err);

    c = (struct op_tls_cert){path("server.pem"), path("missing.key")};
    rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -ENOENT && strstr(err, "missing.key"), "missing key: %d %s", rc, err);

    FILE *f = fopen(path("bad.pem"), "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    c = (struct op_tls_cert){path("bad.pem"), path("server.key")};
    rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -EINVAL && ctx == NULL && strstr(err, "bad.pem") && strstr(err, "PEM"), "bad pem: %d %s", rc,
          err);
    printf("  bad PEM: %s\n", err);

    c = (struct op_tls_cert){path("server.pem"), path("bad.pem")};
    rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -EINVAL && strstr(err, "bad.pem") && strstr(err, "key"), "bad key: %d %s", rc, err);

    c = (struct op_tls_cert){path("server.pem"), path("mismatch.key")};
    rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -EINVAL && ctx == NULL && strstr(err, "does not match"), "mismatch: %d %s", rc, err);
    printf("  mismatched key: %s\n", err);

    /* a bad second cert fails the whole config */
    struct op_tls_cert two[2] = {{path("server.pem"), path("server.key")},
                                 {path("wild.pem"), path("rsa.key")}};
    cfg = (struct op_tls_config){.certs = two, .ncerts = 2};
    rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -EINVAL && strstr(err, "does not match"), "second cert: %d %s", rc, err);

    cfg = (struct op_tls_config){.certs = two, .ncerts = 0};
    rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -EINVAL && err[0], "no certs: %d %s", rc, err);
    cfg = (struct op_tls_config){.certs = two, .ncerts = 1, .min_version = 11};
    rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -EINVAL && strstr(err, "min_version"), "tls1.1: %d %s", rc, err);
    cfg = (struct op_tls_config){.certs = two, .ncerts = 1, .ciphers = "NOPE-NOT-A-CIPHER"};
    rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -EINVAL && strstr(err, "cipher"), "cipher: %d %s", rc, err);
    cfg = (struct op_tls_config){.certs = two, .ncerts = 1, .alpn = "h2,,http/1.1"};
    rc = op_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    CHECK(rc == -EINVAL && strstr(err, "ALPN"), "alpn: %d %s", rc, err);
}

static void test_tls13_full(struct op_tls_ctx *ctx)
{
    printf("TLS 1.3 full handshake, ALPN http/1.1, SNI, cert verified by the client\n");
    struct pair pr;
    struct cli_opts o = {.sni = "localhost", .verify_host = true};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(op_tls_conn_input(pr.srv, NULL, 0, srv_plain, &pr) == OP_TLS_WANT, "idle input");
    CHECK(!op_tls_conn_is_open(pr.srv), "not open yet");
    CHECK(op_tls_conn_write(pr.srv, (const uint8_t *)"x", 1) == -ENOTCONN, "write before open");
    CHECK(op_tls_conn_shutdown(pr.srv) == 0 && pr.s2c.len == 0, "shutdown before open is a no-op");
    int hs = handshake(&pr);
    CHECK(hs == 0, "handshake: %s", op_tls_conn_error(pr.srv));
    CHECK(op_tls_conn_is_open(pr.srv), "open");
    CHECK(strcmp(op_tls_conn_version(pr.srv), "TLSv1.3") == 0, "version %s", op_tls_conn_version(pr.srv));
    CHECK(strstr(op_tls_conn_cipher(pr.srv), "GCM") || strstr(op_tls_conn_cipher(pr.srv), "CHACHA"),
          "cipher %s", op_tls_conn_cipher(pr.srv));
    const char *sni = op_tls_conn_sni(pr.srv);
    CHECK(sni && strcmp(sni, "localhost") == 0, "sni %s", sni ? sni : "(null)");
    const char *alpn = op_tls_conn_alpn(pr.srv);
    CHECK(alpn && strcmp(alpn, "http/1.1") == 0, "server alpn %s", alpn ? alpn : "(null)");
    char *calpn = NULL;
    unsigned short calen = 0;
    CHECK(wolfSSL_ALPN_GetProtocol(pr.cli, &calpn, &calen) == WOLFSSL_SUCCESS && calen == 8 &&
              memcmp(calpn, "http/1.1", 8) == 0,
          "client alpn");
    CHECK(!op_tls_conn_resumed(pr.srv), "full handshake is not resumed");
    char cn[128];
    peer_cn(&pr, cn, sizeof(cn));
    CHECK(strcmp(cn, "localhost") == 0, "cn %s", cn);
    printf("  %s %s alpn=%s\n", op_tls_conn_version(pr.srv), op_tls_conn_cipher(pr.srv), alpn ? alpn : "-");
    pair_free(&pr);
}

/* The client's Finished and its first data arrive in one input; the server's first flight is one out()
 * call; a HelloRetryRequest (client key share for a group we do not take) works. */
static void test_handshake_shapes(struct op_tls_ctx *ctx)
{
    for (int v = 12; v <= 13; v++) {
        printf("TLS 1.%d: server flight in one out() call; Finished + data in one input\n", v - 10);
        struct pair pr;
        struct cli_opts o = {.version = v, .sni = "localhost"};
        CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
        int r = wolfSSL_connect(pr.cli);
        CHECK(pump(&pr) == OP_TLS_WANT, "after hello");
        CHECK(pr.out_calls == 1, "first flight in %d out() calls", pr.out_calls);
        for (int i = 0; i < 10 && r != WOLFSSL_SUCCESS; i++) {
            r = wolfSSL_connect(pr.cli);
            if (r != WOLFSSL_SUCCESS) /* TLS 1.2: the server completes first */
                CHECK(pump(&pr) == (v == 13 ? OP_TLS_WANT : OP_TLS_OPEN), "mid handshake");
        }
        CHECK(r == WOLFSSL_SUCCESS, "client done");
        cli_write(&pr, "first", 5);
        pr.max_chunk = 100000; /* one input */
        CHECK(pump(&pr) == OP_TLS_OPEN, "open with data: %s", op_tls_conn_error(pr.srv));
        CHECK(pr.srv_plain.len == 5 && memcmp(pr.srv_plain.p, "first", 5) == 0,
              "data delivered in that call");
        pair_free(&pr);
    }
    printf("TLS 1.3 HelloRetryRequest (client key share P-521, we take X25519/P-256/P-384)\n");
    struct pair pr;
    struct cli_opts o = {.version = 13, .sni = "localhost"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    int groups[] = {WOLFSSL_ECC_SECP521R1, WOLFSSL_ECC_SECP256R1};
    CHECK(wolfSSL_set_groups(pr.cli, groups, 2) == WOLFSSL_SUCCESS, "client groups");
    CHECK(handshake(&pr) == 0, "handshake with HRR: %s", op_tls_conn_error(pr.srv));
    cli_write(&pr, "x", 1);
    CHECK(pump(&pr) == OP_TLS_OPEN && pr.srv_plain.len == 1, "data after HRR");
    pair_free(&pr);
    printf("no common group -> failure\n");
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    int g521[] = {WOLFSSL_ECC_SECP521R1};
    CHECK(wolfSSL_set_groups(pr.cli, g521, 1) == WOLFSSL_SUCCESS, "client groups");
    CHECK(handshake(&pr) == -1, "P-521 only must fail");
    printf("  %s\n", op_tls_conn_error(pr.srv));
    pair_free(&pr);
}

static void test_data(struct op_tls_ctx *ctx, int version)
{
    printf("TLS %s: app data both ways (1 MiB in odd pieces, single bytes, random input splits)\n",
           version == 12 ? "1.2" : "1.3");
    struct pair pr;
    struct cli_opts o = {.version = version, .sni = "localhost", .verify_host = true};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake: %s", op_tls_conn_error(pr.srv));
    CHECK(op_tls_conn_error(pr.srv)[0] == '\0', "no error: %s", op_tls_conn_error(pr.srv));
    const char *want = version == 12 ? "TLSv1.2" : "TLSv1.3";
    CHECK(strcmp(op_tls_conn_version(pr.srv), want) == 0, "version %s", op_tls_conn_version(pr.srv));
    if (version == 12)
        CHECK(strncmp(op_tls_conn_cipher(pr.srv), "ECDHE-ECDSA-", 12) == 0, "cipher %s",
              op_tls_conn_cipher(pr.srv));

    size_t total = 1 << 20;
    uint8_t *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)rnd(256);

    /* client -> server: odd-sized writes, fed to the server in random splits (1..max_chunk) */
    size_t off = 0;
    while (off < total) {
        size_t n = 1 + rnd(7919);
        if (n > total - off) n = total - off;
        cli_write(&pr, data + off, n);
        off += n;
        if (rnd(4) == 0) {
            pr.max_chunk = rnd(2) ? 1 : 20000;
            CHECK(pump(&pr) == OP_TLS_OPEN, "pump: %s", op_tls_conn_error(pr.srv));
        }
    }
    CHECK(pump(&pr) == OP_TLS_OPEN, "pump: %s", op_tls_conn_error(pr.srv));
    CHECK(pr.srv_plain.len == total && memcmp(pr.srv_plain.p, data, total) == 0,
          "server got %zu of %zu bytes", pr.srv_plain.len, total);

    /* single bytes, each fed one byte at a time */
    buf_reset(&pr.srv_plain);
    pr.max_chunk = 1;
    for (int i = 0; i < 50; i++) {
        cli_write(&pr, data + i, 1);
        CHECK(pump(&pr) == OP_TLS_OPEN, "pump");
    }
    CHECK(pr.srv_plain.len == 50 && memcmp(pr.srv_plain.p, data, 50) == 0, "single bytes");

    /* server -> client: 1 MiB in one call, then odd pieces, then single bytes */
    CHECK(op_tls_conn_write(pr.srv, data, total) == 0, "write 1MiB: %s", op_tls_conn_error(pr.srv));
    CHECK(cli_drain(&pr) == WOLFSSL_ERROR_WANT_READ, "drain");
    CHECK(pr.cli_plain.len == total && memcmp(pr.cli_plain.p, data, total) == 0, "client got %zu",
          pr.cli_plain.len);
    buf_reset(&pr.cli_plain);
    off = 0;
    while (off < total) {
        size_t n = 1 + rnd(40000);
        if (n > total - off) n = total - off;
        CHECK(op_tls_conn_write(pr.srv, data + off, n) == 0, "write");
        off += n;
        if (rnd(3) == 0) cli_drain(&pr);
    }
    for (int i = 0; i < 10; i++)
        CHECK(op_tls_conn_write(pr.srv, data + i, 1) == 0, "write 1");
    CHECK(op_tls_conn_write(pr.srv, data, 0) == 0, "write 0");
    cli_drain(&pr);
    CHECK(pr.cli_plain.len == total + 10 && memcmp(pr.cli_plain.p, data, total) == 0 &&
              memcmp(pr.cli_plain.p + total, data, 10) == 0,
          "client got %zu", pr.cli_plain.len);

    /* records never exceed 16 KiB of plaintext: a 16 KiB + 1 write makes two records */
    buf_reset(&pr.s2c);
    CHECK(op_tls_conn_write(pr.srv, data, 16385) == 0, "write 16385");
    size_t recs = 0;
    for (size_t p = 0; p + 5 <= pr.s2c.len; recs++)
        p += 5 + ((size_t)pr.s2c.p[p + 3] << 8 | pr.s2c.p[p + 4]);
    CHECK(recs == 2, "records: %zu", recs);
    buf_reset(&pr.s2c);

    /* close_notify from the client */
    int r = wolfSSL_shutdown(pr.cli);
    CHECK(r == WOLFSSL_SHUTDOWN_NOT_DONE || r == WOLFSSL_SUCCESS, "client shutdown %d", r);
    CHECK(pump(&pr) == OP_TLS_PEER_CLOSED, "peer closed: %d %s", pr.srv_status, op_tls_conn_error(pr.srv));
    CHECK(strcmp(op_tls_conn_state_str(pr.srv), "peer-closed") == 0, "state %s",
          op_tls_conn_state_str(pr.srv));
    CHECK(!op_tls_conn_is_open(pr.srv), "not open after close_notify");
    CHECK(op_tls_conn_input(pr.srv, NULL, 0, srv_plain, &pr) == OP_TLS_PEER_CLOSED, "stays closed");
    size_t before = pr.s2c.len;
    CHECK(op_tls_conn_write(pr.srv, (const uint8_t *)"late", 4) == 0 && pr.s2c.len > before,
          "write after the peer's close_notify (half-close): %s", op_tls_conn_error(pr.srv));
    /* and ours back */
    buf_reset(&pr.s2c);
    CHECK(op_tls_conn_shutdown(pr.srv) == 0, "server shutdown: %s", op_tls_conn_error(pr.srv));
    /* an alert record in TLS 1.2; TLS 1.3 hides it behind the application_data type */
    CHECK(pr.s2c.len > 0 && pr.s2c.p[0] == (version == 12 ? 0x15 : 0x17), "close_notify record");
    CHECK(op_tls_conn_shutdown(pr.srv) == 0, "second shutdown is a no-op");
    free(data);
    pair_free(&pr);
}

static void test_key_update(struct op_tls_ctx *ctx)
{
    printf("TLS 1.3 KeyUpdate from the client is answered through out()\n");
    struct pair pr;
    struct cli_opts o = {.version = 13, .sni = "localhost"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake");
    cli_drain(&pr); /* NewSessionTicket */
    for (int i = 0; i < 3; i++) {
        CHECK(wolfSSL_update_keys(pr.cli) == WOLFSSL_SUCCESS, "update_keys");
        cli_write(&pr, "after", 5);
        size_t before = pr.s2c.len;
        buf_reset(&pr.srv_plain);
        CHECK(pump(&pr) == OP_TLS_OPEN, "pump: %s", op_tls_conn_error(pr.srv));
        CHECK(pr.srv_plain.len == 5, "data under the new client key");
        CHECK(pr.s2c.len > before, "server answered with its own KeyUpdate");
        CHECK(op_tls_conn_write(pr.srv, (const uint8_t *)"reply", 5) == 0, "write");
        buf_reset(&pr.cli_plain);
        cli_drain(&pr);
        CHECK(pr.cli_plain.len == 5 && memcmp(pr.cli_plain.p, "reply", 5) == 0,
              "client reads the new server key");
    }
    pair_free(&pr);
}

static void test_server_close(struct op_tls_ctx *ctx)
{
    printf("server close_notify reaches the client\n");
    struct pair pr;
    struct cli_opts o = {.sni = "localhost"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake");
    CHECK(op_tls_conn_write(pr.srv, (const uint8_t *)"bye", 3) == 0, "write");
    CHECK(op_tls_conn_shutdown(pr.srv) == 0, "shutdown");
    int e = cli_drain(&pr);
    CHECK(e == WOLFSSL_ERROR_ZERO_RETURN, "client sees close_notify: %d", e);
    CHECK(pr.cli_plain.len == 3 && memcmp(pr.cli_plain.p, "bye", 3) == 0, "data before close");
    pair_free(&pr);
}

/* A TLS 1.2 client offering a ticket the server cannot decrypt. wolfSSL's own client cannot be used to
 * finish that handshake: it takes any ServerHello as a resumption when it sent a ticket
 * (DSH_CheckSessionId), while RFC 5077 clients (OpenSSL, browsers) compare the session ID or look at
 * the next message. So check the server's answer on the wire: a ServerHello that does not echo the
 * client's session ID, followed by a Certificate message, i.e. a full handshake. (Checked by hand with
 * openssl s_client -sess_in against a restarted server too: "New, TLSv1.2".) */
static void stale_ticket_tls12(struct op_tls_ctx *ctx, WOLFSSL_SESSION *sess)
{
    struct pair pr;
    struct cli_opts o = {.version = 12, .sni = "localhost", .resume = sess};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    wolfSSL_connect(pr.cli);
    const uint8_t *ch = pr.c2s.p;
    CHECK(pr.c2s.len > 44 && ch[0] == 0x16 && ch[5] == 1, "client hello");
    uint8_t cid[32];
    size_t cid_len = ch[43]; /* wolfSSL sends an empty one with a ticket */
    CHECK(cid_len <= 32, "client session id length %zu", cid_len);
    memcpy(cid, ch + 44, cid_len > 32 ? 32 : cid_len);
    CHECK(pump(&pr) == OP_TLS_WANT, "server waits for the key exchange: %s", op_tls_conn_error(pr.srv));
    const uint8_t *sh = pr.s2c.p;
    CHECK(pr.s2c.len > 44 && sh[0] == 0x16 && sh[5] == 2, "server hello");
    size_t sid_len = sh[43];
    CHECK(cid_len == 0 || sid_len != cid_len || memcmp(sh + 44, cid, cid_len) != 0, "session id not echoed");
    /* walk the handshake messages of the flight */
    bool cert = false;
    for (size_t p = 0; p + 5 <= pr.s2c.len;) {
        size_t rl = (size_t)pr.s2c.p[p + 3] << 8 | pr.s2c.p[p + 4];
        for (size_t q = p + 5; q + 4 <= p + 5 + rl && q + 4 <= pr.s2c.len;) {
            if (pr.s2c.p[q] == 11) cert = true;
            q += 4 + ((size_t)pr.s2c.p[q + 1] << 16 | (size_t)pr.s2c.p[q + 2] << 8 | pr.s2c.p[q + 3]);
        }
        p += 5 + rl;
    }
    CHECK(cert, "full handshake: Certificate sent");
    CHECK(!op_tls_conn_resumed(pr.srv), "not resumed");
    pair_free(&pr);
}

/* Full handshake, exchange data (so the client processes the TLS 1.3 NewSessionTicket), then resume. */
static void test_resume(struct op_tls_ctx *ctx, struct op_tls_ctx *ctx2, int version, const char *sni,
                        bool expect_resume)
{
    printf("TLS %s resumption via ticket (sni=%s)%s\n", version == 12 ? "1.2" : "1.3", sni ? sni : "-",
           expect_resume ? "" : ": expecting a full handshake");
    struct pair pr;
    struct cli_opts o = {.version = version, .sni = sni, .verify_host = true};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake: %s", op_tls_conn_error(pr.srv));
    CHECK(!op_tls_conn_resumed(pr.srv), "first is full");
    cli_write(&pr, "ping", 4);
    CHECK(pump(&pr) == OP_TLS_OPEN, "pump");
    CHECK(op_tls_conn_write(pr.srv, (const uint8_t *)"pong", 4) == 0, "write");
    cli_drain(&pr);
    CHECK(pr.cli_plain.len == 4, "pong");
    WOLFSSL_SESSION *sess = wolfSSL_get1_session(pr.cli);
    CHECK(sess != NULL, "client session");
    char cn1[128];
    peer_cn(&pr, cn1, sizeof(cn1));
    pair_free(&pr);

    if (version == 12 && !expect_resume && wolfSSL_SESSION_has_ticket(sess)) {
        stale_ticket_tls12(ctx2 ? ctx2 : ctx, sess);
        printf("  second connection: full handshake (checked on the wire)\n");
        wolfSSL_SESSION_free(sess);
        return;
    }
    struct pair p2;
    o.resume = sess;
    CHECK(pair_init(&p2, ctx2 ? ctx2 : ctx, &o) == 0, "pair_init 2");
    CHECK(handshake(&p2) == 0, "resumed handshake: %s", op_tls_conn_error(p2.srv));
    CHECK(op_tls_conn_resumed(p2.srv) == expect_resume, "server resumed=%d", op_tls_conn_resumed(p2.srv));
    CHECK((wolfSSL_session_reused(p2.cli) == 1) == expect_resume, "client reused=%d",
          wolfSSL_session_reused(p2.cli));
    cli_write(&p2, "again", 5);
    CHECK(pump(&p2) == OP_TLS_OPEN && p2.srv_plain.len == 5, "data after resumption");
    if (!expect_resume) {
        char cn2[128];
        peer_cn(&p2, cn2, sizeof(cn2));
        CHECK(strcmp(cn1, cn2) == 0, "same cert %s %s", cn1, cn2);
    }
    printf("  second connection: %s %s resumed=%d\n", op_tls_conn_version(p2.srv), op_tls_conn_cipher(p2.srv),
           op_tls_conn_resumed(p2.srv));
    pair_free(&p2);
    wolfSSL_SESSION_free(sess);
}

/* One connection on ctx a, then resume on b; returns b's session (for chaining), NULL on failure. */
static WOLFSSL_SESSION *resume_step(struct op_tls_ctx *ctx, WOLFSSL_SESSION *sess, int version, bool expect)
{
    if (version == 12 && !expect && sess && wolfSSL_SESSION_has_ticket(sess)) {
        stale_ticket_tls12(ctx, sess);
        return NULL;
    }
    struct pair pr;
    struct cli_opts o = {.version = version, .sni = "localhost", .verify_host = true, .resume = sess};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake (resume=%d expect=%d): %s", sess != NULL, expect,
          op_tls_conn_error(pr.srv));
    CHECK(op_tls_conn_resumed(pr.srv) == expect, "resumed=%d want %d", op_tls_conn_resumed(pr.srv), expect);
    cli_write(&pr, "ping", 4);
    CHECK(pump(&pr) == OP_TLS_OPEN, "pump");
    CHECK(op_tls_conn_write(pr.srv, (const uint8_t *)"pong", 4) == 0, "write");
    cli_drain(&pr);
    WOLFSSL_SESSION *out = wolfSSL_get1_session(pr.cli);
    pair_free(&pr);
    return out;
}

static void test_reload_tickets(const struct op_tls_config *cfg)
{
    for (int v = 12; v <= 13; v++) {
        printf("TLS 1.%d reload: tickets of the previous ctx still resume, older ones do not\n", v - 10);
        struct op_tls_ctx *g1 = make_ctx(cfg), *g2 = make_ctx(cfg), *g3 = make_ctx(cfg);
        if (!g1 || !g2 || !g3) return;
        op_tls_ctx_inherit_tickets(g2, g1);
        op_tls_ctx_inherit_tickets(g3, g2);
        WOLFSSL_SESSION *s1 = resume_step(g1, NULL, v, false);
        WOLFSSL_SESSION *s2 = resume_step(g2, s1, v, true); /* g1's ticket accepted by g2 */
        /* TLS 1.3: the ticket g2 issued is accepted by g3; TLS 1.2: the client still holds g1's ticket */
        WOLFSSL_SESSION *s3 = resume_step(g3, s2, v, v == 13);
        WOLFSSL_SESSION *s4 = resume_step(g3, s1, v, false); /* two generations old: full handshake */
        wolfSSL_SESSION_free(s1);
        wolfSSL_SESSION_free(s2);
        wolfSSL_SESSION_free(s3);
        wolfSSL_SESSION_free(s4);
        op_tls_ctx_unref(g1);
        op_tls_ctx_unref(g2);
        op_tls_ctx_unref(g3);
    }
}

static void sni_case(struct op_tls_ctx *ctx, int version, const char *sni, const char *want_cn,
                     const char *want_cipher_prefix)
{
    struct pair pr;
    /* verify the host name only when the expected cert covers it */
    bool match =
        sni && want_cn && (strcmp(sni, want_cn) == 0 || (want_cn[0] == '*' && strstr(sni, want_cn + 1)));
    struct cli_opts o = {.version = version, .sni = sni, .verify_host = match};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake sni=%s: %s", sni ? sni : "-", op_tls_conn_error(pr.srv));
    char cn[128];
    peer_cn(&pr, cn, sizeof(cn));
    CHECK(strcmp(cn, want_cn) == 0, "sni=%s got cert %s, want %s", sni ? sni : "-", cn, want_cn);
    if (want_cipher_prefix)
        CHECK(strncmp(op_tls_conn_cipher(pr.srv), want_cipher_prefix, strlen(want_cipher_prefix)) == 0,
              "cipher %s", op_tls_conn_cipher(pr.srv));
    const char *got = op_tls_conn_sni(pr.srv);
    CHECK((sni == NULL && got == NULL) || (sni && got && strcmp(got, sni) == 0), "conn_sni %s",
          got ? got : "(null)");
    printf("  sni=%-18s -> cert CN=%-12s %s %s\n", sni ? sni : "(none)", cn, op_tls_conn_version(pr.srv),
           op_tls_conn_cipher(pr.srv));
    /* app data works on the switched certificate too */
    cli_write(&pr, "hi", 2);
    CHECK(pump(&pr) == OP_TLS_OPEN && pr.srv_plain.len == 2, "data");
    pair_free(&pr);
}

static void test_sni(struct op_tls_ctx *multi)
{
    printf("SNI picks the certificate (exact, wildcard one label, case-insensitive, default fallback)\n");
    sni_case(multi, 0, "localhost", "localhost", "TLS13");
    sni_case(multi, 0, "foo.apps.test", "*.apps.test", NULL);
    sni_case(multi, 0, "FOO.Apps.Test", "*.apps.test", NULL);
    sni_case(multi, 0, "a.b.apps.test", "localhost", NULL); /* wildcard covers one label only */
    sni_case(multi, 0, "apps.test", "localhost", NULL);
    sni_case(multi, 0, "rsa.test", "rsa.test", NULL);
    sni_case(multi, 12, "rsa.test", "rsa.test", "ECDHE-RSA-");
    sni_case(multi, 12, "foo.apps.test", "*.apps.test", "ECDHE-ECDSA-");
    sni_case(multi, 0, "chain.test", "chain.test", NULL); /* client trusts only the root: chain was sent */
    sni_case(multi, 0, "unknown.example", "localhost", NULL);
    sni_case(multi, 0, NULL, "localhost", NULL);
}

static void test_alpn(struct op_tls_ctx *ctx)
{
    printf("ALPN: a client without a matching protocol proceeds without ALPN; no ALPN at all works\n");
    struct pair pr;
    struct cli_opts o = {.sni = "localhost", .alpn = "h2"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake with alpn h2 only: %s", op_tls_conn_error(pr.srv));
    CHECK(op_tls_conn_alpn(pr.srv) == NULL, "no alpn selected");
    pair_free(&pr);
    o = (struct cli_opts){.sni = "localhost", .no_alpn = true};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake without alpn: %s", op_tls_conn_error(pr.srv));
    CHECK(op_tls_conn_alpn(pr.srv) == NULL, "no alpn");
    pair_free(&pr);
    o = (struct cli_opts){.sni = "localhost", .alpn = "h2,http/1.1"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake: %s", op_tls_conn_error(pr.srv));
    const char *a = op_tls_conn_alpn(pr.srv);
    CHECK(a && strcmp(a, "http/1.1") == 0, "alpn %s", a ? a : "(null)");
    pair_free(&pr);
}

static bool has_alert(const struct buf *b)
{
    for (size_t p = 0; p + 5 <= b->len; p += 5 + ((size_t)b->p[p + 3] << 8 | b->p[p + 4]))
        if (b->p[p] == 0x15) return true;
    return false;
}

static void test_garbage(struct op_tls_ctx *ctx)
{
    printf("garbage input -> OP_TLS_ERROR with an alert\n");
    /* 1. plain HTTP instead of a ClientHello */
    struct pair pr;
    struct cli_opts o = {.sni = "localhost"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(strcmp(op_tls_conn_state_str(pr.srv), "hello") == 0, "state %s", op_tls_conn_state_str(pr.srv));
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    int st = op_tls_conn_input(pr.srv, (const uint8_t *)http, strlen(http), srv_plain, &pr);
    CHECK(st == OP_TLS_ERROR, "http: %d", st);
    CHECK(strcmp(op_tls_conn_state_str(pr.srv), "failed") == 0, "state %s", op_tls_conn_state_str(pr.srv));
    CHECK(op_tls_conn_error(pr.srv)[0] != '\0', "error text");
    CHECK(op_tls_conn_version(pr.srv)[0] == '\0' && op_tls_conn_cipher(pr.srv)[0] == '\0',
          "no version/cipher");
    printf("  plain HTTP: %s (alert bytes: %zu)\n", op_tls_conn_error(pr.srv), pr.s2c.len);
    CHECK(op_tls_conn_input(pr.srv, (const uint8_t *)"x", 1, srv_plain, &pr) == OP_TLS_ERROR, "stays failed");
    CHECK(op_tls_conn_write(pr.srv, (const uint8_t *)"x", 1) == -EIO, "write after failure");
    CHECK(op_tls_conn_shutdown(pr.srv) == -EIO, "shutdown after failure");
    pair_free(&pr);

    /* 2. a well-framed handshake record full of garbage */
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    uint8_t rec[5 + 64] = {0x16, 0x03, 0x01, 0x00, 64, 0x01, 0x00, 0x00, 60, 0x03, 0x03};
    for (size_t i = 11; i < sizeof(rec); i++)
        rec[i] = (uint8_t)rnd(256);
    st = op_tls_conn_input(pr.srv, rec, sizeof(rec), srv_plain, &pr);
    CHECK(st == OP_TLS_ERROR, "bad hello: %d", st);
    CHECK(has_alert(&pr.s2c), "alert sent for a bad ClientHello");
    CHECK(pr.opened == 0, "no opened() for a failed handshake");
    printf("  bad ClientHello: %s\n", op_tls_conn_error(pr.srv));
    pair_free(&pr);

    /* 3. a corrupted application record after the handshake */
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake");
    size_t before = pr.s2c.len; /* the NewSessionTicket the client has not read yet */
    cli_write(&pr, "hello world", 11);
    pr.c2s.p[pr.c2s.len - 3] ^= 0x55;
    CHECK(pump(&pr) == OP_TLS_ERROR, "tampered record");
    CHECK(pr.s2c.len > before, "something sent for a tampered record");
    cli_drain(&pr); /* the client decrypts the alert */
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    wolfSSL_get_alert_history(pr.cli, &h);
    CHECK(h.last_rx.code == 20 && h.last_rx.level == 2, "client got fatal bad_record_mac: %d/%d",
          h.last_rx.level, h.last_rx.code);
    CHECK(pr.srv_plain.len == 0, "nothing delivered");
    printf("  tampered record: %s\n", op_tls_conn_error(pr.srv));
    pair_free(&pr);
}

static void test_failures(struct op_tls_ctx *ctx)
{
    printf("out() failure fails the session; plain() stop ends input but keeps the write side\n");
    struct pair pr;
    struct cli_opts o = {.sni = "localhost"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    pr.out_fail = true;
    CHECK(handshake(&pr) == -1, "handshake must fail");
    CHECK(pr.srv_status == OP_TLS_ERROR && strstr(op_tls_conn_error(pr.srv), "output"), "err %s",
          op_tls_conn_error(pr.srv));
    pair_free(&pr);

    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake");
    pr.out_fail = true;
    CHECK(op_tls_conn_write(pr.srv, (const uint8_t *)"abc", 3) == -EIO, "write with failing out()");
    CHECK(op_tls_conn_shutdown(pr.srv) == -EIO, "shutdown after a failed write");
    pair_free(&pr);

    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "handshake");
    pr.plain_stop = true;
    cli_write(&pr, "abc", 3);
    CHECK(pump(&pr) == OP_TLS_ERROR && strstr(op_tls_conn_error(pr.srv), "application"), "plain stop: %s",
          op_tls_conn_error(pr.srv));
    CHECK(!op_tls_conn_is_open(pr.srv), "not open after stop");
    CHECK(strcmp(op_tls_conn_state_str(pr.srv), "read-stopped") == 0, "state %s",
          op_tls_conn_state_str(pr.srv));
    cli_write(&pr, "more", 4);
    CHECK(pump(&pr) == OP_TLS_ERROR, "input stays stopped");
    /* the write side still works: an error response, then close_notify */
    CHECK(op_tls_conn_write(pr.srv, (const uint8_t *)"400", 3) == 0, "write after stop: %s",
          op_tls_conn_error(pr.srv));
    CHECK(op_tls_conn_shutdown(pr.srv) == 0, "shutdown after stop");
    CHECK(cli_drain(&pr) == WOLFSSL_ERROR_ZERO_RETURN, "client sees close_notify");
    CHECK(pr.cli_plain.len == 3 && memcmp(pr.cli_plain.p, "400", 3) == 0, "client got the response");
    pair_free(&pr);
}

/* The ClientHello SNI reader on a real hello: every prefix, every bit flip, random bytes (ASan checks
 * the bounds: each input is an exact-size heap copy). */
static void test_sni_parser(struct op_tls_ctx *ctx)
{
    printf("op_tls_sni_from_hello: real hello, all prefixes, mutations\n");
    struct pair pr;
    struct cli_opts o = {.sni = "Some.Host.apps.test"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    wolfSSL_connect(pr.cli);
    size_t n = pr.c2s.len;
    CHECK(n > 100, "hello %zu bytes", n);
    char name[256];
    ssize_t r = op_tls_sni_from_hello(pr.c2s.p, n, name, sizeof(name));
    CHECK(r == 19 && strcmp(name, "Some.Host.apps.test") == 0, "full hello: %zd", r);
    CHECK(op_tls_sni_from_hello(pr.c2s.p, n, name, 8) == -EINVAL, "name too long for out");
    for (size_t k = 0; k < n; k++) {
        uint8_t *cp = malloc(k ? k : 1);
        memcpy(cp, pr.c2s.p, k);
        r = op_tls_sni_from_hello(cp, k, name, sizeof(name));
        CHECK(r == -EAGAIN, "prefix %zu: %zd", k, r);
        free(cp);
    }
    int found = 0;
    for (int it = 0; it < 20000; it++) {
        uint8_t *cp = malloc(n);
        memcpy(cp, pr.c2s.p, n);
        int flips = 1 + (int)rnd(4);
        for (int f = 0; f < flips; f++)
            cp[rnd((uint32_t)n)] ^= (uint8_t)(1u << rnd(8));
        size_t len = rnd(3) ? n : 5 + rnd((uint32_t)n - 4);
        r = op_tls_sni_from_hello(cp, len, name, sizeof(name));
        CHECK((r > 0 && r <= 255) || r == 0 || r == -EAGAIN || r == -EINVAL || r == -EMSGSIZE,
              "mutation: %zd", r);
        if (r > 0) {
            found++;
            CHECK(strlen(name) == (size_t)r, "name length %zu, result %zd", strlen(name), r);
        }
        free(cp);
    }
    for (int it = 0; it < 5000; it++) {
        size_t len = 1 + rnd(600);
        uint8_t *cp = malloc(len);
        for (size_t i = 0; i < len; i++)
            cp[i] = (uint8_t)rnd(256);
        if (len > 5 && rnd(2)) {
            cp[0] = 0x16;
            cp[1] = 3;
            cp[3] = (uint8_t)((len - 5) >> 8);
            cp[4] = (uint8_t)(len - 5);
            cp[5] = 1;
        }
        r = op_tls_sni_from_hello(cp, len, name, sizeof(name));
        CHECK(r >= -EMSGSIZE && r <= 255 && (r <= 0 || strlen(name) == (size_t)r), "random: %zd", r);
        free(cp);
    }
    printf("  %zu-byte hello; %d of 20000 mutants still yield a name\n", n, found);
    pair_free(&pr);

    printf("a ClientHello fed one byte at a time still selects the SNI certificate\n");
    struct op_tls_cert c[2] = {{path("server.pem"), path("server.key")},
                               {path("wild.pem"), path("wild.key")}};
    struct op_tls_config cfg = {.certs = c, .ncerts = 2};
    struct op_tls_ctx *two = make_ctx(&cfg);
    if (!two) return;
    o = (struct cli_opts){.sni = "one.apps.test", .verify_host = true};
    CHECK(pair_init(&pr, two, &o) == 0, "pair_init");
    pr.max_chunk = 1;
    CHECK(handshake(&pr) == 0, "handshake: %s", op_tls_conn_error(pr.srv));
    char cn[128];
    peer_cn(&pr, cn, sizeof(cn));
    CHECK(strcmp(cn, "*.apps.test") == 0, "cn %s", cn);
    pair_free(&pr);
    /* hello split in two pieces, the second also carrying nothing else */
    CHECK(pair_init(&pr, two, &o) == 0, "pair_init");
    wolfSSL_connect(pr.cli);
    size_t half = pr.c2s.len / 2;
    CHECK(op_tls_conn_input(pr.srv, pr.c2s.p, half, srv_plain, &pr) == OP_TLS_WANT, "first half");
    CHECK(pr.s2c.len == 0, "nothing sent yet");
    CHECK(op_tls_conn_input(pr.srv, NULL, 0, srv_plain, &pr) == OP_TLS_WANT, "empty drive");
    CHECK(op_tls_conn_input(pr.srv, pr.c2s.p + half, pr.c2s.len - half, srv_plain, &pr) == OP_TLS_WANT,
          "second");
    CHECK(pr.s2c.len > 0, "server flight sent");
    buf_reset(&pr.c2s);
    CHECK(handshake(&pr) == 0, "handshake: %s", op_tls_conn_error(pr.srv));
    peer_cn(&pr, cn, sizeof(cn));
    CHECK(strcmp(cn, "*.apps.test") == 0, "cn %s", cn);
    pair_free(&pr);
    op_tls_ctx_unref(two);
}

/* Patches a real TLS 1.2 ClientHello: kind 0 -> client_version TLS 1.1; kind 1 -> only NULL/anon/CBC
 * suites. The server must refuse with a fatal alert (protocol_version 70 / handshake_failure 40). */
static void refuse_case(struct op_tls_ctx *ctx, int kind)
{
    struct pair pr;
    struct cli_opts o = {.version = 12, .sni = "localhost"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    wolfSSL_connect(pr.cli);
    uint8_t *ch = pr.c2s.p;
    CHECK(pr.c2s.len > 60 && ch[0] == 0x16 && ch[5] == 1 && ch[9] == 3 && ch[10] == 3, "tls1.2 hello");
    if (kind == 0) {
        ch[10] = 2; /* TLS 1.1 */
    } else {
        size_t off = 44 + ch[43];
        size_t n = (size_t)ch[off] << 8 | ch[off + 1];
        /* TLS_RSA_WITH_NULL_SHA256, TLS_ECDH_anon_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_128_CBC_SHA,
         * TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA */
        static const uint8_t bad[][2] = {{0x00, 0x3b}, {0xc0, 0x18}, {0x00, 0x2f}, {0xc0, 0x09}};
        for (size_t i = 0; i + 1 < n; i += 2)
            memcpy(ch + off + 2 + i, bad[(i / 2) % 4], 2);
    }
    CHECK(pump(&pr) == OP_TLS_ERROR, "refused");
    bool alert = pr.s2c.len >= 7 && pr.s2c.p[0] == 0x15 && pr.s2c.p[5] == 2;
    int code = pr.s2c.len >= 7 ? pr.s2c.p[6] : -1;
    CHECK(alert && code == (kind == 0 ? 70 : 40), "fatal alert %d", code);
    printf("  %s -> alert %d, %s\n", kind == 0 ? "TLS 1.1 hello" : "NULL/anon/CBC-only hello", code,
           op_tls_conn_error(pr.srv));
    pair_free(&pr);
}

static void test_refuse(struct op_tls_ctx *ctx)
{
    printf("TLS 1.1 and NULL/anon/CBC-only ClientHellos are refused with an alert\n");
    refuse_case(ctx, 0);
    refuse_case(ctx, 1);
}

/* A TLS 1.2 ClientHello with 200 cipher suites: 199 unassigned ids (0x0a00..0x0ac6) and then the real
 * client's own list. wolfSSL's default limit (150 suites) refused such a hello with an alert; the server
 * must answer with a ServerHello. The transcript no longer matches the client's, so the test stops at
 * the ServerHello. */
static void test_long_suite_list(struct op_tls_ctx *ctx)
{
    printf("a ClientHello with 200 cipher suites gets a ServerHello\n");
    struct pair pr;
    struct cli_opts o = {.version = 12, .sni = "localhost"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    wolfSSL_connect(pr.cli);
    const uint8_t *ch = pr.c2s.p;
    size_t len = pr.c2s.len;
    CHECK(len > 60 && ch[0] == 0x16 && ch[5] == 1 && len == 5 + ((size_t)ch[3] << 8 | ch[4]), "tls1.2 hello");
    size_t off = 44 + ch[43]; /* the cipher suites length, after the session id */
    size_t n = (size_t)ch[off] << 8 | ch[off + 1];
    size_t extra = 2 * (200 - n / 2);
    CHECK(n / 2 < 200 && n % 2 == 0, "client offers %zu suites", n / 2);
    uint8_t *big = malloc(len + extra);
    memcpy(big, ch, off);
    size_t rec = len - 5 + extra, hs = rec - 4, suites = n + extra;
    big[3] = (uint8_t)(rec >> 8), big[4] = (uint8_t)rec;
    big[6] = (uint8_t)(hs >> 16), big[7] = (uint8_t)(hs >> 8), big[8] = (uint8_t)hs;
    big[off] = (uint8_t)(suites >> 8), big[off + 1] = (uint8_t)suites;
    for (size_t i = 0; i < extra / 2; i++)
        big[off + 2 + 2 * i] = 0x0a, big[off + 3 + 2 * i] = (uint8_t)i;
    memcpy(big + off + 2 + extra, ch + off + 2, len - off - 2);
    int st = op_tls_conn_input(pr.srv, big, len + extra, srv_plain, &pr);
    bool server_hello = pr.s2c.len > 9 && pr.s2c.p[0] == 0x16 && pr.s2c.p[5] == 2;
    CHECK(st == OP_TLS_WANT && server_hello, "200-suite hello: status %d, %s, first byte 0x%02x", st,
          op_tls_conn_error(pr.srv), pr.s2c.len ? pr.s2c.p[0] : 0);
    printf("  %zu-byte hello with 200 suites -> %s\n", len + extra, server_hello ? "ServerHello" : "refused");
    free(big);
    pair_free(&pr);
}

/* TLS 1.2 key exchange uses only the configured groups (X25519, P-256, P-384): a client offering only
 * secp521r1 is refused (wolfSSL would otherwise negotiate any curve it was built with), and each
 * configured group alone succeeds with the ServerKeyExchange naming that group. */
static void tls12_group_case(struct op_tls_ctx *ctx, int group, const char *want_curve)
{
    struct pair pr;
    struct cli_opts o = {.version = 12, .sni = "localhost"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(wolfSSL_UseSupportedCurve(pr.cli, (word16)group) == WOLFSSL_SUCCESS, "client group %#x", group);
    int r = handshake(&pr);
    CHECK((r == 0) == (want_curve != NULL), "TLS 1.2 with only group %#x: %s (%s)", group,
          r == 0 ? "negotiated" : "refused", op_tls_conn_error(pr.srv));
    if (r == 0) {
        const char *curve = wolfSSL_get_curve_name(pr.cli); /* the client's view of the key exchange */
        CHECK(want_curve && curve && strcmp(curve, want_curve) == 0, "curve %s, want %s", curve ? curve : "?",
              want_curve ? want_curve : "none");
        printf("  group %#x alone -> %s, curve %s\n", group, op_tls_conn_cipher(pr.srv), curve ? curve : "?");
    } else {
        printf("  group %#x alone -> refused: %s\n", group, op_tls_conn_error(pr.srv));
    }
    pair_free(&pr);
}

static void test_tls12_groups(struct op_tls_ctx *ctx)
{
    printf("TLS 1.2 negotiates only X25519, P-256 and P-384\n");
    tls12_group_case(ctx, WOLFSSL_ECC_SECP521R1, NULL);
    tls12_group_case(ctx, WOLFSSL_ECC_X25519, "X25519");
    tls12_group_case(ctx, WOLFSSL_ECC_SECP256R1, "SECP256R1");
    tls12_group_case(ctx, WOLFSSL_ECC_SECP384R1, "SECP384R1");
}

static void test_min13(void)
{
    printf("min_version 13 refuses a TLS 1.2-only client\n");
    struct op_tls_cert c = {path("server.pem"), path("server.key")};
    struct op_tls_config cfg = {.certs = &c, .ncerts = 1, .min_version = 13};
    struct op_tls_ctx *ctx = make_ctx(&cfg);
    if (!ctx) return;
    struct pair pr;
    struct cli_opts o = {.version = 12, .sni = "localhost"};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == -1, "tls1.2 client refused");
    CHECK(pr.srv_status == OP_TLS_ERROR, "server error");
    printf("  %s\n", op_tls_conn_error(pr.srv));
    pair_free(&pr);
    o.version = 13;
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    CHECK(handshake(&pr) == 0, "tls1.3 client ok");
    pair_free(&pr);
    op_tls_ctx_unref(ctx);
}

static void test_refcount(void)
{
    printf("ctx_unref while a conn lives keeps the ctx valid\n");
    struct op_tls_cert c[2] = {{path("server.pem"), path("server.key")},
                               {path("wild.pem"), path("wild.key")}};
    struct op_tls_config cfg = {.certs = c, .ncerts = 2};
    struct op_tls_ctx *ctx = make_ctx(&cfg);
    if (!ctx) return;
    struct pair pr;
    struct cli_opts o = {.sni = "x.apps.test", .verify_host = true};
    CHECK(pair_init(&pr, ctx, &o) == 0, "pair_init");
    op_tls_ctx_ref(ctx);
    op_tls_ctx_unref(ctx);
    op_tls_ctx_unref(ctx); /* the conn holds the last reference now */
    CHECK(handshake(&pr) == 0, "handshake after unref: %s", op_tls_conn_error(pr.srv));
    char cn[128];
    peer_cn(&pr, cn, sizeof(cn));
    CHECK(strcmp(cn, "*.apps.test") == 0, "cn %s", cn);
    cli_write(&pr, "abc", 3);
    CHECK(pump(&pr) == OP_TLS_OPEN && pr.srv_plain.len == 3, "data");
    pair_free(&pr); /* frees the ctx; ASan's leak check proves it */
}

struct thr_arg {
    struct op_tls_ctx *ctx;
    int ok;
};

static void *thr_main(void *p)
{
    struct thr_arg *a = p;
    static const char *names[] = {"localhost", "x.apps.test", "rsa.test", "chain.test"};
    uint8_t msg[3000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)i;
    for (int i = 0; i < 12; i++) {
        struct pair pr;
        struct cli_opts o = {.version = i % 3 == 0 ? 12 : 0, .sni = names[i % 4], .verify_host = true};
        if (pair_init(&pr, a->ctx, &o) != 0 || handshake(&pr) != 0) {
            pair_free(&pr);
            return NULL;
        }
        int r = wolfSSL_write(pr.cli, msg, (int)sizeof(msg));
        bool good = r == (int)sizeof(msg) && pump(&pr) == OP_TLS_OPEN && pr.srv_plain.len == sizeof(msg) &&
                    memcmp(pr.srv_plain.p, msg, sizeof(msg)) == 0 &&
                    op_tls_conn_write(pr.srv, msg, sizeof(msg)) == 0;
        if (good) {
            cli_drain(&pr);
            good = pr.cli_plain.len == sizeof(msg);
        }
        pair_free(&pr);
        if (!good) return NULL;
        a->ok++;
    }
    return NULL;
}

static void test_threads(struct op_tls_ctx *multi)
{
    printf("two threads share one ctx (handshakes, SNI, data)\n");
    pthread_t t[2];
    struct thr_arg a[2] = {{multi, 0}, {multi, 0}};
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, thr_main, &a[i]) == 0, "pthread_create");
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        CHECK(a[i].ok == 12, "thread %d: %d of 12 sessions ok", i, a[i].ok);
    }
}

static void test_no_tickets(void)
{
    struct op_tls_cert c = {path("server.pem"), path("server.key")};
    struct op_tls_config cfg = {.certs = &c, .ncerts = 1, .no_session_tickets = true};
    struct op_tls_ctx *ctx = make_ctx(&cfg);
    if (!ctx) return;
    test_resume(ctx, NULL, 13, "localhost", false);
    test_resume(ctx, NULL, 12, "localhost", false);
    op_tls_ctx_unref(ctx);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(g_dir, sizeof(g_dir), "/tmp/test_tls.XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    const char *root = getenv("OUTPOST_ROOT");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s/tests/lib/certs.sh %s", root ? root : ".", g_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "certs.sh failed\n");
        return 1;
    }
    fill_cert_paths();
    CHECK(op_tls_global_init() == 0, "init");
    CHECK(op_tls_global_init() == 0, "init twice");

    test_ctx_errors();

    struct op_tls_config one = {.certs = g_cert_paths, .ncerts = 1};
    struct op_tls_ctx *ctx = make_ctx(&one);
    struct op_tls_config all = {.certs = g_cert_paths, .ncerts = 4};
    struct op_tls_ctx *multi = make_ctx(&all);
    struct op_tls_ctx *reloaded = make_ctx(&one);
    if (ctx && multi && reloaded) {
        test_tls13_full(ctx);
        test_handshake_shapes(ctx);
        test_data(ctx, 13);
        test_data(ctx, 12);
        test_server_close(ctx);
        test_key_update(ctx);
        test_resume(ctx, NULL, 13, "localhost", true);
        test_resume(ctx, NULL, 12, "localhost", true);
        test_resume(multi, NULL, 13, "foo.apps.test", true); /* ticket key shared across the SNI CTXs */
        test_resume(multi, NULL, 12, "rsa.test", true);
        test_resume(ctx, reloaded, 13, "localhost", false); /* new ctx = new ticket key: full handshake */
        test_resume(ctx, reloaded, 12, "localhost", false);
        test_no_tickets();
        test_reload_tickets(&one);
        test_sni(multi);
        test_alpn(ctx);
        test_garbage(ctx);
        test_failures(ctx);
        test_sni_parser(ctx);
        test_refuse(ctx);
        test_long_suite_list(ctx);
        test_tls12_groups(ctx);
        test_min13();
        test_threads(multi);
        test_refcount();
    }
    op_tls_ctx_unref(ctx);
    op_tls_ctx_unref(multi);
    op_tls_ctx_unref(reloaded);
    op_tls_global_cleanup();

    for (size_t i = 0; i < 4; i++) {
        free((void *)g_cert_paths[i].cert_file);
        free((void *)g_cert_paths[i].key_file);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", g_dir);
    return check_report("tls");
}
