"""A trial flattened for tables, plots and the filter box: :class:`TrialRow`, built from what
``docs/trial-schema.md`` says a trial stores, with the column getters that sorting and filtering share.

Trials that lack some attributes (a study made by hand, a trial still screening) simply give blanks.
The attribute keys are :mod:`explorer.search.schema`'s; a reader that wants a trial's typed record
(:class:`~explorer.search.schema.TrialRecord`: its predictors and training runs per model, its
screening) asks :attr:`TrialRow.record`, parsed on first use so that loading thousands of rows
parses none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from explorer.records import LAYER_PREDICTORS, SCALAR_PREDICTORS, predictor_value, to_float
from explorer.search.schema import Stage, TrialAttr, TrialRecord, trial_outcome

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from explorer.search.results.rdb_reader import RawTrialRow

#: the paper's scalar init predictors, in the order the UI shows them: every study's first columns
#: (a study's own list, a plugin's predictors included, is
#: :attr:`~explorer.search.results.study_data.StudyData.scalar_predictors`)
PREDICTORS: tuple[str, ...] = SCALAR_PREDICTORS
#: measured outcomes a predictor can be validated against
OUTCOMES: tuple[str, ...] = ("test_accuracy", "mean_train_accuracy")
#: per-layer curves of a trial's predictors
LAYER_CURVES: tuple[str, ...] = LAYER_PREDICTORS
#: "interrupted": a FAIL that is not a result (Ctrl-C, or a worker that died); it is retried and,
#: like the runner's budget, not counted as finished.
STATES: tuple[str, ...] = ("complete", "running", "pruned", "failed", "interrupted", "waiting")


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


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

    @cached_property
    def record(self) -> TrialRecord:
        """The trial's stored attributes as their typed record (docs/trial-schema.md), parsed once."""
        return TrialRecord.from_attrs(self.user_attrs)

    @property
    def cosine_similarity(self) -> float | None:
        return self.predictor("cosine_similarity")

    @property
    def grad_explosion_exponent(self) -> float | None:
        return self.predictor("grad_explosion_exponent")

    @property
    def stable_rank(self) -> float | None:
        return self.predictor("stable_rank")

    @property
    def variance_growth_rate(self) -> float | None:
        return self.predictor("variance_growth_rate")

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
    def rung(self) -> int | None:
        """Policy "halving": the last rung the trial reached (0: screened only; the number of
        training rungs it passed, plus one when it trained to the end); None for other policies."""
        screening = self.user_attrs.get(TrialAttr.SCREENING)
        if not isinstance(screening, dict) or screening.get("policy") != "halving":
            return None
        records = self.user_attrs.get(TrialAttr.RUNGS)
        reached = max((int(r["rung"]) for r in records if isinstance(r, dict) and isinstance(r.get("rung"), int)),
                      default=0) if isinstance(records, list) else 0
        if self.train or (screening.get("decision") == "train" and self.stage == Stage.TRAINING):
            reached += 1  # trained to the end, or training towards the next rung
        return reached

    @property
    def progress(self) -> str:
        """Where the trial is: ``training 120/500``, ``screening``, ``done``, with halving's rung
        (``training 40/300 (rung 2)``, ``pruned at rung 1``)…"""
        rung = self.rung
        if self.stage == Stage.TRAINING and self.step is not None:
            text = f"training {self.step}/{self.steps}" if self.steps else f"training {self.step}"
            return f"{text} (rung {rung})" if rung else text
        if rung is not None and self.stage in (Stage.PRUNED, Stage.DONE):
            return f"{self.stage} at rung {rung}"
        return self.stage or self.state

    def predictor(self, name: str) -> float | None:
        """A stored scalar predictor by name (a plugin's too; ``variance_growth_rate`` from its
        record), None when the trial does not hold it."""
        return predictor_value(self.predictors, name)

    def value(self, key: str) -> Any:
        """The value of column ``key`` (see :func:`column_getter`), for sorting and filtering."""
        return column_getter(key)(self)

    def layer_curve(self, name: str) -> list[float | None]:
        """A per-layer predictor (``activation_variance`` or ``grad_norm``), in forward order."""
        values = self.predictors.get(name)
        return [to_float(v) for v in values] if isinstance(values, list) else []

    def loss_curve(self) -> list[tuple[float, float | None]]:
        curve = self.train.get("loss_curve")
        if not isinstance(curve, list):
            return []
        return [(float(p[0]), to_float(p[1])) for p in curve if isinstance(p, (list, tuple)) and len(p) == 2]


def row_from_trial(trial: FrozenTrial | RawTrialRow) -> TrialRow:
    """The row of a trial read by :func:`~explorer.search.results.rdb_reader.read_trials`."""
    attrs = trial.user_attrs
    predictors = attrs.get(TrialAttr.PREDICTORS)
    train = attrs.get(TrialAttr.TRAIN)
    state = trial_outcome(trial.state.name, attrs)
    stage = str(attrs.get(TrialAttr.STAGE) or "")
    if not stage:
        stage = {"complete": Stage.DONE, "failed": Stage.FAILED, "pruned": Stage.PRUNED}.get(state, "")
    reason = attrs.get(TrialAttr.PRUNE_REASON) or attrs.get(TrialAttr.ERROR) or ""
    if isinstance(train, dict) and train.get("diverged") and not reason:
        reason = f"diverged at step {train.get('diverged_step')}"
    values = tuple(trial.values) if trial.values is not None else ()
    step, steps = attrs.get(TrialAttr.STEP), attrs.get(TrialAttr.STEPS)
    reused = attrs.get(TrialAttr.REUSED_FROM)
    return TrialRow(
        number=trial.number, state=state, spec=str(attrs.get(TrialAttr.SPEC) or ""), stage=stage,
        step=step if isinstance(step, int) else None, steps=steps if isinstance(steps, int) else None,
        values=values, predictors=predictors if isinstance(predictors, dict) else {},
        train=train if isinstance(train, dict) else {}, reason=str(reason),
        reused_from=reused if isinstance(reused, int) else None, worker=str(attrs.get(TrialAttr.WORKER) or ""),
        started=trial.datetime_start, completed=trial.datetime_complete, user_attrs=attrs,
        params=trial.params,
    )




# ---------------------------------------------------------------------------------------------
# columns: key -> getter; the table, the sort keys and the filter share them


COLUMN_GETTERS: dict[str, Callable[[TrialRow], Any]] = {
    "number": lambda r: r.number,
    "spec": lambda r: r.spec,
    "state": lambda r: r.state,
    "progress": lambda r: r.progress,
    "rung": lambda r: r.rung,
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


def column_getter(key: str) -> Callable[[TrialRow], Any]:
    """The getter of column ``key``; a predictor with no column of its own (a plugin's, a zero-cost
    baseline) is read from the trial's stored record by its name."""
    getter = COLUMN_GETTERS.get(key)
    return getter if getter is not None else (lambda row: row.predictor(key))


def column_key(name: str) -> str | None:
    name = name.strip().lower()
    key = ALIASES.get(name, name)
    return key if key in COLUMN_GETTERS else None


def sort_rows(rows: Iterable[TrialRow], key: str, reverse: bool = False) -> list[TrialRow]:
    """Rows sorted by column ``key``; blanks (None, NaN) always last, whatever the direction."""
    getter = column_getter(key)

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

    ``acc>0.5``, ``cos<=0.3``, ``state=pruned``, ``spec~gx`` compare a column (or a stored predictor
    by its name: ``dead_unit_fraction<0.5``); ``pareto`` keeps the
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
        if match and key is None and row.predictor(match.group(1)) is not None:
            key = match.group(1)  # a stored predictor with no column of its own (a plugin's, say)
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
