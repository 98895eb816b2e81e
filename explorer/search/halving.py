"""Successive halving from initialization (``[screening] policy = "halving"``): asynchronous,
multi-objective, each rung ranked by Pareto rank on the study's objectives measured there.

Rung 0 is the initialization screening: every candidate is screened and the top 1/η by the
screening score (combined, a predictor, or learned) start training, with the relative policy's
rule (:func:`explorer.search.screening.relative_decision`). Rungs 1…k train for ``steps // η^(k-1)``,
…, ``steps // η``, ``steps`` steps of one run (one learning-rate schedule: a rung is a checkpoint of
the full run, so a candidate that goes on continues where it stopped). At each rung the objectives
are measured (test accuracy at that step, mean training accuracy so far, …; predictor objectives
are those at initialization) and the candidate goes on when it ranks in the top ⌊n/η⌋ of the n
candidates that reached the rung so far, in any worker, itself included: ranked by non-dominated
sorting, ties within a front broken by crowding distance (NSGA-II's order). A rung that holds fewer
than η results promotes everyone: there is nothing yet to halve.

This is ASHA's *stopping* form (Li et al., 2020; Optuna's ``SuccessiveHalvingPruner`` decides the
same way for one objective): a worker decides the moment its candidate reaches a rung, against the
results already there, and never waits for another worker. A candidate that goes on keeps training
in memory; its state at the rung is saved to the study's artifact store, so that a retry (after
Ctrl-C, a SIGKILL, on another machine) continues from the rung instead of from step 0.

Pure functions on plain numbers: the worker (:mod:`explorer.search.evaluation`) and the NormBench
replay (:mod:`explorer.normbench.replay`) both decide through :func:`promotion_decision`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from explorer.direction import Direction
from explorer.records import to_float
from explorer.search.schema import TrialAttr
from explorer.search.screening import Decision
from explorer.search.study_file import objective_source

#: A training objective's key in a checkpoint record, where the names differ.
CHECKPOINT_KEYS = {"final_loss": "train_loss", "wall_time_s": "train_s"}

#: ``[screening] eta``'s default: a third of each rung goes on (Hyperband's and ASHA's usual η).
DEFAULT_ETA = 3
#: rungs below this many steps are not made (a rung must train for something)
MIN_RUNG_STEPS = 1


def rung_steps(total: int, eta: int = DEFAULT_ETA, min_steps: int | None = None) -> tuple[int, ...]:
    """The training steps of rungs 1…k: ``total // η^j`` for j = k-1 … 0, the first at least
    ``min_steps`` (default ``total // η²``: three training rungs, as NormBench's checkpoints).

    >>> rung_steps(300)
    (33, 100, 300)
    >>> rung_steps(200, 3, 10)
    (22, 66, 200)
    """
    if total < 1:
        return ()
    if eta < 2:
        raise ValueError(f"eta must be at least 2, got {eta}")
    floor = max(MIN_RUNG_STEPS, total // eta ** 2 if min_steps is None else int(min_steps))
    steps = {total // eta ** j for j in range(64) if eta ** j <= total and total // eta ** j >= floor}
    return tuple(sorted(steps | {total}))


def nondominated_fronts(points: Sequence[Sequence[float]]) -> list[int]:
    """Each point's front (0: not dominated; 1: dominated only by front 0; …), all objectives
    lower-is-better. NaN counts as the worst value (+inf). O(n²·m): rungs hold hundreds at most."""
    clean = [[math.inf if math.isnan(v) else v for v in p] for p in points]
    n = len(clean)
    dominated_by = [0] * n
    dominates: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = clean[i], clean[j]
            if all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b)):
                dominates[i].append(j)
                dominated_by[j] += 1
            elif all(y <= x for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
                dominates[j].append(i)
                dominated_by[i] += 1
    front = [-1] * n
    current = [i for i in range(n) if dominated_by[i] == 0]
    level = 0
    while current:
        following = []
        for i in current:
            front[i] = level
            for j in dominates[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    following.append(j)
        current, level = following, level + 1
    return front


def crowding_distances(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance of each point among ``points`` (one front): the extremes of each
    objective are infinitely far; larger is more isolated (kept first)."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for m in range(len(points[0])):
        values = [math.inf if math.isnan(p[m]) else p[m] for p in points]
        order = sorted(range(n), key=lambda i: values[i])
        low, high = values[order[0]], values[order[-1]]
        distance[order[0]] = distance[order[-1]] = math.inf
        span = high - low
        if not math.isfinite(span) or span <= 0:
            continue
        for k in range(1, n - 1):
            distance[order[k]] += (values[order[k + 1]] - values[order[k - 1]]) / span
    return distance


def pareto_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Each point's rank (1 best) by front, then by crowding distance within its front (larger
    first); equal (front, distance) pairs share the better rank."""
    fronts = nondominated_fronts(points)
    keys: list[tuple[int, float]] = [(f, 0.0) for f in fronts]
    for level in set(fronts):
        members = [i for i, f in enumerate(fronts) if f == level]
        for i, d in zip(members, crowding_distances([points[i] for i in members])):
            keys[i] = (level, -d)
    return [1 + sum(1 for other in keys if other < mine) for mine in keys]


@dataclass(frozen=True)
class HalvingPolicy:
    """η and the training steps of the rungs (the last one is the full run)."""

    eta: int = DEFAULT_ETA
    rungs: tuple[int, ...] = ()

    @classmethod
    def of(cls, screening: Any, total_steps: int) -> HalvingPolicy:
        """The policy of a study file's ``[screening]`` (its ``eta`` and ``min_steps``) for a run of
        ``total_steps`` steps."""
        eta = int(getattr(screening, "eta", DEFAULT_ETA))
        return cls(eta=eta, rungs=rung_steps(total_steps, eta, getattr(screening, "min_steps", None)))

    def describe_rung(self, rung: int) -> str:
        """``"rung 1 (33 of 300 steps)"``."""
        return f"rung {rung} ({self.rungs[rung - 1]} of {self.rungs[-1]} steps)"


def badness(values: Sequence[float], directions: Sequence[Direction]) -> list[float]:
    """Objective values as lower-is-better numbers (NaN and None worst)."""
    return [Direction.of(d).badness(v) for v, d in zip(values, directions)]


def promotion_decision(policy: HalvingPolicy, rung: int, mine: Sequence[float],
                       others: Sequence[Sequence[float]], directions: Sequence[Direction],
                       names: Sequence[str] = ()) -> Decision:
    """Whether a candidate that reached ``rung`` (1-based: a training rung) goes on, with the reason.

    ``mine`` and each of ``others`` are the objective values measured at that rung, in the study's
    objective order with ``directions``; ``others`` holds every other candidate that reached the
    rung so far. The candidate goes on when its Pareto rank (:func:`pareto_ranks`) among all of
    them is within the top ⌊n/η⌋, or when the rung holds fewer than η results.
    """
    where = policy.describe_rung(rung)
    pool = [badness(v, directions) for v in [*others, mine]]
    n = len(pool)
    if n < policy.eta:
        return Decision(True, f"{where}: {n} result(s) there, fewer than η = {policy.eta}: goes on", 1, n,
                        policy="halving")
    rank = pareto_ranks(pool)[-1]
    allowed = n // policy.eta
    on = ", ".join(names) if names else "the objectives"
    why = (f"{where}: Pareto rank {rank} of {n} on {on}; the top {allowed} (1/{policy.eta}) go on")
    return Decision(rank <= allowed, why, rank, n, policy="halving")


def rung_objective_values(objectives: Mapping[str, Direction], checkpoints: Mapping[str, Mapping[str, Any]],
                          predictors: Mapping[str, Any], aggregate: str = "worst") -> list[float]:
    """The study's objectives measured at a rung: training measures from each model's checkpoint
    record at the rung (``final_loss`` is the checkpoint's training loss, ``wall_time_s`` its
    training seconds), predictors from the aggregated record; over models, the worst (or mean)."""
    out = []
    for name, direction in objectives.items():
        direction = Direction.of(direction)
        source, key, _ = objective_source(name)
        if source != TrialAttr.TRAIN:
            value = to_float(predictors.get(key))
            out.append(math.nan if value is None else value)
            continue
        values = [to_float(c.get(CHECKPOINT_KEYS.get(key, key))) for c in checkpoints.values()]
        values = [math.nan if v is None else v for v in values]
        if key == "final_loss":
            values = [math.inf if math.isnan(v) else v for v in values]  # diverged: the worst loss
        if not values:
            out.append(math.nan)
        elif aggregate == "mean":
            out.append(sum(values) / len(values))
        else:
            out.append(values[direction.worst_index(values)])
    return out
