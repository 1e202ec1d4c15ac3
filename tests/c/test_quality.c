/* What self-adaptation buys, through the C API, at a short budget: on the 16-D mixture of 8
 * Gaussians ("gaussians16d"), self-adapting NCE (the defaults with data_dim 16) must reach a
 * squared MMD to held-out data at least 5 times lower than classic NCE against a Gaussian
 * fitted to the data, with the same steps, batch and network, both sampled with the
 * self-adapting model's tuned sampler. docs/results.md has
 * the full comparison (`sance-hd mixture`). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sance.h"

enum { DIM = 16, BATCH = 256, STEPS = 1000, N = 500, HELD = 1000, SAMPLE_STEPS = 500 };

static double sq_dist(const float *a, const float *b) {
    double s = 0;
    for (int j = 0; j < DIM; j++) s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median pairwise distance among the first 300 held-out points. */
static double median_distance(const float *ref) {
    enum { M = 300 };
    double *d = malloc(sizeof(double) * M * (M - 1) / 2);
    size_t k = 0;
    for (int i = 0; i < M; i++)
        for (int j = i + 1; j < M; j++) d[k++] = sqrt(sq_dist(ref + i * DIM, ref + j * DIM));
    qsort(d, k, sizeof(double), cmp_double);
    double m = d[k / 2];
    free(d);
    return m;
}

/* Unbiased MMD² under the sum of RBF kernels at 0.5, 1, 2, 4 × the median distance (the
 * metric of sance-hd). */
static double mmd2(const float *a, int n, const float *b, int m, double median) {
    static const double mult[4] = {0.5, 1, 2, 4};
    double total = 0;
    for (int s = 0; s < 4; s++) {
        double h2 = 2 * (mult[s] * median) * (mult[s] * median), aa = 0, bb = 0, ab = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (i != j) aa += exp(-sq_dist(a + i * DIM, a + j * DIM) / h2);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
                if (i != j) bb += exp(-sq_dist(b + i * DIM, b + j * DIM) / h2);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) ab += exp(-sq_dist(a + i * DIM, b + j * DIM) / h2);
        total += aa / ((double)n * (n - 1)) + bb / ((double)m * (m - 1)) - 2 * ab / ((double)n * m);
    }
    return total;
}

/* Trains one model for STEPS steps and returns the MMD² of N samples to the held-out set,
 * drawn with `sampler` (SAMPLE_STEPS steps of it). NULL: the model's own sampler after training
 * (the self-adapting model's tuned step), written back to `tuned` so that the other model is
 * sampled the same way: the comparison is of the models, not of their samplers. */
static double train_and_score(SanceNoise noise, const float *held, double median, SanceLangevin *tuned, int own) {
    SanceConfig cfg;
    SanceEbm *ebm = NULL;
    if (sance_config_init(&cfg, SANCE_ABI_VERSION) != SANCE_STATUS_OK) return NAN;
    cfg.data_dim = DIM;
    cfg.noise = noise;
    cfg.device = test_device();
    if (sance_ebm_new(&cfg, &ebm) != SANCE_STATUS_OK) {
        printf("sance_ebm_new: %s\n", sance_last_error());
        return NAN;
    }
    float *batch = malloc(sizeof(float) * BATCH * DIM), *x = malloc(sizeof(float) * N * DIM);
    double score = NAN;
    int ok = 1;
    if (noise == SANCE_NOISE_GAUSSIAN) {
        /* Fit the Gaussian to as much data as the self-adapting run sees in its first steps. */
        float *fit = malloc(sizeof(float) * 4096 * DIM);
        ok = sance_toy_dataset("gaussians16d", 4096, 77, fit) == SANCE_STATUS_OK &&
             sance_ebm_fit_noise(ebm, fit, 4096) == SANCE_STATUS_OK;
        free(fit);
    }
    SanceStepStats st;
    for (int t = 0; ok && t < STEPS; t++) {
        ok = sance_toy_dataset("gaussians16d", BATCH, 1000 + t, batch) == SANCE_STATUS_OK &&
             sance_ebm_train_step(ebm, batch, BATCH, &st) == SANCE_STATUS_OK;
    }
    SanceLangevin l = *tuned;
    if (own) {
        SanceConfig now;
        ok = ok && sance_ebm_config(ebm, &now) == SANCE_STATUS_OK;
        l = now.langevin;
        *tuned = l;
    }
    l.steps = SAMPLE_STEPS;
    if (ok && sance_ebm_sample(ebm, N, &l, x) == SANCE_STATUS_OK) score = mmd2(x, N, held, HELD, median);
    if (!ok) printf("training failed: %s\n", sance_last_error());
    free(batch);
    free(x);
    sance_ebm_free(ebm);
    return score;
}

int main(void) {
    CHECK(sance_toy_dataset_dim("gaussians16d") == DIM, "gaussians16d has %zu floats per sample",
          sance_toy_dataset_dim("gaussians16d"));
    CHECK(sance_toy_dataset_dim("nope") == 0 && strstr(sance_last_error(), "nope") != NULL,
          "an unknown name gives 0 and says why: %s", sance_last_error());
    float *held = malloc(sizeof(float) * HELD * DIM);
    CHECK(sance_toy_dataset("gaussians16d", HELD, 424242, held) == SANCE_STATUS_OK, "%s", sance_last_error());
    double median = median_distance(held);
    SanceLangevin sampler;
    memset(&sampler, 0, sizeof sampler);
    double sa = train_and_score(SANCE_NOISE_SNAPSHOT, held, median, &sampler, 1);
    double classic = train_and_score(SANCE_NOISE_GAUSSIAN, held, median, &sampler, 0);
    printf("16-D mixture, %d steps of batch %d: MMD² self-adapting %.5f, classic NCE %.5f (ratio %.1f)\n", STEPS,
           BATCH, sa, classic, classic / sa);
    CHECK(isfinite(sa) && isfinite(classic), "both runs trained and sampled");
    CHECK(classic >= 5 * sa, "self-adapting NCE beats classic NCE by at least 5x in MMD² (%.5f vs %.5f)", sa,
          classic);
    free(held);
    return check_summary();
}
