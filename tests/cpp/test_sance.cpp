// Every method of sance.hpp, the statuses its exceptions carry, move semantics, and the
// header in two translation units. Prints "N passed, M failed".
#include <sance/sance.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <unistd.h>

#include "check.hpp"

std::string second_tu_version();
// The sum over a world of one rank is the buffer itself.
extern "C" int32_t world_of_one(float *, size_t, void *) { return 0; }
size_t second_tu_sample_size();


// Runs f, which must throw sance::Error with `status`.
template <class F> static void expect_error(F f, SanceStatus status, const char *what, const char *needle) {
    try {
        f();
        CHECK(false, "%s", what);
    } catch (const sance::Error &e) {
        CHECK(e.status() == status, "%s", what);
        CHECK(std::strstr(e.what(), needle) != nullptr, "%s", e.what());
        CHECK(std::strstr(e.what(), sance::status_name(status).c_str()) != nullptr, "what() names the status");
    }
}

static bool finite(const std::vector<float> &v) {
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

static sance::Config small() {
    sance::Config c;
    c.device = SANCE_DEVICE_CPU;
    c.hidden_width = 16;
    c.replay_capacity = 64;
    return c;
}

int main() {
    static_assert(!std::is_copy_constructible<sance::Ebm>::value, "Ebm is move-only");
    static_assert(std::is_nothrow_move_constructible<sance::Ebm>::value, "Ebm moves without throwing");
    static_assert(std::is_base_of<std::runtime_error, sance::Error>::value, "Error is a runtime_error");
    static_assert(!std::is_default_constructible<sance::Ais>::value, "Ais's defaults need a model");
    static_assert(!std::is_default_constructible<sance::Sampling>::value, "Sampling's defaults need a model");

    // Free functions.
    CHECK(sance::version().rfind("sance ", 0) == 0, "version");
    CHECK(second_tu_version() == sance::version(), "second TU sees the same header");
    CHECK(second_tu_sample_size() == 2, "second TU builds a model");
    CHECK(sance::abi_version() == SANCE_ABI_VERSION, "abi");
    CHECK(sance::cuda_device_count() >= 0, "cuda count");
    CHECK(sance::status_name(SANCE_STATUS_CORRUPT) == "SANCE_STATUS_CORRUPT", "status name");
    std::vector<float> rings = sance::toy_dataset("rings", 100, 3);
    CHECK(rings.size() == 200 && finite(rings), "toy dataset");
    expect_error([] { sance::toy_dataset("moons", 4, 0); }, SANCE_STATUS_INVALID_ARGUMENT, "unknown dataset", "moons");
    CHECK(sance::last_error().find("moons") != std::string::npos, "last_error");
    // Toy datasets' dimensions: the output is sized by them.
    CHECK(sance::toy_dataset_dim("8gaussians") == 2 && sance::toy_dataset_dim("rings") == 2, "toy_dataset_dim 2-D");
    CHECK(sance::toy_dataset_dim("gaussians16d") == 16, "toy_dataset_dim 16-D");
    expect_error([] { sance::toy_dataset_dim("moons"); }, SANCE_STATUS_INVALID_ARGUMENT, "unknown dataset dim",
                 "moons");
    std::vector<float> g16 = sance::toy_dataset("gaussians16d", 50, 4);
    CHECK(g16.size() == 50 * 16 && finite(g16), "toy dataset of 16-D samples");
    CHECK(sance::toy_dataset("gaussians16d", 50, 4) == g16, "toy dataset is reproducible");

    // Config and Langevin start from the defaults.
    sance::Config def;
    SanceConfig raw;
    CHECK(sance_config_init(&raw, SANCE_ABI_VERSION) == SANCE_STATUS_OK, "config_init");
    // Field by field: padding bytes are unspecified.
    CHECK(def.abi_version == raw.abi_version && def.arch == raw.arch && def.data_dim == raw.data_dim &&
              def.hidden_width == raw.hidden_width && def.learning_rate == raw.learning_rate &&
              def.noise_update_interval == raw.noise_update_interval && def.device == raw.device &&
              def.seed == raw.seed && def.langevin.noise_std == raw.langevin.noise_std &&
              def.noise == raw.noise && def.langevin.metropolis == raw.langevin.metropolis &&
              def.langevin.target_acceptance == raw.langevin.target_acceptance && def.scaling == raw.scaling,
          "Config() is the default");
    CHECK(def.noise == SANCE_NOISE_SNAPSHOT && def.langevin.metropolis == 1 && def.langevin.target_acceptance == 0.6f,
          "SA-NCE with MALA tuned towards 60%% acceptance by default");
    CHECK(def.scaling == SANCE_SCALING_AUTO, "the data are standardised by default");
    CHECK(SANCE_WARNING_COARSE_STEP == 1 && SANCE_WARNING_FROZEN_STEP == 2 && SANCE_WARNING_OUT_OF_REACH == 4,
          "warning bits");
    CHECK(def.ema_decay == raw.ema_decay && def.ema_decay == 0.99f && def.replay_reinit_prob == 0.0f,
          "the model is θ's average and the noise follows the snapshot by default");
    // The image recipe: a conv energy of the given size, K = 1, the sampler clamped to [-1, 1].
    SanceConfig raw_image;
    CHECK(sance_config_init_image(&raw_image, SANCE_ABI_VERSION, 1, 28, 28) == SANCE_STATUS_OK, "config_init_image");
    sance::Config img = sance::Config::image(1, 28, 28);
    CHECK(img.arch == SANCE_ARCH_CONV && img.channels == 1 && img.height == 28 && img.width == 28 &&
              img.hidden_layers == raw_image.hidden_layers && img.langevin.step_size == raw_image.langevin.step_size &&
              img.noise_update_interval == 1 && img.langevin.clamp_min == -1.0f && img.langevin.clamp_max == 1.0f,
          "Config::image is sance_config_init_image");
    expect_error([] { sance::Config::image(1, 0, 28); }, SANCE_STATUS_INVALID_ARGUMENT, "image of height 0",
                 "config.height");
    sance::Langevin lang = sance::Langevin::defaults();
    CHECK(lang.steps == raw.langevin.steps && lang.step_size == raw.langevin.step_size, "Langevin::defaults() is the library's");
    static_assert(!std::is_default_constructible<sance::Langevin>::value,
                  "no sampler by accident: start from ebm.langevin() or Langevin::defaults()");

    // Construction errors carry the status.
    sance::Config bad = small();
    bad.learning_rate = -1;
    expect_error([&] { sance::Ebm m(bad); }, SANCE_STATUS_INVALID_ARGUMENT, "bad config", "config.learning_rate");
    bad = small();
    bad.ema_decay = 1.0f;
    expect_error([&] { sance::Ebm m(bad); }, SANCE_STATUS_INVALID_ARGUMENT, "ema_decay = 1", "config.ema_decay");
    bad = small();
    // 7 is outside SanceScaling's range, so it is written as C code could: as the 4 bytes of a uint32_t.
    static_assert(sizeof(SanceScaling) == sizeof(uint32_t), "C enums are 4 bytes");
    const uint32_t seven = 7;
    std::memcpy(&bad.scaling, &seven, sizeof seven);
    expect_error([&] { sance::Ebm m(bad); }, SANCE_STATUS_INVALID_ARGUMENT, "scaling = 7", "config.scaling");
    bad = small();
    bad.langevin.metropolis = 0;
    expect_error([&] { sance::Ebm m(bad); }, SANCE_STATUS_INVALID_ARGUMENT, "a target without MALA",
                 "config.langevin.target_acceptance");
    bad = small();
    bad.device = 64;
    expect_error([&] { sance::Ebm m(bad); }, SANCE_STATUS_DEVICE, "missing device", "CUDA device 64");

    sance::Ebm m(small());
    CHECK(static_cast<bool>(m) && m.raw() != nullptr, "handle");
    CHECK(m.sample_size() == 2, "sample size");
    CHECK(m.config().hidden_width == 16 && m.config().device == SANCE_DEVICE_CPU, "config");
    CHECK(m.device() == SANCE_DEVICE_CPU && m.device() == m.config().device, "device() is the resolved device");
    {
        // A world of one rank: registration's check passes, a step trains through the
        // reduction, and unregistering works.
        sance::Ebm solo(small());
        solo.set_allreduce(&world_of_one, nullptr, 0, 1);
        std::vector<float> b = sance::toy_dataset("8gaussians", 32, 3);
        CHECK(solo.train_step(b).step == 1, "a step through a world of one");
        bool threw = false;
        try {
            solo.set_allreduce(&world_of_one, nullptr, 1, 1);
        } catch (const sance::Error &e) {
            threw = e.status() == SANCE_STATUS_INVALID_ARGUMENT;
        }
        CHECK(threw, "rank 1 of a world of 1 is refused");
        solo.set_allreduce(nullptr, nullptr, 0, 1);
    }

    // Training, both overloads.
    std::vector<float> batch = sance::toy_dataset("8gaussians", 64, 1);
    sance::StepStats s = m.train_step(batch);
    CHECK(s.step == 1 && s.refreshed == 1 && std::isfinite(s.loss), "train_step(vector)");
    CHECK(s.step_size == small().langevin.step_size, "the first step uses the configured step: %g", s.step_size);
    CHECK(s.warnings == 0, "no warnings on 8gaussians: 0x%x", s.warnings);
    const float tuned = m.langevin().step_size; // tuned towards the target by the first step
    s = m.train_step(batch.data(), 64);
    CHECK(s.step == 2 && s.refreshed == 0, "train_step(ptr)");
    CHECK(s.acceptance_rate > 0.0f && s.acceptance_rate <= 1.0f, "MALA acceptance rate in (0, 1]");
    CHECK(std::isfinite(s.step_size) && s.step_size > 0.0f && s.step_size == tuned,
          "the second step uses the tuned step: %g vs %g", s.step_size, tuned);
    CHECK(s.warnings == 0, "no warnings on 8gaussians: 0x%x", s.warnings);

    sance::Progress p = m.progress();
    CHECK(p.step == 2 && p.refresh_count == 1 && p.replay_len == 64, "progress");
    CHECK(p.refresh_ess == 0.0 && p.refresh_nonfinite == 0, "no reweighting refresh yet: %g", p.refresh_ess);
    m.refresh_noise();
    CHECK(m.progress().refresh_count == 2 && m.progress().log_z_ratio == 0.0f, "refresh_noise");
    CHECK(m.progress().refresh_ess >= 1.0 && m.progress().refresh_ess <= 64.0 && m.progress().refresh_nonfinite == 0,
          "the refresh reweighted the population: ESS %g of 64", m.progress().refresh_ess);
    expect_error([&] { m.train_step(batch.data(), 0); }, SANCE_STATUS_INVALID_ARGUMENT, "batch 0", "batch");
    std::vector<float> odd(3, 0.0f);
    expect_error([&] { m.train_step(odd); }, SANCE_STATUS_INVALID_ARGUMENT, "odd vector", "whole number");
    std::vector<float> nan = batch;
    nan[5] = NAN;
    expect_error([&] { m.train_step(nan); }, SANCE_STATUS_NON_FINITE, "NaN data", "data[2][1]");
    // fit_noise is for GAUSSIAN noise only: on this SNAPSHOT model it throws and changes nothing.
    std::vector<float> e_before = m.energy(rings);
    sance::Progress p_before = m.progress();
    expect_error([&] { m.fit_noise(batch); }, SANCE_STATUS_INVALID_ARGUMENT, "fit_noise on SNAPSHOT",
                 "SANCE_NOISE_SNAPSHOT");
    CHECK(m.energy(rings) == e_before && m.progress().step == p_before.step &&
              m.progress().refresh_count == p_before.refresh_count && m.progress().log_z_ratio == p_before.log_z_ratio,
          "a refused fit_noise leaves the model unchanged");
    m.set_learning_rate(5e-4f);
    CHECK(m.config().learning_rate == 5e-4f, "set_learning_rate");
    expect_error([&] { m.set_learning_rate(0); }, SANCE_STATUS_INVALID_ARGUMENT, "lr 0", "learning_rate");

    // Sampling.
    std::vector<float> x = m.sample(10);
    CHECK(x.size() == 20 && finite(x), "sample(n)");
    {
        // The model's sampler, not the library's.
        sance::Config c7 = small();
        c7.langevin.steps = 7;
        c7.langevin.step_size = 0.002f;
        sance::Ebm m7(c7);
        sance::Langevin l7 = m7.langevin();
        CHECK(l7.steps == 7 && l7.step_size == 0.002f, "langevin() is the model's configured sampler");
    }
    sance::Langevin few = m.langevin();
    few.steps = 3;
    CHECK(m.sample(5, few).size() == 10, "sample(n, params)");
    few.step_size = -1;
    expect_error([&] { m.sample(5, few); }, SANCE_STATUS_INVALID_ARGUMENT, "bad params", "params.step_size");
    std::vector<float> chains = rings;
    m.sample_from(chains);
    CHECK(chains != rings && finite(chains), "sample_from(vector)");
    few.step_size = 0.01f;
    m.sample_from(chains, few);
    m.sample_from(chains.data(), 100);
    m.sample_from(chains.data(), 100, few);
    CHECK(finite(chains), "sample_from overloads");

    // MALA (the default) and unadjusted Langevin: per call, and as the training sampler.
    sance::Langevin mh = m.langevin();
    mh.steps = 5;
    CHECK(mh.metropolis == 1, "the model samples with MALA");
    std::vector<float> xm = m.sample(8, mh);
    CHECK(xm.size() == 16 && finite(xm), "sample with MALA");
    sance::Langevin ula = mh;
    ula.metropolis = 0;
    expect_error([&] { m.sample(5, ula); }, SANCE_STATUS_INVALID_ARGUMENT, "a target without MALA",
                 "params.target_acceptance");
    ula.target_acceptance = 0;
    std::vector<float> xu = m.sample(8, ula);
    CHECK(xu.size() == 16 && finite(xu), "sample with unadjusted Langevin");
    mh.noise_std = 0;
    expect_error([&] { m.sample(5, mh); }, SANCE_STATUS_INVALID_ARGUMENT, "MALA without noise", "metropolis");
    {
        sance::Config uc = small();
        uc.langevin.metropolis = 0;
        uc.langevin.target_acceptance = 0;
        uc.scaling = SANCE_SCALING_NONE;
        sance::Ebm unadjusted(uc);
        CHECK(unadjusted.config().langevin.metropolis == 0 && unadjusted.config().scaling == SANCE_SCALING_NONE,
              "metropolis and scaling in the config");
        sance::StepStats us = unadjusted.train_step(batch);
        CHECK(us.step == 1 && std::isfinite(us.loss), "unadjusted train_step");
        CHECK(us.acceptance_rate == 1.0f, "unadjusted Langevin accepts every move");
        us = unadjusted.train_step(batch);
        CHECK(us.step_size == uc.langevin.step_size && unadjusted.langevin().step_size == uc.langevin.step_size,
              "without a target the step stays fixed: %g", us.step_size);
    }

    // Classic NCE: a fitted Gaussian noise, on 16-D data.
    {
        sance::Config gc = small();
        gc.data_dim = 16;
        gc.noise = SANCE_NOISE_GAUSSIAN;
        sance::Ebm g(gc);
        CHECK(g.config().noise == SANCE_NOISE_GAUSSIAN && g.sample_size() == 16, "GAUSSIAN config");
        std::vector<float> data = sance::toy_dataset("gaussians16d", 64, 5);
        g.fit_noise(data);
        g.fit_noise(data.data(), 64);
        bool ok = true;
        for (int t = 0; t < 3; t++) {
            sance::StepStats gs = g.train_step(data);
            ok = ok && gs.step == static_cast<uint64_t>(t + 1) && std::isfinite(gs.loss) &&
                 gs.acceptance_rate == 1.0f && gs.langevin_grad_norm == 0.0f;
        }
        CHECK(ok, "GAUSSIAN train steps: no chains, nothing rejected");
        expect_error([&] { g.refresh_noise(); }, SANCE_STATUS_INVALID_ARGUMENT, "refresh_noise on GAUSSIAN",
                     "SANCE_NOISE_GAUSSIAN");
        expect_error([&] { g.fit_noise(data.data(), 1); }, SANCE_STATUS_INVALID_ARGUMENT, "fit_noise n = 1",
                     "at least 2");
        std::vector<float> odd16(20, 0.0f);
        expect_error([&] { g.fit_noise(odd16); }, SANCE_STATUS_INVALID_ARGUMENT, "fit_noise odd vector",
                     "whole number");
        CHECK(g.progress().step == 3, "refused calls leave the counters");
    }

    // Energies and gradients.
    std::vector<float> e = m.energy(rings);
    CHECK(e.size() == 100 && finite(e), "energy(vector)");
    CHECK(m.energy(rings.data(), 100) == e, "energy(ptr)");
    sance::EnergyGrad eg = m.energy_grad(rings);
    CHECK(eg.energy == e && eg.grad.size() == 200 && finite(eg.grad), "energy_grad(vector)");
    CHECK(m.energy_grad(rings.data(), 100).grad == eg.grad, "energy_grad(ptr)");
    // The read-only calls take a const model (sance_ebm_energy, _energy_grad, _log_z: const SanceEbm *).
    const sance::Ebm &cm = m;
    CHECK(cm.energy(rings) == e && cm.energy_grad(rings).grad == eg.grad, "energy on a const Ebm");

    // The normaliser: annealed importance sampling on a briefly trained 2-D model.
    {
        sance::Ebm z(small());
        for (int t = 0; t < 20; t++) z.train_step(sance::toy_dataset("8gaussians", 64, 100 + t));
        sance::Ais a = z.ais_defaults();
        CHECK(a.chains == 512 && a.temperatures == 1000 && a.steps == 1, "ais_defaults() counts for 2-D samples");
        CHECK(std::isfinite(a.step_size) && a.step_size > 0.0f, "ais_defaults() step size");
        CHECK(z.ais_defaults().step_size == a.step_size, "ais_defaults() is reproducible");
        SanceAis raw_ais{};
        CHECK(sance_ais_init(&raw_ais, z.raw()) == SANCE_STATUS_OK, "sance_ais_init");
        sance::Ais wrapped(raw_ais);
        CHECK(wrapped.chains == a.chains && wrapped.step_size == a.step_size, "Ais(SanceAis)");
        std::vector<float> ez = z.energy(rings);
        sance::LogZ lz = z.log_z();
        CHECK(std::isfinite(lz.log_z) && std::isfinite(lz.std_error) && lz.std_error > 0.0, "log_z()");
        sance::LogZ again = static_cast<const sance::Ebm &>(z).log_z();  // const: the model is unchanged
        CHECK(again.log_z == lz.log_z && again.std_error == lz.std_error, "log_z() twice: the same estimate");
        CHECK(z.log_z(a).log_z == lz.log_z, "log_z(ais_defaults()) is log_z()");
        CHECK(z.energy(rings) == ez && z.progress().step == 20, "log_z leaves the model unchanged");
        sance::Ais quick = a;
        quick.chains = 64;
        quick.temperatures = 100;
        sance::LogZ q = z.log_z(quick);
        CHECK(std::isfinite(q.log_z) && q.std_error > 0.0, "log_z(Ais)");
        sance::Ais bad = a;
        bad.chains = 1;
        expect_error([&] { z.log_z(bad); }, SANCE_STATUS_INVALID_ARGUMENT, "AIS with one chain", "params.chains");
    }

    // Drawing from the model (sance_ebm_draw): m is trained, so it keeps a population.
    {
        const size_t d = m.sample_size();
        sance::Sampling sd = m.sampling_defaults();
        sance::Langevin ml = m.langevin();
        CHECK(sd.sampler == SANCE_SAMPLER_AUTO && sd.target_ess == 0.5f && sd.max_temperatures == 1000,
              "sampling_defaults(): AUTO, target_ess 0.5, 1,000 temperatures");
        CHECK(sd.moves.steps == ml.steps && sd.moves.step_size == ml.step_size &&
                  sd.moves.noise_std == ml.noise_std && sd.moves.metropolis == ml.metropolis,
              "sampling_defaults(): the configured sampler as the moves");
        SanceSampling raw_sampling{};
        CHECK(sance_sampling_init(&raw_sampling, m.raw()) == SANCE_STATUS_OK, "sance_sampling_init");
        sance::Sampling wrapped(raw_sampling);
        CHECK(wrapped.sampler == sd.sampler && wrapped.moves.step_size == sd.moves.step_size &&
                  wrapped.target_ess == sd.target_ess && wrapped.max_temperatures == sd.max_temperatures,
              "Sampling(SanceSampling)");
        std::vector<float> e_before = m.energy(rings);
        sance::Progress p_before = m.progress();
        std::vector<float> xd = m.draw(10);
        CHECK(xd.size() == 10 * d && finite(xd), "draw(n)");
        sance::DrawReport r{};
        r.temperatures = 99;
        std::vector<float> xp = m.draw(12, nullptr, &r);
        CHECK(xp.size() == 12 * d && finite(xp), "draw(n, nullptr, &report)");
        CHECK(r.sampler == SANCE_SAMPLER_POPULATION, "AUTO on a trained model is POPULATION: %u", r.sampler);
        CHECK(r.temperatures == 0 && std::isnan(r.log_z) && std::isnan(r.log_z_std_error),
              "POPULATION: no temperatures, no log Z");
        // 1/sum(w^2) over what POPULATION weighted: the proposals of the population's density
        // estimate (4n clamped to [1024, 65536]: 1,024 at n = 12), or its 64 chains themselves.
        CHECK(std::isfinite(r.ess) && r.ess >= 1.0 - 1e-9 && r.ess <= 1024.0 + 1e-9,
              "POPULATION's effective sample size: %g", r.ess);
        // ANNEALED, explicitly: tempered SMC, with log Z as a by-product.
        sance::Sampling annealed = sd;
        annealed.sampler = SANCE_SAMPLER_ANNEALED;
        sance::DrawReport ar{};
        std::vector<float> xa = m.draw(64, annealed, &ar);
        CHECK(xa.size() == 64 * d && finite(xa), "draw(n, ANNEALED, &report)");
        CHECK(ar.sampler == SANCE_SAMPLER_ANNEALED, "the report names ANNEALED: %u", ar.sampler);
        CHECK(ar.temperatures >= 1 && ar.temperatures <= annealed.max_temperatures, "ANNEALED's stages: %u",
              ar.temperatures);
        CHECK(std::isfinite(ar.log_z) && std::isfinite(ar.log_z_std_error) && ar.log_z_std_error >= 0.0,
              "ANNEALED's log Z: %g +- %g", ar.log_z, ar.log_z_std_error);
        CHECK(std::isfinite(ar.ess) && std::isfinite(ar.acceptance) && ar.acceptance > 0.0 && ar.acceptance <= 1.0,
              "ANNEALED's ess %g and MALA acceptance %g", ar.ess, ar.acceptance);
        // FRESH: the old sample(n, params); nothing is weighted.
        sance::Sampling fresh = sd;
        fresh.sampler = SANCE_SAMPLER_FRESH;
        sance::DrawReport fr{};
        std::vector<float> xf = m.draw(8, &fresh, &fr);
        CHECK(xf.size() == 8 * d && finite(xf), "draw(n, &FRESH, &report)");
        CHECK(fr.sampler == SANCE_SAMPLER_FRESH && fr.temperatures == 0 && std::isnan(fr.ess) && std::isnan(fr.log_z),
              "FRESH's report: no ess, no log Z");
        CHECK(m.energy(rings) == e_before && m.progress().step == p_before.step &&
                  m.progress().refresh_count == p_before.refresh_count && m.progress().replay_len == p_before.replay_len,
              "drawing leaves the model unchanged");
        // A bad field throws, names it, and leaves the report as it was.
        sance::Sampling bad = sd;
        bad.target_ess = 1.5f;
        sance::DrawReport untouched{};
        untouched.temperatures = 77;
        expect_error([&] { m.draw(4, bad, &untouched); }, SANCE_STATUS_INVALID_ARGUMENT, "target_ess 1.5",
                     "params.target_ess");
        CHECK(untouched.temperatures == 77, "a refused draw writes no report");
        bad = sd;
        bad.sampler = 7;
        expect_error([&] { m.draw(4, &bad); }, SANCE_STATUS_INVALID_ARGUMENT, "sampler 7", "params.sampler");
        // The same model gives the same draws: sample(n) is draw(n), sample(n, params) is FRESH
        // with params as the moves (clones share the original's draw count).
        sance::Ebm c1 = m.clone(), c2 = m.clone();
        CHECK(c1.sample(6) == c2.draw(6), "sample(n) is draw(n)");
        sance::Langevin few_moves = m.langevin();
        few_moves.steps = 3;
        sance::Sampling fresh_few = sd;
        fresh_few.sampler = SANCE_SAMPLER_FRESH;
        fresh_few.moves = few_moves;
        CHECK(c1.sample(6, few_moves) == c2.draw(6, fresh_few), "sample(n, params) is draw(n, FRESH with params)");

        // An untrained model has no population: AUTO is ANNEALED, POPULATION is refused.
        sance::Ebm untrained(small());
        sance::Sampling population = untrained.sampling_defaults();
        population.sampler = SANCE_SAMPLER_POPULATION;
        expect_error([&] { untrained.draw(4, population); }, SANCE_STATUS_INVALID_ARGUMENT,
                     "POPULATION on an untrained model", "no population");
        sance::Sampling quick = untrained.sampling_defaults();
        quick.moves.steps = 2;
        sance::DrawReport ur{};
        std::vector<float> xu = untrained.draw(16, quick, &ur);
        CHECK(xu.size() == 16 * d && finite(xu), "draw on an untrained model");
        CHECK(ur.sampler == SANCE_SAMPLER_ANNEALED && ur.temperatures >= 1 && std::isfinite(ur.log_z),
              "AUTO on an untrained model is ANNEALED: %u", ur.sampler);
        CHECK(untrained.progress().step == 0 && untrained.progress().replay_len == 0,
              "drawing does not train an untrained model");
    }

    // Checkpoints.
    char dir[] = "/tmp/sance-cpp-XXXXXX";
    CHECK(mkdtemp(dir) != nullptr, "mkdtemp");
    std::string path = std::string(dir) + "/m.safetensors";
    m.save(path);
    sance::Ebm back = sance::Ebm::load(path, SANCE_DEVICE_CPU);
    CHECK(back.energy(rings) == e, "load gives the same model");
    CHECK(back.progress().step == m.progress().step, "load keeps the counters");
    expect_error([&] { sance::Ebm::load(std::string(dir) + "/absent"); }, SANCE_STATUS_IO, "missing file", "absent");
    expect_error([&] { m.save(dir); }, SANCE_STATUS_IO, "save to a directory", "directory");
    std::remove(path.c_str());
    rmdir(dir);

    // clone(): an independent copy that continues exactly as the original would (two clones
    // stand for "the original, continued", so that the original stays as it is for below).
    {
        sance::Ebm twin = m.clone(), other_twin = m.clone();
        CHECK(twin.energy(rings) == e && twin.progress().step == m.progress().step, "clone() is the same model");
        std::vector<float> batch = sance::toy_dataset("rings", 64, 99);
        sance::StepStats a = twin.train_step(batch);
        CHECK(m.energy(rings) == e && m.progress().step + 1 == twin.progress().step,
              "training the clone leaves the original as it was");
        sance::StepStats b = other_twin.train_step(batch);
        CHECK(a.loss == b.loss && twin.energy(rings) == other_twin.energy(rings), "clones train exactly alike");
        CHECK(twin.sample(6) == other_twin.sample(6), "a clone's random stream is the original's");
        CHECK(twin.draw(6) == other_twin.draw(6), "a clone draws as the original would");
        sance::Ebm gone(std::move(twin));
        expect_error([&] { (void)twin.clone(); }, SANCE_STATUS_NULL_POINTER, "clone of a moved-from Ebm", "ebm is NULL");
    }

    // Move semantics: the moved-from object is empty, safe to destroy, and throws if used.
    sance::Ebm moved(std::move(back));
    CHECK(!back && moved, "move construction transfers the handle");
    expect_error([&] { back.energy(rings); }, SANCE_STATUS_NULL_POINTER, "moved-from use", "ebm is NULL");
    sance::Ebm other(small());
    other = std::move(moved); // the old `other` handle is freed here
    CHECK(other && !moved && other.energy(rings) == e, "move assignment");
    SanceEbm *raw_handle = other.release();
    CHECK(!other && raw_handle != nullptr, "release");
    sance::Ebm adopted = sance::Ebm::adopt(raw_handle);
    CHECK(adopted.energy(rings) == e, "adopt");

    return check_summary();
}
