"""Building a table: a study file's whole space trained once, as ordinary Optuna studies.

A build is the study of its file with what a table needs made explicit: every registered
predictor, every composition trained (no screening prunes), the learning curve measured at
``[training] checkpoints`` (default: a ninth, a third and all of the steps, the rungs of
successive halving with η = 3), and every distinct composition of the space listed and enqueued
at the start. Then the seed noise: the top ``noise_fraction`` by final test accuracy and as many
others drawn at random are trained again with seeds 1 … ``noise_seeds`` − 1, each seed a study
of its own over those compositions. Because every phase is a study, a build killed at any point
resumes where it stopped (``normx table build`` again), never retraining a finished composition,
and runs with ``--workers`` or on several machines like any study.
"""

from __future__ import annotations

import math
import platform
import random
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import torch

from explorer import __version__
from explorer.errors import NormxError
from explorer.normbench.table import TABLES_DIR, Row, Table, parse_checkpoint
from explorer.records import direction_of, predictor_value, scalar_predictors, to_float
from explorer.search.claiming import ENUMERATION_LIMIT, unevaluated
from explorer.search.context import StudyContext, file_error, prepare
from explorer.search.optuna_study import composition_key, create_or_load_study, holds_a_place, make_sampler
from explorer.search.orchestrate import run_study
from explorer.search.schema import Stage, TrialAttr
from explorer.search.storage import open_readonly, open_storage, resolve_storage
from explorer.search.study_file import SpaceConfig, StudyConfig
from explorer.spec import parse_spec

__all__ = ["BuildError", "build_table", "default_checkpoints", "export_table", "noise_study", "table_study"]


class BuildError(NormxError):
    """A study file that cannot be built into a table."""


def default_checkpoints(steps: int) -> list[int]:
    """A ninth, a third and all of the run: successive halving's rungs for η = 3."""
    return sorted({s for s in (steps // 9, steps // 3, steps) if s > 0})


def table_study(config: StudyConfig) -> StudyConfig:
    """The study a table is built from: the file's, with every predictor, nothing pruned at
    screening, checkpoints, and a random sampler (every composition is enqueued anyway)."""
    if "test_accuracy" not in config.objectives:
        raise file_error(config, ("objectives",), "a table needs test_accuracy among the objectives")
    steps = config.training.steps
    if not steps:
        raise file_error(config, ("training", "steps"), "a table trains every composition for a fixed number "
                                                        "of steps: give training.steps (not epochs)")
    screening = replace(config.screening, policy="thresholds", max_grad_explosion=None, max_cosine_similarity=None,
                        reject_variance_growth=[], prune_overflow=False, predictors=["all"])
    training = replace(config.training, checkpoints=list(config.training.checkpoints) or default_checkpoints(steps))
    return replace(config, sampler="random", screening=screening, training=training)


def noise_study(config: StudyConfig, seed: int, specs: list[str]) -> StudyConfig:
    """The study that trains ``specs`` again with training seed ``seed`` (nothing else differs)."""
    screening = replace(config.screening, predictors=["parameter_count"])
    space = SpaceConfig(presets=list(specs))
    return replace(config, name=f"{config.name}.seed{seed}", seed=seed, space=space, screening=screening,
                   n_trials=len(specs))


def _distinct(ctx: StudyContext) -> dict[str, str]:
    """equivalence key -> canonical spec of every composition of the space (presets first)."""
    out: dict[str, str] = {}
    for preset in ctx.config.space.presets:  # enqueued as they are written (no fixed steps added)
        spec = parse_spec(preset, ctx.registry)
        out.setdefault(ctx.equivalence_key(spec), str(spec))
    leaves = ctx.space.enumerate(ENUMERATION_LIMIT) if ctx.space.is_searchable() else []
    if leaves is None:
        raise file_error(ctx.config, ("space",), f"more than {ENUMERATION_LIMIT} compositions to list: a table "
                                                 "trains every one; narrow the slots or the parameters")
    for _, candidate in leaves:
        key = candidate.text if candidate.spec is None else ctx.equivalence_key(candidate.spec)
        out.setdefault(key, candidate.text)
    return out


def _enqueue_space(ctx: StudyContext, storage: str) -> int:
    """Create (or load) the build's study, enqueue every composition not evaluated or queued yet;
    the number of distinct compositions of the space (the build's budget)."""
    budget = len(_distinct(ctx))  # a space too large to list is refused before anything is stored
    target = resolve_storage(storage)
    study, _ = create_or_load_study(ctx.config, open_storage(target), make_sampler(ctx.config), ctx.space.choices())
    queued = [t.system_attrs.get("fixed_params") for t in study.get_trials(deepcopy=False)
              if t.state == optuna.trial.TrialState.WAITING]
    for params in unevaluated(ctx, study) or []:
        if params not in queued:
            study.enqueue_trial(params)
    return budget


def _trained_rows(trials: list[optuna.trial.FrozenTrial]) -> dict[str, optuna.trial.FrozenTrial]:
    """equivalence key -> the trial that evaluated it (repeats and interrupted trials left out)."""
    out: dict[str, optuna.trial.FrozenTrial] = {}
    for t in trials:
        if holds_a_place(t) and t.state != optuna.trial.TrialState.RUNNING and TrialAttr.REUSED_FROM not in t.user_attrs:
            key = composition_key(t.user_attrs)
            if key is not None:
                out.setdefault(key, t)
    return out


def _row(trial: optuna.trial.FrozenTrial) -> Row:
    attrs = trial.user_attrs
    key = composition_key(attrs) or ""
    row = Row(spec=str(attrs.get(TrialAttr.SPEC) or key), key=key, trial=trial.number)
    stored = attrs.get(TrialAttr.PREDICTORS)
    if not isinstance(stored, dict):
        row.invalid = str(attrs.get(TrialAttr.PRUNE_REASON) or attrs.get(TrialAttr.ERROR) or "not measured")
        return row
    row.predictors = {n: to_float(predictor_value(stored, n), math.nan) for n in scalar_predictors(stored)}
    row.directions = {n: str(direction_of(stored, n)) for n in row.predictors if direction_of(stored, n)}
    row.missing = {str(k): str(v) for k, v in (stored.get("missing") or {}).items()}
    growth = stored.get("variance_growth")
    row.growth_kind = str(growth.get("kind", "flat")) if isinstance(growth, dict) else "flat"
    row.overflow = bool(stored.get("overflow", False))
    row.screening_s = to_float(attrs.get(TrialAttr.SCREENING_S), 0.0)
    train = attrs.get(TrialAttr.TRAIN)
    if isinstance(train, dict):
        row.checkpoints = [parse_checkpoint(c) for c in train.get("checkpoints") or [] if isinstance(c, dict)]
        row.test_accuracy = to_float(train.get("test_accuracy"), math.nan)
        row.mean_train_accuracy = to_float(train.get("mean_train_accuracy"), math.nan)
        row.train_s = row.checkpoints[-1]["train_s"] if row.checkpoints else to_float(train.get("wall_time_s"), 0.0)
        row.steps = int(train.get("steps") or 0)
        row.diverged = bool(train.get("diverged"))
        row.seeds = {0: row.test_accuracy}
    elif attrs.get(TrialAttr.STAGE) == Stage.FAILED:
        row.invalid = str(attrs.get(TrialAttr.ERROR) or "failed")
    return row


def _load_trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=open_readonly(storage)).get_trials(deepcopy=False)
    except KeyError:
        return []


def noise_sample(rows: list[Row], fraction: float, seed: int) -> list[Row]:
    """The top ``fraction`` of the trained rows by final test accuracy, and as many others at random."""
    trained = sorted((r for r in rows if r.trained), key=lambda r: (-r.test_accuracy, r.trial))
    n = max(1, math.ceil(fraction * len(trained))) if trained else 0
    top, rest = trained[:n], trained[n:]
    drawn = random.Random(seed).sample(rest, min(n, len(rest)))
    return sorted(top + drawn, key=lambda r: r.trial)


def _machine() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _without_start_up(rows: dict[str, Row], trials: dict[str, optuna.trial.FrozenTrial]) -> int:
    """Replace the screening seconds of each worker process's first composition, which include the
    process's one-time start-up (torch's lazy initialisation, the predictors' imports: seconds
    where a screening takes a fraction of one), by the median of that worker's others. Returns how
    many were replaced."""
    by_worker: dict[str, list[str]] = {}
    for key, t in trials.items():
        if t.datetime_start is not None and key in rows and rows[key].invalid is None:
            by_worker.setdefault(str(t.user_attrs.get(TrialAttr.WORKER)), []).append(key)
    replaced = 0
    for keys in by_worker.values():
        if len(keys) < 3:
            continue
        keys.sort(key=lambda k: trials[k].datetime_start)
        rows[keys[0]].screening_s = statistics.median(rows[k].screening_s for k in keys[1:])
        replaced += 1
    return replaced


def export_table(config: StudyConfig, storage: str, noise_seeds: int, noise_fraction: float,
                 command: str = "") -> Table:
    """The table of a finished build: one row per distinct composition, the noise runs merged in."""
    trials = _trained_rows(_load_trials(storage, config.name))
    rows = {key: _row(t) for key, t in trials.items()}
    replaced = _without_start_up(rows, trials)
    chosen = noise_sample(list(rows.values()), noise_fraction, config.seed)
    for seed in range(1, noise_seeds):
        for key, t in _trained_rows(_load_trials(storage, f"{config.name}.seed{seed}")).items():
            train = t.user_attrs.get(TrialAttr.TRAIN)
            if key in rows and isinstance(train, dict):
                rows[key].seeds[seed] = to_float(train.get("test_accuracy"), math.nan)
    table = Table(config.name, {}, sorted(rows.values(), key=lambda r: r.trial))
    trained = table.trained
    table.metadata = {
        "study_file": config.text, "models": list(config.models), "data": config.data.name,
        "train_limit": config.data.train_limit, "test_limit": config.data.test_limit,
        "objectives": dict(config.objectives), "steps": config.training.steps,
        "batch_size": config.training.batch_size, "checkpoints": list(config.training.checkpoints),
        "screening": {"batch_size": config.screening.batch_size, "batches": config.screening.batches,
                      "seeds": config.screening.seeds},
        "noise": {"seeds": noise_seeds, "fraction": noise_fraction, "compositions": len(chosen)},
        "compositions": len(table.rows), "trained": len(trained),
        "sigma": table.noise_sigma, "sigma_random": table.noise_sigma_random, "band": table.band,
        "band_fraction": table.band_fraction,
        "best": table.best.spec if trained else None,
        "cpu_hours": (sum(r.screening_s + r.train_s for r in table.rows)
                      + sum(r.train_s * (len(r.seeds) - 1) for r in table.rows)) / 3600,
        "start_up_screenings_replaced": replaced,
        "torch": torch.__version__, "cpu": _machine(), "normx": __version__, "commit": _commit(),
        "built": time.strftime("%Y-%m-%d", time.gmtime()), "command": command,
    }
    return table


def build_table(path: str | Path, storage: str | None = None, workers: int = 1, noise_seeds: int = 3,
                noise_fraction: float = 0.1, out: str | Path | None = None,
                events: Any = None, command: str = "") -> tuple[Table, Path]:
    """Build (or resume) the table of a study file and write it; (table, the file written).

    ``events(name, budget)`` returns the handler of one phase's trial events (a progress display
    as a context manager, or None for plain lines)."""
    from explorer.search import default_storage
    from explorer.search.study_file import load_study_file

    if noise_seeds < 1:
        raise BuildError(f"--noise-seeds must be at least 1, got {noise_seeds}")
    if not 0 < noise_fraction <= 0.5:
        raise BuildError(f"--noise-fraction must be in (0, 0.5], got {noise_fraction}")
    config = table_study(load_study_file(path))
    storage = storage or config.storage or default_storage()
    ctx = prepare(config)
    budget = _enqueue_space(ctx, storage)
    _run_phase(config, storage, budget, workers, ctx, events)
    rows = [_row(t) for t in _trained_rows(_load_trials(storage, config.name)).values()]
    specs = [r.spec for r in noise_sample(rows, noise_fraction, config.seed)]
    for seed in range(1, noise_seeds):
        phase = noise_study(config, seed, specs)
        _run_phase(phase, storage, len(specs), workers, None, events)
    table = export_table(config, storage, noise_seeds, noise_fraction, command)
    target = Path(out) if out else TABLES_DIR / f"{config.name}.jsonl"
    return table, table.save(target)


def _run_phase(config: StudyConfig, storage: str, budget: int, workers: int, ctx: StudyContext | None,
               events: Any) -> None:
    if events is None:
        run_study(config, storage=storage, n_trials=budget, workers=workers, ctx=ctx)
        return
    with events(storage, config.name, budget) as handler:
        run_study(config, storage=storage, n_trials=budget, workers=workers, on_trial_event=handler, ctx=ctx)
