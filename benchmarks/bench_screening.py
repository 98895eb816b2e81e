"""Does screening at initialization pay? "Train every candidate" against "screen, then train".

One fixed candidate set on the real ``digits`` data: every preset that builds on the model, plus
``--sampled`` compositions drawn from a search space with a fixed seed. Both arms see the
candidates in the same order, with the same training run per trained candidate (same steps,
same seed), interleaved candidate by candidate so that both see the same machine load:

* **train all**: train every candidate;
* **screen, then train**: score every candidate at initialization and train it only when the
  study's default screening lets it through (NaN/inf and exponential variance growth pruned,
  then the relative policy: warm-up, top fraction by the combined cosine + explosion rank, or
  non-dominated) -- the same functions the study worker calls.

Reported per arm: training time, screening time, trained candidates, best test accuracy, regret
(best of all minus best found) and time to reach within 1 point of the best of all. The
"replayed" rows apply other scores (or a random pick of the same number of candidates) to the
training results of the "train all" arm: the same runs with the same seeds, not re-timed.

Usage: python benchmarks/bench_screening.py [--quick] [--json] [--steps N] [--sampled N]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import optuna
import torch

from explorer.data import Dataset, iter_batches, load_dataset
from explorer.errors import NormxError
from explorer.models import create_model
from explorer.plugins import get_registry
from explorer.scoring import score
from explorer.search.schema import PREDICTOR_KEYS
from explorer.search.screening import RelativePolicy, candidate_values, relative_decision
from explorer.search.space import SearchSpace
from explorer.search.study_file import ScreeningConfig, parse_study_text
from explorer.search.policy import screening_verdict
from explorer.spec import parse_spec
from explorer.training import TrainConfig, train

#: The space the sampled candidates come from (the quick study's, widened).
SPACE = """
name = "bench-screening"
models = ["{model}"]
[objectives]
test_accuracy = "maximize"
[space]
fixed = "affine"
[space.slots]
center = ["none", "mean"]
scale = ["std", "root_mean_square"]
bound = ["none", "tanh_scale"]
activation = ["relu", "silu"]
[space.params]
axes = ["bx", "cx", "gx", "x", "b", "c"]
group_size = [2, 4, 8]
"""
WITHIN = 0.01  # "within 1 point" of the best test accuracy


@dataclass
class Arm:
    name: str
    trained: list[int] = field(default_factory=list)
    train_s: float = 0.0
    screen_s: float = 0.0
    #: (cumulative seconds, best test accuracy so far) after each trained candidate
    trace: list[tuple[float, float]] = field(default_factory=list)

    def add(self, accuracy: float) -> None:
        best = max(accuracy, self.trace[-1][1] if self.trace else -math.inf)
        self.trace.append((self.train_s + self.screen_s, best))

    def summary(self, best_all: float) -> dict[str, Any]:
        best = self.trace[-1][1] if self.trace else math.nan
        reach = next((t for t, b in self.trace if b >= best_all - WITHIN), None)
        return {"arm": self.name, "trained": len(self.trained), "train_s": round(self.train_s, 2),
                "screen_s": round(self.screen_s, 2), "best_test_accuracy": best,
                "regret_points": round(100 * (best_all - best), 2), "time_to_within_1pt_s":
                None if reach is None else round(reach, 2)}


def candidate_set(model: str, sampled: int, seed: int, presets: list[str] | None, num_classes: int,
                  in_channels: int) -> list[str]:
    """Every preset (or the given ones) plus ``sampled`` distinct compositions, all buildable on the model."""
    registry = get_registry()
    config = parse_study_text(SPACE.format(model=model), "bench-screening")
    space = SearchSpace(config, registry)
    space.check()
    names = presets if presets is not None else sorted(registry.presets)
    out: list[str] = []

    def add(spec: str) -> bool:
        try:
            canonical = str(parse_spec(spec, registry))
            create_model(model, canonical, num_classes=num_classes, in_channels=in_channels, registry=registry)
        except NormxError:
            return False
        if canonical in out:
            return False
        out.append(canonical)
        return True

    for name in names:
        add(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    drawn = 0
    for _ in range(50 * max(1, sampled)):
        if drawn == sampled:
            break
        trial = study.ask()
        candidate = space.sample(trial)
        study.tell(trial, 0.0)
        if candidate.spec is not None and add(str(candidate.spec)):
            drawn += 1
    random.Random(seed).shuffle(out)  # presets mixed with the sampled ones, not in alphabetical order first
    return out


def _train_one(model: str, spec: str, data: tuple[Dataset, Dataset], config: TrainConfig) -> tuple[float, float]:
    torch.manual_seed(config.seed)
    built = create_model(model, spec, num_classes=data[0].num_classes, in_channels=int(data[0].x.shape[1]))
    start = time.perf_counter()
    result = train(built, data[0], data[1], config)
    seconds = time.perf_counter() - start
    accuracy = 0.0 if result.diverged else float(result.test_accuracy)
    return seconds, accuracy


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    train_data = load_dataset("digits", "train", limit=args.train_limit, seed=0)
    test_data = load_dataset("digits", "test")
    presets = args.presets.split(",") if args.presets else None
    specs = candidate_set(args.model, args.sampled, args.seed, presets, train_data.num_classes,
                          int(train_data.x.shape[1]))
    screening = ScreeningConfig()
    policy = RelativePolicy.of(screening)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, base_lr=args.base_lr, augment=False,
                         device="cpu", seed=args.seed)
    batches = list(iter_batches(train_data, screening.batch_size, screening.batches, seed=args.seed))
    everything, screened = Arm("train all"), Arm("screen, then train")
    rows: list[dict[str, Any]] = []
    pool: list[dict[str, float | None]] = []
    for i, spec in enumerate(specs):
        seconds, accuracy = _train_one(args.model, spec, (train_data, test_data), config)
        everything.trained.append(i)
        everything.train_s += seconds
        everything.add(accuracy)
        start = time.perf_counter()
        result = score(spec, model=args.model, inputs=batches, seeds=screening.seeds, device="cpu",
                       num_classes=train_data.num_classes)
        predictors = {k: result[k] for k in PREDICTOR_KEYS if k in result}
        screened.screen_s += time.perf_counter() - start
        values = candidate_values(predictors)
        reason = screening_verdict(screening, {args.model: predictors})
        if reason is None:
            decision = relative_decision(policy, values, pool, len(screened.trained))
            reason = decision.prune_reason
        pool.append(values)
        again = None
        if reason is None:
            seconds_b, again = _train_one(args.model, spec, (train_data, test_data), config)
            screened.trained.append(i)
            screened.train_s += seconds_b
            screened.add(again)
        rows.append({"spec": spec, "test_accuracy": accuracy, "train_s": round(seconds, 2),
                     "trained_when_screened": reason is None, "reason": reason,
                     "retrained_accuracy": again, **{k: values.get(k) for k in values}})
        mark = "train" if reason is None else "prune"
        print(f"[{i + 1}/{len(specs)}] {accuracy:6.1%} {seconds:6.1f}s  {mark}  {spec}", file=sys.stderr, flush=True)
    best_all = max(r["test_accuracy"] for r in rows)
    arms = [everything.summary(best_all), screened.summary(best_all)]
    return {"model": args.model, "steps": args.steps, "batch_size": args.batch_size, "base_lr": args.base_lr,
            "candidates": len(specs), "best_of_all": best_all, "policy": asdict(policy), "arms": arms,
            "training_time_ratio": round(everything.train_s / screened.train_s, 2) if screened.train_s else None,
            "replayed": replay(rows, policy, best_all, args.seed, args.orders), "rows": rows,
            "deterministic": all(r["retrained_accuracy"] in (None, r["test_accuracy"]) for r in rows),
            "torch_threads": torch.get_num_threads()}


#: (label, policy changes) replayed besides the default
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("combined (default)", {}),
    ("combined, no non-dominated", {"keep_nondominated": False}),
    ("combined, top 20 %, no non-dominated", {"keep_nondominated": False, "top_fraction": 0.2}),
    ("cosine_similarity", {"score": "cosine_similarity", "keep_nondominated": False}),
    ("grad_explosion_exponent", {"score": "grad_explosion_exponent", "keep_nondominated": False}),
    ("stable_rank", {"score": "stable_rank", "direction": "maximize", "keep_nondominated": False}),
]


def _chosen(rows: list[dict[str, Any]], order: list[int], policy: RelativePolicy) -> list[int]:
    """The candidates ``policy`` trains when they arrive in ``order`` (threshold prunes kept as they were)."""
    pool: list[dict[str, float | None]] = []
    chosen: list[int] = []
    for i in order:
        r = rows[i]
        values = {k: r.get(k) for k in ("cosine_similarity", "grad_explosion_exponent", "stable_rank")}
        hard = r["reason"] is not None and not r["reason"].startswith("rank ")  # NaN, exponential growth
        if not hard and relative_decision(policy, values, pool, len(chosen)).train:
            chosen.append(i)
        pool.append(values)
    return chosen


def replay(rows: list[dict[str, Any]], default: RelativePolicy, best_all: float, seed: int,
           orders: int) -> list[dict[str, Any]]:
    """Each variant over ``orders`` random arrival orders of the same runs, against a random pick
    of as many candidates in the same order."""
    accuracies = [r["test_accuracy"] for r in rows]
    seconds = [r["train_s"] for r in rows]
    total = sum(seconds)
    rng = random.Random(seed)
    permutations = [rng.sample(range(len(rows)), len(rows)) for _ in range(orders)]
    out = []
    for label, changes in VARIANTS:
        policy = replace(default, **changes)
        kept, regrets, shares, random_regrets = [], [], [], []
        for order in permutations:
            chosen = _chosen(rows, order, policy)
            kept.append(len(chosen))
            regrets.append(100 * (best_all - max(accuracies[i] for i in chosen)))
            shares.append(sum(seconds[i] for i in chosen) / total)
            pick = rng.sample(range(len(rows)), len(chosen))
            random_regrets.append(100 * (best_all - max(accuracies[i] for i in pick)))
        out.append({
            "policy": label, "orders": orders, "trained_median": statistics.median(kept),
            "training_time_ratio_median": round(1 / statistics.median(shares), 2),
            "regret_points_mean": round(statistics.mean(regrets), 2),
            "within_1pt_share": round(sum(r <= 100 * WITHIN for r in regrets) / orders, 3),
            "random_same_size_regret_mean": round(statistics.mean(random_regrets), 2),
            "random_same_size_within_1pt_share": round(sum(r <= 100 * WITHIN for r in random_regrets) / orders, 3),
        })
    return out


def print_table(result: dict[str, Any]) -> None:
    print(f"digits, {result['model']}, {result['candidates']} candidates, {result['steps']} steps of batch "
          f"{result['batch_size']} per trained candidate; best of all {result['best_of_all']:.1%}")
    print(f"{'arm':<20} {'trained':>7} {'train s':>8} {'screen s':>8} {'best':>7} {'regret':>7} {'to 1pt s':>8}")
    for a in result["arms"]:
        reach = "-" if a["time_to_within_1pt_s"] is None else f"{a['time_to_within_1pt_s']:.0f}"
        print(f"{a['arm']:<20} {a['trained']:>7} {a['train_s']:>8.0f} {a['screen_s']:>8.0f} "
              f"{a['best_test_accuracy']:>7.1%} {a['regret_points']:>7.1f} {reach:>8}")
    print(f"training time ratio (all / screened): {result['training_time_ratio']}x; "
          f"retrained runs identical: {result['deterministic']}")
    orders = result["replayed"][0]["orders"] if result["replayed"] else 0
    print(f"replayed on the same runs over {orders} random arrival orders (medians; means of regret):")
    print(f"  {'policy':<38} {'trained':>7} {'time ratio':>10} {'regret':>7} {'<=1pt':>6} | "
          f"{'random same size: regret':>24} {'<=1pt':>6}")
    for r in result["replayed"]:
        print(f"  {r['policy']:<38} {r['trained_median']:>7g} {r['training_time_ratio_median']:>9.2f}x "
              f"{r['regret_points_mean']:>7.2f} {r['within_1pt_share']:>6.0%} | "
              f"{r['random_same_size_regret_mean']:>24.2f} {r['random_same_size_within_1pt_share']:>6.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn10(width_multiplier=0.125)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per trained candidate")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--base-lr", type=float, default=0.4, help="lr = base_lr * batch_size / 256")
    parser.add_argument("--sampled", type=int, default=None, help="sampled compositions besides the presets")
    parser.add_argument("--presets", default=None, help="comma-separated presets (default: every preset)")
    parser.add_argument("--train-limit", type=int, default=None, help="digits training images (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--orders", type=int, default=200, help="random arrival orders of the replay")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: small convs gain nothing from more, and a shared machine loses)")
    parser.add_argument("--quick", action="store_true", help="a small smoke run: 4 presets, 4 sampled, 5 steps")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.steps = args.steps or 5
        args.sampled = 4 if args.sampled is None else args.sampled
        args.presets = args.presets or "bn,ln,in,none"
        args.train_limit = args.train_limit or 256
    args.steps = args.steps or 60
    args.sampled = 24 if args.sampled is None else args.sampled
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(args.threads)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
