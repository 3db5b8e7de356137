/*
 * Fuzz target for the pump of the tcp endpoint's WebSocket variant (agent/tcp_ws_pump.c) and the agent's
 * WebSocket request head (agent/ws_head.c). The first input byte is the size of the chunks the client's
 * bytes are fed in (0 = all at once), the second how many bytes the target takes per write (0 = all), the
 * rest a client byte stream. Invariants: the pump never reports more input used than it was given and
 * makes progress while the target has taken everything; a message for the target is at most 64 KiB; what
 * it queues for the client is a sequence of valid unmasked server frames with no data frame after the
 * close; and the bytes for the target are the same whatever the chunking. The head parser never claims
 * more than its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/tcp_ws_pump.h"
#include "agent/ws_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t mix(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* Checks and drops the server frames queued for the client. */
static void drain_client(struct tcpws_pump *p, bool *closed)
{
    const uint8_t *d;
    size_t n = tcpws_pump_to_client(p, &d), off = 0;
    while (off < n) {
        struct op_ws_frame f;
        int hl = op_ws_decode_header(d + off, n - off, false, &f);
        if (hl <= 0 || f.masked || !f.fin || n - off < (size_t)hl + f.len) abort();
        if (*closed) abort(); /* nothing after our close */
        if (f.opcode == OP_WS_CLOSE) *closed = true;
        off += (size_t)hl + (size_t)f.len;
    }
    tcpws_pump_client_sent(p, n);
}

static uint64_t run(const uint8_t *in, size_t len, size_t chunk, size_t take, size_t *total)
{
    struct tcpws_pump p;
    if (tcpws_pump_init(&p) != 0) abort();
    uint64_t h = 0xcbf29ce484222325ULL;
    bool closed = false;
    size_t off = 0;
    *total = 0;
    for (int guard = 0; off < len && guard < 1 << 20; guard++) {
        size_t n = chunk && chunk < len - off ? chunk : len - off;
        size_t used = tcpws_pump_from_client(&p, in + off, n);
        if (used > n) abort();
        const uint8_t *d;
        size_t pend = tcpws_pump_to_target(&p, &d);
        if (pend > OP_AGENT_TCPWS_MAX_MSG) abort();
        if (!used && !pend && !p.peer_closed) abort(); /* no progress with nothing waiting */
        off += used;
        while (pend) {
            size_t k = take && take < pend ? take : pend;
            h = mix(h, d, k);
            *total += k;
            tcpws_pump_target_wrote(&p, k);
            pend = tcpws_pump_to_target(&p, &d);
        }
        drain_client(&p, &closed);
        if (p.peer_closed) break;
    }
    if (tcpws_pump_target_room(&p)) tcpws_pump_from_target(&p, (const uint8_t *)"x", 1);
    tcpws_pump_close(&p, OP_WS_CLOSE_NORMAL, "done");
    drain_client(&p, &closed);
    if (!closed || tcpws_pump_target_room(&p)) abort();
    tcpws_pump_free(&p);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t chunk = data[0], take = data[1];
    size_t len = size - 2;
    uint8_t *in = malloc(len ? len : 1); /* exactly len bytes: ASan catches a read past the end */
    memcpy(in, data + 2, len);
    size_t t1, t2;
    uint64_t a = run(in, len, chunk, take, &t1), b = run(in, len, 0, 0, &t2);
    if (a != b || t1 != t2) abort(); /* the chunking changes nothing for the target */
    struct op_agent_ws_head hd;
    int status;
    const char *why;
    int hl = op_agent_ws_head_parse((const char *)in, len, 8192, "/tcp", &hd, &status, &why);
    if (hl > (int)len || (hl > 0 && hd.query_len > len)) abort();
    free(in);
    return 0;
}
