/*
 * util/url.h — the little URL handling the roles need: access URLs are "http(s)://host[:port][/...]".
 */
#ifndef OP_UTIL_URL_H
#define OP_UTIL_URL_H

#include "core/common.h"

/* The "host[:port]" part of an http:// or https:// URL (scheme matched case-insensitively), ending at the
 * first '/', '?' or '#'. Returns a span with p == NULL when the URL has another scheme, an empty host, a
 * host starting with ':', or whitespace anywhere after the scheme. */
op_span_t op_url_http_host(const char *url);

/* Length of the URL's origin ("scheme://host[:port]"), 0 when op_url_http_host() rejects it. */
size_t op_url_origin_len(const char *url);

/* Removes trailing '/' characters in place. */
void op_url_trim_slashes(char *url);

#endif
