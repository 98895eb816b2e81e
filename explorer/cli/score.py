"""``normx score`` and ``normx models``: predictors at initialization from the shell."""

from __future__ import annotations

import argparse
import json

from explorer.cli.render import print_models, print_score, show
from explorer.errors import NormxError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="measure the predictors at initialization of one normalizer on one model")
    p.add_argument("spec", help="a preset or composition, e.g. bn or 'gn(group_size=4) | tlu'")
    p.add_argument("--model", default="cnn10", help="model in call form (see 'normx models'); default cnn10")
    p.add_argument("--data", default="synthetic",
                   help="gaussian, synthetic, digits, cifar10, cifar100 or folder:PATH; default synthetic")
    p.add_argument("--data-dir", default=None, help="where CIFAR files are (default $NORMX_DATA or ~/.cache/normx/data)")
    p.add_argument("--download", action="store_true", help="download CIFAR if it is missing")
    p.add_argument("--batch-size", type=int, default=64, help="samples per batch (default 64)")
    p.add_argument("--batches", type=int, default=2, help="batches to average over (default 2)")
    p.add_argument("--seeds", type=int, default=1, help="model initializations to average over (default 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--predictors", default="default", metavar="A,B",
                   help="comma-separated predictors (see 'normx predictors'); 'default' (the paper's four and "
                        "parameter_count), 'all', or names, e.g. default,snip")
    p.add_argument("--compile", nargs="?", const="true", default="auto", metavar="auto|true|false",
                   help="compile the generic normalization layers: auto (when the passes pay for it; "
                        "default), true (--compile alone) or false")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_score)

    p = sub.add_parser("models", help="list the model architectures with their parameters")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_models)


def _check_counts(args: argparse.Namespace) -> None:
    for name in ("batch_size", "batches", "seeds"):
        if getattr(args, name) < 1:
            raise NormxError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise NormxError(f"--device must be cpu or cuda, got {args.device!r}")


def run_score(args: argparse.Namespace) -> int:
    from explorer.scoring import ScoreRequest

    _check_counts(args)
    # every flag checked here, once, before any data is loaded; score() trusts the request
    request = ScoreRequest.create(args.spec, model=args.model, predictors=args.predictors, seeds=args.seeds,
                                  device=args.device, compile=args.compile)
    request.check_batch_size(args.batch_size)
    from explorer.data import iter_batches, load_dataset
    from explorer.records import json_safe
    from explorer.scoring import score

    limit = args.batch_size * args.batches if args.data in ("gaussian", "synthetic") else None
    data = load_dataset(args.data, "train", limit=limit, seed=0, device=args.device, root=args.data_dir,
                        download=args.download)
    result = score(request, inputs=iter_batches(data, args.batch_size, args.batches, seed=0),
                   num_classes=data.num_classes)
    result["data"] = data.name
    result["batch_size"] = args.batch_size
    if args.json:
        print(json.dumps(json_safe(result)))
        return 0
    print_score(result)
    return 0


def run_models(args: argparse.Namespace) -> int:
    from explorer.models import list_models

    return show(list_models(), args.json, print_models)
