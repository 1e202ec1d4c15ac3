// Data-parallel training over real MPI through sance/mpi.hpp (docs/mpi.md). Run as
//   mpirun -np W test_mpi        (the suite runs W = 2 and 4, each under a timeout)
// Checks, on every rank: registration; after 200 steps on each rank's own data all ranks hold
// bit-identical models; a rank fed NaN makes every rank skip that step and they stay identical;
// W ranks on W parts of a batch make the update one process makes on the whole batch (1e-5);
// ranks with different seeds are refused at registration on every rank, without hanging; and,
// on 2 ranks, 2 x batch 128 reach the 8gaussians KL of 1 process x batch 256 within the spread
// of 1-process runs over seeds.
// Rank 0 prints the totals over ranks: "N passed, M failed".
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "sance/mpi.hpp"

static int passed = 0, failed = 0, rank = 0, world = 1;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) {                                                         \
            passed++;                                                       \
        } else {                                                            \
            failed++;                                                       \
            std::printf("FAIL rank %d %s:%d: %s: ", rank, __FILE__, __LINE__, #cond); \
            std::printf(__VA_ARGS__);                                       \
            std::printf("\n");                                              \
        }                                                                   \
    } while (0)

static sance::Config base() {
    sance::Config c;
    c.device = SANCE_DEVICE_CPU;
    c.hidden_width = 32;
    c.replay_capacity = 256;
    return c;
}

// Energies on a fixed probe set: the model's fingerprint.
static std::vector<float> probe(sance::Ebm &m) { return m.energy(sance::toy_dataset("rings", 64, 777)); }

// Whether every rank holds exactly these floats (the element-wise max and min agree).
static bool same_on_all_ranks(std::vector<float> v, MPI_Comm comm) {
    std::vector<float> lo(v.size()), hi(v.size());
    MPI_Allreduce(v.data(), lo.data(), (int)v.size(), MPI_FLOAT, MPI_MIN, comm);
    MPI_Allreduce(v.data(), hi.data(), (int)v.size(), MPI_FLOAT, MPI_MAX, comm);
    return std::memcmp(lo.data(), hi.data(), sizeof(float) * v.size()) == 0 &&
           std::memcmp(lo.data(), v.data(), sizeof(float) * v.size()) == 0;
}

// KL(data || model) for 8gaussians: the mean over 20,000 data samples of log p_data − log p_model,
// with p_model ∝ exp(−E) normalised by the midpoint rule on [−6, 6]² (240 × 240 cells; the
// same box for every run compared, so the comparison does not depend on the mass outside).
static double true_log_density(double x, double y) {
    const double r = 4.0 / std::sqrt(2.0), sd = 0.5 / std::sqrt(2.0), s2 = sd * sd;
    double t[8], mx = -1e300;
    for (int k = 0; k < 8; k++) {
        double a = k * M_PI / 4, dx = x - r * std::cos(a), dy = y - r * std::sin(a);
        t[k] = -(dx * dx + dy * dy) / (2 * s2);
        mx = std::fmax(mx, t[k]);
    }
    double sum = 0;
    for (double v : t) sum += std::exp(v - mx);
    return mx + std::log(sum) - std::log(8.0) - std::log(2 * M_PI * s2);
}

static double kl_8gaussians(sance::Ebm &m) {
    const int n = 240;
    const double lo = -6, h = 12.0 / n;
    std::vector<float> grid(2 * n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            grid[2 * (i * n + j)] = (float)(lo + (i + 0.5) * h);
            grid[2 * (i * n + j) + 1] = (float)(lo + (j + 0.5) * h);
        }
    std::vector<float> e = m.energy(grid);
    double emin = 1e300;
    for (float v : e) emin = std::fmin(emin, v);
    double z = 0;
    for (float v : e) z += std::exp(-(v - emin)) * h * h;
    std::vector<float> x = sance::toy_dataset("8gaussians", 20000, 4242);
    std::vector<float> ex = m.energy(x);
    double kl = 0;
    for (size_t k = 0; k < ex.size(); k++)
        kl += true_log_density(x[2 * k], x[2 * k + 1]) - (-(ex[k] - emin) - std::log(z));
    return kl / (double)ex.size();
}

// Trains `m` for `steps` steps of `batch` 8gaussians samples, the data seeds offset by `stream`.
static void train(sance::Ebm &m, int steps, size_t batch, uint64_t stream) {
    for (int t = 0; t < steps; t++) m.train_step(sance::toy_dataset("8gaussians", batch, stream + (uint64_t)t));
}

static SanceStatus step_status(sance::Ebm &m, const std::vector<float> &d) {
    try {
        m.train_step(d);
        return SANCE_STATUS_OK;
    } catch (const sance::Error &e) {
        return e.status();
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm comm = MPI_COMM_WORLD;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);

    // 200 steps, each rank on its own data; a NaN batch on rank 1 (or 0 alone) at step 100.
    {
        sance::Ebm m(base());
        sance::mpi::attach(m, comm);
        int skipped = 0;
        for (int t = 0; t < 200; t++) {
            std::vector<float> d = sance::toy_dataset("8gaussians", 64, 1000u * rank + t);
            if (t == 100 && rank == (world > 1 ? 1 : 0)) d[7] = NAN;
            SanceStatus s = step_status(m, d);
            if (t == 100) {
                CHECK(s == SANCE_STATUS_NON_FINITE, "step 100: every rank skips (got %s)", sance_status_name(s));
                skipped += s == SANCE_STATUS_NON_FINITE;
            } else {
                CHECK(s == SANCE_STATUS_OK, "step %d: %s", t, sance::last_error().c_str());
            }
        }
        CHECK(m.progress().step == 199, "199 steps counted (got %llu)", (unsigned long long)m.progress().step);
        std::vector<float> fingerprint = probe(m);
        fingerprint.push_back(m.progress().log_z_ratio); // c
        CHECK(same_on_all_ranks(fingerprint, comm), "after 200 steps every rank's model is bit-identical");
        // The same model, but each rank's own noise chains.
        std::vector<float> s = m.sample(16);
        CHECK(world == 1 || !same_on_all_ranks(s, comm), "ranks draw different chains");
    }

    // W ranks on W parts of each batch against one process on the whole batch. Chains start at
    // the origin (of the model's coordinates: the data's mean, fitted over all ranks' parts as
    // over the whole batch) and move without noise, by unadjusted Langevin with a fixed step:
    // the same deterministic path on every rank, so the averaged gradient is the whole batch's
    // gradient.
    {
        sance::Config c = base();
        c.replay_reinit_prob = 1.0f;
        c.data_noise_std = 0.0f;
        c.langevin.init_scale = 0.0f;
        c.langevin.noise_std = 0.0f;
        c.langevin.metropolis = 0;
        c.langevin.target_acceptance = 0.0f;
        const size_t part = 32;
        sance::Ebm whole(c), mine(c);
        sance::mpi::attach(mine, comm);
        for (int t = 0; t < 5; t++) {
            std::vector<float> d = sance::toy_dataset("8gaussians", part * world, 50 + t);
            sance::StepStats w = whole.train_step(d);
            std::vector<float> slice(d.begin() + 2 * part * rank, d.begin() + 2 * part * (rank + 1));
            sance::StepStats s = mine.train_step(slice);
            CHECK(std::fabs(s.loss - w.loss) <= 1e-5f * std::fabs(w.loss) &&
                      std::fabs(s.grad_norm - w.grad_norm) <= 1e-5f * w.grad_norm,
                  "step %d: loss %g / %g, gradient norm %g / %g (parts / whole)", t, s.loss, w.loss, s.grad_norm, w.grad_norm);
        }
        std::vector<float> a = probe(mine), b = probe(whole);
        double scale = 1e-6, err = 0;
        for (size_t i = 0; i < a.size(); i++) scale = std::fmax(scale, std::fabs(b[i]));
        for (size_t i = 0; i < a.size(); i++) err = std::fmax(err, std::fabs((double)a[i] - b[i]));
        CHECK(err / scale < 1e-5, "%d parts vs the whole batch: energies differ by %.2e", world, err / scale);
    }

    // Different seeds: refused on every rank (when there is more than one rank), no hang.
    {
        sance::Config c = base();
        c.seed = (uint64_t)rank;
        sance::Ebm m(c);
        SanceStatus s = SANCE_STATUS_OK;
        std::string msg;
        try {
            sance::mpi::attach(m, comm);
        } catch (const sance::Error &e) {
            s = e.status();
            msg = e.what();
        }
        if (world > 1) {
            CHECK(s == SANCE_STATUS_INVALID_ARGUMENT && msg.find("do not hold the same model") != std::string::npos,
                  "different seeds refused: %s", msg.c_str());
        } else {
            CHECK(s == SANCE_STATUS_OK, "one rank agrees with itself");
        }
        MPI_Barrier(comm);
    }

    // 2 ranks x batch 128 against 1 process x batch 256: the KL after 2,000 steps, next to the
    // spread of 1-process runs over three seeds (run on the ranks in parallel).
    if (world == 2) {
        const int steps = 2000;
        double single[3] = {0, 0, 0}, all[3] = {0, 0, 0};
        for (int seed = rank; seed < 3; seed += world) {
            sance::Config c = base();
            c.hidden_width = 128;
            c.replay_capacity = 8192;
            c.seed = (uint64_t)seed;
            sance::Ebm m(c);
            train(m, steps, 256, 100000u * (uint64_t)(seed + 1));
            single[seed] = kl_8gaussians(m);
        }
        MPI_Allreduce(single, all, 3, MPI_DOUBLE, MPI_SUM, comm);
        sance::Config c = base();
        c.hidden_width = 128;
        c.replay_capacity = 8192;
        sance::Ebm m(c);
        sance::mpi::attach(m, comm);
        train(m, steps, 128, 900000u + 100000u * (uint64_t)rank);
        double kl = kl_8gaussians(m);
        double lo = std::fmin(all[0], std::fmin(all[1], all[2])), hi = std::fmax(all[0], std::fmax(all[1], all[2]));
        double spread = hi - lo;
        if (rank == 0)
            std::printf("8gaussians KL after %d steps: 1 x 256 over seeds 0-2: %.4f %.4f %.4f; 2 x 128: %.4f\n", steps,
                        all[0], all[1], all[2], kl);
        CHECK(kl >= lo - spread && kl <= hi + spread, "2 x 128 KL %.4f outside [%.4f, %.4f] (the 1 x 256 range widened by "
              "its spread)", kl, lo - spread, hi + spread);
    }

    int counts[2] = {passed, failed}, total[2] = {0, 0};
    MPI_Reduce(counts, total, 2, MPI_INT, MPI_SUM, 0, comm);
    MPI_Finalize();
    if (rank == 0) std::printf("%d passed, %d failed\n", total[0], total[1]);
    return failed > 0 ? 1 : 0;
}
