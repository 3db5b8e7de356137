/*
 * tls/xprt.h — the TLS transport for the engine: plugs tls/tls.h sessions into core's transport
 * interface (struct op_xprt_ops). The listener's transport context is a struct op_tls_ctx *.
 */
#ifndef OP_TLS_XPRT_H
#define OP_TLS_XPRT_H

#include "core/engine.h"

#define OP_TLS_MAX_CERTS 8

extern const struct op_xprt_ops op_xprt_tls;

/* The TLS transport's per-worker counters (written by the worker, OP_STAT_ADD; read with relaxed loads). */
struct op_tls_stats {
    _Atomic uint64_t handshakes; /* handshakes completed */
    _Atomic uint64_t failures;   /* sessions closed before their handshake completed */
};
/* Worker `worker`'s TLS counters, or NULL when no listener of e uses TLS. Any thread. */
const struct op_tls_stats *op_tls_worker_stats(const struct op_engine *e, int worker);

/* Builds a refcounted TLS server context from n PEM cert/key file pairs (the first is the default, the
 * others are picked by SNI). min_version: 12 or 13. Returns 0, or a negative errno with a reason in err. */
OP_MUST_USE int op_tls_xprt_ctx_new(const char *const *certs, const char *const *keys, int n, int min_version,
                                    void **out, char *err, size_t errlen);
void op_tls_xprt_ctx_unref(void *ctx);

#endif
