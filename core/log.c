#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = OP_LOG_INFO;
static _Atomic bool g_json = false;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

uint64_t op_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t op_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void op_bug(const char *file, int line, const char *cond)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "BUG at %s:%d: %s\n", file, line, cond);
    if (n > 0) {
        ssize_t r = write(STDERR_FILENO, buf, (size_t)OP_MIN(n, (int)sizeof(buf) - 1));
        (void)r;
    }
    abort();
}

void op_log_set_level(enum op_log_level lvl)
{
    atomic_store(&g_level, (int)lvl);
}
void op_log_set_json(bool json)
{
    atomic_store(&g_json, json);
}
bool op_log_enabled(enum op_log_level lvl)
{
    return (int)lvl >= atomic_load(&g_level);
}

int op_log_parse_level(const char *s, enum op_log_level *out)
{
    for (size_t i = 0; i < OP_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum op_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Appends s to buf as JSON string contents (without quotes). */
static size_t json_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
        } else {
            dst[n++] = (char)c;
        }
    }
    return n;
}

void op_log(enum op_log_level lvl, const char *module, const char *fmt, ...)
{
    if (!op_log_enabled(lvl)) return;
    int saved_errno = errno;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[80];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    char line[4608];
    size_t n;
    if (atomic_load(&g_json)) {
        n = (size_t)snprintf(line, sizeof(line),
                             "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"", when,
                             level_names[lvl], module);
        n += json_escape(line + n, sizeof(line) - n - 4, msg);
        line[n++] = '"';
        line[n++] = '}';
        line[n++] = '\n';
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%s %-5s %s: %s\n", when, level_names[lvl], module, msg);
        if (n >= sizeof(line)) {
            n = sizeof(line) - 1;
            line[n - 1] = '\n';
        }
    }
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
    errno = saved_errno;
}
