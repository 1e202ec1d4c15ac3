// The double-well simulation shared by the examples (double_well.cpp, double_well_mpi.cpp):
// overdamped Langevin walkers in U(x, y) = h (x² − 1)² + y² / 2 at kT = 1, 2-D histograms of
// where they go, and the total variation distance between two histograms.
#ifndef SANCE_EXAMPLES_DOUBLE_WELL_HPP
#define SANCE_EXAMPLES_DOUBLE_WELL_HPP

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace double_well {

constexpr double kBarrier = 2.5; // h, in units of kT
constexpr double kDt = 2e-3;
constexpr int kWalkers = 256;    // per simulation
constexpr int kTrainWalkers = 2048; // the training simulation, sampled 256 at a time

struct Histogram {
    static constexpr int nx = 40, ny = 40;
    static constexpr double x0 = -2.2, x1 = 2.2, y0 = -3.0, y1 = 3.0;
    std::vector<double> count = std::vector<double>(nx * ny, 0.0);
    double total = 0;
    void add(double x, double y) {
        int i = static_cast<int>((x - x0) / (x1 - x0) * nx), j = static_cast<int>((y - y0) / (y1 - y0) * ny);
        if (i >= 0 && i < nx && j >= 0 && j < ny) count[i * ny + j] += 1;
        total += 1; // mass outside the window counts as a difference too
    }
};

// Fraction of the recorded configurations in the right-hand well (x > 0).
inline double right_well(const Histogram &h) {
    double r = 0;
    for (int i = Histogram::nx / 2; i < Histogram::nx; i++)
        for (int j = 0; j < Histogram::ny; j++) r += h.count[i * Histogram::ny + j];
    return r / h.total;
}

inline double total_variation(const Histogram &a, const Histogram &b) {
    double d = 0, in_a = 0, in_b = 0;
    for (size_t k = 0; k < a.count.size(); k++) {
        d += std::fabs(a.count[k] / a.total - b.count[k] / b.total);
        in_a += a.count[k] / a.total;
        in_b += b.count[k] / b.total;
    }
    return 0.5 * (d + (1 - in_a) + (1 - in_b));
}

// The true force −∇U.
inline void true_force(const std::vector<float> &x, std::vector<float> &f) {
    for (size_t w = 0; w < x.size() / 2; w++) {
        double px = x[2 * w], py = x[2 * w + 1];
        f[2 * w] = static_cast<float>(-4.0 * kBarrier * px * (px * px - 1.0));
        f[2 * w + 1] = static_cast<float>(-py);
    }
}

inline void step(std::vector<float> &x, const std::vector<float> &force, std::mt19937_64 &rng) {
    std::normal_distribution<double> xi(0.0, 1.0);
    const double s = std::sqrt(2.0 * kDt);
    for (size_t k = 0; k < x.size(); k++) x[k] += static_cast<float>(force[k] * kDt + s * xi(rng));
}

// Runs a simulation for `steps` steps, recording every 10th configuration after `burn_in`.
template <class Force>
Histogram simulate(Force force, std::vector<float> x, int burn_in, int steps, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<float> f(x.size());
    Histogram h;
    for (int t = 0; t < burn_in + steps; t++) {
        force(x, f);
        step(x, f, rng);
        if (t >= burn_in && t % 10 == 0)
            for (size_t w = 0; w < x.size() / 2; w++) h.add(x[2 * w], x[2 * w + 1]);
    }
    return h;
}

inline std::vector<float> start(uint64_t seed, int walkers = kWalkers) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1.5, 1.5);
    std::vector<float> x(2 * walkers);
    for (auto &v : x) v = static_cast<float>(u(rng));
    return x;
}

} // namespace double_well

#endif
