/*
 * wsproxy/config_int.h — what the files of the configuration share (config.c, config_load.c,
 * config_check.c, config_print.c); not for use outside them.
 */
#ifndef OP_WSPROXY_CONFIG_INT_H
#define OP_WSPROXY_CONFIG_INT_H

#include "wsproxy/config.h"

/* True for the string-array types (repeatable flags, comma-separated env, YAML sequences). */
bool op_ws_is_array(enum op_ws_type t);
/* vsnprintf into err. */
void op_ws_seterr(char *err, size_t errlen, const char *fmt, ...) OP_PRINTF(3, 4);
/* "1", "t", "T", "TRUE", "true", "True", "yes" are true; "0", "f", "F", "FALSE", "false", "False", "no"
 * and "" are false. 0, or -EINVAL for anything else. */
int op_ws_parse_bool(const char *s, bool *out);
/* A whole decimal long. 0 or -EINVAL. */
int op_ws_parse_int(const char *s, long *out);

#endif
