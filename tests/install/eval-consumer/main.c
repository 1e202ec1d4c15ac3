/* Deploys a trained force without libtorch: loads the checkpoint named on the command line with
 * an installed libsance_eval and prints E and -grad E of a few points. Built through CMake's
 * sance::eval and through pkg-config's sance_eval by tests/install/run.sh. */
#include <sance_eval.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    SanceEval *m = NULL;
    if (sance_eval_load(argv[1], &m) != SANCE_STATUS_OK) {
        fprintf(stderr, "%s\n", sance_eval_last_error());
        return 1;
    }
    uint32_t d = sance_eval_dim(m);
    float x[4 * 16] = {0}, e[4], g[4 * 16];
    if (d == 0 || d > 16) return 1;
    for (uint32_t i = 0; i < 4 * d; i++) x[i] = 0.25f * (float)i - 1.0f;
    if (sance_eval_energy_grad(m, x, 4, e, g) != SANCE_STATUS_OK) {
        fprintf(stderr, "%s\n", sance_eval_last_error());
        return 1;
    }
    for (int i = 0; i < 4; i++) printf("E = %.5f, force[0] = %.5f\n", e[i], -g[i * d]);
    sance_eval_free(m);
    return 0;
}
