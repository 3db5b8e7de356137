/*
 * proto/agent_frame.h — the frames of the agent control protocol (`outpost-agent/1`, docs/agent-protocol.md):
 * what an agent and a region (the primary or a workspace proxy) exchange on the control connection after
 * the HTTP Upgrade. Every frame is
 *
 *     u16 length (big-endian, bytes of payload) | u8 type | u8 flags | payload
 *
 * Flags: bit 0 (OP_AF_FLAG_IGNORABLE) lets a receiver skip a type it does not know; the other bits are
 * reserved and must be zero. Payload layouts per type are in agent_frame.c and the protocol document.
 * The decoder is incremental and allocation-free: strings point into the caller's buffer.
 */
#ifndef OP_PROTO_AGENT_FRAME_H
#define OP_PROTO_AGENT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OP_AF_HEADER_LEN     4
#define OP_AF_MAX_PAYLOAD    8192 /* larger frames are a protocol error (the connection is closed) */
#define OP_AF_MAX_FRAME      (OP_AF_HEADER_LEN + OP_AF_MAX_PAYLOAD)
#define OP_AF_PROTO_VERSION  1
#define OP_AF_MAX_NAME       64   /* agent version, region name */
#define OP_AF_MAX_REASON     256  /* GOAWAY reason */
#define OP_AF_MAX_CREDENTIAL 4096 /* a JWS */
#define OP_AF_FLAG_IGNORABLE 0x01u

enum op_af_type {
    OP_AF_HELLO = 1,      /* agent -> region: u16 version, u16 max spares, agent version text */
    OP_AF_WELCOME = 2,    /* region -> agent: u16 version, u16 spares wanted, u32 heartbeat ms, region name */
    OP_AF_PING = 3,       /* either way: u64 nonce */
    OP_AF_PONG = 4,       /* answer to PING: the same u64 nonce */
    OP_AF_SPARES = 5,     /* region -> agent: u16 count of new spare stream connections to open now */
    OP_AF_CREDENTIAL = 6, /* agent -> region: a fresh agent credential (JWS text) before the old expires */
    OP_AF_GOAWAY = 7,     /* either way: u16 code, reason text; no new streams, close after in-flight ones */
    OP_AF_STREAM_FAIL = 8, /* agent -> region: u16 port, u16 code (see enum op_af_fail), reason text */
    OP_AF_UNKNOWN = 255,   /* decoded only: an unknown type that carried OP_AF_FLAG_IGNORABLE */
};

enum op_af_goaway {
    OP_AF_GOAWAY_SHUTDOWN = 0,   /* the sender is stopping (agent SIGTERM, region drain) */
    OP_AF_GOAWAY_EXPIRED = 1,    /* the credential expired and no fresh one came */
    OP_AF_GOAWAY_REVOKED = 2,    /* the agent or its workspace no longer exists, or the token was replaced */
    OP_AF_GOAWAY_PROTOCOL = 3,   /* the peer sent something invalid */
    OP_AF_GOAWAY_OVERLOADED = 4, /* a limit was reached; retry with backoff */
};

enum op_af_fail {
    OP_AF_FAIL_REFUSED = 1,   /* nothing listens on the port */
    OP_AF_FAIL_FORBIDDEN = 2, /* the agent does not dial that target */
    OP_AF_FAIL_TIMEOUT = 3,   /* the dial timed out */
    OP_AF_FAIL_LIMIT = 4,     /* too many streams */
    OP_AF_FAIL_OTHER = 5,
};

struct op_af_frame {
    enum op_af_type type;
    uint8_t flags;
    uint8_t raw_type;      /* the type byte as received (for OP_AF_UNKNOWN) */
    uint16_t version;      /* HELLO, WELCOME */
    uint16_t count;        /* HELLO: max spares; WELCOME: spares wanted; SPARES: count */
    uint32_t heartbeat_ms; /* WELCOME */
    uint64_t nonce;        /* PING, PONG */
    uint16_t code;         /* GOAWAY, STREAM_FAIL */
    uint16_t port;         /* STREAM_FAIL */
    const char *text;      /* HELLO/WELCOME name, CREDENTIAL, GOAWAY/STREAM_FAIL reason; not NUL-terminated */
    size_t text_len;
};

/* Decodes one frame from buf[0..len). Returns the bytes consumed (> 0) with *f filled, 0 when more bytes
 * are needed (never more than OP_AF_MAX_FRAME in total), -EMSGSIZE for a frame over the limit, -EPROTO for
 * an invalid frame (unknown type without the ignorable flag, reserved flag bits, wrong payload size or
 * content, version 0, heartbeat 0, port 0, text with control characters or over its limit). */
int op_af_decode(const uint8_t *buf, size_t len, struct op_af_frame *f);

/* Encodes f into out. Returns the frame length, -ENOSPC, or -EINVAL when f would not decode (the same
 * rules as the decoder; OP_AF_UNKNOWN cannot be encoded). */
int op_af_encode(const struct op_af_frame *f, uint8_t *out, size_t outlen);

/* "HELLO", "WELCOME", ... or "UNKNOWN". */
const char *op_af_type_name(enum op_af_type t);

#endif
