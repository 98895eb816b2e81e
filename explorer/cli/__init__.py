"""The ``normx`` command line. Each subcommand lives in its own module and imports what it needs
(torch, optuna, rich, textual) only when it runs, so ``normx --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from explorer import __version__
from explorer.errors import NormxError, note_interrupt_signal, printable

#: subcommand -> module in explorer.cli whose ``add_parsers(subparsers)`` adds it, with the function that
#: runs it as the parser's ``func`` default (one module may add several subcommands).
COMMANDS: dict[str, str] = {
    "plugins": "explorer.cli.catalog",
    "normalizers": "explorer.cli.catalog",
    "primitives": "explorer.cli.catalog",
    "predictors": "explorer.cli.catalog",
    "spec": "explorer.cli.catalog",
    "score": "explorer.cli.score",
    "models": "explorer.cli.score",
    "reproduce": "explorer.cli.reproduce",
    "study": "explorer.cli.study",
    "view": "explorer.cli.view",
    "report": "explorer.cli.report",
    "table": "explorer.cli.table",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other input error
        self.exit(2, f"normx: error: {printable(message)} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="normx", description="Compose, score and search normalization layers.")
    parser.add_argument("--version", action="version", version=f"norm-explorer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in dict.fromkeys(COMMANDS.values()):  # each module once, in order
        importlib.import_module(module_name).add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    note_ctrl_c()
    try:
        return int(args.func(args) or 0)
    except NormxError as err:
        print(f"normx: error: {printable(str(err))}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        print("normx: interrupted", file=sys.stderr)
        return 130
    except MemoryError as err:  # torch.OutOfMemoryError too (a subclass of RuntimeError, not MemoryError)
        print(f"normx: error: out of memory: {err}".splitlines()[0], file=sys.stderr)
        return 1
    except RuntimeError as err:
        where = out_of_memory(err)
        if where is None:
            raise
        print(f"normx: error: out of memory on the {where}; use a smaller --batch-size, --width or model",
              file=sys.stderr)
        return 1
    except BrokenPipeError:  # `normx study list | head -1`: quietly and non-zero, as a Unix tool on SIGPIPE
        _silence_stdout()
        return 128 + signal.SIGPIPE


def _silence_stdout() -> None:
    """Point standard output at /dev/null: its reader is gone, and the interpreter's flush at exit
    would print "Exception ignored … BrokenPipeError"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _ctrl_c(signum: int, frame: object) -> None:
    note_interrupt_signal()
    raise KeyboardInterrupt


def note_ctrl_c() -> None:
    """Ctrl-C raises KeyboardInterrupt as Python's own handler does, noting that a real signal
    arrived: a plugin that raises KeyboardInterrupt itself is a failing plugin, not a Ctrl-C
    (:func:`explorer.errors.plugin_failure`). A SIGINT ignored by the shell stays ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _ctrl_c)


def out_of_memory(err: RuntimeError) -> str | None:
    """"GPU" or "CPU" when ``err`` is torch failing to allocate memory, else None. CUDA raises
    torch.OutOfMemoryError; the CPU allocator a plain RuntimeError ("can't allocate memory")."""
    if type(err).__name__ == "OutOfMemoryError":
        return "GPU"
    text = str(err)
    if "DefaultCPUAllocator" in text or "can't allocate memory" in text or "not enough memory" in text:
        return "CPU"
    return None


def entry() -> None:
    sys.exit(main())
