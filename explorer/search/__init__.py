"""Optuna studies over normalizer compositions: study files, the search space, screening, training.

This layer builds on the core (specs, models, predictors, data, training) and is the only one that
imports optuna. Entry points, importable from this package: :func:`load_study_file`
(:mod:`~explorer.search.study_file`), :func:`prepare` and :class:`StudyContext`
(:mod:`~explorer.search.context`), :class:`Worker` (:mod:`~explorer.search.worker`),
:func:`run_study` (:mod:`~explorer.search.orchestrate`), :func:`interrupt_on_signals` (:mod:`~explorer.search.signals`). What a
study stores is :mod:`~explorer.search.schema`; how it judges a composition,
:mod:`~explorer.search.policy`.

They load on first use, so reading a study's storage (``normx view``) does not import torch.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

DEFAULT_STORAGE = "sqlite:///normx.db"
STORAGE_ENV = "NORMX_STORAGE"

_LAZY = {
    "load_study_file": "explorer.search.study_file",
    "StudyContext": "explorer.search.context",
    "prepare": "explorer.search.context",
    "Worker": "explorer.search.worker",
    "run_study": "explorer.search.orchestrate",
    "interrupt_on_signals": "explorer.search.signals",
}

__all__ = ["DEFAULT_STORAGE", "STORAGE_ENV", "default_storage", *_LAZY]


def default_storage() -> str:
    """The storage used when neither the command line nor the study file names one."""
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'explorer.search' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
