// sance/eval.hpp: a header-only C++17 wrapper of libsance_eval (include/sance_eval.h), the
// libtorch-free evaluator of trained sance MLP energies. Link -lsance_eval (CMake target
// sance::eval); needs neither libtorch nor sance.h, and may be included beside sance.hpp.
//
// - sance::Eval owns a model (move-only, freed by its destructor). It is immutable: one Eval may
//   be used by any number of threads at once (every member function is const).
// - Every failing call throws sance::EvalError, which carries the SanceStatus and the library's
//   message (sance_eval_last_error).
// - Arrays are float, row-major, n x dim(), as in the C API; the force is minus the gradient.
#ifndef SANCE_EVAL_HPP
#define SANCE_EVAL_HPP

#include "sance_eval.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sance {

/// A failed libsance_eval call: the status and the library's message.
class EvalError : public std::runtime_error {
  public:
    EvalError(SanceStatus status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    SanceStatus status() const noexcept { return status_; }

  private:
    SanceStatus status_;
};

/// Energies and gradients of n points (grad is n x dim).
struct EvalResult {
    std::vector<float> energy;
    std::vector<float> grad;
};

/// A trained MLP energy read from a sance checkpoint (sance_eval_load).
class Eval {
  public:
    /// Reads the checkpoint at `path`; throws EvalError (SANCE_STATUS_IO, _CORRUPT, or
    /// _INVALID_ARGUMENT for a convolutional energy).
    explicit Eval(const std::string &path) {
        SanceEval *p = nullptr;
        check(sance_eval_load(path.c_str(), &p));
        m_.reset(p);
    }

    /// Floats per point.
    std::size_t dim() const { return sance_eval_dim(get()); }

    /// E and ∇E of n points: x is n x dim(); energy (n) and grad (n x dim()) may be nullptr.
    void energy_grad(const float *x, std::size_t n, float *energy, float *grad) const {
        check(sance_eval_energy_grad(get(), x, n, energy, grad));
    }

    /// E(x) of one point, its gradient written to grad (dim() floats): an integrator's force
    /// call, −grad being the force.
    float energy_grad(const float *x, float *grad) const {
        float e = 0.0f;
        check(sance_eval_energy_grad(get(), x, 1, &e, grad));
        return e;
    }

    /// E and ∇E of the points in x (a multiple of dim() floats).
    EvalResult energy_grad(const std::vector<float> &x) const {
        std::size_t n = points(x);
        EvalResult r{std::vector<float>(n), std::vector<float>(x.size())};
        energy_grad(x.data(), n, r.energy.data(), r.grad.data());
        return r;
    }

    /// E of the points in x.
    std::vector<float> energy(const std::vector<float> &x) const {
        std::vector<float> e(points(x));
        energy_grad(x.data(), e.size(), e.data(), nullptr);
        return e;
    }

    /// The C handle, still owned by this object.
    const SanceEval *get() const {
        if (!m_) throw EvalError(SANCE_STATUS_NULL_POINTER, "sance::Eval: used after being moved from");
        return m_.get();
    }

  private:
    struct Deleter {
        void operator()(SanceEval *p) const noexcept { sance_eval_free(p); }
    };
    std::unique_ptr<SanceEval, Deleter> m_;

    static void check(SanceStatus s) {
        if (s != SANCE_STATUS_OK) throw EvalError(s, sance_eval_last_error());
    }
    std::size_t points(const std::vector<float> &x) const {
        std::size_t d = dim();
        if (x.empty() || x.size() % d != 0)
            throw EvalError(SANCE_STATUS_INVALID_ARGUMENT,
                            "sance::Eval: x holds " + std::to_string(x.size()) +
                                " floats, not a positive multiple of dim() = " + std::to_string(d));
        return x.size() / d;
    }
};

} // namespace sance

#endif // SANCE_EVAL_HPP
