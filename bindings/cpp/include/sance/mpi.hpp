// sance/mpi.hpp: data-parallel training over an MPI communicator the program already has
// (docs/mpi.md). Header-only; include it where <mpi.h> is available and link MPI as usual.
//
//   MPI_Comm comm = MPI_COMM_WORLD;
//   sance::Ebm model(cfg);                 // the same cfg and seed on every rank
//   sance::mpi::attach(model, comm);       // collective over comm
//   model.train_step(my_rank_batch);       // every rank: the same averaged update
//
// `comm` must stay valid while attached. The reduction runs MPI_Allreduce(MPI_IN_PLACE, ...,
// MPI_FLOAT, MPI_SUM) on the thread that calls sance.
#ifndef SANCE_MPI_HPP
#define SANCE_MPI_HPP

// Only MPI's C API is used: skip the deprecated C++ bindings (they do not compile warning-free).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <climits>
#include <cstddef>
#include <cstdint>

#include "sance/sance.hpp"

namespace sance {
namespace mpi {

/// A SanceAllreduceFn (C linkage, hence the prefixed name): sums buf[0, n) over the MPI_Comm that `user` points to, in place, in
/// pieces of at most INT_MAX floats (MPI counts are int). Returns MPI's error code, 0 on success.
extern "C" inline int32_t sance_mpi_allreduce_sum(float *buf, size_t n, void *user) {
    MPI_Comm comm = *static_cast<MPI_Comm *>(user);
    while (n > 0) {
        int count = n > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, comm);
        if (rc != MPI_SUCCESS) return rc;
        buf += count;
        n -= static_cast<size_t>(count);
    }
    return 0;
}

/// Registers `comm` as `model`'s reduction; collective over `comm`. Throws sance::Error (on
/// every rank) when the ranks' models differ (SANCE_STATUS_INVALID_ARGUMENT) or MPI fails
/// (SANCE_STATUS_COLLECTIVE).
inline void attach(Ebm &model, MPI_Comm &comm) {
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    model.set_allreduce(&sance_mpi_allreduce_sum, &comm, static_cast<uint32_t>(rank), static_cast<uint32_t>(size));
}

/// Unregisters the reduction (local; no communication).
inline void detach(Ebm &model) { model.set_allreduce(nullptr, nullptr, 0, 1); }

}  // namespace mpi
}  // namespace sance

#endif
