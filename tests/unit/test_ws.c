/*
 * proto/sha1.c and proto/ws.c: SHA-1 vectors of FIPS 180-4, the handshake's accept key (RFC 6455 §1.3),
 * the frame examples of RFC 6455 §5.7 through the header decoder and the message assembler, every error
 * the decoder and the assembler report (with its exact close code), UTF-8 validation edge cases (also
 * split across calls and fragments), close payloads both ways, and the assembler's events being the same
 * whether its input arrives at once, in chunks or one byte at a time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sha1.h"
#include "proto/ws.h"
#include "tests/unit/check.h"

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha1_vectors(void)
{
    static const struct {
        const char *msg;
        const char *digest;
    } v[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmno"
         "pqrstn"
         "opqrstu",
         "a49b2446a02c645bf419f995b67091253a04a259"},
    };
    uint8_t d[OP_SHA1_LEN];
    char h[2 * OP_SHA1_LEN + 1];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        op_sha1(v[i].msg, strlen(v[i].msg), d);
        hex(d, sizeof(d), h);
        CHECK(strcmp(h, v[i].digest) == 0, "sha1 vector %zu: %s", i, h);
        /* the same message fed in uneven pieces */
        struct op_sha1 c;
        op_sha1_init(&c);
        size_t n = strlen(v[i].msg);
        for (size_t off = 0, step = 1; off < n; off += step, step = step * 2 + 1)
            op_sha1_update(&c, v[i].msg + off, off + step > n ? n - off : step);
        op_sha1_final(&c, d);
        hex(d, sizeof(d), h);
        CHECK(strcmp(h, v[i].digest) == 0, "sha1 vector %zu in pieces: %s", i, h);
    }
    struct op_sha1 c;
    op_sha1_init(&c);
    char a[1000];
    memset(a, 'a', sizeof(a));
    for (int i = 0; i < 1000; i++)
        op_sha1_update(&c, a, sizeof(a));
    op_sha1_final(&c, d);
    hex(d, sizeof(d), h);
    CHECK(strcmp(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0, "sha1 of a million 'a': %s", h);
}

static void accept_key(void)
{
    char out[OP_WS_ACCEPT_LEN + 1];
    const char *k = "dGhlIHNhbXBsZSBub25jZQ==";
    memset(out, 'x', sizeof(out));
    CHECK(op_ws_accept_key(k, strlen(k), out) == 0, "RFC 6455 §1.3 key accepted");
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "RFC 6455 §1.3 accept value: %s", out);
    CHECK(strlen(out) == OP_WS_ACCEPT_LEN, "accept value is %d characters", OP_WS_ACCEPT_LEN);
    const char *k2 = "AAAAAAAAAAAAAAAAAAAAAA==";
    CHECK(op_ws_accept_key(k2, strlen(k2), out) == 0 && strcmp(out, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=") == 0,
          "all-zero key: %s", out);
    static const char *bad[] = {
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 characters */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 characters */
        "dGhlIHNhbXBsZSBub25jZQAA",  /* no padding */
        "dGhlIHNhbXBsZSBub25jZQ=A",  /* padding not at the end */
        "dGhlIHNhbXBsZSBub2*jZQ==",  /* not base64 */
        "dGhlIHNhbXBsZSBub25j-Q==",  /* base64url is not base64 */
        "dGhlIHNhbXBsZSBub25jZR==",  /* non-zero trailing bits */
        "dGhlIHNhbXBsZSBub25jZ===",  /* padding too early */
        "dGhlIHNhbXBsZSBub 25jZ==",  /* a space */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(op_ws_accept_key(bad[i], strlen(bad[i]), out) == -EINVAL, "bad key %zu refused", i);
    CHECK(op_ws_accept_key(k, strlen(k) - 1, out) == -EINVAL, "a short key_len is refused");
    CHECK(op_ws_accept_key(NULL, 24, out) == -EINVAL, "a NULL key is refused");
    char nul[24];
    memcpy(nul, k, 24);
    nul[5] = '\0';
    CHECK(op_ws_accept_key(nul, 24, out) == -EINVAL, "a NUL inside the key is refused");
}

/* A client frame (masked) with payload p[0..n) into out; returns its length. */
static size_t client_frame(uint8_t *out, bool fin, uint8_t opcode, const void *p, size_t n,
                           const uint8_t mask[4])
{
    size_t h = op_ws_encode_header(out, fin, opcode, n);
    out[1] |= 0x80;
    memcpy(out + h, mask, 4);
    memcpy(out + h + 4, p, n);
    op_ws_unmask(out + h + 4, n, mask, 0);
    return h + 4 + n;
}

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

static int hdr(const void *b, size_t n, bool require_mask, struct op_ws_frame *f)
{
    return op_ws_decode_header(b, n, require_mask, f);
}

static void decode_header(void)
{
    struct op_ws_frame f;
    /* RFC 6455 §5.7: a single-frame masked text message "Hello" */
    static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    memset(&f, 0xee, sizeof(f));
    CHECK(hdr(hello, sizeof(hello), true, &f) == 6, "masked Hello: 6-byte header");
    CHECK(f.fin && f.opcode == OP_WS_TEXT && f.masked && f.len == 5 && f.header_len == 6 &&
              memcmp(f.mask, MASK, 4) == 0,
          "masked Hello: fields");
    for (size_t cut = 0; cut < 6; cut++)
        CHECK(hdr(hello, cut, true, &f) == 0, "masked Hello: a %zu-byte prefix needs more", cut);
    uint8_t pl[5];
    memcpy(pl, hello + 6, 5);
    op_ws_unmask(pl, 2, MASK, 0);
    op_ws_unmask(pl + 2, 3, MASK, 2);
    CHECK(memcmp(pl, "Hello", 5) == 0, "unmasking in two pieces with an offset");
    /* unmasked frames: what a client receives; a server refuses them */
    static const uint8_t uhello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    CHECK(hdr(uhello, sizeof(uhello), false, &f) == 2 && !f.masked && f.len == 5, "unmasked Hello (client)");
    CHECK(hdr(uhello, 2, true, &f) == OP_WS_EPROTO, "unmasked Hello refused by a server from 2 bytes");
    static const uint8_t frag1[] = {0x01, 0x03, 0x48, 0x65, 0x6c}, frag2[] = {0x80, 0x02, 0x6c, 0x6f};
    CHECK(hdr(frag1, 5, false, &f) == 2 && !f.fin && f.opcode == OP_WS_TEXT && f.len == 3, "fragment Hel");
    CHECK(hdr(frag2, 4, false, &f) == 2 && f.fin && f.opcode == OP_WS_CONT && f.len == 2, "fragment lo");
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    CHECK(hdr(ping, 7, false, &f) == 2 && f.opcode == OP_WS_PING && f.len == 5, "unmasked ping");
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK(hdr(pong, 11, true, &f) == 6 && f.opcode == OP_WS_PONG && f.len == 5, "masked pong");
    static const uint8_t b256[] = {0x82, 0x7e, 0x01, 0x00};
    CHECK(hdr(b256, 4, false, &f) == 4 && f.opcode == OP_WS_BINARY && f.len == 256, "256-byte binary");
    CHECK(hdr(b256, 3, false, &f) == 0, "256-byte binary: 3 bytes need more");
    static const uint8_t b64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(hdr(b64k, 10, false, &f) == 10 && f.len == 65536, "64 KiB binary");
    CHECK(hdr(b64k, 9, false, &f) == 0, "64 KiB binary: 9 bytes need more");
    static const uint8_t b64km[] = {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4};
    CHECK(hdr(b64km, 14, true, &f) == 14 && f.len == 65536 && f.mask[3] == 4, "masked 64 KiB: 14 bytes");
    CHECK(hdr(b64km, 13, true, &f) == 0, "masked 64 KiB: 13 bytes need more");
    static const uint8_t c125[] = {0x89, 0x7d};
    CHECK(hdr(c125, 2, false, &f) == 2 && f.len == 125, "a 125-byte ping is allowed");

    /* each rule of the decoder, with exactly the protocol-error code */
    static const struct {
        uint8_t b[10];
        size_t n;
        const char *what;
    } bad[] = {
        {{0xc1, 0x80}, 2, "RSV1"},
        {{0xa1, 0x80}, 2, "RSV2"},
        {{0x91, 0x80}, 2, "RSV3"},
        {{0x83, 0x80}, 2, "opcode 3"},
        {{0x87, 0x80}, 2, "opcode 7"},
        {{0x8b, 0x80}, 2, "opcode 0xB"},
        {{0x8f, 0x80}, 2, "opcode 0xF"},
        {{0x09, 0x80}, 2, "fragmented ping"},
        {{0x08, 0x80}, 2, "fragmented close"},
        {{0x8a, 0xfe, 0x00, 0x7e}, 4, "pong of 126 bytes"},
        {{0x89, 0xfe}, 2, "ping with a 16-bit length, known from 2 bytes"},
        {{0x81, 0xfe, 0x00, 0x7d}, 4, "16-bit length below 126"},
        {{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 10, "64-bit length below 65536"},
        {{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x05}, 10, "64-bit length of 5"},
        {{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, "64-bit length with the top bit"},
        {{0x82, 0x05}, 2, "unmasked binary"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(hdr(bad[i].b, bad[i].n, true, &f) == OP_WS_EPROTO, "%s: protocol error", bad[i].what);
    CHECK(hdr(bad[0].b, 1, true, &f) == 0 && hdr(bad[0].b, 0, true, &f) == 0, "under 2 bytes: need more");
    CHECK(OP_WS_EPROTO == -1002 && OP_WS_EINVALID == -1007 && OP_WS_ETOOBIG == -1009, "error values");
}

static void encode_header(void)
{
    static const struct {
        bool fin;
        uint8_t op;
        uint64_t len;
        size_t n;
        uint8_t want[10];
    } v[] = {
        {true, OP_WS_TEXT, 5, 2, {0x81, 0x05}},
        {false, OP_WS_TEXT, 3, 2, {0x01, 0x03}},
        {true, OP_WS_CONT, 2, 2, {0x80, 0x02}},
        {true, OP_WS_CLOSE, 0, 2, {0x88, 0x00}},
        {true, OP_WS_BINARY, 125, 2, {0x82, 0x7d}},
        {true, OP_WS_BINARY, 126, 4, {0x82, 0x7e, 0x00, 0x7e}},
        {true, OP_WS_BINARY, 256, 4, {0x82, 0x7e, 0x01, 0x00}},
        {true, OP_WS_BINARY, 65535, 4, {0x82, 0x7e, 0xff, 0xff}},
        {true, OP_WS_BINARY, 65536, 10, {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}},
        {true, OP_WS_BINARY, 0x0102030405060708ULL, 10, {0x82, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8}},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t out[OP_WS_MAX_HEADER];
        memset(out, 0xee, sizeof(out));
        size_t n = op_ws_encode_header(out, v[i].fin, v[i].op, v[i].len);
        CHECK(n == v[i].n && memcmp(out, v[i].want, n) == 0, "encode %zu: %zu bytes", i, n);
        CHECK(out[n] == 0xee, "encode %zu: nothing written past the header", i);
        struct op_ws_frame f;
        CHECK(hdr(out, n, false, &f) == (int)n && f.len == v[i].len && f.fin == v[i].fin &&
                  f.opcode == v[i].op,
              "encode %zu: decodes back", i);
    }
}

static void opcode_names(void)
{
    CHECK(strcmp(op_ws_opcode_name(0), "continuation") == 0 && strcmp(op_ws_opcode_name(1), "text") == 0 &&
              strcmp(op_ws_opcode_name(2), "binary") == 0 && strcmp(op_ws_opcode_name(8), "close") == 0 &&
              strcmp(op_ws_opcode_name(9), "ping") == 0 && strcmp(op_ws_opcode_name(10), "pong") == 0,
          "opcode names");
    CHECK(strcmp(op_ws_opcode_name(3), "reserved") == 0 && strcmp(op_ws_opcode_name(0xf), "reserved") == 0 &&
              strcmp(op_ws_opcode_name(-1), "reserved") == 0,
          "reserved opcode names");
}

static bool utf8_all(const char *s, size_t n, uint32_t *end)
{
    uint32_t st = 0;
    bool ok = op_ws_utf8_step(&st, (const uint8_t *)s, n);
    *end = st;
    return ok;
}

static bool utf8_bytewise(const char *s, size_t n, uint32_t *end)
{
    uint32_t st = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = op_ws_utf8_step(&st, (const uint8_t *)s + i, 1);
    *end = st;
    return ok;
}

static void utf8(void)
{
    static const char *good[] = {
        "",
        "hello",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "\xf4\x8f\xbf\xbf" /* U+10FFFF */,
        "\xed\x9f\xbf" /* U+D7FF */,
        "\xee\x80\x80" /* U+E000 */,
        "\xef\xbf\xbf" /* U+FFFF */,
        "\xc2\x80" /* U+0080 */,
        "\xe0\xa0\x80" /* U+0800 */,
        "\xf0\x90\x80\x80" /* U+10000 */,
        "\x7f",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint32_t st;
        CHECK(utf8_all(good[i], strlen(good[i]), &st) && st == 0, "valid UTF-8 %zu", i);
        CHECK(utf8_bytewise(good[i], strlen(good[i]), &st) && st == 0, "valid UTF-8 %zu byte by byte", i);
        size_t n = strlen(good[i]);
        if (n > 1 && (uint8_t)good[i][n - 1] >= 0x80)
            CHECK(utf8_all(good[i], n - 1, &st) && st != 0, "valid UTF-8 %zu cut: mid-character", i);
    }
    static const char *bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong 2-byte */
        "\xe0\x80\x80",     /* overlong 3-byte */
        "\xe0\x9f\xbf",     /* overlong U+07FF */
        "\xf0\x80\x80\x80", /* overlong 4-byte */
        "\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80",
        "\xf8\x88\x80\x80\x80",
        "\xff",
        "\xfe",
        "\x80",     /* a lone continuation */
        "\xbf",     /* a lone continuation */
        "\xc3\x41", /* a lead without its continuation */
        "\xe2\x82\x41",
        "\xf0\x9f\x98\x41",
        "a\xc3\xa9\xa9",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint32_t st;
        CHECK(!utf8_all(bad[i], strlen(bad[i]), &st), "invalid UTF-8 %zu refused", i);
        CHECK(!utf8_bytewise(bad[i], strlen(bad[i]), &st), "invalid UTF-8 %zu refused byte by byte", i);
        CHECK(!op_ws_utf8_step(&st, (const uint8_t *)"a", 1), "invalid UTF-8 %zu: the refusal sticks", i);
    }
}

static void close_payloads(void)
{
    uint8_t out[OP_WS_MAX_CONTROL + 8];
    memset(out, 0xee, sizeof(out));
    size_t n = op_ws_close_payload(out, 1000, "process exited with code 3");
    CHECK(n == 28 && memcmp(out, "\x03\xe8process exited with code 3", 28) == 0, "close 1000 with a reason");
    n = op_ws_close_payload(out, 1002, NULL);
    CHECK(n == 2 && out[0] == 0x03 && out[1] == 0xea, "close 1002 without a reason");
    n = op_ws_close_payload(out, 4000, "");
    CHECK(n == 2 && out[0] == 0x0f && out[1] == 0xa0, "close 4000 with an empty reason");
    CHECK(op_ws_close_payload(out, OP_WS_CLOSE_NO_STATUS, "x") == 0, "1005 is an empty close");
    char big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memset(out, 0xee, sizeof(out));
    n = op_ws_close_payload(out, 1000, big);
    CHECK(n == OP_WS_MAX_CONTROL && out[n] == 0xee, "a long reason is cut to 123 bytes (%zu)", n);
    big[122] = '\xc3', big[123] = '\xa9'; /* "é" across the 123-byte limit */
    n = op_ws_close_payload(out, 1000, big);
    CHECK(n == 2 + 122 && out[n - 1] == 'a', "the cut does not split a character (%zu)", n);
    big[121] = '\xe2', big[122] = '\x82', big[123] = '\xac'; /* "€" across it */
    n = op_ws_close_payload(out, 1000, big);
    CHECK(n == 2 + 121, "the cut does not split a 3-byte character (%zu)", n);
    memcpy(big + 121,
           "\xc3\xa9"
           "a",
           3); /* a character ending exactly at the limit */
    n = op_ws_close_payload(out, 1000, big);
    CHECK(n == 2 + 123 && out[123] == 0xc3 && out[124] == 0xa9, "a character ending at 123 is kept (%zu)", n);
    uint16_t code = 0;
    CHECK(op_ws_parse_close(out, n, &code) == 0 && code == 1000, "a built close parses (%u)", code);

    code = 0;
    CHECK(op_ws_parse_close(out, 0, &code) == 0 && code == 1005, "an empty close is 1005");
    CHECK(op_ws_parse_close((const uint8_t *)"\x03", 1, &code) == OP_WS_EPROTO, "a 1-byte close");
    static const uint16_t refused[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        uint8_t p[2] = {(uint8_t)(refused[i] >> 8), (uint8_t)refused[i]};
        code = 7;
        CHECK(op_ws_parse_close(p, 2, &code) == OP_WS_EPROTO && code == 7, "close code %u refused",
              refused[i]);
    }
    static const uint16_t allowed[] = {1000, 1001, 1002, 1003, 1007, 1008,
                                       1009, 1010, 1011, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        uint8_t p[2] = {(uint8_t)(allowed[i] >> 8), (uint8_t)allowed[i]};
        CHECK(op_ws_parse_close(p, 2, &code) == 0 && code == allowed[i], "close code %u allowed", allowed[i]);
    }
    CHECK(op_ws_parse_close((const uint8_t *)"\x03\xe8ok \xc3\xa9", 7, &code) == 0 && code == 1000,
          "a UTF-8 reason");
    CHECK(op_ws_parse_close((const uint8_t *)"\x03\xe8\xc3\x28", 4, &code) == OP_WS_EINVALID, "a bad reason");
    CHECK(op_ws_parse_close((const uint8_t *)"\x03\xe8\xe2\x82", 4, &code) == OP_WS_EINVALID,
          "a reason ending mid-character");
}

/* One event of the assembler with a copy of what it handed out. */
struct ev {
    int rc;
    uint8_t opcode;
    uint16_t code;
    size_t len;
    uint8_t data[70000];
};

/* Feeds in[0..n) in chunks of `chunk` bytes (0 = all at once) until an error or `max` events; returns the
 * number of events recorded (an error is recorded as the last one). NONE results are not recorded. */
static size_t feed(const uint8_t *in, size_t n, size_t chunk, size_t cap, struct ev *evs, size_t max)
{
    uint8_t *buf = malloc(cap ? cap : 1);
    struct op_ws_reader r;
    op_ws_reader_init(&r, buf, cap);
    size_t off = 0, k = 0;
    while (off < n && k < max) {
        size_t len = chunk && n - off > chunk ? chunk : n - off, used = 99;
        int rc = op_ws_read(&r, in + off, len, &used);
        if (rc < 0) {
            evs[k++] = (struct ev){.rc = rc};
            break;
        }
        CHECK(used <= len, "used %zu <= len %zu", used, len);
        CHECK(rc != OP_WS_EV_NONE || used == len, "NONE consumes all (%zu of %zu)", used, len);
        CHECK(used > 0 || rc != OP_WS_EV_NONE, "progress");
        off += used;
        if (rc == OP_WS_EV_NONE) continue;
        struct ev *e = &evs[k++];
        e->rc = rc;
        e->opcode = r.msg_opcode;
        e->code = r.close_code;
        if (rc == OP_WS_EV_MESSAGE) {
            CHECK(r.msg_len <= cap, "message within the cap");
            e->len = r.msg_len;
            memcpy(e->data, r.msg, r.msg_len);
        } else {
            e->opcode = 0;
            e->len = r.ctrl_len;
            memcpy(e->data, r.ctrl, r.ctrl_len);
        }
        if (rc == OP_WS_EV_CLOSE) break;
    }
    free(buf);
    return k;
}

static struct ev evs[8], evs2[8];

/* The single result of feeding a stream that makes exactly one event or error. */
static int one(const uint8_t *in, size_t n, size_t cap)
{
    size_t k = feed(in, n, 0, cap, evs, 8);
    return k == 1 ? evs[0].rc : k == 0 ? OP_WS_EV_NONE : -9999;
}

static void reader(void)
{
    uint8_t s[70100];
    size_t n, m;
    /* RFC 6455 §5.7 masked "Hello" */
    static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t buf[64];
    struct op_ws_reader r;
    op_ws_reader_init(&r, buf, sizeof(buf));
    size_t used = 0;
    CHECK(op_ws_read(&r, hello, sizeof(hello), &used) == OP_WS_EV_MESSAGE && used == sizeof(hello),
          "masked Hello: a message (used %zu)", used);
    CHECK(r.msg_len == 5 && memcmp(r.msg, "Hello", 5) == 0 && r.msg_opcode == OP_WS_TEXT && r.msg == buf,
          "masked Hello: the message is Hello, text");
    CHECK(op_ws_read(&r, hello, 3, &used) == OP_WS_EV_NONE && used == 3, "the next message starts");
    CHECK(r.msg_opcode == 0 && r.msg_len == 0, "the previous message is gone");
    CHECK(op_ws_read(&r, hello + 3, sizeof(hello) - 3, &used) == OP_WS_EV_MESSAGE && r.msg_len == 5,
          "the second Hello across two calls");
    CHECK(op_ws_read(&r, hello, 0, &used) == OP_WS_EV_NONE && used == 0, "no input: nothing");

    /* fragmented "Hel" + "lo" with a ping between */
    n = client_frame(s, false, OP_WS_TEXT, "Hel", 3, MASK);
    n += client_frame(s + n, true, OP_WS_PING, "x", 1, MASK);
    n += client_frame(s + n, true, OP_WS_CONT, "lo", 2, MASK);
    m = feed(s, n, 0, 64, evs, 8);
    CHECK(m == 2 && evs[0].rc == OP_WS_EV_PING && evs[0].len == 1 && evs[0].data[0] == 'x',
          "a ping between fragments comes out first");
    CHECK(m == 2 && evs[1].rc == OP_WS_EV_MESSAGE && evs[1].len == 5 &&
              memcmp(evs[1].data, "Hello", 5) == 0 && evs[1].opcode == OP_WS_TEXT,
          "the fragments make Hello");
    /* pong, 256-byte and 64 KiB binary messages */
    n = client_frame(s, true, OP_WS_PONG, "Hello", 5, MASK);
    CHECK(memcmp(s, "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11) == 0, "RFC masked pong bytes");
    CHECK(one(s, n, 64) == OP_WS_EV_PONG && evs[0].len == 5 && memcmp(evs[0].data, "Hello", 5) == 0, "pong");
    static uint8_t big[65536];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 3);
    n = client_frame(s, true, OP_WS_BINARY, big, 256, MASK);
    CHECK(n == 4 + 4 + 256 && s[1] == 0xfe && s[2] == 1 && s[3] == 0, "256-byte frame layout");
    CHECK(one(s, n, 256) == OP_WS_EV_MESSAGE && evs[0].len == 256 && memcmp(evs[0].data, big, 256) == 0 &&
              evs[0].opcode == OP_WS_BINARY,
          "256-byte binary message at exactly the cap");
    CHECK(one(s, n, 255) == OP_WS_ETOOBIG, "256 bytes over a 255-byte cap");
    n = client_frame(s, true, OP_WS_BINARY, big, 65536, MASK);
    CHECK(n == 14 + 65536 && s[1] == 0xff, "64 KiB frame layout");
    CHECK(one(s, n, 65536) == OP_WS_EV_MESSAGE && evs[0].len == 65536 && memcmp(evs[0].data, big, 65536) == 0,
          "64 KiB binary message");
    CHECK(one(s, 14, 65535) == OP_WS_ETOOBIG, "64 KiB refused from its header alone with a smaller cap");
    n = client_frame(s, false, OP_WS_BINARY, big, 5, MASK);
    n += client_frame(s + n, true, OP_WS_CONT, big, 4, MASK);
    CHECK(one(s, n, 8) == OP_WS_ETOOBIG, "fragments over the cap together");
    CHECK(one(s, n, 9) == OP_WS_EV_MESSAGE && evs[0].len == 9, "fragments at the cap together");
    n = client_frame(s, true, OP_WS_TEXT, "", 0, MASK);
    CHECK(one(s, n, 0) == OP_WS_EV_MESSAGE && evs[0].len == 0 && evs[0].opcode == OP_WS_TEXT,
          "an empty text message, with a zero cap");
    n = client_frame(s, false, OP_WS_BINARY, "", 0, MASK);
    n += client_frame(s + n, false, OP_WS_CONT, "ab", 2, MASK);
    n += client_frame(s + n, true, OP_WS_CONT, "", 0, MASK);
    CHECK(one(s, n, 2) == OP_WS_EV_MESSAGE && evs[0].len == 2 && evs[0].opcode == OP_WS_BINARY,
          "empty first and last fragments");

    /* protocol errors of the assembler */
    CHECK(one((const uint8_t *)"\x81\x05Hello", 7, 64) == OP_WS_EPROTO, "unmasked text: 1002");
    n = client_frame(s, true, OP_WS_CONT, "lo", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EPROTO, "a continuation with no message open: 1002");
    n = client_frame(s, false, OP_WS_TEXT, "Hel", 3, MASK);
    n += client_frame(s + n, true, OP_WS_TEXT, "lo", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EPROTO, "a text frame inside an open message: 1002");
    n = client_frame(s, false, OP_WS_BINARY, "Hel", 3, MASK);
    n += client_frame(s + n, true, OP_WS_BINARY, "lo", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EPROTO, "a binary frame inside an open message: 1002");
    n = client_frame(s, true, OP_WS_TEXT, "Hello", 5, MASK);
    s[0] |= 0x40;
    CHECK(one(s, n, 64) == OP_WS_EPROTO, "RSV1 through the assembler: 1002");
    n = client_frame(s, true, OP_WS_PING, "x", 1, MASK);
    s[0] &= 0x7f;
    CHECK(one(s, n, 64) == OP_WS_EPROTO, "a fragmented ping through the assembler: 1002");

    /* UTF-8 of text messages */
    n = client_frame(s, true, OP_WS_TEXT, "\xc3\x28", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EINVALID, "invalid UTF-8 text: 1007");
    n = client_frame(s, true, OP_WS_BINARY, "\xc3\x28", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EV_MESSAGE, "the same bytes as binary are fine");
    n = client_frame(s, true, OP_WS_TEXT, "\xed\xa0\x80", 3, MASK);
    CHECK(one(s, n, 64) == OP_WS_EINVALID, "a surrogate in text: 1007");
    n = client_frame(s, true, OP_WS_TEXT, "\xe2\x82", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EINVALID, "text ending mid-character: 1007");
    n = client_frame(s, false, OP_WS_TEXT, "a\xe2", 2, MASK);
    n += client_frame(s + n, true, OP_WS_CONT, "\x82\xac", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EV_MESSAGE && evs[0].len == 4 &&
              memcmp(evs[0].data, "a\xe2\x82\xac", 4) == 0,
          "a character split across fragments");
    n = client_frame(s, false, OP_WS_TEXT, "a\xe2", 2, MASK);
    size_t first = n;
    n += client_frame(s + n, true, OP_WS_CONT, "\x41\xac", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EINVALID, "a broken character across fragments: 1007");
    CHECK(one(s, first, 64) == OP_WS_EV_NONE, "the first fragment alone is fine");
    n = client_frame(s, false, OP_WS_TEXT, "\xf4\x90", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EINVALID, "> U+10FFFF refused before the message ends: 1007");

    /* close frames */
    uint8_t cp[OP_WS_MAX_CONTROL];
    size_t cl = op_ws_close_payload(cp, 1000, "bye");
    n = client_frame(s, true, OP_WS_CLOSE, cp, cl, MASK);
    CHECK(one(s, n, 64) == OP_WS_EV_CLOSE && evs[0].code == 1000 && evs[0].len == 5 &&
              memcmp(evs[0].data + 2, "bye", 3) == 0,
          "close 1000 bye");
    n = client_frame(s, true, OP_WS_CLOSE, "", 0, MASK);
    CHECK(one(s, n, 64) == OP_WS_EV_CLOSE && evs[0].code == 1005, "an empty close: 1005");
    n = client_frame(s, true, OP_WS_CLOSE, "\x03", 1, MASK);
    CHECK(one(s, n, 64) == OP_WS_EPROTO, "a 1-byte close: 1002");
    n = client_frame(s, true, OP_WS_CLOSE, "\x03\xed", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EPROTO, "close code 1005 on the wire: 1002");
    n = client_frame(s, true, OP_WS_CLOSE, "\x03\xe8\xff", 3, MASK);
    CHECK(one(s, n, 64) == OP_WS_EINVALID, "a close reason that is not UTF-8: 1007");
    n = client_frame(s, false, OP_WS_TEXT, "Hel", 3, MASK);
    n += client_frame(s + n, true, OP_WS_CLOSE, "\x03\xe9", 2, MASK);
    CHECK(one(s, n, 64) == OP_WS_EV_CLOSE && evs[0].code == 1001, "a close inside a fragmented message");

    /* two messages in one input: the first call stops after the first */
    n = client_frame(s, true, OP_WS_TEXT, "one", 3, MASK);
    first = n;
    n += client_frame(s + n, true, OP_WS_BINARY, "two!", 4, MASK);
    op_ws_reader_init(&r, buf, sizeof(buf));
    CHECK(op_ws_read(&r, s, n, &used) == OP_WS_EV_MESSAGE && used == first && r.msg_len == 3, "first of two");
    size_t used2 = 0;
    CHECK(op_ws_read(&r, s + used, n - used, &used2) == OP_WS_EV_MESSAGE && used2 == n - first &&
              r.msg_len == 4 && memcmp(r.msg, "two!", 4) == 0 && r.msg_opcode == OP_WS_BINARY,
          "second of two");
}

/* A stream of every kind of frame gives the same events whatever the chunking. */
static void chunking(void)
{
    static uint8_t s[4096];
    uint8_t big[300];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i ^ 0x5a);
    static const uint8_t m2[4] = {0, 0, 0, 0}, m3[4] = {0xff, 0x01, 0x80, 0x7f};
    size_t n = 0;
    n += client_frame(s + n, false, OP_WS_TEXT, "h\xc3", 2, MASK);
    n += client_frame(s + n, true, OP_WS_PING, "p1", 2, m2);
    n += client_frame(s + n, false, OP_WS_CONT, "\xa9llo ", 5, m3);
    n += client_frame(s + n, true, OP_WS_PONG, "", 0, MASK);
    n += client_frame(s + n, true, OP_WS_CONT, "w\xf0\x9f\x98\x80", 5, MASK);
    n += client_frame(s + n, true, OP_WS_BINARY, big, 300, m3);
    n += client_frame(s + n, true, OP_WS_TEXT, "", 0, m2);
    n += client_frame(s + n, true, OP_WS_PING, big, 125, MASK);
    n += client_frame(s + n, true, OP_WS_CLOSE,
                      "\x0f\xa0"
                      "done",
                      6, m3);
    size_t k = feed(s, n, 0, 300, evs, 8);
    CHECK(k == 7, "all at once: 7 events (%zu)", k);
    static const int want[] = {OP_WS_EV_PING,    OP_WS_EV_PONG, OP_WS_EV_MESSAGE, OP_WS_EV_MESSAGE,
                               OP_WS_EV_MESSAGE, OP_WS_EV_PING, OP_WS_EV_CLOSE};
    for (size_t i = 0; i < 7 && i < k; i++)
        CHECK(evs[i].rc == want[i], "event %zu is %d (%d)", i, want[i], evs[i].rc);
    if (k == 7) {
        CHECK(evs[2].len == 12 && memcmp(evs[2].data, "h\xc3\xa9llo w\xf0\x9f\x98\x80", 12) == 0 &&
                  evs[2].opcode == OP_WS_TEXT,
              "the fragmented text message");
        CHECK(evs[3].len == 300 && memcmp(evs[3].data, big, 300) == 0 && evs[3].opcode == OP_WS_BINARY,
              "the 300-byte binary message");
        CHECK(evs[4].len == 0 && evs[4].opcode == OP_WS_TEXT, "the empty text message");
        CHECK(evs[5].len == 125 && memcmp(evs[5].data, big, 125) == 0, "the 125-byte ping");
        CHECK(evs[6].code == 4000 && evs[6].len == 6, "the close");
    }
    static const size_t chunks[] = {1, 2, 3, 7, 13, 64, 301};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        size_t k2 = feed(s, n, chunks[c], 300, evs2, 8);
        bool same = k2 == k;
        for (size_t i = 0; same && i < k; i++)
            same = evs2[i].rc == evs[i].rc && evs2[i].opcode == evs[i].opcode &&
                   evs2[i].code == evs[i].code && evs2[i].len == evs[i].len &&
                   memcmp(evs2[i].data, evs[i].data, evs[i].len) == 0;
        CHECK(same, "chunks of %zu give the same events", chunks[c]);
    }
    /* an error is found at the same byte whatever the chunking */
    size_t e = client_frame(s, true, OP_WS_TEXT, "ok", 2, MASK);
    e += client_frame(s + e, true, OP_WS_TEXT, "a\xc0\x80", 3, MASK);
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        size_t k2 = feed(s, e, chunks[c], 300, evs2, 8);
        CHECK(k2 == 2 && evs2[0].rc == OP_WS_EV_MESSAGE && evs2[1].rc == OP_WS_EINVALID,
              "chunks of %zu: a message, then 1007", chunks[c]);
    }
}

int main(void)
{
    sha1_vectors();
    accept_key();
    decode_header();
    encode_header();
    opcode_names();
    utf8();
    close_payloads();
    reader();
    chunking();
    return check_report("proto/sha1 + proto/ws");
}
