"""The viewer's data model: a study read from storage into rows, series and a summary.

Plain Python (no rich, no textual) so it is tested without a terminal and shared by the viewer,
the report and the live progress display. It reads what ``docs/trial-schema.md`` says a study
stores; trials that lack some attributes (a study made by hand, a trial still screening) simply
show blanks. Loading uses the storage's bulk ``get_all_trials(deepcopy=False)``, so a study of a
few thousand trials loads in a fraction of a second.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

#: the scalar init predictors, in the order the UI shows them
PREDICTORS: tuple[str, ...] = ("cosine_similarity", "grad_explosion_exponent", "stable_rank", "variance_growth_rate")
#: measured outcomes a predictor can be validated against
OUTCOMES: tuple[str, ...] = ("test_accuracy", "mean_train_accuracy")
#: per-layer curves of a trial's predictors
LAYER_CURVES: tuple[str, ...] = ("activation_variance", "grad_norm")
#: "interrupted": a FAIL that is not a result (Ctrl-C, or a worker that died); it is retried and,
#: like the runner's budget, not counted as finished.
STATES: tuple[str, ...] = ("complete", "running", "pruned", "failed", "interrupted", "waiting")
_STATE_NAMES = {"COMPLETE": "complete", "RUNNING": "running", "PRUNED": "pruned", "FAIL": "failed",
                "WAITING": "waiting"}


def to_float(value: Any) -> float | None:
    """A stored number as a float: accepts the strings "inf", "-inf", "nan" the schema uses; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "maximize" | "minimize"

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"


@dataclass
class TrialRow:
    """One trial, flattened for tables and plots; ``user_attrs`` keeps everything else."""

    number: int
    state: str
    spec: str
    stage: str
    step: int | None
    steps: int | None
    values: tuple[float | None, ...]
    predictors: dict[str, Any]
    train: dict[str, Any]
    reason: str
    reused_from: int | None
    worker: str
    started: datetime | None
    completed: datetime | None
    user_attrs: dict[str, Any]
    params: dict[str, Any]
    pareto: bool = False

    @property
    def cosine_similarity(self) -> float | None:
        return to_float(self.predictors.get("cosine_similarity"))

    @property
    def grad_explosion_exponent(self) -> float | None:
        return to_float(self.predictors.get("grad_explosion_exponent"))

    @property
    def stable_rank(self) -> float | None:
        return to_float(self.predictors.get("stable_rank"))

    @property
    def variance_growth_rate(self) -> float | None:
        growth = self.predictors.get("variance_growth")
        return to_float(growth.get("rate")) if isinstance(growth, dict) else None

    @property
    def variance_growth_kind(self) -> str:
        growth = self.predictors.get("variance_growth")
        return str(growth.get("kind", "")) if isinstance(growth, dict) else ""

    @property
    def test_accuracy(self) -> float | None:
        return to_float(self.train.get("test_accuracy"))

    @property
    def mean_train_accuracy(self) -> float | None:
        return to_float(self.train.get("mean_train_accuracy"))

    @property
    def diverged(self) -> bool:
        return bool(self.train.get("diverged"))

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        end = self.completed or datetime.now()
        return max(0.0, (end - self.started).total_seconds())

    @property
    def progress(self) -> str:
        """Where the trial is: ``training 120/500``, ``screening``, ``done``…"""
        if self.stage == "training" and self.step is not None:
            return f"training {self.step}/{self.steps}" if self.steps else f"training {self.step}"
        return self.stage or self.state

    def value(self, key: str) -> Any:
        """The value of column ``key`` (see :data:`COLUMNS`), for sorting and filtering."""
        return COLUMN_GETTERS[key](self)

    def layer_curve(self, name: str) -> list[float | None]:
        """A per-layer predictor (``activation_variance`` or ``grad_norm``), in forward order."""
        values = self.predictors.get(name)
        return [to_float(v) for v in values] if isinstance(values, list) else []

    def loss_curve(self) -> list[tuple[float, float | None]]:
        curve = self.train.get("loss_curve")
        if not isinstance(curve, list):
            return []
        return [(float(p[0]), to_float(p[1])) for p in curve if isinstance(p, (list, tuple)) and len(p) == 2]


def _row_from_trial(trial: FrozenTrial) -> TrialRow:
    attrs = trial.user_attrs
    predictors = attrs.get("predictors")
    train = attrs.get("train")
    state = _STATE_NAMES.get(trial.state.name, trial.state.name.lower())
    stage = str(attrs.get("stage") or "")
    if state == "failed" and stage not in ("failed", ""):
        state = "interrupted"
    if not stage:
        stage = {"complete": "done", "failed": "failed", "pruned": "pruned"}.get(state, "")
    reason = attrs.get("prune_reason") or attrs.get("error") or ""
    values = tuple(trial.values) if trial.values is not None else ()
    step, steps = attrs.get("step"), attrs.get("steps")
    reused = attrs.get("reused_from")
    return TrialRow(
        number=trial.number, state=state, spec=str(attrs.get("spec") or ""), stage=stage,
        step=step if isinstance(step, int) else None, steps=steps if isinstance(steps, int) else None,
        values=values, predictors=predictors if isinstance(predictors, dict) else {},
        train=train if isinstance(train, dict) else {}, reason=str(reason),
        reused_from=reused if isinstance(reused, int) else None, worker=str(attrs.get("worker") or ""),
        started=trial.datetime_start, completed=trial.datetime_complete, user_attrs=attrs,
        params=trial.params,
    )


# ---------------------------------------------------------------------------------------------
# columns: key -> (header, getter); the table, the sort keys and the filter share them


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
COLUMN_GETTERS: dict[str, Callable[[TrialRow], Any]] = {
    "number": lambda r: r.number,
    "spec": lambda r: r.spec,
    "state": lambda r: r.state,
    "progress": lambda r: r.progress,
    "stage": lambda r: r.stage,
    "cosine_similarity": lambda r: r.cosine_similarity,
    "grad_explosion_exponent": lambda r: r.grad_explosion_exponent,
    "stable_rank": lambda r: r.stable_rank,
    "variance_growth_rate": lambda r: r.variance_growth_rate,
    "mean_train_accuracy": lambda r: r.mean_train_accuracy,
    "test_accuracy": lambda r: r.test_accuracy,
    "reason": lambda r: r.reason,
    "pareto": lambda r: r.pareto,
    "worker": lambda r: r.worker,
}
#: short names accepted by the filter box (``acc>0.5``, ``cos<0.3``, ``state=pruned``)
ALIASES: dict[str, str] = {
    "#": "number", "n": "number", "trial": "number", "cos": "cosine_similarity",
    "expl": "grad_explosion_exponent", "explosion": "grad_explosion_exponent", "rank": "stable_rank",
    "growth": "variance_growth_rate", "train": "mean_train_accuracy", "acc": "test_accuracy",
    "accuracy": "test_accuracy", "composition": "spec",
}


def column_key(name: str) -> str | None:
    name = name.strip().lower()
    key = ALIASES.get(name, name)
    return key if key in COLUMN_GETTERS else None


def sort_rows(rows: Iterable[TrialRow], key: str, reverse: bool = False) -> list[TrialRow]:
    """Rows sorted by column ``key``; blanks (None, NaN) always last, whatever the direction."""
    getter = COLUMN_GETTERS[key]

    def blank(v: Any) -> bool:
        return v is None or v == "" or (isinstance(v, float) and math.isnan(v))

    rows = list(rows)
    present = [r for r in rows if not blank(getter(r))]
    missing = [r for r in rows if blank(getter(r))]
    present.sort(key=lambda r: (getter(r), r.number), reverse=reverse)
    return present + missing


_TERM = re.compile(r"^([#\w]+)\s*(>=|<=|!=|=|>|<|~)\s*(.+)$")


@dataclass(frozen=True)
class RowFilter:
    """A filter typed in the viewer's box: space-separated terms, all of which must hold.

    ``acc>0.5``, ``cos<=0.3``, ``state=pruned``, ``spec~gx`` compare a column; ``pareto`` keeps the
    Pareto front; any other word must occur (case-insensitively) in the composition, state, stage,
    or pruning reason.
    """

    text: str = ""

    def terms(self) -> list[str]:
        return self.text.split()

    def __call__(self, row: TrialRow) -> bool:
        return all(self._match(term, row) for term in self.terms())

    @staticmethod
    def _match(term: str, row: TrialRow) -> bool:
        lowered = term.lower()
        if lowered in ("pareto", "*", "★"):
            return row.pareto
        match = _TERM.match(term)
        key = column_key(match.group(1)) if match else None
        if match and key is not None:
            op, wanted = match.group(2), match.group(3)
            value = row.value(key)
            number = to_float(wanted)
            if isinstance(value, bool):
                value = str(value).lower()
            if isinstance(value, (int, float)) and number is not None:
                if isinstance(value, float) and math.isnan(value):
                    return op == "!="
                return {"=": value == number, "!=": value != number, ">": value > number, "<": value < number,
                        ">=": value >= number, "<=": value <= number, "~": value == number}[op]
            if value is None:
                return op == "!="
            text = str(value).lower()
            wanted = wanted.lower()
            if op == "~":
                return wanted in text
            if op in ("=", "!="):
                return (text == wanted or text.startswith(wanted)) == (op == "=")
            return False
        haystack = f"{row.spec} {row.state} {row.progress} {row.reason} #{row.number}".lower()
        return lowered in haystack


# ---------------------------------------------------------------------------------------------
# Pareto front


def pareto_mask(values: Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[bool]:
    """Which points are not dominated (no other point at least as good everywhere, better somewhere)."""
    import numpy as np

    if len(values) == 0:
        return []
    points = np.asarray(values, dtype=float)
    signs = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    points = points * signs  # every objective minimised
    keep = np.ones(len(points), dtype=bool)
    for i in range(len(points)):
        if not keep[i]:
            continue
        # points that i dominates are dropped; i itself is dropped if something dominates it
        dominated_by_i = np.all(points[i] <= points, axis=1) & np.any(points[i] < points, axis=1)
        keep &= ~dominated_by_i
        if np.any(np.all(points <= points[i], axis=1) & np.any(points < points[i], axis=1)):
            keep[i] = False
    return keep.tolist()


def mark_pareto(rows: Sequence[TrialRow], objectives: Sequence[Objective]) -> None:
    """Set ``row.pareto`` on the complete trials that are on the study's Pareto front."""
    candidates = [r for r in rows if r.state == "complete" and len(r.values) == len(objectives)
                  and all(_finite(v) for v in r.values)]
    for row in rows:
        row.pareto = False
    mask = pareto_mask([r.values for r in candidates], [o.maximize for o in objectives])
    for row, on_front in zip(candidates, mask):
        row.pareto = on_front


# ---------------------------------------------------------------------------------------------
# the study


@dataclass
class Summary:
    """Counts, best trial per objective, rate and ETA: what the progress display and header show."""

    counts: dict[str, int]
    total: int
    budget: int | None
    best: dict[str, TrialRow]
    running: list[TrialRow]
    rate_per_min: float | None
    eta_s: float | None
    elapsed_s: float | None

    @property
    def finished(self) -> int:
        return self.counts["complete"] + self.counts["pruned"] + self.counts["failed"]


@dataclass
class StudyData:
    """A study as the viewer sees it; build it with :func:`load_study`."""

    name: str
    objectives: list[Objective]
    rows: list[TrialRow]
    user_attrs: dict[str, Any] = field(default_factory=dict)
    loaded_at: datetime = field(default_factory=datetime.now)
    load_seconds: float = 0.0

    def row(self, number: int) -> TrialRow | None:
        return next((r for r in self.rows if r.number == number), None)

    @property
    def pareto_rows(self) -> list[TrialRow]:
        return [r for r in self.rows if r.pareto]

    @property
    def is_running(self) -> bool:
        return any(r.state in ("running", "waiting") for r in self.rows)

    def select(self, filter_text: str = "", sort_key: str = "number", reverse: bool = False) -> list[TrialRow]:
        """The rows the table shows: filtered by ``filter_text`` (see :class:`RowFilter`) and sorted."""
        keep = RowFilter(filter_text)
        return sort_rows((r for r in self.rows if keep(r)), sort_key, reverse)

    def best(self) -> dict[str, TrialRow]:
        """The best complete trial for each objective."""
        best: dict[str, TrialRow] = {}
        for k, objective in enumerate(self.objectives):
            scored = [r for r in self.rows if r.state == "complete" and len(r.values) > k and _finite(r.values[k])]
            if scored:
                pick = max if objective.maximize else min
                best[objective.name] = pick(scored, key=lambda r: (r.values[k], -r.number) if objective.maximize
                                            else (r.values[k], r.number))
        return best

    def budget(self) -> int | None:
        return study_budget(self.user_attrs)

    def summary(self, now: datetime | None = None, budget: int | None = None) -> Summary:
        """Counts, best per objective, rate and ETA; ``budget`` overrides the study's own (``--n-trials``)."""
        counts = {state: 0 for state in STATES}
        for row in self.rows:
            counts[row.state] = counts.get(row.state, 0) + 1
        now = now or datetime.now()
        starts = [r.started for r in self.rows if r.started is not None]
        ends = [r.completed for r in self.rows if r.completed is not None]
        finished = counts["complete"] + counts["pruned"] + counts["failed"]
        elapsed = rate = eta = None
        if starts:
            until = now if counts["running"] else (max(ends) if ends else now)
            elapsed = max(0.0, (until - min(starts)).total_seconds())
            if finished and elapsed > 0:
                rate = finished / elapsed * 60.0
        budget = budget if budget is not None else self.budget()
        if budget is not None and rate:
            eta = max(0, budget - finished) / rate * 60.0
        running = sorted((r for r in self.rows if r.state == "running"), key=lambda r: r.number)
        return Summary(counts=counts, total=len(self.rows), budget=budget, best=self.best(), running=running,
                       rate_per_min=rate, eta_s=eta, elapsed_s=elapsed)

    # -- series for the plots --------------------------------------------------------------

    def tradeoff_points(self) -> list[tuple[float, float, float | None, TrialRow]]:
        """(cosine similarity, explosion exponent, test accuracy or None, row) for trials with both predictors."""
        points = []
        for row in self.rows:
            x, y = row.cosine_similarity, row.grad_explosion_exponent
            if _finite(x) and _finite(y):
                points.append((x, y, row.test_accuracy if _finite(row.test_accuracy) else None, row))
        return points

    def predictor_points(self, predictor: str, outcome: str = "test_accuracy") -> list[tuple[float, float, TrialRow]]:
        """(predictor, outcome, row) for the trained trials where both are finite."""
        getter_x, getter_y = COLUMN_GETTERS[predictor], COLUMN_GETTERS[outcome]
        points = []
        for row in self.rows:
            x, y = getter_x(row), getter_y(row)
            if _finite(x) and _finite(y):
                points.append((x, y, row))
        return points


def study_budget(user_attrs: dict[str, Any]) -> int | None:
    """The study-wide trial budget: the ``n_trials`` study attribute, else ``n_trials`` in the study file."""
    for key in ("n_trials", "budget"):
        value = user_attrs.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    text = user_attrs.get("study_file")
    if isinstance(text, str) and text:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return None
        return _find_int(data, "n_trials")
    return None


def _find_int(data: Any, key: str) -> int | None:
    if isinstance(data, dict):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        for nested in data.values():
            found = _find_int(nested, key)
            if found is not None:
                return found
    return None


def _objectives(user_attrs: dict[str, Any], directions: Sequence[Any]) -> list[Objective]:
    names = [d.name.lower() for d in directions]  # StudyDirection.MAXIMIZE -> "maximize"
    stored = user_attrs.get("objectives")
    objectives = []
    for k, direction in enumerate(names):
        name = f"objective {k}" if len(names) > 1 else "value"
        if isinstance(stored, list) and k < len(stored) and isinstance(stored[k], dict):
            name = str(stored[k].get("name", name))
        objectives.append(Objective(name, direction))
    return objectives


def load_study(storage: BaseStorage, name: str) -> StudyData:
    """Read study ``name`` from ``storage`` (never writing) into a :class:`StudyData`."""
    from explorer.tui.storage import find_study_id

    started = time.perf_counter()
    study_id = find_study_id(storage, name)
    user_attrs = storage.get_study_user_attrs(study_id)
    directions = storage.get_study_directions(study_id)
    from explorer.tui.rdb_reader import read_trials

    trials = read_trials(storage, study_id)
    rows = [_row_from_trial(t) for t in trials]
    objectives = _objectives(user_attrs, directions)
    mark_pareto(rows, objectives)
    return StudyData(name=name, objectives=objectives, rows=rows, user_attrs=dict(user_attrs),
                     load_seconds=time.perf_counter() - started)


class StudySource:
    """A study to (re)load: keeps the storage open so that refreshing a journal or database is cheap."""

    def __init__(self, storage_url: str, study_name: str):
        from explorer.tui.storage import find_study_id, open_storage

        self.storage_url = storage_url
        self.study_name = study_name
        self.storage = open_storage(storage_url)
        find_study_id(self.storage, study_name)  # fail now, with the list of studies, not later

    def load(self) -> StudyData:
        return load_study(self.storage, self.study_name)


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
