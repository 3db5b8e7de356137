/*
 * tests/unit/test_tls.c — tls/ sessions against a real wolfSSL client, in memory (tls_test_util.h):
 * context errors, handshake shapes, data both ways, key update, close_notify, resumption and ticket keys
 * across reloads, ALPN, output and input failures, the TLS 1.3 minimum, two threads on one context,
 * reference counting. What the server does with a ClientHello is tests/unit/test_tls_hello.c.
 */
#include "tests/unit/tls_test_util.h"

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
    if (tls_test_setup("test_tls") != 0) return 1;
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
        test_alpn(ctx);
        test_failures(ctx);
        test_min13();
        test_threads(multi);
        test_refcount();
    }
    op_tls_ctx_unref(ctx);
    op_tls_ctx_unref(multi);
    op_tls_ctx_unref(reloaded);
    tls_test_teardown();
    return check_report("tls sessions");
}
