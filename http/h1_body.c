/*
 * http/h1_body.c — where a message body ends: a Content-Length countdown or a strict chunked state
 * machine (sizes, extensions, trailers), so that a pipelined next message never rides along.
 */
#include "http/h1_internal.h"

/* ---------------------------------------------------------------------------------------------------- */
/* Body tracker                                                                                           */

enum body_state {
    BS_DONE,
    BS_ERROR,
    BS_LENGTH,
    BS_CLOSE,
    CS_SIZE,     /* hex digits of a chunk-size */
    CS_EXT,      /* after ';' up to CR */
    CS_SIZE_LF,  /* LF after the chunk-size line's CR */
    CS_DATA,     /* remaining bytes of chunk data */
    CS_DATA_CR,  /* CR after chunk data */
    CS_DATA_LF,  /* LF after chunk data */
    CS_TR_START, /* start of a trailer line (or the final CRLF) */
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,
    CS_END_LF, /* LF of the final empty line */
};

void op_h1_body_init(struct op_h1_body *b, enum op_h1_framing f, uint64_t content_length)
{
    memset(b, 0, sizeof(*b));
    b->framing = f;
    switch (f) {
    case OP_H1_BODY_LENGTH:
        b->remaining = content_length;
        b->state = content_length ? BS_LENGTH : BS_DONE;
        break;
    case OP_H1_BODY_CHUNKED:
        b->state = CS_SIZE;
        break;
    case OP_H1_BODY_UNTIL_CLOSE:
        b->state = BS_CLOSE;
        break;
    default:
        b->state = BS_DONE;
        break;
    }
}

bool op_h1_body_done(const struct op_h1_body *b)
{
    return b->state == BS_DONE;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static enum op_h1_result body_fail(struct op_h1_body *b, const char *reason, size_t i, size_t *used)
{
    b->state = BS_ERROR;
    b->error_reason = reason;
    b->consumed += i;
    *used = i;
    return OP_H1_ERROR;
}

/*
 * Trailer fields that are not forwarded (RFC 9110 §6.5.1: a sender must not put a field in the trailer
 * section unless its definition allows it, and a recipient must not process such fields as if they had
 * been in the head): fields that frame the message or route it (Content-Length, Transfer-Encoding,
 * Trailer, Host), hop-by-hop fields, authentication and cookies, request modifiers and conditionals,
 * response controls, content metadata, and the forwarding fields the relay owns. A recipient that
 * merged, say, "Content-Length: 50" or "Authorization" from a trailer would act on what the relay never
 * checked. Names with '_' (read as '-' by CGI-style servers) and names longer than the tracker keeps
 * (OP_H1_TRAILER_NAME_MAX) are dropped too.
 */
static const char *const trailer_drop[] = {
    "content-length",
    "transfer-encoding",
    "trailer",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "authorization",
    "www-authenticate",
    "cookie",
    "set-cookie",
    "expect",
    "max-forwards",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "cache-control",
    "pragma",
    "expires",
    "age",
    "vary",
    "location",
    "retry-after",
    "content-type",
    "content-encoding",
    "content-range",
    "content-location",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
};

static bool trailer_dropped(const char *name, size_t n)
{
    if (memchr(name, '_', n)) return true;
    op_span_t s = op_span(name, n);
    for (size_t i = 0; i < OP_ARRAY_LEN(trailer_drop); i++)
        if (span_ieq(s, trailer_drop[i])) return true;
    return false;
}

enum { TR_FORWARD = 0, TR_HOLD, TR_DROP }; /* b->tr_mode: what happens to the bytes at hand */

/* Where the bytes of one relay call go; NULL for op_h1_body_feed (count only, forward everything). */
struct emitter {
    op_h1_emit_fn fn;
    void *ctx;
    const char *p; /* the input of this call */
    size_t seg;    /* start of the run of input bytes to forward (when tr_mode is TR_FORWARD) */
    bool failed;
};

/* Hands the run of input bytes [seg, i) to the caller. */
static bool emit_run(struct emitter *em, const struct op_h1_body *b, size_t i)
{
    if (!em || b->tr_mode != TR_FORWARD || i <= em->seg) return true;
    if (em->fn(em->ctx, em->p + em->seg, i - em->seg, true) < 0) em->failed = true;
    em->seg = i;
    return !em->failed;
}

static enum op_h1_result body_chunked(struct op_h1_body *b, const char *p, size_t len, size_t *used,
                                      struct emitter *em)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)p[i];
        switch (b->state) {
        case CS_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                if (++b->ndigits > 16) return body_fail(b, "chunk size too long", i, used);
                b->remaining = (b->remaining << 4) | (uint64_t)v;
            } else if (b->ndigits == 0) {
                return body_fail(b, "invalid chunk size", i, used);
            } else if (c == ';') {
                if (++b->ext_len > OP_H1_MAX_CHUNK_EXT)
                    return body_fail(b, "chunk extensions too long", i, used);
                b->state = CS_EXT;
            } else if (c == '\r') {
                b->state = CS_SIZE_LF;
            } else {
                return body_fail(b, "invalid character after chunk size", i, used);
            }
            i++;
            break;
        }
        case CS_EXT:
            if (c == '\r') {
                b->state = CS_SIZE_LF;
            } else if (!is_field_char(c)) {
                return body_fail(b, c == '\n' ? "bare LF in chunk extension" : "CTL in chunk extension", i,
                                 used);
            } else if (++b->ext_len > OP_H1_MAX_CHUNK_EXT) {
                return body_fail(b, "chunk extensions too long", i, used);
            }
            i++;
            break;
        case CS_SIZE_LF:
            if (c != '\n') return body_fail(b, "CR not followed by LF in chunk size line", i, used);
            b->state = b->remaining ? CS_DATA : CS_TR_START;
            i++;
            break;
        case CS_DATA: {
            size_t take = (size_t)OP_MIN((uint64_t)(len - i), b->remaining);
            b->remaining -= take;
            i += take;
            if (b->remaining == 0) b->state = CS_DATA_CR;
            break;
        }
        case CS_DATA_CR:
            if (c != '\r') return body_fail(b, "missing CRLF after chunk data", i, used);
            b->state = CS_DATA_LF;
            i++;
            break;
        case CS_DATA_LF:
            if (c != '\n') return body_fail(b, "CR not followed by LF after chunk data", i, used);
            b->state = CS_SIZE;
            b->ndigits = 0;
            b->remaining = 0;
            i++;
            break;
        case CS_TR_START:
            if (c == '\r') { /* the final CRLF is always forwarded */
                b->state = CS_END_LF;
                if (em && b->tr_mode != TR_FORWARD) {
                    b->tr_mode = TR_FORWARD;
                    em->seg = i;
                }
                i++;
                break;
            }
            if (c == ' ' || c == '\t') return body_fail(b, "obs-fold in trailer", i, used);
            if (!is_tchar(c)) return body_fail(b, "invalid trailer field name", i, used);
            b->state = CS_TR_NAME;
            if (em) { /* hold the name until it says whether the line is forwarded */
                if (!emit_run(em, b, i)) goto emit_failed;
                b->tr_mode = TR_HOLD;
                b->hold_len = 0;
            }
            goto trailer_name;
        case CS_TR_NAME:
            if (c == ':') {
                b->state = CS_TR_VALUE;
                if (b->tr_mode == TR_HOLD) {
                    if (trailer_dropped(b->hold, b->hold_len)) {
                        b->tr_mode = TR_DROP;
                    } else {
                        if (em->fn(em->ctx, b->hold, b->hold_len, false) < 0) {
                            em->failed = true;
                            goto emit_failed;
                        }
                        b->tr_mode = TR_FORWARD;
                        em->seg = i;
                    }
                }
                goto trailer_byte;
            }
            if (c == ' ' || c == '\t') return body_fail(b, "whitespace before colon in trailer", i, used);
            if (!is_tchar(c)) return body_fail(b, "invalid trailer field name", i, used);
        trailer_name:
            if (b->tr_mode == TR_HOLD) {
                if (b->hold_len < OP_H1_TRAILER_NAME_MAX)
                    b->hold[b->hold_len++] = (char)c;
                else
                    b->tr_mode = TR_DROP; /* longer than any name we forward: dropped */
            }
            goto trailer_byte;
        case CS_TR_VALUE:
            if (c == '\r')
                b->state = CS_TR_LF;
            else if (!is_field_char(c))
                return body_fail(b, c == '\n' ? "bare LF in trailer" : "CTL in trailer value", i, used);
            goto trailer_byte;
        case CS_TR_LF:
            if (c != '\n') return body_fail(b, "CR not followed by LF in trailer", i, used);
            b->state = CS_TR_START;
            goto trailer_byte;
        case CS_END_LF:
            if (c != '\n') return body_fail(b, "CR not followed by LF at end of chunked body", i, used);
            i++;
            if (!emit_run(em, b, i)) goto emit_failed;
            b->state = BS_DONE;
            b->consumed += i;
            *used = i;
            return OP_H1_COMPLETE;
        default:
            return body_fail(b, "internal body state", i, used);
        }
        continue;
    trailer_byte:
        if (++b->trailer_len > OP_H1_MAX_TRAILERS) return body_fail(b, "trailers too large", i, used);
        i++;
    }
    if (!emit_run(em, b, i)) goto emit_failed;
    b->consumed += i;
    *used = i;
    return OP_H1_INCOMPLETE;
emit_failed:
    return body_fail(b, "the body could not be forwarded", i, used);
}

enum op_h1_result op_h1_body_feed(struct op_h1_body *b, const char *p, size_t len, size_t *used)
{
    *used = 0;
    switch (b->state) {
    case BS_DONE:
        return OP_H1_COMPLETE;
    case BS_ERROR:
        return OP_H1_ERROR;
    case BS_CLOSE:
        *used = len;
        b->consumed += len;
        return OP_H1_INCOMPLETE;
    case BS_LENGTH: {
        size_t take = (size_t)OP_MIN((uint64_t)len, b->remaining);
        b->remaining -= take;
        b->consumed += take;
        *used = take;
        if (b->remaining == 0) {
            b->state = BS_DONE;
            return OP_H1_COMPLETE;
        }
        return OP_H1_INCOMPLETE;
    }
    default:
        return body_chunked(b, p, len, used, NULL);
    }
}

enum op_h1_result op_h1_body_relay(struct op_h1_body *b, const char *p, size_t len, size_t *used,
                                   op_h1_emit_fn emit, void *ctx)
{
    *used = 0;
    switch (b->state) {
    case BS_DONE:
        return OP_H1_COMPLETE;
    case BS_ERROR:
        return OP_H1_ERROR;
    case BS_CLOSE:
    case BS_LENGTH: {
        enum op_h1_result r = op_h1_body_feed(b, p, len, used);
        if (*used && emit(ctx, p, *used, true) < 0) {
            b->state = BS_ERROR;
            b->error_reason = "the body could not be forwarded";
            return OP_H1_ERROR;
        }
        return r;
    }
    default: {
        struct emitter em = {.fn = emit, .ctx = ctx, .p = p};
        enum op_h1_result r = body_chunked(b, p, len, used, &em);
        if (r == OP_H1_ERROR && !em.failed) /* what came before the bad byte goes on, as with feed */
            emit_run(&em, b, *used);
        return r;
    }
    }
}
