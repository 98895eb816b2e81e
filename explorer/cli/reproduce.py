"""``normx reproduce``: run one of the paper's claims, show progress, write JSON, CSV and a figure, and say
whether the claim held."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from explorer.cli.render import PLOTS_HINT, output_dir, path_option, write_error
from explorer.errors import NormxError
from explorer.records import json_safe

if TYPE_CHECKING:
    from explorer.claims import Step

#: The measurements of explorer.claims (kept here so that 'normx --help' imports no torch).
CLAIM_NAMES = ("claim1", "claim2", "claim3", "claim4", "fig6b", "fig9", "normfree")
#: The claims measured on Gaussian inputs: no data set (--data, --data-dir, --download) applies.
GAUSSIAN_CLAIMS = ("claim3", "fig6b")
#: The claims that train (--train-epochs).
TRAINING_CLAIMS = ("fig9",)
#: What --device takes: the devices claims run on.
DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run the paper's measurements for one claim; write JSON, CSV and a figure")
    p.add_argument("claim", choices=CLAIM_NAMES, help="which claim or figure")
    p.add_argument("--out", default="runs/reproduce", type=path_option(),
                   help="output directory (default runs/reproduce)")
    p.add_argument("--small", action="store_true", help="small models and batches: a quick CPU run")
    p.add_argument("--data", default=None,
                   help="dataset for claims on natural images (default cifar100 at paper scale, synthetic with --small)")
    p.add_argument("--data-dir", default=None, help="where CIFAR files are")
    p.add_argument("--download", action="store_true", help="download CIFAR if it is missing")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present)")
    p.add_argument("--train-epochs", type=float, default=None,
                   help="fig9: epochs to train each group size for its test accuracy (default 60 at paper scale, "
                        "none with --small)")
    p.add_argument("--json", action="store_true", help="print the summary, verdict and files as one JSON object")
    p.set_defaults(func=run)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:

    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


class _ProgressDisplay:
    """Renders :class:`explorer.claims.Step` reports: a rich progress bar on a terminal, plain lines when piped."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.task: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)

    @staticmethod
    def describe(step: Step) -> str:
        seed = f", seed {step.seed + 1}/{step.seeds}" if step.task == "score" else ", training"
        return f"{step.claim}: {step.spec} on {step.model}{seed}"

    def __call__(self, step: Step) -> None:
        if self.bar is None:
            print(f"[{step.index}/{step.total}] {self.describe(step)}", file=sys.stderr, flush=True)
            return
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("", total=step.total)
        self.bar.update(self.task, completed=step.index - 1, description=self.describe(step))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


#: short headers for the claims' number columns (the legend under each table spells them out)
SHORT = {"cosine_similarity": "cos sim", "grad_explosion_exponent": "explosion", "stable_rank": "st.rank",
         "stable_rank_spread": "rank ±", "sqrt_width_over_group_size": "√(w/g)", "first activation_variance": "var₁",
         "last activation_variance": "var_L", "first grad_norm": "grad₁", "last grad_norm": "grad_L",
         "batch_size": "batch", "group_size": "group", "test_accuracy": "test acc", "mean_train_accuracy": "train acc"}


def _print_report(result: dict[str, Any], verdict: tuple[bool, str] | None, files: list[Path]) -> None:
    """The measured configurations, one table per model (or variant) so that each fits 80 columns: names
    (a spec and its growth) stacked in the first column, numbers with short headers and their legend."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from explorer.claims import table_rows
    from explorer.tui.tables import legend, stack

    console = Console()
    rows = table_rows(result)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    text = [c for c in columns if all(isinstance(r.get(c), str) or r.get(c) is None for r in rows)]
    group_by = [c for c in ("model", "variant") if c in text]
    first = "spec" if "spec" in text else None
    prose = [c for c in text if c not in (first, *group_by)]  # e.g. growth: a line under the spec
    if first is None:
        first, prose = (prose[0], prose[1:]) if prose else (None, [])
    numbers = [c for c in columns if c not in text]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(c) for c in group_by), []).append(row)
    head = f"{result['claim']} · {result.get('scale', '')} scale · {result.get('wall_time_s', '?')} s"
    for key, members in groups.items():
        where = ", ".join(f"{c.replace('_', ' ')} {v}" for c, v in zip(group_by, key) if v is not None)
        table = Table(title=f"{head}\n{where}" if where else head)
        if first:
            table.add_column(" · ".join([first, *prose]).replace("_", " "))
        for name in numbers:
            table.add_column(SHORT.get(name, name.replace("_", " ")), justify="right", no_wrap=True)
        for row in members:
            names = [Text(str(row.get(first, "")), style="bold")] if first else []
            names += [Text(str(row[c]), style="dim") for c in prose if row.get(c) is not None]
            table.add_row(*([stack(*names)] if first else []), *(_cell(row.get(name)) for name in numbers))
        console.print(table)
    console.print(legend(SHORT, numbers))
    if verdict is not None:
        holds, sentence = verdict
        console.print(sentence, style="bold green" if holds else "bold yellow", highlight=False)
    console.print("wrote " + ", ".join(str(f) for f in files), style="dim", highlight=False)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def check_arguments(args: argparse.Namespace) -> None:
    """Every flag checked before anything is computed or created: one that does not apply to the
    claim is refused, never ignored."""
    if args.device is not None and not DEVICE.fullmatch(args.device):
        raise NormxError(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    if args.claim in GAUSSIAN_CLAIMS:
        given = [flag for flag, value in (("--data", args.data), ("--data-dir", args.data_dir),
                                          ("--download", args.download)) if value not in (None, False)]
        if given:
            uses = ", ".join(c for c in CLAIM_NAMES if c not in GAUSSIAN_CLAIMS)
            raise NormxError(f"{args.claim} measures on Gaussian inputs: {given[0]} does not apply to it "
                             f"(it does to {uses})")
    if args.train_epochs is not None:
        if args.claim not in TRAINING_CLAIMS:
            raise NormxError(f"--train-epochs applies to {', '.join(TRAINING_CLAIMS)} only, not {args.claim}")
        if not args.train_epochs >= 0:
            raise NormxError(f"--train-epochs must be 0 or more, got {args.train_epochs}")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    with output_dir(Path(args.out)):  # a failure leaves no directory it created behind
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import torch

    from explorer import claims

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NormxError(f"--device {device} was asked for but torch sees no CUDA device")
    scale = claims.SMALL if args.small else claims.PAPER
    if args.train_epochs is not None:
        scale = replace(scale, train_epochs=args.train_epochs)
    data = args.data or ("synthetic" if args.small else "cifar100")
    kwargs: dict[str, Any] = {"device": device}
    if args.claim not in ("claim3", "fig6b"):
        kwargs.update(data=data, data_dir=args.data_dir, download=args.download)
        from explorer.data import load_dataset

        load_dataset(data, "test", limit=1, device="cpu", root=args.data_dir, download=args.download)  # fail early
    out = Path(args.out)
    try:
        import explorer.plots.claim_figures as figures
    except ImportError:
        figures = None
    display = _ProgressDisplay()
    start = time.perf_counter()
    try:
        result = claims.CLAIMS[args.claim](scale, progress=display, **kwargs)
    finally:
        display.close()
    result.update({"scale": "small" if args.small else "paper", "device": device,
                   "wall_time_s": round(time.perf_counter() - start, 2)})
    if "data" in kwargs:
        result["data"] = data
    verdict = claims.verdict(result)
    if verdict is not None:
        result["verdict"] = {"holds": verdict[0], "sentence": verdict[1]}

    stem = out / args.claim
    staged = [(out / f".{args.claim}.json.tmp", stem.with_suffix(".json")),
              (out / f".{args.claim}.csv.tmp", stem.with_suffix(".csv"))]
    files: list[Path] = []
    note = None
    try:
        staged[0][0].write_text(json.dumps(json_safe(result), indent=2))
        _write_csv(staged[1][0], json_safe(result["rows"]))
        for tmp, path in staged:
            os.replace(tmp, path)
            files.append(path)
        if figures is None:
            note = PLOTS_HINT
        else:
            try:
                files += figures.write_figure(result, stem)
            except ValueError as err:
                note = f"no figure: {err}"
    except OSError as err:  # a full disk: the results of this run are whole or absent, all of them
        for path in [tmp for tmp, _ in staged] + files:
            path.unlink(missing_ok=True)
        raise write_error(err, f"the results to {out}") from None
    if note:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(json_safe({"claim": args.claim, "summary": result["summary"],
                                    "verdict": result.get("verdict"), "files": [str(f) for f in files]}), indent=2))
        return 0
    _print_report(result, verdict, files)
    return 0
