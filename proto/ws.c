/* proto/ws.c — the WebSocket wire format (RFC 6455), allocation-free (see ws.h). */
#include "proto/ws.h"

#include <errno.h>
#include <string.h>

#include "proto/sha1.h"

const char *op_ws_opcode_name(int opcode)
{
    switch (opcode) {
    case OP_WS_CONT:
        return "continuation";
    case OP_WS_TEXT:
        return "text";
    case OP_WS_BINARY:
        return "binary";
    case OP_WS_CLOSE:
        return "close";
    case OP_WS_PING:
        return "ping";
    case OP_WS_PONG:
        return "pong";
    default:
        return "reserved";
    }
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Standard base64 with padding (RFC 4648 §4); out gets 4 * ceil(n / 3) characters and a NUL. */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? B64[v & 63] : '=';
    }
    out[o] = '\0';
}

int op_ws_accept_key(const char *key, size_t key_len, char out[OP_WS_ACCEPT_LEN + 1])
{
    /* 16 bytes are 22 base64 digits (the last one carries 2 bits, its low 4 bits zero) and "==". */
    if (!key || key_len != 24 || key[22] != '=' || key[23] != '=') return -EINVAL;
    for (size_t i = 0; i < 22; i++)
        if (b64_value(key[i]) < 0) return -EINVAL;
    if (b64_value(key[21]) & 15) return -EINVAL;
    struct op_sha1 c;
    uint8_t d[OP_SHA1_LEN];
    op_sha1_init(&c);
    op_sha1_update(&c, key, key_len);
    op_sha1_update(&c, OP_WS_GUID, sizeof(OP_WS_GUID) - 1);
    op_sha1_final(&c, d);
    b64_encode(d, sizeof(d), out);
    return 0;
}

static bool is_control(uint8_t opcode)
{
    return opcode & 0x8;
}

static bool known_opcode(uint8_t opcode)
{
    return opcode <= OP_WS_BINARY || (opcode >= OP_WS_CLOSE && opcode <= OP_WS_PONG);
}

int op_ws_decode_header(const uint8_t *buf, size_t len, bool require_mask, struct op_ws_frame *f)
{
    if (len < 2) return 0;
    /* Everything the first two bytes can refuse is refused before waiting for the rest. */
    uint8_t opcode = buf[0] & 0x0f, len7 = buf[1] & 0x7f;
    bool fin = buf[0] & 0x80, masked = buf[1] & 0x80;
    if (buf[0] & 0x70) return OP_WS_EPROTO;
    if (!known_opcode(opcode)) return OP_WS_EPROTO;
    if (is_control(opcode) && (!fin || len7 > OP_WS_MAX_CONTROL)) return OP_WS_EPROTO;
    if (require_mask && !masked) return OP_WS_EPROTO;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t hl = 2 + ext + (masked ? 4 : 0);
    uint64_t plen = len7;
    if (len < 2 + ext) return 0;
    if (ext) {
        plen = 0;
        for (size_t i = 0; i < ext; i++)
            plen = plen << 8 | buf[2 + i];
        /* the shortest form is mandatory; a 64-bit length must not use the top bit */
        if (ext == 2 && plen < 126) return OP_WS_EPROTO;
        if (ext == 8 && (plen >> 63 || plen <= 0xffff)) return OP_WS_EPROTO;
    }
    if (len < hl) return 0;
    f->fin = fin;
    f->opcode = opcode;
    f->masked = masked;
    if (masked)
        memcpy(f->mask, buf + 2 + ext, 4);
    else
        memset(f->mask, 0, 4);
    f->len = plen;
    f->header_len = hl;
    return (int)hl;
}

void op_ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        data[i] ^= mask[(offset + i) & 3];
}

size_t op_ws_encode_header(uint8_t *out, bool fin, uint8_t opcode, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t op_ws_close_payload(uint8_t *out, uint16_t code, const char *reason)
{
    /* 1005 means "no code": expressed on the wire as an empty close payload, never as the code */
    if (code == OP_WS_CLOSE_NO_STATUS) return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t n = reason ? strlen(reason) : 0;
    if (n > OP_WS_MAX_CLOSE_TEXT) {
        n = OP_WS_MAX_CLOSE_TEXT;
        while (n > 0 && ((uint8_t)reason[n] & 0xc0) == 0x80) /* do not split a character */
            n--;
    }
    if (n) memcpy(out + 2, reason, n);
    return 2 + n;
}

static bool close_code_ok(uint16_t code)
{
    if (code >= 3000 && code <= 4999) return true; /* registered (3xxx) and private (4xxx) codes */
    if (code < 1000 || code > 1014) return false;  /* unused, unassigned or undefined */
    return code != 1004 && code != 1005 && code != 1006;
}

int op_ws_parse_close(const uint8_t *p, size_t len, uint16_t *code)
{
    if (len == 0) {
        *code = OP_WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1) return OP_WS_EPROTO;
    uint16_t c = (uint16_t)(p[0] << 8 | p[1]);
    if (!close_code_ok(c)) return OP_WS_EPROTO;
    uint32_t st = 0;
    if (!op_ws_utf8_step(&st, p + 2, len - 2) || st != 0) return OP_WS_EINVALID;
    *code = c;
    return 0;
}

/* UTF-8 state: bits 0-7 the continuation bytes still due, bits 8-15 and 16-23 the lowest and highest
 * value the next one may take (the first continuation is narrowed to refuse overlongs, surrogates and
 * code points over U+10FFFF). UTF8_REJECT sticks once reached. */
#define UTF8_REJECT          0xffffffffu
#define UTF8_NEED(n, lo, hi) ((uint32_t)(n) | (uint32_t)(lo) << 8 | (uint32_t)(hi) << 16)

bool op_ws_utf8_step(uint32_t *state, const uint8_t *p, size_t len)
{
    uint32_t st = *state;
    if (st == UTF8_REJECT) return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = p[i];
        if (st == 0) {
            if (b < 0x80) continue;
            if (b >= 0xc2 && b <= 0xdf)
                st = UTF8_NEED(1, 0x80, 0xbf);
            else if (b == 0xe0)
                st = UTF8_NEED(2, 0xa0, 0xbf);
            else if (b == 0xed)
                st = UTF8_NEED(2, 0x80, 0x9f);
            else if (b >= 0xe1 && b <= 0xef)
                st = UTF8_NEED(2, 0x80, 0xbf);
            else if (b == 0xf0)
                st = UTF8_NEED(3, 0x90, 0xbf);
            else if (b >= 0xf1 && b <= 0xf3)
                st = UTF8_NEED(3, 0x80, 0xbf);
            else if (b == 0xf4)
                st = UTF8_NEED(3, 0x80, 0x8f);
            else
                goto reject;
            continue;
        }
        if (b < (uint8_t)(st >> 8) || b > (uint8_t)(st >> 16)) goto reject;
        uint32_t need = (st & 0xff) - 1;
        st = need ? UTF8_NEED(need, 0x80, 0xbf) : 0;
    }
    *state = st;
    return true;
reject:
    *state = UTF8_REJECT;
    return false;
}

void op_ws_reader_init(struct op_ws_reader *r, uint8_t *buf, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->msg = buf;
    r->msg_cap = cap;
}

/* Checks a new frame's header against the message in progress and prepares its payload. */
static int start_frame(struct op_ws_reader *r)
{
    const struct op_ws_frame *f = &r->f;
    if (is_control(f->opcode)) {
        r->ctrl_len = 0;
    } else {
        if (f->opcode == OP_WS_CONT && !r->msg_opcode) return OP_WS_EPROTO;
        if (f->opcode != OP_WS_CONT) {
            if (r->msg_opcode) return OP_WS_EPROTO;
            r->msg_opcode = f->opcode;
            r->msg_len = 0;
            r->utf8 = 0;
        }
        if (f->len > r->msg_cap - r->msg_len) return OP_WS_ETOOBIG;
    }
    r->in_payload = true;
    r->got = 0;
    return 0;
}

/* The frame's payload is complete: the event it makes, or OP_WS_EV_NONE for a non-final fragment. */
static int end_frame(struct op_ws_reader *r)
{
    r->in_payload = false;
    switch (r->f.opcode) {
    case OP_WS_PING:
        return OP_WS_EV_PING;
    case OP_WS_PONG:
        return OP_WS_EV_PONG;
    case OP_WS_CLOSE: {
        int rc = op_ws_parse_close(r->ctrl, r->ctrl_len, &r->close_code);
        return rc < 0 ? rc : OP_WS_EV_CLOSE;
    }
    default:
        if (!r->f.fin) return OP_WS_EV_NONE;
        if (r->msg_opcode == OP_WS_TEXT && r->utf8 != 0) return OP_WS_EINVALID; /* ends mid-character */
        return OP_WS_EV_MESSAGE;
    }
}

int op_ws_read(struct op_ws_reader *r, const uint8_t *in, size_t len, size_t *used)
{
    /* The message handed out by the previous call is done: the last frame was a final data frame. */
    if (!r->in_payload && r->hdr_len == 0 && r->msg_opcode && r->f.fin && !is_control(r->f.opcode)) {
        r->msg_opcode = 0;
        r->msg_len = 0;
        r->utf8 = 0;
    }
    size_t off = 0;
    int rc;
    *used = 0;
    while (off < len || r->in_payload) {
        if (!r->in_payload) {
            /* Gather header bytes; bytes past the header stay in `in` (the decoder reports its length). */
            size_t old = r->hdr_len, take = len - off;
            if (take > OP_WS_MAX_HEADER - old) take = OP_WS_MAX_HEADER - old;
            memcpy(r->hdr + old, in + off, take);
            rc = op_ws_decode_header(r->hdr, old + take, true, &r->f);
            if (rc < 0) return rc;
            if (rc == 0) {
                r->hdr_len = old + take;
                off += take;
                continue;
            }
            off += (size_t)rc - old;
            r->hdr_len = 0;
            if ((rc = start_frame(r)) < 0) return rc;
        }
        uint64_t want = r->f.len - r->got;
        size_t n = len - off < want ? len - off : (size_t)want;
        bool ctrl = is_control(r->f.opcode);
        uint8_t *dst = ctrl ? r->ctrl + r->ctrl_len : r->msg + r->msg_len;
        if (n) {
            memcpy(dst, in + off, n);
            op_ws_unmask(dst, n, r->f.mask, r->got);
            if (!ctrl && r->msg_opcode == OP_WS_TEXT && !op_ws_utf8_step(&r->utf8, dst, n))
                return OP_WS_EINVALID;
            if (ctrl)
                r->ctrl_len += n;
            else
                r->msg_len += n;
            r->got += n;
            off += n;
        }
        if (r->got < r->f.len) break; /* input exhausted mid-payload */
        rc = end_frame(r);
        if (rc != OP_WS_EV_NONE) {
            *used = off;
            return rc;
        }
    }
    *used = off;
    return OP_WS_EV_NONE;
}
