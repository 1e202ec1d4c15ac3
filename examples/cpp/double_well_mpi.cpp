// The double-well example (double_well.cpp) trained data-parallel over MPI: the training
// simulation's 2,048 walkers are split over the ranks, each rank advances only its own share
// and trains the shared EBM on 256 / W of its own walkers per step; sance averages the
// gradients, so every rank applies the same update (docs/mpi.md). Rank 0 then drives the learned
// force field against the reference simulation and compares the two distributions, as the
// single-process example does.
//
// Build and run: see examples/cpp/README.md (mpicxx, then mpirun -np 2 or 4). Exits non-zero
// on every rank if the learned simulation is far from the reference (TV above 0.12).
#include <sance/mpi.hpp>

#include "double_well.hpp"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace double_well;

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank = 0, world = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    const int batch = 256;
    if (kTrainWalkers % world != 0 || batch % world != 0) {
        if (rank == 0) std::printf("the number of ranks must divide %d and %d\n", kTrainWalkers, batch);
        MPI_Finalize();
        return 2;
    }
    if (rank == 0) std::printf("%s, %d rank(s)\n", sance::version().c_str(), world);

    // The same model on every rank (same config and seed), as double_well.cpp configures it.
    sance::Ebm ebm(model_config());
    sance::mpi::attach(ebm, comm);

    // 1. Online training, each rank on its share of the walkers.
    const int train_steps = 3000, walkers = kTrainWalkers / world, mine = batch / world;
    std::mt19937_64 rng(7 + 1000 * static_cast<uint64_t>(rank));
    std::vector<float> x = start(3 + 1000 * static_cast<uint64_t>(rank), walkers), f(x.size()), b(2 * mine);
    std::uniform_int_distribution<int> pick(0, walkers - 1);
    for (int t = 0; t < 2000; t++) { true_force(x, f); step(x, f, rng); } // equilibrate
    sance::StepStats s{};
    for (int t = 0; t < train_steps; t++) {
        for (int k = 0; k < 5; k++) { true_force(x, f); step(x, f, rng); }
        for (int i = 0; i < mine; i++) {
            int w = pick(rng);
            b[2 * i] = x[2 * w];
            b[2 * i + 1] = x[2 * w + 1];
        }
        s = ebm.train_step(b); // the loss and accuracy reported are averages over the ranks
        if (rank == 0 && (t + 1) % 1000 == 0)
            std::printf("train step %d: loss %.4f, accuracy %.3f, E(data) %.3f\n", t + 1, s.loss, s.accuracy, s.data_energy);
    }

    // 2. Every rank holds the same model; rank 0 runs the simulations.
    int ok = 1;
    if (rank == 0) ok = learned_force_matches(ebm);
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    MPI_Finalize();
    return ok ? 0 : 1;
}
