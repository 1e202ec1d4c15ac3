/* End-to-end test of libsance through its C header: trains on 8gaussians with the default
 * config and checks the learned density against the truth, the input gradient against finite
 * differences, determinism, and every status on bad input. Prints "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include "sance.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ---- an independent 8gaussians (FFJORD: radius 2*sqrt(2), std 0.5/sqrt(2)) ---- */
static const double PI = 3.14159265358979323846;
static const double R8 = 2.8284271247461903, S8 = 0.35355339059327373;

static uint64_t rng_state = 0x1234567887654321ULL;
static double unif(void) { /* xorshift64*, in (0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((rng_state * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0) + 1e-17;
}
static double gauss(void) { return sqrt(-2.0 * log(unif())) * cos(2.0 * PI * unif()); }

static void true_samples(float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int k = (int)(unif() * 8.0) % 8;
        out[2 * i] = (float)(R8 * cos(k * PI / 4) + S8 * gauss());
        out[2 * i + 1] = (float)(R8 * sin(k * PI / 4) + S8 * gauss());
    }
}

static double true_log_density(double x, double y) {
    double t[8], m = -INFINITY, s = 0;
    for (int k = 0; k < 8; k++) {
        double dx = x - R8 * cos(k * PI / 4), dy = y - R8 * sin(k * PI / 4);
        t[k] = -(dx * dx + dy * dy) / (2 * S8 * S8);
        if (t[k] > m) m = t[k];
    }
    for (int k = 0; k < 8; k++) s += exp(t[k] - m);
    return m + log(s) - log(8.0) - log(2 * PI * S8 * S8);
}

/* How well a model fits 8gaussians, with its normaliser Z = integral of exp(-E) computed by the
 * midpoint rule on a WIDE_RES x WIDE_RES grid over [-WIDE, WIDE]^2, and the share of Z inside
 * [-BOX, BOX]^2.
 *
 * Why a wide grid: the data lie within radius 4 (2.83 + 3 std) and fresh chains start in
 * [-4, 4]^2, so nothing in training pushes the energy up far from them; a normaliser taken over
 * [-6, 6]^2 alone misses any mass the model puts outside and reports an optimistic KL and
 * log-likelihood. [-20, 20]^2 is 11 times the box's area. The cell, 40/800 = 0.05, resolves the
 * modes (std 0.35 = 7 cells; the former box-only grid had 0.04), and +-6 fall on cell edges
 * (-20 + 280*0.05, -20 + 520*0.05), so the 240 x 240 cells inside the box tile it exactly and
 * Z_box <= Z by construction. 640,000 energies, evaluated 40 grid rows (32,000 points) per call
 * to keep libtorch's activations small: about a second on two CPU cores. */
#define WIDE 20.0
#define WIDE_RES 800
#define BOX_LO 280 /* first and one-past-last cell index inside [-6, 6] */
#define BOX_HI 520
#define ROWS_PER_CALL 40

struct fit {
    double kl;      /* KL(data || model), model normalised on the wide grid */
    double ll;      /* mean log-likelihood of fresh data, same normaliser */
    double mass;    /* Z_box / Z: the model's mass inside [-6, 6]^2 */
    double outside; /* 1 - mass */
    double kl_box;  /* the KL a box-only normaliser reports: kl + log(mass) */
};

static int fit_8gaussians(SanceEbm *m, struct fit *f) {
    const double h = 2 * WIDE / WIDE_RES;
    const size_t chunk = (size_t)ROWS_PER_CALL * WIDE_RES;
    float *g = malloc(sizeof(float) * 2 * chunk), *e = malloc(sizeof(float) * WIDE_RES * WIDE_RES);
    int ok = g && e;
    for (int i0 = 0; ok && i0 < WIDE_RES; i0 += ROWS_PER_CALL) {
        for (int i = 0; i < ROWS_PER_CALL; i++)
            for (int j = 0; j < WIDE_RES; j++) {
                g[2 * (i * WIDE_RES + j)] = (float)(-WIDE + (i0 + i + 0.5) * h);
                g[2 * (i * WIDE_RES + j) + 1] = (float)(-WIDE + (j + 0.5) * h);
            }
        ok = sance_ebm_energy(m, g, chunk, e + (size_t)i0 * WIDE_RES) == SANCE_STATUS_OK;
    }
    double e_min = INFINITY, s_box = 0, s_out = 0;
    for (int k = 0; ok && k < WIDE_RES * WIDE_RES; k++)
        if (e[k] < e_min) e_min = e[k];
    for (int i = 0; ok && i < WIDE_RES; i++)
        for (int j = 0; j < WIDE_RES; j++) {
            double w = exp(-(e[i * WIDE_RES + j] - e_min));
            if (i >= BOX_LO && i < BOX_HI && j >= BOX_LO && j < BOX_HI) s_box += w;
            else s_out += w;
        }
    double log_z = -e_min + log(s_box + s_out) + log(h * h);
    const size_t n = 5000;
    float *x = malloc(sizeof(float) * 2 * n), *ex = malloc(sizeof(float) * n);
    ok = ok && x && ex;
    if (ok) {
        true_samples(x, n);
        ok = sance_ebm_energy(m, x, n, ex) == SANCE_STATUS_OK;
    }
    if (ok) {
        double log_p = 0, log_q = 0;
        for (size_t i = 0; i < n; i++) {
            log_p += true_log_density(x[2 * i], x[2 * i + 1]) / n;
            log_q += (-ex[i] - log_z) / n;
        }
        f->kl = log_p - log_q;
        f->ll = log_q;
        f->mass = s_box / (s_box + s_out);
        f->outside = s_out / (s_box + s_out); /* summed apart, so a tiny share keeps its digits */
        f->kl_box = f->kl + log(f->mass);
        ok = isfinite(f->kl) && isfinite(f->mass);
    }
    free(g); free(e); free(x); free(ex);
    return ok;
}

/* Unbiased squared MMD, RBF kernel with bandwidth 0.5. */
static double mmd2(const float *a, const float *b, size_t n) {
    const double bw2 = 2 * 0.5 * 0.5;
    double saa = 0, sbb = 0, sab = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double dx, dy;
            if (i != j) {
                dx = a[2 * i] - a[2 * j]; dy = a[2 * i + 1] - a[2 * j + 1];
                saa += exp(-(dx * dx + dy * dy) / bw2);
                dx = b[2 * i] - b[2 * j]; dy = b[2 * i + 1] - b[2 * j + 1];
                sbb += exp(-(dx * dx + dy * dy) / bw2);
            }
            dx = a[2 * i] - b[2 * j]; dy = a[2 * i + 1] - b[2 * j + 1];
            sab += exp(-(dx * dx + dy * dy) / bw2);
        }
    return saa / (n * (n - 1.0)) + sbb / (n * (n - 1.0)) - 2 * sab / ((double)n * n);
}

static double model_mmd2(SanceEbm *m, const float *truth, size_t n) {
    SanceConfig cfg;
    sance_ebm_config(m, &cfg);
    SanceLangevin long_run = cfg.langevin;
    long_run.steps = 500;
    float *s = malloc(sizeof(float) * 2 * n);
    double d = INFINITY;
    if (sance_ebm_sample(m, n, &long_run, s) == SANCE_STATUS_OK) d = mmd2(s, truth, n);
    free(s);
    return d;
}

/* ---- probe: energies on fixed points, and how two sets of results are compared ---- */
#define NPROBE 64
static float probe_x[2 * NPROBE];
static void probe(SanceEbm *m, float *out) {
    SanceStatus st = sance_ebm_energy(m, probe_x, NPROBE, out);
    CHECK(st == SANCE_STATUS_OK, "probe: %s", sance_last_error());
    if (st != SANCE_STATUS_OK) memset(out, 0xFF, sizeof(float) * NPROBE); /* NaNs: match nothing */
}

/* The device a model runs on, as sance_ebm_device reports it: -1 the CPU, k CUDA device k
 * (SANCE_DEVICE_AUTO is resolved there); sance_ebm_config's device must say the same. */
static int32_t device_of(SanceEbm *m) {
    SanceConfig c;
    int32_t d = INT32_MIN;
    SanceStatus st = sance_ebm_device(m, &d);
    CHECK(st == SANCE_STATUS_OK && d >= SANCE_DEVICE_CPU, "device: %s, device %d", sance_last_error(), (int)d);
    CHECK(sance_ebm_config(m, &c) == SANCE_STATUS_OK && c.device == d, "config's device %d equals sance_ebm_device's %d",
          (int)c.device, (int)d);
    return st == SANCE_STATUS_OK ? d : INT32_MIN;
}

/* Bit for bit is a same-device promise: the same kernels on the same inputs. Across devices
 * (CPU vs CUDA) kernels round differently, so results agree within a relative 1e-4 (relative
 * to max(1, |a|, |b|), energies being O(1)). *worst gets the largest such difference. */
#define CROSS_DEVICE_RTOL 1e-4
static int results_match(const float *a, const float *b, size_t n, int bitwise, double *worst) {
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fmax(fabs(a[i]), fabs(b[i])));
        if (!(d <= *worst)) *worst = d; /* NaN-safe: a NaN makes *worst NaN */
    }
    if (isnan(*worst)) return 0; /* a failed call's NaN fill never matches */
    if (bitwise) return memcmp(a, b, sizeof(float) * n) == 0;
    return *worst <= CROSS_DEVICE_RTOL;
}

/* The model still gives the energies `before` it gave earlier: same handle, hence same
 * device, so bit for bit. */
static int same_model(SanceEbm *m, const float *before) {
    float now[NPROBE];
    double worst;
    probe(m, now);
    return results_match(now, before, NPROBE, 1, &worst);
}

static int msg_has(const char *needle) { return strstr(sance_last_error(), needle) != NULL; }

static void test_versions(void) {
    CHECK(strncmp(sance_version(), "sance ", 6) == 0 && strstr(sance_version(), "libtorch 2.11.0"), "%s", sance_version());
    CHECK(sance_abi_version() == SANCE_ABI_VERSION, "abi %u", sance_abi_version());
    CHECK(strcmp(sance_status_name(SANCE_STATUS_NON_FINITE), "SANCE_STATUS_NON_FINITE") == 0, "name");
    CHECK(strcmp(sance_status_name(12345), "SANCE_STATUS_UNKNOWN") == 0, "unknown status name");
    CHECK(sance_cuda_device_count() >= 0, "device count");
    CHECK(SANCE_DEVICE_AUTO == -2, "auto is -2");
    CHECK(SANCE_STATUS_PANIC == 8 && SANCE_STATUS_OK == 0, "status values are fixed");
}

/* The defaults: scaled data (AUTO) and MALA tuned towards 60 % acceptance; a training step
 * reports the step its noise chains used and no warnings on data the defaults suit. */
static void test_defaults_and_step_stats(void) {
    SanceConfig cfg;
    CHECK(sance_config_init(&cfg, SANCE_ABI_VERSION) == SANCE_STATUS_OK, "config_init: %s", sance_last_error());
    CHECK(cfg.scaling == SANCE_SCALING_AUTO, "default scaling %d", (int)cfg.scaling);
    CHECK(cfg.langevin.metropolis == 1, "default sampler is MALA: metropolis %u", cfg.langevin.metropolis);
    CHECK(cfg.langevin.target_acceptance == 0.6f, "default target acceptance %g", cfg.langevin.target_acceptance);
    CHECK(SANCE_WARNING_COARSE_STEP == 1 && SANCE_WARNING_FROZEN_STEP == 2 && SANCE_WARNING_OUT_OF_REACH == 4,
          "warning bits are fixed");
    cfg.device = test_device();
    SanceEbm *m = NULL;
    if (sance_ebm_new(&cfg, &m) != SANCE_STATUS_OK) { CHECK(0, "new: %s", sance_last_error()); return; }
    SanceConfig back;
    CHECK(sance_ebm_config(m, &back) == SANCE_STATUS_OK && back.scaling == SANCE_SCALING_AUTO &&
              back.langevin.target_acceptance == 0.6f,
          "the model's config keeps scaling and target: %s", sance_last_error());
    const size_t batch = 256;
    float data[2 * 256];
    float tuned = cfg.langevin.step_size; /* the step the next training step must use */
    int ok = 1;
    for (int t = 0; t < 5 && ok; t++) {
        SanceStepStats st;
        memset(&st, 0xFF, sizeof st); /* every field written, warnings included */
        sance_toy_dataset("8gaussians", batch, 500 + t, data);
        ok = sance_ebm_train_step(m, data, batch, &st) == SANCE_STATUS_OK;
        CHECK(ok, "step %d: %s", t + 1, sance_last_error());
        if (!ok) break;
        CHECK(isfinite(st.step_size) && st.step_size > 0, "step %d: step_size %g", t + 1, st.step_size);
        CHECK(st.step_size == tuned, "step %d used step %g, the config said %g", t + 1, st.step_size, tuned);
        CHECK(st.warnings == 0, "step %d: warnings 0x%x on 8gaussians", t + 1, st.warnings);
        CHECK(st.acceptance_rate > 0 && st.acceptance_rate <= 1, "step %d: MALA acceptance %g", t + 1, st.acceptance_rate);
        /* The tuned step is the config's, its noise following at temperature 1. */
        ok = sance_ebm_config(m, &back) == SANCE_STATUS_OK;
        CHECK(ok, "config: %s", sance_last_error());
        tuned = back.langevin.step_size;
        double temp = (double)back.langevin.noise_std * back.langevin.noise_std / (2.0 * back.langevin.step_size);
        CHECK(isfinite(tuned) && tuned > 0 && fabs(temp - 1.0) < 1e-3, "after step %d: step %g, temperature %g", t + 1,
              tuned, temp);
    }
    sance_ebm_free(m);

    /* An unknown scaling is refused, and so is a target without MALA. */
    SanceConfig bad = cfg;
    SanceEbm *h = (SanceEbm *)&check_passed; /* must stay untouched */
    bad.scaling = (SanceScaling)7;
    SanceStatus s = sance_ebm_new(&bad, &h);
    CHECK(s == SANCE_STATUS_INVALID_ARGUMENT && h == (SanceEbm *)&check_passed, "scaling = 7: %s", sance_status_name(s));
    CHECK(msg_has("config.scaling"), "message names the field: %s", sance_last_error());
    bad = cfg;
    bad.langevin.metropolis = 0;
    s = sance_ebm_new(&bad, &h);
    CHECK(s == SANCE_STATUS_INVALID_ARGUMENT && h == (SanceEbm *)&check_passed, "target without MALA: %s",
          sance_status_name(s));
    CHECK(msg_has("target_acceptance"), "message names the field: %s", sance_last_error());
    bad.langevin.target_acceptance = 0; /* unadjusted Langevin with a fixed step */
    bad.scaling = SANCE_SCALING_NONE;
    s = sance_ebm_new(&bad, &h);
    CHECK(s == SANCE_STATUS_OK && h != (SanceEbm *)&check_passed, "ULA, unscaled: %s", sance_last_error());
    if (s == SANCE_STATUS_OK) sance_ebm_free(h);
}

static void test_toy_datasets(void) {
    const char *names[] = {"8gaussians", "rings", "checkerboard", "2spirals", "pinwheel"};
    float a[2000], b[2000];
    for (int i = 0; i < 5; i++) {
        CHECK(sance_toy_dataset(names[i], 1000, 3, a) == SANCE_STATUS_OK, "%s: %s", names[i], sance_last_error());
        sance_toy_dataset(names[i], 1000, 3, b);
        CHECK(memcmp(a, b, sizeof a) == 0, "%s is deterministic", names[i]);
    }
    /* 8gaussians from the library agrees with the independent density: E log p ~ -2.833. */
    static float big[20000];
    sance_toy_dataset("8gaussians", 10000, 9, big);
    double ll = 0;
    for (int i = 0; i < 10000; i++) ll += true_log_density(big[2 * i], big[2 * i + 1]) / 10000;
    CHECK(fabs(ll + 2.833) < 0.05, "E log p of library 8gaussians = %f", ll);
}

static void test_training_and_bad_input(void) {
    SanceConfig cfg;
    CHECK(sance_config_init(&cfg, SANCE_ABI_VERSION) == SANCE_STATUS_OK, "config_init: %s", sance_last_error());
    CHECK(cfg.abi_version == SANCE_ABI_VERSION, "config_init sets abi_version");
    SanceEbm *m = NULL;
    CHECK(sance_ebm_new(&cfg, &m) == SANCE_STATUS_OK && m, "new: %s", sance_last_error());
    if (!m) return;
    const int32_t dev = device_of(m);
    if (dev == SANCE_DEVICE_CPU) printf("default config: model on the CPU\n");
    else printf("default config: model on CUDA device %d\n", (int)dev);
    CHECK(sance_ebm_sample_size(m) == 2, "sample size");

    const size_t n_mmd = 2000;
    float *truth = malloc(sizeof(float) * 2 * n_mmd);
    true_samples(truth, n_mmd);
    double mmd_untrained = model_mmd2(m, truth, n_mmd);

    const size_t batch = 256;
    float *data = malloc(sizeof(float) * 2 * batch);
    SanceStepStats st = {0};
    int refreshes = 0, ok = 1;
    for (int t = 0; t < 4000 && ok; t++) {
        sance_toy_dataset("8gaussians", batch, 1000 + t, data);
        ok = sance_ebm_train_step(m, data, batch, &st) == SANCE_STATUS_OK;
        refreshes += st.refreshed;
        if (t % 1000 == 999)
            printf("step %llu loss %.4f acc %.3f E(data) %.3f E(noise) %.3f c %.3f |dE/dx| %.3f\n",
                   (unsigned long long)st.step, st.loss, st.accuracy, st.data_energy, st.noise_energy, st.log_z_ratio,
                   st.langevin_grad_norm);
    }
    CHECK(ok, "4000 training steps: %s", sance_last_error());
    CHECK(st.step == 4000, "step counter %llu", (unsigned long long)st.step);
    CHECK((uint64_t)refreshes == st.refresh_count && st.refresh_count == (4000 + cfg.noise_update_interval - 1) / cfg.noise_update_interval,
          "refreshes %d / %llu", refreshes, (unsigned long long)st.refresh_count);

    struct fit fit = {INFINITY, -INFINITY, 0, 1, INFINITY};
    CHECK(fit_8gaussians(m, &fit), "evaluating the fit: %s", sance_last_error());
    printf("KL(data || model) = %.4f nats, test log-likelihood %.4f nats (normalised on [-20,20]^2); "
           "model mass inside [-6,6]^2 %.4f (outside %.1e; a box-only normaliser would say KL %.4f)\n",
           fit.kl, fit.ll, fit.mass, fit.outside, fit.kl_box);
    CHECK(fit.kl <= 0.35, "KL %.4f > 0.35", fit.kl);
    CHECK(fit.mass >= 0.95, "%.1f%% of the model's mass lies outside [-6,6]^2", 100 * (1 - fit.mass));
    double mmd_trained = model_mmd2(m, truth, n_mmd);
    printf("MMD^2 untrained %.5f trained %.5f (ratio %.4f)\n", mmd_untrained, mmd_trained, mmd_trained / mmd_untrained);
    CHECK(mmd_trained <= 0.1 * mmd_untrained, "MMD^2 %.5f vs untrained %.5f", mmd_trained, mmd_untrained);

    /* energy_grad against central finite differences of sance_ebm_energy. */
    {
        enum { N = 32 };
        float x[2 * N], e[N], g[2 * N], xp[2 * N], xm[2 * N], ep[N], em[N];
        true_samples(x, N);
        CHECK(sance_ebm_energy_grad(m, x, N, e, g) == SANCE_STATUS_OK, "energy_grad: %s", sance_last_error());
        double worst = 0;
        const float h = 1e-2f;
        for (int d = 0; d < 2; d++) {
            memcpy(xp, x, sizeof x);
            memcpy(xm, x, sizeof x);
            for (int i = 0; i < N; i++) { xp[2 * i + d] += h; xm[2 * i + d] -= h; }
            sance_ebm_energy(m, xp, N, ep);
            sance_ebm_energy(m, xm, N, em);
            for (int i = 0; i < N; i++) {
                double fd = ((double)ep[i] - em[i]) / ((double)xp[2 * i + d] - xm[2 * i + d]);
                double err = fabs(fd - g[2 * i + d]) / (1.0 + fabs(g[2 * i + d]));
                if (err > worst) worst = err;
            }
        }
        CHECK(worst < 2e-2, "gradient vs finite differences: worst relative error %g", worst);
        /* Same handle, same device: bit for bit. */
        float e2[N];
        CHECK(sance_ebm_energy(m, x, N, e2) == SANCE_STATUS_OK, "energy: %s", sance_last_error());
        CHECK(memcmp(e, e2, sizeof e) == 0, "energy_grad's energies equal sance_ebm_energy's");
        float g2[2 * N];
        CHECK(sance_ebm_energy_grad(m, x, N, NULL, g2) == SANCE_STATUS_OK && memcmp(g, g2, sizeof g) == 0,
              "energy may be NULL");
    }

    /* ---- bad input: status, message, out-params untouched, model unchanged ---- */
    for (int i = 0; i < NPROBE; i++) {
        probe_x[2 * i] = (float)(-5 + 10.0 * i / NPROBE);
        probe_x[2 * i + 1] = (float)(3 * sin(i));
    }
    float before[NPROBE];
    probe(m, before);
    float sentinel[8] = {42, 42, 42, 42, 42, 42, 42, 42}, out[8];
    memcpy(out, sentinel, sizeof out);
    SanceConfig got;

#define BAD(call, status, needle)                                                                       \
    do {                                                                                                \
        SanceStatus s_ = (call);                                                                        \
        CHECK(s_ == (status), "%s returned %s, expected %s (%s)", #call, sance_status_name(s_),          \
              sance_status_name(status), sance_last_error());                                           \
        CHECK(msg_has(needle), "%s: message '%s' lacks '%s'", #call, sance_last_error(), needle);        \
        CHECK(same_model(m, before), "%s changed the model", #call);                                    \
        CHECK(memcmp(out, sentinel, sizeof out) == 0, "%s wrote its output", #call);                    \
    } while (0)

    BAD(sance_ebm_train_step(NULL, data, 4, NULL), SANCE_STATUS_NULL_POINTER, "ebm");
    BAD(sance_ebm_train_step(m, NULL, 4, NULL), SANCE_STATUS_NULL_POINTER, "data");
    BAD(sance_ebm_train_step(m, data, 0, NULL), SANCE_STATUS_INVALID_ARGUMENT, "batch");
    BAD(sance_ebm_train_step(m, data, SIZE_MAX / 2, NULL), SANCE_STATUS_INVALID_ARGUMENT, "overflow");
    BAD(sance_ebm_sample(m, 4, NULL, NULL), SANCE_STATUS_NULL_POINTER, "out");
    BAD(sance_ebm_sample(m, 0, NULL, out), SANCE_STATUS_INVALID_ARGUMENT, "n");
    BAD(sance_ebm_sample(NULL, 4, NULL, out), SANCE_STATUS_NULL_POINTER, "ebm");
    BAD(sance_ebm_energy(m, NULL, 4, out), SANCE_STATUS_NULL_POINTER, "x");
    BAD(sance_ebm_energy(m, probe_x, 4, NULL), SANCE_STATUS_NULL_POINTER, "out");
    BAD(sance_ebm_energy(m, probe_x, SIZE_MAX, out), SANCE_STATUS_INVALID_ARGUMENT, "overflow");
    BAD(sance_ebm_energy_grad(m, probe_x, 4, out, NULL), SANCE_STATUS_NULL_POINTER, "grad");
    BAD(sance_ebm_sample_from(m, NULL, 4, NULL), SANCE_STATUS_NULL_POINTER, "chains");
    BAD(sance_ebm_refresh_noise(NULL), SANCE_STATUS_NULL_POINTER, "ebm");
    BAD(sance_ebm_config(m, NULL), SANCE_STATUS_NULL_POINTER, "out");
    BAD(sance_ebm_config(NULL, &got), SANCE_STATUS_NULL_POINTER, "ebm");
    BAD(sance_toy_dataset(NULL, 4, 0, out), SANCE_STATUS_NULL_POINTER, "name");
    BAD(sance_toy_dataset("moons", 4, 0, out), SANCE_STATUS_INVALID_ARGUMENT, "moons");
    BAD(sance_toy_dataset("rings", 0, 0, out), SANCE_STATUS_INVALID_ARGUMENT, "n");

    float nan_data[8] = {0, 0, 1, 1, NAN, 0, 2, 2};
    BAD(sance_ebm_train_step(m, nan_data, 4, NULL), SANCE_STATUS_NON_FINITE, "data[2][0]");
    float inf_x[8] = {0, 0, 1, INFINITY, 0, 0, 2, 2};
    BAD(sance_ebm_energy(m, inf_x, 4, out), SANCE_STATUS_NON_FINITE, "x[1][1]");
    BAD(sance_ebm_energy_grad(m, inf_x, 4, NULL, out), SANCE_STATUS_NON_FINITE, "x[1][1]");
    float chains[8] = {0, 0, 1, 1, 0, -INFINITY, 2, 2}, chains_copy[8];
    memcpy(chains_copy, chains, sizeof chains);
    BAD(sance_ebm_sample_from(m, chains, 4, NULL), SANCE_STATUS_NON_FINITE, "chains[2][1]");
    CHECK(memcmp(chains, chains_copy, sizeof chains) == 0, "chains untouched on failure");

    SanceLangevin bad_l = cfg.langevin;
    bad_l.step_size = -1;
    BAD(sance_ebm_sample(m, 4, &bad_l, out), SANCE_STATUS_INVALID_ARGUMENT, "params.step_size");
    bad_l = cfg.langevin;
    bad_l.steps = 0;
    BAD(sance_ebm_sample(m, 4, &bad_l, out), SANCE_STATUS_INVALID_ARGUMENT, "params.steps");
    bad_l = cfg.langevin;
    bad_l.noise_std = NAN;
    BAD(sance_ebm_sample_from(m, data, 4, &bad_l), SANCE_STATUS_INVALID_ARGUMENT, "params.noise_std");
    bad_l = cfg.langevin;
    bad_l.metropolis = 0; /* unadjusted, but still the default's target: refused */
    BAD(sance_ebm_sample(m, 4, &bad_l, out), SANCE_STATUS_INVALID_ARGUMENT, "params.target_acceptance");

    /* config validation: each names its field, and no handle is written. */
    struct { const char *field; SanceConfig c; } bad[20];
    int nb = 0;
#define BADCFG(name, stmt) do { bad[nb].field = name; bad[nb].c = cfg; { SanceConfig *c = &bad[nb].c; stmt; } nb++; } while (0)
    BADCFG("config.data_dim", c->data_dim = 0);
    BADCFG("config.learning_rate", c->learning_rate = -1e-3f);
    BADCFG("config.noise_ratio", c->noise_ratio = 0);
    BADCFG("config.noise_ratio", c->noise_ratio = -1);
    BADCFG("config.langevin.steps", c->langevin.steps = 0);
    BADCFG("config.arch", c->arch = (SanceArch)7);
    BADCFG("config.langevin.init", c->langevin.init = (SanceInit)-3);
    BADCFG("config.activation", c->activation = (SanceActivation)2);
    BADCFG("config.abi_version", c->abi_version = SANCE_ABI_VERSION + 1);
    BADCFG("config.hidden_width", c->hidden_width = 0);
    BADCFG("config.adam_beta2", c->adam_beta2 = 1.0f);
    BADCFG("config.replay_reinit_prob", c->replay_reinit_prob = 1.5f);
    BADCFG("config.ema_decay", c->ema_decay = 1.0f);
    BADCFG("config.data_noise_std", c->data_noise_std = NAN);
    BADCFG("config.energy_l2", c->energy_l2 = -0.1f);
    BADCFG("config.device", c->device = -3);
    BADCFG("config.scaling", c->scaling = (SanceScaling)7);
    BADCFG("config.langevin.target_acceptance", c->langevin.target_acceptance = 1.0f);
    BADCFG("config.langevin.target_acceptance", c->langevin.metropolis = 0);
    for (int i = 0; i < nb; i++) {
        SanceEbm *h = (SanceEbm *)&check_passed; /* must stay untouched */
        SanceStatus s = sance_ebm_new(&bad[i].c, &h);
        CHECK(s == SANCE_STATUS_INVALID_ARGUMENT, "%s: got %s", bad[i].field, sance_status_name(s));
        CHECK(msg_has(bad[i].field), "message '%s' lacks '%s'", sance_last_error(), bad[i].field);
        CHECK(h == (SanceEbm *)&check_passed, "%s: handle written on failure", bad[i].field);
    }
    {
        SanceEbm *h = NULL;
        CHECK(sance_ebm_new(NULL, &h) == SANCE_STATUS_NULL_POINTER && h == NULL, "new(NULL config)");
        CHECK(sance_ebm_new(&cfg, NULL) == SANCE_STATUS_NULL_POINTER, "new(NULL out)");
        SanceConfig c = cfg;
        c.device = 99;
        CHECK(sance_ebm_new(&c, &h) == SANCE_STATUS_DEVICE && h == NULL, "device 99: %s", sance_last_error());
        CHECK(msg_has("99"), "device message names the index: %s", sance_last_error());
        if (sance_cuda_device_count() == 0) {
            c.device = 0;
            CHECK(sance_ebm_new(&c, &h) == SANCE_STATUS_DEVICE && h == NULL, "CUDA 0 without GPU");
            CHECK(msg_has("no CUDA device"), "says there is none: %s", sance_last_error());
            c.device = SANCE_DEVICE_AUTO;
            CHECK(sance_ebm_new(&c, &h) == SANCE_STATUS_OK && h, "AUTO falls back to the CPU");
            SanceConfig back;
            CHECK(h && sance_ebm_config(h, &back) == SANCE_STATUS_OK && back.device == SANCE_DEVICE_CPU,
                  "AUTO resolves to CPU");
            sance_ebm_free(h);
        } else {
            c.device = SANCE_DEVICE_AUTO;
            CHECK(sance_ebm_new(&c, &h) == SANCE_STATUS_OK && h, "AUTO with a GPU: %s", sance_last_error());
            CHECK(h && device_of(h) == 0, "AUTO resolves to CUDA 0");
            sance_ebm_free(h);
        }
    }
    sance_ebm_free(NULL); /* a no-op */

    /* The last error is per call: a later failure replaces it, a success keeps it. */
    sance_ebm_refresh_noise(NULL);
    CHECK(msg_has("sance_ebm_refresh_noise"), "message names the function: %s", sance_last_error());

    /* After all that, training continues from where it was. */
    CHECK(sance_ebm_train_step(m, data, batch, &st) == SANCE_STATUS_OK && st.step == 4001,
          "step after bad input: %llu", (unsigned long long)st.step);

    /* Checkpoint round trip: the loaded model is the same model, and trains on identically.
     * m runs where SANCE_DEVICE_AUTO put it (CUDA 0 on a GPU host); it is loaded once on the
     * CPU and once on m's own device. */
    {
        char dir[] = "/tmp/sance-c-test-XXXXXX", path[64];
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECK(sance_ebm_save(m, path) == SANCE_STATUS_OK, "save: %s", sance_last_error());
        const int32_t dev_m = device_of(m);
        float now[NPROBE], loaded[NPROBE];
        double worst;
        probe(m, now);
        SanceEbm *back = NULL;
        CHECK(sance_ebm_load(path, SANCE_DEVICE_CPU, &back) == SANCE_STATUS_OK && back, "load: %s", sance_last_error());
        if (back) {
            const int32_t dev_back = device_of(back);
            CHECK(dev_back == SANCE_DEVICE_CPU, "loaded onto the CPU: device %d", (int)dev_back);
            probe(back, loaded);
            CHECK(results_match(now, loaded, NPROBE, dev_back == dev_m, &worst),
                  "energies loaded on the CPU match the model's on device %d (%s; worst relative difference %g)",
                  (int)dev_m, dev_back == dev_m ? "bit for bit" : "cross-device tolerance", worst);
            SanceProgress pa = {0}, pb = {0};
            CHECK(sance_ebm_progress(m, &pa) == SANCE_STATUS_OK && sance_ebm_progress(back, &pb) == SANCE_STATUS_OK,
                  "progress: %s", sance_last_error());
            CHECK(pa.step == 4001 && pa.step == pb.step && pa.refresh_count == pb.refresh_count &&
                      pa.replay_len == pb.replay_len && pa.log_z_ratio == pb.log_z_ratio,
                  "progress survives: step %llu/%llu", (unsigned long long)pa.step, (unsigned long long)pb.step);
            sance_ebm_free(back);
        }
        /* A step after loading matches a step without stopping. Random draws are made on the
         * model's device and CPU and CUDA generators differ, so this compares a copy on m's own
         * device: bit for bit on the CPU; on CUDA within the tolerance, since docs/c-api.md
         * promises CUDA determinism only up to CUDA kernels' own nondeterminism. */
        SanceEbm *twin = NULL;
        CHECK(sance_ebm_load(path, dev_m, &twin) == SANCE_STATUS_OK && twin, "load on device %d: %s", (int)dev_m,
              sance_last_error());
        if (twin) {
            const int32_t dev_twin = device_of(twin);
            CHECK(dev_twin == dev_m, "loaded onto device %d: device %d", (int)dev_m, (int)dev_twin);
            probe(twin, loaded);
            CHECK(results_match(now, loaded, NPROBE, dev_twin == dev_m, &worst),
                  "energies loaded on device %d (worst relative difference %g)", (int)dev_twin, worst);
            SanceStatus s_m = sance_ebm_train_step(m, data, batch, NULL);
            SanceStatus s_twin = sance_ebm_train_step(twin, data, batch, NULL);
            CHECK(s_m == SANCE_STATUS_OK && s_twin == SANCE_STATUS_OK, "steps after loading: %s / %s (%s)",
                  sance_status_name(s_m), sance_status_name(s_twin), sance_last_error());
            probe(m, now);
            probe(twin, loaded);
            const int bitwise = dev_twin == dev_m && dev_m == SANCE_DEVICE_CPU;
            CHECK(results_match(now, loaded, NPROBE, bitwise, &worst),
                  "a step after loading matches a step without stopping (%s; worst relative difference %g)",
                  bitwise ? "bit for bit" : "tolerance", worst);
            sance_ebm_free(twin);
        }
        CHECK(sance_ebm_load("/nonexistent/model.safetensors", SANCE_DEVICE_CPU, &back) == SANCE_STATUS_IO,
              "missing file is IO");
        remove(path);
        rmdir(dir);
    }
    free(data);
    free(truth);
    sance_ebm_free(m);
}

/* A learning rate that makes training blow up: the diverging step reports NON_FINITE and the
 * model is rolled back; after lowering the rate, training continues. */
static void test_divergence(void) {
    SanceConfig cfg;
    CHECK(sance_config_init(&cfg, SANCE_ABI_VERSION) == SANCE_STATUS_OK, "config_init");
    cfg.device = test_device();
    cfg.learning_rate = 1e30f;
    SanceEbm *m = NULL;
    if (sance_ebm_new(&cfg, &m) != SANCE_STATUS_OK) { CHECK(0, "new: %s", sance_last_error()); return; }
    float data[2 * 64];
    sance_toy_dataset("8gaussians", 64, 1, data);
    SanceStatus s = SANCE_STATUS_OK;
    int t = 0;
    float before[NPROBE];
    while (s == SANCE_STATUS_OK && t < 10) {
        probe(m, before);
        s = sance_ebm_train_step(m, data, 64, NULL);
        t++;
    }
    CHECK(s == SANCE_STATUS_NON_FINITE, "divergence reported as NON_FINITE after %d steps: %s", t, sance_status_name(s));
    CHECK(msg_has("finite"), "message: %s", sance_last_error());
    CHECK(same_model(m, before), "diverging step rolled back");
    /* With a sane learning rate, training goes on normally. */
    CHECK(sance_ebm_set_learning_rate(m, 1e-3f) == SANCE_STATUS_OK, "set_learning_rate");
    SanceStepStats st = {0};
    int ok = 1;
    for (int k = 0; k < 50 && ok; k++) ok = sance_ebm_train_step(m, data, 64, &st) == SANCE_STATUS_OK;
    CHECK(ok && isfinite(st.loss), "sane steps after the divergence: %s", sance_last_error());
    CHECK(sance_ebm_set_learning_rate(m, -1) == SANCE_STATUS_INVALID_ARGUMENT, "negative rate refused");
    sance_ebm_free(m);
}

/* Two handles with the same config give bit-identical results, however calls interleave. */
static void test_determinism(void) {
    SanceConfig cfg;
    CHECK(sance_config_init(&cfg, SANCE_ABI_VERSION) == SANCE_STATUS_OK, "config_init");
    cfg.device = test_device();
    cfg.seed = 7;
    SanceEbm *a = NULL, *b = NULL, *other = NULL;
    CHECK(sance_ebm_new(&cfg, &a) == SANCE_STATUS_OK, "new a: %s", sance_last_error());
    CHECK(sance_ebm_new(&cfg, &b) == SANCE_STATUS_OK, "new b: %s", sance_last_error());
    cfg.seed = 8;
    CHECK(sance_ebm_new(&cfg, &other) == SANCE_STATUS_OK, "new other: %s", sance_last_error());
    if (!a || !b || !other) {
        sance_ebm_free(a);
        sance_ebm_free(b);
        sance_ebm_free(other);
        return;
    }
    float data[2 * 128], junk[2 * 16];
    /* Every call counts: were they all refused, a and b would still agree (untrained alike). */
    int failed = 0;
#define COUNTED(call)                                                                         \
    do {                                                                                      \
        SanceStatus s_ = (call);                                                              \
        if (s_ != SANCE_STATUS_OK && failed++ == 0)                                           \
            printf("first failure: %s: %s (%s)\n", #call, sance_status_name(s_), sance_last_error()); \
    } while (0)
    for (int t = 0; t < 30; t++) {
        COUNTED(sance_toy_dataset("rings", 128, t, data));
        COUNTED(sance_ebm_train_step(a, data, 128, NULL));
        COUNTED(sance_ebm_sample(other, 16, NULL, junk)); /* draws from libtorch's generator in between */
        COUNTED(sance_ebm_train_step(other, data, 128, NULL));
    }
    for (int t = 0; t < 30; t++) {
        COUNTED(sance_toy_dataset("rings", 128, t, data));
        COUNTED(sance_ebm_train_step(b, data, 128, NULL));
    }
    float ea[NPROBE], eb[NPROBE], sa[2 * 16], sb[2 * 16];
    probe(a, ea);
    probe(b, eb);
    COUNTED(sance_ebm_sample(a, 16, NULL, sa));
    COUNTED(sance_ebm_sample(b, 16, NULL, sb));
#undef COUNTED
    CHECK(failed == 0, "%d of the determinism test's calls failed", failed);
    SanceProgress pa = {0}, pb = {0};
    CHECK(sance_ebm_progress(a, &pa) == SANCE_STATUS_OK && sance_ebm_progress(b, &pb) == SANCE_STATUS_OK &&
              pa.step == 30 && pb.step == 30,
          "30 steps each: %llu and %llu", (unsigned long long)pa.step, (unsigned long long)pb.step);
    /* Both run on the CPU (cfg.device above), so bit for bit; read back, not assumed. */
    const int same_device = device_of(a) == device_of(b);
    double worst;
    CHECK(results_match(ea, eb, NPROBE, same_device, &worst), "same seed, same calls: same energies (worst %g)", worst);
    CHECK(results_match(sa, sb, 2 * 16, same_device, &worst), "same samples (worst %g)", worst);
    sance_ebm_free(a);
    sance_ebm_free(b);
    sance_ebm_free(other);
}

int main(void) {
    test_versions();
    test_defaults_and_step_stats();
    test_toy_datasets();
    test_training_and_bad_input();
    test_divergence();
    test_determinism();
    return check_summary();
}
