"""Optuna studies over normalizer compositions: study files, the search space, screening, training.

This layer builds on the core (specs, models, predictors, data, training) and is the only one that
imports optuna. Entry points: :func:`explorer.search.study_file.load_study_file` and
:func:`explorer.search.runner.run_study`.
"""

from __future__ import annotations

DEFAULT_STORAGE = "sqlite:///normx.db"
STORAGE_ENV = "NORMX_STORAGE"


def default_storage() -> str:
    """The storage used when neither the command line nor the study file names one."""
    import os

    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
