/*
 * wsapp/jwe.c — compact JWE with A256GCMKW key wrapping, A256GCM content encryption and raw DEFLATE (see
 * jwe.h). The token is written the way go-jose writes it for Coder: one protected header whose members
 * come in Go's sorted map order (alg, enc, iv, kid, tag, zip), the wrapped content key, the content IV,
 * the ciphertext and the content tag, each base64url without padding.
 *
 * zlib's state is carved from a fixed arena on the stack instead of malloc, so neither direction touches
 * the heap and the memory a token can make zlib use is bounded by the arena whatever the token says.
 * Every buffer that held a key or plaintext is wiped before returning.
 */
#include "wsapp/jwe.h"

#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "proto/jws.h"
#include "tls/aead.h"

enum {
    CEK_LEN = 32,
    IV_LEN = 12,
    TAG_LEN = 16,
    PARTS = 5,
    /* Decoded bytes of the longest part a token within OP_JWE_MAX_TOKEN can carry. */
    MAX_PART = OP_JWE_MAX_TOKEN / 4 * 3,
    /* The deflater's window: 2^11 bytes reaches back far enough for plaintexts of OP_JWE_MAX_PLAINTEXT
     * bytes. The inflater takes the full 2^15 so it reads what any encoder (go-jose: 2^15) writes. */
    DEFLATE_WBITS = 11,
    DEFLATE_MEMLEVEL = 4,
    INFLATE_WBITS = 15,
    /* zlib 1.2.13 takes 21.8 KiB for the deflater above and 7 KiB of state plus the 32 KiB window for
     * the inflater; an allocation past the arena fails the call with -EIO rather than reaching malloc. */
    DEFLATE_ARENA = 32 * 1024,
    INFLATE_ARENA = 48 * 1024,
};

static const char alg_name[] = "A256GCMKW", enc_name[] = "A256GCM", zip_name[] = "DEF";

/* ---- zlib's allocator: a bump arena, freed as a whole ---- */

struct arena {
    uint8_t *buf;
    size_t cap, used;
};

static voidpf arena_alloc(voidpf opaque, uInt items, uInt size)
{
    struct arena *a = opaque;
    size_t n = (size_t)items * size; /* both are 32-bit: no overflow in 64 bits */
    n = (n + 15) & ~(size_t)15;
    if (n > a->cap - a->used) return Z_NULL;
    void *p = a->buf + a->used;
    a->used += n;
    return p;
}

static void arena_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    (void)p;
}

/* A zeroed z_stream that allocates from a (whose buffer is the caller's stack arena). */
static void arena_stream(z_stream *zs, struct arena *a)
{
    memset(zs, 0, sizeof(*zs));
    zs->zalloc = arena_alloc;
    zs->zfree = arena_free;
    zs->opaque = a;
}

/* ---- parsing ---- */

struct span {
    const char *p;
    size_t n;
};

/* Splits tok into exactly five dot-separated parts. 0, -EINVAL or -EMSGSIZE. */
static int split(const char *tok, size_t len, struct span part[PARTS])
{
    if (len > OP_JWE_MAX_TOKEN) return -EMSGSIZE;
    size_t start = 0;
    int k = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && tok[i] != '.') continue;
        if (k == PARTS) return -EINVAL;
        part[k].p = tok + start;
        part[k].n = i - start;
        k++;
        start = i + 1;
    }
    return k == PARTS ? 0 : -EINVAL;
}

struct header {
    int64_t kid;
    bool zip;
    uint8_t wrap_iv[IV_LEN], wrap_tag[TAG_LEN];
};

/* The kid as Coder writes it (a decimal string) or as a non-negative JSON number. 0 or -ENOKEY. */
static int header_kid(const char *json, size_t len, int64_t *kid)
{
    char s[24];
    int rc = op_json_flat_str(json, len, "kid", s, sizeof(s));
    if (rc == 0) {
        size_t n = strlen(s);
        if (n == 0 || n > 18) return -ENOKEY;
        int64_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') return -ENOKEY;
            k = k * 10 + (s[i] - '0');
        }
        *kid = k;
        return 0;
    }
    int64_t k;
    if (op_json_flat_int(json, len, "kid", &k) != 0 || k < 0) return -ENOKEY;
    *kid = k;
    return 0;
}

/* True if member name is a string equal to want. */
static bool header_is(const char *json, size_t len, const char *name, const char *want)
{
    char s[16];
    return op_json_flat_str(json, len, name, s, sizeof(s)) == 0 && strcmp(s, want) == 0;
}

/* A base64url header member that must decode to exactly n bytes. 0 or -EINVAL. */
static int header_bytes(const char *json, size_t len, const char *name, uint8_t *out, size_t n)
{
    char s[32];
    if (op_json_flat_str(json, len, name, s, sizeof(s)) != 0) return -EINVAL;
    return op_b64url_decode(s, strlen(s), out, n) == (int)n ? 0 : -EINVAL;
}

/* Decodes and checks the protected header. kid_only: just the kid (op_jwe_kid). Returns 0, -EINVAL,
 * -EMSGSIZE, -ENOTSUP (other algorithms, zip or crit) or -ENOKEY (kid missing or not decimal). */
static int parse_header(struct span b64, bool kid_only, struct header *h)
{
    char json[OP_JWS_MAX_HEADER];
    int n = op_b64url_decode(b64.p, b64.n, (uint8_t *)json, sizeof(json));
    if (n == -ENOSPC) return -EMSGSIZE;
    if (n <= 0) return -EINVAL;
    size_t len = (size_t)n;
    if (memchr(json, '\0', len) || !op_json_flat_valid(json, len)) return -EINVAL;
    if (!kid_only) {
        if (!header_is(json, len, "alg", alg_name) || !header_is(json, len, "enc", enc_name)) return -ENOTSUP;
        char c[1];
        if (op_json_flat_str(json, len, "crit", c, sizeof(c)) != -ENOENT) return -ENOTSUP;
        if (op_json_flat_str(json, len, "zip", c, sizeof(c)) == -ENOENT) {
            h->zip = false;
        } else if (header_is(json, len, "zip", zip_name)) {
            h->zip = true;
        } else {
            return -ENOTSUP;
        }
        if (header_bytes(json, len, "iv", h->wrap_iv, IV_LEN) != 0 ||
            header_bytes(json, len, "tag", h->wrap_tag, TAG_LEN) != 0)
            return -EINVAL;
    }
    return header_kid(json, len, &h->kid);
}

int op_jwe_kid(const char *tok, size_t len, int64_t *kid)
{
    struct span part[PARTS];
    if (split(tok, len, part) != 0) return -EINVAL;
    struct header h;
    int rc = parse_header(part[0], true, &h);
    if (rc == -ENOKEY) return rc;
    if (rc != 0) return -EINVAL;
    *kid = h.kid;
    return 0;
}

/* Inflates raw DEFLATE in[0..n) into out[0..cap). Returns the length, -EMSGSIZE (more than cap bytes),
 * -EINVAL (not one complete stream, or bytes after it) or -EIO. */
static int inflate_capped(const uint8_t *in, size_t n, char *out, size_t cap)
{
    alignas(16) uint8_t mem[INFLATE_ARENA];
    struct arena a = {mem, sizeof(mem), 0};
    z_stream zs;
    arena_stream(&zs, &a);
    if (inflateInit2(&zs, -INFLATE_WBITS) != Z_OK) return -EIO;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)cap;
    int zr = inflate(&zs, Z_FINISH);
    size_t got = cap - zs.avail_out;
    bool full = zs.avail_out == 0, rest = zs.avail_in != 0;
    inflateEnd(&zs);
    explicit_bzero(mem, a.used); /* the window holds plaintext */
    int rc = (int)got;
    if (zr == Z_STREAM_END) {
        if (rest) rc = -EINVAL;
    } else if (zr == Z_MEM_ERROR) {
        rc = -EIO;
    } else {
        rc = full ? -EMSGSIZE : -EINVAL;
    }
    if (rc < 0) explicit_bzero(out, got);
    return rc;
}

int op_jwe_decrypt(const char *tok, size_t len, const uint8_t key[32], char *out, size_t outlen)
{
    struct span part[PARTS];
    int rc = split(tok, len, part);
    if (rc != 0) return rc;
    struct header h;
    rc = parse_header(part[0], false, &h);
    if (rc == -ENOKEY) return -EINVAL;
    if (rc != 0) return rc;

    uint8_t ek[CEK_LEN], iv[IV_LEN], tag[TAG_LEN], ct[MAX_PART];
    if (op_b64url_decode(part[1].p, part[1].n, ek, sizeof(ek)) != CEK_LEN ||
        op_b64url_decode(part[2].p, part[2].n, iv, sizeof(iv)) != IV_LEN ||
        op_b64url_decode(part[4].p, part[4].n, tag, sizeof(tag)) != TAG_LEN)
        return -EINVAL;
    int ctlen = op_b64url_decode(part[3].p, part[3].n, ct, sizeof(ct));
    if (ctlen < 0) return -EINVAL;

    uint8_t cek[CEK_LEN], pt[MAX_PART];
    rc = op_aes256gcm_open(key, h.wrap_iv, NULL, 0, ek, sizeof(ek), h.wrap_tag, cek);
    if (rc != 0) return rc;
    /* The AAD is the protected header exactly as it appears in the token. */
    rc = op_aes256gcm_open(cek, iv, (const uint8_t *)part[0].p, part[0].n, ct, (size_t)ctlen, tag, pt);
    explicit_bzero(cek, sizeof(cek));
    if (rc != 0) return rc;

    size_t cap = outlen ? outlen - 1 : 0;
    if (cap > OP_JWE_MAX_PLAINTEXT) cap = OP_JWE_MAX_PLAINTEXT;
    if (outlen == 0) {
        rc = -EMSGSIZE;
    } else if (h.zip) {
        rc = inflate_capped(pt, (size_t)ctlen, out, cap);
    } else if ((size_t)ctlen > cap) {
        rc = -EMSGSIZE;
    } else {
        memcpy(out, pt, (size_t)ctlen);
        rc = ctlen;
    }
    explicit_bzero(pt, (size_t)ctlen);
    if (rc < 0) return rc;
    /* The claims are JSON text: an embedded NUL would hide the rest from string readers. */
    if (memchr(out, '\0', (size_t)rc)) {
        explicit_bzero(out, (size_t)rc);
        return -EINVAL;
    }
    out[rc] = '\0';
    return rc;
}

/* ---- encryption ---- */

/* Raw DEFLATE of in[0..n) into out[0..cap). Returns the length or -EIO. */
static int deflate_into(const char *in, size_t n, uint8_t *out, size_t cap)
{
    alignas(16) uint8_t mem[DEFLATE_ARENA];
    struct arena a = {mem, sizeof(mem), 0};
    z_stream zs;
    arena_stream(&zs, &a);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -DEFLATE_WBITS, DEFLATE_MEMLEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -EIO;
    int rc = -EIO;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) == Z_STREAM_END) rc = (int)(cap - zs.avail_out);
    deflateEnd(&zs);
    explicit_bzero(mem, a.used);
    return rc;
}

int op_jwe_encrypt(const char *plaintext, size_t len, int64_t kid, const uint8_t key[32], char *out,
                   size_t outlen)
{
    if (kid < 0 || len > OP_JWE_MAX_PLAINTEXT || (len && memchr(plaintext, '\0', len))) return -EINVAL;
    /* Incompressible input comes out as stored blocks: 5 bytes of framing per block at most every 1 KiB. */
    uint8_t z[OP_JWE_MAX_PLAINTEXT + OP_JWE_MAX_PLAINTEXT / 64 + 64], ct[sizeof(z)];
    int zlen = deflate_into(plaintext, len, z, sizeof(z));
    if (zlen < 0) return zlen;

    uint8_t cek[CEK_LEN], ek[CEK_LEN], wiv[IV_LEN], wtag[TAG_LEN], iv[IV_LEN], tag[TAG_LEN];
    int rc = -EIO;
    if (op_random_bytes(cek, sizeof(cek)) != 0 || op_random_bytes(wiv, sizeof(wiv)) != 0 ||
        op_random_bytes(iv, sizeof(iv)) != 0 ||
        op_aes256gcm_seal(key, wiv, NULL, 0, cek, sizeof(cek), ek, wtag))
        goto done;

    char wiv64[24], wtag64[32], header[192];
    op_b64url_encode(wiv, sizeof(wiv), wiv64, sizeof(wiv64));
    op_b64url_encode(wtag, sizeof(wtag), wtag64, sizeof(wtag64));
    int hl = snprintf(
        header, sizeof(header),
        "{\"alg\":\"%s\",\"enc\":\"%s\",\"iv\":\"%s\",\"kid\":\"%lld\",\"tag\":\"%s\",\"zip\":\"%s\"}",
        alg_name, enc_name, wiv64, (long long)kid, wtag64, zip_name);
    size_t need = op_b64url_len((size_t)hl) + op_b64url_len(CEK_LEN) + op_b64url_len(IV_LEN) +
                  op_b64url_len((size_t)zlen) + op_b64url_len(TAG_LEN) + (PARTS - 1) + 1;
    if (need > outlen) {
        rc = -ENOSPC;
        goto done;
    }
    int o = op_b64url_encode(header, (size_t)hl, out, outlen);
    if (op_aes256gcm_seal(cek, iv, (const uint8_t *)out, (size_t)o, z, (size_t)zlen, ct, tag) != 0) goto done;
    const struct {
        const uint8_t *p;
        size_t n;
    } rest[] = {{ek, sizeof(ek)}, {iv, sizeof(iv)}, {ct, (size_t)zlen}, {tag, sizeof(tag)}};
    for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++) {
        out[o++] = '.';
        o += op_b64url_encode(rest[i].p, rest[i].n, out + o, outlen - (size_t)o);
    }
    rc = o;
done:
    explicit_bzero(cek, sizeof(cek));
    explicit_bzero(z, sizeof(z));
    return rc;
}
