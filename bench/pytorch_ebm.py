"""The computations sance is timed against, as a researcher would write them in PyTorch:
the Langevin sampler (eager autograd, and torch.compile of torch.func.grad) and the SA-NCE
training step (eager), all driven by a sance config (a dict of bench/sance_ctypes.Config) so
that both sides run the same network, sampler and step, written from docs/algorithm.md.
The networks are tests/python/twin.py's, which load a sance checkpoint as it is.
"""
import copy
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "python"))
from twin import SanceModel  # noqa: E402


def frozen(module):
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def clip_per_sample(g, clip):
    if clip <= 0:
        return g
    norms = g.flatten(1).norm(dim=1).clamp_min(1e-12)
    return g * (clip / norms).clamp(max=1.0).view(-1, *([1] * (g.dim() - 1)))


def langevin_eager(energy, x, lg):
    """lg: the SanceLangevin fields as a dict. The usual loop: autograd.grad per step."""
    lam, sigma, clip = lg["step_size"], lg["noise_std"], lg["grad_clip"]
    clamp = lg["clamp_min"] < lg["clamp_max"]
    for _ in range(lg["steps"]):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(x).sum(), x)
        if lg.get("grad_clamp", 0) > 0:
            g = g.clamp(-lg["grad_clamp"], lg["grad_clamp"])
        x = x - lam * clip_per_sample(g, clip) + sigma * torch.randn_like(x)
        if clamp:
            x = x.clamp(lg["clamp_min"], lg["clamp_max"])
    return x.detach()


def langevin_compiled(energy, lg):
    """One whole Langevin step (gradient by torch.func.grad, update, noise) under torch.compile;
    returns run(x) doing lg["steps"] of them. No clip or clamp (the sampler rows use neither)."""
    lam, sigma = lg["step_size"], lg["noise_std"]
    grad = torch.func.grad(lambda x: energy(x).sum())

    @torch.compile(dynamic=False)
    def step(x):
        return x - lam * grad(x) + sigma * torch.randn_like(x)

    def run(x):
        for _ in range(lg["steps"]):
            x = step(x)
        return x

    return run


class Trainer:
    """SA-NCE (snapshot noise) training in eager PyTorch, step for step what
    docs/algorithm.md describes: refresh every K steps (c and its momentum reset; with ρ = 0 the
    replay buffer reweighted to the new snapshot and resampled, and filled to capacity by
    importance resampling), M = ν·B chains from the replay buffer (with fresh restarts when
    ρ > 0), Langevin on the snapshot, the NCE loss with data noise and energy_l2, the global
    clip, AdamW, and the parameters' moving average (ema_decay)."""

    def __init__(self, cfg, device="cpu"):
        self.cfg, self.lg, self.device = cfg, cfg["langevin"], device
        torch.manual_seed(cfg["seed"])
        self.model = SanceModel(cfg).to(device)
        self.energy, self.snapshot, self.c = self.model.energy, frozen(self.model.snapshot), self.model.c
        self.opt = torch.optim.AdamW(
            list(self.energy.parameters()) + [self.c],
            lr=cfg["learning_rate"],
            betas=(cfg["adam_beta1"], cfg["adam_beta2"]),
            eps=1e-8,
            weight_decay=0.0,
        )
        self.shape = SanceModel.sample_shape(cfg)
        self.buffer = torch.empty(0, *self.shape, device=device)
        self.t = 0
        self.average = [p.detach().clone() for p in self.energy.parameters()] if cfg["ema_decay"] > 0 else None
        self.old = None

    def systematic(self, log_w, n):
        w = torch.softmax(log_w.double(), 0)
        u = (torch.arange(n, dtype=torch.float64, device=log_w.device) + torch.rand(()).item()) / n
        return torch.searchsorted(torch.cumsum(w, 0), u).clamp(max=len(w) - 1)

    def follow_snapshot(self):
        """ρ = 0: the buffer stays a population of the snapshot (docs/algorithm.md)."""
        with torch.no_grad():
            if self.old is not None and len(self.buffer) > 0:
                log_w = self.old(self.buffer) - self.snapshot(self.buffer)
                self.buffer = self.buffer[self.systematic(log_w, len(self.buffer))]
            missing = self.cfg["replay_capacity"] - len(self.buffer)
            if missing > 0:
                x = self.fresh(missing)
                log_w = -self.snapshot(x)
                if self.lg["init"] == 0:
                    log_w = log_w + x.flatten(1).square().sum(1) / (2 * self.lg["init_scale"] ** 2)
                self.buffer = torch.cat([self.buffer, x[self.systematic(log_w, missing)]])

    def fresh(self, m):
        s = self.lg["init_scale"]
        if self.lg["init"] == 0:
            return torch.randn(m, *self.shape, device=self.device) * s
        return torch.rand(m, *self.shape, device=self.device) * (2 * s) - s

    def step(self, data):
        cfg, k = self.cfg, self.cfg["noise_update_interval"]
        if self.t == 0 or (k >= 1 and self.t % k == 0):
            if cfg["replay_reinit_prob"] == 0:
                if self.old is None:
                    self.old = copy.deepcopy(self.snapshot)
                else:
                    self.old.load_state_dict(self.snapshot.state_dict())
            self.snapshot.load_state_dict(self.energy.state_dict())
            if cfg["replay_reinit_prob"] == 0:
                self.follow_snapshot()
            with torch.no_grad():
                self.c.zero_()
            st = self.opt.state.get(self.c)
            if st:
                st["exp_avg"].zero_()
        b = data.shape[0]
        nu = cfg["noise_ratio"]
        m = max(1, round(nu * b))
        idx = None
        if len(self.buffer) == 0:
            x0 = self.fresh(m)
        else:
            idx = torch.randint(0, len(self.buffer), (m,), device=self.device)
            restart = torch.rand(m, device=self.device) < cfg["replay_reinit_prob"]
            x0 = torch.where(restart.view(-1, *([1] * len(self.shape))), self.fresh(m), self.buffer[idx])
        noise = langevin_eager(self.snapshot, x0, self.lg)
        if cfg["data_noise_std"] > 0:
            data = data + cfg["data_noise_std"] * torch.randn_like(data)
        both = torch.cat([data, noise])
        with torch.no_grad():
            e_bar = self.snapshot(both)
        e = self.energy(both)
        h = e_bar - e + self.c - math.log(nu)
        loss = F.softplus(-h[:b]).mean() + nu * F.softplus(h[b:]).mean()
        if cfg["energy_l2"] > 0:
            loss = loss + cfg["energy_l2"] * (e[:b].square().mean() + e[b:].square().mean())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(list(self.energy.parameters()) + [self.c], cfg["grad_clip"])
        if cfg["weight_decay"] > 0:
            with torch.no_grad():
                for p in self.energy.parameters():
                    p.mul_(1 - cfg["learning_rate"] * cfg["weight_decay"])
        self.opt.step()
        if self.average is not None:
            beta = min(cfg["ema_decay"], (1 + self.t) / (10 + self.t))
            with torch.no_grad():
                for a, p in zip(self.average, self.energy.parameters()):
                    a.lerp_(p, 1 - beta)
        cap = cfg["replay_capacity"]
        if cap > 0:
            if len(self.buffer) < cap:
                self.buffer = torch.cat([self.buffer, noise])[:cap]
            elif idx is not None:
                self.buffer[idx] = noise
        self.t += 1
        return loss.item()
