/*
 * proto/agent_frame.c — encoder and decoder of the agent control frames (see agent_frame.h). Payloads,
 * all integers big-endian:
 *   HELLO        u16 version (>= 1) | u16 max spares | agent version text (0..64, printable ASCII)
 *   WELCOME      u16 version (>= 1) | u16 spares wanted | u32 heartbeat ms (>= 1) | region name (1..64)
 *   PING, PONG   u64 nonce (exactly 8 bytes)
 *   SPARES       u16 count (>= 1, exactly 2 bytes)
 *   CREDENTIAL   JWS text (1..4096, base64url characters and two dots)
 *   GOAWAY       u16 code | reason text (0..256, printable ASCII)
 *   STREAM_FAIL  u16 port (>= 1) | u16 code (1..5) | reason text (0..256, printable ASCII)
 */
#include "proto/agent_frame.h"

#include <errno.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, (uint16_t)(v >> 16));
    wr16(p + 2, (uint16_t)v);
}

static bool printable(const char *s, size_t n, size_t max, bool allow_empty)
{
    if (n > max || (n == 0 && !allow_empty)) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return false;
    return true;
}

static bool jws_text(const char *s, size_t n)
{
    if (n == 0 || n > OP_AF_MAX_CREDENTIAL) return false;
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.')
            dots++;
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                   c == '_'))
            return false;
    }
    return dots == 2;
}

/* Checks the fields of a frame against the payload rules; shared by both directions. */
static bool fields_valid(const struct op_af_frame *f)
{
    switch (f->type) {
    case OP_AF_HELLO:
        return f->version >= 1 && printable(f->text, f->text_len, OP_AF_MAX_NAME, true);
    case OP_AF_WELCOME:
        return f->version >= 1 && f->heartbeat_ms >= 1 &&
               printable(f->text, f->text_len, OP_AF_MAX_NAME, false);
    case OP_AF_PING:
    case OP_AF_PONG:
        return true;
    case OP_AF_SPARES:
        return f->count >= 1;
    case OP_AF_CREDENTIAL:
        return jws_text(f->text, f->text_len);
    case OP_AF_GOAWAY:
        return printable(f->text, f->text_len, OP_AF_MAX_REASON, true);
    case OP_AF_STREAM_FAIL:
        return f->port >= 1 && f->code >= OP_AF_FAIL_REFUSED && f->code <= OP_AF_FAIL_OTHER &&
               printable(f->text, f->text_len, OP_AF_MAX_REASON, true);
    default:
        return false;
    }
}

int op_af_decode(const uint8_t *buf, size_t len, struct op_af_frame *f)
{
    if (len < OP_AF_HEADER_LEN) return 0;
    size_t plen = rd16(buf);
    if (plen > OP_AF_MAX_PAYLOAD) return -EMSGSIZE;
    uint8_t type = buf[2], flags = buf[3];
    if (flags & ~OP_AF_FLAG_IGNORABLE) return -EPROTO;
    if (len < OP_AF_HEADER_LEN + plen) return 0;
    const uint8_t *p = buf + OP_AF_HEADER_LEN;
    memset(f, 0, sizeof(*f));
    f->flags = flags;
    f->raw_type = type;
    f->type = (enum op_af_type)type;
    switch (type) {
    case OP_AF_HELLO:
        if (plen < 4) return -EPROTO;
        f->version = rd16(p);
        f->count = rd16(p + 2);
        f->text = (const char *)p + 4;
        f->text_len = plen - 4;
        break;
    case OP_AF_WELCOME:
        if (plen < 8) return -EPROTO;
        f->version = rd16(p);
        f->count = rd16(p + 2);
        f->heartbeat_ms = rd32(p + 4);
        f->text = (const char *)p + 8;
        f->text_len = plen - 8;
        break;
    case OP_AF_PING:
    case OP_AF_PONG:
        if (plen != 8) return -EPROTO;
        f->nonce = (uint64_t)rd32(p) << 32 | rd32(p + 4);
        break;
    case OP_AF_SPARES:
        if (plen != 2) return -EPROTO;
        f->count = rd16(p);
        break;
    case OP_AF_CREDENTIAL:
        f->text = (const char *)p;
        f->text_len = plen;
        break;
    case OP_AF_GOAWAY:
        if (plen < 2) return -EPROTO;
        f->code = rd16(p);
        f->text = (const char *)p + 2;
        f->text_len = plen - 2;
        break;
    case OP_AF_STREAM_FAIL:
        if (plen < 4) return -EPROTO;
        f->port = rd16(p);
        f->code = rd16(p + 2);
        f->text = (const char *)p + 4;
        f->text_len = plen - 4;
        break;
    default:
        if (!(flags & OP_AF_FLAG_IGNORABLE)) return -EPROTO;
        f->type = OP_AF_UNKNOWN;
        f->text = (const char *)p;
        f->text_len = plen;
        return (int)(OP_AF_HEADER_LEN + plen);
    }
    if (!fields_valid(f)) return -EPROTO;
    return (int)(OP_AF_HEADER_LEN + plen);
}

int op_af_encode(const struct op_af_frame *f, uint8_t *out, size_t outlen)
{
    if ((f->flags & ~OP_AF_FLAG_IGNORABLE) || !fields_valid(f) || (f->text_len && !f->text)) return -EINVAL;
    uint8_t fixed[8];
    size_t fl = 0;
    switch (f->type) {
    case OP_AF_HELLO:
        wr16(fixed, f->version);
        wr16(fixed + 2, f->count);
        fl = 4;
        break;
    case OP_AF_WELCOME:
        wr16(fixed, f->version);
        wr16(fixed + 2, f->count);
        wr32(fixed + 4, f->heartbeat_ms);
        fl = 8;
        break;
    case OP_AF_PING:
    case OP_AF_PONG:
        wr32(fixed, (uint32_t)(f->nonce >> 32));
        wr32(fixed + 4, (uint32_t)f->nonce);
        fl = 8;
        break;
    case OP_AF_SPARES:
        wr16(fixed, f->count);
        fl = 2;
        break;
    case OP_AF_CREDENTIAL:
        break;
    case OP_AF_GOAWAY:
        wr16(fixed, f->code);
        fl = 2;
        break;
    case OP_AF_STREAM_FAIL:
        wr16(fixed, f->port);
        wr16(fixed + 2, f->code);
        fl = 4;
        break;
    default:
        return -EINVAL;
    }
    bool has_text = f->type != OP_AF_PING && f->type != OP_AF_PONG && f->type != OP_AF_SPARES;
    size_t tl = has_text ? f->text_len : 0;
    size_t plen = fl + tl;
    if (plen > OP_AF_MAX_PAYLOAD) return -EINVAL;
    if (outlen < OP_AF_HEADER_LEN + plen) return -ENOSPC;
    wr16(out, (uint16_t)plen);
    out[2] = (uint8_t)f->type;
    out[3] = f->flags;
    memcpy(out + OP_AF_HEADER_LEN, fixed, fl);
    if (tl) memcpy(out + OP_AF_HEADER_LEN + fl, f->text, tl);
    return (int)(OP_AF_HEADER_LEN + plen);
}

const char *op_af_type_name(enum op_af_type t)
{
    switch (t) {
    case OP_AF_HELLO:
        return "HELLO";
    case OP_AF_WELCOME:
        return "WELCOME";
    case OP_AF_PING:
        return "PING";
    case OP_AF_PONG:
        return "PONG";
    case OP_AF_SPARES:
        return "SPARES";
    case OP_AF_CREDENTIAL:
        return "CREDENTIAL";
    case OP_AF_GOAWAY:
        return "GOAWAY";
    case OP_AF_STREAM_FAIL:
        return "STREAM_FAIL";
    default:
        return "UNKNOWN";
    }
}
