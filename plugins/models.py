"""The reference architectures (cnn10, cnn20, plaincnn, resnet56, resnet, mlp, transformer), registered
through the ``register_models`` hook like any third-party model."""

from __future__ import annotations

from explorer import hookimpl


@hookimpl
def register_models(register):
    from explorer.models import BUILTIN_MODELS

    for name, (factory, params, description) in BUILTIN_MODELS.items():
        register(name, factory, description, params=params)
