"""Activations: ReLU, TLU (FRN), Weight Norm's corrected ReLU, GELU, SiLU, and identity."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer import Primitive, hookimpl
from explorer.statistics import channel_view

#: sqrt(2π/(π−1)): restores unit variance after a ReLU of a standard normal (WN, SWS).
RELU_GAIN = math.sqrt(2 * math.pi / (math.pi - 1))
#: E[ReLU(z)] for z ~ N(0, 1).
RELU_MEAN = math.sqrt(1 / (2 * math.pi))


class ReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()

    def forward(self, y: Tensor) -> Tensor:
        return F.relu(y)


class TLU(nn.Module):
    """FRN's thresholded linear unit max(y, τ), τ per channel (init 0)."""

    def __init__(self, channels: int):
        super().__init__()
        self.tau = nn.Parameter(torch.zeros(channels))

    def forward(self, y: Tensor) -> Tensor:
        return torch.maximum(y, channel_view(self.tau, y))


class CorrectedReLU(nn.Module):
    """Weight Norm's output correction: sqrt(2π/(π−1))·(ReLU(z) − sqrt(1/(2π)))."""

    def __init__(self, channels: int):
        super().__init__()

    def forward(self, y: Tensor) -> Tensor:
        return (F.relu(y) - RELU_MEAN) * RELU_GAIN


class GELU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()

    def forward(self, y: Tensor) -> Tensor:
        return F.gelu(y)


class SiLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()

    def forward(self, y: Tensor) -> Tensor:
        return F.silu(y)


@hookimpl
def register_primitives(register):
    register(Primitive(name="relu", slot="activation", factory=ReLU, formula="max(y, 0)", doc="ReLU"))
    register(Primitive(name="tlu", slot="activation", factory=TLU, formula="max(y, τ)",
                       doc="FRN's thresholded linear unit, τ per channel (init 0)"))
    register(Primitive(name="wnrelu", slot="activation", factory=CorrectedReLU,
                       formula="sqrt(2π/(π−1))·(max(y, 0) − sqrt(1/(2π)))",
                       doc="ReLU with Weight Norm's mean/variance correction"))
    register(Primitive(name="gelu", slot="activation", factory=GELU, formula="y·Φ(y)", doc="GELU"))
    register(Primitive(name="silu", slot="activation", factory=SiLU, formula="y·sigmoid(y)", doc="SiLU / swish"))
    register(Primitive(name="identity", slot="activation", factory=lambda channels: nn.Identity(),
                       is_identity=True, formula="y",
                       doc="no activation (written to remove a preset's activation: bn | identity)"))
