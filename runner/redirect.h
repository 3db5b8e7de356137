/*
 * runner/redirect.h — the HTTPS redirect that a role's plaintext listener answers with when TLS is on.
 */
#ifndef OP_RUNNER_REDIRECT_H
#define OP_RUNNER_REDIRECT_H

#include "http/h1.h"
#include "http/proxy.h"

/* Puts "Location: https://<host>[:<https_port>]<target>" into w: host is the request's Host without its
 * port (IPv6 literals keep their brackets), and the port is omitted when it is "443". */
void op_put_https_location(struct op_h1_writer *w, op_span_t host, const char *https_port, op_span_t target);

/* Answers the request with 308 Permanent Redirect (keeps the method and body) to the same target on
 * https, appending the Location header to out->extra after its first extra_off bytes. A Location too long
 * for out->extra is answered 414 URI Too Long instead (400 for bytes a header may not carry), never a cut
 * header. Returns the status set. */
int op_route_https_redirect(struct op_route *out, size_t extra_off, op_span_t host, op_span_t target,
                            const char *https_port);

#endif
