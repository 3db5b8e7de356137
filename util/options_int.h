/*
 * util/options_int.h — what the files of the option machinery share (options_load.c,
 * options_check.c, options_print.c); not for use outside them.
 */
#ifndef OP_UTIL_OPTIONS_INT_H
#define OP_UTIL_OPTIONS_INT_H

#include "util/options.h"

/* True for the string-array types (repeatable flags, separated env values, YAML sequences). */
bool op_opt_is_array(enum op_opt_type t);
/* The separator of a string array's items: ';' for OP_OT_SPECS, ',' for the others. */
char op_opt_sep(enum op_opt_type t);
/* vsnprintf into err. */
void op_opt_seterr(char *err, size_t errlen, const char *fmt, ...) OP_PRINTF(3, 4);
/* "1", "t", "T", "TRUE", "true", "True", "yes" are true; "0", "f", "F", "FALSE", "false", "False", "no"
 * and "" are false. 0, or -EINVAL for anything else. */
int op_opt_parse_bool(const char *s, bool *out);
/* A whole decimal long. 0 or -EINVAL. */
int op_opt_parse_int(const char *s, long *out);

#endif
