/*
 * http/h1.h — the HTTP/1.1 message layer: pure functions over caller-owned buffers, no I/O, no allocation.
 * One public header for four sources: h1_scan.c (the strict, resumable head scanner), h1_parse.c (head
 * semantics and the llhttp cross-check; the one file that includes llhttp), h1_body.c (body framing),
 * h1_write.c (head writers).
 *
 *   - op_h1_parse_request / op_h1_parse_response: parse a message head. A strict validation pass of our
 *     own (refuse, don't repair: obs-fold, bare LF, bare CR, whitespace before ':', CTLs, ambiguous
 *     framing, size limits) runs first, then llhttp (on the stack, once per complete head) cross-checks
 *     the same bytes and must agree with us on every span. op_h1_parse_request_resume does the same for
 *     a head collected across receives, scanning each byte once.
 *   - op_h1_body_*: where does this message's body end (Content-Length countdown or a strict chunked
 *     state machine), so a pipelined next message never rides along with this one; op_h1_body_relay
 *     also drops the trailer fields that must not be forwarded.
 *   - op_h1_write_*: heads to send upstream / to the client, with hop-by-hop, X-Forwarded-* and '_'-name
 *     handling; op_h1_writer / op_h1_put_*: the head writer every generated header goes through.
 * The rules these enforce, and why, are in docs/http.md ("Message rules").
 *
 * Spans in the parsed structs point into the caller's buffer; they are valid as long as that buffer is.
 */
#ifndef OP_HTTP_H1_H
#define OP_HTTP_H1_H

#include <sys/types.h>

#include "core/common.h"

#define OP_H1_MAX_HEADERS      100
#define OP_H1_MAX_REQLINE      8192  /* request line (without CRLF) of this many bytes or more -> 414 */
#define OP_H1_MAX_HEAD         16384 /* whole head (incl. CRLF CRLF) >= this -> 431; > MAX_HEADERS -> 431 */
#define OP_H1_MAX_CHUNK_EXT    4096  /* chunk-extension bytes per message, summed over all chunks */
#define OP_H1_MAX_TRAILERS     8192  /* trailer-section bytes (field lines incl. their CRLF) */
#define OP_H1_TRAILER_NAME_MAX 64    /* longer trailer field names are not forwarded */

/*
 * What the parsers and the body tracker return. Not 0 / -errno (core/common.h): "not complete yet" is
 * the normal answer for bytes that trickle in, not a failure, and an error carries an HTTP status (in
 * the parsed struct) rather than an errno.
 */
enum op_h1_result { OP_H1_ERROR = -1, OP_H1_INCOMPLETE = 0, OP_H1_COMPLETE = 1 };

enum op_h1_framing {
    OP_H1_BODY_NONE,       /* no body (also a request with Content-Length: 0) */
    OP_H1_BODY_LENGTH,     /* content_length bytes */
    OP_H1_BODY_CHUNKED,    /* Transfer-Encoding whose final coding is chunked */
    OP_H1_BODY_UNTIL_CLOSE /* responses only: the body ends when upstream closes */
};

struct op_h1_header {
    op_span_t name;  /* as received (case preserved) */
    op_span_t value; /* leading/trailing OWS trimmed */
};

struct op_h1_request {
    op_span_t method, target;
    int version_minor; /* 0 or 1 (HTTP/1.0, HTTP/1.1); any other version -> 505 */
    struct op_h1_header headers[OP_H1_MAX_HEADERS];
    int nheaders;
    size_t head_len; /* bytes of the head incl. the final CRLF CRLF */
    enum op_h1_framing framing;
    uint64_t content_length;  /* valid when framing is LENGTH (0 when NONE) */
    bool keep_alive;          /* from version + Connection tokens ("close", "keep-alive") */
    bool upgrade;             /* Upgrade header present and Connection lists "upgrade" */
    op_span_t upgrade_proto;  /* the Upgrade header value (empty if absent) */
    op_span_t host;           /* Host value (non-empty on 1.1; may be empty on 1.0) */
    bool expect_continue;     /* Expect: 100-continue */
    bool absolute_form;       /* target is "http(s)://authority..." (authority checked == Host) */
    int error_status;         /* on OP_H1_ERROR: 400, 414, 431, 501, 505 */
    const char *error_reason; /* static text for logs, never NULL after an error */
};

/*
 * Parses the request head at buf[0..len).
 *   COMPLETE:   *req filled, spans point into buf; the body (if any) starts at buf + req->head_len.
 *   INCOMPLETE: the end of the head is not there yet and every byte present passed the size limits and
 *               syntax checks so far. Call again from the start of the (grown) buffer, or use
 *               op_h1_parse_request_resume so that the bytes already checked are not scanned again.
 *   ERROR:      req->error_status / req->error_reason set. The caller answers with that status and
 *               closes; it must never forward anything of this request.
 * Rejected (400 unless noted): obs-fold, whitespace between name and ':', bare LF, CR not followed by LF,
 * NUL/CTL in values, non-token names/methods, target with SP/CTL/non-ASCII or of the wrong form, TE in
 * HTTP/1.0, CL+TE, duplicate CL (even identical, even "5, 5"), non-digit or > 2^63-1 CL, repeated TE
 * header, TE whose codings end in anything but one final "chunked" (no chunked at all -> 501), TE with
 * any coding besides chunked ("gzip, chunked", "identity, chunked" -> 501: nothing decodes it), absent,
 * duplicate, empty or malformed Host on 1.1 (duplicate/malformed also on 1.0), absolute-form authority
 * different from Host, duplicate Upgrade, version other than 1.0/1.1 (505), unknown method (501),
 * > OP_H1_MAX_HEADERS headers or head >= OP_H1_MAX_HEAD (431), request line >= OP_H1_MAX_REQLINE (414).
 */
OP_MUST_USE enum op_h1_result op_h1_parse_request(const char *buf, size_t len, struct op_h1_request *req);
/* The request's target in origin form: the path and query of an absolute-form target ("http://h/p?q" ->
 * "/p?q", "http://h" -> "/"), the target itself otherwise. Points into the request's buffer. */
op_span_t op_h1_origin_target(const struct op_h1_request *req);

/*
 * Where a request-head scan stopped, for a head that arrives in pieces. Plain data, a few integers:
 * keep one per connection, zeroed (= start of a head). It is reset to zero whenever
 * op_h1_parse_request_resume returns COMPLETE or ERROR, ready for the next head.
 */
struct op_h1_scan {
    uint32_t pos;   /* bytes of the head already checked */
    uint32_t mark;  /* start of the current element (request target, header name) */
    uint32_t mark2; /* the current header's colon */
    uint16_t nhdrs; /* complete field lines so far */
    uint8_t state, aux, major;
};

/*
 * op_h1_parse_request for a head collected across receives, in O(new bytes) per call: buf[0..len) is
 * the head so far and must extend the bytes given in the previous call unchanged (the buffer may only
 * grow until the result is COMPLETE or ERROR). Only bytes not yet checked are scanned (they are held to
 * the same syntax and size rules at once, so a bad byte is refused when it arrives); the full parse,
 * spans, semantic checks and llhttp, runs once, when the end of the head is there. Same results as
 * op_h1_parse_request on the same bytes; on INCOMPLETE *req is unspecified.
 */
OP_MUST_USE enum op_h1_result op_h1_parse_request_resume(const char *buf, size_t len, struct op_h1_scan *scan,
                                                         struct op_h1_request *req);

/* Test instrumentation: bytes the head parsers of the calling thread have scanned so far (our scanner
 * and llhttp's pass both count), to check that parsing work stays linear in the head size. */
uint64_t op_h1_scan_work(void);

struct op_h1_response {
    int status; /* 100..999 */
    int version_minor;
    op_span_t reason; /* reason phrase as received (may be empty) */
    struct op_h1_header headers[OP_H1_MAX_HEADERS];
    int nheaders;
    size_t head_len;
    enum op_h1_framing framing;
    uint64_t content_length;
    bool keep_alive;  /* false whenever framing is UNTIL_CLOSE */
    bool upgrade;     /* 101 Switching Protocols */
    int error_status; /* on OP_H1_ERROR: always 502 (the upstream misbehaved) */
    const char *error_reason;
};

/*
 * Same contract as op_h1_parse_request, for a response head. req_was_head: the request was HEAD (no
 * body whatever the headers say). 1xx (101 included), 204 and 304 have no body; otherwise chunked ->
 * CHUNKED, Content-Length -> LENGTH, neither -> UNTIL_CLOSE with keep_alive false. The same framing
 * ambiguities as for requests are errors (502), as is a version other than 1.0/1.1 or a bad status line;
 * codings before the final chunked ("gzip, chunked") are accepted here: the client frames them by the
 * final chunked as we do, and the head goes to it unchanged.
 * A 1xx other than 101 is an interim response: the final response follows it on the same connection.
 */
OP_MUST_USE enum op_h1_result op_h1_parse_response(const char *buf, size_t len, bool req_was_head,
                                                   struct op_h1_response *resp);

/* Body tracker state. Treat as opaque; zero-size copies are fine (plain data, no pointers). */
struct op_h1_body {
    enum op_h1_framing framing;
    int state;                /* internal state machine position */
    uint64_t remaining;       /* LENGTH: bytes left; CHUNKED: data bytes left in the current chunk */
    uint32_t ndigits;         /* hex digits of the current chunk-size line */
    uint32_t ext_len;         /* chunk-extension bytes so far in this message */
    uint32_t trailer_len;     /* trailer-section bytes so far */
    uint64_t consumed;        /* total bytes of this message's body consumed (framing included) */
    const char *error_reason; /* set when a feed returned OP_H1_ERROR */
    uint8_t tr_mode;          /* op_h1_body_relay: forwarding, holding a trailer name, dropping a line */
    uint8_t hold_len;
    char hold[OP_H1_TRAILER_NAME_MAX]; /* the trailer field name being decided on */
};

/* Starts tracking a body with the framing and length from a parsed head. */
void op_h1_body_init(struct op_h1_body *b, enum op_h1_framing f, uint64_t content_length);
/*
 * Consumes up to len bytes of body at p. *used = bytes that belong to this message.
 *   COMPLETE:   the message ended at p + *used (anything after it belongs to the next message); further
 *               calls return COMPLETE with *used = 0.
 *   INCOMPLETE: all len bytes were used, more are needed. UNTIL_CLOSE never completes.
 *   ERROR:      bad chunked syntax (*used = bytes accepted before the bad byte); b->error_reason says why;
 *               the connection must be closed. Further calls keep returning ERROR.
 * Chunked is strict: 1..16 hex digits, no sign/space; ';' extensions of VCHAR/SP/HT/obs-text totalling
 * <= OP_H1_MAX_CHUNK_EXT; CRLF required everywhere (bare LF is an error); trailer field lines validated
 * like header lines and bounded by OP_H1_MAX_TRAILERS.
 */
OP_MUST_USE enum op_h1_result op_h1_body_feed(struct op_h1_body *b, const char *p, size_t len, size_t *used);

/*
 * Where op_h1_body_relay sends the bytes to forward, in order. in_input: p lies inside the bytes given
 * to that call (the caller may forward them without a copy); otherwise p is the tracker's own copy of a
 * trailer field name that arrived in earlier calls, valid only during the callback. Returns 0 or a
 * negative errno; a failure stops the relay (OP_H1_ERROR; the caller knows it was its own).
 */
typedef int (*op_h1_emit_fn)(void *ctx, const char *p, size_t n, bool in_input);

/*
 * op_h1_body_feed for a proxy: same results and *used, and the bytes of the message are handed to emit
 * except the trailer fields that must not be forwarded (framing, routing, hop-by-hop, authentication,
 * cookies, request modifiers, response controls, content metadata, forwarding fields, names with '_'
 * or longer than OP_H1_TRAILER_NAME_MAX; the list and the reason are in h1_body.c and docs/http.md).
 * A trailer field line is held back until its name is complete, then forwarded whole or dropped whole;
 * chunk data and the chunked framing go out unchanged. On a syntax error the bytes before the bad one
 * are emitted, as op_h1_body_feed counts them.
 */
OP_MUST_USE enum op_h1_result op_h1_body_relay(struct op_h1_body *b, const char *p, size_t len, size_t *used,
                                               op_h1_emit_fn emit, void *ctx);
/* True once the tracker has returned COMPLETE. */
bool op_h1_body_done(const struct op_h1_body *b);

/* Options of op_h1_write_request_head (a bit set). */
enum op_h1_fwd_flags {
    OP_H1_FWD_UNDERSCORES = 1 /* forward header names with '_' (off by default, as nginx) */
};

/*
 * Writes the head to send upstream into out[0..cap). Request line as received (method, target,
 * HTTP/1.<version_minor>), then the headers in order except: hop-by-hop (Connection and every header it
 * names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, Proxy-Authorization) and incoming
 * X-Forwarded-For/-Proto/-Host, X-Real-IP, Forwarded are dropped; Content-Length, Transfer-Encoding and
 * Host are always kept even if Connection names them (the body is forwarded unchanged). Then
 * "X-Forwarded-For: <client_ip>", "X-Forwarded-Proto: <proto>", "X-Forwarded-Host: <host>" (each skipped
 * if the argument / host is NULL or empty), and when req->upgrade "Connection: upgrade" plus
 * "Upgrade: <upgrade_proto>"; extra (may be NULL; lines each ending CRLF) verbatim; then CRLF.
 * Header names containing '_' are dropped (an upstream that maps '_' to '-' would take
 * "Transfer_Encoding" for framing and "X_Forwarded_For" for ours); with OP_H1_FWD_UNDERSCORES in
 * fwd_flags they are kept, except those that read as a framing, Host, hop-by-hop or X-Forwarded-* /
 * X-Real-IP / Forwarded name with '_' taken for '-'. They never frame a message here either way.
 * Returns bytes written or -ENOSPC (out contents are then unspecified).
 */
OP_MUST_USE ssize_t op_h1_write_request_head(const struct op_h1_request *req, const char *client_ip,
                                             const char *proto, unsigned fwd_flags, const char *extra,
                                             char *out, size_t cap);

/*
 * Rewriting of a forwarded request head: op_h1_write_request_head plus
 *   strip_prefix: bytes removed from the start of the target's path (origin- or absolute-form; the path
 *     keeps a leading '/', stripping all of it leaves "/"; the query is kept; asterisk-form unchanged);
 *   path_prefix: a path ("/sub" or "/sub/", starting with '/') put before the path left (the path of an
 *     app's URL): joined with one '/' ("/sub" + "/a" = "/sub/a", "/sub/" + "/" = "/sub/"); origin- and
 *     absolute-form, not asterisk-form;
 *   drop_cookies: NULL-terminated cookie names removed from every Cookie header (exact, case-sensitive;
 *     a name ending in '*' is a prefix); the pairs left are rejoined with "; ", an emptied header is
 *     dropped;
 *   drop_headers: NULL-terminated header names not forwarded (case-insensitive; a credential meant for
 *     us, e.g. Coder-Session-Token);
 *   drop_query: NULL-terminated query parameter names removed from the target's query (exact,
 *     case-sensitive; "name" and "name=value" both); the parameters left keep their order, joined with '&',
 *     and an emptied query loses its '?';
 *   extra: as op_h1_write_request_head's.
 * No allocation: everything is written straight into out. Returns bytes written or -ENOSPC.
 */
struct op_h1_req_opts {
    unsigned fwd_flags; /* enum op_h1_fwd_flags */
    const char *extra;
    size_t strip_prefix;
    const char *const *drop_cookies;
    const char *path_prefix; /* path_prefix_len bytes written before the (stripped) path, see above */
    size_t path_prefix_len;
    const char *const *drop_query;
    const char *const *drop_headers;
};
OP_MUST_USE ssize_t op_h1_write_request_head_opts(const struct op_h1_request *req, const char *client_ip,
                                                  const char *proto, const struct op_h1_req_opts *opts,
                                                  char *out, size_t cap);

/*
 * Response head to the client: "HTTP/1.1 <status> <reason>", the headers minus hop-by-hop (as above plus
 * Proxy-Authenticate; on a 101 the Upgrade header is kept and "Connection: upgrade" is emitted), then
 * "Connection: close" if close, else nothing for 1.1 clients and "Connection: keep-alive" if
 * client_minor == 0 (not on a 101); extra appended; CRLF. Returns bytes written or -ENOSPC.
 * Note: Transfer-Encoding is passed through; a chunked response to a 1.0 client is the caller's concern.
 */
OP_MUST_USE ssize_t op_h1_write_response_head(const struct op_h1_response *resp, int client_minor, bool close,
                                              const char *extra, char *out, size_t cap);

/* Response rewriting (op_h1_write_response_head_opts). */
enum op_h1_resp_flags {
    /* Drop Access-Control-Allow-Origin/-Credentials/-Methods/-Headers; remove Origin,
     * Access-Control-Request-Method(s) and Access-Control-Request-Headers from Vary (case-insensitive;
     * the elements left are rejoined with ", ", an emptied Vary is dropped). */
    OP_H1_RESP_NO_CORS = 1,
};
struct op_h1_resp_opts {
    unsigned flags;     /* enum op_h1_resp_flags */
    const char *extra;  /* header lines appended (each ending CRLF), may be NULL */
    const char *extra2; /* more, after extra */
};
/* op_h1_write_response_head with rewriting; extra then extra2 appended. Bytes written or -ENOSPC. */
OP_MUST_USE ssize_t op_h1_write_response_head_opts(const struct op_h1_response *resp, int client_minor,
                                                   bool close, const struct op_h1_resp_opts *opts, char *out,
                                                   size_t cap);

/*
 * A whole small response (errors, built-in responders): "HTTP/1.1 <status> <reason>", Content-Type (if
 * ctype), Content-Length, "Connection: close" if close, extra (verbatim CRLF lines, may be NULL), CRLF,
 * body. Returns the length or -ENOSPC.
 */
OP_MUST_USE ssize_t op_h1_write_simple_response(int status, const char *ctype, const char *body,
                                                size_t body_len, bool close, const char *extra, char *out,
                                                size_t cap);

/*
 * The head writer: builds a head in a caller's buffer and never truncates silently. Each op_h1_put_*
 * either appends its whole piece or appends nothing and fails the writer; after the first failure every
 * later put is a no-op, and op_h1_writer_result reports it. Use it for every header we generate (status
 * line, Location, Content-Length, ...): a value too long for the buffer (a 4 KiB Location) is an error,
 * never a header cut before its CRLF that merges with the next one.
 *
 *     char buf[8192];
 *     struct op_h1_writer w;
 *     op_h1_writer_init(&w, buf, sizeof(buf));
 *     op_h1_put_status(&w, 308, NULL);
 *     op_h1_put_headerf(&w, "Location", "https://%s%.*s", host, (int)path.len, path.p);
 *     op_h1_put_header_u64(&w, "Content-Length", 0);
 *     op_h1_put_end_of_head(&w);
 *     ssize_t n = op_h1_writer_result(&w);   (bytes in buf, or -ENOSPC / -EINVAL: send nothing)
 *
 * Header puts check what they write: the name must be a token and the value field characters only
 * (no CR, LF, NUL or other CTL), else -EINVAL, so a value from a request cannot inject a header.
 */
struct op_h1_writer {
    char *p;
    size_t cap, len;
    int err; /* 0, or the first failure: -ENOSPC (did not fit), -EINVAL (invalid name/value/status) */
};

void op_h1_writer_init(struct op_h1_writer *w, char *buf, size_t cap);
/* "HTTP/1.1 <status> <reason>\r\n"; reason NULL = the standard phrase (op_h1_reason). status 100..999. */
void op_h1_put_status(struct op_h1_writer *w, int status, const char *reason);
/* "<name>: <value>\r\n" (value NULL = empty). */
void op_h1_put_header(struct op_h1_writer *w, const char *name, const char *value);
void op_h1_put_header_span(struct op_h1_writer *w, op_span_t name, op_span_t value);
void op_h1_put_header_u64(struct op_h1_writer *w, const char *name, uint64_t v);
/* The value is printf-formatted straight into the buffer; it must fit whole, CRLF included. */
void op_h1_put_headerf(struct op_h1_writer *w, const char *name, const char *fmt, ...) OP_PRINTF(3, 4);
/* Verbatim bytes, unchecked: prebuilt CRLF-terminated lines, a body. Only the size is checked. */
void op_h1_put_raw(struct op_h1_writer *w, const void *p, size_t n);
/* The empty line that ends the head. */
void op_h1_put_end_of_head(struct op_h1_writer *w);
/* Bytes written so far (>= 0), or the first failure (-ENOSPC, -EINVAL): then nothing of it may be sent. */
OP_MUST_USE ssize_t op_h1_writer_result(const struct op_h1_writer *w);

/* Standard reason phrase ("OK", "Bad Request", ...), "" if unknown. Never NULL. */
const char *op_h1_reason(int status);

/*
 * WebSocket handshake checks on a parsed request (RFC 6455 §4.2.1): req->upgrade, method GET, HTTP/1.1,
 * Upgrade exactly "websocket", exactly one Sec-WebSocket-Key that is base64 of 16 bytes, and
 * Sec-WebSocket-Version exactly "13". Returns 0, or -EINVAL with *reason set (static text); the caller
 * answers 400. Any other upgrade (h2c, ...) fails here: the caller refuses or strips it.
 */
OP_MUST_USE int op_h1_ws_check_request(const struct op_h1_request *req, const char **reason);

/* First header named name (case-insensitive, NUL-terminated name), or NULL. */
const struct op_h1_header *op_h1_find_header(const struct op_h1_header *h, int n, const char *name);
/* True if the comma-separated token list in v contains token (case-insensitive, OWS ignored). */
bool op_h1_list_has_token(op_span_t v, const char *token);

#endif
