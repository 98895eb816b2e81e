"""Reading a study's results: the one way every reader (viewer, report, live progress,
``normx study list|pareto|validate``, predictor validation) finds a study, opens its storage
read-only, loads its trials, names its objectives and computes its Pareto front.

Plain Python over Optuna's storage (no rich, no textual), so it is tested without a terminal.
Modules: :mod:`~explorer.search.results.locate` (finding a study),
:mod:`~explorer.search.results.rdb_reader` (the fast reader of Optuna's RDB tables),
:mod:`~explorer.search.results.rows` (a trial as a row; sorting and filtering),
:mod:`~explorer.search.results.study_data` (the study: objectives, Pareto front, summary, series) and
:mod:`~explorer.search.results.export` (the report's data: ``normx report --json`` and ``--csv``).

The public names below are loaded on first use: ``to_float`` or ``TrialRow`` (for the catalog
tables of ``normx normalizers``) cost no import of optuna; ``StudyData`` and the readers do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    "StudyNotFoundError": "locate",
    "find_study_id": "locate",
    "locate_study": "locate",
    "study_names": "locate",
    "RawTrialRow": "rdb_reader",
    "read_trials": "rdb_reader",
    "ALIASES": "rows",
    "COLUMN_GETTERS": "rows",
    "LAYER_CURVES": "rows",
    "OUTCOMES": "rows",
    "PREDICTORS": "rows",
    "STATES": "rows",
    "RowFilter": "rows",
    "TrialRow": "rows",
    "column_getter": "rows",
    "column_key": "rows",
    "finite": "rows",
    "row_from_trial": "rows",
    "sort_rows": "rows",
    "to_float": "rows",
    "Objective": "study_data",
    "StudyData": "study_data",
    "StudySource": "study_data",
    "Summary": "study_data",
    "load_studies": "study_data",
    "load_study": "study_data",
    "mark_pareto": "study_data",
    "pareto_mask": "study_data",
    "study_budget": "study_data",
    "StorageError": "explorer.search.storage",
    "mask_password": "explorer.search.storage",
    "open_readonly": "explorer.search.storage",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from explorer.search.results.locate import StudyNotFoundError, find_study_id, locate_study, study_names
    from explorer.search.results.rdb_reader import RawTrialRow, read_trials
    from explorer.search.results.rows import (
        ALIASES, COLUMN_GETTERS, LAYER_CURVES, OUTCOMES, PREDICTORS, STATES, RowFilter, TrialRow, column_getter,
        column_key, finite, row_from_trial, sort_rows, to_float,
    )
    from explorer.search.results.study_data import (
        Objective, StudyData, StudySource, Summary, load_studies, load_study, mark_pareto, pareto_mask, study_budget,
    )
    from explorer.search.storage import StorageError, mask_password, open_readonly


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    path = module if "." in module else f"{__name__}.{module}"
    value = getattr(importlib.import_module(path), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
