"""The peer of `sance-hd fashion`: a short-run persistent EBM written the way the University of
Amsterdam deep-learning tutorial (Lippe, "Deep Energy-Based Generative Models") describes it,
in plain PyTorch, trained on Fashion-MNIST for a fixed wall-clock time, then sampled.

Recipe, from the tutorial's description: a small CNN energy (Swish; 5x5 stride-2 conv to 16
channels, three 3x3 stride-2 convs to 32, 64, 64, then 256 -> 64 -> 1); persistent chains
in a replay buffer of 8,192 images with 5 % fresh uniform restarts per batch; 60 Langevin
steps of step size 10 on the energy with each pixel's gradient clamped to +-0.03 and noise
0.005, pixels clamped to [-1, 1]; loss = E(data) - E(samples) + 0.1 (E(data)^2 +
E(samples)^2); Adam 1e-4 with beta1 = 0, gradient norm clipped at 0.1, batch 128; the data
get noise 0.005. Each epoch the learning rate is multiplied by 0.97.

Writes DIR/peer-buffer.f32 (the last 1,000 chains of the buffer after a final 60-step
pass, the tutorial's samples) and DIR/peer-fresh.f32 (1,000 fresh uniform chains run for
--fresh-steps), both raw little-endian float32, 1000 x 784, in [-1, 1]: the format of
`sance-hd fashion`'s samples.f32, scored by `sance-hd score`.

  python bench/peer_short_run.py --minutes 20 --dir fashion-run [--threads 2] [--seed 0]
"""
import argparse
import array
import gzip
import os
import random
import struct
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # numpy is not needed
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def load_fashion(folder):
    for name in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            raw = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()
            magic, n, h, w = struct.unpack(">IIII", raw[:16])
            assert magic == 0x803, "not an IDX image file"
            x = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(n, 1, h, w)
            return x.float() / 255.0 * 2.0 - 1.0
    raise SystemExit(f"Fashion-MNIST not found in {folder} (apt-get install dataset-fashion-mnist)")


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class Energy(nn.Module):
    """E(x); the tutorial's network outputs -E, which is the same function up to the sign."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=4), Swish(),   # 16x16
            nn.Conv2d(16, 32, 3, stride=2, padding=1), Swish(),  # 8x8
            nn.Conv2d(32, 64, 3, stride=2, padding=1), Swish(),  # 4x4
            nn.Conv2d(64, 64, 3, stride=2, padding=1), Swish(),  # 2x2
            nn.Flatten(), nn.Linear(256, 64), Swish(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def langevin(model, x, steps, step_size=10.0, clamp=0.03, noise=0.005):
    for p in model.parameters():
        p.requires_grad_(False)
    x = x.clone().requires_grad_(True)
    for _ in range(steps):
        with torch.no_grad():
            x.add_(torch.randn_like(x) * noise).clamp_(-1.0, 1.0)
        (g,) = torch.autograd.grad(model(x).sum(), x)
        with torch.no_grad():
            x.add_(-step_size * g.clamp(-clamp, clamp)).clamp_(-1.0, 1.0)
    for p in model.parameters():
        p.requires_grad_(True)
    return x.detach()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, required=True, help="training wall-clock budget")
    ap.add_argument("--dir", default="fashion-run")
    ap.add_argument("--data", default=os.environ.get("SANCE_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh-steps", type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    os.makedirs(a.dir, exist_ok=True)
    data = load_fashion(a.data)
    n = data.shape[0]
    model = Energy()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.0, 0.999))
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.97)
    buffer = [torch.rand(1, 1, 28, 28) * 2 - 1 for _ in range(128)]
    batch, start, step, total, perm = 128, time.time(), 0, 0, torch.randperm(n)
    print(f"peer: UvA short-run recipe on {n} Fashion-MNIST images, {a.minutes} min on {a.threads} threads", flush=True)
    while time.time() - start < 60 * a.minutes:
        i = (step * batch) % n
        if i + batch > n:  # a new epoch
            perm, step = torch.randperm(n), 0
            sched.step()
            continue
        real = (data[perm[i:i + batch]] + 0.005 * torch.randn(batch, 1, 28, 28)).clamp(-1, 1)
        fresh = int(torch.binomial(torch.tensor(float(batch)), torch.tensor(0.05)))
        init = torch.cat([torch.rand(fresh, 1, 28, 28) * 2 - 1] + random.choices(buffer, k=batch - fresh), 0)
        fake = langevin(model, init, 60)
        buffer = list(fake.split(1, 0)) + buffer
        buffer = buffer[:8192]
        e_real, e_fake = model(real), model(fake)
        loss = e_real.mean() - e_fake.mean() + 0.1 * (e_real.square().mean() + e_fake.square().mean())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        step, total = step + 1, total + 1
        if total % 50 == 0:
            print(f"{time.time() - start:7.0f} s  step {total}  E(data) {e_real.mean():.3f}  "
                  f"E(samples) {e_fake.mean():.3f}", flush=True)
    secs = time.time() - start
    last = buffer[:1000] if len(buffer) >= 1000 else random.choices(buffer, k=1000)
    buf = langevin(model, torch.cat(last, 0), 60)
    fresh = torch.cat([langevin(model, torch.rand(500, 1, 28, 28) * 2 - 1, a.fresh_steps) for _ in range(2)], 0)
    for name, x in (("peer-buffer.f32", buf), ("peer-fresh.f32", fresh)):
        out = array.array("f", x.clamp(-1, 1).reshape(-1).tolist())
        if sys.byteorder == "big":
            out.byteswap()
        with open(os.path.join(a.dir, name), "wb") as f:
            f.write(out.tobytes())
    print(f"trained {total} steps in {secs:.0f} s; wrote {a.dir}/peer-buffer.f32 and {a.dir}/peer-fresh.f32", flush=True)


if __name__ == "__main__":
    main()
