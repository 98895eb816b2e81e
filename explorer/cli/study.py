"""``normx study run|list|pareto|validate``: run Optuna studies over normalizer compositions."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any


def add_parsers(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser("study", help="run and inspect searches over normalizer compositions")
    commands = study.add_subparsers(dest="study_command", metavar="SUBCOMMAND", parser_class=type(study))
    study.set_defaults(func=lambda args: (study.print_help(), 2)[1])

    p = commands.add_parser("run", help="create or resume a study from a study file and run it")
    p.add_argument("study_file", metavar="STUDY.toml")
    p.add_argument("--storage", help="Optuna storage URL or file (default: the file's storage, else "
                                     "$NORMX_STORAGE, else sqlite:///normx.db)")
    p.add_argument("--n-trials", type=int, help="study-wide trial budget (default: the file's n_trials)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes on the study (default 1)")
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

    p = commands.add_parser("validate", help="rank correlations of each init predictor with measured speed and accuracy")
    p.add_argument("name", metavar="NAME|STUDY.toml")
    _storage_arg(p)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_validate)


def _storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="Optuna storage URL or file (default $NORMX_STORAGE, else sqlite:///normx.db)")


# --------------------------------------------------------------------------- run


def run_run(args: argparse.Namespace) -> int:
    from explorer.search import interrupt_on_signals, prepare, run_study
    from explorer.search.study_file import load_study_file

    interrupt_on_signals()
    config = load_study_file(args.study_file)
    try:
        ctx = prepare(config)  # a bad name in the study is one line, before any display starts
        from explorer.search import default_storage
        from explorer.tui.progress import create_progress  # live panel on a terminal, plain lines otherwise

        with create_progress(args.storage or config.storage or default_storage(), config.name,
                             budget=args.n_trials or config.n_trials) as display:
            run_study(config, storage=args.storage, n_trials=args.n_trials, workers=args.workers,
                      on_trial_event=display, ctx=ctx)
    except KeyboardInterrupt:
        return 130
    return 0


# --------------------------------------------------------------------------- reading studies


def _open(storage_arg: str | None, name: str | None = None) -> tuple[Any, str | None]:
    """(storage opened read-only, study name) for a NAME or a STUDY.toml argument (whose storage
    is then the default); reading a study never creates or changes anything."""
    from explorer.search.storage import open_readonly
    from explorer.tui.storage import locate_study

    storage_url, name = locate_study(name, storage_arg) if name is not None else (None, None)
    if storage_url is None:
        from explorer.search import default_storage

        storage_url = storage_arg or default_storage()
    return open_readonly(storage_url), name


def _load(storage: Any, name: str) -> Any:
    import optuna

    from explorer.tui.storage import find_study_id

    find_study_id(storage, name)  # an unknown name lists the studies the storage holds
    return optuna.load_study(study_name=name, storage=storage)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def run_list(args: argparse.Namespace) -> int:
    import optuna

    storage, _ = _open(args.storage)
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        objectives = study.user_attrs.get("objectives") or [
            {"name": f"objective {i}", "direction": d.name.lower()} for i, d in enumerate(study.directions)]
        rows.append({"name": summary.study_name, "trials": sum(counts.values()), "states": counts,
                     "objectives": objectives, "models": study.user_attrs.get("models", []),
                     "data": study.user_attrs.get("data"),
                     "started": summary.datetime_start.isoformat(timespec="seconds") if summary.datetime_start else None})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no studies")
        return 0
    from rich.table import Table

    from explorer.cli.render import console

    table = Table(title="studies")
    for col in ("name", "trials", "states", "objectives", "models", "data", "started"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], str(r["trials"]), ", ".join(f"{v} {k}" for k, v in sorted(r["states"].items())),
                      ", ".join(f"{o['name']} {'↑' if o['direction'] == 'maximize' else '↓'}" for o in r["objectives"]),
                      ", ".join(r["models"]), str(r["data"] or "-"), str(r["started"] or "-"))
    console().print(table)
    return 0


def pareto_rows(study: Any) -> list[dict[str, Any]]:
    """The Pareto-optimal complete trials, the way ``normx study pareto`` shows them."""
    objectives = study.user_attrs.get("objectives") or [
        {"name": f"objective {i}", "direction": d.name.lower()} for i, d in enumerate(study.directions)]
    rows = []
    trials = study.best_trials if len(study.directions) > 1 else ([study.best_trial] if _has_complete(study) else [])
    for t in sorted(trials, key=lambda t: t.number):
        rows.append({"trial": t.number, "spec": t.user_attrs.get("spec"),
                     "values": {o["name"]: v for o, v in zip(objectives, t.values)},
                     "reused_from": t.user_attrs.get("reused_from")})
    return rows


def _has_complete(study: Any) -> bool:
    from optuna.trial import TrialState

    return bool(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run_pareto(args: argparse.Namespace) -> int:
    storage, name = _open(args.storage, args.name)
    study = _load(storage, name)
    rows = pareto_rows(study)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"study {name}: no complete trials yet")
        return 0
    from rich.table import Table

    from explorer.cli.render import console

    table = Table(title=f"{name}: Pareto front ({len(rows)} trials)")
    table.add_column("trial", justify="right")
    table.add_column("spec", style="cyan")
    keys = list(rows[0]["values"])
    directions = {o["name"]: o["direction"] for o in study.user_attrs.get("objectives", [])}
    for key in keys:
        table.add_column(f"{key} {'↑' if directions.get(key) == 'maximize' else '↓'}", justify="right")
    for r in rows:
        table.add_row(str(r["trial"]), r["spec"] or "-", *(_number(r["values"][k]) for k in keys))
    console().print(table)
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from explorer.search.validation import validate_study

    storage, name = _open(args.storage, args.name)
    study = _load(storage, name)
    result = validate_study(study, n_boot=args.bootstrap)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from rich.table import Table

    from explorer.cli.render import console

    table = Table(title=f"{name}: init predictors vs measured speed and accuracy "
                        f"({result['trials']} trained trials, 95% bootstrap CI, {result['bootstrap']} resamples)")
    for col in ("predictor", "measure", "Kendall τ", "95% CI", "Spearman ρ", "95% CI"):
        table.add_column(col, justify="right" if col not in ("predictor", "measure") else "left")
    for pair in result["pairs"]:
        cells = []
        for key in ("kendall_tau", "spearman_rho"):
            entry = pair.get(key)
            if entry is None:
                cells += ["-", pair.get("note", "-")]
            else:
                cells += [f"{entry['value']:+.2f}", f"[{entry['ci'][0]:+.2f}, {entry['ci'][1]:+.2f}]"]
        measure = "speed (mean train acc.)" if pair["measure"] == "mean_train_accuracy" else "test accuracy"
        table.add_row(pair["predictor"], measure, *cells)
    console().print(table)
    return 0
