"""Compiled compositions (explorer.compile) on the study's own work, side by side with native kernels.

Three parts, each in one process, ratios of runs taken back to back (the machine may be shared):

* ``layers``: every preset and N sampled compositions (drawn from the whole space), forward +
  backward at (32, 64, 32, 32), eager and compiled, against native GroupNorm + ReLU (conv + GN +
  ReLU for specs that act on the weight or the layer input); the compile time apart;
* ``training``: ``cnn10(width_multiplier=0.25)`` trained for 300 steps with each spec under
  ``compile = auto``, eager and ``compile = true`` (compile time included), against the same run with native BN,
  each bracketed by two BN runs; plus the screening cost per candidate;
* ``study``: the quick study's wall time with ``compile = false`` (the path before compiling
  existed: nothing installed) and the default ``auto``, alternated.

On a GPU (``torch.cuda.is_available()``) ``layers`` and ``training`` run on it too, with the
training harness's GPU mode (bf16 autocast, channels_last).

    python benchmarks/bench_compile.py layers --threads 2 --json
    python benchmarks/bench_compile.py training --threads 2 --steps 300
    python benchmarks/bench_compile.py study --repeats 2

Inductor caches compiled code on disk; ``--cold`` (default) points it at a fresh directory so the
compile times are those of a first run on a machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _setup(args: argparse.Namespace) -> None:
    if args.cold and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="normx-inductor-")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def _devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _specs(sampled: int, seed: int, channels: int) -> list[tuple[str, str]]:
    """(label, spec) for every preset and ``sampled`` compositions that build at ``channels``."""
    import torch

    import explorer
    from explorer.search.space import sample_compositions

    def builds(spec: explorer.Spec) -> bool:
        try:
            explorer.create_conv(spec, channels, channels)(torch.randn(2, channels, 4, 4)).sum().backward()
            return True
        except explorer.NormxError:
            return False

    presets = [(name, name) for name in sorted(explorer.get_registry().presets)]
    samples = [(f"sample{i + 1}", str(s)) for i, s in enumerate(sample_compositions(sampled, seed, accept=builds))]
    return presets + samples


# --------------------------------------------------------------------------- layers


def bench_layers(args: argparse.Namespace) -> dict:
    import torch
    from torch import nn

    import explorer
    from explorer.compile import CompileController, compile_stats

    sys.path.insert(0, str(HERE))
    from bench_normalizers import conv_group_norm_relu, group_norm_relu, needs_layer

    n, c, h, w = args.shape
    out = {"part": "layers", "shape": list(args.shape), "threads": torch.get_num_threads(), "torch": torch.__version__,
           "rounds": args.rounds, "reps": args.reps, "devices": {}}
    for device in _devices():
        torch.manual_seed(0)
        cuda = device == "cuda"
        dtype_ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else None
        fmt = torch.channels_last if cuda else torch.contiguous_format
        x = torch.randn(args.shape, device=device).contiguous(memory_format=fmt).requires_grad_(True)
        grad = torch.randn(args.shape, device=device)
        rows = []

        def fwd_bwd(module: nn.Module, reps: int) -> float:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(reps):
                if dtype_ctx:
                    with dtype_ctx():
                        y = module(x)
                else:
                    y = module(x)
                y.float().backward(grad)
            if cuda:
                torch.cuda.synchronize()
            return (time.perf_counter() - start) / reps

        for label, text in _specs(args.sampled, args.seed, c):
            spec = explorer.parse_spec(text)
            layer = needs_layer(spec)
            ours = (explorer.create_conv(spec, c, c) if layer else explorer.create_norm(spec, c)).to(device).train()
            reference = (conv_group_norm_relu if layer else group_norm_relu)(c, (c, h, w)).to(device).train()
            if cuda:
                ours, reference = ours.to(memory_format=fmt), reference.to(memory_format=fmt)
            compiled = copy.deepcopy(ours)
            controller = CompileController(compiled, True, device=device)
            row = {"label": label, "spec": str(spec), "reference": "conv+GroupNorm+ReLU" if layer else "GroupNorm+ReLU",
                   "native_kernel": not controller.units}
            fwd_bwd(compiled, 1)  # a layer's first call runs eager
            keys = compile_stats()["compiled_keys"]
            start = time.perf_counter()
            fwd_bwd(compiled, 1)  # compiles forward and backward (nothing when native)
            row["compile_s"] = time.perf_counter() - start if compile_stats()["compiled_keys"] > keys else 0.0
            row["compiled"] = compile_stats()["compiled_keys"] > keys
            candidates = {"eager": ours, "compiled": compiled, "reference": reference}
            for module in candidates.values():
                fwd_bwd(module, args.warmup)
            times: dict[str, list[float]] = {k: [] for k in candidates}
            keys_order = list(candidates)
            for r in range(args.rounds):
                for key in keys_order if r % 2 == 0 else reversed(keys_order):
                    times[key].append(fwd_bwd(candidates[key], args.reps))
            for key in candidates:
                row[f"{key}_ms"] = statistics.median(times[key]) * 1e3
            row["eager_ratio"] = statistics.median(e / r for e, r in zip(times["eager"], times["reference"]))
            row["compiled_ratio"] = statistics.median(e / r for e, r in zip(times["compiled"], times["reference"]))
            controller.close()
            rows.append(row)
            print(  # progress on stderr; the table or the JSON on stdout
                f"[{device}] {label:10} eager {row['eager_ratio']:6.2f}x  compiled {row['compiled_ratio']:5.2f}x  "
                      f"compile {row['compile_s']:5.1f} s  {row['spec']}", file=sys.stderr, flush=True)
        out["devices"][device] = rows
    return out


def print_layers(out: dict) -> None:
    for device, rows in out["devices"].items():
        print(f"\n[{device}] forward+backward {tuple(out['shape'])}, {out['threads']} threads, median of "
              f"{out['rounds']} rounds x {out['reps']}; ratios against native GroupNorm+ReLU, paired per round")
        print(f"{'':10} {'eager':>7} {'compiled':>9} {'compile s':>9}  spec")
        for r in rows:
            print(f"{r['label']:10} {r['eager_ratio']:6.2f}x {r['compiled_ratio']:8.2f}x {r['compile_s']:9.1f}  {r['spec']}")
        over = [r["label"] for r in rows if r["compiled_ratio"] > 1.5]
        print("within 1.5x compiled: " + ("all" if not over else f"{len(rows) - len(over)}/{len(rows)}; over: " + ", ".join(over)))


# --------------------------------------------------------------------------- training


def _train_once(spec: str, compile_mode, steps: int, batch_size: int, device: str, data) -> tuple[float, str]:
    import torch

    from explorer.models import create_model
    from explorer.training import TrainConfig, train

    torch.manual_seed(0)
    model = create_model("cnn10(width_multiplier=0.25)", spec, num_classes=data.num_classes, in_channels=3)
    start = time.perf_counter()
    result = train(model, data, None, TrainConfig(steps=steps, batch_size=batch_size, device=device, compile=compile_mode))
    return time.perf_counter() - start, result.compile


def _screen_once(spec: str, compile_mode, device: str, data) -> float:
    from explorer.data import iter_batches
    from explorer.scoring import score

    start = time.perf_counter()
    score(spec, model="cnn10(width_multiplier=0.25)", inputs=list(iter_batches(data, 64, 2, seed=0)), device=device,
          num_classes=data.num_classes, compile=compile_mode)
    return time.perf_counter() - start


def bench_training(args: argparse.Namespace) -> dict:
    import torch

    from explorer.compile import compile_stats
    from explorer.data import load_dataset
    from explorer.search.space import sample_compositions

    sampled = str(sample_compositions(1, args.seed)[0]) if args.sampled_spec is None else args.sampled_spec
    specs = ["evo_b0", "bmlv", "frn", "gn(group_size=4)", sampled]
    out = {"part": "training", "model": "cnn10(width_multiplier=0.25)", "steps": args.steps,
           "batch_size": args.batch_size, "threads": torch.get_num_threads(), "torch": torch.__version__, "devices": {}}
    for device in _devices():
        data = load_dataset("synthetic", "train", limit=args.samples, seed=0, device=device)
        _train_once("bn", False, 5, args.batch_size, device, data)  # warm-up: allocator, thread pools
        rows = []
        bn_before, _ = _train_once("bn", False, args.steps, args.batch_size, device, data)
        for spec in specs:  # each spec's runs between two native-BN runs (shared with the neighbours)
            auto_s, decision = _train_once(spec, "auto", args.steps, args.batch_size, device, data)
            eager_s, _ = _train_once(spec, False, args.steps, args.batch_size, device, data)
            compiled_before = sum(compile_stats()["compile_s"])
            true_s, _ = _train_once(spec, True, args.steps, args.batch_size, device, data)  # compile time included
            compile_s = sum(compile_stats()["compile_s"]) - compiled_before
            bn_after, _ = _train_once("bn", False, args.steps, args.batch_size, device, data)
            bn = (bn_before + bn_after) / 2
            screen_eager = statistics.median(_screen_once(spec, False, device, data) for _ in range(args.screen_repeats))
            screen_auto = statistics.median(_screen_once(spec, "auto", device, data) for _ in range(args.screen_repeats))
            row = {"spec": spec, "bn_s": bn, "auto_s": auto_s, "eager_s": eager_s, "auto_ratio": auto_s / bn,
                   "eager_ratio": eager_s / bn, "true_s": true_s, "true_ratio": true_s / bn,
                   "true_compile_s": compile_s, "decision": decision, "screen_eager_s": screen_eager,
                   "screen_auto_s": screen_auto}
            rows.append(row)
            bn_before = bn_after
            print(f"[{device}] {spec}: auto {auto_s:.1f} s ({row['auto_ratio']:.2f}x BN), eager {eager_s:.1f} s "
                  f"({row['eager_ratio']:.2f}x), true {true_s:.1f} s ({row['true_ratio']:.2f}x, "
                  f"{compile_s:.1f} s of it compiling forwards), BN {bn:.1f} s; screening {screen_eager:.2f} / {screen_auto:.2f} s; "
                  f"{decision}", file=sys.stderr, flush=True)
        out["devices"][device] = rows
    return out


def print_training(out: dict) -> None:
    for device, rows in out["devices"].items():
        print(f"\n[{device}] {out['model']}, {out['steps']} steps of batch {out['batch_size']}, {out['threads']} threads; "
              "each spec between two native-BN runs (their mean is the reference)")
        print(f"{'spec':44} {'auto':>7} {'eager':>7} {'true':>7} {'BN s':>7} {'screen s':>9}  decision")
        for r in rows:
            print(f"{r['spec'][:44]:44} {r['auto_ratio']:6.2f}x {r['eager_ratio']:6.2f}x {r['true_ratio']:6.2f}x {r['bn_s']:7.1f} "
                  f"{r['screen_auto_s']:9.2f}  {r['decision']}")


# --------------------------------------------------------------------------- study


def bench_study(args: argparse.Namespace) -> dict:
    root = HERE.parent
    text = (root / "studies" / "quick.toml").read_text()
    runs: dict[str, list[float]] = {"false": [], "auto": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for mode in ("false", "auto") if r % 2 == 0 else ("auto", "false"):
                study = Path(tmp) / f"quick_{mode}_{r}.toml"
                body = text.replace('name = "quick"', f'name = "quick_{mode}_{r}"')
                body = body.replace("[screening]\n", f"[screening]\ncompile = {mode}\n".replace("= auto", '= "auto"'))
                body = body.replace("[training]\n", f"[training]\ncompile = {mode}\n".replace("= auto", '= "auto"'))
                study.write_text(body)
                env = dict(os.environ)
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "explorer", "study", "run", str(study), "--storage",
                                       f"sqlite:///{tmp}/q.db"], capture_output=True, text=True, env=env)
                if done.returncode:
                    raise SystemExit(done.stderr)
                runs[mode].append(time.perf_counter() - start)
                print(f"quick study, compile = {mode}: {runs[mode][-1]:.1f} s", file=sys.stderr, flush=True)
    return {"part": "study", "repeats": args.repeats, "wall_s": runs,
            "median_s": {k: statistics.median(v) for k, v in runs.items()},
            "ratio_auto_over_false": statistics.median(runs["auto"]) / statistics.median(runs["false"])}


def print_study(out: dict) -> None:
    m = out["median_s"]
    print(f"\nquick study, median of {out['repeats']} alternated runs: compile = false {m['false']:.1f} s, "
          f"auto {m['auto']:.1f} s (auto / false = {out['ratio_auto_over_false']:.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("layers", "training", "study"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True,
                        help="a fresh inductor cache directory (compile times of a first run; default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled compositions")
    parser.add_argument("--sampled", type=int, default=20, help="sampled compositions (layers)")
    parser.add_argument("--shape", type=int, nargs=4, default=(32, 64, 32, 32), metavar=("N", "C", "H", "W"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--sampled-spec", default=None, help="the training part's sampled composition")
    parser.add_argument("--repeats", type=int, default=2, help="study runs per mode")
    parser.add_argument("--screen-repeats", type=int, default=3, help="screenings per spec and mode (training)")
    args = parser.parse_args(argv)
    _setup(args)
    bench, show = {"layers": (bench_layers, print_layers), "training": (bench_training, print_training),
                   "study": (bench_study, print_study)}[args.part]
    out = bench(args)
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        show(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
