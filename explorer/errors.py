"""User-facing errors: each one renders as a single line, never a traceback."""

from __future__ import annotations

import difflib
import threading
import unicodedata
from collections.abc import Iterable


#: characters of the user's text shown on either side of an error's position (or of a name)
ECHO_CONTEXT = 60


def shorten(text: str, limit: int = ECHO_CONTEXT) -> str:
    """``text`` cut to ``limit`` characters with how long it was: an error echoes the input, not a flood."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class NormxError(Exception):
    """An error caused by the user's input; the CLI prints ``str(err)`` and exits non-zero."""

    exit_code = 2


class SpecError(NormxError, ValueError):
    """A normalizer spec that cannot be parsed or composed."""

    def __init__(self, message: str, text: str | None = None, position: int | None = None):
        self.text = text
        self.position = position
        self.bare_message = message
        if text is not None and position is not None:
            before, after = text[:position], text[position:]
            if len(before) > ECHO_CONTEXT:  # a 10,000-character spec is not echoed whole
                before = "…" + before[-ECHO_CONTEXT:]
            if len(after) > ECHO_CONTEXT:
                after = after[:ECHO_CONTEXT] + f"… ({len(text)} characters in all)"
            message = f"{message} at position {position}: {before}⟨here⟩{after}"
        super().__init__(message)


class PluginError(NormxError):
    """A plugin that cannot be loaded or that conflicts with another one."""


class PredictorError(NormxError, ValueError):
    """An unknown predictor name, or a predictor asked for where it cannot be used."""


#: Set by every SIGINT/SIGTERM handler of normx before it raises KeyboardInterrupt (the command
#: line's, a study run's): a KeyboardInterrupt seen while it is clear was raised by code, a plugin's.
_interrupt_signalled = threading.Event()


def note_interrupt_signal() -> None:
    """A handler of SIGINT/SIGTERM says a real signal arrived (a Ctrl-C, a scheduler's SIGTERM)."""
    _interrupt_signalled.set()


def forget_interrupt_signal() -> None:
    """The last signal's interruption was handled (or a new run starts)."""
    _interrupt_signalled.clear()


def plugin_failure(err: BaseException) -> bool:
    """Whether ``err``, raised by a plugin's code, is that plugin's failure rather than the end of
    the command: any Exception; a SystemExit (``sys.exit()`` in a plugin ends no normx command);
    a KeyboardInterrupt that no signal caused. A real Ctrl-C is not one: it still interrupts."""
    if isinstance(err, KeyboardInterrupt):
        return not _interrupt_signalled.is_set()
    return isinstance(err, (Exception, SystemExit))


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\x07``): an error
    that quotes the user's input must not let that input drive the terminal (set its title, clear
    it, ring its bell)."""
    def shown(c: str) -> str:
        if unicodedata.category(c) != "Cc":
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return "".join(shown(c) for c in text)


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to ``name`` (for 'did you mean' messages)."""
    return difflib.get_close_matches(name, sorted(set(candidates)), n=n, cutoff=0.5)


def suggestion(name: str, candidates: Iterable[str]) -> str:
    """``closest: bn, gn, in`` when some valid names are close to ``name``, else ``valid: ...``."""
    candidates = sorted(set(candidates))
    found = closest(name, candidates)
    if found:
        return f"closest: {', '.join(found)}"
    shown = ", ".join(candidates[:12]) + (f", ... ({len(candidates)} in all)" if len(candidates) > 12 else "")
    return f"valid: {shown}"


def unknown_name_message(kind: str, name: str, candidates: Iterable[str]) -> str:
    """``unknown preset 'bnn'; closest: bn, gn, in``."""
    return f"unknown {kind} {shorten(name)!r}; {suggestion(name, candidates)}"
