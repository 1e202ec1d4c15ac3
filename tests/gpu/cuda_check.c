/* cuda_check: does sance work on this machine's GPU? Part of the GPU validation bundle
 * (scripts/gpu-bundle, docs/gpu.md), built against the C API only.
 *
 * Checks: what SANCE_DEVICE_AUTO resolves to (a loud failure when SANCE_REQUIRE_GPU=1, set by
 * run.sh when nvidia-smi sees a GPU, and libtorch sees none); checkpoint round trips CUDA -> CPU
 * and CPU -> CUDA within 1e-5, for the MLP and the conv net; same-seed determinism on CUDA, bit
 * for bit; a call too large for the GPU returning a status with the model unchanged and still
 * savable; a model on CUDA device 1 when there are two GPUs. Without a GPU every CUDA check
 * prints "skipped: no GPU" and counts neither as passed nor as failed. Ends with
 * "N passed, M failed". */
#include "sance.h"
#include "../c/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPROBE 64
static int skipped;

static void skip(const char *what, const char *why) {
    printf("skipped: %s: %s\n", what, why);
    skipped++;
}

static SanceConfig base(int conv, int32_t device, uint64_t seed) {
    SanceConfig c;
    if (sance_config_init(&c, SANCE_ABI_VERSION) != SANCE_STATUS_OK) {
        printf("FAIL config_init: %s\n", sance_last_error());
        exit(1);
    }
    c.device = device;
    c.seed = seed;
    c.hidden_width = 32;
    if (conv) {
        c.arch = SANCE_ARCH_CONV;
        c.channels = 1;
        c.height = 8;
        c.width = 8;
        c.hidden_width = 8;
        c.langevin.steps = 10;
    }
    return c;
}

static SanceEbm *make(SanceConfig c) {
    SanceEbm *m = NULL;
    SanceStatus st = sance_ebm_new(&c, &m);
    CHECK(st == SANCE_STATUS_OK && m, "new on device %d: %s", (int)c.device, sance_last_error());
    return st == SANCE_STATUS_OK ? m : NULL;
}

/* Data for either net: 8gaussians for the MLP, smooth random images in [-1, 1] for the conv. */
static void batch(SanceEbm *m, float *x, size_t n, uint64_t seed) {
    size_t d = sance_ebm_sample_size(m);
    if (d == 2) {
        sance_toy_dataset("8gaussians", n, seed, x);
        return;
    }
    for (size_t i = 0; i < n * d; i++) x[i] = (float)sin(0.37 * (double)(i % d) + 1.3 * (double)(i / d) + (double)seed);
}

static int train(SanceEbm *m, int steps) {
    size_t d = sance_ebm_sample_size(m);
    float *x = malloc(sizeof(float) * 64 * d);
    int ok = x != NULL;
    for (int t = 0; ok && t < steps; t++) {
        batch(m, x, 64, (uint64_t)t);
        ok = sance_ebm_train_step(m, x, 64, NULL) == SANCE_STATUS_OK;
    }
    CHECK(ok, "train %d steps: %s", steps, sance_last_error());
    free(x);
    return ok;
}

/* Energies on a fixed probe set. */
static void probe(SanceEbm *m, float *e) {
    size_t d = sance_ebm_sample_size(m);
    float *x = malloc(sizeof(float) * NPROBE * d);
    if (!x) exit(1);
    batch(m, x, NPROBE, 999);
    if (sance_ebm_energy(m, x, NPROBE, e) != SANCE_STATUS_OK) {
        printf("FAIL energy: %s\n", sance_last_error());
        for (int i = 0; i < NPROBE; i++) e[i] = NAN;
    }
    free(x);
}

static double max_rel(const float *a, const float *b) {
    double scale = 1e-6, err = 0;
    for (int i = 0; i < NPROBE; i++) scale = fmax(scale, fabs(b[i]));
    for (int i = 0; i < NPROBE; i++) err = fmax(err, fabs((double)a[i] - b[i]));
    return isfinite(err) ? err / scale : INFINITY;
}

/* Trained on `from`, saved, loaded on `to`: the same energies within 1e-5. */
static void round_trip(int conv, int32_t from, int32_t to) {
    const char *path = conv ? "cuda_check_conv.safetensors" : "cuda_check_mlp.safetensors";
    SanceEbm *m = make(base(conv, from, 5)), *back = NULL;
    if (!m) return;
    train(m, 30);
    float a[NPROBE], b[NPROBE];
    probe(m, a);
    CHECK(sance_ebm_save(m, path) == SANCE_STATUS_OK, "save: %s", sance_last_error());
    CHECK(sance_ebm_load(path, to, &back) == SANCE_STATUS_OK && back, "load onto %d: %s", (int)to, sance_last_error());
    if (back) {
        int32_t dev = -99;
        CHECK(sance_ebm_device(back, &dev) == SANCE_STATUS_OK && dev == to, "loaded onto device %d (got %d)", (int)to, (int)dev);
        probe(back, b);
        double err = max_rel(b, a);
        CHECK(err <= 1e-5, "%s round trip %d -> %d: energies differ by %.2e (relative)", conv ? "conv" : "MLP", (int)from,
              (int)to, err);
        printf("round trip %s %s -> %s: max relative difference %.2e\n", conv ? "conv" : "MLP", from < 0 ? "CPU" : "CUDA",
               to < 0 ? "CPU" : "CUDA", err);
        sance_ebm_free(back);
    }
    sance_ebm_free(m);
    remove(path);
}

/* Two handles, same seed, same calls, on CUDA: the same bits. */
static void determinism(int conv) {
    SanceEbm *a = make(base(conv, 0, 11)), *b = make(base(conv, 0, 11));
    if (a && b) {
        train(a, 25);
        train(b, 25);
        float ea[NPROBE], eb[NPROBE];
        probe(a, ea);
        probe(b, eb);
        CHECK(memcmp(ea, eb, sizeof ea) == 0, "%s on CUDA: same seed, same energies bit for bit", conv ? "conv" : "MLP");
        size_t d = sance_ebm_sample_size(a);
        float *sa = malloc(sizeof(float) * 32 * d), *sb = malloc(sizeof(float) * 32 * d);
        if (sa && sb) {
            CHECK(sance_ebm_sample(a, 32, NULL, sa) == SANCE_STATUS_OK && sance_ebm_sample(b, 32, NULL, sb) == SANCE_STATUS_OK &&
                      memcmp(sa, sb, sizeof(float) * 32 * d) == 0,
                  "%s on CUDA: same seed, same samples bit for bit", conv ? "conv" : "MLP");
        }
        free(sa);
        free(sb);
    }
    sance_ebm_free(a);
    sance_ebm_free(b);
}

/* Training batches doubling until one is too large for the GPU: that call returns a status
 * (TORCH from libtorch, or INVALID_ARGUMENT from sance's estimate of the device's free memory),
 * the model is unchanged, and it still saves and trains. */
static void out_of_memory(void) {
    SanceConfig c = base(0, 0, 3);
    c.hidden_width = 4096;
    c.hidden_layers = 3;
    c.langevin.steps = 2;
    SanceEbm *m = make(c);
    if (!m) return;
    size_t n = (size_t)1 << 14, limit = (size_t)1 << 26;
    float *x = malloc(sizeof(float) * 2 * limit);
    if (!x) {
        skip("out-of-memory check", "no host memory for the batches");
        sance_ebm_free(m);
        return;
    }
    for (size_t i = 0; i < 2 * limit; i++) x[i] = (float)sin((double)i * 0.001);
    SanceStatus st = SANCE_STATUS_OK;
    float before[NPROBE], after[NPROBE];
    for (; n <= limit; n *= 2) {
        probe(m, before);
        st = sance_ebm_train_step(m, x, n, NULL);
        if (st != SANCE_STATUS_OK) break;
    }
    printf("out of memory at a batch of %zu: status %s: %.160s\n", n, sance_status_name(st), sance_last_error());
    CHECK(st == SANCE_STATUS_TORCH || st == SANCE_STATUS_INVALID_ARGUMENT, "too large a batch returns TORCH or "
          "INVALID_ARGUMENT (got %s)", sance_status_name(st));
    probe(m, after);
    CHECK(memcmp(before, after, sizeof before) == 0, "the model is unchanged by the failed call");
    CHECK(sance_ebm_save(m, "cuda_check_oom.safetensors") == SANCE_STATUS_OK, "still savable: %s", sance_last_error());
    CHECK(sance_ebm_train_step(m, x, 256, NULL) == SANCE_STATUS_OK, "still trains: %s", sance_last_error());
    remove("cuda_check_oom.safetensors");
    free(x);
    sance_ebm_free(m);
}

int main(void) {
    int32_t gpus = sance_cuda_device_count();
    const char *req = getenv("SANCE_REQUIRE_GPU");
    int require = req && strcmp(req, "1") == 0;
    printf("%s, ABI %u; libtorch sees %d CUDA device(s)\n", sance_version(), (unsigned)sance_abi_version(), (int)gpus);

    SanceEbm *m = make(base(0, SANCE_DEVICE_AUTO, 1));
    int32_t dev = -99;
    CHECK(m && sance_ebm_device(m, &dev) == SANCE_STATUS_OK, "device: %s", sance_last_error());
    printf("SANCE_DEVICE_AUTO resolved to %s\n", dev < 0 ? "the CPU" : "CUDA device 0");
    if (gpus > 0) {
        CHECK(dev == 0, "AUTO resolves to CUDA 0 when libtorch sees a GPU (got %d)", (int)dev);
    } else if (require) {
        CHECK(dev >= 0, "a GPU is present (nvidia-smi) but libtorch sees none and AUTO resolved to the CPU: is the "
              "driver too old for this libtorch's CUDA, or CUDA_VISIBLE_DEVICES empty?");
    } else {
        CHECK(dev == SANCE_DEVICE_CPU, "AUTO resolves to the CPU without a GPU (got %d)", (int)dev);
    }
    sance_ebm_free(m);

    if (gpus == 0) {
        const char *checks[] = {"round trip CUDA -> CPU", "round trip CPU -> CUDA", "determinism on CUDA",
                                "out of memory on CUDA", "CUDA device 1"};
        for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) skip(checks[i], "no GPU");
    } else {
        for (int conv = 0; conv <= 1; conv++) {
            round_trip(conv, 0, SANCE_DEVICE_CPU);
            round_trip(conv, SANCE_DEVICE_CPU, 0);
            determinism(conv);
        }
        out_of_memory();
        if (gpus >= 2) {
            SanceEbm *m1 = make(base(0, 1, 2));
            int32_t d1 = -99;
            CHECK(m1 && sance_ebm_device(m1, &d1) == SANCE_STATUS_OK && d1 == 1, "model on CUDA device 1 (got %d)", (int)d1);
            if (m1) train(m1, 3);
            sance_ebm_free(m1);
        } else {
            skip("CUDA device 1", "one GPU");
        }
    }
    printf("%d skipped\n", skipped);
    return check_summary();
}
