/* libsance_eval against libsance on the same trained energy, from C: what a simulation's
 * force call costs. Trains a 3 -> 128 -> 128 -> 1 SiLU MLP (sance's default network for 3-D
 * data) for a few steps, saves it, loads it into both libraries and times
 *   - one point per call (the inner loop of an integrator), and
 *   - 1,000 points per call,
 * in alternating rounds (A, B, A, B, ...), each round timing a block of calls after an
 * untimed quarter-block (see the loop); prints the
 * median per call of each and the ratio libsance / sance_eval. Also prints the largest
 * disagreement relative to the output's scale. Built and run by `bench/speed --rows eval`.
 *   eval_speed [ROUNDS] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <sance.h>
#include <sance_eval.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        SanceStatus s_ = (call);                                                                   \
        if (s_ != SANCE_STATUS_OK) {                                                               \
            fprintf(stderr, "%s:%d: %s: %s | %s\n", __FILE__, __LINE__, #call, sance_last_error(), \
                    sance_eval_last_error());                                                      \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#include "bench.h" /* after CHECK: its own prints both libraries' errors */

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static unsigned long long rng = 88172645463325252ULL;
static float uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / 16777216.0f;
}

/* Seconds per call of `calls` calls on `n` points, starting at a rotating offset in `x`. */
static double time_eval(const SanceEval *m, const float *x, size_t n, size_t pool, int calls, float *e, float *g) {
    double t0 = now();
    for (int i = 0; i < calls; i++) {
        size_t off = ((size_t)i * n) % (pool - n + 1);
        CHECK(sance_eval_energy_grad(m, x + 3 * off, n, e, g));
    }
    return (now() - t0) / calls;
}

static double time_sance(SanceEbm *h, const float *x, size_t n, size_t pool, int calls, float *e, float *g) {
    double t0 = now();
    for (int i = 0; i < calls; i++) {
        size_t off = ((size_t)i * n) % (pool - n + 1);
        CHECK(sance_ebm_energy_grad(h, x + 3 * off, n, e, g));
    }
    return (now() - t0) / calls;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    if (rounds < 1 || rounds > 1000) rounds = 15;
    SanceConfig cfg;
    CHECK(sance_config_init(&cfg, SANCE_ABI_VERSION));
    cfg.data_dim = 3;
    cfg.hidden_width = 128;
    cfg.hidden_layers = 2;
    cfg.activation = SANCE_ACTIVATION_SILU;
    cfg.device = SANCE_DEVICE_CPU;
    SanceEbm *h = NULL;
    CHECK(sance_ebm_new(&cfg, &h));
    enum { POOL = 4096 };
    static float x[3 * POOL], e1[POOL], g1[3 * POOL], e2[POOL], g2[3 * POOL];
    for (int i = 0; i < 3 * POOL; i++) x[i] = 4.0f * uniform() - 2.0f;
    for (int t = 0; t < 20; t++) CHECK(sance_ebm_train_step(h, x + 3 * 64 * t, 64, NULL));
    char path[] = "/tmp/sance-eval-speed-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 1;
    CHECK(sance_ebm_save(h, path));
    SanceEval *m = NULL;
    CHECK(sance_eval_load(path, &m));
    remove(path);

    /* Agreement on the whole pool first. */
    CHECK(sance_ebm_energy_grad(h, x, POOL, e1, g1));
    CHECK(sance_eval_energy_grad(m, x, POOL, e2, g2));
    double se = 0, sg = 0, de = 0, dg = 0;
    for (int i = 0; i < POOL; i++) {
        se = fmax(se, fabs(e1[i]));
        de = fmax(de, fabs(e1[i] - e2[i]));
    }
    for (int i = 0; i < 3 * POOL; i++) {
        sg = fmax(sg, fabs(g1[i]));
        dg = fmax(dg, fabs(g1[i] - g2[i]));
    }
    printf("sance_eval vs libsance, 3 -> 128 -> 128 -> 1 SiLU, %s\n", sance_version());
    printf("agreement on %d points: energy %.1e, gradient %.1e (max |difference| / max |value|)\n", POOL,
           de / se, dg / sg);

    static const size_t sizes[] = {1, 1000};
    printf("%-14s %16s %16s %18s\n", "points/call", "sance_eval", "libsance", "libsance/eval");
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        int calls = n == 1 ? 20000 : 40;
        double *ta = malloc(sizeof(double) * (size_t)rounds), *tb = malloc(sizeof(double) * (size_t)rounds);
        time_eval(m, x, n, POOL, calls / 4, e2, g2); /* warm-up */
        time_sance(h, x, n, POOL, calls / 4, e1, g1);
        /* Each round first runs a quarter of its calls untimed: right after the other
         * library's round the first several milliseconds of calls ran slower (one point took
         * 2.26 us per call timed from the switch, 1.83 us after the warm-up; libsance's time is
         * the same either way), a transient of the switch that a simulation calling one
         * library in its loop never sees. */
        for (int r = 0; r < rounds; r++) {
            time_eval(m, x, n, POOL, calls / 4, e2, g2);
            ta[r] = time_eval(m, x, n, POOL, calls, e2, g2);
            time_sance(h, x, n, POOL, calls / 4, e1, g1);
            tb[r] = time_sance(h, x, n, POOL, calls, e1, g1);
        }
        double a = median(ta, rounds), b = median(tb, rounds);
        printf("%-14zu %13.2f us %13.2f us %17.1fx\n", n, 1e6 * a, 1e6 * b, b / a);
        free(ta);
        free(tb);
    }
    printf("(medians of %d alternating rounds; per call, energy and gradient)\n", rounds);
    sance_eval_free(m);
    sance_ebm_free(h);
    return 0;
}
