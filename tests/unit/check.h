/* tests/unit/check.h — the one assertion helper of the C unit tests. CHECK never aborts: it counts the
 * check, and on failure counts the failure and prints where, the condition and the message. Counts are
 * atomic because some tests check from callbacks on worker threads. A test ends with
 * `return check_report("what was tested");` (exit status 1 when any check failed). Define
 * CHECK_PRINT_PASSES to 1 before including it to print an "ok" line for every passing check too. */
#ifndef OP_TEST_CHECK_H
#define OP_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>

#ifndef CHECK_PRINT_PASSES
#define CHECK_PRINT_PASSES 0
#endif

static int check_failures, check_count;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        bool check_ok_ = (cond);                                                                             \
        __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);                                               \
        if (!check_ok_) {                                                                                    \
            __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);                                        \
            flockfile(stdout);                                                                               \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                           \
            printf(__VA_ARGS__);                                                                             \
            printf("\n");                                                                                    \
            funlockfile(stdout);                                                                             \
        } else if (CHECK_PRINT_PASSES) {                                                                     \
            flockfile(stdout);                                                                               \
            printf("ok   ");                                                                                 \
            printf(__VA_ARGS__);                                                                             \
            printf("\n");                                                                                    \
            funlockfile(stdout);                                                                             \
        }                                                                                                    \
    } while (0)

static inline int check_report(const char *what)
{
    int f = __atomic_load_n(&check_failures, __ATOMIC_RELAXED);
    printf("%s: %s (%d checks, %d failed)\n", f ? "FAIL" : "ok", what,
           __atomic_load_n(&check_count, __ATOMIC_RELAXED), f);
    return f ? 1 : 0;
}

#endif
