/* tests/unit/check.h — the tiny assertion helper shared by the C unit tests: CHECK never aborts, it
 * counts failures and prints where; a test ends with `return check_report("what was tested")`. */
#ifndef OP_TEST_CHECK_H
#define OP_TEST_CHECK_H

#include <stdio.h>

static int check_failures;
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            check_failures++;                                                                                \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                      \
            printf(__VA_ARGS__);                                                                             \
            printf("\n");                                                                                    \
        }                                                                                                    \
    } while (0)

static inline int check_report(const char *what)
{
    printf("%s: %s\n", check_failures ? "FAIL" : "ok", what);
    return check_failures ? 1 : 0;
}

#endif
