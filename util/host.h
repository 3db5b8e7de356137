/*
 * util/host.h — host names as the roles see them in Host headers, access URLs and wildcard patterns.
 */
#ifndef OP_UTIL_HOST_H
#define OP_UTIL_HOST_H

#include "core/common.h"

/* The host of a "host[:port]" span without its port: "example.com:8080" -> "example.com",
 * "[::1]:8443" -> "[::1]", "[::1]" -> "[::1]". A bare IPv6 address (more than one ':' and no brackets) is
 * returned whole, since its last group is not a port. */
op_span_t op_host_without_port(op_span_t hostport);

/* True if pattern is a wildcard hostname as Coder accepts it for subdomain apps: exactly one '*', as the
 * whole first label, at least two labels, lowercase-insensitive DNS labels, no scheme; an optional
 * ":digits" port is ignored (docs/coder-compat.md, "Wildcard hostnames"). */
bool op_wildcard_valid(const char *pattern);

/* True if s is a workspace app slug: 1 to 32 lower-case letters, digits and single inner hyphens, so that
 * it can stand as a label in a subdomain app host (the agent checks its --app declarations with it, the
 * primary the apps an agent reports). */
bool op_app_slug_valid(const char *s);

#endif
