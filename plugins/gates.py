"""Numerator gates: EvoNorm-S0's x·sigmoid(v·x)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explorer import Primitive, hookimpl
from explorer.statistics import channel_view


class SigmoidGate(nn.Module):
    """n·sigmoid(v·n) on the numerator n (the centered input, or the input when uncentered)."""

    def __init__(self, channels: int):
        super().__init__()
        self.v = nn.Parameter(torch.ones(channels))

    def forward(self, num3: Tensor, x3: Tensor) -> Tensor:
        return num3 * torch.sigmoid(channel_view(self.v, num3) * num3)


@hookimpl
def register_primitives(register):
    register(Primitive(
        name="sigmoid_gate", slot="gate", factory=SigmoidGate, formula="n·sigmoid(v·n)",
        doc="EvoNorm-S0's numerator gate, v per channel (init 1)",
    ))
