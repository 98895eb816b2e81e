"""``normx report STUDY``: a static report of a study (rich), or its data as JSON or CSV.

The rich report (:func:`report_renderables`) is built here, from the tables of
:mod:`explorer.tui.tables` and the trade-off plot of :mod:`explorer.tui.charts` that the viewer
shows too; the JSON and CSV data are :mod:`explorer.search.results.export`'s, the figures
:mod:`explorer.plots.study_figures`'. Rich, optuna and matplotlib are imported only when the command
runs, so that ``normx --help`` stays fast.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile

from pathlib import Path
from typing import TYPE_CHECKING, Any

from explorer.cli.render import (PLOTS_HINT, add_resamples_argument, add_study_arguments, check_resamples, output_dir,
                                 path_option, write_error)
from explorer.errors import NormxError

if TYPE_CHECKING:
    from explorer.search.results import StudyData


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="print a study's Pareto front, best trials and predictor validation",
                       description="A static report of a study, read-only from its storage. STUDY is a study "
                                   "name or a study file (.toml).")
    add_study_arguments(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print everything as one JSON object")
    fmt.add_argument("--csv", action="store_true", help="print one CSV row per trial")
    p.add_argument("--output", "-o", metavar="FILE", type=path_option("a file"),
                   help="write to FILE (atomically) instead of stdout")
    add_resamples_argument(p)
    p.add_argument("--plots", metavar="DIR", type=path_option(), help="also write the study's figures (PNG and SVG) to DIR: the Pareto "
                   "front, the speed-stability trade-off, each predictor against training speed with Kendall's τ, "
                   "the per-layer curves of the best trials (needs matplotlib: pip install 'norm-explorer[plots]')")
    p.set_defaults(func=run_report)


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    directory = os.path.dirname(os.path.abspath(output))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".normx-report-")
    except OSError as err:
        raise write_error(err, output) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, output)  # never a half-written report
    except BaseException as err:
        os.unlink(tmp)
        if isinstance(err, OSError):  # a full disk: one line, nothing left
            raise write_error(err, output) from None
        raise


def run_report(args: argparse.Namespace) -> int:
    from explorer.search.results import StudySource, locate_study  # optuna: imported only when run
    from explorer.search.results.export import report_csv, report_data

    check_resamples(args)
    if args.output and not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        raise NormxError(f"cannot write {args.output}: no such directory")
    url, name = locate_study(args.study, args.storage)
    source = StudySource(url, name)
    plots = Path(args.plots) if args.plots is not None else None
    with output_dir(plots, "--plots"):  # a file or an unwritable directory: before anything is drawn
        data = source.load()
        if plots is not None:
            _write_plots(data, plots, args.resamples)
    if args.json:
        _write(json.dumps(report_data(data, args.resamples), indent=2) + "\n", args.output)
    elif args.csv:
        _write(report_csv(data), args.output)
    else:
        from rich.console import Console

        if args.output:
            console = Console(file=io.StringIO(), width=120, force_terminal=False, color_system=None)
            for part in report_renderables(data, args.resamples):
                console.print(part)
            _write(console.file.getvalue(), args.output)
        else:
            console = Console()
            for part in report_renderables(data, args.resamples):
                console.print(part)
    return 0


def report_renderables(data: StudyData, resamples: int = 1000) -> list[Any]:
    """The rich report, top to bottom."""
    from rich.rule import Rule
    from rich.text import Text

    from explorer.search.results.export import validation_result
    from explorer.tui.charts import tradeoff_plot
    from explorer.tui.tables import best_table, halving_table, pareto_table, summary_text, validation_table

    parts: list[Any] = [Rule(f"study {data.name}"), summary_text(data.name, data.summary(), data.objectives)]
    if not data.rows:
        parts.append("(the study has no trials yet)")
        return parts
    parts += [best_table(data), pareto_table(data)]
    if (rungs := halving_table(data)) is not None:
        parts.append(rungs)
    if data.tradeoff_points():
        parts.append(tradeoff_plot(data, height=14))
    results = validation_result(data, resamples)
    if isinstance(results, dict):
        parts.append(validation_table(results))
    else:
        parts.append(Text(f"predictor validation: {results}", style="dim"))
    return parts


def _write_plots(data: object, directory: Path, resamples: int) -> None:
    """The study's figures into ``directory`` (reported on stderr, so that --json and --csv stay clean)."""
    try:
        from explorer.plots.study_figures import describe, write_study_figures
    except ImportError:
        print(PLOTS_HINT, file=sys.stderr)
        return
    try:
        files, missing = write_study_figures(data, directory, resamples)  # type: ignore[arg-type]
    except OSError as err:  # a full disk: the figures written so far are removed
        raise write_error(err, f"the figures to {directory}") from None
    for line in describe(files, missing, directory):
        print(line, file=sys.stderr)
