/*
 * tls/tls.h — TLS server sessions over wolfSSL, with no sockets and no I/O of its own.
 *
 * The engine owns the sockets. It feeds the ciphertext it just received to op_tls_conn_input() (a
 * borrowed span: wolfSSL copies what it needs before the call returns, so the receive buffer can go back
 * to the ring right away) and receives the ciphertext to send through the conn's out() callback, which
 * appends to the socket's send queue. This module is the only code that includes wolfSSL headers.
 *
 * Files: ctx.c builds the server context (certificates, SNI names, ticket key), session.c runs the
 * sessions, sni.c reads the ClientHello's server name without wolfSSL (sni.h), xprt.c plugs sessions
 * into the engine as a transport (xprt.h); tls_int.h is what they share.
 *
 * Threading: an op_tls_ctx is immutable after op_tls_ctx_new() and may be shared by all threads; its
 * refcount is atomic. An op_tls_conn belongs to one thread at a time. Never call op_tls_conn_input()
 * or op_tls_conn_free() from inside a plain() callback (the plaintext scratch buffer is per thread; return
 * an error to stop instead); op_tls_conn_write() and op_tls_conn_shutdown() on the same conn are fine there.
 * out() may be called from op_tls_conn_input() (handshake flights, alerts, TLS 1.3 key updates),
 * op_tls_conn_write() and op_tls_conn_shutdown().
 *
 * Memory: a conn costs ~200 bytes until its first ClientHello record is complete; only then is the
 * WOLFSSL object created (on the certificate chosen by SNI). A ClientHello split across receives is
 * collected in a temporary buffer (at most one 16 KiB record) freed as soon as it is complete.
 *
 * Security posture (fixed, not configurable): TLS 1.2 minimum, AEAD-only ciphers by default, groups
 * X25519/P-256/P-384, no renegotiation, no 0-RTT, no client certificates. The static wolfSSL must be built
 * without old TLS and without NULL ciphers (checked at compile time in tls_int.h).
 */
#ifndef OP_TLS_H
#define OP_TLS_H

#include "core/common.h"

struct op_tls_ctx; /* immutable server config, refcounted (reload swaps it; live connections keep theirs) */

struct op_tls_cert {
    const char *cert_file; /* PEM; leaf first, then any intermediates */
    const char *key_file;  /* PEM private key matching the leaf */
};

struct op_tls_config {
    /* >= 1 certificates. certs[0] is the default. The others are chosen by SNI matching their DNS SANs
     * (or the subject CN when the cert has no DNS SAN), case-insensitively; exact names win over
     * wildcards, and "*.example.com" matches exactly one label ("a.example.com", not "example.com" nor
     * "b.a.example.com"). An SNI that matches nothing (or no SNI) gets certs[0]. */
    const struct op_tls_cert *certs;
    size_t ncerts;
    int min_version;         /* 12 (default when 0) or 13 */
    const char *ciphers;     /* wolfSSL cipher list; NULL -> OP_TLS_DEFAULT_CIPHERS */
    const char *alpn;        /* comma list, NULL -> "http/1.1"; "" disables ALPN. A client offering ALPN
                                without a match proceeds without ALPN. */
    bool no_session_tickets; /* default false: TLS 1.2 tickets and TLS 1.3 resumption on */
};

/* TLS 1.3 AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305; TLS 1.2 ECDHE-{ECDSA,RSA} with the same AEADs. */
#define OP_TLS_DEFAULT_CIPHERS                                                                               \
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                             \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                             \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Session tickets issued by a ctx are valid for this long, and only with that ctx's random key (or with
 * the ctx that inherited it, see op_tls_ctx_inherit_tickets()); otherwise the client gets a full
 * handshake. */
#define OP_TLS_TICKET_LIFETIME_S 3600

/* Process-wide init (wolfSSL_Init); idempotent and thread-safe. op_tls_ctx_new() calls it itself.
 * Returns 0 or -EIO. */
OP_MUST_USE int op_tls_global_init(void);
/* Releases wolfSSL's global state (wolfSSL_Cleanup). Call once at exit, after every ctx and conn is
 * freed; op_tls_global_init() may be called again afterwards. */
void op_tls_global_cleanup(void);

/* Loads and checks everything (files readable, PEM valid, key matches cert, cipher list and ALPN list
 * valid) so that a reload can refuse a bad config. Returns 0 and *out (refcount 1), or a negative errno
 * (-EINVAL bad config / PEM / key mismatch, -ENOENT or -EACCES unreadable file, -ENOMEM) with a
 * human-readable reason in err (always NUL-terminated when errlen > 0). */
OP_MUST_USE int op_tls_ctx_new(const struct op_tls_config *cfg, struct op_tls_ctx **out, char *err,
                               size_t errlen);
/* Reload helper: ctx (just created, not yet used by any conn) also accepts session tickets issued under
 * prev's key, so a reload does not force every client into a full handshake. New tickets are always
 * issued under ctx's own key (TLS 1.3 clients get one after every handshake; a resumed TLS 1.2 client
 * keeps its old ticket). Only one generation is kept: tickets older than prev's key are refused.
 * Reloading periodically with this is how ticket keys get rotated (each ctx has its own random key). */
void op_tls_ctx_inherit_tickets(struct op_tls_ctx *ctx, const struct op_tls_ctx *prev);
/* Takes a reference. */
void op_tls_ctx_ref(struct op_tls_ctx *ctx);
/* Drops a reference; the last one frees the ctx. NULL is ignored. */
void op_tls_ctx_unref(struct op_tls_ctx *ctx);

/* out(arg, p, n): append n ciphertext bytes to the socket's send queue (copy them: p is only valid during
 * the call). Return 0, or a negative errno when it cannot (the session then fails). */
typedef int (*op_tls_out_fn)(void *arg, const uint8_t *p, size_t n);
/* plain(arg, p, n): n > 0 decrypted application bytes; p valid only during the call. Return 0, or a
 * negative errno to stop reading: op_tls_conn_input() then returns OP_TLS_ERROR (error "input stopped by the
 * application"), the rest of that input and all later input are discarded, but op_tls_conn_write() and
 * op_tls_conn_shutdown() keep working, e.g. to send an error response and close_notify before closing. */
typedef int (*op_tls_plain_fn)(void *arg, const uint8_t *p, size_t n);

/* opened(arg): the handshake just completed. The one signal of it: called exactly once per conn, from
 * inside op_tls_conn_input(), before the first plain() of that conn (application data may arrive in the
 * flight that completes the handshake). op_tls_conn_write() is allowed from here. */
typedef void (*op_tls_open_fn)(void *arg);

struct op_tls_conn;

/* New server session on ctx (takes a ctx reference). out() and opened() (may be NULL) get out_arg.
 * Returns NULL on OOM. No I/O happens until the first op_tls_conn_input(). */
OP_MUST_USE struct op_tls_conn *op_tls_conn_new(struct op_tls_ctx *ctx, op_tls_out_fn out,
                                                op_tls_open_fn opened, void *out_arg);
/* Re-points an established session at another owner: its later ciphertext goes to out(out_arg, ...) (the
 * opened() callback has run already and is not called again). The session may then move to another thread
 * (one thread at a time, handed over with a synchronising operation: a mutex, a message queue); it keeps no
 * per-thread state between calls. */
void op_tls_conn_rebind(struct op_tls_conn *c, op_tls_out_fn out, void *out_arg);
/* Frees the session (no I/O, no close_notify) and drops its ctx reference. NULL is ignored. */
void op_tls_conn_free(struct op_tls_conn *c);

/* A session's state after input: a status, not 0/-errno, because the caller must tell four outcomes
 * apart (need more, open, peer closed, failed); op_tls_conn_error() says why it failed. */
enum op_tls_status { OP_TLS_ERROR = -1, OP_TLS_WANT = 0, OP_TLS_OPEN = 1, OP_TLS_PEER_CLOSED = 2 };

/* Feeds n ciphertext bytes just received (borrowed: all consumed before return; partial records are kept
 * inside wolfSSL). Drives the handshake (its replies go out through out()), then decrypts every complete
 * record and calls plain() for each chunk (at most 16 KiB, from a thread-local scratch buffer).
 * Returns OP_TLS_WANT while the handshake needs more, OP_TLS_OPEN once open (also when this call
 * completed the handshake: opened() has run then), OP_TLS_PEER_CLOSED after close_notify (further
 * input is ignored), OP_TLS_ERROR on failure (a fatal alert went out through out() when wolfSSL produced
 * one; op_tls_conn_error() says why; the conn is dead and every later call returns OP_TLS_ERROR).
 * n may be 0 (just drive). plain may be NULL only while the handshake is in progress. */
OP_MUST_USE enum op_tls_status op_tls_conn_input(struct op_tls_conn *c, const uint8_t *p, size_t n,
                                                 op_tls_plain_fn plain, void *arg);

/* Encrypts all n bytes (records of at most 16 KiB) and hands them to out(). Returns 0, -ENOTCONN before
 * the handshake completes, or -EIO when the session has failed (now: out() or wolfSSL failed, or
 * earlier). Allowed once open, also after the peer's close_notify and after plain() stopped the input. */
OP_MUST_USE int op_tls_conn_write(struct op_tls_conn *c, const uint8_t *p, size_t n);

/* Queues close_notify through out() (once; later calls are no-ops). Returns 0, or -EIO when the conn
 * has failed (not merely stopped by plain()) or out() failed. Before the handshake completes there is
 * nothing to protect: it returns 0 without output and the caller just closes the socket. */
OP_MUST_USE int op_tls_conn_shutdown(struct op_tls_conn *c);

/* True once the handshake completed and while the conn has neither failed nor received close_notify. */
bool op_tls_conn_is_open(const struct op_tls_conn *c);
/* The session's state, for logs: "hello" (no ClientHello record yet), "handshake", "open", "peer-closed"
 * (close_notify received), "read-stopped" (plain() stopped the input), "failed". */
const char *op_tls_conn_state_str(const struct op_tls_conn *c);
/* Last error text, "" if none. Valid until the next call on c. */
const char *op_tls_conn_error(const struct op_tls_conn *c);
/* Negotiated protocol ("TLSv1.2", "TLSv1.3"), or "" before the handshake completes. */
const char *op_tls_conn_version(const struct op_tls_conn *c);
/* Negotiated cipher suite name (wolfSSL naming), or "" before the handshake completes. */
const char *op_tls_conn_cipher(const struct op_tls_conn *c);
/* Server name the client sent (SNI), or NULL if none. Valid while c lives. */
const char *op_tls_conn_sni(const struct op_tls_conn *c);
/* Negotiated ALPN protocol (NUL-terminated), or NULL if none. Valid while c lives. */
const char *op_tls_conn_alpn(const struct op_tls_conn *c);
/* True when the session was resumed (ticket), false for a full handshake. */
bool op_tls_conn_resumed(const struct op_tls_conn *c);

#endif
