"""``normx table build|list|show|replay|learned``: NormBench tables, whole spaces trained once, and searches
replayed on them by lookup (:mod:`explorer.normbench`)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from explorer.cli.render import add_command_group, add_resamples_argument, add_run_arguments, check_resamples, console
from explorer.errors import NormxError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    commands = add_command_group(sub, "table", "NormBench: build tables of whole spaces, replay searches on them")

    p = commands.add_parser("build", help="train every composition of a study file's space once (resumable)")
    add_run_arguments(p)
    p.add_argument("--noise-seeds", type=int, default=3,
                   help="training seeds of the noise sample, the first run included (default 3)")
    p.add_argument("--noise-fraction", type=float, default=0.1,
                   help="the noise sample: this share of the best compositions and as many at random (default 0.1)")
    p.add_argument("--out", help="the table file to write (default: explorer/normbench/tables/NAME.jsonl)")
    p.set_defaults(func=run_build)

    p = commands.add_parser("list", help="the committed tables")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_list)

    p = commands.add_parser("show", help="a table's metadata and every predictor's correlation with the outcome "
                                         "(Figure 5 of Lubana et al. at scale)")
    p.add_argument("name", metavar="NAME|FILE.jsonl")
    add_resamples_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_show)

    p = commands.add_parser("learned", help="leave one table out: the learned screening score fitted on the other "
                                            "tables, against every predictor on the held-out one")
    p.add_argument("names", nargs="*", metavar="NAME|FILE.jsonl",
                   help="the tables held out in turn, each scored by what the others teach (default: every "
                        "committed table)")
    add_resamples_argument(p, 200)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_learned)

    p = commands.add_parser("replay", help="run search strategies on a table by lookup, side by side")
    p.add_argument("name", metavar="NAME|FILE.jsonl")
    p.add_argument("--seeds", type=int, default=100, help="runs per strategy (arrival orders, sampler seeds; default 100)")
    p.add_argument("--strategies", metavar="A,B", help="only these strategies (default: all)")
    p.add_argument("--processes", type=int, default=None,
                   help="processes to run the strategies in (default: the usable CPU cores, at most 8)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plots", metavar="DIR", help="write the best-so-far figure into DIR")
    p.set_defaults(func=run_replay)


def run_build(args: argparse.Namespace) -> int:
    from explorer.normbench.build import build_table
    from explorer.search import interrupt_on_signals
    from explorer.tui.progress import create_progress

    if args.workers < 1:
        raise NormxError(f"--workers must be at least 1, got {args.workers}")
    interrupt_on_signals()

    def events(storage: str, name: str, budget: int):  # one live display per phase (the space, each noise seed)
        return create_progress(storage, name, budget=budget)

    command = "normx table build " + " ".join(shlex.quote(a) for a in sys.argv[3:]) if len(sys.argv) > 3 else ""
    try:
        table, path = build_table(args.study_file, storage=args.storage, workers=args.workers,
                                  noise_seeds=args.noise_seeds, noise_fraction=args.noise_fraction, out=args.out,
                                  events=events, command=command)
    except KeyboardInterrupt:
        return 130
    m = table.metadata
    print(f"table {table.name}: {m['compositions']} compositions ({m['trained']} trained), σ = {m['sigma']:.4f}, "
          f"{100 * m['band_fraction']:.0f} % inside the band of the best; written to {path}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from explorer.normbench import list_tables, load

    rows = []
    for name in list_tables():
        table = load(name)
        m = table.metadata
        rows.append({"name": name, "compositions": len(table.rows), "trained": len(table.trained),
                     "models": m.get("models"), "data": m.get("data"), "steps": m.get("steps"),
                     "sigma": table.noise_sigma, "band_fraction": table.band_fraction, "flat": table.flat,
                     "best": table.best.spec if table.trained else None, "cpu_hours": m.get("cpu_hours"),
                     "cpu": m.get("cpu")})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from explorer.cli.table_render import tables_table

    console().print(tables_table(rows))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from explorer.normbench import load
    from explorer.normbench.correlation import correlations

    resamples = check_resamples(args)
    table = load(args.name)
    result = {"name": table.name, "metadata": {k: v for k, v in table.metadata.items() if k != "study_file"},
              "correlations": correlations(table, n_boot=resamples)}
    if args.json:
        from explorer.records import json_safe

        print(json.dumps(json_safe(result), indent=1))
        return 0
    from explorer.cli.table_render import correlations_table, metadata_text

    console().print(metadata_text(table))
    console().print(correlations_table(result["correlations"]))
    return 0


def run_learned(args: argparse.Namespace) -> int:
    from explorer.normbench.transfer import leave_one_table_out

    result = leave_one_table_out(args.names or None, n_boot=check_resamples(args))
    if args.json:
        from explorer.records import json_safe

        print(json.dumps(json_safe(result), indent=1))
        return 0
    from explorer.cli.table_render import transfer_table

    for entry in result:
        console().print(transfer_table(entry))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from explorer.normbench import load
    from explorer.normbench.replay import replay, replay_fronts, summarize

    if args.seeds < 1:
        raise NormxError(f"--seeds must be at least 1, got {args.seeds}")
    if args.processes is not None and args.processes < 1:
        raise NormxError(f"--processes must be at least 1, got {args.processes}")
    if args.plots is not None and not args.plots.strip():
        raise NormxError("--plots needs a directory")
    table = load(args.name)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()] if args.strategies else None
    from explorer.search.orchestrate import usable_cores

    processes = args.processes or min(8, usable_cores())
    summary = summarize(table, replay(table, seeds=args.seeds, strategies=strategies, processes=processes))
    summary["fronts"] = None if strategies else replay_fronts(table, seeds=args.seeds)
    if args.plots:
        from explorer.plots.replay_figures import save_replay_figure

        summary["figure"] = str(save_replay_figure(summary, Path(args.plots)))
    if args.json:
        from explorer.records import json_safe

        print(json.dumps(json_safe(summary), indent=1))
        return 0
    from explorer.cli.table_render import fronts_table, replay_table

    console().print(replay_table(summary))
    if summary["fronts"]:
        console().print(fronts_table(summary["fronts"]))
    if "figure" in summary:
        console().print(f"figure: {summary['figure']}")
    return 0
