// sance.hpp: a header-only C++17 wrapper of the sance C API (include/sance.h).
//
// - sance::Config starts from the library's defaults and exposes every field of SanceConfig as
//   plain members; sance::Langevin (SanceLangevin) starts from a model's configured sampler,
//   Ebm::langevin(), or explicitly from the library's, Langevin::defaults(); sance::Ais (SanceAis) starts from a model's
//   defaults, Ebm::ais_defaults(); sance::Sampling (SanceSampling, the settings of Ebm::draw) from
//   Ebm::sampling_defaults().
// - sance::Ebm owns a handle (move-only, freed by its destructor); every failing call throws
//   sance::Error, which carries the SanceStatus and the library's message.
// - Arrays are float, row-major, n x sample_size(), as in the C API.
// - The enums (SanceArch, SanceActivation, SanceConvHead, SanceInit, SanceNoise, SanceScaling,
//   SanceSampler, SanceStatus) and macros (SANCE_WARNING_* included) are the C ones from sance.h,
//   e.g. `cfg.noise = SANCE_NOISE_GAUSSIAN`, `cfg.scaling = SANCE_SCALING_NONE`,
//   `stats.warnings & SANCE_WARNING_COARSE_STEP`, `params.sampler = SANCE_SAMPLER_ANNEALED`.
#ifndef SANCE_HPP
#define SANCE_HPP

#include "sance.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sance {

/// A failed call: the status and the library's message (sance_last_error at the time).
class Error : public std::runtime_error {
  public:
    Error(SanceStatus status, const std::string &message)
        : std::runtime_error(std::string(sance_status_name(static_cast<int32_t>(status))) + ": " + message),
          status_(status) {}
    SanceStatus status() const noexcept { return status_; }

  private:
    SanceStatus status_;
};

namespace detail {
inline void check(SanceStatus s) {
    if (s != SANCE_STATUS_OK) throw Error(s, sance_last_error());
}
struct Deleter {
    void operator()(SanceEbm *p) const noexcept { sance_ebm_free(p); }
};
/// Throws unless the loaded libsance has the ABI of the sance.h this code was compiled with.
/// Asked once (a function-local static is initialised once, thread-safely), when the first
/// handle is made.
inline void check_abi() {
    static const uint32_t loaded = sance_abi_version();
    if (loaded != SANCE_ABI_VERSION) {
        throw Error(SANCE_STATUS_INVALID_ARGUMENT,
                    "the loaded libsance is ABI version " + std::to_string(loaded) +
                        ", but this program was compiled against sance.h of ABI version " +
                        std::to_string(SANCE_ABI_VERSION) + "; rebuild it against the library's header");
    }
}
} // namespace detail

/// Model and training settings; starts from the library's defaults
/// (sance_config_init(this, SANCE_ABI_VERSION), which throws on an ABI mismatch).
struct Config : SanceConfig {
    Config() : SanceConfig() { detail::check(sance_config_init(this, SANCE_ABI_VERSION)); }
    explicit Config(const SanceConfig &c) : SanceConfig(c) {}
    /// The image recipe for channels × height × width images with pixels in [-1, 1]
    /// (sance_config_init_image); throws sance::Error on a size out of range.
    static Config image(uint32_t channels, uint32_t height, uint32_t width) {
        SanceConfig c;
        detail::check(sance_config_init_image(&c, SANCE_ABI_VERSION, channels, height, width));
        return Config(c);
    }
};

/// Langevin sampler settings. There is no default constructor, so that a sampler is never the
/// library's by accident: start from the model's, `ebm.langevin()` (the moves `sample(n)` and
/// `draw(n)` use), and change fields, or ask for the library's defaults by name,
/// `Langevin::defaults()` (MALA, `metropolis = 1`, whose step training tunes towards
/// `target_acceptance = 0.6`; unadjusted Langevin needs `metropolis = 0` and
/// `target_acceptance = 0`).
struct Langevin : SanceLangevin {
    explicit Langevin(const SanceLangevin &l) : SanceLangevin(l) {}
    /// The library's default sampler (the default config's).
    static Langevin defaults() { return Langevin(Config().langevin); }
};

/// Annealed-importance-sampling settings for Ebm::log_z. Its defaults depend on the model (a
/// pilot run picks step_size), so there is no default constructor: start from
/// Ebm::ais_defaults() and change fields, or wrap a SanceAis.
struct Ais : SanceAis {
    explicit Ais(const SanceAis &a) : SanceAis(a) {}
};

/// Settings for Ebm::draw: the sampler (`sampler`, a SanceSampler: SANCE_SAMPLER_AUTO, FRESH,
/// POPULATION or ANNEALED), the moves it applies (`moves`, a SanceLangevin) and ANNEALED's
/// `target_ess` and `max_temperatures`. Its defaults depend on the model (the moves are its
/// configured sampler), so there is no default constructor: start from
/// Ebm::sampling_defaults() and change fields, or wrap a SanceSampling.
struct Sampling : SanceSampling {
    explicit Sampling(const SanceSampling &s) : SanceSampling(s) {}
};

/// What one training step did: loss, accuracy, energies, c, gradient norms, the acceptance rate,
/// the Langevin step the noise chains used (`step_size`) and `warnings` (SANCE_WARNING_* bits).
using StepStats = SanceStepStats;
using Progress = SanceProgress;
/// What one Ebm::draw did: the sampler that ran (`sampler`, AUTO resolved), ANNEALED's stages
/// (`temperatures`), the effective sample size (`ess`), the moves' mean acceptance
/// (`acceptance`) and ANNEALED's log Z estimate (`log_z`, `log_z_std_error`); NaN where a field
/// does not apply.
using DrawReport = SanceDrawReport;

/// An estimate of log Z (Ebm::log_z) and its standard error.
struct LogZ {
    double log_z;
    double std_error;
};

/// Energies and input gradients of n samples (grad is n x sample_size).
struct EnergyGrad {
    std::vector<float> energy;
    std::vector<float> grad;
};

/// An energy-based model and its trainer. Move-only; a moved-from Ebm may only be destroyed or
/// assigned to (other calls throw Error with SANCE_STATUS_NULL_POINTER).
class Ebm {
  public:
    explicit Ebm(const Config &config) {
        detail::check_abi();
        SanceEbm *p = nullptr;
        detail::check(sance_ebm_new(&config, &p));
        h_.reset(p);
    }

    /// Loads a checkpoint written by save() onto `device` (-1 CPU, k CUDA k, SANCE_DEVICE_AUTO).
    static Ebm load(const std::string &path, int device = SANCE_DEVICE_AUTO) {
        detail::check_abi();
        SanceEbm *p = nullptr;
        detail::check(sance_ebm_load(path.c_str(), device, &p));
        return Ebm(p);
    }

    /// A deep copy (sance_ebm_clone), on the same device: it trains and samples exactly as this
    /// model would from here. The allreduce hook is not copied.
    Ebm clone() const {
        SanceEbm *p = nullptr;
        detail::check(sance_ebm_clone(h_.get(), &p));
        return Ebm(p);
    }

    /// Takes ownership of a handle from the C API.
    static Ebm adopt(SanceEbm *handle) { return Ebm(handle); }

    StepStats train_step(const float *data, size_t batch) {
        StepStats s{};
        detail::check(sance_ebm_train_step(h_.get(), data, batch, &s));
        return s;
    }
    /// `data.size()` must be a multiple of sample_size().
    StepStats train_step(const std::vector<float> &data) { return train_step(data.data(), rows(data.size())); }

    /// Refreshes the noise snapshot now; throws with SANCE_NOISE_GAUSSIAN (there is none).
    void refresh_noise() { detail::check(sance_ebm_refresh_noise(h_.get())); }

    /// Classic NCE (config.noise = SANCE_NOISE_GAUSSIAN): fits the noise Gaussian to `n` >= 2
    /// samples (n x sample_size). Throws SANCE_STATUS_INVALID_ARGUMENT, changing nothing, with
    /// SANCE_NOISE_SNAPSHOT or for n < 2.
    void fit_noise(const float *data, size_t n) { detail::check(sance_ebm_fit_noise(h_.get(), data, n)); }
    /// `data.size()` must be a multiple of sample_size().
    void fit_noise(const std::vector<float> &data) { fit_noise(data.data(), rows(data.size())); }

    /// `n` draws of the model's density: the same as draw(n) (sance_ebm_sample with NULL).
    std::vector<float> sample(size_t n) { return sample_impl(n, nullptr); }
    /// `n` fresh chains from `params`' init distribution through its Langevin steps
    /// (SANCE_SAMPLER_FRESH with `params` as the moves; sance 0.4's sample).
    std::vector<float> sample(size_t n, const Langevin &params) { return sample_impl(n, &params); }

    /// Settings for draw() suited to this model (sance_sampling_init): SANCE_SAMPLER_AUTO, the
    /// configured sampler as the moves, target_ess 0.5, at most 1,000 temperatures. The model is
    /// unchanged.
    Sampling sampling_defaults() const {
        SanceSampling s{};
        detail::check(sance_sampling_init(&s, h_.get()));
        return Sampling(s);
    }

    /// `n` draws of the model's density (n x sample_size floats, in random order) by the sampler
    /// `params` names (nullptr: sampling_defaults(), whose AUTO is POPULATION for a model with a
    /// population, i.e. a trained one, else ANNEALED once and POPULATION on its kept particles
    /// until the model changes); what it did goes to `*report` unless that
    /// is nullptr. Draws use their own stream: they never change training, and the same model
    /// gives the same draws. Throws SANCE_STATUS_INVALID_ARGUMENT for a field of `params` out of
    /// range (the message names it) or POPULATION on a model with no population yet,
    /// SANCE_STATUS_NON_FINITE when the weights are not finite; `*report` is then unchanged.
    std::vector<float> draw(size_t n, const SanceSampling *params = nullptr, SanceDrawReport *report = nullptr) {
        std::vector<float> out(floats(n));
        detail::check(sance_ebm_draw(h_.get(), n, params, out.data(), report));
        return out;
    }
    std::vector<float> draw(size_t n, const Sampling &params, DrawReport *report = nullptr) {
        return draw(n, static_cast<const SanceSampling *>(&params), report);
    }

    /// Runs Langevin chains in place from `chains` (n x sample_size).
    void sample_from(float *chains, size_t n) { detail::check(sance_ebm_sample_from(h_.get(), chains, n, nullptr)); }
    void sample_from(float *chains, size_t n, const Langevin &params) {
        detail::check(sance_ebm_sample_from(h_.get(), chains, n, &params));
    }
    void sample_from(std::vector<float> &chains) { sample_from(chains.data(), rows(chains.size())); }
    void sample_from(std::vector<float> &chains, const Langevin &params) {
        sample_from(chains.data(), rows(chains.size()), params);
    }

    std::vector<float> energy(const float *x, size_t n) const {
        std::vector<float> e(n);
        detail::check(sance_ebm_energy(h_.get(), x, n, e.data()));
        return e;
    }
    std::vector<float> energy(const std::vector<float> &x) const { return energy(x.data(), rows(x.size())); }

    EnergyGrad energy_grad(const float *x, size_t n) const {
        EnergyGrad r;
        r.energy.resize(n);
        r.grad.resize(n * sample_size());
        detail::check(sance_ebm_energy_grad(h_.get(), x, n, r.energy.data(), r.grad.data()));
        return r;
    }
    EnergyGrad energy_grad(const std::vector<float> &x) const { return energy_grad(x.data(), rows(x.size())); }

    /// Settings for log_z() suited to this model (sance_ais_init: 512 chains, 128 above 64 floats
    /// per sample; 1,000 temperatures; one MALA step each; a step size from a short pilot run).
    /// The model is unchanged.
    Ais ais_defaults() const {
        SanceAis a{};
        detail::check(sance_ais_init(&a, h_.get()));
        return Ais(a);
    }

    /// log Z = log of the integral of exp(-E(x)) dx, the log-normaliser of the model's density
    /// (c is not part of it), by annealed importance sampling, with its standard error: a
    /// sample's normalised log-likelihood is -E(x) - log Z. Without `params`, ais_defaults().
    /// The same model gives the same estimate, and the model is unchanged. Throws
    /// SANCE_STATUS_INVALID_ARGUMENT for a field of `params` out of range (the message names
    /// it, e.g. "params.chains"), SANCE_STATUS_NON_FINITE when the estimate overflows.
    LogZ log_z() const { return log_z_impl(nullptr); }
    LogZ log_z(const Ais &params) const { return log_z_impl(&params); }

    /// Writes a checkpoint atomically (see docs/checkpoints.md).
    void save(const std::string &path) const { detail::check(sance_ebm_save(h_.get(), path.c_str())); }

    void set_learning_rate(float learning_rate) {
        detail::check(sance_ebm_set_learning_rate(h_.get(), learning_rate));
    }

    size_t sample_size() const {
        size_t n = sance_ebm_sample_size(h_.get());
        if (n == 0) throw Error(SANCE_STATUS_NULL_POINTER, sance_last_error());
        return n;
    }

    Config config() const {
        SanceConfig c;
        detail::check(sance_ebm_config(h_.get(), &c));
        return Config(c);
    }

    /// The sampler this model was configured with (config().langevin): what sample_from(chains)
    /// uses, the moves of sample(n) and draw(n), and where to start for one call with a few fields
    /// changed.
    Langevin langevin() const { return Langevin(config().langevin); }

    /// Data-parallel training through the host's reduction (collective; docs/mpi.md).
    /// `fn` sums a float buffer over all ranks in place and returns 0; nullptr unregisters.
    /// `sance/mpi.hpp` adapts an MPI communicator.
    void set_allreduce(SanceAllreduceFn fn, void *user, uint32_t rank, uint32_t world_size) {
        detail::check(sance_ebm_set_allreduce(h_.get(), fn, user, rank, world_size));
    }

    /// The device the model runs on: -1 the CPU, else the CUDA index (SANCE_DEVICE_AUTO
    /// resolved: the CPU when libtorch sees no GPU).
    int32_t device() const {
        int32_t d = 0;
        detail::check(sance_ebm_device(h_.get(), &d));
        return d;
    }

    Progress progress() const {
        Progress p{};
        detail::check(sance_ebm_progress(h_.get(), &p));
        return p;
    }

    /// The C handle, still owned by this object.
    SanceEbm *raw() const noexcept { return h_.get(); }
    /// Gives up ownership of the C handle.
    SanceEbm *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return static_cast<bool>(h_); }

  private:
    explicit Ebm(SanceEbm *p) : h_(p) {}

    size_t rows(size_t floats) const {
        size_t d = sample_size();
        if (floats % d != 0)
            throw Error(SANCE_STATUS_INVALID_ARGUMENT, "vector of " + std::to_string(floats) +
                                                           " floats is not a whole number of samples of " +
                                                           std::to_string(d));
        return floats / d;
    }

    /// Floats in `n` samples; throws SANCE_STATUS_INVALID_ARGUMENT when the count overflows.
    size_t floats(size_t n) const {
        size_t d = sample_size();
        if (n > SIZE_MAX / d)
            throw Error(SANCE_STATUS_INVALID_ARGUMENT, "n = " + std::to_string(n) + " samples of " +
                                                           std::to_string(d) + " floats overflow size_t");
        return n * d;
    }

    std::vector<float> sample_impl(size_t n, const SanceLangevin *params) {
        std::vector<float> out(floats(n));
        detail::check(sance_ebm_sample(h_.get(), n, params, out.data()));
        return out;
    }

    LogZ log_z_impl(const SanceAis *params) const {
        LogZ r{};
        detail::check(sance_ebm_log_z(h_.get(), params, &r.log_z, &r.std_error));
        return r;
    }

    std::unique_ptr<SanceEbm, detail::Deleter> h_;
};

/// "sance X.Y.Z (tch ..., libtorch ...)".
inline std::string version() { return sance_version(); }
inline uint32_t abi_version() { return sance_abi_version(); }
inline int cuda_device_count() { return sance_cuda_device_count(); }
inline std::string status_name(SanceStatus s) { return sance_status_name(static_cast<int32_t>(s)); }
/// The last error message of this thread.
inline std::string last_error() { return sance_last_error(); }

/// Floats per sample of a built-in toy dataset: 2 for the 2-D sets, 16 for gaussians16d.
/// Throws SANCE_STATUS_INVALID_ARGUMENT for an unknown name (it never returns 0).
inline size_t toy_dataset_dim(const std::string &name) {
    size_t d = sance_toy_dataset_dim(name.c_str());
    if (d == 0) throw Error(SANCE_STATUS_INVALID_ARGUMENT, sance_last_error());
    return d;
}

/// n samples (n x toy_dataset_dim(name) floats, row-major) of a built-in toy dataset: the 2-D
/// 8gaussians, rings, checkerboard, 2spirals, pinwheel, or the 16-D gaussians16d.
inline std::vector<float> toy_dataset(const std::string &name, size_t n, uint64_t seed) {
    size_t d = toy_dataset_dim(name);
    if (n > SIZE_MAX / d)
        throw Error(SANCE_STATUS_INVALID_ARGUMENT, "n = " + std::to_string(n) + " samples of " +
                                                       std::to_string(d) + " floats overflow size_t");
    std::vector<float> out(d * n);
    detail::check(sance_toy_dataset(name.c_str(), n, seed, out.data()));
    return out;
}

} // namespace sance

#endif // SANCE_HPP
