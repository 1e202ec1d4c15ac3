"""
    LibSance

The 1:1 layer over the C API of `include/sance.h`: the enums, the structs mirrored field for
field, and one function per C function with the same name and arguments. `tools/check_bindings.py`
checks every `ccall` and struct here against the header.

The library is `ENV["SANCE_LIB"]` when set, else the repository's release build
(`target/release/libsance.so`). It is opened on first use, not by `using Sance`, so that
`SANCE_LIB` may still be set after loading the package: the first call from any task opens it,
checks its ABI version against `SANCE_ABI_VERSION` and resolves every C function once; later
calls, from any thread, read the published pointers without a lock, a lookup or a `dlsym`.
"""
module LibSance

using Libdl

const DEFAULT_LIB = normpath(joinpath(@__DIR__, "..", "..", "..", "..", "target", "release", "libsance.so"))

"""Path of the shared library to load; read when the library is opened, at first use."""
libpath() = get(ENV, "SANCE_LIB", DEFAULT_LIB)

const SANCE_ABI_VERSION = UInt32(6)
const SANCE_VERSION_MAJOR = UInt32(0)
const SANCE_VERSION_MINOR = UInt32(5)
const SANCE_VERSION_PATCH = UInt32(0)
const SANCE_DEVICE_CPU = Int32(-1)
const SANCE_DEVICE_AUTO = Int32(-2)
"""`SANCE_NOISE_GAUSSIAN`: the largest sample size (floats) whose fitted covariance is full; above it the fit is diagonal."""
const SANCE_NOISE_FULL_COVARIANCE_MAX_DIM = 1024
"""`SanceStepStats.warnings` bit: the step is too coarse for the density (MALA accepts under 20 % of its moves, or an unadjusted step's drift exceeds 0.3 × its noise)."""
const SANCE_WARNING_COARSE_STEP = UInt32(1)
"""`SanceStepStats.warnings` bit: the step is too fine for the chains to cross the data (noise_std·√steps under 1 % of the batch's spread)."""
const SANCE_WARNING_FROZEN_STEP = UInt32(2)
"""`SanceStepStats.warnings` bit: the chains cannot reach the data (a point outside the clamp box, or over 1 % of the batch outside the init box)."""
const SANCE_WARNING_OUT_OF_REACH = UInt32(4)

"""
The address of every C function, one field per function, named after it. `sym(:name)` reads
these fields, so every function the wrappers below call needs its field here.
"""
struct Functions
    sance_config_init::Ptr{Cvoid}
    sance_config_init_image::Ptr{Cvoid}
    sance_abi_version::Ptr{Cvoid}
    sance_ebm_new::Ptr{Cvoid}
    sance_ebm_free::Ptr{Cvoid}
    sance_ebm_train_step::Ptr{Cvoid}
    sance_ebm_refresh_noise::Ptr{Cvoid}
    sance_ebm_fit_noise::Ptr{Cvoid}
    sance_ebm_set_learning_rate::Ptr{Cvoid}
    sance_ebm_sample::Ptr{Cvoid}
    sance_sampling_init::Ptr{Cvoid}
    sance_ebm_draw::Ptr{Cvoid}
    sance_ebm_sample_from::Ptr{Cvoid}
    sance_ebm_energy::Ptr{Cvoid}
    sance_ebm_energy_grad::Ptr{Cvoid}
    sance_ais_init::Ptr{Cvoid}
    sance_ebm_log_z::Ptr{Cvoid}
    sance_ebm_progress::Ptr{Cvoid}
    sance_ebm_sample_size::Ptr{Cvoid}
    sance_ebm_config::Ptr{Cvoid}
    sance_ebm_device::Ptr{Cvoid}
    sance_ebm_set_allreduce::Ptr{Cvoid}
    sance_ebm_save::Ptr{Cvoid}
    sance_ebm_load::Ptr{Cvoid}
    sance_ebm_clone::Ptr{Cvoid}
    sance_toy_dataset::Ptr{Cvoid}
    sance_toy_dataset_dim::Ptr{Cvoid}
    sance_last_error::Ptr{Cvoid}
    sance_status_name::Ptr{Cvoid}
    sance_version::Ptr{Cvoid}
    sance_cuda_device_count::Ptr{Cvoid}
end

# The published table: `nothing` until the first call has opened the library. The field is
# typed `Any` so that it holds a pointer to one boxed, immutable `Functions`: an atomic load of
# a pointer-sized field is a plain load with acquire ordering, whereas `Functions` stored
# inline (a `Union{Nothing,Functions}` field) is too large for a hardware atomic and Julia
# would take a lock on every access.
mutable struct Library
    @atomic table::Any
end

const LIBRARY = Library(nothing)
const LOAD_LOCK = ReentrantLock()

function __init__()
    # A table from precompilation would hold another process's addresses.
    @atomic LIBRARY.table = nothing
end

"""
    functions() -> Functions

The C functions' addresses, opening the library on the first call. Thread-safe: the first
callers serialize on a lock, exactly one opens the library and publishes the table (release),
and every other call only loads it (acquire). Finalizers (`EBM`'s) never reach the lock: a
handle exists only once the table has been published.
"""
@inline function functions()
    table = @atomic :acquire LIBRARY.table
    return table isa Functions ? table : load_functions()
end

@noinline function load_functions()::Functions
    lock(LOAD_LOCK)
    try
        # Another task may have published the table while this one waited for the lock.
        table = @atomic :acquire LIBRARY.table
        table isa Functions && return table
        path = libpath()
        handle = Libdl.dlopen(path)
        # Checked before resolving the rest: a library of another ABI may lack some functions.
        abi = ccall(Libdl.dlsym(handle, :sance_abi_version), UInt32, ())
        abi == SANCE_ABI_VERSION ||
            error("$(path) has ABI version $(abi) but these bindings were written for $(SANCE_ABI_VERSION)")
        loaded = Functions((Libdl.dlsym(handle, name) for name in fieldnames(Functions))...)
        @atomic :release LIBRARY.table = loaded
        return loaded
    finally
        unlock(LOAD_LOCK)
    end
end

"""
    sym(name) -> Ptr{Cvoid}

The address of the C function `name`, a field of the published table. Inlined with a literal
name, it compiles to an atomic load, a type check and a field load.
"""
@inline sym(name::Symbol) = getfield(functions(), name)::Ptr{Cvoid}

@enum SanceStatus::Cint begin
    SANCE_STATUS_OK = 0
    SANCE_STATUS_NULL_POINTER = 1
    SANCE_STATUS_INVALID_ARGUMENT = 2
    SANCE_STATUS_NON_FINITE = 3
    SANCE_STATUS_DEVICE = 4
    SANCE_STATUS_IO = 5
    SANCE_STATUS_CORRUPT = 6
    SANCE_STATUS_TORCH = 7
    SANCE_STATUS_PANIC = 8
    SANCE_STATUS_COLLECTIVE = 9
end

@enum SanceArch::Cint begin
    SANCE_ARCH_MLP = 0
    SANCE_ARCH_CONV = 1
end

@enum SanceActivation::Cint begin
    SANCE_ACTIVATION_SILU = 0
    SANCE_ACTIVATION_LEAKY_RELU = 1
end

@enum SanceInit::Cint begin
    SANCE_INIT_GAUSSIAN = 0
    SANCE_INIT_UNIFORM = 1
end

"""How the CONV energy reads its last feature map: SUM (global sum pooling) or DENSE (a linear map of the whole map)."""
@enum SanceConvHead::Cint begin
    SANCE_CONV_HEAD_SUM = 0
    SANCE_CONV_HEAD_DENSE = 1
end

"""The noise NCE contrasts the data with: SNAPSHOT (self-adapting NCE) or GAUSSIAN (classic NCE)."""
@enum SanceNoise::Cint begin
    SANCE_NOISE_SNAPSHOT = 0
    SANCE_NOISE_GAUSSIAN = 1
end

"""The data's units: AUTO (an MLP standardises each coordinate by the data's fitted mean and std) or NONE (the data as given)."""
@enum SanceScaling::Cint begin
    SANCE_SCALING_AUTO = 0
    SANCE_SCALING_NONE = 1
end

"""
Which sampler `sance_ebm_draw` runs (`SanceSampling.sampler`, a `UInt32` in C): AUTO (POPULATION
when the model keeps a population, else ANNEALED once, then POPULATION on its kept particles
until the model changes), FRESH (fresh chains through the moves),
POPULATION (the replay population reweighted to the model, then moved) or ANNEALED (adaptive
tempered SMC from a normalised Gaussian base).
"""
@enum SanceSampler::Cint begin
    SANCE_SAMPLER_AUTO = 0
    SANCE_SAMPLER_FRESH = 1
    SANCE_SAMPLER_POPULATION = 2
    SANCE_SAMPLER_ANNEALED = 3
end

"""Opaque model handle (`SanceEbm` in C); only ever used behind a pointer."""
mutable struct SanceEbm end

struct SanceLangevin
    steps::UInt32
    step_size::Float32
    noise_std::Float32
    grad_clip::Float32
    grad_clamp::Float32
    clamp_min::Float32
    clamp_max::Float32
    init::SanceInit
    init_scale::Float32
    metropolis::UInt32
    target_acceptance::Float32
end

struct SanceConfig
    abi_version::UInt32
    arch::SanceArch
    data_dim::UInt32
    channels::UInt32
    height::UInt32
    width::UInt32
    hidden_width::UInt32
    hidden_layers::UInt32
    activation::SanceActivation
    conv_head::SanceConvHead
    learning_rate::Float32
    adam_beta1::Float32
    adam_beta2::Float32
    weight_decay::Float32
    grad_clip::Float32
    ema_decay::Float32
    noise_update_interval::UInt32
    noise_ratio::Float32
    noise::SanceNoise
    energy_l2::Float32
    langevin::SanceLangevin
    replay_capacity::UInt32
    replay_reinit_prob::Float32
    data_noise_std::Float32
    scaling::SanceScaling
    device::Int32
    num_threads::UInt32
    seed::UInt64
end

struct SanceStepStats
    step::UInt64
    refresh_count::UInt64
    refreshed::Int32
    loss::Float32
    accuracy::Float32
    data_energy::Float32
    noise_energy::Float32
    log_z_ratio::Float32
    grad_norm::Float32
    langevin_grad_norm::Float32
    acceptance_rate::Float32
    step_size::Float32
    warnings::UInt32
end

"""
Settings of `sance_ebm_draw`; `sance_sampling_init` fills them for a model. `sampler` is a
`SanceSampler` value as a `UInt32`; `moves` the transition the sampler applies; `target_ess` and
`max_temperatures` are ANNEALED's.
"""
struct SanceSampling
    sampler::UInt32
    moves::SanceLangevin
    target_ess::Float32
    max_temperatures::UInt32
end

"""
What a `sance_ebm_draw` did: the sampler that ran (AUTO resolved, a `SanceSampler` value as a
`UInt32`), ANNEALED's stages, the effective sample size, the moves' mean acceptance and ANNEALED's
log Z estimate with its standard error; NaN where a field does not apply.
"""
struct SanceDrawReport
    sampler::UInt32
    temperatures::UInt32
    ess::Float64
    acceptance::Float64
    log_z::Float64
    log_z_std_error::Float64
end

"""Settings of `sance_ebm_log_z`'s annealed importance sampling; `sance_ais_init` fills them for a model."""
struct SanceAis
    chains::UInt32
    temperatures::UInt32
    steps::UInt32
    step_size::Float32
end

struct SanceProgress
    step::UInt64
    refresh_count::UInt64
    replay_len::UInt64
    log_z_ratio::Float32
    refresh_ess::Float64
    refresh_nonfinite::UInt64
end

sance_config_init(cfg, abi_version) =
    ccall(sym(:sance_config_init), SanceStatus, (Ptr{SanceConfig}, UInt32), cfg, abi_version)
sance_config_init_image(cfg, abi_version, channels, height, width) =
    ccall(sym(:sance_config_init_image), SanceStatus, (Ptr{SanceConfig}, UInt32, UInt32, UInt32, UInt32),
          cfg, abi_version, channels, height, width)
sance_abi_version() = ccall(sym(:sance_abi_version), UInt32, ())
sance_ebm_new(config, out) = ccall(sym(:sance_ebm_new), SanceStatus, (Ptr{SanceConfig}, Ptr{Ptr{SanceEbm}}), config, out)
sance_ebm_free(ebm) = ccall(sym(:sance_ebm_free), Cvoid, (Ptr{SanceEbm},), ebm)
sance_ebm_train_step(ebm, data, batch, stats) =
    ccall(sym(:sance_ebm_train_step), SanceStatus, (Ptr{SanceEbm}, Ptr{Float32}, Csize_t, Ptr{SanceStepStats}), ebm, data, batch, stats)
sance_ebm_refresh_noise(ebm) = ccall(sym(:sance_ebm_refresh_noise), SanceStatus, (Ptr{SanceEbm},), ebm)
sance_ebm_fit_noise(ebm, data, n) =
    ccall(sym(:sance_ebm_fit_noise), SanceStatus, (Ptr{SanceEbm}, Ptr{Float32}, Csize_t), ebm, data, n)
sance_ebm_set_learning_rate(ebm, learning_rate) =
    ccall(sym(:sance_ebm_set_learning_rate), SanceStatus, (Ptr{SanceEbm}, Float32), ebm, learning_rate)
sance_ebm_sample(ebm, n, params, out) =
    ccall(sym(:sance_ebm_sample), SanceStatus, (Ptr{SanceEbm}, Csize_t, Ptr{SanceLangevin}, Ptr{Float32}), ebm, n, params, out)
sance_sampling_init(params, ebm) =
    ccall(sym(:sance_sampling_init), SanceStatus, (Ptr{SanceSampling}, Ptr{SanceEbm}), params, ebm)
# `params` may be NULL (the defaults), and so may `report`.
sance_ebm_draw(ebm, n, params, out, report) =
    ccall(sym(:sance_ebm_draw), SanceStatus, (Ptr{SanceEbm}, Csize_t, Ptr{SanceSampling}, Ptr{Float32}, Ptr{SanceDrawReport}),
          ebm, n, params, out, report)
sance_ebm_sample_from(ebm, chains, n, params) =
    ccall(sym(:sance_ebm_sample_from), SanceStatus, (Ptr{SanceEbm}, Ptr{Float32}, Csize_t, Ptr{SanceLangevin}), ebm, chains, n, params)
sance_ebm_energy(ebm, x, n, out) =
    ccall(sym(:sance_ebm_energy), SanceStatus, (Ptr{SanceEbm}, Ptr{Float32}, Csize_t, Ptr{Float32}), ebm, x, n, out)
sance_ebm_energy_grad(ebm, x, n, energy, grad) =
    ccall(sym(:sance_ebm_energy_grad), SanceStatus, (Ptr{SanceEbm}, Ptr{Float32}, Csize_t, Ptr{Float32}, Ptr{Float32}), ebm, x, n, energy, grad)
sance_ais_init(params, ebm) = ccall(sym(:sance_ais_init), SanceStatus, (Ptr{SanceAis}, Ptr{SanceEbm}), params, ebm)
# `params` may be NULL (the defaults), and so may `out_std_error`.
sance_ebm_log_z(ebm, params, out_log_z, out_std_error) =
    ccall(sym(:sance_ebm_log_z), SanceStatus, (Ptr{SanceEbm}, Ptr{SanceAis}, Ptr{Float64}, Ptr{Float64}), ebm, params, out_log_z, out_std_error)
sance_ebm_progress(ebm, out) = ccall(sym(:sance_ebm_progress), SanceStatus, (Ptr{SanceEbm}, Ptr{SanceProgress}), ebm, out)
sance_ebm_sample_size(ebm) = ccall(sym(:sance_ebm_sample_size), Csize_t, (Ptr{SanceEbm},), ebm)
sance_ebm_config(ebm, out) = ccall(sym(:sance_ebm_config), SanceStatus, (Ptr{SanceEbm}, Ptr{SanceConfig}), ebm, out)
# SanceAllreduceFn: int32_t (*)(float *buf, size_t n, void *user), a @cfunction pointer.
const SanceAllreduceFn = Ptr{Cvoid}
sance_ebm_set_allreduce(ebm, fn, user, rank, world_size) =
    ccall(sym(:sance_ebm_set_allreduce), SanceStatus, (Ptr{SanceEbm}, SanceAllreduceFn, Ptr{Cvoid}, UInt32, UInt32), ebm, fn, user, rank, world_size)
sance_ebm_device(ebm, out_device) = ccall(sym(:sance_ebm_device), SanceStatus, (Ptr{SanceEbm}, Ptr{Int32}), ebm, out_device)
sance_ebm_save(ebm, path) = ccall(sym(:sance_ebm_save), SanceStatus, (Ptr{SanceEbm}, Cstring), ebm, path)
sance_ebm_load(path, device, out) = ccall(sym(:sance_ebm_load), SanceStatus, (Cstring, Int32, Ptr{Ptr{SanceEbm}}), path, device, out)
sance_ebm_clone(ebm, out) = ccall(sym(:sance_ebm_clone), SanceStatus, (Ptr{SanceEbm}, Ptr{Ptr{SanceEbm}}), ebm, out)
sance_toy_dataset(name, n, seed, out) =
    ccall(sym(:sance_toy_dataset), SanceStatus, (Cstring, Csize_t, UInt64, Ptr{Float32}), name, n, seed, out)
sance_toy_dataset_dim(name) = ccall(sym(:sance_toy_dataset_dim), Csize_t, (Cstring,), name)
sance_last_error() = ccall(sym(:sance_last_error), Cstring, ())
sance_status_name(status) = ccall(sym(:sance_status_name), Cstring, (Int32,), status)
sance_version() = ccall(sym(:sance_version), Cstring, ())
sance_cuda_device_count() = ccall(sym(:sance_cuda_device_count), Int32, ())

end # module LibSance
