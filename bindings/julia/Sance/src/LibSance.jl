"""
    LibSance

The 1:1 layer over the C API of `include/sance.h`: the enums, the structs mirrored field for
field, and one function per C function with the same name and arguments. `tools/check_bindings.py`
checks every `ccall` and struct here against the header.

The library is `ENV["SANCE_LIB"]` when set, else the repository's release build
(`target/release/libsance.so`), opened when the module is first used.
"""
module LibSance

using Libdl

const DEFAULT_LIB = normpath(joinpath(@__DIR__, "..", "..", "..", "..", "target", "release", "libsance.so"))
const HANDLE = Ref{Ptr{Cvoid}}(C_NULL)

"""Path of the shared library this session loads."""
libpath() = get(ENV, "SANCE_LIB", DEFAULT_LIB)

function __init__()
    HANDLE[] = C_NULL # opened lazily, so that SANCE_LIB can be set after `using Sance`
end

function sym(name::Symbol)
    if HANDLE[] == C_NULL
        h = Libdl.dlopen(libpath())
        abi = ccall(Libdl.dlsym(h, :sance_abi_version), UInt32, ())
        abi == SANCE_ABI_VERSION ||
            error("$(libpath()) has ABI version $(abi) but these bindings were written for $(SANCE_ABI_VERSION)")
        HANDLE[] = h
    end
    return Libdl.dlsym(HANDLE[], name)
end

const SANCE_ABI_VERSION = UInt32(1)
const SANCE_DEVICE_CPU = Int32(-1)
const SANCE_DEVICE_AUTO = Int32(-2)

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

"""Opaque model handle (`SanceEbm` in C); only ever used behind a pointer."""
mutable struct SanceEbm end

struct SanceLangevin
    steps::UInt32
    step_size::Float32
    noise_std::Float32
    grad_clip::Float32
    clamp_min::Float32
    clamp_max::Float32
    init::SanceInit
    init_scale::Float32
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
    learning_rate::Float32
    adam_beta1::Float32
    adam_beta2::Float32
    weight_decay::Float32
    grad_clip::Float32
    noise_update_interval::UInt32
    noise_ratio::Float32
    energy_l2::Float32
    langevin::SanceLangevin
    replay_capacity::UInt32
    replay_reinit_prob::Float32
    data_noise_std::Float32
    device::Int32
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
    log_z::Float32
    grad_norm::Float32
    langevin_grad_norm::Float32
end

struct SanceProgress
    step::UInt64
    refresh_count::UInt64
    replay_len::UInt64
    log_z::Float32
end

sance_config_default(out) = ccall(sym(:sance_config_default), Cvoid, (Ptr{SanceConfig},), out)
sance_abi_version() = ccall(sym(:sance_abi_version), UInt32, ())
sance_ebm_new(config, out) = ccall(sym(:sance_ebm_new), SanceStatus, (Ptr{SanceConfig}, Ptr{Ptr{SanceEbm}}), config, out)
sance_ebm_free(ebm) = ccall(sym(:sance_ebm_free), Cvoid, (Ptr{SanceEbm},), ebm)
sance_ebm_train_step(ebm, data, batch, stats) =
    ccall(sym(:sance_ebm_train_step), SanceStatus, (Ptr{SanceEbm}, Ptr{Float32}, Csize_t, Ptr{SanceStepStats}), ebm, data, batch, stats)
sance_ebm_refresh_noise(ebm) = ccall(sym(:sance_ebm_refresh_noise), SanceStatus, (Ptr{SanceEbm},), ebm)
sance_ebm_set_learning_rate(ebm, learning_rate) =
    ccall(sym(:sance_ebm_set_learning_rate), SanceStatus, (Ptr{SanceEbm}, Float32), ebm, learning_rate)
sance_ebm_sample(ebm, n, params, out) =
    ccall(sym(:sance_ebm_sample), SanceStatus, (Ptr{SanceEbm}, Csize_t, Ptr{SanceLangevin}, Ptr{Float32}), ebm, n, params, out)
sance_ebm_sample_from(ebm, chains, n, params) =
    ccall(sym(:sance_ebm_sample_from), SanceStatus, (Ptr{SanceEbm}, Ptr{Float32}, Csize_t, Ptr{SanceLangevin}), ebm, chains, n, params)
sance_ebm_energy(ebm, x, n, out) =
    ccall(sym(:sance_ebm_energy), SanceStatus, (Ptr{SanceEbm}, Ptr{Float32}, Csize_t, Ptr{Float32}), ebm, x, n, out)
sance_ebm_energy_grad(ebm, x, n, energy, grad) =
    ccall(sym(:sance_ebm_energy_grad), SanceStatus, (Ptr{SanceEbm}, Ptr{Float32}, Csize_t, Ptr{Float32}, Ptr{Float32}), ebm, x, n, energy, grad)
sance_ebm_progress(ebm, out) = ccall(sym(:sance_ebm_progress), SanceStatus, (Ptr{SanceEbm}, Ptr{SanceProgress}), ebm, out)
sance_ebm_sample_size(ebm) = ccall(sym(:sance_ebm_sample_size), Csize_t, (Ptr{SanceEbm},), ebm)
sance_ebm_config(ebm, out) = ccall(sym(:sance_ebm_config), SanceStatus, (Ptr{SanceEbm}, Ptr{SanceConfig}), ebm, out)
sance_ebm_save(ebm, path) = ccall(sym(:sance_ebm_save), SanceStatus, (Ptr{SanceEbm}, Cstring), ebm, path)
sance_ebm_load(path, device, out) = ccall(sym(:sance_ebm_load), SanceStatus, (Cstring, Int32, Ptr{Ptr{SanceEbm}}), path, device, out)
sance_toy_dataset(name, n, seed, out) =
    ccall(sym(:sance_toy_dataset), SanceStatus, (Cstring, Csize_t, UInt64, Ptr{Float32}), name, n, seed, out)
sance_last_error() = ccall(sym(:sance_last_error), Cstring, ())
sance_status_name(status) = ccall(sym(:sance_status_name), Cstring, (Int32,), status)
sance_version() = ccall(sym(:sance_version), Cstring, ())
sance_cuda_device_count() = ccall(sym(:sance_cuda_device_count), Int32, ())

end # module LibSance
