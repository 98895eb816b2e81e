"""What the CLI commands print: one JSON document (``--json``) or rich tables: the catalogue and a
score result from :mod:`explorer.cli.catalog_tables`, a study's from :mod:`explorer.tui.tables`, so that
the viewer, the report and these commands render alike.

Rich and the tables are imported only when a table is printed: the command modules import this one at
their top, and ``normx --help`` imports every command module.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from explorer.errors import NormxError

if TYPE_CHECKING:
    from rich.console import Console


#: what every ``--storage`` option says about secrets (a URL on the command line is visible in ``ps``)
STORAGE_HELP_SECRET = "; keep passwords off the command line (visible in ps): set $NORMX_STORAGE instead"


def add_command_group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """A command with subcommands (``normx study``, ``normx table``): its subparsers; alone it prints its help."""
    group = sub.add_parser(name, help=help)
    commands = group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", parser_class=type(group))
    group.set_defaults(func=lambda args: (group.print_help(), 2)[1])
    return commands


#: The fewest bootstrap resamples a command accepts: a 95 % interval's ends are its 2.5th and
#: 97.5th percentiles, and from fewer resamples they are a handful of draws, not an interval.
MIN_RESAMPLES = 100


def add_resamples_argument(parser: argparse.ArgumentParser, default: int = 1000) -> None:
    """``--resamples N``: the bootstrap resamples of a command's confidence intervals (one name
    in ``report``, ``study validate``, ``table show`` and ``table learned``)."""
    parser.add_argument("--resamples", type=int, default=default, metavar="N",
                        help=f"bootstrap resamples for the confidence intervals (at least {MIN_RESAMPLES}; "
                             f"default {default})")


def check_resamples(args: argparse.Namespace) -> int:
    """``args.resamples``, or one line when it is too few for a 95 % interval."""
    if args.resamples < MIN_RESAMPLES:
        raise NormxError(f"--resamples must be at least {MIN_RESAMPLES} (a 95 % interval from fewer "
                         f"resamples is a few draws, not an interval), got {args.resamples}")
    return int(args.resamples)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``STUDY.toml``, ``--storage`` and ``--workers`` of the commands that run a study file's studies
    (``normx study run``, ``normx table build``)."""
    parser.add_argument("study_file", metavar="STUDY.toml")
    parser.add_argument("--storage", type=storage_option, help="Optuna storage URL or file (default: the file's "
                        "storage, else $NORMX_STORAGE, else sqlite:///normx.db)" + STORAGE_HELP_SECRET)
    parser.add_argument("--workers", type=int, default=1, help="local worker processes on the study (default 1)")


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """``STUDY`` and ``--storage`` of the commands that read one study (``normx report``, ``normx view``):
    a study name or the study file it was run from, whose storage is then the default."""
    parser.add_argument("study", metavar="STUDY", help="study name, or the study file it was run from")
    parser.add_argument("--storage", metavar="URL", help="Optuna storage URL or file (default: the study file's "
                        "storage, else $NORMX_STORAGE, else sqlite:///normx.db)" + STORAGE_HELP_SECRET,
                        type=storage_option)


def storage_option(value: str) -> str:
    """``--storage``'s type: an empty value is a mistake, not a request for the default storage."""
    if not value.strip():
        raise argparse.ArgumentTypeError("empty storage; give a URL or a file, or leave --storage out")
    return value


def path_option(what: str = "a directory") -> Callable[[str], str]:
    """An argparse type for a path option: an empty value (``--plots ''``) is a mistake, never "no
    value" nor the current directory."""
    def check(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"empty path: give {what} or omit the option")
        return value

    return check


def write_error(err: OSError, what: str) -> NormxError:
    """One line for a write that the system refused (a full disk, a read-only file system)."""
    return NormxError(f"cannot write {what}: {err.strerror or err}; nothing was left behind")


def console() -> Console:
    from rich.console import Console

    return Console()


#: what a command that draws figures says when matplotlib (an optional extra) is missing
PLOTS_HINT = "no figure: matplotlib is not installed (pip install 'norm-explorer[plots]')"


def check_out_dir(out: Path, option: str = "--out") -> list[Path]:
    """Create ``out`` and prove it writable before any compute; one-line NormxError otherwise.
    Returns the directories it created, the deepest first (:func:`output_dir` removes them again
    when the command fails)."""
    if out.exists() and not out.is_dir():
        raise NormxError(f"{option} {out} is a file, not a directory")
    made = [p for p in (out, *out.absolute().parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".normx-write-check-"):
            pass
    except OSError as err:
        remove_empty_dirs(made)
        raise NormxError(f"{option} {out} is not a writable directory: {err.strerror or err}") from None
    return made


def remove_empty_dirs(dirs: list[Path]) -> None:
    """Remove ``dirs`` (the deepest first) where they are empty: what a failed command created."""
    for directory in dirs:
        try:
            directory.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def output_dir(out: Path | None, option: str = "--out") -> Iterator[None]:
    """:func:`check_out_dir` around a command's work: when the work fails, the directories made
    for it are removed again (they are empty: every file is written whole or not at all)."""
    made = check_out_dir(out, option) if out is not None else []
    try:
        yield
    except BaseException:
        remove_empty_dirs(made)
        raise


def print_json(data: Any, indent: int | None = 2) -> None:
    """``data`` as JSON on stdout; values JSON has no type for (paths, enums) as their text."""
    print(json.dumps(data, indent=indent, default=str))


def show(data: Any, as_json: bool, print_table: Callable[[Any], None]) -> int:
    """``data`` as JSON (``--json``), else printed by ``print_table``; returns the command's exit status."""
    if as_json:
        print_json(data)
    else:
        print_table(data)
    return 0


def print_plugins(rows: list[dict[str, Any]]) -> None:
    from explorer.cli.catalog_tables import plugins_table

    console().print(plugins_table(rows))


def print_normalizers(rows: list[dict[str, Any]]) -> None:
    from explorer.cli.catalog_tables import normalizers_table

    console().print(normalizers_table(rows))


def print_primitives(rows: list[dict[str, Any]]) -> None:
    from explorer.cli.catalog_tables import primitives_table

    console().print(primitives_table(rows))


def print_predictors(rows: list[dict[str, Any]]) -> None:
    from explorer.cli.catalog_tables import predictors_table

    console().print(predictors_table(rows))


def print_score(result: dict[str, Any]) -> None:
    """A score result (the fields of ``normx score --json``) as tables."""
    from explorer.cli.catalog_tables import score_table

    console().print(score_table(result))


def print_models(rows: list[dict[str, Any]]) -> None:
    """The model architectures (``normx models``): name, parameters with defaults, description."""
    from explorer.cli.catalog_tables import models_table

    console().print(models_table(rows))

