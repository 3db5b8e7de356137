/*
 * util/body.h — accumulating an HTTP response body (libcurl write callbacks) with a size cap, so that a
 * misbehaving server cannot make a client allocate without bound.
 */
#ifndef OP_UTIL_BODY_H
#define OP_UTIL_BODY_H

#include <stddef.h>

/* Appends n bytes of data to the malloc'd buffer *buf holding *len bytes and keeps it NUL-terminated.
 * Returns 0, -EFBIG when the result would exceed max bytes (nothing is appended), or -ENOMEM. */
int op_body_append(char **buf, size_t *len, size_t max, const char *data, size_t n);

#endif
