/*
 * util/clock.h — wall-clock time as the APIs and stored rows carry it: milliseconds since the epoch, and
 * RFC 3339 text in UTC with milliseconds (what Coder's JSON shows, e.g. "2026-12-02T05:30:53.999Z").
 */
#ifndef OP_UTIL_CLOCK_H
#define OP_UTIL_CLOCK_H

#include <stdint.h>

/* Milliseconds since the epoch (CLOCK_REALTIME; a vDSO call, fine on a worker). */
int64_t op_wall_ms(void);
/* ms as "YYYY-MM-DDTHH:MM:SS.mmmZ"; a negative ms (never) as "0001-01-01T00:00:00Z", Go's zero time. */
void op_format_time(int64_t ms, char out[32]);

#endif
