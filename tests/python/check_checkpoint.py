"""Reads a sance checkpoint with safetensors + PyTorch alone and recomputes the MLP's energies.

usage: check_checkpoint.py CHECKPOINT PROBE.f32 ENERGIES.f32
PROBE.f32 holds n x data_dim float32 points, ENERGIES.f32 the library's n energies for them.
Prints the largest relative difference and exits non-zero above 1e-6.
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file


def energy(t, cfg, x):
    act = torch.nn.functional.silu if cfg["activation"] == 0 else (lambda z: torch.nn.functional.leaky_relu(z, 0.2))
    a = x
    layers = cfg["hidden_layers"]
    for i in range(layers):
        a = act(a @ t[f"theta.{2 * i}"].T + t[f"theta.{2 * i + 1}"])
    return (a @ t[f"theta.{2 * layers}"].T).squeeze(1)


def main():
    ckpt, probe, expected = sys.argv[1:4]
    with safe_open(ckpt, framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "sance-checkpoint", meta.get("format")
    cfg = json.loads(meta["config"])
    assert cfg["arch"] == 0, "this check covers the MLP"
    t = load_file(ckpt)
    x = torch.frombuffer(bytearray(open(probe, "rb").read()), dtype=torch.float32).view(-1, cfg["data_dim"])
    want = torch.frombuffer(bytearray(open(expected, "rb").read()), dtype=torch.float32)
    with torch.no_grad():
        got = energy(t, cfg, x)
    rel = ((got - want).abs() / want.abs().clamp_min(1.0)).max().item()
    print(f"torch {torch.__version__}: {len(want)} energies, max relative difference {rel:.3g}")
    sys.exit(0 if rel <= 1e-6 else 1)


if __name__ == "__main__":
    main()
