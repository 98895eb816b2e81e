"""Forward + backward time of every preset against torch's native modules, side by side.

Presets with a native twin (bn, ln, in, gn, rms) are timed against that twin, each followed by
the same activation; the others against native GroupNorm + ReLU. Presets that act on the layer's
weight or input (wn, sws, preln) are timed as the normalized conv layer against a plain conv +
GroupNorm + ReLU. A preset's candidates run back to back in each round and the ratio is the median over rounds of
the paired ratios, so load from elsewhere on the machine hits both sides alike.

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


def build(name: str, c: int, h: int, w: int) -> tuple[dict[str, nn.Module], dict]:
    """The candidates of one preset (ours, the reference, our generic path) and its table row."""
    spec = explorer.parse_spec(name)
    if needs_layer(spec):
        ours: nn.Module = explorer.create_conv(spec, c, c)
        reference, ref_name = conv_group_norm_relu(c, (c, h, w)), "conv+GroupNorm(32)+ReLU"
    else:
        ours = explorer.create_norm(spec, c)
        if name in NATIVE:
            reference = NATIVE[name](c, (c, h, w))
            ref_name = type(reference[0]).__name__
        else:
            reference, ref_name = group_norm_relu(c, (c, h, w)), "GroupNorm(32)+ReLU"
    row = {"preset": name, "spec": str(spec), "reference": ref_name, "twin": name in NATIVE,
           "native_kernel": bool(getattr(ours, "native", False))}
    candidates = {"ours": ours, "reference": reference}
    slow = generic(ours) if isinstance(ours, Normalizer) else None
    if slow is not None:
        candidates["generic"] = slow
    return {k: m.train() for k, m in candidates.items()}, row


def run(shape: tuple[int, int, int, int], rounds: int, reps: int, warmup: int,
        presets: list[str] | None = None) -> list[dict]:
    """Time each preset's candidates in alternation, ``rounds`` times; medians and paired ratios.

    Within a round the candidates of one preset run back to back (in an order that alternates
    between rounds), so load from elsewhere hits them alike; the ratio reported is the median over
    rounds of ours/reference within the round.
    """
    torch.manual_seed(0)
    n, c, h, w = shape
    x = torch.randn(shape, requires_grad=True)
    grad = torch.randn(shape)
    rows = []
    for name in presets or sorted(get_registry().presets):
        candidates, row = build(name, c, h, w)
        for module in candidates.values():
            time_fwd_bwd(module, x, grad, warmup)
        times: dict[str, list[float]] = {key: [] for key in candidates}
        keys = list(candidates)
        for r in range(rounds):
            for key in keys if r % 2 == 0 else reversed(keys):
                times[key].append(time_fwd_bwd(candidates[key], x, grad, reps))
        row["ours_ms"] = statistics.median(times["ours"]) * 1e3
        row["reference_ms"] = statistics.median(times["reference"]) * 1e3
        row["ratio"] = statistics.median(o / r for o, r in zip(times["ours"], times["reference"]))
        if "generic" in times:
            row["generic_ms"] = statistics.median(times["generic"]) * 1e3
        rows.append(row)
    return rows


def print_table(rows: list[dict], shape: tuple[int, ...], rounds: int, reps: int) -> None:
    print(f"forward+backward, shape {shape}, float32, {torch.get_num_threads()} threads, "
          f"median of {rounds} rounds x {reps} calls; torch {torch.__version__}")
    print(f"{'preset':8} {'ours ms':>9} {'ref ms':>9} {'ratio':>6}  {'generic ms':>10}  reference")
    print("ratio: median over rounds of ours / reference timed back to back; generic: our path without the native kernel")
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
    parser.add_argument("--rounds", type=int, default=15, help="rounds; the median over rounds is reported")
    parser.add_argument("--reps", type=int, default=3, help="calls per candidate per round")
    parser.add_argument("--presets", nargs="+", default=None, help="only these presets (default: all)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    rows = run(shape, args.rounds, args.reps, args.warmup, args.presets)
    if args.json:
        json.dump({"shape": shape, "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "rounds": args.rounds, "reps": args.reps, "rows": rows}, sys.stdout, indent=2)
        print()
    else:
        print_table(rows, shape, args.rounds, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
