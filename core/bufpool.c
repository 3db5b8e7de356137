/*
 * core/bufpool.c — the worker's buffer pools, all allocated at start-up.
 *
 * Receives use a provided-buffer ring (no per-connection receive buffers, so an idle connection holds
 * none). Raw bytes are forwarded zero-copy: the provided buffer itself is queued on the other side and
 * given back to the ring when the send completes. Transformed bytes (TLS, HTTP heads) are copied into
 * send chunks from a per-worker pool. Splice tunnels borrow pipe pairs from a bounded pool.
 *
 * Backpressure: a side is read only while the other side's queue is under the high watermark (bytes
 * and segments), so a slow reader stops its writer at the TCP level.
 */
#include "core/engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void recycle_pbuf(struct op_worker *w, int bid)
{
    io_uring_buf_ring_add(w->br, w->pbuf_mem + (size_t)bid * w->buf_size, w->buf_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(w->nbufs), 0);
    io_uring_buf_ring_advance(w->br, 1);
    w->bufs_held--;
}

static uint8_t *chunk_get(struct op_worker *w)
{
    if (!w->nfree_chunks) return NULL;
    return w->chunk_mem + (size_t)w->free_chunks[--w->nfree_chunks] * CHUNK_SIZE;
}

static void chunk_put(struct op_worker *w, uint8_t *p)
{
    w->free_chunks[w->nfree_chunks++] = (uint32_t)((size_t)(p - w->chunk_mem) / CHUNK_SIZE);
}

uint8_t *op_conn_buf_get(struct op_conn *c)
{
    return chunk_get(c->w);
}
void op_conn_buf_put(struct op_conn *c, uint8_t *buf)
{
    if (buf) chunk_put(c->w, buf);
}

void seg_release(struct op_worker *w, struct op_seg *s)
{
    if (s->bid >= 0)
        recycle_pbuf(w, s->bid);
    else
        chunk_put(w, s->base);
    s->base = NULL;
}

void outq_clear(struct op_worker *w, struct op_outq *q)
{
    while (q->count) {
        seg_release(w, &q->seg[q->head]);
        q->head = (uint8_t)((q->head + 1) % OP_OUTQ_SEGS);
        q->count--;
    }
    q->bytes = 0;
}

int op_conn_queue(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    struct op_outq *q = &c->side[side].q;
    while (n) {
        struct op_seg *t = outq_tail(q);
        if (t && t->bid < 0 && t->off + t->len < CHUNK_SIZE) {
            size_t room = CHUNK_SIZE - (t->off + t->len);
            size_t k = OP_MIN(room, n);
            memcpy(t->base + t->off + t->len, p, k);
            t->len += (uint32_t)k;
            q->bytes += (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        if (q->count == OP_OUTQ_SEGS) return -ENOBUFS;
        uint8_t *ch = chunk_get(c->w);
        if (!ch) {
            STAT_ADD(c->w, enobufs, 1);
            return -ENOBUFS;
        }
        struct op_seg *s = &q->seg[(q->head + q->count) % OP_OUTQ_SEGS];
        s->base = ch;
        s->off = s->len = 0;
        s->bid = -1;
        q->count++;
    }
    return 0;
}

/* Queues a provided buffer itself (zero-copy forward). The caller checked there is a free segment. */
void queue_pbuf(struct op_conn *c, enum op_side side, uint8_t *base, uint32_t len, int bid)
{
    struct op_outq *q = &c->side[side].q;
    struct op_seg *s = &q->seg[(q->head + q->count) % OP_OUTQ_SEGS];
    s->base = base;
    s->off = 0;
    s->len = len;
    s->bid = bid;
    q->count++;
    q->bytes += len;
}

bool has_room(const struct op_conn *c, enum op_side dest)
{
    const struct op_outq *q = &c->side[dest].q;
    return q->count <= OP_OUTQ_SEGS - SEG_RESERVE && q->bytes < HIGH_WATERMARK;
}

void pipe_release(struct op_worker *w, struct op_side_st *s)
{
    if (s->pipe_rd < 0) return;
    if (s->pipe_bytes == 0 && w->npipes_free < w->max_pipes) {
        w->pipes[2 * w->npipes_free] = s->pipe_rd;
        w->pipes[2 * w->npipes_free + 1] = s->pipe_wr;
        w->npipes_free++;
    } else { /* a pipe that still holds bytes is not reusable */
        close(s->pipe_rd);
        close(s->pipe_wr);
        w->pipes_made--;
    }
    s->pipe_rd = s->pipe_wr = -1;
    s->pipe_bytes = 0;
}

/* Splice path: poll the source for readability, then socket -> pipe -> socket. */
bool splice_get_pipe(struct op_worker *w, struct op_side_st *s)
{
    if (s->pipe_rd >= 0) return true;
    if (w->npipes_free) {
        w->npipes_free--;
        s->pipe_rd = w->pipes[2 * w->npipes_free];
        s->pipe_wr = w->pipes[2 * w->npipes_free + 1];
        return true;
    }
    if (w->pipes_made >= w->max_pipes) return false;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return false;
    /* The kernel may give less than asked (fs.pipe-max-size, the user's pipe quota): keep what it gave. */
    int got = fcntl(p[1], F_SETPIPE_SZ, (int)w->pipe_size);
    if (got > 0 && (uint32_t)got < w->pipe_size) w->pipe_size = (uint32_t)got;
    w->pipes_made++;
    s->pipe_rd = p[0];
    s->pipe_wr = p[1];
    return true;
}

/* Receive buffers ran out (-ENOBUFS): the side waits until half the ring is back. Exhaustion is rare
 * (it needs many fast flows at once), so waking scans the slots instead of keeping a list. */
void buf_wait(struct op_conn *c, int side)
{
    if (!(c->side[side].flags & OP_SF_WAITBUF)) c->w->nwaiting++;
    c->side[side].flags |= OP_SF_WAITBUF;
    STAT_ADD(c->w, enobufs, 1);
}

void wake_buf_waiters(struct op_worker *w)
{
    if (!w->nwaiting || w->bufs_held > w->nbufs / 2) return;
    w->nwaiting = 0;
    for (uint32_t i = 0; i < w->nslots; i++) {
        struct op_conn *c = slot_conn(w, i);
        if (c->state == OP_CS_FREE || !((c->side[0].flags | c->side[1].flags) & OP_SF_WAITBUF)) continue;
        c->side[0].flags &= (uint16_t)~OP_SF_WAITBUF;
        c->side[1].flags &= (uint16_t)~OP_SF_WAITBUF;
        conn_progress(c);
    }
}

/* Allocates the worker's pools from the engine configuration and registers the provided-buffer ring with
 * the worker's ring. 0 or negative errno with a reason in err. */
int pools_init(struct op_worker *w, char *err, size_t errlen)
{
    const struct op_engine_conf *cf = &w->e->conf;
    w->nbufs = cf->recv_bufs;
    w->buf_size = cf->recv_buf_size;
    w->pbuf_mem = mmap(NULL, (size_t)w->nbufs * w->buf_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w->pbuf_mem == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %u receive buffers", w->nbufs);
        return -ENOMEM;
    }
    int brc = 0;
    w->br = io_uring_setup_buf_ring(&w->ring, w->nbufs, BGID, 0, &brc);
    if (!w->br) {
        snprintf(err, errlen, "provided-buffer ring setup failed: %s (kernel 5.19+ required)",
                 strerror(-brc));
        return brc ? brc : -ENOTSUP;
    }
    for (uint32_t i = 0; i < w->nbufs; i++)
        io_uring_buf_ring_add(w->br, w->pbuf_mem + (size_t)i * w->buf_size, w->buf_size, (unsigned short)i,
                              io_uring_buf_ring_mask(w->nbufs), (int)i);
    io_uring_buf_ring_advance(w->br, (int)w->nbufs);
    w->bufs_held = 0;

    w->nchunks = cf->send_chunks;
    w->chunk_mem = mmap(NULL, (size_t)w->nchunks * CHUNK_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    w->free_chunks = malloc(sizeof(uint32_t) * w->nchunks);
    if (w->chunk_mem == MAP_FAILED || !w->free_chunks) {
        snprintf(err, errlen, "cannot map the send-chunk pool");
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < w->nchunks; i++)
        w->free_chunks[i] = w->nchunks - 1 - i;
    w->nfree_chunks = w->nchunks;

    w->max_pipes = cf->max_pipes;
    w->pipe_size = cf->pipe_size;
    w->splice_mode = cf->splice;
    w->pipes = calloc(2 * (size_t)w->max_pipes + 2, sizeof(int));
    if (!w->pipes) {
        snprintf(err, errlen, "cannot allocate the pipe pool");
        return -ENOMEM;
    }
    return 0;
}

/* What is tied to the ring (the provided-buffer ring and its memory, idle pipes): before the ring exits. */
void pools_ring_teardown(struct op_worker *w)
{
    for (uint32_t i = 0; i < w->npipes_free; i++) {
        close(w->pipes[2 * i]);
        close(w->pipes[2 * i + 1]);
    }
    w->npipes_free = 0;
    if (w->br) io_uring_free_buf_ring(&w->ring, w->br, w->nbufs, BGID);
    w->br = NULL;
    if (w->pbuf_mem && w->pbuf_mem != MAP_FAILED) munmap(w->pbuf_mem, (size_t)w->nbufs * w->buf_size);
    w->pbuf_mem = NULL;
}

/* The rest, in op_engine_free (late messages may still queue into chunks until then). */
void pools_free(struct op_worker *w)
{
    if (w->chunk_mem && w->chunk_mem != MAP_FAILED) munmap(w->chunk_mem, (size_t)w->nchunks * CHUNK_SIZE);
    free(w->free_chunks);
    free(w->pipes);
}
