/* A minimal test harness shared by the C tests: CHECK(cond, printf-args) counts a pass or
 * prints the failure; check_summary() prints the "N passed, M failed" line the suite reads
 * and returns the exit code. Counters are atomic so threads may CHECK too. */
#ifndef SANCE_TEST_CHECK_H
#define SANCE_TEST_CHECK_H

#include <stdatomic.h>
#include <stdio.h>

static atomic_int check_passed, check_failed;

#define CHECK(cond, ...)                                           \
    do {                                                           \
        if (cond) {                                                \
            atomic_fetch_add(&check_passed, 1);                    \
        } else {                                                   \
            atomic_fetch_add(&check_failed, 1);                    \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                   \
            printf("\n");                                          \
        }                                                          \
    } while (0)

static int check_summary(void) {
    printf("%d passed, %d failed\n", atomic_load(&check_passed), atomic_load(&check_failed));
    return atomic_load(&check_failed) == 0 ? 0 : 1;
}

#endif
