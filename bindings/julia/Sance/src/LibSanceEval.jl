"""
    LibSanceEval

The 1:1 layer over `include/sance_eval.h`, the libtorch-free evaluator of trained MLP energies:
one function per C function with the same name and arguments. `SanceStatus` is LibSance's (the
two headers share it). `tools/check_bindings.py` checks every `ccall` here against the header.

The library is `ENV["SANCE_EVAL_LIB"]` when set, else the repository's release build
(`target/release/libsance_eval.so`). It is opened on first use, as LibSance opens libsance, and
needs neither libtorch nor libsance: a program that only evaluates forces never loads them.
"""
module LibSanceEval

using Libdl
using ..LibSance: SanceStatus

const DEFAULT_LIB = normpath(joinpath(@__DIR__, "..", "..", "..", "..", "target", "release", "libsance_eval.so"))

"""Path of the shared library to load; read when the library is opened, at first use."""
libpath() = get(ENV, "SANCE_EVAL_LIB", DEFAULT_LIB)

"""
The address of every C function, one field per function, named after it; `sym(:name)` reads
these fields.
"""
struct Functions
    sance_eval_load::Ptr{Cvoid}
    sance_eval_energy_grad::Ptr{Cvoid}
    sance_eval_dim::Ptr{Cvoid}
    sance_eval_free::Ptr{Cvoid}
    sance_eval_last_error::Ptr{Cvoid}
end

# Published once, as in LibSance: an atomic pointer-sized field, `nothing` until first use.
mutable struct Library
    @atomic table::Any
end

const LIBRARY = Library(nothing)
const LOAD_LOCK = ReentrantLock()

function __init__()
    @atomic LIBRARY.table = nothing
end

@inline function functions()
    table = @atomic :acquire LIBRARY.table
    return table isa Functions ? table : load_functions()
end

@noinline function load_functions()::Functions
    lock(LOAD_LOCK)
    try
        table = @atomic :acquire LIBRARY.table
        table isa Functions && return table
        handle = Libdl.dlopen(libpath())
        loaded = Functions((Libdl.dlsym(handle, name) for name in fieldnames(Functions))...)
        @atomic :release LIBRARY.table = loaded
        return loaded
    finally
        unlock(LOAD_LOCK)
    end
end

@inline sym(name::Symbol) = getfield(functions(), name)::Ptr{Cvoid}

"""Opaque model handle (`SanceEval` in C); only ever used behind a pointer."""
mutable struct SanceEval end

sance_eval_load(checkpoint_path, out) =
    ccall(sym(:sance_eval_load), SanceStatus, (Cstring, Ptr{Ptr{SanceEval}}), checkpoint_path, out)
# `energy_out` and `grad_out` may each be C_NULL.
sance_eval_energy_grad(model, x, n, energy_out, grad_out) =
    ccall(sym(:sance_eval_energy_grad), SanceStatus, (Ptr{SanceEval}, Ptr{Float32}, Csize_t, Ptr{Float32}, Ptr{Float32}), model, x, n, energy_out, grad_out)
sance_eval_dim(model) = ccall(sym(:sance_eval_dim), UInt32, (Ptr{SanceEval},), model)
sance_eval_free(model) = ccall(sym(:sance_eval_free), Cvoid, (Ptr{SanceEval},), model)
sance_eval_last_error() = ccall(sym(:sance_eval_last_error), Cstring, ())

end # module
