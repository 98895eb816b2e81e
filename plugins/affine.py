"""The per-channel affine step: y·γ + β, γ = 1 and β = 0 at initialization."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explorer import Param, Primitive, hookimpl
from explorer.statistics import channel_view


class Affine(nn.Module):
    def __init__(self, channels: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, y: Tensor) -> Tensor:
        if self.bias is None:
            return y * channel_view(self.weight, y)
        return torch.addcmul(channel_view(self.bias, y), y, channel_view(self.weight, y))


@hookimpl
def register_primitives(register):
    register(Primitive(
        name="affine", slot="affine", factory=Affine,
        params=(Param("bias", bool, True, doc="learn β as well as γ"),),
        formula="γ·y + β", doc="per-channel gain and bias (γ=1, β=0 at init)",
    ))
