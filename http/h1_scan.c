/*
 * http/h1_scan.c — pass 1 of head parsing: the strict byte-level scanner (syntax and size limits),
 * resumable at any byte. No llhttp here; h1_parse.c runs the semantic checks and llhttp on what it finds.
 */
#include "http/h1_internal.h"

/* Request-target bytes: visible ASCII only (no SP, CTL, DEL or obs-text). */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

/*
 * The scanner walks the head once, byte by byte, checking syntax and the size limits. Its whole position
 * is in struct op_h1_scan (a few integers), so a head that arrives in pieces is scanned in pieces: each
 * call looks only at the bytes that are new since the last one (picohttpparser's last_len idea, carried
 * to every state). With a header array it also records the spans; without one it only checks, which is
 * what a resumed call does, because the caller's header array may have been reused in between.
 */

/* Every buffered head is scanned by one thread; the counter is that thread's own (no shared writes). */
static _Thread_local uint64_t tl_scanned;

void h1_count_scanned(size_t n)
{
    tl_scanned += n;
}

uint64_t op_h1_scan_work(void)
{
    return tl_scanned;
}

static enum op_h1_result scan_fail(struct h1_scan *s, int status, const char *reason)
{
    s->err_status = status;
    s->err_reason = reason;
    return OP_H1_ERROR;
}

static int syntax_status(const struct h1_scan *s)
{
    return s->response ? 502 : 400;
}

/* The first index this state may not read: the start line (without CRLF) stays below
 * OP_H1_MAX_REQLINE bytes, the whole head below OP_H1_MAX_HEAD. */
static size_t state_limit(int state)
{
    if (state < S_LINE_LF) return OP_H1_MAX_REQLINE;
    if (state == S_LINE_LF) return SIZE_MAX;
    return (size_t)OP_H1_MAX_HEAD - 1;
}

static enum op_h1_result limit_fail(struct h1_scan *s, int state)
{
    if (state >= S_LINE) return scan_fail(s, s->response ? 502 : 431, "head too large");
    return s->response ? scan_fail(s, 502, "status line too long")
                       : scan_fail(s, 414, "request line too long");
}

enum op_h1_result h1_scan_run(struct h1_scan *s)
{
    struct op_h1_scan *st = s->st;
    const char *b = s->buf;
    size_t pos = st->pos, len = s->len, start = pos;
    enum op_h1_result rc = OP_H1_INCOMPLETE;
    while (rc == OP_H1_INCOMPLETE) {
        size_t lim = state_limit(st->state);
        if (pos >= lim) {
            rc = limit_fail(s, st->state);
            break;
        }
        if (pos >= len) break;
        size_t end = OP_MIN(len, lim);
        unsigned char c = (unsigned char)b[pos];
        switch (st->state) {
        case S_METHOD:
            while (pos < end && is_tchar((unsigned char)b[pos]))
                pos++;
            if (pos >= end) continue;
            if (b[pos] != ' ' || pos == 0) {
                rc = scan_fail(s, 400, pos == 0 ? "missing method" : "invalid method");
                continue;
            }
            s->method = op_span(b, pos);
            st->state = S_TARGET0;
            st->mark = (uint32_t)++pos;
            continue;
        case S_TARGET0:
        case S_TARGET:
            while (pos < end && is_target_char((unsigned char)b[pos]))
                pos++;
            if (pos > st->mark) st->state = S_TARGET;
            if (pos >= end) continue;
            c = (unsigned char)b[pos];
            if (c != ' ') {
                rc = scan_fail(s, 400,
                               c == '\r' || c == '\n' ? "missing HTTP version"
                                                      : "invalid character in request target");
                continue;
            }
            if (st->state == S_TARGET0) {
                rc = scan_fail(s, 400, "empty request target");
                continue;
            }
            s->target = op_span(b + st->mark, pos - st->mark);
            st->state = S_VERSION;
            st->aux = 0;
            pos++;
            continue;
        case S_VERSION: {
            static const char pfx[] = "HTTP/";
            unsigned i = st->aux;
            bool ok = i < 5 ? c == (unsigned char)pfx[i] : i == 6 ? c == '.' : c >= '0' && c <= '9';
            if (!ok) {
                rc = scan_fail(s, syntax_status(s), "invalid HTTP version");
                continue;
            }
            if (i == 5) st->major = (uint8_t)(c - '0');
            pos++;
            if (++st->aux < 8) continue;
            int minor = c - '0';
            if (st->major != 1 || minor > 1) {
                rc = scan_fail(s, s->response ? 502 : 505, "unsupported HTTP version");
                continue;
            }
            s->minor = minor;
            st->state = s->response ? S_SL_SP : S_RL_CR;
            continue;
        }
        case S_RL_CR:
        case S_SL_AFTER:
            if (c == ' ' && st->state == S_SL_AFTER) { /* reason-phrase, possibly empty */
                st->state = S_REASON;
                st->mark = (uint32_t)++pos;
                continue;
            }
            if (c != '\r') {
                rc = scan_fail(s, syntax_status(s),
                               c == '\n' ? "bare LF in head" : "invalid character in start line");
                continue;
            }
            if (st->state == S_SL_AFTER)
                s->reason = op_span(b + pos, 0); /* tolerated when absent altogether */
            st->state = S_LINE_LF;
            pos++;
            continue;
        case S_SL_SP:
            if (c != ' ') {
                rc = scan_fail(s, 502, "invalid status line");
                continue;
            }
            st->state = S_CODE;
            st->aux = 0;
            pos++;
            continue;
        case S_CODE:
            if (c < '0' || c > '9') {
                rc = scan_fail(s, 502, "invalid status code");
                continue;
            }
            pos++;
            if (++st->aux < 3) continue;
            s->status = (b[pos - 3] - '0') * 100 + (b[pos - 2] - '0') * 10 + (c - '0');
            if (s->status < 100) {
                rc = scan_fail(s, 502, "invalid status code");
                continue;
            }
            st->state = S_SL_AFTER;
            continue;
        case S_REASON:
            while (pos < end && is_field_char((unsigned char)b[pos]))
                pos++;
            if (pos >= end) continue;
            if (b[pos] != '\r') {
                rc = scan_fail(s, 502, b[pos] == '\n' ? "bare LF in head" : "CTL in reason phrase");
                continue;
            }
            s->reason = op_span(b + st->mark, pos - st->mark);
            st->state = S_LINE_LF;
            pos++;
            continue;
        case S_LINE_LF:
        case S_VALUE_LF:
        case S_END_LF:
            if (c != '\n') {
                rc = scan_fail(s, syntax_status(s), "CR not followed by LF");
                continue;
            }
            pos++;
            if (st->state == S_END_LF) {
                s->head_len = pos;
                st->state = S_DONE;
                rc = OP_H1_COMPLETE;
                continue;
            }
            if (st->state == S_VALUE_LF) {
                if (s->hdrs) {
                    struct op_h1_header *h = &s->hdrs[st->nhdrs];
                    h->name = op_span(b + st->mark, st->mark2 - st->mark);
                    h->value = span_trim(b + st->mark2 + 1, pos - 2 - (st->mark2 + 1));
                }
                st->nhdrs++;
            }
            st->state = S_LINE;
            continue;
        case S_LINE:
            if (c == '\r') {
                st->state = S_END_LF;
                pos++;
                continue;
            }
            if (c == '\n') {
                rc = scan_fail(s, syntax_status(s), "bare LF in head");
            } else if (c == ' ' || c == '\t') {
                rc = scan_fail(s, syntax_status(s), "obs-fold in header");
            } else if (st->nhdrs >= OP_H1_MAX_HEADERS) {
                rc = scan_fail(s, s->response ? 502 : 431, "too many headers");
            } else if (c == ':') {
                rc = scan_fail(s, syntax_status(s), "empty header name");
            } else if (!is_tchar(c)) {
                rc = scan_fail(s, syntax_status(s), "invalid header name");
            } else {
                st->mark = (uint32_t)pos++;
                st->state = S_NAME;
            }
            continue;
        case S_NAME:
            while (pos < end && is_tchar((unsigned char)b[pos]))
                pos++;
            if (pos >= end) continue;
            c = (unsigned char)b[pos];
            if (c == ':') {
                st->mark2 = (uint32_t)pos++;
                st->state = S_VALUE;
            } else if (c == ' ' || c == '\t') {
                rc = scan_fail(s, syntax_status(s), "whitespace before colon in header");
            } else if (c == '\r' || c == '\n') {
                rc = scan_fail(s, syntax_status(s), "header line without colon");
            } else {
                rc = scan_fail(s, syntax_status(s), "invalid header name");
            }
            continue;
        case S_VALUE:
            while (pos < end && is_field_char((unsigned char)b[pos]))
                pos++;
            if (pos >= end) continue;
            if (b[pos] != '\r') {
                rc = scan_fail(s, syntax_status(s),
                               b[pos] == '\n' ? "bare LF in head" : "CTL in header value");
                continue;
            }
            st->state = S_VALUE_LF;
            pos++;
            continue;
        default: /* S_DONE: a finished scan was not reset */
            rc = scan_fail(s, syntax_status(s), "head scan not reset");
            continue;
        }
    }
    tl_scanned += pos - start;
    st->pos = (uint32_t)pos;
    return rc;
}
