"""What every model needs: the :class:`NormxModel` base, weight init, and ``create_model`` by name.

``create_model("plaincnn(depth=30, width=64)", "gn(group_size=4)")`` parses the name in call form
as a spec step is parsed, looks the architecture up in the registry (every architecture, the
reference ones included, comes from a plugin's ``register_models`` hook) and builds it.

Every model is a :class:`NormxModel`: its normalization sites are normalized layers built from the
spec, ``probes`` lists the modules whose outputs the predictors hook (in forward order), and
``head`` is the classifier whose input is the penultimate feature vector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from explorer.errors import NormxError, SpecError, shorten
from explorer.norm import NormalizedLayer, Normalizer
from explorer.plugins import get_registry
from explorer.spec import Spec, bind_arguments, format_value, parse_calls, parse_spec

if TYPE_CHECKING:
    from explorer.registry import ModelEntry, Registry


class ModelError(NormxError, ValueError):
    """An unknown model, an unknown parameter, or a spec the model cannot be built with."""


class NormxModel(nn.Module):
    """Base of the reference models: ``forward = head(features(x))``.

    ``probes`` are the depth positions the predictors measure, in forward order; ``probe_stages``
    gives each probe's stage (a run of positions at one resolution; the variance of a residual
    stream restarts at a downsampling block, so growth is fitted per stage).
    """

    head: nn.Linear

    def __init__(self) -> None:
        super().__init__()
        self._probes: list[nn.Module] = []
        self._stages: list[int] = []

    def add_probe(self, module: nn.Module, stage: int = 0) -> nn.Module:
        self._probes.append(module)
        self._stages.append(stage)
        return module

    @property
    def probes(self) -> list[nn.Module]:
        return list(self._probes)

    @property
    def probe_stages(self) -> list[int]:
        return list(self._stages)

    @property
    def normalized_layers(self) -> list[NormalizedLayer]:
        """Every normalized layer (op + normalizer unit) in construction order."""
        return [m for m in self.modules() if isinstance(m, NormalizedLayer)]

    def features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def init_weights(model: nn.Module, skip: tuple[nn.Module, ...] = ()) -> None:
    """Kaiming-normal (fan-in, ReLU gain) weights and zero biases, as the paper's code initialises.

    A weight under a parametrization (weight normalization) is initialised through its original.
    """
    for module in model.modules():
        if module in skip or not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if parametrize.is_parametrized(module, "weight"):
            weight = module.parametrizations.weight.original
        else:
            weight = module.weight
        with torch.no_grad():
            nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                module.bias.zero_()


# --------------------------------------------------------------------------- building blocks


def weight_only(spec: Spec) -> Spec:
    """The spec's weight step alone (for ops that carry no activation normalizer)."""
    step = spec.slot("weight")
    return Spec((step,)) if step is not None else Spec()


def activation_only(spec: Spec) -> Spec:
    """The spec without its weight step (a bare normalizer, e.g. in front of an op)."""
    return spec.without("weight")


# --------------------------------------------------------------------------- names


def parse_model_name(text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``plaincnn(depth=30, width=64)`` -> ``("plaincnn", [], {"depth": 30, "width": 64})``."""
    if not isinstance(text, str) or not text.strip():
        raise ModelError("empty model name; see 'normx models'")
    try:
        calls = parse_calls(text)
    except SpecError as err:
        raise ModelError(f"model {text!r}: {err.bare_message}") from None
    if len(calls) != 1:
        raise ModelError(f"model {text!r}: one model name in call form, e.g. plaincnn(depth=30, width=64)")
    call = calls[0]
    return call.name, list(call.args), dict(call.kwargs)


def resolve_model(text: str, registry: Registry | None = None) -> tuple[ModelEntry, dict[str, Any], str]:
    """(registry entry, coerced params, canonical name) for a model name in call form."""
    registry = registry or get_registry()
    name, args, kwargs = parse_model_name(text)
    entry = registry.models.get(name)
    if entry is None:
        valid = ", ".join(sorted(registry.models)) or "none installed"
        raise ModelError(f"unknown model {shorten(name)!r}; valid models: {valid}")
    try:
        params = bind_arguments(name, entry.params, args, kwargs)
    except SpecError as err:
        raise ModelError(str(err)) from None
    shown = [f"{p.name}={format_value(params[p.name])}" for p in entry.params if params[p.name] != p.default]
    canonical = f"{name}({', '.join(shown)})" if shown else name
    return entry, params, canonical


def canonical_model_name(text: str, registry: Registry | None = None) -> str:
    """The model's name with non-default parameters only: ``resnet56(variant=standard)`` -> ``resnet56``."""
    return resolve_model(text, registry)[2]


def normalization_widths(model: nn.Module) -> tuple[set[int], set[int]]:
    """(widths of the model's normalization sites, input widths of its normalized layers' ops).

    A spec's steps after an op see the first set, steps placed before an op (``at=pre``) the
    second: what a group setting resolves against (a group size equal to the width is LN).
    """
    sites = {m.channels for m in model.modules() if isinstance(m, Normalizer) and m.channels is not None}
    inputs = {m.in_channels for m in model.modules() if isinstance(m, NormalizedLayer)}
    return sites, inputs


def create_model(name: str, spec: str | Spec, num_classes: int = 10, in_channels: int = 3,
                 registry: Registry | None = None) -> nn.Module:
    """Build the architecture ``name`` (call form) with every normalization site made from ``spec``."""
    registry = registry or get_registry()
    entry, params, canonical = resolve_model(name, registry)
    spec = parse_spec(spec, registry)
    if num_classes < 1 or in_channels < 1:
        raise ModelError(f"{canonical}: num_classes and in_channels must be positive")
    try:
        model = entry.factory(spec, num_classes=num_classes, in_channels=in_channels, **params)
    except SpecError as err:
        raise ModelError(f"{canonical} with {spec}: {err}") from None
    model.model_name = canonical
    model.spec = spec
    return model


def list_models(registry: Registry | None = None) -> list[dict[str, Any]]:
    """What ``normx models`` shows: name, parameters with defaults and choices, description, plugin."""
    registry = registry or get_registry()
    rows = []
    for entry in sorted(registry.models.values(), key=lambda e: e.name):
        rows.append({
            "name": entry.name,
            "params": {p.name: {"default": p.default, "choices": list(p.choices) if p.choices else None,
                                "doc": p.doc} for p in entry.params},
            "description": entry.description,
            "plugin": entry.plugin,
        })
    return rows
