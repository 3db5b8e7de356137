/*
 * http/h1_internal.h — helpers shared by the h1 sources (h1_parse.c, h1_body.c, h1_write.c) and by
 * nothing else: character classes and case-insensitive span and list matching.
 */
#ifndef OP_HTTP_H1_INTERNAL_H
#define OP_HTTP_H1_INTERNAL_H

#include <string.h>
#include <strings.h>

#include "http/h1.h"

/* Character classes (RFC 9110 §5.6.2 token, §5.5 field-value) */

static inline bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

/* field-vchar / SP / HTAB: everything but CTLs (NUL, CR, LF included) and DEL. */
static inline bool is_field_char(unsigned char c)
{
    return c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f);
}

static inline bool span_ieq(op_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

static inline bool span_ieq_span(op_span_t a, op_span_t b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.p, b.p, a.len) == 0);
}

static inline op_span_t span_trim(const char *p, size_t n)
{
    while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return op_span(p, n);
}

/* Iterates a comma-separated list: returns false at the end; *elem is the next trimmed element (may be
 * empty). *off is the cursor, start it at 0. */
static inline bool list_next(op_span_t v, size_t *off, op_span_t *elem)
{
    if (*off > v.len) return false;
    const char *start = v.len ? v.p + *off : v.p; /* no arithmetic on a NULL empty span */
    const char *comma = v.len > *off ? memchr(start, ',', v.len - *off) : NULL;
    size_t n = comma ? (size_t)(comma - start) : v.len - *off;
    *elem = span_trim(start, n);
    *off += n + 1;
    return true;
}

static inline bool list_has_span(op_span_t v, op_span_t token)
{
    size_t off = 0;
    op_span_t e;
    while (list_next(v, &off, &e))
        if (span_ieq_span(e, token)) return true;
    return false;
}

/* ---- the head scanner (h1_scan.c), shared by the request and response parsers (h1_parse.c) ---- */

enum scan_state {
    S_METHOD = 0, /* request line: method token (a zeroed op_h1_scan starts here) */
    S_TARGET0,    /* first byte of the request target */
    S_TARGET,
    S_VERSION, /* "HTTP/" DIGIT "." DIGIT; aux = index */
    S_RL_CR,   /* CR ending the request line */
    S_SL_SP,   /* status line: SP after the version */
    S_CODE,    /* three digits; aux = index */
    S_SL_AFTER,
    S_REASON,
    S_LINE_LF, /* LF ending the start line: the one byte allowed past the line cap */
    S_LINE,    /* start of a field line, or the final CRLF */
    S_NAME,
    S_VALUE,
    S_VALUE_LF,
    S_END_LF,
    S_DONE,
};

struct h1_scan {
    const char *buf;
    size_t len;
    bool response;
    struct op_h1_scan *st;
    struct op_h1_header *hdrs; /* NULL: check only */
    /* recorded (with hdrs): */
    op_span_t method, target, reason;
    int minor, status;
    size_t head_len;
    /* on error: */
    int err_status;
    const char *err_reason;
};

/* Scans buf from s->st->pos on; INCOMPLETE leaves s->st where it stopped, ready to resume. */
enum op_h1_result h1_scan_run(struct h1_scan *s);
/* Adds n bytes to the calling thread's parser-work counter (op_h1_scan_work). */
void h1_count_scanned(size_t n);

#endif
