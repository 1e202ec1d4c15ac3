"""
    Sance

Energy-based models trained by self-adapting noise-contrastive estimation, with Langevin
sampling: Julia bindings of the sance C library.

Arrays follow Julia conventions with no copies: a batch of n vectors of dimension d is a
`Matrix{Float32}` of size `d × n` (column-major, the same memory as the C API's row-major
`n × d`), and a batch of images is a `W × H × C × N` array (Flux's WHCN, the same memory as
NCHW). Arrays of another element type are converted to `Float32` first (a copy).
"""
module Sance

include("LibSance.jl")
include("LibSanceEval.jl")
using .LibSance
using .LibSance: SanceConfig, SanceLangevin, SanceAis, SanceSampling, SanceDrawReport, SanceStepStats, SanceProgress,
                 SanceStatus, SanceEbm

# `sample`, `save`, `load`, `version` and `device` stay qualified (Sance.sample, ...): StatsBase,
# FileIO and CUDA.jl export them, and unqualified uses would then be ambiguous.
export EBM, Config, image_config, Langevin, SanceError, train_step!, refresh_noise!, fit_noise!, set_learning_rate!, sample!, set_allreduce!,
       energy, energy_grad, ais_defaults, log_z, sampling_defaults, draw, progress, config, sample_size, cuda_device_count,
       toy_dataset, toy_dataset_dim,
       Evaluator, EvalError, energy_grad!

"""
    SanceError(status, msg)

Thrown by every failing call: the C status (a `LibSance.SanceStatus`) and the library's message.
"""
struct SanceError <: Exception
    status::SanceStatus
    msg::String
end

Base.showerror(io::IO, e::SanceError) =
    print(io, "SanceError(", unsafe_string(LibSance.sance_status_name(Int32(e.status))), "): ", e.msg)

# Read the thread's last error right after the failing ccall: nothing may run in between.
function check(status::SanceStatus)
    status == LibSance.SANCE_STATUS_OK && return nothing
    throw(SanceError(status, unsafe_string(LibSance.sance_last_error())))
end

# Rebuilds an immutable C struct with some fields replaced.
function with_fields(base::T; kwargs...) where {T}
    for k in keys(kwargs)
        hasfield(T, k) || throw(ArgumentError("$(T) has no field $(k)"))
    end
    T((haskey(kwargs, f) ? field_value(fieldtype(T, f), kwargs[f]) : getfield(base, f) for f in fieldnames(T))...)
end

# Enum fields also accept their integer values (`arch = 1`).
field_value(::Type{E}, v::Integer) where {E<:Enum} = E(v)
# `SanceSampling.sampler` is a `UInt32` in C: it also takes a `SanceSampler`.
field_value(::Type{T}, v::LibSance.SanceSampler) where {T<:Integer} = T(Integer(v))
field_value(::Type{F}, v) where {F} = convert(F, v)

"""
    Config(; kwargs...) -> LibSance.SanceConfig

The library's defaults (`sance_config_init`, tuned for 2-D data) with any field replaced,
e.g. `Config(data_dim = 16, hidden_width = 256, noise_update_interval = 100, device = -1)`.
Enum fields take `LibSance` values (`arch = LibSance.SANCE_ARCH_CONV`,
`scaling = LibSance.SANCE_SCALING_NONE`). Throws a `SanceError`
(`SANCE_STATUS_INVALID_ARGUMENT`) if the library refuses these bindings' `SANCE_ABI_VERSION`.
"""
function Config(; kwargs...)
    out = Ref{SanceConfig}()
    check(LibSance.sance_config_init(out, LibSance.SANCE_ABI_VERSION))
    return with_fields(out[]; kwargs...)
end

"""
    image_config(channels, height, width; kwargs...) -> LibSance.SanceConfig

The image recipe (`sance_config_init_image`) for `channels`×`height`×`width` images whose
pixels are scaled to [-1, 1], with any field replaced as in `Config`. Throws a `SanceError`
(`SANCE_STATUS_INVALID_ARGUMENT`) for a size out of range. Images are passed to the library
row-major, channel first, as in C (`permutedims` a Julia `height×width×channels` array).
"""
function image_config(channels::Integer, height::Integer, width::Integer; kwargs...)
    out = Ref{SanceConfig}()
    check(LibSance.sance_config_init_image(out, LibSance.SANCE_ABI_VERSION, channels, height, width))
    return with_fields(out[]; kwargs...)
end

"""
    Langevin(; kwargs...) -> LibSance.SanceLangevin

The default config's sampler with any field replaced, e.g. `Langevin(steps = 500)`.
Temperature is `noise_std^2 / (2 step_size)`; set both to keep it at 1. The default is MALA
(`metropolis = 1`) whose step training tunes towards `target_acceptance = 0.6`; unadjusted
Langevin is `Langevin(metropolis = 0, target_acceptance = 0)` (a target needs MALA).
"""
Langevin(; kwargs...) = with_fields(Config().langevin; kwargs...)

"""
    EBM(config = Config())

A model and its trainer. Freed by the garbage collector, or at once by `close(ebm)`
(idempotent; later calls throw a `SanceError` with `SANCE_STATUS_NULL_POINTER`).
"""
mutable struct EBM
    ptr::Ptr{SanceEbm}
    # What the C side holds a pointer to (set_allreduce!'s `user`), kept alive with the model.
    keep::Any
    function EBM(ptr::Ptr{SanceEbm})
        ptr == C_NULL && throw(ArgumentError("null handle"))
        ebm = new(ptr, nothing)
        finalizer(close, ebm)
        return ebm
    end
end

function EBM(config::SanceConfig = Config())
    out = Ref{Ptr{SanceEbm}}(C_NULL)
    check(LibSance.sance_ebm_new(Ref(config), out))
    return EBM(out[])
end

Base.unsafe_convert(::Type{Ptr{SanceEbm}}, ebm::EBM) = ebm.ptr

function Base.close(ebm::EBM)
    if ebm.ptr != C_NULL
        LibSance.sance_ebm_free(ebm.ptr)
        ebm.ptr = C_NULL
    end
    return nothing
end

Base.isopen(ebm::EBM) = ebm.ptr != C_NULL

"""Floats per sample (`data_dim`, or `channels * height * width`)."""
function sample_size(ebm::EBM)
    n = LibSance.sance_ebm_sample_size(ebm)
    n == 0 && throw(SanceError(LibSance.SANCE_STATUS_NULL_POINTER, unsafe_string(LibSance.sance_last_error())))
    return Int(n)
end

"""The model's config, with `device` resolved (-1 CPU or the CUDA index)."""
function config(ebm::EBM)
    out = Ref{SanceConfig}()
    check(LibSance.sance_ebm_config(ebm, out))
    return out[]
end

"""The device the model runs on: -1 the CPU, else the CUDA index (`SANCE_DEVICE_AUTO` resolved;
it is the CPU when libtorch sees no GPU)."""
function device(ebm::EBM)
    out = Ref{Int32}(typemin(Int32))
    check(LibSance.sance_ebm_device(ebm, out))
    return Int(out[])
end

"""
    set_allreduce!(ebm, fn::Ptr{Cvoid}, user, rank, world_size)
    set_allreduce!(ebm, nothing)

Data-parallel training through the host's reduction (docs/mpi.md): `fn` is a C function
`int32_t (float *buf, size_t n, void *user)` (a `@cfunction`) that sums `buf` over all ranks in
place and returns 0. Collective: every rank calls it with its `rank` in `0:world_size-1`. `user`
(a mutable object, or `nothing`) is kept alive with the model and handed back to `fn` as a
pointer (`unsafe_pointer_to_objref` turns it back). With MPI.jl
loaded, `set_allreduce!(ebm, comm::MPI.Comm)` does all of this (the SanceMPIExt extension).
"""
function set_allreduce!(ebm::EBM, fn::Ptr{Cvoid}, user, rank::Integer, world_size::Integer)
    ptr = user === nothing ? C_NULL : pointer_from_objref(user)
    check(LibSance.sance_ebm_set_allreduce(ebm, fn, ptr, UInt32(rank), UInt32(world_size)))
    ebm.keep = user
    return ebm
end

function set_allreduce!(ebm::EBM, ::Nothing)
    check(LibSance.sance_ebm_set_allreduce(ebm, C_NULL, C_NULL, UInt32(0), UInt32(1)))
    ebm.keep = nothing
    return ebm
end

"""Steps, refreshes, replay-buffer fill and the offset c."""
function progress(ebm::EBM)
    out = Ref{SanceProgress}()
    check(LibSance.sance_ebm_progress(ebm, out))
    return out[]
end

# Number of samples in an array whose leading dimensions hold one sample each.
function nsamples(ebm::EBM, X::AbstractArray)
    d = sample_size(ebm)
    (length(X) % d == 0 && length(X) > 0) ||
        throw(SanceError(LibSance.SANCE_STATUS_INVALID_ARGUMENT, "array of $(length(X)) values is not a whole number of samples of $(d)"))
    return length(X) ÷ d
end

dense(X::Array{Float32}) = X
dense(X::AbstractArray) = Array{Float32}(X)

"""
    train_step!(ebm, X) -> LibSance.SanceStepStats

One training step on the samples in `X` (`d × n`, or `W × H × C × N`). A `Matrix{Float32}` is
passed without copying; other element types are converted to `Float32` first (a copy). Besides
the loss and its parts, the stats carry `step_size` (the Langevin step the noise chains used)
and `warnings` (`LibSance.SANCE_WARNING_*` bits; 0 when the sampler suits the data).
"""
function train_step!(ebm::EBM, X::AbstractArray)
    A = dense(X)
    n = nsamples(ebm, A)
    stats = Ref{SanceStepStats}()
    check(LibSance.sance_ebm_train_step(ebm, A, n, stats))
    return stats[]
end

"""
Refreshes the noise snapshot now (θ̄ ← θ, c ← 0). Throws a `SanceError`
(`SANCE_STATUS_INVALID_ARGUMENT`) with `noise = SANCE_NOISE_GAUSSIAN`, which has no snapshot.
"""
refresh_noise!(ebm::EBM) = check(LibSance.sance_ebm_refresh_noise(ebm))

"""
    fit_noise!(ebm, X) -> nothing

Classic NCE (`Config(noise = LibSance.SANCE_NOISE_GAUSSIAN)`): fits the noise Gaussian's mean
and covariance to the n ≥ 2 samples in `X` (`d × n`, or `W × H × C × N`). Without it the first
training batch is used; a later call replaces the fit. Throws a `SanceError`
(`SANCE_STATUS_INVALID_ARGUMENT`, nothing changed) with `SANCE_NOISE_SNAPSHOT` or for n < 2.
Non-`Float32` arrays are converted first (a copy).
"""
function fit_noise!(ebm::EBM, X::AbstractArray)
    A = dense(X)
    n = nsamples(ebm, A)
    return check(LibSance.sance_ebm_fit_noise(ebm, A, n))
end

"""Sets Adam's learning rate from the next step on."""
set_learning_rate!(ebm::EBM, lr::Real) = check(LibSance.sance_ebm_set_learning_rate(ebm, Float32(lr)))

function sample_shape(ebm::EBM, n::Integer)
    c = config(ebm)
    c.arch == LibSance.SANCE_ARCH_MLP ? (Int(c.data_dim), Int(n)) : (Int(c.width), Int(c.height), Int(c.channels), Int(n))
end

"""
    sample(ebm, n; kwargs...) -> Array{Float32}

`n` draws of the model: a `d × n` matrix, or `W × H × C × n`. Without keyword arguments,
`sance_ebm_sample(ebm, n, NULL, out)`: the sampler `SANCE_SAMPLER_AUTO` picks (the replay
population reweighted to the model, or tempered SMC; see `draw`). Keyword arguments run fresh
Langevin chains instead (`SANCE_SAMPLER_FRESH`) with those fields of the config's sampler
replaced (`steps = 500`, ...; unadjusted Langevin for this call is `metropolis = 0,
target_acceptance = 0`). A sampling call never tunes its step.
"""
function sample(ebm::EBM, n::Integer; kwargs...)
    out = Array{Float32}(undef, sample_shape(ebm, n))
    if isempty(kwargs)
        check(LibSance.sance_ebm_sample(ebm, n, C_NULL, out))
    else
        params = Ref(with_fields(config(ebm).langevin; kwargs...))
        check(LibSance.sance_ebm_sample(ebm, n, params, out))
    end
    return out
end

"""
    sample!(ebm, chains; kwargs...) -> chains

Runs Langevin chains in place from the samples in `chains` (a `Float32` array). Keyword
arguments replace fields of the config's sampler.
"""
function sample!(ebm::EBM, chains::Array{Float32}; kwargs...)
    n = nsamples(ebm, chains)
    params = Ref(with_fields(config(ebm).langevin; kwargs...))
    check(LibSance.sance_ebm_sample_from(ebm, chains, n, params))
    return chains
end

"""
    energy(ebm, X) -> Vector{Float32}

Energies of the n samples in `X` (`d × n` or `W × H × C × N`). Non-`Float32` arrays are
converted first (a copy).
"""
function energy(ebm::EBM, X::AbstractArray)
    A = dense(X)
    n = nsamples(ebm, A)
    out = Vector{Float32}(undef, n)
    check(LibSance.sance_ebm_energy(ebm, A, n, out))
    return out
end

"""
    energy_grad(ebm, X) -> (Vector{Float32}, Array{Float32})

Energies and input gradients ∇ₓE (same shape as `X`). Non-`Float32` arrays are converted first
(a copy).
"""
function energy_grad(ebm::EBM, X::AbstractArray)
    A = dense(X)
    n = nsamples(ebm, A)
    e = Vector{Float32}(undef, n)
    g = similar(A)
    check(LibSance.sance_ebm_energy_grad(ebm, A, n, e, g))
    return e, g
end

"""
    ais_defaults(ebm; kwargs...) -> LibSance.SanceAis

Annealed-importance-sampling settings for `log_z` suited to this model (`sance_ais_init`: 512
chains, 128 above 64 floats per sample; 1,000 temperatures; one MALA step each; a step size from
a short pilot run), with any field replaced, e.g. `ais_defaults(ebm; chains = 2048)`. The model
is unchanged.
"""
function ais_defaults(ebm::EBM; kwargs...)
    out = Ref{SanceAis}()
    check(LibSance.sance_ais_init(out, ebm))
    return with_fields(out[]; kwargs...)
end

"""
    log_z(ebm; params = nothing) -> (log_z = ..., std_error = ...)

Estimates log Z = log ∫ exp(-E(x)) dx, the log-normaliser of the model's density (c is not part
of it), by annealed importance sampling, with its standard error (`Float64`s): a sample's
normalised log-likelihood is `-energy(ebm, X) .- log_z(ebm).log_z`. `params` is a
`LibSance.SanceAis` (start from `ais_defaults`), or `nothing` for `ais_defaults(ebm)`. The same
model gives the same estimate, and the model is unchanged. Throws a `SanceError`:
`SANCE_STATUS_INVALID_ARGUMENT` for a field of `params` out of range (the message names it),
`SANCE_STATUS_NON_FINITE` when the estimate overflows.
"""
function log_z(ebm::EBM; params::Union{Nothing,SanceAis} = nothing)
    z = Ref{Float64}(NaN)
    se = Ref{Float64}(NaN)
    p = params === nothing ? Ptr{SanceAis}(C_NULL) : Ref(params)
    check(LibSance.sance_ebm_log_z(ebm, p, z, se))
    return (log_z = z[], std_error = se[])
end

"""
    sampling_defaults(ebm; kwargs...) -> LibSance.SanceSampling

Settings for `draw` suited to this model (`sance_sampling_init`: `SANCE_SAMPLER_AUTO`, the
config's sampler as the moves, `target_ess` 0.5, at most 1,000 temperatures), with any field
replaced, e.g. `sampling_defaults(ebm; sampler = LibSance.SANCE_SAMPLER_ANNEALED)` (`sampler`
takes a `LibSance.SanceSampler` or its integer value; `moves` a `SanceLangevin`, e.g.
`Langevin(steps = 5)`). The model is unchanged.
"""
function sampling_defaults(ebm::EBM; kwargs...)
    out = Ref{SanceSampling}()
    check(LibSance.sance_sampling_init(out, ebm))
    return with_fields(out[]; kwargs...)
end

"""
    draw(ebm, n; params = nothing) -> (Array{Float32}, LibSance.SanceDrawReport)

`n` draws of the model's density exp(-E(x)/T)/Z (T the moves' temperature, 1 by default), in
random order, shaped as `sample`'s (`d × n`, or `W × H × C × n`), and the report of what the
sampler did. `params` is a `LibSance.SanceSampling` (start from `sampling_defaults`), or
`nothing` for `sampling_defaults(ebm)`, whose `SANCE_SAMPLER_AUTO` is POPULATION when the model
keeps a population (a trained model) and ANNEALED otherwise. The report's `sampler` is the one
that ran (`LibSance.SanceSampler(report.sampler)`); `temperatures` ANNEALED's stages (else 0);
`ess` the effective sample size (NaN for FRESH); `acceptance` the moves' mean acceptance (NaN
for unadjusted moves); `log_z` and `log_z_std_error` ANNEALED's estimate of log Z (NaN
otherwise). Draws use their own stream, derived from the model's and the handle's count of
draws: they never change training, and the same model gives the same draws. Throws a
`SanceError`: `SANCE_STATUS_INVALID_ARGUMENT` for a field of `params` out of range (the message
names it) or POPULATION on a model with no population yet, `SANCE_STATUS_NON_FINITE` when the
weights are not finite.
"""
function draw(ebm::EBM, n::Integer; params::Union{Nothing,SanceSampling} = nothing)
    out = Array{Float32}(undef, sample_shape(ebm, n))
    report = Ref{SanceDrawReport}()
    p = params === nothing ? Ptr{SanceSampling}(C_NULL) : Ref(params)
    check(LibSance.sance_ebm_draw(ebm, n, p, out, report))
    return out, report[]
end

"""Writes a checkpoint atomically (safetensors)."""
save(ebm::EBM, path::AbstractString) = check(LibSance.sance_ebm_save(ebm, path))

"""
    Sance.load(path; device = LibSance.SANCE_DEVICE_AUTO) -> EBM

Loads a checkpoint written by `save` (not exported: it would clash with `FileIO.load`).
"""
function load(path::AbstractString; device::Integer = LibSance.SANCE_DEVICE_AUTO)
    out = Ref{Ptr{SanceEbm}}(C_NULL)
    check(LibSance.sance_ebm_load(path, Int32(device), out))
    return EBM(out[])
end

"""
    copy(ebm) -> EBM

A deep copy in a new handle on the same device (`sance_ebm_clone`): parameters, snapshot,
average, optimizer state, replay buffer, random stream and counters, so that the copy trains and
samples exactly as `ebm` would from here. An allreduce set with `set_allreduce!` is not copied.
"""
function Base.copy(ebm::EBM)
    out = Ref{Ptr{SanceEbm}}(C_NULL)
    check(LibSance.sance_ebm_clone(ebm, out))
    return EBM(out[])
end

"""Library, tch and libtorch versions."""
version() = unsafe_string(LibSance.sance_version())

"""The ABI version of the loaded library (checked against `LibSance.SANCE_ABI_VERSION`)."""
abi_version() = LibSance.sance_abi_version()

"""Number of CUDA devices libtorch sees."""
cuda_device_count() = Int(LibSance.sance_cuda_device_count())

"""
    toy_dataset_dim(name) -> Int

Floats per sample of a built-in toy dataset: 2 for "8gaussians", "rings", "checkerboard",
"2spirals" and "pinwheel", 16 for "gaussians16d". Throws a `SanceError`
(`SANCE_STATUS_INVALID_ARGUMENT`) for an unknown name.
"""
function toy_dataset_dim(name::AbstractString)
    d = LibSance.sance_toy_dataset_dim(name)
    d == 0 && throw(SanceError(LibSance.SANCE_STATUS_INVALID_ARGUMENT, unsafe_string(LibSance.sance_last_error())))
    return Int(d)
end

"""`n` samples of a built-in toy dataset as a `toy_dataset_dim(name) × n` matrix."""
function toy_dataset(name::AbstractString, n::Integer; seed::Integer = 0)
    out = Matrix{Float32}(undef, toy_dataset_dim(name), n)
    check(LibSance.sance_toy_dataset(name, n, UInt64(seed), out))
    return out
end

"""
The message of this thread's last failed call into the C library. Errors the Julia layer
raises itself (a wrongly sized array) are not recorded there; read them from the `SanceError`.
"""
last_error() = unsafe_string(LibSance.sance_last_error())

"""The name of a status, e.g. "SANCE_STATUS_OK"."""
status_name(s::SanceStatus) = unsafe_string(LibSance.sance_status_name(Int32(s)))

# ---- libsance_eval: trained MLP energies without libtorch -------------------------------------

"""
    EvalError(status, msg)

Thrown by a failing `Evaluator` call: the C status and libsance_eval's message. (Not a
`SanceError`: printing one of those asks libsance for the status's name, and a program that
only evaluates forces need not load libsance.)
"""
struct EvalError <: Exception
    status::SanceStatus
    msg::String
end

Base.showerror(io::IO, e::EvalError) = print(io, "EvalError(", e.status, "): ", e.msg)

function check_eval(status::SanceStatus)
    status == LibSance.SANCE_STATUS_OK && return nothing
    throw(EvalError(status, unsafe_string(LibSanceEval.sance_eval_last_error())))
end

"""
    Evaluator(path)

A trained MLP energy read from a sance checkpoint by libsance_eval (`sance_eval_load`), which
computes E and ∇ₓE in plain code, without libtorch: for a simulation's inner loop, or to deploy
a trained force where libtorch is not installed. Immutable: one `Evaluator` may serve any number
of threads. Freed by the garbage collector, or at once by `close`. Convolutional energies are
refused (`EvalError` with `SANCE_STATUS_INVALID_ARGUMENT`).
"""
mutable struct Evaluator
    ptr::Ptr{LibSanceEval.SanceEval}
    function Evaluator(path::AbstractString)
        out = Ref{Ptr{LibSanceEval.SanceEval}}(C_NULL)
        check_eval(LibSanceEval.sance_eval_load(path, out))
        m = new(out[])
        finalizer(close, m)
        return m
    end
end

Base.unsafe_convert(::Type{Ptr{LibSanceEval.SanceEval}}, m::Evaluator) = m.ptr

function Base.close(m::Evaluator)
    if m.ptr != C_NULL
        LibSanceEval.sance_eval_free(m.ptr)
        m.ptr = C_NULL
    end
    return nothing
end

Base.isopen(m::Evaluator) = m.ptr != C_NULL

function live(m::Evaluator)
    m.ptr == C_NULL && throw(EvalError(LibSance.SANCE_STATUS_NULL_POINTER, "the Evaluator has been closed"))
    return m
end

"""Floats per point."""
sample_size(m::Evaluator) = Int(LibSanceEval.sance_eval_dim(live(m)))

function npoints(m::Evaluator, X::AbstractArray)
    d = sample_size(m)
    (length(X) > 0 && length(X) % d == 0) ||
        throw(DimensionMismatch("X has $(length(X)) values, not a positive multiple of the model's $(d) per point"))
    return length(X) ÷ d
end

"""
    energy(m::Evaluator, X) -> Vector{Float32}

Energies of the points in `X` (`d × n`; a vector is one point).
"""
function energy(m::Evaluator, X::AbstractArray)
    A = dense(X)
    e = Vector{Float32}(undef, npoints(m, A))
    check_eval(LibSanceEval.sance_eval_energy_grad(live(m), A, length(e), e, C_NULL))
    return e
end

"""
    energy_grad(m::Evaluator, X) -> (Vector{Float32}, Array{Float32})

Energies and gradients ∇ₓE (same shape as `X`) of the points in `X`; the force is `-grad`.
"""
function energy_grad(m::Evaluator, X::AbstractArray)
    A = dense(X)
    n = npoints(m, A)
    e = Vector{Float32}(undef, n)
    g = similar(A)
    check_eval(LibSanceEval.sance_eval_energy_grad(live(m), A, n, e, g))
    return e, g
end

"""
    energy_grad!(grad, m::Evaluator, x) -> Float32

E of one point `x` (a `Vector{Float32}` of `sample_size(m)`), its gradient written into `grad`
without allocating: the call for an integrator's inner loop.
"""
function energy_grad!(grad::Vector{Float32}, m::Evaluator, x::Vector{Float32})
    d = sample_size(m)
    (length(x) == d && length(grad) == d) ||
        throw(DimensionMismatch("x and grad must hold $(d) values, not $(length(x)) and $(length(grad))"))
    e = Ref{Float32}(0)
    check_eval(LibSanceEval.sance_eval_energy_grad(m, x, 1, e, grad))
    return e[]
end

"""The message of this thread's last failed libsance_eval call."""
eval_last_error() = unsafe_string(LibSanceEval.sance_eval_last_error())

end # module Sance
