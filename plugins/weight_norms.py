"""Weight-space normalization: Weight Normalization and Scaled Weight Standardization.

Both are parametrizations of the layer's weight (``torch.nn.utils.parametrize``), with a gain g
per output unit initialised to 1, so every row of the effective weight starts at unit norm.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from explorer import Param, Primitive, hookimpl

RELU_GAIN = math.sqrt(2 * math.pi / (math.pi - 1))


def _rows(weight: Tensor) -> Tensor:
    return weight.reshape(weight.shape[0], -1)


class WeightNorm(nn.Module):
    """W = g·V/‖V‖, the norm per output unit (Salimans & Kingma)."""

    def __init__(self, channels: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(channels))

    def forward(self, v: Tensor) -> Tensor:
        norm = _rows(v).norm(dim=1)
        return v * (self.g / norm).view(-1, *([1] * (v.dim() - 1)))


class ScaledWeightStandardization(nn.Module):
    """W = gain·g·(V − μ)/(σ·sqrt(fan_in)), μ and σ over each unit's fan-in (Brock et al.)."""

    def __init__(self, channels: int, gain: float = RELU_GAIN, eps: float = 1e-5):
        super().__init__()
        self.g = nn.Parameter(torch.ones(channels))
        self.gain = gain
        self.eps = eps

    def forward(self, v: Tensor) -> Tensor:
        rows = _rows(v)
        fan_in = rows.shape[1]
        var, mean = torch.var_mean(rows, dim=1, correction=0, keepdim=True)
        scale = self.gain * self.g.view(-1, 1) / (torch.sqrt(var + self.eps) * math.sqrt(fan_in))
        return ((rows - mean) * scale).reshape(v.shape)


@hookimpl
def register_primitives(register):
    register(Primitive(name="weight_norm", slot="weight", factory=WeightNorm, formula="W = g·V/‖V‖",
                       doc="Weight Normalization, per output unit, g init 1"))
    register(Primitive(
        name="weight_standardization", slot="weight", factory=ScaledWeightStandardization,
        params=(Param("gain", float, RELU_GAIN, doc="nonlinearity gain, sqrt(2π/(π−1)) for ReLU"),
                Param("eps", float, 1e-5)),
        formula="W = gain·g·(V − μ)/(σ·sqrt(fan_in))",
        doc="Scaled Weight Standardization over each unit's fan-in, g init 1",
    ))
