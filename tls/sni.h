/*
 * tls/sni.h — reads the server name (SNI) from a connection's first TLS record, a ClientHello, without
 * wolfSSL. The session code uses it to choose the certificate before it creates the wolfSSL session; it
 * has no state and no allocation, so it is fuzzed on its own (tests/fuzz/fuzz_sni.c).
 */
#ifndef OP_TLS_SNI_H
#define OP_TLS_SNI_H

#include <sys/types.h>

#include "core/common.h"

/* Largest TLS plaintext record (RFC 8446 §5.1); a record header adds 5 bytes. */
#define OP_TLS_RECORD_MAX 16384

/* Reads the SNI host name from the first TLS record of a connection (a ClientHello). Strict bounds
 * checks; p need not be NUL-terminated. Returns the name's length (1..255) with the name in out
 * (NUL-terminated, as sent), 0 when the hello has no SNI, -EAGAIN when the record is not complete yet,
 * -EMSGSIZE when the ClientHello spans several records, -EINVAL when malformed or the name does not fit
 * in outlen. */
OP_MUST_USE ssize_t op_tls_sni_from_hello(const uint8_t *p, size_t n, char *out, size_t outlen);

#endif
