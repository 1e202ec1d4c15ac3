"""Loads a sance checkpoint into its PyTorch twin (twin.py) with load_state_dict, no renaming,
and recomputes the library's energies.

usage: check_checkpoint.py CHECKPOINT PROBE.f32 ENERGIES.f32
PROBE.f32 holds n samples (float32, row-major), ENERGIES.f32 the library's n energies for them.
Checks that every key of the twin's state_dict is in the checkpoint with the same shape, that
the keys left over are only optimizer moments (each named after a parameter of the twin) and
the replay buffer, and that the twin's energies match the library's to 1e-5 relative.
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from twin import SanceModel  # noqa: E402


def main():
    ckpt, probe, expected = sys.argv[1:4]
    with safe_open(ckpt, framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "sance-checkpoint", meta.get("format")
    assert meta["format_version"] == "5", meta["format_version"]
    cfg = json.loads(meta["config"])
    state = load_file(ckpt)

    model = SanceModel(cfg, scaled="scaling.shift" in state)
    if meta["dtype"] == "F64":
        model = model.double()
    result = model.load_state_dict(state, strict=False)
    assert not result.missing_keys, f"keys of the twin missing from the checkpoint: {result.missing_keys}"
    params = set(model.state_dict())
    for key in result.unexpected_keys:
        if key in ("replay", "replay.energies"):
            continue
        kind, _, name = key.partition(".")[2].partition(".")
        assert key.startswith("optimizer.") and kind in ("exp_avg", "exp_avg_sq"), f"unexpected key {key}"
        assert name in params, f"{key} names no parameter of the twin"
        assert state[key].shape == state[name].shape, f"{key} has shape {state[key].shape}"
    print(f"load_state_dict: {len(params)} keys loaded, left over: {len(result.unexpected_keys)} "
          f"(optimizer moments and replay)")

    x = torch.frombuffer(bytearray(open(probe, "rb").read()), dtype=torch.float32)
    x = x.view(-1, *SanceModel.sample_shape(cfg)).to(model.c.dtype)
    want = torch.frombuffer(bytearray(open(expected, "rb").read()), dtype=torch.float32).double()
    with torch.no_grad():
        got = model.used()(x).double()
    rel = ((got - want).abs() / want.abs().clamp_min(1.0)).max().item()
    print(f"torch {torch.__version__}: arch {cfg['arch']}, {len(want)} energies, max relative difference {rel:.3g}")
    sys.exit(0 if rel <= 1e-5 else 1)


if __name__ == "__main__":
    main()
