/* proto/jws.c — HS512 compact JWS, base64url and the flat JSON reader (see jws.h). */
#include "proto/jws.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t op_b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

int op_b64url_encode(const void *in, size_t n, char *out, size_t outlen)
{
    size_t need = op_b64url_len(n);
    if (outlen < need + 1 || need > (size_t)INT32_MAX) return -ENOSPC;
    const uint8_t *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return (int)o;
}

static int b64v(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int op_b64url_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    if (n % 4 == 1) return -EINVAL;
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > outlen || need > (size_t)INT32_MAX) return -ENOSPC;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64v(in[i]);
        if (v < 0) return -EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Canonical encodings leave the unused low bits zero. */
    if (acc != 0) return -EINVAL;
    return (int)o;
}

/* ---- flat JSON reader ---- */

struct cur {
    const char *p, *end;
};

static void ws(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0) return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Skips a string starting at '"'; on success c->p is after the closing quote. */
static bool skip_string(struct cur *c)
{
    if (c->p >= c->end || *c->p != '"') return false;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20) return false;
        if (ch == '\\') {
            if (c->p + 1 >= c->end) return false;
            char e = c->p[1];
            if (e == 'u') {
                if (c->end - c->p < 6 || hex4(c->p + 2) < 0) return false;
                c->p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0') return false;
            c->p += 2;
            continue;
        }
        c->p++;
    }
    return false;
}

static bool skip_number(struct cur *c)
{
    const char *s = c->p;
    if (c->p < c->end && *c->p == '-') c->p++;
    if (c->p >= c->end) return false;
    if (*c->p == '0') {
        c->p++;
    } else if (*c->p >= '1' && *c->p <= '9') {
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    } else {
        return false;
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        const char *d = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
        if (c->p == d) return false;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        const char *d = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
        if (c->p == d) return false;
    }
    return c->p > s;
}

static bool skip_lit(struct cur *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return false;
    c->p += n;
    return true;
}

static bool skip_value(struct cur *c, int depth);

static bool skip_container(struct cur *c, int depth, char open, char close)
{
    if (depth > 16) return false;
    c->p++; /* open */
    (void)open;
    ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return true;
    }
    for (;;) {
        if (close == '}') {
            if (!skip_string(c)) return false;
            ws(c);
            if (c->p >= c->end || *c->p != ':') return false;
            c->p++;
            ws(c);
        }
        if (!skip_value(c, depth + 1)) return false;
        ws(c);
        if (c->p >= c->end) return false;
        if (*c->p == close) {
            c->p++;
            return true;
        }
        if (*c->p != ',') return false;
        c->p++;
        ws(c);
    }
}

static bool skip_value(struct cur *c, int depth)
{
    if (c->p >= c->end) return false;
    switch (*c->p) {
    case '"':
        return skip_string(c);
    case '{':
        return skip_container(c, depth, '{', '}');
    case '[':
        return skip_container(c, depth, '[', ']');
    case 't':
        return skip_lit(c, "true");
    case 'f':
        return skip_lit(c, "false");
    case 'n':
        return skip_lit(c, "null");
    default:
        return skip_number(c);
    }
}

bool op_json_flat_valid(const char *json, size_t len)
{
    struct cur c = {json, json + len};
    ws(&c);
    if (c.p >= c.end || *c.p != '{' || !skip_value(&c, 0)) return false;
    ws(&c);
    return c.p == c.end;
}

/* Finds the top-level member name; sets *v to its value's span. 0, -ENOENT or -EINVAL. */
static int find_member(const char *json, size_t len, const char *name, struct cur *v)
{
    if (!op_json_flat_valid(json, len)) return -EINVAL;
    struct cur c = {json, json + len};
    size_t nlen = strlen(name);
    ws(&c);
    c.p++; /* '{' */
    ws(&c);
    while (c.p < c.end && *c.p == '"') {
        const char *ks = c.p + 1;
        skip_string(&c);
        size_t klen = (size_t)(c.p - 1 - ks);
        ws(&c);
        c.p++; /* ':' */
        ws(&c);
        const char *vs = c.p;
        skip_value(&c, 1);
        if (klen == nlen && memcmp(ks, name, nlen) == 0) {
            v->p = vs;
            v->end = c.p;
            return 0;
        }
        ws(&c);
        if (c.p < c.end && *c.p == ',') c.p++;
        ws(&c);
    }
    return -ENOENT;
}

/* Unescapes the string value v (with its quotes, already checked by skip_string) into out plus a NUL. */
static int unescape(struct cur v, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *q = v.p + 1; q < v.end - 1; q++) {
        char ch = *q;
        if (ch == '\\') {
            char e = q[1];
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *f = strchr(from, e);
            if (e == 'u') {
                int cp = hex4(q + 2);
                if (cp <= 0 || cp >= 0x80) return -EINVAL;
                ch = (char)cp;
                q += 5;
            } else if (f) {
                ch = to[f - from];
                q++;
            } else {
                return -EINVAL;
            }
        }
        if (o + 1 >= outlen) return -ENOSPC;
        out[o++] = ch;
    }
    if (outlen == 0) return -ENOSPC;
    out[o] = '\0';
    return 0;
}

int op_json_flat_str(const char *json, size_t len, const char *name, char *out, size_t outlen)
{
    struct cur v;
    int rc = find_member(json, len, name, &v);
    if (rc) return rc;
    if (*v.p != '"') return -EINVAL;
    return unescape(v, out, outlen);
}

int op_json_flat_obj(const char *json, size_t len, const char *name, const char **obj, size_t *objlen)
{
    struct cur v;
    int rc = find_member(json, len, name, &v);
    if (rc) return rc;
    if (*v.p != '{') return -EINVAL;
    *obj = v.p;
    *objlen = (size_t)(v.end - v.p);
    return 0;
}

int op_json_flat_has_str(const char *json, size_t len, const char *name, const char *want, bool *found)
{
    struct cur v;
    int rc = find_member(json, len, name, &v);
    if (rc) return rc;
    char buf[256];
    size_t wl = strlen(want);
    *found = false;
    if (*v.p == '"') { /* a single string stands for a one-element array */
        rc = unescape(v, buf, sizeof(buf));
        if (rc && rc != -ENOSPC) return rc;
        *found = rc == 0 && strlen(buf) == wl && memcmp(buf, want, wl) == 0;
        return 0;
    }
    if (*v.p != '[') return -EINVAL;
    struct cur c = {v.p + 1, v.end};
    ws(&c);
    while (c.p < c.end && *c.p != ']') {
        if (*c.p != '"') return -EINVAL;
        struct cur e = c;
        skip_string(&c); /* the whole value was checked by find_member */
        e.end = c.p;
        rc = unescape(e, buf, sizeof(buf));
        if (rc && rc != -ENOSPC) return rc;
        if (rc == 0 && strlen(buf) == wl && memcmp(buf, want, wl) == 0) *found = true;
        ws(&c);
        if (c.p < c.end && *c.p == ',') c.p++;
        ws(&c);
    }
    return 0;
}

int op_json_flat_int(const char *json, size_t len, const char *name, int64_t *out)
{
    struct cur v;
    int rc = find_member(json, len, name, &v);
    if (rc) return rc;
    const char *q = v.p;
    bool neg = *q == '-';
    if (neg) q++;
    if (q >= v.end || v.end - q > 18) return -EINVAL; /* at most 18 digits: no overflow */
    int64_t n = 0;
    for (; q < v.end; q++) {
        if (*q < '0' || *q > '9') return -EINVAL;
        n = n * 10 + (*q - '0');
    }
    *out = neg ? -n : n;
    return 0;
}

/* ---- JWS ---- */

int op_jws_sign(const char *payload, size_t len, int64_t kid, const uint8_t *key, size_t keylen, char *out,
                size_t outlen)
{
    if (kid < 0 || len > OP_JWS_MAX_PAYLOAD) return -EINVAL;
    char header[64];
    int hl = snprintf(header, sizeof(header), "{\"alg\":\"HS512\",\"kid\":\"%lld\"}", (long long)kid);
    size_t need = op_b64url_len((size_t)hl) + 1 + op_b64url_len(len) + 1 + op_b64url_len(OP_SHA512_LEN) + 1;
    if (outlen < need) return -ENOSPC;
    int o = op_b64url_encode(header, (size_t)hl, out, outlen);
    out[o++] = '.';
    o += op_b64url_encode(payload, len, out + o, outlen - (size_t)o);
    uint8_t mac[OP_SHA512_LEN];
    op_hmac_sha512(key, keylen, out, (size_t)o, mac);
    out[o++] = '.';
    o += op_b64url_encode(mac, sizeof(mac), out + o, outlen - (size_t)o);
    return o;
}

int op_jws_parse(const char *tok, size_t len, struct op_jws *out)
{
    if (len > OP_JWS_MAX_TOKEN) return -EMSGSIZE;
    const char *d1 = memchr(tok, '.', len);
    if (!d1) return -EINVAL;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok))) return -EINVAL;
    char header[OP_JWS_MAX_HEADER];
    int hl = op_b64url_decode(tok, (size_t)(d1 - tok), (uint8_t *)header, sizeof(header));
    if (hl == -ENOSPC) return -EMSGSIZE;
    if (hl <= 0) return -EINVAL;
    int pl = op_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), (uint8_t *)out->payload, OP_JWS_MAX_PAYLOAD);
    if (pl == -ENOSPC) return -EMSGSIZE;
    if (pl <= 0) return -EINVAL;
    out->payload[pl] = '\0';
    out->payload_len = (size_t)pl;
    if (op_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), out->sig, sizeof(out->sig)) != OP_SHA512_LEN)
        return -EINVAL;
    if (!op_json_flat_valid(header, (size_t)hl) || !op_json_flat_valid(out->payload, out->payload_len))
        return -EINVAL;
    if (memchr(header, '\0', (size_t)hl) || memchr(out->payload, '\0', out->payload_len)) return -EINVAL;
    char alg[16];
    if (op_json_flat_str(header, (size_t)hl, "alg", alg, sizeof(alg)) != 0 || strcmp(alg, "HS512") != 0)
        return -ENOTSUP;
    struct cur crit;
    if (find_member(header, (size_t)hl, "crit", &crit) != -ENOENT) return -ENOTSUP;
    char kid[24];
    int64_t k = -1;
    int rc = op_json_flat_str(header, (size_t)hl, "kid", kid, sizeof(kid));
    if (rc == 0) {
        size_t kl = strlen(kid);
        if (kl == 0 || kl > 18) return -ENOKEY;
        k = 0;
        for (size_t i = 0; i < kl; i++) {
            if (kid[i] < '0' || kid[i] > '9') return -ENOKEY;
            k = k * 10 + (kid[i] - '0');
        }
    } else if (op_json_flat_int(header, (size_t)hl, "kid", &k) != 0 || k < 0) {
        return -ENOKEY;
    }
    out->kid = k;
    out->signing_len = (size_t)(d2 - tok);
    return 0;
}

bool op_jws_mac_ok(const struct op_jws *j, const char *tok, const uint8_t *key, size_t keylen)
{
    uint8_t mac[OP_SHA512_LEN];
    op_hmac_sha512(key, keylen, tok, j->signing_len, mac);
    uint8_t diff = 0;
    for (size_t i = 0; i < OP_SHA512_LEN; i++)
        diff |= (uint8_t)(mac[i] ^ j->sig[i]);
    volatile uint8_t *vm = mac;
    for (size_t i = 0; i < sizeof(mac); i++)
        vm[i] = 0;
    return diff == 0;
}
