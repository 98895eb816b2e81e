"""The ``normx`` command line. Each subcommand lives in its own module and imports what it needs
(torch, optuna, rich, textual) only when it runs, so ``normx --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from explorer.errors import NormxError

#: subcommand -> module in explorer.cli that defines ``add_parser(subparsers)`` and ``run(args)``.
COMMANDS: dict[str, str] = {
    "plugins": "explorer.cli.catalog",
    "normalizers": "explorer.cli.catalog",
    "primitives": "explorer.cli.catalog",
    "spec": "explorer.cli.catalog",
    "score": "explorer.cli.score",
    "models": "explorer.cli.score",
    "reproduce": "explorer.cli.reproduce",
    "study": "explorer.cli.study",
    "view": "explorer.cli.view",
    "report": "explorer.cli.report",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other input error
        self.exit(2, f"normx: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="normx", description="Compose, score and search normalization layers.")
    from explorer import __version__

    parser.add_argument("--version", action="version", version=f"norm-explorer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    seen: set[str] = set()
    for module_name in dict.fromkeys(COMMANDS.values()):
        if module_name in seen:
            continue
        seen.add(module_name)
        importlib.import_module(module_name).add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NormxError as err:
        print(f"normx: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        print("normx: interrupted", file=sys.stderr)
        return 130
    except MemoryError as err:  # torch.OutOfMemoryError too (a subclass of RuntimeError, not MemoryError)
        print(f"normx: error: out of memory: {err}".splitlines()[0], file=sys.stderr)
        return 1
    except RuntimeError as err:
        if type(err).__name__ != "OutOfMemoryError":
            raise
        print("normx: error: out of memory on the device; use a smaller --batch-size or model", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def entry() -> None:
    sys.exit(main())
