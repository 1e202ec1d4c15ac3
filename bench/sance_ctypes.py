"""sance's C API from Python through ctypes, for the benchmarks only (the supported bindings
are C++ and Julia). The structs mirror include/sance.h; `load()` checks the mirror against the
library (ABI version, a default config's known values, and a config read back from a handle),
so a header change that the mirror missed fails loudly instead of timing garbage.
"""
import ctypes
import os
import re
from ctypes import POINTER, byref, c_char_p, c_float, c_int32, c_size_t, c_uint32, c_uint64, c_void_p

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Langevin(ctypes.Structure):
    _fields_ = [
        ("steps", c_uint32),
        ("step_size", c_float),
        ("noise_std", c_float),
        ("grad_clip", c_float),
        ("grad_clamp", c_float),
        ("clamp_min", c_float),
        ("clamp_max", c_float),
        ("init", c_uint32),
        ("init_scale", c_float),
        ("metropolis", c_uint32),
        ("target_acceptance", c_float),
    ]


class Config(ctypes.Structure):
    _fields_ = [
        ("abi_version", c_uint32),
        ("arch", c_uint32),
        ("data_dim", c_uint32),
        ("channels", c_uint32),
        ("height", c_uint32),
        ("width", c_uint32),
        ("hidden_width", c_uint32),
        ("hidden_layers", c_uint32),
        ("activation", c_uint32),
        ("conv_head", c_uint32),
        ("learning_rate", c_float),
        ("adam_beta1", c_float),
        ("adam_beta2", c_float),
        ("weight_decay", c_float),
        ("grad_clip", c_float),
        ("ema_decay", c_float),
        ("noise_update_interval", c_uint32),
        ("noise_ratio", c_float),
        ("noise", c_uint32),
        ("energy_l2", c_float),
        ("langevin", Langevin),
        ("replay_capacity", c_uint32),
        ("replay_reinit_prob", c_float),
        ("data_noise_std", c_float),
        ("scaling", c_uint32),
        ("device", c_int32),
        ("num_threads", c_uint32),
        ("seed", c_uint64),
    ]

    def as_dict(self):
        d = {}
        for name, _ in self._fields_:
            v = getattr(self, name)
            d[name] = {n: getattr(v, n) for n, _ in Langevin._fields_} if name == "langevin" else v
        return d

    def sample_shape(self):
        return [self.data_dim] if self.arch == 0 else [self.channels, self.height, self.width]


class StepStats(ctypes.Structure):
    _fields_ = [
        ("step", c_uint64),
        ("refresh_count", c_uint64),
        ("refreshed", c_int32),
        ("loss", c_float),
        ("accuracy", c_float),
        ("data_energy", c_float),
        ("noise_energy", c_float),
        ("log_z_ratio", c_float),
        ("grad_norm", c_float),
        ("langevin_grad_norm", c_float),
        ("acceptance_rate", c_float),
        ("step_size", c_float),
        ("warnings", c_uint32),
    ]


def header_abi():
    with open(os.path.join(ROOT, "include", "sance.h")) as f:
        return int(re.search(r"#define SANCE_ABI_VERSION (\d+)", f.read()).group(1))


class Sance:
    """The loaded library and thin, checked wrappers around the calls the benchmarks make."""

    def __init__(self, path=None):
        path = path or os.environ.get("SANCE_LIB") or os.path.join(ROOT, "target", "release", "libsance.so")
        self.lib = lib = ctypes.CDLL(path)
        self.path = path
        lib.sance_last_error.restype = c_char_p
        lib.sance_version.restype = c_char_p
        lib.sance_abi_version.restype = c_uint32
        lib.sance_config_init.argtypes = [POINTER(Config), c_uint32]
        lib.sance_ebm_new.argtypes = [POINTER(Config), POINTER(c_void_p)]
        lib.sance_ebm_free.argtypes = [c_void_p]
        lib.sance_ebm_free.restype = None
        lib.sance_ebm_train_step.argtypes = [c_void_p, c_void_p, c_size_t, POINTER(StepStats)]
        lib.sance_ebm_sample_from.argtypes = [c_void_p, c_void_p, c_size_t, POINTER(Langevin)]
        lib.sance_ebm_config.argtypes = [c_void_p, POINTER(Config)]
        lib.sance_ebm_device.argtypes = [c_void_p, POINTER(c_int32)]
        lib.sance_ebm_save.argtypes = [c_void_p, c_char_p]
        lib.sance_toy_dataset.argtypes = [c_char_p, c_size_t, c_uint64, c_void_p]
        lib.sance_cuda_device_count.restype = c_int32
        self.abi = header_abi()
        if lib.sance_abi_version() != self.abi:
            raise RuntimeError(f"{path} is ABI {lib.sance_abi_version()}, include/sance.h says {self.abi}")
        d = self.default_config()
        if (d.langevin.steps, d.hidden_width, d.replay_capacity, d.device, d.langevin.metropolis, d.scaling, d.seed) != (
            20, 128, 8192, -2, 1, 0, 0
        ) or abs(d.langevin.target_acceptance - 0.6) > 1e-6:
            raise RuntimeError("bench/sance_ctypes.py's Config does not match the library's layout")

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: status {status}: {self.lib.sance_last_error().decode()}")

    def version(self):
        return self.lib.sance_version().decode()

    def default_config(self):
        cfg = Config()
        self.check(self.lib.sance_config_init(byref(cfg), self.abi), "sance_config_init")
        return cfg

    def new(self, cfg):
        h = c_void_p()
        self.check(self.lib.sance_ebm_new(byref(cfg), byref(h)), "sance_ebm_new")
        back = Config()
        self.check(self.lib.sance_ebm_config(h, byref(back)), "sance_ebm_config")
        if back.as_dict() != cfg.as_dict():
            raise RuntimeError("the config read back differs from the one given: struct mirror out of date")
        return h

    def device(self, h):
        """-1 the CPU, else the CUDA index the handle runs on (SANCE_DEVICE_AUTO resolved)."""
        d = c_int32(-99)
        self.check(self.lib.sance_ebm_device(h, byref(d)), "sance_ebm_device")
        return d.value

    def free(self, h):
        self.lib.sance_ebm_free(h)

    def train_step(self, h, data, n, stats):
        return self.lib.sance_ebm_train_step(h, data, n, byref(stats))

    def sample_from(self, h, chains, n, langevin):
        return self.lib.sance_ebm_sample_from(h, chains, n, byref(langevin))

    def save(self, h, path):
        self.check(self.lib.sance_ebm_save(h, path.encode()), "sance_ebm_save")

    def toy(self, name, n, seed, out_ptr):
        self.check(self.lib.sance_toy_dataset(name.encode(), n, seed, out_ptr), "sance_toy_dataset")

    def cuda_devices(self):
        return self.lib.sance_cuda_device_count()
