/*
 * core/log.h — process-wide logging: human-readable lines on stderr by default, JSON lines with
 * op_log_set_json(true). One write(2) per line so lines from several threads never interleave.
 * Never pass secrets (tokens, cookies, keys) to these functions.
 */
#ifndef OP_LOG_H
#define OP_LOG_H

#include "core/common.h"

enum op_log_level { OP_LOG_DEBUG = 0, OP_LOG_INFO, OP_LOG_WARN, OP_LOG_ERROR };

void op_log_set_level(enum op_log_level lvl);
void op_log_set_json(bool json);
/* Parses "debug|info|warn|error"; returns 0 or -EINVAL. */
int op_log_parse_level(const char *s, enum op_log_level *out);
bool op_log_enabled(enum op_log_level lvl);
void op_log(enum op_log_level lvl, const char *module, const char *fmt, ...) OP_PRINTF(3, 4);

#define op_debug(mod, ...)                                                                                   \
    do {                                                                                                     \
        if (op_log_enabled(OP_LOG_DEBUG)) op_log(OP_LOG_DEBUG, mod, __VA_ARGS__);                            \
    } while (0)
#define op_info(mod, ...)  op_log(OP_LOG_INFO, mod, __VA_ARGS__)
#define op_warn(mod, ...)  op_log(OP_LOG_WARN, mod, __VA_ARGS__)
#define op_error(mod, ...) op_log(OP_LOG_ERROR, mod, __VA_ARGS__)

#endif
