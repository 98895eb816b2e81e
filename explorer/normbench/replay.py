"""Replaying searches on a table: each strategy runs by lookup, paying what the table recorded.

A trained candidate costs its recorded training seconds (and steps), a screened one its recorded
screening seconds, a candidate stopped at a checkpoint the seconds up to that checkpoint. A
strategy has *found* a composition when it has trained it to the end: the best-so-far curve is
the best final test accuracy among those, and the cost to reach the noise band is what it paid
until the first composition inside ``Table.band`` of the best was trained in full. A run stops
there (its curve stays at what it found): every strategy is judged by that cost.

The project's policies decide with the functions the study worker calls
(:func:`~explorer.search.screening.relative_decision`,
:func:`~explorer.search.policy.screening_verdict`) on the same stored-record form of the
predictors (:meth:`Row.record`); Optuna's samplers draw from the table's own search space
(:class:`~explorer.search.space.SearchSpace` on its study file) and its pruners read the recorded
checkpoints as intermediate values. Repeats of a composition a run already evaluated cost nothing,
for every strategy alike (the study worker reuses them too).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import optuna

from explorer.direction import Direction
from explorer.normbench.table import Row, Table, list_tables
from explorer.search.combined import COMBINED
from explorer.search.halving import HalvingPolicy, promotion_decision, rung_objective_values
from explorer.search.learned import LEARNED, NO_PRIOR, load_prior
from explorer.search.policy import screening_verdict
from explorer.search.screening import (RANKING_POLICIES, RelativePolicy, candidate_values, predictor_direction,
                                       relative_decision)
from explorer.search.study_file import ScreeningConfig, StudyConfig, parse_study_text

__all__ = ["FRONT_SHARE", "STRATEGIES", "Replay", "Trace", "default_strategies", "iter_screening_decisions", "replay",
           "replay_fronts", "screening_decisions", "summarize"]

#: how many draws an Optuna run may make, per distinct composition of the table, before it stops
DRAWS_PER_COMPOSITION = 3


@dataclass
class Trace:
    """One run of a strategy: after each paid event, the cumulative cost and the best so far."""

    seconds: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    #: the best final test accuracy among the compositions trained to the end so far (-inf: none yet)
    best: list[float] = field(default_factory=list)
    #: (seconds, steps) paid when the first composition inside the band was trained to the end
    found: tuple[float, float] = (math.inf, math.inf)

    @property
    def done(self) -> bool:
        """A run stops once it has found the band: what it cost to get there is the measure."""
        return math.isfinite(self.found[0])

    def pay(self, seconds: float, steps: int, accuracy: float | None, in_band: bool) -> None:
        """Record one event: its cost, and a final accuracy when it trained a composition to the end."""
        total_s = (self.seconds[-1] if self.seconds else 0.0) + seconds
        total_steps = (self.steps[-1] if self.steps else 0) + steps
        best = self.best[-1] if self.best else -math.inf
        if accuracy is not None and math.isfinite(accuracy):
            best = max(best, accuracy)
        self.seconds.append(total_s)
        self.steps.append(total_steps)
        self.best.append(best)
        if in_band and accuracy is not None and not math.isfinite(self.found[0]):
            self.found = (total_s, float(total_steps))


class Replay:
    """A table with what every strategy needs: its rows by key, its study file, its space."""

    def __init__(self, table: Table):
        self.table = table
        self.config: StudyConfig = parse_study_text(table.metadata.get("study_file") or "", f"{table.name}.toml")
        self.trained = table.trained
        self.final_step = max((r.steps for r in self.trained), default=0)
        self._space: Any = None
        self._keys: dict[str, str] = {}

    # -- costs ------------------------------------------------------------------------------

    def train(self, trace: Trace, row: Row) -> None:
        """Train ``row`` to the end."""
        trace.pay(row.train_s, row.steps, row.test_accuracy if row.trained else None, self.table.in_band(row))

    def stop_at(self, trace: Trace, row: Row, step: int) -> None:
        """Train ``row`` up to its checkpoint at ``step``, then stop (no final accuracy is known)."""
        c = row.at(step)
        trace.pay(c["train_s"], step, None, False)

    def screen(self, trace: Trace, row: Row) -> None:
        trace.pay(row.screening_s, 0, None, False)

    # -- the space, for Optuna's samplers -----------------------------------------------------

    def space(self) -> Any:
        """The table's search space and a key function (built once: it loads the data to size the models)."""
        if self._space is None:
            from explorer.search.context import prepare

            ctx = prepare(self.config)
            self._space = ctx
        return self._space

    def row_of(self, candidate: Any) -> Row | None:
        """The table's row of a sampled candidate (None: invalid, or not in the table)."""
        text = candidate.text
        if text not in self._keys:
            ctx = self.space()
            self._keys[text] = text if candidate.spec is None else ctx.equivalence_key(candidate.spec)
        return self.table.row(self._keys[text])


# --------------------------------------------------------------------------- strategies
# Each takes (replay, seed) and returns a Trace.

Strategy = Callable[[Replay, int], Trace]


def random_search(replay: Replay, seed: int) -> Trace:
    """Draw compositions at random, train each to the end."""
    order = list(replay.trained)
    random.Random(seed).shuffle(order)
    trace = Trace()
    for row in order:
        replay.train(trace, row)
        if trace.done:
            break
    return trace


def oracle(replay: Replay, seed: int) -> Trace:
    """The lower bound of every search: the cheapest composition inside the band first, then the
    rest best first."""
    table = replay.table
    first = sorted((r for r in replay.trained if table.in_band(r)), key=lambda r: (r.train_s, r.trial))[:1]
    rest = sorted((r for r in replay.trained if r not in first), key=lambda r: (-r.test_accuracy, r.trial))
    trace = Trace()
    for row in first + rest:
        replay.train(trace, row)
        if trace.done:
            break
    return trace


def iter_screening_decisions(replay: Replay, screening: ScreeningConfig, order: Sequence[Row],
                             stopped: set[str] | frozenset[str] = frozenset()) -> Iterator[bool]:
    """Whether the study worker would train each of ``order``, arriving in that order: the
    thresholds (:func:`screening_verdict`), then for policy "relative" the rank against every
    candidate screened before it (:func:`relative_decision`), on the stored form of its predictors,
    with the training measures of those trained before it (what the learned score learns from).
    One at a time: a run that stops early decides no further; the keys the caller adds to
    ``stopped`` (candidates halving stopped at a rung) give no training measures, as in a study."""
    policy = RelativePolicy.of(screening, replay.config.objectives) if screening.policy in RANKING_POLICIES else None
    prior = load_prior(policy.prior, policy.objectives) if policy is not None and policy.score == LEARNED \
        and policy.prior else NO_PRIOR
    model = replay.config.models[0]
    screened: list[dict[str, float | None]] = []
    outcomes: list[dict[str, float] | None] = []
    trained = 0
    for row in order:
        record = row.record()
        train = screening_verdict(screening, {model: record}) is None
        values = candidate_values(record)
        if train and policy is not None:
            train = relative_decision(policy, values, screened, trained, outcomes, prior).train
        screened.append(values)
        trained += train
        yield train
        # after the caller ran it: a candidate halving stopped at a rung has no final outcome to learn from
        outcomes.append(row.outcomes() if train and row.trained and row.key not in stopped else None)


def screening_decisions(replay: Replay, screening: ScreeningConfig, order: Sequence[Row]) -> list[bool]:
    """Every decision of :func:`iter_screening_decisions`."""
    return list(iter_screening_decisions(replay, screening, order))


def screening_policy(screening: ScreeningConfig) -> Strategy:
    """This project's screening as the study worker runs it: candidates arrive in random order,
    each is screened (paying its screening seconds) and trained when :func:`iter_screening_decisions`
    says so."""

    def run(replay: Replay, seed: int) -> Trace:
        order = [r for r in replay.table.rows if r.invalid is None]
        random.Random(seed).shuffle(order)
        trace = Trace()
        for row, train in zip(order, iter_screening_decisions(replay, screening, order)):
            replay.screen(trace, row)
            if train:
                replay.train(trace, row)
            if trace.done:
                break
        return trace

    return run


@dataclass(frozen=True)
class Step:
    """One paid event of a halving run: ``row`` trained up to ``step`` (0: screened only);
    ``final`` when that is the end of its run."""

    row: Row
    step: int
    final: bool


def halving_steps(replay: Replay, screening: ScreeningConfig, order: Sequence[Row]) -> Iterator[Step]:
    """What successive halving from initialization does with ``order``, arriving in that order
    and each one run to its last rung before the next arrives (one worker), one at a time: rung 0 by
    :func:`screening_decisions` (the top 1/eta by the score), then each training rung by
    :func:`~explorer.search.halving.promotion_decision` on the study's objectives measured at the
    rung, read from the table's checkpoints; the same functions the study worker calls."""
    policy = HalvingPolicy.of(screening, replay.final_step)
    measured = set(replay.table.checkpoint_steps) | {replay.final_step}
    if not set(policy.rungs) <= measured:  # a table measured elsewhere: its checkpoints are the rungs
        policy = HalvingPolicy(policy.eta, tuple(sorted(s for s in measured if 0 < s <= replay.final_step)))
    objectives = {name: Direction.of(d) for name, d in replay.config.objectives.items()}
    names, directions = list(objectives), list(objectives.values())
    model = replay.config.models[0]
    reached: dict[int, list[list[float]]] = {}
    stopped: set[str] = set()
    decisions = iter_screening_decisions(replay, replace(screening, policy="halving"), order, stopped)
    for row, go in zip(order, decisions):
        if not go or not row.trained:
            yield Step(row, 0, True)
            continue
        for rung, step in enumerate(policy.rungs, 1):
            if step >= replay.final_step:
                yield Step(row, replay.final_step, True)
                break
            values = rung_objective_values(objectives, {model: row.at(step)}, row.record(), replay.config.aggregate)
            decision = promotion_decision(policy, rung, values, reached.setdefault(rung, []), directions, names)
            reached[rung].append(values)
            if not decision.train:
                yield Step(row, step, True)
                stopped.add(row.key)
                break


def halving_search(screening: ScreeningConfig) -> Strategy:
    """Successive halving from initialization as the study worker runs it (:func:`halving_steps`):
    each candidate pays its screening, then its training up to the rung where it stopped."""

    def run(replay: Replay, seed: int) -> Trace:
        order = [r for r in replay.table.rows if r.invalid is None]
        random.Random(seed).shuffle(order)
        trace = Trace()
        for event in halving_steps(replay, screening, order):
            replay.screen(trace, event.row)
            if event.step >= replay.final_step:
                replay.train(trace, event.row)
            elif event.step > 0:
                replay.stop_at(trace, event.row, event.step)
            if trace.done:
                break
        return trace

    return run


def optuna_search(sampler: Callable[[int], optuna.samplers.BaseSampler],
                  pruner: Callable[[Replay], optuna.pruners.BasePruner] | None = None) -> Strategy:
    """What an Optuna user runs instead: a sampler over the table's space, maximizing the final
    test accuracy, with a pruner that reads the recorded checkpoints as intermediate values."""

    def run(replay: Replay, seed: int) -> Trace:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        ctx = replay.space()
        # a fixed name: HyperbandPruner assigns brackets by hashing it, so a random one varies runs
        study = optuna.create_study(study_name=f"replay-{replay.table.name}-{seed}", direction="maximize",
                                    sampler=sampler(seed),
                                    pruner=pruner(replay) if pruner else optuna.pruners.NopPruner())
        trace, seen = Trace(), set()
        steps = [s for s in replay.table.checkpoint_steps if s < replay.final_step]
        for _ in range(DRAWS_PER_COMPOSITION * len(replay.table.rows)):
            trial = study.ask()
            row = replay.row_of(ctx.space.sample(trial))
            if row is None or not row.trained:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            if row.key in seen:  # a repeat: its result is known, nothing is paid
                study.tell(trial, row.test_accuracy)
                continue
            seen.add(row.key)
            pruned_at = None
            for step in steps:
                trial.report(row.at(step)["test_accuracy"], step)
                if trial.should_prune():
                    pruned_at = step
                    break
            if pruned_at is not None:
                replay.stop_at(trace, row, pruned_at)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                replay.train(trace, row)
                study.tell(trial, row.test_accuracy)
            if trace.done or len(seen) == len(replay.trained):
                break
        return trace

    return run


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed)


def _hyperband(replay: Replay) -> optuna.pruners.BasePruner:
    first = min(replay.table.checkpoint_steps or [1])
    return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=replay.final_step, reduction_factor=3)


def _halving(replay: Replay) -> optuna.pruners.BasePruner:
    first = min(replay.table.checkpoint_steps or [1])
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3)


#: The strategies every replay runs (name -> factory of the table's replay).
STRATEGIES: dict[str, Callable[[Replay], Strategy]] = {
    "oracle": lambda r: oracle,
    "random": lambda r: random_search,
    "tpe": lambda r: optuna_search(_tpe),
    "tpe+hyperband": lambda r: optuna_search(_tpe, _hyperband),
    "tpe+halving": lambda r: optuna_search(_tpe, _halving),
    "thresholds": lambda r: screening_policy(replace(r.config.screening, policy="thresholds")),
    "default": lambda r: screening_policy(r.config.screening),
    "halving": lambda r: halving_search(replace(r.config.screening, policy="halving")),
}


def default_strategies(replay: Replay) -> dict[str, Strategy]:
    """Every strategy: the fixed ones, and the relative policy ranking by the combined score, by
    each scalar predictor the table holds (``parameter_count`` among them), by the learned score
    (``learned``: from the table's own trained rows as they arrive; ``learned-prior``: from every
    other committed table too, the table itself left out), and successive halving with the learned
    score at its rung 0."""
    out = {name: make(replay) for name, make in STRATEGIES.items()}
    screening = replace(replay.config.screening, policy="relative", prior=[])
    for score in [COMBINED, *replay.table.predictor_names()]:
        if score == COMBINED or predictor_direction(score) is not None:
            out[f"relative:{score}"] = screening_policy(replace(screening, score=score))
    out[f"relative:{LEARNED}"] = screening_policy(replace(screening, score=LEARNED))
    others = [name for name in list_tables() if name != replay.table.name]
    halving = replace(screening, policy="halving")
    out[f"halving:{LEARNED}"] = halving_search(replace(halving, score=LEARNED))
    if others:
        out[f"relative:{LEARNED}-prior"] = screening_policy(replace(screening, score=LEARNED, prior=others))
        out[f"halving:{LEARNED}-prior"] = halving_search(replace(halving, score=LEARNED, prior=others))
    return out


#: the replay of a pool's process, built once by its initializer
_POOL_RUNNER: Replay | None = None


def _start_pool_process(table: Table) -> None:
    global _POOL_RUNNER
    _POOL_RUNNER = Replay(table)


def _traces(name: str, seeds: Sequence[int], runner: Replay | None = None) -> list[Trace]:
    """``name``'s runs for ``seeds``, on ``runner`` (in a pool's process: the one it was started with)."""
    runner = runner or _POOL_RUNNER
    assert runner is not None, "a pool process runs _start_pool_process first"
    strategy = default_strategies(runner)[name]
    return [strategy(runner, seed) for seed in seeds]


def replay(table: Table, seeds: int = 100, strategies: Sequence[str] | None = None,
           processes: int = 1) -> dict[str, list[Trace]]:
    """Every (or the named) strategy's traces over ``seeds`` seeds (arrival orders, sampler seeds),
    in ``processes`` processes (each run is independent; the results do not depend on how many)."""
    runner = Replay(table)
    every = list(default_strategies(runner))
    names = list(strategies) if strategies else every
    unknown = [s for s in names if s not in every]
    if unknown:
        from explorer.errors import suggestion
        from explorer.normbench.table import TableError

        raise TableError(f"unknown strategy {unknown[0]!r}; {suggestion(unknown[0], every)}")
    tasks = [(name, list(range(1 if name == "oracle" else seeds))) for name in names]
    if processes <= 1:
        return {name: _traces(name, runs, runner) for name, runs in tasks}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks = [(name, runs[i::processes]) for name, runs in tasks for i in range(min(processes, len(runs)))]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_pool_process, initargs=(table,)) as pool:
        results = list(pool.map(_traces, [c[0] for c in chunks], [c[1] for c in chunks]))
    out: dict[str, list[tuple[int, Trace]]] = {name: [] for name in names}
    for (name, runs), traces in zip(chunks, results):
        out[name].extend(zip(runs, traces))
    return {name: [t for _, t in sorted(pairs, key=lambda p: p[0])] for name, pairs in out.items()}


def _quantile(values: Any, q: float, axis: int | None = None) -> Any:
    """A quantile that is one of the values (no interpolation between ±inf)."""
    return np.quantile(values, q, axis=axis, method="inverted_cdf")


def _interval(values: Sequence[float]) -> dict[str, float]:
    finite = np.asarray(values, dtype=float)
    return {"median": float(_quantile(finite, 0.5)), "low": float(_quantile(finite, 0.025)),
            "high": float(_quantile(finite, 0.975))}


def summarize(table: Table, traces: dict[str, list[Trace]], points: int = 40) -> dict[str, Any]:
    """Cost to reach the band (median and 95 % interval over seeds, seconds and steps), the share
    of seeds that reached it, and the best-so-far curve on a cost grid, per strategy."""
    total = sum(r.train_s for r in table.trained) + sum(r.screening_s for r in table.rows)
    low = min((r.screening_s for r in table.rows if r.screening_s > 0), default=1e-3)
    grid = np.geomspace(max(low, 1e-3), max(total, low * 10), points)
    out: dict[str, Any] = {"table": table.name, "band": table.band, "best": table.best.test_accuracy,
                           "sigma": table.noise_sigma, "total_seconds": total, "grid_seconds": grid.tolist(),
                           "strategies": {}}
    for name, runs in traces.items():
        curves = []
        for t in runs:
            seconds = np.asarray(t.seconds or [0.0])
            best = np.asarray(t.best or [-math.inf])
            index = np.searchsorted(seconds, grid, side="right") - 1
            curve = np.where(index >= 0, best[np.clip(index, 0, None)], -np.inf)
            curves.append(curve)
        stacked = np.asarray(curves)
        out["strategies"][name] = {
            "runs": len(runs),
            "reached": sum(math.isfinite(t.found[0]) for t in runs) / len(runs),
            "seconds_to_band": _interval([t.found[0] for t in runs]),
            "steps_to_band": _interval([t.found[1] for t in runs]),
            "curve": {"median": _quantile(stacked, 0.5, axis=0).tolist(),
                      "low": _quantile(stacked, 0.025, axis=0).tolist(),
                      "high": _quantile(stacked, 0.975, axis=0).tolist()},
        }
    return out


# --------------------------------------------------------------------------- several objectives
# With several objectives the question is how fast a search covers the table's Pareto front:
# the hypervolume of the compositions it trained, as a fraction of the whole table's, against cost.

#: A multi-objective run has covered the front when its hypervolume reaches this share of the table's.
FRONT_SHARE = 0.9


class FrontReplay:
    """The table's objectives as losses in [0, 1] (0 best, each objective's range over the trained
    compositions), and the hypervolume they dominate up to the reference point (1.1, …)."""

    def __init__(self, replay: Replay):
        from optuna._hypervolume import compute_hypervolume  # Optuna's own (WFG); no public name yet

        self.replay = replay
        self._hv = compute_hypervolume
        self.objectives = dict(replay.config.objectives)
        raw: dict[str, list[float]] = {}
        rows = []
        for row in replay.trained:
            values = [self._value(row, name) for name in self.objectives]
            if all(math.isfinite(v) for v in values):
                rows.append(row)
                for name, v in zip(self.objectives, values):
                    raw.setdefault(name, []).append(v)
        self.rows = rows
        self.points: dict[str, np.ndarray] = {}
        for i, row in enumerate(rows):
            point = []
            for name, words in self.objectives.items():
                low, high = min(raw[name]), max(raw[name])
                loss = Direction.of(words).badness(raw[name][i])
                best, worst = sorted(Direction.of(words).badness(v) for v in (low, high))
                point.append((loss - best) / (worst - best) if worst > best else 0.0)
            self.points[row.key] = np.asarray(point)
        self.reference = np.full(len(self.objectives), 1.1)
        self.total = self.volume(list(self.points.values()))

    @staticmethod
    def _value(row: Row, name: str) -> float:
        if name in ("test_accuracy", "mean_train_accuracy"):
            return getattr(row, name)
        return row.predictors.get(name, math.nan)

    def volume(self, points: list[np.ndarray]) -> float:
        return float(self._hv(np.asarray(points), self.reference)) if points else 0.0


@dataclass
class FrontTrace:
    """One multi-objective run: cumulative cost and the hypervolume share after each paid event."""

    seconds: list[float] = field(default_factory=list)
    share: list[float] = field(default_factory=list)
    covered: float = math.inf
    points: list[np.ndarray] = field(default_factory=list)

    def pay(self, front: FrontReplay, seconds: float, row: Row | None) -> None:
        if row is not None and row.key in front.points:
            self.points.append(front.points[row.key])
        share = front.volume(self.points) / front.total if front.total > 0 else 1.0
        self.seconds.append((self.seconds[-1] if self.seconds else 0.0) + seconds)
        self.share.append(share)
        if share >= FRONT_SHARE and not math.isfinite(self.covered):
            self.covered = self.seconds[-1]


def _front_random(front: FrontReplay, seed: int) -> FrontTrace:
    order = list(front.replay.trained)
    random.Random(seed).shuffle(order)
    trace = FrontTrace()
    for row in order:
        trace.pay(front, row.train_s, row)
        if math.isfinite(trace.covered):
            break
    return trace


def _front_policy(screening: ScreeningConfig) -> Callable[[FrontReplay, int], FrontTrace]:
    def run(front: FrontReplay, seed: int) -> FrontTrace:
        order = [r for r in front.replay.table.rows if r.invalid is None]
        random.Random(seed).shuffle(order)
        trace = FrontTrace()
        for row, train in zip(order, iter_screening_decisions(front.replay, screening, order)):
            trace.pay(front, row.screening_s + (row.train_s if train else 0.0), row if train else None)
            if math.isfinite(trace.covered):
                break
        return trace

    return run


def _front_halving(screening: ScreeningConfig) -> Callable[[FrontReplay, int], FrontTrace]:
    def run(front: FrontReplay, seed: int) -> FrontTrace:
        replay = front.replay
        order = [r for r in replay.table.rows if r.invalid is None]
        random.Random(seed).shuffle(order)
        trace = FrontTrace()
        for event in halving_steps(replay, screening, order):
            row, step = event.row, event.step
            paid = row.screening_s + (row.train_s if step >= replay.final_step
                                      else row.at(step)["train_s"] if step > 0 else 0.0)
            trace.pay(front, paid, row if step >= replay.final_step else None)
            if math.isfinite(trace.covered):
                break
        return trace

    return run


def _front_optuna(sampler: Callable[[int], optuna.samplers.BaseSampler]) -> Callable[[FrontReplay, int], FrontTrace]:
    def run(front: FrontReplay, seed: int) -> FrontTrace:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        replay = front.replay
        ctx = replay.space()
        directions = [Direction.of(w).optuna for w in front.objectives.values()]
        study = optuna.create_study(directions=directions, sampler=sampler(seed))
        trace, seen = FrontTrace(), set()
        for _ in range(DRAWS_PER_COMPOSITION * len(replay.table.rows)):
            trial = study.ask()
            row = replay.row_of(ctx.space.sample(trial))
            values = [FrontReplay._value(row, n) for n in front.objectives] if row is not None else []
            if row is None or not row.trained or not all(math.isfinite(v) for v in values):
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            if row.key not in seen:
                seen.add(row.key)
                trace.pay(front, row.train_s, row)
            study.tell(trial, values)
            if math.isfinite(trace.covered) or len(seen) == len(replay.trained):
                break
        return trace

    return run


def replay_fronts(table: Table, seeds: int = 100) -> dict[str, Any] | None:
    """With several objectives: each strategy's cost to cover :data:`FRONT_SHARE` of the table's
    hypervolume (median and 95 % interval over seeds); None for a single-objective table."""
    runner = Replay(table)
    if len(runner.config.objectives) < 2:
        return None
    front = FrontReplay(runner)
    strategies: dict[str, Callable[[FrontReplay, int], FrontTrace]] = {
        "random": _front_random,
        "tpe (multi-objective)": _front_optuna(lambda seed: optuna.samplers.TPESampler(seed=seed)),
        "nsga2": _front_optuna(lambda seed: optuna.samplers.NSGAIISampler(seed=seed)),
        "default": _front_policy(runner.config.screening),
        "halving": _front_halving(replace(runner.config.screening, policy="halving")),
    }
    out: dict[str, Any] = {"objectives": front.objectives, "share": FRONT_SHARE, "compositions": len(front.rows),
                           "strategies": {}}
    for name, strategy in strategies.items():
        traces = [strategy(front, seed) for seed in range(seeds)]
        out["strategies"][name] = {"runs": len(traces),
                                   "reached": sum(math.isfinite(t.covered) for t in traces) / len(traces),
                                   "seconds_to_front": _interval([t.covered for t in traces])}
    return out
