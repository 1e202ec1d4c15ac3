/* Time per call of sance_ebm_draw's samplers against n, for docs/speed.md ("Drawing from the
 * model"): a default model trained 1,000 steps on the toy "8gaussians" (it has a population)
 * and a classic-NCE one (SANCE_NOISE_GAUSSIAN: no population, so AUTO anneals once and then
 * draws from the kept particles). For each n, ROUNDS alternating rounds (default 5) of: AUTO
 * (sance_ebm_sample(..., NULL, ...)), FRESH with 200 MALA steps (the reference: "200 fresh
 * steps"), POPULATION, ANNEALED, and on the classic model AUTO's first call (on a clone that has
 * not drawn: it anneals) and its later calls (from the pool). Prints the median milliseconds per call and each one's ratio to the
 * reference of the same run. Built and run by bench/draws. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

enum { AUTO, FRESH200, POPULATION, ANNEALED, CLASSIC_FIRST, CLASSIC_AUTO, KINDS };
static const char *NAMES[KINDS] = {"AUTO (NULL)", "FRESH, 200 steps", "POPULATION", "ANNEALED",
                                   "classic NCE: first AUTO call", "classic NCE: later AUTO calls"};

static SanceEbm *trained(uint32_t noise) {
    SanceConfig c;
    CHECK(sance_config_init(&c, SANCE_ABI_VERSION));
    c.noise = noise;
    SanceEbm *m = NULL;
    CHECK(sance_ebm_new(&c, &m));
    static float x[2 * 256];
    if (noise == SANCE_NOISE_GAUSSIAN) {
        static float fit[2 * 4096];
        CHECK(sance_toy_dataset("8gaussians", 4096, 99, fit));
        CHECK(sance_ebm_fit_noise(m, fit, 4096));
    }
    for (uint64_t t = 0; t < 1000; t++) {
        CHECK(sance_toy_dataset("8gaussians", 256, t, x));
        CHECK(sance_ebm_train_step(m, x, 256, NULL));
    }
    return m;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1) rounds = 1;
    SanceEbm *m = trained(SANCE_NOISE_SNAPSHOT), *classic = trained(SANCE_NOISE_GAUSSIAN);
    const size_t ns[] = {1, 8, 64, 1000, 8000};
    float *out = malloc(sizeof(float) * 2 * 8000);
    double *t = malloc(sizeof(double) * (size_t)rounds * KINDS);
    if (!out || !t) return 1;
    /* The classic model's pool, made once by a first call (CLASSIC_FIRST times such calls on
     * clones that have not drawn). */
    SanceEbm *undrawn = NULL;
    CHECK(sance_ebm_clone(classic, &undrawn));
    CHECK(sance_ebm_sample(classic, 1, NULL, out));
    printf("milliseconds per call (median of %d alternating rounds); in brackets, the ratio to "
           "FRESH with 200 steps\n| n |", rounds);
    for (int k = 0; k < KINDS; k++) printf(" %s |", NAMES[k]);
    printf("\n|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        size_t n = ns[i];
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < KINDS; k++) {
                SanceSampling s;
                SanceEbm *h = k == CLASSIC_AUTO ? classic : k == CLASSIC_FIRST ? NULL : m;
                if (k == CLASSIC_FIRST) CHECK(sance_ebm_clone(undrawn, &h));
                CHECK(sance_sampling_init(&s, h));
                if (k == FRESH200) {
                    s.sampler = SANCE_SAMPLER_FRESH;
                    s.moves.steps = 200;
                }
                if (k == POPULATION) s.sampler = SANCE_SAMPLER_POPULATION;
                if (k == ANNEALED) s.sampler = SANCE_SAMPLER_ANNEALED;
                double t0 = now();
                if (k == AUTO)
                    CHECK(sance_ebm_sample(m, n, NULL, out));
                else
                    CHECK(sance_ebm_draw(h, n, &s, out, NULL));
                t[k * rounds + r] = 1e3 * (now() - t0);
                if (k == CLASSIC_FIRST) sance_ebm_free(h);
            }
        }
        double med[KINDS];
        for (int k = 0; k < KINDS; k++) {
            qsort(t + k * rounds, (size_t)rounds, sizeof(double), cmp);
            med[k] = t[k * rounds + rounds / 2];
        }
        printf("| %zu |", n);
        for (int k = 0; k < KINDS; k++)
            printf(k == FRESH200 ? " %.1f |" : " %.1f (%.2f×) |", med[k], med[k] / med[FRESH200]);
        printf("\n");
        fflush(stdout);
    }
    sance_ebm_free(m);
    sance_ebm_free(classic);
    sance_ebm_free(undrawn);
    free(out);
    free(t);
    return 0;
}
