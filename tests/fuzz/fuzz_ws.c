/*
 * Fuzz target for the WebSocket wire format (proto/ws.c). The first input byte is the assembler's message
 * cap, the second the size of the chunks it is fed in (0 = all at once), the rest a byte stream from a
 * client. Invariants: the assembler never reports more than it was given, makes progress, keeps messages
 * within the cap and control payloads within 125 bytes, hands out only valid UTF-8 as text, and gives the
 * same events (or the same error) whatever the chunking; a decoded header re-encodes to its bytes and
 * every prefix of it needs more; the UTF-8 validator agrees with a reference decoder at every split; a
 * parsed close has an allowed code; a built close payload stays within a control frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a over the events of one run, so two runs can be compared. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* Straightforward UTF-8 check, one code point at a time. */
static bool utf8_reference(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        size_t k = b < 0x80             ? 1
                   : (b & 0xe0) == 0xc0 ? 2
                   : (b & 0xf0) == 0xe0 ? 3
                   : (b & 0xf8) == 0xf0 ? 4
                                        : 0;
        if (!k || i + k > n) return false;
        uint32_t cp = k == 1 ? b : k == 2 ? b & 0x1fu : k == 3 ? b & 0x0fu : b & 0x07u;
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i + j] & 0x3fu);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += k;
    }
    return true;
}

static bool utf8_whole(const uint8_t *p, size_t n)
{
    uint32_t st = 0;
    return op_ws_utf8_step(&st, p, n) && st == 0;
}

/* Runs the assembler over in[0..n) in chunks; returns a digest of its events and final result. */
static uint64_t assemble(const uint8_t *in, size_t n, size_t cap, size_t chunk)
{
    uint8_t *buf = malloc(cap ? cap : 1);
    struct op_ws_reader r;
    op_ws_reader_init(&r, buf, cap);
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t off = 0;
    int rc = 0;
    while (off < n) {
        size_t len = chunk && n - off > chunk ? chunk : n - off;
        /* a copy of exactly this chunk, so ASan catches any read past len */
        uint8_t *c = malloc(len);
        memcpy(c, in + off, len);
        size_t used = (size_t)-1;
        rc = op_ws_read(&r, c, len, &used);
        free(c);
        if (rc < 0) break;
        if (used > len) abort();
        if (rc == OP_WS_EV_NONE && used != len) abort();
        if (rc != OP_WS_EV_NONE && used == 0) abort();
        if (r.msg_len > cap || r.ctrl_len > OP_WS_MAX_CONTROL) abort();
        off += used;
        if (rc == OP_WS_EV_NONE) continue;
        h = mix(h, &rc, sizeof(rc));
        if (rc == OP_WS_EV_MESSAGE) {
            if (r.msg_opcode != OP_WS_TEXT && r.msg_opcode != OP_WS_BINARY) abort();
            if (r.msg_opcode == OP_WS_TEXT && !utf8_reference(r.msg, r.msg_len)) abort();
            h = mix(h, &r.msg_opcode, 1);
            h = mix(h, r.msg, r.msg_len);
        } else {
            h = mix(h, r.ctrl, r.ctrl_len);
        }
        if (rc == OP_WS_EV_CLOSE) {
            uint16_t code = 0;
            if (op_ws_parse_close(r.ctrl, r.ctrl_len, &code) != 0 || code != r.close_code) abort();
            break;
        }
    }
    free(buf);
    return mix(h, &rc, sizeof(rc));
}

static void headers(const uint8_t *in, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, in, n);
    for (int require = 0; require < 2; require++) {
        struct op_ws_frame f;
        int hl = op_ws_decode_header(c, n, require, &f);
        if (hl > (int)n || hl > OP_WS_MAX_HEADER) abort();
        for (size_t cut = 0; cut < n && cut < OP_WS_MAX_HEADER; cut++) {
            struct op_ws_frame g;
            int p = op_ws_decode_header(c, cut, require, &g);
            if (hl > 0 && cut < (size_t)hl && p != 0) abort();
            if (hl < 0 && p != 0 && p != hl) abort();
        }
        if (hl <= 0) continue;
        if (f.header_len != (size_t)hl || (require && !f.masked)) abort();
        if ((f.opcode & 8) && (!f.fin || f.len > OP_WS_MAX_CONTROL)) abort();
        uint8_t out[OP_WS_MAX_HEADER];
        size_t m = op_ws_encode_header(out, f.fin, f.opcode, f.len);
        if (f.masked) {
            out[1] |= 0x80;
            memcpy(out + m, f.mask, 4);
            m += 4;
        }
        if (m != (size_t)hl || memcmp(out, c, m) != 0) abort();
    }
    free(c);
}

static void utf8_splits(const uint8_t *in, size_t n)
{
    if (n > 64) n = 64;
    bool want = utf8_reference(in, n);
    for (size_t cut = 0; cut <= n; cut++) {
        uint32_t st = 0;
        bool ok = op_ws_utf8_step(&st, in, cut) && op_ws_utf8_step(&st, in + cut, n - cut) && st == 0;
        if (ok != want) abort();
    }
}

static void closes(const uint8_t *in, size_t n)
{
    uint16_t code = 0;
    if (op_ws_parse_close(in, n < OP_WS_MAX_CONTROL ? n : OP_WS_MAX_CONTROL, &code) == 0) {
        if (n >= 2 && !utf8_whole(in + 2, (n < OP_WS_MAX_CONTROL ? n : OP_WS_MAX_CONTROL) - 2)) abort();
        if (n == 0 ? code != OP_WS_CLOSE_NO_STATUS : code < 1000 || code >= 5000) abort();
    }
    if (n < 2) return;
    char reason[200];
    size_t rl = n - 2 < sizeof(reason) - 1 ? n - 2 : sizeof(reason) - 1;
    memcpy(reason, in + 2, rl);
    reason[rl] = '\0';
    uint8_t out[OP_WS_MAX_CONTROL];
    uint16_t c = (uint16_t)(in[0] << 8 | in[1]);
    size_t m = op_ws_close_payload(out, c, reason);
    if (m > OP_WS_MAX_CONTROL) abort();
    if (c == OP_WS_CLOSE_NO_STATUS ? m != 0 : m < 2 || out[0] != in[0] || out[1] != in[1]) abort();
    if (m >= 2 && utf8_reference((const uint8_t *)reason, strlen(reason)) && !utf8_whole(out + 2, m - 2))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t cap = data[0], chunk = data[1] % 17;
    const uint8_t *in = data + 2;
    size_t n = size - 2;
    uint64_t all = assemble(in, n, cap, 0);
    if (assemble(in, n, cap, chunk) != all) abort();
    if (chunk != 1 && assemble(in, n, cap, 1) != all) abort();
    headers(in, n);
    utf8_splits(in, n);
    closes(in, n);
    return 0;
}
