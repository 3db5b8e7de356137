/*
 * Unit tests for the engine's send queues and chunk pool (through the engine's internal header, so they
 * run without a ring): coalescing into chunks, segment and pool limits, the backpressure watermark, that
 * clearing a queue returns every chunk; operation tags, state names and the flags decoders.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"

#include "tests/unit/check.h"

int main(void)
{
    struct op_worker w;
    memset(&w, 0, sizeof(w));
    w.nchunks = 16;
    w.chunk_mem = malloc((size_t)w.nchunks * CHUNK_SIZE);
    w.free_chunks = malloc(sizeof(uint32_t) * w.nchunks);
    for (uint32_t i = 0; i < w.nchunks; i++)
        w.free_chunks[i] = i;
    w.nfree_chunks = w.nchunks;

    struct op_conn c;
    memset(&c, 0, sizeof(c));
    c.w = &w;
    c.side[OP_UP].fd = -1;

    static uint8_t data[300 * 1024];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 131 + 7);

    /* Small writes coalesce into one chunk. */
    for (int i = 0; i < 100; i++)
        CHECK(op_conn_queue(&c, OP_UP, data + i * 100, 100) == 0, "small write %d", i);
    struct op_outq *q = &c.side[OP_UP].q;
    CHECK(q->count == 1 && q->bytes == 10000, "coalescing: %u segs, %u bytes", q->count, q->bytes);
    CHECK(memcmp(q->seg[q->head].base, data, 10000) == 0, "coalesced bytes differ");
    CHECK(w.nfree_chunks == w.nchunks - 1, "one chunk in use");

    /* A large write spills over chunk boundaries, bytes stay in order. */
    CHECK(op_conn_queue(&c, OP_UP, data + 10000, 100000) == 0, "large write");
    CHECK(q->bytes == 110000, "bytes %u", q->bytes);
    size_t off = 0;
    for (int i = 0; i < q->count; i++) {
        struct op_seg *s = &q->seg[(q->head + i) % OP_OUTQ_SEGS];
        CHECK(memcmp(s->base + s->off, data + off, s->len) == 0, "segment %d content", i);
        off += s->len;
    }
    CHECK(off == 110000, "segments hold %zu bytes", off);

    /* The watermark: 110000 bytes in 4 segments still has room; past the high mark it does not. */
    CHECK(has_room(&c, OP_UP), "room at 110000 bytes");
    CHECK(op_conn_queue(&c, OP_UP, data, 60000) == 0, "to 170000");
    CHECK(!has_room(&c, OP_UP), "no room above the high watermark (%u bytes)", q->bytes);

    /* The segment ring is bounded: 8 x 32 KiB; one byte more is refused, never overwritten. */
    int rc = 0;
    while ((rc = op_conn_queue(&c, OP_UP, data, 1000)) == 0 && q->bytes < 2 * 1024 * 1024)
        ;
    CHECK(rc == -ENOBUFS, "full queue: rc %d", rc);
    CHECK(q->count == OP_OUTQ_SEGS && q->bytes == OP_OUTQ_SEGS * CHUNK_SIZE, "full: %u segs %u bytes",
          q->count, q->bytes);

    /* The pool is bounded too: a second queue gets the remaining chunks, then -ENOBUFS. */
    struct op_conn c2;
    memset(&c2, 0, sizeof(c2));
    c2.w = &w;
    rc = op_conn_queue(&c2, OP_CLI, data, 8 * CHUNK_SIZE);
    CHECK(rc == 0 && w.nfree_chunks == 0, "the last 8 chunks: rc %d, %u free", rc, w.nfree_chunks);
    struct op_conn c3;
    memset(&c3, 0, sizeof(c3));
    c3.w = &w;
    rc = op_conn_queue(&c3, OP_CLI, data, 1);
    CHECK(rc == -ENOBUFS, "pool exhaustion: rc %d", rc);

    /* Clearing returns every chunk. */
    outq_clear(&w, &c.side[OP_UP].q);
    outq_clear(&w, &c2.side[OP_CLI].q);
    CHECK(w.nfree_chunks == w.nchunks, "chunks back: %u of %u", w.nfree_chunks, w.nchunks);
    CHECK(c.side[OP_UP].q.count == 0 && c.side[OP_UP].q.bytes == 0, "queue empty after clear");

    /* Operation tags round-trip every field. */
    uint64_t t = mk_tag(TAG_SPLICE_OUT, 1, 1, 0xBEEF, 0xFFFFFFF0u);
    CHECK(TAG_OP(t) == TAG_SPLICE_OUT && TAG_SIDE(t) == 1 && TAG_EPOCH(t) == 1 && TAG_GEN(t) == 0xBEEF &&
              TAG_SLOT(t) == 0xFFFFFFF0u,
          "tag round trip");
    CHECK(strcmp(op_conn_state_str(OP_CS_HALF), "half-closed") == 0, "state names");
    CHECK(strcmp(op_conn_state_str(OP_CS_OPEN), "open") == 0, "state names");
    CHECK(strcmp(op_conn_state_str((enum op_conn_state)99), "?") == 0, "unknown state");
    for (int st = OP_CS_FREE; st <= OP_CS_CLOSING; st++)
        CHECK(op_conn_state_str((enum op_conn_state)st) &&
                  strcmp(op_conn_state_str((enum op_conn_state)st), "?"),
              "state %d has a name", st);

    /* Flags decoders: names in bit order, unknown bits in hex, "0" for none, never overrun. */
    char fb[64];
    CHECK(strcmp(op_conn_flags_str(OP_CF_TUNNEL | OP_CF_TLS, fb, sizeof(fb)), "TUNNEL|TLS") == 0, "flags: %s",
          fb);
    CHECK(strcmp(op_conn_flags_str(OP_CF_LINGER | (1u << 20), fb, sizeof(fb)), "LINGER|0x100000") == 0,
          "unknown flag bits: %s", fb);
    CHECK(strcmp(op_conn_flags_str(0, fb, sizeof(fb)), "0") == 0, "no flags: %s", fb);
    CHECK(strcmp(op_side_flags_str(OP_SF_RECV | OP_SF_EOF | OP_SF_BACKPRESSURE, fb, sizeof(fb)),
                 "RECV|EOF|BACKPRESSURE") == 0,
          "side flags: %s", fb);
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    op_conn_flags_str(OP_CF_XPRT_READY | OP_CF_DRAIN_CLOSE, tiny, sizeof(tiny));
    CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL && strncmp(tiny, "XPRT_RE", 7) == 0, "truncated: %.8s",
          tiny);

    free(w.chunk_mem);
    free(w.free_chunks);
    return check_report("send queues and chunk pool");
}
