"""Real searches side by side on one task, each run until it trains a composition inside the
NormBench band of the best: this project's policies as ``normx study run`` runs them against what
an Optuna user would run instead.

* ``default``: the study file's policy (relative screening by the combined score), TPE;
* ``halving``: ``policy = "halving"`` (rung 0 the screening, rungs at the table's checkpoints);
* ``halving:learned``: the same with ``score = "learned"`` (its fallback, the combined score,
  until 8 candidates trained);
* ``tpe``: Optuna's TPE training every composition it draws (``policy = "thresholds"``);
* ``random``: random search training every composition (``sampler = "random"``, thresholds);
* ``tpe+hyperband``: a plain Optuna study over the same space, TPE with ``HyperbandPruner``
  reading the test accuracy at the table's checkpoints as intermediate values (the project's
  training run, stopped through its checkpoint callback).

The task is a committed table's study file (``--table digits``: ``studies/normbench/digits.toml``,
the quick study's task at 300 steps); the band is the table's (its best minus 2σ of the seed
noise). Each strategy runs a fresh study in a temporary SQLite storage, one composition more at a
time, until a composition trained to the end lands in the band or ``--budget`` compositions are
spent. Its cost is what it paid until then, in trial order: training steps (the machine-independent
measure) and seconds (screening and training, as the trials recorded them; the machine was shared,
so seconds are noisier than steps). One arrival order per strategy and ``--seeds`` seeds: the
replay (``normx table replay``) gives the distribution; this checks that real runs agree with it.

Usage: python benchmarks/bench_search.py [--table digits] [--budget 30] [--seeds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch

from explorer.models import create_model
from explorer.normbench import load
from explorer.search import run_study
from explorer.search.context import prepare
from explorer.search.study_file import StudyConfig, parse_study_text
from explorer.training import TrainConfig, train


@dataclass
class Cost:
    """What a search paid until it trained a composition inside the band (inf: never, in budget)."""

    strategy: str
    seed: int
    steps: float = math.inf
    seconds: float = math.inf
    compositions: int = 0
    trained_to_end: int = 0
    found: str | None = None


def study_costs(config: StudyConfig, storage: str, threshold: float) -> Cost:
    """Walk a finished study's trials in order, adding up what each paid, until the first trained
    to the end at or above ``threshold``."""
    trials = optuna.load_study(study_name=config.name, storage=storage).get_trials(deepcopy=False)
    cost = Cost(config.name, config.seed, 0, 0.0)
    for t in sorted(trials, key=lambda t: t.number):
        attrs = t.user_attrs
        if "reused_from" in attrs or t.state == optuna.trial.TrialState.WAITING:
            continue
        cost.compositions += 1
        cost.seconds += float(attrs.get("screening_s") or 0.0)
        train_record = attrs.get("train")
        rungs = attrs.get("rungs") or []
        if train_record:
            cost.steps += int(train_record["steps"])
            cost.seconds += float(train_record["wall_time_s"])
            cost.trained_to_end += 1
            if float(train_record["test_accuracy"]) >= threshold:
                cost.found = attrs.get("spec")
                return cost
        elif rungs:
            last = rungs[-1]
            cost.steps += int(last["step"])
            cost.seconds += max(float(c["train_s"]) for c in last["checkpoints"].values())
    cost.steps = cost.seconds = math.inf
    return cost


def run_project(name: str, config: StudyConfig, threshold: float, budget: int, folder: Path) -> Cost:
    """A real study (what ``normx study run`` does), one more composition at a time until the band."""
    storage = f"sqlite:///{folder / (name.replace(':', '_') + f'-{config.seed}.db')}"
    for n in range(1, budget + 1):
        run_study(config, storage=storage, n_trials=n, on_trial_event=lambda event: None)
        cost = study_costs(config, storage, threshold)
        if cost.found is not None:
            break
    cost.strategy = name
    return cost


def run_hyperband(config: StudyConfig, threshold: float, budget: int, checkpoints: list[int]) -> Cost:
    """Optuna's TPE + HyperbandPruner over the study's space, trained by the project's harness."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ctx = prepare(config)
    steps = int(config.training.steps or 0)
    pruner = optuna.pruners.HyperbandPruner(min_resource=min(checkpoints), max_resource=steps, reduction_factor=3)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed),
                                pruner=pruner)
    cost = Cost("tpe+hyperband", config.seed, 0, 0.0)
    seen: dict[str, float] = {}
    for _ in range(3 * budget):
        trial = study.ask()
        candidate = ctx.space.sample(trial)
        if candidate.invalid or candidate.spec is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        key = ctx.equivalence_key(candidate.spec)
        if key in seen:  # a repeat costs nothing (as the study worker reuses it)
            study.tell(trial, seen[key])
            continue
        if cost.compositions >= budget:
            break
        cost.compositions += 1
        torch.manual_seed(config.seed)
        model = create_model(config.models[0], candidate.spec, num_classes=ctx.train_data.num_classes,
                             in_channels=int(ctx.train_data.x.shape[1]), registry=ctx.registry)
        train_config = TrainConfig(**{**asdict(config.training), "device": ctx.device, "seed": config.seed,
                                      "checkpoints": tuple(checkpoints)})

        def on_checkpoint(record: dict[str, float], snapshot: Any) -> bool:
            trial.report(float(record["test_accuracy"]), int(record["step"]))
            return not trial.should_prune()

        result = train(model, ctx.train_data, ctx.test_data, train_config, on_checkpoint=on_checkpoint)
        cost.steps += result.steps
        cost.seconds += result.wall_time_s
        if result.stopped_at is not None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        cost.trained_to_end += 1
        seen[key] = result.test_accuracy
        study.tell(trial, result.test_accuracy)
        if result.test_accuracy >= threshold:
            cost.found = str(candidate.spec)
            return cost
    cost.steps = cost.seconds = math.inf
    return cost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="digits")
    parser.add_argument("--budget", type=int, default=30, help="compositions per search at most (default 30)")
    parser.add_argument("--seeds", type=int, default=2, help="study seeds per strategy (default 2)")
    parser.add_argument("--strategies", default="default,halving,halving:learned,tpe,random,tpe+hyperband")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    table = load(args.table)
    threshold = table.best.test_accuracy - table.band
    base = parse_study_text(table.metadata["study_file"], f"{table.name}.toml")
    base.training.checkpoints = [s for s in table.checkpoint_steps if s < int(base.training.steps or 0)]
    variants = {
        "default": lambda c: c,
        "halving": lambda c: replace(c, screening=replace(c.screening, policy="halving")),
        "halving:learned": lambda c: replace(c, screening=replace(c.screening, policy="halving", score="learned")),
        "tpe": lambda c: replace(c, screening=replace(c.screening, policy="thresholds")),
        "random": lambda c: replace(c, sampler="random", screening=replace(c.screening, policy="thresholds")),
    }
    costs: list[Cost] = []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        for seed in range(args.seeds):
            for name in args.strategies.split(","):
                config = replace(base, seed=seed, name=f"{table.name}-{name}")
                if name == "tpe+hyperband":
                    cost = run_hyperband(config, threshold, args.budget, base.training.checkpoints)
                else:
                    cost = run_project(name, variants[name](config), threshold, args.budget, Path(tmp))
                costs.append(cost)
                print(f"seed {seed} {name:16s} steps {cost.steps:>7} seconds {cost.seconds:8.1f} "
                      f"compositions {cost.compositions:3d} trained to the end {cost.trained_to_end:3d} "
                      f"found {cost.found}", file=sys.stderr, flush=True)
    summary: dict[str, Any] = {"table": table.name, "threshold": threshold, "budget": args.budget,
                               "cpu": table.metadata.get("cpu"), "runs": [asdict(c) for c in costs],
                               "median": {}}
    for name in dict.fromkeys(c.strategy for c in costs):
        mine = [c for c in costs if c.strategy == name]
        summary["median"][name] = {"steps": statistics.median(c.steps for c in mine),
                                   "seconds": statistics.median(c.seconds for c in mine)}
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        reference = summary["median"].get("tpe+hyperband", {}).get("steps")
        print(f"{table.name}: cost to train a composition with test accuracy >= {threshold:.4f}, median of "
              f"{args.seeds} seed(s)")
        for name, m in summary["median"].items():
            ratio = m["steps"] / reference if reference and math.isfinite(reference) else math.nan
            print(f"  {name:16s} {m['steps']:>8} steps {m['seconds']:8.1f} s   x TPE+Hyperband (steps) {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
