"""Forward + backward time of every preset against torch's native modules, side by side.

Presets with a native twin (bn, ln, in, gn, rms) are timed against that twin, each followed by
the same activation; the others against native GroupNorm + ReLU. Presets that act on the layer's
weight or input (wn, sws, preln) are timed as the normalized conv layer against a plain conv +
GroupNorm + ReLU. Every candidate runs in each round, round-robin, and the medians over rounds are
compared, so drift of the machine hits all of them alike.

    python benchmarks/bench_normalizers.py                     # (32, 64, 32, 32) float32 CPU
    python benchmarks/bench_normalizers.py --shape 16 64 16 16 --rounds 9 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

import explorer
from explorer.norm import Normalizer
from explorer.plugins import get_registry

#: preset -> factory of its native twin for C channels and the sample shape (C, H, W)
NATIVE: dict[str, Callable[[int, tuple[int, ...]], nn.Module]] = {
    "bn": lambda c, shape: nn.Sequential(nn.BatchNorm2d(c), nn.ReLU()),
    "ln": lambda c, shape: nn.Sequential(nn.GroupNorm(1, c), nn.ReLU()),
    "in": lambda c, shape: nn.Sequential(nn.GroupNorm(c, c), nn.ReLU()),
    "gn": lambda c, shape: nn.Sequential(nn.GroupNorm(32, c), nn.ReLU()),
    "rms": lambda c, shape: nn.Sequential(nn.RMSNorm(list(shape), eps=1e-5), nn.ReLU()),
}


def group_norm_relu(c: int, shape: tuple[int, ...]) -> nn.Module:
    return nn.Sequential(nn.GroupNorm(min(32, c), c), nn.ReLU())


def conv_group_norm_relu(c: int, shape: tuple[int, ...]) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.GroupNorm(min(32, c), c), nn.ReLU())


def needs_layer(spec: explorer.Spec) -> bool:
    """Whether the spec acts on the layer's weight or input, so it is timed as a conv layer."""
    return spec.slot("weight") is not None or any(s.get("at") == "pre" for s in spec.steps)


def generic(norm: Normalizer) -> Normalizer | None:
    """The same modules without the native kernel (None when the preset does not fuse)."""
    if not norm.native:
        return None
    return Normalizer(norm.center, norm.scale, norm.gate, norm.affine, norm.activation, norm.regularizer, fuse=False)


def time_fwd_bwd(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, reps: int) -> float:
    """Seconds per forward + backward (mean over ``reps`` calls)."""
    start = time.perf_counter()
    for _ in range(reps):
        module(x).backward(grad)
    return (time.perf_counter() - start) / reps


def run(shape: tuple[int, int, int, int], rounds: int, reps: int, warmup: int) -> list[dict]:
    torch.manual_seed(0)
    n, c, h, w = shape
    x = torch.randn(shape, requires_grad=True)
    grad = torch.randn(shape)
    registry = get_registry()
    rows: list[dict] = []
    candidates: dict[str, nn.Module] = {}
    for name in sorted(registry.presets):
        spec = explorer.parse_spec(name)
        if needs_layer(spec):
            ours: nn.Module = explorer.create_conv(spec, c, c)
            reference, ref_name = conv_group_norm_relu(c, (c, h, w)), "conv+GroupNorm(32)+ReLU"
        else:
            ours = explorer.create_norm(spec, c)
            if name in NATIVE:
                reference, ref_name = NATIVE[name](c, (c, h, w)), type(NATIVE[name](c, (c, h, w))[0]).__name__
            else:
                reference, ref_name = group_norm_relu(c, (c, h, w)), "GroupNorm(32)+ReLU"
        row = {"preset": name, "spec": str(spec), "reference": ref_name, "twin": name in NATIVE,
               "native_kernel": bool(getattr(ours, "native", False))}
        rows.append(row)
        candidates[f"{name}:ours"] = ours.train()
        candidates[f"{name}:reference"] = reference.train()
        slow = generic(ours) if isinstance(ours, Normalizer) else None
        if slow is not None:
            candidates[f"{name}:generic"] = slow.train()
    times: dict[str, list[float]] = {key: [] for key in candidates}
    for key, module in candidates.items():
        time_fwd_bwd(module, x, grad, warmup)
    for _ in range(rounds):
        for key, module in candidates.items():
            times[key].append(time_fwd_bwd(module, x, grad, reps))
    for row in rows:
        name = row["preset"]
        ours = statistics.median(times[f"{name}:ours"])
        ref = statistics.median(times[f"{name}:reference"])
        row["ours_ms"] = ours * 1e3
        row["reference_ms"] = ref * 1e3
        row["ratio"] = ours / ref
        if f"{name}:generic" in times:
            row["generic_ms"] = statistics.median(times[f"{name}:generic"]) * 1e3
    return rows


def print_table(rows: list[dict], shape: tuple[int, ...], rounds: int, reps: int) -> None:
    print(f"forward+backward, shape {shape}, float32, {torch.get_num_threads()} threads, "
          f"median of {rounds} rounds x {reps} calls; torch {torch.__version__}")
    print(f"{'preset':8} {'ours ms':>9} {'ref ms':>9} {'ratio':>6}  {'generic ms':>10}  reference")
    for r in rows:
        generic_ms = f"{r['generic_ms']:10.2f}" if "generic_ms" in r else f"{'-':>10}"
        flag = " (twin, limit 1.15)" if r["twin"] else ""
        print(f"{r['preset']:8} {r['ours_ms']:9.2f} {r['reference_ms']:9.2f} {r['ratio']:6.2f}  {generic_ms}  "
              f"{r['reference']}{flag}")
    slow = [r["preset"] for r in rows if r["twin"] and r["ratio"] > 1.15]
    print("twins within 1.15x of native: " + ("all" if not slow else "NO: " + ", ".join(slow)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(32, 64, 32, 32), metavar=("N", "C", "H", "W"))
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median over rounds is reported")
    parser.add_argument("--reps", type=int, default=5, help="calls per candidate per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    rows = run(shape, args.rounds, args.reps, args.warmup)
    if args.json:
        json.dump({"shape": shape, "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "rounds": args.rounds, "reps": args.reps, "rows": rows}, sys.stdout, indent=2)
        print()
    else:
        print_table(rows, shape, args.rounds, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
