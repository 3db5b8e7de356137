/*
 * wsapp/appurl.h — workspace app URLs (docs/apps.md): the path form
 * `/@<user>/<workspace>[.<agent>]/apps/<slug>/<rest>` and the subdomain form
 * `[<prefix>---]<slug-or-port>--<agent>--<workspace>--<user>` in the `*` of a wildcard host pattern, and
 * the app request they name (the "request" of a signed app token). Pure functions: no allocation, no I/O,
 * safe on worker threads. Fuzzed by tests/fuzz/fuzz_appurl.c.
 */
#ifndef OP_WSAPP_APPURL_H
#define OP_WSAPP_APPURL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

enum op_wsapp_access {
    OP_WSAPP_PATH = 1,
    OP_WSAPP_SUBDOMAIN,
    OP_WSAPP_TERMINAL,
};
/* "path", "subdomain", "terminal"; "unknown" otherwise. */
const char *op_wsapp_access_name(enum op_wsapp_access a);
/* The enum for a name, or 0. */
enum op_wsapp_access op_wsapp_access_parse(const char *s, size_t n);

#define OP_WSAPP_NAME_MAX 64  /* user, workspace, agent, slug-or-port, prefix: bytes without the NUL */
#define OP_WSAPP_BASE_MAX 320 /* base_path */

/* The request fields of Coder's workspaceapps.Request, all NUL-terminated. */
struct op_wsapp_req {
    enum op_wsapp_access access;
    char base_path[OP_WSAPP_BASE_MAX +
                   1]; /* path apps: "/@u/ws[.agent]/apps/slug/" as received; "/" for subdomain */
    char prefix[OP_WSAPP_NAME_MAX + 1];    /* subdomain only: "" or "xyz---" */
    char user[OP_WSAPP_NAME_MAX + 1];      /* username_or_id */
    char workspace[OP_WSAPP_NAME_MAX + 1]; /* workspace_name_or_id */
    char agent[OP_WSAPP_NAME_MAX + 1];     /* agent_name_or_id ("" = the only agent, path apps) */
    char slug_or_port[OP_WSAPP_NAME_MAX + 1];
};

/* Outcomes of the parsers. OP_WSAPP_OK = 0; the others are positive so that callers can switch on them. */
enum op_wsapp_parse {
    OP_WSAPP_OK = 0,
    OP_WSAPP_NOT_APP,   /* not an app URL at all: route it as usual */
    OP_WSAPP_ADD_SLASH, /* path app base without its trailing '/': answer 307 to path + "/" (+ query) */
    OP_WSAPP_BAD,       /* an app URL that is refused: *status and *why say how (e.g. 404 @me, 400) */
};

/*
 * Parses a request path (origin-form target without the query, not yet percent-decoded) as a path app:
 * "/@u/ws/apps/slug/...", "/@u/ws.agent/apps/slug/...", "/%40u/..." (VS Code encodes '@'). On OP_WSAPP_OK,
 * out is filled (access PATH, base_path the matched prefix with its trailing '/', agent "" when absent) and
 * *rest_off is the offset in path of the path under the app (it starts with the base path's final '/').
 * Refusals (OP_WSAPP_BAD): user "me" → 404 "Applications must be accessed with the full username, not
 * @me."; a numeric slug (a port) → 400 "Port-based URLs are only supported for subdomain-based
 * applications."; a name that is not a valid name → 400. status/why are static strings. On OP_WSAPP_ADD_SLASH
 * out is filled as for OK (base_path with the '/' the path lacks) and *rest_off is len.
 */
enum op_wsapp_parse op_wsapp_parse_path(const char *path, size_t len, struct op_wsapp_req *out,
                                        size_t *rest_off, int *status, const char **why);

/*
 * Parses a Host header value (may carry ":port" and a trailing '.') against a wildcard host pattern such as
 * "*.eu.example.com" or "*--apps.example.com" (optional ":port" in the pattern is ignored): NOT_APP when the
 * host does not match the pattern or has no '.', BAD (400 "Invalid application URL") when the `*` part does
 * not parse by the subdomain rules (prefix split on the last "---"; APP--AGENT--WORKSPACE--USER, each name
 * `[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*`, matched case-sensitively after the host's case is kept), OK with out
 * filled (access SUBDOMAIN, base_path "/").
 */
enum op_wsapp_parse op_wsapp_parse_host(const char *host, size_t len, const char *pattern,
                                        struct op_wsapp_req *out, int *status, const char **why);

/* True if host (":port" and trailing '.' ignored) matches the pattern's `*` form at all (step 5 of the
 * subdomain middleware), whatever the captured label says. */
bool op_wsapp_host_matches(const char *host, size_t len, const char *pattern);

/* Port detection on a slug-or-port: "8080" → 8080 (https false), "8080s" → 8080 (https true), otherwise -1
 * (an app slug). Values over 65535 are slugs. */
int op_wsapp_port(const char *slug_or_port, bool *https);

/* The §6.4 validation of a request (after normalisation): 0, or -EINVAL with *why. */
int op_wsapp_req_check(const struct op_wsapp_req *r, const char **why);
/* Splits "ws.agent" in workspace into workspace and agent (when agent is empty) and adds a trailing '/' to
 * base_path: what both sides do before comparing. */
void op_wsapp_req_normalize(struct op_wsapp_req *r);
/* The signed token's request matches the incoming one: every field equal (after normalisation). */
bool op_wsapp_req_equal(const struct op_wsapp_req *a, const struct op_wsapp_req *b);

/* The subdomain app session cookie name for a wildcard host pattern:
 * "coder_subdomain_app_session_token_" + lowercase hex of the first 16 bytes of SHA-256(pattern).
 * Returns the length or -ENOSPC. */
int op_wsapp_subdomain_cookie_name(const char *pattern, char *out, size_t outlen);

/* The host a subdomain app of the pattern gets: "*" replaced by "[prefix]slug--agent--ws--user" (the port of
 * the pattern kept). Returns the length or -ENOSPC / -EINVAL. */
int op_wsapp_subdomain_host(const char *pattern, const struct op_wsapp_req *r, char *out, size_t outlen);

#endif
