// Coupling sance to a simulation: a learned force field.
//
// 1. A reference simulation: 256 walkers of overdamped Langevin dynamics in a 2-D double well,
//      U(x, y) = h (x² − 1)² + y² / 2,   dx = −∇U dt + √(2 kT dt) ξ,   kT = 1,
//    whose configurations train an EBM online, one batch per few simulation steps.
// 2. The trained energy E_θ ≈ U/kT + const then drives a second simulation as a learned force
//    field, dx = −kT ∇E_θ dt + √(2 kT dt) ξ, which never sees U.
// 3. The program compares the two simulations' long-run distributions with the total
//    variation distance between 2-D histograms, next to the distance between two independent
//    runs of the reference simulation (the sampling-noise floor).
//
// Build and run: see examples/cpp/README.md. Exits non-zero if the learned simulation is far
// from the reference (TV above 0.12).
#include <sance/sance.hpp>

#include "double_well.hpp"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace double_well;

int main() {
    std::printf("%s\n", sance::version().c_str());
    sance::Ebm ebm(model_config());

    // 1. Online training: the simulation advances 5 steps between training steps, and each
    //    training batch is 256 of its walkers picked at random.
    const int train_steps = 3000, batch = 256;
    std::mt19937_64 rng(7);
    std::vector<float> x = start(3, kTrainWalkers), f(x.size()), b(2 * batch);
    std::uniform_int_distribution<int> pick(0, kTrainWalkers - 1);
    for (int t = 0; t < 2000; t++) { true_force(x, f); step(x, f, rng); } // equilibrate
    sance::StepStats s{};
    for (int t = 0; t < train_steps; t++) {
        for (int k = 0; k < 5; k++) { true_force(x, f); step(x, f, rng); }
        for (int i = 0; i < batch; i++) {
            int w = pick(rng);
            b[2 * i] = x[2 * w];
            b[2 * i + 1] = x[2 * w + 1];
        }
        s = ebm.train_step(b);
        if ((t + 1) % 1000 == 0)
            std::printf("train step %d: loss %.4f, accuracy %.3f, E(data) %.3f\n", t + 1, s.loss, s.accuracy, s.data_energy);
    }

    // 2. The learned force field −kT ∇E_θ drives a second simulation.
    return learned_force_matches(ebm) ? 0 : 1;
}
