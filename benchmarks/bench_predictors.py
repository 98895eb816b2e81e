"""What each predictor costs, side by side: one plain forward + backward of the model, the shared
predictor pass alone, then the shared pass plus each registered predictor, the default set and
every predictor together.

Every repeat runs every configuration once, in a rotated order, so that all of them see the same
machine state (noisy shared machines included); the figures are medians over the repeats. On the
CPU the clock is this process's CPU time with one torch thread by default (``--clock cpu``):
on a machine shared with other jobs, wall time mostly measures the others. A
predictor's *extra* is its median minus the shared pass's median (the pass records the per-layer
curves whatever is asked; ``parameter_count``, which reads the model, stands for "nothing more").

Usage: python benchmarks/bench_predictors.py [--model cnn10] [--spec bn] [--batch-size 64]
       [--batches 1] [--repeats 7] [--device cpu] [--clock cpu|wall] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from explorer.models import create_model
from explorer.plugins import get_registry
from explorer.records import DEFAULT_PREDICTORS
from explorer.scoring import measure, predictor_order

BASE = "parameter_count"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_step(model, batches) -> None:
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)


def configurations(model, batches) -> dict[str, Callable[[], object]]:
    registry = get_registry()
    configs: dict[str, Callable[[], object]] = {
        "plain forward + backward": lambda: plain_step(model, batches),
        "shared pass": lambda: measure(model, batches, [registry.predictors[BASE]]),
    }
    for name in predictor_order(registry.predictors):
        if name != BASE:
            entries = [registry.predictors[BASE], registry.predictors[name]]
            configs[name] = lambda entries=entries: measure(model, batches, entries)
    configs["default set"] = lambda: measure(model, batches, "default")
    configs["all predictors"] = lambda: measure(model, batches, "all")
    return configs


def run(args: argparse.Namespace) -> dict:
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, args.spec).to(args.device)
    batches = [(torch.randn(args.batch_size, 3, 32, 32, device=args.device),
                torch.randint(0, 10, (args.batch_size,), device=args.device)) for _ in range(args.batches)]
    configs = configurations(model, batches)
    names = list(configs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: one of each
        configs[name]()
    for k in range(args.repeats):
        for name in names[k % len(names):] + names[:k % len(names)]:  # rotated: no configuration always first
            _sync(args.device)
            start = clock()
            configs[name]()
            _sync(args.device)
            times[name].append(clock() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    plain, shared = medians["plain forward + backward"], medians["shared pass"]
    registry = get_registry()
    rows = []
    for name in names:
        entry = registry.predictors.get(name)
        rows.append({
            "name": name, "needs": list(entry.needs) if entry else [],
            "default": name in DEFAULT_PREDICTORS,
            "median_ms": medians[name] * 1e3,
            "extra_ms": (medians[name] - shared) * 1e3 if entry else None,
            "vs_plain": medians[name] / plain,
        })
    return {"model": args.model, "spec": args.spec, "batch_size": args.batch_size, "batches": args.batches,
            "device": args.device, "repeats": args.repeats, "threads": torch.get_num_threads(), "clock": args.clock,
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn10")
    parser.add_argument("--spec", default="bn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None,
                        help="cpu: process CPU time (default on the CPU), wall: elapsed time (default on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 1 with --clock cpu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.clock is None:
        args.clock = "wall" if args.device.startswith("cuda") else "cpu"
    if args.threads is None and args.clock == "cpu":
        args.threads = 1
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['model']} {result['spec']}, {result['batches']} batch(es) of {result['batch_size']} on "
          f"{result['device']} ({result['threads']} threads, {result['clock']} time), medians of {result['repeats']}:")
    print(f"{'':26} {'needs':26} {'median ms':>10} {'extra ms':>9} {'x plain':>8}")
    for r in result["rows"]:
        extra = f"{r['extra_ms']:+9.1f}" if r["extra_ms"] is not None else f"{'':9}"
        name = r["name"] + ("*" if r["default"] else "")
        print(f"{name:26} {', '.join(r['needs']) or '-':26} {r['median_ms']:10.1f} {extra} {r['vs_plain']:8.2f}")
    print("* in the default set; extra = over the shared pass (the per-layer curves, computed whatever is asked)")


if __name__ == "__main__":
    main()
