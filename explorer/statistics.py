"""Reductions over statistic axes, with running estimates for the batch axis.

Every activation-space step sees its input as ``x3`` of shape (N, C, S): N samples, C channels,
S spatial positions flattened (1 for features; a sequence's tokens are samples). A statistic over
axes ``bcgx`` is computed in the view (N, G, C/G, S) and broadcast back to (N|1, C, S|1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explorer.axes import describe_axes, parse_axes
from explorer.errors import NormxError, SpecError


class BatchSizeError(NormxError, RuntimeError):
    """Batch statistics asked of a single sample in training mode."""


class ShapeError(NormxError, ValueError):
    """An input whose shape does not fit the layer (wrong channel count or rank)."""


def check_input(x: Tensor, channels: int | None) -> None:
    """Raise :class:`ShapeError` unless ``x`` is (N, C), (N, L, C) or (N, C, H, W...) with C = channels."""
    if x.dim() < 2:
        raise ShapeError(f"a normalizer needs (N, C), (N, L, C) or (N, C, H, W) input; got shape {tuple(x.shape)}")
    c = x.shape[-1] if x.dim() == 3 else x.shape[1]
    if channels is not None and c != channels:
        where = "last" if x.dim() == 3 else "second"
        raise ShapeError(f"this normalizer was built for {channels} channels, got {c} (the {where} dim of an "
                         f"input of shape {tuple(x.shape)})")


def resolve_groups(channels: int, groups: int | None, group_size: int | None) -> int:
    """The group count for a layer, or a SpecError naming the width and the groups."""
    if group_size is not None:
        if channels % group_size:
            raise SpecError(f"group_size={group_size} does not divide the {channels} channels of this layer")
        return channels // group_size
    if groups is not None:
        if channels % groups:
            raise SpecError(f"groups={groups} does not divide the {channels} channels of this layer")
        return groups
    return 1


def to_x3(x: Tensor) -> Tensor:
    """View a channels-second activation as (N, C, S)."""
    if x.dim() == 2:
        return x.unsqueeze(-1)
    if x.dim() == 3:
        return x
    return x.reshape(x.shape[0], x.shape[1], -1)


def channel_view(param: Tensor, y: Tensor) -> Tensor:
    """Shape a per-channel (C,) parameter to broadcast against a channels-second tensor.

    Every step sees channels in dim 1: (N, C), (N, C, S) or (N, C, H, W); a sequence (N, L, C)
    reaches the steps as (N·L, C, 1).
    """
    return param.view(-1, *([1] * (y.dim() - 2)))


def infer_layout(x: Tensor) -> str:
    """``nc`` for features, ``nlc`` for sequences, ``nchw`` for images (and N,C,* in general)."""
    if x.dim() == 2:
        return "nc"
    if x.dim() == 3:
        return "nlc"
    return "nchw"


class AxisStatistics(nn.Module):
    """Mean and (biased) variance over a set of axes; running estimates when ``b`` is reduced.

    Running estimates follow torch's BatchNorm: momentum 0.1, unbiased variance in the buffer,
    used in eval mode in place of the batch statistic.
    """

    def __init__(self, channels: int, axes: str, groups: int | None = None, group_size: int | None = None,
                 momentum: float = 0.1):
        super().__init__()
        self.axes = parse_axes(axes)
        self.channels = channels
        self.groups = resolve_groups(channels, groups, group_size) if "g" in self.axes else 1
        self.momentum = momentum
        # dims of the (N, G, C/G, S) view
        dims = []
        if "b" in self.axes:
            dims.append(0)
        if "c" in self.axes:
            dims.extend([1, 2])
        if "g" in self.axes:
            dims.append(2)
        if "x" in self.axes:
            dims.append(3)
        self.dims = tuple(dims)
        self.batch = "b" in self.axes
        if self.batch:
            # The buffer shape is the statistic's shape without the batch dim; it depends on S
            # only when x is not reduced, so it is made at the first training step then.
            shape = self._stat_shape(1)[1:] if "x" in self.axes else (0,)
            self.register_buffer("running_mean", torch.zeros(shape))
            self.register_buffer("running_var", torch.ones(shape))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _stat_shape(self, s: int) -> tuple[int, ...]:
        g, cg = self.groups, self.channels // self.groups
        full = [None, g, cg, s]
        if "c" in self.axes:
            full[1] = full[2] = 1
        if "g" in self.axes:
            full[2] = 1
        if "x" in self.axes:
            full[3] = 1
        return tuple(1 if v is None else v for v in full)

    def extra_repr(self) -> str:
        return f"axes={describe_axes(self.axes)}, groups={self.groups}"

    def view4(self, x3: Tensor) -> Tensor:
        n, c, s = x3.shape
        return x3.reshape(n, self.groups, c // self.groups, s)

    def _back(self, stat: Tensor, x3: Tensor) -> Tensor:
        n, c, s = x3.shape
        return stat.expand(stat.shape[0], self.groups, c // self.groups, stat.shape[3]).reshape(stat.shape[0], c, stat.shape[3])

    def check_batch(self, x3: Tensor) -> None:
        if self.batch and self.training and x3.shape[0] == 1:
            raise BatchSizeError(
                f"batch statistics over {describe_axes(self.axes)} need more than one sample per batch "
                "in training mode (got batch size 1); use a larger batch or a batch-free normalizer"
            )

    def _check_spatial(self, x3: Tensor) -> None:
        if self.axes == "x" and x3.shape[2] == 1:
            raise SpecError(
                "statistics over spatial positions alone need spatial input (N, C, H, W); "
                f"got features of shape (N, {x3.shape[1]})"
            )

    def _running(self, x3: Tensor) -> tuple[Tensor, Tensor]:
        if self.running_mean.numel() == 0:
            raise NormxError("running statistics are empty: run the model in training mode first")
        shape = (1, *self.running_mean.shape)
        return self.running_mean.view(shape), self.running_var.view(shape)

    def _update(self, mean: Tensor, var: Tensor, count: int) -> None:
        with torch.no_grad():
            if self.running_mean.numel() == 0:
                self.running_mean = torch.zeros_like(mean[0])
                self.running_var = torch.ones_like(var[0])
            m = self.momentum
            unbiased = var[0] * (count / max(count - 1, 1))
            self.running_mean.mul_(1 - m).add_(mean[0].to(self.running_mean.dtype), alpha=m)
            self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
            self.num_batches_tracked.add_(1)

    def mean_var(self, x3: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and biased variance, broadcastable to ``x3`` (running ones in eval over ``b``)."""
        self.check_batch(x3)
        self._check_spatial(x3)
        v = self.view4(x3)
        if self.batch and not self.training:
            mean, var = self._running(x3)
        else:
            var, mean = torch.var_mean(v, dim=self.dims, correction=0, keepdim=True)
            if self.batch:
                count = v.numel() // mean.numel()
                self._update(mean, var, count)
        return self._back(mean, x3), self._back(var, x3)

    def mean(self, x3: Tensor) -> Tensor:
        """The mean alone (cheaper than :meth:`mean_var` in training)."""
        if not self.batch:
            self._check_spatial(x3)
            return self._back(self.view4(x3).mean(dim=self.dims, keepdim=True), x3)
        return self.mean_var(x3)[0]

    def mean_square(self, x3: Tensor) -> Tensor:
        """Mean of squares (for RMS scaling); running estimate in eval over ``b``."""
        self.check_batch(x3)
        self._check_spatial(x3)
        v = self.view4(x3)
        if self.batch and not self.training:
            return self._back(self._running(x3)[1], x3)
        ms = v.square().mean(dim=self.dims, keepdim=True)
        if self.batch:
            with torch.no_grad():
                if self.running_var.numel() == 0:
                    self.running_mean = torch.zeros_like(ms[0])
                    self.running_var = torch.ones_like(ms[0])
                self.running_var.mul_(1 - self.momentum).add_(ms[0], alpha=self.momentum)
                self.num_batches_tracked.add_(1)
        return self._back(ms, x3)
