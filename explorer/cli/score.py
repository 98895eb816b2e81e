"""``normx score``, ``normx models`` and ``normx reproduce``: predictors at initialization from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

#: The measurements of explorer.claims (kept here so that 'normx --help' imports no torch).
CLAIM_NAMES = ("claim1", "claim2", "claim3", "claim4", "fig6b", "fig9")
CLAIM_NAMES += ("normfree",)  # issue 12: can DyT/Derf/SeeDNorm replace BN/GN (explorer.claims.normfree)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="measure the predictors at initialization of one normalizer on one model")
    p.add_argument("spec", help="a preset or composition, e.g. bn or 'gn(group_size=4) | tlu'")
    p.add_argument("--model", default="cnn10", help="model in call form (see 'normx models'); default cnn10")
    p.add_argument("--data", default="synthetic",
                   help="gaussian, synthetic, cifar10, cifar100 or folder:PATH; default synthetic")
    p.add_argument("--data-dir", default=None, help="where CIFAR files are (default $NORMX_DATA or ~/.cache/normx/data)")
    p.add_argument("--download", action="store_true", help="download CIFAR if it is missing")
    p.add_argument("--batch-size", type=int, default=64, help="samples per batch (default 64)")
    p.add_argument("--batches", type=int, default=2, help="batches to average over (default 2)")
    p.add_argument("--seeds", type=int, default=1, help="model initializations to average over (default 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_score)

    p = sub.add_parser("models", help="list the model architectures with their parameters")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_models)

    p = sub.add_parser("reproduce", help="run the paper's measurements for one claim; write JSON and CSV")
    p.add_argument("claim", choices=CLAIM_NAMES, help="which claim or figure")
    p.add_argument("--out", default="runs/reproduce", help="output directory (default runs/reproduce)")
    p.add_argument("--small", action="store_true", help="small models and batches: a quick CPU run")
    p.add_argument("--data", default=None,
                   help="dataset for claims on natural images (default cifar100 at paper scale, synthetic with --small)")
    p.add_argument("--data-dir", default=None, help="where CIFAR files are")
    p.add_argument("--download", action="store_true", help="download CIFAR if it is missing")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.set_defaults(func=run_reproduce)


def _check_counts(args: argparse.Namespace) -> None:
    from explorer.errors import NormxError

    for name in ("batch_size", "batches", "seeds"):
        if getattr(args, name) < 1:
            raise NormxError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise NormxError(f"--device must be cpu or cuda, got {args.device!r}")


def run_score(args: argparse.Namespace) -> int:
    from explorer.models import resolve_model
    from explorer.spec import parse_spec

    _check_counts(args)
    spec = parse_spec(args.spec)
    resolve_model(args.model)  # unknown model or parameter: fail before loading anything
    from explorer.scoring import ScoreError, check_batch_size

    check_batch_size(spec, args.batch_size)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ScoreError("--device cuda was asked for but torch sees no CUDA device")
    from explorer.data import iter_batches, load_dataset
    from explorer.scoring import json_safe, score

    limit = args.batch_size * args.batches if args.data in ("gaussian", "synthetic") else None
    data = load_dataset(args.data, "train", limit=limit, seed=0, device=args.device, root=args.data_dir,
                        download=args.download)
    result = score(spec, model=args.model, inputs=iter_batches(data, args.batch_size, args.batches, seed=0),
                   seeds=args.seeds, device=args.device, num_classes=data.num_classes)
    result["data"] = data.name
    result["batch_size"] = args.batch_size
    if args.json:
        print(json.dumps(json_safe(result)))
        return 0
    from explorer.cli import render

    render.print_score(result)
    return 0


def run_models(args: argparse.Namespace) -> int:
    from explorer.models import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from explorer.cli import render

    render.print_models(rows)
    return 0


def _write_csv(path: Any, rows: list[dict[str, Any]]) -> None:
    import csv

    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def run_reproduce(args: argparse.Namespace) -> int:
    import os
    import time
    from pathlib import Path

    import torch

    from explorer import claims
    from explorer.errors import NormxError
    from explorer.scoring import json_safe

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NormxError("--device cuda was asked for but torch sees no CUDA device")
    scale = claims.SMALL if args.small else claims.PAPER
    data = args.data or ("synthetic" if args.small else "cifar100")
    kwargs: dict[str, Any] = {"device": device}
    if args.claim not in ("claim3", "fig6b"):
        kwargs.update(data=data, data_dir=args.data_dir, download=args.download)
        from explorer.data import load_dataset

        load_dataset(data, "test", limit=1, device="cpu", root=args.data_dir, download=args.download)  # fail early
    start = time.perf_counter()
    result = claims.CLAIMS[args.claim](scale, **kwargs)
    result.update({"scale": "small" if args.small else "paper", "device": device,
                   "wall_time_s": round(time.perf_counter() - start, 2)})
    if "data" in kwargs:
        result["data"] = data
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / f"{args.claim}.json", out / f"{args.claim}.csv"
    tmp = out / f".{args.claim}.json.tmp"
    tmp.write_text(json.dumps(json_safe(result), indent=2))
    _write_csv(out / f".{args.claim}.csv.tmp", json_safe(result["rows"]))
    os.replace(tmp, json_path)
    os.replace(out / f".{args.claim}.csv.tmp", csv_path)
    print(json.dumps(json_safe(result["summary"]), indent=2))
    print(f"wrote {json_path} and {csv_path}", file=sys.stderr)
    return 0
