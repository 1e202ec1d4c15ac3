"""sance against the PyTorch a researcher writes, in one process on one libtorch.

    bench/speed                      # every row, CPU (and CUDA when a GPU is present)
    bench/speed --rows langevin-128-256,train-8gaussians --rounds 5 --json out.json

sance runs through its C API (bench/sance_ctypes.py); PyTorch eager and torch.compile run
the same computation (bench/pytorch_ebm.py) on the same network weights, threads and shapes.
Each row alternates the implementations (A B C, then C B A, ...) for --rounds rounds; each
measurement repeats the call until it lasts --min-time seconds. Printed: medians, min-max and
the ratios reference time / sance time (> 1: sance is faster), plus a JSON file. torch.compile's
compile time is reported apart and never enters the medians.

`--growth` instead times sance's Langevin step against batch, width and data dimension, each
point beside the machine's sgemm rate on its largest product (the roofline), with the log-log
slope of each sweep. The rows print their nominal GFLOP/s and its share of that rate too.

`--phases` instead times the training step with one part changed at a time (the moving
average off, K = 1, K = 0, the unadjusted sampler, one sampler step, classic NCE), alternated in
the same rounds: what each part costs.

`--threads` instead measures one intra-op thread against the default two for small batches
(docs/speed.md, "Threads"), with sance's own thread policy off.

The memory row trains 20,000 default steps in a child process that loads only sance and
reports its resident set at steps 1,000 and 20,000.
"""
import argparse
import ctypes
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_ebm import SanceModel, Trainer, langevin_compiled, langevin_eager  # noqa: E402
from sance_ctypes import Sance, StepStats  # noqa: E402

# Sampler rows: the untrained model, no clip, no clamp; `steps` Langevin steps per call.
LANGEVIN = [
    # name, arch, width, batch, target vs eager, target vs compile
    ("langevin-128-256", dict(arch=0, data_dim=2, hidden_width=128, hidden_layers=3), 256, 1.8, 1.6),
    ("langevin-128-4096", dict(arch=0, data_dim=2, hidden_width=128, hidden_layers=3), 4096, 1.3, None),
    ("langevin-1024-256", dict(arch=0, data_dim=2, hidden_width=1024, hidden_layers=3), 256, 1.0, None),
    # Fashion-MNIST's conv energy (experiments/src/images/setup.rs, fashion_config).
    ("langevin-conv28-64", dict(arch=1, channels=1, height=28, width=28, hidden_width=16, hidden_layers=2), 64, 1.2, None),
]
# Training rows: sance's defaults, and the 16-D and 8x8-image settings of
# experiments/src/images/setup.rs (mixture_config, image_config("conv", 8, 8)). The rows on the
# defaults also time sance with 0.4's sampler and units (20 unadjusted steps of a fixed step, no
# scaling), alternated in the same rounds: what the tuned MALA sampler and the scaling cost.
SANCE_04 = dict(scaling=1, langevin=dict(steps=20, step_size=0.005, noise_std=0.1, metropolis=0, target_acceptance=0.0))
IMAGE_LANGEVIN = dict(steps=40, step_size=1.0, noise_std=0.01, grad_clip=0.0, grad_clamp=0.0, clamp_min=-1.0, clamp_max=1.0, init=1, init_scale=1.0, metropolis=0, target_acceptance=0.0)
# The last entry of each row is its target against eager PyTorch (issue 30): 3x on the
# defaults, 2.5x with the snapshot refreshed every step (K = 1: the population's reweighting
# pass over its 8,192 chains every step, in both implementations).
TRAIN = [
    ("train-8gaussians", dict(), "8gaussians", 256, 3.0),
    ("train-16d", dict(data_dim=16), "gaussians16d", 256, 3.0),
    ("train-8gaussians-k1", dict(noise_update_interval=1), "8gaussians", 256, 2.5),
    ("train-16d-k1", dict(data_dim=16, noise_update_interval=1), "gaussians16d", 256, 2.5),
    (
        "train-digits-conv",
        dict(arch=1, channels=1, height=8, width=8, hidden_width=32, hidden_layers=1, data_noise_std=0.03,
             learning_rate=1e-4, noise_update_interval=1, replay_capacity=10000, replay_reinit_prob=0.05,
             langevin=IMAGE_LANGEVIN),
        "digits", 256, 2.0,
    ),
]


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device, min_time, reps=None):
    """Seconds per call of fn, repeating it `reps` times (calibrated to min_time when None)."""
    if reps is None:
        reps, t = 1, 0.0
        while True:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            sync(device)
            t = time.perf_counter() - t0
            if t >= min_time / 4 or reps >= 1 << 16:
                break
            reps *= 2
        reps = max(1, int(reps * min_time / max(t, 1e-9)))
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / reps, reps


def rounds(impls, n_rounds, device, min_time, per_call_units):
    """impls: {name: fn}. Alternates their order round by round; returns {name: [ms per unit]}."""
    names = list(impls)
    reps = {k: timed(impls[k], device, min_time)[1] for k in names}  # warm and calibrate
    out = {k: [] for k in names}
    for r in range(n_rounds):
        for k in names if r % 2 == 0 else reversed(names):
            s, _ = timed(impls[k], device, min_time, reps[k])
            out[k].append(1e3 * s / per_call_units)
    return out


def summary(ms):
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "runs": ms}


def mlp_forward_flops(cfg):
    """FLOPs of one row's forward pass through an MLP energy (multiply-adds count two):
    data_dim → width, (layers − 1) × width → width, width → 1."""
    d, w, layers = cfg.data_dim, cfg.hidden_width, cfg.hidden_layers
    return 2 * (d * w + (layers - 1) * w * w + w)


def langevin_flops(cfg, batch):
    """Nominal FLOPs of one Langevin step: the forward pass and the input gradient, as much again."""
    return 2 * batch * mlp_forward_flops(cfg)


def train_flops(cfg, batch):
    """Nominal FLOPs of one training step on an MLP: the noise chains' Langevin steps (MALA
    evaluates the energy at the proposal too: no extra pass beyond the gradient's), the loss's
    forward passes of θ and θ̄ on data and noise, θ's parameter gradient (twice a forward),
    and the population's refresh pass over the buffer every K steps."""
    f = mlp_forward_flops(cfg)
    m = int(round(cfg.noise_ratio * batch))
    k = max(cfg.noise_update_interval, 1)
    return cfg.langevin.steps * 2 * m * f + 4 * (batch + m) * f + cfg.replay_capacity * f / k


_SGEMM = {}


def sgemm_gflops(m, k, n, device, min_time=0.2):
    """The machine's sgemm rate on one [m, k] × [k, n] product in this process and on its
    threads (torch.mm, MKL on the CPU): the roofline the rows are held against. Best of 5."""
    key = (m, k, n, device)
    if key not in _SGEMM:
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        c = torch.empty(m, n, device=device)
        best = min(timed(lambda: torch.mm(a, b, out=c), device, min_time)[0] for _ in range(5))
        _SGEMM[key] = 2 * m * k * n / best / 1e9
    return _SGEMM[key]


def roofline(cfg, batch, flops, ms, device):
    """Achieved GFLOP/s of `flops` in `ms`, against sgemm on the row's widest product
    ([batch, width] × [width, width])."""
    w = cfg.hidden_width
    peak = sgemm_gflops(batch, w, w, device)
    got = flops / (ms * 1e-3) / 1e9
    return dict(gflops=got, sgemm_gflops=peak, fraction=got / peak, sgemm_shape=[batch, w, w])


def load_safetensors(path):
    """The float32 tensors of a safetensors file: the `safetensors` package when installed,
    else the format read directly (8-byte header length, JSON header, raw little-endian data),
    so that the benchmark runs where only PyTorch is (the GPU bundle, docs/gpu.md)."""
    try:
        from safetensors.torch import load_file

        return load_file(path)
    except ImportError:
        with open(path, "rb") as f:
            raw = f.read()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        out = {}
        for name, t in header.items():
            if name == "__metadata__" or t["dtype"] != "F32":
                continue
            a, b = t["data_offsets"]
            buf = bytearray(raw[8 + n + a:8 + n + b])
            out[name] = torch.frombuffer(buf, dtype=torch.float32).reshape(t["shape"]).clone()
        return out


def load_twin(sance, h, cfg, device):
    """A twin.py model holding exactly the sance handle's θ."""
    load_file = load_safetensors

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        sance.save(h, path)
        model = SanceModel(cfg.as_dict())
        model.load_state_dict(load_file(path), strict=False)
    energy = model.energy.to(device)
    for p in energy.parameters():
        p.requires_grad_(False)
    return energy


def configure(sance, overrides, device_id):
    cfg = sance.default_config()
    for k, v in overrides.items():
        if k == "langevin":
            for lk, lv in v.items():
                setattr(cfg.langevin, lk, lv)
        else:
            setattr(cfg, k, v)
    cfg.device = device_id
    return cfg


def starts(cfg, batch):
    """The sampler rows' starting chains: `batch` samples uniform in [−1, 1], seed 1."""
    return torch.rand([batch] + cfg.sample_shape(), generator=torch.Generator().manual_seed(1)) * 2 - 1


def on_libtorch_ops(fn):
    """fn with SANCE_KERNELS=libtorch: the MLP's libtorch operations instead of the fused CPU
    passes (the library reads the variable at each sampler run), for the rows' comparison."""

    def run():
        os.environ["SANCE_KERNELS"] = "libtorch"
        try:
            fn()
        finally:
            del os.environ["SANCE_KERNELS"]

    return run


def sample_call(sance, h, x0, langevin):
    """A timed call: sance_ebm_sample_from on a copy of the chains `x0`, reset to them first."""
    work = x0.clone()
    ptr = ctypes.c_void_p(work.data_ptr())

    def run():
        work.copy_(x0)
        sance.check(sance.sample_from(h, ptr, x0.shape[0], langevin), "sample_from")

    return run


def langevin_row(sance, name, overrides, batch, args, device, device_id):
    cfg = configure(sance, overrides, device_id)
    cfg.langevin.steps = args.langevin_steps
    # The loop PyTorch runs below: unadjusted Langevin with a fixed step (the default is MALA).
    cfg.langevin.metropolis = 0
    cfg.langevin.target_acceptance = 0.0
    h = sance.new(cfg)
    lg = cfg.langevin
    lgd = {n: getattr(lg, n) for n, _ in type(lg)._fields_}
    energy = load_twin(sance, h, cfg, device)
    x0 = starts(cfg, batch)
    # Same computation: without noise, sance's chains and eager PyTorch's agree.
    quiet = dict(lgd, noise_std=0.0, steps=5)
    chk = x0.clone()
    lg_quiet = type(lg)(**quiet)
    sance.check(sance.sample_from(h, ctypes.c_void_p(chk.data_ptr()), batch, lg_quiet), "sample_from")
    want = langevin_eager(energy, x0.to(device), quiet).cpu()
    err = ((chk - want).norm() / want.norm()).item()
    if err > 1e-4:
        raise RuntimeError(f"{name}: sance and PyTorch chains differ (relative {err:.2e})")
    run_sance = sample_call(sance, h, x0, lg)

    def run_eager():
        langevin_eager(energy, x0.to(device), lgd).cpu()

    impls = {"sance": run_sance, "eager": run_eager}
    if device == "cpu" and cfg.arch == 0:
        impls["sance_libtorch"] = on_libtorch_ops(run_sance)
    compile_s = None
    if args.compile and cfg.arch == 0:
        try:
            compiled = langevin_compiled(energy, lgd)
            t0 = time.perf_counter()
            compiled(x0.to(device)).cpu()
            compile_s = time.perf_counter() - t0
            impls["compile"] = lambda: compiled(x0.to(device)).cpu()
        except Exception as e:  # noqa: BLE001 - reported, the row still runs
            print(f"  {name}: torch.compile failed: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
    res = rounds(impls, args.rounds, device, args.min_time, args.langevin_steps)
    sance.free(h)
    return res, compile_s, err


def data_pool(sance, dataset, cfg, n=20000):
    dim = 1
    for s in cfg.sample_shape():
        dim *= s
    if dataset == "digits":
        import gzip

        rows = gzip.open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "digits", "digits.csv.gz"), "rt").read().split()
        px = torch.tensor([[float(v) for v in r.split(",")[:64]] for r in rows if r.count(",") >= 64]) / 16 * 2 - 1
        return px[torch.randint(0, len(px), (n,), generator=torch.Generator().manual_seed(0))].contiguous()
    out = torch.empty(n, dim)
    sance.toy(dataset, n, 0, ctypes.c_void_p(out.data_ptr()))
    return out


def train_row(sance, name, overrides, dataset, batch, args, device, device_id):
    cfg = configure(sance, overrides, device_id)
    h = sance.new(cfg)
    pool = data_pool(sance, dataset, cfg)
    shape = [batch] + cfg.sample_shape()
    batches = [pool[i * batch:(i + 1) * batch].reshape(shape).contiguous() for i in range(len(pool) // batch)]
    ref = Trainer(cfg.as_dict(), device)
    stats = StepStats()
    state = {"sance": 0, "ref": 0, "old": 0}
    # The rows on the defaults (no overrides of the noise) also run sance 0.4's sampler and units.
    old = sance.new(configure(sance, {**overrides, **SANCE_04}, device_id)) if name in ("train-8gaussians", "train-16d") else None

    def run_old():
        x = batches[state["old"] % len(batches)]
        state["old"] += 1
        s = sance.train_step(old, ctypes.c_void_p(x.data_ptr()), batch, stats)
        if s not in (0, 5):
            raise RuntimeError(f"train_step: {s}: {sance.lib.sance_last_error().decode()}")

    def run_sance():
        x = batches[state["sance"] % len(batches)]
        state["sance"] += 1
        s = sance.train_step(h, ctypes.c_void_p(x.data_ptr()), batch, stats)
        if s not in (0, 5):  # 5: a skipped non-finite step still costs its time
            raise RuntimeError(f"train_step: {s}: {sance.lib.sance_last_error().decode()}")

    def run_ref():
        x = batches[state["ref"] % len(batches)]
        state["ref"] += 1
        ref.step(x.to(device))

    # Both past the replay buffer's filling and the first refreshes before timing.
    impls = {"sance": run_sance, "eager": run_ref}
    if device == "cpu" and cfg.arch == 0:
        impls["sance_libtorch"] = on_libtorch_ops(run_sance)
    if old is not None:
        impls["sance_0.4"] = run_old
    for _ in range(args.warmup_steps):
        for f in impls.values():
            f()
    res = rounds(impls, args.rounds, device, args.min_time, 1)
    sance.free(h)
    if old is not None:
        sance.free(old)
    return res


def scaling(sance, args):
    """Time per Langevin step against batch and width (MLP 2 -> w x 3 -> 1), sance and eager,
    with the arithmetic rate sance reaches; writes the table and an SVG plot."""
    widths, batches = [32, 128, 512], [16, 64, 256, 1024, 4096]
    args.compile = False
    cells = []
    for w in widths:
        for b in batches:
            ov = dict(arch=0, data_dim=2, hidden_width=w, hidden_layers=3)
            res, _, _ = langevin_row(sance, f"scaling-{w}-{b}", ov, b, args, "cpu", -1)
            s, e = statistics.median(res["sance"]), statistics.median(res["eager"])
            # Forward 2·b·(2w + 2w² + w) FLOPs; the input gradient (no weight gradients) as much.
            flops = 2 * 2 * b * (2 * w + 2 * w * w + w)
            cells.append(dict(width=w, batch=b, sance_ms=s, eager_ms=e, gflops=flops / (s * 1e-3) / 1e9))
            print(f"width {w:5d} batch {b:5d}: sance {s:8.3f} ms, eager {e:8.3f} ms (x{e / s:.2f}), sance {cells[-1]['gflops']:6.1f} GFLOP/s", flush=True)
    svg = scaling_svg(cells, widths, batches)
    with open(args.scaling, "w") as f:
        f.write(svg)
    print(f"wrote {args.scaling}")
    return cells


def sance_step_ms(sance, cfg, batch, args):
    """sance's time per Langevin step (unadjusted, fixed step) on `batch` chains: median of
    args.rounds measurements of args.langevin_steps steps each."""
    cfg.langevin.steps = args.langevin_steps
    cfg.langevin.metropolis = 0
    cfg.langevin.target_acceptance = 0.0
    h = sance.new(cfg)
    run = sample_call(sance, h, starts(cfg, batch), cfg.langevin)
    _, reps = timed(run, "cpu", args.min_time)
    ms = statistics.median(1e3 * timed(run, "cpu", args.min_time, reps)[0] / args.langevin_steps for _ in range(args.rounds))
    sance.free(h)
    return ms


def slope(xs, ys):
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def growth_table(sance, args):
    """How sance's Langevin step grows with batch, width and data dimension (MLP, 3 hidden
    layers; the others held at batch 256, width 128, dimension 2), each point's nominal GFLOP/s
    against sgemm on its [batch, width] × [width, width] product, and the log-log slope of
    each sweep (1: the time grows like the argument)."""
    sweeps = [
        ("batch", [64, 256, 1024, 4096, 8192], lambda v: (2, 128, v)),
        ("width", [32, 64, 128, 256, 512, 1024], lambda v: (2, v, 256)),
        ("data_dim", [2, 16, 64, 256, 784], lambda v: (v, 128, 256)),
    ]
    out = []
    for name, values, at in sweeps:
        times = []
        for v in values:
            d, w, b = at(v)
            cfg = configure(sance, dict(arch=0, data_dim=d, hidden_width=w, hidden_layers=3), -1)
            ms = sance_step_ms(sance, cfg, b, args)
            rf = roofline(cfg, b, langevin_flops(cfg, b), ms, "cpu")
            times.append(ms)
            out.append(dict(sweep=name, value=v, data_dim=d, width=w, batch=b, sance_ms=ms, **rf))
            print(f"{name:>8} {v:5d} (dim {d:3d}, width {w:4d}, batch {b:5d}): {ms:8.3f} ms per step, "
                  f"{rf['gflops']:6.1f} GFLOP/s = {100 * rf['fraction']:3.0f} % of sgemm's {rf['sgemm_gflops']:.1f}", flush=True)
        k = slope(values, times)
        out.append(dict(sweep=name, slope=k))
        print(f"{name:>8}: log-log slope {k:.2f}\n", flush=True)
    return out


# The training step with one part changed at a time, alternated in the same rounds: the
# differences say what each part costs (docs/speed.md, "Where the training step's time goes").
PHASES = [
    ("defaults", {}),
    ("no moving average (ema_decay 0)", dict(ema_decay=0.0)),
    ("refresh every step (K = 1)", dict(noise_update_interval=1)),
    ("never refreshed (K = 0)", dict(noise_update_interval=0)),
    ("unadjusted, fixed step (no MALA test, no tuning)", dict(langevin=dict(metropolis=0, target_acceptance=0.0))),
    ("1 sampler step instead of 20", dict(langevin=dict(steps=1))),
    ("classic NCE (no sampler, no buffer)", dict(noise=1)),
]


def phases_table(sance, args):
    """ms per training step of the defaults and of each variant in PHASES, for 8gaussians and
    the 16-D mixture (batch 256), alternating, medians of args.rounds rounds."""
    out = []
    for dataset, dim in (("8gaussians", 2), ("gaussians16d", 16)):
        impls = {}
        handles = []
        for label, ov in PHASES:
            cfg = configure(sance, dict(data_dim=dim, **ov), -1)
            h = sance.new(cfg)
            handles.append(h)
            pool = data_pool(sance, dataset, cfg)
            batches = [pool[i * 256:(i + 1) * 256].contiguous() for i in range(len(pool) // 256)]
            state = {"i": 0}
            stats = StepStats()

            def run(h=h, batches=batches, state=state, stats=stats):
                x = batches[state["i"] % len(batches)]
                state["i"] += 1
                st = sance.train_step(h, ctypes.c_void_p(x.data_ptr()), 256, stats)
                if st not in (0, 5):
                    raise RuntimeError(f"train_step: {st}: {sance.lib.sance_last_error().decode()}")

            for _ in range(args.warmup_steps):
                run()
            impls[label] = run
        res = rounds(impls, args.rounds, "cpu", args.min_time, 1)
        base = statistics.median(res["defaults"])
        print(f"{dataset} (batch 256): ms per training step, and the difference to the defaults")
        for label, _ in PHASES:
            m = statistics.median(res[label])
            out.append(dict(dataset=dataset, variant=label, ms=m, runs=res[label]))
            print(f"  {label:<50} {m:8.3f} ms  {m - base:+8.3f}", flush=True)
        print()
        for h in handles:
            sance.free(h)
    return out


def threads_table(sance, args):
    """Langevin time with the calling thread's OpenMP count at 1 against libtorch's default,
    alternating, per net and batch. The count is set through the OpenMP runtime libtorch loaded
    (found in torch/lib), on this thread only, as sance's policy does."""
    omp = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1"))
    default = torch.get_num_threads()
    mlp = lambda w: dict(arch=0, data_dim=2, hidden_width=w, hidden_layers=3)  # noqa: E731
    conv = dict(arch=1, channels=1, height=28, width=28, hidden_width=16, hidden_layers=2)
    cases = [(f"mlp-{w}", mlp(w), b) for w in (32, 128, 512) for b in (4, 16, 32, 64, 128)]
    cases += [("conv28", conv, b) for b in (1, 4, 16)]
    cells = []
    for name, ov, b in cases:
        cfg = configure(sance, ov, -1)
        cfg.langevin.steps = 20
        h = sance.new(cfg)
        run = sample_call(sance, h, starts(cfg, b), cfg.langevin)
        t = {default: [], 1: []}
        for r in range(args.rounds):
            for n in ((default, 1) if r % 2 == 0 else (1, default)):
                omp.omp_set_num_threads(n)
                t[n].append(timed(run, "cpu", args.min_time)[0] / cfg.langevin.steps * 1e3)
        omp.omp_set_num_threads(default)
        sance.free(h)
        one, dflt = statistics.median(t[1]), statistics.median(t[default])
        cells.append(dict(net=name, batch=b, one_ms=one, default_ms=dflt, default_threads=default, ratio=one / dflt))
        print(f"{name:<8} batch {b:4d}: 1 thread {one:8.4f} ms, {default} threads {dflt:8.4f} ms, ratio {one / dflt:.2f}", flush=True)
    return cells


def scaling_svg(cells, widths, batches):
    """A log-log plot: ms per step against batch, one colour per width; sance solid, eager dashed."""
    import math

    W, H, L, B, T, R = 520, 340, 60, 45, 20, 110
    ys = [c[k] for c in cells for k in ("sance_ms", "eager_ms")]
    ylo, yhi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    xlo, xhi = math.log2(batches[0]), math.log2(batches[-1])
    px = lambda b: L + (math.log2(b) - xlo) / (xhi - xlo) * (W - L - R)  # noqa: E731
    py = lambda v: H - B - (math.log10(v) - ylo) / (yhi - ylo) * (H - B - T)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    for e in range(ylo, yhi + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
    for b in batches:
        x = px(b)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{H - B + 15}" text-anchor="middle">{b}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">batch (chains)</text>')
    out.append(f'<text x="14" y="{(T + H - B) / 2}" transform="rotate(-90 14 {(T + H - B) / 2})" text-anchor="middle">ms per Langevin step</text>')
    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"]
    for i, w in enumerate(widths):
        for key, dash in (("sance_ms", ""), ("eager_ms", ' stroke-dasharray="5,4"')):
            pts = " ".join(f"{px(c['batch']):.1f},{py(c[key]):.1f}" for c in cells if c["width"] == w)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colours[i]}" stroke-width="2"{dash}/>')
        y = T + 14 + 16 * i
        out.append(f'<line x1="{W - R + 10}" x2="{W - R + 30}" y1="{y}" y2="{y}" stroke="{colours[i]}" stroke-width="2"/>')
        out.append(f'<text x="{W - R + 35}" y="{y + 4}">width {w}</text>')
    y = T + 14 + 16 * len(widths) + 8
    out.append(f'<text x="{W - R + 10}" y="{y}">solid: sance</text><text x="{W - R + 10}" y="{y + 14}">dashed: eager</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def rss_probe(steps):
    """Child process: sance only. Trains the defaults and prints the RSS at 1,000 and `steps`."""
    sance = Sance()
    cfg = sance.default_config()
    cfg.device = -1
    h = sance.new(cfg)
    pool = torch.empty(256 * 64, 2)
    sance.toy("8gaussians", len(pool), 0, ctypes.c_void_p(pool.data_ptr()))
    stats = StepStats()
    rss = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for t in range(1, steps + 1):
        x = pool[(t % 64) * 256:(t % 64 + 1) * 256]
        sance.check(sance.train_step(h, ctypes.c_void_p(x.data_ptr()), 256, stats), "train_step")
        if t in (1000, steps):
            with open("/proc/self/statm") as f:
                rss[t] = int(f.read().split()[1]) * page
    print(json.dumps({"rss_1000": rss[1000], f"rss_{steps}": rss[steps]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="all", help="comma-separated row names, or all")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement")
    ap.add_argument("--langevin-steps", type=int, default=50)
    ap.add_argument("--warmup-steps", type=int, default=60)
    ap.add_argument("--memory-steps", type=int, default=20000)
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (both when a GPU is present)")
    ap.add_argument("--json", default="bench/speed.json")
    ap.add_argument("--scaling", metavar="SVG", help="instead of the rows: time against batch and width, plot to SVG")
    ap.add_argument("--threads", action="store_true", help="instead of the rows: one thread against the default, small batches")
    ap.add_argument("--phases", action="store_true", help="instead of the rows: the training step with one part changed at a time")
    ap.add_argument("--growth", action="store_true", help="instead of the rows: sance's step against batch, width and data dimension, with the roofline")
    ap.add_argument("--rss-probe", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_probe:
        return rss_probe(args.rss_probe)

    def own_table(key, cells):
        """A table of its own instead of the rows: its cells go to --json under `key`."""
        with open(args.json, "w") as f:
            json.dump({key: cells}, f, indent=1)

    def machine(sance, how):
        print(f"{sance.version()}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
              f"{platform.processor() or platform.machine()}; {how}\n")

    if args.threads:
        # sance's own policy would change the count under the measurement: off.
        os.environ["SANCE_NUM_THREADS"] = "host"
        return own_table("threads", threads_table(Sance(), args))
    # Same threads on both sides: sance's automatic count (one thread for MLPs, the cores for
    # convs) would otherwise differ from PyTorch's default under the comparison.
    os.environ.setdefault("SANCE_NUM_THREADS", str(torch.get_num_threads()))
    sance = Sance()
    if args.phases:
        machine(sance, f"{args.rounds} alternating rounds, medians")
        return own_table("phases", phases_table(sance, args))
    if args.growth:
        machine(sance, f"{args.rounds} rounds of {args.langevin_steps} steps, medians")
        return own_table("growth", growth_table(sance, args))
    if args.scaling:
        return own_table("scaling", scaling(sance, args))
    devices = ["cpu"]
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available() and sance.cuda_devices() > 0):
        devices = ["cuda"] if args.device == "cuda" else ["cpu", "cuda"]
    wanted = None if args.rows == "all" else set(args.rows.split(","))
    known = {r[0] for r in LANGEVIN} | {r[0] for r in TRAIN} | {"memory"}
    if wanted and wanted - known:
        sys.exit(f"unknown rows {sorted(wanted - known)}; known: {sorted(known)}")
    env = {
        "sance": sance.version(),
        "library": sance.path,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if "cuda" in devices else None,
    }
    print(f"{env['sance']} vs PyTorch {env['torch']}, {env['threads']} threads, {env['cores']} cores"
          + (f", GPU {env['gpu']}" if env["gpu"] else ", no GPU"))
    print(f"{args.rounds} alternating rounds, medians; ratio = PyTorch time / sance time (> 1: sance faster)\n")
    rows = []
    for device in devices:
        device_id = -1 if device == "cpu" else 0
        for name, ov, batch, t_eager, t_compile in LANGEVIN:
            if wanted and name not in wanted:
                continue
            res, compile_s, err = langevin_row(sance, name, ov, batch, args, device, device_id)
            rows.append(dict(row=name, device=device, unit="ms per Langevin step", batch=batch, compile_s=compile_s,
                             check_rel_err=err, targets={"eager": t_eager, "compile": t_compile},
                             **{k: summary(v) for k, v in res.items()}))
            cfg = configure(sance, ov, device_id)
            if cfg.arch == 0:
                flops = langevin_flops(cfg, batch)
                rows[-1]["roofline"] = {k: roofline(cfg, batch, flops, statistics.median(v), device) for k, v in res.items()}
            report(rows[-1])
        for name, ov, dataset, batch, target in TRAIN:
            if wanted and name not in wanted:
                continue
            res = train_row(sance, name, ov, dataset, batch, args, device, device_id)
            rows.append(dict(row=name, device=device, unit="ms per training step", batch=batch,
                             targets={"eager": target}, **{k: summary(v) for k, v in res.items()}))
            cfg = configure(sance, ov, device_id)
            if cfg.arch == 0:
                flops = train_flops(cfg, batch)
                rows[-1]["roofline"] = {k: roofline(cfg, batch, flops, statistics.median(v), device) for k, v in res.items()}
            report(rows[-1])
    if wanted is None or "memory" in wanted:
        out = subprocess.run([sys.executable, __file__, "--rss-probe", str(args.memory_steps)], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"memory probe failed: {out.stderr[-2000:]}")
        rss = json.loads(out.stdout.strip().splitlines()[-1])
        a, b = rss["rss_1000"], rss[f"rss_{args.memory_steps}"]
        growth = (b - a) / a
        rows.append(dict(row="memory", device="cpu", rss_1000=a, rss_end=b, steps=args.memory_steps, growth=growth))
        ok = "meets" if abs(growth) <= 0.01 else "MISSES"
        print(f"memory: RSS {a / 2**20:.1f} MiB at step 1000, {b / 2**20:.1f} MiB at step {args.memory_steps}: "
              f"{100 * growth:+.2f} % ({ok} the 1 % target)")
    with open(args.json, "w") as f:
        json.dump({"env": env, "args": vars(args), "rows": rows}, f, indent=1)
    print(f"\nwrote {args.json}")


def report(r):
    s = r["sance"]["median_ms"]
    cells = [f"{r['row']:<20} {r['device']:<4} sance {s:8.3f} ms [{r['sance']['min_ms']:.3f}-{r['sance']['max_ms']:.3f}]"]
    for ref in ("eager", "compile", "sance_libtorch", "sance_0.4"):
        if ref in r:
            m = r[ref]["median_ms"]
            target = r["targets"].get(ref)
            verdict = "" if target is None else (" meets" if m / s >= target else " MISSES") + f" >= {target}"
            cells.append(f"{ref} {m:8.3f} ms [{r[ref]['min_ms']:.3f}-{r[ref]['max_ms']:.3f}] x{m / s:.2f}{verdict}")
    if r.get("compile_s") is not None:
        cells.append(f"(compile {r['compile_s']:.1f} s)")
    print(" | ".join(cells), flush=True)
    if "roofline" in r:
        rf = r["roofline"]
        m, k, n = rf["sance"]["sgemm_shape"]
        print(f"{'':<26}GFLOP/s (nominal): " + ", ".join(
            f"{name} {v['gflops']:.1f} ({100 * v['fraction']:.0f} %)" for name, v in rf.items())
            + f" of sgemm's {rf['sance']['sgemm_gflops']:.1f} on [{m}x{k}]·[{k}x{n}]", flush=True)


if __name__ == "__main__":
    main()
