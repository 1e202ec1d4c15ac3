/* What the C benchmarks share: a monotonic clock, the comparison qsort needs for medians, and
 * (unless the program defines its own, as eval_speed.c does to print both libraries' errors)
 * CHECK, which stops the program on a failed sance call with the call and its message. */
#ifndef SANCE_BENCH_H
#define SANCE_BENCH_H

#include <sance.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef CHECK
#define CHECK(call)                                                                        \
    do {                                                                                   \
        SanceStatus s_ = (call);                                                           \
        if (s_ != SANCE_STATUS_OK) {                                                       \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, sance_last_error()); \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)
#endif

/* Seconds on the monotonic clock. */
static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Ascending order of doubles, for qsort. */
static inline int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
