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

/* KL(data || model): model normalised on a 300x300 grid over [-6, 6]^2 (midpoint rule). */
static double kl_8gaussians(SanceEbm *m) {
    const int res = 300;
    const double lo = -6, h = 12.0 / res;
    float *g = malloc(sizeof(float) * 2 * res * res), *e = malloc(sizeof(float) * res * res);
    for (int i = 0; i < res; i++)
        for (int j = 0; j < res; j++) {
            g[2 * (i * res + j)] = (float)(lo + (i + 0.5) * h);
            g[2 * (i * res + j) + 1] = (float)(lo + (j + 0.5) * h);
        }
    if (sance_ebm_energy(m, g, (size_t)res * res, e) != SANCE_STATUS_OK) return INFINITY;
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < res * res; i++) if (-e[i] > mx) mx = -e[i];
    for (int i = 0; i < res * res; i++) s += exp(-e[i] - mx);
    double log_z = mx + log(s) + log(h * h);
    const size_t n = 5000;
    float *x = malloc(sizeof(float) * 2 * n), *ex = malloc(sizeof(float) * n);
    true_samples(x, n);
    double kl = 0;
    if (sance_ebm_energy(m, x, n, ex) != SANCE_STATUS_OK) kl = INFINITY;
    else
        for (size_t i = 0; i < n; i++) kl += (true_log_density(x[2 * i], x[2 * i + 1]) + ex[i] + log_z) / n;
    free(g); free(e); free(x); free(ex);
    return kl;
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

/* ---- probe: energies on fixed points, compared bit for bit ---- */
#define NPROBE 64
static float probe_x[2 * NPROBE];
static void probe(SanceEbm *m, float *out) {
    SanceStatus st = sance_ebm_energy(m, probe_x, NPROBE, out);
    if (st != SANCE_STATUS_OK) printf("probe failed: %s\n", sance_last_error());
}
static int same_model(SanceEbm *m, const float *before) {
    float now[NPROBE];
    probe(m, now);
    return memcmp(now, before, sizeof now) == 0;
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
                   (unsigned long long)st.step, st.loss, st.accuracy, st.data_energy, st.noise_energy, st.log_z,
                   st.langevin_grad_norm);
    }
    CHECK(ok, "4000 training steps: %s", sance_last_error());
    CHECK(st.step == 4000, "step counter %llu", (unsigned long long)st.step);
    CHECK((uint64_t)refreshes == st.refresh_count && st.refresh_count == (4000 + cfg.noise_update_interval - 1) / cfg.noise_update_interval,
          "refreshes %d / %llu", refreshes, (unsigned long long)st.refresh_count);

    double kl = kl_8gaussians(m);
    printf("KL(data || model) = %.4f nats\n", kl);
    CHECK(kl <= 0.35, "KL %.4f > 0.35", kl);
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
        float e2[N];
        sance_ebm_energy(m, x, N, e2);
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

    /* config validation: each names its field, and no handle is written. */
    struct { const char *field; SanceConfig c; } bad[16];
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
    BADCFG("config.data_noise_std", c->data_noise_std = NAN);
    BADCFG("config.energy_l2", c->energy_l2 = -0.1f);
    BADCFG("config.device", c->device = -3);
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
        }
    }
    sance_ebm_free(NULL); /* a no-op */

    /* The last error is per call: a later failure replaces it, a success keeps it. */
    sance_ebm_refresh_noise(NULL);
    CHECK(msg_has("sance_ebm_refresh_noise"), "message names the function: %s", sance_last_error());

    /* After all that, training continues from where it was. */
    CHECK(sance_ebm_train_step(m, data, batch, &st) == SANCE_STATUS_OK && st.step == 4001,
          "step after bad input: %llu", (unsigned long long)st.step);

    /* Checkpoint round trip: the loaded model is the same model, and trains on identically. */
    {
        char dir[] = "/tmp/sance-c-test-XXXXXX", path[64];
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECK(sance_ebm_save(m, path) == SANCE_STATUS_OK, "save: %s", sance_last_error());
        SanceEbm *back = NULL;
        CHECK(sance_ebm_load(path, SANCE_DEVICE_CPU, &back) == SANCE_STATUS_OK && back, "load: %s", sance_last_error());
        if (back) {
            float now[NPROBE];
            probe(m, now);
            CHECK(same_model(back, now), "loaded energies are bit-identical");
            SanceProgress pa, pb;
            sance_ebm_progress(m, &pa);
            sance_ebm_progress(back, &pb);
            CHECK(pa.step == 4001 && pa.step == pb.step && pa.refresh_count == pb.refresh_count &&
                      pa.replay_len == pb.replay_len && pa.log_z == pb.log_z,
                  "progress survives: step %llu/%llu", (unsigned long long)pa.step, (unsigned long long)pb.step);
            if (sance_cuda_device_count() == 0) { /* bitwise equality is a CPU promise */
                sance_ebm_train_step(m, data, batch, NULL);
                sance_ebm_train_step(back, data, batch, NULL);
                probe(m, now);
                CHECK(same_model(back, now), "a step after loading matches a step without stopping");
            }
            sance_ebm_free(back);
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
    cfg.device = SANCE_DEVICE_CPU;
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
    cfg.device = SANCE_DEVICE_CPU;
    cfg.seed = 7;
    SanceEbm *a = NULL, *b = NULL, *other = NULL;
    sance_ebm_new(&cfg, &a);
    sance_ebm_new(&cfg, &b);
    cfg.seed = 8;
    sance_ebm_new(&cfg, &other);
    if (!a || !b || !other) { CHECK(0, "new"); return; }
    float data[2 * 128], junk[2 * 16];
    for (int t = 0; t < 30; t++) {
        sance_toy_dataset("rings", 128, t, data);
        sance_ebm_train_step(a, data, 128, NULL);
        sance_ebm_sample(other, 16, NULL, junk); /* draws from libtorch's generator in between */
        sance_ebm_train_step(other, data, 128, NULL);
    }
    for (int t = 0; t < 30; t++) {
        sance_toy_dataset("rings", 128, t, data);
        sance_ebm_train_step(b, data, 128, NULL);
    }
    float ea[NPROBE], eb[NPROBE], sa[2 * 16], sb[2 * 16];
    probe(a, ea);
    probe(b, eb);
    CHECK(memcmp(ea, eb, sizeof ea) == 0, "same seed, same calls: same energies");
    sance_ebm_sample(a, 16, NULL, sa);
    sance_ebm_sample(b, 16, NULL, sb);
    CHECK(memcmp(sa, sb, sizeof sa) == 0, "same samples");
    sance_ebm_free(a);
    sance_ebm_free(b);
    sance_ebm_free(other);
}

int main(void) {
    test_versions();
    test_toy_datasets();
    test_training_and_bad_input();
    test_divergence();
    test_determinism();
    return check_summary();
}
