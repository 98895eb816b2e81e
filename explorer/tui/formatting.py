"""How the UI labels and prints the data: column headers and compact numbers and durations,
shared by the viewer, the report, the live progress and the CLI's tables."""

from __future__ import annotations

import math
from typing import Any

from explorer.search.results import to_float

#: how a Pareto-optimal trial is marked, in the tables and in the plots
PARETO_MARK = "◆"

#: the header of each column key (see :data:`explorer.search.results.COLUMN_GETTERS`) in tables and plots
COLUMNS: dict[str, str] = {
    "number": "#",
    "spec": "composition",
    "state": "state",
    "progress": "stage",
    "cosine_similarity": "cos sim",
    "grad_explosion_exponent": "explosion",
    "stable_rank": "st.rank",
    "mean_train_accuracy": "train acc",
    "test_accuracy": "test acc",
    "reason": "pruned / error",
}


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h07m``; ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_number(value: Any, digits: int = 3) -> str:
    """Compact numbers for tables: blanks as ``-``, inf/nan spelled out."""
    number = to_float(value)
    if number is None:
        return "-" if value is None else str(value)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number != 0 and (abs(number) >= 1e4 or abs(number) < 1e-3):
        return f"{number:.{max(1, digits - 1)}e}"
    return f"{number:.{digits}f}"
