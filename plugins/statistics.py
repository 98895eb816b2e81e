"""Centering and scaling primitives: mean, std, RMS over statistic axes, and EvoNorm-B0's max."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer import Param, Primitive, hookimpl
from explorer.errors import SpecError
from explorer.statistics import AxisStatistics, BatchSizeError, channel_view, to_x3
from normx_plugins.affine import Affine

AXES = Param("axes", "axes", None, doc="statistic axes: b batch, c channels, g groups, x spatial")
GROUPS = Param("groups", int, None, doc="number of channel groups (with the g axis)", minimum=1)
GROUP_SIZE = Param("group_size", int, None, doc="channels per group (with the g axis)", minimum=1)
AT = Param("at", str, "post", choices=("pre", "post"), doc="before (pre) or after (post) the layer's op")
EPS = Param("eps", float, 1e-5, doc="added to the variance / mean square", minimum=0.0)


def _foldable(affine: nn.Module | None) -> bool:
    """Whether the affine step is the built-in per-channel γ, β that torch's kernels fold in."""
    return type(affine) is Affine


def _require_axes(params: dict) -> None:
    if params.get("axes") is None:
        raise SpecError("give the statistic axes, e.g. mean(bx); letters b, c, g, x")


class Mean(nn.Module):
    """μ over the axes; running mean in eval when the axes include the batch."""

    def __init__(self, channels: int, axes: str, groups: int | None = None, group_size: int | None = None):
        super().__init__()
        self.stats = AxisStatistics(channels, axes, groups, group_size)

    def forward(self, x3: Tensor) -> Tensor:
        return self.stats.mean(x3)


class _ScaleOverAxes(nn.Module):
    """A scale step: a statistic over axes (with its eps), the denominator of the normalizer."""

    def __init__(self, channels: int, axes: str, groups: int | None = None, group_size: int | None = None,
                 eps: float = 1e-5):
        super().__init__()
        self.stats = AxisStatistics(channels, axes, groups, group_size)
        self.eps = eps


class Std(_ScaleOverAxes):
    """sqrt(σ² + eps) over the axes, σ² the biased variance of the step's input."""

    def forward(self, x3: Tensor) -> Tensor:
        return torch.sqrt(self.stats.mean_var(x3)[1] + self.eps)

    def fuse(self, center: nn.Module | None, affine: nn.Module | None):
        """Mean and std over the same axes are BatchNorm, GroupNorm, LayerNorm or InstanceNorm.

        Returns ``(self.native_forward, folds_affine)`` or ``None``. The method reads the modules
        at call time, so ``.to()``, ``.double()`` and ``copy.deepcopy`` keep working.
        """
        if not isinstance(center, Mean):
            return None
        a, b = center.stats, self.stats
        if a.axes != b.axes or a.groups != b.groups or b.axes not in ("bx", "cx", "gx", "x"):
            return None
        return self.native_forward, _foldable(affine)

    def native_forward(self, y: Tensor, center: Mean, affine: nn.Module | None) -> Tensor:
        """torch's batch_norm / group_norm kernel on a channels-second tensor (affine folded in)."""
        b = self.stats
        weight, bias = (affine.weight, affine.bias) if affine is not None else (None, None)
        if b.batch:
            if self.training:
                if y.shape[0] == 1:
                    b.check_batch(y)
                # F.batch_norm updates the running statistics, not the count (nn.BatchNorm does)
                center.stats.num_batches_tracked.add_(1)
                if b is not center.stats:
                    b.num_batches_tracked.add_(1)
            return F.batch_norm(y, center.stats.running_mean.view(-1), b.running_var.view(-1), weight, bias,
                                self.training, b.momentum, self.eps)
        if b.axes == "x":
            if y.dim() == 2 or y[0, 0].numel() == 1:
                b._check_spatial(to_x3(y))
            groups = b.channels
        else:
            groups = b.groups if b.axes == "gx" else 1
        return F.group_norm(y, groups, weight, bias, self.eps)


class Rms(_ScaleOverAxes):
    """sqrt(mean(x²) + eps) over the axes (no centering: FRN's ν², RMSNorm)."""

    #: torch's rms_norm is a composite of several kernels on a CPU: compiled, it runs at about half
    #: its time (benchmarks/bench_compile.py), so explorer.compile compiles the native path too
    compile_native = True

    def forward(self, x3: Tensor) -> Tensor:
        return torch.sqrt(self.stats.mean_square(x3) + self.eps)

    def fuse(self, center: nn.Module | None, affine: nn.Module | None):
        """RMS over (C, H, W) without centering is torch's rms_norm (gain folded in, no bias)."""
        if center is not None or self.stats.axes != "cx":
            return None
        if affine is not None and (not _foldable(affine) or affine.bias is not None):
            return None
        return self.native_forward, affine is not None

    def native_forward(self, y: Tensor, center: None, affine: nn.Module | None) -> Tensor:
        shape = y.shape[1:]
        weight = None if affine is None else affine.weight.view(-1, *([1] * (y.dim() - 2))).expand(shape)
        return F.rms_norm(y, shape, weight, self.eps)


class EvoMax(nn.Module):
    """EvoNorm-B0's denominator: max(σ over {b,x}, v·x + σ over {x}); v per channel, init 1."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.batch = AxisStatistics(channels, "bx")
        self.instance = AxisStatistics(channels, "x")
        self.v = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x3: Tensor) -> Tensor:
        batch_std = torch.sqrt(self.batch.mean_var(x3)[1] + self.eps)
        instance_std = torch.sqrt(self.instance.mean_var(x3)[1] + self.eps)
        return torch.maximum(batch_std, channel_view(self.v, x3) * x3 + instance_std)


def _axes_params(with_eps: bool) -> tuple[Param, ...]:
    return (AXES, GROUPS, GROUP_SIZE, *((EPS,) if with_eps else ()), AT)


@hookimpl
def register_primitives(register):
    register(Primitive(
        name="mean", slot="center", factory=Mean, params=_axes_params(False), positional=("axes",),
        check=_require_axes, formula="x − μ_A(x)",
        doc="subtract the mean over axes A; running mean in eval when A includes the batch",
    ))
    register(Primitive(
        name="std", slot="scale", factory=Std, params=_axes_params(True), positional=("axes",),
        check=_require_axes, formula="/ sqrt(σ²_A(x) + ε)",
        doc="divide by the standard deviation over axes A (biased variance, around A's own mean)",
    ))
    register(Primitive(
        name="root_mean_square", slot="scale", factory=Rms, params=_axes_params(True), positional=("axes",),
        check=_require_axes, formula="/ sqrt(mean_A(x²) + ε)",
        doc="divide by the root mean square over axes A (no centering)",
    ))
    register(Primitive(
        name="evo_max", slot="scale", factory=EvoMax, params=(EPS,), reads_batch_statistics=True,
        formula="/ max(sqrt(σ²_{b,x}(x) + ε), v·x + sqrt(σ²_{x}(x) + ε))",
        doc="EvoNorm-B0's denominator: batch std against a learned instance term (v per channel, init 1)",
    ))


__all__ = ["Mean", "Std", "Rms", "EvoMax", "BatchSizeError"]
