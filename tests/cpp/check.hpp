// The harness shared by the C++ tests (as tests/c/check.h is by the C ones): CHECK(cond,
// printf-args) counts a pass or prints the failure; check_summary() prints the
// "N passed, M failed" line the suite reads and returns the exit code.
#ifndef SANCE_TEST_CHECK_HPP
#define SANCE_TEST_CHECK_HPP

#include <cstdio>

static int check_passed = 0, check_failed = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            check_passed++;                                                \
        } else {                                                           \
            check_failed++;                                                \
            std::printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            std::printf(__VA_ARGS__);                                      \
            std::printf("\n");                                             \
        }                                                                  \
    } while (0)

static inline int check_summary() {
    std::printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif // SANCE_TEST_CHECK_HPP
