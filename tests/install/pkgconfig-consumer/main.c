#include <math.h>
#include <sance.h>
#include <stdio.h>

/* Trains a few steps and samples: the whole path through libtorch, as a user's program. */
int main(void) {
    SanceConfig c;
    if (sance_config_init(&c, SANCE_ABI_VERSION) != SANCE_STATUS_OK) {
        fprintf(stderr, "%s\n", sance_last_error());
        return 1;
    }
    c.device = SANCE_DEVICE_CPU;
    c.hidden_width = 16;
    SanceEbm *m = NULL;
    if (sance_ebm_new(&c, &m) != SANCE_STATUS_OK) {
        fprintf(stderr, "%s\n", sance_last_error());
        return 1;
    }
    float batch[2 * 64], e[64], x[2 * 8] = {0};
    SanceStepStats st = {0};
    sance_toy_dataset("rings", 64, 0, batch);
    for (int t = 0; t < 5; t++) sance_ebm_train_step(m, batch, 64, &st);
    int ok = sance_ebm_energy(m, batch, 64, e) == SANCE_STATUS_OK && st.step == 5;
    if (sance_ebm_sample(m, 8, NULL, x) != SANCE_STATUS_OK) {
        fprintf(stderr, "%s\n", sance_last_error());
        ok = 0;
    }
    for (int i = 0; i < 2 * 8; i++) ok = ok && isfinite(x[i]);
    printf("pkg-config consumer: %s, %llu steps, 8 samples, first (%.3f, %.3f)\n", sance_version(),
           (unsigned long long)st.step, x[0], x[1]);
    sance_ebm_free(m);
    return ok ? 0 : 1;
}
