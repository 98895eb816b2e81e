"""The normalizers of the seed papers, each written as a composition of primitives.

``normx normalizers`` lists them with their compositions and formulas, which use this notation:
b batch, c channels, x spatial positions, c/g a group of channels; A the activation entering the
normalizer.
"""

from __future__ import annotations

from explorer import Param, Preset, hookimpl
from explorer.errors import SpecError

GROUPS = Param("groups", int, None, doc="number of channel groups (default 32)")
GROUP_SIZE = Param("group_size", int, None, doc="channels per group (instead of groups)")
STRENGTH = Param("strength", float, 0.1, doc="λ of the batch-mean penalty", minimum=0)
ALPHA = Param("alpha", float, 0.5, doc="initial value of the learnable scalar α")
SHIFT = Param("shift", float, 0.0, doc="initial value of the learnable scalar shift s")


def _grouping(groups: int | None, group_size: int | None) -> str:
    if groups is not None and group_size is not None:
        raise SpecError("give groups= or group_size=, not both")
    return f"group_size={group_size}" if group_size is not None else f"groups={32 if groups is None else groups}"


def _fixed(text: str):
    return lambda: text


PRESETS: list[Preset] = [
    Preset("bn", _fixed("mean(bx) | std(bx) | affine | relu"),
           formula="(A − μ{b,x}) / σ{b,x}", doc="BatchNorm: running statistics in eval mode"),
    Preset("ln", _fixed("mean(cx) | std(cx) | affine | relu"),
           formula="(A − μ{c,x}) / σ{c,x}", doc="LayerNorm over (C, H, W), the paper's LN (GroupNorm with 1 group)"),
    Preset("in", _fixed("mean(x) | std(x) | affine | relu"),
           formula="(A − μ{x}) / σ{x}", doc="InstanceNorm (GroupNorm with C groups)"),
    Preset("gn", lambda groups=None, group_size=None: (
        f"mean(gx, {_grouping(groups, group_size)}) | std(gx, {_grouping(groups, group_size)}) | affine | relu"),
        params=(GROUPS, GROUP_SIZE), formula="(A − μ{c/g,x}) / σ{c/g,x}",
        doc="GroupNorm, 32 groups by default; group_size= fixes the group size across layers"),
    Preset("frn", _fixed("root_mean_square(x) | affine | tlu"),
           formula="max(γ·A / RMS{x} + β, τ)", doc="Filter Response Normalization with TLU"),
    Preset("vn", _fixed("std(bx) | affine | relu"),
           formula="A / σ{b,x}", doc="Variance Normalization: BatchNorm without centering"),
    Preset("evo_b0", _fixed("evo_max | affine"),
           formula="A / max(σ{b,x}, v⊙A + σ{x})", doc="EvoNorm-B0 (a norm-activation layer: no separate activation)"),
    Preset("evo_s0", lambda groups=None, group_size=None: (
        f"std(gx, {_grouping(groups, group_size)}) | sigmoid_gate | affine"),
        params=(GROUPS, GROUP_SIZE), formula="A·sigmoid(v⊙A) / σ{c/g,x}",
        doc="EvoNorm-S0, 32 groups by default (a norm-activation layer)"),
    Preset("wn", _fixed("weight_norm | wnrelu"),
           formula="W = g·V/‖V‖; sqrt(2π/(π−1))·(ReLU(z) − sqrt(1/(2π)))",
           doc="Weight Normalization with the corrected ReLU"),
    Preset("sws", _fixed("weight_standardization | relu"),
           formula="W = sqrt(2π/(π−1))·g·(V − μ)/(σ·sqrt(fan_in))",
           doc="Scaled Weight Standardization (gain for ReLU)"),
    Preset("rms", _fixed("root_mean_square(cx) | affine(bias=false) | relu"),
           formula="γ·A / RMS{c,x}", doc="RMSNorm over the layer's features (no centering, no bias)"),
    Preset("bmlv", _fixed("mean(bx) | std(cx) | affine | relu"),
           formula="(A − μ{b,x}) / σ{c,x}", doc="batch mean, layer variance (seed 002)"),
    Preset("lmbv", _fixed("mean(cx) | std(bx) | affine | relu"),
           formula="(A − μ{c,x}) / σ{b,x}", doc="layer mean, batch variance (seed 002)"),
    Preset("preln", _fixed("mean(cx, at=pre) | std(cx) | affine | relu"),
           formula="Z = W·(A − μ{c,x}(A)); Z / σ{c,x}(Z)",
           doc="PreLayerNorm: center the op's input, scale its output (seed 002 §3.1)"),
    Preset("regnorm", lambda strength=0.1: f"ln | batch_mean_penalty(strength={strength!r})",
           params=(STRENGTH,), formula="LN(A); loss += λ·mean_c(μ{b,x}(LN(A))²)",
           doc="RegNorm: LayerNorm plus a loss driving each channel's batch mean to 0"),
    Preset("none", _fixed("relu"), formula="A", doc="no normalization (the activation alone)"),
    # The normalization-free layers of 2025 (plugins/bounded.py). Checked against the papers'
    # text and public code: DyT's alpha_init_value = 0.5, γ = 1, β = 0; Derf's alpha_init_value
    # = 0.5 and shift_init_value = 0 (code released with arXiv 2512.10938). SeeDNorm's formula is
    # the paper's (arXiv 2510.22777, Eq. for SeeDNorm(x) with σ = tanh); its initial values were
    # not in the text we could read: we take γ = 1, α = 1, β = 0 (SeeDNorm = RMSNorm at init),
    # and leave out the paper's multi-head variant. Evidence for all three is from transformers.
    Preset("dyt", lambda alpha=0.5: f"tanh_scale(alpha={alpha!r}) | affine | relu", params=(ALPHA,),
           formula="γ ⊙ tanh(α·A) + β", doc="Dynamic Tanh (Zhu, Chen, He, LeCun, Liu, CVPR 2025): "
           "α one learnable scalar (init 0.5); no statistic. Shown for transformers only"),
    Preset("derf", lambda alpha=0.5, shift=0.0: f"erf_scale(alpha={alpha!r}, shift={shift!r}) | affine | relu",
           params=(ALPHA, SHIFT), formula="γ ⊙ erf(α·A + s) + β",
           doc="Dynamic erf (Chen, Lu, Zhu, Sun, Liu, arXiv 2512.10938): α, s learnable scalars (init 0.5, 0). "
           "Shown for transformers only"),
    Preset("seednorm", _fixed("root_mean_square(cx) | tanh_gain | relu"),
           formula="[α ⊙ tanh(A·βᵀ) + γ] ⊙ A / RMS{c,x}(A)",
           doc="SeeDNorm (Cai, Zhu, Liu, Min, arXiv 2510.22777): RMSNorm whose gain depends on the input; "
           "A·βᵀ per token (per position of a feature map); init γ = 1, α = 1, β = 0"),
]


@hookimpl
def register_presets(register):
    for preset in PRESETS:
        register(preset)
