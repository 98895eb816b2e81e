"""An example norm-explorer plugin: a new scaling primitive, ``mad(AXES)``, a preset using it, and
a predictor at initialization, ``dead_unit_fraction``.

``mad`` divides by the mean absolute deviation over the statistic axes,
``mean_A(|x − μ_A(x)|) + ε``: a scale statistic that, unlike the standard deviation, grows only
linearly with outliers. Its running estimate (eval mode, batch axes) comes for free from
:class:`explorer.statistics.AxisStatistics`.

``dead_unit_fraction`` is the fraction of the probes' units (a channel at a position) that are
not positive for any sample of the batch: after a ReLU they pass no gradient to their inputs, so
fewer is better. It reads the activations of the shared forward pass and costs no extra pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explorer import Param, PredictorEntry, Preset, Primitive, SpecError, hookimpl
from explorer.predictors import BatchPass
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


def dead_unit_fraction(batch: BatchPass) -> Tensor:
    """Units never positive over the batch, as a fraction of all the probes' units (a 0-d tensor:
    it stays on the device, the measurement averages it over batches)."""
    dead = [(o.detach().flatten(1) <= 0).all(dim=0) for o in batch.outputs]
    return torch.cat(dead).float().mean()


@hookimpl
def register_predictors(register):
    register(PredictorEntry(
        name="dead_unit_fraction",
        direction="lower",
        needs=("activations",),
        compute=dead_unit_fraction,
        doc="fraction of probe units not positive for any sample (dead ReLUs pass no gradient)",
    ))
