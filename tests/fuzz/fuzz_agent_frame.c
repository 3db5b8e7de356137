/*
 * Fuzz target for the agent control-frame decoder (proto/agent_frame.c). The input is treated as a byte
 * stream from a peer. Invariants: every decoded frame re-encodes to exactly the bytes it came from; every
 * strict prefix of a frame decodes as "need more" (0); the decoder never reads past len and never reports
 * more than it was given; an error ends the stream as a real connection would.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/agent_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        /* A copy of exactly the remaining bytes, so ASan catches any read past len. */
        size_t left = size - off;
        uint8_t *buf = malloc(left);
        memcpy(buf, data + off, left);
        struct op_af_frame f;
        int n = op_af_decode(buf, left, &f);
        if (n > (int)left) abort();
        if (n <= 0) {
            free(buf);
            break;
        }
        for (int cut = 0; cut < n; cut++) {
            struct op_af_frame g;
            if (op_af_decode(buf, (size_t)cut, &g) != 0) abort();
        }
        if (f.type != OP_AF_UNKNOWN) {
            uint8_t out[OP_AF_MAX_FRAME];
            int m = op_af_encode(&f, out, sizeof(out));
            if (m != n || memcmp(out, buf, (size_t)n) != 0) abort();
            if (op_af_encode(&f, out, (size_t)n - 1) >= 0) abort();
        } else if (!(f.flags & OP_AF_FLAG_IGNORABLE)) {
            abort();
        }
        free(buf);
        off += (size_t)n;
    }
    return 0;
}
