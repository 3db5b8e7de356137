/*
 * core/common.h — small shared definitions used by every module.
 *
 * Return conventions (written once, followed everywhere; a function that departs from them says why in
 * its declaration):
 *   - an operation that can fail returns int: 0 on success, a negative errno value on failure
 *     (syscall-like: -ENOMEM, -EINVAL, ...), never a positive value;
 *   - a function that produces or moves bytes returns ssize_t: the count (>= 0) or a negative errno;
 *     a size that cannot fail is a size_t;
 *   - a predicate returns bool and has no side effect a caller must check;
 *   - a lookup returns a pointer, NULL when there is none;
 *   - a result that must not be ignored (an error that loses bytes or leaks a resource when dropped) is
 *     declared OP_MUST_USE, so the compiler refuses a caller that drops it.
 * Invariants (conditions that are bugs when false, never input errors) are checked with OP_BUG_ON.
 */
#ifndef OP_COMMON_H
#define OP_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OP_LIKELY(x)                       __builtin_expect(!!(x), 1)
#define OP_UNLIKELY(x)                     __builtin_expect(!!(x), 0)
#define OP_ARRAY_LEN(a)                    (sizeof(a) / sizeof((a)[0]))
#define OP_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define OP_MIN(a, b)                       ((a) < (b) ? (a) : (b))
#define OP_MAX(a, b)                       ((a) > (b) ? (a) : (b))
#define OP_UNUSED                          __attribute__((unused))
#define OP_PRINTF(a, b)                    __attribute__((format(printf, a, b)))
#define OP_MUST_USE                        __attribute__((warn_unused_result))

/* Aborts with file, line and the condition when cond holds: for invariants, compiled into every build. */
#define OP_BUG_ON(cond)                                                                                      \
    do {                                                                                                     \
        if (OP_UNLIKELY(cond)) op_bug(__FILE__, __LINE__, #cond);                                            \
    } while (0)
_Noreturn void op_bug(const char *file, int line, const char *cond);

/* Adds n to a single-writer counter (an _Atomic integer that only one thread writes, read by others):
 * relaxed load plus relaxed store, never a locked read-modify-write. */
#define OP_STAT_ADD(counter, n)                                                                              \
    atomic_store_explicit(&(counter), atomic_load_explicit(&(counter), memory_order_relaxed) + (n),          \
                          memory_order_relaxed)

#define OP_VERSION "0.1.0"

/* A borrowed byte span: pointer plus length, never NUL-terminated by contract. */
typedef struct op_span {
    const char *p;
    size_t len;
} op_span_t;

static inline op_span_t op_span(const char *p, size_t len)
{
    op_span_t s = {p, len};
    return s;
}

/* Monotonic milliseconds (CLOCK_MONOTONIC_COARSE is enough for timeouts). */
uint64_t op_now_ms(void);
/* Monotonic microseconds (CLOCK_MONOTONIC), for durations. */
uint64_t op_now_us(void);

#endif
