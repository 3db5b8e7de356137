/*
 * proto/ws.h — WebSocket (RFC 6455) as a wire format with no I/O: the handshake's accept key, an
 * incremental frame decoder for the server side (client frames must be masked), a message assembler that
 * joins fragments under a size limit, the frame encoder for server frames (never masked) and the close
 * payload. The agent's web-terminal server uses it; a fuzz target drives the decoder and the assembler.
 * Nothing here allocates: the caller owns every buffer.
 *
 * Return convention: 0 or a positive count on success, a negative OP_WS_E* (an RFC 6455 close code,
 * negated) when the peer broke the protocol, so the caller closes with exactly that code.
 */
#ifndef OP_PROTO_WS_H
#define OP_PROTO_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OP_WS_GUID           "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define OP_WS_ACCEPT_LEN     28  /* base64 of a SHA-1 digest, without NUL */
#define OP_WS_MAX_HEADER     14  /* 2 + 8 (64-bit length) + 4 (mask) */
#define OP_WS_MAX_CONTROL    125 /* control frames carry at most this payload and are never fragmented */
#define OP_WS_MAX_CLOSE_TEXT 123

enum op_ws_opcode {
    OP_WS_CONT = 0x0,
    OP_WS_TEXT = 0x1,
    OP_WS_BINARY = 0x2,
    OP_WS_CLOSE = 0x8,
    OP_WS_PING = 0x9,
    OP_WS_PONG = 0xA,
};

/* Close codes (RFC 6455 §7.4.1). The decoder's errors are these, negated. */
enum op_ws_close_code {
    OP_WS_CLOSE_NORMAL = 1000,
    OP_WS_CLOSE_GOING_AWAY = 1001,
    OP_WS_CLOSE_PROTOCOL = 1002,     /* bad frame: reserved bits/opcode, unmasked, fragmented control… */
    OP_WS_CLOSE_UNSUPPORTED = 1003,  /* a data type the endpoint does not accept */
    OP_WS_CLOSE_NO_STATUS = 1005,    /* never sent: a close frame without a code */
    OP_WS_CLOSE_INVALID_DATA = 1007, /* a text message that is not UTF-8 */
    OP_WS_CLOSE_POLICY = 1008,
    OP_WS_CLOSE_TOO_BIG = 1009, /* a message over the assembler's limit */
    OP_WS_CLOSE_INTERNAL = 1011,
};
#define OP_WS_EPROTO   (-OP_WS_CLOSE_PROTOCOL)
#define OP_WS_EINVALID (-OP_WS_CLOSE_INVALID_DATA)
#define OP_WS_ETOOBIG  (-OP_WS_CLOSE_TOO_BIG)

/* Printable names: "continuation", "text", "binary", "close", "ping", "pong", or "reserved". */
const char *op_ws_opcode_name(int opcode);

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key || OP_WS_GUID)). out gets
 * OP_WS_ACCEPT_LEN characters and a NUL. Returns 0, or -EINVAL when key is not the base64 of 16 bytes
 * (24 characters ending in "==", as RFC 6455 §4.1 requires of clients). */
int op_ws_accept_key(const char *key, size_t key_len, char out[OP_WS_ACCEPT_LEN + 1]);

/* One decoded frame header. */
struct op_ws_frame {
    bool fin;
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t len;      /* payload length */
    size_t header_len; /* bytes of header consumed */
};

/* Decodes a frame header from buf[0..len). Returns the header length (> 0) with *f filled; 0 when more
 * bytes are needed; OP_WS_EPROTO for: a reserved bit set (no extension is negotiated), a reserved
 * opcode, a control frame that is fragmented or carries more than OP_WS_MAX_CONTROL bytes, a 64-bit
 * length with the top bit set or any length in a longer form than needed, or (when require_mask, as a
 * server must) an unmasked frame. */
int op_ws_decode_header(const uint8_t *buf, size_t len, bool require_mask, struct op_ws_frame *f);

/* Unmasks (or masks: XOR is its own inverse) data[0..len) in place; `offset` is the position of data[0]
 * within the frame's payload so a payload can be processed in pieces. */
void op_ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Writes a server frame header (FIN as given, never masked) for a payload of `len` bytes into out (at
 * least OP_WS_MAX_HEADER bytes). Returns the header length. */
size_t op_ws_encode_header(uint8_t *out, bool fin, uint8_t opcode, uint64_t len);

/* Builds a close payload (code in network order + reason, truncated to OP_WS_MAX_CLOSE_TEXT bytes at a
 * UTF-8 boundary) into out (at least OP_WS_MAX_CONTROL bytes). Returns its length; 0 for
 * OP_WS_CLOSE_NO_STATUS, which is never on the wire (an empty close says it). */
size_t op_ws_close_payload(uint8_t *out, uint16_t code, const char *reason);

/* Parses a received close payload: *code = 1005 when empty. Returns 0, or OP_WS_EPROTO for a 1-byte
 * payload or a code a peer may not send (< 1000, 1004-1006, 1015, 1016-2999 unassigned, >= 5000),
 * OP_WS_EINVALID when the reason is not UTF-8. */
int op_ws_parse_close(const uint8_t *p, size_t len, uint16_t *code);

/* Incremental UTF-8 validation across fragment boundaries (state 0 = at a character boundary). Returns
 * false as soon as the bytes cannot be UTF-8 (overlongs, surrogates, > U+10FFFF included). */
bool op_ws_utf8_step(uint32_t *state, const uint8_t *p, size_t len);

/* A message assembler on a caller-owned buffer: feed it bytes as they arrive; it decodes headers,
 * unmasks, joins fragments and hands out whole messages and control frames. */
enum op_ws_event {
    OP_WS_EV_NONE = 0,    /* all input consumed, nothing complete yet */
    OP_WS_EV_MESSAGE = 1, /* a complete text or binary message in msg[0..msg_len) */
    OP_WS_EV_PING = 2,    /* a ping; its payload in ctrl[0..ctrl_len): answer with a pong */
    OP_WS_EV_PONG = 3,
    OP_WS_EV_CLOSE = 4, /* a valid close frame; close_code set (1005 when it carried none) */
};

struct op_ws_reader {
    uint8_t *msg;       /* caller's buffer for message payloads */
    size_t msg_cap;     /* the size limit of one message */
    size_t msg_len;     /* bytes of the current message so far */
    uint8_t msg_opcode; /* OP_WS_TEXT or OP_WS_BINARY of the message being assembled; 0 = none */
    uint8_t ctrl[OP_WS_MAX_CONTROL];
    size_t ctrl_len;
    uint16_t close_code;
    uint32_t utf8; /* validation state of a text message */
    /* the frame in progress */
    uint8_t hdr[OP_WS_MAX_HEADER];
    size_t hdr_len;
    bool in_payload;
    struct op_ws_frame f;
    uint64_t got; /* payload bytes of the current frame consumed */
};

/* Sets up r on buf[0..cap); cap is the per-message limit. */
void op_ws_reader_init(struct op_ws_reader *r, uint8_t *buf, size_t cap);
/* Consumes bytes from in[0..len) until an event or the end of input; *used gets the bytes consumed (the
 * caller feeds the rest on the next call). Returns an event (>= 0), or a negative OP_WS_E* when the peer
 * broke the protocol: a data frame while a fragmented message is open, a continuation with none open, a
 * message over msg_cap (OP_WS_ETOOBIG), invalid UTF-8 in a text message or close reason (OP_WS_EINVALID),
 * or any header error of op_ws_decode_header. After OP_WS_EV_MESSAGE the caller reads msg[0..msg_len)
 * (msg_opcode tells text from binary) before the next call, which starts a new message. Frames are
 * always masked (server side). */
int op_ws_read(struct op_ws_reader *r, const uint8_t *in, size_t len, size_t *used);

#endif
