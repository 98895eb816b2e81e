"""``normx study run|list|pareto|validate``: run Optuna studies over normalizer compositions."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from explorer.cli.render import (STORAGE_HELP_SECRET, add_command_group, add_resamples_argument, add_run_arguments,
                                 check_resamples, console, show, storage_option)
from explorer.search import default_storage

if TYPE_CHECKING:
    from explorer.search.results import StudyData


def add_parsers(sub: argparse._SubParsersAction) -> None:
    commands = add_command_group(sub, "study", "run and inspect searches over normalizer compositions")

    p = commands.add_parser("run", help="create or resume a study from a study file and run it")
    add_run_arguments(p)
    p.add_argument("--n-trials", type=int, help="study-wide trial budget (default: the file's n_trials)")
    p.add_argument("--data-dir", help="where CIFAR lives (default $NORMX_DATA, else ~/.cache/normx/data)")
    p.add_argument("--download", action="store_true", help="fetch CIFAR into the data directory when missing")
    p.set_defaults(func=run_run)

    p = commands.add_parser("list", help="list the studies in a storage")
    _storage_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_list)

    p = commands.add_parser("pareto", help="print a study's Pareto front")
    p.add_argument("name", metavar="NAME|STUDY.toml")
    _storage_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_pareto)

    p = commands.add_parser("validate", help="rank every stored predictor (and the combined score) by its "
                                             "correlation with measured speed and accuracy")
    p.add_argument("name", metavar="NAME|STUDY.toml")
    _storage_arg(p)
    add_resamples_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_validate)


def _storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", type=storage_option,
                   help="Optuna storage URL or file (default $NORMX_STORAGE, else sqlite:///normx.db)" + STORAGE_HELP_SECRET)


# --------------------------------------------------------------------------- run


def run_run(args: argparse.Namespace) -> int:
    from explorer.data import DATA_DIR_ENV
    from explorer.search import interrupt_on_signals, prepare, run_study
    from explorer.search.study_file import load_study_file

    interrupt_on_signals()
    config = load_study_file(args.study_file)
    if args.data_dir:
        os.environ[DATA_DIR_ENV] = args.data_dir  # worker processes inherit it
    try:
        ctx = prepare(config, download=args.download)  # a bad name in the study is one line, before any display
        from explorer.search import default_storage
        from explorer.tui.progress import create_progress  # live panel on a terminal, plain lines otherwise

        with create_progress(args.storage or config.storage or default_storage(), config.name,
                             budget=args.n_trials or config.n_trials) as display:
            run_study(config, storage=args.storage, n_trials=args.n_trials, workers=args.workers,
                      on_trial_event=display, ctx=ctx)
    except KeyboardInterrupt:
        from explorer.search.signals import EXIT_OUTPUT_CLOSED, output_closed

        return EXIT_OUTPUT_CLOSED if output_closed() else 130  # `| head`: quietly, as on SIGPIPE
    return 0


# --------------------------------------------------------------------------- reading studies
# Every read goes through explorer.search.results (imported when a command runs: it loads optuna), the
# same StudyData the viewer and the report show: one naming of objectives, one Pareto front.


def _load(name: str, storage_arg: str | None) -> StudyData:
    """Study NAME (or the study of a STUDY.toml, whose storage is then the default), read-only."""
    from explorer.search.results import StudySource, locate_study

    return StudySource(*locate_study(name, storage_arg)).load()  # an unknown name lists the studies


def study_record(data: StudyData) -> dict[str, Any]:
    """A study the way ``normx study list`` shows it: trial counts by state, objectives, models, data."""
    counts = {state: n for state, n in data.summary().counts.items() if n}
    starts = [r.started for r in data.rows if r.started is not None]
    return {"name": data.name, "trials": len(data.rows), "states": counts,
            "objectives": [{"name": o.name, "direction": o.direction.optuna} for o in data.objectives],
            "models": data.user_attrs.get("models", []), "data": data.user_attrs.get("data"),
            "started": min(starts).isoformat(timespec="seconds") if starts else None}


def run_list(args: argparse.Namespace) -> int:
    from explorer.search.results import load_studies, open_readonly

    rows = [study_record(data) for data in load_studies(open_readonly(args.storage or default_storage()))]
    if not rows and not args.json:
        print("no studies")
        return 0
    return show(rows, args.json, _print_studies)


def _print_studies(rows: list[dict[str, Any]]) -> None:
    from explorer.tui.tables import studies_table

    console().print(studies_table(rows))


def pareto_rows(data: StudyData) -> list[dict[str, Any]]:
    """The Pareto-optimal complete trials (:attr:`StudyData.pareto_rows`), the way ``normx study pareto`` shows them."""
    return [{"trial": r.number, "spec": r.spec or None,
             "values": {o.name: v for o, v in zip(data.objectives, r.values)}, "reused_from": r.reused_from}
            for r in data.pareto_rows]


def run_pareto(args: argparse.Namespace) -> int:
    data = _load(args.name, args.storage)
    rows = pareto_rows(data)
    if not rows and not args.json:
        print(f"study {data.name}: no complete trials yet")
        return 0
    return show(rows, args.json, lambda rows: _print_pareto(data, rows))


def _print_pareto(data: StudyData, rows: list[dict[str, Any]]) -> None:
    from explorer.tui.tables import pareto_table

    console().print(pareto_table(data, f"{data.name}: Pareto front ({len(rows)} trials)"))


def run_validate(args: argparse.Namespace) -> int:
    from explorer.search.validation import validate_study

    resamples = check_resamples(args)
    data = _load(args.name, args.storage)
    return show(validate_study(data, n_boot=resamples), args.json, _print_validation)


def _print_validation(result: dict[str, Any]) -> None:
    from explorer.tui.tables import validation_table

    console().print(validation_table(result))
