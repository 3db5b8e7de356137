/*
 * tests/unit/test_tls_hello.c — what tls/ does with a ClientHello, against a real wolfSSL client in
 * memory (tls_test_util.h): the certificate chosen by SNI, the SNI reader on real and mutated hellos,
 * garbage and refused hellos (TLS 1.1, NULL/anon/CBC-only) answered with an alert, a 200-suite hello,
 * and the TLS 1.2 key exchange groups.
 */
#include "tests/unit/tls_test_util.h"

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

int main(void)
{
    if (tls_test_setup("test_tls_hello") != 0) return 1;
    struct op_tls_config one = {.certs = g_cert_paths, .ncerts = 1};
    struct op_tls_ctx *ctx = make_ctx(&one);
    struct op_tls_config all = {.certs = g_cert_paths, .ncerts = 4};
    struct op_tls_ctx *multi = make_ctx(&all);
    if (ctx && multi) {
        test_sni(multi);
        test_garbage(ctx);
        test_sni_parser(ctx);
        test_refuse(ctx);
        test_long_suite_list(ctx);
        test_tls12_groups(ctx);
    }
    op_tls_ctx_unref(ctx);
    op_tls_ctx_unref(multi);
    tls_test_teardown();
    return check_report("tls ClientHello handling");
}
