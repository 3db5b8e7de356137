/*
 * util/duration.c — Go's time.ParseDuration grammar, computed in integer nanoseconds as Go does (so
 * "0.1s" is exactly 100 ms and the range check matches Go's), then rounded to milliseconds.
 */
#include "util/duration.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define NS_MAX ((uint64_t)INT64_MAX)

static const struct {
    const char *name;
    uint64_t ns;
} units[] = {
    {"ns", 1},           {"us", 1000},      {"\xc2\xb5s", 1000}, /* U+00B5 MICRO SIGN */
    {"\xce\xbcs", 1000},                                         /* U+03BC GREEK SMALL LETTER MU */
    {"ms", 1000000},     {"s", 1000000000}, {"m", 60ull * 1000000000}, {"h", 3600ull * 1000000000},
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int op_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    if (!s) return -EINVAL;
    if (*s == '+') s++;
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    if (!*s) return -EINVAL;
    uint64_t total = 0;
    while (*s) {
        if (!is_digit(*s) && *s != '.') return -EINVAL;
        uint64_t whole = 0;
        const char *start = s;
        for (; is_digit(*s); s++) {
            if (whole > (NS_MAX - (uint64_t)(*s - '0')) / 10) return -ERANGE;
            whole = whole * 10 + (uint64_t)(*s - '0');
        }
        bool had_whole = s != start;
        uint64_t frac = 0, scale = 1;
        bool had_frac = false;
        if (*s == '.') {
            s++;
            bool overflow = false; /* digits beyond what fits add nothing, as in Go */
            for (; is_digit(*s); s++) {
                had_frac = true;
                if (overflow) continue;
                if (frac > (NS_MAX - 9) / 10) {
                    overflow = true;
                    continue;
                }
                frac = frac * 10 + (uint64_t)(*s - '0');
                scale *= 10;
            }
        }
        if (!had_whole && !had_frac) return -EINVAL;
        size_t ul = strcspn(s, "0123456789.");
        uint64_t unit = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && ul; i++)
            if (strlen(units[i].name) == ul && memcmp(s, units[i].name, ul) == 0) unit = units[i].ns;
        if (!unit) return -EINVAL; /* a missing or unknown unit */
        s += ul;
        if (whole > NS_MAX / unit) return -ERANGE;
        uint64_t v = whole * unit;
        if (frac) {
            v += (uint64_t)((double)frac * ((double)unit / (double)scale));
            if (v > NS_MAX) return -ERANGE;
        }
        if (v > NS_MAX - total) return -ERANGE;
        total += v;
    }
    *out_ms = (total + 500000) / 1000000;
    return 0;
}
