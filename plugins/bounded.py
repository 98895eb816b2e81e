"""Bounded maps and SeeDNorm's dynamic gain: the normalization-free layers of 2025.

DyT (Zhu, Chen, He, LeCun, Liu, CVPR 2025) and Derf (Chen, Lu, Zhu, Sun, Liu, arXiv 2512.10938)
replace the division by a statistic with an elementwise S-shaped map whose input scale α (and,
for Derf, shift s) are learnable *scalars* shared by the whole layer. They fill the ``bound`` slot,
which runs after center/gate/scale and before the affine step, so ``tanh_scale | affine`` is DyT
and ``mean(cx) | tanh_scale | affine | relu`` a centred DyT. SeeDNorm (Cai, Zhu, Liu, Min,
arXiv 2510.22777) keeps RMSNorm's division and makes its gain depend on the input: a ``gate``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from explorer import Param, Primitive, hookimpl
from explorer.errors import SpecError
from explorer.statistics import channel_view

#: DyT's default α (the paper's ``alpha_init_value``); Derf's public code uses the same.
ALPHA_INIT = 0.5


def _check_alpha_shift(owner: str):
    """α must be a finite positive number (α ≤ 0 flips or kills the map); s finite."""

    def check(params: dict) -> None:
        alpha = params.get("alpha")
        if not (math.isfinite(alpha) and alpha > 0):
            raise SpecError(f"{owner}: parameter 'alpha' (α's initial value) must be finite and > 0, got {alpha!r}")
        shift = params.get("shift", 0.0)
        if not math.isfinite(shift):
            raise SpecError(f"{owner}: parameter 'shift' (s's initial value) must be finite, got {shift!r}")

    return check


class ScaledTanh(nn.Module):
    """tanh(α·y), α one learnable scalar for the layer (DyT's map, without its γ, β)."""

    def __init__(self, channels: int, alpha: float = ALPHA_INIT):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def forward(self, y: Tensor) -> Tensor:
        return torch.tanh(self.alpha * y)


class ScaledErf(nn.Module):
    """erf(α·y + s), α and s learnable scalars for the layer (Derf's map, without its γ, β)."""

    def __init__(self, channels: int, alpha: float = ALPHA_INIT, shift: float = 0.0):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.shift = nn.Parameter(torch.tensor(float(shift)))

    def forward(self, y: Tensor) -> Tensor:
        return torch.erf(torch.addcmul(self.shift, self.alpha, y))


class TanhGain(nn.Module):
    """SeeDNorm's gain on the numerator n: n ⊙ (α ⊙ tanh(⟨x, β⟩) + γ), α, β, γ per channel.

    ⟨x, β⟩ is the dot product over the channels of each token (a sequence position, or one
    spatial position of a feature map): one scalar per token, as the paper's ``x·βᵀ``.
    γ = 1, α = 1, β = 0 at initialization, so SeeDNorm starts as RMSNorm.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.gamma = nn.Parameter(torch.ones(channels))

    def forward(self, num3: Tensor, x3: Tensor) -> Tensor:
        drive = torch.tanh((x3 * channel_view(self.beta, x3)).sum(dim=1, keepdim=True))
        return num3 * torch.addcmul(channel_view(self.gamma, x3), drive, channel_view(self.alpha, x3))


ALPHA = Param("alpha", float, ALPHA_INIT, doc="initial value of the learnable scalar α (finite, > 0)")
SHIFT = Param("shift", float, 0.0, doc="initial value of the learnable scalar shift s (finite)")


@hookimpl
def register_primitives(register):
    register(Primitive(
        name="tanh_scale", slot="bound", factory=ScaledTanh, params=(ALPHA,), check=_check_alpha_shift("tanh_scale"),
        formula="tanh(α·y)", doc="DyT's bounded map: α one learnable scalar (init 0.5)",
    ))
    register(Primitive(
        name="erf_scale", slot="bound", factory=ScaledErf, params=(ALPHA, SHIFT),
        check=_check_alpha_shift("erf_scale"), formula="erf(α·y + s)",
        doc="Derf's bounded map: α, s learnable scalars (init 0.5, 0)",
    ))
    register(Primitive(
        name="tanh_gain", slot="gate", factory=TanhGain, formula="n ⊙ (α ⊙ tanh(⟨x, β⟩_c) + γ)",
        doc="SeeDNorm's input-dependent gain, α, β, γ per channel (init 1, 0, 1); ⟨x, β⟩ over each token's channels",
    ))
