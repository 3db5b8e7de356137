#include "tls/xprt.h"

#include <errno.h>
#include <stdio.h>

#include "core/log.h"
#include "tls/tls.h"

static struct op_tls_stats *tls_stats(struct op_conn *c)
{
    return op_worker_xprt_state(op_conn_worker(c), &op_xprt_tls);
}

/* The session's opened() callback, the one place that says the handshake is complete (the session calls
 * it exactly once, before any plaintext): counts it and lets core open the protocol. */
static void xprt_opened(void *arg)
{
    struct op_conn *c = arg;
    struct op_tls_stats *ts = tls_stats(c);
    if (ts) OP_STAT_ADD(ts->handshakes, 1);
    op_conn_xprt_ready(c);
}

/* Ciphertext from wolfSSL goes straight to the send queue of the side the session is bound to. */
static int xprt_out_cli(void *arg, const uint8_t *p, size_t n)
{
    return op_conn_queue((struct op_conn *)arg, OP_CLI, p, n);
}
static int xprt_out_up(void *arg, const uint8_t *p, size_t n)
{
    return op_conn_queue((struct op_conn *)arg, OP_UP, p, n);
}
/* A session bound to no connection (detached, not yet attached) has nowhere to write. */
static int xprt_out_none(void *arg, const uint8_t *p, size_t n)
{
    (void)arg, (void)p, (void)n;
    return -EPIPE;
}

/* Decrypted bytes go up (the protocol is open: xprt_opened ran first). */
static int xprt_plain(void *arg, const uint8_t *p, size_t n)
{
    struct op_conn *c = arg;
    int rc = op_conn_deliver(c, p, n);
    return rc < 0 ? rc : 0;
}

/* Decrypted bytes of an upstream leg; the protocol may drop that leg while reading them, and then the rest
 * of the input is not read. */
static int xprt_plain_up(void *arg, const uint8_t *p, size_t n)
{
    struct op_conn *c = arg;
    if (!op_conn_side_xprt(c, OP_UP)) return -EPIPE;
    int rc = op_conn_deliver_from(c, OP_UP, p, n);
    return rc < 0 ? rc : 0;
}

static int xprt_open(struct op_conn *c, void *ctx)
{
    op_conn_set_xprt(c, op_tls_conn_new(ctx, xprt_out_cli, xprt_opened, c));
    if (op_conn_xprt(c)) return 0;
    struct op_tls_stats *ts = tls_stats(c);
    if (ts) OP_STAT_ADD(ts->failures, 1);
    return -ENOMEM;
}

static enum op_xprt_result xprt_input(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    struct op_tls_conn *tc = op_conn_side_xprt(c, side);
    enum op_tls_status st = op_tls_conn_input(tc, p, n, side == OP_CLI ? xprt_plain : xprt_plain_up, c);
    if (st == OP_TLS_ERROR) {
        if (side == OP_CLI && !op_conn_xprt_is_ready(c)) {
            op_debug("tls", "#%u handshake failed: %s", op_conn_id(c), op_tls_conn_error(tc));
            op_conn_finish(c); /* flush the alert, then close */
            return OP_XPRT_OK;
        }
        op_debug("tls", "#%u %s session %s: %s", op_conn_id(c), side == OP_CLI ? "client" : "upstream",
                 op_tls_conn_state_str(tc), op_tls_conn_error(tc));
        return OP_XPRT_ERROR;
    }
    return st == OP_TLS_PEER_CLOSED ? OP_XPRT_CLOSE_NOTIFY : OP_XPRT_OK;
}

static int xprt_output(struct op_conn *c, enum op_side side, const uint8_t *p, size_t n)
{
    return op_tls_conn_write(op_conn_side_xprt(c, side), p, n);
}

static int xprt_shutdown(struct op_conn *c, enum op_side side)
{
    return op_tls_conn_shutdown(op_conn_side_xprt(c, side));
}

static void xprt_close(struct op_conn *c, enum op_side side)
{
    /* A client session that never finished its handshake counts as a failed handshake. */
    if (side == OP_CLI && !op_conn_xprt_is_ready(c)) {
        struct op_tls_stats *ts = tls_stats(c);
        if (ts) OP_STAT_ADD(ts->failures, 1);
    }
    op_tls_conn_free(op_conn_side_xprt(c, side));
}

/* The session now writes to c's side (or nowhere). It touches no per-worker state of its own: the
 * handshake counters are written on the worker that completed the handshake. */
static void xprt_bind(void *x, struct op_conn *c, enum op_side side)
{
    if (!c)
        op_tls_conn_rebind(x, xprt_out_none, NULL);
    else
        op_tls_conn_rebind(x, side == OP_CLI ? xprt_out_cli : xprt_out_up, c);
}

static void xprt_free(void *x)
{
    op_tls_conn_free(x);
}

const struct op_xprt_ops op_xprt_tls = {
    .name = "tls",
    .worker_state_size = sizeof(struct op_tls_stats),
    .open = xprt_open,
    .input = xprt_input,
    .output = xprt_output,
    .shutdown = xprt_shutdown,
    .close = xprt_close,
    .bind = xprt_bind,
    .free = xprt_free,
};

int op_tls_xprt_ctx_new(const char *const *certs, const char *const *keys, int n, int min_version, void **out,
                        char *err, size_t errlen)
{
    if (n < 1 || n > OP_TLS_MAX_CERTS) {
        snprintf(err, errlen, "between 1 and %d certificate/key pairs are supported", OP_TLS_MAX_CERTS);
        return -EINVAL;
    }
    int rc = op_tls_global_init();
    if (rc != 0) {
        snprintf(err, errlen, "TLS library initialisation failed");
        return rc < 0 ? rc : -EIO;
    }
    struct op_tls_cert pairs[OP_TLS_MAX_CERTS];
    for (int i = 0; i < n; i++) {
        pairs[i].cert_file = certs[i];
        pairs[i].key_file = keys[i];
    }
    struct op_tls_config cfg = {.certs = pairs, .ncerts = (size_t)n, .min_version = min_version};
    struct op_tls_ctx *ctx = NULL;
    rc = op_tls_ctx_new(&cfg, &ctx, err, errlen);
    if (rc != 0) return rc;
    *out = ctx;
    return 0;
}

const struct op_tls_stats *op_tls_worker_stats(const struct op_engine *e, int worker)
{
    return op_engine_xprt_state(e, worker, &op_xprt_tls);
}

void op_tls_xprt_ctx_unref(void *ctx)
{
    op_tls_ctx_unref(ctx);
}
