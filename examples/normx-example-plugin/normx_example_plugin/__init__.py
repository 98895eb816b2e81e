"""An example norm-explorer plugin: a new scaling primitive, ``mad(AXES)``, and a preset using it.

``mad`` divides by the mean absolute deviation over the statistic axes,
``mean_A(|x − μ_A(x)|) + ε``: a scale statistic that, unlike the standard deviation, grows only
linearly with outliers. Its running estimate (eval mode, batch axes) comes for free from
:class:`explorer.statistics.AxisStatistics`.
"""

from __future__ import annotations

from torch import Tensor, nn

from explorer import Param, Preset, Primitive, SpecError, hookimpl
from explorer.statistics import AxisStatistics

__version__ = "0.2.0"


class MeanAbsoluteDeviation(nn.Module):
    """A scale step: receives the (N, C, S) view ``x3`` and returns a divisor broadcastable to it."""

    def __init__(self, channels: int, axes: str, groups: int | None = None, group_size: int | None = None,
                 eps: float = 1e-5):
        super().__init__()
        # Two reductions over the same axes: the mean, then the mean of |x − mean|. Over the batch
        # axis each keeps a running estimate that replaces it in eval mode.
        self.center = AxisStatistics(channels, axes, groups, group_size)
        self.deviation = AxisStatistics(channels, axes, groups, group_size)
        self.eps = eps

    def forward(self, x3: Tensor) -> Tensor:
        return self.deviation.mean((x3 - self.center.mean(x3)).abs()) + self.eps


def _require_axes(params: dict) -> None:
    if params.get("axes") is None:
        raise SpecError("mad needs statistic axes, e.g. mad(cx)")


@hookimpl
def register_primitives(register):
    register(Primitive(
        name="mad",
        slot="scale",
        factory=MeanAbsoluteDeviation,
        params=(
            Param("axes", "axes", None, doc="statistic axes: b batch, c channels, g groups, x spatial"),
            Param("groups", int, None, doc="number of channel groups (with the g axis)"),
            Param("group_size", int, None, doc="channels per group (with the g axis)"),
            Param("eps", float, 1e-5, doc="added to the deviation"),
            Param("at", str, "post", choices=("pre", "post"), doc="before or after the layer's op"),
        ),
        positional=("axes",),
        check=_require_axes,
        formula="/ (mean_A(|x − μ_A(x)|) + ε)",
        doc="divide by the mean absolute deviation over axes A",
    ))


@hookimpl
def register_presets(register):
    register(Preset(
        name="mad_ln",
        expand=lambda: "mean(cx) | mad(cx) | affine | relu",
        formula="(A − μ{c,x}) / MAD{c,x}",
        doc="LayerNorm with the mean absolute deviation in place of the standard deviation",
    ))
