"""The PyTorch twin of a sance model, written as ordinary torch.nn modules.

A sance checkpoint names its tensors as `state_dict()` names these modules, so
`SanceModel(cfg).load_state_dict(safetensors.torch.load_file(path), strict=False)` loads one
with no renaming: the model's keys (`energy.net.0.weight`, ..., `snapshot.net.0.weight`, ...,
`average.net.0.weight`, ... when `ema_decay` > 0, `c`, `scaling.shift` and `scaling.scale` when
the model fitted its scaling) all match, and the only keys left over are what training alone needs
(`optimizer.exp_avg.<param>`, `optimizer.exp_avg_sq.<param>`, `replay`).

`cfg` is the checkpoint's config (JSON in the metadata key "config"), as a dict.
"""
import torch
from torch import nn


def activation(cfg):
    return nn.SiLU() if cfg["activation"] == 0 else nn.LeakyReLU(0.2)


class SumPool(nn.Module):
    """Global sum pooling over the spatial dimensions: [N, C, H, W] -> [N, C]."""

    def forward(self, x):
        return x.sum(dim=(2, 3))


class MLPEnergy(nn.Module):
    """data_dim -> hidden_width x hidden_layers -> 1, the last layer without bias."""

    def __init__(self, cfg):
        super().__init__()
        layers, fan_in = [], cfg["data_dim"]
        for _ in range(cfg["hidden_layers"]):
            layers += [nn.Linear(fan_in, cfg["hidden_width"]), activation(cfg)]
            fan_in = cfg["hidden_width"]
        layers.append(nn.Linear(fan_in, 1, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(1)


class ConvEnergy(nn.Module):
    """3x3 conv (C -> w), hidden_layers stride-2 3x3 convs doubling the channels, an activation
    after each, global sum pooling (conv_head 0) or flattening (conv_head 1, DENSE), a linear
    layer to a scalar without bias."""

    def __init__(self, cfg):
        super().__init__()
        layers, cin, cout = [], cfg["channels"], cfg["hidden_width"]
        for i in range(cfg["hidden_layers"] + 1):
            if i > 0:
                cout *= 2
            layers += [nn.Conv2d(cin, cout, 3, stride=1 if i == 0 else 2, padding=1), activation(cfg)]
            cin = cout
        if cfg.get("conv_head", 0) == 1:
            h, w = cfg["height"], cfg["width"]
            for _ in range(cfg["hidden_layers"]):
                h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
            layers += [nn.Flatten(), nn.Linear(cin * h * w, 1, bias=False)]
        else:
            layers += [SumPool(), nn.Linear(cin, 1, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(1)


class Scaling(nn.Module):
    """The data's fitted scaling (checkpoint format 4, `scaling` AUTO): the networks see
    z = (x - shift) / scale, and the energy of x adds the log-Jacobian sum(log scale)."""

    def __init__(self, dim):
        super().__init__()
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))


class InUnits(nn.Module):
    """An energy network seen from the data's units through a scaling."""

    def __init__(self, energy, scaling):
        super().__init__()
        self.energy, self.scaling = energy, scaling

    def forward(self, x):
        z = (x - self.scaling.shift) / self.scaling.scale
        return self.energy(z) + self.scaling.scale.log().sum()


class SanceModel(nn.Module):
    """The model E_theta, the noise snapshot E_theta_bar, the parameters' moving average (the
    energy the library's calls use, when `ema_decay` > 0), the NCE offset c, and, with
    `scaled` (the checkpoint holds `scaling.shift` and `scaling.scale`), the data's scaling."""

    def __init__(self, cfg, scaled=False):
        super().__init__()
        energy = MLPEnergy if cfg["arch"] == 0 else ConvEnergy
        self.energy = energy(cfg)
        self.snapshot = energy(cfg)
        if cfg.get("ema_decay", 0) > 0:
            self.average = energy(cfg)
        self.c = nn.Parameter(torch.zeros(()))
        if scaled:
            self.scaling = Scaling(cfg["data_dim"])

    def used(self):
        """The energy of x that sance_ebm_energy, _sample and _log_z evaluate."""
        net = getattr(self, "average", self.energy)
        return InUnits(net, self.scaling) if hasattr(self, "scaling") else net

    @staticmethod
    def sample_shape(cfg):
        return [cfg["data_dim"]] if cfg["arch"] == 0 else [cfg["channels"], cfg["height"], cfg["width"]]
