"""norm-explorer: compose normalization layers from pluggable primitives and judge them at init.

The core (specs, composition, models, predictors) imports neither optuna, rich nor textual.
Heavy modules load on first use, so ``import explorer`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from explorer.errors import NormxError, PluginError, SpecError
from explorer.hookspecs import hookimpl
from explorer.registry import SLOTS, ModelEntry, Param, PredictorEntry, Preset, Primitive
from explorer.spec import Spec, Step, format_spec, parse_spec

__version__ = "0.1.0"

_LAZY = {
    "create_norm": "explorer.norm",
    "create_normalized_layer": "explorer.norm",
    "create_conv": "explorer.norm",
    "create_linear": "explorer.norm",
    "create_activation": "explorer.norm",
    "regularizer_loss": "explorer.norm",
    "Normalizer": "explorer.norm",
    "NormalizedLayer": "explorer.norm",
    "get_registry": "explorer.plugins",
    "register_plugin": "explorer.plugins",
    "score": "explorer.scoring",
    "create_model": "explorer.models",
    "load_dataset": "explorer.data",
    "iter_batches": "explorer.data",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'explorer' has no attribute {name!r}")
    import importlib

    attr = "register" if name == "register_plugin" else name
    return getattr(importlib.import_module(module), attr)


__all__ = [
    "NormxError", "PluginError", "SpecError", "hookimpl", "SLOTS", "ModelEntry", "Param", "PredictorEntry", "Preset",
    "Primitive",
    "Spec", "Step", "format_spec", "parse_spec", *_LAZY,
]
