/*
 * tls/session.c — TLS server sessions over wolfSSL custom I/O (see tls.h for the contract).
 *
 * Design:
 *   - the WOLFSSL of a conn is created only when the first ClientHello record is complete: we read its
 *     SNI ourselves (op_tls_sni_from_hello, sni.c) and create the WOLFSSL on the CTX that
 *     op_tls_ctx_pick() chooses. (wolfSSL 5.7.2 as built here has no wolfSSL_set_SSL_CTX or
 *     wolfSSL_get_servername, and switching CTX mid-handshake is fragile.) Usually the ClientHello
 *     arrives in one recv and is fed straight from the borrowed cursor; only a fragmented one is copied
 *     into a temporary per-conn buffer (at most one record, freed at once);
 *   - receive: a borrowed cursor {rx, rx_len} set by op_tls_conn_input(); the recv callback copies from
 *     it and says WANT_READ once it is empty, so every byte is inside wolfSSL when input() returns;
 *   - send: the send callback hands whole records to the conn's out() and never blocks.
 */
#include "tls/tls_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op_tls_conn_state {
    OP_TLS_ST_HELLO = 0, /* waiting for the first ClientHello record; no WOLFSSL yet */
    OP_TLS_ST_HANDSHAKE,
    OP_TLS_ST_OPEN,
    OP_TLS_ST_PEER_CLOSED,
    OP_TLS_ST_READ_STOPPED, /* plain() returned an error: no more input, but writes and close_notify still
                               work */
    OP_TLS_ST_FAILED,
};
static const char *const state_names[] = {"hello",       "handshake",    "open",
                                          "peer-closed", "read-stopped", "failed"};
_Static_assert(OP_ARRAY_LEN(state_names) == OP_TLS_ST_FAILED + 1, "one name per session state");

struct op_tls_conn {
    WOLFSSL *ssl; /* NULL in OP_TLS_ST_HELLO */
    struct op_tls_ctx *ctx;
    op_tls_out_fn out;
    op_tls_open_fn opened;
    void *out_arg;
    const uint8_t *rx; /* borrowed cursor, valid only during op_tls_conn_input() */
    size_t rx_len;
    enum op_tls_conn_state state;
    bool out_failed;
    bool shutdown_sent;
    bool established; /* the handshake completed (stays true after close or failure) */
    uint8_t *hello;   /* fragmented first record being collected (OP_TLS_ST_HELLO only), else NULL */
    size_t hello_len;
    char *sni;              /* host name from the ClientHello, NULL if none */
    const uint8_t *pending; /* input not yet fed (after the collected hello), during input() only */
    size_t pending_len;
    char err[96];
};

static int conn_drive(struct op_tls_conn *c, op_tls_plain_fn plain, void *arg);

static _Thread_local uint8_t tls_scratch[OP_TLS_RECORD_MAX];

/* ------------------------------------------------------------------------------------------------ */
/* Custom I/O                                                                                        */

static int tls_recv_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct op_tls_conn *c = arg;
    if (c->rx_len == 0 || sz <= 0) return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = OP_MIN((size_t)sz, c->rx_len);
    memcpy(buf, c->rx, n);
    c->rx += n;
    c->rx_len -= n;
    return (int)n;
}

static int tls_send_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct op_tls_conn *c = arg;
    if (sz <= 0) return 0;
    if (c->out_failed || c->out(c->out_arg, (const uint8_t *)buf, (size_t)sz) != 0) {
        c->out_failed = true;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    return sz;
}

/* ------------------------------------------------------------------------------------------------ */
/* Connections                                                                                       */

struct op_tls_conn *op_tls_conn_new(struct op_tls_ctx *ctx, op_tls_out_fn out, op_tls_open_fn opened,
                                    void *out_arg)
{
    if (ctx == NULL || out == NULL) return NULL;
    struct op_tls_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    op_tls_ctx_ref(ctx);
    c->ctx = ctx;
    c->out = out;
    c->opened = opened;
    c->out_arg = out_arg;
    c->state = OP_TLS_ST_HELLO;
    return c;
}

void op_tls_conn_rebind(struct op_tls_conn *c, op_tls_out_fn out, void *out_arg)
{
    c->out = out;
    c->out_arg = out_arg;
}

void op_tls_conn_free(struct op_tls_conn *c)
{
    if (c == NULL) return;
    if (c->ssl) wolfSSL_free(c->ssl);
    free(c->hello);
    free(c->sni);
    op_tls_ctx_unref(c->ctx);
    free(c);
}

/* Marks c failed with a reason; returns OP_TLS_ERROR for the input path's convenience. */
static enum op_tls_status conn_fail(struct op_tls_conn *c, const char *what, int code)
{
    c->state = OP_TLS_ST_FAILED;
    if (c->out_failed)
        snprintf(c->err, sizeof(c->err), "%s: output queue refused the data", what);
    else if (code != 0)
        snprintf(c->err, sizeof(c->err), "%s: %s (%d)", what,
                 wolfSSL_ERR_reason_error_string((unsigned long)code), code);
    else
        snprintf(c->err, sizeof(c->err), "%s", what);
    wolfSSL_ERR_clear_error();
    c->rx = NULL;
    c->rx_len = 0;
    free(c->hello);
    c->hello = NULL;
    c->hello_len = 0;
    return OP_TLS_ERROR;
}

/* Creates the WOLFSSL on the CTX of certificate `pick`. */
static int conn_create_ssl(struct op_tls_conn *c, size_t pick)
{
    struct op_tls_ctx *ctx = c->ctx;
    c->ssl = wolfSSL_new(ctx->certs[pick].wctx);
    if (c->ssl == NULL) return -ENOMEM;
    wolfSSL_SSLSetIORecv(c->ssl, tls_recv_cb);
    wolfSSL_SSLSetIOSend(c->ssl, tls_send_cb);
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    if (ctx->alpn && wolfSSL_UseALPN(c->ssl, ctx->alpn, ctx->alpn_len, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) !=
                         WOLFSSL_SUCCESS)
        return -ENOMEM;
    return 0;
}

/* OP_TLS_ST_HELLO: collect the first record, read its SNI, create the WOLFSSL on the right CTX and point
 * the cursor at the bytes to feed it. Returns OP_TLS_WANT (need more; everything was copied),
 * OP_TLS_OPEN (ssl created, go on with the handshake), or OP_TLS_ERROR. */
static int conn_hello(struct op_tls_conn *c, const uint8_t *p, size_t n)
{
    char name[256];
    const uint8_t *rec = p;
    size_t rec_len = n;
    if (c->hello != NULL || n == 0) {
        if (n == 0 && c->hello == NULL) return OP_TLS_WANT;
        /* A record is at most 5 + 16 KiB; keep only what can belong to the first one plus the rest. */
        if (c->hello == NULL && (c->hello = malloc(5 + OP_TLS_RECORD_MAX)) == NULL)
            return conn_fail(c, "handshake: out of memory", 0);
        size_t room = 5 + OP_TLS_RECORD_MAX - c->hello_len;
        size_t take = OP_MIN(room, n);
        if (take > 0) {
            memcpy(c->hello + c->hello_len, p, take);
            c->hello_len += take;
            p += take;
            n -= take;
        }
        rec = c->hello;
        rec_len = c->hello_len;
    }
    ssize_t r = op_tls_sni_from_hello(rec, rec_len, name, sizeof(name));
    if (r == -EAGAIN) {
        if (c->hello == NULL) {
            if ((c->hello = malloc(5 + OP_TLS_RECORD_MAX)) == NULL)
                return conn_fail(c, "handshake: out of memory", 0);
            memcpy(c->hello, p, n); /* n < 5 + record length <= 5 + 16 KiB */
            c->hello_len = n;
        }
        return OP_TLS_WANT;
    }
    size_t pick = 0;
    if (r > 0) {
        if ((c->sni = strdup(name)) == NULL) return conn_fail(c, "handshake: out of memory", 0);
        pick = c->ctx->ncerts > 1 ? op_tls_ctx_pick(c->ctx, name) : 0;
    }
    /* Anything else (no SNI, malformed, multi-record hello) goes to the default cert and wolfSSL judges
     * the bytes itself (and sends the alert). */
    if (conn_create_ssl(c, pick) != 0) return conn_fail(c, "handshake: out of memory", 0);
    c->state = OP_TLS_ST_HANDSHAKE;
    c->rx = rec;
    c->rx_len = rec_len;
    /* The rest of the input (beyond the hello buffer) is fed after the collected bytes. */
    c->pending = p;
    c->pending_len = c->hello ? n : 0;
    return OP_TLS_OPEN;
}

enum op_tls_status op_tls_conn_input(struct op_tls_conn *c, const uint8_t *p, size_t n, op_tls_plain_fn plain,
                                     void *arg)
{
    if (c->state == OP_TLS_ST_FAILED || c->state == OP_TLS_ST_READ_STOPPED) return OP_TLS_ERROR;
    if (c->state == OP_TLS_ST_PEER_CLOSED) return OP_TLS_PEER_CLOSED;
    if (p == NULL) n = 0;
    c->rx = p;
    c->rx_len = n;
    c->pending = NULL;
    c->pending_len = 0;

    if (c->state == OP_TLS_ST_HELLO) {
        int r = conn_hello(c, p, n);
        if (r != OP_TLS_OPEN) {
            c->rx = NULL;
            c->rx_len = 0;
            return r;
        }
    }
    int status = conn_drive(c, plain, arg);
    if (c->pending_len > 0 && (status == OP_TLS_WANT || status == OP_TLS_OPEN)) {
        c->rx = c->pending;
        c->rx_len = c->pending_len;
        status = conn_drive(c, plain, arg);
    }
    c->pending = NULL;
    c->pending_len = 0;
    if (c->hello) {
        free(c->hello);
        c->hello = NULL;
        c->hello_len = 0;
    }
    return status;
}

/* Runs the handshake and the read loop over the current cursor until it is empty. */
static int conn_drive(struct op_tls_conn *c, op_tls_plain_fn plain, void *arg)
{
    if (c->state == OP_TLS_ST_HANDSHAKE) {
        int r = wolfSSL_accept(c->ssl);
        if (r != WOLFSSL_SUCCESS) {
            int e = wolfSSL_get_error(c->ssl, r);
            if (e == WOLFSSL_ERROR_WANT_READ && !c->out_failed) {
                /* WANT_READ only comes from tls_recv_cb on an empty cursor: all input consumed */
                if (c->rx_len != 0)
                    return conn_fail(c, "handshake: input left unconsumed (internal error)", 0);
                c->rx = NULL;
                return OP_TLS_WANT;
            }
            return conn_fail(c, "handshake", e);
        }
        c->state = OP_TLS_ST_OPEN;
        c->established = true;
        if (c->opened) c->opened(c->out_arg); /* before any plain(): the flight may carry app data */
    }
    if (c->state == OP_TLS_ST_PEER_CLOSED) return OP_TLS_PEER_CLOSED;

    /* Bounded: every iteration either consumes input or returns decrypted data, and both are finite;
     * the cap only guards against a wolfSSL surprise. */
    for (int guard = 0; guard < 1 << 20; guard++) {
        int r = wolfSSL_read(c->ssl, tls_scratch, (int)sizeof(tls_scratch));
        if (r > 0) {
            if (plain == NULL || plain(arg, tls_scratch, (size_t)r) != 0) {
                c->state = OP_TLS_ST_READ_STOPPED;
                snprintf(c->err, sizeof(c->err), "input stopped by the application");
                c->rx = NULL;
                c->rx_len = 0;
                return OP_TLS_ERROR;
            }
            continue;
        }
        int e = wolfSSL_get_error(c->ssl, r);
        if (e == WOLFSSL_ERROR_WANT_READ && !c->out_failed) {
            if (c->rx_len != 0) return conn_fail(c, "read: input left unconsumed (internal error)", 0);
            c->rx = NULL;
            return OP_TLS_OPEN;
        }
        if (e == WOLFSSL_ERROR_ZERO_RETURN) {
            c->state = OP_TLS_ST_PEER_CLOSED;
            c->rx = NULL;
            c->rx_len = 0;
            wolfSSL_ERR_clear_error();
            return OP_TLS_PEER_CLOSED;
        }
        return conn_fail(c, "read", e);
    }
    return conn_fail(c, "read: no progress", 0);
}

int op_tls_conn_write(struct op_tls_conn *c, const uint8_t *p, size_t n)
{
    if (c->state != OP_TLS_ST_OPEN && c->state != OP_TLS_ST_PEER_CLOSED &&
        c->state != OP_TLS_ST_READ_STOPPED) {
        if (c->state == OP_TLS_ST_FAILED) return -EIO;
        snprintf(c->err, sizeof(c->err), "write: the handshake is not complete");
        return -ENOTCONN;
    }
    while (n > 0) {
        int chunk = (int)OP_MIN(n, (size_t)1 << 20);
        int r = wolfSSL_write(c->ssl, p, chunk);
        if (r <= 0) {
            conn_fail(c, "write", wolfSSL_get_error(c->ssl, r));
            return -EIO;
        }
        /* Without WANT_WRITE from our send callback wolfSSL writes everything or fails. */
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int op_tls_conn_shutdown(struct op_tls_conn *c)
{
    if (c->state == OP_TLS_ST_FAILED) return -EIO;
    if (c->state == OP_TLS_ST_HELLO || c->state == OP_TLS_ST_HANDSHAKE || c->shutdown_sent) return 0;
    c->shutdown_sent = true;
    int r = wolfSSL_shutdown(c->ssl);
    if ((r == WOLFSSL_SUCCESS || r == WOLFSSL_SHUTDOWN_NOT_DONE) && !c->out_failed) return 0;
    conn_fail(c, "shutdown",
              r == WOLFSSL_SUCCESS || r == WOLFSSL_SHUTDOWN_NOT_DONE ? 0 : wolfSSL_get_error(c->ssl, r));
    return -EIO;
}

bool op_tls_conn_is_open(const struct op_tls_conn *c)
{
    return c->state == OP_TLS_ST_OPEN;
}

const char *op_tls_conn_state_str(const struct op_tls_conn *c)
{
    return (unsigned)c->state < OP_ARRAY_LEN(state_names) ? state_names[c->state] : "?";
}

const char *op_tls_conn_error(const struct op_tls_conn *c)
{
    return c->err;
}

static bool handshake_done(const struct op_tls_conn *c)
{
    return c->ssl != NULL && c->established;
}

const char *op_tls_conn_version(const struct op_tls_conn *c)
{
    if (!handshake_done(c)) return "";
    const char *v = wolfSSL_get_version(c->ssl);
    return v ? v : "";
}

const char *op_tls_conn_cipher(const struct op_tls_conn *c)
{
    if (!handshake_done(c)) return "";
    const char *v = wolfSSL_get_cipher_name(c->ssl);
    return v ? v : "";
}

const char *op_tls_conn_sni(const struct op_tls_conn *c)
{
    return c->sni;
}

const char *op_tls_conn_alpn(const struct op_tls_conn *c)
{
    char *name = NULL;
    unsigned short len = 0;
    if (!handshake_done(c) || wolfSSL_ALPN_GetProtocol(c->ssl, &name, &len) != WOLFSSL_SUCCESS ||
        name == NULL || len == 0)
        return NULL;
    return name;
}

bool op_tls_conn_resumed(const struct op_tls_conn *c)
{
    return handshake_done(c) && wolfSSL_session_reused(c->ssl) == 1;
}
