"""The plugin API: hook specifications that plugins implement with ``@explorer.hookimpl``.

Each hook receives a ``register`` callback, the way datasette and llm do it: a plugin calls
``register(...)`` once per thing it contributes, so the registry knows which plugin contributed
what and can name both plugins when two contribute the same name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from explorer.registry import ModelEntry, PredictorEntry, Preset, Primitive

hookspec = pluggy.HookspecMarker("normx")
hookimpl = pluggy.HookimplMarker("normx")


@hookspec
def register_primitives(register: Callable[["Primitive"], None]) -> None:
    """Contribute normalizer primitives.

    Call ``register(primitive)`` with an :class:`explorer.registry.Primitive` for each primitive.
    A primitive fills one slot of a composition (``center``, ``scale``, ``gate``, ``affine``,
    ``activation``, ``weight`` or ``regularizer``); its name must be unique across all plugins.
    """


@hookspec
def register_presets(register: Callable[["Preset"], None]) -> None:
    """Contribute named presets: normalizers written as compositions of primitives.

    Call ``register(preset)`` with an :class:`explorer.registry.Preset`. A preset expands to a
    spec string in call form, e.g. ``gn(groups=8)``; presets never construct modules themselves.
    """


@hookspec
def register_models(register: Callable[["ModelEntry"], None]) -> None:
    """Contribute model architectures, named in call form: ``plaincnn(depth=30, width=64)``.

    Call ``register(model)`` with an :class:`explorer.registry.ModelEntry` for each architecture.
    Its ``factory(spec, num_classes=..., in_channels=..., **params)`` returns an
    :class:`explorer.models.NormxModel` whose normalization sites are built from ``spec`` (with
    :func:`explorer.create_conv`, :func:`explorer.create_normalized_layer`, ...); its name must be
    unique across all plugins.
    """


@hookspec
def register_predictors(register: Callable[["PredictorEntry"], None]) -> None:
    """Contribute predictors at initialization: numbers measured on a freshly built model that say
    how it will train (the paper's cosine similarity, a zero-cost proxy, ...).

    Call ``register(predictor)`` with an :class:`explorer.registry.PredictorEntry` for each one: its
    name (unique across all plugins; it becomes a key of the stored ``predictors`` record, a study
    objective and a screening criterion), its direction (``"lower"`` or ``"higher"`` is better),
    what it ``needs`` of the measurement (``activations``, ``output_gradients``,
    ``weight_gradients``, ``separate_pass``), a doc line, and ``compute``, called with an
    :class:`explorer.predictors.BatchPass` per batch (``per="batch"``) or an
    :class:`explorer.predictors.SeedPass` per built model (``per="seed"``).
    """
