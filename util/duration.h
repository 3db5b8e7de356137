/*
 * util/duration.h — durations written the way Go's time.ParseDuration reads them ("300ms", "1.5h",
 * "2h45m", "1µs"), for the flags and configuration options of the roles.
 */
#ifndef OP_UTIL_DURATION_H
#define OP_UTIL_DURATION_H

#include <stdint.h>

/* Parses a duration in Go's grammar: an optional '+', then one or more decimal numbers (optional
 * fraction) each followed by a unit (ns, us, µs, μs, ms, s, m, h); "0" alone needs no unit. The result is
 * rounded to the nearest millisecond. Returns 0, -EINVAL for anything else (negative durations included:
 * a caller that accepts them strips the '-' itself), or -ERANGE beyond Go's range (2^63-1 ns). */
int op_parse_duration_ms(const char *s, uint64_t *out_ms);

#endif
