// sance/eval.hpp (libsance_eval) beside sance.hpp: agreement with libsance on a trained model,
// the one-point call, one Eval shared by threads, the exceptions' statuses, move semantics.
// eval.hpp comes first on purpose: the two headers share SanceStatus under one guard, in either
// order. Prints "N passed, M failed".
#include <sance/eval.hpp>
#include <sance/sance.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <vector>

#include "check.hpp"


template <class F> static void expect_eval_error(F f, SanceStatus status, const char *what, const char *needle) {
    try {
        f();
        CHECK(false, "%s", what);
    } catch (const sance::EvalError &e) {
        CHECK(e.status() == status, "%s", what);
        CHECK(std::strstr(e.what(), needle) != nullptr, "%s", e.what());
    }
}

// max |a - b| / max |b|.
static double rel_err(const std::vector<float> &a, const std::vector<float> &b) {
    double err = 0, scale = 0;
    for (size_t i = 0; i < b.size(); i++) {
        err = std::fmax(err, std::fabs(double(a[i]) - double(b[i])));
        scale = std::fmax(scale, std::fabs(double(b[i])));
    }
    return err / scale;
}

static std::string temp_path(const char *name) {
    return std::string("/tmp/sance-test-eval-") + std::to_string(getpid()) + "-" + name;
}

int main() {
    static_assert(!std::is_copy_constructible<sance::Eval>::value, "Eval owns its model: move-only");
    std::mt19937 gen(3);
    std::normal_distribution<float> normal;
    std::vector<float> data(3 * 64), points(3 * 200);
    for (auto &v : data) v = normal(gen);
    for (auto &v : points) v = 2.0f * normal(gen);

    for (SanceActivation act : {SANCE_ACTIVATION_SILU, SANCE_ACTIVATION_LEAKY_RELU}) {
        sance::Config cfg;
        cfg.data_dim = 3;
        cfg.hidden_width = 32;
        cfg.activation = act;
        cfg.device = SANCE_DEVICE_CPU;
        sance::Ebm ebm(cfg);
        for (int t = 0; t < 5; t++) ebm.train_step(data);
        std::string path = temp_path(act == SANCE_ACTIVATION_SILU ? "silu" : "leaky");
        ebm.save(path);
        sance::Eval ev(path);
        std::remove(path.c_str());
        CHECK(ev.dim() == 3, "dim");
        sance::EnergyGrad ref = ebm.energy_grad(points);
        sance::EvalResult got = ev.energy_grad(points);
        CHECK(rel_err(got.energy, ref.energy) <= 1e-5, "energies agree with libsance");
        CHECK(rel_err(got.grad, ref.grad) <= 1e-5, "gradients agree with libsance");
        CHECK(ev.energy(points) == got.energy, "energy() is energy_grad()'s energy");
        // One point at a time, as an integrator calls it.
        std::vector<float> e1(200), g1(600);
        for (size_t i = 0; i < 200; i++) e1[i] = ev.energy_grad(&points[3 * i], &g1[3 * i]);
        CHECK(rel_err(e1, ref.energy) <= 1e-5 && rel_err(g1, ref.grad) <= 1e-5, "one-point calls agree");
        // One const Eval, four threads, each the same answer as one thread alone.
        std::vector<int> same(4, 0);
        std::vector<std::thread> threads;
        const sance::Eval &shared = ev;
        for (int t = 0; t < 4; t++)
            threads.emplace_back([&, t] {
                int ok = 1;
                for (int r = 0; r < 50; r++) ok &= shared.energy_grad(points).grad == got.grad;
                same[t] = ok;
            });
        for (auto &th : threads) th.join();
        CHECK(same == std::vector<int>(4, 1), "threads share one Eval");
        // Bad input: NaN (named), a vector that is not whole points.
        std::vector<float> bad = points;
        bad[3 * 5 + 2] = NAN;
        expect_eval_error([&] { ev.energy_grad(bad); }, SANCE_STATUS_NON_FINITE, "NaN", "x[5][2]");
        expect_eval_error([&] { ev.energy_grad(std::vector<float>(4)); }, SANCE_STATUS_INVALID_ARGUMENT,
                          "not whole points", "multiple of dim()");
        // Move: the moved-from Eval refuses, the new one works.
        sance::Eval moved = std::move(ev);
        CHECK(moved.dim() == 3, "moved-to Eval works");
        expect_eval_error([&] { (void)ev.dim(); }, SANCE_STATUS_NULL_POINTER, "moved-from", "moved from");
    }

    expect_eval_error([] { sance::Eval e("/nonexistent/model.safetensors"); }, SANCE_STATUS_IO, "missing file",
                      "sance_eval_load");
    std::string junk = temp_path("junk");
    if (FILE *f = std::fopen(junk.c_str(), "wb")) {
        std::fputs("not a checkpoint", f);
        std::fclose(f);
    }
    expect_eval_error([&] { sance::Eval e(junk); }, SANCE_STATUS_CORRUPT, "corrupt file", "safetensors");
    std::remove(junk.c_str());
    sance::Config conv;
    conv.arch = SANCE_ARCH_CONV;
    conv.channels = 1;
    conv.height = 6;
    conv.width = 6;
    conv.hidden_width = 4;
    conv.hidden_layers = 1;
    conv.device = SANCE_DEVICE_CPU;
    std::string conv_path = temp_path("conv");
    sance::Ebm(conv).save(conv_path);
    expect_eval_error([&] { sance::Eval e(conv_path); }, SANCE_STATUS_INVALID_ARGUMENT, "conv checkpoint",
                      "MLP energies only");
    std::remove(conv_path.c_str());

    return check_summary();
}
