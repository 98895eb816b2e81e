"""All predictors for one candidate vs one plain forward + backward of the same model and batch.

Side by side in one run, medians of several repeats, and the ratio (target: at most 1.2x).
Usage: python benchmarks/bench_predictors.py [--model cnn10] [--spec bn] [--batch-size 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from explorer.models import create_model
from explorer.scoring import measure


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_step(model, x, y) -> None:
    model.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="cnn10")
    parser.add_argument("--spec", default="bn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = create_model(args.model, args.spec).to(args.device)
    x = torch.randn(args.batch_size, 3, 32, 32, device=args.device)
    y = torch.randint(0, 10, (args.batch_size,), device=args.device)
    for _ in range(2):  # warm-up
        plain_step(model, x, y)
        measure(model, [(x, y)])
    plain, probed = [], []
    for _ in range(args.repeats):  # interleaved so both see the same machine state
        _sync(args.device)
        t = time.perf_counter()
        plain_step(model, x, y)
        _sync(args.device)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        measure(model, [(x, y)])  # ends with its single host copy
        _sync(args.device)
        probed.append(time.perf_counter() - t)
    p, q = statistics.median(plain), statistics.median(probed)
    print(f"{args.model} {args.spec} batch {args.batch_size} on {args.device}: plain fwd+bwd {p * 1e3:.1f} ms, "
          f"all predictors {q * 1e3:.1f} ms, ratio {q / p:.2f}x (medians of {args.repeats})")


if __name__ == "__main__":
    main()
