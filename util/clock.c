/*
 * util/clock.c — wall-clock milliseconds and their RFC 3339 form (see clock.h).
 */
#include "util/clock.h"

#include <stdio.h>
#include <time.h>

int64_t op_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void op_format_time(int64_t ms, char out[32])
{
    if (ms < 0) {
        snprintf(out, 32, "0001-01-01T00:00:00Z");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}
