/* Memory stays flat: create/free cycles and training steps, bounded by what a leak would cost.
 * A leaked handle costs at least its parameters theta, the snapshot theta-bar, Adam's m and v and the
 * replay buffer; a leaked step at least its batch (data and noise chains). The growth per cycle
 * must stay under a quarter of one handle and the growth per step under a quarter of one batch,
 * measured as resident memory. Prints the numbers and the bounds, then "N passed, M failed".
 * scripts/test runs it under LeakSanitizer with malloc_context_size=2 (see there why). */
#define _POSIX_C_SOURCE 200809L
#include "sance.h"
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

#define CYCLES 1000
#define WARM_STEPS 1000 /* replay buffer full, optimizer state and snapshot allocated */
#define STEPS 3000      /* measured after the warm-up */
#define BATCH 64

static double rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return NAN;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? NAN : resident * (double)sysconf(_SC_PAGESIZE);
}

static SanceConfig config(void) {
    SanceConfig c;
    if (sance_config_init(&c, SANCE_ABI_VERSION) != SANCE_STATUS_OK) fprintf(stderr, "config_init: %s\n", sance_last_error());
    c.device = test_device();
    c.hidden_width = 32;
    c.replay_capacity = 1024;
    return c;
}

/* Floats in the MLP's tensors: data_dim -> hidden_width x hidden_layers -> 1, biases on every
 * layer but the last (docs/algorithm.md), plus the scalar c. */
static double param_floats(const SanceConfig *c) {
    double d = c->data_dim, w = c->hidden_width, l = c->hidden_layers;
    return (d * w + w) + (l - 1) * (w * w + w) + w + 1;
}

/* What one leaked handle would hold at least: theta, theta-bar, Adam's m and v, the full replay buffer. */
static double handle_bytes(const SanceConfig *c) {
    return 4.0 * (4 * param_floats(c) + (double)c->replay_capacity * c->data_dim);
}

/* What one leaked batch would hold at least: the data and the noise chains (nu per sample). */
static double batch_bytes(const SanceConfig *c, size_t batch) {
    double noise = fmax(1.0, round(c->noise_ratio * (double)batch));
    return 4.0 * ((double)batch + noise) * c->data_dim;
}

static int cycle(int train) {
    SanceConfig c = config();
    SanceEbm *m = NULL;
    if (sance_ebm_new(&c, &m) != SANCE_STATUS_OK) return 0;
    float data[2 * BATCH], out[2 * 8];
    int ok = 1;
    if (train) {
        sance_toy_dataset("8gaussians", BATCH, 1, data);
        ok = sance_ebm_train_step(m, data, BATCH, NULL) == SANCE_STATUS_OK &&
             sance_ebm_sample(m, 8, NULL, out) == SANCE_STATUS_OK;
    }
    sance_ebm_free(m);
    return ok;
}

/* RSS growth per unit against its bound. */
static int bounded(const char *what, double before, double after, int units, const char *unit, double bound) {
    double per_unit = (after - before) / units;
    printf("%d %s: RSS %.1f KB -> %.1f KB, %+.1f bytes per %s (bound %.0f)\n", units, what, before / 1024,
           after / 1024, per_unit, unit, bound);
    CHECK(per_unit < bound, "%s: RSS grows by %.1f bytes per %s, bound %.0f", what, per_unit, unit, bound);
    return per_unit < bound;
}

int main(void) {
    SanceConfig c = config();
    const double handle = handle_bytes(&c), batch = batch_bytes(&c, BATCH);
    printf("one handle holds >= %.0f bytes (%.0f parameter floats x 4 copies, replay %u x %u); "
           "one batch >= %.0f bytes (%d data + noise chains x %u)\n",
           handle, param_floats(&c), c.replay_capacity, c.data_dim, batch, BATCH, c.data_dim);

    /* Warm up libtorch's one-time allocations (thread pools, kernels, allocator caches). */
    for (int i = 0; i < 20; i++) cycle(1);
    double rss0 = rss_bytes();
    int ok = 1;
    /* Every other cycle trains one step (buffer, snapshot); a leak of every handle, or only of
     * the trained ones, costs at least half a handle per cycle: twice the bound. */
    for (int i = 0; i < CYCLES; i++) ok &= cycle(i % 2);
    double rss1 = rss_bytes();
    CHECK(ok, "create/free cycles succeed: %s", sance_last_error());
    bounded("create/free cycles", rss0, rss1, CYCLES, "cycle", handle / 4);

    SanceEbm *m = NULL;
    CHECK(sance_ebm_new(&c, &m) == SANCE_STATUS_OK, "new: %s", sance_last_error());
    float data[2 * BATCH];
    double rss2 = NAN;
    for (int t = 0; t < WARM_STEPS + STEPS && ok && m; t++) {
        if (t == WARM_STEPS) rss2 = rss_bytes();
        ok = sance_toy_dataset("8gaussians", BATCH, (uint64_t)t, data) == SANCE_STATUS_OK &&
             sance_ebm_train_step(m, data, BATCH, NULL) == SANCE_STATUS_OK;
    }
    double rss3 = rss_bytes();
    CHECK(ok && m, "%d steps: %s", WARM_STEPS + STEPS, sance_last_error());
    if (!bounded("training steps after the warm-up", rss2, rss3, STEPS, "step", batch / 4))
        printf("note: under LeakSanitizer with its default malloc_context_size, its own stack depot grows\n"
               "RSS by ~2 KB a step (through libtorch, which has no frame pointers, the fast unwinder keeps\n"
               "recording new, partly garbage stacks); scripts/test runs this with malloc_context_size=2.\n");
    sance_ebm_free(m);
    return check_summary();
}
