/*
 * tests/unit/test_agent_tcpws.c — the frame <-> byte pump of the tcp endpoint's WebSocket variant
 * (agent/tcp_ws_pump.h), alone: masked client frames in (whole, split byte by byte, fragmented), their
 * payload towards the target with backpressure; target bytes out as binary frames bounded by the out
 * buffer; pings, the 64 KiB message limit, protocol errors and both half-closes. Also the shared
 * WebSocket request head (agent/ws_head.h).
 */
#include <stdlib.h>
#include <string.h>

#include "agent/tcp_ws_pump.h"
#include "agent/ws_head.h"
#include "check.h"

/* A masked client frame into out; returns its length. */
static size_t client_frame(uint8_t *out, bool fin, uint8_t opcode, const uint8_t *p, size_t n)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t hl = op_ws_encode_header(out, fin, opcode, n);
    out[1] |= 0x80;
    memcpy(out + hl, mask, 4);
    memcpy(out + hl + 4, p, n);
    op_ws_unmask(out + hl + 4, n, mask, 0);
    return hl + 4 + n;
}

/* Decodes one server frame from the pump's output; returns its payload length, or -1. */
static long server_frame(struct tcpws_pump *p, uint8_t *opcode, uint8_t *payload, size_t cap)
{
    const uint8_t *d;
    size_t n = tcpws_pump_to_client(p, &d);
    struct op_ws_frame f;
    int hl = op_ws_decode_header(d, n, false, &f);
    if (hl <= 0 || f.masked || n < (size_t)hl + f.len || f.len > cap) return -1;
    *opcode = f.opcode;
    memcpy(payload, d + hl, (size_t)f.len);
    tcpws_pump_client_sent(p, (size_t)hl + (size_t)f.len);
    return (long)f.len;
}

static void test_client_to_target(void)
{
    struct tcpws_pump p;
    CHECK(tcpws_pump_init(&p) == 0, "init");
    uint8_t buf[256];
    size_t n = client_frame(buf, false, OP_WS_BINARY, (const uint8_t *)"hel", 3);
    n += client_frame(buf + n, true, OP_WS_CONT, (const uint8_t *)"lo", 2);
    size_t tail = client_frame(buf + n, true, OP_WS_BINARY, (const uint8_t *)"!", 1);
    /* byte by byte: nothing is lost at any split */
    size_t off = 0;
    while (off < n) {
        size_t used = tcpws_pump_from_client(&p, buf + off, 1);
        CHECK(used == 1, "one byte at %zu taken", off);
        off += used;
    }
    const uint8_t *d;
    size_t pend = tcpws_pump_to_target(&p, &d);
    CHECK(pend == 5 && memcmp(d, "hello", 5) == 0, "two fragments join into 'hello' for the target");
    /* backpressure: the next message waits until the target took this one */
    CHECK(tcpws_pump_from_client(&p, buf + n, tail) == 0, "no client input taken while payload waits");
    tcpws_pump_target_wrote(&p, 2);
    pend = tcpws_pump_to_target(&p, &d);
    CHECK(pend == 3 && memcmp(d, "llo", 3) == 0, "a partial write leaves the rest");
    tcpws_pump_target_wrote(&p, 3);
    CHECK(tcpws_pump_from_client(&p, buf + n, tail) == tail, "the next message is taken once it drained");
    CHECK(tcpws_pump_to_target(&p, &d) == 1 && d[0] == '!', "'!' for the target");
    tcpws_pump_target_wrote(&p, 1);
    /* a ping: answered with a pong of its payload */
    n = client_frame(buf, true, OP_WS_PING, (const uint8_t *)"p1", 2);
    CHECK(tcpws_pump_from_client(&p, buf, n) == n, "ping taken");
    uint8_t op, pl[OP_WS_MAX_CONTROL];
    CHECK(server_frame(&p, &op, pl, sizeof(pl)) == 2 && op == OP_WS_PONG && memcmp(pl, "p1", 2) == 0,
          "pong with the ping's payload");
    /* the client's close: nothing more for the target, our close follows the target's EOF */
    n = client_frame(buf, true, OP_WS_CLOSE, (const uint8_t[]){0x03, 0xe8}, 2);
    CHECK(tcpws_pump_from_client(&p, buf, n) == n && p.peer_closed && p.peer_code == 1000,
          "client close 1000");
    CHECK(!tcpws_pump_done(&p), "not done before our close");
    CHECK(tcpws_pump_target_room(&p) > 0, "the target's bytes still go to the client after its close");
    tcpws_pump_from_target(&p, (const uint8_t *)"bye", 3);
    tcpws_pump_close(&p, OP_WS_CLOSE_NORMAL, "the port closed the connection");
    CHECK(server_frame(&p, &op, pl, sizeof(pl)) == 3 && op == OP_WS_BINARY && memcmp(pl, "bye", 3) == 0,
          "the last target bytes as a binary frame");
    long cl = server_frame(&p, &op, pl, sizeof(pl));
    CHECK(cl >= 2 && op == OP_WS_CLOSE && pl[0] == 0x03 && pl[1] == 0xe8, "then our close 1000");
    CHECK(tcpws_pump_done(&p), "done once both closes happened and out is empty");
    CHECK(tcpws_pump_target_room(&p) == 0, "no target bytes after our close");
    tcpws_pump_free(&p);
}

static void test_target_to_client(void)
{
    struct tcpws_pump p;
    CHECK(tcpws_pump_init(&p) == 0, "init");
    uint8_t *data = malloc(1 << 20);
    for (size_t i = 0; i < (1 << 20); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    size_t in = 0, frames = 0;
    size_t room;
    while ((room = tcpws_pump_target_room(&p)) > 0 && in < (1 << 20)) {
        CHECK(room <= TCPWS_FRAME_MAX, "one frame at most %d bytes", TCPWS_FRAME_MAX);
        tcpws_pump_from_target(&p, data + in, room);
        in += room;
        frames++;
    }
    const uint8_t *d;
    size_t pend = tcpws_pump_to_client(&p, &d);
    CHECK(in < (1 << 20) && pend <= TCPWS_OUT_CAP, "the out buffer bounds the target's bytes: %zu taken", in);
    CHECK(pend + OP_WS_MAX_HEADER + TCPWS_OUT_CTRL <= TCPWS_OUT_CAP + TCPWS_FRAME_MAX,
          "room is kept for control frames");
    /* a ping while out is full: its pong still fits (the control reserve) */
    uint8_t buf[64];
    size_t n = client_frame(buf, true, OP_WS_PING, (const uint8_t *)"x", 1);
    CHECK(tcpws_pump_from_client(&p, buf, n) == n && !p.pong_due, "the pong fits in the reserve");
    /* drain and check every byte, in order */
    uint8_t *got = malloc(1 << 20);
    size_t gl = 0;
    bool pong = false;
    for (;;) {
        uint8_t op;
        long k = server_frame(&p, &op, got + gl, (1 << 20) - gl);
        if (k < 0) break;
        if (op == OP_WS_PONG)
            pong = true;
        else
            gl += (size_t)k;
        if (!tcpws_pump_to_client(&p, &d)) {
            while (in < (1 << 20) && (room = tcpws_pump_target_room(&p)) > 0) {
                size_t m = room < (1 << 20) - in ? room : (1 << 20) - in;
                tcpws_pump_from_target(&p, data + in, m);
                in += m;
            }
        }
    }
    CHECK(pong, "the pong went out");
    CHECK(gl == (1 << 20) && memcmp(got, data, gl) == 0, "1 MiB of target bytes arrived in order: %zu", gl);
    free(got);
    free(data);
    tcpws_pump_free(&p);
}

static void test_errors(void)
{
    struct tcpws_pump p;
    CHECK(tcpws_pump_init(&p) == 0, "init");
    uint8_t *big = calloc(1, OP_AGENT_TCPWS_MAX_MSG + 64);
    uint8_t *frame = malloc(OP_AGENT_TCPWS_MAX_MSG + 128);
    size_t n = client_frame(frame, true, OP_WS_BINARY, big, OP_AGENT_TCPWS_MAX_MSG + 1);
    CHECK(tcpws_pump_from_client(&p, frame, n) == n, "an oversized message is consumed");
    uint8_t op, pl[OP_WS_MAX_CONTROL];
    long cl = server_frame(&p, &op, pl, sizeof(pl));
    CHECK(cl >= 2 && op == OP_WS_CLOSE && (pl[0] << 8 | pl[1]) == OP_WS_CLOSE_TOO_BIG, "close 1009");
    CHECK(tcpws_pump_done(&p), "a client that broke the protocol is done once the close is out");
    tcpws_pump_free(&p);

    CHECK(tcpws_pump_init(&p) == 0, "init");
    n = client_frame(frame, true, OP_WS_BINARY, big, OP_AGENT_TCPWS_MAX_MSG);
    CHECK(tcpws_pump_from_client(&p, frame, n) == n, "exactly 64 KiB is fine");
    const uint8_t *d;
    CHECK(tcpws_pump_to_target(&p, &d) == OP_AGENT_TCPWS_MAX_MSG, "64 KiB for the target");
    tcpws_pump_target_wrote(&p, OP_AGENT_TCPWS_MAX_MSG);
    uint8_t unmasked[] = {0x82, 0x01, 'x'};
    CHECK(tcpws_pump_from_client(&p, unmasked, 3) == 3, "an unmasked frame is consumed");
    cl = server_frame(&p, &op, pl, sizeof(pl));
    CHECK(cl >= 2 && op == OP_WS_CLOSE && (pl[0] << 8 | pl[1]) == OP_WS_CLOSE_PROTOCOL, "close 1002");
    CHECK(tcpws_pump_to_target(&p, &d) == 0, "nothing of it reaches the target");
    tcpws_pump_free(&p);
    free(big);
    free(frame);
}

static void test_head(void)
{
    const char *ok =
        "GET /tcp?port=8000 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, "
        "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    struct op_agent_ws_head h;
    int status = 0;
    const char *why = NULL;
    int hl = op_agent_ws_head_parse(ok, strlen(ok), 8192, "/tcp", &h, &status, &why);
    CHECK(hl == (int)strlen(ok), "a good head: %d", hl);
    CHECK(h.query_len == 9 && memcmp(h.query, "port=8000", 9) == 0, "its query");
    CHECK(strcmp(h.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "its accept key");
    CHECK(op_agent_ws_head_parse(ok, strlen(ok) - 1, 8192, "/tcp", &h, &status, &why) == 0, "needs more");
    CHECK(op_agent_ws_head_parse(ok, strlen(ok), 8192, "/pty", &h, &status, &why) == -1 && status == 404,
          "another path: 404");
    const char *nokey = "GET /tcp HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n";
    CHECK(op_agent_ws_head_parse(nokey, strlen(nokey), 8192, "/tcp", &h, &status, &why) == -1 &&
              status == 400,
          "no key: 400 (%s)", why);
    const char *post = "POST /tcp HTTP/1.1\r\n\r\n";
    CHECK(op_agent_ws_head_parse(post, strlen(post), 8192, "/tcp", &h, &status, &why) == -1 && status == 405,
          "POST: 405");
}

int main(void)
{
    test_client_to_target();
    test_target_to_client();
    test_errors();
    test_head();
    return check_report("the WebSocket stream pump and the WebSocket request head");
}
