"""A study read from storage, as every reader sees it: its objectives (named once, here), its trials
as :class:`~explorer.search.results.rows.TrialRow`, its Pareto front (computed once, here), a summary
and the series the plots draw.

The viewer, the report, the live progress display, ``normx study list|pareto|validate`` and the
predictor validation all read a study through :func:`load_study`; it never writes. Trials are read
by :func:`~explorer.search.results.rdb_reader.read_trials`, so a study of a few thousand trials
loads in a fraction of a second. Named after what it holds (:class:`StudyData`): the Optuna study
that a worker creates and runs is :mod:`explorer.search.optuna_study`'s, the ``normx study``
commands are :mod:`explorer.cli.study`.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from explorer.direction import Direction
from explorer.records import SCALAR_PREDICTORS, direction_of, scalar_predictors
from explorer.search.results.locate import find_study_id
from explorer.search.results.rdb_reader import read_trials
from explorer.search.results.rows import STATES, RowFilter, TrialRow, column_getter, finite, row_from_trial, sort_rows
from explorer.search.schema import StudyAttr
from explorer.search.storage import open_readonly

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


@dataclass(frozen=True)
class Objective:
    """One of the study's objectives, in the order of Optuna's ``study.directions``; ``direction``
    is built from Optuna's word (``"maximize"``, ``"minimize"``: what the report prints, as
    ``direction.optuna``) or a :class:`Direction`."""

    name: str
    direction: Direction

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", Direction.of(self.direction))

    @property
    def maximize(self) -> bool:
        return self.direction is Direction.HIGHER



# ---------------------------------------------------------------------------------------------
# Pareto front


def pareto_mask(values: Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[bool]:
    """Which points are not dominated (no other point at least as good everywhere, better somewhere)."""
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
    """Set ``row.pareto`` on the complete trials that are on the study's Pareto front (diverged
    trainings are kept off it, as Optuna's ``best_trials`` does through their constraint)."""
    candidates = [r for r in rows if r.state == "complete" and not r.diverged and len(r.values) == len(objectives)
                  and all(finite(v) for v in r.values)]  # a diverged run's chance accuracy is not a result
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
    #: finished trials that repeated an earlier composition (told its result; no place in the budget)
    repeats: int = 0
    #: complete trials whose training diverged (counted in ``complete``, never the best or on the front)
    diverged: int = 0

    @property
    def finished(self) -> int:
        """Distinct compositions finished: what the budget counts."""
        return self.counts["complete"] + self.counts["pruned"] + self.counts["failed"] - self.repeats


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

    @cached_property
    def scalar_predictors(self) -> tuple[str, ...]:
        """The scalar predictors the viewer, the report and the figures show for this study: the
        paper's (always, so that every study has the same first columns), then every other one its
        trials' stored records hold (the parameter count, a zero-cost baseline, a plugin's), in
        stored order. Read from the records, so a plugin's predictor needs no edit here."""
        names = dict.fromkeys(SCALAR_PREDICTORS)
        for row in self.rows:
            names.update(dict.fromkeys(scalar_predictors(row.predictors)))
        return tuple(names)

    def predictor_direction(self, name: str) -> Direction | None:
        """Which way predictor ``name`` is better, as its trials stored it (a built-in's known
        without), or None when unknown."""
        return next((d for d in (direction_of(r.predictors, name) for r in self.rows if r.predictors) if d),
                    direction_of({}, name))

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
        """The best complete trial for each objective (a diverged training is never the best)."""
        best: dict[str, TrialRow] = {}
        for k, objective in enumerate(self.objectives):
            scored = [r for r in self.rows if r.state == "complete" and not r.diverged and len(r.values) > k
                      and finite(r.values[k])]
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
        repeats = sum(1 for r in self.rows if r.reused_from is not None and r.state in ("complete", "pruned", "failed"))
        finished = counts["complete"] + counts["pruned"] + counts["failed"] - repeats
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
                       rate_per_min=rate, eta_s=eta, elapsed_s=elapsed, repeats=repeats,
                       diverged=sum(1 for r in self.rows if r.state == "complete" and r.diverged))

    # -- series for the plots --------------------------------------------------------------

    def tradeoff_points(self) -> list[tuple[float, float, float | None, TrialRow]]:
        """(cosine similarity, explosion exponent, test accuracy or None, row) for trials with both predictors."""
        points = []
        for row in self.rows:
            x, y = row.cosine_similarity, row.grad_explosion_exponent
            if finite(x) and finite(y):
                points.append((x, y, row.test_accuracy if finite(row.test_accuracy) else None, row))
        return points

    def predictor_points(self, predictor: str, outcome: str = "test_accuracy") -> list[tuple[float, float, TrialRow]]:
        """(predictor, outcome, row) for the trained trials where both are finite."""
        getter_x, getter_y = column_getter(predictor), column_getter(outcome)
        points = []
        for row in self.rows:
            x, y = getter_x(row), getter_y(row)
            if finite(x) and finite(y):
                points.append((x, y, row))
        return points


def study_budget(user_attrs: dict[str, Any]) -> int | None:
    """The study-wide trial budget: the ``n_trials`` study attribute (or ``budget``), else
    ``n_trials`` in the study file."""
    for key in (StudyAttr.N_TRIALS, "budget"):
        value = user_attrs.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    text = user_attrs.get(StudyAttr.STUDY_FILE)
    if isinstance(text, str) and text:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return None
        return _find_int(data, StudyAttr.N_TRIALS)
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
    """The study's objectives: the names the runner stored (``objectives`` study attribute), else
    ``value`` for a single objective and ``objective K`` for several; directions from the storage."""
    names = [d.name.lower() for d in directions]  # StudyDirection.MAXIMIZE -> "maximize"
    stored = user_attrs.get(StudyAttr.OBJECTIVES)
    objectives = []
    for k, direction in enumerate(names):
        name = f"objective {k}" if len(names) > 1 else "value"
        if isinstance(stored, list) and k < len(stored) and isinstance(stored[k], dict):
            name = str(stored[k].get("name", name))
        objectives.append(Objective(name, direction))
    return objectives


def load_study(storage: BaseStorage, name: str) -> StudyData:
    """Read study ``name`` from ``storage`` (never writing) into a :class:`StudyData`."""
    started = time.perf_counter()
    study_id = find_study_id(storage, name)
    user_attrs = storage.get_study_user_attrs(study_id)
    directions = storage.get_study_directions(study_id)
    trials = read_trials(storage, study_id)
    rows = [row_from_trial(t) for t in trials]
    objectives = _objectives(user_attrs, directions)
    mark_pareto(rows, objectives)
    return StudyData(name=name, objectives=objectives, rows=rows, user_attrs=dict(user_attrs),
                     load_seconds=time.perf_counter() - started)


class StudySource:
    """A study to (re)load: keeps the storage open so that refreshing a journal or database is cheap."""

    def __init__(self, storage_url: str, study_name: str):
        self.storage_url = storage_url
        self.study_name = study_name
        self.storage = open_readonly(storage_url)
        find_study_id(self.storage, study_name)  # fail now, with the list of studies, not later

    def load(self) -> StudyData:
        return load_study(self.storage, self.study_name)


def load_studies(storage: BaseStorage) -> list[StudyData]:
    """Every study in ``storage``, in the order they were created (never writing)."""
    return [load_study(storage, study.study_name) for study in storage.get_all_studies()]
