"""The SA-NCE training step as a researcher would write it in PyTorch: the reference that
bench/run.sh times sance against. Same model (2-128-128-1 SiLU MLP, no last bias), same step
(K-step snapshot, 20 Langevin steps of 0.01 with noise sqrt(0.02) from a replay buffer of 8192
with 5% fresh chains, NCE loss with learnable c, Adam 1e-3), same batch (256), on 8gaussians.

usage: python bench/pytorch_reference.py STEPS  -> prints "steps_per_second <value>"
"""
import copy
import math
import sys
import time

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 1, bias=False))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def eight_gaussians(n):
    k = torch.randint(0, 8, (n,))
    a = k.float() * math.pi / 4
    centres = torch.stack([torch.cos(a), torch.sin(a)], 1) * (4 / math.sqrt(2))
    return centres + torch.randn(n, 2) * (0.5 / math.sqrt(2))


def main():
    steps = int(sys.argv[1])
    torch.manual_seed(0)
    model = MLP()
    snapshot = copy.deepcopy(model)
    for p in snapshot.parameters():
        p.requires_grad_(False)
    c = nn.Parameter(torch.zeros(()))
    opt = torch.optim.Adam(list(model.parameters()) + [c], lr=1e-3)
    K, B, nu, T, lam, rho, cap = 1000, 256, 1.0, 20, 0.01, 0.05, 8192
    sigma = math.sqrt(2 * lam)
    buffer = torch.empty(0, 2)

    start = None
    for t in range(steps + 50):
        if t == 50:
            start = time.perf_counter()  # after warm-up
        if t % K == 0:
            snapshot.load_state_dict(model.state_dict())
            with torch.no_grad():
                c.zero_()
        data = eight_gaussians(B)
        m = B
        if len(buffer) == 0:
            x = torch.rand(m, 2) * 8 - 4
            idx = None
        else:
            fresh = torch.rand(m) < rho
            idx = torch.randint(0, len(buffer), (m,))
            x = torch.where(fresh[:, None], torch.rand(m, 2) * 8 - 4, buffer[idx])
        for _ in range(T):
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(snapshot(x).sum(), x)
            x = x - lam * g + sigma * torch.randn_like(x)
        noise = x.detach()
        both = torch.cat([data, noise])
        with torch.no_grad():
            e_bar = snapshot(both)
        h = e_bar - model(both) + c - math.log(nu)
        loss = nn.functional.softplus(-h[:B]).mean() + nu * nn.functional.softplus(h[B:]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if len(buffer) < cap:
            buffer = torch.cat([buffer, noise])[:cap]
        else:
            buffer[idx] = noise
    elapsed = time.perf_counter() - start
    print(f"steps_per_second {steps / elapsed:.1f} (torch {torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
