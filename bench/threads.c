/* Milliseconds per training step of one handle at a given thread setting, for
 * bench/threads (which runs it on an idle node, beside a busy core, and as MPI ranks).
 *   threads mlp|conv NUM_THREADS [ROUNDS]
 * mlp: the default config (a 2 -> 128 -> 128 -> 1 SiLU energy), batch 256 of the
 * toy "8gaussians"; conv: sance_config_init_image(1, 28, 28), batch 64 of random images.
 * NUM_THREADS is config.num_threads (0 = automatic); SANCE_NUM_THREADS=host with 0 gives
 * libtorch's own default (every core), what sance did before 0.4. Prints the median over
 * ROUNDS rounds (default 7) of 10 steps (4 for conv) each, after 5 warm-up steps. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: threads mlp|conv NUM_THREADS [ROUNDS]\n");
        return 2;
    }
    int conv = strcmp(argv[1], "conv") == 0;
    int rounds = argc > 3 ? atoi(argv[3]) : 7;
    if (rounds < 1 || rounds > 100) rounds = 7;
    SanceConfig cfg;
    size_t batch, dim;
    float *data;
    if (conv) {
        CHECK(sance_config_init_image(&cfg, SANCE_ABI_VERSION, 1, 28, 28));
        batch = 64;
        dim = 28 * 28;
        data = malloc(sizeof(float) * batch * dim * 8);
        unsigned long long r = 7;
        for (size_t i = 0; i < batch * dim * 8; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            data[i] = (float)(r >> 40) / 8388608.0f - 1.0f;
        }
    } else {
        CHECK(sance_config_init(&cfg, SANCE_ABI_VERSION));
        batch = 256;
        dim = 2;
        data = malloc(sizeof(float) * batch * dim * 8);
        CHECK(sance_toy_dataset("8gaussians", batch * 8, 1, data));
    }
    cfg.device = SANCE_DEVICE_CPU;
    cfg.num_threads = (uint32_t)atoi(argv[2]);
    SanceEbm *h = NULL;
    CHECK(sance_ebm_new(&cfg, &h));
    int per_round = conv ? 4 : 10;
    for (int t = 0; t < 5; t++) CHECK(sance_ebm_train_step(h, data + (size_t)(t % 8) * batch * dim, batch, NULL));
    double *ms = malloc(sizeof(double) * (size_t)rounds);
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (int t = 0; t < per_round; t++)
            CHECK(sance_ebm_train_step(h, data + (size_t)(t % 8) * batch * dim, batch, NULL));
        ms[r] = 1e3 * (now() - t0) / per_round;
    }
    qsort(ms, (size_t)rounds, sizeof *ms, cmp);
    printf("%.2f\n", ms[rounds / 2]);
    free(ms);
    free(data);
    sance_ebm_free(h);
    return 0;
}
