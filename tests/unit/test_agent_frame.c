/*
 * proto/agent_frame.c: every frame type round-trips through encode/decode with its exact wire bytes,
 * a stream of frames decodes one byte at a time, and each rule of the decoder (size limit, reserved flags,
 * unknown types, payload sizes, field ranges, text content) refuses what it must.
 */
#include <errno.h>
#include <string.h>

#include "proto/agent_frame.h"
#include "tests/unit/check.h"

static struct op_af_frame text_frame(enum op_af_type t, const char *text)
{
    struct op_af_frame f = {0};
    f.type = t;
    f.text = text;
    f.text_len = text ? strlen(text) : 0;
    return f;
}

static void roundtrip(const struct op_af_frame *f, const uint8_t *want, size_t wantlen, const char *what)
{
    uint8_t buf[OP_AF_MAX_FRAME];
    int n = op_af_encode(f, buf, sizeof(buf));
    CHECK(n == (int)wantlen && memcmp(buf, want, wantlen) == 0, "%s: wire bytes (n=%d)", what, n);
    struct op_af_frame g;
    int m = op_af_decode(buf, (size_t)(n > 0 ? n : 0), &g);
    CHECK(m == n, "%s: decode consumes the frame (%d)", what, m);
    CHECK(g.type == f->type && g.version == f->version && g.count == f->count &&
              g.heartbeat_ms == f->heartbeat_ms && g.nonce == f->nonce && g.code == f->code &&
              g.port == f->port && g.text_len == f->text_len &&
              (g.text_len == 0 || memcmp(g.text, f->text, g.text_len) == 0),
          "%s: fields survive", what);
    for (int cut = 0; cut < n; cut++)
        CHECK(op_af_decode(buf, (size_t)cut, &g) == 0, "%s: prefix %d needs more", what, cut);
    CHECK(op_af_encode(f, buf, wantlen - 1) == -ENOSPC, "%s: encode into a short buffer", what);
}

static int decode_bytes(const uint8_t *b, size_t n)
{
    struct op_af_frame f;
    return op_af_decode(b, n, &f);
}

int main(void)
{
    struct op_af_frame f = text_frame(OP_AF_HELLO, "outpost v0.1");
    f.version = 1;
    f.count = 4;
    roundtrip(&f, (const uint8_t *)"\x00\x10\x01\x00\x00\x01\x00\x04outpost v0.1", 20, "HELLO");
    f = text_frame(OP_AF_WELCOME, "eu");
    f.version = 1;
    f.count = 3;
    f.heartbeat_ms = 15000;
    roundtrip(&f,
              (const uint8_t *)"\x00\x0a\x02\x00\x00\x01\x00\x03\x00\x00\x3a\x98"
                               "eu",
              14, "WELCOME");
    f = text_frame(OP_AF_PING, NULL);
    f.nonce = 0x0102030405060708ULL;
    roundtrip(&f, (const uint8_t *)"\x00\x08\x03\x00\x01\x02\x03\x04\x05\x06\x07\x08", 12, "PING");
    f.type = OP_AF_PONG;
    roundtrip(&f, (const uint8_t *)"\x00\x08\x04\x00\x01\x02\x03\x04\x05\x06\x07\x08", 12, "PONG");
    f = text_frame(OP_AF_SPARES, NULL);
    f.count = 2;
    roundtrip(&f, (const uint8_t *)"\x00\x02\x05\x00\x00\x02", 6, "SPARES");
    f = text_frame(OP_AF_CREDENTIAL, "aGk.eyJ9.c2ln");
    roundtrip(&f,
              (const uint8_t *)"\x00\x0d\x06\x00"
                               "aGk.eyJ9.c2ln",
              17, "CREDENTIAL");
    f = text_frame(OP_AF_GOAWAY, "bye");
    f.code = OP_AF_GOAWAY_REVOKED;
    roundtrip(&f,
              (const uint8_t *)"\x00\x05\x07\x00\x00\x02"
                               "bye",
              9, "GOAWAY");
    f = text_frame(OP_AF_STREAM_FAIL, "refused");
    f.port = 8080;
    f.code = OP_AF_FAIL_REFUSED;
    roundtrip(&f, (const uint8_t *)"\x00\x0b\x08\x00\x1f\x90\x00\x01refused", 15, "STREAM_FAIL");

    /* A stream of three frames, fed one byte at a time as a socket might deliver it. */
    uint8_t stream[64];
    size_t sl = 0;
    struct op_af_frame fs[3] = {text_frame(OP_AF_SPARES, NULL), text_frame(OP_AF_PING, NULL),
                                text_frame(OP_AF_GOAWAY, "")};
    fs[0].count = 1;
    fs[1].nonce = 99;
    for (int i = 0; i < 3; i++)
        sl += (size_t)op_af_encode(&fs[i], stream + sl, sizeof(stream) - sl);
    size_t have = 0, off = 0;
    int got = 0;
    while (have <= sl && got < 3) {
        struct op_af_frame g;
        int n = op_af_decode(stream + off, have - off, &g);
        CHECK(n >= 0, "stream decode never fails (%d)", n);
        if (n > 0) {
            CHECK(g.type == fs[got].type, "frame %d type %s", got, op_af_type_name(g.type));
            off += (size_t)n;
            got++;
        } else {
            have++;
        }
    }
    CHECK(got == 3 && off == sl, "three frames from the byte stream (%d)", got);

    /* Refusals. */
    CHECK(decode_bytes((const uint8_t *)"\x20\x01\x03\x00", 4) == -EMSGSIZE, "over the size limit at once");
    CHECK(decode_bytes((const uint8_t *)"\x00\x08\x03\x02"
                                        "12345678",
                       12) == -EPROTO,
          "reserved flag bit");
    CHECK(decode_bytes((const uint8_t *)"\x00\x01\x2a\x00x", 5) == -EPROTO, "unknown type, not ignorable");
    struct op_af_frame g;
    CHECK(op_af_decode((const uint8_t *)"\x00\x01\x2a\x01x", 5, &g) == 5 && g.type == OP_AF_UNKNOWN &&
              g.raw_type == 42,
          "unknown ignorable type is skipped whole");
    CHECK(decode_bytes((const uint8_t *)"\x00\x07\x03\x00"
                                        "1234567",
                       11) == -EPROTO,
          "PING of 7 bytes");
    CHECK(decode_bytes((const uint8_t *)"\x00\x02\x05\x00\x00\x00", 6) == -EPROTO, "SPARES 0");
    CHECK(decode_bytes((const uint8_t *)"\x00\x04\x01\x00\x00\x00\x00\x01", 8) == -EPROTO, "HELLO version 0");
    CHECK(decode_bytes((const uint8_t *)"\x00\x09\x02\x00\x00\x01\x00\x01\x00\x00\x00\x00x", 13) == -EPROTO,
          "WELCOME heartbeat 0");
    CHECK(decode_bytes((const uint8_t *)"\x00\x08\x02\x00\x00\x01\x00\x01\x00\x00\x00\x01", 12) == -EPROTO,
          "WELCOME without a region name");
    CHECK(decode_bytes((const uint8_t *)"\x00\x06\x01\x00\x00\x01\x00\x01\x0a\x41", 10) == -EPROTO,
          "HELLO text with a control character");
    CHECK(decode_bytes((const uint8_t *)"\x00\x05\x06\x00"
                                        "a.b.c",
                       9) == 9,
          "CREDENTIAL with two dots accepted");
    CHECK(decode_bytes((const uint8_t *)"\x00\x03\x06\x00"
                                        "a.b",
                       7) == -EPROTO,
          "CREDENTIAL with one dot");
    CHECK(decode_bytes((const uint8_t *)"\x00\x05\x06\x00"
                                        "a b.c",
                       9) == -EPROTO,
          "CREDENTIAL with a space");
    CHECK(decode_bytes((const uint8_t *)"\x00\x04\x08\x00\x00\x00\x00\x01", 8) == -EPROTO,
          "STREAM_FAIL port 0");
    CHECK(decode_bytes((const uint8_t *)"\x00\x04\x08\x00\x00\x01\x00\x09", 8) == -EPROTO,
          "STREAM_FAIL unknown code");
    char longname[OP_AF_MAX_NAME + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    f = text_frame(OP_AF_HELLO, longname);
    f.version = 1;
    uint8_t buf[OP_AF_MAX_FRAME];
    CHECK(op_af_encode(&f, buf, sizeof(buf)) == -EINVAL, "encode refuses a 65-byte agent version");
    f = text_frame(OP_AF_UNKNOWN, NULL);
    CHECK(op_af_encode(&f, buf, sizeof(buf)) == -EINVAL, "UNKNOWN cannot be encoded");
    f = text_frame(OP_AF_SPARES, NULL);
    f.count = 1;
    f.flags = 0x04;
    CHECK(op_af_encode(&f, buf, sizeof(buf)) == -EINVAL, "encode refuses reserved flags");
    return check_report("agent control frames");
}
