"""An independent reference for one SA-NCE update and one Langevin step, in plain PyTorch,
written from docs/algorithm.md (steps 3-5 and the sampler's clip), not from the Rust code.

usage: reference_step.py DIR

DIR holds what tests/reference_step.rs wrote (all float64):
  before.safetensors  the library's checkpoint before the update (theta, theta_bar, c, AdamW)
  after.safetensors   its checkpoint after the update
  case.safetensors    data [B, D], noise [M, D], the library's loss [] and gradients
                      (grad.energy.net.0.weight, ..., grad.c, before clipping); a Langevin
                      step: lx0 [N, D], lxi [N, D] (the library's xi), lx1 [N, D] (its
                      result); metadata "langevin": the step's parameters as JSON
Compares the loss, each gradient, each updated parameter and moment, and the Langevin step,
and exits non-zero when any relative error exceeds 1e-5.
"""
import json
import math
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from twin import SanceModel  # noqa: E402

TOL = 1e-5


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def main():
    d = sys.argv[1]
    with safe_open(os.path.join(d, "before.safetensors"), framework="pt") as f:
        meta = f.metadata()
    with safe_open(os.path.join(d, "case.safetensors"), framework="pt") as f:
        langevin = json.loads(f.metadata()["langevin"])
    cfg = json.loads(meta["config"])
    before = load_file(os.path.join(d, "before.safetensors"))
    after = load_file(os.path.join(d, "after.safetensors"))
    case = load_file(os.path.join(d, "case.safetensors"))

    model = SanceModel(cfg).double()
    model.load_state_dict(before, strict=False)
    names = [n for n, _ in model.energy.named_parameters()]
    params = [p for _, p in model.energy.named_parameters()]
    errors = {}

    # Steps 3-4: the logit and the loss.
    data, noise = case["data"], case["noise"]
    nu, alpha = cfg["noise_ratio"], cfg["energy_l2"]
    x = torch.cat([data, noise])
    b = data.shape[0]
    e = model.energy(x)
    with torch.no_grad():
        e_bar = model.snapshot(x)
    h = e_bar - e + model.c - math.log(nu)
    loss = (torch.nn.functional.softplus(-h[:b]).mean() + nu * torch.nn.functional.softplus(h[b:]).mean()
            + alpha * (e[:b].square().mean() + e[b:].square().mean()))
    errors["loss"] = abs(loss.item() - case["loss"].item()) / abs(case["loss"].item())

    # Step 5: gradients, global clip, AdamW.
    grads = torch.autograd.grad(loss, params + [model.c])
    for n, g in zip(names + ["c"], grads):
        key = f"grad.energy.{n}" if n != "c" else "grad.c"
        errors[key] = rel(case[key], g)
    clip = cfg["grad_clip"]
    norm = torch.sqrt(sum(g.square().sum() for g in grads))
    clipped = clip > 0 and norm.item() > clip
    if clipped:
        grads = [g * (clip / norm) for g in grads]
    lr, b1, b2, wd, eps = cfg["learning_rate"], cfg["adam_beta1"], cfg["adam_beta2"], cfg["weight_decay"], 1e-8
    t = int(meta["adam_t"]) + 1
    with torch.no_grad():
        for n, p, g in zip(names + ["c"], params + [model.c], grads):
            full = f"energy.{n}" if n != "c" else "c"
            m = b1 * before[f"optimizer.exp_avg.{full}"] + (1 - b1) * g
            v = b2 * before[f"optimizer.exp_avg_sq.{full}"] + (1 - b2) * g * g
            new = p * (1 - lr * wd) if n != "c" else p.clone()
            new = new - lr * (m / (1 - b1 ** t)) / (torch.sqrt(v / (1 - b2 ** t)) + eps)
            errors[full] = rel(after[full], new)
            errors[f"exp_avg.{full}"] = rel(after[f"optimizer.exp_avg.{full}"], m)
            errors[f"exp_avg_sq.{full}"] = rel(after[f"optimizer.exp_avg_sq.{full}"], v)
    for n in names:
        key = f"snapshot.{n}"
        errors[key] = rel(after[key], before[key])  # the snapshot does not move

    # One Langevin step on the model's energy (the moving average theta~ that the checkpoint holds
    # when ema_decay > 0, else theta after the update), with the library's xi.
    model.load_state_dict(after, strict=False)
    x0 = case["lx0"].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.used()(x0).sum(), x0)
    with torch.no_grad():
        if langevin["grad_clamp"] > 0:
            g = g.clamp(-langevin["grad_clamp"], langevin["grad_clamp"])
        if langevin["grad_clip"] > 0:
            gn = g.flatten(1).norm(dim=1).clamp_min(1e-12)
            g = g * (langevin["grad_clip"] / gn).clamp(max=1.0).view(-1, *[1] * (g.dim() - 1))
        x1 = x0 - langevin["step_size"] * g + langevin["noise_std"] * case["lxi"]
        if langevin["clamp_min"] < langevin["clamp_max"]:
            x1 = x1.clamp(langevin["clamp_min"], langevin["clamp_max"])
    errors["langevin"] = rel(case["lx1"], x1)

    worst = max(errors, key=errors.get)
    print(f"torch {torch.__version__}: global clip {'active' if clipped else 'inactive'} "
          f"(|g| = {norm.item():.4g}, clip {clip}), t = {t}; {len(errors)} quantities, "
          f"max relative error {errors[worst]:.3g} ({worst})")
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    for k, v in bad.items():
        print(f"  {k}: relative error {v:.3g}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
