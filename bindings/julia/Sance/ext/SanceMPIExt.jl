"""
Data-parallel training over MPI.jl: `Sance.set_allreduce!(ebm, comm)` registers `comm`'s
in-place `MPI.Allreduce!` (sum) as the model's reduction, on every rank of `comm` (docs/mpi.md).
Loaded automatically when MPI.jl is (a package extension: Sance itself does not depend on MPI).
"""
module SanceMPIExt

using MPI
using Sance

# The reduction sance calls: sums buf[1:n] over the communicator behind `user`, in place.
# Errors become a non-zero return (SANCE_STATUS_COLLECTIVE); nothing may throw into C.
function allreduce_sum(buf::Ptr{Float32}, n::Csize_t, user::Ptr{Cvoid})::Int32
    try
        comm = unsafe_pointer_to_objref(user)::MPI.Comm
        MPI.Allreduce!(unsafe_wrap(Array, buf, Int(n)), +, comm)
        return Int32(0)
    catch
        return Int32(1)
    end
end

"""
    Sance.set_allreduce!(ebm, comm::MPI.Comm)

Collective over `comm`: every rank's model must hold the same θ and config (made from the same
config and seed, or loaded from the same checkpoint step), else every rank gets a `SanceError`.
`comm` is kept alive with the model.
"""
function Sance.set_allreduce!(ebm::Sance.EBM, comm::MPI.Comm)
    fn = @cfunction(allreduce_sum, Int32, (Ptr{Float32}, Csize_t, Ptr{Cvoid}))
    return Sance.set_allreduce!(ebm, fn, comm, MPI.Comm_rank(comm), MPI.Comm_size(comm))
end

end
