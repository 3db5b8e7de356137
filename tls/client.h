/*
 * tls/client.h — TLS client sessions over a non-blocking socket the caller owns, for the outbound
 * connections of `outpost agent` and `outpost tcp` (to an https region). The server certificate is
 * verified against the system trust store or a given CA file, and its name against the host; SNI is
 * sent. Same posture as the server side: TLS 1.2 minimum, the AEAD-only cipher list of tls.h.
 * This header keeps wolfSSL inside tls/.
 *
 * Non-blocking use: every call returns -EAGAIN when the socket would block; op_tlsc_wants_write()
 * then says whether to wait for writability (else readability). op_tlsc_pending() tells that decrypted
 * bytes are buffered inside the session, so the caller must read again without waiting for the socket.
 * A client belongs to one thread at a time.
 */
#ifndef OP_TLS_CLIENT_H
#define OP_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct op_tlsc_ctx;
struct op_tlsc;

/* ca_file NULL or "": the system's trust store. Returns 0 and *out, or -EINVAL/-ENOENT with the reason. */
int op_tlsc_ctx_new(const char *ca_file, struct op_tlsc_ctx **out, char *err, size_t errlen);
/* A context that checks no certificate and no name (SNI is still sent): only for the agent's TLS leg to a
 * workspace app inside its own workspace, whose certificate is usually self-signed (the reference's app
 * proxy does not verify it either). Same versions and ciphers. Returns 0 and *out, or -errno with err. */
int op_tlsc_ctx_new_unverified(struct op_tlsc_ctx **out, char *err, size_t errlen);
void op_tlsc_ctx_free(struct op_tlsc_ctx *ctx);

/* A session on fd (not taken: the caller closes it) checking the certificate against host (a name or
 * an IP literal). NULL on OOM. */
struct op_tlsc *op_tlsc_new(struct op_tlsc_ctx *ctx, int fd, const char *host);
void op_tlsc_free(struct op_tlsc *c);

/* 0 once the handshake completed, -EAGAIN, or -EPROTO (op_tlsc_error() says why: certificate, alert). */
int op_tlsc_handshake(struct op_tlsc *c);
/* > 0 bytes, 0 at close_notify or EOF, -EAGAIN, -EIO. */
ssize_t op_tlsc_read(struct op_tlsc *c, void *buf, size_t n);
/* Writes all or part of buf: > 0 bytes taken, -EAGAIN (call again later with the same bytes), -EIO. */
ssize_t op_tlsc_write(struct op_tlsc *c, const void *buf, size_t n);
/* Sends close_notify (once). 0, -EAGAIN or -EIO. */
int op_tlsc_shutdown(struct op_tlsc *c);
bool op_tlsc_wants_write(const struct op_tlsc *c);
bool op_tlsc_pending(const struct op_tlsc *c);
const char *op_tlsc_error(const struct op_tlsc *c);

#endif
