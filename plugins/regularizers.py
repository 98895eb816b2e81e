"""Regularizers: loss terms computed on normalized activations, collected by regularizer_loss()."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explorer import Param, Primitive, hookimpl
from explorer.statistics import to_x3


class BatchMeanPenalty(nn.Module):
    """RegNorm's term: λ · mean over channels of (mean over batch and space of ŷ)².

    ŷ is the normalized activation before the affine step. The term is zero exactly when every
    channel's batch mean is zero (its unique minimum), which is what RegNorm asks of LayerNorm's
    output to make it behave like BatchNorm (seed 002, "computed after the inputs are normalized").
    """

    def __init__(self, channels: int, strength: float = 0.1):
        super().__init__()
        self.strength = strength

    def forward(self, y: Tensor) -> Tensor:
        y = to_x3(y)
        if y.dtype in (torch.float16, torch.bfloat16):  # reduce in float32, never below the input's precision
            y = y.float()
        batch_mean = y.mean(dim=(0, 2))
        return self.strength * batch_mean.square().mean()


@hookimpl
def register_primitives(register):
    register(Primitive(
        name="batch_mean_penalty", slot="regularizer", factory=BatchMeanPenalty,
        params=(Param("strength", float, 0.1, doc="λ, the weight of the loss term", minimum=0),),
        formula="λ·mean_c(mean_{b,x}(ŷ)²)",
        doc="RegNorm's loss: drive each channel's batch mean of the normalized activation to 0",
    ))
