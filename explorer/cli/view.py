"""``normx view STUDY``: the interactive study viewer in the terminal (read-only)."""

from __future__ import annotations

import argparse
import sys

from explorer.cli.render import add_study_arguments
from explorer.errors import NormxError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="browse a study in the terminal: trials, Pareto front, trade-off plots",
                       description="An interactive, read-only viewer of a study; press ? inside for the keys. "
                                   "STUDY is a study name or a study file (.toml).")
    add_study_arguments(p)
    p.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                   help="reload the study every SECONDS while the viewer is open (0: never; default 5)")
    p.set_defaults(func=run_view)


def run_view(args: argparse.Namespace) -> int:
    from explorer.search.results import StudySource, locate_study  # optuna: imported only when run

    if args.refresh < 0:
        raise NormxError("--refresh must be 0 (never) or a number of seconds")
    url, name = locate_study(args.study, args.storage)
    source = StudySource(url, name)  # a wrong name or storage fails here, as one line
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise NormxError("normx view needs an interactive terminal; use 'normx report' for plain output")
    from explorer.tui.app import StudyApp

    StudyApp(source, refresh_s=args.refresh or None).run()
    return 0
