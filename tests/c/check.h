/* A minimal test harness shared by the C tests: CHECK(cond, printf-args) counts a pass or
 * prints the failure; check_summary() prints the "N passed, M failed" line the suite reads
 * and returns the exit code. Counters are atomic so threads may CHECK too. Built with
 * -DSANCE_TEST_PLANT_LEAK, check_summary() also leaks 4242 bytes on purpose (scripts/test). */
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

#ifdef SANCE_TEST_PLANT_LEAK
#include <stdlib.h>
#include <string.h>
/* A deliberate leak, for scripts/test's proof that LeakSanitizer is on: 4242 bytes, written,
 * and the only pointer to them dropped (through a volatile, so the compiler keeps it all). */
static void *volatile check_planted;
static void __attribute__((noinline)) check_plant_leak(void) {
    check_planted = malloc(4242);
    if (check_planted) memset(check_planted, 0x5A, 4242);
    check_planted = NULL;
}
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The device the tests put their models on: SANCE_TEST_DEVICE is "cpu" (the default), "cuda"
 * (CUDA device 0) or "cuda:K". Anything else stops the harness, so that a typo cannot quietly
 * run the suite on the CPU. */
static inline int32_t test_device(void) {
    const char *v = getenv("SANCE_TEST_DEVICE");
    if (v == NULL || *v == '\0' || strcmp(v, "cpu") == 0) return -1;
    if (strcmp(v, "cuda") == 0) return 0;
    if (strncmp(v, "cuda:", 5) == 0 && v[5] >= '0' && v[5] <= '9') {
        char *end = NULL;
        long k = strtol(v + 5, &end, 10);
        if (*end == '\0' && k < 1000) return (int32_t)k;
    }
    printf("FAIL SANCE_TEST_DEVICE=%s: expected cpu, cuda or cuda:K\n", v);
    exit(2);
}

static int check_summary(void) {
#ifdef SANCE_TEST_PLANT_LEAK
    check_plant_leak();
#endif
    printf("%d passed, %d failed\n", atomic_load(&check_passed), atomic_load(&check_failed));
    /* LeakSanitizer's check at exit ends the process with _exit on a leak, before stdio is
     * flushed: flush now so that the counts are printed, before its report. */
    fflush(stdout);
    return atomic_load(&check_failed) == 0 ? 0 : 1;
}

#endif
