"""Building modules from specs: bare normalizers and the normalized-layer unit.

A :class:`NormalizedLayer` is the affine op (conv or linear) with the spec's steps around it::

    pre steps (at=pre) -> op with normalized weight -> post steps -> gate -> affine -> activation

so PreLayerNorm (center before the op, scale after it), weight normalization and regularizers
need no special case in any model. Every model in norm-explorer is built from this unit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from explorer.errors import SpecError
from explorer.plugins import get_registry
from explorer.spec import Spec, parse_spec
from explorer.statistics import ShapeError, check_input, to_x3

if TYPE_CHECKING:
    from explorer.registry import Registry
    from explorer.spec import Step

PLACEMENTS = ("pre", "post")


def _registry(registry: Registry | None) -> Registry:
    """The given registry, else the one the installed plugins fill."""
    return registry if registry is not None else get_registry()


def _build_step(step: Step | None, channels: int, registry: Registry) -> nn.Module | None:
    if step is None:
        return None
    prim = registry.primitive(step.name)
    kwargs: dict[str, Any] = {p.name: p.default for p in prim.params}
    kwargs.update(step.params)
    kwargs.pop("at", None)
    return prim.factory(channels, **kwargs)


def placement(step: Step | None) -> str:
    return "post" if step is None else step.get("at", "post")


class Normalizer(nn.Module):
    """The activation-space steps of a spec at one placement.

    ``y = activation(affine(bound(gate(x - center(x), x) / scale(x))))``; center, scale and gate see
    the (N, C, S) view, bound, affine and activation the channels-second tensor. A sequence (N, L, C) is
    normalized as N·L tokens. When the scale step recognises the composition as one of torch's
    native ops (BN, GN, LN, IN, RMSNorm), the native kernel runs instead of the generic path
    (``fuse=False`` keeps the generic path, for checking one against the other).
    """

    def __init__(self, center: nn.Module | None = None, scale: nn.Module | None = None,
                 gate: nn.Module | None = None, affine: nn.Module | None = None,
                 activation: nn.Module | None = None, regularizer: nn.Module | None = None,
                 fuse: bool = True, channels: int | None = None, bound: nn.Module | None = None):
        super().__init__()
        #: The channel count inputs must have (checked at each forward when known).
        self.channels = channels
        self.center, self.scale, self.gate = center, scale, gate
        self.affine, self.activation, self.regularizer = affine, activation, regularizer
        #: The elementwise bounded map after the statistics, before the regularizer and affine (DyT, Derf).
        self.bound = bound
        self._fused = None
        self._fused_affine = False
        if fuse and scale is not None and gate is None and hasattr(scale, "fuse"):
            fuse_affine = affine if regularizer is None and bound is None else None
            # fuse() returns (method, folds_affine): a method of the scale module called as
            # method(y, center, affine) that reads the modules at call time, so that .to(),
            # .double() and copy.deepcopy carry the native path along with the module.
            fused = scale.fuse(center, fuse_affine)
            if fused is not None:
                self._fused, self._fused_affine = fused[0], bool(fused[1]) and fuse_affine is not None
        #: The regularizer's loss from the latest training forward (a tensor), else None.
        self.regularizer_loss: Tensor | None = None

    @property
    def native(self) -> bool:
        """Whether the statistics run in one of torch's native kernels."""
        return self._fused is not None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or (self.channels is not None and x.shape[-1 if x.dim() == 3 else 1] != self.channels):
            check_input(x, self.channels)
        seq = x.dim() == 3
        y = x.reshape(-1, x.shape[-1], 1) if seq else x
        if self._fused is not None:
            y = self._fused(y, self.center, self.affine if self._fused_affine else None)
        elif self.center is not None or self.scale is not None or self.gate is not None:
            x3 = to_x3(y)
            num = x3 - self.center(x3) if self.center is not None else x3
            if self.gate is not None:
                num = self.gate(num, x3)
            if self.scale is not None:
                num = num / self.scale(x3)
            y = num.reshape(y.shape)
        if self.bound is not None:
            y = self.bound(y)
        if self.regularizer is not None:
            self.regularizer_loss = self.regularizer(y) if self.training and torch.is_grad_enabled() else None
        if self.affine is not None and not self._fused_affine:
            y = self.affine(y)
        if self.activation is not None:
            y = self.activation(y)
        return y.reshape(x.shape) if seq else y


def _split(spec: Spec) -> tuple[dict[str, Step | None], dict[str, Step | None]]:
    pre: dict[str, Step | None] = {"center": None, "scale": None}
    post: dict[str, Step | None] = {"center": None, "scale": None}
    for slot in ("center", "scale"):
        step = spec.slot(slot)
        if step is not None:
            at = placement(step)
            if at not in PLACEMENTS:
                raise SpecError(f"{step.name}: at= must be pre or post, got {at!r}")
            (pre if at == "pre" else post)[slot] = step
    return pre, post


def create_norm(spec: str | Spec, channels: int, activation: bool = True,
                registry: Registry | None = None) -> Normalizer:
    """A bare normalizer module for ``channels`` channels (no conv/linear op).

    Specs with steps placed before the op, or with weight normalization, need an op: use
    :func:`create_normalized_layer` for them.
    """
    registry = _registry(registry)
    spec = parse_spec(spec, registry)
    pre, post = _split(spec)
    if pre["center"] is not None or pre["scale"] is not None:
        raise SpecError(f"{spec} places a step before a conv/linear op (at=pre), but this normalization site has no "
                        "op (a pre-activation or transformer norm); build op sites with create_normalized_layer")
    if spec.slot("weight") is not None:
        raise SpecError(f"{spec} normalizes a conv/linear weight, but this normalization site has no op; build op "
                        "sites with create_normalized_layer")
    return _post_normalizer(spec, post, channels, activation, registry)


def _post_normalizer(spec: Spec, post: dict[str, Step | None], channels: int, activation: bool,
                     registry: Registry) -> Normalizer:
    return Normalizer(
        center=_build_step(post["center"], channels, registry),
        scale=_build_step(post["scale"], channels, registry),
        gate=_build_step(spec.slot("gate"), channels, registry),
        bound=_build_step(spec.slot("bound"), channels, registry),
        affine=_build_step(spec.slot("affine"), channels, registry),
        activation=_build_step(spec.slot("activation"), channels, registry) if activation else None,
        regularizer=_build_step(spec.slot("regularizer"), channels, registry),
        channels=channels,
    )


def create_activation(spec: str | Spec, channels: int, registry: Registry | None = None) -> nn.Module:
    """The spec's activation alone (``nn.Identity`` when it has none), e.g. after a residual add."""
    registry = _registry(registry)
    spec = parse_spec(spec, registry)
    return _build_step(spec.slot("activation"), channels, registry) or nn.Identity()


class NormalizedLayer(nn.Module):
    """The affine op with the spec's steps around it: the unit every model is built from."""

    def __init__(self, spec: Spec, op: nn.Conv2d | nn.Linear | nn.Module, pre: Normalizer | None,
                 post: Normalizer):
        super().__init__()
        self.spec = spec
        self.pre = pre
        self.op = op
        self.post = post
        self.in_channels = _op_channels(op)[0]
        conv = isinstance(op, nn.modules.conv._ConvNd)
        self._channel_dim = 1 if conv else -1
        #: The input rank a conv needs (batched), or 0 for a linear op (any rank >= 2).
        self._rank = 2 + len(op.kernel_size) if conv else 0

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[self._channel_dim] != self.in_channels or (self._rank and x.dim() != self._rank):
            kind = "(N, C, " + ", ".join("HWD"[: self._rank - 2]) + ")" if self._rank else "(..., C)"
            raise ShapeError(f"this layer takes {kind} input with C = {self.in_channels}; got shape {tuple(x.shape)}")
        if self._rank == 3:  # Conv1d: (N, C, L) would read as a sequence (N, L, C); add a width of 1
            x = x if self.pre is None else self.pre(x.unsqueeze(-1)).squeeze(-1)
            return self.post(self.op(x).unsqueeze(-1)).squeeze(-1)
        if not self._rank and x.dim() > 3:  # a linear op on (N, ..., C): its tokens, as a sequence
            lead = x.shape[:-1]
            x = x.reshape(x.shape[0], -1, x.shape[-1])
            x = x if self.pre is None else self.pre(x)
            y = self.post(self.op(x))
            return y.reshape(*lead, y.shape[-1])
        if self.pre is not None:
            x = self.pre(x)
        return self.post(self.op(x))

    def extra_repr(self) -> str:
        return f"spec='{self.spec}'"


def _op_channels(op: nn.Module) -> tuple[int, int]:
    if isinstance(op, nn.modules.conv._ConvNd):
        return op.in_channels, op.out_channels
    if isinstance(op, nn.Linear):
        return op.in_features, op.out_features
    raise SpecError(f"a normalized layer needs a conv or linear op, got {type(op).__name__}")


def create_normalized_layer(spec: str | Spec, op: nn.Module, activation: bool = True,
                            registry: Registry | None = None) -> NormalizedLayer:
    """Wrap a conv or linear ``op`` with the spec: pre steps, weight norm, post steps, activation.

    ``activation=False`` leaves the activation out (before a residual add, for example; get it
    with :func:`create_activation`).
    """
    registry = _registry(registry)
    spec = parse_spec(spec, registry)
    c_in, c_out = _op_channels(op)
    pre_steps, post_steps = _split(spec)
    pre = None
    if pre_steps["center"] is not None or pre_steps["scale"] is not None:
        pre = Normalizer(center=_build_step(pre_steps["center"], c_in, registry),
                         scale=_build_step(pre_steps["scale"], c_in, registry), channels=c_in)
    weight = _build_step(spec.slot("weight"), c_out, registry)
    if weight is not None:
        parametrize.register_parametrization(op, "weight", weight)
    post = _post_normalizer(spec, post_steps, c_out, activation, registry)
    return NormalizedLayer(spec, op, pre, post)


def create_conv(spec: str | Spec, in_channels: int, out_channels: int, kernel_size: int = 3,
                stride: int = 1, activation: bool = True, registry: Registry | None = None) -> NormalizedLayer:
    """A normalized 2-d convolution ('same' padding); its bias only when the spec has no affine."""
    registry = _registry(registry)
    spec = parse_spec(spec, registry)
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                     bias=spec.slot("affine") is None)
    return create_normalized_layer(spec, conv, activation, registry)


def create_linear(spec: str | Spec, in_features: int, out_features: int, activation: bool = True,
                  registry: Registry | None = None) -> NormalizedLayer:
    """A normalized linear layer; its bias only when the spec has no affine."""
    registry = _registry(registry)
    spec = parse_spec(spec, registry)
    linear = nn.Linear(in_features, out_features, bias=spec.slot("affine") is None)
    return create_normalized_layer(spec, linear, activation, registry)


def regularizer_loss(model: nn.Module) -> Tensor:
    """The sum of every regularizer's loss from the model's latest training forward (0 if none)."""
    total: Tensor | None = None
    for module in model.modules():
        if isinstance(module, Normalizer) and module.regularizer_loss is not None:
            total = module.regularizer_loss if total is None else total + module.regularizer_loss
    if total is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        return torch.zeros((), device=device)
    return total
