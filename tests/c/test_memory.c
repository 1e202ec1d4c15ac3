/* Resident memory stays flat: 1,000 create/free cycles and 10,000 training steps. Prints the
 * numbers and asserts generous bounds. Prints "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include "sance.h"
#include "check.h"

#include <stdio.h>
#include <unistd.h>


static double rss_mb(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

static SanceConfig config(void) {
    SanceConfig c;
    if (sance_config_init(&c, SANCE_ABI_VERSION) != SANCE_STATUS_OK) fprintf(stderr, "config_init: %s\n", sance_last_error());
    c.device = SANCE_DEVICE_CPU;
    c.hidden_width = 32;
    c.replay_capacity = 1024;
    return c;
}

static int cycle(int train) {
    SanceConfig c = config();
    SanceEbm *m = NULL;
    if (sance_ebm_new(&c, &m) != SANCE_STATUS_OK) return 0;
    float data[2 * 64], out[2 * 8];
    int ok = 1;
    if (train) {
        sance_toy_dataset("8gaussians", 64, 1, data);
        ok = sance_ebm_train_step(m, data, 64, NULL) == SANCE_STATUS_OK &&
             sance_ebm_sample(m, 8, NULL, out) == SANCE_STATUS_OK;
    }
    sance_ebm_free(m);
    return ok;
}

int main(void) {
    /* Warm up libtorch's one-time allocations (thread pools, kernels, allocator caches). */
    for (int i = 0; i < 20; i++) cycle(1);
    double base = rss_mb();
    int ok = 1;
    for (int i = 0; i < 1000; i++) ok &= cycle(i % 2);
    double after_cycles = rss_mb();
    CHECK(ok, "create/free cycles succeed");
    printf("1000 create/free cycles: RSS %.1f MB -> %.1f MB (%+.1f MB)\n", base, after_cycles, after_cycles - base);
    CHECK(after_cycles - base < 32, "create/free grows RSS by %.1f MB", after_cycles - base);

    SanceConfig c = config();
    SanceEbm *m = NULL;
    CHECK(sance_ebm_new(&c, &m) == SANCE_STATUS_OK, "new");
    float data[2 * 64];
    double at1000 = 0;
    for (int t = 0; t < 10000 && ok; t++) {
        sance_toy_dataset("8gaussians", 64, (uint64_t)t, data);
        ok = sance_ebm_train_step(m, data, 64, NULL) == SANCE_STATUS_OK;
        if (t == 999) at1000 = rss_mb(); /* replay buffer full, optimizer state allocated */
    }
    double at10000 = rss_mb();
    CHECK(ok, "10000 steps: %s", sance_last_error());
    printf("10000 training steps: RSS %.1f MB at step 1000 -> %.1f MB at step 10000 (%+.1f MB)\n", at1000, at10000,
           at10000 - at1000);
    CHECK(at10000 - at1000 < 32, "training grows RSS by %.1f MB", at10000 - at1000);
    sance_ebm_free(m);
    return check_summary();
}
